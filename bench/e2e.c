/*
 * bench/e2e.c — `bitdistill bench e2e`: whole-model prefill and decode speed, resident memory
 * and bandwidth ceilings of the FP path (teacher: fp32 math, OpenBLAS sgemm) and the ternary
 * student (I2 body + 4-bit or INT8 head through the kernels), at real shapes with random
 * weights (`bitdistill init`), at 1 and 2 threads.
 *
 * `--gguf FILE` measures a student file instead (bench/peers.sh runs it beside llama.cpp's and
 * ik_llama.cpp's llama-bench): pp128 and tg64 with llama-bench's definitions (lb_test).
 *
 * Decode ceiling: a decode step must read every weight byte once (plus the KV cache), so
 * tokens/s <= STREAM triad bandwidth / bytes read per token; the fraction reached is the
 * measured rate over that ceiling. STREAM is measured in the same run, same thread count.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/student.h"
#include "kernels/pool.h"

struct e2e_opts {
    const char *config, *model, *dir;
    const char *gguf; /* --gguf: a student file, measured as llama-bench does (gguf_bench) */
    int threads[8], nthreads;
    int prompt, decode, reps;
    int stream_mb; /* MiB per STREAM array (default 256: beyond any LLC) */
    int q8;        /* also measure the INT8-head student */
    int no_fp;     /* skip the FP path's measurements (ratios then not printed) */
};

/* STREAM triad GB/s (3 arrays of mb MiB; bench_stream_triad) on nth threads; 0 when the pool or
 * the arrays cannot be had. */
static double stream_gbs(int nth, int mb)
{
    krn_pool *pool = NULL;
    double gbs = 0;
    if (!krn_pool_create(nth, &pool))
        gbs = bench_stream_triad(pool, (size_t)mb << 20);
    krn_pool_free(pool);
    return gbs;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long a = 0, b = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &a, &b) != 2)
            b = 0;
        fclose(f);
    }
    return (size_t)b * (size_t)sysconf(_SC_PAGESIZE);
}

/* Bytes a decode step at position pos reads: the weights plus the KV cache before it (fp32 K
 * and V of every layer). */
static size_t token_bytes(const struct eng_model *m, int pos)
{
    const struct eng_config *c = eng_model_config(m);
    size_t kd = (size_t)c->kv_heads * c->head_dim;
    return eng_model_decode_bytes(m) + (size_t)c->layers * 2 * kd * 4 * (size_t)pos;
}

struct result {
    double prefill_tps, decode_tps, ceiling_tps, stream;
    size_t bytes_per_tok;
};

/* Prefill `prompt` tokens (best of reps), then `decode` greedy steps one token each. */
static int measure(struct eng_model *m, const struct e2e_opts *o, int nth, double stream,
                   struct result *r)
{
    const struct eng_config *c = eng_model_config(m);
    struct eng_ctx *ctx = NULL;
    int32_t *tok = malloc((size_t)o->prompt * sizeof(*tok));
    float *lg = malloc((size_t)c->vocab * sizeof(float));
    int rc = -1;
    if (!tok || !lg || eng_model_set_threads(m, nth) ||
        eng_ctx_create(m, o->prompt + o->decode + 1, &ctx))
        goto out;
    for (int i = 0; i < o->prompt; i++)
        tok[i] = (int32_t)((i * 7919 + 13) % c->vocab);
    double best = 1e30, dbest = 1e30;
    for (int rep = 0; rep < o->reps; rep++) {
        eng_ctx_reset(ctx);
        double t0 = bench_now();
        if (eng_ctx_forward(ctx, tok, o->prompt, lg, 0))
            goto out;
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
        t0 = bench_now();
        for (int i = 0; i < o->decode; i++) {
            int32_t nx = 0;
            for (int v = 1; v < c->vocab; v++)
                if (lg[v] > lg[nx])
                    nx = v;
            if (eng_ctx_forward(ctx, &nx, 1, lg, 0))
                goto out;
        }
        dt = bench_now() - t0;
        dbest = dt < dbest ? dt : dbest;
    }
    r->prefill_tps = o->prompt / best;
    r->decode_tps = o->decode / dbest;
    r->bytes_per_tok = token_bytes(m, o->prompt + o->decode / 2);
    r->stream = stream;
    r->ceiling_tps = r->stream * 1e9 / (double)r->bytes_per_tok;
    rc = 0;
out:
    eng_ctx_free(ctx);
    free(tok);
    free(lg);
    return rc;
}

/* ---- --gguf FILE: a student file measured with llama-bench's definitions ------------------ */

/* One llama-bench test: n_prompt > 0 is "ppN" (one forward of n_prompt token ids, logits of the
 * last position), else "tgN" (n_gen forwards of one token each, logits every step, no sampling:
 * the next id is random as in llama-bench). One warm-up (the whole prompt, or one generated
 * token), then reps runs, each from an empty context; ts[rep] = tokens/s of run rep. ctx, tok
 * [max(n_prompt, 1)], lg [vocab] borrowed; *seed advanced. Returns 0 or the forward's status. */
static int lb_test(struct eng_ctx *ctx, int vocab, int n_prompt, int n_gen, int reps, int32_t *tok,
                   float *lg, uint32_t *seed, double *ts)
{
    int rc;
    for (int rep = -1; rep < reps; rep++) { /* rep -1: the warm-up */
        int n = n_prompt > 0 ? n_prompt : 1, steps = n_prompt > 0 ? 1 : rep < 0 ? 1 : n_gen;
        eng_ctx_reset(ctx);
        double t0 = bench_now();
        for (int s = 0; s < steps; s++) {
            for (int i = 0; i < n; i++) { /* llama-bench draws ids with rand() % n_vocab */
                *seed = *seed * 1664525u + 1013904223u;
                tok[i] = (int32_t)((*seed >> 8) % (uint32_t)vocab);
            }
            if ((rc = eng_ctx_forward(ctx, tok, n, lg, 0)))
                return rc;
        }
        if (rep >= 0)
            ts[rep] = (n_prompt > 0 ? n_prompt : n_gen) / (bench_now() - t0);
    }
    return 0;
}

/* Mean and sample standard deviation (n - 1) of v[0..n-1], as llama-bench's avg_ts/stddev_ts. */
static void lb_stats(const double *v, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* `bench e2e --gguf FILE`: load the student file (used in place, as the daemon does) and print,
 * per thread count, pp<prompt> and tg<decode> (mean and sd over reps), the STREAM triad of
 * stream[] and the decode ceiling STREAM / bytes a step reads at the mean position of the tgN
 * run. Returns the process status. */
static int gguf_bench(const struct e2e_opts *o, const double *stream)
{
    char err[ENG_ERR_LEN] = "";
    struct eng_model *m = NULL;
    struct eng_ctx *ctx = NULL;
    struct stat sb;
    int rc = 1, n = o->prompt > o->decode ? o->prompt : o->decode;
    int32_t *tok = malloc((size_t)n * sizeof(*tok));
    double *ts = malloc((size_t)o->reps * sizeof(*ts));
    float *lg = NULL;
    uint32_t seed = 1;
    if (stat(o->gguf, &sb)) {
        fprintf(stderr, "bitdistill bench e2e: cannot read '%s': %s\n", o->gguf, strerror(errno));
        goto out;
    }
    if (eng_student_load(o->gguf, &m, NULL, NULL, err)) {
        fprintf(stderr, "bitdistill bench e2e: %s\n", err);
        goto out;
    }
    const struct eng_config *c = eng_model_config(m);
    size_t tb = token_bytes(m, o->decode / 2);
    lg = malloc((size_t)c->vocab * sizeof(*lg));
    if (!tok || !ts || !lg) {
        fprintf(stderr, "bitdistill bench e2e: out of memory\n");
        goto out;
    }
    printf("student %s: %lld bytes on disk, %d layers, hidden %d, vocab %d, %s head; resident "
           "%.1f MB; a tg step reads %.1f MB (weights + KV cache at position %d)\n",
           o->gguf, (long long)sb.st_size, c->layers, c->hidden, c->vocab,
           eng_student_head_fmt(m) == ENG_HEAD_Q4 ? "4-bit" : "INT8",
           eng_model_resident_bytes(m) / 1e6, tb / 1e6, o->decode / 2);
    printf("pp%d and tg%d as llama-bench measures them: one warm-up, then mean and sample sd of "
           "tokens/s over %d runs from an empty context (random ids, logits of the last position "
           "of each forward); ceiling = STREAM / bytes a tg step reads\n",
           o->prompt, o->decode, o->reps);
    printf("%7s %10s %8s %10s %8s %12s %12s %10s\n", "threads", "pp t/s", "sd", "tg t/s", "sd",
           "STREAM GB/s", "ceiling t/s", "tg/ceil");
    for (int t = 0; t < o->nthreads; t++) {
        double pp, ppsd, tg, tgsd;
        if (eng_model_set_threads(m, o->threads[t]) || eng_ctx_create(m, n + 1, &ctx)) {
            fprintf(stderr, "bitdistill bench e2e: cannot make a context of %d threads\n",
                    o->threads[t]);
            goto out;
        }
        if (lb_test(ctx, c->vocab, o->prompt, 0, o->reps, tok, lg, &seed, ts)) {
            fprintf(stderr, "bitdistill bench e2e: prefill failed: %s\n", eng_ctx_errmsg(ctx));
            goto out;
        }
        lb_stats(ts, o->reps, &pp, &ppsd);
        if (lb_test(ctx, c->vocab, 0, o->decode, o->reps, tok, lg, &seed, ts)) {
            fprintf(stderr, "bitdistill bench e2e: decode failed: %s\n", eng_ctx_errmsg(ctx));
            goto out;
        }
        lb_stats(ts, o->reps, &tg, &tgsd);
        eng_ctx_free(ctx);
        ctx = NULL;
        double ceil = stream[t] * 1e9 / (double)tb;
        printf("%7d %10.2f %8.2f %10.2f %8.2f %12.1f %12.2f %9.1f%%\n", o->threads[t], pp, ppsd, tg,
               tgsd, stream[t], ceil, 100.0 * tg / ceil);
        fflush(stdout);
    }
    rc = 0;
out:
    eng_ctx_free(ctx);
    eng_model_free(m);
    free(tok);
    free(ts);
    free(lg);
    return rc;
}

static int parse(int argc, char **argv, struct e2e_opts *o)
{
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->nthreads = 2;
    o->prompt = 128;
    o->decode = 32;
    o->reps = 3;
    o->stream_mb = 256;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: bitdistill bench e2e (--config CONFIG.json | --model HF_DIR) "
                "[--threads 1,2] [--prompt 128]\n       [--decode 32] [--reps 3] [--q8] [--no-fp] "
                "[--dir TMPDIR]\n   or: bitdistill bench e2e --gguf STUDENT.gguf [--threads 1,2] "
                "[--prompt 128] [--decode 32] [--reps 3]\n"
                "STREAM triad: 3 arrays of --stream-mb MiB (default 256).\n"
                "Random weights from CONFIG (e.g. engine/configs/qwen3-0.6b.json) are written "
                "to TMPDIR (default /tmp) first.\n--gguf measures a student file with "
                "llama-bench's definitions: ppN = one N-token forward, tgN = N one-token\n"
                "forwards, each from an empty context, mean and sd over the reps after one "
                "warm-up.\n");
            exit(0);
        } else if (!strcmp(argv[i], "--config") && v) {
            o->config = v;
            i++;
        } else if (!strcmp(argv[i], "--model") && v) {
            o->model = v;
            i++;
        } else if (!strcmp(argv[i], "--gguf") && v) {
            o->gguf = v;
            i++;
        } else if (!strcmp(argv[i], "--dir") && v) {
            o->dir = v;
            i++;
        } else if (!strcmp(argv[i], "--threads") && v) {
            if ((o->nthreads = bench_parse_threads(v, o->threads, 8)) < 0) {
                fprintf(stderr,
                        "bitdistill bench e2e: --threads wants a list like 1,2,4 "
                        "(at most 8 counts of 1..1024), not '%s'\n",
                        v);
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "--prompt") && v) {
            o->prompt = atoi(v);
            i++;
        } else if (!strcmp(argv[i], "--decode") && v) {
            o->decode = atoi(v);
            i++;
        } else if (!strcmp(argv[i], "--reps") && v) {
            o->reps = atoi(v);
            i++;
        } else if (!strcmp(argv[i], "--stream-mb") && v) {
            o->stream_mb = atoi(v);
            i++;
        } else if (!strcmp(argv[i], "--q8")) {
            o->q8 = 1;
        } else if (!strcmp(argv[i], "--no-fp")) {
            o->no_fp = 1;
        } else {
            fprintf(stderr, "bitdistill bench e2e: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!!o->config + !!o->model + !!o->gguf != 1 || o->nthreads < 1 || o->prompt < 1 ||
        o->decode < 1 || o->reps < 1 || o->stream_mb < 1)
        return 2;
    return 0;
}

int bench_e2e_main(int argc, char **argv)
{
    struct e2e_opts o = {0};
    char err[ENG_ERR_LEN] = "", dir[4096];
    struct eng_model *fp = NULL, *st[2] = {NULL, NULL};
    struct result r[3][8];
    int rc = parse(argc, argv, &o);
    if (rc) {
        fprintf(stderr, "usage: bitdistill bench e2e (--config CONFIG.json | --model HF_DIR | "
                        "--gguf STUDENT.gguf) [--threads 1,2] [--prompt 128] [--decode 32]\n");
        return rc;
    }
    if (o.config) {
        snprintf(dir, sizeof(dir), "%s/bd-e2e-XXXXXX", o.dir ? o.dir : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "bitdistill bench e2e: cannot create %s: %s\n", dir, strerror(errno));
            return 1;
        }
        double t0 = bench_now();
        if ((rc = eng_init_write(o.config, dir, 1, 1, err))) {
            fprintf(stderr, "bitdistill bench e2e: %s\n", err);
            return 1;
        }
        printf("random bf16 model from %s written to %s in %.1f s\n", o.config, dir,
               bench_now() - t0);
        o.model = dir;
    }
    double stream[8];
    for (int t = 0; t < o.nthreads; t++) /* before any model is resident: a quiet machine */
        stream[t] = stream_gbs(o.threads[t], o.stream_mb);
    if (o.gguf)
        return gguf_bench(&o, stream);
    double t0 = bench_now();
    if ((rc = eng_model_load_hf(o.model, &fp, err)) ||
        (rc = eng_student_from_fp(fp, ENG_HEAD_Q4, &st[0], err)) ||
        (o.q8 && (rc = eng_student_from_fp(fp, ENG_HEAD_Q8, &st[1], err)))) {
        fprintf(stderr, "bitdistill bench e2e: %s\n", err);
        rc = 1;
        goto out;
    }
    const struct eng_config *c = eng_model_config(fp);
    size_t params = eng_model_resident_bytes(fp) / 4; /* fp32 resident = 4 bytes a parameter */
    printf("model %s: %s, %d layers, hidden %d, vocab %d, %.3f G parameters; loaded and "
           "quantized in %.1f s; process RSS %.2f GiB\n",
           o.model, c->model_type, c->layers, c->hidden, c->vocab, params / 1e9, bench_now() - t0,
           rss_bytes() / 1073741824.0);
    printf("prefill %d tokens, decode %d tokens after it, best of %d\n\n", o.prompt, o.decode,
           o.reps);
    struct eng_model *ms[3] = {fp, st[0], st[1]};
    const char *names[3] = {"FP (fp32, OpenBLAS)", "student (I2 + Q4 head)",
                            "student (I2 + Q8 head)"};
    printf("%-24s %3s %12s %12s %12s %10s %12s %10s %9s\n", "path", "thr", "resident MB",
           "prefill t/s", "decode t/s", "MB/token", "ceiling t/s", "STREAM", "fraction");
    for (int p = 0; p < 3; p++) {
        if (!ms[p] || (p == 0 && o.no_fp))
            continue;
        for (int t = 0; t < o.nthreads; t++) {
            if (measure(ms[p], &o, o.threads[t], stream[t], &r[p][t])) {
                fprintf(stderr, "bitdistill bench e2e: the %s forward failed\n", names[p]);
                rc = 1;
                goto out;
            }
            printf("%-24s %3d %12.1f %12.1f %12.2f %10.1f %12.2f %7.1f GB/s %8.1f%%\n", names[p],
                   o.threads[t], eng_model_resident_bytes(ms[p]) / 1e6, r[p][t].prefill_tps,
                   r[p][t].decode_tps, r[p][t].bytes_per_tok / 1e6, r[p][t].ceiling_tps,
                   r[p][t].stream, 100.0 * r[p][t].decode_tps / r[p][t].ceiling_tps);
            fflush(stdout);
        }
    }
    printf("\n");
    for (int t = 0; t < o.nthreads && !o.no_fp; t++)
        printf("threads %d: student/FP decode %.2fx (target >= 5), prefill %.2fx (target >= 3); "
               "student at %.1f%% of its bandwidth ceiling (target >= 75%%)\n",
               o.threads[t], r[1][t].decode_tps / r[0][t].decode_tps,
               r[1][t].prefill_tps / r[0][t].prefill_tps,
               100.0 * r[1][t].decode_tps / r[1][t].ceiling_tps);
    if (st[1]) { /* accuracy effect of the head format: same ternary body, Q4 vs Q8 head */
        size_t V = (size_t)c->vocab, T = (size_t)o.prompt;
        float *a = malloc(T * V * sizeof(float)), *b = malloc(T * V * sizeof(float));
        int32_t *tok = malloc(T * sizeof(*tok));
        struct eng_ctx *ca = NULL, *cb = NULL;
        for (size_t i = 0; a && b && tok && i < T; i++)
            tok[i] = (int32_t)((i * 7919 + 13) % V);
        if (a && b && tok && !eng_ctx_create(st[0], (int)T, &ca) &&
            !eng_ctx_create(st[1], (int)T, &cb) && !eng_ctx_forward(ca, tok, (int)T, a, 1) &&
            !eng_ctx_forward(cb, tok, (int)T, b, 1)) {
            double mx = 0, ref = 0;
            int agree = 0;
            for (size_t t = 0; t < T; t++) {
                size_t ia = 0, ib = 0;
                for (size_t v = 0; v < V; v++) {
                    double d = a[t * V + v] - b[t * V + v];
                    mx = d > mx ? d : -d > mx ? -d : mx;
                    ref = b[t * V + v] > ref    ? b[t * V + v]
                          : -b[t * V + v] > ref ? -b[t * V + v]
                                                : ref;
                    ia = a[t * V + v] > a[t * V + ia] ? v : ia;
                    ib = b[t * V + v] > b[t * V + ib] ? v : ib;
                }
                agree += ia == ib;
            }
            printf("head format effect (same ternary body, %zu positions): Q4 vs Q8 max abs logit "
                   "diff %.4f (Q8 logits up to %.3f), top-1 agreement %d/%zu\n",
                   T, mx, ref, agree, T);
        }
        eng_ctx_free(ca);
        eng_ctx_free(cb);
        free(a);
        free(b);
        free(tok);
    }
    printf("size: student (Q4 head) %.1f MB = 1/%.2f of the FP16 size %.1f MB (target <= 1/6)\n",
           eng_model_resident_bytes(st[0]) / 1e6,
           2.0 * params / (double)eng_model_resident_bytes(st[0]), 2.0 * params / 1e6);
    rc = 0;
out:
    eng_model_free(st[0]);
    eng_model_free(st[1]);
    eng_model_free(fp);
    if (o.config) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/config.json", dir);
        unlink(path);
        rmdir(dir);
    }
    return rc;
}
