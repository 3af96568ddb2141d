#!/bin/sh
# tests/test-api-jobs.sh — the distillation service end to end with curl against the real daemon:
# upload SST-2 slices, submit a tiny bitdistill job on the CPU (a model from `bitdistill init`),
# stream its events, see it succeed and its student registered, activated and classifying;
# SIGKILL the daemon mid-job, restart, see the job resume from its checkpoint and succeed with
# contiguous event ids and one model; cancel a running job; 409 for a file in use; bad specs
# named; 50 hot-swaps under a continuous classify load with zero failed requests.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
D=${SHARED_DATA:-$top_srcdir/../shared/data}
T=$(mktemp -d /tmp/bd-test-jobs-XXXXXX)
PID=""
LOADPID=""
trap 'kill $LOADPID 2>/dev/null; kill -9 $PID 2>/dev/null; pkill -9 -f "$T/data/jobs" 2>/dev/null; rm -rf "$T"' EXIT

if [ ! -f "$D/sst2/sentence/stsa.binary.train" ]; then
    skip "needs ../shared/data/sst2 (SST-2, not found at $D; set SHARED_DATA)"
    done_testing
    exit $?
fi

start() {
    rm -f "$T/port"
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --job-threads 1 "$@" >>"$T/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.05; done
    P=$(cat "$T/port")
    U="http://127.0.0.1:$P"
}
jfield() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -1; }
status_of() { curl -s "$U/v1/fine_tuning/jobs/$1" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p' | head -1; }
wait_status() { # wait_status JOB WANT SECONDS
    for _ in $(seq $(($3 * 10))); do
        s=$(status_of "$1")
        case "$s" in succeeded|failed|cancelled) break ;; esac
        [ "$s" = "$2" ] && break
        sleep 0.1
    done
    status_of "$1"
}

mkdir -p "$T/data/models"
"$B/bitdistill" init --config "$top_srcdir/tests/fixtures/train/tiny-config.json" --out "$T/data/models/tiny" --seed 1 >/dev/null
cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/data/models/tiny/tokenizer.json"
head -96 "$D/sst2/sentence/stsa.binary.train" >"$T/train.txt"
head -32 "$D/sst2/sentence/stsa.binary.dev" >"$T/dev.txt"
start
[ -n "$P" ]
ok $? "daemon started"

# Files.
R=$(curl -s -w ' %{http_code}' -F purpose=fine-tune -F "file=@$T/train.txt" "$U/v1/files")
TF=$(echo "$R" | jfield id)
echo "$R" | grep -q '"rows":96' && echo "$R" | grep -q '"task":"sst2"' && echo "$R" | grep -q ' 201$'
ok $? "multipart upload: 201, detected sst2 with 96 rows"
is "$(echo "$R" | sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p')" "$(sha256sum "$T/train.txt" | cut -d' ' -f1)" "upload sha256 matches the content"
VF=$(curl -s --data-binary "@$T/dev.txt" "$U/v1/files?purpose=fine-tune&task=sst2&filename=dev.txt" | jfield id)
[ -n "$VF" ]
ok $? "raw upload with ?purpose=&task="
printf '1 good\n7 bad label\n' >"$T/bad.txt"
R=$(curl -s -w ' %{http_code}' --data-binary "@$T/bad.txt" "$U/v1/files?purpose=fine-tune&task=sst2")
echo "$R" | grep -q ' 422$' && echo "$R" | grep -q 'line 2'
ok $? "a dataset with an unknown label -> 422 naming the line: $R"
# a GLUE TSV (header row; dev.tsv calls its text column "content"): read by the declared name's
# format, which the stored file keeps for the trainer
head -50 "$D/sst2/glue/dev.tsv" >"$T/glue-dev.tsv"
R=$(curl -s -w ' %{http_code}' --data-binary "@$T/glue-dev.tsv" "$U/v1/files?purpose=fine-tune&task=sst2&filename=glue-dev.tsv")
echo "$R" | grep -q '"rows":49' && echo "$R" | grep -q ' 201$'
ok $? "a GLUE .tsv upload (filename=glue-dev.tsv): 201 with 49 rows: $R"
R=$(curl -s -w ' %{http_code}' --data-binary "@$T/train.txt" "$U/v1/files?purpose=weights")
echo "$R" | grep -q ' 400$'
ok $? "unknown purpose -> 400"
is "$(curl -s "$U/v1/files" | grep -o '"object":"file"' | wc -l)" 3 "three files listed"
ls "$T/data/files" | grep -q '\.tmp'
ok $((! $?)) "no temporary upload left behind"

# Bad specs, each naming its field.
spec() { curl -s -w ' %{http_code}' "$U/v1/fine_tuning/jobs" -d "$1"; }
GOOD="\"training_file\":\"$TF\",\"validation_file\":\"$VF\""
for c in \
    "400|method.type|{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"magic\"}}" \
    "404|training_file|{\"model\":\"tiny\",\"training_file\":\"file-nope\",\"method\":{\"type\":\"bitnet_sft\"}}" \
    "400|outside the model root|{\"model\":\"../../../../../../../../etc\",$GOOD,\"method\":{\"type\":\"bitnet_sft\"}}" \
    "404|model|{\"model\":\"nothere\",$GOOD,\"method\":{\"type\":\"bitnet_sft\"}}" \
    "400|method.bitdistill.distill.lr|{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"bitdistill\",\"bitdistill\":{\"distill\":{\"lr\":-1}}}}" \
    "400|hyperparameters.batch_size|{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"bitnet_sft\"},\"hyperparameters\":{\"batch_size\":0}}" \
    "422|wrong_task|{\"model\":\"tiny\",$GOOD,\"task\":\"cnndm\",\"method\":{\"type\":\"bitnet_sft\"}}" \
    "400|device|{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"bitnet_sft\"},\"device\":\"tpu\"}" \
    "400|colour|{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"bitnet_sft\"},\"colour\":1}"; do
    want=${c%%|*}; rest=${c#*|}; needle=${rest%%|*}; body=${rest#*|}
    R=$(spec "$body")
    echo "$R" | grep -q " $want\$" && echo "$R" | grep -q -- "$needle"
    ok $? "bad spec -> $want naming '$needle'"
done
is "$(curl -s "$U/v1/fine_tuning/jobs" | grep -o '"object":"fine_tuning.job"' | wc -l)" 0 "refused specs create no job"

# A tiny bitdistill job, streamed to the end.
J=$(spec "{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"bitdistill\",\"bitdistill\":{\"teacher_sft\":{\"steps\":6},\"distill\":{\"steps\":6}}},\"hyperparameters\":{\"batch_size\":8},\"suffix\":\"first\",\"activate\":true,\"seed\":3}")
JID=$(echo "$J" | jfield id)
echo "$J" | grep -q ' 200$' && [ -n "$JID" ]
ok $? "job accepted ($JID)"
timeout 300 curl -sN "$U/v1/fine_tuning/jobs/$JID/events?stream=true" >"$T/events.sse"
tail -2 "$T/events.sse" | grep -q 'data: \[DONE\]'
ok $? "the event stream ends with [DONE] when the job ends"
grep -q '"type":"step"' "$T/events.sse" && grep -q '"type":"done"' "$T/events.sse" && grep -q '"ce":' "$T/events.sse" && grep -q '"ad":' "$T/events.sse"
ok $? "events carry steps with CE/LD/AD, stages and done"
is "$(status_of "$JID")" succeeded "job succeeded"
MID=$(curl -s "$U/v1/fine_tuning/jobs/$JID" | jfield fine_tuned_model)
[ -n "$MID" ] && curl -s "$U/v1/models" | grep -q "\"id\":\"$MID\",.*\"active\":true"
ok $? "student $MID registered and active"
R=$(curl -s "$U/v1/classify" -d '{"input":["a gorgeous, witty film","dull and lifeless"]}')
echo "$R" | grep -q "\"model\":\"$MID\"" && echo "$R" | grep -q '"label":"\(positive\|negative\)"'
ok $? "classify answers with the new student"
R=$(curl -s "$U/v1/fine_tuning/jobs/$JID/events?after=3&limit=2")
echo "$R" | grep -q '"seq":4' && echo "$R" | grep -q '"seq":5' && echo "$R" | grep -q '"has_more":true'
ok $? "events list pages with after/limit"
curl -s -H 'Last-Event-ID: 5' "$U/v1/fine_tuning/jobs/$JID/events?stream=true" | head -1 | grep -q '^id: 6$'
ok $? "the stream replays after Last-Event-ID"
curl -s "$U/v1/fine_tuning/jobs/$JID/checkpoints" | grep -q '"object":"fine_tuning.job.checkpoint"'
ok $? "checkpoints listed"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/fine_tuning/jobs/$JID/cancel")" 409 "cancelling a finished job -> 409"

# A long job: SIGKILL the daemon under it, restart, it resumes and succeeds.
LONG="{\"model\":\"tiny\",$GOOD,\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":300}}},\"hyperparameters\":{\"batch_size\":8},\"suffix\":\"long\"}"
KJ=$(spec "$LONG" | jfield id)
for _ in $(seq 600); do
    curl -s "$U/v1/fine_tuning/jobs/$KJ/checkpoints" | grep -q step_number && break
    sleep 0.1
done
curl -s "$U/v1/fine_tuning/jobs/$KJ/checkpoints" | grep -q step_number
ok $? "the long job wrote a checkpoint"
is "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/v1/files/$TF")" 409 "deleting a file a running job uses -> 409"
kill -9 $PID; wait $PID 2>/dev/null
BEFORE=$(sqlite3 "$T/data/bitdistill.db" "select count(*) from job_events where job_id='$KJ'")
start
is "$(wait_status "$KJ" succeeded 300)" succeeded "after SIGKILL and restart the job resumed and succeeded"
grep -q "resuming from its last checkpoint" "$T/d.log"
ok $? "the restart resumed from the checkpoint (not from zero)"
SEQS=$(sqlite3 "$T/data/bitdistill.db" "select count(*), min(seq), max(seq), count(distinct seq) from job_events where job_id='$KJ'")
N=${SEQS%%|*}
is "$SEQS" "$N|1|$N|$N" "event ids contiguous from 1 with no duplicates ($N events, $BEFORE before the kill)"
is "$(sqlite3 "$T/data/bitdistill.db" "select count(*) from models where job_id='$KJ'")" 1 "exactly one model for the job"

# Cancel a running job.
CJ=$(spec "$LONG" | jfield id)
wait_status "$CJ" running 60 >/dev/null
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/fine_tuning/jobs/$CJ/cancel")" 200 "cancel accepted"
is "$(wait_status "$CJ" cancelled 30)" cancelled "the job ends cancelled"
is "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/v1/files/$VF")" 200 "the file is free again once no job runs"

# 50 hot-swaps under load.
M2=$(sqlite3 "$T/data/bitdistill.db" "select id from models where job_id='$KJ'")
( while :; do curl -s -o /dev/null -w '%{http_code}\n' "$U/v1/classify" -d '{"input":"an ok film"}'; done ) >"$T/load.txt" 2>/dev/null &
LOADPID=$!
sleep 0.5
RSS0=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
fails=0
for i in $(seq 25); do
    for m in "$M2" "$MID"; do
        c=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/v1/models/$m/activate")
        [ "$c" = 200 ] || fails=$((fails + 1))
    done
done
sleep 0.3
kill $LOADPID; wait $LOADPID 2>/dev/null; LOADPID=""
RSS1=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
is "$fails" 0 "50 activations answered 200"
total=$(wc -l <"$T/load.txt"); bad=$(grep -vc '^200$' "$T/load.txt")
[ "$total" -gt 20 ]
ok $? "classify load ran during the swaps ($total requests)"
is "$bad" 0 "zero failed classify requests during 50 hot-swaps"
[ $((RSS1 - RSS0)) -lt 20000 ]
ok $? "memory flat across the swaps (RSS $RSS0 -> $RSS1 kB)"
is "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/v1/models/$MID")" 409 "deleting the active model -> 409"
is "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/v1/models/$M2")" 200 "deleting an inactive model -> 200"

kill $PID; wait $PID; ok $? "daemon exits 0"
done_testing
