#!/bin/sh
# tests/fuzz/test-fuzz.sh — run each libFuzzer target for FUZZ_TIME seconds (default 10) from its
# committed seed corpus (tests/fuzz/corpus/<target>/, read-only; new units go to a temporary
# directory). One assertion per target: the run ends without a crash, leak, sanitizer report,
# timeout or hang after N executions (libFuzzer's "Done N runs"). Longer runs: bench-style,
#   FUZZ_TIME=120 make check TESTS=tests/fuzz/test-fuzz.sh
# or run a target by hand: tests/fuzz/fuzz-http -max_total_time=600 DIR tests/fuzz/corpus/http
# The check runs with a fixed seed (FUZZ_SEED, default 1) so that a red run can be replayed and
# a green one does not turn red by chance; exploring is for the long runs (FUZZ_SEED=0 draws
# one), whose finds are committed to the seed corpus as regress-* units.
. "${top_srcdir:-.}/tests/tap.sh"
b=${top_builddir:-.}
t=${FUZZ_TIME:-10}
seed=${FUZZ_SEED:-1}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bdfuzz-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A tiny classification student for fuzz-http to serve (inference requests reach the engine).
if "$b/bitdistill" init --config "$top_srcdir/tests/fuzz/micro-config.json" --out "$tmp/fp" --seed 1 >/dev/null 2>&1 &&
    cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$tmp/fp/tokenizer.json" &&
    "$b/bitdistill" convert --model "$tmp/fp" --out "$tmp/cls.gguf" --ternary \
        --template "$(printf 'Review: {text}\nSentiment:')" --label negative=' negative' \
        --label positive=' positive' >/dev/null 2>&1; then
    FUZZ_MODEL="$tmp/cls.gguf"
    export FUZZ_MODEL
else
    diag "could not make the tiny student: fuzz-http runs without a model"
fi
total=0
for target in http gguf safetensors tokenizer data jinja; do
    bin="$b/tests/fuzz/fuzz-$target"
    if [ ! -x "$bin" ]; then
        if grep -q 'define BD_SANITIZERS 1' "$b/config.h" 2>/dev/null; then
            skip "fuzz-$target: sanitizer build (clang's ASan cannot link gcc-ASan objects; the normal build runs the fuzz targets)"
        else
            skip "fuzz-$target: no clang found by configure (install clang and libclang-rt-14-dev: deploy/packages/fuzz.list)"
        fi
        continue
    fi
    mkdir -p "$tmp/$target/new" "$tmp/$target/tmp"
    TMPDIR="$tmp/$target/tmp" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        "$bin" -max_total_time="$t" -timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
        -seed="$seed" -artifact_prefix="$tmp/$target/" \
        "$tmp/$target/new" "$top_srcdir/tests/fuzz/corpus/$target" >"$tmp/$target/log" 2>&1
    rc=$?
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$tmp/$target/log" | tail -1)
    if [ "$rc" -ne 0 ] || [ -z "$runs" ]; then
        grep -E -A30 'ERROR|==[0-9]+==|deadly|fuzz-' "$tmp/$target/log" | head -60 | sed 's/^/# /'
        for a in "$tmp/$target"/crash-* "$tmp/$target"/leak-* "$tmp/$target"/timeout-*; do
            [ -f "$a" ] && { diag "artifact $(basename "$a") (kept as $b/tests/fuzz/$(basename "$a")):"; cp "$a" "$b/tests/fuzz/"; }
        done
    fi
    ok $(( rc != 0 || ${#runs} == 0 )) "fuzz-$target: no crash, leak or hang in ${runs:-?} executions (${t} s, seed $seed, corpus tests/fuzz/corpus/$target)"
    total=$(( total + ${runs:-0} ))
done
diag "total executions: $total"
done_testing
