/*
 * kernels/x86_avx512.c — AVX-512 VNNI kernels (vpdpbusd: u8 x s8 -> s32, 4 products per lane,
 * no saturation). Built with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mfma.
 *
 * One zmm of unpacked I2 / Q8 codes = 16 rows x 4 consecutive k (lane r = row r); the matching
 * activation operand is the token's 4 bytes at k broadcast to all lanes. GEMV keeps 8
 * independent accumulators (2 row groups x 4 planes) so vpdpbusd latency never limits the
 * stream; GEMM unpacks each 64-byte block once and reuses it for 8 tokens (8 accumulators).
 * Integer results equal _ref exactly; the fp32 epilogue performs the same operations in the
 * same order (ref.c), so outputs are bit-identical. Bounds: quant.h.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/quant.h"

#define A512 static inline __attribute__((always_inline))

/* GEMV software prefetch into L2, two group pairs (256 * nb bytes) ahead of both streams.
 * Each 16-row group is one short stream (64 * nb bytes, 4 KiB at K = 1024); the hardware
 * prefetchers retrain at every group. `bitdistill bench kernels --threads 1` (GEMV cold) on the
 * 2-core Zen 4 dev VM: 8.7-12.4 GB/s without it, 18.7-21.9 GB/s with it (triad 18-24 GB/s). */
#define KRN_GEMV_PREFETCH(pa, pb, b, nb)                                                           \
    (_mm_prefetch((const char *)(pa) + 256 * (nb) + 64 * (b), _MM_HINT_T1),                        \
     _mm_prefetch((const char *)(pb) + 256 * (nb) + 64 * (b), _MM_HINT_T1))

A512 __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm512_set1_epi32(v);
}

/* Store 16 fp32 lanes for rows [row0, row0 + 16) clipped to m. */
A512 void store_rows(float *y, __m512 v, size_t row0, size_t m)
{
    if (row0 + 16 <= m)
        _mm512_storeu_ps(y, v);
    else
        _mm512_mask_storeu_ps(y, (__mmask16)((1u << (m - row0)) - 1), v);
}

/* I2 epilogue: y = (float)(dot - sum) * (d * scale) */
A512 __m512 i2_finish(__m512i acc, int32_t sum, float d, float scale)
{
    __m512i v = _mm512_sub_epi32(acc, _mm512_set1_epi32(sum));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(d * scale));
}

void krn_i2_gemv_avx512(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                        size_t ldy)
{
    const size_t nb = w->k_pad / 16;
    const __m512i m3 = _mm512_set1_epi8(3);
    for (size_t t = 0; t < x->n; t++) {
        const int8_t *xq = x->q + t * x->ldq;
        float *yt = y + t * ldy;
        size_t g = g0;
        for (; g + 2 <= g1; g += 2) {
            const uint8_t *pa = w->data + 64 * g * nb, *pb = pa + 64 * nb;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (size_t b = 0; b < nb; b++) {
                KRN_GEMV_PREFETCH(pa, pb, b, nb);
                __m512i va = _mm512_loadu_si512(pa + 64 * b);
                __m512i vb = _mm512_loadu_si512(pb + 64 * b);
                __m512i x0 = bcast4(xq + 16 * b), x1 = bcast4(xq + 16 * b + 4);
                __m512i x2 = bcast4(xq + 16 * b + 8), x3 = bcast4(xq + 16 * b + 12);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(va, m3), x0);
                b0 = _mm512_dpbusd_epi32(b0, _mm512_and_si512(vb, m3), x0);
                a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(va, 2), m3), x1);
                b1 = _mm512_dpbusd_epi32(b1, _mm512_and_si512(_mm512_srli_epi16(vb, 2), m3), x1);
                a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(_mm512_srli_epi16(va, 4), m3), x2);
                b2 = _mm512_dpbusd_epi32(b2, _mm512_and_si512(_mm512_srli_epi16(vb, 4), m3), x2);
                a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(_mm512_srli_epi16(va, 6), m3), x3);
                b3 = _mm512_dpbusd_epi32(b3, _mm512_and_si512(_mm512_srli_epi16(vb, 6), m3), x3);
            }
            __m512i sa = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
            __m512i sb = _mm512_add_epi32(_mm512_add_epi32(b0, b1), _mm512_add_epi32(b2, b3));
            store_rows(yt + 16 * (g - g0), i2_finish(sa, x->sum[t], w->d, x->scale[t]), 16 * g,
                       w->m);
            store_rows(yt + 16 * (g + 1 - g0), i2_finish(sb, x->sum[t], w->d, x->scale[t]),
                       16 * (g + 1), w->m);
        }
        for (; g < g1; g++) {
            const uint8_t *pa = w->data + 64 * g * nb;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t b = 0; b < nb; b++) {
                _mm_prefetch((const char *)pa + 128 * nb + 64 * b, _MM_HINT_T1);
                __m512i va = _mm512_loadu_si512(pa + 64 * b);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(va, m3), bcast4(xq + 16 * b));
                a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(va, 2), m3),
                                         bcast4(xq + 16 * b + 4));
                a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(_mm512_srli_epi16(va, 4), m3),
                                         bcast4(xq + 16 * b + 8));
                a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(_mm512_srli_epi16(va, 6), m3),
                                         bcast4(xq + 16 * b + 12));
            }
            __m512i sa = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
            store_rows(yt + 16 * (g - g0), i2_finish(sa, x->sum[t], w->d, x->scale[t]), 16 * g,
                       w->m);
        }
    }
}

/* One group x T tokens (T <= 8, a compile-time constant after inlining). */
A512 void i2_tile(const krn_w_view *w, const krn_act_view *x, size_t g, size_t t0, int T, float *y,
                  size_t ldy)
{
    const size_t nb = w->k_pad / 16;
    const __m512i m3 = _mm512_set1_epi8(3);
    const uint8_t *p = w->data + 64 * g * nb;
    const int8_t *xq = x->q + t0 * x->ldq;
    __m512i acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_si512();
    for (size_t b = 0; b < nb; b++) {
        __m512i v = _mm512_loadu_si512(p + 64 * b);
        __m512i c0 = _mm512_and_si512(v, m3);
        __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(v, 2), m3);
        __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(v, 4), m3);
        __m512i c3 = _mm512_and_si512(_mm512_srli_epi16(v, 6), m3);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *xb = xq + t * x->ldq + 16 * b;
            acc[t] = _mm512_dpbusd_epi32(acc[t], c0, bcast4(xb));
            acc[t] = _mm512_dpbusd_epi32(acc[t], c1, bcast4(xb + 4));
            acc[t] = _mm512_dpbusd_epi32(acc[t], c2, bcast4(xb + 8));
            acc[t] = _mm512_dpbusd_epi32(acc[t], c3, bcast4(xb + 12));
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        store_rows(y + (t0 + t) * ldy, i2_finish(acc[t], x->sum[t0 + t], w->d, x->scale[t0 + t]),
                   16 * g, w->m);
}

/* Two groups (32 rows) x T tokens: each broadcast activation feeds two vpdpbusd, each
 * unpacked code vector T of them (16 accumulators + 8 code registers at T = 8). */
A512 void i2_tile2(const krn_w_view *w, const krn_act_view *x, size_t g, size_t t0, int T, float *y,
                   size_t ldy)
{
    const size_t nb = w->k_pad / 16;
    const __m512i m3 = _mm512_set1_epi8(3);
    const uint8_t *pa = w->data + 64 * g * nb, *pb = pa + 64 * nb;
    const int8_t *xq = x->q + t0 * x->ldq;
    __m512i acc[8], bcc[8];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = bcc[t] = _mm512_setzero_si512();
    for (size_t b = 0; b < nb; b++) {
        __m512i va = _mm512_loadu_si512(pa + 64 * b), vb = _mm512_loadu_si512(pb + 64 * b);
        __m512i a0 = _mm512_and_si512(va, m3), b0 = _mm512_and_si512(vb, m3);
        __m512i a1 = _mm512_and_si512(_mm512_srli_epi16(va, 2), m3);
        __m512i b1 = _mm512_and_si512(_mm512_srli_epi16(vb, 2), m3);
        __m512i a2 = _mm512_and_si512(_mm512_srli_epi16(va, 4), m3);
        __m512i b2 = _mm512_and_si512(_mm512_srli_epi16(vb, 4), m3);
        __m512i a3 = _mm512_and_si512(_mm512_srli_epi16(va, 6), m3);
        __m512i b3 = _mm512_and_si512(_mm512_srli_epi16(vb, 6), m3);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *xb = xq + t * x->ldq + 16 * b;
            __m512i x0 = bcast4(xb), x1 = bcast4(xb + 4), x2 = bcast4(xb + 8), x3 = bcast4(xb + 12);
            acc[t] = _mm512_dpbusd_epi32(acc[t], a0, x0);
            bcc[t] = _mm512_dpbusd_epi32(bcc[t], b0, x0);
            acc[t] = _mm512_dpbusd_epi32(acc[t], a1, x1);
            bcc[t] = _mm512_dpbusd_epi32(bcc[t], b1, x1);
            acc[t] = _mm512_dpbusd_epi32(acc[t], a2, x2);
            bcc[t] = _mm512_dpbusd_epi32(bcc[t], b2, x2);
            acc[t] = _mm512_dpbusd_epi32(acc[t], a3, x3);
            bcc[t] = _mm512_dpbusd_epi32(bcc[t], b3, x3);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        float *yt = y + (t0 + t) * ldy;
        store_rows(yt, i2_finish(acc[t], x->sum[t0 + t], w->d, x->scale[t0 + t]), 16 * g, w->m);
        store_rows(yt + 16, i2_finish(bcc[t], x->sum[t0 + t], w->d, x->scale[t0 + t]), 16 * g + 16,
                   w->m);
    }
}

void krn_i2_gemm_avx512(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                        size_t ldy)
{
    size_t g = g0;
    for (; g + 2 <= g1; g += 2) {
        float *yg = y + 16 * (g - g0);
        size_t t = 0;
        for (; t + 6 <= x->n; t += 6)
            i2_tile2(w, x, g, t, 6, yg, ldy);
        switch (x->n - t) {
        case 5: i2_tile2(w, x, g, t, 5, yg, ldy); break;
        case 4: i2_tile2(w, x, g, t, 4, yg, ldy); break;
        case 3: i2_tile2(w, x, g, t, 3, yg, ldy); break;
        case 2: i2_tile2(w, x, g, t, 2, yg, ldy); break;
        case 1: i2_tile2(w, x, g, t, 1, yg, ldy); break;
        default: break;
        }
    }
    for (; g < g1; g++) {
        float *yg = y + 16 * (g - g0);
        size_t t = 0;
        for (; t + 8 <= x->n; t += 8)
            i2_tile(w, x, g, t, 8, yg, ldy);
        switch (x->n - t) {
        case 7: i2_tile(w, x, g, t, 7, yg, ldy); break;
        case 6: i2_tile(w, x, g, t, 6, yg, ldy); break;
        case 5: i2_tile(w, x, g, t, 5, yg, ldy); break;
        case 4: i2_tile(w, x, g, t, 4, yg, ldy); break;
        case 3: i2_tile(w, x, g, t, 3, yg, ldy); break;
        case 2: i2_tile(w, x, g, t, 2, yg, ldy); break;
        case 1: i2_tile(w, x, g, t, 1, yg, ldy); break;
        default: break;
        }
    }
}

/* ---- Q8: codes already bytes (w8 + 128), 64 bytes = 16 rows x 4 k ------------------------- */

A512 void q8_tile(const krn_w_view *w, const krn_act_view *x, size_t g, size_t t0, int T, float *y,
                  size_t ldy)
{
    const size_t nc = w->k_pad / 4;
    const uint8_t *p = w->data + 64 * g * nc;
    const int8_t *xq = x->q + t0 * x->ldq;
    __m512i acc[8], acc2[8];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = acc2[t] = _mm512_setzero_si512();
    for (size_t c = 0; c < nc; c += 2) { /* k_pad is a multiple of 64: nc even */
        if (T == 1) { /* GEMV: stream the head ahead into L2 (see KRN_GEMV_PREFETCH) */
            _mm_prefetch((const char *)p + 64 * c + 8192, _MM_HINT_T1);
            _mm_prefetch((const char *)p + 64 * c + 8256, _MM_HINT_T1);
        }
        __m512i v0 = _mm512_loadu_si512(p + 64 * c), v1 = _mm512_loadu_si512(p + 64 * c + 64);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            acc[t] = _mm512_dpbusd_epi32(acc[t], v0, bcast4(xq + t * x->ldq + 4 * c));
            acc2[t] = _mm512_dpbusd_epi32(acc2[t], v1, bcast4(xq + t * x->ldq + 4 * c + 4));
        }
    }
    __m512 s = _mm512_loadu_ps(w->scales + 16 * g); /* scales padded to m_pad */
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512i d = _mm512_sub_epi32(_mm512_add_epi32(acc[t], acc2[t]),
                                     _mm512_set1_epi32(128 * x->sum[t0 + t]));
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(d),
                                 _mm512_mul_ps(s, _mm512_set1_ps(x->scale[t0 + t])));
        store_rows(y + (t0 + t) * ldy, v, 16 * g, w->m);
    }
}

/* Two groups x T tokens (T <= 8): each broadcast feeds two vpdpbusd (prefill, n >= 2). */
A512 void q8_tile2(const krn_w_view *w, const krn_act_view *x, size_t g, size_t t0, int T, float *y,
                   size_t ldy)
{
    const size_t nc = w->k_pad / 4;
    const uint8_t *pa = w->data + 64 * g * nc, *pb = pa + 64 * nc;
    const int8_t *xq = x->q + t0 * x->ldq;
    __m512i acc[8], bcc[8];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = bcc[t] = _mm512_setzero_si512();
    for (size_t c = 0; c < nc; c++) {
        __m512i va = _mm512_loadu_si512(pa + 64 * c), vb = _mm512_loadu_si512(pb + 64 * c);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512i xv = bcast4(xq + t * x->ldq + 4 * c);
            acc[t] = _mm512_dpbusd_epi32(acc[t], va, xv);
            bcc[t] = _mm512_dpbusd_epi32(bcc[t], vb, xv);
        }
    }
    __m512 sa = _mm512_loadu_ps(w->scales + 16 * g), sb = _mm512_loadu_ps(w->scales + 16 * g + 16);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512i corr = _mm512_set1_epi32(128 * x->sum[t0 + t]);
        __m512 sx = _mm512_set1_ps(x->scale[t0 + t]);
        float *yt = y + (t0 + t) * ldy;
        store_rows(yt,
                   _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[t], corr)),
                                 _mm512_mul_ps(sa, sx)),
                   16 * g, w->m);
        store_rows(yt + 16,
                   _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(bcc[t], corr)),
                                 _mm512_mul_ps(sb, sx)),
                   16 * g + 16, w->m);
    }
}

void krn_q8_gemm_avx512(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                        size_t ldy)
{
    size_t g = g0;
    if (x->n >= 2)
        for (; g + 2 <= g1; g += 2) {
            float *yg = y + 16 * (g - g0);
            size_t t = 0;
            for (; t + 8 <= x->n; t += 8)
                q8_tile2(w, x, g, t, 8, yg, ldy);
            switch (x->n - t) {
            case 7: q8_tile2(w, x, g, t, 7, yg, ldy); break;
            case 6: q8_tile2(w, x, g, t, 6, yg, ldy); break;
            case 5: q8_tile2(w, x, g, t, 5, yg, ldy); break;
            case 4: q8_tile2(w, x, g, t, 4, yg, ldy); break;
            case 3: q8_tile2(w, x, g, t, 3, yg, ldy); break;
            case 2: q8_tile2(w, x, g, t, 2, yg, ldy); break;
            case 1: q8_tile2(w, x, g, t, 1, yg, ldy); break;
            default: break;
            }
        }
    for (; g < g1; g++) {
        float *yg = y + 16 * (g - g0);
        size_t t = 0;
        for (; t + 8 <= x->n; t += 8)
            q8_tile(w, x, g, t, 8, yg, ldy);
        switch (x->n - t) {
        case 7: q8_tile(w, x, g, t, 7, yg, ldy); break;
        case 6: q8_tile(w, x, g, t, 6, yg, ldy); break;
        case 5: q8_tile(w, x, g, t, 5, yg, ldy); break;
        case 4: q8_tile(w, x, g, t, 4, yg, ldy); break;
        case 3: q8_tile(w, x, g, t, 3, yg, ldy); break;
        case 2: q8_tile(w, x, g, t, 2, yg, ldy); break;
        case 1: q8_tile(w, x, g, t, 1, yg, ldy); break;
        default: break;
        }
    }
}

/* ---- Q4: per block of 32 k, 4 chunks of 64 bytes, low nibble k 8c..8c+3, high 8c+4..8c+7 -- */

A512 void q4_tile(const krn_w_view *w, const krn_act_view *x, size_t g, size_t t0, int T, float *y,
                  size_t ldy)
{
    const size_t nb = w->k_pad / KRN_Q4_BLOCK;
    const uint8_t *p = w->data + 256 * g * nb;
    const uint16_t *sc = w->scales16 + 16 * g * nb;
    const int8_t *xq = x->q + t0 * x->ldq;
    const __m512i m15 = _mm512_set1_epi8(15);
    __m512 f[8];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        f[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m512i lo[4], hi[4];
#pragma GCC unroll 8
        for (int c = 0; c < 4; c++) {
            __m512i v = _mm512_loadu_si512(p + 256 * b + 64 * c);
            lo[c] = _mm512_and_si512(v, m15);
            hi[c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m15);
        }
        /* the 16 rows' fp16 scales, converted exactly (as krn_f16_to_f32) */
        __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc + 16 * b)));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *xb = xq + t * x->ldq + 32 * b;
            __m512i a = _mm512_setzero_si512(), a2 = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int c = 0; c < 4; c += 2) {
                a = _mm512_dpbusd_epi32(a, lo[c], bcast4(xb + 8 * c));
                a2 = _mm512_dpbusd_epi32(a2, hi[c], bcast4(xb + 8 * c + 4));
                a = _mm512_dpbusd_epi32(a, lo[c + 1], bcast4(xb + 8 * c + 8));
                a2 = _mm512_dpbusd_epi32(a2, hi[c + 1], bcast4(xb + 8 * c + 12));
            }
            int32_t bs = x->bsum[(t0 + t) * nb + b];
            __m512i d = _mm512_sub_epi32(_mm512_add_epi32(a, a2), _mm512_set1_epi32(8 * bs));
            f[t] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(d), f[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        store_rows(y + (t0 + t) * ldy, _mm512_mul_ps(f[t], _mm512_set1_ps(x->scale[t0 + t])),
                   16 * g, w->m);
}

void krn_q4_gemm_avx512(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                        size_t ldy)
{
    for (size_t g = g0; g < g1; g++) {
        float *yg = y + 16 * (g - g0);
        size_t t = 0;
        for (; t + 4 <= x->n; t += 4)
            q4_tile(w, x, g, t, 4, yg, ldy);
        switch (x->n - t) {
        case 3: q4_tile(w, x, g, t, 3, yg, ldy); break;
        case 2: q4_tile(w, x, g, t, 2, yg, ldy); break;
        case 1: q4_tile(w, x, g, t, 1, yg, ldy); break;
        default: break;
        }
    }
}

/* ---- activation quantization (bit-exact with krn_actq_ref) ---------------------------------- */

size_t krn_actq_avx512(const float *x, size_t k, size_t k_pad, int8_t *q, float *scale,
                       int32_t *sum, int32_t *bsum)
{
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    __m512 gmax = _mm512_setzero_ps();
    size_t bad = 0;
    for (size_t i = 0; i < k; i += 16) {
        __mmask16 lm = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
        __m512i v =
            _mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(lm, x + i)), absmask);
        __mmask16 fin = _mm512_cmplt_epi32_mask(v, inf);
        bad += (size_t)__builtin_popcount((unsigned)(lm & ~fin));
        gmax = _mm512_mask_max_ps(gmax, fin, gmax, _mm512_castsi512_ps(v));
    }
    float g = _mm512_reduce_max_ps(gmax);
    float inv = 127.0f / (g + KRN_A_EPS);
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
    __m512i tot = _mm512_setzero_si512();
    for (size_t i = 0; i < k_pad; i += 32) {
        __m512i bs = _mm512_setzero_si512();
        for (size_t h = i; h < i + 32; h += 16) {
            __mmask16 lm = h >= k ? 0 : k - h >= 16 ? 0xffff : (__mmask16)((1u << (k - h)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(lm, x + h);
            __m512i bits = _mm512_and_si512(_mm512_castps_si512(v), absmask);
            __mmask16 fin = _mm512_cmplt_epi32_mask(bits, inf);
            __mmask16 isinf = _mm512_cmpeq_epi32_mask(bits, inf);
            __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(v, vinv));
            r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
            r = _mm512_maskz_mov_epi32(fin, r); /* NaN -> 0 */
            __mmask16 neg = _mm512_cmplt_epi32_mask(_mm512_castps_si512(v), _mm512_setzero_si512());
            r = _mm512_mask_mov_epi32(r, isinf & ~neg, hi);
            r = _mm512_mask_mov_epi32(r, isinf & neg, _mm512_set1_epi32(-127));
            _mm_storeu_si128((__m128i *)(q + h), _mm512_cvtepi32_epi8(r));
            bs = _mm512_add_epi32(bs, r);
        }
        if (bsum)
            bsum[i / 32] = _mm512_reduce_add_epi32(bs);
        tot = _mm512_add_epi32(tot, bs);
    }
    *scale = g / 127.0f;
    *sum = _mm512_reduce_add_epi32(tot);
    return bad;
}
