#!/usr/bin/env bash
# soketi_restart: kill -9 soketi under a connected, subscribed client, then
# restart it on the same port.  The client must go `connecting` (with
# connecting_in lines while soketi is down), reconnect, resubscribe and
# receive events again.  Prints the state sequence with timings.
# Ports: soketi 7310.
. "$(dirname "$0")/lib.sh"
require_bins
PORT=7310
CH=restart-channel

soketi_start "$PORT"
listen_start c --key "$APP_KEY" --host 127.0.0.1 --port "$PORT" --no-tls \
  --reconnect-delay 1 --max-reconnect-delay 4 "$CH"
expect_line c "$P_CONNECTED" 20 "never connected" >/dev/null
expect_line c "$(p_subscribed "$CH")" 20 "never subscribed" >/dev/null
trigger "$PORT" "$CH" before '{"n":1}'
expect_line c "$(p_event "$CH" before '{"n":1}')" 20 "event 'before' never arrived" >/dev/null

L="$(line_count "$(out c)")"
t_kill="$(client_t c)"
soketi_kill "$PORT"
n="$(expect_line c "$P_CONNECTING" 20 "did not go to connecting after kill -9" "$L")"
n="$(expect_line c 'd and d.get("type")=="connecting_in"' 20 "no connecting_in after the drop" "$L")"
# Stay down until the client has failed at least one more attempt (a second
# connecting_in line), so the reconnect really goes through the retry path.
expect_line c 'd and d.get("type")=="connecting_in"' 30 "no second connecting_in while soketi is down" "$n" >/dev/null
[ "$(count_lines "$(out c)" "$P_CONNECTED" "$L")" = 0 ] || fail "connected while soketi was down?"
t_up="$(client_t c)"
soketi_start "$PORT"
t_ready="$(client_t c)"

n="$(expect_line c "$P_CONNECTED" 40 "did not reconnect after soketi came back" "$L")"
expect_line c "$(p_subscribed "$CH")" 20 "did not resubscribe $CH after reconnecting" "$n" >/dev/null
trigger "$PORT" "$CH" after '{"n":2}'
expect_line c "$(p_event "$CH" after '{"n":2}')" 20 "event 'after' never arrived after the reconnect" >/dev/null

seq="$(state_sequence c "$L")"
case "$seq" in
  connected\ connecting*connected) ;;
  *) fail "state sequence after kill -9 is '$seq', want connected connecting ... connected" ;;
esac
case "$seq" in *failed*|*disconnected*) fail "unexpected state in '$seq'" ;; esac
attempts="$(count_lines "$(out c)" 'd and d.get("type")=="connecting_in"' "$L")"

client_stop c
print_timeline c
echo "kill -9 at client t=${t_kill}s; soketi restart began at t=${t_up}s, ready at t=${t_ready}s"
echo "states after the kill: $seq; connecting_in lines while down: $attempts"
log "PASS"
