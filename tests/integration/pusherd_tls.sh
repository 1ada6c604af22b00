#!/usr/bin/env bash
# pusherd_tls: the TLS listener and tls_only apps (docs/tls.md), against real
# peers over loopback.  A test CA and server certificates are made here with
# `openssl` in the run directory (nothing secret is kept in git).
#  - startup: an unreadable certificate, a key that does not match, a missing
#    --tls-key: clear message, non-zero exit;
#  - our CLI: `pusher listen` over wss:// and `pusher trigger` over https://
#    with --ca-file; curl --cacert on the HTTP API (/ready and a signed GET);
#  - pusher-js 8.6.0 (forceTLS; wsHost/wssPort) and the official `pusher` SDK
#    (useTLS) with NODE_EXTRA_CA_CERTS (tests/integration/pusherd/tls.cjs),
#    a raw ws client of a tls_only app over plain ws: pusher:error 4000 and
#    close 4000; pusher-js without forceTLS switches to TLS by itself;
#  - `pusher listen --no-tls --wss-port` on a tls_only app: error 4000, then
#    connected over TLS, and it receives an event;
#  - hostile peers on the TLS port: garbage instead of a ClientHello, plain
#    HTTP (answered 400 in plain text), half a ClientHello then silence
#    (closed at the handshake deadline, header_timeout_ms = 1000 here), a
#    peer vanishing mid-handshake; a WebSocket message over the cap through
#    TLS gets close 1009; the server keeps serving, an established wss
#    client keeps receiving;
#  - SIGHUP: a replaced certificate is served to new connections (serial and
#    subject checked), old connections keep working; a broken certificate
#    file is refused with a log line and the previous certificate kept;
#  - --port 0: TLS only, no plain listener;
#  - SIGTERM: the wss client gets 4200; exit 0 (under ASan: no leak).
# Ports: pusherd 7970 (plain) and 7971 (TLS); 7972-7974 for the other runs.
. "$(dirname "$0")/lib.sh"
require_bins
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v openssl >/dev/null || fail "openssl not found"
command -v curl >/dev/null || fail "curl not found"
PORT=7970 TPORT=7971
D="$RUN_DIR/pki"   # certificates and keys: not printed with the logs on failure
mkdir -p "$D"

# ---- test PKI: a CA, two server certificates (localhost, 127.0.0.1), a stray key
pki() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/ca.key" -out "$D/ca.pem" \
    -days 2 -subj "/CN=pusherd test CA" 2>>"$D/openssl.log"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$D/ext.cnf"
  local n
  for n in 1 2; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/s$n.key" -out "$D/s$n.csr" \
      -subj "/CN=pusherd-test-$n" 2>>"$D/openssl.log"
    openssl x509 -req -in "$D/s$n.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -set_serial "0x100$n" -days 2 \
      -extfile "$D/ext.cnf" -out "$D/s$n.pem" 2>>"$D/openssl.log"
  done
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/stray.key" 2>>"$D/openssl.log"
}
pki || fail "openssl could not make the test certificates"
cp "$D/s1.pem" "$D/server.pem"
cp "$D/s1.key" "$D/server.key"
log "test CA and certificates (serials 1001, 1002) made"

# ---- startup errors: clear message, non-zero exit, nothing left running
start_err() {   # WANT_RC GREP ARGS...
  local want="$1" pat="$2" rc=0; shift 2
  timeout "$(scaled 20)" "$PUSHERD_BIN" "$@" >"$RUN_DIR/err.out" 2>"$RUN_DIR/err.log" || rc=$?
  [ "$rc" = "$want" ] || fail "pusherd $* exited $rc (want $want): $(cat "$RUN_DIR/err.log")"
  grep -q -- "$pat" "$RUN_DIR/err.log" || fail "pusherd $*: no '$pat' in: $(cat "$RUN_DIR/err.log")"
  log "refused as expected (exit $rc): $(head -c 200 "$RUN_DIR/err.log")"
}
start_err 1 "cannot read the certificate file $D/missing.pem" --port 7972 --tls-port 7973 --tls-cert "$D/missing.pem" --tls-key "$D/s1.key"
start_err 1 "does not match the certificate" --port 7972 --tls-port 7973 --tls-cert "$D/s1.pem" --tls-key "$D/stray.key"
start_err 1 "cannot load the certificate chain" --port 7972 --tls-port 7973 --tls-cert "$D/s1.key" --tls-key "$D/s1.key"
start_err 2 "needs all of --tls-port, --tls-cert and --tls-key" --port 7972 --tls-port 7973 --tls-cert "$D/s1.pem"
start_err 2 "--port 0 turns the plain listener off" --port 0

# ---- the server: an ordinary app and a tls_only app
cat >"$RUN_DIR/apps.json" <<JSON
{"port": $PORT, "tls_port": $TPORT, "tls_cert": "$D/server.pem", "tls_key": "$D/server.key",
 "header_timeout_ms": 1000, "log_level": "debug",
 "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret", "client_events": true},
          {"id": "tls-id", "key": "tls-key", "secret": "tls-secret", "tls_only": true}]}
JSON
_port_free "$PORT" || fail "port $PORT is in use"
_port_free "$TPORT" || fail "port $TPORT is in use"
"$PUSHERD_BIN" --config "$RUN_DIR/apps.json" >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
PD=$!
_PIDS+=("$PD")
wait_until 10 "pusherd on :$PORT and :$TPORT" eval '! _port_free '"$PORT"' && ! _port_free '"$TPORT" ||
  fail "pusherd did not start"
grep -q 'msg="pusherd listening with TLS".*serial=1001' "$RUN_DIR/pusherd.log" || fail "no TLS listening line with the serial"
log "pusherd on :$PORT and TLS :$TPORT (pid $PD)"

# served_cert PORT: "serial=... subject=..." of the certificate a new TLS connection sees
served_cert() {
  openssl s_client -connect "127.0.0.1:$1" -servername localhost -CAfile "$D/ca.pem" -verify_return_error \
    </dev/null 2>/dev/null | openssl x509 -noout -serial -subject -nameopt RFC2253 | tr '\n' ' '
}
got="$(served_cert "$TPORT")"
case "$got" in *serial=1001*CN=pusherd-test-1*) ;; *) fail "served certificate: '$got'" ;; esac
log "served: $got"

# ---- our CLI over wss:// and https://
listen_start wss --host 127.0.0.1 --tls --port "$TPORT" --ca-file "$D/ca.pem" --key app-key tls-cli
expect_line wss "$P_CONNECTED" 10 "not connected over wss" >/dev/null
expect_line wss "$(p_subscribed tls-cli)" 10 "not subscribed" >/dev/null
cli_trigger() {   # APP_ID KEY SECRET CHANNEL EVENT DATA
  "$PUSHER_BIN" trigger --host 127.0.0.1 --wss-port "$TPORT" --ca-file "$D/ca.pem" --app-id "$1" --key "$2" \
    --secret "$3" "$4" "$5" "$6" >>"$RUN_DIR/trigger.out" 2>&1 || fail "pusher trigger $4 $5 over https failed"
}
cli_trigger app-id app-key app-secret tls-cli one '{"n":1}'
expect_line wss "$(p_event tls-cli one '{"n":1}')" 10 "event over https -> wss not received" >/dev/null
log "pusher listen over wss:// received an event triggered by pusher trigger over https://"
# without the CA the certificate is refused (verification is really on)
rc=0; "$PUSHER_BIN" trigger --host 127.0.0.1 --wss-port "$TPORT" --app-id app-id --key app-key \
  --secret app-secret tls-cli x '{}' >"$RUN_DIR/noca.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "trigger without the test CA exited $rc (want 1): $(cat "$RUN_DIR/noca.out")"

# ---- curl --cacert on the HTTP API
[ "$(curl -sS --cacert "$D/ca.pem" "https://localhost:$TPORT/ready")" = '{"ok":true}' ] || fail "GET /ready over https"
signed="$(python3 - <<'PY'
import hashlib, hmac, time
q = "auth_key=app-key&auth_timestamp=%d&auth_version=1.0" % int(time.time())
sig = hmac.new(b"app-secret", ("GET\n/apps/app-id/channels\n" + q).encode(), hashlib.sha256).hexdigest()
print("/apps/app-id/channels?%s&auth_signature=%s" % (q, sig))
PY
)"
body="$(curl -sS --cacert "$D/ca.pem" "https://127.0.0.1:$TPORT$signed")" || fail "signed GET over https failed"
case "$body" in *'"tls-cli"'*) ;; *) fail "GET /channels over https: $body" ;; esac
log "curl --cacert: /ready and a signed GET /channels over https: $body"

# ---- pusher-js and the pusher SDK (tls.cjs)
NODE_EXTRA_CA_CERTS="$D/ca.pem" PEERS_CLIENTS="$PEERS/clients" \
  timeout "$(scaled 90)" node "$(dirname "$0")/pusherd/tls.cjs" "$PORT" "$TPORT" "$MULT" >"$RUN_DIR/tls.cjs.out" 2>&1 ||
  { cat "$RUN_DIR/tls.cjs.out"; fail "tls.cjs checks failed"; }
sed 's/^/    /' "$RUN_DIR/tls.cjs.out"

# ---- our client on a tls_only app, started without TLS: 4000, then TLS by itself
listen_start auto --host 127.0.0.1 --no-tls --port "$PORT" --wss-port "$TPORT" --ca-file "$D/ca.pem" \
  --key tls-key only-tls
expect_line auto 'd and d.get("type")=="error" and d.get("code")==4000' 10 "no error 4000 on the plain attempt" >/dev/null
expect_line auto "$P_CONNECTED" 10 "did not connect after 4000" >/dev/null
expect_line auto "$(p_subscribed only-tls)" 10 "not subscribed on the tls_only app" >/dev/null
cli_trigger tls-id tls-key tls-secret only-tls auto '{"switched":true}'
expect_line auto "$(p_event only-tls auto '{"switched":true}')" 10 "event not received after the switch" >/dev/null
[ "$(count_lines "$(out auto)" "$P_CONNECTED")" = 1 ] || fail "client auto connected more than once"
grep -q 'code=4000' "$RUN_DIR/pusherd.log" || fail "pusherd did not log the 4000 close"
print_timeline auto
log "pusher listen --no-tls on a tls_only app: 4000, then connected over TLS, event received"

# ---- hostile peers on the TLS port
python3 - "$TPORT" "$(scaled 10)" "$D/ca.pem" >"$RUN_DIR/hostile.out" 2>&1 <<'PY' || { cat "$RUN_DIR/hostile.out"; fail "hostile TLS peers"; }
import os, socket, ssl, sys
port, T, ca = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=T)
def read_all(s):
    """Everything until the server ends the connection (EOF or reset)."""
    got = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return got, "reset"
        if not b:
            return got, "eof"
        got += b
def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context(cafile=ca)
    o = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        o.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()
# garbage instead of a ClientHello: closed, with at most an alert
s = conn(); s.sendall(os.urandom(2000)); got, how = read_all(s); s.close()
assert len(got) < 100 and (not got or got[0] == 0x15), got[:20]
print("garbage: closed (%s) after %d bytes%s" % (how, len(got), " (a TLS alert)" if got else ""))
# plain HTTP on the TLS port: a plain-text 400
s = conn(); s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"); got, how = read_all(s); s.close()
assert got.startswith(b"HTTP/1.1 400 ") and b"use https:// or wss://" in got, got
print("plain HTTP: %r (%s)" % (got.split(b"\r\n")[0].decode(), how))
# half a ClientHello, then silence: closed at the handshake deadline
ch = client_hello()
s = conn(); s.sendall(ch[: len(ch) // 2]); got, how = read_all(s); s.close()
assert got == b"" or got[0] == 0x15, got[:20]
print("half a ClientHello, then nothing: closed (%s)" % how)
# nothing at all: closed at the deadline too
s = conn(); got, how = read_all(s); s.close()
assert got == b"", got[:20]
print("silent peer: closed (%s)" % how)
# vanishing mid-handshake: send a ClientHello and close before the reply
for _ in range(50):
    s = conn(); s.sendall(ch); s.close()
print("50 peers vanished mid-handshake")
# over TLS, a WebSocket message over the 256 KiB cap (many TLS records) is
# answered with close 1009 (not a reset), like on the plain port
import base64, struct
ctx = ssl.create_default_context(cafile=ca)
with ctx.wrap_socket(conn(), server_hostname="localhost") as t:
    t.sendall(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) +
              b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    got = b""
    while b"connection_established" not in got:
        b = t.recv(65536)
        assert b, got
        got += b
    payload = b"x" * 300000
    key = os.urandom(4)
    masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    try:
        t.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(payload)) + key + masked)
    except OSError:
        pass  # the server may close before reading it all; what it sent is still there
    rest, how = read_all(t)
    i = rest.find(b"\x88")
    assert i >= 0 and struct.unpack("!H", rest[i + 2:i + 4])[0] == 1009, (how, rest[-40:])
print("a 300 KB WebSocket message over TLS: close 1009 (%s after)" % how)
# a full handshake still works afterwards
ctx = ssl.create_default_context(cafile=ca)
with ctx.wrap_socket(conn(), server_hostname="localhost") as t:
    t.sendall(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    version = t.version()
    got, how = read_all(t)
assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b'{"ok":true}'), got
print("a real client afterwards: %s, %s" % (got.split(b"\r\n")[0].decode(), version))
PY
sed 's/^/    /' "$RUN_DIR/hostile.out"
grep -q 'msg="TLS handshake not complete in time; closed"' "$RUN_DIR/pusherd.log" || fail "no log line for the handshake deadline"
grep -q 'msg="TLS handshake failed; closing"' "$RUN_DIR/pusherd.log" || fail "no log line for failed handshakes"
from="$(line_count "$(out wss)")"
cli_trigger app-id app-key app-secret tls-cli two '{"n":2}'
expect_line wss "$(p_event tls-cli two '{"n":2}')" 10 "the established wss client stopped receiving" "$from" >/dev/null
client_alive wss || fail "client wss died"
_alive "$PD" || fail "pusherd died"
log "hostile TLS peers closed; the server and the established client are fine"

# ---- SIGHUP: a replaced certificate for new connections; a broken one refused
cp "$D/s2.pem" "$D/server.pem.new" && mv "$D/server.pem.new" "$D/server.pem"
cp "$D/s2.key" "$D/server.key.new" && mv "$D/server.key.new" "$D/server.key"
kill -HUP "$PD"
wait_for_line "$RUN_DIR/pusherd.log" '"TLS certificate reloaded" in line and "serial=1002" in line' 10 >/dev/null ||
  fail "no reload log line after SIGHUP"
got="$(served_cert "$TPORT")"
case "$got" in *serial=1002*CN=pusherd-test-2*) ;; *) fail "after SIGHUP, new connections see '$got'" ;; esac
log "after SIGHUP new connections see: $got"
from="$(line_count "$(out wss)")"
cli_trigger app-id app-key app-secret tls-cli three '{"n":3}'
expect_line wss "$(p_event tls-cli three '{"n":3}')" 10 "the old connection stopped receiving after the reload" "$from" >/dev/null
echo "not a certificate" >"$D/server.pem"
kill -HUP "$PD"
wait_for_line "$RUN_DIR/pusherd.log" '"TLS certificate reload failed; keeping the previous certificate" in line and "serial=1002" in line' 10 >/dev/null ||
  fail "no refusal log line for a broken certificate"
got="$(served_cert "$TPORT")"
case "$got" in *serial=1002*) ;; *) fail "after a broken reload, new connections see '$got'" ;; esac
log "a broken certificate file is refused; still serving: $got"
_alive "$PD" || fail "pusherd died on SIGHUP"
client_stop wss

# ---- --port 0: TLS only
_port_free 7974 || fail "port 7974 is in use"
"$PUSHERD_BIN" --port 0 --tls-port 7974 --tls-cert "$D/s1.pem" --tls-key "$D/s1.key" >"$RUN_DIR/only.stdout" 2>"$RUN_DIR/only.log" &
PD2=$!
_PIDS+=("$PD2")
wait_until 10 "pusherd (TLS only) on :7974" eval '! _port_free 7974' || fail "TLS-only pusherd did not start"
grep -q "wss://127.0.0.1:7974/app/app-key" "$RUN_DIR/only.stdout" || fail "TLS-only pusherd banner: $(cat "$RUN_DIR/only.stdout")"
! grep -q 'msg="pusherd listening" ' "$RUN_DIR/only.log" || fail "a plain listener was opened with --port 0"
[ "$(curl -sS --cacert "$D/ca.pem" "https://localhost:7974/ready")" = '{"ok":true}' ] || fail "TLS-only /ready"
kill -TERM "$PD2"; rc=0; wait "$PD2" || rc=$?
[ "$rc" = 0 ] || fail "TLS-only pusherd exited with status $rc on SIGTERM"

# ---- SIGTERM: clean exit; the wss client gets 4200 over TLS
from="$(line_count "$(out auto)")"
kill -TERM "$PD"; rc=0; wait "$PD" || rc=$?
[ "$rc" = 0 ] || fail "pusherd exited with status $rc on SIGTERM"
expect_line auto 'd and d.get("type")=="error" and d.get("code")==4200' 10 "no 4200 over TLS at shutdown" "$from" >/dev/null
client_stop auto
log "PASS"
