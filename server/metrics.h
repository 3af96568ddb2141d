/*
 * server/metrics.h — a small Prometheus registry (text exposition format 0.0.4).
 *
 * Families are created on first use and keyed by name; a series is a family plus a label set
 * written in Prometheus syntax without braces (`handler="livez",method="GET"`), which the caller
 * builds with srv_metrics_labels so values are escaped. Counters only go up, gauges are set,
 * histograms use fixed latency buckets (seconds). Thread-safe (one mutex): engine threads may
 * record too. Metric names use `_`, never `:` or `-`; `_total` ends every counter's name and no
 * other's, units are base units named last (`_seconds`, `_bytes`), every family has HELP
 * (`promtool check metrics` passes: tests/test-srv-metrics.sh). A family keeps the type it was
 * created with: recording into it as another type is ignored.
 */
#ifndef BD_SERVER_METRICS_H
#define BD_SERVER_METRICS_H

#include <stddef.h>

struct srv_metrics;

struct srv_metrics *srv_metrics_create(void);
void srv_metrics_free(struct srv_metrics *m);

/*
 * Build `k1="v1",k2="v2"` from NULL-terminated key/value pairs into out (escaping \ " \n).
 * Returns out.
 */
char *srv_metrics_labels(char *out, size_t outlen, ...) __attribute__((sentinel));

void srv_metrics_counter_add(struct srv_metrics *m, const char *name, const char *help,
                             const char *labels, double v);
/* A counter mirrored from a monotonic source (e.g. the kernel's CPU time): set to v, never
 * lowered. */
void srv_metrics_counter_set(struct srv_metrics *m, const char *name, const char *help,
                             const char *labels, double v);
void srv_metrics_gauge_set(struct srv_metrics *m, const char *name, const char *help,
                           const char *labels, double v);
void srv_metrics_histogram_observe(struct srv_metrics *m, const char *name, const char *help,
                                   const char *labels, double v);

/* Render every family. Returns a new NUL-terminated string (caller frees) or NULL. */
char *srv_metrics_render(struct srv_metrics *m, size_t *len);

#endif
