#!/bin/sh
# deploy/install-deps.sh [base|test|bench] — install the Debian packages bitdistill needs
# (idempotent). Reads deploy/packages/base.list, plus for "test" every other *.list except
# bench.list, and for "bench" bench.list (bench/peers.sh: the tools to build llama.cpp and
# ik_llama.cpp, which CI never does); installs only what is missing, then for "test" runs
# deploy/setup.d/*.sh (project-local setup such as npm packages for tests).
# Works as root or through sudo.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
what=${1:-base}
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

lists="$here/packages/base.list"
case $what in
base) ;;
test) lists=$(ls "$here"/packages/*.list | grep -v '/bench\.list$') ;;
bench) lists="$lists $here/packages/bench.list" ;;
*) echo "usage: deploy/install-deps.sh [base|test|bench]" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
pkgs=$(cat $lists | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
    # A tool that is already on the machine from elsewhere (e.g. npm inside NodeSource's nodejs)
    # counts as present: installing Debian's package beside it would conflict.
    command -v "$p" >/dev/null 2>&1 && continue
    missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "install-deps: all Debian packages present"
fi
if [ "$what" = test ]; then
    for s in "$here"/setup.d/*.sh; do
        [ -f "$s" ] || continue
        echo "install-deps: running $(basename "$s")"
        sh "$s"
    done
fi
