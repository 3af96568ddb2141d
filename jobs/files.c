/*
 * jobs/files.c — see files.h.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/err.h"
#include "jobs/files.h"
#include "train/data.h"
#include "util/sha256.h"

static const char *const detect_order[] = {"sst2", "mnli", "qnli", "cnndm", "chat"};

static int write_all(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    while (len) {
        ssize_t k = write(fd, data, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, errlen, "cannot write '%s': %s", path,
                     k < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(path);
            return -1;
        }
        data += k;
        len -= (size_t)k;
    }
    if (fsync(fd) || close(fd)) {
        snprintf(err, errlen, "cannot sync '%s': %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

/* Is data valid UTF-8 (no NUL)? Returns the 1-based line of the first bad byte, or 0. */
static long utf8_bad_line(const unsigned char *s, size_t n)
{
    long line = 1;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || c == 0 || i + k > n)
            return line;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return line;
        if (c == '\n')
            line++;
        i += k;
    }
    return 0;
}

/* Validate the temporary file at path for purpose/task; fills task_out and rows. */
static int validate(const char *path, const char *purpose, const char *task, const char *data,
                    size_t len, char task_out[32], int64_t *rows, char *err, size_t errlen)
{
    char msg[512];
    long bad = utf8_bad_line((const unsigned char *)data, len);
    if (len == 0) {
        snprintf(err, errlen, "the file is empty");
        return 422;
    }
    if (bad) {
        snprintf(err, errlen, "line %ld is not valid UTF-8 text", bad);
        return 422;
    }
    if (!strcmp(purpose, "corpus")) {
        int64_t lines = 0;
        for (size_t i = 0; i < len; i++)
            lines += data[i] == '\n';
        *rows = lines + (data[len - 1] != '\n');
        task_out[0] = 0;
        return 0;
    }
    const char *const *names = detect_order;
    size_t nnames = sizeof(detect_order) / sizeof(detect_order[0]);
    if (task && *task) {
        names = &task;
        nnames = 1;
    }
    char first_err[512] = "";
    for (size_t i = 0; i < nnames; i++) {
        struct trn_task t;
        struct trn_dataset *ds = NULL;
        if (trn_task_defaults(names[i], &t, msg)) {
            snprintf(err, errlen, "unknown task '%s' (known: sst2, mnli, qnli, cnndm, chat)",
                     names[i]);
            return 400;
        }
        int lrc = trn_dataset_load(path, &t, 0, &ds, msg);
        if (lrc == ENG_ENOMEM) {
            snprintf(err, errlen, "out of memory validating the file");
            return 500;
        }
        if (lrc == 0 && ds->n > 0) {
            *rows = (int64_t)ds->n;
            snprintf(task_out, 32, "%s", names[i]);
            trn_dataset_free(ds);
            return 0;
        }
        if (ds && ds->n == 0)
            snprintf(msg, sizeof(msg), "no examples");
        /* The loader names "PATH:LINE: problem"; the path is our temporary file: say "line". */
        size_t pl = strlen(path);
        if (!strncmp(msg, path, pl) && msg[pl] == ':') {
            char tail[500];
            snprintf(tail, sizeof(tail), "%.490s", msg + pl + 1);
            snprintf(msg, sizeof(msg), "line %s", tail);
        }
        trn_dataset_free(ds);
        /* a file of chat records is judged as chat: its first problem is the useful one */
        int chat_like = !strcmp(names[i], "chat") && memmem(data, len, "\"messages\"", 10);
        if (!first_err[0] || chat_like)
            snprintf(first_err, sizeof(first_err), "%s", msg);
        if (chat_like && nnames > 1) {
            snprintf(err, errlen, "not a valid chat dataset: %s", first_err);
            return 422;
        }
    }
    if (nnames == 1)
        snprintf(err, errlen, "not a valid %s dataset: %s", task, first_err);
    else
        snprintf(err, errlen,
                 "not a dataset of any known task (sst2, mnli, qnli, cnndm, chat); "
                 "as sst2: %s",
                 first_err);
    return 422;
}

struct file_ins {
    const struct job_file *f;
};

static int file_insert(sqlite3 *db, void *arg)
{
    const struct job_file *f = ((struct file_ins *)arg)->f;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO files (id, filename, purpose, bytes, sha256, path, task, "
                           "rows, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, f->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, f->filename, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, f->purpose, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, f->bytes);
    sqlite3_bind_text(s, 5, f->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, f->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, f->task, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, f->rows);
    sqlite3_bind_int64(s, 9, f->created_at);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    return rc;
}

/* Store data as a new file (job_file_store's steps); `generated` files (the daemon's own) are
 * not validated: their rows are their lines. */
static int file_store(struct store *st, const char *data_dir, const char *filename,
                      const char *purpose, const char *task, const char *data, size_t len,
                      int generated, struct job_file *out, char *err, size_t errlen)
{
    unsigned char rnd[12];
    char dir[960], tmp[1100];
    struct job_file f;
    int rc;

    memset(&f, 0, sizeof(f));
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "no entropy for an id");
        return 500;
    }
    int n = snprintf(f.id, sizeof(f.id), "file-");
    for (int i = 0; i < 12; i++)
        n += snprintf(f.id + n, sizeof(f.id) - n, "%02x", rnd[i]);
    snprintf(f.filename, sizeof(f.filename), "%s", filename && *filename ? filename : f.id);
    snprintf(f.purpose, sizeof(f.purpose), "%s", purpose);
    snprintf(dir, sizeof(dir), "%.900s/files", data_dir);
    if (mkdir(dir, 0750) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
        return 500;
    }
    /* the declared name's format suffix stays on the stored file: readers go by it */
    static const char *const fmts[] = {".tsv", ".jsonl", ".json", ".txt"};
    const char *ext = "", *dot = filename ? strrchr(filename, '.') : NULL;
    for (size_t i = 0; dot && i < sizeof(fmts) / sizeof(fmts[0]); i++)
        if (!strcmp(dot, fmts[i]))
            ext = fmts[i];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp%s", dir, f.id, ext);
    snprintf(f.path, sizeof(f.path), "%s/%s%s", dir, f.id, ext);
    if (write_all(tmp, data, len, err, errlen))
        return 500;
    if (generated) {
        for (size_t i = 0; i < len; i++)
            f.rows += data[i] == '\n';
    } else if ((rc = validate(tmp, purpose, task, data, len, f.task, &f.rows, err, errlen))) {
        unlink(tmp);
        return rc;
    }
    f.bytes = (int64_t)len;
    util_sha256_hex(data, len, f.sha256);
    f.created_at = (int64_t)time(NULL);
    if (rename(tmp, f.path)) {
        snprintf(err, errlen, "cannot move the upload into place: %s", strerror(errno));
        unlink(tmp);
        return 500;
    }
    struct file_ins ins = {&f};
    if (store_write(st, file_insert, &ins)) {
        snprintf(err, errlen, "cannot record the file: %s", store_errmsg(st));
        unlink(f.path);
        return 500;
    }
    *out = f;
    return 0;
}

int job_file_store(struct store *st, const char *data_dir, const char *filename,
                   const char *purpose, const char *task, const char *data, size_t len,
                   struct job_file *out, char *err, size_t errlen)
{
    if (strcmp(purpose, "fine-tune") && strcmp(purpose, "corpus")) {
        snprintf(err, errlen, "purpose must be \"fine-tune\" or \"corpus\", not \"%.64s\"",
                 purpose);
        return 400;
    }
    if (task && *task && !strcmp(purpose, "corpus")) {
        snprintf(err, errlen, "a corpus has no task");
        return 400;
    }
    return file_store(st, data_dir, filename, purpose, task, data, len, 0, out, err, errlen);
}

int job_file_store_result(struct store *st, const char *data_dir, const char *filename,
                          const char *data, size_t len, struct job_file *out, char *err,
                          size_t errlen)
{
    return file_store(st, data_dir, filename, "fine-tune-results", NULL, data, len, 1, out, err,
                      errlen);
}

static void file_row(sqlite3_stmt *s, struct job_file *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->id, sizeof(f->id), "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(f->filename, sizeof(f->filename), "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(f->purpose, sizeof(f->purpose), "%s", (const char *)sqlite3_column_text(s, 2));
    f->bytes = sqlite3_column_int64(s, 3);
    snprintf(f->sha256, sizeof(f->sha256), "%s", (const char *)sqlite3_column_text(s, 4));
    snprintf(f->path, sizeof(f->path), "%s", (const char *)sqlite3_column_text(s, 5));
    if (sqlite3_column_text(s, 6))
        snprintf(f->task, sizeof(f->task), "%s", (const char *)sqlite3_column_text(s, 6));
    f->rows = sqlite3_column_int64(s, 7);
    f->created_at = sqlite3_column_int64(s, 8);
}

#define FILE_COLS "id, filename, purpose, bytes, sha256, path, task, rows, created_at"

int job_file_sweep(struct store *st, const char *data_dir)
{
    char dir[1024], path[1400];
    struct job_file f;
    int removed = 0;
    snprintf(dir, sizeof(dir), "%.900s/files", data_dir);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        /* stored files are ID or ID.EXT, uploads in flight .ID.tmp or .ID.tmp.EXT */
        const char *n = e->d_name;
        char id[64];
        snprintf(id, sizeof(id), "%.*s", (int)strcspn(n, "."), n);
        int tmp = n[0] == '.' && !strncmp(n + 1, "file-", 5) && strstr(n, ".tmp");
        int orphan = !strncmp(n, "file-", 5) && job_file_get(st, id, &f) == STORE_ENOTFOUND;
        if (!tmp && !orphan)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, n);
        removed += unlink(path) == 0;
    }
    closedir(d);
    return removed;
}

int job_file_get(struct store *st, const char *id, struct job_file *out)
{
    sqlite3_stmt *s;
    int rc = STORE_ENOTFOUND;
    if (sqlite3_prepare_v2(store_reader(st), "SELECT " FILE_COLS " FROM files WHERE id = ?", -1, &s,
                           NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        file_row(s, out);
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

json_t *job_file_json(const struct job_file *f)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s?, s:I}", "id", f->id, "object",
                     "file", "bytes", (json_int_t)f->bytes, "created_at", (json_int_t)f->created_at,
                     "filename", f->filename, "purpose", f->purpose, "sha256", f->sha256, "task",
                     f->task[0] ? f->task : NULL, "rows", (json_int_t)f->rows);
}

json_t *job_file_list(struct store *st)
{
    sqlite3_stmt *s;
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(store_reader(st),
                           "SELECT " FILE_COLS " FROM files ORDER BY created_at DESC, id", -1, &s,
                           NULL) != SQLITE_OK)
        return arr;
    while (sqlite3_step(s) == SQLITE_ROW) {
        struct job_file f;
        file_row(s, &f);
        json_array_append_new(arr, job_file_json(&f));
    }
    sqlite3_finalize(s);
    return arr;
}

struct file_del {
    const char *id;
    char *job;
    char path[1024];
};

static int file_delete_tx(sqlite3 *db, void *arg)
{
    struct file_del *d = arg;
    sqlite3_stmt *s;
    int rc = STORE_ENOTFOUND;
    if (sqlite3_prepare_v2(db,
                           "SELECT id FROM jobs WHERE status NOT IN ('succeeded','failed',"
                           "'cancelled') AND (training_file = ?1 OR validation_file = ?1 OR "
                           "corpus_file = ?1) LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, d->id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        snprintf(d->job, 48, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        return STORE_EEXIST;
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(db, "DELETE FROM files WHERE id = ? RETURNING path", -1, &s, NULL) !=
        SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, d->id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        snprintf(d->path, sizeof(d->path), "%s", (const char *)sqlite3_column_text(s, 0));
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

int job_file_delete(struct store *st, const char *id, char job[48])
{
    struct file_del d = {id, job, ""};
    int rc = store_write(st, file_delete_tx, &d);
    if (rc == 0)
        unlink(d.path); /* the row is gone first: a crash here leaves an orphan file, not a row
                           pointing nowhere */
    return rc;
}
