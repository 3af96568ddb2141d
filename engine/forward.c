/*
 * engine/forward.c — the decoder forward pass shared by the FP teacher and the ternary
 * student: embeddings -> L x [RMSNorm, attention (GQA, QK-norm, RoPE, causal, KV cache),
 * optional SubLN, residual, RMSNorm, SwiGLU MLP, optional SubLN, residual] -> RMSNorm -> head.
 *
 * Numerics follow transformers' eager fp32 path: RMSNorm x * rsqrt(mean(x^2) + eps) * w, RoPE
 * (NeoX rotate-half) with float32 inv_freq = 1 / theta^(2i/d) and angle = pos * inv_freq in
 * float32, scores q.k * d^-0.5, softmax in float32. The float ops are the kernels' (kernels/fops.h,
 * the same the trainer and the student's step use); linear layers are OpenBLAS sgemm through
 * kernels/blas.h (FP) or the kernels' ternary GEMM (student, student.c). Prefill runs in chunks
 * of `chunk` tokens.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model_impl.h"
#include "kernels/blas.h"
#include "kernels/fops.h"

#define CTX_CHUNK                                                                                  \
    ENG_CTX_CHUNK_MAX /* tokens per prefill chunk: bounds the scratch to chunk x inter floats */

int eng_lin_forward(struct eng_ctx *c, const struct eng_lin *l, const float *x, int n, float *y)
{
    if (l->q)
        return c->m->ops->lin(c, l, x, n, y);
    if (n == 1) /* decode: one pass over the weights */
        krn_sgemv((size_t)l->out, (size_t)l->in, l->w, (size_t)l->in, x, y);
    else
        krn_sgemm(1, (size_t)n, (size_t)l->out, (size_t)l->in, 1.0f, x, (size_t)l->in, l->w,
                  (size_t)l->in, 0.0f, y, (size_t)l->out);
    if (l->b)
        for (int t = 0; t < n; t++)
            for (int o = 0; o < l->out; o++)
                y[(size_t)t * l->out + o] += l->b[o];
    return 0;
}

static int ctx_create(struct eng_model *m, int max_tokens, int kv_only, struct eng_ctx **out)
{
    const struct eng_config *cf = &m->cfg;
    struct eng_ctx *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return eng_fail(m->err, ENG_ENOMEM, "out of memory");
    if (max_tokens <= 0 || max_tokens > cf->max_pos)
        max_tokens = cf->max_pos;
    c->m = m;
    c->max_t = max_tokens;
    c->kv_only = kv_only;
    c->chunk = CTX_CHUNK < max_tokens ? CTX_CHUNK : max_tokens;
    size_t qd = (size_t)cf->heads * cf->head_dim, kd = (size_t)cf->kv_heads * cf->head_dim;
    size_t ch = (size_t)c->chunk, half = (size_t)cf->head_dim / 2;
    c->kc = calloc((size_t)cf->layers * max_tokens * kd, sizeof(float));
    c->vc = calloc((size_t)cf->layers * max_tokens * kd, sizeof(float));
    if (!kv_only) { /* the pass's buffers; a KV-only context borrows a scratch's */
        c->x = malloc(ch * cf->hidden * sizeof(float));
        c->xn = malloc(ch * cf->hidden * sizeof(float));
        c->q = malloc(ch * qd * sizeof(float));
        c->k = malloc(ch * kd * sizeof(float));
        c->v = malloc(ch * kd * sizeof(float));
        c->att = malloc(ch * qd * sizeof(float));
        c->g = malloc(ch * cf->inter * sizeof(float));
        c->u = malloc(ch * cf->inter * sizeof(float));
    }
    size_t grp = (size_t)(cf->heads / cf->kv_heads); /* decode: one KV group's rows at once */
    c->sc = malloc((ch > grp ? ch : grp) * (size_t)max_tokens * sizeof(float));
    c->rc = malloc((size_t)max_tokens * half * sizeof(float));
    c->rs = malloc((size_t)max_tokens * half * sizeof(float));
    if (!c->kc || !c->vc || !c->sc || !c->rc || !c->rs ||
        (!kv_only && (!c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->g || !c->u))) {
        eng_ctx_free(c);
        return eng_fail(m->err, ENG_ENOMEM, "out of memory for a context of %d tokens", max_tokens);
    }
    krn_rope_tables(c->rc, c->rs, (size_t)max_tokens, (size_t)cf->head_dim, cf->rope_theta);
    if (!kv_only && m->ternary && m->ops->ctx_init(c)) {
        eng_ctx_free(c);
        return eng_fail(m->err, ENG_ENOMEM, "out of memory for the student's activations");
    }
    *out = c;
    return 0;
}

int eng_ctx_create(struct eng_model *m, int max_tokens, struct eng_ctx **out)
{
    return ctx_create(m, max_tokens, 0, out);
}

int eng_ctx_create_kv(struct eng_model *m, int max_tokens, struct eng_ctx **out)
{
    return ctx_create(m, max_tokens, 1, out);
}

void eng_ctx_free(struct eng_ctx *c)
{
    if (!c)
        return;
    if (c->qa)
        c->m->ops->ctx_release(c);
    free(c->kc);
    free(c->vc);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->g);
    free(c->u);
    free(c->sc);
    free(c->rc);
    free(c->rs);
    free(c);
}

void eng_ctx_reset(struct eng_ctx *c)
{
    c->pos = 0;
}

int eng_ctx_pos(const struct eng_ctx *c)
{
    return c->pos;
}

const char *eng_ctx_errmsg(const struct eng_ctx *c)
{
    return c->err;
}

/* In place on x [n][nh][hd] for positions p0..p0+n-1 (the context's tables from p0 on). */
void eng_rope(const struct eng_ctx *c, float *x, int n, int nh, int hd, int p0)
{
    size_t half = (size_t)hd / 2;
    krn_rope(x, (size_t)n, (size_t)nh, (size_t)hd, c->rc + (size_t)p0 * half,
             c->rs + (size_t)p0 * half);
}

/* Attention of the single query row c->q (position p0) over keys 0..p0 -> c->att. The `grp`
 * query heads of one KV group are contiguous, so each group is two small sgemms:
 * S [grp][np] = scale * Q_g K_g^T, softmax by row, O_g [grp][hd] = S V_g. */
static void attention_one(struct eng_ctx *c, const float *q, float *att, const float *K,
                          const float *V, int kd, int p0, float scale)
{
    const struct eng_config *cf = &c->m->cfg;
    int hd = cf->head_dim, grp = cf->heads / cf->kv_heads, np = p0 + 1;
    for (int g = 0; g < cf->kv_heads; g++) {
        size_t ko = (size_t)g * hd;
        krn_sgemm(1, (size_t)grp, (size_t)np, (size_t)hd, scale, q + (size_t)g * grp * hd,
                  (size_t)hd, K + ko, (size_t)kd, 0.0f, c->sc, (size_t)np);
        krn_softmax(c->sc, (size_t)grp, (size_t)np);
        krn_sgemm(0, (size_t)grp, (size_t)hd, (size_t)np, 1.0f, c->sc, (size_t)np, V + ko,
                  (size_t)kd, 0.0f, att + (size_t)g * grp * hd, (size_t)hd);
    }
}

/* Causal attention of n queries at p0.. over the cache of layer l (already holding them).
 * Per head: S [n][np] = scale * Q_h K_g^T (sgemm), masked row softmax (keys j <= p0 + t),
 * O_h [n][hd] = P V_g (sgemm); g = the head's KV group. c->sc holds S ([chunk][max_t]). */
void eng_attention(struct eng_ctx *c, int l, const float *q, float *att, int n, int p0)
{
    const struct eng_config *cf = &c->m->cfg;
    int hd = cf->head_dim, nh = cf->heads, grp = cf->heads / cf->kv_heads, np = p0 + n;
    int kd = cf->kv_heads * hd, qd = nh * hd;
    const float *K = c->kc + (size_t)l * c->max_t * kd, *V = c->vc + (size_t)l * c->max_t * kd;
    float scale = 1.0f / sqrtf((float)hd);
    if (n == 1) { /* decode: plain loops; BLAS call overhead would dominate at these sizes */
        attention_one(c, q, att, K, V, kd, p0, scale);
        return;
    }
    for (int h = 0; h < nh; h++) {
        size_t ko = (size_t)(h / grp) * hd;
        krn_sgemm(1, (size_t)n, (size_t)np, (size_t)hd, scale, q + (size_t)h * hd, (size_t)qd,
                  K + ko, (size_t)kd, 0.0f, c->sc, (size_t)np);
        for (int t = 0; t < n; t++) {
            float *row = c->sc + (size_t)t * np;
            int nk = p0 + t + 1; /* keys 0..p0+t */
            krn_softmax(row, 1, (size_t)nk);
            memset(row + nk, 0, (size_t)(np - nk) * sizeof(float));
        }
        krn_sgemm(0, (size_t)n, (size_t)hd, (size_t)np, 1.0f, c->sc, (size_t)np, V + ko, (size_t)kd,
                  0.0f, att + (size_t)h * hd, (size_t)qd);
    }
}

/* One chunk of n tokens through the layers (engine/batch.c's pass with one piece: the context
 * is both the scratch and the sequence); leaves the final-normed rows in c->xn, and writes
 * logits [n][vocab] of every row (all) or [vocab] of the last row when `logits` is not NULL. */
static int forward_chunk(struct eng_ctx *c, const int32_t *tok, int n, float *logits, int all)
{
    struct eng_piece pc = {c, tok, n, 0, c->pos};
    int rows[ENG_CTX_CHUNK_MAX], nr = 0;
    if (logits && all)
        for (; nr < n; nr++)
            rows[nr] = nr;
    else if (logits)
        rows[nr++] = n - 1;
    struct eng_step_head hd = {rows, nr, logits};
    int rc = eng_layers_run_head(c, &pc, 1, n, nr ? &hd : NULL);
    if (!rc)
        c->pos += n;
    return rc;
}

static int check_tokens(struct eng_ctx *c, const int32_t *tokens, int n)
{
    if (c->kv_only)
        return eng_fail(c->err, ENG_EINVAL, "a KV-only context runs only inside eng_batch_run");
    if (n <= 0)
        return eng_fail(c->err, ENG_EINVAL, "no tokens to run");
    if (c->pos + n > c->max_t)
        return eng_fail(c->err, ENG_ERANGE, "context full: %d cached + %d new > %d positions",
                        c->pos, n, c->max_t);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->m->cfg.vocab)
            return eng_fail(c->err, ENG_EINVAL,
                            "token id %d at position %d is outside the "
                            "vocabulary [0, %d)",
                            (int)tokens[i], i, c->m->cfg.vocab);
    return 0;
}

int eng_ctx_forward(struct eng_ctx *c, const int32_t *tokens, int n, float *logits, int all_logits)
{
    int rc = check_tokens(c, tokens, n);
    if (rc)
        return rc;
    size_t V = (size_t)c->m->cfg.vocab;
    for (int i = 0; i < n; i += c->chunk) {
        int k = n - i < c->chunk ? n - i : c->chunk;
        float *out = !logits      ? NULL
                     : all_logits ? logits + (size_t)i * V
                     : i + k == n ? logits
                                  : NULL;
        if ((rc = forward_chunk(c, tokens + i, k, out, all_logits)))
            return rc;
    }
    return 0;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

int eng_generate_greedy(struct eng_ctx *c, const int32_t *prompt, int n_prompt, int max_new,
                        int stop_id, int32_t *out)
{
    int V = c->m->cfg.vocab, rc, n = 0;
    float *lg = malloc((size_t)V * sizeof(float));
    if (!lg)
        return eng_fail(c->err, ENG_ENOMEM, "out of memory");
    eng_ctx_reset(c);
    if (max_new > 0 && (rc = eng_ctx_forward(c, prompt, n_prompt, lg, 0)))
        goto out;
    while (n < max_new) {
        int32_t t = argmax(lg, V);
        out[n++] = t;
        if (t == stop_id || n == max_new || c->pos >= c->max_t)
            break;
        if ((rc = eng_ctx_forward(c, &t, 1, lg, 0)))
            goto out;
    }
    rc = n;
out:
    free(lg);
    return rc;
}

int eng_ctx_score_rows(struct eng_ctx *c, const int32_t *tokens, int n, const int32_t *rows,
                       int nrows, float *out)
{
    const struct eng_config *cf = &c->m->cfg;
    int rc;
    for (int i = 0; i < nrows; i++)
        if (rows[i] < 0 || rows[i] >= cf->vocab)
            return eng_fail(c->err, ENG_EINVAL, "label token %d is outside the vocabulary",
                            (int)rows[i]);
    eng_ctx_reset(c);
    if ((rc = check_tokens(c, tokens, n)))
        return rc;
    for (int i = 0; i < n; i += c->chunk) {
        int k = n - i < c->chunk ? n - i : c->chunk, last = k - 1;
        /* Only the last row of the last chunk is read: the others need only their k/v. */
        struct eng_piece pc = {c, tokens + i, k, 0, c->pos};
        struct eng_step_keep keep = {&last, i + k == n};
        if ((rc = eng_layers_run_keep(c, &pc, 1, k, NULL, &keep)))
            return rc;
        c->pos += k;
        if (i + k == n) {
            const float *x = c->xn + (size_t)(k - 1) * cf->hidden;
            if (c->m->ternary)
                return c->m->ops->head_rows(c, x, rows, nrows, out);
            for (int r = 0; r < nrows; r++) {
                out[r] = krn_sdot((size_t)cf->hidden, x, c->m->head + (size_t)rows[r] * cf->hidden);
            }
        }
    }
    return 0;
}

int eng_model_set_threads(struct eng_model *m, int n_threads)
{
    if (m->ternary)
        return m->ops->set_threads(m, n_threads);
    krn_blas_set_threads(n_threads > 0 ? n_threads : 1);
    return 0;
}
