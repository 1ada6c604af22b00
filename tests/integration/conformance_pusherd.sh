#!/usr/bin/env bash
# conformance_pusherd: the black-box conformance suite (tests/conformance/
# run.mjs: official pusher-js client + official `pusher` REST SDK + raw ws)
# against our pusherd, held to Pusher's documented behaviour everywhere (no
# expected-to-differ exemptions).  Any "not ok" fails this test.
#
# Scenarios pusherd does not pass yet are listed, by exact name, in
# tests/conformance/pusherd-excluded.txt: they are not run, and this script
# prints them loudly.  Remove a line once pusherd passes it (the suite can
# be run alone: node tests/conformance/run.mjs --target pusherd --port P).
# Ports: pusherd 7520.
set -uo pipefail
: "${PUSHER_BUILD_DIR:?PUSHER_BUILD_DIR must name the build directory}"
: "${PUSHER_SOURCE_DIR:?PUSHER_SOURCE_DIR must name the source directory}"
PORT=7520
SRC="$(cd "$PUSHER_SOURCE_DIR" && pwd)"
BUILD="$(cd "$PUSHER_BUILD_DIR" && pwd)"
RUN_DIR="$BUILD/tests/integration-run/conformance_pusherd"
EXCLUDED="$SRC/tests/conformance/pusherd-excluded.txt"
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
command -v node >/dev/null || { echo "FAIL: node not found (scripts/install-deps.sh)" >&2; exit 1; }
[ -x "$BUILD/pusherd" ] || { echo "FAIL: pusherd is not built ($BUILD/pusherd)" >&2; exit 1; }
[ -d "$SRC/tests/peers/clients/node_modules/pusher-js" ] ||
  { echo "FAIL: pusher-js not installed (tests/peers/setup.sh)" >&2; exit 1; }

node_pid=""
cleanup() { [ -n "$node_pid" ] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null; true; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

excluded_list() { [ -f "$EXCLUDED" ] && grep -v '^[[:space:]]*\(#\|$\)' "$EXCLUDED" || true; }
n_excl="$(excluded_list | wc -l | tr -d ' ')"
if [ "$n_excl" -gt 0 ]; then
  echo "################################################################################"
  echo "# WARNING: $n_excl conformance scenario(s) EXCLUDED for pusherd (known failures,"
  echo "# listed in tests/conformance/pusherd-excluded.txt) -- pusherd does NOT pass these:"
  excluded_list | sed 's/^/#   - /'
  echo "################################################################################"
fi

args=(--target pusherd --port "$PORT" --pusherd "$BUILD/pusherd")
[ -f "$EXCLUDED" ] && args+=(--exclude-file "$EXCLUDED")
PUSHER_BUILD_DIR="$BUILD" node "$SRC/tests/conformance/run.mjs" "${args[@]}" >"$RUN_DIR/tap.txt" 2>&1 &
node_pid=$!
wait "$node_pid"; rc=$?; node_pid=""
cat "$RUN_DIR/tap.txt"
if grep -q '^Bail out!' "$RUN_DIR/tap.txt"; then
  echo "FAIL: $(grep '^Bail out!' "$RUN_DIR/tap.txt" | head -1)" >&2
  exit 1
fi
if grep -q '^not ok' "$RUN_DIR/tap.txt"; then
  echo "FAIL: conformance suite against pusherd has failing scenarios:" >&2
  grep '^not ok' "$RUN_DIR/tap.txt" >&2
  echo "(pusherd log: $BUILD/tests/conformance-run/pusherd-$PORT.log)" >&2
  tail -40 "$BUILD/tests/conformance-run/pusherd-$PORT.log" >&2 2>/dev/null || true
  exit 1
fi
[ "$rc" -eq 0 ] || { echo "FAIL: the suite exited with status $rc" >&2; exit 1; }
if [ "$n_excl" -gt 0 ]; then
  echo "PASS (PARTIAL): conformance suite against pusherd, with $n_excl scenario(s) EXCLUDED (see the list above)"
else
  echo "PASS: conformance suite against pusherd (all scenarios)"
fi
