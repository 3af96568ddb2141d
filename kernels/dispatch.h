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
    const int8_t *q;     /* [n][ldq] int8, columns k..k_pad-1 zero */
    size_t ldq;          /* row stride of q in bytes, >= k_pad */
    const float *scale;  /* [n] g_t / 127 */
    const int32_t *sum;  /* [n] sum of q over k */
    const int32_t *bsum; /* [n][k_pad/32] sums over blocks of 32 (Q4); may be NULL otherwise */
    size_t n;            /* tokens */
    size_t k_pad;        /* padded columns (multiple of KRN_KPAD) */
} krn_act_view;

/* A packed-weight view: I2, Q8 or Q4 (see quant.h for each layout). Any alignment. */
typedef struct krn_w_view {
    const uint8_t *data;      /* packed codes (layout per format) */
    const float *scales;      /* Q8: [m_pad] row scales; others unused */
    const uint16_t *scales16; /* Q4: [m_pad/16][k_pad/32][16] fp16 block scales; others unused */
    const int32_t *csum;      /* I2: [m_pad] sum over k_pad of stored codes (c+1), for AMX */
    float d;                  /* I2: tensor scale; others unused */
    size_t m;                 /* real rows */
    size_t k_pad;             /* padded columns */
} krn_w_view;

/* Raw matrix kernel: for rows m of groups [g0, g1) with m < w->m and tokens t < x->n, writes
 * y[t*ldy + (m - 16*g0)]: y points at the first row of group g0 (any alignment). */
typedef void (*krn_mat_fn)(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1,
                           float *y, size_t ldy);

/* Activation quantizer of one token: q[k_pad] (k..k_pad-1 set to 0), returns via out params
 * the scale g/127 and sums (bsum[k_pad/32]); return value = number of non-finite inputs. */
typedef size_t (*krn_actq_fn)(const float *x, size_t k, size_t k_pad, int8_t *q, float *scale,
                              int32_t *sum, int32_t *bsum);

typedef void (*krn_rmsnorm_fn)(float *y, float *rstd, const float *x, const float *w, size_t n,
                               size_t d, float eps);
typedef void (*krn_rope_fn)(float *x, size_t n_tok, size_t n_head, size_t head_dim,
                            const float *cos, const float *sin);
typedef void (*krn_softmax_fn)(float *x, size_t n, size_t d);
typedef void (*krn_silu_mul_fn)(float *y, const float *g, const float *u, size_t n);
typedef void (*krn_add_fn)(float *y, const float *a, const float *b, size_t n);
typedef void (*krn_attn_scores_fn)(float *s, const float *q, const float *K, size_t ldk, size_t n,
                                   size_t d, float scale);
typedef void (*krn_attn_values_fn)(float *o, const float *p, const float *V, size_t ldv, size_t n,
                                   size_t d);

typedef struct krn_ops {
    krn_variant variant;
    krn_mat_fn i2_gemv; /* n == 1 */
    krn_mat_fn i2_gemm; /* n >= 1 */
    krn_mat_fn q8_gemm; /* n >= 1 */
    krn_mat_fn q4_gemm; /* n >= 1 */
    krn_actq_fn actq;
    krn_rmsnorm_fn rmsnorm;
    krn_rope_fn rope;
    krn_softmax_fn softmax;
    krn_silu_mul_fn silu_mul;
    krn_add_fn add;
    krn_attn_scores_fn attn_scores;
    krn_attn_values_fn attn_values;
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
    void krn_rmsnorm_##sfx(float *, float *, const float *, const float *, size_t, size_t, float); \
    void krn_rope_##sfx(float *, size_t, size_t, size_t, const float *, const float *);            \
    void krn_softmax_##sfx(float *, size_t, size_t);                                               \
    void krn_silu_mul_##sfx(float *, const float *, const float *, size_t);                        \
    void krn_add_##sfx(float *, const float *, const float *, size_t);                             \
    void krn_attn_scores_##sfx(float *, const float *, const float *, size_t, size_t, size_t,      \
                               float);                                                             \
    void krn_attn_values_##sfx(float *, const float *, const float *, size_t, size_t, size_t);

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

/* A spin-wait hint (pool.c): pause on x86, yield on aarch64. */
static inline void krn_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* CPU detection and table filling (used by krn.c only).                                     */

#if defined(KRN_DISPATCH_IMPL)
#if defined(__x86_64__)
#include <cpuid.h>
/* 1 if cpuid says AMX-TILE and AMX-INT8 (leaf 7.0 EDX bits 24, 25). OS permission separate. */
static inline int krn_cpu_amx_(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (d >> 24 & 1) && (d >> 25 & 1);
}
static inline int krn_cpu_supports_(krn_variant v)
{
    __builtin_cpu_init();
    /* F16C: the AVX2 Q4 kernel converts the fp16 block scales with vcvtph2ps (every AVX2 CPU
     * has it; checked all the same). AVX-512 converts with the AVX512F form. */
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    switch (v) {
    case KRN_VARIANT_REF: return 1;
    case KRN_VARIANT_AVX2: return avx2;
    case KRN_VARIANT_AVX512: return avx512;
    case KRN_VARIANT_AMX: return avx512 && krn_cpu_amx_() && krn_amx_enable();
    default: return 0;
    }
}
#define KRN_FILL_(t, sfx, fsfx)                                                                    \
    do {                                                                                           \
        (t)->i2_gemv = krn_i2_gemv_##sfx;                                                          \
        (t)->i2_gemm = krn_i2_gemm_##sfx;                                                          \
        (t)->q8_gemm = krn_q8_gemm_##sfx;                                                          \
        (t)->q4_gemm = krn_q4_gemm_##sfx;                                                          \
        (t)->actq = krn_actq_##sfx;                                                                \
        (t)->rmsnorm = krn_rmsnorm_##fsfx;                                                         \
        (t)->rope = krn_rope_##fsfx;                                                               \
        (t)->softmax = krn_softmax_##fsfx;                                                         \
        (t)->silu_mul = krn_silu_mul_##fsfx;                                                       \
        (t)->add = krn_add_##fsfx;                                                                 \
        (t)->attn_scores = krn_attn_scores_##fsfx;                                                 \
        (t)->attn_values = krn_attn_values_##fsfx;                                                 \
    } while (0)
static inline void krn_fill_(krn_ops *t, krn_variant v)
{
    t->variant = v;
    switch (v) {
    case KRN_VARIANT_AVX2: KRN_FILL_(t, avx2, avx2); break;
    case KRN_VARIANT_AVX512: KRN_FILL_(t, avx512, avx512); break;
    case KRN_VARIANT_AMX:
        KRN_FILL_(t, avx512, avx512);
        t->i2_gemm = krn_i2_gemm_amx;
        break;
    default: KRN_FILL_(t, ref, ref); break;
    }
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static inline int krn_cpu_supports_(krn_variant v)
{
    switch (v) {
    case KRN_VARIANT_REF:
    case KRN_VARIANT_NEON: return 1;
    case KRN_VARIANT_NEONDOT: return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    default: return 0;
    }
}
#define KRN_FILL_(t, sfx, fsfx)                                                                    \
    do {                                                                                           \
        (t)->i2_gemv = krn_i2_gemv_##sfx;                                                          \
        (t)->i2_gemm = krn_i2_gemm_##sfx;                                                          \
        (t)->q8_gemm = krn_q8_gemm_##sfx;                                                          \
        (t)->q4_gemm = krn_q4_gemm_##sfx;                                                          \
        (t)->actq = krn_actq_##sfx;                                                                \
        (t)->rmsnorm = krn_rmsnorm_##fsfx;                                                         \
        (t)->rope = krn_rope_##fsfx;                                                               \
        (t)->softmax = krn_softmax_##fsfx;                                                         \
        (t)->silu_mul = krn_silu_mul_##fsfx;                                                       \
        (t)->add = krn_add_##fsfx;                                                                 \
        (t)->attn_scores = krn_attn_scores_##fsfx;                                                 \
        (t)->attn_values = krn_attn_values_##fsfx;                                                 \
    } while (0)
static inline void krn_fill_(krn_ops *t, krn_variant v)
{
    t->variant = v;
    switch (v) {
    case KRN_VARIANT_NEON: KRN_FILL_(t, neon, neon); break;
    case KRN_VARIANT_NEONDOT: KRN_FILL_(t, neondot, neon); break;
    default: KRN_FILL_(t, ref, ref); break;
    }
}
#else
static inline int krn_cpu_supports_(krn_variant v)
{
    return v == KRN_VARIANT_REF;
}
static inline void krn_fill_(krn_ops *t, krn_variant v)
{
    t->variant = KRN_VARIANT_REF;
    t->i2_gemv = krn_i2_gemv_ref;
    t->i2_gemm = krn_i2_gemm_ref;
    t->q8_gemm = krn_q8_gemm_ref;
    t->q4_gemm = krn_q4_gemm_ref;
    t->actq = krn_actq_ref;
    t->rmsnorm = krn_rmsnorm_ref;
    t->rope = krn_rope_ref;
    t->softmax = krn_softmax_ref;
    t->silu_mul = krn_silu_mul_ref;
    t->add = krn_add_ref;
    t->attn_scores = krn_attn_scores_ref;
    t->attn_values = krn_attn_values_ref;
}
#endif
#endif /* KRN_DISPATCH_IMPL */

#endif
