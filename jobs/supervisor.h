/*
 * jobs/supervisor.h — runs fine-tuning jobs as child processes and keeps the store in step.
 *
 * Each job runs `bitdistill train --config DIR/job.json --out DIR/out --events-fd 3` (uv_spawn)
 * in its directory DIR under DATA_DIR/jobs/<id>, stdout and stderr appended to DIR/trainer.log.
 * Every JSON line the trainer writes on fd 3 becomes an event (seq contiguous per job) and
 * updates the job's stage, progress, tokens and metrics, through the writer thread in arrival
 * order. Devices: at most `cpu_jobs` jobs on "cpu" at once, one per "cuda:K".
 *
 * Ends: exit 0 after a "done" event -> the student file is hashed and registered as a model
 * (jobs/jobrec.h, one per job) and the job `succeeded`, then on_success runs (the daemon loads
 * and, if asked, activates it); a cancel -> SIGTERM, SIGKILL after the grace period ->
 * `cancelled`; anything else -> `failed` with the trainer's error event or the tail of its log,
 * unless retries remain (then queued again, resuming from the last checkpoint).
 * Pause: SIGUSR1 -> the trainer checkpoints and exits 4 -> `paused`, which start-up leaves alone
 * (a paused job stays paused across restarts); resume queues it again with --resume.
 * Restarts: on start-up, jobs found `running` (the daemon died under them) are resumed with
 * --resume from their last checkpoint after any trainer left over from before is killed; their
 * event history is kept and new events continue the sequence.
 */
#ifndef BD_JOBS_SUPERVISOR_H
#define BD_JOBS_SUPERVISOR_H

#include <stdint.h>
#include <uv.h>

#include "jobs/jobrec.h"
#include "store/store.h"
#include "store/writer.h"

struct job_sup_cfg {
    const char *data_dir;   /* borrowed */
    const char *trainer;    /* path of the `bitdistill` binary (borrowed) */
    int cpu_jobs;           /* concurrent CPU jobs (default 1) */
    int threads;            /* --threads for CPU trainers (0: the trainer's default) */
    int retries;            /* extra attempts after a failure (default 0) */
    int kill_grace_ms;      /* SIGTERM -> SIGKILL (default 10000) */
    const char *launcher;   /* command prefix running the trainer on a cluster (NULL: local);
                            * words split on spaces, {name} -> bd-<job id>; the trainer then
                            * writes its events on stdout (--events-fd 1), which srun and
                            * kubectl forward */
    const char *cancel_cmd; /* run on cancel, {name} expanded (e.g. scancel --name={name}) */
    int disabled;           /* 1: never start jobs here (a serving-only replica) */
};

struct job_sup_hooks {
    /* Loop thread: job `rec` succeeded and model `model` (registered row) is its student;
     * rec->activate is 1 when it should be activated now ("if_better" resolved by
     * jobs/better.h, its decision already stored as an `activation` event), else 0. */
    void (*on_success)(void *arg, const struct job_rec *rec, const struct job_model *model);
    void *arg;
};

struct job_sup;

struct job_sup *job_sup_create(uv_loop_t *loop, struct store *st, struct store_writer *w,
                               const struct job_sup_cfg *cfg, const struct job_sup_hooks *hooks);
/* Resume jobs left running, queue the queued ones. Call once after create. */
void job_sup_start(struct job_sup *s);
/* Stop: SIGTERM every trainer (their jobs stay `running` and resume at the next start), close
 * handles; run the loop afterwards, then free. */
void job_sup_close(struct job_sup *s);
void job_sup_free(struct job_sup *s);

/* A job was inserted with status `queued`: start it when its device is free. */
void job_sup_kick(struct job_sup *s);
/* Cancel: returns 0, STORE_ENOTFOUND, or STORE_EEXIST when already finished. */
int job_sup_cancel(struct job_sup *s, const char *id);
/* Pause: a running job's trainer gets SIGUSR1, writes a checkpoint after its current step and
 * exits; the job becomes `paused` (*status "pausing" until then); a queued job is `paused` at
 * once. Returns 0, STORE_ENOTFOUND, STORE_EEXIST when its status (in *status) cannot be
 * paused, or JOB_SUP_ENOPAUSE for a trainer run through a launcher (signals do not reach it). */
#define JOB_SUP_ENOPAUSE (-20)
int job_sup_pause(struct job_sup *s, const char *id, char status[24]);
/* Resume a paused job: queued again, it starts with --resume from its checkpoint when its device
 * is free. Returns 0, STORE_ENOTFOUND or STORE_EEXIST (not paused; *status says what). */
int job_sup_resume(struct job_sup *s, const char *id, char status[24]);
/* Jobs running now. */
int job_sup_running(const struct job_sup *s);

/* Event watchers (SSE): fn(arg, job_id, seq, ended) after each stored event of job_id and once
 * with ended = 1 when it reaches a final status. */
typedef void (*job_sup_watch_fn)(void *arg, const char *job_id, int64_t seq, int ended);
int job_sup_watch(struct job_sup *s, const char *job_id, job_sup_watch_fn fn, void *arg);
void job_sup_unwatch(struct job_sup *s, job_sup_watch_fn fn, void *arg);

#endif
