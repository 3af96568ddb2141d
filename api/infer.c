/*
 * api/infer.c — inference routes (infer scope):
 *   POST /v1/classify     {"model"?, "input": str|[str], "text_pair"?: str|[str], "top_k"?,
 *                          "truncate"?} (text_pair: the second texts of sentence pairs)
 *   POST /v1/summarize    {"model"?, "input", "max_tokens"?, "stream"?, "truncate"?}
 *   POST /v1/completions  OpenAI text completions (prompt, max_tokens, temperature, top_p,
 *                         seed, stop, stream, n, logprobs)
 *   POST /v1/chat/completions  OpenAI chat completions: the messages rendered by the model's
 *                         chat template (engine/chat.h), then generated as a completion
 *                         (n choices share one prefill; logprobs, top_logprobs)
 *   POST /apply-template  llama.cpp's: {"messages"} -> {"prompt"} (the rendered template)
 * The handler validates the JSON, picks the model (the request's, or the active one of the
 * task) and submits a job to the engine scheduler (engine/sched.h); tokenization, truncation and
 * inference run on the engine workers.
 *
 * Overload: when the engine's queue is full (--queue-size), the request waits, parked in a FIFO
 * on the loop thread, for up to --queue-wait-ms; parked requests enter the queue in order as
 * jobs finish, and one still parked at its deadline gets 429 with Retry-After. A parked client
 * (one request per connection at a time) sends nothing more, so clients that resend at once do
 * not turn the loop thread into a 429 generator that takes the engine's cores: the engine keeps
 * its goodput and an accepted request waits at most queue-wait-ms plus its time in the queue. Results come back through the scheduler's drain on the
 * loop thread (api_infer_drain). A stream starts only when the first text (or the completion)
 * arrives, so every error the engine can find before generating is a proper HTTP status;
 * errors after the first byte are sent as `data: {"error":...}`.
 *
 * Response headers: x-queue-time and x-inference-time (ms), x-prompt-tokens,
 * x-generated-tokens (on streams: the queue time and prompt tokens, known at the first byte).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/infer.h"
#include "engine/chat.h"
#include "engine/err.h"
#include "server/metrics.h"

#define MAX_INPUTS 256
#define MAX_STOP 4

enum infer_kind { INFER_CLASSIFY, INFER_SUMMARIZE, INFER_COMPLETE, INFER_CHAT };

struct infer_text {
    char *p;
    size_t n, cap;
};

struct infer_req {
    struct srv_req *req; /* referenced */
    struct api_ctx *ctx;
    struct eng_request *parked; /* while parked: the job waiting for a place (owned) */
    struct infer_req *park_next;
    uint64_t park_deadline; /* uv_now, ms */
    enum infer_kind kind;
    int stream;
    int include_usage; /* chat streams: stream_options.include_usage */
    int started;       /* stream started (first byte sent) */
    int top_k;
    const struct api_infer_shape *shape; /* classify answered in another shape (api/compat.c) */
    void *shape_arg;                     /* owned (malloc'd) */
    int logprobs;                        /* -1: none; else alternatives per token */
    size_t prompt_len;                   /* completions: bytes of the prompt (text_offset) */
    char id[48];
    long created;
    struct infer_text text[ENG_MAX_CHOICES]; /* per choice (non-stream answers) */
    json_t *lp[ENG_MAX_CHOICES];             /* per choice logprob entries (owned) */
    size_t lp_off[ENG_MAX_CHOICES];          /* completions: text bytes before the next token */
    int role_sent[ENG_MAX_CHOICES];          /* chat streams: first delta with the role sent */
};

static void text_add(struct infer_text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t nc = (t->n + n + 1) * 2;
        char *np = realloc(t->p, nc);
        if (!np)
            return;
        t->p = np;
        t->cap = nc;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = 0;
}

static void infer_free(struct infer_req *ir)
{
    srv_req_unref(ir->req);
    free(ir->shape_arg);
    for (int i = 0; i < ENG_MAX_CHOICES; i++) {
        free(ir->text[i].p);
        json_decref(ir->lp[i]);
    }
    free(ir);
}

/* ---- request parsing -------------------------------------------------------------------- */

/* Check `body` has only the keys in `allowed` (NULL-terminated); answers 400 if not. */
static int only_keys(struct srv_req *req, json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(*a, key);
        if (!ok) {
            api_errorf(req, 400, key, "unknown_parameter", "unknown parameter '%s'", key);
            return -1;
        }
    }
    return 0;
}

/* Optional integer field in [lo, hi]; answers 400 naming it. */
static int get_int(struct srv_req *req, json_t *body, const char *name, long lo, long hi, long *out)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        api_errorf(req, 400, name, "invalid_value", "'%s' must be an integer from %ld to %ld", name,
                   lo, hi);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

static int get_num(struct srv_req *req, json_t *body, const char *name, double lo, double hi,
                   double *out)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        api_errorf(req, 400, name, "invalid_value", "'%s' must be a number from %g to %g", name, lo,
                   hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int get_bool(struct srv_req *req, json_t *body, const char *name, int *out)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        api_errorf(req, 400, name, "invalid_value", "'%s' must be true or false", name);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/*
 * The model: `model` from the body, or the active one of `task` (with any_task, the active model
 * of any task, generation first). Answers 404/503 on failure. Returns a new reference.
 */
static struct eng_served *pick_model(struct srv_req *req, struct api_ctx *ctx, json_t *body,
                                     enum eng_task task, int any_task)
{
    json_t *m = json_object_get(body, "model");
    struct eng_served *s;
    if (m && !json_is_null(m)) {
        if (!json_is_string(m)) {
            api_error(req, 400, "'model' must be a string", "model", "invalid_value");
            return NULL;
        }
        if (!(s = eng_registry_get(ctx->registry, json_string_value(m))))
            api_errorf(req, 404, "model", "model_not_found", "model '%s' does not exist",
                       json_string_value(m));
        return s;
    }
    s = eng_registry_active(ctx->registry, task);
    for (int t = 0; !s && any_task && t < 3; t++)
        s = eng_registry_active(ctx->registry, (enum eng_task)t);
    if (!s)
        api_errorf(req, 503, "model", "no_active_model",
                   "no %smodel is active: name one with 'model' or activate one",
                   any_task                          ? ""
                   : task == ENG_TASK_CLASSIFICATION ? "classification "
                   : task == ENG_TASK_SUMMARIZATION  ? "summarization "
                                                     : "");
    return s;
}

/* ---- waiting for a place in the engine's queue ------------------------------------------- */

/* Requests parked while the engine's queue is full (loop thread only), oldest first. */
struct api_infer {
    struct infer_req *head, *tail;
    int n;
    uv_timer_t timer; /* fires at the oldest deadline */
};

/* Refuse ir's job with 429 (its request, if still there) and free both. */
static void refuse(struct infer_req *ir, struct eng_request *job)
{
    struct srv_req *req = ir->req;
    if (srv_req_alive(req)) {
        srv_res_header(req, "Retry-After", "1");
        api_error(req, 429, "the inference queue is full: retry later", NULL, "queue_full");
    }
    infer_free(ir);
    eng_request_free(job);
}

static void park_timer_cb(uv_timer_t *t);

static void park_arm(struct api_infer *pk)
{
    if (!pk->head) {
        uv_timer_stop(&pk->timer);
        return;
    }
    uint64_t now = uv_now(pk->timer.loop);
    uint64_t due = pk->head->park_deadline;
    uv_timer_start(&pk->timer, park_timer_cb, due > now ? due - now : 0, 0);
}

/*
 * Move parked requests into the engine's queue in order while it has room; drop those whose
 * client left; with `expire`, refuse (429) those past their deadline. Re-arms the timer.
 */
static void park_flush(struct api_ctx *ctx, int expire)
{
    struct api_infer *pk = ctx->infer;
    if (!pk)
        return;
    uint64_t now = uv_now(pk->timer.loop);
    while (pk->head) {
        struct infer_req *ir = pk->head;
        struct eng_request *job = ir->parked;
        int alive = srv_req_alive(ir->req);
        int queued = alive && eng_sched_submit(ctx->sched, job) == 0;
        if (alive && !queued && (!expire || ir->park_deadline > now))
            break; /* still no room, and time left */
        pk->head = ir->park_next;
        if (!pk->head)
            pk->tail = NULL;
        pk->n--;
        ir->parked = NULL;
        ir->park_next = NULL;
        if (!queued) /* the client left, or its wait is over: 429 */
            refuse(ir, job);
    }
    park_arm(pk);
}

static void park_timer_cb(uv_timer_t *t)
{
    park_flush(t->data, 1);
}

/* Park ir with its job (ownership passes to the park). Returns 0, or -1 (out of memory). */
static int park(struct api_ctx *ctx, struct infer_req *ir, struct eng_request *job)
{
    struct api_infer *pk = ctx->infer;
    if (!pk) {
        if (!(pk = calloc(1, sizeof(*pk))))
            return -1;
        uv_timer_init(srv_server_loop(ctx->srv), &pk->timer);
        pk->timer.data = ctx;
        ctx->infer = pk;
    }
    ir->parked = job;
    ir->park_next = NULL;
    ir->park_deadline =
        uv_now(pk->timer.loop) + (uint64_t)srv_server_config(ctx->srv)->queue_wait_ms;
    if (pk->tail)
        pk->tail->park_next = ir;
    else
        pk->head = ir;
    pk->tail = ir;
    if (pk->n++ == 0)
        park_arm(pk);
    return 0;
}

/*
 * Submit the job; when the engine's queue is full (or others wait already: first come, first
 * served), park it for up to queue-wait-ms; with no wait allowed, answer 429. Takes the job.
 */
static void submit(struct srv_req *req, struct api_ctx *ctx, struct eng_request *job,
                   struct infer_req *ir)
{
    ir->req = req;
    ir->ctx = ctx;
    ir->created = (long)time(NULL);
    snprintf(ir->id, sizeof(ir->id), "%s-%.24s",
             ir->kind == INFER_CLASSIFY    ? "cls"
             : ir->kind == INFER_SUMMARIZE ? "sum"
             : ir->kind == INFER_CHAT      ? "chatcmpl"
                                           : "cmpl",
             srv_req_id(req));
    job->user = ir;
    srv_req_ref(req);
    if ((!ctx->infer || !ctx->infer->head) && !eng_sched_submit(ctx->sched, job))
        return;
    if (srv_server_config(ctx->srv)->queue_wait_ms > 0 && !park(ctx, ir, job))
        return;
    refuse(ir, job);
}

int api_infer_inputs(struct srv_req *req, json_t *body, json_t **texts, size_t *n)
{
    json_t *in = json_object_get(body, "input");
    *n = json_is_array(in) ? json_array_size(in) : 1;
    if (!in || (!json_is_string(in) && !json_is_array(in))) {
        api_error(req, 400, "'input' must be a string or an array of strings", "input",
                  "invalid_value");
        return -1;
    }
    if (*n == 0 || *n > MAX_INPUTS) {
        api_errorf(req, *n ? 413 : 400, "input", "invalid_value",
                   "'input' has %zu items; send 1 to %d", *n, MAX_INPUTS);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        texts[i] = json_is_array(in) ? json_array_get(in, i) : in;
        if (!json_is_string(texts[i])) {
            api_errorf(req, 400, "input", "invalid_value", "'input[%zu]' must be a string", i);
            return -1;
        }
    }
    return 0;
}

int api_infer_text_pairs(struct srv_req *req, json_t *body, json_t **texts_b, size_t n, int *has)
{
    json_t *in = json_object_get(body, "input"), *tp = json_object_get(body, "text_pair");
    *has = tp && !json_is_null(tp);
    if (!*has)
        return 0;
    if (json_is_array(in) ? !json_is_array(tp) || json_array_size(tp) != n : !json_is_string(tp)) {
        api_errorf(req, 400, "text_pair", "invalid_value",
                   "'text_pair' must be shaped as 'input': %s",
                   json_is_array(in) ? "a list of as many strings" : "a string");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        texts_b[i] = json_is_array(tp) ? json_array_get(tp, i) : tp;
        if (!json_is_string(texts_b[i])) {
            api_errorf(req, 400, "text_pair", "invalid_value", "'text_pair[%zu]' must be a string",
                       i);
            return -1;
        }
    }
    return 0;
}

struct eng_request *api_infer_classify_job(struct srv_req *req, struct api_ctx *ctx, json_t *body,
                                           json_t *const *texts, json_t *const *texts_b, size_t n,
                                           const char *pair_field, const char *pair_how)
{
    struct eng_served *model = pick_model(req, ctx, body, ENG_TASK_CLASSIFICATION, 0);
    struct eng_request *job = NULL;
    if (!model)
        return NULL;
    if (model->task != ENG_TASK_CLASSIFICATION) {
        api_errorf(req, 400, "model", "wrong_task",
                   "model '%s' is a %s model, not a "
                   "classification model",
                   model->id, eng_task_name(model->task));
        goto out;
    }
    int pair = eng_served_is_pair(model);
    for (size_t i = 0; i < n; i++) {
        if (pair && !(texts_b && texts_b[i])) {
            api_errorf(req, 400, pair_field, "invalid_value",
                       "model '%s' classifies sentence pairs (its template has {text} and "
                       "{text_b}): input %zu has no second text; send it in %s",
                       model->id, i, pair_how);
            goto out;
        }
        if (!pair && texts_b && texts_b[i]) {
            api_errorf(req, 400, pair_field, "invalid_value",
                       "sentence pairs are not supported by model '%s': its template has one "
                       "{text} slot (input %zu is a pair)",
                       model->id, i);
            goto out;
        }
    }
    job = eng_request_new(ENG_REQ_CLASSIFY, model);
    if (!job || !(job->inputs = calloc(n, sizeof(char *))) ||
        (pair && !(job->inputs_b = calloc(n, sizeof(char *)))))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        job->ninputs = (int)i + 1;
        if (!(job->inputs[i] = strndup(json_string_value(texts[i]), json_string_length(texts[i]))))
            goto oom;
        if (pair && !(job->inputs_b[i] =
                          strndup(json_string_value(texts_b[i]), json_string_length(texts_b[i]))))
            goto oom;
    }
    goto out;
oom:
    eng_request_free(job);
    job = NULL;
    api_error(req, 500, "out of memory", NULL, NULL);
out:
    eng_served_unref(model);
    return job;
}

static void classify(struct srv_req *req, struct api_ctx *ctx)
{
    static const char *const keys[] = {"model",    "input", "text_pair", "top_k",
                                       "truncate", "user",  NULL};
    json_t *body = api_body_json(req), *texts[MAX_INPUTS], *texts_b[MAX_INPUTS];
    struct eng_request *job = NULL;
    long top_k = 0;
    int truncate = 1, pairs = 0;
    size_t n;
    if (!body)
        return;
    if (only_keys(req, body, keys) || get_int(req, body, "top_k", 1, 1000, &top_k) ||
        get_bool(req, body, "truncate", &truncate) || api_infer_inputs(req, body, texts, &n) ||
        api_infer_text_pairs(req, body, texts_b, n, &pairs) ||
        !(job = api_infer_classify_job(req, ctx, body, texts, pairs ? texts_b : NULL, n,
                                       "text_pair", "'text_pair'")))
        goto out;
    struct infer_req *ir = calloc(1, sizeof(*ir));
    if (!ir) {
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    job->truncate = truncate;
    ir->kind = INFER_CLASSIFY;
    ir->top_k = (int)top_k;
    submit(req, ctx, job, ir);
    job = NULL;
out:
    eng_request_free(job);
    json_decref(body);
}

/* Shared by summarize and completions: sampling options and stop strings. */
static int gen_options(struct srv_req *req, json_t *body, struct eng_request *job, int max_default)
{
    long max_tokens = max_default, seed = 0;
    double temp = 0.0, top_p = 1.0;
    if (get_int(req, body, "max_tokens", 1, 4096, &max_tokens) ||
        get_int(req, body, "max_completion_tokens", 1, 4096, &max_tokens) ||
        get_num(req, body, "temperature", 0.0, 2.0, &temp) ||
        get_num(req, body, "top_p", 1e-6, 1.0, &top_p) ||
        get_int(req, body, "seed", -(1L << 62), 1L << 62, &seed))
        return -1;
    job->max_tokens = (int)max_tokens;
    job->temperature = (float)temp;
    job->top_p = (float)top_p;
    job->seed = (uint64_t)seed;
    json_t *stop = json_object_get(body, "stop");
    if (stop && !json_is_null(stop)) {
        size_t n = json_is_array(stop) ? json_array_size(stop) : 1;
        if ((!json_is_string(stop) && !json_is_array(stop)) || n > MAX_STOP) {
            api_errorf(req, 400, "stop", "invalid_value",
                       "'stop' must be a string or an array of at most %d strings", MAX_STOP);
            return -1;
        }
        job->stop = calloc(n, sizeof(char *));
        for (size_t i = 0; job->stop && i < n; i++) {
            json_t *s = json_is_array(stop) ? json_array_get(stop, i) : stop;
            if (!json_is_string(s) || json_string_length(s) == 0) {
                api_error(req, 400, "each stop sequence must be a non-empty string", "stop",
                          "invalid_value");
                return -1;
            }
            job->stop[job->nstop++] = strdup(json_string_value(s));
        }
    }
    return 0;
}

static void generate(struct srv_req *req, struct api_ctx *ctx, enum infer_kind kind)
{
    static const char *const sum_keys[] = {"model",       "input", "max_tokens", "stream",
                                           "temperature", "top_p", "seed",       "user",
                                           "truncate",    NULL};
    static const char *const cmp_keys[] = {"model",
                                           "prompt",
                                           "max_tokens",
                                           "stream",
                                           "temperature",
                                           "top_p",
                                           "seed",
                                           "stop",
                                           "n",
                                           "user",
                                           "echo",
                                           "logprobs",
                                           "stream_options",
                                           "presence_penalty",
                                           "frequency_penalty",
                                           NULL};
    json_t *body = api_body_json(req);
    struct eng_served *model = NULL;
    struct eng_request *job = NULL;
    int stream = 0, truncate = 1;
    if (!body)
        return;
    if (only_keys(req, body, kind == INFER_SUMMARIZE ? sum_keys : cmp_keys) ||
        get_bool(req, body, "stream", &stream) ||
        (kind == INFER_SUMMARIZE && get_bool(req, body, "truncate", &truncate)))
        goto out;
    const char *field = kind == INFER_SUMMARIZE ? "input" : "prompt";
    json_t *in = json_object_get(body, field);
    if (json_is_array(in) && json_array_size(in) == 1 && kind == INFER_COMPLETE)
        in = json_array_get(in, 0); /* OpenAI clients send a one-element list */
    if (!json_is_string(in) || json_string_length(in) == 0) {
        api_errorf(req, 400, field, "invalid_value", "'%s' must be a non-empty string", field);
        goto out;
    }
    long n_choices = 1, logprobs = -1;
    if (get_int(req, body, "n", 1, ENG_MAX_CHOICES, &n_choices) ||
        get_int(req, body, "logprobs", 0, ENG_MAX_TOP_LOGPROBS, &logprobs))
        goto out;
    if (kind == INFER_SUMMARIZE)
        n_choices = 1;
    if (json_is_true(json_object_get(body, "echo"))) {
        api_error(req, 400, "echo is not supported", "echo", "unsupported");
        goto out;
    }
    if (!(model = pick_model(req, ctx, body,
                             kind == INFER_SUMMARIZE ? ENG_TASK_SUMMARIZATION : ENG_TASK_GENERATION,
                             kind == INFER_COMPLETE)))
        goto out;
    job = eng_request_new(ENG_REQ_GENERATE, model);
    struct infer_req *ir = calloc(1, sizeof(*ir));
    if (!job || !ir) {
        free(ir);
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    if (gen_options(req, body, job, kind == INFER_SUMMARIZE ? 128 : 16)) {
        free(ir);
        goto out;
    }
    job->n_choices = (int)n_choices;
    job->logprobs = (int)logprobs;
    ir->logprobs = (int)logprobs;
    ir->prompt_len = json_string_length(in);
    job->prompt = kind == INFER_SUMMARIZE
                      ? eng_served_prompt(model, json_string_value(in), json_string_length(in))
                      : strndup(json_string_value(in), json_string_length(in));
    if (!job->prompt) {
        free(ir);
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    if (kind == INFER_SUMMARIZE) {
        /* the article is the template's {text}: the engine cuts its end when it does not fit */
        const char *t = model->meta.template, *at = t ? strstr(t, "{text}") : NULL;
        job->truncate_prompt = truncate;
        job->text_off = at ? (size_t)(at - t) : 0;
        job->text_len = json_string_length(in);
    }
    ir->kind = kind;
    ir->stream = stream;
    submit(req, ctx, job, ir);
    job = NULL;
out:
    eng_request_free(job);
    eng_served_unref(model);
    json_decref(body);
}

static void summarize(struct srv_req *req, struct api_ctx *ctx)
{
    generate(req, ctx, INFER_SUMMARIZE);
}

static void completions(struct srv_req *req, struct api_ctx *ctx)
{
    generate(req, ctx, INFER_COMPLETE);
}

/* ---- chat ------------------------------------------------------------------------------------ */

/*
 * The request's messages as the chat template sees them (a new array, or NULL after answering
 * 400 naming the field): content as a string (a list of {type: "text"} parts is joined), and a
 * tool call's `arguments` JSON string parsed into an object (as llama.cpp and vLLM pass it).
 */
static json_t *chat_messages(struct srv_req *req, json_t *msgs)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", NULL};
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        api_error(req, 400, "'messages' must be a non-empty array", "messages", "invalid_value");
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *m;
    char field[96];
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        int known = 0;
        for (int k = 0; role && roles[k]; k++)
            known |= !strcmp(role, roles[k]);
        if (!json_is_object(m) || !known) {
            snprintf(field, sizeof(field), "messages[%zu].role", i);
            api_errorf(req, 400, field, "invalid_value",
                       "'%s' must be one of system, developer, "
                       "user, assistant, tool",
                       field);
            goto fail;
        }
        json_t *c = json_deep_copy(m), *content = json_object_get(m, "content");
        json_array_append_new(out, c);
        if (json_is_array(content)) {
            struct infer_text t = {0};
            size_t k;
            json_t *part;
            json_array_foreach(content, k, part)
            {
                const char *type = json_string_value(json_object_get(part, "type"));
                json_t *txt = json_object_get(part, "text");
                if (!type || strcmp(type, "text") || !json_is_string(txt)) {
                    snprintf(field, sizeof(field), "messages[%zu].content[%zu]", i, k);
                    api_errorf(req, 400, field, "invalid_value",
                               "'%s' must be {\"type\": "
                               "\"text\", \"text\": string} (%s parts are not supported)",
                               field, type ? type : "untyped");
                    free(t.p);
                    goto fail;
                }
                text_add(&t, json_string_value(txt), json_string_length(txt));
            }
            json_object_set_new(c, "content", json_stringn(t.p ? t.p : "", t.n));
            free(t.p);
        } else if (content && !json_is_string(content) && !json_is_null(content)) {
            snprintf(field, sizeof(field), "messages[%zu].content", i);
            api_errorf(req, 400, field, "invalid_value",
                       "'%s' must be a string, null or a list "
                       "of text parts",
                       field);
            goto fail;
        } else if (!content && strcmp(role, "assistant")) {
            snprintf(field, sizeof(field), "messages[%zu].content", i);
            api_errorf(req, 400, field, "missing_field", "'%s' is required", field);
            goto fail;
        }
        json_t *calls = json_object_get(c, "tool_calls"), *call;
        size_t k;
        if (calls && !json_is_array(calls) && !json_is_null(calls)) {
            snprintf(field, sizeof(field), "messages[%zu].tool_calls", i);
            api_errorf(req, 400, field, "invalid_value", "'%s' must be an array", field);
            goto fail;
        }
        json_array_foreach(calls, k, call)
        {
            json_t *fn = json_object_get(call, "function");
            json_t *args = json_object_get(fn, "arguments");
            if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name"))) {
                snprintf(field, sizeof(field), "messages[%zu].tool_calls[%zu].function", i, k);
                api_errorf(req, 400, field, "invalid_value",
                           "'%s' must be {\"name\", "
                           "\"arguments\"}",
                           field);
                goto fail;
            }
            if (json_is_string(args)) {
                json_t *parsed = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
                if (json_is_object(parsed))
                    json_object_set_new(fn, "arguments", parsed);
                else
                    json_decref(parsed);
            }
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* Renders the request's conversation with the model's template: *prompt malloc'd, or answers
 * 400 (no template, bad input, the template's raise_exception) and returns -1. */
static int chat_render(struct srv_req *req, struct eng_served *model, json_t *body, char **prompt)
{
    char err[ENG_ERR_LEN];
    int agp = 1;
    json_t *tools = json_object_get(body, "tools"),
           *kw = json_object_get(body, "chat_template_kwargs");
    *prompt = NULL;
    if (tools && !json_is_null(tools) && !json_is_array(tools)) {
        api_error(req, 400, "'tools' must be an array", "tools", "invalid_value");
        return -1;
    }
    if (kw && !json_is_null(kw) && !json_is_object(kw)) {
        api_error(req, 400, "'chat_template_kwargs' must be an object", "chat_template_kwargs",
                  "invalid_value");
        return -1;
    }
    if (get_bool(req, body, "add_generation_prompt", &agp))
        return -1;
    if (!model->chat) {
        api_errorf(req, 400, "model", "no_chat_template",
                   "model '%s' has no chat template "
                   "(tokenizer_config.json's chat_template was not carried into it)",
                   model->id);
        return -1;
    }
    json_t *msgs = chat_messages(req, json_object_get(body, "messages"));
    if (!msgs)
        return -1;
    int rc =
        eng_chat_render(model, msgs, json_is_array(tools) && json_array_size(tools) ? tools : NULL,
                        kw, agp, prompt, err);
    json_decref(msgs);
    if (rc == ENG_ENOMEM) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return -1;
    }
    if (rc) {
        api_errorf(req, 400, "messages", "template_error", "%s", err);
        return -1;
    }
    return 0;
}

static void chat(struct srv_req *req, struct api_ctx *ctx)
{
    static const char *const keys[] = {"model",
                                       "messages",
                                       "max_tokens",
                                       "max_completion_tokens",
                                       "stream",
                                       "stream_options",
                                       "temperature",
                                       "top_p",
                                       "seed",
                                       "stop",
                                       "n",
                                       "logprobs",
                                       "top_logprobs",
                                       "tools",
                                       "tool_choice",
                                       "chat_template_kwargs",
                                       "add_generation_prompt",
                                       "user",
                                       "presence_penalty",
                                       "frequency_penalty",
                                       NULL};
    json_t *body = api_body_json(req);
    struct eng_served *model = NULL;
    struct eng_request *job = NULL;
    struct infer_req *ir = NULL;
    char *prompt = NULL;
    int stream = 0, logprobs = 0, usage = 0;
    long n_choices = 1, top = 0;
    if (!body)
        return;
    if (only_keys(req, body, keys) || get_bool(req, body, "stream", &stream) ||
        get_bool(req, body, "logprobs", &logprobs) ||
        get_int(req, body, "top_logprobs", 0, ENG_MAX_TOP_LOGPROBS, &top) ||
        get_int(req, body, "n", 1, ENG_MAX_CHOICES, &n_choices))
        goto out;
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so) || get_bool(req, so, "include_usage", &usage))
            goto out;
    }
    json_t *tc = json_object_get(body, "tool_choice");
    if (tc && !json_is_null(tc) &&
        !(json_is_string(tc) &&
          (!strcmp(json_string_value(tc), "auto") || !strcmp(json_string_value(tc), "none")))) {
        api_error(req, 400,
                  "only tool_choice \"auto\" and \"none\" are supported (the tools go to "
                  "the chat template; calls are not parsed out of the text)",
                  "tool_choice", "unsupported");
        goto out;
    }
    if (json_object_get(body, "top_logprobs") && !logprobs) {
        api_error(req, 400, "'top_logprobs' needs 'logprobs': true", "top_logprobs",
                  "invalid_value");
        goto out;
    }
    if (!(model = pick_model(req, ctx, body, ENG_TASK_GENERATION, 1)) ||
        chat_render(req, model, body, &prompt))
        goto out;
    job = eng_request_new(ENG_REQ_GENERATE, model);
    ir = calloc(1, sizeof(*ir));
    if (!job || !ir) {
        api_error(req, 500, "out of memory", NULL, NULL);
        goto out;
    }
    if (gen_options(req, body, job, 256))
        goto out;
    job->prompt = prompt;
    prompt = NULL;
    job->n_choices = (int)n_choices;
    job->logprobs = logprobs ? (int)top : -1;
    ir->logprobs = job->logprobs;
    ir->kind = INFER_CHAT;
    ir->stream = stream;
    ir->include_usage = usage;
    submit(req, ctx, job, ir);
    job = NULL;
    ir = NULL;
out:
    free(ir);
    free(prompt);
    eng_request_free(job);
    eng_served_unref(model);
    json_decref(body);
}

static void apply_template(struct srv_req *req, struct api_ctx *ctx)
{
    static const char *const keys[] = {
        "model", "messages", "tools", "chat_template_kwargs", "add_generation_prompt", NULL};
    json_t *body = api_body_json(req);
    struct eng_served *model = NULL;
    char *prompt = NULL;
    if (!body)
        return;
    if (!only_keys(req, body, keys) &&
        (model = pick_model(req, ctx, body, ENG_TASK_GENERATION, 1)) &&
        !chat_render(req, model, body, &prompt))
        srv_res_json(req, 200, json_pack("{s:s}", "prompt", prompt));
    free(prompt);
    eng_served_unref(model);
    json_decref(body);
}

/* ---- answers ------------------------------------------------------------------------------- */

static void timing_headers(struct srv_req *req, const struct eng_request *j, int final)
{
    char v[32];
    snprintf(v, sizeof(v), "%.3f", (j->t_start - j->t_submit) * 1e3);
    srv_res_header(req, "x-queue-time", v);
    snprintf(v, sizeof(v), "%d", j->prompt_tokens);
    srv_res_header(req, "x-prompt-tokens", v);
    if (final) {
        snprintf(v, sizeof(v), "%.3f", (j->t_end - j->t_start) * 1e3);
        srv_res_header(req, "x-inference-time", v);
        snprintf(v, sizeof(v), "%d", j->completion_tokens);
        srv_res_header(req, "x-generated-tokens", v);
    }
}

/* Characters (not bytes) in n bytes of UTF-8 at p: the units a client counts its input in. */
static size_t utf8_chars(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

static json_t *usage_json(const struct eng_request *j)
{
    json_t *u =
        json_pack("{s:i, s:i, s:i}", "prompt_tokens", j->prompt_tokens, "completion_tokens",
                  j->completion_tokens, "total_tokens", j->prompt_tokens + j->completion_tokens);
    if (u && j->truncate_prompt) { /* summarize: how much of the input the model read */
        json_object_set_new(u, "truncated", json_boolean(j->prompt_truncated));
        json_object_set_new(
            u, "input_chars",
            json_integer((json_int_t)utf8_chars(j->prompt + j->text_off, j->text_len)));
        json_object_set_new(
            u, "input_chars_read",
            json_integer((json_int_t)utf8_chars(j->prompt + j->text_off, j->text_kept)));
    }
    return u;
}

static void answer_classify(struct infer_req *ir, struct eng_request *j)
{
    const struct eng_served *m = j->model;
    int nl = m->meta.nlabels, k = ir->top_k > 0 && ir->top_k < nl ? ir->top_k : nl;
    json_t *data = json_array();
    int oom = !data; /* out of memory: 500, never a 200 with inputs missing */
    for (int i = 0; i < j->ninputs && !oom; i++) {
        const float *p = j->probs + (size_t)i * nl;
        int bi = j->best[i], *order = malloc((size_t)nl * sizeof(int));
        if (!order) {
            oom = 1;
            break;
        }
        for (int a = 0; a < nl; a++)
            order[a] = a;
        /* insertion sort by probability, stable; on a tie in float the engine's choice (the
         * larger logit) goes first, so "label" is always order[0] */
        for (int a = 1; a < nl; a++)
            for (int b = a; b > 0 && (p[order[b]] > p[order[b - 1]] ||
                                      (p[order[b]] == p[order[b - 1]] && order[b] == bi));
                 b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        json_t *probs = json_object();
        oom = !probs;
        for (int a = 0; a < k && !oom; a++)
            oom = json_object_set_new(probs, m->meta.labels[order[a]], json_real(p[order[a]]));
        json_t *item =
            oom ? NULL
                : json_pack("{s:i, s:s, s:o, s:b}", "index", i, "label", m->meta.labels[order[0]],
                            "probs", probs, "truncated", j->truncated[i]);
        if (oom)
            json_decref(probs);
        oom = !item || json_array_append_new(data, item);
        free(order);
    }
    json_t *o = oom ? NULL
                    : json_pack("{s:s, s:s, s:s, s:o, s:{s:i, s:i}}", "id", ir->id, "object",
                                "list", "model", m->id, "data", data, "usage", "prompt_tokens",
                                j->prompt_tokens, "total_tokens", j->prompt_tokens);
    if (!o) {
        if (oom)
            json_decref(data);
        api_error(ir->req, 500, "out of memory", NULL, NULL);
        return;
    }
    timing_headers(ir->req, j, 1);
    srv_res_json(ir->req, 200, o);
}

/* One SSE event with a JSON payload (takes obj). */
static void sse_json(struct srv_req *req, json_t *obj)
{
    char *t = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    if (!t)
        return;
    srv_res_stream_write(req, "data: ", 6);
    srv_res_stream_write(req, t, strlen(t));
    srv_res_stream_write(req, "\n\n", 2);
    free(t);
}

/* Logprob entries of one choice as OpenAI shapes them: chat appends {token, logprob, bytes,
 * top_logprobs} to the array *dst; completions append to the legacy object's parallel arrays
 * (tokens, token_logprobs, top_logprobs, text_offset: byte offsets from the prompt's start). */
static void lp_add(struct infer_req *ir, const struct eng_tok *tok, int choice,
                   const struct eng_logprob *lp, int nlp, json_t **dst)
{
    int chat = ir->kind == INFER_CHAT;
    if (!*dst)
        *dst = chat ? json_array()
                    : json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs",
                                "top_logprobs", "text_offset");
    for (int i = 0; *dst && i < nlp; i++) {
        char *t = NULL, *alt = NULL;
        size_t n = 0, an = 0;
        if (eng_tok_decode(tok, &lp[i].id, 1, 0, &t, &n))
            continue;
        if (chat) {
            json_t *bytes = json_array(), *tops = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(bytes, json_integer((unsigned char)t[k]));
            for (int k = 0; k < lp[i].ntop; k++) {
                if (eng_tok_decode(tok, &lp[i].top_id[k], 1, 0, &alt, &an))
                    continue;
                json_t *ab = json_array();
                for (size_t q = 0; q < an; q++)
                    json_array_append_new(ab, json_integer((unsigned char)alt[q]));
                json_array_append_new(tops,
                                      json_pack("{s:s%, s:f, s:o}", "token", alt, an, "logprob",
                                                (double)lp[i].top_lp[k], "bytes", ab));
                free(alt);
            }
            json_array_append_new(*dst, json_pack("{s:s%, s:f, s:o, s:o}", "token", t, n, "logprob",
                                                  (double)lp[i].logprob, "bytes", bytes,
                                                  "top_logprobs", tops));
        } else {
            json_t *tops = json_object();
            for (int k = 0; k < lp[i].ntop; k++)
                if (!eng_tok_decode(tok, &lp[i].top_id[k], 1, 0, &alt, &an)) {
                    json_t *key = json_stringn(alt, an);
                    if (key)
                        json_object_set_new(tops, json_string_value(key),
                                            json_real(lp[i].top_lp[k]));
                    json_decref(key);
                    free(alt);
                }
            json_array_append_new(json_object_get(*dst, "tokens"), json_stringn(t, n));
            json_array_append_new(json_object_get(*dst, "token_logprobs"),
                                  json_real(lp[i].logprob));
            json_array_append_new(json_object_get(*dst, "top_logprobs"), tops);
            json_array_append_new(json_object_get(*dst, "text_offset"),
                                  json_integer((json_int_t)(ir->prompt_len + ir->lp_off[choice])));
            ir->lp_off[choice] += n;
        }
        free(t);
    }
}

static const char *choice_finish(const struct eng_request *j, int c)
{
    return j->choices && c < j->n_choices && j->choices[c].finish_reason
               ? j->choices[c].finish_reason
               : j->finish_reason;
}

/* One stream chunk of choice c: new text and logprobs (taken), or its finish reason. */
static json_t *chunk_json(struct infer_req *ir, const struct eng_request *j, int c,
                          const char *text, size_t len, json_t *lp, const char *finish)
{
    if (ir->kind == INFER_CHAT) {
        json_t *delta = json_object();
        if (!finish && !ir->role_sent[c]) {
            json_object_set_new(delta, "role", json_string("assistant"));
            ir->role_sent[c] = 1;
        }
        if (!finish)
            json_object_set_new(delta, "content", json_stringn(text, len));
        json_t *lpo = lp ? json_pack("{s:o}", "content", lp) : json_null();
        return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:o, s:s?}]}", "id", ir->id, "object",
                         "chat.completion.chunk", "created", (json_int_t)ir->created, "model",
                         j->model->id, "choices", "index", c, "delta", delta, "logprobs", lpo,
                         "finish_reason", finish);
    }
    if (ir->kind == INFER_COMPLETE)
        return json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:o, s:s?}]}", "id", ir->id, "object",
                         "text_completion", "created", (json_int_t)ir->created, "model",
                         j->model->id, "choices", "text", text, len, "index", c, "logprobs",
                         lp ? lp : json_null(), "finish_reason", finish);
    json_decref(lp);
    return json_pack("{s:s, s:s, s:s, s:s%, s:s?}", "id", ir->id, "object", "summarization.chunk",
                     "model", j->model->id, "text", text, len, "finish_reason", finish);
}

static void answer_generate(struct infer_req *ir, struct eng_request *j)
{
    struct srv_req *req = ir->req;
    int n = j->choices ? j->n_choices : 1;
    if (ir->started) {
        for (int c = 0; c < n; c++) {
            json_t *last = chunk_json(ir, j, c, "", 0, NULL, choice_finish(j, c));
            if (ir->kind != INFER_CHAT && c == n - 1)
                json_object_set_new(last, "usage", usage_json(j));
            sse_json(req, last);
        }
        if (ir->kind == INFER_CHAT && ir->include_usage)
            sse_json(req, json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", ir->id, "object",
                                    "chat.completion.chunk", "created", (json_int_t)ir->created,
                                    "model", j->model->id, "choices", "usage", usage_json(j)));
        srv_res_stream_write(req, "data: [DONE]\n\n", 14);
        srv_res_stream_end(req);
        return;
    }
    json_t *o;
    if (ir->kind == INFER_SUMMARIZE) {
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "id", ir->id, "object",
                      "summarization", "model", j->model->id, "summary_text",
                      ir->text[0].p ? ir->text[0].p : "", "finish_reason", j->finish_reason,
                      "truncated", j->prompt_truncated, "usage", usage_json(j));
    } else {
        json_t *choices = json_array();
        for (int c = 0; c < n; c++) {
            const char *text = ir->text[c].p ? ir->text[c].p : "";
            json_t *lp = ir->lp[c];
            ir->lp[c] = NULL;
            if (!lp)
                lp = ir->logprobs >= 0 && ir->kind == INFER_CHAT ? json_array() : json_null();
            if (ir->kind == INFER_CHAT) {
                json_t *lpo = json_is_array(lp) ? json_pack("{s:o}", "content", lp) : lp;
                json_array_append_new(choices, json_pack("{s:i, s:{s:s, s:s}, s:o, s:s}", "index",
                                                         c, "message", "role", "assistant",
                                                         "content", text, "logprobs", lpo,
                                                         "finish_reason", choice_finish(j, c)));
            } else {
                json_array_append_new(choices, json_pack("{s:s, s:i, s:o, s:s}", "text", text,
                                                         "index", c, "logprobs", lp,
                                                         "finish_reason", choice_finish(j, c)));
            }
        }
        o = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", ir->id, "object",
                      ir->kind == INFER_CHAT ? "chat.completion" : "text_completion", "created",
                      (json_int_t)ir->created, "model", j->model->id, "choices", choices, "usage",
                      usage_json(j));
    }
    timing_headers(req, j, 1);
    srv_res_json(req, 200, o);
}

static void start_stream(struct infer_req *ir, struct eng_request *j)
{
    timing_headers(ir->req, j, 0);
    srv_res_stream_start(ir->req, 200, "text/event-stream");
    ir->started = 1;
}

static void record_metrics(struct api_ctx *ctx, const struct eng_request *j)
{
    struct srv_metrics *m = srv_server_metrics(ctx->srv);
    char lb[256], ver[16];
    snprintf(ver, sizeof(ver), "%d", j->model->version);
    srv_metrics_labels(lb, sizeof(lb), "model_name", j->model->id, "model_version", ver, NULL);
    srv_metrics_counter_add(m, "bitdistill_prompt_tokens_total", "Prompt tokens processed", lb,
                            j->prompt_tokens);
    srv_metrics_counter_add(m, "bitdistill_generation_tokens_total", "Tokens generated", lb,
                            j->completion_tokens);
    srv_metrics_histogram_observe(m, "bitdistill_e2e_request_latency_seconds",
                                  "Time from queueing to completion", lb, j->t_end - j->t_submit);
    srv_metrics_histogram_observe(m, "bitdistill_request_queue_time_seconds",
                                  "Time waiting before the engine took the request", lb,
                                  j->t_start - j->t_submit);
    if (j->t_first > 0) {
        srv_metrics_histogram_observe(m, "bitdistill_time_to_first_token_seconds",
                                      "Time from queueing to the first generated token", lb,
                                      j->t_first - j->t_submit);
        if (j->completion_tokens > 1)
            srv_metrics_histogram_observe(m, "bitdistill_inter_token_latency_seconds",
                                          "Mean time between generated tokens of a request", lb,
                                          (j->t_end - j->t_first) / (j->completion_tokens - 1));
    }
    char lb2[320];
    srv_metrics_labels(lb2, sizeof(lb2), "model_name", j->model->id, "model_version", ver,
                       "finish_reason", j->status ? "error" : j->finish_reason, NULL);
    srv_metrics_counter_add(m, "bitdistill_request_success_total",
                            "Finished inference requests by finish reason", lb2, 1);
}

static void on_job(struct eng_request *j, int choice, const char *text, size_t len,
                   const struct eng_logprob *lps, int nlp, int done, void *arg)
{
    struct api_ctx *ctx = arg;
    struct infer_req *ir = j->user;
    struct srv_req *req = ir->req;
    if (!srv_req_alive(req)) {
        if (!done) {
            eng_sched_cancel(ctx->sched, j);
            return;
        }
    } else if (choice >= 0 && choice < ENG_MAX_CHOICES) {
        if (ir->stream) {
            json_t *lp = NULL;
            if (nlp)
                lp_add(ir, j->model->tok, choice, lps, nlp, &lp);
            if (!ir->started)
                start_stream(ir, j);
            sse_json(req, chunk_json(ir, j, choice, text, len, lp, NULL));
        } else {
            text_add(&ir->text[choice], text, len);
            if (nlp)
                lp_add(ir, j->model->tok, choice, lps, nlp, &ir->lp[choice]);
        }
    }
    if (!done)
        return;
    record_metrics(ctx, j);
    if (srv_req_alive(req)) {
        if (j->status) {
            if (ir->started) {
                const char *type = api_error_type(api_eng_http_status(j->status));
                sse_json(req, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", j->error,
                                        "type", type, "param", "code", "inference_failed"));
                srv_res_stream_write(req, "data: [DONE]\n\n", 14);
                srv_res_stream_end(req);
            } else {
                api_error(req, api_eng_http_status(j->status), j->error, NULL, NULL);
            }
        } else if (ir->kind == INFER_CLASSIFY && ir->shape) {
            timing_headers(req, j, 1);
            ir->shape->answer(req, j, ir->created, ir->shape_arg);
        } else if (ir->kind == INFER_CLASSIFY) {
            answer_classify(ir, j);
        } else {
            if (ir->stream && !ir->started)
                start_stream(ir, j);
            answer_generate(ir, j);
        }
    }
    infer_free(ir);
    eng_request_free(j);
}

/* ---- for the other projects' shapes (api/compat.c) ----------------------------------------- */

int api_infer_only_keys(struct srv_req *req, json_t *body, const char *const *allowed)
{
    return only_keys(req, body, allowed);
}

int api_infer_get_bool(struct srv_req *req, json_t *body, const char *name, int *out)
{
    return get_bool(req, body, name, out);
}

void api_infer_classify_submit(struct srv_req *req, struct api_ctx *ctx, struct eng_request *job,
                               const struct api_infer_shape *shape, void *arg)
{
    struct infer_req *ir = calloc(1, sizeof(*ir));
    if (!ir) {
        free(arg);
        eng_request_free(job);
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    ir->kind = INFER_CLASSIFY;
    ir->shape = shape;
    ir->shape_arg = arg;
    submit(req, ctx, job, ir);
}

void api_infer_drain(struct api_ctx *ctx)
{
    eng_sched_drain(ctx->sched, on_job, ctx);
    park_flush(ctx, 0); /* finished jobs made room */
}

static void park_closed(uv_handle_t *h)
{
    free(h->data);
}

void api_infer_close(struct api_ctx *ctx)
{
    struct api_infer *pk = ctx->infer;
    if (!pk)
        return;
    while (pk->head) {
        struct infer_req *ir = pk->head;
        pk->head = ir->park_next;
        refuse(ir, ir->parked);
    }
    ctx->infer = NULL;
    pk->timer.data = pk;
    uv_close((uv_handle_t *)&pk->timer, park_closed);
}

const struct api_route api_route_classify = {"POST", "/v1/classify", "classify", SRV_SCOPE_INFER,
                                             0,      classify};
const struct api_route api_route_summarize = {"POST", "/v1/summarize", "summarize", SRV_SCOPE_INFER,
                                              0,      summarize};
const struct api_route api_route_completions = {
    "POST", "/v1/completions", "completions", SRV_SCOPE_INFER, 0, completions};
const struct api_route api_route_chat = {
    "POST", "/v1/chat/completions", "chat_completions", SRV_SCOPE_INFER, 0, chat};
const struct api_route api_route_apply_template = {
    "POST", "/apply-template", "apply_template", SRV_SCOPE_INFER, 0, apply_template};
