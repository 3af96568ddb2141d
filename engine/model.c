/*
 * engine/model.c — loading a Hugging Face checkpoint into an eng_model (FP path).
 *
 * Every tensor named by the architecture is looked up, its dtype checked (F32/BF16/F16) and its
 * shape compared with what config.json implies before any byte is read; errors name the
 * tensor. fp32 tensors are used in place from the mapping (4-byte aligned in files written by
 * safetensors, checked here); others are converted to fp32 copies owned by the model.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model_impl.h"

void *eng_model_own(struct eng_model *m, void *p)
{
    if (!p)
        return NULL;
    if (m->nowned == m->capowned) {
        size_t nc = m->capowned ? 2 * m->capowned : 64;
        void **a = realloc(m->owned, nc * sizeof(*a));
        if (!a) {
            free(p);
            return NULL;
        }
        m->owned = a;
        m->capowned = nc;
    }
    m->owned[m->nowned++] = p;
    return p;
}

/* fp32 view of tensor `name` with shape [d0] (d1 == 0) or [d0][d1]. optional: NULL if absent. */
static int get_w(struct eng_model *m, const char *name, int64_t d0, int64_t d1, int optional,
                 const float **out, char *err)
{
    const struct eng_st_tensor *t = eng_st_find(m->st, name);
    *out = NULL;
    if (!t)
        return optional ? 0
                        : eng_fail(err, ENG_EMISSING,
                                   "tensor '%s' is missing from the "
                                   "checkpoint",
                                   name);
    int nd = d1 ? 2 : 1;
    if (t->dtype != ENG_DT_F32 && t->dtype != ENG_DT_BF16 && t->dtype != ENG_DT_F16)
        return eng_fail(err, ENG_ESHAPE,
                        "tensor '%s' in '%s' has dtype %s (need F32, BF16 or "
                        "F16)",
                        name, t->file, eng_dtype_name(t->dtype));
    if (t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char got[128] = "";
        size_t o = 0;
        for (int i = 0; i < t->ndim && o < sizeof(got) - 24; i++)
            o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        if (nd == 2)
            return eng_fail(err, ENG_ESHAPE,
                            "tensor '%s' has shape [%s], config.json implies "
                            "[%lld, %lld]",
                            name, got, (long long)d0, (long long)d1);
        return eng_fail(err, ENG_ESHAPE,
                        "tensor '%s' has shape [%s], config.json implies "
                        "[%lld]",
                        name, got, (long long)d0);
    }
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    if (t->dtype == ENG_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
    } else {
        float *f = eng_model_own(m, malloc(n * sizeof(float)));
        if (!f)
            return eng_fail(err, ENG_ENOMEM, "out of memory converting '%s'", name);
        eng_to_f32(t->dtype, t->data, f, n);
        *out = f;
    }
    m->resident += n * sizeof(float);
    return 0;
}

static int get_lin(struct eng_model *m, const char *pfx, const char *nm, int out, int in, int bias,
                   struct eng_lin *l, char *err)
{
    char name[256];
    int rc;
    l->out = out;
    l->in = in;
    snprintf(name, sizeof(name), "%s%s.weight", pfx, nm);
    if ((rc = get_w(m, name, out, in, 0, &l->w, err)))
        return rc;
    m->decode_bytes += (size_t)out * in * sizeof(float);
    snprintf(name, sizeof(name), "%s%s.bias", pfx, nm);
    return get_w(m, name, out, 0, !bias, &l->b, err);
}

static int load_layers(struct eng_model *m, char *err)
{
    const struct eng_config *c = &m->cfg;
    int qd = c->heads * c->head_dim, kd = c->kv_heads * c->head_dim, rc = 0;
    char p[128], name[256];
    for (int i = 0; i < c->layers; i++) {
        struct eng_layer *L = &m->layers[i];
        snprintf(p, sizeof(p), "model.layers.%d.", i);
#define W1(field, nm, d, opt)                                                                      \
    snprintf(name, sizeof(name), "%s%s", p, nm);                                                   \
    if ((rc = get_w(m, name, d, 0, opt, &L->field, err)))                                          \
        return rc;
        W1(in_norm, "input_layernorm.weight", c->hidden, 0)
        W1(post_norm, "post_attention_layernorm.weight", c->hidden, 0)
        W1(q_norm, "self_attn.q_norm.weight", c->head_dim, !c->qk_norm)
        W1(k_norm, "self_attn.k_norm.weight", c->head_dim, !c->qk_norm)
        W1(attn_sub, "self_attn.attn_sub_norm.weight", qd, 1)
        W1(ffn_sub, "mlp.ffn_sub_norm.weight", c->inter, 1)
#undef W1
        if (!c->qk_norm && (eng_st_find(m->st, "model.layers.0.self_attn.q_norm.weight")))
            return eng_fail(err, ENG_ECONFIG,
                            "checkpoint has q_norm tensors but model_type "
                            "'%s' has no QK-norm",
                            c->model_type);
        if (!L->attn_sub != !L->ffn_sub || (i > 0 && !L->attn_sub != !m->layers[0].attn_sub))
            return eng_fail(err, ENG_EMISSING,
                            "layer %d: SubLN tensors must be present for "
                            "both attention and MLP in every layer or in none",
                            i);
        snprintf(name, sizeof(name), "%sself_attn.", p);
        if ((rc = get_lin(m, name, "q_proj", qd, c->hidden, c->qkv_bias, &L->q, err)) ||
            (rc = get_lin(m, name, "k_proj", kd, c->hidden, c->qkv_bias, &L->k, err)) ||
            (rc = get_lin(m, name, "v_proj", kd, c->hidden, c->qkv_bias, &L->v, err)) ||
            (rc = get_lin(m, name, "o_proj", c->hidden, qd, 0, &L->o, err)))
            return rc;
        snprintf(name, sizeof(name), "%smlp.", p);
        if ((rc = get_lin(m, name, "gate_proj", c->inter, c->hidden, 0, &L->gate, err)) ||
            (rc = get_lin(m, name, "up_proj", c->inter, c->hidden, 0, &L->up, err)) ||
            (rc = get_lin(m, name, "down_proj", c->hidden, c->inter, 0, &L->down, err)))
            return rc;
    }
    return 0;
}

/* The weights of m->cfg looked up in m->st; on failure m is freed. */
static int build(struct eng_model *m, struct eng_model **out, char *err)
{
    const struct eng_config *c = &m->cfg;
    int rc;
    m->layers = eng_model_own(m, calloc((size_t)c->layers, sizeof(*m->layers)));
    if (!m->layers) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = get_w(m, "model.embed_tokens.weight", c->vocab, c->hidden, 0, &m->embed, err)) ||
        (rc = get_w(m, "model.norm.weight", c->hidden, 0, 0, &m->norm, err)))
        goto fail;
    if (c->tie) {
        m->head = m->embed;
    } else if ((rc = get_w(m, "lm_head.weight", c->vocab, c->hidden, 0, &m->head, err))) {
        goto fail;
    }
    m->decode_bytes += (size_t)c->vocab * c->hidden * sizeof(float) + (size_t)c->hidden * 4;
    if ((rc = load_layers(m, err)))
        goto fail;
    *out = m;
    return 0;
fail:
    eng_model_free(m);
    return rc;
}

int eng_model_load_hf(const char *dir, struct eng_model **out, char *err)
{
    int rc;
    struct eng_model *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if ((rc = eng_config_load(dir, &m->cfg, err)) || (rc = eng_st_open(dir, &m->st, err))) {
        eng_model_free(m);
        return rc;
    }
    return build(m, out, err);
}

int eng_model_from_mem(const struct eng_config *cfg, const struct eng_st_wtensor *ts, size_t n,
                       struct eng_model **out, char *err)
{
    int rc;
    struct eng_model *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    m->cfg = *cfg;
    if ((rc = eng_st_from_mem(ts, n, &m->st, err))) {
        eng_model_free(m);
        return rc;
    }
    return build(m, out, err);
}

void eng_model_free(struct eng_model *m)
{
    if (!m)
        return;
    if (m->stu)
        m->ops->free(m->stu);
    for (size_t i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    eng_st_free(m->st);
    free(m);
}

const struct eng_config *eng_model_config(const struct eng_model *m)
{
    return &m->cfg;
}

int eng_model_is_ternary(const struct eng_model *m)
{
    return m->ternary;
}

size_t eng_model_resident_bytes(const struct eng_model *m)
{
    return m->resident;
}

size_t eng_model_decode_bytes(const struct eng_model *m)
{
    return m->decode_bytes;
}

const char *eng_model_errmsg(const struct eng_model *m)
{
    return m->err;
}
