#!/bin/bash
# tools/summarize/device.sh BUNDLE SECONDS — the GPU machine's side of the summarizer's recipe,
# in one device call of at most SECONDS: unpack the bundle (tools/summarize/bundle.sh), measure
# pre-training tokens/s for 40 steps, size the base's pre-training to what the time left allows
# after the fine-tuning and distillation runs (RESERVE seconds, default 200; at most 10 passes
# over the corpus), run tools/summarize/recipe.sh, and put into $OUT the student GGUF, the logs
# and events of every run (results.tar.xz) and the pre-trained base in bf16 (base.tar.xz.*).
set -u
t0=$(date +%s)
BUNDLE=$(cd "$1" && pwd) SECONDS_ALL=$2 RESERVE=${RESERVE:-200}
top=$(cd "$(dirname "$0")/../.." && pwd)
S=${STATE:-/root/sum}
export LD_LIBRARY_PATH=$S/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} NCCL_NVLS_ENABLE=0
BD=$S/bin/bitdistill
mkdir -p "$S/bin" "$S/corpus" "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
echo "== setup ($(date +%T))"
xz -dc "$BUNDLE/bin/bitdistill.xz" > "$BD" && chmod +x "$BD"
tar xJf "$BUNDLE/lib.tar.xz" -C "$S"
xz -dc -T0 "$BUNDLE/corpus/train.txt.xz" > "$S/corpus/train.txt"
cp "$BUNDLE/corpus/heldout.txt" "$S/corpus/"
nvidia-smi -L; nproc; "$BD" --version || exit 1

collect() {
    (cd "$S/r" && tar cJf "$OUT/results.tar.xz" --ignore-failed-read pt.log pt/events.jsonl \
        pt/job.json selected.txt eval.json \
        $(ls -d runs/*/job.json runs/*/events.jsonl runs/*/log.txt runs/*/metrics.json 2>/dev/null) \
        2>/dev/null)
    [ -f "$S/r/student.gguf" ] && cp "$S/r/student.gguf" "$OUT/"
    cp "$S/probe.log" "$OUT/" 2>/dev/null
    ls -la "$OUT"
}

echo "== probe ($(date +%T))"
CONFIG=$top/tools/summarize/config.json THREADS=8 "$top/tools/pretrain/pretrain.sh" "$BD" \
    "$S/corpus" "$BUNDLE/tokenizer.json" "$S/probe" 655360 > "$S/probe.log" 2>&1
tps=$(grep '"type":"step"' "$S/probe/events.jsonl" | tail -10 |
    sed -n 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/p' | awk '{ s += $1; n++ } END { if (n) printf "%.0f\n", s / n }')
[ -n "$tps" ] || { tail -20 "$S/probe.log"; echo "probe failed"; exit 1; }
left=$(( SECONDS_ALL - ($(date +%s) - t0) - RESERVE - 40 )) # 40 s: start-up, reading the corpus
ntok=$(( $(stat -c %s "$S/corpus/train.txt") * 100 / 346 ))
tokens=$(awk -v t="$tps" -v s="$left" -v n="$ntok" 'BEGIN { x = t * s; if (x > 10 * n) x = 10 * n;
    if (x < 16384 * 200) x = 16384 * 200; printf "%d\n", int(x / 16384) * 16384 }')
echo "pre-training: $tps tokens/s, $left s left for it: $tokens tokens"

rm -rf "$S/r"
mkdir -p "$S/r"
# should the runs take longer than planned, what exists 20 s before the call's end comes back
( sleep $(( SECONDS_ALL - 20 - ($(date +%s) - t0) )); echo "== out of time: collecting"; collect ) &
dog=$!
THREADS=$(nproc) "$top/tools/summarize/recipe.sh" "$BD" "$S/corpus" "$BUNDLE/cnndm" \
    "$BUNDLE/tokenizer.json" "$S/r" "$tokens"
echo "recipe: rc $? after $(( $(date +%s) - t0 )) s"
kill "$dog" 2>/dev/null
collect
if [ -f "$S/r/pt/model/model.safetensors" ]; then
    "$BD" cast --model "$S/r/pt/model" --out "$S/base" --dtype bf16 >/dev/null &&
        cp "$S/r/pt/model/tokenizer_config.json" "$S/base/" &&
        (cd "$S" && tar cf - base | xz -T0 -3 | split -b 15M - "$OUT/base.tar.xz.")
fi
ls -la "$OUT"; echo "== end after $(( $(date +%s) - t0 )) s"
