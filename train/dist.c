/*
 * train/dist.c — the ranks of a multi-process training job (dist.h): who is who from the
 * environment, Slurm hostlists, a TCP star with deadlines, and the start-up that places each
 * rank on its host's GPUs.
 *
 * Frames: a 12-byte header (magic, sequence number, payload length; network order) and the
 * payload. Data frames carry a collective's bytes; an error frame carries rank 0's message, so
 * when rank 0 gives up (a rank missing, a rank that exited) every rank reports the same reason.
 * Sockets are non-blocking and every read and write waits in poll() against the operation's
 * deadline. Payloads are small: start-up records, a 128-byte NCCL id per stage, a status and a
 * few doubles per micro-batch.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/err.h"
#include "train/backend.h"
#include "train/dist.h"

#define MAGIC_DATA 0x42444454u  /* "BDDT" */
#define MAGIC_ERROR 0x42444552u /* "BDER" */
#define MAGIC_HELLO 0x48454c4fu /* "HELO" */
#define MAX_FRAME (64u << 20)
#define HELLO_WAIT 5.0 /* s a new connection has to say who it is */
#define PEER_GRACE 5.0 /* s more a rank waits for rank 0 (whose error names the cause) */
#define HOST_LEN 64
#define MSG_LEN 240

struct peer {
    int fd;        /* rank 0: one per rank (fd of rank 0 itself: -1); others: [0] */
    char addr[64]; /* where it connected from, for messages before the hosts are known */
};

struct trn_dist {
    int rank, world;
    double timeout_s;
    uint32_t seq;
    struct peer *p;         /* rank 0: [world]; others: [1], rank 0 */
    char (*host)[HOST_LEN]; /* [world] after trn_dist_start */
    int local_rank, local_world, nlocal, first, gpus;
    int broken;            /* a failed collective leaves the job unusable */
    char why[ENG_ERR_LEN]; /* ... for this reason */
};

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void nap(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------ environment */

/* Strict decimal integer in [lo, hi]; -1 when absent or malformed (*v untouched). */
static int env_int(const char *name, long lo, long hi, long *v)
{
    const char *s = getenv(name);
    char *e;
    if (!s || !*s)
        return -1;
    errno = 0;
    long x = strtol(s, &e, 10);
    if (errno || *e || x < lo || x > hi)
        return -2;
    *v = x;
    return 0;
}

static int bad_env(char *err, const char *name, const char *want)
{
    return eng_fail(err, ENG_EINVAL, "%s='%s': expected %s", name, getenv(name), want);
}

/* ------------------------------------------------------------------ Slurm hostlists */

#define HL_GROUPS 8
#define HL_RANGES 64

struct hl_range {
    long lo, hi;
    int width; /* zero padding: the digits of lo as written */
};

struct hl_part { /* literal text, then a bracket group (nr 0: none) */
    const char *text;
    int tlen, nr;
    long count;
    struct hl_range r[HL_RANGES];
};

struct hl_item {
    int np;
    long count; /* hosts of the item (product of the groups) */
    struct hl_part part[HL_GROUPS + 1];
};

/* Parse one comma-free item at *p (advancing past it and its comma). */
static int hl_item_parse(const char **pp, struct hl_item *it)
{
    const char *p = *pp;
    it->np = 0;
    it->count = 1;
    for (;;) {
        if (it->np > HL_GROUPS)
            return -1;
        struct hl_part *pt = &it->part[it->np++];
        pt->text = p;
        while (*p && *p != '[' && *p != ',' && *p != ']')
            p++;
        pt->tlen = (int)(p - pt->text);
        pt->nr = 0;
        pt->count = 1;
        if (*p != '[')
            break;
        p++;
        pt->count = 0;
        for (;;) {
            struct hl_range *r;
            char *e;
            if (pt->nr >= HL_RANGES || !isdigit((unsigned char)*p))
                return -1;
            r = &pt->r[pt->nr++];
            const char *d = p;
            r->lo = strtol(p, &e, 10);
            r->width = (int)(e - d);
            r->hi = r->lo;
            p = e;
            if (*p == '-') {
                if (!isdigit((unsigned char)*++p))
                    return -1;
                r->hi = strtol(p, &e, 10);
                p = e;
            }
            if (r->hi < r->lo || r->width > 18 || r->hi - r->lo >= INT_MAX - pt->count)
                return -1;
            pt->count += r->hi - r->lo + 1;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p++ != ']')
                return -1;
            break;
        }
        if (it->count > INT_MAX / pt->count)
            return -1;
        it->count *= pt->count;
    }
    if (*p == ']' || (it->np == 1 && it->part[0].tlen == 0))
        return -1; /* a stray ']' or an empty item */
    if (*p == ',') {
        p++;
        if (!*p)
            return -1;
    }
    *pp = p;
    return 0;
}

int trn_dist_hostlist_count(const char *list)
{
    struct hl_item it;
    long n = 0;
    if (!list)
        return -1;
    for (const char *p = list; *p;) {
        if (hl_item_parse(&p, &it) || n > INT_MAX - it.count)
            return -1;
        n += it.count;
    }
    return (int)n;
}

/* The k-th value of a bracket group, printed with its padding. */
static int hl_value(const struct hl_part *pt, long k, char *out, size_t len)
{
    for (int i = 0; i < pt->nr; i++) {
        long n = pt->r[i].hi - pt->r[i].lo + 1;
        if (k < n) {
            int w = snprintf(out, len, "%0*ld", pt->r[i].width, pt->r[i].lo + k);
            return w < 0 || (size_t)w >= len ? -1 : w;
        }
        k -= n;
    }
    return -1;
}

int trn_dist_hostlist_nth(const char *list, int n, char *out, size_t len)
{
    struct hl_item it;
    if (!list || n < 0 || len == 0 || trn_dist_hostlist_count(list) < 0)
        return -1;
    for (const char *p = list; *p;) {
        if (hl_item_parse(&p, &it))
            return -1;
        if (n >= it.count) {
            n -= (int)it.count;
            continue;
        }
        /* mixed radix: the last group varies fastest */
        long idx[HL_GROUPS + 1], rest = n;
        for (int g = it.np - 1; g >= 0; g--) {
            idx[g] = rest % it.part[g].count;
            rest /= it.part[g].count;
        }
        size_t o = 0;
        for (int g = 0; g < it.np; g++) {
            const struct hl_part *pt = &it.part[g];
            if (o + (size_t)pt->tlen >= len)
                return -1;
            memcpy(out + o, pt->text, (size_t)pt->tlen);
            o += (size_t)pt->tlen;
            if (pt->nr) {
                int w = hl_value(pt, idx[g], out + o, len - o);
                if (w < 0)
                    return -1;
                o += (size_t)w;
            }
        }
        out[o] = 0;
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------ configuration */

int trn_dist_cfg_env(struct trn_dist_cfg *c, char *err)
{
    long rank = 0, world = 1, port = 0, v;
    const char *er = getenv("BITDISTILL_DIST_RANK"), *ew = getenv("BITDISTILL_DIST_WORLD");
    int rc;
    memset(c, 0, sizeof(*c));
    c->rank = 0;
    c->world = 1;
    c->timeout_s = TRN_DIST_DEFAULT_TIMEOUT;
    snprintf(c->source, sizeof(c->source), "none");
    if ((rc = env_int("BITDISTILL_DIST_TIMEOUT", 1, 86400 * 7, &v)) == -2)
        return bad_env(err, "BITDISTILL_DIST_TIMEOUT", "seconds (1 or more)");
    if (rc == 0)
        c->timeout_s = (double)v;
    if (er || ew) {
        if (!er || !ew)
            return eng_fail(err, ENG_EINVAL,
                            "BITDISTILL_DIST_RANK and BITDISTILL_DIST_WORLD "
                            "are set together (one of them is missing)");
        if (env_int("BITDISTILL_DIST_WORLD", 1, TRN_DIST_MAX_WORLD, &world))
            return bad_env(err, "BITDISTILL_DIST_WORLD", "the number of processes (1-4096)");
        if (env_int("BITDISTILL_DIST_RANK", 0, world - 1, &rank))
            return bad_env(err, "BITDISTILL_DIST_RANK", "0 to BITDISTILL_DIST_WORLD - 1");
        snprintf(c->source, sizeof(c->source), "env");
    } else if (getenv("SLURM_PROCID") && (getenv("SLURM_STEP_ID") || getenv("SLURM_STEPID"))) {
        /* inside an srun step (a batch script alone has no step id: its SLURM_NTASKS is the
         * allocation's, not a count of trainer processes) */
        const char *nt = getenv("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
        if (env_int(nt, 1, TRN_DIST_MAX_WORLD, &world))
            return bad_env(err, nt, "the number of tasks (1-4096)");
        if (env_int("SLURM_PROCID", 0, world - 1, &rank))
            return bad_env(err, "SLURM_PROCID", "0 to the number of tasks - 1");
        snprintf(c->source, sizeof(c->source), "slurm");
    }
    c->rank = (int)rank;
    c->world = (int)world;
    if (world == 1)
        return 0;
    const char *a = getenv("BITDISTILL_DIST_ADDR");
    if (a && *a) {
        if (strlen(a) >= sizeof(c->addr))
            return bad_env(err, "BITDISTILL_DIST_ADDR", "a host name or address");
        snprintf(c->addr, sizeof(c->addr), "%s", a);
    } else {
        const char *nl = "SLURM_STEP_NODELIST";
        if (!getenv(nl))
            nl = "SLURM_JOB_NODELIST";
        if (!getenv(nl))
            return eng_fail(err, ENG_EINVAL,
                            "%d processes but no address for rank 0: set "
                            "BITDISTILL_DIST_ADDR (or run under srun, which sets "
                            "SLURM_STEP_NODELIST)",
                            c->world);
        if (trn_dist_hostlist_nth(getenv(nl), 0, c->addr, sizeof(c->addr)))
            return bad_env(err, nl, "a Slurm hostlist such as gpu[01-04],login1");
    }
    if ((rc = env_int("BITDISTILL_DIST_PORT", 1, 65535, &port)) == -2)
        return bad_env(err, "BITDISTILL_DIST_PORT", "a TCP port (1-65535)");
    if (rc) {
        long job = 0, step = 0;
        if (env_int("SLURM_JOB_ID", 0, LONG_MAX, &job) == 0) {
            if (env_int("SLURM_STEP_ID", 0, LONG_MAX, &step))
                env_int("SLURM_STEPID", 0, LONG_MAX, &step);
            port = 20000 + (job % 1000) * 10 + step % 10; /* 20000-29999, per job and step */
        } else {
            port = TRN_DIST_DEFAULT_PORT;
        }
    }
    c->port = (int)port;
    return 0;
}

/* ------------------------------------------------------------------ socket I/O */

enum { IO_OK = 0, IO_TIMEOUT = 1, IO_CLOSED = 2, IO_ERROR = 3 };

static int wait_fd(int fd, short ev, double deadline)
{
    for (;;) {
        double left = deadline - mono();
        if (left <= 0)
            return IO_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = ev};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        int r = poll(&p, 1, ms);
        if (r > 0)
            return IO_OK;
        if (r < 0 && errno != EINTR)
            return IO_ERROR;
    }
}

static int send_all(int fd, const void *buf, size_t n, double deadline)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r)
                return r;
            continue;
        }
        return errno == EPIPE || errno == ECONNRESET ? IO_CLOSED : IO_ERROR;
    }
    return IO_OK;
}

static int recv_all(int fd, void *buf, size_t n, double deadline)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return IO_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w)
                return w;
            continue;
        }
        return errno == ECONNRESET ? IO_CLOSED : IO_ERROR;
    }
    return IO_OK;
}

static int send_frame(int fd, uint32_t magic, uint32_t seq, const void *buf, size_t n,
                      double deadline)
{
    uint32_t h[3] = {htonl(magic), htonl(seq), htonl((uint32_t)n)};
    int r = send_all(fd, h, sizeof(h), deadline);
    return r ? r : send_all(fd, buf, n, deadline);
}

/* Receive a frame of exactly n bytes with sequence number seq. An error frame's text goes to
 * msg[MSG_LEN] and gives IO_ERROR with *is_error set; a wrong header gives IO_ERROR. */
static int recv_frame(int fd, uint32_t seq, void *buf, size_t n, double deadline, int *is_error,
                      char *msg, uint32_t *got_seq)
{
    uint32_t h[3];
    int r = recv_all(fd, h, sizeof(h), deadline);
    *is_error = 0;
    *got_seq = seq;
    if (r)
        return r;
    uint32_t magic = ntohl(h[0]), len = ntohl(h[2]);
    *got_seq = ntohl(h[1]);
    if (magic == MAGIC_ERROR && len < MSG_LEN) {
        *is_error = 1;
        r = recv_all(fd, msg, len, deadline);
        msg[r ? 0 : len] = 0;
        return IO_ERROR;
    }
    if (magic != MAGIC_DATA || *got_seq != seq || len != n)
        return IO_ERROR;
    return recv_all(fd, buf, n, deadline);
}

static const char *io_what(int r)
{
    return r == IO_TIMEOUT  ? "no answer"
           : r == IO_CLOSED ? "connection closed (the process "
                              "exited or was killed: see its own log)"
                            : "unexpected data (not in step)";
}

static void set_sock_opts(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* ------------------------------------------------------------------ connecting */

static struct trn_dist *dist_new(const struct trn_dist_cfg *c)
{
    struct trn_dist *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->rank = c->rank;
    d->world = c->world;
    d->timeout_s = c->timeout_s;
    d->local_world = 1;
    int np = c->rank == 0 ? c->world : 1;
    d->p = calloc((size_t)np, sizeof(*d->p));
    d->host = calloc((size_t)c->world, sizeof(*d->host));
    if (!d->p || !d->host) {
        free(d->p);
        free(d->host);
        free(d);
        return NULL;
    }
    for (int i = 0; i < np; i++)
        d->p[i].fd = -1;
    return d;
}

void trn_dist_free(struct trn_dist *d)
{
    if (!d)
        return;
    int np = d->rank == 0 ? d->world : 1;
    for (int i = 0; i < np; i++)
        if (d->p[i].fd >= 0)
            close(d->p[i].fd);
    free(d->p);
    free(d->host);
    free(d);
}

/* Rank 0 gives up: every connected rank gets the message (best effort), then err. */
static int fail_all(struct trn_dist *d, char *err, int status)
{
    size_t n = strnlen(err, MSG_LEN - 1);
    double dl = mono() + 2.0;
    for (int r = 1; d->rank == 0 && r < d->world; r++)
        if (d->p[r].fd >= 0)
            send_frame(d->p[r].fd, MAGIC_ERROR, d->seq, err, n, dl);
    d->broken = 1;
    snprintf(d->why, sizeof(d->why), "%s", err);
    return status;
}

static int listen_on(int port, char *err)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
    if (fd >= 0) {
        struct sockaddr_in6 a = {
            .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); /* IPv4 too */
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            goto bound;
        if (errno == EADDRINUSE)
            goto in_use;
        close(fd);
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* no IPv6 on this host */
    if (fd < 0)
        return eng_fail(err, ENG_EIO, "rendezvous: socket: %s", strerror(errno));
    struct sockaddr_in a4 = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a4, sizeof(a4))) {
        if (errno == EADDRINUSE)
            goto in_use;
        int e = errno;
        close(fd);
        return eng_fail(err, ENG_EIO, "rendezvous: cannot listen on port %d: %s", port,
                        strerror(e));
    }
bound:
    if (listen(fd, 128)) {
        int e = errno;
        close(fd);
        return eng_fail(err, ENG_EIO, "rendezvous: cannot listen on port %d: %s", port,
                        strerror(e));
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
in_use:
    close(fd);
    return eng_fail(err, ENG_EIO,
                    "rendezvous: port %d is in use on rank 0's host (another "
                    "job?); choose another with BITDISTILL_DIST_PORT",
                    port);
}

static void addr_text(const struct sockaddr_storage *sa, char *out, size_t len)
{
    char h[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
        port = ntohs(a->sin6_port);
    } else if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
        port = ntohs(a->sin_port);
    }
    const char *v4 = strncmp(h, "::ffff:", 7) ? h : h + 7;
    snprintf(out, len, "%s:%d", v4, port);
}

/* Rank 0: accept world-1 ranks, each saying {HELO, rank, world} first. */
static int accept_ranks(struct trn_dist *d, int lfd, int port, double deadline, char *err)
{
    int have = 1;
    while (have < d->world) {
        int w = wait_fd(lfd, POLLIN, deadline);
        if (w) {
            char miss[256] = "";
            size_t o = 0;
            int nm = 0;
            for (int r = 1; r < d->world; r++)
                if (d->p[r].fd < 0 && nm++ < 16 && o < sizeof(miss) - 16)
                    o += (size_t)snprintf(miss + o, sizeof(miss) - o, "%s%d", o ? ", " : "", r);
            eng_fail(err, ENG_EIO,
                     "rendezvous: rank%s %s%s of %d did not connect to rank 0 "
                     "(port %d) within %.0f s (not started, or cannot reach this host)",
                     nm > 1 ? "s" : "", miss, nm > 16 ? ", ..." : "", d->world, port, d->timeout_s);
            return -1;
        }
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept(lfd, (struct sockaddr *)&sa, &sl);
        if (fd < 0)
            continue;
        set_sock_opts(fd);
        uint32_t h[3] = {0}, hello[3];
        double hd = mono() + HELLO_WAIT < deadline ? mono() + HELLO_WAIT : deadline;
        if (recv_all(fd, h, sizeof(h), hd) || ntohl(h[0]) != MAGIC_DATA ||
            ntohl(h[2]) != sizeof(hello) || recv_all(fd, hello, sizeof(hello), hd) ||
            ntohl(hello[0]) != MAGIC_HELLO) {
            close(fd); /* not one of ours (a port scan, another program): ignore it */
            continue;
        }
        int r = (int)ntohl(hello[1]), wr = (int)ntohl(hello[2]);
        char at[64];
        addr_text(&sa, at, sizeof(at));
        if (wr != d->world || r < 1 || r >= d->world)
            eng_fail(err, ENG_EINVAL,
                     "rendezvous: a process at %s says it is rank %d of %d, "
                     "but rank 0 has %d processes (two jobs on one port, or ranks started "
                     "with different settings)",
                     at, r, wr, d->world);
        else if (d->p[r].fd >= 0)
            eng_fail(err, ENG_EINVAL, "rendezvous: two processes claim rank %d (%s and %s)", r,
                     d->p[r].addr, at);
        else
            err[0] = 0;
        if (err[0]) { /* this one is not in the table: tell it here */
            send_frame(fd, MAGIC_ERROR, 0, err, strnlen(err, MSG_LEN - 1), mono() + 2.0);
            close(fd);
            return -1;
        }
        d->p[r].fd = fd;
        snprintf(d->p[r].addr, sizeof(d->p[r].addr), "%s", at);
        have++;
    }
    return 0;
}

/* Others: connect to rank 0, retrying (it may not listen yet) until the deadline. */
static int connect_rank0(const struct trn_dist_cfg *c, double deadline, char *err)
{
    char port[16], last[400] = "no attempt";
    snprintf(port, sizeof(port), "%d", c->port);
    for (;;) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int g = getaddrinfo(c->addr, port, &hints, &res);
        if (g)
            snprintf(last, sizeof(last), "cannot resolve '%s': %s", c->addr, gai_strerror(g));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0)
                continue;
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            int rc = connect(fd, ai->ai_addr, ai->ai_addrlen), e = errno;
            if (rc && e == EINPROGRESS) {
                double step = mono() + 2.0 < deadline ? mono() + 2.0 : deadline;
                socklen_t sl = sizeof(e);
                if (wait_fd(fd, POLLOUT, step) == IO_OK &&
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 && e == 0)
                    rc = 0;
                else if (e == EINPROGRESS)
                    e = ETIMEDOUT;
            }
            if (rc == 0) {
                freeaddrinfo(res);
                set_sock_opts(fd);
                return fd;
            }
            snprintf(last, sizeof(last), "%s", strerror(e));
            close(fd);
        }
        if (res)
            freeaddrinfo(res);
        if (mono() + 0.2 >= deadline)
            break;
        nap(0.2);
    }
    return eng_fail(err, ENG_EIO,
                    "rendezvous: rank %d cannot reach rank 0 at %s port %d "
                    "within %.0f s: %s",
                    c->rank, c->addr, c->port, c->timeout_s, last);
}

int trn_dist_connect(const struct trn_dist_cfg *c, struct trn_dist **out, char *err)
{
    struct trn_dist *d;
    double deadline = mono() + c->timeout_s;
    *out = NULL;
    if (c->world < 2 || c->rank < 0 || c->rank >= c->world)
        return eng_fail(err, ENG_EINVAL, "rendezvous: rank %d of %d", c->rank, c->world);
    if (!(d = dist_new(c)))
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if (c->rank == 0) {
        int lfd = listen_on(c->port, err);
        if (lfd < 0) {
            trn_dist_free(d);
            return ENG_EIO;
        }
        int rc = accept_ranks(d, lfd, c->port, deadline, err);
        close(lfd);
        if (rc) {
            fail_all(d, err, ENG_EIO);
            trn_dist_free(d);
            return ENG_EIO;
        }
        uint32_t ok = htonl((uint32_t)c->world);
        for (int r = 1; r < d->world; r++)
            if (send_frame(d->p[r].fd, MAGIC_DATA, 0, &ok, sizeof(ok), deadline + PEER_GRACE)) {
                eng_fail(err, ENG_EIO, "rendezvous: rank %d (%s) left before the start", r,
                         d->p[r].addr);
                fail_all(d, err, ENG_EIO);
                trn_dist_free(d);
                return ENG_EIO;
            }
    } else {
        int fd = connect_rank0(c, deadline, err);
        if (fd < 0) {
            trn_dist_free(d);
            return ENG_EIO;
        }
        d->p[0].fd = fd;
        snprintf(d->p[0].addr, sizeof(d->p[0].addr), "%.48s:%d", c->addr, c->port);
        uint32_t hello[3] = {htonl(MAGIC_HELLO), htonl((uint32_t)c->rank),
                             htonl((uint32_t)c->world)},
                 ok = 0, got = 0;
        char msg[MSG_LEN] = "";
        int is_err = 0;
        int r = send_frame(fd, MAGIC_DATA, 0, hello, sizeof(hello), deadline);
        if (!r)
            r = recv_frame(fd, 0, &ok, sizeof(ok), deadline + PEER_GRACE, &is_err, msg, &got);
        if (r) {
            if (is_err)
                eng_fail(err, ENG_EIO, "rank 0 ended the rendezvous: %s", msg);
            else
                eng_fail(err, ENG_EIO,
                         "rendezvous: rank %d connected to rank 0 at %s port %d "
                         "but then: %s (waiting %.0f s for the other ranks)",
                         c->rank, c->addr, c->port, io_what(r), c->timeout_s + PEER_GRACE);
            trn_dist_free(d);
            return ENG_EIO;
        }
    }
    d->seq = 1;
    *out = d;
    return 0;
}

int trn_dist_rank(const struct trn_dist *d)
{
    return d ? d->rank : 0;
}
int trn_dist_world(const struct trn_dist *d)
{
    return d ? d->world : 1;
}

const char *trn_dist_host(const struct trn_dist *d, int rank)
{
    return d && rank >= 0 && rank < d->world ? d->host[rank] : "";
}

/* "rank 3 (gpu07)" or "rank 3 (10.0.0.7:41234)" before the host names are known. */
static const char *who(const struct trn_dist *d, int r, char *buf, size_t len)
{
    const char *h = d->host[r][0] ? d->host[r] : d->rank == 0 ? d->p[r].addr : "";
    snprintf(buf, len, h[0] ? "rank %d (%s)" : "rank %d", r, h);
    return buf;
}

/* ------------------------------------------------------------------ collectives */

/* Every rank's n bytes to rank 0 (all[world * n], rank 0 only; others may pass NULL). */
static int gather(struct trn_dist *d, const void *mine, size_t n, void *all, char *err)
{
    double deadline = mono() + d->timeout_s;
    uint32_t seq = d->seq++;
    char w[96];
    if (d->broken)
        return eng_fail(err, ENG_EIO, "%s", d->why);
    if (d->rank != 0) {
        int r = send_frame(d->p[0].fd, MAGIC_DATA, seq, mine, n, deadline);
        if (r) {
            d->broken = 1;
            snprintf(d->why, sizeof(d->why), "rank %d: lost rank 0: %s", d->rank, io_what(r));
            return eng_fail(err, ENG_EIO, "%s", d->why);
        }
        return 0;
    }
    memcpy(all, mine, n);
    for (int k = 1; k < d->world; k++) {
        int is_err;
        uint32_t got;
        char msg[MSG_LEN];
        int r = recv_frame(d->p[k].fd, seq, (char *)all + (size_t)k * n, n, deadline, &is_err, msg,
                           &got);
        if (r) {
            if (r == IO_ERROR && got != seq)
                eng_fail(err, ENG_EIO,
                         "%s is out of step (message %u, rank 0 is at %u): "
                         "all ranks must run the same job",
                         who(d, k, w, sizeof(w)), got, seq);
            else if (r == IO_TIMEOUT)
                eng_fail(err, ENG_EIO, "%s: no answer within %.0f s (BITDISTILL_DIST_TIMEOUT)",
                         who(d, k, w, sizeof(w)), d->timeout_s);
            else
                eng_fail(err, ENG_EIO, "%s: %s", who(d, k, w, sizeof(w)), io_what(r));
            return fail_all(d, err, ENG_EIO);
        }
    }
    return 0;
}

/* Rank 0's buf[n] to every rank. */
static int scatter_same(struct trn_dist *d, void *buf, size_t n, char *err)
{
    double deadline = mono() + d->timeout_s;
    uint32_t seq = d->seq++;
    char w[96];
    if (d->broken)
        return eng_fail(err, ENG_EIO, "%s", d->why);
    if (d->rank == 0) {
        for (int k = 1; k < d->world; k++) {
            int r = send_frame(d->p[k].fd, MAGIC_DATA, seq, buf, n, deadline);
            if (r) {
                eng_fail(err, ENG_EIO, "%s: %s", who(d, k, w, sizeof(w)), io_what(r));
                return fail_all(d, err, ENG_EIO);
            }
        }
        return 0;
    }
    int is_err;
    uint32_t got;
    char msg[MSG_LEN];
    /* rank 0 may be slower (it writes the checkpoints); its own error names the cause */
    int r = recv_frame(d->p[0].fd, seq, buf, n, deadline + PEER_GRACE, &is_err, msg, &got);
    if (r) {
        d->broken = 1;
        if (is_err)
            snprintf(d->why, sizeof(d->why), "%s", msg);
        else if (r == IO_TIMEOUT)
            snprintf(d->why, sizeof(d->why),
                     "rank %d: no answer from rank 0 (%s) within %.0f s "
                     "(BITDISTILL_DIST_TIMEOUT)",
                     d->rank, d->p[0].addr, d->timeout_s + PEER_GRACE);
        else
            snprintf(d->why, sizeof(d->why), "rank %d: rank 0 (%s): %s", d->rank, d->p[0].addr,
                     io_what(r));
        return eng_fail(err, ENG_EIO, "%s", d->why);
    }
    return 0;
}

int trn_dist_allgather(struct trn_dist *d, const void *mine, size_t n, void *all, char *err)
{
    int rc = gather(d, mine, n, all, err);
    return rc ? rc : scatter_same(d, all, n * (size_t)d->world, err);
}

int trn_dist_bcast(struct trn_dist *d, void *buf, size_t n, char *err)
{
    return scatter_same(d, buf, n, err);
}

/* The reduce record of one rank (host order inside one process; all ranks share the ABI). */
struct red_rec {
    int32_t status, pad;
    uint64_t check;
    char msg[MSG_LEN];
};

int trn_dist_reduce(struct trn_dist *d, int status, const char *msg, uint64_t check, double *v,
                    int n, char *err)
{
    size_t rec = sizeof(struct red_rec) + (size_t)n * sizeof(double);
    size_t ans = sizeof(struct red_rec) + (size_t)n * sizeof(double);
    char *mine = calloc(1, rec), *all = d->rank == 0 ? calloc((size_t)d->world, rec) : NULL;
    char *res = calloc(1, ans), w[96];
    int rc;
    if (!mine || !res || (d->rank == 0 && !all)) {
        free(mine);
        free(all);
        free(res);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    struct red_rec *m = (struct red_rec *)mine;
    m->status = status;
    m->check = check;
    if (status && msg)
        snprintf(m->msg, sizeof(m->msg), "%s", msg);
    if (n)
        memcpy(mine + sizeof(*m), v, (size_t)n * sizeof(double));
    if ((rc = gather(d, mine, rec, all, err)))
        goto out;
    if (d->rank == 0) {
        /* the lowest failed rank's message; a differing check; else the sums in rank order */
        struct red_rec *o = (struct red_rec *)res;
        double *sum = (double *)(res + sizeof(*o));
        for (int k = 0; k < d->world; k++) {
            const struct red_rec *a = (const struct red_rec *)(all + (size_t)k * rec);
            if (a->status && !o->status) {
                o->status = a->status;
                snprintf(o->msg, sizeof(o->msg), "%s: %.*s", who(d, k, w, sizeof(w)),
                         (int)(MSG_LEN - 100), a->msg);
            }
            if (!o->status && a->check != m->check) {
                o->status = ENG_EINVAL;
                snprintf(o->msg, sizeof(o->msg),
                         "%s is not in step with rank 0 (another batch "
                         "or model: every rank needs the same config, data and checkpoint "
                         "directory)",
                         who(d, k, w, sizeof(w)));
            }
            for (int i = 0; i < n; i++)
                sum[i] += ((const double *)(a + 1))[i];
        }
    }
    if ((rc = scatter_same(d, res, ans, err)))
        goto out;
    const struct red_rec *o = (const struct red_rec *)res;
    if (o->status) {
        rc = eng_fail(err, o->status, "%.*s", (int)sizeof(o->msg), o->msg);
        goto out;
    }
    if (n)
        memcpy(v, res + sizeof(*o), (size_t)n * sizeof(double));
out:
    free(mine);
    free(all);
    free(res);
    return rc;
}

/* ------------------------------------------------------------------ placement */

int trn_dist_pick_devices(const char *device, int visible, int local_rank, int local_world,
                          int shared, int *devs, int max)
{
    int n = 0;
    if (!device || !strcmp(device, "cpu"))
        return 0;
    if (!strcmp(device, "cuda:all")) {
        int lo = 0, hi = visible;
        if (shared && local_world > 1 && visible >= local_world) {
            lo = visible * local_rank / local_world;
            hi = visible * (local_rank + 1) / local_world;
        }
        for (int k = lo; k < hi && n < max; k++)
            devs[n++] = k;
        return n;
    }
    if (!strcmp(device, "cuda")) {
        if (max < 1)
            return -1;
        devs[0] = 0;
        return 1;
    }
    if (strncmp(device, "cuda:", 5))
        return -1;
    return trn_parse_device_ids(device + 5, devs, max);
}

/* What each rank reports about itself at start-up. */
struct place_rec {
    char host[HOST_LEN]; /* gethostname() */
    char boot[40];       /* /proc/sys/kernel/random/boot_id: one machine, even if renamed */
    char cvd[128];       /* CUDA_VISIBLE_DEVICES ("\1" when unset) */
    char device[48];     /* its --device */
    int32_t visible;
};

static void self_record(struct place_rec *p, const char *device, int visible)
{
    memset(p, 0, sizeof(*p));
    if (gethostname(p->host, sizeof(p->host) - 1))
        snprintf(p->host, sizeof(p->host), "?");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(p->boot, sizeof(p->boot), f))
            p->boot[0] = 0;
        fclose(f);
    }
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    snprintf(p->cvd, sizeof(p->cvd), "%s", cvd ? cvd : "\1");
    snprintf(p->device, sizeof(p->device), "%s", device ? device : "cpu");
    p->visible = visible;
}

static void dev_text(const int *devs, int n, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, n ? "cuda:" : "cpu");
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, i ? ",%d" : "%d", devs[i]);
}

int trn_dist_start(const struct trn_dist_cfg *c, const char *device, int visible, int need_gpu,
                   struct trn_dist **out, char *dev_out, size_t len, char *err)
{
    struct trn_dist *d = NULL;
    struct place_rec me, *all = NULL;
    int32_t *counts = NULL, mine;
    int devs[64], n, rc;
    char w[96];
    *out = NULL;
    snprintf(dev_out, len, "%s", device ? device : "cpu");
    if (c->world < 2)
        return 0;
    if (visible < 0)
        visible = device && !strncmp(device, "cuda", 4) ? trn_cuda_device_count() : 0;
    if ((rc = trn_dist_connect(c, &d, err)))
        return rc;
    self_record(&me, device, visible);
    all = calloc((size_t)d->world, sizeof(*all));
    counts = calloc((size_t)d->world, sizeof(*counts));
    if (!all || !counts) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = trn_dist_allgather(d, &me, sizeof(me), all, err)))
        goto fail;
    int shared = 1;
    d->local_rank = d->local_world = 0;
    for (int k = 0; k < d->world; k++) {
        snprintf(d->host[k], HOST_LEN, "%.*s", HOST_LEN - 1, all[k].host);
        if (strcmp(all[k].host, me.host) || strcmp(all[k].boot, me.boot))
            continue;
        d->local_rank += k < d->rank;
        d->local_world++;
        shared &= !strcmp(all[k].cvd, me.cvd);
    }
    n = trn_dist_pick_devices(device, visible, d->local_rank, d->local_world, shared, devs, 64);
    mine = n;
    if ((rc = trn_dist_allgather(d, &mine, sizeof(mine), counts, err)))
        goto fail;
    d->gpus = 0;
    for (int k = 0; k < d->world; k++) {
        if (counts[k] < 0 || (need_gpu && counts[k] == 0)) {
            rc = eng_fail(err, ENG_EINVAL,
                          "%s has %s to train on (--device %s, %d CUDA "
                          "device%s visible): every rank needs at least one GPU",
                          who(d, k, w, sizeof(w)), counts[k] < 0 ? "a malformed device" : "no GPU",
                          all[k].device, all[k].visible, all[k].visible == 1 ? "" : "s");
            goto fail;
        }
        if (k == d->rank)
            d->first = d->gpus;
        d->gpus += counts[k];
    }
    d->nlocal = n;
    dev_text(devs, n, dev_out, len);
    free(all);
    free(counts);
    *out = d;
    return 0;
fail:
    free(all);
    free(counts);
    trn_dist_free(d);
    return rc;
}

int trn_dist_gpus(const struct trn_dist *d)
{
    return d ? d->gpus : 0;
}
int trn_dist_first_gpu(const struct trn_dist *d)
{
    return d ? d->first : 0;
}
int trn_dist_local_rank(const struct trn_dist *d)
{
    return d ? d->local_rank : 0;
}
int trn_dist_local_world(const struct trn_dist *d)
{
    return d ? d->local_world : 1;
}

/* ------------------------------------------------------------------ dist-check */

static uint64_t fnv1a(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
    return h;
}

int trn_cli_dist_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *device = "cuda:all";
    struct trn_dist_cfg c;
    struct trn_dist *d = NULL;
    char err[ENG_ERR_LEN] = "", dev[256];
    unsigned char id[128] = {0};
    int ch, rc;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'd') {
            device = optarg;
        } else {
            printf("usage: bitdistill dist-check [--device cuda:all]\n"
                   "Run it as every rank of a multi-process launch (srun -N2 bitdistill "
                   "dist-check): connects the ranks like `bitdistill train` does, prints each "
                   "rank's place and GPUs, and checks a broadcast and a sum (docs/cuda.md).\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    int visible = strcmp(device, "cpu") ? trn_cuda_device_count() : 0;
    if ((rc = trn_dist_cfg_env(&c, err)) ||
        (rc = trn_dist_start(&c, device, visible, 0, &d, dev, sizeof(dev), err)))
        goto out;
    if (!d) {
        printf("dist-check: a single process (no BITDISTILL_DIST_RANK/WORLD, no srun step with "
               "several tasks); devices %s\n",
               dev);
        return 0;
    }
    if (d->rank == 0 && getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
        for (size_t i = 0; i < sizeof(id); i++) /* no entropy source: still a usable test */
            id[i] = (unsigned char)(i * 131u + (unsigned)time(NULL));
    }
    if ((rc = trn_dist_bcast(d, id, sizeof(id), err)))
        goto out;
    uint64_t h = fnv1a(id, sizeof(id));
    double v[2] = {(double)(d->rank + 1), (double)d->nlocal};
    if ((rc = trn_dist_reduce(d, 0, NULL, h, v, 2, err)))
        goto out;
    double want = (double)d->world * (d->world + 1) / 2;
    char gpus[64] = "none";
    if (d->nlocal)
        snprintf(gpus, sizeof(gpus), "%d-%d", d->first, d->first + d->nlocal - 1);
    printf("dist-check: rank %d of %d (%s) host %s local %d of %d devices %s (%d visible) "
           "global GPUs %s of %d id %016llx sum %s\n",
           d->rank, d->world, c.source, d->host[d->rank], d->local_rank, d->local_world, dev,
           visible, gpus, d->gpus, (unsigned long long)h,
           v[0] == want && (int)v[1] == d->gpus ? "ok" : "WRONG");
    fflush(stdout);
    rc = v[0] == want && (int)v[1] == d->gpus ? 0 : ENG_EIO;
out:
    if (rc)
        fprintf(stderr, "bitdistill dist-check: rank %d: %s\n", c.rank,
                err[0] ? err : "the sum over ranks is wrong");
    trn_dist_free(d);
    return rc ? 1 : 0;
}
