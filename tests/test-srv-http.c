/*
 * tests/test-srv-http.c — the real bitdistilld on 127.0.0.1 driven by a raw-socket client:
 * keep-alive, pipelining, chunked uploads, Expect: 100-continue, limits (413/414/431), 404/405,
 * malformed requests, slowloris cut-off, 200 concurrent connections, max-connections, metrics,
 * request ids, the error format of every non-2xx answer, SIGHUP reload and SIGTERM drain with a
 * request in flight.
 */
#include <jansson.h>
#include <sys/un.h>

#include "tests/http_client.h"
#include "tests/tap.h"

/* Is `body` the API's error format, with this status's type? */
static int is_error_body(const struct tc_res *r)
{
    json_error_t e;
    json_t *j = json_loads(r->body ? r->body : "", 0, &e);
    json_t *err = json_object_get(j, "error");
    int ok = json_is_object(err) && json_is_string(json_object_get(err, "message")) &&
             json_string_length(json_object_get(err, "message")) > 0 &&
             json_is_string(json_object_get(err, "type")) && json_object_get(err, "param") &&
             json_object_get(err, "code");
    char ct[128];
    ok = ok && tc_header(r, "Content-Type", ct, sizeof(ct)) && !strcmp(ct, "application/json");
    if (!ok)
        TAP_DIAG("not an error body: %s", r->body ? r->body : "(none)");
    json_decref(j);
    return ok;
}

static void test_keepalive_pipelining(int port)
{
    struct tc c;
    struct tc_res r;
    char v[128];
    TAP_OK(tc_open(&c, port) == 0, "connect");
    int good = 1;
    for (int i = 0; i < 3; i++) {
        tc_sends(&c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
        good &= tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200 &&
                !strcmp(r.body, "{\"status\":\"ok\"}\n");
        good &= !tc_header(&r, "Connection", v, sizeof(v));
        tc_res_free(&r);
    }
    TAP_OK(good, "three requests answered 200 on one keep-alive connection");

    /* Three pipelined requests in one write, answered in order. */
    tc_sends(&c, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Request-Id: first\r\n\r\n"
                 "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n"
                 "GET /readyz HTTP/1.1\r\nHost: x\r\nX-Request-Id: third\r\n\r\n");
    static const int want[] = {200, 404, 503};
    static const char *const ids[] = {"first", "second", "third"};
    good = 1;
    for (int i = 0; i < 3; i++) {
        good &= tc_read_response(&c, &r, 5, 0) == 0 && r.status == want[i] &&
                tc_header(&r, "X-Request-Id", v, sizeof(v)) && !strcmp(v, ids[i]);
        if (i > 0)
            good &= is_error_body(&r);
        tc_res_free(&r);
    }
    TAP_OK(good, "pipelined requests answered in order with their request ids");
    tc_close(&c);

    /* HTTP/1.0 without keep-alive: answered, then closed. */
    TAP_OK(tc_open(&c, port) == 0, "connect (HTTP/1.0)");
    tc_sends(&c, "GET /livez HTTP/1.0\r\n\r\n");
    TAP_OK(tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200 && tc_wait_closed(&c, 3),
           "HTTP/1.0 request answered and the connection closed");
    tc_res_free(&r);
    tc_close(&c);

    /* HEAD: headers with the GET's length, no body. */
    TAP_OK(tc_open(&c, port) == 0, "connect (HEAD)");
    tc_sends(&c, "HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    {
        double deadline = tc_now() + 5;
        char *end = tc_find(&c, "\r\n\r\n", deadline);
        int headok = end && !strncmp(c.buf, "HTTP/1.1 200", 12) &&
                     strstr(c.buf, "Content-Length: 16\r\n") != NULL;
        if (end)
            tc_consume(&c, (size_t)(end - c.buf) + 4);
        headok = headok && tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200;
        TAP_OK(headok, "HEAD answered without a body, next request follows directly");
        tc_res_free(&r);
    }
    tc_close(&c);
}

static void test_bodies(int port)
{
    struct tc c;
    struct tc_res r;

    /* A chunked upload: the JSON is reassembled (the unknown parameter is named). */
    TAP_OK(tc_open(&c, port) == 0, "connect (chunked)");
    tc_sends(&c, "POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Type: application/json\r\n\r\n");
    tc_sends(&c, "5\r\n{\"sco\r\n");
    usleep(50000);
    tc_sends(&c, "10\r\npe\":\"infer\",\"bog\r\n");
    tc_sends(&c, "6\r\nus\":1}\r\n0\r\n\r\n");
    int st = tc_read_response(&c, &r, 5, 0);
    TAP_OK(st == 0 && r.status == 400 && strstr(r.body, "'bogus'") && is_error_body(&r),
           "chunked body reassembled and validated (400 naming 'bogus'): %s", r.body);
    tc_res_free(&r);
    /* Same connection still usable. */
    tc_sends(&c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    TAP_OK(tc_read_response(&c, &r, 5, 0) == 0 && r.status == 200,
           "connection reusable after a 400");
    tc_res_free(&r);
    tc_close(&c);

    /* Malformed JSON: 400 naming the position. */
    tc_request(port,
               "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"scope\":", &r);
    TAP_OK(r.status == 400 && strstr(r.body, "invalid JSON at line 1") && is_error_body(&r),
           "malformed JSON -> 400 with position: %s", r.body);
    tc_res_free(&r);

    /* Expect: 100-continue: interim 100, then the final answer. */
    TAP_OK(tc_open(&c, port) == 0, "connect (expect)");
    tc_sends(&c, "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n"
                 "Expect: 100-continue\r\n\r\n");
    st = tc_read_response(&c, &r, 5, 1);
    TAP_OK(st == 0 && r.status == 100, "Expect: 100-continue gets 100 Continue");
    tc_res_free(&r);
    tc_sends(&c, "{\"scope\":\"x\"}");
    st = tc_read_response(&c, &r, 5, 0);
    TAP_OK(st == 0 && r.status == 400 && strstr(r.body, "scope"),
           "body after 100 Continue is processed (400 on bad scope)");
    tc_res_free(&r);
    tc_close(&c);

    /* Too large with Expect: 413 at once, no 100. */
    TAP_OK(tc_open(&c, port) == 0, "connect (expect 413)");
    tc_sends(&c, "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    st = tc_read_response(&c, &r, 5, 1);
    TAP_OK(st == 0 && r.status == 413 && is_error_body(&r),
           "oversized body with Expect gets 413 without 100 Continue");
    tc_res_free(&r);
    TAP_OK(tc_wait_closed(&c, 3), "connection closed after 413");
    tc_close(&c);

    /* Too large by Content-Length, body being sent: 413 and close. */
    TAP_OK(tc_open(&c, port) == 0, "connect (413)");
    tc_sends(&c, "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    char junk[8192];
    memset(junk, 'a', sizeof(junk));
    tc_send(&c, junk, sizeof(junk));
    st = tc_read_response(&c, &r, 5, 0);
    TAP_OK(st == 0 && r.status == 413 && strstr(r.body, "exceeds") && is_error_body(&r),
           "Content-Length over the route's limit -> 413: %s", r.body ? r.body : "");
    tc_res_free(&r);
    tc_close(&c);

    /* Too large while chunked: 413 once the limit is crossed. */
    TAP_OK(tc_open(&c, port) == 0, "connect (chunked 413)");
    tc_sends(&c, "POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        char head[32];
        snprintf(head, sizeof(head), "%zx\r\n", sizeof(junk));
        ok = !tc_sends(&c, head) && !tc_send(&c, junk, sizeof(junk)) && !tc_sends(&c, "\r\n");
    }
    st = tc_read_response(&c, &r, 5, 0);
    TAP_OK(st == 0 && r.status == 413 && is_error_body(&r),
           "chunked body crossing the limit -> 413");
    tc_res_free(&r);
    tc_close(&c);
}

static void test_limits(int port)
{
    struct tc_res r;
    char *big = malloc(40000);

    /* URL too long. */
    strcpy(big, "GET /");
    memset(big + 5, 'u', 10000);
    strcpy(big + 10005, " HTTP/1.1\r\nHost: x\r\n\r\n");
    TAP_OK(tc_request(port, big, &r) == 414 && is_error_body(&r), "10 kB target -> 414");
    tc_res_free(&r);

    /* Headers too large. */
    strcpy(big, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ");
    size_t n = strlen(big);
    memset(big + n, 'h', 20000);
    strcpy(big + n + 20000, "\r\n\r\n");
    TAP_OK(tc_request(port, big, &r) == 431 && is_error_body(&r), "20 kB header -> 431");
    tc_res_free(&r);

    /* Too many headers. */
    strcpy(big, "GET /livez HTTP/1.1\r\n");
    for (int i = 0; i < 120; i++)
        sprintf(big + strlen(big), "X-H%d: v\r\n", i);
    strcat(big, "\r\n");
    TAP_OK(tc_request(port, big, &r) == 431, "120 headers -> 431");
    tc_res_free(&r);
    free(big);

    /* Routing. */
    TAP_OK(tc_request(port, "GET /v2/unknown HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 404 &&
               strstr(r.body, "/v2/unknown") && is_error_body(&r),
           "unknown route -> 404 naming the path");
    tc_res_free(&r);
    char allow[64];
    TAP_OK(tc_request(port, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 405 &&
               tc_header(&r, "Allow", allow, sizeof(allow)) && !strcmp(allow, "GET, HEAD") &&
               is_error_body(&r),
           "wrong method -> 405 with Allow: GET, HEAD");
    tc_res_free(&r);
    TAP_OK(tc_request(port, "PUT /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r) ==
                   405 &&
               tc_header(&r, "Allow", allow, sizeof(allow)) && strstr(allow, "GET") &&
               strstr(allow, "POST"),
           "405 Allow lists every method of the path (%s)", allow);
    tc_res_free(&r);

    /* Malformed requests. */
    TAP_OK(tc_request(port, "GARBAGE\r\n\r\n", &r) == 400 && is_error_body(&r),
           "garbage request line -> 400");
    tc_res_free(&r);
    TAP_OK(tc_request(port, "GET /livez HTTP/9.1\r\n\r\n", &r) >= 400 && is_error_body(&r),
           "unknown HTTP version -> 4xx/5xx (%d)", r.status);
    tc_res_free(&r);
    TAP_OK(tc_request(port, "GET http://evil/livez HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 400,
           "absolute-form target -> 400");
    tc_res_free(&r);
    TAP_OK(tc_request(port,
                      "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                      &r) == 400,
           "Content-Length with Transfer-Encoding (smuggling) -> 400");
    tc_res_free(&r);
    TAP_OK(tc_request(port, "GET /livez HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n", &r) == 417,
           "unsupported Expect -> 417");
    tc_res_free(&r);
}

static void test_slowloris(int port)
{
    struct tc c;
    struct tc_res r;
    static const char req[] = "GET /livez HTTP/1.1\r\nHost: localhost\r\nX-Slow: yes\r\n\r\n";
    TAP_OK(tc_open(&c, port) == 0, "connect (slowloris)");
    double t0 = tc_now();
    int cut = 0;
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        if (tc_send(&c, req + i, 1)) {
            cut = 1;
            break;
        }
        struct pollfd p = {c.fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            cut = 1;
            break;
        }
    }
    double dt = tc_now() - t0;
    int st = tc_read_response(&c, &r, 3, 0);
    TAP_OK(cut && st == 0 && r.status == 408 && is_error_body(&r),
           "one byte per 100 ms: 408 after the header timeout (%.2f s)", dt);
    TAP_OK(dt > 0.8 && dt < 2.5, "cut off near the 1 s header timeout (%.2f s)", dt);
    TAP_OK(tc_wait_closed(&c, 3), "slow connection closed");
    tc_res_free(&r);
    tc_close(&c);
}

static void test_concurrency(int port)
{
    enum { N = 200 };
    struct tc *cs = calloc(N, sizeof(*cs));
    int opened = 0, answered = 0;
    for (int i = 0; i < N; i++)
        opened += tc_open(&cs[i], port) == 0;
    TAP_OK(opened == N, "%d of %d concurrent connections opened", opened, N);
    for (int i = 0; i < N; i++)
        tc_sends(&cs[i], "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < N; i++) {
        struct tc_res r;
        if (tc_read_response(&cs[i], &r, 10, 0) == 0 && r.status == 200)
            answered++;
        tc_res_free(&r);
    }
    TAP_OK(answered == N, "%d of %d concurrent requests answered 200", answered, N);

    struct tc_res r;
    TAP_OK(tc_request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200,
           "metrics answered with 200 connections open");
    char ct[128];
    TAP_OK(tc_header(&r, "Content-Type", ct, sizeof(ct)) &&
               !strcmp(ct, "text/plain; version=0.0.4; charset=utf-8"),
           "metrics content type is Prometheus text 0.0.4");
    char *g = strstr(r.body, "\nhttp_open_connections ");
    int open_now = g ? atoi(g + strlen("\nhttp_open_connections ")) : -1;
    TAP_OK(open_now >= N + 1, "http_open_connections counts the open connections (%d)", open_now);
    char *line =
        strstr(r.body, "http_requests_total{handler=\"livez\",method=\"GET\",status=\"200\"} ");
    long cnt = line ? atol(strchr(line, '}') + 2) : -1;
    TAP_OK(cnt >= N, "http_requests_total counts livez requests (%ld)", cnt);
    TAP_OK(strstr(r.body, "http_request_duration_seconds_bucket{handler=\"livez\",le=\"+Inf\"}") &&
               strstr(r.body, "# TYPE http_request_duration_seconds histogram"),
           "request duration histogram exported");
    char *rss = strstr(r.body, "\nprocess_resident_memory_bytes ");
    TAP_OK(rss && atof(rss + 31) > 1e6, "process_resident_memory_bytes exported (%.0f)",
           rss ? atof(rss + 31) : 0.0);
    TAP_OK(strstr(r.body,
                  "http_requests_total{handler=\"unmatched\",method=\"GET\",status=\"404\"}") !=
               NULL,
           "unmatched requests counted under handler=\"unmatched\"");
    tc_res_free(&r);
    for (int i = 0; i < N; i++)
        tc_close(&cs[i]);
    free(cs);
}

static void test_max_connections(void)
{
    struct td d;
    const char *args[] = {"--max-connections", "4", NULL};
    TAP_OK(td_mkdir(&d, "maxconn") == 0 && td_start(&d, args) == 0,
           "daemon with max-connections 4");
    struct tc cs[5];
    for (int i = 0; i < 4; i++)
        tc_open(&cs[i], d.port);
    usleep(100000);
    struct tc_res r;
    TAP_OK(tc_open(&cs[4], d.port) == 0 && tc_read_response(&cs[4], &r, 5, 0) == 0 &&
               r.status == 503 && strstr(r.body, "max-connections"),
           "fifth connection gets 503 naming max-connections");
    tc_res_free(&r);
    for (int i = 0; i < 5; i++)
        tc_close(&cs[i]);
    usleep(100000);
    TAP_OK(tc_request(d.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200,
           "accepted again after connections closed");
    tc_res_free(&r);
    TAP_OK(td_stop(&d) == 0, "daemon exits 0 on SIGTERM");
    td_cleanup(&d);
}

static void test_reload(void)
{
    struct td d;
    char cfg[400], arg[410];
    TAP_OK(td_mkdir(&d, "reload") == 0, "tmpdir");
    snprintf(cfg, sizeof(cfg), "%s/bitdistill.json", d.dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"max-header-size\": \"64k\", \"log-level\": \"warn\"}\n");
    fclose(f);
    snprintf(arg, sizeof(arg), "--config=%s", cfg);
    const char *args[] = {arg, NULL};
    TAP_OK(td_start(&d, args) == 0, "daemon with a config file");
    char *req = malloc(8192);
    strcpy(req, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    size_t n = strlen(req);
    memset(req + n, 'p', 4000);
    strcpy(req + n + 4000, "\r\n\r\n");
    struct tc_res r;
    TAP_OK(tc_request(d.port, req, &r) == 200, "4 kB header accepted under max-header-size 64k");
    tc_res_free(&r);
    TAP_OK(!td_log_has(&d, "GET /livez 200", 0.2), "log-level warn: request lines not logged");
    f = fopen(cfg, "w");
    fprintf(f, "{\"max-header-size\": \"1k\", \"log-level\": \"info\"}\n");
    fclose(f);
    kill(d.pid, SIGHUP);
    TAP_OK(td_log_has(&d, "configuration reloaded", 5), "SIGHUP reloads the config file");
    TAP_OK(tc_request(d.port, req, &r) == 431, "after reload, max-header-size 1k -> 431");
    tc_res_free(&r);
    TAP_OK(tc_request(d.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 200 &&
               td_log_has(&d, "GET /livez 200", 3),
           "after reload, log-level info: request lines logged");
    tc_res_free(&r);
    /* A broken file keeps the running configuration. */
    f = fopen(cfg, "w");
    fprintf(f, "{\"max-header-size\": \"lots\"}\n");
    fclose(f);
    kill(d.pid, SIGHUP);
    TAP_OK(td_log_has(&d, "reload failed, keeping the running configuration", 5),
           "a bad config file on reload is refused with a message");
    TAP_OK(tc_request(d.port, req, &r) == 431, "the previous configuration stays in force");
    tc_res_free(&r);
    free(req);
    TAP_OK(td_stop(&d) == 0, "daemon exits 0");
    td_cleanup(&d);
}

static void test_drain(void)
{
    struct td d;
    TAP_OK(td_mkdir(&d, "drain") == 0 && td_start(&d, NULL) == 0, "daemon for drain test");
    struct tc busy, idle;
    struct tc_res r;
    TAP_OK(tc_open(&busy, d.port) == 0 && tc_open(&idle, d.port) == 0, "two connections");
    /* `idle` did one request and sits in keep-alive; `busy` is mid-request. */
    tc_sends(&idle, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    tc_read_response(&idle, &r, 5, 0);
    tc_res_free(&r);
    static const char body[] = "{\"scope\":\"infer\",\"name\":\"drain\"}";
    char head[200];
    snprintf(head, sizeof(head), "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             sizeof(body) - 1);
    tc_sends(&busy, head);
    tc_send(&busy, body, 10);
    usleep(100000);
    kill(d.pid, SIGTERM);
    TAP_OK(td_log_has(&d, "draining", 5), "SIGTERM starts a drain");
    TAP_OK(tc_wait_closed(&idle, 3), "idle keep-alive connection closed by the drain");
    struct tc fresh;
    int refused = tc_open(&fresh, d.port) != 0;
    if (!refused)
        tc_close(&fresh);
    TAP_OK(refused, "no new connections accepted while draining");
    TAP_OK(td_wait(&d, 0.3) < 0, "daemon waits for the request in flight");
    tc_send(&busy, body + 10, sizeof(body) - 1 - 10);
    int st = tc_read_response(&busy, &r, 5, 0);
    char v[64];
    TAP_OK(st == 0 && r.status == 201 && strstr(r.body, "\"key\"") &&
               tc_header(&r, "Connection", v, sizeof(v)) && !strcmp(v, "close"),
           "in-flight request completed (201) with Connection: close");
    tc_res_free(&r);
    TAP_OK(td_wait(&d, 10) == 0, "daemon exits 0 after the drain");
    tc_close(&busy);
    tc_close(&idle);

    /* A second signal exits at once even with a request in flight. */
    snprintf(d.log, sizeof(d.log), "%s/daemon2.log", d.dir);
    TAP_OK(td_start(&d, NULL) == 0, "daemon restarted on the same data dir");
    TAP_OK(tc_open(&busy, d.port) == 0, "connect");
    tc_sends(&busy, head);
    usleep(100000);
    kill(d.pid, SIGTERM);
    td_log_has(&d, "draining", 5);
    kill(d.pid, SIGTERM);
    int second = td_wait(&d, 3);
    TAP_OK(second == 1, "second SIGTERM exits at once (status 1, got %d)", second);
    tc_close(&busy);
    td_cleanup(&d);
}

static void test_notify(void)
{
    struct td d;
    struct sockaddr_un sa;
    char buf[512];
    TAP_OK(td_mkdir(&d, "notify") == 0, "tmpdir");
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(d.dir) + 13 >= sizeof(sa.sun_path))
        TAP_BAIL("temporary directory name too long for a unix socket");
    memcpy(sa.sun_path, d.dir, strlen(d.dir));
    memcpy(sa.sun_path + strlen(d.dir), "/notify.sock", 13);
    TAP_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "notify socket bound");
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    setenv("JOURNAL_STREAM", "8:12345", 1);
    int started = td_start(&d, NULL) == 0;
    unsetenv("NOTIFY_SOCKET");
    unsetenv("JOURNAL_STREAM");
    TAP_OK(started, "daemon under a fake systemd");
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    TAP_OK(n > 0 && strstr(buf, "READY=1") && strstr(buf, "STATUS="),
           "sd_notify READY=1 with STATUS once listening: %s", buf);
    kill(d.pid, SIGTERM);
    n = recv(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    TAP_OK(n > 0 && strstr(buf, "STOPPING=1"), "sd_notify STOPPING=1 on SIGTERM: %s", buf);
    TAP_OK(td_wait(&d, 10) == 0, "daemon exits 0");
    TAP_OK(td_log_has(&d, "<6>bitdistilld", 1) && td_log_has(&d, "<4>no API keys", 1),
           "under systemd, log lines carry <N> priority prefixes");
    close(fd);
    td_cleanup(&d);
}

int main(void)
{
    struct td d;
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--header-timeout-ms", "1000", "--body-timeout-ms", "2000", NULL};
    if (td_mkdir(&d, "http") || td_start(&d, args))
        TAP_BAIL("cannot start bitdistilld (see %s)", d.log);
    TAP_DIAG("bitdistilld on port %d, log %s", d.port, d.log);
    test_keepalive_pipelining(d.port);
    test_bodies(d.port);
    test_limits(d.port);
    test_slowloris(d.port);
    test_concurrency(d.port);
    TAP_OK(td_log_has(&d, "GET /livez 200 16B", 1) && td_log_has(&d, "rid=first", 1),
           "access log has method, path, status, bytes and request id");
    TAP_OK(td_stop(&d) == 0, "daemon exits 0 on SIGTERM");
    td_cleanup(&d);
    test_max_connections();
    test_reload();
    test_drain();
    test_notify();
    return tap_done();
}
