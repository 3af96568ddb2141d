/*
 * train/cast.c — `bitdistill cast --model DIR --out DIR --dtype bf16|f32`: rewrite an HF
 * checkpoint's weights in another dtype (config.json with torch_dtype, tokenizer.json copied).
 * The bundled demo teacher is stored this way in bf16, half the size of the trainer's fp32.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/err.h"
#include "train/model.h"
#include "train/pipeline.h"

int trn_cli_cast(int argc, char **argv)
{
    static const struct option opts[] = {{"model", 1, 0, 'm'},
                                         {"out", 1, 0, 'o'},
                                         {"dtype", 1, 0, 'd'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL, *dtype = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': in = optarg; break;
        case 'o': out = optarg; break;
        case 'd': dtype = optarg; break;
        case 'h':
            printf("usage: bitdistill cast --model DIR --out DIR --dtype bf16|f32\n"
                   "Rewrites an HF checkpoint (config.json + model.safetensors, SubLN kept) with "
                   "its weights in bf16 or f32;\ntokenizer.json is copied along.\n");
            return 0;
        default: return 2;
        }
    }
    if (!in || !out || !dtype || (strcmp(dtype, "bf16") && strcmp(dtype, "f32"))) {
        fprintf(stderr, "usage: bitdistill cast --model DIR --out DIR --dtype bf16|f32\n");
        return 2;
    }
    char err[ENG_ERR_LEN] = "", from[4200], to[4200];
    struct trn_model *m = NULL;
    int rc = trn_model_load_hf(in, &m, err);
    if (!rc)
        rc = trn_model_save_hf_as(m, out, !strcmp(dtype, "bf16"), err);
    trn_model_free(m);
    snprintf(from, sizeof(from), "%s/tokenizer.json", in);
    snprintf(to, sizeof(to), "%s/tokenizer.json", out);
    if (!rc && access(from, R_OK) == 0) /* a checkpoint without tokenizer.json is fine */
        rc = trn_copy_file(from, to, err);
    if (rc) {
        fprintf(stderr, "bitdistill cast: %s\n", err);
        return 1;
    }
    return 0;
}
