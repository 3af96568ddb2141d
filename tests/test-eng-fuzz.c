/*
 * tests/test-eng-fuzz.c — mutation fuzzing of the three loaders (GGUF student, safetensors
 * checkpoint, tokenizer.json): valid files get 1-4 random bytes overwritten (seeded, mostly in
 * the headers where the structure lives) or are cut short, then loaded. Every load must either
 * fail with a message or succeed and then run a forward/encode without crashing; the sanitizer
 * build turns any out-of-bounds access into a failure. One assertion per loader.
 */
#include "config.h"

#include "engine/err.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "tests/eng_util.h"
#include "tests/tap.h"

#include <sys/stat.h>

#define ROUNDS 300

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Overwrite 1-4 bytes of b (n bytes), 3/4 of them inside the first `hot` bytes; 1 in 10
 * rounds also cut the file. Returns the new length. */
static size_t mutate(unsigned char *b, size_t n, size_t hot)
{
    int k = 1 + (int)(next() % 4);
    for (int i = 0; i < k; i++) {
        size_t at = next() % 4 ? next() % hot : next() % n;
        static const unsigned char vals[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', ']', ' ', '9'};
        b[at] = next() % 2 ? vals[next() % sizeof(vals)] : (unsigned char)next();
    }
    return next() % 10 ? n : next() % n;
}

static size_t header_len(const unsigned char *b)
{
    uint64_t h;
    memcpy(&h, b, 8);
    return (size_t)h + 8;
}

int main(void)
{
    char err[ENG_ERR_LEN], path[1024], dir[512];
    size_t n;
    int rejected, ran, silent;

    /* --- GGUF: a student with a small tokenizer and task metadata --- */
    struct eng_model *fp = NULL, *st = NULL;
    struct eng_tok *tok = NULL;
    static char vbuf[256][8];
    const char *vocab[260];
    for (int b = 0; b < 256; b++) { /* byte-level alphabet: printable bytes map to themselves */
        int cp = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174 ? b : -1;
        if (cp < 0) {
            int k = 0;
            for (int x = 0; x < b; x++)
                k += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
            cp = 256 + k;
        }
        if (cp < 0x80) {
            vbuf[b][0] = (char)cp;
            vbuf[b][1] = 0;
        } else {
            vbuf[b][0] = (char)(0xc0 | (cp >> 6));
            vbuf[b][1] = (char)(0x80 | (cp & 63));
            vbuf[b][2] = 0;
        }
        vocab[b] = vbuf[b];
    }
    vocab[256] = "ab";
    const char *merges[1] = {"a b"};
    struct eng_tok_added added[1] = {{"<|end|>", 257, 1}};
    struct eng_tok_spec sp = {vocab, 257, merges, 1, added, 1, NULL, 1, 0};
    if (eng_tok_create(&sp, &tok, err))
        TAP_BAIL("cannot make the small tokenizer: %s", err);
    if (eng_model_load_hf(eu_fx("qwen3-student"), &fp, err) ||
        eng_student_from_fp(fp, ENG_HEAD_Q4, &st, err))
        TAP_BAIL("cannot make the student: %s", err);
    char *labels[2] = {"no", "yes"}, *words[2] = {" no", " yes"};
    struct eng_student_meta meta = {
        "Q: {text} A:", 2, labels, words, "00", "job", "{}", "{{ messages[0].content }}", NULL};
    snprintf(path, sizeof(path), "%s/good.gguf", eu_tmpdir());
    if (eng_student_save(st, tok, &meta, path, err))
        TAP_BAIL("cannot save: %s", err);
    eng_model_free(st);
    eng_tok_free(tok);
    unsigned char *good = (unsigned char *)eu_read(path, &n), *b = malloc(n);
    snprintf(path, sizeof(path), "%s/fuzz.gguf", eu_tmpdir());
    rejected = ran = silent = 0;
    for (int r = 0; r < ROUNDS; r++) {
        memcpy(b, good, n);
        size_t len = mutate(b, n, n / 2 > 4096 ? 4096 : n / 2);
        eu_write(path, b, len);
        struct eng_model *m = NULL;
        struct eng_tok *t = NULL;
        struct eng_student_meta mm;
        err[0] = 0;
        if (eng_student_load(path, &m, &t, &mm, err)) {
            rejected++;
            silent += !err[0];
            continue;
        }
        struct eng_ctx *c = NULL;
        int32_t ids[3] = {1, 2, 3};
        float *lg = malloc((size_t)eng_model_config(m)->vocab * sizeof(float));
        if (lg && eng_ctx_create(m, 8, &c) == 0 && eng_ctx_forward(c, ids, 3, lg, 0) == 0)
            ran++;
        if (t) {
            int32_t *e = NULL;
            size_t ne;
            if (eng_tok_encode(t, "abc <|end|> ab", 14, &e, &ne) == 0)
                free(e);
        }
        free(lg);
        eng_ctx_free(c);
        eng_tok_free(t);
        eng_student_meta_release(&mm);
        eng_model_free(m);
    }
    TAP_OK(silent == 0 && rejected > ROUNDS / 3,
           "%d mutated student GGUF files: %d rejected with a message, %d loaded and ran, no crash",
           ROUNDS, rejected, ran);
    free(good);
    free(b);

    /* --- safetensors checkpoint --- */
    snprintf(dir, sizeof(dir), "%s/st", eu_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    {
        size_t cn;
        char *cfg = eu_read(eu_fx("qwen3-f32/config.json"), &cn);
        eu_write(path, cfg, cn);
        free(cfg);
    }
    char mpath[512];
    snprintf(mpath, sizeof(mpath), "%s/model.safetensors", eu_fx("qwen3-f32"));
    good = (unsigned char *)eu_read(mpath, &n);
    b = malloc(n);
    size_t hl = header_len(good);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    rejected = ran = silent = 0;
    for (int r = 0; r < ROUNDS; r++) {
        memcpy(b, good, n);
        size_t len = mutate(b, n, hl);
        eu_write(path, b, len);
        struct eng_model *m = NULL;
        err[0] = 0;
        if (eng_model_load_hf(dir, &m, err)) {
            rejected++;
            silent += !err[0];
            continue;
        }
        struct eng_ctx *c = NULL;
        int32_t ids[3] = {1, 2, 3};
        float lg[211];
        if (eng_ctx_create(m, 8, &c) == 0 && eng_ctx_forward(c, ids, 3, lg, 0) == 0)
            ran++;
        eng_ctx_free(c);
        eng_model_free(m);
    }
    TAP_OK(silent == 0 && rejected > ROUNDS / 3,
           "%d mutated safetensors checkpoints: %d rejected with a message, %d loaded and ran, "
           "no crash",
           ROUNDS, rejected, ran);
    free(good);
    free(b);

    /* --- tokenizer.json --- */
    const char *tj = "{\"added_tokens\":[{\"id\":4,\"content\":\"<|e|>\",\"special\":true}],"
                     "\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\","
                     "\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                     "\"\\\\p{L}+|\\\\s+|.\"},\"behavior\":\"Isolated\",\"invert\":false},"
                     "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
                     "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,"
                     "\"\\u0120\":3},\"merges\":[[\"a\",\"b\"]]}}";
    n = strlen(tj);
    b = malloc(n);
    snprintf(path, sizeof(path), "%s/tokenizer.json", eu_tmpdir());
    rejected = ran = silent = 0;
    for (int r = 0; r < ROUNDS; r++) {
        memcpy(b, tj, n);
        size_t len = mutate(b, n, n);
        eu_write(path, b, len);
        struct eng_tok *t = NULL;
        err[0] = 0;
        if (eng_tok_load_json(path, &t, err)) {
            rejected++;
            silent += !err[0];
            continue;
        }
        int32_t *e = NULL;
        size_t ne;
        if (eng_tok_encode(t, "ab ba <|e|>", 11, &e, &ne) == 0)
            ran++;
        free(e);
        eng_tok_free(t);
    }
    TAP_OK(silent == 0 && rejected > ROUNDS / 3,
           "%d mutated tokenizer.json files: %d rejected with a message, %d loaded and encoded, "
           "no crash",
           ROUNDS, rejected, ran);
    free(b);
    eng_model_free(fp);
    eu_rmrf(eu_tmpdir());
    return tap_done();
}
