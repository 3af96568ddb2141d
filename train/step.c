/*
 * train/step.c — losses of one BitDistill micro-step and the AdamW optimizer (step.h).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "train/step.h"

/* Layers the relation loss reads: [lo, hi). */
static void ad_layers(const struct trn_loss_cfg *lc, int L, int *lo, int *hi)
{
    if (lc->layer == -2) {
        *lo = 0;
        *hi = L;
    } else {
        *lo = lc->layer < 0 ? L - 1 : lc->layer;
        *hi = *lo + 1;
    }
}

int trn_step_losses(struct trn_model *student, struct trn_model *teacher, const struct trn_batch *b,
                    const struct trn_loss_cfg *lc, int grad, float grad_scale,
                    struct trn_losses *out, char *err)
{
    const struct eng_config *sc = trn_model_config(student);
    int N = b->B * b->T, V = sc->vocab, rc, lo = 0, hi = 0;
    int use_t = teacher && (lc->lambda > 0 || lc->gamma > 0);
    float *scratch = NULL;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < N; i++)
        if (b->target[i] >= V)
            return eng_fail(err, ENG_EINVAL, "target id %d outside the vocabulary [0, %d)",
                            (int)b->target[i], V);
    if (use_t) {
        const struct eng_config *tc = trn_model_config(teacher);
        if (tc->vocab != V)
            return eng_fail(err, ENG_ECONFIG, "teacher vocabulary %d != student %d", tc->vocab, V);
        ad_layers(lc, sc->layers, &lo, &hi);
        if (lc->gamma > 0 && (tc->layers != sc->layers || hi > sc->layers || lo < 0))
            return eng_fail(err, ENG_ECONFIG,
                            "relation layer %d needs teacher and student of "
                            "the same depth (%d vs %d)",
                            lc->layer, tc->layers, sc->layers);
        if ((rc = trn_model_forward(teacher, b->tok, b->B, b->T)))
            return eng_fail(err, rc, "teacher: %s", trn_model_errmsg(teacher));
    }
    if ((rc = trn_model_forward(student, b->tok, b->B, b->T)))
        return eng_fail(err, rc, "student: %s", trn_model_errmsg(student));
    const float *sl = trn_model_logits(student);
    out->ce = trn_ce_forward(sl, b->target, N, V);
    size_t kept, hits = trn_token_hits(sl, b->target, N, V, &kept);
    out->acc = kept ? (double)hits / (double)kept : 0.0;
    if (grad) {
        trn_model_backward_begin(student);
        trn_ce_backward(trn_model_dlogits(student), sl, b->target, N, V, grad_scale);
    }
    if (use_t && lc->lambda > 0) {
        const float *tl = trn_model_logits(teacher);
        out->ld = trn_kl_forward(sl, tl, b->target, N, V, lc->tau);
        if (grad)
            trn_kl_backward(trn_model_dlogits(student), sl, tl, b->target, N, V, lc->tau,
                            grad_scale * lc->lambda);
    }
    if (use_t && lc->gamma > 0) {
        const struct eng_config *tc = trn_model_config(teacher);
        int S = lc->split_heads > 0 ? lc->split_heads : 1;
        for (int l = lo; l < hi; l++)
            for (int w = 0; w < 3; w++) {
                int Cs, Ct;
                const float *s = trn_model_state(student, l, (enum trn_state)w, &Cs);
                const float *t = trn_model_state(teacher, l, (enum trn_state)w, &Ct);
                if (Cs % S || Ct % S) {
                    free(scratch);
                    return eng_fail(err, ENG_ECONFIG,
                                    "split_heads %d does not divide the "
                                    "state widths %d (student) and %d (teacher)",
                                    S, Cs, Ct);
                }
                if (!scratch) {
                    int mx = sc->heads > tc->heads ? sc->heads : tc->heads;
                    mx *= sc->head_dim > tc->head_dim ? sc->head_dim : tc->head_dim;
                    scratch = malloc(trn_relation_scratch(b->T, mx, mx, 1) * sizeof(float));
                    if (!scratch)
                        return eng_fail(err, ENG_ENOMEM, "out of memory");
                }
                out->ad += trn_relation_forward(s, t, b->len, b->B, b->T, Cs, Ct, S, lc->rel,
                                                lc->t_r, scratch);
                if (grad)
                    trn_relation_backward(trn_model_dstate(student, l, (enum trn_state)w), s, t,
                                          b->len, b->B, b->T, Cs, Ct, S, lc->rel, lc->t_r,
                                          grad_scale * lc->gamma, scratch);
            }
        free(scratch);
    }
    out->loss = out->ce + (double)lc->lambda * out->ld + (double)lc->gamma * out->ad;
    if (grad && (rc = trn_model_backward(student)))
        return eng_fail(err, rc, "student backward: %s", trn_model_errmsg(student));
    return 0;
}

float trn_lr_at(const struct trn_adamw_cfg *c, long step)
{
    if (c->warmup > 0 && step < c->warmup)
        return c->lr * (float)(step + 1) / (float)c->warmup;
    long span = c->total - c->warmup;
    if (span <= 0)
        return c->lr;
    double p = (double)(step - c->warmup) / (double)span;
    p = p > 1.0 ? 1.0 : p;
    return (float)(c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * p)));
}

double trn_grad_norm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

void trn_adamw_update(struct trn_model *model, float *m, float *v, long t, float lr,
                      const struct trn_adamw_cfg *c, double *gnorm)
{
    float *p = trn_model_params(model), *g = trn_model_grads(model);
    size_t n = trn_model_nparams(model);
    double norm = trn_grad_norm(g, n);
    float cs = 1.0f;
    if (c->clip > 0 && norm > c->clip) /* as torch.nn.utils.clip_grad_norm_ */
        cs = (float)(c->clip / (norm + 1e-6));
    if (gnorm)
        *gnorm = norm;
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    for (int k = 0; k < trn_model_ntensors(model); k++) {
        const struct trn_tensor *tt = trn_model_tensor(model, k);
        float wd = tt->decay ? c->weight_decay : 0.0f;
        for (size_t i = tt->off; i < tt->off + tt->n; i++) {
            float gi = g[i] * cs;
            m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * gi;
            v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * gi * gi;
            p[i] -= lr * wd * p[i];
            p[i] -= lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + c->eps);
        }
    }
}

int trn_eval_corpus(struct trn_model *m, const int32_t *tok, size_t ntok, int T, int B,
                    double *mean_ce, size_t *ntargets, char *err)
{
    size_t nwin = ntok > 1 ? (ntok - 1) / (size_t)T : 0, done = 0;
    int V = trn_model_config(m)->vocab, rc = 0;
    double sum = 0.0;
    *mean_ce = 0.0;
    *ntargets = 0;
    if (!nwin)
        return eng_fail(err, ENG_EINVAL,
                        "held-out text has %zu tokens, fewer than one window of "
                        "%d",
                        ntok, T + 1);
    int32_t *target = malloc((size_t)B * T * sizeof(int32_t));
    if (!target)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    while (done < nwin) {
        int nb = nwin - done < (size_t)B ? (int)(nwin - done) : B;
        const int32_t *x = tok + done * (size_t)T;
        for (size_t i = 0; i < (size_t)nb * T; i++)
            target[i] = x[i + 1];
        if ((rc = trn_model_forward(m, x, nb, T))) {
            eng_fail(err, rc, "held-out forward: %s", trn_model_errmsg(m));
            break;
        }
        sum += trn_ce_forward(trn_model_logits(m), target, nb * T, V) * (double)nb * T;
        done += (size_t)nb;
    }
    free(target);
    *ntargets = done * (size_t)T;
    *mean_ce = *ntargets ? sum / (double)*ntargets : 0.0;
    return rc;
}

int trn_eval_batch(struct trn_model *m, const struct trn_batch *b, double *ce_sum, size_t *hits,
                   size_t *rows, char *err)
{
    int rc, N = b->B * b->T, V = trn_model_config(m)->vocab;
    if ((rc = trn_model_forward(m, b->tok, b->B, b->T)))
        return eng_fail(err, rc, "validation forward: %s", trn_model_errmsg(m));
    const float *lg = trn_model_logits(m);
    *hits = trn_token_hits(lg, b->target, N, V, rows);
    *ce_sum = trn_ce_forward(lg, b->target, N, V) * (double)*rows;
    return 0;
}
