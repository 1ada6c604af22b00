#!/usr/bin/env bash
# interop_pusherjs: client events between ours and pusher-js —
# the official pusher-js 8.6.0 (Node build, ws transport, ajax channel
# authorization) and a libpusher client (tests/tools/interop_peer.c, public
# API only) on the same private and presence channels, authorized by the
# application auth server tests/authserver/server.mjs (official pusher SDK):
#  - a client event sent by pusher-js (an object and a string) arrives at our
#    client with the exact event name and data, user_id on presence only;
#  - a client event sent by our client arrives at pusher-js with the exact
#    data, metadata.user_id on presence only;
#  - neither side receives its own events (checked behind a causal barrier,
#    not a sleep), each event arrives once;
#  - presence: each side sees the other as a member (pusher-js members;
#    our members API, me and user_info), and our client sees pusher-js leave.
# Scenario in tests/integration/interop/driver.mjs; run once against soketi,
# once against pusherd (default app: app-id/app-key/app-secret, client
# events on).  Ports: soketi 7600, pusherd 7610, auth server 7620.
. "$(dirname "$0")/lib.sh"
require_bins
PEER="$PUSHER_BUILD_DIR/tests/interop_peer"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
DRIVER="$PUSHER_SOURCE_DIR/tests/integration/interop/driver.mjs"
AUTHSRV="$PUSHER_SOURCE_DIR/tests/authserver/server.mjs"
[ -x "$PEER" ] || fail "$PEER is not built"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -f "$PEERS/clients/node_modules/pusher-js/dist/node/pusher.js" ] ||
  fail "pusher-js not installed: run scripts/install-deps.sh (or tests/peers/setup.sh)"
SOKETI_PORT=7600 PUSHERD_PORT=7610 AUTH_PORT=7620

# ---- the application auth server (signs with the official pusher SDK)
_port_free "$AUTH_PORT" || fail "port $AUTH_PORT is in use"
node "$AUTHSRV" --port "$AUTH_PORT" >"$RUN_DIR/authserver.out" 2>"$RUN_DIR/authserver.err" &
AUTH_PID=$!
_PIDS+=("$AUTH_PID")
wait_until 15 "auth server listening" grep -q '^listening' "$RUN_DIR/authserver.out" ||
  fail "the auth server did not start"
log "auth server on :$AUTH_PORT (pid $AUTH_PID)"

# run_driver LABEL WS_PORT: the scenario against the server on WS_PORT.
run_driver() {
  local label="$1" port="$2" rc=0
  log "pusher-js <-> libpusher against $label (:$port)"
  timeout "$(scaled 120)" node "$DRIVER" --label "$label" --ws-port "$port" \
    --auth-port "$AUTH_PORT" --peer "$PEER" --out "$RUN_DIR" \
    >"$RUN_DIR/$label-driver.log" 2>&1 &
  local pid=$!
  _PIDS+=("$pid")
  wait "$pid" || rc=$?
  sed 's/^/    /' "$RUN_DIR/$label-driver.log"
  [ "$rc" = 0 ] && grep -q "^PASS $label\$" "$RUN_DIR/$label-driver.log" ||
    fail "$label: $(grep -m1 '^FAIL' "$RUN_DIR/$label-driver.log" || echo "driver exited with status $rc")"
}

# the auth server saw both clients ask for both channels, each with its user
# (requests after the first FROM ones)
auth_count() { curl -fsS "http://127.0.0.1:$AUTH_PORT/requests" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'; }
check_auth_requests() {   # LABEL FROM
  curl -fsS "http://127.0.0.1:$AUTH_PORT/requests" | python3 -c '
import json, sys
r = [e for e in json.load(sys.stdin)[int(sys.argv[1]):] if e["path"] == "/pusher/auth"]
seen = {(e["params"].get("user_id"), e["params"]["channel_name"].split("-")[0]) for e in r if e["status"] == 200}
want = {(u, k) for u in ("c-user", "js-user") for k in ("private", "presence")}
assert want <= seen, "missing auth requests: %r (seen %r)" % (want - seen, seen)
assert all(e["method"] == "POST" for e in r), r
print("auth requests ok:", len(r))' "$2" || fail "$1: auth requests not as expected"
}

# ---- soketi
soketi_start "$SOKETI_PORT"
from="$(auth_count)"
run_driver soketi "$SOKETI_PORT"
check_auth_requests soketi "$from"

# ---- pusherd (default app, client events on)
_port_free "$PUSHERD_PORT" || fail "port $PUSHERD_PORT is in use"
"$PUSHERD_BIN" --port "$PUSHERD_PORT" >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
PUSHERD_PID=$!
_PIDS+=("$PUSHERD_PID")
wait_until 10 "pusherd listening on $PUSHERD_PORT" eval '! _port_free '"$PUSHERD_PORT" ||
  fail "pusherd did not start"
log "pusherd on :$PUSHERD_PORT (pid $PUSHERD_PID)"
from="$(auth_count)"
run_driver pusherd "$PUSHERD_PORT"
check_auth_requests pusherd "$from"

# pusherd must stop cleanly on SIGTERM (under ASan: no leak, no error)
kill -TERM "$PUSHERD_PID"
prc=0
wait "$PUSHERD_PID" || prc=$?
[ "$prc" = 0 ] || fail "pusherd exited with status $prc on SIGTERM"
log "PASS"
