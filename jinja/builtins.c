/*
 * jinja/builtins.c — Jinja2's filters and tests that chat templates use, with Jinja2's argument
 * names and defaults, and transformers' `tojson`. The parser refuses any other filter or test
 * name (jinja_known_filter, jinja_known_test), so a template never reaches one this file lacks.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_impl.h"

static const char *const FILTERS[] = {
    "abs",     "capitalize", "count",  "d",      "default",    "dictsort",  "e",          "escape",
    "first",   "float",      "indent", "int",    "items",      "join",      "last",       "length",
    "list",    "lower",      "map",    "max",    "min",        "reject",    "rejectattr", "replace",
    "reverse", "round",      "safe",   "select", "selectattr", "sort",      "string",     "sum",
    "title",   "tojson",     "trim",   "unique", "upper",      "wordcount", NULL};

static const char *const TESTS[] = {
    "defined",  "undefined", "none",  "string",      "mapping", "iterable", "sequence",
    "number",   "integer",   "float", "boolean",     "true",    "false",    "in",
    "equalto",  "eq",        "==",    "ne",          "!=",      "lt",       "<",
    "le",       "<=",        "gt",    ">",           "ge",      ">=",       "greaterthan",
    "lessthan", "even",      "odd",   "divisibleby", "lower",   "upper",    "callable",
    "sameas",   "escaped",   NULL};

static int in_list(const char *const *list, const char *name)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], name))
            return 1;
    return 0;
}

int jinja_known_filter(const char *name)
{
    return in_list(FILTERS, name);
}
int jinja_known_test(const char *name)
{
    return in_list(TESTS, name);
}

jv jinja_arg(jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos,
             const char *name)
{
    if (pos < nargs)
        return args[pos];
    for (size_t i = 0; i < nkw; i++)
        if (name && !strcmp(kwn[i], name))
            return kwv[i];
    return jv_undef(NULL);
}

#define ARG(pos, name) jinja_arg(args, nargs, kwn, kwv, nkw, pos, name)

static int oom(struct jinja_ctx *c)
{
    return jinja_fail(c, JINJA_ELIMIT, "out of memory");
}

static int is_num(jv v)
{
    return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
}
static double fnum(jv v)
{
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
}

static jv list_val(struct jinja_list *l)
{
    jv v = {.t = JV_LIST, .u.l = l};
    return v;
}

/* The items of an iterable as a list: list items, dict keys, string characters. */
static int to_list(struct jinja_ctx *c, jv v, struct jinja_list **out)
{
    struct jinja_list *l;
    switch (v.t) {
    case JV_UNDEF: *out = jv_list_new(&c->arena, 1); return *out ? 0 : oom(c);
    case JV_LIST: *out = v.u.l; return 0;
    case JV_DICT:
        if (!(l = jv_list_new(&c->arena, v.u.d->n + 1)))
            return oom(c);
        for (size_t i = 0; i < v.u.d->n; i++)
            jv_list_push(&c->arena, l, v.u.d->k[i]);
        *out = l;
        return 0;
    case JV_STR: {
        const char *s = v.u.s->s;
        size_t n = v.u.s->len;
        if (!(l = jv_list_new(&c->arena, n + 1)))
            return oom(c);
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
                j++;
            jv ch = jv_str(&c->arena, s + i, j - i);
            if (ch.t == JV_UNDEF || jv_list_push(&c->arena, l, ch))
                return oom(c);
            i = j;
        }
        *out = l;
        return 0;
    }
    default: return jinja_fail(c, JINJA_ERENDER, "'%s' object is not iterable", jv_type_name(v));
    }
}

/* item[attr] with dotted paths ("a.b") and integer parts, as Jinja2's make_attrgetter. */
static int attr_path(struct jinja_ctx *c, jv item, jv attr, jv *out)
{
    if (attr.t != JV_STR) {
        if (item.t == JV_LIST && attr.t == JV_INT) {
            *out = attr.u.i >= 0 && (size_t)attr.u.i < item.u.l->n ? item.u.l->v[attr.u.i]
                                                                   : jv_undef(NULL);
            return 0;
        }
        return jinja_fail(c, JINJA_ERENDER, "attribute must be a string");
    }
    const char *p = attr.u.s->s;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char name[128];
        if (n >= sizeof(name))
            return jinja_fail(c, JINJA_ERENDER, "attribute name too long");
        memcpy(name, p, n);
        name[n] = 0;
        if (item.t == JV_DICT) {
            jv *v = jv_dict_gets(item.u.d, name);
            item = v ? *v : jv_undef(NULL);
        } else if (item.t == JV_LIST && n && strspn(name, "0123456789") == n) {
            size_t i = (size_t)atoll(name);
            item = i < item.u.l->n ? item.u.l->v[i] : jv_undef(NULL);
        } else if (item.t == JV_UNDEF) {
            return jinja_fail(c, JINJA_ERENDER, "'%s' is undefined", name);
        } else if (jinja_getattr(c, item, name, &item)) {
            return c->status;
        }
        if (!dot)
            break;
        p = dot + 1;
    }
    *out = item;
    return 0;
}

/* select/reject/selectattr/rejectattr: keep items whose (attribute) passes the test. */
static int select_items(struct jinja_ctx *c, jv v, int by_attr, int keep, jv *args, size_t nargs,
                        jv *out)
{
    struct jinja_list *in, *l;
    if (to_list(c, v, &in) || !(l = jv_list_new(&c->arena, in->n + 1)))
        return c->status ? c->status : oom(c);
    size_t first = by_attr ? 1 : 0;
    if (by_attr && nargs < 1)
        return jinja_fail(c, JINJA_ERENDER, "selectattr/rejectattr need an attribute");
    for (size_t i = 0; i < in->n; i++) {
        jv x = in->v[i];
        int r;
        if (by_attr && attr_path(c, x, args[0], &x))
            return c->status;
        if (nargs > first) {
            if (args[first].t != JV_STR)
                return jinja_fail(c, JINJA_ERENDER, "test name must be a string");
            const char *test = args[first].u.s->s;
            if (!jinja_known_test(test))
                return jinja_fail(c, JINJA_ERENDER, "unknown test '%s'", test);
            if (jinja_test(c, test, x, args + first + 1, nargs - first - 1, &r))
                return c->status;
        } else {
            r = jv_truthy(x);
        }
        if (r == keep && jv_list_push(&c->arena, l, in->v[i]))
            return oom(c);
    }
    *out = list_val(l);
    return 0;
}

static int lower_key(struct jinja_ctx *c, jv v, int case_sensitive, jv *out)
{
    if (v.t == JV_STR && !case_sensitive)
        return jinja_str_case(c, v, JC_LOWER, out);
    *out = v;
    return 0;
}

/* A stable merge sort of items by keys; errors when two keys cannot be ordered. */
static int sort_by(struct jinja_ctx *c, jv *items, jv *keys, size_t n, int reverse)
{
    if (n < 2)
        return 0;
    jv *ti = malloc(n * sizeof(jv)), *tk = malloc(n * sizeof(jv));
    int rc = 0;
    if (!ti || !tk) {
        rc = oom(c);
        goto out;
    }
    for (size_t width = 1; width < n && !rc; width *= 2) {
        for (size_t lo = 0; lo < n && !rc; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n,
                   hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid || j < hi) {
                int take_right = 0;
                if (i < mid && j < hi) {
                    int r;
                    if (jv_compare(keys[i], keys[j], &r)) {
                        rc = jinja_fail(c, JINJA_ERENDER,
                                        "'<' not supported between instances of '%s' and '%s'",
                                        jv_type_name(keys[j]), jv_type_name(keys[i]));
                        break;
                    }
                    take_right = reverse ? r < 0 : r > 0;
                } else {
                    take_right = i >= mid;
                }
                size_t s = take_right ? j++ : i++;
                ti[o] = items[s];
                tk[o++] = keys[s];
            }
        }
        if (!rc) {
            memcpy(items, ti, n * sizeof(jv));
            memcpy(keys, tk, n * sizeof(jv));
        }
    }
out:
    free(ti);
    free(tk);
    return rc;
}

static int filter_sort(struct jinja_ctx *c, jv v, int reverse, int cs, jv attr, jv *out)
{
    struct jinja_list *in, *l;
    if (to_list(c, v, &in) || !(l = jv_list_new(&c->arena, in->n + 1)))
        return c->status ? c->status : oom(c);
    jv *keys = jinja_alloc(&c->arena, (in->n + 1) * sizeof(jv));
    if (!keys)
        return oom(c);
    for (size_t i = 0; i < in->n; i++) {
        jv k = in->v[i];
        if (attr.t != JV_UNDEF && attr.t != JV_NONE && attr_path(c, k, attr, &k))
            return c->status;
        if (lower_key(c, k, cs, &keys[i]))
            return c->status;
        l->v[l->n++] = in->v[i];
    }
    if (sort_by(c, l->v, keys, l->n, reverse))
        return c->status;
    *out = list_val(l);
    return 0;
}

static int filter_dictsort(struct jinja_ctx *c, jv v, int cs, jv by, int reverse, jv *out)
{
    if (v.t != JV_DICT)
        return jinja_fail(c, JINJA_ERENDER, "dictsort needs a dict, not %s", jv_type_name(v));
    int by_value = by.t == JV_STR && !strcmp(by.u.s->s, "value");
    if (by.t == JV_STR && !by_value && strcmp(by.u.s->s, "key"))
        return jinja_fail(c, JINJA_ERENDER, "You can only sort by either \"key\" or \"value\"");
    struct jinja_list *l = jv_list_new(&c->arena, v.u.d->n + 1);
    jv *keys = jinja_alloc(&c->arena, (v.u.d->n + 1) * sizeof(jv));
    if (!l || !keys)
        return oom(c);
    for (size_t i = 0; i < v.u.d->n; i++) {
        struct jinja_list *pair = jv_list_new(&c->arena, 2);
        if (!pair)
            return oom(c);
        pair->tuple = 1;
        jv_list_push(&c->arena, pair, v.u.d->k[i]);
        jv_list_push(&c->arena, pair, v.u.d->v[i]);
        l->v[l->n++] = list_val(pair);
        if (lower_key(c, by_value ? v.u.d->v[i] : v.u.d->k[i], cs, &keys[i]))
            return c->status;
    }
    if (sort_by(c, l->v, keys, l->n, reverse))
        return c->status;
    *out = list_val(l);
    return 0;
}

static int filter_tojson(struct jinja_ctx *c, jv v, jv *args, size_t nargs, const char **kwn,
                         jv *kwv, size_t nkw, jv *out)
{
    jv ascii = ARG(0, "ensure_ascii"), ind = ARG(1, "indent"), seps = ARG(2, "separators"),
       sortk = ARG(3, "sort_keys");
    int indent = -1;
    if (jv_truthy(ascii))
        return jinja_fail(c, JINJA_ERENDER, "tojson(ensure_ascii=true) is not supported");
    if (ind.t == JV_INT)
        indent = ind.u.i < 0 ? 0 : ind.u.i > 64 ? 64 : (int)ind.u.i;
    else if (ind.t != JV_UNDEF && ind.t != JV_NONE)
        return jinja_fail(c, JINJA_ERENDER, "tojson indent must be an integer");
    const char *item_sep = indent >= 0 ? "," : ", ", *key_sep = ": ";
    if (seps.t == JV_LIST) {
        if (seps.u.l->n != 2 || seps.u.l->v[0].t != JV_STR || seps.u.l->v[1].t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER, "tojson separators must be two strings");
        item_sep = seps.u.l->v[0].u.s->s;
        key_sep = seps.u.l->v[1].u.s->s;
    } else if (seps.t != JV_UNDEF && seps.t != JV_NONE) {
        return jinja_fail(c, JINJA_ERENDER, "tojson separators must be two strings");
    }
    struct jinja_buf b = {.max = c->opts->max_output};
    const char *why = "output too large";
    int rc = jv_write_json(&b, v, indent, item_sep, key_sep, jv_truthy(sortk), 0, &why);
    if (rc)
        rc = jinja_fail(c, JINJA_ERENDER, "tojson: %s", why);
    else if ((*out = jv_str(&c->arena, b.p ? b.p : "", b.len)).t == JV_UNDEF)
        rc = oom(c);
    free(b.p);
    return rc;
}

/* Jinja2's indent: the first line stays unless `first`; blank lines stay blank unless `blank`. */
static int filter_indent(struct jinja_ctx *c, jv v, jv width, int first, int blank, jv *out)
{
    char pad[256];
    if (width.t == JV_STR) {
        snprintf(pad, sizeof(pad), "%s", width.u.s->s);
    } else {
        int64_t w = width.t == JV_INT ? width.u.i : 4;
        if (w < 0)
            w = 0;
        if (w > 200)
            return jinja_fail(c, JINJA_ERENDER, "indent width too large");
        memset(pad, ' ', (size_t)w);
        pad[w] = 0;
    }
    jv s = jv_to_str(c, v);
    if (s.t == JV_UNDEF)
        return c->status;
    struct jinja_buf b = {.max = c->opts->max_output};
    const char *p = s.u.s->s, *end = p + s.u.s->len;
    int line = 0, rc = 0;
    /* Python: (s + "\n").splitlines(), then joined with "\n" + pad */
    while (p < end || (p == end && line == 0 && s.u.s->len == 0)) {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r')
            e++;
        int empty = e == p;
        if (line)
            rc |= jinja_buf_putc(&b, '\n');
        if ((line ? (!empty || blank) : first))
            rc |= jinja_buf_put(&b, pad, strlen(pad));
        rc |= jinja_buf_put(&b, p, (size_t)(e - p));
        line++;
        if (e < end && *e == '\r' && e + 1 < end && e[1] == '\n')
            e++;
        p = e < end ? e + 1 : end;
        if (e >= end)
            break;
    }
    if (rc) {
        free(b.p);
        return jinja_fail(c, JINJA_ELIMIT, "output too large");
    }
    *out = jv_str(&c->arena, b.p ? b.p : "", b.len);
    free(b.p);
    return out->t == JV_UNDEF ? oom(c) : 0;
}

static int parse_number(const char *s, int want_int, jv *out)
{
    char *end;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (!*s)
        return -1;
    if (want_int) {
        long long i = strtoll(s, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
            end++;
        if (!*end) {
            *out = jv_int(i);
            return 0;
        }
    }
    double f = strtod(s, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
        end++;
    if (*end)
        return -1;
    if (want_int) {
        if (!isfinite(f) || fabs(f) > 9.2e18)
            return -1;
        *out = jv_int((int64_t)f);
    } else {
        *out = jv_float(f);
    }
    return 0;
}

static int filter_round(struct jinja_ctx *c, jv v, jv prec, jv method, jv *out)
{
    if (!is_num(v))
        return jinja_fail(c, JINJA_ERENDER, "round needs a number, not %s", jv_type_name(v));
    int64_t p = prec.t == JV_INT ? prec.u.i : 0;
    if (p < 0 || p > 15)
        return jinja_fail(c, JINJA_ERENDER, "round precision out of range");
    const char *m = method.t == JV_STR ? method.u.s->s : "common";
    double x = fnum(v), scale = pow(10, (double)p);
    if (!strcmp(m, "common")) {
        char tmp[400];
        snprintf(tmp, sizeof(tmp), "%.*f", (int)p, x); /* exact binary value, half to even */
        *out = jv_float(strtod(tmp, NULL));
    } else if (!strcmp(m, "floor")) {
        *out = jv_float(floor(x * scale) / scale);
    } else if (!strcmp(m, "ceil")) {
        *out = jv_float(ceil(x * scale) / scale);
    } else {
        return jinja_fail(c, JINJA_ERENDER, "method must be common, ceil or floor");
    }
    return 0;
}

static int filter_minmax(struct jinja_ctx *c, jv v, int want_max, int cs, jv attr, jv *out)
{
    struct jinja_list *l;
    if (to_list(c, v, &l))
        return c->status;
    *out = jv_undef(NULL);
    jv best_key = jv_undef(NULL);
    for (size_t i = 0; i < l->n; i++) {
        jv k = l->v[i];
        int r;
        if (attr.t != JV_UNDEF && attr.t != JV_NONE && attr_path(c, k, attr, &k))
            return c->status;
        if (lower_key(c, k, cs, &k))
            return c->status;
        if (i) {
            if (jv_compare(k, best_key, &r))
                return jinja_fail(c, JINJA_ERENDER, "values cannot be compared");
            if (want_max ? r <= 0 : r >= 0)
                continue;
        }
        best_key = k;
        *out = l->v[i];
    }
    return 0;
}

static int filter_map(struct jinja_ctx *c, jv v, jv *args, size_t nargs, const char **kwn, jv *kwv,
                      size_t nkw, jv *out)
{
    struct jinja_list *in, *l;
    if (to_list(c, v, &in) || !(l = jv_list_new(&c->arena, in->n + 1)))
        return c->status ? c->status : oom(c);
    jv attr = jinja_arg(NULL, 0, kwn, kwv, nkw, 0, "attribute");
    jv dflt = jinja_arg(NULL, 0, kwn, kwv, nkw, 0, "default");
    for (size_t i = 0; i < in->n; i++) {
        jv x;
        if (attr.t != JV_UNDEF) {
            if (attr_path(c, in->v[i], attr, &x))
                return c->status;
            if (x.t == JV_UNDEF && dflt.t != JV_UNDEF)
                x = dflt;
        } else {
            if (nargs < 1 || args[0].t != JV_STR)
                return jinja_fail(c, JINJA_ERENDER, "map needs a filter name or attribute=");
            const char *f = args[0].u.s->s;
            if (!jinja_known_filter(f) || !strcmp(f, "map"))
                return jinja_fail(c, JINJA_ERENDER, "unknown filter '%s' in map", f);
            if (jinja_filter(c, f, in->v[i], args + 1, nargs - 1, kwn, kwv, nkw, &x))
                return c->status;
        }
        if (jv_list_push(&c->arena, l, x))
            return oom(c);
    }
    *out = list_val(l);
    return 0;
}

static int filter_length(struct jinja_ctx *c, jv v, jv *out)
{
    switch (v.t) {
    case JV_UNDEF: *out = jv_int(0); return 0;
    case JV_STR: *out = jv_int((int64_t)jinja_utf8_len(v.u.s->s, v.u.s->len)); return 0;
    case JV_LIST: *out = jv_int((int64_t)v.u.l->n); return 0;
    case JV_DICT: *out = jv_int((int64_t)v.u.d->n); return 0;
    default:
        return jinja_fail(c, JINJA_ERENDER, "object of type '%s' has no len()", jv_type_name(v));
    }
}

static int filter_escape(struct jinja_ctx *c, jv v, jv *out)
{
    jv s = jv_to_str(c, v);
    if (s.t == JV_UNDEF)
        return c->status;
    struct jinja_buf b = {.max = c->opts->max_output};
    int rc = 0;
    for (size_t i = 0; i < s.u.s->len; i++) {
        char ch = s.u.s->s[i];
        const char *e = ch == '&'    ? "&amp;"
                        : ch == '<'  ? "&lt;"
                        : ch == '>'  ? "&gt;"
                        : ch == '"'  ? "&#34;"
                        : ch == '\'' ? "&#39;"
                                     : NULL;
        rc |= e ? jinja_buf_put(&b, e, strlen(e)) : jinja_buf_putc(&b, ch);
    }
    if (!rc)
        *out = jv_str(&c->arena, b.p ? b.p : "", b.len);
    free(b.p);
    return rc || out->t == JV_UNDEF ? oom(c) : 0;
}

int jinja_filter(struct jinja_ctx *c, const char *name, jv v, jv *args, size_t nargs,
                 const char **kwn, jv *kwv, size_t nkw, jv *out)
{
    struct jinja_list *l;
    jv s;
    if (!strcmp(name, "safe")) {
        *out = v;
        return 0;
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv dflt = ARG(0, "default_value");
        if (dflt.t == JV_UNDEF)
            dflt = jv_str(&c->arena, "", 0);
        *out = v.t == JV_UNDEF || (jv_truthy(ARG(1, "boolean")) && !jv_truthy(v)) ? dflt : v;
        return 0;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count"))
        return filter_length(c, v, out);
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
        !strcmp(name, "capitalize")) {
        s = jv_to_str(c, v);
        int mode = name[0] == 'u'   ? JC_UPPER
                   : name[0] == 'l' ? JC_LOWER
                   : name[0] == 't' ? JC_TITLE
                                    : JC_CAPITALIZE;
        return s.t == JV_UNDEF ? c->status : jinja_str_case(c, s, mode, out);
    }
    if (!strcmp(name, "trim")) {
        s = jv_to_str(c, v);
        return s.t == JV_UNDEF ? c->status : jinja_str_strip(c, s, ARG(0, "chars"), 3, out);
    }
    if (!strcmp(name, "string")) {
        *out = jv_to_str(c, v);
        return c->status;
    }
    if (!strcmp(name, "replace")) {
        jv old = ARG(0, "old"), nw = ARG(1, "new"), cnt = ARG(2, "count");
        s = jv_to_str(c, v);
        if (s.t == JV_UNDEF)
            return c->status;
        if (old.t != JV_STR || nw.t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER, "replace needs two strings");
        return jinja_str_replace(c, s, old, nw, cnt.t == JV_INT ? cnt.u.i : -1, out);
    }
    if (!strcmp(name, "join")) {
        jv sep = ARG(0, "d"), attr = ARG(1, "attribute");
        struct jinja_buf b = {.max = c->opts->max_output};
        int rc = 0;
        if (to_list(c, v, &l))
            return c->status;
        for (size_t i = 0; i < l->n && !rc; i++) {
            jv x = l->v[i];
            if (attr.t != JV_UNDEF && attr_path(c, x, attr, &x)) {
                free(b.p);
                return c->status;
            }
            if (i && sep.t == JV_STR)
                rc |= jinja_buf_put(&b, sep.u.s->s, sep.u.s->len);
            rc |= jv_write_str(&b, x);
        }
        if (!rc)
            *out = jv_str(&c->arena, b.p ? b.p : "", b.len);
        free(b.p);
        return rc || out->t == JV_UNDEF ? oom(c) : 0;
    }
    if (!strcmp(name, "items")) {
        if (v.t == JV_UNDEF) {
            l = jv_list_new(&c->arena, 1);
            *out = list_val(l);
            return l ? 0 : oom(c);
        }
        if (v.t != JV_DICT)
            return jinja_fail(c, JINJA_ERENDER, "items needs a mapping, not %s", jv_type_name(v));
        return jinja_method(c, v, "items", NULL, 0, NULL, NULL, 0, out);
    }
    if (!strcmp(name, "list")) {
        if (to_list(c, v, &l))
            return c->status;
        struct jinja_list *cp = jv_list_new(&c->arena, l->n + 1);
        if (!cp)
            return oom(c);
        for (size_t i = 0; i < l->n; i++)
            jv_list_push(&c->arena, cp, l->v[i]);
        *out = list_val(cp);
        return 0;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        if (to_list(c, v, &l))
            return c->status;
        *out = !l->n ? jv_undef(NULL) : name[0] == 'f' ? l->v[0] : l->v[l->n - 1];
        return 0;
    }
    if (!strcmp(name, "reverse")) {
        if (to_list(c, v, &l))
            return c->status;
        struct jinja_list *r = jv_list_new(&c->arena, l->n + 1);
        if (!r)
            return oom(c);
        for (size_t i = l->n; i-- > 0;)
            jv_list_push(&c->arena, r, l->v[i]);
        if (v.t != JV_STR) {
            *out = list_val(r);
            return 0;
        }
        struct jinja_buf b = {0};
        int rc = 0;
        for (size_t i = 0; i < r->n; i++)
            rc |= jinja_buf_put(&b, r->v[i].u.s->s, r->v[i].u.s->len);
        if (!rc)
            *out = jv_str(&c->arena, b.p ? b.p : "", b.len);
        free(b.p);
        return rc || out->t == JV_UNDEF ? oom(c) : 0;
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject"))
        return select_items(c, v, 0, name[0] == 's', args, nargs, out);
    if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_items(c, v, 1, name[0] == 's', args, nargs, out);
    if (!strcmp(name, "map"))
        return filter_map(c, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(name, "tojson"))
        return filter_tojson(c, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(name, "indent"))
        return filter_indent(c, v, ARG(0, "width"), jv_truthy(ARG(1, "first")),
                             jv_truthy(ARG(2, "blank")), out);
    if (!strcmp(name, "escape") || !strcmp(name, "e"))
        return filter_escape(c, v, out);
    if (!strcmp(name, "int") || !strcmp(name, "float")) {
        int want_int = name[0] == 'i';
        jv dflt = ARG(0, "default");
        if (dflt.t == JV_UNDEF)
            dflt = want_int ? jv_int(0) : jv_float(0);
        if (v.t == JV_INT || v.t == JV_BOOL)
            *out = want_int ? jv_int(v.t == JV_INT ? v.u.i : v.u.b) : jv_float(fnum(v));
        else if (v.t == JV_FLOAT)
            *out = want_int
                       ? (isfinite(v.u.f) && fabs(v.u.f) < 9.2e18 ? jv_int((int64_t)v.u.f) : dflt)
                       : v;
        else if (v.t != JV_STR || parse_number(v.u.s->s, want_int, out))
            *out = dflt;
        return 0;
    }
    if (!strcmp(name, "abs")) {
        if (!is_num(v))
            return jinja_fail(c, JINJA_ERENDER, "bad operand type for abs(): '%s'",
                              jv_type_name(v));
        if (v.t == JV_FLOAT)
            *out = jv_float(fabs(v.u.f));
        else if (v.t == JV_INT && v.u.i == INT64_MIN)
            return jinja_fail(c, JINJA_ERENDER, "integer overflow in abs");
        else
            *out = jv_int(v.t == JV_INT ? (v.u.i < 0 ? -v.u.i : v.u.i) : v.u.b);
        return 0;
    }
    if (!strcmp(name, "round"))
        return filter_round(c, v, ARG(0, "precision"), ARG(1, "method"), out);
    if (!strcmp(name, "dictsort"))
        return filter_dictsort(c, v, jv_truthy(ARG(0, "case_sensitive")), ARG(1, "by"),
                               jv_truthy(ARG(2, "reverse")), out);
    if (!strcmp(name, "sort"))
        return filter_sort(c, v, jv_truthy(ARG(0, "reverse")), jv_truthy(ARG(1, "case_sensitive")),
                           ARG(2, "attribute"), out);
    if (!strcmp(name, "unique")) {
        int cs = jv_truthy(ARG(0, "case_sensitive"));
        jv attr = ARG(1, "attribute");
        struct jinja_list *u, *keys;
        if (to_list(c, v, &l) || !(u = jv_list_new(&c->arena, l->n + 1)) ||
            !(keys = jv_list_new(&c->arena, l->n + 1)))
            return c->status ? c->status : oom(c);
        for (size_t i = 0; i < l->n; i++) {
            jv k = l->v[i];
            int seen = 0;
            if ((attr.t != JV_UNDEF && attr_path(c, k, attr, &k)) || lower_key(c, k, cs, &k))
                return c->status;
            for (size_t j = 0; j < keys->n && !seen; j++)
                seen = jv_equal(keys->v[j], k);
            if (!seen) {
                jv_list_push(&c->arena, keys, k);
                jv_list_push(&c->arena, u, l->v[i]);
            }
        }
        *out = list_val(u);
        return 0;
    }
    if (!strcmp(name, "sum")) {
        jv attr = ARG(0, "attribute"), acc = ARG(1, "start");
        if (acc.t == JV_UNDEF)
            acc = jv_int(0);
        if (to_list(c, v, &l))
            return c->status;
        for (size_t i = 0; i < l->n; i++) {
            jv x = l->v[i];
            if (attr.t != JV_UNDEF && attr_path(c, x, attr, &x))
                return c->status;
            if (!is_num(x) || !is_num(acc))
                return jinja_fail(c, JINJA_ERENDER, "sum needs numbers, not %s", jv_type_name(x));
            if (acc.t != JV_FLOAT && x.t != JV_FLOAT) {
                int64_t r;
                if (__builtin_add_overflow(acc.t == JV_INT ? acc.u.i : acc.u.b,
                                           x.t == JV_INT ? x.u.i : x.u.b, &r))
                    return jinja_fail(c, JINJA_ERENDER, "integer overflow in sum");
                acc = jv_int(r);
            } else {
                acc = jv_float(fnum(acc) + fnum(x));
            }
        }
        *out = acc;
        return 0;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max"))
        return filter_minmax(c, v, name[1] == 'a', jv_truthy(ARG(0, "case_sensitive")),
                             ARG(1, "attribute"), out);
    if (!strcmp(name, "wordcount")) {
        s = jv_to_str(c, v);
        if (s.t == JV_UNDEF)
            return c->status;
        int64_t n = 0, in = 0;
        for (size_t i = 0; i < s.u.s->len; i++) {
            unsigned char ch = (unsigned char)s.u.s->s[i];
            int w = ch >= 0x80 || ch == '_' || (ch >= '0' && ch <= '9') ||
                    ((ch | 32) >= 'a' && (ch | 32) <= 'z');
            n += w && !in;
            in = w;
        }
        *out = jv_int(n);
        return 0;
    }
    return jinja_fail(c, JINJA_ERENDER, "unknown filter '%s'", name);
}

static int test_cmp(struct jinja_ctx *c, int op, jv v, jv *args, size_t nargs, int *out)
{
    if (nargs < 1)
        return jinja_fail(c, JINJA_ERENDER, "comparison test needs an argument");
    int r;
    if (jv_compare(v, args[0], &r))
        return jinja_fail(c, JINJA_ERENDER, "values of type '%s' and '%s' cannot be compared",
                          jv_type_name(v), jv_type_name(args[0]));
    *out = op == 0 ? r < 0 : op == 1 ? r <= 0 : op == 2 ? r > 0 : r >= 0;
    return 0;
}

int jinja_test(struct jinja_ctx *c, const char *name, jv v, jv *args, size_t nargs, int *out)
{
    const char *n = name;
    if (!strcmp(n, "defined")) {
        *out = v.t != JV_UNDEF;
        return 0;
    }
    if (!strcmp(n, "undefined")) {
        *out = v.t == JV_UNDEF;
        return 0;
    }
    if (!strcmp(n, "none")) {
        *out = v.t == JV_NONE;
        return 0;
    }
    if (!strcmp(n, "string")) {
        *out = v.t == JV_STR;
        return 0;
    }
    if (!strcmp(n, "mapping")) {
        *out = v.t == JV_DICT;
        return 0;
    }
    if (!strcmp(n, "iterable")) {
        *out = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT;
        return 0;
    }
    if (!strcmp(n, "sequence")) {
        *out = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT;
        return 0;
    }
    if (!strcmp(n, "number")) {
        *out = is_num(v);
        return 0;
    }
    if (!strcmp(n, "integer")) {
        *out = v.t == JV_INT;
        return 0;
    }
    if (!strcmp(n, "float")) {
        *out = v.t == JV_FLOAT;
        return 0;
    }
    if (!strcmp(n, "boolean")) {
        *out = v.t == JV_BOOL;
        return 0;
    }
    if (!strcmp(n, "true")) {
        *out = v.t == JV_BOOL && v.u.b;
        return 0;
    }
    if (!strcmp(n, "false")) {
        *out = v.t == JV_BOOL && !v.u.b;
        return 0;
    }
    if (!strcmp(n, "callable")) {
        *out = v.t == JV_FUNC;
        return 0;
    }
    if (!strcmp(n, "escaped")) {
        *out = 0;
        return 0;
    }
    if (!strcmp(n, "lower") || !strcmp(n, "upper")) {
        jv m;
        if (v.t != JV_STR) {
            *out = 0;
            return 0;
        }
        if (jinja_str_case(c, v, n[0] == 'l' ? JC_LOWER : JC_UPPER, &m))
            return c->status;
        *out = jv_equal(m, v);
        return 0;
    }
    if (!strcmp(n, "even") || !strcmp(n, "odd") || !strcmp(n, "divisibleby")) {
        int64_t d = 2, x;
        if (v.t != JV_INT && v.t != JV_BOOL)
            return jinja_fail(c, JINJA_ERENDER, "test '%s' needs an integer, not %s", n,
                              jv_type_name(v));
        x = v.t == JV_INT ? v.u.i : v.u.b;
        if (n[0] == 'd') {
            if (nargs < 1 || args[0].t != JV_INT || args[0].u.i == 0)
                return jinja_fail(c, JINJA_ERENDER, "divisibleby needs a non-zero integer");
            d = args[0].u.i;
            *out = d == -1 || x % d == 0;
            return 0;
        }
        *out = (x % 2 == 0) == (n[0] == 'e');
        return 0;
    }
    if (nargs < 1 && strcmp(n, "in"))
        return jinja_fail(c, JINJA_ERENDER, "test '%s' needs an argument", n);
    if (!strcmp(n, "equalto") || !strcmp(n, "eq") || !strcmp(n, "==")) {
        *out = jv_equal(v, args[0]);
        return 0;
    }
    if (!strcmp(n, "sameas")) {
        *out = v.t == args[0].t && (v.t == JV_NONE || v.t == JV_UNDEF || jv_equal(v, args[0])) &&
               (v.t != JV_LIST && v.t != JV_DICT ? 1 : v.u.l == args[0].u.l);
        return 0;
    }
    if (!strcmp(n, "ne") || !strcmp(n, "!=")) {
        *out = !jv_equal(v, args[0]);
        return 0;
    }
    if (!strcmp(n, "in")) {
        if (nargs < 1)
            return jinja_fail(c, JINJA_ERENDER, "test 'in' needs an argument");
        jv cont = args[0];
        if (cont.t == JV_STR) {
            if (v.t != JV_STR)
                return jinja_fail(c, JINJA_ERENDER,
                                  "'in <string>' requires string as left operand");
            *out = memmem(cont.u.s->s, cont.u.s->len, v.u.s->s, v.u.s->len) != NULL || !v.u.s->len;
        } else if (cont.t == JV_LIST) {
            *out = 0;
            for (size_t i = 0; i < cont.u.l->n && !*out; i++)
                *out = jv_equal(v, cont.u.l->v[i]);
        } else if (cont.t == JV_DICT) {
            *out = jv_dict_get(cont.u.d, v) != NULL;
        } else if (cont.t == JV_UNDEF) {
            *out = 0;
        } else {
            return jinja_fail(c, JINJA_ERENDER, "argument of type '%s' is not iterable",
                              jv_type_name(cont));
        }
        return 0;
    }
    if (!strcmp(n, "lt") || !strcmp(n, "<") || !strcmp(n, "lessthan"))
        return test_cmp(c, 0, v, args, nargs, out);
    if (!strcmp(n, "le") || !strcmp(n, "<="))
        return test_cmp(c, 1, v, args, nargs, out);
    if (!strcmp(n, "gt") || !strcmp(n, ">") || !strcmp(n, "greaterthan"))
        return test_cmp(c, 2, v, args, nargs, out);
    if (!strcmp(n, "ge") || !strcmp(n, ">="))
        return test_cmp(c, 3, v, args, nargs, out);
    return jinja_fail(c, JINJA_ERENDER, "unknown test '%s'", n);
}
