#!/usr/bin/env bash
# client_many: 2,000 libpusher clients in loop mode on one libuv loop (one
# process, bench/client_many) against a real pusherd, spread over 20
# channels; `pusher bench --subscribers 0` then publishes 100 events (event i
# on channel i mod 20).  Asserts correctness only: every client subscribed
# and every client got exactly its 5 events (client_many exits 0 only then,
# and its RESULT line says so).  The memory figures it prints are for
# bench/README.md; nothing here judges a number or a duration.
# Port: pusherd 7590.
. "$(dirname "$0")/lib.sh"
PORT=7590
N=2000
C=20
M=100
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
MANY_BIN="$PUSHER_BUILD_DIR/bench/client_many"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
[ -x "$MANY_BIN" ] || fail "bench/client_many is not built ($MANY_BIN; configure with -DPUSHER_BENCH=ON)"
# each process holds N sockets plus its own descriptors
ulimit -n $((N + 1000)) 2>/dev/null || fail "cannot raise the open files limit to $((N + 1000))"

_port_free "$PORT" || fail "port $PORT is in use"
"$PUSHERD_BIN" --port "$PORT" --log-level error >"$RUN_DIR/pusherd.out" 2>"$RUN_DIR/pusherd.log" &
PD_PID=$!
_PIDS+=("$PD_PID")
wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"
log "pusherd on :$PORT (pid $PD_PID)"

PREFIX="many-$$"
"$MANY_BIN" --port "$PORT" --clients "$N" --channels "$C" --prefix "$PREFIX" --events $((M / C)) \
  --timeout "$(scaled 20)" >"$RUN_DIR/many.out" 2>"$RUN_DIR/many.err" &
MANY_PID=$!
_PIDS+=("$MANY_PID")
wait_until 120 "all $N clients subscribed" grep -q '^READY ' "$RUN_DIR/many.out" ||
  fail "client_many did not get all $N clients subscribed: $(cat "$RUN_DIR/many.out" "$RUN_DIR/many.err")"
log "$(grep '^READY ' "$RUN_DIR/many.out")"

"$PUSHER_BIN" bench --no-tls --host 127.0.0.1 --port "$PORT" --app-id "$APP_ID" --key "$APP_KEY" \
  --secret "$APP_SECRET" --subscribers 0 --channels "$C" --channel-prefix "$PREFIX" --events "$M" \
  >"$RUN_DIR/pub.out" 2>"$RUN_DIR/pub.err" </dev/null || fail "publishing failed: $(cat "$RUN_DIR/pub.err")"

rc=0
wait "$MANY_PID" || rc=$?
[ "$rc" = 0 ] || fail "client_many exited $rc: $(cat "$RUN_DIR/many.out" "$RUN_DIR/many.err")"
grep -q "^RESULT clients=$N subscribed=$N events=$((N * M / C))/$((N * M / C)) " "$RUN_DIR/many.out" ||
  fail "unexpected RESULT: $(cat "$RUN_DIR/many.out")"
log "$(grep '^RESULT ' "$RUN_DIR/many.out")"
log "PASS"
