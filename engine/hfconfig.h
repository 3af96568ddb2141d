/*
 * engine/hfconfig.h — a Hugging Face config.json, validated, for the architectures the engine runs:
 * Qwen3 (QK-norm, GQA, tied or untied head), Qwen2/Qwen2.5 (q/k/v bias) and Llama-style.
 * Any other model_type, activation, rope scaling or sliding window is refused with a message
 * naming the field.
 */
#ifndef BD_ENGINE_HFCONFIG_H
#define BD_ENGINE_HFCONFIG_H

#include <jansson.h>

enum eng_arch { ENG_ARCH_QWEN3 = 0, ENG_ARCH_QWEN2, ENG_ARCH_LLAMA };

struct eng_config {
    enum eng_arch arch;
    char model_type[32]; /* "qwen3", "qwen2", "llama" */
    int vocab;           /* vocab_size: rows of the embedding and the head */
    int hidden;          /* hidden_size */
    int inter;           /* intermediate_size (SwiGLU width) */
    int layers;          /* num_hidden_layers */
    int heads;           /* num_attention_heads */
    int kv_heads;        /* num_key_value_heads (GQA groups); heads % kv_heads == 0 */
    int head_dim;        /* per head; hidden/heads unless config.json says */
    int max_pos;         /* max_position_embeddings */
    float rope_theta;    /* RoPE base */
    float eps;           /* rms_norm_eps */
    int tie;             /* tie_word_embeddings: head = embedding matrix */
    int qk_norm;         /* Qwen3: RMSNorm over head_dim on q and k before RoPE */
    int qkv_bias;        /* Qwen2 always, others when attention_bias */
    int bos_id, eos_id;  /* -1 when absent */
};

/* Validate a parsed config.json object into cfg. Returns 0 or ENG_ECONFIG/ENG_EUNSUPPORTED with
 * a message naming the field; `what` names the source in messages (e.g. the path). */
int eng_config_from_json(const json_t *root, const char *what, struct eng_config *cfg, char *err);

/* Read and validate DIR/config.json or a config file path. */
int eng_config_load(const char *path, struct eng_config *cfg, char *err);

/* Serialise cfg as a transformers-compatible config.json object (new reference). */
json_t *eng_config_to_json(const struct eng_config *cfg);

#endif
