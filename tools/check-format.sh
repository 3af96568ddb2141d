#!/bin/sh
# tools/check-format.sh — fail listing every tracked .c/.h/.cu file that clang-format (with the
# repository's .clang-format) would change; tools/format.sh fixes them. Outside a git checkout
# (a release tarball) every .c/.h/.cu file under the folders is checked.
#
# Usage: tools/check-format.sh [SRCDIR]   (default: the repository holding this script)
# Exit 0: all formatted; 1: files listed on stdout differ; 2: no clang-format or no .clang-format.
set -eu
srcdir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$srcdir"
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null 2>&1 || { echo "check-format.sh: '$cf' not found (apt-get install clang-format)" >&2; exit 2; }
[ -f .clang-format ] || { echo "check-format.sh: no .clang-format in $srcdir" >&2; exit 2; }
if [ -e .git ]; then
    list=$(git ls-files '*.c' '*.h' '*.cu')
else
    list=$(find . -path ./build -prune -o \( -name '*.c' -o -name '*.h' -o -name '*.cu' \) -print |
        sed 's|^\./||' | grep '/' | grep -v '^llhttp/' || true)
fi
bad=0
for f in $list; do
    if ! "$cf" --style=file "$f" | cmp -s "$f" -; then
        echo "$f"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "check-format.sh: the files above differ from clang-format's output (run tools/format.sh)" >&2
fi
exit $bad
