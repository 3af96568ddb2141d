/*
 * tests/test-trn-provenance.c — a student's teacher_sha256 (GGUF provenance) is one hash of the
 * teacher's weights whichever command made the student, for a single-file and a sharded teacher.
 *
 * A tiny random-init Qwen3 is written as one model.safetensors and again as two shards with a
 * model.safetensors.index.json whose weight_map names the second shard first. `bitdistill
 * convert` (the binary) and `bitdistill train` (trn_run, method bitdistill with that teacher,
 * one distillation step on eight inline sentences) must both record the hash that `sha256sum`
 * gives for the shard files concatenated in the order the index first names them (the order
 * the loader maps them), and `sha256sum model.safetensors` for the single file.
 */
#include "config.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/student.h"
#include "train/pipeline.h"
#include "tests/tap.h"

static char tmp[256], top[400], bld[400];

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char bufs[8][2048];
    static int k;
    char *b = bufs[k++ & 7];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

/* The reference: `cat FILES | sha256sum` run by the shell. "" on failure. */
static void sha256sum_of(const char *files, char out[65])
{
    char cmd[4096];
    out[0] = '\0';
    snprintf(cmd, sizeof(cmd), "cat %s | sha256sum", files);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    if (fscanf(p, "%64s", out) != 1)
        out[0] = '\0';
    pclose(p);
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* Split dir one/model.safetensors into dir sharded/ (two shards: even tensors in the first,
 * odd ones in the second) with an index that names tensor 1 (second shard) first. */
static int write_sharded(const char *one, const char *dir, char *err)
{
    struct eng_st *st = NULL;
    int rc = eng_st_open(fmt("%s/model.safetensors", one), &st, err);
    if (rc)
        return rc;
    size_t n = eng_st_count(st), na = 0, nb = 0;
    struct eng_st_wtensor *a = calloc(n, sizeof(*a)), *b = calloc(n, sizeof(*b));
    FILE *idx = fopen(fmt("%s/model.safetensors.index.json", dir), "w");
    if (!a || !b || !idx || n < 2) {
        rc = eng_fail(err, ENG_EIO, "cannot set up the shards in %s", dir);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct eng_st_tensor *t = eng_st_at(st, i);
        struct eng_st_wtensor *w = i % 2 ? &b[nb++] : &a[na++];
        w->name = t->name;
        w->dtype = t->dtype;
        w->ndim = t->ndim;
        memcpy(w->shape, t->shape, sizeof(w->shape));
        w->data = t->data;
    }
    if ((rc = eng_st_write(fmt("%s/model-00001-of-00002.safetensors", dir), a, na, err)) ||
        (rc = eng_st_write(fmt("%s/model-00002-of-00002.safetensors", dir), b, nb, err)))
        goto out;
    fprintf(idx, "{\"metadata\": {\"total_size\": %zu}, \"weight_map\": {\n",
            eng_st_mapped_bytes(st));
    for (size_t k = 0; k < n; k++) {
        size_t i = k == 0 ? 1 : k == 1 ? 0 : k; /* tensor 1 (second shard) first */
        fprintf(idx, "  \"%s\": \"model-0000%d-of-00002.safetensors\"%s\n", eng_st_at(st, i)->name,
                i % 2 ? 2 : 1, k + 1 < n ? "," : "");
    }
    fprintf(idx, "}}\n");
out:
    if (idx)
        fclose(idx);
    free(a);
    free(b);
    eng_st_free(st);
    return rc;
}

/* teacher_sha256 of a student GGUF into hex ("" when absent or unreadable). */
static void gguf_teacher_sha(const char *gguf, char hex[65])
{
    char err[ENG_ERR_LEN];
    struct eng_model *m = NULL;
    struct eng_student_meta meta = {0};
    hex[0] = '\0';
    if (eng_student_load(gguf, &m, NULL, &meta, err) == 0 && meta.teacher_sha256)
        snprintf(hex, 65, "%s", meta.teacher_sha256);
    else
        TAP_DIAG("%s: %s", gguf, err);
    eng_student_meta_release(&meta);
    eng_model_free(m);
}

static int convert(const char *teacher, const char *gguf)
{
    return sh(fmt("'%s/bitdistill' convert --model '%s' --out '%s' --ternary --head q8 "
                  "--template 'Review: {text}\nSentiment:' --label negative=' negative' "
                  "--label positive=' positive' 2>'%s/convert.err'",
                  bld, teacher, gguf, tmp));
}

/* One bitdistill job with `teacher` (also the student's base), one distillation step. */
static int train(const char *teacher, const char *out)
{
    const char *cfg = fmt("%s/job.json", tmp), *data = fmt("%s/train.jsonl", tmp);
    FILE *f = fopen(data, "w"), *c = fopen(cfg, "w");
    if (!f || !c) {
        if (f)
            fclose(f);
        if (c)
            fclose(c);
        return -100;
    }
    static const char *const texts[] = {"a wonderful film", "dull and slow",    "great acting",
                                        "a waste of time",  "moving and funny", "boring plot",
                                        "a triumph",        "badly written"};
    for (int i = 0; i < 8; i++)
        fprintf(f, "{\"text\": \"%s\", \"label\": \"%s\"}\n", texts[i],
                i % 2 ? "negative" : "positive");
    fclose(f);
    fprintf(c,
            "{\"method\":\"bitdistill\",\"model\":\"%s\",\"teacher\":\"%s\",\"tokenizer\":"
            "\"%s/tests/fixtures/train/tok-bytes.json\",\"task\":\"sst2\",\"train_file\":\"%s\","
            "\"validation_file\":\"%s\",\"batch\":2,\"max_len\":32,\"distill\":{\"steps\":1}}",
            teacher, teacher, top, data, data);
    fclose(c);
    FILE *ev = fopen(fmt("%s.events", out), "w");
    if (!ev)
        return -101;
    struct trn_run_opts o = {.config = cfg, .out = out, .threads = 1, .events_fd = fileno(ev)};
    int rc = trn_run(&o);
    fclose(ev);
    return rc;
}

int main(void)
{
    const char *t = getenv("top_srcdir"), *b = getenv("top_builddir");
    char err[ENG_ERR_LEN] = "", want1[65], want2[65], got[65], wrong[65];
    snprintf(top, sizeof(top), "%s", t ? t : ".");
    snprintf(bld, sizeof(bld), "%s", b ? b : ".");
    snprintf(tmp, sizeof(tmp), "/tmp/test-trn-provenance-XXXXXX");
    if (!mkdtemp(tmp))
        TAP_BAIL("mkdtemp failed");
    char one[300], sharded[300], c1[300], c2[300], t1[300], t2[300], list[1000];
    snprintf(one, sizeof(one), "%s/one", tmp);
    snprintf(sharded, sizeof(sharded), "%s/sharded", tmp);
    snprintf(c1, sizeof(c1), "%s/c1.gguf", tmp);
    snprintf(c2, sizeof(c2), "%s/c2.gguf", tmp);
    snprintf(t1, sizeof(t1), "%s/t1", tmp);
    snprintf(t2, sizeof(t2), "%s/t2", tmp);
    int rc = eng_init_write(fmt("%s/tests/fixtures/train/tiny-config.json", top), one, 5, 0, err);
    if (!TAP_OK(rc == 0, "tiny random-init Qwen3 written (%s)", err))
        return tap_done();
    rc = sh(fmt("mkdir -p '%s' && cp '%s/config.json' '%s/' && cp '%s/tests/fixtures/train/"
                "tok-bytes.json' '%s/tokenizer.json' && cp '%s/tokenizer.json' '%s/'",
                sharded, one, sharded, top, one, one, sharded));
    if (!TAP_OK(rc == 0 && write_sharded(one, sharded, err) == 0,
                "split into two shards with an "
                "index naming the second shard first (%s)",
                err))
        return tap_done();

    /* the independent references */
    snprintf(list, sizeof(list), "'%s/model.safetensors'", one);
    sha256sum_of(list, want1);
    snprintf(list, sizeof(list),
             "'%s/model-00002-of-00002.safetensors' "
             "'%s/model-00001-of-00002.safetensors'",
             sharded, sharded);
    sha256sum_of(list, want2);
    snprintf(list, sizeof(list),
             "'%s/model-00001-of-00002.safetensors' "
             "'%s/model-00002-of-00002.safetensors'",
             sharded, sharded);
    sha256sum_of(list, wrong);
    TAP_OK(want1[0] && want2[0] && strcmp(want2, wrong),
           "sha256sum references: single %.12s, "
           "shards in index order %.12s (file-name order would give %.12s)",
           want1, want2, wrong);

    rc = eng_st_sha256(sharded, got, err);
    TAP_OK(rc == 0 && !strcmp(got, want2), "eng_st_sha256 of the sharded directory: %s (%s)", got,
           rc ? err : "ok");
    rc = eng_st_sha256(fmt("%s/none", tmp), got, err);
    TAP_OK(rc != 0 && got[0] == '\0' && strstr(err, "none"),
           "of a missing directory: an error "
           "naming it (%s)",
           err);

    rc = convert(one, c1);
    gguf_teacher_sha(c1, got);
    TAP_OK(rc == 0 && !strcmp(got, want1),
           "convert, single-file teacher: teacher_sha256 %s = "
           "sha256sum model.safetensors (rc %d)",
           got, rc);
    rc = convert(sharded, c2);
    gguf_teacher_sha(c2, got);
    TAP_OK(rc == 0 && !strcmp(got, want2),
           "convert, sharded teacher: teacher_sha256 %s = "
           "sha256sum of the shards in index order (rc %d)",
           got, rc);

    rc = train(one, t1);
    gguf_teacher_sha(fmt("%s/student.gguf", t1), got);
    TAP_OK(rc == 0 && !strcmp(got, want1),
           "train, single-file teacher: teacher_sha256 %s = "
           "sha256sum model.safetensors (rc %d)",
           got, rc);
    rc = train(sharded, t2);
    gguf_teacher_sha(fmt("%s/student.gguf", t2), got);
    TAP_OK(rc == 0 && !strcmp(got, want2),
           "train, sharded teacher: teacher_sha256 %s = the "
           "same hash as convert (rc %d)",
           got, rc);

    if (sh(fmt("rm -rf '%s'", tmp)) != 0)
        TAP_DIAG("could not remove %s", tmp);
    return tap_done();
}
