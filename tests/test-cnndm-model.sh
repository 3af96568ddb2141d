#!/bin/sh
# tests/test-cnndm-model.sh — the bundled summarizer (models/summarize) does what its model card
# says, and serves out of the box:
#   - `bitdistill eval` re-measures ROUGE-1/2/L and BLEU on the first 20 CNN/DM validation
#     articles of ../shared/data and finds the card's slice row (0.5 points of tolerance: another
#     CPU's kernels may break a near-tie between two tokens differently and change a summary);
#   - the student carries a ChatML chat template and its summarize template is the same user turn,
#     so /v1/chat/completions with the task line and an article answers what /v1/summarize answers;
#   - /v1/summarize takes a whole CNN/DM article longer than the 512-token context: it reads the
#     article's start and says so (truncated, input_chars_read), where a short text is not cut.
# The HTTP checks run through curl against a real bitdistilld serving both bundled models.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/daemon.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
M="$top_srcdir/models/summarize"
D=${BITDISTILL_DATA:-$top_srcdir/../shared/data}
T=$(mktemp -d /tmp/bd-test-cnndm-XXXXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$T"' EXIT
PID=

# card ROW FIELD: the figure of FIELD (rouge1 rouge2 rougeL bleu) in the card's row ROW (its table:
# | articles | n | ROUGE-1 | ROUGE-2 | ROUGE-L | BLEU |)
card() {
    col=$(case $2 in rouge1) echo 4 ;; rouge2) echo 5 ;; rougeL) echo 6 ;; bleu) echo 7 ;; esac)
    grep "^| $1 |" "$M/README.md" | head -1 | cut -d'|' -f"$col" | tr -d ' '
}
# pct JSON NAME: a figure from `bitdistill eval`'s line in the card's unit (ROUGE is a fraction
# there and a percentage on the card; BLEU is on the 0-100 scale in both)
pct() {
    sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p" "$1" |
        awk -v f="$2" '{ printf "%.2f", f == "bleu" ? $1 : $1 * 100 }'
}
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(b != "" && d <= 0.5 && d >= -0.5) }'; }

if [ -f "$D/cnndm/validation.jsonl" ]; then
    "$BD" eval --model "$M/summarizer.gguf" --task cnndm --data "$D/cnndm/validation.jsonl" --max 20 \
        >"$T/eval.json" 2>"$T/err"
    grep -q '"n":20' "$T/eval.json"
    ok $? "bitdistill eval ran on 20 validation articles ($(head -c 200 "$T/err"))"
    for f in rouge1 rouge2 rougeL bleu; do
        got=$(pct "$T/eval.json" "$f") want=$(card "first 20" "$f")
        near "$got" "$want"
        ok $? "$f on the first 20 articles: $got, the card says $want"
    done
    # the 100-article row is what the card leads with: it must be the full validation file's
    is "$(wc -l <"$D/cnndm/validation.jsonl")" 100 "the validation file has the card's 100 articles"
else
    for f in eval rouge1 rouge2 rougeL bleu count; do
        skip "no CNN/DM validation file at $D/cnndm (../shared/data absent)"
    done
fi

# the student file: ternary, its summarize template a ChatML user turn, a ChatML chat template
sz=$(wc -c <"$M/summarizer.gguf")
[ "$sz" -le 15728640 ]
ok $? "summarizer.gguf is $sz bytes (<= 15 MiB)"

bd_daemon "$T" --model "$M/summarizer.gguf,$top_srcdir/models/demo/student.gguf"
ok $? "bitdistilld serves the summarizer beside the classifier ($(tail -c 300 "$T/d.log"))"
curl -s "$U/v1/models" >"$T/models.json"
grep -q '"summarization"' "$T/models.json" && grep -q '"classification"' "$T/models.json"
ok $? "/v1/models lists a summarization and a classification model"

# a long article (the validation file's when present, else the card's own text, repeated)
if [ -f "$D/cnndm/validation.jsonl" ]; then
    jq -c '{input: .article}' "$D/cnndm/validation.jsonl" | head -1 >"$T/long.json"
else
    jq -Rsc '{input: (. * 6)}' "$M/README.md" >"$T/long.json"
fi
code=$(curl -s -o "$T/long.out" -w '%{http_code}' "$U/v1/summarize" -d "@$T/long.json")
is "$code" 200 "/v1/summarize answers 200 on an article longer than the context ($(head -c 200 "$T/long.out"))"
jq -e '.truncated == true and .usage.truncated == true and
       .usage.input_chars_read < .usage.input_chars and .usage.input_chars_read > 200 and
       (.summary_text | length) > 0 and .usage.prompt_tokens + .usage.completion_tokens <= 512' \
    "$T/long.out" >/dev/null
ok $? "it read the article's start, said so, and wrote a summary ($(jq -c .usage "$T/long.out"))"
code=$(curl -s -o "$T/strict.out" -w '%{http_code}' "$U/v1/summarize" \
    -d "$(jq -c '. + {truncate: false}' "$T/long.json")")
is "$code" 400 "with \"truncate\": false the long article is refused ($(head -c 160 "$T/strict.out"))"
code=$(curl -s -o "$T/bad.out" -w '%{http_code}' "$U/v1/summarize" -d '{"input":"x","truncate":"yes"}')
grep -q '"param":"truncate"' "$T/bad.out"
ok $? "a truncate that is not a boolean is a 400 naming it ($code $(head -c 160 "$T/bad.out"))"

# a short article: not cut; /v1/chat/completions with the same user turn writes the same text
art="The city council approved a plan on Tuesday to build a new bridge over the river. The bridge will cost 40 million dollars and open in 2028, officials said."
curl -s "$U/v1/summarize" -d "$(jq -nc --arg a "$art" '{input: $a, max_tokens: 48}')" >"$T/short.out"
jq -e '.truncated == false and .usage.input_chars_read == .usage.input_chars' "$T/short.out" >/dev/null
ok $? "a short article is read whole ($(jq -c .usage "$T/short.out"))"
msg=$(jq -nc --arg a "$art" '{model: "summarizer", messages: [{role: "user",
    content: ("Summarize this news article.\n\n" + $a)}], max_tokens: 48}')
sid=$(jq -r .model "$T/short.out")
curl -s "$U/v1/chat/completions" -d "$(printf '%s' "$msg" | jq -c --arg m "$sid" '.model = $m')" >"$T/chat.out"
jq -e '.object == "chat.completion" and (.choices[0].message.content | length) > 0' "$T/chat.out" >/dev/null
ok $? "/v1/chat/completions answers with the bundled summarizer ($(head -c 200 "$T/chat.out"))"
is "$(jq -r '.choices[0].message.content' "$T/chat.out")" "$(jq -r .summary_text "$T/short.out")" \
    "the chat answer equals the summary: the chat template renders the trained prompt"
curl -s "$U/apply-template" -d "$(printf '%s' "$msg" | jq -c --arg m "$sid" '.model = $m | del(.max_tokens)')" >"$T/tpl.out"
is "$(jq -r .prompt "$T/tpl.out")" "$(printf '<|im_start|>user\nSummarize this news article.\n\n%s<|im_end|>\n<|im_start|>assistant\n' "$art")" \
    "/apply-template renders the ChatML turn the student was trained on"
curl -s "$U/v1/classify" -d '{"input":"a gorgeous, witty film"}' >"$T/cls.out"
grep -q '"positive"' "$T/cls.out"
ok $? "the classifier still answers beside it ($(head -c 160 "$T/cls.out"))"
done_testing
