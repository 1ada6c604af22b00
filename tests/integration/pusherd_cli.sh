#!/usr/bin/env bash
# pusherd_cli: our C client (`pusher listen --json`) against pusherd.
#  - initialized -> connecting -> connected with a digits.digits socket_id
#  - subscribed; a REST-triggered event (official SDK) arrives with its data;
#    an event on another channel does not
#  - the HTTP API refuses an event named pusher:foo (reserved by Pusher) with
#    400 and an error naming the rule; `pusherd --version` prints the version
#  - pusherd SIGTERM: the client is told 4200 (reconnect now), pusherd exits
#    0; a new pusherd on the same port: the client reconnects, resubscribes
#    and receives the next event
# Ports: pusherd 7450.
. "$(dirname "$0")/lib.sh"
PORT=7450
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
command -v node >/dev/null || fail "node not found"

start_pusherd() {   # NAME
  _port_free "$PORT" || fail "port $PORT is in use"
  "$PUSHERD_BIN" --port "$PORT" --log-level debug >"$RUN_DIR/$1.stdout" 2>"$RUN_DIR/$1.log" &
  PD_PID=$!
  _PIDS+=("$PD_PID")
  wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"
  log "pusherd $1 on :$PORT (pid $PD_PID)"
}

start_pusherd pusherd1
listen_start c --key "$APP_KEY" --host 127.0.0.1 --port "$PORT" --no-tls --reconnect-delay 0.2 my-channel
expect_line c "$P_CONNECTED" 20 "never reached state connected" >/dev/null
n="$(expect_line c "$(p_subscribed my-channel)" 20 "no subscribed line for my-channel")"
seq="$(state_sequence c)"
[ "$seq" = "initialized connecting connected" ] || fail "state sequence is '$seq'"
[ "$(count_lines "$(out c)" 'd["type"]=="state" and d["current"]=="connected" and __import__("re").fullmatch(r"\d+\.\d+", d["socket_id"])')" = 1 ] ||
  fail "the connected state line has no socket_id of the form digits.digits"

trigger "$PORT" other-channel not-for-us '{"x":0}'
trigger "$PORT" my-channel my-event '{"n":1,"s":"hello"}'
expect_line c "$(p_event my-channel my-event '{"n":1,"s":"hello"}')" 20 "my-event never arrived" >/dev/null
[ "$(count_lines "$(out c)" 'd and d.get("channel")=="other-channel"')" = 0 ] ||
  fail "received an event of a channel it did not subscribe to"

o="$(PEERS_CLIENTS="$PEERS/clients" node - "$PORT" <<'JS' 2>&1
const Pusher = require(process.env.PEERS_CLIENTS + "/node_modules/pusher");
const p = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret",
  host: "127.0.0.1", port: process.argv[2], useTLS: false });
p.trigger("my-channel", "pusher:foo", {}).then((r) => console.log(`HTTP ${r.status}`),
  (e) => console.log(`HTTP ${e.status} ${e.body}`));
JS
)"
case "$o" in
  "HTTP 400 "*"reserved by Pusher"*) log "reserved event name refused: $o" ;;
  *) fail "an event named pusher:foo was not refused with 400: $o" ;;
esac
v="$("$PUSHERD_BIN" --version)" || fail "pusherd --version failed"
[[ "$v" =~ ^pusherd\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "pusherd --version printed '$v'"

# Graceful restart: 4200 => the client reconnects at once.
from="$(line_count "$(out c)")"
kill -TERM "$PD_PID"
wait_until 15 "pusherd to exit after SIGTERM" eval '! _alive '"$PD_PID" || fail "pusherd did not exit after SIGTERM"
rc=0; wait "$PD_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "pusherd exited with status $rc after SIGTERM (want 0)"
grep -q "4200" "$RUN_DIR/pusherd1.log" || fail "pusherd did not log the 4200 close"
expect_line c 'd and d.get("type")=="error" and d.get("code")==4200' 10 "the client was not told 4200" "$from" >/dev/null
start_pusherd pusherd2
expect_line c "$P_CONNECTED" 30 "did not reconnect to the new pusherd" "$from" >/dev/null
expect_line c "$(p_subscribed my-channel)" 20 "did not resubscribe after the restart" "$from" >/dev/null
trigger "$PORT" my-channel after-restart '"again"'
expect_line c "$(p_event my-channel after-restart '"again"')" 20 "no event after the restart" "$from" >/dev/null

client_stop c
print_timeline c
log "PASS"
