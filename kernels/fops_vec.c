/*
 * kernels/fops_vec.c — the float ops of fops.h written once with GCC vector extensions and
 * compiled per ISA (AVX2: 8 lanes, AVX-512: 16, NEON: 4); the build passes -DKRN_SFX=<name>
 * -DKRN_VW=<lanes> and -ffp-contract=off (so a*b-c stays two roundings, like _ref).
 *
 * exp() is the Cephes single-precision polynomial (|rel err| < 2 ulp on [-87.3, 88.4]),
 * inputs clamped to that range, NaN propagated. Tolerances against _ref: fops.h.
 */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"

#ifndef KRN_SFX
#error "KRN_SFX must name the variant"
#endif
#define CAT2_(a, b) a##_##b
#define CAT_(a, b) CAT2_(a, b)
#define FN(name) CAT_(name, KRN_SFX)

typedef float vf __attribute__((vector_size(KRN_VW * 4)));
typedef int vi __attribute__((vector_size(KRN_VW * 4)));
#define VW KRN_VW

static inline vf ldv(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void stv(float *p, vf v)
{
    memcpy(p, &v, sizeof(v));
}

static inline vf splat(float s)
{
    return (vf){0} + s;
}

static inline vf sel(vi m, vf a, vf b)
{
    return (vf)((m & (vi)a) | (~m & (vi)b));
}

static inline vf vexp(vf x)
{
    const vf hi = splat(88.3762626647949f), lo = splat(-87.3365447504f);
    x = sel(x > hi, hi, x);
    x = sel(x < lo, lo, x);
    vf t = x * splat(1.44269504088896341f) + splat(0.5f);
    vi n = __builtin_convertvector(t, vi);
    vf nf = __builtin_convertvector(n, vf);
    vi fix = nf > t; /* truncation went up for negative t: floor */
    n = n + fix;     /* fix is -1 where true */
    nf = __builtin_convertvector(n, vf);
    vf r = x - nf * splat(0.693359375f);
    r = r - nf * splat(-2.12194440e-4f);
    vf p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1.0f);
    vi e = (n + 127) << 23;
    return p * (vf)e;
}

static inline float hsum(vf v)
{
    float s = 0.0f;
    for (int i = 0; i < VW; i++)
        s += v[i];
    return s;
}

void FN(krn_rmsnorm)(float *y, float *rstd, const float *x, const float *w, size_t n, size_t d,
                     float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xr = x + i * d;
        float *yr = y + i * d;
        vf acc = {0}, acc2 = {0};
        size_t j = 0;
        for (; j + 2 * VW <= d; j += 2 * VW) {
            vf a = ldv(xr + j), b = ldv(xr + j + VW);
            acc += a * a;
            acc2 += b * b;
        }
        for (; j + VW <= d; j += VW) {
            vf a = ldv(xr + j);
            acc += a * a;
        }
        float ss = hsum(acc + acc2);
        for (; j < d; j++) {
            float v;
            memcpy(&v, xr + j, sizeof(v));
            ss += v * v;
        }
        float r = 1.0f / sqrtf(ss / (float)d + eps);
        if (rstd)
            memcpy(rstd + i, &r, sizeof(r));
        vf vr = splat(r);
        for (j = 0; j + VW <= d; j += VW)
            stv(yr + j, ldv(xr + j) * vr * ldv(w + j));
        for (; j < d; j++) {
            float a, b;
            memcpy(&a, xr + j, sizeof(a));
            memcpy(&b, w + j, sizeof(b));
            a = a * r * b;
            memcpy(yr + j, &a, sizeof(a));
        }
    }
}

void FN(krn_rope)(float *x, size_t n_tok, size_t n_head, size_t head_dim, const float *cos,
                  const float *sin)
{
    size_t half = head_dim / 2;
    for (size_t t = 0; t < n_tok; t++)
        for (size_t h = 0; h < n_head; h++) {
            float *v = x + (t * n_head + h) * head_dim;
            const float *c = cos + t * half, *s = sin + t * half;
            size_t i = 0;
            for (; i + VW <= half; i += VW) {
                vf x1 = ldv(v + i), x2 = ldv(v + i + half), vc = ldv(c + i), vs = ldv(s + i);
                vf a = x1 * vc, b = x2 * vs, e = x2 * vc, f = x1 * vs;
                stv(v + i, a - b);
                stv(v + i + half, e + f);
            }
            for (; i < half; i++) {
                float x1, x2, cc, ss;
                memcpy(&x1, v + i, 4);
                memcpy(&x2, v + i + half, 4);
                memcpy(&cc, c + i, 4);
                memcpy(&ss, s + i, 4);
                float a = x1 * cc, b = x2 * ss, e = x2 * cc, f = x1 * ss;
                a = a - b;
                e = e + f;
                memcpy(v + i, &a, 4);
                memcpy(v + i + half, &e, 4);
            }
        }
}

void FN(krn_softmax)(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * d;
        float mx = -INFINITY;
        int nan = 0;
        for (size_t j = 0; j < d; j++) {
            float v;
            memcpy(&v, r + j, 4);
            nan |= isnan(v);
            mx = v > mx ? v : mx;
        }
        if (nan)
            mx = NAN;
        vf vm = splat(mx), acc = {0};
        size_t j = 0;
        for (; j + VW <= d; j += VW) {
            vf e = vexp(ldv(r + j) - vm);
            stv(r + j, e);
            acc += e;
        }
        float s = hsum(acc);
        for (; j < d; j++) {
            float v;
            memcpy(&v, r + j, 4);
            v = vexp(splat(v - mx))[0];
            memcpy(r + j, &v, 4);
            s += v;
        }
        vf inv = splat(1.0f / s);
        for (j = 0; j + VW <= d; j += VW)
            stv(r + j, ldv(r + j) * inv);
        for (; j < d; j++) {
            float v;
            memcpy(&v, r + j, 4);
            v *= inv[0];
            memcpy(r + j, &v, 4);
        }
    }
}

void FN(krn_silu_mul)(float *y, const float *g, const float *u, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf gv = ldv(g + i);
        stv(y + i, gv / (splat(1.0f) + vexp(-gv)) * ldv(u + i));
    }
    for (; i < n; i++) {
        float gv, uv;
        memcpy(&gv, g + i, 4);
        memcpy(&uv, u + i, 4);
        gv = gv / (1.0f + vexp(splat(-gv))[0]) * uv;
        memcpy(y + i, &gv, 4);
    }
}

void FN(krn_add)(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        stv(y + i, ldv(a + i) + ldv(b + i));
    for (; i < n; i++) {
        float av, bv;
        memcpy(&av, a + i, 4);
        memcpy(&bv, b + i, 4);
        av += bv;
        memcpy(y + i, &av, 4);
    }
}

void FN(krn_attn_scores)(float *s, const float *q, const float *K, size_t ldk, size_t n, size_t d,
                         float scale)
{
    for (size_t j = 0; j < n; j++) {
        const float *kr = K + j * ldk;
        vf acc = {0}, acc2 = {0};
        size_t i = 0;
        for (; i + 2 * VW <= d; i += 2 * VW) {
            acc += ldv(q + i) * ldv(kr + i);
            acc2 += ldv(q + i + VW) * ldv(kr + i + VW);
        }
        for (; i + VW <= d; i += VW)
            acc += ldv(q + i) * ldv(kr + i);
        float a = hsum(acc + acc2);
        for (; i < d; i++) {
            float x, y;
            memcpy(&x, q + i, 4);
            memcpy(&y, kr + i, 4);
            a += x * y;
        }
        a *= scale;
        memcpy(s + j, &a, 4);
    }
}

/* o[i] accumulates p[j] * V[j][i] in j order, like _ref: 4 vectors of o stay in registers
 * while the keys stream past. */
void FN(krn_attn_values)(float *o, const float *p, const float *V, size_t ldvv, size_t n, size_t d)
{
    size_t i = 0;
    for (; i + 4 * VW <= d; i += 4 * VW) {
        vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (size_t j = 0; j < n; j++) {
            float pj;
            memcpy(&pj, p + j, 4);
            vf vp = splat(pj);
            const float *vr = V + j * ldvv + i;
            a0 += vp * ldv(vr);
            a1 += vp * ldv(vr + VW);
            a2 += vp * ldv(vr + 2 * VW);
            a3 += vp * ldv(vr + 3 * VW);
        }
        stv(o + i, a0);
        stv(o + i + VW, a1);
        stv(o + i + 2 * VW, a2);
        stv(o + i + 3 * VW, a3);
    }
    for (; i + VW <= d; i += VW) {
        vf a0 = {0};
        for (size_t j = 0; j < n; j++) {
            float pj;
            memcpy(&pj, p + j, 4);
            a0 += splat(pj) * ldv(V + j * ldvv + i);
        }
        stv(o + i, a0);
    }
    for (; i < d; i++) {
        float a = 0.0f;
        for (size_t j = 0; j < n; j++) {
            float pj, v;
            memcpy(&pj, p + j, 4);
            memcpy(&v, V + j * ldvv + i, 4);
            a += pj * v;
        }
        memcpy(o + i, &a, 4);
    }
}
