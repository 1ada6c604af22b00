#!/usr/bin/env bash
# faultproxy: client -> fault proxy -> soketi with short timers:
#   --activity-timeout 2 --pong-timeout 2 --unavailable-timeout 6
#   --reconnect-delay 1 --max-reconnect-delay 2
# connected + subscribed + an event arrives; then the proxy black-holes the
# traffic (sockets open, nothing forwarded) => the client pings, gets no pong
# within the pong timeout => connecting => (still nothing after the
# unavailable timeout) unavailable; then the proxy passes traffic again =>
# connected, resubscribed, and a triggered event arrives.  Also: a TCP reset
# of the live connection => connecting => connected again.  Prints the state
# sequence with timings.
# Ports: soketi 7350, proxy 7351, proxy control 7352.
. "$(dirname "$0")/lib.sh"
require_bins
PORT=7350 PROXY=7351 CTL=7352
CH=fault-channel

soketi_start "$PORT"
proxy_start px "$PROXY" "$PORT" "$CTL" --frames
listen_start c --key "$APP_KEY" --host 127.0.0.1 --port "$PROXY" --no-tls \
  --activity-timeout 2 --pong-timeout 2 --unavailable-timeout 6 \
  --reconnect-delay 1 --max-reconnect-delay 2 "$CH"
expect_line c "$P_CONNECTED" 20 "never connected" >/dev/null
expect_line c "$(p_subscribed "$CH")" 20 "never subscribed" >/dev/null
trigger "$PORT" "$CH" first '{"n":1}'
expect_line c "$(p_event "$CH" first '{"n":1}')" 20 "event 'first' never arrived" >/dev/null

# ---- black hole
L="$(line_count "$(out c)")"
t_bh="$(client_t c)"
proxy_cmd "$CTL" "mark blackhole" >/dev/null
proxy_cmd "$CTL" blackhole >/dev/null
log "proxy: blackhole (client t=${t_bh}s)"
n="$(expect_line c "$P_CONNECTING" 30 "no connecting after the black hole (pong timeout)" "$L")"
grep -A1000 'mark blackhole' "$RUN_DIR/px.log" | grep -q ' C> {"event":"pusher:ping"' ||
  fail "no pusher:ping from the client on the wire before it gave up"
expect_line c 'd and d.get("type")=="state" and d.get("current")=="unavailable"' 30 \
  "no unavailable after the unavailable timeout" "$n" >/dev/null
[ "$(count_lines "$(out c)" "$P_CONNECTED" "$L")" = 0 ] || fail "connected through a black hole?"
L2="$(line_count "$(out c)")"
t_pass="$(client_t c)"
proxy_cmd "$CTL" pass >/dev/null
log "proxy: pass (client t=${t_pass}s)"
n="$(expect_line c "$P_CONNECTED" 30 "did not reconnect after the traffic was restored" "$L2")"
expect_line c "$(p_subscribed "$CH")" 20 "did not resubscribe after reconnecting" "$n" >/dev/null
trigger "$PORT" "$CH" second '{"n":2}'
expect_line c "$(p_event "$CH" second '{"n":2}')" 20 "event 'second' never arrived after the black hole" >/dev/null
seq_bh="$(state_sequence c "$L")"
case "$seq_bh" in
  connected\ connecting*unavailable*connected) ;;
  *) fail "state sequence through the black hole is '$seq_bh', want connected connecting ... unavailable ... connected" ;;
esac

# ---- TCP reset of the live connection
L3="$(line_count "$(out c)")"
t_rst="$(client_t c)"
proxy_cmd "$CTL" reset >/dev/null
log "proxy: reset (client t=${t_rst}s)"
n="$(expect_line c "$P_CONNECTING" 20 "no connecting after a TCP reset" "$L3")"
n="$(expect_line c "$P_CONNECTED" 30 "did not reconnect after a TCP reset" "$n")"
expect_line c "$(p_subscribed "$CH")" 20 "did not resubscribe after the reset" "$n" >/dev/null
trigger "$PORT" "$CH" third '{"n":3}'
expect_line c "$(p_event "$CH" third '{"n":3}')" 20 "event 'third' never arrived after the reset" >/dev/null
seq_rst="$(state_sequence c "$L3")"

client_stop c
print_timeline c
echo "black hole at client t=${t_bh}s, pass at t=${t_pass}s, reset at t=${t_rst}s"
echo "states through the black hole: $seq_bh"
echo "states through the reset: $seq_rst"
log "PASS"
