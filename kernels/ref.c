/*
 * kernels/ref.c — the scalar reference kernels: the specification every SIMD variant is tested
 * against, bit for bit. Written for clarity, not speed; layouts are documented in quant.h.
 *
 * Float rounding contract shared by all variants (this is what makes them bit-exact):
 *   I2: y = (float)(dot - sum_t) * (d * scale_t)               [one float mul after the product]
 *   Q8: y = (float)(dot - 128 * sum_t) * (s_m * scale_t)
 *   Q4: acc = fmaf(f32(s[m][b]), (float)(dot_b - 8 * bsum_tb), acc) over b = 0.., y = acc * scale_t
 *       (f32(): the exact fp16 -> fp32 conversion of the stored scale, krn_f16_to_f32)
 *   actq: inv = 127 / (g + eps), q = clamp(rint(x * inv), -128, 127) (round half to even).
 */
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/quant.h"

/* Stored I2 code (c + 1, 0..2) of row m, column k of a view. */
static inline int i2_code(const krn_w_view *w, size_t m, size_t k)
{
    size_t g = m / KRN_I2_ROWS, r = m % KRN_I2_ROWS, b = k / 16, p = (k % 16) / 4, j = k % 4;
    uint8_t byte = w->data[64 * (g * (w->k_pad / 16) + b) + 4 * r + j];
    return (byte >> (2 * p)) & 3;
}

static inline int q8_code(const krn_w_view *w, size_t m, size_t k)
{
    size_t g = m / KRN_I2_ROWS, r = m % KRN_I2_ROWS;
    return w->data[64 * (g * (w->k_pad / 4) + k / 4) + 4 * r + k % 4]; /* w8 + 128 */
}

static inline int q4_code(const krn_w_view *w, size_t m, size_t k)
{
    size_t g = m / KRN_I2_ROWS, r = m % KRN_I2_ROWS, b = k / KRN_Q4_BLOCK, kk = k % KRN_Q4_BLOCK;
    size_t c = kk / 8, hi = (kk % 8) / 4, j = kk % 4;
    uint8_t byte = w->data[256 * (g * (w->k_pad / KRN_Q4_BLOCK) + b) + 64 * c + 4 * r + j];
    return hi ? byte >> 4 : byte & 15; /* w4 + 8 */
}

void krn_i2_gemm_ref(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                     size_t ldy)
{
    for (size_t m = g0 * KRN_I2_ROWS; m < g1 * KRN_I2_ROWS && m < w->m; m++) {
        for (size_t t = 0; t < x->n; t++) {
            const int8_t *q = x->q + t * x->ldq;
            int32_t dot = 0;
            for (size_t k = 0; k < w->k_pad; k++)
                dot += i2_code(w, m, k) * (int32_t)q[k];
            float v = (float)(dot - x->sum[t]) * (w->d * x->scale[t]);
            memcpy(&y[t * ldy + m - g0 * KRN_I2_ROWS], &v, sizeof(v));
        }
    }
}

void krn_i2_gemv_ref(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                     size_t ldy)
{
    krn_i2_gemm_ref(w, x, g0, g1, y, ldy);
}

void krn_q8_gemm_ref(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                     size_t ldy)
{
    for (size_t m = g0 * KRN_I2_ROWS; m < g1 * KRN_I2_ROWS && m < w->m; m++) {
        for (size_t t = 0; t < x->n; t++) {
            const int8_t *q = x->q + t * x->ldq;
            int32_t dot = 0;
            for (size_t k = 0; k < w->k_pad; k++)
                dot += q8_code(w, m, k) * (int32_t)q[k];
            float v = (float)(dot - 128 * x->sum[t]) * (w->scales[m] * x->scale[t]);
            memcpy(&y[t * ldy + m - g0 * KRN_I2_ROWS], &v, sizeof(v));
        }
    }
}

void krn_q4_gemm_ref(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                     size_t ldy)
{
    size_t nb = w->k_pad / KRN_Q4_BLOCK;
    for (size_t m = g0 * KRN_I2_ROWS; m < g1 * KRN_I2_ROWS && m < w->m; m++) {
        const uint16_t *s = w->scales16 + (m / KRN_I2_ROWS) * nb * KRN_I2_ROWS + m % KRN_I2_ROWS;
        for (size_t t = 0; t < x->n; t++) {
            const int8_t *q = x->q + t * x->ldq;
            const int32_t *bs = x->bsum + t * nb;
            float acc = 0.0f;
            for (size_t b = 0; b < nb; b++) {
                int32_t dot = 0;
                for (size_t k = b * KRN_Q4_BLOCK; k < (b + 1) * KRN_Q4_BLOCK; k++)
                    dot += q4_code(w, m, k) * (int32_t)q[k];
                uint16_t s16;
                memcpy(&s16, &s[b * KRN_I2_ROWS], sizeof(s16));
                acc = fmaf(krn_f16_to_f32(s16), (float)(dot - 8 * bs[b]), acc);
            }
            float v = acc * x->scale[t];
            memcpy(&y[t * ldy + m - g0 * KRN_I2_ROWS], &v, sizeof(v));
        }
    }
}

size_t krn_actq_ref(const float *x, size_t k, size_t k_pad, int8_t *q, float *scale, int32_t *sum,
                    int32_t *bsum)
{
    size_t bad = 0;
    float g = 0.0f;
    for (size_t i = 0; i < k; i++) {
        float v;
        memcpy(&v, &x[i], sizeof(v));
        if (!isfinite(v))
            bad++;
        else if (fabsf(v) > g)
            g = fabsf(v);
    }
    float inv = 127.0f / (g + KRN_A_EPS);
    int32_t s = 0;
    for (size_t i = 0; i < k_pad; i++) {
        int32_t qi = 0;
        if (i < k) {
            float v;
            memcpy(&v, &x[i], sizeof(v));
            if (isnan(v))
                qi = 0;
            else if (isinf(v))
                qi = v > 0 ? 127 : -127;
            else {
                float r = rintf(v * inv);
                qi = r > 127.0f ? 127 : r < -128.0f ? -128 : (int32_t)r;
            }
        }
        q[i] = (int8_t)qi;
        s += qi;
        if (bsum) {
            if (i % KRN_Q4_BLOCK == 0)
                bsum[i / KRN_Q4_BLOCK] = 0;
            bsum[i / KRN_Q4_BLOCK] += qi;
        }
    }
    *scale = g / 127.0f;
    *sum = s;
    return bad;
}
