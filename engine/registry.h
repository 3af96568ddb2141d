/*
 * engine/registry.h — models loaded for serving, reference-counted, and which one is active.
 *
 * An eng_served is one loaded model with what serving needs beside the weights: its tokenizer,
 * task (classification, summarization, or plain generation), prompt template, label words and
 * the first token of each label word, and a pool of inference contexts (KV caches). It is
 * immutable once loaded, shared by every request that uses it, and freed when its last
 * reference drops — so a hot-swap is: load the new one, then swap the registry's pointer; the
 * requests in flight finish on the model they started with.
 *
 * The registry maps ids to served models and keeps one active model per task. All functions are
 * thread-safe (one mutex); functions returning a model return a new reference.
 */
#ifndef BD_ENGINE_REGISTRY_H
#define BD_ENGINE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"

enum eng_task { ENG_TASK_GENERATION = 0, ENG_TASK_CLASSIFICATION = 1, ENG_TASK_SUMMARIZATION = 2 };

const char *eng_task_name(enum eng_task t);

struct jinja_tpl;

struct eng_served {
    char id[128];    /* registry id, e.g. "sst2-student" */
    char path[1024]; /* GGUF file or HF directory it came from */
    enum eng_task task;
    int version;                  /* bumped each time the registry activates a model */
    struct eng_model *model;      /* owned */
    struct eng_tok *tok;          /* owned */
    struct eng_student_meta meta; /* template, labels (may be empty for an FP directory) */
    struct jinja_tpl *chat;       /* meta.chat_template parsed (engine/chat.h) or NULL; owned */
    char *bos_token, *eos_token;  /* the special tokens' text for the chat template, or NULL */
    int32_t *label_rows;          /* [meta.nlabels] first token of each label word */
    int max_context;              /* positions a request may use */
    double loaded_at;             /* unix seconds */
    size_t resident_bytes;
    /* private: */
    int refs;
    void *pool_lock;
    struct eng_ctx **pool; /* free KV-only contexts */
    int npool;
    struct eng_ctx *scratch[2]; /* free pass contexts (buffers + kernel pool) */
    int nscratch;
};

/*
 * Load a student GGUF file or an FP Hugging Face directory for serving. `id` names it (NULL:
 * the file's base name). max_context caps the positions per request (0: the model's own).
 * Returns 0 and a served model with one reference, or a status with the reason in err.
 */
int eng_served_load(const char *path, const char *id, int max_context, struct eng_served **out,
                    char *err);
void eng_served_ref(struct eng_served *s);
void eng_served_unref(struct eng_served *s);

/*
 * A KV-only context (eng_ctx_create_kv) with room for at least `need` positions (pooled by
 * power-of-two size classes from 64 up to max_context), reset; NULL when need > max_context or
 * out of memory. Return it with eng_served_ctx_put.
 */
struct eng_ctx *eng_served_ctx_get(struct eng_served *s, int need);
void eng_served_ctx_put(struct eng_served *s, struct eng_ctx *c);

/* A context for running passes (buffers and the kernel thread pool), from a small pool. */
struct eng_ctx *eng_served_scratch_get(struct eng_served *s);
void eng_served_scratch_put(struct eng_served *s, struct eng_ctx *c);

/*
 * The prompt of `input` for this model's task: the template with {text} replaced (the input
 * unchanged for plain generation); for a student trained with prompt_format "chat_template"
 * that text is then the user turn of the model's chat template rendered with
 * add_generation_prompt, as its training examples were. Returns a new string or NULL.
 */
char *eng_served_prompt(const struct eng_served *s, const char *input, size_t len);
/* The same for a sentence-pair task: {text} <- a[0..alen), {text_b} <- b[0..blen) (b NULL:
 * nothing), by the trainer's filling rule (eng_template_fill). */
char *eng_served_prompt_pair(const struct eng_served *s, const char *a, size_t alen, const char *b,
                             size_t blen);
/* 1 for a classification model whose template has a {text_b} slot: every input is a pair. */
int eng_served_is_pair(const struct eng_served *s);

struct eng_registry;

struct eng_registry *eng_registry_create(void);
void eng_registry_free(struct eng_registry *r);

/* Add a model (the registry takes its own reference). EEXIST-like ENG_EINVAL for a taken id. */
int eng_registry_add(struct eng_registry *r, struct eng_served *s);
/* Remove by id (ENG_EINVAL if active: deactivate first). */
int eng_registry_remove(struct eng_registry *r, const char *id);
/* Make `id` the active model of its task; returns 0 or ENG_EINVAL (unknown id). */
int eng_registry_activate(struct eng_registry *r, const char *id);
/* A model by id, or NULL. New reference. */
struct eng_served *eng_registry_get(struct eng_registry *r, const char *id);
/* The active model of a task, or NULL. New reference. */
struct eng_served *eng_registry_active(struct eng_registry *r, enum eng_task task);
/* Whether `s` is the active model of its task. */
int eng_registry_is_active(struct eng_registry *r, const struct eng_served *s);
/* Every model (new references, caller unrefs each and frees the array). */
int eng_registry_list(struct eng_registry *r, struct eng_served ***out, int *n);
/* Number of models. */
int eng_registry_count(struct eng_registry *r);

#endif
