#!/bin/bash
# tools/summarize/bundle.sh CUDA_BUILD_DIR CORPUS_DIR BUNDLE_DIR — what travels to the GPU
# machine for tools/summarize/device.sh: the CUDA build of bitdistill with the shared libraries
# that machine lacks, the summarizer's pre-training corpus (tools/summarize/corpus.sh; xz), the
# CNN/DM files of ../shared/data and the demo tokenizer. BUNDLE_DIR must be git-ignored in the
# checkout the device call sends, and stays well under the 64 MiB a call carries.
set -eu
B=$1 CORPUS=$2 DST=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
data=${BITDISTILL_DATA:-$top/../shared/data}
make -C "$B" -s -j2 bitdistill
rm -rf "$DST"
mkdir -p "$DST/bin" "$DST/lib" "$DST/corpus" "$DST/cnndm"
xz -c "$B/bitdistill" > "$DST/bin/bitdistill.xz"
# every shared library but the C runtime and CUDA's own (the GPU machine has those)
ldd "$B/bitdistill" | awk '$3 ~ /^\// { print $3 }' |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*)\.so' |
    xargs -r cp -L -t "$DST/lib/"
tar cJf "$DST/lib.tar.xz" -C "$DST" lib && rm -rf "$DST/lib"
xz -T0 -6 -c "$CORPUS/train.txt" > "$DST/corpus/train.txt.xz"
cp "$CORPUS/heldout.txt" "$DST/corpus/"
cp "$data/cnndm/train.jsonl" "$data/cnndm/validation.jsonl" "$DST/cnndm/"
cp "$top/models/demo/tokenizer.json" "$DST/tokenizer.json"
du -sh "$DST"
