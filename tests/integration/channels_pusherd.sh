#!/usr/bin/env bash
# channels_pusherd: the issue-3 scenarios of channels_soketi.sh (ch_probe +
# the pusher-SDK auth server) against our own pusherd: private, presence
# join/leave, client events, encrypted event from the SDK, sign-in +
# sendToUser, custom authorizer, refused signature, re-authorization after a
# kill -9 and restart of the server.
# Ports: pusherd 7730, auth servers 7740, 7742 (7741 stays closed).
. "$(dirname "$0")/lib.sh"
PORT=7730
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
PROBE="$PUSHER_BUILD_DIR/tests/ch_probe"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PROBE" ] || fail "$PROBE is not built"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$PEERS/clients/node_modules/pusher" ] || fail "pusher SDK not installed: run tests/peers/setup.sh"
SDK="$PUSHER_SOURCE_DIR/tests/integration/channels_sdk.mjs"
AUTHSRV="$PUSHER_SOURCE_DIR/tests/authserver/server.mjs"
export PEERS_CLIENTS="$PEERS/clients"
MASTER="$(python3 -c 'import base64; print(base64.b64encode(bytes(range(32))).decode())')"

cat >"$RUN_DIR/pusherd.json" <<JSON
{"host":"127.0.0.1","port":$PORT,"log_level":"debug",
 "apps":[{"id":"app-id","key":"app-key","secret":"app-secret","enabled":true,
          "client_events":true,"user_authentication":true}]}
JSON

PUSHERD_PID=""
pusherd_start() {
  _port_free "$PORT" || fail "port $PORT is in use"
  "$PUSHERD_BIN" --config "$RUN_DIR/pusherd.json" >>"$RUN_DIR/pusherd.stdout" 2>>"$RUN_DIR/pusherd.log" &
  PUSHERD_PID=$!
  _PIDS+=("$PUSHERD_PID")
  wait_until 10 "pusherd listening on $PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"
  log "pusherd on :$PORT (pid $PUSHERD_PID)"
}
pusherd_kill9() {
  kill -KILL "$PUSHERD_PID" 2>/dev/null || true
  wait "$PUSHERD_PID" 2>/dev/null || true
  wait_until 10 "port $PORT closed" _port_free "$PORT" || fail "port $PORT still open after kill -9"
  log "pusherd killed (SIGKILL)"
}

auth_start() {   # NAME PORT ARGS...
  local name="$1" port="$2"; shift 2
  _port_free "$port" || fail "port $port is in use"
  node "$AUTHSRV" --port "$port" --master-key "$MASTER" "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" &
  _PIDS+=("$!")
  wait_until 15 "auth server $name listening" grep -q '^listening' "$RUN_DIR/$name.out" ||
    fail "auth server $name did not start"
}
probe() {   # NAME ARGS...
  local name="$1"; shift
  log "probe $name: $*"
  timeout "$(scaled 90)" "$PROBE" --ws-port "$PORT" "$@" >"$(out "$name")" 2>&1 ||
    fail "probe $name failed: $(grep -m1 '^FAIL' "$(out "$name")" || tail -n 3 "$(out "$name")")"
}
probe_bg() {
  local name="$1"; shift
  log "probe $name (background): $*"
  timeout "$(scaled 120)" "$PROBE" --ws-port "$PORT" "$@" >"$(out "$name")" 2>&1 &
  PROBE_PID=$!
  _PIDS+=("$PROBE_PID")
  wait_until 30 "$name READY" grep -q '^READY' "$(out "$name")" || fail "probe $name never got READY"
}
probe_wait() {
  local name="$1" rc=0
  wait "$PROBE_PID" || rc=$?
  [ "$rc" = 0 ] && grep -q '^PASS' "$(out "$name")" ||
    fail "probe $name failed (rc $rc): $(grep -m1 '^FAIL' "$(out "$name")" || tail -n 3 "$(out "$name")")"
}

pusherd_start
auth_start ajax 7740 --require-param token=abc --require-header 'X-Token: t1'
AJ=(--auth-base http://127.0.0.1:7740 --param token=abc --header 'X-Token: t1')
probe private "${AJ[@]}" private
probe presence "${AJ[@]}" presence
probe client_events "${AJ[@]}" client_events
probe_bg encrypted "${AJ[@]}" encrypted
node "$SDK" "$PORT" "$MASTER" trigger private-encrypted-room secret '{"msg":"hi"}' >"$RUN_DIR/sdk-enc.log" 2>&1 ||
  fail "SDK encrypted trigger failed: $(cat "$RUN_DIR/sdk-enc.log")"
probe_wait encrypted
probe_bg signin "${AJ[@]}" signin
node "$SDK" "$PORT" "$MASTER" user carol to-user '{"n":7}' >"$RUN_DIR/sdk-user.log" 2>&1 ||
  fail "SDK sendToUser failed: $(cat "$RUN_DIR/sdk-user.log")"
probe_wait signin
probe custom --auth-base http://127.0.0.1:7741 --master "$MASTER" custom
probe noheader --auth-base http://127.0.0.1:7740 --param token=abc autherr 403
auth_start wrongsecret 7742 --secret not-the-secret
# pusherd (like Pusher) refuses with pusher:error (code null) on the channel:
# the engine turns it into subscription_error with status null
probe refused_by_pusherd --auth-base http://127.0.0.1:7742 autherr null

probe_bg reauth "${AJ[@]}" reauth
pusherd_kill9
pusherd_start
probe_wait reauth
log "PASS"
