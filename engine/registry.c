/*
 * engine/registry.c — see registry.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/chat.h"
#include "engine/classify.h"
#include "engine/err.h"
#include "engine/model_impl.h"
#include "engine/registry.h"
#include "jinja/jinja.h"

#define POOL_MAX 64 /* free contexts kept per model */

const char *eng_task_name(enum eng_task t)
{
    switch (t) {
    case ENG_TASK_CLASSIFICATION: return "classification";
    case ENG_TASK_SUMMARIZATION: return "summarization";
    default: return "generation";
    }
}

static void served_free(struct eng_served *s)
{
    for (int i = 0; i < s->npool; i++)
        eng_ctx_free(s->pool[i]);
    for (int i = 0; i < s->nscratch; i++)
        eng_ctx_free(s->scratch[i]);
    free(s->pool);
    if (s->pool_lock) {
        pthread_mutex_destroy(s->pool_lock);
        free(s->pool_lock);
    }
    free(s->label_rows);
    eng_student_meta_release(&s->meta);
    jinja_free(s->chat);
    free(s->bos_token);
    free(s->eos_token);
    eng_tok_free(s->tok);
    eng_model_free(s->model);
    free(s);
}

void eng_served_ref(struct eng_served *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void eng_served_unref(struct eng_served *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        served_free(s);
}

/* First token of each label word (the verbalizer scores that token, DESIGN.md §1). */
static int served_labels(struct eng_served *s, char *err)
{
    if (s->meta.nlabels <= 0)
        return 0;
    if (!(s->label_rows = calloc((size_t)s->meta.nlabels, sizeof(int32_t))))
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    for (int i = 0; i < s->meta.nlabels; i++) {
        const char *w = s->meta.label_words && s->meta.label_words[i] ? s->meta.label_words[i]
                                                                      : s->meta.labels[i];
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = eng_tok_encode(s->tok, w, strlen(w), &ids, &n);
        if (rc || n == 0) {
            free(ids);
            return eng_fail(err, ENG_EFORMAT, "label word '%s' of label '%s' does not tokenize", w,
                            s->meta.labels[i]);
        }
        s->label_rows[i] = ids[0];
        free(ids);
        for (int j = 0; j < i; j++)
            if (s->label_rows[j] == s->label_rows[i])
                return eng_fail(err, ENG_EFORMAT,
                                "labels '%s' and '%s' start with the same "
                                "token: the verbalizer cannot tell them apart",
                                s->meta.labels[j], s->meta.labels[i]);
    }
    return 0;
}

int eng_served_load(const char *path, const char *id, int max_context, struct eng_served **out,
                    char *err)
{
    struct stat sb;
    struct eng_served *s;
    int rc;

    *out = NULL;
    if (stat(path, &sb))
        return eng_fail(err, ENG_EIO, "model '%s' not found", path);
    if (!(s = calloc(1, sizeof(*s))))
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    s->refs = 1;
    snprintf(s->path, sizeof(s->path), "%s", path);
    if (id && *id) {
        snprintf(s->id, sizeof(s->id), "%s", id);
    } else {
        const char *b = strrchr(path, '/');
        b = b && b[1] ? b + 1 : path;
        snprintf(s->id, sizeof(s->id), "%s", b);
        char *dot = strstr(s->id, ".gguf");
        if (dot)
            *dot = 0;
    }
    if (!(s->pool_lock = malloc(sizeof(pthread_mutex_t)))) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_init(s->pool_lock, NULL);
    if (S_ISDIR(sb.st_mode)) {
        if ((rc = eng_model_load_hf(path, &s->model, err)))
            goto fail;
        if ((rc = eng_tok_load_json(path, &s->tok, err)) ||
            (rc = eng_chat_template_read(path, &s->meta.chat_template, err)))
            goto fail;
    } else {
        if ((rc = eng_student_load(path, &s->model, &s->tok, &s->meta, err)))
            goto fail;
        if (!s->tok) {
            rc = eng_fail(err, ENG_EMISSING, "student file '%s' has no tokenizer", path);
            goto fail;
        }
    }
    if ((rc = served_labels(s, err)) || (rc = eng_chat_prepare(s, err)))
        goto fail;
    if (s->meta.nlabels > 0)
        s->task = ENG_TASK_CLASSIFICATION;
    else if (s->meta.template)
        s->task = ENG_TASK_SUMMARIZATION;
    else
        s->task = ENG_TASK_GENERATION;
    int maxp = eng_model_config(s->model)->max_pos;
    s->max_context = max_context > 0 && max_context < maxp ? max_context : maxp;
    s->loaded_at = (double)time(NULL);
    s->resident_bytes = eng_model_resident_bytes(s->model);
    *out = s;
    return 0;
fail:
    served_free(s);
    return rc;
}

struct eng_ctx *eng_served_ctx_get(struct eng_served *s, int need)
{
    struct eng_ctx *c = NULL;
    int size = 64;
    if (need > s->max_context)
        return NULL;
    while (size < need)
        size *= 2;
    if (size > s->max_context)
        size = s->max_context;
    pthread_mutex_lock(s->pool_lock);
    for (int i = 0; i < s->npool; i++)
        if (s->pool[i]->max_t == size) {
            c = s->pool[i];
            s->pool[i] = s->pool[--s->npool];
            break;
        }
    pthread_mutex_unlock(s->pool_lock);
    if (!c && eng_ctx_create_kv(s->model, size, &c))
        return NULL;
    eng_ctx_reset(c);
    return c;
}

struct eng_ctx *eng_served_scratch_get(struct eng_served *s)
{
    struct eng_ctx *c = NULL;
    pthread_mutex_lock(s->pool_lock);
    if (s->nscratch > 0)
        c = s->scratch[--s->nscratch];
    pthread_mutex_unlock(s->pool_lock);
    if (!c && eng_ctx_create(s->model, 64 < s->max_context ? 64 : s->max_context, &c))
        return NULL;
    return c;
}

void eng_served_scratch_put(struct eng_served *s, struct eng_ctx *c)
{
    if (!c)
        return;
    pthread_mutex_lock(s->pool_lock);
    if (s->nscratch < (int)(sizeof(s->scratch) / sizeof(s->scratch[0]))) {
        s->scratch[s->nscratch++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(s->pool_lock);
    eng_ctx_free(c);
}

void eng_served_ctx_put(struct eng_served *s, struct eng_ctx *c)
{
    if (!c)
        return;
    pthread_mutex_lock(s->pool_lock);
    if (!s->pool)
        s->pool = calloc(POOL_MAX, sizeof(*s->pool));
    if (s->pool && s->npool < POOL_MAX) {
        s->pool[s->npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(s->pool_lock);
    eng_ctx_free(c);
}

/* prompt_format "chat_template": the filled task template p (consumed) as the user turn of the
 * model's chat template with add_generation_prompt, as the trainer rendered its examples
 * (train/chat_tpl.c). NULL when the template refuses it or out of memory. */
static char *chat_prompt(const struct eng_served *s, char *p)
{
    char err[ENG_ERR_LEN], *out = NULL;
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", p);
    if (msgs && eng_chat_render(s, msgs, NULL, NULL, 1, &out, err))
        out = NULL;
    json_decref(msgs);
    free(p);
    return out;
}

char *eng_served_prompt_pair(const struct eng_served *s, const char *a, size_t alen, const char *b,
                             size_t blen)
{
    const char *t = s->task == ENG_TASK_GENERATION ? NULL : s->meta.template;
    char *p = t ? eng_template_fill(t, a, alen, b, blen) : strndup(a, alen);
    if (p && t && s->meta.prompt_format && s->chat)
        return chat_prompt(s, p);
    return p;
}

char *eng_served_prompt(const struct eng_served *s, const char *input, size_t len)
{
    return eng_served_prompt_pair(s, input, len, NULL, 0);
}

int eng_served_is_pair(const struct eng_served *s)
{
    return s->task == ENG_TASK_CLASSIFICATION && eng_template_is_pair(s->meta.template);
}

/* ---- the registry ------------------------------------------------------------------------- */

struct eng_registry {
    pthread_mutex_t lock;
    struct eng_served **m;
    int n, cap;
    struct eng_served *active[3]; /* by task; borrowed from m */
    int next_version;
};

struct eng_registry *eng_registry_create(void)
{
    struct eng_registry *r = calloc(1, sizeof(*r));
    if (r)
        pthread_mutex_init(&r->lock, NULL);
    return r;
}

void eng_registry_free(struct eng_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        eng_served_unref(r->m[i]);
    free(r->m);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int reg_find(struct eng_registry *r, const char *id)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->m[i]->id, id))
            return i;
    return -1;
}

int eng_registry_add(struct eng_registry *r, struct eng_served *s)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (reg_find(r, s->id) >= 0) {
        rc = ENG_EINVAL;
    } else if (r->n == r->cap) {
        int ncap = r->cap ? r->cap * 2 : 8;
        struct eng_served **nm = realloc(r->m, (size_t)ncap * sizeof(*nm));
        if (!nm)
            rc = ENG_ENOMEM;
        else {
            r->m = nm;
            r->cap = ncap;
        }
    }
    if (!rc) {
        eng_served_ref(s);
        r->m[r->n++] = s;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int eng_registry_remove(struct eng_registry *r, const char *id)
{
    struct eng_served *gone = NULL;
    pthread_mutex_lock(&r->lock);
    int i = reg_find(r, id);
    if (i >= 0 && r->active[r->m[i]->task] != r->m[i]) {
        gone = r->m[i];
        r->m[i] = r->m[--r->n];
    }
    pthread_mutex_unlock(&r->lock);
    if (!gone)
        return ENG_EINVAL;
    eng_served_unref(gone);
    return 0;
}

int eng_registry_activate(struct eng_registry *r, const char *id)
{
    int rc = ENG_EINVAL;
    pthread_mutex_lock(&r->lock);
    int i = reg_find(r, id);
    if (i >= 0) {
        r->m[i]->version = ++r->next_version;
        r->active[r->m[i]->task] = r->m[i]; /* the swap: one pointer */
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

struct eng_served *eng_registry_get(struct eng_registry *r, const char *id)
{
    struct eng_served *s = NULL;
    pthread_mutex_lock(&r->lock);
    int i = reg_find(r, id);
    if (i >= 0) {
        s = r->m[i];
        eng_served_ref(s);
    }
    pthread_mutex_unlock(&r->lock);
    return s;
}

struct eng_served *eng_registry_active(struct eng_registry *r, enum eng_task task)
{
    pthread_mutex_lock(&r->lock);
    struct eng_served *s = r->active[task];
    if (s)
        eng_served_ref(s);
    pthread_mutex_unlock(&r->lock);
    return s;
}

int eng_registry_is_active(struct eng_registry *r, const struct eng_served *s)
{
    pthread_mutex_lock(&r->lock);
    int a = r->active[s->task] == s;
    pthread_mutex_unlock(&r->lock);
    return a;
}

int eng_registry_list(struct eng_registry *r, struct eng_served ***out, int *n)
{
    pthread_mutex_lock(&r->lock);
    struct eng_served **arr = calloc((size_t)(r->n ? r->n : 1), sizeof(*arr));
    if (!arr) {
        pthread_mutex_unlock(&r->lock);
        return ENG_ENOMEM;
    }
    for (int i = 0; i < r->n; i++) {
        arr[i] = r->m[i];
        eng_served_ref(arr[i]);
    }
    *n = r->n;
    pthread_mutex_unlock(&r->lock);
    *out = arr;
    return 0;
}

int eng_registry_count(struct eng_registry *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}
