# Runs the examples (examples/*.c) against a pusherd and checks what they
# print.  Sourced by tests/integration/examples_pusherd.sh (the examples of
# the build tree) and tests/integration/install.sh (the examples built
# against an installed prefix with pkg-config and CMake, shared and static);
# needs tests/integration/lib.sh sourced first.
#
#   run_examples BIN_DIR PORT TAG
# BIN_DIR holds hello, hello_loop, presence_chat, encrypted, publish; a
# pusherd ($PUSHERD_BIN) is started on PORT and stopped at the end; TAG
# prefixes the names of the output files in $RUN_DIR.

EX_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
declare -A EX_PID=() EX_FD=()

ex_start() {   # NAME CMD...: run in the background, stdout+stderr in $RUN_DIR/NAME.out
  local name="$1"; shift
  "$@" >"$RUN_DIR/$name.out" 2>&1 &
  EX_PID[$name]=$!
  _PIDS+=("$!")
  log "$name started (pid $!): $*"
}
ex_start_stdin() {   # NAME CMD...: the same, stdin from a FIFO kept open in EX_FD[NAME]
  local name="$1" fifo="$RUN_DIR/$1.in" fd; shift
  mkfifo "$fifo"
  "$@" <"$fifo" >"$RUN_DIR/$name.out" 2>&1 &
  EX_PID[$name]=$!
  _PIDS+=("$!")
  exec {fd}>"$fifo"
  EX_FD[$name]=$fd
  log "$name started (pid $!): $* <$fifo"
}
ex_expect() {   # NAME FIXED_STRING DESCRIPTION: wait until NAME printed the string
  wait_until 20 "$1: $3" grep -qF -- "$2" "$RUN_DIR/$1.out" || fail "$1: $3 (wanted '$2')"
}
ex_stop() {   # NAME SIGNAL: send it, expect a clean exit (status 0) within 10 s
  local pid="${EX_PID[$1]}" rc=0
  kill "-$2" "$pid"
  wait_until 10 "$1 to exit after SIG$2" eval '! _alive '"$pid" || fail "$1 did not exit after SIG$2"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1 exited with status $rc after SIG$2 (want 0)"
}
ex_wait_exit() {   # NAME: expect it to exit with status 0 within 10 s
  local pid="${EX_PID[$1]}" rc=0
  wait_until 10 "$1 to exit" eval '! _alive '"$pid" || fail "$1 did not exit"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1 exited with status $rc (want 0)"
}

run_examples() {
  local bin="$1" port="$2" t="$3" rc
  local -x PUSHER_HOST=127.0.0.1 PUSHER_PORT="$port"
  _port_free "$port" || fail "port $port is in use"
  "$PUSHERD_BIN" --port "$port" >"$RUN_DIR/$t-pusherd.log" 2>&1 &
  local pd=$!
  _PIDS+=("$pd")
  wait_until 10 "pusherd on :$port" eval '! _port_free '"$port" || fail "pusherd did not start"

  # hello (threaded) and hello_loop (own libuv loop); publish reaches both.
  ex_start "$t-hello" "$bin/hello" greetings
  ex_start "$t-hello_loop" "$bin/hello_loop" greetings
  for n in hello hello_loop; do
    ex_expect "$t-$n" "connected, socket_id " "connects"
    ex_expect "$t-$n" "pusher:subscription_succeeded on greetings" "subscribes"
  done
  "$bin/publish" greetings greet '{"n":1}' >"$RUN_DIR/$t-publish.out" 2>&1 ||
    fail "publish exited non-zero: $(cat "$RUN_DIR/$t-publish.out")"
  grep -qF "published greet on greetings: HTTP 200" "$RUN_DIR/$t-publish.out" ||
    fail "publish printed: $(cat "$RUN_DIR/$t-publish.out")"
  for n in hello hello_loop; do ex_expect "$t-$n" 'greet on greetings: {"n":1}' "receives the event"; done
  ex_stop "$t-hello" TERM
  ex_expect "$t-hello" "SIGTERM: disconnecting" "says why it exits"
  ex_stop "$t-hello_loop" INT
  ex_expect "$t-hello_loop" "SIGINT: disconnecting" "says why it exits"

  # publish refuses a reserved event name before any request.
  rc=0; "$bin/publish" greetings pusher:oops '{}' >"$RUN_DIR/$t-reserved.out" 2>&1 || rc=$?
  [ "$rc" = 1 ] && grep -q "reserved by Pusher" "$RUN_DIR/$t-reserved.out" ||
    fail "publish pusher:oops: status $rc, $(cat "$RUN_DIR/$t-reserved.out")"

  # An encrypted channel: publish encrypts with the master key, the
  # subscriber (custom authorizer) decrypts.
  local -x PUSHER_ENCRYPTION_MASTER_KEY="$EX_MASTER_KEY"
  ex_start "$t-encrypted" "$bin/encrypted" private-encrypted-room
  ex_expect "$t-encrypted" "pusher:subscription_succeeded on private-encrypted-room" "subscribes"
  "$bin/publish" private-encrypted-room secret '"psst"' >"$RUN_DIR/$t-publish-enc.out" 2>&1 ||
    fail "encrypted publish failed: $(cat "$RUN_DIR/$t-publish-enc.out")"
  ex_expect "$t-encrypted" "secret on private-encrypted-room: psst" "decrypts the event"
  ex_stop "$t-encrypted" TERM

  # The presence chat: alice authorized by the HTTP auth endpoint (the test
  # auth server, ajax), bob by the custom authorizer; client events both ways.
  ex_start "$t-authsrv" node "$PUSHER_SOURCE_DIR/tests/authserver/server.mjs" --port "$((port + 1))"
  ex_expect "$t-authsrv" "listening" "auth server starts"
  ex_start_stdin "$t-alice" "$bin/presence_chat" alice "http://127.0.0.1:$((port + 1))"
  ex_expect "$t-alice" "joined presence-chat as alice; 1 here: alice" "joins alone"
  ex_start_stdin "$t-bob" "$bin/presence_chat" bob
  ex_expect "$t-bob" "joined presence-chat as bob; 2 here:" "joins with alice there"
  ex_expect "$t-alice" 'joined: {"user_id":"bob"' "sees bob join"
  printf 'hi alice\n' >&"${EX_FD[$t-bob]}"
  ex_expect "$t-alice" 'bob says {"text":"hi alice"}' "receives bob's client event"
  printf 'hello "bob"\n' >&"${EX_FD[$t-alice]}"
  ex_expect "$t-bob" 'alice says {"text":"hello \"bob\""}' "receives alice's client event"
  exec {EX_FD[$t-bob]}>&-
  ex_wait_exit "$t-bob"
  ex_expect "$t-alice" 'left: {"user_id":"bob"}' "sees bob leave"
  exec {EX_FD[$t-alice]}>&-
  ex_wait_exit "$t-alice"
  grep -q '"path":"/pusher/auth"' "$RUN_DIR/$t-authsrv.out" ||
    fail "alice's auth request never reached the auth server"

  kill -TERM "$pd"
  wait_until 10 "pusherd to exit" eval '! _alive '"$pd" || fail "pusherd did not exit"
  log "$t: examples PASS"
}
