#!/usr/bin/env bash
# hostile_servers: the client against a server that misbehaves on purpose
# (tests/tools/hostile_server.c): broken HTTP upgrades (garbage before the
# 101, wrong or missing Sec-WebSocket-Accept, an endless header, no answer at
# all, plain text to a TLS client), frames of every invalid shape (reserved
# bits and opcodes, masked server frames, long or fragmented control frames,
# fragmentation errors, non-minimal lengths, a 256 MiB length header, bad
# close codes and payloads, invalid UTF-8, binary), ping floods (WebSocket
# and pusher:ping), cuts in the middle of a frame, a header or a frame that
# trickles in a byte at a time and never ends, and Pusher-level garbage (not
# JSON, no event, no socket_id, JSON nested 100000 deep, \u0000 and lone
# surrogates, messages over max_message_size, silence after connecting).
#
# Every scenario runs one `pusher listen --json` client; the checks and their
# bounds (error name and message, first back-off delay, CPU time while the
# server misbehaves, peak RSS, exit status 0 after SIGTERM, i.e. no leak under
# ASan) are described in hostile/check.py, which prints a table of the
# figures.  HOSTILE_ONLY=REGEX runs a subset.
# Eleven of the scenarios run again inside TLS.
# Ports: hostile_server 7470 (WebSocket scenarios), 7471 (plain text to a TLS
# client), 7472 (the scenarios inside TLS).
. "$(dirname "$0")/lib.sh"
SERVER_BIN="$PUSHER_BUILD_DIR/tests/hostile_server"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
[ -x "$SERVER_BIN" ] || fail "hostile_server is not built ($SERVER_BIN)"
command -v python3 >/dev/null || fail "python3 not found"
_port_free 7470 || fail "port 7470 is in use"
_port_free 7471 || fail "port 7471 is in use"
_port_free 7472 || fail "port 7472 is in use"

"$SERVER_BIN" --port 7470 --raw-port 7471 --tls-port 7472 >"$RUN_DIR/server.log" 2>"$RUN_DIR/server.err" &
SERVER_PID=$!
_PIDS+=("$SERVER_PID")
echo "$SERVER_PID $(readlink -f "$SERVER_BIN")" >>"$RUN_DIR/.pids"
wait_until 10 "hostile_server on :7470" eval '! _port_free 7470' || fail "hostile_server did not start"
log "hostile_server on :7470/:7471/:7472 (pid $SERVER_PID)"

# Every scenario the server knows is checked (a new one without a check fails).
python3 - "$SERVER_BIN" "$(dirname "$0")/hostile/check.py" <<'PY' || fail "scenario lists differ"
import re, subprocess, sys
srv = set(subprocess.run([sys.argv[1], "--list"], capture_output=True, text=True, check=True).stdout.split())
chk = set(re.findall(r'^    \("([a-z0-9-]+)",', open(sys.argv[2]).read(), re.M))
if srv != chk:
    print("only in the server: %s; only in check.py: %s" % (sorted(srv - chk), sorted(chk - srv)))
    sys.exit(1)
PY

rc=0
python3 "$(dirname "$0")/hostile/check.py" "$PUSHER_BIN" "$RUN_DIR/server.log" 7470 7471 7472 "$RUN_DIR" "$MULT" \
  | tee "$RUN_DIR/table.md" || rc=$?
[ "$rc" -eq 0 ] || fail "hostile-server checks failed (see above)"

# The server itself must have survived every client and exit 0 on SIGTERM.
_alive "$SERVER_PID" || fail "hostile_server died"
kill -TERM "$SERVER_PID"
wait_until 10 "hostile_server to exit" eval '! _alive '"$SERVER_PID" || fail "hostile_server did not exit"
src=0; wait "$SERVER_PID" || src=$?
[ "$src" -eq 0 ] || fail "hostile_server exited with status $src"
log "PASS"
