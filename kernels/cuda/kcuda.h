/*
 * kernels/cuda/kcuda.h — the trainer's operations on a CUDA GPU (prefix krn_cuda_), the device
 * twins of train/ops.h with the same contract: forwards write, backwards ACCUMULATE (+=)
 * into the gradients of their inputs. Every tensor argument is a DEVICE pointer (fp32, row-major,
 * the same shapes as ops.h); int32 arguments (tokens, targets, lengths) are device pointers too.
 *
 * A context owns one device, one stream, a cuBLAS handle and a small reduction scratch. Launches
 * are asynchronous on the context's stream; errors are sticky: the first failed launch or cuBLAS
 * call is kept with its message, and krn_cuda_sync() (or any call that returns a value to the
 * host) reports it as a negative status. A context is used by one thread at a time.
 *
 * Matrix products go through cuBLAS with fp32 storage. krn_cuda_set_bf16(ctx, 1) switches them to
 * bf16 tensor-core arithmetic with fp32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF, the master
 * weights staying fp32); 0 (the default) is plain fp32 arithmetic, which matches the CPU trainer
 * to ~1e-5 relative. The bf16 mode's BitLinear products have their own ops on narrow operands
 * (int8 codes through cublasLt, bf16 storage: krn_cuda_*_narrow, krn_cuda_qlinear_*), which
 * the GPU model uses in place of krn_cuda_wquant/aquant/linear_* for the student's projections.
 */
#ifndef BD_KERNELS_CUDA_KCUDA_H
#define BD_KERNELS_CUDA_KCUDA_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KRN_CUDA_ERR_LEN 512

/* Statuses (the engine's codes, engine/err.h, so they pass through unchanged). */
#define KRN_CUDA_ENOMEM (-2)
#define KRN_CUDA_EINVAL (-8)
#define KRN_CUDA_EDEVICE (-1) /* a device or driver failure (ENG_EIO) */

struct krn_cuda;

/* Number of usable devices (0 when there is no driver or GPU); never fails. When 0 and why is
 * non-NULL, a reason of at most `len` bytes is written there. */
int krn_cuda_device_count(char *why, size_t len);
/* Open device `dev`. Returns 0 or a status with the message in err (KRN_CUDA_ERR_LEN). */
int krn_cuda_create(int dev, struct krn_cuda **out, char *err);
void krn_cuda_free(struct krn_cuda *c); /* NULL: no-op */
void krn_cuda_set_bf16(struct krn_cuda *c, int on);
/* With BITDISTILL_CUDA_PROFILE=1 in the environment at krn_cuda_create, every op records CUDA
 * events around itself (the outermost op of a nested call counts); this prints the device time
 * per op name, largest first, and resets the counts. krn_cuda_free prints it too. No-op
 * otherwise. */
void krn_cuda_prof_report(struct krn_cuda *c, FILE *f);
int krn_cuda_device(const struct krn_cuda *c);
const char *krn_cuda_errmsg(const struct krn_cuda *c);
/* Wait for the stream; 0 or the first sticky error (message in krn_cuda_errmsg). */
int krn_cuda_sync(struct krn_cuda *c);
/* Make c's device current on the calling thread (each thread that drives c calls it once). */
void krn_cuda_bind(struct krn_cuda *c);
/* Device memory in bytes: free and total. */
void krn_cuda_meminfo(struct krn_cuda *c, size_t *free_b, size_t *total_b);

/* ---- memory (device pointers; NULL from alloc = out of memory: the message is kept in
 * krn_cuda_errmsg but the context stays usable, since nothing was launched) ---- */
void *krn_cuda_alloc(struct krn_cuda *c, size_t bytes); /* zero-filled */
void krn_cuda_dfree(struct krn_cuda *c, void *p);
void krn_cuda_h2d(struct krn_cuda *c, void *dst, const void *src, size_t bytes);
void krn_cuda_d2h(struct krn_cuda *c, void *dst, const void *src, size_t bytes); /* synchronous */
void krn_cuda_d2d(struct krn_cuda *c, void *dst, const void *src, size_t bytes);
void krn_cuda_zero(struct krn_cuda *c, void *p, size_t bytes);

/* ---- generic pieces ---- */
/* Row-major strided-batched C = alpha * op(A) . op(B) + beta * C with C [M][N], op(A) [M][K],
 * op(B) [K][N]; ta/tb: 1 = the stored matrix is transposed; lda/ldb/ldc row strides. */
void krn_cuda_gemm(struct krn_cuda *c, int ta, int tb, int M, int N, int K, float alpha,
                   const float *A, int lda, long long sa, const float *B, int ldb, long long sb,
                   float beta, float *C, int ldc, long long sc, int batch);
void krn_cuda_add(struct krn_cuda *c, float *out, const float *a, const float *b, size_t n);
/* sum of x[n]^2 (double accumulation); synchronises. */
double krn_cuda_sumsq(struct krn_cuda *c, const float *x, size_t n);
/* sum of x[n] (double accumulation); synchronises. */
double krn_cuda_sum(struct krn_cuda *c, const float *x, size_t n);

/* ---- the ops (shapes and meaning: train/ops.h) ---- */
void krn_cuda_wquant(struct krn_cuda *c, float *wq, const float *w, size_t n);
void krn_cuda_aquant(struct krn_cuda *c, float *xq, const float *x, int N, int C);
/* The bf16 mode's BitLinear operands (ops.cu "narrow BitLinear"): the ternary codes w8[n] in
 * {-1, 0, 1}, wb[n] = bf16(t d) and the scale *sw = d (device float) of one matrix; the INT8
 * activation codes x8[N][C], xb = bf16(q g / 127) and the row scales sx[N] = g / 127. The codes
 * times their scales are exactly what krn_cuda_wquant / krn_cuda_aquant write. bf16 values are
 * stored as uint16_t. */
void krn_cuda_wquant_narrow(struct krn_cuda *c, int8_t *w8, uint16_t *wb, float *sw, const float *w,
                            size_t n);
/* The same with sum |w| given (*sabs, device; krn_cuda_adamw_abs's) instead of computed. */
void krn_cuda_wquant_narrow_sum(struct krn_cuda *c, int8_t *w8, uint16_t *wb, float *sw,
                                const float *w, size_t n, const double *sabs);
void krn_cuda_aquant_narrow(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx, const float *x,
                            int N, int C);
/* krn_cuda_rmsnorm_forward of inp (rstd written, the output not stored) followed by
 * krn_cuda_aquant_narrow of its output, in one pass. KRN_CUDA_EINVAL (nothing launched) when
 * C > 16384. */
int krn_cuda_rmsnorm_aquant(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx, float *rstd,
                            const float *inp, const float *w, int N, int C, float eps);
/* The widest row the fused norm kernels take (wider: KRN_CUDA_EINVAL, nothing launched). */
#define KRN_CUDA_NORM_MAX 16384
/* The same on the row h = silu(g) u of the SwiGLU (krn_cuda_swiglu_forward's formula; h is not
 * stored): the same codes and scales as krn_cuda_swiglu_forward then krn_cuda_rmsnorm_aquant.
 * KRN_CUDA_EINVAL (nothing launched) when C > 16384. */
int krn_cuda_swiglu_rmsnorm_aquant(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                   float *rstd, const float *g, const float *u, const float *w,
                                   int N, int C, float eps);
/* The same from g and u in bf16 (the gate and up products' outputs kept in bf16, as autocast
 * keeps them: the same values as the fp32 entry on their widened copies). KRN_CUDA_EINVAL
 * (nothing launched) unless C % 4 == 0, C <= KRN_CUDA_SWIGLU16_MAX, g, u 8-byte, x8 4-byte and
 * xb 8-byte aligned. */
#define KRN_CUDA_SWIGLU16_MAX 12288
int krn_cuda_swiglu_rmsnorm_aquant_b16(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                       float *rstd, const uint16_t *g, const uint16_t *u,
                                       const float *w, int N, int C, float eps);
/* The fused SwiGLU + SubLN + quantizer from the gate|up INT8 product's exact sums (gu [N][ld]:
 * the gate's C columns, then the up's; krn_cuda_qlinear_sums over the two matrices' codes back to
 * back): g = bf16((float)acc gsx[n] sg), u likewise with su (as krn_cuda_qlinear_forward scales,
 * then rounded as a bf16-output product rounds), written to gb, ub [N][C] for the backward, then
 * krn_cuda_swiglu_rmsnorm_aquant_b16 of them. KRN_CUDA_EINVAL (nothing launched) unless gu is
 * 16-byte aligned, ld % 4 == 0, ld >= 2 C, and the _b16 entry's conditions hold. */
int krn_cuda_swiglu_rmsnorm_aquant_i32(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                       float *rstd, uint16_t *gb, uint16_t *ub, const int32_t *gu,
                                       int ld, const float *gsx, const float *sg, const float *su,
                                       const float *w, int N, int C, float eps);
/* out[N][OC] = res + (X8 . W8^T) sx[n] sw: exact int32 sums on the INT8 tensor cores (cublasLt;
 * a plain kernel for shapes it does not take), the scales in fp32 after; res may be NULL (no
 * add) and must not be out. out's memory holds the int32 sums in between. */
void krn_cuda_qlinear_forward(struct krn_cuda *c, float *out, const float *res, const int8_t *x8,
                              const float *sx, const int8_t *w8, const float *sw, int N, int C,
                              int OC);
/* acc [N][OC] = x8 . w8^T, the exact int32 sums alone (the caller scales them). */
void krn_cuda_qlinear_sums(struct krn_cuda *c, int32_t *acc, const int8_t *x8, const int8_t *w8,
                           int N, int C, int OC);
/* The o or down product's output folded into the RMSNorm + quantizer that reads it next: io holds
 * the product's int32 sums [N][C] (krn_cuda_qlinear_sums, input row scales isx, matrix scale isw)
 * and gets x = res + (float)acc isx[n] isw written over them (krn_cuda_qlinear_forward's
 * values, bit for bit), then krn_cuda_rmsnorm_aquant of x: the same codes, scales and rstd, one
 * pass instead of two. res must not be io. KRN_CUDA_EINVAL (nothing launched) when
 * C > KRN_CUDA_NORM_MAX; unaligned tensors take the two passes. */
int krn_cuda_res_rmsnorm_aquant(struct krn_cuda *c, int8_t *x8, uint16_t *xb, float *sx,
                                float *rstd, float *io, const float *res, const float *isx,
                                const float *isw, const float *w, int N, int C, float eps);
/* The same product on the bf16 values (xb . wb^T, fp32 accumulation; not exact: today's
 * FAST_16BF rounding), for comparison (BITDISTILL_CUDA_NARROW=bf16). */
void krn_cuda_blinear_forward(struct krn_cuda *c, float *out, const float *res, const uint16_t *xb,
                              const uint16_t *wb, int N, int C, int OC);
/* The same product written in bf16 (out [N][OC], the fp32 sums rounded to nearest even): an
 * output that only feeds bf16 products (the fused attention's v). */
void krn_cuda_blinear_forward_bf16(struct krn_cuda *c, uint16_t *out, const uint16_t *xb,
                                   const uint16_t *wb, int N, int C, int OC);
/* out[n] = bf16(x[n]), rounded to nearest even. */
void krn_cuda_to_bf16(struct krn_cuda *c, uint16_t *out, const float *x, size_t n);
/* The same over rows: out[r * ldo + j] = bf16(x[r * C + j]) for r < N, j < C (a product's dY
 * placed in the columns of a wider fused row). */
void krn_cuda_to_bf16_rows(struct krn_cuda *c, uint16_t *out, int ldo, const float *x, int N,
                           int C);
/* dinp [N][C] = beta dinp + dY . Wb and dw [OC][C] = wbeta dw + dY^T . Xb (either may be NULL)
 * in bf16 x bf16 with fp32 accumulation; dY goes through scratch (N*OC bf16) first. beta 0
 * spares the caller a zero-fill (beta 1: the accumulating contract of the other backwards);
 * wbeta 0 likewise the weight gradient's (its first writer after a zero_grad). */
void krn_cuda_qlinear_backward(struct krn_cuda *c, float *dinp, float beta, float *dw, float wbeta,
                               const float *dout, const uint16_t *xb, const uint16_t *wb,
                               uint16_t *scratch, int N, int C, int OC);
/* The same on a dout already in bf16 (dob [N][OC]): dinp = beta dinp + dob . wb; dw = wbeta dw +
 * dob^T xb (either output may be NULL). */
void krn_cuda_blinear_backward(struct krn_cuda *c, float *dinp, float beta, float *dw, float wbeta,
                               const uint16_t *dob, const uint16_t *xb, const uint16_t *wb, int N,
                               int C, int OC);
/* The same with dinp written in bf16 (overwritten; for an input gradient that only feeds
 * krn_cuda_swiglu_rmsnorm_backward_b16): the product's fp32 sums rounded once. */
void krn_cuda_blinear_backward_b16(struct krn_cuda *c, uint16_t *dinp, float *dw, float wbeta,
                                   const uint16_t *dob, const uint16_t *xb, const uint16_t *wb,
                                   int N, int C, int OC);
/* Micro-benchmark of the linear products at one shape: device ms and TFLOP/s per call of
 * today's fp32-storage products and the narrow ones, one line each on f. 0 or a status. */
int krn_cuda_linear_bench(struct krn_cuda *c, int N, int C, int OC, int reps, FILE *f);
/* Micro-benchmark of the memory-bound row kernels of one layer (RMSNorm, SwiGLU, QK-norm,
 * RoPE, AdamW, the weight quantizer, the gradient norm) at hidden width H and FFN width I (q
 * 2048, k/v 1024) over N tokens: device ms and GB/s per call. */
int krn_cuda_norm_bench(struct krn_cuda *c, int N, int reps, int H, int I, FILE *f);
/* The fused attention's forward, backward and backward kernels at one shape (head dim 128),
 * TFLOP/s beside the materialising path's in the same run. */
int krn_cuda_attn_bench(struct krn_cuda *c, int B, int T, int NH, int KVH, int reps, FILE *f);
void krn_cuda_embed_forward(struct krn_cuda *c, float *out, const int32_t *tok, const float *wte,
                            int N, int C);
void krn_cuda_embed_backward(struct krn_cuda *c, float *dwte, const float *dout, const int32_t *tok,
                             int N, int C);
void krn_cuda_linear_forward(struct krn_cuda *c, float *out, const float *inp, const float *w,
                             int N, int C, int OC);
void krn_cuda_linear_backward(struct krn_cuda *c, float *dinp, float *dw, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC);
void krn_cuda_rmsnorm_forward(struct krn_cuda *c, float *out, float *rstd, const float *inp,
                              const float *w, int N, int C, float eps);
/* The same written in bf16 (an output that only feeds bf16 products: the frozen teacher's). */
void krn_cuda_rmsnorm_forward_bf16(struct krn_cuda *c, uint16_t *out, float *rstd, const float *inp,
                                   const float *w, int N, int C, float eps);
/* dinp += (acc 1) or = (acc 0: no zero-fill needed) the input gradient; dw += the weight's (dw
 * NULL: none), in the same pass over dout and inp (C <= 16384). */
void krn_cuda_rmsnorm_backward(struct krn_cuda *c, float *dinp, int acc, float *dw,
                               const float *dout, const float *inp, const float *w,
                               const float *rstd, int N, int C);
/* krn_cuda_rmsnorm_backward that also writes the resulting dinp in bf16 to dinpb [N][C] (the
 * next product's dY, without a conversion pass; NULL: not), from a dout in bf16 when dout16 (a
 * product's dX kept in bf16, as autocast keeps it: the fp32 entry's values on its widened
 * copy); KRN_CUDA_EINVAL (nothing launched) when C > KRN_CUDA_NORM_MAX. */
int krn_cuda_rmsnorm_backward_mirror(struct krn_cuda *c, float *dinp, int acc, uint16_t *dinpb,
                                     float *dw, const float *dout, int dout16, const float *inp,
                                     const float *w, const float *rstd, int N, int C);
/* The same with dinp written (overwritten) in bf16, a product's dY (KRN_CUDA_EINVAL, nothing
 * launched, when C > KRN_CUDA_NORM_MAX). Row r's gradient goes to dinp + (r / rpt) ldo +
 * (r % rpt) C (rpt 0 or 1 and ldo 0: [N][C]; QK-norm's heads with rpt = heads and ldo the width
 * of a fused q|k|v row: its q or k columns). dout in bf16 when dout16, inp when inp16. */
int krn_cuda_rmsnorm_backward_bf16(struct krn_cuda *c, uint16_t *dinp, int rpt, int ldo, float *dw,
                                   const float *dout, int dout16, const float *inp, int inp16,
                                   const float *w, const float *rstd, int N, int C);
/* The backward of RMSNorm(h = silu(g) u) (rstd from the forward) chained into the SwiGLU
 * backward, h recomputed from g and u: dg, du [N][C] = (overwritten), dw += (may be NULL). One
 * read of g, u and dout, one write of dg and du. KRN_CUDA_EINVAL (nothing launched) when
 * C > 16384. */
int krn_cuda_swiglu_rmsnorm_backward(struct krn_cuda *c, float *dg, float *du, float *dw,
                                     const float *dout, const float *g, const float *u,
                                     const float *w, const float *rstd, int N, int C);
/* The same with dg, du written in bf16 (the gate and up products' dY; the fp32 values rounded),
 * rows ldo elements apart (0: C; 2C with du = dg + C: one [N][2C] dY for the fused gate|up
 * product). */
int krn_cuda_swiglu_rmsnorm_backward_bf16(struct krn_cuda *c, uint16_t *dg, uint16_t *du, int ldo,
                                          float *dw, const float *dout, const float *g,
                                          const float *u, const float *w, const float *rstd, int N,
                                          int C);
/* The same from a dout in bf16 (krn_cuda_blinear_backward_b16's dX), as autocast keeps it. */
int krn_cuda_swiglu_rmsnorm_backward_b16(struct krn_cuda *c, uint16_t *dg, uint16_t *du, int ldo,
                                         float *dw, const uint16_t *dout, const float *g,
                                         const float *u, const float *w, const float *rstd, int N,
                                         int C);
/* The same with g and u in bf16 too (krn_cuda_swiglu_rmsnorm_aquant_b16's inputs). */
int krn_cuda_swiglu_rmsnorm_backward_gu16(struct krn_cuda *c, uint16_t *dg, uint16_t *du, int ldo,
                                          float *dw, const uint16_t *dout, const uint16_t *g,
                                          const uint16_t *u, const float *w, const float *rstd,
                                          int N, int C);
void krn_cuda_rope_forward(struct krn_cuda *c, float *out, const float *inp, const float *cs,
                           const float *sn, int B, int T, int NH, int HD);
/* The forward written in bf16 (the fused attention's q and k). */
void krn_cuda_rope_forward_bf16(struct krn_cuda *c, uint16_t *out, const float *inp,
                                const float *cs, const float *sn, int B, int T, int NH, int HD);
/* QK-norm then RoPE in one pass, one warp per head row of inp [B][T][NH][HD]: rstd [B*T*NH],
 * on (may be NULL: the normed rows are needed only as the relation loss's states) =
 * krn_cuda_rmsnorm_forward's rows, out = krn_cuda_rope_forward_bf16 of them, the same float
 * operations in the same order. KRN_CUDA_EINVAL (nothing launched) unless HD is 64, 128 or
 * 256. */
int krn_cuda_qknorm_rope_bf16(struct krn_cuda *c, uint16_t *out, float *on, float *rstd,
                              const float *inp, const float *w, const float *cs, const float *sn,
                              int B, int T, int NH, int HD, float eps);
/* The q|k|v INT8 product's sums (krn_cuda_qlinear_sums over the three matrices' codes back to
 * back: sum [B T][(NH + 2 KVH) HD]) straight to the attention's operands: q = bf16((float)acc
 * sx[n] swq) (krn_cuda_qlinear_forward's values rounded as a bf16-output product rounds, as
 * autocast keeps them) written to q [B T][NH HD] for the backward, then
 * krn_cuda_qknorm_rope_bf16 of its values (qb, rq, qn when not NULL); k likewise with swk, wk;
 * v scaled with swv and written in bf16 to vb (and in fp32 to v when not NULL). */
struct krn_cuda_qkv {
    const int32_t *sum;
    const float *sx, *swq, *swk, *swv; /* the input codes' row scales, the matrices' scales */
    uint16_t *q, *k;
    float *v, *qn, *kn, *rq, *rk;
    uint16_t *qb, *kb, *vb;
    const float *wq, *wk, *cs, *sn; /* QK-norm's weights, RoPE's tables [T][HD/2] */
};
/* KRN_CUDA_EINVAL (nothing launched) unless HD is 64, 128 or 256 and q, k are given. */
int krn_cuda_qkv_i32(struct krn_cuda *c, const struct krn_cuda_qkv *a, int B, int T, int NH,
                     int KVH, int HD, float eps);
void krn_cuda_rope_backward(struct krn_cuda *c, float *dinp, const float *dout, const float *cs,
                            const float *sn, int B, int T, int NH, int HD);
void krn_cuda_attention_forward(struct krn_cuda *c, float *out, float *probs, const float *q,
                                const float *k, const float *v, int B, int T, int NH, int KVH,
                                int HD);
/* scratch: B*NH*T*T floats (device): every head's dP/dS at once. */
void krn_cuda_attention_backward(struct krn_cuda *c, float *dq, float *dk, float *dv,
                                 const float *dout, const float *probs, const float *q,
                                 const float *k, const float *v, int B, int T, int NH, int KVH,
                                 int HD, float *scratch);
/* Fused causal GQA attention (kernels/cuda/flash.cu: FlashAttention-2 on bf16 tensor cores,
 * softmax statistics and accumulation in fp32): the out of krn_cuda_attention_forward without
 * the T x T probabilities, from q, k, v in bf16 (same layouts; krn_cuda_rope_forward_bf16,
 * krn_cuda_to_bf16 make them); lse [B][NH][T] (natural log-sum-exp of each query row's scaled
 * scores) is all the backward keeps. Head dim 128 only (krn_cuda_flash_supported; any other
 * fails with EINVAL): the caller keeps the materialising ops for the rest. */
int krn_cuda_flash_supported(int HD);
void krn_cuda_flash_forward(struct krn_cuda *c, float *out, float *lse, const uint16_t *q,
                            const uint16_t *k, const uint16_t *v, int B, int T, int NH, int KVH,
                            int HD);
/* dq, dk, dv += (acc_qk 1) or = (acc_qk 0: no zero-fill needed) (fp32; P recomputed
 * from q, k and lse; out and dout fp32, the forward's and its gradient); scratch:
 * krn_cuda_flash_scratch(B, T, NH) floats of device memory (D = rowsum(dout * out), dout in
 * bf16 and the causal 64 x 64 tiles of dS in bf16: about B NH T (66 + T / 4) floats). With RoPE's tables cs, sn [T][HD/2] (else NULL), dq and dk are the gradients of RoPE's
 * input instead (krn_cuda_rope_backward folded in; q and k are then RoPE's outputs).
 * Deterministic: no atomics. */
size_t krn_cuda_flash_scratch(int B, int T, int NH);
/* The backward's first pass folded into the RMSNorm before the output projection (SubLN): its
 * backward (dw += as krn_cuda_rmsnorm_backward; x = inp is the attention's out, [B T][NH 128])
 * writes dX in bf16 and D = rowsum(dX * out) per head straight into the flash scratch, and
 * krn_cuda_flash_backward with dout and out NULL then starts from them: no fp32 dout and no
 * second pass over it. EINVAL (nothing done) for rows of 256 or fewer or wider than
 * KRN_CUDA_NORM_MAX, or tensors not 16-byte aligned: the caller keeps the two-pass path. dout
 * in bf16 when dout16, as for krn_cuda_rmsnorm_backward_mirror. */
int krn_cuda_rmsnorm_backward_flash(struct krn_cuda *c, float *scratch, float *dw,
                                    const float *dout, int dout16, const float *inp, const float *w,
                                    const float *rstd, int B, int T, int NH);
void krn_cuda_flash_backward(struct krn_cuda *c, float *dq, float *dk, int acc_qk, float *dv,
                             const float *dout, const float *out, const float *lse,
                             const uint16_t *q, const uint16_t *k, const uint16_t *v, int B, int T,
                             int NH, int KVH, int HD, float *scratch, const float *cs,
                             const float *sn);
/* krn_cuda_flash_backward overwriting (acc_qk 0) in bf16: dq and dk [B T][NH|KVH HD] (the
 * fp32 entry's values rounded, for the QK-norm backwards that read them next, as autocast
 * keeps them), dV to dvb, rows ldv elements apart (the q|k|v products' dY, whose v columns it
 * is). KRN_CUDA_EINVAL (nothing launched) unless ldv >= KVH HD, ldv is even and the three are
 * 4-byte aligned. */
int krn_cuda_flash_backward_v16(struct krn_cuda *c, uint16_t *dqb, uint16_t *dkb, uint16_t *dvb,
                                int ldv, const float *dout, const float *out, const float *lse,
                                const uint16_t *q, const uint16_t *k, const uint16_t *v, int B,
                                int T, int NH, int KVH, int HD, float *scratch, const float *cs,
                                const float *sn);
void krn_cuda_swiglu_forward(struct krn_cuda *c, float *out, const float *g, const float *u,
                             size_t n);
void krn_cuda_swiglu_forward_bf16(struct krn_cuda *c, uint16_t *out, const float *g, const float *u,
                                  size_t n);
/* The same from bf16 g and u (the frozen teacher's gate and up outputs). */
void krn_cuda_swiglu_forward_b16(struct krn_cuda *c, uint16_t *out, const uint16_t *g,
                                 const uint16_t *u, size_t n);
/* dg, du += (acc 1) or = (acc 0) the gradients. */
void krn_cuda_swiglu_backward(struct krn_cuda *c, float *dg, float *du, int acc, const float *dout,
                              const float *g, const float *u, size_t n);
/* Cross-entropy: rowloss[N] = -log softmax(logits)[target] (0 for target < 0); when dlogits is
 * non-NULL, dlogits += scale/kept * (softmax - onehot) on the kept rows. */
void krn_cuda_ce(struct krn_cuda *c, float *rowloss, float *dlogits, const float *logits,
                 const int32_t *target, int N, int V, int kept, float scale);
/* Logits KL: rowloss[N] = KL(softmax(t/tau) || softmax(s/tau)); ds += scale/kept/tau*(ps - pt). */
void krn_cuda_kl(struct krn_cuda *c, float *rowloss, float *ds, const float *s, const float *t,
                 const int32_t *target, int N, int V, float tau, int kept, float scale);
/* The head's losses in one pass pair over N logit rows (kernels/cuda/head.cu, the bf16 mode's
 * fused head): ce[N] = -log softmax(s)[target]; with t (else NULL), kl[N] = KL(softmax(t/tau) ||
 * softmax(s/tau)); with g (else NULL), g [N][V] bf16 = wce (softmax(s) - onehot) + wkl
 * (softmax(s/tau) - softmax(t/tau)), OVERWRITTEN (zero rows where target < 0, whose losses are
 * 0). The callers' weights: wce = scale/kept, wkl = scale/kept/tau (krn_cuda_ce / krn_cuda_kl).
 * s and t are fp32 [N][V], or bf16 when b16 (the head product's bf16 output, as autocast keeps
 * the logits; every statistic still in fp32). */
void krn_cuda_head_loss(struct krn_cuda *c, float *ce, float *kl, uint16_t *g, const void *s,
                        const void *t, int b16, const int32_t *target, int N, int V, float tau,
                        float wce, float wkl);
/* Relation distillation of one state (ops.h trn_relation_*): returns the loss (synchronises);
 * when ds is non-NULL, ds += scale * dloss/ds. len: device [B] (NULL = all T); rows: the sum over
 * b of min(len[b], T) (the host knows it). The scratch is krn_cuda_relation_scratch() floats of
 * device memory. */
size_t krn_cuda_relation_scratch(int B, int T, int Cs, int Ct, int S);
double krn_cuda_relation(struct krn_cuda *c, float *ds, const float *s, const float *t,
                         const int32_t *len, int rows, int B, int T, int Cs, int Ct, int S,
                         int scaled, float t_r, float scale, float *scratch);
/* AdamW on p, g, m, v [n]: g' = g*cs; m,v moments; p -= lr*wd*p; p -= lr*mhat/(sqrt(vhat)+eps). */
void krn_cuda_adamw(struct krn_cuda *c, float *p, const float *g, float *m, float *v, size_t n,
                    float lr, float b1, float b2, float eps, float wd, float bc1, float bc2,
                    float cs);
/* krn_cuda_adamw that also adds sum |p| of the updated p into *sabs (device, double). */
void krn_cuda_adamw_abs(struct krn_cuda *c, float *p, const float *g, float *m, float *v, size_t n,
                        float lr, float b1, float b2, float eps, float wd, float bc1, float bc2,
                        float cs, double *sabs);
void krn_cuda_scale(struct krn_cuda *c, float *x, float a, size_t n);

/* ---- all-reduce over GPUs (NCCL, kernels/cuda/nccl.cu) ----
 * krn_cuda_comm_create: one communicator spans n contexts (one per device, one process driving
 * all). Sets NCCL_NVLS_ENABLE=0 in the environment first (NVLink multicast stays off on shared
 * hosts). Without NCCL in the build, create fails with a message. */
struct krn_cuda_comm;
int krn_cuda_comm_create(struct krn_cuda **ctx, int n, struct krn_cuda_comm **out, char *err);
/* Several processes: rank 0 writes a fresh id[KRN_CUDA_COMM_ID_BYTES] (ncclGetUniqueId), the
 * caller gives it to every process, and each joins its n contexts as global ranks first_rank
 * ... first_rank + n - 1 of nranks. Joining waits at most timeout_s seconds for the peers
 * (then aborts and fails, naming the rank); the contexts are borrowed as above. */
#define KRN_CUDA_COMM_ID_BYTES 128
int krn_cuda_comm_unique_id(unsigned char *id, char *err);
int krn_cuda_comm_create_rank(struct krn_cuda **ctx, int n, const unsigned char *id, int nranks,
                              int first_rank, double timeout_s, struct krn_cuda_comm **out,
                              char *err);
void krn_cuda_comm_free(struct krn_cuda_comm *m);
/* In place: buf[i] (device pointer of ctx[i], count floats) = sum over i. Waits at most
 * timeout_s seconds; past that (a lost peer, a hung collective) the communicator is aborted and
 * an error returned, never a hang. */
int krn_cuda_allreduce_sum(struct krn_cuda_comm *m, float **buf, size_t count, double timeout_s,
                           char *err);

#ifdef __cplusplus
}
#endif

#endif
