#!/bin/sh
# tests/test-deploy.sh — the deployment files: the systemd unit verifies and is well sandboxed,
# the man pages and the example config match the binaries' own help, `make install` installs
# binaries, unit, man pages and example config, and the Dockerfile has what the issue asks.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
T=$(mktemp -d /tmp/bd-test-deploy-XXXXXX)
trap 'rm -rf "$T"' EXIT

if command -v systemd-analyze >/dev/null; then
    sed -e "s|@bindir@|$B|g" "$top_srcdir/deploy/systemd/bitdistilld.service.in" >"$T/bitdistilld.service"
    systemd-analyze verify --man=no "$T/bitdistilld.service" >"$T/verify" 2>&1
    ok $? "systemd-analyze verify accepts the unit $(cat "$T/verify")"
    level=$(systemd-analyze security --offline=true "$T/bitdistilld.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for bitdistilld.service: \([0-9.]*\).*/\1/p')
    awk -v l="${level:-99}" 'BEGIN { exit !(l <= 2.5) }'
    ok $? "systemd-analyze security exposure ${level:-?} <= 2.5"
else
    skip "systemd-analyze is not installed"
    skip "systemd-analyze is not installed"
fi
grep -q '^Type=notify' "$top_srcdir/deploy/systemd/bitdistilld.service.in" &&
    grep -q '^ExecReload=/bin/kill -HUP' "$top_srcdir/deploy/systemd/bitdistilld.service.in"
ok $? "the unit uses Type=notify and reloads with SIGHUP"
drain=$("$B/bitdistilld" --print-config | sed -n 's/.*"drain-timeout-ms": \([0-9]*\).*/\1/p')
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)/\1/p' "$top_srcdir/deploy/systemd/bitdistilld.service.in")
[ $((stop * 1000)) -gt "$drain" ]
ok $? "TimeoutStopSec (${stop}s) exceeds the drain timeout (${drain} ms)"

sh "$top_srcdir/deploy/gen-docs.sh" "$B" "$T/gen" >/dev/null 2>&1
for f in docs/man/bitdistilld.8 docs/man/bitdistill.1 deploy/bitdistill.example.json; do
    cmp -s "$T/gen/$f" "$top_srcdir/$f"
    ok $? "$f is current (deploy/gen-docs.sh)"
done
man --warnings -l "$top_srcdir/docs/man/bitdistilld.8" >/dev/null 2>"$T/manwarn"
[ ! -s "$T/manwarn" ]
ok $? "bitdistilld.8 renders without warnings $(head -3 "$T/manwarn")"
"$B/bitdistilld" --config "$top_srcdir/deploy/bitdistill.example.json" --print-config >"$T/ex.json" &&
    "$B/bitdistilld" --print-config | cmp -s - "$T/ex.json"
ok $? "the example config loads and equals the defaults"

make -s -C "$B" install DESTDIR="$T/root" >"$T/install.log" 2>&1
ok $? "make install into DESTDIR"
for f in bin/bitdistilld bin/bitdistill; do
    [ -x "$(find "$T/root" -path "*/$f" | head -1)" ]
    ok $? "installed $f"
done
for f in bitdistilld.service man8/bitdistilld.8 man1/bitdistill.1 bitdistill.example.json; do
    [ -n "$(find "$T/root" -path "*/$f" | head -1)" ]
    ok $? "installed $f"
done
grep -q "ExecStart=.*/bin/bitdistilld" "$(find "$T/root" -name bitdistilld.service | head -1)"
ok $? "the installed unit points at the installed binary"

D="$top_srcdir/deploy/Dockerfile"
[ "$(grep -c '^FROM debian:12' "$D")" -ge 2 ] && grep -q '^USER bitdistill' "$D" &&
    grep -A1 '^HEALTHCHECK' "$D" | grep -q readyz && grep -q 'COPY --from=build' "$D"
ok $? "Dockerfile: Debian 12, multi-stage, non-root, health check on /readyz"
done_testing
