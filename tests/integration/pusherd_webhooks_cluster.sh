#!/usr/bin/env bash
# pusherd_webhooks_cluster: two pusherd nodes on one real redis-server send
# channel_occupied/channel_vacated and member_added/member_removed exactly
# once per cluster-wide transition (docs/webhooks.md), checked by the
# SDK-validating receiver (webhook_receiver.mjs; driver
# pusherd/webhooks_cluster.cjs):
#  - 120 rounds of simultaneous joins and leaves of sockets on both nodes
#    (the same user on both nodes, or two users): every transition arrives
#    once, strictly alternating
#  - node B killed -9 while it alone holds a channel and a member: node A
#    reaps B's counts and sends channel_vacated / member_removed once
# Ports: redis-server 7620, pusherd A 7621, B 7622, receiver 7623.
. "$(dirname "$0")/lib.sh"
RP=7620
PA=7621
PB=7622
WP=7623
ROUNDS=${ROUNDS:-120}
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
JS="$(dirname "$0")/pusherd/webhooks_cluster.cjs"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v redis-server >/dev/null || fail "redis-server not found (apt-get install redis-server)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$PEERS/clients/node_modules/pusher" ] || fail "the pusher SDK is not installed: run tests/peers/setup.sh"
export PEERS_CLIENTS="$PEERS/clients"
for p in $RP $PA $PB $WP; do _port_free "$p" || fail "port $p is in use"; done

redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$RUN_DIR/redis.log" 2>&1 &
_PIDS+=("$!")
wait_until 10 "redis-server on :$RP" eval '! _port_free '"$RP" || fail "redis-server did not start"

node "$(dirname "$0")/webhook_receiver.mjs" --port "$WP" >"$RUN_DIR/receiver.out" 2>"$RUN_DIR/receiver.log" &
_PIDS+=("$!")
wait_until 10 "receiver on :$WP" grep -q listening "$RUN_DIR/receiver.out" || fail "the receiver did not start"

cat >"$RUN_DIR/config.json" <<JSON
{"webhook_batch_ms": 20, "redis_url": "redis://127.0.0.1:$RP",
 "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret",
   "webhooks": [{"url": "http://127.0.0.1:$WP/ok/cluster",
     "event_types": ["channel_occupied", "channel_vacated", "member_added", "member_removed"]}]}]}
JSON
start_node() {   # NAME PORT
  "$PUSHERD_BIN" --config "$RUN_DIR/config.json" --port "$2" --log-level debug >"$RUN_DIR/$1.stdout" 2>"$RUN_DIR/$1.log" &
  local pid=$!
  _PIDS+=("$pid")
  eval "PID_$1=$pid"
  wait_until 10 "pusherd $1 on :$2" eval '! _port_free '"$2" || fail "pusherd $1 did not start"
  wait_until 10 "pusherd $1 subscribed to redis" grep -q "redis subscribed" "$RUN_DIR/$1.log" || fail "pusherd $1 did not reach redis"
}
start_node A "$PA"
start_node B "$PB"

node "$JS" "$PA" "$PB" "$WP" "$ROUNDS" rounds >"$RUN_DIR/rounds.out" 2>&1 || { cat "$RUN_DIR/rounds.out"; fail "rounds failed"; }
cat "$RUN_DIR/rounds.out"

node "$JS" "$PA" "$PB" "$WP" "$ROUNDS" left >"$RUN_DIR/left.out" 2>&1 &
LEFT=$!
_PIDS+=("$LEFT")
wait_until 15 "left-behind client subscribed on B" grep -q READY "$RUN_DIR/left.out" || { cat "$RUN_DIR/left.out"; fail "left-behind setup failed"; }
kill -KILL "$PID_B"
wait "$PID_B" 2>/dev/null || true
log "node B killed"
node "$JS" "$PA" "$PB" "$WP" "$ROUNDS" final >"$RUN_DIR/final.out" 2>&1 || { cat "$RUN_DIR/final.out"; fail "final checks failed"; }
cat "$RUN_DIR/final.out"
# A graceful stop of the survivor (its "leave" call) exits 0.
kill -TERM "$PID_A"
wait_until 15 "node A to exit after SIGTERM" eval '! _alive '"$PID_A" || fail "node A did not exit after SIGTERM"
arc=0; wait "$PID_A" || arc=$?
[ "$arc" -eq 0 ] || fail "node A exited with status $arc"
log "pass"
