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
#  - in a cluster (two pusherd on a real redis-server), an app added by a
#    reload on both nodes is replicated: `pusher listen` on node 1 gets an
#    event published through node 2's HTTP API
# Ports: pusherd 7960, metrics 7961; redis-server 7962, pusherd 7963, 7964.
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

# Cluster: an app added by a reload is replicated over Redis.
if command -v redis-server >/dev/null; then
  RP=7962 N1=7963 N2=7964
  for p in $RP $N1 $N2; do _port_free "$p" || fail "port $p is in use"; done
  redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$RUN_DIR/redis.log" 2>&1 &
  RPID=$!
  _PIDS+=("$RPID")
  wait_until 10 "redis-server on :$RP" eval '! _port_free '"$RP" || fail "redis-server did not start"
  CC="$RUN_DIR/cluster.json"
  echo "{\"host\":\"127.0.0.1\",\"redis_url\":\"redis://127.0.0.1:$RP\",\"apps\":[$(app a a-secret)]}" >"$CC"
  NPIDS=()
  for n in 1 2; do
    p=$N1; [ "$n" = 2 ] && p=$N2
    "$PUSHERD_BIN" --config "$CC" --port "$p" --log-level debug >"$RUN_DIR/node$n.stdout" 2>"$RUN_DIR/node$n.log" &
    NPIDS+=("$!")
    _PIDS+=("$!")
    wait_until 10 "pusherd node $n on :$p" eval '! _port_free '"$p" || fail "pusherd node $n did not start"
    wait_until 10 "node $n subscribed to Redis" grep -q 'redis subscribed' "$RUN_DIR/node$n.log" || fail "node $n: no Redis"
  done
  echo "{\"host\":\"127.0.0.1\",\"redis_url\":\"redis://127.0.0.1:$RP\",\"apps\":[$(app a a-secret),$(app b b-secret)]}" >"$CC"
  for n in 1 2; do
    kill -HUP "${NPIDS[$((n - 1))]}"
    wait_until 10 "node $n reloaded and subscribed to app b's cluster channel" \
      grep -q 'redis subscribed" channel=pusherd:b' "$RUN_DIR/node$n.log" || fail "node $n: app b not subscribed in Redis"
  done
  listen_start cb --key b-key --host 127.0.0.1 --port "$N1" --no-tls news-b
  expect_line cb "$(p_subscribed news-b)" 20 "pusher listen on node 1 never subscribed to app b" >/dev/null
  "$PUSHER_BIN" trigger --no-tls --host 127.0.0.1 --port "$N2" --app-id b --key b-key --secret b-secret \
    news-b item '{"via":"node 2"}' >"$RUN_DIR/trigger-b.out" 2>&1 || { cat "$RUN_DIR/trigger-b.out"; fail "trigger on node 2 failed"; }
  expect_line cb "$(p_event news-b item '{"via":"node 2"}')" 20 \
    "the event for app b published on node 2 did not reach node 1's subscriber" >/dev/null
  log "cluster: an app added by a reload on both nodes is replicated over Redis"
  client_stop cb
  for pid in "${NPIDS[@]}"; do kill -TERM "$pid"; done
  for pid in "${NPIDS[@]}"; do
    wait_until 20 "pusherd $pid to exit" eval '! _alive '"$pid" || fail "pusherd $pid did not exit"
    rc=0; wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "pusherd $pid exited with $rc (want 0)"
  done
  kill -TERM "$RPID"
  wait "$RPID" 2>/dev/null || true
else
  fail "redis-server not found (apt-get install redis-server)"
fi
log "PASS"
