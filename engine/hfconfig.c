/*
 * engine/hfconfig.c — config.json validation (see hfconfig.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/hfconfig.h"
#include "engine/err.h"

/* Required positive integer field. */
static int get_pos_int(const json_t *root, const char *key, const char *what, int *out, char *err)
{
    json_t *v = json_object_get(root, key);
    if (!v)
        return eng_fail(err, ENG_ECONFIG, "%s: missing \"%s\"", what, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1 << 30))
        return eng_fail(err, ENG_ECONFIG, "%s: \"%s\" must be a positive integer", what, key);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_bool(const json_t *root, const char *key, int dflt)
{
    json_t *v = json_object_get(root, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int get_token_id(const json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int)json_integer_value(v) : -1;
}

/* RoPE base from rope_theta (transformers 4) or rope_parameters.rope_theta (transformers 5);
 * only the default (unscaled) RoPE is supported. */
static int get_rope(const json_t *root, const char *what, float *theta, char *err)
{
    json_t *rp = json_object_get(root, "rope_parameters"),
           *rs = json_object_get(root, "rope_scaling");
    json_t *t = json_object_get(root, "rope_theta");
    const json_t *scal[2] = {rp, rs};
    for (int i = 0; i < 2; i++) {
        if (!scal[i] || json_is_null(scal[i]))
            continue;
        if (!json_is_object(scal[i]))
            return eng_fail(err, ENG_ECONFIG, "%s: \"%s\" must be an object", what,
                            i ? "rope_scaling" : "rope_parameters");
        json_t *ty = json_object_get(scal[i], "rope_type");
        if (!ty)
            ty = json_object_get(scal[i], "type");
        if (ty && !(json_is_string(ty) && !strcmp(json_string_value(ty), "default")))
            return eng_fail(err, ENG_EUNSUPPORTED,
                            "%s: RoPE scaling type '%s' is not supported "
                            "(only the default RoPE)",
                            what, json_is_string(ty) ? json_string_value(ty) : "?");
        if (!t && json_object_get(scal[i], "rope_theta"))
            t = json_object_get(scal[i], "rope_theta");
    }
    if (!t) {
        *theta = 10000.0f; /* the transformers default for these architectures */
        return 0;
    }
    if (!json_is_number(t) || !(json_number_value(t) > 0) || !isfinite(json_number_value(t)))
        return eng_fail(err, ENG_ECONFIG, "%s: \"rope_theta\" must be a positive number", what);
    *theta = (float)json_number_value(t);
    return 0;
}

int eng_config_from_json(const json_t *root, const char *what, struct eng_config *cfg, char *err)
{
    int rc;
    memset(cfg, 0, sizeof(*cfg));
    if (!json_is_object(root))
        return eng_fail(err, ENG_ECONFIG, "%s: not a JSON object", what);
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (!mt)
        return eng_fail(err, ENG_ECONFIG, "%s: missing \"model_type\"", what);
    if (!strcmp(mt, "qwen3"))
        cfg->arch = ENG_ARCH_QWEN3;
    else if (!strcmp(mt, "qwen2"))
        cfg->arch = ENG_ARCH_QWEN2;
    else if (!strcmp(mt, "llama"))
        cfg->arch = ENG_ARCH_LLAMA;
    else
        return eng_fail(err, ENG_EUNSUPPORTED,
                        "%s: model_type '%s' is not supported (supported: "
                        "qwen3, qwen2, llama)",
                        what, mt);
    snprintf(cfg->model_type, sizeof(cfg->model_type), "%s", mt);
    if ((rc = get_pos_int(root, "vocab_size", what, &cfg->vocab, err)) ||
        (rc = get_pos_int(root, "hidden_size", what, &cfg->hidden, err)) ||
        (rc = get_pos_int(root, "intermediate_size", what, &cfg->inter, err)) ||
        (rc = get_pos_int(root, "num_hidden_layers", what, &cfg->layers, err)) ||
        (rc = get_pos_int(root, "num_attention_heads", what, &cfg->heads, err)))
        return rc;
    cfg->kv_heads = cfg->heads;
    if (json_object_get(root, "num_key_value_heads") &&
        !json_is_null(json_object_get(root, "num_key_value_heads")) &&
        (rc = get_pos_int(root, "num_key_value_heads", what, &cfg->kv_heads, err)))
        return rc;
    if (cfg->heads % cfg->kv_heads)
        return eng_fail(err, ENG_ECONFIG,
                        "%s: num_attention_heads %d is not a multiple of "
                        "num_key_value_heads %d",
                        what, cfg->heads, cfg->kv_heads);
    json_t *hd = json_object_get(root, "head_dim");
    if (hd && !json_is_null(hd)) {
        if ((rc = get_pos_int(root, "head_dim", what, &cfg->head_dim, err)))
            return rc;
    } else {
        if (cfg->hidden % cfg->heads)
            return eng_fail(err, ENG_ECONFIG,
                            "%s: hidden_size %d is not a multiple of "
                            "num_attention_heads %d and no head_dim is given",
                            what, cfg->hidden, cfg->heads);
        cfg->head_dim = cfg->hidden / cfg->heads;
    }
    if (cfg->head_dim % 2)
        return eng_fail(err, ENG_ECONFIG, "%s: head_dim %d must be even for RoPE", what,
                        cfg->head_dim);
    cfg->max_pos = 32768;
    if (json_object_get(root, "max_position_embeddings") &&
        (rc = get_pos_int(root, "max_position_embeddings", what, &cfg->max_pos, err)))
        return rc;
    json_t *eps = json_object_get(root, "rms_norm_eps");
    cfg->eps = 1e-6f;
    if (eps) {
        if (!json_is_number(eps) || !(json_number_value(eps) > 0) || json_number_value(eps) > 1)
            return eng_fail(err, ENG_ECONFIG, "%s: \"rms_norm_eps\" must be a number in (0, 1]",
                            what);
        cfg->eps = (float)json_number_value(eps);
    }
    if ((rc = get_rope(root, what, &cfg->rope_theta, err)))
        return rc;
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "silu"))
        return eng_fail(err, ENG_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (silu only)",
                        what, act);
    if (get_bool(root, "use_sliding_window", 0))
        return eng_fail(err, ENG_EUNSUPPORTED, "%s: use_sliding_window=true is not supported",
                        what);
    if (get_bool(root, "mlp_bias", 0))
        return eng_fail(err, ENG_EUNSUPPORTED, "%s: mlp_bias=true is not supported", what);
    cfg->tie = get_bool(root, "tie_word_embeddings", 0);
    cfg->qk_norm = cfg->arch == ENG_ARCH_QWEN3;
    cfg->qkv_bias = cfg->arch == ENG_ARCH_QWEN2 ? 1 : get_bool(root, "attention_bias", 0);
    cfg->bos_id = get_token_id(root, "bos_token_id");
    cfg->eos_id = get_token_id(root, "eos_token_id");
    if (cfg->bos_id >= cfg->vocab)
        cfg->bos_id = -1;
    if (cfg->eos_id >= cfg->vocab)
        cfg->eos_id = -1;
    return 0;
}

int eng_config_load(const char *path, struct eng_config *cfg, char *err)
{
    char buf[4096];
    struct stat sb;
    json_error_t jerr;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(buf, sizeof(buf), "%s/config.json", path);
    else
        snprintf(buf, sizeof(buf), "%s", path);
    json_t *root = json_load_file(buf, 0, &jerr);
    if (!root)
        return eng_fail(err, ENG_ECONFIG, "cannot read '%s': %s (line %d)", buf, jerr.text,
                        jerr.line);
    int rc = eng_config_from_json(root, buf, cfg, err);
    json_decref(root);
    return rc;
}

json_t *eng_config_to_json(const struct eng_config *c)
{
    static const char *const archs[] = {"Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"};
    json_t *o = json_pack(
        "{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:s,s:s}", "architectures",
        archs[c->arch], "model_type", c->model_type, "vocab_size", c->vocab, "hidden_size",
        c->hidden, "intermediate_size", c->inter, "num_hidden_layers", c->layers,
        "num_attention_heads", c->heads, "num_key_value_heads", c->kv_heads, "head_dim",
        c->head_dim, "max_position_embeddings", c->max_pos, "rope_theta", (double)c->rope_theta,
        "rms_norm_eps", (double)c->eps, "tie_word_embeddings", c->tie, "hidden_act", "silu",
        "torch_dtype", "float32");
    if (!o)
        return NULL;
    if (c->arch != ENG_ARCH_QWEN2)
        json_object_set_new(o, "attention_bias", json_boolean(c->qkv_bias));
    if (c->bos_id >= 0)
        json_object_set_new(o, "bos_token_id", json_integer(c->bos_id));
    if (c->eos_id >= 0)
        json_object_set_new(o, "eos_token_id", json_integer(c->eos_id));
    return o;
}
