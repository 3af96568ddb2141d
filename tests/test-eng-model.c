/*
 * tests/test-eng-model.c — HF checkpoint loading and the FP forward pass against transformers.
 *
 * Fixtures (tools/make_engine_fixtures.py, transformers 5.17 eager fp32): random-init Qwen3
 * (fp32 tied, bf16), Qwen2 (sharded, q/k/v bias, untied) and Llama of odd small shapes; the
 * logits of 13 tokens and an 8-token greedy continuation. Then corrupt checkpoints and configs,
 * each of which must fail with a message naming the problem.
 */
#include "config.h"

#include <sys/stat.h>

#include "engine/hfconfig.h"
#include "engine/err.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "tests/eng_util.h"
#include "tests/tap.h"

#define FP_TOL 1e-4 /* max abs logit error vs transformers, fp32 math */
#define FP16_TOL                                                                                   \
    0.1 /* fp16-rounded weights (rel. 2^-11 each) vs fp32 reference, logits ~30;
                       * measured 0.024 */

static json_t *refs;

/* The fixture as eng_model_from_mem sees it: its tensors over the mapped file (st stays open). */
static int load_mem(const char *dir, struct eng_st **st, struct eng_model **m, char *err)
{
    struct eng_config cfg;
    int rc;
    if ((rc = eng_config_load(dir, &cfg, err)) || (rc = eng_st_open(dir, st, err)))
        return rc;
    size_t n = eng_st_count(*st);
    struct eng_st_wtensor *w = calloc(n, sizeof(*w));
    for (size_t i = 0; w && i < n; i++) {
        const struct eng_st_tensor *t = eng_st_at(*st, i);
        w[i].name = t->name;
        w[i].dtype = t->dtype;
        w[i].ndim = t->ndim;
        memcpy(w[i].shape, t->shape, sizeof(w[i].shape));
        w[i].data = t->data;
    }
    rc = w ? eng_model_from_mem(&cfg, w, n, m, err) : ENG_ENOMEM;
    free(w);
    return rc;
}

/* mem: the model built from tensors in memory instead of read from the directory. */
static void parity(const char *name, int mem)
{
    char err[ENG_ERR_LEN] = "", path[256];
    struct eng_model *m = NULL;
    struct eng_st *st = NULL;
    struct eng_ctx *c = NULL;
    const char *fx = name;
    char shown[128];
    json_t *r = json_object_get(json_object_get(refs, "models"), name);
    json_t *jt = json_object_get(r, "tokens"), *jg = json_object_get(r, "greedy");
    int n = (int)json_array_size(jt), V = (int)json_integer_value(json_object_get(r, "vocab"));
    int32_t tok[64], gen[16];
    for (int i = 0; i < n; i++)
        tok[i] = (int32_t)json_integer_value(json_array_get(jt, (size_t)i));
    int rc = mem ? load_mem(eu_fx(name), &st, &m, err) : eng_model_load_hf(eu_fx(name), &m, err);
    if (!TAP_OK(rc == 0, "%s: loads%s (%s)", name, mem ? " from memory" : "", err)) {
        eng_st_free(st);
        return;
    }
    if (mem) { /* the rest of the checks name the path under test */
        snprintf(shown, sizeof(shown), "%s (from memory)", fx);
        name = shown;
    }
    TAP_OK(eng_model_config(m)->vocab == V, "%s: vocab %d", name, V);
    snprintf(path, sizeof(path), "%s.logits.bin", fx);
    float *ref = (float *)eu_read(eu_fx(path), NULL);
    float *lg = malloc((size_t)n * V * sizeof(float)), *one = malloc((size_t)V * sizeof(float));
    rc = eng_ctx_create(m, 32, &c);
    TAP_OK(rc == 0 && ref, "%s: context and reference", name);
    if (rc || !ref)
        goto out;
    rc = eng_ctx_forward(c, tok, n, lg, 1);
    double e = eu_maxabs(lg, ref, (size_t)n * V);
    TAP_OK(rc == 0 && e < FP_TOL, "%s: prefill logits [%d x %d] max abs err %.3g < %g", name, n, V,
           e, FP_TOL);
    /* The same logits one token at a time through the KV cache. */
    eng_ctx_reset(c);
    double ei = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = eng_ctx_forward(c, &tok[i], 1, one, 0);
        double d = eu_maxabs(one, ref + (size_t)i * V, (size_t)V);
        ei = d > ei ? d : ei;
    }
    TAP_OK(rc == 0 && ei < FP_TOL, "%s: incremental decode logits max abs err %.3g", name, ei);
    /* Prefill of 7, then 6 more as a second chunk: positions continue. */
    eng_ctx_reset(c);
    rc = eng_ctx_forward(c, tok, 7, NULL, 0);
    if (!rc)
        rc = eng_ctx_forward(c, tok + 7, n - 7, lg, 1);
    e = eu_maxabs(lg, ref + (size_t)7 * V, (size_t)(n - 7) * V);
    TAP_OK(rc == 0 && e < FP_TOL, "%s: prefill continued from position 7, err %.3g", name, e);
    int ng = eng_generate_greedy(c, tok, 5, 8, -1, gen);
    int same = ng == (int)json_array_size(jg);
    for (int i = 0; same && i < ng; i++)
        same = gen[i] == json_integer_value(json_array_get(jg, (size_t)i));
    TAP_OK(same, "%s: greedy continuation of 8 tokens equals transformers'", name);
    /* Label-row scoring equals the full logits' columns. */
    int32_t rows[3] = {3, 0, V - 1};
    float sr[3];
    rc = eng_ctx_score_rows(c, tok, n, rows, 3, sr);
    const float *last = ref + (size_t)(n - 1) * V;
    TAP_OK(rc == 0 && fabsf(sr[0] - last[3]) < FP_TOL && fabsf(sr[1] - last[0]) < FP_TOL &&
               fabsf(sr[2] - last[V - 1]) < FP_TOL,
           "%s: score_rows equals the last position's logits", name);
    int32_t bad = V;
    rc = eng_ctx_forward(c, &bad, 1, one, 0);
    TAP_OK(rc == ENG_EINVAL && strstr(eng_ctx_errmsg(c), "outside the vocabulary"),
           "%s: token id %d refused (%s)", name, V, eng_ctx_errmsg(c));
out:
    eng_ctx_free(c);
    eng_model_free(m);
    eng_st_free(st);
    free(ref);
    free(lg);
    free(one);
}

/* Write a safetensors file from raw header JSON + data bytes. */
static void write_st(const char *path, const char *hdr, uint64_t hlen_override, const void *data,
                     size_t nd)
{
    uint64_t hl = hlen_override ? hlen_override : strlen(hdr);
    FILE *f = fopen(path, "wb");
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, strlen(hdr), f);
    if (nd)
        fwrite(data, 1, nd, f);
    fclose(f);
}

static void st_case(const char *label, const char *hdr, uint64_t hlen, size_t nd, int want,
                    const char *needle)
{
    char err[ENG_ERR_LEN] = "", path[512];
    float data[64] = {0};
    struct eng_st *st = NULL;
    snprintf(path, sizeof(path), "%s/bad.safetensors", eu_tmpdir());
    write_st(path, hdr, hlen, data, nd);
    int rc = eng_st_open(path, &st, err);
    TAP_OK(rc == want && strstr(err, needle), "safetensors %s: %s (%s)", label, eng_strerror(rc),
           err);
    eng_st_free(st);
}

static void corrupt_safetensors(void)
{
    char err[ENG_ERR_LEN] = "", path[512], cmd[1024];
    struct eng_st *st = NULL;
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    st_case("valid control", ok, 0, 24, 0, "");
    st_case("tiny file", "", 0, 0, ENG_EFORMAT, "not valid JSON");
    st_case("header length past EOF", ok, 1u << 20, 24, ENG_ETRUNC, "truncated");
    st_case("header length > 100MB", ok, 1ull << 40, 24, ENG_EFORMAT, "100 MB");
    st_case("header not JSON", "{\"a\":", 0, 24, ENG_EFORMAT, "not valid JSON");
    st_case("header not an object", "[1,2]", 0, 24, ENG_EFORMAT, "not a JSON object");
    st_case("unknown dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0,
            24, ENG_EUNSUPPORTED, "tensor 'a': unsupported dtype 'F8'");
    st_case("shape/offset mismatch",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}}", 0, 24,
            ENG_ESHAPE, "tensor 'w'");
    st_case("data past end (truncated data)",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 0, 20,
            ENG_ETRUNC, "tensor 'w'");
    st_case("overlapping tensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            0, 24, ENG_EFORMAT, "overlap");
    st_case("negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
            0, 24, ENG_EFORMAT, "shape[0]");
    st_case("offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}",
            0, 24, ENG_EFORMAT, "bad data_offsets");
    st_case("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, 24, ENG_EFORMAT,
            "data_offsets");
    {
        FILE *f;
        snprintf(path, sizeof(path), "%s/short.safetensors", eu_tmpdir());
        f = fopen(path, "wb");
        fwrite("abc", 1, 3, f);
        fclose(f);
        int rc = eng_st_open(path, &st, err);
        TAP_OK(rc == ENG_ETRUNC && strstr(err, "truncated"), "safetensors 3-byte file: %s", err);
    }
    /* A real checkpoint cut in half: the model load must name a tensor and say truncated. */
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s/cut && mkdir -p %s/cut && cp %s/config.json %s/cut/ && "
             "head -c 150000 %s/model.safetensors > %s/cut/model.safetensors",
             eu_tmpdir(), eu_tmpdir(), eu_fx("qwen3-f32"), eu_tmpdir(), eu_fx("qwen3-f32"),
             eu_tmpdir());
    if (system(cmd) != 0)
        TAP_BAIL("cannot prepare %s", cmd);
    snprintf(path, sizeof(path), "%s/cut", eu_tmpdir());
    struct eng_model *m = NULL;
    int rc = eng_model_load_hf(path, &m, err);
    TAP_OK(rc == ENG_ETRUNC && strstr(err, "tensor '") && strstr(err, "truncated"),
           "checkpoint truncated at 150000 bytes: %s", err);
    eng_model_free(m);
    /* Sharded: the index names a shard that is missing. */
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s/sh && cp -r %s %s/sh && rm %s/sh/model-00003-of-00004.safetensors",
             eu_tmpdir(), eu_fx("qwen2-sharded"), eu_tmpdir(), eu_tmpdir());
    if (system(cmd) != 0)
        TAP_BAIL("cannot prepare %s", cmd);
    snprintf(path, sizeof(path), "%s/sh", eu_tmpdir());
    rc = eng_model_load_hf(path, &m, err);
    TAP_OK(rc == ENG_EIO && strstr(err, "model-00003-of-00004.safetensors"),
           "sharded checkpoint with a missing shard: %s", err);
    eng_model_free(m);
    /* A tensor of the wrong shape for config.json (hidden 48 claimed as 40 by the config). */
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s/cfg && mkdir -p %s/cfg && cp %s/model.safetensors %s/cfg/ && "
             "sed 's/\"intermediate_size\": 80/\"intermediate_size\": 96/' %s/config.json > "
             "%s/cfg/config.json",
             eu_tmpdir(), eu_tmpdir(), eu_fx("qwen3-f32"), eu_tmpdir(), eu_fx("qwen3-f32"),
             eu_tmpdir());
    if (system(cmd) != 0)
        TAP_BAIL("cannot prepare %s", cmd);
    snprintf(path, sizeof(path), "%s/cfg", eu_tmpdir());
    rc = eng_model_load_hf(path, &m, err);
    TAP_OK(rc == ENG_ESHAPE && strstr(err, "gate_proj.weight' has shape [80, 48], config.json "
                                           "implies [96, 48]"),
           "shape vs config: %s", err);
    eng_model_free(m);
    /* The Qwen3 checkpoint declared as Llama: q_norm tensors are unexpected. */
    snprintf(cmd, sizeof(cmd),
             "sed 's/\"model_type\": \"qwen3\"/\"model_type\": \"llama\"/' %s/config.json > "
             "%s/cfg/config.json",
             eu_fx("qwen3-f32"), eu_tmpdir());
    if (system(cmd) != 0)
        TAP_BAIL("cannot prepare %s", cmd);
    rc = eng_model_load_hf(path, &m, err);
    TAP_OK(rc == ENG_ECONFIG && strstr(err, "q_norm"), "qwen3 weights as llama: %s", err);
    eng_model_free(m);
    /* Qwen2 weights declared as qwen3: the q_norm tensor is missing. */
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s/q2 && cp -r %s %s/q2 && sed -i 's/\"model_type\": "
             "\"qwen2\"/\"model_type\": \"qwen3\"/' %s/q2/config.json",
             eu_tmpdir(), eu_fx("qwen2-sharded"), eu_tmpdir(), eu_tmpdir());
    if (system(cmd) != 0)
        TAP_BAIL("cannot prepare %s", cmd);
    snprintf(path, sizeof(path), "%s/q2", eu_tmpdir());
    rc = eng_model_load_hf(path, &m, err);
    TAP_OK(rc == ENG_EMISSING && strstr(err, "model.layers.0.self_attn.q_norm.weight"),
           "qwen2 weights as qwen3: %s", err);
    eng_model_free(m);
}

static void cfg_case(const char *label, const char *json, int want, const char *needle)
{
    char err[ENG_ERR_LEN] = "";
    struct eng_config c;
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    int rc = j ? eng_config_from_json(j, "config.json", &c, err) : -100;
    TAP_OK(rc == want && strstr(err, needle), "config %s: %s", label, err[0] ? err : "ok");
    json_decref(j);
}

#define CFG_BASE                                                                                   \
    "\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"

static void configs(void)
{
    cfg_case("valid qwen3",
             "{\"model_type\":\"qwen3\"," CFG_BASE "\"num_attention_heads\":4,"
             "\"num_key_value_heads\":2,\"head_dim\":16,\"rope_theta\":1000000}",
             0, "");
    cfg_case("gemma refused", "{\"model_type\":\"gemma3\"," CFG_BASE "\"num_attention_heads\":4}",
             ENG_EUNSUPPORTED, "model_type 'gemma3' is not supported");
    cfg_case("no model_type", "{" CFG_BASE "\"num_attention_heads\":4}", ENG_ECONFIG,
             "missing \"model_type\"");
    cfg_case("missing hidden_size",
             "{\"model_type\":\"qwen2\",\"vocab_size\":10,"
             "\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2}",
             ENG_ECONFIG, "missing \"hidden_size\"");
    cfg_case("heads not multiple of kv",
             "{\"model_type\":\"qwen3\"," CFG_BASE
             "\"num_attention_heads\":6,\"num_key_value_heads\":4,\"head_dim\":8}",
             ENG_ECONFIG, "not a multiple of num_key_value_heads");
    cfg_case("odd head_dim",
             "{\"model_type\":\"llama\"," CFG_BASE "\"num_attention_heads\":4,"
             "\"head_dim\":7}",
             ENG_ECONFIG, "head_dim 7 must be even");
    cfg_case("llama3 rope scaling",
             "{\"model_type\":\"llama\"," CFG_BASE
             "\"num_attention_heads\":4,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
             ENG_EUNSUPPORTED, "RoPE scaling type 'llama3'");
    cfg_case("gelu",
             "{\"model_type\":\"qwen2\"," CFG_BASE "\"num_attention_heads\":4,"
             "\"hidden_act\":\"gelu\"}",
             ENG_EUNSUPPORTED, "hidden_act 'gelu'");
    cfg_case("negative vocab",
             "{\"model_type\":\"qwen2\",\"vocab_size\":-3,\"hidden_size\":8,"
             "\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2}",
             ENG_ECONFIG, "\"vocab_size\" must be a positive integer");
    cfg_case("sliding window",
             "{\"model_type\":\"qwen2\"," CFG_BASE "\"num_attention_heads\":4,"
             "\"use_sliding_window\":true}",
             ENG_EUNSUPPORTED, "use_sliding_window");
    cfg_case("string eps",
             "{\"model_type\":\"qwen2\"," CFG_BASE "\"num_attention_heads\":4,"
             "\"rms_norm_eps\":\"1e-6\"}",
             ENG_ECONFIG, "rms_norm_eps");
    struct eng_config c;
    char err[ENG_ERR_LEN];
    int rc = eng_config_load(eu_fx("qwen3-f32"), &c, err);
    TAP_OK(rc == 0 && c.arch == ENG_ARCH_QWEN3 && c.heads == 6 && c.kv_heads == 2 &&
               c.head_dim == 8 && c.tie && c.qk_norm && !c.qkv_bias &&
               fabsf(c.rope_theta - 1e6f) < 1 && c.eps == 1e-6f,
           "qwen3 fixture config: rope_parameters.rope_theta (transformers 5) read");
    rc = eng_config_load(eu_fx("qwen2-sharded"), &c, err);
    TAP_OK(rc == 0 && c.arch == ENG_ARCH_QWEN2 && c.head_dim == 8 && !c.tie && c.qkv_bias &&
               !c.qk_norm,
           "qwen2 fixture config: bias on, head_dim from hidden/heads");
}

/* fp32 -> fp16, round to nearest even (normals and subnormals; the test data has no inf/nan). */
static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xff, man = u & 0x7fffffu;
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

/* The Qwen3 fixture rewritten as F16 safetensors: loads through the F16 path, logits close to
 * the fp32 reference (weights rounded to 11 bits) with the same argmax everywhere. */
static void fp16_checkpoint(void)
{
    char err[ENG_ERR_LEN] = "", dir[512], path[600], cmd[1300];
    struct eng_st *st = NULL;
    struct eng_model *m = NULL;
    struct eng_ctx *c = NULL;
    snprintf(dir, sizeof(dir), "%s/f16", eu_tmpdir());
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/config.json %s/", dir, eu_fx("qwen3-f32"),
             dir);
    if (system(cmd) != 0 || eng_st_open(eu_fx("qwen3-f32"), &st, err))
        TAP_BAIL("cannot prepare the fp16 checkpoint: %s", err);
    size_t n = eng_st_count(st);
    struct eng_st_wtensor *w = calloc(n, sizeof(*w));
    for (size_t i = 0; i < n; i++) {
        const struct eng_st_tensor *t = eng_st_at(st, i);
        size_t k = (size_t)eng_st_numel(t);
        float *f = malloc(k * sizeof(float));
        uint16_t *h = malloc(k * sizeof(uint16_t));
        eng_to_f32(t->dtype, t->data, f, k);
        for (size_t j = 0; j < k; j++)
            h[j] = f32_to_f16(f[j]);
        free(f);
        w[i] = (struct eng_st_wtensor){t->name, ENG_DT_F16, t->ndim, {0}, h};
        memcpy(w[i].shape, t->shape, sizeof(t->shape));
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    int rc = eng_st_write(path, w, n, err);
    for (size_t i = 0; i < n; i++)
        free((void *)w[i].data);
    free(w);
    eng_st_free(st);
    if (rc == 0)
        rc = eng_model_load_hf(dir, &m, err);
    TAP_OK(rc == 0, "F16 checkpoint (written by eng_st_write) loads (%s)", err);
    if (rc)
        return;
    json_t *r = json_object_get(json_object_get(refs, "models"), "qwen3-f32");
    int32_t tok[64];
    int nt = 0, V = 211;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(r, "tokens"), i, x) tok[nt++] =
        (int32_t)json_integer_value(x);
    float *ref = (float *)eu_read(eu_fx("qwen3-f32.logits.bin"), NULL);
    float *lg = malloc((size_t)nt * V * sizeof(float));
    rc = eng_ctx_create(m, 32, &c);
    if (rc == 0)
        rc = eng_ctx_forward(c, tok, nt, lg, 1);
    int agree = 0;
    for (int t = 0; rc == 0 && t < nt; t++) {
        int a = 0, b = 0;
        for (int v = 1; v < V; v++) {
            a = lg[t * V + v] > lg[t * V + a] ? v : a;
            b = ref[t * V + v] > ref[t * V + b] ? v : b;
        }
        agree += a == b;
    }
    double e = rc == 0 ? eu_maxabs(lg, ref, (size_t)nt * V) : 1e9;
    TAP_OK(rc == 0 && e < FP16_TOL && agree == nt,
           "F16 weights: logits within %.3g of the fp32 reference (< %g), argmax %d/%d", e,
           FP16_TOL, agree, nt);
    eng_ctx_free(c);
    eng_model_free(m);
    free(ref);
    free(lg);
}

static void conversions(void)
{
    uint16_t h[6] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555, 0x0000};
    float want[6] = {1.0f, -2.0f, 5.9604645e-08f, INFINITY, 0.33325195f, 0.0f};
    float got[6];
    eng_to_f32(ENG_DT_F16, h, got, 6);
    TAP_OK(!memcmp(got, want, sizeof(got)), "fp16 -> fp32 incl. subnormal and inf");
    uint16_t b = eng_f32_to_bf16(1.00390625f); /* exactly halfway: ties to even -> 1.0 */
    TAP_OK(b == 0x3f80 && eng_bf16_to_f32(eng_f32_to_bf16(3.0f)) == 3.0f,
           "bf16 rounding to nearest even");
}

int main(void)
{
    json_error_t je;
    refs = json_load_file(eu_fx("refs.json"), 0, &je);
    if (!refs)
        TAP_BAIL("cannot read %s: %s", eu_fx("refs.json"), je.text);
    parity("qwen3-f32", 0);
    parity("qwen3-bf16", 0);
    parity("qwen2-sharded", 0);
    parity("llama-f32", 0);
    parity("qwen3-f32", 1);
    parity("qwen2-sharded", 1);
    {
        char err[ENG_ERR_LEN];
        struct eng_model *a = NULL, *b = NULL;
        eng_model_load_hf(eu_fx("qwen3-f32"), &a, err);
        eng_model_load_hf(eu_fx("qwen3-bf16"), &b, err);
        TAP_OK(a && b && eng_model_resident_bytes(a) == eng_model_resident_bytes(b) &&
                   eng_model_resident_bytes(a) > 200000,
               "resident bytes reported (%zu fp32 in place, %zu bf16 converted)",
               a ? eng_model_resident_bytes(a) : 0, b ? eng_model_resident_bytes(b) : 0);
        eng_model_free(a);
        eng_model_free(b);
    }
    configs();
    conversions();
    fp16_checkpoint();
    corrupt_safetensors();
    json_decref(refs);
    eu_rmrf(eu_tmpdir());
    return tap_done();
}
