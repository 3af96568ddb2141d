/*
 * tests/test-trn-pipeline.c — `bitdistill train` end to end on real data (SST-2 sentences,
 * ../shared/data), with a tiny random-init Qwen3 (tests/fixtures/train/tiny-config.json) and a
 * byte-level BPE tokenizer (tests/fixtures/train/tok-bytes.json):
 *  - bad configs fail before any training, with a message naming the problem;
 *  - fp16_sft, bitnet_sft and bitdistill each finish, learn SST-2 above chance on the full dev
 *    set (872 sentences), and the student GGUF loads in the engine and classifies;
 *  - a job stopped mid-stage and resumed from its last checkpoint reproduces the uninterrupted
 *    run: the same events (losses at 9 digits) and byte-identical final weights.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/classify.h"
#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "tests/tap.h"
#include "train/data.h"
#include "train/model.h"
#include "train/pipeline.h"
#include "train/step.h"

#define ABOVE_CHANCE 0.55 /* 872 dev sentences: chance 0.5 +- 0.017 */

static char tmp[256], base[512], data[512], top[400];

static int run_job(const char *name, const char *json, const char *out, long stop, int resume,
                   const char *events)
{
    char cfg[1024];
    snprintf(cfg, sizeof(cfg), "%s/%s.json", tmp, name);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return -100;
    fputs(json, f);
    fclose(f);
    FILE *ev = fopen(events, resume ? "a" : "w");
    if (!ev)
        return -101;
    struct trn_run_opts o = {.config = cfg,
                             .out = out,
                             .threads = 1,
                             .events_fd = fileno(ev),
                             .resume = resume,
                             .stop_after = stop,
                             .progress = 0};
    int rc = trn_run(&o);
    fclose(ev);
    return rc;
}

/* The first event of a type (and model, for evals) in an events file (new reference). */
static json_t *find_event(const char *events, const char *type, const char *model)
{
    FILE *f = fopen(events, "r");
    char line[65536];
    json_t *hit = NULL;
    while (f && !hit && fgets(line, sizeof(line), f)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *t = json_string_value(json_object_get(o, "type"));
        const char *m = json_string_value(json_object_get(o, "model"));
        if (t && !strcmp(t, type) && (!model || (m && !strcmp(m, model))))
            hit = json_incref(o);
        json_decref(o);
    }
    if (f)
        fclose(f);
    return hit;
}

static int count_events(const char *events, const char *type)
{
    FILE *f = fopen(events, "r");
    char line[65536], pat[64];
    int n = 0;
    snprintf(pat, sizeof(pat), "\"type\":\"%s\"", type);
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, pat) != NULL;
    if (f)
        fclose(f);
    return n;
}

static char *cfg_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *cfg_text(const char *fmt, ...)
{
    static char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return buf;
}

#define COMMON                                                                                     \
    "\"model\":\"%s\",\"tokenizer\":\"%s/tests/fixtures/train/tok-bytes.json\","                   \
    "\"task\":\"sst2\",\"train_file\":\"%s/sst2/sentence/stsa.binary.train\","                     \
    "\"validation_file\":\"%s/sst2/sentence/stsa.binary.dev\","

/* ---------------------------------------------------------------- bad configs */

static void bad(const char *what, const char *json, const char *expect)
{
    char ev[600], out[600];
    snprintf(ev, sizeof(ev), "%s/bad.events", tmp);
    snprintf(out, sizeof(out), "%s/bad-out", tmp);
    int rc = run_job("bad", json, out, 0, 0, ev);
    json_t *e = find_event(ev, "error", NULL);
    const char *msg = json_string_value(json_object_get(e, "message"));
    TAP_OK(rc != 0 && msg && strstr(msg, expect) && count_events(ev, "step") == 0,
           "%s: fails before training with \"%s\"", what, msg ? msg : "(no error event)");
    json_decref(e);
}

static void bad_configs(void)
{
    char other[600], wrong[600];
    bad("unknown method",
        cfg_text("{\"method\":\"magic\"," COMMON "\"batch\":4}", base, top, data, data),
        "unknown method 'magic'");
    bad("missing train file",
        cfg_text("{\"method\":\"bitnet_sft\",\"model\":\"%s\",\"tokenizer\":"
                 "\"%s/tests/fixtures/train/tok-bytes.json\",\"task\":"
                 "\"sst2\",\"train_file\":\"%s/nope.jsonl\"}",
                 base, top, tmp),
        "cannot read dataset");
    bad("missing model",
        cfg_text("{\"method\":\"bitnet_sft\",\"model\":\"%s/none\",\"task\":"
                 "\"sst2\",\"train_file\":\"x\"}",
                 tmp),
        "none");
    /* a label outside the task's label set */
    snprintf(wrong, sizeof(wrong), "%s/wrong.jsonl", tmp);
    FILE *f = fopen(wrong, "w");
    fputs("{\"text\":\"fine\",\"label\":\"positive\"}\n{\"text\":\"meh\",\"label\":\"neutral\"}\n",
          f);
    fclose(f);
    bad("wrong label set",
        cfg_text("{\"method\":\"bitnet_sft\",\"model\":\"%s\",\"tokenizer\":"
                 "\"%s/tests/fixtures/train/tok-bytes.json\",\"task\":\"sst2\","
                 "\"train_file\":\"%s\"}",
                 base, top, wrong),
        "label \"neutral\" is not in the task's label set");
    /* a teacher with another vocabulary */
    char cfgp[600], err[ENG_ERR_LEN];
    snprintf(cfgp, sizeof(cfgp), "%s/other-config.json", tmp);
    json_t *c = json_load_file(cfg_text("%s/tests/fixtures/train/tiny-config.json", top), 0, NULL);
    json_object_set_new(c, "vocab_size", json_integer(600));
    json_dump_file(c, cfgp, 0);
    json_decref(c);
    snprintf(other, sizeof(other), "%s/other", tmp);
    eng_init_write(cfgp, other, 3, 0, err);
    bad("incompatible vocabularies",
        cfg_text("{\"method\":\"bitdistill\",\"teacher\":\"%s\"," COMMON "\"batch\":4}", other,
                 base, top, data, data),
        "incompatible teacher/student vocabularies");
    bad("verbalizers sharing a first token",
        cfg_text("{\"method\":\"bitnet_sft\"," COMMON "\"task\":{\"type\":\"sst2\",\"verbalizers\":"
                 "[\" pos\",\" posh\"]}}",
                 base, top, data, data),
        "start with the same token");
}

/* ---------------------------------------------------------------- the three methods */

static double accuracy(const char *events, const char *model)
{
    json_t *e = find_event(events, "eval", model);
    double a = e ? json_number_value(json_object_get(e, "accuracy")) : -1;
    json_decref(e);
    return a;
}

#define TRAIN_SET                                                                                  \
    "\"max_len\":48,\"batch\":16,\"lr\":1e-3,\"weight_decay\":0,\"max_eval_examples\":872,"

static void methods(void)
{
    char ev[600], out[600], teacher[700];
    /* fp16_sft: the teacher */
    snprintf(ev, sizeof(ev), "%s/fp16.events", tmp);
    snprintf(out, sizeof(out), "%s/fp16", tmp);
    int rc = run_job("fp16",
                     cfg_text("{\"method\":\"fp16_sft\"," COMMON TRAIN_SET
                              "\"teacher_sft\":{\"steps\":600},\"log_every\":50}",
                              base, top, data, data),
                     out, 0, 0, ev);
    double a = accuracy(ev, "teacher");
    TAP_OK(rc == 0 && count_events(ev, "done") == 1, "fp16_sft finishes (rc %d)", rc);
    TAP_OK(a > ABOVE_CHANCE, "fp16_sft teacher learns SST-2: dev accuracy %.3f > %.2f", a,
           ABOVE_CHANCE);
    snprintf(teacher, sizeof(teacher), "%s/teacher", out);

    /* bitnet_sft: ternary student, CE only */
    snprintf(ev, sizeof(ev), "%s/bitnet.events", tmp);
    snprintf(out, sizeof(out), "%s/bitnet", tmp);
    rc = run_job("bitnet",
                 cfg_text("{\"method\":\"bitnet_sft\"," COMMON TRAIN_SET
                          "\"distill\":{\"steps\":300},\"log_every\":50}",
                          base, top, data, data),
                 out, 0, 0, ev);
    a = accuracy(ev, "student");
    TAP_OK(rc == 0 && count_events(ev, "done") == 1, "bitnet_sft finishes (rc %d)", rc);
    TAP_OK(a > ABOVE_CHANCE, "bitnet_sft student learns SST-2: dev accuracy %.3f", a);
    double ag = accuracy(ev, "student_gguf");
    TAP_OK(ag > ABOVE_CHANCE, "bitnet_sft student GGUF in the engine: dev accuracy %.3f", ag);

    /* bitdistill with that teacher: SubLN, continued pre-training, CE + LD + AD */
    snprintf(ev, sizeof(ev), "%s/bitdistill.events", tmp);
    snprintf(out, sizeof(out), "%s/bitdistill", tmp);
    rc = run_job("bitdistill",
                 cfg_text("{\"method\":\"bitdistill\",\"teacher\":\"%s\"," COMMON TRAIN_SET
                          "\"continue_pretrain\":{\"corpus\":"
                          "\"%s/corpus/wikitext2/valid.txt\",\"tokens\":4000},"
                          "\"distill\":{\"steps\":300,\"lambda\":10,"
                          "\"gamma\":100,\"gamma_warmup\":20},\"log_every\":50}",
                          teacher, base, top, data, data, data),
                 out, 0, 0, ev);
    a = accuracy(ev, "student");
    TAP_OK(rc == 0 && count_events(ev, "done") == 1, "bitdistill finishes (rc %d)", rc);
    json_t *st = find_event(ev, "step", NULL);
    int stage2 = st && json_integer_value(json_object_get(st, "stage")) == 2;
    json_decref(st);
    TAP_OK(stage2, "bitdistill ran continued pre-training (stage 2) first");
    json_t *d = NULL;
    FILE *f = fopen(ev, "r");
    char line[65536];
    while (f && fgets(line, sizeof(line), f)) /* the last stage-3 step event */
        if (strstr(line, "\"stage\":3") && strstr(line, "\"type\":\"step\"")) {
            json_decref(d);
            d = json_loads(line, 0, NULL);
        }
    if (f)
        fclose(f);
    double ld = json_number_value(json_object_get(d, "ld"));
    double ad = json_number_value(json_object_get(d, "ad"));
    TAP_OK(d && ld > 0 && ad > 0, "bitdistill reports LD %.4g and AD %.4g separately", ld, ad);
    json_decref(d);
    TAP_OK(a > ABOVE_CHANCE, "bitdistill student learns SST-2: dev accuracy %.3f", a);

    /* the student file, loaded by the engine, classifies */
    char gguf[700], err[ENG_ERR_LEN] = "";
    struct eng_model *m = NULL;
    struct eng_tok *tok = NULL;
    struct eng_student_meta meta = {0};
    struct eng_classifier *cl = NULL;
    snprintf(gguf, sizeof(gguf), "%s/student.gguf", out);
    rc = eng_student_load(gguf, &m, &tok, &meta, err);
    TAP_OK(rc == 0 && tok && meta.nlabels == 2 && meta.template &&
               !strcmp(meta.template, "Review: {text}\nSentiment:") && meta.eval_json &&
               meta.teacher_sha256,
           "student.gguf loads in the engine with tokenizer, template, "
           "labels, eval metrics and teacher sha256 (%s)",
           err);
    if (rc == 0 && tok) {
        float probs[2];
        int best = -1;
        rc = eng_classifier_create(m, tok, meta.template, (const char *const *)meta.label_words,
                                   meta.nlabels, &cl, err);
        if (!rc)
            rc = eng_classify(cl, "a gorgeous , witty , seductive movie .", probs, &best, err);
        TAP_OK(rc == 0 && best >= 0 && fabsf(probs[0] + probs[1] - 1.0f) < 1e-4f,
               "the engine classifies with the student: label %d, p = %.3f/%.3f (%s)", best,
               probs[0], probs[1], err);
    }
    eng_classifier_free(cl);
    eng_student_meta_release(&meta);
    eng_tok_free(tok);
    eng_model_free(m);
}

/* ---------------------------------------------------------------- summarization */

static void summarization(void)
{
    char ev[600], out[600];
    snprintf(ev, sizeof(ev), "%s/sum.events", tmp);
    snprintf(out, sizeof(out), "%s/sum", tmp);
    int rc = run_job("sum",
                     cfg_text("{\"method\":\"bitdistill\",\"model\":\"%s\",\"tokenizer\":"
                              "\"%s/tests/fixtures/train/tok-bytes.json\",\"task\":{\"type\":"
                              "\"cnndm\",\"max_target\":24},\"train_file\":"
                              "\"%s/cnndm/train.jsonl\",\"validation_file\":"
                              "\"%s/cnndm/validation.jsonl\",\"max_train_examples\":16,"
                              "\"max_eval_examples\":2,\"eval_max_new\":4,\"max_len\":96,"
                              "\"batch\":2,\"teacher_sft\":{\"steps\":2},\"distill\":"
                              "{\"steps\":2,\"layer\":\"all\",\"relation\":\"scaled\"}}",
                              base, top, data, data),
                     out, 0, 0, ev);
    json_t *e = find_event(ev, "eval", "student");
    TAP_OK(rc == 0 && e && json_is_number(json_object_get(e, "rouge1")) &&
               json_is_number(json_object_get(e, "rouge2")) &&
               json_is_number(json_object_get(e, "rougeLsum")) &&
               json_is_number(json_object_get(e, "bleu")),
           "summarization (CNN/DM): bitdistill finishes and reports ROUGE-1/2/L/Lsum and BLEU "
           "(rc %d)",
           rc);
    json_t *d = find_event(ev, "step", NULL);
    TAP_OK(d != NULL, "summarization: step events");
    json_decref(d);
    json_decref(e);
    /* the student carries its template, so the daemon serves it as a summarizer */
    char gguf[700], err[ENG_ERR_LEN];
    struct eng_model *m = NULL;
    struct eng_student_meta meta = {0};
    snprintf(gguf, sizeof(gguf), "%s/student.gguf", out);
    int lrc = eng_student_load(gguf, &m, NULL, &meta, err);
    TAP_OK(lrc == 0 && meta.template && !strcmp(meta.template, "{text}\nTL;DR:") &&
               meta.nlabels == 0,
           "summarization: student.gguf carries the template '{text}\\nTL;DR:' "
           "and no labels (served as a summarizer) (%s)",
           lrc             ? err
           : meta.template ? meta.template
                           : "none");
    eng_student_meta_release(&meta);
    eng_model_free(m);
}

/* ---------------------------------------------------------------- resume */

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            same = 0;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* Step events as "stage:step:ce:ld:ad:loss:lr:grad_norm:tokens" lines, later duplicates of a
 * (stage, step) replacing earlier ones (a resumed run repeats the steps after its checkpoint). */
static int step_lines(const char *events, char lines[][256], int cap)
{
    FILE *f = fopen(events, "r");
    char line[65536];
    int n = 0;
    while (f && fgets(line, sizeof(line), f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (strcmp(json_string_value(json_object_get(o, "type")) ?: "", "step")) {
            json_decref(o);
            continue;
        }
        char s[256];
        snprintf(s, sizeof(s), "%lld:%lld:%.9g:%.9g:%.9g:%.9g:%.9g:%.9g:%.9g",
                 json_integer_value(json_object_get(o, "stage")),
                 json_integer_value(json_object_get(o, "step")),
                 json_number_value(json_object_get(o, "ce")),
                 json_number_value(json_object_get(o, "ld")),
                 json_number_value(json_object_get(o, "ad")),
                 json_number_value(json_object_get(o, "loss")),
                 json_number_value(json_object_get(o, "lr")),
                 json_number_value(json_object_get(o, "grad_norm")),
                 json_number_value(json_object_get(o, "tokens")));
        json_decref(o);
        int k = 0;
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(strchr(strchr(s, ':') + 1, ':') - s), s);
        for (k = 0; k < n; k++)
            if (!strncmp(lines[k], key, strlen(key)) && lines[k][strlen(key)] == ':')
                break;
        if (k < cap) {
            snprintf(lines[k], 256, "%s", s);
            if (k == n)
                n++;
        }
    }
    if (f)
        fclose(f);
    return n;
}

static void resume(void)
{
    static char la[64][256], lb[64][256];
    const char *job =
        cfg_text("{\"method\":\"bitdistill\"," COMMON "\"max_len\":40,\"batch\":4,\"lr\":1e-3,"
                 "\"max_train_examples\":64,\"max_eval_examples\":16,\"checkpoint_every\":3,"
                 "\"teacher_sft\":{\"steps\":6},\"continue_pretrain\":{\"corpus\":"
                 "\"%s/corpus/wikitext2/valid.txt\",\"tokens\":640},"
                 "\"distill\":{\"steps\":7,\"lambda\":2,\"gamma\":50,\"split_heads\":2}}",
                 base, top, data, data, data);
    char jobc[4096];
    snprintf(jobc, sizeof(jobc), "%s", job);
    char eva[600], evb[600], outa[600], outb[600], fa[700], fb[700];
    snprintf(eva, sizeof(eva), "%s/ra.events", tmp);
    snprintf(evb, sizeof(evb), "%s/rb.events", tmp);
    snprintf(outa, sizeof(outa), "%s/ra", tmp);
    snprintf(outb, sizeof(outb), "%s/rb", tmp);
    int rc = run_job("ra", jobc, outa, 0, 0, eva);
    TAP_OK(rc == 0, "resume: the uninterrupted run finishes (rc %d)", rc);
    /* stop in stage 2 (after 6 + 2 steps; last checkpoint: end of stage 0), resume; stop again
     * in stage 3 (step 5; checkpoint at 3), resume to the end */
    rc = run_job("rb", jobc, outb, 8, 0, evb);
    TAP_OK(rc == 3, "resume: the first run stops after 8 optimizer steps (rc %d)", rc);
    rc = run_job("rb", jobc, outb, 4 + 5, 1, evb);
    TAP_OK(rc == 3, "resume: the second run resumes and stops in stage 3 (rc %d)", rc);
    rc = run_job("rb", jobc, outb, 0, 1, evb);
    TAP_OK(rc == 0, "resume: the third run resumes and finishes (rc %d)", rc);
    int na = step_lines(eva, la, 64), nb = step_lines(evb, lb, 64), same = na == nb && na > 0;
    for (int i = 0; same && i < na; i++)
        if (strcmp(la[i], lb[i])) {
            TAP_DIAG("first difference: %s vs %s", la[i], lb[i]);
            same = 0;
        }
    TAP_OK(same, "resume: %d step events (stages 0, 2, 3) identical to the uninterrupted run", na);
    snprintf(fa, sizeof(fa), "%s/student-hf/model.safetensors", outa);
    snprintf(fb, sizeof(fb), "%s/student-hf/model.safetensors", outb);
    TAP_OK(same_file(fa, fb), "resume: final student weights byte-identical");
    snprintf(fa, sizeof(fa), "%s/teacher/model.safetensors", outa);
    snprintf(fb, sizeof(fb), "%s/teacher/model.safetensors", outb);
    TAP_OK(same_file(fa, fb), "resume: teacher weights byte-identical");
    snprintf(fa, sizeof(fa), "%s/checkpoints/LATEST", outb);
    struct stat st;
    TAP_OK(stat(fa, &st) == 0, "resume: checkpoints/LATEST exists");
    /* a resume with another config is refused */
    char other[4200];
    snprintf(other, sizeof(other), "%s", jobc);
    char *p = strstr(other, "\"lr\":1e-3");
    if (p)
        memcpy(p, "\"lr\":2e-3", 9);
    char evc[600];
    snprintf(evc, sizeof(evc), "%s/rc.events", tmp);
    rc = run_job("rc", other, outb, 0, 1, evc);
    TAP_OK(rc != 0 && count_events(evc, "step") == 0, "resume with a changed config is refused");
}

/* ---------------------------------------------------------------- pretrain */

/* method pretrain: FP next-token training on a corpus, held-out perplexity at each checkpoint,
 * the model saved as an HF directory; an interrupted run resumes to the same curve. */
static void pretrain(void)
{
    char job[4096], out[600], out2[600], ev[600], ev2[600], f1[700], f2[700];
    static char la[64][256], lb[64][256];
    snprintf(job, sizeof(job),
             "{\"method\":\"pretrain\",\"model\":\"%s\",\"tokenizer\":\"%s/tests/fixtures/train/"
             "tok-bytes.json\",\"heldout\":\"%s/corpus/speeches/inaugural/1789-Washington.txt\","
             "\"eval_tokens\":2048,\"checkpoint_every\":10,\"log_every\":1,\"threads\":1,"
             "\"pretrain\":{\"corpus\":\"%s/corpus/wikitext2/valid.txt\",\"tokens\":15360,"
             "\"batch\":4,\"max_len\":64,\"lr\":3e-3,\"warmup\":5}}",
             base, top, data, data);
    snprintf(out, sizeof(out), "%s/pa", tmp);
    snprintf(out2, sizeof(out2), "%s/pb", tmp);
    snprintf(ev, sizeof(ev), "%s/pa.events", tmp);
    snprintf(ev2, sizeof(ev2), "%s/pb.events", tmp);
    int rc = run_job("pa", job, out, 0, 0, ev);
    TAP_OK(rc == 0 && count_events(ev, "step") == 60,
           "pretrain: 15360 tokens = 60 steps of 4 x 64 (rc %d)", rc);
    json_t *first = find_event(ev, "eval", "pretrain"), *done = find_event(ev, "done", NULL);
    json_t *last = json_object_get(json_object_get(done, "metrics"), "pretrain");
    double p0 = json_number_value(json_object_get(first, "perplexity"));
    double p1 = json_number_value(json_object_get(last, "perplexity"));
    TAP_OK(count_events(ev, "eval") == 7 && p0 > 300 && p1 > 1 && p1 < p0 / 2,
           "pretrain: held-out perplexity at step 0 and 6 checkpoints, %.1f -> %.1f (vocab 512)",
           p0, p1);
    /* the saved model reloads to the same held-out loss */
    snprintf(f1, sizeof(f1), "%s/model", out);
    struct trn_model *m = NULL;
    struct eng_tok *tok = NULL;
    struct trn_corpus *c = NULL;
    char err[ENG_ERR_LEN] = "";
    double ce = -1;
    size_t n = 0;
    snprintf(f2, sizeof(f2), "%s/corpus/speeches/inaugural/1789-Washington.txt", data);
    rc = trn_model_load_hf(f1, &m, err);
    if (!rc)
        rc = eng_tok_load_json(f1, &tok, err);
    if (!rc)
        rc = trn_corpus_load(f2, tok, trn_model_config(m)->eos_id, 2048, &c, err);
    if (!rc)
        rc = trn_eval_corpus(m, c->tok, c->ntok, 64, 8, &ce, &n, err);
    TAP_OK(rc == 0 && fabs(ce - json_number_value(json_object_get(last, "loss"))) < 1e-6,
           "pretrain: %s (with tokenizer.json) reloads to held-out loss %.9f over %zu tokens "
           "(event %.9f) (%s)",
           f1, ce, n, json_number_value(json_object_get(last, "loss")), err);
    /* bitdistill cast: the same weights in bf16 (round to nearest even), half the bytes */
    snprintf(f2, sizeof(f2), "%s/model-bf16", out);
    struct trn_model *h = NULL;
    double worst = 0;
    int bad = 0;
    if (m && !(rc = trn_model_save_hf_as(m, f2, 1, err)) &&
        !(rc = trn_model_load_hf(f2, &h, err))) {
        const float *a = trn_model_params(m), *b = trn_model_params(h);
        for (size_t i = 0; i < trn_model_nparams(m); i++) {
            double d = fabs((double)a[i] - b[i]), lim = fabs((double)a[i]) / 256.0 * 1.000001;
            worst = d > worst ? d : worst;
            bad += d > lim;
        }
    }
    struct stat s32 = {0}, s16 = {0};
    char p32[800], p16[800];
    snprintf(p32, sizeof(p32), "%s/model.safetensors", f1);
    snprintf(p16, sizeof(p16), "%s/model.safetensors", f2);
    int st_ok = !stat(p32, &s32) && !stat(p16, &s16);
    TAP_OK(rc == 0 && h && bad == 0 && st_ok &&
               llabs((long long)(s32.st_size - s16.st_size) -
                     2LL * (long long)trn_model_nparams(m)) < 4096,
           "cast to bf16: every weight within 2^-8 relative (%d over, worst abs %.2e), %lld -> "
           "%lld bytes "
           "(%s)",
           bad, worst, (long long)s32.st_size, (long long)s16.st_size, err);
    trn_model_free(h);
    trn_corpus_free(c);
    eng_tok_free(tok);
    trn_model_free(m);
    json_decref(first);
    json_decref(done);
    /* stop after 25 steps (checkpoint at 20), resume to the end: the same curve and weights */
    rc = run_job("pb", job, out2, 25, 0, ev2);
    int rc2 = run_job("pb", job, out2, 0, 1, ev2);
    int na = step_lines(ev, la, 64), nb = step_lines(ev2, lb, 64), same = na == nb && na == 60;
    for (int i = 0; same && i < na; i++)
        same = !strcmp(la[i], lb[i]);
    snprintf(f1, sizeof(f1), "%s/model/model.safetensors", out);
    snprintf(f2, sizeof(f2), "%s/model/model.safetensors", out2);
    TAP_OK(rc == 3 && rc2 == 0 && same && same_file(f1, f2),
           "pretrain: stopped at step 25 and resumed, %d/%d step events and the weights identical "
           "to the uninterrupted run (rc %d, %d)",
           na, nb, rc, rc2);
    /* a pretrain job without a corpus is refused before training */
    rc = run_job("pc",
                 cfg_text("{\"method\":\"pretrain\",\"model\":\"%s\",\"tokenizer\":\"%s/"
                          "tests/fixtures/train/tok-bytes.json\"}",
                          base, top),
                 out2, 0, 0, ev2);
    TAP_OK(rc != 0, "pretrain: a job without pretrain.corpus is refused (rc %d)", rc);
}

int main(void)
{
    const char *t = getenv("top_srcdir");
    char err[ENG_ERR_LEN] = "";
    snprintf(top, sizeof(top), "%s", t ? t : ".");
    snprintf(data, sizeof(data), "%s", tap_data_dir());
    snprintf(tmp, sizeof(tmp), "/tmp/test-trn-pipeline-XXXXXX");
    struct stat st;
    char probe[1200];
    static const char *const needs[] = {"sst2/sentence/stsa.binary.train",
                                        "sst2/sentence/stsa.binary.dev",
                                        "cnndm/train.jsonl",
                                        "cnndm/validation.jsonl",
                                        "corpus/wikitext2/valid.txt",
                                        "corpus/speeches/inaugural/1789-Washington.txt"};
    for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
        snprintf(probe, sizeof(probe), "%s/%s", data, needs[i]);
        if (stat(probe, &st)) {
            TAP_SKIP("needs ../shared/data/%s (not at %s; set SHARED_DATA)", needs[i], probe);
            return tap_done();
        }
    }
    if (!mkdtemp(tmp))
        TAP_BAIL("mkdtemp failed");
    snprintf(base, sizeof(base), "%s/base", tmp);
    int rc =
        eng_init_write(cfg_text("%s/tests/fixtures/train/tiny-config.json", top), base, 1, 0, err);
    if (!TAP_OK(rc == 0, "tiny random-init Qwen3 written (%s)", err))
        return tap_done();
    bad_configs();
    summarization();
    resume();
    pretrain();
    if (getenv("BD_SKIP_SLOW")) /* the three 300-step trainings (~40 s normal build) */
        TAP_SKIP("BD_SKIP_SLOW set: the three SST-2 trainings are skipped");
    else
        methods();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        TAP_DIAG("could not remove %s", tmp);
    return tap_done();
}
