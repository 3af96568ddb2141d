/*
 * tests/fuzz/fuzz-data.c — libFuzzer target: training datasets and corpora (train/data.h).
 * The first byte picks the file type (.tsv, .jsonl, .json or the "LABEL text" sentence format,
 * and a plain-text or JSONL corpus) and the task (sst2, mnli or cnndm); the rest is the file.
 * Loading must fail with a message or give examples that then encode with the byte-level test
 * tokenizer (tests/fixtures/train/tok-bytes.json).
 */
#include "config.h"

#include "engine/err.h"
#include "engine/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"
#include "train/data.h"

static struct eng_tok *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[2048], err[ENG_ERR_LEN];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof(path), "%s/tests/fixtures/train/tok-bytes.json", top ? top : BD_SRCDIR);
    if (eng_tok_load_json(path, &tok, err)) {
        fprintf(stderr, "fuzz-data: %s\n", err);
        exit(1);
    }
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"d.tsv", "d.jsonl", "d.json", "d.txt", "c.txt", "c.jsonl"};
    static const char *const tasks[] = {"sst2", "mnli", "cnndm"};
    char path[1024], err[ENG_ERR_LEN];
    if (size < 1)
        return 0;
    int kind = data[0] % 6, task = (data[0] / 6) % 3;
    fuzz_write(names[kind], data + 1, size - 1, path, sizeof(path));

    struct trn_task t;
    if (trn_task_defaults(tasks[task], &t, err) || trn_task_resolve(&t, tok, -1, err))
        __builtin_trap(); /* the built-in tasks resolve with the byte tokenizer */
    err[0] = 0;
    if (kind >= 4) {
        struct trn_corpus *c = NULL;
        if (trn_corpus_load(path, tok, t.eos, 4096, &c, err) == 0)
            trn_corpus_free(c);
        else if (!err[0])
            __builtin_trap();
        return 0;
    }
    struct trn_dataset *d = NULL;
    if (trn_dataset_load(path, &t, 64, &d, err)) {
        if (!err[0])
            __builtin_trap();
        return 0;
    }
    for (size_t i = 0; i < d->n; i++) {
        int32_t *ids = NULL;
        int n = 0, np = 0;
        if (trn_encode(&t, tok, &d->ex[i], 64, 1, &ids, &n, &np) == 0)
            free(ids);
    }
    trn_dataset_free(d);
    return 0;
}
