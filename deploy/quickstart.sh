#!/bin/sh
# deploy/quickstart.sh — the README's first command: install the Debian packages, build, and run
# bitdistilld on 127.0.0.1:8080 in the foreground with the bundled defaults (Ctrl-C drains and
# stops it). Idempotent; works as root or through sudo. State lives in ./bitdistill-data.
# Options are passed on to bitdistilld, e.g. `deploy/quickstart.sh --port 9090`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/install-deps.sh base
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi
mkdir -p build/normal
[ -f build/normal/Makefile ] || (cd build/normal && ../../configure -q)
make -C build/normal -j"$(nproc)" -s bitdistilld bitdistill

port=8080
prev=""
for a in "$@"; do
    [ "$prev" = "--port" ] && port=$a
    case "$a" in --port=*) port=${a#--port=} ;; esac
    prev=$a
done
cat <<EOF2

bitdistilld is starting on http://127.0.0.1:$port  (data in $top/bitdistill-data)
Try, from another terminal:
  curl -s http://127.0.0.1:$port/readyz
  curl -s http://127.0.0.1:$port/metrics | head
  build/normal/bitdistill keys create --scope admin --data-dir bitdistill-data
Stop with Ctrl-C (drains in-flight requests first).

EOF2
exec build/normal/bitdistilld --host 127.0.0.1 --port "$port" --data-dir "$top/bitdistill-data" "$@"
