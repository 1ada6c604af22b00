#!/usr/bin/env bash
# pusherd_timeouts: activity timeout (pusher:ping, close 4201 without a
# pong), --config FILE with two apps (disabled app 4003, per-app
# activity_timeout, client events off), and clear config errors (file, line,
# what is wrong; exit status 2), the per-connection output queue cap (a
# client that stops reading is closed with 4100).
# Ports: pusherd 7420 (--activity-timeout 1 --pong-timeout 2), 7421 (--config).
. "$(dirname "$0")/lib.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found"

start() {   # NAME PORT ARGS...
  local name="$1" port="$2"; shift 2
  _port_free "$port" || fail "port $port is in use"
  "$PUSHERD_BIN" --port "$port" "$@" >"$RUN_DIR/$name.stdout" 2>"$RUN_DIR/$name.log" &
  _PIDS+=("$!")
  wait_until 10 "pusherd $name on :$port" eval '! _port_free '"$port" || fail "pusherd $name did not start"
  log "pusherd $name on :$port (pid $!) $*"
}

cat >"$RUN_DIR/apps.json" <<'JSON'
{
  "log_level": "debug",
  "max_output_queue_bytes": 262144,
  "apps": [
    {"id": "one", "key": "key-one", "secret": "secret-one", "activity_timeout": 42},
    {"id": "two", "key": "key-disabled", "secret": "secret-two", "enabled": false}
  ]
}
JSON
start ping 7420 --activity-timeout 1 --pong-timeout 2
start conf 7421 --config "$RUN_DIR/apps.json"
PEERS_CLIENTS="$PEERS/clients" node "$(dirname "$0")/pusherd/timeouts.cjs" 7420 7421 >"$RUN_DIR/timeouts.out" 2>&1 ||
  { cat "$RUN_DIR/timeouts.out"; fail "timeouts.cjs checks failed"; }
cat "$RUN_DIR/timeouts.out"

# Config errors: syntax (with line), unknown setting, missing secret.
printf '{\n  "apps": [\n    {"id": "a" "key": "k"}\n  ]\n}\n' >"$RUN_DIR/bad1.json"
printf '{"apps": [{"id": "a", "key": "k", "secret": "s", "colour": 1}]}\n' >"$RUN_DIR/bad2.json"
printf '{"apps": [{"id": "a", "key": "k"}]}\n' >"$RUN_DIR/bad3.json"
check_bad() {   # FILE EXPECTED-REGEX
  local rc=0 msg
  msg="$("$PUSHERD_BIN" --port 7422 --config "$1" 2>&1)" || rc=$?
  [ "$rc" -eq 2 ] || fail "bad config $1: exit status $rc (want 2); output: $msg"
  printf '%s\n' "$msg" | grep -Eq "$2" || fail "bad config $1: message '$msg' does not match /$2/"
  log "bad config rejected: $msg"
}
check_bad "$RUN_DIR/bad1.json" "bad1\.json:3:[0-9]+: "
check_bad "$RUN_DIR/bad2.json" 'apps\[0\]: unknown setting "colour"'
check_bad "$RUN_DIR/bad3.json" 'apps\[0\]\.secret: missing'
log "PASS"
