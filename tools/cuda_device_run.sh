#!/bin/bash
# tools/cuda_device_run.sh — what was run on the GPU machine for docs/cuda.md: the GPU op and
# step tests, `bitdistill train --device cuda:0` against the CPU on SST-2, and the throughput
# of bench-cuda-train against tools/bench_cuda_torch.py on a random-init Qwen3-0.6B.
#   tools/cuda_device_run.sh BIN_DIR DATA_DIR OUT_DIR [tests|train|bench|linear|norms|attn|hf|same|dp]...
# bench: bench-cuda-train (micro-batch $B x 512, default 8, accumulation 4, 3 steps; with
# BITDISTILL_CUDA_PROFILE=1 set, the device time per op too; BITDISTILL_CUDA_NARROW=0 for the
# products before the narrow BitLinear operands) and the eager functional model; linear: the
# linear-product micro-benchmark (bench-cuda-train --linear); norms: the row kernels' one
# (bench-cuda-train --norms), both at SIZE's widths; attn: the fused attention's (bench-cuda-train --attn);
# hf: tools/bench_hf_bitdistill.py (transformers Qwen3 + BitLinear + SubLN, eager and
# torch.compile), the baseline of docs/cuda.md's table, same shapes. SIZE (0.6b, default, or
# 1.7b) picks the random-init Qwen3 of bench and hf (tools/qwen3-SIZE-config.json). HF_PAR=1:
# hf runs one process per mode of HF_MODES (HF=compile by default), compiling side by side
# and timing one after another (BENCH_LOCK in tools/bench_hf_bitdistill.py). same: the GPU tests,
# bench and hf (HF=compile) in one pass, the baseline compiling while the tests run, every timed
# run alone on the GPU.
# BIN_DIR holds bitdistill, bench-cuda-train, test-cuda-ops, test-cuda-step (built here with
# --with-cuda) and lib/ with the shared libraries the target machine lacks.
set -u
BIN=$1 DATA=$2 OUT=$3
shift 3
export LD_LIBRARY_PATH=$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_NVLS_ENABLE=0 top_srcdir=$PWD
SIZE=${SIZE:-0.6b}
[ -f tools/qwen3-$SIZE-config.json ] || { echo "no tools/qwen3-$SIZE-config.json"; exit 1; }
# hidden and FFN widths of SIZE (linear, norms)
WIDTHS=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(c['hidden_size'], c['intermediate_size'])" tools/qwen3-$SIZE-config.json)
mkdir -p "$OUT"
nvidia-smi -L
for what in "$@"; do
case $what in
tests)
    timeout 120 "$BIN"/test-cuda-ops 2>&1 | tee "$OUT"/test-cuda-ops.txt | grep -v '^ok' 
    timeout 120 "$BIN"/test-cuda-step 2>&1 | tee "$OUT"/test-cuda-step.txt | grep -v '^ok'
    echo "ops: $(grep -c '^ok' "$OUT"/test-cuda-ops.txt) ok, $(grep -c '^not ok' "$OUT"/test-cuda-ops.txt) not ok;" \
         "step: $(grep -c '^ok' "$OUT"/test-cuda-step.txt) ok, $(grep -c '^not ok' "$OUT"/test-cuda-step.txt) not ok"
    ;;
train)
    W=/tmp/bdtrain; rm -rf $W; mkdir -p $W
    "$BIN"/bitdistill init --config tests/fixtures/train/tiny-config.json --out $W/base --seed 1 >/dev/null
    cat > $W/job.json <<JOB
{"method":"bitdistill","model":"$W/base","tokenizer":"$PWD/tests/fixtures/train/tok-bytes.json",
 "task":"sst2","train_file":"$DATA/stsa.binary.train","validation_file":"$DATA/stsa.binary.dev",
 "max_len":48,"batch":16,"lr":1e-3,"weight_decay":0,"max_eval_examples":872,"seed":3,
 "teacher_sft":{"steps":100},"continue_pretrain":{"corpus":"$DATA/valid.txt","tokens":4000},
 "distill":{"steps":100,"lambda":10,"gamma":100,"gamma_warmup":20},"log_every":10,
 "checkpoint_every":50}
JOB
    for dev in cuda:0 cpu; do
        t0=$(date +%s%N)
        timeout 240 "$BIN"/bitdistill train --config $W/job.json --out $W/$dev --device $dev \
            --threads 8 --quiet --events-fd 3 3>"$OUT"/train-${dev/:/}.events >"$OUT"/train-${dev/:/}.txt 2>&1
        echo "train --device $dev: rc $? in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    done
    python3 - "$OUT" <<'PY'
import json, sys
ev = {d: [json.loads(l) for l in open(f"{sys.argv[1]}/train-{d.replace(':', '')}.events")] for d in ("cuda:0", "cpu")}
steps = {d: {(e["stage"], e["step"]): e for e in v if e["type"] == "step"} for d, v in ev.items()}
print("stage step | loss gpu | loss cpu | rel")
worst = {}
for k in sorted(steps["cpu"]):
    g, c = steps["cuda:0"].get(k), steps["cpu"][k]
    if not g: print(k, "missing on gpu"); continue
    r = abs(g["loss"] - c["loss"]) / max(abs(c["loss"]), 1e-9)
    worst[k[0]] = max(worst.get(k[0], 0), r)
    if k[1] % 20 == 0 or k[1] == 10: print(f"{k[0]} {k[1]:4d} | {g['loss']:.5g} | {c['loss']:.5g} | {r:.1e}")
print("worst rel per stage:", worst)
for d, v in ev.items():
    print(d, [ (e.get("model"), e.get("accuracy")) for e in v if e["type"] == "eval"],
          [e["message"] for e in v if e["type"] == "error"], "done" if any(e["type"] == "done" for e in v) else "NOT done")
PY
    ;;
bench)
    M=/tmp/q$SIZE; rm -rf $M
    "$BIN"/bitdistill init --config tools/qwen3-$SIZE-config.json --out $M --seed 1 >/dev/null || exit 1
    timeout 200 "$BIN"/bench-cuda-train $M ${B:-8} 512 4 3 2>&1 | tee "$OUT"/bench-c-$SIZE.txt
    [ -n "${NO_EAGER:-}" ] || PYTHONUNBUFFERED=1 timeout 200 python3 tools/bench_cuda_torch.py $M ${B:-8} 512 4 3 2>&1 | tail -5 | tee "$OUT"/bench-torch-$SIZE.txt
    ;;
linear)
    # the BitLinear products alone at SIZE's shapes (docs/cuda.md "BitLinear products")
    timeout 60 "$BIN"/bench-cuda-train --linear 4096 50 $WIDTHS 2>&1 | tee "$OUT"/linear-bench-$SIZE.txt
    ;;
norms)
    # the memory-bound row kernels of one layer of SIZE (docs/cuda.md "Fewer bytes per layer")
    timeout 60 "$BIN"/bench-cuda-train --norms 4096 50 $WIDTHS 2>&1 | tee "$OUT"/norms-bench-$SIZE.txt
    ;;
attn)
    # the fused attention alone at Qwen3-0.6B's heads, 8 x 512 (docs/cuda.md "Attention")
    timeout 60 "$BIN"/bench-cuda-train --attn 8 512 16 8 50 2>&1 | tee "$OUT"/attn-bench.txt
    ;;
hf)
    M=/tmp/q$SIZE
    [ -d $M ] || "$BIN"/bitdistill init --config tools/qwen3-$SIZE-config.json --out $M --seed 1 >/dev/null || exit 1
    if [ -n "${HF_PAR:-}" ]; then # one process per mode: compiled side by side, timed one by one
        lock=/tmp/hf-lock.$$; rm -rf $lock $lock.ready
        modes=${HF_MODES:-distill,pretrain}
        for mode in ${modes//,/ }; do
            BENCH_LOCK=$lock BENCH_PEERS=$(echo ${modes//,/ } | wc -w) PYTHONUNBUFFERED=1 \
                timeout ${HF_TIMEOUT:-400} python3 tools/bench_hf_bitdistill.py $M ${B:-8} 512 4 3 ${HF:-compile} $mode 2>&1 |
                grep -v Warning | tail -8 > "$OUT"/bench-hf-$SIZE-$mode.txt &
        done
        wait
        cat "$OUT"/bench-hf-$SIZE-*.txt
    else
    PYTHONUNBUFFERED=1 timeout ${HF_TIMEOUT:-400} python3 tools/bench_hf_bitdistill.py $M ${B:-8} 512 4 3 ${HF:-both} ${HF_MODES:-distill,pretrain} 2>&1 |
        grep -v Warning | tail -8 | tee "$OUT"/bench-hf-$SIZE.txt
    fi
    ;;
same)
    # ours and the compiled baseline in one call, the baseline's compile (CPU, minutes) overlapping
    # the GPU tests: its HF_MODES processes and ours meet in the barrier of
    # tools/bench_hf_bitdistill.py (BENCH_LOCK; ours counts itself in once the tests are done),
    # then each timed run holds the GPU alone under the lock's flock
    M=/tmp/q$SIZE; rm -rf $M
    "$BIN"/bitdistill init --config tools/qwen3-$SIZE-config.json --out $M --seed 1 >/dev/null || exit 1
    lock=/tmp/same-lock.$$; rm -rf $lock $lock.ready; mkdir -p $lock.ready
    modes=${HF_MODES:-distill,pretrain}
    n=$(( $(echo ${modes//,/ } | wc -w) + 1 ))
    for mode in ${modes//,/ }; do
        BENCH_LOCK=$lock BENCH_PEERS=$n PYTHONUNBUFFERED=1 \
            timeout ${HF_TIMEOUT:-400} python3 tools/bench_hf_bitdistill.py $M ${B:-8} 512 4 3 ${HF:-compile} $mode 2>&1 |
            grep -v Warning | tail -8 > "$OUT"/bench-hf-$SIZE-$mode.txt &
    done
    timeout 120 "$BIN"/test-cuda-ops > "$OUT"/test-cuda-ops.txt 2>&1
    timeout 120 "$BIN"/test-cuda-step > "$OUT"/test-cuda-step.txt 2>&1
    echo "ops: $(grep -c '^ok' "$OUT"/test-cuda-ops.txt) ok, $(grep -c '^not ok' "$OUT"/test-cuda-ops.txt) not ok;" \
         "step: $(grep -c '^ok' "$OUT"/test-cuda-step.txt) ok, $(grep -c '^not ok' "$OUT"/test-cuda-step.txt) not ok"
    touch $lock.ready/ours.$$
    t=$SECONDS
    while [ $(ls $lock.ready | wc -l) -lt $n ] && [ $((SECONDS - t)) -lt ${HF_TIMEOUT:-400} ]; do sleep 0.5; done
    python3 -c 'import fcntl, subprocess, sys
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); sys.exit(subprocess.call(sys.argv[2:]))' \
        $lock timeout 200 "$BIN"/bench-cuda-train $M ${B:-8} 512 4 3 2>&1 | tee "$OUT"/bench-c-$SIZE.txt
    wait
    cat "$OUT"/bench-hf-$SIZE-*.txt
    python3 tools/cuda_same_ratio.py "$OUT"/bench-c-$SIZE.txt "$OUT"/bench-hf-$SIZE-*.txt
    ;;
dp)
    # data parallel: the same job on cuda:all vs cuda:0 (same global batch), then tokens/s of
    # 1 vs all GPUs on Qwen3-0.6B (micro-batch 8 x 4 = 32 sequences of 512)
    W=/tmp/bdtrain
    [ -d $W/base ] || { echo "run 'train' first"; exit 1; }
    for dev in cuda:0 cuda:all; do # fp32 products: no bf16 rounding between the two
        BITDISTILL_CUDA_FP32=1 timeout 240 "$BIN"/bitdistill train --config $W/job.json \
            --out $W/dp-${dev/:/} --device $dev --quiet --events-fd 3 \
            3>"$OUT"/dp-${dev/:/}.events >"$OUT"/dp-${dev/:/}.txt 2>&1
        echo "train --device $dev (fp32 products): rc $?"
    done
    python3 - "$OUT" <<'PY'
import json, sys
ld = lambda f: {(e["stage"], e["step"]): e["loss"] for e in map(json.loads, open(f)) if e["type"] == "step"}
a, b = ld(f"{sys.argv[1]}/dp-cudaall.events"), ld(f"{sys.argv[1]}/dp-cuda0.events")
w = {}
for k in b:
    if k in a: w[k[0]] = max(w.get(k[0], 0), abs(a[k] - b[k]) / abs(b[k]))
print("cuda:all vs cuda:0 loss curves, worst rel per stage:", w, "steps compared", len([k for k in b if k in a]), "of", len(b))
PY
    M=/tmp/q06
    [ -d $M ] || "$BIN"/bitdistill init --config tools/qwen3-0.6b-config.json --out $M --seed 1 >/dev/null
    n=$(nvidia-smi -L | wc -l)
    timeout 200 "$BIN"/bench-cuda-train $M 8 512 4 3 bf16 1 2>&1 | tee "$OUT"/bench-dp1.txt
    timeout 200 "$BIN"/bench-cuda-train $M 8 512 4 3 bf16 $n 2>&1 | tee "$OUT"/bench-dp$n.txt
    ;;
esac
done
