/*
 * engine/sampler.c — see sampler.h. Nucleus sampling sorts only the candidates that can matter:
 * tokens whose probability is at least 1e-7 of the best one (the rest cannot change a top_p
 * below 1 - 1e-7 * n), which keeps a 150k vocabulary cheap.
 */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>

void eng_sampler_init(struct eng_sampler *s, float temperature, float top_p, uint64_t seed)
{
    s->temperature = temperature;
    s->top_p = top_p > 0.0f && top_p <= 1.0f ? top_p : 1.0f;
    s->state = seed ^ 0x9E3779B97F4A7C15ull;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int by_prob_desc(const void *a, const void *b, void *base)
{
    const float *p = base;
    float x = p[*(const int32_t *)a], y = p[*(const int32_t *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

int32_t eng_sampler_pick(struct eng_sampler *s, float *lg, int n, int32_t *idx)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[best])
            best = i;
    if (s->temperature <= 0.0f)
        return best;
    float mx = lg[best], sum = 0.0f;
    for (int i = 0; i < n; i++) {
        lg[i] = expf((lg[i] - mx) / s->temperature);
        sum += lg[i];
    }
    int m = 0;
    float floor_p = 1e-7f; /* relative to the best, whose weight is 1 */
    for (int i = 0; i < n; i++)
        if (lg[i] >= floor_p)
            idx[m++] = i;
    qsort_r(idx, (size_t)m, sizeof(*idx), by_prob_desc, lg);
    float keep = s->top_p * sum, acc = 0.0f;
    int k = 0;
    while (k < m) {
        acc += lg[idx[k++]];
        if (acc >= keep)
            break;
    }
    double u = (double)(splitmix64(&s->state) >> 11) * (1.0 / 9007199254740992.0) * acc;
    double c = 0.0;
    for (int i = 0; i < k; i++) {
        c += lg[idx[i]];
        if (u < c)
            return idx[i];
    }
    return idx[k - 1];
}
