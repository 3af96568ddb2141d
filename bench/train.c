/*
 * bench/train.c — `bitdistill bench train`: CPU training throughput of one BitDistill step
 * (train) per phase, at 1 and 2 threads (or --threads N), on a small random-init Qwen3.
 *
 * Phases (tokens/s = B*T / seconds of the phase, median of --iters runs):
 *   teacher_fwd   FP teacher forward (no grad)
 *   student_fwd   BitLinear student forward (weights and activations quantized)
 *   losses        CE + LD + AD of a forward pair (step without grad minus both forwards)
 *   backward      student backward (step with grad minus step without grad)
 *   optimizer     AdamW update with clipping
 * The sgemm share replays the step's matrix products (3 per projection and for the head:
 * forward, dX, dW; 1 per projection for the teacher) through OpenBLAS alone, and divides.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "engine/err.h"
#include "engine/init.h"
#include "kernels/blas.h"
#include "train/model.h"
#include "train/step.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return v[n / 2];
}

/* Seconds of the GEMMs one training step runs (student fwd + bwd, teacher fwd), alone. */
static double gemm_seconds(const struct eng_config *c, int N)
{
    int H = c->hidden, IN = c->inter, QD = c->heads * c->head_dim, KD = c->kv_heads * c->head_dim;
    int shapes[8][2] = {{QD, H}, {KD, H}, {KD, H}, {H, QD},
                        {IN, H}, {IN, H}, {H, IN}, {c->vocab, H}};
    size_t mx = (size_t)c->vocab * H;
    float *a = calloc((size_t)N * (IN > c->vocab ? IN : c->vocab), sizeof(float));
    float *w = calloc(mx > (size_t)IN * H ? mx : (size_t)IN * H, sizeof(float));
    float *y = calloc((size_t)N * (IN > c->vocab ? IN : c->vocab), sizeof(float));
    double t0 = bench_now();
    for (int rep = 0; rep < 1; rep++)
        for (int s = 0; s < 8; s++) {
            int times = s == 7 ? 1 : c->layers, OC = shapes[s][0], C = shapes[s][1];
            for (int k = 0; k < times; k++) {
                /* student fwd, teacher fwd, dX, dW */
                for (int f = 0; f < 2; f++)
                    krn_sgemm(1, (size_t)N, (size_t)OC, (size_t)C, 1.0f, a, (size_t)C, w, (size_t)C,
                              0.0f, y, (size_t)OC);
                krn_sgemm(0, (size_t)N, (size_t)C, (size_t)OC, 1.0f, y, (size_t)OC, w, (size_t)C,
                          1.0f, a, (size_t)C);
                krn_sgemm_at((size_t)OC, (size_t)C, (size_t)N, 1.0f, y, (size_t)OC, a, (size_t)C,
                             1.0f, w, (size_t)C);
            }
        }
    double t = bench_now() - t0;
    free(a);
    free(w);
    free(y);
    return t;
}

int bench_train_main(int argc, char **argv)
{
    int B = 8, T = 128, iters = 5, thr[2] = {1, 2}, nthr = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            thr[0] = atoi(argv[++i]);
            nthr = 1;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            B = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seq") && i + 1 < argc) {
            T = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else {
            printf("usage: bitdistill bench train [--threads N] [--batch B] [--seq T] "
                   "[--iters K]\nCPU training step throughput per phase (teacher fwd, student "
                   "fwd, losses, backward, AdamW) and the share of time in sgemm.\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    char dir[] = "/tmp/bench-train-XXXXXX", cfgp[256], mdir[256], err[ENG_ERR_LEN] = "";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* a small Qwen3: 4 layers, hidden 256, GQA 4/2 heads of 64, SwiGLU 768, vocab 4096 */
    json_t *c = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:b}",
                          "architectures", "Qwen3ForCausalLM", "model_type", "qwen3", "vocab_size",
                          4096, "hidden_size", 256, "intermediate_size", 768, "num_hidden_layers",
                          4, "num_attention_heads", 4, "num_key_value_heads", 2, "head_dim", 64,
                          "max_position_embeddings", 1024, "rope_theta", 10000.0, "rms_norm_eps",
                          1e-6, "tie_word_embeddings", 1, "use_sliding_window", 0);
    snprintf(cfgp, sizeof(cfgp), "%s/config.json", dir);
    snprintf(mdir, sizeof(mdir), "%s/m", dir);
    json_dump_file(c, cfgp, 0);
    json_decref(c);
    struct trn_model *s = NULL, *t = NULL;
    int rc = eng_init_write(cfgp, mdir, 1, 0, err);
    if (!rc)
        rc = trn_model_load_hf(mdir, &t, err);
    if (!rc)
        rc = trn_model_load_hf(mdir, &s, err);
    if (rc || trn_model_add_subln(s)) {
        fprintf(stderr, "bench train: %s\n", err);
        trn_model_free(s);
        trn_model_free(t);
        return 1;
    }
    trn_model_set_quant(s, 1);
    const struct eng_config *cf = trn_model_config(s);
    size_t N = (size_t)B * T, np = trn_model_nparams(s);
    int32_t *tok = malloc(N * sizeof(int32_t)), *tg = malloc(N * sizeof(int32_t)),
            *len = malloc((size_t)B * sizeof(int32_t));
    float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
    uint64_t st = 7;
    for (size_t i = 0; i < N; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int32_t)((st >> 33) % (uint64_t)cf->vocab);
    }
    for (size_t i = 0; i < N; i++)
        tg[i] = (i % (size_t)T) + 1 < (size_t)T ? tok[i + 1] : -1;
    for (int b = 0; b < B; b++)
        len[b] = T;
    struct trn_batch bt = {.B = B, .T = T, .tok = tok, .target = tg, .len = len};
    struct trn_loss_cfg lc = {.lambda = 10,
                              .gamma = 1e5f,
                              .tau = 5,
                              .layer = -1,
                              .split_heads = 1,
                              .rel = TRN_REL_COSINE,
                              .t_r = 1};
    struct trn_adamw_cfg ac = {.lr = 1e-4f,
                               .min_lr = 1e-5f,
                               .beta1 = 0.9f,
                               .beta2 = 0.999f,
                               .eps = 1e-8f,
                               .weight_decay = 0.01f,
                               .clip = 1.0f,
                               .total = 100};
    printf("bench train: Qwen3 %d layers, hidden %d, inter %d, heads %d/%d x %d, vocab %d "
           "(%.1f M params); batch %d x %d tokens; BitDistill step (CE + LD + AD, last layer)\n",
           cf->layers, cf->hidden, cf->inter, cf->heads, cf->kv_heads, cf->head_dim, cf->vocab,
           (double)np / 1e6, B, T);
    printf("%-8s %12s %12s %12s %12s %12s %12s %8s\n", "threads", "teacher_fwd", "student_fwd",
           "losses", "backward", "optimizer", "step", "sgemm%");
    for (int k = 0; k < nthr; k++) {
        krn_blas_set_threads(thr[k]);
        double tt[16], ts[16], tn[16], tg2[16], to[16];
        int it = iters > 16 ? 16 : (iters < 1 ? 1 : iters);
        struct trn_losses L;
        trn_step_losses(s, t, &bt, &lc, 1, 1.0f, &L, err); /* warm-up: plans activations */
        for (int i = 0; i < it; i++) {
            double a = bench_now();
            trn_model_forward(t, tok, B, T);
            double b = bench_now();
            trn_model_forward(s, tok, B, T);
            double c2 = bench_now();
            trn_step_losses(s, t, &bt, &lc, 0, 1.0f, &L, err);
            double d = bench_now();
            trn_model_zero_grad(s);
            trn_step_losses(s, t, &bt, &lc, 1, 1.0f, &L, err);
            double e = bench_now();
            trn_adamw_update(s, m, v, i + 1, 1e-5f, &ac, NULL);
            double f = bench_now();
            tt[i] = b - a;
            ts[i] = c2 - b;
            tn[i] = (d - c2) - (b - a) - (c2 - b);
            tg2[i] = (e - d) - (d - c2);
            to[i] = f - e;
        }
        double a1 = median(tt, it), a2 = median(ts, it), a3 = median(tn, it), a4 = median(tg2, it),
               a5 = median(to, it), step = a1 + a2 + a3 + a4 + a5;
        double g = gemm_seconds(cf, (int)N);
        printf("%-8d %10.0f/s %10.0f/s %10.0f/s %10.0f/s %10.0f/s %10.0f/s %7.1f%%\n", thr[k],
               N / a1, N / a2, N / (a3 > 0 ? a3 : 1e-9), N / a4, N / a5, N / step,
               100.0 * g / step);
    }
    printf("(tokens/s of each phase alone; step = all phases; sgemm%% = the step's GEMMs run "
           "alone through OpenBLAS / step time)\n");
    free(tok);
    free(tg);
    free(len);
    free(m);
    free(v);
    trn_model_free(s);
    trn_model_free(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 0;
}
