/*
 * train/arena.h — the activation arena of one trainer model for a planned batch shape
 * (prefix trn_arena_): every activation the backward reads and every scratch buffer, laid out
 * in one allocation. The CPU trainer (model.c, host memory) and the GPU trainer (cuda_model.c,
 * device memory) use this one layout over their own allocation: laying it out is pointer
 * arithmetic on a base, never a dereference. Shapes: N = B*T rows, H hidden, QD = heads*hd,
 * KD = kv_heads*hd, I the FFN width, V the vocabulary.
 *
 * A copy that a model would only make to keep the layer's shape (the "activation quantization"
 * of a model without BitLinear, the norm of a model without SubLN or QK-norm) is an alias of its
 * source instead: the forwards skip it when the two pointers are equal.
 */
#ifndef BD_TRAIN_ARENA_H
#define BD_TRAIN_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* One layer's activations, kept for the backward. */
struct trn_acts {
    /* xn1, an, xn2, hn: the norms' outputs (tmp with BitLinear, see trn_arena_spec) */
    float *xn1, *xq1, *q, *k, *v, *qn, *kn, *qr, *kr, *probs, *a, *an, *xq2, *xm, *xn2, *xq3, *g,
        *u, *h, *hn, *xq4;
    /* attention's saved state: probs [B][NH][T][T], or with flash (spec) lse [B][NH][T] instead
     * (the other NULL) */
    float *lse;
    /* flash: the attention's operands in bf16 (16-byte aligned) instead of qr, kr (NULL) */
    uint16_t *qb, *kb, *vb;
    /* gu16: the gate and up outputs in bf16 [N][I] (16-byte aligned) instead of g, u (NULL) */
    uint16_t *gb, *ub;
    float *r1, *rq, *rk, *ra, *r2, *rh; /* rstd of each RMSNorm [rows] */
};

struct trn_arena {
    float *resid;                  /* [L+1][N][H] residual stream at layer boundaries */
    struct trn_acts *acts;         /* [L], owned by the caller */
    float *xf, *rf, *logits, *tmp; /* [N][H], [N], [N][V], [N][max(H, QD, I)] */
    float *cs, *sn;                /* RoPE tables [T][hd/2] */
    /* the backward's (NULL without grad) */
    float *dlogits; /* [N][V] */
    float *dstate;  /* [L][N][QD+2KD]: gradients of the states qn, kn, v ([1]: nostates) */
    float *dres, *d1, *d2, *dg, *du, *dq, *dk; /* [N][H], 2 x [N][max], 2 x [N][I], dq, dk */
    float *dsc;                                /* the attention backward's scratch (dsc floats) */
    /* gui8: the gate|up INT8 product's int32 sums [N][2I], 16-byte aligned, read by the fused
     * SwiGLU right after (with grad: the memory of dg and du, unused until the backward) */
    int32_t *gsum;
};

/* What a model lays out: grad adds the backward's buffers (without it, the layers share one
 * set of activations and keep only their states qn, kn, v); dsc sizes the attention backward's
 * scratch; quant (BitLinear) and subln say which copies are real (with quant, the norms'
 * outputs live in tmp: only their quantized copies are kept); flash keeps attention's per-row
 * log-sum-exp (lse) instead of the probabilities (the GPU's fused attention); nologits leaves
 * out logits and dlogits (the GPU's fused head computes them a chunk at a time); nostates: no
 * relation loss reads the states, so the layers share qn and kn and one layer of dstate; noh: the
 * SwiGLU output h is never stored (the GPU's fused SwiGLU + SubLN recomputes it from g and u);
 * narrow: the BitLinear inputs xq1..xq4 hold the GPU's narrow codes (int8 and bf16 values and a
 * scale per row, 3 NC + 4 N bytes and alignment) instead of [N][C] floats; gu16: the gate and
 * up products' outputs in bf16 (gb, ub), as autocast keeps them (the GPU's fused SwiGLU kernels
 * read them so); gui8: the gate|up product's INT8 sums have a place (gsum). */
struct trn_arena_spec {
    int B, T, grad, quant, subln, flash, nologits, nostates, noh, narrow, gu16, gui8;
    size_t dsc;
};

/* Floats the arena of spec needs. */
size_t trn_arena_floats(const struct eng_config *c, const struct trn_arena_spec *s);
/* Lay the arena out over base (at least trn_arena_floats floats); a->acts must hold c->layers
 * entries. Returns the end of what was laid out. */
float *trn_arena_lay(struct trn_arena *a, float *base, const struct eng_config *c,
                     const struct trn_arena_spec *s);

#endif
