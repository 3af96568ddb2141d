/*
 * tests/test-krn-fops.c — float ops of every variant against _ref within KRN_FOPS_RTOL
 * (rmsnorm, softmax, silu*mul, rope) or exactly (add), on unaligned buffers and awkward sizes,
 * plus the documented NaN and large-input behaviour.
 */
#include "tests/tap.h"
#include "tests/krn_test.h"

#include "kernels/fops.h"

/* |got - want| <= KRN_FOPS_RTOL * |want| + FOPS_ATOL; FOPS_ATOL covers results that underflow. */
#define FOPS_ATOL 1e-30f
/* _ref's rstd against 1/sqrt in double: two float roundings (the mean, the sqrt and divide). */
#define RSTD_RTOL 4e-7f
/* RoPE tables against double: the float32 angle p * inv_freq carries up to ~|angle| * 2^-23 of
 * error (the float formula is the definition; transformers computes it so), plus cos/sin ulps. */
#define ROPE_TAB_ATOL(angle) (3e-7 * (1.0 + fabs(angle)))

static int close_enough(const float *got, const float *want, size_t n, float rtol, const char *w)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float a = krn_ldf(got, i), b = krn_ldf(want, i);
        if (isnan(a) && isnan(b))
            continue;
        if (!(fabsf(a - b) <= rtol * fabsf(b) + (rtol > 0 ? FOPS_ATOL : 0))) {
            if (bad < 5)
                printf("# %s: [%zu] got %.9g want %.9g\n", w, i, (double)a, (double)b);
            bad++;
        }
    }
    return bad == 0;
}

static float *ufl(krn_buf *b, size_t n, float scale)
{
    *b = krn_buf_make(n * sizeof(float), 4 * 1 + 0); /* float-aligned but not vector-aligned */
    float *p = b->p;
    for (size_t i = 0; i < n; i++)
        p[i] = krn_randf() * scale;
    return p;
}

int main(void)
{
    static const size_t D[] = {1, 3, 15, 17, 63, 65, 127, 1024, 4097};
    for (int v = 1; v < KRN_VARIANT_COUNT; v++) {
        const krn_ops *ops = krn_ops_variant((krn_variant)v);
        if (!krn_test_variant_here(v) || v == KRN_VARIANT_AMX) /* AMX has no float ops */
            continue;
        if (!ops) {
            TAP_SKIP("float ops %s: not built or not supported here", krn_variant_name(v));
            continue;
        }
        const char *vn = krn_variant_name(v);
        for (size_t s = 0; s < sizeof(D) / sizeof(D[0]); s++) {
            size_t d = D[s], n = 3;
            krn_buf b1, b2, b3, b4, b5;
            float *x = ufl(&b1, n * d, 4), *w = ufl(&b2, d, 2), *y1 = ufl(&b3, n * d, 0),
                  *y2 = ufl(&b4, n * d, 0), *u = ufl(&b5, n * d, 3);
            char what[64];
            float r1[3], r2[3], r0[3];
            krn_rmsnorm_ref(y1, r1, x, w, n, d, 1e-6f);
            ops->rmsnorm(y2, r2, x, w, n, d, 1e-6f);
            snprintf(what, sizeof(what), "rmsnorm %s d=%zu", vn, d);
            int ok = close_enough(y2, y1, n * d, KRN_FOPS_RTOL, what);
            ok &= close_enough(r2, r1, n, KRN_FOPS_RTOL, "rmsnorm rstd");
            for (size_t i = 0; i < n; i++) { /* rstd against the formula in double */
                double ss = 0.0;
                for (size_t j = 0; j < d; j++)
                    ss += (double)krn_ldf(x, i * d + j) * krn_ldf(x, i * d + j);
                r0[i] = (float)(1.0 / sqrt(ss / (double)d + 1e-6));
            }
            ok &= close_enough(r1, r0, n, RSTD_RTOL, "rmsnorm_ref rstd vs double");
            ops->rmsnorm(y2, NULL, x, w, n, d, 1e-6f); /* rstd is optional */
            ok &= close_enough(y2, y1, n * d, KRN_FOPS_RTOL, "rmsnorm without rstd");
            memcpy(y1, x, n * d * 4);
            memcpy(y2, x, n * d * 4);
            y1[0] = 80.0f; /* large logits: max-subtraction keeps exp finite */
            y2[0] = 80.0f;
            krn_softmax_ref(y1, n, d);
            ops->softmax(y2, n, d);
            snprintf(what, sizeof(what), "softmax %s d=%zu", vn, d);
            ok &= close_enough(y2, y1, n * d, KRN_FOPS_RTOL, what);
            for (size_t i = 0; i < n * d; i++)
                x[i] *= 5; /* silu over [-20, 20] */
            krn_silu_mul_ref(y1, x, u, n * d);
            ops->silu_mul(y2, x, u, n * d);
            snprintf(what, sizeof(what), "silu_mul %s n=%zu", vn, n * d);
            ok &= close_enough(y2, y1, n * d, KRN_FOPS_RTOL, what);
            krn_add_ref(y1, x, u, n * d);
            ops->add(y2, x, u, n * d);
            snprintf(what, sizeof(what), "add %s n=%zu", vn, n * d);
            ok &= close_enough(y2, y1, n * d, 0, what);
            if (d % 2 == 0 || d == 1) {
                size_t hd = d == 1 ? 2 : d, nh = 2, nt = 3, half = hd / 2;
                krn_buf c1, c2, c3, c4;
                float *r1 = ufl(&c1, nt * nh * hd, 1), *r2 = ufl(&c2, nt * nh * hd, 0);
                float *cs = ufl(&c3, nt * half, 1), *sn = ufl(&c4, nt * half, 1);
                memcpy(r2, r1, nt * nh * hd * 4);
                krn_rope_ref(r1, nt, nh, hd, cs, sn);
                ops->rope(r2, nt, nh, hd, cs, sn);
                snprintf(what, sizeof(what), "rope %s head_dim=%zu", vn, hd);
                ok &= close_enough(r2, r1, nt * nh * hd, KRN_FOPS_RTOL, what); /* see fops.h */
                free(c1.base);
                free(c2.base);
                free(c3.base);
                free(c4.base);
            }
            TAP_OK(ok, "float ops %s d=%zu: rmsnorm/softmax/silu_mul/rope within %g, add exact", vn,
                   d, (double)KRN_FOPS_RTOL);
            free(b1.base);
            free(b2.base);
            free(b3.base);
            free(b4.base);
            free(b5.base);
        }
        float row[20];
        for (int i = 0; i < 20; i++)
            row[i] = (float)i;
        row[7] = NAN;
        ops->softmax(row, 1, 20);
        int allnan = 1;
        for (int i = 0; i < 20; i++)
            allnan &= isnan(row[i]);
        TAP_OK(allnan, "softmax %s: a NaN in the row makes the row NaN (documented)", vn);
    }
    /* RoPE tables: cos/sin of p / theta^(2i/d) for every position and frequency */
    {
        enum { NP = 513, HD = 64 };
        static float cs[NP * HD / 2], sn[NP * HD / 2];
        krn_rope_tables(cs, sn, NP, HD, 10000.0f);
        int bad = 0;
        for (int p = 0; p < NP; p++)
            for (int i = 0; i < HD / 2; i++) {
                double a = p / pow(10000.0, 2.0 * i / HD);
                double ec = fabs(cs[p * HD / 2 + i] - cos(a)),
                       es = fabs(sn[p * HD / 2 + i] - sin(a));
                if (ec > ROPE_TAB_ATOL(a) || es > ROPE_TAB_ATOL(a)) {
                    if (bad++ < 5)
                        printf("# rope table p=%d i=%d: cos %.9g want %.9g, sin %.9g want %.9g\n",
                               p, i, (double)cs[p * HD / 2 + i], cos(a), (double)sn[p * HD / 2 + i],
                               sin(a));
                }
            }
        TAP_OK(bad == 0 && cs[0] == 1.0f && sn[0] == 0.0f,
               "krn_rope_tables: %d positions x %d frequencies match cos/sin in double", NP,
               HD / 2);
    }
    /* public entry points route to the chosen variant */
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {1, 1, 1, 1, 1}, y[5];
    krn_add(y, a, b, 5);
    TAP_OK(y[0] == 2 && y[4] == 6, "krn_add through the dispatch table");
    return tap_done();
}
