#!/bin/sh
# tests/fault/test-sched-race.sh — the engine workers never touch a job after handing it to the
# loop thread. tests/fault/slownotify.so (LD_PRELOAD) delays each worker right after it finished
# a job, while the loop thread answers and frees it; streaming and plain generations (cancelled
# ones too) and classifications then run while the active classifier is hot-swapped, so the
# job's model can lose its last reference meanwhile. In the sanitizer build ASan reports any
# use after free; in the normal build MALLOC_PERTURB_ poisons freed memory. The daemon must
# answer everything and stay up. (A worker used to give a generation's KV context back to
# job->model after finishing the job: heap-use-after-free, the daemon died.)
. "${top_srcdir:-.}/tests/tap.sh"
B=${top_builddir:-.}
top=${top_srcdir:-.}
T=$(mktemp -d /tmp/bd-test-race-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

. "$top/bench/serve-lib.sh"
micro_student 1 "$T/cls-a.gguf" "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' --label positive=' positive' &&
    micro_student 2 "$T/cls-b.gguf" "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' --label positive=' positive' &&
    micro_student 3 "$T/sum.gguf" "$(printf '{text}\nTL;DR:')"
ok $? "three micro students"

LD_PRELOAD="$B/tests/fault/slownotify.so" MALLOC_PERTURB_=165 BD_NOTIFY_DELAY_US=3000 \
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --trainer /bin/false \
    --model "$T/sum.gguf" --model-id sum --log-level warn --workers 2 --threads 1 >"$T/d.log" 2>&1 &
PID=$!
for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done
U="http://127.0.0.1:$(cat "$T/port")"
for _ in $(seq 600); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" = 200 ] && break; sleep 0.05; done
now=$(date +%s)
for m in cls-a cls-b; do
    sqlite3 "$T/data/bitdistill.db" "insert into models(id,path,sha256,task,status,created_at) values('$m','$T/$m.gguf','$(sha256sum "$T/$m.gguf" | cut -d' ' -f1)','classification','unloaded',$now)"
done
c=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/models/cls-a/activate")
ok "$([ "$c" = 200 ]; echo $?)" "cls-a activated ($c)"

# Load: 4 streaming + 4 plain generation clients, 2 + 2 of n = 3 choices (one prefill whose KV
# cache is copied to the other choices), 4 classify clients, 4 + 2 (n = 3) clients that leave
# mid-stream, 20 hot-swaps; 6 s.
end=$(( $(date +%s) + 6 ))
gen() { # gen STREAM
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$U/v1/summarize" \
            -d "{\"model\":\"sum\",\"input\":\"The cat sat on the mat.\",\"max_tokens\":6,\"stream\":$1}"
    done
}
cls() {
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$U/v1/classify" -d '{"input":["a good film","a dull one"]}'
    done
}
multi() { # multi STREAM
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$U/v1/completions" \
            -d "{\"model\":\"sum\",\"prompt\":\"The cat sat\",\"max_tokens\":6,\"n\":3,\"logprobs\":2,\"stream\":$1}"
    done
}
leave() {
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null --max-time 0.05 "$U/v1/summarize" \
            -d '{"model":"sum","input":"The cat sat on the mat.","max_tokens":200,"stream":true}'
    done
}
leave_multi() {
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null --max-time 0.05 "$U/v1/completions" \
            -d '{"model":"sum","prompt":"The cat sat","max_tokens":200,"n":3,"stream":true}'
    done
}
pids=""
for i in 1 2 3 4; do
    gen true >"$T/o.gs$i" & pids="$pids $!"
    gen false >"$T/o.gp$i" & pids="$pids $!"
    cls >"$T/o.c$i" & pids="$pids $!"
    leave & pids="$pids $!"
done
for i in 1 2; do
    multi true >"$T/o.ms$i" & pids="$pids $!"
    multi false >"$T/o.mp$i" & pids="$pids $!"
    leave_multi & pids="$pids $!"
done
swaps=0
for i in $(seq 20); do
    id=cls-b
    [ $((i % 2)) -eq 0 ] && id=cls-a
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/models/$id/activate")" = 200 ] && swaps=$((swaps + 1))
    sleep 0.25
done
wait $pids
n=$(cat "$T"/o.* | wc -l)
nm=$(cat "$T"/o.m* | wc -l)
bad=$(cat "$T"/o.* | grep -v -c '^200$')
kill -0 $PID 2>/dev/null
alive=$?
ok "$([ "$n" -gt 8 ] && [ "$nm" -gt 0 ] && [ "$bad" -eq 0 ] && [ "$swaps" -eq 20 ]; echo $?)" \
    "$n requests ($nm of n = 3) under delayed hand-over and 20 hot-swaps: $bad not 200, $swaps/20 swaps answered"
ok $alive "the daemon is still running"
if grep -q "AddressSanitizer\|runtime error" "$T/d.log" || [ $alive -ne 0 ]; then
    sed -n '1,40p' "$T/d.log" | sed 's/^/# /'
fi
[ $alive -eq 0 ] && kill -TERM $PID
wait $PID
rc=$?
ok $rc "daemon drains and exits 0 (exit status $rc)"
PID=""
done_testing
