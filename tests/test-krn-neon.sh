#!/bin/sh
# tests/test-krn-neon.sh — run the kernel tests cross-built for aarch64 (kernels/local.mk) under
# qemu-aarch64 (-cpu max: ASIMD + dot product, so both the neon and neondot variants run
# against _ref). The TAP of the three programs is renumbered into one stream with one plan.
# Skips, with the reason, where the cross compiler or qemu is absent.
dir=tests/krn-arm64
if [ -z "${QEMU_AARCH64:-}" ] || [ ! -x "$QEMU_AARCH64" ]; then
    echo "1..1"; echo "ok 1 # SKIP qemu-aarch64 not found by configure (Debian qemu-user)"; exit 0
fi
if [ ! -f "$dir/stamp" ] || ! grep -q '^built' "$dir/stamp"; then
    echo "1..1"; echo "ok 1 # SKIP $(cat "$dir/stamp" 2>/dev/null || echo 'aarch64 test binaries not built')"; exit 0
fi
status=0
out=$(for t in test-krn-i2 test-krn-head test-krn-fops; do
    echo "# --- $t (aarch64 under $QEMU_AARCH64)"
    "$QEMU_AARCH64" -cpu max "$dir/$t" || echo "not ok - $t exited with status $?"
done)
echo "$out" | awk '
    /^1\.\.[0-9]+$/ { next }
    /^ok [0-9]+/ { n++; sub(/^ok [0-9]+/, "ok " n); print; next }
    /^not ok/ { n++; sub(/^not ok( [0-9]+)?/, "not ok " n); print; bad++; next }
    { print }
    END { print "1.." n; exit bad ? 1 : 0 }' || status=1
exit $status
