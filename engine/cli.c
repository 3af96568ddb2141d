/*
 * engine/cli.c — `bitdistill init | tokenize | forward | generate`.
 *
 * --model takes a Hugging Face directory (config.json, safetensors, tokenizer.json).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cli.h"
#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

/* Read all of stdin (malloc'd, NUL-terminated). */
static char *read_stdin(size_t *n)
{
    size_t cap = 4096, len = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + len, 1, cap - len - 1, stdin)) > 0) {
        len += r;
        if (cap - len - 1 == 0) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return NULL;
            }
            b = nb;
            cap *= 2;
        }
    }
    if (b) {
        b[len] = 0;
        *n = len;
    }
    return b;
}

/* Parse "1,2,3" or "1 2 3" into a malloc'd array. Returns count or -1 on a bad number. */
static int parse_ids(const char *s, int32_t **out)
{
    size_t cap = 16, n = 0;
    int32_t *v = malloc(cap * sizeof(*v));
    while (v && *s) {
        while (*s == ',' || *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
            s++;
        if (!*s)
            break;
        char *e;
        errno = 0;
        long x = strtol(s, &e, 10);
        if (e == s || errno || x < 0 || x > 0x7fffffff) {
            free(v);
            return -1;
        }
        if (n == cap) {
            int32_t *nv = realloc(v, 2 * cap * sizeof(*v));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
            cap *= 2;
        }
        v[n++] = (int32_t)x;
        s = e;
    }
    *out = v;
    return v ? (int)n : -1;
}

struct opened {
    struct eng_model *m;
    struct eng_tok *tok;
};

static void close_model(struct opened *o)
{
    eng_model_free(o->m);
    eng_tok_free(o->tok);
}

/* Open --model: weights (need_model) and/or tokenizer (need_tok). */
static int open_model(const char *path, int need_model, int need_tok, struct opened *o)
{
    char err[ENG_ERR_LEN] = "";
    int rc = 0;
    memset(o, 0, sizeof(*o));
    if (need_model && (rc = eng_model_load_hf(path, &o->m, err)))
        goto fail;
    if (need_tok && (rc = eng_tok_load_json(path, &o->tok, err)))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "bitdistill: %s (%s)\n", err, eng_strerror(rc));
    close_model(o);
    return rc;
}

int eng_cli_init(int argc, char **argv)
{
    static const struct option opts[] = {{"config", 1, 0, 'c'}, {"out", 1, 0, 'o'},
                                         {"seed", 1, 0, 's'},   {"dtype", 1, 0, 'd'},
                                         {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    const char *cfg = NULL, *out = NULL, *dtype = "bf16";
    unsigned long long seed = 0;
    int c;
    char err[ENG_ERR_LEN];
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cfg = optarg; break;
        case 'o': out = optarg; break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'd': dtype = optarg; break;
        case 'h':
            printf("usage: bitdistill init --config CONFIG.json --out DIR [--seed N] "
                   "[--dtype bf16|f32]\n"
                   "Write a random-initialised model (config.json + model.safetensors) in Hugging "
                   "Face format.\nShapes of real models: engine/configs/qwen3-{0.6b,1.7b,4b}.json.\n");
            return 0;
        default: return 2;
        }
    }
    if (!cfg || !out || (strcmp(dtype, "bf16") && strcmp(dtype, "f32"))) {
        fprintf(stderr, "usage: bitdistill init --config CONFIG.json --out DIR [--seed N] "
                        "[--dtype bf16|f32]\n");
        return 2;
    }
    int rc = eng_init_write(cfg, out, seed, !strcmp(dtype, "bf16"), err);
    if (rc) {
        fprintf(stderr, "bitdistill init: %s\n", err);
        return 1;
    }
    return 0;
}

int eng_cli_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {{"model", 1, 0, 'm'}, {"decode", 0, 0, 'd'},
                                         {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    const char *model = NULL;
    int decode = 0, c, rc = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': decode = 1; break;
        case 'h':
            printf("usage: bitdistill tokenize --model DIR [--decode] < input\n"
                   "Reads UTF-8 text on stdin and prints token ids separated by spaces; with "
                   "--decode reads ids and prints the text.\n");
            return 0;
        default: return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "usage: bitdistill tokenize --model DIR [--decode] < input\n");
        return 2;
    }
    struct opened o;
    if (open_model(model, 0, 1, &o))
        return 1;
    size_t n = 0;
    char *in = read_stdin(&n);
    if (!in) {
        fprintf(stderr, "bitdistill tokenize: cannot read stdin\n");
        goto out;
    }
    if (decode) {
        int32_t *ids = NULL;
        int k = parse_ids(in, &ids);
        char *txt = NULL;
        size_t tl = 0;
        if (k < 0) {
            fprintf(stderr, "bitdistill tokenize: --decode needs non-negative integer ids\n");
        } else if ((rc = eng_tok_decode(o.tok, ids, (size_t)k, 0, &txt, &tl))) {
            fprintf(stderr, "bitdistill tokenize: cannot decode: %s\n", eng_strerror(rc));
            rc = 1;
        } else {
            fwrite(txt, 1, tl, stdout);
            rc = 0;
        }
        free(txt);
        free(ids);
    } else {
        int32_t *ids = NULL;
        size_t k = 0;
        if ((rc = eng_tok_encode(o.tok, in, n, &ids, &k))) {
            fprintf(stderr, "bitdistill tokenize: %s\n", rc == ENG_ETOKENIZER
                                                             ? "input is not valid UTF-8"
                                                             : eng_strerror(rc));
            rc = 1;
        } else {
            for (size_t i = 0; i < k; i++)
                printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        free(ids);
    }
    free(in);
out:
    close_model(&o);
    return rc;
}

int eng_cli_forward(int argc, char **argv)
{
    static const struct option opts[] = {{"model", 1, 0, 'm'}, {"tokens", 1, 0, 't'},
                                         {"out", 1, 0, 'o'},   {"threads", 1, 0, 'j'},
                                         {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    const char *model = NULL, *toks = NULL, *outp = NULL;
    int c, threads = 1, rc = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': toks = optarg; break;
        case 'o': outp = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'h':
            printf("usage: bitdistill forward --model DIR --tokens 1,2,3 --out FILE [--threads N]\n"
                   "Writes the logits of every position as raw little-endian float32 [T, vocab].\n");
            return 0;
        default: return 2;
        }
    }
    if (!model || !toks || !outp) {
        fprintf(stderr, "usage: bitdistill forward --model DIR --tokens 1,2,3 --out FILE\n");
        return 2;
    }
    int32_t *ids = NULL;
    int n = parse_ids(toks, &ids);
    if (n <= 0) {
        fprintf(stderr, "bitdistill forward: --tokens needs comma-separated non-negative ids\n");
        free(ids);
        return 2;
    }
    struct opened o;
    struct eng_ctx *ctx = NULL;
    float *lg = NULL;
    if (open_model(model, 1, 0, &o)) {
        free(ids);
        return 1;
    }
    eng_model_set_threads(o.m, threads);
    size_t V = (size_t)eng_model_config(o.m)->vocab;
    lg = malloc((size_t)n * V * sizeof(float));
    if (!lg || eng_ctx_create(o.m, n, &ctx)) {
        fprintf(stderr, "bitdistill forward: out of memory\n");
        goto out;
    }
    if (n > eng_model_config(o.m)->max_pos) {
        fprintf(stderr, "bitdistill forward: %d tokens exceed max_position_embeddings %d\n", n,
                eng_model_config(o.m)->max_pos);
        goto out;
    }
    if ((rc = eng_ctx_forward(ctx, ids, n, lg, 1))) {
        fprintf(stderr, "bitdistill forward: %s\n", eng_ctx_errmsg(ctx));
        rc = 1;
        goto out;
    }
    FILE *f = fopen(outp, "wb");
    if (!f || fwrite(lg, sizeof(float) * V, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "bitdistill forward: cannot write '%s': %s\n", outp, strerror(errno));
        rc = 1;
        goto out;
    }
    rc = 0;
out:
    eng_ctx_free(ctx);
    free(lg);
    free(ids);
    close_model(&o);
    return rc;
}

int eng_cli_generate(int argc, char **argv)
{
    static const struct option opts[] = {{"model", 1, 0, 'm'},      {"prompt", 1, 0, 'p'},
                                         {"max-tokens", 1, 0, 'n'}, {"threads", 1, 0, 'j'},
                                         {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL;
    int c, maxn = 32, threads = 1, rc = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': maxn = atoi(optarg); break;
        case 'j': threads = atoi(optarg); break;
        case 'h':
            printf("usage: bitdistill generate --model DIR --prompt TEXT [--max-tokens N] "
                   "[--threads N]\nGreedy decoding; prints the continuation.\n");
            return 0;
        default: return 2;
        }
    }
    if (!model || !prompt || maxn < 0) {
        fprintf(stderr, "usage: bitdistill generate --model DIR --prompt TEXT [--max-tokens N]\n");
        return 2;
    }
    struct opened o;
    struct eng_ctx *ctx = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n = 0;
    char *txt = NULL;
    if (open_model(model, 1, 1, &o))
        return 1;
    eng_model_set_threads(o.m, threads);
    if ((rc = eng_tok_encode(o.tok, prompt, strlen(prompt), &ids, &n)) || n == 0) {
        fprintf(stderr, "bitdistill generate: %s\n",
                n == 0 && !rc ? "the prompt has no tokens" : "the prompt is not valid UTF-8");
        rc = 1;
        goto out;
    }
    gen = malloc(((size_t)maxn + 1) * sizeof(*gen));
    if (!gen || eng_ctx_create(o.m, (int)n + maxn, &ctx)) {
        fprintf(stderr, "bitdistill generate: out of memory\n");
        rc = 1;
        goto out;
    }
    int g = eng_generate_greedy(ctx, ids, (int)n, maxn, eng_model_config(o.m)->eos_id, gen);
    if (g < 0) {
        fprintf(stderr, "bitdistill generate: %s\n", eng_ctx_errmsg(ctx));
        rc = 1;
        goto out;
    }
    size_t tl = 0;
    if ((rc = eng_tok_decode(o.tok, gen, (size_t)g, 1, &txt, &tl))) {
        fprintf(stderr, "bitdistill generate: the model produced ids the tokenizer lacks\n");
        rc = 1;
        goto out;
    }
    fwrite(txt, 1, tl, stdout);
    printf("\n");
    rc = 0;
out:
    free(txt);
    free(gen);
    free(ids);
    eng_ctx_free(ctx);
    close_model(&o);
    return rc;
}
