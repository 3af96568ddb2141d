#!/bin/bash
# tools/repro/experiments.sh — the paper's Tables 1, 2, 5, 6 in miniature (docs/results.md).
#
#   tools/repro/experiments.sh BITDISTILL BASE_DIR DATA_DIR OUT_DIR [full|smoke]
#
# BASE_DIR: the pretrained base model (HF directory with tokenizer.json, from
# tools/pretrain/pretrain.sh). DATA_DIR: a copy of ../shared/data (sst2/glue, mnli, qnli, cnndm)
# plus the pre-training corpus as DATA_DIR/pretrain/train.txt. Every run is a `bitdistill train`
# job in OUT_DIR/runs/NAME (job.json, events.jsonl, metrics.json, log.txt); a run whose
# metrics.json exists is skipped and an interrupted one resumes from its checkpoint, so the
# script can be killed and started again. Environment: DEVICE (default cuda:0), JOBS (runs at
# once, default 4), THREADS (CPU threads per run, default 4).
#
# Plan (model selection on a slice of the SST-2 training set, never on the reported dev set):
#   1. Continued pre-training (once); SST-2: FP-SFT and BitNet-SFT at 3 learning rates (seed
#      1); MNLI, QNLI, CNN/DM: FP-SFT and BitNet-SFT at fixed rates (no search: budget).
#   2. SST-2 BitDistill at 3 rates from the selected FP teacher; MNLI/QNLI/CNN-DM BitDistill;
#      seeds 2 and 3 of the selected FP-SFT and BitNet-SFT.
#   3. Seeds 2 and 3 of the selected BitDistill; ablations (Table 5: no SubLN, no continued
#      pre-training, no distillation; Table 6: LD only, AD only); gamma and layer sweeps.
set -u
BD=$1 BASE=$2 DATA=$3 OUT=$4 SCALE=${5:-full}
DEVICE=${DEVICE:-cuda:0} JOBS=${JOBS:-4} THREADS=${THREADS:-4}
mkdir -p "$OUT/runs" "$OUT/data"
OUT=$(cd "$OUT" && pwd)
export NCCL_NVLS_ENABLE=0

if [ "$SCALE" = smoke ]; then # minutes on a laptop CPU: checks the plumbing, not the method
    EP=0.02 CPT=20000 CPT_LEN=128 EVAL=64 SUM_EP=0.05 GLUE_EP=0.05 DEVICE=${DEVICE/cuda:0/cpu}
else
    EP=1 CPT=20000000 CPT_LEN=512 EVAL=0 SUM_EP=2 GLUE_EP=3
fi

# SST-2 selection split: every 30th training phrase (seeded by position, fixed)
if [ ! -f "$OUT/data/sst2-sel.tsv" ]; then
    awk -v out="$OUT/data" 'NR == 1 { print > (out "/sst2-train.tsv"); print > (out "/sst2-sel.tsv"); next }
        { if (NR % 30 == 0) print > (out "/sst2-sel.tsv"); else print > (out "/sst2-train.tsv") }' \
        "$DATA/sst2/glue/train.tsv"
fi

# task NAME -> the task's files and budgets as JSON members
task_json() {
    case $1 in
    sst2) printf '"task":"sst2","train_file":"%s","validation_file":"%s","selection_file":"%s",' \
            "$OUT/data/sst2-train.tsv" "$DATA/sst2/glue/dev.tsv" "$OUT/data/sst2-sel.tsv"
          printf '"max_len":128,"epochs":%s,"batch":32' "$EP" ;;
    mnli|qnli) printf '"task":"%s","train_file":"%s","validation_file":"%s",' "$1" \
            "$DATA/$1/train.json" "$DATA/$1/validation.json"
          printf '"max_len":256,"epochs":%s,"batch":32' "$GLUE_EP" ;;
    cnndm) printf '"task":"cnndm","train_file":"%s","validation_file":"%s",' \
            "$DATA/cnndm/train.jsonl" "$DATA/cnndm/validation.jsonl"
          printf '"max_len":384,"epochs":%s,"batch":16,"eval_max_new":64' "$SUM_EP" ;;
    esac
}

# job NAME METHOD TASK LR SEED MODEL CPT_TOKENS [extra JSON members]: write OUT/runs/NAME/job.json
job() {
    local name=$1 method=$2 task=$3 lr=$4 seed=$5 model=$6 cpt=$7 extra=${8:-}
    local d=$OUT/runs/$name
    mkdir -p "$d"
    printf '{"method":"%s","model":"%s","seed":%s,"lr":%s,%s,"max_eval_examples":%s,' \
        "$method" "$model" "$seed" "$lr" "$(task_json "$task")" "$EVAL" > "$d/job.json"
    printf '"warmup":-1,"weight_decay":0.01,"log_every":20,"checkpoint_every":500,' >> "$d/job.json"
    printf '"keep_checkpoints":1,"continue_pretrain":{"corpus":"%s","tokens":%s,"max_len":%s,' \
        "$DATA/pretrain/train.txt" "$cpt" "$CPT_LEN" >> "$d/job.json"
    printf '"batch":32,"lr":1e-3,"epochs":1}%s}\n' "${extra:+,$extra}" >> "$d/job.json"
    echo "$name"
}

# run NAME: train (resuming) unless done; prints NAME and its outcome
run() {
    local d=$OUT/runs/$1 res=--resume
    [ -f "$d/metrics.json" ] && return 0
    [ -d "$d/checkpoints" ] || res=
    local t0=$(date +%s)
    "$BD" train --config "$d/job.json" --out "$d" --device "$DEVICE" --threads "$THREADS" \
        --quiet $res --events-fd 3 3>>"$d/events.jsonl" >"$d/log.txt" 2>&1
    echo "$1: rc $? in $(( $(date +%s) - t0 )) s"
}
export -f run
export BD OUT DEVICE THREADS

run_all() { xargs -r -P "$JOBS" -I{} bash -c 'run {}'; }

. "$(dirname "$0")/eval-event.sh"
# metric NAME MODEL SPLIT FIELD: the number from the run's eval event (empty when missing)
metric() { eval_event "$OUT/runs/$1/events.jsonl" "$2" "$3" "$4"; }

# best PREFIX MODEL: the run NAME among PREFIX-lr* with the highest selection accuracy
best() {
    for d in "$OUT"/runs/"$1"-lr*-s1; do
        n=$(basename "$d")
        echo "$(metric "$n" "$2" selection accuracy) $n"
    done | sort -g | tail -1 | cut -d' ' -f2
}
lr_of() { sed -n 's/.*-lr\(.*\)-s[0-9]*$/\1/p' <<< "$1"; }

# The continued pre-training of stage 2 depends on neither the task nor the stage-3 settings
# (same base, SubLN, corpus and order), so it runs once ("cpt", saved with save_cpt) and the
# BitDistill runs start stage 3 from its student: the same computation as running stage 2 in
# each run. The no-SubLN ablation runs its own stage 2.
CPTD=$OUT/runs/cpt/student-cpt
sft() { job "$1" "$2" "$3" "$4" "$5" "$BASE" 0; }                 # sft NAME METHOD TASK LR SEED
dist() { job "$1" bitdistill "$2" "$3" "$4" "$CPTD" 0 "\"teacher\":\"$5\"${6:+,$6}"; } # NAME TASK LR SEED TEACHER [extra]

echo "== phase 1: SFT baselines, continued pre-training"
{
    job cpt bitdistill sst2 1e-3 1 "$BASE" "$CPT" \
        "\"teacher\":\"$BASE\",\"save_cpt\":true,\"distill\":{\"steps\":1,\"lambda\":0,\"gamma\":0}"
    for lr in 1e-4 3e-4 1e-3; do sft "sst2-fp-lr$lr-s1" fp16_sft sst2 "$lr" 1; done
    for lr in 3e-4 1e-3 3e-3; do sft "sst2-bitnet-lr$lr-s1" bitnet_sft sst2 "$lr" 1; done
    for t in mnli qnli cnndm; do
        sft "$t-fp-lr3e-4-s1" fp16_sft "$t" 3e-4 1
        sft "$t-bitnet-lr1e-3-s1" bitnet_sft "$t" 1e-3 1
    done
} | run_all

fp=$(best sst2-fp teacher) bn=$(best sst2-bitnet student)
echo "selected: $fp, $bn"
T=$OUT/runs/$fp/teacher
echo "== phase 2: BitDistill, seeds of the baselines"
{
    for lr in 3e-4 1e-3 3e-3; do dist "sst2-bitdistill-lr$lr-s1" sst2 "$lr" 1 "$T"; done
    for t in mnli qnli cnndm; do dist "$t-bitdistill-lr1e-3-s1" "$t" 1e-3 1 "$OUT/runs/$t-fp-lr3e-4-s1/teacher"; done
    for s in 2 3; do
        sft "sst2-fp-lr$(lr_of "$fp")-s$s" fp16_sft sst2 "$(lr_of "$fp")" "$s"
        sft "sst2-bitnet-lr$(lr_of "$bn")-s$s" bitnet_sft sst2 "$(lr_of "$bn")" "$s"
    done
} | run_all

bd=$(best sst2-bitdistill student)
lr=$(lr_of "$bd")
echo "selected: $bd"
echo "== phase 3: BitDistill seeds, ablations, sweeps"
{
    for s in 2 3; do dist "sst2-bitdistill-lr$lr-s$s" sst2 "$lr" "$s" "$T"; done
    job sst2-abl-nosubln bitdistill sst2 "$lr" 1 "$BASE" "$CPT" "\"teacher\":\"$T\",\"subln\":false"
    job sst2-abl-nocpt bitdistill sst2 "$lr" 1 "$BASE" 0 "\"teacher\":\"$T\""
    dist sst2-abl-nodistill sst2 "$lr" 1 "$T" '"distill":{"lambda":0,"gamma":0}'
    dist sst2-abl-ldonly sst2 "$lr" 1 "$T" '"distill":{"gamma":0}'
    dist sst2-abl-adonly sst2 "$lr" 1 "$T" '"distill":{"lambda":0}'
    for g in 1e2 1e3 1e4; do dist "sst2-gamma$g" sst2 "$lr" 1 "$T" "\"distill\":{\"gamma\":$g}"; done
    for l in 0 1 2 3 4; do dist "sst2-layer$l" sst2 "$lr" 1 "$T" "\"distill\":{\"layer\":$l}"; done
} | run_all
echo "selected: fp $fp, bitnet $bn, bitdistill $bd" > "$OUT/selected.txt"
echo "== done: $(ls "$OUT"/runs/*/metrics.json 2>/dev/null | wc -l) runs finished"
