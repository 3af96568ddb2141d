/*
 * api/files.c — uploads (admin scope), OpenAI's shape:
 *   POST   /v1/files           multipart/form-data (fields `file`, `purpose`, optional `task`)
 *                              or a raw body with ?purpose=...&filename=...&task=...
 *                              -> 201 {"id","object":"file","bytes","created_at","filename",
 *                                      "purpose","sha256","task","rows"}
 *   GET    /v1/files           {"object":"list","data":[...]}
 *   GET    /v1/files/{id}
 *   GET    /v1/files/{id}/content   the stored bytes (uploads, and jobs' result files)
 *   DELETE /v1/files/{id}      {"id","object":"file","deleted":true}; 409 while a job uses it
 * Storing and validating run on a worker thread (jobs/files.h); bad content is refused with 422
 * naming the line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "jobs/files.h"

struct part {
    const char *data;
    size_t len;
    char filename[256];
};

/* Find form field `name` in a multipart body. Returns 0 or -1. */
static int multipart_field(const char *body, size_t len, const char *boundary, const char *name,
                           struct part *p)
{
    char delim[256];
    int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
    const char *end = body + len, *cur = memmem(body, len, delim, (size_t)dl);
    while (cur) {
        cur += dl;
        if (end - cur >= 2 && cur[0] == '-' && cur[1] == '-')
            return -1; /* closing delimiter */
        const char *hdr_end = memmem(cur, (size_t)(end - cur), "\r\n\r\n", 4);
        if (!hdr_end)
            return -1;
        const char *data = hdr_end + 4;
        char mdelim[260];
        int ml = snprintf(mdelim, sizeof(mdelim), "\r\n--%s", boundary);
        const char *next = memmem(data, (size_t)(end - data), mdelim, (size_t)ml);
        if (!next)
            return -1;
        /* Content-Disposition: form-data; name="x"; filename="y" */
        char hdr[1024];
        size_t hl =
            (size_t)(hdr_end - cur) < sizeof(hdr) - 1 ? (size_t)(hdr_end - cur) : sizeof(hdr) - 1;
        memcpy(hdr, cur, hl);
        hdr[hl] = 0;
        char want[160];
        snprintf(want, sizeof(want), "name=\"%s\"", name);
        if (strcasestr(hdr, "content-disposition") && strstr(hdr, want)) {
            p->data = data;
            p->len = (size_t)(next - data);
            p->filename[0] = 0;
            const char *fn = strstr(hdr, "filename=\"");
            if (fn) {
                fn += 10;
                const char *q = strchr(fn, '"');
                size_t fl = q ? (size_t)(q - fn) : 0;
                if (fl >= sizeof(p->filename))
                    fl = sizeof(p->filename) - 1;
                memcpy(p->filename, fn, fl);
                p->filename[fl] = 0;
            }
            return 0;
        }
        cur = next + 2;
    }
    return -1;
}

struct upload {
    struct api_ctx *ctx;
    const char *data; /* borrowed from the request body (the request is referenced) */
    size_t len;
    char filename[256], purpose[32], task[32];
    struct job_file file;
    int status;
    char err[600];
};

static void upload_work(void *arg)
{
    struct upload *u = arg;
    u->status = job_file_store(u->ctx->store, u->ctx->data_dir, u->filename, u->purpose, u->task,
                               u->data, u->len, &u->file, u->err, sizeof(u->err));
}

static void upload_done(struct srv_req *req, void *arg, struct api_ctx *ctx)
{
    struct upload *u = arg;
    (void)ctx;
    if (u->status)
        api_error(req, u->status, u->err, u->status == 422 ? "file" : NULL,
                  u->status == 422 ? "invalid_file" : NULL);
    else
        srv_res_json(req, 201, job_file_json(&u->file));
    free(u);
}

static void files_create(struct srv_req *req, struct api_ctx *ctx)
{
    size_t len;
    const char *body = srv_req_body(req, &len);
    const char *ctype = srv_req_header(req, "Content-Type");
    struct upload *u = calloc(1, sizeof(*u));
    char tmp[256];
    if (!u) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    u->ctx = ctx;
    if (ctype && !strncasecmp(ctype, "multipart/form-data", 19)) {
        const char *b = strcasestr(ctype, "boundary=");
        char boundary[200];
        if (!b) {
            free(u);
            api_error(req, 400, "multipart/form-data without a boundary", NULL,
                      "invalid_multipart");
            return;
        }
        b += 9;
        size_t bl = strcspn(b, ";");
        if (*b == '"') {
            b++;
            bl = strcspn(b, "\"");
        }
        snprintf(boundary, sizeof(boundary), "%.*s", (int)bl, b);
        struct part file, purpose, task;
        if (multipart_field(body, len, boundary, "file", &file)) {
            free(u);
            api_error(req, 400, "the form has no 'file' field", "file", "missing_file");
            return;
        }
        if (multipart_field(body, len, boundary, "purpose", &purpose) || purpose.len >= 32) {
            free(u);
            api_error(req, 400, "the form needs a 'purpose' field (\"fine-tune\" or \"corpus\")",
                      "purpose", "missing_purpose");
            return;
        }
        u->data = file.data;
        u->len = file.len;
        snprintf(u->filename, sizeof(u->filename), "%s", file.filename);
        snprintf(u->purpose, sizeof(u->purpose), "%.*s", (int)purpose.len, purpose.data);
        if (!multipart_field(body, len, boundary, "task", &task) && task.len < 32)
            snprintf(u->task, sizeof(u->task), "%.*s", (int)task.len, task.data);
    } else {
        const char *q = srv_req_query(req);
        if (!api_query_param(q, "purpose", u->purpose, sizeof(u->purpose))) {
            free(u);
            api_error(req, 400, "a raw upload needs ?purpose=fine-tune or ?purpose=corpus",
                      "purpose", "missing_purpose");
            return;
        }
        if (api_query_param(q, "filename", tmp, sizeof(tmp)))
            snprintf(u->filename, sizeof(u->filename), "%s", tmp);
        if (api_query_param(q, "task", tmp, sizeof(tmp)))
            snprintf(u->task, sizeof(u->task), "%.31s", tmp);
        u->data = body;
        u->len = len;
    }
    if (strchr(u->filename, '/'))
        snprintf(u->filename, sizeof(u->filename), "%s", strrchr(u->filename, '/') + 1);
    if (api_defer(req, ctx, upload_work, upload_done, u)) {
        free(u);
        api_error(req, 500, "cannot queue the upload", NULL, NULL);
    }
}

static void files_list(struct srv_req *req, struct api_ctx *ctx)
{
    srv_res_json(req, 200,
                 json_pack("{s:s, s:o}", "object", "list", "data", job_file_list(ctx->store)));
}

static void files_get(struct srv_req *req, struct api_ctx *ctx)
{
    struct job_file f;
    const char *id = srv_req_param(req, "id");
    if (job_file_get(ctx->store, id, &f)) {
        api_errorf(req, 404, "id", "file_not_found", "no file '%.64s'", id);
        return;
    }
    srv_res_json(req, 200, job_file_json(&f));
}

struct fcontent {
    struct job_file f;
    char *data; /* the file's bytes (owned) */
    size_t len;
    char err[400];
};

static void fcontent_work(void *arg)
{
    struct fcontent *c = arg;
    FILE *fp = fopen(c->f.path, "rb");
    long size = -1;
    if (fp && !fseek(fp, 0, SEEK_END))
        size = ftell(fp);
    if (size >= 0 && !fseek(fp, 0, SEEK_SET) && (c->data = malloc((size_t)size + 1)) &&
        fread(c->data, 1, (size_t)size, fp) == (size_t)size) {
        c->len = (size_t)size;
    } else {
        snprintf(c->err, sizeof(c->err), "cannot read the stored file: %s",
                 errno ? strerror(errno) : "short read");
        free(c->data);
        c->data = NULL;
    }
    if (fp)
        fclose(fp);
}

static void fcontent_done(struct srv_req *req, void *arg, struct api_ctx *ctx)
{
    struct fcontent *c = arg;
    (void)ctx;
    if (!c->data) {
        api_error(req, 500, c->err, NULL, NULL);
    } else {
        const char *dot = strrchr(c->f.filename, '.');
        const char *type = dot && !strcmp(dot, ".csv")     ? "text/csv"
                           : dot && !strcmp(dot, ".jsonl") ? "application/jsonl"
                           : dot && !strcmp(dot, ".json")  ? "application/json"
                                                           : "text/plain; charset=utf-8";
        srv_res_send(req, 200, type, c->data, c->len);
    }
    free(c->data);
    free(c);
}

/* GET /v1/files/{id}/content: the stored bytes (read on a worker thread). */
static void files_content(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct fcontent *c = calloc(1, sizeof(*c));
    if (!c) {
        api_error(req, 500, "out of memory", NULL, NULL);
        return;
    }
    if (job_file_get(ctx->store, id, &c->f)) {
        free(c);
        api_errorf(req, 404, "id", "file_not_found", "no file '%.64s'", id);
        return;
    }
    if (api_defer(req, ctx, fcontent_work, fcontent_done, c)) {
        free(c);
        api_error(req, 500, "cannot queue the read", NULL, NULL);
    }
}

struct fdel {
    struct api_ctx *ctx;
    char id[64];
    char job[48];
    int rc;
};

static void fdel_work(void *arg)
{
    struct fdel *d = arg;
    d->rc = job_file_delete(d->ctx->store, d->id, d->job);
}

static void fdel_done(struct srv_req *req, void *arg, struct api_ctx *ctx)
{
    struct fdel *d = arg;
    (void)ctx;
    if (d->rc == STORE_ENOTFOUND)
        api_errorf(req, 404, "id", "file_not_found", "no file '%s'", d->id);
    else if (d->rc == STORE_EEXIST)
        api_errorf(req, 409, "id", "file_in_use",
                   "file '%s' is used by job '%s', which has not "
                   "finished",
                   d->id, d->job);
    else if (d->rc)
        api_error(req, 500, "cannot delete the file: database error", NULL, NULL);
    else
        srv_res_json(req, 200,
                     json_pack("{s:s, s:s, s:b}", "id", d->id, "object", "file", "deleted", 1));
    free(d);
}

static void files_delete(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct fdel *d = calloc(1, sizeof(*d));
    if (!d || strlen(id) >= sizeof(d->id)) {
        free(d);
        api_errorf(req, 404, "id", "file_not_found", "no file '%.64s'", id);
        return;
    }
    d->ctx = ctx;
    strcpy(d->id, id);
    if (api_defer(req, ctx, fdel_work, fdel_done, d)) {
        free(d);
        api_error(req, 500, "cannot queue the deletion", NULL, NULL);
    }
}

const struct api_route api_route_files_create = {"POST",          "/v1/files",     "files_create",
                                                 SRV_SCOPE_ADMIN, API_BODY_UPLOAD, files_create};
const struct api_route api_route_files_list = {"GET",           "/v1/files", "files_list",
                                               SRV_SCOPE_ADMIN, 0,           files_list};
const struct api_route api_route_files_get = {"GET", "/v1/files/{id}", "files_get", SRV_SCOPE_ADMIN,
                                              0,     files_get};
const struct api_route api_route_files_content = {
    "GET", "/v1/files/{id}/content", "files_content", SRV_SCOPE_ADMIN, 0, files_content};
const struct api_route api_route_files_delete = {
    "DELETE", "/v1/files/{id}", "files_delete", SRV_SCOPE_ADMIN, 0, files_delete};
