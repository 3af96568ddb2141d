/*
 * train/cuda_model.c — the GPU backend of the trainer (backend.h): model.c's forward and
 * backward and step.c's losses and AdamW, composed from the device ops of kernels/cuda/kcuda.h.
 *
 * The layer is model.c's, line for line (see its header for the formulas); the tensor layout is
 * the host model's (the same offsets into one flat fp32 vector), so checkpoints, the optimizer
 * and the parity tests see the same vector on both sides. Activations live in one device arena
 * planned per (B, T) and reused for smaller shapes; nothing is allocated inside a step once the
 * largest shape has been seen. Every device error is sticky in the kcuda context and reported
 * at the end of a step with its message (out of memory, lost device), never as a crash.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "kernels/cuda/kcuda.h"
#include "train/arena.h"
#include "train/backend.h"
#include "train/dist.h"

/* Offsets of one layer's tensors in the flat vector (SIZE_MAX when absent). */
struct loff {
    size_t in_norm, q, k, v, q_norm, k_norm, o, attn_sub, post_norm, gate, up, down, ffn_sub;
};

struct gmodel {
    struct trn_model *host; /* borrowed */
    const struct eng_config *c;
    int quant, subln, train;
    int flash;  /* attention by the fused kernels (bf16 products, head dim 128): no T x T probs */
    int narrow; /* bf16 mode BitLinear: the products take the narrow codes (ops.cu); which
                 * forward: one of enum narrow_fwd */
    int wq_ok;  /* wq holds the ternary weights of the current p */
    /* q|k|v and gate|up lie back to back in every layer (p, wb and gr alike): the backward
     * runs each group's two products once over one wider dY (gbackward) */
    int qkv_cat, gu_cat;
    int dres_b16; /* the backward: tmp holds dres in bf16 (dres_bwd) */
    /* the gate and up products write bf16 (arena gb, ub), as autocast keeps them; the fused
     * SwiGLU kernels read them so (gu16_of) */
    int gu16;
    /* gui8 (narrow MIXED with gu16 and gu_cat): the gate|up product runs in INT8 as one product
     * into the arena's gsum and the fused SwiGLU scales the sums and writes gb, ub (gui8_of) */
    int gui8;
    /* fuse8 (with gui8, BITDISTILL_CUDA_FUSE8=0 to compare): the o and down products in INT8
     * whose sums the next RMSNorm + quantizer scales and adds to the residual (resq), and q|k|v
     * as one INT8 product whose sums the QK-norm + RoPE kernel scales (qkv8; fuse8_of) */
    int resq, qkv8;
    int qk16; /* the forward kept q and k (before QK-norm) in bf16 in a->q, a->k (qkv8) */
    /* dx16: the gate|up, o and q|k|v products write their input gradient in bf16 (as autocast
     * keeps it) for the RMSNorm backwards that read it next (dx16_of) */
    int dx16;
    /* gr_fresh: trn_cuda_zero_grad left the slices of gr that the backward's products write
     * stale (fresh_of: the projections and the fused head's), so their first product this
     * step overwrites (wbeta 0) instead of adding to a zero-fill; gr_settle zeroes them should
     * gr be read before a backward ran */
    int gr_fresh;
    int st_lo, st_hi; /* the layers whose states (qn, kn, v) the relation loss reads this step */
    size_t np;
    float *p, *gr, *wq; /* device [np] (gr, wq NULL when unused) */
    /* narrow: wq's memory holds instead the int8 codes w8 [np], their bf16 values wb [np] and
     * one scale per tensor wsc [ntensors], each at the parameter's offset (tensor's index);
     * only the projections' slices are codes (narrow_bytes) */
    int8_t *w8;
    uint16_t *wb;
    float *wsc;
    /* wabs [ntensors] (narrow): each projection's sum |p|, added by the optimizer's pass over p
     * (krn_cuda_adamw_abs) and valid while wabs_ok: the weight quantizer then need not read p
     * for its absmean */
    double *wabs;
    int wabs_ok;
    /* wbf16: a frozen full-precision model (the teacher) in bf16 mode keeps its projections in
     * bf16, in the first half of each one's fp32 storage in p; xb_src: the input whose bf16
     * copy tmp holds (q/k/v and gate/up share theirs) */
    int wbf16;
    const float *xb_src;
    /* fhead (bf16 mode): the head and its losses run a chunk of rows at a time (head_losses)
     * and the arena has no B x T x V logits; hb is the head weight in bf16 [V][H], current
     * while hb_ok: the head's slice of wb when narrow (hb_own 0), else its own memory */
    int fhead, hb_ok, hb_own;
    uint16_t *hb;
    int nostates;    /* a student without a teacher: no relation loss (arena.h) */
    struct loff *lo; /* [layers] */
    size_t emb, fnorm, head;
    int B, T;
    float *arena; /* device memory of ar */
    size_t arena_n;
    struct trn_arena ar; /* the activations and scratch (arena.h), over arena */
};

/* The forward of the narrow BitLinear products. INT8 sums are exact but their per-token scale
 * is one more pass over the output unless it folds into the residual add (o_proj, down_proj) or
 * into the kernel that reads the output next (gate|up: the fused SwiGLU, gui8); bf16 products on
 * the scaled codes round like FAST_16BF did and need no pass (measured: docs/cuda.md). */
enum narrow_fwd {
    NARROW_OFF,   /* fp32 storage, FAST_16BF (BITDISTILL_CUDA_NARROW=0) */
    NARROW_MIXED, /* INT8 where the product adds to the residual or feeds the fused SwiGLU
                   * (gate|up: gui8), bf16 elsewhere (default) */
    NARROW_BF16,  /* bf16 everywhere (BITDISTILL_CUDA_NARROW=bf16) */
    NARROW_INT8,  /* INT8 everywhere, exact (BITDISTILL_CUDA_NARROW=int8) */
};

struct trn_cuda {
    struct krn_cuda *k;
    int bf16; /* bf16 products (and flash attention where the head dim allows) */
    /* the fused head's logits in bf16, as autocast keeps them (BITDISTILL_CUDA_HEAD16=0: fp32,
     * to compare); read once at creation */
    int head16;
    struct gmodel s, t;
    int has_t;
    float *m, *v;                /* device AdamW moments [np] */
    int32_t *tok, *target, *len; /* device [cap], [cap], [Bcap] */
    float *rowloss, *rel;        /* device [cap], relation scratch */
    size_t cap, bcap, rel_n;
    /* the fused head's scratch (head_losses): a chunk of student and teacher logits [hrows][V]
     * fp32, the gradient of every row [hcap][V] bf16, xf of both models in bf16 [hcap][H],
     * the rows' KL [hcap] */
    float *hs, *ht, *rowkl;
    uint16_t *hg, *hx, *hxt;
    size_t hrows, hcap;
    char err[ENG_ERR_LEN];
};

#define NOFF ((size_t)-1)

static size_t off_of(struct trn_model *m, int l, const char *s)
{
    char nm[96];
    if (l >= 0)
        snprintf(nm, sizeof(nm), "model.layers.%d.%s", l, s);
    else
        snprintf(nm, sizeof(nm), "%s", s);
    const struct trn_tensor *t = trn_model_find(m, nm);
    return t ? t->off : NOFF;
}

int trn_cuda_device_count(void)
{
    return krn_cuda_device_count(NULL, 0);
}

/* The BitLinear projections: the tensors the narrow codes, the weight quantizer and the
 * teacher's bf16 weights cover. */
static int is_proj(const struct trn_tensor *t)
{
    return strstr(t->name, "_proj.weight") != NULL;
}

static int gfail(struct trn_cuda *g, char *err, const char *what)
{
    int rc = krn_cuda_sync(g->k);
    return eng_fail(err, rc ? rc : ENG_EIO, "%s: %s", what, krn_cuda_errmsg(g->k));
}

/* ------------------------------------------------------------------ upload and planning */

static size_t narrow_bytes(struct trn_cuda *g, struct gmodel *m);
static void narrow_views(struct gmodel *m);

static int gmodel_init(struct trn_cuda *g, struct gmodel *m, struct trn_model *host, int train)
{
    const struct eng_config *c = trn_model_config(host);
    m->host = host;
    m->c = c;
    m->quant = trn_model_quant(host);
    m->subln = trn_model_has_subln(host);
    m->train = train;
    m->np = trn_model_nparams(host);
    /* BITDISTILL_CUDA_FLASH=0 keeps the materialising attention in bf16 mode too (comparisons) */
    const char *fe = getenv("BITDISTILL_CUDA_FLASH");
    m->flash = g->bf16 && krn_cuda_flash_supported(c->head_dim) && !(fe && !strcmp(fe, "0"));
    m->lo = calloc((size_t)c->layers, sizeof(*m->lo));
    if (!m->lo)
        return ENG_ENOMEM;
    for (int l = 0; l < c->layers; l++) {
        struct loff *o = &m->lo[l];
        o->in_norm = off_of(host, l, "input_layernorm.weight");
        o->q = off_of(host, l, "self_attn.q_proj.weight");
        o->k = off_of(host, l, "self_attn.k_proj.weight");
        o->v = off_of(host, l, "self_attn.v_proj.weight");
        o->q_norm = off_of(host, l, "self_attn.q_norm.weight");
        o->k_norm = off_of(host, l, "self_attn.k_norm.weight");
        o->o = off_of(host, l, "self_attn.o_proj.weight");
        o->attn_sub = off_of(host, l, "self_attn.attn_sub_norm.weight");
        o->post_norm = off_of(host, l, "post_attention_layernorm.weight");
        o->gate = off_of(host, l, "mlp.gate_proj.weight");
        o->up = off_of(host, l, "mlp.up_proj.weight");
        o->down = off_of(host, l, "mlp.down_proj.weight");
        o->ffn_sub = off_of(host, l, "mlp.ffn_sub_norm.weight");
    }
    size_t QD = (size_t)c->heads * c->head_dim, KD = (size_t)c->kv_heads * c->head_dim;
    m->qkv_cat = m->gu_cat = 1;
    for (int l = 0; l < c->layers; l++) {
        const struct loff *o = &m->lo[l];
        m->qkv_cat &= o->k == o->q + QD * c->hidden && o->v == o->k + KD * c->hidden;
        m->gu_cat &= o->up == o->gate + (size_t)c->inter * c->hidden;
    }
    m->emb = trn_model_tensor(host, 0)->off;
    m->fnorm = off_of(host, -1, "model.norm.weight");
    m->head = c->tie ? m->emb : off_of(host, -1, "lm_head.weight");
    m->fhead = g->bf16;
    m->p = krn_cuda_alloc(g->k, m->np * sizeof(float));
    size_t wqb = narrow_bytes(g, m);
    if (m->quant)
        m->wq = krn_cuda_alloc(g->k, wqb ? wqb : m->np * sizeof(float));
    if (train)
        m->gr = krn_cuda_alloc(g->k, m->np * sizeof(float));
    if (!m->p || (m->quant && !m->wq) || (train && !m->gr))
        return ENG_ENOMEM;
    narrow_views(m);
    /* the head is no projection: its slice of wb is free for the head's bf16 copy (hb) */
    m->hb_own = m->fhead && !(m->narrow && ((m->head * 2) & 15) == 0);
    if (m->fhead)
        m->hb =
            m->hb_own ? krn_cuda_alloc(g->k, (size_t)c->vocab * c->hidden * 2) : m->wb + m->head;
    if (m->fhead && !m->hb)
        return ENG_ENOMEM;
    krn_cuda_h2d(g->k, m->p, trn_model_params(host), m->np * sizeof(float));
    return krn_cuda_sync(g->k);
}

/* The byte offsets of wb, wsc and wabs in wq's narrow layout (off, when not NULL); returns its
 * size (narrow_bytes' comment). */
static size_t narrow_layout(const struct gmodel *m, size_t off[3])
{
    size_t nt = (size_t)trn_model_ntensors(m->host), wb = (m->np + 255) & ~(size_t)255;
    size_t wsc = wb + ((2 * m->np + 255) & ~(size_t)255), wabs = wsc + ((4 * nt + 7) & ~(size_t)7);
    if (off)
        off[0] = wb, off[1] = wsc, off[2] = wabs;
    return wabs + 8 * nt;
}

/* The narrow layout of wq (bytes): w8 [np], wb [np] (each 256-aligned), wsc [ntensors] and wabs
 * [ntensors] (3 np bytes and the scales, where the fp32 ternary weights would take 4 np). The
 * activations' narrow codes (qact) take 3 NC + 4 N bytes of an [N][C] buffer (arena.h).
 * BITDISTILL_CUDA_NARROW (0, bf16, int8; enum narrow_fwd) picks the forward, for comparisons.
 * narrow_bytes sets m->narrow and returns wq's size in bytes (0: not narrow, fp32 wq). */
static size_t narrow_bytes(struct trn_cuda *g, struct gmodel *m)
{
    const struct eng_config *c = m->c;
    const char *e = getenv("BITDISTILL_CUDA_NARROW");
    int ok =
        g->bf16 && m->quant && c->hidden >= 64 && c->inter >= 64 && c->heads * c->head_dim >= 64;
    m->narrow = !ok || (e && !strcmp(e, "0")) ? NARROW_OFF
                : e && !strcmp(e, "bf16")     ? NARROW_BF16
                : e && !strcmp(e, "int8")     ? NARROW_INT8
                                              : NARROW_MIXED;
    return m->narrow ? narrow_layout(m, NULL) : 0;
}

static void narrow_views(struct gmodel *m)
{
    if (!m->narrow)
        return;
    size_t off[3];
    narrow_layout(m, off);
    m->w8 = (int8_t *)m->wq;
    m->wb = (uint16_t *)((char *)m->wq + off[0]);
    m->wsc = (float *)((char *)m->wq + off[1]);
    m->wabs = (double *)((char *)m->wq + off[2]);
}

/* The scale of the projection at offset off (narrow). */
static const float *wscale(const struct gmodel *m, size_t off)
{
    int n = trn_model_ntensors(m->host);
    for (int i = 0; i < n; i++)
        if (trn_model_tensor(m->host, i)->off == off)
            return m->wsc + i;
    return m->wsc; /* not reached: every projection is a tensor */
}

/* The narrow codes of the activations of a BitLinear input, laid over its fp32 buffer xq
 * [N][C] (x8 [N][C], sx [N], xb [N][C] bf16, each 16-aligned: 3NC + 4N + 45 <= 4NC bytes). */
struct qact {
    int8_t *x8;
    float *sx;
    uint16_t *xb;
};

static char *align16(void *p)
{
    return (char *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
}

static struct qact qact_of(float *xq, size_t N, size_t C)
{
    struct qact q;
    q.x8 = (int8_t *)align16(xq);
    q.sx = (float *)align16(q.x8 + N * C);
    q.xb = (uint16_t *)align16(q.sx + N);
    return q;
}

/* The frozen teacher's projections to bf16 in place (see wbf16): what FAST_16BF rounded them to
 * at every product. Off in fp32 mode and with BITDISTILL_CUDA_NARROW=0. */
static int weights_bf16(struct trn_cuda *g, struct gmodel *m)
{
    const char *e = getenv("BITDISTILL_CUDA_NARROW");
    if (!g->bf16 || m->train || m->quant || (e && !strcmp(e, "0")))
        return 0;
    size_t mx = 0;
    for (int i = 0; i < trn_model_ntensors(m->host); i++) {
        const struct trn_tensor *t = trn_model_tensor(m->host, i);
        if (is_proj(t) && t->n > mx)
            mx = t->n;
    }
    uint16_t *tmp = krn_cuda_alloc(g->k, mx * sizeof(uint16_t) + 16);
    if (!tmp)
        return ENG_ENOMEM;
    for (int i = 0; i < trn_model_ntensors(m->host); i++) {
        const struct trn_tensor *t = trn_model_tensor(m->host, i);
        if (!is_proj(t))
            continue;
        krn_cuda_to_bf16(g->k, tmp, m->p + t->off, t->n);
        krn_cuda_d2d(g->k, m->p + t->off, tmp, t->n * sizeof(uint16_t));
    }
    int rc = krn_cuda_sync(g->k);
    krn_cuda_dfree(g->k, tmp);
    m->wbf16 = !rc;
    return rc;
}

static void gmodel_release(struct trn_cuda *g, struct gmodel *m)
{
    krn_cuda_dfree(g->k, m->p);
    krn_cuda_dfree(g->k, m->gr);
    krn_cuda_dfree(g->k, m->wq);
    if (m->hb_own)
        krn_cuda_dfree(g->k, m->hb);
    krn_cuda_dfree(g->k, m->arena);
    free(m->ar.acts);
    free(m->lo);
}

static int ffn_dh16(const struct gmodel *m, int I);

/* Whether m keeps g and u in bf16: the narrow student whose FFN runs the fused SwiGLU + SubLN
 * kernels both ways (bf16 products, not INT8 everywhere), or the frozen bf16 teacher without
 * SubLN; BITDISTILL_CUDA_GU16=0 keeps them in fp32 (comparisons). */
static int gu16_of(const struct gmodel *m)
{
    const char *e = getenv("BITDISTILL_CUDA_GU16");
    int I = m->c->inter;
    if ((e && !strcmp(e, "0")) || I % 4 || I > KRN_CUDA_SWIGLU16_MAX)
        return 0;
    if (m->narrow)
        return m->narrow != NARROW_INT8 && m->subln && ffn_dh16(m, I);
    return m->wbf16 && !m->train && !m->quant && !m->subln;
}

/* Whether the gate and up products run in INT8 (exact sums; their scales applied by the fused
 * SwiGLU + SubLN forward, which reads the int32 sums in place of the bf16 outputs, so the
 * scaling pass that kept q/k/v/gate/up on bf16 products costs no pass of its own): the narrow
 * MIXED student with gu16 whose gate and up lie back to back (one product); BITDISTILL_CUDA_GUI8=0
 * keeps the bf16 products (comparisons). */
static int gui8_of(const struct gmodel *m)
{
    const char *e = getenv("BITDISTILL_CUDA_GUI8");
    return m->gu16 && m->narrow == NARROW_MIXED && m->gu_cat && m->subln && !(e && !strcmp(e, "0"));
}

/* resq and qkv8 (gmodel) where gui8 holds and the fused kernels take the shapes: rows up to
 * KRN_CUDA_NORM_MAX, q|k|v back to back and their sums within gsum's [N][2I], head dims the
 * QK-norm + RoPE kernel takes. */
static void fuse8_of(struct gmodel *m)
{
    const char *e = getenv("BITDISTILL_CUDA_FUSE8");
    const struct eng_config *c = m->c;
    int on = m->gui8 && !(e && !strcmp(e, "0")), hd = c->head_dim;
    m->resq = on && c->hidden <= KRN_CUDA_NORM_MAX;
    m->qkv8 = on && m->qkv_cat && m->flash && c->qk_norm && (hd == 64 || hd == 128 || hd == 256) &&
              (c->heads + 2 * c->kv_heads) * hd <= 2 * c->inter;
}

/* dx16 where the three products run once over their group (gu_cat, qkv_cat), SubLN's backward
 * folds into the attention's (flash) and the fused norm backwards take every row (the attention's
 * over 2 heads); BITDISTILL_CUDA_DX16=0 keeps fp32 (comparisons). */
static int dx16_of(const struct gmodel *m)
{
    const char *e = getenv("BITDISTILL_CUDA_DX16");
    const struct eng_config *c = m->c;
    int QD = c->heads * c->head_dim;
    return m->narrow && m->subln && m->flash && m->gu_cat && m->qkv_cat && c->qk_norm &&
           c->hidden <= KRN_CUDA_NORM_MAX && QD > 256 && QD <= KRN_CUDA_NORM_MAX &&
           !(e && !strcmp(e, "0"));
}

static int gplan(struct trn_cuda *g, struct gmodel *m, int B, int T)
{
    if (m->B == B && m->T == T && m->arena)
        return 0;
    m->gu16 = gu16_of(m);
    m->gui8 = gui8_of(m);
    fuse8_of(m);
    m->dx16 = dx16_of(m);
    const struct eng_config *c = m->c;
    size_t half = c->head_dim / 2;
    /* the attention backward's scratch: every head's dP at once (ops.cu), or with flash the
     * rows' D = rowsum(dO * O) */
    size_t bht = (size_t)B * c->heads * T;
    struct trn_arena_spec sp = {.B = B,
                                .T = T,
                                .grad = m->train,
                                .quant = m->quant,
                                .subln = m->subln,
                                .flash = m->flash,
                                .nologits = m->fhead,
                                .nostates = m->nostates,
                                .noh = m->narrow && m->subln && c->inter <= KRN_CUDA_NORM_MAX,
                                .narrow = m->narrow != NARROW_OFF,
                                .gu16 = m->gu16,
                                .gui8 = m->gui8,
                                .dsc = m->flash ? krn_cuda_flash_scratch(B, T, c->heads) : bht * T};
    size_t tot = trn_arena_floats(c, &sp);
    if (!m->arena || tot > m->arena_n) {
        krn_cuda_dfree(g->k, m->arena);
        free(m->ar.acts);
        m->arena = NULL;
        m->B = m->T = 0;
        m->ar.acts = calloc((size_t)c->layers, sizeof(*m->ar.acts));
        m->arena = m->ar.acts ? krn_cuda_alloc(g->k, tot * sizeof(float)) : NULL;
        if (!m->arena) {
            m->arena_n = 0;
            return eng_fail(g->err, ENG_ENOMEM, "activations of a %d x %d batch (%.2f GiB): %s", B,
                            T, (double)tot * 4 / (1 << 30), krn_cuda_errmsg(g->k));
        }
        m->arena_n = tot;
    }
    trn_arena_lay(&m->ar, m->arena, c, &sp);
    float *cs = malloc((size_t)T * half * sizeof(float)),
          *sn = malloc((size_t)T * half * sizeof(float));
    if (!cs || !sn) {
        free(cs);
        free(sn);
        return eng_fail(g->err, ENG_ENOMEM, "out of memory");
    }
    trn_rope_tables(cs, sn, T, c->head_dim, c->rope_theta);
    krn_cuda_h2d(g->k, m->ar.cs, cs, (size_t)T * half * sizeof(float));
    krn_cuda_h2d(g->k, m->ar.sn, sn, (size_t)T * half * sizeof(float));
    free(cs);
    free(sn);
    m->B = B;
    m->T = T;
    return 0;
}

static float *dstate(struct gmodel *m, int layer, enum trn_state w)
{
    size_t N = (size_t)m->B * m->T, QD = (size_t)m->c->heads * m->c->head_dim;
    size_t KD = (size_t)m->c->kv_heads * m->c->head_dim;
    float *base = m->ar.dstate + (size_t)(m->nostates ? 0 : layer) * N * (QD + 2 * KD);
    return w == TRN_Q ? base : w == TRN_K ? base + N * QD : base + N * (QD + KD);
}

static const float *state(struct gmodel *m, int layer, enum trn_state w, int *C)
{
    const struct trn_acts *a = &m->ar.acts[layer];
    *C = (w == TRN_Q ? m->c->heads : m->c->kv_heads) * m->c->head_dim;
    return w == TRN_Q ? a->qn : w == TRN_K ? a->kn : a->v;
}

int trn_cuda_create(int dev, struct trn_model *student, struct trn_model *teacher, int bf16,
                    struct trn_cuda **out, char *err)
{
    struct trn_cuda *g = calloc(1, sizeof(*g));
    int rc;
    *out = NULL;
    if (!g)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if ((rc = krn_cuda_create(dev, &g->k, err))) {
        free(g);
        return rc;
    }
    krn_cuda_set_bf16(g->k, bf16);
    g->bf16 = bf16 != 0;
    const char *h16 = getenv("BITDISTILL_CUDA_HEAD16");
    g->head16 = !(h16 && !strcmp(h16, "0"));
    size_t np = trn_model_nparams(student);
    g->s.nostates = teacher == NULL;
    if ((rc = gmodel_init(g, &g->s, student, 1)) ||
        (teacher && ((rc = gmodel_init(g, &g->t, teacher, 0)) || (rc = weights_bf16(g, &g->t))))) {
        eng_fail(err, rc, "cuda:%d: uploading the models: %s", dev, krn_cuda_errmsg(g->k));
        trn_cuda_free(g);
        return rc;
    }
    g->has_t = teacher != NULL;
    g->m = krn_cuda_alloc(g->k, np * sizeof(float));
    g->v = krn_cuda_alloc(g->k, np * sizeof(float));
    if (!g->m || !g->v || (rc = krn_cuda_sync(g->k))) {
        rc = eng_fail(err, ENG_ENOMEM, "cuda:%d: optimizer state: %s", dev, krn_cuda_errmsg(g->k));
        trn_cuda_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void trn_cuda_free(struct trn_cuda *g)
{
    if (!g)
        return;
    if (g->k) {
        krn_cuda_bind(g->k);
        gmodel_release(g, &g->s);
        gmodel_release(g, &g->t);
        krn_cuda_dfree(g->k, g->m);
        krn_cuda_dfree(g->k, g->v);
        krn_cuda_dfree(g->k, g->tok);
        krn_cuda_dfree(g->k, g->target);
        krn_cuda_dfree(g->k, g->len);
        krn_cuda_dfree(g->k, g->rowloss);
        krn_cuda_dfree(g->k, g->rel);
        krn_cuda_dfree(g->k, g->hs);
        krn_cuda_dfree(g->k, g->ht);
        krn_cuda_dfree(g->k, g->rowkl);
        krn_cuda_dfree(g->k, g->hg);
        krn_cuda_dfree(g->k, g->hx);
        krn_cuda_dfree(g->k, g->hxt);
        krn_cuda_free(g->k);
    }
    free(g);
}

/* ------------------------------------------------------------------ forward / backward */

/* The weight gradients' beta for a product that writes them: 0 for the first since zero_grad. */
static float wbeta(const struct gmodel *m)
{
    return m->gr_fresh ? 0.0f : 1.0f;
}

static void act_q(struct krn_cuda *k, const struct gmodel *m, float *xq, const float *x, size_t N,
                  int C)
{
    if (m->narrow) {
        struct qact q = qact_of(xq, N, (size_t)C);
        krn_cuda_aquant_narrow(k, q.x8, q.xb, q.sx, x, (int)N, C);
    } else if (m->quant)
        krn_cuda_aquant(k, xq, x, (int)N, C);
    else if (xq != x)
        krn_cuda_d2d(k, xq, x, N * C * sizeof(float));
}

/* xn = RMSNorm(x) (rstd r), then the BitLinear input xq of it: narrow, in one pass that never
 * stores xn (the backward reads only x, r and xq). */
static void norm_q(struct krn_cuda *k, struct gmodel *m, float *xn, float *r, float *xq,
                   const float *x, const float *w, size_t N, int C, float eps)
{
    if (m->narrow) {
        struct qact q = qact_of(xq, N, (size_t)C);
        if (!krn_cuda_rmsnorm_aquant(k, q.x8, q.xb, q.sx, r, x, w, (int)N, C, eps))
            return;
    }
    if (m->wbf16 && xq == xn) { /* the teacher: the norm feeds only its bf16 products */
        krn_cuda_rmsnorm_forward_bf16(k, (uint16_t *)m->ar.tmp, r, x, w, (int)N, C, eps);
        m->xb_src = xq; /* lin_fwd finds its bf16 copy made */
        return;
    }
    krn_cuda_rmsnorm_forward(k, xn, r, x, w, (int)N, C, eps);
    act_q(k, m, xq, xn, N, C);
}

/* out [N][OC] = res + xq . W^T for the projection at offset wo (res NULL: no add): on the
 * narrow codes (INT8 or bf16, enum narrow_fwd), else the fp32-storage product (through tmp for
 * the add). */
static void lin_fwd(struct krn_cuda *k, struct gmodel *m, float *out, const float *res, float *xq,
                    size_t wo, int N, int C, int OC)
{
    if (m->wbf16) {
        uint16_t *xb = (uint16_t *)m->ar.tmp; /* [N][C] bf16 in tmp's [N][max] floats */
        if (m->xb_src != xq)
            krn_cuda_to_bf16(k, xb, xq, (size_t)N * C);
        m->xb_src = xq;
        krn_cuda_blinear_forward(k, out, res, xb, (const uint16_t *)(m->p + wo), N, C, OC);
        return;
    }
    if (m->narrow) {
        struct qact q = qact_of(xq, (size_t)N, (size_t)C);
        if (m->narrow == NARROW_INT8 || (m->narrow == NARROW_MIXED && res))
            krn_cuda_qlinear_forward(k, out, res, q.x8, q.sx, m->w8 + wo, wscale(m, wo), N, C, OC);
        else
            krn_cuda_blinear_forward(k, out, res, q.xb, m->wb + wo, N, C, OC);
        return;
    }
    const float *W = (m->quant ? m->wq : m->p) + wo;
    if (!res) {
        krn_cuda_linear_forward(k, out, xq, W, N, C, OC);
        return;
    }
    krn_cuda_linear_forward(k, m->ar.tmp, xq, W, N, C, OC);
    krn_cuda_add(k, out, res, m->ar.tmp, (size_t)N * OC);
}

/* out = res + xq . W^T (lin_fwd), then norm_q of out (weight w) into xn, r, nq; with resq
 * the product's int32 sums are scaled and added by the norm's own pass
 * (krn_cuda_res_rmsnorm_aquant: the same values as the two passes). */
static void lin_norm_q(struct krn_cuda *k, struct gmodel *m, float *out, const float *res,
                       float *xq, size_t wo, int N, int C, int OC, float *xn, float *r, float *nq,
                       const float *w, float eps)
{
    if (m->resq) {
        struct qact q = qact_of(xq, (size_t)N, (size_t)C), n = qact_of(nq, (size_t)N, (size_t)OC);
        krn_cuda_qlinear_sums(k, (int32_t *)out, q.x8, m->w8 + wo, N, C, OC);
        if (!krn_cuda_res_rmsnorm_aquant(k, n.x8, n.xb, n.sx, r, out, res, q.sx, wscale(m, wo), w,
                                         N, OC, eps))
            return;
    } /* (not reached: fuse8_of) the product again, then the norm */
    lin_fwd(k, m, out, res, xq, wo, N, C, OC);
    norm_q(k, m, xn, r, nq, out, w, (size_t)N, OC, eps);
}

/* outb [N][OC] = xq . W^T written in bf16 (an output that only feeds bf16 products: the fused
 * attention's v), on the bf16 operands; 0 when this model's forward has none (fp32 storage,
 * INT8 everywhere): then lin_fwd and a copy. */
static int lin_fwd_b16(struct krn_cuda *k, struct gmodel *m, uint16_t *outb, float *xq, size_t wo,
                       int N, int C, int OC)
{
    if (m->wbf16) {
        uint16_t *xb = (uint16_t *)m->ar.tmp;
        if (m->xb_src != xq)
            krn_cuda_to_bf16(k, xb, xq, (size_t)N * C);
        m->xb_src = xq;
        krn_cuda_blinear_forward_bf16(k, outb, xb, (const uint16_t *)(m->p + wo), N, C, OC);
        return 1;
    }
    if (!m->narrow || m->narrow == NARROW_INT8)
        return 0;
    struct qact q = qact_of(xq, (size_t)N, (size_t)C);
    krn_cuda_blinear_forward_bf16(k, outb, q.xb, m->wb + wo, N, C, OC);
    return 1;
}

/* dinp (= when first, else +=) dout . W and the projection's gradient += dout^T . xq: bf16
 * operands (the narrow codes' bf16 values, dout through tmp; first: the product overwrites,
 * no zero-fill) when narrow, else the fp32-storage products. */
static void lin_bwd(struct krn_cuda *k, struct gmodel *m, float *dinp, int first, const float *dout,
                    float *xq, size_t wo, int N, int C, int OC)
{
    if (m->narrow) {
        struct qact q = qact_of(xq, (size_t)N, (size_t)C);
        krn_cuda_qlinear_backward(k, dinp, first ? 0.0f : 1.0f, m->gr + wo, wbeta(m), dout, q.xb,
                                  m->wb + wo, (uint16_t *)m->ar.tmp, N, C, OC);
        return;
    }
    if (first)
        krn_cuda_zero(k, dinp, (size_t)N * C * sizeof(float));
    krn_cuda_linear_backward(k, dinp, m->gr + wo, dout, xq, (m->quant ? m->wq : m->p) + wo, N, C,
                             OC);
}

/* The FFN's down-projection input from g and u: h = silu(g) u, its SubLN (rstd rh) and the
 * BitLinear input xq4. Narrow with SubLN: one fused pass that stores neither h nor hn (the
 * backward recomputes h: ffn_act_bwd); else h is stored. */
static void ffn_act(struct krn_cuda *k, struct gmodel *m, struct trn_acts *a, const struct loff *o,
                    int N, int I, float eps)
{
    const float *w = m->p + o->ffn_sub;
    if (m->gui8) { /* the gate|up sums in gsum (gforward) */
        struct qact q = qact_of(a->xq4, (size_t)N, (size_t)I),
                    x = qact_of(a->xq3, (size_t)N, (size_t)m->c->hidden);
        if (!krn_cuda_swiglu_rmsnorm_aquant_i32(k, q.x8, q.xb, q.sx, a->rh, a->gb, a->ub,
                                                m->ar.gsum, 2 * I, x.sx, wscale(m, o->gate),
                                                wscale(m, o->up), w, N, I, eps))
            return;
        /* not reached (gui8_of and the arena's alignment): the bf16 products instead */
        lin_fwd_b16(k, m, a->gb, a->xq3, o->gate, N, m->c->hidden, I);
        lin_fwd_b16(k, m, a->ub, a->xq3, o->up, N, m->c->hidden, I);
    }
    if (m->gu16 && m->narrow) { /* gu16_of chose the shapes the kernel takes */
        struct qact q = qact_of(a->xq4, (size_t)N, (size_t)I);
        krn_cuda_swiglu_rmsnorm_aquant_b16(k, q.x8, q.xb, q.sx, a->rh, a->gb, a->ub, w, N, I, eps);
        return;
    }
    if (m->gu16) { /* the teacher: h feeds only the down product, in bf16 */
        krn_cuda_swiglu_forward_b16(k, (uint16_t *)m->ar.tmp, a->gb, a->ub, (size_t)N * I);
        m->xb_src = a->xq4;
        return;
    }
    if (m->narrow && m->subln) {
        struct qact q = qact_of(a->xq4, (size_t)N, (size_t)I);
        if (!krn_cuda_swiglu_rmsnorm_aquant(k, q.x8, q.xb, q.sx, a->rh, a->g, a->u, w, N, I, eps))
            return;
    }
    if (m->wbf16 && a->xq4 == a->h) { /* the teacher: h feeds only the down product, in bf16 */
        krn_cuda_swiglu_forward_bf16(k, (uint16_t *)m->ar.tmp, a->g, a->u, (size_t)N * I);
        m->xb_src = a->xq4;
        return;
    }
    krn_cuda_swiglu_forward(k, a->h, a->g, a->u, (size_t)N * I);
    if (m->subln) /* else hn aliases h */
        norm_q(k, m, a->hn, a->rh, a->xq4, a->h, w, (size_t)N, I, eps);
    else
        act_q(k, m, a->xq4, a->hn, (size_t)N, I);
}

/* The down product's input gradient is kept in bf16 (as autocast keeps it) where only the
 * fused SwiGLU + SubLN backward reads it: narrow with SubLN, rows the fused kernels take. */
static int ffn_dh16(const struct gmodel *m, int I)
{
    return m->narrow && m->subln && I <= KRN_CUDA_NORM_MAX && m->c->hidden <= KRN_CUDA_NORM_MAX;
}

/* krn_cuda_rmsnorm_backward from a dout in bf16 when d16 (dx16: rows the fused kernels take). */
static void rms_bwd(struct krn_cuda *k, float *dinp, int acc, float *dw, const float *dout, int d16,
                    const float *x, const float *w, const float *rstd, int N, int C)
{
    if (d16) /* dx16's rows: the fused kernels take them */
        krn_cuda_rmsnorm_backward_mirror(k, dinp, acc, NULL, dw, dout, 1, x, w, rstd, N, C);
    else
        krn_cuda_rmsnorm_backward(k, dinp, acc, dw, dout, x, w, rstd, N, C);
}

/* dres += (acc) or = the RMSNorm backward on the residual stream; narrow (rows the fused
 * kernels take), its bf16 copy too, in tmp: the dY of the product whose input the norm's
 * output was not (down or o), read next without a conversion pass (dres_b16). dout in bf16
 * when d16 (dx16: then narrow, rows the fused kernels take). */
static void dres_bwd(struct krn_cuda *k, struct gmodel *m, int acc, float *dw, const float *dout,
                     int d16, const float *x, const float *w, const float *rstd, int N, int H)
{
    m->dres_b16 = m->narrow && H <= KRN_CUDA_NORM_MAX &&
                  !krn_cuda_rmsnorm_backward_mirror(k, m->ar.dres, acc, (uint16_t *)m->ar.tmp, dw,
                                                    dout, d16, x, w, rstd, N, H);
    if (!m->dres_b16)
        krn_cuda_rmsnorm_backward(k, m->ar.dres, acc, dw, dout, x, w, rstd, N, H);
}

/* dg, du (overwritten) from dh1, the gradient of ffn_act's output (SubLN's weight gradient
 * gw += ; d2 scratch; bf16 when ffn_dh16): narrow with SubLN fused, h recomputed from g and u
 * (ffn_act stored none; both fall back together, on rows wider than the fused kernels take), dg
 * and du then written in bf16 for the gate and up products (returns 1): with gu_cat one [N][2I]
 * dY in dg's memory (du's columns after dg's); else fp32 (returns 0). */
static int ffn_act_bwd(struct krn_cuda *k, const struct gmodel *m, const struct trn_acts *a,
                       float *dg, float *du, float *d2, float *gw, const float *dh1, const float *w,
                       int N, int I)
{
    uint16_t *gb = (uint16_t *)dg, *ub = m->gu_cat ? gb + I : (uint16_t *)du;
    int ldo = m->gu_cat ? 2 * I : 0;
    if (m->gu16)
        return !krn_cuda_swiglu_rmsnorm_backward_gu16(k, gb, ub, ldo, gw, (const uint16_t *)dh1,
                                                      a->gb, a->ub, w, a->rh, N, I);
    if (ffn_dh16(m, I))
        return !krn_cuda_swiglu_rmsnorm_backward_b16(k, gb, ub, ldo, gw, (const uint16_t *)dh1,
                                                     a->g, a->u, w, a->rh, N, I);
    if (m->narrow && m->subln &&
        !krn_cuda_swiglu_rmsnorm_backward_bf16(k, gb, ub, ldo, gw, dh1, a->g, a->u, w, a->rh, N, I))
        return 1;
    const float *dh = dh1;
    if (m->subln) {
        krn_cuda_rmsnorm_backward(k, d2, 0, gw, dh1, a->h, w, a->rh, N, I);
        dh = d2;
    }
    krn_cuda_swiglu_backward(k, dg, du, 0, dh, a->g, a->u, (size_t)N * I);
    return 0;
}

/* The attention of layer l from its input codes xq1: the q, k, v products, QK-norm and RoPE,
 * then the attention itself into a->a. With qkv8 one INT8 product over q|k|v into gsum and one
 * kernel from its sums to q, k (in bf16, for the backward) and the attention's operands. */
static void attn_fwd(struct krn_cuda *k, struct gmodel *m, struct trn_acts *a, const struct loff *o,
                     int l)
{
    const struct eng_config *c = m->c;
    int B = m->B, T = m->T, N = B * T, H = c->hidden, hd = c->head_dim;
    int QD = c->heads * hd, KD = c->kv_heads * hd;
    float *P = m->p;
    /* the relation loss reads this layer's states (qn, kn, v in fp32); else the fused
     * attention's bf16 operands are all that is written */
    int states = l >= m->st_lo && l < m->st_hi;
    if (m->qkv8) {
        struct qact q = qact_of(a->xq1, (size_t)N, (size_t)H);
        krn_cuda_qlinear_sums(k, m->ar.gsum, q.x8, m->w8 + o->q, N, H, QD + 2 * KD);
        struct krn_cuda_qkv qa = {.sum = m->ar.gsum,
                                  .sx = q.sx,
                                  .swq = wscale(m, o->q),
                                  .swk = wscale(m, o->k),
                                  .swv = wscale(m, o->v),
                                  .q = (uint16_t *)a->q,
                                  .k = (uint16_t *)a->k,
                                  .v = states ? a->v : NULL,
                                  .qn = states ? a->qn : NULL,
                                  .kn = states ? a->kn : NULL,
                                  .rq = a->rq,
                                  .rk = a->rk,
                                  .qb = a->qb,
                                  .kb = a->kb,
                                  .vb = a->vb,
                                  .wq = P + o->q_norm,
                                  .wk = P + o->k_norm,
                                  .cs = m->ar.cs,
                                  .sn = m->ar.sn};
        if (!krn_cuda_qkv_i32(k, &qa, B, T, c->heads, c->kv_heads, hd, c->eps)) {
            m->qk16 = 1; /* a->q, a->k hold bf16 */
            krn_cuda_flash_forward(k, a->a, a->lse, a->qb, a->kb, a->vb, B, T, c->heads,
                                   c->kv_heads, hd);
            return;
        }
    } /* (not reached: fuse8_of) the three products */
    m->qk16 = 0;
    lin_fwd(k, m, a->q, NULL, a->xq1, o->q, N, H, QD);
    lin_fwd(k, m, a->k, NULL, a->xq1, o->k, N, H, KD);
    int vb = m->flash && !states && lin_fwd_b16(k, m, a->vb, a->xq1, o->v, N, H, KD);
    if (!vb)
        lin_fwd(k, m, a->v, NULL, a->xq1, o->v, N, H, KD);
    /* QK-norm and RoPE in one pass to the bf16 operands */
    int qkr = m->flash && c->qk_norm && (hd == 64 || hd == 128 || hd == 256);
    if (c->qk_norm && !qkr) {
        krn_cuda_rmsnorm_forward(k, a->qn, a->rq, a->q, P + o->q_norm, N * c->heads, hd, c->eps);
        krn_cuda_rmsnorm_forward(k, a->kn, a->rk, a->k, P + o->k_norm, N * c->kv_heads, hd, c->eps);
    }               /* else qn, kn alias q, k */
    if (m->flash) { /* its operands in bf16 */
        if (qkr) {
            krn_cuda_qknorm_rope_bf16(k, a->qb, states ? a->qn : NULL, a->rq, a->q, P + o->q_norm,
                                      m->ar.cs, m->ar.sn, B, T, c->heads, hd, c->eps);
            krn_cuda_qknorm_rope_bf16(k, a->kb, states ? a->kn : NULL, a->rk, a->k, P + o->k_norm,
                                      m->ar.cs, m->ar.sn, B, T, c->kv_heads, hd, c->eps);
        } else {
            krn_cuda_rope_forward_bf16(k, a->qb, a->qn, m->ar.cs, m->ar.sn, B, T, c->heads, hd);
            krn_cuda_rope_forward_bf16(k, a->kb, a->kn, m->ar.cs, m->ar.sn, B, T, c->kv_heads, hd);
        }
        if (!vb)
            krn_cuda_to_bf16(k, a->vb, a->v, (size_t)N * KD);
        krn_cuda_flash_forward(k, a->a, a->lse, a->qb, a->kb, a->vb, B, T, c->heads, c->kv_heads,
                               hd);
    } else {
        krn_cuda_rope_forward(k, a->qr, a->qn, m->ar.cs, m->ar.sn, B, T, c->heads, hd);
        krn_cuda_rope_forward(k, a->kr, a->kn, m->ar.cs, m->ar.sn, B, T, c->kv_heads, hd);
        krn_cuda_attention_forward(k, a->a, a->probs, a->qr, a->kr, a->v, B, T, c->heads,
                                   c->kv_heads, hd);
    }
}

static void gforward(struct trn_cuda *g, struct gmodel *m)
{
    struct krn_cuda *k = g->k;
    const struct eng_config *c = m->c;
    int N = m->B * m->T, H = c->hidden, I = c->inter, QD = c->heads * c->head_dim;
    float *P = m->p;
    m->xb_src = NULL;
    /* the ternary weights change only with the parameters: once per optimizer step, not
     * once per micro-batch */
    if (m->quant && !m->wq_ok) {
        for (int i = 0; i < trn_model_ntensors(m->host); i++) {
            const struct trn_tensor *t = trn_model_tensor(m->host, i);
            if (!is_proj(t))
                continue;
            if (m->narrow && m->wabs_ok)
                krn_cuda_wquant_narrow_sum(k, m->w8 + t->off, m->wb + t->off, m->wsc + i,
                                           m->p + t->off, t->n, m->wabs + i);
            else if (m->narrow)
                krn_cuda_wquant_narrow(k, m->w8 + t->off, m->wb + t->off, m->wsc + i, m->p + t->off,
                                       t->n);
            else
                krn_cuda_wquant(k, m->wq + t->off, m->p + t->off, t->n);
        }
        m->wq_ok = 1;
    }
    krn_cuda_embed_forward(k, m->ar.resid, g->tok, P + m->emb, N, H);
    for (int l = 0; l < c->layers; l++) {
        struct trn_acts *a = &m->ar.acts[l];
        const struct loff *o = &m->lo[l];
        float *x = m->ar.resid + (size_t)l * N * H, *xo = x + (size_t)N * H;
        m->xb_src = NULL;       /* without a backward, the layers share their buffers (arena.h) */
        if (l == 0 || !m->resq) /* else the layer below's down product wrote xq1 */
            norm_q(k, m, a->xn1, a->r1, a->xq1, x, P + o->in_norm, N, H, c->eps);
        attn_fwd(k, m, a, o, l);
        if (m->subln) /* else an aliases a */
            norm_q(k, m, a->an, a->ra, a->xq2, a->a, P + o->attn_sub, N, QD, c->eps);
        else
            act_q(k, m, a->xq2, a->an, N, QD);
        lin_norm_q(k, m, a->xm, x, a->xq2, o->o, N, QD, H, a->xn2, a->r2, a->xq3, P + o->post_norm,
                   c->eps);
        if (m->gui8) { /* one INT8 product over gate|up; ffn_act scales the sums */
            struct qact q = qact_of(a->xq3, (size_t)N, (size_t)H);
            krn_cuda_qlinear_sums(k, m->ar.gsum, q.x8, m->w8 + o->gate, N, H, 2 * I);
        } else if (m->gu16) { /* gu16_of: bf16 products (lin_fwd_b16 takes them) */
            lin_fwd_b16(k, m, a->gb, a->xq3, o->gate, N, H, I);
            lin_fwd_b16(k, m, a->ub, a->xq3, o->up, N, H, I);
        } else {
            lin_fwd(k, m, a->g, NULL, a->xq3, o->gate, N, H, I);
            lin_fwd(k, m, a->u, NULL, a->xq3, o->up, N, H, I);
        }
        ffn_act(k, m, a, o, N, I, c->eps);
        if (m->resq && l + 1 < c->layers) { /* the next layer's input norm and codes too */
            struct trn_acts *b = &m->ar.acts[l + 1];
            lin_norm_q(k, m, xo, a->xm, a->xq4, o->down, N, I, H, b->xn1, b->r1, b->xq1,
                       P + m->lo[l + 1].in_norm, c->eps);
        } else
            lin_fwd(k, m, xo, a->xm, a->xq4, o->down, N, I, H);
    }
    krn_cuda_rmsnorm_forward(k, m->ar.xf, m->ar.rf, m->ar.resid + (size_t)c->layers * N * H,
                             P + m->fnorm, N, H, c->eps);
    if (!m->fhead) /* else head_losses */
        krn_cuda_linear_forward(k, m->ar.logits, m->ar.xf, P + m->head, N, H, c->vocab);
}

/* The backward products of the projection at wo (or a group back to back: gate|up, q|k|v) on
 * bf16 operands: d1 = dY . W (overwritten), in bf16 with dx16 (the RMSNorm backward that reads
 * it next takes it so), else fp32; its gradient = wbeta gr + dY^T X. Returns whether d1 is bf16. */
static int proj_bwd(struct krn_cuda *k, struct gmodel *m, size_t wo, const uint16_t *dyb,
                    const uint16_t *xb, int N, int C, int OC)
{
    if (m->dx16)
        krn_cuda_blinear_backward_b16(k, (uint16_t *)m->ar.d1, m->gr + wo, wbeta(m), dyb, xb,
                                      m->wb + wo, N, C, OC);
    else
        krn_cuda_blinear_backward(k, m->ar.d1, 0.0f, m->gr + wo, wbeta(m), dyb, xb, m->wb + wo, N,
                                  C, OC);
    return m->dx16;
}

static void gbackward(struct trn_cuda *g, struct gmodel *m)
{
    struct krn_cuda *k = g->k;
    const struct eng_config *c = m->c;
    int B = m->B, T = m->T, N = B * T, H = c->hidden, I = c->inter, hd = c->head_dim;
    int QD = c->heads * hd, KD = c->kv_heads * hd;
    float *P = m->p, *G = m->gr;
    size_t NH = (size_t)N * H, F = sizeof(float);
    if (!m->fhead) { /* else head_losses wrote d1 and the head's gradient */
        krn_cuda_zero(k, m->ar.d1, NH * F);
        krn_cuda_linear_backward(k, m->ar.d1, G + m->head, m->ar.dlogits, m->ar.xf, P + m->head, N,
                                 H, c->vocab);
    }
    dres_bwd(k, m, 0, G + m->fnorm, m->ar.d1, 0, m->ar.resid + (size_t)c->layers * NH, P + m->fnorm,
             m->ar.rf, N, H);
    for (int l = c->layers - 1; l >= 0; l--) {
        struct trn_acts *a = &m->ar.acts[l];
        const struct loff *o = &m->lo[l];
        float *x = m->ar.resid + (size_t)l * NH;
        int d16 = 0;                         /* d1 holds a product's dX in bf16 (dx16) */
        if (ffn_dh16(m, I) && m->dres_b16) { /* dY in bf16 from dres_bwd, dX in bf16 */
            struct qact q = qact_of(a->xq4, (size_t)N, (size_t)I);
            krn_cuda_blinear_backward_b16(k, (uint16_t *)m->ar.d1, G + o->down, wbeta(m),
                                          (const uint16_t *)m->ar.tmp, q.xb, m->wb + o->down, N, I,
                                          H);
        } else
            lin_bwd(k, m, m->ar.d1, 1, m->ar.dres, a->xq4, o->down, N, I, H);
        if (ffn_act_bwd(k, m, a, m->ar.dg, m->ar.du, m->ar.d2, G + o->ffn_sub, m->ar.d1,
                        P + o->ffn_sub, N, I)) { /* dg, du in bf16: the products take them as is */
            struct qact q = qact_of(a->xq3, (size_t)N, (size_t)H);
            uint16_t *dgb = (uint16_t *)m->ar.dg;
            if (m->gu_cat) /* [N][2I]: one product pair over both */
                d16 = proj_bwd(k, m, o->gate, dgb, q.xb, N, H, 2 * I);
            else {
                krn_cuda_blinear_backward(k, m->ar.d1, 0.0f, G + o->gate, wbeta(m), dgb, q.xb,
                                          m->wb + o->gate, N, H, I);
                krn_cuda_blinear_backward(k, m->ar.d1, 1.0f, G + o->up, wbeta(m),
                                          (uint16_t *)m->ar.du, q.xb, m->wb + o->up, N, H, I);
            }
        } else {
            lin_bwd(k, m, m->ar.d1, 1, m->ar.dg, a->xq3, o->gate, N, H, I);
            lin_bwd(k, m, m->ar.d1, 0, m->ar.du, a->xq3, o->up, N, H, I);
        }
        dres_bwd(k, m, 1, G + o->post_norm, m->ar.d1, d16, a->xm, P + o->post_norm, a->r2, N, H);
        d16 = 0;
        if (m->dres_b16) {
            struct qact q = qact_of(a->xq2, (size_t)N, (size_t)QD);
            d16 = proj_bwd(k, m, o->o, (const uint16_t *)m->ar.tmp, q.xb, N, QD, H);
        } else
            lin_bwd(k, m, m->ar.d1, 1, m->ar.dres, a->xq2, o->o, N, QD, H);
        float *da = m->ar.d1;
        if (m->subln && m->flash &&
            !krn_cuda_rmsnorm_backward_flash(k, m->ar.dsc, G + o->attn_sub, m->ar.d1, d16, a->a,
                                             P + o->attn_sub, a->ra, B, T, c->heads))
            da = NULL; /* SubLN's backward wrote dO in bf16 and D into the flash scratch */
        else if (m->subln) {
            rms_bwd(k, m->ar.d2, 0, G + o->attn_sub, m->ar.d1, d16, a->a, P + o->attn_sub, a->ra, N,
                    QD);
            da = m->ar.d2;
        }
        /* the gradients of the states (qn, kn, v) accumulate where the relation loss left its
         * part: this layer's dstate slice, read once */
        float *dqn = dstate(m, l, TRN_Q), *dkn = dstate(m, l, TRN_K), *dv = dstate(m, l, TRN_V);
        /* q|k|v's one dY in bf16 [N][QD + 2 KD] over dq and dk's memory (qkv_cat below): when
         * nothing accumulates (no relation loss), the attention backward writes its dv columns
         * there itself, and dqn, dkn in bf16 (over their memory) for QK-norm's backwards (dvb) */
        int W = QD + 2 * KD,
            qkv16 = c->qk_norm && m->narrow && hd <= KRN_CUDA_NORM_MAX && m->qkv_cat;
        uint16_t *dqkv = (uint16_t *)m->ar.dq;
        int dvb =
            m->flash && qkv16 && m->nostates &&
            !krn_cuda_flash_backward_v16(k, (uint16_t *)dqn, (uint16_t *)dkn, dqkv + QD + KD, W, da,
                                         da ? a->a : NULL, a->lse, a->qb, a->kb, a->vb, B, T,
                                         c->heads, c->kv_heads, hd, m->ar.dsc, m->ar.cs, m->ar.sn);
        if (m->flash && !dvb) {
            /* RoPE's backward folded in: dqn, dkn directly; dqn, dkn, dv overwritten without a
             * relation loss (nothing of its own in the slice: no zero-fill) */
            krn_cuda_flash_backward(k, dqn, dkn, !m->nostates, dv, da, da ? a->a : NULL, a->lse,
                                    a->qb, a->kb, a->vb, B, T, c->heads, c->kv_heads, hd, m->ar.dsc,
                                    m->ar.cs, m->ar.sn);
        } else if (!m->flash) {
            if (m->nostates)
                krn_cuda_zero(k, dqn, (size_t)N * (QD + 2 * KD) * F);
            krn_cuda_zero(k, m->ar.dq, (size_t)N * QD * F);
            krn_cuda_zero(k, m->ar.dk, (size_t)N * KD * F);
            krn_cuda_attention_backward(k, m->ar.dq, m->ar.dk, dv, da, a->probs, a->qr, a->kr, a->v,
                                        B, T, c->heads, c->kv_heads, hd, m->ar.dsc);
            krn_cuda_rope_backward(k, dqn, m->ar.dq, m->ar.cs, m->ar.sn, B, T, c->heads, hd);
            krn_cuda_rope_backward(k, dkn, m->ar.dk, m->ar.cs, m->ar.sn, B, T, c->kv_heads, hd);
        }
        if (c->qk_norm && m->narrow && hd <= KRN_CUDA_NORM_MAX) {
            /* QK-norm's input gradients in bf16, as the q and k products take them; with
             * qkv_cat they and dv's bf16 copy share one [N][QD + 2 KD] dY (dqkv) and the three
             * projections' products run once over it */
            struct qact q = qact_of(a->xq1, (size_t)N, (size_t)H);
            W = m->qkv_cat ? W : 0;
            uint16_t *dqb = dqkv, *dkb = m->qkv_cat ? dqb + QD : (uint16_t *)m->ar.dk;
            krn_cuda_rmsnorm_backward_bf16(k, dqb, c->heads, W, G + o->q_norm, dqn, dvb, a->q,
                                           m->qk16, P + o->q_norm, a->rq, N * c->heads, hd);
            krn_cuda_rmsnorm_backward_bf16(k, dkb, c->kv_heads, W, G + o->k_norm, dkn, dvb, a->k,
                                           m->qk16, P + o->k_norm, a->rk, N * c->kv_heads, hd);
            if (m->qkv_cat) {
                if (!dvb)
                    krn_cuda_to_bf16_rows(k, dqb + QD + KD, W, dv, N, KD);
                d16 = proj_bwd(k, m, o->q, dqb, q.xb, N, H, W);
            } else {
                krn_cuda_blinear_backward(k, m->ar.d1, 0.0f, G + o->q, wbeta(m), dqb, q.xb,
                                          m->wb + o->q, N, H, QD);
                krn_cuda_blinear_backward(k, m->ar.d1, 1.0f, G + o->k, wbeta(m), dkb, q.xb,
                                          m->wb + o->k, N, H, KD);
                lin_bwd(k, m, m->ar.d1, 0, dv, a->xq1, o->v, N, H, KD);
            }
        } else {
            float *dqp = dqn, *dkp = dkn;
            if (c->qk_norm) {
                krn_cuda_rmsnorm_backward(k, m->ar.dq, 0, G + o->q_norm, dqn, a->q, P + o->q_norm,
                                          a->rq, N * c->heads, hd);
                krn_cuda_rmsnorm_backward(k, m->ar.dk, 0, G + o->k_norm, dkn, a->k, P + o->k_norm,
                                          a->rk, N * c->kv_heads, hd);
                dqp = m->ar.dq;
                dkp = m->ar.dk;
            }
            lin_bwd(k, m, m->ar.d1, 1, dqp, a->xq1, o->q, N, H, QD);
            lin_bwd(k, m, m->ar.d1, 0, dkp, a->xq1, o->k, N, H, KD);
            lin_bwd(k, m, m->ar.d1, 0, dv, a->xq1, o->v, N, H, KD);
        }
        if (l > 0) /* the next layer down reads dres in bf16 */
            dres_bwd(k, m, 1, G + o->in_norm, m->ar.d1, d16, x, P + o->in_norm, a->r1, N, H);
        else
            rms_bwd(k, m->ar.dres, 1, G + o->in_norm, m->ar.d1, d16, x, P + o->in_norm, a->r1, N,
                    H);
    }
    krn_cuda_embed_backward(k, G + m->emb, m->ar.dres, g->tok, N, H);
    m->gr_fresh = 0;
}

/* ------------------------------------------------------------------ step */

static int ensure_batch(struct trn_cuda *g, const struct trn_batch *b)
{
    size_t n = (size_t)b->B * b->T;
    if (n > g->cap || (size_t)b->B > g->bcap) {
        krn_cuda_dfree(g->k, g->tok);
        krn_cuda_dfree(g->k, g->target);
        krn_cuda_dfree(g->k, g->len);
        krn_cuda_dfree(g->k, g->rowloss);
        g->tok = krn_cuda_alloc(g->k, n * sizeof(int32_t));
        g->target = krn_cuda_alloc(g->k, n * sizeof(int32_t));
        g->len = krn_cuda_alloc(g->k, (size_t)b->B * sizeof(int32_t));
        g->rowloss = krn_cuda_alloc(g->k, n * sizeof(float));
        if (!g->tok || !g->target || !g->len || !g->rowloss) {
            g->cap = g->bcap = 0;
            return ENG_ENOMEM;
        }
        g->cap = n;
        g->bcap = (size_t)b->B;
    }
    krn_cuda_h2d(g->k, g->tok, b->tok, n * sizeof(int32_t));
    krn_cuda_h2d(g->k, g->target, b->target, n * sizeof(int32_t));
    if (b->len)
        krn_cuda_h2d(g->k, g->len, b->len, (size_t)b->B * sizeof(int32_t));
    return 0;
}

/* The fused head's scratch for N rows: chunks of at most HEAD_CHUNK_BYTES of fp32 logits per
 * model (4 chunks of 1,024 rows at Qwen3's vocabulary and 8 x 512 tokens; bf16 logits use half),
 * or of BITDISTILL_CUDA_HEAD_ROWS rows (tests). Grows, never shrinks. */
#define HEAD_CHUNK_BYTES ((size_t)640 << 20)
static int head_scratch(struct trn_cuda *g, size_t N)
{
    size_t V = (size_t)g->s.c->vocab, H = (size_t)g->s.c->hidden;
    size_t Ht = g->has_t ? (size_t)g->t.c->hidden : 0;
    size_t nc = (N * V * 4 + HEAD_CHUNK_BYTES - 1) / HEAD_CHUNK_BYTES, rows = (N + nc - 1) / nc;
    const char *e = getenv("BITDISTILL_CUDA_HEAD_ROWS");
    if (e && atoi(e) > 0 && (size_t)atoi(e) < rows)
        rows = (size_t)atoi(e);
    if (N <= g->hcap && rows <= g->hrows)
        return 0;
    rows = rows > g->hrows ? rows : g->hrows;
    N = N > g->hcap ? N : g->hcap;
    float **f[] = {&g->hs, &g->ht, &g->rowkl};
    uint16_t **h[] = {&g->hg, &g->hx, &g->hxt};
    for (int i = 0; i < 3; i++) {
        krn_cuda_dfree(g->k, *f[i]);
        krn_cuda_dfree(g->k, *h[i]);
        *f[i] = NULL;
        *h[i] = NULL;
    }
    g->hs = krn_cuda_alloc(g->k, rows * V * 4);
    g->rowkl = krn_cuda_alloc(g->k, N * 4);
    g->hg = krn_cuda_alloc(g->k, N * V * 2);
    g->hx = krn_cuda_alloc(g->k, N * H * 2);
    if (g->has_t) {
        g->ht = krn_cuda_alloc(g->k, rows * V * 4);
        g->hxt = krn_cuda_alloc(g->k, N * Ht * 2);
    }
    if (!g->hs || !g->rowkl || !g->hg || !g->hx || (g->has_t && (!g->ht || !g->hxt))) {
        g->hcap = g->hrows = 0;
        return eng_fail(g->err, ENG_ENOMEM, "the head's scratch for %zu rows (%.2f GiB): %s", N,
                        (double)(rows * V * 4 * (g->has_t ? 2 : 1) + N * V * 2) / (1 << 30),
                        krn_cuda_errmsg(g->k));
    }
    g->hcap = N;
    g->hrows = rows;
    return 0;
}

/* The bf16 mode's head and its losses (fhead): for each chunk of rows, the student's (and for
 * the logits KL the teacher's) logits in bf16 (fp32 sums rounded, as autocast keeps them) from
 * bf16 operands, then krn_cuda_head_loss (CE
 * into rowloss, KL into rowkl, the bf16 gradient rows); with grad, the gradient of all rows then
 * goes through the head's two backward products once (d1 = g . W_head, overwritten; the head's
 * gradient += g^T xf). The B x T x V logits never exist at once. */
static int head_losses(struct trn_cuda *g, int N, int kl, int grad, float wce, float wkl, float tau)
{
    struct krn_cuda *k = g->k;
    struct gmodel *s = &g->s, *t = &g->t;
    int H = s->c->hidden, Ht = kl ? t->c->hidden : 0, V = s->c->vocab, rc;
    if ((rc = head_scratch(g, (size_t)N)))
        return rc;
    struct gmodel *ms[2] = {s, kl ? t : NULL};
    for (int i = 0; i < 2; i++)
        if (ms[i] && !ms[i]->hb_ok) { /* once per optimizer step (the teacher's: once) */
            krn_cuda_to_bf16(k, ms[i]->hb, ms[i]->p + ms[i]->head, (size_t)V * ms[i]->c->hidden);
            ms[i]->hb_ok = 1;
        }
    krn_cuda_to_bf16(k, g->hx, s->ar.xf, (size_t)N * H);
    if (kl)
        krn_cuda_to_bf16(k, g->hxt, t->ar.xf, (size_t)N * Ht);
    int b16 = g->head16;
    for (int r0 = 0; r0 < N; r0 += (int)g->hrows) {
        int n = N - r0 < (int)g->hrows ? N - r0 : (int)g->hrows;
        const uint16_t *xs = g->hx + (size_t)r0 * H, *xt = kl ? g->hxt + (size_t)r0 * Ht : NULL;
        if (b16) {
            krn_cuda_blinear_forward_bf16(k, (uint16_t *)g->hs, xs, s->hb, n, H, V);
            if (kl)
                krn_cuda_blinear_forward_bf16(k, (uint16_t *)g->ht, xt, t->hb, n, Ht, V);
        } else {
            krn_cuda_blinear_forward(k, g->hs, NULL, xs, s->hb, n, H, V);
            if (kl)
                krn_cuda_blinear_forward(k, g->ht, NULL, xt, t->hb, n, Ht, V);
        }
        krn_cuda_head_loss(k, g->rowloss + r0, kl ? g->rowkl + r0 : NULL,
                           grad ? g->hg + (size_t)r0 * V : NULL, g->hs, kl ? g->ht : NULL, b16,
                           g->target + r0, n, V, tau, wce, wkl);
    }
    if (grad)
        krn_cuda_blinear_backward(k, s->ar.d1, 0.0f, s->gr + s->head, wbeta(s), g->hg, g->hx, s->hb,
                                  N, H, V);
    return 0;
}

/* The step with a gradient scale per loss term (data parallel shards weigh CE/LD by their
 * share of the target rows and AD by their share of the relation rows). */
static int step3(struct trn_cuda *g, const struct trn_batch *b, const struct trn_loss_cfg *lc,
                 int grad, float s_ce, float s_ld, float s_ad, struct trn_losses *out, char *err)
{
    const struct eng_config *sc = g->s.c;
    int N = b->B * b->T, V = sc->vocab, rc, lo = 0, hi = 0, kept = 0, rows = 0;
    int use_t = g->has_t && (lc->lambda > 0 || lc->gamma > 0);
    memset(out, 0, sizeof(*out));
    g->err[0] = 0;
    for (int i = 0; i < N; i++) {
        if (b->tok[i] < 0 || b->tok[i] >= V)
            return eng_fail(err, ENG_EINVAL, "token id %d outside the vocabulary [0, %d)",
                            (int)b->tok[i], V);
        if (b->target[i] >= V)
            return eng_fail(err, ENG_EINVAL, "target id %d outside the vocabulary [0, %d)",
                            (int)b->target[i], V);
        kept += b->target[i] >= 0;
    }
    for (int i = 0; i < b->B; i++)
        rows += b->len ? (b->len[i] < b->T ? b->len[i] : b->T) : b->T;
    if (use_t) {
        const struct eng_config *tc = g->t.c;
        if (tc->vocab != V)
            return eng_fail(err, ENG_ECONFIG, "teacher vocabulary %d != student %d", tc->vocab, V);
        if (lc->layer == -2) {
            lo = 0;
            hi = sc->layers;
        } else {
            lo = lc->layer < 0 ? sc->layers - 1 : lc->layer;
            hi = lo + 1;
        }
        if (lc->gamma > 0 && (tc->layers != sc->layers || hi > sc->layers || lo < 0))
            return eng_fail(err, ENG_ECONFIG,
                            "relation layer %d needs teacher and student of "
                            "the same depth (%d vs %d)",
                            lc->layer, tc->layers, sc->layers);
    }
    if ((rc = ensure_batch(g, b)) || (rc = gplan(g, &g->s, b->B, b->T)) ||
        (use_t && (rc = gplan(g, &g->t, b->B, b->T))))
        return eng_fail(err, rc, "cuda:%d: %s", krn_cuda_device(g->k),
                        g->err[0] ? g->err : krn_cuda_errmsg(g->k));
    /* only the relation loss's layers keep their states in fp32 (gforward) */
    int rel = use_t && lc->gamma > 0;
    g->s.st_lo = g->t.st_lo = rel ? lo : 0;
    g->s.st_hi = g->t.st_hi = rel ? hi : 0;
    if (use_t)
        gforward(g, &g->t);
    gforward(g, &g->s);
    size_t nv = (size_t)N * V * sizeof(float);
    if (grad) {
        if (!g->s.fhead)
            krn_cuda_zero(g->k, g->s.ar.dlogits, nv);
        if (!g->s.nostates) /* else one layer's, zeroed by gbackward */
            krn_cuda_zero(g->k, g->s.ar.dstate,
                          (size_t)sc->layers * N * (size_t)(sc->heads + 2 * sc->kv_heads) *
                              sc->head_dim * sizeof(float));
    }
    int kl = use_t && lc->lambda > 0;
    if (g->s.fhead) {
        float wce = kept ? s_ce / (float)kept : 0.0f;
        float wkl = kept ? s_ld * lc->lambda / (float)kept / lc->tau : 0.0f;
        if ((rc = head_losses(g, N, kl, grad, wce, wkl, lc->tau)))
            return eng_fail(err, rc, "cuda:%d: %s", krn_cuda_device(g->k), g->err);
    } else
        krn_cuda_ce(g->k, g->rowloss, grad ? g->s.ar.dlogits : NULL, g->s.ar.logits, g->target, N,
                    V, kept, s_ce);
    out->ce = kept ? krn_cuda_sum(g->k, g->rowloss, (size_t)N) / kept : 0.0;
    if (kl) {
        if (!g->s.fhead)
            krn_cuda_kl(g->k, g->rowloss, grad ? g->s.ar.dlogits : NULL, g->s.ar.logits,
                        g->t.ar.logits, g->target, N, V, lc->tau, kept, s_ld * lc->lambda);
        out->ld =
            kept ? krn_cuda_sum(g->k, g->s.fhead ? g->rowkl : g->rowloss, (size_t)N) / kept : 0.0;
    }
    if (use_t && lc->gamma > 0) {
        int S = lc->split_heads > 0 ? lc->split_heads : 1;
        for (int l = lo; l < hi; l++)
            for (int w = 0; w < 3; w++) {
                int Cs, Ct;
                const float *s = state(&g->s, l, (enum trn_state)w, &Cs);
                const float *t = state(&g->t, l, (enum trn_state)w, &Ct);
                if (Cs % S || Ct % S)
                    return eng_fail(err, ENG_ECONFIG,
                                    "split_heads %d does not divide the "
                                    "state widths %d (student) and %d (teacher)",
                                    S, Cs, Ct);
                size_t need = krn_cuda_relation_scratch(b->B, b->T, Cs, Ct, S);
                if (need > g->rel_n) {
                    krn_cuda_dfree(g->k, g->rel);
                    g->rel = krn_cuda_alloc(g->k, need * sizeof(float));
                    g->rel_n = g->rel ? need : 0;
                    if (!g->rel)
                        return eng_fail(err, ENG_ENOMEM, "relation scratch: %s",
                                        krn_cuda_errmsg(g->k));
                }
                out->ad +=
                    krn_cuda_relation(g->k, grad ? dstate(&g->s, l, (enum trn_state)w) : NULL, s, t,
                                      b->len ? g->len : NULL, rows, b->B, b->T, Cs, Ct, S,
                                      lc->rel == TRN_REL_SCALED, lc->t_r, s_ad * lc->gamma, g->rel);
            }
    }
    out->loss = out->ce + (double)lc->lambda * out->ld + (double)lc->gamma * out->ad;
    if (grad)
        gbackward(g, &g->s);
    if (krn_cuda_sync(g->k))
        return gfail(g, err, "cuda step");
    return 0;
}

int trn_cuda_step_losses(struct trn_cuda *g, const struct trn_batch *b,
                         const struct trn_loss_cfg *lc, int grad, float grad_scale,
                         struct trn_losses *out, char *err)
{
    krn_cuda_bind(g->k);
    return step3(g, b, lc, grad, grad_scale, grad_scale, grad_scale, out, err);
}

/* Whether tensor t's gradient is written first by a product that overwrites when gr_fresh:
 * the narrow student's projections (every one a BitLinear product with wbeta) and the fused
 * head's (with a tied head, the embedding's scatter adds after it). Elsewhere none is. */
static int fresh_of(const struct gmodel *m, const struct trn_tensor *t)
{
    return m->narrow && m->fhead && (is_proj(t) || t->off == m->head);
}

/* Zero the gradient of every tensor for which fresh_of(t) == want, contiguous runs at once. */
static void zero_grads(struct trn_cuda *g, int want)
{
    struct gmodel *m = &g->s;
    int nt = trn_model_ntensors(m->host);
    size_t lo = 0, hi = 0; /* the run being gathered, [lo, hi) */
    for (int i = 0; i <= nt; i++) {
        const struct trn_tensor *t = i < nt ? trn_model_tensor(m->host, i) : NULL;
        int in = t && fresh_of(m, t) == want;
        if (in && hi > lo && t->off == hi) {
            hi += t->n;
            continue;
        }
        if (hi > lo)
            krn_cuda_zero(g->k, m->gr + lo, (hi - lo) * sizeof(float));
        lo = in ? t->off : 0;
        hi = in ? t->off + t->n : 0;
    }
}

void trn_cuda_zero_grad(struct trn_cuda *g)
{
    krn_cuda_bind(g->k);
    zero_grads(g, 0);
    g->s.gr_fresh = g->s.narrow && g->s.fhead; /* fresh_of: else every tensor was zeroed */
}

/* gr as zero_grad promised it (the stale slices zeroed) when no backward ran since. */
static void gr_settle(struct trn_cuda *g)
{
    if (g->s.gr_fresh)
        zero_grads(g, 1);
    g->s.gr_fresh = 0;
}

int trn_cuda_adamw_update(struct trn_cuda *g, long t, float lr, const struct trn_adamw_cfg *c,
                          double *gnorm, char *err)
{
    krn_cuda_bind(g->k);
    gr_settle(g);
    double norm = sqrt(krn_cuda_sumsq(g->k, g->s.gr, g->s.np));
    float cs = 1.0f;
    if (c->clip > 0 && norm > c->clip)
        cs = (float)(c->clip / (norm + 1e-6));
    if (gnorm)
        *gnorm = norm;
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    g->s.wq_ok = g->s.hb_ok = 0;
    /* the narrow quantizer's absmeans summed in this pass (the projections, as gforward quantizes) */
    int nt = trn_model_ntensors(g->s.host), fold = g->s.narrow && g->s.quant;
    if (fold)
        krn_cuda_zero(g->k, g->s.wabs, (size_t)nt * sizeof(double));
    for (int k = 0; k < nt; k++) {
        const struct trn_tensor *tt = trn_model_tensor(g->s.host, k);
        double *sa = fold && is_proj(tt) ? g->s.wabs + k : NULL;
        krn_cuda_adamw_abs(g->k, g->s.p + tt->off, g->s.gr + tt->off, g->m + tt->off,
                           g->v + tt->off, tt->n, lr, c->beta1, c->beta2, c->eps,
                           tt->decay ? c->weight_decay : 0.0f, bc1, bc2, cs, sa);
    }
    g->s.wabs_ok = fold;
    if (krn_cuda_sync(g->k))
        return gfail(g, err, "cuda optimizer");
    return 0;
}

int trn_cuda_set_moments(struct trn_cuda *g, const float *m, const float *v, char *err)
{
    krn_cuda_bind(g->k);
    krn_cuda_h2d(g->k, g->m, m, g->s.np * sizeof(float));
    krn_cuda_h2d(g->k, g->v, v, g->s.np * sizeof(float));
    return krn_cuda_sync(g->k) ? gfail(g, err, "uploading moments") : 0;
}

int trn_cuda_pull(struct trn_cuda *g, float *params, float *grads, float *m, float *v, char *err)
{
    size_t n = g->s.np * sizeof(float);
    krn_cuda_bind(g->k);
    if (params)
        krn_cuda_d2h(g->k, params, g->s.p, n);
    if (grads) {
        gr_settle(g);
        krn_cuda_d2h(g->k, grads, g->s.gr, n);
    }
    if (m)
        krn_cuda_d2h(g->k, m, g->m, n);
    if (v)
        krn_cuda_d2h(g->k, v, g->v, n);
    return krn_cuda_sync(g->k) ? gfail(g, err, "downloading the state") : 0;
}

/* ------------------------------------------------------------------ data parallel */

struct trn_cuda_dp {
    int n;                      /* GPUs of this process */
    int gpus, first;            /* GPUs of the whole job; global index of this process's first */
    struct trn_dist *dist;      /* borrowed; NULL: a single process */
    struct trn_cuda **g;        /* [n] one session per device */
    struct krn_cuda **k;        /* [n] their contexts (borrowed from g) */
    struct krn_cuda_comm *comm; /* NULL when the job has one GPU */
    float **grads;              /* [n] device gradient vectors */
    double timeout_s;
};

/* Several processes: rank 0 makes the NCCL id, every rank reports whether its sessions (and
 * rank 0 its id) are ready, so one rank's failure (out of memory...) fails every rank with its
 * message instead of leaving the others waiting in NCCL; then all join. */
static int dp_join(struct trn_cuda_dp *d, int rc, uint64_t check, char *err)
{
    unsigned char id[KRN_CUDA_COMM_ID_BYTES] = {0};
    char kerr[KRN_CUDA_ERR_LEN];
    if (!rc && trn_dist_rank(d->dist) == 0 && (rc = krn_cuda_comm_unique_id(id, kerr)))
        eng_fail(err, rc, "%s", kerr);
    if ((rc = trn_dist_reduce(d->dist, rc, err, check, NULL, 0, err)) ||
        (rc = trn_dist_bcast(d->dist, id, sizeof(id), err)))
        return rc;
    if ((rc = krn_cuda_comm_create_rank(d->k, d->n, id, d->gpus, d->first, d->timeout_s, &d->comm,
                                        kerr)))
        return eng_fail(err, rc, "%s", kerr);
    return 0;
}

int trn_cuda_dp_create(const int *devs, int n, struct trn_model *student, struct trn_model *teacher,
                       int bf16, struct trn_dist *dist, struct trn_cuda_dp **out, char *err)
{
    struct trn_cuda_dp *d = calloc(1, sizeof(*d));
    int rc = 0;
    char kerr[KRN_CUDA_ERR_LEN];
    *out = NULL;
    if (!d || !(d->g = calloc((size_t)n, sizeof(*d->g))) ||
        !(d->k = calloc((size_t)n, sizeof(*d->k))) ||
        !(d->grads = calloc((size_t)n, sizeof(*d->grads)))) {
        trn_cuda_dp_free(d);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    d->n = n;
    d->dist = trn_dist_world(dist) > 1 ? dist : NULL;
    d->gpus = d->dist ? trn_dist_gpus(dist) : n;
    d->first = d->dist ? trn_dist_first_gpu(dist) : 0;
    const char *to = getenv("BITDISTILL_NCCL_TIMEOUT");
    d->timeout_s = to && atof(to) > 0 ? atof(to) : 300.0;
    for (int i = 0; i < n && !rc; i++) {
        rc = trn_cuda_create(devs[i], student, teacher, bf16, &d->g[i], err);
        if (!rc) {
            d->k[i] = d->g[i]->k;
            d->grads[i] = d->g[i]->s.gr;
        }
    }
    if (d->dist)
        rc = dp_join(d, rc, (uint64_t)trn_model_nparams(student) << 1 | (teacher != NULL), err);
    else if (!rc && n > 1 && (rc = krn_cuda_comm_create(d->k, n, &d->comm, kerr)))
        eng_fail(err, rc, "%s", kerr);
    if (rc) {
        trn_cuda_dp_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void trn_cuda_dp_free(struct trn_cuda_dp *d)
{
    if (!d)
        return;
    krn_cuda_comm_free(d->comm);
    for (int i = 0; d->g && i < d->n; i++)
        trn_cuda_free(d->g[i]);
    free(d->g);
    free(d->k);
    free(d->grads);
    free(d);
}

int trn_cuda_dp_size(const struct trn_cuda_dp *d)
{
    return d->n;
}

size_t trn_cuda_dp_mem_used(struct trn_cuda_dp *d)
{
    size_t fr = 0, tot = 0;
    krn_cuda_meminfo(d->k[0], &fr, &tot);
    return tot - fr;
}

void trn_cuda_dp_profile(struct trn_cuda_dp *d, FILE *f)
{
    for (int i = 0; i < d->n; i++)
        krn_cuda_prof_report(d->k[i], f);
}

struct shard {
    struct trn_cuda *g;
    struct trn_batch b;
    const struct trn_loss_cfg *lc;
    float s_ce, s_ld, s_ad;
    double w_ce, w_ad; /* share of the target rows / relation rows */
    struct trn_losses L;
    int rc, running, empty;
    char err[ENG_ERR_LEN];
};

/* FNV-1a of a micro-batch: the ranks of one job must all have built the same one. */
static uint64_t batch_hash(const struct trn_batch *b)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)b->B << 32 ^ (uint64_t)b->T;
    size_t n = (size_t)b->B * b->T;
    const int32_t *arr[3] = {b->tok, b->target, b->len};
    size_t len[3] = {n, n, b->len ? (size_t)b->B : 0};
    for (int a = 0; a < 3; a++)
        for (size_t i = 0; i < len[a]; i++)
            h = (h ^ (uint32_t)arr[a][i]) * 1099511628211ULL;
    return h;
}

static void *shard_run(void *arg)
{
    struct shard *h = arg;
    krn_cuda_bind(h->g->k);
    h->rc = step3(h->g, &h->b, h->lc, 1, h->s_ce, h->s_ld, h->s_ad, &h->L, h->err);
    return NULL;
}

int trn_cuda_dp_step_losses(struct trn_cuda_dp *d, const struct trn_batch *b,
                            const struct trn_loss_cfg *lc, float grad_scale, struct trn_losses *out,
                            char *err)
{
    if (d->gpus == 1)
        return trn_cuda_step_losses(d->g[0], b, lc, 1, grad_scale, out, err);
    struct shard *h = calloc((size_t)d->n, sizeof(*h));
    pthread_t *th = calloc((size_t)d->n, sizeof(*th));
    int rc = 0, kept = 0, rows = 0;
    if (!h || !th) {
        free(h);
        free(th);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    for (int i = 0; i < b->B * b->T; i++)
        kept += b->target[i] >= 0;
    for (int i = 0; i < b->B; i++)
        rows += b->len ? (b->len[i] < b->T ? b->len[i] : b->T) : b->T;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < d->n; i++) {
        int gi = d->first + i; /* this GPU's rows of the job's micro-batch */
        int r0 = b->B * gi / d->gpus, r1 = b->B * (gi + 1) / d->gpus, k = 0, r = 0;
        struct shard *s = &h[i];
        s->g = d->g[i];
        s->lc = lc;
        s->b = (struct trn_batch){.B = r1 - r0,
                                  .T = b->T,
                                  .tok = b->tok + (size_t)r0 * b->T,
                                  .target = b->target + (size_t)r0 * b->T,
                                  .len = b->len ? b->len + r0 : NULL};
        if (r1 == r0) {
            s->empty = 1; /* no rows: this GPU adds nothing (its gradients stay zero) */
            continue;
        }
        for (int j = 0; j < s->b.B * s->b.T; j++)
            k += s->b.target[j] >= 0;
        for (int j = 0; j < s->b.B; j++)
            r += s->b.len ? (s->b.len[j] < b->T ? s->b.len[j] : b->T) : b->T;
        s->w_ce = kept ? (double)k / kept : 0.0;
        s->w_ad = rows ? (double)r / rows : 0.0;
        s->s_ce = s->s_ld = grad_scale * (float)s->w_ce;
        s->s_ad = grad_scale * (float)s->w_ad;
        if (pthread_create(&th[i], NULL, shard_run, s)) {
            s->rc = ENG_ENOMEM;
            snprintf(s->err, sizeof(s->err), "cannot start a thread for cuda:%d",
                     krn_cuda_device(d->k[i]));
            continue;
        }
        s->running = 1;
    }
    for (int i = 0; i < d->n; i++) {
        struct shard *s = &h[i];
        if (s->running)
            pthread_join(th[i], NULL);
        if (s->empty)
            continue;
        if (s->rc && !rc)
            rc = eng_fail(err, s->rc, "cuda:%d: %s", krn_cuda_device(d->k[i]), s->err);
        out->ce += s->w_ce * s->L.ce;
        out->ld += s->w_ce * s->L.ld;
        out->ad += s->w_ad * s->L.ad;
    }
    free(h);
    free(th);
    if (d->dist) {
        /* the other processes' shares (added in rank order: equal on every rank) */
        double v[3] = {out->ce, out->ld, out->ad};
        rc = trn_dist_reduce(d->dist, rc, err, batch_hash(b), v, 3, err);
        out->ce = v[0];
        out->ld = v[1];
        out->ad = v[2];
    }
    out->loss = out->ce + (double)lc->lambda * out->ld + (double)lc->gamma * out->ad;
    return rc;
}

void trn_cuda_dp_zero_grad(struct trn_cuda_dp *d)
{
    for (int i = 0; i < d->n; i++)
        trn_cuda_zero_grad(d->g[i]);
}

int trn_cuda_dp_adamw_update(struct trn_cuda_dp *d, long t, float lr, const struct trn_adamw_cfg *c,
                             double *gnorm, char *err)
{
    char kerr[KRN_CUDA_ERR_LEN];
    int rc;
    if (d->comm) {
        for (int i = 0; i < d->n; i++) {
            krn_cuda_bind(d->k[i]);
            gr_settle(d->g[i]);
        }
        for (int i = 0; i < d->n; i++)
            if (krn_cuda_sync(d->k[i]))
                return gfail(d->g[i], err, "before the all-reduce");
        if ((rc = krn_cuda_allreduce_sum(d->comm, d->grads, d->g[0]->s.np, d->timeout_s, kerr)))
            return eng_fail(err, rc, "%s", kerr);
    }
    /* every replica applies the same update to the same summed gradients: they stay equal */
    for (int i = 0; i < d->n; i++)
        if ((rc = trn_cuda_adamw_update(d->g[i], t, lr, c, gnorm, err)))
            return rc;
    return 0;
}

int trn_cuda_dp_set_moments(struct trn_cuda_dp *d, const float *m, const float *v, char *err)
{
    int rc = 0;
    for (int i = 0; i < d->n && !rc; i++)
        rc = trn_cuda_set_moments(d->g[i], m, v, err);
    return rc;
}

int trn_cuda_dp_pull(struct trn_cuda_dp *d, float *params, float *m, float *v, char *err)
{
    return trn_cuda_pull(d->g[0], params, NULL, m, v, err);
}
