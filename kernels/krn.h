/*
 * kernels/krn.h — status codes, CPU-feature dispatch and the kernel variants of kernels/.
 *
 * kernels/ holds the arithmetic of the ternary student forward pass: the 2-bit "I2" ternary
 * weight format and its GEMV/GEMM (quant.h, gemm.h), the INT8 / 4-bit LM-head kernels (gemm.h),
 * the float ops (fops.h), a persistent thread pool (pool.h) and a thin OpenBLAS wrapper
 * (blas.h). Every SIMD kernel has a scalar `_ref` twin with the same signature (dispatch.h);
 * the `_ref` code is the specification and the tests compare every variant against it.
 *
 * Dispatch: krn_init() picks one variant per process from cpuid / getauxval(AT_HWCAP), or the
 * variant the environment variable BITDISTILL_KERNELS names (ref, avx2, avx512, amx, neon,
 * neondot). It is called once at start-up (calling it again is harmless and cheap: the first
 * result stays unless krn_init_variant() forces another); every kernel entry point calls it
 * lazily, so forgetting it costs nothing but a branch.
 */
#ifndef BD_KERNELS_KRN_H
#define BD_KERNELS_KRN_H

#include <stddef.h>
#include <stdint.h>

/* Status codes: 0 ok, negative = error. One list, one strerror. */
#define KRN_STATUS_MAP(X)                                                                          \
    X(KRN_OK, 0, "ok")                                                                             \
    X(KRN_ENOMEM, -1, "out of memory")                                                             \
    X(KRN_EINVAL, -2, "invalid argument")                                                          \
    X(KRN_ESHAPE, -3, "shape mismatch")                                                            \
    X(KRN_ENOTSUP, -4, "kernel variant not supported on this CPU")                                 \
    X(KRN_ENONFINITE, -5, "input held NaN or Inf (output defined, see the function's contract)")   \
    X(KRN_ETOOBIG, -6, "dimension exceeds the int32 accumulation bound")                           \
    X(KRN_ETHREAD, -7, "cannot start a thread")                                                    \
    X(KRN_ERANGE, -8, "value outside the range of the storage format (fp16 Q4 block scale)")

typedef enum {
#define KRN_STATUS_ENUM_(name, val, msg) name = val,
    KRN_STATUS_MAP(KRN_STATUS_ENUM_)
#undef KRN_STATUS_ENUM_
} krn_status;

/* A static string for a status (never NULL; unknown codes give "unknown kernel status"). */
const char *krn_strerror(int status);

/* Kernel variants, from the slowest to the most specialised of each family. */
typedef enum {
    KRN_VARIANT_REF = 0, /* portable scalar C: the specification */
    KRN_VARIANT_AVX2,    /* x86-64 AVX2 + FMA: maddubs/madd for ternary, madd for INT8 */
    KRN_VARIANT_AVX512,  /* x86-64 AVX-512 F/BW/VL + VNNI: vpdpbusd */
    KRN_VARIANT_AMX,     /* AVX512 + AMX-INT8 tiles (TDPBUSD) for the ternary GEMM (n >= 16) */
    KRN_VARIANT_NEON,    /* aarch64 ASIMD without dot product: vmull_s8 + vpadal */
    KRN_VARIANT_NEONDOT, /* aarch64 ASIMD dot product: vdotq_s32 */
    KRN_VARIANT_COUNT
} krn_variant;

/* Pick the variant once: BITDISTILL_KERNELS if set (unknown or unsupported names fall back to
 * the best supported variant with a message on stderr), else the best the CPU supports. For
 * AMX, asks Linux for the tile-data permission (arch_prctl ARCH_REQ_XCOMP_PERM); if that fails
 * the variant is AVX512. Returns the variant now in use. Thread-safe; idempotent. */
krn_variant krn_init(void);

/* Force a variant (tests, benchmarks). Returns KRN_OK, or KRN_ENOTSUP (nothing changed) when
 * this CPU or build cannot run it. Not to be called while kernels run on other threads. */
int krn_init_variant(krn_variant v);

/* The variant in use (calls krn_init() first if needed). */
krn_variant krn_variant_current(void);

/* 1 if this build and this CPU can run variant v, else 0. */
int krn_variant_supported(krn_variant v);

/* "ref", "avx2", "avx512", "amx", "neon", "neondot"; NULL for an out-of-range value. */
const char *krn_variant_name(krn_variant v);

/* Parse a name as above; returns the variant or -1. */
int krn_variant_parse(const char *name);

#endif
