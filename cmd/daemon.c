/*
 * cmd/daemon.c — bitdistilld's life: load the config, open the store, listen, serve until a
 * signal, drain, exit.
 *
 * Signals (handled on the loop thread through uv_signal): SIGTERM/SIGINT start a drain (stop
 * accepting, /readyz 503, finish in-flight requests up to drain-timeout-ms, exit 0); a second
 * one exits at once with status 1. SIGHUP re-reads the config file and environment (flags still
 * win) and applies what can change without a restart.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "api/infer.h"
#include "cmd/daemon.h"
#include "engine/registry.h"
#include "engine/sched.h"
#include "jobs/files.h"
#include "jobs/supervisor.h"
#include "log/log.h"
#include "server/conf.h"
#include "server/notify.h"
#include "server/server.h"
#include "store/store.h"
#include "store/writer.h"

extern char **environ;

#define DAEMON_MAX_MODELS 8 /* --model A,B,... */

struct daemon {
    uv_loop_t loop;
    struct srv_config *cfg;
    int argc;
    char **argv;
    struct store *store;
    struct srv_server *srv;
    struct api_ctx api;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_async_t engine_async; /* the engine thread has results */
    struct eng_registry *registry;
    struct eng_sched *sched;
    struct store_writer *writer;
    struct job_sup *sup;
    char trainer[4096];
    uv_work_t load_work; /* --model loading in the background */
    struct eng_served
        *loaded[DAEMON_MAX_MODELS]; /* --model A,B,...: one per path, NULL if failed */
    int nmodels;
    char load_err[512]; /* the first failure */
    char not_ready[600];
    int stopping;
    int exit_code;
};

static int mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0750) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0750) && errno != EEXIST ? -1 : 0;
}

static void daemon_close_signals(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
}

static void daemon_drained(struct srv_server *srv, int timed_out)
{
    struct daemon *d = uv_loop_get_data(srv_server_loop(srv));
    log_info("drained%s; exiting", timed_out ? " (timed out)" : "");
    srv_server_close(srv);
    eng_sched_stop(d->sched);
    api_infer_drain(&d->api); /* jobs cancelled by the stop: their requests are gone */
    api_infer_close(&d->api);
    uv_close((uv_handle_t *)&d->engine_async, NULL);
    job_sup_close(d->sup);
    store_writer_free(d->writer); /* runs what is queued, then closes its handle */
    d->writer = NULL;
    daemon_close_signals(d);
}

/* Engine thread -> loop thread. */
static void daemon_engine_notify(void *arg)
{
    uv_async_send(arg);
}

static void daemon_on_engine(uv_async_t *a)
{
    struct daemon *d = a->data;
    api_infer_drain(&d->api);
}

/* A job succeeded: load its student, and activate it when the job asked. */
static void daemon_job_success(void *arg, const struct job_rec *rec, const struct job_model *m)
{
    struct daemon *d = arg;
    if (rec->activate)
        api_models_load(&d->api, m->id, m->path, 1);
}

/* The trainer: --trainer, else `bitdistill` beside this executable. */
static void daemon_trainer_path(struct daemon *d)
{
    char self[4000];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (d->cfg->trainer) {
        snprintf(d->trainer, sizeof(d->trainer), "%s", d->cfg->trainer);
        return;
    }
    if (n <= 0) {
        snprintf(d->trainer, sizeof(d->trainer), "bitdistill");
        return;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(d->trainer, sizeof(d->trainer), "%s/bitdistill", self);
}

/* Path i of --model (a comma-separated list) into out; 0, or -1 past the last. */
static int daemon_model_path(const struct daemon *d, int i, char *out, size_t outlen)
{
    const char *p = d->cfg->model;
    for (; i > 0 && p; i--)
        if ((p = strchr(p, ',')))
            p++;
    if (!p)
        return -1;
    snprintf(out, outlen, "%.*s", (int)strcspn(p, ","), p);
    return 0;
}

/* Worker: load every --model path (--model-id names the model when there is one path). */
static void daemon_load_work(uv_work_t *w)
{
    struct daemon *d = w->data;
    char path[4096], err[512];
    for (int i = 0; i < d->nmodels && daemon_model_path(d, i, path, sizeof(path)) == 0; i++) {
        if (eng_served_load(path, d->nmodels == 1 ? d->cfg->model_id : NULL, d->cfg->max_context,
                            &d->loaded[i], err)) {
            d->loaded[i] = NULL;
            if (!d->load_err[0])
                snprintf(d->load_err, sizeof(d->load_err), "'%.200s': %.290s", path, err);
            continue;
        }
        eng_model_set_threads(d->loaded[i]->model, d->api.engine_threads);
    }
}

/* Loop thread: register each loaded model and make it the active one of its task; ready when
 * every path loaded. */
static void daemon_load_done(uv_work_t *w, int status)
{
    struct daemon *d = w->data;
    char path[4096];
    (void)status;
    for (int i = 0; i < d->nmodels; i++) {
        struct eng_served *m = d->loaded[i];
        if (!m)
            continue;
        daemon_model_path(d, i, path, sizeof(path));
        if (eng_registry_add(d->registry, m) || eng_registry_activate(d->registry, m->id))
            log_error("cannot register model '%s'", m->id);
        else
            log_info("model '%s' loaded from %s: %s, %s, %.1f MiB resident", m->id, path,
                     eng_task_name(m->task),
                     eng_model_is_ternary(m->model) ? "ternary student" : "FP",
                     m->resident_bytes / 1048576.0);
        eng_served_unref(m);
        d->loaded[i] = NULL;
    }
    if (d->load_err[0]) {
        log_error("cannot load model %s", d->load_err);
        snprintf(d->not_ready, sizeof(d->not_ready), "model %s failed to load", d->load_err);
        srv_server_set_not_ready(d->srv, d->not_ready);
        return;
    }
    srv_server_set_not_ready(d->srv, NULL);
    srv_notify("STATUS=serving");
}

static void daemon_on_stop(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (d->stopping) {
        log_warn("second %s: exiting at once", strsignal(signum));
        _exit(1);
    }
    d->stopping = 1;
    log_info("%s: draining (up to %d ms for in-flight requests)", strsignal(signum),
             d->cfg->drain_timeout_ms);
    srv_notify("STOPPING=1\nSTATUS=draining");
    job_sup_close(d->sup); /* trainers stop (their jobs resume at the next start) */
    srv_server_drain(d->srv, daemon_drained);
}

static void daemon_on_hup(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    char err[512];
    (void)signum;
    struct srv_config *next = calloc(1, sizeof(*next));
    if (!next || srv_config_init(next)) {
        free(next);
        log_error("reload: out of memory");
        return;
    }
    srv_notify("RELOADING=1");
    if (srv_config_load(next, d->argc, d->argv, environ, err, sizeof(err)) ||
        srv_server_reconfigure(d->srv, next, err, sizeof(err))) {
        log_error("reload failed, keeping the running configuration: %s", err);
        srv_config_release(next);
        free(next);
        srv_notify("READY=1");
        return;
    }
    srv_config_release(d->cfg);
    free(d->cfg);
    d->cfg = next;
    log_set_level(next->log_level);
    log_info("configuration reloaded%s%s", next->config_file ? " from " : "",
             next->config_file ? next->config_file : "");
    srv_notify("READY=1\nSTATUS=serving (configuration reloaded)");
}

/* --help, --print-config, --print-example-config, --version: answered without starting.
 * Returns the exit status, or -1 when none of them was given. */
static int daemon_early_flags(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            srv_config_help(stdout, "bitdistilld");
            return 0;
        }
        if (!strcmp(argv[i], "--print-config") || !strcmp(argv[i], "--print-example-config")) {
            struct srv_config c;
            char e[512];
            int example = !strcmp(argv[i], "--print-example-config");
            char **rest = calloc((size_t)argc, sizeof(char *));
            int nr = 0;
            if (!rest) {
                fprintf(stderr, "bitdistilld: out of memory\n");
                return 1;
            }
            for (int k = 0; k < argc; k++)
                if (k != i)
                    rest[nr++] = argv[k];
            int rc = srv_config_init(&c) ||
                     (!example && srv_config_load(&c, nr, rest, environ, e, sizeof(e)));
            free(rest);
            if (rc) {
                fprintf(stderr, "bitdistilld: %s\n", e);
                srv_config_release(&c);
                return 2;
            }
            srv_config_dump(&c, stdout, example);
            srv_config_release(&c);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("bitdistilld %s\n", PACKAGE_VERSION);
            return 0;
        }
    }
    return -1;
}

/* The scheduler and the registry: engine workers x threads per worker = the cores, unless both
 * are given. *workers gets the worker count. 0, or -1 out of memory. */
static int daemon_start_engine(struct daemon *d, int *workers)
{
    int cores = (int)uv_available_parallelism();
    int w = d->cfg->workers > 0   ? d->cfg->workers
            : d->cfg->threads > 0 ? cores / d->cfg->threads
                                  : cores;
    w = w > 0 ? w : 1;
    *workers = w;
    d->api.engine_threads = d->cfg->threads > 0 ? d->cfg->threads : cores / w;
    d->api.engine_threads = d->api.engine_threads > 0 ? d->api.engine_threads : 1;
    struct eng_sched_cfg scfg = {
        d->cfg->batch_max, d->cfg->batch_wait_ms, d->cfg->queue_size, d->cfg->max_seqs, 64, w};
    uv_async_init(&d->loop, &d->engine_async, daemon_on_engine);
    d->engine_async.data = d;
    if (!(d->registry = eng_registry_create()) ||
        eng_sched_create(&scfg, daemon_engine_notify, &d->engine_async, &d->sched))
        return -1;
    d->api.registry = d->registry;
    d->api.sched = d->sched;
    return 0;
}

/* The model root (--model-root, else DATA/models; created), as a real path in the API. */
static void daemon_model_root(struct daemon *d)
{
    char root[4096];
    if (d->cfg->model_root)
        snprintf(root, sizeof(root), "%s", d->cfg->model_root);
    else
        snprintf(root, sizeof(root), "%s/models", d->cfg->data_dir);
    mkdir_p(root);
    if (!realpath(root, d->api.model_root))
        d->api.model_root[0] = 0;
}

/* The store's writer and the job supervisor. 0, or -1 out of memory. */
static int daemon_start_jobs(struct daemon *d)
{
    daemon_trainer_path(d);
    struct job_sup_cfg jcfg = {d->cfg->data_dir,     d->trainer,          d->cfg->cpu_jobs,
                               d->cfg->job_threads,  d->cfg->job_retries, 10000,
                               d->cfg->job_launcher, d->cfg->job_cancel,  !d->cfg->run_jobs};
    struct job_sup_hooks jhooks = {daemon_job_success, d};
    if (!(d->writer = store_writer_create(&d->loop, d->store)) ||
        !(d->sup = job_sup_create(&d->loop, d->store, d->writer, &jcfg, &jhooks)))
        return -1;
    d->api.writer = d->writer;
    d->api.sup = d->sup;
    return 0;
}

/* SIGTERM and SIGINT drain and stop, SIGHUP reloads. */
static void daemon_start_signals(struct daemon *d)
{
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    uv_signal_init(&d->loop, &d->sig_hup);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    uv_signal_start(&d->sig_term, daemon_on_stop, SIGTERM);
    uv_signal_start(&d->sig_int, daemon_on_stop, SIGINT);
    uv_signal_start(&d->sig_hup, daemon_on_hup, SIGHUP);
}

/* --model A,B,...: loaded in the background (not ready until then); the stored state: uploads
 * a crash left, the registered models, the queued jobs. */
static void daemon_restore(struct daemon *d)
{
    if (d->cfg->model) {
        snprintf(d->not_ready, sizeof(d->not_ready), "loading model '%s'", d->cfg->model);
        srv_server_set_not_ready(d->srv, d->not_ready);
        d->load_work.data = d;
        d->nmodels = 1;
        for (const char *p = d->cfg->model; (p = strchr(p, ',')) && d->nmodels < DAEMON_MAX_MODELS;
             p++)
            d->nmodels++;
        uv_queue_work(&d->loop, &d->load_work, daemon_load_work, daemon_load_done);
    } else {
        srv_server_set_not_ready(d->srv, "no model loaded");
    }
    int swept = job_file_sweep(d->store, d->cfg->data_dir);
    if (swept > 0)
        log_warn("removed %d partial or unrecorded upload(s) left by a crash", swept);
    api_models_restore(&d->api);
    job_sup_start(d->sup);
}

/* The start-up lines of the log, and READY=1 to systemd. */
static void daemon_announce(struct daemon *d, const char *db, int workers)
{
    char status[256];
    int nkeys = store_key_count(d->store);
    log_info("bitdistilld %s listening on %s://%s:%d (data-dir %s, database %s)", PACKAGE_VERSION,
             d->cfg->tls_cert ? "https" : "http", d->cfg->host, srv_server_port(d->srv),
             d->cfg->data_dir, db);
    log_info("engine: %d worker(s) x %d thread(s), batches of up to %d, queue %d", workers,
             d->api.engine_threads, d->cfg->batch_max, d->cfg->queue_size);
    if (!d->cfg->model)
        log_info("no model loaded: /readyz answers 503 until a model is activated");
    if (nkeys == 0)
        log_warn("no API keys exist: the API is open to anyone who can reach %s:%d "
                 "(create one with `bitdistill keys create --scope admin`)",
                 d->cfg->host, srv_server_port(d->srv));
    snprintf(status, sizeof(status), "READY=1\nMAINPID=%d\nSTATUS=serving on port %d, %s",
             (int)getpid(), srv_server_port(d->srv),
             d->cfg->model ? "loading the model" : "no model loaded");
    srv_notify(status);
}

int cmd_daemon_main(int argc, char **argv)
{
    struct daemon d;
    char err[1024];
    char *db = NULL;
    int workers = 1, early = daemon_early_flags(argc, argv);
    if (early >= 0)
        return early;
    memset(&d, 0, sizeof(d));
    d.argc = argc;
    d.argv = argv;
    d.exit_code = 1;
    if (!(d.cfg = calloc(1, sizeof(*d.cfg))) || srv_config_init(d.cfg)) {
        fprintf(stderr, "bitdistilld: out of memory\n");
        free(d.cfg);
        return 1;
    }
    if (srv_config_load(d.cfg, argc, argv, environ, err, sizeof(err))) {
        fprintf(stderr, "bitdistilld: %s\n", err);
        d.exit_code = 2;
        goto out_cfg;
    }
    log_set_level(d.cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    if (mkdir_p(d.cfg->data_dir)) {
        log_error("cannot create --data-dir '%s': %s", d.cfg->data_dir, strerror(errno));
        goto out_cfg;
    }
    if (!(db = srv_config_db_path(d.cfg)) || !(d.store = store_open(db, err, sizeof(err)))) {
        log_error("%s", db ? err : "out of memory");
        goto out_cfg;
    }
    uv_loop_init(&d.loop);
    uv_loop_set_data(&d.loop, &d);
    d.api.store = d.store;
    d.api.start_time = (double)time(NULL);
    struct srv_hooks hooks = api_hooks(&d.api);
    if (!(d.srv = srv_server_create(&d.loop, d.cfg, d.store, &hooks, err, sizeof(err)))) {
        log_error("%s", err);
        goto out_loop;
    }
    d.api.srv = d.srv;
    if (daemon_start_engine(&d, &workers)) {
        log_error("cannot start the engine: out of memory");
        uv_close((uv_handle_t *)&d.engine_async, NULL);
        srv_server_close(d.srv);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        goto out_srv;
    }
    d.api.data_dir = d.cfg->data_dir;
    daemon_model_root(&d);
    if (daemon_start_jobs(&d)) {
        log_error("cannot start the job supervisor: out of memory");
        goto out_srv;
    }
    if (srv_server_listen(d.srv, err, sizeof(err))) {
        log_error("%s", err);
        srv_server_close(d.srv);
        uv_close((uv_handle_t *)&d.engine_async, NULL);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        goto out_srv;
    }
    daemon_start_signals(&d);
    daemon_restore(&d);
    daemon_announce(&d, db, workers);

    uv_run(&d.loop, UV_RUN_DEFAULT);
    d.exit_code = 0;
out_srv:
    if (d.writer) { /* start-up failed before the loop ran: close what was made */
        job_sup_close(d.sup);
        store_writer_free(d.writer);
        uv_run(&d.loop, UV_RUN_DEFAULT);
    }
    job_sup_free(d.sup);
    eng_sched_free(d.sched);
    eng_registry_free(d.registry);
    srv_server_free(d.srv);
out_loop:
    if (uv_loop_close(&d.loop) == UV_EBUSY) {
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
    }
    store_free(d.store);
out_cfg:
    free(db);
    srv_config_release(d.cfg);
    free(d.cfg);
    return d.exit_code;
}
