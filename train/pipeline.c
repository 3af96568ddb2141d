/*
 * train/pipeline.c — `bitdistill train`: the stage loop of BitDistill and its baselines,
 * events, batches, checkpoints/resume (pipeline.h has the contract). The job config is spec.c,
 * evaluation eval.c, the student's export export.c.
 *
 * Determinism: the data order of a stage is a pure function of (seed, stage, epoch), the batch
 * of optimizer step k is the k-th slice of that order, and the math is deterministic at a fixed
 * thread count, so a resumed job (parameters, AdamW moments and step restored) reproduces the
 * uninterrupted loss curve bit for bit.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train/backend.h"
#include "train/ckpt.h"
#include "train/run.h"
#include "kernels/blas.h"

/* trn_run's status for a job paused on SIGUSR1 (a checkpoint was written; --resume continues). */
#define TRN_PAUSED 4

/* Set by the SIGUSR1 handler (trn_cli_train): the one global of the trainer, because a signal
 * handler can reach nothing else. train_stage checkpoints and stops after the current step. */
static volatile sig_atomic_t pause_requested;

static void on_pause_signal(int sig)
{
    (void)sig;
    pause_requested = 1;
}

/* ------------------------------------------------------------------ events */

void trn_emit(struct run *r, json_t *o)
{
    if (r->ev) {
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (s) {
            fprintf(r->ev, "%s\n", s);
            fflush(r->ev);
            free(s);
        }
    }
    json_decref(o);
}

void trn_message(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void trn_message(struct run *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (r->o->progress)
        fprintf(stderr, "bitdistill train: %s\n", buf);
    trn_emit(r, json_pack("{s:s,s:s}", "type", "message", "message", buf));
}

void trn_stage_event(struct run *r, int stage, const char *name, const char *status, long steps)
{
    trn_emit(r, json_pack("{s:s,s:i,s:s,s:s,s:I}", "type", "stage", "stage", stage, "name", name,
                          "status", status, "steps", (json_int_t)steps));
    if (r->o->progress)
        fprintf(stderr, "bitdistill train: stage %d %s %s (%ld steps)\n", stage, name, status,
                steps);
}
/* ------------------------------------------------------------------ data */

static void free_set(struct enc **e, const struct trn_dataset *d)
{
    for (size_t i = 0; *e && i < d->n; i++)
        free((*e)[i].ids);
    free(*e);
    *e = NULL;
}

static void free_enc(struct run *r)
{
    if (r->train)
        free_set(&r->tr, r->train);
    if (r->val)
        free_set(&r->va, r->val);
}

/* Encode dataset d (from file) with targets at max_len into *e (cached while *len matches). */
static int encode_set(struct run *r, const struct trn_dataset *d, const char *file, int max_len,
                      struct enc **e, int *len)
{
    if (*e && *len == max_len)
        return 0;
    free_set(e, d);
    *e = calloc(d->n, sizeof(**e));
    if (!*e)
        return eng_fail(r->err, ENG_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n; i++) {
        int rc = trn_encode(&r->job.task, r->tok, &d->ex[i], max_len, 1, &(*e)[i].ids, &(*e)[i].n,
                            &(*e)[i].np);
        if (rc)
            return eng_fail(r->err, rc, "%s: example %zu cannot be encoded in %d tokens (%s)", file,
                            i + 1, max_len, eng_strerror(rc));
    }
    *len = max_len;
    return 0;
}

static int encode_train(struct run *r, int max_len)
{
    return encode_set(r, r->train, r->job.train_file, max_len, &r->tr, &r->tr_len);
}

/* Fill b's rows with examples e[0..B) (prompt tokens, targets on the answer, zero padding);
 * returns the real tokens. */
static size_t fill_batch(const struct enc *const *e, int B, struct trn_batch *b)
{
    int T = 1;
    size_t ntok = 0;
    for (int i = 0; i < B; i++)
        T = e[i]->n > T ? e[i]->n : T;
    for (int i = 0; i < B; i++) {
        for (int t = 0; t < T; t++) {
            b->tok[i * T + t] = t < e[i]->n ? e[i]->ids[t] : 0;
            b->target[i * T + t] = t >= e[i]->np - 1 && t < e[i]->n - 1 ? e[i]->ids[t + 1] : -1;
        }
        b->len[i] = e[i]->n;
        ntok += (size_t)e[i]->n;
    }
    b->B = B;
    b->T = T;
    return ntok;
}

/* Example index of the i-th example drawn in stage `stage` (epochs of seeded permutations). */
static size_t draw_n(struct run *r, int stage, size_t i, size_t n)
{
    long epoch = (long)(i / n);
    if (!r->perm || r->perm_epoch != epoch || r->perm_stage != stage || r->perm_n != n) {
        if (r->perm_n != n) {
            free(r->perm);
            r->perm = malloc(n * sizeof(size_t));
            r->perm_n = n;
        }
        trn_shuffle(r->perm, n,
                    r->job.seed * 1000003ULL + (uint64_t)stage * 7919ULL + (uint64_t)epoch);
        r->perm_epoch = epoch;
        r->perm_stage = stage;
    }
    return r->perm[i % n];
}

static size_t draw(struct run *r, int stage, size_t i)
{
    return draw_n(r, stage, i, r->train->n);
}

/* Fill b (arrays of B*maxT) with micro-batch k of the stage: task examples or corpus rows. */
static size_t make_batch(struct run *r, int stage, const struct stage_cfg *s, long k,
                         struct trn_batch *b)
{
    int B = s->batch, T = 1;
    size_t ntok = 0;
    if (stage == 2) {
        T = s->max_len;
        size_t span = r->corpus->ntok - (size_t)T - 1, nwin = (r->corpus->ntok - 1) / (size_t)T;
        for (int i = 0; i < B; i++) {
            size_t row = (size_t)k * B + i, start = (row * (size_t)T) % (span ? span : 1);
            if (r->job.method == M_PRETRAIN) /* epochs of shuffled windows of T+1 tokens */
                start = draw_n(r, stage, row, nwin) * (size_t)T;
            for (int t = 0; t < T; t++) {
                b->tok[i * T + t] = r->corpus->tok[start + t];
                b->target[i * T + t] = r->corpus->tok[start + t + 1];
            }
            b->len[i] = T;
            ntok += (size_t)T;
        }
        b->B = B;
        b->T = T;
        return ntok;
    }
    const struct enc *rows[B];
    for (int i = 0; i < B; i++)
        rows[i] = &r->tr[draw(r, stage, (size_t)k * B + i)];
    return fill_batch(rows, B, b);
}

/* Validation CE and token accuracy of model on the first `limit` validation examples (0: all),
 * in batches of the stage's size (b: the stage's batch buffers). Adds valid_loss and
 * valid_mean_token_accuracy (or the full_ pair when full) to m. */
static int valid_metrics(struct run *r, struct trn_model *model, const struct stage_cfg *s,
                         struct trn_batch *b, size_t limit, int full, json_t *m)
{
    int rc;
    size_t n = limit && limit < r->val->n ? limit : r->val->n, hits = 0, rows = 0;
    double ce = 0.0;
    if ((rc = encode_set(r, r->val, r->job.validation_file, s->max_len, &r->va, &r->va_len)))
        return rc;
    for (size_t i = 0; i < n; i += (size_t)s->batch) {
        int nb = n - i < (size_t)s->batch ? (int)(n - i) : s->batch;
        const struct enc *e[nb];
        double c;
        size_t h, k;
        for (int j = 0; j < nb; j++)
            e[j] = &r->va[i + (size_t)j];
        fill_batch(e, nb, b);
        if ((rc = trn_eval_batch(model, b, &c, &h, &k, r->err)))
            return rc;
        ce += c;
        hits += h;
        rows += k;
    }
    json_object_set_new(m, full ? "full_valid_loss" : "valid_loss",
                        json_real(rows ? ce / (double)rows : 0.0));
    json_object_set_new(m, full ? "full_valid_mean_token_accuracy" : "valid_mean_token_accuracy",
                        json_real(rows ? (double)hits / (double)rows : 0.0));
    return 0;
}

/* ------------------------------------------------------------------ stages */

static long stage_steps(struct run *r, int stage, const struct stage_cfg *s)
{
    if (s->steps > 0)
        return s->steps;
    double per = (double)s->batch * s->accum;
    double n = stage != 2      ? s->epochs * (double)r->train->n
               : s->tokens > 0 ? (double)s->tokens / s->max_len
                               : s->epochs * (double)(r->corpus->ntok - 1) / s->max_len;
    long k = (long)ceil(n / per);
    return k > 0 ? k : 1;
}

static json_t *state_json(struct run *r, int stage, long step, long steps, int accum, double tokens)
{
    return json_pack("{s:i,s:I,s:I,s:f,s:s,s:I,s:{s:I,s:I},s:s}", "stage", stage, "step",
                     (json_int_t)step, "steps", (json_int_t)steps, "tokens", tokens, "job_sha256",
                     r->job.sha, "seed", (json_int_t)r->job.seed, "data", "micro_batch",
                     (json_int_t)(step * accum), "epoch_seed_base",
                     (json_int_t)(r->job.seed * 1000003ULL), "method",
                     trn_method_names[r->job.method]);
}

/* pretrain: held-out loss and perplexity of model (host copy), as an eval event and metric. */
static int eval_heldout(struct run *r, struct trn_model *model, long step, double tokens)
{
    if (!r->heldout)
        return 0;
    int T = r->job.cpt.max_len < trn_model_config(model)->max_pos
                ? r->job.cpt.max_len
                : trn_model_config(model)->max_pos;
    double ce = 0;
    size_t n = 0;
    int rc = trn_eval_corpus(model, r->heldout->tok, r->heldout->ntok, T, 8, &ce, &n, r->err);
    if (rc)
        return rc;
    json_t *res =
        json_pack("{s:s,s:i,s:s,s:I,s:I,s:f,s:f,s:I}", "type", "eval", "stage", 2, "model",
                  "pretrain", "step", (json_int_t)step, "tokens", (json_int_t)tokens, "loss", ce,
                  "perplexity", exp(ce), "n", (json_int_t)n);
    json_t *copy = json_deep_copy(res);
    json_object_del(copy, "type");
    json_object_del(copy, "stage");
    json_object_set_new(r->metrics, "pretrain", copy);
    trn_emit(r, res);
    return 0;
}

/* The metrics of a checkpoint at step `step` (OpenAI's checkpoint metrics): the step's CE as
 * train_loss and its token accuracy (CPU only), and for the task stages with a validation set,
 * CE and token accuracy on the first batch of validation examples, and at the stage's end on
 * all of them (full_); with a GPU (host forward passes) only at the stage's end. New reference,
 * or NULL with r->err set. */
static json_t *ckpt_metrics(struct run *r, int stage, struct trn_model *model,
                            const struct stage_cfg *s, struct trn_batch *b, long step, int end,
                            const struct trn_losses *L, int gpu)
{
    json_t *m = json_pack("{s:I,s:f}", "step", (json_int_t)step, "train_loss", L->ce);
    if (!gpu)
        json_object_set_new(m, "train_mean_token_accuracy", json_real(L->acc));
    /* on the CUDA path they run on the host copy: at the stage's end only, as evaluation does */
    if (stage != 2 && r->val && r->val->n && (!gpu || end) &&
        (valid_metrics(r, model, s, b, (size_t)s->batch, 0, m) ||
         (end && valid_metrics(r, model, s, b, 0, 1, m)))) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* Train `model` for stage `stage`; start_step/tokens from a checkpoint (0 for a fresh stage).
 * Returns 0, a status, 3 (--stop-after) or TRN_PAUSED (SIGUSR1: checkpointed and stopped). */
static int train_stage(struct run *r, int stage, const char *name, struct trn_model *model,
                       struct trn_model *teacher, const struct stage_cfg *s, long start_step,
                       double tokens)
{
    long steps = stage_steps(r, stage, s);
    size_t np = trn_model_nparams(model), cap = (size_t)s->batch * (size_t)s->max_len;
    struct trn_adamw_cfg ac = {.lr = s->lr,
                               .min_lr = s->min_lr,
                               .beta1 = 0.9f,
                               .beta2 = 0.999f,
                               .eps = 1e-8f,
                               .weight_decay = s->weight_decay,
                               .clip = s->clip,
                               .warmup = s->warmup >= 0 ? s->warmup : steps / 20,
                               .total = steps};
    struct trn_batch b = {0};
    struct trn_cuda_dp *gpu = NULL; /* --device cuda:...: the stage runs on GPUs (backend.h) */
    int rc = 0;
    b.tok = malloc(cap * sizeof(int32_t));
    b.target = malloc(cap * sizeof(int32_t));
    b.len = malloc((size_t)s->batch * sizeof(int32_t));
    if (!b.tok || !b.target || !b.len) {
        rc = eng_fail(r->err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    if (stage != 2 && (rc = encode_train(r, s->max_len)))
        goto out;
    if (start_step == 0) {
        memset(r->m, 0, np * sizeof(float));
        memset(r->v, 0, np * sizeof(float));
    }
    int devs[64], ndev = r->o->device ? trn_cuda_parse_devices(r->o->device, devs, 64) : 0;
    if (ndev > 0 &&
        ((rc = trn_cuda_dp_create(devs, ndev, model, teacher, !getenv("BITDISTILL_CUDA_FP32"),
                                  r->dist, &gpu, r->err)) ||
         (start_step && (rc = trn_cuda_dp_set_moments(gpu, r->m, r->v, r->err)))))
        goto out;
    trn_stage_event(r, stage, name, start_step ? "resume" : "start", steps);
    struct timespec t0, t1;
    for (long k = start_step; k < steps; k++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct trn_losses acc = {0}, L;
        struct trn_loss_cfg lc = s->loss;
        if (stage == 3 && s->gamma_warmup > 0 && k < s->gamma_warmup)
            lc.gamma *= (float)(k + 1) / (float)s->gamma_warmup;
        size_t ntok = 0;
        if (gpu)
            trn_cuda_dp_zero_grad(gpu);
        else
            trn_model_zero_grad(model);
        for (int a = 0; a < s->accum; a++) {
            ntok += make_batch(r, stage, s, k * s->accum + a, &b);
            if ((rc =
                     gpu ? trn_cuda_dp_step_losses(gpu, &b, &lc, 1.0f / (float)s->accum, &L, r->err)
                         : trn_step_losses(model, teacher, &b, &lc, 1, 1.0f / (float)s->accum, &L,
                                           r->err)))
                goto out;
            acc.ce += L.ce / s->accum;
            acc.ld += L.ld / s->accum;
            acc.ad += L.ad / s->accum;
            acc.loss += L.loss / s->accum;
            acc.acc += L.acc / s->accum;
        }
        float lr = trn_lr_at(&ac, k);
        double gn = 0;
        if (gpu && (rc = trn_cuda_dp_adamw_update(gpu, k + 1, lr, &ac, &gn, r->err)))
            goto out;
        if (!gpu)
            trn_adamw_update(model, r->m, r->v, k + 1, lr, &ac, &gn);
        tokens += (double)ntok;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (!isfinite(acc.loss)) {
            rc = eng_fail(r->err, ENG_ERANGE,
                          "stage %d step %ld: loss is not finite (ce %g, ld "
                          "%g, ad %g); lower the lr or gamma",
                          stage, k + 1, acc.ce, acc.ld, acc.ad);
            goto out;
        }
        if ((k + 1) % (r->job.log_every > 0 ? r->job.log_every : 1) == 0 || k + 1 == steps) {
            json_t *ev = json_pack(
                "{s:s,s:i,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "type", "step", "stage",
                stage, "step", (json_int_t)(k + 1), "steps", (json_int_t)steps, "tokens",
                (json_int_t)tokens, "ce", acc.ce, "ld", acc.ld, "ad", acc.ad, "loss", acc.loss,
                "lr", (double)lr, "grad_norm", gn, "tokens_per_s", dt > 0 ? (double)ntok / dt : 0.0,
                "gamma", teacher ? (double)lc.gamma : 0.0);
            if (!gpu) /* token accuracy is computed on the CPU path only */
                json_object_set_new(ev, "acc", json_real(acc.acc));
            trn_emit(r, ev);
        }
        if (r->o->progress && isatty(2))
            fprintf(stderr,
                    "\r[stage %d %s] step %ld/%ld loss %.4f ce %.4f ld %.4f ad %.4g "
                    "lr %.2e %.0f tok/s   ",
                    stage, name, k + 1, steps, acc.loss, acc.ce, acc.ld, acc.ad, (double)lr,
                    dt > 0 ? (double)ntok / dt : 0.0);
        int end = k + 1 == steps;
        /* a pause is honoured by a single process only (ranks of a launcher cannot agree) */
        int pause = pause_requested && !r->dist;
        if ((end || pause ||
             (r->job.checkpoint_every > 0 && (k + 1) % r->job.checkpoint_every == 0)) &&
            trn_dist_rank(r->dist) == 0) {
            char path[PATH_LEN];
            if (gpu && (rc = trn_cuda_dp_pull(gpu, trn_model_params(model), r->m, r->v, r->err)))
                goto out;
            json_t *st = state_json(r, stage, k + 1, steps, s->accum, tokens);
            rc = trn_ckpt_save(r->o->out, stage, k + 1, st, trn_model_params(model), r->m, r->v, np,
                               r->job.keep, path, r->err);
            json_decref(st);
            json_t *cm =
                rc ? NULL : ckpt_metrics(r, stage, model, s, &b, k + 1, end, &acc, gpu != NULL);
            if (rc || (rc = cm ? 0 : ENG_EIO))
                goto out;
            trn_emit(r, json_pack("{s:s,s:i,s:I,s:s,s:o}", "type", "checkpoint", "stage", stage,
                                  "step", (json_int_t)(k + 1), "path", path, "metrics", cm));
            if (r->job.method == M_PRETRAIN && (rc = eval_heldout(r, model, k + 1, tokens)))
                goto out;
        }
        if (pause) {
            trn_emit(r, json_pack("{s:s,s:i,s:I,s:I}", "type", "paused", "stage", stage, "step",
                                  (json_int_t)(k + 1), "steps", (json_int_t)steps));
            trn_message(r, "paused at stage %d step %ld: checkpoint written, --resume continues",
                        stage, k + 1);
            rc = TRN_PAUSED;
            goto out;
        }
        if (r->o->stop_after > 0 && ++r->total_steps >= r->o->stop_after) {
            trn_message(r, "stopping after %ld optimizer steps (--stop-after)", r->total_steps);
            rc = 3;
            goto out;
        }
    }
    if (r->o->progress && isatty(2))
        fprintf(stderr, "\n");
    trn_stage_event(r, stage, name, "end", steps);
out:
    if (gpu && !rc)
        rc = trn_cuda_dp_pull(gpu, trn_model_params(model), r->m, r->v, r->err);
    trn_cuda_dp_free(gpu);
    free(b.tok);
    free(b.target);
    free(b.len);
    return rc;
}
/* ------------------------------------------------------------------ the job */

static int alloc_moments(struct run *r, size_t np)
{
    free(r->m);
    free(r->v);
    r->m = calloc(np, sizeof(float));
    r->v = calloc(np, sizeof(float));
    return r->m && r->v ? 0 : eng_fail(r->err, ENG_ENOMEM, "out of memory");
}

/* Restore the checkpoint named by LATEST into model (its stage's model). */
static int restore(struct run *r, struct trn_model *model, long *step, double *tokens)
{
    json_t *st = NULL;
    char path[PATH_LEN];
    int rc;
    if ((rc = alloc_moments(r, trn_model_nparams(model))))
        return rc;
    rc = trn_ckpt_load_latest(r->o->out, &st, trn_model_params(model), r->m, r->v,
                              trn_model_nparams(model), path, r->err);
    if (rc)
        return rc;
    *step = (long)json_integer_value(json_object_get(st, "step"));
    *tokens = json_number_value(json_object_get(st, "tokens"));
    trn_message(r, "resumed from %s (stage %d, step %ld)", path,
                (int)json_integer_value(json_object_get(st, "stage")), *step);
    json_decref(st);
    return 0;
}

static void write_metrics(struct run *r)
{
    char mp[PATH_LEN + 32];
    snprintf(mp, sizeof(mp), "%s/metrics.json", r->o->out);
    json_dump_file(r->metrics, mp, JSON_INDENT(2) | JSON_SORT_KEYS);
}

/* The stage-2 corpus: `tokens` (+ one window) of it, or all of it when tokens is 0. */
static int load_corpus(struct run *r)
{
    const struct stage_cfg *c = &r->job.cpt;
    int rc =
        trn_corpus_load(c->corpus, r->tok, r->job.task.eos,
                        c->tokens ? c->tokens + (size_t)c->max_len + 1 : 0, &r->corpus, r->err);
    if (!rc && r->corpus->ntok < (size_t)c->max_len + 2)
        rc = eng_fail(r->err, ENG_EINVAL, "corpus '%s' has fewer than max_len + 2 tokens",
                      c->corpus);
    return rc;
}

/* method pretrain: FP next-token training of `model` on the corpus (stage 2 slot), held-out
 * perplexity at every checkpoint, the result as an HF directory DIR/model. */
static int run_pretrain(struct run *r, int rstage)
{
    struct job *j = &r->job;
    char mdir[PATH_LEN + 32];
    long s2 = 0;
    double t2 = 0;
    int rc;
    if (rstage > 2)
        return eng_fail(r->err, ENG_ECONFIG, "--resume: unknown stage %d", rstage);
    if ((rc = trn_model_load_hf(j->model, &r->student, r->err)))
        return rc;
    trn_model_set_quant(r->student, 0);
    if ((rc = alloc_moments(r, trn_model_nparams(r->student))) ||
        (rstage == 2 && (rc = restore(r, r->student, &s2, &t2))))
        return rc;
    if ((rc = load_corpus(r)) ||
        (j->heldout[0] && (rc = trn_corpus_load(j->heldout, r->tok, j->task.eos, j->eval_tokens,
                                                &r->heldout, r->err))))
        return rc;
    trn_message(r, "pretrain: %zu corpus tokens, %zu held-out tokens, %zu parameters",
                r->corpus->ntok, r->heldout ? r->heldout->ntok : 0, trn_model_nparams(r->student));
    if (rstage < 2 && (rc = eval_heldout(r, r->student, 0, 0)))
        return rc;
    if ((rc = train_stage(r, 2, "pretrain", r->student, NULL, &j->cpt, s2, t2)))
        return rc;
    if (trn_dist_rank(r->dist) > 0)
        return 0; /* rank 0 writes the outputs */
    snprintf(mdir, sizeof(mdir), "%s/model", r->o->out);
    if ((rc = trn_model_save_hf(r->student, mdir, r->err)) || (rc = trn_copy_tokenizer(r, mdir)))
        return rc;
    write_metrics(r);
    trn_emit(r, json_pack("{s:s,s:n,s:n,s:s,s:O}", "type", "done", "student", "teacher", "model",
                          mdir, "metrics", r->metrics));
    return 0;
}

static int run_job(struct run *r)
{
    struct job *j = &r->job;
    int rc, rstage = -1;
    char tdir[PATH_LEN + 32], gguf[PATH_LEN] = "";
    snprintf(tdir, sizeof(tdir), "%s/teacher", r->o->out);
    if (r->o->resume) {
        json_t *st = NULL;
        if (trn_ckpt_latest_state(r->o->out, &st, r->err) == 0) {
            const char *sha = json_string_value(json_object_get(st, "job_sha256"));
            rstage = (int)json_integer_value(json_object_get(st, "stage"));
            if (!sha || strcmp(sha, j->sha)) {
                json_decref(st);
                return eng_fail(r->err, ENG_ECONFIG,
                                "--resume: the checkpoint in '%s' belongs "
                                "to another job config",
                                r->o->out);
            }
            json_decref(st);
        } else {
            trn_message(r, "--resume: no checkpoint yet, starting from the beginning");
        }
    }
    if (j->method == M_PRETRAIN)
        return run_pretrain(r, rstage);
    int need_sft = j->method == M_FP16_SFT || (j->method == M_BITDISTILL && !j->teacher[0]);
    /* ---- stage 0: teacher SFT ---- */
    if (need_sft) {
        if ((rc = trn_model_load_hf(j->model, &r->teacher, r->err)))
            return rc;
        if (rstage <= 0) {
            long s0 = 0;
            double t0 = 0;
            if ((rc = alloc_moments(r, trn_model_nparams(r->teacher))))
                return rc;
            if (rstage == 0 && (rc = restore(r, r->teacher, &s0, &t0)))
                return rc;
            if ((rc = train_stage(r, 0, "teacher_sft", r->teacher, NULL, &j->sft, s0, t0)))
                return rc;
            if (trn_dist_rank(r->dist) == 0 &&
                ((rc = trn_model_save_hf(r->teacher, tdir, r->err)) ||
                 (rc = trn_copy_tokenizer(r, tdir))))
                return rc;
        } else {
            trn_model_free(r->teacher);
            r->teacher = NULL;
            if ((rc = trn_model_load_hf(tdir, &r->teacher, r->err)))
                return rc;
        }
    } else if (j->teacher[0]) {
        if ((rc = trn_model_load_hf(j->teacher, &r->teacher, r->err)))
            return rc;
    }
    const char *teacher_dir = need_sft ? tdir : (j->teacher[0] ? j->teacher : NULL);
    if (r->teacher)
        trn_model_set_quant(r->teacher, 0);
    if (j->method == M_FP16_SFT) {
        if (trn_dist_rank(r->dist) > 0)
            return 0; /* rank 0 evaluates and writes the outputs */
        if ((rc = trn_evaluate(r, r->teacher, "teacher")))
            return rc;
        goto done;
    }
    /* ---- stage 1: SubLN on a fresh copy of the base model ---- */
    if ((rc = trn_model_load_hf(j->model, &r->student, r->err)))
        return rc;
    if (j->method == M_BITDISTILL && j->subln) {
        trn_stage_event(r, 1, "subln", "start", 0);
        if ((rc = trn_model_add_subln(r->student)))
            return eng_fail(r->err, rc, "%s", trn_model_errmsg(r->student));
        trn_stage_event(r, 1, "subln", "end", 0);
    }
    trn_model_set_quant(r->student, 1);
    if ((rc = alloc_moments(r, trn_model_nparams(r->student))))
        return rc;
    /* ---- stage 2: continued pre-training ---- */
    if (j->method == M_BITDISTILL && j->cpt.tokens > 0 && rstage <= 2) {
        long s2 = 0;
        double t2 = 0;
        if (rstage == 2 && (rc = restore(r, r->student, &s2, &t2)))
            return rc;
        if ((rc = load_corpus(r)))
            return rc;
        if ((rc = train_stage(r, 2, "continue_pretrain", r->student, NULL, &j->cpt, s2, t2)))
            return rc;
        if (j->save_cpt && trn_dist_rank(r->dist) == 0) { /* a start for other stage-3 runs */
            char cdir[PATH_LEN + 32];
            snprintf(cdir, sizeof(cdir), "%s/student-cpt", r->o->out);
            if ((rc = trn_model_save_hf(r->student, cdir, r->err)) ||
                (rc = trn_copy_tokenizer(r, cdir)))
                return rc;
        }
    }
    /* ---- stage 3: task fine-tuning ---- */
    long s3 = 0;
    double t3 = 0;
    if (rstage == 3 && (rc = restore(r, r->student, &s3, &t3)))
        return rc;
    else if (rstage > 3)
        return eng_fail(r->err, ENG_ECONFIG, "--resume: unknown stage %d", rstage);
    /* a checkpoint of stage 2 restored above holds the stage-2 weights; stage 3 starts fresh
     * moments (train_stage zeroes them at step 0) */
    struct stage_cfg d = j->dist;
    if (j->method == M_BITNET_SFT) {
        d.loss.lambda = 0;
        d.loss.gamma = 0;
    }
    if ((rc = train_stage(r, 3, j->method == M_BITDISTILL ? "distill" : "bitnet_sft", r->student,
                          j->method == M_BITDISTILL ? r->teacher : NULL, &d, s3, t3)))
        return rc;
    if (trn_dist_rank(r->dist) > 0)
        return 0; /* rank 0 evaluates and writes the outputs */
    /* ---- stage 4: evaluation and export ---- */
    trn_stage_event(r, 4, "eval_export", "start", 0);
    if (r->teacher && (rc = trn_evaluate(r, r->teacher, "teacher")))
        return rc;
    if ((rc = trn_evaluate(r, r->student, "student")) ||
        (rc = trn_export_student(r, teacher_dir, gguf)))
        return rc;
    if (j->baseline_id[0] && r->val)
        trn_evaluate_baseline(r);
    trn_stage_event(r, 4, "eval_export", "end", 0);
done:
    write_metrics(r);
    trn_emit(r, json_pack("{s:s,s:s?,s:s?,s:O}", "type", "done", "student", gguf[0] ? gguf : NULL,
                          "teacher", need_sft ? tdir : NULL, "metrics", r->metrics));
    return 0;
}

int trn_run(const struct trn_run_opts *o)
{
    struct trn_run_opts ro = *o; /* one rank of several: its own devices, rank 0 reports */
    struct run r = {.o = &ro, .perm_epoch = -1};
    struct trn_dist_cfg dc;
    char dev[256];
    int rc = trn_dist_cfg_env(&dc, r.err);
    if (dc.rank > 0)
        ro.progress = 0; /* the other ranks print their own errors only */
    if (o->events_fd >= 0 && dc.rank == 0) {
        r.ev = fdopen(dup(o->events_fd), "w");
        if (!r.ev) {
            fprintf(stderr, "bitdistill train: --events-fd %d: %s\n", o->events_fd,
                    strerror(errno));
            return ENG_EIO;
        }
    }
    r.metrics = json_object();
    if (rc || (rc = trn_dist_start(&dc, o->device, -1, 1, &r.dist, dev, sizeof(dev), r.err)))
        goto out;
    if (r.dist)
        ro.device = dev;
    if ((rc = trn_job_parse(o->config, &r.job, r.err)))
        goto out;
    if (mkdir(o->out, 0755) && errno != EEXIST) {
        rc = eng_fail(r.err, ENG_EIO, "cannot create '%s': %s", o->out, strerror(errno));
        goto out;
    }
    int th = o->threads > 0 ? o->threads : (r.job.threads > 0 ? r.job.threads : 1);
    krn_blas_set_threads(th);
    if ((rc = trn_job_validate(&r)))
        goto out;
    trn_message(&r, "method %s, %zu training examples, %zu validation, %d thread(s)",
                trn_method_names[r.job.method], r.train ? r.train->n : 0, r.val ? r.val->n : 0, th);
    rc = run_job(&r);
out:
    if (rc && rc != 3 && rc != TRN_PAUSED) {
        fprintf(stderr, "bitdistill train: %s\n", r.err[0] ? r.err : eng_strerror(rc));
        trn_emit(&r, json_pack("{s:s,s:s}", "type", "error", "message",
                               r.err[0] ? r.err : eng_strerror(rc)));
    }
    if (r.ev)
        fclose(r.ev);
    free_enc(&r);
    free(r.perm);
    free(r.m);
    free(r.v);
    trn_model_free(r.teacher);
    trn_model_free(r.student);
    trn_corpus_free(r.corpus);
    trn_corpus_free(r.heldout);
    trn_dataset_free(r.train);
    trn_dataset_free(r.val);
    trn_dataset_free(r.sel);
    eng_tok_free(r.tok);
    trn_chat_tpl_free(r.chat_tpl);
    json_decref(r.metrics);
    trn_dist_free(r.dist);
    return rc;
}

int trn_cli_train(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"out", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 't'},
                                         {"device", required_argument, 0, 'd'},
                                         {"events-fd", required_argument, 0, 'e'},
                                         {"resume", no_argument, 0, 'r'},
                                         {"stop-after", required_argument, 0, 's'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct trn_run_opts o = {.events_fd = -1, .progress = 1};
    const char *usage = "usage: bitdistill train --config JOB.json --out DIR [--threads N] "
                        "[--device cpu|cuda:K|cuda:all] [--events-fd N] [--resume] [--quiet]\n";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 'o': o.out = optarg; break;
        case 't': o.threads = atoi(optarg); break;
        case 'd':
            o.device = optarg;
            int devs[64], nd = trn_cuda_parse_devices(optarg, devs, 64), vis;
            if (nd < 0) {
                fprintf(stderr,
                        "bitdistill train: --device %s: expected cpu, cuda, cuda:K, "
                        "cuda:K,L,... or cuda:all (with a GPU)\n",
                        optarg);
                return 2;
            }
            vis = trn_cuda_device_count();
            for (int i = 0; i < nd; i++)
                if (devs[i] >= vis) {
                    fprintf(stderr,
                            "bitdistill train: --device %s: no CUDA device %d (%d "
                            "visible; a build without CUDA sees none)\n",
                            optarg, devs[i], vis);
                    return 2;
                }
            break;
        case 'e': o.events_fd = atoi(optarg); break;
        case 'r': o.resume = 1; break;
        case 's': o.stop_after = atol(optarg); break;
        case 'q': o.progress = 0; break;
        case 'h':
            printf("%s", usage);
            printf(
                "Runs a training job (method fp16_sft | bitnet_sft | bitdistill | pretrain): see "
                "docs/train.md.\n");
            return 0;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    if (!o.config || !o.out || optind != argc) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_pause_signal;
    sa.sa_flags = SA_RESTART; /* a checkpoint write in flight is not cut short */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int rc = trn_run(&o);
    return rc == 0 ? 0 : rc == 3 || rc == TRN_PAUSED ? rc : 1;
}
