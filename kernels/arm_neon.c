/*
 * kernels/arm_neon.c — aarch64 NEON kernels, compiled twice: KRN_NEON_DOT=1 (suffix neondot,
 * -march=armv8.2-a+dotprod, vdotq_s32) and KRN_NEON_DOT=0 (suffix neon, base ARMv8: vmull_s8 +
 * pairwise widening adds). A 16-byte quarter of a 64-byte I2/Q8 block = 4 rows x 4 k, the
 * vdotq_s32 operand shape (one int32 lane per row).
 *
 * Signed dot products throughout: I2 codes c + 1 in {0,1,2} are valid s8; Q8 codes are turned
 * back into w8 = u - 128 and Q4 into w4 = u - 8, so the integers are dot(w8, q) = dot(u, q) -
 * 128 * sum(q) etc., the same numbers _ref computes. Without dotprod: one product <= 128*128 =
 * 16384 fits s16 (vmull_s8), pairs are widened to s32 by vpaddlq_s16 before any sum.
 */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/quant.h"

#define CAT2_(a, b) a##_##b
#define CAT_(a, b) CAT2_(a, b)
#define FN(name) CAT_(name, KRN_SFX)
#define AN static inline __attribute__((always_inline))

AN int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if KRN_NEON_DOT
    return vdotq_s32(acc, a, b);
#else
    int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    int16x8_t p1 = vmull_high_s8(a, b);
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
#endif
}

AN int8x16_t bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

AN void store4(float *y, float32x4_t v, size_t row0, size_t m)
{
    if (row0 + 4 <= m) {
        vst1q_f32(y, v);
    } else if (row0 < m) {
        float tmp[4];
        vst1q_f32(tmp, v);
        memcpy(y, tmp, (m - row0) * sizeof(float));
    }
}

/* I2, one quarter (4 rows) of group g x T tokens (T <= 4). */
AN void i2_tile(const krn_w_view *w, const krn_act_view *x, size_t g, int qr, size_t t0, int T,
                float *y, size_t ldy)
{
    const size_t nb = w->k_pad / 16;
    const uint8_t *p = w->data + 64 * g * nb + 16 * qr;
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc[4];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = vdupq_n_s32(0);
    for (size_t b = 0; b < nb; b++) {
        uint8x16_t v = vld1q_u8(p + 64 * b);
        int8x16_t c0 = vreinterpretq_s8_u8(vandq_u8(v, m3));
        int8x16_t c1 = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), m3));
        int8x16_t c2 = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), m3));
        int8x16_t c3 = vreinterpretq_s8_u8(vshrq_n_u8(v, 6));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *xb = x->q + (t0 + t) * x->ldq + 16 * b;
            acc[t] = dot4(acc[t], c0, bcast4(xb));
            acc[t] = dot4(acc[t], c1, bcast4(xb + 4));
            acc[t] = dot4(acc[t], c2, bcast4(xb + 8));
            acc[t] = dot4(acc[t], c3, bcast4(xb + 12));
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        int32x4_t d = vsubq_s32(acc[t], vdupq_n_s32(x->sum[t0 + t]));
        float32x4_t f = vmulq_f32(vcvtq_f32_s32(d), vdupq_n_f32(w->d * x->scale[t0 + t]));
        store4(y + (t0 + t) * ldy + 4 * qr, f, 16 * g + 4 * qr, w->m);
    }
}

/* Q8, one quarter x T tokens. */
AN void q8_tile(const krn_w_view *w, const krn_act_view *x, size_t g, int qr, size_t t0, int T,
                float *y, size_t ldy)
{
    const size_t nc = w->k_pad / 4;
    const uint8_t *p = w->data + 64 * g * nc + 16 * qr;
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int32x4_t acc[4];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = vdupq_n_s32(0);
    for (size_t c = 0; c < nc; c++) {
        int8x16_t v = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + 64 * c), flip));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            acc[t] = dot4(acc[t], v, bcast4(x->q + (t0 + t) * x->ldq + 4 * c));
    }
    float32x4_t s = vld1q_f32(w->scales + 16 * g + 4 * qr);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        float32x4_t f = vmulq_f32(vcvtq_f32_s32(acc[t]), vmulq_n_f32(s, x->scale[t0 + t]));
        store4(y + (t0 + t) * ldy + 4 * qr, f, 16 * g + 4 * qr, w->m);
    }
}

/* Q4, one quarter x T tokens. */
AN void q4_tile(const krn_w_view *w, const krn_act_view *x, size_t g, int qr, size_t t0, int T,
                float *y, size_t ldy)
{
    const size_t nb = w->k_pad / KRN_Q4_BLOCK;
    const uint8_t *p = w->data + 256 * g * nb + 16 * qr;
    const uint16_t *sc = w->scales16 + 16 * g * nb + 4 * qr;
    const uint8x16_t m15 = vdupq_n_u8(15);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t f[4];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        f[t] = vdupq_n_f32(0.0f);
    for (size_t b = 0; b < nb; b++) {
        int8x16_t lo[4], hi[4];
#pragma GCC unroll 8
        for (int c = 0; c < 4; c++) {
            uint8x16_t v = vld1q_u8(p + 256 * b + 64 * c);
            lo[c] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m15)), eight);
            hi[c] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
        }
        /* the 4 rows' fp16 scales, converted exactly (FCVTL, as krn_f16_to_f32) */
        float32x4_t s = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(sc + 16 * b)));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *xb = x->q + (t0 + t) * x->ldq + 32 * b;
            int32x4_t a = vdupq_n_s32(0);
#pragma GCC unroll 8
            for (int c = 0; c < 4; c++) {
                a = dot4(a, lo[c], bcast4(xb + 8 * c));
                a = dot4(a, hi[c], bcast4(xb + 8 * c + 4));
            }
            f[t] = vfmaq_f32(f[t], s, vcvtq_f32_s32(a));
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        store4(y + (t0 + t) * ldy + 4 * qr, vmulq_n_f32(f[t], x->scale[t0 + t]), 16 * g + 4 * qr,
               w->m);
}

#define DRIVER_(name, tile)                                                                        \
    void FN(name)(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,      \
                  size_t ldy)                                                                      \
    {                                                                                              \
        for (size_t g = g0; g < g1; g++)                                                           \
            for (int qr = 0; qr < 4 && 16 * g + 4 * qr < w->m; qr++) {                             \
                float *yg = y + 16 * (g - g0);                                                     \
                size_t t = 0;                                                                      \
                for (; t + 4 <= x->n; t += 4)                                                      \
                    tile(w, x, g, qr, t, 4, yg, ldy);                                              \
                switch (x->n - t) {                                                                \
                case 3: tile(w, x, g, qr, t, 3, yg, ldy); break;                                   \
                case 2: tile(w, x, g, qr, t, 2, yg, ldy); break;                                   \
                case 1: tile(w, x, g, qr, t, 1, yg, ldy); break;                                   \
                default: break;                                                                    \
                }                                                                                  \
            }                                                                                      \
    }

DRIVER_(krn_i2_gemm, i2_tile)
DRIVER_(krn_q8_gemm, q8_tile)
DRIVER_(krn_q4_gemm, q4_tile)

void FN(krn_i2_gemv)(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                     size_t ldy)
{
    FN(krn_i2_gemm)(w, x, g0, g1, y, ldy);
}

/* Activation quantization: the vector units gain little here (one pass per token); the scalar
 * code below is _ref's, so it is bit-exact by construction. */
size_t FN(krn_actq)(const float *x, size_t k, size_t k_pad, int8_t *q, float *scale, int32_t *sum,
                    int32_t *bsum)
{
    return krn_actq_ref(x, k, k_pad, q, scale, sum, bsum);
}
