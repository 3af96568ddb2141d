/*
 * tests/test-trn-dist.c — several training processes (train/dist.h) without a GPU:
 *  - Slurm hostlists ("gpu[01-03,7],login1", padding, several bracket groups, bad syntax);
 *  - rank, world, rank 0's address and the port from the environment (srun step, batch script,
 *    BITDISTILL_DIST_* overrides, bad values);
 *  - the GPUs each rank drives (cuda:all shared by the ranks of a host, or bound per rank);
 *  - the rendezvous itself: ranks forked on loopback with Slurm's variables set receive the same
 *    128-byte id and a consistent layout; a rank that never comes, a rank that exits mid-job,
 *    a failed rank, a rank out of step, a rank without a GPU, an unreachable rank 0, a port in
 *    use and a duplicate rank each end every rank with an error naming it, within the deadline;
 *  - `bitdistill dist-check` as two processes.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/err.h"
#include "tests/tap.h"
#include "train/dist.h"

#define DEADLINE_S 2 /* BITDISTILL_DIST_TIMEOUT of the failure cases */
#define SLACK_S 4.0  /* what a failure may take beyond it (peers wait 5 s more at most) */
#define MAXR 8

static const char *const vars[] = {"SLURM_PROCID",          "SLURM_NTASKS",
                                   "SLURM_STEP_NUM_TASKS",  "SLURM_STEP_ID",
                                   "SLURM_STEPID",          "SLURM_JOB_ID",
                                   "SLURM_JOB_NODELIST",    "SLURM_STEP_NODELIST",
                                   "SLURM_LOCALID",         "BITDISTILL_DIST_RANK",
                                   "BITDISTILL_DIST_WORLD", "BITDISTILL_DIST_ADDR",
                                   "BITDISTILL_DIST_PORT",  "BITDISTILL_DIST_TIMEOUT",
                                   "CUDA_VISIBLE_DEVICES"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

/* "A=1 B=2" into the environment (after clearing the variables above). */
static void set_env(const char *list)
{
    char buf[1024], *sv;
    clear_env();
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *w = strtok_r(buf, " ", &sv); w; w = strtok_r(NULL, " ", &sv)) {
        char *eq = strchr(w, '=');
        if (eq) {
            *eq = 0;
            setenv(w, eq + 1, 1);
        }
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* ------------------------------------------------------------------ hostlists */

static void hostlists(void)
{
    static const struct {
        const char *list;
        int count, nth;
        const char *want; /* NULL: nth must fail */
    } c[] = {
        {"gpu[01-03,7],login1", 5, 0, "gpu01"},
        {"gpu[01-03,7],login1", 5, 2, "gpu03"},
        {"gpu[01-03,7],login1", 5, 3, "gpu7"},
        {"gpu[01-03,7],login1", 5, 4, "login1"},
        {"gpu[01-03,7],login1", 5, 5, NULL},
        {"localhost", 1, 0, "localhost"},
        {"n[008-010]", 3, 2, "n010"},
        {"x[9-11]y", 3, 1, "x10y"},
        {"a[1-2]-b[3-4]", 4, 1, "a1-b4"},
        {"a[1-2]-b[3-4]", 4, 2, "a2-b3"},
        {"r1n[1-2],r2n[5-6]", 4, 2, "r2n5"},
        {"node-7.cluster.example", 1, 0, "node-7.cluster.example"},
        {"", 0, 0, NULL},
        {"gpu[01-", -1, 0, NULL},
        {"gpu[3-1]", -1, 0, NULL},
        {"a,,b", -1, 0, NULL},
        {"a,", -1, 0, NULL},
        {"gpu]", -1, 0, NULL},
        {"a[]", -1, 0, NULL},
        {"a[x]", -1, 0, NULL},
        {"[1-2]", 2, 1, "2"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char out[64] = "";
        int n = trn_dist_hostlist_count(c[i].list);
        int rc = trn_dist_hostlist_nth(c[i].list, c[i].nth, out, sizeof(out));
        int ok = n == c[i].count && (c[i].want ? rc == 0 && !strcmp(out, c[i].want) : rc != 0);
        TAP_OK(ok, "hostlist '%s': %d hosts (want %d), #%d '%s' (want %s)", c[i].list, n,
               c[i].count, c[i].nth, rc ? "(fails)" : out, c[i].want ? c[i].want : "a failure");
    }
    char small[6];
    TAP_OK(trn_dist_hostlist_nth("gpu[01-03]", 0, small, sizeof(small)) == 0 &&
               trn_dist_hostlist_nth("longname[1]", 0, small, sizeof(small)) != 0,
           "a host name that does not fit the buffer fails");
}

/* ------------------------------------------------------------------ environment */

static void environment(void)
{
    struct trn_dist_cfg c;
    char err[ENG_ERR_LEN];
    int rc;
#define CFG(env) (set_env(env), rc = trn_dist_cfg_env(&c, err))
    CFG("");
    TAP_OK(rc == 0 && c.world == 1 && c.rank == 0 && !strcmp(c.source, "none") &&
               c.timeout_s == TRN_DIST_DEFAULT_TIMEOUT,
           "no launcher: a single process");
    CFG("SLURM_PROCID=1 SLURM_NTASKS=4 SLURM_STEP_ID=0 SLURM_JOB_ID=1234 "
        "SLURM_JOB_NODELIST=gpu[01-04]");
    TAP_OK(rc == 0 && c.rank == 1 && c.world == 4 && !strcmp(c.addr, "gpu01") &&
               c.port == 20000 + 234 * 10 && !strcmp(c.source, "slurm"),
           "srun step: rank %d of %d, rank 0 at %s port %d (%s)", c.rank, c.world, c.addr, c.port,
           c.source);
    CFG("SLURM_PROCID=2 SLURM_NTASKS=8 SLURM_STEP_NUM_TASKS=3 SLURM_STEPID=3 "
        "SLURM_JOB_ID=77 SLURM_JOB_NODELIST=a[1-9] SLURM_STEP_NODELIST=a[4-6]");
    TAP_OK(rc == 0 && c.rank == 2 && c.world == 3 && !strcmp(c.addr, "a4") &&
               c.port == 20000 + 770 + 3,
           "the step's task count and node list win over the job's (rank %d of %d at %s:%d)",
           c.rank, c.world, c.addr, c.port);
    CFG("SLURM_PROCID=0 SLURM_NTASKS=4 SLURM_JOB_ID=5 SLURM_JOB_NODELIST=gpu[01-04]");
    TAP_OK(rc == 0 && c.world == 1,
           "a batch script (no step id) is one process, whatever the allocation's task count");
    CFG("SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_STEP_ID=0 SLURM_JOB_NODELIST=n1");
    TAP_OK(rc == 0 && c.world == 1, "srun -n1: one process");
    CFG("BITDISTILL_DIST_RANK=1 BITDISTILL_DIST_WORLD=2 BITDISTILL_DIST_ADDR=127.0.0.1 "
        "BITDISTILL_DIST_PORT=4567 BITDISTILL_DIST_TIMEOUT=9");
    TAP_OK(rc == 0 && c.rank == 1 && c.world == 2 && !strcmp(c.addr, "127.0.0.1") &&
               c.port == 4567 && c.timeout_s == 9 && !strcmp(c.source, "env"),
           "BITDISTILL_DIST_*: rank %d of %d at %s:%d, timeout %.0f s", c.rank, c.world, c.addr,
           c.port, c.timeout_s);
    CFG("BITDISTILL_DIST_RANK=0 BITDISTILL_DIST_WORLD=2 BITDISTILL_DIST_ADDR=h");
    TAP_OK(rc == 0 && c.port == TRN_DIST_DEFAULT_PORT,
           "no port and no Slurm job: the default port %d", c.port);
    CFG("SLURM_PROCID=3 SLURM_NTASKS=4 SLURM_STEP_ID=0 SLURM_JOB_NODELIST=n[1-4] "
        "BITDISTILL_DIST_RANK=0 BITDISTILL_DIST_WORLD=1");
    TAP_OK(rc == 0 && c.world == 1 && c.rank == 0,
           "BITDISTILL_DIST_WORLD=1 overrides Slurm (one process)");
    CFG("SLURM_PROCID=3 SLURM_NTASKS=4 SLURM_STEP_ID=0 SLURM_JOB_NODELIST=n[1-4] "
        "BITDISTILL_DIST_ADDR=10.1.2.3 BITDISTILL_DIST_PORT=999");
    TAP_OK(rc == 0 && c.rank == 3 && !strcmp(c.addr, "10.1.2.3") && c.port == 999,
           "BITDISTILL_DIST_ADDR and _PORT override the node list and the derived port");
    static const struct {
        const char *env, *want;
    } bad[] = {
        {"BITDISTILL_DIST_RANK=0", "set together"},
        {"BITDISTILL_DIST_RANK=2 BITDISTILL_DIST_WORLD=2 BITDISTILL_DIST_ADDR=h",
         "BITDISTILL_DIST_RANK='2'"},
        {"BITDISTILL_DIST_RANK=x BITDISTILL_DIST_WORLD=2", "BITDISTILL_DIST_RANK='x'"},
        {"BITDISTILL_DIST_RANK=0 BITDISTILL_DIST_WORLD=2 BITDISTILL_DIST_ADDR=h "
         "BITDISTILL_DIST_PORT=70000",
         "BITDISTILL_DIST_PORT='70000'"},
        {"BITDISTILL_DIST_RANK=0 BITDISTILL_DIST_WORLD=2", "BITDISTILL_DIST_ADDR"},
        {"SLURM_PROCID=0 SLURM_NTASKS=2 SLURM_STEP_ID=0 SLURM_JOB_NODELIST=gpu[1-",
         "SLURM_JOB_NODELIST='gpu[1-'"},
        {"SLURM_PROCID=5 SLURM_NTASKS=2 SLURM_STEP_ID=0 SLURM_JOB_NODELIST=a", "SLURM_PROCID"},
        {"BITDISTILL_DIST_TIMEOUT=0", "BITDISTILL_DIST_TIMEOUT"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        CFG(bad[i].env);
        TAP_OK(rc == ENG_EINVAL && strstr(err, bad[i].want), "%s: fails naming %s (%s)", bad[i].env,
               bad[i].want, err);
    }
#undef CFG
    clear_env();
}

/* ------------------------------------------------------------------ placement */

static void placement(void)
{
    static const struct {
        const char *dev;
        int visible, lr, lw, shared, n, first;
    } c[] = {
        {"cuda:all", 8, 0, 1, 1, 8, 0}, /* one task per node: every GPU */
        {"cuda:all", 8, 1, 2, 1, 4, 4}, /* two tasks sharing 8 GPUs: the second half */
        {"cuda:all", 8, 2, 3, 1, 3, 5}, /* three tasks: 2, 3, 3 GPUs */
        {"cuda:all", 1, 1, 2, 0, 1, 0}, /* bound one GPU per task (CUDA_VISIBLE_DEVICES) */
        {"cuda:all", 2, 1, 2, 0, 2, 0}, /* bound two per task */
        {"cuda:all", 1, 1, 2, 1, 1, 0}, /* fewer GPUs than tasks: each its visible one */
        {"cuda:1,3", 8, 1, 2, 1, 2, 1}, /* an explicit list is used as given */
        {"cuda:2", 8, 0, 4, 1, 1, 2},   {"cuda", 8, 3, 4, 1, 1, 0},
        {"cpu", 8, 0, 1, 1, 0, 0},      {"cuda:1,1", 8, 0, 1, 1, -1, 0},
        {"cuda:x", 8, 0, 1, 1, -1, 0},  {"cuda:1,", 8, 0, 1, 1, -1, 0},
        {"gpu", 8, 0, 1, 1, -1, 0},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int devs[64] = {0};
        int n =
            trn_dist_pick_devices(c[i].dev, c[i].visible, c[i].lr, c[i].lw, c[i].shared, devs, 64);
        TAP_OK(n == c[i].n && (n <= 0 || devs[0] == c[i].first),
               "%s, %d visible, local rank %d of %d%s: %d GPUs from %d (want %d from %d)", c[i].dev,
               c[i].visible, c[i].lr, c[i].lw, c[i].shared ? " (shared)" : "", n,
               n > 0 ? devs[0] : -1, c[i].n, c[i].first);
    }
}

/* ------------------------------------------------------------------ forked ranks */

enum act { ACT_OK, ACT_EXIT, ACT_FAIL, ACT_CHECK };

struct res {
    int got, rc, rank, world, lrank, lworld, first, gpus;
    char dev[64];
    unsigned char id[128];
    double sum, secs;
    char err[ENG_ERR_LEN];
};

struct scen {
    const char *name;
    int n;                 /* processes forked */
    const char *env[MAXR]; /* per process; "%d" is its index, "%P" the port */
    const char *device[MAXR];
    int visible, need_gpu;
    enum act act;
    int who; /* the process that acts */
};

static uint64_t hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void expand(const char *in, int k, int port, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 8 < len; p++) {
        if (p[0] == '%' && p[1] == 'd') {
            o += (size_t)snprintf(out + o, len - o, "%d", k);
            p++;
        } else if (p[0] == '%' && p[1] == 'P') {
            o += (size_t)snprintf(out + o, len - o, "%d", port);
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
}

static void child(const struct scen *s, int k, int port, int fd)
{
    struct res r;
    struct trn_dist_cfg c;
    struct trn_dist *d = NULL;
    char env[1024];
    memset(&r, 0, sizeof(r));
    expand(s->env[k] ? s->env[k] : s->env[0], k, port, env, sizeof(env));
    set_env(env);
    double t0 = now();
    r.rc = trn_dist_cfg_env(&c, r.err);
    if (!r.rc)
        r.rc = trn_dist_start(&c, s->device[k] ? s->device[k] : "cuda:all", s->visible, s->need_gpu,
                              &d, r.dev, sizeof(r.dev), r.err);
    if (!r.rc && d) {
        r.rank = trn_dist_rank(d);
        r.world = trn_dist_world(d);
        r.lrank = trn_dist_local_rank(d);
        r.lworld = trn_dist_local_world(d);
        r.first = trn_dist_first_gpu(d);
        r.gpus = trn_dist_gpus(d);
        if (r.rank == 0)
            for (int i = 0; i < 128; i++)
                r.id[i] = (unsigned char)(i * 37 + getpid());
        r.rc = trn_dist_bcast(d, r.id, sizeof(r.id), r.err);
        if (!r.rc && s->act == ACT_EXIT && k == s->who)
            _exit(9); /* dies without a word, mid-job */
        if (!r.rc) {
            double v = r.rank + 1;
            int st = s->act == ACT_FAIL && k == s->who ? ENG_ENOMEM : 0;
            uint64_t chk = hash(r.id, sizeof(r.id)) ^ (s->act == ACT_CHECK && k == s->who);
            r.rc = trn_dist_reduce(d, st, st ? "cuda:0: out of memory (test)" : NULL, chk, &v, 1,
                                   r.err);
            r.sum = v;
        }
    }
    r.secs = now() - t0;
    r.got = 1;
    trn_dist_free(d);
    if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(2);
    _exit(0);
}

/* Fork the scenario's processes; res[k] gets what process k reports (got 0: it said nothing). */
static int run_scen(const struct scen *s, struct res *res, int *port_out)
{
    int port = free_port(), fds[MAXR];
    pid_t pid[MAXR];
    *port_out = port;
    fflush(stdout);
    for (int k = 0; k < s->n; k++) {
        int p[2];
        if (pipe(p))
            return -1;
        pid[k] = fork();
        if (pid[k] == 0) {
            close(p[0]);
            child(s, k, port, p[1]);
        }
        close(p[1]);
        fds[k] = p[0];
    }
    for (int k = 0; k < s->n; k++) {
        memset(&res[k], 0, sizeof(res[k]));
        size_t o = 0;
        while (o < sizeof(res[k])) {
            ssize_t r = read(fds[k], (char *)&res[k] + o, sizeof(res[k]) - o);
            if (r <= 0)
                break;
            o += (size_t)r;
        }
        if (o != sizeof(res[k]))
            memset(&res[k], 0, sizeof(res[k]));
        close(fds[k]);
        waitpid(pid[k], NULL, 0);
    }
    return 0;
}

static void rendezvous_ok(void)
{
    struct res r[MAXR];
    int port;
    /* four ranks of one srun step on one node, sharing 8 (pretend) GPUs: 2 each */
    struct scen s = {"srun -n4, one node, 8 GPUs shared",
                     4,
                     {"SLURM_PROCID=%d SLURM_NTASKS=4 SLURM_STEP_ID=0 SLURM_JOB_ID=42 "
                      "SLURM_JOB_NODELIST=localhost BITDISTILL_DIST_PORT=%P "
                      "BITDISTILL_DIST_TIMEOUT=20"},
                     {0},
                     8,
                     1,
                     ACT_OK,
                     -1};
    run_scen(&s, r, &port);
    int same = 1, layout = 1;
    for (int k = 0; k < s.n; k++) {
        char want[32];
        snprintf(want, sizeof(want), "cuda:%d,%d", 2 * k, 2 * k + 1);
        same &= r[k].got && r[k].rc == 0 && !memcmp(r[k].id, r[0].id, sizeof(r[0].id));
        layout &= r[k].rank == k && r[k].world == 4 && r[k].lrank == k && r[k].lworld == 4 &&
                  r[k].first == 2 * k && r[k].gpus == 8 && !strcmp(r[k].dev, want) &&
                  r[k].sum == 10;
        if (!r[k].got || r[k].rc)
            TAP_DIAG("process %d: rc %d %s", k, r[k].rc, r[k].err);
    }
    TAP_OK(same, "%s: all 4 ranks got rank 0's 128-byte id", s.name);
    TAP_OK(layout,
           "%s: ranks 0-3, local ranks 0-3 of 4, GPUs cuda:0,1 .. cuda:6,7 = global "
           "0-7 of 8, sum over ranks 10 (rank 3: %s first %d of %d, sum %g)",
           s.name, r[3].dev, r[3].first, r[3].gpus, r[3].sum);

    /* one GPU bound per task (Slurm --gpus-per-task=1): each drives its own, world of 3 */
    struct scen b = {"srun -n3 --gpus-per-task=1",
                     3,
                     {"SLURM_PROCID=%d SLURM_STEP_NUM_TASKS=3 SLURM_NTASKS=3 SLURM_STEP_ID=1 "
                      "SLURM_STEP_NODELIST=localhost BITDISTILL_DIST_PORT=%P "
                      "CUDA_VISIBLE_DEVICES=%d"},
                     {0},
                     1,
                     1,
                     ACT_OK,
                     -1};
    run_scen(&b, r, &port);
    int ok = 1;
    for (int k = 0; k < b.n; k++)
        ok &= r[k].got && r[k].rc == 0 && !strcmp(r[k].dev, "cuda:0") && r[k].first == k &&
              r[k].gpus == 3 && r[k].lworld == 3 && !memcmp(r[k].id, r[0].id, 128);
    TAP_OK(ok, "%s: each rank drives its own cuda:0, global GPUs 0, 1, 2 of 3, same id (%s)",
           b.name, r[0].err);

    /* torchrun/Kubernetes style: the generic variables, a list of devices per rank */
    struct scen g = {"BITDISTILL_DIST_*",
                     2,
                     {"BITDISTILL_DIST_RANK=%d BITDISTILL_DIST_WORLD=2 "
                      "BITDISTILL_DIST_ADDR=127.0.0.1 BITDISTILL_DIST_PORT=%P"},
                     {"cuda:0", "cuda:1,2,3"},
                     4,
                     1,
                     ACT_OK,
                     -1};
    run_scen(&g, r, &port);
    TAP_OK(r[0].got && r[1].got && !r[0].rc && !r[1].rc && r[0].gpus == 4 && r[1].first == 1 &&
               !strcmp(r[1].dev, "cuda:1,2,3") && !memcmp(r[0].id, r[1].id, 128) && r[1].sum == 3,
           "%s: 1 + 3 GPUs, rank 1 starts at global GPU %d of %d (%s %s)", g.name, r[1].first,
           r[1].gpus, r[0].err, r[1].err);
}

/* A failure case: every process that reports must fail with `want` in its message, in time. */
static void expect_fail(const struct scen *s, const char *want0, const char *want_others)
{
    struct res r[MAXR];
    int port, ok = 1, reported = 0;
    double worst = 0;
    run_scen(s, r, &port);
    for (int k = 0; k < s->n; k++) {
        if (!r[k].got)
            continue;
        reported++;
        const char *want = k == 0 ? want0 : want_others;
        ok &= r[k].rc != 0 && strstr(r[k].err, want) != NULL;
        worst = r[k].secs > worst ? r[k].secs : worst;
        if (r[k].rc == 0 || !strstr(r[k].err, want))
            TAP_DIAG("process %d: rc %d '%s' (want '%s')", k, r[k].rc, r[k].err, want);
    }
    TAP_OK(ok && reported > 0, "%s: %d processes fail naming the cause ('%s')", s->name, reported,
           r[0].got ? r[0].err : r[s->n - 1].err);
    TAP_OK(worst < DEADLINE_S + SLACK_S, "%s: within %.1f s (deadline %d s)", s->name, worst,
           DEADLINE_S);
}

#define ENV_SLURM(n)                                                                               \
    "SLURM_PROCID=%d SLURM_NTASKS=" #n " SLURM_STEP_ID=0 SLURM_JOB_NODELIST=localhost "            \
    "BITDISTILL_DIST_PORT=%P BITDISTILL_DIST_TIMEOUT=2"

static void rendezvous_failures(void)
{
    /* rank 2 of 3 never starts */
    struct scen miss = {"a missing rank", 2, {ENV_SLURM(3)}, {0}, 2, 1, ACT_OK, -1};
    expect_fail(&miss, "rank 2 of 3 did not connect", "rank 2 of 3 did not connect");
    /* rank 2 dies after the start, before the next collective */
    struct scen ex = {"a rank that exits mid-job", 3, {ENV_SLURM(3)}, {0}, 3, 1, ACT_EXIT, 2};
    expect_fail(&ex, "rank 2 (", "rank 2 (");
    struct scen fl = {"a rank that fails", 3, {ENV_SLURM(3)}, {0}, 3, 1, ACT_FAIL, 1};
    expect_fail(&fl, "cuda:0: out of memory (test)", "cuda:0: out of memory (test)");
    struct scen ck = {"a rank out of step", 3, {ENV_SLURM(3)}, {0}, 3, 1, ACT_CHECK, 2};
    expect_fail(&ck, "is not in step", "is not in step");
    struct scen ng = {
        "a rank without a GPU", 2, {ENV_SLURM(2)}, {"cuda:all", "cpu"}, 2, 1, ACT_OK, -1};
    expect_fail(&ng, "has no GPU to train on (--device cpu", "has no GPU to train on");
    /* rank 0 never starts: the others cannot reach it */
    struct scen nr = {"no rank 0",
                      2,
                      {"SLURM_PROCID=1 SLURM_NTASKS=2 SLURM_STEP_ID=0 "
                       "SLURM_JOB_NODELIST=localhost BITDISTILL_DIST_PORT=%P "
                       "BITDISTILL_DIST_TIMEOUT=2"},
                      {0},
                      1,
                      1,
                      ACT_OK,
                      -1};
    expect_fail(&nr, "cannot reach rank 0 at localhost port", "cannot reach rank 0");
    /* two processes say they are rank 1 */
    struct scen dup = {"a duplicate rank",
                       3,
                       {"BITDISTILL_DIST_RANK=0 BITDISTILL_DIST_WORLD=3 "
                        "BITDISTILL_DIST_ADDR=localhost BITDISTILL_DIST_PORT=%P "
                        "BITDISTILL_DIST_TIMEOUT=2",
                        "BITDISTILL_DIST_RANK=1 BITDISTILL_DIST_WORLD=3 "
                        "BITDISTILL_DIST_ADDR=localhost BITDISTILL_DIST_PORT=%P "
                        "BITDISTILL_DIST_TIMEOUT=2",
                        "BITDISTILL_DIST_RANK=1 BITDISTILL_DIST_WORLD=3 "
                        "BITDISTILL_DIST_ADDR=localhost BITDISTILL_DIST_PORT=%P "
                        "BITDISTILL_DIST_TIMEOUT=2"},
                       {0},
                       1,
                       1,
                       ACT_OK,
                       -1};
    expect_fail(&dup, "two processes claim rank 1", "claim rank 1");

    /* the port is taken on rank 0's host */
    int fd = socket(AF_INET6, SOCK_STREAM, 0), port = free_port(), zero = 0;
    struct sockaddr_in6 a = {
        .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    int bound = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0;
    char env[512], err[ENG_ERR_LEN] = "", dev[64];
    struct trn_dist_cfg c;
    struct trn_dist *d = NULL;
    snprintf(env, sizeof(env),
             "BITDISTILL_DIST_RANK=0 BITDISTILL_DIST_WORLD=2 "
             "BITDISTILL_DIST_ADDR=localhost BITDISTILL_DIST_PORT=%d BITDISTILL_DIST_TIMEOUT=2",
             port);
    set_env(env);
    int rc = trn_dist_cfg_env(&c, err) ||
             trn_dist_start(&c, "cuda:all", 1, 1, &d, dev, sizeof(dev), err);
    TAP_OK(!bound || (rc && strstr(err, "is in use") && strstr(err, "BITDISTILL_DIST_PORT")),
           "a port in use: %s", bound ? err : "(could not take the port: not checked)");
    trn_dist_free(d);
    if (fd >= 0)
        close(fd);
    clear_env();
}

/* `bitdistill dist-check --device cpu` as two processes, stdout captured. */
static void dist_check_cli(void)
{
    char path[] = "/tmp/bd-dist-check-XXXXXX";
    int out = mkstemp(path), port = free_port();
    pid_t pid[2];
    fflush(stdout);
    for (int k = 0; k < 2; k++) {
        pid[k] = fork();
        if (pid[k] == 0) {
            char env[512];
            snprintf(env, sizeof(env),
                     "BITDISTILL_DIST_RANK=%d BITDISTILL_DIST_WORLD=2 "
                     "BITDISTILL_DIST_ADDR=127.0.0.1 BITDISTILL_DIST_PORT=%d",
                     k, port);
            set_env(env);
            dup2(out, 1);
            char *argv[] = {"dist-check", "--device", "cpu", NULL};
            _exit(trn_cli_dist_check(3, argv));
        }
    }
    int st[2] = {-1, -1};
    for (int k = 0; k < 2; k++)
        waitpid(pid[k], &st[k], 0);
    char buf[2048] = "";
    ssize_t n = pread(out, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(out);
    unlink(path);
    char *l0 = strstr(buf, "rank 0 of 2"), *l1 = strstr(buf, "rank 1 of 2");
    char *i0 = l0 ? strstr(l0, " id ") : NULL, *i1 = l1 ? strstr(l1, " id ") : NULL;
    TAP_OK(WIFEXITED(st[0]) && !WEXITSTATUS(st[0]) && WIFEXITED(st[1]) && !WEXITSTATUS(st[1]) &&
               l0 && l1 && i0 && i1 && !strncmp(i0, i1, 20) && strstr(buf, "sum ok"),
           "dist-check as 2 processes: both exit 0, same id, sum ok");
    for (char *sv, *l = strtok_r(buf, "\n", &sv); l; l = strtok_r(NULL, "\n", &sv))
        TAP_DIAG("%s", l);
}

int main(void)
{
    clear_env(); /* a CI job under Slurm must not leak its own step into these cases */
    hostlists();
    environment();
    placement();
    rendezvous_ok();
    rendezvous_failures();
    dist_check_cli();
    return tap_done();
}
