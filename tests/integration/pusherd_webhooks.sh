#!/usr/bin/env bash
# pusherd_webhooks: webhooks against a receiver that validates every request
# with the official `pusher` SDK (webhook_receiver.mjs), driven by pusher-js
# and the SDK's REST client (pusherd/webhooks.cjs): every event type,
# filters, custom headers, batching, retries after 500s and after a receiver
# restart, a wrong secret refused by the SDK, receivers that hang, reset,
# answer garbage or 500 or are down not disturbing WebSocket delivery, and
# the SIGTERM grace.
# Ports: pusherd 7610, receiver 7612, restarted receiver 7613, nothing on 7614.
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
log "pass"
