#!/usr/bin/env bash
# cli_channels: `pusher listen` with its channel, auth and sign-in options end to end, against
# soketi and then against our own pusherd, authorized by
# tests/authserver/server.mjs (the official pusher SDK's authorizeChannel /
# authenticateUser):
#  - private subscribe via ajax (--auth-param + --auth-header required by the
#    auth server) and presence via jsonp (--auth-param required; GET with a
#    `callback` parameter);
#  - --stdin (FIFO, regular file, pipe closed before connecting): a client
#    event from one listener arrives at the other (with
#    user_id on presence); a non-client- event, a public channel, a channel
#    not subscribed, invalid JSON and a line without "event" each print an
#    `error` line naming the line, as do the 11th/12th of a burst (10/s);
#    EOF on stdin does not end listen;
#  - presence: two listeners, `members` (count + me), member_added,
#    member_removed;
#  - an auth server refusing (403) => subscription_error with status 403,
#    the other channel unaffected;
#  - --signin (user-auth endpoint with the same param + header) => signed_in,
#    then an SDK sendToUser => an event line on #server-to-user-<id>.
# Ports: soketi 7250, pusherd 7251, auth servers 7260-7262.
. "$(dirname "$0")/lib.sh"
require_bins
SOKETI_PORT=7250
PUSHERD_PORT=7251
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
AUTHSRV="$PUSHER_SOURCE_DIR/tests/authserver/server.mjs"
SDK="$PUSHER_SOURCE_DIR/tests/integration/channels_sdk.mjs"
export PEERS_CLIENTS="$PEERS/clients"
MASTER="$(python3 -c 'import base64; print(base64.b64encode(bytes(range(32))).decode())')"
AJAX=http://127.0.0.1:7260
JSONP=http://127.0.0.1:7261
REFUSE=http://127.0.0.1:7262

auth_start() {   # NAME PORT ARGS...
  local name="$1" port="$2"; shift 2
  _port_free "$port" || fail "port $port is in use"
  node "$AUTHSRV" --port "$port" "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" &
  local pid=$!
  _PIDS+=("$pid")
  wait_until 15 "auth server $name listening" grep -q '^listening' "$RUN_DIR/$name.out" ||
    fail "auth server $name did not start"
  log "auth server $name on :$port (pid $pid) $*"
}
requests() { curl -fsS "http://127.0.0.1:$1/requests"; }

# listen_stdin NAME ARGS...: `pusher listen --json --stdin ARGS` reading a FIFO;
# the write end stays open in IN_FD[NAME] until stdin_close NAME.
declare -A IN_FD=()
listen_stdin() {
  local name="$1" fifo="$RUN_DIR/$1.in" fd; shift
  mkfifo "$fifo"
  "$PUSHER_BIN" listen --json --stdin "$@" <"$fifo" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" &
  local pid=$!
  _PIDS+=("$pid"); CLIENT_PID[$name]=$pid; _CLIENT_T0[$name]="$EPOCHREALTIME"
  echo "$pid $(readlink -f "$PUSHER_BIN")" >>"$RUN_DIR/.pids"
  echo "pusher listen --json --stdin $*" >"$RUN_DIR/$name.cmd"
  exec {fd}>"$fifo"
  IN_FD[$name]=$fd
  log "client $name started (pid $pid): pusher listen --json --stdin $*"
}
# listen_file NAME INPUT ARGS...: the same with stdin from INPUT (a regular
# file, or a pipe as <(...)).
listen_file() {
  local name="$1" input="$2"; shift 2
  "$PUSHER_BIN" listen --json --stdin "$@" <"$input" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" &
  local pid=$!
  _PIDS+=("$pid"); CLIENT_PID[$name]=$pid; _CLIENT_T0[$name]="$EPOCHREALTIME"
  echo "$pid $(readlink -f "$PUSHER_BIN")" >>"$RUN_DIR/.pids"
  echo "pusher listen --json --stdin $* <$input" >"$RUN_DIR/$name.cmd"
  log "client $name started (pid $pid): pusher listen --json --stdin $* <$input"
}
send() {   # NAME LINE
  printf '%s\n' "$2" >&"${IN_FD[$1]}"
}
stdin_close() {
  local fd="${IN_FD[$1]}"
  exec {fd}>&-
  unset "IN_FD[$1]"
}

# scenarios SERVER_LABEL PORT: everything above against the server on PORT.
scenarios() {
  local S="$1" PORT="$2" n
  local LIS=(--no-tls --host 127.0.0.1 --port "$PORT" --key "$APP_KEY")
  local AJ=(--auth-endpoint "$AJAX/pusher/auth" --auth-param token=abc --auth-header 'X-Token: t1')
  local JP=(--auth-endpoint "$JSONP/pusher/auth" --auth-transport jsonp --auth-param token=abc)

  # ---- private via ajax; client events from stdin
  listen_stdin "${S}_a1" "${LIS[@]}" "${AJ[@]}" private-room pub-room
  listen_start "${S}_a2" "${LIS[@]}" "${AJ[@]}" private-room
  expect_line "${S}_a1" 'd["type"]=="subscribed" and d["channel"]=="private-room"' 15 "private-room (ajax) not subscribed" >/dev/null
  expect_line "${S}_a1" 'd["type"]=="subscribed" and d["channel"]=="pub-room"' 15 "pub-room not subscribed" >/dev/null
  expect_line "${S}_a2" 'd["type"]=="subscribed" and d["channel"]=="private-room"' 15 "private-room (ajax) not subscribed" >/dev/null
  send "${S}_a1" '{"channel":"private-room","event":"client-typing","data":{"who":"a1","n":1}}'
  expect_line "${S}_a2" 'd["type"]=="event" and d["channel"]=="private-room" and d["event"]=="client-typing" and d["data"]=={"who":"a1","n":1} and "user_id" not in d' 10 \
    "client event from a1's stdin did not arrive" >/dev/null
  send "${S}_a1" '{"channel":"private-room","event":"typing","data":{}}'                 # line 2
  send "${S}_a1" '{"channel":"pub-room","event":"client-typing","data":{}}'              # line 3
  send "${S}_a1" '{"channel":"private-other","event":"client-typing"}'                   # line 4
  send "${S}_a1" '{"channel":"private-room","event":"client-x",'                         # line 5
  send "${S}_a1" ''                                                                      # line 6 (blank: skipped)
  send "${S}_a1" '{"channel":"private-room","data":1}'                                   # line 7
  send "${S}_a1" '{"channel":"private-room","event":"client-last","data":"text"}'        # line 8
  expect_line "${S}_a1" 'd["type"]=="error" and d["source"]=="stdin" and d["line"]==2 and "client-" in d["message"] and d["error"]=="PUSHER_ERR_BAD_EVENT_NAME" and d["fatal"] is False' 10 \
    "no error line for a non-client- event (line 2)" >/dev/null
  expect_line "${S}_a1" 'd["type"]=="error" and d["line"]==3 and "pub-room" in d["message"] and d["error"]=="PUSHER_ERR_UNSUPPORTED"' 10 \
    "no error line for a client event on a public channel (line 3)" >/dev/null
  expect_line "${S}_a1" 'd["type"]=="error" and d["line"]==4 and d["error"]=="PUSHER_ERR_NOT_FOUND"' 10 \
    "no error line for a channel not subscribed (line 4)" >/dev/null
  expect_line "${S}_a1" 'd["type"]=="error" and d["line"]==5 and d["message"].startswith("stdin line 5: invalid JSON")' 10 \
    "no error line for invalid JSON (line 5)" >/dev/null
  expect_line "${S}_a1" 'd["type"]=="error" and d["line"]==7 and "\"event\"" in d["message"]' 10 \
    "no error line for a line without event (line 7)" >/dev/null
  expect_line "${S}_a2" 'd["type"]=="event" and d["event"]=="client-last" and d["data"]=="text"' 10 \
    "client-last (line 8) did not arrive" >/dev/null
  n="$(count_lines "$(out "${S}_a1")" 'd["type"]=="error"')"
  [ "$n" = 5 ] || fail "${S}_a1: $n error lines, want 5 (lines 2, 3, 4, 5, 7)"
  n="$(count_lines "$(out "${S}_a2")" 'd["type"]=="event" and d["event"].startswith("client-")')"
  [ "$n" = 2 ] || fail "${S}_a2: $n client events, want 2"
  # stdin a regular file, and a pipe that ends before we are connected: the
  # lines wait for the subscriptions; the last one has no newline
  printf '%s\n\n%s' '{"channel":"private-room","event":"client-file","data":{"f":1}}' \
    '{"channel":"private-room","event":"client-file","data":{"f":2}}' >"$RUN_DIR/${S}_lines.txt"
  listen_file "${S}_f" "$RUN_DIR/${S}_lines.txt" "${LIS[@]}" "${AJ[@]}" private-room
  listen_file "${S}_q" <(printf '%s' '{"channel":"private-room","event":"client-pipe","data":"p"}') "${LIS[@]}" "${AJ[@]}" private-room
  expect_line "${S}_a2" 'd["type"]=="event" and d["event"]=="client-file" and d["data"]=={"f":2}' 10 \
    "client-file (stdin a regular file) did not arrive" >/dev/null
  expect_line "${S}_a2" 'd["type"]=="event" and d["event"]=="client-pipe" and d["data"]=="p"' 10 \
    "client-pipe (stdin a pipe closed early) did not arrive" >/dev/null
  n="$(count_lines "$(out "${S}_a2")" 'd["type"]=="event" and d["event"]=="client-file"')"
  [ "$n" = 2 ] || fail "${S}_a2: $n client-file events, want 2"
  for n in "${S}_f" "${S}_q"; do
    [ "$(count_lines "$(out "$n")" 'd["type"]=="error"')" = 0 ] || fail "$n printed an error line"
    client_stop "$n"
  done
  # EOF on stdin: a1 goes on listening
  stdin_close "${S}_a1"
  sleep 0.5
  client_alive "${S}_a1" || fail "${S}_a1 exited at EOF on stdin"
  trigger "$PORT" private-room after-eof '{"k":1}'
  expect_line "${S}_a1" 'd["type"]=="event" and d["event"]=="after-eof" and d["data"]=={"k":1}' 10 \
    "no event after EOF on stdin" >/dev/null
  client_stop "${S}_a1"
  client_stop "${S}_a2"
  requests 7260 | python3 -c '
import json, sys
r = [e for e in json.load(sys.stdin) if e["path"] == "/pusher/auth"]
assert r, "no channel auth request seen"
for e in r:
    assert e["method"] == "POST" and e["status"] == 200, e
    assert e["params"].get("token") == "abc" and e["headers"].get("x-token") == "t1", e
    assert e["params"].get("channel_name") == "private-room", e
print("ajax requests ok:", len(r))' || fail "ajax auth requests not as expected"

  # ---- presence via jsonp: two listeners see each other; client event with user_id
  listen_stdin "${S}_p1" "${LIS[@]}" "${JP[@]}" --auth-param user_id=alice --auth-param user_name=Alice presence-room
  expect_line "${S}_p1" 'd["type"]=="members" and d["channel"]=="presence-room" and d["count"]==1 and d["me"]=={"user_id":"alice","user_info":{"name":"Alice"}}' 15 \
    "no members line (count 1, me alice)" >/dev/null
  n="$(wait_for_line "$(out "${S}_p1")" 'd["type"]=="subscribed" and d["channel"]=="presence-room"' 1)" ||
    fail "${S}_p1: no subscribed line"
  [ "$(wait_for_line "$(out "${S}_p1")" 'd["type"]=="members"' 1)" -gt "$n" ] || fail "${S}_p1: members line before subscribed"
  listen_start "${S}_p2" "${LIS[@]}" "${JP[@]}" --auth-param user_id=bob presence-room
  expect_line "${S}_p2" 'd["type"]=="members" and d["count"]==2 and d["me"]["user_id"]=="bob" and d["me"]["user_info"]=={"name":"bob"}' 15 \
    "no members line (count 2, me bob)" >/dev/null
  expect_line "${S}_p1" 'd["type"]=="member_added" and d["channel"]=="presence-room" and d["user_id"]=="bob" and d["user_info"]=={"name":"bob"}' 10 \
    "no member_added for bob" >/dev/null
  send "${S}_p1" '{"channel":"presence-room","event":"client-hello","data":{"from":"alice"}}'
  expect_line "${S}_p2" 'd["type"]=="event" and d["event"]=="client-hello" and d["data"]=={"from":"alice"} and d["user_id"]=="alice"' 10 \
    "client event on presence did not arrive with user_id alice" >/dev/null
  client_stop "${S}_p2"
  expect_line "${S}_p1" 'd["type"]=="member_removed" and d["channel"]=="presence-room" and d["user_id"]=="bob" and "user_info" not in d' 15 \
    "no member_removed for bob" >/dev/null
  # 12 client events at once (stdin lines 2-13): the 11th and 12th are over
  # the 10-per-second window and each gets an error line
  sleep 1.2
  local burst="" i
  for i in $(seq 1 12); do burst+='{"channel":"presence-room","event":"client-burst","data":{"i":'"$i"'}}'$'\n'; done
  printf '%s' "$burst" >&"${IN_FD[${S}_p1]}"
  expect_line "${S}_p1" 'd["type"]=="error" and d["line"]==13 and d["error"]=="PUSHER_ERR_RATE_LIMIT"' 10 \
    "no rate-limit error line for stdin line 13" >/dev/null
  n="$(count_lines "$(out "${S}_p1")" 'd["type"]=="error" and d.get("source")=="stdin"')"
  [ "$n" = 2 ] || fail "${S}_p1: $n stdin error lines after the burst, want 2 (lines 12 and 13)"
  [ "$(count_lines "$(out "${S}_p1")" 'd["type"]=="error" and d["line"]==12 and "10 client events" in d["message"]')" = 1 ] ||
    fail "${S}_p1: no rate-limit error line for stdin line 12"
  client_stop "${S}_p1"
  requests 7261 | python3 -c '
import json, sys
r = [e for e in json.load(sys.stdin) if e["path"] == "/pusher/auth"]
assert r, "no jsonp request seen"
for e in r:
    assert e["method"] == "GET" and e["status"] == 200, e
    assert e["params"].get("callback") and e["params"].get("token") == "abc", e
print("jsonp requests ok:", len(r))' || fail "jsonp auth requests not as expected"

  # ---- refused by the auth server: subscription_error 403, pub unaffected
  listen_start "${S}_r" "${LIS[@]}" --auth-endpoint "$REFUSE/pusher/auth" private-no pub-ok
  expect_line "${S}_r" 'd["type"]=="subscription_error" and d["channel"]=="private-no" and d["status"]==403 and isinstance(d["message"], str) and d["message"]' 15 \
    "no subscription_error with status 403" >/dev/null
  expect_line "${S}_r" 'd["type"]=="subscribed" and d["channel"]=="pub-ok"' 15 "pub-ok not subscribed" >/dev/null
  trigger "$PORT" pub-ok still-ok '{}'
  expect_line "${S}_r" 'd["type"]=="event" and d["event"]=="still-ok"' 10 "pub-ok event after the refusal" >/dev/null
  client_stop "${S}_r"

  # ---- sign-in and sendToUser
  listen_start "${S}_u" "${LIS[@]}" "${AJ[@]}" --auth-param user_id="carol-$S" --user-auth-endpoint "$AJAX/pusher/user-auth" --signin pub-u
  expect_line "${S}_u" 'd["type"]=="signed_in" and d["user_id"]=="carol-'"$S"'"' 15 "no signed_in line" >/dev/null
  # sendToUser reaches only after the server saw the #server-to-user subscription: retry briefly
  local i ok=0
  for i in 1 2 3 4 5; do
    node "$SDK" "$PORT" "$MASTER" user "carol-$S" to-user "{\"n\":$i}" >"$RUN_DIR/${S}_sdk-user.log" 2>&1 ||
      fail "SDK sendToUser failed: $(cat "$RUN_DIR/${S}_sdk-user.log")"
    if wait_for_line "$(out "${S}_u")" 'd["type"]=="event" and d["channel"]=="#server-to-user-carol-'"$S"'" and d["event"]=="to-user" and isinstance(d["data"], dict)' 2 >/dev/null; then
      ok=1; break
    fi
  done
  [ "$ok" = 1 ] || fail "${S}_u: no event line on #server-to-user-carol-$S"
  client_stop "${S}_u"
  requests 7260 | python3 -c '
import json, sys
u = [e for e in json.load(sys.stdin) if e["path"] == "/pusher/user-auth"]
assert u, "no user-auth request"
for e in u:
    assert e["method"] == "POST" and e["params"].get("token") == "abc" and e["headers"].get("x-token") == "t1", e
print("user-auth requests ok:", len(u))' || fail "user-auth requests not as expected"
  log "$S: PASS"
}

# ---- --help documents the options and lines; bad values are usage errors (2)
help="$("$PUSHER_BIN" listen --help)" || fail "listen --help failed"
for w in --auth-endpoint --auth-transport --auth-param --auth-header --user-auth-endpoint \
    --signin --stdin '"type":"members"' '"type":"member_added"' '"type":"member_removed"' \
    '"type":"signed_in"' '"source":"stdin"' '#server-to-user-<id>' callback; do
  grep -qF -- "$w" <<<"$help" || fail "listen --help does not mention $w"
done
for bad in "--auth-transport xhr" "--auth-param novalue" "--auth-header nocolon"; do
  rc=0
  # shellcheck disable=SC2086
  "$PUSHER_BIN" listen --key k $bad private-x >/dev/null 2>"$RUN_DIR/usage.err" || rc=$?
  [ "$rc" = 2 ] && [ -s "$RUN_DIR/usage.err" ] || fail "listen $bad: exit $rc (want 2 with a message)"
done

auth_start ajax 7260 --require-param token=abc --require-header 'X-Token: t1'
auth_start jsonp 7261 --require-param token=abc
auth_start refuse 7262 --refuse

soketi_start "$SOKETI_PORT"
scenarios soketi "$SOKETI_PORT"

if [ -x "$PUSHERD_BIN" ]; then
  _port_free "$PUSHERD_PORT" || fail "port $PUSHERD_PORT is in use"
  "$PUSHERD_BIN" --port "$PUSHERD_PORT" >"$RUN_DIR/pusherd.stdout" 2>"$RUN_DIR/pusherd.log" &
  PUSHERD_PID=$!
  _PIDS+=("$PUSHERD_PID")
  wait_until 10 "pusherd listening on $PUSHERD_PORT" eval '! _port_free '"$PUSHERD_PORT" || fail "pusherd did not start"
  log "pusherd on :$PUSHERD_PORT (pid $PUSHERD_PID)"
  scenarios pusherd "$PUSHERD_PORT"
else
  fail "pusherd is not built ($PUSHERD_BIN)"
fi

log "PASS"
