#!/bin/sh
# deploy/setup.d/npm-openai.sh — install OpenAI's Node SDK (npm `openai`, pinned by
# tests/npm/package-lock.json) into tests/npm/node_modules: tests/test-api-ft-openai.sh drives the
# fine-tuning API with it as the client. Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/deploy/npm-ci.sh"
npm_ci npm-openai "$top/tests/npm" openai
