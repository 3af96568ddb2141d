/*
 * engine/cli.c — `bitdistill init | tokenize | forward | generate`.
 *
 * --model takes a Hugging Face directory (config.json, safetensors, tokenizer.json) or a
 * student file (*.gguf, which carries its tokenizer and task metadata).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <jansson.h>

#include "engine/chat.h"
#include "engine/classify.h"
#include "engine/cli.h"
#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "jinja/jinja.h"

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
    struct eng_student_meta meta; /* students only */
};

static void close_model(struct opened *o)
{
    eng_model_free(o->m);
    eng_tok_free(o->tok);
    eng_student_meta_release(&o->meta);
}

static int is_gguf(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcmp(path + n - 5, ".gguf");
}

/* Open --model: weights (need_model) and/or tokenizer (need_tok). */
static int open_model(const char *path, int need_model, int need_tok, struct opened *o)
{
    char err[ENG_ERR_LEN] = "";
    int rc = 0;
    memset(o, 0, sizeof(*o));
    if (is_gguf(path)) {
        if ((rc = eng_student_load(path, &o->m, &o->tok, &o->meta, err)))
            goto fail;
        if (need_tok && !o->tok) {
            rc = eng_fail(err, ENG_ETOKENIZER, "'%s' holds no tokenizer", path);
            goto fail;
        }
        return 0;
    }
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
            printf(
                "usage: bitdistill init --config CONFIG.json --out DIR [--seed N] "
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
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"decode", 0, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
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
            fprintf(stderr, "bitdistill tokenize: %s\n",
                    rc == ENG_ETOKENIZER ? "input is not valid UTF-8" : eng_strerror(rc));
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
            printf(
                "usage: bitdistill forward --model DIR --tokens 1,2,3 --out FILE [--threads N]\n"
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

#define MAX_LABELS 64

/* "--label NAME=WORD": the label name and its verbalizer word (WORD may start with a space). */
static int add_label(char *arg, char **names, char **words, int *n)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || *n >= MAX_LABELS)
        return -1;
    *eq = 0;
    names[*n] = arg;
    words[*n] = eq + 1;
    (*n)++;
    return 0;
}

int eng_cli_convert(int argc, char **argv)
{
    static const struct option opts[] = {{"model", 1, 0, 'm'},    {"out", 1, 0, 'o'},
                                         {"ternary", 0, 0, 't'},  {"head", 1, 0, 'H'},
                                         {"template", 1, 0, 'T'}, {"label", 1, 0, 'l'},
                                         {"job-id", 1, 0, 'j'},   {"no-chat-template", 0, 0, 'C'},
                                         {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    const char *model = NULL, *outp = NULL, *head = "q8", *tmpl = NULL, *job = NULL;
    char *names[MAX_LABELS], *words[MAX_LABELS], err[ENG_ERR_LEN] = "", hex[65] = "";
    char *chat = NULL;
    int c, ternary = 0, nl = 0, rc = 1, no_chat = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': outp = optarg; break;
        case 't': ternary = 1; break;
        case 'H': head = optarg; break;
        case 'T': tmpl = optarg; break;
        case 'j': job = optarg; break;
        case 'C': no_chat = 1; break;
        case 'l':
            if (add_label(optarg, names, words, &nl)) {
                fprintf(stderr, "bitdistill convert: --label needs NAME=WORD (at most %d)\n",
                        MAX_LABELS);
                return 2;
            }
            break;
        case 'h':
            printf("usage: bitdistill convert --model HF_DIR --out student.gguf --ternary "
                   "[--head q8|q4]\n       [--template 'Review: {text}\\nSentiment:' --label "
                   "negative=' negative' --label positive=' positive'] [--job-id ID]\n"
                   "       [--no-chat-template]\n"
                   "Post-training absmean ternary quantization of an FP checkpoint (the "
                   "no-training baseline).\nSubLN weights in the checkpoint "
                   "(*.attn_sub_norm.weight, *.ffn_sub_norm.weight) are kept.\n"
                   "The chat_template of tokenizer_config.json travels as "
                   "tokenizer.chat_template;\nconvert refuses one the engine cannot render "
                   "(--no-chat-template leaves it out).\n");
            return 0;
        default: return 2;
        }
    }
    if (!model || !outp || !ternary || (strcmp(head, "q8") && strcmp(head, "q4")) ||
        (nl > 0 && (nl < 2 || !tmpl))) {
        fprintf(stderr, "usage: bitdistill convert --model HF_DIR --out student.gguf --ternary "
                        "[--head q8|q4] [--template T --label NAME=WORD ...]\n");
        return 2;
    }
    struct opened o;
    struct eng_model *st = NULL;
    char tokpath[4096];
    snprintf(tokpath, sizeof(tokpath), "%s/tokenizer.json", model);
    if (!no_chat && (rc = eng_chat_template_read(model, &chat, err))) {
        fprintf(stderr, "bitdistill convert: %s\n", err);
        return 1;
    }
    if (chat) {
        struct jinja_tpl *jt = NULL;
        char jerr[JINJA_ERR_LEN];
        if (jinja_parse(chat, strlen(chat), &jt, jerr)) {
            fprintf(stderr,
                    "bitdistill convert: the chat template of %s/tokenizer_config.json "
                    "cannot be served: %s (--no-chat-template leaves it out)\n",
                    model, jerr);
            free(chat);
            return 1;
        }
        jinja_free(jt);
    }
    if (open_model(model, 1, 0, &o)) {
        free(chat);
        return 1;
    }
    if (access(tokpath, R_OK) == 0 && (rc = eng_tok_load_json(tokpath, &o.tok, err))) {
        fprintf(stderr, "bitdistill convert: %s\n", err);
        rc = 1;
        goto out;
    }
    if ((rc = eng_student_from_fp(o.m, strcmp(head, "q4") ? ENG_HEAD_Q8 : ENG_HEAD_Q4, &st, err))) {
        fprintf(stderr, "bitdistill convert: %s\n", err);
        rc = 1;
        goto out;
    }
    /* provenance: the teacher's weights as the loader read them (a failure leaves it out) */
    if (eng_st_sha256(model, hex, err))
        hex[0] = '\0';
    struct eng_student_meta meta = {(char *)tmpl, nl,   names, words, hex[0] ? hex : NULL,
                                    (char *)job,  NULL, chat,  NULL};
    if ((rc = eng_student_save(st, o.tok, &meta, outp, err))) {
        fprintf(stderr, "bitdistill convert: %s\n", err);
        rc = 1;
        goto out;
    }
    struct stat sb;
    stat(outp, &sb);
    fprintf(stderr,
            "bitdistill convert: wrote %s (%lld bytes; teacher resident %zu bytes, "
            "student %zu bytes; head %s)\n",
            outp, (long long)sb.st_size, eng_model_resident_bytes(o.m),
            eng_model_resident_bytes(st), head);
    rc = 0;
out:
    free(chat);
    eng_model_free(st);
    close_model(&o);
    return rc;
}

int eng_cli_classify(int argc, char **argv)
{
    static const struct option opts[] = {{"model", 1, 0, 'm'}, {"template", 1, 0, 'T'},
                                         {"label", 1, 0, 'l'}, {"threads", 1, 0, 'j'},
                                         {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    const char *model = NULL, *tmpl = NULL;
    char *names[MAX_LABELS], *words[MAX_LABELS], err[ENG_ERR_LEN] = "";
    int c, nl = 0, threads = 1, rc = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'T': tmpl = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'l':
            if (add_label(optarg, names, words, &nl)) {
                fprintf(stderr, "bitdistill classify: --label needs NAME=WORD\n");
                return 2;
            }
            break;
        case 'h':
            printf("usage: bitdistill classify --model M [--template T --label NAME=WORD ...] "
                   "TEXT...\nPrints one JSON line per TEXT: {\"label\", \"probs\": {label: p}}. "
                   "A student file\nsupplies its own template and labels.\n");
            return 0;
        default: return 2;
        }
    }
    if (!model || optind >= argc) {
        fprintf(stderr, "usage: bitdistill classify --model M [--template T --label NAME=WORD "
                        "...] TEXT...\n");
        return 2;
    }
    struct opened o;
    struct eng_classifier *cl = NULL;
    if (open_model(model, 1, 1, &o))
        return 1;
    eng_model_set_threads(o.m, threads);
    const char *const *lw = (const char *const *)words, *const *ln = (const char *const *)names;
    if (nl == 0 && o.meta.nlabels > 0) {
        nl = o.meta.nlabels;
        lw = (const char *const *)o.meta.label_words;
        ln = (const char *const *)o.meta.labels;
    }
    if (!tmpl)
        tmpl = o.meta.template;
    if ((rc = eng_classifier_create(o.m, o.tok, tmpl, lw, nl, &cl, err))) {
        fprintf(stderr, "bitdistill classify: %s\n", err);
        rc = 1;
        goto out;
    }
    for (int i = optind; i < argc; i++) {
        float probs[MAX_LABELS];
        int best;
        if ((rc = eng_classify(cl, argv[i], probs, &best, err))) {
            fprintf(stderr, "bitdistill classify: %s\n", err);
            rc = 1;
            goto out;
        }
        json_t *j = json_object(), *p = json_object();
        for (int k = 0; k < nl; k++)
            json_object_set_new(p, ln[k], json_real(probs[k]));
        json_object_set_new(j, "label", json_string(ln[best]));
        json_object_set_new(j, "probs", p);
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    }
    rc = 0;
out:
    eng_classifier_free(cl);
    close_model(&o);
    return rc;
}
