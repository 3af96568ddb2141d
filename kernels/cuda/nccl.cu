/*
 * kernels/cuda/nccl.cu — gradient all-reduce over the GPUs of one host for data parallel
 * training (kcuda.h, krn_cuda_comm_*). One process drives every GPU: ncclCommInitAll makes one
 * communicator per device; a sum is one ncclAllReduce per device inside a group, on each
 * context's stream. Completion is polled with a deadline: a collective that does not finish
 * in time (a lost device, a hung peer) aborts the communicators and returns an error.
 * Built with NCCL when $(CUDA_DIR)/include/nccl.h exists (KRN_HAVE_NCCL), else a stub.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
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
            nc.ok = nc.init_all && nc.destroy && nc.abort_ && nc.async_error && nc.group_start &&
                    nc.group_end && nc.all_reduce && nc.error_string;
        }
    }
    if (!nc.ok) {
        const char *de = dlerror();
        snprintf(err, KRN_CUDA_ERR_LEN, "data parallel needs NCCL: cannot load libnccl.so.2 "
                 "(%s)", de ? de : "missing symbols");
    }
    return nc.ok;
}

struct krn_cuda_comm {
    int n, dead;
    struct krn_cuda **ctx; /* borrowed */
    ncclComm_t *comm;
};

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
        snprintf(err, KRN_CUDA_ERR_LEN, "nccl: initialising %d GPUs: %s", n,
                 nc.error_string(r));
        free(m->comm);
        free(m);
        return KRN_CUDA_EDEVICE;
    }
    m->n = n;
    m->ctx = ctx;
    *out = m;
    return 0;
}

extern "C" void krn_cuda_comm_free(struct krn_cuda_comm *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        if (m->comm[i])
            m->dead ? nc.abort_(m->comm[i]) : nc.destroy(m->comm[i]);
    free(m->comm);
    free(m);
}

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
    if (r == ncclSuccess)
        r = r2;
    double t0 = mono();
    for (int i = 0; i < m->n && r == ncclSuccess;) {
        krn_cuda_bind(m->ctx[i]);
        cudaError_t e = cudaStreamQuery(krn_cuda_stream_(m->ctx[i]));
        ncclResult_t ae = ncclSuccess;
        nc.async_error(m->comm[i], &ae);
        if (ae != ncclSuccess && ae != ncclInProgress) {
            r = ae;
            break;
        }
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
            snprintf(err, KRN_CUDA_ERR_LEN, "nccl all-reduce of %zu floats did not finish in "
                     "%.0f s on cuda:%d (lost device or peer); communicators aborted", count,
                     timeout_s, krn_cuda_device(m->ctx[i]));
            m->dead = 1;
            return KRN_CUDA_EDEVICE;
        }
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
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
    snprintf(err, KRN_CUDA_ERR_LEN, "data parallel over %d GPUs needs NCCL, which this build "
             "lacks (no nccl.h in the CUDA directory)", n);
    return KRN_CUDA_EINVAL;
}

extern "C" void krn_cuda_comm_free(struct krn_cuda_comm *m) { (void)m; }

extern "C" int krn_cuda_allreduce_sum(struct krn_cuda_comm *m, float **buf, size_t count,
                                      double timeout_s, char *err)
{
    (void)m, (void)buf, (void)count, (void)timeout_s;
    snprintf(err, KRN_CUDA_ERR_LEN, "built without NCCL");
    return KRN_CUDA_EINVAL;
}

#endif
