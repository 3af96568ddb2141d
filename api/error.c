/*
 * api/error.c — the one error format of the API (OpenAI's): every non-2xx answer is
 * {"error":{"message": "...", "type": "...", "param": null|"...", "code": null|"..."}}.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "engine/err.h"

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

int api_eng_http_status(int eng_status)
{
    switch (eng_status) {
    case ENG_OK: return 200;
    case ENG_EINVAL:
    case ENG_ERANGE: return 400;
    }
    return 500;
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

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        unsigned char lo = s[0] == 0xE0 ? 0xA0 : 0x80, hi = s[0] == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        unsigned char lo = s[0] == 0xF0 ? 0x90 : 0x80, hi = s[0] == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/*
 * A copy of s (malloc'd; NULL for NULL or no memory) with every byte that does not belong to a
 * valid UTF-8 sequence replaced by '?'. Messages quote request input (paths, names, values) and
 * are cut to fit buffers, and jansson refuses strings that are not UTF-8.
 */
static char *utf8_clean(const char *s)
{
    if (!s)
        return NULL;
    char *out = strdup(s);
    if (!out)
        return NULL;
    for (unsigned char *p = (unsigned char *)out; *p;) {
        size_t n = utf8_seq(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
    return out;
}

void api_error(struct srv_req *req, int status, const char *message, const char *param,
               const char *code)
{
    char *msg = utf8_clean(message ? message : srv_status_text(status));
    if (msg && api_compat_error(req, status, msg, code)) { /* a route with another shape */
        free(msg);
        return;
    }
    if (!code)
        code = api_default_code(status);
    char *par = utf8_clean(param);
    json_t *err = msg && (par || !param)
                      ? json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", msg, "type",
                                  api_error_type(status), "param", par, "code", code)
                      : NULL;
    free(msg);
    free(par);
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
    /* jansson does not always say when it ran out of memory (a failed string allocation reads
     * as a syntax error): a body that parses on a second try failed for want of memory. */
    int oom = !root && (json_error_code(&jerr) == json_error_out_of_memory || jerr.line < 0);
    if (!root && !oom) {
        json_t *again = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        oom = again != NULL || json_error_code(&jerr) == json_error_out_of_memory;
        json_decref(again);
    }
    if (oom) {
        api_error(req, 500, "out of memory while parsing the request body", NULL, NULL);
        return NULL;
    }
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
