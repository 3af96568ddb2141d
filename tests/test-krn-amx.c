/*
 * tests/test-krn-amx.c — the AMX-INT8 tile path of the ternary GEMM, bit for bit against _ref.
 * Runs only where cpuid reports AMX-TILE + AMX-INT8 and Linux grants the tile permission
 * (Sapphire Rapids and later); elsewhere every check is a SKIP with the reason.
 */
#include "tests/tap.h"
#include "tests/krn_test.h"

int main(void)
{
    const krn_ops *ops = krn_ops_variant(KRN_VARIANT_AMX);
    if (!ops) {
        int flag = 0;
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[4096];
        while (f && !flag && fgets(line, sizeof(line), f))
            flag = !strncmp(line, "flags", 5) && strstr(line, " amx_int8");
        if (f)
            fclose(f);
        TAP_SKIP("AMX-INT8 not available: %s",
                 flag ? "the CPU has amx_int8 but Linux refused the tile-data permission "
                        "(arch_prctl ARCH_REQ_XCOMP_PERM) or AVX-512 VNNI is missing"
                      : "this CPU does not report amx_int8 in /proc/cpuinfo (needs Sapphire Rapids "
                        "or later; the test runs on the 16-core GPU host)");
        return tap_done();
    }
    static const size_t M[] = {1, 15, 17, 33, 63, 65, 127, 4097, 1024};
    static const size_t K[] = {1, 63, 65, 127, 4095, 4097, 17, 65, 1024};
    static const size_t N[] = {16, 17, 31, 32, 33, 47, 64, 128};
    for (size_t s = 0; s < sizeof(M) / sizeof(M[0]); s++) {
        size_t m = M[s], k = K[s], n = N[s % 8];
        if (m * k * n > (size_t)1 << 27)
            n = 16;
        krn_test_w w = krn_test_w_make(KRN_FMT_I2, m, k, KRN_W_RANDOM, 1);
        krn_test_x x = krn_test_x_make(n, k, KRN_X_RANDOM, 3);
        char what[96];
        snprintf(what, sizeof(what), "amx i2 %zux%zu n=%zu", m, k, n);
        int ok = krn_test_mat(ops->i2_gemm, krn_i2_gemm_ref, &w.v, &x.v, what);
        TAP_OK(ok, "%s == ref (bit for bit)", what);
        krn_test_w_free(&w);
        krn_test_x_free(&x);
    }
    const int wm[] = {KRN_W_ALL_NEG, KRN_W_ALL_POS, KRN_W_ALL_ZERO};
    int ok = 1;
    for (int a = 0; a < 3; a++)
        for (int b = KRN_X_MAX; b <= KRN_X_MIN; b++) {
            krn_test_w w = krn_test_w_make(KRN_FMT_I2, 40, 4097, wm[a], 0);
            krn_test_x x = krn_test_x_make(33, 4097, b, 1);
            ok &= krn_test_mat(ops->i2_gemm, krn_i2_gemm_ref, &w.v, &x.v, "amx extreme");
            krn_test_w_free(&w);
            krn_test_x_free(&x);
        }
    TAP_OK(ok, "amx: all -1/+1/0 weights x q=+127/-128, K=4097, n=33 == ref");
    return tap_done();
}
