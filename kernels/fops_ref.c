/*
 * kernels/fops_ref.c — scalar reference of the float ops (fops.h). Loads and stores go through
 * memcpy because callers may pass float arrays at any byte address.
 */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"

static inline float ld(const float *p)
{
    float v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void st(float *p, float v)
{
    memcpy(p, &v, sizeof(v));
}

void krn_rmsnorm_ref(float *y, float *rstd, const float *x, const float *w, size_t n, size_t d,
                     float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xr = x + i * d;
        double ss = 0.0;
        for (size_t j = 0; j < d; j++)
            ss += (double)ld(&xr[j]) * ld(&xr[j]);
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        if (rstd)
            st(&rstd[i], r);
        for (size_t j = 0; j < d; j++)
            st(&y[i * d + j], ld(&xr[j]) * r * ld(&w[j]));
    }
}

void krn_rope_ref(float *x, size_t n_tok, size_t n_head, size_t head_dim, const float *cos,
                  const float *sin)
{
    size_t half = head_dim / 2;
    for (size_t t = 0; t < n_tok; t++)
        for (size_t h = 0; h < n_head; h++) {
            float *v = x + (t * n_head + h) * head_dim;
            for (size_t i = 0; i < half; i++) {
                float c = ld(&cos[t * half + i]), s = ld(&sin[t * half + i]);
                float x1 = ld(&v[i]), x2 = ld(&v[i + half]);
                float a = x1 * c, b = x2 * s, e = x2 * c, f = x1 * s;
                st(&v[i], a - b);
                st(&v[i + half], e + f);
            }
        }
}

void krn_softmax_ref(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * d;
        float mx = -INFINITY;
        for (size_t j = 0; j < d; j++)
            mx = fmaxf(mx, ld(&r[j]));
        double s = 0.0;
        for (size_t j = 0; j < d; j++) {
            float e = expf(ld(&r[j]) - mx);
            st(&r[j], e);
            s += e;
        }
        float inv = (float)(1.0 / s);
        for (size_t j = 0; j < d; j++)
            st(&r[j], ld(&r[j]) * inv);
    }
}

void krn_silu_mul_ref(float *y, const float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float gv = ld(&g[i]);
        st(&y[i], gv / (1.0f + expf(-gv)) * ld(&u[i]));
    }
}

void krn_add_ref(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        st(&y[i], ld(&a[i]) + ld(&b[i]));
}

void krn_attn_scores_ref(float *s, const float *q, const float *K, size_t ldk, size_t n, size_t d,
                         float scale)
{
    for (size_t j = 0; j < n; j++) {
        float acc = 0.0f;
        for (size_t i = 0; i < d; i++)
            acc += ld(&q[i]) * ld(&K[j * ldk + i]);
        st(&s[j], acc * scale);
    }
}

void krn_attn_values_ref(float *o, const float *p, const float *V, size_t ldv, size_t n, size_t d)
{
    for (size_t i = 0; i < d; i++)
        st(&o[i], 0.0f);
    for (size_t j = 0; j < n; j++) {
        float pj = ld(&p[j]);
        for (size_t i = 0; i < d; i++) {
            float a = pj * ld(&V[j * ldv + i]);
            st(&o[i], ld(&o[i]) + a);
        }
    }
}
