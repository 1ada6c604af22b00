#!/usr/bin/env bash
# soketi_sigterm: SIGTERM soketi under a connected client.  soketi then sends
# pusher:error 4200 + close 4200 to every socket and answers every new
# connection with 4200 for its ~3 s grace period before it exits (pusher-js
# makes hundreds of attempts meanwhile).  The client talks through the fault
# proxy, which counts TCP connections on the wire: at most 5 attempts between
# SIGTERM and soketi's exit.  Then soketi is restarted and the client must
# reconnect, resubscribe and receive.
# Ports: soketi 7320, proxy 7321, proxy control 7322.
. "$(dirname "$0")/lib.sh"
require_bins
PORT=7320 PROXY=7321 CTL=7322
CH=sigterm-channel
MAX_ATTEMPTS=5

soketi_start "$PORT"
proxy_start px "$PROXY" "$PORT" "$CTL" --frames
listen_start c --key "$APP_KEY" --host 127.0.0.1 --port "$PROXY" --no-tls \
  --reconnect-delay 1 --max-reconnect-delay 2 "$CH"
expect_line c "$P_CONNECTED" 20 "never connected" >/dev/null
expect_line c "$(p_subscribed "$CH")" 20 "never subscribed" >/dev/null

L="$(line_count "$(out c)")"
before="$(proxy_stat "$CTL" accepted)"
t_term="$(client_t c)"
proxy_cmd "$CTL" "mark SIGTERM to soketi" >/dev/null
soketi_term "$PORT"
soketi_wait_gone "$PORT" 20
after="$(proxy_stat "$CTL" accepted)"
t_gone="$(client_t c)"
attempts=$((after - before))
closes4200="$(grep -c 'S> \[close 4200\]' "$RUN_DIR/px.log" || true)"
echo "SIGTERM at client t=${t_term}s, soketi gone at t=${t_gone}s:" \
  "$attempts connection attempt(s) in that window (limit $MAX_ATTEMPTS); close 4200 frames on the wire: $closes4200"
[ "$closes4200" -ge 1 ] || fail "no close 4200 seen on the wire: soketi's SIGTERM path was not exercised"
expect_line c 'd and d.get("type")=="error" and d.get("code")==4200' 10 \
  "the pusher:error 4200 was not reported as an error line" "$L" >/dev/null
expect_line c "$P_CONNECTING" 10 "did not go to connecting after 4200" "$L" >/dev/null
[ "$attempts" -le "$MAX_ATTEMPTS" ] ||
  fail "reconnect storm: $attempts attempts while soketi answered 4200 (limit $MAX_ATTEMPTS)"

soketi_start "$PORT"
n="$(expect_line c "$P_CONNECTED" 40 "did not reconnect after soketi was restarted" "$L")"
expect_line c "$(p_subscribed "$CH")" 20 "did not resubscribe after reconnecting" "$n" >/dev/null
trigger "$PORT" "$CH" after-restart '{"ok":1}'
expect_line c "$(p_event "$CH" after-restart '{"ok":1}')" 20 "event after the restart never arrived" >/dev/null
total="$(proxy_stat "$CTL" accepted)"

client_stop c
print_timeline c
echo "---- wire (fault proxy log) from the SIGTERM on"
sed -n '/mark SIGTERM/,$p' "$RUN_DIR/px.log" | grep -v 'pusher:ping\|pusher:pong' | head -60
echo "4200 window: $attempts attempt(s) between SIGTERM and soketi's exit; $total connection(s) in all"
log "PASS"
