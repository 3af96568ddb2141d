/*
 * server/conf.h — the daemon's configuration: one option table, three sources.
 *
 * Precedence, lowest to highest: built-in defaults, the JSON config file (`--config FILE`, keys
 * are the long option names without dashes, e.g. {"port": 8080, "max-body-size": "8M"}), the
 * environment (`BITDISTILL_<NAME>` with dashes as underscores, e.g. BITDISTILL_MAX_BODY_SIZE),
 * then command-line flags (`--port 8080` or `--port=8080`). Flags always win, also after a
 * SIGHUP reload, which re-reads the file and the environment and keeps the same flags.
 *
 * Sizes accept k/M/G suffixes (powers of 1024); durations are milliseconds.
 */
#ifndef BD_SERVER_CONF_H
#define BD_SERVER_CONF_H

#include <stddef.h>
#include <stdio.h>

struct srv_config {
    char *config_file;      /* --config: JSON file, NULL if none */
    char *host;             /* listen address */
    int port;               /* listen port; 0 = ephemeral */
    char *port_file;        /* write the bound port here once listening (NULL: don't) */
    char *data_dir;         /* database, uploads, jobs, models */
    char *db_path;          /* SQLite database; NULL = DATA_DIR/bitdistill.db */
    char *tls_cert;         /* PEM certificate chain; with tls_key enables TLS */
    char *tls_key;          /* PEM private key */
    size_t max_body_size;   /* bytes, request bodies (413 above) */
    size_t max_header_size; /* bytes, request line + headers (431 above) */
    size_t max_url_size;    /* bytes, request target (414 above) */
    int max_connections;    /* open connections; further ones get 503 and are closed */
    int header_timeout_ms;  /* from a request's first byte to its last header byte (408) */
    int body_timeout_ms;    /* longest pause between two pieces of a request body (408) */
    int idle_timeout_ms;    /* keep-alive connection idle between requests: closed */
    int drain_timeout_ms;   /* on SIGTERM, wait this long for in-flight requests */
    int log_level;          /* enum log_level */
    int threads;            /* threads of each engine worker's passes; 0 = cores / workers */
    int workers;            /* engine workers; 0 = cores / threads (one per core) */
    char *model;            /* student GGUF or HF directory served at start-up (NULL: none) */
    char *model_id;         /* its id (NULL: the file's base name) */
    int max_context;        /* positions per request; 0 = the model's own */
    int batch_max;          /* classification inputs per batched pass */
    int batch_wait_ms;      /* wait this long for more classifications */
    int queue_size;         /* inference jobs queued in the engine at most */
    int queue_wait_ms;      /* longest wait for a place in a full queue (then 429) */
    int max_seqs;           /* generations running at once (KV caches) */
    size_t max_upload_size; /* bytes, POST /v1/files bodies */
    char *model_root;       /* HF directories jobs may name as `model` live under this */
    char *trainer;          /* the `bitdistill` binary that runs jobs (NULL: beside us) */
    int cpu_jobs;           /* fine-tuning jobs running on the CPU at once */
    int job_threads;        /* threads of each CPU job (0: the trainer's default) */
    int job_retries;        /* extra attempts of a failed job */
    int run_jobs;           /* 0: a serving-only replica (queued jobs wait for another) */
    char *job_launcher;     /* command prefix that runs the trainer (e.g. srun ...) or NULL */
    char *job_cancel;       /* command that cancels a launched trainer ({name}) or NULL */
};

/* Fill defaults. Returns 0 or -1 (out of memory). The config owns every string. */
int srv_config_init(struct srv_config *cfg);
void srv_config_release(struct srv_config *cfg);

/*
 * Load the three sources in order into cfg (which srv_config_init prepared): reads --config from
 * argv first, then the file, the environment `envp` (NULL-terminated "K=V" array; NULL = none)
 * and argv. On error returns -1 with a message in err ("--port: 'x' is not an integer").
 * `--help` is not handled here (see srv_config_help).
 */
int srv_config_load(struct srv_config *cfg, int argc, char **argv, char **envp, char *err,
                    size_t errlen);

/* Print every option with its default, environment name and description. */
void srv_config_help(FILE *f, const char *prog);

/* Print cfg as a JSON config file (every option, in table order); with_help adds a "_name"
 * comment key before each (keys starting with '_' are ignored when a file is read). */
void srv_config_dump(const struct srv_config *cfg, FILE *f, int with_help);

/* Path of the database (db_path or data_dir/bitdistill.db); returns a new string. */
char *srv_config_db_path(const struct srv_config *cfg);

#endif
