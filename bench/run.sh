#!/usr/bin/env bash
# libpusher benchmarks, side by side with named baselines (bench/README.md).
#
#   bench/run.sh [--subscribers N] [--events M] [--rate R] [--http-conns "K ..."]
#                [--recv-events E] [--recv-rate R] [--recv-sat-rate R2]
#                [--recv-sat-publishers K] [--core-events E]
#                [--lat-subscribers N] [--slow-subscribers N] [--slow-payload B]
#                [--conns-small N1] [--conns-big N2] [--clients N] [--runs RUNS]
#                [--only fanout|latency|slow|recv|clients|conns|idle] [--no-build]
#                [--build DIR]
#
#   server_fanout: pusherd vs soketi 1.6.1, N subscribers on one channel, M
#                  REST-triggered events, the same load generator for both
#                  (`pusher bench`, src/cli/bench.c), published over K
#                  concurrent HTTP connections, for each K of --http-conns
#                  (default "2 8": one request in flight per connection, so
#                  K bounds how many events a server can gather per socket
#                  and loop turn).
#   latency:       pusherd vs soketi, N subscribers on one channel, paced at
#                  50 and 10 events/s (50,000 and 10,000 deliveries/s with
#                  1000), and 100 subscribers at 500 events/s (50,000/s with
#                  a tenth of the generator's work per event): latency
#                  percentiles and the load generator's CPU.
#   slow:          pusherd vs soketi, N reading subscribers plus 0 or 10 that
#                  stop reading (--stalled), 100 events/s of B-byte payloads:
#                  the readers' latency, and what became of the stalled ones.
#   client_recv:   our C client vs pusher-js 8.6.0 receiving E events from
#                  pusherd at R/s, one publisher, and at R2/s (default 0:
#                  as fast as they go) from K publishers (default 8; the
#                  saturating pass), next to client_floor (no library: the
#                  wakeups and reads alone); plus callgrind
#                  instructions/event of our core with 1 and 1000 bindings.
#   clients:       memory per client connection, N (10000) libpusher clients
#                  on one libuv loop (bench/client_many.c) vs N pusher-js
#                  clients in one Node process (client_many_pusherjs.cjs),
#                  subscribed to 100 channels of pusherd and receiving.
#   server_conns:  pusherd vs soketi 1.6.1, N1 (1000) and N2 (18000) idle
#                  sockets subscribed to one channel: RSS per connection and
#                  the time and server CPU to connect and subscribe them
#                  (ports 7930-7949).
#
#   idle:          pusherd's VmRSS once it listens, before any connection,
#                  and after one WebSocket connection came and went.
#
# A run of every section ends with "goals": the figures of issue 10's
# table side by side, as ratios.
#
# Every figure is the median of RUNS runs (default 3).  Servers are started
# and stopped here, on ports 7900-7999 only; only the PIDs started here are
# signalled.  Prints numbers; never fails on a number.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

subs=1000 events=1000 rate=0 http_conns="2 8"
recv_events=100000 recv_rate=20000 recv_sat_rate=0 recv_sat_pubs=8 core_events=20000
lat_subs=1000 slow_subs=100 slow_payload=8000
conns_small=1000 conns_big=18000 many_clients=10000
runs=3 only="" build=1 bdir="$root/build-bench"
while [ $# -gt 0 ]; do
  case "$1" in
    --subscribers) subs=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --http-conns) http_conns=$2; shift 2 ;;
    --recv-events) recv_events=$2; shift 2 ;;
    --recv-rate) recv_rate=$2; shift 2 ;;
    --recv-sat-rate) recv_sat_rate=$2; shift 2 ;;
    --recv-sat-publishers) recv_sat_pubs=$2; shift 2 ;;
    --core-events) core_events=$2; shift 2 ;;
    --lat-subscribers) lat_subs=$2; shift 2 ;;
    --slow-subscribers) slow_subs=$2; shift 2 ;;
    --slow-payload) slow_payload=$2; shift 2 ;;
    --conns-small) conns_small=$2; shift 2 ;;
    --conns-big) conns_big=$2; shift 2 ;;
    --clients) many_clients=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --build) bdir=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

PUSHERD_PORT=7900 SOKETI_BENCH_PORT=7910 RECV_PORT=7920 CLIENTS_PORT=7922
CONNS_PUSHERD_PORT=7930 CONNS_SOKETI_PORT=7940 # soketi also takes 7941, 7942
work="$(mktemp -d /tmp/pusher-bench.XXXXXX)"
started=()   # PIDs started here (pusherd, clients)
soketi_up=0

soketi_port=""  # the port of the soketi started here, if one is up
cleanup() {
  for p in "${started[@]}"; do kill "$p" 2>/dev/null; done
  if [ "$soketi_up" = 1 ]; then "$root/tests/peers/soketi-down.sh" "${soketi_port:-$SOKETI_BENCH_PORT}" --kill >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$build" = 1 ]; then
  echo "== building ($bdir, Release)" >&2
  cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 &&
    cmake --build "$bdir" -j2 --target pusherd pusher_cli client_recv client_floor client_core client_many >>"$work/cmake.log" 2>&1 ||
    { tail -30 "$work/cmake.log" >&2; echo "run.sh: build failed" >&2; exit 1; }
fi
PUSHERD="$bdir/pusherd" PUSHER="$bdir/pusher"
BENCH=("$PUSHER" bench --no-tls --host 127.0.0.1 --app-id app-id --key app-key --secret app-secret)
CRECV="$bdir/bench/client_recv" CCORE="$bdir/bench/client_core" CFLOOR="$bdir/bench/client_floor"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 100); do port_free "$1" || return 0; sleep 0.1; done; return 1; }

# Stop a PID we started: SIGTERM, wait (pusherd drains), SIGKILL after 10 s.
stop_pid() {
  local p=$1
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  local keep=(); for q in "${started[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
  started=("${keep[@]}")
}

start_pusherd() { # port -> sets SERVER_PID
  port_free "$1" || { echo "run.sh: port $1 busy" >&2; return 1; }
  "$PUSHERD" --port "$1" --log-level error >"$work/pusherd-$1.log" 2>&1 &
  SERVER_PID=$!; started+=("$SERVER_PID")
  wait_port "$1" || { echo "run.sh: pusherd did not start" >&2; cat "$work/pusherd-$1.log" >&2; return 1; }
}
start_soketi() { # port -> sets SERVER_PID
  port_free "$1" || { echo "run.sh: port $1 busy" >&2; return 1; }
  SOKETI_METRICS_ENABLED=false SOKETI_METRICS_SERVER_PORT=$(($1 + 1)) SOKETI_CLUSTER_PORT=$(($1 + 2)) \
    "$root/tests/peers/soketi-up.sh" "$1" >"$work/soketi-up.log" 2>&1 ||
    { cat "$work/soketi-up.log" >&2; return 1; }
  soketi_up=1 soketi_port=$1
  SERVER_PID=$(cat "$root/tests/peers/run/soketi-$1.pid")
}
stop_soketi() {
  "$root/tests/peers/soketi-down.sh" "$1" >/dev/null 2>&1
  for _ in $(seq 1 100); do port_free "$1" && break; sleep 0.1; done
  soketi_up=0
}

# `pusher bench --json` -> one line "RESULT label=LABEL a.b=v ..." (nested
# keys joined with dots; null is n/a), for median() below.
result_line() { # label < json
  python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
out = ["RESULT", "label=" + sys.argv[1]]
def walk(p, v):
    if isinstance(v, dict):
        for k, x in v.items(): walk(p + [k], x)
    elif isinstance(v, bool): out.append("%s=%d" % (".".join(p), v))
    elif isinstance(v, int): out.append("%s=%d" % (".".join(p), v))
    elif isinstance(v, float): out.append("%s=%s" % (".".join(p), "%.0f" % v if abs(v) >= 1000 else "%.3g" % v))
walk([], d)
print(" ".join(out))' "$1"
}

# median FILE LABEL KEY: median of KEY= over the RESULT lines with label=LABEL
median() {
  grep "label=$2 " "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$3=//p" | sort -g |
    awk '{v[NR]=$1} END {if (NR==0) {print "n/a"; exit} if (NR%2) m=v[(NR+1)/2]; else m=(v[NR/2]+v[NR/2+1])/2; print m}'
}
row() { # file title key labels... (with optional printf format in $FMT)
  local f=$1 t=$2 k=$3; shift 3
  printf "| %-34s" "$t"
  for l in "$@"; do printf " | %14s" "$(median "$f" "$l" "$k")"; done
  printf " |\n"
}
header() { # title labels...
  printf "| %-34s" "$1"; shift
  for l in "$@"; do printf " | %14s" "$l"; done; printf " |\n"
  printf "|%s" "------------------------------------"; for _ in "$@"; do printf "|%s" "----------------:"; done; printf "|\n"
}

echo "libpusher bench $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(git -C "$root" rev-parse --short HEAD 2>/dev/null)" >&2

# Run R of one configuration: one `pusher bench --json` per server, appended
# to FILE as RESULT lines labelled SERVER-TAG.  The sections loop over the
# runs outside the configurations, so that a burst of load from other
# processes on the machine falls on all of them alike.
# bench_round FILE TAG NAME R BENCH-ARGS...
bench_round() {
  local f=$1 tag=$2 name=$3 r=$4 srv port; shift 4
  for srv in pusherd soketi; do
    if [ "$srv" = pusherd ]; then start_pusherd $PUSHERD_PORT || exit 1; port=$PUSHERD_PORT
    else start_soketi $SOKETI_BENCH_PORT || exit 1; port=$SOKETI_BENCH_PORT; fi
    sleep 0.5
    echo "== $name run $r/$runs: $srv (pid $SERVER_PID): $*" >&2
    "${BENCH[@]}" --port "$port" --server-pid "$SERVER_PID" --timeout 30 --json "$@" \
      >"$work/$tag-$srv-$r.json" || echo "run.sh: pusher bench reported a failure ($name, $srv run $r)" >&2
    result_line "$srv-$tag" <"$work/$tag-$srv-$r.json" >>"$f" ||
      echo "run.sh: no JSON from pusher bench ($name, $srv run $r)" >&2
    # each run's p99 and the generator's share, to see the spread behind the median
    tail -1 "$f" | tr ' ' '\n' | grep -E '^(latency_us.p99|self.loop_cpu_share|stalled.cut)=' | tr '\n' ' ' |
      sed 's/^/   /; s/$/\n/' >&2
    if [ "$srv" = pusherd ]; then stop_pid "$SERVER_PID"; else stop_soketi $SOKETI_BENCH_PORT; fi
  done
}

# ------------------------------------------------------------------ server_fanout
if [ -z "$only" ] || [ "$only" = fanout ]; then
  F="$work/fanout.txt"; : >"$F"
  for r in $(seq 1 "$runs"); do
    for k in $http_conns; do
      bench_round "$F" "p$k" server_fanout "$r" --subscribers "$subs" --events "$events" --rate "$rate" --publishers "$k"
    done
  done
  echo
  echo "server_fanout: $subs subscribers on one channel, $events REST events (rate ${rate}/s, 0 = max), published over K"
  echo "concurrent HTTP connections (pK: K = $http_conns), pusher bench, median of $runs"
  fcols=(); for k in $http_conns; do fcols+=("pusherd-p$k" "soketi-p$k"); done
  header "metric" "${fcols[@]}"
  row "$F" "deliveries (of $((subs * events)))" deliveries.received "${fcols[@]}"
  row "$F" "lost + duplicated" deliveries.lost "${fcols[@]}"
  row "$F" "throughput (deliveries/s)" deliveries.per_s "${fcols[@]}"
  row "$F" "latency p50 (us, trigger->recv)" latency_us.p50 "${fcols[@]}"
  row "$F" "latency p90 (us)" latency_us.p90 "${fcols[@]}"
  row "$F" "latency p99 (us)" latency_us.p99 "${fcols[@]}"
  row "$F" "latency p99.9 (us)" latency_us.p99_9 "${fcols[@]}"
  row "$F" "latency max (us)" latency_us.max "${fcols[@]}"
  row "$F" "server CPU per delivery (us)" server.cpu_us_per_delivery "${fcols[@]}"
  row "$F" "server CPU, publish phase (s)" server.cpu_s "${fcols[@]}"
  row "$F" "server CPU, share of 1 core" server.cpu_share "${fcols[@]}"
  row "$F" "server RSS before clients (KiB)" server.rss_kb_before "${fcols[@]}"
  row "$F" "server RSS, N idle subs (KiB)" server.rss_kb_idle "${fcols[@]}"
  row "$F" "RSS growth per idle sub (KiB)" server.rss_kb_per_idle_sub "${fcols[@]}"
  row "$F" "server RSS at end (KiB)" server.rss_kb_end "${fcols[@]}"
  row "$F" "server peak RSS VmHWM (KiB)" server.hwm_kb "${fcols[@]}"
  row "$F" "connect+subscribe all (s)" connect.total_s "${fcols[@]}"
  row "$F" "subscribed per socket p50 (ms)" connect.subscribe_ms.p50 "${fcols[@]}"
  row "$F" "subscribed per socket p99 (ms)" connect.subscribe_ms.p99 "${fcols[@]}"
  row "$F" "load generator CPU, publish (s)" self.cpu_s "${fcols[@]}"
  row "$F" "bench event loop, share of 1 core" self.loop_cpu_share "${fcols[@]}"
  echo
fi

# ------------------------------------------------------------------ latency
# Paced: 500 events at 50/s (10 s) and 200 at 10/s (20 s), so that the p99
# stands on at least 200 events x N subscribers; and 2500 events at 500/s
# to 100 subscribers (5 s), the same 50,000 deliveries/s, where the
# generator's one event loop reads 100 deliveries per event, not 1000.
if [ -z "$only" ] || [ "$only" = latency ]; then
  L="$work/latency.txt"; : >"$L"
  for r in $(seq 1 "$runs"); do
    bench_round "$L" r50 latency "$r" --subscribers "$lat_subs" --events 500 --rate 50
    bench_round "$L" r10 latency "$r" --subscribers "$lat_subs" --events 200 --rate 10
    bench_round "$L" s100 latency "$r" --subscribers 100 --events 2500 --rate 500
  done
  echo
  echo "latency: paced REST events (one per request) on one channel, pusher bench, median of $runs;"
  echo "r50: $lat_subs subscribers x 50 events/s, r10: $lat_subs x 10/s, s100: 100 subscribers x 500/s"
  cols=(pusherd-r50 soketi-r50 pusherd-r10 soketi-r10 pusherd-s100 soketi-s100)
  header "metric" "${cols[@]}"
  row "$L" "deliveries/s" deliveries.per_s "${cols[@]}"
  row "$L" "lost + duplicated" deliveries.lost "${cols[@]}"
  row "$L" "latency p50 (us)" latency_us.p50 "${cols[@]}"
  row "$L" "latency p90 (us)" latency_us.p90 "${cols[@]}"
  row "$L" "latency p99 (us)" latency_us.p99 "${cols[@]}"
  row "$L" "latency p99.9 (us)" latency_us.p99_9 "${cols[@]}"
  row "$L" "latency max (us)" latency_us.max "${cols[@]}"
  row "$L" "HTTP request p50 (ms)" publish.request_ms.p50 "${cols[@]}"
  row "$L" "server CPU, share of 1 core" server.cpu_share "${cols[@]}"
  row "$L" "server CPU per delivery (us)" server.cpu_us_per_delivery "${cols[@]}"
  row "$L" "bench event loop, share of 1 core" self.loop_cpu_share "${cols[@]}"
  row "$L" "bench publisher CPU (s)" self.publisher_cpu_s "${cols[@]}"
  echo
fi

# ------------------------------------------------------------------ slow
# Stalled subscribers must fill the server's queue within the run: 100
# events/s of --slow-payload bytes for 10 s (8 MB per stalled socket with
# the default 8000; pusherd's cap is 4 MiB, soketi's uWS backpressure
# limit 1 MiB, both defaults).
if [ -z "$only" ] || [ "$only" = slow ]; then
  S="$work/slow.txt"; : >"$S"
  for r in $(seq 1 "$runs"); do
    bench_round "$S" st0 slow "$r" --subscribers "$slow_subs" --events 1000 --rate 100 --payload "$slow_payload"
    bench_round "$S" st10 slow "$r" --subscribers "$slow_subs" --events 1000 --rate 100 --payload "$slow_payload" --stalled 10
  done
  echo
  echo "slow: $slow_subs reading subscribers + 0 or 10 stalled (--stalled, never read after subscribing), 1000 events of ${slow_payload} B at 100/s, median of $runs"
  cols=(pusherd-st0 pusherd-st10 soketi-st0 soketi-st10)
  header "metric (readers only, but stalled)" "${cols[@]}"
  row "$S" "readers: deliveries" deliveries.received "${cols[@]}"
  row "$S" "readers: lost + duplicated" deliveries.lost "${cols[@]}"
  row "$S" "readers: latency p50 (us)" latency_us.p50 "${cols[@]}"
  row "$S" "readers: latency p99 (us)" latency_us.p99 "${cols[@]}"
  row "$S" "readers: latency p99.9 (us)" latency_us.p99_9 "${cols[@]}"
  row "$S" "stalled: cut by the server" stalled.cut "${cols[@]}"
  row "$S" "stalled: closed with 4100" stalled.close_4100 "${cols[@]}"
  row "$S" "stalled: still open at end" stalled.still_open "${cols[@]}"
  row "$S" "stalled: events got (max)" stalled.events_max "${cols[@]}"
  row "$S" "stalled: events missed (all)" stalled.missed "${cols[@]}"
  row "$S" "stalled: cut after (s, last)" stalled.cut_after_s_max "${cols[@]}"
  row "$S" "server peak RSS VmHWM (KiB)" server.hwm_kb "${cols[@]}"
  row "$S" "server CPU per delivery (us)" server.cpu_us_per_delivery "${cols[@]}"
  row "$S" "bench event loop, share of 1 core" self.loop_cpu_share "${cols[@]}"
  echo
fi

# ------------------------------------------------------------------ client_recv
# Three receivers, one after the other, of the same stream from one pusherd:
# libpusher (bench/client_recv.c), pusher-js (client_recv_pusherjs.cjs) and
# client_floor (bench/client_floor.c: epoll_wait + read and a frame count,
# no library), at the given rate and at the saturating one.  wakeups are
# voluntary context switches (getrusage ru_nvcsw): one per sleep in
# epoll_wait, so events/wakeup is how many events one wakeup carried.
recv_pass() { # rate publishers file
  local rate=$1 pubs=$2 R=$3 cl out cpid
  for r in $(seq 1 "$runs"); do
    for cl in libpusher pusher-js floor; do
      out="$work/client-$cl-$r.out"; : >"$out"
      case $cl in
        libpusher) "$CRECV" --port $RECV_PORT --channel bench-recv-0 --count "$recv_events" >"$out" 2>&1 & ;;
        pusher-js) node "$here/client_recv_pusherjs.cjs" --port $RECV_PORT --channel bench-recv-0 --count "$recv_events" >"$out" 2>&1 & ;;
        floor) "$CFLOOR" --port $RECV_PORT --channel bench-recv-0 --count "$recv_events" >"$out" 2>&1 & ;;
      esac
      cpid=$!; started+=("$cpid")
      for _ in $(seq 1 200); do grep -q READY "$out" && break; sleep 0.05; done
      echo "== client_recv run $r/$runs: $cl (pid $cpid), $recv_events events at ${rate}/s, $pubs publisher(s)" >&2
      "${BENCH[@]}" --port $RECV_PORT --channel-prefix bench-recv --subscribers 0 --events "$recv_events" \
        --batch --rate "$rate" --publishers "$pubs" --timeout 30 >"$work/publisher.log" 2>&1 ||
        { echo "run.sh: the publisher failed:" >&2; tail -5 "$work/publisher.log" >&2; }
      for _ in $(seq 1 600); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
      stop_pid "$cpid"
      grep RESULT "$out" >>"$R" || { echo "run.sh: $cl gave no result:" >&2; cat "$out" >&2; }
    done
  done
}
recv_table() { # rate publishers file
  local rate=$1 pubs=$2 R=$3
  echo "client_recv: $recv_events events (~80 B frames) from pusherd at ${rate}/s (0 = as fast as they go), $pubs publisher(s), batches of 10, median of $runs"
  header "metric" libpusher pusher-js floor
  row "$R" "events received" events libpusher pusher-js floor
  row "$R" "client CPU per event (us)" cpu_us_per_event libpusher pusher-js floor
  row "$R" "client CPU total (s)" cpu_s libpusher pusher-js floor
  row "$R" "  of which user (s)" user_s libpusher pusher-js floor
  row "$R" "  of which system (s)" sys_s libpusher pusher-js floor
  row "$R" "wakeups (voluntary ctx switches)" wakeups libpusher pusher-js floor
  row "$R" "events per wakeup" events_per_wakeup libpusher pusher-js floor
  row "$R" "RSS when subscribed (KiB)" rss_ready_kb libpusher pusher-js floor
  row "$R" "peak RSS (KiB)" maxrss_kb libpusher pusher-js floor
  local a b f
  a=$(median "$R" libpusher cpu_us_per_event) b=$(median "$R" pusher-js cpu_us_per_event) f=$(median "$R" floor cpu_us_per_event)
  printf "| %-34s | %14s | %14s | %14s |\n" "CPU/event vs pusher-js" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN{if (b > 0) printf "1/%.1f", b / a; else print "n/a"}')" "1" \
    "$(awk -v a="$f" -v b="$b" 'BEGIN{if (b > 0) printf "1/%.1f", b / a; else print "n/a"}')"
}
if [ -z "$only" ] || [ "$only" = recv ]; then
  R="$work/recv.txt"; : >"$R"
  RS="$work/recv-sat.txt"; : >"$RS"
  start_pusherd $RECV_PORT || exit 1
  recv_pass "$recv_rate" 1 "$R"
  recv_pass "$recv_sat_rate" "$recv_sat_pubs" "$RS"
  stop_pid "$SERVER_PID"
  # callgrind: instructions per event of our core (deterministic), with the
  # counting binding alone and behind 999 that do not match.
  ir_per=()
  for nb in 1 1000; do
    if command -v valgrind >/dev/null; then
      cg="$work/callgrind-$nb.out"
      valgrind --tool=callgrind --callgrind-out-file="$cg" --collect-atstart=no \
        --toggle-collect=feed_events "$CCORE" --events "$core_events" --bindings $nb >"$work/core.txt" 2>"$work/valgrind.log"
      ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$cg")
      ir_per+=("$(awk -v a="$ir" -v b="$core_events" 'BEGIN{printf "%.0f", a/b}')")
    else ir_per+=("n/a"); fi
  done
  nat=$(for _ in $(seq 1 "$runs"); do "$CCORE" --events "$core_events"; done | tr ' ' '\n' |
        sed -n 's/^ns_per_event=//p' | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
  recv_table "$recv_rate" 1 "$R"
  echo
  recv_table "$recv_sat_rate" "$recv_sat_pubs" "$RS"
  echo
  header "our core, no I/O (bench/client_core.c)" libpusher
  printf "| %-34s | %14s |\n" "instructions/event (callgrind)" "${ir_per[0]}"
  printf "| %-34s | %14s |\n" "  same, behind 999 other bindings" "${ir_per[1]}"
  printf "| %-34s | %14s |\n" "ns/event (native)" "$nat"
  echo
fi

# ------------------------------------------------------------------ clients
# N client connections in one process, each subscribed (client i to
# bench-many-(i mod 100)) and receiving 10 events: libpusher in loop mode on
# one libuv loop, pusher-js in one Node process (after a full GC).  RSS per
# client = (RSS when all are subscribed - RSS before the first) / N.
if [ -z "$only" ] || [ "$only" = clients ]; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null # N sockets in the client, N in pusherd
  M="$work/clients.txt"; : >"$M"
  start_pusherd $CLIENTS_PORT || exit 1
  for r in $(seq 1 "$runs"); do
    for cl in libpusher pusher-js; do
      out="$work/many-$cl-$r.out"; : >"$out"
      margs=(--port $CLIENTS_PORT --clients "$many_clients" --channels 100 --prefix bench-many --events 10)
      if [ "$cl" = libpusher ]; then "$bdir/bench/client_many" "${margs[@]}" >"$out" 2>&1 &
      else node --expose-gc "$here/client_many_pusherjs.cjs" "${margs[@]}" >"$out" 2>&1 &
      fi
      cpid=$!; started+=("$cpid")
      echo "== clients run $r/$runs: $cl (pid $cpid), $many_clients clients" >&2
      for _ in $(seq 1 1800); do grep -q READY "$out" && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
      "${BENCH[@]}" --port $CLIENTS_PORT --channel-prefix bench-many --channels 100 --subscribers 0 \
        --events 1000 --timeout 30 >"$work/publisher.log" 2>&1 ||
        { echo "run.sh: the publisher failed:" >&2; tail -5 "$work/publisher.log" >&2; }
      for _ in $(seq 1 600); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
      stop_pid "$cpid"
      sed -n 's/^RESULT /RESULT label='"$cl"' /p' "$out" | sed 's|events=\([0-9]*\)/\([0-9]*\)|events=\1 events_expected=\2|' >>"$M"
      grep -q RESULT "$out" || { echo "run.sh: $cl gave no result:" >&2; tail -5 "$out" >&2; }
    done
  done
  stop_pid "$SERVER_PID"
  echo "clients: $many_clients client connections in one process, subscribed to 100 channels of pusherd, 10 events each, median of $runs"
  header "metric" libpusher pusher-js
  row "$M" "subscribed" subscribed libpusher pusher-js
  row "$M" "events received" events libpusher pusher-js
  row "$M" "RSS per client (KiB)" rss_kb_per_client libpusher pusher-js
  row "$M" "peak RSS of the process (KiB)" maxrss_kb libpusher pusher-js
  echo
fi

# ------------------------------------------------------------------ server_conns
# Idle connections: N1 and N2 sockets subscribed to one channel, each count
# on a fresh server.  RSS per connection is (RSS when all are subscribed -
# RSS before the first) / N; the marginal figure is the slope between N1 and
# N2 ((RSS idle at N2 - at N1) / (N2 - N1), same run), which leaves out the
# fixed costs the first connections touch.  Server CPU is utime + stime of
# the server process over the whole `pusher bench` run (connecting and
# subscribing N, then one event).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# the load generator's user and system CPU (GNU time), when installed
if [ -x /usr/bin/time ]; then TIMEIT=(/usr/bin/time -f "%U %S" -o "$work/conns-time"); else TIMEIT=(); fi
if [ -z "$only" ] || [ "$only" = conns ]; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null # the servers inherit it; N2 must fit (20,000 here)
  C="$work/conns.txt"; : >"$C"
  for r in $(seq 1 "$runs"); do
    for srv in pusherd soketi; do
      for n in "$conns_small" "$conns_big"; do
        if [ "$srv" = pusherd ]; then start_pusherd $CONNS_PUSHERD_PORT || exit 1; port=$CONNS_PUSHERD_PORT
        else start_soketi $CONNS_SOKETI_PORT || exit 1; port=$CONNS_SOKETI_PORT; fi
        sleep 0.5
        echo "== server_conns run $r/$runs: $srv (pid $SERVER_PID), $n sockets on one channel" >&2
        t0=$(cpu_ticks "$SERVER_PID"); : >"$work/conns-time"
        "${TIMEIT[@]}" "${BENCH[@]}" --port "$port" --subscribers "$n" --channels 1 --events 1 --server-pid "$SERVER_PID" \
          --timeout 120 --json >"$work/conns-$srv-$n-$r.json" ||
          echo "run.sh: pusher bench reported a failure ($srv, $n sockets, run $r)" >&2
        t1=$(cpu_ticks "$SERVER_PID")
        python3 - "$work/conns-$srv-$n-$r.json" "$srv" "$n" "$t0" "$t1" "$(getconf CLK_TCK)" "$work/conns-time" >>"$C" <<'PY' ||
import json, sys
path, srv, n, t0, t1, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
gen = open(sys.argv[7]).read().split()
d = json.load(open(path))
s, c = d["server"], d["connect"]
out = ["RESULT", "label=%s-%d" % (srv, n)]
def put(k, v, f="%.3f"):
    if v is not None: out.append(("%s=" + f) % (k, v))
put("subscribed", c.get("subscribed"), "%d")
put("per_conn_kib", s.get("rss_kb_per_idle_sub"))
put("rss_before_kib", s.get("rss_kb_before"), "%d")
put("rss_idle_kib", s.get("rss_kb_idle"), "%d")
put("total_s", c.get("total_s"))
if c.get("subscribed"):
    put("ms_per_1000", c["total_s"] * 1e6 / c["subscribed"], "%.1f")
    put("cpu_us_per_conn", (t1 - t0) * 1e6 / hz / c["subscribed"], "%.1f")
    if len(gen) >= 2: put("gen_cpu_us_per_conn", (float(gen[-2]) + float(gen[-1])) * 1e6 / c["subscribed"], "%.1f")
put("sub_p50_ms", (c.get("subscribe_ms") or {}).get("p50"))
put("sub_p99_ms", (c.get("subscribe_ms") or {}).get("p99"))
print(" ".join(out))
PY
          echo "run.sh: no JSON from pusher bench ($srv, $n sockets, run $r)" >&2
        if [ "$srv" = pusherd ]; then stop_pid "$SERVER_PID"; else stop_soketi $CONNS_SOKETI_PORT; fi
      done
      # the marginal slope of this run
      python3 - "$work/conns-$srv-$conns_small-$r.json" "$work/conns-$srv-$conns_big-$r.json" "$srv" >>"$C" <<'PY' || true
import json, sys
a, b = (json.load(open(p))["server"] for p in sys.argv[1:3])
na, nb = (json.load(open(p))["connect"]["subscribed"] for p in sys.argv[1:3])
if a.get("rss_kb_idle") is not None and b.get("rss_kb_idle") is not None and nb > na:
    print("RESULT label=%s-slope slope_kib=%.3f" % (sys.argv[3], (b["rss_kb_idle"] - a["rss_kb_idle"]) / (nb - na)))
PY
    done
  done
  s1=$conns_small s2=$conns_big
  echo "server_conns: idle sockets subscribed to one channel (pusher bench --channels 1 --events 1), median of $runs"
  header "metric" pusherd soketi
  row "$C" "subscribed (of $s1)" subscribed pusherd-$s1 soketi-$s1
  row "$C" "subscribed (of $s2)" subscribed pusherd-$s2 soketi-$s2
  row "$C" "RSS before clients (KiB)" rss_before_kib pusherd-$s1 soketi-$s1
  row "$C" "RSS per idle conn at $s1 (KiB)" per_conn_kib pusherd-$s1 soketi-$s1
  row "$C" "RSS per idle conn at $s2 (KiB)" per_conn_kib pusherd-$s2 soketi-$s2
  row "$C" "RSS slope $s1->$s2 (KiB/conn)" slope_kib pusherd-slope soketi-slope
  row "$C" "RSS with $s2 idle (KiB)" rss_idle_kib pusherd-$s2 soketi-$s2
  row "$C" "connect+subscribe $s1 (s)" total_s pusherd-$s1 soketi-$s1
  row "$C" "connect+subscribe $s2 (s)" total_s pusherd-$s2 soketi-$s2
  row "$C" "  per 1000 sockets at $s1 (ms)" ms_per_1000 pusherd-$s1 soketi-$s1
  row "$C" "  per 1000 sockets at $s2 (ms)" ms_per_1000 pusherd-$s2 soketi-$s2
  row "$C" "server CPU per socket at $s1 (us)" cpu_us_per_conn pusherd-$s1 soketi-$s1
  row "$C" "server CPU per socket at $s2 (us)" cpu_us_per_conn pusherd-$s2 soketi-$s2
  row "$C" "load generator CPU/socket, $s1 (us)" gen_cpu_us_per_conn pusherd-$s1 soketi-$s1
  row "$C" "load generator CPU/socket, $s2 (us)" gen_cpu_us_per_conn pusherd-$s2 soketi-$s2
  row "$C" "subscribe p50 at $s2 (ms)" sub_p50_ms pusherd-$s2 soketi-$s2
  row "$C" "subscribe p99 at $s2 (ms)" sub_p99_ms pusherd-$s2 soketi-$s2
  echo
fi

# ------------------------------------------------------------------ idle
# pusherd's own idle RSS, sampled the way no section above can: once the
# log says it listens, before any connection (the sections wait for a port
# by connecting to it), then again after one WebSocket connection (the
# handshake, whose Sec-WebSocket-Accept is checked, and
# pusher:connection_established) came and went.
# Medians of RUNS starts; 1.5 s after each event, as tests/integration/pusherd_idle.sh.
vmrss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
if [ -z "$only" ] || [ "$only" = idle ]; then
I="$work/idle.txt"; : >"$I"
for r in $(seq 1 "$runs"); do
  port_free $PUSHERD_PORT || { echo "run.sh: port $PUSHERD_PORT busy" >&2; break; }
  "$PUSHERD" --port $PUSHERD_PORT --log-level info >"$work/pusherd-idle.log" 2>&1 &
  p=$!; started+=("$p")
  for _ in $(seq 1 100); do grep -q 'msg="pusherd listening"' "$work/pusherd-idle.log" && break; sleep 0.1; done
  sleep 1.5; a=$(vmrss "$p")
  ( exec 3<>"/dev/tcp/127.0.0.1/$PUSHERD_PORT" &&
    printf 'GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' >&3 &&
    read -r -t 5 -d '}' reply <&3 && [[ "$reply" == *s3pPLMBiTxaQ9kYGzzhZRbK+xOo=* ]] ) 2>/dev/null ||
    echo "run.sh: idle: the WebSocket handshake with pusherd failed" >&2
  sleep 1.5; b=$(vmrss "$p")
  stop_pid "$p"
  echo "RESULT label=pusherd before_kib=${a:-0} after_one_kib=${b:-0}" >>"$I"
done
echo "== idle pusherd VmRSS (KiB): $(grep -o 'before_kib=[0-9]*' "$I" | tr '\n' ' ')/ after one WebSocket connection: $(grep -o 'after_one_kib=[0-9]*' "$I" | tr '\n' ' ')" >&2
fi

# ------------------------------------------------------------------ goals
# Issue 10's table: each figure above as a ratio, with its goal.  Only the
# sections that ran have a line.
ratio() { # a b -> "a/b" as 1/x or x
  awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "n/a" || b == "n/a" || a + 0 <= 0 || b + 0 <= 0) { print "n/a"; exit }
    r = a / b; if (r < 1) printf "1/%.1f", 1 / r; else printf "%.2fx", r }'
}
goal() { printf "| %-52s | %-24s | %-22s |\n" "$1" "$2" "$3"; }
echo "goals (issue 10): medians of $runs, ratios pusherd/soketi and libpusher/pusher-js"
printf "| %-52s | %-24s | %-22s |\n" "figure" "measured" "goal"
printf "|%s|%s|%s|\n" "------------------------------------------------------" "--------------------------" "------------------------"
if [ -n "${F:-}" ]; then
  for k in $http_conns; do
    goal "server CPU per delivery, $subs subs, saturated, K=$k" \
      "$(ratio "$(median "$F" pusherd-p$k server.cpu_us_per_delivery)" "$(median "$F" soketi-p$k server.cpu_us_per_delivery)")" "<= 1/3 of soketi"
    goal "deliveries/s, same (bench loop share: $(median "$F" pusherd-p$k self.loop_cpu_share))" \
      "$(ratio "$(median "$F" pusherd-p$k deliveries.per_s)" "$(median "$F" soketi-p$k deliveries.per_s)")" ">= 3x, or bench-bound"
  done
fi
if [ -n "${I:-}" ]; then
  goal "pusherd idle RSS, no client yet (KiB)" "$(median "$I" pusherd before_kib)" "<= 5 MB"
  goal "pusherd idle RSS, after one WS connection (KiB)" "$(median "$I" pusherd after_one_kib)" "<= 5 MB"
fi
if [ -n "${L:-}" ]; then
  goal "p99, $lat_subs subs at 50,000 deliveries/s" \
    "$(ratio "$(median "$L" pusherd-r50 latency_us.p99)" "$(median "$L" soketi-r50 latency_us.p99)")" "<= 1/3 of soketi"
  goal "p99, 100 subs at 50,000 deliveries/s" \
    "$(ratio "$(median "$L" pusherd-s100 latency_us.p99)" "$(median "$L" soketi-s100 latency_us.p99)")" "<= 1/3 of soketi"
  goal "p99, $lat_subs subs at 10,000 deliveries/s" \
    "$(ratio "$(median "$L" pusherd-r10 latency_us.p99)" "$(median "$L" soketi-r10 latency_us.p99)")" "reported"
fi
if [ -n "${S:-}" ]; then
  goal "readers' p99 with 10 stalled - with 0 (pusherd, ms)" \
    "$(awk -v a="$(median "$S" pusherd-st10 latency_us.p99)" -v b="$(median "$S" pusherd-st0 latency_us.p99)" \
      'BEGIN{ if (a == "n/a" || b == "n/a") print "n/a"; else printf "%+.1f", (a - b) / 1000 }')" "a few ms"
  goal "stalled subscribers cut by pusherd (of 10)" "$(median "$S" pusherd-st10 stalled.cut)" "cut at the cap"
fi
if [ -n "${C:-}" ]; then
  goal "RSS per idle subscribed conn at $conns_small (KiB)" "$(median "$C" pusherd-$conns_small per_conn_kib)" "<= 1"
  goal "RSS per idle subscribed conn at $conns_big (KiB)" "$(median "$C" pusherd-$conns_big per_conn_kib)" "<= 1"
  goal "time to subscribe $conns_big sockets to one channel" \
    "$(ratio "$(median "$C" pusherd-$conns_big total_s)" "$(median "$C" soketi-$conns_big total_s)")" "<= 1/10 of soketi"
fi
if [ -n "${R:-}" ]; then
  goal "client CPU per event, ${recv_rate}/s" \
    "$(ratio "$(median "$R" libpusher cpu_us_per_event)" "$(median "$R" pusher-js cpu_us_per_event)")" "<= 1/10 of pusher-js"
  goal "client CPU per event, saturating" \
    "$(ratio "$(median "$RS" libpusher cpu_us_per_event)" "$(median "$RS" pusher-js cpu_us_per_event)")" "<= 1/10 of pusher-js"
fi
if [ -n "${M:-}" ]; then
  goal "client memory per connection at $many_clients (KiB)" \
    "$(median "$M" libpusher rss_kb_per_client) vs $(median "$M" pusher-js rss_kb_per_client)" "reported"
fi
