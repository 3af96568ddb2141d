#!/bin/sh
# tools/format.sh — format every tracked .c/.h/.cu file in place with clang-format and the
# repository's .clang-format (../shared/STYLE.md item 11). tools/check-format.sh checks the same
# files without changing them.
#
# Usage: tools/format.sh [SRCDIR]   (default: the repository holding this script)
# Needs clang-format 14 (Debian clang-format; deploy/packages/test.list); $CLANG_FORMAT overrides.
set -eu
srcdir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$srcdir"
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null 2>&1 || { echo "format.sh: '$cf' not found (apt-get install clang-format)" >&2; exit 2; }
[ -f .clang-format ] || { echo "format.sh: no .clang-format in $srcdir" >&2; exit 2; }
git ls-files -z '*.c' '*.h' '*.cu' | xargs -0 -r "$cf" -i --style=file
