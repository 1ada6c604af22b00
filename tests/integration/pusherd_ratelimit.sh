#!/usr/bin/env bash
# pusherd_ratelimit: per-app HTTP API rate limits (docs/operations.md, "Rate
# limits"); checks in tests/integration/pusherd/ratelimit.cjs through the
# official `pusher` SDK, plus curl for the raw response:
#  - max_backend_events_per_second 5: a batch of 6 is refused; single events
#    and batches of 2 are accepted up to the limit in each wall-clock second,
#    then 429 with a JSON error (X-RateLimit-Limit/-Remaining/-Reset on every
#    limited request; checked as invariants, whenever the second turns)
#  - max_read_requests_per_second 3 for GETs; reads and events apart
#  - an app with -1 (the default): never 429, no X-RateLimit headers
#  - curl: 429, Retry-After: 1, Content-Type application/json, {"error":...}
#  - pusherd_rate_limited_requests_total counts the 429s
#  - SIGHUP lifting the limit (-1): no more 429
#  - cluster (--redis, one real redis-server): the limit is shared by two
#    nodes: a window filled on one node is refused on the other, both ways
#  - /ready (metrics port) answers 503 while Redis is down, 200 when it is back
# Ports: pusherd 7970 (metrics 7971); redis-server 7972, nodes 7973/7974
# (metrics 7975/7976).
. "$(dirname "$0")/lib.sh"
PORT=7970
MPORT=7971
RPORT=7972
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
JS="$(dirname "$0")/pusherd/ratelimit.cjs"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
command -v curl >/dev/null || fail "curl not found"
[ -d "$PEERS/clients/node_modules/pusher" ] || fail "pusher SDK not installed: run tests/peers/setup.sh"
export PEERS_CLIENTS="$PEERS/clients"
"$PUSHERD_BIN" --help >"$RUN_DIR/help.txt" || fail "pusherd --help failed"
grep -q "max_backend_events_per_second" "$RUN_DIR/help.txt" || fail "--help does not document the rate limits"

config() {   # FILE PORT METRICS_PORT EVENTS_LIMIT [REDIS_URL]
  local redis=""
  [ -n "${5:-}" ] && redis="\"redis_url\":\"$5\","
  cat >"$1" <<JSON
{"host":"127.0.0.1","port":$2,"metrics_port":$3,$redis
 "apps":[{"id":"lim","key":"lim-key","secret":"lim-secret","max_backend_events_per_second":$4,"max_read_requests_per_second":3},
         {"id":"free","key":"free-key","secret":"free-secret"}]}
JSON
}
pusherd_start() {   # NAME CONFIG PORT MPORT
  _port_free "$3" && _port_free "$4" || fail "port $3 or $4 is in use"
  "$PUSHERD_BIN" --config "$2" --log-level debug >"$RUN_DIR/$1.stdout" 2>"$RUN_DIR/$1.log" &
  local pid=$!
  _PIDS+=("$pid")
  eval "PID_$1=$pid"
  wait_until 10 "pusherd $1 on :$3" eval '! _port_free '"$3"' && ! _port_free '"$4" || fail "pusherd $1 did not start"
  log "pusherd $1 on :$3, metrics :$4 (pid $pid)"
}
pusherd_stop() {   # NAME
  local pid; eval "pid=\$PID_$1"
  kill -TERM "$pid"
  wait_until 20 "pusherd $1 to exit" eval '! _alive '"$pid" || fail "pusherd $1 did not exit"
  local rc=0; wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "pusherd $1 exited with $rc"
}

config "$RUN_DIR/single.json" "$PORT" "$MPORT" 5
pusherd_start single "$RUN_DIR/single.json" "$PORT" "$MPORT"
node "$JS" single "$PORT" "$MPORT" >"$RUN_DIR/single-js.out" 2>&1 || { cat "$RUN_DIR/single-js.out"; fail "ratelimit.cjs single failed"; }
cat "$RUN_DIR/single-js.out"

# curl: a batch of 6 events is over the limit of 5 whatever the second
body='{"batch":[{"channel":"c","name":"e","data":"0"},{"channel":"c","name":"e","data":"1"},{"channel":"c","name":"e","data":"2"},{"channel":"c","name":"e","data":"3"},{"channel":"c","name":"e","data":"4"},{"channel":"c","name":"e","data":"5"}]}'
url="$(node "$JS" sign POST /apps/lim/batch_events "$body")"
curl -s -D "$RUN_DIR/curl.head" -o "$RUN_DIR/curl.body" -H 'Content-Type: application/json' --data-binary "$body" \
  "http://127.0.0.1:$PORT$url" || fail "curl failed"
tr -d '\r' <"$RUN_DIR/curl.head" >"$RUN_DIR/curl.h"
head -1 "$RUN_DIR/curl.h" | grep -q '^HTTP/1.1 429 Too Many Requests$' || fail "curl: $(head -1 "$RUN_DIR/curl.h") (want 429)"
grep -qx 'Retry-After: 1' "$RUN_DIR/curl.h" || fail "curl: no Retry-After: 1 header"
grep -qx 'Content-Type: application/json' "$RUN_DIR/curl.h" || fail "curl: not application/json"
grep -qx 'X-RateLimit-Limit: 5' "$RUN_DIR/curl.h" || fail "curl: no X-RateLimit-Limit: 5"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "Rate limit exceeded" in d["error"], d' "$RUN_DIR/curl.body" ||
  fail "curl: body $(cat "$RUN_DIR/curl.body")"
log "curl: $(head -1 "$RUN_DIR/curl.h"), Retry-After: 1, body $(cat "$RUN_DIR/curl.body")"

# SIGHUP lifts the limit: a batch of 6 goes through
config "$RUN_DIR/single.json" "$PORT" "$MPORT" -1
kill -HUP "$PID_single"
wait_until 10 "the reload" grep -q 'msg="configuration reloaded"' "$RUN_DIR/single.log" || fail "no reload"
url="$(node "$JS" sign POST /apps/lim/batch_events "$body")"
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" "http://127.0.0.1:$PORT$url")"
[ "$code" = 200 ] || fail "after the reload to -1 a batch of 6 answered $code (want 200)"
log "SIGHUP to max_backend_events_per_second -1: a batch of 6 answered 200"
pusherd_stop single

# cluster
command -v redis-server >/dev/null || fail "redis-server not found (apt-get install redis-server)"
_port_free "$RPORT" || fail "port $RPORT is in use"
redis_start() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >>"$RUN_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  _PIDS+=("$REDIS_PID")
  wait_until 10 "redis-server on :$RPORT" eval '! _port_free '"$RPORT" || fail "redis-server did not start"
}
redis_start
config "$RUN_DIR/a.json" 7973 7975 5 "redis://127.0.0.1:$RPORT"
config "$RUN_DIR/b.json" 7974 7976 5 "redis://127.0.0.1:$RPORT"
pusherd_start a "$RUN_DIR/a.json" 7973 7975
pusherd_start b "$RUN_DIR/b.json" 7974 7976
# the whole answer first: `curl | grep -q` fails under pipefail when grep
# stops reading before curl has written everything
has() {   # URL PATTERN: the answer has a line matching PATTERN
  local body
  body="$(curl -s "$1")" || true
  grep -q -- "$2" <<<"$body"
}
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready")" = 200 ]; }
peers() { has "http://127.0.0.1:$1/metrics" '^pusherd_cluster_peers{app_id="lim"} 1$'; }
wait_until 15 "both nodes ready and seeing each other" eval 'ready 7975 && ready 7976 && peers 7975 && peers 7976' ||
  fail "the nodes did not become ready / see each other"
has "http://127.0.0.1:7975/metrics" '^pusherd_redis_up 1$' || fail "pusherd_redis_up is not 1"
log "cluster: both nodes ready, pusherd_redis_up 1, pusherd_cluster_peers 1"
node "$JS" cluster 7973 7974 7975 7976 >"$RUN_DIR/cluster-js.out" 2>&1 || { cat "$RUN_DIR/cluster-js.out"; fail "ratelimit.cjs cluster failed"; }
cat "$RUN_DIR/cluster-js.out"

# /ready follows the Redis link
kill -TERM "$REDIS_PID"
wait_until 10 "redis-server to exit" eval '! _alive '"$REDIS_PID" || fail "redis-server did not exit"
wait "$REDIS_PID" 2>/dev/null || true
wait_until 15 "/ready 503 on both nodes" eval '! ready 7975 && ! ready 7976' || fail "/ready stayed 200 with Redis down"
has "http://127.0.0.1:7975/ready" '"reason":"Redis link down"' || fail "/ready does not say why"
has "http://127.0.0.1:7975/metrics" '^pusherd_redis_up 0$' || fail "pusherd_redis_up is not 0 with Redis down"
has "http://127.0.0.1:7975/health" '"ok":true' || fail "/health is not ok with Redis down"
log "Redis down: /ready 503 (Redis link down), pusherd_redis_up 0, /health 200"
redis_start
wait_until 20 "/ready 200 again" eval 'ready 7975 && ready 7976' || fail "/ready did not come back after Redis returned"
log "Redis back: /ready 200 on both nodes"
pusherd_stop a
pusherd_stop b
log "PASS"
