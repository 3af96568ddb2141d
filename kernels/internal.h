/*
 * kernels/internal.h — helpers shared by the portable files of kernels/ (not installed API):
 * aligned allocation, the object structs behind the opaque handles of quant.h, the row-group
 * driver that spreads a raw kernel over the pool.
 */
#ifndef BD_KERNELS_INTERNAL_H
#define BD_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dispatch.h"
#include "kernels/pool.h"
#include "kernels/quant.h"

/* 64-byte aligned, zeroed allocation of n bytes (n rounded up); free with free(). */
void *krn_zalloc64(size_t n);

struct krn_i2 {
    size_t m, k;         /* logical shape: M output rows x K inputs */
    size_t m_pad;        /* round_up(M, 16) */
    size_t k_pad;        /* round_up(K, 64) */
    float d;             /* tensor scale mean(|W|) */
    uint8_t *own;        /* owned packed buffer or NULL when wrapping */
    const uint8_t *data; /* [m_pad/16][k_pad/16][64] packed codes */
    int32_t *csum;       /* [m_pad] sum over k_pad of stored codes (c + 1) */
};

struct krn_qact {
    size_t max_tok, k, k_pad;
    size_t n;      /* tokens of the last quantize */
    int8_t *q;     /* [max_tok][k_pad] */
    float *scale;  /* [max_tok] */
    int32_t *sum;  /* [max_tok] */
    int32_t *bsum; /* [max_tok][k_pad/32] */
};

/* The views the raw kernels take. */
krn_act_view krn_qact_view(const krn_qact *a);

/* Run raw kernel fn on groups [0, n_groups) of w over the pool (split by groups). */
void krn_run_groups(krn_mat_fn fn, const krn_w_view *w, const krn_act_view *x, size_t n_groups,
                    float *y, size_t ldy, krn_pool *pool);

/* Row subset through whole groups: compute every group that holds a requested row into a
 * scratch [n][16] and copy the requested columns out. */
int krn_run_rows(krn_mat_fn fn, const krn_w_view *w, const krn_act_view *x, const size_t *rows,
                 size_t nrows, float *y, size_t ldy, krn_pool *pool);

#endif
