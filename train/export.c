/*
 * train/export.c — the trained student out of the trainer: student-hf/ (latent weights,
 * SubLN, tokenizer), student.gguf through the engine's writer with the task metadata, the base
 * model's chat template and provenance, then read back by the engine and scored.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/chat.h"
#include "engine/safetensors.h"
#include "jinja/jinja.h"
#include "train/run.h"

/* ------------------------------------------------------------------ export */

int trn_copy_file(const char *from, const char *to, char *err)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = 0;
    if (!a || !b)
        rc = eng_fail(err, ENG_EIO, "cannot copy '%s' to '%s': %s", from, to, strerror(errno));
    while (!rc && (n = fread(buf, 1, sizeof(buf), a)) > 0)
        if (fwrite(buf, 1, n, b) != n)
            rc = eng_fail(err, ENG_EIO, "cannot write '%s'", to);
    if (a)
        fclose(a);
    if (b && fclose(b) && !rc)
        rc = eng_fail(err, ENG_EIO, "cannot write '%s'", to);
    return rc;
}

/* tokenizer.json of the job (a file, or a directory holding one) into dir. */
int trn_copy_tokenizer(struct run *r, const char *dir)
{
    char from[PATH_LEN + 32], to[PATH_LEN + 32];
    struct stat st;
    if (!stat(r->job.tokenizer, &st) && S_ISDIR(st.st_mode))
        snprintf(from, sizeof(from), "%s/tokenizer.json", r->job.tokenizer);
    else
        snprintf(from, sizeof(from), "%s", r->job.tokenizer);
    snprintf(to, sizeof(to), "%s/tokenizer.json", dir);
    return trn_copy_file(from, to, r->err);
}

/* student-hf/ (latent weights + SubLN + tokenizer), then student.gguf through the engine's
 * student writer, then the GGUF loaded back by the engine and classifying the validation set. */
int trn_export_student(struct run *r, const char *teacher_dir, char *gguf)
{
    char hf[PATH_LEN + 32], tsha[65] = "";
    struct eng_model *fp = NULL, *stu = NULL;
    struct eng_student_meta meta = {0};
    char *labels[TRN_MAX_LABELS], *words[TRN_MAX_LABELS];
    int rc;
    snprintf(hf, sizeof(hf), "%s/student-hf", r->o->out);
    snprintf(gguf, PATH_LEN, "%s/student.gguf", r->o->out);
    if ((rc = trn_model_save_hf(r->student, hf, r->err)) || (rc = trn_copy_tokenizer(r, hf)))
        return rc;
    /* provenance: every shard of the teacher, as `bitdistill convert` hashes it */
    char herr[ENG_ERR_LEN];
    if (teacher_dir && eng_st_sha256(teacher_dir, tsha, herr))
        snprintf(tsha, sizeof(tsha), "unknown");
    if ((rc = eng_model_load_hf(hf, &fp, r->err)) ||
        (rc = eng_student_from_fp(fp, r->job.head, &stu, r->err)))
        goto out;
    for (int i = 0; i < r->job.task.nlabels; i++) {
        labels[i] = r->job.task.labels[i];
        words[i] = r->job.task.words[i];
    }
    char *ev = json_dumps(r->metrics, JSON_COMPACT | JSON_SORT_KEYS);
    meta.template = r->job.task.template; /* a summarizer is served by its template too */
    meta.nlabels = r->job.task.kind == TRN_TASK_CLS ? r->job.task.nlabels : 0;
    meta.labels = labels;
    meta.label_words = words;
    meta.teacher_sha256 = tsha[0] ? tsha : NULL;
    meta.job_id = r->job.sha;
    meta.eval_json = ev;
    /* the base model's chat template travels with the student (engine/chat.h) */
    struct stat tst;
    if (r->chat_tpl) { /* prompt_format "chat_template": the one the examples were rendered by */
        meta.prompt_format = (char *)"chat_template";
        meta.chat_template = strdup(trn_chat_tpl_text(r->chat_tpl));
        if (!meta.chat_template) {
            free(ev);
            rc = eng_fail(r->err, ENG_ENOMEM, "out of memory");
            goto out;
        }
    } else if (!stat(r->job.tokenizer, &tst) && S_ISDIR(tst.st_mode) &&
               (rc = eng_chat_template_read(r->job.tokenizer, &meta.chat_template, r->err))) {
        free(ev);
        goto out;
    }
    if (meta.chat_template) {
        /* a template the server could not render would keep the student from loading */
        struct jinja_tpl *jt = NULL;
        char jerr[JINJA_ERR_LEN];
        if (jinja_parse(meta.chat_template, strlen(meta.chat_template), &jt, jerr)) {
            fprintf(stderr,
                    "bitdistill train: the chat template is left out of the student: "
                    "%s\n",
                    jerr);
            free(meta.chat_template);
            meta.chat_template = NULL;
        }
        jinja_free(jt);
    }
    rc = eng_student_save(stu, r->tok, &meta, gguf, r->err);
    free(meta.chat_template);
    free(ev);
    if (rc)
        goto out;
    /* The engine reads it back and classifies with it. */
    if (r->job.task.kind == TRN_TASK_CLS && r->val) {
        double acc = 0;
        size_t n = 0, skipped = 0;
        if ((rc = trn_eval_gguf_cls(r, gguf, &acc, &n, &skipped)))
            goto out;
        trn_emit(r, json_pack("{s:s,s:i,s:s,s:f,s:I,s:I}", "type", "eval", "stage", 4, "model",
                              "student_gguf", "accuracy", acc, "n", (json_int_t)n, "skipped",
                              (json_int_t)skipped));
        json_object_set_new(r->metrics, "student_gguf",
                            json_pack("{s:f,s:I,s:I}", "accuracy", acc, "n", (json_int_t)n,
                                      "skipped", (json_int_t)skipped));
    }
out:
    eng_model_free(stu);
    eng_model_free(fp);
    return rc;
}
