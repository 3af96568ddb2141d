/*
 * jinja/jinja_impl.h — internals shared by the jinja/ files: the arena, the value type, the
 * syntax tree and the render context.
 *
 * Memory: a parsed template lives in one arena (its nodes, names and literal values); a rendering
 * allocates every value in its own arena, freed in one go when it ends. Values are never freed
 * one by one and never shared between renderings, so there is no reference counting; lists and
 * dicts are immutable once built except namespace() objects, which `set ns.attr = v` changes in
 * place (Jinja2's sandbox forbids every other mutation).
 */
#ifndef BD_JINJA_IMPL_H
#define BD_JINJA_IMPL_H

#include <stdint.h>
#include <stdio.h>

#include "jinja/jinja.h"

/* ---- arena ---- */
struct jinja_arena {
    struct jinja_chunk *head;
    size_t used;  /* bytes handed out so far */
    size_t limit; /* 0: none */
};
void *jinja_alloc(struct jinja_arena *a, size_t n); /* zeroed; NULL when over the limit */
void jinja_arena_release(struct jinja_arena *a);
char *jinja_strndup(struct jinja_arena *a, const char *s, size_t n);

/* ---- values ---- */
enum jinja_type {
    JV_UNDEF = 0,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_FUNC
};

struct jinja_str {
    size_t len;
    char s[]; /* NUL-terminated UTF-8 */
};

struct jinja_val {
    uint8_t t;
    union {
        int b;
        int64_t i;
        double f;
        struct jinja_str *s;
        struct jinja_list *l;
        struct jinja_dict *d;
        struct jinja_func *fn;
        const char *undef_name; /* JV_UNDEF: the name that was missing, for messages */
    } u;
};
typedef struct jinja_val jv;

struct jinja_list {
    size_t n, cap;
    jv *v;
    int tuple; /* printed as (a, b) */
};

struct jinja_dict {
    size_t n, cap;
    jv *k, *v;
    int ns; /* a namespace() object: attributes assignable with set ns.x = ... */
};

struct jinja_node;
struct jinja_frame;
enum jinja_fkind { JF_MACRO, JF_CALLER, JF_GLOBAL, JF_METHOD, JF_CYCLE };
struct jinja_func {
    int kind;
    const char *name;              /* global or method name */
    jv self;                       /* JF_METHOD: the object; JF_CYCLE: the list */
    const struct jinja_node *node; /* JF_MACRO: the macro; JF_CALLER: the call block */
    struct jinja_frame *frame;     /* where it was defined */
};

/* ---- syntax tree ---- */
enum jinja_nkind {
    /* expressions */
    JN_LIT,
    JN_NAME,
    JN_ATTR,
    JN_ITEM,
    JN_SLICE,
    JN_CALL,
    JN_FILTER,
    JN_TEST,
    JN_NEG,
    JN_POS,
    JN_NOT,
    JN_AND,
    JN_OR,
    JN_BIN,
    JN_CMP,
    JN_COND,
    JN_LIST,
    JN_DICT,
    /* statements */
    JN_TEXT,
    JN_OUT,
    JN_IF,
    JN_FOR,
    JN_SET,
    JN_SETBLOCK,
    JN_MACRO,
    JN_CALLBLOCK,
    JN_FILTERBLOCK,
    JN_BREAK,
    JN_CONTINUE,
    JN_BODY
};

struct jinja_node {
    int kind;
    int op; /* JN_BIN/JN_CMP: the operator token; JN_TEST: 1 when negated */
    int line;
    const char *name;             /* NAME, ATTR, FILTER, TEST, SET target, MACRO name */
    const char *name2;            /* SET: the attribute of `set ns.attr` */
    jv val;                       /* LIT; TEXT: the text */
    struct jinja_node *a, *b, *c; /* operands; IF: cond/then/else; FOR: iter/body/else */
    struct jinja_node *d;         /* FOR: the inline `if` filter; SLICE: the step */
    struct jinja_node **kids;     /* args, list items, body statements, CMP operands */
    size_t nkids;
    const char **kwnames;       /* CALL/FILTER kwargs; MACRO/FOR/SET: parameter or target names */
    struct jinja_node **kwvals; /* CALL/FILTER kwargs; MACRO: defaults (NULL: none) */
    size_t nkw;
    int *cmpops; /* JN_CMP: nkids-1 operators */
};

struct jinja_tpl {
    struct jinja_arena arena;
    struct jinja_node *root;
};

/* ---- rendering ---- */
struct jinja_frame {
    struct jinja_frame *parent;
    struct jinja_dict *vars;
};

struct jinja_buf {
    char *p;
    size_t len, cap, max;
};

struct jinja_ctx {
    struct jinja_arena arena;
    struct jinja_frame *globals;
    const struct jinja_opts *opts;
    char *err;      /* JINJA_ERR_LEN */
    int status;     /* the error's status once set */
    int line;       /* the statement being rendered */
    int depth;      /* call depth */
    uint64_t steps; /* loop iterations and calls, bounded */
    int loopctl;    /* 1 break, 2 continue pending */
    jv hole;        /* {% filter %}: the body's text, read by the JN_LIT with op 1 */
};

/* Token codes shared by the parser and the evaluator (operators). */
enum jinja_op {
    JO_ADD = 1,
    JO_SUB,
    JO_MUL,
    JO_DIV,
    JO_FLOORDIV,
    JO_MOD,
    JO_POW,
    JO_CONCAT,
    JO_EQ,
    JO_NE,
    JO_LT,
    JO_LE,
    JO_GT,
    JO_GE,
    JO_IN,
    JO_NOTIN
};

/* value.c */
jv jv_none(void);
jv jv_bool(int b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_undef(const char *name);
jv jv_str(struct jinja_arena *a, const char *s, size_t n); /* JV_UNDEF when out of memory */
struct jinja_list *jv_list_new(struct jinja_arena *a, size_t cap);
int jv_list_push(struct jinja_arena *a, struct jinja_list *l, jv v);
struct jinja_dict *jv_dict_new(struct jinja_arena *a, size_t cap);
int jv_dict_set(struct jinja_arena *a, struct jinja_dict *d, jv k, jv v);
jv *jv_dict_get(const struct jinja_dict *d, jv k);
jv *jv_dict_gets(const struct jinja_dict *d, const char *k);
jv jv_from_json(struct jinja_arena *a, const json_t *j);
int jv_truthy(jv v);
int jv_equal(jv a, jv b);
int jv_compare(jv a, jv b, int *out); /* -1 when not orderable */
const char *jv_type_name(jv v);
size_t jinja_utf8_len(const char *s, size_t n);
size_t jinja_utf8_offset(const char *s, size_t n, size_t cp); /* byte offset of code point cp */

/* Growable output buffer; returns -1 when over max (or out of memory). */
int jinja_buf_put(struct jinja_buf *b, const char *s, size_t n);
int jinja_buf_putc(struct jinja_buf *b, char c);
/* str(v) into b (Python's str: None, True, 1.5, [1, 'a'], {'k': 'v'}); repr for items. */
int jv_write_str(struct jinja_buf *b, jv v);
int jv_write_repr(struct jinja_buf *b, jv v);
int jv_write_float(struct jinja_buf *b, double f);
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys): indent < 0 for none;
 * returns -1 on a value JSON cannot hold (message in *why). */
int jv_write_json(struct jinja_buf *b, jv v, int indent, const char *item_sep, const char *key_sep,
                  int sort_keys, int level, const char **why);
/* str(v) as a new arena string. */
jv jv_to_str(struct jinja_ctx *c, jv v);

/* parse.c */
int jinja_known_filter(const char *name);
int jinja_known_test(const char *name);
int jinja_known_method(const char *name);

/* render.c */
int jinja_fail(struct jinja_ctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int jinja_call_value(struct jinja_ctx *c, jv fn, jv *args, size_t nargs, const char **kwn, jv *kwv,
                     size_t nkw, jv *out);
int jinja_getattr(struct jinja_ctx *c, jv obj, const char *name, jv *out);

/* builtins.c */
int jinja_filter(struct jinja_ctx *c, const char *name, jv v, jv *args, size_t nargs,
                 const char **kwn, jv *kwv, size_t nkw, jv *out);
int jinja_test(struct jinja_ctx *c, const char *name, jv v, jv *args, size_t nargs, int *out);
int jinja_method(struct jinja_ctx *c, jv self, const char *name, jv *args, size_t nargs,
                 const char **kwn, jv *kwv, size_t nkw, jv *out);
int jinja_global(struct jinja_ctx *c, const char *name, jv *args, size_t nargs, const char **kwn,
                 jv *kwv, size_t nkw, jv *out);
int jinja_has_method(jv self, const char *name);

/* strings.c: Python's string operations on UTF-8 (case maps use the C.UTF-8 locale). */
enum jinja_case { JC_UPPER, JC_LOWER, JC_TITLE, JC_CAPITALIZE };
int jinja_str_case(struct jinja_ctx *c, jv s, int mode, jv *out);
/* strip(chars) on the given sides (1 left, 2 right, 3 both); chars undefined/None: whitespace */
int jinja_str_strip(struct jinja_ctx *c, jv s, jv chars, int sides, jv *out);
int jinja_str_replace(struct jinja_ctx *c, jv s, jv old, jv new_, int64_t count, jv *out);
/* keyword or positional argument `pos` named `name`; JV_UNDEF when absent */
jv jinja_arg(jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos,
             const char *name);

#endif
