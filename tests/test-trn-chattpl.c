/*
 * tests/test-trn-chattpl.c — prompt_format "chat_template" end to end on a tiny Qwen3 with
 * Qwen2.5's real chat template (tests/fixtures/chat/qwen2.5.jinja) in its tokenizer_config.json:
 *  - the trainer's rendering of a user turn equals transformers' apply_chat_template output
 *    (tests/fixtures/chat/expected.json, case qwen2.5/single);
 *  - the encoded training text of a classification example is exactly what jinja renders for
 *    the prompt (add_generation_prompt) followed by the label word's first token, and that of a
 *    summarization example exactly the rendered [user, assistant] conversation, the loss on the
 *    assistant's part only;
 *  - a base without a chat_template is refused, naming it;
 *  - a bitnet_sft job trains with it, the student GGUF carries the template and
 *    bitdistill.task.prompt_format, and the served model (eng_served_prompt) renders requests
 *    as the training examples were.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/err.h"
#include "engine/init.h"
#include "engine/registry.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "jinja/jinja.h"
#include "train/data.h"
#include "train/pipeline.h"
#include "tests/tap.h"

static char tmp[] = "/tmp/bd-test-chattpl-XXXXXX";
static char top[512], tpl_text[16384];

static int slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n < cap - 1 ? 0 : -1;
}

/* Independent of the trainer: the fixture template rendered by jinja/ for messages. */
static char *reference(const char *user, const char *reply)
{
    struct jinja_tpl *t = NULL;
    char jerr[JINJA_ERR_LEN], *out = NULL;
    size_t len;
    json_t *ctx = json_pack("{s:[{s:s,s:s}],s:n,s:n,s:b}", "messages", "role", "user", "content",
                            user, "tools", "documents", "add_generation_prompt", reply == NULL);
    if (reply)
        json_array_append_new(json_object_get(ctx, "messages"),
                              json_pack("{s:s,s:s}", "role", "assistant", "content", reply));
    if (jinja_parse(tpl_text, strlen(tpl_text), &t, jerr) == 0)
        jinja_render(t, ctx, NULL, &out, &len, jerr);
    jinja_free(t);
    json_decref(ctx);
    return out;
}

static char *decode(const struct eng_tok *tok, const int32_t *ids, int n)
{
    char *s = NULL;
    size_t l;
    return eng_tok_decode(tok, ids, (size_t)n, 0, &s, &l) ? NULL : s;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A base model directory: tiny Qwen3 (512 positions: Qwen2.5's default system prompt is long
 * in a byte-level tokenizer), the test tokenizer, and the template when with_tpl. */
static int make_base(const char *dir, int with_tpl)
{
    char p[1024], err[ENG_ERR_LEN], tok[1024];
    json_t *c =
        json_load_file(strcat(strcpy(p, top), "/tests/fixtures/train/tiny-config.json"), 0, NULL);
    json_object_set_new(c, "max_position_embeddings", json_integer(512));
    snprintf(p, sizeof(p), "%s/config-512.json", tmp);
    json_dump_file(c, p, 0);
    json_decref(c);
    if (eng_init_write(p, dir, 1, 0, err))
        return -1;
    snprintf(tok, sizeof(tok), "%s/tests/fixtures/train/tok-bytes.json", top);
    snprintf(p, sizeof(p), "%s/tokenizer.json", dir);
    char *t = malloc(1 << 20);
    if (!t || slurp(tok, t, 1 << 20)) {
        free(t);
        return -1;
    }
    write_file(p, t);
    free(t);
    if (with_tpl) {
        json_t *tc = json_pack("{s:s}", "chat_template", tpl_text);
        snprintf(p, sizeof(p), "%s/tokenizer_config.json", dir);
        json_dump_file(tc, p, 0);
        json_decref(tc);
    }
    return 0;
}

/* transformers' rendering of one user turn (expected.json) against the trainer's. */
static void against_transformers(const struct trn_chat_tpl *ct)
{
    char p[1024], err[ENG_ERR_LEN];
    snprintf(p, sizeof(p), "%s/tests/fixtures/chat/expected.json", top);
    json_t *e = json_load_file(p, 0, NULL), *c;
    size_t i;
    const char *want = NULL;
    json_array_foreach(
        json_object_get(e, "cases"), i,
        c) if (!strcmp(json_string_value(json_object_get(c, "name")), "qwen2.5/single")) want =
        json_string_value(json_object_get(c, "expected"));
    char *got = NULL;
    trn_chat_render(ct, "What is 2+2?", NULL, &got, err);
    TAP_OK(want && got && !strcmp(want, got),
           "a user turn renders as transformers' "
           "apply_chat_template (qwen2.5/single): \"%s\"",
           got ? got : err);
    free(got);
    json_decref(e);
}

static void encoding(const char *base)
{
    char tokp[1024], err[ENG_ERR_LEN] = "";
    struct eng_tok *tok = NULL;
    struct trn_chat_tpl *ct = NULL;
    snprintf(tokp, sizeof(tokp), "%s/tokenizer.json", base);
    if (!TAP_OK(eng_tok_load_json(tokp, &tok, err) == 0 &&
                    trn_chat_tpl_load(base, tok, 506, 506, &ct, err) == 0,
                "tokenizer and the base's chat template load (%s)", err))
        return;
    against_transformers(ct);
    /* classification: the prompt as rendered, then the label word's first token */
    struct trn_task t;
    trn_task_defaults("sst2", &t, err);
    int rc = trn_task_chat_template(&t, ct, err) || trn_task_resolve(&t, tok, 506, err);
    struct trn_example e = {.text = "a fine film", .label = 1};
    int32_t *ids = NULL;
    int n = 0, np = 0;
    if (!rc)
        rc = trn_encode(&t, tok, &e, 400, 1, &ids, &n, &np);
    char *want = reference("Review: a fine film\nSentiment:", NULL);
    char *prompt = rc ? NULL : decode(tok, ids, np), *ans = rc ? NULL : decode(tok, ids + np, 1);
    TAP_OK(rc == 0 && want && prompt && !strcmp(prompt, want) && n == np + 1,
           "classification: the training prompt is the rendered user turn (%d tokens): \"%s\"", np,
           prompt ? prompt : err);
    TAP_OK(ans && !strcmp(t.words[1], "positive") && !strncmp("positive", ans, strlen(ans)),
           "its target is the first token of \"positive\" (no leading space): \"%s\"",
           ans ? ans : "");
    free(want);
    free(prompt);
    free(ans);
    free(ids);
    /* summarization: the whole conversation as rendered, loss after the prompt */
    struct trn_task s;
    trn_task_defaults("cnndm", &s, err);
    s.max_target = 64;
    rc = trn_task_chat_template(&s, ct, err) || trn_task_resolve(&s, tok, 506, err);
    struct trn_example se = {.text = "The council met on Tuesday and approved the new park.",
                             .target = "Park approved.",
                             .label = -1};
    ids = NULL;
    if (!rc)
        rc = trn_encode(&s, tok, &se, 400, 1, &ids, &n, &np);
    want = reference("The council met on Tuesday and approved the new park.\nTL;DR:",
                     "Park approved.");
    char *gp = reference("The council met on Tuesday and approved the new park.\nTL;DR:", NULL);
    char *all = rc ? NULL : decode(tok, ids, n);
    prompt = rc ? NULL : decode(tok, ids, np);
    TAP_OK(rc == 0 && want && all && !strcmp(all, want),
           "summarization: the training text is "
           "the rendered [user, assistant] conversation: \"%s\"",
           all ? all : err);
    TAP_OK(prompt && gp && !strcmp(prompt, gp) && n > np,
           "the loss starts after the generation prompt (%d of %d tokens are the answer)", n - np,
           n);
    free(want);
    free(gp);
    free(all);
    free(prompt);
    free(ids);
    /* a chat task is refused: its conversations are ChatML */
    struct trn_task c;
    trn_task_defaults("chat", &c, err);
    TAP_OK(trn_task_chat_template(&c, ct, err) == ENG_ECONFIG && strstr(err, "ChatML"),
           "a \"chat\" task with the chat template is refused: %s", err);
    trn_chat_tpl_free(ct);
    eng_tok_free(tok);
}

static int run(const char *name, const char *json, const char *out, char *events)
{
    char cfg[1024];
    snprintf(cfg, sizeof(cfg), "%s/%s.json", tmp, name);
    snprintf(events, 1024, "%s/%s.events", tmp, name);
    write_file(cfg, json);
    FILE *ev = fopen(events, "w");
    struct trn_run_opts o = {
        .config = cfg, .out = out, .threads = 1, .events_fd = ev ? fileno(ev) : -1};
    int rc = trn_run(&o);
    if (ev)
        fclose(ev);
    return rc;
}

static int events_have(const char *events, const char *a, const char *b)
{
    char line[65536];
    int hit = 0;
    FILE *f = fopen(events, "r");
    while (f && !hit && fgets(line, sizeof(line), f))
        hit = strstr(line, a) && (!b || strstr(line, b));
    if (f)
        fclose(f);
    return hit;
}

static void job(const char *base, const char *nochat)
{
    char train[1024], val[1024], out[1024], ev[1024], cfg[4096], err[ENG_ERR_LEN] = "";
    static const char *const words[] = {"a fine film",     "dull and long",  "a joy to watch",
                                        "a waste of time", "warm and funny", "badly acted"};
    snprintf(train, sizeof(train), "%s/train.jsonl", tmp);
    snprintf(val, sizeof(val), "%s/val.jsonl", tmp);
    FILE *f = fopen(train, "w"), *g = fopen(val, "w");
    for (int i = 0; f && g && i < 24; i++)
        fprintf(i < 18 ? f : g, "{\"text\": \"%s\", \"label\": %d}\n", words[i % 6], i % 2 ? 0 : 1);
    if (f)
        fclose(f);
    if (g)
        fclose(g);
#define JOB                                                                                        \
    "{\"method\": \"bitnet_sft\", \"model\": \"%s\", \"task\": \"sst2\", "                         \
    "\"train_file\": \"%s\", \"validation_file\": \"%s\", \"batch\": 4, \"max_len\": 256, "        \
    "\"lr\": 1e-3, \"distill\": {\"steps\": 3}, \"prompt_format\": \"chat_template\"}"
    snprintf(out, sizeof(out), "%s/nochat-out", tmp);
    snprintf(cfg, sizeof(cfg), JOB, nochat, train, val);
    int rc = run("nochat", cfg, out, ev);
    TAP_OK(rc == ENG_ECONFIG && events_have(ev, "\"type\":\"error\"", "has no chat_template") &&
               !events_have(ev, "\"type\":\"step\"", NULL),
           "a base without a chat_template is refused before training, naming it");
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(cfg, sizeof(cfg), JOB, base, train, val);
    rc = run("chat", cfg, out, ev);
    TAP_OK(rc == 0 && events_have(ev, "\"type\":\"done\"", NULL) &&
               events_have(ev, "\"model\":\"student_gguf\"", "\"accuracy\""),
           "a bitnet_sft job with prompt_format chat_template trains, exports and scores its "
           "student file (rc %d)",
           rc);
    /* the student file */
    char gguf[1100];
    snprintf(gguf, sizeof(gguf), "%s/student.gguf", out);
    struct eng_model *m = NULL;
    struct eng_student_meta meta = {0};
    rc = eng_student_load(gguf, &m, NULL, &meta, err);
    TAP_OK(rc == 0 && meta.prompt_format && !strcmp(meta.prompt_format, "chat_template") &&
               meta.chat_template && !strcmp(meta.chat_template, tpl_text) && meta.nlabels == 2 &&
               !strcmp(meta.label_words[1], "positive"),
           "the student carries the template, prompt_format and label words without their "
           "space (%s)",
           err);
    eng_student_meta_release(&meta);
    eng_model_free(m);
    /* serving renders a request as training rendered its examples */
    struct eng_served *s = NULL;
    rc = eng_served_load(gguf, "chat-student", 0, &s, err);
    char *served = rc ? NULL : eng_served_prompt(s, "a fine film", strlen("a fine film"));
    char *want = reference("Review: a fine film\nSentiment:", NULL);
    TAP_OK(rc == 0 && s->task == ENG_TASK_CLASSIFICATION && served && want && !strcmp(served, want),
           "the served student's prompt is the rendered user turn: \"%s\"", served ? served : err);
    free(served);
    free(want);
    if (s)
        eng_served_unref(s);
}

int main(void)
{
    const char *t = getenv("top_srcdir");
    char base[600], nochat[600], p[1024], err[ENG_ERR_LEN];
    (void)err;
    snprintf(top, sizeof(top), "%s", t ? t : ".");
    snprintf(p, sizeof(p), "%s/tests/fixtures/chat/qwen2.5.jinja", top);
    if (!TAP_OK(slurp(p, tpl_text, sizeof(tpl_text)) == 0 && mkdtemp(tmp), "fixture and "
                                                                           "temporary directory"))
        return tap_done();
    snprintf(base, sizeof(base), "%s/base", tmp);
    snprintf(nochat, sizeof(nochat), "%s/nochat", tmp);
    if (!TAP_OK(make_base(base, 1) == 0 && make_base(nochat, 0) == 0, "tiny base models"))
        return tap_done();
    encoding(base);
    job(base, nochat);
    snprintf(p, sizeof(p), "rm -rf '%s'", tmp);
    if (system(p) != 0)
        fprintf(stderr, "# could not remove %s\n", tmp);
    return tap_done();
}
