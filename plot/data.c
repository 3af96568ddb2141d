/*
 * plot/data.c — reading points from JSON lines and tables, filters, bar arguments (see data.h).
 *
 * Workload: event logs of training runs, up to a few hundred thousand lines; each line is parsed
 * once with jansson (JSON) or split in place (tables), and only the two plotted numbers are kept.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plot/data.h"
#include "plot/err.h"

int plot_filter_parse(const char *arg, struct plot_filter *f, char *err)
{
    const char *eq = strchr(arg, '=');
    memset(f, 0, sizeof(*f));
    if (!eq || eq == arg || (eq == arg + 1 && arg[0] == '!'))
        return plot_fail(err, PLOT_EINVAL, "bad filter '%s': expected FIELD=VALUE or FIELD!=VALUE",
                         arg);
    size_t klen = (size_t)(eq - arg);
    if (arg[klen - 1] == '!') {
        f->negate = 1;
        klen--;
    }
    if (klen >= sizeof(f->key) || strlen(eq + 1) >= sizeof(f->value))
        return plot_fail(err, PLOT_EINVAL, "bad filter '%s': field or value too long", arg);
    memcpy(f->key, arg, klen);
    snprintf(f->value, sizeof(f->value), "%s", eq + 1);
    return 0;
}

void plot_points_release(struct plot_points *p)
{
    free(p->x);
    free(p->y);
    memset(p, 0, sizeof(*p));
}

static int points_push(struct plot_points *p, double x, double y)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        double *nx = realloc(p->x, cap * sizeof(*nx));
        if (!nx)
            return PLOT_ENOMEM;
        p->x = nx;
        double *ny = realloc(p->y, cap * sizeof(*ny));
        if (!ny)
            return PLOT_ENOMEM;
        p->y = ny;
        p->cap = cap;
    }
    p->x[p->n] = x;
    p->y[p->n++] = y;
    return 0;
}

/* The whole of s is a finite number: store it in *v. */
static int data_number(const char *s, double *v)
{
    char *end;
    while (*s == ' ')
        s++;
    if (!*s)
        return 0;
    errno = 0;
    double d = strtod(s, &end);
    while (*end == ' ' || *end == '\r')
        end++;
    if (end == s || *end || !isfinite(d))
        return 0;
    *v = d;
    return 1;
}

/* Whether the JSON value v (NULL: absent) equals the filter's value text. */
static int filter_json_eq(const json_t *v, const char *want)
{
    double a, b;
    if (!v)
        return 0;
    if (json_is_string(v))
        return !strcmp(json_string_value(v), want);
    if (json_is_number(v))
        return data_number(want, &b) && (a = json_number_value(v)) == b;
    if (json_is_true(v))
        return !strcmp(want, "true");
    if (json_is_false(v))
        return !strcmp(want, "false");
    if (json_is_null(v))
        return !strcmp(want, "null");
    return 0;
}

/* Whether the table cell s equals the filter's value text (as numbers when both are). */
static int filter_cell_eq(const char *s, const char *want)
{
    double a, b;
    if (data_number(s, &a) && data_number(want, &b))
        return a == b;
    return !strcmp(s, want);
}

/* Read the next line of f into *line (getline's buffer); strip the newline. Returns its length or
 * -1. */
static ssize_t data_line(FILE *f, char **line, size_t *cap)
{
    ssize_t n = getline(line, cap, f);
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
        (*line)[--n] = 0;
    return n;
}

static int data_blank(const char *s)
{
    return s[strspn(s, " \t")] == 0;
}

/* The keys of object o as "a, b, c" into buf (n bytes). */
static void data_keys(json_t *o, char *buf, size_t n)
{
    const char *k;
    json_t *v;
    size_t len = 0;
    buf[0] = 0;
    json_object_foreach(o, k, v)
    {
        int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", k);
        if (w < 0 || (size_t)w >= n - len)
            break;
        len += (size_t)w;
    }
}

static int data_read_json(FILE *f, const char *path, char **line, size_t *cap, const char *xf,
                          const char *yf, const struct plot_filter *flt, int nf,
                          struct plot_points *pts, size_t *skipped, char *err)
{
    size_t lines = 0, objects = 0, matched = 0, before = pts->n, bad = 0;
    char keys[256] = "";
    int ordinal = !strcmp(xf, "@n");
    ssize_t n;
    for (n = (ssize_t)strlen(*line); n >= 0; n = data_line(f, line, cap)) {
        if (data_blank(*line))
            continue;
        lines++;
        json_t *o = json_loads(*line, 0, NULL);
        if (!json_is_object(o)) {
            bad++;
            json_decref(o);
            continue;
        }
        if (!objects++)
            data_keys(o, keys, sizeof(keys));
        int pass = 1;
        for (int i = 0; i < nf && pass; i++)
            pass = filter_json_eq(json_object_get(o, flt[i].key), flt[i].value) != flt[i].negate;
        json_t *jx = ordinal ? NULL : json_object_get(o, xf), *jy = json_object_get(o, yf);
        if (pass) {
            matched++;
            if ((ordinal || json_is_number(jx)) && json_is_number(jy)) {
                double x = ordinal ? (double)(pts->n - before) : json_number_value(jx);
                double y = json_number_value(jy);
                if (isfinite(x) && isfinite(y) && points_push(pts, x, y)) {
                    json_decref(o);
                    return plot_fail(err, PLOT_ENOMEM, "'%s': out of memory at %zu points", path,
                                     pts->n);
                }
            }
        }
        json_decref(o);
    }
    if (ferror(f))
        return plot_fail(err, PLOT_EIO, "cannot read '%s': %s", path, strerror(errno));
    if (skipped)
        *skipped = bad;
    if (pts->n == before)
        return plot_fail(err, PLOT_ENODATA,
                         "'%s': no record has numbers in both '%s' and '%s' (%zu lines, %zu JSON "
                         "objects, %zu passed the filters; fields of the first: %s)",
                         path, xf, yf, lines, objects, matched, objects ? keys : "none");
    return 0;
}

/* Split line in place at separator sep (' ': runs of spaces); trims cells. Returns the count. */
static int data_split(char *line, char sep, char **cells, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        while (sep == ' ' && *p == ' ')
            p++;
        if (sep == ' ' && !*p)
            break;
        char *end = sep == ' ' ? p + strcspn(p, " ") : strchr(p, sep);
        char *next = end && *end ? end + 1 : NULL;
        if (end)
            *end = 0;
        while (*p == ' ')
            p++;
        for (char *e = p + strlen(p); e > p && (e[-1] == ' ' || e[-1] == '\r');)
            *--e = 0;
        cells[n++] = p;
        if (!next)
            break;
        p = next;
    }
    return n;
}

#define DATA_MAX_COLS 256
#define DATA_MAX_FILTERS 16

static int data_read_table(FILE *f, const char *path, char **line, size_t *cap, const char *xf,
                           const char *yf, const struct plot_filter *flt, int nf,
                           struct plot_points *pts, char *err)
{
    char *cells[DATA_MAX_COLS], cols[256] = "";
    char sep = strchr(*line, '\t') ? '\t' : strchr(*line, ',') ? ',' : ' ';
    int ncol = data_split(*line, sep, cells, DATA_MAX_COLS), xi = -1, yi = -1;
    int fi[DATA_MAX_FILTERS];
    size_t rows = 0, before = pts->n, len = 0;
    int ordinal = !strcmp(xf, "@n");
    if (nf > DATA_MAX_FILTERS)
        return plot_fail(err, PLOT_EINVAL, "too many filters (at most %d)", DATA_MAX_FILTERS);
    for (int i = 0; i < ncol; i++) {
        int w = snprintf(cols + len, sizeof(cols) - len, "%s%s", i ? ", " : "", cells[i]);
        len = w > 0 && (size_t)w < sizeof(cols) - len ? len + (size_t)w : len;
        if (!strcmp(cells[i], xf) && xi < 0)
            xi = i;
        if (!strcmp(cells[i], yf) && yi < 0)
            yi = i;
    }
    /* The header's cells point into *line, which the next getline overwrites: use them now. */
    if ((!ordinal && xi < 0) || yi < 0)
        return plot_fail(err, PLOT_EFORMAT, "'%s': no column '%s' (columns: %s)", path,
                         !ordinal && xi < 0 ? xf : yf, cols);
    for (int k = 0; k < nf; k++) {
        fi[k] = -1;
        for (int i = 0; i < ncol; i++)
            if (!strcmp(cells[i], flt[k].key))
                fi[k] = i;
        if (fi[k] < 0)
            return plot_fail(err, PLOT_EFORMAT,
                             "'%s': filter on '%s', which is not a column (columns: %s)", path,
                             flt[k].key, cols);
    }
    while (data_line(f, line, cap) >= 0) {
        if (data_blank(*line))
            continue;
        rows++;
        int n = data_split(*line, sep, cells, DATA_MAX_COLS), pass = 1;
        for (int k = 0; k < nf && pass; k++)
            pass = (fi[k] < n && filter_cell_eq(cells[fi[k]], flt[k].value)) != flt[k].negate;
        double x, y;
        if (!pass || yi >= n || !data_number(cells[yi], &y))
            continue;
        if (ordinal)
            x = (double)(pts->n - before);
        else if (xi >= n || !data_number(cells[xi], &x))
            continue;
        if (points_push(pts, x, y))
            return plot_fail(err, PLOT_ENOMEM, "'%s': out of memory at %zu points", path, pts->n);
    }
    if (ferror(f))
        return plot_fail(err, PLOT_EIO, "cannot read '%s': %s", path, strerror(errno));
    if (pts->n == before)
        return plot_fail(err, PLOT_ENODATA,
                         "'%s': no row has numbers in both '%s' and '%s' (%zu rows; columns: %s)",
                         path, xf, yf, rows, cols);
    return 0;
}

int plot_data_read(const char *path, const char *xf, const char *yf, const struct plot_filter *f,
                   int nf, struct plot_points *pts, size_t *skipped, char *err)
{
    int use_stdin = !strcmp(path, "-"), rc;
    FILE *in = use_stdin ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    if (skipped)
        *skipped = 0;
    if (!in)
        return plot_fail(err, PLOT_EIO, "cannot open '%s': %s", path, strerror(errno));
    ssize_t n;
    while ((n = data_line(in, &line, &cap)) >= 0 && data_blank(line))
        ;
    if (n < 0) {
        rc = ferror(in) ? plot_fail(err, PLOT_EIO, "cannot read '%s': %s", path, strerror(errno))
                        : plot_fail(err, PLOT_ENODATA, "'%s' is empty", path);
        goto out_file;
    }
    if (line[strspn(line, " \t")] == '{')
        rc = data_read_json(in, path, &line, &cap, xf, yf, f, nf, pts, skipped, err);
    else
        rc = data_read_table(in, path, &line, &cap, xf, yf, f, nf, pts, err);
out_file:
    free(line);
    if (!use_stdin)
        fclose(in);
    return rc;
}

int plot_bar_parse(const char *arg, const char *sep, char **group, char **label, double *value,
                   double *errv, char *err)
{
    const char *eq = strrchr(arg, '='), *name = arg;
    *group = *label = NULL;
    *value = *errv = 0;
    if (!eq)
        return plot_fail(err, PLOT_EINVAL, "bad bar '%s': expected [GROUP/]LABEL=VALUE[±ERR]", arg);
    size_t nlen = (size_t)(eq - arg);
    const char *g = sep && *sep ? memmem(arg, nlen, sep, strlen(sep)) : NULL;
    if (g) {
        if (g == arg)
            return plot_fail(err, PLOT_EINVAL, "bad bar '%s': empty group before '%s'", arg, sep);
        if (!(*group = strndup(arg, (size_t)(g - arg))))
            return PLOT_ENOMEM;
        name = g + strlen(sep);
        nlen = (size_t)(eq - name);
    }
    if (!nlen) {
        free(*group);
        *group = NULL;
        return plot_fail(err, PLOT_EINVAL, "bad bar '%s': empty label before '='", arg);
    }
    if (!(*label = strndup(name, nlen))) {
        free(*group);
        *group = NULL;
        return PLOT_ENOMEM;
    }
    /* VALUE, then optionally ± (UTF-8), "+-" or "+/-" and ERR. */
    char num[128];
    const char *v = eq + 1, *pm = strstr(v, "\xc2\xb1"), *tail = NULL;
    size_t plen = 2;
    if (!pm && (pm = strstr(v, "+/-")))
        plen = 3;
    if (!pm && (pm = strstr(v, "+-")))
        plen = 2;
    size_t vlen = pm ? (size_t)(pm - v) : strlen(v);
    if (pm)
        tail = pm + plen;
    snprintf(num, sizeof(num), "%.*s", (int)(vlen < sizeof(num) ? vlen : sizeof(num) - 1), v);
    if (!vlen || !data_number(num, value)) {
        plot_fail(err, PLOT_EINVAL, "bad bar '%s': value '%s' is not a number", arg, num);
        goto fail;
    }
    if (tail && (!data_number(tail, errv) || *errv < 0)) {
        plot_fail(err, PLOT_EINVAL, "bad bar '%s': error '%s' is not a number >= 0", arg, tail);
        goto fail;
    }
    return 0;
fail:
    free(*group);
    free(*label);
    *group = *label = NULL;
    return PLOT_EINVAL;
}
