/*
 * train/ckpt.h — training checkpoints: one directory per (stage, step) under
 * ROOT/checkpoints/, written under a temporary name, every file fsynced, renamed into place,
 * the parent fsynced, then ROOT/checkpoints/LATEST replaced (temp + rename) to name it.
 *
 * A checkpoint holds state.json (stage, step, tokens, data position, RNG state, the job's
 * sha256 and whatever the caller adds), params.bin (the trained model's flat fp32 parameters),
 * adam_m.bin and adam_v.bin (AdamW moments), all raw little-endian float32.
 */
#ifndef BD_JOBS_TRAIN_CKPT_H
#define BD_JOBS_TRAIN_CKPT_H

#include <jansson.h>
#include <stddef.h>

/* Write a checkpoint named ckpt-STAGE-STEP; state is borrowed; path (4096 bytes) gets its dir.
 * Older checkpoints beyond `keep` (>= 1) are removed. */
int trn_ckpt_save(const char *root, int stage, long step, json_t *state, const float *params,
                  const float *m, const float *v, size_t n, int keep, char *path, char *err);

/* Read the checkpoint LATEST names: *state (new reference), and n floats into params, m, v
 * (caller-allocated; the files must hold exactly n floats). ENG_EMISSING when there is none. */
int trn_ckpt_load_latest(const char *root, json_t **state, float *params, float *m, float *v,
                         size_t n, char *path, char *err);

/* Only the state of LATEST (to learn the stage and the model shape before loading). */
int trn_ckpt_latest_state(const char *root, json_t **state, char *err);

#endif
