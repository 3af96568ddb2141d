#!/bin/sh
# bench/soak.sh [SECONDS] [BUILD_DIR] — load and soak test of the real daemon on loopback.
#
# 64 concurrent clients for SECONDS (default 600): 32 classify (keep-alive, bench/loadgen), 16
# summarize with streaming (loadgen), 8 job listing loops and 8 job event-stream loops (curl),
# while the active classifier is hot-swapped 50 times between two loaded students
# (POST /v1/models/{id}/activate). The daemon's RSS is sampled every second. Prints the counts
# and ends with one line:
#   soak: requests=N failed=F 5xx=X swaps=S/50 rss_kib first=A after_warmup=B last=C max=D
# and exits 0 when F = X = 0, all 50 swaps answered 200 and the RSS stayed flat: the last sample
# at most 25% (and at least 8 MiB) above the one at a fifth of the run (not checked in a
# sanitizer build, whose quarantine holds freed memory by design). tests/fault/test-soak.sh runs
# it for 45 s.
set -u
SECS=${1:-600}
B=${2:-${top_builddir:-.}}
top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d /tmp/bd-soak-XXXXXX)
PID=""
PIDS=""
trap 'kill $PIDS 2>/dev/null; kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

# Students: two classifiers (different seeds) and a summarizer.
. "$top/bench/serve-lib.sh"
micro_student 1 "$T/cls-a.gguf" "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' --label positive=' positive' &&
    micro_student 2 "$T/cls-b.gguf" "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' --label positive=' positive' &&
    micro_student 3 "$T/sum.gguf" "$(printf '{text}\nTL;DR:')" || { echo "soak: cannot make the students"; exit 1; }

"$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --trainer /bin/false \
    --model "$T/cls-a.gguf" --model-id cls-a --log-level warn --max-connections 512 >"$T/d.log" 2>&1 &
PID=$!
for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done
P=$(cat "$T/port")
U="http://127.0.0.1:$P"
for _ in $(seq 600); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" = 200 ] && break; sleep 0.05; done
# Register the other two (as a job would) and load them.
now=$(date +%s)
for m in cls-b:classification:cls-b.gguf sum:summarization:sum.gguf; do
    id=${m%%:*} rest=${m#*:} task=${rest%%:*} file=${rest#*:}
    sqlite3 "$T/data/bitdistill.db" "insert into models(id,path,sha256,task,status,created_at) values('$id','$T/$file','$(sha256sum "$T/$file" | cut -d' ' -f1)','$task','unloaded',$now)"
done
for id in sum cls-b cls-a; do
    c=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/models/$id/activate")
    [ "$c" = 200 ] || { echo "soak: activating $id answered $c"; cat "$T/d.log"; exit 1; }
done
# A failed job (stub trainer) to list and stream events from.
printf '1 good film\n0 bad film\n' >"$T/t.txt"
F=$(curl -s --data-binary "@$T/t.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=t.txt" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
mkdir -p "$T/data/models/tiny" && cp -r "$T/fp1/." "$T/data/models/tiny/"
J=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$F\",\"method\":{\"type\":\"bitnet_sft\"}}" | sed -n 's/.*"id":"\(ftjob[^"]*\)".*/\1/p' | head -1)
[ -n "$J" ] || { echo "soak: cannot create a job"; exit 1; }

# RSS sampler.
( while kill -0 $PID 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$PID/status; sleep 1; done ) >"$T/rss" 2>/dev/null &
PIDS="$PIDS $!"
# Clients.
"$B/bench/loadgen" "$P" /v1/classify '{"input":["a good film","a dull one"]}' 32 "$SECS" >"$T/cls.out" 2>&1 &
PIDS="$PIDS $!"
"$B/bench/loadgen" "$P" /v1/summarize '{"model":"sum","input":"The cat sat on the mat. It was warm.","max_tokens":8,"stream":true}' 16 "$SECS" >"$T/sum.out" 2>&1 &
PIDS="$PIDS $!"
end=$(( $(date +%s) + SECS ))
loop() { # loop NAME URL: curl until the end; one status code per line
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$2"
    done >"$T/$1.codes"
}
for i in 1 2 3 4 5 6 7 8; do
    loop "list$i" "$U/v1/fine_tuning/jobs?limit=10" &
    PIDS="$PIDS $!"
    loop "events$i" "$U/v1/fine_tuning/jobs/$J/events?stream=true" &
    PIDS="$PIDS $!"
done
# 50 hot-swaps spread over the run.
swaps=0
gap=$(awk -v s="$SECS" 'BEGIN { g = s / 52; printf "%.2f", g < 0.2 ? 0.2 : g }')
sleep "$gap"
for i in $(seq 50); do
    id=cls-b
    [ $((i % 2)) -eq 0 ] && id=cls-a
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/models/$id/activate")" = 200 ] && swaps=$((swaps + 1))
    sleep "$gap"
done
wait $(echo "$PIDS" | cut -d' ' -f3-) 2>/dev/null
cat "$T/cls.out" "$T/sum.out"
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$2"; }
creq=$(field requests "$T/cls.out"); cerr=$(field errors "$T/cls.out")
sreq=$(field requests "$T/sum.out"); serr=$(field errors "$T/sum.out")
codes=$(cat "$T"/list*.codes "$T"/events*.codes)
lreq=$(echo "$codes" | grep -c .)
lbad=$(echo "$codes" | grep -v -c '^200$')
l5xx=$(echo "$codes" | grep -c '^5')
echo "job listing + event streams: $lreq requests, $lbad not 200 ($l5xx 5xx)"
n5xx=$(grep -c ' 5[0-9][0-9] ' "$T/d.log")
rssn=$(wc -l <"$T/rss")
first=$(head -1 "$T/rss"); last=$(tail -1 "$T/rss")
warm=$(sed -n "$(( rssn / 5 + 1 ))p" "$T/rss")
max=$(sort -n "$T/rss" | tail -1)
total=$(( ${creq:-0} + ${sreq:-0} + lreq ))
failed=$(( ${cerr:-1} + ${serr:-1} + lbad ))
echo "soak: requests=$total failed=$failed 5xx=$((l5xx + n5xx)) swaps=$swaps/50 rss_kib first=$first after_warmup=$warm last=$last max=$max (${SECS}s, 64 clients)"
flat=1
if ! grep -q '^SAN_CFLAGS = -fsanitize' "$B/Makefile" 2>/dev/null; then
    slack=$(( ${warm:-0} / 4 > 8192 ? ${warm:-0} / 4 : 8192 ))
    [ "${last:-0}" -le $(( ${warm:-0} + slack )) ] || flat=0
    [ $flat -eq 1 ] || echo "soak: the RSS grew from $warm to $last KiB after the warm-up"
fi
if [ "$failed" -eq 0 ] && [ $((l5xx + n5xx)) -eq 0 ] && [ "$swaps" -eq 50 ] && [ $flat -eq 1 ] && kill -0 $PID; then
    exit 0
fi
# What the daemon said, for a failed run (its log goes with the temporary directory).
kill -0 $PID 2>/dev/null && echo "daemon: still running" || echo "daemon: exited"
echo "daemon log (last 60 lines):"
tail -60 "$T/d.log"
exit 1
