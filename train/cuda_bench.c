/*
 * train/cuda_bench.c — `bench-cuda-train`: tokens/s and model FLOPs utilisation of the GPU
 * trainer (backend.h) on a real-shaped model, for docs/cuda.md and the comparison with PyTorch
 * eager (tools/bench_cuda_torch.py runs the same step).
 *
 *   bench-cuda-train MODEL_DIR B T ACCUM STEPS [fp32|bf16] [NGPU]
 *   bench-cuda-train --linear [N [REPS [H [I]]]]
 *   bench-cuda-train --norms [N [REPS [H [I]]]]
 *   bench-cuda-train --attn [B [T [NH [KVH [REPS]]]]]
 *
 * MODEL_DIR is the teacher (an HF directory, e.g. `bitdistill init --config
 * tools/qwen3-0.6b-config.json`); the student is its copy with SubLN and BitLinear. Two modes are
 * timed, each after one warm-up optimizer step: distillation (teacher forward + student forward
 * and backward with CE + LD + AD + AdamW) and continued pre-training (student, CE only). Tokens
 * are random. FLOPs counted: 6 x (projections + head) per token for the student, 2 x for the
 * teacher forward, attention 12 L T QD (student) and 4 L T QD (teacher) per token, causal
 * products computed in full as the kernels do; MFU against the H100 SXM's dense bf16 peak of
 * 989 TFLOP/s. device_used_gib: memory in use on the first GPU after the timed steps (every
 * buffer is allocated by then and kept; the CUDA context and cuBLAS workspace included).
 * BITDISTILL_CUDA_PROFILE=1: device time per op, for the warm-up and the timed steps, on stderr.
 * NGPU > 1: data parallel over cuda:0..NGPU-1 (each micro-batch split by rows).
 * --linear: the BitLinear products alone at Qwen3-0.6B's shapes (N tokens, default 4096; hidden
 * H 1024, FFN I 3072; 2048 6144 for 1.7B; C -> OC H -> 2048, H -> 1024, 2048 -> H, H -> I,
 * I -> H, and the fused backward's H -> 4096 (q|k|v) and H -> 2 I (gate|up)) on cuda:0: the
 * fp32-storage FAST_16BF products against bf16 storage and INT8 (krn_cuda_linear_bench).
 * --norms: the memory-bound row kernels of one layer at the same widths, GB/s against a
 * device-to-device copy (krn_cuda_norm_bench).
 * --attn: the fused attention's forward and backward (and each backward kernel) at B x T, NH / KVH
 * heads of 128 (default 8 x 512, 16 / 8: Qwen3-0.6B), TFLOP/s beside the materialising fp32
 * path's in the same run (krn_cuda_attn_bench).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/err.h"
#include "kernels/cuda/kcuda.h"
#include "train/backend.h"

#define PEAK_BF16 989e12

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int run(const char *mode, struct trn_model *s, struct trn_model *t, struct trn_batch *b,
               int accum, int steps, int bf16, int ngpu)
{
    struct trn_cuda_dp *g = NULL;
    int devs[64];
    for (int i = 0; i < ngpu && i < 64; i++)
        devs[i] = i;
    char err[ENG_ERR_LEN] = "";
    struct trn_loss_cfg lc = {.lambda = t ? 10.0f : 0.0f,
                              .gamma = t ? 1e5f : 0.0f,
                              .tau = 5.0f,
                              .layer = -1,
                              .split_heads = 1,
                              .rel = TRN_REL_COSINE,
                              .t_r = 1.0f};
    struct trn_adamw_cfg ac = {.lr = 1e-5f,
                               .min_lr = 1e-6f,
                               .beta1 = 0.9f,
                               .beta2 = 0.999f,
                               .eps = 1e-8f,
                               .weight_decay = 0.01f,
                               .clip = 1.0f,
                               .warmup = 1,
                               .total = steps + 1};
    struct trn_losses L = {0};
    int rc = trn_cuda_dp_create(devs, ngpu, s, t, bf16, NULL, &g, err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", mode, err);
        return rc;
    }
    double t0 = 0, gn = 0;
    for (int k = 0; k <= steps && !rc; k++) {
        if (k == 1) {
            trn_cuda_dp_profile(g, stderr); /* the warm-up step's, then reset */
            t0 = now();
        }
        trn_cuda_dp_zero_grad(g);
        for (int a = 0; a < accum && !rc; a++)
            rc = trn_cuda_dp_step_losses(g, b, &lc, 1.0f / (float)accum, &L, err);
        if (!rc)
            rc = trn_cuda_dp_adamw_update(g, k + 1, trn_lr_at(&ac, k), &ac, &gn, err);
    }
    double dt = now() - t0;
    if (!rc && getenv("BITDISTILL_CUDA_PROFILE"))
        fprintf(stderr, "%s: the %d timed steps:\n", mode, steps);
    trn_cuda_dp_profile(g, stderr);
    double used = (double)trn_cuda_dp_mem_used(g) / (1 << 30);
    if (rc) {
        fprintf(stderr, "%s: %s\n", mode, err);
        trn_cuda_dp_free(g);
        return rc;
    }
    const struct eng_config *c = trn_model_config(s);
    double lin =
        (double)c->layers *
            ((double)c->hidden * (2.0 * c->heads * c->head_dim + 2.0 * c->kv_heads * c->head_dim) +
             3.0 * c->hidden * c->inter) +
        (double)c->vocab * c->hidden;
    double att = (double)c->layers * b->T * c->heads * c->head_dim;
    double fpt = 6 * lin + 12 * att + (t ? 2 * lin + 4 * att : 0);
    double tok = (double)b->B * b->T * accum * steps;
    printf("{\"mode\":\"%s\",\"gpus\":%d,\"B\":%d,\"T\":%d,\"accum\":%d,\"steps\":%d,\"matmul\":\"%"
           "s\","
           "\"tokens_per_s\":%.1f,\"tflops\":%.1f,\"mfu\":%.3f,\"ce\":%.4f,\"ld\":%.4g,"
           "\"ad\":%.4g,\"grad_norm\":%.4g,\"device_used_gib\":%.2f}\n",
           mode, ngpu, b->B, b->T, accum, steps, bf16 ? "bf16" : "fp32", tok / dt,
           fpt * tok / dt / 1e12, fpt * tok / dt / PEAK_BF16, L.ce, L.ld, L.ad, gn, used);
    fflush(stdout);
    trn_cuda_dp_free(g);
    return 0;
}

static int linear_bench(int N, int reps, int H, int I)
{
    const int QD = 2048, KD = 1024; /* Qwen3-0.6B's and 1.7B's q and k/v widths */
    const int shapes[][2] = {
        {H, QD},   {H, KD}, {QD, H},
        {H, I},    {I, H},  {H, QD + 2 * KD}, /* q|k|v as one product (the fused backward's dY) */
        {H, 2 * I}                            /* gate|up as one */
    };
    struct krn_cuda *k = NULL;
    char err[KRN_CUDA_ERR_LEN];
    int rc = krn_cuda_create(0, &k, err);
    if (rc) {
        fprintf(stderr, "bench-cuda-train --linear: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]) && !rc; i++)
        rc = krn_cuda_linear_bench(k, N, shapes[i][0], shapes[i][1], reps, stdout);
    if (rc)
        fprintf(stderr, "bench-cuda-train --linear: %s\n", krn_cuda_errmsg(k));
    krn_cuda_free(k);
    return rc ? 1 : 0;
}

/* --norms and --attn: one micro-benchmark on cuda:0; a[] its integer arguments */
static int micro_bench(const char *what, int (*fn)(struct krn_cuda *, const int *), const int *a)
{
    struct krn_cuda *k = NULL;
    char err[KRN_CUDA_ERR_LEN];
    if (krn_cuda_create(0, &k, err)) {
        fprintf(stderr, "bench-cuda-train %s: %s\n", what, err);
        return 1;
    }
    int rc = fn(k, a);
    if (rc)
        fprintf(stderr, "bench-cuda-train %s: %s\n", what, krn_cuda_errmsg(k));
    krn_cuda_free(k);
    return rc ? 1 : 0;
}

static int norms(struct krn_cuda *k, const int *a)
{
    return krn_cuda_norm_bench(k, a[0], a[1], a[2], a[3], stdout);
}

static int attn(struct krn_cuda *k, const int *a)
{
    return krn_cuda_attn_bench(k, a[0], a[1], a[2], a[3], a[4], stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--linear"))
        return linear_bench(argc > 2 ? atoi(argv[2]) : 4096, argc > 3 ? atoi(argv[3]) : 50,
                            argc > 4 ? atoi(argv[4]) : 1024, argc > 5 ? atoi(argv[5]) : 3072);
    if (argc > 1 && !strcmp(argv[1], "--norms")) {
        int a[] = {argc > 2 ? atoi(argv[2]) : 4096, argc > 3 ? atoi(argv[3]) : 50,
                   argc > 4 ? atoi(argv[4]) : 1024, argc > 5 ? atoi(argv[5]) : 3072};
        return micro_bench("--norms", norms, a);
    }
    if (argc > 1 && !strcmp(argv[1], "--attn")) { /* Qwen3-0.6B's 16 / 8 heads by default */
        int a[] = {argc > 2 ? atoi(argv[2]) : 8, argc > 3 ? atoi(argv[3]) : 512,
                   argc > 4 ? atoi(argv[4]) : 16, argc > 5 ? atoi(argv[5]) : 8,
                   argc > 6 ? atoi(argv[6]) : 50};
        return micro_bench("--attn", attn, a);
    }
    if (argc < 6) {
        fprintf(stderr, "usage: bench-cuda-train MODEL_DIR B T ACCUM STEPS [fp32|bf16] [NGPU]\n"
                        "       bench-cuda-train --linear|--norms [N [REPS [H [I]]]]\n"
                        "       bench-cuda-train --attn [B [T [NH [KVH [REPS]]]]]\n");
        return 2;
    }
    int B = atoi(argv[2]), T = atoi(argv[3]), accum = atoi(argv[4]), steps = atoi(argv[5]);
    int bf16 = !(argc > 6 && !strcmp(argv[6], "fp32")), ngpu = argc > 7 ? atoi(argv[7]) : 1;
    if (ngpu < 1 || ngpu > 64)
        ngpu = 1;
    char err[ENG_ERR_LEN] = "";
    struct trn_model *t = NULL, *s = NULL;
    if (trn_model_load_hf(argv[1], &t, err) || trn_model_clone(t, &s, err)) {
        fprintf(stderr, "bench-cuda-train: %s\n", err);
        return 1;
    }
    trn_model_add_subln(s);
    trn_model_set_quant(s, 1);
    struct trn_batch b = {.B = B, .T = T};
    b.tok = malloc((size_t)B * T * sizeof(int32_t));
    b.target = malloc((size_t)B * T * sizeof(int32_t));
    b.len = malloc((size_t)B * sizeof(int32_t));
    unsigned x = 7;
    int V = trn_model_config(s)->vocab;
    for (int i = 0; i < B * T; i++) {
        x = x * 1103515245u + 12345u;
        b.tok[i] = (int32_t)((x >> 8) % (unsigned)V);
    }
    for (int i = 0; i < B * T; i++)
        b.target[i] = i % T == T - 1 ? -1 : b.tok[i + 1];
    for (int i = 0; i < B; i++)
        b.len[i] = T;
    int rc = run("distill", s, t, &b, accum, steps, bf16, ngpu);
    if (!rc)
        rc = run("pretrain", s, NULL, &b, accum, steps, bf16, ngpu);
    free(b.tok);
    free(b.target);
    free(b.len);
    trn_model_free(s);
    trn_model_free(t);
    return rc ? 1 : 0;
}
