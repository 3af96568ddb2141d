/*
 * train/arena.c — the one activation layout of the CPU and GPU trainer models (arena.h).
 */
#include "config.h"

#include "train/arena.h"

/* Walk the layout: with base, set every pointer; without, only count. Returns the floats used. */
static size_t walk(struct trn_arena *a, float *base, const struct eng_config *c,
                   const struct trn_arena_spec *s)
{
    size_t N = (size_t)s->B * s->T, H = c->hidden, I = c->inter, V = c->vocab, L = c->layers;
    size_t QD = (size_t)c->heads * c->head_dim, KD = (size_t)c->kv_heads * c->head_dim;
    size_t NH = c->heads, KH = c->kv_heads, half = (size_t)c->head_dim / 2;
    size_t mx = H > QD ? H : QD, off = 0;
    mx = mx > I ? mx : I;
    struct trn_acts scratch, first = {0};
#define TAKE(n) (off += (n), base ? base + off - (n) : NULL)
    /* With BitLinear, a norm's output is read only by the quantizer right after it (the
     * backward reads the norm's input, its rstd and the codes): it lives in tmp. */
#define NORM_OUT(n) (s->quant ? a->tmp : TAKE(n))
    /* a BitLinear input: [N][C] floats, or its narrow codes (int8 and bf16 values, a scale per
     * row, each 16-aligned: 3 NC + 4 N + 46 bytes) */
#define XQ(C) TAKE(s->narrow ? (3 * N * (C) + 4 * N + 48 + 3) / 4 : N *(C))
    a->resid = TAKE((L + 1) * N * H);
    a->tmp = TAKE(N * mx); /* first: NORM_OUT uses it */
    for (size_t l = 0; l < L; l++) {
        struct trn_acts *x = base ? &a->acts[l] : &scratch;
        if (!s->grad && l > 0) {
            /* no backward: a layer's activations are dead once the next one has read them,
             * so every layer reuses the first's, except the states (qn, kn, v) that the
             * relation loss reads after the forward */
            *x = first;
            x->v = TAKE(N * KD);
            x->qn = TAKE(N * QD);
            x->kn = TAKE(N * KD);
            if (!c->qk_norm) {
                x->q = x->qn;
                x->k = x->kn;
            }
            continue;
        }
        x->xn1 = NORM_OUT(N * H);
        x->xq1 = XQ(H);
        x->q = TAKE(N * QD);
        x->k = TAKE(N * KD);
        /* flash without the relation loss: v goes to its bf16 operand, the fp32 copy (if any)
         * is only a way there */
        x->v = s->nostates && s->flash && l > 0 ? first.v : TAKE(N * KD);
        /* without the relation loss, QK-norm's outputs are read only by RoPE right after */
        x->qn = s->nostates && l > 0 ? first.qn : TAKE(N * QD);
        x->kn = s->nostates && l > 0 ? first.kn : TAKE(N * KD);
        x->probs = x->lse = x->qr = x->kr = NULL;
        x->qb = x->kb = x->vb = NULL;
        if (s->flash) {
            x->lse = TAKE((size_t)s->B * NH * s->T);
            off = (off + 3) & ~(size_t)3; /* 16-byte aligned bf16 rows */
            x->qb = (uint16_t *)TAKE(N * QD / 2 + 4);
            x->kb = (uint16_t *)TAKE(N * KD / 2 + 4);
            x->vb = (uint16_t *)TAKE(N * KD / 2 + 4);
        } else {
            x->qr = TAKE(N * QD);
            x->kr = TAKE(N * KD);
            x->probs = TAKE((size_t)s->B * NH * s->T * s->T);
        }
        x->a = TAKE(N * QD);
        x->an = s->subln ? NORM_OUT(N * QD) : NULL;
        x->xq2 = XQ(QD);
        x->xm = TAKE(N * H);
        x->xn2 = NORM_OUT(N * H);
        x->xq3 = XQ(H);
        x->gb = x->ub = NULL;
        if (s->gu16) { /* bf16 rows, 16-byte aligned */
            off = (off + 3) & ~(size_t)3;
            x->gb = (uint16_t *)TAKE(N * I / 2 + 4);
            x->ub = (uint16_t *)TAKE(N * I / 2 + 4);
            x->g = x->u = NULL;
        } else {
            x->g = TAKE(N * I);
            x->u = TAKE(N * I);
        }
        x->h = s->noh ? NULL : TAKE(N * I);
        x->hn = s->subln ? NORM_OUT(N * I) : NULL;
        x->xq4 = XQ(I);
        x->r1 = TAKE(N);
        x->rq = TAKE(N * NH);
        x->rk = TAKE(N * KH);
        x->ra = TAKE(N);
        x->r2 = TAKE(N);
        x->rh = TAKE(N);
        /* what would only be a copy aliases its source */
        if (!c->qk_norm) {
            x->qn = x->q;
            x->kn = x->k;
        }
        if (!s->subln) {
            x->an = x->a;
            x->hn = x->h;
        }
        if (!s->quant) {
            x->xq1 = x->xn1;
            x->xq2 = x->an;
            x->xq3 = x->xn2;
            x->xq4 = x->hn;
        }
        first = *x;
    }
    a->xf = TAKE(N * H);
    a->rf = TAKE(N);
    a->logits = s->nologits ? NULL : TAKE(N * V);
    a->cs = TAKE((size_t)s->T * half);
    a->sn = TAKE((size_t)s->T * half);
    a->dlogits = a->dstate = a->dres = a->d1 = a->d2 = a->dg = a->du = a->dq = a->dk = a->dsc =
        NULL;
    a->gsum = NULL;
    if (s->grad) {
        a->dlogits = s->nologits ? NULL : TAKE(N * V);
        a->dstate = TAKE((s->nostates ? 1 : L) * N * (QD + 2 * KD));
        a->dres = TAKE(N * H);
        a->d1 = TAKE(N * mx);
        a->d2 = TAKE(N * mx);
        if (s->gui8)
            off = (off + 3) & ~(size_t)3;
        a->dg = TAKE(N * I);
        a->du = TAKE(N * I); /* right after dg: gsum spans both */
        if (s->gui8)
            a->gsum = (int32_t *)a->dg;
        a->dq = TAKE(N * QD);
        a->dk = TAKE(N * KD);
        a->dsc = TAKE(s->dsc);
    } else if (s->gui8) {
        off = (off + 3) & ~(size_t)3;
        a->gsum = (int32_t *)TAKE(N * 2 * I);
    }
#undef XQ
#undef NORM_OUT
#undef TAKE
    return off;
}

size_t trn_arena_floats(const struct eng_config *c, const struct trn_arena_spec *s)
{
    struct trn_arena a;
    return walk(&a, NULL, c, s);
}

float *trn_arena_lay(struct trn_arena *a, float *base, const struct eng_config *c,
                     const struct trn_arena_spec *s)
{
    return base + walk(a, base, c, s);
}
