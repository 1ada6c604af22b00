#!/usr/bin/env bash
# client_soak.sh: the client fault soak.  CLIENTS libpusher clients
# (default 200) in one process on public, private and presence channels
# against a pusherd that is killed -9 KILLS times (default 100) and
# SIGTERM-restarted TERMS times (default 20), in a random order (SEED), up
# UP=MIN,MAX seconds and down up to DOWN seconds each time; events at RATE
# per second; STORM=P faults a restart again before it converged with
# probability P (default 0); UNAVAILABLE=S is the clients'
# unavailable_timeout (default 30; below DOWN they go through
# `unavailable`); FAULT_CHURN=MS disturbs one client every MS ms while
# pusherd is up, dying or down (disconnect/connect, delete/re-create,
# unsubscribe/subscribe).  After every restart: every client connected and
# subscribed and every presence list equal to the truth within BOUND
# seconds; no owed
# event lost, none twice, none out of order; client RSS flat across cycles
# (with RSS_CHECK unset; RSS_CHECK= disables it, e.g. under ASan whose
# quarantine grows the RSS by design).  Definitions, bounds and figures:
# tests/soak/README.md.
#
#   PUSHER_BUILD_DIR=build tests/soak/client_soak.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BUILD="$(cd "${PUSHER_BUILD_DIR:-$here/../../build}" && pwd)"
OUT="${1:-$BUILD/soak-run/client}"
mkdir -p "$OUT"
PORT="${PORT:-7950}"
extra=()
[ -n "${BOUND:-}" ] && extra+=(--bound "$BOUND")
[ -n "${HARD_BOUND:-}" ] && extra+=(--hard-bound "$HARD_BOUND")
[ -n "${FAULT_CHURN:-}" ] && extra+=(--fault-churn --churn "$FAULT_CHURN")
set +e
"$BUILD/tests/soak_client" --pusherd "$BUILD/pusherd" --port "$PORT" \
  --clients "${CLIENTS:-200}" --kills "${KILLS:-100}" --terms "${TERMS:-20}" \
  --rate "${RATE:-20}" --up "${UP:-0.5,3}" --down "${DOWN:-1}" --seed "${SEED:-1}" --storm "${STORM:-0}" \
  --unavailable "${UNAVAILABLE:-30}" \
  ${RSS_CHECK-"--rss-check"} "${extra[@]}" \
  --server-log "$OUT/pusherd.log" --pidfile "$OUT/pusherd.pid" >"$OUT/soak.log" 2>&1 &
pid=$!
echo "$pid" >"$OUT/soak_client.pid"
wait "$pid"
rc=$?
set -e
if [ -f "$OUT/pusherd.pid" ]; then
  sp="$(cat "$OUT/pusherd.pid")"
  if [ "$(readlink "/proc/$sp/exe" 2>/dev/null)" = "$(readlink -f "$BUILD/pusherd")" ]; then
    kill -KILL "$sp" 2>/dev/null || true
  fi
fi
grep -E '^\[.*\] (SOAK|RSS verdict|VIOLATION)' "$OUT/soak.log" | head -40 || true
tail -n 1 "$OUT/soak.log"
exit "$rc"
