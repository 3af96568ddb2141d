/*
 * tests/test-krn-i2.c — ternary quantizer, I2 packing round trip, activation quantization and
 * the ternary GEMV/GEMM of every variant this CPU runs, bit for bit against _ref, over awkward
 * shapes, unaligned buffers, extreme weights/activations and the int32 bound.
 */
#include "tests/tap.h"
#include "tests/krn_test.h"

#include "kernels/gemm.h"
#include "kernels/pool.h"

static const size_t SHAPES[] = {1, 3, 15, 17, 63, 65, 127, 4095, 4097};
#define NSHAPES (sizeof(SHAPES) / sizeof(SHAPES[0]))

static void test_quantizer(void)
{
    float z[37] = {0};
    int8_t c[37];
    float d = -1;
    int rc = krn_ternary_quantize(z, 1, 37, c, &d);
    int allzero = 1;
    for (int i = 0; i < 37; i++)
        allzero &= c[i] == 0;
    TAP_OK(rc == KRN_OK && d == 0.0f && allzero, "all-zero tensor: d = 0, every code 0");

    float w4[4] = {0.5f, -1.5f, 0.2f, 3.0f}; /* d = 1.3: 0.38 -> 0, -1.15 -> -1, 2.3 -> 1 */
    int8_t c4[4];
    krn_ternary_quantize(w4, 2, 2, c4, &d);
    TAP_OK(fabsf(d - 1.3f) < 1e-6f && c4[0] == 0 && c4[1] == -1 && c4[2] == 0 && c4[3] == 1,
           "absmean example: d=%g codes %d %d %d %d", (double)d, c4[0], c4[1], c4[2], c4[3]);

    size_t n = 4096;
    float *w = malloc(n * sizeof(float));
    int8_t *cc = malloc(n);
    for (size_t i = 0; i < n; i++)
        w[i] = krn_randf() * 0.01f;
    w[77] = 1e6f; /* one huge outlier dominates the mean */
    krn_ternary_quantize(w, 1, n, cc, &d);
    int others0 = 1;
    for (size_t i = 0; i < n; i++)
        if (i != 77)
            others0 &= cc[i] == 0;
    TAP_OK(cc[77] == 1 && others0 && d > 200.0f, "huge outlier: it alone is +1, the rest 0 (d=%g)",
           (double)d);
    w[5] = NAN;
    w[6] = -INFINITY;
    rc = krn_ternary_quantize(w, 1, n, cc, &d);
    TAP_OK(rc == KRN_ENONFINITE && cc[5] == 0 && cc[6] == -1 && isfinite(d),
           "NaN -> 0, -Inf -> -1, KRN_ENONFINITE, finite d");
    free(w);
    free(cc);
}

static void test_pack_roundtrip(void)
{
    const size_t ms[] = {1, 17, 63, 4097}, ks[] = {1, 15, 65, 127, 4097};
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 5; b++) {
            size_t m = ms[a], k = ks[b];
            if (m * k > 1 << 20)
                continue;
            int8_t *c = malloc(m * k), *u = malloc(m * k);
            for (size_t i = 0; i < m * k; i++)
                c[i] = (int8_t)((int)(krn_rand() % 3) - 1);
            krn_i2 *w = NULL, *w2 = NULL;
            int rc = krn_i2_create_codes(c, m, k, 0.5f, &w);
            int ok = rc == KRN_OK;
            if (ok) {
                krn_i2_unpack(w, u);
                ok =
                    !memcmp(c, u, m * k) && krn_i2_bytes(w) == (m + 15) / 16 * 16 * krn_kpad(k) / 4;
                /* wrapping the same bytes (as from a file) gives the same codes */
                ok = ok && krn_i2_create_packed(krn_i2_data(w), m, k, 0.5f, &w2) == KRN_OK;
                if (ok) {
                    memset(u, 9, m * k);
                    krn_i2_unpack(w2, u);
                    ok = !memcmp(c, u, m * k);
                }
            }
            TAP_OK(ok, "pack/unpack round trip %zux%zu (and create_packed)", m, k);
            krn_i2_free(w);
            krn_i2_free(w2);
            free(c);
            free(u);
        }
    int8_t bad[2] = {0, 2};
    krn_i2 *w = NULL;
    TAP_OK(krn_i2_create_codes(bad, 1, 2, 1.0f, &w) == KRN_EINVAL && !w, "code 2 rejected");
}

static void test_actq(void)
{
    for (int v = 1; v < KRN_VARIANT_COUNT; v++) {
        const krn_ops *ops = krn_ops_variant((krn_variant)v);
        if (!ops)
            continue;
        for (size_t s = 0; s < NSHAPES; s++) {
            size_t k = SHAPES[s], kp = krn_kpad(k);
            krn_buf xb = krn_buf_make(k * sizeof(float), 2); /* unaligned floats */
            float *x = xb.p;
            for (size_t i = 0; i < k; i++) {
                float f = krn_randf() * 3.0f;
                if (s % 3 == 1 && i % 7 == 3)
                    f = (i % 2) ? NAN : (i % 4 == 1 ? INFINITY : -INFINITY);
                memcpy(&x[i], &f, 4);
            }
            int8_t *q1 = malloc(kp), *q2 = malloc(kp + 1);
            int32_t s1, s2, b1[kp / 32], b2[kp / 32];
            float sc1, sc2;
            size_t bad1 = krn_actq_ref(x, k, kp, q1, &sc1, &s1, b1);
            size_t bad2 = ops->actq(x, k, kp, q2 + 1, &sc2, &s2, b2);
            int ok = bad1 == bad2 && !memcmp(q1, q2 + 1, kp) && s1 == s2 && sc1 == sc2 &&
                     !memcmp(b1, b2, sizeof(b1));
            TAP_OK(ok, "actq %s == ref, k=%zu%s (non-finite %zu)", krn_variant_name(v), k,
                   s % 3 == 1 ? " with NaN/Inf" : "", bad1);
            free(q1);
            free(q2);
            free(xb.base);
        }
    }
    /* the documented contract through the public object */
    krn_qact *a;
    krn_qact_create(2, 5, &a);
    float x[10] = {NAN, INFINITY, -INFINITY, 2.0f, -1.0f, 0, 0, 0, 0, 0};
    int rc = krn_qact_quantize(a, x, 2, 5);
    const int8_t *q = krn_qact_q(a, 0);
    TAP_OK(rc == KRN_ENONFINITE && q[0] == 0 && q[1] == 127 && q[2] == -127 && q[3] == 127 &&
               q[4] == -63 && fabsf(krn_qact_scale(a, 0) - 2.0f / 127) < 1e-9f,
           "NaN/Inf contract: q = %d %d %d %d %d, g from finite values only", q[0], q[1], q[2],
           q[3], q[4]);
    TAP_OK(krn_qact_q(a, 1)[0] == 0 && krn_qact_scale(a, 1) == 0.0f && krn_qact_sum(a, 1) == 0,
           "all-zero token: q = 0, scale 0, sum 0");
    krn_qact_free(a);
}

static void test_gemm_variants(void)
{
    static const size_t ntok[] = {1, 3, 8, 17};
    for (int v = 1; v < KRN_VARIANT_COUNT; v++) {
        const krn_ops *ops = krn_ops_variant((krn_variant)v);
        if (!krn_test_variant_here(v))
            continue;
        if (!ops) {
            TAP_SKIP("variant %s: not supported by this CPU/build", krn_variant_name(v));
            continue;
        }
        for (int dim = 0; dim < 2; dim++)
            for (size_t s = 0; s < NSHAPES; s++) {
                size_t m = dim ? 17 : SHAPES[s], k = dim ? SHAPES[s] : 65;
                if (dim == 1 && SHAPES[s] == 17)
                    continue;
                size_t n = ntok[s % 4];
                krn_test_w w = krn_test_w_make(KRN_FMT_I2, m, k, KRN_W_RANDOM, 1);
                krn_test_x x = krn_test_x_make(n, k, KRN_X_RANDOM, 3);
                char what[96];
                snprintf(what, sizeof(what), "i2 %s %zux%zu n=%zu", krn_variant_name(v), m, k, n);
                int ok = krn_test_mat(n == 1 ? ops->i2_gemv : ops->i2_gemm, krn_i2_gemm_ref, &w.v,
                                      &x.v, what);
                /* integer result exposed: unit scales make the output the int32 itself */
                w.v.d = 1.0f;
                for (size_t t = 0; t < n; t++)
                    ((float *)x.scale.p)[t] = 1.0f;
                ok = ok && krn_test_mat(ops->i2_gemm, krn_i2_gemm_ref, &w.v, &x.v, what);
                TAP_OK(ok, "%s == ref (fp32 and integer)", what);
                krn_test_w_free(&w);
                krn_test_x_free(&x);
            }
    }
}

/* All -1 / +1 / 0 weights against activations of +127 / -128, and the int32 bound. */
static void test_extremes(void)
{
    const int wm[] = {KRN_W_ALL_NEG, KRN_W_ALL_POS, KRN_W_ALL_ZERO};
    const char *wn[] = {"all -1", "all +1", "all 0"};
    const int xm[] = {KRN_X_MAX, KRN_X_MIN};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++) {
            size_t m = 33, k = 4097, n = 9;
            krn_test_w w = krn_test_w_make(KRN_FMT_I2, m, k, wm[a], 0);
            krn_test_x x = krn_test_x_make(n, k, xm[b], 1);
            w.v.d = 1.0f;
            for (size_t t = 0; t < n; t++)
                ((float *)x.scale.p)[t] = 1.0f;
            float *y = malloc(n * m * sizeof(float));
            krn_i2_gemm_ref(&w.v, &x.v, 0, 3, y, m);
            float expect = (float)((a == 0   ? -1
                                    : a == 1 ? 1
                                             : 0) *
                                   (b == 0 ? 127 : -128) * (long)k);
            int ok = 1;
            for (size_t i = 0; i < n * m; i++)
                ok &= y[i] == expect;
            for (int v = 1; v < KRN_VARIANT_COUNT; v++) {
                const krn_ops *ops = krn_ops_variant((krn_variant)v);
                if (ops)
                    ok = ok && krn_test_mat(ops->i2_gemm, krn_i2_gemm_ref, &w.v, &x.v, wn[a]) &&
                         krn_test_mat(ops->i2_gemv, krn_i2_gemm_ref, &w.v, &x.v, wn[a]);
            }
            TAP_OK(ok, "%s weights x q=%d, K=%zu: every variant gives exactly %.0f", wn[a],
                   b == 0 ? 127 : -128, k, (double)expect);
            free(y);
            krn_test_w_free(&w);
            krn_test_x_free(&x);
        }
    /* int32 bound: the worst case |dot| = 2 * 128 * K must not wrap (K = 65536: 2^24). */
    size_t k = 65536, m = 16;
    krn_test_w w = krn_test_w_make(KRN_FMT_I2, m, k, KRN_W_ALL_POS, 0);
    krn_test_x x = krn_test_x_make(1, k, KRN_X_MIN, 0);
    w.v.d = 1.0f;
    ((float *)x.scale.p)[0] = 1.0f;
    /* dot(2, -128) - sum(-128) = -128 K */
    int ok = krn_test_every_variant(KRN_FMT_I2, &w.v, &x.v, 16, -128.0f * (float)k);
    TAP_OK(ok,
           "int32 bound: K=65536, codes +1, q=-128: stored dot = -2^24, no wrap in any variant");
    krn_test_w_free(&w);
    krn_test_x_free(&x);
}

/* The public path: quantize fp32 weights, pack, run on a 2-thread pool, compare with a float
 * computation from the unpacked codes; and the row subset equals the full result. */
static void test_public_api(void)
{
    size_t m = 100, k = 300, n = 5;
    float *wf = malloc(m * k * sizeof(float)), *x = malloc(n * k * sizeof(float));
    for (size_t i = 0; i < m * k; i++)
        wf[i] = krn_randf();
    for (size_t i = 0; i < n * k; i++)
        x[i] = krn_randf() * 4;
    krn_i2 *w;
    krn_qact *a;
    krn_pool *pool;
    int rc = krn_i2_create(wf, m, k, &w);
    rc |= krn_qact_create(8, k, &a);
    rc |= krn_pool_create(2, &pool);
    rc |= krn_qact_quantize(a, x, n, k);
    float *y = malloc(n * m * sizeof(float)), *y1 = malloc(n * m * sizeof(float));
    rc |= krn_i2_gemm(w, a, y, m, pool);
    rc |= krn_i2_gemm(w, a, y1, m, NULL);
    int8_t *c = malloc(m * k);
    krn_i2_unpack(w, c);
    double maxerr = 0;
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < m; r++) {
            double s = 0;
            for (size_t j = 0; j < k; j++)
                s += c[r * k + j] * (double)krn_qact_q(a, t)[j];
            s *= (double)krn_i2_scale(w) * krn_qact_scale(a, t);
            double e = fabs(s - y[t * m + r]) / (fabs(s) + 1e-3);
            maxerr = e > maxerr ? e : maxerr;
        }
    TAP_OK(rc == 0 && maxerr < 1e-5 && !memcmp(y, y1, n * m * sizeof(float)),
           "krn_i2_gemm on a 2-thread pool == serial == float math (rel err %.2g)", maxerr);
    size_t rows[] = {99, 0, 17, 17, 64};
    float yr[5 * 5];
    rc = krn_i2_gemm_rows(w, rows, 5, a, yr, 5, pool);
    int ok = rc == KRN_OK;
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < 5; i++)
            ok &= yr[t * 5 + i] == y[t * m + rows[i]];
    TAP_OK(ok, "krn_i2_gemm_rows equals the full result's columns");
    /* three layers on one region == three separate calls, bit for bit */
    krn_i2 *w2, *w3;
    float *wf2 = malloc(17 * k * sizeof(float));
    for (size_t i = 0; i < 17 * k; i++)
        wf2[i] = krn_randf();
    rc = krn_i2_create(wf2, 17, k, &w2) | krn_i2_create(wf2, 1, k, &w3);
    float *ya = malloc(n * 17 * sizeof(float)), *yb = malloc(n * 17 * sizeof(float));
    float *yc = malloc(n * sizeof(float)), *yd = malloc(n * sizeof(float));
    float *ym = malloc(n * m * sizeof(float));
    const krn_i2 *ws[3] = {w, w2, w3};
    float *ys[3] = {ym, ya, yc};
    size_t lds[3] = {m, 17, 1};
    rc |= krn_i2_gemm_multi(ws, 3, a, ys, lds, pool);
    rc |= krn_i2_gemm(w2, a, yb, 17, NULL) | krn_i2_gemm(w3, a, yd, 1, NULL);
    TAP_OK(rc == 0 && !memcmp(ym, y, n * m * 4) && !memcmp(ya, yb, n * 17 * 4) &&
               !memcmp(yc, yd, n * 4),
           "krn_i2_gemm_multi (100, 17 and 1 rows, one region) == separate calls");
    krn_qact_quantize(a, x, 1, k); /* the GEMV path too */
    rc = krn_i2_gemm_multi(ws, 3, a, ys, lds, pool);
    rc |= krn_i2_gemm(w, a, y, m, NULL) | krn_i2_gemm(w2, a, yb, 17, NULL);
    TAP_OK(rc == 0 && !memcmp(ym, y, m * 4) && !memcmp(ya, yb, 17 * 4),
           "krn_i2_gemm_multi with one token (GEMV) == separate calls");
    free(ya);
    free(yb);
    free(yc);
    free(yd);
    free(ym);
    free(wf2);
    krn_i2_free(w2);
    krn_i2_free(w3);
    krn_qact *a2;
    krn_qact_create(1, k + 1, &a2);
    TAP_OK(krn_i2_gemm(w, a2, y, m, pool) == KRN_ESHAPE, "K mismatch -> KRN_ESHAPE");
    krn_qact_free(a2);
    free(c);
    free(y);
    free(y1);
    krn_pool_free(pool);
    krn_qact_free(a);
    krn_i2_free(w);
    free(wf);
    free(x);
}

int main(void)
{
    printf("# kernel variant chosen here: %s\n", krn_variant_name(krn_init()));
    test_quantizer();
    test_pack_roundtrip();
    test_actq();
    test_gemm_variants();
    test_extremes();
    test_public_api();
    return tap_done();
}
