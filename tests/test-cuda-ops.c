/*
 * tests/test-cuda-ops.c — every GPU op of kernels/cuda/kcuda.h against its CPU twin in
 * train/ops.c, forward and backward, on random inputs of awkward shapes (1, 15, 17, ...).
 * Error = ||gpu - cpu|| / ||cpu|| per output tensor; the tolerances are named below. Backward
 * outputs start from random values (not zeros), so the "accumulate" contract is checked too.
 * Without a GPU every check is a TAP SKIP with the reason.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kcuda.h"
#include "tests/tap.h"
#include "train/ops.h"

#define TOL_EXACT 1e-6 /* quantizers: same float operations (d may differ by an ulp) */
#define TOL_F32 2e-5   /* row ops and fp32 cuBLAS products: summation order only */
#define TOL_BF16 1e-2  /* products in bf16 with fp32 accumulation */
#define TOL_FLASH 1e-2 /* flash attention: bf16 operands, fp32 softmax and accumulation */
#define TOL_LSE 1e-4   /* its log-sum-exp against fp64 on the same bf16-rounded q and k */
#define TOL_INT8 2e-6  /* INT8 forward: exact integer sums, then fp32 rounding of the scales */
#define TOL_NORMQ                                                                                  \
    1e-3 /* RMSNorm + INT8 codes: a code may flip where the norm's sum order moves
                          a value across a rounding boundary (one flip ~ 1e-4 here) */

static struct krn_cuda *K;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *hrand(size_t n, float sc)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * sc;
    return p;
}

static float *dup(const float *h, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    memcpy(p, h, n * sizeof(float));
    return p;
}

static void *up(const void *h, size_t bytes)
{
    void *d = krn_cuda_alloc(K, bytes);
    if (d)
        krn_cuda_h2d(K, d, h, bytes);
    return d;
}

/* Download d[n] and compare with ref; prints the first mismatches on failure. With base
 * (the values an accumulating backward started from), the increments d - base and ref - base
 * are compared, so the error is not diluted by the starting values. */
static double cmp_base(const char *what, const float *d, const float *ref, const float *base,
                       size_t n, double tol)
{
    float *g = malloc((n ? n : 1) * sizeof(float));
    krn_cuda_d2h(K, g, d, n * sizeof(float));
    int st = krn_cuda_sync(K);
    double num = 0, den = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)g[i] - ref[i], r = base ? (double)ref[i] - base[i] : ref[i];
        num += e * e;
        den += r * r;
        if (!isfinite(g[i]))
            bad = 1;
    }
    double rel = sqrt(num) / (sqrt(den) > 0 ? sqrt(den) : 1.0);
    int ok = !st && !bad && rel <= tol;
    TAP_OK(ok, "%s: rel err %.2e <= %.0e%s%s", what, rel, tol, st ? " cuda: " : "",
           st ? krn_cuda_errmsg(K) : "");
    if (!ok)
        for (size_t i = 0, shown = 0; i < n && shown < 5; i++)
            if (fabs((double)g[i] - ref[i]) > tol * (fabs(ref[i]) + 1e-3)) {
                TAP_DIAG("  [%zu] gpu %.7g cpu %.7g", i, (double)g[i], (double)ref[i]);
                shown++;
            }
    free(g);
    return rel;
}

static double cmp(const char *what, const float *d, const float *ref, size_t n, double tol)
{
    return cmp_base(what, d, ref, NULL, n, tol);
}

static void t_quant(int N, int C)
{
    size_t n = (size_t)N * C;
    float *x = hrand(n, 3.0f), *r = malloc(n * sizeof(float)), *d = up(x, n * 4);
    float *o = krn_cuda_alloc(K, n * 4);
    trn_wquant(r, x, n);
    krn_cuda_wquant(K, o, d, n);
    cmp("wquant", o, r, n, TOL_EXACT);
    trn_aquant(r, x, N, C);
    krn_cuda_aquant(K, o, d, N, C);
    cmp("aquant", o, r, n, TOL_EXACT);
    free(x), free(r), krn_cuda_dfree(K, d), krn_cuda_dfree(K, o);
}

static void t_embed(int N, int C, int V)
{
    int32_t *tok = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++)
        tok[i] = (int32_t)((unsigned)(frand() * 1e6f + 1e6f) % V);
    tok[N - 1] = tok[0]; /* a repeated token: the backward must add */
    float *w = hrand((size_t)V * C, 1), *ro = malloc((size_t)N * C * 4),
          *dout = hrand((size_t)N * C, 1);
    float *dw = hrand((size_t)V * C, 1), *dwr = dup(dw, (size_t)V * C);
    int32_t *dt = up(tok, N * 4);
    float *dwd = up(w, (size_t)V * C * 4), *od = krn_cuda_alloc(K, (size_t)N * C * 4);
    float *doutd = up(dout, (size_t)N * C * 4), *dwdd = up(dw, (size_t)V * C * 4);
    trn_embed_forward(ro, tok, w, N, C);
    krn_cuda_embed_forward(K, od, dt, dwd, N, C);
    cmp("embed forward", od, ro, (size_t)N * C, TOL_EXACT);
    trn_embed_backward(dwr, dout, tok, N, C);
    krn_cuda_embed_backward(K, dwdd, doutd, dt, N, C);
    cmp("embed backward", dwdd, dwr, (size_t)V * C, TOL_F32);
    free(tok), free(w), free(ro), free(dout), free(dw), free(dwr);
    krn_cuda_dfree(K, dt), krn_cuda_dfree(K, dwd), krn_cuda_dfree(K, od);
    krn_cuda_dfree(K, doutd), krn_cuda_dfree(K, dwdd);
}

static void t_linear(int N, int C, int OC, int bf16)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC;
    double tol = bf16 ? TOL_BF16 : TOL_F32;
    char nm[96];
    krn_cuda_set_bf16(K, bf16);
    float *x = hrand(nx, 1), *w = hrand(nw, 1), *y = malloc(ny * 4), *dy = hrand(ny, 1);
    float *dx = hrand(nx, 1), *dw = hrand(nw, 1), *dxr = dup(dx, nx), *dwr = dup(dw, nw);
    float *xd = up(x, nx * 4), *wd = up(w, nw * 4), *yd = krn_cuda_alloc(K, ny * 4);
    float *dyd = up(dy, ny * 4), *dxd = up(dx, nx * 4), *dwd = up(dw, nw * 4);
    trn_linear_forward(y, x, w, N, C, OC);
    krn_cuda_linear_forward(K, yd, xd, wd, N, C, OC);
    snprintf(nm, sizeof(nm), "linear %dx%d->%d forward (%s)", N, C, OC, bf16 ? "bf16" : "fp32");
    cmp(nm, yd, y, ny, tol);
    trn_linear_backward(dxr, dwr, dy, x, w, N, C, OC);
    krn_cuda_linear_backward(K, dxd, dwd, dyd, xd, wd, N, C, OC);
    snprintf(nm, sizeof(nm), "linear %dx%d->%d dX (%s)", N, C, OC, bf16 ? "bf16" : "fp32");
    cmp(nm, dxd, dxr, nx, tol);
    snprintf(nm, sizeof(nm), "linear %dx%d->%d dW (%s)", N, C, OC, bf16 ? "bf16" : "fp32");
    cmp(nm, dwd, dwr, nw, tol);
    krn_cuda_set_bf16(K, 0);
    free(x), free(w), free(y), free(dy), free(dx), free(dw), free(dxr), free(dwr);
    krn_cuda_dfree(K, xd), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, yd);
    krn_cuda_dfree(K, dyd), krn_cuda_dfree(K, dxd), krn_cuda_dfree(K, dwd);
}

/* Host bf16 of a finite float, rounded to nearest even (what __float2bfloat16_rn does). */
static uint16_t bf16_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* A bf16 output (device, n) against an fp32 device output of the same op rounded on the host,
 * bit for bit (the same float operations, then __float2bfloat16_rn). */
static void same_rounded(const char *what, const uint16_t *bd, const float *fd, size_t n)
{
    float *f = malloc(n * 4 + 4);
    uint16_t *b = malloc(n * 2 + 2);
    krn_cuda_d2h(K, f, fd, n * 4);
    krn_cuda_d2h(K, b, bd, n * 2);
    size_t bad = krn_cuda_sync(K) != 0;
    for (size_t i = 0; !bad && i < n; i++)
        bad += b[i] != bf16_of(f[i]);
    TAP_OK(bad == 0, "%s: the fp32 output rounded, bit for bit (%zu of %zu differ)", what, bad, n);
    free(f), free(b);
}

/* The float value of a bf16 bit pattern. */
static float bf16_val(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* krn_cuda_to_bf16 against the host rounding, bit for bit (n % 4 == 0: the vector kernel). */
static void t_to_bf16(size_t n)
{
    float *x = hrand(n, 1e3f), *d = up(x, n * 4);
    uint16_t *o = malloc(n * 2), *od = krn_cuda_alloc(K, n * 2);
    size_t bad = 0;
    krn_cuda_to_bf16(K, od, d, n);
    krn_cuda_d2h(K, o, od, n * 2);
    for (size_t i = 0; i < n; i++)
        bad += o[i] != bf16_of(x[i]);
    TAP_OK(bad == 0 && krn_cuda_sync(K) == 0, "bf16 copy of %zu floats: %zu differ from the host's",
           n, bad);
    free(x), free(o), krn_cuda_dfree(K, d), krn_cuda_dfree(K, od);
}

/* The narrow codes against the CPU quantizer's output ref[n] (codes times scales): the codes
 * equal the CPU's (recovered as ref / scale), the scales (one, or one per `per` elements) equal
 * the CPU's within TOL_EXACT (the absmean's double sum may differ by an ulp), and the bf16 copy
 * is the code times the GPU's scale rounded to bf16. */
static void check_codes(const char *what, const int8_t *c8, const uint16_t *cb, const float *sc,
                        const float *rsc, int per, const float *ref, size_t n)
{
    size_t bad = 0, badb = 0, bads = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        size_t r = per ? i / (size_t)per : 0;
        float code = rintf(ref[i] / rsc[r]);
        if ((float)c8[i] != code && bad++ == 0)
            first = i;
        /* by value: the kernels' zero codes may be -0 (rintf of a small negative) */
        badb += bf16_val(cb[i]) != bf16_val(bf16_of((float)c8[i] * sc[r]));
        if ((!per || i % (size_t)per == 0) && fabs((double)sc[r] - rsc[r]) > TOL_EXACT * rsc[r])
            bads++;
    }
    TAP_OK(bad == 0 && badb == 0 && bads == 0,
           "%s: codes equal the CPU's in %zu/%zu, bf16 values in %zu/%zu, %zu scales off", what,
           n - bad, n, n - badb, n, bads);
    if (first < n)
        TAP_DIAG("  [%zu] code %d, cpu %.9g / scale %.9g", first, c8[first], (double)ref[first],
                 (double)rsc[per ? first / (size_t)per : 0]);
}

static float *nans(size_t n);

/* The bf16 mode's BitLinear: narrow quantizers, the INT8 forward (against the exact integer sums
 * and against the CPU's fp32 BitLinear) and the bf16 backward. off: byte offset of the int8 codes
 * (unaligned pointers go to the fallback kernel or an aligned-enough cublasLt kernel). */
static void t_qlinear(int N, int C, int OC, int with_res, int off)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC;
    char nm[128];
    float *x = hrand(nx, 2), *w = hrand(nw, 1), *xq = malloc(nx * 4), *wq = malloc(nw * 4);
    float *res = hrand(ny, 1), *y = malloc(ny * 4), *ye = malloc(ny * 4), *dy = hrand(ny, 1);
    float *dx = hrand(nx, 1), *dw = hrand(nw, 1), *dxr = dup(dx, nx), *dwr = dup(dw, nw);
    float *sx = malloc((size_t)N * 4), sw = 0;
    int8_t *x8 = malloc(nx), *w8 = malloc(nw);
    uint16_t *xb = malloc(nx * 2), *wb = malloc(nw * 2);
    float rsw = trn_wquant(wq, w, nw), *rsx = malloc((size_t)N * 4);
    trn_aquant(xq, x, N, C);
    for (int n = 0; n < N; n++) { /* the CPU's row scale g / 127 */
        float g = 0.0f;
        for (int k = 0; k < C; k++)
            g = fmaxf(g, fabsf(x[(size_t)n * C + k]));
        rsx[n] = g / 127.0f;
    }
    float *xd = up(x, nx * 4), *wd = up(w, nw * 4), *resd = up(res, ny * 4);
    float *yd = krn_cuda_alloc(K, ny * 4), *sxd = krn_cuda_alloc(K, (size_t)N * 4);
    float *swd = krn_cuda_alloc(K, 4), *dyd = up(dy, ny * 4), *dxd = up(dx, nx * 4);
    float *dwd = up(dw, nw * 4);
    char *x8d = krn_cuda_alloc(K, nx + 16), *w8d = krn_cuda_alloc(K, nw + 16);
    uint16_t *xbd = krn_cuda_alloc(K, nx * 2), *wbd = krn_cuda_alloc(K, nw * 2);
    uint16_t *scr = krn_cuda_alloc(K, ny * 2);
    krn_cuda_wquant_narrow(K, (int8_t *)w8d + off, wbd, swd, wd, nw);
    krn_cuda_aquant_narrow(K, (int8_t *)x8d + off, xbd, sxd, xd, N, C);
    krn_cuda_d2h(K, x8, x8d + off, nx);
    krn_cuda_d2h(K, w8, w8d + off, nw);
    krn_cuda_d2h(K, xb, xbd, nx * 2);
    krn_cuda_d2h(K, wb, wbd, nw * 2);
    krn_cuda_d2h(K, sx, sxd, (size_t)N * 4);
    krn_cuda_d2h(K, &sw, swd, 4);
    snprintf(nm, sizeof(nm), "aquant narrow %dx%d", N, C);
    check_codes(nm, x8, xb, sx, rsx, C, xq, nx);
    snprintf(nm, sizeof(nm), "wquant narrow %dx%d", OC, C);
    check_codes(nm, w8, wb, &sw, &rsw, 0, wq, nw);

    krn_cuda_qlinear_forward(K, yd, with_res ? resd : NULL, (int8_t *)x8d + off, sxd,
                             (int8_t *)w8d + off, swd, N, C, OC);
    for (int n = 0; n < N; n++) /* the exact integer sums, scaled in double */
        for (int o = 0; o < OC; o++) {
            long long acc = 0;
            for (int k = 0; k < C; k++)
                acc += (long long)x8[(size_t)n * C + k] * w8[(size_t)o * C + k];
            ye[(size_t)n * OC + o] =
                (float)((with_res ? res[(size_t)n * OC + o] : 0.0) + (double)acc * sx[n] * sw);
        }
    snprintf(nm, sizeof(nm), "int8 linear %dx%d->%d forward%s vs exact integer sums", N, C, OC,
             with_res ? " + residual" : "");
    cmp(nm, yd, ye, ny, TOL_INT8);
    trn_linear_forward(y, xq, wq, N, C, OC);
    if (with_res)
        for (size_t i = 0; i < ny; i++)
            y[i] += res[i];
    snprintf(nm, sizeof(nm), "int8 linear %dx%d->%d forward%s vs CPU BitLinear", N, C, OC,
             with_res ? " + residual" : "");
    cmp(nm, yd, y, ny, TOL_INT8);

    krn_cuda_blinear_forward(K, yd, with_res ? resd : NULL, xbd, wbd, N, C, OC);
    snprintf(nm, sizeof(nm), "bf16 linear %dx%d->%d forward%s vs CPU BitLinear", N, C, OC,
             with_res ? " + residual" : "");
    cmp(nm, yd, y, ny, TOL_BF16);
    if (!with_res) { /* written in bf16: the fp32 output just made, rounded (one ulp: cuBLAS
                      * may pick another kernel for a bf16 output) */
        uint16_t *ybd = krn_cuda_alloc(K, ny * 2 + 16), *yb = malloc(ny * 2 + 2);
        float *yf = malloc(ny * 4 + 4);
        krn_cuda_blinear_forward_bf16(K, ybd, xbd, wbd, N, C, OC);
        krn_cuda_d2h(K, yb, ybd, ny * 2);
        krn_cuda_d2h(K, yf, yd, ny * 4);
        size_t far = krn_cuda_sync(K) != 0, diff = 0;
        for (size_t i = 0; !far && i < ny; i++) {
            int d = (int)yb[i] - (int)bf16_of(yf[i]);
            diff += d != 0;
            far += d > 1 || d < -1;
        }
        TAP_OK(far == 0,
               "bf16 linear %dx%d->%d forward written in bf16: the fp32 one rounded "
               "(%zu of %zu an ulp off, none further)",
               N, C, OC, diff, ny);
        free(yb), free(yf), krn_cuda_dfree(K, ybd);
    }

    /* 0: dX and dW overwritten (the caller's zero-fills spared), over NaN-filled dW */
    float beta = with_res ? 0.0f : 1.0f;
    if (beta == 0.0f) {
        memset(dxr, 0, nx * 4);
        memset(dwr, 0, nw * 4);
        float *nn = nans(nw);
        krn_cuda_h2d(K, dwd, nn, nw * 4);
        free(nn);
    }
    trn_linear_backward(dxr, dwr, dy, xq, wq, N, C, OC);
    krn_cuda_qlinear_backward(K, dxd, beta, dwd, beta, dyd, xbd, wbd, scr, N, C, OC);
    snprintf(nm, sizeof(nm), "bf16 linear %dx%d->%d dX (beta %g) vs CPU BitLinear", N, C, OC,
             (double)beta);
    cmp(nm, dxd, dxr, nx, TOL_BF16);
    snprintf(nm, sizeof(nm), "bf16 linear %dx%d->%d dW (wbeta %g) vs CPU BitLinear", N, C, OC,
             (double)beta);
    cmp(nm, dwd, dwr, nw, TOL_BF16);
    if (beta == 0.0f) { /* dX written in bf16: the overwriting fp32 one just made, rounded (one
                         * ulp: cuBLAS may pick another kernel for a bf16 output) */
        uint16_t *xbo = krn_cuda_alloc(K, nx * 2 + 16), *xh = malloc(nx * 2 + 2);
        float *xf = malloc(nx * 4 + 4);
        krn_cuda_blinear_backward_b16(K, xbo, NULL, 1.0f, scr, xbd, wbd, N, C, OC); /* dY bf16 */
        krn_cuda_d2h(K, xh, xbo, nx * 2);
        krn_cuda_d2h(K, xf, dxd, nx * 4);
        size_t far = krn_cuda_sync(K) != 0, diff = 0;
        for (size_t i = 0; !far && i < nx; i++) {
            int d = (int)xh[i] - (int)bf16_of(xf[i]);
            diff += d != 0;
            far += d > 1 || d < -1;
        }
        TAP_OK(far == 0,
               "bf16 linear %dx%d->%d dX written in bf16: the fp32 one rounded (%zu of %zu an "
               "ulp off, none further)",
               N, C, OC, diff, nx);
        free(xh), free(xf), krn_cuda_dfree(K, xbo);
    }
    free(x), free(w), free(xq), free(wq), free(res), free(y), free(ye), free(dy), free(dx);
    free(dw), free(dxr), free(dwr), free(sx), free(rsx), free(x8), free(w8), free(xb), free(wb);
    void *dev[] = {xd, wd, resd, yd, sxd, swd, dyd, dxd, dwd, x8d, w8d, xbd, wbd, scr};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        krn_cuda_dfree(K, dev[i]);
}

/* The fused RMSNorm + narrow activation quantizer against the CPU's norm then quantizer. */
static void t_rms_aquant(int N, int C)
{
    size_t n = (size_t)N * C;
    char nm[96];
    float *x = hrand(n, 2), *w = hrand(C, 1), *y = malloc(n * 4), *yq = malloc(n * 4);
    float *rs = malloc(N * 4), *sx = malloc(N * 4), *got = malloc(n * 4);
    int8_t *x8 = malloc(n);
    uint16_t *xb = malloc(n * 2);
    float *xd = up(x, n * 4), *wd = up(w, C * 4), *rsd = krn_cuda_alloc(K, N * 4);
    float *sxd = krn_cuda_alloc(K, N * 4);
    int8_t *x8d = krn_cuda_alloc(K, n);
    uint16_t *xbd = krn_cuda_alloc(K, n * 2);
    trn_rmsnorm_forward(y, rs, x, w, N, C, 1e-6f);
    trn_aquant(yq, y, N, C);
    int rc = krn_cuda_rmsnorm_aquant(K, x8d, xbd, sxd, rsd, xd, wd, N, C, 1e-6f);
    krn_cuda_d2h(K, x8, x8d, n);
    krn_cuda_d2h(K, xb, xbd, n * 2);
    krn_cuda_d2h(K, sx, sxd, N * 4);
    size_t badb = 0;
    for (size_t i = 0; i < n; i++) {
        got[i] = (float)x8[i] * sx[i / C];
        badb += bf16_val(xb[i]) != bf16_val(bf16_of(got[i])); /* by value: -0 == 0 */
    }
    TAP_OK(rc == 0 && badb == 0, "rmsnorm+aquant %dx%d: rc %d, bf16 values differ in %zu", N, C, rc,
           badb);
    float *gd = up(got, n * 4);
    snprintf(nm, sizeof(nm), "rmsnorm+aquant %dx%d codes x scales vs CPU norm then aquant", N, C);
    cmp(nm, gd, yq, n, TOL_NORMQ);
    snprintf(nm, sizeof(nm), "rmsnorm+aquant %dx%d rstd", N, C);
    cmp(nm, rsd, rs, N, TOL_F32);
    free(x), free(w), free(y), free(yq), free(rs), free(sx), free(got), free(x8), free(xb);
    krn_cuda_dfree(K, xd), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, rsd), krn_cuda_dfree(K, sxd);
    krn_cuda_dfree(K, x8d), krn_cuda_dfree(K, xbd), krn_cuda_dfree(K, gd);
}

/* A device copy of the bytes of h at shift bytes past an allocation's start; free with
 * dfree_shift. */
static void *up_shift(const void *h, size_t bytes, size_t shift)
{
    char *d = krn_cuda_alloc(K, bytes + shift + 16);
    if (!d)
        return NULL;
    krn_cuda_h2d(K, d + shift, h, bytes);
    return d + shift;
}

static void dfree_shift(void *d, size_t shift)
{
    krn_cuda_dfree(K, d ? (char *)d - shift : NULL);
}

/* A device copy of h[n] at an offset of off floats (off 1: not 16-byte aligned, the scalar
 * paths); free with dfree_off. */
static float *up_off(const float *h, size_t n, int off)
{
    return up_shift(h, n * 4, (size_t)off * 4);
}

static void dfree_off(float *d, int off)
{
    dfree_shift(d, (size_t)off * 4);
}

static float *nans(size_t n)
{
    float *p = malloc((n ? n : 1) * 4);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

/* The RMSNorm backward's weight gradient as the reference for long sums: the CPU's float terms
 * dy x rstd added in double (a float sum over 65536 rows is itself off by ~1e-5). */
static void dw_ref(float *dw, const float *dy, const float *x, const float *rs, int N, int C)
{
    double *s = calloc(C ? C : 1, sizeof(double));
    for (int r = 0; r < N; r++)
        for (int j = 0; j < C; j++)
            s[j] += dy[(size_t)r * C + j] * x[(size_t)r * C + j] * rs[r];
    for (int j = 0; j < C; j++)
        dw[j] = (float)(dw[j] + s[j]);
    free(s);
}

/* Forward; backward accumulating (acc 1) over random dX and dW; backward overwriting (acc 0)
 * a NaN-filled dX without a weight gradient. off 1: dX unaligned (the scalar path). */
static void t_rmsnorm(int N, int C, int off)
{
    size_t n = (size_t)N * C;
    char nm[96], n2[128];
    float *x = hrand(n, 2), *w = hrand(C, 1), *y = malloc(n * 4), *rs = malloc(N * 4);
    float *dy = hrand(n, 1), *dx = hrand(n, 1), *dw = hrand(C, 1), *dxr = dup(dx, n);
    float *dwr = dup(dw, C), *dx0 = calloc(n ? n : 1, 4), *nan = nans(n);
    float *xd = up(x, n * 4), *wd = up(w, C * 4), *yd = krn_cuda_alloc(K, n * 4);
    float *rsd = krn_cuda_alloc(K, N * 4), *dyd = up(dy, n * 4), *dxd = up_off(dx, n, off);
    float *dwd = up(dw, C * 4);
    snprintf(nm, sizeof(nm), "rmsnorm %dx%d%s", N, C, off ? " unaligned dX" : "");
    trn_rmsnorm_forward(y, rs, x, w, N, C, 1e-6f);
    krn_cuda_rmsnorm_forward(K, yd, rsd, xd, wd, N, C, 1e-6f);
    snprintf(n2, sizeof(n2), "%s forward", nm);
    cmp(n2, yd, y, n, TOL_F32);
    snprintf(n2, sizeof(n2), "%s rstd", nm);
    cmp(n2, rsd, rs, N, TOL_F32);
    uint16_t *yb = krn_cuda_alloc(K, n * 2 + 16);
    krn_cuda_rmsnorm_forward_bf16(K, yb, rsd, xd, wd, N, C, 1e-6f);
    snprintf(n2, sizeof(n2), "%s forward in bf16", nm);
    same_rounded(n2, yb, yd, n);
    krn_cuda_dfree(K, yb);
    krn_cuda_h2d(K, rsd, rs, N * 4); /* both backwards on the same rstd */
    trn_rmsnorm_backward(dxr, NULL, dy, x, w, rs, N, C);
    dw_ref(dwr, dy, x, rs, N, C);
    krn_cuda_rmsnorm_backward(K, dxd, 1, dwd, dyd, xd, wd, rsd, N, C);
    snprintf(n2, sizeof(n2), "%s dX += (acc 1)", nm);
    cmp_base(n2, dxd, dxr, dx, n, TOL_F32);
    snprintf(n2, sizeof(n2), "%s dW += (fused)", nm);
    cmp_base(n2, dwd, dwr, dw, C, TOL_F32);
    trn_rmsnorm_backward(dx0, NULL, dy, x, w, rs, N, C);
    krn_cuda_h2d(K, dxd, nan, n * 4);
    krn_cuda_rmsnorm_backward(K, dxd, 0, NULL, dyd, xd, wd, rsd, N, C);
    snprintf(n2, sizeof(n2), "%s dX = (acc 0, over NaN, no dW)", nm);
    cmp(n2, dxd, dx0, n, TOL_F32);
    if (C <= KRN_CUDA_NORM_MAX) {
        /* the bf16 dX: the fp32 one just made, rounded; bit for bit where both ran the same
         * kernel, else (unaligned fp32 dX: the scalar kernel, whose threads split the row's
         * dot differently, so k may differ in its last bit) within one bf16 step of the value
         * plus 1e-6 of dX's rms (where the two terms of dX cancel) */
        float *f = malloc(n * 4 + 4);
        uint16_t *hb = malloc(n * 2 + 2), *db = krn_cuda_alloc(K, n * 2 + 16);
        krn_cuda_d2h(K, f, dxd, n * 4);
        int rc = krn_cuda_rmsnorm_backward_bf16(K, db, 0, 0, NULL, dyd, 0, xd, 0, wd, rsd, N, C);
        krn_cuda_d2h(K, hb, db, n * 2);
        size_t bad = krn_cuda_sync(K) != 0, diff = 0;
        double ms = 0.0;
        for (size_t i = 0; i < n; i++)
            ms += (double)f[i] * f[i];
        double rms = sqrt(ms / (double)(n ? n : 1));
        for (size_t i = 0; !bad && i < n; i++) {
            double a = bf16_val(hb[i]), r = bf16_val(bf16_of(f[i]));
            diff += a != r;
            bad += off ? fabs(a - r) > fabs(r) / 128.0 + 1e-6 * rms : a != r;
        }
        TAP_OK(rc == 0 && bad == 0, "%s dX in bf16 = the fp32 one rounded (%zu of %zu differ%s)",
               nm, diff, n, off ? ", each within a bf16 step" : "");
        /* the mirror: dX += as above (onto the acc-0 result) and its bf16 copy, bit for bit the
         * fp32 result rounded */
        float *r2 = malloc(n * 4 + 4), *f2 = malloc(n * 4 + 4);
        for (size_t i = 0; i < n; i++)
            r2[i] = f[i] + dx0[i];
        rc = krn_cuda_rmsnorm_backward_mirror(K, dxd, 1, db, NULL, dyd, 0, xd, wd, rsd, N, C);
        snprintf(n2, sizeof(n2), "%s dX += with a bf16 mirror", nm);
        cmp(n2, dxd, r2, n, TOL_F32);
        krn_cuda_d2h(K, f2, dxd, n * 4);
        krn_cuda_d2h(K, hb, db, n * 2);
        bad = krn_cuda_sync(K) != 0;
        for (size_t i = 0; !bad && i < n; i++)
            bad += hb[i] != bf16_of(f2[i]);
        TAP_OK(rc == 0 && bad == 0, "%s mirror = the fp32 dX rounded, bit for bit", nm);
        /* dout in bf16 (dout16): dX and its mirror = the fp32 entry's on dout's bf16 values
         * (widened on the host), bit for bit; dW too, except in the order of its atomic adds
         * (rows of 256 or fewer: warp groups add their partials with atomics) */
        uint16_t *y16 = malloc(n * 2 + 2);
        float *yw = malloc(n * 4 + 4);
        char *o[2];
        for (size_t i = 0; i < n; i++)
            yw[i] = bf16_val(y16[i] = bf16_of(dy[i]));
        uint16_t *y16d = up(y16, n * 2);
        float *ywd = up(yw, n * 4), *dwb = krn_cuda_alloc(K, (size_t)C * 4);
        for (int k = 0; k < 2; k++) {
            o[k] = malloc(n * 6 + (size_t)C * 4 + 8);
            krn_cuda_h2d(K, dxd, dx, n * 4);
            krn_cuda_zero(K, dwb, (size_t)C * 4);
            rc |= krn_cuda_rmsnorm_backward_mirror(K, dxd, 1, db, dwb, k ? (float *)y16d : ywd, k,
                                                   xd, wd, rsd, N, C);
            krn_cuda_d2h(K, o[k], dxd, n * 4);
            krn_cuda_d2h(K, o[k] + n * 4, db, n * 2);
            krn_cuda_d2h(K, o[k] + n * 6, dwb, (size_t)C * 4);
        }
        bad = krn_cuda_sync(K) != 0;
        double dwe = 0.0, dwn = 0.0;
        for (int j = 0; j < C; j++) {
            float a = ((float *)(o[0] + n * 6))[j], b = ((float *)(o[1] + n * 6))[j];
            dwe += ((double)a - b) * ((double)a - b);
            dwn += (double)a * a;
        }
        dwe = sqrt(dwe / (dwn > 0 ? dwn : 1.0));
        TAP_OK(rc == 0 && !bad && !memcmp(o[0], o[1], n * 6) &&
                   (C <= 256 ? dwe <= TOL_F32 : !memcmp(o[0] + n * 6, o[1] + n * 6, (size_t)C * 4)),
               "%s from a bf16 dout: dX, mirror = the fp32 entry's on its values, dW %s (rel %.1e)",
               nm, C <= 256 ? "to the atomics' order" : "bit for bit", dwe);
        for (int k = 0; k < 2; k++) { /* the bf16-output entry likewise */
            rc |= krn_cuda_rmsnorm_backward_bf16(K, db, 0, 0, NULL, k ? (float *)y16d : ywd, k, xd,
                                                 0, wd, rsd, N, C);
            krn_cuda_d2h(K, o[k], db, n * 2);
        }
        bad = krn_cuda_sync(K) != 0;
        TAP_OK(rc == 0 && !bad && !memcmp(o[0], o[1], n * 2),
               "%s bf16 dX from a bf16 dout = from its values in fp32", nm);
        /* and x in bf16 (inp16: q and k kept so before QK-norm) = its values in fp32 */
        for (size_t i = 0; i < n; i++)
            yw[i] = bf16_val(y16[i] = bf16_of(x[i]));
        krn_cuda_h2d(K, y16d, y16, n * 2);
        krn_cuda_h2d(K, ywd, yw, n * 4);
        for (int k = 0; k < 2; k++) {
            rc |= krn_cuda_rmsnorm_backward_bf16(K, db, 0, 0, NULL, dyd, 0, k ? (float *)y16d : ywd,
                                                 k, wd, rsd, N, C);
            krn_cuda_d2h(K, o[k], db, n * 2);
        }
        bad = krn_cuda_sync(K) != 0;
        TAP_OK(rc == 0 && !bad && !memcmp(o[0], o[1], n * 2),
               "%s bf16 dX from a bf16 x = from its values in fp32", nm);
        free(o[0]), free(o[1]), free(y16), free(yw);
        krn_cuda_dfree(K, y16d), krn_cuda_dfree(K, ywd), krn_cuda_dfree(K, dwb);
        free(r2), free(f2);
        free(f), free(hb);
        krn_cuda_dfree(K, db);
    }
    free(x), free(w), free(y), free(rs), free(dy), free(dx), free(dw), free(dxr), free(dwr);
    free(dx0), free(nan);
    krn_cuda_dfree(K, xd), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, yd), krn_cuda_dfree(K, rsd);
    krn_cuda_dfree(K, dyd), dfree_off(dxd, off), krn_cuda_dfree(K, dwd);
}

/* The fused SwiGLU + SubLN + quantizer against the CPU's SwiGLU, norm, then quantizer (a code
 * may flip by one where expf or the norm's sum order differ by an ulp: TOL_NORMQ on the values,
 * the codes that differ from the CPU's counted and shown) and against the GPU's own three steps
 * (the same float operations in the same order: nothing may differ). */
static void t_swiglu_norm_q(int N, int C)
{
    size_t n = (size_t)N * C;
    char nm[96], n2[256];
    float *g = hrand(n, 4), *u = hrand(n, 2), *w = hrand(C, 1), *h = malloc(n * 4);
    float *y = malloc(n * 4), *yq = malloc(n * 4), *rs = malloc(N * 4), *got = malloc(n * 4);
    float *sx = malloc(N * 4), *sx2 = malloc(N * 4), *rs1 = malloc(N * 4), *rs2 = malloc(N * 4);
    int8_t *x8 = malloc(n), *x82 = malloc(n);
    uint16_t *xb = malloc(n * 2), *xb2 = malloc(n * 2);
    float *gd = up(g, n * 4), *ud = up(u, n * 4), *wd = up(w, C * 4);
    float *hd = krn_cuda_alloc(K, n * 4), *rsd = krn_cuda_alloc(K, N * 4);
    float *sxd = krn_cuda_alloc(K, N * 4);
    int8_t *x8d = krn_cuda_alloc(K, n);
    uint16_t *xbd = krn_cuda_alloc(K, n * 2);
    snprintf(nm, sizeof(nm), "swiglu+rmsnorm+aquant %dx%d", N, C);
    trn_swiglu_forward(h, g, u, n);
    trn_rmsnorm_forward(y, rs, h, w, N, C, 1e-6f);
    trn_aquant(yq, y, N, C);
    /* the GPU's three steps first, then the fused pass over the same buffers */
    krn_cuda_swiglu_forward(K, hd, gd, ud, n);
    int rc2 = krn_cuda_rmsnorm_aquant(K, x8d, xbd, sxd, rsd, hd, wd, N, C, 1e-6f);
    krn_cuda_d2h(K, x82, x8d, n);
    krn_cuda_d2h(K, xb2, xbd, n * 2);
    krn_cuda_d2h(K, sx2, sxd, N * 4);
    krn_cuda_d2h(K, rs2, rsd, N * 4);
    int rc = krn_cuda_swiglu_rmsnorm_aquant(K, x8d, xbd, sxd, rsd, gd, ud, wd, N, C, 1e-6f);
    krn_cuda_d2h(K, x8, x8d, n);
    krn_cuda_d2h(K, xb, xbd, n * 2);
    krn_cuda_d2h(K, sx, sxd, N * 4);
    krn_cuda_d2h(K, rs1, rsd, N * 4);
    int st = krn_cuda_sync(K);
    int same = !memcmp(x8, x82, n) && !memcmp(xb, xb2, n * 2) && !memcmp(sx, sx2, N * 4) &&
               !memcmp(rs1, rs2, N * 4);
    TAP_OK(!st && rc == 0 && rc2 == 0 && same,
           "%s: codes, bf16 values, scales and rstd bit-identical to swiglu fwd then "
           "rmsnorm+aquant (rc %d %d, cuda %d)",
           nm, rc, rc2, st);
    size_t flips = 0; /* the CPU's codes: trn_aquant's formula on its normalised rows */
    for (int r = 0; r < N; r++) {
        const float *yr = y + (size_t)r * C;
        float mx = 0.0f;
        for (int j = 0; j < C; j++)
            mx = fmaxf(mx, fabsf(yr[j]));
        float sc = 127.0f / (mx + TRN_QEPS);
        for (int j = 0; j < C; j++) {
            float q = rintf(yr[j] * sc);
            q = q > 127.0f ? 127.0f : (q < -128.0f ? -128.0f : q);
            flips += (float)x8[(size_t)r * C + j] != q;
        }
    }
    for (size_t i = 0; i < n; i++)
        got[i] = (float)x8[i] * sx[i / C];
    float *gotd = up(got, n * 4);
    snprintf(n2, sizeof(n2),
             "%s codes x scales vs CPU swiglu, norm, aquant (%zu of %zu codes differ)", nm, flips,
             n);
    cmp(n2, gotd, yq, n, TOL_NORMQ);
    snprintf(n2, sizeof(n2), "%s rstd", nm);
    cmp(n2, rsd, rs, N, TOL_F32);
    free(g), free(u), free(w), free(h), free(y), free(yq), free(rs), free(got), free(sx);
    free(sx2), free(rs1), free(rs2), free(x8), free(x82), free(xb), free(xb2);
    krn_cuda_dfree(K, gd), krn_cuda_dfree(K, ud), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, hd);
    krn_cuda_dfree(K, rsd), krn_cuda_dfree(K, sxd), krn_cuda_dfree(K, x8d);
    krn_cuda_dfree(K, xbd), krn_cuda_dfree(K, gotd);
}

/* The fused SubLN backward chained into the SwiGLU backward against the CPU's RMSNorm backward
 * (into zeros) then SwiGLU backward (into zeros): dg, du start NaN (overwritten), dW random
 * (accumulated). off 1: unaligned g (the scalar path). */
static void t_swiglu_norm_bwd(int N, int C, int off)
{
    size_t n = (size_t)N * C;
    char nm[96], n2[128];
    float *g = hrand(n, 4), *u = hrand(n, 2), *w = hrand(C, 1), *h = malloc(n * 4);
    float *y = malloc(n * 4), *rs = malloc(N * 4), *dy = hrand(n, 1), *dw = hrand(C, 1);
    float *dh = calloc(n ? n : 1, 4), *dgr = calloc(n ? n : 1, 4), *dur = calloc(n ? n : 1, 4);
    float *dwr = dup(dw, C), *nan = nans(n);
    float *gd = up_off(g, n, off), *ud = up(u, n * 4), *wd = up(w, C * 4), *rsd;
    float *dyd = up(dy, n * 4), *dgd = up(nan, n * 4), *dud = up(nan, n * 4), *dwd = up(dw, C * 4);
    snprintf(nm, sizeof(nm), "swiglu+rmsnorm bwd %dx%d%s", N, C, off ? " unaligned" : "");
    trn_swiglu_forward(h, g, u, n);
    trn_rmsnorm_forward(y, rs, h, w, N, C, 1e-6f);
    rsd = up(rs, N * 4);
    trn_rmsnorm_backward(dh, NULL, dy, h, w, rs, N, C);
    dw_ref(dwr, dy, h, rs, N, C);
    trn_swiglu_backward(dgr, dur, dh, g, u, n);
    int rc = krn_cuda_swiglu_rmsnorm_backward(K, dgd, dud, dwd, dyd, gd, ud, wd, rsd, N, C);
    TAP_OK(rc == 0, "%s: rc %d", nm, rc);
    snprintf(n2, sizeof(n2), "%s dG = (over NaN)", nm);
    cmp(n2, dgd, dgr, n, TOL_F32);
    snprintf(n2, sizeof(n2), "%s dU = (over NaN)", nm);
    cmp(n2, dud, dur, n, TOL_F32);
    snprintf(n2, sizeof(n2), "%s dW +=", nm);
    cmp_base(n2, dwd, dwr, dw, C, TOL_F32);
    /* the bf16 variant: the fp32 outputs above, rounded, bit for bit */
    float *gf = malloc(n * 4 + 4), *uf = malloc(n * 4 + 4);
    uint16_t *gb = malloc(n * 2 + 2), *ub = malloc(n * 2 + 2);
    uint16_t *gbd = krn_cuda_alloc(K, n * 2 + 16), *ubd = krn_cuda_alloc(K, n * 2 + 16);
    krn_cuda_d2h(K, gf, dgd, n * 4);
    krn_cuda_d2h(K, uf, dud, n * 4);
    rc = krn_cuda_swiglu_rmsnorm_backward_bf16(K, gbd, ubd, 0, NULL, dyd, gd, ud, wd, rsd, N, C);
    krn_cuda_d2h(K, gb, gbd, n * 2);
    krn_cuda_d2h(K, ub, ubd, n * 2);
    size_t bad = 0;
    if (krn_cuda_sync(K) == 0)
        for (size_t i = 0; i < n; i++)
            bad += (gb[i] != bf16_of(gf[i])) + (ub[i] != bf16_of(uf[i]));
    else
        bad = 1;
    TAP_OK(rc == 0 && bad == 0, "%s bf16: dG, dU = the fp32 ones rounded (%zu of %zu differ)", nm,
           bad, 2 * n);
    /* dout in bf16 (the down product's dX): the fp32 variant on the same values widened, bit
     * for bit */
    uint16_t *dyb = malloc(n * 2 + 2), *gb2 = malloc(n * 2 + 2), *ub2 = malloc(n * 2 + 2);
    float *dyw = malloc(n * 4 + 4);
    for (size_t i = 0; i < n; i++)
        dyb[i] = bf16_of(dy[i]), dyw[i] = bf16_val(dyb[i]);
    uint16_t *dybd = up(dyb, n * 2 + 2);
    float *dywd = up(dyw, n * 4 + 4);
    rc = krn_cuda_swiglu_rmsnorm_backward_bf16(K, gbd, ubd, 0, NULL, dywd, gd, ud, wd, rsd, N, C);
    int rc2 = krn_cuda_swiglu_rmsnorm_backward_b16(K, (uint16_t *)dgd, (uint16_t *)dud, 0, NULL,
                                                   dybd, gd, ud, wd, rsd, N, C);
    krn_cuda_d2h(K, gb, gbd, n * 2);
    krn_cuda_d2h(K, ub, ubd, n * 2);
    krn_cuda_d2h(K, gb2, dgd, n * 2);
    krn_cuda_d2h(K, ub2, dud, n * 2);
    bad = krn_cuda_sync(K) != 0 || memcmp(gb, gb2, n * 2) || memcmp(ub, ub2, n * 2);
    TAP_OK(rc == 0 && rc2 == 0 && !bad, "%s bf16 dout: = the fp32 dout's of the same values", nm);
    free(dyb), free(gb2), free(ub2), free(dyw);
    krn_cuda_dfree(K, dybd), krn_cuda_dfree(K, dywd);
    free(gf), free(uf), free(gb), free(ub);
    krn_cuda_dfree(K, gbd), krn_cuda_dfree(K, ubd);
    free(g), free(u), free(w), free(h), free(y), free(rs), free(dy), free(dw), free(dh);
    free(dgr), free(dur), free(dwr), free(nan);
    dfree_off(gd, off), krn_cuda_dfree(K, ud), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, rsd);
    krn_cuda_dfree(K, dyd), krn_cuda_dfree(K, dgd), krn_cuda_dfree(K, dud);
    krn_cuda_dfree(K, dwd);
}

/* Rows wider than the fused kernels hold: EINVAL, nothing launched (the caller falls back). */
static void t_swiglu_norm_wide(void)
{
    int C = 16385;
    int r1 =
        krn_cuda_swiglu_rmsnorm_aquant(K, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, C, 1e-6f);
    int r2 =
        krn_cuda_swiglu_rmsnorm_backward(K, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, C);
    int r3 = krn_cuda_rmsnorm_aquant(K, NULL, NULL, NULL, NULL, NULL, NULL, 1, C, 1e-6f);
    TAP_OK(r1 == KRN_CUDA_EINVAL && r2 == KRN_CUDA_EINVAL && r3 == KRN_CUDA_EINVAL &&
               krn_cuda_sync(K) == 0,
           "fused swiglu+rmsnorm with C %d: EINVAL forward %d backward %d (rmsnorm+aquant %d)", C,
           r1, r2, r3);
}

static void t_rope(int B, int T, int NH, int HD)
{
    size_t n = (size_t)B * T * NH * HD, nt = (size_t)T * (HD / 2);
    float *cs = malloc(nt * 4), *sn = malloc(nt * 4), *x = hrand(n, 1), *y = malloc(n * 4);
    float *dx = hrand(n, 1), *dxr = dup(dx, n);
    trn_rope_tables(cs, sn, T, HD, 10000.0f);
    float *csd = up(cs, nt * 4), *snd = up(sn, nt * 4), *xd = up(x, n * 4);
    float *yd = krn_cuda_alloc(K, n * 4), *dxd = up(dx, n * 4);
    trn_rope_forward(y, x, cs, sn, B, T, NH, HD);
    krn_cuda_rope_forward(K, yd, xd, csd, snd, B, T, NH, HD);
    cmp("rope forward", yd, y, n, TOL_F32);
    trn_rope_backward(dxr, x, cs, sn, B, T, NH, HD);
    krn_cuda_rope_backward(K, dxd, xd, csd, snd, B, T, NH, HD);
    cmp("rope backward", dxd, dxr, n, TOL_F32);
    free(cs), free(sn), free(x), free(y), free(dx), free(dxr);
    krn_cuda_dfree(K, csd), krn_cuda_dfree(K, snd), krn_cuda_dfree(K, xd);
    krn_cuda_dfree(K, yd), krn_cuda_dfree(K, dxd);
}

static void t_attention(int B, int T, int NH, int KVH, int HD)
{
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD;
    size_t np = (size_t)B * NH * T * T;
    char nm[96];
    float *q = hrand(nq, 1), *k = hrand(nk, 1), *v = hrand(nk, 1), *o = malloc(nq * 4);
    float *P = malloc(np * 4), *dout = hrand(nq, 1), *sc = malloc((size_t)T * T * 4);
    float *dq = hrand(nq, 1), *dk = hrand(nk, 1), *dv = hrand(nk, 1);
    float *dqr = dup(dq, nq), *dkr = dup(dk, nk), *dvr = dup(dv, nk);
    float *qd = up(q, nq * 4), *kd = up(k, nk * 4), *vd = up(v, nk * 4);
    float *od = krn_cuda_alloc(K, nq * 4), *Pd = krn_cuda_alloc(K, np * 4);
    float *doutd = up(dout, nq * 4), *scd = krn_cuda_alloc(K, np * 4);
    float *dqd = up(dq, nq * 4), *dkd = up(dk, nk * 4), *dvd = up(dv, nk * 4);
    trn_attention_forward(o, P, q, k, v, B, T, NH, KVH, HD);
    krn_cuda_attention_forward(K, od, Pd, qd, kd, vd, B, T, NH, KVH, HD);
    snprintf(nm, sizeof(nm), "attention B%d T%d H%d/%d d%d", B, T, NH, KVH, HD);
    char n2[128];
    snprintf(n2, sizeof(n2), "%s out", nm);
    cmp(n2, od, o, nq, TOL_F32);
    snprintf(n2, sizeof(n2), "%s probs", nm);
    cmp(n2, Pd, P, np, TOL_F32);
    trn_attention_backward(dqr, dkr, dvr, dout, P, q, k, v, B, T, NH, KVH, HD, sc);
    krn_cuda_attention_backward(K, dqd, dkd, dvd, doutd, Pd, qd, kd, vd, B, T, NH, KVH, HD, scd);
    snprintf(n2, sizeof(n2), "%s dQ", nm);
    cmp(n2, dqd, dqr, nq, TOL_F32);
    snprintf(n2, sizeof(n2), "%s dK", nm);
    cmp(n2, dkd, dkr, nk, TOL_F32);
    snprintf(n2, sizeof(n2), "%s dV", nm);
    cmp(n2, dvd, dvr, nk, TOL_F32);
    free(q), free(k), free(v), free(o), free(P), free(dout), free(sc), free(dq), free(dk);
    free(dv), free(dqr), free(dkr), free(dvr);
    krn_cuda_dfree(K, qd), krn_cuda_dfree(K, kd), krn_cuda_dfree(K, vd), krn_cuda_dfree(K, od);
    krn_cuda_dfree(K, Pd), krn_cuda_dfree(K, doutd), krn_cuda_dfree(K, scd);
    krn_cuda_dfree(K, dqd), krn_cuda_dfree(K, dkd), krn_cuda_dfree(K, dvd);
}

/* x[n] rounded to bf16 (nearest, ties to even), kept in fp32 (finite inputs). */
static void bf16_round(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = (u + 0x7fffu + (u >> 16 & 1u)) & 0xffff0000u;
        memcpy(&x[i], &u, 4);
    }
}

/* Three device tensors of nq, nk, nk floats from three host arrays (put3), or into one host
 * array end to end (get3). */
static void put3(float *dq, float *dk, float *dv, const float *a, const float *b, const float *c,
                 size_t nq, size_t nk)
{
    krn_cuda_h2d(K, dq, a, nq * 4);
    krn_cuda_h2d(K, dk, b, nk * 4);
    krn_cuda_h2d(K, dv, c, nk * 4);
}

static void get3(float *g, const float *dq, const float *dk, const float *dv, size_t nq, size_t nk)
{
    krn_cuda_d2h(K, g, dq, nq * 4);
    krn_cuda_d2h(K, g + nq, dk, nk * 4);
    krn_cuda_d2h(K, g + nq + nk, dv, nk * 4);
}

/* One flash backward's device operands, for v16_bad. */
struct v16_case {
    float *dq, *dk;
    const float *dout, *o, *lse;
    const uint16_t *q, *k, *v;
    float *sc;
    const float *cs, *sn;
    int B, T, NH, KVH;
};

/* krn_cuda_flash_backward_v16 (dQ, dK in bf16 over dq, dk; dV into the v columns of a q|k|v-wide
 * bf16 row, (NH + 2 KVH) 128 wide, its other columns a NaN sentinel) against ref, the fp32
 * entry's acc_qk 0 results [dq | dk | dv]: the elements that are not ref's bf16 rounding, or
 * not the sentinel outside the v columns (+1 on a refused launch or a CUDA error). */
static size_t v16_bad(const struct v16_case *f, const float *ref)
{
    enum { HD = 128 };
    size_t nr = (size_t)f->B * f->T, nq = nr * f->NH * HD, nk = nr * f->KVH * HD;
    size_t W = (size_t)(f->NH + 2 * f->KVH) * HD, c0 = (size_t)(f->NH + f->KVH) * HD;
    uint16_t *yb = malloc(nr * W * 2), *qk = malloc((nq + nk) * 2);
    for (size_t i = 0; i < nr * W; i++)
        yb[i] = 0x7fc1;
    uint16_t *ybd = up(yb, nr * W * 2);
    int rc = krn_cuda_flash_backward_v16(K, (uint16_t *)f->dq, (uint16_t *)f->dk, ybd + c0, (int)W,
                                         f->dout, f->o, f->lse, f->q, f->k, f->v, f->B, f->T, f->NH,
                                         f->KVH, HD, f->sc, f->cs, f->sn);
    krn_cuda_d2h(K, yb, ybd, nr * W * 2);
    krn_cuda_d2h(K, qk, f->dq, nq * 2);
    krn_cuda_d2h(K, qk + nq, f->dk, nk * 2);
    size_t bad = (rc != 0) + (krn_cuda_sync(K) != 0);
    for (size_t i = 0; i < nq + nk; i++)
        bad += qk[i] != bf16_of(ref[i]);
    for (size_t r = 0; r < nr; r++)
        for (size_t j = 0; j < W; j++) {
            int in = j >= c0 && j < c0 + nk / nr;
            bad += yb[r * W + j] != (in ? bf16_of(ref[nq + nk + r * (nk / nr) + j - c0]) : 0x7fc1);
        }
    krn_cuda_dfree(K, ybd);
    free(yb), free(qk);
    return bad;
}

/* The fused attention (head dim 128, bf16 tensor cores) against the CPU's materialising ops
 * (fp32): out, the log-sum-exp (against fp64 on the host), and dQ, dK, dV as increments over
 * random starting values (they accumulate). qs scales q: larger scores test the online softmax.
 * off > 0 shifts every device tensor by off floats and the bf16 operands by off elements (not
 * 16-byte aligned: the plain copies instead of cp.async). q, k, v go to the kernels in bf16
 * (krn_cuda_to_bf16). The backward runs twice from the same start: the results must be
 * bit-identical (no atomics). */
static void t_flash(int B, int T, int NH, int KVH, float qs, int off)
{
    enum { HD = 128 };
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD, nl = (size_t)B * NH * T;
    size_t np = (size_t)B * NH * T * T;
    char nm[96], n2[160];
    float *q = hrand(nq, qs), *k = hrand(nk, 1), *v = hrand(nk, 1), *o = malloc(nq * 4);
    float *P = malloc(np * 4), *dout = hrand(nq, 1), *sc = malloc((size_t)T * T * 4);
    float *dq = hrand(nq, 1), *dk = hrand(nk, 1), *dv = hrand(nk, 1), *lse = malloc(nl * 4);
    float *dqr = dup(dq, nq), *dkr = dup(dk, nk), *dvr = dup(dv, nk);
    float *buf[9];
    size_t bn[9] = {nq, nk, nk, nq, nl, nq, nq, nk, nk}, scn = nl;
    const float *init[9] = {q, k, v, NULL, NULL, dout, dq, dk, dv};
    for (int i = 0; i < 9; i++) {
        float *d = krn_cuda_alloc(K, (bn[i] + (size_t)off) * 4);
        buf[i] = d ? d + off : NULL;
        if (d && init[i])
            krn_cuda_h2d(K, buf[i], init[i], bn[i] * 4);
    }
    float *od = buf[3], *ld = buf[4], *doutd = buf[5];
    float *dqd = buf[6], *dkd = buf[7], *dvd = buf[8];
    float *scd = krn_cuda_alloc(K, krn_cuda_flash_scratch(B, T, NH) * 4 + 64);
    uint16_t *b16[3];
    size_t b16n[3] = {nq, nk, nk};
    for (int i = 0; i < 3; i++) {
        uint16_t *d = krn_cuda_alloc(K, (b16n[i] + (size_t)off) * 2);
        b16[i] = d ? d + off : NULL;
        krn_cuda_to_bf16(K, b16[i], buf[i], b16n[i]);
    }
    (void)scn;
    float scale = 1.0f / sqrtf((float)HD);
    int grp = NH / KVH;
    /* lse in fp64 from q and k rounded to bf16 as the kernel stages them (the rounding alone
     * moves it by ~1e-3): what is left is the kernel's fp32 online softmax */
    float *qb = dup(q, nq), *kb = dup(k, nk);
    bf16_round(qb, nq);
    bf16_round(kb, nk);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qr = qb + (((size_t)b * T + t) * NH + h) * HD;
                double mx = -INFINITY, sum = 0;
                for (int pass = 0; pass < 2; pass++)
                    for (int j = 0; j <= t; j++) {
                        const float *kr = kb + (((size_t)b * T + j) * KVH + h / grp) * HD;
                        double x = 0;
                        for (int d = 0; d < HD; d++)
                            x += (double)qr[d] * kr[d];
                        x *= scale;
                        if (pass == 0)
                            mx = x > mx ? x : mx;
                        else
                            sum += exp(x - mx);
                    }
                lse[((size_t)b * NH + h) * T + t] = (float)(mx + log(sum));
            }
    free(qb), free(kb);
    trn_attention_forward(o, P, q, k, v, B, T, NH, KVH, HD);
    krn_cuda_flash_forward(K, od, ld, b16[0], b16[1], b16[2], B, T, NH, KVH, HD);
    snprintf(nm, sizeof(nm), "flash B%d T%d H%d/%d q*%g%s", B, T, NH, KVH, (double)qs,
             off ? " unaligned" : "");
    snprintf(n2, sizeof(n2), "%s out", nm);
    cmp(n2, od, o, nq, TOL_FLASH);
    snprintf(n2, sizeof(n2), "%s lse", nm);
    cmp(n2, ld, lse, nl, TOL_LSE);
    trn_attention_backward(dqr, dkr, dvr, dout, P, q, k, v, B, T, NH, KVH, HD, sc);
    krn_cuda_flash_backward(K, dqd, dkd, 1, dvd, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                            KVH, HD, scd + off, NULL, NULL);
    float *g1 = malloc((nq + 2 * nk) * 4), *g2 = malloc((nq + 2 * nk) * 4);
    get3(g1, dqd, dkd, dvd, nq, nk);
    snprintf(n2, sizeof(n2), "%s dQ", nm);
    cmp_base(n2, dqd, dqr, dq, nq, TOL_FLASH);
    snprintf(n2, sizeof(n2), "%s dK", nm);
    cmp_base(n2, dkd, dkr, dk, nk, TOL_FLASH);
    snprintf(n2, sizeof(n2), "%s dV", nm);
    cmp_base(n2, dvd, dvr, dv, nk, TOL_FLASH);
    put3(dqd, dkd, dvd, dq, dk, dv, nq, nk);
    krn_cuda_flash_backward(K, dqd, dkd, 1, dvd, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                            KVH, HD, scd + off, NULL, NULL);
    get3(g2, dqd, dkd, dvd, nq, nk);
    TAP_OK(!memcmp(g1, g2, (nq + 2 * nk) * 4), "%s backward: two runs bit-identical", nm);
    /* acc_qk 0 over NaN-filled dq, dk, dv against acc_qk 1 over zeros: the same values (by
     * value: 0 + -0 is +0) */
    float *z = calloc(nq + 2 * nk, 4), *nn = malloc((nq + 2 * nk) * 4);
    for (size_t i = 0; i < nq + 2 * nk; i++)
        nn[i] = NAN;
    put3(dqd, dkd, dvd, z, z, z, nq, nk);
    krn_cuda_flash_backward(K, dqd, dkd, 1, dvd, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                            KVH, HD, scd + off, NULL, NULL);
    get3(g1, dqd, dkd, dvd, nq, nk);
    put3(dqd, dkd, dvd, nn, nn, nn, nq, nk);
    krn_cuda_flash_backward(K, dqd, dkd, 0, dvd, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                            KVH, HD, scd + off, NULL, NULL);
    get3(g2, dqd, dkd, dvd, nq, nk);
    size_t diff = 0;
    for (size_t i = 0; i < nq + 2 * nk; i++)
        diff += !(g1[i] == g2[i]); /* a NaN left over differs too */
    TAP_OK(krn_cuda_sync(K) == 0 && diff == 0,
           "%s backward acc_qk 0 over NaN = acc_qk 1 over zeros (%zu of %zu differ)", nm, diff,
           nq + 2 * nk);
    /* the v16 mode against the acc_qk 0 run: see v16_bad */
    struct v16_case vc = {dqd,       dkd,  doutd, od, ld, b16[0], b16[1], b16[2],
                          scd + off, NULL, NULL,  B,  T,  NH,     KVH};
    size_t vb = v16_bad(&vc, g2);
    TAP_OK(vb == 0,
           "%s backward in bf16 (dV into q|k|v-wide rows): dQ, dK, dV = acc_qk 0's rounded, the "
           "other columns untouched (%zu differ)",
           nm, vb);
    int rv2 = krn_cuda_flash_backward_v16(K, (uint16_t *)dqd, (uint16_t *)dkd, (uint16_t *)dvd + 1,
                                          KVH * HD, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                                          KVH, HD, scd + off, NULL, NULL);
    int rv3 = krn_cuda_flash_backward_v16(K, (uint16_t *)dqd, (uint16_t *)dkd, (uint16_t *)dvd,
                                          KVH * HD - 2, doutd, od, ld, b16[0], b16[1], b16[2], B, T,
                                          NH, KVH, HD, scd + off, NULL, NULL);
    TAP_OK(rv2 == KRN_CUDA_EINVAL && rv3 == KRN_CUDA_EINVAL,
           "%s backward in bf16: unaligned rows, rows narrower than KVH HD: EINVAL (%d, %d)", nm,
           rv2, rv3);
    /* RoPE's backward folded in (tables of theta 1e6): dq, dk += RoPE^T of the attention's
     * gradients, against the CPU's trn_rope_backward of the increments found above */
    float *cs = malloc((size_t)T * HD / 2 * 4), *sn = malloc((size_t)T * HD / 2 * 4);
    trn_rope_tables(cs, sn, T, HD, 1e6f);
    float *csd = up(cs, (size_t)T * HD / 2 * 4), *snd = up(sn, (size_t)T * HD / 2 * 4);
    float *iq = malloc(nq * 4), *ik = malloc(nk * 4), *rq = dup(dq, nq), *rk = dup(dk, nk);
    for (size_t i = 0; i < nq; i++)
        iq[i] = dqr[i] - dq[i];
    for (size_t i = 0; i < nk; i++)
        ik[i] = dkr[i] - dk[i];
    trn_rope_backward(rq, iq, cs, sn, B, T, NH, HD);
    trn_rope_backward(rk, ik, cs, sn, B, T, KVH, HD);
    put3(dqd, dkd, dvd, dq, dk, dv, nq, nk);
    krn_cuda_flash_backward(K, dqd, dkd, 1, dvd, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                            KVH, HD, scd + off, csd, snd);
    snprintf(n2, sizeof(n2), "%s dQ through RoPE", nm);
    cmp_base(n2, dqd, rq, dq, nq, TOL_FLASH);
    snprintf(n2, sizeof(n2), "%s dK through RoPE", nm);
    cmp_base(n2, dkd, rk, dk, nk, TOL_FLASH);
    snprintf(n2, sizeof(n2), "%s dV beside RoPE", nm);
    cmp_base(n2, dvd, dvr, dv, nk, TOL_FLASH);
    put3(dqd, dkd, dvd, nn, nn, nn, nq, nk);
    krn_cuda_flash_backward(K, dqd, dkd, 0, dvd, doutd, od, ld, b16[0], b16[1], b16[2], B, T, NH,
                            KVH, HD, scd + off, csd, snd);
    get3(g2, dqd, dkd, dvd, nq, nk);
    vc.cs = csd, vc.sn = snd;
    vb = v16_bad(&vc, g2);
    TAP_OK(vb == 0, "%s backward in bf16 through RoPE: = acc_qk 0's rounded (%zu differ)", nm, vb);
    free(cs), free(sn), free(iq), free(ik), free(rq), free(rk);
    krn_cuda_dfree(K, csd), krn_cuda_dfree(K, snd);
    free(z), free(nn);
    free(q), free(k), free(v), free(o), free(P), free(dout), free(sc), free(dq), free(dk);
    free(dv), free(lse), free(dqr), free(dkr), free(dvr), free(g1), free(g2);
    for (int i = 0; i < 9; i++)
        krn_cuda_dfree(K, buf[i] ? buf[i] - off : NULL);
    for (int i = 0; i < 3; i++)
        krn_cuda_dfree(K, b16[i] ? b16[i] - off : NULL);
    krn_cuda_dfree(K, scd);
}

/* The fused attention's first backward pass folded into SubLN's backward
 * (krn_cuda_rmsnorm_backward_flash, then krn_cuda_flash_backward without dout) against the two
 * passes it replaces (krn_cuda_rmsnorm_backward's fp32 dX, then krn_cuda_flash_backward from it;
 * each checked against the CPU above): dQ, dK, dV to 1e-5 (D is summed in another order) and
 * dW bit-identical. x, SubLN's input, is the flash forward's out, as in the trainer. */
static void t_flash_norm(int B, int T, int NH, int KVH)
{
    enum { HD = 128 };
    int N = B * T, C = NH * HD;
    size_t nq = (size_t)N * C, nk = (size_t)N * KVH * HD, nl = (size_t)B * NH * T;
    float *hq = hrand(nq, 3), *hk = hrand(nk, 1), *hv = hrand(nk, 1), *hdy = hrand(nq, 1);
    float *hw = hrand((size_t)C, 1), *g1 = malloc((nq + 2 * nk) * 4), *w1 = malloc((size_t)C * 4);
    float *q = up(hq, nq * 4), *k = up(hk, nk * 4), *v = up(hv, nk * 4), *dy = up(hdy, nq * 4);
    float *w = up(hw, (size_t)C * 4), *x = krn_cuda_alloc(K, nq * 4),
          *lse = krn_cuda_alloc(K, nl * 4);
    float *xn = krn_cuda_alloc(K, nq * 4), *rs = krn_cuda_alloc(K, (size_t)N * 4);
    float *dx = krn_cuda_alloc(K, nq * 4), *dw = krn_cuda_alloc(K, (size_t)C * 4);
    float *dq = krn_cuda_alloc(K, nq * 4), *dk = krn_cuda_alloc(K, nk * 4);
    float *dv = krn_cuda_alloc(K, nk * 4),
          *sc = krn_cuda_alloc(K, krn_cuda_flash_scratch(B, T, NH) * 4);
    uint16_t *qb = krn_cuda_alloc(K, nq * 2), *kb = krn_cuda_alloc(K, nk * 2);
    uint16_t *vb = krn_cuda_alloc(K, nk * 2);
    char nm[96], n2[160];
    snprintf(nm, sizeof(nm), "flash + SubLN backward B%d T%d H%d/%d", B, T, NH, KVH);
    krn_cuda_to_bf16(K, qb, q, nq);
    krn_cuda_to_bf16(K, kb, k, nk);
    krn_cuda_to_bf16(K, vb, v, nk);
    krn_cuda_flash_forward(K, x, lse, qb, kb, vb, B, T, NH, KVH, HD);
    krn_cuda_rmsnorm_forward(K, xn, rs, x, w, N, C, 1e-6f);
    krn_cuda_zero(K, dw, (size_t)C * 4);
    krn_cuda_rmsnorm_backward(K, dx, 0, dw, dy, x, w, rs, N, C);
    krn_cuda_flash_backward(K, dq, dk, 0, dv, dx, x, lse, qb, kb, vb, B, T, NH, KVH, HD, sc, NULL,
                            NULL);
    get3(g1, dq, dk, dv, nq, nk);
    krn_cuda_d2h(K, w1, dw, (size_t)C * 4);
    krn_cuda_zero(K, dw, (size_t)C * 4);
    int rc = krn_cuda_rmsnorm_backward_flash(K, sc, dw, dy, 0, x, w, rs, B, T, NH);
    TAP_OK(rc == 0, "%s: taken (%d)", nm, rc);
    krn_cuda_flash_backward(K, dq, dk, 0, dv, NULL, NULL, lse, qb, kb, vb, B, T, NH, KVH, HD, sc,
                            NULL, NULL);
    snprintf(n2, sizeof(n2), "%s dQ = two passes'", nm);
    cmp(n2, dq, g1, nq, 1e-5);
    snprintf(n2, sizeof(n2), "%s dK = two passes'", nm);
    cmp(n2, dk, g1 + nq, nk, 1e-5);
    snprintf(n2, sizeof(n2), "%s dV = two passes'", nm);
    cmp(n2, dv, g1 + nq + nk, nk, 1e-5);
    float *w2 = malloc((size_t)C * 4);
    krn_cuda_d2h(K, w2, dw, (size_t)C * 4);
    TAP_OK(krn_cuda_sync(K) == 0 && !memcmp(w1, w2, (size_t)C * 4), "%s: dW bit-identical", nm);
    /* dout in bf16 (dout16) = the fp32 entry on dout's bf16 values: dQ, dK, dV and dW bit for
     * bit */
    {
        uint16_t *h16 = malloc(nq * 2);
        float *hw16 = malloc(nq * 4), *gg[2] = {malloc((nq + 2 * nk) * 4 + (size_t)C * 4),
                                                malloc((nq + 2 * nk) * 4 + (size_t)C * 4)};
        for (size_t i = 0; i < nq; i++)
            hw16[i] = bf16_val(h16[i] = bf16_of(hdy[i]));
        uint16_t *d16 = up(h16, nq * 2);
        float *dw16 = up(hw16, nq * 4);
        int r16 = 0;
        for (int k = 0; k < 2; k++) {
            krn_cuda_zero(K, dw, (size_t)C * 4);
            r16 |= krn_cuda_rmsnorm_backward_flash(K, sc, dw, k ? (float *)d16 : dw16, k, x, w, rs,
                                                   B, T, NH);
            krn_cuda_flash_backward(K, dq, dk, 0, dv, NULL, NULL, lse, qb, kb, vb, B, T, NH, KVH,
                                    HD, sc, NULL, NULL);
            get3(gg[k], dq, dk, dv, nq, nk);
            krn_cuda_d2h(K, gg[k] + nq + 2 * nk, dw, (size_t)C * 4);
        }
        TAP_OK(krn_cuda_sync(K) == 0 && r16 == 0 &&
                   !memcmp(gg[0], gg[1], (nq + 2 * nk) * 4 + (size_t)C * 4),
               "%s: from a bf16 dout: dQ, dK, dV, dW = the fp32 entry's on its values", nm);
        krn_cuda_dfree(K, d16), krn_cuda_dfree(K, dw16);
        free(h16), free(hw16), free(gg[0]), free(gg[1]);
    }
    /* rows of 256 or fewer (two heads of 128): EINVAL, nothing written, the two passes serve */
    if (NH > 2)
        TAP_OK(krn_cuda_rmsnorm_backward_flash(K, sc, dw, dy, 0, x, w, rs, 1, N * NH / 2, 2) ==
                   KRN_CUDA_EINVAL,
               "%s: two heads (256 columns) refused", nm);
    void *all[] = {q, k, v, dy, w, x, lse, xn, rs, dx, dw, dq, dk, dv, sc, qb, kb, vb};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        krn_cuda_dfree(K, all[i]);
    free(hq), free(hk), free(hv), free(hdy), free(hw), free(g1), free(w1), free(w2);
}

/* A head dim the fused kernels do not take fails with EINVAL and a message (on a context of its
 * own: the error is sticky). */
static void t_flash_bad(void)
{
    struct krn_cuda *k2 = NULL;
    char err[KRN_CUDA_ERR_LEN];
    if (krn_cuda_create(0, &k2, err)) {
        TAP_OK(0, "second context: %s", err);
        return;
    }
    float *x = krn_cuda_alloc(k2, 4 * 64 * 4);
    uint16_t *xb = (uint16_t *)x;
    krn_cuda_flash_forward(k2, x, x, xb, xb, xb, 1, 2, 2, 1, 64);
    int rc = krn_cuda_sync(k2);
    TAP_OK(rc == KRN_CUDA_EINVAL && strstr(krn_cuda_errmsg(k2), "head dim 128") &&
               !krn_cuda_flash_supported(64) && krn_cuda_flash_supported(128),
           "flash with head dim 64: EINVAL (%d: %s)", rc, krn_cuda_errmsg(k2));
    krn_cuda_dfree(k2, x);
    krn_cuda_free(k2);
}

/* g and u kept in bf16 (the gate and up products' outputs): the fused SwiGLU + SubLN forward and
 * backward and the teacher's SwiGLU forward on bf16 g, u against the fp32 entries on the same
 * values widened, bit for bit: codes, bf16 values, scales, rstd; dG, dU, dW; h. off 1: g, u
 * and the norm weight off 16-byte alignment (the 8-byte loads, w read as floats; the backward's
 * scalar path). */
static void t_gu16(int N, int C, int off)
{
    /* its own random stream: the tests after it keep the inputs they were checked with */
    uint64_t keep = rng;
    rng = 0x2545f4914f6cdd1dull + (uint64_t)N * 131 + (uint64_t)C;
    size_t n = (size_t)N * C;
    char nm[96];
    snprintf(nm, sizeof(nm), "gu16 %dx%d%s", N, C, off ? " unaligned" : "");
    float *g = hrand(n, 4), *u = hrand(n, 2), *w = hrand(C, 1), *dy = hrand(n, 1);
    float *gw = malloc(n * 4 + 4), *uw = malloc(n * 4 + 4), *dyw = malloc(n * 4 + 4);
    uint16_t *gb = malloc(n * 2 + 2), *ub = malloc(n * 2 + 2), *dyb = malloc(n * 2 + 2);
    for (size_t i = 0; i < n; i++) {
        gb[i] = bf16_of(g[i]), gw[i] = bf16_val(gb[i]);
        ub[i] = bf16_of(u[i]), uw[i] = bf16_val(ub[i]);
        dyb[i] = bf16_of(dy[i]), dyw[i] = bf16_val(dyb[i]);
    }
    float *gwd = up(gw, n * 4), *uwd = up(uw, n * 4), *wd = up(w, C * 4), *dywd = up(dyw, n * 4);
    float *wod = up_off(w, C, off);
    uint16_t *gbd = up_shift(gb, n * 2, (size_t)off * 2),
             *ubd = up_shift(ub, n * 2, (size_t)off * 2), *dybd = up(dyb, n * 2 + 2);
    uint16_t *gba = up(gb, n * 2 + 2), *uba = up(ub, n * 2 + 2); /* the forward's: 16-aligned */
    /* forward: two sets of outputs */
    int8_t *x8d[2];
    uint16_t *xbd[2];
    float *sxd[2], *rsd[2];
    for (int i = 0; i < 2; i++) {
        x8d[i] = krn_cuda_alloc(K, n + 16);
        xbd[i] = krn_cuda_alloc(K, n * 2 + 16);
        sxd[i] = krn_cuda_alloc(K, N * 4);
        rsd[i] = krn_cuda_alloc(K, N * 4);
    }
    int r1 = krn_cuda_swiglu_rmsnorm_aquant(K, x8d[0], xbd[0], sxd[0], rsd[0], gwd, uwd, wd, N, C,
                                            1e-6f);
    int r2 = krn_cuda_swiglu_rmsnorm_aquant_b16(K, x8d[1], xbd[1], sxd[1], rsd[1], gba, uba, wod, N,
                                                C, 1e-6f);
    size_t hb = 4 * n + 8 * (size_t)N + 4 * (size_t)C; /* the largest comparison's bytes */
    char *h0 = malloc(hb), *h1 = malloc(hb);
    for (int i = 0; i < 2; i++) {
        char *h = i ? h1 : h0;
        krn_cuda_d2h(K, h, x8d[i], n);
        krn_cuda_d2h(K, h + n, xbd[i], n * 2);
        krn_cuda_d2h(K, h + 3 * n, sxd[i], N * 4);
        krn_cuda_d2h(K, h + 3 * n + N * 4, rsd[i], N * 4);
    }
    int st = krn_cuda_sync(K);
    TAP_OK(!st && r1 == 0 && r2 == 0 && !memcmp(h0, h1, 3 * n + 8 * (size_t)N),
           "%s: swiglu+rmsnorm+aquant from bf16 g, u = from their fp32 values (codes, bf16 "
           "values, scales, rstd bit for bit; rc %d %d, cuda %d)",
           nm, r1, r2, st);
    /* backward, from the forward's rstd: dG, dU (bf16) and dW (+= from zero) */
    float *z = calloc(C, 4), *dw0 = up(z, C * 4), *dw1 = up(z, C * 4);
    uint16_t *dg[2], *du[2];
    for (int i = 0; i < 2; i++) {
        dg[i] = krn_cuda_alloc(K, n * 2 + 16);
        du[i] = krn_cuda_alloc(K, n * 2 + 16);
    }
    float *gwo = up_off(gw, n, off), *uwo = up_off(uw, n, off);
    r1 = krn_cuda_swiglu_rmsnorm_backward_b16(K, dg[0], du[0], 0, dw0, dybd, gwo, uwo, wd, rsd[0],
                                              N, C);
    r2 = krn_cuda_swiglu_rmsnorm_backward_gu16(K, dg[1], du[1], 0, dw1, dybd, gbd, ubd, wd, rsd[0],
                                               N, C);
    size_t bb = n * 4 + C * 4;
    for (int i = 0; i < 2; i++) {
        char *h = i ? h1 : h0;
        krn_cuda_d2h(K, h, dg[i], n * 2);
        krn_cuda_d2h(K, h + n * 2, du[i], n * 2);
        krn_cuda_d2h(K, h + n * 4, i ? dw1 : dw0, C * 4);
    }
    st = krn_cuda_sync(K);
    TAP_OK(!st && r1 == 0 && r2 == 0 && !memcmp(h0, h1, bb),
           "%s: swiglu+rmsnorm backward from bf16 g, u = from their fp32 values (dG, dU, dW bit "
           "for bit; rc %d %d)",
           nm, r1, r2);
    /* the teacher's SwiGLU forward (n - off values: odd counts take the scalar kernel) */
    size_t m = n - (size_t)off;
    krn_cuda_swiglu_forward_bf16(K, dg[0], gwd, uwd, m);
    krn_cuda_swiglu_forward_b16(K, dg[1], gbd, ubd, m);
    krn_cuda_d2h(K, h0, dg[0], m * 2);
    krn_cuda_d2h(K, h1, dg[1], m * 2);
    st = krn_cuda_sync(K);
    TAP_OK(!st && !memcmp(h0, h1, m * 2),
           "%s: swiglu forward from bf16 g, u = from their fp32 values (%zu values)", nm, m);
    for (int i = 0; i < 2; i++) {
        krn_cuda_dfree(K, x8d[i]), krn_cuda_dfree(K, xbd[i]), krn_cuda_dfree(K, sxd[i]);
        krn_cuda_dfree(K, rsd[i]), krn_cuda_dfree(K, dg[i]), krn_cuda_dfree(K, du[i]);
    }
    free(g), free(u), free(w), free(dy), free(gw), free(uw), free(dyw), free(gb), free(ub);
    free(dyb), free(h0), free(h1), free(z);
    krn_cuda_dfree(K, gwd), krn_cuda_dfree(K, uwd), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, dywd);
    dfree_off(wod, off), dfree_off(gwo, off), dfree_off(uwo, off);
    dfree_shift(gbd, (size_t)off * 2), dfree_shift(ubd, (size_t)off * 2), krn_cuda_dfree(K, dybd);
    krn_cuda_dfree(K, gba), krn_cuda_dfree(K, uba);
    krn_cuda_dfree(K, dw0), krn_cuda_dfree(K, dw1);
    /* rows the staged kernel cannot hold: EINVAL, nothing launched */
    int r3 = krn_cuda_swiglu_rmsnorm_aquant_b16(K, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1,
                                                KRN_CUDA_SWIGLU16_MAX + 4, 1e-6f);
    TAP_OK(r3 == KRN_CUDA_EINVAL, "%s: C %d: EINVAL (%d)", nm, KRN_CUDA_SWIGLU16_MAX + 4, r3);
    rng = keep;
}

/* The gate|up product in INT8 and the fused SwiGLU + SubLN + quantizer from its int32 sums:
 * krn_cuda_qlinear_sums equals the exact sums; krn_cuda_swiglu_rmsnorm_aquant_i32's g and u
 * (bf16) equal the host's bf16((float)acc sx sw), and its codes, bf16 values, scales and rstd
 * equal krn_cuda_swiglu_rmsnorm_aquant_b16's from those g and u, bit for bit. H the product's
 * input width, C the FFN width (its own random stream). */
static void t_gu_i8(int N, int H, int C)
{
    uint64_t keep = rng;
    rng = 0x5851f42d4c957f2dull + (uint64_t)N * 977 + (uint64_t)C * 31 + (uint64_t)H;
    char nm[64];
    snprintf(nm, sizeof(nm), "gate|up int8 %dx%d->2x%d", N, H, C);
    size_t nx = (size_t)N * H, nw = (size_t)2 * C * H, ns = (size_t)N * 2 * C, n = (size_t)N * C;
    int8_t *x8 = malloc(nx), *w8 = malloc(nw);
    float *sx = malloc((size_t)N * 4), sg = 0.0123f, su = 0.0456f, *w = hrand(C, 1);
    for (size_t i = 0; i < nx; i++)
        x8[i] = (int8_t)(int)floorf(frand() * 128.0f);
    for (size_t i = 0; i < nw; i++)
        w8[i] = (int8_t)(int)lrintf(frand());
    for (int r = 0; r < N; r++)
        sx[r] = (1.5f + frand()) / 127.0f;
    int32_t *acc = malloc(ns * 4), *gacc = malloc(ns * 4);
    uint16_t *gb = malloc(n * 2), *ub = malloc(n * 2);
    for (int r = 0; r < N; r++)
        for (int o = 0; o < 2 * C; o++) {
            long long a = 0;
            for (int k = 0; k < H; k++)
                a += (long long)x8[(size_t)r * H + k] * w8[(size_t)o * H + k];
            acc[(size_t)r * 2 * C + o] = (int32_t)a;
            float y = (float)a * sx[r] * (o < C ? sg : su); /* k_qscale4's order */
            (o < C ? gb : ub)[(size_t)r * C + (o % C)] = bf16_of(y);
        }
    int8_t *x8d = up(x8, nx), *w8d = up(w8, nw);
    float *sxd = up(sx, (size_t)N * 4), *sgd = up(&sg, 4), *sud = up(&su, 4), *wd = up(w, C * 4);
    int32_t *accd = krn_cuda_alloc(K, ns * 4 + 16);
    uint16_t *gbr = up(gb, n * 2), *ubr = up(ub, n * 2);
    uint16_t *gbd = krn_cuda_alloc(K, n * 2 + 16), *ubd = krn_cuda_alloc(K, n * 2 + 16);
    int8_t *o8[2];
    uint16_t *ob[2];
    float *osx[2], *ors[2];
    for (int i = 0; i < 2; i++) {
        o8[i] = krn_cuda_alloc(K, n + 16), ob[i] = krn_cuda_alloc(K, n * 2 + 16);
        osx[i] = krn_cuda_alloc(K, (size_t)N * 4), ors[i] = krn_cuda_alloc(K, (size_t)N * 4);
    }
    krn_cuda_qlinear_sums(K, accd, x8d, w8d, N, H, 2 * C);
    krn_cuda_d2h(K, gacc, accd, ns * 4);
    int st = krn_cuda_sync(K);
    TAP_OK(!st && !memcmp(gacc, acc, ns * 4), "%s: int32 sums = the exact sums (cuda %d)", nm, st);
    int r1 = krn_cuda_swiglu_rmsnorm_aquant_i32(K, o8[0], ob[0], osx[0], ors[0], gbd, ubd, accd,
                                                2 * C, sxd, sgd, sud, wd, N, C, 1e-6f);
    int r2 = krn_cuda_swiglu_rmsnorm_aquant_b16(K, o8[1], ob[1], osx[1], ors[1], gbr, ubr, wd, N, C,
                                                1e-6f);
    size_t hb = 3 * n + 8 * (size_t)N;
    char *h[2] = {malloc(hb + 4 * n), malloc(hb + 4 * n)};
    for (int i = 0; i < 2; i++) {
        krn_cuda_d2h(K, h[i], o8[i], n);
        krn_cuda_d2h(K, h[i] + n, ob[i], n * 2);
        krn_cuda_d2h(K, h[i] + 3 * n, osx[i], (size_t)N * 4);
        krn_cuda_d2h(K, h[i] + 3 * n + (size_t)N * 4, ors[i], (size_t)N * 4);
    }
    krn_cuda_d2h(K, h[0] + hb, gbd, n * 2);
    krn_cuda_d2h(K, h[0] + hb + 2 * n, ubd, n * 2);
    st = krn_cuda_sync(K);
    TAP_OK(!st && r1 == 0 && r2 == 0 && !memcmp(h[0] + hb, gb, n * 2) &&
               !memcmp(h[0] + hb + 2 * n, ub, n * 2),
           "%s: g, u written = bf16 of the scaled sums (rc %d %d, cuda %d)", nm, r1, r2, st);
    TAP_OK(!st && !memcmp(h[0], h[1], hb),
           "%s: codes, bf16 values, scales, rstd = the bf16-input kernel's, bit for bit", nm);
    int r3 = krn_cuda_swiglu_rmsnorm_aquant_i32(K, o8[0], ob[0], osx[0], ors[0], gbd, ubd,
                                                (const int32_t *)((char *)accd + 4), 2 * C, sxd,
                                                sgd, sud, wd, N, C, 1e-6f);
    int r4 = krn_cuda_swiglu_rmsnorm_aquant_i32(K, o8[0], ob[0], osx[0], ors[0], gbd, ubd, accd,
                                                2 * C - 4, sxd, sgd, sud, wd, N, C, 1e-6f);
    TAP_OK(r3 == KRN_CUDA_EINVAL && r4 == KRN_CUDA_EINVAL,
           "%s: unaligned sums, rows narrower than 2 C: EINVAL (%d, %d)", nm, r3, r4);
    for (int i = 0; i < 2; i++) {
        krn_cuda_dfree(K, o8[i]), krn_cuda_dfree(K, ob[i]), krn_cuda_dfree(K, osx[i]);
        krn_cuda_dfree(K, ors[i]);
        free(h[i]);
    }
    void *dev[] = {x8d, w8d, sxd, sgd, sud, wd, accd, gbr, ubr, gbd, ubd};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        krn_cuda_dfree(K, dev[i]);
    free(x8), free(w8), free(sx), free(w), free(acc), free(gacc), free(gb), free(ub);
    rng = keep;
}

static void t_swiglu(size_t n)
{
    float *g = hrand(n, 4), *u = hrand(n, 2), *o = malloc(n * 4), *dy = hrand(n, 1);
    float *dg = hrand(n, 1), *du = hrand(n, 1), *dgr = dup(dg, n), *dur = dup(du, n);
    float *dg0 = calloc(n ? n : 1, 4), *du0 = calloc(n ? n : 1, 4), *nan = nans(n);
    float *gd = up(g, n * 4), *ud = up(u, n * 4), *od = krn_cuda_alloc(K, n * 4);
    float *dyd = up(dy, n * 4), *dgd = up(dg, n * 4), *dud = up(du, n * 4);
    trn_swiglu_forward(o, g, u, n);
    krn_cuda_swiglu_forward(K, od, gd, ud, n);
    cmp("swiglu forward", od, o, n, TOL_F32);
    uint16_t *ob = krn_cuda_alloc(K, n * 2 + 16);
    krn_cuda_swiglu_forward_bf16(K, ob, gd, ud, n);
    same_rounded("swiglu forward in bf16", ob, od, n);
    krn_cuda_dfree(K, ob);
    trn_swiglu_backward(dgr, dur, dy, g, u, n);
    krn_cuda_swiglu_backward(K, dgd, dud, 1, dyd, gd, ud, n);
    cmp_base("swiglu dG += (acc 1)", dgd, dgr, dg, n, TOL_F32);
    cmp_base("swiglu dU += (acc 1)", dud, dur, du, n, TOL_F32);
    trn_swiglu_backward(dg0, du0, dy, g, u, n);
    krn_cuda_h2d(K, dgd, nan, n * 4);
    krn_cuda_h2d(K, dud, nan, n * 4);
    krn_cuda_swiglu_backward(K, dgd, dud, 0, dyd, gd, ud, n);
    cmp("swiglu dG = (acc 0, over NaN)", dgd, dg0, n, TOL_F32);
    cmp("swiglu dU = (acc 0, over NaN)", dud, du0, n, TOL_F32);
    free(g), free(u), free(o), free(dy), free(dg), free(du), free(dgr), free(dur);
    free(dg0), free(du0), free(nan);
    krn_cuda_dfree(K, gd), krn_cuda_dfree(K, ud), krn_cuda_dfree(K, od);
    krn_cuda_dfree(K, dyd), krn_cuda_dfree(K, dgd), krn_cuda_dfree(K, dud);
}

static void cmp_scalar(const char *what, double g, double c, double tol)
{
    double rel = fabs(g - c) / (fabs(c) > 0 ? fabs(c) : 1.0);
    TAP_OK(isfinite(g) && rel <= tol, "%s: gpu %.9g cpu %.9g (rel %.1e <= %.0e)", what, g, c, rel,
           tol);
}

static void t_losses(int N, int V)
{
    size_t n = (size_t)N * V;
    int32_t *tg = malloc(N * 4);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        tg[i] = i % 3 == 1 ? -1 : (int32_t)((unsigned)(frand() * 1e6f + 1e6f) % V);
        kept += tg[i] >= 0;
    }
    float *s = hrand(n, 8), *t = hrand(n, 8), *d = hrand(n, 1), *dr = dup(d, n);
    float *sd = up(s, n * 4), *td = up(t, n * 4), *dd = up(d, n * 4);
    float *rl = krn_cuda_alloc(K, N * 4);
    int32_t *tgd = up(tg, N * 4);
    double c = trn_ce_forward(s, tg, N, V);
    trn_ce_backward(dr, s, tg, N, V, 0.7f);
    krn_cuda_ce(K, rl, dd, sd, tgd, N, V, kept, 0.7f);
    cmp_scalar("cross-entropy value", krn_cuda_sum(K, rl, N) / kept, c, TOL_F32);
    cmp("cross-entropy dlogits", dd, dr, n, TOL_F32);
    c = trn_kl_forward(s, t, tg, N, V, 5.0f);
    trn_kl_backward(dr, s, t, tg, N, V, 5.0f, 10.0f);
    krn_cuda_kl(K, rl, dd, sd, td, tgd, N, V, 5.0f, kept, 10.0f);
    cmp_scalar("logits KL value", krn_cuda_sum(K, rl, N) / kept, c, 1e-4);
    cmp("logits KL dlogits (after CE, accumulated)", dd, dr, n, TOL_F32);
    free(tg), free(s), free(t), free(d), free(dr);
    krn_cuda_dfree(K, sd), krn_cuda_dfree(K, td), krn_cuda_dfree(K, dd), krn_cuda_dfree(K, rl);
    krn_cuda_dfree(K, tgd);
}

/* The fused head's losses (head.cu) against the CPU's CE and KL: the row losses, and the bf16
 * gradient rows (written over a NaN-filled buffer: every element, padded rows included, must be
 * overwritten) against trn_ce_backward + trn_kl_backward from zeros. kl 0: CE only. b16: the
 * logits given in bf16 (the CPU's reference on their values). */
static void t_head_loss(int N, int V, int kl, int off, int b16)
{
    size_t n = (size_t)N * V;
    int32_t *tg = malloc(N * 4);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        tg[i] = i % 4 == 2 ? -1 : (int32_t)((unsigned)(frand() * 1e6f + 1e6f) % V);
        kept += tg[i] >= 0;
    }
    float *s = hrand(n, 12), *t = hrand(n, 12), *dr = calloc(n, 4), *gh = malloc(n * 4);
    uint16_t *s16 = malloc(n * 2), *t16 = malloc(n * 2);
    for (size_t i = 0; b16 && i < n; i++) { /* the bf16 logits and their values */
        s[i] = bf16_val(s16[i] = bf16_of(s[i]));
        t[i] = bf16_val(t16[i] = bf16_of(t[i]));
    }
    size_t es = b16 ? 2 : 4;
    char *sd = krn_cuda_alloc(K, (n + off) * es), *td = up(b16 ? (void *)t16 : t, n * es);
    float *ce = krn_cuda_alloc(K, N * 4), *kd = krn_cuda_alloc(K, N * 4);
    uint16_t *gd = krn_cuda_alloc(K, n * 2), *gb = malloc(n * 2);
    int32_t *tgd = up(tg, N * 4);
    float tau = kl ? 2.0f : 1.0f, sc = 0.8f, lam = 3.0f;
    /* off 1: unaligned rows, the scalar path */
    krn_cuda_h2d(K, sd + off * es, b16 ? (void *)s16 : s, n * es);
    for (size_t i = 0; i < n; i++)
        gb[i] = 0xffff; /* NaN */
    krn_cuda_h2d(K, gd, gb, n * 2);
    krn_cuda_head_loss(K, ce, kl ? kd : NULL, gd, sd + off * es, kl ? td : NULL, b16, tgd, N, V,
                       tau, sc / (float)kept, sc * lam / (float)kept / tau);
    char nm[96];
    snprintf(nm, sizeof(nm), "head loss %dx%d%s%s%s: CE", N, V, kl ? " +KL" : "",
             off ? " unaligned" : "", b16 ? " bf16 logits" : "");
    cmp_scalar(nm, krn_cuda_sum(K, ce, N) / kept, trn_ce_forward(s, tg, N, V), TOL_F32);
    trn_ce_backward(dr, s, tg, N, V, sc);
    if (kl) {
        snprintf(nm, sizeof(nm), "head loss %dx%d%s%s: KL", N, V, off ? " unaligned" : "",
                 b16 ? " bf16 logits" : "");
        cmp_scalar(nm, krn_cuda_sum(K, kd, N) / kept, trn_kl_forward(s, t, tg, N, V, tau), 1e-4);
        trn_kl_backward(dr, s, t, tg, N, V, tau, sc * lam);
    }
    krn_cuda_d2h(K, gb, gd, n * 2);
    krn_cuda_sync(K);
    for (size_t i = 0; i < n; i++)
        gh[i] = bf16_val(gb[i]);
    float *gup = up(gh, n * 4);
    snprintf(nm, sizeof(nm), "head loss %dx%d%s%s%s: bf16 gradient (padded rows zero)", N, V,
             kl ? " +KL" : "", off ? " unaligned" : "", b16 ? " bf16 logits" : "");
    cmp(nm, gup, dr, n, TOL_BF16);
    free(tg), free(s), free(t), free(dr), free(gh), free(gb), free(s16), free(t16);
    krn_cuda_dfree(K, sd), krn_cuda_dfree(K, td), krn_cuda_dfree(K, ce), krn_cuda_dfree(K, kd);
    krn_cuda_dfree(K, gd), krn_cuda_dfree(K, tgd), krn_cuda_dfree(K, gup);
}

static void t_relation(int B, int T, int Cs, int Ct, int S, enum trn_rel kind)
{
    size_t ns = (size_t)B * T * Cs, nt = (size_t)B * T * Ct;
    int32_t *len = malloc(B * 4);
    int rows = 0;
    for (int b = 0; b < B; b++) {
        len[b] = b == 0 ? T : 1 + (b * 7) % T;
        rows += len[b];
    }
    float *s = hrand(ns, 1), *t = hrand(nt, 1), *ds = hrand(ns, 1), *dsr = dup(ds, ns);
    size_t scn = trn_relation_scratch(T, Cs > Ct ? Cs : Ct, Cs > Ct ? Cs : Ct, 1);
    float *sc = malloc(scn * 4);
    float *sd = up(s, ns * 4), *td = up(t, nt * 4), *dsd = up(ds, ns * 4);
    float *gsc = krn_cuda_alloc(K, krn_cuda_relation_scratch(B, T, Cs, Ct, S) * 4);
    int32_t *lend = up(len, B * 4);
    double c = trn_relation_forward(s, t, len, B, T, Cs, Ct, S, kind, 1.0f, sc);
    trn_relation_backward(dsr, s, t, len, B, T, Cs, Ct, S, kind, 1.0f, 1e3f, sc);
    double g = krn_cuda_relation(K, dsd, sd, td, lend, rows, B, T, Cs, Ct, S,
                                 kind == TRN_REL_SCALED, 1.0f, 1e3f, gsc);
    char nm[128];
    snprintf(nm, sizeof(nm), "relation %s B%d T%d C%d/%d S%d value",
             kind == TRN_REL_SCALED ? "scaled" : "cosine", B, T, Cs, Ct, S);
    cmp_scalar(nm, g, c, 1e-4);
    snprintf(nm, sizeof(nm), "relation %s B%d T%d C%d/%d S%d dS",
             kind == TRN_REL_SCALED ? "scaled" : "cosine", B, T, Cs, Ct, S);
    cmp(nm, dsd, dsr, ns, 1e-4);
    free(len), free(s), free(t), free(ds), free(dsr), free(sc);
    krn_cuda_dfree(K, sd), krn_cuda_dfree(K, td), krn_cuda_dfree(K, dsd), krn_cuda_dfree(K, gsc);
    krn_cuda_dfree(K, lend);
}

/* Download a bf16 buffer of n elements. */
static uint16_t *down16(const uint16_t *d, size_t n)
{
    uint16_t *h = malloc(n * 2 + 2);
    krn_cuda_d2h(K, h, d, n * 2);
    return h;
}

#define GAP16 0x7fc1 /* a bf16 NaN no kernel writes: the columns a placed output must not touch */

/* A wide [rows][ld] bf16 buffer filled with GAP16. */
static uint16_t *gaps16(size_t rows, size_t ld)
{
    uint16_t *h = malloc(rows * ld * 2 + 2), *d;
    for (size_t i = 0; i < rows * ld; i++)
        h[i] = GAP16;
    d = up(h, rows * ld * 2);
    free(h);
    return d;
}

/* wide [rows][ld] (downloaded) holds ref [rows][C] at column c0 bit for bit and GAP16
 * elsewhere: the count of elements that break this. */
static size_t placed_bad(const uint16_t *wide, size_t rows, size_t ld, size_t c0,
                         const uint16_t *ref, size_t C)
{
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < ld; j++) {
            int in = j >= c0 && j < c0 + C;
            bad += wide[r * ld + j] != (in ? ref[r * C + j - c0] : GAP16);
        }
    return bad;
}

/* The fused backward's placed outputs: QK-norm's bf16 dX for NH heads of HD per token written
 * into columns [c0, c0 + NH HD) of a wider row (rpt NH, ldo), SwiGLU+SubLN's dG and dU side by
 * side in one [N][2C] row, and a float row block rounded into columns of a wider bf16 row: each
 * equal, bit for bit, to the same kernel's contiguous output (itself checked against the CPU
 * above), and nothing else written. */
static void t_placed(int N, int NH, int HD, int C)
{
    size_t nq = (size_t)N * NH * HD, n = (size_t)N * C;
    int R = N * NH, W = NH * HD + 2 * HD + 8, c0 = 8; /* a q slot in a q|k|v row */
    float *x = hrand(nq, 2), *w = hrand(HD > C ? HD : C, 1), *dy = hrand(nq > n ? nq : n, 1);
    float *rs = malloc((size_t)(R > N ? R : N) * 4), *y = malloc((nq > n ? nq : n) * 4);
    float *g = hrand(n, 4), *u = hrand(n, 2), *h = malloc(n * 4);
    float *xd = up(x, nq * 4), *wd = up(w, (HD > C ? HD : C) * 4),
          *dyd = up(dy, (nq > n ? nq : n) * 4);
    trn_rmsnorm_forward(y, rs, x, w, R, HD, 1e-6f);
    float *rsd = up(rs, (size_t)R * 4);
    uint16_t *cd = krn_cuda_alloc(K, nq * 2 + 16), *wide = gaps16((size_t)N, (size_t)W);
    int r1 = krn_cuda_rmsnorm_backward_bf16(K, cd, 0, 0, NULL, dyd, 0, xd, 0, wd, rsd, R, HD);
    int r2 =
        krn_cuda_rmsnorm_backward_bf16(K, wide + c0, NH, W, NULL, dyd, 0, xd, 0, wd, rsd, R, HD);
    uint16_t *ch = down16(cd, nq), *wh = down16(wide, (size_t)N * W);
    size_t bad = krn_cuda_sync(K) != 0 ? 1 : placed_bad(wh, N, W, c0, ch, (size_t)NH * HD);
    TAP_OK(r1 == 0 && r2 == 0 && bad == 0,
           "qk-norm bwd bf16 %dx%dx%d placed at column %d of %d-wide rows: %zu elements differ "
           "from the contiguous output or touch the gaps",
           N, NH, HD, c0, W, bad);
    free(ch), free(wh), krn_cuda_dfree(K, cd), krn_cuda_dfree(K, wide), krn_cuda_dfree(K, rsd);

    trn_swiglu_forward(h, g, u, n);
    trn_rmsnorm_forward(y, rs, h, w, N, C, 1e-6f);
    float *gd = up(g, n * 4), *ud = up(u, n * 4);
    rsd = up(rs, (size_t)N * 4);
    uint16_t *gbd = krn_cuda_alloc(K, n * 2 + 16), *ubd = krn_cuda_alloc(K, n * 2 + 16);
    wide = gaps16((size_t)N, 2 * (size_t)C);
    r1 = krn_cuda_swiglu_rmsnorm_backward_bf16(K, gbd, ubd, 0, NULL, dyd, gd, ud, wd, rsd, N, C);
    r2 = krn_cuda_swiglu_rmsnorm_backward_bf16(K, wide, wide + C, 2 * C, NULL, dyd, gd, ud, wd, rsd,
                                               N, C);
    uint16_t *gh = down16(gbd, n), *uh = down16(ubd, n), *both = down16(wide, 2 * n);
    bad = krn_cuda_sync(K) != 0;
    for (size_t r = 0; !bad && r < (size_t)N; r++)
        for (size_t j = 0; j < (size_t)C; j++)
            bad +=
                (both[r * 2 * C + j] != gh[r * C + j]) + (both[r * 2 * C + C + j] != uh[r * C + j]);
    TAP_OK(r1 == 0 && r2 == 0 && bad == 0,
           "swiglu+rmsnorm bwd bf16 %dx%d as one [N][2C] dY: %zu of %zu differ from the separate "
           "outputs",
           N, C, bad, 2 * n);
    free(gh), free(uh), free(both);
    krn_cuda_dfree(K, gbd), krn_cuda_dfree(K, ubd), krn_cuda_dfree(K, wide);
    krn_cuda_dfree(K, gd), krn_cuda_dfree(K, ud), krn_cuda_dfree(K, rsd);

    for (int odd = 0; odd < 2; odd++) { /* C % 4 == 0: float4 loads; else one at a time */
        int Cc = C + odd, L = Cc + 12 + odd;
        size_t nc = (size_t)N * Cc;
        float *xf = hrand(nc, 100), *xfd = up(xf, nc * 4);
        uint16_t *ref = malloc(nc * 2 + 2);
        for (size_t i = 0; i < nc; i++)
            ref[i] = bf16_of(xf[i]);
        wide = gaps16((size_t)N, (size_t)L);
        krn_cuda_to_bf16_rows(K, wide + 4, L, xfd, N, Cc);
        uint16_t *wh2 = down16(wide, (size_t)N * L);
        bad = krn_cuda_sync(K) != 0 ? 1 : placed_bad(wh2, N, L, 4, ref, (size_t)Cc);
        TAP_OK(bad == 0, "bf16 row copy %dx%d into %d-wide rows: %zu elements wrong", N, Cc, L,
               bad);
        free(xf), free(ref), free(wh2), krn_cuda_dfree(K, xfd), krn_cuda_dfree(K, wide);
    }
    free(x), free(w), free(dy), free(rs), free(y), free(g), free(u), free(h);
    krn_cuda_dfree(K, xd), krn_cuda_dfree(K, wd), krn_cuda_dfree(K, dyd);
}

/* QK-norm + RoPE in one pass against the two kernels it replaces (krn_cuda_rmsnorm_forward,
 * krn_cuda_rope_forward_bf16; each checked against the CPU above): rstd, the normed rows and
 * the bf16 operands bit for bit, with and without the normed rows kept. */
static void t_qknorm_rope(int B, int T, int NH, int HD)
{
    size_t R = (size_t)B * T * NH, n = R * HD, nt = (size_t)T * (HD / 2);
    float *cs = malloc(nt * 4), *sn = malloc(nt * 4), *x = hrand(n, 3), *w = hrand(HD, 1);
    trn_rope_tables(cs, sn, T, HD, 1000000.0f);
    float *csd = up(cs, nt * 4), *snd = up(sn, nt * 4), *xd = up(x, n * 4), *wd = up(w, HD * 4);
    float *on1 = krn_cuda_alloc(K, n * 4), *on2 = krn_cuda_alloc(K, n * 4);
    float *rs1 = krn_cuda_alloc(K, R * 4), *rs2 = krn_cuda_alloc(K, R * 4),
          *rs3 = krn_cuda_alloc(K, R * 4);
    uint16_t *o1 = krn_cuda_alloc(K, n * 2), *o2 = krn_cuda_alloc(K, n * 2),
             *o3 = krn_cuda_alloc(K, n * 2);
    krn_cuda_rmsnorm_forward(K, on1, rs1, xd, wd, (int)R, HD, 1e-6f);
    krn_cuda_rope_forward_bf16(K, o1, on1, csd, snd, B, T, NH, HD);
    int r2 = krn_cuda_qknorm_rope_bf16(K, o2, on2, rs2, xd, wd, csd, snd, B, T, NH, HD, 1e-6f);
    int r3 = krn_cuda_qknorm_rope_bf16(K, o3, NULL, rs3, xd, wd, csd, snd, B, T, NH, HD, 1e-6f);
    float *a1 = malloc(n * 4), *a2 = malloc(n * 4), *s1 = malloc(R * 4), *s2 = malloc(R * 4),
          *s3 = malloc(R * 4);
    krn_cuda_d2h(K, a1, on1, n * 4), krn_cuda_d2h(K, a2, on2, n * 4);
    krn_cuda_d2h(K, s1, rs1, R * 4), krn_cuda_d2h(K, s2, rs2, R * 4),
        krn_cuda_d2h(K, s3, rs3, R * 4);
    uint16_t *b1 = down16(o1, n), *b2 = down16(o2, n), *b3 = down16(o3, n);
    size_t bo = 0, bn = 0, br = 0;
    int st = krn_cuda_sync(K);
    for (size_t i = 0; !st && i < n; i++) {
        bo += (b2[i] != b1[i]) + (b3[i] != b1[i]);
        bn += memcmp(&a1[i], &a2[i], 4) != 0;
    }
    for (size_t i = 0; !st && i < R; i++)
        br += (memcmp(&s1[i], &s2[i], 4) != 0) + (memcmp(&s1[i], &s3[i], 4) != 0);
    TAP_OK(!st && r2 == 0 && r3 == 0 && bo == 0 && bn == 0 && br == 0,
           "qk-norm+rope %dx%dx%dx%d fused vs rmsnorm then rope: %zu bf16 operands, %zu normed "
           "values, %zu rstd differ",
           B, T, NH, HD, bo, bn, br);
    int bad_hd = krn_cuda_qknorm_rope_bf16(K, o3, NULL, rs3, xd, wd, csd, snd, B, T, NH, 96, 1e-6f);
    TAP_OK(bad_hd == KRN_CUDA_EINVAL && krn_cuda_sync(K) == 0,
           "qk-norm+rope with head dim 96: EINVAL (%d), nothing launched", bad_hd);
    free(cs), free(sn), free(x), free(w), free(a1), free(a2), free(s1), free(s2), free(s3);
    free(b1), free(b2), free(b3);
    void *dev[] = {csd, snd, xd, wd, on1, on2, rs1, rs2, rs3, o1, o2, o3};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        krn_cuda_dfree(K, dev[i]);
}

/* Random INT8 codes x8 [N][C] and ternary w8 [OC][C] with row scales, and their exact sums
 * acc [N][OC] on the host (for the INT8 products' fused consumers). */
struct i8prod {
    int8_t *x8, *w8;
    float *sx;
    int32_t *acc;
};

static struct i8prod i8prod_make(int N, int C, int OC)
{
    struct i8prod p = {malloc((size_t)N * C), malloc((size_t)OC * C), malloc((size_t)N * 4),
                       malloc((size_t)N * OC * 4)};
    for (size_t i = 0; i < (size_t)N * C; i++)
        p.x8[i] = (int8_t)(int)floorf(frand() * 128.0f);
    for (size_t i = 0; i < (size_t)OC * C; i++)
        p.w8[i] = (int8_t)(int)lrintf(frand());
    for (int r = 0; r < N; r++) {
        p.sx[r] = (1.5f + frand()) / 127.0f;
        for (int o = 0; o < OC; o++) {
            long long a = 0;
            for (int k = 0; k < C; k++)
                a += (long long)p.x8[(size_t)r * C + k] * p.w8[(size_t)o * C + k];
            p.acc[(size_t)r * OC + o] = (int32_t)a;
        }
    }
    return p;
}

static void i8prod_free(struct i8prod *p)
{
    free(p->x8), free(p->w8), free(p->sx), free(p->acc);
}

/* The o / down product folded into the next RMSNorm + quantizer: krn_cuda_qlinear_sums then
 * krn_cuda_res_rmsnorm_aquant against krn_cuda_qlinear_forward (with the residual) then
 * krn_cuda_rmsnorm_aquant: x written over the sums = the host's res + (float)acc sx sw and the
 * scaling pass's x, codes, bf16 values, scales and rstd the two passes', bit for bit. off
 * shifts x and res by a float (the fallback's two passes). */
static void t_res_norm(int N, int C, int OC, int off)
{
    uint64_t keep = rng;
    rng = 0x2545f4914f6cdd1dull + (uint64_t)N * 131 + (uint64_t)OC * 7 + (uint64_t)off;
    char nm[64];
    snprintf(nm, sizeof(nm), "residual+norm int8 %dx%d->%d%s", N, C, OC, off ? " unaligned" : "");
    struct i8prod p = i8prod_make(N, C, OC);
    size_t n = (size_t)N * OC;
    float sw = 0.0173f, *res = hrand(n, 2), *w = hrand(OC, 1), *xr = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        xr[i] = res[i] + (float)p.acc[i] * p.sx[i / OC] * sw;
    int8_t *x8d = up(p.x8, (size_t)N * C), *w8d = up(p.w8, (size_t)OC * C);
    float *sxd = up(p.sx, (size_t)N * 4), *swd = up(&sw, 4), *wd = up(w, (size_t)OC * 4);
    float *resd = krn_cuda_alloc(K, (n + 1) * 4), *io[2];
    krn_cuda_h2d(K, resd + off, res, n * 4);
    int8_t *o8[2];
    uint16_t *ob[2];
    float *osx[2], *ors[2];
    for (int i = 0; i < 2; i++) {
        io[i] = krn_cuda_alloc(K, (n + 1) * 4);
        o8[i] = krn_cuda_alloc(K, n + 16), ob[i] = krn_cuda_alloc(K, n * 2 + 16);
        osx[i] = krn_cuda_alloc(K, (size_t)N * 4), ors[i] = krn_cuda_alloc(K, (size_t)N * 4);
    }
    krn_cuda_qlinear_forward(K, io[1] + off, resd + off, x8d, sxd, w8d, swd, N, C, OC);
    int r1 =
        krn_cuda_rmsnorm_aquant(K, o8[1], ob[1], osx[1], ors[1], io[1] + off, wd, N, OC, 1e-6f);
    krn_cuda_qlinear_sums(K, (int32_t *)(io[0] + off), x8d, w8d, N, C, OC);
    int r0 = krn_cuda_res_rmsnorm_aquant(K, o8[0], ob[0], osx[0], ors[0], io[0] + off, resd + off,
                                         sxd, swd, wd, N, OC, 1e-6f);
    size_t hb = 7 * n + 8 * (size_t)N;
    char *h[2] = {malloc(hb), malloc(hb)};
    for (int i = 0; i < 2; i++) {
        krn_cuda_d2h(K, h[i], io[i] + off, n * 4);
        krn_cuda_d2h(K, h[i] + 4 * n, o8[i], n);
        krn_cuda_d2h(K, h[i] + 5 * n, ob[i], n * 2);
        krn_cuda_d2h(K, h[i] + 7 * n, osx[i], (size_t)N * 4);
        krn_cuda_d2h(K, h[i] + 7 * n + (size_t)N * 4, ors[i], (size_t)N * 4);
    }
    int st = krn_cuda_sync(K);
    TAP_OK(!st && r0 == 0 && r1 == 0 && !memcmp(h[0], xr, n * 4),
           "%s: x written over the sums = res + acc sx sw on the host, bit for bit (rc %d %d, "
           "cuda %d)",
           nm, r0, r1, st);
    TAP_OK(
        !st && !memcmp(h[0], h[1], hb),
        "%s: x, codes, bf16 values, scales, rstd = the scaling pass then the norm's, bit for bit",
        nm);
    int r2 = krn_cuda_res_rmsnorm_aquant(K, o8[0], ob[0], osx[0], ors[0], io[0], resd, sxd, swd, wd,
                                         1, KRN_CUDA_NORM_MAX + 4, 1e-6f);
    TAP_OK(r2 == KRN_CUDA_EINVAL && krn_cuda_sync(K) == 0,
           "%s: rows wider than KRN_CUDA_NORM_MAX: EINVAL (%d), nothing launched", nm, r2);
    for (int i = 0; i < 2; i++) {
        krn_cuda_dfree(K, io[i]), krn_cuda_dfree(K, o8[i]), krn_cuda_dfree(K, ob[i]);
        krn_cuda_dfree(K, osx[i]), krn_cuda_dfree(K, ors[i]);
        free(h[i]);
    }
    void *dev[] = {x8d, w8d, sxd, swd, wd, resd};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        krn_cuda_dfree(K, dev[i]);
    i8prod_free(&p);
    free(res), free(w), free(xr);
    rng = keep;
}

/* q|k|v as one INT8 product and krn_cuda_qkv_i32 from its sums: q and k (bf16) = the host's
 * bf16 of (float)acc sx sw, bit for bit; their bf16 operands, rstd and normed rows =
 * krn_cuda_qknorm_rope_bf16's from those q and k's values, bit for bit; vb = the host's bf16 of
 * the scaled v (and v in fp32 when asked); without the states the same operands. H the
 * product's input width. */
static void t_qkv_i8(int B, int T, int NH, int KVH, int HD, int H)
{
    uint64_t keep = rng;
    rng = 0x9fb21c651e98df25ull + (uint64_t)NH * 17 + (uint64_t)HD * 3 + (uint64_t)T;
    char nm[80];
    snprintf(nm, sizeof(nm), "qkv int8 %dx%d heads %d/%d x %d", B, T, NH, KVH, HD);
    int N = B * T, QD = NH * HD, KD = KVH * HD, W = QD + 2 * KD;
    struct i8prod p = i8prod_make(N, H, W);
    float sw[3] = {0.011f, 0.023f, 0.037f};
    size_t nq = (size_t)N * QD, nk = (size_t)N * KD, nt = (size_t)T * (HD / 2);
    float *hq = malloc(nq * 4), *hk = malloc(nk * 4), *hv = malloc(nk * 4);
    uint16_t *hvb = malloc(nk * 2), *hq16 = malloc(nq * 2), *hk16 = malloc(nk * 2);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < W; j++) {
            int part = j < QD        ? 0
                       : j < QD + KD ? 1
                                     : 2,
                col = j - (part ? QD + (part - 1) * KD : 0);
            float y = (float)p.acc[(size_t)r * W + j] * p.sx[r] * sw[part];
            size_t at = (size_t)r * (part ? KD : QD) + col;
            uint16_t *d16 = part == 0 ? hq16 : part == 1 ? hk16 : hvb;
            d16[at] = bf16_of(y);
            (part == 0 ? hq : part == 1 ? hk : hv)[at] = part == 2 ? y : bf16_val(d16[at]);
        }
    float *cs = malloc(nt * 4), *sn = malloc(nt * 4), *wq = hrand(HD, 1), *wk = hrand(HD, 1);
    trn_rope_tables(cs, sn, T, HD, 1000000.0f);
    int8_t *x8d = up(p.x8, (size_t)N * H), *w8d = up(p.w8, (size_t)W * H);
    float *sxd = up(p.sx, (size_t)N * 4), *swd = up(sw, 12), *csd = up(cs, nt * 4),
          *snd = up(sn, nt * 4), *wqd = up(wq, HD * 4), *wkd = up(wk, HD * 4);
    float *hqd = up(hq, nq * 4), *hkd = up(hk, nk * 4);
    int32_t *sum = krn_cuda_alloc(K, (size_t)N * W * 4);
    krn_cuda_qlinear_sums(K, sum, x8d, w8d, N, H, W);
    /* the reference: the fused QK-norm + RoPE kernel on the host's q and k */
    float *rf[4]; /* qn, kn, rq, rk */
    uint16_t *rb[2];
    size_t fn[4] = {nq, nk, (size_t)N * NH, (size_t)N * KVH};
    for (int i = 0; i < 4; i++)
        rf[i] = krn_cuda_alloc(K, fn[i] * 4);
    rb[0] = krn_cuda_alloc(K, nq * 2), rb[1] = krn_cuda_alloc(K, nk * 2);
    krn_cuda_qknorm_rope_bf16(K, rb[0], rf[0], rf[2], hqd, wqd, csd, snd, B, T, NH, HD, 1e-6f);
    krn_cuda_qknorm_rope_bf16(K, rb[1], rf[1], rf[3], hkd, wkd, csd, snd, B, T, KVH, HD, 1e-6f);
    int ok = 1, rc[2];
    for (int states = 1; states >= 0; states--) {
        float *of[7]; /* q, k (bf16), v, qn, kn, rq, rk */
        size_t on[7] = {nq, nk, nk, nq, nk, (size_t)N * NH, (size_t)N * KVH};
        uint16_t *ob[3] = {krn_cuda_alloc(K, nq * 2), krn_cuda_alloc(K, nk * 2),
                           krn_cuda_alloc(K, nk * 2)};
        for (int i = 0; i < 7; i++)
            of[i] = krn_cuda_alloc(K, on[i] * 4);
        struct krn_cuda_qkv a = {.sum = sum,
                                 .sx = sxd,
                                 .swq = swd,
                                 .swk = swd + 1,
                                 .swv = swd + 2,
                                 .q = (uint16_t *)of[0],
                                 .k = (uint16_t *)of[1],
                                 .v = states ? of[2] : NULL,
                                 .qn = states ? of[3] : NULL,
                                 .kn = states ? of[4] : NULL,
                                 .rq = of[5],
                                 .rk = of[6],
                                 .qb = ob[0],
                                 .kb = ob[1],
                                 .vb = ob[2],
                                 .wq = wqd,
                                 .wk = wkd,
                                 .cs = csd,
                                 .sn = snd};
        rc[states] = krn_cuda_qkv_i32(K, &a, B, T, NH, KVH, HD, 1e-6f);
        /* device outputs against: the host (q, k, v, vb), the reference kernel (the rest) */
        const void *want[10] = {hq16, hk16, hv, NULL, NULL, NULL, NULL, NULL, NULL, hvb};
        const void *wantd[10] = {NULL, NULL, NULL, rf[0], rf[1], rf[2], rf[3], rb[0], rb[1], NULL};
        const void *got[10] = {of[0], of[1], of[2], of[3], of[4],
                               of[5], of[6], ob[0], ob[1], ob[2]};
        size_t bytes[10] = {nq * 2,    nk * 2,    nk * 4, nq * 4, nk * 4,
                            fn[2] * 4, fn[3] * 4, nq * 2, nk * 2, nk * 2};
        for (int i = 0; i < 10; i++) {
            if (!states && (i == 2 || i == 3 || i == 4))
                continue; /* not written without the states */
            char *g = malloc(bytes[i]), *r = want[i] ? NULL : malloc(bytes[i]);
            krn_cuda_d2h(K, g, got[i], bytes[i]);
            if (r)
                krn_cuda_d2h(K, r, wantd[i], bytes[i]);
            int st = krn_cuda_sync(K);
            int same = !st && !memcmp(g, r ? r : want[i], bytes[i]);
            if (!same)
                fprintf(stderr, "# %s states %d: output %d differs (cuda %d)\n", nm, states, i, st);
            ok &= same;
            free(g), free(r);
        }
        for (int i = 0; i < 7; i++)
            krn_cuda_dfree(K, of[i]);
        for (int i = 0; i < 3; i++)
            krn_cuda_dfree(K, ob[i]);
    }
    TAP_OK(ok && rc[0] == 0 && rc[1] == 0,
           "%s: q, k, v = the host's scaled sums; operands, rstd, normed rows = the QK-norm + "
           "RoPE kernel's on them, bit for bit, with and without the states (rc %d %d)",
           nm, rc[1], rc[0]);
    struct krn_cuda_qkv bad = {.sum = sum, .q = (uint16_t *)hqd, .k = (uint16_t *)hkd};
    int r96 = krn_cuda_qkv_i32(K, &bad, B, T, NH, KVH, 96, 1e-6f);
    bad.k = NULL;
    int rnk = krn_cuda_qkv_i32(K, &bad, B, T, NH, KVH, HD, 1e-6f);
    TAP_OK(r96 == KRN_CUDA_EINVAL && rnk == KRN_CUDA_EINVAL && krn_cuda_sync(K) == 0,
           "%s: head dim 96, no k: EINVAL (%d, %d), nothing launched", nm, r96, rnk);
    for (int i = 0; i < 4; i++)
        krn_cuda_dfree(K, rf[i]);
    krn_cuda_dfree(K, rb[0]), krn_cuda_dfree(K, rb[1]);
    void *dev[] = {x8d, w8d, sxd, swd, csd, snd, wqd, wkd, hqd, hkd, sum};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        krn_cuda_dfree(K, dev[i]);
    i8prod_free(&p);
    free(hq), free(hk), free(hv), free(hvb), free(hq16), free(hk16), free(cs), free(sn), free(wq),
        free(wk);
    rng = keep;
}

static void t_adamw(size_t n)
{
    float *p = hrand(n, 1), *g = hrand(n, 1), *m = hrand(n, 0.1f), *v = hrand(n, 0.1f);
    for (size_t i = 0; i < n; i++)
        v[i] = fabsf(v[i]);
    float *pr = dup(p, n), *mr = dup(m, n), *vr = dup(v, n);
    float *pd = up(p, n * 4), *gd = up(g, n * 4), *md = up(m, n * 4), *vd = up(v, n * 4);
    double nc = 0;
    for (size_t i = 0; i < n; i++)
        nc += (double)g[i] * g[i];
    cmp_scalar("grad norm^2", krn_cuda_sumsq(K, gd, n), nc, 1e-9);
    float cs = 0.5f, lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, wd = 0.1f, bc1 = 1 - powf(b1, 3.0f),
          bc2 = 1 - powf(b2, 3.0f);
    for (size_t i = 0; i < n; i++) { /* step.c's update, verbatim */
        float gi = g[i] * cs;
        mr[i] = b1 * mr[i] + (1.0f - b1) * gi;
        vr[i] = b2 * vr[i] + (1.0f - b2) * gi * gi;
        pr[i] -= lr * wd * pr[i];
        pr[i] -= lr * (mr[i] / bc1) / (sqrtf(vr[i] / bc2) + 1e-8f);
    }
    krn_cuda_adamw(K, pd, gd, md, vd, n, lr, b1, b2, 1e-8f, wd, bc1, bc2, cs);
    cmp("adamw params", pd, pr, n, 1e-6);
    cmp("adamw m", md, mr, n, 1e-6);
    cmp("adamw v", vd, vr, n, 1e-6);
    free(p), free(g), free(m), free(v), free(pr), free(mr), free(vr);
    krn_cuda_dfree(K, pd), krn_cuda_dfree(K, gd), krn_cuda_dfree(K, md), krn_cuda_dfree(K, vd);
}

/* The weight quantizer fed by the optimizer: krn_cuda_adamw_abs updates p, m, v bit for bit as
 * krn_cuda_adamw and sums |p| (against the CPU's double sum); krn_cuda_wquant_narrow_sum's codes,
 * bf16 values and scale from that sum equal the CPU quantizer's from the same sum and the
 * reduce-fed krn_cuda_wquant_narrow's (off: floats the arrays are shifted by, so that the scalar
 * kernels run) */
static void t_adamw_wquant(size_t n, int off)
{
    char nm[64];
    snprintf(nm, sizeof(nm), "adamw + wquant %zu%s", n, off ? " unaligned" : "");
    float *p = hrand(n, 1), *g = hrand(n, 1), *m = hrand(n, 0.1f), *v = hrand(n, 0.1f);
    for (size_t i = 0; i < n; i++)
        v[i] = fabsf(v[i]);
    float *d[2][4];
    for (int k = 0; k < 2; k++) {
        d[k][0] = up_off(p, n, off), d[k][1] = up_off(g, n, off);
        d[k][2] = up_off(m, n, off), d[k][3] = up_off(v, n, off);
    }
    double *sad = krn_cuda_alloc(K, 8), sa = -1.0, ref = 0.0;
    krn_cuda_zero(K, sad, 8);
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, bc1 = 1 - powf(b1, 2.0f), bc2 = 1 - powf(b2, 2.0f);
    krn_cuda_adamw(K, d[0][0], d[0][1], d[0][2], d[0][3], n, lr, b1, b2, 1e-8f, 0.1f, bc1, bc2,
                   0.7f);
    krn_cuda_adamw_abs(K, d[1][0], d[1][1], d[1][2], d[1][3], n, lr, b1, b2, 1e-8f, 0.1f, bc1, bc2,
                       0.7f, sad);
    float *h[2][3];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++) {
            h[k][j] = malloc(n * 4);
            krn_cuda_d2h(K, h[k][j], d[k][j == 0 ? 0 : j + 1], n * 4);
        }
    krn_cuda_d2h(K, &sa, sad, 8);
    int st = krn_cuda_sync(K);
    for (size_t i = 0; i < n; i++)
        ref += fabs((double)h[1][0][i]);
    TAP_OK(!st && !memcmp(h[0][0], h[1][0], n * 4) && !memcmp(h[0][1], h[1][1], n * 4) &&
               !memcmp(h[0][2], h[1][2], n * 4),
           "%s: p, m, v bit for bit as krn_cuda_adamw (cuda %d)", nm, st);
    cmp_scalar(nm, sa, ref, 1e-12);
    /* the quantizer from the sum, from its own reduce, and the CPU's from the sum */
    int8_t *w8d[2], *w8 = malloc(2 * n + 2);
    uint16_t *wbd[2], *wb = malloc(4 * n + 4);
    float *swd[2], sw[2];
    for (int k = 0; k < 2; k++) {
        w8d[k] = krn_cuda_alloc(K, n + 16), wbd[k] = krn_cuda_alloc(K, 2 * n + 16);
        swd[k] = krn_cuda_alloc(K, 4);
    }
    krn_cuda_wquant_narrow(K, w8d[0], wbd[0], swd[0], d[0][0], n);
    krn_cuda_wquant_narrow_sum(K, w8d[1], wbd[1], swd[1], d[1][0], n, sad);
    for (int k = 0; k < 2; k++) {
        krn_cuda_d2h(K, w8 + k * n, w8d[k], n);
        krn_cuda_d2h(K, wb + k * n, wbd[k], 2 * n);
        krn_cuda_d2h(K, sw + k, swd[k], 4);
    }
    st = krn_cuda_sync(K);
    float dd = (float)(sa / (double)n), inv = 1.0f / (dd + 1e-5f);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float r = rintf(h[1][0][i] * inv);
        r = r > 1.0f ? 1.0f : (r < -1.0f ? -1.0f : r);
        bad += w8[n + i] != (int8_t)r || wb[n + i] != bf16_of(r * dd);
    }
    TAP_OK(!st && bad == 0 && sw[1] == dd,
           "%s: codes and bf16 values from the summed absmean = the CPU's (%zu of %zu differ; "
           "scale %.9g, cpu %.9g)",
           nm, bad, n, (double)sw[1], (double)dd);
    TAP_OK(!memcmp(w8, w8 + n, n) && !memcmp(wb, wb + n, 2 * n) && sw[0] == sw[1],
           "%s: = the quantizer that sums |w| itself (scales %.9g, %.9g)", nm, (double)sw[0],
           (double)sw[1]);
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 4; j++)
            dfree_off(d[k][j], off);
        for (int j = 0; j < 3; j++)
            free(h[k][j]);
        krn_cuda_dfree(K, w8d[k]), krn_cuda_dfree(K, wbd[k]), krn_cuda_dfree(K, swd[k]);
    }
    krn_cuda_dfree(K, sad);
    free(p), free(g), free(m), free(v), free(w8), free(wb);
}

int main(void)
{
    char why[256], err[KRN_CUDA_ERR_LEN];
    if (krn_cuda_device_count(why, sizeof(why)) == 0) {
        TAP_SKIP("no GPU: %s", why);
        return tap_done();
    }
    if (krn_cuda_create(0, &K, err)) {
        TAP_OK(0, "cuda:0 opens: %s", err);
        return tap_done();
    }
    t_quant(17, 257);
    t_quant(1, 4095);
    t_embed(17, 40, 97);
    t_linear(17, 40, 15, 0);
    t_linear(257, 1024, 3072, 0);
    t_linear(257, 1024, 3072, 1);
    t_rms_aquant(17, 1024);
    t_rms_aquant(15, 3072);
    t_rms_aquant(9, 300);
    t_rms_aquant(3, 5000);  /* the row in shared memory */
    t_rms_aquant(7, 1022);  /* not float4-aligned: the row in registers, 4 values per thread */
    t_rms_aquant(3, 13001); /* wider than the shared row: 16 values per thread */
    t_to_bf16(4095);
    t_to_bf16(4096);
    t_qlinear(17, 40, 15, 0, 0);
    t_qlinear(15, 30, 17, 1, 1); /* C not a multiple of 4, unaligned codes */
    t_qlinear(1, 64, 64, 1, 0);
    t_qlinear(257, 1024, 3072, 1, 0);
    t_qlinear(64, 3072, 1024, 0, 0);
    t_rmsnorm(17, 40, 0);
    t_rmsnorm(15, 4095, 0);
    t_rmsnorm(33, 8, 0);
    t_rmsnorm(1003, 128, 0); /* QK-norm rows: warp groups */
    t_rmsnorm(1003, 128, 1);
    t_rmsnorm(9, 300, 0);
    t_rmsnorm(77, 256, 0);
    t_rmsnorm(5, 257, 0);
    t_rmsnorm(4096, 1024, 0); /* the model's norms: fused dW over many blocks */
    t_rmsnorm(4096, 1024, 1);
    t_rmsnorm(512, 3072, 0);
    t_rmsnorm(64, 2048, 0);
    t_rmsnorm(65536, 128, 0); /* the QK-norm's rows of a 4096-token micro-batch */
    t_rmsnorm(5, 6000, 0);    /* four float4 per thread, <= 512 threads */
    t_rmsnorm(5, 5001, 0);    /* sixteen floats per thread, <= 512 threads */
    t_rmsnorm(3, 12000, 0);   /* four float4 per thread, 1024 threads */
    t_rmsnorm(2, 9001, 0);    /* sixteen floats per thread, 1024 threads */
    t_rmsnorm(2, 20000, 0);   /* wider than the fused kernel: the two-pass fallback */
    t_swiglu_norm_q(17, 3072);
    t_swiglu_norm_q(9, 300);
    t_swiglu_norm_q(3, 5000);
    t_swiglu_norm_q(5, 1030);
    t_swiglu_norm_q(2, 12500);
    t_swiglu_norm_q(512, 3072);
    t_swiglu_norm_bwd(17, 3072, 0);
    t_swiglu_norm_bwd(17, 3072, 1);
    t_swiglu_norm_bwd(9, 300, 0);
    t_swiglu_norm_bwd(33, 128, 0); /* warp groups */
    t_swiglu_norm_bwd(33, 40, 1);
    t_swiglu_norm_bwd(512, 3072, 0);
    t_swiglu_norm_bwd(3, 9728, 0); /* a larger model's FFN: 1024 threads */
    t_swiglu_norm_bwd(3, 6000, 1);
    t_gu16(512, 3072, 0);
    t_gu16(7, 6144, 0);
    t_gu16(5, 1000, 1);
    t_swiglu_norm_wide();
    t_rope(2, 15, 5, 8);
    t_rope(1, 17, 2, 128);
    t_attention(2, 15, 5, 1, 8);
    t_attention(3, 17, 4, 2, 16);
    t_attention(2, 130, 16, 8, 128);
    t_attention(2, 64, 6, 2, 32); /* groups of 3: three calls per key/value gradient */
    t_flash(1, 1, 4, 1, 1.0f, 0); /* T 1 */
    t_flash(2, 15, 4, 1, 3.0f, 0);
    t_flash(3, 64, 2, 2, 3.0f, 0);   /* exactly one tile, no GQA */
    t_flash(2, 130, 16, 8, 3.0f, 0); /* the model's heads, a tail of 2 */
    t_flash(1, 200, 4, 1, 8.0f, 0);  /* groups of 4, peaked scores */
    t_flash(2, 97, 6, 2, 3.0f, 1);   /* groups of 3, unaligned tensors */
    t_flash(1, 512, 16, 8, 3.0f, 0); /* the benchmark's shape per sequence */
    t_flash_norm(2, 130, 16, 8);     /* the model's heads, a tail of 2 */
    t_flash_norm(1, 64, 4, 2);       /* 512 columns */
    t_flash_bad();
    t_swiglu(17 * 72);
    t_swiglu(4095);
    t_losses(17, 97);
    t_losses(15, 4095);
    t_relation(2, 15, 40, 40, 1, TRN_REL_COSINE);
    t_relation(3, 17, 64, 32, 4, TRN_REL_COSINE);
    t_relation(3, 17, 64, 32, 4, TRN_REL_SCALED);
    t_relation(2, 130, 2048, 1024, 8, TRN_REL_COSINE);
    t_head_loss(17, 97, 1, 0, 0);
    t_head_loss(15, 4096, 1, 0, 0);
    t_head_loss(15, 4096, 0, 0, 0);
    t_head_loss(9, 4096, 1, 1, 0);
    t_head_loss(6, 151936, 1, 0, 0); /* Qwen3's vocabulary */
    t_head_loss(6, 151936, 0, 0, 0);
    t_head_loss(15, 4096, 1, 0, 1); /* bf16 logits */
    t_head_loss(9, 4096, 1, 1, 1);
    t_head_loss(6, 151936, 1, 0, 1);
    t_head_loss(6, 151936, 0, 0, 1);
    t_adamw(1);
    t_adamw(100003);
    t_adamw(100004); /* four at a time */
    t_gu_i8(7, 64, 6144);
    t_gu_i8(40, 1024, 3072); /* Qwen3-0.6B's widths */
    t_gu_i8(5, 36, 1000);
    t_adamw_wquant(100004, 0); /* four at a time */
    t_adamw_wquant(100004, 1);
    t_adamw_wquant(4099, 0);
    t_placed(37, 16, 128, 3072); /* Qwen3's q heads, its FFN width */
    t_placed(5, 3, 64, 40);
    t_qknorm_rope(2, 37, 16, 128);
    t_qknorm_rope(1, 9, 3, 64);
    t_qknorm_rope(2, 5, 2, 256);
    t_res_norm(37, 96, 2048, 0);     /* o_proj's width into the hidden size */
    t_res_norm(5, 64, 1000, 0);      /* rows of 1000 */
    t_res_norm(9, 40, 516, 1);       /* unaligned: the two passes */
    t_qkv_i8(2, 37, 16, 8, 128, 96); /* Qwen3's heads */
    t_qkv_i8(1, 9, 3, 1, 64, 40);
    t_qkv_i8(1, 5, 2, 2, 256, 32);
    TAP_OK(krn_cuda_sync(K) == 0, "no sticky cuda error (%s)", krn_cuda_errmsg(K));
    krn_cuda_free(K);
    return tap_done();
}
