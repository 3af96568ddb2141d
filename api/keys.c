/*
 * api/keys.c — API key management over HTTP (admin scope):
 *   GET    /v1/keys        -> {"object":"list","data":[{id,object,name,scope,prefix,created_at}]}
 *   POST   /v1/keys        {"scope":"admin"|"infer","name"?} -> 201 with the secret "key" (shown once)
 *   DELETE /v1/keys/{id}   -> {"id","object":"api_key","deleted":true}; 404 if unknown
 * Writes go to a worker thread (the store's writer); reads use the loop's reader connection.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

static int keyring_count(void *ctx)
{
    return store_key_count(ctx);
}

static int keyring_find(void *ctx, const char *hash_hex, struct srv_key *key)
{
    struct store_key rec;
    int rc = store_key_find(ctx, hash_hex, &rec);
    if (rc == STORE_ENOTFOUND)
        return 1;
    if (rc)
        return -1;
    memset(key, 0, sizeof(*key));
    memcpy(key->id, rec.id, sizeof(key->id));
    memcpy(key->name, rec.name, sizeof(key->name));
    memcpy(key->scope, rec.scope, sizeof(key->scope));
    memcpy(key->prefix, rec.prefix, sizeof(key->prefix));
    key->created_at = rec.created_at;
    return 0;
}

struct srv_keyring api_keyring(struct store *st)
{
    struct srv_keyring kr = {keyring_count, keyring_find, st};
    return kr;
}

void api_key_record(const struct srv_key *key, struct store_key *rec)
{
    memset(rec, 0, sizeof(*rec));
    memcpy(rec->id, key->id, sizeof(rec->id));
    memcpy(rec->name, key->name, sizeof(rec->name));
    memcpy(rec->scope, key->scope, sizeof(rec->scope));
    memcpy(rec->prefix, key->prefix, sizeof(rec->prefix));
    rec->created_at = key->created_at;
}

static json_t *key_json(const struct store_key *k)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "id", k->id, "object", "api_key", "name",
                     k->name, "scope", k->scope, "prefix", k->prefix, "created_at",
                     (json_int_t)k->created_at);
}

static void keys_list(struct srv_req *req, struct api_ctx *ctx)
{
    struct store_key *keys;
    size_t n;
    if (store_key_list(ctx->store, 0, &keys, &n)) {
        api_error(req, 500, "cannot list API keys: database error", NULL, NULL);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, key_json(&keys[i]));
    free(keys);
    srv_res_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

struct key_job {
    struct store *store;
    struct store_key rec;
    char secret[48];
    char hash[65];
    int rc;
};

static void key_insert_work(void *data)
{
    struct key_job *j = data;
    j->rc = store_key_insert(j->store, &j->rec, j->hash);
}

static void key_insert_done(struct srv_req *req, void *data, struct api_ctx *ctx)
{
    struct key_job *j = data;
    (void)ctx;
    if (j->rc) {
        api_errorf(req, 500, NULL, NULL, "cannot store the API key: %s", store_strerror(j->rc));
    } else {
        json_t *o = key_json(&j->rec);
        json_object_set_new(o, "key", json_string(j->secret));
        srv_res_json(req, 201, o);
    }
    memset(j->secret, 0, sizeof(j->secret));
    free(j);
}

static void keys_create(struct srv_req *req, struct api_ctx *ctx)
{
    json_t *body = api_body_json(req);
    if (!body)
        return;
    const char *scope = json_string_value(json_object_get(body, "scope"));
    json_t *jname = json_object_get(body, "name");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "scope") && strcmp(key, "name")) {
            api_errorf(req, 400, key, "unknown_parameter",
                       "unknown parameter '%s' (allowed: scope, name)", key);
            json_decref(body);
            return;
        }
    }
    if (!scope || srv_scope_parse(scope) < 0) {
        api_error(req, 400, "'scope' must be \"admin\" or \"infer\"", "scope", "invalid_scope");
        json_decref(body);
        return;
    }
    if (jname && (!json_is_string(jname) || json_string_length(jname) > 100)) {
        api_error(req, 400, "'name' must be a string of at most 100 bytes", "name", NULL);
        json_decref(body);
        return;
    }
    struct key_job *j = calloc(1, sizeof(*j));
    struct srv_key made;
    if (!j || srv_auth_key_new(srv_scope_parse(scope), jname ? json_string_value(jname) : "",
                               j->secret, &made, j->hash)) {
        free(j);
        json_decref(body);
        api_error(req, 500, "cannot create a key: no entropy or out of memory", NULL, NULL);
        return;
    }
    json_decref(body);
    api_key_record(&made, &j->rec);
    j->store = ctx->store;
    if (api_defer(req, ctx, key_insert_work, key_insert_done, j)) {
        free(j);
        api_error(req, 500, "cannot queue the database write", NULL, NULL);
    }
}

struct key_del {
    struct store *store;
    char id[64];
    int rc;
};

static void key_revoke_work(void *data)
{
    struct key_del *d = data;
    d->rc = store_key_revoke(d->store, d->id);
}

static void key_revoke_done(struct srv_req *req, void *data, struct api_ctx *ctx)
{
    struct key_del *d = data;
    (void)ctx;
    if (d->rc == STORE_ENOTFOUND)
        api_errorf(req, 404, "id", "key_not_found", "no API key '%s'", d->id);
    else if (d->rc)
        api_errorf(req, 500, NULL, NULL, "cannot revoke the key: %s", store_strerror(d->rc));
    else
        srv_res_json(req, 200,
                     json_pack("{s:s, s:s, s:b}", "id", d->id, "object", "api_key", "deleted", 1));
    free(d);
}

static void keys_delete(struct srv_req *req, struct api_ctx *ctx)
{
    const char *id = srv_req_param(req, "id");
    struct key_del *d = calloc(1, sizeof(*d));
    if (!d || strlen(id) >= sizeof(d->id)) {
        free(d);
        api_errorf(req, 404, "id", "key_not_found", "no API key '%.64s'", id);
        return;
    }
    d->store = ctx->store;
    strcpy(d->id, id);
    if (api_defer(req, ctx, key_revoke_work, key_revoke_done, d)) {
        free(d);
        api_error(req, 500, "cannot queue the database write", NULL, NULL);
    }
}

const struct api_route api_route_keys_list = {"GET",           "/v1/keys", "keys_list",
                                              SRV_SCOPE_ADMIN, 0,          keys_list};
const struct api_route api_route_keys_create = {"POST",          "/v1/keys", "keys_create",
                                                SRV_SCOPE_ADMIN, 4096,       keys_create};
const struct api_route api_route_keys_delete = {
    "DELETE", "/v1/keys/{id}", "keys_delete", SRV_SCOPE_ADMIN, 0, keys_delete};
