/*
 * api/jobs.c — fine-tuning jobs (admin scope), in the OpenAI shape:
 *   POST /v1/fine_tuning/jobs                    create (validated before it is queued)
 *   GET  /v1/fine_tuning/jobs?after=&limit=      newest first, with has_more
 *   GET  /v1/fine_tuning/jobs/{id}
 *   POST /v1/fine_tuning/jobs/{id}/cancel        409 when already finished
 *   POST /v1/fine_tuning/jobs/{id}/pause         the trainer checkpoints and stops: `paused`
 *   POST /v1/fine_tuning/jobs/{id}/resume        a paused job continues from that checkpoint
 *   GET  /v1/fine_tuning/jobs/{id}/events        list (?after=SEQ or event id, &limit=), oldest
 *                                                first, or ?stream=true: SSE
 *                                                replaying after Last-Event-ID, live until the
 *                                                job ends, then `data: [DONE]`
 *   GET  /v1/fine_tuning/jobs/{id}/checkpoints?after=&limit=   newest first, has_more
 *
 * A job request:
 *   {"model": HF directory under --model-root (relative name or path inside it),
 *    "training_file": file id, "validation_file"?: file id, "corpus_file"?: file id (corpus),
 *    "method": {"type": "bitdistill"|"bitnet_sft"|"fp16_sft",
 *               "<type>"?: {"teacher_sft"|"continue_pretrain"|"distill": {stage settings}}},
 *    "hyperparameters"?: {"n_epochs","batch_size","learning_rate_multiplier" (each a number or
 *                         "auto", see resolve_auto),"learning_rate","max_len","steps"},
 *    "metadata"?: up to 16 string pairs (keys <= 64 characters, values <= 512),
 *    "chat_format"?: "chatml" (classification tasks as generative SFT in ChatML),
 *    "prompt_format"?: "plain" | "chat_template" (task examples through the base model's own
 *                      chat template; the base must have one),
 *    "teacher"?: fine-tuned teacher directory (skips stage 0), "task"?: sst2|mnli|qnli|cnndm|chat,
 *    "device"?: "cpu"|"cuda:K"|"cuda:K,L"|"cuda:all", "suffix"?, "seed"?,
 *    "activate"?: true|false|"if_better", "threads"?}
 * and becomes the trainer's job.json (train/pipeline.h) in the job's directory.
 * "if_better" (needs a validation file): the trainer also evaluates the model active for the
 * job's task when the job is created (its "baseline"), unless a figure of it on a file with the
 * same content is stored; the supervisor activates the student only if it scores higher
 * (jobs/better.h) and records the decision as an event.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/err.h"
#include "engine/chat.h"
#include "engine/hfconfig.h"
#include "engine/registry.h"
#include "jinja/jinja.h"
#include "jobs/files.h"
#include "jobs/jobrec.h"
#include "jobs/supervisor.h"
#include "store/writer.h"
#include "train/spec.h"

/* A model directory inside the model root; *out gets the real path. Returns 0, -1 (the
 * request's fault, err says why) or -2 (out of memory reading it). */
static int resolve_model(struct api_ctx *ctx, const char *name, char *out, char *err, size_t errlen)
{
    char joined[PATH_MAX * 2], real[PATH_MAX];
    if (!ctx->model_root[0]) {
        snprintf(err, errlen, "no model root is configured (--model-root)");
        return -1;
    }
    if (name[0] == '/')
        snprintf(joined, sizeof(joined), "%s", name);
    else
        snprintf(joined, sizeof(joined), "%s/%s", ctx->model_root, name);
    if (!realpath(joined, real)) {
        snprintf(err, errlen, "model '%s' not found under the model root", name);
        return -1;
    }
    size_t rl = strlen(ctx->model_root);
    if (strncmp(real, ctx->model_root, rl) || real[rl] != '/') {
        snprintf(err, errlen,
                 "model '%s' is outside the model root: only directories under "
                 "--model-root may be used",
                 name);
        return -1;
    }
    struct eng_config cfg;
    char eerr[512];
    errno = 0;
    int crc = eng_config_load(real, &cfg, eerr);
    if (crc) {
        snprintf(err, errlen, "model '%s': %s", name, eerr);
        return crc == ENG_ENOMEM || errno == ENOMEM ? -2 : -1;
    }
    snprintf(out, PATH_MAX, "%s", real);
    return 0;
}

/* OpenAI's metadata limits: at most 16 pairs, keys up to 64 characters, string values up to 512.
 * Answers 400 naming the field and returns -1, or 0. */
static int check_metadata(struct srv_req *req, json_t *meta)
{
    const char *k;
    json_t *v;
    if (!meta || json_is_null(meta))
        return 0;
    if (!json_is_object(meta)) {
        api_error(req, 400, "'metadata' must be an object of string values", "metadata",
                  "invalid_value");
        return -1;
    }
    if (json_object_size(meta) > 16) {
        api_errorf(req, 400, "metadata", "invalid_value", "'metadata' has %zu pairs: at most 16",
                   json_object_size(meta));
        return -1;
    }
    json_object_foreach(meta, k, v)
    {
        char param[96];
        snprintf(param, sizeof(param), "metadata.%.64s", k);
        if (strlen(k) > 64) {
            api_errorf(req, 400, "metadata", "invalid_value",
                       "metadata key '%.64s...' is %zu "
                       "characters: at most 64",
                       k, strlen(k));
            return -1;
        }
        if (!json_is_string(v) || json_string_length(v) > 512) {
            api_errorf(req, 400, param, "invalid_value",
                       "'%s' must be a string of at most 512 "
                       "characters",
                       param);
            return -1;
        }
    }
    return 0;
}

/*
 * The job's hyperparameters with "auto" resolved (new reference; hp borrowed, may be NULL), the
 * resolved values also set in the trainer config. Rules, from the training file's rows n:
 *   n_epochs: 3, unless 3n < 100 (then min(25, 100 / n)) or 3n > 25000 (then max(1, 25000 / n))
 *             -- OpenAI's documented rule (cookbook "Data preparation and analysis for chat
 *             model fine-tuning");
 *   batch_size: about 0.2% of n, from 1 to 256 (OpenAI: "~0.2% of the number of examples in the
 *             training set, with a cap of 256");
 *   learning_rate_multiplier: sqrt(batch_size / 32) within [0.5, 2] -- larger batches take a
 *             larger multiplier, as OpenAI's, relative to the trainer's learning rates, which
 *             docs/train.md gives for batch 32.
 * Absent ones are reported with the trainer's defaults (1 epoch, batch 32, multiplier 1).
 */
static json_t *resolve_auto(json_t *hp, int64_t n, json_t *trainer)
{
    json_t *out = json_is_object(hp) ? json_deep_copy(hp) : json_object();
    const char *ep = json_string_value(json_object_get(out, "n_epochs"));
    const char *bs = json_string_value(json_object_get(out, "batch_size"));
    const char *lm = json_string_value(json_object_get(out, "learning_rate_multiplier"));
    n = n > 0 ? n : 1;
    if (ep) {
        int64_t e = 3;
        if (n * 3 < 100)
            e = 100 / n < 25 ? 100 / n : 25;
        else if (n * 3 > 25000)
            e = 25000 / n > 1 ? 25000 / n : 1;
        json_object_set_new(out, "n_epochs", json_integer(e));
        json_object_set_new(trainer, "epochs", json_integer(e));
    }
    if (bs) {
        int64_t b = (n * 2 + 500) / 1000;
        b = b < 1 ? 1 : b > 256 ? 256 : b;
        json_object_set_new(out, "batch_size", json_integer(b));
        json_object_set_new(trainer, "batch", json_integer(b));
    }
    if (!json_object_get(out, "n_epochs"))
        json_object_set_new(out, "n_epochs", json_integer(1));
    if (!json_object_get(out, "batch_size"))
        json_object_set_new(out, "batch_size", json_integer(32));
    if (lm) {
        double m = sqrt((double)json_integer_value(json_object_get(out, "batch_size")) / 32.0);
        m = m < 0.5 ? 0.5 : m > 2.0 ? 2.0 : m;
        m = round(m * 1000.0) / 1000.0;
        json_object_set_new(out, "learning_rate_multiplier", json_real(m));
        json_object_set_new(trainer, "lr_multiplier", json_real(m));
    }
    if (!json_object_get(out, "learning_rate_multiplier"))
        json_object_set_new(out, "learning_rate_multiplier", json_real(1.0));
    return out;
}

struct create {
    struct api_ctx *ctx;
    struct job_rec rec;
    json_t *trainer; /* the trainer's job.json (owned) */
    int status;
    char err[600], param[96];
    /* while jobs_create's steps check the request: */
    json_t *body;     /* the request (borrowed) */
    const char *type; /* method.type (borrowed from body) */
    char task[32];
    char model_dir[PATH_MAX]; /* the base model's real path */
    struct job_file tf, vf, cf;
    int has_corpus;
};

static int create_queued_tx(sqlite3 *db, void *arg)
{
    struct create *c = arg;
    int rc = job_rec_insert_tx(db, &c->rec);
    if (rc)
        return rc;
    struct job_status_op op;
    memset(&op, 0, sizeof(op));
    snprintf(op.id, sizeof(op.id), "%s", c->rec.id);
    snprintf(op.status, sizeof(op.status), "queued");
    return job_status_tx(db, &op);
}

static void create_work(void *arg)
{
    struct create *c = arg;
    char path[1200];
    if (mkdir(c->rec.dir, 0750) && errno != EEXIST) {
        c->status = 500;
        snprintf(c->err, sizeof(c->err), "cannot create '%.400s': %s", c->rec.dir, strerror(errno));
        return;
    }
    snprintf(path, sizeof(path), "%s/job.json", c->rec.dir);
    if (json_dump_file(c->trainer, path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
        c->status = 500;
        snprintf(c->err, sizeof(c->err), "cannot write '%.400s': %s", path, strerror(errno));
        return;
    }
    if (store_write(c->ctx->store, create_queued_tx, c)) {
        c->status = 500;
        snprintf(c->err, sizeof(c->err), "cannot record the job: database error");
    }
}

static void create_done(struct srv_req *req, void *arg, struct api_ctx *ctx)
{
    struct create *c = arg;
    if (c->status) {
        api_error(req, c->status, c->err, NULL, NULL);
    } else {
        struct job_rec r;
        job_sup_kick(ctx->sup);
        if (job_rec_get(ctx->store, c->rec.id, &r) == 0) {
            srv_res_json(req, 200, job_rec_json(&r));
            job_rec_release(&r);
        } else {
            api_error(req, 500, "the job was created but cannot be read back", NULL, NULL);
        }
    }
    json_decref(c->trainer);
    job_rec_release(&c->rec);
    free(c);
}

/* A file reference: must exist with the purpose; copies its path into the trainer config. */
static int use_file(struct srv_req *req, struct api_ctx *ctx, json_t *body, const char *field,
                    const char *purpose, int required, json_t *trainer, const char *tkey,
                    char id_out[48], struct job_file *f)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        if (required)
            api_errorf(req, 400, field, "missing_field", "'%s' is required", field);
        return required ? -1 : 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= 48) {
        api_errorf(req, 400, field, "invalid_value", "'%s' must be a file id", field);
        return -1;
    }
    if (job_file_get(ctx->store, json_string_value(v), f)) {
        api_errorf(req, 404, field, "file_not_found", "'%s': no file '%s'", field,
                   json_string_value(v));
        return -1;
    }
    if (strcmp(f->purpose, purpose)) {
        api_errorf(req, 422, field, "wrong_purpose", "'%s': file '%s' has purpose '%s', not '%s'",
                   field, f->id, f->purpose, purpose);
        return -1;
    }
    snprintf(id_out, 48, "%s", f->id);
    if (tkey)
        json_object_set_new(trainer, tkey, json_string(f->path));
    return 1;
}

/* The stored figure of registered model `id` (accuracy or ROUGE-L) when the job that made it was
 * validated on a file with vf's content (the same examples: API jobs evaluate the file's first
 * 200), else -1. */
static double stored_figure(struct api_ctx *ctx, const char *id, int cls, const struct job_file *vf)
{
    struct job_model m;
    struct job_rec jr;
    struct job_file f;
    double fig = -1;
    if (job_model_get(ctx->store, id, &m))
        return -1;
    if (m.job_id[0] && m.metrics && job_rec_get(ctx->store, m.job_id, &jr) == 0) {
        if (jr.validation_file[0] && job_file_get(ctx->store, jr.validation_file, &f) == 0 &&
            !strcmp(f.sha256, vf->sha256)) {
            json_t *mt = json_loads(m.metrics, 0, NULL);
            json_t *v = cls ? json_object_get(json_object_get(mt, "student_gguf"), "accuracy")
                            : json_object_get(json_object_get(mt, "student"), "rougeL");
            if (cls && !v)
                v = json_object_get(json_object_get(mt, "student"), "accuracy");
            if (json_is_number(v))
                fig = json_number_value(v);
            json_decref(mt);
        }
        job_rec_release(&jr);
    }
    job_model_release(&m);
    return fig;
}

/* "activate": "if_better": the trainer's "baseline", the model active for the task now, with its
 * stored figure on vf's content or its path to evaluate. New reference; NULL when none is active
 * (the student is then activated: there is nothing to beat). */
static json_t *baseline_for(struct api_ctx *ctx, const char *task, const struct job_file *vf)
{
    int cls = strcmp(task, "cnndm") != 0;
    struct eng_served *s =
        eng_registry_active(ctx->registry, cls ? ENG_TASK_CLASSIFICATION : ENG_TASK_SUMMARIZATION);
    if (!s)
        return NULL;
    double fig = stored_figure(ctx, s->id, cls, vf);
    json_t *b = fig >= 0 ? json_pack("{s:s, s:f}", "id", s->id, "stored", fig)
                         : json_pack("{s:s, s:s}", "id", s->id, "path", s->path);
    eng_served_unref(s);
    return b;
}

/* ---- POST /v1/fine_tuning/jobs, one step per part of the request. Each step answers the
 * request itself (4xx naming the field) and returns -1, or returns 0. ---- */

static int create_check_keys(struct srv_req *req, struct create *c)
{
    static const char *const keys[] = {"model",       "training_file", "validation_file",
                                       "corpus_file", "method",        "hyperparameters",
                                       "teacher",     "task",          "device",
                                       "suffix",      "seed",          "activate",
                                       "threads",     "integrations",  "metadata",
                                       "chat_format", "prompt_format", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(c->body, key, v)
    {
        int known = 0;
        for (const char *const *k = keys; *k; k++)
            known |= !strcmp(*k, key);
        if (!known) {
            api_errorf(req, 400, key, "unknown_parameter", "unknown parameter '%s'", key);
            return -1;
        }
    }
    return 0;
}

/* method.type and method.<type>'s stage objects, copied into the trainer config as they are
 * (the trainer's schema checks their keys: create_check_spec). */
static int create_method(struct srv_req *req, struct create *c)
{
    json_t *method = json_object_get(c->body, "method"), *v;
    const char *type = json_string_value(json_object_get(method, "type")), *key;
    if (!type ||
        (strcmp(type, "bitdistill") && strcmp(type, "bitnet_sft") && strcmp(type, "fp16_sft"))) {
        api_error(req, 400, "'method.type' must be \"bitdistill\", \"bitnet_sft\" or \"fp16_sft\"",
                  "method.type", "invalid_method");
        return -1;
    }
    c->type = type;
    json_object_set_new(c->trainer, "method", json_string(type));
    json_t *settings = json_object_get(method, type);
    json_object_foreach(method, key, v)
    {
        if (strcmp(key, "type") && strcmp(key, type)) {
            api_errorf(req, 400, "method", "unknown_parameter",
                       "unknown 'method.%s' for method type '%s'", key, type);
            return -1;
        }
    }
    if (!settings || json_is_null(settings))
        return 0;
    if (!json_is_object(settings)) {
        api_errorf(req, 400, "method", "invalid_value", "'method.%s' must be an object", type);
        return -1;
    }
    json_object_foreach(settings, key, v)
    {
        char where[96];
        snprintf(where, sizeof(where), "method.%s.%s", type, key);
        if (strcmp(key, "teacher_sft") && strcmp(key, "continue_pretrain") &&
            strcmp(key, "distill")) {
            api_errorf(req, 400, where, "unknown_parameter",
                       "unknown stage '%s' (teacher_sft, continue_pretrain, distill)", where);
            return -1;
        }
        /* the corpus is a stored file (corpus_file), never a path on this host */
        if (json_is_object(v) && json_object_get(v, "corpus")) {
            api_errorf(req, 400, where, "unknown_parameter",
                       "'%s.corpus' cannot be given: "
                       "upload the corpus (purpose \"corpus\") and pass it as 'corpus_file'",
                       where);
            return -1;
        }
        json_object_set(c->trainer, key, v);
    }
    return 0;
}

/* The API's names of the trainer's top-level settings (hyperparameters). */
static const struct {
    const char *api, *trn;
    int integer;
} hp_map[] = {{"n_epochs", "epochs", 0},  {"batch_size", "batch", 1},
              {"learning_rate", "lr", 0}, {"learning_rate_multiplier", "lr_multiplier", 0},
              {"max_len", "max_len", 1},  {"steps", "steps", 1}};
#define HP_N (sizeof(hp_map) / sizeof(hp_map[0]))

static int create_hyperparameters(struct srv_req *req, struct create *c)
{
    json_t *hp = json_object_get(c->body, "hyperparameters"), *v;
    const char *key;
    char param[96];
    if (!hp || json_is_null(hp))
        return 0;
    if (!json_is_object(hp)) {
        api_error(req, 400, "'hyperparameters' must be an object", "hyperparameters", NULL);
        return -1;
    }
    json_object_foreach(hp, key, v)
    {
        size_t i;
        for (i = 0; i < HP_N; i++)
            if (!strcmp(hp_map[i].api, key))
                break;
        snprintf(param, sizeof(param), "hyperparameters.%s", key);
        if (i == HP_N) {
            api_errorf(req, 400, param, "unknown_parameter",
                       "unknown '%s' (n_epochs, "
                       "batch_size, learning_rate_multiplier, learning_rate, max_len, steps)",
                       param);
            return -1;
        }
        if (json_is_string(v) && !strcmp(json_string_value(v), "auto")) {
            if (strcmp(key, "n_epochs") && strcmp(key, "batch_size") &&
                strcmp(key, "learning_rate_multiplier")) {
                api_errorf(req, 400, param, "invalid_value",
                           "'%s' cannot be \"auto\" (only "
                           "n_epochs, batch_size, learning_rate_multiplier)",
                           param);
                return -1;
            }
            continue;
        }
        if (!json_is_number(v) || json_number_value(v) <= 0 ||
            (hp_map[i].integer && !json_is_integer(v))) {
            api_errorf(req, 400, param, "invalid_value",
                       "'%s' must be a positive %s or "
                       "\"auto\"",
                       param, hp_map[i].integer ? "integer" : "number");
            return -1;
        }
        json_object_set(c->trainer, hp_map[i].trn, v);
    }
    return 0;
}

/* model and teacher: directories under the model root. */
static int create_models(struct srv_req *req, struct api_ctx *ctx, struct create *c)
{
    char err[600], path[PATH_MAX];
    json_t *model = json_object_get(c->body, "model");
    if (!json_is_string(model)) {
        api_error(req, 400, "'model' must name a model directory under the model root", "model",
                  "missing_field");
        return -1;
    }
    int mrc = resolve_model(ctx, json_string_value(model), c->model_dir, err, sizeof(err));
    if (mrc) {
        api_error(req,
                  mrc == -2                  ? 500
                  : strstr(err, "not found") ? 404
                                             : 400,
                  err, "model", mrc == -2 ? NULL : "invalid_model");
        return -1;
    }
    json_object_set_new(c->trainer, "model", json_string(c->model_dir));
    snprintf(c->rec.model, sizeof(c->rec.model), "%s", json_string_value(model));
    json_t *teacher = json_object_get(c->body, "teacher");
    if (!teacher || json_is_null(teacher))
        return 0;
    int trc = json_is_string(teacher)
                  ? resolve_model(ctx, json_string_value(teacher), path, err, sizeof(err))
                  : -1;
    if (trc) {
        api_error(req, trc == -2 ? 500 : 400,
                  json_is_string(teacher) ? err : "'teacher' must be a string", "teacher",
                  trc == -2 ? NULL : "invalid_model");
        return -1;
    }
    json_object_set_new(c->trainer, "teacher", json_string(path));
    return 0;
}

static int create_files(struct srv_req *req, struct api_ctx *ctx, struct create *c)
{
    if (use_file(req, ctx, c->body, "training_file", "fine-tune", 1, c->trainer, "train_file",
                 c->rec.training_file, &c->tf) < 0 ||
        use_file(req, ctx, c->body, "validation_file", "fine-tune", 0, c->trainer,
                 "validation_file", c->rec.validation_file, &c->vf) < 0)
        return -1;
    c->has_corpus = use_file(req, ctx, c->body, "corpus_file", "corpus", 0, NULL, NULL,
                             c->rec.corpus_file, &c->cf);
    return c->has_corpus < 0 ? -1 : 0;
}

/* prompt_format "chat_template": the base model must carry a chat template the engine renders
 * (the trainer formats the examples with it and the student is served with it). */
static int check_chat_template(struct srv_req *req, struct create *c)
{
    char err[600], jerr[JINJA_ERR_LEN], *tpl = NULL;
    struct jinja_tpl *jt = NULL;
    if (eng_chat_template_read(c->model_dir, &tpl, err)) {
        api_errorf(req, 400, "prompt_format", "invalid_model", "'prompt_format': model '%s': %s",
                   c->rec.model, err);
        return -1;
    }
    if (!tpl) {
        api_errorf(req, 400, "prompt_format", "invalid_value",
                   "'prompt_format': "
                   "\"chat_template\" needs a base model with a chat template, and model '%s' "
                   "has no chat_template in its tokenizer_config.json",
                   c->rec.model);
        return -1;
    }
    int bad = jinja_parse(tpl, strlen(tpl), &jt, jerr);
    jinja_free(jt);
    free(tpl);
    if (bad) {
        api_errorf(req, 400, "prompt_format", "invalid_value",
                   "'prompt_format': the chat "
                   "template of model '%s' cannot be rendered: %s",
                   c->rec.model, jerr);
        return -1;
    }
    return 0;
}

/* task (the request's, else the training file's) and how its examples are written. */
static int create_task(struct srv_req *req, struct create *c)
{
    const char *task = json_string_value(json_object_get(c->body, "task"));
    if (json_object_get(c->body, "task") && !task) {
        api_error(req, 400, "'task' must be a string", "task", "invalid_value");
        return -1;
    }
    if (!task)
        task = c->tf.task;
    if (strcmp(task, "sst2") && strcmp(task, "mnli") && strcmp(task, "qnli") &&
        strcmp(task, "cnndm") && strcmp(task, "chat")) {
        api_errorf(req, 400, "task", "invalid_task",
                   "unknown task '%s' (sst2, mnli, qnli, cnndm, "
                   "chat)",
                   task);
        return -1;
    }
    if (strcmp(task, c->tf.task)) {
        api_errorf(req, 422, "training_file", "wrong_task",
                   "training file '%s' is a %s dataset, "
                   "not %s",
                   c->tf.id, c->tf.task, task);
        return -1;
    }
    if (c->rec.validation_file[0] && strcmp(task, c->vf.task)) {
        api_errorf(req, 422, "validation_file", "wrong_task",
                   "validation file '%s' is a %s "
                   "dataset, not %s",
                   c->vf.id, c->vf.task, task);
        return -1;
    }
    snprintf(c->task, sizeof(c->task), "%s", task);
    json_object_set_new(c->trainer, "task", json_string(task));
    json_t *cfmt = json_object_get(c->body, "chat_format");
    if (cfmt && !json_is_null(cfmt)) {
        if (!json_is_string(cfmt) || strcmp(json_string_value(cfmt), "chatml")) {
            api_error(req, 400,
                      "'chat_format' must be \"chatml\" (for the model's own template: "
                      "'prompt_format': \"chat_template\")",
                      "chat_format", "invalid_value");
            return -1;
        }
        if (!strcmp(task, "cnndm") || !strcmp(task, "chat")) {
            api_errorf(req, 400, "chat_format", "invalid_value",
                       "'chat_format' applies to the "
                       "classification tasks (sst2, mnli, qnli), not %s",
                       task);
            return -1;
        }
        json_object_set(c->trainer, "chat_format", cfmt);
    }
    json_t *pf = json_object_get(c->body, "prompt_format");
    if (!pf || json_is_null(pf))
        return 0;
    const char *pfs = json_string_value(pf);
    if (!pfs || (strcmp(pfs, "plain") && strcmp(pfs, "chat_template"))) {
        api_error(req, 400, "'prompt_format' must be \"plain\" or \"chat_template\"",
                  "prompt_format", "invalid_value");
        return -1;
    }
    if (!strcmp(pfs, "chat_template")) {
        if (!strcmp(task, "chat")) {
            api_error(req, 400,
                      "'prompt_format': \"chat_template\" formats the task examples "
                      "(sst2, mnli, qnli, cnndm); a chat file's conversations are ChatML",
                      "prompt_format", "invalid_value");
            return -1;
        }
        if (cfmt && !json_is_null(cfmt)) {
            api_error(req, 400,
                      "'prompt_format': \"chat_template\" and 'chat_format' exclude "
                      "each other",
                      "prompt_format", "invalid_value");
            return -1;
        }
        if (check_chat_template(req, c))
            return -1;
    }
    json_object_set(c->trainer, "prompt_format", pf);
    return 0;
}

/* "auto" hyperparameters resolved (reported in the spec) and the corpus of stage 2. */
static int create_resolve(struct srv_req *req, struct create *c)
{
    json_object_set_new(
        c->body, "hyperparameters",
        resolve_auto(json_object_get(c->body, "hyperparameters"), c->tf.rows, c->trainer));
    json_t *cpt = json_object_get(c->trainer, "continue_pretrain");
    if (c->has_corpus) {
        if (!cpt) {
            cpt = json_object();
            json_object_set_new(c->trainer, "continue_pretrain", cpt);
        }
        if (json_is_object(cpt)) {
            json_object_set_new(cpt, "corpus", json_string(c->cf.path));
            if (!json_object_get(cpt, "tokens"))
                json_object_set_new(cpt, "tokens", json_integer(20000));
        }
    } else if (json_number_value(json_object_get(cpt, "tokens")) > 0) {
        api_error(req, 400, "continued pre-training needs a 'corpus_file'", "corpus_file",
                  "missing_field");
        return -1;
    }
    return 0;
}

/* device, seed, threads, suffix. */
static int create_options(struct srv_req *req, struct create *c)
{
    json_t *body = c->body;
    const char *device = json_string_value(json_object_get(body, "device"));
    if (json_object_get(body, "device") && !device) {
        api_error(req, 400, "'device' must be a string such as \"cpu\" or \"cuda:0\"", "device",
                  NULL);
        return -1;
    }
    if (!device)
        device = "cpu";
    /* "cpu", "cuda:K", "cuda:K,L,..." or "cuda:all" (data parallel over those GPUs). */
    int okdev = !strcmp(device, "cpu") || !strcmp(device, "cuda:all");
    if (!okdev && !strncmp(device, "cuda:", 5) && device[5]) {
        okdev = 1;
        for (const char *p = device + 5; *p; p++)
            okdev &= (*p >= '0' && *p <= '9') || (*p == ',' && p[1] && p[-1] != ',');
    }
    if (!okdev) {
        api_errorf(req, 400, "device", "invalid_device",
                   "device '%s' must be \"cpu\", "
                   "\"cuda:K\", \"cuda:K,L\" or \"cuda:all\"",
                   device);
        return -1;
    }
#ifndef BD_HAVE_CUDA
    if (strcmp(device, "cpu")) {
        api_errorf(req, 400, "device", "invalid_device",
                   "device '%s': this bitdistilld was "
                   "built without CUDA",
                   device);
        return -1;
    }
#endif
    snprintf(c->rec.device, sizeof(c->rec.device), "%s", device);
    json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed) || json_integer_value(seed) < 0) {
            api_error(req, 400, "'seed' must be a non-negative integer", "seed", NULL);
            return -1;
        }
        json_object_set(c->trainer, "seed", seed);
    }
    json_t *threads = json_object_get(body, "threads");
    if (threads && !json_is_null(threads)) {
        if (!json_is_integer(threads) || json_integer_value(threads) < 1 ||
            json_integer_value(threads) > 1024) {
            api_error(req, 400, "'threads' must be an integer from 1 to 1024", "threads", NULL);
            return -1;
        }
        json_object_set(c->trainer, "threads", threads);
    }
    const char *suffix = json_string_value(json_object_get(body, "suffix"));
    if (json_object_get(body, "suffix") && !json_is_null(json_object_get(body, "suffix"))) {
        int okc = suffix && strlen(suffix) <= 40;
        for (const char *p = suffix; okc && *p; p++)
            okc = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_';
        if (!okc) {
            api_error(req, 400, "'suffix' must be at most 40 letters, digits, '-' or '_'", "suffix",
                      NULL);
            return -1;
        }
    }
    return 0;
}

static int create_activate(struct srv_req *req, struct api_ctx *ctx, struct create *c)
{
    json_t *act = json_object_get(c->body, "activate");
    int if_better = json_is_string(act) && !strcmp(json_string_value(act), "if_better");
    if (act && !json_is_null(act) && !json_is_boolean(act) && !if_better) {
        api_error(req, 400, "'activate' must be true, false or \"if_better\"", "activate", NULL);
        return -1;
    }
    if (if_better && !c->rec.validation_file[0]) {
        api_error(req, 400, "'activate': \"if_better\" needs a 'validation_file' to compare on",
                  "validation_file", "missing_field");
        return -1;
    }
    c->rec.activate = if_better ? JOB_ACTIVATE_IF_BETTER : json_is_true(act);
    json_t *baseline = if_better ? baseline_for(ctx, c->task, &c->vf) : NULL;
    if (baseline)
        json_object_set_new(c->trainer, "baseline", baseline);
    return 0;
}

/* The trainer config through the trainer's own schema (train/spec.h): a key the trainer
 * would not read is refused here as it would be there, named as the request spells it. */
static int create_check_spec(struct srv_req *req, struct create *c)
{
    char where[256], err[ENG_ERR_LEN], param[320];
    if (!trn_spec_check(c->trainer, where, sizeof(where), err))
        return 0;
    const char *dot = strchr(where, '.'), *msg = err;
    size_t head = dot ? (size_t)(dot - where) : strlen(where);
    snprintf(param, sizeof(param), "%s", where);
    if (!strncmp(where, "teacher_sft", head) || !strncmp(where, "continue_pretrain", head) ||
        !strncmp(where, "distill", head))
        snprintf(param, sizeof(param), "method.%s.%s", c->type, where);
    for (size_t i = 0; i < HP_N; i++)
        if (!strcmp(where, hp_map[i].trn))
            snprintf(param, sizeof(param), "hyperparameters.%s", hp_map[i].api);
    if (!strncmp(msg, "job config: ", 12))
        msg += 12;
    api_errorf(req, 400, param, strstr(err, "unknown key") ? "unknown_parameter" : "invalid_value",
               "'%s': %s", param, msg);
    return -1;
}

/* The record (id, directory, the spec as accepted with the task type) and the deferred write
 * of job.json and the queued row. Takes c. */
static void create_queue(struct srv_req *req, struct api_ctx *ctx, struct create *c)
{
    unsigned char rnd[12];
    RAND_bytes(rnd, sizeof(rnd));
    int n = snprintf(c->rec.id, sizeof(c->rec.id), "ftjob-");
    for (int i = 0; i < 12; i++)
        n += snprintf(c->rec.id + n, sizeof(c->rec.id) - n, "%02x", rnd[i]);
    snprintf(c->rec.dir, sizeof(c->rec.dir), "%s/jobs/%s", ctx->data_dir, c->rec.id);
    snprintf(c->rec.method, sizeof(c->rec.method), "%s", c->type);
    snprintf(c->rec.status, sizeof(c->rec.status), "validating_files");
    c->rec.created_at = (int64_t)time(NULL);
    json_object_set_new(c->body, "task", json_string(c->task));
    /* a chat student has no template in its file: the engine serves it for generation */
    json_object_set_new(c->body, "task_type",
                        json_string(!strcmp(c->task, "cnndm")  ? "summarization"
                                    : !strcmp(c->task, "chat") ? "generation"
                                                               : "classification"));
    c->rec.spec = json_dumps(c->body, JSON_COMPACT | JSON_SORT_KEYS);
    c->ctx = ctx;
    c->body = NULL;
    char jobs_dir[1100];
    snprintf(jobs_dir, sizeof(jobs_dir), "%s/jobs", ctx->data_dir);
    mkdir(jobs_dir, 0750);
    if (api_defer(req, ctx, create_work, create_done, c)) {
        api_error(req, 500, "cannot queue the job", NULL, NULL);
        json_decref(c->trainer);
        job_rec_release(&c->rec);
        free(c);
    }
}

static void jobs_create(struct srv_req *req, struct api_ctx *ctx)
{
    json_t *body = NULL;
    struct create *c = NULL;
    if (!srv_server_config(ctx->srv)->run_jobs) {
        api_error(req, 503,
                  "this replica does not run fine-tuning jobs (run-jobs 0): submit "
                  "them to the daemon that does",
                  NULL, "jobs_disabled");
        return;
    }
    if (!(body = api_body_json(req)))
        return;
    c = calloc(1, sizeof(*c));
    if (c)
        c->trainer = json_object();
    if (!c || !c->trainer) {
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    c->body = body;
    if (create_check_keys(req, c) || create_method(req, c) || create_hyperparameters(req, c) ||
        create_models(req, ctx, c) || create_files(req, ctx, c) || create_task(req, c) ||
        check_metadata(req, json_object_get(body, "metadata")) || create_resolve(req, c) ||
        create_options(req, c) || create_activate(req, ctx, c) || create_check_spec(req, c))
        goto out;
    json_object_set_new(c->trainer, "checkpoint_every", json_integer(20));
    create_queue(req, ctx, c);
    c = NULL;
out:
    if (c) {
        json_decref(c->trainer);
        job_rec_release(&c->rec);
        free(c);
    }
    json_decref(body);
}

/* The metadata filter of a list query, OpenAI's syntax: metadata[KEY]=VALUE pairs (all must
 * match), or metadata=null (or empty): jobs without metadata. *out: a new object, json null, or
 * NULL for no filter. Answers 400 and returns -1 on a malformed one. */
static int metadata_filter(struct srv_req *req, const char *q, json_t **out)
{
    *out = NULL;
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&'), *eq;
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        char key[200], val[600];
        eq = memchr(p, '=', len);
        size_t kl = api_url_decode(p, eq ? (size_t)(eq - p) : len, key, sizeof(key));
        api_url_decode(eq ? eq + 1 : p + len, eq ? len - (size_t)(eq + 1 - p) : 0, val,
                       sizeof(val));
        p = amp ? amp + 1 : NULL;
        if (strncmp(key, "metadata", 8))
            continue;
        if (!key[8] && (!val[0] || !strcmp(val, "null"))) {
            json_decref(*out);
            *out = json_null();
            continue;
        }
        if (key[8] != '[' || key[kl - 1] != ']' || kl < 11 || json_is_null(*out)) {
            json_decref(*out);
            *out = NULL;
            api_error(req, 400,
                      "a metadata filter is metadata[KEY]=VALUE (repeatable) or "
                      "metadata=null",
                      "metadata", "invalid_value");
            return -1;
        }
        key[kl - 1] = 0;
        if (!*out)
            *out = json_object();
        json_object_set_new(*out, key + 9, json_string(val));
    }
    return 0;
}

static void jobs_list(struct srv_req *req, struct api_ctx *ctx)
{
    char after[64];
    int has_more;
    json_t *meta;
    const char *q = srv_req_query(req);
    long limit = api_query_long(q, "limit", 20);
    if (limit < 1 || limit > 100) {
        api_error(req, 400, "'limit' must be from 1 to 100", "limit", NULL);
        return;
    }
    if (metadata_filter(req, q, &meta))
        return;
    json_t *data = job_rec_list_json(ctx->store, api_query_param(q, "after", after, sizeof(after)),
                                     (int)limit, meta, &has_more);
    json_decref(meta);
    srv_res_json(
        req, 200,
        json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", has_more));
}

static void jobs_get(struct srv_req *req, struct api_ctx *ctx)
{
    struct job_rec r;
    const char *id = srv_req_param(req, "id");
    if (job_rec_get(ctx->store, id, &r)) {
        api_errorf(req, 404, "id", "job_not_found", "no fine-tuning job '%.64s'", id);
        return;
    }
    srv_res_json(req, 200, job_rec_json(&r));
    job_rec_release(&r);
}

static void jobs_cancel(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct job_rec r;
    int rc = job_sup_cancel(ctx->sup, id);
    if (rc == STORE_ENOTFOUND) {
        api_errorf(req, 404, "id", "job_not_found", "no fine-tuning job '%.64s'", id);
        return;
    }
    if (job_rec_get(ctx->store, id, &r)) {
        api_error(req, 500, "cannot read the job", NULL, NULL);
        return;
    }
    if (rc == STORE_EEXIST) {
        api_errorf(req, 409, "id", "job_finished", "job '%s' has already %s", id, r.status);
        job_rec_release(&r);
        return;
    }
    json_t *o = job_rec_json(&r);
    json_object_set_new(o, "status",
                        json_string(strcmp(r.status, "running") ? "cancelled" : "cancelling"));
    srv_res_json(req, 200, o);
    job_rec_release(&r);
}

/* POST .../pause and .../resume: 409 naming the job's status when it cannot. */
static void jobs_pause_resume(struct srv_req *req, struct api_ctx *ctx, int pause)
{
    const char *id = srv_req_param(req, "id");
    char status[24] = "";
    struct job_rec r;
    int rc = pause ? job_sup_pause(ctx->sup, id, status) : job_sup_resume(ctx->sup, id, status);
    if (rc == STORE_ENOTFOUND) {
        api_errorf(req, 404, "id", "job_not_found", "no fine-tuning job '%.64s'", id);
        return;
    }
    if (rc == JOB_SUP_ENOPAUSE) {
        api_errorf(req, 409, "id", "pause_unsupported",
                   "job '%s' runs through the launcher "
                   "(--launcher), which does not pass the pause signal on: cancel it instead",
                   id);
        return;
    }
    if (rc) {
        api_errorf(req, 409, "id", pause ? "job_not_pausable" : "job_not_paused",
                   "job '%s' has status '%s': %s", id, status,
                   pause ? "only a queued or running job can be paused"
                         : "only a paused job can be resumed");
        return;
    }
    if (job_rec_get(ctx->store, id, &r)) {
        api_error(req, 500, "cannot read the job", NULL, NULL);
        return;
    }
    json_t *o = job_rec_json(&r);
    json_object_set_new(o, "status", json_string(status)); /* the write may still be queued */
    srv_res_json(req, 200, o);
    job_rec_release(&r);
}

static void jobs_pause(struct srv_req *req, struct api_ctx *ctx)
{
    jobs_pause_resume(req, ctx, 1);
}

static void jobs_resume(struct srv_req *req, struct api_ctx *ctx)
{
    jobs_pause_resume(req, ctx, 0);
}

static void jobs_checkpoints(struct srv_req *req, struct api_ctx *ctx)
{
    struct job_rec r;
    const char *id = srv_req_param(req, "id"), *q = srv_req_query(req);
    char after[96], model[200];
    int has_more;
    if (job_rec_get(ctx->store, id, &r)) {
        api_errorf(req, 404, "id", "job_not_found", "no fine-tuning job '%.64s'", id);
        return;
    }
    long limit = api_query_long(q, "limit", 10);
    if (limit < 1 || limit > 100) {
        job_rec_release(&r);
        api_error(req, 400, "'limit' must be from 1 to 100", "limit", NULL);
        return;
    }
    /* the model the checkpoints lead to: the job's model id (as supervisor.c names it) */
    json_error_t e;
    json_t *spec = json_loads(r.spec ? r.spec : "{}", 0, &e);
    const char *sfx = json_string_value(json_object_get(spec, "suffix"));
    snprintf(model, sizeof(model), "bd-%.40s%s%.40s", r.id + 6, sfx && *sfx ? ":" : "",
             sfx && *sfx ? sfx : "");
    json_decref(spec);
    job_rec_release(&r);
    const char *a = api_query_param(q, "after", after, sizeof(after));
    json_t *data = job_checkpoints_json(ctx->store, id, model, a, (int)limit, &has_more);
    if (!data) {
        api_errorf(req, 400, "after", "invalid_value",
                   "'after' must be a checkpoint id of job "
                   "'%s' (ftckpt-...)",
                   id);
        return;
    }
    json_t *first = json_array_get(data, 0),
           *last = json_array_get(data, json_array_size(data) - 1);
    srv_res_json(req, 200,
                 json_pack("{s:s, s:o, s:b, s:O?, s:O?}", "object", "list", "data", data,
                           "has_more", has_more, "first_id", json_object_get(first, "id"),
                           "last_id", json_object_get(last, "id")));
}

/* ---- events, listed or streamed ---------------------------------------------------------- */

struct ev_stream {
    struct srv_req *req;
    struct api_ctx *ctx;
    char id[48];
    int64_t last;
};

static void ev_stream_watch(void *arg, const char *job_id, int64_t seq, int ended);

/* Send what is new; end the stream when the job has finished. Returns 1 when done. */
static int ev_stream_flush(struct ev_stream *es)
{
    if (!srv_req_alive(es->req))
        return 1;
    for (;;) {
        json_t *arr = job_events_json(es->ctx->store, es->id, es->last, 500, &es->last);
        size_t i, n = json_array_size(arr);
        json_t *ev;
        json_array_foreach(arr, i, ev)
        {
            char *t = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII);
            char head[64];
            int hl = snprintf(head, sizeof(head), "id: %lld\ndata: ",
                              (long long)json_integer_value(json_object_get(ev, "seq")));
            srv_res_stream_write(es->req, head, (size_t)hl);
            srv_res_stream_write(es->req, t, strlen(t));
            srv_res_stream_write(es->req, "\n\n", 2);
            free(t);
        }
        json_decref(arr);
        if (n < 500)
            break;
    }
    struct job_rec r;
    memset(&r, 0, sizeof(r));
    int got = job_rec_get(es->ctx->store, es->id, &r) == 0;
    int ended = !got || job_rec_terminal(r.status);
    if (got)
        job_rec_release(&r);
    if (ended) {
        srv_res_stream_write(es->req, "data: [DONE]\n\n", 14);
        srv_res_stream_end(es->req);
    }
    return ended;
}

static void ev_stream_free(struct ev_stream *es)
{
    job_sup_unwatch(es->ctx->sup, ev_stream_watch, es);
    srv_req_unref(es->req);
    free(es);
}

static void ev_stream_watch(void *arg, const char *job_id, int64_t seq, int ended)
{
    struct ev_stream *es = arg;
    (void)job_id;
    (void)seq;
    (void)ended;
    if (ev_stream_flush(es))
        ev_stream_free(es);
}

static void jobs_events(struct srv_req *req, struct api_ctx *ctx)
{
    struct job_rec r;
    const char *id = srv_req_param(req, "id");
    const char *q = srv_req_query(req);
    char tmp[16];
    if (job_rec_get(ctx->store, id, &r)) {
        api_errorf(req, 404, "id", "job_not_found", "no fine-tuning job '%.64s'", id);
        return;
    }
    job_rec_release(&r);
    /* after: a seq, or an event id "ftevent-<job hex>-<seq>" (the SDKs' cursor) */
    char acur[96];
    const char *ac = api_query_param(q, "after", acur, sizeof(acur));
    const char *dash = ac ? strrchr(ac, '-') : NULL;
    long after = !ac                                   ? 0
                 : !strncmp(ac, "ftevent-", 8) && dash ? strtol(dash + 1, NULL, 10)
                                                       : strtol(ac, NULL, 10);
    const char *lei = srv_req_header(req, "Last-Event-ID");
    if (lei)
        after = strtol(lei, NULL, 10);
    int stream = api_query_param(q, "stream", tmp, sizeof(tmp)) && !strcmp(tmp, "true");
    if (!stream) {
        long limit = api_query_long(q, "limit", 100);
        if (limit < 1 || limit > 1000) {
            api_error(req, 400, "'limit' must be from 1 to 1000", "limit", NULL);
            return;
        }
        int64_t last;
        json_t *data = job_events_json(ctx->store, id, after, (int)limit + 1, &last);
        int more = json_array_size(data) > (size_t)limit;
        if (more)
            json_array_remove(data, (size_t)limit);
        srv_res_json(
            req, 200,
            json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more));
        return;
    }
    struct ev_stream *es = calloc(1, sizeof(*es));
    if (!es) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    es->req = req;
    es->ctx = ctx;
    snprintf(es->id, sizeof(es->id), "%s", id);
    es->last = after;
    srv_req_ref(req);
    srv_res_stream_start(req, 200, "text/event-stream");
    if (ev_stream_flush(es) || job_sup_watch(ctx->sup, id, ev_stream_watch, es))
        ev_stream_free(es);
}

const struct api_route api_route_jobs_create = {
    "POST", "/v1/fine_tuning/jobs", "jobs_create", SRV_SCOPE_ADMIN, 0, jobs_create};
const struct api_route api_route_jobs_list = {
    "GET", "/v1/fine_tuning/jobs", "jobs_list", SRV_SCOPE_ADMIN, 0, jobs_list};
const struct api_route api_route_jobs_get = {
    "GET", "/v1/fine_tuning/jobs/{id}", "jobs_get", SRV_SCOPE_ADMIN, 0, jobs_get};
const struct api_route api_route_jobs_cancel = {
    "POST", "/v1/fine_tuning/jobs/{id}/cancel", "jobs_cancel", SRV_SCOPE_ADMIN, 0, jobs_cancel};
const struct api_route api_route_jobs_events = {
    "GET", "/v1/fine_tuning/jobs/{id}/events", "jobs_events", SRV_SCOPE_ADMIN, 0, jobs_events};
const struct api_route api_route_jobs_checkpoints = {"GET",
                                                     "/v1/fine_tuning/jobs/{id}/checkpoints",
                                                     "jobs_checkpoints",
                                                     SRV_SCOPE_ADMIN,
                                                     0,
                                                     jobs_checkpoints};
const struct api_route api_route_jobs_pause = {
    "POST", "/v1/fine_tuning/jobs/{id}/pause", "jobs_pause", SRV_SCOPE_ADMIN, 0, jobs_pause};
const struct api_route api_route_jobs_resume = {
    "POST", "/v1/fine_tuning/jobs/{id}/resume", "jobs_resume", SRV_SCOPE_ADMIN, 0, jobs_resume};
