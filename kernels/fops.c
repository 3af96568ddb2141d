/*
 * kernels/fops.c — public float ops (fops.h): each forwards to the chosen variant's kernel;
 * the RoPE tables, built once per context, are plain scalar code here.
 */
#include <math.h>

#include "kernels/dispatch.h"
#include "kernels/fops.h"

void krn_rmsnorm(float *y, float *rstd, const float *x, const float *w, size_t n, size_t d,
                 float eps)
{
    krn_ops_get()->rmsnorm(y, rstd, x, w, n, d, eps);
}

void krn_rope(float *x, size_t n_tok, size_t n_head, size_t head_dim, const float *cos,
              const float *sin)
{
    krn_ops_get()->rope(x, n_tok, n_head, head_dim, cos, sin);
}

void krn_rope_tables(float *cos, float *sin, size_t n_pos, size_t head_dim, float theta)
{
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        float inv = 1.0f / powf(theta, e);
        for (size_t p = 0; p < n_pos; p++) {
            float a = (float)p * inv;
            cos[p * half + i] = cosf(a);
            sin[p * half + i] = sinf(a);
        }
    }
}

void krn_softmax(float *x, size_t n, size_t d)
{
    krn_ops_get()->softmax(x, n, d);
}

void krn_silu_mul(float *y, const float *g, const float *u, size_t n)
{
    krn_ops_get()->silu_mul(y, g, u, n);
}

void krn_add(float *y, const float *a, const float *b, size_t n)
{
    krn_ops_get()->add(y, a, b, n);
}

void krn_attn_scores(float *s, const float *q, const float *K, size_t ldk, size_t n, size_t d,
                     float scale)
{
    krn_ops_get()->attn_scores(s, q, K, ldk, n, d, scale);
}

void krn_attn_values(float *o, const float *p, const float *V, size_t ldv, size_t n, size_t d)
{
    krn_ops_get()->attn_values(o, p, V, ldv, n, d);
}
