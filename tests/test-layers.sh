#!/bin/sh
# tests/test-layers.sh — the folder layers (tools/check-layers.sh): the tree passes, and the
# checker itself catches what it must on a small tree made here (an include upward, between two
# folders of the same layer, from a folder with no place in the order) and lets pass what it
# must (an include downward, within a folder, of config.h, the load generator's exception).
. "$top_srcdir/tests/tap.sh"
check="$top_srcdir/tools/check-layers.sh"
T=$(mktemp -d /tmp/bd-test-layers-XXXXXX)
trap 'rm -rf "$T"' EXIT

out=$("$check" "$top_srcdir" 2>&1)
ok $? "the tree keeps the layer order"
[ -n "$out" ] && diag "$out"

# A tree of its own (no .git: every .c/.h is read).
put() { mkdir -p "$(dirname "$T/$1")" && printf '%s\n' "$2" >"$T/$1"; }

rm -rf "${T:?}"/*
put config.h '/* top */'
put engine/a.c '#include "config.h"
#include "engine/a.h"
#include "kernels/krn.h"
#include "jinja/jinja.h"
#include "log/log.h"'
put api/b.c '#include "server/http.h"
#include "store/store.h"
#include "engine/model.h"'
put cmd/main.c '#include "api/api.h"
#include "bench/bench.h"
#include "plot/cli.h"'
put bench/loadgen.c '#include "tests/http_client.h"'
put tests/t.c '#include "cmd/cli.h"'
"$check" "$T" >/dev/null 2>&1
ok $? "downward includes, own-folder includes, config.h and the load generator pass"

put engine/up.c '#include "api/api.h"'
out=$("$check" "$T" 2>&1); rc=$?
is "$rc" 1 "engine including api fails"
case "$out" in *'engine/up.c:1: engine (2) includes "api/api.h" (api, 7)'*) r=0 ;; *) r=1 ;; esac
ok $r "the failure names the file, the line and both layers"
[ $r -eq 0 ] || diag "$out"
rm -f "$T/engine/up.c"

put kernels/k.c '#include "kernels/krn.h"
#include "jinja/jinja.h"'
out=$("$check" "$T" 2>&1); rc=$?
is "$rc" 1 "kernels including jinja (same layer) fails"
rm -f "$T/kernels/k.c"

put jobs/supervisor.c '#include "server/log.h"'
out=$("$check" "$T" 2>&1); rc=$?
is "$rc" 1 "jobs including server fails (the old jobs<->server cycle)"
rm -f "$T/jobs/supervisor.c"

put bench/other.c '#include "tests/http_client.h"'
out=$("$check" "$T" 2>&1); rc=$?
is "$rc" 1 "only the load generator may use the tests' HTTP client"
rm -f "$T/bench/other.c"

put newdir/x.c '#include "engine/model.h"'
out=$("$check" "$T" 2>&1); rc=$?
is "$rc" 1 "a folder with no place in the order fails"
case "$out" in *"folder 'newdir' has no place"*) r=0 ;; *) r=1 ;; esac
ok $r "and is named"
rm -rf "$T/newdir"

put engine/c.c '#include "nowhere/x.h"'
out=$("$check" "$T" 2>&1); rc=$?
is "$rc" 1 "an include of an unknown folder fails"
rm -f "$T/engine/c.c"

"$check" "$T" >/dev/null 2>&1
ok $? "the small tree passes again once the violations are gone"
done_testing
