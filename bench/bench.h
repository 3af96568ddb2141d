/*
 * bench/bench.h — `bitdistill bench SUITE [OPTIONS]`: benchmarks (not timed tests). The
 * dispatcher (bench.c) holds one table of suites; a suite is `int fn(int argc, char **argv)`
 * with argv[0] = the suite name, returning the process exit status (0 ok, 1 failure, 2 usage).
 * To add a suite (e.g. `bench e2e`), implement its function in bench/<suite>.c, declare it
 * here and add one line to the table in bench.c.
 */
#ifndef BD_BENCH_BENCH_H
#define BD_BENCH_BENCH_H

/* Entry point of `bitdistill bench` (argv[0] = "bench"); listed in server/cli.c's table. */
int bench_cli_main(int argc, char **argv);

/* Suites. */
int bench_kernels_main(int argc, char **argv); /* bench/kernels.c */
int bench_e2e_main(int argc, char **argv);     /* bench/e2e.c */
int bench_train_main(int argc, char **argv);   /* bench/train.c */

/* Monotonic clock in seconds (shared by the suites). */
double bench_now(void);

#endif
