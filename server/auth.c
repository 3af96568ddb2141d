/*
 * server/auth.c — see auth.h.
 */
#include "server/auth.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/sha256.h"

int srv_scope_parse(const char *s)
{
    if (!strcmp(s, "admin"))
        return SRV_SCOPE_ADMIN;
    if (!strcmp(s, "infer"))
        return SRV_SCOPE_INFER;
    return -1;
}

const char *srv_scope_name(enum srv_scope scope)
{
    return scope == SRV_SCOPE_ADMIN ? "admin" : scope == SRV_SCOPE_INFER ? "infer" : "open";
}

void srv_auth_hash(const char *key, char hex[65])
{
    util_sha256_hex(key, strlen(key), hex);
}

int srv_auth_key_new(enum srv_scope scope, const char *name, char secret[48], struct srv_key *rec,
                     char hash[65])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[32], idraw[8];
    if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(idraw, sizeof(idraw)) != 1)
        return -1;
    /* 32 bytes -> 43 base64url characters without padding (6 bits each, 256 bits). */
    int n = 0;
    memcpy(secret, "bd_", 3);
    n = 3;
    unsigned int acc = 0;
    int bits = 0;
    for (int i = 0; i < 32; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            secret[n++] = b64[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits)
        secret[n++] = b64[(acc << (6 - bits)) & 63];
    secret[n] = 0;
    memset(rec, 0, sizeof(*rec));
    int m = snprintf(rec->id, sizeof(rec->id), "key_");
    for (int i = 0; i < 8; i++)
        m += snprintf(rec->id + m, sizeof(rec->id) - m, "%02x", idraw[i]);
    snprintf(rec->name, sizeof(rec->name), "%s", name ? name : "");
    snprintf(rec->scope, sizeof(rec->scope), "%s", srv_scope_name(scope));
    snprintf(rec->prefix, sizeof(rec->prefix), "%.10s", secret);
    rec->created_at = (int64_t)time(NULL);
    srv_auth_hash(secret, hash);
    return 0;
}

enum srv_auth_result srv_auth_check(const struct srv_keyring *keys, const char *authorization,
                                    enum srv_scope need, struct srv_key *who)
{
    struct srv_key key;
    char hash[65];

    if (need == SRV_SCOPE_OPEN)
        return SRV_AUTH_OK;
    int n = keys->count(keys->ctx);
    if (n < 0)
        return SRV_AUTH_ERROR;
    if (n == 0)
        return SRV_AUTH_OK; /* no keys yet: open */
    if (!authorization || strncasecmp(authorization, "Bearer ", 7))
        return SRV_AUTH_MISSING;
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (!*tok || strlen(tok) > 256)
        return SRV_AUTH_INVALID;
    srv_auth_hash(tok, hash);
    int rc = keys->find(keys->ctx, hash, &key);
    if (rc == 1)
        return SRV_AUTH_INVALID;
    if (rc)
        return SRV_AUTH_ERROR;
    if (srv_scope_parse(key.scope) < (int)need)
        return SRV_AUTH_FORBIDDEN;
    if (who)
        *who = key;
    return SRV_AUTH_OK;
}
