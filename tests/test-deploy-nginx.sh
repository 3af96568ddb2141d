#!/bin/sh
# tests/test-deploy-nginx.sh — two bitdistilld replicas sharing one data directory behind nginx
# (Debian) configured from deploy/nginx/bitdistill.conf: requests spread over both; both serve
# the same registered model (same sha256); a replica draining on SIGTERM gets no new requests;
# a rolling restart under a continuous classify load fails no request.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
T=$(mktemp -d /tmp/bd-test-nginx-XXXXXX)
A_PID=""; B_PID=""; N_PID=""; LOAD=""
trap 'kill $LOAD $A_PID $B_PID $N_PID 2>/dev/null; rm -rf "$T"' EXIT
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    skip "nginx is not installed (apt-get install nginx-light)"
    done_testing; exit $?
fi

# A port nothing listens on (replicas restart on the same port, so the upstream list is fixed).
free_port() {
    while :; do
        # below Linux's ephemeral range (32768-60999), where the other tests' clients and
        # --port 0 daemons take theirs
        p=$(awk -v r="$(od -An -N2 -tu2 /dev/urandom)" 'BEGIN { print 20000 + r % 12000 }')
        curl -s -m 1 "http://127.0.0.1:$p/" >/dev/null 2>&1; [ $? -eq 7 ] && { echo "$p"; return; }
    done
}
start() { # start NAME PORT -> sets <NAME>_PID
    "$B/bitdistilld" --port "$2" --data-dir "$T/data" --run-jobs "$3" --model "$T/cls.gguf" --model-id sst2 \
        --drain-timeout-ms 5000 >>"$T/$1.log" 2>&1 &
    eval "${1}_PID=$!"
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return 0
        kill -0 "$(eval echo "\$${1}_PID")" 2>/dev/null || return 1 # exited: the port was taken
        sleep 0.05
    done
    return 1
}
# start_on NAME PORT_VARIABLE RUN_JOBS: start, on other free ports if the first is taken meanwhile
start_on() {
    for _ in 1 2 3; do
        start "$1" "$(eval echo "\$$2")" "$3" && return 0
        kill "$(eval echo "\$${1}_PID")" 2>/dev/null
        eval "$2=\$(free_port)"
    done
    return 1
}

"$B/bitdistill" init --config "$top_srcdir/tests/fixtures/train/tiny-config.json" --out "$T/tiny" --seed 2 >/dev/null
cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/tiny/tokenizer.json"
"$B/bitdistill" convert --model "$T/tiny" --out "$T/cls.gguf" --ternary --template "$(printf 'Review: {text}\nSentiment:')" \
    --label negative=' negative' --label positive=' positive' >/dev/null 2>&1
ok $? "test student made"

PA=$(free_port); PB=$(free_port); PN=$(free_port)
start_on A PA 1; ok $? "replica A (runs jobs) on $PA"
start_on B PB 0; ok $? "replica B (serving only) on $PB, same data dir"
sed -e "s/127.0.0.1:8081/127.0.0.1:$PA/; s/127.0.0.1:8082/127.0.0.1:$PB/; s/listen 8080;/listen 127.0.0.1:$PN;/" \
    "$top_srcdir/deploy/nginx/bitdistill.conf" >"$T/site.conf"
cat >"$T/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
    include $T/site.conf;
}
EOF2
"$NGINX" -t -c "$T/nginx.conf" >/dev/null 2>&1
ok $? "nginx accepts deploy/nginx/bitdistill.conf"
# nginx's port may be taken between the pick and the bind: pick again until nginx is up.
for _try in 1 2 3 4 5; do
    "$NGINX" -c "$T/nginx.conf" &
    N_PID=$!
    up=1
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PN/livez" >/dev/null && up=0 && break; sleep 0.05; done
    [ $up -eq 0 ] && break
    kill $N_PID 2>/dev/null; wait $N_PID 2>/dev/null
    OLD=$PN; PN=$(free_port)
    sed -i "s/listen 127.0.0.1:$OLD;/listen 127.0.0.1:$PN;/" "$T/site.conf"
done
U="http://127.0.0.1:$PN"

cls() { curl -s -o /dev/null -w '%{http_code}\n' "$U/v1/classify" -d '{"input":"a fine film"}'; }
for _ in $(seq 40); do cls; done >"$T/spread.txt"
is "$(grep -c '^200$' "$T/spread.txt")" 40 "40 requests through nginx answered 200"
count() { c=$(curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^http_requests_total{handler="classify",method="POST",status="200"} //p'); echo "${c:-0}"; }
CA=$(count "$PA"); CB=$(count "$PB")
[ "${CA:-0}" -gt 0 ] && [ "${CB:-0}" -gt 0 ]
ok $? "requests spread over both replicas ($CA on A, $CB on B)"
SA=$(curl -s "http://127.0.0.1:$PA/v1/models" | grep -o '"id":"sst2"' | head -1)
[ -n "$SA" ] && curl -s "http://127.0.0.1:$PB/v1/models" | grep -q '"id":"sst2"'
ok $? "both replicas serve the same model"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB/v1/fine_tuning/jobs" -d '{}')" 503 "the serving-only replica refuses jobs with 503"

# Rolling restart under load: A, then B; no failed request.
( while :; do cls; done ) >"$T/load.txt" 2>/dev/null &
LOAD=$!
sleep 0.5
CB0=$(count "$PB")
kill "$A_PID"; wait "$A_PID"; ok $? "replica A drains and exits 0"
CA_DRAINED=$(grep -c "POST /v1/classify" "$T/A.log")
sleep 0.5
is "$(grep -c "POST /v1/classify" "$T/A.log")" "$CA_DRAINED" "the drained replica gets no new requests"
[ "$(count "$PB")" -gt "$CB0" ]
ok $? "replica B takes the traffic meanwhile"
start A "$PA" 1; ok $? "replica A back"
# A rolling restart moves on once the restarted replica takes traffic again.
back=0
for _ in $(seq 100); do [ "$(count "$PA")" -gt 0 ] && back=1 && break; sleep 0.05; done
ok $((1 - back)) "replica A takes traffic again before B restarts"
kill "$B_PID"; wait "$B_PID"; ok $? "replica B drains and exits 0"
sleep 0.3
start B "$PB" 0; ok $? "replica B back"
for _ in $(seq 100); do [ "$(count "$PB")" -gt 0 ] && break; sleep 0.05; done
kill "$LOAD"; wait "$LOAD" 2>/dev/null; LOAD=""
total=$(wc -l <"$T/load.txt"); bad=$(grep -vc '^200$' "$T/load.txt")
[ "$total" -gt 20 ]
ok $? "load ran through the rolling restart ($total requests)"
is "$bad" 0 "no failed request during the rolling restart"
kill "$N_PID" "$A_PID" "$B_PID"; wait "$A_PID"; ok $? "replica A exits 0"
done_testing
