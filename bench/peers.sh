#!/bin/sh
# bench/peers.sh [THREADS] — our ternary student against llama.cpp and ik_llama.cpp on this CPU,
# side by side in one run, at each thread count of THREADS (a comma list, default 1,2).
#
# 1. Builds the peers (unmodified llama.cpp and ik_llama.cpp snapshots) with
#    $PEERS_SRC/build.sh (default ../shared/peers; see its README.md) into $PEERS_DIR (default
#    build/peers, reused when built), which also writes the same random Qwen3-0.6B shapes as GGUF
#    files: f16, tq2_q4h (TQ2_0 body, Q4_0 embedding/head), tq2, q4_0 (llama.cpp) and iq2bn_q4h,
#    iq2bn (ik_llama.cpp IQ2_BN).
# 2. Makes our student of the same shapes: `bitdistill init --config engine/configs/qwen3-0.6b.json`
#    (cached in $PEERS_DIR/ours/fp), then `bitdistill convert --ternary --head q4` (every run).
# 3. Measures pp128 and tg64 (tokens/s) the way llama-bench defines them: pp128 = one forward of
#    a 128-token prompt, tg64 = 64 one-token forwards, each run from an empty context, after one
#    warm-up; the MEAN (and sample sd) over $REPS runs (default 3), which is what llama-bench
#    reports. Ours: `bitdistill bench e2e --gguf` (bench/e2e.c); the peers: `llama-bench -p 128
#    -n 64 -r $REPS -t THREADS -o csv`, each with its default flash-attention setting.
#    ik_llama.cpp runs with and without run-time repacking (-rtr 1): both rows are shown.
# 4. STREAM triad (bench e2e's, 3 x 256 MiB, at each thread count, in the same run) and our
#    decode ceiling = STREAM / bytes a tg step of our student reads (weights + KV cache).
# 5. Prints one markdown table: engine and type, file size on disk (MB = 1e6 bytes), pp128 and
#    tg64 per thread count as "mean ± sd", STREAM and ceiling rows, and a last row "ratio ours /
#    best peer" per column (size: ours / the smallest peer file; pp, tg: ours / the fastest
#    peer row, named below the table).
# Exits non-zero with a message when a peer fails to build or to run.
#
# Needs: deploy/install-deps.sh bench (cmake, g++, ninja, python3-numpy). Environment:
#   PEERS_SRC, PEERS_DIR, PEERS_JOBS (build jobs, default nproc), REPS, BUILD (our build tree,
#   default build/normal), BITDISTILL (a prebuilt bitdistill binary instead of $BUILD's; used
#   by tools/peers_device_run.sh); for tests/test-bench-peers.sh: PEERS_CONFIG (our model's
#   shapes, default the peers' Qwen3-0.6B), STREAM_MB (MiB per STREAM array, default 256).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-1,2}
PEERS_SRC=${PEERS_SRC:-$top/../shared/peers}
PEERS_DIR=${PEERS_DIR:-$top/build/peers}
PEERS_JOBS=${PEERS_JOBS:-$(nproc)}
REPS=${REPS:-3}
B=${BUILD:-$top/build/normal}
cfg=${PEERS_CONFIG:-$top/engine/configs/qwen3-0.6b.json}
T=$(mktemp -d /tmp/bd-bench-peers-XXXXXX)
trap 'rm -rf "$T"' EXIT

die() { echo "bench/peers.sh: $*" >&2; exit 1; }
echo "$threads" | grep -Eq '^[1-9][0-9]*(,[1-9][0-9]*)*$' ||
    die "THREADS must be a comma list of thread counts like 1,4,8,16, not '$threads'"

# ---- 1. the peers --------------------------------------------------------------------------
[ -f "$PEERS_SRC/build.sh" ] ||
    die "no peers at $PEERS_SRC (set PEERS_SRC to a copy of ../shared/peers)"
echo "building the peers into $PEERS_DIR ($PEERS_JOBS jobs; reused when built) ..." >&2
bash "$PEERS_SRC/build.sh" "$PEERS_DIR" "$PEERS_JOBS" >"$T/build.out" 2>&1 || {
    tail -20 "$T/build.out" >&2
    # build.sh names the log of the engine that failed ("..., see DIR/llama.cpp.build.log")
    sed -n 's/.*, see \(.*\.log\)$/\1/p' "$T/build.out" | while read -r log; do tail -10 "$log"; done >&2
    die "the peers failed to build (logs in $PEERS_DIR/*.log)"
}
M=$PEERS_DIR/models
LB=$PEERS_DIR/llama.cpp/build/bin/llama-bench
IKB=$PEERS_DIR/ik_llama.cpp/build/bin/llama-bench

# ---- 2. our student --------------------------------------------------------------------------
if [ -n "${BITDISTILL:-}" ]; then
    BD=$BITDISTILL
else
    make -C "$B" -s bitdistill >/dev/null || die "cannot build bitdistill in $B (configure it first)"
    BD=$B/bitdistill
fi
O=$PEERS_DIR/ours
if ! cmp -s "$cfg" "$O/config.src" || [ ! -f "$O/fp/model.safetensors" ]; then
    echo "writing our random-init Qwen3-0.6B checkpoint to $O/fp ..." >&2
    rm -rf "$O" && mkdir -p "$O"
    "$BD" init --config "$cfg" --out "$O/fp" --seed 1 >/dev/null || die "bitdistill init failed"
    cp "$cfg" "$O/config.src"
fi
echo "converting it to our student (ternary body, 4-bit head) ..." >&2
"$BD" convert --model "$O/fp" --out "$T/student.gguf" --ternary --head q4 >"$T/convert.out" 2>&1 || {
    cat "$T/convert.out" >&2
    die "bitdistill convert failed"
}

# ---- 3. measurements (rows: "name|file|pp_1 pp_2 ...|tg_1 tg_2 ..." in $T/rows) --------------
echo "measuring our student (and STREAM) ..." >&2
"$BD" bench e2e --gguf "$T/student.gguf" --threads "$threads" --prompt 128 --decode 64 \
    --reps "$REPS" --stream-mb "${STREAM_MB:-256}" >"$T/ours.txt" || die "bitdistill bench e2e --gguf failed"
# table rows of bench e2e --gguf: threads pp sd tg sd stream ceiling fraction%
awk -v name="bitdistill student (I2 + Q4 head)" -v file="$T/student.gguf" -v sf="$T/stream" '
    $1 ~ /^[0-9]+$/ && NF == 8 {
        pp = pp sep sprintf("%.1f ± %.1f", $2, $3); tg = tg sep sprintf("%.1f ± %.1f", $4, $5)
        st = st sep sprintf("%.1f", $6); ce = ce sep sprintf("%.1f (%.0f%%)", $7, 100 * $4 / $7)
        sep = ";"
    }
    END { print name "|" file "|" pp "|" tg; print st "|" ce > sf }
' "$T/ours.txt" >"$T/rows"

# peer NAME BENCH MODEL [LLAMA-BENCH OPTIONS] — one llama-bench run, appended to $T/rows
peer() {
    name=$1 bin=$2 model=$M/$3
    shift 3
    echo "measuring $name ..." >&2
    [ -f "$model" ] || die "$model is missing (the peers' build did not finish)"
    "$bin" -m "$model" -p 128 -n 64 -r "$REPS" -t "$threads" -o csv "$@" >"$T/lb.csv" 2>"$T/lb.err" || {
        tail -5 "$T/lb.err" >&2
        die "$name: llama-bench failed: $bin -m $model -t $threads${*:+ $*}"
    }
    # CSV: a header of field names, then one row per test, every value in double quotes
    awk -v name="$name" -v file="$model" -v threads="$threads" '
        NR == 1 { gsub(/"/, ""); for (i = split($0, h, ","); i > 0; i--) col[h[i]] = i; next }
        {
            line = substr($0, 2, length($0) - 2); split(line, f, "\",\"")
            k = f[col["n_prompt"]] > 0 ? "pp" : "tg"
            v[k, f[col["n_threads"]]] = sprintf("%.1f ± %.1f", f[col["avg_ts"]], f[col["stddev_ts"]])
        }
        END {
            n = split(threads, t, ",")
            for (i = 1; i <= n; i++) {
                if (!(("pp", t[i]) in v) || !(("tg", t[i]) in v)) exit 1
                pp = pp sep v["pp", t[i]]; tg = tg sep v["tg", t[i]]; sep = ";"
            }
            print name "|" file "|" pp "|" tg
        }
    ' "$T/lb.csv" >>"$T/rows" || die "$name: cannot read pp128/tg64 at threads $threads from llama-bench's CSV ($T/lb.csv)"
}
peer "llama.cpp TQ2_0 + Q4_0 embedding/head" "$LB" tq2_q4h.gguf
peer "llama.cpp TQ2_0" "$LB" tq2.gguf
peer "llama.cpp Q4_0" "$LB" q4_0.gguf
peer "llama.cpp F16" "$LB" f16.gguf
peer "ik_llama.cpp IQ2_BN + Q4_0 embedding/head" "$IKB" iq2bn_q4h.gguf
peer "ik_llama.cpp IQ2_BN + Q4_0 embedding/head, -rtr 1" "$IKB" iq2bn_q4h.gguf -rtr 1
peer "ik_llama.cpp IQ2_BN" "$IKB" iq2bn.gguf
peer "ik_llama.cpp IQ2_BN, -rtr 1" "$IKB" iq2bn.gguf -rtr 1

# ---- 4. the table --------------------------------------------------------------------------
while IFS='|' read -r name file pp tg; do
    echo "$name|$(stat -c %s "$file")|$pp|$tg"
done <"$T/rows" >"$T/table"
echo
echo "bench/peers.sh $threads on $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "tokens/s, mean ± sd over $REPS runs after a warm-up (llama-bench's definitions); random weights"
echo
awk -F'|' -v threads="$threads" -v stream="$(cat "$T/stream")" '
    function val(s) { sub(/ ±.*/, "", s); return s + 0 }
    {
        row[NR] = $0; name[NR] = $1; size[NR] = $2
        np = split($3, p, ";"); split($4, g, ";")
        for (i = 1; i <= np; i++) { pp[NR, i] = p[i]; tg[NR, i] = g[i] }
        if (NR > 1) {
            if (!(minsize) || $2 < minsize) { minsize = $2 }
            for (i = 1; i <= np; i++) {
                if (val(p[i]) > bp[i]) { bp[i] = val(p[i]); bpn[i] = $1 }
                if (val(g[i]) > bg[i]) { bg[i] = val(g[i]); bgn[i] = $1 }
            }
        }
    }
    END {
        nt = split(threads, t, ",")
        h = "| engine, type | size MB"; s = "|---|---:"
        for (i = 1; i <= nt; i++) { h = h " | pp128 t" t[i]; s = s "|---:" }
        for (i = 1; i <= nt; i++) { h = h " | tg64 t" t[i]; s = s "|---:" }
        print h " |"; print s "|"
        for (r = 1; r <= NR; r++) {
            l = "| " name[r] " | " sprintf("%.1f", size[r] / 1e6)
            for (i = 1; i <= nt; i++) l = l " | " pp[r, i]
            for (i = 1; i <= nt; i++) l = l " | " tg[r, i]
            print l " |"
        }
        split(stream, sc, "|"); split(sc[1], st, ";"); split(sc[2], ce, ";")
        l = "| STREAM triad GB/s (same run) | "; c = "| our decode ceiling t/s (share reached) | "
        for (i = 1; i <= nt; i++) { l = l " | "; c = c " | " }
        for (i = 1; i <= nt; i++) { l = l " | " st[i]; c = c " | " ce[i] }
        print l " |"; print c " |"
        l = "| **ratio ours / best peer** | " sprintf("%.2fx", size[1] / minsize)
        for (i = 1; i <= nt; i++) l = l " | " sprintf("**%.2fx**", val(pp[1, i]) / bp[i])
        for (i = 1; i <= nt; i++) l = l " | " sprintf("**%.2fx**", val(tg[1, i]) / bg[i])
        print l " |"
        print ""
        for (i = 1; i <= nt; i++) print "best peer, pp128 t" t[i] ": " bpn[i] " (" bp[i] ")"
        for (i = 1; i <= nt; i++) print "best peer, tg64 t" t[i] ": " bgn[i] " (" bg[i] ")"
    }
' "$T/table"
sed -n 's/^student [^:]*: /our student: /p' "$T/ours.txt"
