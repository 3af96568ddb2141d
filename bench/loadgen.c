/*
 * bench/loadgen.c — a closed-loop HTTP load generator for the serving benchmark.
 *
 *   loadgen PORT PATH BODY CONCURRENCY SECONDS
 *   loadgen -c PORT PATH BODY CONNECTIONS SECONDS
 *
 * The second form is the many-connection mode of loadgen_flood.c (overload runs: every
 * connection resends at once; 2xx and 429 counted apart). The first:
 * CONCURRENCY threads each hold one keep-alive connection and send POST PATH with BODY (JSON)
 * back to back for SECONDS. Prints one line:
 *   requests=N errors=E rps=R p50_ms=A p99_ms=B tokens=K tokens_per_s=T
 * where tokens sums the responses' usage.completion_tokens (generated tokens; streams carry it
 * in their last chunk). Responses are read fully (Content-Length or chunked) before the next
 * request. Uses tests/http_client.h's client.
 */
#include <pthread.h>

#include "bench/loadgen.h"
#include "tests/http_client.h"

struct worker {
    int port;
    const char *req;
    double until;
    double *lat;
    int nlat, cap;
    long errors, events;
};

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct tc c;
    if (tc_open(&c, w->port)) {
        w->errors++;
        return NULL;
    }
    while (tc_now() < w->until) {
        double t0 = tc_now();
        struct tc_res r;
        if (tc_sends(&c, w->req) || tc_read_response(&c, &r, 120, 0)) {
            w->errors++;
            tc_close(&c);
            if (tc_open(&c, w->port))
                return NULL;
            continue;
        }
        double dt = tc_now() - t0;
        if (r.status != 200) {
            w->errors++;
        } else {
            const char *p = strstr(r.body, "\"completion_tokens\":");
            if (p)
                w->events += atol(p + 20);
            if (w->nlat == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 1024;
                w->lat = realloc(w->lat, (size_t)w->cap * sizeof(double));
            }
            w->lat[w->nlat++] = dt;
        }
        tc_res_free(&r);
    }
    tc_close(&c);
    return NULL;
}

int main(int argc, char **argv)
{
    int flood = argc > 1 && !strcmp(argv[1], "-c");
    argv += flood;
    argc -= flood;
    if (argc != 6) {
        fprintf(stderr, "usage: loadgen [-c] PORT PATH BODY CONCURRENCY SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]), conc = atoi(argv[4]);
    double secs = atof(argv[5]);
    const char *path = argv[2], *body = argv[3];
    size_t n = strlen(body) + strlen(path) + 256;
    char *req = malloc(n);
    snprintf(req, n,
             "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, strlen(body), body);
    signal(SIGPIPE, SIG_IGN);
    if (flood) {
        int rc = loadgen_flood(port, req, conc, secs);
        free(req);
        return rc;
    }
    struct worker *ws = calloc((size_t)conc, sizeof(*ws));
    pthread_t *th = calloc((size_t)conc, sizeof(*th));
    double t0 = tc_now();
    for (int i = 0; i < conc; i++) {
        ws[i] = (struct worker){port, req, t0 + secs, NULL, 0, 0, 0, 0};
        pthread_create(&th[i], NULL, run, &ws[i]);
    }
    long total = 0, errors = 0, events = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].nlat;
        errors += ws[i].errors;
        events += ws[i].events;
    }
    double elapsed = tc_now() - t0;
    double *all = malloc((size_t)(total ? total : 1) * sizeof(double));
    long k = 0;
    for (int i = 0; i < conc; i++) {
        memcpy(all + k, ws[i].lat, (size_t)ws[i].nlat * sizeof(double));
        k += ws[i].nlat;
        free(ws[i].lat);
    }
    qsort(all, (size_t)total, sizeof(double), cmp_d);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(long)(total * 0.99)] : 0;
    printf(
        "requests=%ld errors=%ld rps=%.1f p50_ms=%.2f p99_ms=%.2f tokens=%ld tokens_per_s=%.1f\n",
        total, errors, total / elapsed, p50 * 1e3, p99 * 1e3, events, events / elapsed);
    free(all);
    free(ws);
    free(th);
    free(req);
    return errors && !total;
}
