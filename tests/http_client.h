/*
 * tests/http_client.h — a raw-socket HTTP/1.1 client for the server tests, and helpers to run
 * the real daemon on an ephemeral port. Header-only (static functions) so each test program
 * takes what it uses.
 *
 * The client reads responses itself (status line, headers, Content-Length or chunked body), so
 * tests can pipeline, send bytes slowly, half-close and see exactly what the server wrote.
 */
#ifndef BD_TESTS_HTTP_CLIENT_H
#define BD_TESTS_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TC_BUF (4 << 20)

struct tc {
    int fd;
    char *buf; /* received, not yet consumed */
    size_t n;
    int eof;
};

struct tc_res {
    int status;
    char headers[8192]; /* raw header block, "Name: value\r\n"... */
    char *body;         /* decoded (de-chunked), NUL-terminated; free with tc_res_free */
    size_t body_len;
    int chunked;
};

static inline double tc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int tc_open(struct tc *c, int port)
{
    struct sockaddr_in sa;
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->buf = malloc(TC_BUF);
    return c->buf ? 0 : -1;
}

static inline void tc_close(struct tc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

static inline int tc_send(struct tc *c, const char *data, size_t len)
{
    while (len) {
        ssize_t k = send(c->fd, data, len, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += k;
        len -= (size_t)k;
    }
    return 0;
}

static inline int tc_sends(struct tc *c, const char *s)
{
    return tc_send(c, s, strlen(s));
}

/* Read more bytes, waiting up to timeout seconds. Returns bytes read, 0 on EOF, -1 timeout/error. */
static inline int tc_fill(struct tc *c, double timeout)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    if (c->eof)
        return 0;
    int r = poll(&p, 1, (int)(timeout * 1000));
    if (r <= 0)
        return -1;
    if (c->n >= TC_BUF - 1)
        return -1;
    ssize_t k = recv(c->fd, c->buf + c->n, TC_BUF - 1 - c->n, 0);
    if (k == 0) {
        c->eof = 1;
        return 0;
    }
    if (k < 0)
        return errno == ECONNRESET ? (c->eof = 1, 0) : -1;
    c->n += (size_t)k;
    c->buf[c->n] = 0;
    return (int)k;
}

static inline void tc_consume(struct tc *c, size_t k)
{
    memmove(c->buf, c->buf + k, c->n - k);
    c->n -= k;
    c->buf[c->n] = 0;
}

/* Wait until `need` bytes are buffered (or EOF/timeout). */
static inline int tc_need(struct tc *c, size_t need, double deadline)
{
    while (c->n < need) {
        double left = deadline - tc_now();
        if (left <= 0 || tc_fill(c, left) <= 0)
            return -1;
    }
    return 0;
}

static char *tc_find(struct tc *c, const char *pat, double deadline)
{
    char *p;
    c->buf[c->n] = 0;
    while (!(p = strstr(c->buf, pat))) {
        double left = deadline - tc_now();
        if (left <= 0 || tc_fill(c, left) <= 0)
            return NULL;
    }
    return p;
}

static inline void tc_res_free(struct tc_res *r)
{
    free(r->body);
    r->body = NULL;
}

/* Value of header `name` in r (copied into out), or NULL. */
static const char *tc_header(const struct tc_res *r, const char *name, char *out, size_t outlen)
{
    const char *p = r->headers;
    size_t nl = strlen(name);
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(eol - v);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

/*
 * Read one response (skipping interim 1xx unless want_interim). Returns 0, or -1 if none arrived
 * within timeout seconds or it was malformed. With head_only, does not read a body.
 */
static inline int tc_read_response(struct tc *c, struct tc_res *r, double timeout, int want_interim)
{
    double deadline = tc_now() + timeout;
    memset(r, 0, sizeof(*r));
    for (;;) {
        char *end = tc_find(c, "\r\n\r\n", deadline);
        if (!end)
            return -1;
        size_t hlen = (size_t)(end - c->buf) + 4;
        if (sscanf(c->buf, "HTTP/1.%*d %d", &r->status) != 1)
            return -1;
        char *eol = strstr(c->buf, "\r\n");
        size_t hstart = (size_t)(eol - c->buf) + 2;
        size_t hl = hlen - hstart - 2;
        if (hl >= sizeof(r->headers))
            hl = sizeof(r->headers) - 1;
        memcpy(r->headers, c->buf + hstart, hl);
        r->headers[hl] = 0;
        tc_consume(c, hlen);
        if (r->status >= 200 || want_interim)
            break;
    }
    char v[64];
    if (r->status < 200 || r->status == 204 || r->status == 304) {
        r->body = calloc(1, 1);
        return 0;
    }
    if (tc_header(r, "Content-Length", v, sizeof(v))) {
        size_t len = strtoull(v, NULL, 10);
        if (tc_need(c, len, deadline))
            return -1;
        r->body = malloc(len + 1);
        memcpy(r->body, c->buf, len);
        r->body[len] = 0;
        r->body_len = len;
        tc_consume(c, len);
        return 0;
    }
    if (tc_header(r, "Transfer-Encoding", v, sizeof(v)) && !strcasecmp(v, "chunked")) {
        size_t cap = 4096, n = 0;
        r->chunked = 1;
        r->body = malloc(cap);
        for (;;) {
            char *crlf = tc_find(c, "\r\n", deadline);
            if (!crlf)
                return -1;
            size_t clen = strtoull(c->buf, NULL, 16);
            size_t skip = (size_t)(crlf - c->buf) + 2;
            if (tc_need(c, skip + clen + 2, deadline))
                return -1;
            if (n + clen + 1 > cap) {
                while (n + clen + 1 > cap)
                    cap *= 2;
                r->body = realloc(r->body, cap);
            }
            memcpy(r->body + n, c->buf + skip, clen);
            n += clen;
            tc_consume(c, skip + clen + 2);
            if (clen == 0)
                break;
        }
        r->body[n] = 0;
        r->body_len = n;
        return 0;
    }
    /* Body until EOF. */
    while (!c->eof) {
        double left = deadline - tc_now();
        if (left <= 0 || tc_fill(c, left) < 0)
            return -1;
    }
    r->body = malloc(c->n + 1);
    memcpy(r->body, c->buf, c->n);
    r->body[c->n] = 0;
    r->body_len = c->n;
    tc_consume(c, c->n);
    return 0;
}

/* Whether the server closed the connection within timeout seconds (reading and dropping). */
static inline int tc_wait_closed(struct tc *c, double timeout)
{
    double deadline = tc_now() + timeout;
    while (!c->eof) {
        double left = deadline - tc_now();
        if (left <= 0)
            return 0;
        c->n = 0;
        if (tc_fill(c, left) < 0 && !c->eof)
            return 0;
    }
    return 1;
}

/* One request on a fresh connection; returns the status or -1. */
static inline int tc_request(int port, const char *raw, struct tc_res *r)
{
    struct tc c;
    int st = -1;
    memset(r, 0, sizeof(*r));
    if (tc_open(&c, port))
        return -1;
    if (!tc_sends(&c, raw) && !tc_read_response(&c, r, 10, 0))
        st = r->status;
    tc_close(&c);
    return st;
}

/* ---- the daemon under test ------------------------------------------------------------------ */

struct td {
    pid_t pid;
    int port;
    char dir[256];
    char log[300];
};

/* Make a fresh temporary directory for one daemon. */
static inline int td_mkdir(struct td *d, const char *tag)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/bd-test-%s-XXXXXX", tag);
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    return 0;
}

/* Path of a built program ($top_builddir/NAME). */
static inline void td_prog(char *out, size_t outlen, const char *name)
{
    const char *b = getenv("top_builddir");
    snprintf(out, outlen, "%s/%s", b ? b : ".", name);
}

/* Start bitdistilld with the standard test options plus `extra` (NULL-terminated). */
static inline int td_start(struct td *d, const char *const *extra)
{
    char prog[512], portfile[400], data[400];
    const char *argv[64];
    int n = 0;
    td_prog(prog, sizeof(prog), "bitdistilld");
    snprintf(portfile, sizeof(portfile), "%s/port", d->dir);
    snprintf(data, sizeof(data), "%s/data", d->dir);
    unlink(portfile);
    argv[n++] = prog;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    d->pid = fork();
    if (d->pid < 0)
        return -1;
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    double deadline = tc_now() + 20;
    while (tc_now() < deadline) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &d->port) == 1;
            fclose(f);
            if (ok)
                return 0;
        }
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

/* Wait up to timeout seconds for the daemon to exit; returns its exit status, or -1. */
static inline int td_wait(struct td *d, double timeout)
{
    double deadline = tc_now() + timeout;
    int st;
    while (d->pid > 0 && tc_now() < deadline) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(10000);
    }
    return -1;
}

/* SIGTERM and wait; SIGKILL if it hangs. Returns the exit status or -1. */
static inline int td_stop(struct td *d)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int rc = td_wait(d, 20);
    if (rc < 0) {
        kill(d->pid, SIGKILL);
        td_wait(d, 5);
    }
    return rc;
}

/* Whether the daemon's log contains `text` (waits up to timeout seconds). */
static inline int td_log_has(struct td *d, const char *text, double timeout)
{
    double deadline = tc_now() + timeout;
    do {
        FILE *f = fopen(d->log, "r");
        if (f) {
            static char buf[1 << 20];
            size_t k = fread(buf, 1, sizeof(buf) - 1, f);
            buf[k] = 0;
            fclose(f);
            if (strstr(buf, text))
                return 1;
        }
        usleep(20000);
    } while (tc_now() < deadline);
    return 0;
}

/* Remove the daemon's directory tree (best effort). */
static inline void td_cleanup(struct td *d)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", d->dir);
}

#endif
