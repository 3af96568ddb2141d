#!/bin/sh
# tools/summarize/corpus.sh PRETRAIN_CORPUS_DIR CNNDM_DIR OUT_DIR — the summarizer's
# pre-training corpus: the demo model's corpus (tools/pretrain/corpus.sh: books, speeches,
# WikiText-2, Python/Perl documentation, GCIDE, WordNet) plus the 800 CNN/DailyMail *training*
# articles and their highlights as paragraphs, so the base has read some news before it learns to
# summarize. The validation articles are never added. Writes OUT_DIR/train.txt and copies the
# held-out split (OUT_DIR/heldout.txt) unchanged. Needs jq.
set -eu
src=${1:?usage: tools/summarize/corpus.sh PRETRAIN_CORPUS_DIR CNNDM_DIR OUT_DIR}
cnn=${2:?usage} out=${3:?usage}
mkdir -p "$out"
cp "$src/heldout.txt" "$out/heldout.txt"
{
    cat "$src/train.txt"
    printf '\n\n'
    # one paragraph per article and one per set of highlights (blank lines separate documents)
    jq -r '(.article | gsub("\n\n+"; "\n")) + "\n\n" + (.highlights // .summary | gsub("\n\n+"; "\n")) + "\n"' \
        "$cnn/train.jsonl"
} > "$out/train.txt"
echo "corpus: $(wc -c < "$out/train.txt") bytes of training text"
