#!/usr/bin/env bash
# pusherd_basic: pusherd against raw WebSocket frames (ws), pusher-js 8.6.0
# and the official `pusher` REST SDK (tests/integration/pusherd/basic.cjs):
#  - close codes 4001 (unknown key), 4005 (bad path), 4008 (no protocol),
#    4006 (protocol=abc), 4007 (protocol=6), 4004 (over quota)
#  - public / private / presence / client events through pusher-js, events
#    triggered with the SDK; REST errors with real statuses
#  - every malformed frame answered with pusher:error while another client
#    keeps receiving events
#  - 1,000 concurrent connections on one channel all get a triggered event
#  - SIGTERM: pusher:error 4200 + close 4200, exit status 0
# Ports: pusherd 7410 (default app), 7411 (--max-connections 1).
. "$(dirname "$0")/lib.sh"
PORT=7410
QPORT=7411
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$PEERS/clients/node_modules/pusher-js" ] || fail "pusher-js not installed: run tests/peers/setup.sh"
# 1,000 client sockets in node plus 1,000 in pusherd.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open files limit: $(ulimit -n)"

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

# No arguments beyond the port: the development app is announced on stdout.
pusherd_start main "$PORT"
pusherd_start quota "$QPORT" --max-connections 1
grep -q "app-key" "$RUN_DIR/main.stdout" || fail "pusherd did not print its development app"
"$PUSHERD_BIN" --help | grep -q -- "--max-connections" || fail "--help does not list --max-connections"

PEERS_CLIENTS="$PEERS/clients" node "$(dirname "$0")/pusherd/basic.cjs" "$PORT" "$QPORT" \
  >"$RUN_DIR/basic.out" 2>&1 || { cat "$RUN_DIR/basic.out"; fail "basic.cjs checks failed"; }
cat "$RUN_DIR/basic.out"

# Still alive after everything above.
_alive "$PID_main" || fail "pusherd exited during the checks"

# SIGTERM: a connected client gets 4200; pusherd exits 0.
PEERS_CLIENTS="$PEERS/clients" node "$(dirname "$0")/pusherd/basic.cjs" "$PORT" "$QPORT" shutdown \
  >"$RUN_DIR/shutdown.out" 2>&1 &
SHUT_PID=$!
_PIDS+=("$SHUT_PID")
wait_until 10 "shutdown client connected" grep -q READY "$RUN_DIR/shutdown.out" || fail "shutdown client did not connect"
kill -TERM "$PID_main"
wait_until 15 "pusherd to exit after SIGTERM" eval '! _alive '"$PID_main" || fail "pusherd did not exit after SIGTERM"
rc=0; wait "$PID_main" || rc=$?
[ "$rc" -eq 0 ] || fail "pusherd exited with status $rc after SIGTERM (want 0)"
crc=0; wait "$SHUT_PID" || crc=$?
cat "$RUN_DIR/shutdown.out"
[ "$crc" -eq 0 ] || fail "the shutdown client did not see 4200"
log "PASS"
