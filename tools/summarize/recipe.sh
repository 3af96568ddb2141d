#!/bin/bash
# tools/summarize/recipe.sh BITDISTILL CORPUS_DIR CNNDM_DIR TOKENIZER_JSON OUT_DIR PRETRAIN_TOKENS
# — the bundled summarizer (models/summarize), from random weights to the student GGUF:
#
#   1. base: tools/pretrain/pretrain.sh with tools/summarize/config.json on CORPUS_DIR
#      (tools/summarize/corpus.sh), PRETRAIN_TOKENS tokens;
#   2. teachers: FP-SFT of the base on CNN/DM training pairs as ChatML turns (user: the task
#      line and the article, cut to fit 512 tokens with its start kept; assistant: the summary)
#      at two learning rates; the one with the best selection-split ROUGE (1 + 2 + L) is kept;
#   3. students: BitDistill from the base (SubLN, continued pre-training on the corpus,
#      distillation from the kept teacher) at two learning rates, chosen the same way;
#   4. the kept student's file measured by `bitdistill eval` on the validation articles.
#
# Model selection never looks at the validation file: the last 50 of the 800 training pairs
# form the selection split and the other 750 are trained on. Every run is a `bitdistill train`
# job in OUT_DIR/runs/NAME (job.json, events.jsonl, log.txt); OUT_DIR/selected.txt names the
# kept runs, OUT_DIR/student.gguf is the result, OUT_DIR/eval.json its figures. The tokenizer
# directory (TOKENIZER_JSON + tools/summarize/tokenizer_config.json, whose ChatML chat_template
# travels into the GGUF) is OUT_DIR/tokenizer. Environment: DEVICE (cuda:0, or cpu), THREADS
# (CPU threads in all, default nproc), SCALE (full, or smoke: minutes on a CPU, checks the
# plumbing only), CPT_TOKENS (continued pre-training, default 10,485,760), CONFIG (the base's
# config.json, default tools/summarize/config.json; a smaller one for smoke runs).
set -u
BD=$1 CORPUS=$2 CNN=$3 TOK=$4 OUT=$5 PT_TOKENS=$6
top=$(cd "$(dirname "$0")/../.." && pwd)
DEVICE=${DEVICE:-cuda:0} THREADS=${THREADS:-$(nproc)} SCALE=${SCALE:-full}
export NCCL_NVLS_ENABLE=0
mkdir -p "$OUT/runs" "$OUT/data" "$OUT/tokenizer"
OUT=$(cd "$OUT" && pwd) CORPUS=$(cd "$CORPUS" && pwd) CNN=$(cd "$CNN" && pwd)
if [ "$SCALE" = smoke ]; then
    EP=1 MAXTR=24 MAXEV=4 CPT=${CPT_TOKENS:-16384} CPT_LEN=128 BATCH=4 MAXLEN=128
else
    EP=3 MAXTR=0 MAXEV=0 CPT=${CPT_TOKENS:-10485760} CPT_LEN=512 BATCH=16 MAXLEN=512
fi
cp "$TOK" "$OUT/tokenizer/tokenizer.json"
cp "$top/tools/summarize/tokenizer_config.json" "$OUT/tokenizer/"
head -n 750 "$CNN/train.jsonl" > "$OUT/data/train.jsonl"
tail -n +751 "$CNN/train.jsonl" > "$OUT/data/selection.jsonl"
. "$top/tools/repro/eval-event.sh"

echo "== 1. base ($(date +%T))"
if [ ! -f "$OUT/pt/model/model.safetensors" ]; then
    CONFIG=${CONFIG:-$top/tools/summarize/config.json} THREADS=$THREADS "$top/tools/pretrain/pretrain.sh" \
        "$BD" "$CORPUS" "$TOK" "$OUT/pt" "$PT_TOKENS" "$DEVICE" > "$OUT/pt.log" 2>&1 ||
        { tail -5 "$OUT/pt.log"; echo "pre-training failed"; exit 1; }
fi
cp "$top/tools/summarize/tokenizer_config.json" "$OUT/pt/model/"
grep '"type":"eval"' "$OUT/pt/events.jsonl" | tail -1 | cut -c1-200

# job NAME METHOD LR MODEL [extra JSON members]: OUT/runs/NAME/job.json
job() {
    local d=$OUT/runs/$1
    mkdir -p "$d"
    cat > "$d/job.json" <<JOB
{"method": "$2", "model": "$4", "tokenizer": "$OUT/tokenizer", "seed": 1, "lr": $3,
 "task": {"type": "cnndm", "template": "Summarize this news article.\n\n{text}", "max_target": 128},
 "chat_format": "chatml",
 "train_file": "$OUT/data/train.jsonl",$VALJ
 "selection_file": "$OUT/data/selection.jsonl", "max_train_examples": $MAXTR,
 "max_eval_examples": $MAXEV, "max_len": $MAXLEN, "batch": $BATCH, "epochs": $EP, "warmup": -1,
 "weight_decay": 0.01, "eval_max_new": 64, "log_every": 10, "checkpoint_every": 0,
 "continue_pretrain": {"corpus": "$CORPUS/train.txt", "tokens": $CPT, "max_len": $CPT_LEN,
                       "batch": 32, "lr": 1e-3, "epochs": 1}${5:+, $5}}
JOB
}
# run NAME...: the runs at once, the CPU threads shared among them
run() {
    local th=$(( THREADS / $# )) pids=() n
    [ "$th" -ge 1 ] || th=1
    for n in "$@"; do
        "$BD" train --config "$OUT/runs/$n/job.json" --out "$OUT/runs/$n" --device "$DEVICE" \
            --threads "$th" --quiet --events-fd 3 3>>"$OUT/runs/$n/events.jsonl" \
            > "$OUT/runs/$n/log.txt" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        echo "${@:$((i + 1)):1}: rc $? $(tail -1 "$OUT/runs/${@:$((i + 1)):1}/log.txt" | cut -c1-160)"
    done
}
# best WHO NAME...: the run whose WHO (teacher or student) has the best selection-split
# ROUGE-1 + ROUGE-2 + ROUGE-L (the figures of every run are printed)
best() {
    local who=$1 n
    shift
    for n in "$@"; do
        local ev=$OUT/runs/$n/events.jsonl r1 r2 rl
        r1=$(eval_event "$ev" "$who" selection rouge1) r2=$(eval_event "$ev" "$who" selection rouge2)
        rl=$(eval_event "$ev" "$who" selection rougeL)
        [ -n "$r1" ] && [ -n "$r2" ] && [ -n "$rl" ] || continue
        echo "$(awk -v a="$r1" -v b="$r2" -v c="$rl" 'BEGIN { printf "%.6f", a + b + c }') $n" >&2
        echo "$(awk -v a="$r1" -v b="$r2" -v c="$rl" 'BEGIN { printf "%.6f", a + b + c }') $n"
    done | sort -g | tail -1 | cut -d' ' -f2
}

echo "== 2. teachers ($(date +%T))"
# the teachers' validation figures are for the card; the students are chosen on the selection
# split alone and the kept one's file is measured in step 4 (no time spent on the others)
VALJ=" \"validation_file\": \"$CNN/validation.jsonl\","
for lr in 3e-4 1e-3; do job "teacher-lr$lr" fp16_sft "$lr" "$OUT/pt/model"; done
run teacher-lr3e-4 teacher-lr1e-3
T=$(best teacher teacher-lr3e-4 teacher-lr1e-3)
[ -n "$T" ] || { echo "no teacher finished"; exit 1; }
echo "teacher: $T"
cp "$top/tools/summarize/tokenizer_config.json" "$OUT/runs/$T/teacher/"

echo "== 3. students ($(date +%T))"
VALJ=
for lr in 1e-3 3e-3; do
    job "student-lr$lr" bitdistill "$lr" "$OUT/pt/model" "\"teacher\": \"$OUT/runs/$T/teacher\""
done
run student-lr1e-3 student-lr3e-3
S=$(best student student-lr1e-3 student-lr3e-3)
[ -n "$S" ] || { echo "no student finished"; exit 1; }
echo "student: $S"
printf 'teacher %s\nstudent %s\n' "$T" "$S" > "$OUT/selected.txt"
cp "$OUT/runs/$S/student.gguf" "$OUT/student.gguf"

echo "== 4. the student file on the validation articles ($(date +%T))"
"$BD" eval --model "$OUT/student.gguf" --task cnndm --data "$CNN/validation.jsonl" \
    --max "$MAXEV" --threads "$THREADS" | tee "$OUT/eval.json"
echo "== done ($(date +%T))"
