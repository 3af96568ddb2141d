/*
 * server/metrics.c — see metrics.h. Series live in one open-addressing-free flat array searched
 * linearly per family: a daemon has tens of series, and lookups cost less than the request they
 * measure. Rendering walks families in creation order so the output is stable.
 */
#include "server/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"

enum met_type { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM };

/* Latency buckets in seconds (upper bounds), +Inf implied. */
static const double met_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof(met_buckets) / sizeof(met_buckets[0]))

struct met_series {
    char *labels;
    double value;             /* counter/gauge; histogram: sum */
    unsigned long long count; /* histogram: observations */
    unsigned long long bucket[N_BUCKETS];
};

struct met_family {
    char *name;
    char *help;
    enum met_type type;
    struct met_series *series;
    size_t n, cap;
};

struct srv_metrics {
    pthread_mutex_t lock;
    struct met_family *fam;
    size_t n, cap;
};

struct srv_metrics *srv_metrics_create(void)
{
    struct srv_metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void srv_metrics_free(struct srv_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        for (size_t j = 0; j < m->fam[i].n; j++)
            free(m->fam[i].series[j].labels);
        free(m->fam[i].series);
        free(m->fam[i].name);
        free(m->fam[i].help);
    }
    free(m->fam);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

char *srv_metrics_labels(char *out, size_t outlen, ...)
{
    va_list ap;
    size_t n = 0;
    const char *k;
    out[0] = 0;
    va_start(ap, outlen);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (!v)
            v = "";
        n += snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s=\"", n ? "," : "", k);
        for (; *v && n + 3 < outlen; v++) {
            if (*v == '\\' || *v == '"') {
                out[n++] = '\\';
                out[n++] = *v;
            } else if (*v == '\n') {
                out[n++] = '\\';
                out[n++] = 'n';
            } else {
                out[n++] = *v;
            }
        }
        if (n + 2 < outlen) {
            out[n++] = '"';
            out[n] = 0;
        }
    }
    va_end(ap);
    return out;
}

/* Find or create the series; NULL when out of memory or when the family exists with another
 * type. Lock held. */
static struct met_series *met_get(struct srv_metrics *m, const char *name, const char *help,
                                  enum met_type type, const char *labels)
{
    struct met_family *f = NULL;
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->fam[i].name, name)) {
            f = &m->fam[i];
            break;
        }
    if (f && f->type != type)
        return NULL;
    if (!f) {
        if (UTIL_GROW(m->fam, m->cap, m->n + 1, 16))
            return NULL;
        f = &m->fam[m->n];
        memset(f, 0, sizeof(*f));
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        f->type = type;
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            return NULL;
        }
        m->n++;
    }
    if (!labels)
        labels = "";
    for (size_t j = 0; j < f->n; j++)
        if (!strcmp(f->series[j].labels, labels))
            return &f->series[j];
    if (UTIL_GROW(f->series, f->cap, f->n + 1, 8))
        return NULL;
    struct met_series *s = &f->series[f->n];
    memset(s, 0, sizeof(*s));
    if (!(s->labels = strdup(labels)))
        return NULL;
    f->n++;
    return s;
}

void srv_metrics_counter_add(struct srv_metrics *m, const char *name, const char *help,
                             const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    struct met_series *s = met_get(m, name, help, MET_COUNTER, labels);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_counter_set(struct srv_metrics *m, const char *name, const char *help,
                             const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    struct met_series *s = met_get(m, name, help, MET_COUNTER, labels);
    if (s && v > s->value)
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_gauge_set(struct srv_metrics *m, const char *name, const char *help,
                           const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    struct met_series *s = met_get(m, name, help, MET_GAUGE, labels);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_histogram_observe(struct srv_metrics *m, const char *name, const char *help,
                                   const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    struct met_series *s = met_get(m, name, help, MET_HISTOGRAM, labels);
    if (s) {
        s->value += v;
        s->count++;
        for (size_t b = 0; b < N_BUCKETS; b++)
            if (v <= met_buckets[b])
                s->bucket[b]++;
    }
    pthread_mutex_unlock(&m->lock);
}

struct met_buf {
    char *p;
    size_t n, cap;
    int oom;
};

static void met_printf(struct met_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void met_printf(struct met_buf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)k;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

/* Prometheus float formatting: integers without exponent, +Inf/NaN spelled out. */
static void met_value(struct met_buf *b, double v)
{
    if (isnan(v))
        met_printf(b, "NaN");
    else if (isinf(v))
        met_printf(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        met_printf(b, "%lld", (long long)v);
    else
        met_printf(b, "%.9g", v);
}

static void met_sample(struct met_buf *b, const char *name, const char *suffix, const char *labels,
                       const char *extra, double v)
{
    int has = labels && *labels;
    met_printf(b, "%s%s", name, suffix);
    if (has || extra)
        met_printf(b, "{%s%s%s}", has ? labels : "", has && extra ? "," : "", extra ? extra : "");
    met_printf(b, " ");
    met_value(b, v);
    met_printf(b, "\n");
}

char *srv_metrics_render(struct srv_metrics *m, size_t *len)
{
    static const char *const tname[] = {"counter", "gauge", "histogram"};
    struct met_buf b = {malloc(4096), 0, 4096, 0};
    if (!b.p)
        return NULL;
    b.p[0] = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        struct met_family *f = &m->fam[i];
        met_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, tname[f->type]);
        for (size_t j = 0; j < f->n; j++) {
            struct met_series *s = &f->series[j];
            if (f->type != MET_HISTOGRAM) {
                met_sample(&b, f->name, "", s->labels, NULL, s->value);
                continue;
            }
            for (size_t k = 0; k < N_BUCKETS; k++) {
                char le[48];
                snprintf(le, sizeof(le), "le=\"%g\"", met_buckets[k]);
                met_sample(&b, f->name, "_bucket", s->labels, le, (double)s->bucket[k]);
            }
            met_sample(&b, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
            met_sample(&b, f->name, "_sum", s->labels, NULL, s->value);
            met_sample(&b, f->name, "_count", s->labels, NULL, (double)s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.n;
    return b.p;
}
