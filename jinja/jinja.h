/*
 * jinja/jinja.h — a Jinja2 template engine for chat templates (Hugging Face `chat_template`).
 *
 * It renders what real chat templates use, the way transformers' `apply_chat_template` does:
 * an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop controls, its own
 * `tojson` (ensure_ascii=False, indent, separators, sort_keys), `raise_exception` and
 * `strftime_now`. A template is parsed once (jinja_parse) and rendered any number of times, from
 * any number of threads at once (a rendering keeps all its state in its own arena).
 *
 * A construct the engine does not implement (include, extends, recursive loops, an unknown
 * filter, test or method, ...) is a parse error naming the construct and its line: a template is
 * refused, never rendered differently from Jinja2. docs/api.md lists what is supported.
 */
#ifndef BD_JINJA_JINJA_H
#define BD_JINJA_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#define JINJA_ERR_LEN 256

enum jinja_status {
    JINJA_OK = 0,
    JINJA_ESYNTAX = -1, /* parse error or unsupported construct */
    JINJA_ERENDER = -2, /* runtime error: undefined attribute, type error, ... */
    JINJA_ERAISE = -3,  /* the template called raise_exception(message) */
    JINJA_ELIMIT = -4,  /* output, memory, recursion or step limit reached */
    JINJA_ENOMEM = -5,
};

struct jinja_tpl;

/* Options of one rendering; zeroed fields take the defaults. */
struct jinja_opts {
    time_t now;        /* the time strftime_now formats (local time); 0: the current time */
    size_t max_output; /* bytes; default 4 MiB */
    size_t max_memory; /* bytes of the rendering's arena; default 256 MiB */
};

/* Parses `src` (len bytes, UTF-8). Returns JINJA_OK with *out owned by the caller (free with
 * jinja_free), or a negative status with a message in err ("line 3: unsupported construct
 * '{% include %}'"). */
int jinja_parse(const char *src, size_t len, struct jinja_tpl **out, char err[JINJA_ERR_LEN]);

/* Renders the template with the variables of the JSON object `ctx` (borrowed). Returns JINJA_OK
 * with *out a NUL-terminated string owned by the caller (free()) and its length in *out_len, or
 * a negative status with a message in err (for JINJA_ERAISE, the template's own message). */
int jinja_render(const struct jinja_tpl *tpl, const json_t *ctx, const struct jinja_opts *opts,
                 char **out, size_t *out_len, char err[JINJA_ERR_LEN]);

/* Frees a parsed template; NULL is a no-op. */
void jinja_free(struct jinja_tpl *tpl);

#endif
