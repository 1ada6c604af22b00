#!/usr/bin/env bash
# cli_bench: `pusher bench` end to end against a real pusherd and soketi.
#  - 200 subscribers x 2 channels x 300 events --json --server-pid: exit 0,
#    every subscriber subscribed, received = 100 per channel x 300 events,
#    nothing lost, duplicated or reordered, percentiles ordered, request
#    and connect figures consistent, the server's CPU and RSS present
#  - --batch, 100 subscribers over 3 channels (34/33/33) x 95 events (32/32/31
#    per channel): expected = 3167 exactly, 10 requests
#  - --subscribers 0 publishes only: `pusher listen` sees the events, data
#    {"i":SEQ,"t":NS}, on PREFIX-0
#  - a wrong key: exit 1, the server's 4001 named; a wrong secret: exit 1,
#    the HTTP status named; JSON says ok false
#  - an open files hard limit too small for N: exit 1 with the reason
#  - no progress line when stderr is not a terminal; --progress forces it
#  - SIGINT while publishing: the report so far, verdict "interrupted", exit 1
#  - usage errors exit 2; --help exits 0
#  - --stalled 3 --payload 9000 against a pusherd whose output cap is 1 MiB:
#    the 3 raw subscribers that stop reading are cut by the server (a 4100
#    close frame, or an EOF once pusherd gave up flushing it: both counted
#    as cut, and pusherd's metrics count exactly three 4100 closes), while
#    the 5 that read get every padded event, in order; --stalled without
#    --no-tls is a usage error
#  - --threads 3, 30 subscribers over 3 channels x 200 events: every
#    delivery exactly once, JSON loops 3 with one CPU figure per loop (the
#    busiest one in loop_cpu_s); the same with --stalled 2 (the stalled
#    sockets stay on the main loop), with a wrong key (every loop gives up,
#    exit 1), SIGINT while publishing, and --threads above --subscribers
#    (one loop per subscriber); --threads 0 and 65 are usage errors
#  - a short run against soketi 1.6.1 (a third-party server)
# Benchmarks print figures; this test asserts counts and consistency only,
# never a duration.
# Ports: pusherd 7560, a small-cap pusherd 7561 (metrics 7562), soketi 7570
# (metrics 7571, cluster 7572).
. "$(dirname "$0")/lib.sh"
PORT=7560
SPORT=7570
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
command -v python3 >/dev/null || fail "python3 not found"
B=(bench --no-tls --host 127.0.0.1 --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET"
   --timeout "$(scaled 20)")

# run_rc OUT ERR CMD...: run CMD, print its exit status
run_rc() {
  local o="$1" e="$2" rc=0; shift 2
  "$@" >"$o" 2>"$e" </dev/null || rc=$?
  echo "$rc"
}

# check_json FILE PYTHON: run the assertions (d = the JSON object) on FILE.
check_json() {
  python3 - "$1" "$2" <<'PY' || fail "$(basename "$1"): JSON check failed (see above)"
import json, sys
text = open(sys.argv[1]).read()
lines = [l for l in text.split("\n") if l.strip()]
assert len(lines) == 1, "want exactly one JSON line, got %d: %r" % (len(lines), text[:300])
d = json.loads(lines[0])
def ordered(o, keys):
    v = [o[k] for k in keys]
    assert all(isinstance(x, (int, float)) for x in v), (keys, v)
    assert v == sorted(v), "not ordered: %s" % list(zip(keys, v))
exec(sys.argv[2])
print("json ok: " + sys.argv[1].rsplit("/", 1)[-1])
PY
}

# ------------------------------------------------------------ usage (no server)
for args in "bench" "bench --subscribers 5" "bench --subscribers x --events 5" \
            "bench --subscribers 5 --events 5 --rate -2" "bench --subscribers 5 --events 5 --bogus" \
            "bench --subscribers 5 --events 5 --stalled 2" "bench --subscribers 0 --events 5 --stalled 2 --no-tls" \
            "bench --subscribers 5 --events 5 --payload 100001" \
            "bench --subscribers 5 --events 5 --threads 0" "bench --subscribers 5 --events 5 --threads 65" \
            "bench --subscribers 5 --events 5 --threads two"; do
  rc="$(run_rc "$RUN_DIR/u.out" "$RUN_DIR/u.err" "$PUSHER_BIN" $args --app-id a --key k --secret s)"
  [ "$rc" = 2 ] || fail "pusher $args exited $rc, want 2"
  grep -q "^pusher bench: " "$RUN_DIR/u.err" || fail "pusher $args: no 'pusher bench:' message: $(cat "$RUN_DIR/u.err")"
done
rc="$(run_rc "$RUN_DIR/help.out" "$RUN_DIR/help.err" "$PUSHER_BIN" bench --help)"
[ "$rc" = 0 ] || fail "pusher bench --help exited $rc"
for o in --subscribers --channels --events --rate --batch --server-pid --json --connect-concurrency --payload --stalled --threads; do
  grep -q -- "$o" "$RUN_DIR/help.out" || fail "pusher bench --help does not mention $o"
done
# (to files first: grep -q would close the pipe early, and with pipefail the
# writer's SIGPIPE on a help text over one stdio buffer would fail the check)
"$PUSHER_BIN" --help >"$RUN_DIR/top-help.out"
grep -q "bench" "$RUN_DIR/top-help.out" || fail "pusher --help does not list bench"
"$PUSHER_BIN" help bench >"$RUN_DIR/help-bench.out"
grep -q -- "--subscribers" "$RUN_DIR/help-bench.out" || fail "pusher help bench does not show bench's help"
log "usage errors exit 2, --help exits 0"

# ------------------------------------------------------------ pusherd
_port_free "$PORT" || fail "port $PORT is in use"
"$PUSHERD_BIN" --port "$PORT" --log-level error >"$RUN_DIR/pusherd.out" 2>"$RUN_DIR/pusherd.log" &
PD_PID=$!
_PIDS+=("$PD_PID")
wait_until 10 "pusherd on :$PORT" eval '! _port_free '"$PORT" || fail "pusherd did not start"
log "pusherd on :$PORT (pid $PD_PID)"

rc="$(run_rc "$RUN_DIR/main.json" "$RUN_DIR/main.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 200 --channels 2 --events 300 --server-pid "$PD_PID" --json)"
[ "$rc" = 0 ] || fail "bench 200x2x300 against pusherd exited $rc: $(cat "$RUN_DIR/main.err")"
[ ! -s "$RUN_DIR/main.err" ] || fail "bench printed on stderr (no terminal: no progress line): $(cat -A "$RUN_DIR/main.err" | head -3)"
check_json "$RUN_DIR/main.json" '
assert d["ok"] is True and d["verdict"] == "ok", d["verdict"]
assert (d["subscribers"], d["channels"], d["events"], d["batch"], d["publishers"]) == (200, 2, 300, False, 1)
c = d["connect"]
assert c["attempted"] == 200 and c["subscribed"] == 200 and c["failed"] == 0 and c["first_error"] is None, c
assert c["total_s"] > 0
for h in (c["connect_ms"], c["subscribe_ms"]):
    ordered(h, ["p50", "p99", "max"]); assert h["p50"] > 0
assert c["connect_ms"]["p50"] <= c["subscribe_ms"]["p50"] * 1.02, c   # connected before subscribed
p = d["publish"]
assert p["triggered"] == 300 and p["requests"] == 300 and p["http_errors"] == 0 and p["first_error"] is None, p
assert p["events_per_s"] > 0; ordered(p["request_ms"], ["p50", "p99", "max"])
v = d["deliveries"]
assert v["expected"] == 100 * 300 and v["received"] == 100 * 300, v
assert v["lost"] == 0 and v["duplicates"] == 0 and v["out_of_order"] == 0 and v["foreign"] == 0 and v["disconnects"] == 0, v
assert v["duration_s"] > 0 and v["per_s"] > 0
assert abs(v["per_s"] * v["duration_s"] - v["received"]) <= 0.01 * v["received"] + 1, v
l = d["latency_us"]
ordered(l, ["p50", "p90", "p99", "p99_9", "max"]); assert l["p50"] > 0 and l["p50"] <= l["mean"] * 10
s = d["server"]
assert s["pid"] > 0
for k in ("cpu_s", "cpu_share", "cpu_us_per_delivery", "rss_kb_before", "rss_kb_idle", "rss_kb_end", "hwm_kb", "rss_kb_per_idle_sub"):
    assert isinstance(s[k], (int, float)), (k, s)
assert s["cpu_s"] >= 0 and s["rss_kb_before"] > 0 and s["rss_kb_idle"] > 0 and s["hwm_kb"] >= s["rss_kb_end"], s
assert abs(s["cpu_us_per_delivery"] - s["cpu_s"] * 1e6 / v["received"]) < 0.01, s
m = d["self"]
for k in ("cpu_s", "loop_cpu_s", "loop_cpu_share", "publisher_cpu_s", "rss_kb_idle", "maxrss_kb"):
    assert isinstance(m[k], (int, float)) and m[k] >= 0, (k, m)
assert m["loop_cpu_s"] <= m["cpu_s"] + 0.05 and m["maxrss_kb"] >= m["rss_kb_idle"], m
'
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["pid"])' "$RUN_DIR/main.json")" = "$PD_PID" ] ||
  fail "the JSON names another server pid"

# --batch, uneven spread: channels get 34/33/33 subscribers and 32/32/31 events.
rc="$(run_rc "$RUN_DIR/batch.json" "$RUN_DIR/batch.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 100 --channels 3 --events 95 --batch --publishers 1 --json)"
[ "$rc" = 0 ] || fail "bench --batch exited $rc: $(cat "$RUN_DIR/batch.err")"
check_json "$RUN_DIR/batch.json" '
assert d["ok"] is True and d["batch"] is True and d["server"] is None
assert d["publish"]["triggered"] == 95 and d["publish"]["requests"] == 10, d["publish"]
v = d["deliveries"]
assert v["expected"] == 32 * 34 + 32 * 33 + 31 * 33 == v["received"], v
assert v["lost"] == 0 and v["duplicates"] == 0 and v["out_of_order"] == 0, v
'

# Publish only, heard by `pusher listen` on PREFIX-0.
listen_start lis --no-tls --host 127.0.0.1 --port "$PORT" --key "$APP_KEY" --count 3 pub-only-0
expect_line lis "$(p_subscribed pub-only-0)" 20 "listen did not subscribe" >/dev/null
rc="$(run_rc "$RUN_DIR/pub.out" "$RUN_DIR/pub.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 0 --channels 2 --events 6 --rate 100 --channel-prefix pub-only)"
[ "$rc" = 0 ] || fail "bench --subscribers 0 exited $rc: $(cat "$RUN_DIR/pub.err")"
client_wait_exit lis 20
[ "$CLIENT_RC" = 0 ] || fail "listen exited $CLIENT_RC"
[ "$(count_lines "$(out lis)" 'd and d.get("type")=="event" and d["event"]=="bench" and d["data"]["i"] in (0,2,4) and isinstance(d["data"]["t"], int)')" = 3 ] ||
  fail "listen did not see events 0, 2, 4 with {\"i\",\"t\"} data on pub-only-0"
grep -q "result: *OK" "$RUN_DIR/pub.out" || fail "the text report has no 'result: OK' line"
log "publish-only run heard by pusher listen"

# A wrong key: every subscriber is refused (4001), reported, exit 1.
rc="$(run_rc "$RUN_DIR/badkey.json" "$RUN_DIR/badkey.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --key no-such-key --subscribers 50 --events 10 --json)"
[ "$rc" = 1 ] || fail "bench with a wrong key exited $rc, want 1"
grep -q "could not connect" "$RUN_DIR/badkey.err" || fail "wrong key: stderr does not say it: $(cat "$RUN_DIR/badkey.err")"
grep -q "4001" "$RUN_DIR/badkey.err" || fail "wrong key: stderr does not name the server's 4001: $(cat "$RUN_DIR/badkey.err")"
check_json "$RUN_DIR/badkey.json" '
assert d["ok"] is False and d["connect"]["subscribed"] == 0 and d["connect"]["failed"] > 0, d["connect"]
assert "4001" in d["connect"]["first_error"] and d["publish"]["requests"] == 0
assert d["connect"]["total_s"] is None and d["self"]["rss_kb_idle"] is None
'
# A wrong secret: the first request is refused; exit 1 naming the status.
rc="$(run_rc "$RUN_DIR/badsecret.out" "$RUN_DIR/badsecret.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --secret wrong --subscribers 10 --events 10)"
[ "$rc" = 1 ] || fail "bench with a wrong secret exited $rc, want 1"
grep -q "HTTP 401" "$RUN_DIR/badsecret.err" || fail "wrong secret: stderr does not name HTTP 401: $(cat "$RUN_DIR/badsecret.err")"
log "wrong key and wrong secret: exit 1 with the server's reason"

# Too few descriptors for N: a clear error before connecting.
rc="$(run_rc "$RUN_DIR/nofile.out" "$RUN_DIR/nofile.err" bash -c 'ulimit -n 100 && exec "$@"' _ \
  "$PUSHER_BIN" "${B[@]}" --port "$PORT" --subscribers 500 --events 1)"
[ "$rc" = 1 ] || fail "bench with 500 subscribers under ulimit -n 100 exited $rc, want 1"
grep -q "open files" "$RUN_DIR/nofile.err" || fail "no open-files message: $(cat "$RUN_DIR/nofile.err")"
# ... and a soft limit below N is raised to the hard limit.
rc="$(run_rc "$RUN_DIR/soft.json" "$RUN_DIR/soft.err" bash -c 'ulimit -Sn 64 && exec "$@"' _ \
  "$PUSHER_BIN" "${B[@]}" --port "$PORT" --subscribers 150 --events 2 --json)"
[ "$rc" = 0 ] || fail "bench with 150 subscribers under a soft limit of 64 exited $rc: $(cat "$RUN_DIR/soft.err")"

# A server PID that does not exist is a usage error.
rc="$(run_rc "$RUN_DIR/pid.out" "$RUN_DIR/pid.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 1 --events 1 --server-pid 2147483646)"
[ "$rc" = 2 ] || fail "bench --server-pid of no process exited $rc, want 2"

# --progress writes progress lines to stderr even without a terminal.
rc="$(run_rc "$RUN_DIR/prog.out" "$RUN_DIR/prog.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 20 --events 20 --rate 50 --progress)"
[ "$rc" = 0 ] || fail "bench --progress exited $rc"
grep -q "publishing: " "$RUN_DIR/prog.err" || fail "--progress printed no progress line"
# On a terminal (script(1) gives stderr a pty) the progress line is on by
# default, rewritten in place; the report still goes to stdout.
if command -v script >/dev/null; then
  script -qec "$(printf '%q ' "$PUSHER_BIN" "${B[@]}" --port "$PORT" --subscribers 20 --events 20 \
    --rate 50) >$(printf '%q' "$RUN_DIR/tty.out")" "$RUN_DIR/tty.typescript" </dev/null >/dev/null ||
    fail "bench on a terminal failed: $(cat "$RUN_DIR/tty.typescript")"
  grep -q $'\r\033\[Kpublishing: ' "$RUN_DIR/tty.typescript" || fail "no progress line on a terminal"
  grep -q "result: *OK" "$RUN_DIR/tty.out" || fail "no report on stdout with a terminal on stderr"
fi
log "descriptor limits, --server-pid check and --progress"

# SIGINT while publishing: the report of what was measured, verdict
# "interrupted", exit 1.
"$PUSHER_BIN" "${B[@]}" --port "$PORT" --subscribers 10 --events 100000 --rate 20 --progress \
  --json >"$RUN_DIR/int.json" 2>"$RUN_DIR/int.err" </dev/null &
INT_PID=$!
_PIDS+=("$INT_PID")
wait_until 20 "bench to start publishing" grep -q "publishing: [1-9]" "$RUN_DIR/int.err" ||
  fail "bench never started publishing"
kill -INT "$INT_PID"
wait_until 20 "bench to exit after SIGINT" eval '! _alive '"$INT_PID" || fail "bench did not exit after SIGINT"
rc=0; wait "$INT_PID" || rc=$?
[ "$rc" = 1 ] || fail "bench exited $rc after SIGINT, want 1"
grep -q "pusher bench: interrupted" "$RUN_DIR/int.err" || fail "no 'interrupted' message after SIGINT"
check_json "$RUN_DIR/int.json" '
assert d["ok"] is False and d["verdict"] == "interrupted", d["verdict"]
assert 0 < d["publish"]["triggered"] < 100000 and d["connect"]["subscribed"] == 10
'
log "SIGINT: report, verdict interrupted, exit 1"

# ------------------------------------------------------------ stalled subscribers
# A pusherd with a 1 MiB output cap; 3 stalled sockets each get 9 MB
# offered (1000 events of 9000 bytes), more than the cap plus any kernel
# buffers (a stalled socket's 4 KiB receive buffer and the server's send
# buffer, at most tcp_wmem's maximum, 4 MiB by default), so each must be
# cut.  The 5 readers are paced (100 events/s, 4.5 MB/s for all) so that
# they keep up even in the sanitizer builds: the cap alone is more than a
# second of one reader's traffic.
SMALL=7561
SMALL_METRICS=7562
_port_free "$SMALL" || fail "port $SMALL is in use"
printf '{"port":%d,"metrics_port":%d,"log_level":"error","max_output_queue_bytes":1048576,"apps":[{"id":"%s","key":"%s","secret":"%s"}]}\n' \
  "$SMALL" "$SMALL_METRICS" "$APP_ID" "$APP_KEY" "$APP_SECRET" >"$RUN_DIR/small.json"
"$PUSHERD_BIN" --config "$RUN_DIR/small.json" >"$RUN_DIR/small.out" 2>"$RUN_DIR/small.log" &
SMALL_PID=$!
_PIDS+=("$SMALL_PID")
wait_until 10 "pusherd on :$SMALL" eval '! _port_free '"$SMALL" || fail "the small-cap pusherd did not start"
rc="$(run_rc "$RUN_DIR/stalled.json" "$RUN_DIR/stalled.err" "$PUSHER_BIN" "${B[@]}" --port "$SMALL" \
  --subscribers 5 --stalled 3 --events 1000 --rate 100 --payload 9000 --json)"
[ "$rc" = 0 ] || fail "bench --stalled 3 exited $rc: $(cat "$RUN_DIR/stalled.err")"
check_json "$RUN_DIR/stalled.json" '
assert d["ok"] is True and d["payload"] == 9000, d["verdict"]
v = d["deliveries"]
assert v["expected"] == 5 * 1000 == v["received"], v
assert v["lost"] == 0 and v["duplicates"] == 0 and v["out_of_order"] == 0 and v["foreign"] == 0 and v["disconnects"] == 0, v
t = d["stalled"]
assert t["count"] == 3 and t["subscribed"] == 3, t
assert t["cut"] == 3 and t["close_4100"] + t["eof_without_close"] == 3, t
assert t["close_other"] == 0 and t["reset"] == 0 and t["still_open"] == 0 and t["malformed"] == 0, t
assert t["events_expected"] == 1000 and 0 < t["events_min"] <= t["events_max"] < 1000, t
assert t["missed"] >= 3 * (1000 - t["events_max"]), t
assert t["cut_after_s_min"] is not None and 0 <= t["cut_after_s_min"] <= t["cut_after_s_max"], t
'
# The server's own count: exactly three 4100 closes.
closes="$(curl -fsS "http://127.0.0.1:$SMALL_METRICS/metrics" |
  awk '/^pusherd_output_queue_closes_total/ {n += $NF} END {print n + 0}')"
[ "$closes" = 3 ] || fail "pusherd counted $closes output-queue (4100) closes, want 3"
# A stalled one that is offered little stays open and gets everything.
rc="$(run_rc "$RUN_DIR/stalled.txt" "$RUN_DIR/stalled-txt.err" "$PUSHER_BIN" "${B[@]}" --port "$SMALL" \
  --subscribers 2 --stalled 1 --events 5 --payload 10)"
[ "$rc" = 0 ] || fail "bench --stalled 1 (text) exited $rc: $(cat "$RUN_DIR/stalled-txt.err")"
grep -q "^stalled: *1 that stopped reading: 0 cut by the server.*1 still open; each got 5-5 of 5 events" \
  "$RUN_DIR/stalled.txt" || fail "the text report's stalled line: $(grep stalled "$RUN_DIR/stalled.txt")"
grep -q "^stalled:" "$RUN_DIR/pub.out" && fail "a stalled line without --stalled"
log "--stalled: 3 raw subscribers cut by pusherd (4100), the 5 readers lost nothing"

# ------------------------------------------------------------ --threads
# 30 subscribers, 10 per channel, on 3 loops (10 each, every loop hearing
# every channel); 200 events, 67/67/66 per channel: 2000 deliveries.
rc="$(run_rc "$RUN_DIR/thr.json" "$RUN_DIR/thr.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 30 --channels 3 --events 200 --threads 3 --server-pid "$PD_PID" --json)"
[ "$rc" = 0 ] || fail "bench --threads 3 exited $rc: $(cat "$RUN_DIR/thr.err")"
[ ! -s "$RUN_DIR/thr.err" ] || fail "bench --threads 3 printed on stderr: $(head -3 "$RUN_DIR/thr.err")"
check_json "$RUN_DIR/thr.json" '
assert d["ok"] is True and d["verdict"] == "ok", d["verdict"]
assert d["threads"] == 3
c = d["connect"]
assert c["attempted"] == 30 and c["subscribed"] == 30 and c["failed"] == 0, c
v = d["deliveries"]
assert v["expected"] == 10 * 200 and v["received"] == 10 * 200, v
assert v["lost"] == 0 and v["duplicates"] == 0 and v["out_of_order"] == 0 and v["foreign"] == 0 and v["disconnects"] == 0, v
ordered(d["latency_us"], ["p50", "p90", "p99", "p99_9", "max"])
assert abs(d["server"]["cpu_us_per_delivery"] - d["server"]["cpu_s"] * 1e6 / v["received"]) < 0.01, d["server"]
m = d["self"]
assert m["loops"] == 3 and len(m["loop_cpu_s_each"]) == 3, m
assert all(isinstance(x, (int, float)) and x >= 0 for x in m["loop_cpu_s_each"]), m
assert m["loop_cpu_s"] == max(m["loop_cpu_s_each"]), m
assert abs(m["loop_cpu_s_sum"] - sum(m["loop_cpu_s_each"])) <= 0.003, m
assert m["loop_cpu_s_sum"] <= m["cpu_s"] + 0.05, m
'
# Without --threads: one loop, the same fields.
check_json "$RUN_DIR/main.json" '
m = d["self"]
assert d["threads"] == 1 and m["loops"] == 1 and m["loop_cpu_s_each"] == [m["loop_cpu_s"]] == [m["loop_cpu_s_sum"]], m
'
# The text report names the loops.
rc="$(run_rc "$RUN_DIR/thr.txt" "$RUN_DIR/thr-txt.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 8 --channels 2 --events 20 --threads 4)"
[ "$rc" = 0 ] || fail "bench --threads 4 (text) exited $rc: $(cat "$RUN_DIR/thr-txt.err")"
grep -q "^pusher bench: 8 subscribers on 2 channels (.*), 4 event loops, 20 events" "$RUN_DIR/thr.txt" ||
  fail "the text report does not name 4 event loops: $(head -1 "$RUN_DIR/thr.txt")"
grep -q "^this process: .*(4 event loops .* in all, the busiest" "$RUN_DIR/thr.txt" ||
  fail "the text report's CPU line: $(grep '^this process' "$RUN_DIR/thr.txt")"
grep -q "^deliveries: *80 of 80 " "$RUN_DIR/thr.txt" || fail "text report: $(grep '^deliveries' "$RUN_DIR/thr.txt")"
# More threads than subscribers: one loop each.
rc="$(run_rc "$RUN_DIR/thr-few.json" "$RUN_DIR/thr-few.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --subscribers 2 --events 10 --threads 5 --json)"
[ "$rc" = 0 ] || fail "bench --subscribers 2 --threads 5 exited $rc: $(cat "$RUN_DIR/thr-few.err")"
check_json "$RUN_DIR/thr-few.json" '
assert d["ok"] is True and d["threads"] == 5 and d["self"]["loops"] == 2, d["self"]
assert d["deliveries"]["received"] == d["deliveries"]["expected"] == 20, d["deliveries"]
'
# A wrong key: every loop gives up, exit 1 with the server's 4001.
rc="$(run_rc "$RUN_DIR/thr-badkey.json" "$RUN_DIR/thr-badkey.err" "$PUSHER_BIN" "${B[@]}" --port "$PORT" \
  --key no-such-key --subscribers 40 --events 10 --threads 3 --connect-concurrency 6 --json)"
[ "$rc" = 1 ] || fail "bench --threads 3 with a wrong key exited $rc, want 1: $(cat "$RUN_DIR/thr-badkey.err")"
grep -q "4001" "$RUN_DIR/thr-badkey.err" || fail "threads, wrong key: no 4001 on stderr: $(cat "$RUN_DIR/thr-badkey.err")"
check_json "$RUN_DIR/thr-badkey.json" '
c = d["connect"]
assert d["ok"] is False and c["subscribed"] == 0 and c["failed"] == c["attempted"] > 0, c
assert "4001" in c["first_error"] and d["publish"]["requests"] == 0, d
'
# SIGINT while publishing, with threads.
"$PUSHER_BIN" "${B[@]}" --port "$PORT" --subscribers 12 --threads 3 --events 100000 --rate 20 --progress \
  --json >"$RUN_DIR/thr-int.json" 2>"$RUN_DIR/thr-int.err" </dev/null &
INT_PID=$!
_PIDS+=("$INT_PID")
wait_until 20 "bench --threads 3 to start publishing" grep -q "publishing: [1-9]" "$RUN_DIR/thr-int.err" ||
  fail "bench --threads 3 never started publishing"
kill -INT "$INT_PID"
wait_until 20 "bench --threads 3 to exit after SIGINT" eval '! _alive '"$INT_PID" ||
  fail "bench --threads 3 did not exit after SIGINT"
rc=0; wait "$INT_PID" || rc=$?
[ "$rc" = 1 ] || fail "bench --threads 3 exited $rc after SIGINT, want 1"
check_json "$RUN_DIR/thr-int.json" '
assert d["ok"] is False and d["verdict"] == "interrupted", d["verdict"]
assert 0 < d["publish"]["triggered"] < 100000 and d["connect"]["subscribed"] == 12 and d["self"]["loops"] == 3
'
# --stalled with threads: the raw sockets stay on the main loop, offered
# little, still open at the end with everything.
rc="$(run_rc "$RUN_DIR/thr-stalled.json" "$RUN_DIR/thr-stalled.err" "$PUSHER_BIN" "${B[@]}" --port "$SMALL" \
  --subscribers 6 --channels 2 --stalled 2 --events 10 --payload 10 --threads 3 --json)"
[ "$rc" = 0 ] || fail "bench --stalled 2 --threads 3 exited $rc: $(cat "$RUN_DIR/thr-stalled.err")"
check_json "$RUN_DIR/thr-stalled.json" '
assert d["ok"] is True and d["self"]["loops"] == 3, d["verdict"]
v = d["deliveries"]
assert v["expected"] == 3 * 10 == v["received"] and v["lost"] == 0 and v["duplicates"] == 0, v
t = d["stalled"]
assert t["count"] == 2 and t["subscribed"] == 2 and t["still_open"] == 2 and t["cut"] == 0, t
assert t["events_min"] == t["events_max"] == t["events_expected"] == 5 and t["missed"] == 0, t
'
log "--threads: 3 loops, every delivery once; with --stalled, a wrong key, SIGINT"

# ------------------------------------------------------------ soketi
SOKETI_METRICS_ENABLED=false SOKETI_METRICS_SERVER_PORT=$((SPORT + 1)) SOKETI_CLUSTER_PORT=$((SPORT + 2)) \
  soketi_start "$SPORT"
rc="$(run_rc "$RUN_DIR/soketi.json" "$RUN_DIR/soketi.err" "$PUSHER_BIN" "${B[@]}" --port "$SPORT" \
  --subscribers 60 --channels 2 --events 40 --server-pid "$(soketi_pid "$SPORT")" --json)"
[ "$rc" = 0 ] || fail "bench against soketi exited $rc: $(cat "$RUN_DIR/soketi.err")"
check_json "$RUN_DIR/soketi.json" '
assert d["ok"] is True and d["connect"]["subscribed"] == 60
v = d["deliveries"]
assert v["expected"] == 30 * 40 == v["received"] and v["lost"] == 0 and v["duplicates"] == 0 and v["out_of_order"] == 0, v
ordered(d["latency_us"], ["p50", "p90", "p99", "p99_9", "max"])
assert d["server"]["rss_kb_idle"] > 0 and d["server"]["cpu_s"] >= 0
'
log "soketi: 60 subscribers x 2 channels x 40 events, nothing lost"
log "PASS"
