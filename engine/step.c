/*
 * engine/step.c — the student's decoder pass as ONE kernel-pool region.
 *
 * The earlier pass called the pool once per projection (~200 regions per decode step) and ran
 * everything between them (norms, RoPE, attention, activation quantization, SwiGLU, residuals)
 * on one thread. Here every thread of the context's pool enters once per pass and runs the same
 * sequence of phases, each split over the threads, with a spinning barrier between dependent
 * phases (the design of ggml's graph compute): 9 barriers per layer, no sleep and no wake-up
 * inside a pass. Splits:
 *   - per token row: RMSNorm + INT8 quantization of a row (norm_quant), embeddings;
 *   - per head (head_dim a multiple of 16): the q/k/v rows of one head, then its QK-norm, RoPE
 *     and KV-cache write on the same thread, so projection and RoPE need no barrier between;
 *     other head sizes: q/k/v row groups, a barrier, then per (token, head);
 *   - per (sequence piece, query head): causal attention over the cache;
 *   - per 16-row group of the output: o_proj and down_proj with the residual add of those
 *     columns; gate_proj and up_proj over the SAME groups, so SwiGLU of those columns follows
 *     on the same thread;
 *   - the LM head (when the caller wants logits) over its row groups, after the final norm.
 * When the caller reads only some rows (eng_layers_run_keep: the scored row of each sequence),
 * the last layer runs attention, o_proj and the FFN on those rows alone (keep_rows_x).
 * Units are handed out dynamically: each phase has its own counter and a thread that finishes
 * a chunk claims the next, so a thread that the OS or the hypervisor delays holds up only its
 * own chunk (chunks ~1/4 of a thread's share). Every output element is computed by one thread
 * with the same operations whatever thread that is, so logits are bit-identical for any thread
 * count (tests/test-eng-step.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/model_impl.h"
#include "engine/student_impl.h"
#include "kernels/fops.h"
#include "kernels/gemm.h"
#include "kernels/pool.h"
#include "kernels/internal.h"

struct step {
    struct eng_ctx *S;          /* scratch context: pass buffers and the pool */
    const struct eng_piece *pc; /* [np] pieces of sequences */
    int np, R;                  /* pieces, rows */
    krn_pool *pool;
    struct stu_ctx *sc;               /* S's student state */
    size_t keys;                      /* attention scratch floats per thread */
    const struct eng_step_head *head; /* logits wanted, or NULL */
    int nth;
    const int *keep; /* rows whose final state is wanted ([K], ascending), or NULL:
                                  * all; the last layer then runs past attention on these alone */
    int K;
    const int *kmap; /* keep: pass row -> its index in keep, or -1 */
    size_t used;     /* phase counters the pass claimed (set by thread 0) */
};

/* Per-thread cursor over the phase counters: every thread walks the phases in the same order,
 * so phase k of the pass uses counter k on all of them. */
struct cursor {
    int ith, nth;
    size_t k;
    krn_qact *qh, *qq, *qi; /* the activations this thread's projections read */
    float *tmp;             /* private row [max(hidden, heads*head_dim, inter)] or NULL */
    int R;                  /* rows the current phase runs on: the pass's, or K after the last
                             * layer's attention when only `keep` rows are wanted */
};

/* The counter of the next phase (zeroed before the region). */
static size_t *next_ctr(struct step *st, struct cursor *cu)
{
    return st->sc->ctr + STU_CTR_STRIDE * cu->k++;
}

/* The last layer when only the `keep` rows are wanted (llama.cpp's inp_out_ids): every row still
 * gets its k/v (the cache must hold the whole sequence), but attention, o_proj and the FFN run
 * on the kept rows alone, moved to rows 0..K-1. Thread 0 moves the residual rows x while the
 * others start on q/k/v (which reads only the quantized activations). Ascending keep rows
 * (keep[j] >= j) let the moves run in order in place. */
static void keep_rows_x(struct step *st)
{
    size_t H = (size_t)st->S->m->cfg.hidden;
    for (int j = 0; j < st->K; j++)
        if (st->keep[j] != j)
            memcpy(st->S->x + (size_t)j * H, st->S->x + (size_t)st->keep[j] * H, H * sizeof(float));
}

/* Claim the next chunk [*lo, *hi) of [0, n) from counter c, chunks of `per` units; 0 when the
 * phase has no work left. */
static int claim(size_t *c, size_t n, size_t per, size_t *lo, size_t *hi)
{
    size_t i = __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
    if (i >= (n + per - 1) / per)
        return 0;
    *lo = i * per;
    *hi = *lo + per < n ? *lo + per : n;
    return 1;
}

/* Chunk size for n units over nth threads: about four chunks per thread, at least `min`. */
static size_t chunk(size_t n, int nth, size_t min)
{
    size_t per = n / (4 * (size_t)nth);
    return per < min ? min : per;
}

/* y rows [16 g0, 16 g1) of linear l for all rows of qa, plus its bias on those rows. */
static void lin_part(const struct eng_lin *l, const krn_qact *qa, size_t g0, size_t g1, float *y,
                     size_t ldy, int R)
{
    krn_i2_gemm_part(l->q, qa, g0, g1, y, ldy);
    if (!l->b)
        return;
    size_t r1 = 16 * g1 < (size_t)l->out ? 16 * g1 : (size_t)l->out;
    for (int t = 0; t < R; t++)
        for (size_t o = 16 * g0; o < r1; o++)
            y[(size_t)t * ldy + o] += l->b[o];
}

/* Rows x [R][d] (optionally RMS-normed with w into x itself, or into tmp when tmp != NULL)
 * quantized into qa, one row per thread in turn. */
static void norm_quant(struct step *st, float *x, float *tmp, const float *w, int d, krn_qact *qa,
                       int R, int ith, int nth)
{
    float eps = st->S->m->cfg.eps;
    for (int t = ith; t < R; t += nth) {
        float *row = x + (size_t)t * d, *out = tmp ? tmp + (size_t)t * d : row;
        if (w)
            krn_rmsnorm(out, NULL, row, w, 1, (size_t)d, eps);
        else
            out = row;
        krn_qact_quantize_row(qa, (size_t)t, out);
    }
}

/* QK-norm (Qwen3) and RoPE of head h of projection rows y [R][ld] (nh heads), for every token
 * of every piece at its position. */
static void head_post(struct step *st, float *y, size_t ld, int h, const float *norm)
{
    const struct eng_config *cf = &st->S->m->cfg;
    int hd = cf->head_dim, half = hd / 2;
    for (int p = 0; p < st->np; p++) {
        const struct eng_piece *pc = &st->pc[p];
        for (int t = 0; t < pc->n; t++) {
            float *v = y + (size_t)(pc->row + t) * ld + (size_t)h * hd;
            if (norm)
                krn_rmsnorm(v, NULL, v, norm, 1, (size_t)hd, cf->eps);
            int pos = pc->p0 + t;
            krn_rope(v, 1, 1, (size_t)hd, pc->ctx->rc + (size_t)pos * half,
                     pc->ctx->rs + (size_t)pos * half);
        }
    }
}

/* Copy head g of the k or v rows into layer l's cache of each piece's sequence. */
static void cache_put(struct step *st, int l, const float *y, int g, int is_v)
{
    const struct eng_config *cf = &st->S->m->cfg;
    size_t hd = (size_t)cf->head_dim, kd = (size_t)cf->kv_heads * hd;
    for (int p = 0; p < st->np; p++) {
        const struct eng_piece *pc = &st->pc[p];
        float *cache = is_v ? pc->ctx->vc : pc->ctx->kc;
        for (int t = 0; t < pc->n; t++) {
            size_t off = ((size_t)l * pc->ctx->max_t + (size_t)(pc->p0 + t)) * kd + g * hd;
            memcpy(cache + off, y + (size_t)(pc->row + t) * kd + g * hd, hd * sizeof(float));
        }
    }
}

/* q/k/v projections, QK-norm, RoPE and the cache writes. Units: query heads, then key heads,
 * then value heads. Returns with a barrier passed when the per-head fusion is not possible. */
static void qkv(struct step *st, int l, struct cursor *cu)
{
    struct eng_ctx *S = st->S;
    const struct eng_config *cf = &S->m->cfg;
    const struct eng_layer *L = &S->m->layers[l];
    int hd = cf->head_dim, nh = cf->heads, nkv = cf->kv_heads;
    size_t qd = (size_t)nh * hd, kd = (size_t)nkv * hd, lo, hi;
    krn_qact *qa = cu->qh;
    size_t units = (size_t)(nh + 2 * nkv);
    if (hd % 16 == 0) {
        size_t gph = (size_t)hd / 16, *c = next_ctr(st, cu); /* row groups per head */
        while (claim(c, units, 1, &lo, &hi))
            for (size_t u = lo; u < hi; u++) {
                if (u < (size_t)nh) {
                    lin_part(&L->q, qa, u * gph, (u + 1) * gph, S->q, qd, st->R);
                    head_post(st, S->q, qd, (int)u, L->q_norm);
                } else if (u < (size_t)(nh + nkv)) {
                    int g = (int)u - nh;
                    lin_part(&L->k, qa, g * gph, (g + 1) * gph, S->k, kd, st->R);
                    head_post(st, S->k, kd, g, L->k_norm);
                    cache_put(st, l, S->k, g, 0);
                } else {
                    int g = (int)u - nh - nkv;
                    lin_part(&L->v, qa, g * gph, (g + 1) * gph, S->v, kd, st->R);
                    cache_put(st, l, S->v, g, 1);
                }
            }
        return;
    }
    /* Heads that do not align with row groups: the three projections by groups, then heads. */
    size_t gq = krn_i2_groups(L->q.q), gk = krn_i2_groups(L->k.q), *c = next_ctr(st, cu);
    while (claim(c, gq + 2 * gk, chunk(gq + 2 * gk, cu->nth, 2), &lo, &hi)) {
        if (lo < gq)
            lin_part(&L->q, qa, lo, hi < gq ? hi : gq, S->q, qd, st->R);
        if (hi > gq && lo < gq + gk)
            lin_part(&L->k, qa, (lo > gq ? lo : gq) - gq, (hi < gq + gk ? hi : gq + gk) - gq, S->k,
                     kd, st->R);
        if (hi > gq + gk)
            lin_part(&L->v, qa, (lo > gq + gk ? lo : gq + gk) - gq - gk, hi - gq - gk, S->v, kd,
                     st->R);
    }
    krn_pool_barrier(st->pool);
    c = next_ctr(st, cu);
    while (claim(c, units, 1, &lo, &hi))
        for (size_t u = lo; u < hi; u++) {
            if (u < (size_t)nh)
                head_post(st, S->q, qd, (int)u, L->q_norm);
            else if (u < (size_t)(nh + nkv)) {
                head_post(st, S->k, kd, (int)u - nh, L->k_norm);
                cache_put(st, l, S->k, (int)u - nh, 0);
            } else
                cache_put(st, l, S->v, (int)u - nh - nkv, 1);
        }
}

/* Causal attention, one (piece, query head) unit at a time: for token t of the piece at
 * position p0 + t, keys 0..p0+t of its sequence's cache. Scores in this thread's scratch. With
 * map (the last layer of a keep pass): only rows map[row] >= 0, written to att row map[row]. */
static void attention(struct step *st, int l, struct cursor *cu, const int *map)
{
    struct eng_ctx *S = st->S;
    const struct eng_config *cf = &S->m->cfg;
    int hd = cf->head_dim, nh = cf->heads, grp = cf->heads / cf->kv_heads;
    size_t qd = (size_t)nh * hd, kd = (size_t)cf->kv_heads * hd, lo, hi;
    float scale = 1.0f / sqrtf((float)hd), *sc = st->sc->scores + (size_t)cu->ith * st->keys;
    size_t *c = next_ctr(st, cu);
    while (claim(c, (size_t)st->np * nh, 1, &lo, &hi)) {
        size_t u = lo;
        const struct eng_piece *pc = &st->pc[u / nh];
        int h = (int)(u % nh);
        size_t base = (size_t)l * pc->ctx->max_t * kd + (size_t)(h / grp) * hd;
        const float *K = pc->ctx->kc + base, *V = pc->ctx->vc + base;
        for (int t = 0; t < pc->n; t++) {
            size_t nk = (size_t)pc->p0 + t + 1, row = (size_t)pc->row + t, out = row;
            if (map && map[row] < 0)
                continue;
            if (map)
                out = (size_t)map[row];
            krn_attn_scores(sc, S->q + row * qd + (size_t)h * hd, K, kd, nk, (size_t)hd, scale);
            krn_softmax(sc, 1, nk);
            krn_attn_values(S->att + out * qd + (size_t)h * hd, sc, V, kd, nk, (size_t)hd);
        }
    }
}

/* y = l(qa) into S->xn for this thread's row groups, then x += y on those columns. */
static void proj_residual(struct step *st, const struct eng_lin *l, const krn_qact *qa,
                          struct cursor *cu)
{
    struct eng_ctx *S = st->S;
    size_t H = (size_t)S->m->cfg.hidden, lo, hi, ng = krn_i2_groups(l->q), *c = next_ctr(st, cu);
    while (claim(c, ng, chunk(ng, cu->nth, 2), &lo, &hi)) {
        lin_part(l, qa, lo, hi, S->xn, H, cu->R);
        size_t c0 = 16 * lo, c1 = 16 * hi < H ? 16 * hi : H;
        for (int t = 0; t < cu->R; t++)
            krn_add(S->x + t * H + c0, S->x + t * H + c0, S->xn + t * H + c0, c1 - c0);
    }
}

/* gate and up over the same row groups, then SwiGLU g = silu(g) * u on those columns. */
static void gate_up(struct step *st, const struct eng_layer *L, struct cursor *cu)
{
    struct eng_ctx *S = st->S;
    size_t I = (size_t)S->m->cfg.inter, lo, hi, ng = krn_i2_groups(L->gate.q);
    size_t *c = next_ctr(st, cu);
    while (claim(c, ng, chunk(ng, cu->nth, 2), &lo, &hi)) {
        lin_part(&L->gate, cu->qh, lo, hi, S->g, I, cu->R);
        lin_part(&L->up, cu->qh, lo, hi, S->u, I, cu->R);
        size_t c0 = 16 * lo, c1 = 16 * hi < I ? 16 * hi : I;
        for (int t = 0; t < cu->R; t++)
            krn_silu_mul(S->g + t * I + c0, S->g + t * I + c0, S->u + t * I + c0, c1 - c0);
    }
}

/* The LM head over the wanted rows (quantized into qh rows 0..n-1 by the caller phase). */
static void head(struct step *st, struct cursor *cu)
{
    const struct qmat *h = eng_student_headmat_(st->S->m->stu);
    size_t V = (size_t)h->m, lo, hi, *c = next_ctr(st, cu);
    size_t ng = h->q4 ? krn_q4_groups(h->k4) : krn_q8_groups(h->k8);
    while (claim(c, ng, chunk(ng, cu->nth, 2), &lo, &hi)) {
        if (h->q4)
            krn_q4_gemm_part(h->k4, cu->qh, lo, hi, st->head->logits, V);
        else
            krn_q8_gemm_part(h->k8, cu->qh, lo, hi, st->head->logits, V);
    }
}

/* Decode (one row, several threads): every thread RMS-norms the row x [d] into its private
 * row and quantizes it into its private activations qa, instead of one thread doing it for all
 * behind a barrier. The same functions on the same data: the same numbers. */
static void norm_quant_own(struct step *st, const float *x, const float *w, int d, krn_qact *qa,
                           float *tmp)
{
    if (w) {
        krn_rmsnorm(tmp, NULL, x, w, 1, (size_t)d, st->S->m->cfg.eps);
        x = tmp;
    }
    krn_qact_quantize_row(qa, 0, x);
}

/* Phases of a layer, for the profile (BITDISTILL_STEP_PROFILE=1). */
static const char *const phase_names[STU_PHASES] = {"embed",
                                                    "norm+quant (attn in)",
                                                    "q/k/v + rope + cache",
                                                    "attention",
                                                    "subln+quant (o in)",
                                                    "o_proj + residual",
                                                    "norm+quant (ffn in)",
                                                    "gate/up + swiglu",
                                                    "subln+quant (down in)",
                                                    "down_proj + residual",
                                                    "final norm + quant",
                                                    "head"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* End of phase ph on thread 0: its own work time, then the barrier's wait (profile only). */
static void phase_end(struct step *st, int ith, int ph, double *t)
{
    if (!st->sc->profile || ith != 0) {
        krn_pool_barrier(st->pool);
        return;
    }
    double t1 = now_s();
    krn_pool_barrier(st->pool);
    double t2 = now_s();
    st->sc->prof[ph][0] += t1 - *t;
    st->sc->prof[ph][1] += t2 - t1;
    *t = t2;
}

/* End of phase ph on thread 0 without a barrier (profile only). */
static void phase_mark(struct step *st, int ith, int ph, double *t)
{
    if (!st->sc->profile || ith != 0)
        return;
    double t1 = now_s();
    st->sc->prof[ph][0] += t1 - *t;
    *t = t1;
}

/* One layer of a decode pass (R == 1, nth > 1): private norms, 5 barriers. */
static void layer_own(struct step *st, int l, struct cursor *cu, double *t)
{
    struct eng_ctx *S = st->S;
    const struct eng_config *cf = &S->m->cfg;
    const struct eng_layer *L = &S->m->layers[l];
    int ith = cu->ith, H = cf->hidden, qd = cf->heads * cf->head_dim;
    norm_quant_own(st, S->x, L->in_norm, H, cu->qh, cu->tmp);
    phase_mark(st, ith, 1, t);
    qkv(st, l, cu);
    phase_end(st, ith, 2, t);
    attention(st, l, cu, NULL);
    phase_end(st, ith, 3, t);
    norm_quant_own(st, S->att, L->attn_sub, qd, cu->qq, cu->tmp);
    phase_mark(st, ith, 4, t);
    proj_residual(st, &L->o, cu->qq, cu);
    phase_end(st, ith, 5, t);
    norm_quant_own(st, S->x, L->post_norm, H, cu->qh, cu->tmp);
    phase_mark(st, ith, 6, t);
    gate_up(st, L, cu);
    phase_end(st, ith, 7, t);
    norm_quant_own(st, S->g, L->ffn_sub, cf->inter, cu->qi, cu->tmp);
    phase_mark(st, ith, 8, t);
    proj_residual(st, &L->down, cu->qi, cu);
    phase_end(st, ith, 9, t);
}

static void step_run(void *arg, int ith, int nth)
{
    struct step *st = arg;
    struct eng_ctx *S = st->S;
    struct eng_model *m = S->m;
    const struct eng_config *cf = &m->cfg;
    int H = cf->hidden, qd = cf->heads * cf->head_dim;
    double t = st->sc->profile && ith == 0 ? now_s() : 0;
    struct stu_ctx *sc = st->sc;
    int own = st->R == 1 && nth > 1;
    struct cursor cu = {ith, nth, 0, sc->qh, sc->qq, sc->qi, NULL, st->R};
    if (own) {
        cu.qh = sc->own[3 * ith];
        cu.qq = sc->own[3 * ith + 1];
        cu.qi = sc->own[3 * ith + 2];
        cu.tmp = sc->own_tmp + (size_t)ith * sc->own_d;
    }

    for (int p = 0; p < st->np; p++)
        for (int i = 0; i < st->pc[p].n; i++)
            if ((st->pc[p].row + i) % nth == ith)
                m->ops->embed(m, st->pc[p].tok[i], S->x + (size_t)(st->pc[p].row + i) * H);
    phase_end(st, ith, 0, &t);
    for (int l = 0; own && l < cf->layers; l++)
        layer_own(st, l, &cu, &t);
    for (int l = 0; !own && l < cf->layers; l++) {
        const struct eng_layer *L = &m->layers[l];
        int cut = st->keep && l == cf->layers - 1; /* the last layer on the kept rows only */
        norm_quant(st, S->x, S->xn, L->in_norm, H, st->sc->qh, cu.R, ith, nth);
        phase_end(st, ith, 1, &t);
        if (cut && ith == 0)
            keep_rows_x(st);
        qkv(st, l, &cu);
        phase_end(st, ith, 2, &t);
        if (cut && st->K == 0)
            break; /* no row wanted: the cache has this layer's k/v, nothing else is read */
        if (cut && ith == 0) { /* the activations from here on hold the K kept rows (all
                                * threads finished reading qh's R rows at the barrier above) */
            krn_qact_prepare(sc->qh, (size_t)st->K);
            krn_qact_prepare(sc->qq, (size_t)st->K);
            krn_qact_prepare(sc->qi, (size_t)st->K);
        }
        attention(st, l, &cu, cut ? st->kmap : NULL);
        phase_end(st, ith, 3, &t);
        if (cut)
            cu.R = st->K;
        norm_quant(st, S->att, NULL, L->attn_sub, qd, st->sc->qq, cu.R, ith, nth);
        phase_end(st, ith, 4, &t);
        proj_residual(st, &L->o, st->sc->qq, &cu);
        phase_end(st, ith, 5, &t);
        norm_quant(st, S->x, S->xn, L->post_norm, H, st->sc->qh, cu.R, ith, nth);
        phase_end(st, ith, 6, &t);
        gate_up(st, L, &cu);
        phase_end(st, ith, 7, &t);
        norm_quant(st, S->g, NULL, L->ffn_sub, cf->inter, st->sc->qi, cu.R, ith, nth);
        phase_end(st, ith, 8, &t);
        proj_residual(st, &L->down, st->sc->qi, &cu);
        phase_end(st, ith, 9, &t);
    }
    if (own) { /* every thread: the final norm of the row and its quantization for the head */
        float *xn = ith == 0 ? S->xn : cu.tmp; /* thread 0 leaves it in S->xn for the caller */
        krn_rmsnorm(xn, NULL, S->x, m->norm, 1, (size_t)H, cf->eps);
        if (st->head)
            krn_qact_quantize_row(cu.qh, 0, xn);
        phase_mark(st, ith, 10, &t);
        if (st->head)
            head(st, &cu);
        if (st->sc->profile && ith == 0)
            st->sc->prof[11][0] += now_s() - t;
        if (ith == 0)
            st->used = cu.k;
        return;
    }
    /* Final norm of each row into its pass row of S->xn; with keep, row i of x is pass row
     * keep[i] (x was compacted, xn is not: the caller reads the rows where they were). */
    for (int i = ith; i < (st->keep ? st->K : st->R); i += nth) {
        int row = st->keep ? st->keep[i] : i;
        float *xn = S->xn + (size_t)row * H;
        krn_rmsnorm(xn, NULL, S->x + (size_t)i * H, m->norm, 1, (size_t)H, cf->eps);
        for (int j = 0; st->head && j < st->head->n; j++) /* row wanted by the head: slot j */
            if (st->head->rows[j] == row)
                krn_qact_quantize_row(st->sc->qh, (size_t)j, xn);
    }
    if (st->head) {
        if (ith == 0) /* qh now holds the head's n rows (read by all after the barrier) */
            krn_qact_prepare(st->sc->qh, (size_t)st->head->n);
        phase_end(st, ith, 10, &t);
        head(st, &cu);
    }
    if (st->sc->profile && ith == 0)
        st->sc->prof[11][0] += now_s() - t;
    if (ith == 0) /* every thread walked the same phases: the same count */
        st->used = cu.k;
}

void eng_step_profile_print(const struct stu_ctx *sc, FILE *f)
{
    double tot = 0;
    for (int i = 0; i < STU_PHASES; i++)
        tot += sc->prof[i][0] + sc->prof[i][1];
    fprintf(f, "step profile (thread 0, %d threads, %.3f s in passes)\n%-24s %9s %9s %7s\n",
            krn_pool_size(sc->pool), tot, "phase", "work ms", "wait ms", "share");
    for (int i = 0; i < STU_PHASES; i++)
        fprintf(f, "%-24s %9.2f %9.2f %6.1f%%\n", phase_names[i], sc->prof[i][0] * 1e3,
                sc->prof[i][1] * 1e3, tot > 0 ? 100 * (sc->prof[i][0] + sc->prof[i][1]) / tot : 0);
}

/* The shapes the pass relies on, checked on a context's first pass (the model's layers do not
 * change under a context, and contexts are reused: not on every pass). */
static int check_shapes(struct eng_ctx *S)
{
    const struct eng_config *cf = &S->m->cfg;
    size_t H = (size_t)cf->hidden, qd = (size_t)cf->heads * cf->head_dim;
    size_t kd = (size_t)cf->kv_heads * cf->head_dim, I = (size_t)cf->inter;
    for (int l = 0; l < cf->layers; l++) {
        const struct eng_layer *L = &S->m->layers[l];
        const struct eng_lin *ls[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        const size_t in[7] = {H, H, H, qd, H, H, I}, out[7] = {qd, kd, kd, H, I, I, H};
        for (int j = 0; j < 7; j++)
            if (!ls[j]->q || krn_i2_cols(ls[j]->q) != in[j] || krn_i2_rows(ls[j]->q) != out[j])
                return eng_fail(S->err, ENG_ESHAPE,
                                "layer %d projection %d: weights %zux%zu, "
                                "the config wants %zux%zu",
                                l, j, ls[j]->q ? krn_i2_rows(ls[j]->q) : 0,
                                ls[j]->q ? krn_i2_cols(ls[j]->q) : 0, out[j], in[j]);
    }
    return 0;
}

/* Per-thread activations and a private row for decode passes (layer_own), made once. */
static int own_alloc(struct eng_ctx *S, struct stu_ctx *sc, int nth)
{
    const struct eng_config *cf = &S->m->cfg;
    size_t H = (size_t)cf->hidden, qd = (size_t)cf->heads * cf->head_dim, I = (size_t)cf->inter;
    size_t d = H > qd ? H : qd;
    d = (d > I ? d : I) + 15;
    d -= d % 16; /* rows on their own cache lines */
    sc->own = calloc((size_t)nth * 3, sizeof(*sc->own));
    sc->own_tmp = krn_zalloc64((size_t)nth * d * sizeof(float));
    sc->own_n = nth;
    sc->own_d = d;
    int ok = sc->own && sc->own_tmp;
    for (int i = 0; ok && i < nth; i++)
        ok = !krn_qact_create(1, H, &sc->own[3 * i]) &&
             !krn_qact_create(1, qd, &sc->own[3 * i + 1]) &&
             !krn_qact_create(1, I, &sc->own[3 * i + 2]) && !krn_qact_prepare(sc->own[3 * i], 1) &&
             !krn_qact_prepare(sc->own[3 * i + 1], 1) && !krn_qact_prepare(sc->own[3 * i + 2], 1);
    return ok ? 0 : eng_fail(S->err, ENG_ENOMEM, "out of memory for the decode activations");
}

void eng_step_release(struct stu_ctx *sc)
{
    for (int i = 0; sc->own && i < 3 * sc->own_n; i++)
        krn_qact_free(sc->own[i]);
    free(sc->own);
    free(sc->own_tmp);
    sc->own = NULL;
    sc->own_tmp = NULL;
}

/* The keep rows are ascending pass rows and hold every logit row; their map row -> index into
 * kmap [R]. Returns 0 or a status. */
static int keep_check(struct eng_ctx *S, struct stu_ctx *sc, int R,
                      const struct eng_step_keep *keep, const struct eng_step_head *head)
{
    if (keep->n < 0 || keep->n > R)
        return eng_fail(S->err, ENG_ERANGE, "%d kept rows of a %d-row pass", keep->n, R);
    if ((size_t)R > sc->kmap_cap) {
        int *k = realloc(sc->kmap, (size_t)R * sizeof(int));
        if (!k)
            return eng_fail(S->err, ENG_ENOMEM, "out of memory for the kept rows");
        sc->kmap = k;
        sc->kmap_cap = (size_t)R;
    }
    for (int i = 0; i < R; i++)
        sc->kmap[i] = -1;
    for (int j = 0; j < keep->n; j++) {
        int r = keep->rows[j];
        if (r < 0 || r >= R || (j > 0 && r <= keep->rows[j - 1]))
            return eng_fail(S->err, ENG_EINVAL,
                            "kept row %d: not an ascending row of the "
                            "%d-row pass",
                            r, R);
        sc->kmap[r] = j;
    }
    for (int j = 0; head && j < head->n; j++)
        if (head->rows[j] < 0 || head->rows[j] >= R || sc->kmap[head->rows[j]] < 0)
            return eng_fail(S->err, ENG_EINVAL, "logit row %d is not among the kept rows",
                            head->rows[j]);
    return 0;
}

int eng_step_layers(struct eng_ctx *S, const struct eng_piece *pc, int np, int R,
                    const struct eng_step_head *head, const struct eng_step_keep *keep)
{
    struct stu_ctx *sc = S->qa;
    int rc, nth = krn_pool_size(sc->pool);
    if (!sc->shapes_ok && (rc = check_shapes(S)))
        return rc;
    sc->shapes_ok = 1;
    if (head && head->n == 0)
        head = NULL;
    /* A decode row (R == 1), every row kept, or BITDISTILL_STEP=all-rows: the plain pass. */
    if (keep && (keep->n == R || (R == 1 && nth > 1) || sc->all_rows))
        keep = NULL;
    if (keep && (rc = keep_check(S, sc, R, keep, head)))
        return rc;
    if (krn_qact_prepare(sc->qh, (size_t)R) || krn_qact_prepare(sc->qq, (size_t)R) ||
        krn_qact_prepare(sc->qi, (size_t)R))
        return eng_fail(S->err, ENG_ERANGE, "%d rows exceed the pass's %d", R, S->chunk);
    if (head && head->n > R)
        return eng_fail(S->err, ENG_ERANGE, "%d logit rows of a %d-row pass", head->n, R);
    size_t nctr = (size_t)S->m->cfg.layers * 12 + 8; /* phases with a counter, generously */
    if (nctr > sc->nctr) {
        free(sc->ctr);
        sc->ctr = krn_zalloc64(nctr * STU_CTR_STRIDE * sizeof(size_t));
        sc->nctr = sc->ctr ? nctr : 0;
        sc->nctr_used = 0;
        if (!sc->ctr)
            return eng_fail(S->err, ENG_ENOMEM, "out of memory for the pass's counters");
    }
    /* Only the counters the last pass claimed are non-zero (the rest still hold the zeros of
     * the allocation): reset those, ~6 cache lines a layer instead of the whole array. */
    memset(sc->ctr, 0, sc->nctr_used * STU_CTR_STRIDE * sizeof(size_t));
    size_t keys = 1;
    for (int p = 0; p < np; p++)
        keys = (size_t)(pc[p].p0 + pc[p].n) > keys ? (size_t)(pc[p].p0 + pc[p].n) : keys;
    keys = (keys + 15) / 16 * 16; /* each thread's row on its own cache lines */
    if (keys * nth > sc->scores_cap) {
        float *s = realloc(sc->scores, keys * nth * sizeof(float));
        if (!s)
            return eng_fail(S->err, ENG_ENOMEM, "out of memory for attention scores");
        sc->scores = s;
        sc->scores_cap = keys * nth;
    }
    if (R == 1 && nth > 1 && !sc->own && (rc = own_alloc(S, sc, nth)))
        return rc;
    struct step st = {S,
                      pc,
                      np,
                      R,
                      sc->pool,
                      sc,
                      keys,
                      head,
                      nth,
                      keep ? keep->rows : NULL,
                      keep ? keep->n : R,
                      sc->kmap,
                      0};
    krn_pool_run(sc->pool, step_run, &st);
    sc->nctr_used = st.used;
    return 0;
}
