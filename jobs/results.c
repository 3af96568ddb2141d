/*
 * jobs/results.c — see results.h.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/results.h"
#include "util/grow.h"

/* One optimizer step's row. NAN: no value (an empty cell). */
struct res_row {
    int stage;
    long step;
    double train_loss, train_acc, valid_loss, valid_acc, full_loss, full_acc, loss, lr;
};

struct res_rows {
    struct res_row *v;
    size_t n, cap;
};

/* The row of (stage, step): the existing one (a step run again after a resume) or a new one at
 * the end. NULL when out of memory. */
static struct res_row *row_of(struct res_rows *rs, int stage, long step)
{
    for (size_t i = rs->n; i-- > 0;)
        if (rs->v[i].stage == stage && rs->v[i].step == step)
            return &rs->v[i];
    if (UTIL_GROW(rs->v, rs->cap, rs->n + 1, 256))
        return NULL;
    struct res_row *r = &rs->v[rs->n++];
    *r = (struct res_row){stage, step, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    return r;
}

static double num_or_nan(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Append printf output to the growing buffer *b (length *n, capacity *cap). 0 or -1. */
static int buf_printf(char **b, size_t *n, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int buf_printf(char **b, size_t *n, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(*b + *n, *cap - *n, fmt, ap);
        va_end(ap);
        if (k < 0)
            return -1;
        if ((size_t)k < *cap - *n) {
            *n += (size_t)k;
            return 0;
        }
        size_t nc = *cap * 2 + (size_t)k;
        char *nb = realloc(*b, nc);
        if (!nb)
            return -1;
        *b = nb;
        *cap = nc;
    }
}

/* ",value" or "," for NAN, with 9 significant digits. */
static int cell(char **b, size_t *n, size_t *cap, double v)
{
    return isnan(v) ? buf_printf(b, n, cap, ",") : buf_printf(b, n, cap, ",%.9g", v);
}

char *job_results_csv(struct store *st, const char *id)
{
    sqlite3_stmt *s;
    struct res_rows rs = {0};
    char *out = NULL;
    int bad = 0;
    if (sqlite3_prepare_v2(store_reader(st),
                           "SELECT type, data FROM job_events WHERE job_id = ? AND type IN "
                           "('step', 'checkpoint') ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    while (!bad && sqlite3_step(s) == SQLITE_ROW) {
        json_error_t e;
        const char *type = (const char *)sqlite3_column_text(s, 0);
        json_t *d = json_loads((const char *)sqlite3_column_text(s, 1), 0, &e);
        int stage = (int)json_integer_value(json_object_get(d, "stage"));
        long step = (long)json_integer_value(json_object_get(d, "step"));
        struct res_row *r = d ? row_of(&rs, stage, step) : NULL;
        bad = d && !r;
        if (r && !strcmp(type, "step")) {
            r->train_loss = num_or_nan(d, "ce");
            r->train_acc = num_or_nan(d, "acc");
            r->loss = num_or_nan(d, "loss");
            r->lr = num_or_nan(d, "lr");
        } else if (r) {
            json_t *m = json_object_get(d, "metrics");
            r->valid_loss = num_or_nan(m, "valid_loss");
            r->valid_acc = num_or_nan(m, "valid_mean_token_accuracy");
            r->full_loss = num_or_nan(m, "full_valid_loss");
            r->full_acc = num_or_nan(m, "full_valid_mean_token_accuracy");
        }
        json_decref(d);
    }
    sqlite3_finalize(s);
    size_t n = 0, cap = 4096;
    if (bad || !(out = malloc(cap)))
        goto out;
    bad = buf_printf(&out, &n, &cap,
                     "step,train_loss,train_accuracy,valid_loss,"
                     "valid_mean_token_accuracy,stage,stage_step,full_valid_loss,"
                     "full_valid_mean_token_accuracy,loss,lr\n");
    for (size_t i = 0; i < rs.n && !bad; i++) {
        const struct res_row *r = &rs.v[i];
        bad = buf_printf(&out, &n, &cap, "%zu", i + 1) || cell(&out, &n, &cap, r->train_loss) ||
              cell(&out, &n, &cap, r->train_acc) || cell(&out, &n, &cap, r->valid_loss) ||
              cell(&out, &n, &cap, r->valid_acc) ||
              buf_printf(&out, &n, &cap, ",%d,%ld", r->stage, r->step) ||
              cell(&out, &n, &cap, r->full_loss) || cell(&out, &n, &cap, r->full_acc) ||
              cell(&out, &n, &cap, r->loss) || cell(&out, &n, &cap, r->lr) ||
              buf_printf(&out, &n, &cap, "\n");
    }
out:
    if (bad) {
        free(out);
        out = NULL;
    }
    free(rs.v);
    return out;
}
