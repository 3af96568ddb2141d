/*
 * engine/tokenizer.c — byte-level BPE (see tokenizer.h for the algorithm and its HF contract).
 *
 * Tables: vocab tokens are stored twice, in their byte-level string form (for export) and as
 * raw bytes (for lookups and decoding); one open-addressing hash maps raw bytes -> id, another
 * maps a pair of ids -> (merge rank, merged id). Workload: load once (150k tokens, 150k
 * merges), then encode pieces of a few bytes each.
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "engine/err.h"
#include "engine/tokenizer.h"

struct bkey {      /* bytes -> id */
    const char *p; /* NULL = empty slot */
    uint32_t n;
    int32_t id;
};

struct mkey {   /* (a, b) -> rank, id */
    uint64_t k; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank, id;
};

struct eng_tok {
    int32_t n_vocab; /* ids 0..n_vocab-1 (holes allowed) */
    char **str;      /* [n_vocab] byte-level form (owned) or NULL */
    char **raw;      /* [n_vocab] raw bytes (owned) */
    uint32_t *rawn;  /* [n_vocab] */
    struct bkey *bt; /* raw bytes -> id */
    size_t bcap;
    struct mkey *mt;
    size_t mcap;
    char **merges; /* [n_merges] "a b" (owned) */
    int32_t n_merges;
    struct eng_tok_added *added; /* contents owned */
    int32_t n_added;
    int32_t byte_id[256]; /* id of the single-byte token, -1 if absent */
    char *regex;
    pcre2_code *re;
    int nfc, prefix_space;
};

/* GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n. */
static void byte_map(uint32_t b2c[256], int16_t c2b[324])
{
    int n = 0;
    for (int i = 0; i < 324; i++)
        c2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        b2c[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
        c2b[b2c[b]] = (int16_t)b;
    }
}

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static int32_t bfind(const struct eng_tok *t, const char *p, size_t n)
{
    size_t m = t->bcap - 1;
    for (size_t i = fnv(p, n) & m;; i = (i + 1) & m) {
        const struct bkey *e = &t->bt[i];
        if (!e->p)
            return -1;
        if (e->n == n && !memcmp(e->p, p, n))
            return e->id;
    }
}

static void binsert(struct eng_tok *t, const char *p, uint32_t n, int32_t id)
{
    size_t m = t->bcap - 1;
    for (size_t i = fnv(p, n) & m;; i = (i + 1) & m) {
        struct bkey *e = &t->bt[i];
        if (!e->p) {
            *e = (struct bkey){p, n, id};
            return;
        }
        if (e->n == n && !memcmp(e->p, p, n))
            return; /* first id wins */
    }
}

static const struct mkey *mfind(const struct eng_tok *t, int32_t a, int32_t b)
{
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t m = t->mcap - 1;
    for (size_t i = mix(k) & m;; i = (i + 1) & m) {
        const struct mkey *e = &t->mt[i];
        if (!e->k)
            return NULL;
        if (e->k == k)
            return e;
    }
}

/* Decode one UTF-8 code point at p (n bytes left); returns its length or 0 if invalid. */
static int utf8_dec(const unsigned char *p, size_t n, uint32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t l = utf8proc_iterate(p, (utf8proc_ssize_t)n, &c);
    if (l <= 0)
        return 0;
    *cp = (uint32_t)c;
    return (int)l;
}

/* Byte-level string -> raw bytes (malloc'd). Falls back to the string's own bytes when a
 * character is outside the byte alphabet (as the HF ByteLevel decoder does). */
static char *to_raw(const char *s, const int16_t c2b[324], uint32_t *outn)
{
    size_t n = strlen(s), o = 0;
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_dec((const unsigned char *)s + i, n - i, &cp);
        if (l == 0 || cp >= 324 || c2b[cp] < 0) {
            memcpy(r, s, n);
            *outn = (uint32_t)n;
            return r;
        }
        r[o++] = (char)c2b[cp];
        i += (size_t)l;
    }
    *outn = (uint32_t)o;
    return r;
}

void eng_tok_free(struct eng_tok *t)
{
    if (!t)
        return;
    for (int32_t i = 0; i < t->n_vocab; i++) { /* str or raw is NULL when creation ran out */
        free(t->str ? t->str[i] : NULL);
        free(t->raw ? t->raw[i] : NULL);
    }
    for (int32_t i = 0; i < t->n_merges; i++)
        free(t->merges[i]);
    for (int32_t i = 0; i < t->n_added; i++)
        free((char *)t->added[i].content);
    free(t->str);
    free(t->raw);
    free(t->rawn);
    free(t->bt);
    free(t->mt);
    free(t->merges);
    free(t->added);
    free(t->regex);
    if (t->re)
        pcre2_code_free(t->re);
    free(t);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

int eng_tok_create(const struct eng_tok_spec *s, struct eng_tok **out, char *err)
{
    uint32_t b2c[256];
    int16_t c2b[324];
    int rc = 0;
    struct eng_tok *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    byte_map(b2c, c2b);
    int32_t nv = s->n_vocab;
    for (int32_t i = 0; i < s->n_added; i++)
        if (s->added[i].id >= nv)
            nv = s->added[i].id + 1;
    if (nv <= 0 || nv > (1 << 24)) {
        rc = eng_fail(err, ENG_ETOKENIZER, "vocabulary size %d out of range", (int)nv);
        goto fail;
    }
    t->n_vocab = nv;
    t->str = calloc((size_t)nv, sizeof(*t->str));
    t->raw = calloc((size_t)nv, sizeof(*t->raw));
    t->rawn = calloc((size_t)nv, sizeof(*t->rawn));
    t->bcap = pow2_at_least(2 * (size_t)nv);
    t->bt = calloc(t->bcap, sizeof(*t->bt));
    t->mcap = pow2_at_least(2 * (size_t)s->n_merges + 2);
    t->mt = calloc(t->mcap, sizeof(*t->mt));
    t->merges = calloc((size_t)s->n_merges + 1, sizeof(*t->merges));
    t->added = calloc((size_t)s->n_added + 1, sizeof(*t->added));
    if (!t->str || !t->raw || !t->rawn || !t->bt || !t->mt || !t->merges || !t->added) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (!s->vocab[i])
            continue;
        t->str[i] = strdup(s->vocab[i]);
        t->raw[i] = to_raw(s->vocab[i], c2b, &t->rawn[i]);
        if (!t->str[i] || !t->raw[i]) {
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto fail;
        }
        binsert(t, t->raw[i], t->rawn[i], i);
    }
    for (int32_t i = 0; i < s->n_added; i++) {
        const struct eng_tok_added *a = &s->added[i];
        if (a->id < 0 || !a->content || !a->content[0]) {
            rc = eng_fail(err, ENG_ETOKENIZER, "added token %d: empty content or negative id",
                          (int)i);
            goto fail;
        }
        t->added[i] = *a;
        t->added[i].content = strdup(a->content);
        t->n_added = i + 1;
        if (!t->added[i].content) {
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto fail;
        }
        if (!t->str[a->id]) {
            t->str[a->id] = strdup(a->content);
            t->raw[a->id] = strdup(a->content);
            t->rawn[a->id] = (uint32_t)strlen(a->content);
            if (!t->str[a->id] || !t->raw[a->id]) {
                rc = eng_fail(err, ENG_ENOMEM, "out of memory");
                goto fail;
            }
        }
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = bfind(t, &c, 1);
    }
    for (int32_t r = 0; r < s->n_merges; r++) {
        const char *m = s->merges[r], *sp = m ? strchr(m, ' ') : NULL;
        if (!sp || sp == m || !sp[1] || strchr(sp + 1, ' ')) {
            rc = eng_fail(err, ENG_ETOKENIZER, "merge %d ('%s') is not \"left right\"", (int)r,
                          m ? m : "(null)");
            goto fail;
        }
        char *l = strndup(m, (size_t)(sp - m));
        uint32_t ln, rn, cn;
        char *lr = l ? to_raw(l, c2b, &ln) : NULL, *rr = to_raw(sp + 1, c2b, &rn);
        free(l);
        char *cat = lr && rr ? malloc(ln + rn + 1) : NULL;
        int32_t a = -1, b = -1, id = -1;
        if (cat) {
            memcpy(cat, lr, ln);
            memcpy(cat + ln, rr, rn);
            cn = ln + rn;
            a = bfind(t, lr, ln);
            b = bfind(t, rr, rn);
            id = bfind(t, cat, cn);
        }
        free(lr);
        free(rr);
        free(cat);
        if (!cat && (a < 0 || b < 0 || id < 0)) {
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto fail;
        }
        if (a < 0 || b < 0 || id < 0) {
            rc = eng_fail(err, ENG_ETOKENIZER,
                          "merge %d ('%s') refers to a token that is not "
                          "in the vocabulary",
                          (int)r, m);
            goto fail;
        }
        t->merges[r] = strdup(m);
        t->n_merges = r + 1;
        if (!t->merges[r]) {
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto fail;
        }
        uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        size_t msk = t->mcap - 1;
        for (size_t i = mix(k) & msk;; i = (i + 1) & msk) {
            if (!t->mt[i].k) {
                t->mt[i] = (struct mkey){k, r, id};
                break;
            }
            if (t->mt[i].k == k)
                break; /* duplicate merge: the lower rank stays */
        }
    }
    t->nfc = s->nfc;
    t->prefix_space = s->add_prefix_space;
    t->regex = strdup(s->regex ? s->regex : ENG_TOK_GPT2_REGEX);
    if (!t->regex) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)t->regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec,
                          &eo, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        rc = eng_fail(err, ENG_ETOKENIZER,
                      "pre-tokenizer regex does not compile at offset %zu: "
                      "%s",
                      (size_t)eo, (const char *)msg);
        goto fail;
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    *out = t;
    return 0;
fail:
    eng_tok_free(t);
    return rc;
}

/* ------------------------------------------------------------------------------- encoding */

struct ids {
    int32_t *v;
    size_t n, cap;
};

static int push(struct ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 64;
        int32_t *p = realloc(a->v, nc * sizeof(*p));
        if (!p)
            return ENG_ENOMEM;
        a->v = p;
        a->cap = nc;
    }
    a->v[a->n++] = id;
    return 0;
}

/* A candidate merge of the symbols at pos and its right neighbour. */
struct cand {
    int32_t rank, id;
    uint32_t pos;
};

static int cand_less(const struct cand *a, const struct cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct cand *h, size_t *n, struct cand c)
{
    size_t i = (*n)++;
    while (i > 0 && cand_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static struct cand heap_pop(struct cand *h, size_t *n)
{
    struct cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (r < *n && cand_less(&h[r], best))
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

/* Scratch for BPE over one pre-token of up to cap bytes. */
struct bpe_scratch {
    int32_t *sym;       /* [cap] token id of the symbol starting here (-1: merged away) */
    int32_t *nxt, *prv; /* [cap] linked list of live symbols */
    struct cand *heap;  /* [3 * cap] */
};

static void try_pair(const struct eng_tok *t, struct bpe_scratch *s, size_t *nh, int32_t pos)
{
    int32_t r = s->nxt[pos];
    if (r < 0)
        return;
    const struct mkey *m = mfind(t, s->sym[pos], s->sym[r]);
    if (m)
        heap_push(s->heap, nh, (struct cand){m->rank, m->id, (uint32_t)pos});
}

/* BPE over the bytes of one pre-token, as HF's Word::merge_all: repeatedly apply the
 * lowest-ranked merge present (leftmost on ties), O(n log n) with a heap. */
static int bpe_piece(const struct eng_tok *t, const unsigned char *p, size_t n,
                     struct bpe_scratch *s, struct ids *out)
{
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        s->sym[i] = t->byte_id[p[i]];
        if (s->sym[i] < 0)
            return ENG_ETOKENIZER;
        s->nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        s->prv[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(t, s, &nh, (int32_t)i);
    while (nh > 0) {
        struct cand c = heap_pop(s->heap, &nh);
        int32_t a = (int32_t)c.pos, b = s->nxt[a];
        if (s->sym[a] < 0 || b < 0)
            continue; /* stale: a was merged into its left neighbour, or has no right one */
        const struct mkey *m = mfind(t, s->sym[a], s->sym[b]);
        if (!m || m->id != c.id || m->rank != c.rank)
            continue; /* stale: a or b changed since this candidate was queued */
        s->sym[a] = c.id;
        s->sym[b] = -1;
        s->nxt[a] = s->nxt[b];
        if (s->nxt[b] >= 0)
            s->prv[s->nxt[b]] = a;
        if (s->prv[a] >= 0)
            try_pair(t, s, &nh, s->prv[a]);
        try_pair(t, s, &nh, a);
    }
    for (int32_t i = 0; i >= 0 && (size_t)i < n; i = s->nxt[i])
        if (push(out, s->sym[i]))
            return ENG_ENOMEM;
    return 0;
}

/* Pre-tokenize and BPE one segment without added tokens. */
/* The match again without PCRE2's default limits, for a text that exhausts them (a whitespace
 * run of megabytes backtracks once per byte): interpreted, since the JIT's stack is fixed, and
 * rare enough that the context is made per call. Returns pcre2_match's result. */
static int match_unlimited(const struct eng_tok *t, const char *s, size_t n, size_t off,
                           pcre2_match_data *md)
{
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!mc)
        return PCRE2_ERROR_NOMEMORY;
    pcre2_set_match_limit(mc, UINT32_MAX);
    pcre2_set_depth_limit(mc, UINT32_MAX);
    int r = pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, mc);
    pcre2_match_context_free(mc);
    return r;
}

static int encode_segment(const struct eng_tok *t, const char *s, size_t n, struct ids *out)
{
    char *norm = NULL, *pre = NULL;
    struct bpe_scratch sc = {0};
    int rc = 0;
    if (n == 0)
        return 0;
    if (t->nfc) {
        utf8proc_uint8_t *d = NULL;
        utf8proc_ssize_t l = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &d,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (l < 0)
            return ENG_ETOKENIZER;
        norm = (char *)d;
        s = norm;
        n = (size_t)l;
    }
    if (t->prefix_space && s[0] != ' ') {
        pre = malloc(n + 1);
        if (!pre) {
            rc = ENG_ENOMEM;
            goto out;
        }
        pre[0] = ' ';
        memcpy(pre + 1, s, n);
        s = pre;
        n++;
    }
    sc.sym = malloc(n * sizeof(*sc.sym));
    sc.nxt = malloc(n * sizeof(*sc.nxt));
    sc.prv = malloc(n * sizeof(*sc.prv));
    sc.heap = malloc(3 * n * sizeof(*sc.heap));
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!sc.sym || !sc.nxt || !sc.prv || !sc.heap || !md) {
        pcre2_match_data_free(md);
        rc = ENG_ENOMEM;
        goto out;
    }
    size_t off = 0;
    while (off < n && rc == 0) {
        int r = pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r < 0 && r != PCRE2_ERROR_NOMATCH)
            r = match_unlimited(t, s, n, off, md);
        if (r == PCRE2_ERROR_NOMATCH) { /* the tail is one piece (Isolated keeps gaps) */
            rc = bpe_piece(t, (const unsigned char *)s + off, n - off, &sc, out);
            break;
        }
        if (r < 0) {
            rc = ENG_ERANGE;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > off)
            rc = bpe_piece(t, (const unsigned char *)s + off, ov[0] - off, &sc, out);
        if (rc == 0 && ov[1] > ov[0])
            rc = bpe_piece(t, (const unsigned char *)s + ov[0], ov[1] - ov[0], &sc, out);
        if (ov[1] > ov[0]) {
            off = ov[1];
        } else { /* empty match: step one character */
            uint32_t cp;
            int l = utf8_dec((const unsigned char *)s + ov[0], n - ov[0], &cp);
            rc = rc ? rc
                    : bpe_piece(t, (const unsigned char *)s + ov[0], l ? (size_t)l : 1, &sc, out);
            off = ov[0] + (l ? (size_t)l : 1);
        }
    }
    pcre2_match_data_free(md);
out:
    free(sc.sym);
    free(sc.nxt);
    free(sc.prv);
    free(sc.heap);
    free(pre);
    free(norm);
    return rc;
}

int eng_tok_encode(const struct eng_tok *t, const char *text, size_t len, int32_t **ids, size_t *n)
{
    struct ids out = {0};
    int rc = 0;
    *ids = NULL;
    *n = 0;
    /* HF strings are valid UTF-8; reject anything else up front. */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = utf8_dec((const unsigned char *)text + i, len - i, &cp);
        if (!l)
            return ENG_ETOKENIZER;
        i += (size_t)l;
    }
    size_t seg = 0, i = 0;
    while (i < len && rc == 0) {
        int32_t best = -1;
        size_t bl = 0;
        for (int32_t a = 0; a < t->n_added; a++) {
            size_t l = strlen(t->added[a].content);
            if (l > bl && l <= len - i && !memcmp(text + i, t->added[a].content, l)) {
                best = a;
                bl = l;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        rc = encode_segment(t, text + seg, i - seg, &out);
        if (rc == 0)
            rc = push(&out, t->added[best].id);
        i += bl;
        seg = i;
    }
    if (rc == 0)
        rc = encode_segment(t, text + seg, len - seg, &out);
    if (rc) {
        free(out.v);
        return rc;
    }
    if (!out.v)
        out.v = malloc(sizeof(int32_t)); /* a valid pointer for zero ids */
    if (!out.v)
        return ENG_ENOMEM;
    *ids = out.v;
    *n = out.n;
    return 0;
}

/* ------------------------------------------------------------------------------- decoding */

struct buf {
    char *p;
    size_t n, cap;
};

static int put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q)
            return ENG_ENOMEM;
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Append bytes as UTF-8, each maximal invalid subpart replaced by U+FFFD (from_utf8_lossy). */
static int put_lossy(struct buf *b, const unsigned char *s, size_t n)
{
    static const char rep[] = "\xef\xbf\xbd";
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            if (put(b, s + i, 1))
                return ENG_ENOMEM;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 3;
            if (c == 0xe0)
                lo = 0xa0;
            if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 4;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f;
        } else {
            if (put(b, rep, 3))
                return ENG_ENOMEM;
            i++;
            continue;
        }
        size_t j = 1;
        if (i + 1 < n && s[i + 1] >= lo && s[i + 1] <= hi) {
            j = 2;
            while (j < need && i + j < n && s[i + j] >= 0x80 && s[i + j] <= 0xbf)
                j++;
        }
        if (j == need) {
            if (put(b, s + i, need))
                return ENG_ENOMEM;
        } else if (put(b, rep, 3)) {
            return ENG_ENOMEM;
        }
        i += j;
    }
    return 0;
}

static int is_special(const struct eng_tok *t, int32_t id)
{
    for (int32_t a = 0; a < t->n_added; a++)
        if (t->added[a].id == id)
            return t->added[a].special;
    return 0;
}

int eng_tok_decode(const struct eng_tok *t, const int32_t *ids, size_t n, int skip_special,
                   char **out, size_t *len)
{
    struct buf raw = {0}, res = {0};
    int rc = 0;
    *out = NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->raw[ids[i]]) {
            rc = ENG_EINVAL;
            break;
        }
        if (skip_special && is_special(t, ids[i]))
            continue;
        rc = put(&raw, t->raw[ids[i]], t->rawn[ids[i]]);
    }
    if (rc == 0)
        rc = put_lossy(&res, (const unsigned char *)raw.p, raw.n);
    if (rc == 0 && !res.p)
        rc = put(&res, "", 0);
    free(raw.p);
    if (rc) {
        free(res.p);
        return rc;
    }
    *out = res.p;
    if (len)
        *len = res.n;
    return 0;
}

/* ------------------------------------------------------------------------------- accessors */

int32_t eng_tok_vocab_size(const struct eng_tok *t)
{
    return t->n_vocab;
}
const char *eng_tok_token(const struct eng_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->str[id] : NULL;
}
int32_t eng_tok_merge_count(const struct eng_tok *t)
{
    return t->n_merges;
}
const char *eng_tok_merge(const struct eng_tok *t, int32_t r)
{
    return r >= 0 && r < t->n_merges ? t->merges[r] : NULL;
}
int32_t eng_tok_added_count(const struct eng_tok *t)
{
    return t->n_added;
}
const struct eng_tok_added *eng_tok_added_at(const struct eng_tok *t, int32_t i)
{
    return i >= 0 && i < t->n_added ? &t->added[i] : NULL;
}
const char *eng_tok_regex(const struct eng_tok *t)
{
    return t->regex;
}
int eng_tok_nfc(const struct eng_tok *t)
{
    return t->nfc;
}
int eng_tok_add_prefix_space(const struct eng_tok *t)
{
    return t->prefix_space;
}

int32_t eng_tok_find(const struct eng_tok *t, const char *text)
{
    for (int32_t a = 0; a < t->n_added; a++)
        if (!strcmp(t->added[a].content, text))
            return t->added[a].id;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->str[i] && !strcmp(t->str[i], text))
            return i;
    return -1;
}
