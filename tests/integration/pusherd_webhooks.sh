#!/usr/bin/env bash
# pusherd_webhooks: webhooks against a receiver that validates every request
# with the official `pusher` SDK (webhook_receiver.mjs), driven by pusher-js
# and the SDK's REST client (pusherd/webhooks.cjs): every event type,
# filters, custom headers, batching, retries after 500s and after a receiver
# restart, a wrong secret refused by the SDK, receivers that hang, reset,
# answer garbage or 500 or are down not disturbing WebSocket delivery, and
# the SIGTERM grace; then, with webhook_retry_seconds 2, a batch answered
# 500 is retried with back-off and dropped (logged) at the end of the window.
# Ports: pusherd 7610 and 7615, receiver 7612, restarted receiver 7613,
# nothing on 7614.
. "$(dirname "$0")/lib.sh"
PORT=7610
RPORT=7612
RSPORT=7613
DOWN=7614
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$PEERS/clients/node_modules/pusher" ] || fail "the pusher SDK is not installed: run tests/peers/setup.sh"
for p in $PORT $RPORT $RSPORT $DOWN; do _port_free "$p" || fail "port $p is in use"; done

ALL='["channel_occupied","channel_vacated","member_added","member_removed","client_event","cache_miss","subscription_count"]'
R="http://127.0.0.1:$RPORT"
cat >"$RUN_DIR/config.json" <<JSON
{"port": $PORT, "webhook_batch_ms": 200, "shutdown_grace_ms": 3000,
 "apps": [
  {"id": "app-id", "key": "app-key", "secret": "app-secret", "client_events": true,
   "webhooks": [
    {"url": "$R/ok/all", "event_types": $ALL, "headers": {"X-Custom": "hello", "Authorization": "Bearer t0ken"}},
    {"url": "$R/ok/filtered", "event_types": ["channel_occupied"],
     "filter": {"channel_name_starts_with": "private-f", "channel_name_ends_with": "-x"}},
    {"url": "$R/fail2/retry", "event_types": ["channel_occupied"], "filter": {"channel_name_starts_with": "retry-"}},
    {"url": "http://127.0.0.1:$RSPORT/ok/restart", "event_types": ["channel_occupied"],
     "filter": {"channel_name_starts_with": "restart-"}},
    {"url": "http://127.0.0.1:$DOWN/down", "event_types": $ALL},
    {"url": "$R/hang/x", "event_types": $ALL},
    {"url": "$R/reset/x", "event_types": $ALL},
    {"url": "$R/garbage/x", "event_types": $ALL},
    {"url": "$R/500/x", "event_types": $ALL}]},
  {"id": "bad-id", "key": "bad-key", "secret": "bad-secret",
   "webhooks": [{"url": "$R/ok/bad", "event_types": ["channel_occupied"]}]}]}
JSON

node "$(dirname "$0")/webhook_receiver.mjs" --port "$RPORT" --app app-key:app-secret --app bad-key:not-the-secret \
  >"$RUN_DIR/receiver.out" 2>"$RUN_DIR/receiver.log" &
_PIDS+=("$!")
wait_until 10 "receiver on :$RPORT" grep -q listening "$RUN_DIR/receiver.out" || fail "the receiver did not start"

"$PUSHERD_BIN" --config "$RUN_DIR/config.json" --log-level debug >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
PD=$!
_PIDS+=("$PD")
wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"

rc=0
PEERS_CLIENTS="$PEERS/clients" node "$(dirname "$0")/pusherd/webhooks.cjs" "$PORT" "$RPORT" "$RSPORT" "$PD" \
  "$RUN_DIR/pusherd.log" >"$RUN_DIR/webhooks.out" 2>&1 || rc=$?
cat "$RUN_DIR/webhooks.out"
[ "$rc" -eq 0 ] || fail "webhooks.cjs checks failed"
wait_until 15 "pusherd to exit after SIGTERM" eval '! _alive '"$PD" || fail "pusherd did not exit after SIGTERM"
prc=0; wait "$PD" || prc=$?
[ "$prc" -eq 0 ] || fail "pusherd exited with status $prc"
grep -q 'webhook batch dropped' "$RUN_DIR/pusherd.log" || fail "no log line for the batches dropped at shutdown"

# The retry window: attempts at 0, 1 and 2 s (the last at the window's end), then dropped.
P2=7615
_port_free "$P2" || fail "port $P2 is in use"
cat >"$RUN_DIR/config2.json" <<JSON
{"port": $P2, "webhook_batch_ms": 0, "webhook_retry_seconds": 2,
 "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret",
   "webhooks": [{"url": "$R/500/short", "event_types": ["channel_occupied"]}]}]}
JSON
"$PUSHERD_BIN" --config "$RUN_DIR/config2.json" --log-level debug >"$RUN_DIR/pusherd2.stdout" 2>"$RUN_DIR/pusherd2.log" &
PD2=$!
_PIDS+=("$PD2")
wait_until 10 "pusherd on :$P2" eval '! _port_free '"$P2" || fail "pusherd (retry window) did not start"
listen_start short --no-tls --host 127.0.0.1 --port "$P2" --key app-key short-1
wait_until 30 "the batch dropped after the retry window" \
  grep -q 'webhook batch dropped" reason="HTTP status 500" app=app-id url=http://127.0.0.1:7612/500/short events=1 attempts=3' \
  "$RUN_DIR/pusherd2.log" || fail "no drop after the retry window"
n="$(curl -s "http://127.0.0.1:$RPORT/requests" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["path"] == "/500/short"))')"
[ "$n" -eq 3 ] || fail "the receiver saw $n attempts on /500/short (want 3)"
grep -c 'webhook attempt failed; will retry.*500/short' "$RUN_DIR/pusherd2.log" | grep -qx 2 || fail "want two 'will retry' lines"
log "retry window: 3 attempts, then dropped and logged"
client_stop short
kill -TERM "$PD2"
wait_until 15 "pusherd (retry window) to exit" eval '! _alive '"$PD2" || fail "pusherd did not exit"
prc=0; wait "$PD2" || prc=$?
[ "$prc" -eq 0 ] || fail "pusherd (retry window) exited with status $prc"
log "pass"
