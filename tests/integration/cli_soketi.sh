#!/usr/bin/env bash
# cli_soketi: the `pusher` CLI (listen + trigger) end to end against soketi.
#  - listen --json --count 1 + trigger '{"hello":"world"}': the event line
#    carries the parsed data, listen exits 0, trigger exits 0
#  - trigger with a wrong secret exits 1 and prints soketi's error (soketi
#    answers it with HTTP 200 + {"error":..})
#  - DATA from stdin, several channels at once, --socket-id exclusion,
#    --batch (12 JSON lines => 2 batch_events requests, non-string data)
#  - environment defaults (PUSHER_APP_KEY/HOST/PORT, PUSHER_APP_ID/SECRET)
#  - human-readable output; SIGTERM and SIGINT exit 0
#  - an unknown key: last lines are the fatal error (4001) and the state
#    into disconnected, exit 1
#  - bad usage exits 2 with a message; --help and --version exit 0
# Ports: soketi 7201, pusherd 7204 (that part runs when pusherd is built).
. "$(dirname "$0")/lib.sh"
require_bins
PORT=7201
P="$PUSHER_BIN"
TRIG=(--no-tls --host 127.0.0.1 --port "$PORT" --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET")
LIS=(--no-tls --host 127.0.0.1 --port "$PORT" --key "$APP_KEY")

# run_rc OUTFILE ERRFILE CMD...: run CMD, print its exit status (never fails)
run_rc() {
  local o="$1" e="$2" rc=0; shift 2
  "$@" >"$o" 2>"$e" || rc=$?
  echo "$rc"
}

# ------------------------------------------------------------ usage (no server needed)
usage_case() {   # DESCRIPTION ARGS...: must exit 2 with a message on stderr
  local desc="$1" rc; shift
  rc="$(run_rc "$RUN_DIR/usage.out" "$RUN_DIR/usage.err" env -u PUSHER_APP_KEY -u PUSHER_APP_ID \
    -u PUSHER_APP_SECRET -u PUSHER_HOST -u PUSHER_PORT -u PUSHER_CLUSTER "$P" "$@" </dev/null)"
  [ "$rc" = 2 ] || fail "bad usage ($desc: pusher $*) exited $rc, want 2"
  [ -s "$RUN_DIR/usage.err" ] || fail "bad usage ($desc) printed no message"
  grep -q "pusher" "$RUN_DIR/usage.err" || fail "bad usage ($desc): message does not name the program"
}
usage_case "no command"
usage_case "unknown command" frobnicate
usage_case "listen without key" listen my-channel
usage_case "listen without channel" listen --key k
usage_case "unknown option" listen --key k --bogus my-channel
usage_case "missing value" listen --key k my-channel --count
usage_case "bad count" listen --key k --count 0 my-channel
usage_case "bad duration" listen --key k --reconnect-delay soon my-channel
usage_case "negative duration" listen --key k --pong-timeout -1 my-channel
usage_case "bad port" listen --key k --port 70000 my-channel
usage_case "bad channel name" listen --key k 'no spaces'
usage_case "duplicate channel" listen --key k a a
usage_case "bad auth transport" listen --key k --auth-transport carrier-pigeon a
usage_case "bad auth param" listen --key k --auth-param novalue a
usage_case "bad auth header" listen --key k --auth-header 'no header' a
usage_case "trigger without event" trigger --app-id a --key k --secret s my-channel
usage_case "trigger without secret" trigger --app-id a --key k my-channel ev data
usage_case "trigger too many args" trigger --app-id a --key k --secret s c e d extra
usage_case "trigger bad channel" trigger --app-id a --key k --secret s 'a b' e d
usage_case "trigger bad socket id" trigger --app-id a --key k --secret s --socket-id 12 c e d
usage_case "trigger --batch with args" trigger --app-id a --key k --secret s --batch c e
grep -q "no app key" <(env -u PUSHER_APP_KEY "$P" listen x 2>&1) || fail "missing key message unclear"

rc="$(run_rc "$RUN_DIR/help.out" "$RUN_DIR/help.err" "$P" listen --help)"
[ "$rc" = 0 ] || fail "listen --help exited $rc"
for opt in --key --cluster --host --port --tls --no-tls --ca-file --insecure --reconnect-delay \
  --activity-timeout --pong-timeout --unavailable-timeout --max-reconnect-delay --json --count \
  --auth-endpoint --auth-transport --auth-param --auth-header PUSHER_APP_KEY PUSHER_HOST \
  PUSHER_PORT PUSHER_CLUSTER; do
  grep -q -- "$opt" "$RUN_DIR/help.out" || fail "listen --help does not document $opt"
done
rc="$(run_rc "$RUN_DIR/help.out" "$RUN_DIR/help.err" "$P" trigger --help)"
[ "$rc" = 0 ] || fail "trigger --help exited $rc"
for opt in --app-id --key --secret --host --port --cluster --tls --no-tls --socket-id --batch \
  PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET PUSHER_HOST PUSHER_PORT; do
  grep -q -- "$opt" "$RUN_DIR/help.out" || fail "trigger --help does not document $opt"
done
rc="$(run_rc "$RUN_DIR/help.out" "$RUN_DIR/help.err" "$P" --version)"
[ "$rc" = 0 ] && grep -q '^pusher [0-9]' "$RUN_DIR/help.out" || fail "--version failed"
rc="$(run_rc "$RUN_DIR/help.out" "$RUN_DIR/help.err" "$P" help)"
[ "$rc" = 0 ] && grep -q listen "$RUN_DIR/help.out" || fail "pusher help failed"
log "usage errors exit 2; --help, --version, help exit 0"

soketi_start "$PORT"

# ------------------------------------------------------------ the brief's scenario
listen_start once "${LIS[@]}" --count 1 my-channel
expect_line once "$(p_subscribed my-channel)" 20 "no subscribed line for my-channel" >/dev/null
rc="$(run_rc "$RUN_DIR/trigger.out" "$RUN_DIR/trigger.err" "$P" trigger "${TRIG[@]}" my-channel my-event '{"hello":"world"}')"
[ "$rc" = 0 ] || { cat "$RUN_DIR/trigger.err" >&2; fail "pusher trigger exited $rc, want 0"; }
client_wait_exit once 20
[ "$CLIENT_RC" -eq 0 ] || fail "pusher listen --count 1 exited $CLIENT_RC, want 0"
python3 - "$(out once)" <<'PY' || fail "event line check failed"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ev = [d for d in lines if d["type"] == "event"]
assert len(ev) == 1, ev
e = ev[0]
assert e["channel"] == "my-channel" and e["event"] == "my-event", e
assert e["data"] == {"hello": "world"}, e
assert isinstance(e["t"], float), e
assert "user_id" not in e, e
assert [d["current"] for d in lines if d["type"] == "state"] == ["connecting", "connected", "disconnected"], lines
PY
log "listen --count 1 received my-event {hello:world} and exited 0"

# ------------------------------------------------------------ wrong secret
rc="$(run_rc "$RUN_DIR/bad.out" "$RUN_DIR/bad.err" "$P" trigger --no-tls --host 127.0.0.1 --port "$PORT" \
  --app-id "$APP_ID" --key "$APP_KEY" --secret not-the-secret my-channel my-event '{}')"
[ "$rc" = 1 ] || fail "trigger with a wrong secret exited $rc, want 1"
grep -q '"error"' "$RUN_DIR/bad.err" || fail "trigger did not print soketi's error body: $(cat "$RUN_DIR/bad.err")"
log "wrong secret: exit 1, printed: $(cat "$RUN_DIR/bad.err")"
# Unknown app id and an unreachable server are failures (1) too.
rc="$(run_rc "$RUN_DIR/bad.out" "$RUN_DIR/bad.err" "$P" trigger --no-tls --host 127.0.0.1 --port "$PORT" \
  --app-id no-such-app --key "$APP_KEY" --secret "$APP_SECRET" my-channel my-event '{}')"
[ "$rc" = 1 ] || fail "trigger to an unknown app exited $rc, want 1"
rc="$(run_rc "$RUN_DIR/bad.out" "$RUN_DIR/bad.err" "$P" trigger --no-tls --host 127.0.0.1 --port 7299 \
  --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET" --timeout 5 my-channel my-event '{}')"
[ "$rc" = 1 ] || fail "trigger to a closed port exited $rc, want 1"

# ------------------------------------------------------------ a long-running listener
listen_start c "${LIS[@]}" ch-a ch-b
expect_line c "$(p_subscribed ch-a)" 20 "no subscribed line for ch-a" >/dev/null
expect_line c "$(p_subscribed ch-b)" 20 "no subscribed line for ch-b" >/dev/null
SID="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["type"] == "state" and d["current"] == "connected": print(d["socket_id"]); break' "$(out c)")"
[ -n "$SID" ] || fail "no socket_id in the connected state line"

# DATA from stdin (one trailing newline dropped), sent as the string it is.
printf '"from stdin"\n' | "$P" trigger "${TRIG[@]}" ch-a stdin-ev >/dev/null || fail "trigger with DATA from stdin failed"
expect_line c "$(p_event ch-a stdin-ev '"from stdin"')" 20 "stdin DATA event never arrived" >/dev/null
# Non-JSON DATA arrives as a plain string.
"$P" trigger "${TRIG[@]}" ch-a text-ev 'not json {' >/dev/null || fail "trigger of plain text failed"
expect_line c "$(p_event ch-a text-ev '"not json {"')" 20 "plain-text event never arrived" >/dev/null
# Several channels in one request.
"$P" trigger "${TRIG[@]}" ch-a,ch-b multi '{"n":2}' >/dev/null || fail "multi-channel trigger failed"
expect_line c "$(p_event ch-a multi '{"n":2}')" 20 "multi on ch-a never arrived" >/dev/null
expect_line c "$(p_event ch-b multi '{"n":2}')" 20 "multi on ch-b never arrived" >/dev/null
# --socket-id excludes this listener; the marker after it is received.
"$P" trigger "${TRIG[@]}" --socket-id "$SID" ch-a excluded '{}' >/dev/null || fail "trigger --socket-id failed"
"$P" trigger "${TRIG[@]}" ch-a marker '{}' >/dev/null || fail "marker trigger failed"
expect_line c "$(p_event ch-a marker '{}')" 20 "marker event never arrived" >/dev/null
[ "$(count_lines "$(out c)" 'd["type"]=="event" and d["event"]=="excluded"')" = 0 ] ||
  fail "--socket-id $SID did not exclude the listener"
log "stdin DATA, plain text, two channels, --socket-id exclusion: ok"

# --batch: 12 events => two batch_events requests (10 + 2).
python3 - >"$RUN_DIR/batch.jsonl" <<'PY'
import json
for i in range(12):
    ch = "ch-a" if i % 2 == 0 else "ch-b"
    data = json.dumps({"i": i}) if i % 3 else {"i": i, "obj": True}
    print(json.dumps({"channel": ch, "name": "batch-ev", "data": data}))
    if i == 5: print("")          # blank lines are skipped
PY
"$P" trigger "${TRIG[@]}" --batch <"$RUN_DIR/batch.jsonl" >"$RUN_DIR/batch.out" 2>"$RUN_DIR/batch.err" ||
  fail "trigger --batch failed: $(cat "$RUN_DIR/batch.err")"
[ "$(wc -l <"$RUN_DIR/batch.out")" = 2 ] || fail "--batch of 12 events made $(wc -l <"$RUN_DIR/batch.out") requests, want 2"
wait_for_line "$(out c)" 'd["type"]=="event" and d["event"]=="batch-ev" and d["data"]["i"]==11' 20 0 "${CLIENT_PID[c]}" >/dev/null ||
  fail "the last batch event never arrived"
python3 - "$(out c)" <<'PY' || fail "batch events check failed"
import json, sys
got = sorted(d["data"]["i"] for d in map(json.loads, open(sys.argv[1])) if d["type"] == "event" and d["event"] == "batch-ev")
assert got == list(range(12)), got
objs = [d for d in map(json.loads, open(sys.argv[1])) if d["type"] == "event" and d["event"] == "batch-ev" and d["data"].get("obj")]
assert len(objs) == 4, objs
PY
# A bad line fails before anything is sent.
printf '{"channel":"ch-a","name":"never","data":"x"}\n{"channel":"ch-a"}\n' |
  "$P" trigger "${TRIG[@]}" --batch >/dev/null 2>"$RUN_DIR/batch.err" && fail "--batch with a bad line succeeded"
grep -q "line 2" "$RUN_DIR/batch.err" || fail "--batch error does not name the line: $(cat "$RUN_DIR/batch.err")"
log "--batch: 12 events in 2 requests, all received; bad line refused"

# Environment defaults.
PUSHER_APP_ID="$APP_ID" PUSHER_APP_KEY="$APP_KEY" PUSHER_APP_SECRET="$APP_SECRET" PUSHER_HOST=127.0.0.1 \
  PUSHER_PORT="$PORT" "$P" trigger --no-tls ch-b env-ev '{"env":1}' >/dev/null || fail "trigger from the environment failed"
expect_line c "$(p_event ch-b env-ev '{"env":1}')" 20 "env-configured trigger never arrived" >/dev/null
PUSHER_APP_KEY="$APP_KEY" PUSHER_HOST=127.0.0.1 PUSHER_PORT="$PORT" \
  "$P" listen --json --no-tls --count 1 env-ch >"$RUN_DIR/env.out" 2>"$RUN_DIR/env.err" &
EPID=$!; _PIDS+=("$EPID")
wait_for_line "$RUN_DIR/env.out" "$(p_subscribed env-ch)" 20 0 "$EPID" >/dev/null || fail "env-configured listen never subscribed"
"$P" trigger "${TRIG[@]}" env-ch hi '[1,2]' >/dev/null || fail "trigger to env-ch failed"
rc=0; wait "$EPID" || rc=$?
[ "$rc" = 0 ] || fail "env-configured listen --count 1 exited $rc"
[ "$(count_lines "$RUN_DIR/env.out" 'd["type"]=="event" and d["data"]==[1,2]')" = 1 ] || fail "env listen missed its event"
log "environment defaults: ok"

client_stop c
log "SIGTERM: exit 0"

# ------------------------------------------------------------ human-readable output, SIGINT
"$P" listen "${LIS[@]}" human-ch >"$RUN_DIR/human.out" 2>"$RUN_DIR/human.err" &
HPID=$!; _PIDS+=("$HPID")
wait_until 20 "human listener subscribed" grep -q "subscribed: human-ch" "$RUN_DIR/human.out" ||
  fail "human-readable listener never printed 'subscribed: human-ch'"
"$P" trigger "${TRIG[@]}" human-ch greet 'hello there' >/dev/null || fail "trigger to human-ch failed"
wait_until 20 "human listener event" grep -q "event human-ch greet: hello there" "$RUN_DIR/human.out" ||
  fail "human-readable listener did not print the event"
grep -q "connected (socket_id [0-9]*\.[0-9]*)" "$RUN_DIR/human.out" || fail "human output lacks the socket_id"
kill -INT "$HPID"
rc=0; wait "$HPID" || rc=$?
[ "$rc" = 0 ] || fail "SIGINT: listen exited $rc, want 0"
grep -q "connected -> disconnected" "$RUN_DIR/human.out" || fail "no disconnected line after SIGINT"
log "human-readable output and SIGINT: ok"

# stdout closed by the reader (`| head -1`): listen notices at its next line and exits 0.
set +o pipefail
prc="$(timeout "$(scaled 20)" "$P" listen --json "${LIS[@]}" pipe-ch 2>"$RUN_DIR/pipe.err" | head -1 >/dev/null; echo "${PIPESTATUS[0]}")"
set -o pipefail
[ "$prc" = 0 ] || fail "listen | head -1 exited $prc, want 0 (124 = did not notice the closed pipe)"
log "closed stdout: exit 0"

# ------------------------------------------------------------ fatal error
listen_start bad --no-tls --host 127.0.0.1 --port "$PORT" --key no-such-key my-channel
client_wait_exit bad 20
[ "$CLIENT_RC" -eq 1 ] || fail "unknown key: listen exited $CLIENT_RC, want 1"
python3 - "$(out bad)" <<'PY' || fail "fatal error lines check failed"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
err, st = lines[-2], lines[-1]
assert err["type"] == "error" and err["code"] == 4001 and err["fatal"] is True and err["message"], err
assert st["type"] == "state" and st["current"] == "disconnected", st
PY
log "unknown key: error 4001 fatal, state -> disconnected, exit 1"

# ------------------------------------------------------------ the same CLI against pusherd
# (`pusher trigger` works against pusherd, soketi and the hosted
# service).  pusherd answers REST errors with real statuses.
PD_BIN="$PUSHER_BUILD_DIR/pusherd"
PDPORT=7204
if [ -x "$PD_BIN" ]; then
  _port_free "$PDPORT" || fail "port $PDPORT is in use"
  "$PD_BIN" --port "$PDPORT" --log-level warn >"$RUN_DIR/pusherd.out" 2>"$RUN_DIR/pusherd.err" &
  PDPID=$!; _PIDS+=("$PDPID")
  wait_until 10 "pusherd on :$PDPORT" eval '! _port_free '"$PDPORT" || fail "pusherd did not start"
  PT=(--no-tls --host 127.0.0.1 --port "$PDPORT" --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET")
  listen_start pd --no-tls --host 127.0.0.1 --port "$PDPORT" --key "$APP_KEY" --count 2 pd-channel
  expect_line pd "$(p_subscribed pd-channel)" 20 "no subscribed line from pusherd" >/dev/null
  "$P" trigger "${PT[@]}" pd-channel one '{"n":1}' >/dev/null || fail "trigger to pusherd failed"
  printf '{"channel":"pd-channel","name":"two","data":{"n":2}}\n' | "$P" trigger "${PT[@]}" --batch >/dev/null ||
    fail "trigger --batch to pusherd failed"
  client_wait_exit pd 20
  [ "$CLIENT_RC" -eq 0 ] || fail "listen --count 2 against pusherd exited $CLIENT_RC"
  expect_line pd "$(p_event pd-channel one '{"n":1}')" 1 "event one missing (pusherd)" >/dev/null
  expect_line pd "$(p_event pd-channel two '{"n":2}')" 1 "event two missing (pusherd)" >/dev/null
  rc="$(run_rc "$RUN_DIR/bad.out" "$RUN_DIR/bad.err" "$P" trigger "${PT[@]}" --secret wrong pd-channel x '{}')"
  [ "$rc" = 1 ] && grep -q "HTTP 401" "$RUN_DIR/bad.err" || fail "wrong secret against pusherd: rc $rc, $(cat "$RUN_DIR/bad.err")"
  grep -q "Invalid signature" "$RUN_DIR/bad.err" || fail "pusherd's error body not printed: $(cat "$RUN_DIR/bad.err")"
  head -c 20000 /dev/zero | tr '\0' a >"$RUN_DIR/big.txt"
  rc="$(run_rc "$RUN_DIR/bad.out" "$RUN_DIR/bad.err" "$P" trigger "${PT[@]}" pd-channel big <"$RUN_DIR/big.txt")"
  [ "$rc" = 1 ] && grep -q "HTTP 413" "$RUN_DIR/bad.err" || fail "oversize data against pusherd: rc $rc, $(cat "$RUN_DIR/bad.err")"
  log "pusherd: listen --count 2 + trigger + --batch ok; wrong secret => 401, 20 KB data => 413, exit 1"
else
  log "pusherd not built: skipping the pusherd part"
fi

log "PASS"
