/*
 * kernels/gemm.h — the matrix kernels of the student forward pass, threaded over output rows.
 *
 * All of them compute, for the n tokens last quantized into `x` (krn_qact) and every output row
 * m < M of the weights:  y[t * ldy + m] = <row m of W> . <token t of x>  in fp32, with int32
 * accumulation of the integer dot products (bounds in quant.h). ldy >= M; y need not be
 * aligned. `pool` may be NULL (single-threaded); work is split over row groups of 16.
 * Returns KRN_OK, or KRN_ESHAPE when krn_qact_cols(x) != the weights' K (nothing written).
 *
 * n == 1 is the decode GEMV (memory-bound: one pass over the weights), n > 1 the prefill /
 * batched GEMM, which unpacks each weight tile once and reuses it across 4-8 tokens (AVX-512,
 * AVX2, NEON) or feeds TDPBUSD tiles of 16 tokens (AMX, n >= 16).
 */
#ifndef BD_KERNELS_GEMM_H
#define BD_KERNELS_GEMM_H

#include <stddef.h>

#include "kernels/pool.h"
#include "kernels/quant.h"

/* Ternary linear layer: y[t][m] = d * (g_t/127) * (dot(c_m + 1, q_t) - sum(q_t)). */
int krn_i2_gemm(const krn_i2 *w, const krn_qact *x, float *y, size_t ldy, krn_pool *pool);

/* Several ternary layers that read the same activations (q/k/v; gate/up) in ONE parallel
 * region: for i < nw, y[i][t * ldy[i] + m] = <row m of w[i]> . <token t of x>. Same numbers as
 * nw separate krn_i2_gemm calls, bit for bit; saves nw - 1 pool round trips (~2 us each at 16
 * threads, as long as a 1024x1024 decode GEMV itself). All w[i] must have K = krn_qact_cols(x)
 * (else KRN_ESHAPE, nothing written); arrays borrowed. */
int krn_i2_gemm_multi(const krn_i2 *const *w, size_t nw, const krn_qact *x, float *const *y,
                      const size_t *ldy, krn_pool *pool);

/* INT8 per-row head: y[t][m] = s_m * (g_t/127) * dot(w8_m, q_t). */
int krn_q8_gemm(const krn_q8 *w, const krn_qact *x, float *y, size_t ldy, krn_pool *pool);

/* 4-bit block-scaled head: y[t][m] = (g_t/127) * sum_b s[m][b] * dot_b(w4_m, q_t). */
int krn_q4_gemm(const krn_q4 *w, const krn_qact *x, float *y, size_t ldy, krn_pool *pool);

/* Row subsets (classification: only the verbalizer's label rows): for i < nrows,
 * y[t * ldy + i] = row rows[i] . token t (rows borrowed, any order, repeats allowed; ldy >=
 * nrows). Same numbers, bit for bit, as the full kernel's columns rows[i]. KRN_EINVAL for a
 * row index >= M. Cost: the 16-row groups that hold the requested rows. */
int krn_q8_gemm_rows(const krn_q8 *w, const size_t *rows, size_t nrows, const krn_qact *x, float *y,
                     size_t ldy, krn_pool *pool);
int krn_q4_gemm_rows(const krn_q4 *w, const size_t *rows, size_t nrows, const krn_qact *x, float *y,
                     size_t ldy, krn_pool *pool);
int krn_i2_gemm_rows(const krn_i2 *w, const size_t *rows, size_t nrows, const krn_qact *x, float *y,
                     size_t ldy, krn_pool *pool);

/* ---- In-region parts -----------------------------------------------------------------------
 * For a caller that runs a whole forward step as ONE pool region and splits the work itself
 * (engine/step.c): compute the output rows of row groups [g0, g1) (16 rows each; groups past
 * the matrix are ignored) for all tokens of x, into y[t * ldy + m] with y pointing at row 0.
 * No pool call and no shape check here: the caller checks once with krn_*_cols(w) ==
 * krn_qact_cols(x) and ldy >= rows. Numbers are those of the whole-matrix kernels, bit for bit,
 * whatever the split. */
size_t krn_i2_groups(const krn_i2 *w); /* ceil(M / 16) */
size_t krn_q8_groups(const krn_q8 *w);
size_t krn_q4_groups(const krn_q4 *w);
void krn_i2_gemm_part(const krn_i2 *w, const krn_qact *x, size_t g0, size_t g1, float *y,
                      size_t ldy);
void krn_q8_gemm_part(const krn_q8 *w, const krn_qact *x, size_t g0, size_t g1, float *y,
                      size_t ldy);
void krn_q4_gemm_part(const krn_q4 *w, const krn_qact *x, size_t g0, size_t g1, float *y,
                      size_t ldy);

#endif
