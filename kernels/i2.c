/*
 * kernels/i2.c — the ternary quantizer, the I2 packed matrix (krn_i2) and the threaded drivers
 * of its GEMV/GEMM. Layout and math: quant.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/gemm.h"
#include "kernels/internal.h"
#include "kernels/krn.h"

/* Weights are streamed once per token: on 4 KiB pages a decode step takes a TLB miss every few
 * KiB of every matrix (two-dimensional page walks in a VM). Buffers of 2 MiB and more are
 * 2 MiB-aligned and asked for transparent huge pages (MADV_HUGEPAGE: the usual setting is
 * "madvise", which gives none without asking) before the zero-fill faults them in. */
#define KRN_HUGE ((size_t)2 << 20)

void *krn_zalloc64(size_t n)
{
    n = (n + 63) / 64 * 64;
    if (n >= KRN_HUGE) {
        n = (n + KRN_HUGE - 1) / KRN_HUGE * KRN_HUGE;
        void *p = aligned_alloc(KRN_HUGE, n);
        if (p) {
            (void)madvise(p, n, MADV_HUGEPAGE); /* advice only: 4 KiB pages still work */
            memset(p, 0, n);
        }
        return p;
    }
    void *p = aligned_alloc(64, n ? n : 64);
    if (p)
        memset(p, 0, n ? n : 64);
    return p;
}

int krn_ternary_quantize(const float *w, size_t m, size_t k, int8_t *codes, float *scale)
{
    size_t n = m * k, bad = 0;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, &w[i], sizeof(v));
        if (isfinite(v))
            s += fabs((double)v);
        else
            bad++;
    }
    float d = n > bad ? (float)(s / (double)(n - bad)) : 0.0f;
    float inv = 1.0f / (d + KRN_W_EPS);
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, &w[i], sizeof(v));
        int c;
        if (isnan(v))
            c = 0;
        else if (isinf(v))
            c = v > 0 ? 1 : -1;
        else {
            float r = rintf(v * inv);
            c = r > 1.0f ? 1 : r < -1.0f ? -1 : (int)r;
        }
        codes[i] = (int8_t)c;
    }
    *scale = d;
    return bad ? KRN_ENONFINITE : KRN_OK;
}

static int i2_alloc(size_t m, size_t k, float d, krn_i2 **out)
{
    *out = NULL;
    if (!m || !k)
        return KRN_EINVAL;
    if (k > KRN_I2_MAX_K)
        return KRN_ETOOBIG;
    krn_i2 *w = calloc(1, sizeof(*w));
    if (!w)
        return KRN_ENOMEM;
    w->m = m;
    w->k = k;
    w->m_pad = (m + KRN_I2_ROWS - 1) / KRN_I2_ROWS * KRN_I2_ROWS;
    w->k_pad = krn_kpad(k);
    w->d = d;
    w->csum = krn_zalloc64(w->m_pad * sizeof(*w->csum));
    if (!w->csum) {
        free(w);
        return KRN_ENOMEM;
    }
    *out = w;
    return KRN_OK;
}

static void i2_sums(krn_i2 *w)
{
    size_t nb = w->k_pad / 16;
    for (size_t m = 0; m < w->m_pad; m++) {
        size_t g = m / KRN_I2_ROWS, r = m % KRN_I2_ROWS;
        int32_t s = 0;
        for (size_t b = 0; b < nb; b++)
            for (size_t j = 0; j < 4; j++) {
                uint8_t byte = w->data[64 * (g * nb + b) + 4 * r + j];
                s += (byte & 3) + (byte >> 2 & 3) + (byte >> 4 & 3) + (byte >> 6 & 3);
            }
        w->csum[m] = s;
    }
}

int krn_i2_create_codes(const int8_t *codes, size_t m, size_t k, float d, krn_i2 **out)
{
    krn_i2 *w;
    int rc = i2_alloc(m, k, d, &w);
    if (rc)
        return rc;
    uint8_t *buf = krn_zalloc64(w->m_pad * w->k_pad / 4);
    if (!buf) {
        rc = KRN_ENOMEM;
        goto out_w;
    }
    memset(buf, 0x55, w->m_pad * w->k_pad / 4); /* every code 1 (c = 0): the padding value */
    size_t nb = w->k_pad / 16;
    for (size_t mm = 0; mm < m; mm++) {
        size_t g = mm / KRN_I2_ROWS, r = mm % KRN_I2_ROWS;
        for (size_t kk = 0; kk < k; kk++) {
            int c = codes[mm * k + kk];
            if (c < -1 || c > 1) {
                rc = KRN_EINVAL;
                goto out_buf;
            }
            size_t b = kk / 16, p = (kk % 16) / 4, j = kk % 4;
            uint8_t *byte = &buf[64 * (g * nb + b) + 4 * r + j];
            *byte = (uint8_t)((*byte & ~(3u << 2 * p)) | (unsigned)(c + 1) << 2 * p);
        }
    }
    w->own = buf;
    w->data = buf;
    i2_sums(w);
    *out = w;
    return KRN_OK;

out_buf:
    free(buf);
out_w:
    krn_i2_free(w);
    return rc;
}

int krn_i2_create(const float *wf, size_t m, size_t k, krn_i2 **out)
{
    *out = NULL;
    if (!m || !k)
        return KRN_EINVAL;
    int8_t *codes = malloc(m * k);
    if (!codes)
        return KRN_ENOMEM;
    float d;
    int qrc = krn_ternary_quantize(wf, m, k, codes, &d);
    int rc = krn_i2_create_codes(codes, m, k, d, out);
    free(codes);
    return rc ? rc : qrc;
}

int krn_i2_create_packed(const uint8_t *packed, size_t m, size_t k, float d, krn_i2 **out)
{
    krn_i2 *w;
    int rc = i2_alloc(m, k, d, &w);
    if (rc)
        return rc;
    w->data = packed;
    i2_sums(w);
    *out = w;
    return KRN_OK;
}

void krn_i2_free(krn_i2 *w)
{
    if (!w)
        return;
    free(w->own);
    free(w->csum);
    free(w);
}

size_t krn_i2_rows(const krn_i2 *w)
{
    return w->m;
}
size_t krn_i2_cols(const krn_i2 *w)
{
    return w->k;
}
float krn_i2_scale(const krn_i2 *w)
{
    return w->d;
}
size_t krn_i2_bytes(const krn_i2 *w)
{
    return w->m_pad * w->k_pad / 4;
}
const uint8_t *krn_i2_data(const krn_i2 *w)
{
    return w->data;
}

void krn_i2_unpack(const krn_i2 *w, int8_t *codes)
{
    size_t nb = w->k_pad / 16;
    for (size_t m = 0; m < w->m; m++) {
        size_t g = m / KRN_I2_ROWS, r = m % KRN_I2_ROWS;
        for (size_t k = 0; k < w->k; k++) {
            size_t b = k / 16, p = (k % 16) / 4, j = k % 4;
            uint8_t byte = w->data[64 * (g * nb + b) + 4 * r + j];
            codes[m * w->k + k] = (int8_t)(((byte >> 2 * p) & 3) - 1);
        }
    }
}

static krn_w_view i2_view(const krn_i2 *w)
{
    krn_w_view v = {.data = w->data, .csum = w->csum, .d = w->d, .m = w->m, .k_pad = w->k_pad};
    return v;
}

int krn_i2_gemm(const krn_i2 *w, const krn_qact *x, float *y, size_t ldy, krn_pool *pool)
{
    if (krn_qact_cols(x) != w->k || ldy < w->m)
        return KRN_ESHAPE;
    const krn_ops *ops = krn_ops_get();
    krn_w_view wv = i2_view(w);
    krn_act_view xv = krn_qact_view(x);
    if (xv.n == 0)
        return KRN_OK;
    krn_run_groups(xv.n == 1 ? ops->i2_gemv : ops->i2_gemm, &wv, &xv, w->m_pad / KRN_I2_ROWS, y,
                   ldy, pool);
    return KRN_OK;
}

int krn_i2_gemm_rows(const krn_i2 *w, const size_t *rows, size_t nrows, const krn_qact *x, float *y,
                     size_t ldy, krn_pool *pool)
{
    if (krn_qact_cols(x) != w->k || ldy < nrows)
        return KRN_ESHAPE;
    const krn_ops *ops = krn_ops_get();
    krn_w_view wv = i2_view(w);
    krn_act_view xv = krn_qact_view(x);
    return krn_run_rows(xv.n == 1 ? ops->i2_gemv : ops->i2_gemm, &wv, &xv, rows, nrows, y, ldy,
                        pool);
}

size_t krn_i2_groups(const krn_i2 *w)
{
    return w->m_pad / KRN_I2_ROWS;
}

void krn_i2_gemm_part(const krn_i2 *w, const krn_qact *x, size_t g0, size_t g1, float *y,
                      size_t ldy)
{
    size_t ng = w->m_pad / KRN_I2_ROWS;
    g1 = g1 < ng ? g1 : ng;
    if (g0 >= g1 || !x->n)
        return;
    const krn_ops *ops = krn_ops_get();
    krn_w_view wv = i2_view(w);
    krn_act_view xv = krn_qact_view(x);
    (xv.n == 1 ? ops->i2_gemv : ops->i2_gemm)(&wv, &xv, g0, g1, y + g0 * KRN_I2_ROWS, ldy);
}

struct multi_task {
    const krn_ops *ops;
    const krn_i2 *const *w;
    size_t nw, total; /* total row groups over all matrices */
    const krn_act_view *x;
    float *const *y;
    const size_t *ldy;
};

static void multi_run(void *argp, int ith, int nth)
{
    struct multi_task *t = argp;
    size_t lo, hi, base = 0;
    krn_pool_split(t->total, 1, ith, nth, &lo, &hi);
    krn_mat_fn fn = t->x->n == 1 ? t->ops->i2_gemv : t->ops->i2_gemm;
    for (size_t i = 0; i < t->nw && lo < hi; i++) {
        size_t ng = t->w[i]->m_pad / KRN_I2_ROWS;
        if (lo < base + ng) { /* this thread's range overlaps matrix i */
            size_t g0 = lo - base, g1 = (hi < base + ng ? hi : base + ng) - base;
            krn_w_view wv = i2_view(t->w[i]);
            fn(&wv, t->x, g0, g1, t->y[i] + g0 * KRN_I2_ROWS, t->ldy[i]);
            lo = base + g1;
        }
        base += ng;
    }
}

int krn_i2_gemm_multi(const krn_i2 *const *w, size_t nw, const krn_qact *x, float *const *y,
                      const size_t *ldy, krn_pool *pool)
{
    size_t total = 0;
    for (size_t i = 0; i < nw; i++) {
        if (w[i]->k != krn_qact_cols(x) || ldy[i] < w[i]->m)
            return KRN_ESHAPE;
        total += w[i]->m_pad / KRN_I2_ROWS;
    }
    krn_act_view xv = krn_qact_view(x);
    if (!xv.n || !nw)
        return KRN_OK;
    struct multi_task t = {krn_ops_get(), w, nw, total, &xv, y, ldy};
    krn_pool_run(total > 1 ? pool : NULL, multi_run, &t);
    return KRN_OK;
}

/* ---- drivers ------------------------------------------------------------------------------ */

struct groups_task {
    krn_mat_fn fn;
    const krn_w_view *w;
    const krn_act_view *x;
    size_t n_groups;
    float *y;
    size_t ldy;
};

static void groups_run(void *argp, int ith, int nth)
{
    struct groups_task *t = argp;
    size_t g0, g1;
    krn_pool_split(t->n_groups, 1, ith, nth, &g0, &g1);
    if (g0 < g1)
        t->fn(t->w, t->x, g0, g1, t->y + g0 * KRN_I2_ROWS, t->ldy);
}

void krn_run_groups(krn_mat_fn fn, const krn_w_view *w, const krn_act_view *x, size_t n_groups,
                    float *y, size_t ldy, krn_pool *pool)
{
    struct groups_task t = {fn, w, x, n_groups, y, ldy};
    krn_pool_run(n_groups > 1 ? pool : NULL, groups_run, &t);
}

struct rows_task {
    krn_mat_fn fn;
    const krn_w_view *w;
    const krn_act_view *x;
    const size_t *groups; /* distinct groups to compute */
    size_t ngroups;
    float *scratch; /* [ngroups][n][16] */
};

static void rows_run(void *argp, int ith, int nth)
{
    struct rows_task *t = argp;
    size_t i0, i1;
    krn_pool_split(t->ngroups, 1, ith, nth, &i0, &i1);
    for (size_t i = i0; i < i1; i++) {
        float *base = t->scratch + i * t->x->n * KRN_I2_ROWS;
        size_t g = t->groups[i];
        krn_w_view w = *t->w;
        size_t row0 = g * KRN_I2_ROWS;
        if (w.m > row0 + KRN_I2_ROWS)
            w.m = row0 + KRN_I2_ROWS;
        t->fn(&w, t->x, g, g + 1, base, KRN_I2_ROWS);
    }
}

int krn_run_rows(krn_mat_fn fn, const krn_w_view *w, const krn_act_view *x, const size_t *rows,
                 size_t nrows, float *y, size_t ldy, krn_pool *pool)
{
    for (size_t i = 0; i < nrows; i++)
        if (rows[i] >= w->m)
            return KRN_EINVAL;
    if (!nrows || !x->n)
        return KRN_OK;
    size_t *groups = malloc(nrows * sizeof(*groups));
    if (!groups)
        return KRN_ENOMEM;
    size_t ng = 0;
    for (size_t i = 0; i < nrows; i++) {
        size_t g = rows[i] / KRN_I2_ROWS, j = 0;
        while (j < ng && groups[j] != g)
            j++;
        if (j == ng)
            groups[ng++] = g;
    }
    int rc = KRN_ENOMEM;
    float *scratch = malloc(ng * x->n * KRN_I2_ROWS * sizeof(*scratch));
    if (!scratch)
        goto out_groups;
    struct rows_task t = {fn, w, x, groups, ng, scratch};
    krn_pool_run(ng > 1 ? pool : NULL, rows_run, &t);
    for (size_t i = 0; i < nrows; i++) {
        size_t g = rows[i] / KRN_I2_ROWS, j = 0;
        while (groups[j] != g)
            j++;
        for (size_t tk = 0; tk < x->n; tk++) {
            float v = scratch[(j * x->n + tk) * KRN_I2_ROWS + rows[i] % KRN_I2_ROWS];
            memcpy(&y[tk * ldy + i], &v, sizeof(v));
        }
    }
    rc = KRN_OK;
    free(scratch);
out_groups:
    free(groups);
    return rc;
}
