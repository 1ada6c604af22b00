#!/usr/bin/env bash
# pusherd_metrics: the metrics listener (--metrics-port; docs/operations.md).
#  - `pusherd --help` documents --metrics-port; a bad value is a usage error (2)
#  - /metrics on the metrics port (never on the app port) is accepted by
#    `promtool check metrics` (Debian package prometheus), before and after traffic
#  - real traffic moves the counters by exactly what it caused
#    (tests/integration/pusherd/metrics.cjs: raw WebSocket clients and the
#    official `pusher` SDK: connections, WebSocket messages and bytes both
#    ways computed from the frames, HTTP requests by route and status,
#    events published, client events, one 4100 output-queue close)
#  - our C client: `pusher listen` adds one connection, `pusher trigger` one
#    event and one HTTP events/200
#  - the metrics port: 431 over its 8 KiB header cap, 405 for POST, 404 for
#    the app's routes
#  - SIGTERM: /ready answers 503 while the drain lasts (a client that never
#    closes its side holds it open), /health stays 200, then pusherd exits 0
#  - --metrics-host puts the metrics listener on another address
# Ports: pusherd 7950, metrics 7951; 7952, metrics 7953 on 127.0.0.2.
. "$(dirname "$0")/lib.sh"
PORT=7950
MPORT=7951
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
command -v promtool >/dev/null || fail "promtool not found (apt-get install prometheus; scripts/install-deps.sh)"
command -v curl >/dev/null || fail "curl not found"
[ -d "$PEERS/clients/node_modules/pusher" ] || fail "pusher SDK not installed: run tests/peers/setup.sh"
export PEERS_CLIENTS="$PEERS/clients"

"$PUSHERD_BIN" --help >"$RUN_DIR/help.txt" || fail "pusherd --help failed"
grep -q -- "--metrics-port PORT" "$RUN_DIR/help.txt" || fail "--help does not document --metrics-port"
rc=0; "$PUSHERD_BIN" --metrics-port 70000 >/dev/null 2>"$RUN_DIR/badport.err" || rc=$?
[ "$rc" -eq 2 ] || fail "--metrics-port 70000 gave status $rc (want 2)"
grep -q "metrics-port" "$RUN_DIR/badport.err" || fail "the usage error does not name --metrics-port"

cat >"$RUN_DIR/pusherd.json" <<JSON
{"host":"127.0.0.1","port":$PORT,"metrics_port":$MPORT,"max_output_queue_bytes":4096,
 "shutdown_grace_ms":60000,
 "apps":[{"id":"app-id","key":"app-key","secret":"app-secret","client_events":true,"subscription_count":false}]}
JSON
_port_free "$PORT" && _port_free "$MPORT" || fail "port $PORT or $MPORT is in use"
"$PUSHERD_BIN" --config "$RUN_DIR/pusherd.json" --log-level debug >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
PD_PID=$!
_PIDS+=("$PD_PID")
wait_until 10 "pusherd on :$PORT and :$MPORT" eval '! _port_free '"$PORT"' && ! _port_free '"$MPORT" ||
  fail "pusherd did not start"
log "pusherd on :$PORT, metrics on :$MPORT (pid $PD_PID)"

metric() {   # NAME{LABELS}: its value (0 when absent)
  curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}
check_promtool() {   # WHEN
  curl -sf "http://127.0.0.1:$MPORT/metrics" >"$RUN_DIR/metrics-$1.txt" || fail "GET /metrics failed ($1)"
  promtool check metrics <"$RUN_DIR/metrics-$1.txt" >"$RUN_DIR/promtool-$1.out" 2>&1 ||
    { cat "$RUN_DIR/promtool-$1.out"; fail "promtool check metrics refused the output ($1)"; }
  grep -q '^# TYPE pusherd_connections_total counter$' "$RUN_DIR/metrics-$1.txt" || fail "no TYPE line for connections_total"
  log "promtool check metrics: accepted ($1, $(grep -vc '^#' "$RUN_DIR/metrics-$1.txt") samples)"
}

check_promtool fresh
big="$(head -c 9000 /dev/zero | tr '\0' x)"
code="$(curl -s -o "$RUN_DIR/431.json" -w '%{http_code}' -H "X-Big: $big" "http://127.0.0.1:$MPORT/metrics")"
[ "$code" = 431 ] || fail "9 KB of headers on the metrics port answered $code (want 431: cap 8 KiB)"
code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MPORT/metrics")"
[ "$code" = 405 ] || fail "POST /metrics answered $code (want 405)"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/apps/app-id/channels")"
[ "$code" = 404 ] || fail "the metrics port served an app route ($code, want 404)"
log "metrics port: 9 KB of headers 431, POST 405, app routes 404"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")"
[ "$code" = 404 ] || fail "GET /metrics on the app port answered $code (want 404: metrics only on --metrics-port)"

node "$(dirname "$0")/pusherd/metrics.cjs" "$PORT" "$MPORT" >"$RUN_DIR/metrics-js.out" 2>&1 ||
  { cat "$RUN_DIR/metrics-js.out"; fail "metrics.cjs failed"; }
cat "$RUN_DIR/metrics-js.out"

# our C client
c0="$(metric 'pusherd_connections_total{app_id="app-id"}')"
e0="$(metric 'pusherd_events_published_total{app_id="app-id"}')"
h0="$(metric 'pusherd_http_requests_total{route="events",status="200"}')"
listen_start c --key app-key --host 127.0.0.1 --port "$PORT" --no-tls my-channel
expect_line c "$(p_subscribed my-channel)" 20 "pusher listen never subscribed" >/dev/null
"$PUSHER_BIN" trigger --no-tls --host 127.0.0.1 --port "$PORT" --app-id app-id --key app-key --secret app-secret \
  my-channel my-event '{"n":1}' >"$RUN_DIR/trigger.out" 2>&1 || fail "pusher trigger failed"
expect_line c "$(p_event my-channel my-event '{"n":1}')" 20 "my-event never arrived" >/dev/null
c1="$(metric 'pusherd_connections_total{app_id="app-id"}')"
e1="$(metric 'pusherd_events_published_total{app_id="app-id"}')"
h1="$(metric 'pusherd_http_requests_total{route="events",status="200"}')"
[ "$((c1 - c0))" -eq 1 ] || fail "pusher listen: connections_total moved by $((c1 - c0)) (want 1)"
[ "$((e1 - e0))" -eq 1 ] || fail "pusher trigger: events_published_total moved by $((e1 - e0)) (want 1)"
[ "$((h1 - h0))" -eq 1 ] || fail "pusher trigger: http events/200 moved by $((h1 - h0)) (want 1)"
[ "$(metric 'pusherd_connections{app_id="app-id"}')" -eq 1 ] || fail "pusher listen: connections is not 1"
log "pusher listen + pusher trigger: connections_total +1, events_published_total +1, events/200 +1"
check_promtool traffic
client_stop c

# --metrics-host: the metrics listener on another address than the app port
_port_free 7952 && _port_free 7953 || fail "port 7952 or 7953 is in use"
"$PUSHERD_BIN" --port 7952 --metrics-port 7953 --metrics-host 127.0.0.2 >"$RUN_DIR/mhost.stdout" 2>"$RUN_DIR/mhost.log" &
MH_PID=$!
_PIDS+=("$MH_PID")
wait_until 10 "pusherd with --metrics-host" eval '[ "$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.2:7953/health)" = 200 ]' ||
  fail "no /health on 127.0.0.2:7953"
code="$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:7953/health || true)"
[ "$code" = 000 ] || fail "the metrics listener also answers on 127.0.0.1 ($code)"
kill -TERM "$MH_PID"; wait "$MH_PID" || fail "pusherd with --metrics-host did not exit 0"
log "--metrics-host 127.0.0.2: /health there, nothing on 127.0.0.1:7953"

# SIGTERM drain: a raw WebSocket client that never answers the close or
# closes its socket holds the drain open (pusherd then closes it after 5 s).
python3 - "$PORT" >"$RUN_DIR/holder.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
buf = b""
while b"connection_established" not in buf:
    buf += s.recv(4096)
print("established", flush=True)
time.sleep(120)
PY
HOLDER=$!
_PIDS+=("$HOLDER")
wait_until 10 "the holder connected" grep -q established "$RUN_DIR/holder.out" || fail "the holder did not connect"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/ready")" = 200 ] || fail "/ready is not 200 before SIGTERM"
kill -TERM "$PD_PID"
wait_until 10 "/ready 503" eval '[ "$(curl -s -o "$RUN_DIR/ready.json" -w "%{http_code}" "http://127.0.0.1:$MPORT/ready")" = 503 ]' ||
  fail "/ready did not turn 503 during the drain"
grep -q '"ready":false' "$RUN_DIR/ready.json" || fail "/ready body: $(cat "$RUN_DIR/ready.json")"
_alive "$PD_PID" || fail "pusherd was gone while /ready was checked"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/health")" = 200 ] || fail "/health is not 200 during the drain"
log "SIGTERM: /ready 503 $(cat "$RUN_DIR/ready.json") while draining; /health 200"
wait_until 30 "pusherd to exit" eval '! _alive '"$PD_PID" || fail "pusherd did not exit after the drain"
rc=0; wait "$PD_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "pusherd exited with $rc after SIGTERM (want 0)"
_port_free "$MPORT" || fail "the metrics port is still open after exit"
log "pusherd exited 0; the metrics port is closed"
log "PASS"
