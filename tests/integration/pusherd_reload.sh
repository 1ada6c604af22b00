#!/usr/bin/env bash
# pusherd_reload: SIGHUP re-reads --config (docs/operations.md, "Reload"),
# checked in tests/integration/pusherd/reload.cjs with pusher-js, raw
# WebSocket clients and the official `pusher` SDK:
#  - a removed app's and a disabled app's open connections are closed with
#    4003; new connections get 4001 (removed) and 4003 (disabled); the HTTP
#    API answers 404 and 403
#  - a rotated secret: new signatures (channel auth, REST) accepted, old
#    ones refused; a lowered limit applies at once; an added app is served
#  - the unchanged app's pusher-js connection stays the same socket and
#    receives the next event
#  - a broken file and a duplicated app id are refused with an error line
#    and the running configuration is kept
#  - our C client (`pusher listen`) on the unchanged app is not disconnected
# Ports: pusherd 7960, metrics 7961.
. "$(dirname "$0")/lib.sh"
PORT=7960
MPORT=7961
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$PEERS/clients/node_modules/pusher-js" ] || fail "pusher-js not installed: run tests/peers/setup.sh"
export PEERS_CLIENTS="$PEERS/clients"
"$PUSHERD_BIN" --help >"$RUN_DIR/help.txt" || fail "pusherd --help failed"
grep -q "^SIGHUP: re-read --config" "$RUN_DIR/help.txt" || fail "--help does not document SIGHUP"

CFG="$RUN_DIR/pusherd.json"
app() { printf '{"id":"%s","key":"%s-key","secret":"%s","client_events":true}' "$1" "$1" "$2"; }
echo "{\"host\":\"127.0.0.1\",\"port\":$PORT,\"metrics_port\":$MPORT,\"apps\":[$(app keep keep-secret),$(app gone gone-secret),$(app off off-secret),$(app rot old-secret)]}" >"$CFG"
_port_free "$PORT" && _port_free "$MPORT" || fail "port $PORT or $MPORT is in use"
"$PUSHERD_BIN" --config "$CFG" --log-level debug >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
PD_PID=$!
_PIDS+=("$PD_PID")
wait_until 10 "pusherd on :$PORT and :$MPORT" eval '! _port_free '"$PORT"' && ! _port_free '"$MPORT" ||
  fail "pusherd did not start"
log "pusherd on :$PORT (pid $PD_PID)"

listen_start c --key keep-key --host 127.0.0.1 --port "$PORT" --no-tls news
expect_line c "$(p_subscribed news)" 20 "pusher listen never subscribed" >/dev/null

node "$(dirname "$0")/pusherd/reload.cjs" "$PORT" "$MPORT" "$PD_PID" "$CFG" >"$RUN_DIR/reload-js.out" 2>&1 ||
  { cat "$RUN_DIR/reload-js.out"; fail "reload.cjs failed"; }
cat "$RUN_DIR/reload-js.out"

expect_line c "$(p_event news item '"after"')" 10 "pusher listen did not get the event sent after the reload" >/dev/null
n="$(count_lines "$(out c)" "$P_CONNECTED")"
[ "$n" -eq 1 ] || fail "pusher listen on the unchanged app reconnected ($n connected lines)"
log "pusher listen on the unchanged app: one connection throughout, got the event sent after the reloads"
grep -q 'msg="reload refused; the running configuration is kept".*error="bad config: ' "$RUN_DIR/pusherd.log" ||
  fail "no clear log line for the refused file"
grep 'msg="reload refused' "$RUN_DIR/pusherd.log" | sed 's/^/  /'
grep -q 'msg="configuration reloaded".*added=1 removed=1 disabled=1' "$RUN_DIR/pusherd.log" || fail "no reload summary line"
client_stop c
kill -TERM "$PD_PID"
wait_until 20 "pusherd to exit" eval '! _alive '"$PD_PID" || fail "pusherd did not exit"
rc=0; wait "$PD_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "pusherd exited with $rc (want 0)"
log "PASS"
