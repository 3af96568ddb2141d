/*
 * tests/fuzz/fuzz-gguf.c — libFuzzer target: the input is a student file (GGUF v3). The
 * container reader and the student loader must reject it with a message or load it; a loaded
 * student then runs one forward step and its tokenizer one encode.
 */
#include "config.h"

#include "engine/err.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024], err[ENG_ERR_LEN];
    fuzz_write("in.gguf", data, size, path, sizeof(path));

    struct eng_gguf *g = NULL;
    if (eng_gguf_open(path, &g, err) == 0) {
        uint64_t v;
        char *s = NULL;
        eng_gguf_get_u64(g, "general.alignment", &v, err);
        if (eng_gguf_get_str(g, "general.architecture", &s, err) == 0)
            free(s);
        const struct eng_gguf_kv *kv = eng_gguf_kv(g, "tokenizer.ggml.tokens");
        struct eng_gguf_str str;
        if (kv)
            for (uint64_t i = 0; i < 4 && eng_gguf_arr_str(kv, i, &str) == 0; i++)
                ;
        eng_gguf_free(g);
    }

    struct eng_model *m = NULL;
    struct eng_tok *tok = NULL;
    struct eng_student_meta meta;
    memset(&meta, 0, sizeof(meta));
    if (eng_student_load(path, &m, &tok, &meta, err) == 0) {
        struct eng_ctx *c = NULL;
        float *lg = malloc((size_t)eng_model_config(m)->vocab * sizeof(float));
        if (lg && eng_ctx_create(m, 8, &c) == 0) {
            int32_t toks[2] = {0, 1};
            eng_ctx_forward(c, toks, 2, lg, 0);
            eng_ctx_free(c);
        }
        free(lg);
        if (tok) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (eng_tok_encode(tok, "Hello, world", 12, &ids, &n) == 0)
                free(ids);
            eng_tok_free(tok);
        }
        eng_student_meta_release(&meta);
        eng_model_free(m);
    }
    return 0;
}
