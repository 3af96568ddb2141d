/*
 * tests/test-jinja.c — the Jinja2 engine against transformers.
 *
 * tests/fixtures/chat/expected.json was written by tools/make_chat_fixtures.py with
 * transformers' apply_chat_template (the file records the versions): the real chat templates of
 * Qwen3, Qwen2.5, Llama 3.1, Llama 3.2 and SmolLM2 (ChatML) over system, multi-turn, unicode,
 * tool-call, reasoning and chat_template_kwargs conversations, and small feature templates for
 * every filter, test, method and statement the engine claims. Each case is rendered here and
 * compared byte for byte; a case where transformers raised must fail here too. Then unit cases:
 * unsupported constructs, unclosed blocks and unknown filters are refused at parse time with the
 * construct and line in the message; raise_exception, strftime_now and the limits.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "jinja/jinja.h"
#include "tests/tap.h"

/* Llama 3.2's template calls strftime_now("%d %b %Y") when no date_string is given; the
 * fixtures were made on 2026-12-02 (tools/make_chat_fixtures.py ran then), so the test renders
 * at noon UTC of that day. */
#define FIXTURE_DAY 1796212800

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* The first differing byte, shown with some context. */
static void show_diff(const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    TAP_DIAG("first difference at byte %zu", i);
    TAP_DIAG("want: %.80s", want + from);
    TAP_DIAG("got:  %.80s", got + from);
}

static int render_str(const char *src, const char *ctx_json, char **out, char *err, int *status)
{
    struct jinja_tpl *t = NULL;
    json_t *ctx = json_loads(ctx_json ? ctx_json : "{}", 0, NULL);
    size_t len;
    struct jinja_opts o = {.now = FIXTURE_DAY, .max_memory = 32u << 20};
    *out = NULL;
    *status = jinja_parse(src, strlen(src), &t, err);
    if (*status == 0)
        *status = jinja_render(t, ctx, &o, out, &len, err);
    jinja_free(t);
    json_decref(ctx);
    return *status;
}

/* dir + "/" + name in a new string. */
static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void check_fixtures(const char *dir)
{
    char *path = join_path(dir, "expected.json");
    if (!path)
        return;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    int loaded = TAP_OK(root != NULL, "load %s (%s)", path, root ? "ok" : je.text);
    free(path);
    if (!loaded)
        return;
    json_t *made = json_object_get(root, "made_by");
    TAP_OK(json_is_string(json_object_get(made, "transformers")) &&
               !strcmp(json_string_value(json_object_get(made, "engine")), "transformers"),
           "fixtures were made by transformers %s (jinja2 %s)",
           json_string_value(json_object_get(made, "transformers")),
           json_string_value(json_object_get(made, "jinja2")));
    json_t *cases = json_object_get(root, "cases"), *cs;
    size_t i, n_ok = 0, n_real = 0;
    json_array_foreach(cases, i, cs)
    {
        const char *name = json_string_value(json_object_get(cs, "name"));
        const char *tname = json_string_value(json_object_get(cs, "template"));
        json_t *want = json_object_get(cs, "expected");
        char *src = NULL, err[JINJA_ERR_LEN], *out = NULL;
        size_t len = strlen(tname), olen;
        if (len > 6 && !strcmp(tname + len - 6, ".jinja")) {
            char *tp = join_path(dir, tname);
            src = tp ? read_file(tp, &len) : NULL;
            free(tp);
            n_real++;
        } else {
            src = strdup(tname);
        }
        struct jinja_tpl *t = NULL;
        struct jinja_opts o = {.now = FIXTURE_DAY};
        int rc = src ? jinja_parse(src, len, &t, err) : -1;
        if (rc == 0)
            rc = jinja_render(t, json_object_get(cs, "context"), &o, &out, &olen, err);
        if (want) {
            int same = rc == 0 && olen == json_string_length(want) &&
                       !memcmp(out, json_string_value(want), olen);
            if (!TAP_OK(same, "%s: byte-identical to transformers (%zu bytes)", name,
                        json_string_length(want))) {
                if (rc)
                    TAP_DIAG("error: %s", err);
                else
                    show_diff(json_string_value(want), out);
            }
            n_ok += same;
        } else {
            TAP_OK(rc != 0, "%s: fails as in transformers (%s) -> %s", name,
                   json_string_value(json_object_get(cs, "error")), rc ? err : "rendered!");
        }
        free(out);
        free(src);
        jinja_free(t);
    }
    TAP_DIAG("%zu of %zu fixtures identical (%zu on the real chat templates)", n_ok,
             json_array_size(cases), n_real);
    json_decref(root);
}

struct err_case {
    const char *src;
    int status;
    const char *must_contain[2];
};

static void check_errors(void)
{
    static const struct err_case cases[] = {
        {"{% include 'x.jinja' %}", JINJA_ESYNTAX, {"line 1", "include"}},
        {"a\nb\n{% extends 'base' %}", JINJA_ESYNTAX, {"line 3", "extends"}},
        {"{% for m in messages %}\n{{ m }}", JINJA_ESYNTAX, {"unclosed", "endfor"}},
        {"{% if x %}a{% else %}b", JINJA_ESYNTAX, {"unclosed", "endif"}},
        {"{{ x | frobnicate }}", JINJA_ESYNTAX, {"unknown filter", "frobnicate"}},
        {"\n{{ x is frobbed }}", JINJA_ESYNTAX, {"line 2", "unknown test 'frobbed'"}},
        {"{{ 'a'.zfill(3) }}", JINJA_ESYNTAX, {"unsupported method", "zfill"}},
        {"{% for x in y recursive %}{% endfor %}", JINJA_ESYNTAX, {"recursive", "line 1"}},
        {"{% break %}", JINJA_ESYNTAX, {"break", "outside"}},
        {"{{ 'abc }}", JINJA_ESYNTAX, {"unterminated string", "line 1"}},
        {"{{ x ", JINJA_ESYNTAX, {"unclosed tag", "}}"}},
        {"{# never closed", JINJA_ESYNTAX, {"unclosed comment", "#}"}},
        {"{% endfor %}", JINJA_ESYNTAX, {"unknown statement", "endfor"}},
        {"{{ raise_exception('bad role: ' ~ 'x') }}", JINJA_ERAISE, {"bad role: x", ""}},
        {"{{ missing.attr }}", JINJA_ERENDER, {"'missing' is undefined", ""}},
        {"{{ 1 + 'a' }}", JINJA_ERENDER, {"unsupported operand", "'int' and 'str'"}},
        {"{{ 'x' * 100000000 }}", JINJA_ELIMIT, {"too large", ""}},
        {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         JINJA_ELIMIT,
         {"", ""}},
        {"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", JINJA_ELIMIT, {"nested", ""}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[JINJA_ERR_LEN], *out;
        int st;
        render_str(cases[i].src, NULL, &out, err, &st);
        int ok = st == cases[i].status;
        for (int k = 0; k < 2; k++)
            ok = ok && strstr(err, cases[i].must_contain[k]) != NULL;
        TAP_OK(ok, "error case %zu refused with status %d: %s", i, st, err);
        free(out);
    }
}

static void check_units(void)
{
    char err[JINJA_ERR_LEN], *out;
    int st;
    /* strftime_now formats the given time (the reference is the C library's strftime) */
    setenv("TZ", "UTC", 1);
    tzset();
    render_str("{{ strftime_now('%Y-%m-%d %H:%M %b') }}", NULL, &out, err, &st);
    TAP_OK(st == 0 && !strcmp(out, "2026-12-02 12:00 Dec"), "strftime_now uses opts.now: %s",
           st ? err : out);
    free(out);
    /* a template renders from many threads: two renders of one parsed template agree */
    struct jinja_tpl *t;
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}"
                      "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}";
    json_t *ctx = json_pack("{s:[{s:s},{s:s}]}", "messages", "role", "user", "role", "bot");
    char *a = NULL, *b = NULL;
    size_t la, lb;
    st = jinja_parse(src, strlen(src), &t, err);
    if (!st)
        st = jinja_render(t, ctx, NULL, &a, &la, err) || jinja_render(t, ctx, NULL, &b, &lb, err);
    TAP_OK(st == 0 && !strcmp(a, "2") && !strcmp(b, "2"),
           "a parsed template renders again with fresh state (%s)", st ? err : a);
    free(a);
    free(b);
    jinja_free(t);
    json_decref(ctx);
    /* output limit */
    struct jinja_opts o = {.max_output = 100};
    src = "{% for i in range(50) %}abcd{% endfor %}";
    st = jinja_parse(src, strlen(src), &t, err);
    if (!st)
        st = jinja_render(t, NULL, &o, &a, &la, err);
    TAP_OK(st == JINJA_ELIMIT, "max_output refuses a 200-byte output at 100 (%s)", err);
    jinja_free(t);
    jinja_free(NULL);
}

int main(int argc, char **argv)
{
    const char *top = getenv("top_srcdir");
    char *dir = join_path(argc > 1 ? argv[1] : top ? top : ".", "tests/fixtures/chat");
    if (!dir)
        return 1;
    setenv("TZ", "UTC", 1);
    tzset();
    check_fixtures(dir);
    check_errors();
    check_units();
    free(dir);
    return tap_done();
}
