/*
 * api/dashboard.c — the dashboard: GET / (index.html) and GET /dashboard/{file} (its ES modules
 * and style sheet), served from the const table the build embeds (api/dashboard.h). Open (no
 * key): the page asks for the key itself and sends it on the API calls it makes.
 *
 * Every answer carries an ETag (the file's CRC and size) and `Cache-Control: no-cache`, so a
 * browser revalidates and gets 304 when nothing changed; a Content-Security-Policy limits the
 * page to this origin, so it cannot load anything from elsewhere. Unknown files get 404.
 */
#include <string.h>

#include "api/api.h"
#include "api/dashboard.h"

/* Only this origin: scripts, styles, fetches. Images from data: URLs (the favicon). */
#define DASH_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const struct api_asset *api_dashboard_find(const char *name)
{
    for (const struct api_asset *a = api_dashboard_assets; a->name; a++)
        if (!strcmp(a->name, name))
            return a;
    return NULL;
}

/* Does If-None-Match (a list of quoted tags, or "*") name `etag`? */
static int etag_matches(const char *inm, const char *etag)
{
    size_t el = strlen(etag);
    if (!inm)
        return 0;
    for (const char *p = inm; *p;) {
        p += strspn(p, " \t,");
        if (!strncmp(p, "W/", 2))
            p += 2;
        if (*p == '*' || (!strncmp(p, etag, el) && (p[el] == 0 || p[el] == ',' || p[el] == ' ')))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

static void send_asset(struct srv_req *req, const struct api_asset *a)
{
    srv_res_header(req, "ETag", a->etag);
    srv_res_header(req, "Cache-Control", "no-cache");
    srv_res_header(req, "X-Content-Type-Options", "nosniff");
    if (etag_matches(srv_req_header(req, "If-None-Match"), a->etag)) {
        srv_res_send(req, 304, NULL, NULL, 0);
        return;
    }
    if (!strcmp(a->name, "index.html")) {
        srv_res_header(req, "Content-Security-Policy", DASH_CSP);
        srv_res_header(req, "Referrer-Policy", "no-referrer");
        srv_res_header(req, "X-Frame-Options", "DENY");
    }
    srv_res_send(req, 200, a->type, (const char *)a->data, a->len);
}

static void dashboard_index(struct srv_req *req, struct api_ctx *ctx)
{
    const struct api_asset *a = api_dashboard_find("index.html");
    (void)ctx;
    if (!a) {
        api_error(req, 404, "this bitdistilld was built without the dashboard", NULL, NULL);
        return;
    }
    send_asset(req, a);
}

static void dashboard_file(struct srv_req *req, struct api_ctx *ctx)
{
    const char *name = srv_req_param(req, "file");
    const struct api_asset *a = name ? api_dashboard_find(name) : NULL;
    (void)ctx;
    if (!a) {
        api_errorf(req, 404, "file", "not_found", "no dashboard file '%.100s'", name ? name : "");
        return;
    }
    send_asset(req, a);
}

const struct api_route api_route_dashboard_index = {"GET",          "/", "dashboard",
                                                    SRV_SCOPE_OPEN, 0,   dashboard_index};
const struct api_route api_route_dashboard_file = {
    "GET", "/dashboard/{file}", "dashboard_file", SRV_SCOPE_OPEN, 0, dashboard_file};
