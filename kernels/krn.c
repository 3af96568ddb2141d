/*
 * kernels/krn.c — status strings and the once-per-process choice of the kernel variant.
 *
 * The variant tables are const after krn_init(); the choice is an atomic int read by every
 * entry point (relaxed: the tables themselves are built before the store that publishes them).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KRN_DISPATCH_IMPL 1
#include "kernels/dispatch.h"
#include "kernels/krn.h"

static const char *const variant_names[KRN_VARIANT_COUNT] = {"ref", "avx2", "avx512",
                                                             "amx", "neon", "neondot"};

static krn_ops tables[KRN_VARIANT_COUNT];
static int supported[KRN_VARIANT_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static int current = -1; /* accessed with __atomic builtins */

const char *krn_strerror(int status)
{
    switch (status) {
#define KRN_STATUS_STR_(name, val, msg)                                                            \
    case val: return msg;
        KRN_STATUS_MAP(KRN_STATUS_STR_)
#undef KRN_STATUS_STR_
    }
    return "unknown kernel status";
}

const char *krn_variant_name(krn_variant v)
{
    return (unsigned)v < KRN_VARIANT_COUNT ? variant_names[v] : NULL;
}

int krn_variant_parse(const char *name)
{
    for (int i = 0; name && i < KRN_VARIANT_COUNT; i++)
        if (!strcmp(name, variant_names[i]))
            return i;
    return -1;
}

static void tables_build(void)
{
    for (int v = 0; v < KRN_VARIANT_COUNT; v++) {
        supported[v] = krn_cpu_supports_((krn_variant)v);
        krn_fill_(&tables[v], (krn_variant)v);
    }
}

int krn_variant_supported(krn_variant v)
{
    pthread_once(&tables_once, tables_build);
    return (unsigned)v < KRN_VARIANT_COUNT && supported[v];
}

static int best_variant(void)
{
    int best = KRN_VARIANT_REF;
    for (int v = 0; v < KRN_VARIANT_COUNT; v++)
        if (supported[v])
            best = v; /* the enum runs from slowest to most specialised in each family */
    return best;
}

krn_variant krn_init(void)
{
    int cur = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (cur >= 0)
        return (krn_variant)cur;
    pthread_once(&tables_once, tables_build);
    int want = best_variant();
    const char *env = getenv("BITDISTILL_KERNELS");
    if (env && *env) {
        int v = krn_variant_parse(env);
        if (v < 0)
            fprintf(stderr, "bitdistill: BITDISTILL_KERNELS=%s is not a kernel variant; using %s\n",
                    env, variant_names[want]);
        else if (!supported[v])
            fprintf(stderr, "bitdistill: BITDISTILL_KERNELS=%s is not supported here; using %s\n",
                    env, variant_names[want]);
        else
            want = v;
    }
    int expected = -1;
    __atomic_compare_exchange_n(&current, &expected, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return (krn_variant)__atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

int krn_init_variant(krn_variant v)
{
    if (!krn_variant_supported(v))
        return KRN_ENOTSUP;
    __atomic_store_n(&current, (int)v, __ATOMIC_RELEASE);
    return KRN_OK;
}

krn_variant krn_variant_current(void)
{
    return krn_init();
}

const krn_ops *krn_ops_get(void)
{
    return &tables[krn_init()];
}

const krn_ops *krn_ops_variant(krn_variant v)
{
    return krn_variant_supported(v) ? &tables[v] : NULL;
}
