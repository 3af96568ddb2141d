#!/bin/sh
# tests/fault/test-fault.sh — fault injection (tests/fault/failmalloc.c, LD_PRELOAD):
#  1. model loading: every allocation of eng_served_load (student GGUF), eng_model_load_hf and
#     eng_tok_load_json fails once in turn (fault-load); each load fails with a message or
#     recovers; no crash; in the sanitizer build LeakSanitizer finds no leak on those paths.
#  2. request handling and job submission: a live daemon (the hook armed over SIGUSR2 after
#     start-up) gets the Nth allocation failed while answering classify, summarize (SSE), job
#     listing, uploads and job submission, N = 1..FAULT_SWEEP (default 120): each answer is the
#     normal one, a 500/503, or a closed connection, never a wrong 4xx or a crash; the daemon
#     answers a clean request after each; it drains and exits 0 at SIGTERM without a leak report.
#  3. disk full (RLIMIT_FSIZE on the daemon): an upload over the limit answers 500 naming the
#     error and leaves no partial file or row; the database passes PRAGMA integrity_check.
. "${top_srcdir:-.}/tests/tap.sh"
B=${top_builddir:-.}
FM="$B/tests/fault/failmalloc.so"
SWEEP=${FAULT_SWEEP:-120}
T=$(mktemp -d /tmp/bd-test-fault-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
# In the sanitizer build the hook must come before libasan (it forwards to ASan's allocator).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=1"
san=""
grep -q "define BD_SANITIZERS 1" "$B/config.h" 2>/dev/null && san=1

# A tiny classification student and a summarization one (the CLI's init + convert).
"$B/bitdistill" init --config "$top_srcdir/tests/fuzz/micro-config.json" --out "$T/fp" --seed 1 >/dev/null 2>&1 &&
    cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/fp/tokenizer.json" &&
    "$B/bitdistill" convert --model "$T/fp" --out "$T/cls.gguf" --ternary \
        --template "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' \
        --label positive=' positive' >/dev/null 2>&1 &&
    "$B/bitdistill" convert --model "$T/fp" --out "$T/sum.gguf" --ternary \
        --template "$(printf '{text}\nTL;DR:')" >/dev/null 2>&1
ok $? "tiny students made (bitdistill init + convert)"

# ---- 1. model loading -------------------------------------------------------------------
for k in "served $T/cls.gguf" "hf $T/fp" "tok $T/fp/tokenizer.json"; do
    set -- $k
    LD_PRELOAD="$FM" "$B/tests/fault/fault-load" "$1" "$2" >"$T/load.out" 2>"$T/load.err"
    rc=$?
    line=$(cat "$T/load.out")
    leak=$(grep -c 'LeakSanitizer' "$T/load.err")
    [ "$rc" -eq 0 ] && [ "$leak" -eq 0 ] && echo "$line" | grep -q 'silent=0'
    ok $? "allocation-failure sweep over $1 loading: $line, no crash${san:+, no leak}"
    [ "$rc" -ne 0 ] && sed 's/^/# /' "$T/load.err" | head -30
done

# ---- 2. a live daemon --------------------------------------------------------------------
# In a sanitizer build whose daemon links the CUDA libraries the preload cannot be used: their
# constructors allocate before the hook is ready and their destructors free through ASan.
if [ -n "$san" ] && ldd "$B/bitdistilld" 2>/dev/null | grep -q libcublas; then
    for what in "daemon serves" "file uploaded" classify "job listing" "raw upload" \
        "job submission" "model listing" "drains and exits" "integrity_check"; do
        skip "daemon sweep ($what): sanitizer build linked with CUDA libraries (the preload cannot sit before ASan there); the normal build runs it"
    done
else
start() { # start [daemon args...]: sets PID, U
    rm -f "$T/port"
    LD_PRELOAD="$FM" BD_FAIL_CTL="$T/ctl" "$B/bitdistilld" --port 0 --port-file "$T/port" \
        --data-dir "$T/data" --trainer /bin/false --log-level warn "$@" >>"$T/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done
    U="http://127.0.0.1:$(cat "$T/port")"
    for _ in $(seq 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" = 200 ] && break; sleep 0.05
    done
}
fault() { echo "$1" >"$T/ctl"; kill -USR2 "$PID"; }
printf '1 a good film\n0 a bad film\n1 fine\n0 dull\n' >"$T/train.txt"
mkdir -p "$T/data/models" && cp -r "$T/fp" "$T/data/models/tiny"
echo 0 >"$T/ctl"
start --model "$T/cls.gguf" --model-id cls
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" = 200 ]
ok $? "daemon with the hook preloaded serves the student"
curl -s -o /dev/null -X POST "$U/v1/models/load" 2>/dev/null
TF=$(curl -s --data-binary "@$T/train.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=t.txt" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
[ -n "$TF" ]
ok $? "training file uploaded before the sweep"

# sweep NAME WANT CURL-ARGS...: N = 1..SWEEP; every answer is WANT, 500, 503 or a closed
# connection (000); a clean request answers 200 after each.
# KNOWN (optional, env): an extra status accepted and counted separately, with its reason.
sweep() {
    name=$1 want=$2
    shift 2
    n=1 odd="" faults=0 alive=1 known=0
    while [ "$n" -le "$SWEEP" ]; do
        fault "$n"
        code=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 20 "$@")
        fault 0
        case "$code" in
            "$want") ;;
            500|503|000) faults=$((faults + 1)) ;;
            "${KNOWN:-x}") known=$((known + 1)) ;;
            *) odd="$odd N=$n:$code($(head -c 160 "$T/body"))" ;;
        esac
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$U/v1/models")" != 200 ]; then
            alive=0
            break
        fi
        n=$((n + 1))
    done
    [ -z "$odd" ] && [ "$alive" -eq 1 ]
    ok $? "$name with allocation N failed, N=1..$SWEEP: $faults answered 500/503/closed${KNOWN:+, $known answered $KNOWN ($KNOWN_WHY)}, the rest $want; daemon answers after each${odd:+; wrong answers:$odd}"
}
sweep "classify" 200 "$U/v1/classify" -d '{"model":"cls","input":["a good film","bad"]}'
sweep "job listing" 200 "$U/v1/fine_tuning/jobs?limit=5"
sweep "raw upload" 201 --data-binary "@$T/train.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=u.txt"
KNOWN=404 KNOWN_WHY="jansson's lexer drops a character of a string when its buffer cannot grow, so the file id no longer matches: docs/security.md" \
    sweep "job submission" 200 "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$TF\",\"method\":{\"type\":\"bitnet_sft\"}}"
sweep "model listing" 200 "$U/v1/models"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=""
leaks=$(grep -c -E 'LeakSanitizer|AddressSanitizer|runtime error' "$T/d.log")
[ "$rc" -eq 0 ] && [ "$leaks" -eq 0 ]
ok $? "after the sweeps the daemon drains and exits 0 at SIGTERM (exit $rc)${san:+, no sanitizer report}"
[ "$leaks" -ne 0 ] && grep -E -A25 'LeakSanitizer|AddressSanitizer|runtime error' "$T/d.log" | head -60 | sed 's/^/# /'
n=$(sqlite3 "$T/data/bitdistill.db" 'PRAGMA integrity_check' 2>&1)
is "$n" ok "database integrity_check after the sweeps"

fi

# ---- 3. disk full ------------------------------------------------------------------------
# The data directory on a 3 MiB tmpfs (needs root to mount; else skipped with the reason).
M="$T/small"
mkdir -p "$M"
if ! mount -t tmpfs -o size=3m tmpfs "$M" 2>"$T/mount.err"; then
    for what in "upload on a full disk" "no partial upload left" "database consistent" \
        "job on a full disk fails naming the error" "earlier checkpoints complete"; do
        skip "$what: cannot mount a small tmpfs here ($(head -c 120 "$T/mount.err"))"
    done
    done_testing
    exit $?
fi
trap 'kill -9 $PID 2>/dev/null; umount "$M" 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$M/data/models"
cp -r "$T/fp" "$M/data/models/tiny"
echo 0 >"$T/ctl"
: >"$T/d.log"
start_small() {
    rm -f "$T/port"
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$M/data" --job-threads 1 \
        --log-level warn >>"$T/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done
    U="http://127.0.0.1:$(cat "$T/port")"
}
start_small
# A dataset file larger than the space left.
awk 'BEGIN { for (i = 0; i < 150000; i++) printf "%d a film numbered %d, good or bad\n", i % 2, i }' >"$T/big.txt"
code=$(curl -s -o "$T/body" -w '%{http_code}' --data-binary "@$T/big.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=big.txt")
[ "$code" = 500 ] && grep -q -i -E 'no space|ENOSPC' "$T/body"
ok $? "upload larger than the free space: 500 naming the error (got $code: $(head -c 200 "$T/body"))"
ls -A "$M/data/files" 2>/dev/null >"$T/left"
[ ! -s "$T/left" ]
ok $? "no partial upload file left (found: $(tr '\n' ' ' <"$T/left"))"
head -64 "$T/big.txt" >"$T/small.txt"
TF=$(curl -s --data-binary "@$T/small.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=s.txt" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
rows=$(sqlite3 "$M/data/bitdistill.db" 'select count(*) from files' 2>&1)
disk=$(ls "$M/data/files" | wc -l)
[ -n "$TF" ] && [ "$rows" = "$disk" ] && [ "$(sqlite3 "$M/data/bitdistill.db" 'PRAGMA integrity_check')" = ok ]
ok $? "a small upload still succeeds afterwards; file rows ($rows) match files on disk ($disk); integrity_check ok"
# A job whose checkpoints fill the disk.
J=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$TF\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":400}}},\"hyperparameters\":{\"batch_size\":4}}" | sed -n 's/.*"id":"\(ftjob[^"]*\)".*/\1/p' | head -1)
st=""
for _ in $(seq 1200); do
    st=$(curl -s "$U/v1/fine_tuning/jobs/$J" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p' | head -1)
    case "$st" in succeeded|failed|cancelled) break ;; esac
    sleep 0.1
done
curl -s "$U/v1/fine_tuning/jobs/$J" >"$T/job.json"
[ "$st" = failed ] && grep -q -i -E 'no space|ENOSPC|disk' "$T/job.json"
ok $? "a job whose checkpoints fill the disk ends failed, naming the error (status $st: $(grep -o '"error":{[^}]*}' "$T/job.json" | head -c 300))"
# The newest checkpoint written before the disk filled (the one LATEST names: the trainer writes
# LATEST only once a checkpoint is renamed into place, and rotates older ones only after that)
# is complete; older ones are rotated away by the trainer (the API still lists them: noted in
# docs/security.md). Not the newest *listed* one: with the disk full, the database may fail to
# record the last checkpoints the trainer managed to write (seen once in a sanitizer build), so
# the list can lag the disk.
curl -s "$U/v1/fine_tuning/jobs/$J/checkpoints" >"$T/ck.json"
nck=$(grep -o '"step_number"' "$T/ck.json" | wc -l)
any=$(grep -o '"path":"[^"]*"' "$T/ck.json" | head -1 | sed 's/"path":"//; s/"$//')
last=""
[ -n "$any" ] && [ -s "$(dirname "$any")/LATEST" ] && last="$(dirname "$any")/$(cat "$(dirname "$any")/LATEST")"
gone=0
for d in $(grep -o '"path":"[^"]*"' "$T/ck.json" | sed 's/"path":"//; s/"$//'); do [ -e "$d" ] || gone=$((gone + 1)); done
[ -n "$last" ] && [ -s "$last/state.json" ] && [ "$(sqlite3 "$M/data/bitdistill.db" 'PRAGMA integrity_check')" = ok ]
ok $? "after the failed job the newest checkpoint ($(basename "${last:-none}")) is complete (state.json present); integrity_check ok"
diag "$nck checkpoints listed, $gone rotated away on disk"
kill -TERM "$PID"; wait "$PID"; PID=""
done_testing
