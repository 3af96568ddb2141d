/*
 * server/server.h — the daemon's HTTP server: listener, connections, limits, drain.
 *
 * One srv_server runs on one libuv loop (the loop thread). It owns the listening socket, every
 * connection, the TLS context and the metrics registry; it borrows the config and the store.
 * The API layer plugs in through two callbacks:
 *   on_headers(req): called when a request's headers are complete. Return 0 to go on, or an
 *     HTTP status to refuse the request (the server answers with the standard error body via
 *     on_error and discards the body); srv_server_reject_with sets the message.
 *   on_request(req): called when the whole request (with body) has arrived; must answer, now or
 *     later (see http.h).
 */
#ifndef BD_SERVER_SERVER_H
#define BD_SERVER_SERVER_H

#include <uv.h>

#include "server/conf.h"
#include "server/http.h"

struct store;
struct srv_metrics;

struct srv_hooks {
    int (*on_headers)(struct srv_req *req, void *ctx);
    void (*on_request)(struct srv_req *req, void *ctx);
    /* Answer `req` with an error response (status, message); used for server-made errors. */
    void (*on_error)(struct srv_req *req, int status, const char *message, void *ctx);
    void *ctx;
};

struct srv_server;

/*
 * Create a server on `loop` with `cfg` (borrowed; must outlive the server; re-read by
 * srv_server_reconfigure) and `store` (borrowed). Returns NULL with err set.
 */
struct srv_server *srv_server_create(uv_loop_t *loop, const struct srv_config *cfg,
                                     struct store *store, const struct srv_hooks *hooks, char *err,
                                     size_t errlen);
/* Bind and listen on cfg->host:cfg->port; writes cfg->port_file. Returns 0 or -1 with err. */
int srv_server_listen(struct srv_server *srv, char *err, size_t errlen);
/* The port actually bound (after listen). */
int srv_server_port(const struct srv_server *srv);

/*
 * Apply a new config (after SIGHUP): limits, timeouts and the TLS certificate. Host, port and
 * data-dir changes need a restart and are reported in err. Returns 0 or -1.
 */
int srv_server_reconfigure(struct srv_server *srv, const struct srv_config *cfg, char *err,
                           size_t errlen);

/*
 * Start draining: stop accepting, close idle connections, let in-flight requests finish (their
 * connections close after the response); `done` is called once no connection is left or
 * after cfg->drain_timeout_ms (then remaining connections are cut).
 */
void srv_server_drain(struct srv_server *srv, void (*done)(struct srv_server *srv, int timed_out));
int srv_server_draining(const struct srv_server *srv);

/* Close every handle; call uv_run afterwards to let the closes finish, then srv_server_free. */
void srv_server_close(struct srv_server *srv);
void srv_server_free(struct srv_server *srv);

/* Borrowed parts. */
struct srv_metrics *srv_server_metrics(struct srv_server *srv);
struct store *srv_server_store(struct srv_server *srv);
const struct srv_config *srv_server_config(struct srv_server *srv);
uv_loop_t *srv_server_loop(struct srv_server *srv);
int srv_server_open_connections(const struct srv_server *srv);

/* Readiness: NULL when ready, else why not (borrowed static or server-owned string). */
const char *srv_server_not_ready(const struct srv_server *srv);
void srv_server_set_not_ready(struct srv_server *srv, const char *reason);

#endif
