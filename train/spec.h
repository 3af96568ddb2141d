/*
 * train/spec.h — the one schema of a training job (the trainer's job.json, docs/train.md
 * "Job config"). `bitdistill train` checks every config through it before anything else, and
 * the daemon's API checks the job.json it writes through the same function, so a key that one
 * of them would ignore is refused by both, by name.
 */
#ifndef BD_TRAIN_SPEC_H
#define BD_TRAIN_SPEC_H

#include <jansson.h>
#include <stddef.h>

/*
 * Check a parsed job config (borrowed) against the schema: every key at every level (the top,
 * the task object, baseline, the stage objects teacher_sft, continue_pretrain, pretrain and
 * distill) must be one the trainer reads, with a value of its type and range. Returns 0, or
 * ENG_ECONFIG with err (ENG_ERR_LEN) a message naming the key and the value ("job config:
 * unknown key 'distill.lamda'", "job config: 'distill.tau' must be a number > 0, not -1") and
 * where (wlen bytes; may be NULL) the key's path ("distill.lamda", "" for the whole config).
 */
int trn_spec_check(const json_t *job, char *where, size_t wlen, char *err);

#endif
