/*
 * api/infer.h — the inference routes' side of the engine scheduler.
 */
#ifndef BD_API_INFER_H
#define BD_API_INFER_H

#include "api/api.h"
#include "engine/registry.h"
#include "engine/sched.h"

/* Loop thread: hand every finished or progressing inference job to its request. */
void api_infer_drain(struct api_ctx *ctx);

#endif
