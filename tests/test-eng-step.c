/*
 * tests/test-eng-step.c — the student's one-region pass (engine/step.c):
 *   - logits with N threads (2, 3, 5, 8) equal those with 1 thread bit for bit, for prefill
 *     across a chunk boundary and for decode steps;
 *   - they match the op-by-op reference pass (BITDISTILL_STEP=ops: each projection its own pool
 *     region, norms/RoPE/attention scalar on one thread) within STEP_TOL;
 *   - a batched pass of several sequences (eng_batch_run) equals each sequence run alone;
 *   - a pass that keeps only some rows (the last layer past attention on those rows alone,
 *     eng_layers_run_keep) gives those rows' final states and logits, and every row's KV cache,
 *     bit for bit as the whole pass, at 1 and 3 threads, and matches the op-by-op reference
 *     (which computes every row); bad kept-row lists are refused;
 * for a Qwen3 layout whose head_dim is a multiple of 16 (q/k/v fused per head) and a Qwen2
 * layout (q/k/v bias, head_dim 8, FFN width not a multiple of 16) that takes the other split.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/model_impl.h"
#include "engine/student.h"
#include "tests/eng_util.h"
#include "tests/tap.h"

/* Max abs logit difference against the op-by-op pass: the two sum RMSNorm and attention in
 * different orders (fops.h: 2e-5 relative), which can flip an INT8 activation code at a rounding
 * boundary; logits here reach ~10. */
#define STEP_TOL 2e-2
#define NPROMPT 80 /* > the 64-token chunk: two chunks */
#define NDEC 4

/* Logits of NPROMPT prompt positions (all) then NDEC greedy-fed decode steps, [NPROMPT+NDEC][V]. */
static float *run(struct eng_model *m, int nth, const int32_t *prompt, int V, char *why)
{
    float *lg = malloc((size_t)(NPROMPT + NDEC) * V * sizeof(float));
    struct eng_ctx *c = NULL;
    if (!lg || eng_model_set_threads(m, nth) || eng_ctx_create(m, 128, &c)) {
        snprintf(why, 256, "context with %d threads", nth);
        goto fail;
    }
    if (eng_ctx_forward(c, prompt, NPROMPT, lg, 1)) {
        snprintf(why, 256, "prefill: %s", eng_ctx_errmsg(c));
        goto fail;
    }
    for (int i = 0; i < NDEC; i++) {
        int32_t t = (int32_t)((prompt[i] * 7 + 3) % V);
        if (eng_ctx_forward(c, &t, 1, lg + (size_t)(NPROMPT + i) * V, 0)) {
            snprintf(why, 256, "decode: %s", eng_ctx_errmsg(c));
            goto fail;
        }
    }
    eng_ctx_free(c);
    return lg;
fail:
    eng_ctx_free(c);
    free(lg);
    return NULL;
}

static double maxabs(const float *a, const float *b, size_t n, size_t *where)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e || isnan(d)) {
            e = isnan(d) ? INFINITY : d;
            *where = i;
        }
    }
    return e;
}

/* Three sequences of 5, 37 and 1 tokens through one batched pass vs each alone. */
static void batch_case(const char *name, struct eng_model *m, const int32_t *prompt, int V)
{
    static const int lens[3] = {5, 37, 1};
    struct eng_ctx *S = NULL, *c[3] = {0}, *one = NULL;
    float *got = malloc(3 * (size_t)V * sizeof(float)), *want = malloc((size_t)V * sizeof(float));
    int ok = got && want && !eng_model_set_threads(m, 3) && !eng_ctx_create(m, 128, &S) &&
             !eng_ctx_create(m, 128, &one);
    struct eng_seg seg[3];
    for (int i = 0; ok && i < 3; i++) {
        ok = !eng_ctx_create(m, 128, &c[i]);
        seg[i] = (struct eng_seg){c[i], prompt + 10 * i,    lens[i], ENG_WANT_LOGITS, NULL,
                                  0,    got + (size_t)i * V};
    }
    ok = ok && !eng_batch_run(S, seg, 3);
    double e = 0;
    for (int i = 0; ok && i < 3; i++) {
        eng_ctx_reset(one);
        size_t w = 0;
        ok = !eng_ctx_forward(one, prompt + 10 * i, lens[i], want, 0);
        double d = ok ? maxabs(got + (size_t)i * V, want, (size_t)V, &w) : 1;
        e = d > e ? d : e;
    }
    TAP_OK(ok && e == 0,
           "%s: a batched pass of 3 sequences (5, 37, 1 tokens) equals each run "
           "alone, bit for bit (max diff %g)",
           name, e);
    for (int i = 0; i < 3; i++)
        eng_ctx_free(c[i]);
    eng_ctx_free(S);
    eng_ctx_free(one);
    free(got);
    free(want);
}

/* The KV caches of c[0..2] (the first n[i] positions of every layer) equal those of d[]. */
static int same_cache(struct eng_ctx *const *c, struct eng_ctx *const *d, const int *n,
                      const struct eng_config *cf)
{
    size_t kd = (size_t)cf->kv_heads * cf->head_dim;
    for (int i = 0; i < 3; i++)
        for (int l = 0; l < cf->layers; l++) {
            size_t off = (size_t)l * c[i]->max_t * kd, len = (size_t)n[i] * kd * sizeof(float);
            if (memcmp(c[i]->kc + off, d[i]->kc + off, len) ||
                memcmp(c[i]->vc + off, d[i]->vc + off, len))
                return 0;
        }
    return 1;
}

/* One pass of 3 pieces (5, 37 and 1 tokens: rows 0-4, 5-41, 42) with and without keep. */
static void keep_case(const char *name, struct eng_model *m, const int32_t *prompt, int V)
{
    static const int lens[3] = {5, 37, 1};
    static const int sets[4][4] = {{4, 41, 42}, {0, 20, 42}, {7}, {0}};
    static const int nset[4] = {3, 3, 1, 0};
    const struct eng_config *cf = eng_model_config(m);
    int R = 43, H = cf->hidden;
    for (int th = 1; th <= 3; th += 2) {
        struct eng_ctx *S = NULL, *K = NULL, *ref = NULL, *c[3] = {0}, *d[3] = {0};
        float *lg_all = malloc(3 * (size_t)V * sizeof(float)),
              *lg = malloc(3 * (size_t)V * sizeof(float));
        float *xn_all = malloc((size_t)R * H * sizeof(float));
        int ok = lg_all && lg && xn_all && !eng_model_set_threads(m, th) &&
                 !eng_ctx_create(m, 128, &S) && !eng_ctx_create(m, 128, &K);
        setenv("BITDISTILL_STEP", "ops", 1);
        ok = ok && !eng_ctx_create(m, 128, &ref);
        unsetenv("BITDISTILL_STEP");
        for (int i = 0; ok && i < 3; i++)
            ok = !eng_ctx_create(m, 128, &c[i]) && !eng_ctx_create(m, 128, &d[i]);
        if (!TAP_OK(ok, "%s, %d threads: keep-pass contexts", name, th))
            goto next;
        struct eng_piece pa[3], pb[3];
        for (int i = 0, row = 0; i < 3; row += lens[i], i++) {
            pa[i] = (struct eng_piece){c[i], prompt + 10 * i, lens[i], row, 0};
            pb[i] = (struct eng_piece){d[i], prompt + 10 * i, lens[i], row, 0};
        }
        for (int k = 0; k < 4; k++) {
            const int *rows = sets[k];
            int n = nset[k], nh = n < 2 ? n : 2; /* logits of the first two kept rows */
            struct eng_step_head ha = {rows, nh, lg_all}, hb = {rows, nh, lg};
            struct eng_step_keep keep = {rows, n};
            ok = !eng_layers_run_head(S, pa, 3, R, nh ? &ha : NULL);
            memcpy(xn_all, S->xn, (size_t)R * H * sizeof(float));
            ok = ok && !eng_layers_run_keep(K, pb, 3, R, nh ? &hb : NULL, &keep);
            int same = ok && same_cache(c, d, lens, cf);
            for (int j = 0; same && j < n; j++)
                same = !memcmp(xn_all + (size_t)rows[j] * H, K->xn + (size_t)rows[j] * H,
                               (size_t)H * sizeof(float));
            same = same && !memcmp(lg_all, lg, (size_t)nh * V * sizeof(float));
            TAP_OK(same,
                   "%s, %d threads: keeping %d of 43 rows (first %d): their final states, "
                   "their logits and every row's KV cache equal the whole pass bit for bit (%s)",
                   name, th, n, n ? rows[0] : -1, ok ? "" : eng_ctx_errmsg(K));
            if (!nh)
                continue;
            ok = !eng_layers_run_keep(ref, pa, 3, R, &ha, &keep);
            size_t w = 0;
            double e = ok ? maxabs(lg_all, lg, (size_t)nh * V, &w) : INFINITY;
            TAP_OK(e < STEP_TOL,
                   "%s, %d threads: keeping %d rows vs the op-by-op reference: "
                   "logits within %.3g < %g",
                   name, th, n, e, STEP_TOL);
        }
        static const int unsorted[2] = {9, 3}, outside[1] = {43};
        struct eng_step_keep bad1 = {unsorted, 2}, bad2 = {outside, 1}, one = {sets[2], 1};
        struct eng_step_head hd = {sets[0], 1, lg};
        TAP_OK(eng_layers_run_keep(K, pb, 3, R, NULL, &bad1) == ENG_EINVAL &&
                   strstr(eng_ctx_errmsg(K), "ascending"),
               "%s: kept rows out of order are refused "
               "(%s)",
               name, eng_ctx_errmsg(K));
        TAP_OK(eng_layers_run_keep(K, pb, 3, R, NULL, &bad2) == ENG_EINVAL,
               "%s: a kept row outside the pass is refused (%s)", name, eng_ctx_errmsg(K));
        TAP_OK(eng_layers_run_keep(K, pb, 3, R, &hd, &one) == ENG_EINVAL &&
                   strstr(eng_ctx_errmsg(K), "not among the kept rows"),
               "%s: a logit row that is not kept is refused (%s)", name, eng_ctx_errmsg(K));
    next:
        for (int i = 0; i < 3; i++) {
            eng_ctx_free(c[i]);
            eng_ctx_free(d[i]);
        }
        eng_ctx_free(S);
        eng_ctx_free(K);
        eng_ctx_free(ref);
        free(lg_all);
        free(lg);
        free(xn_all);
    }
}

static void model_case(const char *name, const char *cfg, enum eng_head_fmt fmt)
{
    char err[ENG_ERR_LEN] = "", cfgp[512], dir[512], why[256] = "";
    snprintf(cfgp, sizeof(cfgp), "%s/%s.json", eu_tmpdir(), name);
    snprintf(dir, sizeof(dir), "%s/%s", eu_tmpdir(), name);
    eu_write(cfgp, cfg, strlen(cfg));
    struct eng_model *fp = NULL, *m = NULL;
    int rc = eng_init_write(cfgp, dir, 7, 0, err);
    if (!rc)
        rc = eng_model_load_hf(dir, &fp, err);
    if (!rc)
        rc = eng_student_from_fp(fp, fmt, &m, err);
    if (!TAP_OK(rc == 0, "%s: random model and its student (%s)", name, err))
        goto out;
    int V = eng_model_config(m)->vocab;
    int32_t prompt[NPROMPT];
    for (int i = 0; i < NPROMPT; i++)
        prompt[i] = (int32_t)((i * 37 + 11) % V);
    size_t n = (size_t)(NPROMPT + NDEC) * V, w = 0;
    float *one = run(m, 1, prompt, V, why);
    if (!TAP_OK(one != NULL, "%s: 1 thread runs (%s)", name, why))
        goto out;
    static const int nths[4] = {2, 3, 5, 8};
    for (int i = 0; i < 4; i++) {
        float *lg = run(m, nths[i], prompt, V, why);
        double e = lg ? maxabs(lg, one, n, &w) : INFINITY;
        TAP_OK(lg && e == 0,
               "%s: %d threads give the 1-thread logits bit for bit (max diff %g "
               "at position %zu) %s",
               name, nths[i], e, w / (size_t)V, why);
        free(lg);
    }
    setenv("BITDISTILL_STEP", "ops", 1);
    float *ref = run(m, 2, prompt, V, why);
    unsetenv("BITDISTILL_STEP");
    double e = ref ? maxabs(ref, one, n, &w) : INFINITY, scale = 0;
    for (size_t i = 0; ref && i < n; i++)
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    TAP_OK(ref && e < STEP_TOL,
           "%s: one-region pass vs the op-by-op reference: max abs diff %.3g "
           "< %g (logits up to %.3g)",
           name, e, STEP_TOL, scale);
    free(ref);
    free(one);
    batch_case(name, m, prompt, V);
    keep_case(name, m, prompt, V);
out:
    eng_model_free(m);
    eng_model_free(fp);
}

int main(void)
{
    model_case("qwen3-hd16",
               "{\"model_type\":\"qwen3\",\"vocab_size\":300,\"hidden_size\":64,"
               "\"intermediate_size\":160,\"num_hidden_layers\":3,\"num_attention_heads\":4,"
               "\"num_key_value_heads\":2,\"head_dim\":16,\"max_position_embeddings\":256,"
               "\"tie_word_embeddings\":true,\"initializer_range\":0.5}",
               ENG_HEAD_Q4);
    model_case("qwen2-hd8",
               "{\"model_type\":\"qwen2\",\"vocab_size\":333,\"hidden_size\":48,"
               "\"intermediate_size\":72,\"num_hidden_layers\":2,\"num_attention_heads\":6,"
               "\"num_key_value_heads\":2,\"max_position_embeddings\":256,"
               "\"tie_word_embeddings\":false,\"initializer_range\":0.5}",
               ENG_HEAD_Q8);
    eu_rmrf(eu_tmpdir());
    return tap_done();
}
