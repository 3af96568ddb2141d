/*
 * tests/krn_test.h — shared helpers of the kernel tests: a deterministic RNG, unaligned buffers,
 * random I2/Q8/Q4 weight views and activation views, and the "variant vs _ref" comparison that
 * prints the first mismatches. Header-only (static functions); every test includes tap.h first.
 */
#ifndef BD_TESTS_KRN_TEST_H
#define BD_TESTS_KRN_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/krn.h"
#include "kernels/quant.h"

/* 1 if variant v belongs to this build's architecture (x86-64: avx2/avx512/amx, aarch64:
 * neon/neondot): those that cannot run here are reported as TAP SKIP with the reason; variants
 * of the other architecture are not checks of this build and are left out silently. */
static inline int krn_test_variant_here(int v)
{
#if defined(KRN_HAVE_X86)
    return v == KRN_VARIANT_AVX2 || v == KRN_VARIANT_AVX512 || v == KRN_VARIANT_AMX;
#elif defined(KRN_HAVE_ARM)
    return v == KRN_VARIANT_NEON || v == KRN_VARIANT_NEONDOT;
#else
    return 0;
#endif
}

/* Named tolerances. The integer paths are exact by design; the fp32 epilogues of every variant
 * perform the same IEEE operations in the same order as _ref (ref.c), so outputs must match bit
 * for bit: a tolerance of 0 ulp. */
#define KRN_TEST_GEMM_ULP 0

/* Offsets that make buffers deliberately unaligned (bytes). */
#define KRN_TEST_MISALIGN 1

static uint64_t krn_rng_state = 0x9E3779B97F4A7C15ull;

static inline uint32_t krn_rand(void)
{
    krn_rng_state ^= krn_rng_state << 13;
    krn_rng_state ^= krn_rng_state >> 7;
    krn_rng_state ^= krn_rng_state << 17;
    return (uint32_t)(krn_rng_state >> 11);
}

static inline float krn_randf(void) /* uniform [-1, 1) */
{
    return (float)(krn_rand() & 0xffffff) / 8388608.0f - 1.0f;
}

/* A buffer whose usable pointer is `off` bytes past a 64-byte boundary. */
typedef struct {
    void *base;
    void *p;
} krn_buf;

static inline krn_buf krn_buf_make(size_t n, size_t off)
{
    krn_buf b;
    b.base = aligned_alloc(64, (n + off + 64 + 63) / 64 * 64);
    if (!b.base) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    memset(b.base, 0, (n + off + 64 + 63) / 64 * 64);
    b.p = (char *)b.base + off;
    return b;
}

static inline float krn_ldf(const float *p, size_t i)
{
    float v;
    memcpy(&v, (const char *)p + i * sizeof(float), sizeof(v));
    return v;
}

/* Compare n floats bit for bit (ulp tolerance); prints up to 5 mismatches. 1 if equal. */
static inline int krn_cmp_f32(const float *got, const float *want, size_t rows, size_t cols,
                              size_t ld, int ulp, const char *what)
{
    int bad = 0;
    for (size_t t = 0; t < rows; t++)
        for (size_t m = 0; m < cols; m++) {
            float a = krn_ldf(got, t * ld + m), b = krn_ldf(want, t * ld + m);
            int32_t ia, ib;
            memcpy(&ia, &a, 4);
            memcpy(&ib, &b, 4);
            long d = labs((long)ia - (long)ib);
            if (d > ulp && !(isnan(a) && isnan(b))) {
                if (bad < 5)
                    printf("# %s: mismatch at token %zu row %zu: got %.9g want %.9g\n", what, t, m,
                           (double)a, (double)b);
                bad++;
            }
        }
    if (bad)
        printf("# %s: %d mismatches of %zu\n", what, bad, rows * cols);
    return bad == 0;
}

/* Weight fill modes. */
enum { KRN_W_RANDOM, KRN_W_ALL_NEG, KRN_W_ALL_POS, KRN_W_ALL_ZERO };
enum { KRN_X_RANDOM, KRN_X_MAX, KRN_X_MIN };
enum { KRN_FMT_I2, KRN_FMT_Q8, KRN_FMT_Q4 };

typedef struct {
    krn_buf data, scales, scales16, csum;
    krn_w_view v;
} krn_test_w;

typedef struct {
    krn_buf q, scale, sum, bsum;
    krn_act_view v;
} krn_test_x;

/* Random (or extreme) weights in format fmt, m x k_pad, codes written directly. */
static inline krn_test_w krn_test_w_make(int fmt, size_t m, size_t k, int mode, size_t off)
{
    krn_test_w w;
    size_t m_pad = (m + 15) / 16 * 16, k_pad = krn_kpad(k);
    size_t bytes = fmt == KRN_FMT_I2   ? m_pad * k_pad / 4
                   : fmt == KRN_FMT_Q8 ? m_pad * k_pad
                                       : m_pad * k_pad / 2;
    w.data = krn_buf_make(bytes, off);
    uint8_t *d = w.data.p;
    for (size_t i = 0; i < bytes; i++) {
        uint8_t b;
        if (fmt == KRN_FMT_I2) {
            unsigned c = mode == KRN_W_ALL_NEG    ? 0
                         : mode == KRN_W_ALL_POS  ? 2
                         : mode == KRN_W_ALL_ZERO ? 1
                                                  : 3;
            b = c == 3 ? 0 : (uint8_t)(c | c << 2 | c << 4 | c << 6);
            if (c == 3)
                for (int p = 0; p < 4; p++)
                    b |= (uint8_t)((krn_rand() % 3) << (2 * p));
        } else if (fmt == KRN_FMT_Q8) {
            b = mode == KRN_W_ALL_NEG    ? 1
                : mode == KRN_W_ALL_POS  ? 255
                : mode == KRN_W_ALL_ZERO ? 128
                                         : (uint8_t)(1 + krn_rand() % 255);
        } else {
            unsigned lo = mode == KRN_W_ALL_NEG    ? 1
                          : mode == KRN_W_ALL_POS  ? 15
                          : mode == KRN_W_ALL_ZERO ? 8
                                                   : 1 + krn_rand() % 15;
            unsigned hi = mode == KRN_W_RANDOM ? 1 + krn_rand() % 15 : lo;
            b = (uint8_t)(lo | hi << 4);
        }
        d[i] = b;
    }
    size_t nsc = fmt == KRN_FMT_Q8 ? m_pad : 1,
           nsc16 = fmt == KRN_FMT_Q4 ? m_pad * (k_pad / 32) : 1;
    w.scales = krn_buf_make(nsc * sizeof(float), 0);
    for (size_t i = 0; i < nsc; i++)
        ((float *)w.scales.p)[i] = 0.001f + (krn_rand() % 1000) * 1e-5f;
    /* Q4 fp16 scales: any finite non-negative half (zero, subnormals up to 65504), unaligned */
    w.scales16 = krn_buf_make(nsc16 * sizeof(uint16_t), off ? 2 * off : 0);
    for (size_t i = 0; i < nsc16; i++) {
        uint16_t h = (uint16_t)(krn_rand() % 0x7c00);
        memcpy((char *)w.scales16.p + 2 * i, &h, 2);
    }
    w.csum = krn_buf_make(m_pad * sizeof(int32_t), 0);
    int32_t *cs = w.csum.p;
    if (fmt == KRN_FMT_I2)
        for (size_t r = 0; r < m_pad; r++) {
            int32_t s = 0;
            for (size_t b = 0; b < k_pad / 16; b++)
                for (int j = 0; j < 4; j++) {
                    uint8_t byte = d[64 * ((r / 16) * (k_pad / 16) + b) + 4 * (r % 16) + j];
                    s += (byte & 3) + (byte >> 2 & 3) + (byte >> 4 & 3) + (byte >> 6);
                }
            cs[r] = s;
        }
    w.v.data = d;
    w.v.scales = w.scales.p;
    w.v.scales16 = w.scales16.p;
    w.v.csum = cs;
    w.v.d = 0.0123f;
    w.v.m = m;
    w.v.k_pad = k_pad;
    return w;
}

static inline void krn_test_w_free(krn_test_w *w)
{
    free(w->data.base);
    free(w->scales.base);
    free(w->scales16.base);
    free(w->csum.base);
}

/* n tokens of quantized activations (random or extreme), q unaligned by off. */
static inline krn_test_x krn_test_x_make(size_t n, size_t k, int mode, size_t off)
{
    krn_test_x x;
    size_t k_pad = krn_kpad(k), ldq = k_pad + 64;
    x.q = krn_buf_make(n * ldq, off);
    x.scale = krn_buf_make(n * sizeof(float), 0);
    x.sum = krn_buf_make(n * sizeof(int32_t), 0);
    x.bsum = krn_buf_make(n * (k_pad / 32) * sizeof(int32_t), 0);
    int8_t *q = x.q.p;
    for (size_t t = 0; t < n; t++) {
        int32_t s = 0;
        for (size_t i = 0; i < k_pad; i++) {
            int v = i >= k              ? 0
                    : mode == KRN_X_MAX ? 127
                    : mode == KRN_X_MIN ? -128
                                        : (int)(krn_rand() % 256) - 128;
            q[t * ldq + i] = (int8_t)v;
            s += v;
            if (i % 32 == 0)
                ((int32_t *)x.bsum.p)[t * (k_pad / 32) + i / 32] = 0;
            ((int32_t *)x.bsum.p)[t * (k_pad / 32) + i / 32] += v;
        }
        ((int32_t *)x.sum.p)[t] = s;
        ((float *)x.scale.p)[t] = 0.5f + (krn_rand() % 1000) * 1e-3f;
    }
    x.v.q = q;
    x.v.ldq = ldq;
    x.v.scale = x.scale.p;
    x.v.sum = x.sum.p;
    x.v.bsum = x.bsum.p;
    x.v.n = n;
    x.v.k_pad = k_pad;
    return x;
}

static inline void krn_test_x_free(krn_test_x *x)
{
    free(x->q.base);
    free(x->scale.base);
    free(x->sum.base);
    free(x->bsum.base);
}

/* The exact-result checks of the int32 bounds and scale extremes: run the fmt kernel (I2: the
 * GEMV) of every variant this build and CPU run on group 0 of w and token 0 of x; 1 if rows
 * [0, nrows) all equal want bit for bit, else prints the variant and 0. */
static inline int krn_test_every_variant(int fmt, const krn_w_view *w, const krn_act_view *x,
                                         size_t nrows, float want)
{
    int ok = 1;
    for (int v = 0; v < KRN_VARIANT_COUNT; v++) {
        const krn_ops *ops = krn_ops_variant((krn_variant)v);
        if (!ops)
            continue;
        krn_mat_fn fn = fmt == KRN_FMT_I2   ? ops->i2_gemv
                        : fmt == KRN_FMT_Q8 ? ops->q8_gemm
                                            : ops->q4_gemm;
        float y[16];
        fn(w, x, 0, 1, y, 16);
        for (size_t r = 0; r < nrows; r++)
            if (y[r] != want) {
                printf("# %s row %zu: got %.9g want %.9g\n", krn_variant_name((krn_variant)v), r,
                       (double)y[r], (double)want);
                ok = 0;
                break;
            }
    }
    return ok;
}

/* Run kernel fn and ref over all groups into unaligned outputs; compare bit for bit. With
 * unit scales (d = scale = 1 for I2) the output is the integer result itself. */
static inline int krn_test_mat(krn_mat_fn fn, krn_mat_fn ref, const krn_w_view *w,
                               const krn_act_view *x, const char *what)
{
    size_t ng = (w->m + 15) / 16, ldy = w->m + 3;
    krn_buf yb = krn_buf_make(x->n * ldy * sizeof(float), KRN_TEST_MISALIGN);
    krn_buf rb = krn_buf_make(x->n * ldy * sizeof(float), 0);
    memset(yb.p, 0xff, x->n * ldy * sizeof(float)); /* NaN: unwritten outputs show */
    memset(rb.p, 0xff, x->n * ldy * sizeof(float));
    /* split in two calls to exercise g0 > 0 */
    size_t mid = ng / 2;
    if (mid)
        fn(w, x, 0, mid, yb.p, ldy);
    fn(w, x, mid, ng, (float *)yb.p + 16 * mid, ldy);
    ref(w, x, 0, ng, rb.p, ldy);
    int ok = krn_cmp_f32(yb.p, rb.p, x->n, w->m, ldy, KRN_TEST_GEMM_ULP, what);
    free(yb.base);
    free(rb.base);
    return ok;
}

#endif
