/*
 * engine/batch.c — see batch.h. The pass mirrors forward.c's forward_chunk row for row; the
 * difference is where rows come from (several sequences) and that RoPE, the cache writes and
 * attention are done per segment at that segment's own positions.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/model_impl.h"

/* A piece of a segment inside one pass. */
struct piece {
    struct eng_seg *seg;
    int from, n;  /* tokens seg->tok[from .. from+n) */
    int row;      /* first row in the pass */
    int p0;       /* position of the first token in the sequence */
    int last;     /* holds the segment's last token */
};

static void b_rmsnorm(float *y, const float *x, const float *w, int rows, int d, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        float ss = 0.0f;
        for (int j = 0; j < d; j++)
            ss += xr[j] * xr[j];
        float inv = 1.0f / sqrtf(ss / (float)d + eps);
        for (int j = 0; j < d; j++)
            yr[j] = w[j] * (xr[j] * inv);
    }
}

static void b_rope(const struct eng_ctx *c, float *x, int n, int nh, int hd, int p0)
{
    int half = hd / 2;
    for (int t = 0; t < n; t++) {
        const float *cs = c->rc + (size_t)(p0 + t) * half, *sn = c->rs + (size_t)(p0 + t) * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)t * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * cs[i] - x2 * sn[i];
                v[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

/* Attention of n query rows q (at positions p0..) over sequence c's cache of layer l -> o. */
static void b_attention(struct eng_ctx *c, int l, const float *q, float *o, int n, int p0)
{
    const struct eng_config *cf = &c->m->cfg;
    int hd = cf->head_dim, nh = cf->heads, grp = cf->heads / cf->kv_heads;
    size_t kd = (size_t)cf->kv_heads * hd;
    const float *K = c->kc + (size_t)l * c->max_t * kd, *V = c->vc + (size_t)l * c->max_t * kd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t < n; t++) {
        int np = p0 + t + 1;
        for (int h = 0; h < nh; h++) {
            const float *qr = q + ((size_t)t * nh + h) * hd;
            size_t ko = (size_t)(h / grp) * hd;
            float mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < np; j++) {
                const float *k = K + (size_t)j * kd + ko;
                float s = 0.0f;
                for (int i = 0; i < hd; i++)
                    s += qr[i] * k[i];
                s *= scale;
                c->sc[j] = s;
                if (s > mx)
                    mx = s;
            }
            for (int j = 0; j < np; j++) {
                c->sc[j] = expf(c->sc[j] - mx);
                sum += c->sc[j];
            }
            float *or = o + ((size_t)t * nh + h) * hd;
            memset(or, 0, (size_t)hd * sizeof(float));
            for (int j = 0; j < np; j++) {
                const float *v = V + (size_t)j * kd + ko;
                float w = c->sc[j] / sum;
                for (int i = 0; i < hd; i++)
                    or[i] += w * v[i];
            }
        }
    }
}

/* One pass of R rows made of np pieces; leaves final-normed rows in S->xn. */
static int batch_pass(struct eng_ctx *S, struct piece *pc, int np, int R)
{
    struct eng_model *m = S->m;
    const struct eng_config *cf = &m->cfg;
    int H = cf->hidden, hd = cf->head_dim, qd = cf->heads * hd, kd = cf->kv_heads * hd, rc;

    for (int p = 0; p < np; p++)
        for (int t = 0; t < pc[p].n; t++) {
            int32_t id = pc[p].seg->tok[pc[p].from + t];
            float *x = S->x + (size_t)(pc[p].row + t) * H;
            if (m->ternary)
                m->ops->embed(m, id, x);
            else
                memcpy(x, m->embed + (size_t)id * H, (size_t)H * sizeof(float));
        }
    for (int l = 0; l < cf->layers; l++) {
        const struct eng_layer *L = &m->layers[l];
        b_rmsnorm(S->xn, S->x, L->in_norm, R, H, cf->eps);
        if ((rc = eng_lin_forward(S, &L->q, S->xn, R, S->q)) ||
            (rc = eng_lin_forward(S, &L->k, S->xn, R, S->k)) ||
            (rc = eng_lin_forward(S, &L->v, S->xn, R, S->v)))
            return rc;
        if (L->q_norm) {
            b_rmsnorm(S->q, S->q, L->q_norm, R * cf->heads, hd, cf->eps);
            b_rmsnorm(S->k, S->k, L->k_norm, R * cf->kv_heads, hd, cf->eps);
        }
        for (int p = 0; p < np; p++) {
            struct eng_ctx *c = pc[p].seg->ctx;
            float *q = S->q + (size_t)pc[p].row * qd, *k = S->k + (size_t)pc[p].row * kd;
            b_rope(c, q, pc[p].n, cf->heads, hd, pc[p].p0);
            b_rope(c, k, pc[p].n, cf->kv_heads, hd, pc[p].p0);
            size_t off = ((size_t)l * c->max_t + pc[p].p0) * kd;
            memcpy(c->kc + off, k, (size_t)pc[p].n * kd * sizeof(float));
            memcpy(c->vc + off, S->v + (size_t)pc[p].row * kd, (size_t)pc[p].n * kd * sizeof(float));
            b_attention(c, l, q, S->att + (size_t)pc[p].row * qd, pc[p].n, pc[p].p0);
        }
        if (L->attn_sub)
            b_rmsnorm(S->att, S->att, L->attn_sub, R, qd, cf->eps);
        if ((rc = eng_lin_forward(S, &L->o, S->att, R, S->xn)))
            return rc;
        for (size_t i = 0; i < (size_t)R * H; i++)
            S->x[i] += S->xn[i];
        b_rmsnorm(S->xn, S->x, L->post_norm, R, H, cf->eps);
        if ((rc = eng_lin_forward(S, &L->gate, S->xn, R, S->g)) ||
            (rc = eng_lin_forward(S, &L->up, S->xn, R, S->u)))
            return rc;
        for (size_t i = 0; i < (size_t)R * cf->inter; i++) {
            float g = S->g[i];
            S->g[i] = g / (1.0f + expf(-g)) * S->u[i];
        }
        if (L->ffn_sub)
            b_rmsnorm(S->g, S->g, L->ffn_sub, R, cf->inter, cf->eps);
        if ((rc = eng_lin_forward(S, &L->down, S->g, R, S->xn)))
            return rc;
        for (size_t i = 0; i < (size_t)R * H; i++)
            S->x[i] += S->xn[i];
    }
    b_rmsnorm(S->xn, S->x, m->norm, R, H, cf->eps);
    return 0;
}

/* The outputs the pieces that end their segment want, from the final-normed rows in S->xn. */
static int batch_outputs(struct eng_ctx *S, struct piece *pc, int np)
{
    struct eng_model *m = S->m;
    const struct eng_config *cf = &m->cfg;
    int H = cf->hidden, nl = 0, rc;
    /* Logits: gather the last rows into S->x (free now) and run the head once. */
    for (int p = 0; p < np; p++)
        if (pc[p].last && pc[p].seg->want == ENG_WANT_LOGITS)
            memcpy(S->x + (size_t)nl++ * H, S->xn + (size_t)(pc[p].row + pc[p].n - 1) * H,
                   (size_t)H * sizeof(float));
    if (nl) {
        size_t V = (size_t)cf->vocab;
        float *lg = malloc((size_t)nl * V * sizeof(float));
        if (!lg)
            return eng_fail(S->err, ENG_ENOMEM, "out of memory for %d x %zu logits", nl, V);
        if (m->ternary) {
            rc = m->ops->head(S, S->x, nl, lg);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nl, cf->vocab, H, 1.0f, S->x, H,
                        m->head, H, 0.0f, lg, cf->vocab);
            rc = 0;
        }
        for (int p = 0, i = 0; !rc && p < np; p++)
            if (pc[p].last && pc[p].seg->want == ENG_WANT_LOGITS)
                memcpy(pc[p].seg->out, lg + (size_t)i++ * V, V * sizeof(float));
        free(lg);
        if (rc)
            return rc;
    }
    for (int p = 0; p < np; p++) {
        struct eng_seg *s = pc[p].seg;
        if (!pc[p].last || s->want != ENG_WANT_ROWS)
            continue;
        const float *x = S->xn + (size_t)(pc[p].row + pc[p].n - 1) * H;
        if (m->ternary) {
            if ((rc = m->ops->head_rows(S, x, s->rows, s->nrows, s->out)))
                return rc;
        } else {
            for (int r = 0; r < s->nrows; r++)
                s->out[r] = cblas_sdot(H, x, 1, m->head + (size_t)s->rows[r] * H, 1);
        }
    }
    return 0;
}

int eng_batch_run(struct eng_ctx *S, struct eng_seg *segs, int nsegs)
{
    const struct eng_config *cf = &S->m->cfg;
    int cap = S->chunk < ENG_BATCH_ROWS ? S->chunk : ENG_BATCH_ROWS, rc;
    struct piece pc[ENG_BATCH_ROWS];

    for (int i = 0; i < nsegs; i++) {
        struct eng_seg *s = &segs[i];
        if (s->n <= 0 || s->ctx->m != S->m)
            return eng_fail(S->err, ENG_EINVAL, "segment %d: no tokens or another model", i);
        if (s->ctx->pos + s->n > s->ctx->max_t)
            return eng_fail(S->err, ENG_ERANGE, "segment %d: context full: %d cached + %d new > "
                            "%d positions", i, s->ctx->pos, s->n, s->ctx->max_t);
        for (int t = 0; t < s->n; t++)
            if (s->tok[t] < 0 || s->tok[t] >= cf->vocab)
                return eng_fail(S->err, ENG_EINVAL, "segment %d: token id %d outside the "
                                "vocabulary [0, %d)", i, (int)s->tok[t], cf->vocab);
        for (int r = 0; s->want == ENG_WANT_ROWS && r < s->nrows; r++)
            if (s->rows[r] < 0 || s->rows[r] >= cf->vocab)
                return eng_fail(S->err, ENG_EINVAL, "label row %d outside the vocabulary",
                                (int)s->rows[r]);
    }
    int si = 0, done = 0; /* segment and tokens of it already run */
    while (si < nsegs) {
        int np = 0, R = 0;
        while (si < nsegs && R < cap) {
            struct eng_seg *s = &segs[si];
            int take = s->n - done < cap - R ? s->n - done : cap - R;
            pc[np] = (struct piece){s, done, take, R, s->ctx->pos, done + take == s->n};
            R += take;
            s->ctx->pos += take; /* positions are claimed now; p0 recorded above */
            np++;
            done += take;
            if (done == s->n) {
                si++;
                done = 0;
            }
        }
        if ((rc = batch_pass(S, pc, np, R)) || (rc = batch_outputs(S, pc, np)))
            return rc;
    }
    return 0;
}
