# tests/tap.sh — TAP helpers for shell tests (sourced). Every `ok` is one counted assertion.
TAP_N=0
TAP_FAILED=0
ok() { # ok CONDITION_EXIT_STATUS "name"
    TAP_N=$((TAP_N + 1))
    if [ "$1" -eq 0 ]; then echo "ok $TAP_N - $2"; else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
is() { # is GOT WANT "name"
    TAP_N=$((TAP_N + 1))
    if [ "$1" = "$2" ]; then echo "ok $TAP_N - $3"; else
        echo "not ok $TAP_N - $3"; echo "# got:  '$1'"; echo "# want: '$2'"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # SKIP $1"; }
diag() { echo "# $*"; }
need() { # need COMMAND: without it, one SKIP naming it and the test ends (passing)
    command -v "$1" >/dev/null 2>&1 && return 0
    skip "$1 not installed (deploy/install-deps.sh test installs it)"
    done_testing
    exit $?
}
relay() { # relay FILE: a checker's "ok - name" / "not ok - name" lines as assertions, the rest as diag
    while IFS= read -r line; do
        case "$line" in
        "ok - "*) ok 0 "${line#ok - }" ;;
        "not ok - "*) ok 1 "${line#not ok - }" ;;
        *) diag "$line" ;;
        esac
    done <"$1"
}
relay_end() { # relay_end RC FILE PID: relay a checker's lines, then: it ran to its end (RC 0) and
    # the daemon PID still serves
    relay "$2"
    is "$1" 0 "the checker ran to its end"
    kill -0 "$3"
    ok $? "the daemon is still serving"
}
done_testing() { echo "1..$TAP_N"; [ "$TAP_FAILED" -eq 0 ]; }
