#!/usr/bin/env bash
# examples_pusherd: the example programs of the build tree (examples/*.c,
# linked with the shared libpusher) against pusherd, as
# tests/examples/run_examples.sh describes: hello and hello_loop receive a
# published event and exit 0 on SIGTERM/SIGINT; publish refuses a reserved
# event name; encrypted decrypts what publish encrypted; presence_chat with
# the ajax auth endpoint and with the custom authorizer see each other join,
# talk with client events and leave.
# Ports: pusherd 7910, auth server 7911.
. "$(dirname "$0")/lib.sh"
. "$PUSHER_SOURCE_DIR/tests/examples/run_examples.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BUILD_DIR/examples/hello" ] || fail "the examples are not built (-DPUSHER_EXAMPLES=ON)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"

run_examples "$PUSHER_BUILD_DIR/examples" 7910 tree
log "PASS"
