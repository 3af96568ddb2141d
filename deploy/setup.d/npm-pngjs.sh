#!/bin/sh
# deploy/setup.d/npm-pngjs.sh — install pngjs (a PNG decoder in pure JavaScript, independent of
# cairo, the libpng it writes with and zlib's C code) into tests/plot/node_modules, pinned by
# tests/plot/package-lock.json, for the pixel checks of tests/test-plot-cli.sh. Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/deploy/npm-ci.sh"
npm_ci npm-pngjs "$top/tests/plot" pngjs
