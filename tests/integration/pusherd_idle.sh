#!/usr/bin/env bash
# pusherd_idle: libcurl is opened only for webhooks (docs/webhooks.md,
# "libcurl at run time"):
#  - the pusherd executable has no NEEDED entry for libcurl (readelf -d);
#  - an idle pusherd without webhooks has no libcurl in /proc/PID/maps; its
#    VmRSS, RssAnon, RssFile and Pss are printed, and VmRSS must be under a
#    generous 8 MiB (not checked under the sanitizers; bench/README.md has
#    the measured figures: about 3.9 MB);
#  - the same pusherd after one WebSocket client (`pusher listen`) has
#    subscribed to a private channel, authorized by a small Python endpoint
#    that signs with Python's own hmac (an independent HMAC-SHA256), and one
#    REST publish (`pusher trigger`, body_md5 + signature) has reached it:
#    its VmRSS is printed and must still be under the same 8 MiB (pusherd's
#    handshake and signatures use no OpenSSL: docs/architecture.md,
#    "Hashing without OpenSSL"); still no libcurl mapped;
#  - a pusherd started with a webhook has libcurl mapped (delivery itself
#    is pusherd_webhooks.sh's);
#  - a SIGHUP reload that adds the first webhook loads libcurl;
#  - a libcurl that cannot be loaded (a broken libcurl.so.4 first on
#    LD_LIBRARY_PATH): a start with webhooks exits 1 with a message naming
#    the library and the loader's reason; a reload that adds a webhook is
#    refused with an error line, pusherd keeps running without libcurl and
#    a later reload without webhooks is applied.
# Ports: pusherd 7650, 7651, 7652, 7653 (webhook URLs point at 7655,
# where nothing listens), the auth endpoint 7656.
. "$(dirname "$0")/lib.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v python3 >/dev/null || fail "python3 not found (scripts/install-deps.sh)"
[ -x "$PUSHER_BIN" ] || fail "the CLI $PUSHER_BIN is not built"
for p in 7650 7651 7652 7653 7656; do _port_free "$p" || fail "port $p is in use"; done

if command -v readelf >/dev/null; then
  if readelf -d "$PUSHERD_BIN" | grep NEEDED | grep -q libcurl; then
    fail "pusherd links libcurl: $(readelf -d "$PUSHERD_BIN" | grep NEEDED | tr -s ' ')"
  fi
  log "readelf -d pusherd: no libcurl among $(readelf -d "$PUSHERD_BIN" | grep -c NEEDED) NEEDED entries"
fi

maps_curl() { grep -c libcurl "/proc/$1/maps" || true; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# start NAME PORT ARGS...: pusherd in the background, PID in $PD once it
# listens.  Seen from its log line, not by connecting: the idle figure is
# that of a pusherd that has had no client at all.
start() {
  local name="$1" port="$2"; shift 2
  "$PUSHERD_BIN" "$@" --log-level debug >"$RUN_DIR/$name.stdout" 2>"$RUN_DIR/$name.log" &
  PD=$!
  _PIDS+=("$PD")
  wait_until 10 "pusherd $name on :$port" grep -q "msg=\"pusherd listening\" host=127.0.0.1 port=$port " \
    "$RUN_DIR/$name.log" || fail "pusherd $name did not start"
}
stop() {   # PID: SIGTERM, expect status 0
  kill -TERM "$1"
  wait_until 15 "pusherd $1 to exit" eval '! _alive '"$1" || fail "pusherd $1 did not exit"
  local rc=0; wait "$1" || rc=$?
  [ "$rc" -eq 0 ] || fail "pusherd $1 exited with status $rc"
}
hook='"webhooks":[{"url":"http://127.0.0.1:7655/hook","event_types":["channel_occupied"]}]'
cfg() {   # FILE PORT [WEBHOOK-JSON]: one app, with the webhook if given
  printf '{"host":"127.0.0.1","port":%s,"apps":[{"id":"app-id","key":"app-key","secret":"app-secret"%s}]}\n' \
    "$2" "${3:+,$3}" >"$1"
}

# ---- idle, no webhooks: no libcurl; RSS printed
start idle 7650 --host 127.0.0.1 --port 7650
[ "$(maps_curl "$PD")" -eq 0 ] || fail "pusherd without webhooks has libcurl mapped: $(grep libcurl "/proc/$PD/maps")"
rss="$(status_kb "$PD" VmRSS)"
log "idle pusherd without webhooks: no libcurl mapped; VmRSS ${rss} kB, RssAnon $(status_kb "$PD" RssAnon) kB," \
  "RssFile $(status_kb "$PD" RssFile) kB, Pss $(awk '$1 == "Pss:" { print $2 }' "/proc/$PD/smaps_rollup") kB"
if grep -qE 'lib(asan|tsan|ubsan)' "/proc/$PD/maps"; then
  log "sanitizer build: the RSS ceiling is not checked"
else
  [ "$rss" -lt 8192 ] || fail "idle pusherd without webhooks: VmRSS $rss kB, expected under 8192 kB"
fi
grep -q 'libcurl loaded' "$RUN_DIR/idle.log" && fail "pusherd without webhooks logged that it loaded libcurl"

# ---- the same pusherd after a private subscribe and a REST publish
cat >"$RUN_DIR/auth.py" <<'PY'
# Channel authorization endpoint: "<key>:" hex HMAC-SHA256(secret,
# "<socket_id>:<channel_name>"), as docs/protocol.md describes.
import hashlib, hmac, http.server, json, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        msg = "%s:%s" % (form["socket_id"][0], form["channel_name"][0])
        sig = hmac.new(b"app-secret", msg.encode(), hashlib.sha256).hexdigest()
        body = json.dumps({"auth": "app-key:" + sig}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
srv.serve_forever()
PY
python3 "$RUN_DIR/auth.py" 7656 >"$RUN_DIR/auth.out" 2>"$RUN_DIR/auth.err" &
_PIDS+=("$!")
wait_until 10 "the auth endpoint" grep -q '^listening' "$RUN_DIR/auth.out" || fail "the auth endpoint did not start"
listen_start sub --host 127.0.0.1 --port 7650 --no-tls --key app-key \
  --auth-endpoint http://127.0.0.1:7656/pusher/auth private-idle
wait_for_line "$(out sub)" 'd.get("type") == "subscribed" and d["channel"] == "private-idle"' 10 0 \
  "${CLIENT_PID[sub]}" >/dev/null || fail "the private subscribe did not succeed: $(cat "$(out sub)")"
"$PUSHER_BIN" trigger --app-id app-id --key app-key --secret app-secret --host 127.0.0.1 --port 7650 \
  --no-tls private-idle idle-event '{"n":1}' >"$RUN_DIR/trigger.out" 2>&1 ||
  fail "pusher trigger failed: $(cat "$RUN_DIR/trigger.out")"
wait_for_line "$(out sub)" 'd.get("type") == "event" and d["event"] == "idle-event"' 10 0 \
  "${CLIENT_PID[sub]}" >/dev/null || fail "the published event did not arrive: $(cat "$(out sub)")"
rss="$(status_kb "$PD" VmRSS)"
log "pusherd after one private subscribe and one REST publish: VmRSS ${rss} kB, RssAnon" \
  "$(status_kb "$PD" RssAnon) kB, RssFile $(status_kb "$PD" RssFile) kB"
if ! grep -qE 'lib(asan|tsan|ubsan)' "/proc/$PD/maps"; then
  [ "$rss" -lt 8192 ] || fail "pusherd after one client: VmRSS $rss kB, expected under 8192 kB"
fi
[ "$(maps_curl "$PD")" -eq 0 ] || fail "pusherd without webhooks has libcurl mapped after a client"
client_stop sub
stop "$PD"

# ---- a webhook at start: libcurl mapped
cfg "$RUN_DIR/hook.json" 7651 "$hook"
start hook 7651 --config "$RUN_DIR/hook.json"
[ "$(maps_curl "$PD")" -gt 0 ] || fail "pusherd with a webhook has no libcurl mapped"
grep -q 'msg="webhooks: libcurl loaded" library=libcurl.so.4' "$RUN_DIR/hook.log" || fail "no 'libcurl loaded' log line"
log "pusherd with a webhook: libcurl mapped; VmRSS $(status_kb "$PD" VmRSS) kB"
stop "$PD"

# ---- a reload adds the first webhook: libcurl loaded then
cfg "$RUN_DIR/reload.json" 7652
start reload 7652 --config "$RUN_DIR/reload.json"
[ "$(maps_curl "$PD")" -eq 0 ] || fail "pusherd without webhooks has libcurl mapped before the reload"
cfg "$RUN_DIR/reload.json" 7652 "$hook"
kill -HUP "$PD"
wait_until 10 "the reload" grep -q 'msg="configuration reloaded"' "$RUN_DIR/reload.log" ||
  fail "the reload adding a webhook was not applied"
[ "$(maps_curl "$PD")" -gt 0 ] || fail "a reload added a webhook but libcurl is not mapped"
log "a reload that adds the first webhook: libcurl mapped after it"
stop "$PD"

# ---- libcurl that cannot be loaded
mkdir -p "$RUN_DIR/badlib"
echo "not a shared library" >"$RUN_DIR/badlib/libcurl.so.4"
rc=0
LD_LIBRARY_PATH="$RUN_DIR/badlib" "$PUSHERD_BIN" --config "$RUN_DIR/hook.json" >"$RUN_DIR/nolib.stdout" \
  2>"$RUN_DIR/nolib.log" || rc=$?
[ "$rc" -eq 1 ] || fail "a start with webhooks and no loadable libcurl exited with status $rc, not 1"
grep -q "^pusherd: cannot load libcurl.so.4 (needed by webhooks): .*badlib/libcurl.so.4" "$RUN_DIR/nolib.log" ||
  fail "no clear error for the libcurl that cannot be loaded: $(cat "$RUN_DIR/nolib.log")"
log "start with webhooks, libcurl not loadable: status 1, $(head -1 "$RUN_DIR/nolib.log")"

cfg "$RUN_DIR/nolib.json" 7653
LD_LIBRARY_PATH="$RUN_DIR/badlib" start nolibreload 7653 --config "$RUN_DIR/nolib.json"
cfg "$RUN_DIR/nolib.json" 7653 "$hook"
kill -HUP "$PD"
wait_until 10 "the refused reload" grep -q 'msg="reload refused; the running configuration is kept"' \
  "$RUN_DIR/nolibreload.log" || fail "the reload adding a webhook without libcurl was not refused"
grep -q 'reload refused; the running configuration is kept".*error="cannot load libcurl.so.4' \
  "$RUN_DIR/nolibreload.log" || fail "the refused reload's line does not name libcurl"
grep -q 'msg="configuration reloaded"' "$RUN_DIR/nolibreload.log" && fail "the reload was applied anyway"
_alive "$PD" || fail "pusherd died after the refused reload"
[ "$(maps_curl "$PD")" -eq 0 ] || fail "libcurl mapped after a refused load"
log "reload adding a webhook, libcurl not loadable: $(grep -o 'msg="reload refused.*' "$RUN_DIR/nolibreload.log")"
cfg "$RUN_DIR/nolib.json" 7653   # without the webhook again: applied
kill -HUP "$PD"
wait_until 10 "the next reload" grep -q 'msg="configuration reloaded"' "$RUN_DIR/nolibreload.log" ||
  fail "a reload without webhooks after the refused one was not applied"
log "the next reload without webhooks is applied"
stop "$PD"
log "PASS"
