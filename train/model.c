/*
 * train/model.c — the trainable decoder (see model.h): parameter layout, loading and saving
 * Hugging Face checkpoints, activation planning, and the network's forward and backward passes
 * composed from ops.c.
 *
 * Layer forward (N = B*T rows, H hidden, QD = heads*hd, KD = kv_heads*hd, I inter):
 *   xn1 = rmsnorm(x)            xq1 = aq(xn1)            q,k,v = xq1 . Wq(q,k,v)^T
 *   qn,kn = qk_norm(q,k)        qr,kr = rope(qn,kn)      a = attention(qr, kr, v)
 *   an = subln(a)               xq2 = aq(an)             xm = x + xq2 . Wq(o)^T
 *   xn2 = rmsnorm(xm)           xq3 = aq(xn2)            g,u = xq3 . Wq(gate,up)^T
 *   h = silu(g)*u               hn = subln(h)            xq4 = aq(hn)
 *   x' = xm + xq4 . Wq(down)^T
 * where aq / Wq are the identity when quant is off. The relation states are qn, kn and v.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/err.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "train/arena.h"
#include "train/model.h"
#include "train/ops.h"

/* Pointers of one layer's parameters (or gradients) into a flat vector. */
struct lptr {
    float *in_norm, *q, *k, *v, *q_norm, *k_norm, *o, *attn_sub, *post_norm, *gate, *up, *down,
        *ffn_sub;
};

struct trn_model {
    struct eng_config cfg;
    int subln, quant;
    struct trn_tensor *tens;
    int ntens;
    size_t np;
    float *params, *grads;
    float *wq; /* quantized copies of the projections [np] (same offsets) */
    /* planned activations */
    int B, T;
    float *arena;          /* every activation and scratch buffer below */
    size_t arena_n, tok_n; /* capacities (floats, tokens) */
    int32_t *tok;          /* [N] copy of the last batch */
    struct trn_arena ar;   /* the activations and scratch (arena.h), over arena */
    char err[ENG_ERR_LEN];
};

static int add_tensor(struct trn_model *m, int cap, const char *name, int64_t r, int64_t c,
                      int ndim)
{
    if (m->ntens >= cap)
        return -1;
    struct trn_tensor *t = &m->tens[m->ntens++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    t->shape[0] = r;
    t->shape[1] = ndim == 2 ? c : 1;
    t->n = (size_t)r * (ndim == 2 ? (size_t)c : 1);
    t->off = m->np;
    t->decay = ndim == 2;
    m->np += t->n;
    return 0;
}

/* Build the tensor table for cfg (+SubLN); m->np is the total. */
static int layout(struct trn_model *m)
{
    const struct eng_config *c = &m->cfg;
    int cap = 4 + 14 * c->layers, qd = c->heads * c->head_dim, kd = c->kv_heads * c->head_dim;
    char nm[96];
    free(m->tens);
    m->tens = calloc((size_t)cap, sizeof(*m->tens));
    if (!m->tens)
        return ENG_ENOMEM;
    m->ntens = 0;
    m->np = 0;
    add_tensor(m, cap, "model.embed_tokens.weight", c->vocab, c->hidden, 2);
    for (int l = 0; l < c->layers; l++) {
#define T2(s, r, cc)                                                                               \
    (snprintf(nm, sizeof(nm), "model.layers.%d.%s", l, s), add_tensor(m, cap, nm, r, cc, 2))
#define T1(s, r)                                                                                   \
    (snprintf(nm, sizeof(nm), "model.layers.%d.%s", l, s), add_tensor(m, cap, nm, r, 1, 1))
        T1("input_layernorm.weight", c->hidden);
        T2("self_attn.q_proj.weight", qd, c->hidden);
        T2("self_attn.k_proj.weight", kd, c->hidden);
        T2("self_attn.v_proj.weight", kd, c->hidden);
        if (c->qk_norm) {
            T1("self_attn.q_norm.weight", c->head_dim);
            T1("self_attn.k_norm.weight", c->head_dim);
        }
        T2("self_attn.o_proj.weight", c->hidden, qd);
        if (m->subln)
            T1("self_attn.attn_sub_norm.weight", qd);
        T1("post_attention_layernorm.weight", c->hidden);
        T2("mlp.gate_proj.weight", c->inter, c->hidden);
        T2("mlp.up_proj.weight", c->inter, c->hidden);
        T2("mlp.down_proj.weight", c->hidden, c->inter);
        if (m->subln)
            T1("mlp.ffn_sub_norm.weight", c->inter);
#undef T1
#undef T2
    }
    add_tensor(m, cap, "model.norm.weight", c->hidden, 1, 1);
    if (!c->tie)
        add_tensor(m, cap, "lm_head.weight", c->vocab, c->hidden, 2);
    return 0;
}

const struct trn_tensor *trn_model_find(const struct trn_model *m, const char *name)
{
    for (int i = 0; i < m->ntens; i++)
        if (!strcmp(m->tens[i].name, name))
            return &m->tens[i];
    return NULL;
}

/* Pointer of tensor `name` of layer l in base (NULL when absent). */
static float *lp(const struct trn_model *m, float *base, int l, const char *s)
{
    char nm[96];
    if (l >= 0)
        snprintf(nm, sizeof(nm), "model.layers.%d.%s", l, s);
    else
        snprintf(nm, sizeof(nm), "%s", s);
    const struct trn_tensor *t = trn_model_find(m, nm);
    return t ? base + t->off : NULL;
}

static struct lptr layer_ptrs(const struct trn_model *m, float *base, int l)
{
    struct lptr p = {
        lp(m, base, l, "input_layernorm.weight"),
        lp(m, base, l, "self_attn.q_proj.weight"),
        lp(m, base, l, "self_attn.k_proj.weight"),
        lp(m, base, l, "self_attn.v_proj.weight"),
        lp(m, base, l, "self_attn.q_norm.weight"),
        lp(m, base, l, "self_attn.k_norm.weight"),
        lp(m, base, l, "self_attn.o_proj.weight"),
        lp(m, base, l, "self_attn.attn_sub_norm.weight"),
        lp(m, base, l, "post_attention_layernorm.weight"),
        lp(m, base, l, "mlp.gate_proj.weight"),
        lp(m, base, l, "mlp.up_proj.weight"),
        lp(m, base, l, "mlp.down_proj.weight"),
        lp(m, base, l, "mlp.ffn_sub_norm.weight"),
    };
    return p;
}

static int alloc_params(struct trn_model *m)
{
    free(m->params);
    free(m->grads);
    free(m->wq);
    m->params = calloc(m->np, sizeof(float));
    m->grads = calloc(m->np, sizeof(float));
    m->wq = calloc(m->np, sizeof(float));
    return m->params && m->grads && m->wq ? 0 : ENG_ENOMEM;
}

static void release_acts(struct trn_model *m)
{
    free(m->arena);
    free(m->ar.acts);
    free(m->tok);
    m->arena = NULL;
    m->ar.acts = NULL;
    m->tok = NULL;
    m->arena_n = m->tok_n = 0;
    m->B = m->T = 0;
}

void trn_model_free(struct trn_model *m)
{
    if (!m)
        return;
    release_acts(m);
    free(m->tens);
    free(m->params);
    free(m->grads);
    free(m->wq);
    free(m);
}

int trn_model_load_hf(const char *dir, struct trn_model **out, char *err)
{
    struct eng_st *st = NULL;
    struct trn_model *m = calloc(1, sizeof(*m));
    int rc;
    *out = NULL;
    if (!m)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if ((rc = eng_config_load(dir, &m->cfg, err)))
        goto fail;
    if (m->cfg.qkv_bias) {
        rc = eng_fail(err, ENG_EUNSUPPORTED,
                      "%s: q/k/v bias (%s) is not supported by the "
                      "trainer",
                      dir, m->cfg.model_type);
        goto fail;
    }
    if ((rc = eng_st_open(dir, &st, err)))
        goto fail;
    char nm[96];
    snprintf(nm, sizeof(nm), "model.layers.0.self_attn.attn_sub_norm.weight");
    m->subln = eng_st_find(st, nm) != NULL;
    if ((rc = layout(m)) || (rc = alloc_params(m))) {
        eng_fail(err, rc, "out of memory for %s", dir);
        goto fail;
    }
    for (int i = 0; i < m->ntens; i++) {
        const struct trn_tensor *t = &m->tens[i];
        const struct eng_st_tensor *s = eng_st_find(st, t->name);
        if (!s) {
            rc = eng_fail(err, ENG_EMISSING, "%s: tensor %s is missing", dir, t->name);
            goto fail;
        }
        if ((s->dtype != ENG_DT_F32 && s->dtype != ENG_DT_BF16 && s->dtype != ENG_DT_F16) ||
            eng_st_numel(s) != (int64_t)t->n || s->shape[0] != t->shape[0]) {
            rc = eng_fail(err, ENG_ESHAPE,
                          "%s: tensor %s has dtype %s and %lld elements, "
                          "expected float with shape [%lld, %lld]",
                          dir, t->name, eng_dtype_name(s->dtype), (long long)eng_st_numel(s),
                          (long long)t->shape[0], (long long)t->shape[1]);
            goto fail;
        }
        eng_to_f32(s->dtype, s->data, m->params + t->off, t->n);
    }
    eng_st_free(st);
    *out = m;
    return 0;
fail:
    eng_st_free(st);
    trn_model_free(m);
    return rc;
}

int trn_model_clone(const struct trn_model *m, struct trn_model **out, char *err)
{
    struct trn_model *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    c->cfg = m->cfg;
    c->subln = m->subln;
    c->quant = m->quant;
    if (layout(c) || alloc_params(c)) {
        trn_model_free(c);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    memcpy(c->params, m->params, m->np * sizeof(float));
    *out = c;
    return 0;
}

int trn_model_add_subln(struct trn_model *m)
{
    if (m->subln)
        return 0;
    struct trn_tensor *old = m->tens;
    float *op = m->params;
    int on = m->ntens;
    m->tens = NULL;
    m->params = NULL;
    free(m->grads);
    free(m->wq);
    m->grads = m->wq = NULL;
    m->subln = 1;
    int rc = layout(m);
    if (!rc)
        rc = alloc_params(m);
    if (rc) {
        free(old);
        free(op);
        return eng_fail(m->err, ENG_ENOMEM, "out of memory inserting SubLN");
    }
    for (int i = 0; i < m->ntens; i++) {
        struct trn_tensor *t = &m->tens[i];
        int found = 0;
        for (int j = 0; j < on && !found; j++)
            if (!strcmp(old[j].name, t->name)) {
                memcpy(m->params + t->off, op + old[j].off, t->n * sizeof(float));
                found = 1;
            }
        if (!found) /* a new SubLN weight: identity at insertion */
            for (size_t k = 0; k < t->n; k++)
                m->params[t->off + k] = 1.0f;
    }
    free(old);
    free(op);
    release_acts(m);
    return 0;
}

int trn_model_has_subln(const struct trn_model *m)
{
    return m->subln;
}
void trn_model_set_quant(struct trn_model *m, int on)
{
    m->quant = on != 0;
}
int trn_model_quant(const struct trn_model *m)
{
    return m->quant;
}
const struct eng_config *trn_model_config(const struct trn_model *m)
{
    return &m->cfg;
}
const char *trn_model_errmsg(const struct trn_model *m)
{
    return m->err;
}
size_t trn_model_nparams(const struct trn_model *m)
{
    return m->np;
}
float *trn_model_params(struct trn_model *m)
{
    return m->params;
}
float *trn_model_grads(struct trn_model *m)
{
    return m->grads;
}
int trn_model_ntensors(const struct trn_model *m)
{
    return m->ntens;
}
const struct trn_tensor *trn_model_tensor(const struct trn_model *m, int i)
{
    return &m->tens[i];
}
float *trn_model_logits(struct trn_model *m)
{
    return m->ar.logits;
}
float *trn_model_dlogits(struct trn_model *m)
{
    return m->ar.dlogits;
}
void trn_model_zero_grad(struct trn_model *m)
{
    memset(m->grads, 0, m->np * sizeof(float));
}

int trn_model_save_hf(const struct trn_model *m, const char *dir, char *err)
{
    return trn_model_save_hf_as(m, dir, 0, err);
}

/* The parameters as HF-named tensors: bf16 copies from h when given, else fp32 in place. */
static struct eng_st_wtensor *tensor_list(const struct trn_model *m, const uint16_t *h)
{
    struct eng_st_wtensor *w = calloc((size_t)m->ntens, sizeof(*w));
    for (int i = 0; w && i < m->ntens; i++) {
        const struct trn_tensor *t = &m->tens[i];
        w[i].name = t->name;
        w[i].dtype = h ? ENG_DT_BF16 : ENG_DT_F32;
        w[i].ndim = t->ndim;
        w[i].shape[0] = t->shape[0];
        w[i].shape[1] = t->shape[1];
        w[i].data = h ? (const void *)(h + t->off) : (const void *)(m->params + t->off);
    }
    return w;
}

int trn_model_engine(const struct trn_model *m, struct eng_model **out, char *err)
{
    struct eng_st_wtensor *w = tensor_list(m, NULL);
    if (!w)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    int rc = eng_model_from_mem(&m->cfg, w, (size_t)m->ntens, out, err);
    free(w);
    return rc;
}

int trn_model_save_hf_as(const struct trn_model *m, const char *dir, int bf16, char *err)
{
    char path[4096];
    int rc = 0;
    uint16_t *h = NULL;
    if (bf16) {
        h = malloc(m->np * sizeof(uint16_t));
        if (!h)
            return eng_fail(err, ENG_ENOMEM, "out of memory");
        for (size_t i = 0; i < m->np; i++)
            h[i] = eng_f32_to_bf16(m->params[i]);
    }
    if (mkdir(dir, 0755) && errno != EEXIST) {
        free(h);
        return eng_fail(err, ENG_EIO, "cannot create '%s': %s", dir, strerror(errno));
    }
    struct eng_st_wtensor *w = tensor_list(m, h);
    if (!w) {
        free(h);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    rc = eng_st_write(path, w, (size_t)m->ntens, err);
    free(w);
    free(h);
    if (rc)
        return rc;
    json_t *cj = eng_config_to_json(&m->cfg);
    if (!cj)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    json_object_set_new(cj, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (json_dump_file(cj, path, JSON_INDENT(2) | JSON_SORT_KEYS))
        rc = eng_fail(err, ENG_EIO, "cannot write '%s'", path);
    json_decref(cj);
    return rc;
}

/* ------------------------------------------------------------------ activation planning */

static int plan(struct trn_model *m, int B, int T)
{
    if (m->B == B && m->T == T && m->arena)
        return 0;
    const struct eng_config *c = &m->cfg;
    size_t N = (size_t)B * T;
    struct trn_arena_spec sp = {
        .B = B, .T = T, .grad = 1, .quant = m->quant, .subln = m->subln, .dsc = (size_t)T * T};
    size_t tot = trn_arena_floats(c, &sp);
    /* a smaller shape reuses the arena (batches of varying length); a larger one grows it */
    if (!m->arena || tot > m->arena_n || N > m->tok_n) {
        release_acts(m);
        m->arena = calloc(tot, sizeof(float));
        m->ar.acts = calloc((size_t)c->layers, sizeof(*m->ar.acts));
        m->tok = calloc(N, sizeof(int32_t));
        if (!m->arena || !m->ar.acts || !m->tok) {
            release_acts(m);
            return eng_fail(m->err, ENG_ENOMEM,
                            "out of memory for activations of a %d x %d "
                            "batch",
                            B, T);
        }
        m->arena_n = tot;
        m->tok_n = N;
    }
    trn_arena_lay(&m->ar, m->arena, c, &sp);
    trn_rope_tables(m->ar.cs, m->ar.sn, T, c->head_dim, c->rope_theta);
    m->B = B;
    m->T = T;
    return 0;
}

const float *trn_model_state(const struct trn_model *m, int layer, enum trn_state which, int *C)
{
    const struct eng_config *c = &m->cfg;
    const struct trn_acts *a = &m->ar.acts[layer];
    *C = (which == TRN_Q ? c->heads : c->kv_heads) * c->head_dim;
    return which == TRN_Q ? a->qn : which == TRN_K ? a->kn : a->v;
}

float *trn_model_dstate(struct trn_model *m, int layer, enum trn_state which)
{
    const struct eng_config *c = &m->cfg;
    size_t N = (size_t)m->B * m->T, QD = (size_t)c->heads * c->head_dim;
    size_t KD = (size_t)c->kv_heads * c->head_dim;
    float *base = m->ar.dstate + (size_t)layer * N * (QD + 2 * KD);
    return which == TRN_Q ? base : which == TRN_K ? base + N * QD : base + N * (QD + KD);
}

void trn_model_backward_begin(struct trn_model *m)
{
    const struct eng_config *c = &m->cfg;
    size_t N = (size_t)m->B * m->T;
    size_t QD = (size_t)c->heads * c->head_dim, KD = (size_t)c->kv_heads * c->head_dim;
    memset(m->ar.dlogits, 0, N * c->vocab * sizeof(float));
    memset(m->ar.dstate, 0, (size_t)c->layers * N * (QD + 2 * KD) * sizeof(float));
}

/* ------------------------------------------------------------------ forward */

/* BitLinear's activation side: xq = aq(x) when quantizing, else a copy. */
static void act_q(const struct trn_model *m, float *xq, const float *x, size_t N, int C)
{
    if (m->quant)
        trn_aquant(xq, x, (int)N, C);
    else if (xq != x) /* the arena aliases them (arena.h) */
        memcpy(xq, x, N * C * sizeof(float));
}

/* Weights used by the forward/backward of each projection: quantized copies or the latents. */
static void quantize_weights(struct trn_model *m)
{
    if (!m->quant)
        return;
    for (int i = 0; i < m->ntens; i++) {
        const struct trn_tensor *t = &m->tens[i];
        if (strstr(t->name, "_proj.weight"))
            trn_wquant(m->wq + t->off, m->params + t->off, t->n);
    }
}

static const float *head_w(const struct trn_model *m)
{
    return m->cfg.tie ? m->params + m->tens[0].off : lp(m, m->params, -1, "lm_head.weight");
}

int trn_model_forward(struct trn_model *m, const int32_t *tok, int B, int T)
{
    const struct eng_config *c = &m->cfg;
    int rc;
    if (B <= 0 || T <= 0)
        return eng_fail(m->err, ENG_EINVAL, "empty batch %d x %d", B, T);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (tok[i] < 0 || tok[i] >= c->vocab)
            return eng_fail(m->err, ENG_EINVAL, "token id %d outside the vocabulary [0, %d)",
                            (int)tok[i], c->vocab);
    if ((rc = plan(m, B, T)))
        return rc;
    quantize_weights(m);
    int N = B * T, H = c->hidden, I = c->inter, hd = c->head_dim;
    int QD = c->heads * hd, KD = c->kv_heads * hd;
    float *W = m->quant ? m->wq : m->params;
    memcpy(m->tok, tok, (size_t)N * sizeof(int32_t));
    trn_embed_forward(m->ar.resid, tok, m->params + m->tens[0].off, N, H);
    for (int l = 0; l < c->layers; l++) {
        struct trn_acts *a = &m->ar.acts[l];
        struct lptr p = layer_ptrs(m, m->params, l), w = layer_ptrs(m, W, l);
        float *x = m->ar.resid + (size_t)l * N * H, *xo = x + (size_t)N * H;
        trn_rmsnorm_forward(a->xn1, a->r1, x, p.in_norm, N, H, c->eps);
        act_q(m, a->xq1, a->xn1, N, H);
        trn_linear_forward(a->q, a->xq1, w.q, N, H, QD);
        trn_linear_forward(a->k, a->xq1, w.k, N, H, KD);
        trn_linear_forward(a->v, a->xq1, w.v, N, H, KD);
        if (c->qk_norm) {
            trn_rmsnorm_forward(a->qn, a->rq, a->q, p.q_norm, N * c->heads, hd, c->eps);
            trn_rmsnorm_forward(a->kn, a->rk, a->k, p.k_norm, N * c->kv_heads, hd, c->eps);
        } /* else qn, kn alias q, k */
        trn_rope_forward(a->qr, a->qn, m->ar.cs, m->ar.sn, B, T, c->heads, hd);
        trn_rope_forward(a->kr, a->kn, m->ar.cs, m->ar.sn, B, T, c->kv_heads, hd);
        trn_attention_forward(a->a, a->probs, a->qr, a->kr, a->v, B, T, c->heads, c->kv_heads, hd);
        if (m->subln) /* else an aliases a */
            trn_rmsnorm_forward(a->an, a->ra, a->a, p.attn_sub, N, QD, c->eps);
        act_q(m, a->xq2, a->an, N, QD);
        trn_linear_forward(m->ar.tmp, a->xq2, w.o, N, QD, H);
        for (size_t i = 0; i < (size_t)N * H; i++)
            a->xm[i] = x[i] + m->ar.tmp[i];
        trn_rmsnorm_forward(a->xn2, a->r2, a->xm, p.post_norm, N, H, c->eps);
        act_q(m, a->xq3, a->xn2, N, H);
        trn_linear_forward(a->g, a->xq3, w.gate, N, H, I);
        trn_linear_forward(a->u, a->xq3, w.up, N, H, I);
        trn_swiglu_forward(a->h, a->g, a->u, (size_t)N * I);
        if (m->subln) /* else hn aliases h */
            trn_rmsnorm_forward(a->hn, a->rh, a->h, p.ffn_sub, N, I, c->eps);
        act_q(m, a->xq4, a->hn, N, I);
        trn_linear_forward(m->ar.tmp, a->xq4, w.down, N, I, H);
        for (size_t i = 0; i < (size_t)N * H; i++)
            xo[i] = a->xm[i] + m->ar.tmp[i];
    }
    trn_rmsnorm_forward(m->ar.xf, m->ar.rf, m->ar.resid + (size_t)c->layers * N * H,
                        lp(m, m->params, -1, "model.norm.weight"), N, H, c->eps);
    trn_linear_forward(m->ar.logits, m->ar.xf, head_w(m), N, H, c->vocab);
    return 0;
}

/* ------------------------------------------------------------------ backward */

int trn_model_backward(struct trn_model *m)
{
    const struct eng_config *c = &m->cfg;
    if (!m->arena)
        return eng_fail(m->err, ENG_EINVAL, "backward without a forward");
    int B = m->B, T = m->T, N = B * T, H = c->hidden, I = c->inter, hd = c->head_dim;
    int QD = c->heads * hd, KD = c->kv_heads * hd;
    float *W = m->quant ? m->wq : m->params;
    size_t NH = (size_t)N * H;
    /* head and final norm */
    float *dhead = c->tie ? m->grads + m->tens[0].off : lp(m, m->grads, -1, "lm_head.weight");
    memset(m->ar.d1, 0, NH * sizeof(float));
    trn_linear_backward(m->ar.d1, dhead, m->ar.dlogits, m->ar.xf, head_w(m), N, H, c->vocab);
    memset(m->ar.dres, 0, NH * sizeof(float));
    trn_rmsnorm_backward(m->ar.dres, lp(m, m->grads, -1, "model.norm.weight"), m->ar.d1,
                         m->ar.resid + (size_t)c->layers * NH,
                         lp(m, m->params, -1, "model.norm.weight"), m->ar.rf, N, H);
    for (int l = c->layers - 1; l >= 0; l--) {
        struct trn_acts *a = &m->ar.acts[l];
        struct lptr p = layer_ptrs(m, m->params, l), w = layer_ptrs(m, W, l);
        struct lptr g = layer_ptrs(m, m->grads, l);
        float *x = m->ar.resid + (size_t)l * NH;
        /* x' = xm + down(xq4): dxm = dres (kept in dres), dxq4 -> d1 */
        memset(m->ar.d1, 0, (size_t)N * I * sizeof(float));
        trn_linear_backward(m->ar.d1, g.down, m->ar.dres, a->xq4, w.down, N, I, H);
        /* STE: dhn = dxq4; SubLN */
        float *dh = m->ar.d1;
        if (m->subln) {
            memset(m->ar.d2, 0, (size_t)N * I * sizeof(float));
            trn_rmsnorm_backward(m->ar.d2, g.ffn_sub, m->ar.d1, a->h, p.ffn_sub, a->rh, N, I);
            dh = m->ar.d2;
        }
        memset(m->ar.dg, 0, (size_t)N * I * sizeof(float));
        memset(m->ar.du, 0, (size_t)N * I * sizeof(float));
        trn_swiglu_backward(m->ar.dg, m->ar.du, dh, a->g, a->u, (size_t)N * I);
        memset(m->ar.d1, 0, NH * sizeof(float));
        trn_linear_backward(m->ar.d1, g.gate, m->ar.dg, a->xq3, w.gate, N, H, I);
        trn_linear_backward(m->ar.d1, g.up, m->ar.du, a->xq3, w.up, N, H, I);
        trn_rmsnorm_backward(m->ar.dres, g.post_norm, m->ar.d1, a->xm, p.post_norm, a->r2, N, H);
        /* xm = x + o(xq2): dx = dxm (dres), dxq2 -> d1 */
        memset(m->ar.d1, 0, (size_t)N * QD * sizeof(float));
        trn_linear_backward(m->ar.d1, g.o, m->ar.dres, a->xq2, w.o, N, QD, H);
        float *da = m->ar.d1;
        if (m->subln) {
            memset(m->ar.d2, 0, (size_t)N * QD * sizeof(float));
            trn_rmsnorm_backward(m->ar.d2, g.attn_sub, m->ar.d1, a->a, p.attn_sub, a->ra, N, QD);
            da = m->ar.d2;
        }
        /* attention; the relation loss's gradients enter at qn, kn, v */
        /* the gradients of the states (qn, kn, v) accumulate where the relation loss left its
         * part: this layer's dstate slice, read once */
        float *dqn = trn_model_dstate(m, l, TRN_Q), *dkn = trn_model_dstate(m, l, TRN_K);
        float *dv = trn_model_dstate(m, l, TRN_V);
        memset(m->ar.dq, 0, (size_t)N * QD * sizeof(float)); /* d(qr) */
        memset(m->ar.dk, 0, (size_t)N * KD * sizeof(float)); /* d(kr) */
        trn_attention_backward(m->ar.dq, m->ar.dk, dv, da, a->probs, a->qr, a->kr, a->v, B, T,
                               c->heads, c->kv_heads, hd, m->ar.dsc);
        trn_rope_backward(dqn, m->ar.dq, m->ar.cs, m->ar.sn, B, T, c->heads, hd);
        trn_rope_backward(dkn, m->ar.dk, m->ar.cs, m->ar.sn, B, T, c->kv_heads, hd);
        float *dqp = dqn, *dkp = dkn;
        if (c->qk_norm) {
            memset(m->ar.dq, 0, (size_t)N * QD * sizeof(float));
            memset(m->ar.dk, 0, (size_t)N * KD * sizeof(float));
            trn_rmsnorm_backward(m->ar.dq, g.q_norm, dqn, a->q, p.q_norm, a->rq, N * c->heads, hd);
            trn_rmsnorm_backward(m->ar.dk, g.k_norm, dkn, a->k, p.k_norm, a->rk, N * c->kv_heads,
                                 hd);
            dqp = m->ar.dq;
            dkp = m->ar.dk;
        }
        memset(m->ar.d1, 0, NH * sizeof(float));
        trn_linear_backward(m->ar.d1, g.q, dqp, a->xq1, w.q, N, H, QD);
        trn_linear_backward(m->ar.d1, g.k, dkp, a->xq1, w.k, N, H, KD);
        trn_linear_backward(m->ar.d1, g.v, dv, a->xq1, w.v, N, H, KD);
        trn_rmsnorm_backward(m->ar.dres, g.in_norm, m->ar.d1, x, p.in_norm, a->r1, N, H);
    }
    trn_embed_backward(m->grads + m->tens[0].off, m->ar.dres, m->tok, N, H);
    return 0;
}
