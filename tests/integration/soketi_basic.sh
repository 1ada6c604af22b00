#!/usr/bin/env bash
# soketi_basic: `pusher listen --json` against a real soketi on loopback.
#  - states initialized -> connecting -> connected, with a socket_id
#  - subscribe: a "subscribed" line for the channel
#  - an event triggered through the REST API (official pusher SDK) arrives,
#    with its JSON data parsed; an event on another channel does not
#  - every line is one JSON object with a non-decreasing numeric "t"
#  - --count 1 exits 0 after one event; SIGTERM exits 0
# Ports: soketi 7300.
. "$(dirname "$0")/lib.sh"
require_bins
PORT=7300

soketi_start "$PORT"
listen_start c --key "$APP_KEY" --host 127.0.0.1 --port "$PORT" --no-tls my-channel
expect_line c "$P_CONNECTED" 20 "never reached state connected" >/dev/null
expect_line c "$(p_subscribed my-channel)" 20 "no subscribed line for my-channel" >/dev/null

seq="$(state_sequence c)"
[ "$seq" = "initialized connecting connected" ] ||
  fail "state sequence is '$seq', want 'initialized connecting connected'"
[ "$(count_lines "$(out c)" 'd["type"]=="state" and d["current"]=="connected" and __import__("re").fullmatch(r"\d+\.\d+", d["socket_id"])')" = 1 ] ||
  fail "the connected state line has no socket_id of the form digits.digits"

trigger "$PORT" other-channel not-for-us '{"x":0}'
trigger "$PORT" my-channel my-event '{"n":1,"s":"hello"}'
expect_line c "$(p_event my-channel my-event '{"n":1,"s":"hello"}')" 20 "event my-event with data {n:1,s:hello} never arrived" >/dev/null
trigger "$PORT" my-channel second '"just a string"'
expect_line c "$(p_event my-channel second '"just a string"')" 20 "event 'second' never arrived" >/dev/null
[ "$(count_lines "$(out c)" 'd and d.get("channel")=="other-channel"')" = 0 ] ||
  fail "received an event of a channel it did not subscribe to"

# Output format: one JSON object per line, each with a numeric t (non-decreasing) and a known type.
python3 - "$(out c)" <<'PY' || fail "output format check failed"
import json, sys
last = -1.0
for n, line in enumerate(open(sys.argv[1]), 1):
    d = json.loads(line)
    assert isinstance(d, dict), "line %d is not an object" % n
    assert isinstance(d.get("t"), (int, float)) and d["t"] >= last, "line %d: bad or decreasing t" % n
    assert d.get("type") in ("state", "connecting_in", "error", "subscribed", "subscription_error", "event"), "line %d: type %r" % (n, d.get("type"))
    last = d["t"]
PY

# --count 1: exits 0 after the first event.
listen_start once --key "$APP_KEY" --host 127.0.0.1 --port "$PORT" --no-tls --count 1 my-channel
expect_line once "$(p_subscribed my-channel)" 20 "second client never subscribed" >/dev/null
trigger "$PORT" my-channel only-one '{"k":"v"}'
client_wait_exit once 20
[ "$CLIENT_RC" -eq 0 ] || fail "pusher listen --count 1 exited with $CLIENT_RC, want 0"
expect_line once "$(p_event my-channel only-one '{"k":"v"}')" 1 "--count client did not print its event" >/dev/null
expect_line c "$(p_event my-channel only-one '{"k":"v"}')" 20 "first client missed only-one" >/dev/null

client_stop c
print_timeline c
log "PASS"
