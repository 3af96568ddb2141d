/*
 * kernels/pool.c — persistent worker threads with a spin-then-sleep wake-up (design in pool.h).
 *
 * State: `gen` counts regions (bumped by the caller after publishing fn/arg); a worker that has
 * finished region g waits for gen != g; `pending` counts workers still running the current
 * region. Both are read with acquire/release atomics while spinning; the mutex + condvars are
 * taken only to sleep and to wake sleepers (`sleepers` says whether a broadcast is needed).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kernels/dispatch.h"
#include "kernels/internal.h"
#include "kernels/krn.h"
#include "kernels/pool.h"

#define POOL_DEFAULT_SPIN_US 2000
#define POOL_YIELD_AFTER_US 20 /* spin with pause for 20 us, then pause + sched_yield */

struct pool_worker {
    struct krn_pool *pool;
    pthread_t tid;
    int ith;
};

struct krn_pool {
    int nth;                     /* threads including the caller */
    int spin_us;                 /* spin window before sleeping, microseconds */
    struct pool_worker *workers; /* [nth - 1] */
    krn_pool_fn fn;              /* current region's work (written before gen is bumped) */
    void *arg;
    unsigned gen; /* region counter (atomic) */
    int pending;  /* workers not yet done with the region (atomic) */
    int stop;     /* set by krn_pool_free (atomic) */
    int sleepers; /* threads asleep or about to sleep (under mu) */
    /* Barrier (krn_pool_barrier): arrivals of the current phase and the phase counter, each on
     * its own cache line so the spinning readers of `phase` do not slow the arrivals. */
    _Alignas(64) unsigned bar_count;
    _Alignas(64) unsigned bar_phase;
    _Alignas(64) char pad_;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers sleep here */
    pthread_cond_t done; /* the caller sleeps here */
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/* Wait until *word != seen (spin for spin_us, then sleep on cond). Returns the new value. */
static unsigned wait_change(struct krn_pool *p, unsigned *word, unsigned seen, pthread_cond_t *cond)
{
    unsigned v;
    double t0 = 0;
    for (int i = 0;; i++) {
        v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        if (v != seen || __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            return v;
        if ((i & 255) == 0) {
            double t = now_us();
            if (i == 0)
                t0 = t;
            else if (t - t0 >= p->spin_us)
                break;
            else if (t - t0 >= POOL_YIELD_AFTER_US)
                sched_yield(); /* oversubscribed cores (VM steal, another pool): let them run */
        }
        krn_cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    p->sleepers++;
    while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == seen &&
           !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
        pthread_cond_wait(cond, &p->mu);
    p->sleepers--;
    pthread_mutex_unlock(&p->mu);
    return v;
}

static void wake_all(struct krn_pool *p, pthread_cond_t *cond)
{
    pthread_mutex_lock(&p->mu); /* orders against a thread between its check and its wait */
    if (p->sleepers)
        pthread_cond_broadcast(cond);
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *argp)
{
    struct pool_worker *w = argp;
    struct krn_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_change(p, &p->gen, seen, &p->wake);
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            break;
        p->fn(p->arg, w->ith, p->nth);
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0)
            wake_all(p, &p->done);
    }
    return NULL;
}

int krn_pool_create(int n_threads, krn_pool **out)
{
    *out = NULL;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    struct krn_pool *p = krn_zalloc64(sizeof(*p)); /* 64-byte aligned: the barrier's lines */
    if (!p)
        return KRN_ENOMEM;
    p->nth = n_threads;
    p->spin_us = POOL_DEFAULT_SPIN_US;
    const char *env = getenv("BITDISTILL_POOL_SPIN_US");
    if (env && *env)
        p->spin_us = atoi(env) < 0 ? 0 : atoi(env);
    int rc = KRN_ENOMEM;
    if (n_threads > 1 && !(p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers))))
        goto out_pool;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    int started = 0;
    for (; started < n_threads - 1; started++) {
        p->workers[started].pool = p;
        p->workers[started].ith = started + 1;
        if (pthread_create(&p->workers[started].tid, NULL, worker_main, &p->workers[started])) {
            rc = KRN_ETHREAD;
            goto out_threads;
        }
    }
    *out = p;
    return KRN_OK;

out_threads:
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    wake_all(p, &p->wake);
    for (int i = 0; i < started; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
out_pool:
    free(p);
    return rc;
}

void krn_pool_free(krn_pool *p)
{
    if (!p)
        return;
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    wake_all(p, &p->wake);
    for (int i = 0; i < p->nth - 1; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int krn_pool_size(const krn_pool *p)
{
    return p ? p->nth : 1;
}

void krn_pool_set_spin(krn_pool *p, int spin_us)
{
    if (p)
        p->spin_us = spin_us < 0 ? 0 : spin_us;
}

void krn_pool_run(krn_pool *p, krn_pool_fn fn, void *arg)
{
    if (!p || p->nth == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    __atomic_store_n(&p->pending, p->nth - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_ACQ_REL);
    wake_all(p, &p->wake);
    fn(arg, 0, p->nth);
    /* wait for pending == 0: reuse wait_change on the counter's "not zero" by spinning here */
    for (;;) {
        unsigned left = (unsigned)__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE);
        if (left == 0)
            break;
        wait_change(p, (unsigned *)&p->pending, left, &p->done);
    }
}

void krn_pool_barrier(krn_pool *p)
{
    if (!p || p->nth == 1)
        return;
    unsigned phase = __atomic_load_n(&p->bar_phase, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&p->bar_count, 1, __ATOMIC_ACQ_REL) == (unsigned)p->nth) {
        __atomic_store_n(&p->bar_count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&p->bar_phase, phase + 1, __ATOMIC_RELEASE);
        return;
    }
    double t0 = 0;
    for (int i = 0; __atomic_load_n(&p->bar_phase, __ATOMIC_ACQUIRE) == phase; i++) {
        if ((i & 1023) == 1023) { /* rarely: a descheduled peer (VM steal) must get to run */
            double t = now_us();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 >= POOL_YIELD_AFTER_US)
                sched_yield();
        }
        krn_cpu_relax();
    }
}

void krn_pool_split(size_t n, size_t align, int ith, int nth, size_t *lo, size_t *hi)
{
    if (align == 0)
        align = 1;
    size_t units = (n + align - 1) / align;
    size_t per = units / (size_t)nth, extra = units % (size_t)nth;
    size_t u0 = (size_t)ith * per + ((size_t)ith < extra ? (size_t)ith : extra);
    size_t u1 = u0 + per + ((size_t)ith < extra ? 1 : 0);
    *lo = u0 * align < n ? u0 * align : n;
    *hi = u1 * align < n ? u1 * align : n;
}
