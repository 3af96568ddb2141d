#!/bin/sh
# tools/pretrain/corpus.sh OUT_DIR — build the English pre-training corpus of the demo model.
#
# Sources (see ../shared/data/README.md for provenance and licences):
#   ../shared/data/corpus (Gutenberg books, presidential speeches, WikiText-2 valid with its
#   " @-@ " tokenization undone and <unk> dropped), and text unpacked (not installed) from the
#   Debian packages python3.11-doc (.rst.txt sources), perl-doc (POD -> pod2text), dict-gcide
#   (GCIDE entries, markup stripped) and wordnet-base (word: gloss lines).
# Documents are paragraphs (blank-line separated, as `bitdistill train` packs them); exact
# duplicates (after whitespace folding) are dropped; every 50th distinct paragraph goes to the
# held-out split. Writes OUT_DIR/train.txt, OUT_DIR/heldout.txt and OUT_DIR/stats.txt.
# Needs: apt-get (download only), dpkg-deb, perl (pod2text), awk, zcat.
set -eu
out=${1:?usage: tools/pretrain/corpus.sh OUT_DIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
data=${BITDISTILL_DATA:-$top/../shared/data}
mkdir -p "$out/deb" "$out/x" "$out/parts"
out=$(cd "$out" && pwd)
cd "$out/deb"
for p in python3.11-doc perl-doc dict-gcide wordnet-base; do
    ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 ||
        { echo "corpus.sh: apt-get download $p failed" >&2; exit 1; }
done
for f in *.deb; do dpkg-deb -x "$f" ../x; done
cd "$out"
x=$out/x/usr/share
# each source file as UTF-8 (the older Gutenberg texts, GCIDE and some POD are Latin-1)
utf8() { if iconv -f utf-8 -t utf-8 "$1" >/dev/null 2>&1; then cat "$1"; else iconv -f latin1 -t utf-8 "$1"; fi; }

# 1. shared corpus
for f in "$data"/corpus/gutenberg/*.txt; do utf8 "$f"; printf '\n\n'; done > parts/gutenberg.txt
for f in "$data"/corpus/speeches/*/*; do utf8 "$f"; printf '\n\n'; done > parts/speeches.txt
sed -e 's/ @\([-,.]\)@ /\1/g' -e 's/<unk>//g' -e 's/ \([,.;:!?)]\)/\1/g' -e 's/( /(/g' \
    "$data/corpus/wikitext2/valid.txt" > parts/wikitext2.txt
# 2. Python documentation sources
find "$x/doc/python3.11/html/_sources" -name '*.rst.txt' | sort |
    while read -r f; do cat "$f"; printf '\n\n'; done > parts/python-doc.txt
# 3. Perl documentation
find "$x/perl" -name '*.pod' | sort |
    while read -r f; do pod2text "$f" > pod.tmp 2>/dev/null || true; utf8 pod.tmp; printf '\n\n'; done > parts/perl-doc.txt
# 4. GCIDE: drop pronunciations and the source tags, unwrap {cross references}
zcat "$x/dictd/gcide.dict.dz" > gcide.tmp
utf8 gcide.tmp |
    sed -e 's/\\[^\\]*\\//g' -e 's/([^()]*\[[^()]*)//g' -e 's/[{}]//g' \
        -e '/^ *\[[^]]*Webster\]$/d' -e '/^ *\[PJC\]$/d' -e 's/^   //' > parts/gcide.txt
# 5. WordNet glosses: "word: gloss" per synset, one paragraph per 20 synsets
for pos in noun verb adj adv; do
    awk -v pos="$pos" '/^[0-9]/ { i = index($0, "| "); if (!i) next;
        w = $5; gsub(/_/, " ", w); g = substr($0, i + 2); sub(/ +$/, "", g);
        print w " (" pos "): " g; if (++n % 20 == 0) print "" }' "$x/wordnet/data.$pos"
    printf '\n'
done > parts/wordnet.txt

rm -f pod.tmp gcide.tmp
for f in parts/*.txt; do
    iconv -f utf-8 -t utf-8 "$f" >/dev/null || { echo "corpus.sh: $f is not UTF-8" >&2; exit 1; }
done
# dedup paragraphs, split train / held-out
cat parts/*.txt | awk 'BEGIN { RS = ""; ORS = "\n\n" }
    { k = $0; gsub(/[ \t\n]+/, " ", k); if (k in seen) { dup++; next } seen[k] = 1;
      if (++n % 50 == 0) print > "heldout.txt"; else print > "train.txt" }
    END { printf "%d distinct paragraphs, %d duplicates dropped\n", n, dup > "/dev/stderr" }' \
    2> stats.txt
{
    for f in parts/*.txt; do printf '%s %d bytes\n' "$(basename "$f")" "$(wc -c < "$f")"; done
    printf 'train.txt %d bytes, heldout.txt %d bytes\n' "$(wc -c < train.txt)" \
        "$(wc -c < heldout.txt)"
} >> stats.txt
cat stats.txt
