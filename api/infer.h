/*
 * api/infer.h — the inference routes' side of the engine scheduler.
 */
#ifndef BD_API_INFER_H
#define BD_API_INFER_H

#include "api/api.h"
#include "engine/registry.h"
#include "engine/sched.h"

/* Load (in the background) model `id` from `path` into the registry and, with activate, make it
 * the active model of its task and record that in the store. Loop thread. */
void api_models_load(struct api_ctx *ctx, const char *id, const char *path, int activate);
/* Start-up: load the models the store says were active. */
void api_models_restore(struct api_ctx *ctx);

/* A classification answered in another project's shape (api/compat.c). */
struct api_infer_shape {
    /* The 200 answer of finished job j (timing headers already set); arg is the one given to
     * api_infer_classify_submit, borrowed (freed after). */
    void (*answer)(struct srv_req *req, const struct eng_request *j, long created, void *arg);
};
/* Answers 400 naming the first key of body not in `allowed` (NULL-terminated); returns -1 then. */
int api_infer_only_keys(struct srv_req *req, json_t *body, const char *const *allowed);
/* Optional boolean body[name] into *out; answers 400 naming it and returns -1 if not one. */
int api_infer_get_bool(struct srv_req *req, json_t *body, const char *name, int *out);
/* /v1/classify's `input`: a string or 1-256 strings, borrowed from body into texts[256]; answers
 * 400/413 naming it and returns -1 on error. */
int api_infer_inputs(struct srv_req *req, json_t *body, json_t **texts, size_t *n);
/* /v1/classify's optional `text_pair`: absent (*has = 0), or the second texts of sentence pairs
 * shaped as `input` (a string for a string, a list of as many strings for a list), borrowed into
 * texts_b[n]. Answers 400 naming it and returns -1 on error. */
int api_infer_text_pairs(struct srv_req *req, json_t *body, json_t **texts_b, size_t n, int *has);
/* /v1/classify's model choice (body's `model` or the active classifier) and a classify job with
 * copies of texts[0..n) and, where texts_b (NULL or [n]) has a string, the second text of that
 * sentence pair. A model whose template has {text_b} needs a second text for every input, one
 * with only {text} takes none: else 400 naming pair_field, its message saying how to send one
 * (pair_how, e.g. "'text_pair'"). Answers 400/404/500/503 and returns NULL on failure. */
struct eng_request *api_infer_classify_job(struct srv_req *req, struct api_ctx *ctx, json_t *body,
                                           json_t *const *texts, json_t *const *texts_b, size_t n,
                                           const char *pair_field, const char *pair_how);
/* Queue classification `job` (inputs set) for req, to be answered by shape->answer(arg) (or an
 * error as every other route: 429 queue full, the engine's 400/500). Takes job and arg (a
 * malloc'd block, freed with free()). */
void api_infer_classify_submit(struct srv_req *req, struct api_ctx *ctx, struct eng_request *job,
                               const struct api_infer_shape *shape, void *arg);

/* Loop thread: hand every finished or progressing inference job to its request, then move
 * requests waiting for a place into the engine's queue. */
void api_infer_drain(struct api_ctx *ctx);
/* Loop thread, at exit: refuse the requests still waiting for a place (429) and close the
 * timer that bounds their wait. */
void api_infer_close(struct api_ctx *ctx);

#endif
