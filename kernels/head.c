/*
 * kernels/head.c — the LM-head / embedding formats Q8 (INT8 per row) and Q4 (4-bit, blocks of
 * 32 with fp16 scales): quantize + pack, dequantize a row, and the threaded drivers.
 * Layouts and int32 bounds: quant.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/internal.h"
#include "kernels/krn.h"

struct krn_q8 {
    size_t m, k, m_pad, k_pad;
    uint8_t *data; /* [m_pad/16][k_pad/4][64]: w8 + 128 */
    float *scales; /* [m_pad] s_m = absmax/127 */
};

struct krn_q4 {
    size_t m, k, m_pad, k_pad;
    uint8_t *data;    /* [m_pad/16][k_pad/32][256]: nibbles w4 + 8 */
    uint16_t *scales; /* [m_pad/16][k_pad/32][16] fp16 s = f16(absmax/7) per row and block */
};

static int check_finite(const float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, &w[i], sizeof(v));
        if (!isfinite(v))
            return 0;
    }
    return 1;
}

static inline float ldf(const float *p)
{
    float v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static int q8_alloc(size_t m, size_t k, krn_q8 **out)
{
    *out = NULL;
    if (!m || !k)
        return KRN_EINVAL;
    if (k > KRN_Q8_MAX_K)
        return KRN_ETOOBIG;
    krn_q8 *h = calloc(1, sizeof(*h));
    if (!h)
        return KRN_ENOMEM;
    h->m = m;
    h->k = k;
    h->m_pad = (m + 15) / 16 * 16;
    h->k_pad = krn_kpad(k);
    h->data = krn_zalloc64(h->m_pad * h->k_pad);
    h->scales = krn_zalloc64(h->m_pad * sizeof(float));
    if (!h->data || !h->scales) {
        krn_q8_free(h);
        return KRN_ENOMEM;
    }
    memset(h->data, 128, h->m_pad * h->k_pad);
    *out = h;
    return KRN_OK;
}

int krn_q8_create_codes(const int8_t *codes, const float *scales, size_t m, size_t k, krn_q8 **out)
{
    krn_q8 *h;
    int rc = q8_alloc(m, k, &h);
    if (rc)
        return rc;
    for (size_t r = 0; r < m; r++) {
        h->scales[r] = ldf(&scales[r]);
        size_t g = r / 16, rr = r % 16;
        for (size_t j = 0; j < k; j++)
            h->data[64 * (g * (h->k_pad / 4) + j / 4) + 4 * rr + j % 4] =
                (uint8_t)(codes[r * k + j] + 128);
    }
    *out = h;
    return KRN_OK;
}

int krn_q8_create(const float *w, size_t m, size_t k, krn_q8 **out)
{
    *out = NULL;
    if (!m || !k)
        return KRN_EINVAL;
    if (k > KRN_Q8_MAX_K)
        return KRN_ETOOBIG;
    if (!check_finite(w, m * k))
        return KRN_ENONFINITE;
    int8_t *codes = malloc(m * k);
    float *sc = malloc(m * sizeof(float));
    int rc = KRN_ENOMEM;
    if (!codes || !sc)
        goto out;
    for (size_t r = 0; r < m; r++) {
        float amax = 0.0f;
        for (size_t j = 0; j < k; j++)
            amax = fmaxf(amax, fabsf(ldf(&w[r * k + j])));
        float inv = amax > 0 ? 127.0f / amax : 0.0f;
        sc[r] = amax / 127.0f;
        for (size_t j = 0; j < k; j++) {
            float q = rintf(ldf(&w[r * k + j]) * inv);
            codes[r * k + j] = (int8_t)(q > 127.0f ? 127 : q < -127.0f ? -127 : (int)q);
        }
    }
    rc = krn_q8_create_codes(codes, sc, m, k, out);
out:
    free(codes);
    free(sc);
    return rc;
}

void krn_q8_free(krn_q8 *h)
{
    if (!h)
        return;
    free(h->data);
    free(h->scales);
    free(h);
}

size_t krn_q8_rows(const krn_q8 *h)
{
    return h->m;
}
size_t krn_q8_cols(const krn_q8 *h)
{
    return h->k;
}
size_t krn_q8_bytes(const krn_q8 *h)
{
    return h->m_pad * h->k_pad + h->m_pad * sizeof(float);
}

void krn_q8_row(const krn_q8 *h, size_t r, float *out)
{
    size_t g = r / 16, rr = r % 16;
    for (size_t j = 0; j < h->k; j++) {
        int q = h->data[64 * (g * (h->k_pad / 4) + j / 4) + 4 * rr + j % 4] - 128;
        float v = (float)q * h->scales[r];
        memcpy(&out[j], &v, sizeof(v));
    }
}

/* 1 if the fp16 bit pattern h is a usable block scale: finite and not negative (-0 is 0). */
static int q4_scale_ok(uint16_t h)
{
    return (h & 0x7c00) != 0x7c00 && (!(h & 0x8000) || h == 0x8000);
}

int krn_q4_create_codes(const int8_t *codes, const uint16_t *scales, size_t m, size_t k,
                        krn_q4 **out)
{
    *out = NULL;
    if (!m || !k)
        return KRN_EINVAL;
    size_t nbk = (k + KRN_Q4_BLOCK - 1) / KRN_Q4_BLOCK;
    for (size_t i = 0; i < m * k; i++)
        if (codes[i] < -8 || codes[i] > 7)
            return KRN_EINVAL;
    for (size_t i = 0; i < m * nbk; i++) {
        uint16_t s16;
        memcpy(&s16, &scales[i], sizeof(s16));
        if (!q4_scale_ok(s16))
            return KRN_EINVAL;
    }
    krn_q4 *h = calloc(1, sizeof(*h));
    if (!h)
        return KRN_ENOMEM;
    h->m = m;
    h->k = k;
    h->m_pad = (m + 15) / 16 * 16;
    h->k_pad = krn_kpad(k);
    size_t nb = h->k_pad / KRN_Q4_BLOCK;
    h->data = krn_zalloc64(h->m_pad * h->k_pad / 2);
    h->scales = krn_zalloc64(h->m_pad * nb * sizeof(uint16_t));
    if (!h->data || !h->scales) {
        krn_q4_free(h);
        return KRN_ENOMEM;
    }
    memset(h->data, 0x88, h->m_pad * h->k_pad / 2);
    for (size_t r = 0; r < m; r++) {
        size_t g = r / 16, rr = r % 16;
        for (size_t b = 0; b < nbk; b++)
            memcpy(&h->scales[(g * nb + b) * 16 + rr], &scales[r * nbk + b], sizeof(uint16_t));
        for (size_t j = 0; j < k; j++) {
            size_t b = j / 32, kk = j % 32, c = kk / 8, hi = (kk % 8) / 4, jj = kk % 4;
            uint8_t *byte = &h->data[256 * (g * nb + b) + 64 * c + 4 * rr + jj];
            unsigned u = (unsigned)(codes[r * k + j] + 8);
            *byte = hi ? (uint8_t)((*byte & 0x0f) | u << 4) : (uint8_t)((*byte & 0xf0) | u);
        }
    }
    *out = h;
    return KRN_OK;
}

int krn_q4_quantize(const float *w, size_t m, size_t k, int8_t *codes, uint16_t *scales)
{
    if (!m || !k)
        return KRN_EINVAL;
    if (!check_finite(w, m * k))
        return KRN_ENONFINITE;
    size_t nbk = (k + KRN_Q4_BLOCK - 1) / KRN_Q4_BLOCK;
    for (size_t r = 0; r < m; r++)
        for (size_t b = 0; b < nbk; b++) {
            size_t j1 = (b + 1) * 32 < k ? (b + 1) * 32 : k;
            float amax = 0.0f;
            for (size_t j = b * 32; j < j1; j++)
                amax = fmaxf(amax, fabsf(ldf(&w[r * k + j])));
            uint16_t s16 = krn_f32_to_f16(amax / 7.0f);
            float s = krn_f16_to_f32(s16);
            if (isinf(s))
                return KRN_ERANGE;
            memcpy(&scales[r * nbk + b], &s16, sizeof(s16));
            for (size_t j = b * 32; j < j1; j++) {
                float q = s > 0 ? rintf(ldf(&w[r * k + j]) / s) : 0.0f;
                codes[r * k + j] = (int8_t)(q > 7.0f ? 7 : q < -7.0f ? -7 : (int)q);
            }
        }
    return KRN_OK;
}

int krn_q4_create(const float *w, size_t m, size_t k, krn_q4 **out)
{
    *out = NULL;
    if (!m || !k)
        return KRN_EINVAL;
    size_t nbk = (k + KRN_Q4_BLOCK - 1) / KRN_Q4_BLOCK;
    int8_t *codes = malloc(m * k);
    uint16_t *sc = malloc(m * nbk * sizeof(uint16_t));
    int rc = KRN_ENOMEM;
    if (!codes || !sc)
        goto out;
    if ((rc = krn_q4_quantize(w, m, k, codes, sc)) == KRN_OK)
        rc = krn_q4_create_codes(codes, sc, m, k, out);
out:
    free(codes);
    free(sc);
    return rc;
}

void krn_q4_free(krn_q4 *h)
{
    if (!h)
        return;
    free(h->data);
    free(h->scales);
    free(h);
}

size_t krn_q4_rows(const krn_q4 *h)
{
    return h->m;
}
size_t krn_q4_cols(const krn_q4 *h)
{
    return h->k;
}
size_t krn_q4_bytes(const krn_q4 *h)
{
    return h->m_pad * h->k_pad / 2 + h->m_pad * (h->k_pad / 32) * sizeof(uint16_t);
}

void krn_q4_row(const krn_q4 *h, size_t r, float *out)
{
    size_t g = r / 16, rr = r % 16, nb = h->k_pad / 32;
    for (size_t j = 0; j < h->k; j++) {
        size_t b = j / 32, kk = j % 32, c = kk / 8, hi = (kk % 8) / 4, jj = kk % 4;
        uint8_t byte = h->data[256 * (g * nb + b) + 64 * c + 4 * rr + jj];
        int q = (hi ? byte >> 4 : byte & 15) - 8;
        float v = (float)q * krn_f16_to_f32(h->scales[(g * nb + b) * 16 + rr]);
        memcpy(&out[j], &v, sizeof(v));
    }
}

static krn_w_view q8_view(const krn_q8 *h)
{
    krn_w_view v = {.data = h->data, .scales = h->scales, .m = h->m, .k_pad = h->k_pad};
    return v;
}

static krn_w_view q4_view(const krn_q4 *h)
{
    krn_w_view v = {.data = h->data, .scales16 = h->scales, .m = h->m, .k_pad = h->k_pad};
    return v;
}

size_t krn_q8_groups(const krn_q8 *w)
{
    return w->m_pad / 16;
}
size_t krn_q4_groups(const krn_q4 *w)
{
    return w->m_pad / 16;
}

/* The one driver of both heads' part products: clamp [g0, g1) to the matrix's groups and run
 * the variant's row kernel `fn` on this thread (the caller splits groups over its own pool). */
static void gemm_part(krn_mat_fn fn, const krn_w_view *wv, size_t m_pad, const krn_qact *x,
                      size_t g0, size_t g1, float *y, size_t ldy)
{
    g1 = g1 < m_pad / 16 ? g1 : m_pad / 16;
    if (g0 >= g1 || !krn_qact_tokens(x))
        return;
    krn_act_view xv = krn_qact_view(x);
    fn(wv, &xv, g0, g1, y + 16 * g0, ldy);
}

void krn_q8_gemm_part(const krn_q8 *w, const krn_qact *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    krn_w_view wv = q8_view(w);
    gemm_part(krn_ops_get()->q8_gemm, &wv, w->m_pad, x, g0, g1, y, ldy);
}

void krn_q4_gemm_part(const krn_q4 *w, const krn_qact *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    krn_w_view wv = q4_view(w);
    gemm_part(krn_ops_get()->q4_gemm, &wv, w->m_pad, x, g0, g1, y, ldy);
}

/* The whole product y[n][ldy] of either head over the pool: shape checks, then the groups split. */
static int gemm_all(krn_mat_fn fn, const krn_w_view *wv, size_t k, size_t m_pad, const krn_qact *x,
                    float *y, size_t ldy, krn_pool *pool)
{
    if (krn_qact_cols(x) != k || ldy < wv->m)
        return KRN_ESHAPE;
    krn_act_view xv = krn_qact_view(x);
    if (xv.n)
        krn_run_groups(fn, wv, &xv, m_pad / 16, y, ldy, pool);
    return KRN_OK;
}

/* The chosen rows of either head (label scoring): y[n][ldy], column i = row rows[i]. */
static int gemm_rows(krn_mat_fn fn, const krn_w_view *wv, size_t k, const size_t *rows,
                     size_t nrows, const krn_qact *x, float *y, size_t ldy, krn_pool *pool)
{
    if (krn_qact_cols(x) != k || ldy < nrows)
        return KRN_ESHAPE;
    krn_act_view xv = krn_qact_view(x);
    return krn_run_rows(fn, wv, &xv, rows, nrows, y, ldy, pool);
}

int krn_q8_gemm(const krn_q8 *w, const krn_qact *x, float *y, size_t ldy, krn_pool *pool)
{
    krn_w_view wv = q8_view(w);
    return gemm_all(krn_ops_get()->q8_gemm, &wv, w->k, w->m_pad, x, y, ldy, pool);
}

int krn_q4_gemm(const krn_q4 *w, const krn_qact *x, float *y, size_t ldy, krn_pool *pool)
{
    krn_w_view wv = q4_view(w);
    return gemm_all(krn_ops_get()->q4_gemm, &wv, w->k, w->m_pad, x, y, ldy, pool);
}

int krn_q8_gemm_rows(const krn_q8 *w, const size_t *rows, size_t nrows, const krn_qact *x, float *y,
                     size_t ldy, krn_pool *pool)
{
    krn_w_view wv = q8_view(w);
    return gemm_rows(krn_ops_get()->q8_gemm, &wv, w->k, rows, nrows, x, y, ldy, pool);
}

int krn_q4_gemm_rows(const krn_q4 *w, const size_t *rows, size_t nrows, const krn_qact *x, float *y,
                     size_t ldy, krn_pool *pool)
{
    krn_w_view wv = q4_view(w);
    return gemm_rows(krn_ops_get()->q4_gemm, &wv, w->k, rows, nrows, x, y, ldy, pool);
}
