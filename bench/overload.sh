#!/bin/sh
# bench/overload.sh [SECONDS] [CONNECTIONS] — does the daemon keep its goodput under overload?
#
# Serves the bundled demo model (models/demo/student.gguf) and, in one run, measures with
# bench/loadgen's many-connection mode (every connection resends the moment it is answered, as
# `wrk -cN` does; 2xx and 429 counted apart):
#   1. unloaded capacity: 16 connections posting one sentence to /v1/classify;
#   2. overload: CONNECTIONS (default 900) connections at once, with the daemon's defaults
#      (a request finding the engine's queue full waits up to --queue-wait-ms for a place);
#   3. the same overload with --queue-wait-ms 0 (a full queue answers 429 at once: the
#      behaviour before queue-wait-ms existed).
# Prints per run the 2xx/s (goodput), 429/s, p50/p99 latency of the 2xx answers, the CPU
# seconds per second the daemon's loop thread and its other threads (the engine) used, and the
# ratios goodput / unloaded capacity. On a machine shared with other work the CPU columns say
# whether the engine kept its cores or the loop thread took them. With BASE=path to an older bitdistilld, runs 1 and 2 are
# repeated for it in the same run.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build/normal}
secs=${1:-8}
conns=${2:-900}
T=$(mktemp -d /tmp/bd-bench-overload-XXXXXX)
DPID=""
trap 'kill $DPID 2>/dev/null || true; rm -rf "$T"' EXIT
make -C "$B" -s bench/loadgen bitdistilld >/dev/null
[ "$(ulimit -n)" -gt $((conns + 64)) ] || ulimit -n $((conns + 256))

. "$top/bench/serve-lib.sh"
start() { # start EXTRA...
    rm -rf "$T/data"
    daemon_start "${BIN:-$B/bitdistilld}" --data-dir "$T/data" --log-level warn \
        --model "$top/models/demo/student.gguf" --max-connections $((conns + 100)) "$@"
}
stop() { daemon_stop; }
ticks() { # ticks: "LOOP OTHERS" CPU clock ticks of the daemon's main thread and its other threads
    for t in /proc/$DPID/task/*; do
        awk -v main="$([ "${t##*/}" = "$DPID" ] && echo 1 || echo 0)" '{ print main, $14 + $15 }' "$t/stat"
    done | awk '{ s[$1] += $2 } END { print s[1] + 0, s[0] + 0 }'
}
load() { # load CONNECTIONS: loadgen's result line plus loop_cpu= and engine_cpu= (CPU s per s)
    t0=$(ticks)
    r=$("$B/bench/loadgen" -c "$PORT" /v1/classify "$CLS" "$1" "$secs")
    t1=$(ticks)
    echo "$r $(echo "$t0 $t1" | awk -v hz="$(getconf CLK_TCK)" -v s="$secs" \
        '{ printf "loop_cpu=%.2f engine_cpu=%.2f", ($3 - $1) / hz / s, ($4 - $2) / hz / s }')"
}
row() { # row LABEL RESULT
    printf '  %-34s %8s %8s %10s %10s %8s %10s\n' "$1" "$(field "$2" rps)" "$(field "$2" shed_rps)" \
        "$(field "$2" p50_ms)" "$(field "$2" p99_ms)" "$(field "$2" loop_cpu)" "$(field "$2" engine_cpu)"
}

CLS='{"input":"The plot, though thin, carries enough wit and charm to stay afloat for ninety minutes."}'
echo "overload benchmark: demo model, $(nproc) cores, ${secs}s per run, /v1/classify, one sentence, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  %-34s %8s %8s %10s %10s %8s %10s\n' run "2xx/s" "429/s" p50_ms_2xx p99_ms_2xx loop_cpu engine_cpu
start
base=$(load 16)
row "16 connections (capacity)" "$base"
over=$(load "$conns")
row "$conns connections" "$over"
stop
start --queue-wait-ms 0
shed=$(load "$conns")
row "$conns connections, queue-wait-ms 0" "$shed"
stop
awk -v c="$(field "$base" rps)" -v o="$(field "$over" rps)" -v s="$(field "$shed" rps)" \
    -v p="$(field "$over" p99_ms)" -v n="$conns" 'BEGIN {
    printf "  goodput / unloaded capacity (same run): %.2f (default), %.2f (queue-wait-ms 0)\n",
        (c > 0 ? o / c : 0), (c > 0 ? s / c : 0)
    printf "  target (issue #16 item 5): >= 0.90 at %d connections: %s; p99 of the accepted: %s ms\n",
        n, (c > 0 && o / c >= 0.9) ? "MET" : "NOT MET", p }'
if [ -n "${BASE:-}" ]; then
    BIN=$BASE start
    bbase=$(load 16)
    row "BASE: 16 connections (capacity)" "$bbase"
    bover=$(load "$conns")
    row "BASE: $conns connections" "$bover"
    stop
    awk -v c="$(field "$bbase" rps)" -v o="$(field "$bover" rps)" -v n="$(field "$over" rps)" 'BEGIN {
        printf "  BASE goodput / capacity: %.2f; goodput this/BASE: %.2fx\n", (c > 0 ? o / c : 0), (o > 0 ? n / o : 0) }'
fi
