/*
 * tests/test-krn-head.c — LM-head kernels: Q8 (INT8 per row) and Q4 (4-bit, blocks of 32) of
 * every variant against _ref bit for bit over awkward shapes and extremes; quantize/dequantize
 * accuracy; the row-subset variant against the full kernel.
 */
#include "tests/tap.h"
#include "tests/krn_test.h"

#include "kernels/gemm.h"
#include "kernels/pool.h"

static const size_t SHAPES[] = {1, 3, 15, 17, 63, 65, 127, 4095, 4097};
#define NSHAPES (sizeof(SHAPES) / sizeof(SHAPES[0]))

static void test_variants(int fmt)
{
    static const size_t ntok[] = {1, 2, 5, 9};
    const char *fn = fmt == KRN_FMT_Q8 ? "q8" : "q4";
    for (int v = 1; v < KRN_VARIANT_COUNT; v++) {
        const krn_ops *ops = krn_ops_variant((krn_variant)v);
        if (!krn_test_variant_here(v) || v == KRN_VARIANT_AMX) /* AMX runs the avx512 head */
            continue;
        if (!ops) {
            TAP_SKIP("%s variant %s: not supported by this CPU/build", fn, krn_variant_name(v));
            continue;
        }
        krn_mat_fn f = fmt == KRN_FMT_Q8 ? ops->q8_gemm : ops->q4_gemm;
        krn_mat_fn r = fmt == KRN_FMT_Q8 ? krn_q8_gemm_ref : krn_q4_gemm_ref;
        for (int dim = 0; dim < 2; dim++)
            for (size_t s = 0; s < NSHAPES; s++) {
                size_t m = dim ? 17 : SHAPES[s], k = dim ? SHAPES[s] : 65, n = ntok[s % 4];
                if (dim == 1 && SHAPES[s] == 17)
                    continue;
                krn_test_w w = krn_test_w_make(fmt, m, k, KRN_W_RANDOM, 1);
                krn_test_x x = krn_test_x_make(n, k, KRN_X_RANDOM, 3);
                char what[96];
                snprintf(what, sizeof(what), "%s %s %zux%zu n=%zu", fn, krn_variant_name(v), m, k, n);
                TAP_OK(krn_test_mat(f, r, &w.v, &x.v, what), "%s == ref", what);
                krn_test_w_free(&w);
                krn_test_x_free(&x);
            }
        /* extremes: codes at both ends x activations at both ends, K = 4097 */
        int ok = 1;
        const int wm[] = {KRN_W_ALL_NEG, KRN_W_ALL_POS, KRN_W_ALL_ZERO};
        for (int a = 0; a < 3; a++)
            for (int b = KRN_X_MAX; b <= KRN_X_MIN; b++) {
                krn_test_w w = krn_test_w_make(fmt, 20, 4097, wm[a], 0);
                krn_test_x x = krn_test_x_make(3, 4097, b, 1);
                ok &= krn_test_mat(f, r, &w.v, &x.v, "extreme");
                krn_test_w_free(&w);
                krn_test_x_free(&x);
            }
        TAP_OK(ok, "%s %s: all -max/+max/0 codes x q=+127/-128, K=4097 == ref", fn,
               krn_variant_name(v));
    }
}

/* Q8 int32 bound: K = KRN_Q8_MAX_K, codes 255 (w8 = +127) x q = -128 -> dot = -127*128*K. */
static void test_q8_bound(void)
{
    size_t k = KRN_Q8_MAX_K;
    krn_test_w w = krn_test_w_make(KRN_FMT_Q8, 16, k, KRN_W_ALL_POS, 0);
    krn_test_x x = krn_test_x_make(1, k, KRN_X_MIN, 0);
    ((float *)w.scales.p)[0] = 1.0f;
    ((float *)x.scale.p)[0] = 1.0f;
    int ok = 1;
    for (int v = 0; v < KRN_VARIANT_COUNT; v++) {
        const krn_ops *ops = krn_ops_variant((krn_variant)v);
        if (!ops)
            continue;
        float y[16];
        ops->q8_gemm(&w.v, &x.v, 0, 1, y, 16);
        ok &= y[0] == (float)(-127.0 * 128.0 * (double)k);
    }
    TAP_OK(ok, "Q8 int32 bound: K=%zu, w8=+127, q=-128 -> %.0f in every variant", k,
           -127.0 * 128.0 * (double)k);
    krn_test_w_free(&w);
    krn_test_x_free(&x);
}

static void test_public(void)
{
    size_t m = 301, k = 200, n = 3;
    float *wf = malloc(m * k * sizeof(float)), *xf = malloc(n * k * sizeof(float));
    for (size_t i = 0; i < m * k; i++)
        wf[i] = krn_randf() * (1 + i % 7);
    for (size_t i = 0; i < n * k; i++)
        xf[i] = krn_randf();
    krn_q8 *h8;
    krn_q4 *h4;
    krn_qact *a;
    krn_pool *pool;
    int rc = krn_q8_create(wf, m, k, &h8) | krn_q4_create(wf, m, k, &h4) |
             krn_qact_create(4, k, &a) | krn_pool_create(2, &pool) |
             krn_qact_quantize(a, xf, n, k);
    TAP_OK(rc == 0, "create Q8/Q4 heads, quantize activations");
    float *row = malloc(k * sizeof(float));
    double e8 = 0, e4 = 0;
    for (size_t r = 0; r < m; r++) {
        float amax = 0;
        for (size_t j = 0; j < k; j++)
            amax = fmaxf(amax, fabsf(wf[r * k + j]));
        krn_q8_row(h8, r, row);
        for (size_t j = 0; j < k; j++) { /* (fmax here trips a gcc-12 aarch64 vectorizer ICE) */
            double e = fabs(row[j] - wf[r * k + j]) / amax;
            e8 = e > e8 ? e : e8;
        }
        krn_q4_row(h4, r, row);
        for (size_t j = 0; j < k; j++) {
            double e = fabs(row[j] - wf[r * k + j]) / amax;
            e4 = e > e4 ? e : e4;
        }
    }
    TAP_OK(e8 <= 0.5 / 127 + 1e-6 && e4 <= 0.5 / 7 + 1e-6,
           "dequantized rows within half a step: Q8 %.4g (<= %.4g), Q4 %.4g (<= %.4g of absmax)",
           e8, 0.5 / 127, e4, 0.5 / 7);
    float *y = malloc(n * m * sizeof(float));
    size_t rows[] = {300, 0, 5, 5, 17, 299};
    float yr[6 * 3];
    for (int f = 0; f < 2; f++) {
        rc = f ? krn_q4_gemm(h4, a, y, m, pool) : krn_q8_gemm(h8, a, y, m, pool);
        rc |= f ? krn_q4_gemm_rows(h4, rows, 6, a, yr, 6, pool)
                : krn_q8_gemm_rows(h8, rows, 6, a, yr, 6, pool);
        int ok = rc == KRN_OK;
        for (size_t t = 0; t < n; t++)
            for (size_t i = 0; i < 6; i++)
                ok &= yr[t * 6 + i] == y[t * m + rows[i]];
        TAP_OK(ok, "%s row subset (label rows) == the full head's columns, bit for bit",
               f ? "Q4" : "Q8");
    }
    /* from file codes: exact, no requantization (codes with max |c| < 127 keep their scale) */
    {
        int8_t c8[3 * 40], c4[3 * 40];
        float s8[3] = {0.5f, 0.25f, 2.0f}, s4[3 * 2] = {1, 2, 3, 4, 5, 6}, rw[40];
        for (int i = 0; i < 120; i++) {
            c8[i] = (int8_t)((int)(krn_rand() % 21) - 10);
            c4[i] = (int8_t)((int)(krn_rand() % 16) - 8);
        }
        krn_q8 *f8 = NULL;
        krn_q4 *f4 = NULL;
        int ok = krn_q8_create_codes(c8, s8, 3, 40, &f8) == KRN_OK &&
                 krn_q4_create_codes(c4, s4, 3, 40, &f4) == KRN_OK;
        for (int r = 0; ok && r < 3; r++) {
            krn_q8_row(f8, (size_t)r, rw);
            for (int j = 0; j < 40; j++)
                ok &= rw[j] == (float)c8[r * 40 + j] * s8[r];
            krn_q4_row(f4, (size_t)r, rw);
            for (int j = 0; j < 40; j++)
                ok &= rw[j] == (float)c4[r * 40 + j] * s4[r * 2 + j / 32];
        }
        c4[7] = 8;
        krn_q4 *bad4 = NULL;
        ok &= krn_q4_create_codes(c4, s4, 3, 40, &bad4) == KRN_EINVAL && !bad4;
        TAP_OK(ok, "Q8/Q4 from file codes: rows dequantize to code * scale exactly; Q4 code 8 rejected");
        krn_q8_free(f8);
        krn_q4_free(f4);
    }
    size_t badrow = m;
    TAP_OK(krn_q8_gemm_rows(h8, &badrow, 1, a, yr, 1, pool) == KRN_EINVAL, "row >= M -> KRN_EINVAL");
    wf[3] = NAN;
    krn_q8 *hbad = NULL;
    TAP_OK(krn_q8_create(wf, m, k, &hbad) == KRN_ENONFINITE && !hbad, "NaN weight -> KRN_ENONFINITE");
    free(y);
    free(row);
    krn_pool_free(pool);
    krn_qact_free(a);
    krn_q8_free(h8);
    krn_q4_free(h4);
    free(wf);
    free(xf);
}

int main(void)
{
    printf("# kernel variant chosen here: %s\n", krn_variant_name(krn_init()));
    test_variants(KRN_FMT_Q8);
    test_variants(KRN_FMT_Q4);
    test_q8_bound();
    test_public();
    return tap_done();
}
