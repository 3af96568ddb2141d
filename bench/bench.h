/*
 * bench/bench.h — `bitdistill bench SUITE [OPTIONS]`: benchmarks (not timed tests). The
 * dispatcher (bench.c) holds one table of suites; a suite is `int fn(int argc, char **argv)`
 * with argv[0] = the suite name, returning the process exit status (0 ok, 1 failure, 2 usage).
 * To add a suite (e.g. `bench e2e`), implement its function in bench/<suite>.c, declare it
 * here and add one line to the table in bench.c.
 */
#ifndef BD_BENCH_BENCH_H
#define BD_BENCH_BENCH_H

#include <stddef.h>

/* Entry point of `bitdistill bench` (argv[0] = "bench"); listed in cmd/cli.c's table. */
int bench_cli_main(int argc, char **argv);

/* Suites. */
int bench_kernels_main(int argc, char **argv); /* bench/kernels.c */
int bench_e2e_main(int argc, char **argv);     /* bench/e2e.c */
int bench_train_main(int argc, char **argv);   /* bench/train.c */

/* Helpers shared by the suites (bench.c). */

/* Monotonic clock in seconds. */
double bench_now(void);

/* Parse a comma list of thread counts ("1,4,8,16") into out[0..max-1]. Returns how many were
 * read (>= 1), or -1 when s is empty, has more than max values, a value outside 1..1024 or a
 * character other than digits and commas. */
int bench_parse_threads(const char *s, int *out, int max);

/* STREAM triad a[i] = b[i] + 3*c[i] on the pool's threads over 3 arrays of bytes_per_array each
 * (pages first touched by the thread that uses them), bytes counted the STREAM way (3 x 4 per
 * element), best of 8 passes. Returns GB/s, or 0 when the arrays cannot be allocated. pool
 * borrowed (NULL: one thread). */
struct krn_pool;
double bench_stream_triad(struct krn_pool *pool, size_t bytes_per_array);

#endif
