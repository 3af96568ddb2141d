/*
 * api/dashboard.h — the dashboard's files, embedded into the binary at build time by
 * api/dashboard/embed.sh (the generated api/dashboard-assets.c), served by api/dashboard.c.
 */
#ifndef BD_API_DASHBOARD_H
#define BD_API_DASHBOARD_H

#include <stddef.h>

struct api_asset {
    const char *name;          /* "app.js": served as /dashboard/app.js */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* the file's bytes (NUL-terminated, len excludes it) */
    size_t len;                /* bytes */
    const char *etag;          /* "\"CRC-SIZE\"", quoted as HTTP wants */
};

/* NULL-name-terminated; const, generated. */
extern const struct api_asset api_dashboard_assets[];

/* The asset called `name`, or NULL. Returns a reference into the const table. */
const struct api_asset *api_dashboard_find(const char *name);

#endif
