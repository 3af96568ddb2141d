/*
 * bench/loadgen_flood.c — loadgen's many-connection mode (`loadgen -c ...`): one epoll thread
 * holds CONNECTIONS keep-alive connections that all send at once and resend the moment their
 * answer is complete, as `wrk -cN` does, and counts what comes back by status.
 *
 * Unlike wrk it keeps the latency of the 2xx answers apart from the others, so an overload run
 * can say both how many requests the server accepted per second (goodput) and how long the
 * accepted ones took, while 429s are counted on their own. Answers must carry Content-Length
 * (every non-streaming answer of bitdistilld does); a connection the server closes is reopened.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/loadgen.h"

#define FLOOD_BUF 16384

struct fconn {
    int fd;
    size_t sent; /* bytes of the request written */
    size_t n;    /* bytes received of the current answer */
    double t0;   /* when the request was first written */
    char buf[FLOOD_BUF];
};

struct flood {
    const char *req;
    size_t req_len;
    int port, epfd;
    double *lat; /* 2xx latencies, seconds */
    long nlat, cap;
    long shed, other, conn_errors;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Open c's socket (non-blocking connect) and watch it for writability. Returns 0 or -1. */
static int fc_open(struct flood *f, struct fconn *c)
{
    struct sockaddr_in sa;
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->sent = c->n = 0;
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)f->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    return epoll_ctl(f->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void fc_reopen(struct flood *f, struct fconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    f->conn_errors++;
    fc_open(f, c);
}

/* Write what is left of the request; start the clock at its first byte. */
static void fc_send(struct flood *f, struct fconn *c)
{
    if (c->sent == 0)
        c->t0 = now_s();
    while (c->sent < f->req_len) {
        ssize_t k = send(c->fd, f->req + c->sent, f->req_len - c->sent, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            fc_reopen(f, c);
            return;
        }
        c->sent += (size_t)k;
    }
    struct epoll_event ev = {.events = c->sent < f->req_len ? EPOLLOUT | EPOLLIN : EPOLLIN,
                             .data.ptr = c};
    epoll_ctl(f->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A whole answer is in c->buf[0..len): account for it. Returns 1 if the server closes. */
static int fc_answer(struct flood *f, struct fconn *c, int status, int closes)
{
    if (status >= 200 && status < 300) {
        if (f->nlat == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 65536;
            f->lat = realloc(f->lat, (size_t)f->cap * sizeof(double));
        }
        f->lat[f->nlat++] = now_s() - c->t0;
    } else if (status == 429) {
        f->shed++;
    } else {
        f->other++;
    }
    return closes;
}

/* Read what arrived; on a complete answer, count it and send the next request. */
static void fc_read(struct flood *f, struct fconn *c, int sending)
{
    for (;;) {
        ssize_t k = recv(c->fd, c->buf + c->n, FLOOD_BUF - 1 - c->n, 0);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
            fc_reopen(f, c);
            return;
        }
        if (k < 0)
            return;
        c->n += (size_t)k;
        c->buf[c->n] = 0;
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) {
            if (c->n >= FLOOD_BUF - 1)
                fc_reopen(f, c);
            continue;
        }
        int status = atoi(c->buf + 9);
        const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
        size_t head = (size_t)(end + 4 - c->buf),
               body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        if (head + body > FLOOD_BUF - 1) {
            fc_reopen(f, c);
            return;
        }
        if (c->n < head + body)
            continue;
        const char *close_hdr = strcasestr(c->buf, "\r\nConnection: close");
        int closes = fc_answer(f, c, status, close_hdr && close_hdr < end);
        memmove(c->buf, c->buf + head + body, c->n - head - body);
        c->n -= head + body;
        if (closes) {
            close(c->fd);
            c->fd = -1;
            fc_open(f, c);
            return;
        }
        c->sent = 0;
        if (sending)
            fc_send(f, c);
        return;
    }
}

int loadgen_flood(int port, const char *req, int conns, double secs)
{
    struct flood f = {.req = req, .req_len = strlen(req), .port = port};
    struct fconn *cs = calloc((size_t)conns, sizeof(*cs));
    struct epoll_event evs[256];
    int rc = 1;
    if (!cs || (f.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        goto out;
    for (int i = 0; i < conns; i++)
        if (fc_open(&f, &cs[i])) {
            fprintf(stderr, "loadgen: cannot open connection %d: %s\n", i, strerror(errno));
            goto out;
        }
    double t0 = now_s(), until = t0 + secs;
    while (now_s() < until) {
        int n = epoll_wait(f.epfd, evs, 256, 50);
        for (int i = 0; i < n; i++) {
            struct fconn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                fc_reopen(&f, c);
                continue;
            }
            if (evs[i].events & EPOLLIN)
                fc_read(&f, c, 1);
            if (c->fd >= 0 && evs[i].events & EPOLLOUT && c->sent < f.req_len)
                fc_send(&f, c);
        }
    }
    double elapsed = now_s() - t0;
    qsort(f.lat, (size_t)f.nlat, sizeof(double), cmp_d);
    double p50 = f.nlat ? f.lat[f.nlat / 2] : 0, p99 = f.nlat ? f.lat[(long)(f.nlat * 0.99)] : 0;
    printf("requests=%ld errors=%ld shed=%ld reconnects=%ld rps=%.1f shed_rps=%.1f "
           "p50_ms=%.2f p99_ms=%.2f\n",
           f.nlat, f.other, f.shed, f.conn_errors, f.nlat / elapsed, f.shed / elapsed, p50 * 1e3,
           p99 * 1e3);
    rc = f.nlat == 0;
out:
    for (int i = 0; cs && i < conns; i++)
        if (cs[i].fd > 0)
            close(cs[i].fd);
    if (f.epfd > 0)
        close(f.epfd);
    free(cs);
    free(f.lat);
    return rc;
}
