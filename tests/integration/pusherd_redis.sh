#!/usr/bin/env bash
# pusherd_redis: two pusherd nodes on one Redis act as one app
# (src/server/cluster.c; checks in tests/integration/pusherd/redis.cjs):
#  - REST event (SDK) on node A reaches pusher-js on node B; batch B -> A
#  - socket_id exclusion across nodes; socket ids carry the node number
#  - client events both ways, no echo to the sender
#  - presence: members across nodes in subscription_succeeded, member_added /
#    member_removed only on a user's first join / last leave across nodes,
#    REST users / user_count / subscription_count on either node
#  - GET /channels on A lists a channel occupied only on B; occupancy goes
#  - sendToUser and terminate_connections from A reach a socket on B;
#    watchlist online/offline on A for a user signed in on B
#  - Redis restart: both nodes reconnect + resubscribe; fan-out, occupancy
#    and a presence member held across the restart are seen again
#  - node B killed -9: node A drops B's members/channels (heartbeat timeout)
#  - node C joins through the config file's "redis_url": our C client
#    (pusher listen --json) on node B gets an event triggered via REST on C;
#    C lists a presence member held on B
#  - a Redis with requirepass: redis://:PASSWORD@ subscribes; a wrong
#    password is logged (AUTH failed) and retried with back-off
#  - pusherd --help documents --redis; a bad URL is a usage error (2)
# Ports: redis-server 7800, pusherd A 7801, B 7802, C 7803;
#        redis-server with a password 7804, pusherd 7805 / 7806.
. "$(dirname "$0")/lib.sh"
RPORT=7800
PA=7801
PB=7802
PC=7803
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
JS="$(dirname "$0")/pusherd/redis.cjs"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v redis-server >/dev/null || fail "redis-server not found (apt-get install redis-server)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$PEERS/clients/node_modules/pusher-js" ] || fail "pusher-js not installed: run tests/peers/setup.sh"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
export PEERS_CLIENTS="$PEERS/clients"

"$PUSHERD_BIN" --help | grep -q -- "--redis URL" || fail "--help does not document --redis"
"$PUSHERD_BIN" --help | grep -q "pusherd:<app_id>" || fail "--help does not describe the Redis channel"
rc=0; "$PUSHERD_BIN" --port "$PA" --redis "http://x" >/dev/null 2>"$RUN_DIR/badurl.err" || rc=$?
[ "$rc" -eq 2 ] || fail "a non-redis:// URL gave status $rc (want 2)"

redis_start() {
  _port_free "$RPORT" || fail "port $RPORT is in use"
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >>"$RUN_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  _PIDS+=("$REDIS_PID")
  wait_until 10 "redis-server on :$RPORT" eval '! _port_free '"$RPORT" || fail "redis-server did not start"
  log "redis-server on :$RPORT (pid $REDIS_PID)"
}
redis_stop() {
  kill -TERM "$REDIS_PID"
  wait_until 10 "redis-server to exit" eval '! _alive '"$REDIS_PID" || fail "redis-server did not exit"
  wait "$REDIS_PID" 2>/dev/null || true
  log "redis-server stopped"
}
pusherd_start() {   # NAME PORT ARGS...
  local name="$1" port="$2"; shift 2
  _port_free "$port" || fail "port $port is in use"
  "$PUSHERD_BIN" --port "$port" --log-level debug "$@" >"$RUN_DIR/$name.stdout" 2>"$RUN_DIR/$name.log" &
  local pid=$!
  _PIDS+=("$pid")
  eval "PID_$name=$pid"
  wait_until 10 "pusherd $name on :$port" eval '! _port_free '"$port" || fail "pusherd $name did not start"
  log "pusherd $name on :$port (pid $pid) $*"
}
subscribed_count() { grep -c 'msg="redis subscribed"' "$RUN_DIR/$1.log" || true; }
run_js() {   # MODE [PORT_A]: REST side on PORT_A (default node A), clients on node B
  local pa="${2:-$PA}"
  node "$JS" "$pa" "$PB" "$1" >"$RUN_DIR/js-$1-$pa.out" 2>&1 || { cat "$RUN_DIR/js-$1-$pa.out"; fail "redis.cjs $1 failed"; }
  cat "$RUN_DIR/js-$1-$pa.out"
}

redis_start
# node A through the flag, node B through the environment
pusherd_start a "$PA" --redis "redis://127.0.0.1:$RPORT/0"
PUSHERD_REDIS_URL="redis://127.0.0.1:$RPORT" pusherd_start b "$PB"
wait_until 10 "both nodes subscribed" eval '[ "$(subscribed_count a)" -ge 1 ] && [ "$(subscribed_count b)" -ge 1 ]' ||
  fail "nodes did not subscribe"
grep -q 'msg="cluster node joined"' "$RUN_DIR/a.log" || wait_until 5 "A sees B" grep -q 'cluster node joined' "$RUN_DIR/a.log" ||
  fail "node A never heard of node B"

run_js all

# A presence member on B held across a Redis restart.
node "$JS" "$PA" "$PB" hold >"$RUN_DIR/js-hold.out" 2>&1 &
HOLD_PID=$!
_PIDS+=("$HOLD_PID")
wait_until 10 "holder subscribed" grep -q READY "$RUN_DIR/js-hold.out" || fail "holder did not subscribe"
run_js held

# Node C: the Redis URL from its config file.
cat >"$RUN_DIR/c.json" <<JSON
{"redis_url":"redis://127.0.0.1:$RPORT","apps":[{"id":"app-id","key":"app-key","secret":"app-secret","client_events":true}]}
JSON
pusherd_start c "$PC" --config "$RUN_DIR/c.json"
wait_until 10 "node C subscribed" eval '[ "$(subscribed_count c)" -ge 1 ]' || fail "node C did not subscribe"
run_js held "$PC"
listen_start cli --key "$APP_KEY" --host 127.0.0.1 --port "$PB" --no-tls cli-news
expect_line cli "$(p_subscribed cli-news)" 20 "pusher listen on node B did not subscribe" >/dev/null
trigger "$PC" cli-news from-c '{"via":"C"}'
expect_line cli "$(p_event cli-news from-c '{"via":"C"}')" 20 "pusher listen on node B missed the event triggered on node C" >/dev/null
log "pusher listen on node B got the event triggered via REST on node C"
client_stop cli

redis_stop
wait_until 10 "both nodes notice" eval 'grep -q "redis connection lost" "$RUN_DIR/a.log" && grep -q "redis connection lost" "$RUN_DIR/b.log"' ||
  fail "the nodes did not log the lost Redis connection"
sleep 1
redis_start
wait_until 20 "both nodes resubscribed" eval '[ "$(subscribed_count a)" -ge 2 ] && [ "$(subscribed_count b)" -ge 2 ]' ||
  fail "nodes did not resubscribe after the Redis restart"
run_js fanout
run_js held

# Node B dies without a goodbye: node A expires it.
kill -KILL "$PID_b"
wait "$PID_b" 2>/dev/null || true
run_js expired
grep -q 'cluster node expired' "$RUN_DIR/a.log" || fail "node A did not log the expiry of node B"

_alive "$PID_a" || fail "pusherd A exited during the checks"
kill -TERM "$PID_a"
wait_until 15 "pusherd A to exit after SIGTERM" eval '! _alive '"$PID_a" || fail "pusherd A did not exit after SIGTERM"
rc=0; wait "$PID_a" || rc=$?
[ "$rc" -eq 0 ] || fail "pusherd A exited with status $rc after SIGTERM (want 0)"
# Redis with a password.
redis-server --port 7804 --bind 127.0.0.1 --save '' --appendonly no --requirepass 's3cret' >>"$RUN_DIR/redis-pw.log" 2>&1 &
RPW_PID=$!
_PIDS+=("$RPW_PID")
wait_until 10 "redis-server on :7804" eval '! _port_free 7804' || fail "redis-server with a password did not start"
pusherd_start pw 7805 --redis "redis://:s3cret@127.0.0.1:7804/1"
pusherd_start badpw 7806 --redis "redis://:wrong@127.0.0.1:7804"
wait_until 10 "node with the password subscribed" eval '[ "$(subscribed_count pw)" -ge 1 ]' || fail "AUTH with the right password did not subscribe"
wait_until 10 "wrong password logged" grep -q 'redis AUTH/SELECT failed' "$RUN_DIR/badpw.log" || fail "a wrong Redis password was not logged"
[ "$(subscribed_count badpw)" -eq 0 ] || fail "subscribed with a wrong password?"
log "PASS"
