/*
 * server/server.c — the listener and the server's life: create, listen, accept (with the
 * connection limit), reconfigure on SIGHUP, drain on SIGTERM, close. Connections themselves are
 * in http.c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "server/conn.h"
#include "server/metrics.h"
#include "server/tls.h"

struct srv_server *srv_server_create(uv_loop_t *loop, const struct srv_config *cfg,
                                     struct store *store, const struct srv_hooks *hooks, char *err,
                                     size_t errlen)
{
    struct srv_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->cfg = cfg;
    srv->store = store;
    srv->hooks = *hooks;
    srv->not_ready = "starting";
    srv_http_settings(&srv->settings);
    if (!(srv->metrics = srv_metrics_create())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->tls_cert && !(srv->tls = srv_tls_ctx_create(cfg->tls_cert, cfg->tls_key, err, errlen)))
        goto fail;
    return srv;
fail:
    srv_metrics_free(srv->metrics);
    free(srv);
    return NULL;
}

static void srv_accept(struct srv_server *srv);

static void srv_accept_retry(uv_timer_t *t)
{
    struct srv_server *srv = t->data;
    if (srv->listener_open)
        srv_accept(srv);
}

static void srv_on_connection(uv_stream_t *listener, int status)
{
    struct srv_server *srv = listener->data;
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    srv_accept(srv);
}

/*
 * Accept the pending connection. Out of memory, it stays pending and is retried after 100 ms:
 * libuv stops watching the listener until uv_accept is called, so returning without accepting
 * would stop the server accepting for good.
 */
static void srv_accept(struct srv_server *srv)
{
    uv_stream_t *listener = (uv_stream_t *)&srv->listener;
    struct srv_conn *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        log_error("accept: out of memory (retrying in 100 ms)");
        if (!srv->accept_timer_open) {
            uv_timer_init(srv->loop, &srv->accept_timer);
            srv->accept_timer.data = srv;
            srv->accept_timer_open = 1;
        }
        uv_timer_start(&srv->accept_timer, srv_accept_retry, 100, 0);
        return;
    }
    conn->srv = srv;
    uv_tcp_init(srv->loop, &conn->tcp);
    uv_timer_init(srv->loop, &conn->timer);
    conn->handles = 2;
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) < 0) {
        srv_conn_close(conn);
        return;
    }
    srv_conn_accepted(conn);
    if (!conn->closing && srv->nconns > srv->cfg->max_connections) {
        log_warn("connection refused: %d open connections (max-connections %d)", srv->nconns - 1,
                 srv->cfg->max_connections);
        if (srv->tls)
            srv_conn_close(conn); /* no handshake yet: nothing can be said */
        else
            srv_conn_fail(conn, 503, "too many open connections (max-connections)");
    }
}

int srv_server_listen(struct srv_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int rc;
    if ((rc = uv_ip4_addr(srv->cfg->host, srv->cfg->port, (struct sockaddr_in *)&addr)) &&
        (rc = uv_ip6_addr(srv->cfg->host, srv->cfg->port, (struct sockaddr_in6 *)&addr))) {
        snprintf(err, errlen, "--host '%s' is not an IPv4 or IPv6 address", srv->cfg->host);
        return -1;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener_open = 1;
    srv->listener.data = srv;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0)) ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, 511, srv_on_connection))) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", srv->cfg->host, srv->cfg->port,
                 uv_strerror(rc));
        return -1;
    }
    srv->listening = 1;
    int len = sizeof(addr);
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addr, &len);
    srv->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                 : ((struct sockaddr_in *)&addr)->sin_port);
    if (srv->cfg->port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", srv->cfg->port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", srv->port) < 0 || fclose(f) ||
            rename(tmp, srv->cfg->port_file)) {
            snprintf(err, errlen, "cannot write --port-file '%s': %s", srv->cfg->port_file,
                     strerror(errno));
            return -1;
        }
    }
    return 0;
}

int srv_server_port(const struct srv_server *srv)
{
    return srv->port;
}

int srv_server_reconfigure(struct srv_server *srv, const struct srv_config *cfg, char *err,
                           size_t errlen)
{
    const struct srv_config *old = srv->cfg;
    if (strcmp(old->host, cfg->host) || (old->port != cfg->port && cfg->port != 0) ||
        strcmp(old->data_dir, cfg->data_dir)) {
        snprintf(err, errlen, "host, port and data-dir changes take effect only after a restart");
        return -1;
    }
    if (cfg->tls_cert && srv->tls) {
        struct srv_tls_ctx *t = srv_tls_ctx_create(cfg->tls_cert, cfg->tls_key, err, errlen);
        if (!t)
            return -1; /* keep serving with the old certificate */
        srv_tls_ctx_free(srv->tls);
        srv->tls = t;
    } else if (!cfg->tls_cert != !srv->tls) {
        snprintf(err, errlen, "turning TLS on or off takes effect only after a restart");
        return -1;
    }
    srv->cfg = cfg;
    return 0;
}

static void srv_drain_timeout(uv_timer_t *t)
{
    struct srv_server *srv = t->data;
    log_warn("drain timeout: closing %d connection(s) with requests in flight", srv->nconns);
    void (*done)(struct srv_server *, int) = srv->drain_done;
    srv->drain_done = NULL;
    while (srv->conns)
        srv_conn_close(srv->conns);
    if (done)
        done(srv, 1);
}

static void srv_listener_closed(uv_handle_t *h)
{
    (void)h;
}

void srv_server_drain(struct srv_server *srv, void (*done)(struct srv_server *srv, int timed_out))
{
    if (srv->draining)
        return;
    srv->draining = 1;
    srv->drain_done = done;
    if (srv->listener_open) {
        uv_close((uv_handle_t *)&srv->listener, srv_listener_closed);
        srv->listener_open = 0;
        srv->listening = 0;
    }
    if (srv->accept_timer_open) {
        uv_close((uv_handle_t *)&srv->accept_timer, NULL);
        srv->accept_timer_open = 0;
    }
    /* Idle keep-alive connections go now; busy ones close after their response. */
    struct srv_conn *c = srv->conns;
    while (c) {
        struct srv_conn *next = c->next;
        if (srv_conn_idle(c))
            srv_conn_close(c);
        c = next;
    }
    if (!srv->drain_done)
        return; /* the last idle connection's close already reported the drain done */
    if (srv->nconns == 0) {
        srv->drain_done = NULL;
        if (done)
            done(srv, 0);
        return;
    }
    uv_timer_init(srv->loop, &srv->drain_timer);
    srv->drain_timer_open = 1;
    srv->drain_timer.data = srv;
    uv_timer_start(&srv->drain_timer, srv_drain_timeout,
                   srv->cfg->drain_timeout_ms > 0 ? (uint64_t)srv->cfg->drain_timeout_ms : 1, 0);
}

int srv_server_draining(const struct srv_server *srv)
{
    return srv->draining;
}

void srv_server_close(struct srv_server *srv)
{
    srv->drain_done = NULL;
    while (srv->conns)
        srv_conn_close(srv->conns);
    if (srv->listener_open) {
        uv_close((uv_handle_t *)&srv->listener, srv_listener_closed);
        srv->listener_open = 0;
    }
    if (srv->drain_timer_open) {
        uv_close((uv_handle_t *)&srv->drain_timer, NULL);
        srv->drain_timer_open = 0;
    }
    if (srv->accept_timer_open) {
        uv_close((uv_handle_t *)&srv->accept_timer, NULL);
        srv->accept_timer_open = 0;
    }
}

void srv_server_free(struct srv_server *srv)
{
    if (!srv)
        return;
    srv_tls_ctx_free(srv->tls);
    srv_metrics_free(srv->metrics);
    free(srv);
}

struct srv_metrics *srv_server_metrics(struct srv_server *srv)
{
    return srv->metrics;
}
struct store *srv_server_store(struct srv_server *srv)
{
    return srv->store;
}
const struct srv_config *srv_server_config(struct srv_server *srv)
{
    return srv->cfg;
}
uv_loop_t *srv_server_loop(struct srv_server *srv)
{
    return srv->loop;
}
int srv_server_open_connections(const struct srv_server *srv)
{
    return srv->nconns;
}

const char *srv_server_not_ready(const struct srv_server *srv)
{
    return srv->draining ? "draining: shutting down" : srv->not_ready;
}

void srv_server_set_not_ready(struct srv_server *srv, const char *reason)
{
    srv->not_ready = reason;
}
