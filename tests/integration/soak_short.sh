#!/usr/bin/env bash
# soak_short: the short versions of the fault soaks in tests/soak/ (see its
# README for the definitions, bounds and the full-size figures):
#  - the accounting catches a loss: soak_client --inject-drop makes client 0
#    ignore one owed event; the run must fail naming that seq;
#  - client soak: 40 libpusher clients (loop mode, one process) on public,
#    private and presence channels while pusherd is killed -9 6 times and
#    SIGTERM-restarted 3 times (some restarts faulted again in the middle of
#    the reconnect storm, --storm; one client disturbed every 100 ms while
#    the server is up, dying or down, --fault-churn): reconnect +
#    resubscribe + presence lists equal to the truth within the bound after
#    every restart, no owed event lost, none twice or out of order;
#  - cluster soak: 3 pusherd nodes on one redis-server, 12 raw-protocol
#    clients spread over them, 2 node kills -9, 2 Redis restarts, a node
#    SIGTERM and a node killed while Redis is down: REST occupancy / user
#    counts / users and every client's member list converge to the truth
#    within the bound, events cross the nodes again, no duplicate
#    member_added/removed.
# Bounds scale with PUSHER_TEST_TIMEOUT_MULTIPLIER.  The client RSS check
# needs the full run's cycle count (and ASan's quarantine grows RSS by
# design), so it is left to tests/soak/client_soak.sh.
# Ports: pusherd 7900 (client soak), redis 7910 + pusherd 7911-7913 (cluster).
. "$(dirname "$0")/lib.sh"
SOAK="$PUSHER_BUILD_DIR/tests/soak_client"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$SOAK" ] || fail "soak_client is not built ($SOAK)"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v redis-server >/dev/null || fail "redis-server not found (apt-get install redis-server)"
for p in 7900 7910 7911 7912 7913; do _port_free "$p" || fail "port $p is in use"; done

run_bg() {   # NAME CMD...: run in the background, recorded for the EXIT trap
  local name="$1"; shift
  "$@" >"$RUN_DIR/$name.out" 2>&1 &
  local pid=$!
  _PIDS+=("$pid")
  echo "$pid $(readlink -f "$1")" >>"$RUN_DIR/.pids"
  LAST_PID=$pid
}
# A pusherd left by a soak_client that was killed: stop it by its pidfile.
stop_left_pusherd() {
  local pf="$1" sp
  [ -f "$pf" ] || return 0
  sp="$(cat "$pf")"
  [ "$(readlink "/proc/$sp/exe" 2>/dev/null)" = "$(readlink -f "$PUSHERD_BIN")" ] && kill -KILL "$sp" 2>/dev/null || true
}
trap '_rc=$?; stop_left_pusherd "$RUN_DIR/inject.pid"; stop_left_pusherd "$RUN_DIR/client.pid"; (exit $_rc); _cleanup' EXIT

bound="$(scaled 5)"
hard="$(scaled 40)"

# 1. the accounting must catch one dropped event
log "self-test: one owed event dropped on purpose"
rc=0
"$SOAK" --pusherd "$PUSHERD_BIN" --port 7900 --clients 8 --kills 1 --terms 0 --up 1,1 \
  --inject-drop 5 --bound "$bound" --hard-bound "$hard" --server-log "$RUN_DIR/inject-pusherd.log" \
  --pidfile "$RUN_DIR/inject.pid" >"$RUN_DIR/inject.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "soak_client --inject-drop exited $rc (want 1)"
grep -q 'VIOLATION: client 0 (u0) on soak-0 missed seq [0-9]* (acknowledged while subscribed)' "$RUN_DIR/inject.out" ||
  fail "the dropped event was not reported"
grep -q 'missing_required=1 ' "$RUN_DIR/inject.out" || fail "missing_required is not exactly 1"
log "self-test: the dropped event was reported"

# 2. client soak
log "client soak: 40 clients, 6 x kill -9 + 3 x SIGTERM of pusherd"
run_bg client "$SOAK" --pusherd "$PUSHERD_BIN" --port 7900 --clients 40 --kills 6 --terms 3 \
  --up 0.3,1 --down 0.5 --rate 20 --storm 0.3 --fault-churn --churn 100 --bound "$bound" --hard-bound "$hard" --seed 7 \
  --server-log "$RUN_DIR/client-pusherd.log" --pidfile "$RUN_DIR/client.pid"
cpid=$LAST_PID

# 3. cluster soak, at the same time
log "cluster soak: 3 nodes, 12 clients, 6 faults"
run_bg cluster python3 "$PUSHER_SOURCE_DIR/tests/soak/cluster_soak.py" --pusherd "$PUSHERD_BIN" \
  --clients 12 --node-kills 2 --redis-restarts 2 --node-terms 1 --compound 1 --base-port 7910 --seed 3 \
  --bound "$(scaled 12)" --hard-bound "$(scaled 40)" --out "$RUN_DIR/cluster"
kpid=$LAST_PID

crc=0; wait "$cpid" || crc=$?
krc=0; wait "$kpid" || krc=$?
grep -E '(CYCLE|SOAK|VIOLATION)' "$RUN_DIR/client.out" || true
grep -E '(ROUND|CLUSTER|VIOLATION)' "$RUN_DIR/cluster.out" || true
[ "$crc" -eq 0 ] || fail "client soak failed (status $crc): $(tail -n 1 "$RUN_DIR/client.out")"
grep -q 'SOAK .*cycles=9 ' "$RUN_DIR/client.out" || fail "the client soak did not run its 9 cycles"
grep -q 'missing_required=0 duplicates=0 reordered=0' "$RUN_DIR/client.out" || fail "client soak: owed events lost"
[ "$krc" -eq 0 ] || fail "cluster soak failed (status $krc): $(tail -n 1 "$RUN_DIR/cluster.out")"
grep -q 'rounds=6 .* duplicates=0' "$RUN_DIR/cluster.out" || fail "cluster soak: rounds or duplicates"
log "soak_short: PASS"
