/*
 * engine/student.h — the ternary student: built from an FP model (post-training absmean
 * quantization, or a trained checkpoint with SubLN weights), saved to and loaded from the GGUF
 * student file, run through the kernels (kernels/gemm.h).
 *
 * Student arithmetic (DESIGN.md §1, kernels/quant.h): every q/k/v/o/gate/up/down is BitLinear,
 * y = d_w * (g/127) * (codes . q8(x)); SubLN (if present) is an RMSNorm before o_proj and before
 * down_proj; embeddings are INT8 per row or 4-bit block-scaled (dequantized rows), the head the
 * same matrix format with INT8 per-token activations; norms and RoPE in fp32.
 *
 * GGUF file (general.architecture = "qwen3-bitdistill"): hyperparameters under
 * "qwen3-bitdistill.*", the source architecture and flags under "bitdistill.*", the tokenizer
 * under "tokenizer.ggml.*" (+ bitdistill.tokenizer.regex/nfc), task metadata under
 * "bitdistill.task.*", provenance under "bitdistill.provenance.*". Tensors: blk.N.<proj>.weight
 * (I8 bytes = packed I2 layout of kernels/quant.h) + blk.N.<proj>.scale (F32[1]), biases and
 * norms F32, token_embd/output .weight (I8 codes: int8 per row, or two 4-bit codes per byte)
 * + .scale (F32 per row, or per row and block of 32).
 */
#ifndef BD_ENGINE_STUDENT_H
#define BD_ENGINE_STUDENT_H

#include <stddef.h>

#include "engine/model.h"
#include "engine/tokenizer.h"

enum eng_head_fmt { ENG_HEAD_Q8 = 0, ENG_HEAD_Q4 = 1 };

/* Task and provenance metadata stored in the student file (all strings owned). */
struct eng_student_meta {
    char *template; /* e.g. "Review: {text}\nSentiment:" ({text} = the input) or NULL */
    int nlabels;
    char **labels;        /* [nlabels] e.g. "positive" */
    char **label_words;   /* [nlabels] verbalizer text, e.g. " positive" (first token used) */
    char *teacher_sha256; /* of the teacher's weights, hex */
    char *job_id;
    char *eval_json;     /* eval metrics as a JSON object text */
    char *chat_template; /* Jinja2 chat template (tokenizer.chat_template) or NULL */
    char *prompt_format; /* "chat_template": the task template fills the user turn of the chat
                            * template (add_generation_prompt); NULL: the task template alone */
};

void eng_student_meta_release(struct eng_student_meta *m);

/* Quantize an FP model (borrowed; must outlive nothing: the student copies what it needs)
 * into a student with the given head format. *out owns the new model. */
int eng_student_from_fp(const struct eng_model *fp, enum eng_head_fmt head, struct eng_model **out,
                        char *err);

/* Write student (from eng_student_from_fp) + tokenizer (may be NULL) + meta (may be NULL). */
int eng_student_save(const struct eng_model *stu, const struct eng_tok *tok,
                     const struct eng_student_meta *meta, const char *path, char *err);

/* Load a student file. *tok (if tok != NULL) gets the tokenizer (NULL if the file has none);
 * *meta (if meta != NULL) is filled (release with eng_student_meta_release). The packed
 * ternary body is used in place from the mapping. */
int eng_student_load(const char *path, struct eng_model **out, struct eng_tok **tok,
                     struct eng_student_meta *meta, char *err);

/* Head format of a student. */
enum eng_head_fmt eng_student_head_fmt(const struct eng_model *stu);

#endif
