#!/bin/sh
# tests/fault/test-crash.sh — crash and restart: CRASH_KILLS (default 20) SIGKILLs of the daemon
# at random moments (0.3-2.5 s after each start) while a CPU job runs and uploads stream in,
# then a clean run to the end. Checked after all: the job succeeded and resumed from its
# checkpoints; its event ids are contiguous from 1 with no duplicates; it made exactly one
# model; every file row has its file on disk and every file on disk has its row (no partial
# upload left); integrity_check. Then SIGKILL of a trainer child: the job ends `failed` with a
# reason, and with --job-retries 1 it is retried and succeeds.
. "${top_srcdir:-.}/tests/tap.sh"
B=${top_builddir:-.}
KILLS=${CRASH_KILLS:-20}
T=$(mktemp -d /tmp/bd-test-crash-XXXXXX)
PID=""
UPID=""
trap 'kill $UPID 2>/dev/null; kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
DB="$T/data/bitdistill.db"
# Job lengths (steps) so that the kills land mid-job; the sanitizer build's trainer is ~4x slower.
S1=6000 S2=3000 S3=1500
grep -q "define BD_SANITIZERS 1" "$B/config.h" 2>/dev/null && S1=3000 S2=3000 S3=400
start() {
    rm -f "$T/port"
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --job-threads 1 "$@" >>"$T/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done
    U="http://127.0.0.1:$(cat "$T/port")"
}
status_of() { curl -s "$U/v1/fine_tuning/jobs/$1" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p' | head -1; }
wait_end() { # wait_end JOB SECONDS
    for _ in $(seq $(($2 * 10))); do
        case "$(status_of "$1")" in succeeded|failed|cancelled) break ;; esac
        sleep 0.1
    done
    status_of "$1"
}
mkdir -p "$T/data/models"
"$B/bitdistill" init --config "$top_srcdir/tests/fuzz/micro-config.json" --out "$T/data/models/tiny" --seed 1 >/dev/null &&
    cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/data/models/tiny/tokenizer.json"
ok $? "tiny model made"
awk 'BEGIN { for (i = 0; i < 64; i++) printf "%d a %s film number %d\n", i % 2, i % 2 ? "good" : "bad", i }' >"$T/train.txt"
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "%d a film numbered %d, good or bad\n", i % 2, i }' >"$T/up.txt"
start
F=$(curl -s --data-binary "@$T/train.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=t.txt" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
J=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$F\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":$S1}}},\"hyperparameters\":{\"batch_size\":4},\"suffix\":\"crash\"}" | sed -n 's/.*"id":"\(ftjob[^"]*\)".*/\1/p' | head -1)
[ -n "$J" ]
ok $? "job submitted"
uploads() { while :; do curl -s -o /dev/null --data-binary "@$T/up.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=u.txt"; done; }
kills=0
for i in $(seq "$KILLS"); do
    uploads &
    UPID=$!
    sleep "$(awk -v s="$i$$" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 2.2 }')"
    if [ $((i % 5)) -eq 0 ]; then # every fifth kill lands after a checkpoint exists, so that
        # a loaded machine (slow trainer start-ups) still exercises at least one resume
        for _ in $(seq 600); do
            curl -s "$U/v1/fine_tuning/jobs/$J/checkpoints" | grep -q '"step_number"' && break
            sleep 0.1
        done
    fi
    kill -9 "$PID" && kills=$((kills + 1))
    wait "$PID" 2>/dev/null
    kill "$UPID" 2>/dev/null; wait "$UPID" 2>/dev/null; UPID=""
    start
done
is "$kills" "$KILLS" "daemon SIGKILLed $KILLS times at random moments during the job and uploads"
st=$(wait_end "$J" 600)
is "$st" succeeded "after the kills the job completes"
resumes=$(grep -c "resuming from its last checkpoint" "$T/d.log")
[ "$resumes" -ge 1 ]
ok $? "restarts resumed the job from its checkpoints ($resumes resumes)"
SEQS=$(sqlite3 "$DB" "select count(*), min(seq), max(seq), count(distinct seq) from job_events where job_id='$J'")
N=${SEQS%%|*}
is "$SEQS" "$N|1|$N|$N" "event ids contiguous from 1, no duplicates ($N events)"
is "$(sqlite3 "$DB" "select count(*) from models where job_id='$J'")" 1 "exactly one model for the job"
# a stored file is ID or ID.EXT (the upload's format suffix): the rows' paths name them
rows=$(sqlite3 "$DB" "select path from files order by path")
names=$(echo "$rows" | sed 's|.*/||')
disk=$(ls -A "$T/data/files" | sort)
[ "$rows" = "$(echo "$rows" | while read -r f; do [ -f "$f" ] && echo "$f"; done)" ]
ok $? "every file row has its file on disk ($(echo "$rows" | grep -c .) rows)"
extra=$(echo "$disk" | grep -v -x -F "$names" | grep -c .)
is "$extra" 0 "no file on disk without its row (partial uploads left by the kills: $(echo "$disk" | grep -v -x -F "$names" | head -3 | tr '\n' ' '))"
is "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok "integrity_check after $KILLS kills"
kill -TERM $PID; wait $PID; PID=""

# SIGKILL of the trainer child.
kill_trainer() { # kill_trainer JOB: once the trainer has reported a step, SIGKILL it
    for _ in $(seq 600); do [ "$(status_of "$1")" = running ] && break; sleep 0.1; done
    for _ in $(seq 600); do
        curl -s "$U/v1/fine_tuning/jobs/$1/events?limit=1000" | grep -q '"type":"step"' && break
        sleep 0.1
    done
    for p in $(pgrep -f "$T/data/jobs/$1"); do kill -9 "$p"; done
}
start
J2=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$F\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":$S2}}},\"hyperparameters\":{\"batch_size\":4}}" | sed -n 's/.*"id":"\(ftjob[^"]*\)".*/\1/p' | head -1)
kill_trainer "$J2"
st=$(wait_end "$J2" 60)
curl -s "$U/v1/fine_tuning/jobs/$J2" >"$T/j2.json"
[ "$st" = failed ] && grep -q '"error":{"message":"[^"]' "$T/j2.json"
ok $? "trainer SIGKILLed: the job ends failed with a reason ($(grep -o '"error":{"message":"[^"]*"' "$T/j2.json"))"
kill -TERM $PID; wait $PID; PID=""
start --job-retries 1
J3=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$F\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":$S3}}},\"hyperparameters\":{\"batch_size\":4}}" | sed -n 's/.*"id":"\(ftjob[^"]*\)".*/\1/p' | head -1)
kill_trainer "$J3"
is "$(wait_end "$J3" 300)" succeeded "with --job-retries 1 the killed trainer's job is retried and succeeds"
kill -TERM $PID; wait $PID; PID=""
done_testing
