/*
 * cmd/keys_cli.c — `bitdistill keys` (create, list, revoke) and `bitdistill serve`.
 *
 * The key commands open the daemon's database directly (found through the same --config,
 * BITDISTILL_* environment and --data-dir/--db options as the daemon), so they work whether or
 * not the daemon runs: SQLite's WAL lets both write safely, and the daemon checks keys per
 * request, so a new key works at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "cmd/cli.h"
#include "cmd/daemon.h"
#include "server/auth.h"
#include "server/conf.h"
#include "store/store.h"

extern char **environ;

static void keys_usage(FILE *f)
{
    fprintf(f, "usage: bitdistill keys create --scope admin|infer [--name NAME] [DB OPTIONS]\n"
               "       bitdistill keys list [DB OPTIONS]\n"
               "       bitdistill keys revoke KEY_ID [DB OPTIONS]\n\n"
               "`create` prints the new secret key once, on stdout; only its SHA-256 is stored.\n"
               "DB OPTIONS (as for bitdistilld): --data-dir DIR, --db FILE, --config FILE.\n");
}

/* Open the store named by the daemon's options in argv (other options already removed). */
static struct store *keys_open(int argc, char **argv)
{
    struct srv_config cfg;
    char err[1024];
    struct store *st = NULL;
    char *db = NULL;
    if (srv_config_init(&cfg)) {
        fprintf(stderr, "bitdistill keys: out of memory\n");
        return NULL;
    }
    if (srv_config_load(&cfg, argc, argv, environ, err, sizeof(err))) {
        fprintf(stderr, "bitdistill keys: %s\n", err);
        goto out;
    }
    if (!(db = srv_config_db_path(&cfg)))
        goto out;
    if (!(st = store_open(db, err, sizeof(err))))
        fprintf(stderr, "bitdistill keys: %s\n", err);
out:
    free(db);
    srv_config_release(&cfg);
    return st;
}

int cmd_keys(int argc, char **argv)
{
    const char *scope = NULL, *name = "", *id = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0, rc = 1;
    struct store *st = NULL;

    if (!rest)
        return 1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        keys_usage(argc < 2 ? stderr : stdout);
        free(rest);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    rest[nrest++] = "bitdistill keys";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--scope") && i + 1 < argc)
            scope = argv[++i];
        else if (!strncmp(argv[i], "--scope=", 8))
            scope = argv[i] + 8;
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strncmp(argv[i], "--name=", 7))
            name = argv[i] + 7;
        else if (!strcmp(verb, "revoke") && !id && strncmp(argv[i], "--", 2))
            id = argv[i];
        else
            rest[nrest++] = argv[i];
    }
    if (!strcmp(verb, "create")) {
        if (!scope || srv_scope_parse(scope) < 0) {
            fprintf(stderr, "bitdistill keys create: --scope must be 'admin' or 'infer'\n");
            rc = 2;
            goto out;
        }
        if (!(st = keys_open(nrest, rest)))
            goto out;
        char secret[48], hash[65];
        struct srv_key made;
        struct store_key rec;
        if (srv_auth_key_new(srv_scope_parse(scope), name, secret, &made, hash)) {
            fprintf(stderr, "bitdistill keys create: no entropy available\n");
            goto out;
        }
        api_key_record(&made, &rec);
        int s = store_key_insert(st, &rec, hash);
        if (s) {
            fprintf(stderr, "bitdistill keys create: %s: %s\n", store_strerror(s),
                    store_errmsg(st));
            goto out;
        }
        printf("%s\n", secret);
        fprintf(stderr, "created %s (scope %s%s%s). This is the only time the key is shown.\n",
                rec.id, rec.scope, *name ? ", name " : "", name);
        memset(secret, 0, sizeof(secret));
        rc = 0;
    } else if (!strcmp(verb, "list")) {
        struct store_key *keys;
        size_t n;
        if (!(st = keys_open(nrest, rest)))
            goto out;
        if (store_key_list(st, 1, &keys, &n)) {
            fprintf(stderr, "bitdistill keys list: %s\n", store_errmsg(st));
            goto out;
        }
        printf("%-22s %-6s %-12s %-20s %s\n", "ID", "SCOPE", "PREFIX", "CREATED", "NAME");
        for (size_t i = 0; i < n; i++) {
            char when[32];
            time_t t = (time_t)keys[i].created_at;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%-22s %-6s %-12s %-20s %s\n", keys[i].id, keys[i].scope, keys[i].prefix, when,
                   keys[i].name);
        }
        free(keys);
        rc = 0;
    } else if (!strcmp(verb, "revoke")) {
        if (!id) {
            fprintf(stderr, "bitdistill keys revoke: which key? (an id from `keys list`)\n");
            rc = 2;
            goto out;
        }
        if (!(st = keys_open(nrest, rest)))
            goto out;
        int s = store_key_revoke(st, id);
        if (s) {
            fprintf(stderr, "bitdistill keys revoke: '%s': %s\n", id, store_strerror(s));
            goto out;
        }
        fprintf(stderr, "revoked %s\n", id);
        rc = 0;
    } else {
        fprintf(stderr, "bitdistill keys: unknown action '%s'\n", verb);
        keys_usage(stderr);
        rc = 2;
    }
out:
    store_free(st);
    free(rest);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    return cmd_daemon_main(argc, argv);
}
