/*
 * jobs/results.h — a job's result file: the per-step metrics CSV OpenAI's fine-tuning API
 * attaches to a job (`result_files`), made from the job's stored events.
 *
 * Columns: step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy (OpenAI's), then
 * stage,stage_step,full_valid_loss,full_valid_mean_token_accuracy,loss,lr. `step` counts every
 * optimizer step of the job across its stages (1, 2, ...); train_loss is the step's CE,
 * train_accuracy its token accuracy; the valid_ columns are filled at checkpoint steps (empty
 * elsewhere). Steps a resumed trainer ran again after a restart appear once (the last run).
 */
#ifndef BD_JOBS_RESULTS_H
#define BD_JOBS_RESULTS_H

#include "store/store.h"

/* Reader (loop thread): the CSV text of job id (malloc'd, NUL-terminated), or NULL when out of
 * memory or the store cannot be read. */
char *job_results_csv(struct store *st, const char *id);

#endif
