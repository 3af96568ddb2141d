/*
 * train/spec.c — the job config of `bitdistill train` (job.json): its one schema
 * (trn_spec_check, which the daemon's API also validates through), parsing into struct job and
 * the checks that need the files (vocabularies, datasets, the chat template).
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/run.h"
#include "train/spec.h"
#include "util/sha256.h"

const char *const trn_method_names[M_COUNT] = {"fp16_sft", "bitnet_sft", "bitdistill", "pretrain"};

/* ------------------------------------------------------------------ parsing */

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
        return eng_fail(err, ENG_ECONFIG,
                        "job config: %s.layer must be an integer, \"last\" or "
                        "\"all\"",
                        name);
    const char *rel = json_string_value(json_object_get(o, "relation"));
    if (rel && strcmp(rel, "cosine") && strcmp(rel, "scaled"))
        return eng_fail(err, ENG_ECONFIG,
                        "job config: %s.relation must be \"cosine\" or "
                        "\"scaled\"",
                        name);
    if (rel)
        s->loss.rel = strcmp(rel, "cosine") ? TRN_REL_SCALED : TRN_REL_COSINE;
    if (get_path(o, "corpus", s->corpus, 0, err))
        return ENG_ECONFIG;
    if (!s->corpus[0])
        snprintf(s->corpus, sizeof(s->corpus), "%s", base->corpus);
    if (s->batch < 1 || s->accum < 1 || s->max_len < 2 || s->lr < 0 || s->epochs < 0 ||
        s->loss.tau <= 0 || s->loss.split_heads < 1 || s->loss.t_r <= 0)
        return eng_fail(err, ENG_ECONFIG,
                        "job config: %s has a non-positive batch, grad_accum, "
                        "max_len, tau, split_heads or t_r, or a negative lr/epochs",
                        name);
    return 0;
}

static int task_parse(json_t *root, struct trn_task *t, char *err)
{
    json_t *tj = json_object_get(root, "task");
    const char *type =
        json_is_string(tj) ? json_string_value(tj) : json_string_value(json_object_get(tj, "type"));
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
            return eng_fail(err, ENG_ECONFIG,
                            "job config: task.labels/verbalizers must be "
                            "arrays of 2..%d strings of the same length",
                            TRN_MAX_LABELS);
        t->nlabels = (int)n;
        for (size_t i = 0; i < n; i++) {
            const char *l = json_string_value(json_array_get(lb ? lb : vb, i));
            const char *w = json_string_value(json_array_get(vb ? vb : lb, i));
            if (!l || !w)
                return eng_fail(err, ENG_ECONFIG, "job config: task label %zu is not a string", i);
            snprintf(t->labels[i], sizeof(t->labels[i]), "%s", l);
            if (vb)
                snprintf(t->words[i], sizeof(t->words[i]), "%s", w);
            else
                snprintf(t->words[i], sizeof(t->words[i]), " %s", l);
        }
    }
    return 0;
}

int trn_job_parse(const char *path, struct job *j, char *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    int rc = 0;
    memset(j, 0, sizeof(*j));
    if (!root)
        return eng_fail(err, ENG_ECONFIG, "cannot read job config '%s': %s (line %d)", path,
                        je.text, je.line);
    if ((rc = trn_spec_check(root, NULL, 0, err)))
        goto out;
    char *txt = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (txt)
        util_sha256_hex(txt, strlen(txt), j->sha);
    free(txt);
    const char *m = json_string_value(json_object_get(root, "method"));
    int found = 0;
    for (int i = 0; m && i < M_COUNT; i++)
        if (!strcmp(m, trn_method_names[i])) {
            j->method = (enum method)i;
            found = 1;
        }
    if (!found) {
        rc = eng_fail(err, ENG_ECONFIG,
                      "job config: unknown method '%s' (fp16_sft, bitnet_sft, "
                      "bitdistill, pretrain)",
                      m ? m : "(missing)");
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
    const char *pf = json_string_value(json_object_get(root, "prompt_format"));
    j->chat_template = pf && !strcmp(pf, "chat_template");
    if (j->chat_template && (cf || pre)) {
        rc = eng_fail(err, ENG_ECONFIG, "job config: prompt_format \"chat_template\" %s",
                      pre ? "needs a task (method pretrain has none)"
                          : "and chat_format \"chatml\" exclude each other");
        goto out;
    }
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
                             ? json_number_value(json_object_get(bl, "stored"))
                             : -1.0;
    if (bl && (!json_is_string(json_object_get(bl, "id")) ||
               (j->baseline_stored < 0 && (rc = get_path(bl, "path", j->baseline_path, 1, err))))) {
        rc = rc ? rc
                : eng_fail(err, ENG_ECONFIG,
                           "job config: baseline needs \"id\" and "
                           "\"path\" or \"stored\"");
        goto out;
    }
    if (bl)
        snprintf(j->baseline_id, sizeof(j->baseline_id), "%s",
                 json_string_value(json_object_get(bl, "id")));
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
        .epochs = num(root, "epochs", 1.0),
        .steps = (long)num(root, "steps", 0),
        .lr = (float)num(root, "lr", 1e-4),
        .warmup = (long)num(root, "warmup", -1),
        .weight_decay = (float)num(root, "weight_decay", 0.01),
        .clip = (float)num(root, "clip", 1.0),
        .batch = (int)num(root, "batch", 32),
        .accum = (int)num(root, "grad_accum", 1),
        .max_len = (int)num(root, "max_len", 512),
        .loss = {.lambda = cls ? 10.0f : 1.0f,
                 .gamma = cls ? 1e5f : 1e3f,
                 .tau = 5.0f,
                 .layer = -1,
                 .split_heads = 1,
                 .rel = TRN_REL_COSINE,
                 .t_r = 1.0f},
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
int trn_job_validate(struct run *r)
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
            return eng_fail(err, ENG_ECONFIG,
                            "incompatible teacher/student vocabularies: "
                            "teacher '%s' has %d tokens, model '%s' has %d",
                            j->teacher, tc.vocab, j->model, mc.vocab);
        if (j->method == M_BITDISTILL && j->dist.loss.gamma > 0 && tc.layers != mc.layers &&
            j->dist.loss.layer == -2)
            return eng_fail(err, ENG_ECONFIG,
                            "relation distillation over all layers needs the "
                            "same depth (teacher %d, student %d)",
                            tc.layers, mc.layers);
    }
    if ((rc = eng_tok_load_json(j->tokenizer, &r->tok, err)))
        return rc;
    if (eng_tok_vocab_size(r->tok) > mc.vocab)
        return eng_fail(err, ENG_ECONFIG,
                        "incompatible tokenizer: %d tokens but the model has "
                        "%d rows",
                        eng_tok_vocab_size(r->tok), mc.vocab);
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
    if (j->chat_template) {
        /* the template of the tokenizer's directory (the one exported), else the model's */
        struct stat st;
        const char *dir = !stat(j->tokenizer, &st) && S_ISDIR(st.st_mode) ? j->tokenizer : j->model;
        if ((rc = trn_chat_tpl_load(dir, r->tok, mc.bos_id, mc.eos_id, &r->chat_tpl, err)) ||
            (rc = trn_task_chat_template(&j->task, r->chat_tpl, err)))
            return rc;
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
            return eng_fail(err, ENG_ECONFIG,
                            "continue_pretrain.tokens is set but the corpus "
                            "'%s' cannot be read",
                            j->cpt.corpus);
    }
    return 0;
}
/* ------------------------------------------------------------------ the schema */

enum kind {
    K_PATH, /* a non-empty string shorter than PATH_LEN */
    K_STR,  /* any string */
    K_NUM,  /* a number >= min (> min when excl) */
    K_INT,  /* a number with an integral value >= min */
    K_BOOL,
    K_ENUM,     /* one of the strings in choices, '|'-separated */
    K_LAYER,    /* an integer, "last" or "all" */
    K_WORDS,    /* an array of strings */
    K_TASK,     /* a task name or a task object (task_keys) */
    K_BASELINE, /* an object (baseline_keys) */
    K_STAGE,    /* an object (stage_keys) */
};

struct key {
    const char *name;
    enum kind kind;
    double min;
    int excl;
    const char *choices;
};

#define STAGE_COMMON                                                                               \
    {"epochs", K_NUM, 0, 0, NULL}, {"steps", K_INT, 0, 0, NULL}, {"lr", K_NUM, 0, 0, NULL},        \
        {"min_lr", K_NUM, 0, 0, NULL}, {"warmup", K_INT, -1, 0, NULL},                             \
        {"weight_decay", K_NUM, 0, 0, NULL}, {"clip", K_NUM, 0, 0, NULL},                          \
        {"batch", K_INT, 1, 0, NULL}, {"grad_accum", K_INT, 1, 0, NULL},                           \
    {                                                                                              \
        "max_len", K_INT, 2, 0, NULL                                                               \
    }

static const struct key stage_keys[] = {STAGE_COMMON,
                                        {"tokens", K_INT, 0, 0, NULL},
                                        {"corpus", K_PATH, 0, 0, NULL},
                                        {"lambda", K_NUM, 0, 0, NULL},
                                        {"gamma", K_NUM, 0, 0, NULL},
                                        {"tau", K_NUM, 0, 1, NULL},
                                        {"layer", K_LAYER, 0, 0, NULL},
                                        {"split_heads", K_INT, 1, 0, NULL},
                                        {"relation", K_ENUM, 0, 0, "cosine|scaled"},
                                        {"t_r", K_NUM, 0, 1, NULL},
                                        {"gamma_warmup", K_INT, 0, 0, NULL},
                                        {NULL, 0, 0, 0, NULL}};

static const struct key task_keys[] = {
    {"type", K_ENUM, 0, 0, "sst2|mnli|qnli|cnndm|chat|classification|summarization"},
    {"template", K_STR, 0, 0, NULL},
    {"labels", K_WORDS, 0, 0, NULL},
    {"verbalizers", K_WORDS, 0, 0, NULL},
    {"label_words", K_WORDS, 0, 0, NULL},
    {"max_target", K_INT, 1, 0, NULL},
    {NULL, 0, 0, 0, NULL}};

static const struct key baseline_keys[] = {{"id", K_STR, 0, 0, NULL},
                                           {"path", K_PATH, 0, 0, NULL},
                                           {"stored", K_NUM, 0, 0, NULL},
                                           {NULL, 0, 0, 0, NULL}};

static const struct key top_keys[] = {
    {"method", K_ENUM, 0, 0, "fp16_sft|bitnet_sft|bitdistill|pretrain"},
    {"model", K_PATH, 0, 0, NULL},
    {"teacher", K_PATH, 0, 0, NULL},
    {"tokenizer", K_PATH, 0, 0, NULL},
    {"train_file", K_PATH, 0, 0, NULL},
    {"validation_file", K_PATH, 0, 0, NULL},
    {"selection_file", K_PATH, 0, 0, NULL},
    {"heldout", K_PATH, 0, 0, NULL},
    {"task", K_TASK, 0, 0, NULL},
    {"chat_format", K_ENUM, 0, 0, "chatml"},
    {"prompt_format", K_ENUM, 0, 0, "plain|chat_template"},
    {"eval_tokens", K_INT, 1, 0, NULL},
    {"max_train_examples", K_INT, 0, 0, NULL},
    {"max_eval_examples", K_INT, 0, 0, NULL},
    {"seed", K_INT, 0, 0, NULL},
    {"threads", K_INT, 0, 0, NULL},
    {"checkpoint_every", K_INT, 0, 0, NULL},
    {"log_every", K_INT, 0, 0, NULL},
    {"keep_checkpoints", K_INT, 0, 0, NULL},
    {"eval_max_new", K_INT, 1, 0, NULL},
    {"baseline", K_BASELINE, 0, 0, NULL},
    {"subln", K_BOOL, 0, 0, NULL},
    {"save_cpt", K_BOOL, 0, 0, NULL},
    {"head", K_ENUM, 0, 0, "q8|q4"},
    STAGE_COMMON,
    {"lr_multiplier", K_NUM, 0, 1, NULL},
    {"teacher_sft", K_STAGE, 0, 0, NULL},
    {"continue_pretrain", K_STAGE, 0, 0, NULL},
    {"pretrain", K_STAGE, 0, 0, NULL},
    {"distill", K_STAGE, 0, 0, NULL},
    {NULL, 0, 0, 0, NULL}};

/* The value v as short text for a message (at most 60 characters). */
static void value_text(const json_t *v, char out[64])
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(out, 64, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
    free(s);
}

static int in_choices(const char *s, const char *choices)
{
    size_t n = strlen(s);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t cl = bar ? (size_t)(bar - c) : strlen(c);
        if (cl == n && !strncmp(c, s, n))
            return 1;
        c = bar ? bar + 1 : NULL;
    }
    return 0;
}

static int check_object(const json_t *o, const struct key *keys, const char *path, char *where,
                        size_t wlen, char *err);

/* One value v of key k at path; err names path and the value. */
static int check_value(const json_t *v, const struct key *k, const char *path, char *where,
                       size_t wlen, char *err)
{
    char val[64], want[160] = "";
    value_text(v, val);
    switch (k->kind) {
    case K_PATH:
        if (json_is_string(v) && json_string_length(v) && json_string_length(v) < PATH_LEN)
            return 0;
        snprintf(want, sizeof(want), "a path string");
        break;
    case K_STR:
        if (json_is_string(v))
            return 0;
        snprintf(want, sizeof(want), "a string");
        break;
    case K_NUM:
    case K_INT: {
        double x = json_number_value(v);
        int ok = json_is_number(v) && isfinite(x) && (k->excl ? x > k->min : x >= k->min) &&
                 (k->kind == K_NUM || x == floor(x));
        if (ok)
            return 0;
        snprintf(want, sizeof(want), "%s %s %g", k->kind == K_INT ? "an integer" : "a number",
                 k->excl ? ">" : ">=", k->min);
        break;
    }
    case K_BOOL:
        if (json_is_boolean(v))
            return 0;
        snprintf(want, sizeof(want), "true or false");
        break;
    case K_ENUM:
        if (json_is_string(v) && in_choices(json_string_value(v), k->choices))
            return 0;
        if (!strcmp(path, "method")) {
            if (where)
                snprintf(where, wlen, "method");
            if (json_is_string(v))
                snprintf(val, sizeof(val), "'%.60s'", json_string_value(v));
            return eng_fail(err, ENG_ECONFIG,
                            "job config: unknown method %s (fp16_sft, "
                            "bitnet_sft, bitdistill, pretrain)",
                            val);
        }
        snprintf(want, sizeof(want), "one of %s", k->choices);
        break;
    case K_LAYER:
        if (json_is_integer(v) ||
            (json_is_string(v) && in_choices(json_string_value(v), "last|all")))
            return 0;
        snprintf(want, sizeof(want), "an integer, \"last\" or \"all\"");
        break;
    case K_WORDS: {
        int ok = json_is_array(v) && json_array_size(v) >= 2;
        for (size_t i = 0; ok && i < json_array_size(v); i++)
            ok = json_is_string(json_array_get(v, i));
        if (ok)
            return 0;
        snprintf(want, sizeof(want), "an array of at least 2 strings");
        break;
    }
    case K_TASK:
        if (json_is_string(v) || json_is_object(v)) {
            if (json_is_object(v))
                return check_object(v, task_keys, path, where, wlen, err);
            static const struct key task_name = {
                "task", K_ENUM, 0, 0, "sst2|mnli|qnli|cnndm|chat|classification|summarization"};
            return check_value(v, &task_name, path, where, wlen, err);
        }
        snprintf(want, sizeof(want), "a task name or a task object");
        break;
    case K_BASELINE:
    case K_STAGE:
        if (json_is_object(v))
            return check_object(v, k->kind == K_STAGE ? stage_keys : baseline_keys, path, where,
                                wlen, err);
        snprintf(want, sizeof(want), "an object");
        break;
    }
    if (where)
        snprintf(where, wlen, "%s", path);
    return eng_fail(err, ENG_ECONFIG, "job config: '%s' must be %s, not %s", path, want, val);
}

static int check_object(const json_t *o, const struct key *keys, const char *path, char *where,
                        size_t wlen, char *err)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)o, name, v)
    {
        char sub[256];
        const struct key *k = keys;
        snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", name);
        while (k->name && strcmp(k->name, name))
            k++;
        if (!k->name) {
            if (where)
                snprintf(where, wlen, "%s", sub);
            return eng_fail(err, ENG_ECONFIG, "job config: unknown key '%s'", sub);
        }
        int rc = check_value(v, k, sub, where, wlen, err);
        if (rc)
            return rc;
    }
    return 0;
}

int trn_spec_check(const json_t *job, char *where, size_t wlen, char *err)
{
    if (where && wlen)
        where[0] = 0;
    if (!json_is_object(job))
        return eng_fail(err, ENG_ECONFIG, "job config: must be a JSON object");
    int rc = check_object(job, top_keys, "", where, wlen, err);
    if (rc)
        return rc;
    /* a stage object for a stage the method does not run would be ignored */
    const char *m = json_string_value(json_object_get(job, "method"));
    int pre = m && !strcmp(m, "pretrain");
    const char *stray = pre && json_object_get(job, "continue_pretrain") ? "continue_pretrain"
                        : !pre && json_object_get(job, "pretrain")       ? "pretrain"
                        : pre && json_object_get(job, "teacher_sft")     ? "teacher_sft"
                        : pre && json_object_get(job, "distill")         ? "distill"
                                                                         : NULL;
    if (stray) {
        if (where)
            snprintf(where, wlen, "%s", stray);
        return eng_fail(err, ENG_ECONFIG,
                        "job config: '%s' does not apply to method %s "
                        "(%s)",
                        stray, m ? m : "(missing)",
                        pre ? "pretrain reads 'pretrain'"
                            : "'pretrain' is method pretrain's "
                              "stage; stage 2 of bitdistill is 'continue_pretrain'");
    }
    return 0;
}
