/*
 * bench/kernels.c — `bitdistill bench kernels`: throughput of the ternary and LM-head kernels at
 * Qwen3-0.6B shapes, with the two yardsticks measured in the same run:
 *   (a) STREAM triad a[i] = b[i] + s*c[i] on arrays far beyond the LLC (bytes counted the STREAM
 *       way: 3 x 4 bytes per element, best of the repetitions), on the same thread pool;
 *   (b) OpenBLAS sgemm on the same shape in fp32 (C[128][M] = X[128][K] . W[M][K]^T), with
 *       OpenBLAS given the same number of threads.
 * GEMV (decode, 1 token): "hot" = the same matrix again and again (fits in cache), "cold" =
 * a rotation over enough copies to exceed --cold-mb (default 4 x LLC), as a decode step that
 * streams every layer; GB/s counts packed weight bytes. Ratio cold/STREAM is the issue's
 * ">= 85% of STREAM" target. GEMM(N tokens) time includes the activation quantization; GOPS =
 * 2*M*K*N / time; "x sgemm" = sgemm time / our time (target >= 5).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "kernels/blas.h"
#include "kernels/gemm.h"
#include "kernels/krn.h"
#include "kernels/pool.h"
#include "kernels/quant.h"

struct bk_opts {
    int threads[8];
    int nthreads;
    size_t tokens;   /* GEMM batch */
    double min_time; /* seconds per measurement */
    size_t cold_mb;  /* working set of the cold GEMV */
    int head;        /* include the 151936 x 1024 head */
    int sgemm;       /* include the OpenBLAS comparison */
};

struct bk_shape {
    const char *name;
    size_t m, k; /* M output rows x K inputs */
};

static const struct bk_shape SHAPES[] = {
    {"o/sq 1024x1024", 1024, 1024}, {"q    2048x1024", 2048, 1024}, {"k,v   512x1024", 512, 1024},
    {"gate 3072x1024", 3072, 1024}, {"down 1024x3072", 1024, 3072},
};

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

/* ---- measurements -------------------------------------------------------------------------- */

/* Best time of one call of fn over repetitions lasting >= min_time. */
#define TIME_BEST(min_time, best, stmt)                                                            \
    do {                                                                                           \
        stmt; /* warm-up */                                                                        \
        double tot_ = 0;                                                                           \
        (best) = 1e30;                                                                             \
        for (int r_ = 0; r_ < 3 || tot_ < (min_time); r_++) {                                      \
            double t0_ = bench_now();                                                              \
            stmt;                                                                                  \
            double dt_ = bench_now() - t0_;                                                        \
            tot_ += dt_;                                                                           \
            (best) = dt_ < (best) ? dt_ : (best);                                                  \
        }                                                                                          \
    } while (0)

static krn_i2 *make_i2(size_t m, size_t k)
{
    int8_t *c = malloc(m * k);
    if (!c)
        return NULL;
    for (size_t i = 0; i < m * k; i++)
        c[i] = (int8_t)((int)((rng = rng * 1664525u + 1013904223u) >> 16) % 3 - 1);
    krn_i2 *w = NULL;
    krn_i2_create_codes(c, m, k, 0.02f, &w);
    free(c);
    return w;
}

struct bk_result {
    double bytes, hot, cold, ncopy, gemm, sgemm; /* packed bytes; seconds per call */
};

/* OpenBLAS's threads keep spinning for a while after each sgemm and would steal the cores of
 * the kernel pool, so every sgemm of a round runs after all our measurements of that round. */
static void bench_sgemm(const struct bk_shape *s, const struct bk_opts *o, int nth,
                        struct bk_result *r)
{
    size_t m = s->m, k = s->k, n = o->tokens;
    float *wf = malloc(m * k * sizeof(float)), *x = malloc(n * k * sizeof(float)),
          *y = malloc(n * m * sizeof(float));
    r->sgemm = 0;
    if (wf && x && y) {
        for (size_t i = 0; i < m * k; i++)
            wf[i] = frand();
        for (size_t i = 0; i < n * k; i++)
            x[i] = frand();
        krn_blas_set_threads(nth);
        TIME_BEST(o->min_time, r->sgemm, krn_sgemm(1, n, m, k, 1.0f, x, k, wf, k, 0.0f, y, m));
    }
    free(wf);
    free(x);
    free(y);
}

static int bench_shape(const struct bk_shape *s, const struct bk_opts *o, krn_pool *pool,
                       struct bk_result *res)
{
    size_t m = s->m, k = s->k, n = o->tokens;
    krn_i2 *w = make_i2(m, k);
    krn_qact *a1 = NULL, *an = NULL;
    float *x = malloc(n * k * sizeof(float)), *y = malloc(n * m * sizeof(float));
    if (!w || !x || !y || krn_qact_create(1, k, &a1) || krn_qact_create(n, k, &an)) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n * k; i++)
        x[i] = frand();
    krn_qact_quantize(a1, x, 1, k);
    double bytes = (double)krn_i2_bytes(w), hot, cold, gemm;
    TIME_BEST(o->min_time, hot, krn_i2_gemm(w, a1, y, m, pool));

    /* cold: distinct copies of the packed bytes, wrapped without copying, past the LLC */
    size_t wb = krn_i2_bytes(w), ncopy = (o->cold_mb << 20) / wb + 1;
    uint8_t *big = aligned_alloc(64, ncopy * wb);
    krn_i2 **cp = calloc(ncopy, sizeof(*cp));
    if (!big || !cp) {
        fprintf(stderr, "bench: out of memory for the cold set\n");
        return 1;
    }
    for (size_t i = 0; i < ncopy; i++) {
        memcpy(big + i * wb, krn_i2_data(w), wb);
        krn_i2_create_packed(big + i * wb, m, k, 0.02f, &cp[i]);
    }
    TIME_BEST(o->min_time, cold,
              for (size_t i_ = 0; i_ < ncopy; i_++) krn_i2_gemm(cp[i_], a1, y, m, pool));
    for (size_t i = 0; i < ncopy; i++)
        krn_i2_free(cp[i]);
    free(cp);
    free(big);

    TIME_BEST(o->min_time, gemm, krn_qact_quantize(an, x, n, k); krn_i2_gemm(w, an, y, m, pool));
    res->bytes = bytes;
    res->hot = hot;
    res->cold = cold;
    res->ncopy = (double)ncopy;
    res->gemm = gemm;
    krn_i2_free(w);
    krn_qact_free(a1);
    krn_qact_free(an);
    free(x);
    free(y);
    return 0;
}

/* A decode step's ternary part at Qwen3-0.6B shape: per layer q,k,v (one region via
 * krn_i2_gemm_multi), o, gate+up (one region), down; 28 layers or as many as exceed cold_mb. */
static int bench_decode(const struct bk_opts *o, krn_pool *pool, double stream)
{
    static const size_t M[7] = {2048, 512, 512, 1024, 3072, 3072, 1024};
    static const size_t K[7] = {1024, 1024, 1024, 2048, 1024, 1024, 3072};
    krn_i2 *tmpl[7] = {0};
    size_t layer_bytes = 0;
    for (int i = 0; i < 7; i++) {
        tmpl[i] = make_i2(M[i], K[i]);
        if (!tmpl[i])
            return 1;
        layer_bytes += krn_i2_bytes(tmpl[i]);
    }
    size_t nl = (o->cold_mb << 20) / layer_bytes + 1;
    nl = nl < 28 ? 28 : nl;
    uint8_t *big = aligned_alloc(64, nl * layer_bytes);
    krn_i2 **w = calloc(nl * 7, sizeof(*w));
    krn_qact *a1 = NULL, *a2 = NULL, *a3 = NULL;
    float *x = malloc(3072 * sizeof(float)), *y = malloc(4 * 3072 * sizeof(float));
    if (!big || !w || !x || !y || krn_qact_create(1, 1024, &a1) || krn_qact_create(1, 2048, &a2) ||
        krn_qact_create(1, 3072, &a3)) {
        fprintf(stderr, "bench: out of memory for the decode step\n");
        return 1;
    }
    for (size_t i = 0; i < 3072; i++)
        x[i] = frand();
    krn_qact_quantize(a1, x, 1, 1024);
    krn_qact_quantize(a2, x, 1, 2048);
    krn_qact_quantize(a3, x, 1, 3072);
    size_t off = 0;
    for (size_t l = 0; l < nl; l++)
        for (int i = 0; i < 7; i++) {
            size_t b = krn_i2_bytes(tmpl[i]);
            memcpy(big + off, krn_i2_data(tmpl[i]), b);
            krn_i2_create_packed(big + off, M[i], K[i], 0.02f, &w[l * 7 + i]);
            off += b;
        }
    float *yq[3] = {y, y + 3072, y + 2 * 3072}, *ygu[2] = {y, y + 3072};
    size_t ldq[3] = {2048, 512, 512}, ldgu[2] = {3072, 3072};
    double t;
    TIME_BEST(
        o->min_time, t, for (size_t l = 0; l < nl; l++) {
            krn_i2 **lw = w + l * 7;
            krn_i2_gemm_multi((const krn_i2 *const *)lw, 3, a1, yq, ldq, pool);
            krn_i2_gemm(lw[3], a2, y, 1024, pool);
            krn_i2_gemm_multi((const krn_i2 *const *)lw + 4, 2, a1, ygu, ldgu, pool);
            krn_i2_gemm(lw[6], a3, y, 1024, pool);
        });
    double gbs = (double)(nl * layer_bytes) / t / 1e9;
    printf("  decode step, %zu layers x 7 ternary GEMV (%.0f MiB, 4 regions/layer): %.1f GB/s = "
           "%.0f%% of STREAM; %.3f ms per 28 layers\n",
           nl, nl * layer_bytes / 1048576.0, gbs, 100.0 * gbs / stream, t / nl * 28 * 1e3);
    for (size_t i = 0; i < nl * 7; i++)
        krn_i2_free(w[i]);
    for (int i = 0; i < 7; i++)
        krn_i2_free(tmpl[i]);
    free(w);
    free(big);
    free(x);
    free(y);
    krn_qact_free(a1);
    krn_qact_free(a2);
    krn_qact_free(a3);
    return 0;
}

static void empty_region(void *arg, int ith, int nth)
{
    (void)arg, (void)ith, (void)nth;
}

/* Let OpenBLAS's spinning threads (THREAD_TIMEOUT, ~2^28 cycles by default) go to sleep. */
static void settle(void)
{
    usleep(300000);
}

static int bench_head(const struct bk_opts *o, krn_pool *pool, int nth, double stream,
                      const float *wf, krn_q8 *h8, krn_q4 *h4)
{
    size_t m = krn_q8_rows(h8), k = krn_q8_cols(h8), n = o->tokens;
    krn_qact *a1 = NULL, *an = NULL;
    float *x = malloc(n * k * sizeof(float)), *y = malloc(n * m * sizeof(float));
    if (!x || !y || krn_qact_create(1, k, &a1) || krn_qact_create(n, k, &an)) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n * k; i++)
        x[i] = frand();
    krn_qact_quantize(a1, x, 1, k);
    double g8, g4, m8, sg = 0;
    TIME_BEST(o->min_time, g8, krn_q8_gemm(h8, a1, y, m, pool));
    TIME_BEST(o->min_time, g4, krn_q4_gemm(h4, a1, y, m, pool));
    TIME_BEST(o->min_time, m8, krn_qact_quantize(an, x, n, k); krn_q8_gemm(h8, an, y, m, pool));
    size_t rows[2] = {1000, 2000};
    double rs;
    TIME_BEST(o->min_time, rs, krn_q8_gemm_rows(h8, rows, 2, a1, y, 2, pool));
    if (o->sgemm) {
        krn_blas_set_threads(nth);
        TIME_BEST(o->min_time, sg, krn_sgemm(1, n, m, k, 1.0f, x, k, wf, k, 0.0f, y, m));
    }
    double ops = 2.0 * m * k * n, b8 = (double)krn_q8_bytes(h8), b4 = (double)krn_q4_bytes(h4);
    printf("  %-16s %9s %9.1f %8.0f%% %9.1f %9.1f %8.2fx\n", "head Q8 151936x1024", "-",
           b8 / g8 / 1e9, 100.0 * b8 / g8 / 1e9 / stream, ops / m8 / 1e9,
           sg > 0 ? ops / sg / 1e9 : 0.0, sg > 0 ? sg / m8 : 0.0);
    printf("  %-16s %9s %9.1f %8.0f%%   (GEMV %.2f ms; Q8 GEMV %.2f ms)\n", "head Q4 151936x1024",
           "-", b4 / g4 / 1e9, 100.0 * b4 / g4 / 1e9 / stream, g4 * 1e3, g8 * 1e3);
    printf("  %-16s row subset (2 label rows): %.2f us\n", "head Q8", rs * 1e6);
    krn_qact_free(a1);
    krn_qact_free(an);
    free(x);
    free(y);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bitdistill bench kernels [--threads 1,2] [--tokens 128] [--time 0.3]\n"
        "                                [--cold-mb MB] [--no-head] [--no-sgemm]\n"
        "Kernel variant: BITDISTILL_KERNELS=ref|avx2|avx512|amx|neon|neondot (default: best).\n");
}

static int parse(int argc, char **argv, struct bk_opts *o)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->nthreads = 0;
    o->threads[o->nthreads++] = 1;
    if (ncpu > 1)
        o->threads[o->nthreads++] = (int)ncpu;
    o->tokens = 128;
    o->min_time = 0.3;
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    o->cold_mb = llc > 0 ? (size_t)(4 * llc) >> 20 : 256; /* 4 x LLC, within [256, 512] MiB */
    o->cold_mb = o->cold_mb < 256 ? 256 : o->cold_mb > 512 ? 512 : o->cold_mb;
    o->head = 1;
    o->sgemm = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--threads") && v) {
            if ((o->nthreads = bench_parse_threads(argv[++i], o->threads, 8)) < 0)
                return -1;
        } else if (!strcmp(argv[i], "--tokens") && v) {
            o->tokens = (size_t)atol(argv[++i]);
        } else if (!strcmp(argv[i], "--time") && v) {
            o->min_time = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--cold-mb") && v) {
            o->cold_mb = (size_t)atol(argv[++i]);
        } else if (!strcmp(argv[i], "--no-head")) {
            o->head = 0;
        } else if (!strcmp(argv[i], "--no-sgemm")) {
            o->sgemm = 0;
        } else {
            return -1;
        }
    }
    return o->tokens > 0 && o->nthreads > 0 ? 1 : -1;
}

int bench_kernels_main(int argc, char **argv)
{
    struct bk_opts o;
    int pr = parse(argc, argv, &o);
    if (pr <= 0) {
        if (pr < 0)
            usage(stderr);
        return pr < 0 ? 2 : 0;
    }
    krn_variant v = krn_init();
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    printf("bitdistill bench kernels: variant %s, %ld online CPUs, LLC %ld MiB, GEMM tokens %zu, "
           "cold GEMV working set >= %zu MiB\n",
           krn_variant_name(v), sysconf(_SC_NPROCESSORS_ONLN), llc > 0 ? llc >> 20 : -1, o.tokens,
           o.cold_mb);
    float *wf = NULL;
    krn_q8 *h8 = NULL;
    krn_q4 *h4 = NULL;
    if (o.head) {
        size_t m = 151936, k = 1024;
        wf = malloc(m * k * sizeof(float));
        if (!wf) {
            fprintf(stderr, "bench: out of memory for the head\n");
            return 1;
        }
        for (size_t i = 0; i < m * k; i++)
            wf[i] = frand() * 0.05f;
        if (krn_q8_create(wf, m, k, &h8) || krn_q4_create(wf, m, k, &h4)) {
            fprintf(stderr, "bench: cannot build the head\n");
            return 1;
        }
    }
    int rc = 0;
    for (int ti = 0; ti < o.nthreads && !rc; ti++) {
        int nth = o.threads[ti];
        krn_pool *pool;
        if (krn_pool_create(nth, &pool)) {
            fprintf(stderr, "bench: cannot start %d threads\n", nth);
            return 1;
        }
        settle();
        double stream = bench_stream_triad(pool, (o.cold_mb << 20) / 2), rt;
        TIME_BEST(o.min_time / 4, rt, krn_pool_run(pool, empty_region, NULL));
        printf("\nthreads %d: STREAM triad %.1f GB/s (3 arrays x %zu MiB); empty pool region "
               "%.2f us\n",
               nth, stream, o.cold_mb / 2, rt * 1e6);
        printf("  %-16s %9s %9s %9s %9s %9s %9s\n", "shape (MxK)", "GEMV hot", "GEMV cold",
               "cold/STR", "GEMM GOPS", "sgemm GF", "x sgemm");
        printf("  %-16s %9s %9s %9s %9s %9s %9s\n", "", "GB/s", "GB/s", "", "", "", "(time)");
        const size_t ns = sizeof(SHAPES) / sizeof(SHAPES[0]);
        struct bk_result res[sizeof(SHAPES) / sizeof(SHAPES[0])];
        for (size_t s = 0; s < ns && !rc; s++)
            rc = bench_shape(&SHAPES[s], &o, pool, &res[s]);
        for (size_t s = 0; s < ns && !rc && o.sgemm; s++)
            bench_sgemm(&SHAPES[s], &o, nth, &res[s]);
        for (size_t s = 0; s < ns && !rc; s++) {
            const struct bk_result *r = &res[s];
            double ops = 2.0 * SHAPES[s].m * SHAPES[s].k * o.tokens, sg = o.sgemm ? r->sgemm : 0;
            printf("  %-16s %9.1f %9.1f %8.0f%% %9.1f %9.1f %8.2fx\n", SHAPES[s].name,
                   r->bytes / r->hot / 1e9, r->bytes * r->ncopy / r->cold / 1e9,
                   100.0 * r->bytes * r->ncopy / r->cold / 1e9 / stream, ops / r->gemm / 1e9,
                   sg > 0 ? ops / sg / 1e9 : 0.0, sg > 0 ? sg / r->gemm : 0.0);
        }
        fflush(stdout);
        settle();
        if (!rc)
            rc = bench_decode(&o, pool, stream);
        if (o.head && !rc)
            rc = bench_head(&o, pool, nth, stream, wf, h8, h4);
        krn_pool_free(pool);
    }
    krn_q8_free(h8);
    krn_q4_free(h4);
    free(wf);
    return rc;
}
