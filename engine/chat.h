/*
 * engine/chat.h — a model's chat template: read from an HF checkpoint's tokenizer_config.json,
 * carried in the student GGUF as `tokenizer.chat_template`, parsed at model load (jinja/) and
 * rendered for /v1/chat/completions and /apply-template as transformers' apply_chat_template
 * does (messages, tools, documents, add_generation_prompt, bos_token, eos_token, and the
 * request's chat_template_kwargs).
 */
#ifndef BD_ENGINE_CHAT_H
#define BD_ENGINE_CHAT_H

#include <jansson.h>

struct eng_served;

/* The `chat_template` of DIR/tokenizer_config.json: a string, or the list-of-named-templates
 * form ([{"name": "default", "template": ...}, ...], "default" taken). *out is malloc'd (caller
 * frees) or NULL when the file or the key is absent (returns 0); ENG_EFORMAT when the key has
 * another shape or the list has no "default". */
int eng_chat_template_read(const char *dir, char **out, char *err);

/* Parses s->meta.chat_template (when set) into s->chat, and finds the template's bos_token /
 * eos_token text from the model's special token ids. ENG_EUNSUPPORTED with the parser's message
 * ("chat template: line 3: unsupported construct '{% include %}'") when the template uses what
 * the engine does not implement. Called by eng_served_load. */
int eng_chat_prepare(struct eng_served *s, char *err);

/* Renders the model's chat template. messages, tools (may be NULL) and kwargs (may be NULL;
 * the request's chat_template_kwargs, each key a template variable) are borrowed. *out is
 * malloc'd. Returns 0; ENG_EMISSING when the model has no chat template; ENG_EINVAL when the
 * template rejects the input (raise_exception, an undefined attribute, ...) with its message. */
int eng_chat_render(const struct eng_served *s, const json_t *messages, const json_t *tools,
                    const json_t *kwargs, int add_generation_prompt, char **out, char *err);

#endif
