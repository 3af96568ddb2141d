/*
 * train/run.h — what the files of one training job share (inside the trainer only): the
 * parsed job (spec.c), the state of a run (pipeline.c owns it), events, evaluation (eval.c) and
 * export (export.c). pipeline.h is the trainer's public contract; this header is not.
 */
#ifndef BD_TRAIN_RUN_H
#define BD_TRAIN_RUN_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/err.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "train/data.h"
#include "train/dist.h"
#include "train/model.h"
#include "train/pipeline.h"
#include "train/step.h"

#define PATH_LEN 4096

enum method { M_FP16_SFT = 0, M_BITNET_SFT, M_BITDISTILL, M_PRETRAIN, M_COUNT };
/* "fp16_sft", "bitnet_sft", "bitdistill", "pretrain" (spec.c) */
extern const char *const trn_method_names[M_COUNT];

/* Settings of one training stage. */
struct stage_cfg {
    double epochs;
    long steps; /* > 0 overrides epochs */
    float lr, min_lr;
    long warmup; /* -1: 5% of the steps */
    float weight_decay, clip;
    int batch, accum, max_len;
    size_t tokens; /* continued pre-training budget */
    char corpus[PATH_LEN];
    struct trn_loss_cfg loss;
    long gamma_warmup; /* steps of linear gamma ramp (0: off) */
};

struct job {
    enum method method;
    char model[PATH_LEN], teacher[PATH_LEN], tokenizer[PATH_LEN];
    char train_file[PATH_LEN], validation_file[PATH_LEN];
    char selection_file[PATH_LEN]; /* optional second eval set (model selection, not report) */
    char heldout[PATH_LEN];        /* pretrain: held-out text for perplexity */
    size_t eval_tokens;            /* pretrain: held-out tokens read (default 65536) */
    struct trn_task task;
    size_t max_train, max_eval;
    uint64_t seed;
    int threads, checkpoint_every, log_every, keep, eval_max_new;
    int subln;         /* bitdistill: insert SubLN (stage 1); false for the ablation */
    int chat_template; /* prompt_format "chat_template" (data.h) */
    int save_cpt;      /* bitdistill: write the stage-2 student as DIR/student-cpt */
    enum eng_head_fmt head;
    struct stage_cfg sft, cpt, dist;
    char sha[65]; /* sha256 of the config text */
    /* "baseline": the served model the student must beat ("activate": "if_better"), evaluated
     * at stage 4 on validation_file: {"id", "path": its GGUF} or {"id", "stored": figure on
     * this same file (accuracy or rougeL)} */
    char baseline_id[128], baseline_path[PATH_LEN];
    double baseline_stored; /* < 0: none */
};

/* An encoded example. */
struct enc {
    int32_t *ids;
    int n, np;
};

struct run {
    const struct trn_run_opts *o;
    struct job job;
    FILE *ev;
    struct eng_tok *tok;
    struct trn_chat_tpl *chat_tpl; /* prompt_format "chat_template": the base's template */
    struct trn_dataset *train, *val, *sel;
    struct enc *tr; /* [train->n] at the stage's max_len */
    int tr_len;     /* max_len tr was encoded at */
    struct enc *va; /* [val->n] with their targets, for validation loss/accuracy */
    int va_len;
    struct trn_corpus *corpus, *heldout;
    struct trn_model *teacher, *student;
    float *m, *v;
    size_t *perm, perm_n;
    long perm_epoch;
    int perm_stage;
    long total_steps; /* optimizer steps run in this process (for --stop-after) */
    json_t *metrics;
    struct trn_dist *dist; /* one rank of several processes (dist.h): rank 0 alone writes */
    char err[ENG_ERR_LEN];
};

/* ---- events (pipeline.c): one JSON object per line on the events stream ---- */

/* Write event o (consumed) to the events stream, if any. */
void trn_emit(struct run *r, json_t *o);
/* A "message" event (and a progress line on stderr). */
void trn_message(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void trn_stage_event(struct run *r, int stage, const char *name, const char *status, long steps);

/* ---- the job config (spec.c) ---- */

/* Read, check (trn_spec_check) and parse the job config at path into *j. ENG_ECONFIG with a
 * message naming the key. */
int trn_job_parse(const char *path, struct job *j, char *err);
/* Everything that can be checked before training: files, shapes, vocabularies, labels, the
 * chat template. Loads r->tok and the datasets. */
int trn_job_validate(struct run *r);

/* ---- evaluation (eval.c) ---- */

/* Stage-4 evaluation of model on validation_file (and selection_file): eval events and
 * r->metrics[who]. */
int trn_evaluate(struct run *r, struct trn_model *model, const char *who);
/* Accuracy of a student GGUF on r->val as the engine classifies it; examples longer than its
 * context are not scored (*skipped). */
int trn_eval_gguf_cls(struct run *r, const char *gguf, double *acc, size_t *n_out, size_t *skipped);
/* The "baseline" of activate if_better: evaluated or stored, as an eval event (never fails). */
void trn_evaluate_baseline(struct run *r);

/* ---- export (export.c) ---- */

/* tokenizer.json of the job (a file, or a directory holding one) into dir. */
int trn_copy_tokenizer(struct run *r, const char *dir);
/* student-hf/ and student.gguf (path into gguf[PATH_LEN]), then the GGUF classifying r->val. */
int trn_export_student(struct run *r, const char *teacher_dir, char *gguf);

#endif
