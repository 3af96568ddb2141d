/*
 * engine/sched.h — the serving scheduler: one engine thread that batches requests.
 *
 * Jobs are submitted from the loop thread into a bounded queue (full: ENG_ERANGE; the API then
 * parks the request or answers 429). `workers` engine threads take jobs from it; each
 *   - batches classifications adaptively: it takes its share of the pending inputs (at most
 *     max_batch) and scores them at once in one batched pass (engine/batch.h), grouped by
 *     model. It waits (up to max_wait_ms after its oldest input) for more only while they would
 *     share its pass (fewer than ENG_BATCH_ROWS token rows held) and there is evidence that
 *     more are arriving: requests arrive less than half that wait apart and other
 *     classifications are in flight. A lone client never pays the wait; under load, batches
 *     form from what queues up while a pass runs;
 *   - batches generations continuously: every step runs one pass holding the next token of
 *     every running sequence plus prompt chunks of sequences being admitted; a new request joins
 *     at the next step, a finished or cancelled one leaves at once and frees its context
 *     (KV cache). At most max_seqs sequences run at once; the rest wait in the queue.
 * Parallelism: the workers run passes side by side (each with its own scratch context and
 * sequences), and inside a pass the kernels' thread pool has the model's threads.
 *
 * Results flow back through `notify` (called on the engine thread; the daemon makes it a
 * uv_async_send) and eng_sched_drain on the loop thread, which hands each job's new text and,
 * once, its completion to a callback. After the completion is handed over the loop thread owns
 * the job and frees it with eng_request_free.
 */
#ifndef BD_ENGINE_SCHED_H
#define BD_ENGINE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "engine/registry.h"

enum eng_request_kind { ENG_REQ_CLASSIFY = 0, ENG_REQ_GENERATE = 1 };

#define ENG_MAX_CHOICES 8
#define ENG_MAX_TOP_LOGPROBS 20

/* One generated token: its log-probability under the model (log-softmax of the raw logits,
 * before temperature and top_p) and the most likely alternatives at that position. */
struct eng_logprob {
    int32_t id;
    float logprob;
    int ntop;
    int32_t top_id[ENG_MAX_TOP_LOGPROBS];
    float top_lp[ENG_MAX_TOP_LOGPROBS];
};

/* One of a generation's n choices (engine thread writes; news read under the lock). */
struct eng_choice {
    int completion_tokens;
    const char *finish_reason; /* "stop", "length", "cancelled" once finished */
    int finished;
    char *delta; /* text produced since the last drain */
    size_t delta_len, delta_cap;
    struct eng_logprob *lp; /* entries since the last drain (with logprobs >= 0) */
    int nlp, caplp;
};

struct eng_request {
    enum eng_request_kind kind;
    struct eng_served *model; /* reference owned by the job */
    void *user;               /* the caller's (the API's request) */

    /* classify */
    char **inputs;   /* [ninputs] UTF-8 texts (owned) */
    char **inputs_b; /* NULL, or [ninputs] the second text of each sentence pair (owned; an
                      * entry may be NULL): required by a model whose template has {text_b}
                      * (eng_served_is_pair), refused by one with only {text} */
    int ninputs;
    int truncate;        /* 1: cut inputs that do not fit; 0: fail with ENG_ERANGE */
    int truncate_tokens; /* > 0: also cut inputs to this many tokens with the template */
    int truncate_left;   /* 1: cut the start of the input text instead of its end; a pair
                          * loses the end (start) of its first text, then of its second, as
                          * the trainer cuts them (eng_fit_texts) */

    /* generate */
    char *prompt;              /* owned; used as is (the API applies templates) */
    int truncate_prompt;       /* 1: a prompt too long for the context and max_tokens loses
                               * the end of its {text} part (text_off, text_len): the start of
                               * the input is kept (summarize; see gen_fit in sched.c) */
    size_t text_off, text_len; /* the input's bytes within prompt */
    int prompt_truncated;      /* result: 1 if the input was cut */
    size_t text_kept;          /* result: bytes of the input kept */
    int max_tokens;
    float temperature, top_p;
    uint64_t seed;
    char **stop; /* [nstop] stop strings (owned) */
    int nstop;
    int n_choices;              /* 1..ENG_MAX_CHOICES: one prefill, its KV cache copied to the
                               * others; choice i samples with seed + i */
    int logprobs;               /* -1: none; else alternatives per token (0..20) */
    struct eng_choice *choices; /* [n_choices], made at admission */

    /* results (engine thread writes; read on the loop thread after completion) */
    int status; /* 0 or a negative ENG_E*: ENG_EINVAL / ENG_ERANGE (the request:
                               * bad or too large input), ENG_ENOMEM, ENG_EINTERNAL (the engine);
                               * api/ maps it to HTTP (api_eng_http_status) */
    char error[256];
    float *probs;   /* classify: [ninputs][nlabels] */
    float *logits;  /* classify: [ninputs][nlabels] the label logits before the
                               * softmax, filled when the caller allocated it (owned) */
    int *truncated; /* classify: [ninputs] 1 if the input was cut */
    int *best;      /* classify: [ninputs] the chosen label (eng_label_scores) */
    int prompt_tokens;
    int completion_tokens;
    const char *finish_reason;                /* choice 0's: "stop", "length" or "cancelled" */
    double t_submit, t_start, t_first, t_end; /* monotonic seconds */

    /* private */
    struct eng_request *next;  /* incoming queue */
    struct eng_request *rnext; /* ready list */
    int32_t **ctok;            /* classify: token ids per input (engine thread) */
    int *cn;
    int cnext; /* classify: inputs scored so far */
    int cancelled;
    int held; /* taken by a worker and not finished: the slots it counts for
                               * in the scheduler (a generation: its sequences) */
    int queued_ready;
    int done;
    int delivered;
    int ending;     /* engine thread: finishing once its sequences are released */
    int n_finished; /* choices finished */
};

struct eng_sched_cfg {
    int max_batch;    /* classification inputs per pass (default 16) */
    int max_wait_ms;  /* wait for more classifications (default 2) */
    int max_queue;    /* jobs waiting at most (default 256) */
    int max_seqs;     /* generations running at once (default 8) */
    int prefill_rows; /* prompt tokens admitted per generation step (default 64) */
    int workers;      /* engine threads (default 1) */
};

struct eng_sched_stats {
    int waiting;     /* jobs queued, not taken by a worker yet */
    int running;     /* jobs taken by workers: generations running + classifications */
    int last_batch;  /* sequences in the last pass (of any worker) */
    int kv_used;     /* generation sequences holding a context (n per job of n choices) */
    int kv_capacity; /* max_seqs (over all workers) */
};

struct eng_sched;

/* Start the engine threads. notify(arg) is called (on an engine thread) when jobs have news. */
int eng_sched_create(const struct eng_sched_cfg *cfg, void (*notify)(void *arg), void *arg,
                     struct eng_sched **out);
/* Stop the threads; every job not completed is completed as cancelled (drain them after). */
void eng_sched_stop(struct eng_sched *s);
/* Stop if needed and free; completions not drained are freed with their jobs. */
void eng_sched_free(struct eng_sched *s);

/* A new job of kind; the caller fills its inputs. */
struct eng_request *eng_request_new(enum eng_request_kind kind, struct eng_served *model);
void eng_request_free(struct eng_request *j);

/* Queue a job (ownership passes to the scheduler until its completion is drained). Returns 0,
 * or ENG_ERANGE when the queue is full (the job stays the caller's). */
int eng_sched_submit(struct eng_sched *s, struct eng_request *j);
/* Ask a job to stop (its client left); it completes with finish_reason "cancelled". */
void eng_sched_cancel(struct eng_sched *s, struct eng_request *j);

/*
 * Loop thread: for every job with news, call cb(job, choice, text, len, lp, nlp, 0, arg) for
 * each choice with new generated text (may be empty) or logprob entries since the last call,
 * then cb(job, -1, "", 0, NULL, 0, 1, arg) exactly once when the job is complete. After a done
 * call the job belongs to the callback.
 */
typedef void (*eng_drain_cb)(struct eng_request *j, int choice, const char *text, size_t len,
                             const struct eng_logprob *lp, int nlp, int done, void *arg);
void eng_sched_drain(struct eng_sched *s, eng_drain_cb cb, void *arg);

void eng_sched_stats(struct eng_sched *s, struct eng_sched_stats *st);

#endif
