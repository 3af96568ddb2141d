/*
 * engine/model.h — a loaded causal LM (FP teacher from a Hugging Face directory, or ternary
 * student from a GGUF file) and its inference context (KV cache + scratch).
 *
 * An eng_model is immutable after loading and may be shared by several eng_ctx (one per
 * thread of inference). Weights of the FP path are fp32: fp32 safetensors are used in place
 * from the mapping, bf16/fp16 ones are converted once at load. The student's body is packed
 * ternary (kernels/quant.h I2) and its embedding/head INT8 or 4-bit.
 */
#ifndef BD_ENGINE_MODEL_H
#define BD_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hfconfig.h"

struct eng_model;
struct eng_ctx;

/* Load the FP model in HF directory `dir` (config.json + safetensors). Every tensor's presence,
 * dtype and shape is checked against config.json. Optional SubLN tensors
 * (model.layers.N.self_attn.attn_sub_norm.weight, model.layers.N.mlp.ffn_sub_norm.weight) are
 * used when present. *out owns the model. */
int eng_model_load_hf(const char *dir, struct eng_model **out, char *err);
/* The same model over n tensors in memory (named as in the HF checkpoint; see eng_st_from_mem),
 * for a configuration the caller has validated. F32 tensors are used in place: the caller keeps
 * them alive and unchanged until eng_model_free. */
struct eng_st_wtensor;
int eng_model_from_mem(const struct eng_config *cfg, const struct eng_st_wtensor *ts, size_t n,
                       struct eng_model **out, char *err);
void eng_model_free(struct eng_model *m);

const struct eng_config *eng_model_config(const struct eng_model *m);
/* 1 for a ternary student, 0 for the FP path. */
int eng_model_is_ternary(const struct eng_model *m);
/* Bytes the model keeps resident: converted/packed weights plus the mapped weights it uses. */
size_t eng_model_resident_bytes(const struct eng_model *m);
/* Bytes read from weights per decoded token (the bandwidth floor of a decode step). */
size_t eng_model_decode_bytes(const struct eng_model *m);
/* Threads for contexts created after this call: the student's kernels (each eng_ctx owns a
 * krn pool of that size, so one model serves several threads); FP path: OpenBLAS's (global). */
int eng_model_set_threads(struct eng_model *m, int n_threads);
const char *eng_model_errmsg(const struct eng_model *m);

/* A context of up to max_tokens positions (KV cache). One context per inference thread; the
 * model may be shared by any number of contexts. */
int eng_ctx_create(struct eng_model *m, int max_tokens, struct eng_ctx **out);
/* A context holding only a sequence's KV cache (no pass buffers, no kernel pool): the batcher
 * (engine/batch.h) runs such sequences with one scratch context's buffers. */
int eng_ctx_create_kv(struct eng_model *m, int max_tokens, struct eng_ctx **out);
void eng_ctx_free(struct eng_ctx *c);
/* Forget the cached positions (start a new sequence). */
void eng_ctx_reset(struct eng_ctx *c);
int eng_ctx_pos(const struct eng_ctx *c);
const char *eng_ctx_errmsg(const struct eng_ctx *c);

/* Run n tokens (ids borrowed) at positions pos..pos+n-1, appending to the KV cache.
 * logits: NULL, or [n][vocab] when all_logits, or [vocab] for the last token only.
 * Errors: ENG_EINVAL (bad id), ENG_ERANGE (cache full). */
int eng_ctx_forward(struct eng_ctx *c, const int32_t *tokens, int n, float *logits, int all_logits);

/* Greedy decoding: run the prompt, then append up to max_new argmax tokens to out (stops after
 * emitting stop_id when stop_id >= 0). Returns the number generated (>= 0) or a status. */
int eng_generate_greedy(struct eng_ctx *c, const int32_t *prompt, int n_prompt, int max_new,
                        int stop_id, int32_t *out);

/* Logits of a subset of vocabulary rows for the last token of `tokens` (verbalizer
 * classification: one forward, no decoding). rows borrowed; out [nrows]. Resets the context. */
int eng_ctx_score_rows(struct eng_ctx *c, const int32_t *tokens, int n, const int32_t *rows,
                       int nrows, float *out);

#endif
