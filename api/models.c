/*
 * api/models.c — the served models, and tokenizing with them (llama.cpp's shapes):
 *   GET  /v1/models          {"object":"list","data":[{id,object:"model",created,owned_by,task,
 *                             status,active,version,resident_bytes,labels,path}]}
 *   GET  /v1/models/{id}
 *   POST /tokenize           {"content", "model"?, "with_pieces"?} -> {"tokens":[...]} (or
 *                             [{"id","piece"}] with with_pieces)
 *   POST /detokenize         {"tokens":[...], "model"?} -> {"content"}
 * Tokenizing runs on the loop thread: bodies are capped at 1 MiB and BPE runs at tens of MB/s.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "engine/registry.h"

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

static void models_list(struct srv_req *req, struct api_ctx *ctx)
{
    struct eng_served **all;
    int n;
    if (eng_registry_list(ctx->registry, &all, &n)) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(data, model_json(ctx, all[i]));
        eng_served_unref(all[i]);
    }
    free(all);
    srv_res_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void models_get(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct eng_served *s = eng_registry_get(ctx->registry, id);
    if (!s) {
        api_errorf(req, 404, "id", "model_not_found", "model '%.200s' does not exist", id);
        return;
    }
    json_t *o = model_json(ctx, s);
    eng_served_unref(s);
    srv_res_json(req, 200, o);
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
    if (eng_tok_encode(s->tok, json_string_value(content), json_string_length(content), &ids,
                       &n)) {
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
        json_array_append_new(arr, json_pack("{s:i, s:s%}", "id", ids[i], "piece",
                                             txt ? txt : "", txt ? len : 0));
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
            api_errorf(req, 400, "tokens", "invalid_token", "tokens[%zu] is not a token id in "
                       "[0, %d)", i, (int)vocab);
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

const struct api_route api_route_models_list = {"GET", "/v1/models", "models_list",
                                                SRV_SCOPE_INFER, 0, models_list};
const struct api_route api_route_models_get = {"GET", "/v1/models/{id}", "models_get",
                                               SRV_SCOPE_INFER, 0, models_get};
const struct api_route api_route_tokenize = {"POST", "/tokenize", "tokenize", SRV_SCOPE_INFER,
                                             1 << 20, tokenize};
const struct api_route api_route_detokenize = {"POST", "/detokenize", "detokenize",
                                               SRV_SCOPE_INFER, 1 << 20, detokenize};
