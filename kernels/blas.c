/*
 * kernels/blas.c — OpenBLAS behind the few row-major entry points the project uses and its
 * thread count (blas.h); no other file includes cblas.h.
 */
#include <cblas.h>

#include "kernels/blas.h"

void krn_sgemm(int trans_b, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
               const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
                (blasint)ldc);
}

void krn_sgemm_at(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                  const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha,
                a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void krn_sgemv(size_t m, size_t n, const float *a, size_t lda, const float *x, float *y)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)m, (blasint)n, 1.0f, a, (blasint)lda, x, 1,
                0.0f, y, 1);
}

float krn_sdot(size_t n, const float *x, const float *y)
{
    return cblas_sdot((blasint)n, x, 1, y, 1);
}

void krn_blas_set_threads(int n)
{
    openblas_set_num_threads(n);
}

int krn_blas_threads(void)
{
    return openblas_get_num_threads();
}
