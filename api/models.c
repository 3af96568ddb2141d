/*
 * api/models.c — the served models, and tokenizing with them (llama.cpp's shapes):
 *   GET  /v1/models          {"object":"list","data":[{id,object:"model",created,owned_by,task,
 *                             status,active,version,resident_bytes,labels,...}]}: every loaded
 *                             model and every registered one (jobs' students), loaded or not
 *   GET  /v1/models/{id}
 *   POST /v1/models/{id}/activate (admin) hot-swap: load in the background if needed, then one
 *                             pointer swap; requests in flight finish on the model they began
 *                             with; a failed load leaves the current model serving (500 + why)
 *   DELETE /v1/models/{id}   (admin) 409 while active
 *   POST /tokenize           {"content", "model"?, "with_pieces"?} -> {"tokens":[...]} (or
 *                             [{"id","piece"}] with with_pieces)
 *   POST /detokenize         {"tokens":[...], "model"?} -> {"content"}
 * Tokenizing runs on the loop thread: bodies are capped at 1 MiB and BPE runs at tens of MB/s.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/infer.h"
#include "engine/err.h"
#include "engine/registry.h"
#include "jobs/jobrec.h"
#include "log/log.h"
#include "store/writer.h"

static json_t *model_json(struct api_ctx *ctx, const struct eng_served *s)
{
    json_t *labels = json_array();
    for (int i = 0; i < s->meta.nlabels; i++)
        json_array_append_new(labels, json_string(s->meta.labels[i]));
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:i, s:I, s:o, s:i, s:b}", "id", s->id,
                     "object", "model", "created", (json_int_t)s->loaded_at, "owned_by",
                     "bitdistill", "task", eng_task_name(s->task), "status", "loaded", "active",
                     eng_registry_is_active(ctx->registry, s), "version", s->version,
                     "resident_bytes", (json_int_t)s->resident_bytes, "labels", labels,
                     "max_context", s->max_context, "ternary", eng_model_is_ternary(s->model));
}

/* A registered model that is not loaded. */
static json_t *db_model_json(const struct job_model *m)
{
    json_error_t e;
    json_t *metrics = m->metrics ? json_loads(m->metrics, 0, &e) : NULL;
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:i, s:s, s:s, s:I, s:s?, s:o}", "id",
                     m->id, "object", "model", "created", (json_int_t)m->created_at, "owned_by",
                     "bitdistill", "task", m->task, "status",
                     !strcmp(m->status, "error") ? "error" : "unloaded", "active", 0, "version",
                     m->version, "sha256", m->sha256, "path", m->path, "bytes",
                     (json_int_t)m->bytes, "fine_tuning_job", m->job_id[0] ? m->job_id : NULL,
                     "metrics", metrics ? metrics : json_null());
}

/* Registry view, completed with the registered row when there is one. */
static json_t *full_model_json(struct api_ctx *ctx, const struct eng_served *s)
{
    json_t *o = model_json(ctx, s);
    struct job_model m;
    if (job_model_get(ctx->store, s->id, &m) == 0) {
        json_error_t e;
        json_t *metrics = m.metrics ? json_loads(m.metrics, 0, &e) : NULL;
        json_object_set_new(o, "sha256", json_string(m.sha256));
        json_object_set_new(o, "bytes", json_integer(m.bytes));
        if (m.job_id[0])
            json_object_set_new(o, "fine_tuning_job", json_string(m.job_id));
        json_object_set_new(o, "metrics", metrics ? metrics : json_null());
        job_model_release(&m);
    }
    return o;
}

static void models_list(struct srv_req *req, struct api_ctx *ctx)
{
    struct eng_served **all;
    struct job_model *rows = NULL;
    int n, nr = 0;
    if (eng_registry_list(ctx->registry, &all, &n)) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(data, full_model_json(ctx, all[i]));
        eng_served_unref(all[i]);
    }
    free(all);
    job_model_list(ctx->store, &rows, &nr);
    for (int i = 0; i < nr; i++) {
        struct eng_served *s = eng_registry_get(ctx->registry, rows[i].id);
        if (s)
            eng_served_unref(s);
        else
            json_array_append_new(data, db_model_json(&rows[i]));
        job_model_release(&rows[i]);
    }
    free(rows);
    srv_res_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void models_get(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct eng_served *s = eng_registry_get(ctx->registry, id);
    struct job_model m;
    if (s) {
        json_t *o = full_model_json(ctx, s);
        eng_served_unref(s);
        srv_res_json(req, 200, o);
    } else if (job_model_get(ctx->store, id, &m) == 0) {
        srv_res_json(req, 200, db_model_json(&m));
        job_model_release(&m);
    } else {
        api_errorf(req, 404, "id", "model_not_found", "model '%.200s' does not exist", id);
    }
}

/* ---- activation (hot-swap) ------------------------------------------------------------------ */

struct activation {
    struct api_ctx *ctx;
    struct srv_req *req; /* NULL when a finished job activates its model */
    char id[128], path[1024];
    struct eng_served *loaded;
    int activate;
    char err[512];
};

static void activation_db_done(void *arg, int status)
{
    struct activation *a = arg;
    if (status)
        log_error("model %s: cannot record the activation", a->id);
    free(a);
}

static int activation_db_tx(sqlite3 *db, void *arg)
{
    struct activation *a = arg;
    struct job_model m;
    memset(&m, 0, sizeof(m));
    struct eng_served *s = eng_registry_get(a->ctx->registry, a->id);
    snprintf(m.id, sizeof(m.id), "%s", a->id);
    snprintf(m.task, sizeof(m.task), "%s", s ? eng_task_name(s->task) : "classification");
    m.version = s ? s->version : 0;
    eng_served_unref(s);
    return job_model_activate_tx(db, &m);
}

/* Swap `id` in (loop thread), answer, and record it. Takes a. */
static void activation_finish(struct activation *a)
{
    struct api_ctx *ctx = a->ctx;
    int ok = !a->err[0];
    if (ok && a->activate && eng_registry_activate(ctx->registry, a->id)) {
        snprintf(a->err, sizeof(a->err), "model '%s' vanished before it could be activated", a->id);
        ok = 0;
    }
    if (ok && a->activate) {
        srv_server_set_not_ready(ctx->srv, NULL);
        log_info("model %s is now active", a->id);
    }
    if (a->req) {
        if (ok) {
            struct eng_served *s = eng_registry_get(ctx->registry, a->id);
            srv_res_json(a->req, 200, s ? full_model_json(ctx, s) : json_object());
            eng_served_unref(s);
        } else {
            api_error(a->req, 500, a->err, "id", "model_load_failed");
        }
        srv_req_unref(a->req);
        a->req = NULL;
    } else if (!ok) {
        log_error("model %s: %s", a->id, a->err);
    }
    if (ok && a->activate &&
        !store_writer_submit(ctx->writer, activation_db_tx, activation_db_done, a))
        return;
    free(a);
}

static void activation_load(uv_work_t *w)
{
    struct activation *a = w->data;
    if (eng_served_load(a->path, a->id, 0, &a->loaded, a->err))
        a->loaded = NULL;
    else
        eng_model_set_threads(a->loaded->model, a->ctx->engine_threads);
}

static void activation_loaded(uv_work_t *w, int status)
{
    struct activation *a = w->data;
    (void)status;
    free(w);
    if (a->loaded) {
        int rc = eng_registry_add(a->ctx->registry, a->loaded);
        eng_served_unref(a->loaded);
        a->loaded = NULL;
        if (rc && rc != ENG_EINVAL) /* EINVAL: loaded meanwhile by another activation */
            snprintf(a->err, sizeof(a->err), "out of memory registering the model");
        else
            a->err[0] = 0;
    } else if (!a->err[0]) {
        snprintf(a->err, sizeof(a->err), "cannot load '%.400s'", a->path);
    }
    activation_finish(a);
}

/* Load (if needed) and activate model `id` stored at `path`. Takes a. */
static void activation_start(struct activation *a)
{
    struct eng_served *s = eng_registry_get(a->ctx->registry, a->id);
    if (s) {
        eng_served_unref(s);
        activation_finish(a);
        return;
    }
    uv_work_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(a->err, sizeof(a->err), "out of memory");
        activation_finish(a);
        return;
    }
    w->data = a;
    if (uv_queue_work(srv_server_loop(a->ctx->srv), w, activation_load, activation_loaded)) {
        free(w);
        snprintf(a->err, sizeof(a->err), "cannot queue the model load");
        activation_finish(a);
    }
}

static void models_activate(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct job_model m;
    struct activation *a = calloc(1, sizeof(*a));
    if (!a) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    a->ctx = ctx;
    a->activate = 1;
    snprintf(a->id, sizeof(a->id), "%s", id);
    struct eng_served *s = eng_registry_get(ctx->registry, id);
    if (s) {
        snprintf(a->path, sizeof(a->path), "%s", s->path);
        eng_served_unref(s);
    } else if (job_model_get(ctx->store, id, &m) == 0) {
        snprintf(a->path, sizeof(a->path), "%s", m.path);
        job_model_release(&m);
    } else {
        free(a);
        api_errorf(req, 404, "id", "model_not_found", "model '%.200s' does not exist", id);
        return;
    }
    a->req = req;
    srv_req_ref(req);
    activation_start(a);
}

void api_models_load(struct api_ctx *ctx, const char *id, const char *path, int activate)
{
    struct activation *a = calloc(1, sizeof(*a));
    if (!a)
        return;
    a->ctx = ctx;
    a->activate = activate;
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->path, sizeof(a->path), "%s", path);
    activation_start(a);
}

void api_models_restore(struct api_ctx *ctx)
{
    struct job_model *rows = NULL;
    int n = 0;
    job_model_list(ctx->store, &rows, &n);
    for (int i = 0; i < n; i++) {
        if (rows[i].active) {
            log_info("restoring active model %s from %s", rows[i].id, rows[i].path);
            api_models_load(ctx, rows[i].id, rows[i].path, 1);
        }
        job_model_release(&rows[i]);
    }
    free(rows);
}

struct mdel {
    struct api_ctx *ctx;
    struct srv_req *req;
    struct job_model m;
};

static int mdel_tx(sqlite3 *db, void *arg)
{
    return job_model_delete_tx(db, &((struct mdel *)arg)->m);
}

static void mdel_done(void *arg, int status)
{
    struct mdel *d = arg;
    if (status == STORE_EEXIST)
        api_errorf(d->req, 409, "id", "model_active",
                   "model '%s' is active: activate another "
                   "first",
                   d->m.id);
    else if (status && status != STORE_ENOTFOUND)
        api_error(d->req, 500, "cannot delete the model: database error", NULL, NULL);
    else
        srv_res_json(d->req, 200,
                     json_pack("{s:s, s:s, s:b}", "id", d->m.id, "object", "model", "deleted", 1));
    srv_req_unref(d->req);
    free(d);
}

static void models_delete(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct eng_served *s = eng_registry_get(ctx->registry, id);
    struct job_model m;
    int in_db = job_model_get(ctx->store, id, &m) == 0;
    if (in_db)
        job_model_release(&m);
    if (!s && !in_db) {
        api_errorf(req, 404, "id", "model_not_found", "model '%.200s' does not exist", id);
        return;
    }
    if (s && eng_registry_is_active(ctx->registry, s)) {
        eng_served_unref(s);
        api_errorf(req, 409, "id", "model_active", "model '%s' is active: activate another first",
                   id);
        return;
    }
    if (s) {
        eng_served_unref(s);
        eng_registry_remove(ctx->registry, id);
    }
    struct mdel *d = calloc(1, sizeof(*d));
    if (!d) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    d->ctx = ctx;
    d->req = req;
    snprintf(d->m.id, sizeof(d->m.id), "%s", id);
    srv_req_ref(req);
    if (store_writer_submit(ctx->writer, mdel_tx, mdel_done, d)) {
        srv_req_unref(req);
        free(d);
        api_error(req, 500, "cannot queue the deletion", NULL, NULL);
    }
}

/* The request's model or any active one; answers 404/503. */
static struct eng_served *tok_model(struct srv_req *req, struct api_ctx *ctx, json_t *body)
{
    json_t *m = json_object_get(body, "model");
    struct eng_served *s = NULL;
    if (json_is_string(m)) {
        if (!(s = eng_registry_get(ctx->registry, json_string_value(m))))
            api_errorf(req, 404, "model", "model_not_found", "model '%s' does not exist",
                       json_string_value(m));
        return s;
    }
    for (int t = 0; !s && t < 3; t++)
        s = eng_registry_active(ctx->registry, (enum eng_task)t);
    if (!s)
        api_error(req, 503, "no model is active: name one with 'model'", "model",
                  "no_active_model");
    return s;
}

static void tokenize(struct srv_req *req, struct api_ctx *ctx)
{
    json_t *body = api_body_json(req), *content;
    struct eng_served *s = NULL;
    if (!body)
        return;
    content = json_object_get(body, "content");
    if (!json_is_string(content)) {
        api_error(req, 400, "'content' must be a string", "content", "invalid_value");
        goto out;
    }
    if (!(s = tok_model(req, ctx, body)))
        goto out;
    int32_t *ids = NULL;
    size_t n = 0;
    if (eng_tok_encode(s->tok, json_string_value(content), json_string_length(content), &ids, &n)) {
        api_error(req, 400, "'content' is not valid UTF-8", "content", "invalid_utf8");
        goto out;
    }
    int pieces = json_is_true(json_object_get(body, "with_pieces"));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!pieces) {
            json_array_append_new(arr, json_integer(ids[i]));
            continue;
        }
        char *txt = NULL;
        size_t len = 0;
        eng_tok_decode(s->tok, &ids[i], 1, 0, &txt, &len);
        json_array_append_new(
            arr, json_pack("{s:i, s:s%}", "id", ids[i], "piece", txt ? txt : "", txt ? len : 0));
        free(txt);
    }
    free(ids);
    srv_res_json(req, 200, json_pack("{s:o}", "tokens", arr));
out:
    eng_served_unref(s);
    json_decref(body);
}

static void detokenize(struct srv_req *req, struct api_ctx *ctx)
{
    json_t *body = api_body_json(req), *toks;
    struct eng_served *s = NULL;
    int32_t *ids = NULL;
    if (!body)
        return;
    toks = json_object_get(body, "tokens");
    if (!json_is_array(toks)) {
        api_error(req, 400, "'tokens' must be an array of token ids", "tokens", "invalid_value");
        goto out;
    }
    if (!(s = tok_model(req, ctx, body)))
        goto out;
    size_t n = json_array_size(toks);
    int32_t vocab = eng_tok_vocab_size(s->tok);
    ids = malloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; ids && i < n; i++) {
        json_t *v = json_array_get(toks, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
            api_errorf(req, 400, "tokens", "invalid_token",
                       "tokens[%zu] is not a token id in "
                       "[0, %d)",
                       i, (int)vocab);
            goto out;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    char *txt = NULL;
    size_t len = 0;
    if (!ids || eng_tok_decode(s->tok, ids, n, 0, &txt, &len)) {
        api_error(req, 400, "cannot decode these tokens", "tokens", "invalid_token");
        goto out;
    }
    srv_res_json(req, 200, json_pack("{s:s%}", "content", txt, len));
    free(txt);
out:
    free(ids);
    eng_served_unref(s);
    json_decref(body);
}

const struct api_route api_route_models_list = {"GET", "/v1/models", "models_list", SRV_SCOPE_INFER,
                                                0,     models_list};
const struct api_route api_route_models_get = {
    "GET", "/v1/models/{id}", "models_get", SRV_SCOPE_INFER, 0, models_get};
const struct api_route api_route_models_activate = {
    "POST", "/v1/models/{id}/activate", "models_activate", SRV_SCOPE_ADMIN, 0, models_activate};
const struct api_route api_route_models_delete = {
    "DELETE", "/v1/models/{id}", "models_delete", SRV_SCOPE_ADMIN, 0, models_delete};
const struct api_route api_route_tokenize = {"POST",          "/tokenize", "tokenize",
                                             SRV_SCOPE_INFER, 1 << 20,     tokenize};
const struct api_route api_route_detokenize = {"POST",          "/detokenize", "detokenize",
                                               SRV_SCOPE_INFER, 1 << 20,       detokenize};
