#!/usr/bin/env bash
# pusherd_hostile: hostile peers against pusherd; each leaves pusherd serving
# everyone else (a normal client subscribes and receives an event during and
# after the abuse), at a bounded cost, with a log line.
#   - out of file descriptors: pusherd under `ulimit -n 64` gets 120
#     WebSocket connections at once: the ones past the reserve are answered
#     503 and closed, a rate-limited log line says so, a subscribed client
#     still receives events, and once the flood's sockets close a new client
#     is served again (docs/architecture.md, "Out of file descriptors");
#   - 5,000 connections that never finish their request headers: each gets
#     408 at the header deadline ("header_timeout_ms", 1 s here times the wait multiplier) and is
#     closed; RSS comes back down;
#   - 1,000 WebSocket upgrades at once: all established;
#   - a client subscribed to 1,000 channels leaves: REST /channels lists none;
#   - JSON nested 5,000 deep and a binary frame get pusher:error, a subscribe
#     in three fragments succeeds on the same connection, lone surrogates in
#     a channel or event name get pusher:error, 100 KiB of JSON gets 4301, a
#     300 KiB message close 1009, invalid UTF-8 in a text frame close 1007,
#     invalid UTF-8 in an HTTP API body 400;
#   - a client that stops reading is cut with 4100 at the output cap
#     ("max_output_queue_bytes", 64 KiB here) while another subscriber of
#     the same channel receives every event;
#   - a presence channel at its member limit (3 here) refuses the next
#     member with "Presence channel is full (member limit reached)".
# The figures (RSS, times, outcomes) are printed as "figure" lines.
# Ports: pusherd 7440 (small descriptor limit), 7441.
. "$(dirname "$0")/lib.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found"
FD_PORT=7440 WIDE_PORT=7441
FD_LIMIT=64
# The header deadline scales with the wait multiplier: under a sanitizer a
# flood of 1,000 upgrades can keep the loop from reading a request that
# arrived in time for longer than 1 s, and would then get 408 instead of 101.
HEADER_MS="$(awk -v m="$MULT" 'BEGIN { printf "%d", 1000 * m }')"
cat >"$RUN_DIR/apps.json" <<JSON
{"header_timeout_ms": $HEADER_MS, "log_level": "info", "max_output_queue_bytes": 65536,
 "apps": [{"id": "app-id", "key": "app-key", "secret": "app-secret", "max_presence_members": 3}]}
JSON
for p in "$FD_PORT" "$WIDE_PORT"; do _port_free "$p" || fail "port $p is in use"; done
# exec: the PID recorded is pusherd's own, with the lowered limit.
bash -c 'ulimit -n "$1" && shift && exec "$@"' _ "$FD_LIMIT" "$PUSHERD_BIN" --port "$FD_PORT" \
  --config "$RUN_DIR/apps.json" >"$RUN_DIR/pusherd-fd.stdout" 2>"$RUN_DIR/pusherd-fd.log" &
FD_PID=$!
_PIDS+=("$FD_PID")
"$PUSHERD_BIN" --port "$WIDE_PORT" --config "$RUN_DIR/apps.json" >"$RUN_DIR/pusherd-wide.stdout" \
  2>"$RUN_DIR/pusherd-wide.log" &
WIDE_PID=$!
_PIDS+=("$WIDE_PID")
for p in "$FD_PORT" "$WIDE_PORT"; do
  wait_until 10 "pusherd on :$p" eval '! _port_free '"$p" || fail "pusherd did not start on $p"
done
grep -q "^Max open files *$FD_LIMIT " "/proc/$FD_PID/limits" || fail "pusherd does not run with ulimit -n $FD_LIMIT"
PEERS_CLIENTS="$PEERS/clients" node "$(dirname "$0")/pusherd/hostile.cjs" "$FD_PORT" "$FD_PID" "$WIDE_PORT" \
  "$WIDE_PID" "$MULT" >"$RUN_DIR/hostile.out" 2>&1 || { cat "$RUN_DIR/hostile.out"; fail "hostile.cjs checks failed"; }
cat "$RUN_DIR/hostile.out"
log "out-of-descriptor log lines:"
grep 'file descriptors' "$RUN_DIR/pusherd-fd.log" || fail "no log line for the descriptor shortage"
grep -q 'out of file descriptors; refusing connections' "$RUN_DIR/pusherd-fd.log" || fail "no refusal log line"
grep -q 'file descriptors available again' "$RUN_DIR/pusherd-fd.log" || fail "no recovery log line"
n=$(grep -c 'out of file descriptors; refusing' "$RUN_DIR/pusherd-fd.log")
[ "$n" -le 20 ] || fail "the refusal log line is not rate-limited ($n lines)"
# The 5,000 late connections are logged in a line per tick, not one each.
n=$(grep -c 'request headers not complete in time' "$RUN_DIR/pusherd-wide.log" || true)
log "header-deadline log lines: $n"
grep 'request headers not complete in time' "$RUN_DIR/pusherd-wide.log" | head -5
[ "$n" -ge 1 ] && [ "$n" -le 20 ] || fail "header-deadline log lines: $n (want one per tick)"
_alive "$FD_PID" && _alive "$WIDE_PID" || fail "a pusherd exited"
# Both stop cleanly on SIGTERM (under ASan, LeakSanitizer runs at this exit).
for pid in "$FD_PID" "$WIDE_PID"; do
  kill -TERM "$pid"
  rc=0; wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "pusherd (pid $pid) exited with status $rc after SIGTERM"
done
log "PASS"
