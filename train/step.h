/*
 * train/step.h — one training micro-step of BitDistill (DESIGN.md §1, stage 3) and its
 * optimizer: the losses CE + lambda*LD + gamma*AD on one batch, their gradients into the student,
 * AdamW with decoupled weight decay and bias correction, linear warm-up + cosine decay, and
 * clipping by global norm.
 *
 * Loss definitions (all means, so they do not scale with the batch):
 *   CE = mean over target rows of -log softmax(student)[target]
 *   LD = mean over target rows of KL(softmax(teacher/tau) || softmax(student/tau))   (no tau^2)
 *   AD = sum over the distilled layer(s) and Q, K, V of trn_relation_forward (batchmean over
 *        B*split_heads*L rows, padding rows and keys excluded)
 * A target row is a position t whose target[t] >= 0 (the token at t+1; prompt and padding -1).
 */
#ifndef BD_JOBS_TRAIN_STEP_H
#define BD_JOBS_TRAIN_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "train/model.h"
#include "train/ops.h"

/* Distillation settings of one step. */
struct trn_loss_cfg {
    float lambda;     /* LD weight (0: no logits distillation) */
    float gamma;      /* AD weight (0: no relation distillation) */
    float tau;        /* LD temperature (paper: 5.0) */
    int layer;        /* distilled layer: 0..L-1, -1 = the last, -2 = all layers */
    int split_heads;  /* relation heads (MiniLM-v2 "split_heads") */
    enum trn_rel rel; /* cosine (Algorithm 1) or scaled (eq. 12) */
    float t_r;        /* relation temperature of the cosine variant */
};

/* One batch: tok [B][T], target [B][T] (-1 = no loss), len [B] (real tokens; the rest is pad). */
struct trn_batch {
    int B, T;
    int32_t *tok, *target, *len;
    size_t ntargets; /* target rows (filled by trn_batch helpers or the caller) */
};

/* Losses of one micro-step (values before weighting). */
struct trn_losses {
    double ce, ld, ad, loss; /* loss = CE + lambda*LD + gamma*AD */
    double acc;              /* token accuracy: share of target rows whose argmax is the target
                              * (CPU path; the CUDA path leaves it 0) */
};

/* Forward the student (and the teacher when given and lambda or gamma > 0), compute the losses
 * and, when `grad` is set, backpropagate (loss * grad_scale) into the student's gradients
 * (accumulating). teacher may be NULL (CE only). Returns 0 or a status (message in err). */
int trn_step_losses(struct trn_model *student, struct trn_model *teacher, const struct trn_batch *b,
                    const struct trn_loss_cfg *lc, int grad, float grad_scale,
                    struct trn_losses *out, char *err);

/* AdamW over a flat vector (decay only where the model's tensor says so). */
struct trn_adamw_cfg {
    float lr, min_lr;        /* peak and final learning rate */
    float beta1, beta2, eps; /* 0.9, 0.999, 1e-8 */
    float weight_decay;      /* decoupled: p -= lr * wd * p */
    float clip;              /* max global gradient norm (<= 0: off) */
    long warmup, total;      /* steps of linear warm-up and of the whole schedule */
};

/* Learning rate at optimizer step `step` (0-based): (step+1)/warmup * lr during warm-up, then
 * cosine from lr to min_lr over the remaining steps. */
float trn_lr_at(const struct trn_adamw_cfg *c, long step);

/* Global L2 norm of g[n] (double accumulation). */
double trn_grad_norm(const float *g, size_t n);

/* One AdamW update of the model's parameters from its gradients, m and v [nparams] (moments,
 * owned by the caller), t = 1-based step count after this update. Clips first (returns the
 * norm before clipping in *gnorm when non-NULL). */
void trn_adamw_update(struct trn_model *model, float *m, float *v, long t, float lr,
                      const struct trn_adamw_cfg *c, double *gnorm);

/* Mean next-token CE of the model (its quant setting) over tok[ntok], read as consecutive windows
 * of T+1 tokens (T inputs, T targets) in forward batches of B windows; *ntargets gets the count
 * of predicted tokens. Perplexity = exp(*mean_ce). Returns 0 or a status (message in err). */
int trn_eval_corpus(struct trn_model *m, const int32_t *tok, size_t ntok, int T, int B,
                    double *mean_ce, size_t *ntargets, char *err);

/* Forward-only CE and token accuracy of the model (its quant setting) on batch b: *ce_sum gets
 * the sum over target rows of -log softmax[target], *hits the rows whose argmax is the target,
 * *rows the target rows. Returns 0 or a status (message in err). */
int trn_eval_batch(struct trn_model *m, const struct trn_batch *b, double *ce_sum, size_t *hits,
                   size_t *rows, char *err);

#endif
