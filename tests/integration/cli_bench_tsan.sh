#!/usr/bin/env bash
# cli_bench_tsan: `pusher bench --threads` runs that exercise every hand-off
# between the main loop and the other loops, for the ThreadSanitizer stage
# (scripts/test.sh runs the tests named *tsan* in build-tsan/; here it is
# also an ordinary integration test).  Against one pusherd:
#  - 30 subscribers over 3 channels on 3 loops, 200 events: every delivery
#    once, with --server-pid (sampled when all loops have subscribed)
#  - --stalled 2 with 3 loops: the raw sockets on the main loop
#  - a wrong key: every loop gives up on its own, exit 1
#  - SIGINT while 3 loops are receiving: report, exit 1
# and in each: no ThreadSanitizer report on stderr.  The full checks of the
# figures are in cli_bench.sh; this one asserts outcomes only.
# Port: pusherd 7580.
. "$(dirname "$0")/lib.sh"
PORT=7580
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
command -v python3 >/dev/null || fail "python3 not found"
B=(bench --no-tls --host 127.0.0.1 --port "$PORT" --app-id "$APP_ID" --key "$APP_KEY"
   --secret "$APP_SECRET" --timeout "$(scaled 20)" --json)

# run_rc OUT ERR CMD...: run CMD, print its exit status
run_rc() {
  local o="$1" e="$2" rc=0; shift 2
  "$@" >"$o" 2>"$e" </dev/null || rc=$?
  echo "$rc"
}
no_race() {
  ! grep -q "ThreadSanitizer" "$1" || fail "a ThreadSanitizer report from $(basename "$1"): $(head -40 "$1")"
}
# jq_py FILE EXPR: print EXPR over d, the JSON object in FILE
jq_py() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

_port_free "$PORT" || fail "port $PORT is in use"
"$PUSHERD_BIN" --port "$PORT" --log-level error >"$RUN_DIR/pusherd.out" 2>"$RUN_DIR/pusherd.log" &
PD_PID=$!
_PIDS+=("$PD_PID")
wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"

rc="$(run_rc "$RUN_DIR/thr.json" "$RUN_DIR/thr.err" "$PUSHER_BIN" "${B[@]}" \
  --subscribers 30 --channels 3 --events 200 --threads 3 --server-pid "$PD_PID")"
no_race "$RUN_DIR/thr.err"
[ "$rc" = 0 ] || fail "bench --threads 3 exited $rc: $(cat "$RUN_DIR/thr.err")"
[ "$(jq_py "$RUN_DIR/thr.json" '(d["ok"], d["self"]["loops"], d["deliveries"]["received"], d["deliveries"]["expected"], d["deliveries"]["lost"])')" = "(True, 3, 2000, 2000, 0)" ] ||
  fail "bench --threads 3: $(cat "$RUN_DIR/thr.json")"
log "3 loops: 2000 of 2000 deliveries"

rc="$(run_rc "$RUN_DIR/stalled.json" "$RUN_DIR/stalled.err" "$PUSHER_BIN" "${B[@]}" \
  --subscribers 6 --channels 2 --stalled 2 --events 10 --threads 3)"
no_race "$RUN_DIR/stalled.err"
[ "$rc" = 0 ] || fail "bench --stalled 2 --threads 3 exited $rc: $(cat "$RUN_DIR/stalled.err")"
[ "$(jq_py "$RUN_DIR/stalled.json" '(d["ok"], d["stalled"]["subscribed"], d["deliveries"]["received"])')" = "(True, 2, 30)" ] ||
  fail "bench --stalled 2 --threads 3: $(cat "$RUN_DIR/stalled.json")"
log "3 loops and 2 stalled sockets"

rc="$(run_rc "$RUN_DIR/badkey.json" "$RUN_DIR/badkey.err" "$PUSHER_BIN" "${B[@]}" \
  --key no-such-key --subscribers 20 --events 5 --threads 3)"
no_race "$RUN_DIR/badkey.err"
[ "$rc" = 1 ] || fail "bench --threads 3 with a wrong key exited $rc, want 1: $(cat "$RUN_DIR/badkey.err")"
[ "$(jq_py "$RUN_DIR/badkey.json" '(d["ok"], d["connect"]["subscribed"])')" = "(False, 0)" ] ||
  fail "wrong key: $(cat "$RUN_DIR/badkey.json")"
log "3 loops, a wrong key: exit 1"

"$PUSHER_BIN" "${B[@]}" --subscribers 12 --threads 3 --events 100000 --rate 50 --progress \
  >"$RUN_DIR/int.json" 2>"$RUN_DIR/int.err" </dev/null &
INT_PID=$!
_PIDS+=("$INT_PID")
wait_until 20 "bench to start publishing" grep -q "publishing: [1-9]" "$RUN_DIR/int.err" ||
  fail "bench --threads 3 never started publishing: $(cat "$RUN_DIR/int.err")"
kill -INT "$INT_PID"
wait_until 20 "bench to exit after SIGINT" eval '! _alive '"$INT_PID" ||
  fail "bench --threads 3 did not exit after SIGINT"
rc=0; wait "$INT_PID" || rc=$?
no_race "$RUN_DIR/int.err"
[ "$rc" = 1 ] || fail "bench --threads 3 exited $rc after SIGINT, want 1: $(cat "$RUN_DIR/int.err")"
[ "$(jq_py "$RUN_DIR/int.json" 'd["verdict"]')" = "interrupted" ] || fail "SIGINT: $(cat "$RUN_DIR/int.json")"
log "3 loops, SIGINT while publishing: interrupted, exit 1"
log "PASS"
