/*
 * store/store.c — see store.h. Migrations are an append-only list of SQL scripts: never edit a
 * shipped one, add the next.
 */
#include "store/store.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct store {
    sqlite3 *rd; /* reader: loop thread only */
    sqlite3 *wr; /* writer: under wr_lock */
    pthread_mutex_t wr_lock;
    sqlite3_stmt *key_find; /* on rd */
    sqlite3_stmt *key_count;
    int version;
};

static const char *const store_migrations[] = {
    /* 1: API keys. */
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  scope TEXT NOT NULL CHECK (scope IN ('admin', 'infer')),"
    "  hash TEXT NOT NULL UNIQUE,"
    "  prefix TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ");",
    /* 2: the distillation service: uploaded files, jobs, their events and checkpoints, models. */
    "CREATE TABLE files ("
    "  id TEXT PRIMARY KEY, filename TEXT NOT NULL, purpose TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, path TEXT NOT NULL,"
    "  task TEXT, rows INTEGER, created_at INTEGER NOT NULL);"
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, spec TEXT NOT NULL,"
    "  method TEXT NOT NULL, model TEXT NOT NULL, training_file TEXT NOT NULL,"
    "  validation_file TEXT, corpus_file TEXT, device TEXT NOT NULL, dir TEXT NOT NULL,"
    "  status TEXT NOT NULL, stage INTEGER NOT NULL DEFAULT 0, stage_name TEXT,"
    "  progress REAL NOT NULL DEFAULT 0, trained_tokens INTEGER NOT NULL DEFAULT 0,"
    "  metrics TEXT, error TEXT, result_model TEXT, activate INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
    "  started_at INTEGER, finished_at INTEGER);"
    "CREATE TABLE job_events ("
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, seq INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,"
    "  PRIMARY KEY (job_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE checkpoints ("
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, stage INTEGER NOT NULL,"
    "  step INTEGER NOT NULL, path TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (job_id, stage, step)) WITHOUT ROWID;"
    "CREATE TABLE models ("
    "  id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, task TEXT NOT NULL,"
    "  labels TEXT, teacher TEXT, job_id TEXT UNIQUE, metrics TEXT,"
    "  status TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0,"
    "  version INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);",
    /* 3: OpenAI parity: checkpoint metrics, a job's result files (JSON array of file ids). */
    ("ALTER TABLE checkpoints ADD COLUMN metrics TEXT;"
     "ALTER TABLE jobs ADD COLUMN result_files TEXT;"),
};

#define N_MIGRATIONS ((int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

const char *store_strerror(int status)
{
    switch (status) {
    case STORE_OK: return "ok";
    case STORE_ENOTFOUND: return "not found";
    case STORE_EEXIST: return "already exists";
    case STORE_EIO: return "database error";
    case STORE_EVERSION: return "database is newer than this program";
    case STORE_ENOMEM: return "out of memory";
    }
    return "unknown error";
}

/* mkdir -p of the directory part of path. */
static int store_mkdirs(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        return 0;
    }
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(dir, 0750) && errno != EEXIST) {
            free(dir);
            return -1;
        }
        *p = '/';
    }
    int rc = (*dir && mkdir(dir, 0750) && errno != EEXIST) ? -1 : 0;
    free(dir);
    return rc;
}

static int store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int store_user_version(sqlite3 *db)
{
    sqlite3_stmt *s;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int store_migrate(struct store *st, const char *path, char *err, size_t errlen)
{
    char msg[512];
    if (store_exec(st->wr, "BEGIN IMMEDIATE", msg, sizeof(msg)))
        goto fail;
    int v = store_user_version(st->wr);
    if (v > N_MIGRATIONS) {
        store_exec(st->wr, "ROLLBACK", msg, sizeof(msg));
        snprintf(err, errlen,
                 "database '%s' has schema version %d, newer than this bitdistill "
                 "(%d): upgrade bitdistill",
                 path, v, N_MIGRATIONS);
        return STORE_EVERSION;
    }
    for (; v < N_MIGRATIONS; v++) {
        char pragma[64];
        if (store_exec(st->wr, store_migrations[v], msg, sizeof(msg))) {
            store_exec(st->wr, "ROLLBACK", NULL, 0);
            snprintf(err, errlen, "database '%s': migration %d failed: %s", path, v + 1, msg);
            return STORE_EIO;
        }
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        if (store_exec(st->wr, pragma, msg, sizeof(msg)))
            goto fail;
    }
    if (store_exec(st->wr, "COMMIT", msg, sizeof(msg)))
        goto fail;
    st->version = v;
    return 0;
fail:
    store_exec(st->wr, "ROLLBACK", NULL, 0);
    snprintf(err, errlen, "database '%s': %s", path, msg);
    return STORE_EIO;
}

static sqlite3 *store_connect(const char *path, int flags, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    char msg[256];
    if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database '%s': %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    if (store_exec(db,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                   "PRAGMA foreign_keys = ON;",
                   msg, sizeof(msg))) {
        snprintf(err, errlen, "database '%s': %s", path, msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&st->wr_lock, NULL);
    if (store_mkdirs(path)) {
        snprintf(err, errlen, "cannot create the directory of '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!(st->wr = store_connect(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errlen)))
        goto fail;
    if (store_migrate(st, path, err, errlen))
        goto fail;
    if (!(st->rd = store_connect(path, SQLITE_OPEN_READWRITE, err, errlen)))
        goto fail;
    if (sqlite3_prepare_v3(st->rd,
                           "SELECT id, name, scope, prefix, created_at, hash FROM api_keys "
                           "WHERE hash = ? AND revoked_at IS NULL",
                           -1, SQLITE_PREPARE_PERSISTENT, &st->key_find, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(st->rd, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", -1,
                           SQLITE_PREPARE_PERSISTENT, &st->key_count, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "database '%s': %s", path, sqlite3_errmsg(st->rd));
        goto fail;
    }
    return st;
fail:
    store_free(st);
    return NULL;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    sqlite3_finalize(st->key_find);
    sqlite3_finalize(st->key_count);
    sqlite3_close(st->rd);
    sqlite3_close(st->wr);
    pthread_mutex_destroy(&st->wr_lock);
    free(st);
}

sqlite3 *store_reader(struct store *st)
{
    return st->rd;
}

int store_write(struct store *st, int (*fn)(sqlite3 *db, void *arg), void *arg)
{
    char *msg = NULL;
    int rc;
    pthread_mutex_lock(&st->wr_lock);
    if (sqlite3_exec(st->wr, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_free(msg);
        pthread_mutex_unlock(&st->wr_lock);
        return STORE_EIO;
    }
    rc = fn(st->wr, arg);
    if (sqlite3_exec(st->wr, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_free(msg);
        sqlite3_exec(st->wr, "ROLLBACK", NULL, NULL, NULL);
        rc = rc ? rc : STORE_EIO;
    }
    pthread_mutex_unlock(&st->wr_lock);
    return rc;
}

int store_schema_version(struct store *st)
{
    return st->version;
}

const char *store_errmsg(struct store *st)
{
    return sqlite3_errmsg(st->wr);
}

int store_key_insert(struct store *st, const struct store_key *key, const char *hash_hex)
{
    sqlite3_stmt *s = NULL;
    int rc;
    pthread_mutex_lock(&st->wr_lock);
    if (sqlite3_prepare_v2(st->wr,
                           "INSERT INTO api_keys (id, name, scope, hash, prefix, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = STORE_EIO;
        goto out;
    }
    sqlite3_bind_text(s, 1, key->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, key->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, hash_hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, key->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, key->created_at);
    rc = sqlite3_step(s);
    rc = rc == SQLITE_DONE ? STORE_OK : (rc == SQLITE_CONSTRAINT) ? STORE_EEXIST : STORE_EIO;
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->wr_lock);
    return rc;
}

int store_key_revoke(struct store *st, const char *id)
{
    sqlite3_stmt *s = NULL;
    int rc;
    pthread_mutex_lock(&st->wr_lock);
    if (sqlite3_prepare_v2(st->wr,
                           "UPDATE api_keys SET revoked_at = strftime('%s','now') "
                           "WHERE id = ? AND revoked_at IS NULL",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = STORE_EIO;
        goto out;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = STORE_EIO;
    else
        rc = sqlite3_changes(st->wr) ? STORE_OK : STORE_ENOTFOUND;
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->wr_lock);
    return rc;
}

int store_key_count(struct store *st)
{
    int n = STORE_EIO;
    sqlite3_reset(st->key_count);
    if (sqlite3_step(st->key_count) == SQLITE_ROW)
        n = sqlite3_column_int(st->key_count, 0);
    sqlite3_reset(st->key_count);
    return n;
}

static void store_key_row(sqlite3_stmt *s, struct store_key *k)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->id, sizeof(k->id), "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(k->name, sizeof(k->name), "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(k->scope, sizeof(k->scope), "%s", (const char *)sqlite3_column_text(s, 2));
    snprintf(k->prefix, sizeof(k->prefix), "%s", (const char *)sqlite3_column_text(s, 3));
    k->created_at = sqlite3_column_int64(s, 4);
}

int store_key_find(struct store *st, const char *hash_hex, struct store_key *key)
{
    int rc = STORE_ENOTFOUND;
    sqlite3_reset(st->key_find);
    sqlite3_bind_text(st->key_find, 1, hash_hex, -1, SQLITE_STATIC);
    int step = sqlite3_step(st->key_find);
    if (step == SQLITE_ROW) {
        const char *stored = (const char *)sqlite3_column_text(st->key_find, 5);
        if (stored && strlen(stored) == 64 && strlen(hash_hex) == 64 &&
            CRYPTO_memcmp(stored, hash_hex, 64) == 0) {
            store_key_row(st->key_find, key);
            rc = STORE_OK;
        }
    } else if (step != SQLITE_DONE) {
        rc = STORE_EIO;
    }
    sqlite3_reset(st->key_find);
    sqlite3_clear_bindings(st->key_find);
    return rc;
}

int store_key_list(struct store *st, int use_writer, struct store_key **keys, size_t *n)
{
    sqlite3 *db = use_writer ? st->wr : st->rd;
    sqlite3_stmt *s = NULL;
    struct store_key *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = STORE_OK, step;

    if (use_writer)
        pthread_mutex_lock(&st->wr_lock);
    if (sqlite3_prepare_v2(db,
                           "SELECT id, name, scope, prefix, created_at FROM api_keys "
                           "WHERE revoked_at IS NULL ORDER BY created_at, rowid",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = STORE_EIO;
        goto out;
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct store_key *na = realloc(arr, ncap * sizeof(*na));
            if (!na) {
                rc = STORE_ENOMEM;
                goto out;
            }
            arr = na;
            cap = ncap;
        }
        store_key_row(s, &arr[cnt++]);
    }
    if (step != SQLITE_DONE)
        rc = STORE_EIO;
out:
    sqlite3_finalize(s);
    if (use_writer)
        pthread_mutex_unlock(&st->wr_lock);
    if (rc) {
        free(arr);
        arr = NULL;
        cnt = 0;
    }
    *keys = arr;
    *n = cnt;
    return rc;
}
