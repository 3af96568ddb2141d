#!/bin/sh
# deploy/gen-docs.sh BUILD_DIR — regenerate the files derived from the binaries' own help, so
# they never drift: docs/man/bitdistilld.8 (options from `bitdistilld --help`),
# docs/man/bitdistill.1 (commands from `bitdistill --help`) and deploy/bitdistill.example.json
# (`bitdistilld --print-example-config`). tests/test-deploy.sh checks they are current.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$top/build/normal}
out=${2:-$top}
mkdir -p "$out/docs/man" "$out/deploy"
"$B/bitdistilld" --print-example-config >"$out/deploy/bitdistill.example.json"
{
sed -n '/^#BEGIN-8-HEAD/,/^#END-8-HEAD/p' "$top/deploy/man-templates.txt" | sed '1d;$d'
"$B/bitdistilld" --help | awk '/^  --/ { name=$1; sub(/^--/, "", name); $1=""; sub(/^ +/, ""); help=$0;
    getline; env=$0; sub(/^ +\[/, "", env); sub(/\]$/, "", env);
    printf ".TP\n.BI \\-\\-%s\n%s", name, help; if (env ~ /^env/) printf " (%s)", env; printf "\n" }'
sed -n '/^#BEGIN-8-TAIL/,/^#END-8-TAIL/p' "$top/deploy/man-templates.txt" | sed '1d;$d'
} >"$out/docs/man/bitdistilld.8"
{
sed -n '/^#BEGIN-1-HEAD/,/^#END-1-HEAD/p' "$top/deploy/man-templates.txt" | sed '1d;$d'
"$B/bitdistill" --help | awk '/^  [a-z]/ { name=$1; $1=""; sub(/^ +/, ""); printf ".TP\n.B %s\n%s\n", name, $0 }'
sed -n '/^#BEGIN-1-TAIL/,/^#END-1-TAIL/p' "$top/deploy/man-templates.txt" | sed '1d;$d'
} >"$out/docs/man/bitdistill.1"
