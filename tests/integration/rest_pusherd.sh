#!/usr/bin/env bash
# rest_pusherd: the public REST API (include/pusher/rest.h) and the CLI's
# errors against pusherd.
#  - tests/tools/rest_check drives pusher_rest_* (trigger to one and two
#    channels, socket_id exclusion, batch, GET channels and channel info, an
#    encrypted channel, a wrong secret => PUSHER_ERR_HTTP 401 with the body,
#    TLS to the plain port => PUSHER_ERR_TLS saying the server does not
#    speak TLS); a `pusher listen` subscriber receives exactly the events
#    it should (ev3, which excludes its socket_id, never arrives), and a
#    `pusher listen` with the master key's auth server decrypts the sealed one
#  - pusher trigger: a reserved event name (pusher:, pusher_internal:) is a
#    usage error (2); forgetting --no-tls says to use it (1)
#  - pusher listen: a private channel without --auth-origin is a usage error
#    naming --auth-origin; TLS against the plain port says to use --no-tls
# Ports: pusherd 7900, auth server 7901.
. "$(dirname "$0")/lib.sh"
PORT=7900
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
CHECK_BIN="$PUSHER_BUILD_DIR/tests/rest_check"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$CHECK_BIN" ] || fail "$CHECK_BIN is not built"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
MASTER="$(head -c 32 /dev/urandom | base64)"

_port_free "$PORT" || fail "port $PORT is in use"
"$PUSHERD_BIN" --port "$PORT" >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
PD_PID=$!
_PIDS+=("$PD_PID")
wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"
node "$PUSHER_SOURCE_DIR/tests/authserver/server.mjs" --port 7901 --master-key "$MASTER" \
  >"$RUN_DIR/auth.out" 2>"$RUN_DIR/auth.err" &
_PIDS+=("$!")
wait_until 15 "auth server" grep -q '^listening' "$RUN_DIR/auth.out" || fail "auth server did not start"

listen_start c --key "$APP_KEY" --host 127.0.0.1 --port "$PORT" --no-tls \
  --auth-endpoint http://127.0.0.1:7901/pusher/auth rest-a rest-b private-encrypted-rest
expect_line c "$P_CONNECTED" 20 "never connected" >/dev/null
for ch in rest-a rest-b private-encrypted-rest; do
  expect_line c "$(p_subscribed "$ch")" 20 "not subscribed to $ch" >/dev/null
done
SID="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d.get("type")=="state" and d.get("current")=="connected": print(d["socket_id"]); break' "$(out c)")"
log "listener socket_id $SID"

"$CHECK_BIN" "$PORT" "$SID" "$MASTER" >"$RUN_DIR/rest_check.out" 2>&1 ||
  fail "rest_check failed: $(cat "$RUN_DIR/rest_check.out")"
cat "$RUN_DIR/rest_check.out"

expect_line c "$(p_event rest-a ev1 '{"n":1}')" 10 "ev1 on rest-a" >/dev/null
expect_line c 'd and d.get("channel")=="rest-a" and d.get("event")=="ev2" and d.get("data")=="plain text"' 10 "ev2 on rest-a" >/dev/null
expect_line c 'd and d.get("channel")=="rest-b" and d.get("event")=="ev2"' 10 "ev2 on rest-b" >/dev/null
expect_line c "$(p_event rest-a b1 '"x"')" 10 "b1 on rest-a" >/dev/null
expect_line c "$(p_event rest-b b2 '[1,2]')" 10 "b2 on rest-b" >/dev/null
expect_line c "$(p_event private-encrypted-rest sealed '{"secret":true}')" 10 "the sealed event, decrypted" >/dev/null
expect_line c "$(p_event rest-a ev4 '{"last":true}')" 10 "ev4 on rest-a" >/dev/null
# pusher trigger on an encrypted channel: with the master key it is sealed
# and the listener decrypts it; without, the error names the option.
T=(--host 127.0.0.1 --port "$PORT" --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET")
"$PUSHER_BIN" trigger --no-tls "${T[@]}" --encryption-master-key "$MASTER" private-encrypted-rest \
  cli-sealed '{"c":1}' >/dev/null 2>"$RUN_DIR/err" || fail "trigger with the master key: $(cat "$RUN_DIR/err")"
expect_line c "$(p_event private-encrypted-rest cli-sealed '{"c":1}')" 10 "the CLI's sealed event, decrypted" >/dev/null
rc=0; "$PUSHER_BIN" trigger --no-tls "${T[@]}" private-encrypted-rest x '{}' >/dev/null 2>"$RUN_DIR/err" || rc=$?
[ "$rc" = 1 ] && grep -q -- "--encryption-master-key" "$RUN_DIR/err" ||
  fail "trigger on an encrypted channel without the key: exit $rc, $(cat "$RUN_DIR/err")"
[ "$(count_lines "$(out c)" 'd and d.get("event")=="ev3"')" = 0 ] || fail "ev3 reached the excluded socket"
[ "$(count_lines "$(out c)" 'd and d.get("event")=="never"')" = 0 ] || fail "an event with a wrong signature arrived"
client_stop c

# ---- the CLI's errors say what to do
for name in pusher:foo pusher_internal:member_added; do
  rc=0; "$PUSHER_BIN" trigger --no-tls "${T[@]}" rest-a "$name" '{}' >/dev/null 2>"$RUN_DIR/err" || rc=$?
  [ "$rc" = 2 ] && grep -q "reserved by Pusher" "$RUN_DIR/err" ||
    fail "trigger $name: exit $rc, $(cat "$RUN_DIR/err") (want 2, reserved)"
done
printf '{"channel":"rest-a","name":"pusher:x","data":"1"}\n' >"$RUN_DIR/batch.jsonl"
rc=0; "$PUSHER_BIN" trigger --no-tls "${T[@]}" --batch <"$RUN_DIR/batch.jsonl" >/dev/null 2>"$RUN_DIR/err" || rc=$?
[ "$rc" = 1 ] && grep -q "line 1: .*reserved by Pusher" "$RUN_DIR/err" ||
  fail "trigger --batch with a reserved name: exit $rc, $(cat "$RUN_DIR/err")"
rc=0; "$PUSHER_BIN" trigger "${T[@]}" rest-a tls '{}' >/dev/null 2>"$RUN_DIR/err" || rc=$?
[ "$rc" = 1 ] && grep -q "does not speak TLS on this port: use --no-tls" "$RUN_DIR/err" ||
  fail "trigger with TLS to a plain port: exit $rc, $(cat "$RUN_DIR/err")"
log "trigger over TLS to a plain port: $(cat "$RUN_DIR/err")"
listen_start tls --key "$APP_KEY" --host 127.0.0.1 --port "$PORT" rest-a
expect_line tls 'd and d.get("type")=="error" and d.get("error")=="PUSHER_ERR_TLS" and "does not speak TLS on this port: use --no-tls / encrypted = 0" in d.get("message","")' 20 \
  "listen over TLS to a plain port did not say to use --no-tls" >/dev/null
client_stop tls
rc=0; "$PUSHER_BIN" listen --key "$APP_KEY" --no-tls private-x >/dev/null 2>"$RUN_DIR/err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--auth-origin" "$RUN_DIR/err" && ! grep -q "auth_origin" "$RUN_DIR/err" ||
  fail "listen private-x without an auth origin: exit $rc, $(cat "$RUN_DIR/err")"
log "PASS"
