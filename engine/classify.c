/*
 * engine/classify.c — verbalizer classification (see classify.h).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/classify.h"
#include "engine/err.h"
#include "engine/hfconfig.h"

struct eng_classifier {
    struct eng_model *m;       /* borrowed */
    const struct eng_tok *tok; /* borrowed */
    char *pre, *post;          /* template around "{text}" (owned) */
    int n;
    int32_t *rows; /* [n] first token of each label word */
    struct eng_ctx *ctx;
};

void eng_classifier_free(struct eng_classifier *c)
{
    if (!c)
        return;
    free(c->pre);
    free(c->post);
    free(c->rows);
    eng_ctx_free(c->ctx);
    free(c);
}

int eng_classifier_create(struct eng_model *m, const struct eng_tok *tok, const char *template,
                          const char *const *words, int n, struct eng_classifier **out, char *err)
{
    int rc;
    struct eng_classifier *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    c->m = m;
    c->tok = tok;
    c->n = n;
    if (!template || n < 2) {
        rc = eng_fail(err, ENG_EINVAL, "classification needs a template and at least 2 labels");
        goto fail;
    }
    const char *ph = strstr(template, "{text}");
    if (!ph) {
        rc = eng_fail(err, ENG_EINVAL, "the template has no {text} placeholder");
        goto fail;
    }
    if (eng_template_is_pair(template)) { /* one text in, so {text_b} would stay as written */
        rc = eng_fail(err, ENG_EINVAL,
                      "the template has a {text_b} slot (a sentence-pair task): classify the "
                      "filled prompt with --template '{text}', or serve it (/v1/classify "
                      "text_pair)");
        goto fail;
    }
    c->pre = strndup(template, (size_t)(ph - template));
    c->post = strdup(ph + 6);
    c->rows = calloc((size_t)n, sizeof(*c->rows));
    if (!c->pre || !c->post || !c->rows) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        int32_t *ids = NULL;
        size_t k = 0;
        rc = eng_tok_encode(tok, words[i], strlen(words[i]), &ids, &k);
        if (rc || k == 0) {
            free(ids);
            rc = eng_fail(err, ENG_EINVAL, "label word '%s' has no tokens", words[i]);
            goto fail;
        }
        c->rows[i] = ids[0];
        free(ids);
        if (c->rows[i] >= eng_model_config(m)->vocab) {
            rc = eng_fail(err, ENG_EINVAL,
                          "label word '%s' maps to token %d, outside the "
                          "model's vocabulary",
                          words[i], (int)c->rows[i]);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (c->rows[j] == c->rows[i]) {
                rc = eng_fail(err, ENG_EINVAL,
                              "label words '%s' and '%s' start with the same "
                              "token %d",
                              words[j], words[i], (int)c->rows[i]);
                goto fail;
            }
    }
    if ((rc = eng_ctx_create(m, 2048, &c->ctx))) { /* 2048 positions: 4x the task max length */
        snprintf(err, ENG_ERR_LEN, "%s", eng_model_errmsg(m));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    eng_classifier_free(c);
    return rc;
}

char *eng_template_fill(const char *tpl, const char *a, size_t alen, const char *b, size_t blen)
{
    size_t na = 0, nb = 0;
    for (const char *p = tpl; (p = strchr(p, '{')); p++) {
        na += !strncmp(p, "{text}", 6);
        nb += !strncmp(p, "{text_b}", 8);
    }
    size_t o = 0;
    char *s = malloc(strlen(tpl) + na * alen + nb * (b ? blen : 0) + 1);
    if (!s)
        return NULL;
    for (const char *p = tpl; *p;) {
        if (!strncmp(p, "{text_b}", 8)) {
            if (b)
                memcpy(s + o, b, blen);
            o += b ? blen : 0;
            p += 8;
        } else if (!strncmp(p, "{text}", 6)) {
            memcpy(s + o, a, alen);
            o += alen;
            p += 6;
        } else {
            s[o++] = *p++;
        }
    }
    s[o] = 0;
    return s;
}

int eng_template_is_pair(const char *tpl)
{
    return tpl && strstr(tpl, "{text_b}") != NULL;
}

size_t eng_utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

size_t eng_utf8_cut_left(const char *s, size_t total, size_t n)
{
    while (n > 0 && n < total && ((unsigned char)s[total - n] & 0xC0) == 0x80)
        n--;
    return n;
}

int eng_fit_texts(const char *a, size_t *alen, const char *b, size_t *blen, size_t room, int left,
                  eng_fit_encode_fn encode, void *arg, int32_t **ids, size_t *n)
{
    size_t atot = *alen, btot = b ? *blen : 0, al = atot, bl = btot;
    int rc;
    *ids = NULL;
    *n = 0;
    for (int iter = 0; iter < 128; iter++) {
        free(*ids);
        *ids = NULL;
        if ((rc = encode(arg, left ? a + (atot - al) : a, al, b && left ? b + (btot - bl) : b, bl,
                         ids, n)))
            return rc;
        if (*n <= room || (al == 0 && bl == 0))
            break;
        size_t over = *n - room, len = al ? al : bl, cut = over * len / (*n ? *n : 1) + 1;
        size_t keep = len > cut ? len - cut : 0;
        if (al)
            al = left ? eng_utf8_cut_left(a, atot, keep) : eng_utf8_cut(a, keep);
        else
            bl = left ? eng_utf8_cut_left(b, btot, keep) : eng_utf8_cut(b, keep);
    }
    if (*n > room) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return ENG_ERANGE;
    }
    *alen = al;
    if (b)
        *blen = bl;
    return 0;
}

int eng_label_scores(const float *lg, int n, float *probs)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[b])
            b = i;
    double mx = lg[b], sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)lg[i] - mx);
    for (int i = 0; i < n; i++)
        probs[i] = (float)(exp((double)lg[i] - mx) / sum);
    return b;
}

int eng_classify(struct eng_classifier *c, const char *text, float *probs, int *best, char *err)
{
    size_t lp = strlen(c->pre), lt = strlen(text), lq = strlen(c->post), n = 0;
    char *s = malloc(lp + lt + lq + 1);
    int32_t *ids = NULL;
    float *lg = malloc((size_t)c->n * sizeof(float));
    int rc;
    if (!s || !lg) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(s, c->pre, lp);
    memcpy(s + lp, text, lt);
    memcpy(s + lp + lt, c->post, lq + 1);
    if ((rc = eng_tok_encode(c->tok, s, lp + lt + lq, &ids, &n))) {
        rc = eng_fail(err, rc, "the input is not valid UTF-8");
        goto out;
    }
    if (n == 0 || (rc = eng_ctx_score_rows(c->ctx, ids, (int)n, c->rows, c->n, lg))) {
        rc = eng_fail(err, n == 0 ? ENG_EINVAL : rc, "%s",
                      n == 0 ? "empty input" : eng_ctx_errmsg(c->ctx));
        goto out;
    }
    *best = eng_label_scores(lg, c->n, probs);
    rc = 0;
out:
    free(s);
    free(ids);
    free(lg);
    return rc;
}
