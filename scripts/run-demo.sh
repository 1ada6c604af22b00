#!/usr/bin/env bash
# The main job, end to end on this machine: build the project, start a local
# Pusher Channels server on 127.0.0.1:${DEMO_PORT:-6001}, run `pusher listen`
# on a channel, trigger an event through the server's REST API, and show it
# arriving at the listener; then stop everything.
#   scripts/run-demo.sh             the server is our own build/pusherd
#   scripts/run-demo.sh --soketi    the server is soketi (tests/peers)
# Needs scripts/install-deps.sh first.  Exits 0 when the event arrived.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
port="${DEMO_PORT:-6001}"
channel=demo-channel event=demo-event data='{"message":"hello from the REST API"}'
peers="$root/tests/peers"
bin="$root/build/pusher"
started_soketi=0 listener_pid="" pusherd_pid=""
server=pusherd
for a in "$@"; do
  case "$a" in
    --pusherd) server=pusherd ;;
    --soketi) server=soketi ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--soketi|--pusherd]" >&2; exit 2 ;;
  esac
done

say() { printf '\n=== %s\n' "$*"; }
cleanup() {
  local rc=$?
  if [ -n "$listener_pid" ] && kill -0 "$listener_pid" 2>/dev/null; then
    kill -TERM "$listener_pid" 2>/dev/null || true
    wait "$listener_pid" 2>/dev/null || true
  fi
  if [ -n "$pusherd_pid" ] && kill -0 "$pusherd_pid" 2>/dev/null; then
    say "stopping pusherd"
    kill -TERM "$pusherd_pid" 2>/dev/null || true
    wait "$pusherd_pid" 2>/dev/null || true
  fi
  if [ "$started_soketi" = 1 ]; then
    say "stopping soketi"
    "$peers/soketi-down.sh" "$port" || true
  fi
  exit "$rc"
}
trap cleanup EXIT

say "building (build/)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j "$(nproc)" >/dev/null
[ -x "$bin" ] || { echo "build/pusher was not built" >&2; exit 1; }

if [ "$server" = pusherd ]; then
  say "starting pusherd on 127.0.0.1:$port (app id app-id, key app-key, secret app-secret)"
  [ -x "$root/build/pusherd" ] || { echo "build/pusherd was not built" >&2; exit 1; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use (set DEMO_PORT)" >&2; exit 1
  fi
  "$root/build/pusherd" --port "$port" &
  pusherd_pid=$!
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$pusherd_pid" 2>/dev/null || { echo "pusherd exited" >&2; exit 1; }
    [ "$i" -lt 100 ] || { echo "pusherd did not listen within 20 s" >&2; exit 1; }
    sleep 0.2
  done
else
  say "starting soketi on 127.0.0.1:$port (app id app-id, key app-key, secret app-secret)"
  if [ -f "$peers/run/soketi-$port.pid" ] && kill -0 "$(cat "$peers/run/soketi-$port.pid")" 2>/dev/null; then
    echo "(a soketi started earlier is already running on $port; using it)"
  else
    "$peers/soketi-up.sh" "$port"
    started_soketi=1
  fi
fi

say "pusher listen --no-tls --host 127.0.0.1 --port $port --key app-key --count 1 $channel"
"$bin" listen --no-tls --host 127.0.0.1 --port "$port" --key app-key --count 1 "$channel" &
listener_pid=$!

# The listener is subscribed once the server reports the channel occupied
# (GET /apps/app-id/channels/<channel>, signed by the official pusher SDK).
rest() {   # node helper: rest occupied | rest trigger
  PEERS_CLIENTS="$peers/clients" node - "$port" "$channel" "$event" "$data" "$1" <<'JS'
const Pusher = require(process.env.PEERS_CLIENTS + "/node_modules/pusher");
const [port, channel, event, data, what] = process.argv.slice(2);
const p = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret",
  host: "127.0.0.1", port, useTLS: false });
const done = async (r) => {
  const body = await r.text();
  if (r.status !== 200 || /"error"/.test(body)) { console.error(`HTTP ${r.status} ${body}`); process.exit(1); }
  return body;
};
(what === "occupied"
  ? p.get({ path: `/channels/${channel}` }).then(done).then((b) => process.exit(JSON.parse(b).occupied ? 0 : 1))
  : p.trigger(channel, event, JSON.parse(data)).then(done).then((b) => console.log(`REST reply: ${b}`))
).catch((e) => { console.error(String(e)); process.exit(1); });
JS
}
for i in $(seq 1 100); do
  rest occupied 2>/dev/null && break
  kill -0 "$listener_pid" 2>/dev/null || { echo "pusher listen exited early" >&2; exit 1; }
  [ "$i" -lt 100 ] || { echo "the listener did not subscribe within 20 s" >&2; exit 1; }
  sleep 0.2
done

say "triggering '$event' on $channel with data $data"
if "$bin" trigger --help >/dev/null 2>&1; then
  "$bin" trigger --no-tls --host 127.0.0.1 --port "$port" --app-id app-id --key app-key \
    --secret app-secret "$channel" "$event" "$data"
else
  rest trigger   # `pusher trigger` not built yet: the official pusher SDK
fi

# --count 1: the listener prints the event and exits 0.
for i in $(seq 1 100); do
  kill -0 "$listener_pid" 2>/dev/null || break
  [ "$i" -lt 100 ] || { echo "the event did not arrive within 20 s" >&2; exit 1; }
  sleep 0.2
done
rc=0; wait "$listener_pid" || rc=$?
listener_pid=""
[ "$rc" -eq 0 ] || { echo "pusher listen exited with status $rc" >&2; exit 1; }
say "the event arrived at the listener (shown above)"
