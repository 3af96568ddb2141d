#!/bin/sh
# tests/test-plot-cli.sh — `bitdistill plot` end to end: charts from event logs and tables, bar
# charts, checked by Debian's pngcheck (chunk structure, CRCs, zlib stream) and, pixel by
# pixel, by tests/plot/png.test.mjs through pngjs (an independent decoder; installed by
# deploy/setup.d/npm-pngjs.sh); the text's font is the DejaVu Sans that deploy installs; bad
# input exits non-zero with a message naming the problem.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
T=$(mktemp -d /tmp/bd-test-plot-XXXXXX)
trap 'rm -rf "$T"' EXIT
P="$B/bitdistill plot"

# ---- charts that must come out ----
awk 'BEGIN { print "x\ty"; for (i = 0; i <= 100; i++) printf "%g\t%g\n", i / 100, i / 100 }' >"$T/diag.tsv"
$P line --out "$T/diag.png" --title "Diagonal y = x" --x x --y y --xmin 0 --xmax 1 --ymin 0 --ymax 1 \
    --layout diag="$T/diag.tsv" >"$T/diag.json" 2>"$T/err"
ok $? "line chart of a TSV table ($(head -c 200 "$T/err"))"
$P bar --out "$T/bars.png" --title "Bars 1:2:4" --ylabel value --layout a=1 b=2 c=4 >"$T/bars.json" 2>"$T/err"
ok $? "bar chart ($(head -c 200 "$T/err"))"
awk 'BEGIN { print "x,y"; for (i = 0; i <= 30; i++) printf "%g,%.10g\n", i / 10, 10 ^ (i / 10) }' >"$T/pow.csv"
$P line --out "$T/logy.png" --logy --x x --y y --layout "$T/pow.csv" >"$T/logy.json" 2>"$T/err"
ok $? "log-y line chart of a CSV table ($(head -c 200 "$T/err"))"

# Trainer-style events: stages 2 and 3, a resumed stretch, an eval event, a torn last line.
awk 'BEGIN { srand(1);
  print "{\"type\":\"stage\",\"stage\":2,\"name\":\"continue_pretrain\",\"status\":\"start\",\"steps\":50}";
  for (s = 1; s <= 50; s++) printf "{\"type\":\"step\",\"stage\":2,\"step\":%d,\"ce\":%.4f,\"ld\":0,\"ad\":0,\"loss\":%.4f,\"lr\":%.6g}\n", s, 6 - s / 20, 6 - s / 20, 1e-4;
  for (s = 1; s <= 200; s++) { ce = 2 * exp(-s / 60) + 0.3 + 0.2 * rand();
    printf "{\"type\":\"step\",\"stage\":3,\"step\":%d,\"ce\":%.4f,\"ld\":%.4f,\"ad\":%.6f,\"loss\":%.4f,\"lr\":%.6g}\n", s, ce, ce / 3, 0.01 * exp(-s / 40), ce * 2, 1e-4 * (1 - s / 200) }
  print "{\"type\":\"eval\",\"stage\":4,\"model\":\"student\",\"accuracy\":0.81,\"n\":872}";
  printf "{\"type\":\"step\",\"stage\":3,\"ste" }' >"$T/events.jsonl"
$P line --out "$T/loss.png" --title "distillation loss" --filter type=step --filter stage=3 --smooth 10 \
    --y ce,ld,ad --logy "$T/events.jsonl" 2>"$T/err"
ok $? "loss components of stage 3 from an event log, smoothed, log y"
grep -q "1 lines are not JSON objects" "$T/err"
ok $? "a torn line of the event log is reported, not fatal ($(head -c 200 "$T/err"))"
$P line --out "$T/run2.png" --x @n --y loss --filter stage!=4 --size 640x400 a="$T/events.jsonl" b="$T/events.jsonl" 2>/dev/null
ok $? "two runs on one chart, x @n, --size 640x400"
$P bar --out "$T/grouped.png" --ymin 0.5 --ylabel accuracy \
    "SST-2/FP16-SFT=0.912±0.004" "SST-2/BitNet-SFT=0.781+-0.01" "SST-2/BitDistill=0.905+/-0.006" \
    "MNLI/FP16-SFT=0.80" "MNLI/BitNet-SFT=0.61" "MNLI/BitDistill=0.79" >/dev/null 2>"$T/err"
ok $? "grouped bar chart with error bars and --ymin ($(head -c 200 "$T/err"))"
printf 'step\tloss\n1\t2\n2\t1\n' | $P line --out "$T/stdin.png" run=- 2>"$T/err"
ok $? "a table on standard input ($(head -c 200 "$T/err"))"

# ---- the font: the text is DejaVu Sans (fonts-dejavu-core), not whatever fontconfig falls back to
if command -v fc-match >/dev/null 2>&1; then
    f=$(fc-match -f '%{family[0]}|%{file}' 'DejaVu Sans')
    case $f in "DejaVu Sans|"*DejaVuSans.ttf) true ;; *) false ;; esac
    ok $? "fontconfig resolves the charts' font to DejaVu Sans ($f)"
else
    skip "fc-match not installed (fontconfig, deploy/packages/test.list)"
fi

# ---- structure: pngcheck ----
if command -v pngcheck >/dev/null 2>&1; then
    for f in diag bars logy loss run2 grouped stdin; do
        pngcheck -q "$T/$f.png" >"$T/pc" 2>&1
        ok $? "pngcheck: $f.png is a valid PNG $(head -c 200 "$T/pc")"
    done
    pngcheck "$T/diag.png" | grep -q "(800x500, 24-bit RGB, non-interlaced"
    ok $? "pngcheck: default size 800x500, 24-bit RGB"
    pngcheck "$T/run2.png" | grep -q "(640x400, 24-bit RGB"
    ok $? "pngcheck: --size 640x400 honoured"
else
    skip "pngcheck not installed (deploy/packages/test.list)"
fi

# ---- pixels: pngjs ----
PNGJS="$top_srcdir/tests/plot/node_modules/pngjs"
if ! command -v node >/dev/null 2>&1; then
    skip "needs node (apt-get install nodejs)"
elif [ ! -d "$PNGJS" ]; then
    skip "needs the npm package pngjs in tests/plot/node_modules (run deploy/setup.d/npm-pngjs.sh)"
else
    node "$top_srcdir/tests/plot/png.test.mjs" "$T" >"$T/node.out" 2>&1
    rc=$?
    n=0
    while IFS="$(printf '\t')" read -r status name detail; do
        case "$status" in
        ok) ok 0 "$name"; n=$((n + 1)) ;;
        "not ok") ok 1 "$name"; diag "$detail"; n=$((n + 1)) ;;
        *) diag "$status $name $detail" ;;
        esac
    done <"$T/node.out"
    [ "$rc" -eq 0 ] && [ "$n" -ge 19 ]
    ok $? "pixel checks ran to the end (node exit $rc, $n checks)"
fi

# ---- bad input: non-zero exit, a message naming the problem ----
fails() { # fails WANT_RC PATTERN "name" -- ARGS...
    want=$1 pat=$2 name=$3
    shift 4
    $P "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -eq "$want" ] && grep -q -- "$pat" "$T/err"; then ok 0 "$name"; else
        ok 1 "$name"; diag "rc $rc (want $want), stderr: $(head -c 300 "$T/err")"; fi
}
fails 1 "cannot open '$T/nope.jsonl': No such file" "missing file -> 1, names the file" -- \
    line --out "$T/x.png" run="$T/nope.jsonl"
[ ! -e "$T/x.png" ]
ok $? "no PNG written when the input fails"
printf '{"step":1,"loss":"high"}\n{"step":2}\n' >"$T/strings.jsonl"
fails 1 "no record has numbers in both 'step' and 'loss'.*fields of the first: step, loss" \
    "no numeric points -> 1, names the fields" -- line --out "$T/x.png" "$T/strings.jsonl"
fails 1 "no record has numbers" "filter that matches nothing -> 1" -- \
    line --out "$T/x.png" --filter stage=9 "$T/events.jsonl"
fails 1 "no column 'loss' (columns: x, y)" "table without the y column -> 1, lists the columns" -- \
    line --out "$T/x.png" --x x "$T/diag.tsv"
printf '{"step":1,"loss":0}\n{"step":2,"loss":-1}\n' >"$T/zero.jsonl"
fails 1 "no points above 0 for the log y axis" "log y without positive values -> 1" -- \
    line --out "$T/x.png" --logy "$T/zero.jsonl"
fails 2 "bad bar 'acc': expected" "bar without '=' -> 2" -- bar --out "$T/x.png" acc
fails 2 "bad bar 'acc=high': value 'high' is not a number" "bar with a word for a value -> 2" -- \
    bar --out "$T/x.png" a=1 acc=high
fails 2 "bad bar 'a=1±x': error 'x' is not a number" "bar with a bad error -> 2" -- bar --out "$T/x.png" "a=1±x"
fails 2 "empty label" "bar without a label -> 2" -- bar --out "$T/x.png" =0.5
fails 2 "bad filter 'stage'" "filter without '=' -> 2" -- line --out "$T/x.png" --filter stage "$T/diag.tsv"
fails 2 "bad --ymin 'low': not a number" "bad number option -> 2" -- bar --out "$T/x.png" --ymin low a=1
fails 2 "bad --size '10x10'" "too small --size -> 2" -- bar --out "$T/x.png" --size 10x10 a=1
fails 2 "--out FILE.png is required" "missing --out -> 2" -- bar a=1
fails 2 "nothing to plot" "no series -> 2" -- line --out "$T/x.png"
fails 2 "option '--smooth' is for line charts" "line option on a bar chart -> 2" -- \
    bar --out "$T/x.png" --smooth 3 a=1
fails 2 "unknown chart 'pie'" "unknown chart kind -> 2" -- pie --out "$T/x.png"
fails 2 "more than 10 series" "too many series -> 2" -- line --out "$T/x.png" --y ce,ld,ad \
    "$T/events.jsonl" "$T/events.jsonl" "$T/events.jsonl" "$T/events.jsonl"
fails 2 "too many bar labels" "more than 10 bar labels in groups -> 2" -- bar --out "$T/x.png" \
    g/a=1 g/b=1 g/c=1 g/d=1 g/e=1 g/f=1 g/g=1 g/h=1 g/i=1 g/j=1 g/k=1
fails 1 "cannot write '$T/no/dir/x.png'" "unwritable output -> 1, names the path" -- \
    bar --out "$T/no/dir/x.png" a=1
fails 2 "standard input ('-') can be read once" "standard input twice -> 2" -- \
    line --out "$T/x.png" a=- b=- </dev/null
$P line --help | grep -q -- "--filter F=V"
ok $? "plot line --help documents --filter"
"$B/bitdistill" --help | grep -q "^  plot "
ok $? "bitdistill --help lists plot"

done_testing
