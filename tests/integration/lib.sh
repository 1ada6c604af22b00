# Shared helpers for the integration tests (tests/integration/<name>.sh).
# Source it first:   . "$(dirname "$0")/lib.sh"
#
# CTest runs each script with PUSHER_BUILD_DIR and PUSHER_SOURCE_DIR set.  By
# hand:  PUSHER_BUILD_DIR=build PUSHER_SOURCE_DIR=. bash tests/integration/X.sh
#
# Every wait is a poll for a condition with a deadline; deadlines are scaled
# by PUSHER_TEST_TIMEOUT_MULTIPLIER (default 1; e.g. 3 under sanitizers or on
# a loaded machine).  Everything a test starts (soketi, faultproxy, clients)
# is recorded and stopped by the EXIT trap, by PID; nothing else is touched.
# Each test writes its files into $RUN_DIR ($PUSHER_BUILD_DIR/tests/
# integration-run/<name>/); on failure the relevant logs are printed.
#
# Main helpers:
#   soketi_start PORT [VAR=VAL...]   (or SOKETI_X=.. soketi_start PORT)
#   soketi_kill PORT                 kill -9, wait until gone
#   soketi_term PORT                 SIGTERM, return at once (pid in $SOKETI_TERM_PID)
#   soketi_wait_gone PORT TIMEOUT    wait until a SIGTERMed soketi has exited
#   proxy_start NAME LISTEN UPSTREAM CONTROL [--frames]; proxy_cmd CONTROL CMD
#   listen_start NAME ARGS...        `pusher listen --json ARGS` in background,
#                                    stdout in $(out NAME), stderr in $RUN_DIR/NAME.err
#   wait_for_line FILE PRED TIMEOUT [FROM [PID]]   PRED is a python expression
#                                    over d (the parsed JSON line) and line (text);
#                                    prints the 1-based number of the first
#                                    matching line after line FROM
#   expect_line NAME PRED TIMEOUT DESC [FROM]   same on client NAME, fail() if not
#   count_lines FILE PRED [FROM]     number of matching lines
#   trigger PORT CHANNEL EVENT JSON  REST trigger through the official pusher SDK
#   client_stop NAME                 SIGTERM, expect exit status 0
#   client_wait_exit NAME TIMEOUT    wait until it exits; status in $CLIENT_RC
#   print_timeline NAME              the client's JSON lines as a readable timeline
#   client_t NAME                    seconds since NAME started (to place test
#                                    actions on the client's "t" axis)
#   fail MSG                         print MSG and the logs, exit 1

set -euo pipefail

: "${PUSHER_BUILD_DIR:?PUSHER_BUILD_DIR must name the build directory}"
: "${PUSHER_SOURCE_DIR:?PUSHER_SOURCE_DIR must name the source directory}"
PUSHER_BUILD_DIR="$(cd "$PUSHER_BUILD_DIR" && pwd)"
PUSHER_SOURCE_DIR="$(cd "$PUSHER_SOURCE_DIR" && pwd)"

TEST_NAME="$(basename "$0" .sh)"
RUN_DIR="$PUSHER_BUILD_DIR/tests/integration-run/$TEST_NAME"
PEERS="$PUSHER_SOURCE_DIR/tests/peers"
PUSHER_BIN="$PUSHER_BUILD_DIR/pusher"
FAULTPROXY_BIN="$PUSHER_BUILD_DIR/tests/faultproxy"
MULT="${PUSHER_TEST_TIMEOUT_MULTIPLIER:-1}"
APP_ID=app-id APP_KEY=app-key APP_SECRET=app-secret

# soketi-up.sh/soketi-down.sh keep their pidfiles and logs next to
# themselves (run/); each test calls them through symlinks in its own
# $RUN_DIR/peers/, so every test (and every build directory) has its own
# pidfiles and two checkouts or builds running tests never share them.
# A soketi left behind by an interrupted earlier run of this test (its
# pidfile names a live soketi) is stopped first.
if [ -d "$RUN_DIR/peers/run" ]; then
  for _pf in "$RUN_DIR"/peers/run/soketi-*.pid; do
    [ -f "$_pf" ] || continue
    _p="${_pf##*/soketi-}"; _p="${_p%.pid}"
    echo "note: stopping soketi left by an earlier run on port $_p (pid $(cat "$_pf"))" >&2
    "$RUN_DIR/peers/soketi-down.sh" "$_p" --kill >&2 || true
  done
fi
# Likewise clients and proxies an interrupted earlier run left behind: their
# PIDs are in $RUN_DIR/.pids with their executable, checked before signalling.
if [ -f "$RUN_DIR/.pids" ]; then
  while read -r _p _exe; do
    if [ "$(readlink "/proc/$_p/exe" 2>/dev/null)" = "$_exe" ]; then
      echo "note: stopping $_exe (pid $_p) left by an earlier run" >&2
      kill -KILL "$_p" 2>/dev/null || true
    fi
  done <"$RUN_DIR/.pids"
fi
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/peers"
ln -s "$PEERS/soketi-up.sh" "$PEERS/soketi-down.sh" "$PEERS/soketi" "$RUN_DIR/peers/"
SOKETI_SCRIPTS="$RUN_DIR/peers"

declare -a _PIDS=()              # every background PID this test started
declare -a _SOKETI_PORTS=()      # ports of soketis this test started
declare -A CLIENT_PID=()
declare -A _CLIENT_T0=()
declare -A _PROXY_PID=()
_T0="$EPOCHREALTIME"
_FAILED=0

elapsed() { awk -v a="$_T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
log() { printf '[%s +%ss] %s\n' "$TEST_NAME" "$(elapsed)" "$*"; }
# scaled SECONDS: SECONDS * PUSHER_TEST_TIMEOUT_MULTIPLIER
scaled() { awk -v a="$1" -v m="$MULT" 'BEGIN { printf "%g", a * m }'; }
out() { printf '%s/%s.out' "$RUN_DIR" "$1"; }

dump_logs() {
  local f
  echo "======== logs of $TEST_NAME (run dir $RUN_DIR)"
  for p in "${_SOKETI_PORTS[@]}"; do _soketi_save_log "$p"; done
  for f in "$RUN_DIR"/*; do
    [ -f "$f" ] || continue
    echo "-------- $f (last 60 lines)"
    tail -n 60 "$f" || true
  done
  echo "======== end of logs"
}

fail() {
  _FAILED=1
  : >"$RUN_DIR/.failed"   # also seen by the parent when fail() runs in $(...)
  echo "FAIL [$TEST_NAME +$(elapsed)s]: $*" >&2
  dump_logs >&2
  exit 1
}

require_bins() {
  [ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
  [ -x "$FAULTPROXY_BIN" ] || fail "the fault proxy $FAULTPROXY_BIN is not built"
  command -v python3 >/dev/null || fail "python3 not found (scripts/install-deps.sh)"
  command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
  [ -f "$PEERS/soketi/node_modules/@soketi/soketi/bin/server.js" ] ||
    fail "soketi not installed: run scripts/install-deps.sh (or tests/peers/setup.sh)"
  [ -d "$PEERS/clients/node_modules/pusher" ] ||
    fail "pusher SDK not installed: run scripts/install-deps.sh (or tests/peers/setup.sh)"
}

_alive() {   # PID is running (not a zombie)
  local st
  [ -r "/proc/$1/stat" ] || return 1
  st="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_until TIMEOUT DESCRIPTION CMD...: poll CMD every 0.1 s until it
# succeeds; returns 1 after TIMEOUT (scaled) seconds.
wait_until() {
  local timeout desc deadline
  timeout="$(scaled "$1")"; desc="$2"; shift 2
  deadline="$(awk -v a="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { printf "%.3f", a + t }')"
  while ! "$@"; do
    if awk -v a="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(a > d) }'; then
      echo "timed out after ${timeout}s waiting for: $desc" >&2
      return 1
    fi
    sleep 0.1
  done
}

_kill_pid() {   # SIGTERM, then SIGKILL after 5 s; only PIDs we started
  local pid="$1" i
  _alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do _alive "$pid" || break; sleep 0.1; done
  _alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

_cleanup() {
  local rc=$? pid p
  trap - EXIT
  [ -e "$RUN_DIR/.failed" ] && _FAILED=1
  if [ "$rc" -ne 0 ] && [ "$_FAILED" -eq 0 ]; then
    echo "FAIL [$TEST_NAME]: exited with status $rc${_ERR_AT:+ after a failed command at $_ERR_AT}" >&2
    dump_logs >&2
  fi
  # The fault proxies must exit 0 on SIGTERM (under ASan: no leak, no error).
  local name prc
  for name in "${!_PROXY_PID[@]}"; do
    pid="${_PROXY_PID[$name]}"
    if _alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_until 10 "faultproxy $name to exit" eval '! _alive '"$pid" >/dev/null 2>&1 || true
    fi
    prc=0; wait "$pid" 2>/dev/null || prc=$?
    if [ "$prc" -ne 0 ] && [ "$prc" -ne 127 ]; then
      echo "FAIL [$TEST_NAME]: faultproxy $name exited with status $prc; its log:" >&2
      tail -n 40 "$RUN_DIR/$name.log" >&2 || true
      [ "$rc" -ne 0 ] || rc=1
    fi
  done
  for pid in "${_PIDS[@]}"; do _kill_pid "$pid"; done
  for p in "${_SOKETI_PORTS[@]}"; do
    _soketi_save_log "$p"
    "$SOKETI_SCRIPTS/soketi-down.sh" "$p" --kill >/dev/null 2>&1 || true
  done
  exit "$rc"
}
set -E
_ERR_AT=""
trap '_ERR_AT="${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ------------------------------------------------------------------ soketi

_soketi_pidfile() { printf '%s/run/soketi-%s.pid' "$SOKETI_SCRIPTS" "$1"; }
_soketi_logfile() { printf '%s/run/soketi-%s.log' "$SOKETI_SCRIPTS" "$1"; }

# Append soketi's current log to $RUN_DIR/soketi-PORT.log (soketi-up.sh
# truncates its log at every start; we keep every run's).
declare -A _SOKETI_LOG_SAVED=()
_soketi_save_log() {
  local port="$1" lf; lf="$(_soketi_logfile "$port")"
  [ -f "$lf" ] || return 0
  local sig; sig="$(stat -c '%i-%s-%Y' "$lf")"
  [ "${_SOKETI_LOG_SAVED[$port]:-}" = "$sig" ] && return 0
  { echo "---- soketi log snapshot at +$(elapsed)s"; cat "$lf"; } >>"$RUN_DIR/soketi-$port.log"
  _SOKETI_LOG_SAVED[$port]="$sig"
}

_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

soketi_start() {
  local port="$1"; shift
  local pf; pf="$(_soketi_pidfile "$port")"
  _port_free "$port" || fail "port $port is in use by another program (is this test running elsewhere at the same time?)"
  local o
  if ! o="$(env "$@" "$SOKETI_SCRIPTS/soketi-up.sh" "$port" 2>&1)"; then
    echo "$o" >&2
    fail "soketi did not start on port $port"
  fi
  _SOKETI_PORTS+=("$port")
  _SOKETI_LOG_SAVED[$port]=""
  log "soketi started on :$port (pid $(cat "$pf"))${*:+ with $*}"
}

soketi_pid() { cat "$(_soketi_pidfile "$1")"; }

soketi_kill() {   # kill -9 and wait until it is gone
  local port="$1"
  _soketi_save_log "$port"
  "$SOKETI_SCRIPTS/soketi-down.sh" "$port" --kill >/dev/null || fail "soketi-down.sh $port --kill failed"
  wait_until 10 "port $port closed after kill -9" _port_free "$port" || fail "port $port still open"
  log "soketi on :$port killed (SIGKILL)"
}

soketi_term() {   # SIGTERM, return at once; soketi answers 4200 for ~3 s, then exits
  local port="$1"
  SOKETI_TERM_PID="$(soketi_pid "$port")"
  kill -TERM "$SOKETI_TERM_PID" || fail "cannot signal soketi pid $SOKETI_TERM_PID"
  log "soketi on :$port sent SIGTERM (pid $SOKETI_TERM_PID)"
}

soketi_wait_gone() {   # after soketi_term: wait for its exit, then remove the pidfile
  local port="$1" timeout="$2" pid
  pid="$(soketi_pid "$port")"
  wait_until "$timeout" "soketi pid $pid to exit" eval '! _alive '"$pid" ||
    fail "soketi on :$port did not exit after SIGTERM"
  _soketi_save_log "$port"
  "$SOKETI_SCRIPTS/soketi-down.sh" "$port" >/dev/null   # pidfile cleanup (process is gone)
  log "soketi on :$port has exited"
}

# ------------------------------------------------------------------ fault proxy

proxy_start() {   # NAME LISTEN_PORT UPSTREAM_PORT CONTROL_PORT [extra faultproxy args]
  local name="$1" lport="$2" uport="$3" cport="$4"; shift 4
  _port_free "$lport" || fail "port $lport is in use"
  _port_free "$cport" || fail "port $cport is in use"
  "$FAULTPROXY_BIN" --listen "$lport" --upstream "127.0.0.1:$uport" --control "$cport" \
    --log "$RUN_DIR/$name.log" "$@" 2>>"$RUN_DIR/$name.log" &
  local pid=$!
  _PIDS+=("$pid"); _PROXY_PID[$name]=$pid
  echo "$pid $(readlink -f "$FAULTPROXY_BIN")" >>"$RUN_DIR/.pids"
  wait_until 10 "faultproxy $name control port $cport" _proxy_ready "$cport" "$pid" ||
    fail "faultproxy $name did not start"
  log "faultproxy $name :$lport -> :$uport (control :$cport, pid $pid)"
}
_proxy_ready() { _alive "$2" || return 1; ! _port_free "$1"; }

# proxy_cmd CONTROL_PORT COMMAND: prints the reply; fails unless it is "ok ..."
proxy_cmd() {
  local cport="$1" cmd="$2" fd reply=""
  exec {fd}<>"/dev/tcp/127.0.0.1/$cport" || fail "cannot reach faultproxy control :$cport"
  printf '%s\n' "$cmd" >&"$fd"
  read -r -t "$(scaled 10)" reply <&"$fd" || true
  exec {fd}>&-
  case "$reply" in ok*) printf '%s\n' "$reply" ;; *) fail "faultproxy :$cport '$cmd' answered '$reply'" ;; esac
}

# proxy_stat CONTROL_PORT KEY: one number from `stats` (accepted, active, ...)
proxy_stat() {
  proxy_cmd "$1" stats | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# ------------------------------------------------------------------ clients

listen_start() {   # NAME ARGS...: pusher listen --json ARGS, in the background
  local name="$1"; shift
  "$PUSHER_BIN" listen --json "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" &
  local pid=$!
  _PIDS+=("$pid"); CLIENT_PID[$name]=$pid; _CLIENT_T0[$name]="$EPOCHREALTIME"
  echo "$pid $(readlink -f "$PUSHER_BIN")" >>"$RUN_DIR/.pids"
  echo "pusher listen --json $*" >"$RUN_DIR/$name.cmd"
  log "client $name started (pid $pid): pusher listen --json $*"
}

client_stop() {   # SIGTERM; the CLI must disconnect cleanly and exit 0
  local name="$1" pid="${CLIENT_PID[$1]}"
  _alive "$pid" || { wait "$pid" 2>/dev/null && CLIENT_RC=0 || CLIENT_RC=$?; fail "client $name exited early (status $CLIENT_RC)"; }
  kill -TERM "$pid"
  client_wait_exit "$name" 15
  [ "$CLIENT_RC" -eq 0 ] || fail "client $name exited with status $CLIENT_RC after SIGTERM (want 0)"
  log "client $name stopped (SIGTERM, exit 0)"
}

client_wait_exit() {   # NAME TIMEOUT: wait for exit; status in CLIENT_RC
  local name="$1" pid="${CLIENT_PID[$1]}"
  wait_until "$2" "client $name (pid $pid) to exit" eval '! _alive '"$pid" ||
    fail "client $name did not exit"
  CLIENT_RC=0
  wait "$pid" 2>/dev/null || CLIENT_RC=$?
}

# client_t NAME: seconds since client NAME was started (close to its own "t").
client_t() { awk -v a="${_CLIENT_T0[$1]}" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

client_alive() { _alive "${CLIENT_PID[$1]}"; }

# wait_for_line FILE PRED TIMEOUT [FROM [PID]]: wait for a JSON line after line
# FROM (default 0) for which the python expression PRED is true (d = parsed
# object, line = raw text).  Prints the matching line's number.  Gives up
# early if PID is given and that process has exited.
wait_for_line() {
  python3 - "$1" "$2" "$(scaled "$3")" "${4:-0}" "${5:-0}" <<'PY'
import json, os, sys, time
path, pred, timeout, start, pid = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
code = compile(pred, "<predicate>", "eval")
def alive(p):
    try:
        with open("/proc/%d/stat" % p) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
deadline = time.monotonic() + timeout
seen = 0
while True:
    exited = pid and not alive(pid)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        lines = []
    complete = lines[:-1]            # the last element is a partial line (or "")
    for n in range(max(start, seen), len(complete)):
        line = complete[n]
        try:
            d = json.loads(line)
        except ValueError:
            d = None
        try:
            ok = eval(code, {"json": json}, {"d": d, "line": line})
        except Exception:
            ok = False
        if ok:
            print(n + 1)
            sys.exit(0)
    seen = len(complete)
    if exited:
        sys.stderr.write("process %d exited before a line matching: %s\n" % (pid, pred))
        sys.exit(1)
    if time.monotonic() > deadline:
        sys.stderr.write("timed out after %gs waiting in %s for: %s\n" % (timeout, path, pred))
        sys.exit(1)
    time.sleep(0.05)
PY
}

# expect_line NAME PRED TIMEOUT DESCRIPTION [FROM]: wait_for_line on client
# NAME's output; prints the line number; fail() with DESCRIPTION otherwise.
expect_line() {
  local n
  n="$(wait_for_line "$(out "$1")" "$2" "$3" "${5:-0}" "${CLIENT_PID[$1]}")" ||
    fail "client $1: $4"
  printf '%s\n' "$n"
}

# count_lines FILE PRED [FROM]: how many lines after line FROM match PRED.
count_lines() {
  python3 - "$1" "$2" "${3:-0}" <<'PY'
import json, sys
path, pred, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
code = compile(pred, "<predicate>", "eval")
n = 0
try:
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")[:-1]
except OSError:
    lines = []
for line in lines[start:]:
    try:
        d = json.loads(line)
    except ValueError:
        d = None
    try:
        n += 1 if eval(code, {"json": json}, {"d": d, "line": line}) else 0
    except Exception:
        pass
print(n)
PY
}

line_count() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

# trigger PORT CHANNEL EVENT DATA_JSON: POST /apps/app-id/events through the
# official `pusher` Node SDK.  soketi reports REST errors with HTTP 200 and an
# "error" member, so the body is checked too.
trigger() {
  local o
  if ! o="$(PEERS_CLIENTS="$PEERS/clients" node - "$@" <<'JS' 2>&1
const Pusher = require(process.env.PEERS_CLIENTS + "/node_modules/pusher");
const [port, channel, event, data] = process.argv.slice(2);
const p = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret",
  host: "127.0.0.1", port: String(port), useTLS: false });
p.trigger(channel, event, JSON.parse(data)).then(async (r) => {
  const body = await r.text();
  if (r.status !== 200 || /"error"/.test(body)) {
    console.error(`HTTP ${r.status}: ${body}`); process.exit(1);
  }
  console.log(`HTTP ${r.status} ${body}`);
}).catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
JS
)"; then
    echo "$o" >&2
    fail "REST trigger of $3 on $2 via :$1 failed"
  fi
  log "triggered $3 on $2 via REST :$1 ($o)"
}

# print_timeline NAME: the client's output as a timeline (for the test log and
# the issue notes).
print_timeline() {
  echo "---- timeline of client $1 (t = seconds since the client started)"
  python3 - "$(out "$1")" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    try:
        d = json.loads(line)
    except ValueError:
        print("   (not JSON) %s" % line); continue
    t = d.get("t"); ty = d.get("type")
    if ty == "state":
        s = "state %s -> %s" % (d.get("previous"), d.get("current"))
        if d.get("socket_id"): s += " (socket_id %s)" % d["socket_id"]
    elif ty == "connecting_in":
        s = "connecting_in %s s" % d.get("delay")
    elif ty == "error":
        s = "error code=%s fatal=%s %s" % (json.dumps(d.get("code")), json.dumps(d.get("fatal")), d.get("message"))
    elif ty == "event":
        s = "event %s on %s data=%s" % (d.get("event"), d.get("channel"), json.dumps(d.get("data")))
    elif ty in ("subscribed", "subscription_error"):
        s = "%s %s %s" % (ty, d.get("channel"), d.get("message") or "")
    else:
        s = line
    print("  t=%8.3f  %s" % (t if isinstance(t, (int, float)) else float("nan"), s))
PY
  echo "---- end of timeline"
}

# state_sequence NAME [FROM]: the "current" states, space separated.
state_sequence() {
  python3 - "$(out "$1")" "${2:-0}" <<'PY'
import json, sys
seq = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace").read().split("\n")[int(sys.argv[2]):]:
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("type") == "state":
        if not seq: seq.append(d.get("previous"))
        seq.append(d.get("current"))
print(" ".join(str(s) for s in seq))
PY
}

# The JSON predicates tests use most.
P_CONNECTED='d and d.get("type")=="state" and d.get("current")=="connected"'
P_CONNECTING='d and d.get("type")=="state" and d.get("current")=="connecting"'
p_subscribed() { printf 'd and d.get("type")=="subscribed" and d.get("channel")==%s' "$(py_str "$1")"; }
p_event() {   # CHANNEL EVENT DATA_JSON
  printf 'd and d.get("type")=="event" and d.get("channel")==%s and d.get("event")==%s and d.get("data")==json.loads(%s)' \
    "$(py_str "$1")" "$(py_str "$2")" "$(py_str "$3")"
}
py_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# ------------------------------------------------------------------ self-test
# CTest globs tests/integration/*.sh, so it also runs this file directly.
# Then it tests the harness's own tool: the fault proxy's modes (pass,
# blackhole and release, refuse, reset, stats) and its client-frame decoding,
# against a local TCP echo server, without soketi.  Ports 7390-7392.
_selftest() {
  [ -x "$FAULTPROXY_BIN" ] || fail "the fault proxy $FAULTPROXY_BIN is not built"
  python3 - 7390 >"$RUN_DIR/echo.log" 2>&1 <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
def echo(c):
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            c.sendall(b)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
PY
  _PIDS+=("$!")
  wait_until 10 "echo server on 7390" eval '! _port_free 7390' || fail "echo server did not start"
  proxy_start px 7391 7390 7392 --frames
  python3 - 7391 7392 "$(scaled 5)" <<'PY' || fail "fault proxy self-test failed"
import os, socket, struct, sys
port, ctl, T = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def cmd(c):
    k = socket.create_connection(("127.0.0.1", ctl), timeout=T)
    k.sendall((c + "\n").encode()); r = k.makefile().readline().strip(); k.close()
    assert r.startswith("ok"), (c, r)
    return r
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=T)
def expect(s, data):
    s.settimeout(T); got = b""
    while len(got) < len(data):
        b = s.recv(65536)
        assert b, "EOF while waiting for %r (got %r)" % (data, got)
        got += b
    assert got == data, (got, data)
def silent(s, secs):
    s.settimeout(secs)
    try:
        b = s.recv(65536)
        raise AssertionError("got %r through a black hole" % b)
    except socket.timeout:
        pass
def reset(s):
    s.settimeout(T)
    try:
        b = s.recv(65536)
        assert b == b"", "data %r instead of a reset" % b
        raise AssertionError("orderly EOF instead of a reset")
    except ConnectionResetError:
        pass
c1 = conn(); c1.sendall(b"one"); expect(c1, b"one"); print("pass: echoed")
cmd("blackhole"); c1.sendall(b"two"); silent(c1, 1.0)
c2 = conn(); c2.sendall(b"c2"); silent(c2, 0.5); print("blackhole: silent, new connection held")
cmd("pass"); expect(c1, b"two"); expect(c2, b"c2"); print("pass: held bytes and held connection released")
cmd("refuse")
try:
    c3 = conn()
    reset(c3)
except ConnectionResetError:   # the RST can already fail the connect()
    pass
c1.sendall(b"three"); expect(c1, b"three"); print("refuse: new connection reset, established one unaffected")
cmd("pass"); r = cmd("reset"); assert r == "ok reset 2", r
reset(c1); reset(c2); print("reset: both connections reset")
st = cmd("stats"); assert "accepted=3 " in st and "active=0 " in st, st; print(st)
# Client frames are unmasked in the frame log (after the HTTP request).
c4 = conn()
def frame(op, payload):
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | op, 0x80 | len(payload)]) + key + masked
msg = b"GET /app/k HTTP/1.1\r\nHost: x\r\n\r\n" + frame(1, b'{"event":"pusher:ping","data":{}}') + frame(8, struct.pack("!H", 1000))
c4.sendall(msg)
expect(c4, msg)
c4.close()
PY
  wait_for_line "$RUN_DIR/px.log" '" C> {\"event\":\"pusher:ping\",\"data\":{}}" in line' 10 >/dev/null ||
    fail "the frame log does not show the unmasked client text frame"
  wait_for_line "$RUN_DIR/px.log" 'line.endswith(" C> [close 1000]")' 10 >/dev/null ||
    fail "the frame log does not show the client close frame with its code"
  log "fault proxy self-test: PASS"
}
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _selftest
fi
