/*
 * tests/test-cuda-step.c — one whole BitDistill training step on the GPU (train/backend.h)
 * against the CPU trainer (step.h) on the tiny Qwen3 fixtures of tests/fixtures/train: the
 * losses CE, LD, AD and their sum, the gradient of every student tensor, then 3 AdamW steps
 * (parameters after). Paths: fp32 products (tolerances 1e-4 on losses) and bf16 products with
 * fp32 accumulation (1e-2 on losses). Gradient error is ||g_gpu - g_cpu|| / ||g_cpu|| per tensor.
 * The fixtures' head dim (16) keeps the materialising attention; a random-init model with head
 * dim 128 (made here with eng_init_write) runs the bf16 path's fused (flash) attention and, in
 * fp32, the materialising one, against the same CPU step. The bf16 path's head and losses are
 * fused (no logits matrix, a chunk of rows at a time): one case forces chunks of 7 rows. The
 * bf16 pre-training case also checks zero_grad's contract (fresh_case).
 * Without a GPU every check is a TAP SKIP with the reason.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/init.h"
#include "tests/eng_util.h"
#include "tests/tap.h"
#include "train/backend.h"

#define LOSS_TOL_F32 1e-4
#define GRAD_TOL_F32 2e-3 /* a BitLinear INT8 code may flip at a rounding boundary */
#define PARAM_TOL_F32 1e-4
#define LOSS_TOL_BF16 1e-2
#define GRAD_TOL_BF16 1e-1

static const char *fx(const char *rel)
{
    static char p[2][1024];
    static int k;
    const char *top = getenv("top_srcdir");
    k ^= 1;
    snprintf(p[k], sizeof(p[k]), "%s/tests/fixtures/train/%s", top ? top : ".", rel);
    return p[k];
}

static double nerr(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}

/* The fixtures (dir NULL), or the teacher in dir and its copy with SubLN as the student. */
static int load_dir(const char *dir, struct trn_model **s, struct trn_model **t)
{
    char err[ENG_ERR_LEN] = "";
    int rc;
    if (dir) {
        rc = trn_model_load_hf(dir, t, err);
        if (!rc && !(rc = trn_model_clone(*t, s, err)))
            trn_model_add_subln(*s);
    } else {
        rc = trn_model_load_hf(fx("student"), s, err);
        if (!rc)
            rc = trn_model_load_hf(fx("teacher"), t, err);
    }
    if (rc)
        TAP_DIAG("cannot load the fixtures: %s", err);
    else
        trn_model_set_quant(*s, 1);
    return rc;
}

static int load(struct trn_model **s, struct trn_model **t)
{
    return load_dir(NULL, s, t);
}

/* with_t 0: the session has no teacher (continued pre-training; lc must be CE only): the GPU
 * keeps one layer of state gradients and writes them through the fused attention's RoPE. */
static void one_case_dir(const char *name, const char *dir, struct trn_batch *b,
                         const struct trn_loss_cfg *lc, int bf16, int with_t)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_cuda *g = NULL;
    struct trn_losses Lc, Lg;
    char err[ENG_ERR_LEN] = "";
    double ltol = bf16 ? LOSS_TOL_BF16 : LOSS_TOL_F32, gtol = bf16 ? GRAD_TOL_BF16 : GRAD_TOL_F32;
    if (load_dir(dir, &s, &t)) {
        TAP_OK(0, "%s: models load", name);
        return;
    }
    if (!with_t) {
        trn_model_free(t);
        t = NULL;
    }
    int rc = trn_cuda_create(0, s, t, bf16, &g, err);
    if (!TAP_OK(rc == 0, "%s: session on cuda:0 (%s)", name, err))
        goto out;
    trn_model_zero_grad(s);
    rc = trn_step_losses(s, t, b, lc, 1, 0.5f, &Lc, err);
    TAP_OK(rc == 0, "%s: CPU step (%s)", name, err);
    trn_cuda_zero_grad(g);
    rc = trn_cuda_step_losses(g, b, lc, 1, 0.5f, &Lg, err);
    TAP_OK(rc == 0, "%s: GPU step (%s)", name, err);
    double gv[4] = {Lg.ce, Lg.ld, Lg.ad, Lg.loss}, cv[4] = {Lc.ce, Lc.ld, Lc.ad, Lc.loss};
    const char *ln[4] = {"CE", "LD", "AD", "loss"};
    for (int i = 0; i < 4; i++) {
        double re = fabs(gv[i] - cv[i]) / (fabs(cv[i]) > 0 ? fabs(cv[i]) : 1.0);
        TAP_OK(isfinite(gv[i]) && re <= ltol, "%s: %s gpu %.8g cpu %.8g (rel %.1e <= %.0e)", name,
               ln[i], gv[i], cv[i], re, ltol);
    }
    size_t np = trn_model_nparams(s);
    float *gg = malloc(np * sizeof(float));
    rc = trn_cuda_pull(g, NULL, gg, NULL, NULL, err);
    TAP_OK(rc == 0, "%s: gradients download (%s)", name, err);
    double worst = 0;
    const char *wn = "";
    int bad = 0;
    for (int i = 0; i < trn_model_ntensors(s); i++) {
        const struct trn_tensor *tt = trn_model_tensor(s, i);
        double e = nerr(gg + tt->off, trn_model_grads(s) + tt->off, tt->n);
        if (!(e <= gtol)) {
            bad++;
            TAP_DIAG("  %s: grad %s err %.3g", name, tt->name, e);
        }
        if (!(e <= worst)) {
            worst = e;
            wn = tt->name;
        }
    }
    TAP_OK(!bad, "%s: gradients of all %d tensors within %.0e (worst %.2e, %s)", name,
           trn_model_ntensors(s), gtol, worst, wn);
    if (!bf16 && lc->gamma > 0) {
        /* 3 optimizer steps, same batch: parameters after */
        struct trn_adamw_cfg ac = {.lr = 1e-3f,
                                   .min_lr = 1e-4f,
                                   .beta1 = 0.9f,
                                   .beta2 = 0.999f,
                                   .eps = 1e-8f,
                                   .weight_decay = 0.1f,
                                   .clip = 1.0f,
                                   .warmup = 1,
                                   .total = 3};
        float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
        double gnc = 0, gng = 0;
        for (int k = 0; k < 3; k++) {
            float lr = trn_lr_at(&ac, k);
            if (k) {
                trn_model_zero_grad(s);
                trn_step_losses(s, t, b, lc, 1, 0.5f, &Lc, err);
                trn_cuda_zero_grad(g);
                trn_cuda_step_losses(g, b, lc, 1, 0.5f, &Lg, err);
            }
            trn_adamw_update(s, m, v, k + 1, lr, &ac, &gnc);
            rc = trn_cuda_adamw_update(g, k + 1, lr, &ac, &gng, err);
            TAP_OK(rc == 0 && fabs(gng - gnc) <= 1e-3 * gnc,
                   "%s: AdamW step %d: grad norm gpu "
                   "%.6g cpu %.6g",
                   name, k + 1, gng, gnc);
        }
        float *gp = malloc(np * sizeof(float));
        trn_cuda_pull(g, gp, NULL, NULL, NULL, err);
        double e = nerr(gp, trn_model_params(s), np);
        TAP_OK(e <= PARAM_TOL_F32, "%s: parameters after 3 AdamW steps: err %.2e <= %.0e", name, e,
               PARAM_TOL_F32);
        free(gp);
        free(m);
        free(v);
    }
    free(gg);
out:
    trn_cuda_free(g);
    trn_model_free(s);
    trn_model_free(t);
}

static void one_case(const char *name, struct trn_batch *b, const struct trn_loss_cfg *lc, int bf16)
{
    one_case_dir(name, NULL, b, lc, bf16, 1);
}

/* A random-init Qwen3 with head dim 128 (the fused attention's), 2 layers, in a temp dir:
 * B 2 x T 70 (a partial second tile, one padded row), distillation of every layer's relations,
 * bf16 (flash) and fp32 (materialising) against the CPU; and CE alone without a teacher. */
/* zero_grad's contract where the backward's products overwrite stale gradient slices instead
 * of adding to a zero-fill (the narrow student's projections and fused head): a step after
 * zero_grad gives the gradients of one step, not of two; a second step without zero_grad adds
 * (twice the first's); zero_grad with no step then leaves zeros, as read by trn_cuda_pull. */
static void fresh_case(const char *dir, const struct trn_batch *b, const struct trn_loss_cfg *lc)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_cuda *g = NULL;
    struct trn_losses L;
    char err[ENG_ERR_LEN] = "";
    if (load_dir(dir, &s, &t) || trn_cuda_create(0, s, NULL, 1, &g, err)) {
        TAP_OK(0, "fresh gradients: session (%s)", err);
        trn_model_free(s);
        trn_model_free(t);
        return;
    }
    size_t np = trn_model_nparams(s);
    float *g1 = calloc(np, 4), *g2 = calloc(np, 4), *g3 = calloc(np, 4), *two = calloc(np, 4);
    int rc = 0;
    trn_cuda_zero_grad(g);
    rc |= trn_cuda_step_losses(g, b, lc, 1, 1.0f, &L, err);
    rc |= trn_cuda_pull(g, NULL, g1, NULL, NULL, err);
    trn_cuda_zero_grad(g);
    rc |= trn_cuda_step_losses(g, b, lc, 1, 1.0f, &L, err);
    rc |= trn_cuda_pull(g, NULL, g2, NULL, NULL, err);
    rc |= trn_cuda_step_losses(g, b, lc, 1, 1.0f, &L, err);
    rc |= trn_cuda_pull(g, NULL, g3, NULL, NULL, err);
    for (size_t i = 0; i < np; i++)
        two[i] = 2.0f * g1[i];
    double e1 = nerr(g2, g1, np), e2 = nerr(g3, two, np);
    TAP_OK(rc == 0 && e1 <= 1e-6 && e2 <= 1e-6,
           "fresh gradients: zero_grad then a step = one step's (err %.1e), a second step adds "
           "(err %.1e against twice) (%s)",
           e1, e2, err);
    trn_cuda_zero_grad(g);
    rc = trn_cuda_pull(g, NULL, g2, NULL, NULL, err);
    size_t nz = 0;
    for (size_t i = 0; i < np; i++)
        nz += g2[i] != 0.0f;
    TAP_OK(rc == 0 && nz == 0, "fresh gradients: zero_grad, no step: all %zu zero (%zu not)", np,
           nz);
    free(g1), free(g2), free(g3), free(two);
    trn_cuda_free(g);
    trn_model_free(s);
    trn_model_free(t);
}

static void hd128_cases(const struct trn_loss_cfg *lc0)
{
    char err[ENG_ERR_LEN] = "", cfgp[512], dir[512];
    enum { B = 2, T = 70 };
    int32_t tok[B * T], target[B * T], len[B] = {T, 41};
    struct trn_batch b = {.B = B, .T = T, .tok = tok, .target = target, .len = len};
    unsigned x = 777;
    for (int i = 0; i < B * T; i++) {
        x = x * 1103515245u + 12345u;
        tok[i] = (int32_t)((x >> 16) % 500);
    }
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++)
            target[r * T + t] = t < len[r] - 1 ? tok[r * T + t + 1] : -1;
    /* FFN width 256; then 512, where q|k|v's INT8 sums (4 + 2 x 2 heads of 128) fit the gate|up
     * product's int32 memory, so the bf16 student's forward takes every fused INT8 path
     * (fuse8_of) */
    for (int w = 0; w < 2; w++) {
        snprintf(cfgp, sizeof(cfgp), "%s/cfg%d.json", eu_tmpdir(), w);
        snprintf(dir, sizeof(dir), "%s/hd128-%d", eu_tmpdir(), w);
        char cfg[512], nm[128];
        snprintf(cfg, sizeof(cfg),
                 "{\"model_type\":\"qwen3\",\"vocab_size\":512,\"hidden_size\":128,"
                 "\"intermediate_size\":%d,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":128,"
                 "\"max_position_embeddings\":256,\"tie_word_embeddings\":true,"
                 "\"initializer_range\":0.2}",
                 w ? 512 : 256);
        const char *wn = w ? ", FFN 512 (fused INT8 q|k|v)" : "";
        int rc = eu_write(cfgp, cfg, strlen(cfg));
        if (!rc)
            rc = eng_init_write(cfgp, dir, 5, 0, err);
        if (!TAP_OK(rc == 0, "head dim 128 model%s written (%s)", wn, err))
            continue;
        struct trn_loss_cfg lc = *lc0;
        lc.layer = -2;
        lc.split_heads = 4;
        snprintf(nm, sizeof(nm), "head dim 128%s distill bf16 (flash attention)", wn);
        one_case_dir(nm, dir, &b, &lc, 1, 1);
        if (!w)
            one_case_dir("head dim 128 distill fp32", dir, &b, &lc, 0, 1);
        struct trn_loss_cfg ce = {.tau = 5.0f, .layer = -1, .split_heads = 1, .t_r = 1.0f};
        snprintf(nm, sizeof(nm), "head dim 128%s pre-training bf16 (no teacher, flash)", wn);
        one_case_dir(nm, dir, &b, &ce, 1, 0);
        if (w)
            fresh_case(dir, &b, &ce);
    }
    eu_rmrf(eu_tmpdir());
}

/* Out of device memory: a batch whose activations cannot fit (attention probabilities alone
 * 2 layers x 64 x 5 heads x 8192^2 floats = 172 GB) fails with ENG_ENOMEM and a message, and
 * the same session then runs a normal step that equals the CPU's (nothing is left broken). */
static void oom_case(struct trn_batch *small, const struct trn_loss_cfg *lc)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_cuda *g = NULL;
    struct trn_losses Lg, Lc;
    char err[ENG_ERR_LEN] = "";
    enum { B = 64, T = 8192 };
    struct trn_batch b = {.B = B, .T = T};
    b.tok = calloc((size_t)B * T, sizeof(int32_t));
    b.target = calloc((size_t)B * T, sizeof(int32_t));
    if (load(&s, &t) || trn_cuda_create(0, s, t, 0, &g, err)) {
        TAP_OK(0, "oom: session (%s)", err);
        goto out;
    }
    trn_cuda_zero_grad(g);
    int rc = trn_cuda_step_losses(g, &b, lc, 1, 1.0f, &Lg, err);
    TAP_OK(rc == ENG_ENOMEM && strstr(err, "cannot allocate"),
           "oom: a 64 x 8192 batch fails "
           "cleanly with ENG_ENOMEM (rc %d: %s)",
           rc, err);
    trn_cuda_zero_grad(g);
    rc = trn_cuda_step_losses(g, small, lc, 1, 1.0f, &Lg, err);
    trn_model_zero_grad(s);
    trn_step_losses(s, t, small, lc, 1, 1.0f, &Lc, err);
    TAP_OK(rc == 0 && fabs(Lg.loss - Lc.loss) <= 1e-4 * fabs(Lc.loss),
           "oom: the session then "
           "steps normally (loss %.7g vs CPU %.7g) %s",
           Lg.loss, Lc.loss, rc ? err : "");
out:
    free(b.tok);
    free(b.target);
    trn_cuda_free(g);
    trn_model_free(s);
    trn_model_free(t);
}

/* Token and target ids outside the vocabulary fail with EINVAL naming them, before any device
 * work (the fused head indexes the target's logit), and the session then steps normally. */
static void bad_ids_case(struct trn_batch *small, const struct trn_loss_cfg *lc)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_cuda *g = NULL;
    struct trn_losses L;
    char err[ENG_ERR_LEN] = "";
    if (load(&s, &t) || trn_cuda_create(0, s, t, 1, &g, err)) {
        TAP_OK(0, "bad ids: session (%s)", err);
        goto out;
    }
    int V = trn_model_config(s)->vocab, n = small->B * small->T;
    int32_t *tg = small->target, *tk = small->tok, keep = tg[n - 1], keept = tk[0];
    tg[n - 1] = V;
    int rc = trn_cuda_step_losses(g, small, lc, 1, 1.0f, &L, err);
    TAP_OK(rc == ENG_EINVAL && strstr(err, "target id") && strstr(err, "outside the vocabulary"),
           "bad ids: target %d of vocabulary %d: EINVAL (%s)", V, V, err);
    tg[n - 1] = keep;
    tk[0] = -1;
    rc = trn_cuda_step_losses(g, small, lc, 1, 1.0f, &L, err);
    TAP_OK(rc == ENG_EINVAL && strstr(err, "token id -1"), "bad ids: token -1: EINVAL (%s)", err);
    tk[0] = keept;
    rc = trn_cuda_step_losses(g, small, lc, 1, 1.0f, &L, err);
    TAP_OK(rc == 0 && isfinite(L.loss), "bad ids: the session then steps (loss %.6g) %s", L.loss,
           rc ? err : "");
out:
    trn_cuda_free(g);
    trn_model_free(s);
    trn_model_free(t);
}

/* Data parallel over cuda:0,1 vs one GPU on the same batch: losses, then the parameters after
 * one all-reduce + AdamW step (replica 0). Needs 2 GPUs and NCCL. */
static void dp_case(struct trn_batch *b, const struct trn_loss_cfg *lc)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_cuda_dp *one = NULL, *two = NULL;
    struct trn_losses L1, L2;
    char err[ENG_ERR_LEN] = "";
    int d1[1] = {0}, d2[2] = {0, 1};
    struct trn_adamw_cfg ac = {.lr = 1e-3f,
                               .min_lr = 1e-4f,
                               .beta1 = 0.9f,
                               .beta2 = 0.999f,
                               .eps = 1e-8f,
                               .weight_decay = 0.1f,
                               .clip = 1.0f,
                               .warmup = 1,
                               .total = 3};
    if (load(&s, &t)) {
        TAP_OK(0, "dp: fixtures load");
        return;
    }
    int rc = trn_cuda_dp_create(d1, 1, s, t, 0, NULL, &one, err);
    if (!rc)
        rc = trn_cuda_dp_create(d2, 2, s, t, 0, NULL, &two, err);
    if (!TAP_OK(rc == 0, "dp: sessions on cuda:0 and cuda:0,1 (%s)", err))
        goto out;
    double g1 = 0, g2 = 0;
    trn_cuda_dp_zero_grad(one);
    trn_cuda_dp_zero_grad(two);
    rc = trn_cuda_dp_step_losses(one, b, lc, 0.5f, &L1, err);
    if (!rc)
        rc = trn_cuda_dp_step_losses(two, b, lc, 0.5f, &L2, err);
    double re = fabs(L2.loss - L1.loss) / fabs(L1.loss);
    TAP_OK(rc == 0 && re <= 1e-5, "dp: loss on 2 GPUs %.8g, on 1 %.8g (rel %.1e <= 1e-5) %s",
           L2.loss, L1.loss, re, err);
    rc = trn_cuda_dp_adamw_update(one, 1, 1e-3f, &ac, &g1, err);
    if (!rc)
        rc = trn_cuda_dp_adamw_update(two, 1, 1e-3f, &ac, &g2, err);
    TAP_OK(rc == 0 && fabs(g1 - g2) <= 1e-4 * g1, "dp: all-reduced grad norm %.7g vs %.7g (%s)", g2,
           g1, err);
    size_t np = trn_model_nparams(s);
    float *p1 = malloc(np * sizeof(float)), *p2 = malloc(np * sizeof(float));
    trn_cuda_dp_pull(one, p1, NULL, NULL, err);
    trn_cuda_dp_pull(two, p2, NULL, NULL, err);
    double e = nerr(p2, p1, np);
    TAP_OK(e <= 1e-6, "dp: parameters after one step on 2 GPUs vs 1: err %.2e <= 1e-6", e);
    free(p1);
    free(p2);
out:
    trn_cuda_dp_free(one);
    trn_cuda_dp_free(two);
    trn_model_free(s);
    trn_model_free(t);
}

int main(void)
{
    if (trn_cuda_device_count() == 0) {
        TAP_SKIP("no GPU (or built without CUDA): the GPU step is not checked here");
        return tap_done();
    }
    enum { B = 3, T = 13 };
    int32_t tok[B * T], target[B * T], len[B] = {13, 9, 11};
    struct trn_batch b = {.B = B, .T = T, .tok = tok, .target = target, .len = len};
    unsigned x = 12345;
    for (int i = 0; i < B * T; i++) {
        x = x * 1103515245u + 12345u;
        tok[i] = (int32_t)((x >> 16) % 97);
    }
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++)
            target[r * T + t] = t >= 4 && t < len[r] - 1 ? tok[r * T + t + 1] : -1;
    struct trn_loss_cfg lc = {.lambda = 10.0f,
                              .gamma = 1e3f,
                              .tau = 5.0f,
                              .layer = -1,
                              .split_heads = 2,
                              .rel = TRN_REL_COSINE,
                              .t_r = 1.0f};
    one_case("distill cosine last layer fp32", &b, &lc, 0);
    lc.layer = -2;
    lc.rel = TRN_REL_SCALED;
    one_case("distill scaled all layers fp32", &b, &lc, 0);
    struct trn_loss_cfg ce = {.tau = 5.0f, .layer = -1, .split_heads = 1, .t_r = 1.0f};
    one_case("CE only fp32", &b, &ce, 0);
    lc.layer = -1;
    lc.rel = TRN_REL_COSINE;
    one_case("distill cosine bf16", &b, &lc, 1);
    /* the fused head a chunk of 7 of the 39 rows at a time (6 chunks, a tail of 4) */
    setenv("BITDISTILL_CUDA_HEAD_ROWS", "7", 1);
    one_case("distill cosine bf16, head in chunks of 7 rows", &b, &lc, 1);
    one_case("CE only bf16, head in chunks of 7 rows", &b, &ce, 1);
    unsetenv("BITDISTILL_CUDA_HEAD_ROWS");
    hd128_cases(&lc);
    oom_case(&b, &lc);
    bad_ids_case(&b, &lc);
    if (trn_cuda_device_count() < 2) {
        TAP_SKIP("data parallel: fewer than 2 GPUs here (%d)", trn_cuda_device_count());
    } else {
        lc.rel = TRN_REL_SCALED;
        dp_case(&b, &lc);
    }
    return tap_done();
}
