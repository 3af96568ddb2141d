/*
 * train/backend.h — the trainer's GPU backend (prefix trn_cuda_): the student (and the
 * teacher) of one training stage on one CUDA device, with the same step and optimizer as
 * step.h, so the pipeline's loop only swaps the calls.
 *
 * A session uploads the latent fp32 parameters of the host models once, keeps parameters,
 * gradients, AdamW moments and activations on the device, and hands parameters and moments
 * back with trn_cuda_pull (checkpoints, end of a stage). The host models are borrowed: they
 * must outlive the session and keep their layout (create a session per stage, after SubLN).
 *
 * Built only with --with-cuda (kernels/cuda/); without it every call fails with
 * ENG_EUNSUPPORTED "built without CUDA". trn_cuda_parse_device reads "cuda", "cuda:K".
 */
#ifndef BD_JOBS_TRAIN_BACKEND_H
#define BD_JOBS_TRAIN_BACKEND_H

#include <stdio.h>

#include "train/step.h"

struct trn_cuda;

/* "cpu" -> -1, "cuda" -> 0, "cuda:K" -> K; anything else -> -2. */
int trn_cuda_parse_device(const char *s);
/* Number of CUDA devices visible (0 without driver/GPU or without CUDA in the build). */
int trn_cuda_device_count(void);

/* Open device dev and upload student (trained) and teacher (forward only; may be NULL). bf16:
 * matrix products in bf16 with fp32 accumulation (else fp32). *out owns the session. */
int trn_cuda_create(int dev, struct trn_model *student, struct trn_model *teacher, int bf16,
                    struct trn_cuda **out, char *err);
void trn_cuda_free(struct trn_cuda *g);

/* trn_step_losses on the device: same arguments, same accumulation into the device gradients. */
int trn_cuda_step_losses(struct trn_cuda *g, const struct trn_batch *b,
                         const struct trn_loss_cfg *lc, int grad, float grad_scale,
                         struct trn_losses *out, char *err);
void trn_cuda_zero_grad(struct trn_cuda *g);
/* trn_adamw_update on the device (moments on the device; see trn_cuda_set_moments). */
int trn_cuda_adamw_update(struct trn_cuda *g, long t, float lr, const struct trn_adamw_cfg *c,
                          double *gnorm, char *err);
/* Upload AdamW moments m, v [nparams] (resume); fresh sessions start from zeros. */
int trn_cuda_set_moments(struct trn_cuda *g, const float *m, const float *v, char *err);
/* Download to the host (any pointer may be NULL): parameters into the student model's own
 * vector when params is the model's, gradients, moments [nparams]. */
int trn_cuda_pull(struct trn_cuda *g, float *params, float *grads, float *m, float *v, char *err);

/* ---- data parallel: one process drives the GPUs of its host, one session and one host
 * thread per GPU, gradients summed by an NCCL all-reduce (timeout: BITDISTILL_NCCL_TIMEOUT
 * seconds, default 300) before an identical AdamW on every replica. Each micro-batch is split
 * by rows across the GPUs; every shard's gradient is weighted by its share of the target rows
 * (CE, LD) and of the relation rows (AD), so the sum is the gradient of the whole micro-batch
 * and the loss curve is the single-GPU one. One GPU in all: no NCCL, the single-session calls
 * above.
 * Several processes (dist.h; dist NULL: one): every process builds the same whole micro-batch
 * and takes the rows of its GPUs' global indices (trn_dist_first_gpu .. + n of
 * trn_dist_gpus); the NCCL communicators span every GPU of the job (the id broadcast through
 * dist), and the losses (and each rank's status) are summed through dist, so every process
 * returns the whole micro-batch's losses, or the same error naming the failed rank. */
struct trn_cuda_dp;
struct trn_dist;
/* "cpu" -> 0; "cuda", "cuda:K" -> 1 device; "cuda:all" -> every visible device; "cuda:0,1"
 * -> that list; anything else (or none visible for "all") -> -1. devs gets at most max. */
int trn_cuda_parse_devices(const char *s, int *devs, int max);
/* The ids of a "K,L,..." list (each 0..1024, no repeats, no empty item) into devs: their count,
 * or -1 for a malformed list or more than max ids. */
int trn_parse_device_ids(const char *list, int *devs, int max);
/* dist is borrowed (NULL: a single process); it must outlive the result. */
int trn_cuda_dp_create(const int *devs, int n, struct trn_model *student, struct trn_model *teacher,
                       int bf16, struct trn_dist *dist, struct trn_cuda_dp **out, char *err);
void trn_cuda_dp_free(struct trn_cuda_dp *d);
int trn_cuda_dp_size(const struct trn_cuda_dp *d);
/* Bytes in use on the first GPU now (every process's, the CUDA context included). */
size_t trn_cuda_dp_mem_used(struct trn_cuda_dp *d);
/* BITDISTILL_CUDA_PROFILE=1: print each GPU's device time per op and reset it (kcuda.h). */
void trn_cuda_dp_profile(struct trn_cuda_dp *d, FILE *f);
int trn_cuda_dp_step_losses(struct trn_cuda_dp *d, const struct trn_batch *b,
                            const struct trn_loss_cfg *lc, float grad_scale, struct trn_losses *out,
                            char *err);
void trn_cuda_dp_zero_grad(struct trn_cuda_dp *d);
int trn_cuda_dp_adamw_update(struct trn_cuda_dp *d, long t, float lr, const struct trn_adamw_cfg *c,
                             double *gnorm, char *err);
int trn_cuda_dp_set_moments(struct trn_cuda_dp *d, const float *m, const float *v, char *err);
/* Parameters and moments of replica 0 (all replicas are equal). */
int trn_cuda_dp_pull(struct trn_cuda_dp *d, float *params, float *m, float *v, char *err);

#endif
