/*
 * server/daemon.c — bitdistilld's life: load the config, open the store, listen, serve until a
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
#include "jobs/store.h"
#include "server/conf.h"
#include "server/daemon.h"
#include "server/log.h"
#include "server/notify.h"
#include "server/server.h"

extern char **environ;

struct daemon {
    uv_loop_t loop;
    struct srv_config *cfg;
    int argc;
    char **argv;
    struct job_store *store;
    struct srv_server *srv;
    struct api_ctx api;
    uv_signal_t sig_term, sig_int, sig_hup;
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
    srv_log_info("drained%s; exiting", timed_out ? " (timed out)" : "");
    srv_server_close(srv);
    daemon_close_signals(d);
}

static void daemon_on_stop(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (d->stopping) {
        srv_log_warn("second %s: exiting at once", strsignal(signum));
        _exit(1);
    }
    d->stopping = 1;
    srv_log_info("%s: draining (up to %d ms for in-flight requests)", strsignal(signum),
                 d->cfg->drain_timeout_ms);
    srv_notify("STOPPING=1\nSTATUS=draining");
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
        srv_log_error("reload: out of memory");
        return;
    }
    srv_notify("RELOADING=1");
    if (srv_config_load(next, d->argc, d->argv, environ, err, sizeof(err)) ||
        srv_server_reconfigure(d->srv, next, err, sizeof(err))) {
        srv_log_error("reload failed, keeping the running configuration: %s", err);
        srv_config_release(next);
        free(next);
        srv_notify("READY=1");
        return;
    }
    srv_config_release(d->cfg);
    free(d->cfg);
    d->cfg = next;
    srv_log_set_level(next->log_level);
    srv_log_info("configuration reloaded%s%s", next->config_file ? " from " : "",
                 next->config_file ? next->config_file : "");
    srv_notify("READY=1\nSTATUS=serving (configuration reloaded)");
}

int srv_daemon_main(int argc, char **argv)
{
    struct daemon d;
    char err[1024], status[256];
    char *db = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            srv_config_help(stdout, "bitdistilld");
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("bitdistilld %s\n", PACKAGE_VERSION);
            return 0;
        }
    }
    memset(&d, 0, sizeof(d));
    d.argc = argc;
    d.argv = argv;
    d.exit_code = 1;
    if (!(d.cfg = calloc(1, sizeof(*d.cfg))) || srv_config_init(d.cfg)) {
        fprintf(stderr, "bitdistilld: out of memory\n");
        return 1;
    }
    if (srv_config_load(d.cfg, argc, argv, environ, err, sizeof(err))) {
        fprintf(stderr, "bitdistilld: %s\n", err);
        d.exit_code = 2;
        goto out_cfg;
    }
    srv_log_set_level(d.cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    if (mkdir_p(d.cfg->data_dir)) {
        srv_log_error("cannot create --data-dir '%s': %s", d.cfg->data_dir, strerror(errno));
        goto out_cfg;
    }
    if (!(db = srv_config_db_path(d.cfg)) || !(d.store = job_store_open(db, err, sizeof(err)))) {
        srv_log_error("%s", db ? err : "out of memory");
        goto out_cfg;
    }
    uv_loop_init(&d.loop);
    uv_loop_set_data(&d.loop, &d);
    d.api.store = d.store;
    d.api.start_time = (double)time(NULL);
    struct srv_hooks hooks = api_hooks(&d.api);
    if (!(d.srv = srv_server_create(&d.loop, d.cfg, d.store, &hooks, err, sizeof(err)))) {
        srv_log_error("%s", err);
        goto out_loop;
    }
    d.api.srv = d.srv;
    if (srv_server_listen(d.srv, err, sizeof(err))) {
        srv_log_error("%s", err);
        srv_server_close(d.srv);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        goto out_srv;
    }
    uv_signal_init(&d.loop, &d.sig_term);
    uv_signal_init(&d.loop, &d.sig_int);
    uv_signal_init(&d.loop, &d.sig_hup);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    uv_signal_start(&d.sig_term, daemon_on_stop, SIGTERM);
    uv_signal_start(&d.sig_int, daemon_on_stop, SIGINT);
    uv_signal_start(&d.sig_hup, daemon_on_hup, SIGHUP);

    srv_server_set_not_ready(d.srv, "no model loaded");
    int nkeys = job_store_key_count(d.store);
    srv_log_info("bitdistilld %s listening on %s://%s:%d (data-dir %s, database %s)",
                 PACKAGE_VERSION, d.cfg->tls_cert ? "https" : "http", d.cfg->host,
                 srv_server_port(d.srv), d.cfg->data_dir, db);
    srv_log_info("no model loaded: /readyz answers 503 until a model is activated");
    if (nkeys == 0)
        srv_log_warn("no API keys exist: the API is open to anyone who can reach %s:%d "
                     "(create one with `bitdistill keys create --scope admin`)",
                     d.cfg->host, srv_server_port(d.srv));
    snprintf(status, sizeof(status), "READY=1\nMAINPID=%d\nSTATUS=serving on port %d, no model loaded",
             (int)getpid(), srv_server_port(d.srv));
    srv_notify(status);

    uv_run(&d.loop, UV_RUN_DEFAULT);
    d.exit_code = 0;
out_srv:
    srv_server_free(d.srv);
out_loop:
    if (uv_loop_close(&d.loop) == UV_EBUSY) {
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
    }
    job_store_free(d.store);
out_cfg:
    free(db);
    srv_config_release(d.cfg);
    free(d.cfg);
    return d.exit_code;
}
