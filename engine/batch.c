/*
 * engine/batch.c — see batch.h. eng_layers_run is the decoder's pass for every caller: the
 * single-sequence forward (forward.c) runs it with one piece, the batcher with one piece per
 * sequence; RoPE, the cache writes and attention are done per piece at its own positions.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/model_impl.h"
#include "engine/student_impl.h"
#include "kernels/blas.h"
#include "kernels/fops.h"

/* A piece of a segment inside one pass: the rows, and which segment they belong to. */
struct piece {
    struct eng_piece p;
    struct eng_seg *seg;
    int last; /* holds the segment's last token */
};

/* The head's logits of the rows `head` names, from the final-normed rows in S->xn (the FP path
 * and the op-by-op student reference; step.c does this inside its region). */
static int layers_head(struct eng_ctx *S, const struct eng_step_head *head)
{
    struct eng_model *m = S->m;
    const struct eng_config *cf = &m->cfg;
    int H = cf->hidden;
    float *rows = malloc((size_t)head->n * H * sizeof(float));
    if (!rows)
        return eng_fail(S->err, ENG_ENOMEM, "out of memory");
    for (int i = 0; i < head->n; i++)
        memcpy(rows + (size_t)i * H, S->xn + (size_t)head->rows[i] * H, (size_t)H * sizeof(float));
    int rc = 0;
    if (m->ternary)
        rc = m->ops->head(S, rows, head->n, head->logits);
    else
        krn_sgemm(1, (size_t)head->n, (size_t)cf->vocab, (size_t)H, 1.0f, rows, (size_t)H, m->head,
                  (size_t)H, 0.0f, head->logits, (size_t)cf->vocab);
    free(rows);
    return rc;
}

int eng_layers_run(struct eng_ctx *S, const struct eng_piece *pc, int np, int R)
{
    return eng_layers_run_head(S, pc, np, R, NULL);
}

int eng_layers_run_head(struct eng_ctx *S, const struct eng_piece *pc, int np, int R,
                        const struct eng_step_head *head)
{
    return eng_layers_run_keep(S, pc, np, R, head, NULL);
}

int eng_layers_run_keep(struct eng_ctx *S, const struct eng_piece *pc, int np, int R,
                        const struct eng_step_head *head, const struct eng_step_keep *keep)
{
    struct eng_model *m = S->m;
    const struct eng_config *cf = &m->cfg;
    int H = cf->hidden, hd = cf->head_dim, qd = cf->heads * hd, kd = cf->kv_heads * hd, rc;

    /* Students: one pool region per pass (step.c). What follows is the FP path and, for a
     * student context made with BITDISTILL_STEP=ops, the op-by-op reference of step.c (each
     * projection its own region, everything else on this thread; tests/test-eng-step.c). */
    if (m->ternary && !((struct stu_ctx *)S->qa)->ops)
        return eng_step_layers(S, pc, np, R, head, keep);
    for (int p = 0; p < np; p++)
        for (int t = 0; t < pc[p].n; t++) {
            int32_t id = pc[p].tok[t];
            float *x = S->x + (size_t)(pc[p].row + t) * H;
            if (m->ternary)
                m->ops->embed(m, id, x);
            else
                memcpy(x, m->embed + (size_t)id * H, (size_t)H * sizeof(float));
        }
    for (int l = 0; l < cf->layers; l++) {
        const struct eng_layer *L = &m->layers[l];
        krn_rmsnorm(S->xn, NULL, S->x, L->in_norm, (size_t)R, (size_t)H, cf->eps);
        if ((rc = eng_lin_forward(S, &L->q, S->xn, R, S->q)) ||
            (rc = eng_lin_forward(S, &L->k, S->xn, R, S->k)) ||
            (rc = eng_lin_forward(S, &L->v, S->xn, R, S->v)))
            return rc;
        if (L->q_norm) {
            krn_rmsnorm(S->q, NULL, S->q, L->q_norm, (size_t)R * cf->heads, (size_t)hd, cf->eps);
            krn_rmsnorm(S->k, NULL, S->k, L->k_norm, (size_t)R * cf->kv_heads, (size_t)hd, cf->eps);
        }
        for (int p = 0; p < np; p++) {
            struct eng_ctx *c = pc[p].ctx;
            float *q = S->q + (size_t)pc[p].row * qd, *k = S->k + (size_t)pc[p].row * kd;
            eng_rope(c, q, pc[p].n, cf->heads, hd, pc[p].p0);
            eng_rope(c, k, pc[p].n, cf->kv_heads, hd, pc[p].p0);
            size_t off = ((size_t)l * c->max_t + pc[p].p0) * kd;
            memcpy(c->kc + off, k, (size_t)pc[p].n * kd * sizeof(float));
            memcpy(c->vc + off, S->v + (size_t)pc[p].row * kd,
                   (size_t)pc[p].n * kd * sizeof(float));
            eng_attention(c, l, q, S->att + (size_t)pc[p].row * qd, pc[p].n, pc[p].p0);
        }
        if (L->attn_sub)
            krn_rmsnorm(S->att, NULL, S->att, L->attn_sub, (size_t)R, (size_t)qd, cf->eps);
        if ((rc = eng_lin_forward(S, &L->o, S->att, R, S->xn)))
            return rc;
        krn_add(S->x, S->x, S->xn, (size_t)R * H);
        krn_rmsnorm(S->xn, NULL, S->x, L->post_norm, (size_t)R, (size_t)H, cf->eps);
        if ((rc = eng_lin_forward(S, &L->gate, S->xn, R, S->g)) ||
            (rc = eng_lin_forward(S, &L->up, S->xn, R, S->u)))
            return rc;
        krn_silu_mul(S->g, S->g, S->u, (size_t)R * cf->inter);
        if (L->ffn_sub)
            krn_rmsnorm(S->g, NULL, S->g, L->ffn_sub, (size_t)R, (size_t)cf->inter, cf->eps);
        if ((rc = eng_lin_forward(S, &L->down, S->g, R, S->xn)))
            return rc;
        krn_add(S->x, S->x, S->xn, (size_t)R * H);
    }
    krn_rmsnorm(S->xn, NULL, S->x, m->norm, (size_t)R, (size_t)H, cf->eps);
    return head ? layers_head(S, head) : 0;
}

/* The rows of the pass whose logits a segment wants (the last row of a piece that ends a
 * LOGITS segment) -> rows[], returned count. */
static int logit_rows(const struct piece *pc, int np, int *rows)
{
    int nl = 0;
    for (int p = 0; p < np; p++)
        if (pc[p].last && pc[p].seg->want == ENG_WANT_LOGITS)
            rows[nl++] = pc[p].p.row + pc[p].p.n - 1;
    return nl;
}

/* The rows of the pass whose final state is read: the last row of every piece that ends a
 * segment wanting logits or label rows (ascending, as the pieces are) -> rows[], count. */
static int kept_rows(const struct piece *pc, int np, int *rows)
{
    int n = 0;
    for (int p = 0; p < np; p++)
        if (pc[p].last && pc[p].seg->want != ENG_WANT_NONE)
            rows[n++] = pc[p].p.row + pc[p].p.n - 1;
    return n;
}

/* Hand the pass's logits (lg [nl][vocab], in logit_rows order) to their segments, and score
 * the label rows of ROWS segments from the final-normed rows in S->xn. */
static int batch_outputs(struct eng_ctx *S, struct piece *pc, int np, const float *lg)
{
    struct eng_model *m = S->m;
    const struct eng_config *cf = &m->cfg;
    int H = cf->hidden, rc;
    size_t V = (size_t)cf->vocab;
    for (int p = 0, i = 0; p < np; p++)
        if (pc[p].last && pc[p].seg->want == ENG_WANT_LOGITS)
            memcpy(pc[p].seg->out, lg + (size_t)i++ * V, V * sizeof(float));
    for (int p = 0; p < np; p++) {
        struct eng_seg *s = pc[p].seg;
        if (!pc[p].last || s->want != ENG_WANT_ROWS)
            continue;
        const float *x = S->xn + (size_t)(pc[p].p.row + pc[p].p.n - 1) * H;
        if (m->ternary) {
            if ((rc = m->ops->head_rows(S, x, s->rows, s->nrows, s->out)))
                return rc;
        } else {
            for (int r = 0; r < s->nrows; r++)
                s->out[r] = krn_sdot((size_t)H, x, m->head + (size_t)s->rows[r] * H);
        }
    }
    return 0;
}

int eng_batch_run(struct eng_ctx *S, struct eng_seg *segs, int nsegs)
{
    const struct eng_config *cf = &S->m->cfg;
    int cap = S->chunk < ENG_BATCH_ROWS ? S->chunk : ENG_BATCH_ROWS, rc;
    struct piece pc[ENG_BATCH_ROWS];

    if (S->kv_only)
        return eng_fail(S->err, ENG_EINVAL, "the scratch context of a batch needs pass buffers");
    for (int i = 0; i < nsegs; i++) {
        struct eng_seg *s = &segs[i];
        if (s->n <= 0 || s->ctx->m != S->m)
            return eng_fail(S->err, ENG_EINVAL, "segment %d: no tokens or another model", i);
        if (s->ctx->pos + s->n > s->ctx->max_t)
            return eng_fail(S->err, ENG_ERANGE,
                            "segment %d: context full: %d cached + %d new > "
                            "%d positions",
                            i, s->ctx->pos, s->n, s->ctx->max_t);
        for (int t = 0; t < s->n; t++)
            if (s->tok[t] < 0 || s->tok[t] >= cf->vocab)
                return eng_fail(S->err, ENG_EINVAL,
                                "segment %d: token id %d outside the "
                                "vocabulary [0, %d)",
                                i, (int)s->tok[t], cf->vocab);
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
            pc[np] = (struct piece){
                {s->ctx, s->tok + done, take, R, s->ctx->pos}, s, done + take == s->n};
            R += take;
            s->ctx->pos += take; /* positions are claimed now; p0 recorded above */
            np++;
            done += take;
            if (done == s->n) {
                si++;
                done = 0;
            }
        }
        struct eng_piece rows[ENG_BATCH_ROWS];
        for (int p = 0; p < np; p++)
            rows[p] = pc[p].p;
        int lrows[ENG_BATCH_ROWS], nl = logit_rows(pc, np, lrows);
        float *lg = nl ? malloc((size_t)nl * cf->vocab * sizeof(float)) : NULL;
        if (nl && !lg)
            return eng_fail(S->err, ENG_ENOMEM, "out of memory for %d x %d logits", nl, cf->vocab);
        struct eng_step_head hd = {lrows, nl, lg};
        int krows[ENG_BATCH_ROWS];
        struct eng_step_keep keep = {krows, kept_rows(pc, np, krows)};
        rc = eng_layers_run_keep(S, rows, np, R, nl ? &hd : NULL, &keep);
        if (!rc)
            rc = batch_outputs(S, pc, np, lg);
        free(lg);
        if (rc)
            return rc;
    }
    return 0;
}
