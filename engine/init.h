/*
 * engine/init.h — random-initialised Hugging Face checkpoints (`bitdistill init`).
 */
#ifndef BD_ENGINE_INIT_H
#define BD_ENGINE_INIT_H

#include <stdint.h>

/* Validate config_path (a config.json), then write out_dir/config.json (the input plus
 * torch_dtype) and out_dir/model.safetensors (bf16 or fp32). */
int eng_init_write(const char *config_path, const char *out_dir, uint64_t seed, int bf16,
                   char *err);

#endif
