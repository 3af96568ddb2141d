#!/bin/sh
# tests/test-eng-bpetrain-cli.sh — `bitdistill tokenizer-train` end to end: a tokenizer trained
# on a small corpus loads in `bitdistill tokenize` and round-trips text; the output does not
# depend on the thread count; lines that are not UTF-8 are skipped with a warning; bad input
# (missing file, directory, --vocab too small, missing options, no text) exits non-zero with a
# message naming the problem (2 for usage, 1 for inputs).
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
T=$(mktemp -d /tmp/bd-test-bpecli-XXXXXX)
trap 'rm -rf "$T"' EXIT

"$BD" --help >"$T/help" 2>&1
grep -q "^  tokenizer-train " "$T/help"
ok $? "bitdistill --help lists tokenizer-train"
"$BD" tokenizer-train --help >"$T/h" 2>&1
grep -q -- "--min-frequency K" "$T/h"
ok $? "tokenizer-train --help documents its options"

# A small corpus: this repository's docs and engine sources (always there), twice over so that
# pairs repeat.
for f in "$top_srcdir"/docs/*.md "$top_srcdir"/engine/tokenizer.c; do
    cat "$f" "$f"
done >"$T/a.txt"
printf 'plain line\n\377\376 not utf-8\nanother plain line\n' >"$T/b.txt"

"$BD" tokenizer-train --vocab 600 --out "$T/tok.json" --threads 2 "$T/a.txt" "$T/b.txt" 2>"$T/err"
ok $? "trains 600 tokens on $(wc -c <"$T/a.txt") bytes"
grep -q "'$T/b.txt': skipped 1 line that is not valid UTF-8, the first is line 2" "$T/err"
ok $? "warns about the line that is not UTF-8, naming file and line"
grep -q "600 tokens (256 bytes + 341 merged + 3 special)" "$T/err"
ok $? "reports the vocabulary: $(tail -1 "$T/err")"

"$BD" tokenizer-train --vocab 600 --out "$T/tok1.json" --threads 1 "$T/a.txt" "$T/b.txt" \
    2>/dev/null && cmp -s "$T/tok.json" "$T/tok1.json"
ok $? "1 thread writes the same file as 2 threads"
cat "$T/a.txt" "$T/b.txt" | "$BD" tokenizer-train --vocab 600 --out "$T/tok2.json" - 2>/dev/null &&
    cmp -s "$T/tok.json" "$T/tok2.json"
ok $? "'-' reads stdin: the same file as the two inputs"

text='Hello, world: the tokenizer round-trips “quotes”, émoji 🎉, and   spaces.'
ids=$(printf '%s' "$text" | "$BD" tokenize --model "$T/tok.json" 2>"$T/err")
ok $? "bitdistill tokenize loads the trained tokenizer.json ($(echo "$ids" | wc -w) ids)"
back=$(echo "$ids" | "$BD" tokenize --model "$T/tok.json" --decode 2>/dev/null)
is "$back" "$text" "tokenize --decode gives the text back"
ids=$(printf '<|im_start|>user' | "$BD" tokenize --model "$T/tok.json" 2>/dev/null)
is "${ids%% *}" 598 "<|im_start|> is id 598 (specials are the last three ids)"

# Bad input.
"$BD" tokenizer-train --vocab 600 --out "$T/x.json" "$T/nope.txt" 2>"$T/err"; rc=$?
is "$rc" 1 "missing file: exit 1"
grep -q "cannot open '$T/nope.txt': No such file or directory" "$T/err"
ok $? "with a message naming it: $(cat "$T/err")"
[ ! -e "$T/x.json" ]
ok $? "and no output file"
"$BD" tokenizer-train --vocab 600 --out "$T/x.json" "$T" 2>"$T/err"; rc=$?
is "$rc" 1 "a directory as input: exit 1"
grep -q "cannot read '$T': Is a directory" "$T/err"
ok $? "with a message naming it: $(cat "$T/err")"
"$BD" tokenizer-train --vocab 100 --out "$T/x.json" "$T/a.txt" 2>"$T/err"; rc=$?
is "$rc" 2 "--vocab 100: exit 2"
grep -q "vocabulary size 100 is smaller than the 256 byte tokens plus 3 special tokens (259)" \
    "$T/err"
ok $? "with a message naming the limit: $(cat "$T/err")"
"$BD" tokenizer-train --vocab 12x --out "$T/x.json" "$T/a.txt" 2>"$T/err"; rc=$?
is "$rc" 2 "--vocab 12x: exit 2"
grep -q -- "--vocab '12x' is not a number" "$T/err"
ok $? "with a message: $(cat "$T/err")"
"$BD" tokenizer-train --out "$T/x.json" "$T/a.txt" 2>"$T/err"; rc=$?
is "$rc" 2 "no --vocab: exit 2"
grep -q -- "--vocab is required" "$T/err"
ok $? "with a message: $(tail -1 "$T/err")"
"$BD" tokenizer-train --vocab 600 "$T/a.txt" 2>"$T/err"; rc=$?
grep -q -- "--out is required" "$T/err"
ok $(( rc != 2 || $? )) "no --out: exit 2 and a message: $(tail -1 "$T/err")"
"$BD" tokenizer-train --vocab 600 --out "$T/x.json" 2>"$T/err"; rc=$?
grep -q "no input FILE given" "$T/err"
ok $(( rc != 2 || $? )) "no input file: exit 2 and a message: $(tail -1 "$T/err")"
"$BD" tokenizer-train --vocab 600 --threads 0 --out "$T/x.json" "$T/a.txt" 2>"$T/err"; rc=$?
grep -q -- "--threads '0' is not a number in 1..256" "$T/err"
ok $(( rc != 2 || $? )) "--threads 0: exit 2 and a message: $(cat "$T/err")"
"$BD" tokenizer-train --vocab 600 --out "$T/no/such/dir/x.json" "$T/a.txt" 2>"$T/err"; rc=$?
grep -q "cannot write '$T/no/such/dir/x.json': directory '$T/no/such/dir' does not exist" "$T/err"
ok $(( rc != 1 || $? )) "output directory missing: exit 1 before counting: $(cat "$T/err")"
printf '\377\n\376\n' >"$T/bad.txt"
"$BD" tokenizer-train --vocab 600 --out "$T/x.json" "$T/bad.txt" 2>"$T/err"; rc=$?
grep -q "the input holds no valid UTF-8 text" "$T/err"
ok $(( rc != 1 || $? )) "no valid text at all: exit 1 and a message: $(tail -1 "$T/err")"

done_testing
