#!/bin/sh
# tests/test-bench-peers.sh — `bitdistill bench e2e --gguf` and bench/peers.sh's bookkeeping, on a
# tiny student (speed is not asserted: benchmarks print ratios, tests check what they print).
#   - bench e2e --gguf: the file size it prints is the file system's, one row per thread count
#     with positive rates, the ceiling share is tg / ceiling; clear errors (missing file, not a
#     student, a bad thread list).
#   - bench/peers.sh with stand-in peers (a build.sh and a llama-bench that print llama-bench's
#     CSV with fixed, quoted values): every peer row and thread count lands in the table, and the
#     last row is ours / the best peer per column, recomputed here; a peer that fails to build or
#     to run stops it with a message naming it. The real peers' build takes 20 minutes: it is
#     what bench/peers.sh itself runs, not make check.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
T=$(mktemp -d /tmp/bd-test-peers-XXXXXX)
trap 'rm -rf "$T"' EXIT
cfg=$top_srcdir/tests/fixtures/train/tiny-config.json

"$BD" init --config "$cfg" --out "$T/fp" --seed 3 >/dev/null 2>&1 &&
    "$BD" convert --model "$T/fp" --out "$T/s.gguf" --ternary --head q4 >/dev/null 2>&1
ok $? "a tiny 4-bit-head student to measure"

# ---- bench e2e --gguf -------------------------------------------------------------------------
"$BD" bench e2e --gguf "$T/s.gguf" --threads 1,2 --prompt 16 --decode 8 --reps 2 \
    --stream-mb 16 >"$T/e2e" 2>&1
ok $? "bench e2e --gguf runs"
is "$(sed -n 's/^student [^:]*: \([0-9]*\) bytes on disk.*/\1/p' "$T/e2e")" "$(stat -c %s "$T/s.gguf")" \
    "it prints the file's size as the file system has it"
is "$(awk '$1 ~ /^[0-9]+$/ && NF == 8 { printf "%s ", $1 }' "$T/e2e")" "1 2 " "one row per thread count"
awk '$1 ~ /^[0-9]+$/ && NF == 8 {
        frac = $8; sub(/%/, "", frac)
        if (!($2 > 0 && $4 > 0 && $6 > 0 && $7 > 0)) bad = 1
        if ((100 * $4 / $7 - frac) ^ 2 > 0.01 + 1e-6 * frac * frac) bad = 1
        n++
    } END { exit bad || n != 2 }' "$T/e2e"
ok $? "pp, tg, STREAM and ceiling are positive and the share is tg / ceiling"
grep -q "^pp16 and tg8 as llama-bench measures them" "$T/e2e"
ok $? "it states the definitions it used"
"$BD" bench e2e --gguf "$T/missing.gguf" >/dev/null 2>"$T/err"; rc=$?
is "$rc" 1 "a missing file fails"
grep -q "cannot read '$T/missing.gguf'" "$T/err"
ok $? "naming it: $(cat "$T/err")"
"$BD" bench e2e --gguf "$T/fp/config.json" --threads 1 >/dev/null 2>"$T/err"; rc=$?
is "$rc" 1 "a file that is not a student fails"
[ -s "$T/err" ]
ok $? "with the loader's message: $(cat "$T/err")"
"$BD" bench e2e --gguf "$T/s.gguf" --threads 1,x >/dev/null 2>"$T/err"; rc=$?
is "$rc" 2 "a bad thread list is a usage error"
grep -q "not '1,x'" "$T/err"
ok $? "naming it: $(head -1 "$T/err")"
"$BD" bench e2e --gguf "$T/s.gguf" --config "$cfg" >/dev/null 2>&1; rc=$?
is "$rc" 2 "--gguf with --config is a usage error"
"$BD" bench kernels --threads 0 >/dev/null 2>&1; rc=$?
is "$rc" 2 "bench kernels refuses 0 threads"

# ---- bench/peers.sh with stand-in peers ----------------------------------------------------------
# llama-bench's CSV: a header line, then every value quoted ("" inside a value), one row per test.
# pp rate = 100 * n_threads + the model's number, tg rate = 10 * n_threads + the model's number.
mkdir -p "$T/src"
cat >"$T/src/build.sh" <<'EOF'
set -e
D=$1; mkdir -p "$D/models" "$D/llama.cpp/build/bin" "$D/ik_llama.cpp/build/bin"
n=1
for m in f16 tq2_q4h tq2 q4_0 iq2bn_q4h iq2bn; do head -c $((n * 1000000)) /dev/zero >"$D/models/$m.gguf"; n=$((n + 1)); done
if [ -n "${FAIL_BUILD:-}" ]; then # as ../shared/peers/build.sh reports it
    echo "cc1plus: fatal error" >"$D/llama.cpp.build.log"
    echo "build.sh: llama.cpp failed, see $D/llama.cpp.build.log" >&2
    exit 1
fi
for e in llama.cpp ik_llama.cpp; do cat >"$D/$e/build/bin/llama-bench" <<'LB'
#!/bin/sh
m=; t=; rtr=0
while [ $# -gt 0 ]; do case $1 in -m) m=$2; shift ;; -t) t=$2; shift ;; -rtr) rtr=$2; shift ;; esac; shift; done
[ "${FAIL_RUN:-}" != "$(basename "$m")" ] || { echo "error: failed to load model" >&2; exit 1; }
k=$(( $(stat -c %s "$m") / 1000000 + rtr * 10 ))
echo 'build_commit,model_filename,cpu_info,n_threads,n_prompt,n_gen,avg_ts,stddev_ts'
for x in $(echo "$t" | tr , ' '); do
    echo "\"abc\",\"$m\",\"Some CPU, \"\"quoted\"\"\",\"$x\",\"128\",\"0\",\"$((100 * x + k)).300000\",\"1.5\""
    echo "\"abc\",\"$m\",\"Some CPU, \"\"quoted\"\"\",\"$x\",\"0\",\"64\",\"$((10 * x + k)).500000\",\"0.300000\""
done
LB
chmod +x "$D/$e/build/bin/llama-bench"; done
EOF
peers() { # peers THREADS -> $T/out, $T/perr
    PEERS_SRC=$T/src PEERS_DIR=$T/p PEERS_CONFIG=$cfg BITDISTILL=$BD REPS=2 STREAM_MB=16 \
        sh "$top_srcdir/bench/peers.sh" "$1" >"$T/out" 2>"$T/perr"
}
peers 1,2
ok $? "bench/peers.sh 1,2 runs with stand-in peers: $(tail -1 "$T/perr")"
is "$(grep -c '^| ' "$T/out")" 13 "one table: header, 9 engine rows, STREAM, ceiling, ratio"
grep -q '^| engine, type | size MB | pp128 t1 | pp128 t2 | tg64 t1 | tg64 t2 |$' "$T/out"
ok $? "columns: size, pp128 and tg64 per thread count"
# the best peer is ik IQ2_BN with -rtr 1 (file 6 MB, +10): pp 100t + 16.3, tg 10t + 16.5
grep -q '^| ik_llama.cpp IQ2_BN, -rtr 1 | 6.0 | 116.3 ± 1.5 | 216.3 ± 1.5 | 26.5 ± 0.3 | 36.5 ± 0.3 |$' "$T/out"
ok $? "a peer's row carries llama-bench's mean ± sd per thread count"
awk -F' *[|] *' '
    function v(s) { sub(/ ±.*/, "", s); gsub(/[*x]/, "", s); return s + 0 }
    /^[|] bitdistill student/ { for (i = 3; i <= 7; i++) ours[i] = v($i) }
    /^[|] (llama|ik_llama)/ { for (i = 4; i <= 7; i++) if (v($i) > best[i]) best[i] = v($i)
                              if (!small || v($3) < small) small = v($3) }
    /ratio ours/ { for (i = 4; i <= 7; i++) if ((v($i) - ours[i] / best[i]) ^ 2 > 1e-4) bad = 1
                   if ((v($3) - ours[3] / small) ^ 2 > 1e-2) bad = 1; seen = 1 }
    END { exit bad || !seen || best[4] != 116.3 || best[7] != 36.5 }' "$T/out"
ok $? "the last row is ours / the best peer per column (size: ours / the smallest file)"
grep -q '^best peer, tg64 t2: ik_llama.cpp IQ2_BN, -rtr 1 (36.5)$' "$T/out"
ok $? "the best peer of each column is named"
grep -q '^| STREAM triad GB/s (same run) | *| *| *| [0-9.]* | [0-9.]* |$' "$T/out"
ok $? "STREAM per thread count"
peers 2
grep -q '^| engine, type | size MB | pp128 t2 | tg64 t2 |$' "$T/out"
ok $? "one thread count, its own columns (reuses the built peers and our checkpoint)"
FAIL_RUN=q4_0.gguf peers 1; rc=$?
ok $((rc == 0)) "a peer that fails to run stops it (exit $rc)"
grep -q "llama.cpp Q4_0: llama-bench failed" "$T/perr"
ok $? "naming it: $(grep 'bench/peers.sh:' "$T/perr")"
rm -rf "$T/p/llama.cpp"
FAIL_BUILD=1 peers 1; rc=$?
ok $((rc == 0)) "peers that fail to build stop it (exit $rc)"
grep -q "the peers failed to build" "$T/perr" && grep -q "cc1plus: fatal error" "$T/perr"
ok $? "with the build log's tail: $(grep 'bench/peers.sh:' "$T/perr")"
peers 1,0 ; rc=$?
ok $((rc == 0)) "a bad THREADS list is refused: $(cat "$T/perr")"
done_testing
