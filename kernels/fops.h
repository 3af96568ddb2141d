/*
 * kernels/fops.h — the float ops of the forward pass, vectorised (AVX2, AVX-512, NEON) with a
 * scalar `_ref` twin each (dispatch.h), selected by krn_init(). All take row-major fp32 arrays
 * of any alignment; in-place use is allowed where the comment says so.
 *
 * Accuracy contract against _ref (tests use these named constants):
 *   krn_add: exact. krn_rope: the same multiplies and adds in the same order (the SIMD files
 *   are built with -ffp-contract=off), so exact unless the compiler fused the _ref's a*b - c
 *   into an FMA (aarch64 native builds may): tested within KRN_FOPS_RTOL. krn_rmsnorm,
 *   krn_softmax, krn_silu_mul: relative error <= KRN_FOPS_RTOL per element (different
 *   summation order; polynomial exp with <= 2 ulp).
 * NaN/Inf: propagate as IEEE arithmetic would (a NaN in a row gives NaN outputs of that row);
 * softmax subtracts the row max, so +-large finite inputs never overflow.
 */
#ifndef BD_KERNELS_FOPS_H
#define BD_KERNELS_FOPS_H

#include <stddef.h>

#define KRN_FOPS_RTOL 2e-5f

/* RMSNorm over n rows of d: y[i][j] = x[i][j] * r[i] * w[j], r[i] = 1 / sqrt(mean_j x[i][j]^2
 * + eps). x, y [n][d] (y may equal x), w [d]; rstd [n] gets r (what the trainer's backward
 * needs) unless it is NULL. */
void krn_rmsnorm(float *y, float *rstd, const float *x, const float *w, size_t n, size_t d,
                 float eps);

/* RoPE, Qwen/NeoX rotate-half layout, in place on x [n_tok][n_head][head_dim]:
 * for i < head_dim/2 with c = cos[t][i], s = sin[t][i]:
 *   x1 = x[..][i], x2 = x[..][i + head_dim/2];  x[..][i] = x1*c - x2*s;  x[..][i+half] = x2*c + x1*s
 * cos, sin: [n_tok][head_dim/2] tables for the tokens' positions (the engine builds them once
 * per position from theta). head_dim even. */
void krn_rope(float *x, size_t n_tok, size_t n_head, size_t head_dim, const float *cos,
              const float *sin);

/* The RoPE tables of positions 0..n_pos-1, as transformers computes them in float32:
 * inv_freq[i] = 1 / theta^(2i/head_dim), angle = pos * inv_freq[i] (float32);
 * cos, sin [n_pos][head_dim/2]. Scalar (built once per context or step, not per token). */
void krn_rope_tables(float *cos, float *sin, size_t n_pos, size_t head_dim, float theta);

/* Softmax of each of n rows of d, in place on x [n][d] (max-subtracted, sums to 1). */
void krn_softmax(float *x, size_t n, size_t d);

/* SwiGLU gate: y[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i], n elements.
 * y may equal g or u. */
void krn_silu_mul(float *y, const float *g, const float *u, size_t n);

/* Residual add: y[i] = a[i] + b[i] (y may equal a or b). */
void krn_add(float *y, const float *a, const float *b, size_t n);

/* Attention scores of one query against n keys: s[j] = scale * dot(q, K + j * ldk) over d
 * features, j < n. q [d], K rows of d at stride ldk (floats). Error against _ref: per score,
 * <= KRN_FOPS_RTOL * scale * sum_i |q_i k_ji| (summation order). */
void krn_attn_scores(float *s, const float *q, const float *K, size_t ldk, size_t n, size_t d,
                     float scale);

/* Attention output of one query: o[i] = sum_{j<n} p[j] * V[j * ldv + i] for i < d (o
 * overwritten; accumulated in j order per element in every variant, so exact against _ref
 * unless the compiler contracts the _ref's multiply-add). */
void krn_attn_values(float *o, const float *p, const float *V, size_t ldv, size_t n, size_t d);

#endif
