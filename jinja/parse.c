/*
 * jinja/parse.c — the lexer and parser: template text to a syntax tree (jinja_impl.h).
 *
 * The lexer applies Jinja2's whitespace rules as transformers configures them: `{%-`/`-%}`
 * (and the same on `{{ }}` and `{# #}`) strip all whitespace on that side; trim_blocks drops the
 * first newline after a block or comment tag; lstrip_blocks drops spaces and tabs between the
 * start of a line and a block or comment tag; `{%+` and `+%}` turn those two off for one tag.
 * The parser follows Jinja2's grammar and precedence (parser.py): conditional, or, and, not,
 * comparisons, + -, ~, * / // %, **, unary - +, then primary with postfix `.attr`, `[...]`,
 * `(...)`, `| filter` and `is test`. Anything else is an error naming the construct and line.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_impl.h"
#include "util/grow.h"

enum tok_kind {
    T_EOF,
    T_TEXT,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP
};

struct tok {
    int kind;
    int line;
    const char *s; /* NAME, OP: the text; TEXT, STRING: the (unescaped) value */
    size_t len;
    int64_t i;
    double f;
};

struct parser {
    struct jinja_arena *a;
    struct tok *t;
    size_t n, cap, pos;
    const char *src;
    size_t srclen;
    int line;
    int depth;
    int loops; /* for loops open around the current statement (0 inside a macro) */
    char *err;
};

#define MAX_DEPTH 200

static int perr(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(struct parser *p, int line, const char *fmt, ...)
{
    if (p->err[0])
        return JINJA_ESYNTAX;
    int o = snprintf(p->err, JINJA_ERR_LEN, "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + o, JINJA_ERR_LEN - (size_t)o, fmt, ap);
    va_end(ap);
    return JINJA_ESYNTAX;
}

static int push(struct parser *p, struct tok t)
{
    if (UTIL_GROW(p->t, p->cap, p->n + 1, 256))
        return JINJA_ENOMEM;
    p->t[p->n++] = t;
    return 0;
}

static int count_lines(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A string literal at s[*i] (the quote); Python's escapes. */
static int lex_string(struct parser *p, size_t *i, struct tok *t)
{
    const char *s = p->src;
    char q = s[*i];
    size_t j = *i + 1;
    char *out = jinja_alloc(p->a, p->srclen - *i + 1), *o = out;
    if (!out)
        return JINJA_ENOMEM;
    for (;;) {
        if (j >= p->srclen)
            return perr(p, p->line, "unterminated string literal");
        char ch = s[j];
        if (ch == q)
            break;
        if (ch == '\n')
            p->line++;
        if (ch != '\\') {
            *o++ = ch;
            j++;
            continue;
        }
        if (++j >= p->srclen)
            return perr(p, p->line, "unterminated string literal");
        char e = s[j++];
        unsigned cp;
        int nhex = 0;
        switch (e) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case '0': *o++ = '\0'; break;
        case 'a': *o++ = '\a'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'v': *o++ = '\v'; break;
        case '\\':
        case '\'':
        case '"': *o++ = e; break;
        case '\n': p->line++; break;
        case 'x': nhex = 2; break;
        case 'u': nhex = 4; break;
        case 'U': nhex = 8; break;
        default: *o++ = '\\'; *o++ = e;
        }
        if (nhex) {
            cp = 0;
            for (int k = 0; k < nhex; k++, j++) {
                if (j >= p->srclen || !isxdigit((unsigned char)s[j]))
                    return perr(p, p->line, "bad \\%c escape in a string literal", e);
                cp = cp * 16 +
                     (unsigned)(isdigit((unsigned char)s[j]) ? s[j] - '0' : (s[j] | 32) - 'a' + 10);
            }
            if (cp > 0x10FFFF)
                return perr(p, p->line, "bad \\%c escape in a string literal", e);
            o += put_utf8(o, cp);
        }
    }
    t->kind = T_STRING;
    t->s = out;
    t->len = (size_t)(o - out);
    *i = j + 1;
    return 0;
}

static int lex_number(struct parser *p, size_t *i, struct tok *t)
{
    const char *s = p->src;
    char buf[128];
    size_t j = *i, o = 0;
    int isf = 0;
    while (j < p->srclen && (isdigit((unsigned char)s[j]) || s[j] == '_') && o < 100) {
        if (s[j] != '_')
            buf[o++] = s[j];
        j++;
    }
    if (j + 1 < p->srclen && s[j] == '.' && isdigit((unsigned char)s[j + 1])) {
        isf = 1;
        buf[o++] = s[j++];
        while (j < p->srclen && (isdigit((unsigned char)s[j]) || s[j] == '_') && o < 110)
            if (s[j++] != '_')
                buf[o++] = s[j - 1];
    }
    if (j < p->srclen && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < p->srclen && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k < p->srclen && isdigit((unsigned char)s[k])) {
            isf = 1;
            buf[o++] = 'e';
            if (s[j + 1] == '-' || s[j + 1] == '+')
                buf[o++] = s[j + 1];
            j = k;
            while (j < p->srclen && isdigit((unsigned char)s[j]) && o < 126)
                buf[o++] = s[j++];
        }
    }
    buf[o] = 0;
    if (o >= 100)
        return perr(p, p->line, "number literal too long");
    t->kind = isf ? T_FLOAT : T_INT;
    if (isf) {
        t->f = strtod(buf, NULL);
    } else {
        char *end;
        t->i = strtoll(buf, &end, 10);
        if (o > 18)
            return perr(p, p->line, "integer literal out of range (64-bit integers only)");
    }
    *i = j;
    return 0;
}

static const char *const OPS2[] = {"**", "//", "==", "!=", "<=", ">=", NULL};

/* The tokens of one tag, up to and including its end marker; returns the position after it. */
static int lex_tag(struct parser *p, size_t *pos, int is_block, int *strip_after, int *plus_after)
{
    const char *s = p->src;
    size_t i = *pos;
    for (;;) {
        while (i < p->srclen && isspace((unsigned char)s[i])) {
            if (s[i] == '\n')
                p->line++;
            i++;
        }
        if (i >= p->srclen)
            return perr(p, p->line, "unclosed tag: missing '%s'", is_block ? "%}" : "}}");
        const char *end = is_block ? "%}" : "}}";
        int mod = 0;
        if ((s[i] == '-' || s[i] == '+') && i + 2 < p->srclen && !memcmp(s + i + 1, end, 2))
            mod = s[i];
        if (mod || (i + 1 < p->srclen && !memcmp(s + i, end, 2))) {
            struct tok t = {.kind = is_block ? T_BLOCK_END : T_VAR_END, .line = p->line};
            *strip_after = mod == '-';
            *plus_after = mod == '+';
            *pos = i + 2 + (mod != 0);
            return push(p, t);
        }
        struct tok t = {.line = p->line};
        int rc = 0;
        char ch = s[i];
        if (isalpha((unsigned char)ch) || ch == '_') {
            size_t j = i;
            while (j < p->srclen && (isalnum((unsigned char)s[j]) || s[j] == '_'))
                j++;
            t.kind = T_NAME;
            t.s = s + i;
            t.len = j - i;
            i = j;
        } else if (isdigit((unsigned char)ch)) {
            rc = lex_number(p, &i, &t);
        } else if (ch == '\'' || ch == '"') {
            rc = lex_string(p, &i, &t);
        } else {
            t.kind = T_OP;
            t.s = s + i;
            t.len = 1;
            for (int k = 0; OPS2[k]; k++)
                if (i + 1 < p->srclen && !memcmp(s + i, OPS2[k], 2))
                    t.len = 2;
            if (t.len == 1 && !strchr("+-*/%~<>=()[]{},.:|", ch))
                return perr(p, p->line, "unexpected character '%c'", ch);
            i += t.len;
        }
        if (rc || (rc = push(p, t)))
            return rc;
    }
}

/* Splits the template into text and tag tokens, applying the whitespace rules. */
static int lex(struct parser *p)
{
    const char *s = p->src;
    size_t pos = 0;
    int strip_next = 0, trim_next = 0;
    p->line = 1;
    while (pos <= p->srclen) {
        const char *open = NULL;
        for (size_t i = pos; i + 1 < p->srclen; i++)
            if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) {
                open = s + i;
                break;
            }
        size_t tstart = pos, tend = open ? (size_t)(open - s) : p->srclen;
        if (trim_next && tstart < tend && s[tstart] == '\n')
            tstart++;
        else if (trim_next && tstart + 1 < tend && s[tstart] == '\r' && s[tstart + 1] == '\n')
            tstart += 2;
        if (strip_next)
            while (tstart < tend && isspace((unsigned char)s[tstart]))
                tstart++;
        char kind = open ? open[1] : 0;
        char mod = open && tend + 2 < p->srclen ? open[2] : 0;
        if (open && mod == '-') {
            while (tend > tstart && isspace((unsigned char)s[tend - 1]))
                tend--;
        } else if (open && (kind == '%' || kind == '#') && mod != '+') {
            size_t ls = tend;
            while (ls > tstart && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
                ls--;
            if ((ls > tstart && s[ls - 1] == '\n') ||
                (ls == tstart && (ls == 0 || s[ls - 1] == '\n')))
                tend = ls;
        }
        int text_line = p->line + count_lines(s + pos, tstart - pos);
        if (tend > tstart) {
            struct tok t = {
                .kind = T_TEXT, .line = text_line, .s = s + tstart, .len = tend - tstart};
            if (push(p, t))
                return JINJA_ENOMEM;
        }
        if (!open)
            break;
        p->line += count_lines(s + pos, (size_t)(open - s) - pos);
        pos = (size_t)(open - s) + 2 + (mod == '-' || mod == '+');
        strip_next = trim_next = 0;
        if (kind == '#') {
            const char *e = NULL;
            for (size_t i = pos; i + 1 < p->srclen; i++)
                if (s[i] == '#' && s[i + 1] == '}') {
                    e = s + i;
                    break;
                }
            if (!e)
                return perr(p, p->line, "unclosed comment: missing '#}'");
            size_t epos = (size_t)(e - s);
            p->line += count_lines(s + pos, epos - pos);
            strip_next = epos > pos && s[epos - 1] == '-';
            trim_next = !strip_next && !(epos > pos && s[epos - 1] == '+');
            pos = epos + 2;
            continue;
        }
        struct tok t = {.kind = kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, .line = p->line};
        if (push(p, t))
            return JINJA_ENOMEM;
        int plus = 0, rc = lex_tag(p, &pos, kind == '%', &strip_next, &plus);
        if (rc)
            return rc;
        trim_next = kind == '%' && !strip_next && !plus;
    }
    struct tok eof = {.kind = T_EOF, .line = p->line};
    return push(p, eof);
}

/* ---- parser ---- */

static struct tok *cur(struct parser *p)
{
    return &p->t[p->pos];
}
static struct tok *peek(struct parser *p, size_t k)
{
    return p->pos + k < p->n ? &p->t[p->pos + k] : &p->t[p->n - 1];
}
static int is_op(const struct tok *t, const char *op)
{
    return t->kind == T_OP && t->len == strlen(op) && !memcmp(t->s, op, t->len);
}
static int is_name(const struct tok *t, const char *name)
{
    return t->kind == T_NAME && t->len == strlen(name) && !memcmp(t->s, name, t->len);
}
static const char *tok_desc(struct parser *p, const struct tok *t)
{
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_TEXT: return "text";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_END: return "'%}'";
    case T_VAR_BEGIN: return "'{{'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_STRING: return "a string";
    case T_INT:
    case T_FLOAT: return "a number";
    default: {
        char *d = jinja_strndup(p->a, t->s, t->len > 40 ? 40 : t->len);
        return d ? d : "?";
    }
    }
}
static int expect_op(struct parser *p, const char *op)
{
    if (!is_op(cur(p), op))
        return perr(p, cur(p)->line, "expected '%s', got %s", op, tok_desc(p, cur(p)));
    p->pos++;
    return 0;
}

static struct jinja_node *node(struct parser *p, int kind, int line)
{
    struct jinja_node *n = jinja_alloc(p->a, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->line = line;
    } else {
        perr(p, line, "out of memory");
    }
    return n;
}

/* Growable arrays of node pointers / names, copied into the arena when done. */
struct nvec {
    struct jinja_node **v;
    const char **names;
    size_t n, cap;
};
static int nvec_push(struct nvec *v, struct jinja_node *x, const char *name)
{
    size_t vcap = v->cap; /* both arrays grow to the same capacity, kept in v->cap */
    if (UTIL_GROW(v->v, vcap, v->n + 1, 8) || UTIL_GROW(v->names, v->cap, v->n + 1, 8))
        return -1;
    v->v[v->n] = x;
    v->names[v->n++] = name;
    return 0;
}
static struct jinja_node **nvec_nodes(struct parser *p, struct nvec *v)
{
    struct jinja_node **out = jinja_alloc(p->a, (v->n + 1) * sizeof(*out));
    if (out && v->n)
        memcpy(out, v->v, v->n * sizeof(*out));
    return out;
}
static const char **nvec_names(struct parser *p, struct nvec *v)
{
    const char **out = jinja_alloc(p->a, (v->n + 1) * sizeof(*out));
    if (out && v->n)
        memcpy(out, v->names, v->n * sizeof(*out));
    return out;
}
static void nvec_free(struct nvec *v)
{
    free(v->v);
    free(v->names);
}

static const char *tok_name(struct parser *p, const struct tok *t)
{
    return jinja_strndup(p->a, t->s, t->len);
}

static struct jinja_node *parse_expr(struct parser *p, int with_cond);
static struct jinja_node *parse_unary(struct parser *p, int with_filter);

/* Call arguments after '(' up to ')': positional into args, keyword into kw. */
static int parse_args(struct parser *p, struct nvec *args, struct nvec *kw)
{
    while (!is_op(cur(p), ")")) {
        if (args->n + kw->n && expect_op(p, ","))
            return -1;
        if (is_op(cur(p), ")"))
            break;
        if (cur(p)->kind == T_NAME && is_op(peek(p, 1), "=")) {
            const char *name = tok_name(p, cur(p));
            p->pos += 2;
            struct jinja_node *v = parse_expr(p, 1);
            if (!v || !name || nvec_push(kw, v, name))
                return -1;
        } else {
            if (is_op(cur(p), "*") || is_op(cur(p), "**"))
                return perr(p, cur(p)->line, "unsupported construct: *args/**kwargs in a call");
            if (kw->n)
                return perr(p, cur(p)->line, "positional argument after a keyword argument");
            struct jinja_node *v = parse_expr(p, 1);
            if (!v || nvec_push(args, v, NULL))
                return -1;
        }
    }
    p->pos++;
    return 0;
}

static struct jinja_node *make_call(struct parser *p, int kind, int line, struct jinja_node *a,
                                    const char *name, struct nvec *args, struct nvec *kw)
{
    struct jinja_node *n = node(p, kind, line);
    if (!n)
        return NULL;
    n->a = a;
    n->name = name;
    n->kids = nvec_nodes(p, args);
    n->nkids = args->n;
    n->kwnames = nvec_names(p, kw);
    n->kwvals = nvec_nodes(p, kw);
    n->nkw = kw->n;
    return n->kids && n->kwnames && n->kwvals ? n : NULL;
}

static struct jinja_node *parse_call_args(struct parser *p, int kind, int line,
                                          struct jinja_node *a, const char *name)
{
    struct nvec args = {0}, kw = {0};
    struct jinja_node *n = NULL;
    if (parse_args(p, &args, &kw) == 0)
        n = make_call(p, kind, line, a, name, &args, &kw);
    nvec_free(&args);
    nvec_free(&kw);
    return n;
}

/* `[` ... `]` after an expression: an index or a slice a:b:c. */
static struct jinja_node *parse_subscript(struct parser *p, struct jinja_node *obj)
{
    int line = cur(p)->line;
    p->pos++;
    struct jinja_node *parts[3] = {NULL, NULL, NULL};
    int np = 0, colons = 0;
    for (;;) {
        if (is_op(cur(p), "]"))
            break;
        if (is_op(cur(p), ":")) {
            if (++colons > 2)
                return perr(p, line, "bad slice"), NULL;
            np = colons;
            p->pos++;
            continue;
        }
        if (parts[np])
            return perr(p, cur(p)->line, "expected ']', got %s", tok_desc(p, cur(p))), NULL;
        if (!(parts[np] = parse_expr(p, 1)))
            return NULL;
    }
    p->pos++;
    struct jinja_node *n = node(p, colons ? JN_SLICE : JN_ITEM, line);
    if (!n)
        return NULL;
    n->a = obj;
    if (!colons) {
        if (!parts[0])
            return perr(p, line, "empty subscript"), NULL;
        n->b = parts[0];
    } else {
        n->b = parts[0];
        n->c = parts[1];
        n->d = parts[2];
    }
    return n;
}

static struct jinja_node *parse_postfix(struct parser *p, struct jinja_node *n)
{
    while (n) {
        struct tok *t = cur(p);
        if (is_op(t, ".")) {
            struct tok *nm = peek(p, 1);
            if (nm->kind == T_INT) {
                struct jinja_node *it = node(p, JN_ITEM, t->line);
                struct jinja_node *lit = node(p, JN_LIT, t->line);
                if (!it || !lit)
                    return NULL;
                lit->val = jv_int(nm->i);
                it->a = n;
                it->b = lit;
                p->pos += 2;
                n = it;
                continue;
            }
            if (nm->kind != T_NAME)
                return perr(p, t->line, "expected an attribute name after '.'"), NULL;
            const char *name = tok_name(p, nm);
            p->pos += 2;
            if (is_op(cur(p), "(") && !jinja_known_method(name))
                return perr(p, t->line, "unsupported method '%s()'", name), NULL;
            struct jinja_node *at = node(p, JN_ATTR, t->line);
            if (!at)
                return NULL;
            at->a = n;
            at->name = name;
            n = at;
        } else if (is_op(t, "[")) {
            n = parse_subscript(p, n);
        } else if (is_op(t, "(")) {
            p->pos++;
            n = parse_call_args(p, JN_CALL, t->line, n, NULL);
        } else {
            break;
        }
    }
    return n;
}

/* `| name(args)` and `is [not] test args` after an expression. */
static struct jinja_node *parse_filters(struct parser *p, struct jinja_node *n)
{
    while (n) {
        struct tok *t = cur(p);
        if (is_op(t, "|")) {
            struct tok *nm = peek(p, 1);
            if (nm->kind != T_NAME)
                return perr(p, t->line, "expected a filter name after '|'"), NULL;
            const char *name = tok_name(p, nm);
            if (!name || !jinja_known_filter(name))
                return perr(p, t->line, "unknown filter '%s'", name ? name : "?"), NULL;
            p->pos += 2;
            if (is_op(cur(p), "(")) {
                p->pos++;
                n = parse_call_args(p, JN_FILTER, t->line, n, name);
            } else {
                struct nvec none = {0};
                n = make_call(p, JN_FILTER, t->line, n, name, &none, &none);
            }
        } else if (is_name(t, "is")) {
            p->pos++;
            int neg = 0;
            if (is_name(cur(p), "not")) {
                neg = 1;
                p->pos++;
            }
            struct tok *nm = cur(p);
            const char *name = NULL;
            if (nm->kind == T_NAME)
                name = tok_name(p, nm);
            else if (is_op(nm, "==") || is_op(nm, "!=") || is_op(nm, "<") || is_op(nm, ">") ||
                     is_op(nm, "<=") || is_op(nm, ">="))
                name = tok_name(p, nm);
            if (!name)
                return perr(p, t->line, "expected a test name after 'is'"), NULL;
            if (!jinja_known_test(name))
                return perr(p, t->line, "unknown test '%s'", name), NULL;
            p->pos++;
            struct nvec args = {0}, kw = {0};
            struct tok *a = cur(p);
            if (is_op(a, "(")) {
                p->pos++;
                if (parse_args(p, &args, &kw)) {
                    nvec_free(&args);
                    nvec_free(&kw);
                    return NULL;
                }
            } else if ((a->kind == T_NAME || a->kind == T_STRING || a->kind == T_INT ||
                        a->kind == T_FLOAT || is_op(a, "[") || is_op(a, "{") || is_op(a, "-")) &&
                       !is_name(a, "else") && !is_name(a, "or") && !is_name(a, "and") &&
                       !is_name(a, "if") && !is_name(a, "is") && !is_name(a, "not") &&
                       !is_name(a, "in")) {
                struct jinja_node *arg = parse_unary(p, 0);
                if (!arg || nvec_push(&args, arg, NULL)) {
                    nvec_free(&args);
                    return NULL;
                }
            }
            n = make_call(p, JN_TEST, t->line, n, name, &args, &kw);
            if (n)
                n->op = neg;
            nvec_free(&args);
            nvec_free(&kw);
        } else {
            break;
        }
    }
    return n;
}

static struct jinja_node *parse_primary(struct parser *p)
{
    struct tok *t = cur(p);
    struct jinja_node *n;
    if (++p->depth > MAX_DEPTH)
        return perr(p, t->line, "expression nested too deeply"), NULL;
    switch (t->kind) {
    case T_STRING:
        n = node(p, JN_LIT, t->line);
        if (!n)
            return NULL;
        n->val = jv_str(p->a, t->s, t->len);
        p->pos++;
        /* adjacent string literals concatenate */
        while (n && cur(p)->kind == T_STRING) {
            jv a = n->val;
            struct tok *u = cur(p);
            char *cat = jinja_alloc(p->a, a.u.s->len + u->len + 1);
            if (!cat)
                return perr(p, t->line, "out of memory"), NULL;
            memcpy(cat, a.u.s->s, a.u.s->len);
            memcpy(cat + a.u.s->len, u->s, u->len);
            n->val = jv_str(p->a, cat, a.u.s->len + u->len);
            p->pos++;
        }
        break;
    case T_INT:
    case T_FLOAT:
        n = node(p, JN_LIT, t->line);
        if (!n)
            return NULL;
        n->val = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
        p->pos++;
        break;
    case T_NAME:
        n = node(p, JN_LIT, t->line);
        if (!n)
            return NULL;
        if (is_name(t, "true") || is_name(t, "True"))
            n->val = jv_bool(1);
        else if (is_name(t, "false") || is_name(t, "False"))
            n->val = jv_bool(0);
        else if (is_name(t, "none") || is_name(t, "None"))
            n->val = jv_none();
        else {
            n->kind = JN_NAME;
            n->name = tok_name(p, t);
        }
        p->pos++;
        break;
    case T_OP:
        if (is_op(t, "(") || is_op(t, "[")) {
            int tuple = is_op(t, "("), trailing = 0;
            const char *close = tuple ? ")" : "]";
            p->pos++;
            struct nvec items = {0};
            while (!is_op(cur(p), close)) {
                if (items.n && expect_op(p, ","))
                    goto fail_items;
                if (is_op(cur(p), close)) {
                    trailing = 1;
                    break;
                }
                struct jinja_node *x = parse_expr(p, 1);
                if (!x || nvec_push(&items, x, NULL))
                    goto fail_items;
            }
            p->pos++;
            if (tuple && items.n == 1 && !trailing) {
                n = items.v[0];
                nvec_free(&items);
                break;
            }
            n = node(p, JN_LIST, t->line);
            if (n) {
                n->op = tuple;
                n->kids = nvec_nodes(p, &items);
                n->nkids = items.n;
            }
            nvec_free(&items);
            break;
        fail_items:
            nvec_free(&items);
            return NULL;
        }
        if (is_op(t, "{")) {
            p->pos++;
            struct nvec keys = {0}, vals = {0};
            while (!is_op(cur(p), "}")) {
                if (keys.n && expect_op(p, ","))
                    goto fail_dict;
                if (is_op(cur(p), "}"))
                    break;
                struct jinja_node *k = parse_expr(p, 1);
                if (!k || expect_op(p, ":"))
                    goto fail_dict;
                struct jinja_node *v = parse_expr(p, 1);
                if (!v || nvec_push(&keys, k, NULL) || nvec_push(&vals, v, NULL))
                    goto fail_dict;
            }
            p->pos++;
            n = node(p, JN_DICT, t->line);
            if (n) {
                n->kids = nvec_nodes(p, &keys);
                n->kwvals = nvec_nodes(p, &vals);
                n->nkids = keys.n;
            }
            nvec_free(&keys);
            nvec_free(&vals);
            break;
        fail_dict:
            nvec_free(&keys);
            nvec_free(&vals);
            return NULL;
        }
        /* fall through */
    default: return perr(p, t->line, "unexpected %s in an expression", tok_desc(p, t)), NULL;
    }
    p->depth--;
    return n;
}

static struct jinja_node *parse_unary(struct parser *p, int with_filter)
{
    struct tok *t = cur(p);
    struct jinja_node *n;
    if (++p->depth > MAX_DEPTH)
        return perr(p, t->line, "expression nested too deeply"), NULL;
    if (is_op(t, "-") || is_op(t, "+")) {
        p->pos++;
        struct jinja_node *x = parse_unary(p, 0);
        n = x ? node(p, is_op(t, "-") ? JN_NEG : JN_POS, t->line) : NULL;
        if (n)
            n->a = x;
    } else {
        n = parse_postfix(p, parse_primary(p));
    }
    if (with_filter)
        n = parse_filters(p, n);
    p->depth--;
    return n;
}

static struct jinja_node *binop(struct parser *p, int op, int line, struct jinja_node *a,
                                struct jinja_node *b)
{
    if (!a || !b)
        return NULL;
    struct jinja_node *n = node(p, JN_BIN, line);
    if (n) {
        n->op = op;
        n->a = a;
        n->b = b;
    }
    return n;
}

static struct jinja_node *parse_pow(struct parser *p)
{
    struct jinja_node *n = parse_unary(p, 1);
    while (n && is_op(cur(p), "**")) {
        int line = cur(p)->line;
        p->pos++;
        n = binop(p, JO_POW, line, n, parse_unary(p, 1));
    }
    return n;
}

static struct jinja_node *parse_math2(struct parser *p)
{
    struct jinja_node *n = parse_pow(p);
    for (;;) {
        struct tok *t = cur(p);
        int op = is_op(t, "*")    ? JO_MUL
                 : is_op(t, "/")  ? JO_DIV
                 : is_op(t, "//") ? JO_FLOORDIV
                 : is_op(t, "%")  ? JO_MOD
                                  : 0;
        if (!n || !op)
            return n;
        p->pos++;
        n = binop(p, op, t->line, n, parse_pow(p));
    }
}

static struct jinja_node *parse_concat(struct parser *p)
{
    struct jinja_node *n = parse_math2(p);
    while (n && is_op(cur(p), "~")) {
        int line = cur(p)->line;
        p->pos++;
        n = binop(p, JO_CONCAT, line, n, parse_math2(p));
    }
    return n;
}

static struct jinja_node *parse_math1(struct parser *p)
{
    struct jinja_node *n = parse_concat(p);
    for (;;) {
        struct tok *t = cur(p);
        int op = is_op(t, "+") ? JO_ADD : is_op(t, "-") ? JO_SUB : 0;
        if (!n || !op)
            return n;
        p->pos++;
        n = binop(p, op, t->line, n, parse_concat(p));
    }
}

static struct jinja_node *parse_compare(struct parser *p)
{
    int line = cur(p)->line;
    struct jinja_node *first = parse_math1(p);
    if (!first)
        return NULL;
    struct nvec ops = {0};
    int opcodes[64];
    if (nvec_push(&ops, first, NULL))
        goto fail;
    for (;;) {
        struct tok *t = cur(p);
        int op = is_op(t, "==")                                     ? JO_EQ
                 : is_op(t, "!=")                                   ? JO_NE
                 : is_op(t, "<")                                    ? JO_LT
                 : is_op(t, "<=")                                   ? JO_LE
                 : is_op(t, ">")                                    ? JO_GT
                 : is_op(t, ">=")                                   ? JO_GE
                 : is_name(t, "in")                                 ? JO_IN
                 : (is_name(t, "not") && is_name(peek(p, 1), "in")) ? JO_NOTIN
                                                                    : 0;
        if (!op)
            break;
        if (ops.n > 60) {
            perr(p, t->line, "comparison chain too long");
            goto fail;
        }
        p->pos += op == JO_NOTIN ? 2 : 1;
        struct jinja_node *x = parse_math1(p);
        if (!x || nvec_push(&ops, x, NULL))
            goto fail;
        opcodes[ops.n - 2] = op;
    }
    if (ops.n == 1) {
        nvec_free(&ops);
        return first;
    }
    struct jinja_node *n = node(p, JN_CMP, line);
    if (n) {
        n->kids = nvec_nodes(p, &ops);
        n->nkids = ops.n;
        n->cmpops = jinja_alloc(p->a, ops.n * sizeof(int));
        if (n->cmpops)
            memcpy(n->cmpops, opcodes, (ops.n - 1) * sizeof(int));
        else
            n = NULL;
    }
    nvec_free(&ops);
    return n;
fail:
    nvec_free(&ops);
    return NULL;
}

static struct jinja_node *parse_not(struct parser *p)
{
    struct tok *t = cur(p);
    if (is_name(t, "not")) {
        if (++p->depth > MAX_DEPTH)
            return perr(p, t->line, "expression nested too deeply"), NULL;
        p->pos++;
        struct jinja_node *x = parse_not(p);
        struct jinja_node *n = x ? node(p, JN_NOT, t->line) : NULL;
        if (n)
            n->a = x;
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

/* `a and b and ...` (kind JN_AND over parse_not) or `a or b ...` (JN_OR over parse_and),
 * left-associative. */
static struct jinja_node *parse_chain(struct parser *p, int kind, const char *word,
                                      struct jinja_node *(*sub)(struct parser *))
{
    struct jinja_node *n = sub(p);
    while (n && is_name(cur(p), word)) {
        int line = cur(p)->line;
        p->pos++;
        struct jinja_node *b = sub(p);
        struct jinja_node *x = b ? node(p, kind, line) : NULL;
        if (x) {
            x->a = n;
            x->b = b;
        }
        n = x;
    }
    return n;
}

static struct jinja_node *parse_and(struct parser *p)
{
    return parse_chain(p, JN_AND, "and", parse_not);
}

static struct jinja_node *parse_or(struct parser *p)
{
    return parse_chain(p, JN_OR, "or", parse_and);
}

static struct jinja_node *parse_expr(struct parser *p, int with_cond)
{
    if (++p->depth > MAX_DEPTH)
        return perr(p, cur(p)->line, "expression nested too deeply"), NULL;
    struct jinja_node *n = parse_or(p);
    while (n && with_cond && is_name(cur(p), "if")) {
        int line = cur(p)->line;
        p->pos++;
        struct jinja_node *cond = parse_or(p), *other = NULL;
        if (!cond)
            return NULL;
        if (is_name(cur(p), "else")) {
            p->pos++;
            if (!(other = parse_expr(p, 1)))
                return NULL;
        }
        struct jinja_node *x = node(p, JN_COND, line);
        if (!x)
            return NULL;
        x->a = cond;
        x->b = n;
        x->c = other;
        n = x;
    }
    p->depth--;
    return n;
}

/* ---- statements ---- */

static struct jinja_node *parse_body(struct parser *p, const char *const *ends, const char *opener,
                                     int open_line);

static int expect_block_end(struct parser *p)
{
    if (cur(p)->kind != T_BLOCK_END)
        return perr(p, cur(p)->line, "expected '%%}', got %s", tok_desc(p, cur(p)));
    p->pos++;
    return 0;
}

/* After parse_body stopped at `{% name`: consumes `{% name %}`. */
static int eat_end(struct parser *p, const char *name)
{
    p->pos++;
    if (!is_name(cur(p), name))
        return perr(p, cur(p)->line, "expected '%s'", name);
    p->pos++;
    return expect_block_end(p);
}

static int parse_target(struct parser *p, struct nvec *names)
{
    do {
        if (names->n)
            p->pos++;
        if (cur(p)->kind != T_NAME)
            return perr(p, cur(p)->line, "expected a variable name, got %s", tok_desc(p, cur(p)));
        if (nvec_push(names, NULL, tok_name(p, cur(p))))
            return -1;
        p->pos++;
    } while (is_op(cur(p), ","));
    return 0;
}

static struct jinja_node *parse_for(struct parser *p, int line)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const ends2[] = {"endfor", NULL};
    struct nvec names = {0};
    struct jinja_node *n = node(p, JN_FOR, line);
    if (!n || parse_target(p, &names))
        goto fail;
    if (!is_name(cur(p), "in")) {
        perr(p, cur(p)->line, "expected 'in' in a for loop");
        goto fail;
    }
    p->pos++;
    n->kwnames = nvec_names(p, &names);
    n->nkw = names.n;
    if (!(n->a = parse_expr(p, 0)))
        goto fail;
    if (is_name(cur(p), "if")) {
        p->pos++;
        if (!(n->d = parse_expr(p, 0)))
            goto fail;
    }
    if (is_name(cur(p), "recursive")) {
        perr(p, line, "unsupported construct: recursive for loops");
        goto fail;
    }
    p->loops++;
    n->b = expect_block_end(p) ? NULL : parse_body(p, ends, "for", line);
    p->loops--;
    if (!n->b)
        goto fail;
    if (is_name(peek(p, 1), "else")) {
        p->pos += 2;
        if (expect_block_end(p) || !(n->c = parse_body(p, ends2, "for", line)))
            goto fail;
    }
    if (eat_end(p, "endfor"))
        goto fail;
    nvec_free(&names);
    return n;
fail:
    nvec_free(&names);
    return NULL;
}

static struct jinja_node *parse_if(struct parser *p, int line)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends2[] = {"endif", NULL};
    struct jinja_node *n = node(p, JN_IF, line);
    if (!n || !(n->a = parse_expr(p, 1)) || expect_block_end(p) ||
        !(n->b = parse_body(p, ends, "if", line)))
        return NULL;
    struct tok *kw = peek(p, 1);
    if (is_name(kw, "elif")) {
        p->pos += 2;
        struct jinja_node *body = node(p, JN_BODY, kw->line);
        struct jinja_node *elif = parse_if(p, kw->line);
        if (!body || !elif)
            return NULL;
        body->kids = jinja_alloc(p->a, sizeof(*body->kids));
        if (!body->kids)
            return NULL;
        body->kids[0] = elif;
        body->nkids = 1;
        n->c = body;
        return n; /* the nested if ate the endif */
    }
    if (is_name(kw, "else")) {
        p->pos += 2;
        if (expect_block_end(p) || !(n->c = parse_body(p, ends2, "if", line)))
            return NULL;
    }
    return eat_end(p, "endif") ? NULL : n;
}

static struct jinja_node *parse_set(struct parser *p, int line)
{
    static const char *const ends[] = {"endset", NULL};
    struct nvec names = {0};
    struct jinja_node *n = node(p, JN_SET, line);
    if (!n)
        return NULL;
    if (cur(p)->kind == T_NAME && is_op(peek(p, 1), ".")) {
        n->name = tok_name(p, cur(p));
        if (peek(p, 2)->kind != T_NAME)
            return perr(p, line, "expected an attribute name in 'set'"), NULL;
        n->name2 = tok_name(p, peek(p, 2));
        p->pos += 3;
    } else {
        if (parse_target(p, &names))
            goto fail;
        n->kwnames = nvec_names(p, &names);
        n->nkw = names.n;
        n->name = names.names[0];
    }
    nvec_free(&names);
    if (is_op(cur(p), "=")) {
        p->pos++;
        if (!(n->a = parse_expr(p, 1)))
            return NULL;
        if (is_op(cur(p), ",")) {
            /* set a = 1, 2: a tuple */
            struct nvec items = {0};
            struct jinja_node *l = node(p, JN_LIST, line);
            if (!l || nvec_push(&items, n->a, NULL)) {
                nvec_free(&items);
                return NULL;
            }
            while (is_op(cur(p), ",")) {
                p->pos++;
                struct jinja_node *x = parse_expr(p, 1);
                if (!x || nvec_push(&items, x, NULL)) {
                    nvec_free(&items);
                    return NULL;
                }
            }
            l->op = 1;
            l->kids = nvec_nodes(p, &items);
            l->nkids = items.n;
            nvec_free(&items);
            n->a = l;
        }
        return expect_block_end(p) ? NULL : n;
    }
    if (n->name2 || n->nkw != 1)
        return perr(p, line, "a block 'set' takes one variable name"), NULL;
    if (is_op(cur(p), "|"))
        return perr(p, line, "unsupported construct: filtered block 'set'"), NULL;
    if (expect_block_end(p) || !(n->b = parse_body(p, ends, "set", line)) || eat_end(p, "endset"))
        return NULL;
    n->kind = JN_SETBLOCK;
    return n;
fail:
    nvec_free(&names);
    return NULL;
}

/* `macro name(a, b=default)` and `call(params) expr`: the parameter list after '('. */
static int parse_params(struct parser *p, struct jinja_node *n)
{
    struct nvec names = {0};
    int rc = -1;
    if (expect_op(p, "("))
        goto out;
    while (!is_op(cur(p), ")")) {
        if (names.n && expect_op(p, ","))
            goto out;
        if (cur(p)->kind != T_NAME) {
            perr(p, cur(p)->line, "expected a parameter name, got %s", tok_desc(p, cur(p)));
            goto out;
        }
        const char *name = tok_name(p, cur(p));
        struct jinja_node *dflt = NULL;
        p->pos++;
        if (is_op(cur(p), "=")) {
            p->pos++;
            if (!(dflt = parse_expr(p, 1)))
                goto out;
        }
        if (nvec_push(&names, dflt, name))
            goto out;
    }
    p->pos++;
    n->kwnames = nvec_names(p, &names);
    n->kwvals = nvec_nodes(p, &names);
    n->nkw = names.n;
    rc = n->kwnames && n->kwvals ? 0 : -1;
out:
    nvec_free(&names);
    return rc;
}

static struct jinja_node *parse_macro(struct parser *p, int line)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct jinja_node *n = node(p, JN_MACRO, line);
    if (!n)
        return NULL;
    if (cur(p)->kind != T_NAME)
        return perr(p, line, "expected a macro name"), NULL;
    n->name = tok_name(p, cur(p));
    p->pos++;
    int loops = p->loops;
    p->loops = 0;
    if (parse_params(p, n) || expect_block_end(p) || !(n->b = parse_body(p, ends, "macro", line)) ||
        eat_end(p, "endmacro"))
        return NULL;
    p->loops = loops;
    return n;
}

static struct jinja_node *parse_callblock(struct parser *p, int line)
{
    static const char *const ends[] = {"endcall", NULL};
    struct jinja_node *n = node(p, JN_CALLBLOCK, line);
    if (!n)
        return NULL;
    if (is_op(cur(p), "(") && parse_params(p, n))
        return NULL;
    if (!(n->a = parse_expr(p, 1)))
        return NULL;
    if (n->a->kind != JN_CALL)
        return perr(p, line, "expected a macro call after 'call'"), NULL;
    if (expect_block_end(p) || !(n->b = parse_body(p, ends, "call", line)) || eat_end(p, "endcall"))
        return NULL;
    return n;
}

static struct jinja_node *parse_filterblock(struct parser *p, int line)
{
    static const char *const ends[] = {"endfilter", NULL};
    struct jinja_node *n = node(p, JN_FILTERBLOCK, line);
    struct jinja_node *hole = node(p, JN_LIT, line); /* the body's text goes here */
    if (!n || !hole)
        return NULL;
    hole->op = 1;
    /* parse `name(args) | name2` as filters applied to the hole */
    p->pos--;
    cur(p)->kind = T_OP;
    cur(p)->s = "|";
    cur(p)->len = 1;
    n->a = parse_filters(p, hole);
    if (!n->a || expect_block_end(p) || !(n->b = parse_body(p, ends, "filter", line)) ||
        eat_end(p, "endfilter"))
        return NULL;
    return n;
}

static const char *const UNSUPPORTED[] = {"include", "import", "from",       "extends",
                                          "block",   "with",   "autoescape", "raw",
                                          "do",      "trans",  "pluralize",  NULL};

static struct jinja_node *parse_stmt(struct parser *p)
{
    struct tok *t = cur(p);
    int line = t->line;
    if (t->kind != T_NAME)
        return perr(p, line, "expected a statement name after '{%%', got %s", tok_desc(p, t)), NULL;
    p->pos++;
    if (is_name(t, "if"))
        return parse_if(p, line);
    if (is_name(t, "for"))
        return parse_for(p, line);
    if (is_name(t, "set"))
        return parse_set(p, line);
    if (is_name(t, "macro"))
        return parse_macro(p, line);
    if (is_name(t, "call"))
        return parse_callblock(p, line);
    if (is_name(t, "filter"))
        return parse_filterblock(p, line);
    if (is_name(t, "generation")) {
        /* transformers' AssistantTracker: the body renders as is */
        static const char *const ends[] = {"endgeneration", NULL};
        struct jinja_node *b;
        if (expect_block_end(p) || !(b = parse_body(p, ends, "generation", line)) ||
            eat_end(p, "endgeneration"))
            return NULL;
        return b;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loops)
            return perr(p, line, "'%s' outside a for loop",
                        is_name(t, "break") ? "break" : "continue"),
                   NULL;
        struct jinja_node *n = node(p, is_name(t, "break") ? JN_BREAK : JN_CONTINUE, line);
        return n && !expect_block_end(p) ? n : NULL;
    }
    for (int i = 0; UNSUPPORTED[i]; i++)
        if (is_name(t, UNSUPPORTED[i]))
            return perr(p, line, "unsupported construct '{%% %s %%}'", UNSUPPORTED[i]), NULL;
    char *name = jinja_strndup(p->a, t->s, t->len > 40 ? 40 : t->len);
    return perr(p, line, "unknown statement '{%% %s %%}' (or a block tag outside its block)",
                name ? name : "?"),
           NULL;
}

/* Statements up to `{% end... %}` (one of ends, not consumed) or the end of the template. */
static struct jinja_node *parse_body(struct parser *p, const char *const *ends, const char *opener,
                                     int open_line)
{
    struct nvec body = {0};
    struct jinja_node *res = NULL;
    if (++p->depth > MAX_DEPTH) {
        perr(p, open_line, "blocks nested too deeply");
        return NULL;
    }
    for (;;) {
        struct tok *t = cur(p);
        struct jinja_node *n = NULL;
        if (t->kind == T_EOF) {
            if (ends) {
                perr(p, open_line, "unclosed '{%% %s %%}' (missing '{%% %s %%}')", opener, ends[0]);
                goto out;
            }
            break;
        }
        if (t->kind == T_TEXT) {
            n = node(p, JN_TEXT, t->line);
            if (n)
                n->val = jv_str(p->a, t->s, t->len);
            p->pos++;
        } else if (t->kind == T_VAR_BEGIN) {
            p->pos++;
            n = node(p, JN_OUT, t->line);
            if (n && (n->a = parse_expr(p, 1)) && cur(p)->kind != T_VAR_END) {
                perr(p, cur(p)->line, "expected '}}', got %s", tok_desc(p, cur(p)));
                goto out;
            }
            p->pos++;
            if (n && !n->a)
                n = NULL;
        } else if (t->kind == T_BLOCK_BEGIN) {
            struct tok *nm = peek(p, 1);
            for (int i = 0; ends && ends[i]; i++)
                if (is_name(nm, ends[i])) {
                    res = node(p, JN_BODY, t->line);
                    goto done;
                }
            p->pos++;
            n = parse_stmt(p);
        } else {
            perr(p, t->line, "unexpected %s", tok_desc(p, t));
            goto out;
        }
        if (!n || nvec_push(&body, n, NULL))
            goto out;
    }
    res = node(p, JN_BODY, open_line);
done:
    if (res) {
        res->kids = nvec_nodes(p, &body);
        res->nkids = body.n;
        if (!res->kids)
            res = NULL;
    }
out:
    p->depth--;
    nvec_free(&body);
    return res;
}

int jinja_parse(const char *src, size_t len, struct jinja_tpl **out, char err[JINJA_ERR_LEN])
{
    struct jinja_tpl *tpl = calloc(1, sizeof(*tpl));
    struct parser p = {.src = src, .srclen = len, .err = err};
    int rc = JINJA_ENOMEM;
    err[0] = 0;
    *out = NULL;
    if (!tpl) {
        snprintf(err, JINJA_ERR_LEN, "out of memory");
        return rc;
    }
    tpl->arena.limit = 64u << 20;
    p.a = &tpl->arena;
    if (memchr(src, 0, len)) {
        rc = perr(&p, 1, "template contains a NUL byte");
        goto fail;
    }
    /* Jinja2 drops one newline at the end of the template (keep_trailing_newline=False) */
    if (len && src[len - 1] == '\n')
        len -= 1 + (len > 1 && src[len - 2] == '\r');
    p.srclen = len;
    if ((rc = lex(&p)))
        goto fail;
    p.pos = 0;
    tpl->root = parse_body(&p, NULL, NULL, 1);
    if (!tpl->root) {
        rc = JINJA_ESYNTAX;
        if (!err[0])
            snprintf(err, JINJA_ERR_LEN, "out of memory");
        goto fail;
    }
    free(p.t);
    *out = tpl;
    return JINJA_OK;
fail:
    if (!err[0])
        snprintf(err, JINJA_ERR_LEN, "out of memory");
    free(p.t);
    jinja_free(tpl);
    return rc ? rc : JINJA_ESYNTAX;
}

void jinja_free(struct jinja_tpl *tpl)
{
    if (!tpl)
        return;
    jinja_arena_release(&tpl->arena);
    free(tpl);
}
