/*
 * train/ops.c — the trainer's forward/backward operations (see ops.h for the contract:
 * forwards write, backwards accumulate). Matrix products go to OpenBLAS through kernels/blas.h;
 * the forward float ops (RMSNorm, RoPE, softmax, SwiGLU) are the kernels' (kernels/fops.h), the
 * same the engine serves with; the backwards are plain loops here (no twin elsewhere).
 * Reductions of losses are in double.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "kernels/blas.h"
#include "kernels/fops.h"
#include "train/ops.h"

/* ------------------------------------------------------------------ BitLinear quantizers */

float trn_wquant(float *wq, const float *w, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += fabsf(w[i]);
    float d = (float)(s / (double)(n ? n : 1));
    float inv = 1.0f / (d + TRN_QEPS);
    for (size_t i = 0; i < n; i++) {
        float r = rintf(w[i] * inv);
        r = r > 1.0f ? 1.0f : (r < -1.0f ? -1.0f : r);
        wq[i] = r * d;
    }
    return d;
}

void trn_aquant(float *xq, const float *x, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = xq + (size_t)r * C;
        float g = 0.0f;
        for (int j = 0; j < C; j++)
            g = fmaxf(g, fabsf(xr[j]));
        float s = 127.0f / (g + TRN_QEPS), back = g / 127.0f;
        for (int j = 0; j < C; j++) {
            float q = rintf(xr[j] * s);
            q = q > 127.0f ? 127.0f : (q < -128.0f ? -128.0f : q);
            yr[j] = q * back;
        }
    }
}

/* ------------------------------------------------------------------ embedding */

void trn_embed_forward(float *out, const int32_t *tok, const float *wte, int N, int C)
{
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tok[n] * C, (size_t)C * sizeof(float));
}

void trn_embed_backward(float *dwte, const float *dout, const int32_t *tok, int N, int C)
{
    for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)tok[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int j = 0; j < C; j++)
            d[j] += g[j];
    }
}

/* ------------------------------------------------------------------ linear */

void trn_linear_forward(float *out, const float *inp, const float *w, int N, int C, int OC)
{
    /* out[N][OC] = inp[N][C] . w[OC][C]^T */
    krn_sgemm(1, (size_t)N, (size_t)OC, (size_t)C, 1.0f, inp, (size_t)C, w, (size_t)C, 0.0f, out,
              (size_t)OC);
}

void trn_linear_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, int N, int C, int OC)
{
    /* dinp[N][C] += dout[N][OC] . w[OC][C] */
    if (dinp)
        krn_sgemm(0, (size_t)N, (size_t)C, (size_t)OC, 1.0f, dout, (size_t)OC, w, (size_t)C, 1.0f,
                  dinp, (size_t)C);
    /* dw[OC][C] += dout^T[OC][N] . inp[N][C] */
    if (dw)
        krn_sgemm_at((size_t)OC, (size_t)C, (size_t)N, 1.0f, dout, (size_t)OC, inp, (size_t)C, 1.0f,
                     dw, (size_t)C);
}

/* ------------------------------------------------------------------ RMSNorm */

void trn_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                         float eps)
{
    krn_rmsnorm(out, rstd, inp, w, (size_t)N, (size_t)C, eps);
}

void trn_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        float *dx = dinp + (size_t)r * C, s = rstd[r];
        /* y = w * x * s, s = (mean x^2 + eps)^-1/2: dx = s*w*dy - x * s^3/C * sum(w*dy*x) */
        double dot = 0.0;
        for (int j = 0; j < C; j++)
            dot += (double)(w[j] * dy[j]) * x[j];
        float k = (float)dot * s * s * s / (float)C;
        for (int j = 0; j < C; j++) {
            dx[j] += s * w[j] * dy[j] - x[j] * k;
            if (dw)
                dw[j] += dy[j] * x[j] * s;
        }
    }
}

/* ------------------------------------------------------------------ RoPE */

void trn_rope_tables(float *cs, float *sn, int T, int HD, float theta)
{
    krn_rope_tables(cs, sn, (size_t)T, (size_t)HD, theta);
}

void trn_rope_forward(float *out, const float *inp, const float *cs, const float *sn, int B, int T,
                      int NH, int HD)
{
    /* every sequence of the batch sits at positions 0..T-1: the tables' first T rows */
    size_t seq = (size_t)T * NH * HD;
    for (int b = 0; b < B; b++) {
        if (out != inp)
            memcpy(out + b * seq, inp + b * seq, seq * sizeof(float));
        krn_rope(out + b * seq, (size_t)T, (size_t)NH, (size_t)HD, cs, sn);
    }
}

void trn_rope_backward(float *dinp, const float *dout, const float *cs, const float *sn, int B,
                       int T, int NH, int HD)
{
    int half = HD / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *c = cs + (size_t)t * half, *s = sn + (size_t)t * half;
            for (int h = 0; h < NH; h++) {
                size_t o = (((size_t)b * T + t) * NH + h) * HD;
                const float *dy = dout + o;
                float *dx = dinp + o;
                for (int i = 0; i < half; i++) {
                    float d1 = dy[i], d2 = dy[i + half];
                    dx[i] += d1 * c[i] + d2 * s[i];
                    dx[i + half] += d2 * c[i] - d1 * s[i];
                }
            }
        }
}

/* ------------------------------------------------------------------ attention */

/* Per (batch, head): S = scale * Q K^T by sgemm (full T x T; the causal half above the
 * diagonal is overwritten), causal softmax per row, O = P V by sgemm. Q rows have stride
 * NH*HD, K/V rows KVH*HD (GQA: query head h reads kv head h / (NH/KVH)). */
void trn_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int KVH, int HD)
{
    int grp = NH / KVH;
    float scale = 1.0f / sqrtf((float)HD);
    size_t qs = (size_t)NH * HD, ks = (size_t)KVH * HD;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / grp;
            const float *qb = q + (size_t)b * T * qs + (size_t)h * HD;
            const float *kb = k + (size_t)b * T * ks + (size_t)kh * HD;
            const float *vb = v + (size_t)b * T * ks + (size_t)kh * HD;
            float *P = probs + ((size_t)b * NH + h) * T * T;
            krn_sgemm(1, (size_t)T, (size_t)T, (size_t)HD, scale, qb, qs, kb, ks, 0.0f, P,
                      (size_t)T);
            for (int t = 0; t < T; t++) { /* causal: keys 0..t */
                float *p = P + (size_t)t * T;
                krn_softmax(p, 1, (size_t)t + 1);
                memset(p + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
            }
            krn_sgemm(0, (size_t)T, (size_t)HD, (size_t)T, 1.0f, P, (size_t)T, vb, ks, 0.0f,
                      out + (size_t)b * T * qs + (size_t)h * HD, qs);
        }
}

/* dP = dO V^T; dV += P^T dO; dS = P * (dP - rowsum(P * dP)) * scale; dQ += dS K; dK += dS^T Q.
 * scratch: T*T floats (dP / dS). */
void trn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, int B, int T, int NH,
                            int KVH, int HD, float *scratch)
{
    int grp = NH / KVH;
    float scale = 1.0f / sqrtf((float)HD);
    size_t qs = (size_t)NH * HD, ks = (size_t)KVH * HD;
    float *dp = scratch; /* [T][T] */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / grp;
            size_t qo = (size_t)b * T * qs + (size_t)h * HD,
                   ko = (size_t)b * T * ks + (size_t)kh * HD;
            const float *P = probs + ((size_t)b * NH + h) * T * T;
            krn_sgemm(1, (size_t)T, (size_t)T, (size_t)HD, 1.0f, dout + qo, qs, v + ko, ks, 0.0f,
                      dp, (size_t)T);
            krn_sgemm_at((size_t)T, (size_t)HD, (size_t)T, 1.0f, P, (size_t)T, dout + qo, qs, 1.0f,
                         dv + ko, ks);
            for (int t = 0; t < T; t++) {
                const float *p = P + (size_t)t * T;
                float *d = dp + (size_t)t * T, dot = 0.0f;
                for (int j = 0; j <= t; j++)
                    dot += p[j] * d[j];
                for (int j = 0; j <= t; j++)
                    d[j] = p[j] * (d[j] - dot) * scale;
                for (int j = t + 1; j < T; j++)
                    d[j] = 0.0f;
            }
            krn_sgemm(0, (size_t)T, (size_t)HD, (size_t)T, 1.0f, dp, (size_t)T, k + ko, ks, 1.0f,
                      dq + qo, qs);
            krn_sgemm_at((size_t)T, (size_t)HD, (size_t)T, 1.0f, dp, (size_t)T, q + qo, qs, 1.0f,
                         dk + ko, ks);
        }
}

/* ------------------------------------------------------------------ SwiGLU */

void trn_swiglu_forward(float *out, const float *g, const float *u, size_t n)
{
    krn_silu_mul(out, g, u, n);
}

void trn_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sg;
        du[i] += dout[i] * silu;
        dg[i] += dout[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
    }
}

/* ------------------------------------------------------------------ losses */

/* log-sum-exp of x[V] / tau, and its max (for stable softmax). */
static double lse(const float *x, int V, float tau)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = x[i] > mx ? x[i] : mx;
    double s = 0.0;
    float it = 1.0f / tau;
    for (int i = 0; i < V; i++)
        s += expf((x[i] - mx) * it);
    return (double)mx / tau + log(s);
}

static int kept_rows(const int32_t *target, int N)
{
    int k = 0;
    for (int n = 0; n < N; n++)
        k += target[n] >= 0;
    return k;
}

double trn_ce_forward(const float *logits, const int32_t *target, int N, int V)
{
    int kept = kept_rows(target, N);
    double s = 0.0;
    for (int n = 0; n < N; n++) {
        if (target[n] < 0)
            continue;
        const float *x = logits + (size_t)n * V;
        s += lse(x, V, 1.0f) - x[target[n]];
    }
    return kept ? s / kept : 0.0;
}

size_t trn_token_hits(const float *logits, const int32_t *target, int N, int V, size_t *kept)
{
    size_t hits = 0, k = 0;
    for (int n = 0; n < N; n++) {
        if (target[n] < 0)
            continue;
        const float *x = logits + (size_t)n * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (x[v] > x[best])
                best = v;
        hits += best == target[n];
        k++;
    }
    if (kept)
        *kept = k;
    return hits;
}

void trn_ce_backward(float *dlogits, const float *logits, const int32_t *target, int N, int V,
                     float scale)
{
    int kept = kept_rows(target, N);
    if (!kept)
        return;
    float w = scale / (float)kept;
    for (int n = 0; n < N; n++) {
        if (target[n] < 0)
            continue;
        const float *x = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        float l = (float)lse(x, V, 1.0f);
        for (int i = 0; i < V; i++)
            d[i] += w * (expf(x[i] - l) - (i == target[n] ? 1.0f : 0.0f));
    }
}

double trn_kl_forward(const float *s_logits, const float *t_logits, const int32_t *target, int N,
                      int V, float tau)
{
    int kept = kept_rows(target, N);
    double tot = 0.0;
    for (int n = 0; n < N; n++) {
        if (target[n] < 0)
            continue;
        const float *s = s_logits + (size_t)n * V, *t = t_logits + (size_t)n * V;
        double ls = lse(s, V, tau), lt = lse(t, V, tau), kl = 0.0;
        float it = 1.0f / tau;
        for (int i = 0; i < V; i++) {
            float lpt = (float)(t[i] * it - lt), lps = (float)(s[i] * it - ls);
            kl += (double)(expf(lpt) * (lpt - lps));
        }
        tot += kl;
    }
    return kept ? tot / kept : 0.0;
}

void trn_kl_backward(float *ds, const float *s_logits, const float *t_logits, const int32_t *target,
                     int N, int V, float tau, float scale)
{
    int kept = kept_rows(target, N);
    if (!kept)
        return;
    /* d KL / d s_i = (p_s_i - p_t_i) / tau */
    float w = scale / (float)kept / tau;
    for (int n = 0; n < N; n++) {
        if (target[n] < 0)
            continue;
        const float *s = s_logits + (size_t)n * V, *t = t_logits + (size_t)n * V;
        float *d = ds + (size_t)n * V;
        float ls = (float)lse(s, V, tau), lt = (float)lse(t, V, tau), it = 1.0f / tau;
        for (int i = 0; i < V; i++)
            d[i] += w * (expf(s[i] * it - ls) - expf(t[i] * it - lt));
    }
}

/* ------------------------------------------------------------------ relation distillation */

size_t trn_relation_scratch(int T, int Cs, int Ct, int S)
{
    size_t ds = (size_t)Cs / S, dt = (size_t)Ct / S;
    /* As, At [T][d]; Zs, Zt, dZ [T][T]; norms [T]; dA [T][ds] */
    return (size_t)T * (ds + dt + 3 * (size_t)T + 1 + ds);
}

/* Rows of relation head h of state x[b] ([T][C], heads of d = C/S features) into a[T][d];
 * cosine: L2-normalised, norms kept in nrm[T] (the divisor, >= 1e-12 as F.normalize). */
static void rel_gather(float *a, float *nrm, const float *x, int T, int C, int S, int h,
                       enum trn_rel kind)
{
    int d = C / S;
    for (int t = 0; t < T; t++) {
        const float *src = x + (size_t)t * C + (size_t)h * d;
        float *dst = a + (size_t)t * d;
        if (kind == TRN_REL_COSINE) {
            double ss = 0.0;
            for (int i = 0; i < d; i++)
                ss += (double)src[i] * src[i];
            float n = (float)sqrt(ss);
            n = n > 1e-12f ? n : 1e-12f;
            nrm[t] = n;
            for (int i = 0; i < d; i++)
                dst[i] = src[i] / n;
        } else {
            memcpy(dst, src, (size_t)d * sizeof(float));
        }
    }
}

/* z[L][L] = log_softmax over keys < L of (a a^T * k), a [L][d]. */
static void rel_logsoftmax(float *z, const float *a, int L, int d, float k)
{
    krn_sgemm(1, (size_t)L, (size_t)L, (size_t)d, k, a, (size_t)d, a, (size_t)d, 0.0f, z,
              (size_t)L);
    for (int i = 0; i < L; i++) {
        float *r = z + (size_t)i * L;
        double l = lse(r, L, 1.0f);
        for (int j = 0; j < L; j++)
            r[j] = (float)(r[j] - l);
    }
}

static float rel_k(enum trn_rel kind, int d, float t_r)
{
    return kind == TRN_REL_COSINE ? 1.0f / t_r : 1.0f / sqrtf((float)d);
}

static int rel_rows(const int32_t *len, int B, int T)
{
    int r = 0;
    for (int b = 0; b < B; b++)
        r += len ? (len[b] < T ? len[b] : T) : T;
    return r;
}

double trn_relation_forward(const float *s, const float *t, const int32_t *len, int B, int T,
                            int Cs, int Ct, int S, enum trn_rel kind, float t_r, float *scratch)
{
    int ds = Cs / S, dt = Ct / S, rows = rel_rows(len, B, T);
    float *as = scratch, *at = as + (size_t)T * ds, *zs = at + (size_t)T * dt;
    float *zt = zs + (size_t)T * T, *nrm = zt + 2 * (size_t)T * T;
    double tot = 0.0;
    for (int b = 0; b < B; b++) {
        int L = len ? (len[b] < T ? len[b] : T) : T;
        for (int h = 0; h < S; h++) {
            rel_gather(as, nrm, s + (size_t)b * T * Cs, L, Cs, S, h, kind);
            rel_gather(at, nrm, t + (size_t)b * T * Ct, L, Ct, S, h, kind);
            rel_logsoftmax(zs, as, L, ds, rel_k(kind, ds, t_r));
            rel_logsoftmax(zt, at, L, dt, rel_k(kind, dt, t_r));
            for (size_t i = 0; i < (size_t)L * L; i++)
                tot += exp((double)zt[i]) * ((double)zt[i] - zs[i]);
        }
    }
    return rows ? tot / ((double)rows * S) : 0.0;
}

void trn_relation_backward(float *dsv, const float *s, const float *t, const int32_t *len, int B,
                           int T, int Cs, int Ct, int S, enum trn_rel kind, float t_r, float scale,
                           float *scratch)
{
    int ds = Cs / S, dt = Ct / S, rows = rel_rows(len, B, T);
    if (!rows)
        return;
    float *as = scratch, *at = as + (size_t)T * ds, *zs = at + (size_t)T * dt;
    float *zt = zs + (size_t)T * T, *dz = zt + (size_t)T * T, *nrm = dz + (size_t)T * T;
    float *da = nrm + T;
    float w = scale / (float)((double)rows * S);
    for (int b = 0; b < B; b++) {
        int L = len ? (len[b] < T ? len[b] : T) : T;
        for (int h = 0; h < S; h++) {
            rel_gather(at, nrm, t + (size_t)b * T * Ct, L, Ct, S, h, kind);
            rel_gather(as, nrm, s + (size_t)b * T * Cs, L, Cs, S, h, kind);
            float k = rel_k(kind, ds, t_r);
            rel_logsoftmax(zs, as, L, ds, k);
            rel_logsoftmax(zt, at, L, dt, rel_k(kind, dt, t_r));
            /* d/dz_s of KL = (softmax(z_s) - softmax(z_t)) * w; z = k * a a^T */
            for (size_t i = 0; i < (size_t)L * L; i++)
                dz[i] = w * k * (expf(zs[i]) - expf(zt[i]));
            /* da = (dz + dz^T) a */
            krn_sgemm(0, (size_t)L, (size_t)ds, (size_t)L, 1.0f, dz, (size_t)L, as, (size_t)ds,
                      0.0f, da, (size_t)ds);
            krn_sgemm_at((size_t)L, (size_t)ds, (size_t)L, 1.0f, dz, (size_t)L, as, (size_t)ds,
                         1.0f, da, (size_t)ds);
            for (int r = 0; r < L; r++) {
                float *dx = dsv + ((size_t)b * T + r) * Cs + (size_t)h * ds;
                const float *y = as + (size_t)r * ds, *dy = da + (size_t)r * ds;
                if (kind == TRN_REL_COSINE) {
                    /* y = x / |x|: dx = (dy - y (y . dy)) / |x| */
                    float yd = 0.0f;
                    for (int i = 0; i < ds; i++)
                        yd += y[i] * dy[i];
                    for (int i = 0; i < ds; i++)
                        dx[i] += (dy[i] - y[i] * yd) / nrm[r];
                } else {
                    for (int i = 0; i < ds; i++)
                        dx[i] += dy[i];
                }
            }
        }
    }
}
