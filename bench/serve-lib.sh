# bench/serve-lib.sh — shell helpers of the serving benchmarks and tests (sourced, not run).
# Callers set B (the build directory), T (a temporary directory) and top (the source tree).

# daemon_start BINARY ARGS...: run BINARY --port 0 --port-file $T/port ARGS... in the
# background (output in $T/d.log) and wait until /readyz answers; sets DPID and PORT.
daemon_start() {
    bin=$1
    shift
    rm -f "$T/port"
    "$bin" --port 0 --port-file "$T/port" "$@" >"$T/d.log" 2>&1 &
    DPID=$!
    for _ in $(seq 600); do
        [ -s "$T/port" ] && curl -sf "http://127.0.0.1:$(cat "$T/port")/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    PORT=$(cat "$T/port")
}

daemon_stop() {
    kill $DPID
    wait $DPID || true
    DPID=""
}

# field LINE NAME: the value of NAME=value in a loadgen result line.
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# micro_student SEED OUT TEMPLATE [--label ...]: a random micro Qwen3 (tests/fuzz/micro-config.json,
# byte tokenizer) converted to a ternary student at OUT; its FP directory stays in $T/fpSEED.
micro_student() {
    seed=$1 out=$2 tmpl=$3
    shift 3
    "$B/bitdistill" init --config "$top/tests/fuzz/micro-config.json" --out "$T/fp$seed" --seed "$seed" >/dev/null &&
        cp "$top/tests/fixtures/train/tok-bytes.json" "$T/fp$seed/tokenizer.json" &&
        "$B/bitdistill" convert --model "$T/fp$seed" --out "$out" --ternary --template "$tmpl" "$@" >/dev/null 2>&1
}
