/*
 * tests/fuzz/fuzz-http.c — libFuzzer target: the input is the raw bytes a client sends on one
 * connection to the real daemon (cmd_daemon_main, running in a thread of this process on an
 * ephemeral loopback port with its own data directory): request line, headers, bodies,
 * pipelined requests, chunked encoding, multipart uploads, and every JSON body of the API
 * (classify, summarize, completions, tokenize, files, fine-tuning jobs, keys, models). The
 * harness writes the input, half-closes, and reads until the daemon closes the connection.
 *
 * Checked: no crash or sanitizer report anywhere in the daemon; the daemon closes the
 * connection within 10 s of the half-close (no hang); no 500 answer (an internal error on
 * input alone is a bug: bad input is a 4xx). An admin key "bd_" + 43 x 'A' and an infer key
 * "bd_" + 43 x 'B' exist (the seeds use them), so the authenticated routes are reached; jobs are
 * stored but never run (--run-jobs 0). With FUZZ_MODEL=student.gguf the daemon serves it as
 * model "m" (test-fuzz.sh makes a tiny one), so inference requests reach the engine.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd/daemon.h"
#include "server/auth.h"
#include "server/conf.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_util.h"

extern char **environ;

static int port;
static char *dargv[24];
static int dargc;

static void *daemon_thread(void *arg)
{
    (void)arg;
    int rc = cmd_daemon_main(dargc, dargv);
    fprintf(stderr, "fuzz-http: the daemon exited with %d\n", rc);
    abort();
}

static void add_key(struct store *st, char c, const char *scope)
{
    char secret[48], hash[65];
    struct store_key k;
    memset(&k, 0, sizeof(k));
    memcpy(secret, "bd_", 3);
    memset(secret + 3, c, 43);
    secret[46] = 0;
    srv_auth_hash(secret, hash);
    snprintf(k.id, sizeof(k.id), "key_fuzz%c%c%c%c%c%c%c%c", c, c, c, c, c, c, c, c);
    snprintf(k.name, sizeof(k.name), "fuzz %s", scope);
    snprintf(k.scope, sizeof(k.scope), "%s", scope);
    snprintf(k.prefix, sizeof(k.prefix), "bd_%c%c%c%c", c, c, c, c);
    k.created_at = 1;
    int rc = store_key_insert(st, &k, hash);
    if (rc && rc != STORE_EEXIST) {
        fprintf(stderr, "fuzz-http: cannot insert a key: %s\n", store_strerror(rc));
        exit(1);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char portfile[600], datadir[600];
    char err[1024];
    (void)argc;
    (void)argv;
    snprintf(datadir, sizeof(datadir), "%s/data", fuzz_dir());
    snprintf(portfile, sizeof(portfile), "%s/port", fuzz_dir());
    const char *args[] = {"bitdistilld",
                          "--host",
                          "127.0.0.1",
                          "--port",
                          "0",
                          "--port-file",
                          portfile,
                          "--data-dir",
                          datadir,
                          "--run-jobs",
                          "0",
                          "--log-level",
                          getenv("FUZZ_LOG") ? getenv("FUZZ_LOG") : "error",
                          "--max-upload-size",
                          "1M",
                          NULL};
    for (dargc = 0; args[dargc]; dargc++)
        dargv[dargc] = (char *)args[dargc];
    if (getenv("FUZZ_MODEL")) { /* a student to serve: classify/summarize run to the engine */
        dargv[dargc++] = "--model";
        dargv[dargc++] = getenv("FUZZ_MODEL");
        dargv[dargc++] = "--model-id";
        dargv[dargc++] = "m";
    }

    /* The keys go in before the daemon starts (same database path it will use). */
    struct srv_config cfg;
    if (srv_config_init(&cfg) || srv_config_load(&cfg, dargc, dargv, environ, err, sizeof(err))) {
        fprintf(stderr, "fuzz-http: %s\n", err);
        exit(1);
    }
    mkdir(datadir, 0700);
    char *db = srv_config_db_path(&cfg);
    struct store *st = db ? store_open(db, err, sizeof(err)) : NULL;
    if (!st) {
        fprintf(stderr, "fuzz-http: %s\n", db ? err : "out of memory");
        exit(1);
    }
    add_key(st, 'A', "admin");
    add_key(st, 'B', "infer");
    store_free(st);
    free(db);
    srv_config_release(&cfg);

    pthread_t th;
    if (pthread_create(&th, NULL, daemon_thread, NULL))
        abort();
    for (int i = 0; i < 1000 && !port; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (!port)
            usleep(10000);
    }
    if (!port) {
        fprintf(stderr, "fuzz-http: the daemon did not start\n");
        exit(1);
    }
    return 0;
}

/* Read from fd until EOF; first gets the first firstlen-1 bytes, NUL-terminated. Returns 0, or
 * -1 if the daemon kept the connection open past the deadline. */
static int drain(int fd, char *first, size_t firstlen)
{
    size_t got = 0;
    char buf[16384];
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        /* A deadline, not a poll timeout: libFuzzer's timeout alarm (SIGALRM) interrupts poll,
         * and taking that EINTR for a hang made runs fail at random. */
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = 10000 - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0; /* EOF or reset: the daemon closed */
        if (got < firstlen - 1) {
            size_t k = (size_t)n < firstlen - 1 - got ? (size_t)n : firstlen - 1 - got;
            memcpy(first + got, buf, k);
            got += k;
            first[got] = 0;
        }
    }
}

/* connect(), carried on when a signal interrupts it (libFuzzer's timeout alarm): 0, or -1 with
 * errno. */
static int connect_wait(int fd, const struct sockaddr_in *sa)
{
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        return 0;
    if (errno != EINTR && errno != EINPROGRESS)
        return -1;
    for (int waited = 0; waited < 20; waited++) {
        struct pollfd p = {fd, POLLOUT, 0};
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0) {
            int e = 0;
            socklen_t l = sizeof(e);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l))
                return -1;
            errno = e;
            return e ? -1 : 0;
        }
    }
    errno = ETIMEDOUT;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Each connection from another loopback source address (127.1.0.1, 127.1.0.2, ...): the
     * daemon closes first, so each connection leaves a TIME-WAIT for 60 s, and at ~500
     * connections/s one source address would need ~30,000 of them, more than the ephemeral
     * port range holds. */
    static uint32_t nconn;
    struct sockaddr_in src;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f010000u + 1 + nconn++ % 65000);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) || connect_wait(fd, &sa)) {
        fprintf(stderr, "fuzz-http: cannot connect to the daemon: %s\n", strerror(errno));
        abort();
    }
    /* Write everything (the daemon reads while answering; a large body may be refused early,
     * then the rest of the write fails: that is fine). */
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    static char first[65536];
    first[0] = 0;
    if (drain(fd, first, sizeof(first))) {
        fprintf(stderr, "fuzz-http: the daemon did not close the connection within 10 s\n");
        abort();
    }
    close(fd);
    /* Every status line in the first 64 KiB: a 500 from input alone is a bug. */
    const char *bad =
        !strncmp(first, "HTTP/1.1 500 ", 13) ? first : strstr(first, "\nHTTP/1.1 500 ");
    if (bad) {
        fprintf(stderr, "fuzz-http: 500 answer: %.400s\n", bad);
        abort();
    }
    return 0;
}
