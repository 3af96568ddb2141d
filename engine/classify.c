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
