/*
 * engine/sched.c — see sched.h. `workers` engine threads share one incoming queue; each holds
 * its own classifications and generations and runs its own passes (data parallelism: on a small
 * model one pass per core beats one pass split over the cores, whose many short parallel
 * regions leave the helpers spinning). The loop thread only submits, cancels and drains.
 * Locking: `lock` guards the incoming queue, the ready list, the counters, each job's delta/
 * done/cancelled/held fields and the stats; everything else of a held job is touched by its
 * worker alone.
 *
 * A job's completion hands it to the loop thread, which may free it (and drop the last
 * reference to its model) at once: a worker touches neither after job_finish, so it gives a
 * generation's KV context back before finishing the job.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/batch.h"
#include "engine/err.h"
#include "engine/model_impl.h"
#include "engine/sampler.h"
#include "engine/sched.h"

/* A running generation (engine thread only). */
struct gen {
    struct eng_job *job;
    struct eng_ctx *ctx;
    int32_t *ids;          /* prompt then generated tokens */
    int n_prompt, n, cap;
    int fed;               /* tokens already in the KV cache */
    size_t emitted;        /* bytes of generated text handed out */
    struct eng_sampler smp;
    float *logits;         /* [vocab] */
    int want;              /* this step computes logits for it */
};

/* One engine thread and what it holds (touched by that thread alone unless noted). */
struct eng_worker {
    struct eng_sched *s;
    pthread_t thread;
    int started;
    struct eng_job **pend;             /* classify jobs being scored [max_queue + 1] */
    int npend;
    struct gen *gens;                  /* [max_seqs] */
    int ngens;
    int32_t *scratch_idx;
    int scratch_n;
    unsigned rr;                       /* round robin over models */
};

struct eng_sched {
    struct eng_sched_cfg cfg;
    void (*notify)(void *arg);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    struct eng_job *in_head, *in_tail; /* incoming, FIFO */
    int n_in;
    int held_cls, held_gen;            /* jobs taken by workers and not finished */
    int in_inputs;                     /* classification inputs in the incoming queue */
    int busy;                          /* workers running a pass */
    int cls_active;                    /* classify jobs submitted and not finished */
    double last_submit, gap;           /* time of the last submission; mean gap (EWMA), s */
    struct eng_job *ready;             /* jobs with news, LIFO */
    struct eng_sched_stats stats;
    struct eng_worker *w;              /* [nworkers] */
    int nworkers;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct eng_job *eng_job_new(enum eng_job_kind kind, struct eng_served *model)
{
    struct eng_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->model = model;
    eng_served_ref(model);
    j->truncate = 1;
    j->max_tokens = 16;
    j->top_p = 1.0f;
    return j;
}

void eng_job_free(struct eng_job *j)
{
    if (!j)
        return;
    for (int i = 0; i < j->ninputs; i++) {
        free(j->inputs[i]);
        if (j->ctok)
            free(j->ctok[i]);
    }
    free(j->inputs);
    free(j->ctok);
    free(j->cn);
    free(j->prompt);
    for (int i = 0; i < j->nstop; i++)
        free(j->stop[i]);
    free(j->stop);
    free(j->probs);
    free(j->logits);
    free(j->truncated);
    free(j->delta);
    eng_served_unref(j->model);
    free(j);
}

/* ---- handing results to the loop thread --------------------------------------------------- */

/* Lock held. */
static void mark_ready(struct eng_sched *s, struct eng_job *j)
{
    if (!j->queued_ready) {
        j->queued_ready = 1;
        j->rnext = s->ready;
        s->ready = j;
    }
}

static void job_emit(struct eng_sched *s, struct eng_job *j, const char *text, size_t len)
{
    pthread_mutex_lock(&s->lock);
    if (len && j->delta_len + len + 1 > j->delta_cap) {
        size_t nc = (j->delta_len + len + 1) * 2;
        char *nd = realloc(j->delta, nc);
        if (nd) {
            j->delta = nd;
            j->delta_cap = nc;
        }
    }
    if (len && j->delta_len + len + 1 <= j->delta_cap) {
        memcpy(j->delta + j->delta_len, text, len);
        j->delta_len += len;
        j->delta[j->delta_len] = 0;
    }
    mark_ready(s, j);
    pthread_mutex_unlock(&s->lock);
    s->notify(s->arg);
}

static void job_finish(struct eng_sched *s, struct eng_job *j, int status, const char *reason,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void job_finish(struct eng_sched *s, struct eng_job *j, int status, const char *reason,
                       const char *fmt, ...)
{
    j->t_end = now_s();
    if (!j->t_start)
        j->t_start = j->t_end;
    j->status = status;
    j->finish_reason = reason;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->error, sizeof(j->error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&s->lock);
    j->done = 1;
    if (j->held)
        *(j->kind == ENG_JOB_CLASSIFY ? &s->held_cls : &s->held_gen) -= 1;
    j->held = 0;
    if (j->kind == ENG_JOB_CLASSIFY)
        s->cls_active--;
    mark_ready(s, j);
    pthread_mutex_unlock(&s->lock);
    s->notify(s->arg);
}

void eng_sched_drain(struct eng_sched *s,
                     void (*cb)(struct eng_job *j, const char *text, size_t len, int done,
                                void *arg),
                     void *arg)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct eng_job *j = s->ready;
        if (!j) {
            pthread_mutex_unlock(&s->lock);
            return;
        }
        s->ready = j->rnext;
        j->queued_ready = 0;
        char *text = j->delta;
        size_t len = j->delta_len;
        j->delta = NULL;
        j->delta_len = j->delta_cap = 0;
        int done = j->done && !j->delivered;
        if (done)
            j->delivered = 1;
        pthread_mutex_unlock(&s->lock);
        if (len || done)
            cb(j, text ? text : "", len, done, arg);
        free(text);
    }
}

/* ---- classification ------------------------------------------------------------------------ */

/* Tokenize input i of j into j->ctok[i], cutting the input's end (start with truncate_left) if
 * it does not fit the context or truncate_tokens. */
static int classify_tokenize(struct eng_job *j, int i)
{
    struct eng_served *m = j->model;
    const char *in = j->inputs[i];
    size_t total = strlen(in), len = total, lo = 0, hi = len;
    int limit = m->max_context;
    if (j->truncate_tokens > 0 && j->truncate_tokens < limit)
        limit = j->truncate_tokens;
    for (;;) {
        char *p = eng_served_prompt(m, j->truncate_left ? in + (total - len) : in, len);
        int32_t *ids = NULL;
        size_t n = 0;
        if (!p)
            return ENG_ENOMEM;
        int rc = eng_tok_encode(m->tok, p, strlen(p), &ids, &n);
        free(p);
        if (rc) {
            snprintf(j->error, sizeof(j->error), "input %d is not valid UTF-8 text", i);
            return rc;
        }
        if ((int)n <= limit && (len == total || hi - lo <= 1)) {
            j->ctok[i] = ids;
            j->cn[i] = (int)n;
            return 0;
        }
        free(ids);
        if (len == 0) {
            snprintf(j->error, sizeof(j->error), "the template alone is %zu tokens, more than "
                     "the limit of %d", n, limit);
            return ENG_ERANGE;
        }
        if (!j->truncate) {
            snprintf(j->error, sizeof(j->error),
                     "input %d is %zu tokens with the template, more than the model's context "
                     "of %d (set \"truncate\": true to cut it)", i, n, limit);
            return ENG_ERANGE;
        }
        j->truncated[i] = 1;
        /* Binary search on the kept length (cut at a UTF-8 boundary). */
        if ((int)n > limit)
            hi = len;
        else
            lo = len;
        len = lo + (hi - lo) / 2;
        while (len > 0 && ((unsigned char)in[j->truncate_left ? total - len : len] & 0xC0) == 0x80)
            len--;
        if (hi - lo <= 1 || len == lo) {
            len = lo;
            hi = lo + 1;
        }
    }
}

static int classify_prepare(struct eng_sched *s, struct eng_job *j)
{
    int nl = j->model->meta.nlabels;
    (void)s;
    j->t_start = now_s();
    if (nl <= 0) {
        j->status = 400;
        snprintf(j->error, sizeof(j->error), "model '%s' has no labels: it is not a "
                 "classification model", j->model->id);
        return -1;
    }
    j->ctok = calloc((size_t)j->ninputs, sizeof(*j->ctok));
    j->cn = calloc((size_t)j->ninputs, sizeof(*j->cn));
    j->probs = calloc((size_t)j->ninputs * nl, sizeof(float));
    j->truncated = calloc((size_t)j->ninputs, sizeof(int));
    if (!j->ctok || !j->cn || !j->probs || !j->truncated) {
        j->status = 500;
        snprintf(j->error, sizeof(j->error), "out of memory");
        return -1;
    }
    for (int i = 0; i < j->ninputs; i++) {
        int rc = classify_tokenize(j, i);
        if (rc) {
            j->status = rc == ENG_ENOMEM ? 500 : 400;
            return -1;
        }
        j->prompt_tokens += j->cn[i];
    }
    return 0;
}

/* Softmax over the label logits of one input. */
static void label_probs(float *p, int n)
{
    float mx = p[0], sum = 0.0f;
    for (int i = 1; i < n; i++)
        if (p[i] > mx)
            mx = p[i];
    for (int i = 0; i < n; i++) {
        p[i] = expf(p[i] - mx);
        sum += p[i];
    }
    for (int i = 0; i < n; i++)
        p[i] /= sum;
}

/* Score up to max_batch pending inputs of w's oldest job's model in one batched pass. */
static void classify_pass(struct eng_worker *w)
{
    struct eng_sched *s = w->s;
    struct eng_served *m = w->pend[0]->model;
    int cap = s->cfg.max_batch, nseg = 0, nl = m->meta.nlabels;
    struct eng_seg *segs = calloc((size_t)cap, sizeof(*segs));
    struct eng_job **owner = calloc((size_t)cap, sizeof(*owner));
    struct eng_ctx *scratch = eng_served_scratch_get(m);
    int rc = 0;

    if (!segs || !owner || !scratch) {
        rc = ENG_ENOMEM;
        goto out;
    }
    for (int k = 0; k < w->npend && nseg < cap; k++) {
        struct eng_job *j = w->pend[k];
        if (j->model != m)
            continue;
        while (j->cnext < j->ninputs && nseg < cap) {
            int i = j->cnext++;
            struct eng_ctx *c = eng_served_ctx_get(m, j->cn[i]);
            if (!c) {
                rc = ENG_ENOMEM;
                goto out;
            }
            segs[nseg] = (struct eng_seg){c, j->ctok[i], j->cn[i], ENG_WANT_ROWS, m->label_rows,
                                          nl, j->probs + (size_t)i * nl};
            owner[nseg++] = j;
        }
    }
    pthread_mutex_lock(&s->lock);
    s->stats.last_batch = nseg;
    pthread_mutex_unlock(&s->lock);
    rc = eng_batch_run(scratch, segs, nseg);
    for (int i = 0; !rc && i < nseg; i++) {
        if (owner[i]->logits) /* the same input's row */
            memcpy(owner[i]->logits + (segs[i].out - owner[i]->probs), segs[i].out,
                   (size_t)nl * sizeof(float));
        label_probs(segs[i].out, nl);
    }
out:;
    char why[300];
    snprintf(why, sizeof(why), "%s", scratch ? eng_ctx_errmsg(scratch) : eng_strerror(rc));
    for (int i = 0; i < nseg; i++)
        eng_served_ctx_put(m, segs[i].ctx);
    eng_served_scratch_put(m, scratch);
    /* Finish the jobs whose inputs are all scored (or all jobs of this pass on error). */
    int keep = 0;
    for (int k = 0; k < w->npend; k++) {
        struct eng_job *j = w->pend[k];
        int in_pass = 0;
        for (int i = 0; i < nseg; i++)
            in_pass |= owner[i] == j;
        if (rc && (in_pass || !segs))
            job_finish(s, j, 500, NULL, "inference failed: %s", why);
        else if (!rc && j->cnext == j->ninputs)
            job_finish(s, j, 0, "stop", NULL);
        else
            w->pend[keep++] = j;
    }
    w->npend = keep;
    free(segs);
    free(owner);
}

/* ---- generation ---------------------------------------------------------------------------- */

static int is_eos(const struct eng_served *m, int32_t t)
{
    const struct eng_config *cf = eng_model_config(m->model);
    if (t == cf->eos_id)
        return 1;
    /* Chat and document end markers count too when the tokenizer has them as special tokens. */
    static const char *const ends[] = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", "</s>"};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
        if (eng_tok_find(m->tok, ends[i]) == t)
            return 1;
    return 0;
}

/*
 * Take generation g out of w and return its job for the caller to finish. The KV context goes
 * back to the model first: once job_finish hands the job over, the loop thread may free it and
 * drop the last reference to its model (a hot-swap) at any moment.
 */
static struct eng_job *gen_release(struct eng_worker *w, int g)
{
    struct gen *x = &w->gens[g];
    struct eng_job *j = x->job;
    eng_served_ctx_put(j->model, x->ctx);
    free(x->ids);
    free(x->logits);
    w->gens[g] = w->gens[--w->ngens];
    return j;
}

/* Start generating j on w (tokenize, take a KV context); on failure j is finished. */
static int gen_admit(struct eng_worker *w, struct eng_job *j)
{
    struct eng_sched *s = w->s;
    struct eng_served *m = j->model;
    struct gen x;
    int32_t *ids = NULL;
    size_t n = 0;
    memset(&x, 0, sizeof(x));
    j->t_start = now_s();
    if (eng_tok_encode(m->tok, j->prompt, strlen(j->prompt), &ids, &n)) {
        job_finish(s, j, 400, NULL, "the prompt is not valid UTF-8 text");
        return -1;
    }
    if (n == 0) {
        free(ids);
        job_finish(s, j, 400, NULL, "the prompt is empty");
        return -1;
    }
    if ((int)n + 1 > m->max_context) {
        free(ids);
        job_finish(s, j, 400, NULL,
                   "the prompt is %zu tokens; the model's context is %d tokens", n,
                   m->max_context);
        return -1;
    }
    int need = (int)n + j->max_tokens;
    if (need > m->max_context)
        need = m->max_context;
    x.job = j;
    x.ids = ids;
    x.n_prompt = x.n = (int)n;
    x.cap = (int)n + j->max_tokens + 1;
    int32_t *grown = realloc(ids, (size_t)x.cap * sizeof(int32_t));
    x.ctx = eng_served_ctx_get(m, need);
    x.logits = malloc((size_t)eng_model_config(m->model)->vocab * sizeof(float));
    if (!grown || !x.ctx || !x.logits) {
        free(grown ? grown : ids);
        eng_served_ctx_put(m, x.ctx);
        free(x.logits);
        job_finish(s, j, 500, NULL, "out of memory for a context of %d tokens", need);
        return -1;
    }
    x.ids = grown;
    j->prompt_tokens = (int)n;
    eng_sampler_init(&x.smp, j->temperature, j->top_p, j->seed);
    w->gens[w->ngens++] = x;
    return 0;
}

/* Longest stop string, to know how much text to hold back while generating. */
static size_t max_stop_len(const struct eng_job *j)
{
    size_t m = 0;
    for (int i = 0; i < j->nstop; i++)
        if (strlen(j->stop[i]) > m)
            m = strlen(j->stop[i]);
    return m;
}

/*
 * Hand out new text of generation g. Returns 0 while it goes on, 1 when a stop condition holds
 * (*reason says which) and -1 when its tokens cannot be decoded; the caller then releases and
 * finishes it.
 */
static int gen_text(struct eng_worker *w, int g, const char **reason)
{
    struct gen *x = &w->gens[g];
    struct eng_job *j = x->job;
    char *text = NULL;
    size_t len = 0;
    if (eng_tok_decode(j->model->tok, x->ids + x->n_prompt, (size_t)(x->n - x->n_prompt), 1,
                       &text, &len))
        return -1;
    /* Stop strings: cut at the first occurrence after what was already handed out. */
    size_t cut = len;
    for (int i = 0; i < j->nstop; i++) {
        size_t from = x->emitted >= strlen(j->stop[i]) ? x->emitted - strlen(j->stop[i]) + 1 : 0;
        char *at = strstr(text + from, j->stop[i]);
        if (at && (size_t)(at - text) < cut) {
            cut = (size_t)(at - text);
            *reason = "stop";
        }
    }
    size_t upto = cut;
    if (!*reason) {
        /* Hold back what may be the start of a stop string or a partial UTF-8 character
         * (decoded as U+FFFD, EF BF BD). */
        size_t hold = max_stop_len(j);
        hold = hold ? hold - 1 : 0;
        upto = len > hold ? len - hold : 0;
        while (upto >= 3 && upto > x->emitted && !memcmp(text + upto - 3, "\xEF\xBF\xBD", 3))
            upto -= 3;
    }
    if (upto > x->emitted) {
        job_emit(w->s, j, text + x->emitted, upto - x->emitted);
        x->emitted = upto;
    }
    free(text);
    return *reason != NULL;
}

/* One step of w: prompt chunks of admitted sequences + one token of each decoding sequence. */
static void gen_step(struct eng_worker *w)
{
    struct eng_sched *s = w->s;
    struct eng_seg *segs = calloc((size_t)w->ngens, sizeof(*segs));
    int *owner = calloc((size_t)w->ngens, sizeof(int));
    int budget = s->cfg.prefill_rows;
    if (!segs || !owner) {
        free(segs);
        free(owner);
        return;
    }
    /* One model per pass, rotating between the models of the running sequences. */
    struct eng_served *m = w->gens[w->rr++ % w->ngens].job->model;
    int nseg = 0, rc = 0;
    for (int g = 0; g < w->ngens; g++) {
        struct gen *x = &w->gens[g];
        x->want = 0;
        if (x->job->model != m)
            continue;
        int todo = x->n - x->fed;
        if (x->fed < x->n_prompt) { /* prefill, limited per step */
            if (budget <= 0)
                continue;
            if (todo > budget)
                todo = budget;
            budget -= todo;
        }
        x->want = x->fed + todo == x->n;
        segs[nseg] = (struct eng_seg){x->ctx, x->ids + x->fed, todo,
                                      x->want ? ENG_WANT_LOGITS : ENG_WANT_NONE, NULL, 0,
                                      x->logits};
        owner[nseg++] = g;
        x->fed += todo;
    }
    struct eng_ctx *scratch = eng_served_scratch_get(m);
    pthread_mutex_lock(&s->lock);
    s->stats.last_batch = nseg;
    pthread_mutex_unlock(&s->lock);
    rc = scratch ? eng_batch_run(scratch, segs, nseg) : ENG_ENOMEM;
    char why[300];
    snprintf(why, sizeof(why), "%s", scratch ? eng_ctx_errmsg(scratch) : "out of memory");
    eng_served_scratch_put(m, scratch);
    int V = eng_model_config(m->model)->vocab;
    if (w->scratch_n < V) {
        free(w->scratch_idx);
        w->scratch_idx = malloc((size_t)V * sizeof(int32_t));
        w->scratch_n = w->scratch_idx ? V : 0;
    }
    /* Walk from the end so that releasing (swap with last) keeps earlier indices valid. */
    for (int k = nseg - 1; k >= 0; k--) {
        int g = owner[k];
        struct gen *x = &w->gens[g];
        struct eng_job *j = x->job;
        if (rc || !w->scratch_idx) {
            job_finish(s, gen_release(w, g), 500, NULL, "inference failed: %s", why);
            continue;
        }
        if (!x->want)
            continue;
        int32_t t = eng_sampler_pick(&x->smp, x->logits, V, w->scratch_idx);
        if (!j->t_first)
            j->t_first = now_s();
        const char *reason = NULL;
        if (is_eos(j->model, t)) {
            reason = "stop";
        } else {
            x->ids[x->n++] = t;
            if (x->n - x->n_prompt >= j->max_tokens || x->n >= x->ctx->max_t)
                reason = "length";
        }
        j->completion_tokens = x->n - x->n_prompt;
        int r = gen_text(w, g, &reason);
        if (r < 0)
            job_finish(s, gen_release(w, g), 500, NULL, "cannot decode the generated tokens");
        else if (r > 0)
            job_finish(s, gen_release(w, g), 0, reason, NULL);
    }
    free(segs);
    free(owner);
}

/* ---- the engine threads -------------------------------------------------------------------- */

static int pend_inputs(const struct eng_worker *w)
{
    int n = 0;
    for (int k = 0; k < w->npend; k++)
        n += w->pend[k]->ninputs - w->pend[k]->cnext;
    return n;
}

/* Token rows of w's inputs not scored yet. */
static int pend_rows(const struct eng_worker *w)
{
    int n = 0;
    for (int k = 0; k < w->npend; k++)
        for (int i = w->pend[k]->cnext; i < w->pend[k]->ninputs; i++)
            n += w->pend[k]->cn[i];
    return n;
}

/*
 * Lock held. Whether w should wait for more classifications before its pass: what it holds
 * does not fill one pass (fewer than max_batch inputs and fewer than ENG_BATCH_ROWS token rows:
 * a pass costs about the same per row once its rows are full, so waiting to fill more passes
 * gains nothing and idles a core), its oldest input has waited less than max_wait_ms, and more
 * are likely to arrive within the wait: requests have been arriving less than half the wait
 * apart (the mean gap) and classifications other than w's are in flight. A lone client, which
 * sends its next request only after this answer, never waits.
 */
static int should_wait(const struct eng_worker *w, double *due)
{
    const struct eng_sched *s = w->s;
    if (w->npend == 0 || w->ngens > 0 || pend_inputs(w) >= s->cfg.max_batch ||
        pend_rows(w) >= ENG_BATCH_ROWS)
        return 0;
    *due = w->pend[0]->t_submit + s->cfg.max_wait_ms / 1000.0;
    return s->cls_active > w->npend && s->gap < s->cfg.max_wait_ms / 2000.0 && now_s() < *due;
}

/*
 * Lock held. Move incoming jobs to w: cancelled ones; generations while the scheduler has
 * slots (keeping their order); classifications up to w's share of the queued inputs (split
 * over the idle workers, at most max_batch held by w, at least one job), so that a burst runs
 * on every idle core at once. Returns the list taken.
 */
static struct eng_job *take_jobs(struct eng_worker *w)
{
    struct eng_sched *s = w->s;
    struct eng_job *take = NULL, **tail = &take, **pp = &s->in_head;
    int inputs = pend_inputs(w), idle = s->nworkers - s->busy;
    int share = idle > 1 ? (inputs + s->in_inputs + idle - 1) / idle : s->cfg.max_batch;
    if (share > s->cfg.max_batch)
        share = s->cfg.max_batch;
    s->in_tail = NULL;
    while (*pp) {
        struct eng_job *j = *pp;
        int ok = j->cancelled;
        if (!ok && j->kind == ENG_JOB_GENERATE)
            ok = s->held_gen < s->cfg.max_seqs;
        else if (!ok)
            ok = inputs == 0 || inputs + j->ninputs <= share;
        if (!ok) {
            s->in_tail = j;
            pp = &j->next;
            continue;
        }
        if (!j->cancelled) {
            j->held = 1;
            if (j->kind == ENG_JOB_GENERATE) {
                s->held_gen++;
            } else {
                s->held_cls++;
                inputs += j->ninputs;
            }
        }
        if (j->kind == ENG_JOB_CLASSIFY)
            s->in_inputs -= j->ninputs;
        *pp = j->next;
        j->next = NULL;
        *tail = j;
        tail = &j->next;
        s->n_in--;
    }
    if (s->in_head)
        pthread_cond_signal(&s->cond); /* work left for another idle worker */
    return take;
}

/* Prepare what w took: classifications are tokenized, generations admitted. */
static void start_jobs(struct eng_worker *w, struct eng_job *take, int stop)
{
    struct eng_sched *s = w->s;
    while (take) {
        struct eng_job *j = take;
        take = j->next;
        j->next = NULL;
        if (j->cancelled || stop) {
            job_finish(s, j, 0, "cancelled", NULL);
        } else if (j->kind == ENG_JOB_CLASSIFY) {
            if (classify_prepare(s, j))
                job_finish(s, j, j->status, NULL, NULL);
            else
                w->pend[w->npend++] = j;
        } else {
            gen_admit(w, j);
        }
    }
}

static void *worker_main(void *arg)
{
    struct eng_worker *w = arg;
    struct eng_sched *s = w->s;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct eng_job *take = take_jobs(w);
        double due = 0;
        while (!take && !s->stop && w->ngens == 0 && (w->npend == 0 || should_wait(w, &due))) {
            if (w->npend == 0) {
                pthread_cond_wait(&s->cond, &s->lock);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                long ns = ts.tv_nsec + (long)((due - now_s()) * 1e9);
                ts.tv_sec += ns / 1000000000L;
                ts.tv_nsec = ns % 1000000000L;
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
            }
            take = take_jobs(w);
        }
        int stop = s->stop;
        s->stats.waiting = s->n_in;
        pthread_mutex_unlock(&s->lock);

        int took = take != NULL;
        start_jobs(w, take, stop);
        if (stop)
            break;
        if (took) { /* what arrived may be worth waiting for more (or be all there is) */
            pthread_mutex_lock(&s->lock);
            int again = should_wait(w, &due);
            pthread_mutex_unlock(&s->lock);
            if (again)
                continue;
        }
        /* Cancelled generations leave now. */
        for (int g = w->ngens - 1; g >= 0; g--) {
            pthread_mutex_lock(&s->lock);
            int c = w->gens[g].job->cancelled;
            pthread_mutex_unlock(&s->lock);
            if (c) {
                w->gens[g].job->completion_tokens = w->gens[g].n - w->gens[g].n_prompt;
                job_finish(s, gen_release(w, g), 0, "cancelled", NULL);
            }
        }
        /* Classifications run at once unless should_wait (checked above) held them back; with
         * generations running they share every step. */
        pthread_mutex_lock(&s->lock);
        s->busy++;
        pthread_mutex_unlock(&s->lock);
        if (w->npend > 0)
            classify_pass(w);
        if (w->ngens > 0)
            gen_step(w);
        pthread_mutex_lock(&s->lock);
        s->busy--;
        pthread_mutex_unlock(&s->lock);
    }
    /* Stopping: complete everything still here as cancelled. */
    for (int k = 0; k < w->npend; k++)
        job_finish(s, w->pend[k], 0, "cancelled", NULL);
    w->npend = 0;
    while (w->ngens > 0)
        job_finish(s, gen_release(w, w->ngens - 1), 0, "cancelled", NULL);
    return NULL;
}

static void sched_release(struct eng_sched *s)
{
    for (int i = 0; s->w && i < s->nworkers; i++) {
        free(s->w[i].pend);
        free(s->w[i].gens);
        free(s->w[i].scratch_idx);
    }
    free(s->w);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int eng_sched_create(const struct eng_sched_cfg *cfg, void (*notify)(void *arg), void *arg,
                     struct eng_sched **out)
{
    struct eng_sched *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s)
        return ENG_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.max_batch <= 0)
        s->cfg.max_batch = 16;
    if (s->cfg.max_wait_ms < 0)
        s->cfg.max_wait_ms = 2;
    if (s->cfg.max_queue <= 0)
        s->cfg.max_queue = 256;
    if (s->cfg.max_seqs <= 0)
        s->cfg.max_seqs = 8;
    if (s->cfg.prefill_rows <= 0)
        s->cfg.prefill_rows = 64;
    if (s->cfg.workers <= 0)
        s->cfg.workers = 1;
    s->notify = notify;
    s->arg = arg;
    s->gap = 1e9;
    s->stats.kv_capacity = s->cfg.max_seqs;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->w = calloc((size_t)s->cfg.workers, sizeof(*s->w));
    if (!s->w)
        goto fail;
    s->nworkers = s->cfg.workers;
    for (int i = 0; i < s->nworkers; i++) {
        struct eng_worker *w = &s->w[i];
        w->s = s;
        w->pend = calloc((size_t)s->cfg.max_queue + 1, sizeof(*w->pend));
        w->gens = calloc((size_t)s->cfg.max_seqs, sizeof(*w->gens));
        if (!w->pend || !w->gens)
            goto fail;
    }
    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->w[i].thread, NULL, worker_main, &s->w[i]))
            goto fail;
        s->w[i].started = 1;
    }
    *out = s;
    return 0;
fail:
    eng_sched_stop(s);
    sched_release(s);
    return ENG_ENOMEM;
}

void eng_sched_stop(struct eng_sched *s)
{
    pthread_mutex_lock(&s->lock);
    int was = s->stop;
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (was)
        return;
    for (int i = 0; s->w && i < s->nworkers; i++)
        if (s->w[i].started)
            pthread_join(s->w[i].thread, NULL);
    /* Jobs still queued: complete them as cancelled. */
    while (s->in_head) {
        struct eng_job *j = s->in_head;
        s->in_head = j->next;
        job_finish(s, j, 0, "cancelled", NULL);
    }
    s->in_tail = NULL;
    s->n_in = 0;
}

void eng_sched_free(struct eng_sched *s)
{
    if (!s)
        return;
    eng_sched_stop(s);
    /* Undrained results are the caller's to drain before freeing; drop what is left. */
    while (s->ready) {
        struct eng_job *j = s->ready;
        s->ready = j->rnext;
        eng_job_free(j);
    }
    sched_release(s);
}

int eng_sched_submit(struct eng_sched *s, struct eng_job *j)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_in + s->held_cls >= s->cfg.max_queue || s->stop) {
        pthread_mutex_unlock(&s->lock);
        return ENG_ERANGE;
    }
    double now = now_s();
    j->t_submit = now;
    j->next = NULL;
    if (s->last_submit > 0)
        s->gap = s->gap > 1e8 ? now - s->last_submit : 0.8 * s->gap + 0.2 * (now - s->last_submit);
    s->last_submit = now;
    if (j->kind == ENG_JOB_CLASSIFY) {
        s->cls_active++;
        s->in_inputs += j->ninputs;
    }
    if (s->in_tail)
        s->in_tail->next = j;
    else
        s->in_head = j;
    s->in_tail = j;
    s->n_in++;
    s->stats.waiting = s->n_in;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void eng_sched_cancel(struct eng_sched *s, struct eng_job *j)
{
    pthread_mutex_lock(&s->lock);
    j->cancelled = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void eng_sched_stats(struct eng_sched *s, struct eng_sched_stats *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->stats;
    st->waiting = s->n_in;
    st->running = s->held_gen + s->held_cls;
    st->kv_used = s->held_gen;
    pthread_mutex_unlock(&s->lock);
}
