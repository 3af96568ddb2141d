/*
 * jobs/better.h — the "activate": "if_better" decision (api/jobs.c, jobs/supervisor.c).
 *
 * The trainer evaluates the student and the model that was active when the job was created (its
 * "baseline") on the same validation examples, and reports both in its done metrics
 * (train/pipeline.c): accuracy for classification (the student as served:
 * "student_gguf"), ROUGE-L for summarization. The student is activated only when its figure is
 * strictly higher, or when there was no active model to beat.
 */
#ifndef BD_JOBS_BETTER_H
#define BD_JOBS_BETTER_H

/*
 * Decide from the trainer's done metrics (JSON text, borrowed; NULL counts as empty). *activate
 * gets 1 or 0. Returns the decision as a new JSON event text (caller frees) or NULL when out of
 * memory: {"type":"activation","policy":"if_better","activated","metric","student","active",
 * "active_model","reason"} (figures null when unknown).
 */
char *job_better_decide(const char *metrics, int *activate);

#endif
