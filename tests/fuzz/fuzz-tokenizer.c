/*
 * tests/fuzz/fuzz-tokenizer.c — libFuzzer target: the input is a tokenizer.json. Loading must
 * fail with a message or give a tokenizer that encodes and decodes a fixed text (with
 * multi-byte UTF-8, digits, spaces and an added-token look-alike) without crashing.
 */
#include "config.h"

#include "engine/err.h"
#include "engine/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

static const char text[] = "Hello, wörld! 12345  <|endoftext|> \xe4\xbd\xa0\xe5\xa5\xbd \n\tok";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024], err[ENG_ERR_LEN];
    fuzz_write("tokenizer.json", data, size, path, sizeof(path));
    struct eng_tok *tok = NULL;
    err[0] = 0;
    if (eng_tok_load_json(path, &tok, err)) {
        if (!err[0])
            __builtin_trap();
        return 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (eng_tok_encode(tok, text, sizeof(text) - 1, &ids, &n) == 0) {
        char *out = NULL;
        size_t len = 0;
        if (eng_tok_decode(tok, ids, n, 0, &out, &len) == 0)
            free(out);
        free(ids);
    }
    /* Every id the tokenizer claims to have decodes. */
    int32_t nv = eng_tok_vocab_size(tok);
    for (int32_t i = 0; i < nv && i < 300; i++) {
        char *out = NULL;
        size_t len = 0;
        if (eng_tok_decode(tok, &i, 1, 1, &out, &len) == 0)
            free(out);
    }
    eng_tok_free(tok);
    return 0;
}
