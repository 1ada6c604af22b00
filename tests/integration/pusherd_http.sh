#!/usr/bin/env bash
# pusherd_http: hostile HTTP peers on the API port.
#   - a request whose Content-Length is over the 1 MiB body cap gets exactly
#     one 413 and the connection is closed;
#   - a connection that never finishes its request headers gets 408 and is
#     closed at the header deadline ("header_timeout_ms", 1 s here), both
#     when it sends nothing and when it sends half a request;
#   - a keep-alive connection idle between requests is not answered 408;
#   - a WebSocket client sending a 1 MiB message gets close 1009 (not a
#     reset), five times out of five;
#   - the server keeps serving others meanwhile.
# Port: pusherd 7430.
. "$(dirname "$0")/lib.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found"
PORT=7430
cat >"$RUN_DIR/apps.json" <<'JSON'
{"header_timeout_ms": 1000, "log_level": "info",
 "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret"}]}
JSON
_port_free "$PORT" || fail "port $PORT is in use"
"$PUSHERD_BIN" --port "$PORT" --config "$RUN_DIR/apps.json" >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
_PIDS+=("$!")
wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"
PEERS_CLIENTS="$PEERS/clients" node "$(dirname "$0")/pusherd/http.cjs" "$PORT" "${PUSHER_TEST_TIMEOUT_MULTIPLIER:-1}" >"$RUN_DIR/http.out" 2>&1 ||
  { cat "$RUN_DIR/http.out"; fail "http.cjs checks failed"; }
cat "$RUN_DIR/http.out"
grep -q 'request headers not complete in time' "$RUN_DIR/pusherd.log" || fail "no log line for the header deadline"
log "PASS"
