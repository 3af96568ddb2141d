/*
 * kernels/cuda/ops.cu — the trainer's operations on a CUDA GPU (see kcuda.h for the contract).
 *
 * Each kernel is the device twin of the CPU op of the same name in train/ops.c and computes
 * the same formula in the same order where it matters (row reductions of the norms and the
 * losses, the quantizers' rounding); tests/test-cuda-ops.c checks every one against the CPU op.
 * Row-wise ops run one block of 256 threads per row with a warp-shuffle block reduction; matrix
 * products, including attention's per-head products (batched over the batch), go to cuBLAS;
 * the bf16 mode's INT8 BitLinear forward goes to cublasLt (one cached plan per shape).
 * Nothing here allocates during a step except krn_cuda_alloc itself.
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kcuda.h"
#include "kernels/cuda/async.cuh"
#include "kernels/cuda/reduce.cuh"

#define NT 256 /* threads per block of the row kernels */

#define CUBLAS_WS ((size_t)64 << 20)
#define PROF_EVENTS 4096 /* event pairs recorded before they are resolved */
#define PROF_NAMES 48
#define LT_PLANS 32 /* cached cublasLt INT8 product plans (one per shape and alignment) */

/* One cublasLt INT8 product shape: out^T [OC][N] (int32, column-major) = W8 [OC][C] . X8^T. */
struct lt_plan {
    int N, C, OC, al, ok; /* al: the smallest alignment of the three pointers, in bytes */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

struct krn_cuda {
    int dev, bf16, status;
    cudaStream_t st;
    cublasHandle_t blas;
    double *red; /* device reduction slots [4] */
    char err[KRN_CUDA_ERR_LEN];
    /* BITDISTILL_CUDA_PROFILE=1: device time per op name, from an event pair around each
     * outermost op call (recorded on the stream, resolved in batches and at the report) */
    int prof, depth, nev, nnames;
    cudaEvent_t *ev; /* [2 * PROF_EVENTS] */
    int ev_name[PROF_EVENTS];
    const char *names[PROF_NAMES];
    double ms[PROF_NAMES];
    long calls[PROF_NAMES];
    void **ptrs; /* device pointer arrays of the batched attention products [3 * nptr] */
    void *ws;    /* cuBLAS workspace (Hopper's split-K and stream-K kernels want one) */
    int nptr;
    cublasLtHandle_t lt; /* the INT8 BitLinear forward (NULL: the fallback kernel) */
    struct lt_plan plans[LT_PLANS];
    int nplans;
    int rb_rows;   /* rows per block of the fused RMSNorm backward (0: RB_ROWS; the bench's knob) */
    int rb_atomic; /* 1: its dW by atomics, not partials (the bench's comparison) */
    int swb_old;   /* the SwiGLU + SubLN backward (the bench's comparisons): 1 by k_rms_bwd_f, 2 by
                  * k_swrms_bwd (not the pipelined k_swrms_bwd_p) */
    int nsm;       /* multiprocessors */
    struct {
        void *f;
        unsigned nt;
        int n;
    } occ[16]; /* resident blocks per multiprocessor of (kernel, threads), as asked */
    int nocc;
    float *part; /* dW partials of the fused RMSNorm backward (part_buf) */
    size_t part_n;
};

static void prof_resolve(struct krn_cuda *c)
{
    if (!c->nev)
        return;
    cudaEventSynchronize(c->ev[2 * (c->nev - 1) + 1]);
    for (int i = 0; i < c->nev; i++) {
        float ms = 0.0f;
        if (cudaEventElapsedTime(&ms, c->ev[2 * i], c->ev[2 * i + 1]) == cudaSuccess) {
            c->ms[c->ev_name[i]] += ms;
            c->calls[c->ev_name[i]]++;
        }
    }
    cudaGetLastError();
    c->nev = 0;
}

static int prof_begin(struct krn_cuda *c, const char *name)
{
    int k = 0;
    while (k < c->nnames && strcmp(c->names[k], name))
        k++;
    if (k == c->nnames) {
        if (k == PROF_NAMES)
            return -1;
        c->names[c->nnames++] = name;
    }
    if (c->nev == PROF_EVENTS)
        prof_resolve(c);
    int i = c->nev++;
    c->ev_name[i] = k;
    cudaEventRecord(c->ev[2 * i], c->st);
    return i;
}

/* One outermost op: ops called from inside another op count as part of it. */
struct prof_scope {
    struct krn_cuda *c;
    int i;
    prof_scope(struct krn_cuda *cc, const char *name) : c(cc), i(-1)
    {
        if (c->prof && c->depth++ == 0)
            i = prof_begin(c, name);
    }
    ~prof_scope()
    {
        if (c->prof && --c->depth == 0 && i >= 0)
            cudaEventRecord(c->ev[2 * i + 1], c->st);
    }
};
#define PROF(c, name) prof_scope prof_scope_((c), (name))

extern "C" void krn_cuda_prof_report(struct krn_cuda *c, FILE *f)
{
    if (!c->prof)
        return;
    prof_resolve(c);
    double tot = 0.0;
    for (int k = 0; k < c->nnames; k++)
        tot += c->ms[k];
    fprintf(f, "cuda:%d profile: %.1f ms of device time in ops\n", c->dev, tot);
    int used[PROF_NAMES] = {0};
    for (int n = 0; n < c->nnames; n++) {
        int b = -1;
        for (int k = 0; k < c->nnames; k++)
            if (!used[k] && (b < 0 || c->ms[k] > c->ms[b]))
                b = k;
        used[b] = 1;
        fprintf(f, "  %-26s %10.2f ms %5.1f%% %8ld calls\n", c->names[b], c->ms[b],
                tot > 0 ? 100.0 * c->ms[b] / tot : 0.0, c->calls[b]);
    }
    memset(c->ms, 0, sizeof(c->ms));
    memset(c->calls, 0, sizeof(c->calls));
}

static void fail(struct krn_cuda *c, int status, const char *fmt, ...)
{
    if (c->status)
        return; /* sticky: keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->status = status;
}

static int cuda_status(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? KRN_CUDA_ENOMEM : KRN_CUDA_EDEVICE;
}

static void chk(struct krn_cuda *c, cudaError_t e, const char *what)
{
    if (e != cudaSuccess)
        fail(c, cuda_status(e), "cuda: %s: %s", what, cudaGetErrorString(e));
}

#define LAUNCHED(c, name) chk((c), cudaGetLastError(), (name))

static int ptr_align(const void *p);

static unsigned blocks(size_t n, unsigned t)
{
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65535u * 16u ? 65535u * 16u : (b ? b : 1));
}

/* ------------------------------------------------------------------ context */

extern "C" int krn_cuda_device_count(char *why, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why)
            snprintf(why, len, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    if (n == 0 && why)
        snprintf(why, len, "no CUDA device");
    return n;
}

extern "C" int krn_cuda_create(int dev, struct krn_cuda **out, char *err)
{
    struct krn_cuda *c = (struct krn_cuda *)calloc(1, sizeof(*c));
    char why[256];
    *out = NULL;
    if (!c) {
        snprintf(err, KRN_CUDA_ERR_LEN, "out of memory");
        return KRN_CUDA_ENOMEM;
    }
    c->dev = dev;
    int n = krn_cuda_device_count(why, sizeof(why));
    if (dev < 0 || dev >= n) {
        snprintf(err, KRN_CUDA_ERR_LEN, "cuda:%d: %s", dev, n ? "no such device" : why);
        free(c);
        return KRN_CUDA_EINVAL;
    }
    cudaError_t e = cudaSetDevice(dev);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&c->red, 4 * sizeof(double));
    if (e != cudaSuccess) {
        snprintf(err, KRN_CUDA_ERR_LEN, "cuda:%d: %s", dev, cudaGetErrorString(e));
        krn_cuda_free(c);
        return cuda_status(e);
    }
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, KRN_CUDA_ERR_LEN, "cuda:%d: cublasCreate failed", dev);
        c->blas = NULL;
        krn_cuda_free(c);
        return KRN_CUDA_EDEVICE;
    }
    cublasSetStream(c->blas, c->st);
    cublasSetMathMode(c->blas, CUBLAS_PEDANTIC_MATH);
    if (cudaDeviceGetAttribute(&c->nsm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        c->nsm < 1)
        c->nsm = 1;
    if (cudaMalloc(&c->ws, CUBLAS_WS) == cudaSuccess)
        cublasSetWorkspace(c->blas, c->ws, CUBLAS_WS);
    else
        c->ws = NULL; /* cuBLAS then works without one */
    if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS)
        c->lt = NULL; /* the INT8 products then run on the fallback kernel */
    cudaGetLastError();
    const char *pe = getenv("BITDISTILL_CUDA_PROFILE");
    if (pe && *pe && strcmp(pe, "0")) {
        c->ev = (cudaEvent_t *)calloc(2 * PROF_EVENTS, sizeof(cudaEvent_t));
        c->prof = c->ev != NULL;
        for (int i = 0; c->prof && i < 2 * PROF_EVENTS; i++)
            if (cudaEventCreate(&c->ev[i]) != cudaSuccess)
                c->prof = 0;
        cudaGetLastError();
    }
    *out = c;
    return 0;
}

extern "C" void krn_cuda_free(struct krn_cuda *c)
{
    if (!c)
        return;
    cudaSetDevice(c->dev);
    if (c->prof)
        krn_cuda_prof_report(c, stderr);
    if (c->ev) {
        for (int i = 0; i < 2 * PROF_EVENTS; i++)
            if (c->ev[i])
                cudaEventDestroy(c->ev[i]);
        free(c->ev);
    }
    for (int i = 0; i < c->nplans; i++) {
        struct lt_plan *p = &c->plans[i];
        cublasLtMatrixLayoutDestroy(p->la);
        cublasLtMatrixLayoutDestroy(p->lb);
        cublasLtMatrixLayoutDestroy(p->lc);
        cublasLtMatmulDescDestroy(p->op);
    }
    if (c->lt)
        cublasLtDestroy(c->lt);
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->ptrs)
        cudaFree(c->ptrs);
    if (c->ws)
        cudaFree(c->ws);
    if (c->part)
        cudaFree(c->part);
    if (c->red)
        cudaFree(c->red);
    if (c->st)
        cudaStreamDestroy(c->st);
    free(c);
}

extern "C" void krn_cuda_set_bf16(struct krn_cuda *c, int on)
{
    c->bf16 = on != 0;
    cublasSetMathMode(c->blas, on ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH);
}

extern "C" int krn_cuda_device(const struct krn_cuda *c)
{
    return c->dev;
}
extern "C" const char *krn_cuda_errmsg(const struct krn_cuda *c)
{
    return c->err;
}

extern "C" int krn_cuda_sync(struct krn_cuda *c)
{
    chk(c, cudaStreamSynchronize(c->st), "stream synchronize");
    return c->status;
}

extern "C" void krn_cuda_bind(struct krn_cuda *c)
{
    chk(c, cudaSetDevice(c->dev), "set device");
}

/* The context's stream, for kernels/cuda/nccl.cu. */
extern "C" cudaStream_t krn_cuda_stream_(struct krn_cuda *c)
{
    return c->st;
}

extern "C" void krn_cuda_meminfo(struct krn_cuda *c, size_t *free_b, size_t *total_b)
{
    *free_b = *total_b = 0;
    chk(c, cudaMemGetInfo(free_b, total_b), "cudaMemGetInfo");
}

/* ------------------------------------------------------------------ memory */

extern "C" void *krn_cuda_alloc(struct krn_cuda *c, size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        /* not sticky: nothing was launched, the caller sees NULL and may try a smaller size */
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cudaGetLastError();
        if (!c->status)
            snprintf(c->err, sizeof(c->err),
                     "cuda:%d: cannot allocate %.2f GiB (%.2f of %.2f "
                     "GiB free): %s",
                     c->dev, (double)bytes / (1 << 30), (double)fr / (1 << 30),
                     (double)tot / (1 << 30), cudaGetErrorString(e));
        return NULL;
    }
    chk(c, cudaMemsetAsync(p, 0, bytes, c->st), "memset");
    return p;
}

extern "C" void krn_cuda_dfree(struct krn_cuda *c, void *p)
{
    (void)c;
    if (p)
        cudaFree(p);
}

extern "C" void krn_cuda_h2d(struct krn_cuda *c, void *dst, const void *src, size_t bytes)
{
    chk(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->st), "copy to device");
    chk(c, cudaStreamSynchronize(c->st), "copy to device");
}

extern "C" void krn_cuda_d2h(struct krn_cuda *c, void *dst, const void *src, size_t bytes)
{
    chk(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->st), "copy to host");
    chk(c, cudaStreamSynchronize(c->st), "copy to host");
}

extern "C" void krn_cuda_d2d(struct krn_cuda *c, void *dst, const void *src, size_t bytes)
{
    PROF(c, "copy");
    chk(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->st), "copy on device");
}

extern "C" void krn_cuda_zero(struct krn_cuda *c, void *p, size_t bytes)
{
    PROF(c, "zero");
    chk(c, cudaMemsetAsync(p, 0, bytes, c->st), "memset");
}

/* ------------------------------------------------------------------ reductions */

__device__ __forceinline__ static double red1(float x, int mode)
{
    double v = x;
    return mode == 0 ? v : mode == 1 ? v * v : fabs(v);
}

/* mode 0: sum x, 1: sum x^2, 2: sum |x| into *out (atomic). V 4 (x 16-byte aligned): two float4
 * loads a thread in flight per step (a scalar load each had held the 6.9 GB gradient norm of
 * Qwen3-1.7B at 2.3 TB/s), the n % 4 tail by the first threads. */
template <int V> __global__ void k_reduce(double *out, const float *x, size_t n, int mode)
{
    double s = 0.0;
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    if (V == 4) {
        const float4 *x4 = (const float4 *)x;
        size_t n4 = n / 4, i = t;
        for (; i + st < n4; i += 2 * st) {
            float4 a = x4[i], b = x4[i + st];
            s += red1(a.x, mode) + red1(a.y, mode) + red1(a.z, mode) + red1(a.w, mode);
            s += red1(b.x, mode) + red1(b.y, mode) + red1(b.z, mode) + red1(b.w, mode);
        }
        if (i < n4) {
            float4 a = x4[i];
            s += red1(a.x, mode) + red1(a.y, mode) + red1(a.z, mode) + red1(a.w, mode);
        }
        if (t < n % 4)
            s += red1(x[n4 * 4 + t], mode);
    } else
        for (size_t i = t; i < n; i += st)
            s += red1(x[i], mode);
    s = block_sumd(s);
    if (!threadIdx.x)
        atomicAdd(out, s);
}

/* c->red = k_reduce's sum over x[n] (mode as there), left on the device. */
static void reduce_launch(struct krn_cuda *c, const float *x, size_t n, int mode)
{
    chk(c, cudaMemsetAsync(c->red, 0, sizeof(double), c->st), "memset");
    /* at most 1024 blocks: computed apart, because a '>' inside <<< >>> trips clang-format */
    unsigned nb = blocks(n, NT);
    if (nb > 1024)
        nb = 1024;
    if (ptr_align(x) >= 16)
        k_reduce<4><<<nb, NT, 0, c->st>>>(c->red, x, n, mode);
    else
        k_reduce<1><<<nb, NT, 0, c->st>>>(c->red, x, n, mode);
}

static double reduce(struct krn_cuda *c, const float *x, size_t n, int mode)
{
    PROF(c, "reduce (sync)");
    double r = 0.0;
    reduce_launch(c, x, n, mode);
    LAUNCHED(c, "reduce");
    chk(c, cudaMemcpyAsync(&r, c->red, sizeof(double), cudaMemcpyDeviceToHost, c->st), "reduce");
    chk(c, cudaStreamSynchronize(c->st), "reduce");
    return r;
}

extern "C" double krn_cuda_sumsq(struct krn_cuda *c, const float *x, size_t n)
{
    return reduce(c, x, n, 1);
}

extern "C" double krn_cuda_sum(struct krn_cuda *c, const float *x, size_t n)
{
    return reduce(c, x, n, 0);
}

/* ------------------------------------------------------------------ GEMM */

extern "C" void krn_cuda_gemm(struct krn_cuda *c, int ta, int tb, int M, int N, int K, float alpha,
                              const float *A, int lda, long long sa, const float *B, int ldb,
                              long long sb, float beta, float *C, int ldc, long long sc, int batch)
{
    PROF(c, "gemm");
    /* row-major C[M][N] is column-major C^T: C^T = op(B)^T op(A)^T */
    cublasComputeType_t ct = c->bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    cublasStatus_t s = cublasGemmStridedBatchedEx(
        c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
        CUDA_R_32F, ldb, sb, A, CUDA_R_32F, lda, sa, &beta, C, CUDA_R_32F, ldc, sc, batch, ct,
        CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        fail(c, s == CUBLAS_STATUS_ALLOC_FAILED ? KRN_CUDA_ENOMEM : KRN_CUDA_EDEVICE,
             "cublas: gemm %dx%dx%d (batch %d): %s", M, N, K, batch, cublasGetStatusString(s));
}

/* ------------------------------------------------------------------ elementwise */

__global__ void k_add(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

extern "C" void krn_cuda_add(struct krn_cuda *c, float *out, const float *a, const float *b,
                             size_t n)
{
    PROF(c, "add");
    k_add<<<blocks(n, NT), NT, 0, c->st>>>(out, a, b, n);
    LAUNCHED(c, "add");
}

__global__ void k_scale(float *x, float a, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

extern "C" void krn_cuda_scale(struct krn_cuda *c, float *x, float a, size_t n)
{
    PROF(c, "scale");
    k_scale<<<blocks(n, NT), NT, 0, c->st>>>(x, a, n);
    LAUNCHED(c, "scale");
}

/* ------------------------------------------------------------------ quantizers */

__global__ void k_wquant(float *wq, const float *w, size_t n, const double *sabs)
{
    float d = (float)(*sabs / (double)(n ? n : 1));
    float inv = 1.0f / (d + 1e-5f);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float r = rintf(__fmul_rn(w[i], inv));
        r = r > 1.0f ? 1.0f : (r < -1.0f ? -1.0f : r);
        wq[i] = r * d;
    }
}

extern "C" void krn_cuda_wquant(struct krn_cuda *c, float *wq, const float *w, size_t n)
{
    PROF(c, "weight quant");
    reduce_launch(c, w, n, 2); /* sum |w|: the absmean */
    k_wquant<<<blocks(n, NT), NT, 0, c->st>>>(wq, w, n, c->red);
    LAUNCHED(c, "wquant");
}

__global__ void k_aquant(float *xq, const float *x, int C)
{
    const float *xr = x + (size_t)blockIdx.x * C;
    float *yr = xq + (size_t)blockIdx.x * C, g = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        g = fmaxf(g, fabsf(xr[j]));
    g = block_max(g);
    float s = 127.0f / (g + 1e-5f), back = g / 127.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float q = rintf(__fmul_rn(xr[j], s));
        q = q > 127.0f ? 127.0f : (q < -128.0f ? -128.0f : q);
        yr[j] = q * back;
    }
}

extern "C" void krn_cuda_aquant(struct krn_cuda *c, float *xq, const float *x, int N, int C)
{
    PROF(c, "activation quant");
    k_aquant<<<N, NT, 0, c->st>>>(xq, x, C);
    LAUNCHED(c, "aquant");
}

/* ------------------------------------------------------------------ embedding */

__global__ void k_embed_fwd(float *out, const int32_t *tok, const float *wte, int C)
{
    const float *src = wte + (size_t)tok[blockIdx.x] * C;
    float *dst = out + (size_t)blockIdx.x * C;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dst[j] = src[j];
}

__global__ void k_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int C)
{
    float *d = dwte + (size_t)tok[blockIdx.x] * C;
    const float *g = dout + (size_t)blockIdx.x * C;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        atomicAdd(d + j, g[j]);
}

extern "C" void krn_cuda_embed_forward(struct krn_cuda *c, float *out, const int32_t *tok,
                                       const float *wte, int N, int C)
{
    PROF(c, "embed fwd");
    k_embed_fwd<<<N, NT, 0, c->st>>>(out, tok, wte, C);
    LAUNCHED(c, "embed forward");
}

extern "C" void krn_cuda_embed_backward(struct krn_cuda *c, float *dwte, const float *dout,
                                        const int32_t *tok, int N, int C)
{
    PROF(c, "embed bwd");
    k_embed_bwd<<<N, NT, 0, c->st>>>(dwte, dout, tok, C);
    LAUNCHED(c, "embed backward");
}

/* ------------------------------------------------------------------ linear */

extern "C" void krn_cuda_linear_forward(struct krn_cuda *c, float *out, const float *inp,
                                        const float *w, int N, int C, int OC)
{
    PROF(c, OC > 65536 ? "head fwd" : "linear fwd");
    krn_cuda_gemm(c, 0, 1, N, OC, C, 1.0f, inp, C, 0, w, C, 0, 0.0f, out, OC, 0, 1);
}

extern "C" void krn_cuda_linear_backward(struct krn_cuda *c, float *dinp, float *dw,
                                         const float *dout, const float *inp, const float *w, int N,
                                         int C, int OC)
{
    PROF(c, OC > 65536 ? "head bwd" : "linear bwd");
    if (dinp)
        krn_cuda_gemm(c, 0, 0, N, C, OC, 1.0f, dout, OC, 0, w, C, 0, 1.0f, dinp, C, 0, 1);
    if (dw)
        krn_cuda_gemm(c, 1, 0, OC, C, N, 1.0f, dout, OC, 0, inp, C, 0, 1.0f, dw, C, 0, 1);
}

/* ------------------------------------------------------------------ narrow BitLinear */

/* The bf16 mode's BitLinear products take their operands in the narrow types the quantizers
 * write: the ternary weights as int8 codes t in {-1, 0, 1} with the matrix scale d (the INT8
 * forward) and as bf16(t d) (the backward's dX: exactly what CUBLAS_COMPUTE_32F_FAST_16BF made
 * of the fp32 t d); the activations as int8 codes q in [-128, 127] with the row scale g / 127
 * (the forward) and as bf16(q g / 127) (the backward's dW, again what FAST_16BF made of them).
 * The forward's integer sums are exact (int32 accumulation on the INT8 tensor cores); the scales
 * are applied after, in fp32. */

/* one weight's code and bf16 value (d the absmean, inv 1 / (d + 1e-5)) */
__device__ __forceinline__ static float wcode(float w, float inv)
{
    float r = rintf(__fmul_rn(w, inv));
    return r > 1.0f ? 1.0f : (r < -1.0f ? -1.0f : r);
}

/* V 4: four weights at a time (n % 4 == 0, w 16-byte, w8 4-byte, wb 8-byte aligned): one
 * 16-byte load, a 4-byte and an 8-byte store, where one byte and one bf16 a thread had left
 * the stores at a third of the bandwidth */
template <int V>
__global__ void k_wquant_narrow(int8_t *w8, __nv_bfloat16 *wb, float *sw, const float *w, size_t n,
                                const double *sabs)
{
    float d = (float)(*sabs / (double)(n ? n : 1));
    float inv = 1.0f / (d + 1e-5f);
    if (!blockIdx.x && !threadIdx.x)
        *sw = d;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n / V;
         i += (size_t)gridDim.x * blockDim.x) {
        if (V == 4) {
            float4 x = ((const float4 *)w)[i];
            float r0 = wcode(x.x, inv), r1 = wcode(x.y, inv), r2 = wcode(x.z, inv),
                  r3 = wcode(x.w, inv);
            ((char4 *)w8)[i] =
                make_char4((signed char)r0, (signed char)r1, (signed char)r2, (signed char)r3);
            __nv_bfloat162 lo = __floats2bfloat162_rn(__fmul_rn(r0, d), __fmul_rn(r1, d)),
                           hi = __floats2bfloat162_rn(__fmul_rn(r2, d), __fmul_rn(r3, d));
            uint2 u;
            u.x = *(uint32_t *)&lo;
            u.y = *(uint32_t *)&hi;
            ((uint2 *)wb)[i] = u;
        } else {
            float r = wcode(w[i], inv);
            w8[i] = (int8_t)r;
            wb[i] = __float2bfloat16_rn(__fmul_rn(r, d));
        }
    }
}

static void wquant_narrow_launch(struct krn_cuda *c, int8_t *w8, uint16_t *wb, float *sw,
                                 const float *w, size_t n, const double *sabs)
{
    __nv_bfloat16 *b = (__nv_bfloat16 *)wb;
    if (n % 4 == 0 && ptr_align(w) >= 16 && ptr_align(w8) >= 4 && ptr_align(wb) >= 8)
        k_wquant_narrow<4><<<blocks(n / 4, NT), NT, 0, c->st>>>(w8, b, sw, w, n, sabs);
    else
        k_wquant_narrow<1><<<blocks(n, NT), NT, 0, c->st>>>(w8, b, sw, w, n, sabs);
}

extern "C" void krn_cuda_wquant_narrow(struct krn_cuda *c, int8_t *w8, uint16_t *wb, float *sw,
                                       const float *w, size_t n)
{
    PROF(c, "weight quant");
    reduce_launch(c, w, n, 2); /* sum |w|: the absmean */
    wquant_narrow_launch(c, w8, wb, sw, w, n, c->red);
    LAUNCHED(c, "wquant narrow");
}

extern "C" void krn_cuda_wquant_narrow_sum(struct krn_cuda *c, int8_t *w8, uint16_t *wb, float *sw,
                                           const float *w, size_t n, const double *sabs)
{
    PROF(c, "weight quant");
    wquant_narrow_launch(c, w8, wb, sw, w, n, sabs);
    LAUNCHED(c, "wquant narrow");
}

__global__ void k_aquant_narrow(int8_t *x8, __nv_bfloat16 *xb, float *sx, const float *x, int C)
{
    size_t r0 = (size_t)blockIdx.x * C;
    const float *xr = x + r0;
    float g = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        g = fmaxf(g, fabsf(xr[j]));
    g = block_max(g);
    float s = 127.0f / (g + 1e-5f), back = g / 127.0f;
    if (!threadIdx.x)
        sx[blockIdx.x] = back;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float q = rintf(__fmul_rn(xr[j], s));
        q = q > 127.0f ? 127.0f : (q < -128.0f ? -128.0f : q);
        x8[r0 + j] = (int8_t)q;
        xb[r0 + j] = __float2bfloat16_rn(__fmul_rn(q, back));
    }
}

extern "C" void krn_cuda_aquant_narrow(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                       const float *x, int N, int C)
{
    PROF(c, "activation quant");
    k_aquant_narrow<<<N, NT, 0, c->st>>>(x8, (__nv_bfloat16 *)xb, sx, x, C);
    LAUNCHED(c, "aquant narrow");
}

/* An INT8 product's output element from its exact sum a, the row's scale s and the matrix's d:
 * the one rounding sequence of every kernel that scales sums (no contraction into an FMA), so
 * the fused consumers equal the scaling pass bit for bit; qres adds it to the residual r. */
__device__ __forceinline__ static float qval1(int a, float s, float d)
{
    return __fmul_rn(__fmul_rn((float)a, s), d);
}
__device__ __forceinline__ static float4 qval4(int4 a, float s, float d)
{
    return make_float4(qval1(a.x, s, d), qval1(a.y, s, d), qval1(a.z, s, d), qval1(a.w, s, d));
}
__device__ __forceinline__ static float4 qres4(float4 r, int4 a, float s, float d)
{
    float4 y = qval4(a, s, d);
    return make_float4(__fadd_rn(r.x, y.x), __fadd_rn(r.y, y.y), __fadd_rn(r.z, y.z),
                       __fadd_rn(r.w, y.w));
}

/* Four bf16 values (8 bytes) as floats (exact). */
__device__ __forceinline__ static float4 bf16x4(uint2 u)
{
    float2 lo = __bfloat1622float2(*(__nv_bfloat162 *)&u.x),
           hi = __bfloat1622float2(*(__nv_bfloat162 *)&u.y);
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}

/* silu(g) u: the one formula of the SwiGLU forward, the fused SubLN forward and the backward's
 * recomputed h (the same float operations, so the same values). */
__device__ __forceinline__ static float swiglu1(float g, float u)
{
    return g / (1.0f + expf(-g)) * u;
}

/* RMSNorm (k_rms_fwd's formula) and then k_aquant_narrow of its output in one pass, the row
 * held in registers (RQ_PER values per thread) and the normalised row never stored. SW: the
 * row is h = silu(gg) uu, computed here (the SwiGLU forward's h never stored either). */
#define RQ_PER 16 /* RQ_PER * 1024 = KRN_CUDA_NORM_MAX */
template <int SW, int PER, int MINB>
__global__ void __launch_bounds__(1024, MINB)
    k_rms_aquant(int8_t *x8, __nv_bfloat16 *xb, float *sx, float *rstd, const float *inp,
                 const float *gg, const float *uu, const float *w, int C, float eps)
{
    size_t r0 = (size_t)blockIdx.x * C;
    float v[PER], ss = 0.0f, g = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = threadIdx.x + i * blockDim.x;
        v[i] = j >= C ? 0.0f : SW ? swiglu1(gg[r0 + j], uu[r0 + j]) : inp[r0 + j];
        ss += v[i] * v[i];
    }
    ss = block_sum(ss);
    float inv = 1.0f / sqrtf(ss / (float)C + eps);
    if (!threadIdx.x)
        rstd[blockIdx.x] = inv;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = threadIdx.x + i * blockDim.x;
        v[i] = j < C ? w[j] * (v[i] * inv) : 0.0f;
        g = fmaxf(g, fabsf(v[i]));
    }
    g = block_max(g);
    float s = 127.0f / (g + 1e-5f), back = g / 127.0f;
    if (!threadIdx.x)
        sx[blockIdx.x] = back;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = threadIdx.x + i * blockDim.x;
        if (j < C) {
            float q = rintf(__fmul_rn(v[i], s));
            q = q > 127.0f ? 127.0f : (q < -128.0f ? -128.0f : q);
            x8[r0 + j] = (int8_t)q;
            xb[r0 + j] = __float2bfloat16_rn(__fmul_rn(q, back));
        }
    }
}

/* The same with the row staged in shared memory (C floats) instead of registers: float4 loads,
 * few registers, 256 threads, so that up to 8 rows per multiprocessor are in flight (the
 * register variant fits 2 rows of 3072); the sums in the same order for SW and not (the fused
 * pass equals swiglu then this, bit for bit). C % 4 == 0, inp/g/u 16-byte, x8 4-byte and xb
 * 8-byte aligned. */
/* An INT8 product's exact sums read by the kernel that consumes the product's output, which
 * scales them itself (no scaling pass of its own). SW 2: g and u from the gate|up product's sums;
 * SW 3: the residual stream x = inp + the o or down product's scaled sums, written over the
 * sums (k_qscale4's arithmetic), then normalised. */
struct gu_i32 {
    const int32_t *sum;     /* [N][ld]: the gate's sums, then the up's at + C (SW 3: xo's) */
    const float *sx;        /* the input codes' row scales */
    const float *sg, *su;   /* the gate's and the up's matrix scales (SW 3: sg, the matrix's) */
    __nv_bfloat16 *gb, *ub; /* g and u written in bf16 [N][C] for the backward */
    int ld;
    float *xo; /* SW 3: x [N][C] (the same memory as sum, ld C) */
};

/* Four of one matrix's sums scaled as k_qscale4 scales them ((float)acc sx sw) and rounded to
 * bf16, as a product with a bf16 output rounds: the 8 bytes written, the values returned */
__device__ __forceinline__ static float4 gu_scale(int4 a, float s, float d, __nv_bfloat16 *o)
{
    float4 y = qval4(a, s, d);
    __nv_bfloat162 lo = __floats2bfloat162_rn(y.x, y.y), hi = __floats2bfloat162_rn(y.z, y.w);
    uint2 u;
    u.x = *(uint32_t *)&lo;
    u.y = *(uint32_t *)&hi;
    *(uint2 *)o = u;
    return bf16x4(u);
}

template <int SW>
__global__ void __launch_bounds__(256)
    k_rms_aquant_s(int8_t *x8, __nv_bfloat16 *xb, float *sx, float *rstd, const float *inp,
                   const float *gg, const float *uu, const float *w, int C, float eps, int gu16,
                   int wal, struct gu_i32 gi)
{
    extern __shared__ float4 srow[];
    size_t r0 = (size_t)blockIdx.x * C;
    int C4 = C / 4;
    float ss = 0.0f, g = 0.0f;
    float gs = SW >= 2 ? gi.sx[blockIdx.x] : 0.0f, gd = SW >= 2 ? *gi.sg : 0.0f,
          ud = SW == 2 ? *gi.su : 0.0f;
#pragma unroll 4
    for (int j = threadIdx.x; j < C4; j += blockDim.x) {
        float4 v;
        if (SW == 3) { /* as k_qscale4: x = res + acc sx sw */
            v = qres4(((const float4 *)(inp + r0))[j], ((const int4 *)(gi.sum + r0))[j], gs, gd);
            ((float4 *)(gi.xo + r0))[j] = v;
        } else if (SW == 2) {
            const int4 *sr = (const int4 *)(gi.sum + (size_t)blockIdx.x * gi.ld);
            float4 a = gu_scale(sr[j], gs, gd, gi.gb + r0 + 4 * (size_t)j),
                   b = gu_scale(sr[C4 + j], gs, ud, gi.ub + r0 + 4 * (size_t)j);
            v = make_float4(swiglu1(a.x, b.x), swiglu1(a.y, b.y), swiglu1(a.z, b.z),
                            swiglu1(a.w, b.w));
        } else if (SW) {
            float4 a = gu16 ? bf16x4(((const uint2 *)((const __nv_bfloat16 *)gg + r0))[j])
                            : ((const float4 *)(gg + r0))[j],
                   b = gu16 ? bf16x4(((const uint2 *)((const __nv_bfloat16 *)uu + r0))[j])
                            : ((const float4 *)(uu + r0))[j];
            v = make_float4(swiglu1(a.x, b.x), swiglu1(a.y, b.y), swiglu1(a.z, b.z),
                            swiglu1(a.w, b.w));
        } else
            v = ((const float4 *)(inp + r0))[j];
        srow[j] = v;
        ss += v.x * v.x;
        ss += v.y * v.y;
        ss += v.z * v.z;
        ss += v.w * v.w;
    }
    ss = block_sum(ss);
    float inv = 1.0f / sqrtf(ss / (float)C + eps);
    if (!threadIdx.x)
        rstd[blockIdx.x] = inv;
    const float4 *w4 = (const float4 *)w;
    for (int j = threadIdx.x; j < C4; j += blockDim.x) { /* the normalised row, kept in srow */
        float4 v = srow[j],
               ww = wal ? w4[j] : make_float4(w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]);
        v = make_float4(ww.x * (v.x * inv), ww.y * (v.y * inv), ww.z * (v.z * inv),
                        ww.w * (v.w * inv));
        srow[j] = v;
        g = fmaxf(g, fabsf(v.x));
        g = fmaxf(g, fabsf(v.y));
        g = fmaxf(g, fabsf(v.z));
        g = fmaxf(g, fabsf(v.w));
    }
    g = block_max(g);
    float s = 127.0f / (g + 1e-5f), back = g / 127.0f;
    if (!threadIdx.x)
        sx[blockIdx.x] = back;
    for (int j = threadIdx.x; j < C4; j += blockDim.x) {
        float4 v = srow[j];
        float y[4] = {v.x, v.y, v.z, v.w}, q[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            q[e] = rintf(__fmul_rn(y[e], s));
            q[e] = q[e] > 127.0f ? 127.0f : (q[e] < -128.0f ? -128.0f : q[e]);
        }
        char4 c8 =
            make_char4((signed char)q[0], (signed char)q[1], (signed char)q[2], (signed char)q[3]);
        *(char4 *)(x8 + r0 + 4 * (size_t)j) = c8;
        __nv_bfloat162 lo = __floats2bfloat162_rn(__fmul_rn(q[0], back), __fmul_rn(q[1], back)),
                       hi = __floats2bfloat162_rn(__fmul_rn(q[2], back), __fmul_rn(q[3], back));
        uint2 u;
        u.x = *(uint32_t *)&lo;
        u.y = *(uint32_t *)&hi;
        *(uint2 *)(xb + r0 + 4 * (size_t)j) = u;
    }
}

/* A block per row. Rows up to KRN_CUDA_SWIGLU16_MAX (12288) wide with float4 alignment: k_rms_aquant_s; else rows up
 * to 4096 wide: 4 values per thread and up to 2 blocks of 1024 threads
 * per multiprocessor (32 registers), so that enough rows are in flight to keep the memory busy
 * (one warp's loads wait on the row's sums); wider rows: 16 values per thread. */
/* k_rms_aquant_s takes the row (gu16: bf16 g and u need only C % 4 and 8-byte alignment, and
 * w is read as floats where it is not 16-byte aligned) */
static int rms_aquant_s_ok(const void *x, const void *u, const float *w, const int8_t *x8,
                           const uint16_t *xb, int C, int gu16)
{
    return C % 4 == 0 && C <= KRN_CUDA_SWIGLU16_MAX && ptr_align(x) >= (gu16 ? 8 : 16) &&
           (!u || ptr_align(u) >= (gu16 ? 8 : 16)) && (gu16 || ptr_align(w) >= 16) &&
           ptr_align(x8) >= 4 && ptr_align(xb) >= 8;
}

static void rms_aquant_launch(struct krn_cuda *c, int sw, int8_t *x8, uint16_t *xb, float *sx,
                              float *rstd, const float *inp, const float *g, const float *u,
                              const float *w, int N, int C, float eps, int gu16 = 0)
{
    __nv_bfloat16 *b = (__nv_bfloat16 *)xb;
    struct gu_i32 gi = {};
    if (gu16 || rms_aquant_s_ok(sw ? (const void *)g : inp, sw ? u : NULL, w, x8, xb, C, 0)) {
        size_t sm = (size_t)C * sizeof(float);
        int wal = ptr_align(w) >= 16;
        if (sw)
            k_rms_aquant_s<1>
                <<<N, 256, sm, c->st>>>(x8, b, sx, rstd, inp, g, u, w, C, eps, gu16, wal, gi);
        else
            k_rms_aquant_s<0>
                <<<N, 256, sm, c->st>>>(x8, b, sx, rstd, inp, g, u, w, C, eps, 0, wal, gi);
    } else if (C <= 4 * 1024) {
        unsigned t = (unsigned)((C + 4 * 32 - 1) / (4 * 32) * 32);
        if (sw)
            k_rms_aquant<1, 4, 2><<<N, t, 0, c->st>>>(x8, b, sx, rstd, inp, g, u, w, C, eps);
        else
            k_rms_aquant<0, 4, 2><<<N, t, 0, c->st>>>(x8, b, sx, rstd, inp, g, u, w, C, eps);
    } else if (sw)
        k_rms_aquant<1, RQ_PER, 1><<<N, 1024, 0, c->st>>>(x8, b, sx, rstd, inp, g, u, w, C, eps);
    else
        k_rms_aquant<0, RQ_PER, 1><<<N, 1024, 0, c->st>>>(x8, b, sx, rstd, inp, g, u, w, C, eps);
}

extern "C" int krn_cuda_rmsnorm_aquant(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                       float *rstd, const float *inp, const float *w, int N, int C,
                                       float eps)
{
    if (C > RQ_PER * 1024)
        return KRN_CUDA_EINVAL;
    PROF(c, "rmsnorm+quant fwd");
    rms_aquant_launch(c, 0, x8, xb, sx, rstd, inp, NULL, NULL, w, N, C, eps);
    LAUNCHED(c, "rmsnorm + aquant");
    return 0;
}

extern "C" int krn_cuda_swiglu_rmsnorm_aquant(struct krn_cuda *c, int8_t *x8, uint16_t *xb,
                                              float *sx, float *rstd, const float *g,
                                              const float *u, const float *w, int N, int C,
                                              float eps)
{
    if (C > RQ_PER * 1024)
        return KRN_CUDA_EINVAL;
    if (N <= 0 || C <= 0)
        return 0;
    PROF(c, "swiglu+rmsnorm+quant fwd");
    rms_aquant_launch(c, 1, x8, xb, sx, rstd, NULL, g, u, w, N, C, eps);
    LAUNCHED(c, "swiglu + rmsnorm + aquant");
    return 0;
}

extern "C" int krn_cuda_swiglu_rmsnorm_aquant_b16(struct krn_cuda *c, int8_t *x8, uint16_t *xb,
                                                  float *sx, float *rstd, const uint16_t *g,
                                                  const uint16_t *u, const float *w, int N, int C,
                                                  float eps)
{
    if (!rms_aquant_s_ok(g, u, w, x8, xb, C, 1))
        return KRN_CUDA_EINVAL;
    if (N <= 0)
        return 0;
    PROF(c, "swiglu+rmsnorm+quant fwd");
    rms_aquant_launch(c, 1, x8, xb, sx, rstd, NULL, (const float *)g, (const float *)u, w, N, C,
                      eps, 1);
    LAUNCHED(c, "swiglu + rmsnorm + aquant");
    return 0;
}

extern "C" int krn_cuda_swiglu_rmsnorm_aquant_i32(struct krn_cuda *c, int8_t *x8, uint16_t *xb,
                                                  float *sx, float *rstd, uint16_t *gb,
                                                  uint16_t *ub, const int32_t *gu, int ld,
                                                  const float *gsx, const float *sg,
                                                  const float *su, const float *w, int N, int C,
                                                  float eps)
{
    if (!rms_aquant_s_ok(gb, ub, w, x8, xb, C, 1) || ptr_align(gu) < 16 || ld % 4 || ld < 2 * C)
        return KRN_CUDA_EINVAL;
    if (N <= 0)
        return 0;
    PROF(c, "swiglu+rmsnorm+quant fwd");
    struct gu_i32 gi = {gu, gsx, sg, su, (__nv_bfloat16 *)gb, (__nv_bfloat16 *)ub, ld, NULL};
    k_rms_aquant_s<2><<<N, 256, (size_t)C * sizeof(float), c->st>>>(
        x8, (__nv_bfloat16 *)xb, sx, rstd, NULL, NULL, NULL, w, C, eps, 1, ptr_align(w) >= 16, gi);
    LAUNCHED(c, "swiglu + rmsnorm + aquant from int32 sums");
    return 0;
}

/* The largest power of two (<= 256) that divides the address. */
static int ptr_align(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && a % (uintptr_t)al)
        al >>= 1;
    return al;
}

/* The cached cublasLt plan of one INT8 product shape (NULL: the table is full). A plan whose
 * heuristic found no kernel (odd shapes, unaligned pointers) has ok 0: the fallback kernel. */
static struct lt_plan *lt_plan_get(struct krn_cuda *c, int N, int C, int OC, int al)
{
    for (int i = 0; i < c->nplans; i++) {
        struct lt_plan *p = &c->plans[i];
        if (p->N == N && p->C == C && p->OC == OC && p->al == al)
            return p;
    }
    if (c->nplans == LT_PLANS)
        return NULL;
    struct lt_plan *p = &c->plans[c->nplans++];
    memset(p, 0, sizeof(*p));
    p->N = N;
    p->C = C;
    p->OC = OC;
    p->al = al;
    cublasOperation_t ta = CUBLAS_OP_T;
    uint64_t wsb = c->ws ? CUBLAS_WS : 0;
    uint32_t alb = (uint32_t)al;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t r;
    int got = 0;
    /* column-major: D [OC][N] = op(A) B with A = W8 stored [C][OC] (transposed: the "TN" form
     * the INT8 kernels want), B = X8 stored [C][N] */
    int ok =
        cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32I, CUDA_R_32I) == 0 &&
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) == 0 &&
        cublasLtMatrixLayoutCreate(&p->la, CUDA_R_8I, C, OC, C) == 0 &&
        cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_8I, C, N, C) == 0 &&
        cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32I, OC, N, OC) == 0 &&
        cublasLtMatmulPreferenceCreate(&pref) == 0;
    cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    ok = ok && cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &wsb, sizeof(wsb)) == 0;
    for (int i = 0; i < 4 && ok; i++)
        ok = cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &alb, sizeof(alb)) == 0;
    ok = ok && cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &r,
                                              &got) == 0;
    p->ok = ok && got > 0 && r.state == CUBLAS_STATUS_SUCCESS;
    if (p->ok)
        p->algo = r.algo;
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    return p;
}

/* acc[n][o] = sum_k x8[n][k] w8[o][k]: one thread per output, for what cublasLt does not take. */
__global__ void k_qgemm_ref(int32_t *acc, const int8_t *x8, const int8_t *w8, int N, int C, int OC)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC)
        return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        const int8_t *xr = x8 + (size_t)n * C, *wr = w8 + (size_t)o * C;
        int s = 0;
        for (int k = 0; k < C; k++)
            s += (int)xr[k] * (int)wr[k];
        acc[(size_t)n * OC + o] = s;
    }
}

/* Row-major acc [N][OC] = X8 [N][C] . W8 [OC][C]^T in exact int32. */
static void qgemm(struct krn_cuda *c, int32_t *acc, const int8_t *x8, const int8_t *w8, int N,
                  int C, int OC)
{
    int al = ptr_align(x8), aw = ptr_align(w8), ac = ptr_align(acc);
    al = al < aw ? al : aw;
    al = al < ac ? al : ac;
    struct lt_plan *p = c->lt ? lt_plan_get(c, N, C, OC, al) : NULL;
    if (p && p->ok) {
        int32_t one = 1, zero = 0;
        cublasStatus_t s =
            cublasLtMatmul(c->lt, p->op, &one, w8, p->la, x8, p->lb, &zero, acc, p->lc, acc, p->lc,
                           &p->algo, c->ws, c->ws ? CUBLAS_WS : 0, c->st);
        if (s != CUBLAS_STATUS_SUCCESS)
            fail(c, KRN_CUDA_EDEVICE, "cublasLt: int8 product %dx%dx%d: %s", N, OC, C,
                 cublasGetStatusString(s));
        return;
    }
    unsigned gy = (unsigned)(N < 65535 ? N : 65535);
    k_qgemm_ref<<<dim3((unsigned)((OC + 127) / 128), gy), 128, 0, c->st>>>(acc, x8, w8, N, C, OC);
    LAUNCHED(c, "int8 product");
}

/* io[n][o] = res[n][o] + acc[n][o] sx[n] sw, the int32 acc read from io itself; one block per
 * row. */
__global__ void k_qscale(float *io, const float *res, const float *sx, const float *sw, int OC)
{
    size_t r0 = (size_t)blockIdx.x * OC;
    float s = sx[blockIdx.x], d = *sw;
    for (int j = threadIdx.x; j < OC; j += blockDim.x) {
        float y = qval1(__float_as_int(io[r0 + j]), s, d);
        io[r0 + j] = res ? __fadd_rn(res[r0 + j], y) : y;
    }
}

/* The same four columns at a time (OC % 4 == 0, io and res 16-byte aligned). */
__global__ void k_qscale4(float4 *io, const float4 *res, const float *sx, const float *sw, int OC4)
{
    size_t r0 = (size_t)blockIdx.x * OC4;
    float s = sx[blockIdx.x], d = *sw;
    for (int j = threadIdx.x; j < OC4; j += blockDim.x) {
        float4 v = io[r0 + j];
        int4 a = make_int4(__float_as_int(v.x), __float_as_int(v.y), __float_as_int(v.z),
                           __float_as_int(v.w));
        io[r0 + j] = res ? qres4(res[r0 + j], a, s, d) : qval4(a, s, d);
    }
}

extern "C" void krn_cuda_qlinear_forward(struct krn_cuda *c, float *out, const float *res,
                                         const int8_t *x8, const float *sx, const int8_t *w8,
                                         const float *sw, int N, int C, int OC)
{
    PROF(c, "linear fwd");
    qgemm(c, (int32_t *)out, x8, w8, N, C, OC);
    if (OC % 4 == 0 && ptr_align(out) >= 16 && (!res || ptr_align(res) >= 16))
        k_qscale4<<<N, NT, 0, c->st>>>((float4 *)out, (const float4 *)res, sx, sw, OC / 4);
    else
        k_qscale<<<N, NT, 0, c->st>>>(out, res, sx, sw, OC);
    LAUNCHED(c, "int8 product scale");
}

extern "C" void krn_cuda_qlinear_sums(struct krn_cuda *c, int32_t *acc, const int8_t *x8,
                                      const int8_t *w8, int N, int C, int OC)
{
    PROF(c, "linear fwd");
    qgemm(c, acc, x8, w8, N, C, OC);
}

extern "C" int krn_cuda_res_rmsnorm_aquant(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                           float *rstd, float *io, const float *res,
                                           const float *isx, const float *isw, const float *w,
                                           int N, int C, float eps)
{
    if (C > RQ_PER * 1024)
        return KRN_CUDA_EINVAL;
    if (N <= 0 || C <= 0)
        return 0;
    PROF(c, "residual+rmsnorm+quant fwd");
    if (rms_aquant_s_ok(io, res, w, x8, xb, C, 0)) {
        struct gu_i32 gi = {(const int32_t *)io, isx, isw, NULL, NULL, NULL, C, io};
        k_rms_aquant_s<3><<<N, 256, (size_t)C * sizeof(float), c->st>>>(
            x8, (__nv_bfloat16 *)xb, sx, rstd, res, NULL, NULL, w, C, eps, 0, 1, gi);
    } else { /* the two passes it fuses */
        k_qscale<<<N, NT, 0, c->st>>>(io, res, isx, isw, C);
        rms_aquant_launch(c, 0, x8, xb, sx, rstd, io, NULL, NULL, w, N, C, eps);
    }
    LAUNCHED(c, "residual + rmsnorm + aquant from int32 sums");
    return 0;
}

__global__ void k_to_bf16(__nv_bfloat16 *o, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        o[i] = __float2bfloat16_rn(x[i]);
}

/* The same four at a time (n4 = n / 4; x 16-byte, o 8-byte aligned). */
__global__ void k_to_bf16_4(__nv_bfloat162 *o, const float4 *x, size_t n4)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        float4 v = x[i];
        o[2 * i] = __floats2bfloat162_rn(v.x, v.y);
        o[2 * i + 1] = __floats2bfloat162_rn(v.z, v.w);
    }
}

static void to_bf16(struct krn_cuda *c, uint16_t *o, const float *x, size_t n)
{
    if (n % 4 == 0 && ptr_align(x) >= 16 && ptr_align(o) >= 8)
        k_to_bf16_4<<<blocks(n / 4, NT), NT, 0, c->st>>>((__nv_bfloat162 *)o, (const float4 *)x,
                                                         n / 4);
    else
        k_to_bf16<<<blocks(n, NT), NT, 0, c->st>>>((__nv_bfloat16 *)o, x, n);
    LAUNCHED(c, "bf16 copy");
}

/* out[r][0..C) (rows ldo apart) = bf16(x[r][0..C)); V 4: float4 loads, 8-byte stores */
template <int V>
__global__ void k_to_bf16_rows(__nv_bfloat16 *o, int ldo, const float *x, int N, int C)
{
    int cv = C / V;
    size_t n = (size_t)N * cv;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cv, j = (i % cv) * V;
        const float *s = x + r * C + j;
        __nv_bfloat16 *d = o + r * ldo + j;
        if (V == 4) {
            float4 v = *(const float4 *)s;
            __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y),
                           hi = __floats2bfloat162_rn(v.z, v.w);
            uint2 u;
            u.x = *(uint32_t *)&lo;
            u.y = *(uint32_t *)&hi;
            *(uint2 *)d = u;
        } else
            *d = __float2bfloat16_rn(*s);
    }
}

extern "C" void krn_cuda_to_bf16_rows(struct krn_cuda *c, uint16_t *out, int ldo, const float *x,
                                      int N, int C)
{
    if (N <= 0 || C <= 0)
        return;
    PROF(c, "bf16 copy");
    size_t n = (size_t)N * C;
    if (C % 4 == 0 && ldo % 4 == 0 && ptr_align(x) >= 16 && ptr_align(out) >= 8)
        k_to_bf16_rows<4><<<blocks(n / 4, NT), NT, 0, c->st>>>((__nv_bfloat16 *)out, ldo, x, N, C);
    else
        k_to_bf16_rows<1><<<blocks(n, NT), NT, 0, c->st>>>((__nv_bfloat16 *)out, ldo, x, N, C);
    LAUNCHED(c, "bf16 row copy");
}

/* Row-major C[M][N] = op(A) op(B) + beta C, A and B bf16, C fp32, fp32 accumulation. */
static void gemm_bf16t(struct krn_cuda *c, int ta, int tb, int M, int N, int K, const void *A,
                       int lda, const void *B, int ldb, float beta, void *C, cudaDataType ct,
                       int ldc)
{
    float alpha = 1.0f;
    cublasStatus_t s =
        cublasGemmEx(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                     K, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C, ct, ldc,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        fail(c, s == CUBLAS_STATUS_ALLOC_FAILED ? KRN_CUDA_ENOMEM : KRN_CUDA_EDEVICE,
             "cublas: bf16 gemm %dx%dx%d: %s", M, N, K, cublasGetStatusString(s));
}

static void gemm_bf16(struct krn_cuda *c, int ta, int tb, int M, int N, int K, const void *A,
                      int lda, const void *B, int ldb, float beta, float *C, int ldc)
{
    gemm_bf16t(c, ta, tb, M, N, K, A, lda, B, ldb, beta, C, CUDA_R_32F, ldc);
}

extern "C" void krn_cuda_blinear_forward(struct krn_cuda *c, float *out, const float *res,
                                         const uint16_t *xb, const uint16_t *wb, int N, int C,
                                         int OC)
{
    PROF(c, "linear fwd");
    if (res)
        chk(c,
            cudaMemcpyAsync(out, res, (size_t)N * OC * sizeof(float), cudaMemcpyDeviceToDevice,
                            c->st),
            "copy on device");
    gemm_bf16(c, 0, 1, N, OC, C, xb, C, wb, C, res ? 1.0f : 0.0f, out, OC);
}

extern "C" void krn_cuda_blinear_forward_bf16(struct krn_cuda *c, uint16_t *out, const uint16_t *xb,
                                              const uint16_t *wb, int N, int C, int OC)
{
    PROF(c, "linear fwd");
    gemm_bf16t(c, 0, 1, N, OC, C, xb, C, wb, C, 0.0f, out, CUDA_R_16BF, OC);
}

extern "C" void krn_cuda_to_bf16(struct krn_cuda *c, uint16_t *out, const float *x, size_t n)
{
    PROF(c, "bf16 copy");
    to_bf16(c, out, x, n);
}

extern "C" void krn_cuda_qlinear_backward(struct krn_cuda *c, float *dinp, float beta, float *dw,
                                          float wbeta, const float *dout, const uint16_t *xb,
                                          const uint16_t *wb, uint16_t *scratch, int N, int C,
                                          int OC)
{
    PROF(c, "linear bwd");
    to_bf16(c, scratch, dout, (size_t)N * OC);
    krn_cuda_blinear_backward(c, dinp, beta, dw, wbeta, scratch, xb, wb, N, C, OC);
}

extern "C" void krn_cuda_blinear_backward_b16(struct krn_cuda *c, uint16_t *dinp, float *dw,
                                              float wbeta, const uint16_t *dob, const uint16_t *xb,
                                              const uint16_t *wb, int N, int C, int OC)
{
    PROF(c, "linear bwd");
    gemm_bf16t(c, 0, 0, N, C, OC, dob, OC, wb, C, 0.0f, dinp, CUDA_R_16BF, C);
    krn_cuda_blinear_backward(c, NULL, 0.0f, dw, wbeta, dob, xb, wb, N, C, OC);
}

extern "C" void krn_cuda_blinear_backward(struct krn_cuda *c, float *dinp, float beta, float *dw,
                                          float wbeta, const uint16_t *dob, const uint16_t *xb,
                                          const uint16_t *wb, int N, int C, int OC)
{
    PROF(c, "linear bwd");
    if (dinp) /* dX [N][C] += dY [N][OC] . Wb [OC][C] */
        gemm_bf16(c, 0, 0, N, C, OC, dob, OC, wb, C, beta, dinp, C);
    if (dw) /* dW [OC][C] = wbeta dW + dY^T . Xb [N][C] */
        gemm_bf16(c, 1, 0, OC, C, N, dob, OC, xb, C, wbeta, dw, C);
}

/* ------------------------------------------------------------------ RMSNorm */

/* A float as an output element: fp32, or bf16 for outputs that only feed bf16 products. */
template <typename O> __device__ __forceinline__ static O out_of(float v);
template <> __device__ __forceinline__ float out_of<float>(float v)
{
    return v;
}
template <> __device__ __forceinline__ __nv_bfloat16 out_of<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

template <typename O>
__global__ void k_rms_fwd(O *out, float *rstd, const float *inp, const float *w, int C, float eps)
{
    const float *x = inp + (size_t)blockIdx.x * C;
    O *y = out + (size_t)blockIdx.x * C;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        ss += x[j] * x[j];
    ss = block_sum(ss);
    float inv = 1.0f / sqrtf(ss / (float)C + eps);
    if (!threadIdx.x)
        rstd[blockIdx.x] = inv;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        y[j] = out_of<O>(w[j] * (x[j] * inv));
}

/* The same for rows up to 4 x 1024 wide, held in registers (PER values per thread, read once)
 * and up to 2 blocks of 1024 threads per multiprocessor (k_rms_aquant's launch). */
template <typename O, int PER>
__global__ void __launch_bounds__(1024, 2)
    k_rms_fwd_r(O *out, float *rstd, const float *inp, const float *w, int C, float eps)
{
    const float *x = inp + (size_t)blockIdx.x * C;
    O *y = out + (size_t)blockIdx.x * C;
    float v[PER], ss = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = threadIdx.x + i * blockDim.x;
        v[i] = j < C ? x[j] : 0.0f;
        ss += v[i] * v[i];
    }
    ss = block_sum(ss);
    float inv = 1.0f / sqrtf(ss / (float)C + eps);
    if (!threadIdx.x)
        rstd[blockIdx.x] = inv;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = threadIdx.x + i * blockDim.x;
        if (j < C)
            y[j] = out_of<O>(w[j] * (v[i] * inv));
    }
}

/* The forward with one warp per row, for short rows (QK-norm's head_dim): a block of 256
 * threads holds 8 rows and needs no block-wide synchronisation. */
template <typename O>
__global__ void k_rms_fwd_w(O *out, float *rstd, const float *inp, const float *w, int N, int C,
                            float eps)
{
    int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    O *y = out + (size_t)row * C;
    float ss = 0.0f;
    for (int j = lane; j < C; j += 32)
        ss += x[j] * x[j];
    ss = warp_sum(ss);
    float inv = 1.0f / sqrtf(ss / (float)C + eps);
    if (!lane)
        rstd[row] = inv;
    for (int j = lane; j < C; j += 32)
        y[j] = out_of<O>(w[j] * (x[j] * inv));
}

/* The backward of rows wider than the fused kernel holds (C > RB_MAX): dX by one block per row,
 * dW by a second pass over dy and x (one atomic per column per RMS_DW_ROWS rows). */
__global__ void k_rms_bwd(float *dinp, int acc, const float *dout, const float *inp, const float *w,
                          const float *rstd, int C)
{
    const float *x = inp + (size_t)blockIdx.x * C, *dy = dout + (size_t)blockIdx.x * C;
    float *dx = dinp + (size_t)blockIdx.x * C, s = rstd[blockIdx.x];
    double dot = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dot += (double)(w[j] * dy[j]) * x[j];
    dot = block_sumd(dot);
    float k = (float)dot * s * s * s / (float)C;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float d = s * w[j] * dy[j] - x[j] * k;
        dx[j] = acc ? dx[j] + d : d;
    }
}

#define RMS_DW_ROWS 64
__global__ void k_rms_dw(float *dw, const float *dout, const float *inp, const float *rstd, int N,
                         int C)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= C)
        return;
    int r0 = blockIdx.y * RMS_DW_ROWS, r1 = min(N, r0 + RMS_DW_ROWS);
    float s = 0.0f;
    for (int r = r0; r < r1; r++)
        s += dout[(size_t)r * C + j] * inp[(size_t)r * C + j] * rstd[r];
    atomicAdd(dw + j, s);
}

/* The fused RMSNorm backward. A group of G threads (a warp: RB_WARP, 8 groups per block; else
 * the whole block) takes one row at a time, PER vectors of V floats per thread (V 4: float4
 * loads), the row held in registers between the dot and dX: dy and x are read once, dX
 * written once (acc 0) or read and written (acc 1). Each thread owns its columns for all the
 * rows of its group: w is read once per block and dW's partial sums dy x rstd stay in
 * registers; the warp groups add theirs in shared memory, then one atomic per column per
 * block; a one-group block writes them to a.part instead (k_colsum adds the blocks' rows: 512
 * blocks' same-column atomics had cost more than the row work). The row's dot is an fp32 sum
 * per thread, then across threads. SW: x is h = silu(g) u recomputed from g and u, and dX goes
 * on through the SwiGLU backward into dg, du (overwritten). */
#define RB_MAX KRN_CUDA_NORM_MAX /* widest row the fused kernels hold in registers */
#define RB_ROWS 8                /* rows per warp group (C <= 256); wider: by occupancy */
struct rms_bw {
    float *dx, *dg, *du, *dw;
    const float *dy, *x, *g, *u, *w, *rstd;
    int N, C, acc;
    int b16; /* dx (acc 0), or with SW dg and du, are bf16 [N][C] (products' operands) */
    /* where row r's outputs go: (r / rpt) ldo + (r % rpt) C elements from dx (dg, du), so
     * that several products' dY can share one wider row (rpt 1, ldo C: [N][C]) */
    int rpt, ldo;
    /* dW's per-block partial sums [gridDim.x][C], added into dw by k_colsum after (no
     * same-column atomics from every block); NULL: atomics */
    float *part;
    /* the fused attention's D (krn_cuda_rmsnorm_backward_flash): hd [B][C / 128][T] the dot of
     * dX and x over each 128 columns of row b T + t, one warp's float4s (NULL: none) */
    float *hd;
    int hT;
    int dy16; /* dy is bf16 [N][C] (the down product's dX, krn_cuda_swiglu_rmsnorm_backward_b16) */
    int x16;  /* x is bf16 [N][C] (q and k before QK-norm, kept in bf16 by krn_cuda_qkv_i32) */
    int gu16; /* g and u are bf16 [N][C] (the gate and up products' outputs, as autocast keeps them) */
    __nv_bfloat16 *mirror; /* the fp32 dX [N][C] written there in bf16 too (NULL: not) */
};

__device__ __forceinline__ static size_t rms_out_row(const struct rms_bw &a, int row)
{
    return a.rpt > 1 ? (size_t)(row / a.rpt) * a.ldo + (size_t)(row % a.rpt) * a.C
                     : (size_t)row * a.ldo;
}

template <int V> __device__ __forceinline__ static void ldv(float *d, const float *p)
{
    if (V == 4) {
        float4 t = *(const float4 *)p;
        d[0] = t.x, d[1] = t.y, d[2] = t.z, d[3] = t.w;
    } else
        d[0] = *p;
}

template <int V> __device__ __forceinline__ static void stv(float *p, const float *d)
{
    if (V == 4)
        *(float4 *)p = make_float4(d[0], d[1], d[2], d[3]);
    else
        *p = d[0];
}

/* d[0..V) to p as fp32 (b16 0) or bf16 (b16 1; p is then a bf16 array's element index base) */
template <int V>
__device__ __forceinline__ static void stv2(float *p, size_t i, const float *d, int b16)
{
    if (!b16) {
        stv<V>(p + i, d);
        return;
    }
    __nv_bfloat16 *q = (__nv_bfloat16 *)p + i;
    if (V == 4) {
        __nv_bfloat162 lo = __floats2bfloat162_rn(d[0], d[1]),
                       hi = __floats2bfloat162_rn(d[2], d[3]);
        uint2 u;
        u.x = *(uint32_t *)&lo;
        u.y = *(uint32_t *)&hi;
        *(uint2 *)q = u;
    } else
        *q = __float2bfloat16_rn(d[0]);
}

/* Elements i..i+V of x as floats: fp32, or with b16 bf16 (x is then a bf16 array) */
template <int V>
__device__ __forceinline__ static void ldx(float *d, const float *x, size_t i, int b16)
{
    if (!b16) {
        ldv<V>(d, x + i);
        return;
    }
    const __nv_bfloat16 *p = (const __nv_bfloat16 *)x + i;
    if (V == 4) {
        float4 t = bf16x4(*(const uint2 *)p);
        d[0] = t.x, d[1] = t.y, d[2] = t.z, d[3] = t.w;
    } else
        d[0] = __bfloat162float(*p);
}

template <int V, int PER, int WARP, int SW, int LB>
__global__ void __launch_bounds__(LB) k_rms_bwd_f(struct rms_bw a)
{
    __shared__ float red[WARP ? 8 * 256 : 1];
    int G = WARP ? 32 : blockDim.x, t = WARP ? threadIdx.x & 31 : threadIdx.x;
    int ng = WARP ? blockDim.x >> 5 : 1, grp = WARP ? threadIdx.x >> 5 : 0, C = a.C;
    float wv[PER][V], dwp[PER][V];
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int col = (t + i * G) * V;
#pragma unroll
        for (int e = 0; e < V; e++)
            wv[i][e] = dwp[i][e] = 0.0f;
        if (col < C)
            ldv<V>(wv[i], a.w + col);
    }
    for (int row = blockIdx.x * ng + grp; row < a.N; row += gridDim.x * ng) {
        size_t r0 = (size_t)row * C, o0 = rms_out_row(a, row);
        float xv[PER][V], dyv[PER][V], gv[SW ? PER : 1][V], uv[SW ? PER : 1][V];
        float dxv[SW ? 1 : PER][V]; /* acc: dX's old values, loaded with the row */
        float dot = 0.0f; /* fp32: a double per element cost a fifth of the kernel's time */
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int col = (t + i * G) * V;
            if (col >= C)
                continue;
            ldx<V>(dyv[i], a.dy, r0 + col, a.dy16);
            if (SW) {
                ldx<V>(gv[SW ? i : 0], a.g, r0 + col, a.gu16);
                ldx<V>(uv[SW ? i : 0], a.u, r0 + col, a.gu16);
#pragma unroll
                for (int e = 0; e < V; e++)
                    xv[i][e] = swiglu1(gv[SW ? i : 0][e], uv[SW ? i : 0][e]);
            } else {
                ldx<V>(xv[i], a.x, r0 + col, a.x16);
                if (a.acc)
                    ldv<V>(dxv[SW ? 0 : i], a.dx + o0 + col);
            }
#pragma unroll
            for (int e = 0; e < V; e++)
                dot += wv[i][e] * dyv[i][e] * xv[i][e];
        }
        dot = WARP ? warp_sum(dot) : block_sum(dot);
        float s = a.rstd[row], k = dot * s * s * s / (float)C;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int col = (t + i * G) * V;
            if (col >= C)
                continue;
            float d[V], o[V];
#pragma unroll
            for (int e = 0; e < V; e++) {
                d[e] = s * wv[i][e] * dyv[i][e] - xv[i][e] * k;
                dwp[i][e] += dyv[i][e] * xv[i][e] * s;
            }
            if (SW) { /* k_swiglu_bwd's formula with dout = d */
                float dgv[V];
#pragma unroll
                for (int e = 0; e < V; e++) {
                    float g = gv[SW ? i : 0][e], u = uv[SW ? i : 0][e];
                    float sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
                    o[e] = d[e] * silu;
                    dgv[e] = d[e] * u * sg * (1.0f + g * (1.0f - sg));
                }
                stv2<V>(a.du, o0 + col, o, a.b16);
                stv2<V>(a.dg, o0 + col, dgv, a.b16);
            } else {
#pragma unroll
                for (int e = 0; e < V; e++)
                    o[e] = a.acc ? dxv[SW ? 0 : i][e] + d[e] : d[e];
                stv2<V>(a.dx, o0 + col, o, a.b16);
                if (a.mirror)
                    stv2<V>((float *)a.mirror, r0 + col, o, 1);
                if (!WARP && V == 4 &&
                    a.hd) { /* the launcher checked: a warp is one head's 128 columns */
                    float hs = 0.0f;
#pragma unroll
                    for (int e = 0; e < V; e++)
                        hs += d[e] * xv[i][e];
                    hs = warp_sum(hs);
                    if ((threadIdx.x & 31) == 0)
                        a.hd[((size_t)(row / a.hT) * (C / 128) + col / 128) * a.hT + row % a.hT] =
                            hs;
                }
            }
        }
    }
    if (!a.dw)
        return;
    if (WARP) { /* the warps' partials of each column added in shared memory first */
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int col = (t + i * G) * V;
            if (col >= C)
                continue;
#pragma unroll
            for (int e = 0; e < V; e++)
                red[grp * 256 + col + e] = dwp[i][e];
        }
        __syncthreads();
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            float s = 0.0f;
            for (int q = 0; q < ng; q++)
                s += red[q * 256 + j];
            atomicAdd(a.dw + j, s);
        }
    } else { /* the block is one group: each column has one owner */
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int col = (t + i * G) * V;
            if (col >= C)
                continue;
            if (a.part)
                stv<V>(a.part + (size_t)blockIdx.x * C + col, dwp[i]);
            else
#pragma unroll
                for (int e = 0; e < V; e++)
                    atomicAdd(a.dw + col + e, dwp[i][e]);
        }
    }
}

/* dw[j] += sum over nb rows of part[r][j]: 32 columns per block, its 32 warps over the rows */
__global__ void __launch_bounds__(1024) k_colsum(float *dw, const float *part, int nb, int C)
{
    __shared__ float sh[32][33];
    int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, j = blockIdx.x * 32 + lane;
    float s = 0.0f;
    if (j < C)
#pragma unroll 4
        for (int r = wp; r < nb; r += 32)
            s += part[(size_t)r * C + j];
    sh[wp][lane] = s;
    __syncthreads();
    if (wp == 0 && j < C) {
        float t = 0.0f;
        for (int q = 0; q < 32; q++)
            t += sh[q][lane];
        dw[j] += t;
    }
}

static int al16(const void *p)
{
    return !p || ptr_align(p) >= 16;
}

/* The context's scratch of at least n floats for dW partials (kept, grown on demand; NULL when
 * it cannot be had: the caller uses atomics). */
static float *part_buf(struct krn_cuda *c, size_t n)
{
    if (n > c->part_n) {
        if (c->part)
            cudaFree(c->part);
        c->part = NULL;
        c->part_n = 0;
        if (cudaMalloc((void **)&c->part, n * sizeof(float)) != cudaSuccess) {
            cudaGetLastError(); /* not sticky: the atomics take over */
            c->part = NULL;
            return NULL;
        }
        c->part_n = n;
    }
    return c->part;
}

/* Blocks of kernel f with nt threads resident per multiprocessor (cached; 1 if unknown). */
static int occupancy(struct krn_cuda *c, void *f, unsigned nt)
{
    for (int i = 0; i < c->nocc; i++)
        if (c->occ[i].f == f && c->occ[i].nt == nt)
            return c->occ[i].n;
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, (int)nt, 0) != cudaSuccess || n < 1) {
        cudaGetLastError();
        n = 1;
    }
    if (c->nocc < (int)(sizeof(c->occ) / sizeof(c->occ[0]))) {
        c->occ[c->nocc].f = f;
        c->occ[c->nocc].nt = nt;
        c->occ[c->nocc++].n = n;
    }
    return n;
}

/* Four values of a row as loaded: fp32 (a float4) or bf16 (B16: 8 bytes, half the registers) */
template <int B16> struct quad;
template <> struct quad<0> {
    float4 r;
    __device__ __forceinline__ void ld(const float *p, size_t i)
    {
        r = *(const float4 *)(p + i);
    }
    __device__ __forceinline__ float4 get() const
    {
        return r;
    }
};
template <> struct quad<1> {
    uint2 r;
    __device__ __forceinline__ void ld(const float *p, size_t i)
    {
        r = *(const uint2 *)((const __nv_bfloat16 *)p + i);
    }
    __device__ __forceinline__ float4 get() const
    {
        return bf16x4(r);
    }
};

/* The SwiGLU + SubLN backward for rows of C % 4 == 0 (16-byte aligned fp32, 8-byte aligned
 * bf16), at C 6144 (Qwen3-1.7B's FFN) the widest row kernel of the step. k_rms_bwd_f's SW
 * path held dy, g, u, h and w as floats and dW's partials in registers: 128 registers for 384
 * threads a row, one block (12 warps) per multiprocessor, and a row's loads never overlapped
 * another row's sums (1.2 TB/s). Here dy, g and u stay as loaded (bf16: 2 registers per 4
 * values), h is recomputed in the second pass from the one exp of g that also gives sigmoid(g),
 * and w and dW's partials live in shared memory (each thread owns the same columns for all of
 * its block's rows, so neither needs a barrier): up to 42 registers, 2 blocks of 768 threads
 * (48 warps) per multiprocessor. The formulas and their order per element are k_rms_bwd_f's;
 * the dot and dW sum in an order fixed by C alone (the launch depends only on C and the
 * device), so the fp32 and the bf16 instances of one row give the same bits on the same
 * values. */
/* The SwiGLU + SubLN backward's arithmetic on four columns of a row (both kernels below, the
 * same operations in the same order): the row's dot sum w dy h, added to dot */
__device__ __forceinline__ static float swb_dot4(float dot, float4 W, float4 D, float4 G, float4 U)
{
    const float *wv = &W.x, *dv = &D.x, *gv = &G.x, *uv = &U.x;
#pragma unroll
    for (int e = 0; e < 4; e++)
        dot += wv[e] * dv[e] * swiglu1(gv[e], uv[e]);
    return dot;
}

/* ... then dG, dU of the four (s the row's rstd, k its dot s^3 / C) written at o (bf16 when O16),
 * dW's partials P += dy h s */
template <int O16>
__device__ __forceinline__ static void swb_out4(const struct rms_bw &a, size_t o, float s, float k,
                                                float4 W, float4 D, float4 G, float4 U, float4 &P)
{
    const float *wv = &W.x, *dv = &D.x, *gv = &G.x, *uv = &U.x;
    float *pv = &P.x, du[4], dg[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float g = gv[e], u = uv[e], ex = expf(-g);
        float x = g / (1.0f + ex) * u; /* swiglu1(g, u), the same operations */
        float d = s * wv[e] * dv[e] - x * k;
        pv[e] += dv[e] * x * s;
        float sg = 1.0f / (1.0f + ex), silu = g * sg;
        du[e] = d * silu;
        dg[e] = d * u * sg * (1.0f + g * (1.0f - sg));
    }
    stv2<4>(a.du, o, du, O16);
    stv2<4>(a.dg, o, dg, O16);
}

/* the block's dW partials of columns 4 j.. to its row of a.part (else atomics into a.dw) */
__device__ __forceinline__ static void swb_dw4(const struct rms_bw &a, int j, float4 P)
{
    if (a.part)
        ((float4 *)(a.part + (size_t)blockIdx.x * a.C))[j] = P;
    else {
        atomicAdd(a.dw + 4 * j, P.x);
        atomicAdd(a.dw + 4 * j + 1, P.y);
        atomicAdd(a.dw + 4 * j + 2, P.z);
        atomicAdd(a.dw + 4 * j + 3, P.w);
    }
}

#define SWB_SMEM(C) ((size_t)(C)*2 * sizeof(float)) /* w, dW partials */
template <int DY16, int GU16, int O16, int PER, int LB, int MINB>
__global__ void __launch_bounds__(LB, MINB) k_swrms_bwd(struct rms_bw a)
{
    extern __shared__ float4 swb4[];
    int C = a.C, C4 = C / 4, t = threadIdx.x;
    float4 *sw = swb4, *sdw = swb4 + C4;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = t + i * (int)blockDim.x;
        if (j < C4) {
            sw[j] = ((const float4 *)a.w)[j];
            sdw[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    }
    for (int row = blockIdx.x; row < a.N; row += gridDim.x) {
        size_t r0 = (size_t)row * C, o0 = rms_out_row(a, row);
        quad<DY16> dy[PER];
        quad<GU16> gq[PER], uq[PER];
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int j = t + i * (int)blockDim.x;
            if (j < C4) {
                dy[i].ld(a.dy, r0 + 4 * (size_t)j);
                gq[i].ld(a.g, r0 + 4 * (size_t)j);
                uq[i].ld(a.u, r0 + 4 * (size_t)j);
            }
        }
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int j = t + i * (int)blockDim.x;
            if (j < C4)
                dot = swb_dot4(dot, sw[j], dy[i].get(), gq[i].get(), uq[i].get());
        }
        dot = block_sum(dot);
        float s = a.rstd[row], k = dot * s * s * s / (float)C;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int j = t + i * (int)blockDim.x;
            if (j >= C4)
                continue;
            float4 P = sdw[j];
            swb_out4<O16>(a, o0 + 4 * (size_t)j, s, k, sw[j], dy[i].get(), gq[i].get(), uq[i].get(),
                          P);
            sdw[j] = P;
        }
    }
    if (!a.dw)
        return;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = t + i * (int)blockDim.x;
        if (j < C4)
            swb_dw4(a, j, sdw[j]);
    }
}

/* k_swrms_bwd for the step's own operands (dy, g, u and dG, dU all bf16), pipelined: each thread
 * copies its columns of the block's next row into shared memory (cp.async, two stages) while it
 * works on this one, so that a row's loads no longer wait behind the row before's sums; w and
 * dW's partials in registers. Each thread reads only the slots it copied (no barrier for them).
 * The same operations in the same order as k_swrms_bwd<1, 1, 1>, on the same grid: the same bits. */
#define SWP_SMEM(C) ((size_t)(C)*12) /* 2 stages of dy, g, u rows in bf16 */
template <int PER, int MINB>
__global__ void __launch_bounds__(768, MINB) k_swrms_bwd_p(struct rms_bw a)
{
    extern __shared__ uint2 swp[];
    int C = a.C, C4 = C / 4, t = threadIdx.x;
    const __nv_bfloat16 *dy = (const __nv_bfloat16 *)a.dy, *gg = (const __nv_bfloat16 *)a.g,
                        *uu = (const __nv_bfloat16 *)a.u;
    float4 wv[PER], pv[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = t + i * (int)blockDim.x;
        wv[i] = j < C4 ? ((const float4 *)a.w)[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        pv[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    auto issue = [&](int row, int b) {
        size_t r0 = (size_t)row * C;
        uint2 *st = swp + (size_t)b * 3 * C4;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int j = t + i * (int)blockDim.x;
            if (j < C4) {
                cp_async8(st + j, dy + r0 + 4 * (size_t)j);
                cp_async8(st + C4 + j, gg + r0 + 4 * (size_t)j);
                cp_async8(st + 2 * C4 + j, uu + r0 + 4 * (size_t)j);
            }
        }
    };
    int row = blockIdx.x, b = 0;
    if (row < a.N)
        issue(row, 0);
    cp_commit();
    for (; row < a.N; row += gridDim.x, b ^= 1) {
        if (row + (int)gridDim.x < a.N)
            issue(row + gridDim.x, b ^ 1);
        cp_commit();
        cp_wait<1>(); /* this row's copies (the next row's may still be in flight) */
        const uint2 *st = swp + (size_t)b * 3 * C4;
        size_t o0 = rms_out_row(a, row);
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int j = t + i * (int)blockDim.x;
            if (j < C4)
                dot =
                    swb_dot4(dot, wv[i], bf16x4(st[j]), bf16x4(st[C4 + j]), bf16x4(st[2 * C4 + j]));
        }
        dot = block_sum(dot);
        float s = a.rstd[row], k = dot * s * s * s / (float)C;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int j = t + i * (int)blockDim.x;
            if (j < C4)
                swb_out4<1>(a, o0 + 4 * (size_t)j, s, k, wv[i], bf16x4(st[j]), bf16x4(st[C4 + j]),
                            bf16x4(st[2 * C4 + j]), pv[i]);
        }
    }
    if (!a.dw)
        return;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int j = t + i * (int)blockDim.x;
        if (j < C4)
            swb_dw4(a, j, pv[i]);
    }
}

/* k_swrms_bwd's instance for a's input types: 768 threads hold a row of up to 6144 (PER 2, 2
 * blocks per multiprocessor: 40 registers) or 12288 (PER 4, 1 block: 80 registers) */
#define SWB_KERNEL(PER, MINB)                                                                      \
    (a->dy16                                                                                       \
         ? (a->gu16 ? k_swrms_bwd<1, 1, 1, PER, 768, MINB> : k_swrms_bwd<1, 0, 1, PER, 768, MINB>) \
     : a->b16 ? k_swrms_bwd<0, 0, 1, PER, 768, MINB>                                               \
              : k_swrms_bwd<0, 0, 0, PER, 768, MINB>)
static int swrms_bw_launch(struct krn_cuda *c, struct rms_bw *a)
{
    int C = a->C, N = a->N, per = C <= 6144 ? 2 : 4, minb = per == 2 ? 2 : 1;
    void (*kf)(struct rms_bw) = per == 4 ? SWB_KERNEL(4, 1) : SWB_KERNEL(2, 2);
    size_t sm = SWB_SMEM(C), smk = sm;
    if (a->dy16 && a->gu16 && a->b16 && !c->swb_old) { /* the step's operands: pipelined */
        kf = per == 4 ? k_swrms_bwd_p<4, 1> : k_swrms_bwd_p<2, 2>;
        smk = SWP_SMEM(C);
    }
    if (smk > 32 * 1024 && /* 48 KiB with the static block_sum slots passes the default limit */
        cudaFuncSetAttribute(kf, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smk) !=
            cudaSuccess) {
        cudaGetLastError();
        return -1; /* the caller keeps k_rms_bwd_f */
    }
    unsigned nt = (unsigned)(((C / 4 + per - 1) / per + 31) / 32 * 32);
    /* rows per block: the grid one wave of the blocks that fit by threads, by the registers the
     * launch bounds allow and by shared memory (not the instance's own register count: the
     * launch must not depend on the input types) */
    int regs = 65536 / (768 * minb) / 8 * 8, fit = 2048 / (int)nt;
    int fr = 65536 / ((int)nt * regs), fs = (int)((200 * 1024) / sm);
    fit = fr < fit ? fr : fit;
    fit = fs < fit ? fs : fit;
    fit = fit < 1 ? 1 : fit;
    int wave = c->nsm * fit, rows = (N + wave - 1) / wave;
    unsigned grid = (unsigned)((N + rows - 1) / rows);
    a->part = a->dw && !c->rb_atomic ? part_buf(c, (size_t)grid * C) : NULL;
    kf<<<grid, nt, smk, c->st>>>(*a);
    if (a->part)
        k_colsum<<<(unsigned)((C + 31) / 32), 1024, 0, c->st>>>(a->dw, a->part, (int)grid, C);
    return 0;
}

/* Launches the fused backward for a (C <= RB_MAX): warp groups for C <= 256, else one group of
 * G threads per block, G the fewest warps that hold the row in PER vectors per thread; up to
 * 512 threads (128 registers each) for C <= 8192, 1024 (64 registers) beyond. */
#define RB_KERNELS(V, PER, WARP, LB)                                                               \
    (sw ? k_rms_bwd_f<V, PER, WARP, 1, LB> : k_rms_bwd_f<V, PER, WARP, 0, LB>)
static void rms_bw_launch(struct krn_cuda *c, struct rms_bw *a, int sw)
{
    int C = a->C, N = a->N;
    if (a->rpt < 1)
        a->rpt = 1;
    if (a->ldo < 1)
        a->ldo = a->rpt * C;
    int v4 = C % 4 == 0 && a->ldo % 4 == 0 && al16(a->dx) && al16(a->dg) && al16(a->du) &&
             al16(a->dy) && al16(a->x) && al16(a->g) && al16(a->u) && al16(a->w) && al16(a->mirror);
    if (sw && v4 && C > 256 && C <= KRN_CUDA_SWIGLU16_MAX && a->rpt == 1 && c->swb_old != 1 &&
        !swrms_bw_launch(c, a))
        return;
    void (*kf)(struct rms_bw);
    int per, rows = c->rb_rows > 0 ? c->rb_rows : RB_ROWS;
    unsigned nt = 256, grid = (unsigned)((N + 8 * rows - 1) / (8 * rows));
    if (C <= 256) {
        if (v4)
            kf = C <= 128 ? RB_KERNELS(4, 1, 1, 256) : RB_KERNELS(4, 2, 1, 256);
        else
            kf = RB_KERNELS(1, 8, 1, 256);
    } else {
        if (v4) {
            per = C <= 4096 ? 2 : 4;
            kf = C <= 4096   ? RB_KERNELS(4, 2, 0, 512)
                 : C <= 8192 ? RB_KERNELS(4, 4, 0, 512)
                             : RB_KERNELS(4, 4, 0, 1024);
        } else {
            per = C <= 4096 ? 8 : 16;
            kf = C <= 4096   ? RB_KERNELS(1, 8, 0, 512)
                 : C <= 8192 ? RB_KERNELS(1, 16, 0, 512)
                             : RB_KERNELS(1, 16, 0, 1024);
        }
        int nv = v4 ? C / 4 : C, g = (nv + per - 1) / per;
        nt = (unsigned)((g + 31) / 32 * 32);
        /* rows per block: the fewest that make the grid one wave of resident blocks (a second,
         * partial wave cost up to a quarter: bench-cuda-train --norms at C 1024 and 3072) */
        if (c->rb_rows <= 0) {
            int wave = c->nsm * occupancy(c, (void *)kf, nt);
            rows = (N + wave - 1) / wave;
        }
        grid = (unsigned)((N + rows - 1) / rows);
        a->part = a->dw && !c->rb_atomic ? part_buf(c, (size_t)grid * C) : NULL;
    }
    kf<<<grid, nt, 0, c->st>>>(*a);
    if (a->part)
        k_colsum<<<(unsigned)((C + 31) / 32), 1024, 0, c->st>>>(a->dw, a->part, (int)grid, C);
}

template <typename O>
static void rms_fwd(struct krn_cuda *c, O *out, float *rstd, const float *inp, const float *w,
                    int N, int C, float eps)
{
    if (C <= 256)
        k_rms_fwd_w<O><<<(unsigned)((N + 7) / 8), 256, 0, c->st>>>(out, rstd, inp, w, N, C, eps);
    else if (C <= 4 * 1024)
        k_rms_fwd_r<O, 4>
            <<<N, (unsigned)((C + 127) / 128 * 32), 0, c->st>>>(out, rstd, inp, w, C, eps);
    else
        k_rms_fwd<O><<<N, C >= 1024 ? NT : 128, 0, c->st>>>(out, rstd, inp, w, C, eps);
    LAUNCHED(c, "rmsnorm forward");
}

extern "C" void krn_cuda_rmsnorm_forward(struct krn_cuda *c, float *out, float *rstd,
                                         const float *inp, const float *w, int N, int C, float eps)
{
    PROF(c, "rmsnorm fwd");
    rms_fwd(c, out, rstd, inp, w, N, C, eps);
}

extern "C" void krn_cuda_rmsnorm_forward_bf16(struct krn_cuda *c, uint16_t *out, float *rstd,
                                              const float *inp, const float *w, int N, int C,
                                              float eps)
{
    PROF(c, "rmsnorm fwd");
    rms_fwd(c, (__nv_bfloat16 *)out, rstd, inp, w, N, C, eps);
}

extern "C" void krn_cuda_rmsnorm_backward(struct krn_cuda *c, float *dinp, int acc, float *dw,
                                          const float *dout, const float *inp, const float *w,
                                          const float *rstd, int N, int C)
{
    if (N <= 0 || C <= 0)
        return;
    PROF(c, "rmsnorm bwd");
    if (C <= RB_MAX) {
        struct rms_bw a = {};
        a.dx = dinp, a.dw = dw, a.dy = dout, a.x = inp, a.w = w, a.rstd = rstd;
        a.N = N, a.C = C, a.acc = acc;
        rms_bw_launch(c, &a, 0);
    } else {
        k_rms_bwd<<<N, NT, 0, c->st>>>(dinp, acc, dout, inp, w, rstd, C);
        if (dw) {
            dim3 g((unsigned)((C + 127) / 128), (unsigned)((N + RMS_DW_ROWS - 1) / RMS_DW_ROWS));
            k_rms_dw<<<g, 128, 0, c->st>>>(dw, dout, inp, rstd, N, C);
        }
    }
    LAUNCHED(c, "rmsnorm backward");
}

extern "C" int krn_cuda_rmsnorm_backward_mirror(struct krn_cuda *c, float *dinp, int acc,
                                                uint16_t *dinpb, float *dw, const float *dout,
                                                int dout16, const float *inp, const float *w,
                                                const float *rstd, int N, int C)
{
    if (C > RB_MAX)
        return KRN_CUDA_EINVAL;
    if (N <= 0 || C <= 0)
        return 0;
    PROF(c, "rmsnorm bwd");
    struct rms_bw a = {};
    a.dx = dinp, a.dw = dw, a.dy = dout, a.x = inp, a.w = w, a.rstd = rstd;
    a.N = N, a.C = C, a.acc = acc, a.mirror = (__nv_bfloat16 *)dinpb, a.dy16 = dout16 != 0;
    rms_bw_launch(c, &a, 0);
    LAUNCHED(c, "rmsnorm backward");
    return 0;
}

extern "C" int krn_cuda_rmsnorm_backward_bf16(struct krn_cuda *c, uint16_t *dinp, int rpt, int ldo,
                                              float *dw, const float *dout, int dout16,
                                              const float *inp, int inp16, const float *w,
                                              const float *rstd, int N, int C)
{
    if (C > RB_MAX)
        return KRN_CUDA_EINVAL;
    if (N <= 0 || C <= 0)
        return 0;
    PROF(c, "rmsnorm bwd");
    struct rms_bw a = {};
    a.dx = (float *)dinp, a.dw = dw, a.dy = dout, a.x = inp, a.w = w, a.rstd = rstd;
    a.N = N, a.C = C, a.b16 = 1, a.rpt = rpt, a.ldo = ldo, a.dy16 = dout16 != 0;
    a.x16 = inp16 != 0;
    rms_bw_launch(c, &a, 0);
    LAUNCHED(c, "rmsnorm backward");
    return 0;
}

/* kernels/cuda/flash.cu: where the backward's prep writes D and dO in bf16 in its scratch */
extern "C" void krn_cuda_flash_slots_(float *scratch, int B, int T, int NH, float **dd,
                                      uint16_t **dob);

extern "C" int krn_cuda_rmsnorm_backward_flash(struct krn_cuda *c, float *scratch, float *dw,
                                               const float *dout, int dout16, const float *inp,
                                               const float *w, const float *rstd, int B, int T,
                                               int NH)
{
    int N = B * T, C = NH * 128;
    if (N <= 0 || C > RB_MAX || C <= 256 || !al16(dout) || !al16(inp) || !al16(w))
        return KRN_CUDA_EINVAL;
    PROF(c, "rmsnorm bwd");
    float *dd;
    uint16_t *dob;
    krn_cuda_flash_slots_(scratch, B, T, NH, &dd, &dob);
    struct rms_bw a = {};
    a.dx = (float *)dob, a.dw = dw, a.dy = dout, a.x = inp, a.w = w, a.rstd = rstd;
    a.N = N, a.C = C, a.b16 = 1, a.hd = dd, a.hT = T, a.dy16 = dout16 != 0;
    rms_bw_launch(c, &a, 0); /* C > 256, float4s: one group of 32 k-thread warps per row */
    LAUNCHED(c, "rmsnorm backward");
    return 0;
}

static int swiglu_rms_bw(struct krn_cuda *c, float *dg, float *du, int ldo, int b16, float *dw,
                         const float *dout, const float *g, const float *u, const float *w,
                         const float *rstd, int N, int C, int dy16 = 0, int gu16 = 0)
{
    if (C > RB_MAX)
        return KRN_CUDA_EINVAL;
    if (N <= 0 || C <= 0)
        return 0;
    PROF(c, "swiglu+rmsnorm bwd");
    struct rms_bw a = {};
    a.dg = dg, a.du = du, a.dw = dw, a.dy = dout, a.g = g, a.u = u, a.w = w, a.rstd = rstd;
    a.N = N, a.C = C, a.b16 = b16, a.ldo = ldo, a.dy16 = dy16, a.gu16 = gu16;
    rms_bw_launch(c, &a, 1);
    LAUNCHED(c, "swiglu + rmsnorm backward");
    return 0;
}

extern "C" int krn_cuda_swiglu_rmsnorm_backward(struct krn_cuda *c, float *dg, float *du, float *dw,
                                                const float *dout, const float *g, const float *u,
                                                const float *w, const float *rstd, int N, int C)
{
    return swiglu_rms_bw(c, dg, du, 0, 0, dw, dout, g, u, w, rstd, N, C);
}

extern "C" int krn_cuda_swiglu_rmsnorm_backward_bf16(struct krn_cuda *c, uint16_t *dg, uint16_t *du,
                                                     int ldo, float *dw, const float *dout,
                                                     const float *g, const float *u, const float *w,
                                                     const float *rstd, int N, int C)
{
    return swiglu_rms_bw(c, (float *)dg, (float *)du, ldo, 1, dw, dout, g, u, w, rstd, N, C);
}

extern "C" int krn_cuda_swiglu_rmsnorm_backward_b16(struct krn_cuda *c, uint16_t *dg, uint16_t *du,
                                                    int ldo, float *dw, const uint16_t *dout,
                                                    const float *g, const float *u, const float *w,
                                                    const float *rstd, int N, int C)
{
    return swiglu_rms_bw(c, (float *)dg, (float *)du, ldo, 1, dw, (const float *)dout, g, u, w,
                         rstd, N, C, 1);
}

extern "C" int krn_cuda_swiglu_rmsnorm_backward_gu16(struct krn_cuda *c, uint16_t *dg, uint16_t *du,
                                                     int ldo, float *dw, const uint16_t *dout,
                                                     const uint16_t *g, const uint16_t *u,
                                                     const float *w, const float *rstd, int N,
                                                     int C)
{
    return swiglu_rms_bw(c, (float *)dg, (float *)du, ldo, 1, dw, (const float *)dout,
                         (const float *)g, (const float *)u, w, rstd, N, C, 1, 1);
}

/* ------------------------------------------------------------------ RoPE */

/* one thread per (row = b*T*NH + t*NH + h, i < half); O: the forward's output type (bf16: the
 * fused attention's operands, the same float operations rounded); bwd: out += the backward's */
template <typename O>
__global__ void k_rope(O *out, const float *inp, const float *cs, const float *sn, int T, int NH,
                       int HD, size_t n, int bwd)
{
    int half = HD / 2;
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= n)
        return;
    size_t row = idx / half;
    int i = (int)(idx % half), t = (int)((row / NH) % T);
    float co = cs[(size_t)t * half + i], si = sn[(size_t)t * half + i];
    const float *x = inp + row * HD;
    O *y = out + row * HD;
    float x1 = x[i], x2 = x[i + half];
    if (!bwd) {
        y[i] = out_of<O>(x1 * co - x2 * si);
        y[i + half] = out_of<O>(x2 * co + x1 * si);
    } else { /* O is float */
        y[i] = out_of<O>((float)y[i] + (x1 * co + x2 * si));
        y[i + half] = out_of<O>((float)y[i + half] + (x2 * co - x1 * si));
    }
}

template <typename O>
static void rope_fwd(struct krn_cuda *c, O *out, const float *inp, const float *cs, const float *sn,
                     int B, int T, int NH, int HD)
{
    PROF(c, "rope fwd");
    size_t n = (size_t)B * T * NH * (HD / 2);
    k_rope<O><<<(unsigned)((n + NT - 1) / NT), NT, 0, c->st>>>(out, inp, cs, sn, T, NH, HD, n, 0);
    LAUNCHED(c, "rope forward");
}

extern "C" void krn_cuda_rope_forward(struct krn_cuda *c, float *out, const float *inp,
                                      const float *cs, const float *sn, int B, int T, int NH,
                                      int HD)
{
    rope_fwd(c, out, inp, cs, sn, B, T, NH, HD);
}

extern "C" void krn_cuda_rope_forward_bf16(struct krn_cuda *c, uint16_t *out, const float *inp,
                                           const float *cs, const float *sn, int B, int T, int NH,
                                           int HD)
{
    rope_fwd(c, (__nv_bfloat16 *)out, inp, cs, sn, B, T, NH, HD);
}

/* QK-norm (k_rms_fwd_w) then RoPE (k_rope) of one head row held by a warp: lane l holds
 * elements l + 32 i (i < PER = HD / 32) in v, so the sum of squares runs in k_rms_fwd_w's order
 * and RoPE's pairs (j, j + HD / 2) are the lane's own elements i and i + PER / 2; y, on (may be
 * NULL) the row's outputs, rstd its slot, t its position. */
template <int PER>
__device__ __forceinline__ static void qknorm_rope_row(float (&v)[PER], __nv_bfloat16 *y, float *on,
                                                       float *rstd, const float *w, const float *cs,
                                                       const float *sn, int t, float eps, int lane)
{
    const int HD = PER * 32, half = HD / 2;
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; i++)
        ss += v[i] * v[i];
    ss = warp_sum(ss);
    float inv = 1.0f / sqrtf(ss / (float)HD + eps);
    if (!lane)
        *rstd = inv;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        v[i] = w[lane + 32 * i] * (v[i] * inv);
        if (on)
            on[lane + 32 * i] = v[i];
    }
#pragma unroll
    for (int i = 0; i < PER / 2; i++) {
        int j = lane + 32 * i;
        float co = cs[(size_t)t * half + j], si = sn[(size_t)t * half + j];
        float x1 = v[i], x2 = v[i + PER / 2];
        y[j] = __float2bfloat16_rn(x1 * co - x2 * si);
        y[j + half] = __float2bfloat16_rn(x2 * co + x1 * si);
    }
}

/* One warp per head row (row = b*T*NH + t*NH + h), 8 rows per block. */
template <int PER>
__global__ void k_qknorm_rope(__nv_bfloat16 *out, float *on, float *rstd, const float *inp,
                              const float *w, const float *cs, const float *sn, int N, int T,
                              int NH, float eps)
{
    const int HD = PER * 32;
    int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * HD;
    float v[PER];
#pragma unroll
    for (int i = 0; i < PER; i++)
        v[i] = x[lane + 32 * i];
    size_t o = (size_t)row * HD;
    qknorm_rope_row<PER>(v, out + o, on ? on + o : NULL, rstd + row, w, cs, sn, (row / NH) % T, eps,
                         lane);
}

extern "C" int krn_cuda_qknorm_rope_bf16(struct krn_cuda *c, uint16_t *out, float *on, float *rstd,
                                         const float *inp, const float *w, const float *cs,
                                         const float *sn, int B, int T, int NH, int HD, float eps)
{
    int N = B * T * NH;
    if (HD != 64 && HD != 128 && HD != 256)
        return KRN_CUDA_EINVAL;
    if (N <= 0)
        return 0;
    PROF(c, "qknorm+rope fwd");
    unsigned g = (unsigned)((N + 7) / 8);
    __nv_bfloat16 *o = (__nv_bfloat16 *)out;
    if (HD == 64)
        k_qknorm_rope<2><<<g, 256, 0, c->st>>>(o, on, rstd, inp, w, cs, sn, N, T, NH, eps);
    else if (HD == 128)
        k_qknorm_rope<4><<<g, 256, 0, c->st>>>(o, on, rstd, inp, w, cs, sn, N, T, NH, eps);
    else
        k_qknorm_rope<8><<<g, 256, 0, c->st>>>(o, on, rstd, inp, w, cs, sn, N, T, NH, eps);
    LAUNCHED(c, "qknorm + rope forward");
    return 0;
}

/* The q|k|v INT8 product's sums to the attention's operands: one warp per head row of the
 * token's NH + 2 KVH heads (8 per block), each scaled as krn_cuda_qlinear_forward scales
 * (qval1); q and k heads then go on as k_qknorm_rope, v heads to bf16. */
template <int PER>
__global__ void k_qkv_i32(struct krn_cuda_qkv a, int N, int T, int NH, int KVH, float eps)
{
    const int HD = PER * 32;
    int S = NH + 2 * KVH, lane = threadIdx.x & 31;
    long long row = (long long)blockIdx.x * 8 + threadIdx.x / 32;
    if (row >= (long long)N * S)
        return;
    int n = (int)(row / S), h = (int)(row % S);
    int part = h < NH ? 0 : h < NH + KVH ? 1 : 2, nh = part ? KVH : NH;
    int hh = h - (part == 0 ? 0 : part == 1 ? NH : NH + KVH);
    const int32_t *src = a.sum + (size_t)n * S * HD + (size_t)h * HD;
    float s = a.sx[n], d = *(part == 0 ? a.swq : part == 1 ? a.swk : a.swv), v[PER];
    size_t o = ((size_t)n * nh + hh) * HD;
    /* q and k rounded to bf16 as a bf16-output product rounds (what QK-norm reads both ways);
     * v's fp32 values for the relation loss, its bf16 ones for the attention */
    __nv_bfloat16 *xb = (__nv_bfloat16 *)(part == 0 ? a.q : part == 1 ? a.k : a.vb);
#pragma unroll
    for (int i = 0; i < PER; i++) {
        v[i] = qval1(src[lane + 32 * i], s, d);
        if (part == 2 && a.v)
            a.v[o + lane + 32 * i] = v[i];
        __nv_bfloat16 h = __float2bfloat16_rn(v[i]); /* rounded in registers, not re-read */
        xb[o + lane + 32 * i] = h;
        v[i] = __bfloat162float(h);
    }
    if (part == 2)
        return;
    float *on = part ? a.kn : a.qn;
    qknorm_rope_row<PER>(v, (__nv_bfloat16 *)(part ? a.kb : a.qb) + o, on ? on + o : NULL,
                         (part ? a.rk : a.rq) + (size_t)n * nh + hh, part ? a.wk : a.wq, a.cs, a.sn,
                         n % T, eps, lane);
}

extern "C" int krn_cuda_qkv_i32(struct krn_cuda *c, const struct krn_cuda_qkv *a, int B, int T,
                                int NH, int KVH, int HD, float eps)
{
    int N = B * T;
    if ((HD != 64 && HD != 128 && HD != 256) || !a->q || !a->k)
        return KRN_CUDA_EINVAL;
    if (N <= 0)
        return 0;
    PROF(c, "qkv scale+qknorm+rope fwd");
    unsigned g = (unsigned)(((long long)N * (NH + 2 * KVH) + 7) / 8);
    if (HD == 64)
        k_qkv_i32<2><<<g, 256, 0, c->st>>>(*a, N, T, NH, KVH, eps);
    else if (HD == 128)
        k_qkv_i32<4><<<g, 256, 0, c->st>>>(*a, N, T, NH, KVH, eps);
    else
        k_qkv_i32<8><<<g, 256, 0, c->st>>>(*a, N, T, NH, KVH, eps);
    LAUNCHED(c, "qkv from int32 sums + qknorm + rope forward");
    return 0;
}

extern "C" void krn_cuda_rope_backward(struct krn_cuda *c, float *dinp, const float *dout,
                                       const float *cs, const float *sn, int B, int T, int NH,
                                       int HD)
{
    PROF(c, "rope bwd");
    size_t n = (size_t)B * T * NH * (HD / 2);
    k_rope<float>
        <<<(unsigned)((n + NT - 1) / NT), NT, 0, c->st>>>(dinp, dout, cs, sn, T, NH, HD, n, 1);
    LAUNCHED(c, "rope backward");
}

/* ------------------------------------------------------------------ attention */

/* Causal softmax in place over rows of P [rows][T]; row r is query t = r % T. */
__global__ void k_causal_softmax(float *P, int T)
{
    int t = blockIdx.x % T;
    float *p = P + (size_t)blockIdx.x * T, mx = -INFINITY, sum = 0.0f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x)
        mx = fmaxf(mx, p[j]);
    mx = block_max(mx);
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        float e = expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_sum(sum);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < T; j += blockDim.x)
        p[j] = j <= t ? p[j] * inv : 0.0f;
}

/* dS = P * (dP - rowsum(P * dP)) * scale on the causal part, 0 above; one block per row of
 * dP and P, both [B][NH][T][T] (row r is query t = r % T). */
__global__ void k_softmax_bwd(float *dp, const float *P, int T, float scale)
{
    int t = blockIdx.x % T;
    const float *p = P + (size_t)blockIdx.x * T;
    float *d = dp + (size_t)blockIdx.x * T, dot = 0.0f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x)
        dot += p[j] * d[j];
    dot = block_sum(dot);
    for (int j = threadIdx.x; j < T; j += blockDim.x)
        d[j] = j <= t ? p[j] * (d[j] - dot) * scale : 0.0f;
}

static unsigned row_threads(int T)
{
    return T >= 512 ? NT : T >= 128 ? 128 : 32;
}

/* Where operand X of product (b, j) starts: base + b * sb + (j / div) * sj. */
struct bptr {
    const float *base;
    long long sb, sj;
    int div;
};

/* The pointer arrays of a batched product over (b < B, j < J), index b * J + j. */
__global__ void k_bptrs(const float **pa, const float **pb, float **pc, struct bptr a,
                        struct bptr b, struct bptr cc, int B, int J)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * J)
        return;
    int bi = i / J, j = i % J;
    pa[i] = a.base + bi * a.sb + (j / a.div) * a.sj;
    pb[i] = b.base + bi * b.sb + (j / b.div) * b.sj;
    pc[i] = (float *)cc.base + bi * cc.sb + (j / cc.div) * cc.sj;
}

/* Row-major C[M][N] = alpha op(A) op(B) + beta C for every (b, j) at once (cuBLAS pointer-array
 * batch): attention's per-head products as one call instead of one per head. Products of one
 * call must not write the same C (GQA's key/value gradients go one group member per call). */
static void gemm_heads(struct krn_cuda *c, int ta, int tb, int M, int N, int K, float alpha,
                       struct bptr A, int lda, struct bptr B, int ldb, float beta, struct bptr C,
                       int ldc, int nb, int nj)
{
    int n = nb * nj;
    if (n > c->nptr) {
        if (c->ptrs)
            cudaFree(c->ptrs);
        c->ptrs = NULL;
        c->nptr = 0;
        cudaError_t e = cudaMalloc((void **)&c->ptrs, 3 * (size_t)n * sizeof(void *));
        if (e != cudaSuccess) {
            chk(c, e, "attention pointer arrays");
            return;
        }
        c->nptr = n;
    }
    const float **pa = (const float **)c->ptrs, **pb = pa + n;
    float **pc = (float **)(pb + n);
    k_bptrs<<<(unsigned)((n + 127) / 128), 128, 0, c->st>>>(pa, pb, pc, A, B, C, nb, nj);
    LAUNCHED(c, "attention pointer arrays");
    cublasComputeType_t ct = c->bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
    cublasStatus_t s = cublasGemmBatchedEx(
        c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
        (const void *const *)pb, CUDA_R_32F, ldb, (const void *const *)pa, CUDA_R_32F, lda, &beta,
        (void *const *)pc, CUDA_R_32F, ldc, n, ct, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        fail(c, s == CUBLAS_STATUS_ALLOC_FAILED ? KRN_CUDA_ENOMEM : KRN_CUDA_EDEVICE,
             "cublas: batched gemm %dx%dx%d (batch %d): %s", M, N, K, n, cublasGetStatusString(s));
}

static struct bptr bp(const float *base, long long sb, long long sj, int div)
{
    struct bptr r = {base, sb, sj, div};
    return r;
}

extern "C" void krn_cuda_attention_forward(struct krn_cuda *c, float *out, float *probs,
                                           const float *q, const float *k, const float *v, int B,
                                           int T, int NH, int KVH, int HD)
{
    PROF(c, "attention fwd");
    int grp = NH / KVH, qs = NH * HD, ks = KVH * HD;
    float scale = 1.0f / sqrtf((float)HD);
    long long tt = (long long)T * T, tq = (long long)T * qs, tk = (long long)T * ks;
    /* S[b][h] = scale Q[b, :, h] K[b, :, h / grp]^T */
    gemm_heads(c, 0, 1, T, T, HD, scale, bp(q, tq, HD, 1), qs, bp(k, tk, HD, grp), ks, 0.0f,
               bp(probs, NH * tt, tt, 1), T, B, NH);
    k_causal_softmax<<<(unsigned)B * NH * T, row_threads(T), 0, c->st>>>(probs, T);
    LAUNCHED(c, "attention softmax");
    /* O[b, :, h] = P[b][h] V[b, :, h / grp] */
    gemm_heads(c, 0, 0, T, HD, T, 1.0f, bp(probs, NH * tt, tt, 1), T, bp(v, tk, HD, grp), ks, 0.0f,
               bp(out, tq, HD, 1), qs, B, NH);
}

extern "C" void krn_cuda_attention_backward(struct krn_cuda *c, float *dq, float *dk, float *dv,
                                            const float *dout, const float *probs, const float *q,
                                            const float *k, const float *v, int B, int T, int NH,
                                            int KVH, int HD, float *scratch)
{
    PROF(c, "attention bwd");
    int grp = NH / KVH, qs = NH * HD, ks = KVH * HD;
    float scale = 1.0f / sqrtf((float)HD);
    long long tt = (long long)T * T, tq = (long long)T * qs, tk = (long long)T * ks;
    /* dP[b][h] = dO[b, :, h] V[b, :, h / grp]^T, every head at once */
    gemm_heads(c, 0, 1, T, T, HD, 1.0f, bp(dout, tq, HD, 1), qs, bp(v, tk, HD, grp), ks, 0.0f,
               bp(scratch, NH * tt, tt, 1), T, B, NH);
    /* dV[b, :, g] += P[b][h]^T dO[b, :, h] for h = g * grp + r: one group member per call */
    for (int r = 0; r < grp; r++)
        gemm_heads(c, 1, 0, T, HD, T, 1.0f, bp(probs + r * tt, NH * tt, grp * tt, 1), T,
                   bp(dout + (size_t)r * HD, tq, (long long)grp * HD, 1), qs, 1.0f,
                   bp(dv, tk, HD, 1), ks, B, KVH);
    k_softmax_bwd<<<(unsigned)B * NH * T, row_threads(T), 0, c->st>>>(scratch, probs, T, scale);
    LAUNCHED(c, "attention softmax backward");
    /* dQ[b, :, h] += dS[b][h] K[b, :, h / grp] */
    gemm_heads(c, 0, 0, T, HD, T, 1.0f, bp(scratch, NH * tt, tt, 1), T, bp(k, tk, HD, grp), ks,
               1.0f, bp(dq, tq, HD, 1), qs, B, NH);
    /* dK[b, :, g] += dS[b][h]^T Q[b, :, h], one group member per call */
    for (int r = 0; r < grp; r++)
        gemm_heads(c, 1, 0, T, HD, T, 1.0f, bp(scratch + r * tt, NH * tt, grp * tt, 1), T,
                   bp(q + (size_t)r * HD, tq, (long long)grp * HD, 1), qs, 1.0f, bp(dk, tk, HD, 1),
                   ks, B, KVH);
}

/* ------------------------------------------------------------------ flash attention */

/* kernels/cuda/flash.cu; FLASH_FWD_SB: the forward's shared-memory plan (flash.cu's SB) */
#define FLASH_FWD_SB 1
extern "C" cudaError_t krn_cuda_flash_fwd_(cudaStream_t st, float *out, float *lse,
                                           const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                           int B, int T, int NH, int KVH,
                                           int sb); /* 1: single V buffer */
extern "C" cudaError_t krn_cuda_flash_bwd_(cudaStream_t st, float *dq, float *dk, int acc_qk,
                                           float *dv, const float *dout, const float *out,
                                           const float *lse, const uint16_t *q, const uint16_t *k,
                                           const uint16_t *v, int B, int T, int NH, int KVH,
                                           float *scratch, const float *cs, const float *sn,
                                           int parts, /* 1 prep, 2 dK/dV + dS, 4 dQ */
                                           uint16_t *dvb, int ldv);
extern "C" size_t krn_cuda_flash_scratch_(int B, int T, int NH);

extern "C" size_t krn_cuda_flash_scratch(int B, int T, int NH)
{
    return krn_cuda_flash_scratch_(B, T, NH);
}

extern "C" int krn_cuda_flash_supported(int HD)
{
    return HD == 128;
}

static int flash_shape(struct krn_cuda *c, int B, int T, int NH, int KVH, int HD)
{
    if (!krn_cuda_flash_supported(HD) || B < 1 || T < 1 || KVH < 1 || NH % KVH) {
        fail(c, KRN_CUDA_EINVAL,
             "flash attention: unsupported shape B %d T %d heads %d/%d dim %d "
             "(head dim 128, heads a multiple of kv heads)",
             B, T, NH, KVH, HD);
        return 0;
    }
    return 1;
}

extern "C" void krn_cuda_flash_forward(struct krn_cuda *c, float *out, float *lse,
                                       const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                       int B, int T, int NH, int KVH, int HD)
{
    PROF(c, "attention fwd (flash)");
    if (flash_shape(c, B, T, NH, KVH, HD))
        chk(c, krn_cuda_flash_fwd_(c->st, out, lse, q, k, v, B, T, NH, KVH, FLASH_FWD_SB),
            "flash attention forward");
}

extern "C" void krn_cuda_flash_backward(struct krn_cuda *c, float *dq, float *dk, int acc_qk,
                                        float *dv, const float *dout, const float *out,
                                        const float *lse, const uint16_t *q, const uint16_t *k,
                                        const uint16_t *v, int B, int T, int NH, int KVH, int HD,
                                        float *scratch, const float *cs, const float *sn)
{
    PROF(c, "attention bwd (flash)");
    if (flash_shape(c, B, T, NH, KVH, HD))
        chk(c,
            krn_cuda_flash_bwd_(c->st, dq, dk, acc_qk, dv, dout, out, lse, q, k, v, B, T, NH, KVH,
                                scratch, cs, sn, dout ? 7 : 6, NULL, 0),
            "flash attention backward");
}

extern "C" int krn_cuda_flash_backward_v16(struct krn_cuda *c, uint16_t *dqb, uint16_t *dkb,
                                           uint16_t *dvb, int ldv, const float *dout,
                                           const float *out, const float *lse, const uint16_t *q,
                                           const uint16_t *k, const uint16_t *v, int B, int T,
                                           int NH, int KVH, int HD, float *scratch, const float *cs,
                                           const float *sn)
{
    if (ldv < KVH * HD || ldv % 2 || ptr_align(dvb) < 4 || ptr_align(dqb) < 4 || ptr_align(dkb) < 4)
        return KRN_CUDA_EINVAL;
    PROF(c, "attention bwd (flash)");
    if (flash_shape(c, B, T, NH, KVH, HD))
        chk(c,
            krn_cuda_flash_bwd_(c->st, (float *)dqb, (float *)dkb, 0, NULL, dout, out, lse, q, k, v,
                                B, T, NH, KVH, scratch, cs, sn, dout ? 7 : 6, dvb, ldv),
            "flash attention backward");
    return 0;
}

/* ------------------------------------------------------------------ SwiGLU */

/* An input element or four of them as floats: fp32, or bf16 (exact). */
__device__ __forceinline__ static float in_f(float v)
{
    return v;
}
__device__ __forceinline__ static float in_f(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}
__device__ __forceinline__ static float4 in_f4(float4 v)
{
    return v;
}
__device__ __forceinline__ static float4 in_f4(uint2 v)
{
    return bf16x4(v);
}

/* I: fp32 or bf16 g and u (the gate and up outputs kept in bf16: gu16) */
template <typename O, typename I>
__global__ void k_swiglu_fwd(O *out, const I *g, const I *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = out_of<O>(swiglu1(in_f(g[i]), in_f(u[i])));
}

__global__ void k_swiglu_bwd(float *dg, float *du, int acc, const float *dout, const float *g,
                             const float *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float sg = 1.0f / (1.0f + expf(-g[i])), silu = g[i] * sg;
        float eu = dout[i] * silu, eg = dout[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        du[i] = acc ? du[i] + eu : eu;
        dg[i] = acc ? dg[i] + eg : eg;
    }
}

extern "C" void krn_cuda_swiglu_forward(struct krn_cuda *c, float *out, const float *g,
                                        const float *u, size_t n)
{
    PROF(c, "swiglu fwd");
    k_swiglu_fwd<float, float><<<blocks(n, NT), NT, 0, c->st>>>(out, g, u, n);
    LAUNCHED(c, "swiglu forward");
}

/* The bf16 forward four at a time (n4 = n / 4; V4: float4 of fp32 g, u, 16-byte aligned, or
 * uint2 of bf16 ones, 8-byte aligned; out 8-byte aligned). */
template <typename V4>
__global__ void k_swiglu_fwd4(uint2 *out, const V4 *g, const V4 *u, size_t n4)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        float4 a = in_f4(g[i]), b = in_f4(u[i]);
        __nv_bfloat162 lo = __floats2bfloat162_rn(swiglu1(a.x, b.x), swiglu1(a.y, b.y)),
                       hi = __floats2bfloat162_rn(swiglu1(a.z, b.z), swiglu1(a.w, b.w));
        uint2 o;
        o.x = *(uint32_t *)&lo;
        o.y = *(uint32_t *)&hi;
        out[i] = o;
    }
}

/* out = silu(g) u in bf16 from I (fp32 or bf16) g and u: four at a time where aligned (al, the
 * inputs' alignment for that), else one. */
template <typename I, typename V4>
static void swiglu_bf16_launch(struct krn_cuda *c, uint16_t *out, const I *g, const I *u, size_t n,
                               int al)
{
    PROF(c, "swiglu fwd");
    if (n % 4 == 0 && ptr_align(g) >= al && ptr_align(u) >= al && ptr_align(out) >= 8)
        k_swiglu_fwd4<V4><<<blocks(n / 4, NT), NT, 0, c->st>>>((uint2 *)out, (const V4 *)g,
                                                               (const V4 *)u, n / 4);
    else
        k_swiglu_fwd<__nv_bfloat16, I>
            <<<blocks(n, NT), NT, 0, c->st>>>((__nv_bfloat16 *)out, g, u, n);
    LAUNCHED(c, "swiglu forward");
}

extern "C" void krn_cuda_swiglu_forward_bf16(struct krn_cuda *c, uint16_t *out, const float *g,
                                             const float *u, size_t n)
{
    swiglu_bf16_launch<float, float4>(c, out, g, u, n, 16);
}

extern "C" void krn_cuda_swiglu_forward_b16(struct krn_cuda *c, uint16_t *out, const uint16_t *g,
                                            const uint16_t *u, size_t n)
{
    swiglu_bf16_launch<__nv_bfloat16, uint2>(c, out, (const __nv_bfloat16 *)g,
                                             (const __nv_bfloat16 *)u, n, 8);
}

extern "C" void krn_cuda_swiglu_backward(struct krn_cuda *c, float *dg, float *du, int acc,
                                         const float *dout, const float *g, const float *u,
                                         size_t n)
{
    PROF(c, "swiglu bwd");
    k_swiglu_bwd<<<blocks(n, NT), NT, 0, c->st>>>(dg, du, acc, dout, g, u, n);
    LAUNCHED(c, "swiglu backward");
}

/* ------------------------------------------------------------------ losses */

/* max and log-sum-exp of x[V]/tau over the block (every thread gets both). */
__device__ static float row_lse(const float *x, int V, float it)
{
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        mx = fmaxf(mx, x[i]);
    mx = block_max(mx);
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        s += expf((x[i] - mx) * it);
    s = block_sum(s);
    return mx * it + logf(s);
}

__global__ void k_ce(float *rowloss, float *dl, const float *logits, const int32_t *target, int V,
                     float w)
{
    int n = blockIdx.x, tg = target[n];
    if (tg < 0) {
        if (!threadIdx.x)
            rowloss[n] = 0.0f;
        return;
    }
    const float *x = logits + (size_t)n * V;
    float l = row_lse(x, V, 1.0f);
    if (!threadIdx.x)
        rowloss[n] = l - x[tg];
    if (dl) {
        float *d = dl + (size_t)n * V;
        for (int i = threadIdx.x; i < V; i += blockDim.x)
            d[i] += w * (expf(x[i] - l) - (i == tg ? 1.0f : 0.0f));
    }
}

extern "C" void krn_cuda_ce(struct krn_cuda *c, float *rowloss, float *dlogits, const float *logits,
                            const int32_t *target, int N, int V, int kept, float scale)
{
    PROF(c, "cross-entropy");
    float w = kept ? scale / (float)kept : 0.0f;
    k_ce<<<N, NT, 0, c->st>>>(rowloss, kept ? dlogits : NULL, logits, target, V, w);
    LAUNCHED(c, "cross-entropy");
}

__global__ void k_kl(float *rowloss, float *ds, const float *sl, const float *tl,
                     const int32_t *target, int V, float tau, float w)
{
    int n = blockIdx.x;
    if (target[n] < 0) {
        if (!threadIdx.x)
            rowloss[n] = 0.0f;
        return;
    }
    const float *s = sl + (size_t)n * V, *t = tl + (size_t)n * V;
    float it = 1.0f / tau, ls = row_lse(s, V, it), lt = row_lse(t, V, it), kl = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float lpt = t[i] * it - lt, lps = s[i] * it - ls;
        kl += expf(lpt) * (lpt - lps);
        if (ds)
            ds[(size_t)n * V + i] += w * (expf(lps) - expf(lpt));
    }
    kl = block_sum(kl);
    if (!threadIdx.x)
        rowloss[n] = kl;
}

extern "C" void krn_cuda_kl(struct krn_cuda *c, float *rowloss, float *ds, const float *s,
                            const float *t, const int32_t *target, int N, int V, float tau,
                            int kept, float scale)
{
    PROF(c, "logits kl");
    float w = kept ? scale / (float)kept / tau : 0.0f;
    k_kl<<<N, NT, 0, c->st>>>(rowloss, kept ? ds : NULL, s, t, target, V, tau, w);
    LAUNCHED(c, "logits kl");
}

/* kernels/cuda/head.cu */
extern "C" cudaError_t krn_cuda_head_loss_(cudaStream_t st, float *ce, float *kl, uint16_t *g,
                                           const void *s, const void *t, int b16,
                                           const int32_t *target, int N, int V, float tau,
                                           float wce, float wkl);

extern "C" void krn_cuda_head_loss(struct krn_cuda *c, float *ce, float *kl, uint16_t *g,
                                   const void *s, const void *t, int b16, const int32_t *target,
                                   int N, int V, float tau, float wce, float wkl)
{
    PROF(c, "head loss");
    chk(c, krn_cuda_head_loss_(c->st, ce, kl, g, s, t, b16, target, N, V, tau, wce, wkl),
        "head loss");
}

/* ------------------------------------------------------------------ relation distillation */

extern "C" size_t krn_cuda_relation_scratch(int B, int T, int Cs, int Ct, int S)
{
    size_t R = (size_t)B * S * T, ds = (size_t)Cs / S, dt = (size_t)Ct / S;
    /* As, dA [R][ds]; At [R][dt]; Zs, Zt [R][T]; nrm_s, nrm_t, rowloss [R] */
    return R * (2 * ds + dt + 2 * (size_t)T + 3);
}

/* Row (b, h, t) of a [B][S][T][d] from x [B][T][C]: L2-normalised (cosine) or copied; rows at
 * t >= len[b] are zero. One warp per row. */
__global__ void k_rel_gather(float *a, float *nrm, const float *x, const int32_t *len, int S, int T,
                             int C, int cosine, int R)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= R)
        return;
    int d = C / S, t = row % T, h = (row / T) % S, b = row / (T * S);
    int L = len ? min(len[b], T) : T;
    float *dst = a + (size_t)row * d;
    if (t >= L) {
        for (int i = lane; i < d; i += 32)
            dst[i] = 0.0f;
        return;
    }
    const float *src = x + ((size_t)b * T + t) * C + (size_t)h * d;
    float n = 1.0f;
    if (cosine) {
        double ss = 0.0;
        for (int i = lane; i < d; i += 32)
            ss += (double)src[i] * src[i];
        ss = warp_sumd(ss);
        n = (float)sqrt(ss);
        n = n > 1e-12f ? n : 1e-12f;
        if (!lane)
            nrm[row] = n;
    }
    for (int i = lane; i < d; i += 32)
        dst[i] = cosine ? src[i] / n : src[i];
}

/* Row (bs, i) of Zs, Zt [B*S][T][T]: rowloss = KL(softmax zt || softmax zs) over keys < L; zs
 * is overwritten by dz = w*k*(softmax zs - softmax zt) (0 outside the valid square). */
__global__ void k_rel_kl(float *rowloss, float *zs, const float *zt, const int32_t *len, int S,
                         int T, float w, int grad)
{
    int row = blockIdx.x, i = row % T, b = row / (T * S);
    int L = len ? min(len[b], T) : T;
    float *s = zs + (size_t)row * T;
    const float *t = zt + (size_t)row * T;
    if (i >= L) {
        if (grad)
            for (int j = threadIdx.x; j < T; j += blockDim.x)
                s[j] = 0.0f;
        if (!threadIdx.x)
            rowloss[row] = 0.0f;
        return;
    }
    float ls = row_lse(s, L, 1.0f), lt = row_lse(t, L, 1.0f), kl = 0.0f;
    __syncthreads();
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float d = 0.0f;
        if (j < L) {
            float a = s[j] - ls, bb = t[j] - lt, pt = expf(bb);
            kl += pt * (bb - a);
            d = w * (expf(a) - pt);
        }
        if (grad)
            s[j] = d;
    }
    kl = block_sum(kl);
    if (!threadIdx.x)
        rowloss[row] = kl;
}

/* ds[b][t][h*d + i] += normalisation backward of dA row (b, h, t); one warp per row. */
__global__ void k_rel_scatter(float *dsv, const float *a, const float *da, const float *nrm,
                              const int32_t *len, int S, int T, int C, int cosine, int R)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= R)
        return;
    int d = C / S, t = row % T, h = (row / T) % S, b = row / (T * S);
    int L = len ? min(len[b], T) : T;
    if (t >= L)
        return;
    const float *y = a + (size_t)row * d, *dy = da + (size_t)row * d;
    float *dx = dsv + ((size_t)b * T + t) * C + (size_t)h * d;
    float yd = 0.0f;
    if (cosine) {
        for (int i = lane; i < d; i += 32)
            yd += y[i] * dy[i];
        yd = warp_sum(yd);
    }
    for (int i = lane; i < d; i += 32)
        dx[i] += cosine ? (dy[i] - y[i] * yd) / nrm[row] : dy[i];
}

extern "C" double krn_cuda_relation(struct krn_cuda *c, float *dsv, const float *s, const float *t,
                                    const int32_t *len, int rows, int B, int T, int Cs, int Ct,
                                    int S, int scaled, float t_r, float scale, float *scratch)
{
    PROF(c, "relation");
    if (rows <= 0)
        return 0.0;
    int ds = Cs / S, dt = Ct / S, R = B * S * T, cosine = !scaled;
    float *as = scratch, *da = as + (size_t)R * ds, *at = da + (size_t)R * ds;
    float *zs = at + (size_t)R * dt, *zt = zs + (size_t)R * T, *ns = zt + (size_t)R * T;
    float *nt = ns + R, *rl = nt + R;
    float ks = cosine ? 1.0f / t_r : 1.0f / sqrtf((float)ds);
    float kt = cosine ? 1.0f / t_r : 1.0f / sqrtf((float)dt);
    unsigned wb = (unsigned)((R + 7) / 8);
    long long tt = (long long)T * T;
    k_rel_gather<<<wb, 256, 0, c->st>>>(as, ns, s, len, S, T, Cs, cosine, R);
    k_rel_gather<<<wb, 256, 0, c->st>>>(at, nt, t, len, S, T, Ct, cosine, R);
    LAUNCHED(c, "relation gather");
    krn_cuda_gemm(c, 0, 1, T, T, ds, ks, as, ds, (long long)T * ds, as, ds, (long long)T * ds, 0.0f,
                  zs, T, tt, B * S);
    krn_cuda_gemm(c, 0, 1, T, T, dt, kt, at, dt, (long long)T * dt, at, dt, (long long)T * dt, 0.0f,
                  zt, T, tt, B * S);
    float w = (float)(scale / ((double)rows * S)) * ks;
    k_rel_kl<<<R, row_threads(T), 0, c->st>>>(rl, zs, zt, len, S, T, w, dsv != NULL);
    LAUNCHED(c, "relation kl");
    double loss = krn_cuda_sum(c, rl, (size_t)R) / ((double)rows * S);
    if (dsv) {
        /* dA = (dZ + dZ^T) A */
        krn_cuda_gemm(c, 0, 0, T, ds, T, 1.0f, zs, T, tt, as, ds, (long long)T * ds, 0.0f, da, ds,
                      (long long)T * ds, B * S);
        krn_cuda_gemm(c, 1, 0, T, ds, T, 1.0f, zs, T, tt, as, ds, (long long)T * ds, 1.0f, da, ds,
                      (long long)T * ds, B * S);
        k_rel_scatter<<<wb, 256, 0, c->st>>>(dsv, as, da, ns, len, S, T, Cs, cosine, R);
        LAUNCHED(c, "relation scatter");
    }
    return loss;
}

/* ------------------------------------------------------------------ AdamW */

/* sabs: the block's sum of |p| after the update added into *sabs (double, one atomic per block):
 * the absmean of the weight quantizer that reads p next (krn_cuda_wquant_narrow_sum), so it
 * need not read p once more for it */
__device__ __forceinline__ static void abs_sum_out(double *sabs, double s)
{
    s = block_sumd(s);
    if (!threadIdx.x)
        atomicAdd(sabs, s);
}

template <int ABS>
__global__ void k_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                        float b2, float eps, float wd, float bc1, float bc2, float cs, double *sabs)
{
    double sa = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * cs;
        float mi = b1 * m[i] + (1.0f - b1) * gi, vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i];
        pi -= lr * wd * pi;
        pi -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        p[i] = pi;
        if (ABS)
            sa += fabs((double)pi);
    }
    if (ABS)
        abs_sum_out(sabs, sa);
}

/* The same four elements at a time (n4 = n / 4; every array 16-byte aligned): 16-byte loads
 * and stores, k_adamw's arithmetic per element. */
template <int ABS>
__global__ void k_adamw4(float4 *p4, const float4 *g4, float4 *m4, float4 *v4, size_t n4, float lr,
                         float b1, float b2, float eps, float wd, float bc1, float bc2, float cs,
                         double *sabs)
{
    double sa = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        float4 P = p4[i], G = g4[i], M = m4[i], V = v4[i];
        float *p = &P.x, *g = &G.x, *m = &M.x, *v = &V.x;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float gi = g[e] * cs;
            float mi = b1 * m[e] + (1.0f - b1) * gi, vi = b2 * v[e] + (1.0f - b2) * gi * gi;
            m[e] = mi;
            v[e] = vi;
            float pi = p[e];
            pi -= lr * wd * pi;
            pi -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
            p[e] = pi;
            if (ABS)
                sa += fabs((double)pi);
        }
        p4[i] = P;
        m4[i] = M;
        v4[i] = V;
    }
    if (ABS)
        abs_sum_out(sabs, sa);
}

extern "C" void krn_cuda_adamw_abs(struct krn_cuda *c, float *p, const float *g, float *m, float *v,
                                   size_t n, float lr, float b1, float b2, float eps, float wd,
                                   float bc1, float bc2, float cs, double *sabs)
{
    PROF(c, "adamw");
    if (n % 4 == 0 && ptr_align(p) >= 16 && ptr_align(g) >= 16 && ptr_align(m) >= 16 &&
        ptr_align(v) >= 16) {
        float4 *p4 = (float4 *)p, *m4 = (float4 *)m, *v4 = (float4 *)v;
        const float4 *g4 = (const float4 *)g;
        unsigned nb = blocks(n / 4, NT);
        if (sabs)
            k_adamw4<1><<<nb, NT, 0, c->st>>>(p4, g4, m4, v4, n / 4, lr, b1, b2, eps, wd, bc1, bc2,
                                              cs, sabs);
        else
            k_adamw4<0><<<nb, NT, 0, c->st>>>(p4, g4, m4, v4, n / 4, lr, b1, b2, eps, wd, bc1, bc2,
                                              cs, sabs);
    } else if (sabs)
        k_adamw<1><<<blocks(n, NT), NT, 0, c->st>>>(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2,
                                                    cs, sabs);
    else
        k_adamw<0><<<blocks(n, NT), NT, 0, c->st>>>(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2,
                                                    cs, sabs);
    LAUNCHED(c, "adamw");
}

extern "C" void krn_cuda_adamw(struct krn_cuda *c, float *p, const float *g, float *m, float *v,
                               size_t n, float lr, float b1, float b2, float eps, float wd,
                               float bc1, float bc2, float cs)
{
    krn_cuda_adamw_abs(c, p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2, cs, NULL);
}

/* ------------------------------------------------------------------ product micro-benchmark */

__global__ void k_fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        x[i] = (float)(h & 0xffffff) / 8388608.0f - 1.0f;
    }
}

/* Device ms per call of f: two calls to warm up, then reps calls between two events. */
template <typename F> static double bench_ms(struct krn_cuda *c, int reps, F f)
{
    cudaEvent_t a, b;
    float ms = 0.0f;
    f();
    f();
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a, c->st);
    for (int i = 0; i < reps; i++)
        f();
    cudaEventRecord(b, c->st);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return (double)ms / reps;
}

/* one timed row of a micro-benchmark: r[n] gets the name, the FLOPs and the ms of body */
struct bench_row {
    const char *name;
    double ms, flops;
};
#define BENCH_ROW(r, n, nm, fl_, body)                                                             \
    ((r)[n].name = (nm), (r)[n].flops = (fl_), (r)[(n)++].ms = bench_ms(c, reps, [&] { body; }))

extern "C" int krn_cuda_linear_bench(struct krn_cuda *c, int N, int C, int OC, int reps, FILE *f)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC;
    float *x = (float *)krn_cuda_alloc(c, nx * 4), *w = (float *)krn_cuda_alloc(c, nw * 4);
    float *y = (float *)krn_cuda_alloc(c, ny * 4), *dy = (float *)krn_cuda_alloc(c, ny * 4);
    float *res = (float *)krn_cuda_alloc(c, ny * 4), *dx = (float *)krn_cuda_alloc(c, nx * 4);
    float *dw = (float *)krn_cuda_alloc(c, nw * 4), *xq = (float *)krn_cuda_alloc(c, nx * 4);
    float *wq = (float *)krn_cuda_alloc(c, nw * 4), *sx = (float *)krn_cuda_alloc(c, N * 4);
    float *sw = (float *)krn_cuda_alloc(c, 4);
    int8_t *x8 = (int8_t *)krn_cuda_alloc(c, nx), *w8 = (int8_t *)krn_cuda_alloc(c, nw);
    uint16_t *xb = (uint16_t *)krn_cuda_alloc(c, nx * 2),
             *wb = (uint16_t *)krn_cuda_alloc(c, nw * 2);
    uint16_t *yb = (uint16_t *)krn_cuda_alloc(c, ny * 2);
    int rc = 0;
    if (!x || !w || !y || !dy || !res || !dx || !dw || !xq || !wq || !sx || !sw || !x8 || !w8 ||
        !xb || !wb || !yb) {
        rc = KRN_CUDA_ENOMEM;
        goto out;
    }
    {
        k_fill<<<blocks(nx, NT), NT, 0, c->st>>>(x, nx, 1);
        k_fill<<<blocks(nw, NT), NT, 0, c->st>>>(w, nw, 2);
        k_fill<<<blocks(ny, NT), NT, 0, c->st>>>(dy, ny, 3);
        k_fill<<<blocks(ny, NT), NT, 0, c->st>>>(res, ny, 4);
        krn_cuda_wquant(c, wq, w, nw);
        krn_cuda_aquant(c, xq, x, N, C);
        krn_cuda_wquant_narrow(c, w8, wb, sw, w, nw);
        krn_cuda_aquant_narrow(c, x8, xb, sx, x, N, C);
        int bf = c->bf16;
        krn_cuda_set_bf16(c, 1);
        double fl = 2.0 * N * C * OC;
        struct bench_row r[20];
        int n = 0;
#define B_(nm, fl_, body) BENCH_ROW(r, n, nm, fl_, body)
        B_("fwd fp32 storage FAST_16BF (today)", fl,
           krn_cuda_linear_forward(c, y, xq, wq, N, C, OC));
        B_("fwd bf16 storage", fl, gemm_bf16(c, 0, 1, N, OC, C, xb, C, wb, C, 0.0f, y, OC));
        B_("fwd bf16 storage + residual add", fl,
           krn_cuda_blinear_forward(c, y, res, xb, wb, N, C, OC));
        B_("fwd int8 cublasLt product only", fl, qgemm(c, (int32_t *)y, x8, w8, N, C, OC));
        B_("fwd int8 + scales (new)", fl,
           krn_cuda_qlinear_forward(c, y, NULL, x8, sx, w8, sw, N, C, OC));
        B_("fwd int8 + scales + residual add", fl,
           krn_cuda_qlinear_forward(c, y, res, x8, sx, w8, sw, N, C, OC));
        int32_t i1 = 1, i0 = 0;
        B_("fwd int8 cublasGemmEx 32I", fl,
           cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &i1, w8, CUDA_R_8I, C, x8,
                        CUDA_R_8I, C, &i0, y, CUDA_R_32I, OC, CUBLAS_COMPUTE_32I,
                        CUBLAS_GEMM_DEFAULT));
        B_("dX fp32 storage FAST_16BF (today)", fl,
           krn_cuda_gemm(c, 0, 0, N, C, OC, 1.0f, dy, OC, 0, wq, C, 0, 1.0f, dx, C, 0, 1));
        B_("dX bf16 storage", fl, gemm_bf16(c, 0, 0, N, C, OC, yb, OC, wb, C, 1.0f, dx, C));
        B_("dW fp32 storage FAST_16BF (today)", fl,
           krn_cuda_gemm(c, 1, 0, OC, C, N, 1.0f, dy, OC, 0, xq, C, 0, 1.0f, dw, C, 0, 1));
        B_("dW bf16 storage", fl, gemm_bf16(c, 1, 0, OC, C, N, yb, OC, xb, C, 1.0f, dw, C));
        B_("dY to bf16", 0, to_bf16(c, yb, dy, ny));
        B_("bwd fp32 storage FAST_16BF (today)", 2 * fl,
           krn_cuda_linear_backward(c, dx, dw, dy, xq, wq, N, C, OC));
        B_("bwd bf16 storage + dY copy (new)", 2 * fl,
           krn_cuda_qlinear_backward(c, dx, 1.0f, dw, 1.0f, dy, xb, wb, yb, N, C, OC));
        B_("aquant fp32 (today)", 0, krn_cuda_aquant(c, xq, x, N, C));
        B_("aquant int8 + bf16 (new)", 0, krn_cuda_aquant_narrow(c, x8, xb, sx, x, N, C));
#undef B_
        krn_cuda_set_bf16(c, bf);
        for (int i = 0; i < n; i++)
            fprintf(f, "linear-bench N %d C %d OC %d  %-36s %8.4f ms %7.1f TFLOP/s\n", N, C, OC,
                    r[i].name, r[i].ms, r[i].flops ? r[i].flops / r[i].ms / 1e9 : 0.0);
        fflush(f);
        rc = krn_cuda_sync(c);
    }
out:
    void *all[] = {x, w, y, dy, res, dx, dw, xq, wq, sx, sw, x8, w8, xb, wb, yb};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        krn_cuda_dfree(c, all[i]);
    return rc;
}

/* ------------------------------------------------------------------ attention micro-benchmark */

/* The fused attention at one shape (B sequences of T, NH query and KVH kv heads of 128): device
 * ms per call of the forward, of the backward and of each backward kernel, TFLOP/s by
 * FlashAttention's count (4 B NH T(T+1)/2 HD forward, 2.5x that backward), beside the
 * materialising fp32 path (krn_cuda_attention_*) at the same shape as the same run's baseline. */
extern "C" int krn_cuda_attn_bench(struct krn_cuda *c, int B, int T, int NH, int KVH, int reps,
                                   FILE *f)
{
    const int HD = 128;
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD, bht = (size_t)B * NH * T;
    size_t np = bht * T, nsc = krn_cuda_flash_scratch(B, T, NH);
    float *q = (float *)krn_cuda_alloc(c, nq * 4), *k = (float *)krn_cuda_alloc(c, nk * 4);
    float *v = (float *)krn_cuda_alloc(c, nk * 4), *o = (float *)krn_cuda_alloc(c, nq * 4);
    float *dout = (float *)krn_cuda_alloc(c, nq * 4), *dq = (float *)krn_cuda_alloc(c, nq * 4);
    float *dk = (float *)krn_cuda_alloc(c, nk * 4), *dv = (float *)krn_cuda_alloc(c, nk * 4);
    float *lse = (float *)krn_cuda_alloc(c, bht * 4), *sc = (float *)krn_cuda_alloc(c, nsc * 4);
    float *probs = (float *)krn_cuda_alloc(c, np * 4), *scr = (float *)krn_cuda_alloc(c, np * 4);
    uint16_t *qb = (uint16_t *)krn_cuda_alloc(c, nq * 2),
             *kb = (uint16_t *)krn_cuda_alloc(c, nk * 2);
    uint16_t *vb = (uint16_t *)krn_cuda_alloc(c, nk * 2);
    int rc = 0;
    void *all[] = {q, k, v, o, dout, dq, dk, dv, lse, sc, probs, scr, qb, kb, vb};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (!all[i])
            rc = KRN_CUDA_ENOMEM;
    if (!rc) {
        k_fill<<<blocks(nq, NT), NT, 0, c->st>>>(q, nq, 1);
        k_fill<<<blocks(nk, NT), NT, 0, c->st>>>(k, nk, 2);
        k_fill<<<blocks(nk, NT), NT, 0, c->st>>>(v, nk, 3);
        k_fill<<<blocks(nq, NT), NT, 0, c->st>>>(dout, nq, 4);
        krn_cuda_to_bf16(c, qb, q, nq);
        krn_cuda_to_bf16(c, kb, k, nk);
        krn_cuda_to_bf16(c, vb, v, nk);
        double fl = 4.0 * B * NH * ((double)T * (T + 1) / 2) * HD;
        struct bench_row r[16];
        int n = 0;
#define AB_(nm, fl_, body) BENCH_ROW(r, n, nm, fl_, body)
        AB_("materialising fwd fp32 (baseline)", fl,
            krn_cuda_attention_forward(c, o, probs, q, k, v, B, T, NH, KVH, HD));
        AB_("materialising bwd fp32 (baseline)", 2.5 * fl,
            krn_cuda_attention_backward(c, dq, dk, dv, dout, probs, q, k, v, B, T, NH, KVH, HD,
                                        scr));
        AB_("flash fwd", fl, krn_cuda_flash_forward(c, o, lse, qb, kb, vb, B, T, NH, KVH, HD));
        AB_(FLASH_FWD_SB ? "flash fwd, (K, V) pairs double-buffered" : "flash fwd, one V buffer",
            fl,
            chk(c, krn_cuda_flash_fwd_(c->st, o, lse, qb, kb, vb, B, T, NH, KVH, !FLASH_FWD_SB),
                "flash attention forward"));
        AB_("flash bwd (prep + dQ + dK/dV)", 2.5 * fl,
            krn_cuda_flash_backward(c, dq, dk, 0, dv, dout, o, lse, qb, kb, vb, B, T, NH, KVH, HD,
                                    sc, NULL, NULL));
        static const char *pn[] = {"flash bwd: prep", "flash bwd: dK/dV (+ dS)", "flash bwd: dQ"};
        static const double pf[] = {0.0, 2.0, 0.5}; /* S, dV, dP, dK; then dS K alone */
        for (int i = 0; i < 3; i++)
            AB_(pn[i], pf[i] * fl,
                chk(c,
                    krn_cuda_flash_bwd_(c->st, dq, dk, 0, dv, dout, o, lse, qb, kb, vb, B, T, NH,
                                        KVH, sc, NULL, NULL, 1 << i, NULL, 0),
                    "flash attention backward"));
#undef AB_
        for (int i = 0; i < n; i++) {
            fprintf(f, "attn-bench B %d T %d heads %d/%d  %-34s %8.4f ms %7.1f TFLOP/s", B, T, NH,
                    KVH, r[i].name, r[i].ms, r[i].flops ? r[i].flops / r[i].ms / 1e9 : 0.0);
            if (i >= 2 && i <= 4) /* against the materialising path's same direction */
                fprintf(f, "  %.2fx the baseline", r[i == 4].ms / r[i].ms);
            fputc('\n', f);
        }
        fflush(f);
        rc = krn_cuda_sync(c);
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        krn_cuda_dfree(c, all[i]);
    return rc ? rc : c->status;
}

/* ------------------------------------------------------------------ memory-bound micro-benchmark */

/* The row kernels of one decoder layer at the widths of Qwen3-0.6B (H 1024, FFN I 3072; 1.7B:
 * 2048, 6144), q 2048, 16 + 8 heads of 128, over N tokens: device ms per call and GB/s of the
 * bytes each must move, beside a device-to-device copy; the fused RMSNorm backward at several
 * rows per block; the SwiGLU + SubLN backward on the step's bf16 operands by each kernel; the
 * weight quantizer of an H x I projection with its own absmean pass and fed by AdamW's. */
extern "C" int krn_cuda_norm_bench(struct krn_cuda *c, int N, int reps, int H, int I, FILE *f)
{
    const int QD = 2048, KD = 1024, HD = 128, T = 512;
    size_t big = (size_t)N * I;
    float *a = (float *)krn_cuda_alloc(c, big * 4), *b = (float *)krn_cuda_alloc(c, big * 4);
    float *d = (float *)krn_cuda_alloc(c, big * 4), *e = (float *)krn_cuda_alloc(c, big * 4);
    float *w = (float *)krn_cuda_alloc(c, (size_t)I * 4), *dw = (float *)krn_cuda_alloc(c, I * 4);
    float *rs = (float *)krn_cuda_alloc(c, (size_t)N * 16 * 4);
    float *cs = (float *)krn_cuda_alloc(c, (size_t)T * HD / 2 * 4),
          *sn = (float *)krn_cuda_alloc(c, (size_t)T * HD / 2 * 4);
    uint16_t *b3 = (uint16_t *)krn_cuda_alloc(c, big * 6); /* bf16 g, u, dy */
    double *sa = (double *)krn_cuda_alloc(c, 8);
    int rc = 0;
    if (!a || !b || !d || !e || !w || !dw || !rs || !cs || !sn || !b3 || !sa) {
        rc = KRN_CUDA_ENOMEM;
        goto out;
    }
    {
        k_fill<<<blocks(big, NT), NT, 0, c->st>>>(a, big, 1);
        k_fill<<<blocks(big, NT), NT, 0, c->st>>>(b, big, 2);
        k_fill<<<blocks(big, NT), NT, 0, c->st>>>(d, big, 3);
        k_fill<<<blocks(big, NT), NT, 0, c->st>>>(e, big, 4);
        k_fill<<<blocks(I, NT), NT, 0, c->st>>>(w, I, 5);
        k_fill<<<blocks((size_t)T * HD / 2, NT), NT, 0, c->st>>>(cs, (size_t)T * HD / 2, 6);
        k_fill<<<blocks((size_t)T * HD / 2, NT), NT, 0, c->st>>>(sn, (size_t)T * HD / 2, 7);
        krn_cuda_to_bf16(c, b3, a, big);
        krn_cuda_to_bf16(c, b3 + big, b, big);
        krn_cuda_to_bf16(c, b3 + 2 * big, d, big);
        krn_cuda_zero(c, sa, 8);
        krn_cuda_rmsnorm_forward(c, e, rs, a, w, N, H, 1e-6f); /* rstd values */
        struct {
            char name[64];
            double ms, bytes;
        } r[32];
        int n = 0;
        size_t nh = (size_t)N * H, nq = (size_t)N * QD, nk = (size_t)N * KD, ni = (size_t)N * I;
        uint16_t *ob = (uint16_t *)d;
        int8_t *x8 = (int8_t *)e;
        uint16_t *xb = (uint16_t *)(e + big / 2);
#define NB_(nm, by, body)                                                                          \
    (snprintf(r[n].name, sizeof(r[n].name), "%s", (nm)), r[n].bytes = (double)(by),                \
     r[n++].ms = bench_ms(c, reps, [&] { body; }))
        NB_("d2d copy (reference)", 8.0 * nh * 2,
            cudaMemcpyAsync(d, a, nh * 2 * 4, cudaMemcpyDeviceToDevice, c->st));
        int rows[] = {RB_ROWS, 4, 2, 16, RB_ROWS};
        for (int i = 0; i < 5; i++) {
            char nm[64];
            c->rb_rows = rows[i];
            c->rb_atomic = i == 4;
            snprintf(nm, sizeof nm, "rmsnorm bwd C H acc+dW, %d rows/block%s", rows[i],
                     c->rb_atomic ? ", atomics" : "");
            NB_(nm, 16.0 * nh, krn_cuda_rmsnorm_backward(c, d, 1, dw, a, b, w, rs, N, H));
        }
        c->rb_rows = 0;
        c->rb_atomic = 0;
        NB_("swiglu+rms bwd fp32 in, bf16 out, C I", 16.0 * ni,
            krn_cuda_swiglu_rmsnorm_backward_bf16(c, ob, ob + ni, 0, dw, a, b, d, w, rs, N, I));
        NB_("rmsnorm bwd C H acc+dW, one wave (default)", 16.0 * nh,
            krn_cuda_rmsnorm_backward(c, d, 1, dw, a, b, w, rs, N, H));
        NB_("rmsnorm bwd C H acc+dW + mirror (dres)", 18.0 * nh,
            krn_cuda_rmsnorm_backward_mirror(c, d, 1, (uint16_t *)e, dw, a, 0, b, w, rs, N, H));
        NB_("rmsnorm bwd C H acc+dW + mirror, bf16 dout", 16.0 * nh,
            krn_cuda_rmsnorm_backward_mirror(c, d, 1, (uint16_t *)e, dw, (const float *)b3, 1, b, w,
                                             rs, N, H));
        const char *swn[] = {"k_swrms_bwd_p (default)", "k_rms_bwd_f (before)",
                             "k_swrms_bwd, 2 blocks/SM"};
        for (int i = 0; i < 3; i++) {
            char nm[64];
            c->swb_old = i;
            snprintf(nm, sizeof nm, "swiglu+rms bwd gu16 C I, %s", swn[i]);
            NB_(nm, 10.0 * ni,
                krn_cuda_swiglu_rmsnorm_backward_gu16(c, ob, ob + ni, 0, dw, b3 + 2 * big, b3,
                                                      b3 + big, w, rs, N, I));
        }
        c->swb_old = 0;
        size_t nw = (size_t)H * I;
        NB_("weight quant H x I, own absmean pass", 11.0 * nw,
            krn_cuda_wquant_narrow(c, x8, xb, rs, a, nw));
        NB_("weight quant H x I, absmean from adamw", 7.0 * nw,
            krn_cuda_wquant_narrow_sum(c, x8, xb, rs, a, nw, sa));
        NB_("rmsnorm bwd C H acc, no dW", 16.0 * nh,
            krn_cuda_rmsnorm_backward(c, d, 1, NULL, a, b, w, rs, N, H));
        NB_("rmsnorm fwd bf16 C H (teacher)", 6.0 * nh,
            krn_cuda_rmsnorm_forward_bf16(c, ob, rs, a, w, N, H, 1e-6f));
        NB_("swiglu fwd bf16 C I (teacher)", 10.0 * ni,
            krn_cuda_swiglu_forward_bf16(c, ob, a, b, ni));
        NB_("rmsnorm bwd C 2048 dW", 12.0 * nq,
            krn_cuda_rmsnorm_backward(c, d, 0, dw, a, b, w, rs, N, QD));
        NB_("qk-norm bwd bf16 (q, C 128)", 10.0 * nq,
            krn_cuda_rmsnorm_backward_bf16(c, ob, 0, 0, dw, a, 0, b, 0, w, rs, N * 16, HD));
        NB_("qk-norm bwd bf16 (q, C 128), bf16 dout", 8.0 * nq,
            krn_cuda_rmsnorm_backward_bf16(c, ob, 0, 0, dw, (const float *)b3, 1, b, 0, w, rs,
                                           N * 16, HD));
        NB_("qk-norm bwd bf16 (q, C 128), bf16 dout and x", 6.0 * nq,
            krn_cuda_rmsnorm_backward_bf16(c, ob, 0, 0, dw, (const float *)b3, 1,
                                           (const float *)(b3 + big), 1, w, rs, N * 16, HD));
        NB_("rmsnorm+quant fwd C H", 7.0 * nh,
            krn_cuda_rmsnorm_aquant(c, x8, xb, rs, rs, a, w, N, H, 1e-6f));
        NB_("swiglu+rmsnorm+quant fwd C I", 11.0 * ni,
            krn_cuda_swiglu_rmsnorm_aquant(c, x8, xb, rs, rs, a, b, w, N, I, 1e-6f));
        NB_("qk-norm fwd + rope bf16 (q, before)", 12.0 * nq,
            (krn_cuda_rmsnorm_forward(c, d, rs, a, w, N * 16, HD, 1e-6f),
             krn_cuda_rope_forward_bf16(c, (uint16_t *)e, d, cs, sn, N / T, T, 16, HD)));
        NB_("qk-norm+rope fwd bf16 (q, fused)", 6.0 * nq,
            krn_cuda_qknorm_rope_bf16(c, (uint16_t *)e, NULL, rs, a, w, cs, sn, N / T, T, 16, HD,
                                      1e-6f));
        NB_("v to bf16", 6.0 * nk, krn_cuda_to_bf16(c, (uint16_t *)e, a, nk));
        NB_("sum of squares (the gradient norm), N x I", 4.0 * big, reduce_launch(c, a, big, 1));
        NB_("adamw H x I + sum |p|", 28.0 * nw,
            krn_cuda_adamw_abs(c, a, b, d, e, nw, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.5f, 1.0f,
                               sa));
        NB_("adamw H x I", 28.0 * nw,
            krn_cuda_adamw(c, a, b, d, e, nw, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.5f, 1.0f));
        NB_("adamw H x I (scalar)", 28.0 * nw,
            krn_cuda_adamw(c, a + 1, b + 1, d + 1, e + 1, nw - 1, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f,
                           0.5f, 0.5f, 1.0f));
#undef NB_
        fprintf(f, "norm-bench N %d H %d I %d\n", N, H, I);
        for (int i = 0; i < n; i++)
            fprintf(f, "norm-bench N %d  %-52s %8.4f ms %7.1f GB/s\n", N, r[i].name, r[i].ms,
                    r[i].bytes / r[i].ms / 1e6);
        fflush(f);
        rc = krn_cuda_sync(c);
    }
out:
    c->rb_rows = 0;
    c->rb_atomic = 0;
    krn_cuda_dfree(c, a);
    krn_cuda_dfree(c, b);
    krn_cuda_dfree(c, d);
    krn_cuda_dfree(c, e);
    krn_cuda_dfree(c, w);
    krn_cuda_dfree(c, dw);
    krn_cuda_dfree(c, rs);
    krn_cuda_dfree(c, cs);
    krn_cuda_dfree(c, sn);
    krn_cuda_dfree(c, b3);
    krn_cuda_dfree(c, sa);
    return rc ? rc : c->status;
}
