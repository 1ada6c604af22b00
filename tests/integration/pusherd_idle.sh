#!/usr/bin/env bash
# pusherd_idle: libcurl is opened only for webhooks (docs/webhooks.md,
# "libcurl at run time"):
#  - the pusherd executable has no NEEDED entry for libcurl (readelf -d);
#  - an idle pusherd without webhooks has no libcurl in /proc/PID/maps; its
#    VmRSS, RssAnon, RssFile and Pss are printed, and VmRSS must be under a
#    generous 8 MiB (not checked under the sanitizers; bench/README.md has
#    the measured figures: about 3.9 MB);
#  - a pusherd started with a webhook has libcurl mapped (delivery itself
#    is pusherd_webhooks.sh's);
#  - a SIGHUP reload that adds the first webhook loads libcurl;
#  - a libcurl that cannot be loaded (a broken libcurl.so.4 first on
#    LD_LIBRARY_PATH): a start with webhooks exits 1 with a message naming
#    the library and the loader's reason; a reload that adds a webhook is
#    refused with an error line, pusherd keeps running without libcurl and
#    a later reload without webhooks is applied.
# Ports: pusherd 7650, 7651, 7652, 7653 (webhook URLs point at 7655,
# where nothing listens).
. "$(dirname "$0")/lib.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
for p in 7650 7651 7652 7653; do _port_free "$p" || fail "port $p is in use"; done

if command -v readelf >/dev/null; then
  if readelf -d "$PUSHERD_BIN" | grep NEEDED | grep -q libcurl; then
    fail "pusherd links libcurl: $(readelf -d "$PUSHERD_BIN" | grep NEEDED | tr -s ' ')"
  fi
  log "readelf -d pusherd: no libcurl among $(readelf -d "$PUSHERD_BIN" | grep -c NEEDED) NEEDED entries"
fi

maps_curl() { grep -c libcurl "/proc/$1/maps" || true; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# start NAME PORT ARGS...: pusherd in the background, PID in $PD once it
# listens.  Seen from its log line, not by connecting: the first client
# makes pusherd load OpenSSL's digests (docs/architecture.md), and this
# test measures a pusherd that has had none.
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
