#!/bin/sh
# tests/test-dash-browser.sh — the dashboard in a real browser: Playwright (playwright-core from
# tests/browser/node_modules, installed by deploy/setup.d/npm-playwright.sh) drives Debian's
# chromium headless against a real bitdistilld on loopback with an admin key, a tiny model and
# SST-2 slices. The browser half is tests/browser/dash.test.mjs (TAP). Screenshots of each page
# go to $DASH_SHOTS (default: tests/dash-screenshots in the build tree).
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
D=${SHARED_DATA:-$top_srcdir/../shared/data}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PW="$top_srcdir/tests/browser/node_modules/playwright-core"
PID=""
T=$(mktemp -d /tmp/bd-test-dash-XXXXXX)
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

why=""
command -v node >/dev/null 2>&1 || why="needs node (apt-get install nodejs)"
[ -n "$why" ] || [ -x "$CHROMIUM" ] || why="needs chromium at $CHROMIUM (deploy/packages/dashboard.list)"
[ -n "$why" ] || [ -d "$PW" ] || why="needs the npm package playwright-core in tests/browser/node_modules (run deploy/setup.d/npm-playwright.sh)"
[ -n "$why" ] || [ -f "$D/sst2/sentence/stsa.binary.train" ] || why="needs ../shared/data/sst2 (SST-2, not found at $D; set SHARED_DATA)"
if [ -n "$why" ]; then
    skip "$why"
    done_testing
    exit $?
fi

mkdir -p "$T/data/models"
"$B/bitdistill" init --config "$top_srcdir/tests/fixtures/train/tiny-config.json" --out "$T/data/models/tiny" --seed 1 >/dev/null
cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/data/models/tiny/tokenizer.json"
head -96 "$D/sst2/sentence/stsa.binary.train" >"$T/train.txt"
head -32 "$D/sst2/sentence/stsa.binary.dev" >"$T/dev.txt"
ADMIN=$("$B/bitdistill" keys create --scope admin --name dash --data-dir "$T/data" 2>"$T/keys.err")
INFER=$("$B/bitdistill" keys create --scope infer --name web --data-dir "$T/data" 2>>"$T/keys.err")
"$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --job-threads 1 >"$T/d.log" 2>&1 &
PID=$!
for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.05; done
if [ ! -s "$T/port" ] || [ -z "$ADMIN" ]; then
    echo "not ok 1 - daemon started with an admin key"
    cat "$T/d.log" "$T/keys.err" | sed 's/^/# /'
    echo "1..1"
    exit 1
fi
SHOTS=${DASH_SHOTS:-$B/tests/dash-screenshots}
mkdir -p "$SHOTS"
BASE="http://127.0.0.1:$(cat "$T/port")" ADMIN_KEY="$ADMIN" INFER_KEY="$INFER" \
    TRAIN_FILE="$T/train.txt" DEV_FILE="$T/dev.txt" SHOTS="$SHOTS" CHROMIUM="$CHROMIUM" \
    PROFILE="$T/profile" DAEMON_LOG="$T/d.log" \
    node "$top_srcdir/tests/browser/dash.test.mjs"
rc=$?
if [ $rc -ne 0 ]; then
    echo "# daemon log (last 30 lines):"
    tail -30 "$T/d.log" | sed 's/^/# /'
fi
exit $rc
