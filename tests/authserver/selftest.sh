#!/usr/bin/env bash
# Self-test of tests/authserver/server.mjs with curl: every mode and check.
#   bash tests/authserver/selftest.sh      (exit 0 = all good)
set -u
here=$(cd "$(dirname "$0")" && pwd)
fails=0
pid=
port=
start() {
  local out; out=$(mktemp)
  node "$here/server.mjs" "$@" >"$out" 2>/dev/null &
  pid=$!
  for _ in $(seq 50); do
    port=$(awk '/^listening /{print $2}' "$out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  rm -f "$out"
  [ -n "$port" ] || { echo "server did not start: $*"; exit 1; }
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
check() { # name, expected regex, actual
  if [[ "$3" =~ $2 ]]; then echo "ok   $1"; else echo "FAIL $1: got '$3'"; fails=$((fails + 1)); fi
}
hex='[0-9a-f]{64}'

start --require-param csrf=abc --require-header 'X-CSRF-Token: abc' --master-key zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=
u=http://127.0.0.1:$port
check "ajax private" "^\\{\"auth\":\"app-key:$hex\"\\} 200$" \
  "$(curl -s -w ' %{http_code}' -H 'X-CSRF-Token: abc' -d 'socket_id=1.2&channel_name=private-a&csrf=abc' $u/pusher/auth)"
check "ajax presence" "channel_data\":\"\\{\\\\\"user_id\\\\\":\\\\\"7\\\\\"" \
  "$(curl -s -H 'X-CSRF-Token: abc' -d 'socket_id=1.2&channel_name=presence-a&csrf=abc&user_id=7' $u/pusher/auth)"
check "ajax encrypted (vector F secret)" "shared_secret\":\"nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=\"" \
  "$(curl -s -H 'X-CSRF-Token: abc' -d 'socket_id=1.2&channel_name=private-encrypted-bla&csrf=abc' $u/pusher/auth)"
check "jsonp private" "^cb\\(\\{\"auth\":\"app-key:$hex\"\\}\\);$" \
  "$(curl -s "$u/pusher/auth?callback=cb&socket_id=1.2&channel_name=private-a&csrf=abc")"
check "jsonp without callback = JSON" "^\\{\"auth\":\"app-key:$hex\"\\}$" \
  "$(curl -s "$u/pusher/auth?socket_id=1.2&channel_name=private-a&csrf=abc")"
check "user auth" "user_data\":\"\\{\\\\\"id\\\\\":\\\\\"12345\\\\\"" \
  "$(curl -s -H 'X-CSRF-Token: abc' -d 'socket_id=1.2&csrf=abc&user_id=12345' $u/pusher/user-auth)"
check "missing param => 403" " 403$" \
  "$(curl -s -w ' %{http_code}' -H 'X-CSRF-Token: abc' -d 'socket_id=1.2&channel_name=private-a' $u/pusher/auth)"
check "wrong header => 403" " 403$" \
  "$(curl -s -w ' %{http_code}' -H 'X-CSRF-Token: x' -d 'socket_id=1.2&channel_name=private-a&csrf=abc' $u/pusher/auth)"
check "bad socket_id => 403" " 403$" \
  "$(curl -s -w ' %{http_code}' -H 'X-CSRF-Token: abc' -d 'socket_id=x&channel_name=private-a&csrf=abc' $u/pusher/auth)"
check "request log" "\"channel_name\":\"private-encrypted-bla\"" "$(curl -s $u/requests)"
stop

start --refuse
check "--refuse" " 403$" "$(curl -s -w ' %{http_code}' -d 'socket_id=1.2&channel_name=private-a' http://127.0.0.1:$port/pusher/auth)"
stop
start --garbage
check "--garbage" "^this is <not> JSON" "$(curl -s -d 'socket_id=1.2&channel_name=private-a' http://127.0.0.1:$port/pusher/auth)"
stop
start --slow 600
t=$(curl -s -o /dev/null -w '%{time_total}' -d 'socket_id=1.2&channel_name=private-a' http://127.0.0.1:$port/pusher/auth)
check "--slow 600" "^(0\\.[6-9]|[1-9])" "$t"
stop

[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
exit "$fails"
