/*
 * engine/cli.h — the engine's subcommands of the `bitdistill` CLI (listed in cmd/cli.c).
 * Each is `int fn(int argc, char **argv)` with argv[0] the subcommand; returns 0 ok, 1 failure,
 * 2 usage error, and prints its own errors on stderr.
 */
#ifndef BD_ENGINE_CLI_H
#define BD_ENGINE_CLI_H

int eng_cli_init(int argc, char **argv);     /* random-init HF model from a config.json */
int eng_cli_tokenize(int argc, char **argv); /* stdin text -> ids, or --decode ids -> text */
int eng_cli_forward(int argc, char **argv);  /* logits of all positions, raw float32 [T, vocab] */
int eng_cli_generate(int argc, char **argv); /* greedy decoding */
int eng_cli_convert(int argc, char **argv);  /* HF checkpoint -> ternary student GGUF */
int eng_cli_classify(int argc, char **argv); /* verbalizer classification */

#endif
