#!/bin/bash
# tools/repro/device.sh BUNDLE STEP... — the GPU-machine side of docs/results.md, in steps that
# fit short device calls (state persists in $STATE, default /root/bd, while the machine is held).
#   setup            copy the bundle (tools/repro/bundle.sh) and this tree's tools/ to $STATE
#   probe            pre-training tokens/s of the demo model (40 steps)
#   pretrain-bg:SEC  start pre-training in the background, sized to end after SEC seconds
#                    (at most 10 epochs of the corpus); resumes a started run instead
#   exp-bg           start tools/repro/experiments.sh (full) in the background
#   wait:SEC         wait up to SEC seconds for the background job, printing progress
#   collect          results (events, metrics, logs) and the pre-trained base into $OUT
#   collect-models   the selected SST-2 teacher and BitDistill student into $OUT
# Example: tools/repro/device.sh build/carry setup probe pretrain-bg:600 wait:480 collect
set -u
BUNDLE=$(cd "$1" && pwd)
shift
S=${STATE:-/root/bd}
export LD_LIBRARY_PATH=$S/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} NCCL_NVLS_ENABLE=0
BD=$S/bin/bitdistill
mkdir -p "$S"
ev_last() { grep '"type":"step"' "$1" 2>/dev/null | tail -1 | cut -c1-220; }

for step in "$@"; do
    arg=${step#*:}
    echo "== $step ($(date +%T))"
    case $step in
    setup)
        mkdir -p "$S/bin" && xz -dc "$BUNDLE/bin/bitdistill.xz" > "$BD" && chmod +x "$BD"
        cp "$BUNDLE/tokenizer.json" "$S/" && tar xJf "$BUNDLE/lib.tar.xz" -C "$S"
        rm -rf "$S/tools" && cp -r tools "$S/tools"
        if [ ! -f "$S/data/pretrain/train.txt" ]; then
            cp -r "$BUNDLE/data" "$S/" && xz -d -T0 "$S/data/pretrain/train.txt.xz" &&
                tar xJf "$S/data/tasks.tar.xz" -C "$S/data"
        fi
        # a base pre-trained elsewhere (bundle.sh BASE_MODEL_DIR): experiments only
        if [ -f "$BUNDLE/base.tar.xz" ] && [ ! -f "$S/pt/model/model.safetensors" ]; then
            mkdir -p "$S/pt" && tar xJf "$BUNDLE/base.tar.xz" -C "$S/pt"
        fi
        nvidia-smi -L; nproc; "$BD" --version || exit 1
        ;;
    probe)
        rm -rf "$S/probe"
        THREADS=8 "$S/tools/pretrain/pretrain.sh" "$BD" "$S/data/pretrain" "$S/tokenizer.json" \
            "$S/probe" 655360 > "$S/probe.log" 2>&1
        tail -3 "$S/probe.log"
        grep '"type":"step"' "$S/probe/events.jsonl" | tail -10 |
            sed -n 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/p' |
            awk '{ s += $1; n++ } END { printf "%.0f\n", s / n }' > "$S/tps"
        echo "pre-training: $(cat "$S/tps") tokens/s"
        ;;
    pretrain-bg:*)
        if [ ! -f "$S/pt/tokens" ]; then
            mkdir -p "$S/pt"
            # the corpus size in tokens (about 3.46 bytes per token with the demo tokenizer)
            ntok=$(( $(stat -c %s "$S/data/pretrain/train.txt") * 100 / 346 ))
            awk -v t="$(cat "$S/tps")" -v s="$arg" -v n="${ntok:-0}" 'BEGIN {
                x = t * s; if (n > 0 && x > 10 * n) x = 10 * n; printf "%d\n", int(x / 16384) * 16384 }' \
                > "$S/pt/tokens"
        fi
        echo "pre-training budget: $(cat "$S/pt/tokens") tokens"
        THREADS=8 setsid nohup "$S/tools/pretrain/pretrain.sh" "$BD" "$S/data/pretrain" \
            "$S/tokenizer.json" "$S/pt" "$(cat "$S/pt/tokens")" > "$S/pt.log" 2>&1 < /dev/null &
        echo $! > "$S/bg.pid"
        echo "pt" > "$S/bg.what"
        ;;
    exp-bg)
        [ -f "$S/pt/model/model.safetensors" ] || { echo "no pretrained model yet"; exit 1; }
        JOBS=${JOBS:-4} THREADS=4 setsid nohup "$S/tools/repro/experiments.sh" "$BD" "$S/pt/model" \
            "$S/data" "$S/exp" full > "$S/exp.log" 2>&1 < /dev/null &
        echo $! > "$S/bg.pid"
        echo "exp" > "$S/bg.what"
        ;;
    wait:*)
        end=$(( $(date +%s) + arg ))
        while [ "$(date +%s)" -lt "$end" ] && kill -0 "$(cat "$S/bg.pid")" 2>/dev/null; do
            sleep 20
            if [ "$(cat "$S/bg.what")" = pt ]; then
                echo "$(date +%T) $(ev_last "$S/pt/events.jsonl")"
            else
                echo "$(date +%T) $(ls "$S"/exp/runs/*/metrics.json 2>/dev/null | wc -l) runs done; $(tail -1 "$S/exp.log")"
            fi
        done
        kill -0 "$(cat "$S/bg.pid")" 2>/dev/null && echo "still running" || echo "finished"
        grep '"type":"eval"' "$S/pt/events.jsonl" 2>/dev/null | tail -3 | cut -c1-200
        tail -5 "$S/pt.log" "$S/exp.log" 2>/dev/null
        ;;
    collect)
        (cd "$S" && tar cJf "$OUT/results.tar.xz" --ignore-failed-read pt/events.jsonl pt/job.json \
            pt/metrics.json pt/tokens tps probe.log pt.log exp.log exp/selected.txt \
            $(cd "$S" && ls -d exp/runs/*/job.json exp/runs/*/events.jsonl exp/runs/*/metrics.json \
              exp/runs/*/log.txt 2>/dev/null) 2>/dev/null)
        if [ -f "$S/pt/model/model.safetensors" ] && [ -f "$S/pt/events.jsonl" ]; then
            (cd "$S/pt" && tar cf - model | xz -T0 -3 | split -b 15M - "$OUT/base.tar.xz.")
        fi
        ls -la "$OUT"
        ;;
    collect-models)
        # the selected SST-2 teacher (FP-SFT) and BitDistill student: the demo model
        fp=$(sed -n 's/^selected: \(sst2-fp[^,]*\),.*/\1/p' "$S/exp.log" | tail -1)
        bd=$(sed -n 's/^selected: \(sst2-bitdistill.*\)$/\1/p' "$S/exp.log" | tail -1)
        echo "teacher $fp, student $bd"
        (cd "$S/exp/runs" && tar cf - ${fp:+$fp/teacher} ${bd:+$bd/student.gguf} | xz -T0 -3 |
            split -b 15M - "$OUT/models.tar.xz.")
        ls -la "$OUT"
        ;;
    *) echo "unknown step $step"; exit 2 ;;
    esac
done
