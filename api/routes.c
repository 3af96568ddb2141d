/*
 * api/routes.c — the route table: every endpoint the daemon serves, one line each.
 * Descriptors live beside their handlers; the order here is the matching order.
 */
#include "api/api.h"

extern const struct api_route api_route_livez, api_route_readyz, api_route_health,
    api_route_metrics;
extern const struct api_route api_route_keys_list, api_route_keys_create, api_route_keys_delete;
extern const struct api_route api_route_classify, api_route_summarize, api_route_completions,
    api_route_chat, api_route_apply_template;
extern const struct api_route api_route_vllm_classify, api_route_tei_predict;
extern const struct api_route api_route_models_list, api_route_models_get, api_route_tokenize,
    api_route_detokenize, api_route_models_activate, api_route_models_delete;
extern const struct api_route api_route_files_create, api_route_files_list, api_route_files_get,
    api_route_files_content, api_route_files_delete;
extern const struct api_route api_route_jobs_create, api_route_jobs_list, api_route_jobs_get,
    api_route_jobs_cancel, api_route_jobs_pause, api_route_jobs_resume, api_route_jobs_events,
    api_route_jobs_checkpoints;
extern const struct api_route api_route_dashboard_index, api_route_dashboard_file;

const struct api_route *const api_routes[] = {
    &api_route_livez,
    &api_route_readyz,
    &api_route_health,
    &api_route_metrics,
    &api_route_keys_list,
    &api_route_keys_create,
    &api_route_keys_delete,
    &api_route_classify,
    &api_route_summarize,
    &api_route_completions,
    &api_route_chat,
    &api_route_apply_template,
    &api_route_vllm_classify,
    &api_route_tei_predict,
    &api_route_models_list,
    &api_route_models_get,
    &api_route_models_activate,
    &api_route_models_delete,
    &api_route_files_create,
    &api_route_files_list,
    &api_route_files_get,
    &api_route_files_content,
    &api_route_files_delete,
    &api_route_jobs_create,
    &api_route_jobs_list,
    &api_route_jobs_get,
    &api_route_jobs_cancel,
    &api_route_jobs_pause,
    &api_route_jobs_resume,
    &api_route_jobs_events,
    &api_route_jobs_checkpoints,
    &api_route_tokenize,
    &api_route_detokenize,
    &api_route_dashboard_index,
    &api_route_dashboard_file,
    NULL,
};
