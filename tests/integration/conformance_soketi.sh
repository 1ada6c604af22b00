#!/usr/bin/env bash
# conformance_soketi: the black-box conformance suite (tests/conformance/
# run.mjs: official pusher-js client + official `pusher` REST SDK + raw ws)
# against soketi 1.6.1, to prove the suite itself on a third-party server.
# soketi's known deviations from Pusher's documented behaviour are marked
# expected-to-differ in the suite ("ok N - ... # expected-to-differ on
# soketi: ..."); any "not ok" fails this test.
# Ports: soketi 7510 (metrics 7511, cluster 7512).
# ctest-labels: peers-only
set -uo pipefail
: "${PUSHER_BUILD_DIR:?PUSHER_BUILD_DIR must name the build directory}"
: "${PUSHER_SOURCE_DIR:?PUSHER_SOURCE_DIR must name the source directory}"
PORT=7510
SRC="$(cd "$PUSHER_SOURCE_DIR" && pwd)"
RUN_DIR="$(cd "$PUSHER_BUILD_DIR" && pwd)/tests/integration-run/conformance_soketi"
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
command -v node >/dev/null || { echo "FAIL: node not found (scripts/install-deps.sh)" >&2; exit 1; }
[ -f "$SRC/tests/peers/soketi/node_modules/@soketi/soketi/bin/server.js" ] ||
  { echo "FAIL: soketi not installed (tests/peers/setup.sh)" >&2; exit 1; }
[ -d "$SRC/tests/peers/clients/node_modules/pusher-js" ] ||
  { echo "FAIL: pusher-js not installed (tests/peers/setup.sh)" >&2; exit 1; }

node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  "$SRC/tests/peers/soketi-down.sh" "$PORT" --kill >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

node "$SRC/tests/conformance/run.mjs" --target soketi --port "$PORT" >"$RUN_DIR/tap.txt" 2>&1 &
node_pid=$!
wait "$node_pid"; rc=$?; node_pid=""
cat "$RUN_DIR/tap.txt"
if grep -q '^Bail out!' "$RUN_DIR/tap.txt"; then
  echo "FAIL: $(grep '^Bail out!' "$RUN_DIR/tap.txt" | head -1)" >&2
  exit 1
fi
if grep -q '^not ok' "$RUN_DIR/tap.txt"; then
  echo "FAIL: conformance suite against soketi has failing scenarios:" >&2
  grep '^not ok' "$RUN_DIR/tap.txt" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || { echo "FAIL: the suite exited with status $rc" >&2; exit 1; }
echo "PASS: conformance suite against soketi (see expected-to-differ lines above)"
