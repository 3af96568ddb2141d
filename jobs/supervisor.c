/*
 * jobs/supervisor.c — see supervisor.h. Everything here runs on the loop thread; the store is
 * read with the reader connection and written through the writer thread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/better.h"
#include "jobs/files.h"
#include "jobs/results.h"
#include "jobs/supervisor.h"
#include "log/log.h"
#include "util/sha256.h"

#define MAX_LINE (1 << 20)

struct sup_run {
    struct sup_run *next;
    struct job_sup *sup;
    char id[48];
    char dir[1024];
    char device[32];
    uv_process_t proc;
    uv_pipe_t pipe;
    uv_timer_t kill_timer;
    int handles; /* open handles; freed at 0 */
    int exited, eof;
    int64_t exit_status;
    int term_signal;
    char *line;
    size_t n, cap;
    int64_t seq; /* last event seq given */
    int cancel;
    int pause; /* pause asked: SIGUSR1 sent, the trainer checkpoints and exits 4 */
    int done_seen;
    char student[1024];
    char *done_metrics;
    char last_error[512];
    int activate;
    int attempts;
};

struct sup_watch {
    struct sup_watch *next;
    char id[48];
    job_sup_watch_fn fn;
    void *arg;
};

/* A status write queued and not yet stored: what the job's status is about to be. */
struct sup_pending {
    struct sup_pending *next;
    char id[48];
    char status[24]; /* the last status queued */
    int writes;      /* writes in flight */
};

struct job_sup {
    uv_loop_t *loop;
    struct store *st;
    struct store_writer *w;
    struct job_sup_cfg cfg;
    struct job_sup_hooks hooks;
    struct sup_run *runs;
    struct sup_watch *watches;
    struct sup_pending *pending;
    int closing;
};

/* ---- watchers ------------------------------------------------------------------------------ */

int job_sup_watch(struct job_sup *s, const char *job_id, job_sup_watch_fn fn, void *arg)
{
    struct sup_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    snprintf(w->id, sizeof(w->id), "%s", job_id);
    w->fn = fn;
    w->arg = arg;
    w->next = s->watches;
    s->watches = w;
    return 0;
}

void job_sup_unwatch(struct job_sup *s, job_sup_watch_fn fn, void *arg)
{
    for (struct sup_watch **pp = &s->watches; *pp;) {
        if ((*pp)->fn == fn && (*pp)->arg == arg) {
            struct sup_watch *w = *pp;
            *pp = w->next;
            free(w);
        } else {
            pp = &(*pp)->next;
        }
    }
}

static void notify(struct job_sup *s, const char *id, int64_t seq, int ended)
{
    /* A watcher may unwatch itself from its callback: walk a snapshot of the matches. */
    struct sup_watch *w = s->watches;
    while (w) {
        struct sup_watch *next = w->next;
        if (!strcmp(w->id, id))
            w->fn(w->arg, id, seq, ended);
        w = next;
    }
}

/* ---- statuses in flight --------------------------------------------------------------------- */

static void pending_push(struct job_sup *s, const char *id, const char *status)
{
    struct sup_pending *p = s->pending;
    while (p && strcmp(p->id, id))
        p = p->next;
    if (!p) {
        if (!(p = calloc(1, sizeof(*p))))
            return;
        snprintf(p->id, sizeof(p->id), "%s", id);
        p->next = s->pending;
        s->pending = p;
    }
    snprintf(p->status, sizeof(p->status), "%s", status);
    p->writes++;
}

static void pending_pop(struct job_sup *s, const char *id)
{
    for (struct sup_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id)) {
            struct sup_pending *p = *pp;
            if (--p->writes <= 0) {
                *pp = p->next;
                free(p);
            }
            return;
        }
}

/* The status of job id as the supervisor's queued writes will leave it (the stored one when none
 * is in flight) into status[24]. Returns 0 or STORE_ENOTFOUND. */
static int effective_status(struct job_sup *s, const char *id, char status[24])
{
    struct job_rec rec;
    if (job_rec_get(s->st, id, &rec))
        return STORE_ENOTFOUND;
    snprintf(status, 24, "%s", rec.status);
    job_rec_release(&rec);
    for (struct sup_pending *p = s->pending; p; p = p->next)
        if (!strcmp(p->id, id))
            snprintf(status, 24, "%s", p->status);
    return 0;
}

/* ---- writes with notification ------------------------------------------------------------- */

struct ev_done {
    struct job_sup *sup;
    struct job_event_op op;
};

static void ev_written(void *arg, int status)
{
    struct ev_done *d = arg;
    if (status)
        log_error("job %s: cannot store event %lld", d->op.id, (long long)d->op.seq);
    else
        notify(d->sup, d->op.id, d->op.seq, 0);
    free(d->op.data);
    free(d->op.ckpt_metrics);
    free(d);
}

static int ev_tx(sqlite3 *db, void *arg)
{
    return job_event_tx(db, &((struct ev_done *)arg)->op);
}

struct st_done {
    struct job_sup *sup;
    struct job_status_op op;
    int ended;
};

static void st_written(void *arg, int status)
{
    struct st_done *d = arg;
    if (status)
        log_error("job %s: cannot store status %s", d->op.id, d->op.status);
    struct job_sup *s = d->sup;
    pending_pop(s, d->op.id);
    if (d->ended)
        notify(s, d->op.id, 0, 1);
    free(d->op.error);
    free(d);
    if (!s->closing)
        job_sup_kick(s); /* a device may be free now */
}

static int st_tx(sqlite3 *db, void *arg)
{
    return job_status_tx(db, &((struct st_done *)arg)->op);
}

static void set_status(struct job_sup *s, const char *id, const char *status, const char *error,
                       int started, int finished, int bump)
{
    struct st_done *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->sup = s;
    snprintf(d->op.id, sizeof(d->op.id), "%s", id);
    snprintf(d->op.status, sizeof(d->op.status), "%s", status);
    d->op.error = error ? strdup(error) : NULL;
    d->op.set_started = started;
    d->op.set_finished = finished;
    d->op.bump_attempts = bump;
    d->ended = job_rec_terminal(status);
    if (store_writer_submit(s->w, st_tx, st_written, d)) {
        free(d->op.error);
        free(d);
        return;
    }
    pending_push(s, id, status);
}

/* ---- events from the trainer ---------------------------------------------------------------- */

static void run_event(struct sup_run *r, const char *line, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(line, len, 0, &e);
    struct ev_done *d = calloc(1, sizeof(*d));
    if (!d) {
        json_decref(j);
        return;
    }
    d->sup = r->sup;
    struct job_event_op *op = &d->op;
    snprintf(op->id, sizeof(op->id), "%s", r->id);
    op->seq = ++r->seq;
    op->stage = -1;
    op->progress = -1;
    op->tokens = -1;
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_pack("{s:s, s:s%}", "type", "message", "message", line, len);
    }
    const char *type = json_string_value(json_object_get(j, "type"));
    snprintf(op->type, sizeof(op->type), "%s", type ? type : "message");
    json_t *stage = json_object_get(j, "stage");
    if (json_is_integer(stage))
        op->stage = (int)json_integer_value(stage);
    if (!strcmp(op->type, "stage")) {
        const char *name = json_string_value(json_object_get(j, "name"));
        snprintf(op->stage_name, sizeof(op->stage_name), "%s", name ? name : "");
        const char *st = json_string_value(json_object_get(j, "status"));
        op->progress = st && !strcmp(st, "end") ? 1.0 : 0.0;
    } else if (!strcmp(op->type, "step")) {
        double step = json_number_value(json_object_get(j, "step"));
        double steps = json_number_value(json_object_get(j, "steps"));
        if (steps > 0)
            op->progress = step / steps;
        if (json_is_integer(json_object_get(j, "tokens")))
            op->tokens = json_integer_value(json_object_get(j, "tokens"));
        op->set_metrics = 1;
    } else if (!strcmp(op->type, "checkpoint")) {
        const char *p = json_string_value(json_object_get(j, "path"));
        snprintf(op->ckpt_path, sizeof(op->ckpt_path), "%s", p ? p : "");
        op->ckpt_stage = op->stage;
        op->ckpt_step = json_integer_value(json_object_get(j, "step"));
        json_t *m = json_object_get(j, "metrics");
        op->ckpt_metrics = m ? json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    } else if (!strcmp(op->type, "done")) {
        const char *p = json_string_value(json_object_get(j, "student"));
        r->done_seen = 1;
        snprintf(r->student, sizeof(r->student), "%s", p ? p : "");
        free(r->done_metrics);
        r->done_metrics = json_dumps(json_object_get(j, "metrics"), JSON_COMPACT);
        op->set_metrics = 1;
    } else if (!strcmp(op->type, "error")) {
        const char *m = json_string_value(json_object_get(j, "message"));
        snprintf(r->last_error, sizeof(r->last_error), "%s", m ? m : "trainer error");
    }
    op->data = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!op->data || store_writer_submit(r->sup->w, ev_tx, ev_written, d)) {
        free(op->data);
        free(op->ckpt_metrics);
        free(d);
    }
}

static void run_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sup_run *r = h->data;
    if (r->cap - r->n < 65536) {
        size_t nc = r->cap ? r->cap * 2 : 131072;
        char *np = nc <= 2 * MAX_LINE ? realloc(r->line, nc) : NULL;
        if (np) {
            r->line = np;
            r->cap = nc;
        }
    }
    buf->base = r->line + r->n;
    buf->len = r->cap - r->n;
}

static void run_finish(struct sup_run *r);

static void run_handle_closed(uv_handle_t *h)
{
    struct sup_run *r = h->data;
    if (--r->handles == 0) {
        free(r->line);
        free(r->done_metrics);
        free(r);
    }
}

static void run_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sup_run *r = st->data;
    (void)buf;
    if (nread < 0) {
        if (r->n)
            run_event(r, r->line, r->n); /* last line without newline */
        r->n = 0;
        r->eof = 1;
        uv_read_stop(st);
        if (r->exited)
            run_finish(r);
        return;
    }
    r->n += (size_t)nread;
    size_t start = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->line[i] == '\n') {
            if (i > start)
                run_event(r, r->line + start, i - start);
            start = i + 1;
        }
    memmove(r->line, r->line + start, r->n - start);
    r->n -= start;
    if (r->n >= MAX_LINE) { /* a runaway line: keep it as a message, cut */
        run_event(r, r->line, r->n);
        r->n = 0;
    }
}

/* ---- ending a run ------------------------------------------------------------------------- */

/* Last bytes of the trainer's log, for the error of a failed job. */
static char *log_tail(const char *dir)
{
    char path[1100], buf[1025];
    snprintf(path, sizeof(path), "%s/trainer.log", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 1024 ? size - 1024 : 0, SEEK_SET);
    size_t k = fread(buf, 1, 1024, f);
    fclose(f);
    buf[k] = 0;
    while (k && (buf[k - 1] == '\n' || buf[k - 1] == ' '))
        buf[--k] = 0;
    return strdup(buf);
}

struct reg_work {
    uv_work_t w;
    struct job_sup *sup;
    struct job_model m;
    struct job_rec rec;
    int hash_failed;
    char why[256];
    char *csv;             /* the result file's text (owned), stored by reg_hash */
    char result_files[80]; /* ["file-..."] once stored, else "" */
    char *decision;        /* if_better: the activation event (owned JSON text) or NULL */
    int64_t decision_seq;
};

static void reg_free(struct reg_work *rw)
{
    job_model_release(&rw->m);
    job_rec_release(&rw->rec);
    free(rw->csv);
    free(rw->decision);
    free(rw);
}

/* Worker thread: store the job's metrics CSV as a "fine-tune-results" file (a failure is logged
 * and the job succeeds without it). */
static void reg_store_results(struct reg_work *rw)
{
    struct job_file f;
    char name[96], err[512];
    if (!rw->csv)
        return;
    snprintf(name, sizeof(name), "%s-results.csv", rw->rec.id);
    if (job_file_store_result(rw->sup->st, rw->sup->cfg.data_dir, name, rw->csv, strlen(rw->csv),
                              &f, err, sizeof(err)))
        log_warn("job %s: cannot store its result file: %s", rw->rec.id, err);
    else
        snprintf(rw->result_files, sizeof(rw->result_files), "[\"%s\"]", f.id);
}

static void reg_hash(uv_work_t *w)
{
    struct reg_work *rw = w->data;
    uint64_t bytes = 0;
    reg_store_results(rw);
    int rc = util_sha256_file(rw->m.path, rw->m.sha256, &bytes);
    if (rc) {
        rw->hash_failed = 1;
        snprintf(rw->why, sizeof(rw->why), "student file '%.150s' is missing: %s", rw->m.path,
                 strerror(-rc));
        return;
    }
    rw->m.bytes += (int64_t)bytes;
}

static int reg_tx(sqlite3 *db, void *arg)
{
    struct reg_work *rw = arg;
    int rc = job_model_insert_tx(db, &rw->m);
    if (rc)
        return rc;
    if (rw->decision) { /* the if_better decision, an event before the job ends */
        struct job_event_op ev;
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.id, sizeof(ev.id), "%s", rw->rec.id);
        snprintf(ev.type, sizeof(ev.type), "activation");
        ev.seq = rw->decision_seq;
        ev.data = rw->decision;
        ev.stage = -1;
        ev.progress = -1;
        ev.tokens = -1;
        if ((rc = job_event_tx(db, &ev)))
            return rc;
    }
    struct job_status_op op;
    memset(&op, 0, sizeof(op));
    snprintf(op.id, sizeof(op.id), "%s", rw->rec.id);
    snprintf(op.status, sizeof(op.status), "succeeded");
    snprintf(op.result_model, sizeof(op.result_model), "%s", rw->m.id);
    op.result_files = rw->result_files[0] ? rw->result_files : NULL;
    op.set_finished = 1;
    return job_status_tx(db, &op);
}

static void reg_written(void *arg, int status)
{
    struct reg_work *rw = arg;
    struct job_sup *s = rw->sup;
    if (status) {
        log_error("job %s: cannot register its model", rw->rec.id);
        set_status(s, rw->rec.id, "failed", "cannot register the student model", 0, 1, 0);
    } else {
        log_info("job %s succeeded: model %s (%lld bytes, sha256 %.12s)", rw->rec.id, rw->m.id,
                 (long long)rw->m.bytes, rw->m.sha256);
        if (rw->decision)
            notify(s, rw->rec.id, rw->decision_seq, 0);
        if (s->hooks.on_success)
            s->hooks.on_success(s->hooks.arg, &rw->rec, &rw->m);
        notify(s, rw->rec.id, 0, 1);
        job_sup_kick(s);
    }
    reg_free(rw);
}

static void reg_hashed(uv_work_t *w, int status)
{
    struct reg_work *rw = w->data;
    (void)status;
    if (rw->hash_failed) {
        set_status(rw->sup, rw->rec.id, "failed", rw->why, 0, 1, 0);
        reg_free(rw);
        return;
    }
    if (store_writer_submit(rw->sup->w, reg_tx, reg_written, rw))
        reg_free(rw);
}

static void run_succeeded(struct sup_run *r)
{
    struct job_sup *s = r->sup;
    struct reg_work *rw = calloc(1, sizeof(*rw));
    if (!rw || job_rec_get(s->st, r->id, &rw->rec)) {
        free(rw);
        set_status(s, r->id, "failed", "the job vanished from the database", 0, 1, 0);
        return;
    }
    rw->sup = s;
    snprintf(rw->m.id, sizeof(rw->m.id), "%s", r->id);
    if (!strncmp(rw->m.id, "ftjob-", 6)) /* model ids: "bd-<job hex>" */
        snprintf(rw->m.id, sizeof(rw->m.id), "bd-%s", r->id + 6);
    json_error_t e;
    json_t *spec = json_loads(rw->rec.spec ? rw->rec.spec : "{}", 0, &e);
    const char *suffix = json_string_value(json_object_get(spec, "suffix"));
    if (suffix && *suffix) {
        size_t n = strlen(rw->m.id);
        snprintf(rw->m.id + n, sizeof(rw->m.id) - n, ":%s", suffix);
    }
    const char *task = json_string_value(json_object_get(spec, "task_type"));
    snprintf(rw->m.task, sizeof(rw->m.task), "%s", task ? task : "classification");
    json_decref(spec);
    snprintf(rw->m.path, sizeof(rw->m.path), "%s", r->student);
    snprintf(rw->m.job_id, sizeof(rw->m.job_id), "%s", r->id);
    rw->m.metrics = r->done_metrics ? strdup(r->done_metrics) : NULL;
    snprintf(rw->m.status, sizeof(rw->m.status), "unloaded");
    rw->csv = job_results_csv(s->st, r->id); /* the events are read here, on the loop thread */
    if (rw->rec.activate == JOB_ACTIVATE_IF_BETTER) {
        /* on_success reads rec.activate as "activate now" */
        rw->decision = job_better_decide(r->done_metrics, &rw->rec.activate);
        if (rw->decision)
            rw->decision_seq = ++r->seq;
    }
    rw->w.data = rw;
    if (uv_queue_work(s->loop, &rw->w, reg_hash, reg_hashed))
        reg_free(rw);
}

static void run_unlink(struct job_sup *s, struct sup_run *r)
{
    for (struct sup_run **pp = &s->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
}

static void run_finish(struct sup_run *r)
{
    struct job_sup *s = r->sup;
    char pidfile[1100];
    snprintf(pidfile, sizeof(pidfile), "%s/trainer.pid", r->dir);
    run_unlink(s, r);
    if (!s->closing) {
        unlink(pidfile);
        if (r->cancel) {
            log_info("job %s cancelled", r->id);
            set_status(s, r->id, "cancelled", NULL, 0, 1, 0);
        } else if (r->exit_status == 0 && !r->term_signal && r->done_seen && r->student[0]) {
            run_succeeded(r);
        } else if (r->pause && (r->exit_status == 4 || r->term_signal == SIGUSR1)) {
            /* exit 4: checkpointed and stopped; SIGUSR1's default action: it came before the
             * trainer set its handler, and --resume starts from the last checkpoint if any */
            log_info("job %s paused", r->id);
            set_status(s, r->id, "paused", NULL, 0, 0, 0);
        } else {
            char why[1600];
            char *tail = log_tail(r->dir);
            if (r->last_error[0])
                snprintf(why, sizeof(why), "%s", r->last_error);
            else if (r->term_signal)
                snprintf(why, sizeof(why), "the trainer was killed by signal %d (%s); log: %s",
                         r->term_signal, strsignal(r->term_signal), tail);
            else
                snprintf(why, sizeof(why), "the trainer exited with status %lld; log: %s",
                         (long long)r->exit_status, tail);
            free(tail);
            if (r->attempts <= s->cfg.retries) {
                log_warn("job %s failed (%s); retrying", r->id, why);
                set_status(s, r->id, "queued", why, 0, 0, 0);
            } else {
                log_warn("job %s failed: %s", r->id, why);
                set_status(s, r->id, "failed", why, 0, 1, 0);
            }
        }
    }
    uv_close((uv_handle_t *)&r->kill_timer, run_handle_closed);
    uv_close((uv_handle_t *)&r->proc, run_handle_closed);
    uv_close((uv_handle_t *)&r->pipe, run_handle_closed);
}

static void run_exit(uv_process_t *p, int64_t status, int sig)
{
    struct sup_run *r = p->data;
    r->exited = 1;
    r->exit_status = status;
    r->term_signal = sig;
    uv_timer_stop(&r->kill_timer);
    if (r->eof)
        run_finish(r);
}

static void run_kill_now(uv_timer_t *t)
{
    struct sup_run *r = t->data;
    if (!r->exited) {
        log_warn("job %s: trainer ignored SIGTERM; sending SIGKILL", r->id);
        uv_process_kill(&r->proc, SIGKILL);
    }
}

/* ---- starting runs ---------------------------------------------------------------------- */

/* Kill a trainer a previous daemon left behind (its pid file names it; its command line must
 * mention the job directory, so a recycled pid is left alone). */
static void kill_leftover(const char *dir)
{
    char path[1100], cmd[4096];
    snprintf(path, sizeof(path), "%s/trainer.pid", dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f)
        return;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 1)
        return;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    f = fopen(path, "rb");
    if (!f)
        return;
    size_t k = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    for (size_t i = 0; i < k; i++)
        if (!cmd[i])
            cmd[i] = ' ';
    cmd[k] = 0;
    if (!strstr(cmd, dir) || !strstr(cmd, " train "))
        return;
    log_warn("killing trainer %d left over from a previous run of job dir %s", pid, dir);
    kill(pid, SIGKILL);
    for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
        usleep(10000);
}

/* Copy template to out with every "{name}" replaced by name. */
static void expand_name(const char *template, const char *name, char *out, size_t outlen)
{
    size_t o = 0, nl = strlen(name);
    for (const char *p = template; *p && o + 1 < outlen;) {
        if (!strncmp(p, "{name}", 6) && o + nl + 1 < outlen) {
            memcpy(out + o, name, nl);
            o += nl;
            p += 6;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
}

static void cancel_cmd_closed(uv_handle_t *h)
{
    free(h);
}

static void cancel_cmd_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)status;
    (void)sig;
    uv_close((uv_handle_t *)p, cancel_cmd_closed);
}

/* Run the cluster's cancel command for a launched job (fire and forget). */
static void run_cancel_cmd(struct job_sup *s, const char *id)
{
    char name[64], buf[2048];
    char *args[24], *sv;
    int n = 0;
    snprintf(name, sizeof(name), "bd-%s", id);
    expand_name(s->cfg.cancel_cmd, name, buf, sizeof(buf));
    for (char *w = strtok_r(buf, " ", &sv); w && n < 23; w = strtok_r(NULL, " ", &sv))
        args[n++] = w;
    args[n] = NULL;
    if (!n)
        return;
    uv_process_t *p = calloc(1, sizeof(*p));
    uv_process_options_t opt;
    memset(&opt, 0, sizeof(opt));
    opt.file = args[0];
    opt.args = args;
    opt.exit_cb = cancel_cmd_exit;
    if (!p || uv_spawn(s->loop, p, &opt)) {
        log_warn("job %s: cannot run the cancel command '%s'", id, s->cfg.cancel_cmd);
        free(p);
    }
}

/* The GPUs a device string names as a bit set ("cuda:all": every bit; "cpu": none). */
static uint64_t device_gpus(const char *device)
{
    uint64_t set = 0;
    if (strncmp(device, "cuda", 4))
        return 0;
    if (!strcmp(device, "cuda") || !strcmp(device, "cuda:all"))
        return ~(uint64_t)0;
    for (const char *p = device + 5; *p;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p)
            break;
        if (k >= 0 && k < 64)
            set |= (uint64_t)1 << k;
        p = *end == ',' ? end + 1 : end;
    }
    return set;
}

/* CPU jobs share cpu_jobs slots; GPU jobs never share a GPU (multi-GPU jobs reserve all theirs). */
static int device_busy(struct job_sup *s, const char *device)
{
    int cpu = 0;
    uint64_t want = device_gpus(device);
    for (struct sup_run *r = s->runs; r; r = r->next) {
        if (!strcmp(device, "cpu"))
            cpu += !strcmp(r->device, "cpu");
        else if (device_gpus(r->device) & want)
            return 1;
    }
    return !strcmp(device, "cpu") && cpu >= (s->cfg.cpu_jobs > 0 ? s->cfg.cpu_jobs : 1);
}

static int run_start(struct job_sup *s, const struct job_rec *rec)
{
    struct sup_run *r = calloc(1, sizeof(*r));
    char config[1100], out[1100], latest[1200], logp[1100], threads[16], pidfile[1100];
    char *args[48];
    int n = 0, rc;
    if (!r)
        return -1;
    r->sup = s;
    snprintf(r->id, sizeof(r->id), "%s", rec->id);
    snprintf(r->dir, sizeof(r->dir), "%s", rec->dir);
    snprintf(r->device, sizeof(r->device), "%s", rec->device);
    r->seq = job_events_max_seq(s->st, rec->id);
    r->activate = rec->activate;
    r->attempts = rec->attempts + 1;
    kill_leftover(rec->dir);
    snprintf(config, sizeof(config), "%s/job.json", rec->dir);
    snprintf(out, sizeof(out), "%s/out", rec->dir);
    snprintf(latest, sizeof(latest), "%s/out/checkpoints/LATEST", rec->dir);
    snprintf(logp, sizeof(logp), "%s/trainer.log", rec->dir);
    char name[64], lbuf[2048];
    char *largs[24];
    int nl = 0;
    snprintf(name, sizeof(name), "bd-%s", rec->id);
    if (s->cfg.launcher) {
        /* The launcher's words, {name} expanded, then the trainer's command line. */
        char *sv, *w;
        expand_name(s->cfg.launcher, name, lbuf, sizeof(lbuf));
        for (w = strtok_r(lbuf, " ", &sv); w && nl < 20; w = strtok_r(NULL, " ", &sv))
            largs[nl++] = w;
        for (int i = 0; i < nl; i++)
            args[n++] = largs[i];
    }
    args[n++] = (char *)s->cfg.trainer;
    args[n++] = "train";
    args[n++] = "--config";
    args[n++] = config;
    args[n++] = "--out";
    args[n++] = out;
    args[n++] = "--events-fd";
    args[n++] = s->cfg.launcher ? "1" : "3";
    args[n++] = "--device";
    args[n++] = r->device;
    if (s->cfg.threads > 0 && !strcmp(r->device, "cpu")) {
        snprintf(threads, sizeof(threads), "%d", s->cfg.threads);
        args[n++] = "--threads";
        args[n++] = threads;
    }
    int resume = access(latest, R_OK) == 0;
    if (resume)
        args[n++] = "--resume";
    args[n] = NULL;

    int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    uv_pipe_init(s->loop, &r->pipe, 0);
    uv_timer_init(s->loop, &r->kill_timer);
    r->pipe.data = r->proc.data = r->kill_timer.data = r;
    r->handles = 3;
    uv_stdio_container_t io[4];
    io[0].flags = UV_IGNORE;
    io[1].flags = logfd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    io[1].data.fd = logfd;
    io[2] = io[1];
    io[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[3].data.stream = (uv_stream_t *)&r->pipe;
    if (s->cfg.launcher) /* events on the trainer's stdout, which the launcher forwards */
        io[1] = io[3];
    uv_process_options_t opt;
    memset(&opt, 0, sizeof(opt));
    opt.file = args[0];
    opt.args = args;
    opt.cwd = rec->dir;
    opt.stdio = io;
    opt.stdio_count = s->cfg.launcher ? 3 : 4;
    opt.exit_cb = run_exit;
    rc = uv_spawn(s->loop, &r->proc, &opt);
    if (logfd >= 0)
        close(logfd);
    if (rc) {
        char why[512];
        snprintf(why, sizeof(why), "cannot start the trainer '%s': %s", s->cfg.trainer,
                 uv_strerror(rc));
        log_error("job %s: %s", rec->id, why);
        set_status(s, rec->id, "failed", why, 0, 1, 1);
        r->exited = r->eof = 1;
        uv_close((uv_handle_t *)&r->kill_timer, run_handle_closed);
        uv_close((uv_handle_t *)&r->pipe, run_handle_closed);
        uv_close((uv_handle_t *)&r->proc, run_handle_closed);
        return -1;
    }
    snprintf(pidfile, sizeof(pidfile), "%s/trainer.pid", rec->dir);
    FILE *pf = fopen(pidfile, "w");
    if (pf) {
        fprintf(pf, "%d\n", r->proc.pid);
        fclose(pf);
    }
    uv_read_start((uv_stream_t *)&r->pipe, run_alloc, run_read);
    r->next = s->runs;
    s->runs = r;
    log_info("job %s: trainer %d started on %s%s (attempt %d)", rec->id, r->proc.pid, r->device,
             resume ? ", resuming from its last checkpoint" : "", r->attempts);
    set_status(s, rec->id, "running", NULL, !resume, 0, 1);
    return 0;
}

static struct sup_run *run_find(struct job_sup *s, const char *id)
{
    for (struct sup_run *r = s->runs; r; r = r->next)
        if (!strcmp(r->id, id))
            return r;
    return NULL;
}

void job_sup_kick(struct job_sup *s)
{
    char ids[64][48];
    if (s->closing || s->cfg.disabled)
        return;
    int n = job_rec_ids_by_status(s->st, "queued", ids, 64);
    for (int i = 0; i < n; i++) {
        struct job_rec rec;
        char now[24];
        if (run_find(s, ids[i]) || effective_status(s, ids[i], now) || strcmp(now, "queued") ||
            job_rec_get(s->st, ids[i], &rec))
            continue;
        if (!device_busy(s, rec.device))
            run_start(s, &rec);
        job_rec_release(&rec);
    }
}

/* ---- life ------------------------------------------------------------------------------------ */

struct job_sup *job_sup_create(uv_loop_t *loop, struct store *st, struct store_writer *w,
                               const struct job_sup_cfg *cfg, const struct job_sup_hooks *hooks)
{
    struct job_sup *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->st = st;
    s->w = w;
    s->cfg = *cfg;
    if (s->cfg.kill_grace_ms <= 0)
        s->cfg.kill_grace_ms = 10000;
    if (hooks)
        s->hooks = *hooks;
    return s;
}

void job_sup_start(struct job_sup *s)
{
    char ids[64][48];
    if (s->cfg.disabled)
        return;
    int n = job_rec_ids_by_status(s->st, "running", ids, 64);
    for (int i = 0; i < n; i++) {
        struct job_rec rec;
        if (job_rec_get(s->st, ids[i], &rec))
            continue;
        log_warn("job %s was running when the daemon stopped: resuming it", rec.id);
        run_start(s, &rec);
        job_rec_release(&rec);
    }
    /* Jobs whose submission was interrupted before they were queued. */
    n = job_rec_ids_by_status(s->st, "validating_files", ids, 64);
    for (int i = 0; i < n; i++)
        set_status(s, ids[i], "failed", "the daemon stopped while the job was being validated", 0,
                   1, 0);
    job_sup_kick(s);
}

int job_sup_cancel(struct job_sup *s, const char *id)
{
    char status[24];
    if (effective_status(s, id, status))
        return STORE_ENOTFOUND;
    if (job_rec_terminal(status))
        return STORE_EEXIST;
    struct sup_run *r = run_find(s, id);
    if (!r) {
        set_status(s, id, "cancelled", NULL, 0, 1, 0);
        return 0;
    }
    if (!r->cancel) {
        r->cancel = 1;
        if (s->cfg.cancel_cmd)
            run_cancel_cmd(s, id);
        uv_process_kill(&r->proc, SIGTERM);
        uv_timer_start(&r->kill_timer, run_kill_now, (uint64_t)s->cfg.kill_grace_ms, 0);
    }
    return 0;
}

int job_sup_pause(struct job_sup *s, const char *id, char status[24])
{
    if (effective_status(s, id, status))
        return STORE_ENOTFOUND;
    if (strcmp(status, "running") && strcmp(status, "queued"))
        return STORE_EEXIST;
    struct sup_run *r = run_find(s, id);
    if (r && r->cancel)
        return STORE_EEXIST;
    if (r && s->cfg.launcher)
        return JOB_SUP_ENOPAUSE;
    if (!r) { /* queued, or running on a daemon that runs no jobs: nothing to stop */
        set_status(s, id, "paused", NULL, 0, 0, 0);
        snprintf(status, 24, "paused");
        return 0;
    }
    if (!r->pause) {
        r->pause = 1;
        uv_process_kill(&r->proc, SIGUSR1);
    }
    snprintf(status, 24, "pausing");
    return 0;
}

int job_sup_resume(struct job_sup *s, const char *id, char status[24])
{
    if (effective_status(s, id, status))
        return STORE_ENOTFOUND;
    if (strcmp(status, "paused"))
        return STORE_EEXIST;
    set_status(s, id, "queued", NULL, 0, 0, 0); /* started by the kick after the write */
    snprintf(status, 24, "queued");
    return 0;
}

int job_sup_running(const struct job_sup *s)
{
    int n = 0;
    for (struct sup_run *r = s->runs; r; r = r->next)
        n++;
    return n;
}

void job_sup_close(struct job_sup *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    /* Watchers (event streams) end now: each is told its job ended, and unwatches. */
    while (s->watches) {
        struct sup_watch *w = s->watches;
        w->fn(w->arg, w->id, 0, 1);
        if (s->watches == w) { /* it did not unwatch itself */
            s->watches = w->next;
            free(w);
        }
    }
    while (s->runs) {
        struct sup_run *r = s->runs;
        s->runs = r->next;
        log_info("job %s: stopping its trainer; it resumes at the next start", r->id);
        if (!r->exited)
            uv_process_kill(&r->proc, SIGTERM);
        uv_close((uv_handle_t *)&r->kill_timer, run_handle_closed);
        uv_close((uv_handle_t *)&r->proc, run_handle_closed);
        uv_close((uv_handle_t *)&r->pipe, run_handle_closed);
    }
}

void job_sup_free(struct job_sup *s)
{
    if (!s)
        return;
    while (s->watches) {
        struct sup_watch *w = s->watches;
        s->watches = w->next;
        free(w);
    }
    while (s->pending) {
        struct sup_pending *p = s->pending;
        s->pending = p->next;
        free(p);
    }
    free(s);
}
