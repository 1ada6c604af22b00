#!/usr/bin/env bash
# pusherd_webhooks: webhooks against a receiver that validates every request
# with the official `pusher` SDK (webhook_receiver.mjs), driven by pusher-js
# and the SDK's REST client (pusherd/webhooks.cjs): every event type,
# filters, custom headers, batching, retries after 500s and after a receiver
# restart, a wrong secret refused by the SDK, receivers that hang, reset,
# answer garbage or 500 or are down not disturbing WebSocket delivery, and
# the SIGTERM grace; then, with webhook_retry_seconds 2, a batch answered
# 500 is retried with back-off and dropped (logged) at the end of the window;
# then a SIGHUP reload that rotates the app's key and secret, changes one
# webhook's event types and adds another (the sender follows: the kept
# webhook signs with the new secret, the new one starts), with the webhook
# counters on /metrics checked by promtool and by value.
# Ports: pusherd 7610, 7615 and 7616 (metrics 7617), receiver 7612,
# restarted receiver 7613, nothing on 7614.
. "$(dirname "$0")/lib.sh"
PORT=7610
RPORT=7612
RSPORT=7613
DOWN=7614
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
command -v promtool >/dev/null || fail "promtool not found (apt-get install prometheus; scripts/install-deps.sh)"
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
  --app app-key2:new-secret \
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

# Reload: the sender follows the new settings; its counters on /metrics.
P3=7616 M3=7617
for p in $P3 $M3; do _port_free "$p" || fail "port $p is in use"; done
cat >"$RUN_DIR/config3.json" <<JSON
{"port": $P3, "metrics_port": $M3, "webhook_batch_ms": 0,
 "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret",
   "webhooks": [{"url": "$R/ok/r1", "event_types": ["channel_occupied"]}]}]}
JSON
"$PUSHERD_BIN" --config "$RUN_DIR/config3.json" --log-level debug >"$RUN_DIR/pusherd3.stdout" 2>"$RUN_DIR/pusherd3.log" &
PD3=$!
_PIDS+=("$PD3")
wait_until 10 "pusherd on :$P3" eval '! _port_free '"$P3" || fail "pusherd (reload) did not start"
seen() {   # PATH EVENT CHANNEL: valid requests to PATH carrying that event
  curl -s "http://127.0.0.1:$RPORT/requests" | python3 -c '
import json, sys
path, name, ch = sys.argv[1:4]
n = 0
for r in json.load(sys.stdin):
    if r["path"] == path and r["valid"]:
        n += sum(1 for e in json.loads(r["raw"])["events"] if e["name"] == name and e["channel"] == ch)
print(n)' "$1" "$2" "$3"
}
metric() {   # NAME: its value on /metrics
  curl -s "http://127.0.0.1:$M3/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
listen_start r1 --no-tls --host 127.0.0.1 --port "$P3" --key app-key reload-1
wait_until 10 "channel_occupied of reload-1 at /ok/r1" eval '[ "$(seen /ok/r1 channel_occupied reload-1)" = 1 ]' \
  || fail "no occupied webhook before the reload"
wait_until 10 "events_sent 1 on /metrics" eval '[ "$(metric pusherd_webhook_events_sent_total)" = 1 ]' \
  || fail "pusherd_webhook_events_sent_total is $(metric pusherd_webhook_events_sent_total), want 1"
curl -s "http://127.0.0.1:$M3/metrics" >"$RUN_DIR/metrics3.txt"
promtool check metrics <"$RUN_DIR/metrics3.txt" >"$RUN_DIR/promtool3.out" 2>&1 \
  || { cat "$RUN_DIR/promtool3.out"; fail "promtool refused /metrics with webhook counters"; }
cat >"$RUN_DIR/config3.json" <<JSON
{"port": $P3, "metrics_port": $M3, "webhook_batch_ms": 0,
 "apps": [{"id": "app-id", "key": "app-key2", "secret": "new-secret",
   "webhooks": [{"url": "$R/ok/r1", "event_types": ["channel_vacated"]},
                {"url": "$R/ok/r2", "event_types": ["channel_occupied"]}]}]}
JSON
kill -HUP "$PD3"
wait_until 10 "the reload" grep -q 'configuration reloaded' "$RUN_DIR/pusherd3.log" || fail "no reload"
client_stop r1
wait_until 10 "channel_vacated of reload-1 at /ok/r1, signed with the new secret" \
  eval '[ "$(seen /ok/r1 channel_vacated reload-1)" = 1 ]' || fail "no valid vacated webhook after the reload"
listen_start r2 --no-tls --host 127.0.0.1 --port "$P3" --key app-key2 reload-2
wait_until 10 "channel_occupied of reload-2 at the new /ok/r2" eval '[ "$(seen /ok/r2 channel_occupied reload-2)" = 1 ]' \
  || fail "the webhook added by the reload sent nothing"
[ "$(seen /ok/r1 channel_occupied reload-2)" = 0 ] || fail "/ok/r1 still got occupied after its event types changed"
wait_until 10 "events_sent 3 on /metrics" eval '[ "$(metric pusherd_webhook_events_sent_total)" = 3 ]' \
  || fail "pusherd_webhook_events_sent_total is $(metric pusherd_webhook_events_sent_total), want 3"
[ "$(metric pusherd_webhook_events_dropped_total)" = 0 ] || fail "events dropped across the reload"
log "reload: new secret used by the kept webhook, added webhook sends, counters on /metrics"
client_stop r2
kill -TERM "$PD3"
wait_until 15 "pusherd (reload) to exit" eval '! _alive '"$PD3" || fail "pusherd did not exit"
prc=0; wait "$PD3" || prc=$?
[ "$prc" -eq 0 ] || fail "pusherd (reload) exited with status $prc"
log "pass"
