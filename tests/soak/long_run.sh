#!/usr/bin/env bash
# long_run.sh: steady traffic against one pusherd for DURATION seconds
# (default 3600): CLIENTS libpusher clients (default 100) with connect /
# disconnect / subscribe churn every CHURN_MS (default 100), events at RATE
# per second (default 10) to every channel; every RSS_EVERY seconds (default
# 60) the churn pauses, everything must converge again, and the RSS of the
# client process and of pusherd is printed ("RSS t=..." lines).  Fails on
# any lost, duplicated or reordered event that was owed, any stuck client,
# any presence list that differs from the truth, and RSS growth (client or
# pusherd) beyond the limit in tests/tools/soak_client.c (rss_verdict).
# See tests/soak/README.md.
#
#   PUSHER_BUILD_DIR=build tests/soak/long_run.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BUILD="$(cd "${PUSHER_BUILD_DIR:-$here/../../build}" && pwd)"
OUT="${1:-$BUILD/soak-run/long}"
mkdir -p "$OUT"
PORT="${PORT:-7960}"
set +e
"$BUILD/tests/soak_client" --pusherd "$BUILD/pusherd" --port "$PORT" \
  --clients "${CLIENTS:-100}" --rate "${RATE:-10}" --duration "${DURATION:-3600}" \
  --churn "${CHURN_MS:-100}" --rss-every "${RSS_EVERY:-60}" --seed "${SEED:-1}" \
  ${RSS_CHECK-"--rss-check"} \
  --server-log "$OUT/pusherd.log" --pidfile "$OUT/pusherd.pid" >"$OUT/soak.log" 2>&1 &
pid=$!
echo "$pid" >"$OUT/soak_client.pid"
wait "$pid"
rc=$?
set -e
# pusherd is stopped by soak_client; if soak_client itself died, stop the
# pusherd it started (its pid is in the pidfile, checked by executable).
if [ -f "$OUT/pusherd.pid" ]; then
  sp="$(cat "$OUT/pusherd.pid")"
  if [ "$(readlink "/proc/$sp/exe" 2>/dev/null)" = "$(readlink -f "$BUILD/pusherd")" ]; then
    kill -KILL "$sp" 2>/dev/null || true
  fi
fi
grep -E '^\[.*\] (RSS|SOAK|CYCLE 0)' "$OUT/soak.log" || true
tail -n 1 "$OUT/soak.log"
exit "$rc"
