/*
 * kernels/pool.h — a persistent thread pool for the kernels: N-1 worker pthreads plus the
 * calling thread, created once, woken per parallel region, no thread creation per call.
 *
 * Wake/wait protocol: krn_pool_run publishes (fn, arg) and bumps a generation counter; workers
 * spin on the counter for up to `spin_us` microseconds after their last task (default 2 ms,
 * BITDISTILL_POOL_SPIN_US overrides), then sleep on a condition variable; the caller runs part 0
 * itself and then waits the same way (spin, then sleep) for the others. A decode step is one
 * region (engine/step.c) and consecutive steps are a sampling apart (~0.1-0.5 ms): the spin
 * keeps the wake-up latency at ~1 us instead of a futex wake-up of every worker (~100 us on
 * the 16-vCPU host: 340 vs 299 tokens/s at 16 threads with 2 ms vs 0.3 ms); an idle pool sleeps
 * after 2 ms and costs nothing. Spinners sched_yield after 20 us, so on oversubscribed cores
 * they give way to runnable work.
 *
 * Coexistence with OpenBLAS (float GEMM of the teacher and of training, blas.h): both pools are
 * sized to the same core budget and run one after the other from the same engine thread, never
 * at once. While OpenBLAS works, our workers are at most `spin_us` into their spin and then
 * sleep; OpenBLAS's own threads go back to sleep after its timeout. The owner of the pool calls
 * krn_blas_set_threads(krn_pool_size(pool)) once (blas.h) so the two never sum to more than n
 * busy threads (kernels/ keeps the pool free of any BLAS link); an engine that runs two models
 * concurrently splits the cores between two pools (n1 + n2 <= cores) and gives BLAS n1.
 * OpenBLAS's idle threads busy-wait ~2^28 cycles (~0.1 s) after each call before sleeping;
 * run the daemon with OPENBLAS_THREAD_TIMEOUT=4 (the minimum, 2^4 cycles) so they do not
 * steal the cores of this pool right after a float GEMM. Our spinners yield after 20 us.
 */
#ifndef BD_KERNELS_POOL_H
#define BD_KERNELS_POOL_H

#include <stddef.h>

typedef struct krn_pool krn_pool;

/* Work of one parallel region: called once on each of the nth threads with ith = 0..nth-1
 * (ith 0 is the caller's thread). `arg` is borrowed for the duration of krn_pool_run. */
typedef void (*krn_pool_fn)(void *arg, int ith, int nth);

/* Start n_threads - 1 workers (n_threads <= 0: the number of online CPUs). On success *out owns
 * the pool. Returns KRN_OK, KRN_ENOMEM or KRN_ETHREAD (nothing left running). */
int krn_pool_create(int n_threads, krn_pool **out);

/* Stop and join the workers; NULL is a no-op. Not while a krn_pool_run is in progress. */
void krn_pool_free(krn_pool *p);

/* Number of threads (workers + caller); 1 for a NULL pool. */
int krn_pool_size(const krn_pool *p);

/* Set the spin window in microseconds (0: sleep at once). */
void krn_pool_set_spin(krn_pool *p, int spin_us);

/* Run fn on every thread and return when all finished. A NULL pool runs fn(arg, 0, 1) inline.
 * One region at a time per pool: the pool belongs to one engine thread (not reentrant). */
void krn_pool_run(krn_pool *p, krn_pool_fn fn, void *arg);

/* Inside a region: wait until all nth threads of the region have reached this barrier, then
 * return on all of them. Every thread of the region must call it the same number of times.
 * Memory written before the barrier by any thread is visible after it to all (acq/rel). The
 * waiting threads spin (pause, then sched_yield after POOL_YIELD_AFTER_US), never sleep: a
 * step of the forward pass is one region with a few hundred barriers of ~1 us each. No-op for
 * a NULL pool and in a one-thread region. */
void krn_pool_barrier(krn_pool *p);

/* Split [0, n) into nth near-equal contiguous parts in units of `align`; part ith is [*lo, *hi). */
void krn_pool_split(size_t n, size_t align, int ith, int nth, size_t *lo, size_t *hi);

#endif
