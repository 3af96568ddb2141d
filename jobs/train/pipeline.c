/*
 * jobs/train/pipeline.c — `bitdistill train`: the job config, the stages of BitDistill and its
 * baselines, events, checkpoints/resume, evaluation and export (pipeline.h has the contract).
 *
 * Determinism: the data order of a stage is a pure function of (seed, stage, epoch), the batch
 * of optimizer step k is the k-th slice of that order, and the math is deterministic at a fixed
 * thread count, so a resumed job (parameters, AdamW moments and step restored) reproduces the
 * uninterrupted loss curve bit for bit.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/chat.h"
#include "engine/classify.h"
#include "engine/err.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "jinja/jinja.h"
#include "jobs/train/backend.h"
#include "jobs/train/ckpt.h"
#include "jobs/train/data.h"
#include "jobs/train/dist.h"
#include "jobs/train/metrics.h"
#include "jobs/train/model.h"
#include "jobs/train/pipeline.h"
#include "jobs/train/step.h"
#include "kernels/blas.h"

#define PATH_LEN 4096

/* trn_run's status for a job paused on SIGUSR1 (a checkpoint was written; --resume continues). */
#define TRN_PAUSED 4

/* Set by the SIGUSR1 handler (trn_cli_train): the one global of the trainer, because a signal
 * handler can reach nothing else. train_stage checkpoints and stops after the current step. */
static volatile sig_atomic_t pause_requested;

static void on_pause_signal(int sig)
{
    (void)sig;
    pause_requested = 1;
}

enum method { M_FP16_SFT = 0, M_BITNET_SFT, M_BITDISTILL, M_PRETRAIN, M_COUNT };
static const char *const method_names[] = {"fp16_sft", "bitnet_sft", "bitdistill", "pretrain"};

/* Settings of one training stage. */
struct stage_cfg {
    double epochs;
    long steps;            /* > 0 overrides epochs */
    float lr, min_lr;
    long warmup;           /* -1: 5% of the steps */
    float weight_decay, clip;
    int batch, accum, max_len;
    size_t tokens;         /* continued pre-training budget */
    char corpus[PATH_LEN];
    struct trn_loss_cfg loss;
    long gamma_warmup;     /* steps of linear gamma ramp (0: off) */
};

struct job {
    enum method method;
    char model[PATH_LEN], teacher[PATH_LEN], tokenizer[PATH_LEN];
    char train_file[PATH_LEN], validation_file[PATH_LEN];
    char selection_file[PATH_LEN]; /* optional second eval set (model selection, not report) */
    char heldout[PATH_LEN]; /* pretrain: held-out text for perplexity */
    size_t eval_tokens;     /* pretrain: held-out tokens read (default 65536) */
    struct trn_task task;
    size_t max_train, max_eval;
    uint64_t seed;
    int threads, checkpoint_every, log_every, keep, eval_max_new;
    int subln;              /* bitdistill: insert SubLN (stage 1); false for the ablation */
    int save_cpt;           /* bitdistill: write the stage-2 student as DIR/student-cpt */
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
    struct trn_dataset *train, *val, *sel;
    struct enc *tr;        /* [train->n] at the stage's max_len */
    int tr_len;            /* max_len tr was encoded at */
    struct enc *va;        /* [val->n] with their targets, for validation loss/accuracy */
    int va_len;
    struct trn_corpus *corpus, *heldout;
    struct trn_model *teacher, *student;
    float *m, *v;
    size_t *perm, perm_n;
    long perm_epoch;
    int perm_stage;
    long total_steps;      /* optimizer steps run in this process (for --stop-after) */
    json_t *metrics;
    struct trn_dist *dist; /* one rank of several processes (dist.h): rank 0 alone writes */
    char err[ENG_ERR_LEN];
};

/* ------------------------------------------------------------------ events */

static void emit(struct run *r, json_t *o)
{
    if (r->ev) {
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (s) {
            fprintf(r->ev, "%s\n", s);
            fflush(r->ev);
            free(s);
        }
    }
    json_decref(o);
}

static void message(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void message(struct run *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (r->o->progress)
        fprintf(stderr, "bitdistill train: %s\n", buf);
    emit(r, json_pack("{s:s,s:s}", "type", "message", "message", buf));
}

static void stage_event(struct run *r, int stage, const char *name, const char *status,
                        long steps)
{
    emit(r, json_pack("{s:s,s:i,s:s,s:s,s:I}", "type", "stage", "stage", stage, "name", name,
                      "status", status, "steps", (json_int_t)steps));
    if (r->o->progress)
        fprintf(stderr, "bitdistill train: stage %d %s %s (%ld steps)\n", stage, name, status,
                steps);
}

/* ------------------------------------------------------------------ config */

static int get_path(json_t *o, const char *k, char *dst, int required, char *err)
{
    json_t *v = json_object_get(o, k);
    if (!v) {
        dst[0] = 0;
        return required ? eng_fail(err, ENG_ECONFIG, "job config: \"%s\" is required", k) : 0;
    }
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= PATH_LEN)
        return eng_fail(err, ENG_ECONFIG, "job config: \"%s\" must be a path string", k);
    snprintf(dst, PATH_LEN, "%s", json_string_value(v));
    return 0;
}

static double num(json_t *o, const char *k, double def)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

static int stage_parse(json_t *top, const char *name, struct stage_cfg *s,
                       const struct stage_cfg *base, char *err)
{
    json_t *o = json_object_get(top, name);
    *s = *base;
    if (!o)
        return 0;
    if (!json_is_object(o))
        return eng_fail(err, ENG_ECONFIG, "job config: \"%s\" must be an object", name);
    s->epochs = num(o, "epochs", s->epochs);
    s->steps = (long)num(o, "steps", (double)s->steps);
    s->lr = (float)num(o, "lr", s->lr);
    s->min_lr = (float)num(o, "min_lr", json_object_get(o, "lr") ? 0.1 * s->lr : s->min_lr);
    s->warmup = (long)num(o, "warmup", (double)s->warmup);
    s->weight_decay = (float)num(o, "weight_decay", s->weight_decay);
    s->clip = (float)num(o, "clip", s->clip);
    s->batch = (int)num(o, "batch", s->batch);
    s->accum = (int)num(o, "grad_accum", s->accum);
    s->max_len = (int)num(o, "max_len", s->max_len);
    s->tokens = (size_t)num(o, "tokens", (double)s->tokens);
    s->loss.lambda = (float)num(o, "lambda", s->loss.lambda);
    s->loss.gamma = (float)num(o, "gamma", s->loss.gamma);
    s->loss.tau = (float)num(o, "tau", s->loss.tau);
    s->loss.split_heads = (int)num(o, "split_heads", s->loss.split_heads);
    s->loss.t_r = (float)num(o, "t_r", s->loss.t_r);
    s->gamma_warmup = (long)num(o, "gamma_warmup", (double)s->gamma_warmup);
    json_t *l = json_object_get(o, "layer");
    if (json_is_integer(l))
        s->loss.layer = (int)json_integer_value(l);
    else if (json_is_string(l) && !strcmp(json_string_value(l), "all"))
        s->loss.layer = -2;
    else if (json_is_string(l) && !strcmp(json_string_value(l), "last"))
        s->loss.layer = -1;
    else if (l)
        return eng_fail(err, ENG_ECONFIG, "job config: %s.layer must be an integer, \"last\" or "
                        "\"all\"", name);
    const char *rel = json_string_value(json_object_get(o, "relation"));
    if (rel && strcmp(rel, "cosine") && strcmp(rel, "scaled"))
        return eng_fail(err, ENG_ECONFIG, "job config: %s.relation must be \"cosine\" or "
                        "\"scaled\"", name);
    if (rel)
        s->loss.rel = strcmp(rel, "cosine") ? TRN_REL_SCALED : TRN_REL_COSINE;
    if (get_path(o, "corpus", s->corpus, 0, err))
        return ENG_ECONFIG;
    if (!s->corpus[0])
        snprintf(s->corpus, sizeof(s->corpus), "%s", base->corpus);
    if (s->batch < 1 || s->accum < 1 || s->max_len < 2 || s->lr < 0 || s->epochs < 0 ||
        s->loss.tau <= 0 || s->loss.split_heads < 1 || s->loss.t_r <= 0)
        return eng_fail(err, ENG_ECONFIG, "job config: %s has a non-positive batch, grad_accum, "
                        "max_len, tau, split_heads or t_r, or a negative lr/epochs", name);
    return 0;
}

static int task_parse(json_t *root, struct trn_task *t, char *err)
{
    json_t *tj = json_object_get(root, "task");
    const char *type = json_is_string(tj) ? json_string_value(tj)
                                          : json_string_value(json_object_get(tj, "type"));
    int rc;
    if (!type)
        return eng_fail(err, ENG_ECONFIG, "job config: \"task\" must name a task type");
    if ((rc = trn_task_defaults(type, t, err)))
        return rc;
    if (!json_is_object(tj))
        return 0;
    const char *tpl = json_string_value(json_object_get(tj, "template"));
    if (tpl)
        snprintf(t->template, sizeof(t->template), "%s", tpl);
    t->max_target = (int)num(tj, "max_target", t->max_target);
    json_t *lb = json_object_get(tj, "labels"), *vb = json_object_get(tj, "verbalizers");
    if (!vb)
        vb = json_object_get(tj, "label_words");
    if (lb || vb) {
        size_t n = json_array_size(lb ? lb : vb);
        if (n < 2 || n > TRN_MAX_LABELS || (lb && vb && json_array_size(vb) != n))
            return eng_fail(err, ENG_ECONFIG, "job config: task.labels/verbalizers must be "
                            "arrays of 2..%d strings of the same length", TRN_MAX_LABELS);
        t->nlabels = (int)n;
        for (size_t i = 0; i < n; i++) {
            const char *l = json_string_value(json_array_get(lb ? lb : vb, i));
            const char *w = json_string_value(json_array_get(vb ? vb : lb, i));
            if (!l || !w)
                return eng_fail(err, ENG_ECONFIG, "job config: task label %zu is not a string",
                                i);
            snprintf(t->labels[i], sizeof(t->labels[i]), "%s", l);
            if (vb)
                snprintf(t->words[i], sizeof(t->words[i]), "%s", w);
            else
                snprintf(t->words[i], sizeof(t->words[i]), " %s", l);
        }
    }
    return 0;
}

static void sha256_hex(const void *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int job_parse(const char *path, struct job *j, char *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    int rc = 0;
    memset(j, 0, sizeof(*j));
    if (!root)
        return eng_fail(err, ENG_ECONFIG, "cannot read job config '%s': %s (line %d)", path,
                        je.text, je.line);
    char *txt = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (txt)
        sha256_hex(txt, strlen(txt), j->sha);
    free(txt);
    const char *m = json_string_value(json_object_get(root, "method"));
    int found = 0;
    for (int i = 0; m && i < M_COUNT; i++)
        if (!strcmp(m, method_names[i])) {
            j->method = (enum method)i;
            found = 1;
        }
    if (!found) {
        rc = eng_fail(err, ENG_ECONFIG, "job config: unknown method '%s' (fp16_sft, bitnet_sft, "
                      "bitdistill, pretrain)", m ? m : "(missing)");
        goto out;
    }
    int pre = j->method == M_PRETRAIN;
    if ((rc = get_path(root, "model", j->model, 1, err)) ||
        (rc = get_path(root, "teacher", j->teacher, 0, err)) ||
        (rc = get_path(root, "tokenizer", j->tokenizer, 0, err)) ||
        (rc = get_path(root, "train_file", j->train_file, !pre, err)) ||
        (rc = get_path(root, "validation_file", j->validation_file, 0, err)) ||
        (rc = get_path(root, "selection_file", j->selection_file, 0, err)) ||
        (rc = get_path(root, "heldout", j->heldout, 0, err)) ||
        (!pre && (rc = task_parse(root, &j->task, err))))
        goto out;
    const char *cf = json_string_value(json_object_get(root, "chat_format"));
    if (json_object_get(root, "chat_format") && (!cf || strcmp(cf, "chatml"))) {
        rc = eng_fail(err, ENG_ECONFIG, "job config: chat_format must be \"chatml\"");
        goto out;
    }
    if (cf && (rc = trn_task_chatml(&j->task, err)))
        goto out;
    if (pre)
        j->task.eos = -1; /* the model's EOS, set by job_validate */
    j->eval_tokens = (size_t)num(root, "eval_tokens", 65536);
    if (!j->tokenizer[0])
        snprintf(j->tokenizer, sizeof(j->tokenizer), "%s", j->model);
    j->max_train = (size_t)num(root, "max_train_examples", 0);
    j->max_eval = (size_t)num(root, "max_eval_examples", 200);
    j->seed = (uint64_t)num(root, "seed", 1);
    j->threads = (int)num(root, "threads", 0);
    j->checkpoint_every = (int)num(root, "checkpoint_every", 0);
    j->log_every = (int)num(root, "log_every", 1);
    j->keep = (int)num(root, "keep_checkpoints", 2);
    j->eval_max_new = (int)num(root, "eval_max_new", 64);
    json_t *bl = json_object_get(root, "baseline");
    j->baseline_stored = json_is_number(json_object_get(bl, "stored"))
                             ? json_number_value(json_object_get(bl, "stored")) : -1.0;
    if (bl && (!json_is_string(json_object_get(bl, "id")) ||
               (j->baseline_stored < 0 && (rc = get_path(bl, "path", j->baseline_path, 1, err))))) {
        rc = rc ? rc : eng_fail(err, ENG_ECONFIG, "job config: baseline needs \"id\" and "
                                "\"path\" or \"stored\"");
        goto out;
    }
    if (bl)
        snprintf(j->baseline_id, sizeof(j->baseline_id), "%s", json_string_value(json_object_get(bl, "id")));
    json_t *sl = json_object_get(root, "subln");
    if (sl && !json_is_boolean(sl)) {
        rc = eng_fail(err, ENG_ECONFIG, "job config: subln must be true or false");
        goto out;
    }
    j->subln = !sl || json_is_true(sl);
    j->save_cpt = json_is_true(json_object_get(root, "save_cpt"));
    const char *head = json_string_value(json_object_get(root, "head"));
    if (head && strcmp(head, "q8") && strcmp(head, "q4")) {
        rc = eng_fail(err, ENG_ECONFIG, "job config: head must be \"q8\" or \"q4\"");
        goto out;
    }
    j->head = head && !strcmp(head, "q4") ? ENG_HEAD_Q4 : ENG_HEAD_Q8;
    int cls = j->task.kind == TRN_TASK_CLS;
    struct stage_cfg base = {
        .epochs = num(root, "epochs", 1.0), .steps = (long)num(root, "steps", 0),
        .lr = (float)num(root, "lr", 1e-4), .warmup = (long)num(root, "warmup", -1),
        .weight_decay = (float)num(root, "weight_decay", 0.01),
        .clip = (float)num(root, "clip", 1.0), .batch = (int)num(root, "batch", 32),
        .accum = (int)num(root, "grad_accum", 1), .max_len = (int)num(root, "max_len", 512),
        .loss = {.lambda = cls ? 10.0f : 1.0f, .gamma = cls ? 1e5f : 1e3f, .tau = 5.0f,
                 .layer = -1, .split_heads = 1, .rel = TRN_REL_COSINE, .t_r = 1.0f},
    };
    base.min_lr = (float)num(root, "min_lr", 0.1 * base.lr);
    if ((rc = stage_parse(root, "teacher_sft", &j->sft, &base, err)) ||
        (rc = stage_parse(root, pre ? "pretrain" : "continue_pretrain", &j->cpt, &base, err)) ||
        (rc = stage_parse(root, "distill", &j->dist, &base, err)))
        goto out;
    double lrm = num(root, "lr_multiplier", 1.0);
    if (lrm <= 0) {
        rc = eng_fail(err, ENG_ECONFIG, "job config: lr_multiplier must be positive");
        goto out;
    }
    struct stage_cfg *stages[] = {&j->sft, &j->cpt, &j->dist};
    for (int i = 0; i < 3; i++) {
        stages[i]->lr *= (float)lrm;
        stages[i]->min_lr *= (float)lrm;
    }
    if (!pre && !json_object_get(json_object_get(root, "continue_pretrain"), "tokens"))
        j->cpt.tokens = 0;
    if (pre && !j->cpt.corpus[0])
        rc = eng_fail(err, ENG_ECONFIG, "job config: method pretrain needs pretrain.corpus");
out:
    json_decref(root);
    return rc;
}

/* Everything that can be checked before training: files, shapes, vocabularies, labels. */
static int job_validate(struct run *r)
{
    struct job *j = &r->job;
    struct eng_config mc, tc;
    int rc;
    char *err = r->err;
    if ((rc = eng_config_load(j->model, &mc, err)))
        return rc;
    if (j->teacher[0]) {
        if ((rc = eng_config_load(j->teacher, &tc, err)))
            return rc;
        if (tc.vocab != mc.vocab)
            return eng_fail(err, ENG_ECONFIG, "incompatible teacher/student vocabularies: "
                            "teacher '%s' has %d tokens, model '%s' has %d", j->teacher, tc.vocab,
                            j->model, mc.vocab);
        if (j->method == M_BITDISTILL && j->dist.loss.gamma > 0 && tc.layers != mc.layers &&
            j->dist.loss.layer == -2)
            return eng_fail(err, ENG_ECONFIG, "relation distillation over all layers needs the "
                            "same depth (teacher %d, student %d)", tc.layers, mc.layers);
    }
    if ((rc = eng_tok_load_json(j->tokenizer, &r->tok, err)))
        return rc;
    if (eng_tok_vocab_size(r->tok) > mc.vocab)
        return eng_fail(err, ENG_ECONFIG, "incompatible tokenizer: %d tokens but the model has "
                        "%d rows", eng_tok_vocab_size(r->tok), mc.vocab);
    if (j->method == M_PRETRAIN) {
        struct stat st;
        j->task.eos = mc.eos_id;
        if (stat(j->cpt.corpus, &st))
            return eng_fail(err, ENG_ECONFIG, "pretrain.corpus '%s' cannot be read: %s",
                            j->cpt.corpus, strerror(errno));
        if (j->heldout[0] && stat(j->heldout, &st))
            return eng_fail(err, ENG_ECONFIG, "heldout '%s' cannot be read: %s", j->heldout,
                            strerror(errno));
        return 0;
    }
    if ((rc = trn_task_resolve(&j->task, r->tok, mc.eos_id, err)))
        return rc;
    if ((rc = trn_dataset_load(j->train_file, &j->task, j->max_train, &r->train, err)))
        return rc;
    if (j->validation_file[0] &&
        (rc = trn_dataset_load(j->validation_file, &j->task, j->max_eval, &r->val, err)))
        return rc;
    if (j->selection_file[0] &&
        (rc = trn_dataset_load(j->selection_file, &j->task, j->max_eval, &r->sel, err)))
        return rc;
    if (j->method == M_BITDISTILL && j->cpt.tokens > 0) {
        struct stat st;
        if (!j->cpt.corpus[0] || stat(j->cpt.corpus, &st))
            return eng_fail(err, ENG_ECONFIG, "continue_pretrain.tokens is set but the corpus "
                            "'%s' cannot be read", j->cpt.corpus);
    }
    return 0;
}

/* ------------------------------------------------------------------ data */

static void free_set(struct enc **e, const struct trn_dataset *d)
{
    for (size_t i = 0; *e && i < d->n; i++)
        free((*e)[i].ids);
    free(*e);
    *e = NULL;
}

static void free_enc(struct run *r)
{
    if (r->train)
        free_set(&r->tr, r->train);
    if (r->val)
        free_set(&r->va, r->val);
}

/* Encode dataset d (from file) with targets at max_len into *e (cached while *len matches). */
static int encode_set(struct run *r, const struct trn_dataset *d, const char *file, int max_len,
                      struct enc **e, int *len)
{
    if (*e && *len == max_len)
        return 0;
    free_set(e, d);
    *e = calloc(d->n, sizeof(**e));
    if (!*e)
        return eng_fail(r->err, ENG_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n; i++) {
        int rc = trn_encode(&r->job.task, r->tok, &d->ex[i], max_len, 1, &(*e)[i].ids,
                            &(*e)[i].n, &(*e)[i].np);
        if (rc)
            return eng_fail(r->err, rc, "%s: example %zu cannot be encoded in %d tokens (%s)",
                            file, i + 1, max_len, eng_strerror(rc));
    }
    *len = max_len;
    return 0;
}

static int encode_train(struct run *r, int max_len)
{
    return encode_set(r, r->train, r->job.train_file, max_len, &r->tr, &r->tr_len);
}

/* Fill b's rows with examples e[0..B) (prompt tokens, targets on the answer, zero padding);
 * returns the real tokens. */
static size_t fill_batch(const struct enc *const *e, int B, struct trn_batch *b)
{
    int T = 1;
    size_t ntok = 0;
    for (int i = 0; i < B; i++)
        T = e[i]->n > T ? e[i]->n : T;
    for (int i = 0; i < B; i++) {
        for (int t = 0; t < T; t++) {
            b->tok[i * T + t] = t < e[i]->n ? e[i]->ids[t] : 0;
            b->target[i * T + t] =
                t >= e[i]->np - 1 && t < e[i]->n - 1 ? e[i]->ids[t + 1] : -1;
        }
        b->len[i] = e[i]->n;
        ntok += (size_t)e[i]->n;
    }
    b->B = B;
    b->T = T;
    return ntok;
}

/* Example index of the i-th example drawn in stage `stage` (epochs of seeded permutations). */
static size_t draw_n(struct run *r, int stage, size_t i, size_t n)
{
    long epoch = (long)(i / n);
    if (!r->perm || r->perm_epoch != epoch || r->perm_stage != stage || r->perm_n != n) {
        if (r->perm_n != n) {
            free(r->perm);
            r->perm = malloc(n * sizeof(size_t));
            r->perm_n = n;
        }
        trn_shuffle(r->perm, n, r->job.seed * 1000003ULL + (uint64_t)stage * 7919ULL +
                    (uint64_t)epoch);
        r->perm_epoch = epoch;
        r->perm_stage = stage;
    }
    return r->perm[i % n];
}

static size_t draw(struct run *r, int stage, size_t i) { return draw_n(r, stage, i, r->train->n); }

/* Fill b (arrays of B*maxT) with micro-batch k of the stage: task examples or corpus rows. */
static size_t make_batch(struct run *r, int stage, const struct stage_cfg *s, long k,
                         struct trn_batch *b)
{
    int B = s->batch, T = 1;
    size_t ntok = 0;
    if (stage == 2) {
        T = s->max_len;
        size_t span = r->corpus->ntok - (size_t)T - 1, nwin = (r->corpus->ntok - 1) / (size_t)T;
        for (int i = 0; i < B; i++) {
            size_t row = (size_t)k * B + i, start = (row * (size_t)T) % (span ? span : 1);
            if (r->job.method == M_PRETRAIN) /* epochs of shuffled windows of T+1 tokens */
                start = draw_n(r, stage, row, nwin) * (size_t)T;
            for (int t = 0; t < T; t++) {
                b->tok[i * T + t] = r->corpus->tok[start + t];
                b->target[i * T + t] = r->corpus->tok[start + t + 1];
            }
            b->len[i] = T;
            ntok += (size_t)T;
        }
        b->B = B;
        b->T = T;
        return ntok;
    }
    const struct enc *rows[B];
    for (int i = 0; i < B; i++)
        rows[i] = &r->tr[draw(r, stage, (size_t)k * B + i)];
    return fill_batch(rows, B, b);
}

/* Validation CE and token accuracy of model on the first `limit` validation examples (0: all),
 * in batches of the stage's size (b: the stage's batch buffers). Adds valid_loss and
 * valid_mean_token_accuracy (or the full_ pair when full) to m. */
static int valid_metrics(struct run *r, struct trn_model *model, const struct stage_cfg *s,
                         struct trn_batch *b, size_t limit, int full, json_t *m)
{
    int rc;
    size_t n = limit && limit < r->val->n ? limit : r->val->n, hits = 0, rows = 0;
    double ce = 0.0;
    if ((rc = encode_set(r, r->val, r->job.validation_file, s->max_len, &r->va, &r->va_len)))
        return rc;
    for (size_t i = 0; i < n; i += (size_t)s->batch) {
        int nb = n - i < (size_t)s->batch ? (int)(n - i) : s->batch;
        const struct enc *e[nb];
        double c;
        size_t h, k;
        for (int j = 0; j < nb; j++)
            e[j] = &r->va[i + (size_t)j];
        fill_batch(e, nb, b);
        if ((rc = trn_eval_batch(model, b, &c, &h, &k, r->err)))
            return rc;
        ce += c;
        hits += h;
        rows += k;
    }
    json_object_set_new(m, full ? "full_valid_loss" : "valid_loss",
                        json_real(rows ? ce / (double)rows : 0.0));
    json_object_set_new(m, full ? "full_valid_mean_token_accuracy" : "valid_mean_token_accuracy",
                        json_real(rows ? (double)hits / (double)rows : 0.0));
    return 0;
}

/* ------------------------------------------------------------------ stages */

static long stage_steps(struct run *r, int stage, const struct stage_cfg *s)
{
    if (s->steps > 0)
        return s->steps;
    double per = (double)s->batch * s->accum;
    double n = stage != 2       ? s->epochs * (double)r->train->n
               : s->tokens > 0 ? (double)s->tokens / s->max_len
                               : s->epochs * (double)(r->corpus->ntok - 1) / s->max_len;
    long k = (long)ceil(n / per);
    return k > 0 ? k : 1;
}

static json_t *state_json(struct run *r, int stage, long step, long steps, int accum,
                          double tokens)
{
    return json_pack("{s:i,s:I,s:I,s:f,s:s,s:I,s:{s:I,s:I},s:s}", "stage", stage, "step",
                     (json_int_t)step, "steps", (json_int_t)steps, "tokens", tokens, "job_sha256",
                     r->job.sha, "seed", (json_int_t)r->job.seed, "data", "micro_batch",
                     (json_int_t)(step * accum), "epoch_seed_base",
                     (json_int_t)(r->job.seed * 1000003ULL), "method",
                     method_names[r->job.method]);
}

/* pretrain: held-out loss and perplexity of model (host copy), as an eval event and metric. */
static int eval_heldout(struct run *r, struct trn_model *model, long step, double tokens)
{
    if (!r->heldout)
        return 0;
    int T = r->job.cpt.max_len < trn_model_config(model)->max_pos ? r->job.cpt.max_len
                                                                    : trn_model_config(model)->max_pos;
    double ce = 0;
    size_t n = 0;
    int rc = trn_eval_corpus(model, r->heldout->tok, r->heldout->ntok, T, 8, &ce, &n, r->err);
    if (rc)
        return rc;
    json_t *res = json_pack("{s:s,s:i,s:s,s:I,s:I,s:f,s:f,s:I}", "type", "eval", "stage", 2,
                            "model", "pretrain", "step", (json_int_t)step, "tokens",
                            (json_int_t)tokens, "loss", ce, "perplexity", exp(ce), "n",
                            (json_int_t)n);
    json_t *copy = json_deep_copy(res);
    json_object_del(copy, "type");
    json_object_del(copy, "stage");
    json_object_set_new(r->metrics, "pretrain", copy);
    emit(r, res);
    return 0;
}

/* The metrics of a checkpoint at step `step` (OpenAI's checkpoint metrics): the step's CE as
 * train_loss and its token accuracy (CPU only), and for the task stages with a validation set,
 * CE and token accuracy on the first batch of validation examples, and at the stage's end on
 * all of them (full_); with a GPU (host forward passes) only at the stage's end. New reference,
 * or NULL with r->err set. */
static json_t *ckpt_metrics(struct run *r, int stage, struct trn_model *model,
                            const struct stage_cfg *s, struct trn_batch *b, long step, int end,
                            const struct trn_losses *L, int gpu)
{
    json_t *m = json_pack("{s:I,s:f}", "step", (json_int_t)step, "train_loss", L->ce);
    if (!gpu)
        json_object_set_new(m, "train_mean_token_accuracy", json_real(L->acc));
    /* on the CUDA path they run on the host copy: at the stage's end only, as evaluation does */
    if (stage != 2 && r->val && r->val->n && (!gpu || end) &&
        (valid_metrics(r, model, s, b, (size_t)s->batch, 0, m) ||
         (end && valid_metrics(r, model, s, b, 0, 1, m)))) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* Train `model` for stage `stage`; start_step/tokens from a checkpoint (0 for a fresh stage).
 * Returns 0, a status, 3 (--stop-after) or TRN_PAUSED (SIGUSR1: checkpointed and stopped). */
static int train_stage(struct run *r, int stage, const char *name, struct trn_model *model,
                       struct trn_model *teacher, const struct stage_cfg *s, long start_step,
                       double tokens)
{
    long steps = stage_steps(r, stage, s);
    size_t np = trn_model_nparams(model), cap = (size_t)s->batch * (size_t)s->max_len;
    struct trn_adamw_cfg ac = {.lr = s->lr, .min_lr = s->min_lr, .beta1 = 0.9f, .beta2 = 0.999f,
                               .eps = 1e-8f, .weight_decay = s->weight_decay, .clip = s->clip,
                               .warmup = s->warmup >= 0 ? s->warmup : steps / 20, .total = steps};
    struct trn_batch b = {0};
    struct trn_cuda_dp *gpu = NULL; /* --device cuda:...: the stage runs on GPUs (backend.h) */
    int rc = 0;
    b.tok = malloc(cap * sizeof(int32_t));
    b.target = malloc(cap * sizeof(int32_t));
    b.len = malloc((size_t)s->batch * sizeof(int32_t));
    if (!b.tok || !b.target || !b.len) {
        rc = eng_fail(r->err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    if (stage != 2 && (rc = encode_train(r, s->max_len)))
        goto out;
    if (start_step == 0) {
        memset(r->m, 0, np * sizeof(float));
        memset(r->v, 0, np * sizeof(float));
    }
    int devs[64], ndev = r->o->device ? trn_cuda_parse_devices(r->o->device, devs, 64) : 0;
    if (ndev > 0 &&
        ((rc = trn_cuda_dp_create(devs, ndev, model, teacher, !getenv("BITDISTILL_CUDA_FP32"),
                                  r->dist, &gpu, r->err)) ||
         (start_step && (rc = trn_cuda_dp_set_moments(gpu, r->m, r->v, r->err)))))
        goto out;
    stage_event(r, stage, name, start_step ? "resume" : "start", steps);
    struct timespec t0, t1;
    for (long k = start_step; k < steps; k++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct trn_losses acc = {0}, L;
        struct trn_loss_cfg lc = s->loss;
        if (stage == 3 && s->gamma_warmup > 0 && k < s->gamma_warmup)
            lc.gamma *= (float)(k + 1) / (float)s->gamma_warmup;
        size_t ntok = 0;
        if (gpu)
            trn_cuda_dp_zero_grad(gpu);
        else
            trn_model_zero_grad(model);
        for (int a = 0; a < s->accum; a++) {
            ntok += make_batch(r, stage, s, k * s->accum + a, &b);
            if ((rc = gpu ? trn_cuda_dp_step_losses(gpu, &b, &lc, 1.0f / (float)s->accum, &L,
                                                    r->err)
                          : trn_step_losses(model, teacher, &b, &lc, 1, 1.0f / (float)s->accum,
                                            &L, r->err)))
                goto out;
            acc.ce += L.ce / s->accum;
            acc.ld += L.ld / s->accum;
            acc.ad += L.ad / s->accum;
            acc.loss += L.loss / s->accum;
            acc.acc += L.acc / s->accum;
        }
        float lr = trn_lr_at(&ac, k);
        double gn = 0;
        if (gpu && (rc = trn_cuda_dp_adamw_update(gpu, k + 1, lr, &ac, &gn, r->err)))
            goto out;
        if (!gpu)
            trn_adamw_update(model, r->m, r->v, k + 1, lr, &ac, &gn);
        tokens += (double)ntok;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (!isfinite(acc.loss)) {
            rc = eng_fail(r->err, ENG_ERANGE, "stage %d step %ld: loss is not finite (ce %g, ld "
                          "%g, ad %g); lower the lr or gamma", stage, k + 1, acc.ce, acc.ld,
                          acc.ad);
            goto out;
        }
        if ((k + 1) % (r->job.log_every > 0 ? r->job.log_every : 1) == 0 || k + 1 == steps) {
            json_t *ev = json_pack("{s:s,s:i,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
                                   "type", "step", "stage", stage, "step", (json_int_t)(k + 1),
                                   "steps", (json_int_t)steps, "tokens", (json_int_t)tokens, "ce",
                                   acc.ce, "ld", acc.ld, "ad", acc.ad, "loss", acc.loss, "lr",
                                   (double)lr, "grad_norm", gn, "tokens_per_s",
                                   dt > 0 ? (double)ntok / dt : 0.0, "gamma",
                                   teacher ? (double)lc.gamma : 0.0);
            if (!gpu) /* token accuracy is computed on the CPU path only */
                json_object_set_new(ev, "acc", json_real(acc.acc));
            emit(r, ev);
        }
        if (r->o->progress && isatty(2))
            fprintf(stderr, "\r[stage %d %s] step %ld/%ld loss %.4f ce %.4f ld %.4f ad %.4g "
                    "lr %.2e %.0f tok/s   ", stage, name, k + 1, steps, acc.loss, acc.ce, acc.ld,
                    acc.ad, (double)lr, dt > 0 ? (double)ntok / dt : 0.0);
        int end = k + 1 == steps;
        /* a pause is honoured by a single process only (ranks of a launcher cannot agree) */
        int pause = pause_requested && !r->dist;
        if ((end || pause ||
             (r->job.checkpoint_every > 0 && (k + 1) % r->job.checkpoint_every == 0)) &&
            trn_dist_rank(r->dist) == 0) {
            char path[PATH_LEN];
            if (gpu && (rc = trn_cuda_dp_pull(gpu, trn_model_params(model), r->m, r->v,
                                              r->err)))
                goto out;
            json_t *st = state_json(r, stage, k + 1, steps, s->accum, tokens);
            rc = trn_ckpt_save(r->o->out, stage, k + 1, st, trn_model_params(model), r->m, r->v,
                               np, r->job.keep, path, r->err);
            json_decref(st);
            json_t *cm = rc ? NULL : ckpt_metrics(r, stage, model, s, &b, k + 1, end, &acc,
                                                  gpu != NULL);
            if (rc || (rc = cm ? 0 : ENG_EIO))
                goto out;
            emit(r, json_pack("{s:s,s:i,s:I,s:s,s:o}", "type", "checkpoint", "stage", stage,
                              "step", (json_int_t)(k + 1), "path", path, "metrics", cm));
            if (r->job.method == M_PRETRAIN && (rc = eval_heldout(r, model, k + 1, tokens)))
                goto out;
        }
        if (pause) {
            emit(r, json_pack("{s:s,s:i,s:I,s:I}", "type", "paused", "stage", stage, "step",
                              (json_int_t)(k + 1), "steps", (json_int_t)steps));
            message(r, "paused at stage %d step %ld: checkpoint written, --resume continues",
                    stage, k + 1);
            rc = TRN_PAUSED;
            goto out;
        }
        if (r->o->stop_after > 0 && ++r->total_steps >= r->o->stop_after) {
            message(r, "stopping after %ld optimizer steps (--stop-after)", r->total_steps);
            rc = 3;
            goto out;
        }
    }
    if (r->o->progress && isatty(2))
        fprintf(stderr, "\n");
    stage_event(r, stage, name, "end", steps);
out:
    if (gpu && !rc)
        rc = trn_cuda_dp_pull(gpu, trn_model_params(model), r->m, r->v, r->err);
    trn_cuda_dp_free(gpu);
    free(b.tok);
    free(b.target);
    free(b.len);
    return rc;
}

/* ------------------------------------------------------------------ evaluation */

/* Accuracy of model (its quant setting) on the validation set: argmax over label tokens. */
static int eval_cls(struct run *r, struct trn_model *model, double *acc, size_t *n_out)
{
    const struct trn_task *t = &r->job.task;
    int max_len = trn_model_config(model)->max_pos, EB = 8, rc = 0;
    size_t n = r->val->n, correct = 0;
    int32_t *tok = malloc((size_t)EB * max_len * sizeof(int32_t));
    struct enc e[8] = {{0}};
    if (!tok)
        return eng_fail(r->err, ENG_ENOMEM, "out of memory");
    int ml = r->job.dist.max_len < max_len ? r->job.dist.max_len : max_len;
    for (size_t i = 0; i < n && !rc; i += EB) {
        int nb = (int)(n - i < (size_t)EB ? n - i : (size_t)EB), T = 1;
        for (int k = 0; k < nb && !rc; k++) {
            rc = trn_encode(t, r->tok, &r->val->ex[i + k], ml - 1, 0, &e[k].ids, &e[k].n, &e[k].np);
            T = e[k].n > T ? e[k].n : T;
        }
        for (int k = 0; k < nb && !rc; k++)
            for (int p = 0; p < T; p++)
                tok[k * T + p] = p < e[k].n ? e[k].ids[p] : 0;
        if (!rc && (rc = trn_model_forward(model, tok, nb, T)))
            eng_fail(r->err, rc, "eval: %s", trn_model_errmsg(model));
        for (int k = 0; k < nb && !rc; k++) {
            const float *lg = trn_model_logits(model) +
                              ((size_t)k * T + e[k].n - 1) * trn_model_config(model)->vocab;
            int best = 0;
            for (int l = 1; l < t->nlabels; l++)
                if (lg[t->label_tok[l]] > lg[t->label_tok[best]])
                    best = l;
            correct += best == r->val->ex[i + k].label;
        }
        for (int k = 0; k < nb; k++) {
            free(e[k].ids);
            e[k].ids = NULL;
        }
    }
    free(tok);
    *acc = n ? (double)correct / (double)n : 0.0;
    *n_out = n;
    return rc;
}

/* Greedy summaries of the validation set by engine model m (borrowed; tok encodes and decodes,
 * eos ends a summary) and their ROUGE/BLEU into res. */
static int eval_sum_engine(struct run *r, struct eng_model *m, const struct eng_tok *tok,
                           int32_t eos, json_t *res)
{
    const struct trn_task *t = &r->job.task;
    int max_pos = eng_model_config(m)->max_pos, rc = 0;
    int mn = r->job.eval_max_new, ml = r->job.dist.max_len < max_pos ? r->job.dist.max_len : max_pos;
    int th = r->o->threads > 0 ? r->o->threads : (r->job.threads > 0 ? r->job.threads : 1);
    struct trn_rouge sum = {0};
    struct trn_bleu_stats bs = {0};
    size_t n = r->val->n;
    int32_t *gen = malloc(((size_t)mn + 1) * sizeof(int32_t));
    if (!gen)
        return eng_fail(r->err, ENG_ENOMEM, "out of memory");
    eng_model_set_threads(m, th);
    for (size_t i = 0; i < n && !rc; i++) {
        struct enc e = {0};
        struct eng_ctx *ctx = NULL;
        int room = ml - mn > 8 ? ml - mn : 8, g = 0;
        if ((rc = trn_encode(t, tok, &r->val->ex[i], room, 0, &e.ids, &e.n, &e.np)))
            break;
        if ((rc = eng_ctx_create(m, e.n + mn, &ctx))) {
            eng_fail(r->err, rc, "eval: cannot make a context of %d tokens", e.n + mn);
        } else if ((g = eng_generate_greedy(ctx, e.ids, e.n, mn, eos, gen)) < 0) {
            rc = eng_fail(r->err, ENG_EINVAL, "eval: %s", eng_ctx_errmsg(ctx));
        }
        eng_ctx_free(ctx);
        free(e.ids);
        char *txt = NULL;
        size_t tl = 0;
        if (!rc && eng_tok_decode(tok, gen, (size_t)g, 1, &txt, &tl) == 0) {
            struct trn_rouge one;
            trn_rouge_score(txt, r->val->ex[i].target, &one);
            sum.r1 += one.r1;
            sum.r2 += one.r2;
            sum.rl += one.rl;
            sum.rlsum += one.rlsum;
            trn_bleu_add(&bs, txt, r->val->ex[i].target);
        }
        free(txt);
    }
    double d = n ? (double)n : 1.0;
    json_object_set_new(res, "rouge1", json_real(sum.r1 / d));
    json_object_set_new(res, "rouge2", json_real(sum.r2 / d));
    json_object_set_new(res, "rougeL", json_real(sum.rl / d));
    json_object_set_new(res, "rougeLsum", json_real(sum.rlsum / d));
    json_object_set_new(res, "bleu", json_real(trn_bleu_score(&bs, 0)));
    free(gen);
    return rc;
}

/* Greedy summaries and ROUGE/BLEU, decoded by the engine with a KV cache: the engine reads the
 * parameters in place (the ternary student converted exactly as for export, with its q8/q4
 * head), so the summaries are the ones the served model would write. */
static int eval_sum(struct run *r, struct trn_model *model, json_t *res)
{
    struct eng_model *fp = NULL, *stu = NULL;
    int rc;
    if ((rc = trn_model_engine(model, &fp, r->err)) ||
        (trn_model_quant(model) && (rc = eng_student_from_fp(fp, r->job.head, &stu, r->err))))
        goto out;
    rc = eval_sum_engine(r, stu ? stu : fp, r->tok, r->job.task.eos, res);
out:
    eng_model_free(stu);
    eng_model_free(fp);
    return rc;
}

static int evaluate_on(struct run *r, struct trn_model *model, const char *who, int selection)
{
    if (!r->val)
        return 0;
    json_t *res = json_pack("{s:s,s:i,s:s,s:s}", "type", "eval", "stage", 4, "model", who,
                            "split", selection ? "selection" : "validation");
    int rc;
    if (r->job.task.kind == TRN_TASK_CLS) {
        double acc = 0;
        size_t n = 0;
        rc = eval_cls(r, model, &acc, &n);
        json_object_set_new(res, "accuracy", json_real(acc));
    } else {
        rc = eval_sum(r, model, res);
    }
    json_object_set_new(res, "n", json_integer((json_int_t)r->val->n));
    json_t *copy = json_deep_copy(res);
    json_object_del(copy, "type");
    json_object_del(copy, "stage");
    char key[64];
    snprintf(key, sizeof(key), "%s%s", who, selection ? "_selection" : "");
    json_object_set_new(r->metrics, key, copy);
    emit(r, res);
    return rc;
}

/* Evaluate on validation_file, and on selection_file when given (events with "split"). */
static int evaluate(struct run *r, struct trn_model *model, const char *who)
{
    int rc = evaluate_on(r, model, who, 0);
    if (!rc && r->sel) {
        struct trn_dataset *val = r->val;
        r->val = r->sel;
        rc = evaluate_on(r, model, who, 1);
        r->val = val;
    }
    return rc;
}

/* ------------------------------------------------------------------ export */

int trn_copy_file(const char *from, const char *to, char *err)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = 0;
    if (!a || !b)
        rc = eng_fail(err, ENG_EIO, "cannot copy '%s' to '%s': %s", from, to, strerror(errno));
    while (!rc && (n = fread(buf, 1, sizeof(buf), a)) > 0)
        if (fwrite(buf, 1, n, b) != n)
            rc = eng_fail(err, ENG_EIO, "cannot write '%s'", to);
    if (a)
        fclose(a);
    if (b && fclose(b) && !rc)
        rc = eng_fail(err, ENG_EIO, "cannot write '%s'", to);
    return rc;
}

/* tokenizer.json of the job (a file, or a directory holding one) into dir. */
static int copy_tokenizer(struct run *r, const char *dir)
{
    char from[PATH_LEN + 32], to[PATH_LEN + 32];
    struct stat st;
    if (!stat(r->job.tokenizer, &st) && S_ISDIR(st.st_mode))
        snprintf(from, sizeof(from), "%s/tokenizer.json", r->job.tokenizer);
    else
        snprintf(from, sizeof(from), "%s", r->job.tokenizer);
    snprintf(to, sizeof(to), "%s/tokenizer.json", dir);
    return trn_copy_file(from, to, r->err);
}

static void file_sha256(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    unsigned char d[32], buf[65536];
    unsigned int dl = 0;
    size_t n;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    snprintf(hex, 65, "unknown");
    if (!f || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    if (EVP_DigestFinal_ex(md, d, &dl) == 1)
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
out:
    if (f)
        fclose(f);
    EVP_MD_CTX_free(md);
}

/* Accuracy of the student file `gguf` on the validation set, as the engine serves it: loaded by
 * eng_student_load (its own tokenizer when it has one) and classifying with the task's label
 * words (only {text} templates in the engine: others are filled here and passed whole).
 * Examples longer than its context are not scored (*skipped). */
static int eval_gguf_cls(struct run *r, const char *gguf, double *acc, size_t *n_out,
                         size_t *skipped)
{
    struct eng_model *back = NULL;
    struct eng_tok *btok = NULL;
    struct eng_classifier *cl = NULL;
    char *words[TRN_MAX_LABELS];
    size_t correct = 0, n = r->val->n;
    int rc;
    *skipped = 0;
    for (int i = 0; i < r->job.task.nlabels; i++)
        words[i] = r->job.task.words[i];
    if ((rc = eng_student_load(gguf, &back, &btok, NULL, r->err)))
        goto out;
    rc = eng_classifier_create(back, btok ? btok : r->tok, "{text}",
                               (const char *const *)words, r->job.task.nlabels, &cl, r->err);
    for (size_t i = 0; i < n && !rc; i++) {
        const struct trn_example *e = &r->val->ex[i];
        size_t cap = strlen(r->job.task.template) + strlen(e->text) +
                     (e->text_b ? strlen(e->text_b) : 0) + 1;
        char *p = malloc(cap), *o = p;
        float probs[TRN_MAX_LABELS];
        int best = -1;
        if (!p) {
            rc = ENG_ENOMEM;
            break;
        }
        for (const char *s = r->job.task.template; *s;) {
            if (!strncmp(s, "{text_b}", 8)) {
                o += sprintf(o, "%s", e->text_b ? e->text_b : "");
                s += 8;
            } else if (!strncmp(s, "{text}", 6)) {
                o += sprintf(o, "%s", e->text);
                s += 6;
            } else {
                *o++ = *s++;
            }
        }
        *o = 0;
        rc = eng_classify(cl, p, probs, &best, r->err);
        free(p);
        if (rc == ENG_ERANGE) { /* longer than the model's context: not scored */
            rc = 0;
            (*skipped)++;
            continue;
        }
        correct += !rc && best == e->label;
    }
    eng_classifier_free(cl);
    n -= *skipped;
    *acc = n ? (double)correct / (double)n : 0.0;
    *n_out = n;
out:
    eng_model_free(back);
    eng_tok_free(btok);
    return rc;
}

/* student-hf/ (latent weights + SubLN + tokenizer), then student.gguf through the engine's
 * student writer, then the GGUF loaded back by the engine and classifying the validation set. */
static int export_student(struct run *r, const char *teacher_dir, char *gguf)
{
    char hf[PATH_LEN + 32], tsha[65] = "";
    struct eng_model *fp = NULL, *stu = NULL;
    struct eng_student_meta meta = {0};
    char *labels[TRN_MAX_LABELS], *words[TRN_MAX_LABELS];
    int rc;
    snprintf(hf, sizeof(hf), "%s/student-hf", r->o->out);
    snprintf(gguf, PATH_LEN, "%s/student.gguf", r->o->out);
    if ((rc = trn_model_save_hf(r->student, hf, r->err)) || (rc = copy_tokenizer(r, hf)))
        return rc;
    if (teacher_dir) {
        char p[PATH_LEN + 128];
        snprintf(p, sizeof(p), "%s/model.safetensors", teacher_dir);
        file_sha256(p, tsha);
    }
    if ((rc = eng_model_load_hf(hf, &fp, r->err)) ||
        (rc = eng_student_from_fp(fp, r->job.head, &stu, r->err)))
        goto out;
    for (int i = 0; i < r->job.task.nlabels; i++) {
        labels[i] = r->job.task.labels[i];
        words[i] = r->job.task.words[i];
    }
    char *ev = json_dumps(r->metrics, JSON_COMPACT | JSON_SORT_KEYS);
    meta.template = r->job.task.template; /* a summarizer is served by its template too */
    meta.nlabels = r->job.task.kind == TRN_TASK_CLS ? r->job.task.nlabels : 0;
    meta.labels = labels;
    meta.label_words = words;
    meta.teacher_sha256 = tsha[0] ? tsha : NULL;
    meta.job_id = r->job.sha;
    meta.eval_json = ev;
    /* the base model's chat template travels with the student (engine/chat.h) */
    struct stat tst;
    if (!stat(r->job.tokenizer, &tst) && S_ISDIR(tst.st_mode) &&
        (rc = eng_chat_template_read(r->job.tokenizer, &meta.chat_template, r->err))) {
        free(ev);
        goto out;
    }
    if (meta.chat_template) {
        /* a template the server could not render would keep the student from loading */
        struct jinja_tpl *jt = NULL;
        char jerr[JINJA_ERR_LEN];
        if (jinja_parse(meta.chat_template, strlen(meta.chat_template), &jt, jerr)) {
            fprintf(stderr, "bitdistill train: the chat template is left out of the student: "
                    "%s\n", jerr);
            free(meta.chat_template);
            meta.chat_template = NULL;
        }
        jinja_free(jt);
    }
    rc = eng_student_save(stu, r->tok, &meta, gguf, r->err);
    free(meta.chat_template);
    free(ev);
    if (rc)
        goto out;
    /* The engine reads it back and classifies with it. */
    if (r->job.task.kind == TRN_TASK_CLS && r->val) {
        double acc = 0;
        size_t n = 0, skipped = 0;
        if ((rc = eval_gguf_cls(r, gguf, &acc, &n, &skipped)))
            goto out;
        emit(r, json_pack("{s:s,s:i,s:s,s:f,s:I,s:I}", "type", "eval", "stage", 4, "model",
                          "student_gguf", "accuracy", acc, "n", (json_int_t)n, "skipped",
                          (json_int_t)skipped));
        json_object_set_new(r->metrics, "student_gguf",
                            json_pack("{s:f,s:I,s:I}", "accuracy", acc, "n", (json_int_t)n,
                                      "skipped", (json_int_t)skipped));
    }
out:
    eng_model_free(stu);
    eng_model_free(fp);
    return rc;
}

/*
 * "baseline" (activate if_better): the served model's figure on this validation set, measured as
 * the student's (the engine, the task's template and label words; greedy summaries) or taken as
 * stored when the daemon has one for this same file. An eval event with "model": "baseline"
 * and metrics["baseline"]; a baseline that cannot be evaluated is reported ("error") and does not
 * fail the job (the daemon then keeps the active model).
 */
static void evaluate_baseline(struct run *r)
{
    const struct job *j = &r->job;
    int cls = j->task.kind == TRN_TASK_CLS, rc = 0;
    json_t *res = json_pack("{s:s, s:s}", "id", j->baseline_id, "split", "validation");
    if (j->baseline_stored >= 0) {
        json_object_set_new(res, cls ? "accuracy" : "rougeL", json_real(j->baseline_stored));
        json_object_set_new(res, "stored", json_true());
    } else if (cls) {
        double acc = 0;
        size_t n = 0, skipped = 0;
        if (!(rc = eval_gguf_cls(r, j->baseline_path, &acc, &n, &skipped)))
            json_object_set_new(res, "accuracy", json_real(acc));
        json_object_set_new(res, "n", json_integer((json_int_t)n));
    } else {
        struct eng_model *m = NULL;
        struct eng_tok *tok = NULL;
        if (!(rc = eng_student_load(j->baseline_path, &m, &tok, NULL, r->err)))
            rc = eval_sum_engine(r, m, tok ? tok : r->tok,
                                 tok ? eng_model_config(m)->eos_id : j->task.eos, res);
        json_object_set_new(res, "n", json_integer((json_int_t)r->val->n));
        eng_model_free(m);
        eng_tok_free(tok);
    }
    if (rc)
        json_object_set_new(res, "error", json_string(r->err));
    json_object_set_new(r->metrics, "baseline", json_deep_copy(res));
    json_object_set_new(res, "type", json_string("eval"));
    json_object_set_new(res, "stage", json_integer(4));
    json_object_set_new(res, "model", json_string("baseline"));
    emit(r, res);
}

/* ------------------------------------------------------------------ the job */

static int alloc_moments(struct run *r, size_t np)
{
    free(r->m);
    free(r->v);
    r->m = calloc(np, sizeof(float));
    r->v = calloc(np, sizeof(float));
    return r->m && r->v ? 0 : eng_fail(r->err, ENG_ENOMEM, "out of memory");
}

/* Restore the checkpoint named by LATEST into model (its stage's model). */
static int restore(struct run *r, struct trn_model *model, long *step, double *tokens)
{
    json_t *st = NULL;
    char path[PATH_LEN];
    int rc;
    if ((rc = alloc_moments(r, trn_model_nparams(model))))
        return rc;
    rc = trn_ckpt_load_latest(r->o->out, &st, trn_model_params(model), r->m, r->v,
                              trn_model_nparams(model), path, r->err);
    if (rc)
        return rc;
    *step = (long)json_integer_value(json_object_get(st, "step"));
    *tokens = json_number_value(json_object_get(st, "tokens"));
    message(r, "resumed from %s (stage %d, step %ld)", path,
            (int)json_integer_value(json_object_get(st, "stage")), *step);
    json_decref(st);
    return 0;
}

static void write_metrics(struct run *r)
{
    char mp[PATH_LEN + 32];
    snprintf(mp, sizeof(mp), "%s/metrics.json", r->o->out);
    json_dump_file(r->metrics, mp, JSON_INDENT(2) | JSON_SORT_KEYS);
}

/* The stage-2 corpus: `tokens` (+ one window) of it, or all of it when tokens is 0. */
static int load_corpus(struct run *r)
{
    const struct stage_cfg *c = &r->job.cpt;
    int rc = trn_corpus_load(c->corpus, r->tok, r->job.task.eos,
                             c->tokens ? c->tokens + (size_t)c->max_len + 1 : 0, &r->corpus, r->err);
    if (!rc && r->corpus->ntok < (size_t)c->max_len + 2)
        rc = eng_fail(r->err, ENG_EINVAL, "corpus '%s' has fewer than max_len + 2 tokens",
                      c->corpus);
    return rc;
}

/* method pretrain: FP next-token training of `model` on the corpus (stage 2 slot), held-out
 * perplexity at every checkpoint, the result as an HF directory DIR/model. */
static int run_pretrain(struct run *r, int rstage)
{
    struct job *j = &r->job;
    char mdir[PATH_LEN + 32];
    long s2 = 0;
    double t2 = 0;
    int rc;
    if (rstage > 2)
        return eng_fail(r->err, ENG_ECONFIG, "--resume: unknown stage %d", rstage);
    if ((rc = trn_model_load_hf(j->model, &r->student, r->err)))
        return rc;
    trn_model_set_quant(r->student, 0);
    if ((rc = alloc_moments(r, trn_model_nparams(r->student))) ||
        (rstage == 2 && (rc = restore(r, r->student, &s2, &t2))))
        return rc;
    if ((rc = load_corpus(r)) ||
        (j->heldout[0] && (rc = trn_corpus_load(j->heldout, r->tok, j->task.eos, j->eval_tokens,
                                                &r->heldout, r->err))))
        return rc;
    message(r, "pretrain: %zu corpus tokens, %zu held-out tokens, %zu parameters",
            r->corpus->ntok, r->heldout ? r->heldout->ntok : 0,
            trn_model_nparams(r->student));
    if (rstage < 2 && (rc = eval_heldout(r, r->student, 0, 0)))
        return rc;
    if ((rc = train_stage(r, 2, "pretrain", r->student, NULL, &j->cpt, s2, t2)))
        return rc;
    if (trn_dist_rank(r->dist) > 0)
        return 0; /* rank 0 writes the outputs */
    snprintf(mdir, sizeof(mdir), "%s/model", r->o->out);
    if ((rc = trn_model_save_hf(r->student, mdir, r->err)) || (rc = copy_tokenizer(r, mdir)))
        return rc;
    write_metrics(r);
    emit(r, json_pack("{s:s,s:n,s:n,s:s,s:O}", "type", "done", "student", "teacher", "model",
                      mdir, "metrics", r->metrics));
    return 0;
}

static int run_job(struct run *r)
{
    struct job *j = &r->job;
    int rc, rstage = -1;
    char tdir[PATH_LEN + 32], gguf[PATH_LEN] = "";
    snprintf(tdir, sizeof(tdir), "%s/teacher", r->o->out);
    if (r->o->resume) {
        json_t *st = NULL;
        if (trn_ckpt_latest_state(r->o->out, &st, r->err) == 0) {
            const char *sha = json_string_value(json_object_get(st, "job_sha256"));
            rstage = (int)json_integer_value(json_object_get(st, "stage"));
            if (!sha || strcmp(sha, j->sha)) {
                json_decref(st);
                return eng_fail(r->err, ENG_ECONFIG, "--resume: the checkpoint in '%s' belongs "
                                "to another job config", r->o->out);
            }
            json_decref(st);
        } else {
            message(r, "--resume: no checkpoint yet, starting from the beginning");
        }
    }
    if (j->method == M_PRETRAIN)
        return run_pretrain(r, rstage);
    int need_sft = j->method == M_FP16_SFT || (j->method == M_BITDISTILL && !j->teacher[0]);
    /* ---- stage 0: teacher SFT ---- */
    if (need_sft) {
        if ((rc = trn_model_load_hf(j->model, &r->teacher, r->err)))
            return rc;
        if (rstage <= 0) {
            long s0 = 0;
            double t0 = 0;
            if ((rc = alloc_moments(r, trn_model_nparams(r->teacher))))
                return rc;
            if (rstage == 0 && (rc = restore(r, r->teacher, &s0, &t0)))
                return rc;
            if ((rc = train_stage(r, 0, "teacher_sft", r->teacher, NULL, &j->sft, s0, t0)))
                return rc;
            if (trn_dist_rank(r->dist) == 0 &&
                ((rc = trn_model_save_hf(r->teacher, tdir, r->err)) ||
                 (rc = copy_tokenizer(r, tdir))))
                return rc;
        } else {
            trn_model_free(r->teacher);
            r->teacher = NULL;
            if ((rc = trn_model_load_hf(tdir, &r->teacher, r->err)))
                return rc;
        }
    } else if (j->teacher[0]) {
        if ((rc = trn_model_load_hf(j->teacher, &r->teacher, r->err)))
            return rc;
    }
    const char *teacher_dir = need_sft ? tdir : (j->teacher[0] ? j->teacher : NULL);
    if (r->teacher)
        trn_model_set_quant(r->teacher, 0);
    if (j->method == M_FP16_SFT) {
        if (trn_dist_rank(r->dist) > 0)
            return 0; /* rank 0 evaluates and writes the outputs */
        if ((rc = evaluate(r, r->teacher, "teacher")))
            return rc;
        goto done;
    }
    /* ---- stage 1: SubLN on a fresh copy of the base model ---- */
    if ((rc = trn_model_load_hf(j->model, &r->student, r->err)))
        return rc;
    if (j->method == M_BITDISTILL && j->subln) {
        stage_event(r, 1, "subln", "start", 0);
        if ((rc = trn_model_add_subln(r->student)))
            return eng_fail(r->err, rc, "%s", trn_model_errmsg(r->student));
        stage_event(r, 1, "subln", "end", 0);
    }
    trn_model_set_quant(r->student, 1);
    if ((rc = alloc_moments(r, trn_model_nparams(r->student))))
        return rc;
    /* ---- stage 2: continued pre-training ---- */
    if (j->method == M_BITDISTILL && j->cpt.tokens > 0 && rstage <= 2) {
        long s2 = 0;
        double t2 = 0;
        if (rstage == 2 && (rc = restore(r, r->student, &s2, &t2)))
            return rc;
        if ((rc = load_corpus(r)))
            return rc;
        if ((rc = train_stage(r, 2, "continue_pretrain", r->student, NULL, &j->cpt, s2, t2)))
            return rc;
        if (j->save_cpt && trn_dist_rank(r->dist) == 0) { /* a start for other stage-3 runs */
            char cdir[PATH_LEN + 32];
            snprintf(cdir, sizeof(cdir), "%s/student-cpt", r->o->out);
            if ((rc = trn_model_save_hf(r->student, cdir, r->err)) ||
                (rc = copy_tokenizer(r, cdir)))
                return rc;
        }
    }
    /* ---- stage 3: task fine-tuning ---- */
    long s3 = 0;
    double t3 = 0;
    if (rstage == 3 && (rc = restore(r, r->student, &s3, &t3)))
        return rc;
    else if (rstage > 3)
        return eng_fail(r->err, ENG_ECONFIG, "--resume: unknown stage %d", rstage);
    /* a checkpoint of stage 2 restored above holds the stage-2 weights; stage 3 starts fresh
     * moments (train_stage zeroes them at step 0) */
    struct stage_cfg d = j->dist;
    if (j->method == M_BITNET_SFT) {
        d.loss.lambda = 0;
        d.loss.gamma = 0;
    }
    if ((rc = train_stage(r, 3, j->method == M_BITDISTILL ? "distill" : "bitnet_sft", r->student,
                          j->method == M_BITDISTILL ? r->teacher : NULL, &d, s3, t3)))
        return rc;
    if (trn_dist_rank(r->dist) > 0)
        return 0; /* rank 0 evaluates and writes the outputs */
    /* ---- stage 4: evaluation and export ---- */
    stage_event(r, 4, "eval_export", "start", 0);
    if (r->teacher && (rc = evaluate(r, r->teacher, "teacher")))
        return rc;
    if ((rc = evaluate(r, r->student, "student")) || (rc = export_student(r, teacher_dir, gguf)))
        return rc;
    if (j->baseline_id[0] && r->val)
        evaluate_baseline(r);
    stage_event(r, 4, "eval_export", "end", 0);
done:
    write_metrics(r);
    emit(r, json_pack("{s:s,s:s?,s:s?,s:O}", "type", "done", "student", gguf[0] ? gguf : NULL,
                      "teacher", need_sft ? tdir : NULL, "metrics", r->metrics));
    return 0;
}

int trn_run(const struct trn_run_opts *o)
{
    struct trn_run_opts ro = *o; /* one rank of several: its own devices, rank 0 reports */
    struct run r = {.o = &ro, .perm_epoch = -1};
    struct trn_dist_cfg dc;
    char dev[256];
    int rc = trn_dist_cfg_env(&dc, r.err);
    if (dc.rank > 0)
        ro.progress = 0; /* the other ranks print their own errors only */
    if (o->events_fd >= 0 && dc.rank == 0) {
        r.ev = fdopen(dup(o->events_fd), "w");
        if (!r.ev) {
            fprintf(stderr, "bitdistill train: --events-fd %d: %s\n", o->events_fd,
                    strerror(errno));
            return ENG_EIO;
        }
    }
    r.metrics = json_object();
    if (rc || (rc = trn_dist_start(&dc, o->device, -1, 1, &r.dist, dev, sizeof(dev), r.err)))
        goto out;
    if (r.dist)
        ro.device = dev;
    if ((rc = job_parse(o->config, &r.job, r.err)))
        goto out;
    if (mkdir(o->out, 0755) && errno != EEXIST) {
        rc = eng_fail(r.err, ENG_EIO, "cannot create '%s': %s", o->out, strerror(errno));
        goto out;
    }
    int th = o->threads > 0 ? o->threads : (r.job.threads > 0 ? r.job.threads : 1);
    krn_blas_set_threads(th);
    if ((rc = job_validate(&r)))
        goto out;
    message(&r, "method %s, %zu training examples, %zu validation, %d thread(s)",
            method_names[r.job.method], r.train ? r.train->n : 0, r.val ? r.val->n : 0, th);
    rc = run_job(&r);
out:
    if (rc && rc != 3 && rc != TRN_PAUSED) {
        fprintf(stderr, "bitdistill train: %s\n", r.err[0] ? r.err : eng_strerror(rc));
        emit(&r, json_pack("{s:s,s:s}", "type", "error", "message",
                           r.err[0] ? r.err : eng_strerror(rc)));
    }
    if (r.ev)
        fclose(r.ev);
    free_enc(&r);
    free(r.perm);
    free(r.m);
    free(r.v);
    trn_model_free(r.teacher);
    trn_model_free(r.student);
    trn_corpus_free(r.corpus);
    trn_corpus_free(r.heldout);
    trn_dataset_free(r.train);
    trn_dataset_free(r.val);
    trn_dataset_free(r.sel);
    eng_tok_free(r.tok);
    json_decref(r.metrics);
    trn_dist_free(r.dist);
    return rc;
}

int trn_cli_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"out", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'}, {"device", required_argument, 0, 'd'},
        {"events-fd", required_argument, 0, 'e'}, {"resume", no_argument, 0, 'r'},
        {"stop-after", required_argument, 0, 's'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct trn_run_opts o = {.events_fd = -1, .progress = 1};
    const char *usage = "usage: bitdistill train --config JOB.json --out DIR [--threads N] "
                        "[--device cpu|cuda:K|cuda:all] [--events-fd N] [--resume] [--quiet]\n";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 'o': o.out = optarg; break;
        case 't': o.threads = atoi(optarg); break;
        case 'd':
            o.device = optarg;
            int devs[64], nd = trn_cuda_parse_devices(optarg, devs, 64), vis;
            if (nd < 0) {
                fprintf(stderr, "bitdistill train: --device %s: expected cpu, cuda, cuda:K, "
                        "cuda:K,L,... or cuda:all (with a GPU)\n", optarg);
                return 2;
            }
            vis = trn_cuda_device_count();
            for (int i = 0; i < nd; i++)
                if (devs[i] >= vis) {
                    fprintf(stderr, "bitdistill train: --device %s: no CUDA device %d (%d "
                            "visible; a build without CUDA sees none)\n", optarg, devs[i], vis);
                    return 2;
                }
            break;
        case 'e': o.events_fd = atoi(optarg); break;
        case 'r': o.resume = 1; break;
        case 's': o.stop_after = atol(optarg); break;
        case 'q': o.progress = 0; break;
        case 'h':
            printf("%s", usage);
            printf("Runs a training job (method fp16_sft | bitnet_sft | bitdistill | pretrain): see "
                   "docs/train.md.\n");
            return 0;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    if (!o.config || !o.out || optind != argc) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_pause_signal;
    sa.sa_flags = SA_RESTART; /* a checkpoint write in flight is not cut short */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int rc = trn_run(&o);
    return rc == 0 ? 0 : rc == 3 || rc == TRN_PAUSED ? rc : 1;
}

/* `bitdistill eval`: one student file's figures on a dataset, as the trainer's stage 4 measures
 * them (the same functions). Prints one JSON object. */
/* The task as the student file was trained on it: its stored template replaces the task's
 * default (a summarizer trained with "chat_format": "chatml" is prompted in ChatML and stops at
 * <|im_end|>), so `bitdistill eval` measures what the server runs. */
static int eval_task_of_file(struct trn_task *t, const char *tpl, char *err)
{
    static const char pre[] = "<|im_start|>user\n", post[] = "<|im_end|>\n<|im_start|>assistant\n";
    size_t n = tpl ? strlen(tpl) : 0, np = sizeof(pre) - 1, nq = sizeof(post) - 1;
    if (!n)
        return 0;
    if (n >= sizeof(t->template))
        return eng_fail(err, ENG_EFORMAT, "the student's template is too long (%zu bytes)", n);
    if (n > np + nq && !strncmp(tpl, pre, np) && !strcmp(tpl + n - nq, post)) {
        snprintf(t->template, sizeof(t->template), "%.*s", (int)(n - np - nq), tpl + np);
        return trn_task_chatml(t, err);
    }
    snprintf(t->template, sizeof(t->template), "%s", tpl);
    return 0;
}

int trn_cli_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"task", 1, 0, 'k'}, {"data", 1, 0, 'd'}, {"max", 1, 0, 'n'},
        {"max-new", 1, 0, 'g'}, {"max-len", 1, 0, 'l'}, {"threads", 1, 0, 't'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *usage = "usage: bitdistill eval --model STUDENT.gguf --task sst2|mnli|qnli|cnndm "
                        "--data FILE [--max N (0: all)] [--max-new 64] [--max-len 512] "
                        "[--threads N]\n";
    const char *model = NULL, *task = NULL, *data = NULL;
    struct trn_run_opts o = {.events_fd = -1};
    struct run *r = calloc(1, sizeof(*r));
    struct eng_model *m = NULL;
    struct eng_tok *tok = NULL;
    struct eng_student_meta meta = {0};
    json_t *res = NULL;
    long max = 0;
    int c, rc = 2;
    if (!r)
        return 1;
    r->o = &o;
    r->job.eval_max_new = 64;
    r->job.dist.max_len = 512;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': task = optarg; break;
        case 'd': data = optarg; break;
        case 'n': max = atol(optarg); break;
        case 'g': r->job.eval_max_new = atoi(optarg); break;
        case 'l': r->job.dist.max_len = atoi(optarg); break;
        case 't': o.threads = atoi(optarg); break;
        case 'h':
            printf("%sAccuracy (classification) or ROUGE-1/2/L/Lsum and BLEU of greedy summaries "
                   "(summarization)\nof a student file on a dataset, measured as the trainer's "
                   "stage 4 does; one JSON object.\n", usage);
            rc = 0;
            goto out;
        default: fprintf(stderr, "%s", usage); goto out;
        }
    }
    if (!model || !task || !data || optind != argc || max < 0 || r->job.eval_max_new < 1 ||
        r->job.dist.max_len < 16) {
        fprintf(stderr, "%s", usage);
        goto out;
    }
    rc = 1;
    if (trn_task_defaults(task, &r->job.task, r->err) ||
        eng_student_load(model, &m, &tok, &meta, r->err) ||
        eval_task_of_file(&r->job.task, meta.template, r->err))
        goto fail;
    if (!tok) {
        eng_fail(r->err, ENG_ECONFIG, "'%s' carries no tokenizer", model);
        goto fail;
    }
    r->tok = tok;
    if (trn_task_resolve(&r->job.task, tok, eng_model_config(m)->eos_id, r->err) ||
        trn_dataset_load(data, &r->job.task, (size_t)max, &r->val, r->err))
        goto fail;
    res = json_pack("{s:s, s:s, s:I}", "model", model, "data", data, "n", (json_int_t)r->val->n);
    if (r->job.task.kind == TRN_TASK_CLS) {
        double acc = 0;
        size_t n = 0, skipped = 0;
        if (eval_gguf_cls(r, model, &acc, &n, &skipped))
            goto fail;
        json_object_set_new(res, "accuracy", json_real(acc));
        json_object_set_new(res, "n", json_integer((json_int_t)n));
        json_object_set_new(res, "skipped", json_integer((json_int_t)skipped));
    } else if (eval_sum_engine(r, m, tok, r->job.task.eos, res)) {
        goto fail;
    }
    char *txt = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(9));
    printf("%s\n", txt ? txt : "{}");
    free(txt);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "bitdistill eval: %s\n", r->err);
out:
    json_decref(res);
    trn_dataset_free(r->val);
    eng_model_free(m);
    eng_tok_free(tok);
    eng_student_meta_release(&meta);
    free(r);
    return rc;
}
