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

/* Loop thread: hand every finished or progressing inference job to its request, then move
 * requests waiting for a place into the engine's queue. */
void api_infer_drain(struct api_ctx *ctx);
/* Loop thread, at exit: refuse the requests still waiting for a place (429) and close the
 * timer that bounds their wait. */
void api_infer_close(struct api_ctx *ctx);

#endif
