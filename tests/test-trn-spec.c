/*
 * tests/test-trn-spec.c — the one schema of a training job (train/spec.h):
 *  - the documented config (docs/train.md's "Job config" JSON block) is accepted, and every key
 *    the documentation names in backticks in that section is recognised somewhere (top level, a
 *    stage object, the task object or baseline), so a documented key cannot be refused;
 *  - a misspelled sibling of each key of the documented config, at every level, is refused by
 *    name, as are values of the wrong type or range;
 *  - `bitdistill train` (trn_run) refuses such a config before any work, its error event naming
 *    the key.
 * The daemon's door (400 naming the key) is tests/test-api-jobs.sh.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/err.h"
#include "train/pipeline.h"
#include "train/spec.h"
#include "tests/tap.h"
#include "tests/eng_util.h"

/* For every key of object o (at path), a sibling key+"x" must be refused, naming its path. */
static void misspell_all(json_t *root, json_t *o, const char *path, int *bad)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(o, tmp, k, v)
    {
        char wrong[128], sub[256], where[256], err[ENG_ERR_LEN], want[300];
        snprintf(wrong, sizeof(wrong), "%sx", k);
        snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", wrong);
        json_object_set_new(o, wrong, json_integer(1));
        int rc = trn_spec_check(root, where, sizeof(where), err);
        snprintf(want, sizeof(want), "unknown key '%s'", sub);
        if (rc != ENG_ECONFIG || strcmp(where, sub) || !strstr(err, want)) {
            TAP_OK(0, "misspelled '%s' refused by name (rc %d, where '%s', %s)", sub, rc, where,
                   err);
            (*bad)++;
        }
        json_object_del(o, wrong);
        if (json_is_object(v)) {
            char next[256];
            snprintf(next, sizeof(next), "%s%s%s", path, path[0] ? "." : "", k);
            misspell_all(root, v, next, bad);
        }
    }
}

/* Whether key is recognised in some object of a valid config: the error, if any, is about its
 * value, never "unknown key". */
static int recognised(const json_t *good, const char *key)
{
    static const char *const holders[] = {"", "distill", "task", "baseline"};
    for (size_t h = 0; h < sizeof(holders) / sizeof(holders[0]); h++) {
        json_t *c = json_deep_copy(good), *at = c;
        char where[256], err[ENG_ERR_LEN];
        if (holders[h][0]) {
            at = json_object();
            json_object_set_new(c, holders[h], at);
        }
        if (!strcmp(holders[h], "task"))
            json_object_set_new(at, "type", json_string("sst2"));
        if (!strcmp(holders[h], "baseline")) {
            json_object_set_new(at, "id", json_string("m"));
            json_object_set_new(at, "stored", json_real(0.5));
        }
        json_object_set_new(at, key, json_integer(1));
        int rc = trn_spec_check(c, where, sizeof(where), err);
        json_decref(c);
        if (rc == 0 || !strstr(err, "unknown key"))
            return 1;
    }
    return 0;
}

/* Backticked words of docs/train.md's "Job config" section that are values or names, not keys. */
static const char *const not_keys[] = {"fp16_sft",
                                       "bitnet_sft",
                                       "bitdistill",
                                       "true",
                                       "false",
                                       "error",
                                       "clip_grad_norm_",
                                       "sst2",
                                       "mnli",
                                       "qnli",
                                       "cnndm",
                                       "classification",
                                       "summarization",
                                       "cosine",
                                       "scaled",
                                       "all",
                                       "last",
                                       "chatml",
                                       "chat",
                                       "chat_template",
                                       "plain",
                                       "split",
                                       "selection",
                                       "validation",
                                       "teacher_selection",
                                       "student_selection",
                                       "model",
                                       "student",
                                       "student_gguf",
                                       "eval",
                                       "perplexity",
                                       "loss",
                                       "step",
                                       "trn_model_engine",
                                       "text",
                                       "text_b",
                                       "summary",
                                       NULL};

static int is_not_key(const char *w)
{
    for (const char *const *k = not_keys; *k; k++)
        if (!strcmp(*k, w))
            return 1;
    return 0;
}

static void documented(const char *top, json_t **good_out)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/docs/train.md", top);
    char *md = eu_read(path, NULL);
    if (!TAP_OK(md != NULL, "docs/train.md read"))
        return;
    char *sec = strstr(md, "## Job config"), *end = sec ? strstr(sec, "\n## Evaluating") : NULL;
    char *js = sec ? strstr(sec, "```json\n") : NULL, *je = js ? strstr(js + 8, "```") : NULL;
    if (!TAP_OK(sec && end && js && je,
                "docs/train.md has a Job config section with a JSON block")) {
        free(md);
        return;
    }
    json_error_t jerr;
    json_t *good = json_loadb(js + 8, (size_t)(je - js - 8), 0, &jerr);
    char where[256], err[ENG_ERR_LEN] = "";
    TAP_OK(good && trn_spec_check(good, where, sizeof(where), err) == 0,
           "the documented job config is accepted (%s)", good ? err : jerr.text);
    /* every backticked key-like word of the section */
    int n = 0, missing = 0;
    *end = 0;
    for (char *p = strchr(sec, '`'); good && p; p = strchr(p + 1, '`')) {
        char *q = strchr(p + 1, '`');
        if (!q)
            break;
        size_t len = (size_t)(q - p - 1);
        char w[64];
        int keyish = len > 1 && len < sizeof(w);
        for (size_t i = 0; keyish && i < len; i++)
            keyish = (p[1 + i] >= 'a' && p[1 + i] <= 'z') || p[1 + i] == '_' || p[1 + i] == '.';
        if (keyish) {
            memcpy(w, p + 1, len);
            w[len] = 0;
            /* "continue_pretrain.tokens" names tokens inside continue_pretrain */
            const char *leaf = strrchr(w, '.') ? strrchr(w, '.') + 1 : w;
            if (!is_not_key(leaf)) {
                n++;
                if (!recognised(good, leaf)) {
                    missing++;
                    TAP_OK(0, "documented key '%s' is recognised by the schema", w);
                }
            }
        }
        p = q;
    }
    TAP_OK(n > 30 && missing == 0, "%d backticked keys of docs/train.md's Job config, %d refused",
           n, missing);
    *good_out = good;
    free(md);
}

static void values(json_t *good)
{
    static const struct {
        const char *json, *where, *says;
    } bad[] = {
        {"{\"distill\": {\"tau\": 0}}", "distill.tau", "> 0"},
        {"{\"distill\": {\"layer\": \"first\"}}", "distill.layer", "\"last\""},
        {"{\"distill\": {\"relation\": \"dot\"}}", "distill.relation", "cosine|scaled"},
        {"{\"teacher_sft\": 3}", "teacher_sft", "an object"},
        {"{\"batch\": 0}", "batch", ">= 1"},
        {"{\"steps\": 2.5}", "steps", "an integer"},
        {"{\"head\": \"q2\"}", "head", "q8|q4"},
        {"{\"subln\": 1}", "subln", "true or false"},
        {"{\"task\": {\"type\": \"sst2\", \"labels\": [\"a\"]}}", "task.labels", "2 strings"},
        {"{\"task\": \"sst3\"}", "task", "sst2|"},
        {"{\"prompt_format\": \"jinja\"}", "prompt_format", "plain|chat_template"},
        {"{\"baseline\": {\"id\": \"m\", \"score\": 1}}", "baseline.score", "unknown key"},
        {"{\"pretrain\": {\"tokens\": 10}}", "pretrain", "does not apply"},
    };
    for (size_t i = 0; good && i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *c = json_deep_copy(good), *patch = json_loads(bad[i].json, 0, NULL);
        char where[256], err[ENG_ERR_LEN] = "";
        json_object_update(c, patch);
        int rc = trn_spec_check(c, where, sizeof(where), err);
        TAP_OK(rc == ENG_ECONFIG && !strcmp(where, bad[i].where) && strstr(err, bad[i].says) &&
                   strstr(err, bad[i].where),
               "%s refused at '%s': %s", bad[i].json, where, err);
        json_decref(patch);
        json_decref(c);
    }
}

/* The trainer's door: trn_run refuses the config before anything, naming the key. */
static void trainer_door(json_t *good)
{
    char dir[] = "/tmp/bd-test-spec-XXXXXX", cfg[600], out[600], ev[600], line[4096];
    if (!TAP_OK(mkdtemp(dir) != NULL, "temporary directory"))
        return;
    snprintf(cfg, sizeof(cfg), "%s/job.json", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(ev, sizeof(ev), "%s/events", dir);
    json_t *c = json_deep_copy(good);
    json_object_set_new(json_object_get(c, "distill"), "lamda", json_integer(3));
    json_dump_file(c, cfg, 0);
    json_decref(c);
    FILE *f = fopen(ev, "w");
    struct trn_run_opts o = {
        .config = cfg, .out = out, .threads = 1, .events_fd = f ? fileno(f) : -1};
    int rc = trn_run(&o);
    if (f)
        fclose(f);
    f = fopen(ev, "r");
    int named = 0, lines = 0;
    while (f && fgets(line, sizeof(line), f)) {
        lines++;
        named |= strstr(line, "\"type\":\"error\"") && strstr(line, "unknown key 'distill.lamda'");
    }
    if (f)
        fclose(f);
    TAP_OK(rc == ENG_ECONFIG && named && lines == 1,
           "bitdistill train refuses distill.lamda before any work (rc %d, %d event line(s))", rc,
           lines);
    unlink(cfg);
    unlink(ev);
    rmdir(out);
    rmdir(dir);
}

int main(void)
{
    const char *top = getenv("top_srcdir");
    json_t *good = NULL;
    documented(top ? top : ".", &good);
    int bad = 0;
    if (good) {
        json_t *c = json_deep_copy(good);
        json_object_set_new(c, "task",
                            json_pack("{s:s,s:s,s:[s,s],s:[s,s],s:i}", "type", "classification",
                                      "template", "{text} =", "labels", "no", "yes", "verbalizers",
                                      " n", " y", "max_target", 8));
        json_object_set_new(c, "baseline", json_pack("{s:s,s:s}", "id", "m", "path", "/m.gguf"));
        TAP_OK(trn_spec_check(c, NULL, 0, (char[ENG_ERR_LEN]){0}) == 0,
               "a task object and a baseline are accepted");
        misspell_all(c, c, "", &bad);
        TAP_OK(bad == 0,
               "a misspelled sibling of every key at every level is refused by name "
               "(%d not)",
               bad);
        json_decref(c);
    }
    values(good);
    if (good)
        trainer_door(good);
    json_decref(good);
    return tap_done();
}
