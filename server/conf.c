/*
 * server/conf.c — see conf.h. One static table describes every option: its name, type,
 * where it lives in struct srv_config, its default and its help line; the file, environment and
 * flag parsers all walk the same table, so a new option is one line here.
 */
#include "server/conf.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

enum cfg_type { CFG_STR, CFG_INT, CFG_SIZE, CFG_LEVEL };

struct cfg_opt {
    const char *name;
    enum cfg_type type;
    size_t offset;
    const char *def; /* default as text, NULL = unset */
    const char *help;
};

#define OFF(f) offsetof(struct srv_config, f)

static const struct cfg_opt cfg_opts[] = {
    {"config", CFG_STR, OFF(config_file), NULL, "JSON config file (keys are these option names)"},
    {"host", CFG_STR, OFF(host), "127.0.0.1", "address to listen on"},
    {"port", CFG_INT, OFF(port), "8080", "TCP port to listen on (0 = pick a free one)"},
    {"port-file", CFG_STR, OFF(port_file), NULL,
     "write the bound port to this file once listening"},
    {"data-dir", CFG_STR, OFF(data_dir), "bitdistill-data",
     "directory for the database, uploads, jobs and models (created if missing)"},
    {"db", CFG_STR, OFF(db_path), NULL, "SQLite database path (default DATA_DIR/bitdistill.db)"},
    {"tls-cert", CFG_STR, OFF(tls_cert), NULL, "PEM certificate chain: serve HTTPS (TLS 1.2+)"},
    {"tls-key", CFG_STR, OFF(tls_key), NULL, "PEM private key for --tls-cert"},
    {"max-body-size", CFG_SIZE, OFF(max_body_size), "8M", "largest request body (413 above)"},
    {"max-header-size", CFG_SIZE, OFF(max_header_size), "16k",
     "largest request line + headers (431 above)"},
    {"max-url-size", CFG_SIZE, OFF(max_url_size), "8k", "longest request target (414 above)"},
    {"max-connections", CFG_INT, OFF(max_connections), "1024",
     "open connections at most; more get 503 and are closed"},
    {"header-timeout-ms", CFG_INT, OFF(header_timeout_ms), "10000",
     "time from a request's first byte to the end of its headers (408 after)"},
    {"body-timeout-ms", CFG_INT, OFF(body_timeout_ms), "30000",
     "longest pause inside a request body (408 after)"},
    {"idle-timeout-ms", CFG_INT, OFF(idle_timeout_ms), "60000",
     "keep-alive connections idle this long are closed"},
    {"drain-timeout-ms", CFG_INT, OFF(drain_timeout_ms), "30000",
     "on SIGTERM/SIGINT, wait this long for in-flight requests"},
    {"log-level", CFG_LEVEL, OFF(log_level), "info", "error, warn, info or debug"},
    {"threads", CFG_INT, OFF(threads), "0",
     "threads of each engine worker's passes (0 = cores / workers)"},
    {"workers", CFG_INT, OFF(workers), "0",
     "engine workers running passes side by side (0 = cores / threads, or one per core)"},
    {"model", CFG_STR, OFF(model), NULL,
     "student .gguf file or Hugging Face directory to serve (loaded in the background); "
     "several, comma-separated, each becomes the active model of its task"},
    {"model-id", CFG_STR, OFF(model_id), NULL, "id of --model (default: its base name)"},
    {"max-context", CFG_INT, OFF(max_context), "2048",
     "positions per request at most (0 = the model's own)"},
    {"batch-max", CFG_INT, OFF(batch_max), "16", "classification inputs per batched pass"},
    {"batch-wait-ms", CFG_INT, OFF(batch_wait_ms), "2",
     "wait this long for more classifications to batch"},
    {"queue-size", CFG_INT, OFF(queue_size), "256",
     "inference requests queued in the engine at most (more wait for a place)"},
    {"queue-wait-ms", CFG_INT, OFF(queue_wait_ms), "1000",
     "a request finding the queue full waits this long for a place, then 429 with Retry-After"},
    {"max-seqs", CFG_INT, OFF(max_seqs), "8", "generations running at once (KV caches)"},
    {"max-upload-size", CFG_SIZE, OFF(max_upload_size), "512M",
     "largest file upload (POST /v1/files)"},
    {"model-root", CFG_STR, OFF(model_root), NULL,
     "directory whose HF model directories jobs may name as `model` (default DATA_DIR/models)"},
    {"trainer", CFG_STR, OFF(trainer), NULL,
     "the bitdistill binary that runs training jobs (default: beside bitdistilld)"},
    {"cpu-jobs", CFG_INT, OFF(cpu_jobs), "1", "fine-tuning jobs running on the CPU at once"},
    {"job-threads", CFG_INT, OFF(job_threads), "0",
     "threads of each CPU training job (0 = the trainer's default)"},
    {"job-retries", CFG_INT, OFF(job_retries), "0", "extra attempts of a failed job"},
    {"run-jobs", CFG_INT, OFF(run_jobs), "1",
     "run fine-tuning jobs (0: a serving-only replica sharing another daemon's data dir)"},
    {"job-launcher", CFG_STR, OFF(job_launcher), NULL,
     "command prefix that runs each trainer on a cluster, e.g. 'srun --job-name={name} -n1' "
     "({name} = bd-JOBID; events then come on the trainer's stdout)"},
    {"job-cancel", CFG_STR, OFF(job_cancel), NULL,
     "command that cancels a launched trainer, e.g. 'scancel --name={name}'"},
};

#define N_OPTS (sizeof(cfg_opts) / sizeof(cfg_opts[0]))

static const struct cfg_opt *cfg_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(cfg_opts[i].name) == len && !strncmp(cfg_opts[i].name, name, len))
            return &cfg_opts[i];
    return NULL;
}

static int cfg_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || s[0] == '-')
        return -1;
    unsigned long long mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    default: break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v > SIZE_MAX / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

/* Store text value `val` for option `o`; `src` names the source for the error message. */
static int cfg_set(struct srv_config *cfg, const struct cfg_opt *o, const char *val,
                   const char *src, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
    case CFG_STR: {
        char **p = (char **)field;
        char *copy = strdup(val);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*p);
        *p = copy;
        return 0;
    }
    case CFG_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (end == val || *end || errno || v < 0 || v > 1000000000) {
            snprintf(err, errlen, "%s %s: '%s' is not a non-negative integer", src, o->name, val);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case CFG_SIZE:
        if (cfg_parse_size(val, (size_t *)field)) {
            snprintf(err, errlen, "%s %s: '%s' is not a size (e.g. 8M, 16k, 1048576)", src, o->name,
                     val);
            return -1;
        }
        return 0;
    case CFG_LEVEL: {
        int lv = log_level_parse(val);
        if (lv < 0) {
            snprintf(err, errlen, "%s %s: '%s' is not one of error, warn, info, debug", src,
                     o->name, val);
            return -1;
        }
        *(int *)field = lv;
        return 0;
    }
    }
    return -1;
}

int srv_config_init(struct srv_config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTS; i++)
        if (cfg_opts[i].def &&
            cfg_set(cfg, &cfg_opts[i], cfg_opts[i].def, "default", err, sizeof(err)))
            return -1;
    return 0;
}

void srv_config_release(struct srv_config *cfg)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (cfg_opts[i].type == CFG_STR) {
            char **p = (char **)((char *)cfg + cfg_opts[i].offset);
            free(*p);
            *p = NULL;
        }
}

static int cfg_load_file(struct srv_config *cfg, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    const char *key;
    json_t *val;
    int rc = 0;

    if (!root) {
        snprintf(err, errlen, "config file '%s': %s (line %d)", path, jerr.text, jerr.line);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "config file '%s': top level must be a JSON object", path);
        json_decref(root);
        return -1;
    }
    json_object_foreach(root, key, val)
    {
        const struct cfg_opt *o = cfg_find(key, strlen(key));
        char num[64], src[300];
        const char *text;
        if (key[0] == '_')
            continue; /* "_name": comments (the example config documents each option so) */
        if (!o || o->offset == OFF(config_file)) {
            snprintf(err, errlen, "config file '%s': unknown option '%s'", path, key);
            rc = -1;
            break;
        }
        if (json_is_null(val)) { /* null: unset (strings) or the default (numbers) */
            if (o->type == CFG_STR) {
                char **p = (char **)((char *)cfg + o->offset);
                free(*p);
                *p = NULL;
            }
            continue;
        }
        if (json_is_string(val)) {
            text = json_string_value(val);
        } else if (json_is_integer(val)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(val));
            text = num;
        } else {
            snprintf(err, errlen, "config file '%s': option '%s' must be a string or integer", path,
                     key);
            rc = -1;
            break;
        }
        snprintf(src, sizeof(src), "config file '%s':", path);
        if ((rc = cfg_set(cfg, o, text, src, err, errlen)))
            break;
    }
    json_decref(root);
    return rc;
}

static int cfg_load_env(struct srv_config *cfg, char **envp, char *err, size_t errlen)
{
    static const char prefix[] = "BITDISTILL_";
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof(prefix) - 1))
            continue;
        const char *name = *e + sizeof(prefix) - 1;
        const char *eq = strchr(name, '=');
        char opt[64];
        size_t len;
        if (!eq || (len = (size_t)(eq - name)) >= sizeof(opt))
            continue;
        for (size_t i = 0; i < len; i++)
            opt[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
        const struct cfg_opt *o = cfg_find(opt, len);
        if (!o || o->offset == OFF(config_file))
            continue; /* other BITDISTILL_* variables belong to other tools */
        char src[80];
        snprintf(src, sizeof(src), "environment BITDISTILL_%.*s:", (int)len, name);
        if (cfg_set(cfg, o, eq + 1, src, err, errlen))
            return -1;
    }
    return 0;
}

/* Walk argv; with only_config, handle --config alone (the file must be read before env/flags). */
static int cfg_load_argv(struct srv_config *cfg, int argc, char **argv, int only_config, char *err,
                         size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            snprintf(err, errlen, "unexpected argument '%s' (options start with --)", a);
            return -1;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const struct cfg_opt *o = cfg_find(a, len);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)len, a);
            return -1;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '--%s' needs a value", o->name);
                return -1;
            }
            val = argv[++i];
        }
        if (only_config != (o->offset == OFF(config_file)))
            continue;
        if (cfg_set(cfg, o, val, "option", err, errlen))
            return -1;
    }
    return 0;
}

int srv_config_load(struct srv_config *cfg, int argc, char **argv, char **envp, char *err,
                    size_t errlen)
{
    if (cfg_load_argv(cfg, argc, argv, 1, err, errlen))
        return -1;
    if (!cfg->config_file) {
        for (char **e = envp; e && *e; e++)
            if (!strncmp(*e, "BITDISTILL_CONFIG=", 18) && (*e)[18]) {
                if (!(cfg->config_file = strdup(*e + 18))) {
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                break;
            }
    }
    if (cfg->config_file && cfg_load_file(cfg, cfg->config_file, err, errlen))
        return -1;
    if (cfg_load_env(cfg, envp, err, errlen))
        return -1;
    if (cfg_load_argv(cfg, argc, argv, 0, err, errlen))
        return -1;
    if (cfg->port > 65535) {
        snprintf(err, errlen, "port %d is out of range (0-65535)", cfg->port);
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen, "--tls-cert and --tls-key must be given together");
        return -1;
    }
    if (cfg->max_connections < 1 || cfg->max_header_size < 256 || cfg->max_url_size < 16) {
        snprintf(err, errlen,
                 "max-connections must be >= 1, max-header-size >= 256, "
                 "max-url-size >= 16");
        return -1;
    }
    return 0;
}

void srv_config_help(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [OPTIONS]\n\n"
            "bitdistilld serves ternary (1.58-bit) LLM students over HTTP and runs BitNet\n"
            "Distillation jobs. Options come from, lowest to highest precedence: defaults, the\n"
            "JSON --config file, BITDISTILL_* environment variables, then these flags.\n"
            "Signals: SIGTERM/SIGINT drain and exit (a second one exits at once); SIGHUP reloads\n"
            "the config file.\n\noptions:\n",
            prog);
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct cfg_opt *o = &cfg_opts[i];
        char env[64];
        size_t n = 0;
        n += snprintf(env, sizeof(env), "BITDISTILL_");
        for (const char *c = o->name; *c && n + 1 < sizeof(env); c++)
            env[n++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
        env[n] = 0;
        fprintf(f, "  --%-20s %s\n  %-22s   [env %s%s%s]\n", o->name, o->help, "", env,
                o->def ? ", default " : "", o->def ? o->def : "");
    }
    fprintf(f, "  --%-20s show this help\n", "help");
    fprintf(f, "  --%-20s print the effective configuration as a JSON config file\n",
            "print-config");
    fprintf(f, "  --%-20s print every option with its default and description\n",
            "print-example-config");
}

void srv_config_dump(const struct srv_config *cfg, FILE *f, int with_help)
{
    fprintf(f, "{\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct cfg_opt *o = &cfg_opts[i];
        const char *field = (const char *)cfg + o->offset;
        json_t *v = NULL;
        if (o->offset == OFF(config_file) || o->offset == OFF(port_file))
            continue;
        switch (o->type) {
        case CFG_STR: {
            const char *str = *(char *const *)field;
            v = str ? json_string(str) : json_null();
            break;
        }
        case CFG_INT: v = json_integer(*(const int *)field); break;
        case CFG_SIZE: v = json_integer((json_int_t) * (const size_t *)field); break;
        case CFG_LEVEL: v = json_string(log_level_name(*(const int *)field)); break;
        }
        char *vt = json_dumps(v, JSON_ENCODE_ANY);
        json_t *h = json_string(o->help);
        char *ht = json_dumps(h, JSON_ENCODE_ANY);
        int last = i + 1 == N_OPTS;
        if (with_help)
            fprintf(f, "  \"_%s\": %s,\n", o->name, ht);
        fprintf(f, "  \"%s\": %s%s\n", o->name, vt, last ? "" : ",");
        free(vt);
        free(ht);
        json_decref(v);
        json_decref(h);
    }
    fprintf(f, "}\n");
}

char *srv_config_db_path(const struct srv_config *cfg)
{
    if (cfg->db_path)
        return strdup(cfg->db_path);
    size_t n = strlen(cfg->data_dir) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/bitdistill.db", cfg->data_dir);
    return p;
}
