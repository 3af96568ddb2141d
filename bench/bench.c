/*
 * bench/bench.c — the `bitdistill bench` dispatcher: one table of suites (bench.h), and the
 * helpers the suites share (clock, thread lists, STREAM triad).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "kernels/pool.h"

struct bench_suite {
    const char *name;    /* `bitdistill bench NAME` */
    const char *summary; /* one line for --help */
    int (*fn)(int argc, char **argv);
};

static const struct bench_suite suites[] = {
    {"kernels", "ternary/INT8 GEMV and GEMM vs STREAM triad and OpenBLAS sgemm (Qwen3-0.6B shapes)",
     bench_kernels_main},
    {"e2e", "whole-model prefill/decode, memory, bandwidth ceiling: FP vs ternary student",
     bench_e2e_main},
    {"train",
     "CPU training step per phase (teacher/student fwd, losses, backward, AdamW), sgemm share",
     bench_train_main},
};

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int bench_parse_threads(const char *s, int *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || n == max || (*end && *end != ','))
            return -1;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return n > 0 ? n : -1;
}

struct triad {
    float *a, *b, *c;
    size_t n;
    int init; /* 1: first-touch pass (fill the arrays), 0: the triad */
};

static void triad_run(void *argp, int ith, int nth)
{
    struct triad *t = argp;
    size_t lo, hi;
    krn_pool_split(t->n, 1024, ith, nth, &lo, &hi);
    if (t->init) { /* first touch by the thread that will use the pages */
        for (size_t i = lo; i < hi; i++) {
            t->a[i] = 0.0f;
            t->b[i] = 1.0f;
            t->c[i] = 2.0f;
        }
        return;
    }
    float *restrict a = t->a;
    const float *restrict b = t->b, *restrict c = t->c;
    for (size_t i = lo; i < hi; i++)
        a[i] = b[i] + 3.0f * c[i];
}

double bench_stream_triad(struct krn_pool *pool, size_t bytes_per_array)
{
    struct triad t = {0};
    double best = 1e30;
    t.n = bytes_per_array / sizeof(float);
    t.a = aligned_alloc(64, t.n * sizeof(float));
    t.b = aligned_alloc(64, t.n * sizeof(float));
    t.c = aligned_alloc(64, t.n * sizeof(float));
    if (!t.a || !t.b || !t.c)
        goto out;
    t.init = 1;
    krn_pool_run(pool, triad_run, &t);
    t.init = 0;
    for (int r = 0; r < 8; r++) {
        double t0 = bench_now();
        krn_pool_run(pool, triad_run, &t);
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
    }
out:
    free(t.a);
    free(t.b);
    free(t.c);
    return best < 1e30 ? 3.0 * t.n * sizeof(float) / best / 1e9 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bitdistill bench SUITE [OPTIONS]\n\nsuites:\n");
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        fprintf(f, "  %-10s %s\n", suites[i].name, suites[i].summary);
    fprintf(f, "\n`bitdistill bench SUITE --help` shows a suite's options.\n");
}

int bench_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        if (!strcmp(argv[1], suites[i].name))
            return suites[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "bitdistill bench: unknown suite '%s' (see bitdistill bench --help)\n",
            argv[1]);
    return 2;
}
