/*
 * jobs/jobrec.h — fine-tuning job records, their events and checkpoints, and registered models
 * in the store. Readers (`_get`, `_list`, `_json`) use the reader connection on the loop thread;
 * writers (`_tx`) are store_write_fn's for store/writer.h (run on the writer thread, inside a
 * transaction).
 *
 * Job status: validating_files -> queued -> running -> succeeded | failed | cancelled; a
 * running or queued job can be paused (running -> paused after the trainer checkpoints) and
 * resumed (paused -> queued -> running from that checkpoint).
 * Stages: 0 teacher SFT, 1 SubLN, 2 continued pre-training, 3 distillation (or BitNet-SFT),
 * 4 evaluation and export. Event ids (seq) are per job, contiguous from 1.
 */
#ifndef BD_JOBS_JOBREC_H
#define BD_JOBS_JOBREC_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

struct job_rec {
    char id[48];      /* "ftjob-" + 24 hex */
    int64_t seq;      /* creation order (list cursor) */
    char *spec;       /* the request as accepted (JSON text, owned) */
    char method[16];  /* bitdistill | bitnet_sft | fp16_sft */
    char model[1024]; /* base/teacher: HF directory */
    char training_file[48], validation_file[48], corpus_file[48];
    char device[32]; /* "cpu" or "cuda:K" */
    char dir[1024];  /* working directory of the job */
    char status[24];
    int stage;
    char stage_name[32];
    double progress; /* fraction of the current stage done */
    int64_t trained_tokens;
    char *metrics; /* latest step / eval metrics JSON (owned) or NULL */
    char *error;   /* owned or NULL */
    char result_model[128];
    char *result_files; /* JSON array of file ids (owned) or NULL */
    int activate;       /* 0, 1, or JOB_ACTIVATE_IF_BETTER */
    int attempts;
    int64_t created_at, started_at, finished_at;
};

/* "activate": "if_better": activated only when its evaluation beats the active model's. */
#define JOB_ACTIVATE_IF_BETTER 2

void job_rec_release(struct job_rec *r);
int job_rec_terminal(const char *status);

/* Reader. 0 or STORE_ENOTFOUND. */
int job_rec_get(struct store *st, const char *id, struct job_rec *r);
/* Reader: ids of jobs in `status` (oldest first), at most max; returns the count. */
int job_rec_ids_by_status(struct store *st, const char *status, char (*ids)[48], int max);
/* Reader: the OpenAI-shaped job object. */
json_t *job_rec_json(const struct job_rec *r);
/* Reader: newest first, after the job `after` (NULL: from the newest), at most limit. With
 * `meta` (borrowed), only jobs whose metadata matches: an object of key -> string (every pair
 * present), or JSON null (jobs without metadata). */
json_t *job_rec_list_json(struct store *st, const char *after, int limit, const json_t *meta,
                          int *has_more);
/* 1 when job r's metadata matches the filter meta (as job_rec_list_json). */
int job_rec_meta_match(const struct job_rec *r, const json_t *meta);

/* Writers. arg is the struct job_rec. */
int job_rec_insert_tx(sqlite3 *db, void *arg);

/* Writer: a status change (and the fields that go with it). */
struct job_status_op {
    char id[48];
    char status[24];
    char *error;            /* owned by the op; NULL keeps the stored one */
    char result_model[128]; /* "" keeps */
    char *result_files;     /* JSON array text, owned by the op; NULL keeps */
    int set_started, set_finished, bump_attempts;
};
int job_status_tx(sqlite3 *db, void *arg);

/* Writer: one trainer event (and the job fields it updates). */
struct job_event_op {
    char id[48];
    int64_t seq;
    char type[16];
    char *data; /* JSON line (owned by the op) */
    int stage;  /* -1: unchanged */
    char stage_name[32];
    double progress;      /* < 0: unchanged */
    int64_t tokens;       /* < 0: unchanged */
    int set_metrics;      /* data becomes the job's latest metrics */
    char ckpt_path[1024]; /* checkpoint events: recorded in checkpoints */
    char *ckpt_metrics;   /* their metrics JSON (owned by the op) or NULL */
    int ckpt_stage;
    int64_t ckpt_step;
};
int job_event_tx(sqlite3 *db, void *arg);

/* Reader: the largest event seq of a job (0 if none). */
int64_t job_events_max_seq(struct store *st, const char *id);
/* Reader: events with seq > after, at most limit, oldest first; *last gets the last seq. */
json_t *job_events_json(struct store *st, const char *id, int64_t after, int limit, int64_t *last);
/* Reader: the job's checkpoints in OpenAI's shape (fine_tuning.job.checkpoint), newest first,
 * after the checkpoint id `after` (NULL: from the newest), at most limit; `model` names the
 * job's model for fine_tuned_model_checkpoint. */
json_t *job_checkpoints_json(struct store *st, const char *id, const char *model, const char *after,
                             int limit, int *has_more);
/* The checkpoint id of (job, stage, step): "ftckpt-<job hex>-<stage>-<step>". */
void job_checkpoint_id(const char *job_id, int stage, int64_t step, char out[80]);

/* Registered models (students and trained teachers). */
struct job_model {
    char id[128];
    char path[1024];
    char sha256[65];
    char task[32];
    char job_id[48];
    char *metrics;   /* owned JSON text or NULL */
    char status[16]; /* loaded / unloaded / error */
    int active;
    int version;
    int64_t bytes, created_at;
};
void job_model_release(struct job_model *m);
/* Writer: insert the model of a job (idempotent: a job registers one model; a second insert
 * for the same job keeps the first row). arg: struct job_model. */
int job_model_insert_tx(sqlite3 *db, void *arg);
/* Writer: make `id` the only active model of its task (arg: struct job_model with id/task). */
int job_model_activate_tx(sqlite3 *db, void *arg);
/* Writer: delete (arg: struct job_model with id). STORE_EEXIST when active. */
int job_model_delete_tx(sqlite3 *db, void *arg);
/* Reader. */
int job_model_get(struct store *st, const char *id, struct job_model *m);
/* Reader: every registered model; *n entries (caller frees each with release, then the array). */
int job_model_list(struct store *st, struct job_model **out, int *n);

#endif
