/*
 * store/writer.h — the one writer of the daemon's database.
 *
 * The loop thread never waits on SQLite: it queues writes here. One thread runs them in order,
 * each in its own transaction (store/store.h store_write), and hands each result back to the
 * loop thread (uv_async) where `done` runs. Order is kept, so a job's events are stored in the
 * order they arrived.
 */
#ifndef BD_STORE_WRITER_H
#define BD_STORE_WRITER_H

#include <uv.h>

#include "store/store.h"

struct store_writer;

typedef int (*store_write_fn)(sqlite3 *db, void *arg);
typedef void (*store_write_done)(void *arg, int status);

/* Start the writer thread for `st` (borrowed) on `loop`. NULL when out of memory. */
struct store_writer *store_writer_create(uv_loop_t *loop, struct store *st);
/* Run every queued write, stop the thread, close the async handle (then run the loop once so
 * the close completes) and free. Pending `done` callbacks run before it returns. */
void store_writer_free(struct store_writer *w);

/* Queue fn(db, arg); done(arg, status) follows on the loop thread (done may be NULL; then the
 * writer frees nothing: fn owns arg). Returns 0 or -1 (out of memory: nothing queued). */
int store_writer_submit(struct store_writer *w, store_write_fn fn, store_write_done done,
                        void *arg);

/* Writes queued and not yet done. */
int store_writer_pending(struct store_writer *w);

#endif
