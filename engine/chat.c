/*
 * engine/chat.c — see chat.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "engine/err.h"
#include "engine/model_impl.h"
#include "engine/registry.h"
#include "jinja/jinja.h"

int eng_chat_template_read(const char *dir, char **out, char *err)
{
    char path[4096];
    json_error_t je;
    int rc = 0;
    *out = NULL;
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    json_t *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!root)
        return eng_fail(err, ENG_EFORMAT, "'%s': %s (line %d)", path, je.text, je.line);
    json_t *t = json_object_get(root, "chat_template");
    if (json_is_array(t)) {
        size_t i;
        json_t *e, *found = NULL;
        json_array_foreach(t, i, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (name && !strcmp(name, "default"))
                found = json_object_get(e, "template");
        }
        if (!json_is_string(found))
            rc = eng_fail(err, ENG_EFORMAT,
                          "'%s': chat_template is a list without a \"default\" "
                          "template",
                          path);
        t = found;
    } else if (t && !json_is_string(t) && !json_is_null(t)) {
        rc = eng_fail(err, ENG_EFORMAT,
                      "'%s': chat_template must be a string or a list of "
                      "{name, template}",
                      path);
    }
    if (!rc && json_is_string(t) && !(*out = strdup(json_string_value(t))))
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
    json_decref(root);
    return rc;
}

/* The text of special token `id` (NULL when there is none). */
static char *token_text(const struct eng_tok *tok, int32_t id)
{
    char *s = NULL;
    size_t n;
    if (!tok || id < 0 || eng_tok_decode(tok, &id, 1, 0, &s, &n))
        return NULL;
    return s;
}

int eng_chat_prepare(struct eng_served *s, char *err)
{
    char jerr[JINJA_ERR_LEN];
    if (!s->meta.chat_template)
        return 0;
    if (jinja_parse(s->meta.chat_template, strlen(s->meta.chat_template), &s->chat, jerr))
        return eng_fail(err, ENG_EUNSUPPORTED, "chat template of '%s': %s", s->path, jerr);
    const struct eng_config *c = eng_model_config(s->model);
    s->bos_token = token_text(s->tok, c->bos_id);
    s->eos_token = token_text(s->tok, c->eos_id);
    return 0;
}

int eng_chat_render(const struct eng_served *s, const json_t *messages, const json_t *tools,
                    const json_t *kwargs, int add_generation_prompt, char **out, char *err)
{
    char jerr[JINJA_ERR_LEN];
    size_t len;
    int rc;
    *out = NULL;
    if (!s->chat)
        return eng_fail(err, ENG_EMISSING,
                        "model '%s' has no chat template "
                        "(tokenizer.chat_template)",
                        s->id);
    json_t *ctx = json_object();
    if (!ctx)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    /* as transformers: kwargs first, then the fixed names (which win) */
    if (json_is_object(kwargs))
        json_object_update(ctx, (json_t *)kwargs);
    json_object_set(ctx, "messages", (json_t *)messages);
    json_object_set_new(ctx, "tools", tools ? json_incref((json_t *)tools) : json_null());
    json_object_set_new(ctx, "documents", json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt));
    if (s->bos_token && !json_object_get(ctx, "bos_token"))
        json_object_set_new(ctx, "bos_token", json_string(s->bos_token));
    if (s->eos_token && !json_object_get(ctx, "eos_token"))
        json_object_set_new(ctx, "eos_token", json_string(s->eos_token));
    rc = jinja_render(s->chat, ctx, NULL, out, &len, jerr);
    json_decref(ctx);
    if (rc == JINJA_ENOMEM)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if (rc)
        return eng_fail(err, ENG_EINVAL, "chat template: %s", jerr);
    return 0;
}
