#!/usr/bin/env bash
# channels_soketi: private, presence, encrypted channels and sign-in end to end — libpusher clients (tests/tools/ch_probe.c)
# against soketi, authorized by tests/authserver/server.mjs (the official
# pusher SDK's authorizeChannel / authenticateUser):
#  - ajax (POST form + headers) and jsonp (GET + callback) transports, with
#    the auth server requiring a param (both) and a header (ajax);
#  - private subscribe; presence with two clients seeing each other join and
#    leave (member APIs exact); client events between two clients (user_id
#    on presence, no echo, local refusals and the 10/s window); an encrypted
#    channel receiving an event the SDK triggered with
#    encryptionMasterKeyBase64; sign-in and a sendToUser event;
#  - a signature refused by soketi (wrong secret), an auth server refusing
#    (403), returning garbage, slow (timeout) or down: subscription_error with
#    the status, the connection and other channels unaffected;
#  - kill -9 and restart of soketi: private + presence authorized again with
#    the new socket_id;
#  - custom authorizer/authenticator answering from a worker thread (and an
#    answer after pusher_client_del); params setter + header provider.
# Ports: soketi 7710, auth servers 7720-7726.
. "$(dirname "$0")/lib.sh"
require_bins
PORT=7710
PROBE="$PUSHER_BUILD_DIR/tests/ch_probe"
[ -x "$PROBE" ] || fail "$PROBE is not built"
SDK="$PUSHER_SOURCE_DIR/tests/integration/channels_sdk.mjs"
AUTHSRV="$PUSHER_SOURCE_DIR/tests/authserver/server.mjs"
export PEERS_CLIENTS="$PEERS/clients"
MASTER="$(python3 -c 'import base64; print(base64.b64encode(bytes(range(32))).decode())')"

declare -A AUTH_PID=()
auth_start() {   # NAME PORT ARGS...
  local name="$1" port="$2"; shift 2
  _port_free "$port" || fail "port $port is in use"
  node "$AUTHSRV" --port "$port" --master-key "$MASTER" "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" &
  local pid=$!
  _PIDS+=("$pid"); AUTH_PID[$name]=$pid
  wait_until 15 "auth server $name listening" grep -q '^listening' "$RUN_DIR/$name.out" ||
    fail "auth server $name did not start"
  log "auth server $name on :$port (pid $pid) $*"
}

# probe NAME ARGS...: run ch_probe in the foreground, expect PASS.
probe() {
  local name="$1"; shift
  log "probe $name: $*"
  if ! timeout "$(scaled 90)" "$PROBE" --ws-port "$PORT" "$@" >"$(out "$name")" 2>&1; then
    fail "probe $name failed: $(grep -m1 '^FAIL' "$(out "$name")" || tail -n 3 "$(out "$name")")"
  fi
  grep -q '^PASS' "$(out "$name")" || fail "probe $name did not pass"
}

# probe_bg NAME ARGS...: in the background (PROBE_PID); wait for READY.
probe_bg() {
  local name="$1"; shift
  log "probe $name (background): $*"
  timeout "$(scaled 120)" "$PROBE" --ws-port "$PORT" "$@" >"$(out "$name")" 2>&1 &
  PROBE_PID=$!
  _PIDS+=("$PROBE_PID")
  wait_until 30 "$name READY" grep -q '^READY' "$(out "$name")" || fail "probe $name never got READY"
}
probe_wait() {   # NAME: wait for the background probe, expect PASS
  local name="$1" rc=0
  wait "$PROBE_PID" || rc=$?
  [ "$rc" = 0 ] && grep -q '^PASS' "$(out "$name")" ||
    fail "probe $name failed (rc $rc): $(grep -m1 '^FAIL' "$(out "$name")" || tail -n 3 "$(out "$name")")"
}

requests() { curl -fsS "http://127.0.0.1:$1/requests"; }

soketi_start "$PORT"

# ---- ajax, param and header required by the auth server
auth_start ajax 7720 --require-param token=abc --require-header 'X-Token: t1'
AJ=(--auth-base http://127.0.0.1:7720 --param token=abc --header 'X-Token: t1')
probe ajax_private "${AJ[@]}" private
requests 7720 | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r, "no request seen"
for e in r:
    assert e["method"] == "POST", e
    assert e["params"].get("token") == "abc" and e["headers"].get("x-token") == "t1", e
    assert e["headers"].get("content-type") == "application/x-www-form-urlencoded", e
    assert set(e["params"]) >= {"socket_id", "channel_name"}, e
print("ajax requests ok:", len(r))' || fail "ajax requests not as expected"
probe ajax_presence "${AJ[@]}" presence
probe ajax_client_events "${AJ[@]}" client_events

probe_bg encrypted "${AJ[@]}" encrypted
node "$SDK" "$PORT" "$MASTER" trigger private-encrypted-room secret '{"msg":"hi"}' >"$RUN_DIR/sdk-enc.log" 2>&1 ||
  fail "SDK encrypted trigger failed: $(cat "$RUN_DIR/sdk-enc.log")"
probe_wait encrypted

probe_bg signin "${AJ[@]}" signin
node "$SDK" "$PORT" "$MASTER" user carol to-user '{"n":7}' >"$RUN_DIR/sdk-user.log" 2>&1 ||
  fail "SDK sendToUser failed: $(cat "$RUN_DIR/sdk-user.log")"
probe_wait signin
requests 7720 | python3 -c '
import json, sys
r = json.load(sys.stdin)
u = [e for e in r if e["path"] == "/pusher/user-auth"]
assert u and all(e["method"] == "POST" and e["params"].get("token") == "abc" and e["headers"].get("x-token") == "t1" for e in u), u
print("user-auth requests ok:", len(u))' || fail "user-auth requests not as expected"

# token refresh: params replaced by the setter, the header added by the provider
probe provider --auth-base http://127.0.0.1:7720 --param token=stale provider
# custom authorizer/authenticator answering from another thread
probe custom --auth-base http://127.0.0.1:7726 --master "$MASTER" custom

# a missing header (token refresh not done): the auth server answers 403
probe ajax_noheader --auth-base http://127.0.0.1:7720 --param token=abc autherr 403

# ---- jsonp: GET with callback, params in the query string
auth_start jsonp 7721 --require-param token=abc
JP=(--auth-base http://127.0.0.1:7721 --jsonp --param token=abc)
probe jsonp_private "${JP[@]}" private
probe jsonp_presence "${JP[@]}" presence
requests 7721 | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r, "no request seen"
for e in r:
    assert e["method"] == "GET" and e["params"].get("callback") and e["params"].get("token") == "abc", e
print("jsonp requests ok:", len(r))' || fail "jsonp requests not as expected"

# ---- failures
auth_start wrongsecret 7722 --secret not-the-secret
probe refused_by_soketi --auth-base http://127.0.0.1:7722 autherr 401
auth_start refuse 7723 --refuse
probe refused_403 --auth-base http://127.0.0.1:7723 autherr 403
auth_start garbage 7724 --garbage
probe garbage --auth-base http://127.0.0.1:7724 autherr 200
auth_start slow 7725 --slow 4000
probe slow --auth-base http://127.0.0.1:7725 --timeout 1 autherr null
_port_free 7726 || fail "port 7726 is in use"
probe down --auth-base http://127.0.0.1:7726 autherr null

# ---- kill -9 and restart of soketi: authorized again with the new socket_id
probe_bg reauth "${AJ[@]}" reauth
sid1="$(awk '/^READY/ { print $2 }' "$(out reauth)")"
soketi_kill "$PORT"
soketi_start "$PORT"
probe_wait reauth
sid2="$(awk '/^SOCKET/ { print $2 }' "$(out reauth)")"
requests 7720 | python3 -c '
import json, sys
sid1, sid2 = sys.argv[1], sys.argv[2]
r = json.load(sys.stdin)
chans = {(e["params"].get("channel_name"), e["params"].get("socket_id")) for e in r if e["path"] == "/pusher/auth"}
for ch in ("private-r", "presence-r"):
    assert (ch, sid1) in chans and (ch, sid2) in chans, (ch, sid1, sid2)
print("re-authorized with", sid1, "then", sid2)' "$sid1" "$sid2" || fail "channels not re-authorized with the new socket_id"

log "PASS"
