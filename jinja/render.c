/*
 * jinja/render.c — evaluates a parsed template: expressions, statements, scopes, macros.
 *
 * Scoping follows Jinja2: a for loop's body and a macro get their own frame, so `set` inside
 * them does not leak out (namespace() objects are how templates carry state out of a loop);
 * `if` shares its frame. Undefined follows Jinja2's default Undefined: it prints as nothing, is
 * falsy, iterates as empty and passes `is defined` checks; reading an attribute of it, calling
 * it or doing arithmetic with it is an error. Every value lives in the rendering's arena.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_impl.h"

#define MAX_STEPS 20000000ull
#define MAX_CALL_DEPTH 64

int jinja_fail(struct jinja_ctx *c, int status, const char *fmt, ...)
{
    if (c->status)
        return c->status;
    int o = status == JINJA_ERAISE ? 0 : snprintf(c->err, JINJA_ERR_LEN, "line %d: ", c->line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + o, JINJA_ERR_LEN - (size_t)o, fmt, ap);
    va_end(ap);
    c->status = status;
    return status;
}

static int oom(struct jinja_ctx *c)
{
    return jinja_fail(c, JINJA_ELIMIT, "out of memory (rendering limit %zu bytes)", c->arena.limit);
}

static int undefined_error(struct jinja_ctx *c, jv v)
{
    if (v.u.undef_name)
        return jinja_fail(c, JINJA_ERENDER, "'%s' is undefined", v.u.undef_name);
    return jinja_fail(c, JINJA_ERENDER, "undefined value used");
}

static jv *lookup(struct jinja_frame *f, const char *name)
{
    for (; f; f = f->parent) {
        jv *v = jv_dict_gets(f->vars, name);
        if (v)
            return v;
    }
    return NULL;
}

static int frame_set(struct jinja_ctx *c, struct jinja_frame *f, const char *name, jv v)
{
    jv k = jv_str(&c->arena, name, strlen(name));
    if (k.t == JV_UNDEF || jv_dict_set(&c->arena, f->vars, k, v))
        return oom(c);
    return 0;
}

static struct jinja_frame *frame_new(struct jinja_ctx *c, struct jinja_frame *parent)
{
    struct jinja_frame *f = jinja_alloc(&c->arena, sizeof(*f));
    if (!f || !(f->vars = jv_dict_new(&c->arena, 8))) {
        oom(c);
        return NULL;
    }
    f->parent = parent;
    return f;
}

static const char *const GLOBALS[] = {"namespace",       "dict",         "range",
                                      "raise_exception", "strftime_now", NULL};

static jv make_func(struct jinja_ctx *c, int kind, const char *name)
{
    jv v = {.t = JV_UNDEF};
    struct jinja_func *fn = jinja_alloc(&c->arena, sizeof(*fn));
    if (!fn) {
        oom(c);
        return v;
    }
    fn->kind = kind;
    fn->name = name;
    v.t = JV_FUNC;
    v.u.fn = fn;
    return v;
}

/* obj.name: a dict's methods first (as Jinja2's getattr), then its key; a string's methods. */
int jinja_getattr(struct jinja_ctx *c, jv obj, const char *name, jv *out)
{
    if (obj.t == JV_UNDEF)
        return undefined_error(c, obj);
    if (jinja_has_method(obj, name)) {
        jv f = make_func(c, JF_METHOD, name);
        if (f.t == JV_UNDEF)
            return c->status;
        f.u.fn->self = obj;
        *out = f;
        return 0;
    }
    if (obj.t == JV_DICT) {
        jv *v = jv_dict_gets(obj.u.d, name);
        *out = v ? *v : jv_undef(name);
        return 0;
    }
    *out = jv_undef(name);
    return 0;
}

/* obj[key]: a dict's key, then its attribute; a list's or string's index (negative counts from
 * the end); past the end is undefined. */
static int getitem(struct jinja_ctx *c, jv obj, jv key, jv *out)
{
    if (obj.t == JV_UNDEF)
        return undefined_error(c, obj);
    if (obj.t == JV_DICT) {
        jv *v = jv_dict_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
        if (key.t == JV_STR)
            return jinja_getattr(c, obj, key.u.s->s, out);
        *out = jv_undef(NULL);
        return 0;
    }
    if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_INT ? key.u.i : key.u.b;
        size_t n = obj.t == JV_LIST ? obj.u.l->n : jinja_utf8_len(obj.u.s->s, obj.u.s->len);
        if (i < 0)
            i += (int64_t)n;
        if (i < 0 || (size_t)i >= n) {
            *out = jv_undef(NULL);
            return 0;
        }
        if (obj.t == JV_LIST) {
            *out = obj.u.l->v[i];
            return 0;
        }
        size_t a = jinja_utf8_offset(obj.u.s->s, obj.u.s->len, (size_t)i);
        size_t b = jinja_utf8_offset(obj.u.s->s, obj.u.s->len, (size_t)i + 1);
        *out = jv_str(&c->arena, obj.u.s->s + a, b - a);
        return out->t == JV_UNDEF ? oom(c) : 0;
    }
    if (key.t == JV_STR)
        return jinja_getattr(c, obj, key.u.s->s, out);
    *out = jv_undef(NULL);
    return 0;
}

static int get_int(struct jinja_ctx *c, jv v, int64_t *out, const char *what)
{
    if (v.t == JV_INT || v.t == JV_BOOL) {
        *out = v.t == JV_INT ? v.u.i : v.u.b;
        return 0;
    }
    return jinja_fail(c, JINJA_ERENDER, "%s must be an integer, not %s", what, jv_type_name(v));
}

/* Python's slice semantics on lists and strings (code points). */
static int slice(struct jinja_ctx *c, jv obj, jv *bounds, jv *out)
{
    int64_t step = 1;
    if (bounds[2].t != JV_UNDEF && bounds[2].t != JV_NONE &&
        get_int(c, bounds[2], &step, "slice step"))
        return c->status;
    if (step == 0)
        return jinja_fail(c, JINJA_ERENDER, "slice step cannot be zero");
    if (obj.t == JV_UNDEF)
        return undefined_error(c, obj);
    if (obj.t != JV_LIST && obj.t != JV_STR)
        return jinja_fail(c, JINJA_ERENDER, "'%s' object is not subscriptable", jv_type_name(obj));
    int64_t n =
        obj.t == JV_LIST ? (int64_t)obj.u.l->n : (int64_t)jinja_utf8_len(obj.u.s->s, obj.u.s->len);
    int64_t lo, hi;
    for (int k = 0; k < 2; k++) {
        int64_t *dst = k ? &hi : &lo, x = 0;
        if (bounds[k].t == JV_UNDEF || bounds[k].t == JV_NONE) {
            *dst = k == 0 ? (step > 0 ? 0 : n - 1) : (step > 0 ? n : -1);
            continue;
        }
        if (get_int(c, bounds[k], &x, "slice index"))
            return c->status;
        if (x < 0)
            x += n;
        if (step > 0)
            x = x < 0 ? 0 : x > n ? n : x;
        else
            x = x < -1 ? -1 : x > n - 1 ? n - 1 : x;
        *dst = x;
    }
    /* the selected indices */
    struct jinja_list *l = jv_list_new(&c->arena, 8);
    if (!l)
        return oom(c);
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
        jv item;
        if (getitem(c, obj, jv_int(i), &item) || jv_list_push(&c->arena, l, item))
            return c->status ? c->status : oom(c);
    }
    if (obj.t == JV_LIST) {
        out->t = JV_LIST;
        out->u.l = l;
        return 0;
    }
    struct jinja_buf b = {0};
    for (size_t i = 0; i < l->n; i++)
        if (jinja_buf_put(&b, l->v[i].u.s->s, l->v[i].u.s->len)) {
            free(b.p);
            return oom(c);
        }
    *out = jv_str(&c->arena, b.p ? b.p : "", b.len);
    free(b.p);
    return out->t == JV_UNDEF ? oom(c) : 0;
}

static int eval(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n, jv *out);
static int exec_body(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n,
                     struct jinja_buf *b);

/* Evaluates a call's positional and keyword arguments into arena arrays. */
static int eval_args(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n,
                     jv **args, jv **kwv)
{
    *args = jinja_alloc(&c->arena, (n->nkids + 1) * sizeof(jv));
    *kwv = jinja_alloc(&c->arena, (n->nkw + 1) * sizeof(jv));
    if (!*args || !*kwv)
        return oom(c);
    for (size_t i = 0; i < n->nkids; i++)
        if (eval(c, f, n->kids[i], &(*args)[i]))
            return c->status;
    for (size_t i = 0; i < n->nkw; i++)
        if (eval(c, f, n->kwvals[i], &(*kwv)[i]))
            return c->status;
    return 0;
}

/* Renders a macro (or a call block's body, for caller()) into a string value. */
static int call_macro(struct jinja_ctx *c, const struct jinja_func *fn, jv *args, size_t nargs,
                      const char **kwn, jv *kwv, size_t nkw, jv caller, jv *out)
{
    const struct jinja_node *m = fn->node;
    if (c->depth >= MAX_CALL_DEPTH)
        return jinja_fail(c, JINJA_ELIMIT, "macro calls nested deeper than %d", MAX_CALL_DEPTH);
    if (nargs > m->nkw)
        return jinja_fail(c, JINJA_ERENDER, "macro '%s' takes %zu arguments, %zu given",
                          fn->name ? fn->name : "caller", m->nkw, nargs);
    struct jinja_frame *mf = frame_new(c, fn->frame);
    if (!mf)
        return c->status;
    for (size_t i = 0; i < m->nkw; i++) {
        jv v = jv_undef(m->kwnames[i]);
        int set = 0;
        if (i < nargs) {
            v = args[i];
            set = 1;
        }
        for (size_t k = 0; k < nkw; k++)
            if (!strcmp(kwn[k], m->kwnames[i])) {
                if (set)
                    return jinja_fail(c, JINJA_ERENDER, "macro got multiple values for '%s'",
                                      kwn[k]);
                v = kwv[k];
                set = 1;
            }
        if (!set && m->kwvals[i] && eval(c, mf, m->kwvals[i], &v))
            return c->status;
        if (frame_set(c, mf, m->kwnames[i], v))
            return c->status;
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i;
        for (i = 0; i < m->nkw && strcmp(kwn[k], m->kwnames[i]); i++)
            ;
        if (i == m->nkw)
            return jinja_fail(c, JINJA_ERENDER, "macro '%s' has no parameter '%s'",
                              fn->name ? fn->name : "caller", kwn[k]);
    }
    if (caller.t == JV_FUNC && frame_set(c, mf, "caller", caller))
        return c->status;
    struct jinja_buf b = {.max = c->opts->max_output};
    c->depth++;
    int rc = exec_body(c, mf, m->b, &b);
    c->depth--;
    if (!rc) {
        *out = jv_str(&c->arena, b.p ? b.p : "", b.len);
        if (out->t == JV_UNDEF)
            rc = oom(c);
    }
    free(b.p);
    return rc;
}

int jinja_call_value(struct jinja_ctx *c, jv fn, jv *args, size_t nargs, const char **kwn, jv *kwv,
                     size_t nkw, jv *out)
{
    if (++c->steps > MAX_STEPS)
        return jinja_fail(c, JINJA_ELIMIT, "template ran more than %llu steps", MAX_STEPS);
    if (fn.t == JV_UNDEF)
        return undefined_error(c, fn);
    if (fn.t != JV_FUNC)
        return jinja_fail(c, JINJA_ERENDER, "'%s' object is not callable", jv_type_name(fn));
    const struct jinja_func *f = fn.u.fn;
    switch (f->kind) {
    case JF_MACRO:
    case JF_CALLER: return call_macro(c, f, args, nargs, kwn, kwv, nkw, jv_undef(NULL), out);
    case JF_METHOD: return jinja_method(c, f->self, f->name, args, nargs, kwn, kwv, nkw, out);
    case JF_GLOBAL: return jinja_global(c, f->name, args, nargs, kwn, kwv, nkw, out);
    case JF_CYCLE:
        if (!nargs)
            return jinja_fail(c, JINJA_ERENDER, "loop.cycle() needs at least one argument");
        *out = args[f->self.u.i % (int64_t)nargs];
        return 0;
    }
    return jinja_fail(c, JINJA_ERENDER, "not callable");
}

static int is_numv(jv v)
{
    return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
}
static double fnum(jv v)
{
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
}
static int64_t inum(jv v)
{
    return v.t == JV_INT ? v.u.i : v.u.b;
}

static const char *op_name(int op)
{
    static const char *const names[] = {"",   "+",  "-", "*",  "/", "//", "%",  "**",    "~",
                                        "==", "!=", "<", "<=", ">", ">=", "in", "not in"};
    return names[op];
}

static int type_error(struct jinja_ctx *c, int op, jv a, jv b)
{
    return jinja_fail(c, JINJA_ERENDER, "unsupported operand type(s) for %s: '%s' and '%s'",
                      op_name(op), jv_type_name(a), jv_type_name(b));
}

static int repeat(struct jinja_ctx *c, jv seq, int64_t times, jv *out)
{
    if (times < 0)
        times = 0;
    if (seq.t == JV_STR) {
        if (seq.u.s->len && (uint64_t)times > c->opts->max_output / seq.u.s->len)
            return jinja_fail(c, JINJA_ELIMIT, "string repetition too large");
        struct jinja_str *s = jinja_alloc(&c->arena, sizeof(*s) + seq.u.s->len * (size_t)times + 1);
        if (!s)
            return oom(c);
        for (int64_t i = 0; i < times; i++)
            memcpy(s->s + (size_t)i * seq.u.s->len, seq.u.s->s, seq.u.s->len);
        s->len = seq.u.s->len * (size_t)times;
        out->t = JV_STR;
        out->u.s = s;
        return 0;
    }
    if ((uint64_t)times * (seq.u.l->n + 1) > 1000000)
        return jinja_fail(c, JINJA_ELIMIT, "list repetition too large");
    struct jinja_list *l = jv_list_new(&c->arena, seq.u.l->n * (size_t)times + 1);
    if (!l)
        return oom(c);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.u.l->n; k++)
            if (jv_list_push(&c->arena, l, seq.u.l->v[k]))
                return oom(c);
    out->t = JV_LIST;
    out->u.l = l;
    return 0;
}

static int concat_seq(struct jinja_ctx *c, jv a, jv b, jv *out)
{
    if (a.t == JV_STR) {
        struct jinja_str *s = jinja_alloc(&c->arena, sizeof(*s) + a.u.s->len + b.u.s->len + 1);
        if (!s)
            return oom(c);
        memcpy(s->s, a.u.s->s, a.u.s->len);
        memcpy(s->s + a.u.s->len, b.u.s->s, b.u.s->len);
        s->len = a.u.s->len + b.u.s->len;
        out->t = JV_STR;
        out->u.s = s;
        return 0;
    }
    struct jinja_list *l = jv_list_new(&c->arena, a.u.l->n + b.u.l->n + 1);
    if (!l)
        return oom(c);
    for (size_t i = 0; i < a.u.l->n; i++)
        jv_list_push(&c->arena, l, a.u.l->v[i]);
    for (size_t i = 0; i < b.u.l->n; i++)
        jv_list_push(&c->arena, l, b.u.l->v[i]);
    out->t = JV_LIST;
    out->u.l = l;
    return 0;
}

/* Python's arithmetic on two values. */
static int arith(struct jinja_ctx *c, int op, jv a, jv b, jv *out)
{
    if (op == JO_CONCAT) {
        jv x = jv_to_str(c, a), y = jv_to_str(c, b);
        if (x.t == JV_UNDEF || y.t == JV_UNDEF)
            return c->status ? c->status : oom(c);
        return concat_seq(c, x, y, out);
    }
    if (a.t == JV_UNDEF)
        return undefined_error(c, a);
    if (b.t == JV_UNDEF)
        return undefined_error(c, b);
    if (op == JO_ADD && a.t == b.t && (a.t == JV_STR || a.t == JV_LIST))
        return concat_seq(c, a, b, out);
    if (op == JO_MUL && (a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
        return repeat(c, a, inum(b), out);
    if (op == JO_MUL && (b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
        return repeat(c, b, inum(a), out);
    if (!is_numv(a) || !is_numv(b))
        return type_error(c, op, a, b);
    int ints = a.t != JV_FLOAT && b.t != JV_FLOAT;
    if (ints) {
        int64_t x = inum(a), y = inum(b), r;
        switch (op) {
        case JO_ADD:
            if (__builtin_add_overflow(x, y, &r))
                goto overflow;
            *out = jv_int(r);
            return 0;
        case JO_SUB:
            if (__builtin_sub_overflow(x, y, &r))
                goto overflow;
            *out = jv_int(r);
            return 0;
        case JO_MUL:
            if (__builtin_mul_overflow(x, y, &r))
                goto overflow;
            *out = jv_int(r);
            return 0;
        case JO_FLOORDIV:
        case JO_MOD:
            if (y == 0)
                return jinja_fail(c, JINJA_ERENDER, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1)
                goto overflow;
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0)))
                r--;
            *out = jv_int(op == JO_FLOORDIV ? r : x - r * y);
            return 0;
        case JO_POW:
            if (y >= 0) {
                int64_t acc = 1;
                for (int64_t i = 0; i < y; i++) {
                    if (__builtin_mul_overflow(acc, x, &acc))
                        goto overflow;
                    if (acc == 0 || acc == 1)
                        break;
                }
                *out = jv_int(acc);
                return 0;
            }
            break;
        }
    }
    double x = fnum(a), y = fnum(b);
    switch (op) {
    case JO_ADD: *out = jv_float(x + y); return 0;
    case JO_SUB: *out = jv_float(x - y); return 0;
    case JO_MUL: *out = jv_float(x * y); return 0;
    case JO_DIV:
        if (y == 0)
            return jinja_fail(c, JINJA_ERENDER, "division by zero");
        *out = jv_float(x / y);
        return 0;
    case JO_FLOORDIV:
    case JO_MOD: {
        if (y == 0)
            return jinja_fail(c, JINJA_ERENDER, "float division or modulo by zero");
        double m = fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0)))
            m += y;
        *out = jv_float(op == JO_MOD ? m : floor(x / y));
        return 0;
    }
    case JO_POW: *out = jv_float(pow(x, y)); return 0;
    }
    return type_error(c, op, a, b);
overflow:
    return jinja_fail(c, JINJA_ERENDER, "integer overflow in '%s' (64-bit integers only)",
                      op_name(op));
}

static int contains(struct jinja_ctx *c, jv item, jv cont, int *out)
{
    switch (cont.t) {
    case JV_UNDEF: *out = 0; return 0;
    case JV_STR:
        if (item.t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER,
                              "'in <string>' requires string as left operand, not %s",
                              jv_type_name(item));
        *out = item.u.s->len == 0 ||
               memmem(cont.u.s->s, cont.u.s->len, item.u.s->s, item.u.s->len) != NULL;
        return 0;
    case JV_LIST:
        *out = 0;
        for (size_t i = 0; i < cont.u.l->n && !*out; i++)
            *out = jv_equal(item, cont.u.l->v[i]);
        return 0;
    case JV_DICT: *out = jv_dict_get(cont.u.d, item) != NULL; return 0;
    default:
        return jinja_fail(c, JINJA_ERENDER, "argument of type '%s' is not iterable",
                          jv_type_name(cont));
    }
}

static int compare(struct jinja_ctx *c, int op, jv a, jv b, int *out)
{
    int r;
    switch (op) {
    case JO_EQ: *out = jv_equal(a, b); return 0;
    case JO_NE: *out = !jv_equal(a, b); return 0;
    case JO_IN: return contains(c, a, b, out);
    case JO_NOTIN:
        if (contains(c, a, b, out))
            return c->status;
        *out = !*out;
        return 0;
    }
    if (jv_compare(a, b, &r))
        return jinja_fail(c, JINJA_ERENDER, "'%s' not supported between instances of '%s' and '%s'",
                          op_name(op), jv_type_name(a), jv_type_name(b));
    *out = op == JO_LT ? r < 0 : op == JO_LE ? r <= 0 : op == JO_GT ? r > 0 : r >= 0;
    return 0;
}

static int eval_call(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n,
                     jv caller, jv *out)
{
    jv *args, *kwv, fn;
    const struct jinja_node *callee = n->a;
    if (callee->kind == JN_ATTR) {
        jv obj;
        if (eval(c, f, callee->a, &obj))
            return c->status;
        if (obj.t == JV_UNDEF)
            return undefined_error(c, obj);
        if (jinja_has_method(obj, callee->name)) {
            if (eval_args(c, f, n, &args, &kwv))
                return c->status;
            if (++c->steps > MAX_STEPS)
                return jinja_fail(c, JINJA_ELIMIT, "template ran more than %llu steps", MAX_STEPS);
            return jinja_method(c, obj, callee->name, args, n->nkids, n->kwnames, kwv, n->nkw, out);
        }
        if (jinja_getattr(c, obj, callee->name, &fn))
            return c->status;
    } else if (eval(c, f, callee, &fn)) {
        return c->status;
    }
    if (eval_args(c, f, n, &args, &kwv))
        return c->status;
    if (caller.t == JV_FUNC) {
        if (fn.t != JV_FUNC || fn.u.fn->kind != JF_MACRO)
            return jinja_fail(c, JINJA_ERENDER, "{%% call %%} needs a macro");
        if (++c->steps > MAX_STEPS)
            return jinja_fail(c, JINJA_ELIMIT, "template ran more than %llu steps", MAX_STEPS);
        return call_macro(c, fn.u.fn, args, n->nkids, n->kwnames, kwv, n->nkw, caller, out);
    }
    return jinja_call_value(c, fn, args, n->nkids, n->kwnames, kwv, n->nkw, out);
}

static int eval(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n, jv *out)
{
    jv a, b;
    int r;
    switch (n->kind) {
    case JN_LIT: *out = n->op ? c->hole : n->val; return 0;
    case JN_NAME: {
        jv *v = lookup(f, n->name);
        if (v) {
            *out = *v;
            return 0;
        }
        for (int i = 0; GLOBALS[i]; i++)
            if (!strcmp(GLOBALS[i], n->name)) {
                *out = make_func(c, JF_GLOBAL, GLOBALS[i]);
                return c->status;
            }
        *out = jv_undef(n->name);
        return 0;
    }
    case JN_ATTR:
        if (eval(c, f, n->a, &a))
            return c->status;
        return jinja_getattr(c, a, n->name, out);
    case JN_ITEM:
        if (eval(c, f, n->a, &a) || eval(c, f, n->b, &b))
            return c->status;
        return getitem(c, a, b, out);
    case JN_SLICE: {
        jv bounds[3] = {jv_undef(NULL), jv_undef(NULL), jv_undef(NULL)};
        if (eval(c, f, n->a, &a) || (n->b && eval(c, f, n->b, &bounds[0])) ||
            (n->c && eval(c, f, n->c, &bounds[1])) || (n->d && eval(c, f, n->d, &bounds[2])))
            return c->status;
        return slice(c, a, bounds, out);
    }
    case JN_CALL: return eval_call(c, f, n, jv_undef(NULL), out);
    case JN_FILTER: {
        jv *args, *kwv;
        if (eval(c, f, n->a, &a) || eval_args(c, f, n, &args, &kwv))
            return c->status;
        return jinja_filter(c, n->name, a, args, n->nkids, n->kwnames, kwv, n->nkw, out);
    }
    case JN_TEST: {
        jv *args, *kwv;
        if (eval(c, f, n->a, &a) || eval_args(c, f, n, &args, &kwv))
            return c->status;
        if (jinja_test(c, n->name, a, args, n->nkids, &r))
            return c->status;
        *out = jv_bool(n->op ? !r : r);
        return 0;
    }
    case JN_NEG:
    case JN_POS:
        if (eval(c, f, n->a, &a))
            return c->status;
        if (a.t == JV_UNDEF)
            return undefined_error(c, a);
        if (!is_numv(a))
            return jinja_fail(c, JINJA_ERENDER, "bad operand type for unary %s: '%s'",
                              n->kind == JN_NEG ? "-" : "+", jv_type_name(a));
        if (n->kind == JN_POS)
            *out = a.t == JV_BOOL ? jv_int(a.u.b) : a;
        else if (a.t == JV_FLOAT)
            *out = jv_float(-a.u.f);
        else if (inum(a) == INT64_MIN)
            return jinja_fail(c, JINJA_ERENDER, "integer overflow in unary '-'");
        else
            *out = jv_int(-inum(a));
        return 0;
    case JN_NOT:
        if (eval(c, f, n->a, &a))
            return c->status;
        *out = jv_bool(!jv_truthy(a));
        return 0;
    case JN_AND:
    case JN_OR:
        if (eval(c, f, n->a, &a))
            return c->status;
        if (jv_truthy(a) == (n->kind == JN_OR)) {
            *out = a;
            return 0;
        }
        return eval(c, f, n->b, out);
    case JN_BIN:
        if (eval(c, f, n->a, &a) || eval(c, f, n->b, &b))
            return c->status;
        return arith(c, n->op, a, b, out);
    case JN_CMP:
        if (eval(c, f, n->kids[0], &a))
            return c->status;
        for (size_t i = 1; i < n->nkids; i++) {
            if (eval(c, f, n->kids[i], &b) || compare(c, n->cmpops[i - 1], a, b, &r))
                return c->status;
            if (!r) {
                *out = jv_bool(0);
                return 0;
            }
            a = b;
        }
        *out = jv_bool(1);
        return 0;
    case JN_COND:
        if (eval(c, f, n->a, &a))
            return c->status;
        if (jv_truthy(a))
            return eval(c, f, n->b, out);
        if (n->c)
            return eval(c, f, n->c, out);
        *out = jv_undef(NULL);
        return 0;
    case JN_LIST: {
        struct jinja_list *l = jv_list_new(&c->arena, n->nkids + 1);
        if (!l)
            return oom(c);
        l->tuple = n->op;
        for (size_t i = 0; i < n->nkids; i++)
            if (eval(c, f, n->kids[i], &a) || jv_list_push(&c->arena, l, a))
                return c->status ? c->status : oom(c);
        out->t = JV_LIST;
        out->u.l = l;
        return 0;
    }
    case JN_DICT: {
        struct jinja_dict *d = jv_dict_new(&c->arena, n->nkids + 1);
        if (!d)
            return oom(c);
        for (size_t i = 0; i < n->nkids; i++)
            if (eval(c, f, n->kids[i], &a) || eval(c, f, n->kwvals[i], &b) ||
                jv_dict_set(&c->arena, d, a, b))
                return c->status ? c->status : oom(c);
        out->t = JV_DICT;
        out->u.d = d;
        return 0;
    }
    }
    return jinja_fail(c, JINJA_ERENDER, "bad expression node %d", n->kind);
}

/* The items a for loop walks: a list's items, a dict's keys, a string's characters. */
static int iter_items(struct jinja_ctx *c, jv v, struct jinja_list **out)
{
    static struct jinja_list empty;
    switch (v.t) {
    case JV_UNDEF: *out = &empty; return 0;
    case JV_LIST: *out = v.u.l; return 0;
    case JV_DICT: {
        struct jinja_list *l = jv_list_new(&c->arena, v.u.d->n + 1);
        if (!l)
            return oom(c);
        for (size_t i = 0; i < v.u.d->n; i++)
            jv_list_push(&c->arena, l, v.u.d->k[i]);
        *out = l;
        return 0;
    }
    case JV_STR: {
        size_t n = jinja_utf8_len(v.u.s->s, v.u.s->len);
        struct jinja_list *l = jv_list_new(&c->arena, n + 1);
        if (!l)
            return oom(c);
        for (size_t i = 0; i < n; i++) {
            jv ch;
            if (getitem(c, v, jv_int((int64_t)i), &ch) || jv_list_push(&c->arena, l, ch))
                return c->status ? c->status : oom(c);
        }
        *out = l;
        return 0;
    }
    default: return jinja_fail(c, JINJA_ERENDER, "'%s' object is not iterable", jv_type_name(v));
    }
}

static int assign_targets(struct jinja_ctx *c, struct jinja_frame *f, const char **names, size_t n,
                          jv v)
{
    if (n == 1)
        return frame_set(c, f, names[0], v);
    if (v.t != JV_LIST || v.u.l->n != n)
        return jinja_fail(c, JINJA_ERENDER, "cannot unpack %s into %zu names", jv_type_name(v), n);
    for (size_t i = 0; i < n; i++)
        if (frame_set(c, f, names[i], v.u.l->v[i]))
            return c->status;
    return 0;
}

static int set_loop(struct jinja_ctx *c, struct jinja_frame *lf, struct jinja_list *items, size_t i)
{
    struct jinja_dict *d = jv_dict_new(&c->arena, 16);
    jv cyc = make_func(c, JF_CYCLE, "cycle");
    if (!d || cyc.t == JV_UNDEF)
        return oom(c);
    cyc.u.fn->self = jv_int((int64_t)i);
    int64_t n = (int64_t)items->n, k = (int64_t)i;
    struct {
        const char *name;
        jv v;
    } kv[] = {
        {"index", jv_int(k + 1)},
        {"index0", jv_int(k)},
        {"revindex", jv_int(n - k)},
        {"revindex0", jv_int(n - k - 1)},
        {"first", jv_bool(k == 0)},
        {"last", jv_bool(k == n - 1)},
        {"length", jv_int(n)},
        {"depth", jv_int(1)},
        {"depth0", jv_int(0)},
        {"previtem", k > 0 ? items->v[k - 1] : jv_undef("previtem")},
        {"nextitem", k + 1 < n ? items->v[k + 1] : jv_undef("nextitem")},
        {"cycle", cyc},
    };
    for (size_t j = 0; j < sizeof(kv) / sizeof(kv[0]); j++) {
        jv key = jv_str(&c->arena, kv[j].name, strlen(kv[j].name));
        if (key.t == JV_UNDEF || jv_dict_set(&c->arena, d, key, kv[j].v))
            return oom(c);
    }
    jv loop = {.t = JV_DICT, .u.d = d};
    return frame_set(c, lf, "loop", loop);
}

static int exec_for(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n,
                    struct jinja_buf *b)
{
    jv seq;
    struct jinja_list *items = NULL;
    if (eval(c, f, n->a, &seq) || iter_items(c, seq, &items))
        return c->status;
    struct jinja_frame *lf = frame_new(c, f);
    if (!lf)
        return c->status;
    if (n->d) {
        /* `for x in xs if cond`: filter first; loop.length counts what is left */
        struct jinja_list *kept = jv_list_new(&c->arena, items->n + 1);
        if (!kept)
            return oom(c);
        for (size_t i = 0; i < items->n; i++) {
            jv ok;
            if (assign_targets(c, lf, n->kwnames, n->nkw, items->v[i]) || eval(c, lf, n->d, &ok))
                return c->status;
            if (jv_truthy(ok))
                jv_list_push(&c->arena, kept, items->v[i]);
        }
        items = kept;
    }
    for (size_t i = 0; i < items->n; i++) {
        if (++c->steps > MAX_STEPS)
            return jinja_fail(c, JINJA_ELIMIT, "template ran more than %llu steps", MAX_STEPS);
        if (assign_targets(c, lf, n->kwnames, n->nkw, items->v[i]) || set_loop(c, lf, items, i) ||
            exec_body(c, lf, n->b, b))
            return c->status;
        int ctl = c->loopctl;
        c->loopctl = 0;
        if (ctl == 1)
            break;
    }
    if (!items->n && n->c)
        return exec_body(c, f, n->c, b);
    return 0;
}

static int exec_stmt(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n,
                     struct jinja_buf *b)
{
    jv v;
    c->line = n->line;
    switch (n->kind) {
    case JN_TEXT:
        return jinja_buf_put(b, n->val.u.s->s, n->val.u.s->len)
                   ? jinja_fail(c, JINJA_ELIMIT, "output larger than %zu bytes", b->max)
                   : 0;
    case JN_OUT:
        if (eval(c, f, n->a, &v))
            return c->status;
        if (jv_write_str(b, v))
            return jinja_fail(c, JINJA_ELIMIT, "output larger than %zu bytes", b->max);
        return 0;
    case JN_IF:
        if (eval(c, f, n->a, &v))
            return c->status;
        if (jv_truthy(v))
            return exec_body(c, f, n->b, b);
        return n->c ? exec_body(c, f, n->c, b) : 0;
    case JN_FOR: return exec_for(c, f, n, b);
    case JN_SET:
        if (eval(c, f, n->a, &v))
            return c->status;
        if (n->name2) {
            jv *ns = lookup(f, n->name);
            if (!ns || ns->t != JV_DICT || !ns->u.d->ns)
                return jinja_fail(c, JINJA_ERENDER,
                                  "cannot assign attribute on non-namespace object '%s'", n->name);
            jv k = jv_str(&c->arena, n->name2, strlen(n->name2));
            if (k.t == JV_UNDEF || jv_dict_set(&c->arena, ns->u.d, k, v))
                return oom(c);
            return 0;
        }
        return assign_targets(c, f, n->kwnames, n->nkw, v);
    case JN_SETBLOCK:
    case JN_FILTERBLOCK: {
        struct jinja_buf sb = {.max = c->opts->max_output};
        int rc = exec_body(c, f, n->b, &sb);
        if (!rc) {
            v = jv_str(&c->arena, sb.p ? sb.p : "", sb.len);
            rc = v.t == JV_UNDEF ? oom(c) : 0;
        }
        free(sb.p);
        if (rc)
            return rc;
        if (n->kind == JN_SETBLOCK)
            return frame_set(c, f, n->name, v);
        jv saved = c->hole, res;
        c->hole = v;
        rc = eval(c, f, n->a, &res);
        c->hole = saved;
        if (!rc && jv_write_str(b, res))
            return jinja_fail(c, JINJA_ELIMIT, "output larger than %zu bytes", b->max);
        return rc;
    }
    case JN_MACRO:
        v = make_func(c, JF_MACRO, n->name);
        if (v.t == JV_UNDEF)
            return c->status;
        v.u.fn->node = n;
        v.u.fn->frame = f;
        return frame_set(c, f, n->name, v);
    case JN_CALLBLOCK: {
        jv caller = make_func(c, JF_CALLER, "caller"), res;
        if (caller.t == JV_UNDEF)
            return c->status;
        caller.u.fn->node = n;
        caller.u.fn->frame = f;
        if (eval_call(c, f, n->a, caller, &res))
            return c->status;
        if (jv_write_str(b, res))
            return jinja_fail(c, JINJA_ELIMIT, "output larger than %zu bytes", b->max);
        return 0;
    }
    case JN_BREAK: c->loopctl = 1; return 0;
    case JN_CONTINUE: c->loopctl = 2; return 0;
    case JN_BODY: return exec_body(c, f, n, b);
    }
    return jinja_fail(c, JINJA_ERENDER, "bad statement node %d", n->kind);
}

static int exec_body(struct jinja_ctx *c, struct jinja_frame *f, const struct jinja_node *n,
                     struct jinja_buf *b)
{
    for (size_t i = 0; i < n->nkids; i++) {
        if (exec_stmt(c, f, n->kids[i], b))
            return c->status;
        if (c->loopctl)
            return 0;
    }
    return 0;
}

int jinja_render(const struct jinja_tpl *tpl, const json_t *ctx, const struct jinja_opts *opts,
                 char **out, size_t *out_len, char err[JINJA_ERR_LEN])
{
    struct jinja_opts o = opts ? *opts : (struct jinja_opts){0};
    if (!o.max_output)
        o.max_output = 4u << 20;
    if (!o.max_memory)
        o.max_memory = 256u << 20;
    if (!o.now)
        o.now = time(NULL);
    struct jinja_ctx c = {.opts = &o, .err = err, .line = 1};
    struct jinja_buf b = {.max = o.max_output};
    err[0] = 0;
    *out = NULL;
    *out_len = 0;
    c.arena.limit = o.max_memory;
    c.globals = frame_new(&c, NULL);
    if (c.globals && ctx && json_is_object(ctx)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)ctx, k, x)
        {
            jv v = jv_from_json(&c.arena, x);
            if (v.t == JV_UNDEF) {
                oom(&c);
                break;
            }
            if (frame_set(&c, c.globals, k, v))
                break;
        }
    }
    if (!c.status) {
        exec_body(&c, c.globals, tpl->root, &b);
        if (!c.status && c.loopctl)
            jinja_fail(&c, JINJA_ESYNTAX, "'break' or 'continue' outside a loop");
    }
    jinja_arena_release(&c.arena);
    if (c.status) {
        free(b.p);
        return c.status;
    }
    if (!b.p && jinja_buf_put(&b, "", 0)) {
        snprintf(err, JINJA_ERR_LEN, "out of memory");
        return JINJA_ENOMEM;
    }
    *out = b.p;
    *out_len = b.len;
    return JINJA_OK;
}
