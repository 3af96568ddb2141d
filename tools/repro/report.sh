#!/bin/bash
# tools/repro/report.sh BITDISTILL RAW OUT_DIR — the tables and plots of docs/results.md from the
# raw results of tools/repro/device.sh (RAW: its results directory, or docs/results/raw.tar.xz).
# Prints the Markdown tables; writes OUT_DIR/*.png with `bitdistill plot`.
set -eu
BD=$1 RAW=$2 OUT=$3
mkdir -p "$OUT"
if [ -f "$RAW" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    tar xJf "$RAW" -C "$tmp"
    RAW=$tmp
fi
R=$RAW/exp/runs

. "$(dirname "$0")/eval-event.sh"
# ev RUN MODEL SPLIT FIELD: a number from the run's eval events
ev() { eval_event "$R/$1/events.jsonl" "$2" "$3" "$4"; }
pct() { awk -v x="$1" 'BEGIN { if (x == "") print "—"; else printf "%.2f", 100 * x }'; }
# mean and sample standard deviation (in points) of the arguments (fractions)
stats() { printf '%s\n' "$@" | awk '{ x[NR] = 100 * $1; s += x[NR] } END { m = s / NR;
    for (i = 1; i <= NR; i++) v += (x[i] - m) ^ 2; printf "%.2f ± %.2f", m, (NR > 1 ? sqrt(v / (NR - 1)) : 0) }'; }
sel=$(cat "$RAW/exp/selected.txt")
fp=$(sed -n 's/.*fp \(sst2-fp[^,]*\),.*/\1/p' <<< "$sel")
bn=$(sed -n 's/.*bitnet \(sst2-bitnet[^,]*\),.*/\1/p' <<< "$sel")
bd=$(sed -n 's/.*bitdistill \(sst2-bitdistill.*\)$/\1/p' <<< "$sel")
seeds() { for s in 1 2 3; do ev "${1%-s1}-s$s" "$2" validation accuracy; done; }

echo "### Table 1: accuracy (%) on the validation files"
echo
echo "| method | SST-2 (3 seeds) | SST-2 seed 1 | MNLI | QNLI |"
echo "|---|---|---|---|---|"
echo "| FP-SFT (teacher) | $(stats $(seeds "$fp" teacher)) | $(pct "$(ev "$fp" teacher validation accuracy)") | $(pct "$(ev mnli-fp-lr3e-4-s1 teacher validation accuracy)") | $(pct "$(ev qnli-fp-lr3e-4-s1 teacher validation accuracy)") |"
echo "| BitNet-SFT | $(stats $(seeds "$bn" student)) | $(pct "$(ev "$bn" student validation accuracy)") | $(pct "$(ev mnli-bitnet-lr1e-3-s1 student validation accuracy)") | $(pct "$(ev qnli-bitnet-lr1e-3-s1 student validation accuracy)") |"
echo "| BitDistill | $(stats $(seeds "$bd" student)) | $(pct "$(ev "$bd" student validation accuracy)") | $(pct "$(ev mnli-bitdistill-lr1e-3-s1 student validation accuracy)") | $(pct "$(ev qnli-bitdistill-lr1e-3-s1 student validation accuracy)") |"
echo
echo "Selected on the SST-2 selection split: $sel."
echo
echo "### Learning-rate search on SST-2 (seed 1): selection split / dev"
echo
echo "| method | lr | selection split | dev |"
echo "|---|---|---|---|"
for m in fp:teacher bitnet:student bitdistill:student; do
    for d in "$R"/sst2-"${m%%:*}"-lr*-s1; do
        n=$(basename "$d")
        printf '| %s | %s | %s | %s |\n' "${m%%:*}" "$(sed -n 's/.*-lr\(.*\)-s1$/\1/p' <<< "$n")" \
            "$(pct "$(ev "$n" "${m#*:}" selection accuracy)")" "$(pct "$(ev "$n" "${m#*:}" validation accuracy)")"
    done
done
echo
echo "### Table 2: CNN/DailyMail (100 validation articles, greedy, 64 new tokens)"
echo
echo "| method | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum | BLEU |"
echo "|---|---|---|---|---|---|"
for row in "FP-SFT (teacher):cnndm-fp-lr3e-4-s1:teacher" "BitNet-SFT:cnndm-bitnet-lr1e-3-s1:student" \
           "BitDistill:cnndm-bitdistill-lr1e-3-s1:student"; do
    IFS=: read -r name run who <<< "$row"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$(pct "$(ev "$run" "$who" validation rouge1)")" \
        "$(pct "$(ev "$run" "$who" validation rouge2)")" "$(pct "$(ev "$run" "$who" validation rougeL)")" \
        "$(pct "$(ev "$run" "$who" validation rougeLsum)")" \
        "$(awk -v x="$(ev "$run" "$who" validation bleu)" 'BEGIN { printf "%.2f", x }')"
done
echo
echo "### Table 5/6: SST-2 ablations (seed 1, BitDistill's selected learning rate)"
echo
echo "| run | SubLN | continued pre-training | LD | AD | SST-2 dev | selection split |"
echo "|---|---|---|---|---|---|---|"
abl() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$3" "$4" "$5" "$6" \
        "$(pct "$(ev "$2" student validation accuracy)")" "$(pct "$(ev "$2" student selection accuracy)")"; }
abl "BitDistill (all stages)" "$bd" yes yes yes yes
abl "no SubLN (stage 1)" sst2-abl-nosubln no yes yes yes
abl "no continued pre-training (stage 2)" sst2-abl-nocpt yes no yes yes
abl "no distillation (stage 3 CE only)" sst2-abl-nodistill yes yes no no
abl "LD only" sst2-abl-ldonly yes yes yes no
abl "AD only" sst2-abl-adonly yes yes no yes
abl "BitNet-SFT (no stage 1, 2, distillation)" "$bn" no no no no
echo
echo "### Relation-loss weight gamma and distilled layer (seed 1)"
echo
echo "| gamma | 1e2 | 1e3 | 1e4 | 1e5 (paper) |"
echo "|---|---|---|---|---|"
echo "| SST-2 dev | $(pct "$(ev sst2-gamma1e2 student validation accuracy)") | $(pct "$(ev sst2-gamma1e3 student validation accuracy)") | $(pct "$(ev sst2-gamma1e4 student validation accuracy)") | $(pct "$(ev "$bd" student validation accuracy)") |"
echo
echo "| distilled layer | 0 | 1 | 2 | 3 | 4 | 5 (last) |"
echo "|---|---|---|---|---|---|---|"
printf '| SST-2 dev |'
for l in 0 1 2 3 4; do printf ' %s |' "$(pct "$(ev sst2-layer$l student validation accuracy)")"; done
printf ' %s |\n' "$(pct "$(ev "$bd" student validation accuracy)")"
{ echo "layer	accuracy"; for l in 0 1 2 3 4; do echo "$l	$(ev sst2-layer$l student validation accuracy)"; done
  echo "5	$(ev "$bd" student validation accuracy)"; } > "$OUT/layers.tsv"

# plots
P=$RAW/pt/events.jsonl
"$BD" plot line --out "$OUT/pretrain.png" --title "Pre-training the demo base (6.8M parameters)" \
    --x tokens --y ce --filter type=step --smooth 10 --ylabel "next-token CE" "train=$P" >/dev/null
"$BD" plot line --out "$OUT/pretrain-heldout.png" --title "Held-out perplexity during pre-training" \
    --x tokens --y perplexity --filter type=eval --logy "held-out=$P" >/dev/null
"$BD" plot line --out "$OUT/sst2-loss.png" --title "SST-2 task stage: CE of the three methods (seed 1)" \
    --x step --y ce --filter type=step --filter stage!=2 --smooth 5 --ylabel "CE" \
    "FP-SFT=$R/$fp/events.jsonl" "BitNet-SFT=$R/$bn/events.jsonl" "BitDistill=$R/$bd/events.jsonl" >/dev/null
"$BD" plot line --out "$OUT/sst2-distill-terms.png" --title "BitDistill stage 3: CE, LD and AD" \
    --x step --y ce,ld,ad --filter type=step --filter stage=3 --logy "$R/$bd/events.jsonl" >/dev/null
"$BD" plot line --out "$OUT/cpt-loss.png" --title "Stage 2: continued pre-training of the ternary student" \
    --x tokens --y ce --filter type=step --filter stage=2 --smooth 5 "cpt=$R/cpt/events.jsonl" >/dev/null
"$BD" plot bar --out "$OUT/accuracy.png" --title "Accuracy by method (validation files)" \
    --ylabel "accuracy %" --ymin 40 \
    "SST-2/FP-SFT=$(pct "$(ev "$fp" teacher validation accuracy)")" \
    "SST-2/BitNet-SFT=$(pct "$(ev "$bn" student validation accuracy)")" \
    "SST-2/BitDistill=$(pct "$(ev "$bd" student validation accuracy)")" \
    "MNLI/FP-SFT=$(pct "$(ev mnli-fp-lr3e-4-s1 teacher validation accuracy)")" \
    "MNLI/BitNet-SFT=$(pct "$(ev mnli-bitnet-lr1e-3-s1 student validation accuracy)")" \
    "MNLI/BitDistill=$(pct "$(ev mnli-bitdistill-lr1e-3-s1 student validation accuracy)")" \
    "QNLI/FP-SFT=$(pct "$(ev qnli-fp-lr3e-4-s1 teacher validation accuracy)")" \
    "QNLI/BitNet-SFT=$(pct "$(ev qnli-bitnet-lr1e-3-s1 student validation accuracy)")" \
    "QNLI/BitDistill=$(pct "$(ev qnli-bitdistill-lr1e-3-s1 student validation accuracy)")" >/dev/null
"$BD" plot bar --out "$OUT/ablations.png" --title "SST-2: accuracy with each stage removed" \
    --ylabel "dev accuracy %" --ymin 75 \
    "BitNet-SFT=$(pct "$(ev "$bn" student validation accuracy)")" \
    "no SubLN=$(pct "$(ev sst2-abl-nosubln student validation accuracy)")" \
    "no CPT=$(pct "$(ev sst2-abl-nocpt student validation accuracy)")" \
    "no distill=$(pct "$(ev sst2-abl-nodistill student validation accuracy)")" \
    "LD only=$(pct "$(ev sst2-abl-ldonly student validation accuracy)")" \
    "AD only=$(pct "$(ev sst2-abl-adonly student validation accuracy)")" \
    "BitDistill=$(pct "$(ev "$bd" student validation accuracy)")" \
    "FP teacher=$(pct "$(ev "$fp" teacher validation accuracy)")" >/dev/null
"$BD" plot line --out "$OUT/layers.png" --title "SST-2: distilled layer (relation loss)" \
    --x layer --y accuracy --ylabel "dev accuracy" "BitDistill=$OUT/layers.tsv" >/dev/null
rm -f "$OUT/layers.tsv"
echo
echo "Plots: $(cd "$OUT" && ls *.png | tr '\n' ' ')"
