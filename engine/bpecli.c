/*
 * engine/bpecli.c — `bitdistill tokenizer-train`: train a byte-level BPE vocabulary on UTF-8
 * text files and write a Qwen2-shaped tokenizer.json (engine/bpetrain.h).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "engine/bpetrain.h"
#include "engine/err.h"

#define USAGE                                                                                      \
    "usage: bitdistill tokenizer-train --vocab N --out tokenizer.json [--min-frequency K]\n"       \
    "                                  [--threads T] FILE...\n"

static void print_help(void)
{
    printf(USAGE
           "Train a byte-level BPE tokenizer on UTF-8 text files (\"-\" reads stdin) and write a\n"
           "Hugging Face tokenizer.json shaped like Qwen2/Qwen3's (NFC, Qwen2 split regex,\n"
           "ByteLevel), loadable by `bitdistill tokenize --model` and by HF tokenizers.\n\n"
           "  --vocab N           total vocabulary: 256 byte tokens + merges + 3 special tokens\n"
           "                      (<|endoftext|>, <|im_start|>, <|im_end|>, the last three ids)\n"
           "  --out PATH          tokenizer.json to write (replaced atomically)\n"
           "  --min-frequency K   never merge a pair seen fewer than K times (default 2)\n"
           "  --threads T         pre-tokenizing threads (default: online CPUs, at most 16)\n\n"
           "Lines that are not valid UTF-8 are skipped, with a warning per file. Ties between\n"
           "pairs of equal count go to the lexicographically smaller pair of token bytes, so the\n"
           "output depends only on the input, not on the thread count.\n");
}

static void warn_line(const char *msg)
{
    fprintf(stderr, "bitdistill tokenizer-train: warning: %s\n", msg);
}

/* Parse a decimal in [lo, hi] into *v; 0 or -1. */
static int parse_num(const char *s, long long lo, long long hi, long long *v)
{
    char *e;
    errno = 0;
    long long x = strtoll(s, &e, 10);
    if (e == s || *e || errno || x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* Fail early (before minutes of counting) on inputs that cannot be read and an output
 * directory that cannot be written. Prints the problem; 0 or -1. */
static int check_paths(char **files, int n, const char *out)
{
    struct stat sb;
    for (int i = 0; i < n; i++) {
        if (!strcmp(files[i], "-"))
            continue;
        if (stat(files[i], &sb) != 0 || access(files[i], R_OK) != 0) {
            fprintf(stderr, "bitdistill tokenizer-train: cannot open '%s': %s\n", files[i],
                    strerror(errno));
            return -1;
        }
        if (S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "bitdistill tokenizer-train: cannot read '%s': %s\n", files[i],
                    strerror(EISDIR));
            return -1;
        }
    }
    char *dup = strdup(out);
    const char *dir = dup ? dirname(dup) : ".";
    int ok = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && access(dir, W_OK) == 0;
    if (!ok)
        fprintf(stderr, "bitdistill tokenizer-train: cannot write '%s': directory '%s' %s\n", out,
                dir, stat(dir, &sb) != 0 ? "does not exist" : "is not writable");
    free(dup);
    return ok ? 0 : -1;
}

int eng_cli_tokenizer_train(int argc, char **argv)
{
    static const struct option opts[] = {{"vocab", 1, 0, 'v'},         {"out", 1, 0, 'o'},
                                         {"min-frequency", 1, 0, 'm'}, {"threads", 1, 0, 't'},
                                         {"help", 0, 0, 'h'},          {0, 0, 0, 0}};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct eng_bpe_opts o = {.vocab_size = -1,
                             .min_frequency = 2,
                             .threads = cpus < 1    ? 1
                                        : cpus > 16 ? 16
                                                    : (int)cpus};
    const char *out = NULL;
    long long v;
    char err[ENG_ERR_LEN];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            if (parse_num(optarg, 0, ENG_BPE_MAX_VOCAB + 1LL, &v)) {
                fprintf(stderr,
                        "bitdistill tokenizer-train: --vocab '%s' is not a number in "
                        "%d..%d\n",
                        optarg, 256 + ENG_BPE_N_SPECIAL, ENG_BPE_MAX_VOCAB);
                return 2;
            }
            o.vocab_size = (int32_t)v;
            break;
        case 'o': out = optarg; break;
        case 'm':
            if (parse_num(optarg, 0, 1LL << 62, &v)) {
                fprintf(stderr,
                        "bitdistill tokenizer-train: --min-frequency '%s' is not a "
                        "non-negative number\n",
                        optarg);
                return 2;
            }
            o.min_frequency = (uint64_t)v;
            break;
        case 't':
            if (parse_num(optarg, 1, 256, &v)) {
                fprintf(stderr,
                        "bitdistill tokenizer-train: --threads '%s' is not a number in "
                        "1..256\n",
                        optarg);
                return 2;
            }
            o.threads = (int)v;
            break;
        case 'h': print_help(); return 0;
        default: fprintf(stderr, USAGE); return 2;
        }
    }
    if (o.vocab_size < 0 || !out || optind >= argc) {
        fprintf(stderr, "%sbitdistill tokenizer-train: %s\n", USAGE,
                o.vocab_size < 0 ? "--vocab is required"
                : !out           ? "--out is required"
                                 : "no input FILE given");
        return 2;
    }
    struct eng_bpe *b = NULL;
    int rc = eng_bpe_create(&o, &b, err);
    if (rc) {
        fprintf(stderr, "bitdistill tokenizer-train: %s%s\n", rc == ENG_ERANGE ? "--vocab: " : "",
                err);
        return rc == ENG_ERANGE ? 2 : 1;
    }
    if (check_paths(argv + optind, argc - optind, out)) {
        eng_bpe_free(b);
        return 1;
    }
    for (int i = optind; i < argc && rc == 0; i++)
        rc = eng_bpe_add_file(b, argv[i], warn_line);
    struct eng_bpe_stats st;
    eng_bpe_get_stats(b, &st);
    if (rc == 0 && st.pieces == 0)
        rc = eng_fail(err, ENG_EINVAL, "the input holds no valid UTF-8 text");
    else if (rc)
        snprintf(err, sizeof(err), "%s", eng_bpe_errmsg(b));
    if (rc == 0) {
        fprintf(stderr,
                "tokenizer-train: %llu file%s, %.1f MB, %llu lines (%llu not UTF-8, "
                "skipped), %llu pieces; counted in %.2f s on %d thread%s\n",
                (unsigned long long)st.files, st.files == 1 ? "" : "s", (double)st.bytes / 1e6,
                (unsigned long long)st.lines, (unsigned long long)st.bad_lines,
                (unsigned long long)st.pieces, st.count_s, o.threads, o.threads == 1 ? "" : "s");
        if ((rc = eng_bpe_train(b)) || (rc = eng_bpe_save_json(b, out)))
            snprintf(err, sizeof(err), "%s", eng_bpe_errmsg(b));
    }
    if (rc) {
        fprintf(stderr, "bitdistill tokenizer-train: %s\n", err);
        eng_bpe_free(b);
        return 1;
    }
    eng_bpe_get_stats(b, &st);
    fprintf(stderr,
            "tokenizer-train: %llu distinct words, %d merges in %.2f s; wrote '%s': %d "
            "tokens (256 bytes + %d merged + %d special)\n",
            (unsigned long long)st.words, (int)st.merges, st.merge_s, out, (int)st.vocab,
            (int)st.vocab - 256 - ENG_BPE_N_SPECIAL, ENG_BPE_N_SPECIAL);
    if (st.vocab < o.vocab_size)
        fprintf(stderr,
                "bitdistill tokenizer-train: warning: the vocabulary has %d tokens, not "
                "%d: no pair is left that occurs at least %llu times (give more text or a lower "
                "--min-frequency)\n",
                (int)st.vocab, (int)o.vocab_size,
                (unsigned long long)(o.min_frequency > 1 ? o.min_frequency : 1));
    eng_bpe_free(b);
    return 0;
}
