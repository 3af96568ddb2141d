/*
 * kernels/cuda/nccl.cu — gradient all-reduce for data parallel training (kcuda.h,
 * krn_cuda_comm_*). One process driving every GPU of its host: ncclCommInitAll makes one
 * communicator per device. Several processes (one per host, or one per GPU, started by a
 * launcher): rank 0 makes an id (ncclGetUniqueId), the caller hands it to every process
 * (train/dist.c), and each process joins its devices with ncclCommInitRankConfig inside
 * one group, non-blocking, so a peer that never joins ends in an error at the deadline instead
 * of a hang. A sum is one ncclAllReduce per device inside a group, on each context's stream.
 * Completion is polled with a deadline: a collective that does not finish in time (a lost
 * device, a hung peer) aborts the communicators and returns an error.
 * Built with NCCL when $(CUDA_DIR)/include/nccl.h exists (KRN_HAVE_NCCL), else a stub.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/kcuda.h"

extern "C" cudaStream_t krn_cuda_stream_(struct krn_cuda *c);

#ifdef KRN_HAVE_NCCL
#include <dlfcn.h>
#include <nccl.h>

/* libnccl.so.2 is opened on first use: single-GPU builds and runs never need it. */
static struct {
    int tried, ok;
    ncclResult_t (*init_all)(ncclComm_t *, int, const int *);
    ncclResult_t (*destroy)(ncclComm_t);
    ncclResult_t (*abort_)(ncclComm_t);
    ncclResult_t (*async_error)(ncclComm_t, ncclResult_t *);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                               ncclComm_t, cudaStream_t);
    const char *(*error_string)(ncclResult_t);
    /* several processes (NCCL >= 2.14); NULL with an older library */
    ncclResult_t (*unique_id)(ncclUniqueId *);
    ncclResult_t (*init_rank_config)(ncclComm_t *, int, ncclUniqueId, int, ncclConfig_t *);
    ncclResult_t (*finalize)(ncclComm_t);
} nc;

static int nccl_load(char *err)
{
    if (!nc.tried) {
        nc.tried = 1;
        void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
        if (h) {
            *(void **)&nc.init_all = dlsym(h, "ncclCommInitAll");
            *(void **)&nc.destroy = dlsym(h, "ncclCommDestroy");
            *(void **)&nc.abort_ = dlsym(h, "ncclCommAbort");
            *(void **)&nc.async_error = dlsym(h, "ncclCommGetAsyncError");
            *(void **)&nc.group_start = dlsym(h, "ncclGroupStart");
            *(void **)&nc.group_end = dlsym(h, "ncclGroupEnd");
            *(void **)&nc.all_reduce = dlsym(h, "ncclAllReduce");
            *(void **)&nc.error_string = dlsym(h, "ncclGetErrorString");
            *(void **)&nc.unique_id = dlsym(h, "ncclGetUniqueId");
            *(void **)&nc.init_rank_config = dlsym(h, "ncclCommInitRankConfig");
            *(void **)&nc.finalize = dlsym(h, "ncclCommFinalize");
            nc.ok = nc.init_all && nc.destroy && nc.abort_ && nc.async_error && nc.group_start &&
                    nc.group_end && nc.all_reduce && nc.error_string;
        }
    }
    if (!nc.ok) {
        const char *de = dlerror();
        snprintf(err, KRN_CUDA_ERR_LEN,
                 "data parallel needs NCCL: cannot load libnccl.so.2 "
                 "(%s)",
                 de ? de : "missing symbols");
    }
    return nc.ok;
}

struct krn_cuda_comm {
    int n, dead;
    int nonblocking;       /* made by krn_cuda_comm_create_rank */
    double timeout_s;      /* nonblocking: bound on finalising at free */
    struct krn_cuda **ctx; /* borrowed */
    ncclComm_t *comm;
};

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Wait until no communicator of m has an operation in progress (non-blocking ones), at most
 * until deadline. Returns ncclSuccess, the first error, or ncclInProgress past the deadline. */
static ncclResult_t wait_ready(struct krn_cuda_comm *m, double deadline, int *bad)
{
    for (int i = 0; i < m->n;) {
        ncclResult_t ae = ncclSuccess;
        ncclResult_t r = nc.async_error(m->comm[i], &ae);
        if (r != ncclSuccess)
            ae = r;
        if (ae == ncclSuccess) {
            i++;
            continue;
        }
        if (ae != ncclInProgress || mono() > deadline) {
            *bad = i;
            return ae;
        }
        nap_us(200);
    }
    return ncclSuccess;
}

extern "C" int krn_cuda_comm_create(struct krn_cuda **ctx, int n, struct krn_cuda_comm **out,
                                    char *err)
{
    *out = NULL;
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    if (!nccl_load(err))
        return KRN_CUDA_EINVAL;
    struct krn_cuda_comm *m = (struct krn_cuda_comm *)calloc(1, sizeof(*m));
    int *devs = (int *)calloc((size_t)n, sizeof(int));
    if (m)
        m->comm = (ncclComm_t *)calloc((size_t)n, sizeof(ncclComm_t));
    if (!m || !devs || !m->comm) {
        snprintf(err, KRN_CUDA_ERR_LEN, "out of memory");
        free(devs);
        if (m)
            free(m->comm);
        free(m);
        return KRN_CUDA_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        devs[i] = krn_cuda_device(ctx[i]);
    ncclResult_t r = nc.init_all(m->comm, n, devs);
    free(devs);
    if (r != ncclSuccess) {
        snprintf(err, KRN_CUDA_ERR_LEN, "nccl: initialising %d GPUs: %s", n, nc.error_string(r));
        free(m->comm);
        free(m);
        return KRN_CUDA_EDEVICE;
    }
    m->n = n;
    m->ctx = ctx;
    *out = m;
    return 0;
}

extern "C" int krn_cuda_comm_unique_id(unsigned char *id, char *err)
{
    ncclUniqueId u;
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    if (!nccl_load(err))
        return KRN_CUDA_EINVAL;
    if (!nc.unique_id || !nc.init_rank_config || !nc.finalize) {
        snprintf(err, KRN_CUDA_ERR_LEN,
                 "multi-process data parallel needs NCCL 2.14 or newer "
                 "(ncclCommInitRankConfig missing from libnccl.so.2)");
        return KRN_CUDA_EINVAL;
    }
    ncclResult_t r = nc.unique_id(&u);
    if (r != ncclSuccess) {
        snprintf(err, KRN_CUDA_ERR_LEN, "nccl: ncclGetUniqueId: %s", nc.error_string(r));
        return KRN_CUDA_EDEVICE;
    }
    memcpy(id, u.internal, KRN_CUDA_COMM_ID_BYTES);
    return 0;
}

extern "C" int krn_cuda_comm_create_rank(struct krn_cuda **ctx, int n, const unsigned char *id,
                                         int nranks, int first_rank, double timeout_s,
                                         struct krn_cuda_comm **out, char *err)
{
    *out = NULL;
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    if (!nccl_load(err))
        return KRN_CUDA_EINVAL;
    if (!nc.init_rank_config || !nc.finalize) {
        snprintf(err, KRN_CUDA_ERR_LEN,
                 "multi-process data parallel needs NCCL 2.14 or newer "
                 "(ncclCommInitRankConfig missing from libnccl.so.2)");
        return KRN_CUDA_EINVAL;
    }
    struct krn_cuda_comm *m = (struct krn_cuda_comm *)calloc(1, sizeof(*m));
    if (m)
        m->comm = (ncclComm_t *)calloc((size_t)n, sizeof(ncclComm_t));
    if (!m || !m->comm) {
        snprintf(err, KRN_CUDA_ERR_LEN, "out of memory");
        if (m)
            free(m->comm);
        free(m);
        return KRN_CUDA_ENOMEM;
    }
    m->n = n;
    m->ctx = ctx;
    m->nonblocking = 1;
    m->timeout_s = timeout_s;
    ncclUniqueId u;
    memcpy(u.internal, id, KRN_CUDA_COMM_ID_BYTES);
    /* one group for the devices of this process (the documented way for one thread to join
     * several ranks); non-blocking, so joining is polled against the deadline */
    ncclResult_t r = nc.group_start();
    for (int i = 0; i < n && r == ncclSuccess; i++) {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        krn_cuda_bind(ctx[i]);
        r = nc.init_rank_config(&m->comm[i], nranks, u, first_rank + i, &cfg);
        if (r == ncclInProgress)
            r = ncclSuccess;
    }
    ncclResult_t r2 = nc.group_end();
    if (r == ncclSuccess && r2 != ncclInProgress)
        r = r2;
    int bad = 0;
    if (r == ncclSuccess)
        r = wait_ready(m, mono() + timeout_s, &bad);
    if (r != ncclSuccess) {
        if (r == ncclInProgress)
            snprintf(err, KRN_CUDA_ERR_LEN,
                     "nccl: rank %d (cuda:%d) could not join the %d "
                     "ranks within %.0f s (a peer never arrived or cannot be reached: check "
                     "NCCL_SOCKET_IFNAME, NCCL_DEBUG=WARN); communicators aborted",
                     first_rank + bad, krn_cuda_device(ctx[bad]), nranks, timeout_s);
        else
            snprintf(err, KRN_CUDA_ERR_LEN, "nccl: rank %d (cuda:%d) joining %d ranks: %s",
                     first_rank + bad, krn_cuda_device(ctx[bad]), nranks, nc.error_string(r));
        m->dead = 1;
        krn_cuda_comm_free(m);
        return KRN_CUDA_EDEVICE;
    }
    *out = m;
    return 0;
}

extern "C" void krn_cuda_comm_free(struct krn_cuda_comm *m)
{
    if (!m)
        return;
    if (m->nonblocking && !m->dead) {
        /* flush and close the connections to the peers; abort past the deadline */
        int bad = 0;
        for (int i = 0; i < m->n; i++)
            if (m->comm[i])
                nc.finalize(m->comm[i]);
        if (wait_ready(m, mono() + (m->timeout_s < 30 ? m->timeout_s : 30), &bad) != ncclSuccess)
            m->dead = 1;
    }
    for (int i = 0; i < m->n; i++)
        if (m->comm[i])
            m->dead ? nc.abort_(m->comm[i]) : nc.destroy(m->comm[i]);
    free(m->comm);
    free(m);
}

extern "C" int krn_cuda_allreduce_sum(struct krn_cuda_comm *m, float **buf, size_t count,
                                      double timeout_s, char *err)
{
    if (m->dead) {
        snprintf(err, KRN_CUDA_ERR_LEN, "nccl: communicator was aborted");
        return KRN_CUDA_EDEVICE;
    }
    ncclResult_t r = nc.group_start();
    for (int i = 0; i < m->n && r == ncclSuccess; i++) {
        krn_cuda_bind(m->ctx[i]);
        r = nc.all_reduce(buf[i], buf[i], count, ncclFloat, ncclSum, m->comm[i],
                          krn_cuda_stream_(m->ctx[i]));
    }
    ncclResult_t r2 = nc.group_end();
    if (r == ncclSuccess && r2 != ncclInProgress) /* in progress: non-blocking communicators */
        r = r2;
    double t0 = mono();
    /* done on device i when its communicator has nothing in progress (a non-blocking one may
     * still be enqueueing: its stream would look idle) and its stream has run the kernel */
    for (int i = 0; i < m->n && r == ncclSuccess;) {
        krn_cuda_bind(m->ctx[i]);
        ncclResult_t ae = ncclSuccess;
        nc.async_error(m->comm[i], &ae);
        if (ae != ncclSuccess && ae != ncclInProgress) {
            r = ae;
            break;
        }
        cudaError_t e =
            ae == ncclSuccess ? cudaStreamQuery(krn_cuda_stream_(m->ctx[i])) : cudaErrorNotReady;
        if (e == cudaSuccess) {
            i++;
            continue;
        }
        if (e != cudaErrorNotReady) {
            snprintf(err, KRN_CUDA_ERR_LEN, "nccl all-reduce on cuda:%d: %s",
                     krn_cuda_device(m->ctx[i]), cudaGetErrorString(e));
            m->dead = 1;
            return KRN_CUDA_EDEVICE;
        }
        if (mono() - t0 > timeout_s) {
            snprintf(err, KRN_CUDA_ERR_LEN,
                     "nccl all-reduce of %zu floats did not finish in "
                     "%.0f s on cuda:%d (lost device or peer); communicators aborted",
                     count, timeout_s, krn_cuda_device(m->ctx[i]));
            m->dead = 1;
            return KRN_CUDA_EDEVICE;
        }
        nap_us(50);
    }
    if (r != ncclSuccess) {
        snprintf(err, KRN_CUDA_ERR_LEN, "nccl all-reduce: %s", nc.error_string(r));
        m->dead = 1;
        return KRN_CUDA_EDEVICE;
    }
    return 0;
}

#else /* no NCCL */

extern "C" int krn_cuda_comm_create(struct krn_cuda **ctx, int n, struct krn_cuda_comm **out,
                                    char *err)
{
    (void)ctx;
    *out = NULL;
    snprintf(err, KRN_CUDA_ERR_LEN,
             "data parallel over %d GPUs needs NCCL, which this build "
             "lacks (no nccl.h in the CUDA directory)",
             n);
    return KRN_CUDA_EINVAL;
}

extern "C" int krn_cuda_comm_unique_id(unsigned char *id, char *err)
{
    (void)id;
    snprintf(err, KRN_CUDA_ERR_LEN,
             "multi-process data parallel needs NCCL, which this build "
             "lacks (no nccl.h in the CUDA directory)");
    return KRN_CUDA_EINVAL;
}

extern "C" int krn_cuda_comm_create_rank(struct krn_cuda **ctx, int n, const unsigned char *id,
                                         int nranks, int first_rank, double timeout_s,
                                         struct krn_cuda_comm **out, char *err)
{
    (void)ctx, (void)n, (void)id, (void)first_rank, (void)timeout_s;
    *out = NULL;
    snprintf(err, KRN_CUDA_ERR_LEN,
             "data parallel over %d ranks needs NCCL, which this build "
             "lacks (no nccl.h in the CUDA directory)",
             nranks);
    return KRN_CUDA_EINVAL;
}

extern "C" void krn_cuda_comm_free(struct krn_cuda_comm *m)
{
    (void)m;
}

extern "C" int krn_cuda_allreduce_sum(struct krn_cuda_comm *m, float **buf, size_t count,
                                      double timeout_s, char *err)
{
    (void)m, (void)buf, (void)count, (void)timeout_s;
    snprintf(err, KRN_CUDA_ERR_LEN, "built without NCCL");
    return KRN_CUDA_EINVAL;
}

#endif
