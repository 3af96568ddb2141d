/*
 * kernels/blas.h — the one place that calls OpenBLAS (float GEMM for the FP teacher, training
 * and the float fallback), so its thread count is managed next to the kernel pool (pool.h).
 */
#ifndef BD_KERNELS_BLAS_H
#define BD_KERNELS_BLAS_H

#include <stddef.h>

/* Row-major C[m][n] = alpha * A[m][k] . op(B) + beta * C, op(B) = B[k][n] (trans_b = 0) or
 * B[n][k]^T (trans_b = 1, the usual weight layout); lda/ldb/ldc in elements. */
void krn_sgemm(int trans_b, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
               const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* Row-major C[m][n] = alpha * A^T . B + beta * C with A stored [k][m] and B [k][n] (the
 * weight-gradient shape dW += dY^T X); lda/ldb/ldc in elements. */
void krn_sgemm_at(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                  const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* y[m] = A[m][n] . x[n] (row-major A, lda in elements): one pass over A, the decode shape. */
void krn_sgemv(size_t m, size_t n, const float *a, size_t lda, const float *x, float *y);

/* Dot product of x[n] and y[n]. */
float krn_sdot(size_t n, const float *x, const float *y);

/* Set / get OpenBLAS's thread count (openblas_set_num_threads). */
void krn_blas_set_threads(int n);
int krn_blas_threads(void);

#endif
