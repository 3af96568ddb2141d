/*
 * server/http.c — HTTP/1.1 connections: reading (plain or TLS), parsing with llhttp, limits and
 * timeouts, answering (whole, chunked, SSE), keep-alive and pipelining.
 *
 * Life of a connection: accepted -> idle timer -> first byte starts a request (header timer) ->
 * headers complete (on_headers hook: route, auth, body limit; body timer) -> message complete:
 * the parser pauses and on_request answers -> the response ends: log + metrics, then either the
 * parser resumes on bytes already buffered (pipelining, answered strictly in order) or the
 * connection closes. Errors the server finds itself (400, 408, 413, 414, 431) are answered
 * through the on_error hook and close the connection, lingering briefly so the client reads the
 * answer before the socket goes away.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "log/log.h"
#include "server/conn.h"
#include "server/metrics.h"
#include "server/tls.h"
#include "util/grow.h"

#define CONN_MAX_BUFFERED (256 * 1024) /* pipelined bytes held while answering */
#define CONN_LINGER_MS 1000
#define REQ_MAX_HEADERS 100

enum { TIMER_IDLE, TIMER_HEADERS, TIMER_BODY, TIMER_NONE, TIMER_LINGER };

/* ---- small buffers ------------------------------------------------------------------------ */

int srv_buf_add(struct srv_buf *b, const char *data, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->n + len + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    if (len)
        memcpy(b->p + b->n, data, len);
    b->n += len;
    b->p[b->n] = 0;
    return 0;
}

void srv_buf_release(struct srv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static void buf_consume(struct srv_buf *b, size_t n)
{
    if (n >= b->n) {
        b->n = 0;
    } else {
        memmove(b->p, b->p + n, b->n - n);
        b->n -= n;
    }
    if (b->p)
        b->p[b->n] = 0;
}

/* ---- status texts ------------------------------------------------------------------------- */

const char *srv_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

/* ---- requests ----------------------------------------------------------------------------- */

static uint64_t rng_next(struct srv_server *srv)
{
    /* xorshift128+: request ids need uniqueness, not secrecy. */
    uint64_t s1 = srv->rng[0];
    const uint64_t s0 = srv->rng[1];
    srv->rng[0] = s0;
    s1 ^= s1 << 23;
    srv->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return srv->rng[1] + s0;
}

static struct srv_req *req_create(struct srv_conn *conn)
{
    struct srv_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->refs = 1;
    req->conn = conn;
    req->srv = conn->srv;
    req->body_limit = conn->srv->cfg->max_body_size;
    req->keep_alive = 1;
    req->t_start = uv_hrtime();
    req->handler = "unmatched";
    if (conn->srv->rng[0] == 0 && conn->srv->rng[1] == 0) {
        if (getrandom(conn->srv->rng, sizeof(conn->srv->rng), 0) != sizeof(conn->srv->rng))
            conn->srv->rng[0] = uv_hrtime() | 1;
    }
    snprintf(req->id, sizeof(req->id), "%016llx%016llx", (unsigned long long)rng_next(conn->srv),
             (unsigned long long)rng_next(conn->srv));
    return req;
}

static void req_free(struct srv_req *req)
{
    srv_buf_release(&req->url);
    srv_buf_release(&req->body);
    srv_buf_release(&req->res_headers);
    for (size_t i = 0; i < req->nhdrs; i++) {
        srv_buf_release(&req->hdr_names[i]);
        srv_buf_release(&req->hdr_values[i]);
    }
    free(req->hdr_names);
    free(req->hdr_values);
    for (int i = 0; i < req->nparams; i++) {
        free(req->params[i].name);
        free(req->params[i].value);
    }
    free(req->pathq);
    free(req->reject_msg);
    free(req);
}

void srv_req_ref(struct srv_req *req)
{
    req->refs++;
}

void srv_req_unref(struct srv_req *req)
{
    if (req && --req->refs == 0)
        req_free(req);
}

int srv_req_alive(const struct srv_req *req)
{
    return req->conn != NULL;
}

const char *srv_req_method(const struct srv_req *req)
{
    return req->method;
}
const char *srv_req_path(const struct srv_req *req)
{
    return req->path ? req->path : "/";
}
const char *srv_req_query(const struct srv_req *req)
{
    return req->query ? req->query : "";
}
const char *srv_req_id(const struct srv_req *req)
{
    return req->id;
}
struct srv_server *srv_req_server(const struct srv_req *req)
{
    return req->srv;
}
void srv_req_set_handler(struct srv_req *req, const char *name)
{
    req->handler = name;
}
void srv_req_set_data(struct srv_req *req, const void *data)
{
    req->data = data;
}
const void *srv_req_data(const struct srv_req *req)
{
    return req->data;
}
void srv_req_set_body_limit(struct srv_req *req, size_t limit)
{
    req->body_limit = limit;
}

const char *srv_req_body(const struct srv_req *req, size_t *len)
{
    if (len)
        *len = req->body.n;
    return req->body.p ? req->body.p : "";
}

const char *srv_req_header(const struct srv_req *req, const char *name)
{
    for (size_t i = 0; i < req->nhdrs; i++)
        if (!strcasecmp(req->hdr_names[i].p, name))
            return req->hdr_values[i].p;
    return NULL;
}

int srv_req_add_param(struct srv_req *req, const char *name, const char *value, size_t len)
{
    if (req->nparams >= (int)(sizeof(req->params) / sizeof(req->params[0])))
        return -1;
    char *n = strdup(name), *v = strndup(value, len);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    req->params[req->nparams].name = n;
    req->params[req->nparams].value = v;
    req->nparams++;
    return 0;
}

const char *srv_req_param(const struct srv_req *req, const char *name)
{
    for (int i = 0; i < req->nparams; i++)
        if (!strcmp(req->params[i].name, name))
            return req->params[i].value;
    return NULL;
}

void srv_req_reject(struct srv_req *req, int status, const char *message)
{
    req->reject = status;
    free(req->reject_msg);
    req->reject_msg = strdup(message ? message : srv_status_text(status));
}

/* ---- writing ------------------------------------------------------------------------------ */

struct conn_write {
    uv_write_t w;
    struct srv_conn *conn;
    uv_buf_t buf;
    char data[];
};

static void conn_shutdown_or_close(struct srv_conn *conn);

static void conn_write_cb(uv_write_t *w, int status)
{
    struct conn_write *cw = (struct conn_write *)w;
    struct srv_conn *conn = cw->conn;
    free(cw);
    conn->pending_writes--;
    if (status < 0 && status != UV_ECANCELED) {
        log_debug("write failed: %s", uv_strerror(status));
        srv_conn_close(conn);
        return;
    }
    if (conn->close_after && conn->pending_writes == 0 && !conn->closing)
        conn_shutdown_or_close(conn);
}

/* Write raw bytes (ciphertext under TLS) to the socket. */
static void conn_raw_write(struct srv_conn *conn, const char *data, size_t len)
{
    if (conn->closing || !len)
        return;
    if (conn->pending_writes == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);
        if (n == (int)len)
            return;
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN) {
            srv_conn_close(conn);
            return;
        }
    }
    struct conn_write *cw = malloc(sizeof(*cw) + len);
    if (!cw) {
        srv_conn_close(conn);
        return;
    }
    cw->conn = conn;
    memcpy(cw->data, data, len);
    cw->buf = uv_buf_init(cw->data, (unsigned)len);
    if (uv_write(&cw->w, (uv_stream_t *)&conn->tcp, &cw->buf, 1, conn_write_cb) < 0) {
        free(cw);
        srv_conn_close(conn);
        return;
    }
    conn->pending_writes++;
}

static void conn_tls_out(void *arg, const char *data, size_t len)
{
    conn_raw_write(arg, data, len);
}

/* conn may be NULL: a failed write closes the connection and detaches the request, so the
 * next write of the same response (a chunk's size line, data, CRLF) finds no connection. */
static void conn_write(struct srv_conn *conn, const char *data, size_t len)
{
    if (!conn || conn->closing)
        return;
    if (conn->tls) {
        if (srv_tls_write(conn->tls, data, len))
            srv_conn_close(conn);
    } else {
        conn_raw_write(conn, data, len);
    }
}

/* ---- timers ------------------------------------------------------------------------------- */

static void conn_timer_cb(uv_timer_t *t);

static void conn_timer(struct srv_conn *conn, int kind)
{
    const struct srv_config *cfg = conn->srv->cfg;
    int ms = 0;
    conn->timer_kind = kind;
    switch (kind) {
    case TIMER_IDLE: ms = cfg->idle_timeout_ms; break;
    case TIMER_HEADERS: ms = cfg->header_timeout_ms; break;
    case TIMER_BODY: ms = cfg->body_timeout_ms; break;
    case TIMER_LINGER: ms = CONN_LINGER_MS; break;
    default: uv_timer_stop(&conn->timer); return;
    }
    uv_timer_start(&conn->timer, conn_timer_cb, ms > 0 ? (uint64_t)ms : 1, 0);
}

void srv_conn_timeout_update(struct srv_conn *conn)
{
    if (!conn->closing && conn->timer_kind != TIMER_NONE && conn->timer_kind != TIMER_LINGER)
        conn_timer(conn, conn->timer_kind);
}

/* ---- closing ------------------------------------------------------------------------------ */

static void conn_handle_closed(uv_handle_t *h)
{
    struct srv_conn *conn = h->data;
    if (--conn->handles > 0)
        return;
    srv_tls_free(conn->tls);
    srv_buf_release(&conn->in);
    srv_buf_release(&conn->hname);
    srv_buf_release(&conn->hval);
    free(conn);
}

void srv_conn_close(struct srv_conn *conn)
{
    struct srv_server *srv = conn->srv;
    if (conn->closing)
        return;
    conn->closing = 1;
    if (conn->req) {
        struct srv_req *req = conn->req;
        conn->req = NULL;
        req->conn = NULL; /* an async handler still holding it sees a dead request */
        srv_req_unref(req);
    }
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->nconns--;
    uv_timer_stop(&conn->timer);
    uv_close((uv_handle_t *)&conn->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&conn->tcp, conn_handle_closed);
    if (srv->draining && srv->nconns == 0 && srv->drain_done) {
        void (*done)(struct srv_server *, int) = srv->drain_done;
        srv->drain_done = NULL;
        done(srv, 0);
    }
}

static void conn_shutdown_cb(uv_shutdown_t *s, int status)
{
    struct srv_conn *conn = s->data;
    free(s);
    if (status < 0 || conn->closing) {
        srv_conn_close(conn);
        return;
    }
    /* Keep reading (and dropping) until the peer closes or the linger timer fires, so that a
     * client still sending a body it was told we refuse does not get a reset before it has read
     * the answer. */
    conn->lingering = 1;
    conn_timer(conn, TIMER_LINGER);
}

static void conn_shutdown_or_close(struct srv_conn *conn)
{
    if (conn->closing)
        return;
    if (conn->tls)
        srv_tls_shutdown(conn->tls);
    if (conn->pending_writes > 0) {
        conn->close_after = 1;
        return;
    }
    uv_shutdown_t *s = malloc(sizeof(*s));
    if (!s) {
        srv_conn_close(conn);
        return;
    }
    s->data = conn;
    if (uv_shutdown(s, (uv_stream_t *)&conn->tcp, conn_shutdown_cb) < 0) {
        free(s);
        srv_conn_close(conn);
    }
}

int srv_conn_idle(const struct srv_conn *conn)
{
    return conn->req == NULL && conn->in.n == 0;
}

/* ---- answering ---------------------------------------------------------------------------- */

static void srv_date(struct srv_server *srv)
{
    time_t now = time(NULL);
    if ((uint64_t)now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = (uint64_t)now;
    }
}

int srv_res_header(struct srv_req *req, const char *name, const char *value)
{
    if (srv_buf_add(&req->res_headers, name, strlen(name)) ||
        srv_buf_add(&req->res_headers, ": ", 2) ||
        srv_buf_add(&req->res_headers, value, strlen(value)) ||
        srv_buf_add(&req->res_headers, "\r\n", 2))
        return -1;
    return 0;
}

/* Whether the connection stays open after this response. */
static int req_keep_alive(const struct srv_req *req)
{
    const struct srv_conn *conn = req->conn;
    return req->keep_alive && !conn->close_after && !conn->srv->draining && !req->reject_close;
}

static int req_head(struct srv_req *req, struct srv_buf *out, int status, const char *ctype,
                    long long length)
{
    char line[512];
    struct srv_server *srv = req->srv;
    srv_date(srv);
    req->status = status;
    int n = snprintf(line, sizeof(line),
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: bitdistilld/" PACKAGE_VERSION
                     "\r\nX-Request-Id: %s\r\n",
                     status, srv_status_text(status), srv->date, req->id);
    if (srv_buf_add(out, line, (size_t)n))
        return -1;
    if (ctype) {
        n = snprintf(line, sizeof(line), "Content-Type: %s\r\n", ctype);
        if (srv_buf_add(out, line, (size_t)n))
            return -1;
    }
    if (length >= 0)
        n = snprintf(line, sizeof(line), "Content-Length: %lld\r\n", length);
    else if (req->chunked)
        n = snprintf(line, sizeof(line), "Transfer-Encoding: chunked\r\n");
    else
        n = 0;
    if (n && srv_buf_add(out, line, (size_t)n))
        return -1;
    if (!req_keep_alive(req) && srv_buf_add(out, "Connection: close\r\n", 19))
        return -1;
    if (req->res_headers.n && srv_buf_add(out, req->res_headers.p, req->res_headers.n))
        return -1;
    return srv_buf_add(out, "\r\n", 2);
}

static void conn_parse(struct srv_conn *conn);
static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* The response has ended: account for it and move the connection on. */
/*
 * The request target for the access log: the query's values of parameters that commonly carry
 * credentials (key, api_key, token, access_token, secret, password, auth...) become "REDACTED".
 * The daemon never reads credentials from the query, but clients do put them there.
 */
static const char *log_target(const struct srv_req *req, char *out, size_t cap)
{
    static const char *const secret[] = {"key",   "api_key",       "apikey", "api-key",
                                         "token", "access_token",  "secret", "password",
                                         "auth",  "authorization", NULL};
    if (!req->url.p)
        return "-";
    const char *q = req->pathq ? strchr(req->url.p, '?') : NULL;
    if (!q)
        return req->url.p;
    size_t n = (size_t)snprintf(out, cap, "%.*s", (int)(q - req->url.p), req->url.p);
    for (const char *p = q + 1; *p && n < cap;) {
        size_t len = strcspn(p, "&"), nl = strcspn(p, "=&");
        int hide = 0;
        for (int i = 0; secret[i] && p[nl] == '='; i++)
            hide |= strlen(secret[i]) == nl && !strncasecmp(p, secret[i], nl);
        n += (size_t)snprintf(out + n, cap - n, "%c%.*s", p == q + 1 ? '?' : '&',
                              hide ? (int)nl + 1 : (int)len, p);
        if (hide && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "REDACTED");
        p += len + (p[len] == '&');
    }
    return out;
}

static void req_done(struct srv_req *req)
{
    struct srv_conn *conn = req->conn;
    struct srv_server *srv = req->srv;
    double secs = (double)(uv_hrtime() - req->t_start) / 1e9;
    char labels[256], status[8], target[1024];

    req->state = 3;
    snprintf(status, sizeof(status), "%d", req->status);
    srv_metrics_counter_add(srv->metrics, "http_requests_total",
                            "HTTP requests answered, by handler, method and status",
                            srv_metrics_labels(labels, sizeof(labels), "handler", req->handler,
                                               "method", req->method, "status", status, NULL),
                            1);
    srv_metrics_histogram_observe(
        srv->metrics, "http_request_duration_seconds",
        "Time from a request's first byte to its last response byte",
        srv_metrics_labels(labels, sizeof(labels), "handler", req->handler, NULL), secs);
    log_line(req->status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "%s %s %d %zuB %.2fms rid=%s",
             req->method, log_target(req, target, sizeof(target)), req->status, req->bytes_out,
             secs * 1e3, req->id);
    if (!conn)
        return;
    int keep = req_keep_alive(req);
    conn->req = NULL;
    srv_req_unref(req);
    if (!keep) {
        conn_shutdown_or_close(conn);
        return;
    }
    conn->paused = 0;
    llhttp_resume(&conn->parser);
    conn_timer(conn, TIMER_IDLE);
    if (!conn->reading && !conn->closing) {
        conn->reading = 1;
        uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb, conn_read_cb);
    }
    if (!conn->in_parse)
        conn_parse(conn);
}

void srv_res_send(struct srv_req *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    struct srv_buf out = {0};
    if (req->state >= 2)
        return; /* answered already */
    if (!req->conn) {
        req->status = status;
        req_done(req);
        return;
    }
    if (req_head(req, &out, status, content_type, (long long)len) ||
        (!req->head && len && srv_buf_add(&out, body, len))) {
        srv_buf_release(&out);
        srv_conn_close(req->conn);
        return;
    }
    req->bytes_out = req->head ? 0 : len;
    conn_write(req->conn, out.p, out.n);
    srv_buf_release(&out);
    req_done(req);
}

void srv_res_json(struct srv_req *req, int status, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
            "\"code\":\"out_of_memory\"}}";
        srv_res_send(req, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: one trailing newline like most JSON APIs with curl */
    srv_res_send(req, status, "application/json", text, n + 1);
    free(text);
}

int srv_res_stream_start(struct srv_req *req, int status, const char *content_type)
{
    struct srv_buf out = {0};
    if (req->state >= 2)
        return -1;
    if (!req->conn)
        return -1;
    /* HTTP/1.0 has no chunked encoding: the stream ends when the connection closes. */
    req->chunked = req->http_minor >= 1;
    if (!req->chunked)
        req->conn->close_after = 1;
    if (!strncmp(content_type, "text/event-stream", 17))
        srv_res_header(req, "Cache-Control", "no-cache");
    if (req_head(req, &out, status, content_type, -1)) {
        srv_buf_release(&out);
        srv_conn_close(req->conn);
        return -1;
    }
    req->state = 2;
    conn_write(req->conn, out.p, out.n);
    srv_buf_release(&out);
    return 0;
}

int srv_res_stream_write(struct srv_req *req, const char *data, size_t len)
{
    char head[32];
    if (req->state != 2 || !req->conn || req->conn->closing)
        return -1;
    if (!len || req->head)
        return 0;
    if (req->chunked) {
        int n = snprintf(head, sizeof(head), "%zx\r\n", len);
        conn_write(req->conn, head, (size_t)n);
    }
    conn_write(req->conn, data, len);
    if (req->chunked)
        conn_write(req->conn, "\r\n", 2);
    if (!req->conn)
        return -1; /* the client went away during this write */
    req->bytes_out += len;
    return 0;
}

void srv_res_stream_end(struct srv_req *req)
{
    if (req->state != 2)
        return;
    if (req->conn && req->chunked && !req->head)
        conn_write(req->conn, "0\r\n\r\n", 5);
    req_done(req);
}

/* A server-made error: answer through the API's error format, then close. */
void srv_conn_fail(struct srv_conn *conn, int status, const char *message)
{
    if (!conn->req && !(conn->req = req_create(conn))) {
        srv_conn_close(conn);
        return;
    }
    struct srv_req *req = conn->req;
    if (req->state >= 2) { /* mid-stream: nothing more can be said */
        srv_conn_close(conn);
        return;
    }
    if (!req->method[0])
        snprintf(req->method, sizeof(req->method), "-");
    conn->close_after = 1;
    req->reject_close = 1;
    conn_timer(conn, TIMER_NONE);
    conn->srv->hooks.on_error(req, status, message, conn->srv->hooks.ctx);
}

/* ---- parsing ------------------------------------------------------------------------------ */

#define CONN(p) ((struct srv_conn *)(p)->data)

/* A callback ran out of memory: the request is answered 500, not as a malformed one. */
static int conn_oom(struct srv_conn *conn)
{
    conn->oom = 1;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct srv_conn *conn = CONN(p);
    if (!conn->req && !(conn->req = req_create(conn)))
        return conn_oom(conn);
    conn->header_bytes = 0;
    conn->hstate = 0;
    conn_timer(conn, TIMER_HEADERS);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct srv_conn *conn = CONN(p);
    struct srv_req *req = conn->req;
    if (req->url.n + len > conn->srv->cfg->max_url_size) {
        srv_req_reject(req, 414, "request target longer than max-url-size");
        return HPE_USER;
    }
    conn->header_bytes += len;
    return srv_buf_add(&req->url, at, len) ? conn_oom(conn) : 0;
}

static int header_count(struct srv_conn *conn, size_t len)
{
    conn->header_bytes += len;
    if (conn->header_bytes > conn->srv->cfg->max_header_size) {
        srv_req_reject(conn->req, 431, "request headers larger than max-header-size");
        return HPE_USER;
    }
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct srv_conn *conn = CONN(p);
    if (header_count(conn, len))
        return HPE_USER;
    return srv_buf_add(&conn->hname, at, len) ? conn_oom(conn) : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct srv_conn *conn = CONN(p);
    if (header_count(conn, len))
        return HPE_USER;
    return srv_buf_add(&conn->hval, at, len) ? conn_oom(conn) : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct srv_conn *conn = CONN(p);
    struct srv_req *req = conn->req;
    if (req->nhdrs >= REQ_MAX_HEADERS) {
        srv_req_reject(req, 431, "more than 100 request headers");
        return HPE_USER;
    }
    size_t ncap = req->hcap; /* both arrays grow to the same capacity, kept in req->hcap */
    if (UTIL_GROW(req->hdr_names, ncap, req->nhdrs + 1, 16) ||
        UTIL_GROW(req->hdr_values, req->hcap, req->nhdrs + 1, 16))
        return conn_oom(conn);
    /* Hand the buffers over; empty values still need a string. */
    if (!conn->hval.p && srv_buf_add(&conn->hval, "", 0))
        return conn_oom(conn);
    if (!conn->hname.p && srv_buf_add(&conn->hname, "", 0))
        return conn_oom(conn);
    req->hdr_names[req->nhdrs] = conn->hname;
    req->hdr_values[req->nhdrs] = conn->hval;
    req->nhdrs++;
    memset(&conn->hname, 0, sizeof(conn->hname));
    memset(&conn->hval, 0, sizeof(conn->hval));
    return 0;
}

/* Split the target into path and query; reject absolute-form and garbage (-1), or -2 when out
 * of memory. */
static int req_split_url(struct srv_req *req)
{
    if (!req->url.p || req->url.p[0] != '/')
        return -1;
    if (!(req->pathq = strdup(req->url.p)))
        return -2;
    req->path = req->pathq;
    char *q = strchr(req->pathq, '?');
    if (q) {
        *q = 0;
        req->query = q + 1;
    }
    char *h = strchr(req->pathq, '#');
    if (h)
        *h = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct srv_conn *conn = CONN(p);
    struct srv_req *req = conn->req;
    struct srv_server *srv = conn->srv;

    snprintf(req->method, sizeof(req->method), "%s", llhttp_method_name(llhttp_get_method(p)));
    req->http_minor = llhttp_get_http_major(p) == 1 ? llhttp_get_http_minor(p) : 0;
    req->head = !strcmp(req->method, "HEAD");
    const char *rid = srv_req_header(req, "X-Request-Id");
    if (rid && *rid && strlen(rid) < sizeof(req->id)) {
        int okid = 1;
        for (const char *c = rid; *c; c++)
            if (!isgraph((unsigned char)*c))
                okid = 0;
        if (okid)
            snprintf(req->id, sizeof(req->id), "%s", rid);
    }
    int split = req_split_url(req);
    if (split == -2)
        return conn_oom(conn);
    if (split) {
        srv_req_reject(req, 400, "request target must be an absolute path starting with '/'");
        return HPE_USER;
    }
    const char *expect = srv_req_header(req, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue")) {
            srv_req_reject(req, 417, "only 'Expect: 100-continue' is supported");
            return HPE_USER;
        }
        req->expect_continue = 1;
    }
    int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    if (!req->reject)
        srv->hooks.on_headers(req, srv->hooks.ctx);
    if (!req->reject && (p->flags & F_CONTENT_LENGTH) && p->content_length > req->body_limit) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body of %llu bytes exceeds the limit of %zu bytes",
                 (unsigned long long)p->content_length, req->body_limit);
        srv_req_reject(req, 413, msg);
        return HPE_USER;
    }
    if (req->reject && has_body && (req->expect_continue || req->reject == 413))
        return HPE_USER; /* answer now and close: don't read a body we refuse */
    if (req->expect_continue && has_body && !req->reject) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(conn, cont, sizeof(cont) - 1);
    }
    conn_timer(conn, has_body ? TIMER_BODY : TIMER_NONE);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct srv_conn *conn = CONN(p);
    struct srv_req *req = conn->req;
    if (conn->timer_kind == TIMER_BODY)
        conn_timer(conn, TIMER_BODY);
    if (req->reject)
        return 0; /* discarded */
    if (req->body.n + len > req->body_limit) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes", req->body_limit);
        srv_req_reject(req, 413, msg);
        return HPE_USER;
    }
    return srv_buf_add(&req->body, at, len) ? conn_oom(conn) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct srv_conn *conn = CONN(p);
    struct srv_req *req = conn->req;
    req->keep_alive = llhttp_should_keep_alive(p);
    req->state = 1;
    conn_timer(conn, TIMER_NONE);
    return HPE_PAUSED;
}

void srv_http_settings(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* Hand a complete request to the API (or answer the rejection decided at its headers). */
static void conn_dispatch(struct srv_conn *conn)
{
    struct srv_req *req = conn->req;
    struct srv_server *srv = conn->srv;
    srv_req_ref(req);
    if (req->reject)
        srv->hooks.on_error(req, req->reject, req->reject_msg, srv->hooks.ctx);
    else
        srv->hooks.on_request(req, srv->hooks.ctx);
    srv_req_unref(req);
}

static void conn_parse(struct srv_conn *conn)
{
    conn->in_parse = 1;
    while (!conn->closing && !conn->paused && !conn->close_after && conn->in.n > 0) {
        enum llhttp_errno e = llhttp_execute(&conn->parser, conn->in.p, conn->in.n);
        if (e == HPE_OK) {
            buf_consume(&conn->in, conn->in.n);
            break;
        }
        if (e == HPE_PAUSED) {
            buf_consume(&conn->in, (size_t)(llhttp_get_error_pos(&conn->parser) - conn->in.p));
            conn->paused = 1;
            conn_dispatch(conn); /* may answer at once and clear paused */
            continue;
        }
        /* A protocol error, or a limit a callback enforced. */
        buf_consume(&conn->in, conn->in.n);
        if (conn->oom) {
            srv_conn_fail(conn, 500, "out of memory while reading the request");
        } else if (conn->req && conn->req->reject) {
            srv_conn_fail(conn, conn->req->reject, conn->req->reject_msg);
        } else {
            char msg[256];
            snprintf(msg, sizeof(msg), "malformed HTTP request: %s",
                     llhttp_get_error_reason(&conn->parser));
            srv_conn_fail(conn, e == HPE_INVALID_VERSION ? 505 : 400, msg);
        }
        break;
    }
    conn->in_parse = 0;
    /* Back-pressure: stop reading while too much pipelined input waits. */
    if (!conn->closing && conn->paused && conn->in.n > CONN_MAX_BUFFERED && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
}

static void conn_plain(void *arg, const char *data, size_t len)
{
    struct srv_conn *conn = arg;
    if (conn->closing || conn->close_after)
        return;
    if (srv_buf_add(&conn->in, data, len)) {
        srv_conn_close(conn);
        return;
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct srv_conn *conn = h->data;
    buf->base = conn->srv->read_buf;
    buf->len = sizeof(conn->srv->read_buf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct srv_conn *conn = s->data;
    if (nread == 0 || conn->closing)
        return;
    if (nread < 0) {
        /* EOF or reset: the client is gone. A request being answered becomes dead (handlers
         * see srv_req_alive() == 0 and can stop work, e.g. a generation), as in nginx and
         * vLLM; clients that half-close and still wait for the answer are not supported. */
        srv_conn_close(conn);
        return;
    }
    if (conn->lingering)
        return; /* dropping what arrives after our final answer */
    if (conn->tls) {
        char err[256];
        if (srv_tls_feed(conn->tls, buf->base, (size_t)nread, conn_plain, conn, err, sizeof(err))) {
            log_debug("closing connection: %s", err);
            srv_conn_close(conn);
            return;
        }
    } else {
        conn_plain(conn, buf->base, (size_t)nread);
    }
    if (!conn->closing)
        conn_parse(conn);
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct srv_conn *conn = t->data;
    switch (conn->timer_kind) {
    case TIMER_HEADERS:
        srv_conn_fail(conn, 408, "request headers not received within header-timeout-ms");
        break;
    case TIMER_BODY:
        srv_conn_fail(conn, 408, "request body stalled for longer than body-timeout-ms");
        break;
    default: /* idle keep-alive, or linger after our final answer */ srv_conn_close(conn); break;
    }
}

void srv_conn_accepted(struct srv_conn *conn)
{
    struct srv_server *srv = conn->srv;
    conn->tcp.data = conn;
    conn->timer.data = conn;
    llhttp_init(&conn->parser, HTTP_REQUEST, &srv->settings);
    conn->parser.data = conn;
    if (srv->tls && !(conn->tls = srv_tls_create(srv->tls, conn_tls_out, conn))) {
        srv_conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->reading = 1;
    uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb, conn_read_cb);
    conn_timer(conn, TIMER_IDLE);
}
