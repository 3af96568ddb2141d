#!/bin/sh
# tools/check-layers.sh — fail when a lower folder includes a higher one.
#
# The folders are layers; a file may include headers of its own folder and of folders strictly
# below it, never of one above or beside it. Lowest first:
#
#   0  log util               leveled logging; SHA-256 and the growable array (util/): used by
#                             every layer above; neither includes the other
#   1  kernels jinja plot     libraries on libc/BLAS/zlib only; none includes another
#                             (plot stands apart: only cmd includes it)
#   2  engine                 models, tokenizer, forward passes, serving scheduler
#   3  train                  the trainer (a separate process: engine and kernels only)
#   4  store                  the SQLite database and its writer thread
#   5  jobs                   job records, files, the job supervisor
#   6  server                 the HTTP library (asks api/ for keys through a callback)
#   7  api                    routes and handlers: where engine, jobs and server meet
#   8  bench                  `bitdistill bench` suites and the load generator
#   9  cmd                    entry points: bitdistilld and the `bitdistill` CLI
#  10  tests                  tests may include anything
#
# A subfolder belongs to its top folder (kernels/cuda is kernels, api/dashboard is api).
# Includes without a folder ("config.h", a file beside the includer) and <system> headers are
# not checked. One exception: the load generator (bench/loadgen*.c) uses the tests' HTTP
# client (tests/http_client.h). A file in a folder missing from the table fails too, so a new
# folder gets its place here.
#
# Usage: tools/check-layers.sh [SRCDIR]   (default: the repository holding this script)
# Prints each violation as `file:line: folder (rank) includes "path" (folder, rank)`; exit 1 if any.
set -eu
srcdir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$srcdir"

# The C sources: tracked files where this is a git checkout, else every file (a release tarball).
if [ -e .git ]; then
    list=$(git ls-files '*.c' '*.h' '*.cu')
else
    list=$(find . -path ./build -prune -o \( -name '*.c' -o -name '*.h' -o -name '*.cu' \) -print |
        sed 's|^\./||' | grep -v '^llhttp/' || true)
fi
[ -n "$list" ] || { echo "no C sources found under $srcdir"; exit 1; }

# One awk pass over every file (a shell loop forks too much on a busy machine).
# shellcheck disable=SC2086
awk '
BEGIN {
    split("log:0 util:0 kernels:1 jinja:1 plot:1 engine:2 train:3 store:4 jobs:5 server:6 api:7 " \
          "bench:8 cmd:9 tests:10", pairs, " ")
    for (i in pairs) { split(pairs[i], kv, ":"); rank[kv[1]] = kv[2] }
    bad = 0
}
FNR == 1 {
    from = FILENAME; sub(/\/.*/, "", from)
    top = (index(FILENAME, "/") == 0)   # top-level files (config.h) are no layer
    if (!top && !(from in rank)) {
        print FILENAME ": folder \047" from "\047 has no place in the layer order of tools/check-layers.sh"
        bad = 1
    }
}
!top && (from in rank) && /^[ \t]*#[ \t]*include[ \t]*"[^"\/]*\/[^"]*"/ {
    path = $0; sub(/^[^"]*"/, "", path); sub(/".*/, "", path)
    to = path; sub(/\/.*/, "", to)
    if (to == from) next
    if (FILENAME ~ /^bench\/loadgen[^\/]*\.c$/ && path == "tests/http_client.h") next
    if (!(to in rank)) {
        print FILENAME ":" FNR ": includes \"" path "\" of folder \047" to "\047, which has no place in the layer order"
        bad = 1
    } else if (rank[to] >= rank[from]) {
        print FILENAME ":" FNR ": " from " (" rank[from] ") includes \"" path "\" (" to ", " rank[to] "): a layer may include only lower ones"
        bad = 1
    }
}
END { exit bad }
' $list
