/*
 * api/query.c — reading a request's query string: percent-decoding and named parameters.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t api_url_decode(const char *src, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        char c = src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            c = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        }
        out[o++] = c;
    }
    if (outlen)
        out[o] = 0;
    return o;
}

const char *api_query_param(const char *q, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && !strncmp(q, name, nl) && q[nl] == '=') {
            api_url_decode(q + nl + 1, len - nl - 1, out, outlen);
            return out;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

long api_query_long(const char *q, const char *name, long def)
{
    char v[32];
    return api_query_param(q, name, v, sizeof(v)) ? strtol(v, NULL, 10) : def;
}
