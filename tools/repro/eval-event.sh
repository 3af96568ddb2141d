# tools/repro/eval-event.sh — sourced by experiments.sh and report.sh.
# eval_event EVENTS MODEL SPLIT FIELD: FIELD of the last `eval` event of MODEL on SPLIT
# (validation or selection) in a run's events.jsonl; empty when there is none. Only `eval` lines:
# the `done` line repeats every metric and would answer with another split's number.
eval_event() {
    grep "\"type\":\"eval\".*\"model\":\"$2\",\"split\":\"$3\"" "$1" 2>/dev/null | tail -1 |
        sed -n "s/.*\"$4\":\([-0-9.e]*\).*/\1/p"
}
