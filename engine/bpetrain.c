/*
 * engine/bpetrain.c — byte-level BPE training (see bpetrain.h for the algorithm, the merge rule
 * and the ids it gives) and the tokenizer.json it writes.
 *
 * Workload: tens to hundreds of MB of text, about a million distinct words, a few thousand to
 * a few hundred thousand merges. Counting is bound by the regex and runs on opts.threads
 * workers; merging touches only the words that hold the merged pair, so its cost follows the
 * number of occurrences merged, not the corpus size. Memory: the input file being counted, the
 * word maps (one per worker, folded into the first at training), and per pair the list of words
 * that held it (lists are append-only; a word that no longer holds the pair is skipped).
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

#include "engine/bpetrain.h"
#include "engine/err.h"

#define DEFAULT_BLOCK (1u << 18)
#define MAX_PIECE (1u << 30) /* longer pieces (a GiB without a boundary) are not counted */

/* ---------------------------------------------------------------------------- word counts */

struct went {       /* one distinct word */
    uint64_t h;     /* hash of its bytes */
    uint64_t count; /* occurrences; 0 = empty slot */
    size_t off;     /* bytes at arena + off */
    uint32_t len;
};

struct wmap { /* open addressing, power-of-two capacity, at most half full */
    struct went *e;
    size_t cap, n;
    char *arena;
    size_t alen, acap;
};

/* Counting state of one worker thread (wmap and scratch owned; b and job borrowed). */
struct worker {
    struct eng_bpe *b;
    struct job *job;
    struct wmap map;
    pcre2_match_data *md;
    char *buf; /* the block's valid, NFC lines */
    size_t blen, bcap;
    uint64_t lines, bad_lines, pieces;
    size_t first_bad; /* offset of the first invalid line in this input, SIZE_MAX if none */
    int rc;
};

/* One input being counted: blocks [cuts[k], cuts[k+1]) of text, handed out by next. */
struct job {
    const char *text;
    size_t *cuts, nb;
    size_t next; /* atomic */
};

/* ------------------------------------------------------------------------------- merging */

struct pair {
    int32_t a, b;  /* token ids */
    int64_t count; /* occurrences over all words, weighted by word counts */
    int32_t *w;    /* [wn] words that held the pair when it was raised (owned) */
    uint32_t wn, wcap;
    int32_t last_w; /* last word appended to w (no duplicates from one word) */
    int32_t dirty;  /* merge step that last raised count (-1: none) */
    int merged;     /* already recorded as a merge */
};

struct hent { /* heap entry: count when queued, pair index */
    int64_t count;
    int32_t pair;
};

struct eng_bpe {
    struct eng_bpe_opts o;
    char err[ENG_ERR_LEN];
    pcre2_code *re;
    pcre2_match_context *mctx; /* match limit raised: a 30 MB run of spaces backtracks 30M steps */
    struct worker *wk;         /* [o.threads] */
    struct eng_bpe_stats st;
    int trained;

    /* words (after train): the distinct words, compacted from worker 0's map */
    struct went *wd;
    uint64_t nwd;
    const char *warena; /* worker 0's arena */

    /* tokens: raw bytes of id i at tarena + toff[i], length tlen[i] */
    char *tarena;
    size_t talen, tacap;
    size_t *toff;
    uint32_t *tlen;
    int32_t ntok, tcap;
    int32_t *thash; /* bytes -> id, open addressing (-1 empty) */
    size_t thcap;
    uint8_t bs[256]; /* id -> byte for ids 0..255 (bytes_to_unicode order) */
    int32_t byte_id[256];

    /* merge-phase words: symbols of word w at sym + wstart[w], wlen[w] of them */
    int32_t *sym;
    size_t *wstart;
    uint32_t *wlen;
    uint64_t *wcnt;
    int32_t *wstamp;
    int32_t nw;

    /* pairs */
    struct pair *pairs;
    int32_t np, pcap;
    uint64_t *pkey; /* (a << 32 | b) + 1; 0 empty */
    int32_t *pval;
    size_t pmcap;
    struct hent *heap;
    size_t nh, hcap;
    int32_t *dirty; /* pairs raised in this step */
    size_t ndirty, dcap;
    int32_t step;

    int32_t (*merges)[2]; /* [nmerges] (left, right) by rank */
    int32_t nmerges, mcap;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    h ^= h >> 32;
    return h;
}

static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* Grow *p (elements of size sz, capacity *cap) to hold at least need. 0 or ENG_ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * sz);
    if (!q)
        return ENG_ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

static int wmap_rehash(struct wmap *m, size_t ncap)
{
    struct went *e = calloc(ncap, sizeof(*e));
    if (!e)
        return ENG_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].count)
            continue;
        size_t j = m->e[i].h & (ncap - 1);
        while (e[j].count)
            j = (j + 1) & (ncap - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = ncap;
    return 0;
}

/* Add count to the word p[0..n) with hash h (bytes copied into the arena when new). */
static int wmap_add(struct wmap *m, const char *p, size_t n, uint64_t h, uint64_t count)
{
    if (2 * (m->n + 1) > m->cap && wmap_rehash(m, m->cap ? 2 * m->cap : 1024))
        return ENG_ENOMEM;
    size_t j = h & (m->cap - 1);
    for (;; j = (j + 1) & (m->cap - 1)) {
        struct went *e = &m->e[j];
        if (!e->count)
            break;
        if (e->h == h && e->len == n && !memcmp(m->arena + e->off, p, n)) {
            e->count += count;
            return 0;
        }
    }
    if (grow((void **)&m->arena, &m->acap, m->alen + n + 1, 1))
        return ENG_ENOMEM;
    memcpy(m->arena + m->alen, p, n);
    m->e[j] = (struct went){h, count, m->alen, (uint32_t)n};
    m->alen += n;
    m->n++;
    return 0;
}

static void wmap_release(struct wmap *m)
{
    free(m->e);
    free(m->arena);
    memset(m, 0, sizeof(*m));
}

/* -------------------------------------------------------------------------------- counting */

/* Is p[0..n) valid UTF-8 (as utf8proc and PCRE2 define it)? *nfc: holds a code point >= U+0300
 * (below that every string is already NFC: no combining marks, no decomposing characters). */
static int utf8_line_ok(const char *p, size_t n, int *nfc)
{
    const unsigned char *u = (const unsigned char *)p;
    *nfc = 0;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0)
            return 0;
        if (cp >= 0x300)
            *nfc = 1;
        i += (size_t)l;
    }
    return 1;
}

static int buf_put(struct worker *w, const void *p, size_t n)
{
    if (grow((void **)&w->buf, &w->bcap, w->blen + n + 1, 1))
        return ENG_ENOMEM;
    memcpy(w->buf + w->blen, p, n);
    w->blen += n;
    return 0;
}

static int count_piece(struct worker *w, const char *p, size_t n)
{
    if (n == 0 || n > MAX_PIECE)
        return 0;
    w->pieces++;
    return wmap_add(&w->map, p, n, hash_bytes(p, n), 1);
}

/* Split s[0..n) (valid UTF-8) with the pre-tokenizer regex, as eng_tok does (HF Split,
 * Isolated: text between matches is a piece too), and count the pieces. */
static int split_count(struct worker *w, const char *s, size_t n)
{
    const pcre2_code *re = w->b->re;
    size_t off = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        int r = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, w->md, w->b->mctx);
        if (r == PCRE2_ERROR_NOMATCH)
            return count_piece(w, s + off, n - off);
        if (r < 0)
            return ENG_ERANGE; /* a PCRE2 limit (depth, JIT stack) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
        if (ov[0] > off)
            rc = count_piece(w, s + off, ov[0] - off);
        if (rc == 0 && ov[1] > ov[0]) {
            rc = count_piece(w, s + ov[0], ov[1] - ov[0]);
            off = ov[1];
        } else if (rc == 0) { /* empty match: the next character is a piece */
            utf8proc_int32_t cp;
            utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + ov[0],
                                                  (utf8proc_ssize_t)(n - ov[0]), &cp);
            size_t step = l > 0 ? (size_t)l : 1;
            rc = count_piece(w, s + ov[0], step);
            off = ov[0] + step;
        }
    }
    return rc;
}

/* Count one block (whole lines; base = its offset in the input): valid lines, NFC-normalised,
 * are gathered and split together; invalid ones are skipped and counted. */
static int count_block(struct worker *w, const char *p, size_t n, size_t base)
{
    w->blen = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - p) + 1 : n;
        int nfc, rc = 0;
        w->lines++;
        if (!utf8_line_ok(p + i, e - i, &nfc)) {
            w->bad_lines++;
            if (base + i < w->first_bad)
                w->first_bad = base + i;
        } else if (nfc) {
            utf8proc_uint8_t *d = NULL;
            utf8proc_ssize_t l =
                utf8proc_map((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(e - i), &d,
                             UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            rc = l < 0 ? ENG_ENOMEM : buf_put(w, d, (size_t)l);
            free(d);
        } else {
            rc = buf_put(w, p + i, e - i);
        }
        if (rc)
            return rc;
        i = e;
    }
    return split_count(w, w->buf, w->blen);
}

static void *count_thread(void *arg)
{
    struct worker *w = arg;
    struct job *j = w->job;
    for (;;) {
        size_t k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (k >= j->nb)
            break;
        w->rc = count_block(w, j->text + j->cuts[k], j->cuts[k + 1] - j->cuts[k], j->cuts[k]);
        if (w->rc) {
            __atomic_store_n(&j->next, j->nb, __ATOMIC_RELAXED);
            break;
        }
    }
    return NULL;
}

/* The first cut at or after want: just past a '\n' followed by printable ASCII. There neither
 * the regex (no piece holds a newline followed by a non-space) nor NFC (a newline composes with
 * nothing and blocks reordering) joins the two sides. n if there is none. */
static size_t next_cut(const char *p, size_t n, size_t want)
{
    for (size_t i = want - 1; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (!nl)
            return n;
        size_t j = (size_t)(nl - p) + 1;
        if (j >= n)
            return n;
        unsigned char c = (unsigned char)p[j];
        if (c > 0x20 && c < 0x7f)
            return j;
        i = j;
    }
    return n;
}

/* One warning for the lines of this input that were skipped (first: offset of the first). */
static void add_warn(const char *name, const char *text, uint64_t bad, size_t first,
                     void (*warn)(const char *msg))
{
    char msg[ENG_ERR_LEN + 128];
    uint64_t line = 1;
    for (const char *q = text; (q = memchr(q, '\n', (size_t)(text + first - q))); q++)
        line++;
    snprintf(msg, sizeof(msg),
             "'%s': skipped %llu line%s that %s not valid UTF-8, the first is "
             "line %llu",
             name, (unsigned long long)bad, bad == 1 ? "" : "s", bad == 1 ? "is" : "are",
             (unsigned long long)line);
    warn(msg);
}

int eng_bpe_add_text(struct eng_bpe *b, const char *name, const char *text, size_t n,
                     void (*warn)(const char *msg))
{
    size_t blk = b->o.block_bytes ? b->o.block_bytes : DEFAULT_BLOCK, ncuts = 0, ccap = 0;
    struct job j = {text, NULL, 0, 0};
    pthread_t tid[256];
    int started[256] = {0}, rc = 0;
    uint64_t bad0 = 0;
    double t0 = now_s();
    if (b->trained)
        return eng_fail(b->err, ENG_EINVAL, "words cannot be added after training");
    for (size_t c = 0;; c = next_cut(text, n, c + blk)) {
        if (grow((void **)&j.cuts, &ccap, ncuts + 1, sizeof(*j.cuts))) {
            free(j.cuts);
            return eng_fail(b->err, ENG_ENOMEM, "out of memory");
        }
        j.cuts[ncuts++] = c;
        if (c >= n)
            break;
    }
    j.nb = ncuts - 1;
    int nt = b->o.threads < (int)j.nb ? b->o.threads : (int)j.nb;
    for (int i = 0; i < b->o.threads; i++) {
        struct worker *w = &b->wk[i];
        w->job = &j;
        w->first_bad = SIZE_MAX;
        w->rc = 0;
        bad0 += w->bad_lines;
    }
    for (int i = 1; i < nt; i++) /* a thread that cannot start leaves its share to the others */
        started[i] = pthread_create(&tid[i], NULL, count_thread, &b->wk[i]) == 0;
    if (j.nb > 0)
        count_thread(&b->wk[0]);
    size_t first = SIZE_MAX;
    uint64_t bad1 = 0;
    for (int i = 0; i < b->o.threads; i++) {
        if (i > 0 && i < nt && started[i])
            pthread_join(tid[i], NULL);
        struct worker *w = &b->wk[i];
        if (w->rc && !rc)
            rc = w->rc;
        if (w->first_bad < first)
            first = w->first_bad;
        bad1 += w->bad_lines;
    }
    free(j.cuts);
    b->st.bytes += n;
    b->st.count_s += now_s() - t0;
    if (rc)
        return eng_fail(b->err, rc, "'%s': %s", name,
                        rc == ENG_ENOMEM ? "out of memory while counting words"
                                         : "the pre-tokenizer regex hit a PCRE2 limit");
    if (bad1 > bad0 && warn)
        add_warn(name, text, bad1 - bad0, first, warn);
    return 0;
}

/* Read all of fd (malloc'd in *out, *n bytes). */
static int read_all(int fd, char **out, size_t *n)
{
    struct stat sb;
    size_t cap = 1 << 16, len = 0;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
        cap = (size_t)sb.st_size + 1;
    char *p = malloc(cap);
    if (!p)
        return ENOMEM;
    for (;;) {
        if (len == cap && grow((void **)&p, &cap, cap + 1, 1)) {
            free(p);
            return ENOMEM;
        }
        ssize_t r = read(fd, p + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(p);
            return e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *out = p;
    *n = len;
    return 0;
}

int eng_bpe_add_file(struct eng_bpe *b, const char *path, void (*warn)(const char *msg))
{
    int stdin_ = !strcmp(path, "-");
    int fd = stdin_ ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    char *text = NULL;
    size_t n = 0;
    if (fd < 0)
        return eng_fail(b->err, ENG_EIO, "cannot open '%s': %s", path, strerror(errno));
    int e = read_all(fd, &text, &n);
    if (!stdin_)
        close(fd);
    if (e)
        return eng_fail(b->err, e == ENOMEM ? ENG_ENOMEM : ENG_EIO, "cannot read '%s': %s", path,
                        strerror(e));
    int rc = eng_bpe_add_text(b, stdin_ ? "(stdin)" : path, text, n, warn);
    free(text);
    if (rc == 0)
        b->st.files++;
    return rc;
}

int eng_bpe_add_word(struct eng_bpe *b, const char *bytes, size_t n, uint64_t count)
{
    if (b->trained)
        return eng_fail(b->err, ENG_EINVAL, "words cannot be added after training");
    if (n == 0 || n > MAX_PIECE || count == 0)
        return 0;
    b->st.pieces += count;
    if (wmap_add(&b->wk[0].map, bytes, n, hash_bytes(bytes, n), count))
        return eng_fail(b->err, ENG_ENOMEM, "out of memory");
    return 0;
}

/* --------------------------------------------------------------------------------- tokens */

static int tok_cmp(const struct eng_bpe *b, int32_t x, int32_t y)
{
    uint32_t lx = b->tlen[x], ly = b->tlen[y];
    int c = memcmp(b->tarena + b->toff[x], b->tarena + b->toff[y], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

static int32_t tok_find(const struct eng_bpe *b, const char *p, size_t n, size_t *slot)
{
    size_t m = b->thcap - 1;
    size_t i = hash_bytes(p, n) & m;
    for (;; i = (i + 1) & m) {
        int32_t id = b->thash[i];
        if (id < 0)
            break;
        if (b->tlen[id] == n && !memcmp(b->tarena + b->toff[id], p, n))
            return id;
    }
    if (slot)
        *slot = i;
    return -1;
}

static int tok_rehash(struct eng_bpe *b, size_t ncap)
{
    int32_t *h = malloc(ncap * sizeof(*h));
    if (!h)
        return ENG_ENOMEM;
    for (size_t i = 0; i < ncap; i++)
        h[i] = -1;
    free(b->thash);
    b->thash = h;
    b->thcap = ncap;
    for (int32_t id = 0; id < b->ntok; id++) {
        size_t slot;
        tok_find(b, b->tarena + b->toff[id], b->tlen[id], &slot);
        b->thash[slot] = id;
    }
    return 0;
}

/* The id of the token with bytes p[0..n) (not pointing into b's arena): the existing one, or
 * a new one; ENG_ENOMEM (negative) when out of memory. */
static int32_t tok_get(struct eng_bpe *b, const char *p, size_t n)
{
    size_t slot;
    int32_t id = tok_find(b, p, n, &slot);
    if (id >= 0)
        return id;
    if (b->ntok == b->tcap) {
        int32_t nc = b->tcap ? 2 * b->tcap : 1024;
        size_t *o = realloc(b->toff, (size_t)nc * sizeof(*o));
        if (o)
            b->toff = o;
        uint32_t *l = o ? realloc(b->tlen, (size_t)nc * sizeof(*l)) : NULL;
        if (!l)
            return ENG_ENOMEM;
        b->tlen = l;
        b->tcap = nc;
    }
    if (grow((void **)&b->tarena, &b->tacap, b->talen + n, 1))
        return ENG_ENOMEM;
    memcpy(b->tarena + b->talen, p, n);
    id = b->ntok++;
    b->toff[id] = b->talen;
    b->tlen[id] = (uint32_t)n;
    b->talen += n;
    if (2 * (size_t)b->ntok > b->thcap)
        return tok_rehash(b, 2 * b->thcap) ? ENG_ENOMEM : id;
    b->thash[slot] = id;
    return id;
}

/* The token made of x's bytes then y's (existing or new; negative on ENOMEM). */
static int32_t tok_concat(struct eng_bpe *b, int32_t x, int32_t y)
{
    size_t lx = b->tlen[x], ly = b->tlen[y];
    char small[256], *tmp = lx + ly <= sizeof(small) ? small : malloc(lx + ly);
    if (!tmp)
        return ENG_ENOMEM;
    memcpy(tmp, b->tarena + b->toff[x], lx);
    memcpy(tmp + lx, b->tarena + b->toff[y], ly);
    int32_t id = tok_get(b, tmp, lx + ly);
    if (tmp != small)
        free(tmp);
    return id;
}

/* ---------------------------------------------------------------------------------- pairs */

static int pmap_rehash(struct eng_bpe *b, size_t ncap)
{
    uint64_t *k = calloc(ncap, sizeof(*k));
    int32_t *v = malloc(ncap * sizeof(*v));
    if (!k || !v) {
        free(k);
        free(v);
        return ENG_ENOMEM;
    }
    for (size_t i = 0; i < b->pmcap; i++) {
        if (!b->pkey[i])
            continue;
        size_t j = mix64(b->pkey[i]) & (ncap - 1);
        while (k[j])
            j = (j + 1) & (ncap - 1);
        k[j] = b->pkey[i];
        v[j] = b->pval[i];
    }
    free(b->pkey);
    free(b->pval);
    b->pkey = k;
    b->pval = v;
    b->pmcap = ncap;
    return 0;
}

/* Index of pair (x, y); created (count 0) when create is set, else -1 if absent. */
static int32_t pair_index(struct eng_bpe *b, int32_t x, int32_t y, int create)
{
    uint64_t key = (((uint64_t)(uint32_t)x << 32) | (uint32_t)y) + 1;
    size_t m = b->pmcap - 1, i = mix64(key) & m;
    for (; b->pkey[i]; i = (i + 1) & m)
        if (b->pkey[i] == key)
            return b->pval[i];
    if (!create)
        return -1;
    size_t pc = (size_t)b->pcap;
    if (grow((void **)&b->pairs, &pc, (size_t)b->np + 1, sizeof(*b->pairs)))
        return ENG_ENOMEM;
    b->pcap = (int32_t)pc;
    int32_t id = b->np++;
    b->pairs[id] = (struct pair){.a = x, .b = y, .last_w = -1, .dirty = -1};
    b->pkey[i] = key;
    b->pval[i] = id;
    if (2 * (size_t)b->np > b->pmcap && pmap_rehash(b, 2 * b->pmcap))
        return ENG_ENOMEM;
    return id;
}

/* count(x, y) += d (word w's count, signed). A raise also files w under the pair and marks the
 * pair for re-queueing at the end of this step. */
static int pair_add(struct eng_bpe *b, int32_t x, int32_t y, int64_t d, int32_t w)
{
    int32_t pi = pair_index(b, x, y, d > 0);
    if (pi < 0)
        return pi == -1 ? ENG_EINVAL : pi; /* a lowered pair always exists */
    struct pair *p = &b->pairs[pi];
    p->count += d;
    if (d <= 0)
        return 0;
    if (p->last_w != w) {
        size_t wc = p->wcap;
        if (grow((void **)&p->w, &wc, (size_t)p->wn + 1, sizeof(*p->w)))
            return ENG_ENOMEM;
        p->wcap = (uint32_t)wc;
        p->w[p->wn++] = w;
        p->last_w = w;
    }
    if (p->dirty != b->step) {
        p->dirty = b->step;
        if (grow((void **)&b->dirty, &b->dcap, b->ndirty + 1, sizeof(*b->dirty)))
            return ENG_ENOMEM;
        b->dirty[b->ndirty++] = pi;
    }
    return 0;
}

/* Heap order: larger count first, then the smaller (left bytes, right bytes). */
static int hent_before(const struct eng_bpe *b, const struct hent *x, const struct hent *y)
{
    if (x->count != y->count)
        return x->count > y->count;
    const struct pair *p = &b->pairs[x->pair], *q = &b->pairs[y->pair];
    int c = tok_cmp(b, p->a, q->a);
    return c ? c < 0 : tok_cmp(b, p->b, q->b) < 0;
}

static int heap_push(struct eng_bpe *b, int64_t count, int32_t pair)
{
    if (grow((void **)&b->heap, &b->hcap, b->nh + 1, sizeof(*b->heap)))
        return ENG_ENOMEM;
    struct hent e = {count, pair};
    size_t i = b->nh++;
    while (i > 0 && hent_before(b, &e, &b->heap[(i - 1) / 2])) {
        b->heap[i] = b->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    b->heap[i] = e;
    return 0;
}

static struct hent heap_pop(struct eng_bpe *b)
{
    struct hent top = b->heap[0], last = b->heap[--b->nh];
    size_t i = 0, n = b->nh;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct hent *best = &last;
        if (l < n && hent_before(b, &b->heap[l], best)) {
            m = l;
            best = &b->heap[l];
        }
        if (r < n && hent_before(b, &b->heap[r], best))
            m = r;
        if (m == i)
            break;
        b->heap[i] = b->heap[m];
        i = m;
    }
    if (n > 0)
        b->heap[i] = last;
    return top;
}

/* Queue every pair raised in this step (count > 0) and clear the list. */
static int flush_dirty(struct eng_bpe *b)
{
    for (size_t i = 0; i < b->ndirty; i++) {
        int32_t pi = b->dirty[i];
        if (b->pairs[pi].count > 0 && heap_push(b, b->pairs[pi].count, pi))
            return ENG_ENOMEM;
    }
    b->ndirty = 0;
    return 0;
}

/* Merge (x, y) -> z in word w, left to right, adjusting the neighbouring pairs' counts. */
static int merge_word(struct eng_bpe *b, int32_t w, int32_t x, int32_t y, int32_t z)
{
    int32_t *s = b->sym + b->wstart[w];
    uint32_t n = b->wlen[w], o = 0;
    int64_t c = (int64_t)b->wcnt[w];
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0;) {
        if (i + 1 < n && s[i] == x && s[i + 1] == y) {
            if (o > 0) {
                rc = pair_add(b, s[o - 1], x, -c, w);
                rc = rc ? rc : pair_add(b, s[o - 1], z, c, w);
            }
            if (rc == 0 && i + 2 < n) {
                rc = pair_add(b, y, s[i + 2], -c, w);
                rc = rc ? rc : pair_add(b, z, s[i + 2], c, w);
            }
            rc = rc ? rc : pair_add(b, x, y, -c, w);
            s[o++] = z;
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    b->wlen[w] = o;
    return rc;
}

/* One merge step on pair pi (the current best). */
static int merge_step(struct eng_bpe *b, int32_t pi)
{
    int32_t x = b->pairs[pi].a, y = b->pairs[pi].b;
    int32_t z = tok_concat(b, x, y);
    if (z < 0)
        return z;
    if (!b->pairs[pi].merged) {
        size_t mc = (size_t)b->mcap;
        if (grow((void **)&b->merges, &mc, (size_t)b->nmerges + 1, sizeof(*b->merges)))
            return ENG_ENOMEM;
        b->mcap = (int32_t)mc;
        b->merges[b->nmerges][0] = x;
        b->merges[b->nmerges][1] = y;
        b->nmerges++;
        b->pairs[pi].merged = 1;
    }
    b->step++;
    /* pi's own list does not grow in its step: every raised pair holds z, which is longer than
     * x and y; but b->pairs may move, so index it afresh each time. */
    for (uint32_t k = 0; k < b->pairs[pi].wn; k++) {
        int32_t w = b->pairs[pi].w[k];
        if (b->wstamp[w] == b->step)
            continue;
        b->wstamp[w] = b->step;
        int rc = merge_word(b, w, x, y, z);
        if (rc)
            return rc;
    }
    struct pair *p = &b->pairs[pi];
    free(p->w);
    p->w = NULL;
    p->wn = p->wcap = 0;
    p->last_w = -1;
    return flush_dirty(b);
}

/* Fold the workers' maps into worker 0's and compact it into b->wd. */
static int gather_words(struct eng_bpe *b)
{
    struct wmap *m0 = &b->wk[0].map;
    for (int t = 1; t < b->o.threads; t++) {
        struct wmap *m = &b->wk[t].map;
        for (size_t i = 0; i < m->cap; i++) {
            const struct went *e = &m->e[i];
            if (e->count && wmap_add(m0, m->arena + e->off, e->len, e->h, e->count))
                return ENG_ENOMEM;
        }
        wmap_release(m);
    }
    b->wd = malloc((m0->n + 1) * sizeof(*b->wd));
    if (!b->wd)
        return ENG_ENOMEM;
    for (size_t i = 0; i < m0->cap; i++)
        if (m0->e[i].count)
            b->wd[b->nwd++] = m0->e[i];
    free(m0->e);
    m0->e = NULL;
    m0->cap = m0->n = 0;
    b->warena = m0->arena;
    return 0;
}

/* Words of two bytes or more become symbol runs; their pairs are counted and queued. */
static int setup_merge(struct eng_bpe *b)
{
    size_t nsym = 0;
    int32_t nw = 0;
    for (uint64_t i = 0; i < b->nwd; i++)
        if (b->wd[i].len >= 2) {
            nsym += b->wd[i].len;
            nw++;
        }
    b->sym = malloc((nsym + 1) * sizeof(*b->sym));
    b->wstart = malloc(((size_t)nw + 1) * sizeof(*b->wstart));
    b->wlen = malloc(((size_t)nw + 1) * sizeof(*b->wlen));
    b->wcnt = malloc(((size_t)nw + 1) * sizeof(*b->wcnt));
    b->wstamp = calloc((size_t)nw + 1, sizeof(*b->wstamp));
    if (!b->sym || !b->wstart || !b->wlen || !b->wcnt || !b->wstamp || pmap_rehash(b, 1 << 16))
        return ENG_ENOMEM;
    size_t at = 0;
    b->step = 0;
    for (uint64_t i = 0; i < b->nwd; i++) {
        const struct went *e = &b->wd[i];
        if (e->len < 2)
            continue;
        int32_t w = b->nw++;
        const unsigned char *p = (const unsigned char *)b->warena + e->off;
        b->wstart[w] = at;
        b->wlen[w] = e->len;
        b->wcnt[w] = e->count;
        for (uint32_t k = 0; k < e->len; k++)
            b->sym[at + k] = b->byte_id[p[k]];
        for (uint32_t k = 0; k + 1 < e->len; k++)
            if (pair_add(b, b->sym[at + k], b->sym[at + k + 1], (int64_t)e->count, w))
                return ENG_ENOMEM;
        at += e->len;
    }
    return flush_dirty(b);
}

/* The merge phase's tables (pairs, their index, heap, symbols, words), freed and zeroed. */
static void free_merge_tables(struct eng_bpe *b)
{
    for (int32_t i = 0; i < b->np; i++)
        free(b->pairs[i].w);
    free(b->pairs);
    free(b->pkey);
    free(b->pval);
    free(b->heap);
    free(b->dirty);
    free(b->sym);
    free(b->wstart);
    free(b->wlen);
    free(b->wcnt);
    free(b->wstamp);
    b->pairs = NULL;
    b->pkey = NULL;
    b->pval = NULL;
    b->heap = NULL;
    b->dirty = NULL;
    b->sym = NULL;
    b->wstart = NULL;
    b->wlen = NULL;
    b->wcnt = NULL;
    b->wstamp = NULL;
    b->np = b->pcap = 0;
    b->pmcap = b->nh = b->hcap = b->ndirty = b->dcap = 0;
}

int eng_bpe_train(struct eng_bpe *b)
{
    int32_t target = b->o.vocab_size - ENG_BPE_N_SPECIAL;
    double t0 = now_s();
    int rc = 0;
    if (b->trained)
        return eng_fail(b->err, ENG_EINVAL, "the trainer has already been run");
    b->trained = 1;
    for (int t = 0; t < b->o.threads; t++) {
        b->st.lines += b->wk[t].lines;
        b->st.bad_lines += b->wk[t].bad_lines;
        b->st.pieces += b->wk[t].pieces;
    }
    if ((rc = gather_words(b)) || (rc = setup_merge(b)))
        goto out;
    while (b->ntok < target && b->nh > 0) {
        struct hent top = heap_pop(b);
        int64_t cur = b->pairs[top.pair].count;
        if (cur <= 0)
            continue;
        if (top.count != cur) { /* stale: counts only fall between raises, re-queue */
            if ((rc = heap_push(b, cur, top.pair)))
                goto out;
            continue;
        }
        if ((uint64_t)cur < b->o.min_frequency)
            break;
        if ((rc = merge_step(b, top.pair)))
            goto out;
    }
out:
    b->st.words = b->nwd;
    b->st.merges = b->nmerges;
    b->st.vocab = b->ntok + ENG_BPE_N_SPECIAL;
    b->st.merge_s = now_s() - t0;
    free_merge_tables(b); /* no longer needed */
    if (rc)
        return eng_fail(b->err, rc, "out of memory while merging (%d merges made)",
                        (int)b->nmerges);
    return 0;
}

/* ------------------------------------------------------------------------ object, results */

int eng_bpe_create(const struct eng_bpe_opts *o, struct eng_bpe **out, char *err)
{
    *out = NULL;
    if (o->vocab_size < 256 + ENG_BPE_N_SPECIAL)
        return eng_fail(err, ENG_ERANGE,
                        "vocabulary size %d is smaller than the 256 byte tokens "
                        "plus %d special tokens (%d)",
                        (int)o->vocab_size, ENG_BPE_N_SPECIAL, 256 + ENG_BPE_N_SPECIAL);
    if (o->vocab_size > ENG_BPE_MAX_VOCAB)
        return eng_fail(err, ENG_ERANGE, "vocabulary size %d is larger than %d", (int)o->vocab_size,
                        ENG_BPE_MAX_VOCAB);
    if (o->threads < 1 || o->threads > 256)
        return eng_fail(err, ENG_ERANGE, "thread count %d is outside 1..256", o->threads);
    struct eng_bpe *b = calloc(1, sizeof(*b));
    if (!b)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    b->o = *o;
    b->wk = calloc((size_t)o->threads, sizeof(*b->wk));
    int ec;
    PCRE2_SIZE eo;
    b->re = pcre2_compile((PCRE2_SPTR)ENG_BPE_QWEN2_REGEX, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    b->mctx = pcre2_match_context_create(NULL);
    if (!b->wk || !b->re || !b->mctx || tok_rehash(b, 1024))
        goto nomem;
    pcre2_set_match_limit(b->mctx, UINT32_MAX);
    pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    for (int i = 0; i < o->threads; i++) {
        b->wk[i].b = b;
        b->wk[i].md = pcre2_match_data_create_from_pattern(b->re, NULL);
        if (!b->wk[i].md)
            goto nomem;
    }
    /* GPT-2 bytes_to_unicode order: printable bytes first, then the rest. */
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int c = 0; c < 256; c++) {
            int keep = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
            if (keep == !pass)
                b->bs[n++] = (uint8_t)c;
        }
    for (int i = 0; i < 256; i++) {
        char c = (char)b->bs[i];
        b->byte_id[b->bs[i]] = tok_get(b, &c, 1);
        if (b->byte_id[b->bs[i]] != i)
            goto nomem;
    }
    *out = b;
    return 0;
nomem:
    eng_bpe_free(b);
    return eng_fail(err, ENG_ENOMEM, "out of memory");
}

void eng_bpe_free(struct eng_bpe *b)
{
    if (!b)
        return;
    for (int i = 0; b->wk && i < b->o.threads; i++) {
        wmap_release(&b->wk[i].map);
        pcre2_match_data_free(b->wk[i].md);
        free(b->wk[i].buf);
    }
    free(b->wk);
    if (b->re)
        pcre2_code_free(b->re);
    pcre2_match_context_free(b->mctx);
    free(b->wd);
    free(b->tarena);
    free(b->toff);
    free(b->tlen);
    free(b->thash);
    free_merge_tables(b);
    free(b->merges);
    free(b);
}

const char *eng_bpe_errmsg(const struct eng_bpe *b)
{
    return b->err;
}

int32_t eng_bpe_vocab_size(const struct eng_bpe *b)
{
    return b->ntok + ENG_BPE_N_SPECIAL;
}

const char *eng_bpe_token(const struct eng_bpe *b, int32_t id, size_t *n)
{
    if (id < 0 || id >= b->ntok)
        return NULL;
    *n = b->tlen[id];
    return b->tarena + b->toff[id];
}

int32_t eng_bpe_merge_count(const struct eng_bpe *b)
{
    return b->nmerges;
}

void eng_bpe_merge(const struct eng_bpe *b, int32_t rank, int32_t *left, int32_t *right)
{
    *left = b->merges[rank][0];
    *right = b->merges[rank][1];
}

void eng_bpe_get_stats(const struct eng_bpe *b, struct eng_bpe_stats *st)
{
    *st = b->st;
    if (!b->trained)
        for (int t = 0; t < b->o.threads; t++) {
            st->lines += b->wk[t].lines;
            st->bad_lines += b->wk[t].bad_lines;
            st->pieces += b->wk[t].pieces;
        }
}

uint64_t eng_bpe_word_count(const struct eng_bpe *b)
{
    return b->nwd;
}

const char *eng_bpe_word(const struct eng_bpe *b, uint64_t i, size_t *n, uint64_t *count)
{
    if (i >= b->nwd)
        return NULL;
    *n = b->wd[i].len;
    *count = b->wd[i].count;
    return b->warena + b->wd[i].off;
}

/* ------------------------------------------------------------------------ tokenizer.json */

/* Qwen2/Qwen3's shape: NFC normaliser, Split(Qwen2 regex, Isolated) + ByteLevel(no prefix
 * space, no regex) pre-tokenizer, ByteLevel post-processor and decoder, BPE model with the
 * byte-level vocabulary and merges as [left, right], the special tokens as added_tokens after
 * the vocabulary. */
static const char *const specials[ENG_BPE_N_SPECIAL] = {"<|endoftext|>", "<|im_start|>",
                                                        "<|im_end|>"};

/* Raw bytes -> GPT-2 byte-level string (malloc'd, NUL-terminated). */
static char *byte_level(const char *p, size_t n)
{
    char *s = malloc(2 * n + 1), *o = s;
    if (!s)
        return NULL;
    int cnt = 0;
    uint32_t b2c[256];
    for (int c = 0; c < 256; c++) {
        int keep = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
        b2c[c] = keep ? (uint32_t)c : (uint32_t)(256 + cnt++);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = b2c[(unsigned char)p[i]];
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else { /* all below U+0800: two bytes */
            *o++ = (char)(0xc0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    *o = 0;
    return s;
}

static json_t *byte_level_step(const char *type)
{
    return json_pack("{s:s, s:b, s:b, s:b}", "type", type, "add_prefix_space", 0, "trim_offsets", 0,
                     "use_regex", 0);
}

/* The tokenizer.json tree, or NULL when out of memory (or a special token clashes: *clash). */
static json_t *build(const struct eng_bpe *b, const char **clash)
{
    int32_t nv = eng_bpe_vocab_size(b) - ENG_BPE_N_SPECIAL, nm = eng_bpe_merge_count(b);
    char **str = calloc((size_t)nv + 1, sizeof(*str));
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array(), *root = NULL;
    int ok = str && vocab && merges && added;
    for (int32_t id = 0; ok && id < nv; id++) {
        size_t n = 0;
        const char *t = eng_bpe_token(b, id, &n);
        ok = (str[id] = byte_level(t, n)) && !json_object_set_new(vocab, str[id], json_integer(id));
        for (int k = 0; ok && k < ENG_BPE_N_SPECIAL; k++)
            if (!strcmp(str[id], specials[k]))
                *clash = specials[k];
    }
    for (int32_t r = 0; ok && r < nm; r++) {
        int32_t l, rt;
        eng_bpe_merge(b, r, &l, &rt);
        ok = !json_array_append_new(merges, json_pack("[s,s]", str[l], str[rt]));
    }
    for (int k = 0; ok && k < ENG_BPE_N_SPECIAL; k++)
        ok = !json_array_append_new(added,
                                    json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", nv + k,
                                              "content", specials[k], "single_word", 0, "lstrip", 0,
                                              "rstrip", 0, "normalized", 0, "special", 1));
    if (ok && !*clash) { /* "O" takes a new reference: every local is released below */
        json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex",
                                  ENG_BPE_QWEN2_REGEX, "behavior", "Isolated", "invert", 0);
        json_t *bl = byte_level_step("ByteLevel");
        json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:O, s:O}", "type",
                                  "BPE", "dropout", "unk_token", "continuing_subword_prefix", "",
                                  "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0,
                                  "ignore_merges", 0, "vocab", vocab, "merges", merges);
        if (split && bl && model)
            root = json_pack("{s:s, s:n, s:n, s:O, s:{s:s}, s:{s:s, s:[O,O]}, s:O, s:O, s:O}",
                             "version", "1.0", "truncation", "padding", "added_tokens", added,
                             "normalizer", "type", "NFC", "pre_tokenizer", "type", "Sequence",
                             "pretokenizers", split, bl, "post_processor", bl, "decoder", bl,
                             "model", model);
        json_decref(split);
        json_decref(bl);
        json_decref(model);
    }
    for (int32_t id = 0; str && id < nv; id++)
        free(str[id]);
    free(str);
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    return root;
}

int eng_bpe_save_json(struct eng_bpe *b, const char *path)
{
    char *err = b->err;
    const char *clash = NULL;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    json_t *root = tmp && b->trained ? build(b, &clash) : NULL;
    int rc = 0;
    if (clash) {
        rc =
            eng_fail(err, ENG_EINVAL, "the learned vocabulary holds the special token '%s'", clash);
        goto out;
    }
    if (!b->trained) {
        rc = eng_fail(err, ENG_EINVAL, "nothing to write: the trainer has not been run");
        goto out;
    }
    if (!root) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory while building '%s'", path);
        goto out;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = eng_fail(err, ENG_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    int w = json_dumpf(root, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF;
    int e = errno;
    if (fclose(f) != 0 && w) {
        w = 0;
        e = errno;
    }
    if (!w || rename(tmp, path) != 0) {
        e = w ? errno : e;
        rc = eng_fail(err, ENG_EIO, "cannot write '%s': %s", w ? path : tmp, strerror(e));
        remove(tmp);
    }
out:
    json_decref(root);
    free(tmp);
    return rc;
}
