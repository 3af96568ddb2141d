/*
 * tests/fuzz/fuzz-safetensors.c — libFuzzer target: the input is a .safetensors file. The
 * reader must reject it with a message or map it; every tensor it then lists must lie inside
 * the file with nbytes = product(shape) * dtype size (read in full here, so ASan sees any
 * escape).
 */
#include "config.h"

#include "engine/err.h"
#include "engine/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

static volatile unsigned sink; /* keeps the reads */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024], err[ENG_ERR_LEN];
    fuzz_write("model.safetensors", data, size, path, sizeof(path));
    struct eng_st *st = NULL;
    err[0] = 0;
    if (eng_st_open(path, &st, err)) {
        if (!err[0])
            __builtin_trap(); /* a rejection always says why */
        return 0;
    }
    for (size_t i = 0; i < eng_st_count(st); i++) {
        const struct eng_st_tensor *t = eng_st_at(st, i);
        const unsigned char *p = t->data;
        for (size_t k = 0; k < t->nbytes; k++)
            sink += p[k];
        if (eng_st_find(st, t->name) == NULL)
            __builtin_trap();
    }
    eng_st_free(st);
    return 0;
}
