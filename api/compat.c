/*
 * api/compat.c — classification in the shapes other servers answer, so their clients work
 * unchanged (infer scope). Both run /v1/classify's path (api/infer.c: model choice, input limit
 * of 256, the engine scheduler's batching and errors); only the request and answer differ.
 *
 *   POST /classify  vLLM's (vllm/entrypoints/pooling/classify/protocol.py, ClassificationResponse):
 *                   {"model"?, "input": str|[str], "truncate_prompt_tokens"?: -1|k,
 *                    "truncation_side"?: "left"|"right", "use_activation"?, "user"?}
 *                   -> {"id","object":"list","created","model","data":[{"index","label",
 *                       "probs":[p in class order],"num_classes"}],"usage":{"prompt_tokens",
 *                       "total_tokens","completion_tokens":0,"prompt_tokens_details":null}}
 *                   Errors in the API's usual shape (vLLM's is the same OpenAI shape).
 *   POST /predict   Hugging Face TEI's (router/src/http/types.rs, PredictRequest):
 *                   {"inputs": str | [a] | [a,b] | [[a],[a,b],...], "truncate"?,
 *                    "truncation_direction"?: "left"|"right", "raw_scores"?, "model"?}
 *                   -> [{"label","score"}] sorted by score, highest first, or one such list per
 *                   input of a batch. Errors as TEI's: {"error","error_type"}.
 *
 * Truncation follows each project's defaults: an input longer than the context is refused (400)
 * unless the request asks to cut it (vLLM: truncate_prompt_tokens -1 = the context, or k tokens
 * counting the template, keeping the end by default; TEI: truncate true, cutting the end by
 * default). The cut always comes off the input text; the template stays whole.
 * Sentence pairs: TEI's [a, b] fills a model's {text} with a and {text_b} with b (a student of a
 * pair task such as MNLI or QNLI carries that template); truncate then cuts a first, then b, as
 * the trainer does (eng_fit_texts). A pair sent to a one-slot model, or one text sent to a pair
 * model, is refused (400 naming inputs). vLLM's /classify has no pair form (its pairs go to
 * /score), so a pair model answers it 400 naming input.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/infer.h"

#define COMPAT_MAX_INPUTS 256

struct compat_arg {
    int raw;     /* answer the logits, not the softmax */
    int batch;   /* TEI: a list of lists, even of one */
    char id[64]; /* vLLM: "classify-" + request id */
};

/* ---- errors in TEI's shape ----------------------------------------------------------------- */

extern const struct api_route api_route_tei_predict;

/* TEI's error_type for a status (router/src/lib.rs, ErrorType and its status codes). */
static const char *tei_error_type(int status, const char *code)
{
    if (code && !strcmp(code, "empty"))
        return "empty";
    switch (status) {
    case 422: return "tokenizer";
    case 429: return "overloaded";
    case 503: return "unhealthy";
    }
    return status >= 500 ? "backend" : "validation";
}

int api_compat_error(struct srv_req *req, int status, const char *message, const char *code)
{
    if (srv_req_data(req) != &api_route_tei_predict)
        return 0;
    json_t *o =
        json_pack("{s:s, s:s}", "error", message, "error_type", tei_error_type(status, code));
    if (!o)
        return 0;
    srv_res_json(req, status, o);
    return 1;
}

/* ---- request parsing ---------------------------------------------------------------------- */

/* "left" or "right" (any case) in body[name]; *left = 1 for left. Answers 400 otherwise. */
static int get_side(struct srv_req *req, json_t *body, const char *name, int *left)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v) && !strcasecmp(json_string_value(v), "left"))
        *left = 1;
    else if (json_is_string(v) && !strcasecmp(json_string_value(v), "right"))
        *left = 0;
    else {
        api_errorf(req, 400, name, "invalid_value", "'%s' must be \"left\" or \"right\"", name);
        return -1;
    }
    return 0;
}

/* Allocate job->logits when the answer wants raw scores. 0 or -1 (answered). */
static int want_logits(struct srv_req *req, struct eng_request *job, int raw)
{
    if (raw &&
        !(job->logits = calloc((size_t)job->ninputs * job->model->meta.nlabels, sizeof(float)))) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return -1;
    }
    return 0;
}

/* ---- vLLM: POST /classify ------------------------------------------------------------------ */

static void vllm_answer(struct srv_req *req, const struct eng_request *j, long created, void *arg)
{
    const struct compat_arg *a = arg;
    const struct eng_served *m = j->model;
    int nl = m->meta.nlabels;
    json_t *data = json_array();
    int oom = !data;
    for (int i = 0; i < j->ninputs && !oom; i++) {
        const float *v = (a->raw ? j->logits : j->probs) + (size_t)i * nl;
        json_t *probs = json_array();
        oom = !probs;
        for (int k = 0; k < nl && !oom; k++)
            oom = json_array_append_new(probs, json_real(v[k]));
        json_t *item =
            oom ? NULL
                : json_pack("{s:i, s:s, s:o, s:i}", "index", i, "label", m->meta.labels[j->best[i]],
                            "probs", probs, "num_classes", nl);
        if (oom) /* not handed to json_pack, which takes it even when it fails */
            json_decref(probs);
        oom = !item || json_array_append_new(data, item);
    }
    json_t *o =
        oom ? NULL
            : json_pack("{s:s, s:s, s:I, s:s, s:o, s:{s:i, s:i, s:i, s:n}}", "id", a->id, "object",
                        "list", "created", (json_int_t)created, "model", m->id, "data", data,
                        "usage", "prompt_tokens", j->prompt_tokens, "total_tokens",
                        j->prompt_tokens, "completion_tokens", 0, "prompt_tokens_details");
    if (!o) {
        if (oom)
            json_decref(data);
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    srv_res_json(req, 200, o);
}

static const struct api_infer_shape vllm_shape = {vllm_answer};

static void vllm_classify(struct srv_req *req, struct api_ctx *ctx)
{
    static const char *const keys[] = {
        "model", "input", "truncate_prompt_tokens", "truncation_side", "use_activation",
        "user",  NULL};
    json_t *body = api_body_json(req), *texts[COMPAT_MAX_INPUTS];
    struct eng_request *job = NULL;
    struct compat_arg *a = NULL;
    int left = 1, activation = 1;
    long tpt = 0;
    size_t n;
    if (!body)
        return;
    if (api_infer_only_keys(req, body, keys) || get_side(req, body, "truncation_side", &left) ||
        api_infer_get_bool(req, body, "use_activation", &activation))
        goto out;
    json_t *t = json_object_get(body, "truncate_prompt_tokens");
    if (t && !json_is_null(t)) {
        tpt = json_is_integer(t) ? (long)json_integer_value(t) : 0;
        if (tpt < -1 || tpt == 0 || tpt > 1L << 30) {
            api_error(req, 400,
                      "'truncate_prompt_tokens' must be -1 (the model's context) or "
                      "a positive number of tokens",
                      "truncate_prompt_tokens", "invalid_value");
            goto out;
        }
    }
    if (api_infer_inputs(req, body, texts, &n) ||
        !(job = api_infer_classify_job(req, ctx, body, texts, NULL, n, "input",
                                       "/predict's \"inputs\": [text, text_b] or /v1/classify's "
                                       "'text_pair' (vLLM's /classify has no pair form)")))
        goto out;
    job->truncate = tpt != 0;
    job->truncate_tokens = tpt > 0 ? (int)tpt : 0;
    job->truncate_left = left;
    if (want_logits(req, job, !activation))
        goto out;
    if (!(a = calloc(1, sizeof(*a)))) {
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    a->raw = !activation;
    snprintf(a->id, sizeof(a->id), "classify-%.48s", srv_req_id(req));
    api_infer_classify_submit(req, ctx, job, &vllm_shape, a);
    job = NULL;
out:
    eng_request_free(job);
    json_decref(body);
}

/* ---- TEI: POST /predict -------------------------------------------------------------------- */

/* One input's predictions, highest score first (TEI sorts by score and reverses). */
static json_t *tei_predictions(const struct eng_served *m, const float *v)
{
    int nl = m->meta.nlabels, *order = malloc((size_t)nl * sizeof(int));
    json_t *list = order ? json_array() : NULL;
    for (int k = 0; list && k < nl; k++)
        order[k] = k;
    for (int a = 1; a < nl; a++)
        for (int b = a; b > 0 && v[order[b]] > v[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int k = 0; list && k < nl; k++) {
        json_t *p = json_pack("{s:s, s:f}", "label", m->meta.labels[order[k]], "score",
                              (double)v[order[k]]);
        if (!p || json_array_append_new(list, p)) {
            json_decref(list);
            list = NULL;
        }
    }
    free(order);
    return list;
}

static void tei_answer(struct srv_req *req, const struct eng_request *j, long created, void *arg)
{
    const struct compat_arg *a = arg;
    int nl = j->model->meta.nlabels;
    json_t *o = a->batch ? json_array() : NULL;
    (void)created;
    for (int i = 0; i < j->ninputs && (o || !a->batch); i++) {
        json_t *one = tei_predictions(j->model, (a->raw ? j->logits : j->probs) + (size_t)i * nl);
        if (!a->batch) {
            o = one;
            break;
        }
        if (!one || json_array_append_new(o, one)) {
            json_decref(o);
            o = NULL;
        }
    }
    if (!o) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    srv_res_json(req, 200, o);
}

static const struct api_infer_shape tei_shape = {tei_answer};

/*
 * TEI's grammar of `inputs` (types.rs, PredictInput): a string; a list whose first element is a
 * string is ONE sequence: [a] or the pair [a, b]; a list whose first element is a list is a
 * batch of [a] / [a, b]. Fills texts (one per sequence), texts_b (b of a pair, else NULL) and
 * *batch; answers 400/413 and returns -1 on error.
 */
static int tei_inputs(struct srv_req *req, json_t *in, json_t **texts, json_t **texts_b, size_t *n,
                      int *batch)
{
    *batch = json_is_array(in) && json_array_size(in) > 0 && json_is_array(json_array_get(in, 0));
    if (json_is_string(in)) {
        texts[0] = in;
        texts_b[0] = NULL;
        *n = 1;
        return 0;
    }
    if (!json_is_array(in)) {
        api_error(req, 400,
                  "'inputs' must be a string, a pair of strings [string, string] or a "
                  "batch of them [[string], [string, string], ...]",
                  "inputs", "invalid_value");
        return -1;
    }
    if (json_array_size(in) == 0) {
        api_error(req, 400, "'inputs' is empty", "inputs", "empty");
        return -1;
    }
    *n = *batch ? json_array_size(in) : 1;
    if (*n > COMPAT_MAX_INPUTS) {
        api_errorf(req, 413, "inputs", "invalid_value",
                   "batch size %zu > maximum allowed batch size %d", *n, COMPAT_MAX_INPUTS);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        json_t *seq = *batch ? json_array_get(in, i) : in;
        size_t k = json_is_array(seq) ? json_array_size(seq) : 0;
        for (size_t e = 0; e < k; e++)
            if (!json_is_string(json_array_get(seq, e)))
                k = 0;
        if (k != 1 && k != 2) {
            api_errorf(req, 400, "inputs", "invalid_value",
                       "'inputs%s' must be [string] or a pair [string, string]",
                       *batch ? "[i]" : "");
            return -1;
        }
        texts[i] = json_array_get(seq, 0);
        texts_b[i] = k == 2 ? json_array_get(seq, 1) : NULL;
    }
    return 0;
}

static void tei_predict(struct srv_req *req, struct api_ctx *ctx)
{
    static const char *const keys[] = {"inputs",     "truncate", "truncation_direction",
                                       "raw_scores", "model",    NULL};
    json_t *body = api_body_json(req), *texts[COMPAT_MAX_INPUTS], *texts_b[COMPAT_MAX_INPUTS];
    struct eng_request *job = NULL;
    struct compat_arg *a = NULL;
    int truncate = 0, left = 0, raw = 0, batch = 0;
    size_t n = 0;
    if (!body)
        return;
    if (api_infer_only_keys(req, body, keys) ||
        api_infer_get_bool(req, body, "truncate", &truncate) ||
        api_infer_get_bool(req, body, "raw_scores", &raw) ||
        get_side(req, body, "truncation_direction", &left) ||
        tei_inputs(req, json_object_get(body, "inputs"), texts, texts_b, &n, &batch) ||
        !(job = api_infer_classify_job(req, ctx, body, texts, texts_b, n, "inputs",
                                       "'inputs' as a pair [text, text_b]")))
        goto out;
    job->truncate = truncate;
    job->truncate_left = left;
    if (want_logits(req, job, raw))
        goto out;
    if (!(a = calloc(1, sizeof(*a)))) {
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    a->raw = raw;
    a->batch = batch;
    api_infer_classify_submit(req, ctx, job, &tei_shape, a);
    job = NULL;
out:
    eng_request_free(job);
    json_decref(body);
}

const struct api_route api_route_vllm_classify = {"POST",          "/classify", "classify_vllm",
                                                  SRV_SCOPE_INFER, 0,           vllm_classify};
const struct api_route api_route_tei_predict = {"POST",          "/predict", "predict_tei",
                                                SRV_SCOPE_INFER, 0,          tei_predict};
