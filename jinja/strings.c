/*
 * jinja/strings.c — Python's str and dict methods that templates call (`s.strip()`,
 * `s.split(',')`, `d.get(k)`, `d.items()`, ...), the global functions (namespace, dict, range,
 * raise_exception, strftime_now) and UTF-8 case mapping (through the C.UTF-8 locale, so
 * 'ü'.upper() is 'Ü' as in Python).
 */
#include "config.h"

#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wctype.h>

#include "jinja/jinja_impl.h"

static const char *const STR_METHODS[] = {
    "startswith", "endswith", "strip",      "lstrip",  "rstrip",     "split",   "rsplit",
    "replace",    "upper",    "lower",      "title",   "capitalize", "format",  "find",
    "rfind",      "count",    "join",       "isdigit", "isalpha",    "isspace", "isalnum",
    "islower",    "isupper",  "splitlines", NULL};
static const char *const DICT_METHODS[] = {"get", "items", "keys", "values", NULL};
static const char *const LIST_METHODS[] = {"index", "count", NULL};

static int in_list(const char *const *list, const char *name)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], name))
            return 1;
    return 0;
}

int jinja_known_method(const char *name)
{
    return in_list(STR_METHODS, name) || in_list(DICT_METHODS, name) ||
           in_list(LIST_METHODS, name) || !strcmp(name, "cycle");
}

int jinja_has_method(jv self, const char *name)
{
    if (self.t == JV_STR)
        return in_list(STR_METHODS, name);
    if (self.t == JV_DICT && !self.u.d->ns)
        return in_list(DICT_METHODS, name);
    if (self.t == JV_LIST)
        return in_list(LIST_METHODS, name);
    return 0;
}

#define ARG(pos, name) jinja_arg(args, nargs, kwn, kwv, nkw, pos, name)

static int oom(struct jinja_ctx *c)
{
    return jinja_fail(c, JINJA_ELIMIT, "out of memory");
}

/* ---- UTF-8 ---- */

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;
static void utf8_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Decodes one code point at s[*i] (invalid bytes decode as themselves). */
static unsigned utf8_next(const char *s, size_t n, size_t *i)
{
    unsigned char b = (unsigned char)s[*i];
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
    if (*i + (size_t)len > n)
        len = 1;
    unsigned cp = len == 1 ? b : b & (0x3F >> (len - 1));
    for (int k = 1; k < len; k++) {
        unsigned char cb = (unsigned char)s[*i + (size_t)k];
        if ((cb & 0xC0) != 0x80) {
            len = 1;
            cp = b;
            break;
        }
        cp = cp << 6 | (cb & 0x3F);
    }
    *i += (size_t)len;
    return cp;
}

static int utf8_put(struct jinja_buf *b, unsigned cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 63));
        o[2] = (char)(0x80 | (cp & 63));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18);
        o[1] = (char)(0x80 | (cp >> 12 & 63));
        o[2] = (char)(0x80 | (cp >> 6 & 63));
        o[3] = (char)(0x80 | (cp & 63));
        n = 4;
    }
    return jinja_buf_put(b, o, n);
}

static unsigned cp_upper(unsigned cp)
{
    if (cp < 0x80)
        return cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
    pthread_once(&utf8_once, utf8_init);
    return utf8_locale ? (unsigned)towupper_l((wint_t)cp, utf8_locale) : cp;
}

static unsigned cp_lower(unsigned cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    pthread_once(&utf8_once, utf8_init);
    return utf8_locale ? (unsigned)towlower_l((wint_t)cp, utf8_locale) : cp;
}

static int cp_alpha(unsigned cp)
{
    if (cp < 0x80)
        return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    pthread_once(&utf8_once, utf8_init);
    return utf8_locale && iswalpha_l((wint_t)cp, utf8_locale);
}

static int cp_space(unsigned cp)
{
    return cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f) || cp == 0x85 ||
           cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static jv buf_to_str(struct jinja_ctx *c, struct jinja_buf *b, int failed)
{
    jv r = {.t = JV_UNDEF};
    if (!failed)
        r = jv_str(&c->arena, b->p ? b->p : "", b->len);
    free(b->p);
    if (r.t == JV_UNDEF)
        oom(c);
    return r;
}

int jinja_str_case(struct jinja_ctx *c, jv s, int mode, jv *out)
{
    struct jinja_buf b = {0};
    int rc = 0, prev_cased = 0;
    for (size_t i = 0; i < s.u.s->len;) {
        unsigned cp = utf8_next(s.u.s->s, s.u.s->len, &i), m;
        switch (mode) {
        case JC_UPPER: m = cp_upper(cp); break;
        case JC_LOWER: m = cp_lower(cp); break;
        case JC_CAPITALIZE:
            m = prev_cased ? cp_lower(cp) : cp_upper(cp);
            prev_cased = 1;
            break;
        default: /* title: a letter after a non-letter is upper, others lower */
            m = prev_cased ? cp_lower(cp) : cp_upper(cp);
            prev_cased = cp_alpha(cp);
        }
        rc |= utf8_put(&b, m);
    }
    *out = buf_to_str(c, &b, rc);
    return out->t == JV_UNDEF ? c->status : 0;
}

static int in_chars(unsigned cp, jv chars)
{
    if (chars.t != JV_STR)
        return cp_space(cp);
    for (size_t i = 0; i < chars.u.s->len;)
        if (utf8_next(chars.u.s->s, chars.u.s->len, &i) == cp)
            return 1;
    return 0;
}

int jinja_str_strip(struct jinja_ctx *c, jv s, jv chars, int sides, jv *out)
{
    const char *p = s.u.s->s;
    size_t n = s.u.s->len, lo = 0, hi = n;
    if (sides & 1)
        while (lo < n) {
            size_t j = lo;
            if (!in_chars(utf8_next(p, n, &j), chars))
                break;
            lo = j;
        }
    if (sides & 2)
        while (hi > lo) {
            size_t k = hi - 1;
            while (k > lo && ((unsigned char)p[k] & 0xC0) == 0x80)
                k--;
            size_t j = k;
            if (!in_chars(utf8_next(p, n, &j), chars))
                break;
            hi = k;
        }
    *out = jv_str(&c->arena, p + lo, hi - lo);
    return out->t == JV_UNDEF ? oom(c) : 0;
}

int jinja_str_replace(struct jinja_ctx *c, jv s, jv old, jv new_, int64_t count, jv *out)
{
    struct jinja_buf b = {.max = c->opts->max_output};
    const char *p = s.u.s->s, *end = p + s.u.s->len;
    size_t ol = old.u.s->len;
    int rc = 0;
    if (!ol) {
        /* Python inserts `new` before every character and at the end */
        size_t i = 0;
        while (i <= s.u.s->len) {
            if (count-- != 0)
                rc |= jinja_buf_put(&b, new_.u.s->s, new_.u.s->len);
            if (i == s.u.s->len)
                break;
            size_t j = i;
            utf8_next(p, s.u.s->len, &j);
            rc |= jinja_buf_put(&b, p + i, j - i);
            i = j;
        }
    } else {
        while (p < end) {
            const char *hit = count != 0 ? memmem(p, (size_t)(end - p), old.u.s->s, ol) : NULL;
            if (!hit) {
                rc |= jinja_buf_put(&b, p, (size_t)(end - p));
                break;
            }
            rc |= jinja_buf_put(&b, p, (size_t)(hit - p));
            rc |= jinja_buf_put(&b, new_.u.s->s, new_.u.s->len);
            p = hit + ol;
            count--;
        }
    }
    *out = buf_to_str(c, &b, rc);
    return out->t == JV_UNDEF ? c->status : 0;
}

static int push_str(struct jinja_ctx *c, struct jinja_list *l, const char *s, size_t n)
{
    jv v = jv_str(&c->arena, s, n);
    return v.t == JV_UNDEF || jv_list_push(&c->arena, l, v) ? oom(c) : 0;
}

/* str.split / str.rsplit (whitespace runs when sep is None). */
static int str_split(struct jinja_ctx *c, jv s, jv sep, int64_t maxsplit, int from_right, jv *out)
{
    struct jinja_list *l = jv_list_new(&c->arena, 8);
    const char *p = s.u.s->s;
    size_t n = s.u.s->len;
    if (!l)
        return oom(c);
    if (sep.t == JV_STR && !sep.u.s->len)
        return jinja_fail(c, JINJA_ERENDER, "empty separator");
    if (sep.t == JV_STR && !from_right) {
        size_t sl = sep.u.s->len, i = 0;
        for (;;) {
            const char *hit = maxsplit != 0 ? memmem(p + i, n - i, sep.u.s->s, sl) : NULL;
            if (!hit) {
                if (push_str(c, l, p + i, n - i))
                    return c->status;
                break;
            }
            if (push_str(c, l, p + i, (size_t)(hit - (p + i))))
                return c->status;
            i = (size_t)(hit - p) + sl;
            maxsplit--;
        }
    } else if (sep.t == JV_STR) {
        /* rsplit: split from the right, then reverse */
        size_t sl = sep.u.s->len, hi = n;
        struct jinja_list *r = jv_list_new(&c->arena, 8);
        if (!r)
            return oom(c);
        for (;;) {
            const char *hit = NULL;
            if (maxsplit != 0)
                for (size_t k = hi >= sl ? hi - sl + 1 : 0; k-- > 0;)
                    if (!memcmp(p + k, sep.u.s->s, sl)) {
                        hit = p + k;
                        break;
                    }
            if (!hit) {
                if (push_str(c, r, p, hi))
                    return c->status;
                break;
            }
            if (push_str(c, r, hit + sl, hi - (size_t)(hit - p) - sl))
                return c->status;
            hi = (size_t)(hit - p);
            maxsplit--;
        }
        for (size_t k = r->n; k-- > 0;)
            jv_list_push(&c->arena, l, r->v[k]);
    } else {
        /* whitespace split (left to right; rsplit with a limit is rare: treated alike when
         * maxsplit < 0) */
        if (from_right && maxsplit >= 0)
            return jinja_fail(c, JINJA_ERENDER, "rsplit(None, maxsplit) is not supported");
        size_t i = 0;
        for (;;) {
            while (i < n) {
                size_t j = i;
                if (!cp_space(utf8_next(p, n, &j)))
                    break;
                i = j;
            }
            if (i >= n)
                break;
            size_t start = i;
            if (maxsplit == 0) {
                size_t e = n;
                while (e > start) {
                    size_t k = e - 1;
                    while (k > start && ((unsigned char)p[k] & 0xC0) == 0x80)
                        k--;
                    size_t j = k;
                    if (!cp_space(utf8_next(p, n, &j)))
                        break;
                    e = k;
                }
                if (push_str(c, l, p + start, e - start))
                    return c->status;
                break;
            }
            while (i < n) {
                size_t j = i;
                if (cp_space(utf8_next(p, n, &j)))
                    break;
                i = j;
            }
            if (push_str(c, l, p + start, i - start))
                return c->status;
            maxsplit--;
        }
    }
    out->t = JV_LIST;
    out->u.l = l;
    return 0;
}

/* str.format with {} / {N} / {name} fields and {{ }} escapes (no format specs). */
static int str_format(struct jinja_ctx *c, jv s, jv *args, size_t nargs, const char **kwn, jv *kwv,
                      size_t nkw, jv *out)
{
    struct jinja_buf b = {.max = c->opts->max_output};
    const char *p = s.u.s->s, *end = p + s.u.s->len;
    size_t auto_i = 0;
    int rc = 0;
    while (p < end && !rc) {
        if ((*p == '{' || *p == '}') && p + 1 < end && p[1] == *p) {
            rc |= jinja_buf_putc(&b, *p);
            p += 2;
            continue;
        }
        if (*p == '}') {
            free(b.p);
            return jinja_fail(c, JINJA_ERENDER, "Single '}' encountered in format string");
        }
        if (*p != '{') {
            rc |= jinja_buf_putc(&b, *p++);
            continue;
        }
        const char *close = memchr(p, '}', (size_t)(end - p));
        if (!close) {
            free(b.p);
            return jinja_fail(c, JINJA_ERENDER, "Single '{' encountered in format string");
        }
        char field[64];
        size_t fl = (size_t)(close - p - 1);
        if (fl >= sizeof(field) || memchr(p + 1, ':', fl) || memchr(p + 1, '!', fl)) {
            free(b.p);
            return jinja_fail(c, JINJA_ERENDER, "format specs are not supported in str.format");
        }
        memcpy(field, p + 1, fl);
        field[fl] = 0;
        jv v = jv_undef(NULL);
        if (!fl) {
            if (auto_i < nargs)
                v = args[auto_i++];
        } else if (strspn(field, "0123456789") == fl) {
            size_t k = (size_t)atoll(field);
            if (k < nargs)
                v = args[k];
        } else {
            for (size_t k = 0; k < nkw; k++)
                if (!strcmp(kwn[k], field))
                    v = kwv[k];
        }
        if (v.t == JV_UNDEF) {
            free(b.p);
            return jinja_fail(c, JINJA_ERENDER, "str.format: no value for field '{%s}'", field);
        }
        rc |= jv_write_str(&b, v);
        p = close + 1;
    }
    *out = buf_to_str(c, &b, rc);
    return out->t == JV_UNDEF ? c->status : 0;
}

static int str_is(struct jinja_ctx *c, jv s, const char *what, jv *out)
{
    int all = s.u.s->len > 0, any_cased = 0;
    for (size_t i = 0; i < s.u.s->len && all;) {
        unsigned cp = utf8_next(s.u.s->s, s.u.s->len, &i);
        int alpha = cp_alpha(cp), digit = cp >= '0' && cp <= '9';
        if (!strcmp(what, "isdigit"))
            all = digit;
        else if (!strcmp(what, "isalpha"))
            all = alpha;
        else if (!strcmp(what, "isalnum"))
            all = alpha || digit;
        else if (!strcmp(what, "isspace"))
            all = cp_space(cp);
        else if (!strcmp(what, "islower") || !strcmp(what, "isupper")) {
            int lower = cp_upper(cp) != cp, upper = cp_lower(cp) != cp;
            any_cased |= lower || upper;
            all = what[2] == 'l' ? !upper : !lower;
        }
    }
    if (!strcmp(what, "islower") || !strcmp(what, "isupper"))
        all = all && any_cased;
    *out = jv_bool(all);
    (void)c;
    return 0;
}

static int affix(jv s, jv x, int end, int *out)
{
    if (x.t == JV_LIST) {
        *out = 0;
        for (size_t i = 0; i < x.u.l->n && !*out; i++)
            if (affix(s, x.u.l->v[i], end, out))
                return -1;
        return 0;
    }
    if (x.t != JV_STR)
        return -1;
    size_t n = x.u.s->len;
    *out = n <= s.u.s->len && !memcmp(s.u.s->s + (end ? s.u.s->len - n : 0), x.u.s->s, n);
    return 0;
}

static int str_method(struct jinja_ctx *c, jv s, const char *m, jv *args, size_t nargs,
                      const char **kwn, jv *kwv, size_t nkw, jv *out)
{
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        int r;
        if (nargs < 1 || affix(s, args[0], m[0] == 'e', &r))
            return jinja_fail(c, JINJA_ERENDER, "%s needs a string or a tuple of strings", m);
        *out = jv_bool(r);
        return 0;
    }
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip"))
        return jinja_str_strip(c, s, ARG(0, "chars"), m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3, out);
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        jv sep = ARG(0, "sep"), ms = ARG(1, "maxsplit");
        if (sep.t != JV_UNDEF && sep.t != JV_NONE && sep.t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER, "split separator must be a string");
        return str_split(c, s, sep, ms.t == JV_INT ? ms.u.i : -1, m[0] == 'r', out);
    }
    if (!strcmp(m, "replace")) {
        jv old = ARG(0, "old"), nw = ARG(1, "new"), cnt = ARG(2, "count");
        if (old.t != JV_STR || nw.t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER, "replace needs two strings");
        return jinja_str_replace(c, s, old, nw, cnt.t == JV_INT ? cnt.u.i : -1, out);
    }
    if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") ||
        !strcmp(m, "capitalize"))
        return jinja_str_case(c, s,
                              m[0] == 'u'   ? JC_UPPER
                              : m[0] == 'l' ? JC_LOWER
                              : m[0] == 't' ? JC_TITLE
                                            : JC_CAPITALIZE,
                              out);
    if (!strcmp(m, "format"))
        return str_format(c, s, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "count")) {
        if (nargs < 1 || args[0].t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER, "%s needs a string", m);
        const char *hay = s.u.s->s, *needle = args[0].u.s->s;
        size_t hl = s.u.s->len, nl = args[0].u.s->len;
        int64_t found = -1, count = 0;
        for (size_t i = 0; i + nl <= hl;) {
            if (!memcmp(hay + i, needle, nl)) {
                if (found < 0 || m[0] == 'r')
                    found = (int64_t)jinja_utf8_len(hay, i);
                count++;
                if (m[0] == 'f')
                    break;
                i += nl ? nl : 1;
            } else {
                i++;
            }
        }
        *out = jv_int(m[0] == 'c' ? count : found);
        return 0;
    }
    if (!strcmp(m, "join")) {
        jv items = ARG(0, "iterable");
        struct jinja_buf b = {.max = c->opts->max_output};
        int rc = 0;
        if (items.t != JV_LIST)
            return jinja_fail(c, JINJA_ERENDER, "join needs a list");
        for (size_t i = 0; i < items.u.l->n; i++) {
            if (items.u.l->v[i].t != JV_STR) {
                free(b.p);
                return jinja_fail(c, JINJA_ERENDER, "sequence item %zu: expected str instance", i);
            }
            if (i)
                rc |= jinja_buf_put(&b, s.u.s->s, s.u.s->len);
            rc |= jinja_buf_put(&b, items.u.l->v[i].u.s->s, items.u.l->v[i].u.s->len);
        }
        *out = buf_to_str(c, &b, rc);
        return out->t == JV_UNDEF ? c->status : 0;
    }
    if (!strcmp(m, "splitlines")) {
        struct jinja_list *l = jv_list_new(&c->arena, 8);
        const char *p = s.u.s->s, *end = p + s.u.s->len;
        if (!l)
            return oom(c);
        while (p < end) {
            const char *e = p;
            while (e < end && *e != '\n' && *e != '\r')
                e++;
            if (push_str(c, l, p, (size_t)(e - p)))
                return c->status;
            if (e < end && *e == '\r' && e + 1 < end && e[1] == '\n')
                e++;
            p = e + 1;
        }
        out->t = JV_LIST;
        out->u.l = l;
        return 0;
    }
    return str_is(c, s, m, out);
}

int jinja_method(struct jinja_ctx *c, jv self, const char *name, jv *args, size_t nargs,
                 const char **kwn, jv *kwv, size_t nkw, jv *out)
{
    if (!jinja_has_method(self, name))
        return jinja_fail(c, JINJA_ERENDER, "'%s' object has no method '%s'", jv_type_name(self),
                          name);
    if (self.t == JV_STR)
        return str_method(c, self, name, args, nargs, kwn, kwv, nkw, out);
    if (self.t == JV_LIST) {
        if (nargs < 1)
            return jinja_fail(c, JINJA_ERENDER, "%s needs an argument", name);
        int64_t count = 0, first = -1;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (jv_equal(self.u.l->v[i], args[0])) {
                count++;
                if (first < 0)
                    first = (int64_t)i;
            }
        if (name[0] == 'i' && first < 0)
            return jinja_fail(c, JINJA_ERENDER, "value is not in list");
        *out = jv_int(name[0] == 'i' ? first : count);
        return 0;
    }
    const struct jinja_dict *d = self.u.d;
    if (!strcmp(name, "get")) {
        if (nargs < 1)
            return jinja_fail(c, JINJA_ERENDER, "get needs a key");
        jv *v = jv_dict_get(d, args[0]);
        *out = v ? *v : nargs > 1 ? args[1] : jv_none();
        return 0;
    }
    struct jinja_list *l = jv_list_new(&c->arena, d->n + 1);
    if (!l)
        return oom(c);
    for (size_t i = 0; i < d->n; i++) {
        jv item = name[0] == 'k' ? d->k[i] : d->v[i];
        if (name[0] == 'i') {
            struct jinja_list *pair = jv_list_new(&c->arena, 2);
            if (!pair)
                return oom(c);
            pair->tuple = 1;
            jv_list_push(&c->arena, pair, d->k[i]);
            jv_list_push(&c->arena, pair, d->v[i]);
            item.t = JV_LIST;
            item.u.l = pair;
        }
        if (jv_list_push(&c->arena, l, item))
            return oom(c);
    }
    out->t = JV_LIST;
    out->u.l = l;
    return 0;
}

int jinja_global(struct jinja_ctx *c, const char *name, jv *args, size_t nargs, const char **kwn,
                 jv *kwv, size_t nkw, jv *out)
{
    if (!strcmp(name, "raise_exception")) {
        jv msg = nargs ? jv_to_str(c, args[0]) : jv_str(&c->arena, "", 0);
        if (msg.t == JV_UNDEF)
            return c->status ? c->status : oom(c);
        return jinja_fail(c, JINJA_ERAISE, "%s", msg.u.s->s);
    }
    if (!strcmp(name, "strftime_now")) {
        char tmp[256];
        struct tm tm;
        time_t now = c->opts->now;
        if (nargs < 1 || args[0].t != JV_STR)
            return jinja_fail(c, JINJA_ERENDER, "strftime_now needs a format string");
        localtime_r(&now, &tm);
        size_t n = strftime(tmp, sizeof(tmp), args[0].u.s->s, &tm);
        *out = jv_str(&c->arena, tmp, n);
        return out->t == JV_UNDEF ? oom(c) : 0;
    }
    if (!strcmp(name, "range")) {
        int64_t a = 0, b, step = 1;
        for (size_t i = 0; i < nargs; i++)
            if (args[i].t != JV_INT)
                return jinja_fail(c, JINJA_ERENDER, "range needs integers");
        if (nargs == 1) {
            b = args[0].u.i;
        } else if (nargs == 2 || nargs == 3) {
            a = args[0].u.i;
            b = args[1].u.i;
            if (nargs == 3)
                step = args[2].u.i;
        } else {
            return jinja_fail(c, JINJA_ERENDER, "range takes 1 to 3 arguments");
        }
        if (step == 0)
            return jinja_fail(c, JINJA_ERENDER, "range step must not be zero");
        if (((double)b - (double)a) / (double)step > 100000)
            return jinja_fail(c, JINJA_ELIMIT, "range longer than 100000 items");
        struct jinja_list *l = jv_list_new(&c->arena, 8);
        if (!l)
            return oom(c);
        for (int64_t i = a; step > 0 ? i < b : i > b; i += step)
            if (jv_list_push(&c->arena, l, jv_int(i)))
                return oom(c);
        out->t = JV_LIST;
        out->u.l = l;
        return 0;
    }
    /* namespace(...) and dict(...): keyword arguments (and a dict's items) */
    struct jinja_dict *d = jv_dict_new(&c->arena, nkw + 4);
    if (!d)
        return oom(c);
    d->ns = name[0] == 'n';
    if (nargs > 1 || (nargs == 1 && args[0].t != JV_DICT))
        return jinja_fail(c, JINJA_ERENDER, "%s() takes keyword arguments or one dict", name);
    if (nargs == 1)
        for (size_t i = 0; i < args[0].u.d->n; i++)
            if (jv_dict_set(&c->arena, d, args[0].u.d->k[i], args[0].u.d->v[i]))
                return oom(c);
    for (size_t i = 0; i < nkw; i++) {
        jv k = jv_str(&c->arena, kwn[i], strlen(kwn[i]));
        if (k.t == JV_UNDEF || jv_dict_set(&c->arena, d, k, kwv[i]))
            return oom(c);
    }
    out->t = JV_DICT;
    out->u.d = d;
    return 0;
}
