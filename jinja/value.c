/*
 * jinja/value.c — the arena, the value type (None, bool, int, float, str, list, ordered dict,
 * callables) and its Python spellings: str(), repr(), json.dumps() and float repr.
 *
 * Values follow Python: True == 1, 1 == 1.0, str(1.0) is "1.0", repr of a string picks its
 * quotes like Python, dicts keep insertion order. Strings are UTF-8; lengths and indices count
 * code points.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_impl.h"

struct jinja_chunk {
    struct jinja_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

/* Zeroed memory from the arena, 16-byte aligned; NULL past the arena's limit or out of memory.
 * The arena owns it. */
void *jinja_alloc(struct jinja_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (a->limit && a->used + n > a->limit)
        return NULL;
    struct jinja_chunk *ch = a->head;
    if (!ch || ch->size - ch->used < n) {
        size_t size = n > 65536 ? n : 65536;
        ch = malloc(sizeof(*ch) + size);
        if (!ch)
            return NULL;
        ch->size = size;
        ch->used = 0;
        ch->next = a->head;
        a->head = ch;
    }
    void *p = ch->data + ch->used;
    ch->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

/* Frees every chunk of the arena; the arena can be used again. */
void jinja_arena_release(struct jinja_arena *a)
{
    struct jinja_chunk *ch = a->head;
    while (ch) {
        struct jinja_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* A NUL-terminated copy of s[0..n) in the arena, or NULL. */
char *jinja_strndup(struct jinja_arena *a, const char *s, size_t n)
{
    char *p = jinja_alloc(a, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

jv jv_none(void)
{
    jv v = {.t = JV_NONE};
    return v;
}
jv jv_bool(int b)
{
    jv v = {.t = JV_BOOL, .u.b = !!b};
    return v;
}
jv jv_int(int64_t i)
{
    jv v = {.t = JV_INT, .u.i = i};
    return v;
}
jv jv_float(double f)
{
    jv v = {.t = JV_FLOAT, .u.f = f};
    return v;
}
jv jv_undef(const char *name)
{
    jv v = {.t = JV_UNDEF, .u.undef_name = name};
    return v;
}

/* A string value copying s[0..n) into the arena; JV_UNDEF (with no name) when out of memory. */
jv jv_str(struct jinja_arena *a, const char *s, size_t n)
{
    jv v = {.t = JV_UNDEF};
    struct jinja_str *js = jinja_alloc(a, sizeof(*js) + n + 1);
    if (!js)
        return v;
    js->len = n;
    if (n)
        memcpy(js->s, s, n);
    js->s[n] = 0;
    v.t = JV_STR;
    v.u.s = js;
    return v;
}

struct jinja_list *jv_list_new(struct jinja_arena *a, size_t cap)
{
    struct jinja_list *l = jinja_alloc(a, sizeof(*l));
    if (!l)
        return NULL;
    l->cap = cap ? cap : 4;
    l->v = jinja_alloc(a, l->cap * sizeof(jv));
    return l->v ? l : NULL;
}

/* Appends v; the old item array stays in the arena when it grows. */
int jv_list_push(struct jinja_arena *a, struct jinja_list *l, jv v)
{
    if (l->n == l->cap) {
        jv *nv = jinja_alloc(a, l->cap * 2 * sizeof(jv));
        if (!nv)
            return -1;
        memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
    return 0;
}

struct jinja_dict *jv_dict_new(struct jinja_arena *a, size_t cap)
{
    struct jinja_dict *d = jinja_alloc(a, sizeof(*d));
    if (!d)
        return NULL;
    d->cap = cap ? cap : 4;
    d->k = jinja_alloc(a, d->cap * sizeof(jv));
    d->v = jinja_alloc(a, d->cap * sizeof(jv));
    return d->k && d->v ? d : NULL;
}

jv *jv_dict_get(const struct jinja_dict *d, jv k)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], k))
            return &d->v[i];
    return NULL;
}

jv *jv_dict_gets(const struct jinja_dict *d, const char *k)
{
    size_t n = strlen(k);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == n && !memcmp(d->k[i].u.s->s, k, n))
            return &d->v[i];
    return NULL;
}

/* Sets d[k] = v, keeping the first insertion's position (Python's dict). */
int jv_dict_set(struct jinja_arena *a, struct jinja_dict *d, jv k, jv v)
{
    jv *old = jv_dict_get(d, k);
    if (old) {
        *old = v;
        return 0;
    }
    if (d->n == d->cap) {
        jv *nk = jinja_alloc(a, d->cap * 2 * sizeof(jv));
        jv *nv = jinja_alloc(a, d->cap * 2 * sizeof(jv));
        if (!nk || !nv)
            return -1;
        memcpy(nk, d->k, d->n * sizeof(jv));
        memcpy(nv, d->v, d->n * sizeof(jv));
        d->k = nk;
        d->v = nv;
        d->cap *= 2;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return 0;
}

/* The JSON value j (borrowed) as a value in the arena; JV_UNDEF when out of memory. */
jv jv_from_json(struct jinja_arena *a, const json_t *j)
{
    jv bad = {.t = JV_UNDEF};
    switch (json_typeof(j)) {
    case JSON_NULL: return jv_none();
    case JSON_TRUE: return jv_bool(1);
    case JSON_FALSE: return jv_bool(0);
    case JSON_INTEGER: return jv_int(json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_STRING: return jv_str(a, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        struct jinja_list *l = jv_list_new(a, json_array_size(j) + 1);
        if (!l)
            return bad;
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x)
        {
            jv e = jv_from_json(a, x);
            if (e.t == JV_UNDEF || jv_list_push(a, l, e))
                return bad;
        }
        jv v = {.t = JV_LIST, .u.l = l};
        return v;
    }
    case JSON_OBJECT: {
        struct jinja_dict *d = jv_dict_new(a, json_object_size(j) + 1);
        if (!d)
            return bad;
        const char *k;
        size_t klen;
        json_t *x;
        json_object_keylen_foreach((json_t *)j, k, klen, x)
        {
            jv kv = jv_str(a, k, klen), e = jv_from_json(a, x);
            if (kv.t == JV_UNDEF || e.t == JV_UNDEF || jv_dict_set(a, d, kv, e))
                return bad;
        }
        jv v = {.t = JV_DICT, .u.d = d};
        return v;
    }
    }
    return bad;
}

int jv_truthy(jv v)
{
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->ns || v.u.d->n != 0;
    default: return 1;
    }
}

static int is_num(jv v)
{
    return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT;
}
static double num(jv v)
{
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
}

/* Python's ==. */
int jv_equal(jv a, jv b)
{
    if (is_num(a) && is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return num(a) == num(b);
    }
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.u.s->len == b.u.s->len && !memcmp(a.u.s->s, b.u.s->s, a.u.s->len);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n)
            return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i]))
                return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n)
            return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jv_dict_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o))
                return 0;
        }
        return 1;
    case JV_FUNC: return a.u.fn == b.u.fn;
    }
    return 0;
}

/* Python's ordering for numbers, strings (code point order = UTF-8 byte order) and lists:
 * *out < 0, 0 or > 0; returns -1 when the two cannot be ordered. */
int jv_compare(jv a, jv b, int *out)
{
    if (is_num(a) && is_num(b)) {
        double x = num(a), y = num(b);
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t p = a.t == JV_INT ? a.u.i : a.u.b, q = b.t == JV_INT ? b.u.i : b.u.b;
            *out = p < q ? -1 : p > q;
        } else {
            *out = x < y ? -1 : x > y;
        }
        return 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->s, b.u.s->s, n);
        *out = r ? r : (a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len);
        return 0;
    }
    if (a.t == JV_LIST && b.t == JV_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i]))
                continue;
            return jv_compare(a.u.l->v[i], b.u.l->v[i], out);
        }
        *out = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    return -1;
}

const char *jv_type_name(jv v)
{
    static const char *const names[] = {"Undefined", "NoneType", "bool", "int",     "float",
                                        "str",       "list",     "dict", "function"};
    if (v.t == JV_LIST && v.u.l->tuple)
        return "tuple";
    if (v.t == JV_DICT && v.u.d->ns)
        return "Namespace";
    return names[v.t];
}

size_t jinja_utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

size_t jinja_utf8_offset(const char *s, size_t n, size_t cp)
{
    size_t i = 0;
    while (i < n && cp) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cp--;
    }
    return i;
}

int jinja_buf_put(struct jinja_buf *b, const char *s, size_t n)
{
    if (b->max && b->len + n > b->max)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int jinja_buf_putc(struct jinja_buf *b, char c)
{
    return jinja_buf_put(b, &c, 1);
}

static int buf_puts(struct jinja_buf *b, const char *s)
{
    return jinja_buf_put(b, s, strlen(s));
}

/* Python's repr(float): the shortest digits that read back to f, in fixed notation for
 * exponents -4..15, else d.ddde+XX; "1.0" for integral values. */
int jv_write_float(struct jinja_buf *b, double f)
{
    char tmp[64], digits[32];
    if (isnan(f))
        return buf_puts(b, "nan");
    if (isinf(f))
        return buf_puts(b, f < 0 ? "-inf" : "inf");
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: [-]d.ddde[+-]XX */
    const char *p = tmp;
    int neg = *p == '-';
    if (neg)
        p++;
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    digits[nd] = 0;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp >= -5 + 1 && exp < 16) {
        if (exp < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -exp - 1; i++)
                out[o++] = '0';
            for (int i = 0; i < nd; i++)
                out[o++] = digits[i];
        } else {
            for (int i = 0; i <= exp; i++)
                out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > exp + 1)
                for (int i = exp + 1; i < nd; i++)
                    out[o++] = digits[i];
            else
                out[o++] = '0';
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++)
                out[o++] = digits[i];
        }
        snprintf(out + o, sizeof(out) - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    return buf_puts(b, out);
}

/* Python's repr(str): single quotes unless the text holds ' and no ". */
static int write_str_repr(struct jinja_buf *b, const struct jinja_str *s)
{
    char q = memchr(s->s, '\'', s->len) && !memchr(s->s, '"', s->len) ? '"' : '\'';
    if (jinja_buf_putc(b, q))
        return -1;
    for (size_t i = 0; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->s[i];
        char esc[8];
        const char *e = NULL;
        if (ch == '\\')
            e = "\\\\";
        else if (ch == (unsigned char)q)
            e = q == '\'' ? "\\'" : "\\\"";
        else if (ch == '\n')
            e = "\\n";
        else if (ch == '\r')
            e = "\\r";
        else if (ch == '\t')
            e = "\\t";
        else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
            e = esc;
        }
        if (e ? buf_puts(b, e) : jinja_buf_putc(b, (char)ch))
            return -1;
    }
    return jinja_buf_putc(b, q);
}

int jv_write_repr(struct jinja_buf *b, jv v)
{
    if (v.t == JV_STR)
        return write_str_repr(b, v.u.s);
    if (v.t == JV_UNDEF)
        return 0;
    return jv_write_str(b, v);
}

/* Python's str(v). */
int jv_write_str(struct jinja_buf *b, jv v)
{
    char tmp[32];
    switch (v.t) {
    case JV_UNDEF: return 0;
    case JV_NONE: return buf_puts(b, "None");
    case JV_BOOL: return buf_puts(b, v.u.b ? "True" : "False");
    case JV_INT: snprintf(tmp, sizeof(tmp), "%lld", (long long)v.u.i); return buf_puts(b, tmp);
    case JV_FLOAT: return jv_write_float(b, v.u.f);
    case JV_STR: return jinja_buf_put(b, v.u.s->s, v.u.s->len);
    case JV_LIST: {
        const struct jinja_list *l = v.u.l;
        if (jinja_buf_putc(b, l->tuple ? '(' : '['))
            return -1;
        for (size_t i = 0; i < l->n; i++)
            if ((i && buf_puts(b, ", ")) || jv_write_repr(b, l->v[i]))
                return -1;
        if (l->tuple && l->n == 1 && jinja_buf_putc(b, ','))
            return -1;
        return jinja_buf_putc(b, l->tuple ? ')' : ']');
    }
    case JV_DICT: {
        const struct jinja_dict *d = v.u.d;
        if (buf_puts(b, d->ns ? "<Namespace {" : "{"))
            return -1;
        for (size_t i = 0; i < d->n; i++)
            if ((i && buf_puts(b, ", ")) || jv_write_repr(b, d->k[i]) || buf_puts(b, ": ") ||
                jv_write_repr(b, d->v[i]))
                return -1;
        return buf_puts(b, d->ns ? "}>" : "}");
    }
    case JV_FUNC: snprintf(tmp, sizeof(tmp), "<function>"); return buf_puts(b, tmp);
    }
    return 0;
}

static int write_json_str(struct jinja_buf *b, const char *s, size_t n)
{
    if (jinja_buf_putc(b, '"'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        const char *e = NULL;
        switch (ch) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            if (ch < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", ch);
                e = esc;
            }
        }
        if (e ? buf_puts(b, e) : jinja_buf_putc(b, (char)ch))
            return -1;
    }
    return jinja_buf_putc(b, '"');
}

static int json_newline(struct jinja_buf *b, int indent, int level)
{
    if (jinja_buf_putc(b, '\n'))
        return -1;
    for (int i = 0; i < indent * level; i++)
        if (jinja_buf_putc(b, ' '))
            return -1;
    return 0;
}

static int cmp_keys(const void *x, const void *y)
{
    const jv *a = *(const jv *const *)x, *b = *(const jv *const *)y;
    int r = 0;
    jv_compare(*a, *b, &r);
    return r;
}

/* json.dumps as transformers' tojson calls it (ensure_ascii=False). */
int jv_write_json(struct jinja_buf *b, jv v, int indent, const char *item_sep, const char *key_sep,
                  int sort_keys, int level, const char **why)
{
    switch (v.t) {
    case JV_NONE: return buf_puts(b, "null");
    case JV_BOOL: return buf_puts(b, v.u.b ? "true" : "false");
    case JV_INT:
    case JV_FUNC:
    case JV_UNDEF:
        if (v.t == JV_INT)
            return jv_write_str(b, v);
        *why = v.t == JV_UNDEF ? "Object of type Undefined is not JSON serializable"
                               : "Object of type function is not JSON serializable";
        return -1;
    case JV_FLOAT:
        if (isnan(v.u.f))
            return buf_puts(b, "NaN");
        if (isinf(v.u.f))
            return buf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        return jv_write_float(b, v.u.f);
    case JV_STR: return write_json_str(b, v.u.s->s, v.u.s->len);
    case JV_LIST: {
        const struct jinja_list *l = v.u.l;
        if (!l->n)
            return buf_puts(b, "[]");
        if (jinja_buf_putc(b, '['))
            return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (i && buf_puts(b, item_sep))
                return -1;
            if (indent >= 0 && json_newline(b, indent, level + 1))
                return -1;
            if (jv_write_json(b, l->v[i], indent, item_sep, key_sep, sort_keys, level + 1, why))
                return -1;
        }
        if (indent >= 0 && json_newline(b, indent, level))
            return -1;
        return jinja_buf_putc(b, ']');
    }
    case JV_DICT: {
        const struct jinja_dict *d = v.u.d;
        if (!d->n)
            return buf_puts(b, "{}");
        const jv **order = malloc(d->n * sizeof(*order));
        if (!order)
            return -1;
        for (size_t i = 0; i < d->n; i++)
            order[i] = &d->k[i];
        if (sort_keys)
            qsort(order, d->n, sizeof(*order), cmp_keys);
        int rc = jinja_buf_putc(b, '{');
        for (size_t i = 0; !rc && i < d->n; i++) {
            size_t k = (size_t)(order[i] - d->k);
            if (i && buf_puts(b, item_sep))
                rc = -1;
            else if (indent >= 0 && json_newline(b, indent, level + 1))
                rc = -1;
            else if (d->k[k].t == JV_STR)
                rc = write_json_str(b, d->k[k].u.s->s, d->k[k].u.s->len);
            else {
                /* json.dumps turns int, float, bool and None keys into strings */
                struct jinja_buf t = {0};
                rc = jv_write_json(&t, d->k[k], -1, ",", ":", 0, 0, why);
                if (!rc && d->k[k].t != JV_INT && d->k[k].t != JV_FLOAT && d->k[k].t != JV_BOOL &&
                    d->k[k].t != JV_NONE) {
                    *why = "keys must be str, int, float, bool or None";
                    rc = -1;
                }
                if (!rc)
                    rc = write_json_str(b, t.p, t.len);
                free(t.p);
            }
            if (!rc && buf_puts(b, key_sep))
                rc = -1;
            if (!rc)
                rc =
                    jv_write_json(b, d->v[k], indent, item_sep, key_sep, sort_keys, level + 1, why);
        }
        free(order);
        if (rc)
            return -1;
        if (indent >= 0 && json_newline(b, indent, level))
            return -1;
        return jinja_buf_putc(b, '}');
    }
    }
    return -1;
}

/* str(v) as a string value in the rendering's arena (an error is recorded when out of memory). */
jv jv_to_str(struct jinja_ctx *c, jv v)
{
    if (v.t == JV_STR)
        return v;
    struct jinja_buf b = {0};
    jv r = {.t = JV_UNDEF};
    if (jv_write_str(&b, v) == 0)
        r = jv_str(&c->arena, b.p ? b.p : "", b.len);
    free(b.p);
    if (r.t == JV_UNDEF)
        jinja_fail(c, JINJA_ELIMIT, "out of memory converting a value to a string");
    return r;
}
