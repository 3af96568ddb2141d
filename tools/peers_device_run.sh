#!/bin/sh
# tools/peers_device_run.sh pack|run — bench/peers.sh on the 16-core GPU host (docs/performance.md,
# "Against llama.cpp and ik_llama.cpp"). That machine cannot fetch anything and has no libuv,
# jansson, ... so what it needs travels in .peers/ (git-ignored, ~30 MB):
#
#   here:  tools/peers_device_run.sh pack [BUILD_DIR]
#          fills .peers/: a copy of ../shared/peers (the two snapshots, build.sh, the GGUF
#          generator), bitdistill of BUILD_DIR (default build/normal, built first) xz-packed, and
#          the shared libraries it links except the C runtime and CUDA's (lib.tar.xz).
#   there: the device `run` tool, with carry [".peers"] and timeout_s 600:
#            sh tools/peers_device_run.sh run
#          unpacks to /tmp/bd-peers, builds the peers with one job per CPU, runs
#          `bench/peers.sh ${THREADS:-1,4,8,16}` with REPS=${REPS:-3} and writes its output to
#          $OUT/peers.txt (and the peers' build logs to $OUT when their build fails).
#          About 2 minutes for the peers' build on 16 cores, 1 for our student, 3-5 for the runs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
P=$top/.peers
case ${1:-} in
pack)
    B=${2:-$top/build/normal}
    make -C "$B" -s -j"$(nproc)" bitdistill
    rm -rf "$P" && mkdir -p "$P/lib"
    cp -r "${PEERS_SRC:-$top/../shared/peers}" "$P/peers" && chmod -R u+w "$P/peers"
    xz -c "$B/bitdistill" >"$P/bitdistill.xz"
    ldd "$B/bitdistill" | awk '$3 ~ /^\// { print $3 }' |
        grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*)\.so' |
        xargs -r cp -L -t "$P/lib/"
    tar cJf "$P/lib.tar.xz" -C "$P" lib && rm -rf "${P:?}/lib"
    du -sh "$P"
    ;;
run)
    : "${OUT:?run this through the device run tool (OUT is its output folder)}"
    [ -f "$P/bitdistill.xz" ] || { echo "no .peers/: run 'tools/peers_device_run.sh pack' here first and carry .peers"; exit 1; }
    W=/tmp/bd-peers
    mkdir -p "$W/bin"
    xz -dc "$P/bitdistill.xz" >"$W/bin/bitdistill" && chmod +x "$W/bin/bitdistill"
    tar xJf "$P/lib.tar.xz" -C "$W"
    LD_LIBRARY_PATH=$W/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    [ -d /usr/local/cuda/lib64 ] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/cuda/lib64
    export LD_LIBRARY_PATH
    lscpu | sed -n 's/^\(Model name\|CPU(s)\|L3 cache\):[[:space:]]*/\1: /p'
    echo "CPU features: $(grep -o 'amx_[a-z0-9]*\|avx512_vnni\|avx512_bf16\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    rc=0
    PEERS_SRC=$P/peers PEERS_DIR=$W/peers PEERS_JOBS=$(nproc) BITDISTILL=$W/bin/bitdistill \
        REPS=${REPS:-3} sh bench/peers.sh "${THREADS:-1,4,8,16}" >"$OUT/peers.txt" 2>"$OUT/peers.err" || rc=$?
    cat "$OUT/peers.txt" "$OUT/peers.err"
    [ "$rc" -eq 0 ] || cp "$W"/peers/*.log "$OUT/" 2>/dev/null || true
    exit "$rc"
    ;;
*)
    echo "usage: tools/peers_device_run.sh pack [BUILD_DIR] | run" >&2
    exit 2
    ;;
esac
