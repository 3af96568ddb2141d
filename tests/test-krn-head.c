/*
 * tests/test-krn-head.c — LM-head kernels: Q8 (INT8 per row) and Q4 (4-bit, blocks of 32, fp16
 * block scales) of every variant against _ref bit for bit over awkward shapes and extremes;
 * quantize/dequantize accuracy; the row-subset variant against the full kernel; the scalar
 * fp16 <-> fp32 conversions (kernels/half.c) against the hardware instruction (F16C on x86-64,
 * FCVT through __fp16 on aarch64) for all 65536 halves and every rounding boundary.
 */
#include "tests/tap.h"
#include "tests/krn_test.h"

#include "kernels/gemm.h"
#include "kernels/pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Random fp32 bit patterns checked against the hardware conversion on top of the exhaustive
 * and boundary sweeps. */
#define HALF_RANDOM 1000000

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
                snprintf(what, sizeof(what), "%s %s %zux%zu n=%zu", fn, krn_variant_name(v), m, k,
                         n);
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
    int ok = krn_test_every_variant(KRN_FMT_Q8, &w.v, &x.v, 1, (float)(-127.0 * 128.0 * (double)k));
    TAP_OK(ok, "Q8 int32 bound: K=%zu, w8=+127, q=-128 -> %.0f in every variant", k,
           -127.0 * 128.0 * (double)k);
    krn_test_w_free(&w);
    krn_test_x_free(&x);
}

/* Q4 scale extremes: the largest half (65504) and the smallest subnormal (2^-24), codes +7
 * (stored 15) x q = -128 over K = 4096: every block gives dot - 8 bsum = -7*128*32 = -28672 and
 * the exact results are s * -28672 * 128 (all exactly representable in fp32). */
static void test_q4_scale_extremes(void)
{
    const size_t k = 4096, nb = k / 32;
    const uint16_t hs[2] = {0x7bff, 0x0001};
    const double want[2] = {65504.0 * -28672.0 * 128.0, -28672.0 * 128.0 / 16777216.0};
    for (int e = 0; e < 2; e++) {
        krn_test_w w = krn_test_w_make(KRN_FMT_Q4, 16, k, KRN_W_ALL_POS, 0);
        krn_test_x x = krn_test_x_make(1, k, KRN_X_MIN, 0);
        for (size_t i = 0; i < 16 * nb; i++)
            memcpy((char *)w.scales16.p + 2 * i, &hs[e], 2);
        ((float *)x.scale.p)[0] = 1.0f;
        int ok = krn_test_every_variant(KRN_FMT_Q4, &w.v, &x.v, 16, (float)want[e]);
        TAP_OK(ok, "Q4 fp16 scale 0x%04x (%g): every variant gives the exact %.9g", hs[e],
               e ? 0x1p-24 : 65504.0, want[e]);
        krn_test_w_free(&w);
        krn_test_x_free(&x);
    }
}

/* The hardware conversions, when this CPU has them: 1 and *h2f / *f2h set, else 0. */
#if defined(__x86_64__)
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
static int hw_have(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
}
#define HW_NAME "F16C vcvtph2ps/vcvtps2ph"
#elif defined(__aarch64__)
static float hw_h2f(uint16_t h)
{
    __fp16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}
static uint16_t hw_f2h(float f)
{
    __fp16 v = (__fp16)f;
    uint16_t h;
    memcpy(&h, &v, 2);
    return h;
}
static int hw_have(void)
{
    return 1;
}
#define HW_NAME "AArch64 FCVT (__fp16)"
#else
static float hw_h2f(uint16_t h)
{
    return (float)h;
}
static uint16_t hw_f2h(float f)
{
    return (uint16_t)f;
}
static int hw_have(void)
{
    return 0;
}
#define HW_NAME "none"
#endif

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* krn_f32_to_f16(f) against the hardware; prints the first few mismatches. */
static int f2h_agrees(float f, int *shown)
{
    uint16_t a = krn_f32_to_f16(f), b = hw_f2h(f);
    if (a != b && (*shown)++ < 5)
        printf("# f32 0x%08x (%.9g): krn 0x%04x, hardware 0x%04x\n", bits_of(f), (double)f, a, b);
    return a == b;
}

static void test_half(void)
{
    int hw = hw_have(), shown = 0, ok_exact = 1, ok_trip = 1, ok_mid = 1, ok_rand = 1;
    /* every half: widening and the round trip (a NaN keeps its payload, made quiet) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = krn_f16_to_f32((uint16_t)h);
        if (hw && bits_of(f) != bits_of(hw_h2f((uint16_t)h))) {
            if (shown++ < 5)
                printf("# half 0x%04x: krn 0x%08x, hardware 0x%08x\n", h, bits_of(f),
                       bits_of(hw_h2f((uint16_t)h)));
            ok_exact = 0;
        }
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        ok_trip &= krn_f32_to_f16(f) == (nan ? (h | 0x200) : h);
    }
    /* every rounding boundary: the midpoint between two neighbouring halves of either sign
     * (and 65504..65536, the overflow tie) and the floats just either side of it */
    for (uint32_t h = 0; h < 0x7c00; h++)
        for (uint32_t sg = 0; sg < 2; sg++) {
            double lo = krn_f16_to_f32((uint16_t)h),
                   hi = h == 0x7bff ? 65536.0 : krn_f16_to_f32((uint16_t)(h + 1));
            float mid = (float)((lo + hi) / 2),
                  mids[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
            for (int i = 0; i < 3; i++) {
                float f = sg ? -mids[i] : mids[i];
                uint16_t want = (uint16_t)(i == 1 ? h : i == 2 ? h + 1 : h + (h & 1));
                uint16_t got = krn_f32_to_f16(f);
                ok_mid &= got == (uint16_t)(want | sg << 15);
                if (hw)
                    ok_mid &= f2h_agrees(f, &shown);
            }
        }
    TAP_OK(ok_trip && ok_mid,
           "fp16: all 65536 halves round-trip (NaNs made quiet); the ties "
           "between neighbouring halves round to even, the floats either side of them to the "
           "near side, 65520 to Inf");
    if (!hw) {
        TAP_SKIP("fp16 against the hardware: no F16C / FCVT on this CPU or architecture");
        return;
    }
    for (int i = 0; i < HALF_RANDOM; i++)
        ok_rand &= f2h_agrees(float_of(krn_rand() << 1 ^ krn_rand()), &shown);
    TAP_OK(ok_exact, "fp16 -> fp32 equals %s for all 65536 halves, bit for bit", HW_NAME);
    TAP_OK(ok_mid && ok_rand,
           "fp32 -> fp16 equals %s at every rounding boundary and on %d "
           "random bit patterns",
           HW_NAME, HALF_RANDOM);
}

/* krn_q4_quantize against the formula of quant.h, written out here: s = f16(amax / 7) and
 * codes clamp(rint(w / f32(s)), -7, 7) from the rounded scale; a scale beyond fp16 refused. */
static void test_q4_quantize(void)
{
    size_t m = 37, k = 100, nbk = (k + 31) / 32;
    float *w = malloc(m * k * sizeof(float));
    int8_t *c = malloc(m * k);
    uint16_t *s = malloc(m * nbk * sizeof(uint16_t));
    for (size_t i = 0; i < m * k; i++) /* magnitudes from 1e-9 (subnormal scales) to 4e5 */
        w[i] = krn_randf() * powf(10.0f, (i / k == 36 ? 14.6f : (float)(i / k % 15)) - 9.0f);
    for (size_t j = 0; j < k; j++)
        w[5 * k + j] = 0.0f; /* an all-zero row */
    int ok = krn_q4_quantize(w, m, k, c, s) == KRN_OK, shown = 0;
    for (size_t r = 0; ok && r < m; r++)
        for (size_t b = 0; b < nbk; b++) {
            size_t j1 = (b + 1) * 32 < k ? (b + 1) * 32 : k;
            float amax = 0.0f;
            for (size_t j = b * 32; j < j1; j++)
                amax = fabsf(w[r * k + j]) > amax ? fabsf(w[r * k + j]) : amax;
            uint16_t want = hw_have() ? hw_f2h(amax / 7.0f) : krn_f32_to_f16(amax / 7.0f);
            float sf = krn_f16_to_f32(want);
            int good = s[r * nbk + b] == want;
            for (size_t j = b * 32; j < j1; j++) {
                float q = sf > 0 ? rintf(w[r * k + j] / sf) : 0.0f;
                good &= c[r * k + j] == (int8_t)(q > 7 ? 7 : q < -7 ? -7 : q);
            }
            if (!good && shown++ < 5)
                printf("# row %zu block %zu: scale 0x%04x, want 0x%04x\n", r, b, s[r * nbk + b],
                       want);
            ok &= good;
        }
    TAP_OK(ok, "krn_q4_quantize: fp16 scale = f16(absmax / 7), codes from the rounded scale "
               "(magnitudes 1e-9 .. 4e5, a zero row)");
    w[3] = 7.0f * 65520.0f; /* absmax / 7 rounds to fp16 Inf */
    krn_q4 *h = NULL;
    TAP_OK(krn_q4_quantize(w, m, k, c, s) == KRN_ERANGE &&
               krn_q4_create(w, m, k, &h) == KRN_ERANGE && !h,
           "a block scale beyond fp16 (|w| = 7 x 65520) -> KRN_ERANGE, no object");
    free(w);
    free(c);
    free(s);
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
             krn_qact_create(4, k, &a) | krn_pool_create(2, &pool) | krn_qact_quantize(a, xf, n, k);
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
    /* Q4: half a step of the fp16-rounded scale, which is at most 2^-11 above absmax / 7 */
    double b4 = 0.5 / 7 * (1 + 0x1p-11);
    TAP_OK(e8 <= 0.5 / 127 + 1e-6 && e4 <= b4 + 1e-6,
           "dequantized rows within half a step: Q8 %.4g (<= %.4g), Q4 %.4g (<= %.4g of absmax)",
           e8, 0.5 / 127, e4, b4);
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
        float s8[3] = {0.5f, 0.25f, 2.0f}, rw[40];
        /* fp16 scales 1, 2, 3, 2^-24 (subnormal), 65504, 1365/4096 and their fp32 values */
        uint16_t s4[3 * 2] = {0x3c00, 0x4000, 0x4200, 0x0001, 0x7bff, 0x3555};
        const float v4[3 * 2] = {1, 2, 3, 0x1p-24f, 65504, 1365.0f / 4096};
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
                ok &= rw[j] == (float)c4[r * 40 + j] * v4[r * 2 + j / 32];
        }
        krn_q4 *bad4 = NULL;
        const uint16_t bad[4] = {0x7c00, 0x7e00, 0xbc00, 0xfc00}; /* Inf, NaN, -1, -Inf */
        for (int i = 0; i < 4; i++) {
            uint16_t save = s4[4];
            s4[4] = bad[i];
            ok &= krn_q4_create_codes(c4, s4, 3, 40, &bad4) == KRN_EINVAL && !bad4;
            s4[4] = save;
        }
        s4[4] = 0x8000; /* -0 is a zero scale */
        ok &= krn_q4_create_codes(c4, s4, 3, 40, &bad4) == KRN_OK;
        krn_q4_free(bad4);
        bad4 = NULL;
        c4[7] = 8;
        ok &= krn_q4_create_codes(c4, s4, 3, 40, &bad4) == KRN_EINVAL && !bad4;
        TAP_OK(ok,
               "Q8/Q4 from file codes: rows dequantize to code * scale exactly (Q4 fp16 "
               "scales incl. subnormal and 65504); Q4 code 8, NaN/Inf/negative scales rejected");
        krn_q8_free(f8);
        krn_q4_free(f4);
    }
    size_t badrow = m;
    TAP_OK(krn_q8_gemm_rows(h8, &badrow, 1, a, yr, 1, pool) == KRN_EINVAL,
           "row >= M -> KRN_EINVAL");
    wf[3] = NAN;
    krn_q8 *hbad = NULL;
    TAP_OK(krn_q8_create(wf, m, k, &hbad) == KRN_ENONFINITE && !hbad,
           "NaN weight -> KRN_ENONFINITE");
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
    test_q4_scale_extremes();
    test_half();
    test_q4_quantize();
    test_public();
    return tap_done();
}
