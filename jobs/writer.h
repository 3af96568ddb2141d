/*
 * jobs/writer.h — the one writer of the daemon's database.
 *
 * The loop thread never waits on SQLite: it queues writes here. One thread runs them in order,
 * each in its own transaction (jobs/store.h job_store_write), and hands each result back to the
 * loop thread (uv_async) where `done` runs. Order is kept, so a job's events are stored in the
 * order they arrived.
 */
#ifndef BD_JOBS_WRITER_H
#define BD_JOBS_WRITER_H

#include <uv.h>

#include "jobs/store.h"

struct job_writer;

typedef int (*job_write_fn)(sqlite3 *db, void *arg);
typedef void (*job_write_done)(void *arg, int status);

/* Start the writer thread for `st` (borrowed) on `loop`. NULL when out of memory. */
struct job_writer *job_writer_create(uv_loop_t *loop, struct job_store *st);
/* Run every queued write, stop the thread, close the async handle (then run the loop once so
 * the close completes) and free. Pending `done` callbacks run before it returns. */
void job_writer_free(struct job_writer *w);

/* Queue fn(db, arg); done(arg, status) follows on the loop thread (done may be NULL; then the
 * writer frees nothing: fn owns arg). Returns 0 or -1 (out of memory: nothing queued). */
int job_writer_submit(struct job_writer *w, job_write_fn fn, job_write_done done, void *arg);

/* Writes queued and not yet done. */
int job_writer_pending(struct job_writer *w);

#endif
