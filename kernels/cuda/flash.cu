/*
 * kernels/cuda/flash.cu — fused causal GQA attention, forward and backward (the
 * FlashAttention-2 algorithm), for head dim 128 on tensor cores (sm_80+ mma.sync, built for
 * sm_90). The public entry points (krn_cuda_flash_*, kcuda.h) are in ops.cu beside the
 * materialising path; this file holds the kernels and their launchers.
 *
 * Layouts are those of train/ops.h: q, out, dout [B][T][NH][HD], k, v [B][T][KVH][HD]; q, k, v
 * arrive in bf16 (the trainer's RoPE writes q and k in bf16, v is converted once), out, dout and
 * the gradients are fp32; lse [B][NH][T] fp32 is the natural-log log-sum-exp of each query row's
 * scaled scores, the only thing the forward keeps besides out. Tiles of 64 rows x 128 features
 * are copied into shared memory by cp.async, the next tile into a second buffer while the tensor
 * cores work on the current one; the products are mma.sync m16n8k16 bf16 x bf16 -> fp32, and
 * every softmax statistic, D = rowsum(dO * O) and every accumulator is fp32.
 *
 * Blocks have 4 warps; each warp owns 16 rows of its block's 64-row tile. The tile index is the
 * grid's slowest dimension, ordered so the blocks with the most key (query) tiles to visit start
 * first and the short ones fill the last wave:
 *  - forward: a block per (query tile, head, sequence); online softmax over the key tiles
 *    0..its own (causal), O in registers, rescaled per key tile;
 *  - prep: D = rowsum(dO * O) from the fp32 tensors and dO in bf16, one warp per row;
 *  - dK/dV: a block per (key tile, kv head, sequence) loops over the group's query heads and
 *    the query tiles at or after its keys: S^T = K Q^T, P^T, dV += P^T dO, dP^T = V dO^T,
 *    dK += dS^T Q, and writes dS^T (bf16, the operand dK used) to the scratch, causal tiles only;
 *  - dQ: a block per (query tile, head, sequence) reads those tiles back: dQ += dS K, five
 *    products in all instead of seven (a dQ kernel that recomputed S and dP did two more) for
 *    B NH T^2 bytes of scratch traffic each way.
 *    Each output element has one owner thread: no atomics, deterministic; so dQ, dK and dV may
 *    as well be overwritten (acc_qk 0: the caller's zero-fill spared).
 * Rows past T are staged as zeros and masked (any T, including 1).
 *
 * Fragment layout of mma.m16n8k16 (PTX ISA "Matrix fragments for mma.m16n8k16"), with
 * g = lane / 4 and q4 = lane % 4: A (16x16, row): a0 = A[g][2q4..+1], a1 = A[g+8][2q4..+1],
 * a2 = A[g][2q4+8..+9], a3 = A[g+8][2q4+8..+9]; B (16x8, col): b0 = B[2q4..+1][g], b1 =
 * B[2q4+8..+9][g]; C (16x8): c0, c1 = C[g][2q4..+1], c2, c3 = C[g+8][2q4..+1]. Two adjacent C
 * tiles (16x16) are therefore one A fragment, which is how P goes from scores to the next
 * product without shared memory. A B operand stored [k][n] (V, K, Q, dO when they are the
 * right-hand side over their rows) is read with ldmatrix .trans.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "kernels/cuda/async.cuh"

#define FB 64           /* rows of a tile (queries or keys) */
#define FD 128          /* head dim */
#define FLD (FD + 8)    /* shared row stride in bf16: 272 bytes, conflict-free fragment reads */
#define FT 128          /* threads per block (4 warps x 16 rows) */
#define TILE (FB * FLD) /* bf16 per staged tile */
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

__device__ __forceinline__ float2 unpack2(uint32_t u)
{
    __nv_bfloat162 v = *(__nv_bfloat162 *)&u;
    return __bfloat1622float2(v);
}

/* c += a . b (m16n8k16, bf16 in, fp32 accumulate) */
__device__ __forceinline__ void mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* ldmatrix x4 (non-transposed): four 8 x 8 bf16 matrices from shared memory, matrix i's eight
 * row addresses from lanes 8i..8i+7; lane l receives row l / 4, columns 2 (l % 4)..+1 of each,
 * which is the mma fragment layout of an A row block and of a B column block alike. */
__device__ __forceinline__ void ldm4(uint32_t *r, const bf16 *p)
{
    uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* A fragment of rows r0..r0+15, columns k0..k0+15 of a staged tile X[row][FLD]: matrix i holds
 * rows r0 + 8 (i & 1), columns k0 + 8 (i >> 1) (a0..a3 as the fragment layout above). */
__device__ __forceinline__ void lda(uint32_t *a, const bf16 *X, int r0, int k0)
{
    int lane = threadIdx.x & 31, m = lane >> 3;
    ldm4(a, X + (r0 + (lane & 7) + 8 * (m & 1)) * FLD + k0 + 8 * (m >> 1));
}

/* B fragments (k = features k0..k0+15) of X^T for the two n-tiles n0 and n0 + 8: B[k][n] =
 * X[n0 + n][k0 + k]; b[0], b[1] of n0 and b[2], b[3] of n0 + 8 (matrix i: rows n0 + 8 (i >> 1),
 * columns k0 + 8 (i & 1)). */
__device__ __forceinline__ void ldb2(uint32_t *b, const bf16 *X, int n0, int k0)
{
    int lane = threadIdx.x & 31, m = lane >> 3;
    ldm4(b, X + (n0 + (lane & 7) + 8 * (m >> 1)) * FLD + k0 + 8 * (m & 1));
}

/* B fragments of X itself, B[k][n] = X[k0 + k][n0 + n], for the two n-tiles n0 and n0 + 8:
 * b[0], b[1] of n0 and b[2], b[3] of n0 + 8 (ldmatrix x4 .trans; matrix i's rows come from
 * lanes 8i..8i+7). */
__device__ __forceinline__ void ldbt(uint32_t *b, const bf16 *X, int k0, int n0)
{
    int lane = threadIdx.x & 31, m = lane >> 3;
    const bf16 *p = X + (k0 + (lane & 7) + 8 * (m & 1)) * FLD + n0 + 8 * (m >> 1);
    uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                 : "r"(s));
}

/* acc = X[r0, r0 + 16) . Y[0, 64)^T over the 128-wide head dimension: a warp's 16 x 64 tile of
 * scores from two bf16 tiles in shared memory (each row a head-dim vector; fp32 accumulators). */
__device__ __forceinline__ void warp_xyt(float (*acc)[4], const bf16 *X, int r0, const bf16 *Y)
{
#pragma unroll
    for (int n = 0; n < 8; n++)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        uint32_t a[4];
        lda(a, X, r0, kk * 16);
#pragma unroll
        for (int n = 0; n < 8; n += 2) {
            uint32_t bb[4];
            ldb2(bb, Y, n * 8, kk * 16);
            mma(acc[n], a, bb[0], bb[1]);
            mma(acc[n + 1], a, bb[2], bb[3]);
        }
    }
}

/* The warp's 16 x 64 score tile s (fp32 accumulators of warp_xyt) as bf16 A fragments, pa[j]
 * for keys 16j..16j+15: 16 registers instead of 32. */
__device__ __forceinline__ void pack_scores(uint32_t (*pa)[4], const float (*s)[4])
{
#pragma unroll
    for (int j = 0; j < 4; j++) {
        pa[j][0] = pack2(s[2 * j][0], s[2 * j][1]);
        pa[j][1] = pack2(s[2 * j][2], s[2 * j][3]);
        pa[j][2] = pack2(s[2 * j + 1][0], s[2 * j + 1][1]);
        pa[j][3] = pack2(s[2 * j + 1][2], s[2 * j + 1][3]);
    }
}

/* acc += A_j . Y[16j, 16j + 16): A_j the fragment a of keys 16j..16j+15 of the warp's 16 x 64
 * tile, Y a 64 x 128 bf16 tile in shared memory; acc [16][4] covers the warp's 16 rows x 128
 * head-dim columns. */
__device__ __forceinline__ void warp_ay_j(float (*acc)[4], const uint32_t *a, const bf16 *Y, int j)
{
#pragma unroll
    for (int d = 0; d < 8; d++) {
        uint32_t bb[4];
        ldbt(bb, Y, j * 16, d * 16);
        mma(acc[2 * d], a, bb[0], bb[1]);
        mma(acc[2 * d + 1], a, bb[2], bb[3]);
    }
}

/* acc += A . Y over the whole tile, A as fragments pa (pack_scores). */
__device__ __forceinline__ void warp_ay(float (*acc)[4], const uint32_t (*pa)[4], const bf16 *Y)
{
#pragma unroll
    for (int j = 0; j < 4; j++)
        warp_ay_j(acc, pa[j], Y, j);
}

/* Stage rows row0..row0+63 of one head (src: bf16, the head's row 0, rows rs elements apart)
 * into X[64][FLD]; rows at or past T are zeros. V (src 16-byte aligned, rs a multiple of 8): 16-byte
 * cp.async copies, asynchronous (cp_commit(), then cp_wait<n>() and a barrier before use: the
 * loops stage the next tile while the tensor cores work on this one); else plain 2-byte copies. */
template <int V>
__device__ __forceinline__ void stage(bf16 *X, const bf16 *src, size_t rs, int row0, int T)
{
    if (V) {
#pragma unroll
        for (int u = 0; u < FB * FD / 8 / FT; u++) {
            int i = threadIdx.x + u * FT, r = i >> 4, c = (i & 15) * 8, ok = row0 + r < T;
            const bf16 *p = src + (size_t)(ok ? row0 + r : 0) * rs + c;
            uint32_t d = (uint32_t)__cvta_generic_to_shared(X + r * FLD + c);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(p),
                         "r"(ok ? 16 : 0)); /* source size 0: zeros */
        }
    } else {
        for (int i = threadIdx.x; i < FB * FD; i += FT) {
            int r = i >> 7, c = i & (FD - 1);
            X[r * FLD + c] =
                row0 + r < T ? src[(size_t)(row0 + r) * rs + c] : __float2bfloat16(0.0f);
        }
    }
}

/* max / sum over the 4 lanes that share a fragment row */
__device__ __forceinline__ float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

struct flash_args {
    float *out, *lse, *dq, *dk, *dv, *dd; /* dd: D [B][NH][T] of the backward */
    const bf16 *q, *k, *v, *dob;          /* dob: dout in bf16 (the backward's prep) */
    bf16 *ds;                             /* the backward: dS^T tiles (ds_tile) */
    const float *o, *dout;                /* fp32: the prep's D = rowsum(dout * o) */
    int T, NH, KVH;
    float scale; /* 1/sqrt(HD) */
    int vec;     /* q, k, v (and dob) are 16-byte aligned */
    int acc_qk;  /* the backward: dq, dk, dv += (1) or = (0) */
    /* v16 (else NULL): dq, dk overwritten in bf16 over the first half of their memory, dv in
     * bf16 to dvb, rows ldv elements apart */
    bf16 *dvb;
    int ldv;
    const float *cs, *sn; /* the backward: RoPE tables [T][FD/2]: dq, dk get RoPE's backward */
};

/* ------------------------------------------------------------------ forward */

/* SB 0: two buffers of a (K, V) tile pair (5 tiles of shared memory, 2 blocks per
 * multiprocessor); SB 1: two K buffers and one V buffer (4 tiles, 3 blocks), V's next tile
 * staged once every warp is done with this one's O += P V, while S and the softmax run. */
template <int V, int SB>
__global__ void __launch_bounds__(FT, SB ? 3 : 2) k_flash_fwd(struct flash_args f)
{
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *Qs = (bf16 *)smem, *KV = Qs + TILE; /* KV: two buffers of a K and a V tile */
    int T = f.T, NH = f.NH, qb = gridDim.z - 1 - blockIdx.z, h = blockIdx.x, b = blockIdx.y;
    int kvh = h / (NH / f.KVH), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int g = lane >> 2, q4 = lane & 3, wr = warp * 16;
    size_t qs = (size_t)NH * FD, ks = (size_t)f.KVH * FD;
    const bf16 *qh = f.q + (size_t)b * T * qs + (size_t)h * FD;
    const bf16 *kh = f.k + (size_t)b * T * ks + (size_t)kvh * FD;
    const bf16 *vh = f.v + (size_t)b * T * ks + (size_t)kvh * FD;
    float c = f.scale * LOG2E; /* scores in log2 units */
    int q0 = qb * FB, row[2] = {q0 + wr + g, q0 + wr + g + 8};
    stage<V>(Qs, qh, qs, q0, T);
    stage<V>(KV, kh, ks, 0, T);
    if (SB)
        cp_commit(); /* groups in order: Q K0, V0, then K(kb + 1) and V(kb + 1) per tile */
    stage<V>(SB ? KV + 2 * TILE : KV + TILE, vh, ks, 0, T);
    cp_commit();
    float o[16][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < 16; i++)
        o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    for (int kb = 0; kb <= qb; kb++) {
        bf16 *Ks = SB ? KV + (kb & 1) * TILE : KV + (kb & 1) * 2 * TILE;
        bf16 *Vs = SB ? KV + 2 * TILE : Ks + TILE;
        if (kb < qb) { /* the next key tile into the other buffer, while this one computes */
            if (SB)
                stage<V>(KV + ((kb + 1) & 1) * TILE, kh, ks, (kb + 1) * FB, T);
            else {
                bf16 *Kn = KV + ((kb + 1) & 1) * 2 * TILE;
                stage<V>(Kn, kh, ks, (kb + 1) * FB, T);
                stage<V>(Kn + TILE, vh, ks, (kb + 1) * FB, T);
            }
        }
        cp_commit();
        if (SB)
            cp_wait<2>(); /* K(kb) has landed (V(kb) and K(kb + 1) may not have) */
        else
            cp_wait<1>(); /* this tile's group has landed */
        __syncthreads();
        float s[8][4];
        warp_xyt(s, Qs, wr, Ks); /* Q from shared memory: registers go to the staging */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = kb * FB + n * 8 + 2 * q4 + (e & 1);
                float x = key <= row[e >> 1] ? s[n][e] * c : -INFINITY;
                s[n][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        float al[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            /* key 0 is in every row's first tile: m is finite from there on */
            float mn = fmaxf(m[i], quad_max(mx[i]));
            al[i] = exp2f(m[i] - mn);
            m[i] = mn;
            l[i] *= al[i];
        }
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s[n][e] - m[e >> 1]);
                s[n][e] = p;
                l[e >> 1] += p;
            }
#pragma unroll
        for (int i = 0; i < 16; i++) {
            o[i][0] *= al[0];
            o[i][1] *= al[0];
            o[i][2] *= al[1];
            o[i][3] *= al[1];
        }
        if (SB) {
            cp_wait<1>(); /* V(kb) too */
            __syncthreads();
        }
#pragma unroll
        for (int j = 0; j < 4; j++) { /* keys 16j..16j+15 of the tile */
            uint32_t a[4] = {pack2(s[2 * j][0], s[2 * j][1]), pack2(s[2 * j][2], s[2 * j][3]),
                             pack2(s[2 * j + 1][0], s[2 * j + 1][1]),
                             pack2(s[2 * j + 1][2], s[2 * j + 1][3])};
            warp_ay_j(o, a, Vs, j); /* O += P V, packed per j: fewer live registers */
        }
        __syncthreads(); /* every warp is done with this buffer before it is refilled */
        if (SB) {
            if (kb < qb)
                stage<V>(Vs, vh, ks, (kb + 1) * FB, T);
            cp_commit();
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] = quad_sum(l[i]);
        if (row[i] >= T)
            continue;
        float inv = 1.0f / l[i];
        float *dst = f.out + ((size_t)b * T + row[i]) * qs + (size_t)h * FD + 2 * q4;
#pragma unroll
        for (int d = 0; d < 16; d++) {
            dst[d * 8] = o[d][2 * i] * inv;
            dst[d * 8 + 1] = o[d][2 * i + 1] * inv;
        }
        if (q4 == 0)
            f.lse[((size_t)b * NH + h) * T + row[i]] = (m[i] + log2f(l[i])) * LN2;
    }
}

/* A warp's gradient row: v[d][e] = g(c) = acc[c / 8][2i + c % 2] * sc at column c = (c / 8) * 8
 * + 2 q4 + e (the thread's 32 of the row); with RoPE's tables of the row's position (cs, sn:
 * [FD/2], else NULL) RoPE's backward first, column j < 64 pairing with j + 64 (held by the same
 * thread: acc[d] and acc[d + 8]) as train/ops.c's trn_rope_backward. */
__device__ __forceinline__ void row_vals(float (*v)[2], const float (*g)[4], int i, float sc,
                                         const float *cs, const float *sn, int q4)
{
    if (cs) {
#pragma unroll
        for (int d = 0; d < 8; d++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int j = d * 8 + 2 * q4 + e;
                float x1 = g[d][2 * i + e] * sc, x2 = g[d + 8][2 * i + e] * sc;
                float co = cs[j], si = sn[j];
                v[d][e] = x1 * co + x2 * si;
                v[d + 8][e] = x2 * co - x1 * si;
            }
    } else {
#pragma unroll
        for (int d = 0; d < 16; d++)
#pragma unroll
            for (int e = 0; e < 2; e++)
                v[d][e] = g[d][2 * i + e] * sc;
    }
}

/* The row out (row_vals), dst the row's start + 2 q4: dst += (acc) or =. */
__device__ __forceinline__ void put_row(float *dst, const float (*g)[4], int i, float sc, int acc,
                                        const float *cs, const float *sn, int q4)
{
    /* every old value is loaded before any store: the 32 loads go out together instead of one
     * DRAM round trip per element (the compiler cannot reorder loads past possibly aliasing
     * stores) */
    float v[16][2], old[16][2];
#pragma unroll
    for (int d = 0; d < 16; d++)
#pragma unroll
        for (int e = 0; e < 2; e++)
            old[d][e] = acc ? dst[d * 8 + e] : 0.0f;
    row_vals(v, g, i, sc, cs, sn, q4);
#pragma unroll
    for (int d = 0; d < 16; d++) {
        float2 o =
            make_float2(acc ? old[d][0] + v[d][0] : v[d][0], acc ? old[d][1] + v[d][1] : v[d][1]);
        if (((uintptr_t)dst & 7) == 0)
            *(float2 *)(dst + d * 8) = o;
        else
            dst[d * 8] = o.x, dst[d * 8 + 1] = o.y;
    }
}

/* put_row's overwrite in bf16 (the backward's v16 mode): two adjacent values per 4-byte store. */
__device__ __forceinline__ void put_row_b16(bf16 *dst, const float (*g)[4], int i, float sc,
                                            const float *cs, const float *sn, int q4)
{
    float v[16][2];
    row_vals(v, g, i, sc, cs, sn, q4);
#pragma unroll
    for (int d = 0; d < 16; d++)
        *(uint32_t *)(dst + d * 8) = pack2(v[d][0], v[d][1]);
}

/* ------------------------------------------------------------------ backward prep */

/* One warp per (token, head) row of 128: D = rowsum(dO * O) in fp32 from the fp32 tensors (into
 * dd [B][NH][T]) and dO in bf16 (dob, the layout of dout), for the two backward kernels. */
__global__ void k_flash_prep(float *dd, bf16 *dob, const float *o, const float *dout, int T, int NH,
                             size_t rows)
{
    size_t w = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= rows)
        return;
    const float *a = o + w * FD, *d = dout + w * FD;
    float s = 0.0f;
    for (int i = lane; i < FD; i += 32) {
        s += a[i] * d[i];
        dob[w * FD + i] = __float2bfloat16_rn(d[i]);
    }
    for (int x = 16; x > 0; x >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, x);
    size_t b = w / ((size_t)T * NH), t = w / NH % T, h = w % NH;
    if (!lane)
        dd[(b * NH + h) * T + t] = s;
}

/* ------------------------------------------------------------------ dQ */

#define SLD (FB + 8) /* shared row stride of a staged dS^T tile: 144 bytes, conflict-free */
#define STILE (FB * SLD)
#define DSN (FB * FB) /* bf16 of one dS^T tile in the scratch */

/* The dS^T tiles of one (sequence, head): the causal ones only, (query tile qb, key tile kb <= qb)
 * at qb (qb + 1) / 2 + kb, each [64 keys][64 queries] bf16 (the dK/dV kernel writes them). */
__device__ __forceinline__ size_t ds_tile(int b, int h, int NH, int nt, int qb, int kb)
{
    return (((size_t)b * NH + h) * (nt * (nt + 1) / 2) + qb * (qb + 1) / 2 + kb) * DSN;
}

/* A fragment of dS (rows = queries r0..r0+15, columns = keys k0..k0+15) from a staged dS^T tile
 * X[key][SLD]: ldmatrix .trans of the stored 8 x 8 blocks (matrix i: keys k0 + 8 (i >> 1),
 * queries r0 + 8 (i & 1)). */
__device__ __forceinline__ void lda_t(uint32_t *a, const bf16 *X, int r0, int k0)
{
    int lane = threadIdx.x & 31, m = lane >> 3;
    const bf16 *p = X + (k0 + (lane & 7) + 8 * (m >> 1)) * SLD + r0 + 8 * (m & 1);
    uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(s));
}

/* one dS^T tile (16-byte aligned in the scratch) into X[64][SLD], asynchronously */
__device__ __forceinline__ void stage_ds(bf16 *X, const bf16 *src)
{
#pragma unroll
    for (int u = 0; u < FB * FB / 8 / FT; u++) {
        int i = threadIdx.x + u * FT, r = i >> 3, c = (i & 7) * 8;
        uint32_t d = (uint32_t)__cvta_generic_to_shared(X + r * SLD + c);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src + r * FB + c));
    }
}

/* dQ = dS K over the key tiles 0..qb, from the dS^T tiles the dK/dV kernel left in the scratch:
 * a block per (query tile, head, sequence), the next (dS^T, K) pair staged while this one
 * computes; no recomputation of S or dP. */
template <int V> __global__ void __launch_bounds__(FT) k_flash_dq(struct flash_args f)
{
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *buf = (bf16 *)smem; /* two buffers of a dS^T tile then a K tile */
    int T = f.T, NH = f.NH, qb = gridDim.z - 1 - blockIdx.z, h = blockIdx.x, b = blockIdx.y;
    int kvh = h / (NH / f.KVH), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int g = lane >> 2, q4 = lane & 3, wr = warp * 16, nt = gridDim.z;
    size_t qs = (size_t)NH * FD, ks = (size_t)f.KVH * FD;
    const bf16 *kh = f.k + (size_t)b * T * ks + (size_t)kvh * FD;
    const bf16 *ds = f.ds + ds_tile(b, h, NH, nt, qb, 0);
    int q0 = qb * FB, row[2] = {q0 + wr + g, q0 + wr + g + 8};
    stage_ds(buf, ds);
    stage<V>(buf + STILE, kh, ks, 0, T);
    cp_commit();
    float acc[16][4];
#pragma unroll
    for (int i = 0; i < 16; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    for (int kb = 0; kb <= qb; kb++) {
        bf16 *Ss = buf + (kb & 1) * (STILE + TILE), *Ks = Ss + STILE;
        if (kb < qb) {
            bf16 *Sn = buf + ((kb + 1) & 1) * (STILE + TILE);
            stage_ds(Sn, ds + (size_t)(kb + 1) * DSN);
            stage<V>(Sn + STILE, kh, ks, (kb + 1) * FB, T);
        }
        cp_commit();
        cp_wait<1>();
        __syncthreads();
#pragma unroll
        for (int j = 0; j < 4; j++) { /* keys 16j..16j+15 of the tile */
            uint32_t a[4];
            lda_t(a, Ss, wr, j * 16);
            warp_ay_j(acc, a, Ks, j); /* dQ += dS K */
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (row[i] >= T)
            continue;
        size_t o = ((size_t)b * T + row[i]) * qs + (size_t)h * FD + 2 * q4;
        size_t tr = (size_t)row[i] * (FD / 2);
        const float *rc = f.cs ? f.cs + tr : NULL, *rs = f.sn ? f.sn + tr : NULL;
        if (f.dvb)
            put_row_b16((bf16 *)f.dq + o, acc, i, f.scale, rc, rs, q4);
        else
            put_row(f.dq + o, acc, i, f.scale, f.acc_qk, rc, rs, q4);
    }
}

/* ------------------------------------------------------------------ dK, dV */

template <int V> __global__ void __launch_bounds__(FT) k_flash_dkdv(struct flash_args f)
{
    extern __shared__ __align__(16) unsigned char smem[];
    /* K, V, then two buffers of a (Q, dO) tile pair and their rows' L and D */
    bf16 *Ks = (bf16 *)smem, *Vs = Ks + TILE, *QG = Vs + TILE;
    float *LD = (float *)(QG + 4 * TILE);
    int T = f.T, NH = f.NH, kb = blockIdx.z, kvh = blockIdx.x, b = blockIdx.y;
    int grp = NH / f.KVH, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int g = lane >> 2, q4 = lane & 3, wr = warp * 16, nqb = (T + FB - 1) / FB, nq = nqb - kb;
    size_t qs = (size_t)NH * FD, ks = (size_t)f.KVH * FD;
    const bf16 *kh = f.k + (size_t)b * T * ks + (size_t)kvh * FD;
    const bf16 *vh = f.v + (size_t)b * T * ks + (size_t)kvh * FD;
    float c = f.scale * LOG2E;
    int k0 = kb * FB, key[2] = {k0 + wr + g, k0 + wr + g + 8};
    float dk[16][4], dv[16][4];
#pragma unroll
    for (int i = 0; i < 16; i++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dk[i][e] = dv[i][e] = 0.0f;
    /* iteration it: query head kvh * grp + it / nq, query tile kb + it % nq (those at or after
     * this key tile); the next one's tiles are staged while this one computes */
    stage<V>(Ks, kh, ks, k0, T);
    stage<V>(Vs, vh, ks, k0, T);
    for (int it = 0; it <= grp * nq; it++) {
        if (it > 0) {
            cp_wait<0>(); /* iteration it - 1's tiles (and K, V) have landed */
            __syncthreads();
        }
        if (it < grp * nq) { /* stage iteration it into buffer it & 1 */
            int h = kvh * grp + it / nq, q0 = (kb + it % nq) * FB;
            size_t hrow = ((size_t)b * NH + h) * T;
            bf16 *Qn = QG + (it & 1) * 2 * TILE;
            float *Ln = LD + (it & 1) * 2 * FB;
            stage<V>(Qn, f.q + (size_t)b * T * qs + (size_t)h * FD, qs, q0, T);
            stage<V>(Qn + TILE, f.dob + (size_t)b * T * qs + (size_t)h * FD, qs, q0, T);
            for (int i = threadIdx.x; i < FB; i += FT) {
                int t = q0 + i;
                Ln[i] = t < T ? f.lse[hrow + t] * LOG2E : 0.0f;
                Ln[FB + i] = t < T ? f.dd[hrow + t] : 0.0f;
            }
            cp_commit();
        }
        if (it == 0)
            continue;
        int pb = (it - 1) & 1, q0 = (kb + (it - 1) % nq) * FB;
        const bf16 *Qs = QG + pb * 2 * TILE, *Gs = Qs + TILE; /* Gs: dO */
        const float *Ls = LD + pb * 2 * FB, *Ds = Ls + FB;
        {
            /* S^T = K Q^T: rows = this warp's 16 keys, columns = the tile's 64 queries */
            float st[8][4];
            warp_xyt(st, Ks, wr, Qs);
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int col = n * 8 + 2 * q4 + (e & 1), qt = q0 + col;
                    st[n][e] = key[e >> 1] <= qt && qt < T ? exp2f(st[n][e] * c - Ls[col]) : 0.0f;
                }
            /* P^T as bf16 A fragments (keys 16j..16j+15 of the query tile): 16 registers
             * instead of 32, which keeps dK and dV in registers */
            uint32_t pa[4][4];
            pack_scores(pa, st);
            warp_ay(dv, pa, Gs); /* dV += P^T dO */
            /* dP^T = V dO^T, then dS^T = P^T (dP^T - D) in place of P^T */
            float dp[8][4];
            warp_xyt(dp, Vs, wr, Gs);
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int w = 0; w < 4; w++) { /* pa[j][w]: tile n, elements e0, e0 + 1 */
                    int n = 2 * j + (w >> 1), e0 = (w & 1) * 2, col = n * 8 + 2 * q4;
                    float2 p = unpack2(pa[j][w]);
                    pa[j][w] =
                        pack2(p.x * (dp[n][e0] - Ds[col]), p.y * (dp[n][e0 + 1] - Ds[col + 1]));
                }
            warp_ay(dk, pa, Qs); /* dK += dS^T Q */
            /* and dS^T itself for the dQ kernel: rows wr + g (+ 8), queries 16j + 2 q4 (+ 8) */
            bf16 *dst = f.ds + ds_tile(b, kvh * grp + (it - 1) / nq, NH, nqb, q0 / FB, kb) +
                        (wr + g) * FB + 2 * q4;
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int w = 0; w < 4; w++)
                    *(uint32_t *)(dst + (w & 1) * 8 * FB + 16 * j + (w >> 1) * 8) = pa[j][w];
        }
    }
#pragma unroll /* constant i: dk and dv stay in registers (a runtime index puts them on the stack) */
    for (int i = 0; i < 2; i++) {
        if (key[i] >= T)
            continue;
        size_t off = ((size_t)b * T + key[i]) * ks + (size_t)kvh * FD + 2 * q4;
        size_t tr = (size_t)key[i] * (FD / 2);
        const float *rc = f.cs ? f.cs + tr : NULL, *rs = f.sn ? f.sn + tr : NULL;
        if (f.dvb) {
            put_row_b16((bf16 *)f.dk + off, dk, i, f.scale, rc, rs, q4);
            put_row_b16(f.dvb + ((size_t)b * T + key[i]) * f.ldv + (size_t)kvh * FD + 2 * q4, dv, i,
                        1.0f, NULL, NULL, q4);
        } else {
            put_row(f.dk + off, dk, i, f.scale, f.acc_qk, rc, rs, q4);
            put_row(f.dv + off, dv, i, 1.0f, f.acc_qk, NULL, NULL, q4);
        }
    }
}

/* ------------------------------------------------------------------ launchers (ops.cu) */

static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

static int all_aligned(const struct flash_args *f)
{
    return aligned16(f->q) && aligned16(f->k) && aligned16(f->v) && (!f->dob || aligned16(f->dob));
}

#define SMEM_FWD(sb) ((sb ? 4 : 5) * TILE * (int)sizeof(bf16))
#define SMEM_DQ (2 * (STILE + TILE) * (int)sizeof(bf16))
#define SMEM_DKDV (6 * TILE * (int)sizeof(bf16) + 4 * FB * (int)sizeof(float))

extern "C" size_t krn_cuda_flash_scratch_(int B, int T, int NH)
{
    size_t bht = (size_t)B * NH * T, nt = (size_t)(T + FB - 1) / FB;
    /* D, then dO in bf16 (16-byte aligned), then the dS^T tiles (16-byte aligned) */
    return bht + 4 + bht * FD / 2 + 4 + (size_t)B * NH * (nt * (nt + 1) / 2) * DSN / 2;
}

static void slots(float *scratch, size_t bht, float **dd, bf16 **dob, bf16 **ds)
{
    *dd = scratch;
    *dob = (bf16 *)(((uintptr_t)(scratch + bht) + 15) & ~(uintptr_t)15);
    *ds = (bf16 *)(((uintptr_t)(*dob + bht * FD) + 15) & ~(uintptr_t)15);
}

extern "C" void krn_cuda_flash_slots_(float *scratch, int B, int T, int NH, float **dd,
                                      uint16_t **dob)
{
    bf16 *b, *ds;
    slots(scratch, (size_t)B * NH * T, dd, &b, &ds);
    *dob = (uint16_t *)b;
}

extern "C" cudaError_t krn_cuda_flash_fwd_(cudaStream_t st, float *out, float *lse,
                                           const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                           int B, int T, int NH, int KVH, int sb)
{
    struct flash_args f = {};
    f.out = out;
    f.lse = lse;
    f.q = (const bf16 *)q;
    f.k = (const bf16 *)k;
    f.v = (const bf16 *)v;
    f.T = T;
    f.NH = NH;
    f.KVH = KVH;
    f.scale = 1.0f / sqrtf((float)FD);
    f.vec = all_aligned(&f);
    void (*kf)(struct flash_args) = f.vec ? (sb ? k_flash_fwd<1, 1> : k_flash_fwd<1, 0>)
                                          : (sb ? k_flash_fwd<0, 1> : k_flash_fwd<0, 0>);
    cudaError_t e =
        cudaFuncSetAttribute(kf, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_FWD(sb));
    if (e != cudaSuccess)
        return e;
    dim3 grid((unsigned)NH, (unsigned)B, (unsigned)((T + FB - 1) / FB));
    kf<<<grid, FT, SMEM_FWD(sb), st>>>(f);
    return cudaGetLastError();
}

extern "C" cudaError_t krn_cuda_flash_bwd_(cudaStream_t st, float *dq, float *dk, int acc_qk,
                                           float *dv, const float *dout, const float *out,
                                           const float *lse, const uint16_t *q, const uint16_t *k,
                                           const uint16_t *v, int B, int T, int NH, int KVH,
                                           float *scratch, const float *cs, const float *sn,
                                           int parts, uint16_t *dvb, int ldv)
{
    struct flash_args f = {};
    f.dvb = (bf16 *)dvb;
    f.ldv = ldv;
    size_t bht = (size_t)B * NH * T;
    f.dq = dq;
    f.dk = dk;
    f.acc_qk = acc_qk;
    f.cs = cs;
    f.sn = sn;
    f.dv = dv;
    bf16 *dob;
    slots(scratch, bht, &f.dd, &dob, &f.ds);
    f.dob = dob;
    f.dout = dout;
    f.o = out;
    f.lse = (float *)lse;
    f.q = (const bf16 *)q;
    f.k = (const bf16 *)k;
    f.v = (const bf16 *)v;
    f.T = T;
    f.NH = NH;
    f.KVH = KVH;
    f.scale = 1.0f / sqrtf((float)FD);
    f.vec = all_aligned(&f);
    void (*kq)(struct flash_args) = f.vec ? k_flash_dq<1> : k_flash_dq<0>;
    void (*kkv)(struct flash_args) = f.vec ? k_flash_dkdv<1> : k_flash_dkdv<0>;
    cudaError_t e = cudaFuncSetAttribute(kq, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_DQ);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(kkv, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_DKDV);
    if (e != cudaSuccess)
        return e;
    if ((parts & 1) && dout) /* else the scratch holds them (krn_cuda_rmsnorm_backward_flash) */
        k_flash_prep<<<(unsigned)((bht * 32 + 255) / 256), 256, 0, st>>>(f.dd, (bf16 *)f.dob, out,
                                                                         dout, T, NH, bht);
    unsigned nt = (unsigned)((T + FB - 1) / FB);
    if (parts & 2) /* dK, dV and the dS^T tiles */
        kkv<<<dim3((unsigned)KVH, (unsigned)B, nt), FT, SMEM_DKDV, st>>>(f);
    if ((e = cudaGetLastError()) != cudaSuccess)
        return e;
    if (parts & 4) /* dQ from them */
        kq<<<dim3((unsigned)NH, (unsigned)B, nt), FT, SMEM_DQ, st>>>(f);
    return cudaGetLastError();
}
