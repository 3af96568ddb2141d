#!/bin/bash
# tools/summarize/cpu-fallback.sh BITDISTILL CNNDM_DIR OUT_DIR [STEPS] — the summarizer that
# ships today (models/summarize/summarizer.gguf), made on a 2-core CPU when the GPU recipe
# (tools/summarize/recipe.sh through tools/summarize/device.sh) did not finish in its device
# call: BitNet-SFT (ternary QAT, CE only) of the bundled demo teacher (models/demo/teacher: the
# demo base pre-trained on the corpus, then fine-tuned on SST-2) on the 800 CNN/DM training pairs
# as ChatML turns (the same task line and template as the recipe), articles cut to fit 192
# tokens with their start kept, summaries to 64 tokens, STEPS (default 300) steps of 8, lr 3e-3,
# then measured by `bitdistill eval` on the validation articles. No distillation: the CPU had
# time for one run (about 30 minutes on 2 cores). Writes OUT_DIR/run (the job) and OUT_DIR/summarizer.gguf.
set -eu
BD=$1 CNN=$(cd "$2" && pwd) OUT=$3 STEPS=${4:-300}
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT/tokenizer"
OUT=$(cd "$OUT" && pwd)
cp "$top/models/demo/tokenizer.json" "$top/tools/summarize/tokenizer_config.json" "$OUT/tokenizer/"
cat > "$OUT/job.json" <<JOB
{"method": "bitnet_sft", "model": "$top/models/demo/teacher", "tokenizer": "$OUT/tokenizer",
 "seed": 1, "lr": 3e-3,
 "task": {"type": "cnndm", "template": "Summarize this news article.\n\n{text}", "max_target": 64},
 "chat_format": "chatml", "train_file": "$CNN/train.jsonl",
 "max_len": 192, "batch": 8, "steps": $STEPS, "warmup": 4, "weight_decay": 0.01,
 "eval_max_new": 64, "log_every": 1, "checkpoint_every": 0}
JOB
"$BD" train --config "$OUT/job.json" --out "$OUT/run" --device cpu --threads "${THREADS:-2}" \
    --quiet --events-fd 3 3>>"$OUT/events.jsonl"
cp "$OUT/run/student.gguf" "$OUT/summarizer.gguf"
"$BD" eval --model "$OUT/summarizer.gguf" --task cnndm --data "$CNN/validation.jsonl" | tee "$OUT/eval.json"
