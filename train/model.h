/*
 * train/model.h — a trainable causal LM (Qwen3 / Llama-style decoder) in fp32: latent
 * parameters, their gradients and the activations of one batch shape, with the forward and
 * backward of the whole network built from train/ops.h.
 *
 * Parameters live in one contiguous buffer (and gradients in a parallel one) in a fixed order
 * of named tensors (Hugging Face names), so the optimizer, checkpoints and the parity fixtures
 * see one flat vector. With `quant` on, every q/k/v/o/gate/up/down projection is BitLinear
 * (DESIGN.md §1): absmean ternary weights per tensor and absmax INT8 activations per token in
 * the forward, straight-through estimator in the backward (dX uses the quantized weights, dW is
 * taken against the quantized activations and lands on the latent weights). Quant off gives the
 * FP model of the engine (the teacher SFT uses the same code).
 *
 * Activations are planned once per (B, T) and kept for the backward. The model is used by one
 * thread at a time; status codes and messages are the engine's (engine/err.h).
 */
#ifndef BD_JOBS_TRAIN_MODEL_H
#define BD_JOBS_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hfconfig.h"

struct trn_model;

/* One named parameter tensor inside the flat parameter vector. */
struct trn_tensor {
    char name[96]; /* Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    size_t off, n; /* offset and element count in the flat vector */
    int ndim;      /* 1 (norm weights) or 2 (matrices) */
    int64_t shape[2];
    int decay; /* 1: weight decay applies (matrices), 0: norms */
};

/* Which projection state of a layer the relation loss reads (after projection and QK-norm,
 * before RoPE): rows [N][heads*head_dim] (Q) or [N][kv_heads*head_dim] (K, V). */
enum trn_state { TRN_Q = 0, TRN_K = 1, TRN_V = 2 };

/* Load the fp32 latent weights of HF directory `dir` (any dtype the engine reads; SubLN tensors
 * used when present). q/k/v bias (Qwen2) is refused. *out owns the model. */
int trn_model_load_hf(const char *dir, struct trn_model **out, char *err);
/* A copy of m's parameters (and structure), gradients zero, no activations. */
int trn_model_clone(const struct trn_model *m, struct trn_model **out, char *err);
void trn_model_free(struct trn_model *m);

/* Stage 1: insert SubLN (RMSNorm weight 1) before o_proj and before down_proj of every layer;
 * no-op if present. Re-lays out the parameters (gradients zeroed). */
int trn_model_add_subln(struct trn_model *m);
int trn_model_has_subln(const struct trn_model *m);
void trn_model_set_quant(struct trn_model *m, int on);
int trn_model_quant(const struct trn_model *m);

/* Write DIR/config.json and DIR/model.safetensors (fp32 latent weights, SubLN included). */
int trn_model_save_hf(const struct trn_model *m, const char *dir, char *err);
/* The same with the weights rounded to bf16 when bf16 is set (torch_dtype "bfloat16"). */
int trn_model_save_hf_as(const struct trn_model *m, const char *dir, int bf16, char *err);

/* The engine's FP model over the parameters in place (fp32, SubLN included), for evaluation
 * without writing a file: valid while m lives and its parameters do not change. */
struct eng_model;
int trn_model_engine(const struct trn_model *m, struct eng_model **out, char *err);

const struct eng_config *trn_model_config(const struct trn_model *m);
const char *trn_model_errmsg(const struct trn_model *m);
size_t trn_model_nparams(const struct trn_model *m);
float *trn_model_params(struct trn_model *m); /* [nparams], borrowed */
float *trn_model_grads(struct trn_model *m);  /* [nparams], borrowed */
int trn_model_ntensors(const struct trn_model *m);
const struct trn_tensor *trn_model_tensor(const struct trn_model *m, int i);
const struct trn_tensor *trn_model_find(const struct trn_model *m, const char *name);

/* Forward tok [B][T] (ids borrowed, checked against the vocabulary); plans the activations for
 * (B, T) on first use or change. Returns 0 or a status; logits then readable below. */
int trn_model_forward(struct trn_model *m, const int32_t *tok, int B, int T);
float *trn_model_logits(struct trn_model *m); /* [B*T][vocab] of the last forward */
/* The relation state of `layer` from the last forward, [B*T][C]; *C gets its width. */
const float *trn_model_state(const struct trn_model *m, int layer, enum trn_state which, int *C);

/* Zero dlogits and the state gradients (call after forward, before the losses add to them). */
void trn_model_backward_begin(struct trn_model *m);
float *trn_model_dlogits(struct trn_model *m);                                 /* [B*T][vocab] */
float *trn_model_dstate(struct trn_model *m, int layer, enum trn_state which); /* [B*T][C] */
/* Backpropagate dlogits and the state gradients of the last forward; ACCUMULATES into the
 * parameter gradients (gradient accumulation); zero them with trn_model_zero_grad. */
int trn_model_backward(struct trn_model *m);
void trn_model_zero_grad(struct trn_model *m);

#endif
