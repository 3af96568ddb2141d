#!/bin/sh
# tests/security/test-security.sh — the security review's checks against the real daemon
# (docs/security.md says what each covers): keys stored hashed and never logged; admin routes
# refuse infer keys and missing keys; request paths cannot leave the model root or the files
# directory; body, header and URL limits; input that is not UTF-8 is a 4xx, never a 500; TLS
# below 1.2 refused.
. "${top_srcdir:-.}/tests/tap.sh"
B=${top_builddir:-.}
T=$(mktemp -d /tmp/bd-test-sec-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT
start() {
    rm -f "$T/port"
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --trainer /bin/false \
        --max-body-size 64k --log-level debug "$@" >>"$T/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done
    P=$(cat "$T/port")
    U="http://127.0.0.1:$P"
}
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }

mkdir -p "$T/data" "$T/outside"
ADMIN=$("$B/bitdistill" keys create --scope admin --name a --data-dir "$T/data" 2>/dev/null | tail -1)
INFER=$("$B/bitdistill" keys create --scope infer --name i --data-dir "$T/data" 2>/dev/null | tail -1)
[ -n "$ADMIN" ] && [ -n "$INFER" ]
ok $? "admin and infer keys created with the CLI"
start
A="Authorization: Bearer $ADMIN"
I="Authorization: Bearer $INFER"

# Keys: hashed at rest, never in the log.
n=$(sqlite3 "$T/data/bitdistill.db" .dump | grep -c -e "$ADMIN" -e "$INFER")
is "$n" 0 "no secret key appears in the database (only SHA-256 hashes)"
is "$(code "$U/v1/keys")" 401 "admin route without a key -> 401"
is "$(code -H "$I" "$U/v1/keys")" 403 "admin route with an infer key -> 403"
is "$(code -H "$I" "$U/v1/fine_tuning/jobs")" 403 "job listing with an infer key -> 403"
is "$(code -H "$I" -X POST "$U/v1/models/x/activate")" 403 "model activation with an infer key -> 403"
is "$(code -H "Authorization: Bearer ${ADMIN}x" "$U/v1/keys")" 401 "a key with one extra character -> 401"
is "$(code -H "Authorization: bearer $ADMIN" "$U/v1/keys")" 200 "scheme name case-insensitive (RFC 7235), admin key -> 200"
is "$(code -H "$A" "$U/v1/keys?key=$ADMIN&x=1")" 200 "a key in the query string is ignored (and redacted from the access log: checked below)"

# Paths from requests stay inside the roots.
printf '{"architectures":["Qwen3ForCausalLM"]}' >"$T/outside/config.json"
R=$(code -H "$A" "$U/v1/fine_tuning/jobs" -d "{\"model\":\"$T/outside\",\"training_file\":\"file-x\",\"method\":{\"type\":\"bitnet_sft\"}}")
[ "$R" = 400 ] || [ "$R" = 404 ]
ok $? "job with a model directory outside the model root -> $R ($(head -c 120 "$T/body"))"
R=$(code -H "$A" "$U/v1/fine_tuning/jobs" -d "{\"model\":\"../../outside\",\"training_file\":\"file-x\",\"method\":{\"type\":\"bitnet_sft\"}}")
[ "$R" = 400 ] || [ "$R" = 404 ]
ok $? "job with model '../../outside' -> $R"
is "$(code -H "$A" --path-as-is "$U/v1/files/..%2f..%2fbitdistill.db")" 404 "GET /v1/files/..%2f..%2fbitdistill.db -> 404"
is "$(code -H "$A" --path-as-is "$U/v1/files/../../etc/passwd")" 404 "GET /v1/files/../../etc/passwd -> 404"
is "$(code -H "$A" -X DELETE --path-as-is "$U/v1/models/..%2f..%2fbitdistill.db")" 404 "DELETE /v1/models/..%2f.. -> 404"
[ -f "$T/data/bitdistill.db" ]
ok $? "the database is still there"
R=$(code -H "$A" --data-binary "$(printf '1 good\n0 bad\n')" "$U/v1/files?purpose=fine-tune&filename=../../../evil.txt")
[ ! -e "$T/evil.txt" ] && [ ! -e "$T/data/evil.txt" ] && [ -z "$(find "$T" -name evil.txt)" ]
ok $? "upload named ../../../evil.txt ($R) writes no file by that name anywhere"

# Limits.
head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big.json"
is "$(code -H "$A" --data-binary "@$T/big.json" "$U/v1/classify")" 413 "body over --max-body-size -> 413"
long=$(head -c 20000 /dev/zero | tr '\0' 'a')
is "$(code -H "X-Big: $long" "$U/livez")" 431 "header block over max-header-size -> 431"
is "$(code "$U/livez?$long")" 414 "request target over max-url-size -> 414"

# Input that is not UTF-8 is the client's error.
R=$(code -H "$A" --request-target "$(printf '/v1/\351models')" "$U/")
is "$R" 404 "GET /v1/\\xe9models -> 404 (was 500 'out of memory': the message quoted the path)"
R=$(code -H "$A" --data-binary "$(printf '1 caf\351 good\n')" "$U/v1/files?purpose=fine-tune&task=sst2&filename=l.txt")
[ "$R" -ge 400 ] && [ "$R" -lt 500 ] && grep -q 'UTF-8' "$T/body"
ok $? "upload with a line that is not UTF-8 -> $R naming UTF-8"

# Nothing secret in the log (debug level).
n=$(grep -c -e "$ADMIN" -e "$INFER" "$T/d.log")
is "$n" 0 "no secret key in the daemon's log at debug level (was: the access log wrote ?key=SECRET)"
grep -q 'key=REDACTED&x=1' "$T/d.log"
ok $? "the access log keeps the query with the credential's value redacted"
kill -TERM $PID; wait $PID; PID=""

# TLS: 1.2+ only.
if command -v openssl >/dev/null && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 >/dev/null 2>&1; then
    start --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$P" -tls1_1 >"$T/s11" 2>&1
    r11=$?
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$P" -tls1_2 >"$T/s12" 2>&1
    r12=$?
    [ "$r11" -ne 0 ] && [ "$r12" -eq 0 ]
    ok $? "TLS 1.1 handshake refused, TLS 1.2 accepted"
    kill -TERM $PID; wait $PID; PID=""
else
    skip "TLS versions: openssl cannot make a test certificate here"
fi
done_testing
