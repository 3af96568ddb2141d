/*
 * jobs/jobrec.c — see jobrec.h.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/jobrec.h"

static void cpy(char *dst, size_t n, const unsigned char *src)
{
    snprintf(dst, n, "%s", src ? (const char *)src : "");
}

static char *dup_col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

void job_rec_release(struct job_rec *r)
{
    free(r->spec);
    free(r->metrics);
    free(r->error);
    free(r->result_files);
    r->spec = r->metrics = r->error = r->result_files = NULL;
}

int job_rec_terminal(const char *status)
{
    return !strcmp(status, "succeeded") || !strcmp(status, "failed") ||
           !strcmp(status, "cancelled");
}

#define JOB_COLS                                                                                   \
    "id, seq, spec, method, model, training_file, validation_file, corpus_file, device, dir, "     \
    "status, stage, stage_name, progress, trained_tokens, metrics, error, result_model, "          \
    "activate, attempts, created_at, started_at, finished_at, result_files"

static void job_row(sqlite3_stmt *s, struct job_rec *r)
{
    memset(r, 0, sizeof(*r));
    cpy(r->id, sizeof(r->id), sqlite3_column_text(s, 0));
    r->seq = sqlite3_column_int64(s, 1);
    r->spec = dup_col(s, 2);
    cpy(r->method, sizeof(r->method), sqlite3_column_text(s, 3));
    cpy(r->model, sizeof(r->model), sqlite3_column_text(s, 4));
    cpy(r->training_file, sizeof(r->training_file), sqlite3_column_text(s, 5));
    cpy(r->validation_file, sizeof(r->validation_file), sqlite3_column_text(s, 6));
    cpy(r->corpus_file, sizeof(r->corpus_file), sqlite3_column_text(s, 7));
    cpy(r->device, sizeof(r->device), sqlite3_column_text(s, 8));
    cpy(r->dir, sizeof(r->dir), sqlite3_column_text(s, 9));
    cpy(r->status, sizeof(r->status), sqlite3_column_text(s, 10));
    r->stage = sqlite3_column_int(s, 11);
    cpy(r->stage_name, sizeof(r->stage_name), sqlite3_column_text(s, 12));
    r->progress = sqlite3_column_double(s, 13);
    r->trained_tokens = sqlite3_column_int64(s, 14);
    r->metrics = dup_col(s, 15);
    r->error = dup_col(s, 16);
    cpy(r->result_model, sizeof(r->result_model), sqlite3_column_text(s, 17));
    r->activate = sqlite3_column_int(s, 18);
    r->attempts = sqlite3_column_int(s, 19);
    r->created_at = sqlite3_column_int64(s, 20);
    r->started_at = sqlite3_column_int64(s, 21);
    r->finished_at = sqlite3_column_int64(s, 22);
    r->result_files = dup_col(s, 23);
}

int job_rec_get(struct store *st, const char *id, struct job_rec *r)
{
    sqlite3_stmt *s;
    int rc = STORE_ENOTFOUND;
    if (sqlite3_prepare_v2(store_reader(st), "SELECT " JOB_COLS " FROM jobs WHERE id = ?", -1, &s,
                           NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        job_row(s, r);
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

int job_rec_ids_by_status(struct store *st, const char *status, char (*ids)[48], int max)
{
    sqlite3_stmt *s;
    int n = 0;
    if (sqlite3_prepare_v2(store_reader(st), "SELECT id FROM jobs WHERE status = ? ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, status, -1, SQLITE_STATIC);
    while (n < max && sqlite3_step(s) == SQLITE_ROW)
        cpy(ids[n++], 48, sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return n;
}

static const char *stage_label(int stage)
{
    static const char *const names[] = {"teacher_sft", "subln", "continue_pretrain", "distill",
                                        "eval_export"};
    return stage >= 0 && stage <= 4 ? names[stage] : "queued";
}

json_t *job_rec_json(const struct job_rec *r)
{
    json_error_t e;
    json_t *spec = r->spec ? json_loads(r->spec, 0, &e) : NULL;
    json_t *metrics = r->metrics ? json_loads(r->metrics, 0, &e) : NULL;
    json_t *files = r->result_files ? json_loads(r->result_files, 0, &e) : NULL;
    json_t *err =
        r->error ? json_pack("{s:s, s:s, s:n}", "message", r->error, "code", "job_failed", "param")
                 : json_null();
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:O?, s:s, s:s, s:s?, s:s?, s:s, s:s, s:{s:i, s:s, s:f}, s:I, "
        "s:o, s:o, s:s?, s:O?, s:O?, s:I, s:i}",
        "id", r->id, "object", "fine_tuning.job", "model", r->model, "created_at",
        (json_int_t)r->created_at, "method", spec ? json_object_get(spec, "method") : NULL,
        "status", r->status, "training_file", r->training_file, "validation_file",
        r->validation_file[0] ? r->validation_file : NULL, "corpus_file",
        r->corpus_file[0] ? r->corpus_file : NULL, "device", r->device, "stage_name",
        r->stage_name[0] ? r->stage_name : stage_label(r->stage), "stage", "index", r->stage,
        "name", r->stage_name[0] ? r->stage_name : stage_label(r->stage), "fraction_done",
        r->progress, "trained_tokens", (json_int_t)r->trained_tokens, "error", err, "metrics",
        metrics ? metrics : json_null(), "fine_tuned_model",
        r->result_model[0] ? r->result_model : NULL, "hyperparameters",
        spec ? json_object_get(spec, "hyperparameters") : NULL, "seed",
        spec ? json_object_get(spec, "seed") : NULL, "finished_at", (json_int_t)r->finished_at,
        "attempts", r->attempts);
    if (o) {
        json_t *meta = spec ? json_object_get(spec, "metadata") : NULL;
        json_object_set(o, "metadata", meta ? meta : json_null());
        json_object_set_new(o, "result_files",
                            json_is_array(files) ? json_incref(files) : json_array());
        json_t *sfx = spec ? json_object_get(spec, "suffix") : NULL;
        json_object_set(o, "user_provided_suffix", sfx ? sfx : json_null());
    }
    json_decref(files);
    if (o && r->started_at)
        json_object_set_new(o, "started_at", json_integer(r->started_at));
    if (o && !r->finished_at)
        json_object_set_new(o, "finished_at", json_null());
    /* Estimated finish: time so far over the fraction of all stages done. */
    if (o && !strcmp(r->status, "running") && r->started_at) {
        double total = (r->stage + r->progress) / 5.0;
        if (total > 0.02)
            json_object_set_new(
                o, "estimated_finish",
                json_integer(r->started_at + (json_int_t)((time(NULL) - r->started_at) / total)));
    }
    json_decref(spec);
    return o;
}

int job_rec_meta_match(const struct job_rec *r, const json_t *meta)
{
    json_error_t e;
    json_t *spec = r->spec ? json_loads(r->spec, 0, &e) : NULL;
    json_t *have = json_object_get(spec, "metadata");
    int match = 1;
    if (json_is_null(meta)) {
        match = !json_object_size(have);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)meta, k, v)
        {
            const char *hv = json_string_value(json_object_get(have, k));
            match &= hv && json_is_string(v) && !strcmp(hv, json_string_value(v));
        }
    }
    json_decref(spec);
    return match;
}

json_t *job_rec_list_json(struct store *st, const char *after, int limit, const json_t *meta,
                          int *has_more)
{
    sqlite3_stmt *s;
    json_t *arr = json_array();
    *has_more = 0;
    /* with a metadata filter every older row is a candidate: it is matched here, not in SQL */
    const char *sql = after ? "SELECT " JOB_COLS " FROM jobs WHERE seq < (SELECT seq FROM jobs "
                              "WHERE id = ?1) ORDER BY seq DESC LIMIT ?2"
                            : "SELECT " JOB_COLS " FROM jobs ORDER BY seq DESC LIMIT ?2";
    if (sqlite3_prepare_v2(store_reader(st), sql, -1, &s, NULL) != SQLITE_OK)
        return arr;
    if (after)
        sqlite3_bind_text(s, 1, after, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, meta ? -1 : limit + 1);
    int n = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        struct job_rec r;
        job_row(s, &r);
        if (meta && !job_rec_meta_match(&r, meta)) {
            job_rec_release(&r);
            continue;
        }
        if (n++ == limit) {
            *has_more = 1;
            job_rec_release(&r);
            break;
        }
        json_array_append_new(arr, job_rec_json(&r));
        job_rec_release(&r);
    }
    sqlite3_finalize(s);
    return arr;
}

int job_rec_insert_tx(sqlite3 *db, void *arg)
{
    struct job_rec *r = arg;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO jobs (id, seq, spec, method, model, training_file, "
                           "validation_file, corpus_file, device, dir, status, activate, "
                           "created_at) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), "
                           "?, ?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->spec, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, r->training_file, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, r->validation_file, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, r->corpus_file, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, r->device, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, r->dir, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 10, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 11, r->activate);
    sqlite3_bind_int64(s, 12, r->created_at);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

int job_status_tx(sqlite3 *db, void *arg)
{
    struct job_status_op *op = arg;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(
            db,
            "UPDATE jobs SET status = ?2, error = COALESCE(?3, error), "
            "result_model = COALESCE(NULLIF(?4, ''), result_model), "
            "result_files = COALESCE(?8, result_files), "
            "started_at = CASE WHEN ?5 THEN strftime('%s','now') ELSE started_at END, "
            "finished_at = CASE WHEN ?6 THEN strftime('%s','now') ELSE finished_at END, "
            "attempts = attempts + ?7 WHERE id = ?1",
            -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, op->status, -1, SQLITE_STATIC);
    if (op->error)
        sqlite3_bind_text(s, 3, op->error, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, op->result_model, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, op->set_started);
    sqlite3_bind_int(s, 6, op->set_finished);
    sqlite3_bind_int(s, 7, op->bump_attempts);
    if (op->result_files)
        sqlite3_bind_text(s, 8, op->result_files, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

int job_event_tx(sqlite3 *db, void *arg)
{
    struct job_event_op *op = arg;
    sqlite3_stmt *s;
    int rc = 0;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO job_events (job_id, seq, created_at, type, data) VALUES "
                           "(?, ?, strftime('%s','now'), ?, ?)",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, op->seq);
    sqlite3_bind_text(s, 3, op->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, op->data, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = STORE_EIO;
    sqlite3_finalize(s);
    if (rc)
        return rc;
    if (sqlite3_prepare_v2(db,
                           "UPDATE jobs SET stage = CASE WHEN ?2 >= 0 THEN ?2 ELSE stage END, "
                           "stage_name = COALESCE(NULLIF(?3, ''), stage_name), "
                           "progress = CASE WHEN ?4 >= 0 THEN ?4 ELSE progress END, "
                           "trained_tokens = CASE WHEN ?5 >= 0 THEN ?5 ELSE trained_tokens END, "
                           "metrics = CASE WHEN ?6 THEN ?7 ELSE metrics END WHERE id = ?1",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, op->stage);
    sqlite3_bind_text(s, 3, op->stage_name, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, op->progress);
    sqlite3_bind_int64(s, 5, op->tokens);
    sqlite3_bind_int(s, 6, op->set_metrics);
    sqlite3_bind_text(s, 7, op->data, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = STORE_EIO;
    sqlite3_finalize(s);
    if (rc || !op->ckpt_path[0])
        return rc;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO checkpoints (job_id, stage, step, path, "
                           "created_at, metrics) VALUES (?, ?, ?, ?, strftime('%s','now'), ?)",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, op->ckpt_stage);
    sqlite3_bind_int64(s, 3, op->ckpt_step);
    sqlite3_bind_text(s, 4, op->ckpt_path, -1, SQLITE_STATIC);
    if (op->ckpt_metrics)
        sqlite3_bind_text(s, 5, op->ckpt_metrics, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

int64_t job_events_max_seq(struct store *st, const char *id)
{
    sqlite3_stmt *s;
    int64_t n = 0;
    if (sqlite3_prepare_v2(store_reader(st),
                           "SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id = ?", -1, &s,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

json_t *job_events_json(struct store *st, const char *id, int64_t after, int limit, int64_t *last)
{
    sqlite3_stmt *s;
    json_t *arr = json_array();
    *last = after;
    if (sqlite3_prepare_v2(store_reader(st),
                           "SELECT seq, created_at, type, data FROM job_events WHERE job_id = ? "
                           "AND seq > ? ORDER BY seq LIMIT ?",
                           -1, &s, NULL) != SQLITE_OK)
        return arr;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    while (sqlite3_step(s) == SQLITE_ROW) {
        json_error_t e;
        json_t *data = json_loads((const char *)sqlite3_column_text(s, 3), 0, &e);
        const char *type = (const char *)sqlite3_column_text(s, 2);
        const char *msg = json_string_value(json_object_get(data, "message"));
        *last = sqlite3_column_int64(s, 0);
        char text[160];
        if (!msg) {
            snprintf(text, sizeof(text), "%s", type);
            msg = text;
        }
        char eid[96];
        snprintf(eid, sizeof(eid), "ftevent-%.40s-%lld", strncmp(id, "ftjob-", 6) ? id : id + 6,
                 (long long)*last);
        json_array_append_new(arr,
                              json_pack("{s:s, s:I, s:s, s:I, s:s, s:s, s:s, s:o}", "id", eid,
                                        "seq", (json_int_t)*last, "object", "fine_tuning.job.event",
                                        "created_at", (json_int_t)sqlite3_column_int64(s, 1),
                                        "level", !strcmp(type, "error") ? "error" : "info", "type",
                                        type, "message", msg, "data", data ? data : json_null()));
    }
    sqlite3_finalize(s);
    return arr;
}

void job_checkpoint_id(const char *job_id, int stage, int64_t step, char out[80])
{
    snprintf(out, 80, "ftckpt-%.40s-%d-%lld", strncmp(job_id, "ftjob-", 6) ? job_id : job_id + 6,
             stage, (long long)step);
}

json_t *job_checkpoints_json(struct store *st, const char *id, const char *model, const char *after,
                             int limit, int *has_more)
{
    sqlite3_stmt *s;
    int astage = INT32_MAX, n = 0;
    long long astep = INT64_MAX;
    char want[80];
    *has_more = 0;
    if (after) { /* the cursor must be one of this job's checkpoint ids */
        const char *p = strrchr(after, '-');
        const char *q = p ? p - 1 : NULL;
        while (q && q > after && *q != '-')
            q--;
        if (!p || !q || sscanf(q, "-%d-%lld", &astage, &astep) != 2)
            return NULL;
        job_checkpoint_id(id, astage, astep, want);
        if (strcmp(want, after))
            return NULL;
    }
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(store_reader(st),
                           "SELECT stage, step, path, created_at, metrics FROM checkpoints WHERE "
                           "job_id = ?1 AND (stage < ?2 OR (stage = ?2 AND step < ?3)) ORDER BY "
                           "stage DESC, step DESC LIMIT ?4",
                           -1, &s, NULL) != SQLITE_OK)
        return arr;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, astage);
    sqlite3_bind_int64(s, 3, astep);
    sqlite3_bind_int(s, 4, limit + 1);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (n++ == limit) {
            *has_more = 1;
            break;
        }
        int stage = sqlite3_column_int(s, 0);
        int64_t step = sqlite3_column_int64(s, 1);
        char cid[80], name[300];
        json_error_t e;
        const unsigned char *mt = sqlite3_column_text(s, 4);
        json_t *m = mt ? json_loads((const char *)mt, 0, &e) : NULL;
        if (!json_is_object(m)) {
            json_decref(m);
            m = json_pack("{s:I}", "step", (json_int_t)step);
        }
        job_checkpoint_id(id, stage, step, cid);
        snprintf(name, sizeof(name), "%s:ckpt-%d-%lld", model, stage, (long long)step);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s, s:I, s:o, s:s, s:i, s:s}",
                                             "object", "fine_tuning.job.checkpoint", "id", cid,
                                             "created_at", (json_int_t)sqlite3_column_int64(s, 3),
                                             "fine_tuned_model_checkpoint", name, "step_number",
                                             (json_int_t)step, "metrics", m, "fine_tuning_job_id",
                                             id, "stage", stage, "path",
                                             (const char *)sqlite3_column_text(s, 2)));
    }
    sqlite3_finalize(s);
    return arr;
}

/* ---- models --------------------------------------------------------------------------------- */

void job_model_release(struct job_model *m)
{
    free(m->metrics);
    m->metrics = NULL;
}

#define MODEL_COLS                                                                                 \
    "id, path, sha256, task, job_id, metrics, status, active, version, bytes, created_at"

static void model_row(sqlite3_stmt *s, struct job_model *m)
{
    memset(m, 0, sizeof(*m));
    cpy(m->id, sizeof(m->id), sqlite3_column_text(s, 0));
    cpy(m->path, sizeof(m->path), sqlite3_column_text(s, 1));
    cpy(m->sha256, sizeof(m->sha256), sqlite3_column_text(s, 2));
    cpy(m->task, sizeof(m->task), sqlite3_column_text(s, 3));
    cpy(m->job_id, sizeof(m->job_id), sqlite3_column_text(s, 4));
    m->metrics = dup_col(s, 5);
    cpy(m->status, sizeof(m->status), sqlite3_column_text(s, 6));
    m->active = sqlite3_column_int(s, 7);
    m->version = sqlite3_column_int(s, 8);
    m->bytes = sqlite3_column_int64(s, 9);
    m->created_at = sqlite3_column_int64(s, 10);
}

int job_model_insert_tx(sqlite3 *db, void *arg)
{
    struct job_model *m = arg;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO models (id, path, sha256, task, job_id, metrics, status, "
                           "bytes, created_at) VALUES (?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, "
                           "strftime('%s','now')) ON CONFLICT DO NOTHING",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, m->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, m->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, m->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, m->task, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, m->job_id, -1, SQLITE_STATIC);
    if (m->metrics)
        sqlite3_bind_text(s, 6, m->metrics, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, m->status[0] ? m->status : "unloaded", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, m->bytes);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

int job_model_activate_tx(sqlite3 *db, void *arg)
{
    struct job_model *m = arg;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "UPDATE models SET active = (id = ?1), version = CASE WHEN id = ?1 "
                           "THEN ?3 ELSE version END, status = CASE WHEN id = ?1 THEN 'loaded' "
                           "ELSE status END WHERE task = ?2",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, m->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, m->task, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, m->version);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

int job_model_delete_tx(sqlite3 *db, void *arg)
{
    struct job_model *m = arg;
    sqlite3_stmt *s;
    int rc = STORE_ENOTFOUND;
    if (sqlite3_prepare_v2(db, "SELECT active FROM models WHERE id = ?", -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, m->id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        rc = sqlite3_column_int(s, 0) ? STORE_EEXIST : 0;
    sqlite3_finalize(s);
    if (rc)
        return rc;
    if (sqlite3_prepare_v2(db, "DELETE FROM models WHERE id = ?", -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, m->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

int job_model_get(struct store *st, const char *id, struct job_model *m)
{
    sqlite3_stmt *s;
    int rc = STORE_ENOTFOUND;
    if (sqlite3_prepare_v2(store_reader(st), "SELECT " MODEL_COLS " FROM models WHERE id = ?", -1,
                           &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        model_row(s, m);
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

int job_model_list(struct store *st, struct job_model **out, int *n)
{
    sqlite3_stmt *s;
    int cap = 0;
    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(store_reader(st),
                           "SELECT " MODEL_COLS " FROM models ORDER BY created_at, id", -1, &s,
                           NULL) != SQLITE_OK)
        return STORE_EIO;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct job_model *nm = realloc(*out, (size_t)cap * sizeof(*nm));
            if (!nm)
                break;
            *out = nm;
        }
        model_row(s, &(*out)[(*n)++]);
    }
    sqlite3_finalize(s);
    return 0;
}
