#!/usr/bin/env bash
# soketi_errors: error paths against a real soketi.
#  1. unknown app key: soketi sends pusher:error 4001 and closes 4001 => a
#     fatal error line with code 4001, state -> disconnected as the last two
#     lines, exit status 1, and no retry: the fault proxy in between sees
#     exactly one TCP connection in the following 5 s.
#  2. connection quota (SOKETI_DEFAULT_APP_MAX_CONNS=1, two clients): the
#     second gets an error line with the code soketi sent.  soketi 1.6.1
#     sends 4100 ("over quota", back off and retry); Pusher itself documents
#     4004 for this -- the client must report what was sent, so 4100 here.
#     4100-4199 is not fatal: when the first client leaves, the second
#     connects.
#  3. --activity-timeout 1: the client sends pusher:ping after 1 s of
#     silence and soketi answers pusher:pong.  Observed on the wire: the
#     fault proxy decodes the WebSocket frames both ways (client frames
#     unmasked) into its log.  The connection stays up (no reconnect).
# Ports: soketi 7343/7335/7340, proxies 7344 (control 7345), 7341 (control 7342).
. "$(dirname "$0")/lib.sh"
require_bins

# ---------------------------------------------------------------- 1. 4001
soketi_start 7343
proxy_start pxkey 7344 7343 7345 --frames
listen_start badkey --key no-such-key --host 127.0.0.1 --port 7344 --no-tls --reconnect-delay 1 some-channel
client_wait_exit badkey 20
[ "$CLIENT_RC" -eq 1 ] || fail "unknown key: exit status $CLIENT_RC, want 1"
python3 - "$(out badkey)" <<'PY' || fail "unknown key: the last lines are not the fatal 4001 error and state -> disconnected"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) >= 2, lines
err, st = lines[-2], lines[-1]
assert err["type"] == "error" and err["code"] == 4001 and err["fatal"] is True and err.get("message"), err
assert st["type"] == "state" and st["current"] == "disconnected", st
assert not any(l["type"] == "state" and l["current"] == "connected" for l in lines), "connected?"
assert sum(1 for l in lines if l["type"] == "state" and l["current"] == "connecting") == 1, "more than one connecting"
assert not any(l["type"] == "connecting_in" for l in lines), "a retry was scheduled"
PY
grep -q 'S> {"event":"pusher:error","data":{"code":4001' "$RUN_DIR/pxkey.log" ||
  fail "unknown key: no pusher:error 4001 on the wire"
sleep "$(scaled 5)"   # the observation window for "no retry"
acc="$(proxy_stat 7345 accepted)"
[ "$acc" = 1 ] || fail "unknown key: $acc connections on the wire, want exactly 1 (no retry)"
print_timeline badkey
echo "unknown key: exit status 1, one connection on the wire in 5 s"

# ---------------------------------------------------------------- 2. quota
SOKETI_DEFAULT_APP_MAX_CONNS=1 soketi_start 7335
listen_start qa --key "$APP_KEY" --host 127.0.0.1 --port 7335 --no-tls quota-channel
expect_line qa "$P_CONNECTED" 20 "first client never connected" >/dev/null
listen_start qb --key "$APP_KEY" --host 127.0.0.1 --port 7335 --no-tls \
  --reconnect-delay 1 --max-reconnect-delay 2 quota-channel
expect_line qb 'd and d.get("type")=="error" and d.get("code") is not None' 20 \
  "second client: no error line with a code for the connection quota" >/dev/null
code="$(python3 -c 'import json,sys; print(next(d["code"] for d in map(json.loads, open(sys.argv[1])) if d["type"]=="error" and d["code"] is not None))' "$(out qb)")"
echo "connection quota: the second client reported code $code (soketi sends 4100; Pusher documents 4004)"
[ "$code" = 4100 ] || fail "quota error reported with code $code; soketi sent 4100"
expect_line qb 'd and d.get("type")=="error" and d.get("code")==4100 and d.get("fatal") is False' 1 \
  "the 4100 error is reported as fatal (4100-4199 means back off and retry)" >/dev/null
[ "$(count_lines "$(out qb)" "$P_CONNECTED")" = 0 ] || fail "second client connected despite the quota"
expect_line qb 'd and d.get("type")=="connecting_in"' 20 "second client scheduled no retry after 4100" >/dev/null
client_stop qa
expect_line qb "$P_CONNECTED" 30 "second client did not connect after the first one left" >/dev/null
client_stop qb
print_timeline qb

# ---------------------------------------------------------------- 3. ping/pong
soketi_start 7340
proxy_start pxping 7341 7340 7342 --frames
listen_start ping --key "$APP_KEY" --host 127.0.0.1 --port 7341 --no-tls --activity-timeout 1 ping-channel
expect_line ping "$P_CONNECTED" 20 "never connected through the proxy" >/dev/null
PL="$RUN_DIR/pxping.log"
P_PING='" C> " in line and json.loads(line.split(" C> ", 1)[1]).get("event") == "pusher:ping"'
P_PONG='" S> " in line and json.loads(line.split(" S> ", 1)[1]).get("event") == "pusher:pong"'
n="$(wait_for_line "$PL" "$P_PING" 15)" || fail "no pusher:ping from the client on the wire"
n="$(wait_for_line "$PL" "$P_PONG" 15 "$n")" || fail "no pusher:pong from soketi on the wire after the ping"
n="$(wait_for_line "$PL" "$P_PING" 15 "$n")" || fail "no second pusher:ping on the wire"
wait_for_line "$PL" "$P_PONG" 15 "$n" >/dev/null || fail "no second pusher:pong on the wire"
[ "$(proxy_stat 7342 accepted)" = 1 ] || fail "the client reconnected during ping/pong"
seq="$(state_sequence ping)"
[ "$seq" = "initialized connecting connected" ] || fail "state sequence '$seq' during ping/pong"
client_stop ping
echo "---- wire (fault proxy frame log) with --activity-timeout 1"
grep -E ' (C|S)> ' "$PL" | head -12
log "PASS"
