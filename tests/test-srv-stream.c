/*
 * tests/test-srv-stream.c — the server core in-process with test handlers: chunked responses
 * and Server-Sent Events written over time, handlers that answer later (from a timer, as work
 * from another thread would), pipelining across such late answers, a client that leaves before
 * its answer, and HTTP/1.0 streaming (no chunked encoding: the body ends at close).
 * The client runs in its own thread with blocking sockets.
 */
#include <pthread.h>
#include <uv.h>

#include "server/conf.h"
#include "server/server.h"
#include "tests/http_client.h"
#include "tests/tap.h"

struct late {
    uv_timer_t t;
    struct srv_req *req;
    int step;
};

static struct srv_server *g_srv;
static uv_loop_t g_loop;
static uv_async_t g_stop;
static volatile int g_gone_checked = -1; /* -1 not yet, 1 request was dead when answered */

static void late_closed(uv_handle_t *h)
{
    free(h->data);
}

static void late_finish(struct late *l)
{
    srv_req_unref(l->req);
    uv_close((uv_handle_t *)&l->t, late_closed);
}

static void on_late_answer(uv_timer_t *t)
{
    struct late *l = t->data;
    char body[256];
    int n = snprintf(body, sizeof(body), "late:%s", srv_req_path(l->req));
    srv_res_send(l->req, 200, "text/plain", body, (size_t)n);
    late_finish(l);
}

static void on_gone_answer(uv_timer_t *t)
{
    struct late *l = t->data;
    g_gone_checked = !srv_req_alive(l->req);
    srv_res_send(l->req, 200, "text/plain", "nobody", 6); /* must be a harmless no-op */
    late_finish(l);
}

static void on_chunk_step(uv_timer_t *t)
{
    struct late *l = t->data;
    srv_res_stream_write(l->req, "world", 5);
    srv_res_stream_end(l->req);
    late_finish(l);
}

static void on_sse_step(uv_timer_t *t)
{
    struct late *l = t->data;
    char ev[64];
    if (l->step < 3) {
        int n = snprintf(ev, sizeof(ev), "data: {\"n\":%d}\n\n", l->step++);
        srv_res_stream_write(l->req, ev, (size_t)n);
        return; /* repeating timer */
    }
    srv_res_stream_write(l->req, "data: [DONE]\n\n", 14);
    srv_res_stream_end(l->req);
    uv_timer_stop(t);
    late_finish(l);
}

static struct late *late_new(struct srv_req *req, uv_timer_cb cb, uint64_t ms, uint64_t repeat)
{
    struct late *l = calloc(1, sizeof(*l));
    l->req = req;
    srv_req_ref(req);
    uv_timer_init(&g_loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, cb, ms, repeat);
    return l;
}

static int t_on_headers(struct srv_req *req, void *ctx)
{
    (void)ctx;
    srv_req_set_handler(req, "test");
    return 0;
}

static void t_on_request(struct srv_req *req, void *ctx)
{
    const char *p = srv_req_path(req);
    (void)ctx;
    if (!strcmp(p, "/chunked")) {
        srv_res_stream_start(req, 200, "text/plain");
        srv_res_stream_write(req, "hello ", 6);
        late_new(req, on_chunk_step, 30, 0);
    } else if (!strcmp(p, "/sse")) {
        srv_res_stream_start(req, 200, "text/event-stream");
        late_new(req, on_sse_step, 10, 10);
    } else if (!strncmp(p, "/async", 6)) {
        late_new(req, on_late_answer, 50, 0);
    } else if (!strcmp(p, "/gone")) {
        late_new(req, on_gone_answer, 300, 0);
    } else {
        srv_res_send(req, 200, "text/plain", "ok", 2);
    }
}

static void t_on_error(struct srv_req *req, int status, const char *message, void *ctx)
{
    (void)ctx;
    srv_res_send(req, status, "text/plain", message, strlen(message));
}

static void *client(void *arg)
{
    int port = *(int *)arg;
    struct tc c;
    struct tc_res r;
    char v[128];

    TAP_OK(tc_open(&c, port) == 0, "connect");
    tc_sends(&c, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    int got = tc_read_response(&c, &r, 5, 0);
    TAP_OK(got == 0 && r.status == 200 && r.chunked && !strcmp(r.body, "hello world"),
           "chunked response written in two parts over time: '%s'", r.body ? r.body : "");
    tc_res_free(&r);

    tc_sends(&c, "GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    int ok = tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200 &&
             tc_header(&r, "Content-Type", v, sizeof(v)) && !strcmp(v, "text/event-stream");
    ok = ok && tc_header(&r, "Cache-Control", v, sizeof(v)) && !strcmp(v, "no-cache");
    TAP_OK(ok, "SSE response has text/event-stream and no-cache");
    TAP_OK(r.body && !strcmp(r.body, "data: {\"n\":0}\n\ndata: {\"n\":1}\n\ndata: {\"n\":2}\n\n"
                                     "data: [DONE]\n\n"),
           "SSE events arrive in order ending with [DONE]");
    tc_res_free(&r);

    /* Pipelined: late, immediate, late -> answered in request order. */
    tc_sends(&c, "GET /async/one HTTP/1.1\r\nHost: x\r\n\r\nGET /now HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /async/three HTTP/1.1\r\nHost: x\r\n\r\n");
    static const char *const want[] = {"late:/async/one", "ok", "late:/async/three"};
    ok = 1;
    for (int i = 0; i < 3; i++) {
        ok &= tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200 && !strcmp(r.body, want[i]);
        tc_res_free(&r);
    }
    TAP_OK(ok, "pipelined requests with late answers come back in order");
    tc_close(&c);

    /* A client that leaves before its late answer. */
    TAP_OK(tc_open(&c, port) == 0, "connect (gone)");
    tc_sends(&c, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(50000);
    tc_close(&c);
    for (int i = 0; i < 100 && g_gone_checked < 0; i++)
        usleep(10000);
    TAP_OK(g_gone_checked == 1, "late answer to a departed client sees a dead request");

    /* HTTP/1.0 stream: not chunked, ends with the connection. */
    TAP_OK(tc_open(&c, port) == 0, "connect (1.0)");
    tc_sends(&c, "GET /chunked HTTP/1.0\r\n\r\n");
    TAP_OK(tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200 && !r.chunked &&
               !strcmp(r.body, "hello world"),
           "HTTP/1.0 stream delimited by close");
    tc_res_free(&r);
    tc_close(&c);

    /* Still serving. */
    TAP_OK(tc_request(port, "GET /now HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200,
           "server still answers");
    tc_res_free(&r);
    uv_async_send(&g_stop);
    return NULL;
}

static void on_stop(uv_async_t *a)
{
    srv_server_close(g_srv);
    uv_close((uv_handle_t *)a, NULL);
}

int main(void)
{
    struct srv_config cfg;
    char err[256];
    pthread_t th;
    signal(SIGPIPE, SIG_IGN);
    srv_config_init(&cfg);
    free(cfg.host);
    cfg.host = strdup("127.0.0.1");
    cfg.port = 0;
    uv_loop_init(&g_loop);
    struct srv_hooks hooks = {t_on_headers, t_on_request, t_on_error, NULL};
    g_srv = srv_server_create(&g_loop, &cfg, NULL, &hooks, err, sizeof(err));
    if (!g_srv || srv_server_listen(g_srv, err, sizeof(err)))
        TAP_BAIL("server: %s", err);
    int port = srv_server_port(g_srv);
    uv_async_init(&g_loop, &g_stop, on_stop);
    pthread_create(&th, NULL, client, &port);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    srv_server_free(g_srv);
    TAP_OK(uv_loop_close(&g_loop) == 0, "every handle closed");
    srv_config_release(&cfg);
    return tap_done();
}
