#!/bin/bash
# tools/pretrain/pretrain.sh — pre-train the demo model's base (a small Qwen3) from scratch.
#
#   tools/pretrain/pretrain.sh BITDISTILL CORPUS_DIR TOKENIZER_JSON OUT_DIR TOKENS [DEVICE]
#
# CORPUS_DIR holds train.txt and heldout.txt from tools/pretrain/corpus.sh; TOKENIZER_JSON is
# the byte-level BPE from `bitdistill tokenizer-train` (models/demo/tokenizer.json). The model is
# tools/pretrain/demo-config.json, random-initialised with seed 1, trained with `bitdistill train`
# (method pretrain: FP, next-token loss) for TOKENS tokens in windows of 512, held-out perplexity
# at every checkpoint. Resumable: run it again with the same arguments after an interruption
# (also on another machine, with OUT_DIR copied over) and it continues from the last checkpoint.
# The result is OUT_DIR/model (HF directory). DEVICE: cuda:0 (default) or cpu. Environment:
# CONFIG (the model's config.json; default tools/pretrain/demo-config.json), THREADS.
set -eu
BD=$1 CORPUS=$2 TOK=$3 OUT=$4 TOKENS=$5 DEVICE=${6:-cuda:0}
top=$(cd "$(dirname "$0")/../.." && pwd)
CONFIG=${CONFIG:-$top/tools/pretrain/demo-config.json}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) CORPUS=$(cd "$CORPUS" && pwd)
if [ ! -f "$OUT/init/model.safetensors" ]; then
    "$BD" init --config "$CONFIG" --out "$OUT/init" --seed 1 >/dev/null
    cp "$TOK" "$OUT/init/tokenizer.json"
fi
cat > "$OUT/job.json" <<EOF
{"method": "pretrain", "model": "$OUT/init", "heldout": "$CORPUS/heldout.txt",
 "eval_tokens": 32768, "seed": 1, "checkpoint_every": 500, "keep_checkpoints": 2,
 "log_every": 20,
 "pretrain": {"corpus": "$CORPUS/train.txt", "tokens": $TOKENS, "batch": 32, "max_len": 512,
              "lr": 2e-3, "min_lr": 2e-4, "warmup": 300, "weight_decay": 0.1, "clip": 1.0}}
EOF
res=
[ -f "$OUT/checkpoints/LATEST" ] && res=--resume
exec "$BD" train --config "$OUT/job.json" --out "$OUT" --device "$DEVICE" --quiet $res \
    --threads "${THREADS:-8}" --events-fd 3 3>>"$OUT/events.jsonl"
