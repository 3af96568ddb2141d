/*
 * api/api.h — the HTTP API: route table, error format, and what handlers share.
 *
 * Every endpoint is one static `struct api_route` descriptor in the file of its handler
 * (api/health.c, api/keys.c, ...), listed once in api/routes.c. The router matches the method
 * and path when a request's headers are complete, checks the key's scope and sets the body
 * limit; unknown paths get 404, known paths with another method 405 with `Allow`. Only api/ maps
 * statuses to HTTP codes and error bodies.
 */
#ifndef BD_API_API_H
#define BD_API_API_H

#include <jansson.h>
#include <stddef.h>

#include "server/auth.h"
#include "server/http.h"
#include "server/server.h"
#include "store/store.h"

struct eng_registry;
struct eng_sched;
struct store_writer;
struct job_sup;

struct api_ctx {
    struct srv_server *srv;        /* borrowed */
    struct store *store;           /* borrowed */
    struct eng_registry *registry; /* borrowed: models served */
    struct eng_sched *sched;       /* borrowed: the engine workers */
    int engine_threads;            /* threads of each worker's passes (models get this) */
    struct api_infer *infer;       /* owned: requests waiting for a place (api/infer.c) */
    struct store_writer *writer;   /* borrowed: the database's writer thread */
    struct job_sup *sup;           /* borrowed: the job supervisor */
    const char *data_dir;          /* borrowed */
    char model_root[1024];         /* realpath of the model root */
    double start_time;             /* unix seconds, for process_start_time_seconds */
};

typedef void (*api_handler_fn)(struct srv_req *req, struct api_ctx *ctx);

struct api_route {
    const char *method;   /* "GET", "POST", "DELETE" (HEAD matches GET) */
    const char *pattern;  /* "/v1/keys/{id}": literal segments and {param} segments */
    const char *name;     /* handler name for logs and metrics, e.g. "keys_delete" */
    enum srv_scope scope; /* SRV_SCOPE_OPEN: no key needed */
    size_t max_body;      /* 0: the server's max-body-size; API_BODY_UPLOAD: max-upload-size */
    api_handler_fn fn;
};

#define API_BODY_UPLOAD ((size_t)-1)

/* The table (api/routes.c), NULL-terminated. */
extern const struct api_route *const api_routes[];

/* Hooks for srv_server_create; ctx is borrowed and must outlive the server. */
struct srv_hooks api_hooks(struct api_ctx *ctx);

/*
 * The keyring srv_auth_check asks (server/auth.h), answered from the API keys of `st` (borrowed,
 * must outlive the keyring; reader connection, loop thread).
 */
struct srv_keyring api_keyring(struct store *st);
/* Copy a key made by srv_auth_key_new into the store's record of it. */
void api_key_record(const struct srv_key *key, struct store_key *rec);

/*
 * Answer with the error format {"error":{"message","type","param","code"}}: `type` follows from
 * the status (invalid_request_error, authentication_error, ...); param and code may be NULL.
 */
void api_error(struct srv_req *req, int status, const char *message, const char *param,
               const char *code);
void api_errorf(struct srv_req *req, int status, const char *param, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* api/compat.c: answer the error in the shape of the request's route when that route has its
 * own (TEI's /predict: {"error","error_type"}); returns 1 if it answered, 0 if not. */
int api_compat_error(struct srv_req *req, int status, const char *message, const char *code);

/* The error `type` for an HTTP status. */
const char *api_error_type(int status);

/* The HTTP status for an engine status (engine/err.h): 200 for ENG_OK, 400 for a request the
 * engine refuses (ENG_EINVAL, ENG_ERANGE), 500 for the engine's own failures (ENG_ENOMEM,
 * ENG_EINTERNAL and anything else). The engine speaks no HTTP; this is the one place that does. */
int api_eng_http_status(int eng_status);

/*
 * Parse the request body as a JSON object. On failure answers 400 (naming the JSON error's
 * line and column) and returns NULL. Returns a new reference.
 */
json_t *api_body_json(struct srv_req *req);

/*
 * Run `work(data)` on a worker thread (libuv's pool), then `done(req, data, ctx)` on the loop
 * thread. The request is referenced meanwhile; `done` must answer (answering a request whose
 * client left is a no-op) and free `data`. Returns 0, or -1 when the work could not be queued
 * (then nothing was called and the caller answers).
 */
int api_defer(struct srv_req *req, struct api_ctx *ctx, void (*work)(void *data),
              void (*done)(struct srv_req *req, void *data, struct api_ctx *ctx), void *data);

/* Percent-decode src[0..len) ('+' is a space) into out (NUL-terminated, cut at outlen - 1);
 * returns the decoded length. */
size_t api_url_decode(const char *src, size_t len, char *out, size_t outlen);
/* The decoded value of query parameter `name` of query string q into out; NULL if absent. */
const char *api_query_param(const char *q, const char *name, char *out, size_t outlen);
/* Query parameter `name` as a number (strtol), def if absent. */
long api_query_long(const char *q, const char *name, long def);

#endif
