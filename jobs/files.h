/*
 * jobs/files.h — uploaded datasets and corpora: stored under DATA_DIR/files/<id>, described in
 * the `files` table, validated for their purpose before they are accepted.
 *
 * Purposes: "fine-tune" (a task dataset: JSONL/JSON/TSV/SST-2 sentence format, see
 * train/data.h; with `task` it must load as that task — labels included — or it is refused
 * naming the line; without, the first of sst2, mnli, qnli, cnndm, chat it loads as is recorded) and
 * "corpus" (plain text or JSONL {"text"}, valid UTF-8). Content is written to a temporary file,
 * fsynced, validated, then renamed into place and recorded, so a crash or a full disk never
 * leaves a half file behind a row.
 */
#ifndef BD_JOBS_FILES_H
#define BD_JOBS_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct job_file {
    char id[48]; /* "file-" + 24 hex */
    char filename[256];
    char purpose[24]; /* "fine-tune", "corpus" or "fine-tune-results" (made by a job) */
    char task[32];    /* detected or declared task ("" for corpora) */
    int64_t bytes;
    char sha256[65];
    char path[1024];
    int64_t rows; /* examples (datasets) or lines (corpora) */
    int64_t created_at;
};

/*
 * Store an upload (worker thread: writes files and the database). Returns 0 and fills *out, or
 * an HTTP-like status with the reason in err: 400 (bad purpose/task), 422 (content does not
 * validate; names the line), 500 (I/O, e.g. disk full: names the error).
 */
int job_file_store(struct store *st, const char *data_dir, const char *filename,
                   const char *purpose, const char *task, const char *data, size_t len,
                   struct job_file *out, char *err, size_t errlen);

/*
 * Store a file the daemon made (a job's metrics CSV) with purpose "fine-tune-results", unvalidated
 * (worker thread). Returns 0 and fills *out, or 500 with the reason in err.
 */
int job_file_store_result(struct store *st, const char *data_dir, const char *filename,
                          const char *data, size_t len, struct job_file *out, char *err,
                          size_t errlen);

/*
 * At start-up, before serving: remove what a crash can leave in DATA_DIR/files, temporary
 * uploads (".file-*.tmp") and files renamed into place whose row was never written. Returns how
 * many were removed.
 */
int job_file_sweep(struct store *st, const char *data_dir);

/* Reader (loop thread): one file by id. 0 or STORE_ENOTFOUND. */
int job_file_get(struct store *st, const char *id, struct job_file *out);
/* Reader: every file, newest first, as OpenAI-shaped JSON objects (new reference). */
json_t *job_file_list(struct store *st);
json_t *job_file_json(const struct job_file *f);

/*
 * Writer (worker thread): delete a file unless a job that has not finished uses it.
 * Returns 0, STORE_ENOTFOUND, or STORE_EEXIST when in use (*job gets the job id).
 */
int job_file_delete(struct store *st, const char *id, char job[48]);

#endif
