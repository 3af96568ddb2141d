#!/bin/bash
# tools/repro/bundle.sh CUDA_BUILD_DIR CORPUS_DIR TOKENIZER BUNDLE_DIR [BASE_MODEL_DIR] — what
# travels to the GPU
# machine for tools/repro/device.sh: the CUDA build of bitdistill with the shared libraries that
# machine lacks (bin/, lib/), the datasets of ../shared/data the experiments read, the
# pre-training corpus (xz) and the tokenizer. BUNDLE_DIR must be git-ignored (e.g. build/carry)
# and stays under the 64 MiB a device call carries.
set -eu
B=$1 CORPUS=$2 TOK=$3 DST=$4 BASE=${5:-}
top=$(cd "$(dirname "$0")/../.." && pwd)
data=${BITDISTILL_DATA:-$top/../shared/data}
make -C "$B" -s -j"$(nproc)" bitdistill
rm -rf "$DST"
mkdir -p "$DST/bin" "$DST/lib" "$DST/data/pretrain"
xz -c "$B/bitdistill" > "$DST/bin/bitdistill.xz"
# every shared library but the C runtime and CUDA's own (the GPU machine has those)
ldd "$B/bitdistill" | awk '$3 ~ /^\// { print $3 }' |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*)\.so' |
    xargs -r cp -L -t "$DST/lib/"
tar cJf "$DST/lib.tar.xz" -C "$DST" lib && rm -rf "$DST/lib"
tar cJf "$DST/data/tasks.tar.xz" -C "$data" sst2/glue mnli qnli cnndm
xz -T0 -6 -c "$CORPUS/train.txt" > "$DST/data/pretrain/train.txt.xz"
cp "$CORPUS/heldout.txt" "$DST/data/pretrain/"
cp "$TOK" "$DST/tokenizer.json"
# the pre-trained base (tools/pretrain/pretrain.sh), when the experiments run on another machine
[ -z "$BASE" ] || tar cf - -C "$(dirname "$BASE")" "$(basename "$BASE")" | xz -T0 -3 > "$DST/base.tar.xz"
du -sh "$DST"
