/*
 * train/eval.c — stage 4's evaluation and `bitdistill eval`: accuracy by the label words'
 * logits (the trainer's model, or a student GGUF through the engine's classifier), greedy
 * summaries through the engine with ROUGE and BLEU, and the served baseline of activate
 * if_better, all as eval events and metrics.json entries.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/classify.h"
#include "train/metrics.h"
#include "train/run.h"

/* ------------------------------------------------------------------ evaluation */

/* Accuracy of model (its quant setting) on the validation set: argmax over label tokens. */
static int eval_cls(struct run *r, struct trn_model *model, double *acc, size_t *n_out)
{
    const struct trn_task *t = &r->job.task;
    int max_len = trn_model_config(model)->max_pos, EB = 8, rc = 0;
    size_t n = r->val->n, correct = 0;
    int32_t *tok = malloc((size_t)EB * max_len * sizeof(int32_t));
    struct enc e[8] = {{0}};
    if (!tok)
        return eng_fail(r->err, ENG_ENOMEM, "out of memory");
    int ml = r->job.dist.max_len < max_len ? r->job.dist.max_len : max_len;
    for (size_t i = 0; i < n && !rc; i += EB) {
        int nb = (int)(n - i < (size_t)EB ? n - i : (size_t)EB), T = 1;
        for (int k = 0; k < nb && !rc; k++) {
            rc = trn_encode(t, r->tok, &r->val->ex[i + k], ml - 1, 0, &e[k].ids, &e[k].n, &e[k].np);
            T = e[k].n > T ? e[k].n : T;
        }
        for (int k = 0; k < nb && !rc; k++)
            for (int p = 0; p < T; p++)
                tok[k * T + p] = p < e[k].n ? e[k].ids[p] : 0;
        if (!rc && (rc = trn_model_forward(model, tok, nb, T)))
            eng_fail(r->err, rc, "eval: %s", trn_model_errmsg(model));
        for (int k = 0; k < nb && !rc; k++) {
            const float *lg = trn_model_logits(model) +
                              ((size_t)k * T + e[k].n - 1) * trn_model_config(model)->vocab;
            float ll[TRN_MAX_LABELS], probs[TRN_MAX_LABELS];
            for (int l = 0; l < t->nlabels; l++)
                ll[l] = lg[t->label_tok[l]];
            correct += eng_label_scores(ll, t->nlabels, probs) == r->val->ex[i + k].label;
        }
        for (int k = 0; k < nb; k++) {
            free(e[k].ids);
            e[k].ids = NULL;
        }
    }
    free(tok);
    *acc = n ? (double)correct / (double)n : 0.0;
    *n_out = n;
    return rc;
}

/* Greedy summaries of the validation set by engine model m (borrowed; tok encodes and decodes,
 * eos ends a summary) and their ROUGE/BLEU into res. */
static int eval_sum_engine(struct run *r, struct eng_model *m, const struct eng_tok *tok,
                           int32_t eos, json_t *res)
{
    const struct trn_task *t = &r->job.task;
    int max_pos = eng_model_config(m)->max_pos, rc = 0;
    int mn = r->job.eval_max_new,
        ml = r->job.dist.max_len < max_pos ? r->job.dist.max_len : max_pos;
    int th = r->o->threads > 0 ? r->o->threads : (r->job.threads > 0 ? r->job.threads : 1);
    struct trn_rouge sum = {0};
    struct trn_bleu_stats bs = {0};
    size_t n = r->val->n;
    int32_t *gen = malloc(((size_t)mn + 1) * sizeof(int32_t));
    if (!gen)
        return eng_fail(r->err, ENG_ENOMEM, "out of memory");
    eng_model_set_threads(m, th);
    for (size_t i = 0; i < n && !rc; i++) {
        struct enc e = {0};
        struct eng_ctx *ctx = NULL;
        int room = ml - mn > 8 ? ml - mn : 8, g = 0;
        if ((rc = trn_encode(t, tok, &r->val->ex[i], room, 0, &e.ids, &e.n, &e.np)))
            break;
        if ((rc = eng_ctx_create(m, e.n + mn, &ctx))) {
            eng_fail(r->err, rc, "eval: cannot make a context of %d tokens", e.n + mn);
        } else if ((g = eng_generate_greedy(ctx, e.ids, e.n, mn, eos, gen)) < 0) {
            rc = eng_fail(r->err, ENG_EINVAL, "eval: %s", eng_ctx_errmsg(ctx));
        }
        eng_ctx_free(ctx);
        free(e.ids);
        char *txt = NULL;
        size_t tl = 0;
        if (!rc && eng_tok_decode(tok, gen, (size_t)g, 1, &txt, &tl) == 0) {
            struct trn_rouge one;
            trn_rouge_score(txt, r->val->ex[i].target, &one);
            sum.r1 += one.r1;
            sum.r2 += one.r2;
            sum.rl += one.rl;
            sum.rlsum += one.rlsum;
            trn_bleu_add(&bs, txt, r->val->ex[i].target);
        }
        free(txt);
    }
    double d = n ? (double)n : 1.0;
    json_object_set_new(res, "rouge1", json_real(sum.r1 / d));
    json_object_set_new(res, "rouge2", json_real(sum.r2 / d));
    json_object_set_new(res, "rougeL", json_real(sum.rl / d));
    json_object_set_new(res, "rougeLsum", json_real(sum.rlsum / d));
    json_object_set_new(res, "bleu", json_real(trn_bleu_score(&bs, 0)));
    free(gen);
    return rc;
}

/* Greedy summaries and ROUGE/BLEU, decoded by the engine with a KV cache: the engine reads the
 * parameters in place (the ternary student converted exactly as for export, with its q8/q4
 * head), so the summaries are the ones the served model would write. */
static int eval_sum(struct run *r, struct trn_model *model, json_t *res)
{
    struct eng_model *fp = NULL, *stu = NULL;
    int rc;
    if ((rc = trn_model_engine(model, &fp, r->err)) ||
        (trn_model_quant(model) && (rc = eng_student_from_fp(fp, r->job.head, &stu, r->err))))
        goto out;
    rc = eval_sum_engine(r, stu ? stu : fp, r->tok, r->job.task.eos, res);
out:
    eng_model_free(stu);
    eng_model_free(fp);
    return rc;
}

static int evaluate_on(struct run *r, struct trn_model *model, const char *who, int selection)
{
    if (!r->val)
        return 0;
    json_t *res = json_pack("{s:s,s:i,s:s,s:s}", "type", "eval", "stage", 4, "model", who, "split",
                            selection ? "selection" : "validation");
    int rc;
    if (r->job.task.kind == TRN_TASK_CLS) {
        double acc = 0;
        size_t n = 0;
        rc = eval_cls(r, model, &acc, &n);
        json_object_set_new(res, "accuracy", json_real(acc));
    } else {
        rc = eval_sum(r, model, res);
    }
    json_object_set_new(res, "n", json_integer((json_int_t)r->val->n));
    json_t *copy = json_deep_copy(res);
    json_object_del(copy, "type");
    json_object_del(copy, "stage");
    char key[64];
    snprintf(key, sizeof(key), "%s%s", who, selection ? "_selection" : "");
    json_object_set_new(r->metrics, key, copy);
    trn_emit(r, res);
    return rc;
}

/* Evaluate on validation_file, and on selection_file when given (events with "split"). */
int trn_evaluate(struct run *r, struct trn_model *model, const char *who)
{
    int rc = evaluate_on(r, model, who, 0);
    if (!rc && r->sel) {
        struct trn_dataset *val = r->val;
        r->val = r->sel;
        rc = evaluate_on(r, model, who, 1);
        r->val = val;
    }
    return rc;
}

/* Accuracy of the student file `gguf` on the validation set, as the engine serves it: loaded by
 * eng_student_load (its own tokenizer when it has one) and classifying with the task's label
 * words (the task's template, {text_b} included, filled here by the engine's rule,
 * eng_template_fill, and passed whole). Examples longer than its context are not scored
 * (*skipped). */
int trn_eval_gguf_cls(struct run *r, const char *gguf, double *acc, size_t *n_out, size_t *skipped)
{
    struct eng_model *back = NULL;
    struct eng_tok *btok = NULL;
    struct eng_classifier *cl = NULL;
    struct eng_student_meta meta = {0};
    struct trn_chat_tpl *chat = NULL;
    char *words[TRN_MAX_LABELS];
    size_t correct = 0, n = r->val->n;
    int rc;
    *skipped = 0;
    for (int i = 0; i < r->job.task.nlabels; i++)
        words[i] = r->job.task.words[i];
    if ((rc = eng_student_load(gguf, &back, &btok, &meta, r->err)))
        goto out;
    /* a student of prompt_format "chat_template" is served through its own template */
    if (meta.prompt_format &&
        (rc = trn_chat_tpl_parse(meta.chat_template, gguf, btok ? btok : r->tok,
                                 eng_model_config(back)->bos_id, eng_model_config(back)->eos_id,
                                 &chat, r->err)))
        goto out;
    rc = eng_classifier_create(back, btok ? btok : r->tok, "{text}", (const char *const *)words,
                               r->job.task.nlabels, &cl, r->err);
    for (size_t i = 0; i < n && !rc; i++) {
        const struct trn_example *e = &r->val->ex[i];
        char *p = eng_template_fill(r->job.task.template, e->text, strlen(e->text), e->text_b,
                                    e->text_b ? strlen(e->text_b) : 0);
        float probs[TRN_MAX_LABELS];
        int best = -1;
        if (!p) {
            rc = ENG_ENOMEM;
            break;
        }
        if (chat) {
            char *u = p;
            rc = trn_chat_render(chat, u, NULL, &p, r->err);
            free(u);
            if (rc)
                break;
        }
        rc = eng_classify(cl, p, probs, &best, r->err);
        free(p);
        if (rc == ENG_ERANGE) { /* longer than the model's context: not scored */
            rc = 0;
            (*skipped)++;
            continue;
        }
        correct += !rc && best == e->label;
    }
    eng_classifier_free(cl);
    n -= *skipped;
    *acc = n ? (double)correct / (double)n : 0.0;
    *n_out = n;
out:
    trn_chat_tpl_free(chat);
    eng_student_meta_release(&meta);
    eng_model_free(back);
    eng_tok_free(btok);
    return rc;
}

/*
 * "baseline" (activate if_better): the served model's figure on this validation set, measured as
 * the student's (the engine, the task's template and label words; greedy summaries) or taken as
 * stored when the daemon has one for this same file. An eval event with "model": "baseline"
 * and metrics["baseline"]; a baseline that cannot be evaluated is reported ("error") and does not
 * fail the job (the daemon then keeps the active model).
 */
void trn_evaluate_baseline(struct run *r)
{
    const struct job *j = &r->job;
    int cls = j->task.kind == TRN_TASK_CLS, rc = 0;
    json_t *res = json_pack("{s:s, s:s}", "id", j->baseline_id, "split", "validation");
    if (j->baseline_stored >= 0) {
        json_object_set_new(res, cls ? "accuracy" : "rougeL", json_real(j->baseline_stored));
        json_object_set_new(res, "stored", json_true());
    } else if (cls) {
        double acc = 0;
        size_t n = 0, skipped = 0;
        if (!(rc = trn_eval_gguf_cls(r, j->baseline_path, &acc, &n, &skipped)))
            json_object_set_new(res, "accuracy", json_real(acc));
        json_object_set_new(res, "n", json_integer((json_int_t)n));
    } else {
        struct eng_model *m = NULL;
        struct eng_tok *tok = NULL;
        if (!(rc = eng_student_load(j->baseline_path, &m, &tok, NULL, r->err)))
            rc = eval_sum_engine(r, m, tok ? tok : r->tok,
                                 tok ? eng_model_config(m)->eos_id : j->task.eos, res);
        json_object_set_new(res, "n", json_integer((json_int_t)r->val->n));
        eng_model_free(m);
        eng_tok_free(tok);
    }
    if (rc)
        json_object_set_new(res, "error", json_string(r->err));
    json_object_set_new(r->metrics, "baseline", json_deep_copy(res));
    json_object_set_new(res, "type", json_string("eval"));
    json_object_set_new(res, "stage", json_integer(4));
    json_object_set_new(res, "model", json_string("baseline"));
    trn_emit(r, res);
}
/* `bitdistill eval`: one student file's figures on a dataset, as the trainer's stage 4 measures
 * them (the same functions). Prints one JSON object. */
/* The task as the student file was trained on it: its stored template replaces the task's
 * default (a summarizer trained with "chat_format": "chatml" is prompted in ChatML and stops at
 * <|im_end|>), so `bitdistill eval` measures what the server runs. */
static int eval_task_of_file(struct trn_task *t, const char *tpl, char *err)
{
    static const char pre[] = "<|im_start|>user\n", post[] = "<|im_end|>\n<|im_start|>assistant\n";
    size_t n = tpl ? strlen(tpl) : 0, np = sizeof(pre) - 1, nq = sizeof(post) - 1;
    if (!n)
        return 0;
    if (n >= sizeof(t->template))
        return eng_fail(err, ENG_EFORMAT, "the student's template is too long (%zu bytes)", n);
    if (n > np + nq && !strncmp(tpl, pre, np) && !strcmp(tpl + n - nq, post)) {
        snprintf(t->template, sizeof(t->template), "%.*s", (int)(n - np - nq), tpl + np);
        return trn_task_chatml(t, err);
    }
    snprintf(t->template, sizeof(t->template), "%s", tpl);
    return 0;
}

int trn_cli_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", 1, 0, 'm'},   {"task", 1, 0, 'k'},    {"data", 1, 0, 'd'},
        {"max", 1, 0, 'n'},     {"max-new", 1, 0, 'g'}, {"max-len", 1, 0, 'l'},
        {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    const char *usage = "usage: bitdistill eval --model STUDENT.gguf --task sst2|mnli|qnli|cnndm "
                        "--data FILE [--max N (0: all)] [--max-new 64] [--max-len 512] "
                        "[--threads N]\n";
    const char *model = NULL, *task = NULL, *data = NULL;
    struct trn_run_opts o = {.events_fd = -1};
    struct run *r = calloc(1, sizeof(*r));
    struct eng_model *m = NULL;
    struct eng_tok *tok = NULL;
    struct eng_student_meta meta = {0};
    json_t *res = NULL;
    long max = 0;
    int c, rc = 2;
    if (!r)
        return 1;
    r->o = &o;
    r->job.eval_max_new = 64;
    r->job.dist.max_len = 512;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': task = optarg; break;
        case 'd': data = optarg; break;
        case 'n': max = atol(optarg); break;
        case 'g': r->job.eval_max_new = atoi(optarg); break;
        case 'l': r->job.dist.max_len = atoi(optarg); break;
        case 't': o.threads = atoi(optarg); break;
        case 'h':
            printf("%sAccuracy (classification) or ROUGE-1/2/L/Lsum and BLEU of greedy summaries "
                   "(summarization)\nof a student file on a dataset, measured as the trainer's "
                   "stage 4 does; one JSON object.\n",
                   usage);
            rc = 0;
            goto out;
        default: fprintf(stderr, "%s", usage); goto out;
        }
    }
    if (!model || !task || !data || optind != argc || max < 0 || r->job.eval_max_new < 1 ||
        r->job.dist.max_len < 16) {
        fprintf(stderr, "%s", usage);
        goto out;
    }
    rc = 1;
    if (trn_task_defaults(task, &r->job.task, r->err) ||
        eng_student_load(model, &m, &tok, &meta, r->err))
        goto fail;
    if (!tok) {
        eng_fail(r->err, ENG_ECONFIG, "'%s' carries no tokenizer", model);
        goto fail;
    }
    r->tok = tok;
    /* a student trained with prompt_format "chat_template" is measured through its template */
    if (meta.prompt_format &&
        (trn_chat_tpl_parse(meta.chat_template, model, tok, eng_model_config(m)->bos_id,
                            eng_model_config(m)->eos_id, &r->chat_tpl, r->err) ||
         trn_task_chat_template(&r->job.task, r->chat_tpl, r->err)))
        goto fail;
    if (!meta.prompt_format && eval_task_of_file(&r->job.task, meta.template, r->err))
        goto fail;
    if (trn_task_resolve(&r->job.task, tok, eng_model_config(m)->eos_id, r->err) ||
        trn_dataset_load(data, &r->job.task, (size_t)max, &r->val, r->err))
        goto fail;
    res = json_pack("{s:s, s:s, s:I}", "model", model, "data", data, "n", (json_int_t)r->val->n);
    if (r->job.task.kind == TRN_TASK_CLS) {
        double acc = 0;
        size_t n = 0, skipped = 0;
        if (trn_eval_gguf_cls(r, model, &acc, &n, &skipped))
            goto fail;
        json_object_set_new(res, "accuracy", json_real(acc));
        json_object_set_new(res, "n", json_integer((json_int_t)n));
        json_object_set_new(res, "skipped", json_integer((json_int_t)skipped));
    } else if (eval_sum_engine(r, m, tok, r->job.task.eos, res)) {
        goto fail;
    }
    char *txt = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(9));
    printf("%s\n", txt ? txt : "{}");
    free(txt);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "bitdistill eval: %s\n", r->err);
out:
    json_decref(res);
    trn_chat_tpl_free(r->chat_tpl);
    eng_student_meta_release(&meta);
    trn_dataset_free(r->val);
    eng_model_free(m);
    eng_tok_free(tok);
    free(r);
    return rc;
}
