/*
 * engine/sched.c — see sched.h. One engine thread; the loop thread only submits, cancels and
 * drains. Locking: `lock` guards the incoming queue, the ready list, each job's delta/done/
 * cancelled fields and the stats; everything else of a running job is touched by the engine
 * thread alone.
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
    int choice;            /* which of the job's choices */
    int waiting;           /* a choice > 0 waiting for choice 0's prefill (KV copied after) */
    int forked;            /* its logits were copied from choice 0's this step: sample them */
    int dead;              /* finished: released by gen_sweep */
};

struct eng_sched {
    struct eng_sched_cfg cfg;
    void (*notify)(void *arg);
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    struct eng_job *in_head, *in_tail; /* incoming, FIFO */
    int n_in;
    struct eng_job *ready;             /* jobs with news, LIFO */
    struct eng_sched_stats stats;
    /* engine thread */
    struct eng_job **pend;             /* classify jobs being scored */
    int npend;
    struct gen *gens;                  /* [max_seqs] */
    int ngens;
    int32_t *scratch_idx;
    float *scratch_lp;                 /* [vocab] raw logits for logprobs */
    int scratch_n;
    unsigned rr;                       /* round robin over models */
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
    j->n_choices = 1;
    j->logprobs = -1;
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
    free(j->truncated);
    for (int i = 0; j->choices && i < j->n_choices; i++) {
        free(j->choices[i].delta);
        free(j->choices[i].lp);
    }
    free(j->choices);
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

/* New text and/or a logprob entry (lp may be NULL) of choice ch. */
static void job_emit(struct eng_sched *s, struct eng_job *j, int ch, const char *text, size_t len,
                     const struct eng_logprob *lp)
{
    struct eng_choice *c = &j->choices[ch];
    pthread_mutex_lock(&s->lock);
    if (len && c->delta_len + len + 1 > c->delta_cap) {
        size_t nc = (c->delta_len + len + 1) * 2;
        char *nd = realloc(c->delta, nc);
        if (nd) {
            c->delta = nd;
            c->delta_cap = nc;
        }
    }
    if (len && c->delta_len + len + 1 <= c->delta_cap) {
        memcpy(c->delta + c->delta_len, text, len);
        c->delta_len += len;
        c->delta[c->delta_len] = 0;
    }
    if (lp && c->nlp == c->caplp) {
        int nc = c->caplp ? c->caplp * 2 : 16;
        struct eng_logprob *nl = realloc(c->lp, (size_t)nc * sizeof(*nl));
        if (nl) {
            c->lp = nl;
            c->caplp = nc;
        }
    }
    if (lp && c->nlp < c->caplp)
        c->lp[c->nlp++] = *lp;
    mark_ready(s, j);
    pthread_mutex_unlock(&s->lock);
    s->notify(s->arg);
}

static void job_finish(struct eng_sched *s, struct eng_job *j, int status, const char *reason,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void job_finish(struct eng_sched *s, struct eng_job *j, int status, const char *reason,
                       const char *fmt, ...)
{
    if (j->done)
        return;
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
    mark_ready(s, j);
    pthread_mutex_unlock(&s->lock);
    s->notify(s->arg);
}

void eng_sched_drain(struct eng_sched *s, eng_drain_cb cb, void *arg)
{
    for (;;) {
        struct eng_choice news[ENG_MAX_CHOICES];
        int nc = 0;
        pthread_mutex_lock(&s->lock);
        struct eng_job *j = s->ready;
        if (!j) {
            pthread_mutex_unlock(&s->lock);
            return;
        }
        s->ready = j->rnext;
        j->queued_ready = 0;
        for (int i = 0; j->choices && i < j->n_choices; i++) {
            struct eng_choice *c = &j->choices[i];
            news[i] = *c;
            c->delta = NULL;
            c->delta_len = c->delta_cap = 0;
            c->lp = NULL;
            c->nlp = c->caplp = 0;
            nc = i + 1;
        }
        int done = j->done && !j->delivered;
        if (done)
            j->delivered = 1;
        pthread_mutex_unlock(&s->lock);
        for (int i = 0; i < nc; i++) {
            if (news[i].delta_len || news[i].nlp)
                cb(j, i, news[i].delta ? news[i].delta : "", news[i].delta_len, news[i].lp,
                   news[i].nlp, 0, arg);
            free(news[i].delta);
            free(news[i].lp);
        }
        if (done)
            cb(j, -1, "", 0, NULL, 0, 1, arg);
    }
}

/* ---- classification ------------------------------------------------------------------------ */

/* Tokenize input i of j into j->ctok[i], cutting the input's end if it does not fit. */
static int classify_tokenize(struct eng_job *j, int i)
{
    struct eng_served *m = j->model;
    size_t len = strlen(j->inputs[i]), lo = 0, hi = len;
    int limit = m->max_context;
    for (;;) {
        char *p = eng_served_prompt(m, j->inputs[i], len);
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
        if ((int)n <= limit && (len == strlen(j->inputs[i]) || hi - lo <= 1)) {
            j->ctok[i] = ids;
            j->cn[i] = (int)n;
            return 0;
        }
        free(ids);
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
        while (len > 0 && ((unsigned char)j->inputs[i][len] & 0xC0) == 0x80)
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

/* Score up to max_batch pending inputs of the oldest job's model in one batched pass. */
static void classify_pass(struct eng_sched *s)
{
    struct eng_served *m = s->pend[0]->model;
    int cap = s->cfg.max_batch, nseg = 0, nl = m->meta.nlabels;
    struct eng_seg *segs = calloc((size_t)cap, sizeof(*segs));
    struct eng_job **owner = calloc((size_t)cap, sizeof(*owner));
    struct eng_ctx *scratch = eng_served_scratch_get(m);
    int rc = 0;

    if (!segs || !owner || !scratch) {
        rc = ENG_ENOMEM;
        goto out;
    }
    for (int k = 0; k < s->npend && nseg < cap; k++) {
        struct eng_job *j = s->pend[k];
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
    for (int i = 0; !rc && i < nseg; i++)
        label_probs(segs[i].out, nl);
out:;
    char why[300];
    snprintf(why, sizeof(why), "%s", scratch ? eng_ctx_errmsg(scratch) : eng_strerror(rc));
    for (int i = 0; i < nseg; i++)
        eng_served_ctx_put(m, segs[i].ctx);
    eng_served_scratch_put(m, scratch);
    /* Finish the jobs whose inputs are all scored (or all jobs of this pass on error). */
    int w = 0;
    for (int k = 0; k < s->npend; k++) {
        struct eng_job *j = s->pend[k];
        int in_pass = 0;
        for (int i = 0; i < nseg; i++)
            in_pass |= owner[i] == j;
        if (rc && (in_pass || !segs))
            job_finish(s, j, 500, NULL, "inference failed: %s", why);
        else if (!rc && j->cnext == j->ninputs)
            job_finish(s, j, 0, "stop", NULL);
        else
            s->pend[w++] = j;
    }
    s->npend = w;
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

static void gen_release(struct eng_sched *s, int g)
{
    struct gen *x = &s->gens[g];
    eng_served_ctx_put(x->job->model, x->ctx);
    free(x->ids);
    free(x->logits);
    s->gens[g] = s->gens[--s->ngens];
    pthread_mutex_lock(&s->lock);
    s->stats.kv_used = s->ngens;
    s->stats.running = s->ngens;
    pthread_mutex_unlock(&s->lock);
}

/* Ends job j (first call wins): its sequences are released by gen_sweep, then it completes. */
static void job_end(struct eng_job *j, int status, const char *reason, const char *msg)
{
    if (j->ending)
        return;
    j->ending = 1;
    j->status = status;
    j->finish_reason = reason;
    if (msg) {
        size_t n = strnlen(msg, sizeof(j->error) - 1);
        memcpy(j->error, msg, n);
        j->error[n] = 0;
    }
}

/* Releases finished sequences and those of ending jobs; a job completes when its last
 * sequence is gone (so the loop thread never frees a job a sequence still points to). */
static void gen_sweep(struct eng_sched *s)
{
    for (int g = s->ngens - 1; g >= 0; g--) {
        struct eng_job *j = s->gens[g].job;
        if (!s->gens[g].dead && !j->ending)
            continue;
        gen_release(s, g);
        int left = 0;
        for (int k = 0; k < s->ngens; k++)
            left |= s->gens[k].job == j;
        if (!left && j->ending) {
            char msg[sizeof(j->error)];
            snprintf(msg, sizeof(msg), "%s", j->error);
            if (j->status)
                job_finish(s, j, j->status, j->finish_reason, "%s", msg);
            else
                job_finish(s, j, 0, j->finish_reason, NULL);
        }
    }
}

static int gen_admit(struct eng_sched *s, struct eng_job *j)
{
    struct eng_served *m = j->model;
    int32_t *ids = NULL;
    size_t n = 0;
    int nch = j->n_choices < 1 ? 1 : j->n_choices;
    j->t_start = now_s();
    if (nch > s->cfg.max_seqs || nch > ENG_MAX_CHOICES) {
        job_finish(s, j, 400, NULL, "n = %d is more than the server runs at once (%d)", nch,
                   s->cfg.max_seqs < ENG_MAX_CHOICES ? s->cfg.max_seqs : ENG_MAX_CHOICES);
        return -1;
    }
    if (!(j->choices = calloc((size_t)nch, sizeof(*j->choices)))) {
        job_finish(s, j, 500, NULL, "out of memory");
        return -1;
    }
    j->n_choices = nch;
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
    j->prompt_tokens = (int)n;
    for (int c = 0; c < nch; c++) {
        struct gen x;
        memset(&x, 0, sizeof(x));
        x.job = j;
        x.choice = c;
        x.waiting = c > 0;
        x.n_prompt = x.n = (int)n;
        x.cap = (int)n + j->max_tokens + 1;
        x.ids = malloc((size_t)x.cap * sizeof(int32_t));
        x.ctx = eng_served_ctx_get(m, need);
        x.logits = malloc((size_t)eng_model_config(m->model)->vocab * sizeof(float));
        if (!x.ids || !x.ctx || !x.logits) {
            free(x.ids);
            eng_served_ctx_put(m, x.ctx);
            free(x.logits);
            free(ids);
            job_end(j, 500, NULL, "out of memory for the contexts of the request");
            gen_sweep(s);
            if (!c)
                job_finish(s, j, 500, NULL, "out of memory for a context of %d tokens", need);
            return -1;
        }
        memcpy(x.ids, ids, n * sizeof(int32_t));
        eng_sampler_init(&x.smp, j->temperature, j->top_p, j->seed + (uint64_t)c);
        s->gens[s->ngens++] = x;
    }
    free(ids);
    pthread_mutex_lock(&s->lock);
    s->stats.kv_used = s->ngens;
    s->stats.running = s->ngens;
    pthread_mutex_unlock(&s->lock);
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

/* Choice of sequence g is finished: record it; the job ends with its last choice. */
static void choice_finish(struct gen *x, const char *reason)
{
    struct eng_job *j = x->job;
    struct eng_choice *c = &j->choices[x->choice];
    x->dead = 1;
    c->finished = 1;
    c->finish_reason = reason;
    c->completion_tokens = x->n - x->n_prompt;
    j->completion_tokens = 0;
    for (int i = 0; i < j->n_choices; i++)
        j->completion_tokens += j->choices[i].completion_tokens;
    if (++j->n_finished == j->n_choices)
        job_end(j, 0, j->choices[0].finish_reason, NULL);
}

/* Hand out new text of sequence g; finish its choice if a stop condition holds. */
static void gen_text(struct eng_sched *s, int g, const char *reason, const struct eng_logprob *lp)
{
    struct gen *x = &s->gens[g];
    struct eng_job *j = x->job;
    char *text = NULL;
    size_t len = 0;
    if (eng_tok_decode(j->model->tok, x->ids + x->n_prompt, (size_t)(x->n - x->n_prompt), 1,
                       &text, &len)) {
        job_end(j, 500, NULL, "cannot decode the generated tokens");
        return;
    }
    /* Stop strings: cut at the first occurrence after what was already handed out. */
    size_t cut = len;
    for (int i = 0; i < j->nstop; i++) {
        size_t from = x->emitted >= strlen(j->stop[i]) ? x->emitted - strlen(j->stop[i]) + 1 : 0;
        char *at = strstr(text + from, j->stop[i]);
        if (at && (size_t)(at - text) < cut) {
            cut = (size_t)(at - text);
            reason = "stop";
        }
    }
    size_t upto = cut;
    if (!reason) {
        /* Hold back what may be the start of a stop string or a partial UTF-8 character
         * (decoded as U+FFFD, EF BF BD). */
        size_t hold = max_stop_len(j);
        hold = hold ? hold - 1 : 0;
        upto = len > hold ? len - hold : 0;
        while (upto >= 3 && upto > x->emitted && !memcmp(text + upto - 3, "\xEF\xBF\xBD", 3))
            upto -= 3;
    }
    if (upto > x->emitted || lp) {
        job_emit(s, j, x->choice, text + x->emitted, upto > x->emitted ? upto - x->emitted : 0,
                 lp);
        if (upto > x->emitted)
            x->emitted = upto;
    }
    free(text);
    if (reason)
        choice_finish(x, reason);
}

/* log-softmax of logits [V] at the chosen token and the k most likely tokens. */
static void fill_logprob(const float *lg, int V, int32_t chosen, int k, struct eng_logprob *out)
{
    float mx = lg[0];
    double sum = 0;
    for (int i = 1; i < V; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < V; i++)
        sum += exp((double)(lg[i] - mx));
    float lse = mx + (float)log(sum);
    out->id = chosen;
    out->logprob = lg[chosen] - lse;
    out->ntop = 0;
    for (int i = 0; i < V; i++) {
        int p = out->ntop < k ? out->ntop++ : k;
        if (p == k && (k == 0 || lg[i] - lse <= out->top_lp[k - 1]))
            continue;
        if (p == k)
            p = k - 1;
        while (p > 0 && out->top_lp[p - 1] < lg[i] - lse) { /* ties keep the lower id first */
            out->top_id[p] = out->top_id[p - 1];
            out->top_lp[p] = out->top_lp[p - 1];
            p--;
        }
        out->top_id[p] = i;
        out->top_lp[p] = lg[i] - lse;
    }
}

/* Picks the next token of sequence g from its logits and hands out the text. */
static void gen_pick(struct eng_sched *s, int g, int V)
{
    struct gen *x = &s->gens[g];
    struct eng_job *j = x->job;
    struct eng_logprob lp, *lpp = NULL;
    if (j->logprobs >= 0)
        memcpy(s->scratch_lp, x->logits, (size_t)V * sizeof(float));
    int32_t t = eng_sampler_pick(&x->smp, x->logits, V, s->scratch_idx);
    if (!j->t_first)
        j->t_first = now_s();
    const char *reason = NULL;
    if (is_eos(j->model, t)) {
        reason = "stop";
    } else {
        x->ids[x->n++] = t;
        if (x->n - x->n_prompt >= j->max_tokens || x->n >= x->ctx->max_t)
            reason = "length";
        if (j->logprobs >= 0) {
            fill_logprob(s->scratch_lp, V, t, j->logprobs, &lp);
            lpp = &lp;
        }
    }
    j->choices[x->choice].completion_tokens = x->n - x->n_prompt;
    gen_text(s, g, reason, lpp);
}

/* Choice 0 of job j has its prompt's logits: the waiting choices get a copy of its KV cache and
 * of those logits, and sample from them in this step (one prefill for all n choices). */
static void gen_fork(struct eng_sched *s, struct gen *leader, int V)
{
    const struct eng_ctx *src = leader->ctx;
    const struct eng_config *cf = eng_model_config(leader->job->model->model);
    size_t kd = (size_t)cf->kv_heads * cf->head_dim;
    for (int g = 0; g < s->ngens; g++) {
        struct gen *f = &s->gens[g];
        if (f->job != leader->job || !f->waiting)
            continue;
        struct eng_ctx *dst = f->ctx;
        for (int l = 0; l < cf->layers; l++) {
            memcpy(dst->kc + (size_t)l * dst->max_t * kd, src->kc + (size_t)l * src->max_t * kd,
                   (size_t)src->pos * kd * sizeof(float));
            memcpy(dst->vc + (size_t)l * dst->max_t * kd, src->vc + (size_t)l * src->max_t * kd,
                   (size_t)src->pos * kd * sizeof(float));
        }
        dst->pos = src->pos;
        memcpy(f->logits, leader->logits, (size_t)V * sizeof(float));
        f->fed = leader->fed;
        f->waiting = 0;
        f->forked = 1;
    }
}

/* One step: prompt chunks of admitted sequences + one token of each decoding sequence. */
static void gen_step(struct eng_sched *s)
{
    struct eng_seg *segs = calloc((size_t)s->ngens, sizeof(*segs));
    int *owner = calloc((size_t)s->ngens, sizeof(int));
    int budget = s->cfg.prefill_rows;
    if (!segs || !owner) {
        free(segs);
        free(owner);
        return;
    }
    /* One model per pass, rotating between the models of the running sequences. */
    struct eng_served *m = s->gens[s->rr++ % s->ngens].job->model;
    int nseg = 0, rc = 0;
    for (int g = 0; g < s->ngens; g++) {
        struct gen *x = &s->gens[g];
        x->want = 0;
        if (x->job->model != m || x->waiting)
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
    snprintf(why, sizeof(why), "inference failed: %s",
             scratch ? eng_ctx_errmsg(scratch) : "out of memory");
    eng_served_scratch_put(m, scratch);
    int V = eng_model_config(m->model)->vocab;
    if (s->scratch_n < V) {
        free(s->scratch_idx);
        free(s->scratch_lp);
        s->scratch_idx = malloc((size_t)V * sizeof(int32_t));
        s->scratch_lp = malloc((size_t)V * sizeof(float));
        s->scratch_n = s->scratch_idx && s->scratch_lp ? V : 0;
    }
    for (int k = 0; k < nseg; k++) {
        struct gen *x = &s->gens[owner[k]];
        if (rc || !s->scratch_n) {
            job_end(x->job, 500, NULL, why);
            continue;
        }
        if (!x->want || x->job->ending)
            continue;
        if (x->choice == 0 && x->n == x->n_prompt && x->job->n_choices > 1)
            gen_fork(s, x, V);
        gen_pick(s, owner[k], V);
    }
    for (int g = 0; g < s->ngens; g++)
        if (s->gens[g].forked) {
            s->gens[g].forked = 0;
            if (!s->gens[g].job->ending)
                gen_pick(s, g, V);
        }
    gen_sweep(s);
    free(segs);
    free(owner);
}

/* ---- the engine thread --------------------------------------------------------------------- */

static int pend_inputs(const struct eng_sched *s)
{
    int n = 0;
    for (int k = 0; k < s->npend; k++)
        n += s->pend[k]->ninputs - s->pend[k]->cnext;
    return n;
}

static void *sched_main(void *arg)
{
    struct eng_sched *s = arg;
    for (;;) {
        struct eng_job *take = NULL, **tail = &take;
        pthread_mutex_lock(&s->lock);
        for (;;) {
            /* Move incoming jobs: every classification, and generations while slots are free
             * (keeping their order). */
            struct eng_job **pp = &s->in_head;
            int slots = s->cfg.max_seqs - s->ngens;
            s->in_tail = NULL;
            while (*pp) {
                struct eng_job *j = *pp;
                int need = j->n_choices > 1 ? j->n_choices : 1;
                if (need > s->cfg.max_seqs)
                    need = 1; /* admitted to be refused (gen_admit) */
                if (j->kind == ENG_JOB_CLASSIFY || slots >= need || j->cancelled) {
                    if (j->kind == ENG_JOB_GENERATE && !j->cancelled)
                        slots -= need;
                    *pp = j->next;
                    j->next = NULL;
                    *tail = j;
                    tail = &j->next;
                    s->n_in--;
                } else {
                    s->in_tail = j;
                    pp = &j->next;
                }
            }
            s->stats.waiting = s->n_in + pend_inputs(s);
            if (take || s->stop || s->ngens > 0)
                break;
            if (s->npend > 0) {
                double due = s->pend[0]->t_submit + s->cfg.max_wait_ms / 1000.0;
                if (pend_inputs(s) >= s->cfg.max_batch || now_s() >= due)
                    break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                double wait = due - now_s();
                long ns = ts.tv_nsec + (long)(wait * 1e9);
                ts.tv_sec += ns / 1000000000L;
                ts.tv_nsec = ns % 1000000000L;
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
                continue;
            }
            pthread_cond_wait(&s->cond, &s->lock);
        }
        int stop = s->stop;
        pthread_mutex_unlock(&s->lock);

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
                    s->pend[s->npend++] = j;
            } else {
                gen_admit(s, j);
            }
        }
        if (stop)
            break;
        /* Cancelled generations leave now. */
        for (int g = s->ngens - 1; g >= 0; g--) {
            pthread_mutex_lock(&s->lock);
            int c = s->gens[g].job->cancelled;
            pthread_mutex_unlock(&s->lock);
            if (c) {
                struct gen *x = &s->gens[g];
                x->job->choices[x->choice].completion_tokens = x->n - x->n_prompt;
                if (!x->job->choices[x->choice].finished)
                    x->job->choices[x->choice].finish_reason = "cancelled";
                x->job->completion_tokens = 0;
                for (int i = 0; i < x->job->n_choices; i++)
                    x->job->completion_tokens += x->job->choices[i].completion_tokens;
                job_end(x->job, 0, "cancelled", NULL);
            }
        }
        gen_sweep(s);
        if (s->npend > 0) {
            double due = s->pend[0]->t_submit + s->cfg.max_wait_ms / 1000.0;
            if (pend_inputs(s) >= s->cfg.max_batch || now_s() >= due || s->ngens > 0)
                classify_pass(s);
        }
        if (s->ngens > 0)
            gen_step(s);
    }
    /* Stopping: complete everything still here as cancelled. */
    for (int k = 0; k < s->npend; k++)
        job_finish(s, s->pend[k], 0, "cancelled", NULL);
    s->npend = 0;
    for (int g = 0; g < s->ngens; g++)
        job_end(s->gens[g].job, 0, "cancelled", NULL);
    gen_sweep(s);
    return NULL;
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
    s->notify = notify;
    s->arg = arg;
    s->stats.kv_capacity = s->cfg.max_seqs;
    s->pend = calloc((size_t)s->cfg.max_queue + 1, sizeof(*s->pend));
    s->gens = calloc((size_t)s->cfg.max_seqs, sizeof(*s->gens));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (!s->pend || !s->gens || pthread_create(&s->thread, NULL, sched_main, s)) {
        free(s->pend);
        free(s->gens);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
        return ENG_ENOMEM;
    }
    *out = s;
    return 0;
}

void eng_sched_stop(struct eng_sched *s)
{
    pthread_mutex_lock(&s->lock);
    int was = s->stop;
    s->stop = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (was)
        return;
    pthread_join(s->thread, NULL);
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
    free(s->pend);
    free(s->gens);
    free(s->scratch_idx);
    free(s->scratch_lp);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int eng_sched_submit(struct eng_sched *s, struct eng_job *j)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_in + s->npend >= s->cfg.max_queue || s->stop) {
        pthread_mutex_unlock(&s->lock);
        return ENG_ERANGE;
    }
    j->t_submit = now_s();
    j->next = NULL;
    if (s->in_tail)
        s->in_tail->next = j;
    else
        s->in_head = j;
    s->in_tail = j;
    s->n_in++;
    s->stats.waiting++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void eng_sched_cancel(struct eng_sched *s, struct eng_job *j)
{
    pthread_mutex_lock(&s->lock);
    j->cancelled = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void eng_sched_stats(struct eng_sched *s, struct eng_sched_stats *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->stats;
    pthread_mutex_unlock(&s->lock);
}
