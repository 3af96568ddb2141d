/*
 * engine/init.c — write a random-initialised model in Hugging Face format (config.json +
 * model.safetensors), for tests and for benchmarks at real shapes without any download.
 *
 * Init as transformers does for these architectures: linear and embedding weights
 * N(0, initializer_range) (default 0.02), biases 0, RMSNorm weights 1. The safetensors file is
 * streamed tensor by tensor (a 4B model never needs its whole size in memory). Deterministic
 * for a given seed (splitmix64 + Box-Muller).
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/err.h"
#include "engine/hfconfig.h"
#include "engine/init.h"
#include "engine/safetensors.h"

struct itensor {
    char name[128];
    int64_t d0, d1; /* shape [d0] (d1 == 0) or [d0][d1] */
    int kind;       /* 0 normal(std), 1 ones, 2 zeros */
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s)
{
    return ((double)(splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static size_t list_tensors(const struct eng_config *c, struct itensor *t)
{
    size_t n = 0;
    int qd = c->heads * c->head_dim, kd = c->kv_heads * c->head_dim;
#define ADD(nm, a, b, k)                                                                           \
    do {                                                                                           \
        if (t) {                                                                                   \
            snprintf(t[n].name, sizeof(t[n].name), "%s", nm);                                      \
            t[n].d0 = a;                                                                           \
            t[n].d1 = b;                                                                           \
            t[n].kind = k;                                                                         \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
    char nm[128];
    ADD("model.embed_tokens.weight", c->vocab, c->hidden, 0);
    for (int i = 0; i < c->layers; i++) {
        const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                              "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                              "mlp.down_proj"};
        int64_t sh[7][2] = {{qd, c->hidden},      {kd, c->hidden},       {kd, c->hidden},
                            {c->hidden, qd},      {c->inter, c->hidden}, {c->inter, c->hidden},
                            {c->hidden, c->inter}};
        snprintf(nm, sizeof(nm), "model.layers.%d.input_layernorm.weight", i);
        ADD(nm, c->hidden, 0, 1);
        snprintf(nm, sizeof(nm), "model.layers.%d.post_attention_layernorm.weight", i);
        ADD(nm, c->hidden, 0, 1);
        if (c->qk_norm) {
            snprintf(nm, sizeof(nm), "model.layers.%d.self_attn.q_norm.weight", i);
            ADD(nm, c->head_dim, 0, 1);
            snprintf(nm, sizeof(nm), "model.layers.%d.self_attn.k_norm.weight", i);
            ADD(nm, c->head_dim, 0, 1);
        }
        for (int j = 0; j < 7; j++) {
            snprintf(nm, sizeof(nm), "model.layers.%d.%s.weight", i, lin[j]);
            ADD(nm, sh[j][0], sh[j][1], 0);
            if (c->qkv_bias && j < 3) {
                snprintf(nm, sizeof(nm), "model.layers.%d.%s.bias", i, lin[j]);
                ADD(nm, sh[j][0], 0, 2);
            }
        }
    }
    ADD("model.norm.weight", c->hidden, 0, 1);
    if (!c->tie)
        ADD("lm_head.weight", c->vocab, c->hidden, 0);
#undef ADD
    return n;
}

int eng_init_write(const char *config_path, const char *out_dir, uint64_t seed, int bf16, char *err)
{
    struct eng_config c;
    json_error_t je;
    json_t *root = NULL, *hdr = NULL;
    struct itensor *t = NULL;
    char path[4096], tmp[4200];
    char *hs = NULL;
    FILE *f = NULL;
    void *buf = NULL;
    int rc;

    root = json_load_file(config_path, 0, &je);
    if (!root)
        return eng_fail(err, ENG_ECONFIG, "cannot read '%s': %s (line %d)", config_path, je.text,
                        je.line);
    if ((rc = eng_config_from_json(root, config_path, &c, err)))
        goto out;
    double std = 0.02;
    if (json_is_number(json_object_get(root, "initializer_range")))
        std = json_number_value(json_object_get(root, "initializer_range"));
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        rc = eng_fail(err, ENG_EIO, "cannot create '%s': %s", out_dir, strerror(errno));
        goto out;
    }
    json_object_set_new(root, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    snprintf(path, sizeof(path), "%s/config.json", out_dir);
    if (json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        rc = eng_fail(err, ENG_EIO, "cannot write '%s'", path);
        goto out;
    }
    size_t n = list_tensors(&c, NULL), es = bf16 ? 2 : 4;
    t = calloc(n, sizeof(*t));
    hdr = json_object();
    if (!t || !hdr) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    list_tensors(&c, t);
    uint64_t off = 0;
    size_t maxel = 0;
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    for (size_t i = 0; i < n; i++) {
        size_t el = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
        json_t *sh = t[i].d1 ? json_pack("[II]", (json_int_t)t[i].d0, (json_int_t)t[i].d1)
                             : json_pack("[I]", (json_int_t)t[i].d0);
        json_object_set_new(hdr, t[i].name,
                            json_pack("{s:s,s:o,s:[II]}", "dtype", bf16 ? "BF16" : "F32", "shape",
                                      sh, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + el * es)));
        off += el * es;
        if (el > maxel)
            maxel = el;
    }
    hs = json_dumps(hdr, JSON_COMPACT);
    size_t hl = hs ? strlen(hs) : 0, pad = (8 - (8 + hl) % 8) % 8;
    uint64_t hlen = hl + pad;
    size_t chunk = maxel < (1u << 20) ? maxel : (1u << 20);
    buf = malloc(chunk * 4);
    snprintf(path, sizeof(path), "%s/model.safetensors", out_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!hs || !buf || !f) {
        rc = eng_fail(err, f ? ENG_ENOMEM : ENG_EIO, "cannot write '%s'", tmp);
        goto out;
    }
    int ok = fwrite(&hlen, 8, 1, f) == 1 && fwrite(hs, 1, hl, f) == hl;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 12345;
    for (size_t i = 0; ok && i < n; i++) {
        size_t el = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
        for (size_t done = 0; ok && done < el; done += chunk) {
            size_t k = el - done < chunk ? el - done : chunk;
            float *fb = buf;
            for (size_t j = 0; j < k; j++) {
                float v = t[i].kind == 1 ? 1.0f : 0.0f;
                if (t[i].kind == 0)
                    v = (float)(std * sqrt(-2.0 * log(unif(&s))) *
                                cos(6.283185307179586 * unif(&s)));
                if (bf16) {
                    uint16_t h = eng_f32_to_bf16(v);
                    memcpy((char *)buf + 2 * j, &h, 2);
                } else {
                    fb[j] = v;
                }
            }
            ok = fwrite(buf, es, k, f) == k;
        }
    }
    if (fclose(f) != 0)
        ok = 0;
    f = NULL;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        rc = eng_fail(err, ENG_EIO, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    free(buf);
    free(hs);
    free(t);
    json_decref(hdr);
    json_decref(root);
    return rc;
}
