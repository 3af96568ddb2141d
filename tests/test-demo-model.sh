#!/bin/sh
# tests/test-demo-model.sh — the bundled demo model (models/demo) does what its model card says:
# the ternary student (student.gguf, through the engine as served) and the bf16 FP teacher
# classify the 872 SST-2 dev sentences (models/demo/data/sst2-dev.txt) with the accuracy stated
# in models/demo/README.md, the student also through `bitdistill eval`. Tolerance: 2 sentences
# either way (another CPU's kernels may round a near-tie differently; the card's counts were
# measured on AVX-512 here and on the GPU host).
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
M="$top_srcdir/models/demo"
T=$(mktemp -d /tmp/bd-test-demo-XXXXXX)
trap 'rm -rf "$T"' EXIT

cut -d' ' -f1 "$M/data/sst2-dev.txt" >"$T/labels"
cut -d' ' -f2- "$M/data/sst2-dev.txt" | tr '\n' '\0' >"$T/texts"
is "$(wc -l <"$T/labels")" 872 "the dev file has the 872 SST-2 dev sentences"

# card COLUMN-NAME: the "(N/872)" count stated on the card's row for that file
card() { grep "^| \`$1\`" "$M/README.md" | grep -o '([0-9]*/872)' | head -1 | tr -d '()' | cut -d/ -f1; }
# correct PREDICTIONS: predictions (one JSON line per sentence) agreeing with the labels
correct() {
    sed 's/.*"label":"\([a-z]*\)".*/\1/' "$1" | paste -d' ' "$T/labels" - |
        awk '{ n += ($1 == 1 && $2 == "positive") || ($1 == 0 && $2 == "negative") } END { print n + 0 }'
}
near() { [ -n "$2" ] && [ "$1" -ge $(($2 - 2)) ] && [ "$1" -le $(($2 + 2)) ]; }

xargs -0 "$BD" classify --model "$M/student.gguf" -- <"$T/texts" >"$T/student.jsonl" 2>"$T/err"
is "$(wc -l <"$T/student.jsonl")" 872 "the student classifies every dev sentence ($(head -c 200 "$T/err"))"
got=$(correct "$T/student.jsonl") want=$(card student.gguf)
near "$got" "$want"
ok $? "student.gguf: $got/872 correct, the card says $want/872"

# `bitdistill eval`, the trainer's stage-4 evaluation of a student file, finds the same count
"$BD" eval --model "$M/student.gguf" --task sst2 --data "$M/data/sst2-dev.txt" >"$T/eval.json" 2>"$T/err"
got=$(awk -v a="$(sed -n 's/.*"accuracy":\([0-9.e-]*\).*/\1/p' "$T/eval.json")" 'BEGIN { printf "%d", a * 872 + 0.5 }')
grep -q '"n":872' "$T/eval.json" && near "$got" "$want"
ok $? "bitdistill eval: student.gguf $got/872, the card says $want/872 ($(head -c 200 "$T/err"))"

xargs -0 "$BD" classify --model "$M/teacher" --template "$(printf 'Review: {text}\nSentiment:')" \
    --label negative=' negative' --label positive=' positive' -- <"$T/texts" >"$T/teacher.jsonl" 2>"$T/err"
is "$(wc -l <"$T/teacher.jsonl")" 872 "the teacher classifies every dev sentence ($(head -c 200 "$T/err"))"
got=$(correct "$T/teacher.jsonl") want=$(card teacher/)
near "$got" "$want"
ok $? "teacher/ (bf16): $got/872 correct, the card says $want/872"

# the student file carries the template, labels and the teacher's hash it was distilled from
sha=$(sha256sum "$M/teacher/model.safetensors" | cut -c1-64)
grep -q "$(printf '%s' "$sha" | cut -c1-12)" "$M/README.md"
ok $? "the card names the teacher file's sha256 ($(printf '%s' "$sha" | cut -c1-12)...)"
done_testing
