/*
 * bench/batchpass.c — CPU time of one classification input in the serving scheduler's batched
 * pass, by batch size, on one thread (what each engine worker runs).
 *
 *   batchpass MODEL.gguf [TEXT]
 *
 * Loads MODEL as the daemon does, applies its template to TEXT (default: one SST-2-like
 * sentence), and times eng_batch_run over 1, 2, 4 ... 32 copies of it (640 inputs per size),
 * giving back the KV contexts as classify_pass does. Thread CPU time, so the figures hold on a
 * shared machine; the ratio to batch 1 is the gain of batching. The ceiling of a daemon with W
 * one-thread workers is about W / (ms per input) requests/s, before HTTP and the loop thread.
 * BATCHPASS_INPUTS=N times N inputs per size instead of 640 (a short run under callgrind, whose
 * instruction counts are repeatable on a loaded machine); BITDISTILL_STEP=all-rows runs every
 * row through the last layer (the pass before the engine kept only the scored rows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/batch.h"
#include "engine/model_impl.h"
#include "engine/registry.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *text = argc > 2 ? argv[2]
                                : "The plot, though thin, carries enough wit and charm to stay "
                                  "afloat for ninety minutes.";
    struct eng_served *m = NULL;
    char err[512];
    int32_t *ids = NULL;
    size_t n = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: batchpass MODEL.gguf [TEXT]\n");
        return 2;
    }
    if (eng_served_load(argv[1], "bench", 0, &m, err)) {
        fprintf(stderr, "batchpass: %s\n", err);
        return 1;
    }
    eng_model_set_threads(m->model, 1);
    char *p = eng_served_prompt(m, text, strlen(text));
    int nl = m->meta.nlabels;
    if (!p || eng_tok_encode(m->tok, p, strlen(p), &ids, &n) || nl <= 0 || nl > 8) {
        fprintf(stderr, "batchpass: not a classification model, or the text does not encode\n");
        return 1;
    }
    const char *ev = getenv("BATCHPASS_INPUTS");
    int total = ev && atoi(ev) >= 32 ? atoi(ev) : 640;
    printf("batched classification pass, 1 thread: %s, %zu tokens per input, %d inputs per size\n",
           argv[1], n, total);
    printf("  %-6s %14s %14s %8s\n", "batch", "ms_cpu/input", "tokens/s/core", "gain");
    double base = 0;
    for (int bs = 1; bs <= 32; bs *= 2) {
        struct eng_seg segs[32];
        float out[32 * 8];
        struct eng_ctx *scratch = eng_served_scratch_get(m);
        double t0 = cpu_s();
        for (int r = 0; r < total / bs; r++) {
            for (int i = 0; i < bs; i++)
                segs[i] = (struct eng_seg){eng_served_ctx_get(m, (int)n),
                                           ids,
                                           (int)n,
                                           ENG_WANT_ROWS,
                                           m->label_rows,
                                           nl,
                                           out + i * 8};
            if (!scratch || eng_batch_run(scratch, segs, bs)) {
                fprintf(stderr, "batchpass: the pass failed\n");
                return 1;
            }
            for (int i = 0; i < bs; i++)
                eng_served_ctx_put(m, segs[i].ctx);
        }
        double per = (cpu_s() - t0) / (total / bs * bs);
        if (bs == 1)
            base = per;
        printf("  %-6d %14.3f %14.0f %7.2fx\n", bs, per * 1e3, n / per, base / per);
        eng_served_scratch_put(m, scratch);
    }
    free(ids);
    free(p);
    eng_served_unref(m);
    return 0;
}
