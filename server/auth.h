/*
 * server/auth.h — API keys: creation and checking of `Authorization: Bearer <key>`.
 *
 * A key is "bd_" followed by 43 base64url characters (32 random bytes from OpenSSL's RAND).
 * Only its SHA-256 (hex) is stored; the secret is shown once, when created. While no key
 * exists the API is open (a fresh local install); once one exists every /v1 route needs one.
 * Scopes: `infer` may call inference routes, `admin` may call everything.
 */
#ifndef BD_SERVER_AUTH_H
#define BD_SERVER_AUTH_H

#include "jobs/store.h"

enum srv_scope { SRV_SCOPE_OPEN = 0, SRV_SCOPE_INFER = 1, SRV_SCOPE_ADMIN = 2 };

enum srv_auth_result {
    SRV_AUTH_OK = 0,
    SRV_AUTH_MISSING = -1,   /* no or malformed Authorization header: 401 */
    SRV_AUTH_INVALID = -2,   /* unknown or revoked key: 401 */
    SRV_AUTH_FORBIDDEN = -3, /* valid key, scope too small: 403 */
    SRV_AUTH_ERROR = -4,     /* database error: 500 */
};

/* Parse "admin" / "infer"; returns the scope or -1. */
int srv_scope_parse(const char *s);
const char *srv_scope_name(enum srv_scope scope);

/* SHA-256 of `key` as 64 lower-case hex characters plus NUL into hex[65]. */
void srv_auth_hash(const char *key, char hex[65]);

/*
 * Make a new key: fills secret[48] ("bd_..." NUL-terminated), and *rec (id, prefix, scope,
 * name, created_at) plus hash[65], ready for job_store_key_insert. Returns 0 or -1 (no entropy).
 */
int srv_auth_key_new(enum srv_scope scope, const char *name, char secret[48],
                     struct job_key *rec, char hash[65]);

/*
 * Check `authorization` (the header's value, may be NULL) against the store for a route that
 * needs `need`. Loop thread (reads only). On success fills *who if not NULL.
 */
enum srv_auth_result srv_auth_check(struct job_store *st, const char *authorization,
                                    enum srv_scope need, struct job_key *who);

#endif
