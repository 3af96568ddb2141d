/*
 * engine/batch.h — one forward pass over several sequences at once (the serving batcher's
 * primitive: dynamic batching of classifications, continuous batching of generations).
 *
 * Each segment appends n tokens to its own sequence (its eng_ctx: KV cache and position). The
 * linear layers run once over the rows of all segments together — one GEMM per projection, so
 * the weights are read once per pass instead of once per sequence — while RoPE, the KV cache
 * and attention stay per sequence. Passes hold at most ENG_BATCH_ROWS rows; more rows are run
 * in several passes (a long segment continues in the next pass). The arithmetic of every row is
 * the same as eng_ctx_forward's (integer kernels: bit-identical; FP: OpenBLAS's rounding).
 */
#ifndef BD_ENGINE_BATCH_H
#define BD_ENGINE_BATCH_H

#include <stdint.h>

#include "engine/model.h"

#define ENG_BATCH_ROWS 64

enum eng_want { ENG_WANT_NONE = 0, ENG_WANT_LOGITS = 1, ENG_WANT_ROWS = 2 };

struct eng_seg {
    struct eng_ctx *ctx; /* the sequence (borrowed; advanced by n) */
    const int32_t *tok;  /* [n] token ids (borrowed) */
    int n;
    enum eng_want want;  /* what to compute for the segment's last token */
    const int32_t *rows; /* ENG_WANT_ROWS: vocabulary rows to score [nrows] */
    int nrows;
    float *out; /* LOGITS: [vocab]; ROWS: [nrows] (borrowed) */
};

/*
 * Run the segments. `scratch` is a context of the same model used for its buffers only (its
 * cache is untouched). Every segment's ctx must belong to the same model and have room for its
 * tokens. Returns 0 or a status (message in scratch's errmsg); on error the positions of the
 * segments are unspecified (reset them).
 */
int eng_batch_run(struct eng_ctx *scratch, struct eng_seg *segs, int nsegs);

#endif
