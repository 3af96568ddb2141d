/*
 * api/error.c — the one error format of the API (OpenAI's): every non-2xx answer is
 * {"error":{"message": "...", "type": "...", "param": null|"...", "code": null|"..."}}.
 */
#include <stdarg.h>
#include <stdio.h>

#include "api/api.h"

const char *api_error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 429: return "rate_limit_error";
    case 503: return "unavailable_error";
    }
    return status >= 500 ? "server_error" : "invalid_request_error";
}

static const char *api_default_code(int status)
{
    switch (status) {
    case 400: return "invalid_request";
    case 401: return "invalid_api_key";
    case 403: return "insufficient_scope";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 409: return "conflict";
    case 413: return "request_too_large";
    case 414: return "uri_too_long";
    case 417: return "expectation_failed";
    case 422: return "unprocessable";
    case 429: return "rate_limited";
    case 431: return "headers_too_large";
    case 503: return "unavailable";
    case 505: return "http_version_not_supported";
    }
    return status >= 500 ? "internal_error" : NULL;
}

void api_error(struct srv_req *req, int status, const char *message, const char *param,
               const char *code)
{
    if (!code)
        code = api_default_code(status);
    json_t *err = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message",
                            message ? message : srv_status_text(status), "type",
                            api_error_type(status), "param", param, "code", code);
    if (!err) {
        static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                       "\"server_error\",\"param\":null,\"code\":null}}\n";
        srv_res_send(req, 500, "application/json", fallback, sizeof(fallback) - 1);
        return;
    }
    srv_res_json(req, status, err);
}

void api_errorf(struct srv_req *req, int status, const char *param, const char *code,
                const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_error(req, status, msg, param, code);
}

json_t *api_body_json(struct srv_req *req)
{
    size_t len;
    const char *body = srv_req_body(req, &len);
    json_error_t jerr;
    if (!len) {
        api_error(req, 400, "request body is empty: a JSON object is required", NULL,
                  "invalid_json");
        return NULL;
    }
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        api_errorf(req, 400, NULL, "invalid_json", "invalid JSON at line %d, column %d: %s",
                   jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        api_error(req, 400, "request body must be a JSON object", NULL, "invalid_json");
        return NULL;
    }
    return root;
}
