#!/bin/sh
# tests/test-api-ft-openai.sh — the fine-tuning API with OpenAI's Node SDK as the client
# (tests/npm/ft-openai.cjs prints the TAP): checkpoints, pause/resume across a restart (bit for bit
# with an unpaused run), metadata filters, "auto" hyperparameters, result files, cancel, errors.
# Needs node and tests/npm/node_modules/openai (deploy/setup.d/npm-openai.sh).
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
D=${SHARED_DATA:-$top_srcdir/../shared/data}
if [ ! -f "$D/sst2/sentence/stsa.binary.train" ]; then
    skip "needs ../shared/data/sst2 (SST-2, not found at $D; set SHARED_DATA)"
    done_testing
    exit $?
fi
if ! command -v node >/dev/null 2>&1 || [ ! -f "$top_srcdir/tests/npm/node_modules/openai/package.json" ]; then
    skip "needs node and the npm package openai in tests/npm/node_modules (run deploy/setup.d/npm-openai.sh)"
    done_testing
    exit $?
fi
T=$(mktemp -d /tmp/bd-test-ftopenai-XXXXXX)
trap 'pkill -9 -f "$T/data" 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/data/models"
"$B/bitdistill" init --config "$top_srcdir/tests/fixtures/train/tiny-config.json" --out "$T/data/models/tiny" --seed 1 >/dev/null
cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/data/models/tiny/tokenizer.json"
head -40 "$D/sst2/sentence/stsa.binary.train" >"$T/train.txt"
head -16 "$D/sst2/sentence/stsa.binary.dev" >"$T/dev.txt"
BD="$B/bitdistilld" DATA="$T/data" TRAIN="$T/train.txt" DEV="$T/dev.txt" node "$top_srcdir/tests/npm/ft-openai.cjs"
rc=$?
[ $rc -eq 0 ] || { echo "# daemon log tail:"; tail -20 "$T/d.log" | sed 's/^/# /'; }
exit $rc
