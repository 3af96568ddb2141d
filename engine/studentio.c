/*
 * engine/studentio.c — the GGUF student file: eng_student_save / eng_student_load and the
 * tokenizer and task metadata inside it (layout in student.h).
 *
 * The reader trusts nothing: every hyperparameter is validated like a config.json, every
 * tensor's type and byte size is compared with what the hyperparameters imply, and the packed
 * ternary tensors are used in place from the mapping (the body stays its packed size).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/gguf.h"
#include "engine/model_impl.h"
#include "engine/student.h"
#include "engine/student_impl.h"
#include "kernels/krn.h"
#include "kernels/quant.h"

#define ARCH "qwen3-bitdistill"
#define Q4_BLK ENG_Q4_BLK


static const char *const lin_names[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};

static size_t q4_nb(int k)
{
    return ((size_t)k + Q4_BLK - 1) / Q4_BLK;
}

static size_t round_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

/* Bytes of one I2 matrix of m rows by k (quant.h's padded layout). */
static size_t i2_bytes(int m, int k)
{
    return round_up((size_t)m, KRN_I2_ROWS) * krn_kpad((size_t)k) / 4;
}

/* The ternary body is streamed once per decoded token, so it lives in anonymous memory on
 * transparent huge pages instead of in place in the file mapping: page-cache folios of a file
 * are whatever size they were read or written in (small ones right after `convert` wrote it),
 * and on 4 KiB pages the stream takes a TLB miss every few KiB (two-dimensional page walks in a
 * VM) and loses the hardware prefetchers at every page. 2 MiB-aligned, MADV_HUGEPAGE (advice
 * only). Measured on the 2-vCPU dev VM (docs/performance.md): +13% to +27% decode. */
#define BODY_HUGE ((size_t)2 << 20)

static void *body_alloc(size_t n)
{
    n = round_up(n ? n : 1, BODY_HUGE);
    void *p = aligned_alloc(BODY_HUGE, n);
    if (p)
        (void)madvise(p, n, MADV_HUGEPAGE);
    return p;
}

/* Drop the mapping's pages of a tensor now copied out (the whole pages inside [p, p + n)): the
 * model's resident size counts the body once. A read-only private file mapping refaults the same
 * bytes if they are read again, so this is always safe. */
static void body_release(const void *p, size_t n)
{
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095,
              e = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

void eng_student_meta_release(struct eng_student_meta *m)
{
    if (!m)
        return;
    free(m->template);
    free(m->prompt_format);
    for (int i = 0; i < m->nlabels; i++) {
        free(m->labels ? m->labels[i] : NULL);
        free(m->label_words ? m->label_words[i] : NULL);
    }
    free(m->labels);
    free(m->label_words);
    free(m->teacher_sha256);
    free(m->job_id);
    free(m->eval_json);
    free(m->chat_template);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------------- save */

static int put_f32(struct eng_gguf_writer *w, const char *name, const float *v, uint64_t n)
{
    uint64_t ne[1] = {n};
    return v ? eng_gguf_w_tensor(w, name, ENG_GGML_F32, 1, ne, v, n * 4) : 0;
}

static int put_qmat(struct eng_gguf_writer *w, const char *base, const struct qmat *q)
{
    char name[128];
    uint64_t ne[2], nb = q4_nb(q->k);
    int rc;
    ne[0] = q->q4 ? nb * 16 : (uint64_t)q->k;
    ne[1] = (uint64_t)q->m;
    snprintf(name, sizeof(name), "%s.weight", base);
    if ((rc = eng_gguf_w_tensor(w, name, ENG_GGML_I8, 2, ne, q->codes, ne[0] * ne[1])))
        return rc;
    ne[0] = q->q4 ? nb : 1;
    snprintf(name, sizeof(name), "%s.scale", base);
    if (q->q4) /* fp16 block scales, as the kernels keep them (quant.h "Q4") */
        return eng_gguf_w_tensor(w, name, ENG_GGML_F16, 2, ne, q->scales16, ne[0] * ne[1] * 2);
    return eng_gguf_w_tensor(w, name, ENG_GGML_F32, 1, &ne[1], q->scales, ne[1] * 4);
}

static int put_tokenizer(struct eng_gguf_writer *w, const struct eng_tok *t)
{
    int32_t n = eng_tok_vocab_size(t), nm = eng_tok_merge_count(t);
    const char **toks = malloc((size_t)n * sizeof(*toks)),
               **mer = malloc(((size_t)nm + 1) * sizeof(*mer));
    int32_t *types = malloc((size_t)n * sizeof(*types));
    int rc = ENG_ENOMEM;
    if (!toks || !mer || !types)
        goto out;
    for (int32_t i = 0; i < n; i++) {
        toks[i] = eng_tok_token(t, i);
        types[i] = toks[i] ? 1 : 5; /* normal / unused hole */
    }
    for (int32_t a = 0; a < eng_tok_added_count(t); a++) {
        const struct eng_tok_added *ad = eng_tok_added_at(t, a);
        types[ad->id] = ad->special ? 3 : 4; /* control / user-defined */
        toks[ad->id] = ad->content;
    }
    for (int32_t r = 0; r < nm; r++)
        mer[r] = eng_tok_merge(t, r);
    if ((rc = eng_gguf_w_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (rc = eng_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n)) ||
        (rc = eng_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n)) ||
        (rc = eng_gguf_w_arr_str(w, "tokenizer.ggml.merges", mer, (uint64_t)nm)) ||
        (rc = eng_gguf_w_str(w, "bitdistill.tokenizer.regex", eng_tok_regex(t))) ||
        (rc = eng_gguf_w_bool(w, "bitdistill.tokenizer.nfc", eng_tok_nfc(t))) ||
        (rc = eng_gguf_w_bool(w, "bitdistill.tokenizer.add_prefix_space",
                              eng_tok_add_prefix_space(t))))
        goto out;
out:
    free(toks);
    free(mer);
    free(types);
    return rc;
}

int eng_student_save(const struct eng_model *m, const struct eng_tok *tok,
                     const struct eng_student_meta *meta, const char *path, char *err)
{
    const struct eng_config *c = &m->cfg;
    const struct eng_student *s = m->stu;
    struct eng_gguf_writer *w = NULL;
    float *scales = NULL;
    char name[128];
    int rc;
    if (!m->ternary || !s->emb.codes)
        return eng_fail(err, ENG_EINVAL, "only a student made by eng_student_from_fp can be saved");
    if ((rc = eng_gguf_writer_create(&w)))
        return eng_fail(err, rc, "out of memory");
    scales = calloc((size_t)c->layers * 7, sizeof(float));
    if (!scales) {
        rc = ENG_ENOMEM;
        goto out;
    }
#define TRY(x)                                                                                     \
    if ((rc = (x)))                                                                                \
        goto out;
    TRY(eng_gguf_w_str(w, "general.architecture", ARCH));
    TRY(eng_gguf_w_u32(w, "general.alignment", 32));
    TRY(eng_gguf_w_str(w, "general.name", "bitdistill student"));
    TRY(eng_gguf_w_u64(w, ARCH ".context_length", (uint64_t)c->max_pos));
    TRY(eng_gguf_w_u64(w, ARCH ".embedding_length", (uint64_t)c->hidden));
    TRY(eng_gguf_w_u64(w, ARCH ".feed_forward_length", (uint64_t)c->inter));
    TRY(eng_gguf_w_u64(w, ARCH ".block_count", (uint64_t)c->layers));
    TRY(eng_gguf_w_u64(w, ARCH ".attention.head_count", (uint64_t)c->heads));
    TRY(eng_gguf_w_u64(w, ARCH ".attention.head_count_kv", (uint64_t)c->kv_heads));
    TRY(eng_gguf_w_u64(w, ARCH ".attention.key_length", (uint64_t)c->head_dim));
    TRY(eng_gguf_w_u64(w, ARCH ".vocab_size", (uint64_t)c->vocab));
    TRY(eng_gguf_w_f32(w, ARCH ".rope.freq_base", c->rope_theta));
    TRY(eng_gguf_w_f32(w, ARCH ".attention.layer_norm_rms_epsilon", c->eps));
    TRY(eng_gguf_w_str(w, "bitdistill.base_model_type", c->model_type));
    TRY(eng_gguf_w_bool(w, "bitdistill.tie_word_embeddings", c->tie));
    TRY(eng_gguf_w_bool(w, "bitdistill.qk_norm", c->qk_norm));
    TRY(eng_gguf_w_bool(w, "bitdistill.qkv_bias", c->qkv_bias));
    TRY(eng_gguf_w_bool(w, "bitdistill.subln", m->layers[0].attn_sub != NULL));
    TRY(eng_gguf_w_str(w, "bitdistill.weight_format", "i2"));
    TRY(eng_gguf_w_str(w, "bitdistill.head_format", s->fmt == ENG_HEAD_Q4 ? "q4" : "q8"));
    if (c->bos_id >= 0)
        TRY(eng_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id));
    if (c->eos_id >= 0)
        TRY(eng_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id));
    if (tok)
        TRY(put_tokenizer(w, tok));
    if (meta) {
        if (meta->template)
            TRY(eng_gguf_w_str(w, "bitdistill.task.template", meta->template));
        if (meta->nlabels > 0) {
            TRY(eng_gguf_w_arr_str(w, "bitdistill.task.labels", (const char *const *)meta->labels,
                                   (uint64_t)meta->nlabels));
            TRY(eng_gguf_w_arr_str(w, "bitdistill.task.label_words",
                                   (const char *const *)meta->label_words,
                                   (uint64_t)meta->nlabels));
        }
        if (meta->teacher_sha256)
            TRY(eng_gguf_w_str(w, "bitdistill.provenance.teacher_sha256", meta->teacher_sha256));
        if (meta->job_id)
            TRY(eng_gguf_w_str(w, "bitdistill.provenance.job_id", meta->job_id));
        if (meta->eval_json)
            TRY(eng_gguf_w_str(w, "bitdistill.provenance.eval_metrics", meta->eval_json));
        if (meta->chat_template)
            TRY(eng_gguf_w_str(w, "tokenizer.chat_template", meta->chat_template));
        if (meta->prompt_format)
            TRY(eng_gguf_w_str(w, "bitdistill.task.prompt_format", meta->prompt_format));
    }
    TRY(put_qmat(w, "token_embd", &s->emb));
    if (!c->tie)
        TRY(put_qmat(w, "output", &s->head));
    TRY(put_f32(w, "output_norm.weight", m->norm, (uint64_t)c->hidden));
    for (int i = 0; i < c->layers; i++) {
        const struct eng_layer *L = &m->layers[i];
        const struct eng_lin *ls[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        int qd = c->heads * c->head_dim;
#define NORM(nm, p, n)                                                                             \
    snprintf(name, sizeof(name), "blk.%d." nm ".weight", i);                                       \
    TRY(put_f32(w, name, p, (uint64_t)(n)));
        NORM("attn_norm", L->in_norm, c->hidden)
        NORM("ffn_norm", L->post_norm, c->hidden)
        NORM("attn_q_norm", L->q_norm, c->head_dim)
        NORM("attn_k_norm", L->k_norm, c->head_dim)
        NORM("attn_sub_norm", L->attn_sub, qd)
        NORM("ffn_sub_norm", L->ffn_sub, c->inter)
#undef NORM
        for (int j = 0; j < 7; j++) {
            const krn_i2 *q = ls[j]->q;
            uint64_t ne[1] = {krn_i2_bytes(q)}, one[1] = {1};
            scales[i * 7 + j] = krn_i2_scale(q);
            snprintf(name, sizeof(name), "blk.%d.%s.weight", i, lin_names[j]);
            TRY(eng_gguf_w_tensor(w, name, ENG_GGML_I8, 1, ne, krn_i2_data(q), ne[0]));
            snprintf(name, sizeof(name), "blk.%d.%s.scale", i, lin_names[j]);
            TRY(eng_gguf_w_tensor(w, name, ENG_GGML_F32, 1, one, &scales[i * 7 + j], 4));
            snprintf(name, sizeof(name), "blk.%d.%s.bias", i, lin_names[j]);
            TRY(put_f32(w, name, ls[j]->b, (uint64_t)ls[j]->out));
        }
    }
#undef TRY
    rc = eng_gguf_writer_write(w, path, err);
    free(scales);
    eng_gguf_writer_free(w);
    return rc;
out:
    free(scales);
    eng_gguf_writer_free(w);
    return eng_fail(err, rc, "cannot build the student file '%s': %s", path, eng_strerror(rc));
}

/* ------------------------------------------------------------------------------- load */

/* The tensor `name` with ggml type and exact byte size, or an error naming it. */
static int want(const struct eng_gguf *g, const char *path, const char *name, uint32_t type,
                uint64_t nbytes, int optional, const void **data, char *err)
{
    const struct eng_gguf_tensor *t = eng_gguf_tensor(g, name);
    *data = NULL;
    if (!t)
        return optional ? 0
                        : eng_fail(err, ENG_EMISSING, "'%s': tensor '%s' is missing", path, name);
    if (t->type != type || t->nbytes != nbytes)
        return eng_fail(err, ENG_ESHAPE,
                        "'%s': tensor '%s' has type %u and %llu bytes, the "
                        "hyperparameters imply type %u and %llu bytes",
                        path, name, t->type, (unsigned long long)t->nbytes, type,
                        (unsigned long long)nbytes);
    *data = t->data;
    return 0;
}

static int get_int(const struct eng_gguf *g, const char *key, int *v, char *err)
{
    uint64_t u;
    int rc = eng_gguf_get_u64(g, key, &u, err);
    if (rc)
        return rc;
    if (u == 0 || u > (1u << 30))
        return eng_fail(err, ENG_ECONFIG, "GGUF key '%s' = %llu is out of range", key,
                        (unsigned long long)u);
    *v = (int)u;
    return 0;
}

static int read_config(const struct eng_gguf *g, const char *path, struct eng_config *c,
                       enum eng_head_fmt *fmt, int *subln, char *err)
{
    char *s = NULL;
    int rc;
    memset(c, 0, sizeof(*c));
    if ((rc = eng_gguf_get_str(g, "general.architecture", &s, err)))
        return rc;
    if (strcmp(s, ARCH)) {
        rc = eng_fail(err, ENG_EUNSUPPORTED, "'%s': general.architecture is '%s', not '" ARCH "'",
                      path, s);
        free(s);
        return rc;
    }
    free(s);
    if ((rc = get_int(g, ARCH ".context_length", &c->max_pos, err)) ||
        (rc = get_int(g, ARCH ".embedding_length", &c->hidden, err)) ||
        (rc = get_int(g, ARCH ".feed_forward_length", &c->inter, err)) ||
        (rc = get_int(g, ARCH ".block_count", &c->layers, err)) ||
        (rc = get_int(g, ARCH ".attention.head_count", &c->heads, err)) ||
        (rc = get_int(g, ARCH ".attention.head_count_kv", &c->kv_heads, err)) ||
        (rc = get_int(g, ARCH ".attention.key_length", &c->head_dim, err)) ||
        (rc = get_int(g, ARCH ".vocab_size", &c->vocab, err)) ||
        (rc = eng_gguf_get_f32(g, ARCH ".rope.freq_base", &c->rope_theta, err)) ||
        (rc = eng_gguf_get_f32(g, ARCH ".attention.layer_norm_rms_epsilon", &c->eps, err)) ||
        (rc = eng_gguf_get_bool(g, "bitdistill.tie_word_embeddings", &c->tie, err)) ||
        (rc = eng_gguf_get_bool(g, "bitdistill.qk_norm", &c->qk_norm, err)) ||
        (rc = eng_gguf_get_bool(g, "bitdistill.qkv_bias", &c->qkv_bias, err)) ||
        (rc = eng_gguf_get_bool(g, "bitdistill.subln", subln, err)) ||
        (rc = eng_gguf_get_str(g, "bitdistill.base_model_type", &s, err)))
        return rc;
    snprintf(c->model_type, sizeof(c->model_type), "%s", s);
    c->arch = !strcmp(s, "qwen3")   ? ENG_ARCH_QWEN3
              : !strcmp(s, "qwen2") ? ENG_ARCH_QWEN2
                                    : ENG_ARCH_LLAMA;
    int known = !strcmp(s, "qwen3") || !strcmp(s, "qwen2") || !strcmp(s, "llama");
    free(s);
    if (!known)
        return eng_fail(err, ENG_EUNSUPPORTED,
                        "'%s': bitdistill.base_model_type '%s' is not "
                        "supported",
                        path, c->model_type);
    if (c->heads % c->kv_heads || c->head_dim % 2 || !(c->eps > 0) || !(c->rope_theta > 0))
        return eng_fail(err, ENG_ECONFIG,
                        "'%s': inconsistent hyperparameters (heads %d, kv %d, "
                        "head_dim %d)",
                        path, c->heads, c->kv_heads, c->head_dim);
    /* Each block holds 7 ternary matrices of two tensors each: a block count the tensor table
     * cannot hold is refused before anything is sized by it. */
    if ((uint64_t)c->layers * 14 > eng_gguf_tensor_count(g))
        return eng_fail(err, ENG_ECONFIG,
                        "'%s': block_count %d needs at least %llu tensors, the "
                        "file holds %zu",
                        path, c->layers, (unsigned long long)c->layers * 14,
                        eng_gguf_tensor_count(g));
    if ((rc = eng_gguf_get_str(g, "bitdistill.head_format", &s, err)))
        return rc;
    *fmt = !strcmp(s, "q4") ? ENG_HEAD_Q4 : ENG_HEAD_Q8;
    known = !strcmp(s, "q4") || !strcmp(s, "q8");
    free(s);
    if (!known)
        return eng_fail(err, ENG_EUNSUPPORTED, "'%s': bitdistill.head_format must be q8 or q4",
                        path);
    uint64_t u;
    c->bos_id =
        eng_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &u, NULL) == 0 && u < (uint64_t)c->vocab
            ? (int)u
            : -1;
    c->eos_id =
        eng_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &u, NULL) == 0 && u < (uint64_t)c->vocab
            ? (int)u
            : -1;
    return 0;
}

/* The 4-bit matrix's `name` (.scale) tensor as fp16 [n]: F16 is used as stored (*s16 points
 * into the mapping); F32, as files written before the scales became fp16 hold, is rounded to
 * fp16 here (krn_f32_to_f16, nearest even) into *own (malloc'd, the caller frees), so such a
 * file serves with the rounded scales, as if it had been written now (its codes were computed
 * from the unrounded scale, which differs from the rounded one by at most 2^-11 relative). Any
 * other type or size, or a scale that is NaN, Inf, negative or beyond the fp16 range, is
 * refused with a message naming the tensor. */
static int load_q4_scales(const struct eng_gguf *g, const char *path, const char *name, uint64_t n,
                          const uint16_t **s16, uint16_t **own, char *err)
{
    const struct eng_gguf_tensor *t = eng_gguf_tensor(g, name);
    *s16 = NULL;
    *own = NULL;
    if (!t)
        return eng_fail(err, ENG_EMISSING, "'%s': tensor '%s' is missing", path, name);
    int f16 = t->type == ENG_GGML_F16 && t->nbytes == n * 2;
    if (!f16 && !(t->type == ENG_GGML_F32 && t->nbytes == n * 4))
        return eng_fail(err, ENG_ESHAPE,
                        "'%s': tensor '%s' has type %u and %llu bytes, the "
                        "4-bit scales need F16 (type %u) with %llu bytes, or F32 (type %u, "
                        "older files) with %llu bytes",
                        path, name, t->type, (unsigned long long)t->nbytes, ENG_GGML_F16,
                        (unsigned long long)(n * 2), ENG_GGML_F32, (unsigned long long)(n * 4));
    if (f16) {
        *s16 = t->data;
    } else {
        if (!(*own = malloc(n * sizeof(uint16_t))))
            return eng_fail(err, ENG_ENOMEM, "out of memory");
        const unsigned char *p = t->data;
        for (uint64_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            (*own)[i] = krn_f32_to_f16(v);
        }
        *s16 = *own;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, (const unsigned char *)*s16 + 2 * i, 2);
        float v = krn_f16_to_f32(h);
        if (!(v >= 0) || isinf(v)) {
            free(*own);
            *own = NULL;
            *s16 = NULL;
            return eng_fail(err, ENG_EFORMAT,
                            "'%s': tensor '%s' holds an invalid scale at %llu "
                            "(%g: not a finite, non-negative fp16 number)",
                            path, name, (unsigned long long)i, (double)v);
        }
    }
    return 0;
}

static int load_qmat(const struct eng_gguf *g, const char *path, const char *base, int m, int k,
                     int q4, struct qmat *q, char *err)
{
    char name[128];
    const void *codes, *scales = NULL;
    const uint16_t *s16 = NULL;
    uint16_t *own = NULL;
    uint64_t nb = q4_nb(k);
    int rc;
    q->m = m;
    q->k = k;
    q->q4 = q4;
    snprintf(name, sizeof(name), "%s.weight", base);
    if ((rc = want(g, path, name, ENG_GGML_I8, (uint64_t)m * (q4 ? nb * 16 : (uint64_t)k), 0,
                   &codes, err)))
        return rc;
    if (q4) { /* every code must be 1..15 (stored w4 + 8) */
        const uint8_t *p = codes;
        for (uint64_t i = 0; i < (uint64_t)m * nb * 16; i++)
            if ((p[i] & 15) == 0 || (p[i] >> 4) == 0)
                return eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s' holds an invalid 4-bit code",
                                path, name);
    }
    snprintf(name, sizeof(name), "%s.scale", base);
    rc = q4 ? load_q4_scales(g, path, name, (uint64_t)m * nb, &s16, &own, err)
            : want(g, path, name, ENG_GGML_F32, (uint64_t)m * 4, 0, &scales, err);
    if (rc)
        return rc;
    rc = eng_student_qmat_kernel_(q, codes, scales, s16);
    free(own);
    if (!rc) /* repacked: the mapping's copy is not read again */
        body_release(codes, (size_t)m * (q4 ? nb * 16 : (size_t)k));
    return rc ? eng_fail(err, rc, "'%s': cannot build the %s matrix", path, base) : 0;
}

static int load_tokenizer(const struct eng_gguf *g, const char *path, struct eng_tok **out,
                          char *err)
{
    const struct eng_gguf_kv *kt = eng_gguf_kv(g, "tokenizer.ggml.tokens"),
                             *ky = eng_gguf_kv(g, "tokenizer.ggml.token_type"),
                             *km = eng_gguf_kv(g, "tokenizer.ggml.merges");
    struct eng_tok_spec sp = {0};
    char **toks = NULL, **mer = NULL, *regex = NULL;
    struct eng_tok_added *added = NULL;
    uint64_t n, nm = 0;
    int rc = 0;
    *out = NULL;
    if (!kt)
        return 0;
    if (kt->type != ENG_GGUF_ARRAY || kt->atype != ENG_GGUF_STRING || !ky ||
        ky->type != ENG_GGUF_ARRAY || ky->atype != ENG_GGUF_I32 || ky->count != kt->count ||
        (km && (km->type != ENG_GGUF_ARRAY || km->atype != ENG_GGUF_STRING)) || kt->count == 0 ||
        kt->count > (1u << 24))
        return eng_fail(err, ENG_ETOKENIZER,
                        "'%s': tokenizer.ggml.tokens/token_type/merges are "
                        "missing or of the wrong type",
                        path);
    n = kt->count;
    nm = km ? km->count : 0;
    toks = calloc(n, sizeof(*toks));
    mer = calloc(nm + 1, sizeof(*mer));
    added = calloc(n, sizeof(*added));
    if (!toks || !mer || !added) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    const unsigned char *p = kt->val;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l;
        int32_t ty;
        memcpy(&l, p, 8);
        memcpy(&ty, ky->val + 4 * i, 4);
        if (ty != 5 && !(toks[i] = strndup((const char *)p + 8, l))) {
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto out;
        }
        if (ty == 3 || ty == 4)
            added[sp.n_added++] = (struct eng_tok_added){toks[i], (int32_t)i, ty == 3};
        p += 8 + l;
    }
    if (km) {
        p = km->val;
        for (uint64_t i = 0; i < nm; i++) {
            uint64_t l;
            memcpy(&l, p, 8);
            if (!(mer[i] = strndup((const char *)p + 8, l))) {
                rc = eng_fail(err, ENG_ENOMEM, "out of memory");
                goto out;
            }
            p += 8 + l;
        }
    }
    if ((rc = eng_gguf_get_str(g, "bitdistill.tokenizer.regex", &regex, err)) ||
        (rc = eng_gguf_get_bool(g, "bitdistill.tokenizer.nfc", &sp.nfc, err)) ||
        (rc = eng_gguf_get_bool(g, "bitdistill.tokenizer.add_prefix_space", &sp.add_prefix_space,
                                err)))
        goto out;
    sp.vocab = (const char *const *)toks;
    sp.n_vocab = (int32_t)n;
    sp.merges = (const char *const *)mer;
    sp.n_merges = (int32_t)nm;
    sp.added = added;
    sp.regex = regex;
    rc = eng_tok_create(&sp, out, err);
out:
    for (uint64_t i = 0; toks && i < n; i++)
        free(toks[i]);
    for (uint64_t i = 0; mer && i < nm; i++)
        free(mer[i]);
    free(toks);
    free(mer);
    free(added);
    free(regex);
    return rc;
}

static int load_meta(const struct eng_gguf *g, const char *path, struct eng_student_meta *m,
                     char *err)
{
    memset(m, 0, sizeof(*m));
    eng_gguf_get_str(g, "bitdistill.task.template", &m->template, NULL);
    eng_gguf_get_str(g, "bitdistill.provenance.teacher_sha256", &m->teacher_sha256, NULL);
    eng_gguf_get_str(g, "bitdistill.provenance.job_id", &m->job_id, NULL);
    eng_gguf_get_str(g, "bitdistill.provenance.eval_metrics", &m->eval_json, NULL);
    eng_gguf_get_str(g, "tokenizer.chat_template", &m->chat_template, NULL);
    eng_gguf_get_str(g, "bitdistill.task.prompt_format", &m->prompt_format, NULL);
    if (m->prompt_format && (strcmp(m->prompt_format, "chat_template") || !m->chat_template))
        return eng_fail(err, ENG_EFORMAT, "'%s': bitdistill.task.prompt_format \"%s\" %s", path,
                        m->prompt_format,
                        strcmp(m->prompt_format, "chat_template")
                            ? "is not \"chat_template\""
                            : "without a tokenizer.chat_template");
    const struct eng_gguf_kv *kl = eng_gguf_kv(g, "bitdistill.task.labels"),
                             *kw = eng_gguf_kv(g, "bitdistill.task.label_words");
    if (!kl && !kw)
        return 0;
    if (!kl || !kw || kl->count != kw->count || kl->count > 4096 || kl->atype != ENG_GGUF_STRING ||
        kw->atype != ENG_GGUF_STRING)
        return eng_fail(err, ENG_EFORMAT,
                        "'%s': bitdistill.task.labels and label_words must be "
                        "string arrays of the same length",
                        path);
    m->nlabels = (int)kl->count;
    m->labels = calloc(kl->count + 1, sizeof(char *));
    m->label_words = calloc(kl->count + 1, sizeof(char *));
    if (!m->labels || !m->label_words)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < kl->count; i++) {
        struct eng_gguf_str a, b;
        eng_gguf_arr_str(kl, i, &a);
        eng_gguf_arr_str(kw, i, &b);
        m->labels[i] = strndup(a.p, a.n);
        m->label_words[i] = strndup(b.p, b.n);
        if (!m->labels[i] || !m->label_words[i])
            return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    return 0;
}

int eng_student_load(const char *path, struct eng_model **out, struct eng_tok **tok,
                     struct eng_student_meta *meta, char *err)
{
    struct eng_gguf *g = NULL;
    struct eng_model *m = NULL;
    struct eng_config c;
    enum eng_head_fmt fmt;
    int subln, rc;
    char name[128];
    const void *d;
    *out = NULL;
    if (tok)
        *tok = NULL;
    if (meta)
        memset(meta, 0, sizeof(*meta));
    if ((rc = eng_gguf_open(path, &g, err)) || (rc = read_config(g, path, &c, &fmt, &subln, err)))
        goto fail;
    m = eng_student_new_(&c, fmt);
    if (!m) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    struct eng_student *s = m->stu;
    s->g = g;
    g = NULL;
    if ((rc = load_qmat(s->g, path, "token_embd", c.vocab, c.hidden, fmt == ENG_HEAD_Q4, &s->emb,
                        err)) ||
        (!c.tie && (rc = load_qmat(s->g, path, "output", c.vocab, c.hidden, fmt == ENG_HEAD_Q4,
                                   &s->head, err))))
        goto fail;
    m->resident +=
        eng_student_qmat_bytes_(&s->emb) + (c.tie ? 0 : eng_student_qmat_bytes_(&s->head));
    m->decode_bytes += m->resident;
    if ((rc = want(s->g, path, "output_norm.weight", ENG_GGML_F32, (uint64_t)c.hidden * 4, 0, &d,
                   err)))
        goto fail;
    m->norm = d;
    m->resident += (size_t)c.hidden * 4;
    int qd = c.heads * c.head_dim, kd = c.kv_heads * c.head_dim;
    /* the ternary body, copied out of the mapping into one huge-page buffer (body_alloc) */
    const int outs[7] = {qd, kd, kd, c.hidden, c.inter, c.inter, c.hidden};
    const int ins[7] = {c.hidden, c.hidden, c.hidden, qd, c.hidden, c.hidden, c.inter};
    size_t body_n = 0, body_at = 0;
    for (int j = 0; j < 7; j++)
        body_n += (size_t)c.layers * i2_bytes(outs[j], ins[j]);
    uint8_t *body = eng_model_own(m, body_alloc(body_n));
    if (!body) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory (%zu bytes of ternary weights)", body_n);
        goto fail;
    }
    for (int i = 0; i < c.layers; i++) {
        struct eng_layer *L = &m->layers[i];
#define NORM(field, nm, n, opt)                                                                    \
    snprintf(name, sizeof(name), "blk.%d." nm ".weight", i);                                       \
    if ((rc = want(s->g, path, name, ENG_GGML_F32, (uint64_t)(n)*4, opt, &d, err)))                \
        goto fail;                                                                                 \
    L->field = d;                                                                                  \
    m->resident += d ? (size_t)(n)*4 : 0;
        NORM(in_norm, "attn_norm", c.hidden, 0)
        NORM(post_norm, "ffn_norm", c.hidden, 0)
        NORM(q_norm, "attn_q_norm", c.head_dim, !c.qk_norm)
        NORM(k_norm, "attn_k_norm", c.head_dim, !c.qk_norm)
        NORM(attn_sub, "attn_sub_norm", qd, !subln)
        NORM(ffn_sub, "ffn_sub_norm", c.inter, !subln)
#undef NORM
        struct eng_lin *ls[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 7; j++) {
            const void *sc, *b = NULL;
            float scale;
            size_t nb = i2_bytes(outs[j], ins[j]);
            snprintf(name, sizeof(name), "blk.%d.%s.weight", i, lin_names[j]);
            if ((rc = want(s->g, path, name, ENG_GGML_I8, nb, 0, &d, err)))
                goto fail;
            snprintf(name, sizeof(name), "blk.%d.%s.scale", i, lin_names[j]);
            if ((rc = want(s->g, path, name, ENG_GGML_F32, 4, 0, &sc, err)))
                goto fail;
            memcpy(&scale, sc, 4);
            if (!(scale >= 0) || scale > 1e30f) {
                rc = eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s' holds an invalid scale", path,
                              name);
                goto fail;
            }
            snprintf(name, sizeof(name), "blk.%d.%s.bias", i, lin_names[j]);
            if ((rc = want(s->g, path, name, ENG_GGML_F32, (uint64_t)outs[j] * 4,
                           !(c.qkv_bias && j < 3), &b, err)))
                goto fail;
            krn_i2 *q = NULL;
            memcpy(body + body_at, d, nb);
            body_release(d, nb);
            int kr =
                krn_i2_create_packed(body + body_at, (size_t)outs[j], (size_t)ins[j], scale, &q);
            body_at += nb;
            if (kr != KRN_OK) {
                rc = eng_fail(err, ENG_EFORMAT, "'%s': blk.%d.%s: %s", path, i, lin_names[j],
                              krn_strerror(kr));
                goto fail;
            }
            s->i2[s->ni2++] = q;
            *ls[j] = (struct eng_lin){outs[j], ins[j], NULL, q, b};
            m->resident += nb + (b ? (size_t)outs[j] * 4 : 0);
            m->decode_bytes += nb;
        }
    }
    if (tok && (rc = load_tokenizer(s->g, path, tok, err)))
        goto fail;
    if (meta && (rc = load_meta(s->g, path, meta, err)))
        goto fail;
    if ((rc = m->ops->set_threads(m, 1))) {
        snprintf(err, ENG_ERR_LEN, "%s", m->err);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    if (tok) {
        eng_tok_free(*tok);
        *tok = NULL;
    }
    if (meta)
        eng_student_meta_release(meta);
    eng_model_free(m);
    eng_gguf_free(g);
    return rc;
}
