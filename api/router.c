/*
 * api/router.c — matching requests to the route table, scope checks, and deferring work to
 * worker threads. Matching walks the table once per request: a few dozen routes, each compared
 * segment by segment without allocation except for {param} captures.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "log/log.h"

/* Does `path` match `pattern`? With req, records {param}s. */
static int route_match(const char *pattern, const char *path, struct srv_req *req)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *end = strchr(s, '/');
            if (!end)
                end = s + strlen(s);
            if (!close || end == s)
                return 0;
            if (req) {
                char name[32];
                size_t nl = (size_t)(close - p - 1);
                if (nl >= sizeof(name))
                    return 0;
                memcpy(name, p + 1, nl);
                name[nl] = 0;
                if (srv_req_add_param(req, name, s, (size_t)(end - s)))
                    return 0;
            }
            p = close + 1;
            s = end;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    if (*s == '/' && s[1] == 0 && *p == 0 && s != path)
        s++; /* tolerate one trailing slash */
    return *p == 0 && *s == 0;
}

static int api_on_headers(struct srv_req *req, void *arg)
{
    struct api_ctx *ctx = arg;
    const char *method = srv_req_method(req);
    const char *path = srv_req_path(req);
    const struct api_route *found = NULL;
    char allow[128] = "";
    int path_known = 0;

    if (!strcmp(method, "HEAD"))
        method = "GET";
    for (const struct api_route *const *r = api_routes; *r; r++) {
        if (!route_match((*r)->pattern, path, NULL))
            continue;
        path_known = 1;
        if (!strcmp((*r)->method, method)) {
            found = *r;
            break;
        }
        if (!strstr(allow, (*r)->method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "", (*r)->method);
            if (!strcmp((*r)->method, "GET") && !strstr(allow, "HEAD")) {
                n = strlen(allow);
                snprintf(allow + n, sizeof(allow) - n, ", HEAD");
            }
        }
    }
    if (!found) {
        char msg[512];
        if (path_known) {
            srv_res_header(req, "Allow", allow);
            snprintf(msg, sizeof(msg), "method %s is not allowed on %.200s (allowed: %s)",
                     srv_req_method(req), path, allow);
            srv_req_reject(req, 405, msg);
        } else {
            snprintf(msg, sizeof(msg), "no route for %s %.200s", srv_req_method(req), path);
            srv_req_reject(req, 404, msg);
        }
        return 0;
    }
    srv_req_set_handler(req, found->name);
    srv_req_set_data(req, found);
    route_match(found->pattern, path, req);
    if (found->max_body == API_BODY_UPLOAD)
        srv_req_set_body_limit(req, srv_server_config(ctx->srv)->max_upload_size);
    else if (found->max_body)
        srv_req_set_body_limit(req, found->max_body);

    struct srv_keyring keys = api_keyring(ctx->store);
    switch (srv_auth_check(&keys, srv_req_header(req, "Authorization"), found->scope, NULL)) {
    case SRV_AUTH_OK: break;
    case SRV_AUTH_MISSING:
        srv_res_header(req, "WWW-Authenticate", "Bearer");
        srv_req_reject(req, 401, "missing API key: send 'Authorization: Bearer <key>'");
        break;
    case SRV_AUTH_INVALID:
        srv_res_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        srv_req_reject(req, 401, "invalid or revoked API key");
        break;
    case SRV_AUTH_FORBIDDEN:
        srv_req_reject(req, 403,
                       found->scope == SRV_SCOPE_ADMIN
                           ? "this route needs a key with the 'admin' scope"
                           : "this route needs a key with the 'infer' scope");
        break;
    case SRV_AUTH_ERROR:
        srv_req_reject(req, 500, "cannot check the API key: database error");
        break;
    }
    return 0;
}

static void api_on_request(struct srv_req *req, void *arg)
{
    const struct api_route *route = srv_req_data(req);
    route->fn(req, arg);
}

static void api_on_error(struct srv_req *req, int status, const char *message, void *arg)
{
    (void)arg;
    api_error(req, status, message, NULL, NULL);
}

struct srv_hooks api_hooks(struct api_ctx *ctx)
{
    struct srv_hooks h = {api_on_headers, api_on_request, api_on_error, ctx};
    return h;
}

struct api_work {
    uv_work_t w;
    struct srv_req *req;
    struct api_ctx *ctx;
    void *data;
    void (*work)(void *data);
    void (*done)(struct srv_req *req, void *data, struct api_ctx *ctx);
};

static void api_work_run(uv_work_t *w)
{
    struct api_work *aw = w->data;
    aw->work(aw->data);
}

static void api_work_after(uv_work_t *w, int status)
{
    struct api_work *aw = w->data;
    (void)status;
    aw->done(aw->req, aw->data, aw->ctx);
    srv_req_unref(aw->req);
    free(aw);
}

int api_defer(struct srv_req *req, struct api_ctx *ctx, void (*work)(void *data),
              void (*done)(struct srv_req *req, void *data, struct api_ctx *ctx), void *data)
{
    struct api_work *aw = calloc(1, sizeof(*aw));
    if (!aw)
        return -1;
    aw->w.data = aw;
    aw->req = req;
    aw->ctx = ctx;
    aw->data = data;
    aw->work = work;
    aw->done = done;
    srv_req_ref(req);
    if (uv_queue_work(srv_server_loop(ctx->srv), &aw->w, api_work_run, api_work_after)) {
        srv_req_unref(req);
        free(aw);
        return -1;
    }
    return 0;
}
