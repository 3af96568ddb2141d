/*
 * train/metrics.c — ROUGE-1/2/L/Lsum and BLEU (see metrics.h for the exact definitions).
 * Token lists are small (summaries), so n-gram matching is done by direct comparison.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "train/metrics.h"

/* A token list: tokens point into one owned buffer. */
struct toks {
    char *buf;
    char **t;
    int n;
};

static void toks_free(struct toks *k)
{
    free(k->buf);
    free(k->t);
    k->buf = NULL;
    k->t = NULL;
    k->n = 0;
}

/* Split s (owned by k afterwards) on runs of characters for which sep() is true. */
static int split(struct toks *k, char *s, int (*sep)(int))
{
    size_t n = strlen(s), cnt = 0;
    k->buf = s;
    k->t = malloc((n / 2 + 2) * sizeof(char *));
    k->n = 0;
    if (!k->t)
        return ENG_ENOMEM;
    for (size_t i = 0; i < n;) {
        while (i < n && sep((unsigned char)s[i]))
            s[i++] = 0;
        if (i >= n)
            break;
        k->t[cnt++] = s + i;
        while (i < n && !sep((unsigned char)s[i]))
            i++;
    }
    k->n = (int)cnt;
    return 0;
}

static int rouge_sep(int c)
{
    return !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
}
static int space_sep(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* rouge_score's tokenizer: lower-case, non-[a-z0-9] -> separator. */
static int rouge_tok(struct toks *k, const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (!c)
        return ENG_ENOMEM;
    for (size_t i = 0; i < len; i++)
        c[i] = (char)tolower((unsigned char)s[i]);
    c[len] = 0;
    return split(k, c, rouge_sep);
}

static int ngram_eq(char *const *a, char *const *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i], b[i]))
            return 0;
    return 1;
}

/* Clipped n-gram matches of p against r; *np, *nr n-gram totals. */
static long long ngram_match(const struct toks *p, const struct toks *r, int n, long long *np,
                             long long *nr)
{
    long long m = 0;
    int cp = p->n - n + 1, cr = r->n - n + 1;
    *np = cp > 0 ? cp : 0;
    *nr = cr > 0 ? cr : 0;
    for (int i = 0; i < cp; i++) {
        int seen = 0, a = 0, b = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = ngram_eq(p->t + i, p->t + j, n);
        if (seen)
            continue;
        for (int j = i; j < cp; j++)
            a += ngram_eq(p->t + i, p->t + j, n);
        for (int j = 0; j < cr; j++)
            b += ngram_eq(p->t + i, r->t + j, n);
        m += a < b ? a : b;
    }
    return m;
}

static double fmeasure(double hits, double np, double nr)
{
    if (np <= 0 || nr <= 0 || hits <= 0)
        return 0.0;
    double p = hits / np, r = hits / nr;
    return 2 * p * r / (p + r);
}

/* LCS table [(na+1)*(nb+1)] of a (rows) vs b (cols). */
static int *lcs_table(char *const *a, int na, char *const *b, int nb)
{
    int *t = calloc((size_t)(na + 1) * (nb + 1), sizeof(int));
    if (!t)
        return NULL;
    for (int i = 1; i <= na; i++)
        for (int j = 1; j <= nb; j++) {
            int *c = t + (size_t)i * (nb + 1) + j;
            if (!strcmp(a[i - 1], b[j - 1]))
                *c = t[(size_t)(i - 1) * (nb + 1) + j - 1] + 1;
            else {
                int u = t[(size_t)(i - 1) * (nb + 1) + j], l = c[-1];
                *c = u > l ? u : l;
            }
        }
    return t;
}

/* Mark in used[na] the indices of a on one LCS with b (rouge_score's _backtrack_norec). */
static int lcs_mark(char *const *a, int na, char *const *b, int nb, char *used)
{
    int *t = lcs_table(a, na, b, nb);
    if (!t)
        return ENG_ENOMEM;
    int i = na, j = nb;
    while (i > 0 && j > 0) {
        if (!strcmp(b[j - 1], a[i - 1])) {
            used[i - 1] = 1;
            i--;
            j--;
        } else if (t[(size_t)i * (nb + 1) + j - 1] > t[(size_t)(i - 1) * (nb + 1) + j]) {
            j--;
        } else {
            i--;
        }
    }
    free(t);
    return 0;
}

/* Sentences (split on '\n') as token lists. */
static int sentences(const char *s, struct toks **out, int *n)
{
    int cap = 1, k = 0, rc = 0;
    for (const char *p = s; *p; p++)
        cap += *p == '\n';
    struct toks *v = calloc((size_t)cap, sizeof(*v));
    if (!v)
        return ENG_ENOMEM;
    for (const char *p = s;;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if ((rc = rouge_tok(&v[k], p, len)))
            break;
        if (v[k].n > 0)
            k++;
        else
            toks_free(&v[k]);
        if (!e)
            break;
        p = e + 1;
    }
    *out = v;
    *n = k;
    return rc;
}

/* Index of w in words[*nw] (appended when absent and add is set), or -1. */
static int word_id(const char **words, int *nw, const char *w, int add)
{
    for (int i = 0; i < *nw; i++)
        if (!strcmp(words[i], w))
            return i;
    if (!add)
        return -1;
    words[*nw] = w;
    return (*nw)++;
}

/* ROUGE-Lsum (rouge_score _summary_level_lcs): for each reference sentence, the union of its
 * LCS with every candidate sentence; each token of that union is a hit while both the
 * candidate's and the reference's remaining counts of it are positive (then both decrease). */
static int rouge_lsum(const char *pred, const char *ref, double *f)
{
    struct toks *ps = NULL, *rs = NULL;
    const char **words = NULL;
    int *cc = NULL, *cr = NULL, np = 0, nr = 0, nw = 0, rc;
    long long m = 0, n = 0, hits = 0;
    *f = 0.0;
    if ((rc = sentences(pred, &ps, &np)) || (rc = sentences(ref, &rs, &nr)))
        goto out;
    for (int i = 0; i < nr; i++)
        m += rs[i].n;
    for (int i = 0; i < np; i++)
        n += ps[i].n;
    if (!m || !n)
        goto out;
    words = malloc((size_t)(m + n) * sizeof(*words));
    cc = calloc((size_t)(m + n), sizeof(int));
    cr = calloc((size_t)(m + n), sizeof(int));
    if (!words || !cc || !cr) {
        rc = ENG_ENOMEM;
        goto out;
    }
    for (int i = 0; i < np; i++)
        for (int j = 0; j < ps[i].n; j++)
            cc[word_id(words, &nw, ps[i].t[j], 1)]++;
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < rs[i].n; j++)
            cr[word_id(words, &nw, rs[i].t[j], 1)]++;
    for (int i = 0; i < nr && !rc; i++) {
        char *used = calloc((size_t)rs[i].n + 1, 1);
        if (!used) {
            rc = ENG_ENOMEM;
            break;
        }
        for (int j = 0; j < np && !rc; j++)
            rc = lcs_mark(rs[i].t, rs[i].n, ps[j].t, ps[j].n, used);
        for (int k = 0; k < rs[i].n && !rc; k++) {
            int w = used[k] ? word_id(words, &nw, rs[i].t[k], 0) : -1;
            if (w >= 0 && cc[w] > 0 && cr[w] > 0) {
                hits++;
                cc[w]--;
                cr[w]--;
            }
        }
        free(used);
    }
    *f = fmeasure((double)hits, (double)n, (double)m);
out:
    for (int i = 0; ps && i < np; i++)
        toks_free(&ps[i]);
    for (int i = 0; rs && i < nr; i++)
        toks_free(&rs[i]);
    free(ps);
    free(rs);
    free(words);
    free(cc);
    free(cr);
    return rc;
}

int trn_rouge_score(const char *pred, const char *ref, struct trn_rouge *out)
{
    struct toks p = {0}, r = {0};
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = rouge_tok(&p, pred, strlen(pred))) || (rc = rouge_tok(&r, ref, strlen(ref))))
        goto out;
    long long np, nr, m;
    m = ngram_match(&p, &r, 1, &np, &nr);
    out->r1 = fmeasure((double)m, (double)np, (double)nr);
    m = ngram_match(&p, &r, 2, &np, &nr);
    out->r2 = fmeasure((double)m, (double)np, (double)nr);
    int *t = lcs_table(r.t, r.n, p.t, p.n);
    if (!t) {
        rc = ENG_ENOMEM;
        goto out;
    }
    out->rl = fmeasure(t[(size_t)r.n * (p.n + 1) + p.n], p.n, r.n);
    free(t);
    rc = rouge_lsum(pred, ref, &out->rlsum);
out:
    toks_free(&p);
    toks_free(&r);
    return rc;
}

/* ------------------------------------------------------------------ BLEU */

static int in13a_class(int c)
{
    return (c >= 0x20 && c <= 0x26) || (c >= 0x28 && c <= 0x2B) || c == 0x2F ||
           (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

static int isdig(int c)
{
    return c >= '0' && c <= '9';
}

/* replace all occurrences of a by b in s (len shrinks or stays). */
static void replace_all(char *s, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = s, *o = s;
    while (*p) {
        if (!strncmp(p, a, la)) {
            memcpy(o, b, lb);
            o += lb;
            p += la;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
}

char *trn_bleu_tok13a(const char *line)
{
    size_t n = strlen(line);
    char *s = malloc(n + 3), *a = NULL, *b = NULL;
    if (!s)
        return NULL;
    s[0] = ' ';
    memcpy(s + 1, line, n);
    s[n + 1] = ' ';
    s[n + 2] = 0;
    replace_all(s, "<skipped>", "");
    replace_all(s, "-\n", "");
    for (char *p = s; *p; p++)
        if (*p == '\n')
            *p = ' ';
    if (strchr(s, '&')) {
        replace_all(s, "&quot;", "\"");
        replace_all(s, "&amp;", "&");
        replace_all(s, "&lt;", "<");
        replace_all(s, "&gt;", ">");
    }
    n = strlen(s);
    a = malloc(3 * n + 1);
    b = malloc(3 * (3 * n) + 1);
    if (!a || !b)
        goto fail;
    /* 1: punctuation and symbols -> " c " */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in13a_class((unsigned char)s[i])) {
            a[o++] = ' ';
            a[o++] = s[i];
            a[o++] = ' ';
        } else {
            a[o++] = s[i];
        }
    }
    a[o] = 0;
    /* 2: ([^0-9])([.,]) -> "\1 \2 " */
    n = o;
    o = 0;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && !isdig((unsigned char)a[i]) && (a[i + 1] == '.' || a[i + 1] == ',')) {
            b[o++] = a[i];
            b[o++] = ' ';
            b[o++] = a[i + 1];
            b[o++] = ' ';
            i += 2;
        } else {
            b[o++] = a[i++];
        }
    }
    b[o] = 0;
    /* 3: ([.,])([^0-9]) -> " \1 \2" */
    n = o;
    char *c = realloc(a, 3 * n + 1);
    if (!c)
        goto fail;
    a = c;
    o = 0;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && (b[i] == '.' || b[i] == ',') && !isdig((unsigned char)b[i + 1])) {
            a[o++] = ' ';
            a[o++] = b[i];
            a[o++] = ' ';
            a[o++] = b[i + 1];
            i += 2;
        } else {
            a[o++] = b[i++];
        }
    }
    a[o] = 0;
    /* 4: ([0-9])(-) -> "\1 \2 " */
    n = o;
    c = realloc(b, 3 * n + 1);
    if (!c)
        goto fail;
    b = c;
    o = 0;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && isdig((unsigned char)a[i]) && a[i + 1] == '-') {
            b[o++] = a[i];
            b[o++] = ' ';
            b[o++] = '-';
            b[o++] = ' ';
            i += 2;
        } else {
            b[o++] = a[i++];
        }
    }
    b[o] = 0;
    /* collapse whitespace (into a buffer of b's size) */
    char *s2 = malloc(strlen(b) + 1);
    if (!s2)
        goto fail;
    free(s);
    s = s2;
    o = 0;
    for (size_t i = 0; b[i];) {
        while (b[i] && space_sep((unsigned char)b[i]))
            i++;
        if (!b[i])
            break;
        if (o)
            s2[o++] = ' ';
        while (b[i] && !space_sep((unsigned char)b[i]))
            s2[o++] = b[i++];
    }
    free(a);
    free(b);
    a = malloc(o + 1);
    if (!a) {
        free(s);
        return NULL;
    }
    memcpy(a, s, o);
    a[o] = 0;
    free(s);
    return a;
fail:
    free(s);
    free(a);
    free(b);
    return NULL;
}

int trn_bleu_add(struct trn_bleu_stats *st, const char *pred, const char *ref)
{
    char *tp = trn_bleu_tok13a(pred), *tr = trn_bleu_tok13a(ref);
    struct toks p = {0}, r = {0};
    int rc = 0;
    if (!tp || !tr) {
        free(tp);
        free(tr);
        return ENG_ENOMEM;
    }
    if ((rc = split(&p, tp, space_sep))) {
        free(tr);
        goto out;
    }
    if ((rc = split(&r, tr, space_sep)))
        goto out;
    st->sys_len += p.n;
    st->ref_len += r.n;
    for (int n = 1; n <= 4; n++) {
        long long np, nr;
        st->correct[n - 1] += ngram_match(&p, &r, n, &np, &nr);
        st->total[n - 1] += np;
    }
out:
    toks_free(&p);
    toks_free(&r);
    return rc;
}

double trn_bleu_score(const struct trn_bleu_stats *s, int effective_order)
{
    double prec[4] = {0, 0, 0, 0}, smooth = 1.0;
    int eff = 4, any = 0;
    if (s->sys_len == 0)
        return 0.0;
    for (int n = 0; n < 4; n++)
        any |= s->correct[n] > 0;
    if (!any)
        return 0.0;
    for (int n = 1; n <= 4; n++) {
        if (s->total[n - 1] == 0)
            break;
        if (effective_order)
            eff = n;
        if (s->correct[n - 1] == 0) {
            smooth *= 2;
            prec[n - 1] = 100.0 / (smooth * (double)s->total[n - 1]);
        } else {
            prec[n - 1] = 100.0 * (double)s->correct[n - 1] / (double)s->total[n - 1];
        }
    }
    double bp = 1.0;
    if (s->sys_len < s->ref_len)
        bp = exp(1.0 - (double)s->ref_len / (double)s->sys_len);
    double lsum = 0.0;
    for (int n = 0; n < eff; n++)
        lsum += prec[n] > 0 ? log(prec[n]) : -9999999999.0;
    return bp * exp(lsum / eff);
}
