/*
 * kernels/x86_avx2.c — AVX2 kernels for CPUs without AVX-512 VNNI (Zen 2/3, Haswell..Alder Lake
 * P-cores without AVX-512). Built with -mavx2 -mfma -mf16c (vcvtph2ps for the Q4 fp16 scales;
 * dispatch.h requires F16C for this variant).
 *
 * I2 and Q4 use vpmaddubsw (u8 x s8 -> pairwise-summed s16, SATURATING) and vpmaddwd with ones
 * to widen to s32. Saturation cannot happen:
 *   I2: code <= 2, |q| <= 128: one pair <= 2*2*128 = 512; we add the 4 planes of a block in
 *       s16 first: <= 4 * 512 = 2048 < 32767.
 *   Q4: code <= 15: one pair <= 2*15*128 = 3840; the 8 half-planes of a 32-column block summed
 *       in s16: <= 8 * 3840 = 30720 < 32767.
 *   Q8 (codes up to 255 would saturate maddubs) widens both operands to s16 and uses vpmaddwd:
 *       one pair <= 2*255*128 = 65280 in s32.
 * A ymm of codes is the 32-byte half of a 64-byte I2/Q8 block: rows 0-7 or 8-15 x 4 k.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/quant.h"

#define A2 static inline __attribute__((always_inline))

A2 __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm256_set1_epi32(v);
}

/* Store 8 fp32 lanes for rows [row0, row0 + 8) clipped to m. */
A2 void store8(float *y, __m256 v, size_t row0, size_t m)
{
    if (row0 + 8 <= m) {
        _mm256_storeu_ps(y, v);
    } else if (row0 < m) {
        float tmp[8];
        _mm256_storeu_ps(tmp, v);
        memcpy(y, tmp, (m - row0) * sizeof(float));
    }
}

A2 __m256 i2_finish(__m256i acc, int32_t sum, float d, float scale)
{
    __m256i v = _mm256_sub_epi32(acc, _mm256_set1_epi32(sum));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(d * scale));
}

/* One half-group (8 rows) x T tokens (T <= 4). */
A2 void i2_tile(const krn_w_view *w, const krn_act_view *x, size_t g, int h, size_t t0, int T,
                float *y, size_t ldy)
{
    const size_t nb = w->k_pad / 16;
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    const uint8_t *p = w->data + 64 * g * nb + 32 * h;
    const int8_t *xq = x->q + t0 * x->ldq;
    __m256i acc[4];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_si256();
    for (size_t b = 0; b < nb; b++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + 64 * b));
        __m256i c0 = _mm256_and_si256(v, m3);
        __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
        __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
        __m256i c3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *xb = xq + t * x->ldq + 16 * b;
            __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(c0, bcast4(xb)),
                                         _mm256_maddubs_epi16(c1, bcast4(xb + 4)));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c2, bcast4(xb + 8)));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c3, bcast4(xb + 12)));
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s, ones));
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        store8(y + (t0 + t) * ldy + 8 * h,
               i2_finish(acc[t], x->sum[t0 + t], w->d, x->scale[t0 + t]), 16 * g + 8 * h, w->m);
}

void krn_i2_gemm_avx2(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    for (size_t g = g0; g < g1; g++) {
        float *yg = y + 16 * (g - g0);
        for (int h = 0; h < 2; h++) {
            if (16 * g + 8 * h >= w->m)
                break;
            size_t t = 0;
            for (; t + 4 <= x->n; t += 4)
                i2_tile(w, x, g, h, t, 4, yg, ldy);
            switch (x->n - t) {
            case 3: i2_tile(w, x, g, h, t, 3, yg, ldy); break;
            case 2: i2_tile(w, x, g, h, t, 2, yg, ldy); break;
            case 1: i2_tile(w, x, g, h, t, 1, yg, ldy); break;
            default: break;
            }
        }
    }
}

void krn_i2_gemv_avx2(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    const size_t nb = w->k_pad / 16;
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    for (size_t t = 0; t < x->n; t++) {
        const int8_t *xq = x->q + t * x->ldq;
        for (size_t g = g0; g < g1; g++) {
            const uint8_t *p = w->data + 64 * g * nb;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;
            for (size_t b = 0; b < nb; b++) {
                /* L2 prefetch two groups ahead: each group is a short stream (x86_avx512.c) */
                _mm_prefetch((const char *)p + 128 * nb + 64 * b, _MM_HINT_T1);
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(p + 64 * b));
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(p + 64 * b + 32));
                __m256i x0 = bcast4(xq + 16 * b), x1 = bcast4(xq + 16 * b + 4);
                __m256i x2 = bcast4(xq + 16 * b + 8), x3 = bcast4(xq + 16 * b + 12);
                __m256i s0 = _mm256_maddubs_epi16(_mm256_and_si256(v0, m3), x0);
                __m256i s1 = _mm256_maddubs_epi16(_mm256_and_si256(v1, m3), x0);
                s0 = _mm256_add_epi16(
                    s0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 2), m3), x1));
                s1 = _mm256_add_epi16(
                    s1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 2), m3), x1));
                s0 = _mm256_add_epi16(
                    s0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m3), x2));
                s1 = _mm256_add_epi16(
                    s1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m3), x2));
                s0 = _mm256_add_epi16(
                    s0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 6), m3), x3));
                s1 = _mm256_add_epi16(
                    s1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 6), m3), x3));
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(s0, ones));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(s1, ones));
            }
            float *yg = y + t * ldy + 16 * (g - g0);
            store8(yg, i2_finish(a0, x->sum[t], w->d, x->scale[t]), 16 * g, w->m);
            store8(yg + 8, i2_finish(a1, x->sum[t], w->d, x->scale[t]), 16 * g + 8, w->m);
        }
    }
}

/* ---- Q8: widen to s16, vpmaddwd ------------------------------------------------------------ */

void krn_q8_gemm_avx2(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    const size_t nc = w->k_pad / 4;
    for (size_t t = 0; t < x->n; t++) {
        const int8_t *xq = x->q + t * x->ldq;
        for (size_t g = g0; g < g1; g++) {
            const uint8_t *p = w->data + 64 * g * nc;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t c = 0; c < nc; c++) {
                int32_t xv;
                memcpy(&xv, xq + 4 * c, 4);
                __m256i x16 = _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(xv)));
                const __m128i *pc = (const __m128i *)(p + 64 * c);
                a0 = _mm256_add_epi32(
                    a0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(pc)), x16));
                a1 = _mm256_add_epi32(
                    a1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(pc + 1)), x16));
                a2 = _mm256_add_epi32(
                    a2, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(pc + 2)), x16));
                a3 = _mm256_add_epi32(
                    a3, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(pc + 3)), x16));
            }
            /* a0 = rows 0-3 as (k01, k23) pairs; hadd + lane fix gives rows 0-7 then 8-15 */
            __m256i r07 = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a0, a1), 0xD8);
            __m256i r815 = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a2, a3), 0xD8);
            __m256i corr = _mm256_set1_epi32(128 * x->sum[t]);
            __m256 sx = _mm256_set1_ps(x->scale[t]);
            __m256 s0 = _mm256_mul_ps(_mm256_loadu_ps(w->scales + 16 * g), sx);
            __m256 s1 = _mm256_mul_ps(_mm256_loadu_ps(w->scales + 16 * g + 8), sx);
            float *yg = y + t * ldy + 16 * (g - g0);
            store8(yg, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(r07, corr)), s0), 16 * g,
                   w->m);
            store8(yg + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(r815, corr)), s1),
                   16 * g + 8, w->m);
        }
    }
}

/* ---- Q4 ------------------------------------------------------------------------------------ */

void krn_q4_gemm_avx2(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    const size_t nb = w->k_pad / KRN_Q4_BLOCK;
    const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    for (size_t t = 0; t < x->n; t++) {
        const int8_t *xq = x->q + t * x->ldq;
        for (size_t g = g0; g < g1; g++) {
            const uint8_t *p = w->data + 256 * g * nb;
            const uint16_t *sc = w->scales16 + 16 * g * nb;
            for (int h = 0; h < 2; h++) {
                if (16 * g + 8 * h >= w->m)
                    break;
                __m256 f = _mm256_setzero_ps();
                for (size_t b = 0; b < nb; b++) {
                    const int8_t *xb = xq + 32 * b;
                    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
                    for (int c = 0; c < 4; c++) {
                        __m256i v =
                            _mm256_loadu_si256((const __m256i *)(p + 256 * b + 64 * c + 32 * h));
                        s = _mm256_add_epi16(
                            s, _mm256_maddubs_epi16(_mm256_and_si256(v, m15), bcast4(xb + 8 * c)));
                        s = _mm256_add_epi16(
                            s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m15),
                                                    bcast4(xb + 8 * c + 4)));
                    }
                    __m256i d = _mm256_sub_epi32(_mm256_madd_epi16(s, ones),
                                                 _mm256_set1_epi32(8 * x->bsum[t * nb + b]));
                    __m256 s8 =
                        _mm256_cvtph_ps(/* exact, as krn_f16_to_f32 */
                                        _mm_loadu_si128((const __m128i *)(sc + 16 * b + 8 * h)));
                    f = _mm256_fmadd_ps(s8, _mm256_cvtepi32_ps(d), f);
                }
                store8(y + t * ldy + 16 * (g - g0) + 8 * h,
                       _mm256_mul_ps(f, _mm256_set1_ps(x->scale[t])), 16 * g + 8 * h, w->m);
            }
        }
    }
}

/* ---- activation quantization (bit-exact with krn_actq_ref) ---------------------------------- */

static inline int32_t q_scalar(float v, float inv)
{
    if (isnan(v))
        return 0;
    if (isinf(v))
        return v > 0 ? 127 : -127;
    float r = rintf(v * inv);
    return r > 127.0f ? 127 : r < -128.0f ? -128 : (int32_t)r;
}

size_t krn_actq_avx2(const float *x, size_t k, size_t k_pad, int8_t *q, float *scale, int32_t *sum,
                     int32_t *bsum)
{
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    __m256 gmax = _mm256_setzero_ps();
    size_t bad = 0, i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256i v = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + i)), absmask);
        __m256i fin = _mm256_cmpgt_epi32(inf, v);
        bad +=
            8 - (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(fin)));
        gmax = _mm256_max_ps(gmax, _mm256_and_ps(_mm256_castsi256_ps(v), _mm256_castsi256_ps(fin)));
    }
    float tmp[8], g = 0.0f;
    _mm256_storeu_ps(tmp, gmax);
    for (int j = 0; j < 8; j++)
        g = tmp[j] > g ? tmp[j] : g;
    for (; i < k; i++) {
        float v;
        memcpy(&v, x + i, 4);
        if (!isfinite(v))
            bad++;
        else if (fabsf(v) > g)
            g = fabsf(v);
    }
    float inv = 127.0f / (g + KRN_A_EPS);
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int32_t total = 0;
    for (size_t b = 0; b < k_pad; b += 32) {
        int32_t bs = 0;
        if (b + 32 <= k) {
            __m256i r[4], acc = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                __m256 v = _mm256_loadu_ps(x + b + 8 * j);
                __m256i bits = _mm256_and_si256(_mm256_castps_si256(v), absmask);
                __m256i fin = _mm256_cmpgt_epi32(inf, bits);
                __m256i isinf = _mm256_cmpeq_epi32(bits, inf);
                __m256i qi = _mm256_cvtps_epi32(_mm256_mul_ps(v, vinv));
                qi = _mm256_min_epi32(_mm256_max_epi32(qi, lo), hi);
                qi = _mm256_and_si256(qi, fin);
                __m256i sgn = _mm256_srai_epi32(_mm256_castps_si256(v), 31); /* -1 if negative */
                __m256i infv = _mm256_sub_epi32(_mm256_xor_si256(hi, sgn), sgn); /* +-127 */
                qi = _mm256_blendv_epi8(qi, infv, isinf);
                acc = _mm256_add_epi32(acc, qi);
                r[j] = qi;
            }
            __m256i p =
                _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
            _mm256_storeu_si256((__m256i *)(q + b), _mm256_permutevar8x32_epi32(p, perm));
            __m128i s4 =
                _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            bs = _mm_cvtsi128_si32(s4);
        } else {
            for (size_t j = b; j < b + 32; j++) {
                float v = 0.0f;
                if (j < k)
                    memcpy(&v, x + j, 4);
                int32_t qi = j < k ? q_scalar(v, inv) : 0;
                q[j] = (int8_t)qi;
                bs += qi;
            }
        }
        if (bsum)
            bsum[b / 32] = bs;
        total += bs;
    }
    *scale = g / 127.0f;
    *sum = total;
    return bad;
}
