/*
 * train/chat_tpl.c — task examples through the base model's own chat template (the job's
 * "prompt_format": "chat_template", data.h): the template read from the checkpoint's
 * tokenizer_config.json (engine/chat.h), parsed once by jinja/ and rendered per example exactly
 * as the server renders a request for the student (engine/registry.c, eng_served_prompt).
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "engine/err.h"
#include "jinja/jinja.h"
#include "train/data.h"

struct trn_chat_tpl {
    char *text;            /* the template source (owned) */
    struct jinja_tpl *tpl; /* parsed (owned) */
    char *bos, *eos;       /* bos_token / eos_token text, or NULL (owned) */
};

static char *token_text(const struct eng_tok *tok, int32_t id)
{
    char *s = NULL;
    size_t n;
    if (id < 0 || eng_tok_decode(tok, &id, 1, 0, &s, &n))
        return NULL;
    return s;
}

/* c->text parsed, the special tokens' text found; `from` names its origin in messages. */
static int prepare(struct trn_chat_tpl *c, const char *from, const struct eng_tok *tok, int bos_id,
                   int eos_id, char *err)
{
    char jerr[JINJA_ERR_LEN];
    if (jinja_parse(c->text, strlen(c->text), &c->tpl, jerr))
        return eng_fail(err, ENG_ECONFIG,
                        "prompt_format \"chat_template\": the chat template "
                        "of '%s' cannot be rendered: %s",
                        from, jerr);
    c->bos = token_text(tok, bos_id);
    c->eos = token_text(tok, eos_id);
    return 0;
}

int trn_chat_tpl_parse(const char *text, const char *from, const struct eng_tok *tok, int bos_id,
                       int eos_id, struct trn_chat_tpl **out, char *err)
{
    struct trn_chat_tpl *c = calloc(1, sizeof(*c));
    int rc;
    *out = NULL;
    if (!c || !(c->text = strdup(text))) {
        free(c);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    if ((rc = prepare(c, from, tok, bos_id, eos_id, err))) {
        trn_chat_tpl_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int trn_chat_tpl_load(const char *dir, const struct eng_tok *tok, int bos_id, int eos_id,
                      struct trn_chat_tpl **out, char *err)
{
    struct trn_chat_tpl *c = calloc(1, sizeof(*c));
    int rc;
    *out = NULL;
    if (!c)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if ((rc = eng_chat_template_read(dir, &c->text, err)))
        goto fail;
    if (!c->text) {
        rc = eng_fail(err, ENG_ECONFIG,
                      "prompt_format \"chat_template\": the base model '%s' "
                      "has no chat_template in its tokenizer_config.json",
                      dir);
        goto fail;
    }
    if ((rc = prepare(c, dir, tok, bos_id, eos_id, err)))
        goto fail;
    *out = c;
    return 0;
fail:
    trn_chat_tpl_free(c);
    return rc;
}

void trn_chat_tpl_free(struct trn_chat_tpl *c)
{
    if (!c)
        return;
    jinja_free(c->tpl);
    free(c->text);
    free(c->bos);
    free(c->eos);
    free(c);
}

const char *trn_chat_tpl_text(const struct trn_chat_tpl *c)
{
    return c->text;
}

int trn_chat_render(const struct trn_chat_tpl *c, const char *user, const char *reply, char **out,
                    char *err)
{
    char jerr[JINJA_ERR_LEN];
    size_t len;
    *out = NULL;
    /* the context eng_chat_render gives a request (no tools, no kwargs) */
    json_t *ctx = json_pack("{s:[{s:s,s:s}],s:n,s:n,s:b}", "messages", "role", "user", "content",
                            user, "tools", "documents", "add_generation_prompt", reply == NULL);
    if (ctx && reply)
        json_array_append_new(json_object_get(ctx, "messages"),
                              json_pack("{s:s,s:s}", "role", "assistant", "content", reply));
    if (ctx && c->bos)
        json_object_set_new(ctx, "bos_token", json_string(c->bos));
    if (ctx && c->eos)
        json_object_set_new(ctx, "eos_token", json_string(c->eos));
    if (!ctx)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    int rc = jinja_render(c->tpl, ctx, NULL, out, &len, jerr);
    json_decref(ctx);
    if (rc == JINJA_ENOMEM)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if (rc)
        return eng_fail(err, ENG_EINVAL, "chat template: %s", jerr);
    return 0;
}

int trn_chat_reply(const struct trn_chat_tpl *c, const char *user, const char *reply, char **out,
                   char *err)
{
    char *prompt = NULL, *full = NULL;
    int rc;
    *out = NULL;
    if ((rc = trn_chat_render(c, user, NULL, &prompt, err)) ||
        (rc = trn_chat_render(c, user, reply, &full, err)))
        goto out;
    size_t pl = strlen(prompt);
    if (strncmp(full, prompt, pl)) {
        rc = eng_fail(err, ENG_ECONFIG,
                      "the chat template does not render an answer after its "
                      "generation prompt (the conversation with the assistant turn does not start "
                      "with the prompt rendered with add_generation_prompt)");
        goto out;
    }
    if (!(*out = strdup(full + pl)))
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
out:
    free(prompt);
    free(full);
    return rc;
}

int trn_task_chat_template(struct trn_task *t, const struct trn_chat_tpl *c, char *err)
{
    char *probe = NULL;
    int rc;
    if (t->chat)
        return eng_fail(err, ENG_ECONFIG,
                        "prompt_format \"chat_template\" applies to "
                        "classification and summarization tasks (a \"chat\" task's conversations "
                        "are written in ChatML)");
    /* the answer must follow the generation prompt, as it will when served */
    if ((rc = trn_chat_reply(c, "probe", "answer", &probe, err)))
        return rc;
    free(probe);
    t->chat_tpl = c;
    if (t->kind == TRN_TASK_CLS)
        for (int i = 0; i < t->nlabels; i++)
            if (t->words[i][0] == ' ')
                memmove(t->words[i], t->words[i] + 1, strlen(t->words[i]));
    return 0;
}
