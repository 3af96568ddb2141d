/*
 * train/ops.h — forward/backward pairs of the trainer's operations, fp32 on the CPU, in the
 * llm.c style: every op has a `_forward` that writes its output (and what its backward needs)
 * and a `_backward` that ACCUMULATES (+=) into the gradients of its inputs, so that a tensor
 * read by several ops (the normed input of q/k/v, a tied embedding) gets the sum.
 *
 * Shapes use N = B*T rows (tokens), C = input features, OC = output features, NH / KVH = query /
 * key-value heads, HD = head dim. All buffers are row-major, caller-owned, never aliased unless a
 * comment says so. BitLinear's quantizers (DESIGN.md §1) are here too: the straight-through
 * estimator means their backward is the identity, so they have no `_backward`.
 */
#ifndef BD_JOBS_TRAIN_OPS_H
#define BD_JOBS_TRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

/* eps of both quantizers (same as tools/make_engine_fixtures.py EPS_Q). */
#define TRN_QEPS 1e-5f

/* ---- BitLinear quantizers (forward only; STE backward = identity) ---- */
/* w [n] -> wq [n]: d = mean|w|, wq = d * clamp(round(w / (d + eps)), -1, 1). Returns d. */
float trn_wquant(float *wq, const float *w, size_t n);
/* x [N][C] -> xq [N][C], per row: g = max|x|, xq = g/127 * clamp(round(127 x/(g+eps)),-128,127).
 * xq may equal x. */
void trn_aquant(float *xq, const float *x, int N, int C);

/* ---- embedding: out[N][C] = wte[tok[n]] ---- */
void trn_embed_forward(float *out, const int32_t *tok, const float *wte, int N, int C);
/* dwte[tok[n]] += dout[n] */
void trn_embed_backward(float *dwte, const float *dout, const int32_t *tok, int N, int C);

/* ---- linear (no bias): out[N][OC] = inp[N][C] . w[OC][C]^T ---- */
void trn_linear_forward(float *out, const float *inp, const float *w, int N, int C, int OC);
/* dinp[N][C] += dout . w (dinp may be NULL); dw[OC][C] += dout^T . inp (dw may be NULL). */
void trn_linear_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, int N, int C, int OC);

/* ---- RMSNorm: out[N][C] = inp * rstd * w, rstd[N] = 1/sqrt(mean(inp^2) + eps) ---- */
void trn_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                         float eps);
/* dinp[N][C] += ..., dw[C] += sum_n dout * inp * rstd. */
void trn_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int N, int C);

/* ---- RoPE (NeoX rotate-half) on x[B][T][NH][HD] at positions 0..T-1; cs, sn [T][HD/2] ---- */
void trn_rope_tables(float *cs, float *sn, int T, int HD, float theta);
void trn_rope_forward(float *out, const float *inp, const float *cs, const float *sn, int B, int T,
                      int NH, int HD);
/* dinp += R^T dout */
void trn_rope_backward(float *dinp, const float *dout, const float *cs, const float *sn, int B,
                       int T, int NH, int HD);

/* ---- causal attention (GQA) ----
 * q [B][T][NH][HD], k, v [B][T][KVH][HD] -> out [B][T][NH][HD]; probs [B][NH][T][T] (softmax of
 * q.k/sqrt(HD) over keys 0..t, zeros above the diagonal) kept for the backward. */
void trn_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int KVH, int HD);
/* dq, dk, dv += ...; scratch [T*T] floats. */
void trn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, int B, int T, int NH,
                            int KVH, int HD, float *scratch);

/* ---- SwiGLU: out[n] = silu(g[n]) * u[n] over n elements ---- */
void trn_swiglu_forward(float *out, const float *g, const float *u, size_t n);
void trn_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u,
                         size_t n);

/* ---- losses (values are means; backward writes d(loss*scale)/d(logits), +=) ----
 * Rows with target < 0 are skipped. Cross-entropy of logits [N][V] against target [N]:
 * returns sum over kept rows of -log softmax(logits)[target] / n_kept. */
double trn_ce_forward(const float *logits, const int32_t *target, int N, int V);
void trn_ce_backward(float *dlogits, const float *logits, const int32_t *target, int N, int V,
                     float scale);
/* Token accuracy: how many kept rows have argmax(logits) == target (the first maximum wins, as
 * torch.argmax); *kept (when non-NULL) gets the count of kept rows. */
size_t trn_token_hits(const float *logits, const int32_t *target, int N, int V, size_t *kept);
/* Logits distillation: mean over rows with target >= 0 of KL(softmax(t/tau) || softmax(s/tau)). */
double trn_kl_forward(const float *s_logits, const float *t_logits, const int32_t *target, int N,
                      int V, float tau);
void trn_kl_backward(float *ds, const float *s_logits, const float *t_logits, const int32_t *target,
                     int N, int V, float tau, float scale);

/* Attention-relation distillation of one state (Q, K or V of one layer), DESIGN.md §1.
 * s [B][T][Cs], t [B][T][Ct] (heads concatenated) are split into S relation heads of Cs/S and
 * Ct/S features; cosine: rows L2-normalised and R = softmax(A A^T / t_r), scaled:
 * R = softmax(A A^T / sqrt(d_r)). Keys and rows at positions >= len[b] are excluded (padding);
 * len NULL means all T. Returns sum over rows of KL(R_t || R_s) / (S * rows). */
enum trn_rel { TRN_REL_COSINE = 0, TRN_REL_SCALED = 1 };
size_t trn_relation_scratch(int T, int Cs, int Ct, int S); /* floats of scratch below */
double trn_relation_forward(const float *s, const float *t, const int32_t *len, int B, int T,
                            int Cs, int Ct, int S, enum trn_rel kind, float t_r, float *scratch);
/* ds [B][T][Cs] += scale * d(loss)/d(s). */
void trn_relation_backward(float *ds, const float *s, const float *t, const int32_t *len, int B,
                           int T, int Cs, int Ct, int S, enum trn_rel kind, float t_r, float scale,
                           float *scratch);

#endif
