/*
 * api/health.c — liveness, readiness, llama.cpp-style /health, and Prometheus /metrics.
 * All open (no key): probes and scrapers do not carry secrets.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/sched.h"
#include "server/metrics.h"

static void livez(struct srv_req *req, struct api_ctx *ctx)
{
    (void)ctx;
    srv_res_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct srv_req *req, struct api_ctx *ctx)
{
    const char *why = srv_server_not_ready(ctx->srv);
    if (why) {
        srv_res_header(req, "Retry-After", "5");
        api_errorf(req, 503, NULL, "not_ready", "not ready: %s", why);
        return;
    }
    srv_res_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

/* llama.cpp's /health: 200 {"status":"ok"} when it can serve, else 503 with the reason. */
static void health(struct srv_req *req, struct api_ctx *ctx)
{
    const char *why = srv_server_not_ready(ctx->srv);
    if (why) {
        api_errorf(req, 503, NULL, "unavailable", "%s", why);
        return;
    }
    srv_res_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static double process_rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void metrics(struct srv_req *req, struct api_ctx *ctx)
{
    struct srv_metrics *m = srv_server_metrics(ctx->srv);
    struct rusage ru;
    char labels[128];
    size_t len;

    srv_metrics_gauge_set(m, "http_open_connections", "Open HTTP connections", NULL,
                          srv_server_open_connections(ctx->srv));
    srv_metrics_gauge_set(m, "process_resident_memory_bytes", "Resident memory size in bytes", NULL,
                          process_rss_bytes());
    srv_metrics_gauge_set(m, "process_start_time_seconds",
                          "Start time of the process since the unix epoch in seconds", NULL,
                          ctx->start_time);
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        srv_metrics_counter_set(m, "process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds", NULL,
                                (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    srv_metrics_gauge_set(m, "bitdistill_ready", "1 when the daemon can serve inference", NULL,
                          srv_server_not_ready(ctx->srv) ? 0 : 1);
    srv_metrics_gauge_set(
        m, "bitdistill_build_info", "Version of this bitdistilld",
        srv_metrics_labels(labels, sizeof(labels), "version", PACKAGE_VERSION, NULL), 1);
    if (ctx->sched) {
        struct eng_sched_stats st;
        eng_sched_stats(ctx->sched, &st);
        srv_metrics_gauge_set(m, "bitdistill_num_requests_running",
                              "Inference requests in the engine now", NULL, st.running);
        srv_metrics_gauge_set(m, "bitdistill_num_requests_waiting",
                              "Inference requests (classification inputs) queued", NULL,
                              st.waiting);
        srv_metrics_gauge_set(m, "bitdistill_batch_size", "Sequences in the last batched pass",
                              NULL, st.last_batch);
        srv_metrics_gauge_set(m, "bitdistill_kv_cache_usage_ratio",
                              "Generation KV caches in use over capacity", NULL,
                              st.kv_capacity ? (double)st.kv_used / st.kv_capacity : 0.0);
    }
    char *text = srv_metrics_render(m, &len);
    if (!text) {
        api_error(req, 500, "out of memory rendering metrics", NULL, NULL);
        return;
    }
    srv_res_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

const struct api_route api_route_livez = {"GET", "/livez", "livez", SRV_SCOPE_OPEN, 0, livez};
const struct api_route api_route_readyz = {"GET", "/readyz", "readyz", SRV_SCOPE_OPEN, 0, readyz};
const struct api_route api_route_health = {"GET", "/health", "health", SRV_SCOPE_OPEN, 0, health};
const struct api_route api_route_metrics = {"GET",          "/metrics", "metrics",
                                            SRV_SCOPE_OPEN, 0,          metrics};
