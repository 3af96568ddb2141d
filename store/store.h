/*
 * store/store.h — the daemon's state in one SQLite database (WAL mode).
 *
 * Schema changes are migrations numbered by `PRAGMA user_version`: opening a database applies
 * every migration above its version, each in its own transaction, so an old database is brought
 * forward and a new one is created from nothing. A database newer than this binary is refused.
 *
 * Threads: the store holds two connections. `read` functions use the reader connection and are
 * called from the loop thread only (WAL readers never wait for the writer). `write` functions
 * use the writer connection under a mutex and may wait (busy timeout 5 s): call them from worker
 * threads (uv_queue_work) or from the CLI, never from the loop thread.
 */
#ifndef BD_STORE_STORE_H
#define BD_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

enum store_status {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1,
    STORE_EEXIST = -2,
    STORE_EIO = -3,      /* SQLite error; see store_errmsg */
    STORE_EVERSION = -4, /* database written by a newer bitdistill */
    STORE_ENOMEM = -5,
};

/*
 * Open (creating it and its directory if missing) the database at `path`, switch it to WAL and
 * apply pending migrations. Returns a new store or NULL with a message in err.
 */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_free(struct store *st);

typedef struct sqlite3 sqlite3;

/* The reader connection: loop thread only, reads only. */
sqlite3 *store_reader(struct store *st);
/*
 * Run fn(writer, arg) inside one IMMEDIATE transaction on the writer connection (committed when
 * fn returns 0, rolled back otherwise). May wait: not on the loop thread (see store/writer.h).
 */
int store_write(struct store *st, int (*fn)(sqlite3 *db, void *arg), void *arg);

/* The schema version after migrations (PRAGMA user_version). */
int store_schema_version(struct store *st);
/* The last error message (valid until the next call on the same connection). */
const char *store_errmsg(struct store *st);
const char *store_strerror(int status);

/* API keys. `hash_hex` is the lower-case SHA-256 hex (64 chars) of the secret key. */
struct store_key {
    char id[32];        /* "key_" + 16 hex */
    char name[128];     /* free text, may be empty */
    char scope[8];      /* "admin" or "infer" */
    char prefix[16];    /* first characters of the secret, for display */
    int64_t created_at; /* unix seconds */
};

/* write: insert a key. Returns OK or EEXIST (same hash) or EIO. */
int store_key_insert(struct store *st, const struct store_key *key, const char *hash_hex);
/* write: revoke a key by id. Returns OK or ENOTFOUND. */
int store_key_revoke(struct store *st, const char *id);
/* read: number of active keys (>= 0) or a negative status. */
int store_key_count(struct store *st);
/*
 * read: find the active key whose hash equals hash_hex (compared in constant time after the
 * indexed lookup). Fills *key. Returns OK or ENOTFOUND.
 */
int store_key_find(struct store *st, const char *hash_hex, struct store_key *key);
/*
 * read: list active keys, oldest first. *keys is a new array of *n entries the caller frees.
 * `use_writer` selects the writer connection (for the CLI and worker threads).
 */
int store_key_list(struct store *st, int use_writer, struct store_key **keys, size_t *n);

#endif
