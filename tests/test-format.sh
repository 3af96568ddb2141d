#!/bin/sh
# tests/test-format.sh — the tree is formatted as .clang-format says (tools/check-format.sh), and
# the checker catches a misformatted file and passes it once tools/format.sh has formatted it
# (on a small git repository made here). Needs clang-format 14 (deploy/packages/test.list).
. "$top_srcdir/tests/tap.sh"
T=$(mktemp -d /tmp/bd-test-format-XXXXXX)
trap 'rm -rf "$T"' EXIT
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
    skip "clang-format is not installed (apt-get install clang-format; deploy/packages/test.list)"
    done_testing
    exit 0
fi
if ! command -v git >/dev/null 2>&1; then
    skip "git is not installed: tools/format.sh formats the files git tracks"
    done_testing
    exit 0
fi

out=$("$top_srcdir/tools/check-format.sh" "$top_srcdir" 2>&1)
ok $? "every tracked .c/.h/.cu file is formatted (else run tools/format.sh)"
[ -n "$out" ] && diag "$(printf '%s\n' "$out" | head -40)"

# A small repository with the project's style and the scripts.
mkdir -p "$T/r/tools" "$T/r/engine"
cp "$top_srcdir/.clang-format" "$T/r/"
cp "$top_srcdir/tools/format.sh" "$top_srcdir/tools/check-format.sh" "$T/r/tools/"
printf 'int eng_x(int a)\n{\n    return a + 1;\n}\n' >"$T/r/engine/good.c"
printf 'int eng_y( int a ){ if(a) {return 2;} return 1; }\n' >"$T/r/engine/bad.c"
(cd "$T/r" && git init -q . && git add . ) || { echo "Bail out! git init failed"; exit 1; }

out=$("$T/r/tools/check-format.sh" 2>/dev/null); rc=$?
is "$rc" 1 "a misformatted file fails the check"
is "$out" "engine/bad.c" "the check lists that file, and only it"
cp "$T/r/engine/good.c" "$T/good.before"
"$T/r/tools/format.sh"
ok $? "tools/format.sh runs"
cmp -s "$T/r/engine/good.c" "$T/good.before"
ok $? "a formatted file is left as it was"
want=$(printf 'int eng_y(int a)\n{\n    if (a) {\n        return 2;\n    }\n    return 1;\n}')
is "$(cat "$T/r/engine/bad.c")" "$want" "the misformatted file is now in the house style (K&R, 4 spaces)"
"$T/r/tools/check-format.sh" >/dev/null 2>&1
ok $? "and the check passes"
done_testing
