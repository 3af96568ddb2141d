/*
 * engine/student.c — the ternary student: quantization from an FP model, the forward hooks
 * (forward.c calls them through eng_student_ops), and the GGUF student file (see student.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/model_impl.h"
#include "engine/student.h"
#include "engine/student_impl.h"
#include "kernels/gemm.h"
#include "kernels/krn.h"
#include "kernels/pool.h"
#include "kernels/blas.h"
#include "kernels/quant.h"

#define Q4_BLK ENG_Q4_BLK


/* ------------------------------------------------------------------------- file formats */

static size_t q4_nb(int k)
{
    return ((size_t)k + Q4_BLK - 1) / Q4_BLK;
}

static void qmat_release(struct qmat *q)
{
    free(q->codes);
    free(q->scales);
    free(q->scales16);
    krn_q8_free(q->k8);
    krn_q4_free(q->k4);
    memset(q, 0, sizeof(*q));
}

/* Make the kernel object from file-format codes and scales (borrowed, any alignment), exactly
 * (krn_*_create_codes: no requantization): Q8 takes s8 [m] fp32, Q4 s16 [m][nb] fp16 bit
 * patterns (the other is unused). Q4 codes are unpacked from two per byte into one int8 per
 * weight first. A Q4 scale that is NaN, Inf or negative gives ENG_ERANGE. */
static int qmat_kernel(struct qmat *q, const int8_t *codes, const float *s8, const uint16_t *s16)
{
    int rc;
    if (!q->q4) {
        rc = krn_q8_create_codes(codes, s8, (size_t)q->m, (size_t)q->k, &q->k8);
        return rc == KRN_OK ? 0 : rc == KRN_ENOMEM ? ENG_ENOMEM : ENG_ERANGE;
    }
    size_t rb = q4_nb(q->k) * 16;
    int8_t *c = malloc((size_t)q->m * q->k);
    if (!c)
        return ENG_ENOMEM;
    for (int r = 0; r < q->m; r++)
        for (int j = 0; j < q->k; j++) {
            uint8_t b = (uint8_t)codes[(size_t)r * rb + j / 2];
            c[(size_t)r * q->k + j] = (int8_t)((j & 1 ? b >> 4 : b & 15) - 8);
        }
    rc = krn_q4_create_codes(c, s16, (size_t)q->m, (size_t)q->k, &q->k4);
    free(c);
    return rc == KRN_OK ? 0 : rc == KRN_ENOMEM ? ENG_ENOMEM : ENG_ERANGE;
}

/* 4-bit part of qmat_from_fp: the kernels' quantizer itself (krn_q4_quantize: fp16 scale
 * f16(absmax / 7), codes from the rounded scale), its codes packed two per byte into the file
 * format, and the kernel object made from the same codes. */
static int qmat_from_fp_q4(struct qmat *q, const float *w)
{
    size_t nb = q4_nb(q->k), m = (size_t)q->m, k = (size_t)q->k;
    int8_t *c = malloc(m * k);
    int rc = ENG_ENOMEM;
    if (!c)
        return rc;
    int kr = krn_q4_quantize(w, m, k, c, q->scales16);
    if (kr) {
        rc = kr == KRN_ENOMEM ? ENG_ENOMEM : ENG_ERANGE;
        goto out;
    }
    for (size_t r = 0; r < m; r++)
        for (size_t j = 0; j < nb * Q4_BLK; j++) { /* padding codes = 0 (+8) */
            unsigned v = (unsigned)((j < k ? c[r * k + j] : 0) + 8);
            uint8_t *byte = (uint8_t *)&q->codes[r * nb * 16 + j / 2];
            *byte = (uint8_t)(j & 1 ? (*byte & 0x0f) | (v << 4) : (*byte & 0xf0) | v);
        }
    kr = krn_q4_create_codes(c, q->scales16, m, k, &q->k4);
    rc = kr == KRN_OK ? 0 : kr == KRN_ENOMEM ? ENG_ENOMEM : ENG_ERANGE;
out:
    free(c);
    return rc;
}

/* Quantize fp32 w [m][k] into the file format (INT8 per row or 4-bit per block of 32), with
 * the kernels' formulas (quant.h), then build the kernel object. */
static int qmat_from_fp(struct qmat *q, const float *w, int m, int k, int q4)
{
    size_t nb = q4_nb(k);
    q->m = m;
    q->k = k;
    q->q4 = q4;
    q->codes = calloc((size_t)m * (q4 ? nb * 16 : (size_t)k), 1);
    if (q4)
        q->scales16 = calloc((size_t)m * nb, sizeof(uint16_t));
    else
        q->scales = calloc((size_t)m, sizeof(float));
    if (!q->codes || !(q4 ? (void *)q->scales16 : (void *)q->scales))
        return ENG_ENOMEM;
    if (q4)
        return qmat_from_fp_q4(q, w);
    for (int r = 0; r < m; r++) {
        const float *wr = w + (size_t)r * k;
        if (!isfinite(wr[0]))
            return ENG_ERANGE;
        float mx = 0;
        for (int j = 0; j < k; j++)
            mx = fmaxf(mx, fabsf(wr[j]));
        if (!isfinite(mx))
            return ENG_ERANGE;
        float s = mx / 127.0f;
        q->scales[r] = s;
        for (int j = 0; j < k; j++) {
            float c = s > 0 ? nearbyintf(wr[j] / s) : 0.0f;
            q->codes[(size_t)r * k + j] = (int8_t)fmaxf(-127.0f, fminf(127.0f, c));
        }
    }
    return qmat_kernel(q, q->codes, q->scales, NULL);
}

static size_t qmat_bytes(const struct qmat *q)
{
    return q->q4 ? krn_q4_bytes(q->k4) : krn_q8_bytes(q->k8);
}

static void qmat_row(const struct qmat *q, int32_t id, float *out)
{
    if (q->q4)
        krn_q4_row(q->k4, (size_t)id, out);
    else
        krn_q8_row(q->k8, (size_t)id, out);
}

/* ------------------------------------------------------------------------- forward hooks */

static krn_qact *pick_qa(struct eng_ctx *c, int in)
{
    struct stu_ctx *s = c->qa;
    const struct eng_config *cf = &c->m->cfg;
    if (in == cf->hidden)
        return s->qh;
    if (in == cf->heads * cf->head_dim)
        return s->qq;
    return s->qi;
}

static int s_lin(struct eng_ctx *c, const struct eng_lin *l, const float *x, int n, float *y)
{
    krn_qact *qa = pick_qa(c, l->in);
    int rc = krn_qact_quantize(qa, x, (size_t)n, (size_t)l->in);
    if (rc != KRN_OK && rc != KRN_ENONFINITE)
        return eng_fail(c->err, ENG_ERANGE, "activation quantization failed: %s", krn_strerror(rc));
    rc = krn_i2_gemm(l->q, qa, y, (size_t)l->out, ((struct stu_ctx *)c->qa)->pool);
    if (rc != KRN_OK)
        return eng_fail(c->err, ENG_ESHAPE, "ternary GEMM failed: %s", krn_strerror(rc));
    if (l->b)
        for (int t = 0; t < n; t++)
            for (int o = 0; o < l->out; o++)
                y[(size_t)t * l->out + o] += l->b[o];
    return 0;
}

static void s_embed(const struct eng_model *m, int32_t id, float *out)
{
    qmat_row(&m->stu->emb, id, out);
}

const struct qmat *eng_student_headmat_(const struct eng_student *s)
{
    return s->tied ? &s->emb : &s->head;
}

static int s_head(struct eng_ctx *c, const float *x, int n, float *logits)
{
    const struct eng_student *s = c->m->stu;
    const struct qmat *h = eng_student_headmat_(s);
    int rc =
        krn_qact_quantize(pick_qa(c, c->m->cfg.hidden), x, (size_t)n, (size_t)c->m->cfg.hidden);
    if (rc != KRN_OK && rc != KRN_ENONFINITE)
        return eng_fail(c->err, ENG_ERANGE, "head activation quantization failed");
    krn_qact *qa = pick_qa(c, c->m->cfg.hidden);
    krn_pool *pool = ((struct stu_ctx *)c->qa)->pool;
    rc = h->q4 ? krn_q4_gemm(h->k4, qa, logits, (size_t)h->m, pool)
               : krn_q8_gemm(h->k8, qa, logits, (size_t)h->m, pool);
    return rc == KRN_OK ? 0 : eng_fail(c->err, ENG_ESHAPE, "head GEMM failed");
}

static int s_head_rows(struct eng_ctx *c, const float *x, const int32_t *rows, int nrows,
                       float *out)
{
    const struct eng_student *s = c->m->stu;
    const struct qmat *h = eng_student_headmat_(s);
    size_t *r = malloc((size_t)(nrows > 0 ? nrows : 1) * sizeof(*r));
    if (!r)
        return eng_fail(c->err, ENG_ENOMEM, "out of memory");
    for (int i = 0; i < nrows; i++)
        r[i] = (size_t)rows[i];
    krn_qact *qa = pick_qa(c, c->m->cfg.hidden);
    int rc = krn_qact_quantize(qa, x, 1, (size_t)c->m->cfg.hidden);
    if (rc == KRN_OK || rc == KRN_ENONFINITE)
        rc = h->q4 ? krn_q4_gemm_rows(h->k4, r, (size_t)nrows, qa, out, (size_t)nrows,
                                      ((struct stu_ctx *)c->qa)->pool)
                   : krn_q8_gemm_rows(h->k8, r, (size_t)nrows, qa, out, (size_t)nrows,
                                      ((struct stu_ctx *)c->qa)->pool);
    free(r);
    return rc == KRN_OK ? 0 : eng_fail(c->err, ENG_ESHAPE, "head row GEMM failed");
}

static int s_ctx_init(struct eng_ctx *c)
{
    const struct eng_config *cf = &c->m->cfg;
    struct stu_ctx *s = calloc(1, sizeof(*s));
    if (!s)
        return ENG_ENOMEM;
    c->qa = s;
    if (krn_qact_create((size_t)c->chunk, (size_t)cf->hidden, &s->qh) ||
        krn_qact_create((size_t)c->chunk, (size_t)cf->heads * cf->head_dim, &s->qq) ||
        krn_qact_create((size_t)c->chunk, (size_t)cf->inter, &s->qi))
        return ENG_ENOMEM;
    if (c->m->stu->nthreads > 1 && krn_pool_create(c->m->stu->nthreads, &s->pool) != KRN_OK)
        return ENG_ENOMEM;
    const char *how = getenv("BITDISTILL_STEP"), *prof = getenv("BITDISTILL_STEP_PROFILE");
    s->ops = how && !strcmp(how, "ops");
    s->all_rows = how && !strcmp(how, "all-rows");
    s->profile = prof && *prof && strcmp(prof, "0");
    return 0;
}

static void s_ctx_release(struct eng_ctx *c)
{
    struct stu_ctx *s = c->qa;
    krn_qact_free(s->qh);
    krn_qact_free(s->qq);
    krn_qact_free(s->qi);
    if (s->profile)
        eng_step_profile_print(s, stderr);
    krn_pool_free(s->pool);
    eng_step_release(s);
    free(s->scores);
    free(s->ctr);
    free(s->kmap);
    free(s);
    c->qa = NULL;
}

static void s_free(struct eng_student *s)
{
    for (size_t i = 0; i < s->ni2; i++)
        krn_i2_free(s->i2[i]);
    free(s->i2);
    qmat_release(&s->emb);
    qmat_release(&s->head);
    eng_gguf_free(s->g);
    free(s);
}

static int s_set_threads(struct eng_model *m, int n)
{
    m->stu->nthreads = n < 1 ? 1 : n; /* for contexts made from now on */
    krn_blas_set_threads(m->stu->nthreads);
    return 0;
}

static const struct eng_student_ops stu_ops = {s_lin,      s_embed,       s_head, s_head_rows,
                                               s_ctx_init, s_ctx_release, s_free, s_set_threads};

enum eng_head_fmt eng_student_head_fmt(const struct eng_model *m)
{
    return m->stu ? m->stu->fmt : ENG_HEAD_Q8;
}

/* ------------------------------------------------------------------------- building */

int eng_student_qmat_kernel_(struct qmat *q, const int8_t *codes, const float *s8,
                             const uint16_t *s16)
{
    return qmat_kernel(q, codes, s8, s16);
}

size_t eng_student_qmat_bytes_(const struct qmat *q)
{
    return qmat_bytes(q);
}

/* A new, empty student model with the kernels' ops (layers zeroed). */
struct eng_model *eng_student_new_(const struct eng_config *cfg, enum eng_head_fmt fmt)
{
    struct eng_model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->ternary = 1;
    m->ops = &stu_ops;
    m->stu = calloc(1, sizeof(*m->stu));
    /* eng_model_own frees the layers itself when it cannot record them. */
    m->layers = m->stu ? eng_model_own(m, calloc((size_t)cfg->layers, sizeof(*m->layers))) : NULL;
    if (!m->layers) {
        free(m->stu);
        free(m);
        return NULL;
    }
    m->stu->fmt = fmt;
    m->stu->tied = cfg->tie;
    m->stu->i2 = calloc((size_t)cfg->layers * 7, sizeof(*m->stu->i2));
    if (!m->stu->i2) {
        eng_model_free(m);
        return NULL;
    }
    return m;
}

/* A copy of n floats owned by the model, counted as resident. */
static const float *own_copy(struct eng_model *m, const float *src, size_t n)
{
    if (!src)
        return NULL;
    float *d = eng_model_own(m, malloc(n * sizeof(float)));
    if (d) {
        memcpy(d, src, n * sizeof(float));
        m->resident += n * sizeof(float);
        m->decode_bytes += n * sizeof(float);
    }
    return d;
}

static void account_lin(struct eng_model *m, const struct eng_lin *l)
{
    m->resident += krn_i2_bytes(l->q);
    m->decode_bytes += krn_i2_bytes(l->q);
}

int eng_student_from_fp(const struct eng_model *fp, enum eng_head_fmt fmt, struct eng_model **out,
                        char *err)
{
    const struct eng_config *c = &fp->cfg;
    int rc = 0;
    static const char *const names[7] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                         "gate_proj", "up_proj", "down_proj"};
    *out = NULL;
    if (fp->ternary)
        return eng_fail(err, ENG_EINVAL, "the model is already a student");
    struct eng_model *m = eng_student_new_(c, fmt);
    if (!m)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    struct eng_student *s = m->stu;
    if ((rc = qmat_from_fp(&s->emb, fp->embed, c->vocab, c->hidden, fmt == ENG_HEAD_Q4))) {
        rc = eng_fail(err, rc, "cannot quantize model.embed_tokens.weight (non-finite values?)");
        goto fail;
    }
    m->resident += qmat_bytes(&s->emb);
    m->decode_bytes += qmat_bytes(&s->emb);
    if (!c->tie) {
        if ((rc = qmat_from_fp(&s->head, fp->head, c->vocab, c->hidden, fmt == ENG_HEAD_Q4))) {
            rc = eng_fail(err, rc, "cannot quantize lm_head.weight (non-finite values?)");
            goto fail;
        }
        m->resident += qmat_bytes(&s->head);
        m->decode_bytes += qmat_bytes(&s->head);
    }
    m->norm = own_copy(m, fp->norm, (size_t)c->hidden);
    for (int i = 0; i < c->layers; i++) {
        const struct eng_layer *F = &fp->layers[i];
        struct eng_layer *L = &m->layers[i];
        int qd = c->heads * c->head_dim;
        L->in_norm = own_copy(m, F->in_norm, (size_t)c->hidden);
        L->post_norm = own_copy(m, F->post_norm, (size_t)c->hidden);
        L->q_norm = own_copy(m, F->q_norm, (size_t)c->head_dim);
        L->k_norm = own_copy(m, F->k_norm, (size_t)c->head_dim);
        L->attn_sub = own_copy(m, F->attn_sub, (size_t)qd);
        L->ffn_sub = own_copy(m, F->ffn_sub, (size_t)c->inter);
        const struct eng_lin *fl[7] = {&F->q, &F->k, &F->v, &F->o, &F->gate, &F->up, &F->down};
        struct eng_lin *sl[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 7; j++) {
            krn_i2 *q = NULL;
            int kr = krn_i2_create(fl[j]->w, (size_t)fl[j]->out, (size_t)fl[j]->in, &q);
            if (q)
                s->i2[s->ni2++] = q;
            if (kr != KRN_OK) {
                rc = eng_fail(err, kr == KRN_ENONFINITE ? ENG_ERANGE : ENG_ENOMEM,
                              "cannot quantize model.layers.%d.%s.weight: %s", i, names[j],
                              krn_strerror(kr));
                goto fail;
            }
            *sl[j] = (struct eng_lin){fl[j]->out, fl[j]->in, NULL, q,
                                      own_copy(m, fl[j]->b, (size_t)fl[j]->out)};
            account_lin(m, sl[j]);
        }
    }
    if (!m->norm) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = s_set_threads(m, 1))) {
        snprintf(err, ENG_ERR_LEN, "%s", m->err);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    eng_model_free(m);
    return rc;
}
