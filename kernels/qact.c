/*
 * kernels/qact.c — per-token INT8 activation quantization (krn_qact, quant.h). The per-token
 * work is the dispatched actq kernel; this file owns the buffers.
 */
#include <stdlib.h>

#include "kernels/internal.h"
#include "kernels/krn.h"

int krn_qact_create(size_t max_tok, size_t k, krn_qact **out)
{
    *out = NULL;
    if (!max_tok || !k)
        return KRN_EINVAL;
    krn_qact *a = calloc(1, sizeof(*a));
    if (!a)
        return KRN_ENOMEM;
    a->max_tok = max_tok;
    a->k = k;
    a->k_pad = krn_kpad(k);
    a->q = krn_zalloc64(max_tok * a->k_pad);
    a->scale = krn_zalloc64(max_tok * sizeof(*a->scale));
    a->sum = krn_zalloc64(max_tok * sizeof(*a->sum));
    a->bsum = krn_zalloc64(max_tok * (a->k_pad / KRN_Q4_BLOCK) * sizeof(*a->bsum));
    if (!a->q || !a->scale || !a->sum || !a->bsum) {
        krn_qact_free(a);
        return KRN_ENOMEM;
    }
    *out = a;
    return KRN_OK;
}

void krn_qact_free(krn_qact *a)
{
    if (!a)
        return;
    free(a->q);
    free(a->scale);
    free(a->sum);
    free(a->bsum);
    free(a);
}

int krn_qact_quantize(krn_qact *a, const float *x, size_t n, size_t ldx)
{
    if (n > a->max_tok || ldx < a->k)
        return KRN_ESHAPE;
    const krn_ops *ops = krn_ops_get();
    size_t bad = 0, nb = a->k_pad / KRN_Q4_BLOCK;
    for (size_t t = 0; t < n; t++)
        bad += ops->actq(x + t * ldx, a->k, a->k_pad, a->q + t * a->k_pad, &a->scale[t], &a->sum[t],
                         a->bsum + t * nb);
    a->n = n;
    return bad ? KRN_ENONFINITE : KRN_OK;
}

int krn_qact_prepare(krn_qact *a, size_t n)
{
    if (n > a->max_tok)
        return KRN_ESHAPE;
    a->n = n;
    return KRN_OK;
}

size_t krn_qact_quantize_row(krn_qact *a, size_t t, const float *x)
{
    size_t nb = a->k_pad / KRN_Q4_BLOCK;
    return krn_ops_get()->actq(x, a->k, a->k_pad, a->q + t * a->k_pad, &a->scale[t], &a->sum[t],
                               a->bsum + t * nb);
}

size_t krn_qact_tokens(const krn_qact *a)
{
    return a->n;
}
size_t krn_qact_cols(const krn_qact *a)
{
    return a->k;
}
const int8_t *krn_qact_q(const krn_qact *a, size_t t)
{
    return a->q + t * a->k_pad;
}
float krn_qact_scale(const krn_qact *a, size_t t)
{
    return a->scale[t];
}
int32_t krn_qact_sum(const krn_qact *a, size_t t)
{
    return a->sum[t];
}

krn_act_view krn_qact_view(const krn_qact *a)
{
    krn_act_view v = {.q = a->q,
                      .ldq = a->k_pad,
                      .scale = a->scale,
                      .sum = a->sum,
                      .bsum = a->bsum,
                      .n = a->n,
                      .k_pad = a->k_pad};
    return v;
}
