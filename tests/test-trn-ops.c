/*
 * tests/test-trn-ops.c — finite-difference checks of every backward op of train/ops.c on
 * tiny odd shapes, of the whole network's backward (quantization off, every tensor), of the
 * parameters downstream of all quantizers with quantization on, and the BitLinear quantizers
 * against their definitions (DESIGN.md §1).
 *
 * Each op is wrapped into a scalar L = sum(out * R) with a fixed random R, and the analytic
 * gradient of L is compared with central differences (step FD_H) on up to FD_SAMPLES entries:
 * normalised error |a - fd| / |fd| over the sampled entries < FD_TOL.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "tests/tap.h"
#include "train/model.h"
#include "train/ops.h"
#include "train/step.h"

#define FD_H 1e-2f  /* central-difference step (fp32 forward) */
#define FD_TOL 2e-2 /* normalised error of the sampled gradient entries */
#define FD_SAMPLES 48

static unsigned long long rs = 88172645463325252ULL;
static float frand(void) /* uniform (-1, 1) */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float scale)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
    return p;
}
static float *zeros(size_t n)
{
    return calloc(n, sizeof(float));
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Compare analytic g[n] with central differences of loss() w.r.t. x[n]. */
static void fd_check(const char *what, float *x, const float *g, size_t n, double (*loss)(void))
{
    size_t stride = n > FD_SAMPLES ? n / FD_SAMPLES : 1;
    double d2 = 0, s2 = 0;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = loss();
        x[i] = x0 - FD_H;
        double lm = loss();
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * FD_H);
        d2 += (g[i] - fd) * (g[i] - fd);
        s2 += fd * fd;
    }
    double e = sqrt(d2) / (sqrt(s2) > 1e-12 ? sqrt(s2) : 1e-12);
    TAP_OK(e < FD_TOL && s2 > 0, "%s: analytic vs finite differences, normalised err %.3g", what,
           e);
}

/* ---------------------------------------------------------------- per-op state */
enum { B = 2, T = 5, C = 7, OC = 9, NH = 4, KVH = 2, HD = 6, V = 11 };
#define N (B * T)
static float *X, *W, *R, *OUT, *X2, *CS, *SN, *Q, *K, *VV, *PR;
static int32_t TOK[N], TGT[N], LEN[B];

static double l_linear(void)
{
    trn_linear_forward(OUT, X, W, N, C, OC);
    return dot(OUT, R, (size_t)N * OC);
}
static double l_rmsnorm(void)
{
    trn_rmsnorm_forward(OUT, X2, X, W, N, C, 1e-6f);
    return dot(OUT, R, (size_t)N * C);
}
static double l_rope(void)
{
    trn_rope_forward(OUT, X, CS, SN, B, T, NH, HD);
    return dot(OUT, R, (size_t)N * NH * HD);
}
static double l_attn(void)
{
    trn_attention_forward(OUT, PR, Q, K, VV, B, T, NH, KVH, HD);
    return dot(OUT, R, (size_t)N * NH * HD);
}
static double l_swiglu(void)
{
    trn_swiglu_forward(OUT, X, X2, (size_t)N * C);
    return dot(OUT, R, (size_t)N * C);
}
static double l_embed(void)
{
    trn_embed_forward(OUT, TOK, W, N, C);
    return dot(OUT, R, (size_t)N * C);
}
static double l_ce(void)
{
    return trn_ce_forward(X, TGT, N, V);
}
static double l_kl(void)
{
    return trn_kl_forward(X, X2, TGT, N, V, 3.0f);
}
static enum trn_rel REL;
static float *SCR;
static double l_rel(void)
{
    return trn_relation_forward(Q, K, LEN, B, T, NH * HD, KVH * HD, 2, REL, 0.7f, SCR);
}

static void ops(void)
{
    X = rnd((size_t)N * 64, 1.0f);
    X2 = rnd((size_t)N * 64, 1.0f);
    W = rnd((size_t)64 * 64, 0.5f);
    R = rnd((size_t)N * 64, 1.0f);
    OUT = zeros((size_t)N * 64);
    float *dx = zeros((size_t)N * 64), *dw = zeros(64 * 64), *d2 = zeros((size_t)N * 64);

    /* linear */
    trn_linear_backward(dx, dw, R, X, W, N, C, OC);
    fd_check("linear dinp [10x7].[9x7]^T", X, dx, (size_t)N * C, l_linear);
    fd_check("linear dw", W, dw, (size_t)OC * C, l_linear);

    /* rmsnorm (X2 holds rstd) */
    memset(dx, 0, (size_t)N * 64 * sizeof(float));
    memset(dw, 0, 64 * 64 * sizeof(float));
    l_rmsnorm();
    trn_rmsnorm_backward(dx, dw, R, X, W, X2, N, C);
    fd_check("rmsnorm dinp", X, dx, (size_t)N * C, l_rmsnorm);
    fd_check("rmsnorm dw", W, dw, C, l_rmsnorm);

    /* rope */
    CS = zeros((size_t)T * HD);
    SN = zeros((size_t)T * HD);
    trn_rope_tables(CS, SN, T, HD, 100.0f);
    memset(dx, 0, (size_t)N * 64 * sizeof(float));
    trn_rope_backward(dx, R, CS, SN, B, T, NH, HD);
    fd_check("rope dinp", X, dx, (size_t)N * NH * HD, l_rope);

    /* attention, GQA 4 query heads over 2 kv heads */
    Q = rnd((size_t)N * NH * HD, 1.0f);
    K = rnd((size_t)N * KVH * HD, 1.0f);
    VV = rnd((size_t)N * KVH * HD, 1.0f);
    PR = zeros((size_t)B * NH * T * T);
    float *dq = zeros((size_t)N * NH * HD), *dk = zeros((size_t)N * KVH * HD);
    float *dv = zeros((size_t)N * KVH * HD), *sc = zeros((size_t)T * T);
    l_attn();
    trn_attention_backward(dq, dk, dv, R, PR, Q, K, VV, B, T, NH, KVH, HD, sc);
    fd_check("attention dq", Q, dq, (size_t)N * NH * HD, l_attn);
    fd_check("attention dk", K, dk, (size_t)N * KVH * HD, l_attn);
    fd_check("attention dv", VV, dv, (size_t)N * KVH * HD, l_attn);

    /* swiglu */
    memset(dx, 0, (size_t)N * 64 * sizeof(float));
    memset(d2, 0, (size_t)N * 64 * sizeof(float));
    trn_swiglu_backward(dx, d2, R, X, X2, (size_t)N * C);
    fd_check("swiglu dgate", X, dx, (size_t)N * C, l_swiglu);
    fd_check("swiglu dup", X2, d2, (size_t)N * C, l_swiglu);

    /* embedding (token 3 repeated: gradients accumulate) */
    for (int i = 0; i < N; i++)
        TOK[i] = i % 3 ? (i * 7) % V : 3;
    memset(dw, 0, 64 * 64 * sizeof(float));
    trn_embed_backward(dw, R, TOK, N, C);
    fd_check("embedding dwte", W, dw, (size_t)V * C, l_embed);

    /* CE and KL with masked rows */
    for (int i = 0; i < N; i++)
        TGT[i] = i % 4 == 1 ? -1 : (i * 5) % V;
    memset(dx, 0, (size_t)N * 64 * sizeof(float));
    trn_ce_backward(dx, X, TGT, N, V, 1.0f);
    fd_check("cross-entropy dlogits (masked rows)", X, dx, (size_t)N * V, l_ce);
    memset(dx, 0, (size_t)N * 64 * sizeof(float));
    trn_kl_backward(dx, X, X2, TGT, N, V, 3.0f, 1.0f);
    fd_check("KL(teacher||student) at tau=3, dstudent", X, dx, (size_t)N * V, l_kl);
    double kl0 = trn_kl_forward(X, X, TGT, N, V, 3.0f);
    TAP_OK(fabs(kl0) < 1e-9, "KL of identical logits is 0 (%.3g)", kl0);

    /* relations: student Q-like [N][24] vs teacher K-like [N][12], 2 relation heads, padding */
    LEN[0] = T;
    LEN[1] = T - 2;
    SCR = zeros(trn_relation_scratch(T, NH * HD, KVH * HD, 2));
    for (int k = 0; k < 2; k++) {
        REL = k ? TRN_REL_SCALED : TRN_REL_COSINE;
        memset(dq, 0, (size_t)N * NH * HD * sizeof(float));
        trn_relation_backward(dq, Q, K, LEN, B, T, NH * HD, KVH * HD, 2, REL, 0.7f, 1.0f, SCR);
        fd_check(k ? "relation KL (scaled, eq. 12) dstudent"
                   : "relation KL (cosine, Alg. 1) "
                     "dstudent",
                 Q, dq, (size_t)N * NH * HD, l_rel);
        int pad_zero = 1;
        for (int t = LEN[1]; t < T; t++)
            for (int i = 0; i < NH * HD; i++)
                pad_zero &= dq[((size_t)T + t) * NH * HD + i] == 0.0f;
        TAP_OK(pad_zero, "relation (%s): padding rows get no gradient", k ? "scaled" : "cosine");
    }
    double r0 =
        trn_relation_forward(Q, Q, LEN, B, T, NH * HD, NH * HD, 2, TRN_REL_COSINE, 1.0f, SCR);
    TAP_OK(fabs(r0) < 1e-6, "relation KL of identical states is 0 (%.3g)", r0);

    free(SCR);
    free(dq);
    free(dk);
    free(dv);
    free(sc);
    free(Q);
    free(K);
    free(VV);
    free(PR);
    free(CS);
    free(SN);
    free(dx);
    free(dw);
    free(d2);
    free(X);
    free(X2);
    free(W);
    free(R);
    free(OUT);
}

/* ---------------------------------------------------------------- quantizers */

static void quantizers(void)
{
    size_t n = 97;
    float *w = rnd(n, 0.3f), *q = zeros(n);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabsf(w[i]);
    float d = trn_wquant(q, w, n), dm = (float)(s / n);
    int ok = fabsf(d - dm) < 1e-6f;
    for (size_t i = 0; i < n; i++) {
        float r = w[i] / (dm + TRN_QEPS);
        float want = (r >= 0.5f ? 1.0f : r <= -0.5f ? -1.0f : 0.0f) * dm;
        if (fabsf(fabsf(r) - 0.5f) > 1e-4f) /* away from ties */
            ok &= q[i] == want;
    }
    TAP_OK(ok, "wquant: d = mean|w| and every weight in {-d, 0, d} by round(w/(d+eps))");
    float x[3 * 5] = {0.1f, -2.0f, 0.5f, 1.0f, -0.01f, 0, 0, 0, 0, 0, 3, 2, 1, -3, 0.02f};
    float xq[15];
    trn_aquant(xq, x, 3, 5);
    ok = 1;
    for (int r = 0; r < 3; r++) {
        float g = 0;
        for (int j = 0; j < 5; j++)
            g = fmaxf(g, fabsf(x[r * 5 + j]));
        for (int j = 0; j < 5; j++) {
            float k = rintf(127.0f * x[r * 5 + j] / (g + TRN_QEPS));
            k = fminf(127.0f, fmaxf(-128.0f, k));
            ok &= fabsf(xq[r * 5 + j] - k * g / 127.0f) < 1e-7f;
        }
    }
    TAP_OK(ok && xq[5] == 0.0f, "aquant: per-token absmax INT8 lattice, zero row stays zero");
    free(w);
    free(q);
}

/* ---------------------------------------------------------------- whole network */

static struct trn_model *M;
static struct trn_batch BT;
static struct trn_loss_cfg LC;

static double l_model(void)
{
    struct trn_losses L;
    char err[ENG_ERR_LEN];
    trn_step_losses(M, NULL, &BT, &LC, 0, 1.0f, &L, err);
    return L.loss;
}

static void network(void)
{
    char err[ENG_ERR_LEN] = "", path[4096];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof(path), "%s/tests/fixtures/train/student", top ? top : ".");
    if (!TAP_OK(trn_model_load_hf(path, &M, err) == 0, "tiny student loads (%s)", err))
        return;
    int32_t tok[2 * 6], tg[2 * 6], len[2] = {6, 4};
    for (int i = 0; i < 12; i++)
        tok[i] = (i * 13 + 5) % 97;
    for (int i = 0; i < 12; i++)
        tg[i] = (i % 6) < len[i / 6] - 1 ? tok[i + 1] : -1;
    BT = (struct trn_batch){.B = 2, .T = 6, .tok = tok, .target = tg, .len = len};
    LC = (struct trn_loss_cfg){.tau = 1.0f, .split_heads = 1};
    for (int quant = 0; quant < 2; quant++) {
        struct trn_losses L;
        trn_model_set_quant(M, quant);
        trn_model_zero_grad(M);
        trn_step_losses(M, NULL, &BT, &LC, 1, 1.0f, &L, err);
        float *g = malloc(trn_model_nparams(M) * sizeof(float));
        memcpy(g, trn_model_grads(M), trn_model_nparams(M) * sizeof(float));
        for (int i = 0; i < trn_model_ntensors(M); i++) {
            const struct trn_tensor *t = trn_model_tensor(M, i);
            char what[160];
            /* with quantization on only the tensors after every quantizer have exact
             * gradients (the final norm; the STE path itself is checked against PyTorch) */
            if (quant && strcmp(t->name, "model.norm.weight"))
                continue;
            snprintf(what, sizeof(what), "network CE (quant %s): %s", quant ? "on" : "off",
                     t->name);
            fd_check(what, trn_model_params(M) + t->off, g + t->off, t->n, l_model);
        }
        free(g);
    }
    trn_model_free(M);
}

/* Token accuracy by hand: rows with target -1 are skipped, and a tie goes to the first maximum
 * (torch.argmax documents "the indices of the first maximal value"). */
static void token_hits(void)
{
    static const float lg[4 * 5] = {0, 1, 3, 2, 0,     /* argmax 2 */
                                    9, 0, 0, 0, 0,     /* skipped */
                                    5, 1, 2, 5, 0,     /* tie 0/3: 0 */
                                    0, 7, 0, 0, 6.9f}; /* argmax 1 */
    static const int32_t tg[4] = {2, -1, 0, 4};
    size_t kept = 0, hits = trn_token_hits(lg, tg, 4, 5, &kept);
    TAP_OK(hits == 2 && kept == 3, "token hits: %zu of %zu kept rows (want 2 of 3)", hits, kept);
}

int main(void)
{
    token_hits();
    ops();
    quantizers();
    network();
    return tap_done();
}
