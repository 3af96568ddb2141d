/*
 * bench/bench.c — the `bitdistill bench` dispatcher: one table of suites (bench.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"

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
    {"train", "CPU training step per phase (teacher/student fwd, losses, backward, AdamW), sgemm share",
     bench_train_main},
};

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
    fprintf(stderr, "bitdistill bench: unknown suite '%s' (see bitdistill bench --help)\n", argv[1]);
    return 2;
}
