#!/bin/sh
# tests/test-srv-auth.sh — API keys end to end with curl and the CLI (401/403/200, hashing,
# creation and revocation over HTTP and from the CLI while the daemon runs), TLS with a
# certificate made here (handshake, TLS 1.2 floor, plain HTTP refused, bad key refused at start).
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
T=$(mktemp -d /tmp/bd-test-auth-XXXXXX)
trap 'kill $PID $TPID 2>/dev/null; rm -rf "$T"' EXIT

start() { # start LOGNAME EXTRA... ; sets PID and PORT
    log=$1; shift
    rm -f "$T/port.$log"
    "$B/bitdistilld" --port 0 --port-file "$T/port.$log" --data-dir "$T/data" "$@" >"$T/$log.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do [ -s "$T/port.$log" ] && break; kill -0 $PID 2>/dev/null || break; sleep 0.05; done
    PORT=$(cat "$T/port.$log" 2>/dev/null)
}
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }

"$B/bitdistill" --help >"$T/help" 2>&1
ok $? "bitdistill --help exits 0"
grep -q "keys" "$T/help" && grep -q "serve" "$T/help"
ok $? "bitdistill --help lists its subcommands"
"$B/bitdistilld" --help >"$T/dhelp" 2>&1 && grep -q -- "--host" "$T/dhelp" && grep -q -- "--port " "$T/dhelp" \
    && grep -q -- "--data-dir" "$T/dhelp" && grep -q "BITDISTILL_MAX_BODY_SIZE" "$T/dhelp"
ok $? "bitdistilld --help documents --host, --port, --data-dir and their environment names"
"$B/bitdistilld" --port nope >/dev/null 2>"$T/err"; rc=$?
is "$rc" 2 "a bad flag exits 2"
grep -q "port" "$T/err"
ok $? "and names the option: $(cat "$T/err")"

start plain
[ -n "$PORT" ]
ok $? "daemon started (port $PORT)"
is "$(code "http://127.0.0.1:$PORT/v1/keys")" 200 "no keys yet: the API is open"

ADMIN=$("$B/bitdistill" keys create --scope admin --name ops --data-dir "$T/data" 2>"$T/create.err")
ok $? "keys create --scope admin exits 0 while the daemon runs"
echo "$ADMIN" | grep -Eq '^bd_[A-Za-z0-9_-]{43}$'
ok $? "the key is printed once on stdout, bd_ + 43 base64url characters"
grep -q "only time" "$T/create.err"
ok $? "stderr says it will not be shown again"
INFER=$("$B/bitdistill" keys create --scope infer --data-dir "$T/data" 2>/dev/null)
"$B/bitdistill" keys create --scope root --data-dir "$T/data" >/dev/null 2>"$T/err"; rc=$?
is "$rc" 2 "an unknown scope is a usage error"

HASH=$(printf '%s' "$ADMIN" | sha256sum | cut -d' ' -f1)
is "$(sqlite3 "$T/data/bitdistill.db" "select count(*) from api_keys where hash='$HASH'")" 1 "the database holds the key's SHA-256"
is "$(sqlite3 "$T/data/bitdistill.db" "select count(*) from api_keys where hash='$ADMIN' or prefix='$ADMIN' or name='$ADMIN'")" 0 "and never the key itself"
is "$(sqlite3 "$T/data/bitdistill.db" "pragma journal_mode")" wal "the database is in WAL mode"
is "$(sqlite3 "$T/data/bitdistill.db" "pragma user_version")" 3 "migrations recorded in user_version"

is "$(code "http://127.0.0.1:$PORT/v1/keys")" 401 "no key -> 401"
grep -q '"type":"authentication_error"' "$T/body"
ok $? "401 body is the error format with authentication_error"
is "$(curl -s -o /dev/null -D - "http://127.0.0.1:$PORT/v1/keys" | grep -ci '^www-authenticate: bearer')" 1 "401 carries WWW-Authenticate: Bearer"
is "$(code -H "Authorization: Bearer bd_wrong" "http://127.0.0.1:$PORT/v1/keys")" 401 "unknown key -> 401"
is "$(code -H "Authorization: Basic $ADMIN" "http://127.0.0.1:$PORT/v1/keys")" 401 "non-Bearer scheme -> 401"
is "$(code -H "Authorization: Bearer $INFER" "http://127.0.0.1:$PORT/v1/keys")" 403 "infer key on an admin route -> 403"
grep -q '"type":"permission_error"' "$T/body"
ok $? "403 body names permission_error"
is "$(code -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$PORT/v1/keys")" 200 "admin key -> 200"
is "$(grep -o '"object":"api_key"' "$T/body" | wc -l)" 2 "two keys listed"
grep -q "$ADMIN" "$T/body"
ok $((! $?)) "the listing never contains a secret"
for r in livez readyz health metrics; do
    c=$(code "http://127.0.0.1:$PORT/$r")
    [ "$c" = 200 ] || [ "$c" = 503 ]
    ok $? "/$r stays open without a key ($c)"
done

# Keys over HTTP.
is "$(code -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{"scope":"infer","name":"web"}' "http://127.0.0.1:$PORT/v1/keys")" 201 "POST /v1/keys -> 201"
NEW=$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' "$T/body")
NEWID=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$T/body")
is "$(code -H "Authorization: Bearer $NEW" -X DELETE "http://127.0.0.1:$PORT/v1/keys/$NEWID")" 403 "the new infer key works at once (403 on admin route, not 401)"
is "$(code -H "Authorization: Bearer $ADMIN" -X DELETE "http://127.0.0.1:$PORT/v1/keys/$NEWID")" 200 "DELETE /v1/keys/{id} -> 200"
grep -q '"deleted":true' "$T/body"
ok $? "deletion confirmed"
is "$(code -H "Authorization: Bearer $NEW" "http://127.0.0.1:$PORT/v1/keys")" 401 "a revoked key -> 401"
is "$(code -H "Authorization: Bearer $ADMIN" -X DELETE "http://127.0.0.1:$PORT/v1/keys/key_nope")" 404 "deleting an unknown key -> 404"

# CLI list and revoke while the daemon runs.
"$B/bitdistill" keys list --data-dir "$T/data" >"$T/list"
is "$(grep -c '^key_' "$T/list")" 2 "keys list shows the two active keys"
IID=$(grep ' infer ' "$T/list" | cut -d' ' -f1)
"$B/bitdistill" keys revoke "$IID" --data-dir "$T/data" 2>/dev/null
ok $? "keys revoke exits 0"
is "$(code -H "Authorization: Bearer $INFER" "http://127.0.0.1:$PORT/v1/keys")" 401 "a key revoked from the CLI is refused by the running daemon"
kill $PID; wait $PID; ok $? "daemon exits 0 on SIGTERM"

# TLS.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
ok $? "test certificate made"
start tls --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
TPID=$PID
is "$(code --cacert "$T/cert.pem" "https://127.0.0.1:$PORT/livez")" 200 "HTTPS request verified against the test CA"
curl -sv --cacert "$T/cert.pem" "https://127.0.0.1:$PORT/livez" -o /dev/null 2>"$T/tlsv"
grep -Eq 'SSL connection using TLSv1\.[23]' "$T/tlsv"
ok $? "negotiated TLS 1.2 or 1.3"
curl -s --cacert "$T/cert.pem" --tlsv1.0 --tls-max 1.1 "https://127.0.0.1:$PORT/livez" >/dev/null 2>&1
ok $((! $?)) "TLS 1.1 and older refused"
is "$(curl -s --cacert "$T/cert.pem" -H 'Authorization: Bearer nope' -o /dev/null -o /dev/null -w '%{http_code}' \
      "https://127.0.0.1:$PORT/v1/keys" "https://127.0.0.1:$PORT/livez" | tr -d '\n')" 401200 "keep-alive over TLS: two requests on one connection"
c=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/livez")
[ "$c" != 200 ]
ok $? "plain HTTP to the TLS port gets no answer ($c)"
is "$(code --cacert "$T/cert.pem" "https://127.0.0.1:$PORT/livez")" 200 "still serving TLS after a plain-HTTP client"
kill $TPID; wait $TPID; ok $? "TLS daemon exits 0"
TPID=

"$B/bitdistilld" --port 0 --data-dir "$T/data" --tls-cert "$T/cert.pem" --tls-key "$T/cert.pem" >"$T/badkey.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "cert.pem" "$T/badkey.log"
ok $? "a wrong TLS key file stops start-up with a message naming it (rc $rc)"

done_testing
