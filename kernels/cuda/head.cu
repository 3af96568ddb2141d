/*
 * kernels/cuda/head.cu — the losses of the LM head in one pass pair over a chunk of logit rows
 * (bf16 mode): cross-entropy, logits KL and their gradient, written as bf16 for the head's two
 * backward products. The public entry point (krn_cuda_head_loss, kcuda.h) is in ops.cu; this
 * file holds the kernel and its launcher.
 *
 * The fp32 kernels krn_cuda_ce and krn_cuda_kl read a B x T x V logit matrix four times and
 * accumulate into an fp32 gradient of the same size; here one block per row reads the student's
 * (and the teacher's) row twice: pass 1 keeps per-thread running maxima and rescaled sums
 * (online softmax: exp(x - m) at temperature 1 for CE, at 1/tau for KL, for both models), which
 * merge across the block into the log-sum-exps; pass 2 computes the KL terms and writes
 * g = w_ce (softmax(s) - onehot(target)) + w_kl (softmax(s/tau) - softmax(t/tau)) once, in bf16
 * (what the fp32 path's products rounded the gradient to anyway). Rows with target < 0 get zero
 * losses and a zero gradient row (the buffer is overwritten, never accumulated). The logits
 * arrive in fp32 or in bf16 (B16: the head's product rounded them, as autocast keeps them;
 * every statistic is still fp32).
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "kernels/cuda/reduce.cuh"

#define HT 512 /* threads per row block */

/* Running (max, sums) of one thread: a1 = sum exp(s - m), at = sum exp((s - m) / tau) for the
 * student; b = sum exp((t - mt) / tau) for the teacher. */
struct run {
    float m, a1, at, mt, b;
};

template <int KL> __device__ __forceinline__ void add_s(struct run *r, float x, float it)
{
    if (x > r->m) { /* rescale to the new maximum (exp(-inf) = 0 on the first value) */
        r->a1 *= __expf(r->m - x);
        if (KL)
            r->at *= __expf((r->m - x) * it);
        r->m = x;
    }
    r->a1 += __expf(x - r->m);
    if (KL)
        r->at += __expf((x - r->m) * it);
}

__device__ __forceinline__ void add_t(struct run *r, float x, float it)
{
    if (x > r->mt) {
        r->b *= __expf((r->mt - x) * it);
        r->mt = x;
    }
    r->b += __expf((x - r->mt) * it);
}

/* A thread's sum scaled from its maximum m to the block's M (0 for a thread that saw nothing). */
__device__ __forceinline__ float rescale(float a, float m, float M, float it)
{
    return m == -INFINITY ? 0.0f : a * __expf((m - M) * it);
}

/* Logit i of a row, and logits 4i..4i+3 (fp32, or bf16 when B16) as floats. */
template <int B16> __device__ __forceinline__ float ld1(const void *row, size_t i)
{
    return B16 ? __bfloat162float(((const __nv_bfloat16 *)row)[i]) : ((const float *)row)[i];
}

template <int B16> __device__ __forceinline__ float4 ld4(const void *row, int i)
{
    if (!B16)
        return ((const float4 *)row)[i];
    uint2 u = ((const uint2 *)row)[i];
    float2 lo = __bfloat1622float2(*(__nv_bfloat162 *)&u.x),
           hi = __bfloat1622float2(*(__nv_bfloat162 *)&u.y);
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}

/* VEC: the row is read 4 logits at a time (V % 4 == 0 and 16-byte aligned rows, 8-byte with
 * B16). */
template <int KL, int VEC, int B16>
__global__ void __launch_bounds__(HT)
    k_head_loss(float *ce, float *kl, __nv_bfloat16 *g, const void *s, const void *t,
                const int32_t *target, int V, float tau, float wce, float wkl)
{
    size_t row = blockIdx.x;
    int tg = target[row];
    __nv_bfloat16 *gr = g ? g + row * V : NULL;
    if (tg < 0) {
        if (!threadIdx.x) {
            ce[row] = 0.0f;
            if (KL)
                kl[row] = 0.0f;
        }
        if (gr)
            for (int i = threadIdx.x; i < V; i += HT)
                gr[i] = __float2bfloat16_rn(0.0f);
        return;
    }
    size_t es = B16 ? 2 : 4; /* bytes per logit */
    const char *sr = (const char *)s + row * V * es,
               *tr = KL ? (const char *)t + row * V * es : NULL;
    float it = 1.0f / tau;
    struct run r = {-INFINITY, 0.0f, 0.0f, -INFINITY, 0.0f};
    if (VEC) {
        for (int i = threadIdx.x; i < V / 4; i += HT) {
            float4 x = ld4<B16>(sr, i);
            add_s<KL>(&r, x.x, it), add_s<KL>(&r, x.y, it), add_s<KL>(&r, x.z, it),
                add_s<KL>(&r, x.w, it);
            if (KL) {
                float4 y = ld4<B16>(tr, i);
                add_t(&r, y.x, it), add_t(&r, y.y, it), add_t(&r, y.z, it), add_t(&r, y.w, it);
            }
        }
    } else {
        for (int i = threadIdx.x; i < V; i += HT) {
            add_s<KL>(&r, ld1<B16>(sr, i), it);
            if (KL)
                add_t(&r, ld1<B16>(tr, i), it);
        }
    }
    float M = block_max(r.m);
    float A1 = block_sum(rescale(r.a1, r.m, M, 1.0f));
    float l1 = M + __logf(A1); /* log-sum-exp of s */
    if (!threadIdx.x)
        ce[row] = l1 - ld1<B16>(sr, tg);
    float lst = 0.0f, ltt = 0.0f; /* log-sum-exps of s / tau and t / tau */
    if (KL) {
        float At = block_sum(rescale(r.at, r.m, M, it));
        float Mt = block_max(r.mt);
        float Bt = block_sum(rescale(r.b, r.mt, Mt, it));
        lst = M * it + __logf(At);
        ltt = Mt * it + __logf(Bt);
    }
    if (!KL && !gr)
        return;
    float acc = 0.0f;
    /* pass 2: the KL terms and the gradient of element i */
#define HEAD_ELEM(i, x, y, out)                                                                    \
    do {                                                                                           \
        float d_ = wce * (__expf(x - l1) - ((i) == tg ? 1.0f : 0.0f));                             \
        if (KL) {                                                                                  \
            float lps_ = x * it - lst, lpt_ = y * it - ltt, pt_ = __expf(lpt_);                    \
            acc += pt_ * (lpt_ - lps_);                                                            \
            d_ += wkl * (__expf(lps_) - pt_);                                                      \
        }                                                                                          \
        out = d_;                                                                                  \
    } while (0)
    if (VEC) {
        for (int i = threadIdx.x; i < V / 4; i += HT) {
            float4 x = ld4<B16>(sr, i), y = KL ? ld4<B16>(tr, i) : x, o;
            HEAD_ELEM(4 * i, x.x, y.x, o.x);
            HEAD_ELEM(4 * i + 1, x.y, y.y, o.y);
            HEAD_ELEM(4 * i + 2, x.z, y.z, o.z);
            HEAD_ELEM(4 * i + 3, x.w, y.w, o.w);
            if (gr) {
                __nv_bfloat162 lo = __floats2bfloat162_rn(o.x, o.y),
                               hi = __floats2bfloat162_rn(o.z, o.w);
                uint2 u;
                u.x = *(uint32_t *)&lo;
                u.y = *(uint32_t *)&hi;
                ((uint2 *)gr)[i] = u;
            }
        }
    } else {
        for (int i = threadIdx.x; i < V; i += HT) {
            float x = ld1<B16>(sr, i), y = KL ? ld1<B16>(tr, i) : x, o;
            HEAD_ELEM(i, x, y, o);
            if (gr)
                gr[i] = __float2bfloat16_rn(o);
        }
    }
#undef HEAD_ELEM
    if (KL) {
        acc = block_sum(acc);
        if (!threadIdx.x)
            kl[row] = acc;
    }
}

template <int KL, int B16>
static void launch(cudaStream_t st, int vec, int N, float *ce, float *kl, __nv_bfloat16 *g,
                   const void *s, const void *t, const int32_t *target, int V, float tau, float wce,
                   float wkl)
{
    if (vec)
        k_head_loss<KL, 1, B16><<<N, HT, 0, st>>>(ce, kl, g, s, t, target, V, tau, wce, wkl);
    else
        k_head_loss<KL, 0, B16><<<N, HT, 0, st>>>(ce, kl, g, s, t, target, V, tau, wce, wkl);
}

extern "C" cudaError_t krn_cuda_head_loss_(cudaStream_t st, float *ce, float *kl, uint16_t *g,
                                           const void *s, const void *t, int b16,
                                           const int32_t *target, int N, int V, float tau,
                                           float wce, float wkl)
{
    if (N <= 0)
        return cudaSuccess;
    uintptr_t am = b16 ? 7 : 15; /* a vector's alignment */
    int vec =
        V % 4 == 0 && !((uintptr_t)s & am) && (!t || !((uintptr_t)t & am)) && !((uintptr_t)g & 7);
    __nv_bfloat16 *gb = (__nv_bfloat16 *)g;
    if (t && b16)
        launch<1, 1>(st, vec, N, ce, kl, gb, s, t, target, V, tau, wce, wkl);
    else if (t)
        launch<1, 0>(st, vec, N, ce, kl, gb, s, t, target, V, tau, wce, wkl);
    else if (b16)
        launch<0, 1>(st, vec, N, ce, kl, gb, s, t, target, V, tau, wce, wkl);
    else
        launch<0, 0>(st, vec, N, ce, kl, gb, s, t, target, V, tau, wce, wkl);
    return cudaGetLastError();
}
