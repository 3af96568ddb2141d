#!/bin/sh
# bench/http.sh [SECONDS] — request throughput of bitdistilld's /livez with wrk (Debian), and,
# in the same run on the same machine, nginx (Debian) answering the same JSON from one worker
# as the baseline (bitdistilld's HTTP runs on one loop thread). Prints requests/s and ratios.
#   wrk -t2 -c64 -d${SECONDS}s, daemon with access log on (log-level info, to /dev/null) and off.
# Needs: wrk, nginx (apt-get install wrk nginx-light). Build first (tests/run-all.sh or quickstart).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build/normal}
secs=${1:-10}
T=$(mktemp -d /tmp/bd-bench-http-XXXXXX)
trap 'kill $DPID $NPID 2>/dev/null || true; rm -rf "$T"' EXIT
DPID=""; NPID=""
command -v wrk >/dev/null || { echo "bench/http.sh: needs wrk (apt-get install wrk)"; exit 1; }

rps() { wrk -t2 -c64 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }

daemon() { # daemon LOGLEVEL -> prints req/s
    rm -f "$T/port"
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --log-level "$1" >/dev/null 2>&1 &
    DPID=$!
    for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
    r=$(rps "http://127.0.0.1:$(cat "$T/port")/livez")
    kill $DPID; wait $DPID || true; DPID=""
    echo "$r"
}

d_info=$(daemon info)
d_warn=$(daemon warn)
n=""
if command -v nginx >/dev/null; then
    cat >"$T/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
    server { listen 127.0.0.1:18089; location /livez { default_type application/json; return 200 '{"status":"ok"}\n'; } }
}
EOF2
    nginx -c "$T/nginx.conf" &
    NPID=$!
    sleep 0.5
    n=$(rps "http://127.0.0.1:18089/livez")
    kill $NPID; wait $NPID 2>/dev/null || true; NPID=""
fi
echo "wrk -t2 -c64 -d${secs}s GET /livez on $(nproc) cores"
printf '%-40s %12s\n' "bitdistilld, access log on (info)" "$d_info"
printf '%-40s %12s\n' "bitdistilld, access log off (warn)" "$d_warn"
if [ -n "$n" ]; then
    printf '%-40s %12s\n' "nginx, 1 worker, access log off" "$n"
    awk -v a="$d_info" -v b="$d_warn" -v n="$n" 'BEGIN {
        printf "ratio bitdistilld/nginx: %.2f (log on), %.2f (log off)\n", a / n, b / n }'
else
    echo "nginx not installed: no baseline (apt-get install nginx-light)"
fi
