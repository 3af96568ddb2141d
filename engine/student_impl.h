/*
 * engine/student_impl.h — the inside of the student (student.c: quantization and forward
 * hooks, studentio.c: the GGUF file). Not installed.
 */
#ifndef BD_ENGINE_STUDENT_IMPL_H
#define BD_ENGINE_STUDENT_IMPL_H

#include <stdio.h>

#include "engine/gguf.h"
#include "engine/model_impl.h"
#include "engine/student.h"
#include "kernels/pool.h"
#include "kernels/quant.h"

#define ENG_Q4_BLK 32 /* 4-bit block length along K (= KRN_Q4_BLOCK) */

/* An embedding/head matrix in its file format plus the kernel object made from it. */
struct qmat {
    int m, k;           /* rows (vocab), columns (hidden) */
    int q4;             /* 1: 4-bit block-scaled, 0: INT8 per row */
    int8_t *codes;      /* owned file codes (students made from FP only), else NULL:
                       * q8 [m][k] int8; q4 [m][nb*16] bytes of two codes (w + 8), nb = ceil(k/32) */
    float *scales;      /* owned likewise: q8 [m] fp32; NULL for q4 */
    uint16_t *scales16; /* owned likewise: q4 [m][nb] fp16 bit patterns (quant.h "Q4") */
    krn_q8 *k8;         /* kernel matrix (owned) */
    krn_q4 *k4;
};

struct eng_student {
    int nthreads; /* kernel threads of each new context (its own krn_pool) */
    enum eng_head_fmt fmt;
    struct qmat emb, head; /* head unused when tied */
    int tied;
    krn_i2 **i2; /* [layers * 7] ternary layers (owned) */
    size_t ni2;
    struct eng_gguf *g; /* loaded file (owned); the i2 objects and norms borrow its mapping */
};

#define STU_PHASES 12    /* embed, 9 per layer, final norm, head (step.c) */
#define STU_CTR_STRIDE 8 /* size_t per phase counter: one cache line each */

/* Per-context student state: each context has its own kernel pool, so one model can serve
 * several inference threads at once (a krn_pool runs one region at a time). */
struct stu_ctx {
    krn_qact *qh, *qq, *qi; /* activations of width hidden, heads*head_dim, inter */
    krn_pool *pool;         /* nthreads of the model when the context was made (owned) */
    float *scores;          /* attention scores, [threads][keys] of the last pass (owned) */
    size_t scores_cap;      /* floats allocated */
    size_t *ctr;            /* [nctr][STU_CTR_STRIDE] work counters of a pass's phases (owned) */
    size_t nctr;
    size_t nctr_used; /* counters the last pass claimed (the only ones not zero) */
    int *kmap;        /* [kmap_cap] pass row -> index among the kept rows (owned) */
    size_t kmap_cap;
    int shapes_ok;  /* the model's shapes were checked on this context's first pass */
    krn_qact **own; /* decode: [threads][3] private activations (hidden, q, inter) */
    float *own_tmp; /* decode: [threads][own_d] private rows */
    int own_n;
    size_t own_d;
    int ops;                    /* BITDISTILL_STEP=ops: the op-by-op reference pass (batch.c) */
    int all_rows;               /* BITDISTILL_STEP=all-rows: passes ignore keep and run every row
                             * through the last layer (the pass before keep, for benchmarks) */
    int profile;                /* BITDISTILL_STEP_PROFILE set: time the phases (step.c) */
    double prof[STU_PHASES][2]; /* seconds of thread 0 per phase: working, waiting */
};

/* Print the phase profile of a context's passes (printed at context free when enabled). */
void eng_step_profile_print(const struct stu_ctx *sc, FILE *f);

/* step.c: the decoder layers of a student over R rows in one pool region, leaving the
 * final-normed rows in S->xn (as eng_layers_run, which calls it for students), and, when head
 * is not NULL, the head's logits of the rows it names (n <= R) in the same region. With keep
 * (see eng_layers_run_keep) only the kept rows of S->xn are computed. */
int eng_step_layers(struct eng_ctx *S, const struct eng_piece *pc, int np, int R,
                    const struct eng_step_head *head, const struct eng_step_keep *keep);

/* Free what eng_step_layers allocated in sc (not sc itself). */
void eng_step_release(struct stu_ctx *sc);

/* The matrix the head multiplies with: the embedding when tied. */
const struct qmat *eng_student_headmat_(const struct eng_student *s);

struct eng_model *eng_student_new_(const struct eng_config *cfg, enum eng_head_fmt fmt);
int eng_student_qmat_kernel_(struct qmat *q, const int8_t *codes, const float *s8,
                             const uint16_t *s16);
size_t eng_student_qmat_bytes_(const struct qmat *q);

#endif
