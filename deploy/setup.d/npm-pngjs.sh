#!/bin/sh
# deploy/setup.d/npm-pngjs.sh — install pngjs (a PNG decoder in pure JavaScript, independent of
# the project's encoder and of zlib's C code) into tests/plot/node_modules, pinned by
# tests/plot/package-lock.json, for the pixel checks of tests/test-plot-cli.sh. Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
dir="$top/tests/plot"
want=$(sed -n 's/.*"pngjs": *"\([^"]*\)".*/\1/p' "$dir/package.json" | head -1)
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/pngjs/package.json" 2>/dev/null | head -1)
if [ -n "$have" ] && [ "$have" = "$want" ]; then
    echo "npm-pngjs: pngjs $have already installed"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null ||
        { echo "npm-pngjs: npm not found and apt-get install npm failed"; exit 1; }
fi
cd "$dir"
npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
[ -f "$dir/node_modules/pngjs/package.json" ] || { echo "npm-pngjs: install finished but pngjs is missing"; exit 1; }
echo "npm-pngjs: installed pngjs $want"
