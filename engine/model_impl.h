/*
 * engine/model_impl.h — the inside of eng_model / eng_ctx, shared by the engine's own files
 * (model.c: HF loading, forward.c: the transformer, student.c: ternary student). Not installed.
 */
#ifndef BD_ENGINE_MODEL_IMPL_H
#define BD_ENGINE_MODEL_IMPL_H

#include "engine/err.h"
#include "engine/model.h"
#include "engine/safetensors.h"

struct eng_ctx;

#define ENG_CTX_CHUNK_MAX 64 /* rows of a context's pass buffers at most (prefill chunk) */

/* One linear layer y[n][out] = x[n][in] . W^T + b. FP: w [out][in] fp32; student: q (krn_i2*). */
struct eng_lin {
    int out, in;
    const float *w; /* fp32 [out][in] (owned via model->owned, or in the mapping) or NULL */
    void *q;        /* student: packed ternary weights (krn_i2 *), owned by the student */
    const float *b; /* bias [out] or NULL */
};

struct eng_layer {
    const float *in_norm;   /* [hidden] */
    const float *post_norm; /* [hidden] */
    const float *q_norm;    /* [head_dim] (Qwen3) or NULL */
    const float *k_norm;    /* [head_dim] (Qwen3) or NULL */
    const float *attn_sub;  /* SubLN before o_proj [heads*head_dim] or NULL */
    const float *ffn_sub;   /* SubLN before down_proj [inter] or NULL */
    struct eng_lin q, k, v, o, gate, up, down;
};

struct eng_student; /* student.c */

/* The student's operations (student.c), reached through the model so that the FP path links
 * without the kernels. */
struct eng_student_ops {
    int (*lin)(struct eng_ctx *c, const struct eng_lin *l, const float *x, int n, float *y);
    void (*embed)(const struct eng_model *m, int32_t id, float *out);
    int (*head)(struct eng_ctx *c, const float *x, int n, float *logits);
    int (*head_rows)(struct eng_ctx *c, const float *x, const int32_t *rows, int nrows, float *out);
    int (*ctx_init)(struct eng_ctx *c);
    void (*ctx_release)(struct eng_ctx *c);
    void (*free)(struct eng_student *s);
    int (*set_threads)(struct eng_model *m, int n);
};

struct eng_model {
    struct eng_config cfg;
    int ternary;              /* 1: student (lin.q, quantized embed/head) */
    struct eng_st *st;        /* FP: the safetensors mapping (owned) */
    const float *embed;       /* FP: [vocab][hidden] */
    const float *head;        /* FP: [vocab][hidden] (== embed when tied) */
    const float *norm;        /* final RMSNorm [hidden] */
    struct eng_layer *layers; /* [cfg.layers] */
    void **owned;             /* buffers freed with the model */
    size_t nowned, capowned;
    size_t resident;                   /* bytes: owned weights + mapped weights used */
    size_t decode_bytes;               /* bytes of weights read per decoded token */
    struct eng_student *stu;           /* student-only state (pool, head, activation quantizers) */
    const struct eng_student_ops *ops; /* student only */
    char err[ENG_ERR_LEN];
};

struct eng_ctx {
    struct eng_model *m;
    int max_t;        /* KV capacity in positions */
    int pos;          /* positions cached */
    int chunk;        /* tokens per forward chunk (scratch rows) */
    int kv_only;      /* 1: KV cache, RoPE tables and scores only (eng_ctx_create_kv) */
    float *kc, *vc;   /* [layers][max_t][kv_heads*head_dim] */
    float *x, *xn;    /* [chunk][hidden] residual stream, normed copy */
    float *q, *k, *v; /* [chunk][heads*hd], [chunk][kv*hd] x2 */
    float *att;       /* [chunk][heads*hd] attention output */
    float *g, *u;     /* [chunk][inter] */
    float *sc;        /* [max(chunk, heads/kv_heads)][max_t] attention scores */
    float *rc, *rs;   /* RoPE tables [max_t][hd/2] */
    void *qa;         /* student: activation quantizer state (student.c) */
    char err[ENG_ERR_LEN];
};

/* Register a heap buffer to free with the model; returns p, or NULL (and frees p) on OOM. */
void *eng_model_own(struct eng_model *m, void *p);

/* Linear layer on n rows; dispatches to sgemm/sgemv (FP, kernels/blas.h) or the student kernels. */
int eng_lin_forward(struct eng_ctx *c, const struct eng_lin *l, const float *x, int n, float *y);

/* forward.c: the numerics shared by the single-sequence and batched passes (the float ops
 * themselves are kernels/fops.h's). */
/* RoPE in place on x [n][nh][hd] at positions p0.. with c's tables. */
void eng_rope(const struct eng_ctx *c, float *x, int n, int nh, int hd, int p0);
/* Causal attention of n query rows q [n][heads*hd] at positions p0.. over sequence c's cache of
 * layer l (already holding them) -> att [n][heads*hd]; scores in c->sc. */
void eng_attention(struct eng_ctx *c, int l, const float *q, float *att, int n, int p0);

/* batch.c: rows of one sequence inside a pass. */
struct eng_piece {
    struct eng_ctx *ctx; /* the sequence: KV cache, RoPE tables, score scratch */
    const int32_t *tok;  /* [n] */
    int n;
    int row; /* first row in the pass */
    int p0;  /* position of tok[0] */
};
/* The decoder layers over R rows made of np pieces, with S's buffers (R <= S->chunk); leaves
 * the final-normed rows in S->xn. Positions are not advanced. */
int eng_layers_run(struct eng_ctx *S, const struct eng_piece *pc, int np, int R);

/* Logits a pass should end with: for i < n, logits[i][vocab] of pass row rows[i] (borrowed). */
struct eng_step_head {
    const int *rows;
    int n;
    float *logits;
};
/* eng_layers_run, then the head's logits of the rows `head` names (NULL: none). The student
 * computes them inside the pass's one pool region. */
int eng_layers_run_head(struct eng_ctx *S, const struct eng_piece *pc, int np, int R,
                        const struct eng_step_head *head);

/* Rows of a pass whose final-normed state the caller reads: rows[0..n-1], ascending pass rows
 * that include every logit row (n may be 0: a prefill chunk whose output nobody reads). */
struct eng_step_keep {
    const int *rows;
    int n;
};
/* eng_layers_run_head where only the `keep` rows of S->xn are wanted (NULL: all rows). A
 * student then runs its last layer's attention, o_proj and FFN on those rows alone (llama.cpp's
 * inp_out_ids; every row's k/v still enters the cache), and the other rows of S->xn are left
 * undefined. The kept rows' numbers are those of the whole pass, bit for bit; the FP path and
 * the op-by-op reference compute every row. */
int eng_layers_run_keep(struct eng_ctx *S, const struct eng_piece *pc, int np, int R,
                        const struct eng_step_head *head, const struct eng_step_keep *keep);

#endif
