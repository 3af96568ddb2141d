/*
 * kernels/dispatch.h — the kernel table behind gemm.h / fops.h / quant.h: the transparent views
 * the raw kernels take, every variant's prototypes (`_ref` and its SIMD twins share one
 * signature), and the per-variant table. The only header of kernels/ with #ifdef.
 *
 * Raw kernels work on row groups [g0, g1) of 16 output rows and all n tokens of the view; they
 * write only rows < m. The drivers in i2.c / head.c split groups over the pool. Tests call the
 * raw kernels directly to compare variants on unaligned buffers.
 */
#ifndef BD_KERNELS_DISPATCH_H
#define BD_KERNELS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/krn.h"

/* A quantized-activation view (see quant.h krn_qact). Any alignment. */
typedef struct krn_act_view {
    const int8_t *q;      /* [n][ldq] int8, columns k..k_pad-1 zero */
    size_t ldq;           /* row stride of q in bytes, >= k_pad */
    const float *scale;   /* [n] g_t / 127 */
    const int32_t *sum;   /* [n] sum of q over k */
    const int32_t *bsum;  /* [n][k_pad/32] sums over blocks of 32 (Q4); may be NULL otherwise */
    size_t n;             /* tokens */
    size_t k_pad;         /* padded columns (multiple of KRN_KPAD) */
} krn_act_view;

/* A packed-weight view: I2, Q8 or Q4 (see quant.h for each layout). Any alignment. */
typedef struct krn_w_view {
    const uint8_t *data;  /* packed codes (layout per format) */
    const float *scales;  /* Q8: [m_pad] row scales; Q4: [m_pad/16][k_pad/32][16]; I2: unused */
    const int32_t *csum;  /* I2: [m_pad] sum over k_pad of stored codes (c+1), for AMX */
    float d;              /* I2: tensor scale; others unused */
    size_t m;             /* real rows */
    size_t k_pad;         /* padded columns */
} krn_w_view;

/* Raw matrix kernel: y[t*ldy + m] for m in rows of groups [g0, g1), m < w->m, t < x->n. */
typedef void (*krn_mat_fn)(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1,
                           float *y, size_t ldy);

/* Activation quantizer of one token: q[k_pad] (k..k_pad-1 set to 0), returns via out params
 * the scale g/127 and sums (bsum[k_pad/32]); return value = number of non-finite inputs. */
typedef size_t (*krn_actq_fn)(const float *x, size_t k, size_t k_pad, int8_t *q, float *scale,
                              int32_t *sum, int32_t *bsum);

typedef void (*krn_rmsnorm_fn)(float *y, const float *x, const float *w, size_t n, size_t d,
                               float eps);
typedef void (*krn_rope_fn)(float *x, size_t n_tok, size_t n_head, size_t head_dim,
                            const float *cos, const float *sin);
typedef void (*krn_softmax_fn)(float *x, size_t n, size_t d);
typedef void (*krn_silu_mul_fn)(float *y, const float *g, const float *u, size_t n);
typedef void (*krn_add_fn)(float *y, const float *a, const float *b, size_t n);

typedef struct krn_ops {
    krn_variant variant;
    krn_mat_fn i2_gemv;   /* n == 1 */
    krn_mat_fn i2_gemm;   /* n >= 1 */
    krn_mat_fn q8_gemm;   /* n >= 1 */
    krn_mat_fn q4_gemm;   /* n >= 1 */
    krn_actq_fn actq;
    krn_rmsnorm_fn rmsnorm;
    krn_rope_fn rope;
    krn_softmax_fn softmax;
    krn_silu_mul_fn silu_mul;
    krn_add_fn add;
} krn_ops;

/* The table of the current variant (krn_init() first if needed). Reference, never NULL. */
const krn_ops *krn_ops_get(void);
/* The table of variant v, or NULL when this build/CPU cannot run it (tests sweep these). */
const krn_ops *krn_ops_variant(krn_variant v);

#define KRN_DECLARE_MAT_(sfx)                                                                      \
    void krn_i2_gemv_##sfx(const krn_w_view *, const krn_act_view *, size_t, size_t, float *,      \
                           size_t);                                                                \
    void krn_i2_gemm_##sfx(const krn_w_view *, const krn_act_view *, size_t, size_t, float *,      \
                           size_t);                                                                \
    void krn_q8_gemm_##sfx(const krn_w_view *, const krn_act_view *, size_t, size_t, float *,      \
                           size_t);                                                                \
    void krn_q4_gemm_##sfx(const krn_w_view *, const krn_act_view *, size_t, size_t, float *,      \
                           size_t);                                                                \
    size_t krn_actq_##sfx(const float *, size_t, size_t, int8_t *, float *, int32_t *, int32_t *);
#define KRN_DECLARE_FOPS_(sfx)                                                                     \
    void krn_rmsnorm_##sfx(float *, const float *, const float *, size_t, size_t, float);          \
    void krn_rope_##sfx(float *, size_t, size_t, size_t, const float *, const float *);            \
    void krn_softmax_##sfx(float *, size_t, size_t);                                               \
    void krn_silu_mul_##sfx(float *, const float *, const float *, size_t);                        \
    void krn_add_##sfx(float *, const float *, const float *, size_t);

/* Scalar reference: always built. */
KRN_DECLARE_MAT_(ref)
KRN_DECLARE_FOPS_(ref)

#if defined(__x86_64__)
#define KRN_HAVE_X86 1
KRN_DECLARE_MAT_(avx2)
KRN_DECLARE_MAT_(avx512)
KRN_DECLARE_FOPS_(avx2)
KRN_DECLARE_FOPS_(avx512)
/* AMX-INT8 ternary GEMM (n >= 16; smaller n falls to avx512 inside). Needs krn_amx_enable(). */
void krn_i2_gemm_amx(const krn_w_view *, const krn_act_view *, size_t, size_t, float *, size_t);
/* Ask Linux for AMX tile-data permission; 1 when granted (idempotent). */
int krn_amx_enable(void);
#endif

#if defined(__aarch64__)
#define KRN_HAVE_ARM 1
KRN_DECLARE_MAT_(neon)
KRN_DECLARE_MAT_(neondot)
KRN_DECLARE_FOPS_(neon)
#endif

#endif
