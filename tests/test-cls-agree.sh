#!/bin/sh
# tests/test-cls-agree.sh — classification has one scoring rule (eng_label_scores: softmax over
# the label logits, the first maximum wins) and its three users agree on the demo model
# (models/demo) over the first N SST-2 dev sentences:
#   - the CLI, `bitdistill classify`, and serving, the daemon's POST /v1/classify (batched),
#     give the student the same label for every sentence and the same probabilities to float
#     rounding (CLS_PROB_TOL; both run the same student kernels, the daemon several rows a pass);
#   - `bitdistill eval` (the trainer's stage-4 evaluation of a student file) counts exactly the
#     sentences the CLI got right;
#   - the trainer's own evaluation of a model it holds (a fp16_sft job over the demo teacher with
#     lr 0, so the weights stay as loaded) counts the teacher's correct answers as the CLI does on
#     teacher/ to within CLS_FORWARD_SLACK sentences: the trainer's forward pads a batch and the
#     engine's does not, so a sentence whose two label logits tie to float rounding may fall
#     either way (the scoring itself is the same function).
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/daemon.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
M="$top_srcdir/models/demo"
N=200
CLS_PROB_TOL=1e-5
CLS_FORWARD_SLACK=1
T=$(mktemp -d /tmp/bd-test-agree-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

need python3

head -n $N "$M/data/sst2-dev.txt" >"$T/dev.txt"
cut -d' ' -f1 "$T/dev.txt" >"$T/labels"
cut -d' ' -f2- "$T/dev.txt" >"$T/texts.txt"
tr '\n' '\0' <"$T/texts.txt" >"$T/texts"
is "$(wc -l <"$T/labels")" $N "the first $N dev sentences"

# correct PREDICTIONS: predictions (one JSON line per sentence) agreeing with the labels
correct() {
    sed 's/.*"label":"\([a-z]*\)".*/\1/' "$1" | paste -d' ' "$T/labels" - |
        awk '{ n += ($1 == 1 && $2 == "positive") || ($1 == 0 && $2 == "negative") } END { print n + 0 }'
}

# ---- the student: CLI, serving, `bitdistill eval`
xargs -0 "$BD" classify --model "$M/student.gguf" -- <"$T/texts" >"$T/cli.jsonl" 2>"$T/err"
is "$(wc -l <"$T/cli.jsonl")" $N "the CLI classifies every sentence ($(head -c 200 "$T/err"))"

bd_daemon "$T" --model "$M/student.gguf"
ok $? "daemon serving the demo student"
python3 - "$U" "$T/texts.txt" >"$T/served.jsonl" 2>"$T/py.err" <<'EOF'
import json, sys, urllib.request
texts = open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]
req = urllib.request.Request(sys.argv[1] + "/v1/classify", method="POST",
                             data=json.dumps({"input": texts}).encode(),
                             headers={"Content-Type": "application/json"})
d = json.load(urllib.request.urlopen(req, timeout=300))["data"]
for item in sorted(d, key=lambda x: x["index"]):
    print(json.dumps({"label": item["label"], "probs": item["probs"]}, separators=(",", ":")))
EOF
is "$(wc -l <"$T/served.jsonl")" $N "serving classifies every sentence ($(head -c 200 "$T/py.err"))"

python3 - "$T/cli.jsonl" "$T/served.jsonl" "$CLS_PROB_TOL" >"$T/cmp.txt" 2>&1 <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
bad = 0
for i, (x, y) in enumerate(zip(a, b)):
    d = max(abs(x["probs"][k] - y["probs"][k]) for k in x["probs"])
    if x["label"] != y["label"] or d > tol or set(x["probs"]) != set(y["probs"]):
        bad += 1
        if bad <= 5:
            print("# sentence %d: cli %s %s, served %s %s" % (i, x["label"], x["probs"],
                                                            y["label"], y["probs"]))
print("mismatches %d of %d" % (bad, len(a)))
EOF
grep -q "^mismatches 0 of $N" "$T/cmp.txt"
ok $? "CLI and serving agree on every label and on every probability within $CLS_PROB_TOL ($(tail -1 "$T/cmp.txt"))"
[ -s "$T/cmp.txt" ] && grep '^#' "$T/cmp.txt"

cli=$(correct "$T/cli.jsonl")
"$BD" eval --model "$M/student.gguf" --task sst2 --data "$T/dev.txt" >"$T/eval.json" 2>"$T/err"
got=$(awk -v a="$(sed -n 's/.*"accuracy":\([0-9.e-]*\).*/\1/p' "$T/eval.json")" -v n=$N \
    'BEGIN { printf "%d", a * n + 0.5 }')
grep -q "\"n\":$N" "$T/eval.json" && [ "$got" = "$cli" ]
ok $? "bitdistill eval counts the student's correct sentences as the CLI does: $got and $cli of $N ($(head -c 200 "$T/err"))"

# ---- the teacher: the CLI against the trainer's own evaluation
xargs -0 "$BD" classify --model "$M/teacher" --template "$(printf 'Review: {text}\nSentiment:')" \
    --label negative=' negative' --label positive=' positive' -- <"$T/texts" >"$T/teacher.jsonl" \
    2>"$T/err"
is "$(wc -l <"$T/teacher.jsonl")" $N "the CLI classifies every sentence with the teacher ($(head -c 200 "$T/err"))"
cli=$(correct "$T/teacher.jsonl")

head -n 4 "$M/data/sst2-train-slice.txt" >"$T/train.txt"
cat >"$T/job.json" <<EOF
{"method": "fp16_sft", "model": "$M/teacher", "task": "sst2",
 "train_file": "$T/train.txt", "validation_file": "$T/dev.txt", "max_eval_examples": $N,
 "teacher_sft": {"steps": 1, "batch": 4, "lr": 0, "weight_decay": 0, "warmup": 0}}
EOF
"$BD" train --config "$T/job.json" --out "$T/job" --threads 1 --quiet --events-fd 3 \
    3>"$T/events.jsonl" >/dev/null 2>"$T/err"
rc=$?
acc=$(grep '"type":"eval"' "$T/events.jsonl" | grep '"model":"teacher"' | head -1 |
    sed -n 's/.*"accuracy":\([0-9.e-]*\).*/\1/p')
got=$(awk -v a="$acc" -v n=$N 'BEGIN { printf "%d", a * n + 0.5 }')
[ $rc -eq 0 ] && [ -n "$acc" ] && [ "$got" -ge $((cli - CLS_FORWARD_SLACK)) ] &&
    [ "$got" -le $((cli + CLS_FORWARD_SLACK)) ]
ok $? "the trainer's evaluation of the teacher: $got of $N correct, the CLI $cli (rc $rc; $(tail -c 200 "$T/err"))"
done_testing
