/*
 * server/auth.h — API keys: creation and checking of `Authorization: Bearer <key>`.
 *
 * A key is "bd_" followed by 43 base64url characters (32 random bytes from OpenSSL's RAND).
 * Only its SHA-256 (hex) is stored; the secret is shown once, when created. While no key
 * exists the API is open (a fresh local install); once one exists every /v1 route needs one.
 * Scopes: `infer` may call inference routes, `admin` may call everything.
 *
 * Where keys are kept is not this file's business: srv_auth_check asks a keyring, two callbacks
 * the application supplies (api/ answers them from the SQLite store), so the HTTP library does
 * not depend on the database.
 */
#ifndef BD_SERVER_AUTH_H
#define BD_SERVER_AUTH_H

#include <stdint.h>

enum srv_scope { SRV_SCOPE_OPEN = 0, SRV_SCOPE_INFER = 1, SRV_SCOPE_ADMIN = 2 };

enum srv_auth_result {
    SRV_AUTH_OK = 0,
    SRV_AUTH_MISSING = -1,   /* no or malformed Authorization header: 401 */
    SRV_AUTH_INVALID = -2,   /* unknown or revoked key: 401 */
    SRV_AUTH_FORBIDDEN = -3, /* valid key, scope too small: 403 */
    SRV_AUTH_ERROR = -4,     /* database error: 500 */
};

/* One API key as the keyring reports it and as srv_auth_key_new makes it (never the secret). */
struct srv_key {
    char id[32];        /* "key_" + 16 hex */
    char name[128];     /* free text, may be empty */
    char scope[8];      /* "admin" or "infer" */
    char prefix[16];    /* first characters of the secret, for display */
    int64_t created_at; /* unix seconds */
};

/*
 * The key lookup srv_auth_check needs, supplied by the application; both callbacks run on the
 * loop thread and must not block. `ctx` is borrowed and passed back unchanged.
 */
struct srv_keyring {
    /* Number of active keys (>= 0), or a negative value when the lookup failed. */
    int (*count)(void *ctx);
    /*
     * Find the active key whose SHA-256 hex is `hash_hex` and fill *key: returns 0 when found,
     * 1 when there is none, a negative value when the lookup failed.
     */
    int (*find)(void *ctx, const char *hash_hex, struct srv_key *key);
    void *ctx;
};

/* Parse "admin" / "infer"; returns the scope or -1. */
int srv_scope_parse(const char *s);
const char *srv_scope_name(enum srv_scope scope);

/* SHA-256 of `key` as 64 lower-case hex characters plus NUL into hex[65]. */
void srv_auth_hash(const char *key, char hex[65]);

/*
 * Make a new key: fills secret[48] ("bd_..." NUL-terminated), and *rec (id, prefix, scope,
 * name, created_at) plus hash[65], ready to be stored. Returns 0 or -1 (no entropy).
 */
int srv_auth_key_new(enum srv_scope scope, const char *name, char secret[48], struct srv_key *rec,
                     char hash[65]);

/*
 * Check `authorization` (the header's value, may be NULL) against the keys of `keys` for a route
 * that needs `need`. Loop thread. On success fills *who if not NULL.
 */
enum srv_auth_result srv_auth_check(const struct srv_keyring *keys, const char *authorization,
                                    enum srv_scope need, struct srv_key *who);

#endif
