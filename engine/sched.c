/*
 * engine/sched.c — see sched.h. `workers` engine threads share one incoming queue; each holds
 * its own classifications and generations and runs its own passes (data parallelism: on a small
 * model one pass per core beats one pass split over the cores, whose many short parallel
 * regions leave the helpers spinning). The loop thread only submits, cancels and drains.
 * Locking: `lock` guards the incoming queue, the ready list, the counters, each job's choices'
 * delta/lp, its done/cancelled/held fields and the stats; everything else of a held job is touched by its
 * worker alone.
 *
 * A job's completion hands it to the loop thread, which may free it (and drop the last
 * reference to its model) at once: a worker touches neither after job_finish, so it gives a
 * generation's KV contexts back before finishing the job. A generation of n choices runs as n
 * sequences on one worker; finished ones are released by gen_sweep, which finishes the job when
 * its last sequence is gone.
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
#include "engine/classify.h"
#include "engine/err.h"
#include "engine/model_impl.h"
#include "engine/sampler.h"
#include "engine/sched.h"

/* A running generation (engine thread only). */
struct gen {
    struct eng_request *job;
    struct eng_ctx *ctx;
    int32_t *ids; /* prompt then generated tokens */
    int n_prompt, n, cap;
    int fed;        /* tokens already in the KV cache */
    size_t emitted; /* bytes of generated text handed out */
    struct eng_sampler smp;
    float *logits; /* [vocab] */
    int want;      /* this step computes logits for it */
    int choice;    /* which of the job's choices */
    int waiting;   /* a choice > 0 waiting for choice 0's prefill (KV copied after) */
    int forked;    /* its logits were copied from choice 0's this step: sample them */
    int dead;      /* finished: released by gen_sweep */
};

/* One engine thread and what it holds (touched by that thread alone unless noted). */
struct eng_worker {
    struct eng_sched *s;
    pthread_t thread;
    int started;
    struct eng_request **pend; /* classify jobs being scored [max_queue + 1] */
    int npend;
    struct gen *gens; /* [max_seqs] */
    int ngens;
    int32_t *scratch_idx;
    float *scratch_lp; /* [vocab] raw logits for logprobs */
    int scratch_n;
    unsigned rr; /* round robin over models */
};

struct eng_sched {
    struct eng_sched_cfg cfg;
    void (*notify)(void *arg);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    struct eng_request *in_head, *in_tail; /* incoming, FIFO */
    int n_in;
    int held_cls, held_gen;    /* taken by workers and not finished: classify jobs,
                                        * generation sequences (a job's n choices) */
    int in_inputs;             /* classification inputs in the incoming queue */
    int busy;                  /* workers running a pass */
    int cls_active;            /* classify jobs submitted and not finished */
    double last_submit, gap;   /* time of the last submission; mean gap (EWMA), s */
    struct eng_request *ready; /* jobs with news, LIFO */
    struct eng_sched_stats stats;
    struct eng_worker *w; /* [nworkers] */
    int nworkers;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct eng_request *eng_request_new(enum eng_request_kind kind, struct eng_served *model)
{
    struct eng_request *j = calloc(1, sizeof(*j));
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

void eng_request_free(struct eng_request *j)
{
    if (!j)
        return;
    for (int i = 0; i < j->ninputs; i++) {
        free(j->inputs[i]);
        if (j->inputs_b)
            free(j->inputs_b[i]);
        if (j->ctok)
            free(j->ctok[i]);
    }
    free(j->inputs);
    free(j->inputs_b);
    free(j->ctok);
    free(j->cn);
    free(j->prompt);
    for (int i = 0; i < j->nstop; i++)
        free(j->stop[i]);
    free(j->stop);
    free(j->probs);
    free(j->logits);
    free(j->truncated);
    free(j->best);
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
static void mark_ready(struct eng_sched *s, struct eng_request *j)
{
    if (!j->queued_ready) {
        j->queued_ready = 1;
        j->rnext = s->ready;
        s->ready = j;
    }
}

/* New text and/or a logprob entry (lp may be NULL) of choice ch. */
static void job_emit(struct eng_sched *s, struct eng_request *j, int ch, const char *text,
                     size_t len, const struct eng_logprob *lp)
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

static void job_finish(struct eng_sched *s, struct eng_request *j, int status, const char *reason,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void job_finish(struct eng_sched *s, struct eng_request *j, int status, const char *reason,
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
    if (j->held)
        *(j->kind == ENG_REQ_CLASSIFY ? &s->held_cls : &s->held_gen) -= j->held;
    j->held = 0;
    if (j->kind == ENG_REQ_CLASSIFY)
        s->cls_active--;
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
        struct eng_request *j = s->ready;
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

/* eng_fit_texts' encoder for a served model: its prompt of the pair, tokenized. */
static int pair_encode(void *arg, const char *a, size_t alen, const char *b, size_t blen,
                       int32_t **ids, size_t *n)
{
    const struct eng_served *m = arg;
    char *p = eng_served_prompt_pair(m, a, alen, b, blen);
    if (!p)
        return ENG_ENOMEM;
    int rc = eng_tok_encode(m->tok, p, strlen(p), ids, n);
    free(p);
    return rc;
}

/* Tokenize the sentence pair i of j into j->ctok[i], its texts cut by the trainer's rule
 * (eng_fit_texts) when it does not fit the limit and the job allows truncation. */
static int classify_tokenize_pair(struct eng_request *j, int i, int limit)
{
    const char *a = j->inputs[i], *b = j->inputs_b[i];
    size_t atot = strlen(a), btot = strlen(b), al = atot, bl = btot, n = 0;
    int32_t *ids = NULL;
    int rc = eng_fit_texts(a, &al, b, &bl, j->truncate ? (size_t)limit : SIZE_MAX, j->truncate_left,
                           pair_encode, j->model, &ids, &n);
    if (rc == ENG_ERANGE) {
        snprintf(j->error, sizeof(j->error),
                 "the template alone is more than the limit of %d tokens", limit);
        return rc;
    }
    if (rc) {
        snprintf(j->error, sizeof(j->error), "input %d is not valid UTF-8 text", i);
        return rc;
    }
    if ((int)n > limit) {
        snprintf(j->error, sizeof(j->error),
                 "input %d is %zu tokens with the template, more than the model's context "
                 "of %d (set \"truncate\": true to cut it)",
                 i, n, limit);
        free(ids);
        return ENG_ERANGE;
    }
    j->truncated[i] = al < atot || bl < btot;
    j->ctok[i] = ids;
    j->cn[i] = (int)n;
    return 0;
}

/* Tokenize input i of j into j->ctok[i], cutting the input's end (start with truncate_left) if
 * it does not fit the context or truncate_tokens. */
static int classify_tokenize(struct eng_request *j, int i)
{
    struct eng_served *m = j->model;
    const char *in = j->inputs[i];
    size_t total = strlen(in), len = total, lo = 0, hi = len;
    int limit = m->max_context;
    if (j->truncate_tokens > 0 && j->truncate_tokens < limit)
        limit = j->truncate_tokens;
    if (j->inputs_b && j->inputs_b[i])
        return classify_tokenize_pair(j, i, limit);
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
            snprintf(j->error, sizeof(j->error),
                     "the template alone is %zu tokens, more than "
                     "the limit of %d",
                     n, limit);
            return ENG_ERANGE;
        }
        if (!j->truncate) {
            snprintf(j->error, sizeof(j->error),
                     "input %d is %zu tokens with the template, more than the model's context "
                     "of %d (set \"truncate\": true to cut it)",
                     i, n, limit);
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

static int classify_prepare(struct eng_sched *s, struct eng_request *j)
{
    int nl = j->model->meta.nlabels;
    (void)s;
    j->t_start = now_s();
    if (nl <= 0) {
        j->status = ENG_EINVAL;
        snprintf(j->error, sizeof(j->error),
                 "model '%s' has no labels: it is not a "
                 "classification model",
                 j->model->id);
        return -1;
    }
    j->ctok = calloc((size_t)j->ninputs, sizeof(*j->ctok));
    j->cn = calloc((size_t)j->ninputs, sizeof(*j->cn));
    j->probs = calloc((size_t)j->ninputs * nl, sizeof(float));
    j->truncated = calloc((size_t)j->ninputs, sizeof(int));
    j->best = calloc((size_t)j->ninputs, sizeof(int));
    if (!j->ctok || !j->cn || !j->probs || !j->truncated || !j->best) {
        j->status = ENG_ENOMEM;
        snprintf(j->error, sizeof(j->error), "out of memory");
        return -1;
    }
    int pair = eng_served_is_pair(j->model);
    for (int i = 0; i < j->ninputs; i++) {
        if (pair != (j->inputs_b && j->inputs_b[i])) { /* the API refuses these first */
            j->status = ENG_EINVAL;
            snprintf(j->error, sizeof(j->error),
                     pair ? "model '%s' classifies sentence pairs: input %d has no second text"
                          : "model '%s' has one {text} slot: input %d is a sentence pair",
                     j->model->id, i);
            return -1;
        }
        int rc = classify_tokenize(j, i);
        if (rc) {
            j->status = rc == ENG_ENOMEM || rc == ENG_ERANGE ? rc : ENG_EINVAL;
            return -1;
        }
        j->prompt_tokens += j->cn[i];
    }
    return 0;
}

/* Score up to max_batch pending inputs of w's oldest job's model in one batched pass. */
static void classify_pass(struct eng_worker *w)
{
    struct eng_sched *s = w->s;
    struct eng_served *m = w->pend[0]->model;
    int cap = s->cfg.max_batch, nseg = 0, nl = m->meta.nlabels;
    struct eng_seg *segs = calloc((size_t)cap, sizeof(*segs));
    struct eng_request **owner = calloc((size_t)cap, sizeof(*owner));
    struct eng_ctx *scratch = eng_served_scratch_get(m);
    int rc = 0;

    if (!segs || !owner || !scratch) {
        rc = ENG_ENOMEM;
        goto out;
    }
    for (int k = 0; k < w->npend && nseg < cap; k++) {
        struct eng_request *j = w->pend[k];
        if (j->model != m)
            continue;
        while (j->cnext < j->ninputs && nseg < cap) {
            int i = j->cnext++;
            struct eng_ctx *c = eng_served_ctx_get(m, j->cn[i]);
            if (!c) {
                rc = ENG_ENOMEM;
                goto out;
            }
            segs[nseg] = (struct eng_seg){c,
                                          j->ctok[i],
                                          j->cn[i],
                                          ENG_WANT_ROWS,
                                          m->label_rows,
                                          nl,
                                          j->probs + (size_t)i * nl};
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
        size_t in = (size_t)(segs[i].out - owner[i]->probs) / (size_t)nl; /* the input's index */
        owner[i]->best[in] = eng_label_scores(segs[i].out, nl, segs[i].out);
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
        struct eng_request *j = w->pend[k];
        int in_pass = 0;
        for (int i = 0; i < nseg; i++)
            in_pass |= owner[i] == j;
        if (rc && (in_pass || !segs))
            job_finish(s, j, ENG_EINTERNAL, NULL, "inference failed: %s", why);
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
 * Take sequence g out of w and return its job. The KV context goes back to the model first:
 * once job_finish hands the job over, the loop thread may free it and drop the last reference
 * to its model (a hot-swap) at any moment.
 */
static struct eng_request *gen_release(struct eng_worker *w, int g)
{
    struct gen *x = &w->gens[g];
    struct eng_request *j = x->job;
    eng_served_ctx_put(j->model, x->ctx);
    free(x->ids);
    free(x->logits);
    w->gens[g] = w->gens[--w->ngens];
    return j;
}

/* Ends job j (first call wins): its sequences are released by gen_sweep, then it completes. */
static void job_end(struct eng_request *j, int status, const char *reason, const char *msg)
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

/* Releases w's finished sequences and those of ending jobs; a job completes when its last
 * sequence is gone (so the loop thread never frees a job a sequence still points to, and every
 * context is back before the job is handed over). */
static void gen_sweep(struct eng_worker *w)
{
    for (int g = w->ngens - 1; g >= 0; g--) {
        struct eng_request *j = w->gens[g].job;
        if (!w->gens[g].dead && !j->ending)
            continue;
        gen_release(w, g);
        int left = 0;
        for (int k = 0; k < w->ngens; k++)
            left |= w->gens[k].job == j;
        if (!left && j->ending) {
            char msg[sizeof(j->error)];
            snprintf(msg, sizeof(msg), "%s", j->error);
            if (j->status)
                job_finish(w->s, j, j->status, j->finish_reason, "%s", msg);
            else
                job_finish(w->s, j, 0, j->finish_reason, NULL);
        }
    }
}

/*
 * Tokenize j's prompt into *ids. With truncate_prompt, a prompt that leaves fewer than
 * max_tokens positions of the context free (but at least half the context for the prompt) is
 * re-made with the end of its {text} part cut, the largest start of the input that fits (binary
 * search on bytes, cut at a UTF-8 boundary, the whole prompt tokenized again each time, as the
 * trainer cuts an article to its max_len): a summarizer sees the article's beginning, which
 * carries most of a news story, instead of refusing it.
 */
static int gen_fit(struct eng_request *j, int32_t **ids, size_t *n)
{
    struct eng_served *m = j->model;
    const char *p = j->prompt, *in = p + j->text_off;
    size_t total = j->text_len, len = total, lo = 0, hi = total;
    size_t plen = strlen(p), post = plen - j->text_off - j->text_len;
    int room = m->max_context - j->max_tokens;
    if (room < m->max_context / 2)
        room = m->max_context / 2;
    j->text_kept = total;
    if (eng_tok_encode(m->tok, p, plen, ids, n))
        return ENG_EINVAL;
    if (!j->truncate_prompt || (int)*n <= room || j->text_off + j->text_len > plen)
        return 0;
    char *buf = malloc(plen + 1);
    if (!buf)
        return ENG_ENOMEM;
    memcpy(buf, p, j->text_off);
    for (;;) {
        int fits = (int)*n <= room;
        if (fits && (len == total || hi - lo <= 1))
            break;
        if (fits)
            lo = len;
        else
            hi = len;
        if (hi == 0)
            break; /* the template alone is too long: the caller refuses it */
        len = lo + (hi - lo) / 2;
        while (len > 0 && ((unsigned char)in[len] & 0xC0) == 0x80)
            len--;
        if (len <= lo) /* one character between lo and hi: lo is the answer */
            len = hi = lo;
        memcpy(buf + j->text_off, in, len);
        memcpy(buf + j->text_off + len, in + total, post);
        buf[j->text_off + len + post] = 0;
        free(*ids);
        *ids = NULL;
        if (eng_tok_encode(m->tok, buf, j->text_off + len + post, ids, n)) {
            free(buf);
            return ENG_EINVAL;
        }
    }
    free(buf);
    j->prompt_truncated = len < total;
    j->text_kept = len;
    return 0;
}

/* Start generating j's choices on w (tokenize, take a KV context per choice); on failure j is
 * finished. */
static int gen_admit(struct eng_worker *w, struct eng_request *j)
{
    struct eng_sched *s = w->s;
    struct eng_served *m = j->model;
    int32_t *ids = NULL;
    size_t n = 0;
    int nch = j->n_choices < 1 ? 1 : j->n_choices;
    j->t_start = now_s();
    if (nch > s->cfg.max_seqs || nch > ENG_MAX_CHOICES) {
        job_finish(s, j, ENG_ERANGE, NULL, "n = %d is more than the server runs at once (%d)", nch,
                   s->cfg.max_seqs < ENG_MAX_CHOICES ? s->cfg.max_seqs : ENG_MAX_CHOICES);
        return -1;
    }
    if (!(j->choices = calloc((size_t)nch, sizeof(*j->choices)))) {
        job_finish(s, j, ENG_ENOMEM, NULL, "out of memory");
        return -1;
    }
    j->n_choices = nch;
    int frc = gen_fit(j, &ids, &n);
    if (frc) {
        free(ids);
        if (frc == ENG_ENOMEM)
            job_finish(s, j, ENG_ENOMEM, NULL, "out of memory");
        else
            job_finish(s, j, ENG_EINVAL, NULL, "the prompt is not valid UTF-8 text");
        return -1;
    }
    if (n == 0) {
        free(ids);
        job_finish(s, j, ENG_EINVAL, NULL, "the prompt is empty");
        return -1;
    }
    if ((int)n + 1 > m->max_context) {
        free(ids);
        job_finish(s, j, ENG_ERANGE, NULL,
                   "the prompt is %zu tokens; the model's context is %d tokens", n, m->max_context);
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
            job_end(j, ENG_ENOMEM, NULL, "out of memory for the contexts of the request");
            gen_sweep(w);
            if (!c)
                job_finish(s, j, ENG_ENOMEM, NULL, "out of memory for a context of %d tokens",
                           need);
            return -1;
        }
        memcpy(x.ids, ids, n * sizeof(int32_t));
        eng_sampler_init(&x.smp, j->temperature, j->top_p, j->seed + (uint64_t)c);
        w->gens[w->ngens++] = x;
    }
    free(ids);
    return 0;
}

/* Longest stop string, to know how much text to hold back while generating. */
static size_t max_stop_len(const struct eng_request *j)
{
    size_t m = 0;
    for (int i = 0; i < j->nstop; i++)
        if (strlen(j->stop[i]) > m)
            m = strlen(j->stop[i]);
    return m;
}

/* Choice of sequence x is finished: record it; the job ends with its last choice. */
static void choice_finish(struct gen *x, const char *reason)
{
    struct eng_request *j = x->job;
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

/* Hand out new text (and the logprob entry lp, may be NULL) of sequence g; finish its choice
 * if a stop condition holds (reason, or a stop string); undecodable tokens end the job. */
static void gen_text(struct eng_worker *w, int g, const char *reason, const struct eng_logprob *lp)
{
    struct gen *x = &w->gens[g];
    struct eng_request *j = x->job;
    char *text = NULL;
    size_t len = 0;
    if (eng_tok_decode(j->model->tok, x->ids + x->n_prompt, (size_t)(x->n - x->n_prompt), 1, &text,
                       &len)) {
        job_end(j, ENG_EINTERNAL, NULL, "cannot decode the generated tokens");
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
        job_emit(w->s, j, x->choice, text + x->emitted, upto > x->emitted ? upto - x->emitted : 0,
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
static void gen_pick(struct eng_worker *w, int g, int V)
{
    struct gen *x = &w->gens[g];
    struct eng_request *j = x->job;
    struct eng_logprob lp, *lpp = NULL;
    if (j->logprobs >= 0)
        memcpy(w->scratch_lp, x->logits, (size_t)V * sizeof(float));
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
        if (j->logprobs >= 0) {
            fill_logprob(w->scratch_lp, V, t, j->logprobs, &lp);
            lpp = &lp;
        }
    }
    j->choices[x->choice].completion_tokens = x->n - x->n_prompt;
    gen_text(w, g, reason, lpp);
}

/* Choice 0 of a job has its prompt's logits: the waiting choices (on the same worker) get a
 * copy of its KV cache and of those logits, and sample from them in this step (one prefill for
 * all n choices). */
static void gen_fork(struct eng_worker *w, struct gen *leader, int V)
{
    const struct eng_ctx *src = leader->ctx;
    const struct eng_config *cf = eng_model_config(leader->job->model->model);
    size_t kd = (size_t)cf->kv_heads * cf->head_dim;
    for (int g = 0; g < w->ngens; g++) {
        struct gen *f = &w->gens[g];
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

/* One step of w: prompt chunks of admitted sequences + one token of each decoding sequence
 * (followers waiting for their leader's prefill sit out). */
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
        segs[nseg] = (struct eng_seg){
            x->ctx, x->ids + x->fed, todo, x->want ? ENG_WANT_LOGITS : ENG_WANT_NONE, NULL,
            0,      x->logits};
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
    if (w->scratch_n < V) {
        free(w->scratch_idx);
        free(w->scratch_lp);
        w->scratch_idx = malloc((size_t)V * sizeof(int32_t));
        w->scratch_lp = malloc((size_t)V * sizeof(float));
        w->scratch_n = w->scratch_idx && w->scratch_lp ? V : 0;
    }
    /* Sequences leave only in gen_sweep below, so the indices stay valid here. */
    for (int k = 0; k < nseg; k++) {
        struct gen *x = &w->gens[owner[k]];
        if (rc || !w->scratch_n) {
            job_end(x->job, ENG_EINTERNAL, NULL, why);
            continue;
        }
        if (!x->want || x->job->ending)
            continue;
        if (x->choice == 0 && x->n == x->n_prompt && x->job->n_choices > 1)
            gen_fork(w, x, V);
        gen_pick(w, owner[k], V);
    }
    for (int g = 0; g < w->ngens; g++)
        if (w->gens[g].forked) {
            w->gens[g].forked = 0;
            if (!w->gens[g].job->ending)
                gen_pick(w, g, V);
        }
    gen_sweep(w);
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
static struct eng_request *take_jobs(struct eng_worker *w)
{
    struct eng_sched *s = w->s;
    struct eng_request *take = NULL, **tail = &take, **pp = &s->in_head;
    int inputs = pend_inputs(w), idle = s->nworkers - s->busy;
    int share = idle > 1 ? (inputs + s->in_inputs + idle - 1) / idle : s->cfg.max_batch;
    if (share > s->cfg.max_batch)
        share = s->cfg.max_batch;
    s->in_tail = NULL;
    while (*pp) {
        struct eng_request *j = *pp;
        int ok = j->cancelled;
        int need = j->n_choices > 1 ? j->n_choices : 1; /* sequences of a generation */
        if (need > s->cfg.max_seqs)
            need = 1; /* taken to be refused (gen_admit) */
        if (!ok && j->kind == ENG_REQ_GENERATE)
            ok = s->held_gen + need <= s->cfg.max_seqs;
        else if (!ok)
            ok = inputs == 0 || inputs + j->ninputs <= share;
        if (!ok) {
            s->in_tail = j;
            pp = &j->next;
            continue;
        }
        if (!j->cancelled) {
            j->held = j->kind == ENG_REQ_GENERATE ? need : 1;
            if (j->kind == ENG_REQ_GENERATE) {
                s->held_gen += need;
            } else {
                s->held_cls++;
                inputs += j->ninputs;
            }
        }
        if (j->kind == ENG_REQ_CLASSIFY)
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
static void start_jobs(struct eng_worker *w, struct eng_request *take, int stop)
{
    struct eng_sched *s = w->s;
    while (take) {
        struct eng_request *j = take;
        take = j->next;
        j->next = NULL;
        if (j->cancelled || stop) {
            job_finish(s, j, 0, "cancelled", NULL);
        } else if (j->kind == ENG_REQ_CLASSIFY) {
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
        struct eng_request *take = take_jobs(w);
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
                struct gen *x = &w->gens[g];
                struct eng_request *j = x->job;
                j->choices[x->choice].completion_tokens = x->n - x->n_prompt;
                if (!j->choices[x->choice].finished)
                    j->choices[x->choice].finish_reason = "cancelled";
                j->completion_tokens = 0;
                for (int i = 0; i < j->n_choices; i++)
                    j->completion_tokens += j->choices[i].completion_tokens;
                job_end(j, 0, "cancelled", NULL);
            }
        }
        gen_sweep(w);
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
    for (int g = 0; g < w->ngens; g++)
        job_end(w->gens[g].job, 0, "cancelled", NULL);
    gen_sweep(w);
    return NULL;
}

static void sched_release(struct eng_sched *s)
{
    for (int i = 0; s->w && i < s->nworkers; i++) {
        free(s->w[i].pend);
        free(s->w[i].gens);
        free(s->w[i].scratch_idx);
        free(s->w[i].scratch_lp);
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
        struct eng_request *j = s->in_head;
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
        struct eng_request *j = s->ready;
        s->ready = j->rnext;
        eng_request_free(j);
    }
    sched_release(s);
}

int eng_sched_submit(struct eng_sched *s, struct eng_request *j)
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
    if (j->kind == ENG_REQ_CLASSIFY) {
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

void eng_sched_cancel(struct eng_sched *s, struct eng_request *j)
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
