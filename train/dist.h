/*
 * train/dist.h — one training job as several processes (prefix trn_dist_): the ranks of a
 * job started by a cluster launcher (Slurm's srun, a Kubernetes indexed Job, a torchrun-style
 * script) find each other over TCP, agree on which GPUs each drives, and exchange the few bytes
 * that NCCL and the pipeline need. Plain C (no CUDA), so every path runs in CI.
 *
 * Who is who comes from the environment (trn_dist_cfg_env, docs/cuda.md): the generic
 * BITDISTILL_DIST_RANK / _WORLD / _ADDR / _PORT / _TIMEOUT, else Slurm's SLURM_PROCID,
 * SLURM_STEP_NUM_TASKS (or SLURM_NTASKS) and the first host of SLURM_STEP_NODELIST (or
 * SLURM_JOB_NODELIST) inside an srun step, with the port derived from SLURM_JOB_ID and the step.
 *
 * Transport: a star. Rank 0 listens on the port (every interface) and every other rank connects
 * to it, retrying until rank 0 is up; each collective is a gather to rank 0 plus its answer
 * back. Every wait has a deadline (the config's timeout_s): a rank that never connects, stops
 * answering or exits ends the operation on every rank with an error that names it, never a
 * hang. The collectives are few and small (start-up, one per stage, a few doubles per
 * micro-batch); the gradients go through NCCL, not through here.
 *
 * All ranks must call the same collectives in the same order; a message carries a sequence
 * number, so a rank that is out of step is reported rather than misread.
 */
#ifndef BD_JOBS_TRAIN_DIST_H
#define BD_JOBS_TRAIN_DIST_H

#include <stddef.h>
#include <stdint.h>

#define TRN_DIST_MAX_WORLD 4096
#define TRN_DIST_DEFAULT_PORT 29500  /* no Slurm job id and no BITDISTILL_DIST_PORT */
#define TRN_DIST_DEFAULT_TIMEOUT 300 /* seconds */

/* Where this process stands, read from the environment. world == 1: a single process. */
struct trn_dist_cfg {
    int rank, world;
    char addr[256]; /* rank 0's host name or address (resolved with getaddrinfo) */
    int port;
    double timeout_s; /* every wait: connecting, each collective */
    char source[16];  /* "env", "slurm" or "none": where rank and world came from */
};

/* Read the environment into c. Returns 0 (c->world 1 when it names no multi-process job) or
 * ENG_EINVAL with the offending variable in err. Never does I/O. */
int trn_dist_cfg_env(struct trn_dist_cfg *c, char *err);

/* Slurm hostlist syntax ("gpu[01-03,7],login1", "a[1-2]-b[3-4]"): the number of hosts, or -1
 * when malformed. */
int trn_dist_hostlist_count(const char *list);
/* The n-th host (0-based) of list into out[len]. Returns 0, or -1 when list is malformed, n is
 * past its end or the name does not fit. */
int trn_dist_hostlist_nth(const char *list, int n, char *out, size_t len);

/* ---- the connected job ---- */
struct trn_dist;

/* Connect the ranks of c (c->world > 1): rank 0 accepts world-1 connections, the others
 * connect to c->addr:c->port. On success *out owns the sockets. Errors name the ranks that did
 * not come (rank 0) or the address that could not be reached (the others). */
int trn_dist_connect(const struct trn_dist_cfg *c, struct trn_dist **out, char *err);
void trn_dist_free(struct trn_dist *d); /* NULL: no-op */

/* NULL (a single process) answers rank 0, world 1, local rank 0 of 1. */
int trn_dist_rank(const struct trn_dist *d);
int trn_dist_world(const struct trn_dist *d);
/* The host name of `rank` (as it reported at start-up; "" before trn_dist_start or for NULL).
 * Returns a reference into d. */
const char *trn_dist_host(const struct trn_dist *d, int rank);

/* Collectives (every rank, same order). all[world * n] receives every rank's n bytes. */
int trn_dist_allgather(struct trn_dist *d, const void *mine, size_t n, void *all, char *err);
/* buf[n] of rank 0 to every rank. */
int trn_dist_bcast(struct trn_dist *d, void *buf, size_t n, char *err);
/* Agreement and sums in one round: every rank gives its status (0 or negative, msg its
 * message), a check value that must be equal on every rank (e.g. a hash of its micro-batch),
 * and v[n]. On return v holds the sums over ranks, added in rank order (equal on every rank).
 * Returns 0; or the status of the lowest failed rank with "rank K (HOST): msg" in err; or
 * ENG_EINVAL naming the first rank whose check differs from rank 0's; or a transport error.
 * err may alias msg. */
int trn_dist_reduce(struct trn_dist *d, int status, const char *msg, uint64_t check, double *v,
                    int n, char *err);

/* ---- start-up of one rank of a GPU job ---- */

/* The GPUs a rank drives, from its --device string: "cuda:all" takes the `visible` GPUs, or
 * its share of them (GPUs [lr*V/lw, (lr+1)*V/lw)) when `shared` (the lw ranks of this host see
 * the same GPUs) and V >= lw > 1; "cuda", "cuda:K" and "cuda:K,L,..." are used as given; "cpu"
 * gives none. Returns the count written to devs (at most max), or -1 when malformed. */
int trn_dist_pick_devices(const char *device, int visible, int local_rank, int local_world,
                          int shared, int *devs, int max);

/* Connect (c->world > 1), place this rank among the ranks of its host (hostname and boot id;
 * `shared` when they report the same CUDA_VISIBLE_DEVICES), pick its devices from `device`
 * and `visible` (the CUDA devices it sees; -1: ask the backend) and share the counts, so every
 * rank knows the global index of its first GPU. need_gpu: a rank with no GPU is an error on
 * every rank (naming it).
 * On success *out is the job (NULL when c->world == 1: nothing to do, dev_out = device) and
 * dev_out[len] this rank's device list ("cuda:2,3"). */
int trn_dist_start(const struct trn_dist_cfg *c, const char *device, int visible, int need_gpu,
                   struct trn_dist **out, char *dev_out, size_t len, char *err);
/* After trn_dist_start: GPUs of the whole job, global index of this rank's first GPU, local
 * rank and number of ranks on this host. NULL: 0 and 0, 0 and 1 (the caller's own count). */
int trn_dist_gpus(const struct trn_dist *d);
int trn_dist_first_gpu(const struct trn_dist *d);
int trn_dist_local_rank(const struct trn_dist *d);
int trn_dist_local_world(const struct trn_dist *d);

/* `bitdistill dist-check [--device D]`: under a launcher, connect, place and print one line per
 * rank (rank, host, devices, global GPUs), check a broadcast and a sum; 0 ok, 1 failure. */
int trn_cli_dist_check(int argc, char **argv);

#endif
