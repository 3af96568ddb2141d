#!/bin/sh
# tests/test-api-better.sh — "activate": "if_better" end to end with curl against the real daemon
# and tiny CPU jobs (a model from `bitdistill init`). The data make the outcome certain: the
# validation files hold positive SST-2 sentences only, a student trained on negative phrases
# only scores about 0 on them and one trained on positive phrases about 1. Checked:
#   - no active model: the student is activated ("nothing to beat"), with the event;
#   - a better student (positive) replaces it: compared with the active model's figure stored
#     for the same validation file, both figures in the `activation` event;
#   - a worse student (negative) is registered but not activated, the event says why;
#   - on another validation file the active model is evaluated by the trainer, and its figure
#     equals the accuracy this script computes from /v1/classify on that file's sentences;
#   - the decision event comes before the stream's end, and bad `activate` values are refused.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
D=${SHARED_DATA:-$top_srcdir/../shared/data}
T=$(mktemp -d /tmp/bd-test-better-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; pkill -9 -f "$T/data/jobs" 2>/dev/null; rm -rf "$T"' EXIT

if [ ! -f "$D/sst2/sentence/stsa.binary.train" ]; then
    skip "needs ../shared/data/sst2 (SST-2, not found at $D; set SHARED_DATA)"
    done_testing
    exit $?
fi

mkdir -p "$T/data/models"
"$B/bitdistill" init --config "$top_srcdir/tests/fixtures/train/tiny-config.json" --out "$T/data/models/tiny" --seed 1 >/dev/null
cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/data/models/tiny/tokenizer.json"
grep '^1 ' "$D/sst2/sentence/stsa.binary.train" | head -64 >"$T/pos.txt"
grep '^0 ' "$D/sst2/sentence/stsa.binary.train" | head -64 >"$T/neg.txt"
grep '^1 ' "$D/sst2/sentence/stsa.binary.dev" | head -24 >"$T/dev1.txt"
grep '^1 ' "$D/sst2/sentence/stsa.binary.dev" | sed -n 25,48p >"$T/dev2.txt"

"$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --job-threads 1 >>"$T/d.log" 2>&1 &
PID=$!
for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.05; done
U="http://127.0.0.1:$(cat "$T/port")"
jfield() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -1; }
upload() { curl -s --data-binary "@$1" "$U/v1/files?purpose=fine-tune&task=sst2&filename=$(basename "$1")" | jfield id; }
POS=$(upload "$T/pos.txt") NEG=$(upload "$T/neg.txt") DEV1=$(upload "$T/dev1.txt") DEV2=$(upload "$T/dev2.txt")
[ -n "$POS" ] && [ -n "$NEG" ] && [ -n "$DEV1" ] && [ -n "$DEV2" ]
ok $? "daemon up, four SST-2 slices uploaded"

# job TRAIN VALID -> job id; waits for the end of its event stream (kept in $T/JOB.sse)
job() {
    j=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$1\",
        \"validation_file\":\"$2\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":16}}},
        \"hyperparameters\":{\"batch_size\":8,\"learning_rate\":0.003},\"seed\":1,\"activate\":\"if_better\"}" | jfield id)
    timeout 300 curl -sN "$U/v1/fine_tuning/jobs/$j/events?stream=true" >"$T/$j.sse"
    echo "$j"
}
decision() { grep '"type":"activation"' "$T/$1.sse" | head -1; }
num() { echo "$2" | sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" | head -1; }
model_of() { curl -s "$U/v1/fine_tuning/jobs/$1" | jfield fine_tuned_model; }
active() { curl -s "$U/v1/models" | tr '}' '\n' | grep '"active":true' | jfield id; }

R=$(curl -s -w ' %{http_code}' "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$POS\",\"method\":{\"type\":\"bitnet_sft\"},\"activate\":\"if_better\"}")
echo "$R" | grep -q ' 400$' && echo "$R" | grep -q '"param":"validation_file"'
ok $? "if_better without a validation file -> 400 naming validation_file"
R=$(curl -s -w ' %{http_code}' "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$POS\",\"validation_file\":\"$DEV1\",\"method\":{\"type\":\"bitnet_sft\"},\"activate\":\"sometimes\"}")
echo "$R" | grep -q ' 400$' && echo "$R" | grep -q '"param":"activate"'
ok $? "activate \"sometimes\" -> 400 naming activate"

# 1. Nothing active: the (bad) student is activated.
J1=$(job "$NEG" "$DEV1")
E=$(decision "$J1")
echo "$E" | grep -q '"activated":true' && echo "$E" | grep -q 'nothing to beat'
ok $? "no active model: activated, nothing to beat ($E)"
M1=$(model_of "$J1")
is "$(active)" "$M1" "the first student is active"

# 2. A better student replaces it, compared with the stored figure on the same file.
J2=$(job "$POS" "$DEV1")
E=$(decision "$J2")
S=$(num student "$E") A=$(num active "$E")
echo "$E" | grep -q '"activated":true' && echo "$E" | grep -q "\"active_model\":\"$M1\"" &&
    echo "$E" | grep -q '"active_stored":true' && echo "$E" | grep -q '"metric":"accuracy"' &&
    awk -v s="$S" -v a="$A" 'BEGIN { exit !(s > a) }'
ok $? "better student activated: accuracy $S > the active model's stored $A ($E)"
M2=$(model_of "$J2")
is "$(active)" "$M2" "the better student is active"
grep -n '"type":"activation"\|\[DONE\]' "$T/$J2.sse" | head -2 | tail -1 | grep -q DONE
ok $? "the decision is streamed before the end of the job's events"

# 3. A worse student is registered but not activated.
J3=$(job "$NEG" "$DEV1")
E=$(decision "$J3")
S=$(num student "$E") A=$(num active "$E")
echo "$E" | grep -q '"activated":false' && echo "$E" | grep -q "\"active_model\":\"$M2\"" &&
    echo "$E" | grep -q 'does not beat' && awk -v s="$S" -v a="$A" 'BEGIN { exit !(s <= a) }'
ok $? "worse student kept out: accuracy $S vs $A ($E)"
is "$(curl -s "$U/v1/fine_tuning/jobs/$J3" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')" succeeded "the worse job still succeeded"
M3=$(model_of "$J3")
[ -n "$M3" ] && curl -s "$U/v1/models" | grep -q "\"id\":\"$M3\""
ok $? "its student is registered ($M3)"
is "$(active)" "$M2" "the active model did not change"

# 4. Another validation file: the trainer evaluates the active model; its figure matches
#    /v1/classify's accuracy on those sentences (the served path, computed here).
J4=$(job "$NEG" "$DEV2")
E=$(decision "$J4")
A=$(num active "$E")
cut -d' ' -f2- "$T/dev2.txt" | awk 'BEGIN { printf "{\"input\":[" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "%s\"%s\"", (NR > 1 ? "," : ""), $0 } END { print "]}" }' >"$T/dev2.json"
RIGHT=$(curl -s "$U/v1/classify" -d "@$T/dev2.json" | grep -o '"label":"positive","probs"' | wc -l)
echo "$E" | grep -q '"active_stored":false' && echo "$E" | grep -q "\"active_model\":\"$M2\"" &&
    awk -v a="$A" -v r="$RIGHT" 'BEGIN { d = a - r / 24; exit !(d < 1e-6 && d > -1e-6) }'
ok $? "on another file the active model is evaluated: $A = $RIGHT/24 by /v1/classify ($E)"
is "$(active)" "$M2" "still the better model active"
kill -0 "$PID"
ok $? "the daemon is still serving"
done_testing
