/*
 * cmd/cli.c — main() of the `bitdistill` CLI: dispatches to the subcommand table.
 * `bitdistill --help` lists every subcommand; `bitdistill CMD --help` documents one.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cmd/cli.h"
#include "engine/bpetrain.h"
#include "engine/cli.h"
#include "plot/cli.h"
#include "train/dist.h"
#include "train/pipeline.h"

static const struct cmd_entry cli_cmds[] = {
    {"serve", "run the daemon in the foreground (same options as bitdistilld)", cmd_serve},
    {"keys", "manage API keys: create --scope admin|infer, list, revoke ID", cmd_keys},
    {"init", "write a random-initialised HF model from a config.json", eng_cli_init},
    {"tokenizer-train", "train a byte-level BPE tokenizer.json (Qwen2 shape) on text files",
     eng_cli_tokenizer_train},
    {"tokenize", "text on stdin -> token ids (--decode: ids -> text)", eng_cli_tokenize},
    {"forward", "logits of all positions as raw float32 [T, vocab]", eng_cli_forward},
    {"generate", "greedy text generation from a prompt", eng_cli_generate},
    {"classify", "label probabilities of texts by verbalizer (one forward pass each)",
     eng_cli_classify},
    {"convert", "HF checkpoint -> ternary student GGUF (--ternary: post-training absmean)",
     eng_cli_convert},
    {"train",
     "run a training job (fp16_sft | bitnet_sft | bitdistill | pretrain) from a JSON config",
     trn_cli_train},
    {"cast", "rewrite an HF checkpoint with bf16 or f32 weights", trn_cli_cast},
    {"eval", "accuracy or ROUGE/BLEU of a student file on a dataset (as training's stage 4)",
     trn_cli_eval},
    {"dist-check", "under a launcher (srun -N2 ...): connect the ranks, print their GPUs",
     trn_cli_dist_check},
    {"bench", "benchmarks: `bench kernels` (GEMV/GEMM vs STREAM and sgemm)", bench_cli_main},
    {"plot", "PNG charts: `plot line` (loss curves from events), `plot bar` (accuracy per method)",
     plot_cli_main},
};

static void cli_usage(FILE *f)
{
    fprintf(f, "usage: bitdistill COMMAND [OPTIONS]\n\n"
               "Make and serve 1.58-bit (ternary) LLM students with BitNet Distillation.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++)
        fprintf(f, "  %-12s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
    fprintf(f, "\n`bitdistill COMMAND --help` shows a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        cli_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("bitdistill %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++)
        if (!strcmp(argv[1], cli_cmds[i].name))
            return cli_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "bitdistill: unknown command '%s' (see bitdistill --help)\n", argv[1]);
    return 2;
}
