/*
 * server/conn.h — private to server/: the server, connection and request structs shared by
 * server.c (listener, drain) and http.c (parsing, answering). Nothing outside server/ includes it.
 */
#ifndef BD_SERVER_CONN_H
#define BD_SERVER_CONN_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "server/server.h"

struct srv_tls;
struct srv_tls_ctx;

/* A growable byte buffer; always NUL-terminated when p != NULL. */
struct srv_buf {
    char *p;
    size_t n, cap;
};

int srv_buf_add(struct srv_buf *b, const char *data, size_t len);
void srv_buf_release(struct srv_buf *b);

struct srv_server {
    uv_loop_t *loop;
    const struct srv_config *cfg; /* borrowed */
    struct store *store;          /* borrowed */
    struct srv_hooks hooks;
    struct srv_metrics *metrics; /* owned */
    struct srv_tls_ctx *tls;     /* owned; NULL = plain HTTP */
    uv_tcp_t listener;
    int listening, listener_open;
    int port;
    struct srv_conn *conns; /* doubly linked list of open connections */
    int nconns;
    llhttp_settings_t settings;
    char read_buf[65536]; /* one read at a time on the loop thread */
    int draining;
    uv_timer_t drain_timer;
    int drain_timer_open;
    uv_timer_t accept_timer; /* retries an accept that ran out of memory */
    int accept_timer_open;
    void (*drain_done)(struct srv_server *srv, int timed_out);
    const char *not_ready;
    char date[40];
    uint64_t date_sec;
    uint64_t rng[2];
};

struct srv_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct srv_server *srv;
    struct srv_conn *prev, *next;
    llhttp_t parser;
    struct srv_tls *tls;
    struct srv_buf in;          /* received, not yet parsed */
    struct srv_req *req;        /* request being parsed or answered (the connection's reference) */
    struct srv_buf hname, hval; /* header being parsed */
    int hstate;                 /* 0 none, 1 in field, 2 in value */
    size_t header_bytes;        /* request line + headers so far */
    int paused;                 /* a complete request is being answered; parsing waits */
    int in_parse;               /* inside conn_parse (no re-entry) */
    int close_after;            /* close once the response is written */
    int closing;                /* uv_close called */
    int handles;                /* open libuv handles; freed at 0 */
    int pending_writes;
    int reading;
    int lingering;  /* shut down for writing, discarding input until EOF */
    int timer_kind; /* 0 idle, 1 headers, 2 body, 3 none, 4 linger */
    int oom;        /* a parser callback ran out of memory (answer 500) */
};

struct srv_param {
    char *name, *value;
};

struct srv_req {
    int refs;
    struct srv_conn *conn; /* NULL once the connection is gone */
    struct srv_server *srv;
    char method[24];
    int http_minor;
    struct srv_buf url;
    char *path, *query; /* into pathq */
    char *pathq;
    struct srv_buf *hdr_names, *hdr_values;
    size_t nhdrs, hcap;
    struct srv_buf body;
    size_t body_limit;
    int reject;
    char *reject_msg;
    int keep_alive;
    int expect_continue;
    int head; /* HEAD: headers only */
    char id[80];
    const char *handler;
    const void *data;
    struct srv_param params[8];
    int nparams;
    struct srv_buf res_headers;
    uint64_t t_start; /* uv_hrtime at the first byte */
    int status;
    size_t bytes_out;
    int state; /* 0 parsing, 1 complete (being answered), 2 streaming, 3 answered */
    int chunked;
    int reject_close; /* the connection closes after this answer */
};

/* http.c */
void srv_http_settings(llhttp_settings_t *s);
void srv_conn_accepted(struct srv_conn *conn);
void srv_conn_close(struct srv_conn *conn);
/* Answer a server-made error through the on_error hook, then close. */
void srv_conn_fail(struct srv_conn *conn, int status, const char *message);
int srv_conn_idle(const struct srv_conn *conn);
void srv_conn_timeout_update(struct srv_conn *conn);

#endif
