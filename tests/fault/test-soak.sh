#!/bin/sh
# tests/fault/test-soak.sh — bench/soak.sh for SOAK_TIME seconds (default 45): 64 concurrent
# clients (classify, streaming summarize, job listing, event streams) with 50 hot-swaps.
. "${top_srcdir:-.}/tests/tap.sh"
out=$(sh "$top_srcdir/bench/soak.sh" "${SOAK_TIME:-45}" "${top_builddir:-.}" 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
ok $rc "soak: $(echo "$out" | grep '^soak:' | sed 's/^soak: //'): zero failed requests, zero 5xx, 50/50 hot-swaps, flat RSS, daemon alive"
done_testing
