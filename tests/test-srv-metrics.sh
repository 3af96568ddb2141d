#!/bin/sh
# tests/test-srv-metrics.sh — /metrics of a live daemon passes Prometheus' own linter
# (`promtool check metrics`, Debian package prometheus) once every family has samples: HELP on
# every family, `_total` on counters and on nothing else, base units. Requests first exercise
# every family (classification, a completion of several tokens, a 404), then the exposition is
# checked, then each family's TYPE against the list below (the dashboard reads some of them:
# api/dashboard/server.js), and process_cpu_seconds_total as a counter that does not go down.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/daemon.sh"
B=${top_builddir:-.}
M=$top_srcdir/models/demo/student.gguf
T=$(mktemp -d /tmp/bd-test-metrics-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

if ! command -v promtool >/dev/null 2>&1; then
    skip "promtool not installed (Debian package prometheus: deploy/install-deps.sh test)"
    done_testing
    exit $?
fi

bd_daemon "$T" --model "$M"
ok $? "daemon serving the demo student"

for _ in 1 2 3; do
    curl -s "$U/v1/classify" -d '{"input":["a gorgeous, witty film","dull and lifeless"]}' >/dev/null
done
curl -s "$U/v1/completions" -d '{"prompt":"The film","max_tokens":6}' >/dev/null
curl -s "$U/no/such/route" >/dev/null
curl -s "$U/metrics" >/dev/null
curl -s "$U/metrics" >"$T/m1.txt"
sleep 0.2
curl -s "$U/metrics" >"$T/m2.txt"

promtool check metrics <"$T/m2.txt" >"$T/lint.txt" 2>&1
rc=$?
[ $rc -eq 0 ] && [ ! -s "$T/lint.txt" ]
ok $? "promtool check metrics: no problem (rc $rc: $(head -c 400 "$T/lint.txt"))"

# Every family, with its type.
for ft in http_requests_total:counter http_request_duration_seconds:histogram \
    http_open_connections:gauge process_resident_memory_bytes:gauge \
    process_start_time_seconds:gauge process_cpu_seconds_total:counter bitdistill_ready:gauge \
    bitdistill_build_info:gauge bitdistill_num_requests_running:gauge \
    bitdistill_num_requests_waiting:gauge bitdistill_batch_size:gauge \
    bitdistill_kv_cache_usage_ratio:gauge bitdistill_prompt_tokens_total:counter \
    bitdistill_generation_tokens_total:counter bitdistill_e2e_request_latency_seconds:histogram \
    bitdistill_request_queue_time_seconds:histogram bitdistill_request_success_total:counter \
    bitdistill_time_to_first_token_seconds:histogram \
    bitdistill_inter_token_latency_seconds:histogram; do
    f=${ft%%:*} t=${ft#*:}
    grep -qx "# TYPE $f $t" "$T/m2.txt" && grep -q "^# HELP $f [^ ]" "$T/m2.txt" &&
        grep -q "^$f[{_ ]" "$T/m2.txt"
    ok $? "$f: TYPE $t, HELP text and samples"
done
n=$(grep -c '^# TYPE ' "$T/m2.txt")
[ "$n" -ge 19 ]
ok $? "$n families exposed, the 19 above among them"

c1=$(sed -n 's/^process_cpu_seconds_total \(.*\)$/\1/p' "$T/m1.txt")
c2=$(sed -n 's/^process_cpu_seconds_total \(.*\)$/\1/p' "$T/m2.txt")
awk -v a="$c1" -v b="$c2" 'BEGIN { exit !(a > 0 && b >= a) }'
ok $? "process_cpu_seconds_total is positive and does not go down ($c1 -> $c2)"
grep -q '^http_requests_total{handler="metrics",method="GET",status="200"} [1-9]' "$T/m2.txt"
ok $? "http_requests_total counts the /metrics scrapes"

# The linter is the judge: it refuses what this daemon used to expose (a gauge named _total).
printf '# HELP process_cpu_seconds_total CPU time in seconds\n# TYPE process_cpu_seconds_total gauge\nprocess_cpu_seconds_total 1.5\n' |
    promtool check metrics >/dev/null 2>&1
ok $((! $?)) "promtool refuses a gauge named _total (the check can fail)"

done_testing
