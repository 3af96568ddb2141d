#!/bin/sh
# tests/run-all.sh — install what the tests need, build twice (normal, then ASan+UBSan) and run
# the whole suite in both builds; ends with one line "N passed, N failed" over both.
# Idempotent; works as root or through sudo. Build trees: build/normal and build/sanitize.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

deploy/install-deps.sh test || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi || { echo "0 passed, 1 failed"; exit 1; }

status=0
for kind in normal sanitize; do
    dir="build/$kind"
    mkdir -p "$dir"
    flags=""
    [ "$kind" = sanitize ] && flags="--enable-sanitizers"
    echo "=== $kind build ==="
    if [ ! -f "$dir/Makefile" ]; then
        (cd "$dir" && ../../configure $flags -q) || { status=1; echo "configure ($kind) failed"; continue; }
    fi
    make -C "$dir" -j"$jobs" -s || { status=1; echo "build ($kind) failed"; continue; }
    rm -f "$dir/test-suite.log"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        make -C "$dir" -j"$jobs" check >"$dir/check.out" 2>&1 || status=1
    grep -E '^(PASS|FAIL|ERROR|SKIP|XFAIL|XPASS)' "$dir/check.out" | grep -v '^PASS' || true
    grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$dir/check.out" | sed "s/^/[$kind] /"
    if grep -qE '^(FAIL|ERROR)' "$dir/check.out"; then
        for log in $(grep -lE '^(not ok|Bail out)' $(find "$dir" -name '*.log' -path '*tests*' -o -name '*.log' -path '*/test-*') 2>/dev/null); do
            echo "--- $log"; grep -E -B2 -A8 '^(not ok|Bail out)' "$log" | head -60
        done
    fi
done

# The release tarball must be complete: make dist, then configure and build from it alone.
echo "=== tarball build ==="
rm -rf build/dist && mkdir -p build/dist
if make -C build/normal -s dist >build/dist/dist.out 2>&1 &&
    tar -xzf build/normal/bitdistill-*.tar.gz -C build/dist &&
    (cd build/dist/bitdistill-* && mkdir _b && cd _b && ../configure -q && make -s -j"$jobs") >>build/dist/dist.out 2>&1; then
    echo "# PASS: 1" >build/dist/check.out; echo "PASS: tarball configures and builds"
else
    echo "# FAIL: 1" >build/dist/check.out; echo "FAIL: tarball does not build:"; tail -20 build/dist/dist.out
fi

sum() { cat build/*/check.out 2>/dev/null | sed -n "s/^# $1: *//p" | awk '{s+=$1} END {print s+0}'; }
pass=$(sum PASS); fail=$(( $(sum FAIL) + $(sum ERROR) + $(sum XPASS) )); skip=$(sum SKIP)
[ "$status" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1
echo "skipped: $skip (each printed with its reason above and in the logs)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
