/*
 * kernels/blas.c — OpenBLAS behind one row-major entry point and its thread count (blas.h).
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

void krn_blas_set_threads(int n) { openblas_set_num_threads(n); }

int krn_blas_threads(void) { return openblas_get_num_threads(); }
