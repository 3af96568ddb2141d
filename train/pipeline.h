/*
 * train/pipeline.h — the whole BitDistill job (`bitdistill train`): parse and validate a
 * job config, run the stages, write checkpoints, evaluate, export the student GGUF.
 *
 * Job config (JSON; everything but method/model/train_file has a default):
 *   {"method": "bitdistill" | "bitnet_sft" | "fp16_sft",
 *    "model": HF dir (base: the teacher before SFT and the student's initialisation),
 *    "teacher": HF dir of an already fine-tuned teacher (skips stage 0), optional,
 *    "tokenizer": tokenizer.json (default: model dir),
 *    "task": "sst2" | "mnli" | "qnli" | "cnndm" or {"type", "template", "labels",
 *            "verbalizers", "max_target"},
 *    "train_file", "validation_file", "max_train_examples", "max_eval_examples",
 *    "seed": 1, "threads": N, "max_len": 512, "batch": 32, "grad_accum": 1,
 *    "checkpoint_every": 0 (steps; 0: only at stage ends), "log_every": 1,
 *    "lr_multiplier": 1 (scales every stage's lr and min_lr),
 *    "chat_format": "chatml" (classification as generative SFT in ChatML, data.h),
 *    "head": "q8" | "q4" (student file's embedding/head format), "eval_max_new": 64,
 *    "teacher_sft": {stage}, "continue_pretrain": {stage + "corpus", "tokens"},
 *    "distill": {stage + "lambda", "gamma", "tau", "layer" (int, "last", "all"),
 *                "split_heads", "relation": "cosine"|"scaled", "t_r", "gamma_warmup"}}
 *   where {stage} = {"epochs", "steps", "lr", "min_lr", "warmup", "weight_decay", "clip",
 *   "batch", "grad_accum", "max_len"} overriding the top-level values.
 *   Defaults (DESIGN.md §1): classification lambda 10, gamma 1e5; summarization lambda 1,
 *   gamma 1e3; tau 5; layer last; split_heads 1... (see docs/train.md).
 *
 * Stages: 0 teacher SFT (fp16_sft, bitdistill without "teacher"); 1 SubLN insertion
 * (bitdistill); 2 continued pre-training on the corpus (bitdistill, when tokens > 0);
 * 3 task fine-tuning: distillation (bitdistill) or CE only (bitnet_sft); 4 evaluation + export.
 *
 * Events (--events-fd N): one JSON object per line, flushed per line:
 *   {"type":"stage","stage":S,"name":"teacher_sft"|"subln"|"continue_pretrain"|"distill"|
 *        "bitnet_sft"|"eval_export","status":"start"|"end","steps":TOTAL}
 *   {"type":"step","stage":S,"step":K,"steps":TOTAL,"tokens":T,"ce","ld","ad","loss","lr",
 *        "grad_norm","tokens_per_s","gamma","acc" (token accuracy; CPU only)}
 *   {"type":"checkpoint","stage":S,"step":K,"path":DIR,"metrics":{"step","train_loss" (CE),
 *        "train_mean_token_accuracy" (CPU only), "valid_loss","valid_mean_token_accuracy"
 *        (first batch of the validation set, stages 0 and 3), "full_valid_loss",
 *        "full_valid_mean_token_accuracy" (whole validation set, at a stage's end)}}
 *   {"type":"paused","stage":S,"step":K,"steps":TOTAL}  (SIGUSR1: after the current step a
 *        checkpoint is written and the trainer exits with status 4; --resume continues)
 *   {"type":"eval","stage":4,"model":"teacher"|"student"|"student_gguf","accuracy" |
 *        "rouge1","rouge2","rougeL","rougeLsum","bleu","n":EXAMPLES}
 *   {"type":"message","message":TEXT}
 *   {"type":"done","student":PATH|null,"teacher":PATH|null,"metrics":{...}}
 *   {"type":"error","message":TEXT}   (then exit status 1)
 * Output directory: student.gguf, student-hf/ (latent fp32 + SubLN), teacher/ (when trained),
 * checkpoints/ckpt-S-STEP/ + checkpoints/LATEST, metrics.json.
 */
#ifndef BD_JOBS_TRAIN_PIPELINE_H
#define BD_JOBS_TRAIN_PIPELINE_H

struct trn_run_opts {
    const char *config; /* JSON file path */
    const char *out;    /* output directory (created) */
    int threads;        /* 0: config's or 1 */
    int events_fd;      /* -1: none */
    int resume;         /* continue from out/checkpoints/LATEST */
    long stop_after;    /* testing: exit(3) after this many optimizer steps (0: off) */
    int progress;       /* progress line on stderr */
    const char *device; /* NULL or "cpu": CPU; "cuda" or "cuda:K": GPU K (backend.h) */
};

/* Run a job. Returns 0, or a negative status (the message is printed and sent as an event). */
int trn_run(const struct trn_run_opts *o);

/* `bitdistill train --config JOB.json --out DIR [--threads N] [--device cpu|cuda:K]
 *  [--events-fd N] [--resume]`: 0 ok, 1 failure, 2 usage. */
int trn_cli_train(int argc, char **argv);
/* Copy file from to to (replacing it); 0 or ENG_EIO with a message naming both. */
int trn_copy_file(const char *from, const char *to, char *err);
/* `bitdistill eval --model STUDENT.gguf --task T --data FILE`: the stage-4 figures of a student
 * file (accuracy, or ROUGE and BLEU of greedy summaries) as one JSON line: 0 ok, 1, 2 usage. */
int trn_cli_eval(int argc, char **argv);
/* `bitdistill cast`: an HF checkpoint rewritten in bf16 or f32 (cast.c). */
int trn_cli_cast(int argc, char **argv);

#endif
