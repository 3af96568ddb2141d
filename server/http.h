/*
 * server/http.h — one HTTP request as handlers see it, and the ways to answer it.
 *
 * A request belongs to its connection and lives on the loop thread. Handlers answer with exactly
 * one of: srv_res_send / srv_res_json (a whole response), or srv_res_stream_start followed by
 * srv_res_stream_write... and srv_res_stream_end (chunked transfer; SSE is chunked text/event-
 * stream). A handler that answers later (after work on another thread, marshalled back to the
 * loop) takes a reference with srv_req_ref before returning and drops it with srv_req_unref when
 * done; if the client went away meanwhile, srv_req_alive() is 0 and answering is a no-op.
 *
 * Pipelined requests on one connection are answered in order: the next request is not parsed
 * until the current one's response has ended.
 */
#ifndef BD_SERVER_HTTP_H
#define BD_SERVER_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct srv_server;
struct srv_req;

/* Request fields (borrowed; valid while the request lives). */
const char *srv_req_method(const struct srv_req *req); /* "GET" */
const char *srv_req_path(const struct srv_req *req);   /* "/v1/keys" (no query) */
const char *srv_req_query(const struct srv_req *req);  /* after '?', "" if none */
const char *srv_req_id(const struct srv_req *req);     /* X-Request-Id (echoed or made) */
const char *srv_req_body(const struct srv_req *req, size_t *len); /* NUL-terminated */
/* First header named `name` (case-insensitive) or NULL. */
const char *srv_req_header(const struct srv_req *req, const char *name);
struct srv_server *srv_req_server(const struct srv_req *req);

/* Route data the router attaches: the handler name for metrics and logs, and {param}s. */
void srv_req_set_handler(struct srv_req *req, const char *name);
int srv_req_add_param(struct srv_req *req, const char *name, const char *value, size_t len);
const char *srv_req_param(const struct srv_req *req, const char *name);
/* Opaque pointer for the router/handler (e.g. the matched route). */
void srv_req_set_data(struct srv_req *req, const void *data);
const void *srv_req_data(const struct srv_req *req);

/*
 * From on_headers: refuse the request with `status` and `message` (copied). The server discards
 * the body and answers with the error once the request is complete (at once, closing the
 * connection, if the client waits on `Expect: 100-continue`).
 */
void srv_req_reject(struct srv_req *req, int status, const char *message);
/* From on_headers: the largest body this request may have (default: max-body-size). */
void srv_req_set_body_limit(struct srv_req *req, size_t limit);

/* Async answering. */
void srv_req_ref(struct srv_req *req);
void srv_req_unref(struct srv_req *req);
int srv_req_alive(const struct srv_req *req);

/* Extra response header for the next srv_res_* call (copied). Returns 0 or -1. */
int srv_res_header(struct srv_req *req, const char *name, const char *value);

/* A whole response; body is copied. */
void srv_res_send(struct srv_req *req, int status, const char *content_type, const char *body,
                  size_t len);
/* A whole JSON response; takes the reference to `obj`. */
void srv_res_json(struct srv_req *req, int status, json_t *obj);

/* Chunked responses (and Server-Sent Events with content type text/event-stream). */
int srv_res_stream_start(struct srv_req *req, int status, const char *content_type);
int srv_res_stream_write(struct srv_req *req, const char *data, size_t len);
void srv_res_stream_end(struct srv_req *req);

/* Reason phrase of a status code ("Not Found"). */
const char *srv_status_text(int status);

#endif
