# tests/daemon.sh — a daemon for shell tests (sourced after tests/tap.sh, with $B the build dir).
# bd_daemon DIR [OPTIONS...]: start bitdistilld on a free port with its data in DIR/data and its
# log in DIR/d.log, wait up to 15 s for /readyz, set PID and U (its base URL); the status is
# whether it answers ready.
bd_daemon() {
    bd_dir=$1
    shift
    rm -f "$bd_dir/port"
    "$B/bitdistilld" --port 0 --port-file "$bd_dir/port" --data-dir "$bd_dir/data" \
        --log-level warn "$@" >>"$bd_dir/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do
        [ -s "$bd_dir/port" ] &&
            curl -sf "http://127.0.0.1:$(cat "$bd_dir/port")/readyz" >/dev/null 2>&1 && break
        sleep 0.05
    done
    U="http://127.0.0.1:$(cat "$bd_dir/port" 2>/dev/null)"
    curl -sf "$U/readyz" >/dev/null
}
