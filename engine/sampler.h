/*
 * engine/sampler.h — choosing the next token from logits: greedy, or temperature + nucleus
 * (top_p) sampling with a per-request seeded generator, so the same seed gives the same text.
 */
#ifndef BD_ENGINE_SAMPLER_H
#define BD_ENGINE_SAMPLER_H

#include <stdint.h>

struct eng_sampler {
    float temperature; /* 0: greedy */
    float top_p;       /* (0, 1]; 1: no nucleus cut */
    uint64_t state;    /* splitmix64 state, from the seed */
};

void eng_sampler_init(struct eng_sampler *s, float temperature, float top_p, uint64_t seed);

/*
 * Pick a token from logits [n] (modified in place: scaled and normalised). `scratch` holds
 * n int32 indices. Returns the token id.
 */
int32_t eng_sampler_pick(struct eng_sampler *s, float *logits, int n, int32_t *scratch);

#endif
