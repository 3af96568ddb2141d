/*
 * tests/test-krn-pool.c — the persistent thread pool: every thread runs every region once,
 * regions are ordered (a region sees the previous one's writes), the split helper covers
 * [0, n) exactly, sleeping workers wake up, and a NULL pool runs inline.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "tests/tap.h"

#include "kernels/krn.h"
#include "kernels/pool.h"

struct ctr {
    atomic_int hits[8];
    long data[1000];
    int round;
};

static void bump(void *arg, int ith, int nth)
{
    struct ctr *c = arg;
    atomic_fetch_add(&c->hits[ith], 1);
    size_t lo, hi;
    krn_pool_split(1000, 1, ith, nth, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        c->data[i] += c->round; /* each element owned by one thread per region */
}

int main(void)
{
    krn_pool *p;
    TAP_OK(krn_pool_create(4, &p) == KRN_OK && krn_pool_size(p) == 4, "create a 4-thread pool");
    static struct ctr c;
    long expect = 0;
    for (int r = 1; r <= 2000; r++) {
        c.round = r;
        krn_pool_run(p, bump, &c);
        expect += r;
    }
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= atomic_load(&c.hits[i]) == 2000;
    TAP_OK(ok, "2000 regions: each of the 4 threads ran each region once");
    ok = 1;
    for (int i = 0; i < 1000; i++)
        ok &= c.data[i] == expect;
    TAP_OK(ok, "every region saw the previous region's writes (sum %ld)", expect);
    krn_pool_set_spin(p, 0); /* workers go to sleep at once: exercise the condvar path */
    usleep(2000);
    c.round = 1;
    krn_pool_run(p, bump, &c);
    usleep(2000);
    krn_pool_run(p, bump, &c);
    ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= atomic_load(&c.hits[i]) == 2002;
    TAP_OK(ok, "sleeping workers wake for new regions");
    krn_pool_free(p);
    krn_pool_free(NULL);

    static struct ctr d;
    d.round = 1;
    krn_pool_run(NULL, bump, &d);
    TAP_OK(atomic_load(&d.hits[0]) == 1 && d.data[999] == 1, "NULL pool runs inline on thread 0");

    ok = 1;
    for (size_t n = 0; n < 300; n += 7)
        for (int nth = 1; nth <= 5; nth++) {
            size_t next = 0;
            for (int i = 0; i < nth; i++) {
                size_t lo, hi;
                krn_pool_split(n, 16, i, nth, &lo, &hi);
                ok &= lo == next && hi >= lo && (hi == n || hi % 16 == 0);
                next = hi;
            }
            ok &= next == n;
        }
    TAP_OK(ok, "krn_pool_split tiles [0, n) contiguously in aligned parts");
    return tap_done();
}
