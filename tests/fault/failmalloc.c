/*
 * tests/fault/failmalloc.c — an LD_PRELOAD allocator that fails the Nth allocation (SQLite's
 * OOM-injection approach), so every out-of-memory path of the code under test runs.
 *
 * malloc, calloc, realloc (non-zero size), posix_memalign, aligned_alloc, strdup and strndup are
 * counted while the hook is armed; the call that makes the count reach N returns NULL (errno
 * ENOMEM); with BD_FAIL_REPEAT=1 every later call fails too, until re-armed. The real allocator
 * is the next one in link order (glibc's, or ASan's in a sanitizer build: run those with
 * ASAN_OPTIONS=verify_asan_link_order=0 so this library may come first).
 *
 * Arming:
 *   BD_FAIL_AT=N        armed from the start (counts start-up too).
 *   BD_FAIL_CTL=FILE    on SIGUSR2 the hook reads "N [REPEAT]" from FILE, resets the count and
 *                       arms (N = 0 disarms); start-up is excluded by arming only after it.
 *   In-process drivers call bd_failmalloc_arm(n, repeat) (found with dlsym; counts the calling
 *   thread only) and
 *   bd_failmalloc_fired() (number of failures injected since the last arm).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

static atomic_long fail_at; /* 0: disarmed */
static atomic_long count;
static atomic_long fired;
static atomic_int repeat;
static atomic_int thread_only; /* armed by bd_failmalloc_arm: count the arming thread only */
static __thread int arming_thread;
static char ctl_path[512];

/*
 * Until this library's constructor has run, allocations go to glibc's own functions
 * (__libc_malloc...), never counted: before then the next allocator may not be ready (ASan's
 * start-up calls dlsym, which allocates; CUDA libraries allocate in their constructors). Those
 * pointers are remembered in a lock-free set so that free and realloc send them back to glibc
 * later (ASan would refuse them).
 */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

#define EARLY_CAP (1u << 16)
static _Atomic uintptr_t early[EARLY_CAP]; /* 0 empty, 1 deleted, else a pointer */
static atomic_long nearly;
static atomic_int ready;
static _Atomic uintptr_t early_lo = UINTPTR_MAX, early_hi; /* address range of the set */
static int separate; /* the next allocator is not glibc's (ASan): early pointers need routing */
static int (*asan_owns)(const volatile void *); /* __sanitizer_get_ownership, if present */

static size_t early_slot(uintptr_t p)
{
    return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 48) & (EARLY_CAP - 1);
}

static void *early_add(void *ptr)
{
    if (!ptr)
        return NULL;
    uintptr_t p = (uintptr_t)ptr;
    for (size_t i = early_slot(p), k = 0; k < EARLY_CAP; i = (i + 1) & (EARLY_CAP - 1), k++) {
        uintptr_t cur = atomic_load(&early[i]);
        if ((cur == 0 || cur == 1) && atomic_compare_exchange_strong(&early[i], &cur, p)) {
            atomic_fetch_add(&nearly, 1);
            uintptr_t lo = atomic_load(&early_lo), hi = atomic_load(&early_hi);
            while (p < lo && !atomic_compare_exchange_weak(&early_lo, &lo, p))
                ;
            while (p > hi && !atomic_compare_exchange_weak(&early_hi, &hi, p))
                ;
            return ptr;
        }
    }
    return ptr; /* full: this pointer will leak rather than reach the wrong free */
}

/* Remove p from the set; 1 if it was there. */
static int early_take(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    if (!ptr || !separate || atomic_load_explicit(&nearly, memory_order_relaxed) == 0 ||
        p < atomic_load(&early_lo) || p > atomic_load(&early_hi))
        return 0;
    if (asan_owns && asan_owns(ptr))
        return 0; /* ASan's own: not in the set (fast path for every free) */
    for (size_t i = early_slot(p), k = 0; k < EARLY_CAP; i = (i + 1) & (EARLY_CAP - 1), k++) {
        uintptr_t cur = atomic_load(&early[i]);
        if (cur == 0)
            return 0;
        if (cur == p && atomic_compare_exchange_strong(&early[i], &cur, 1)) {
            atomic_fetch_sub(&nearly, 1);
            return 1;
        }
    }
    return 0;
}

static int is_ready(void)
{
    return atomic_load_explicit(&ready, memory_order_acquire);
}

static void on_usr2(int sig)
{
    char buf[64];
    (void)sig;
    int fd = open(ctl_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    long v = 0;
    char *p = buf;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    while (*p == ' ')
        p++;
    atomic_store(&fail_at, 0);
    atomic_store(&count, 0);
    atomic_store(&fired, 0);
    atomic_store(&repeat, *p == '1');
    atomic_store(&fail_at, v);
}

__attribute__((constructor)) static void failmalloc_start(void)
{
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    separate = (void *)real_free != (void *)__libc_free;
    asan_owns = (int (*)(const volatile void *))dlsym(RTLD_DEFAULT, "__sanitizer_get_ownership");
    atomic_store(&ready, 1);
    const char *at = getenv("BD_FAIL_AT"), *rep = getenv("BD_FAIL_REPEAT"),
               *ctl = getenv("BD_FAIL_CTL");
    atomic_store(&repeat, rep && *rep == '1');
    if (at)
        atomic_store(&fail_at, atol(at));
    if (ctl && strlen(ctl) < sizeof(ctl_path)) {
        strcpy(ctl_path, ctl);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_usr2;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR2, &sa, NULL);
    }
}

/* 1 if this allocation must fail. */
static int should_fail(void)
{
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (at <= 0 || (atomic_load_explicit(&thread_only, memory_order_relaxed) && !arming_thread))
        return 0;
    long c = atomic_fetch_add(&count, 1) + 1;
    if (c == at || (c > at && atomic_load(&repeat))) {
        atomic_fetch_add(&fired, 1);
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

/* Arm for the nth allocation of the calling thread from now (n > 0: count and fired reset;
 * other threads, such as a sanitizer's or a thread pool's start-up, are not counted), or disarm
 * (n = 0: the count of injected failures is kept for bd_failmalloc_fired). */
void bd_failmalloc_arm(long n, int rep)
{
    atomic_store(&fail_at, 0);
    if (n <= 0)
        return;
    arming_thread = 1;
    atomic_store(&thread_only, 1);
    atomic_store(&count, 0);
    atomic_store(&fired, 0);
    atomic_store(&repeat, rep);
    atomic_store(&fail_at, n);
}

long bd_failmalloc_fired(void)
{
    return atomic_load(&fired);
}

long bd_failmalloc_count(void)
{
    return atomic_load(&count);
}

void *malloc(size_t n)
{
    if (!is_ready())
        return early_add(__libc_malloc(n));
    if (should_fail())
        return NULL;
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (!is_ready())
        return early_add(__libc_calloc(a, b));
    if (should_fail())
        return NULL;
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (!is_ready() || early_take(p)) { /* glibc's pointer stays glibc's */
        if (p && !is_ready())
            early_take(p);
        void *q = __libc_realloc(p, n);
        if (!q && p && n)
            early_add(p); /* unchanged */
        return early_add(q);
    }
    if (n && should_fail())
        return NULL;
    return real_realloc(p, n);
}

void free(void *p)
{
    if (!p)
        return;
    if (!is_ready() || early_take(p)) {
        __libc_free(p);
        return;
    }
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (!is_ready())
        return (*out = early_add(__libc_memalign(align, n))) ? 0 : ENOMEM;
    if (should_fail())
        return ENOMEM;
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    if (!is_ready())
        return early_add(__libc_memalign(align, n));
    if (should_fail())
        return NULL;
    return real_aligned_alloc(align, n);
}

char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}
