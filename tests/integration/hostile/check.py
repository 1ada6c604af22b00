#!/usr/bin/env python3
"""Hostile servers against the client: run every scenario of
tests/tools/hostile_server.c with one `pusher listen --json` client each and
check what the client does.  Used by tests/integration/hostile_servers.sh.

  check.py PUSHER_BIN SERVER_LOG PORT RAW_PORT TLS_PORT RUN_DIR MULT

For every scenario the client must print an `error` line with the expected
error name (pusher_error, include/pusher/common.h) and a message matching the
expected pattern, and then, as include/pusher/pusher.h and lib/core/conn.c
document, either
  - reconnect: a `connecting_in` line with the first back-off delay
    (reconnect_delay 0.5 s, jittered to 0.25..0.5 s; none after a pong
    timeout, which retries at once), never `failed` or `disconnected`; the
    next attempt, timed on the client's own clock (from the error line to
    the next attempt's outcome), starts no sooner than announced (a client
    that retried at once would be a hot loop) and at most 1 s (scaled)
    later, and the server sees it, or
  - unavailable: kept failing past unavailable_timeout, the state becomes
    `unavailable` and every retry waits max_reconnect_delay, jittered, or
  - stay: Pusher-level garbage on an open connection is an `error` only (as
    pusher-js's MessageParseError): the next good event is delivered and no
    second connection is made, or
  - quiet: no error at all, and the client's pings stay at one a second.
While the server keeps misbehaving (every new connection gets the same
treatment) the client's CPU time is read from /proc/PID/stat (utime+stime)
over a CPU_WINDOW-second wall-clock window and must stay under CPU_MAX of one
core.  Each error/back-off cycle costs a few milliseconds of CPU, and the
window sees 2-6 of them, so a healthy client stays far below 5% even under
ASan; a hot loop (retrying without back-off, spinning on a dead socket,
reading a flood without end) uses a whole core.  20% leaves a wide margin for
a loaded 2-core machine without hiding a busy loop.  The peak RSS (VmHWM)
must stay under RSS_MAX: a client that believed a 256 MiB length header
would exceed it.  Finally SIGTERM must end the client with status 0 (under
ASan with detect_leaks=1 a leak makes that status non-zero).

Prints one table row per scenario; exit status 0 when every check held."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

PUSHER, SERVER_LOG, PORT, RAW_PORT, TLS_PORT, RUN_DIR, MULT = sys.argv[1:8]
MULT = float(MULT)
CPU_WINDOW = 2.0   # seconds of wall clock
CPU_MAX = 20.0     # percent of one core
RSS_MAX = 128 * 1024  # KiB
PARALLEL = 6
TICK = os.sysconf("SC_CLK_TCK")

RECONNECT, STAY, UNAVAILABLE, QUIET = "reconnect", "stay", "unavailable", "quiet"
# name: (error name, message pattern, mode, extra client arguments)
HS = "PUSHER_ERR_HANDSHAKE"
WS = "PUSHER_ERR_WEBSOCKET"
SCENARIOS = [
    ("garbage-before-101", HS, r'^malformed HTTP status line ".*garbage', RECONNECT, []),
    ("wrong-accept", HS, r"^Sec-WebSocket-Accept mismatch$", RECONNECT, []),
    # the same, kept up past unavailable_timeout: state unavailable, every
    # retry after max_reconnect_delay (1 s) jittered to 0.5..1 s
    ("wrong-accept.unavailable", HS, r"^Sec-WebSocket-Accept mismatch$", UNAVAILABLE,
     ["--unavailable-timeout", "1.5"]),
    ("missing-accept", HS, r"^missing Sec-WebSocket-Accept$", RECONNECT, []),
    ("unoffered-extension", HS, r"^server selected an extension we did not offer$", RECONNECT, []),
    ("unoffered-protocol", HS, r"^server selected a subprotocol we did not offer$", RECONNECT, []),
    ("endless-header", HS, r"^HTTP reply header over 16384 bytes$", RECONNECT, []),
    ("never-answer", "PUSHER_ERR_TIMEOUT", r"^connection attempt timed out$", RECONNECT, []),
    ("trickle-header", "PUSHER_ERR_TIMEOUT", r"^connection attempt timed out$", RECONNECT, []),
    ("silent-after-101", "PUSHER_ERR_TIMEOUT", r"^connection attempt timed out$", RECONNECT, []),
    ("http-200", HS, r"^unexpected HTTP status 200 OK$", RECONNECT, []),
    ("tls-plaintext", "PUSHER_ERR_TLS", r"^TLS handshake failed", RECONNECT, ["--tls", "--insecure"]),
    ("rsv1-compressed", WS, r"RSV1.*compress.*not negotiated", RECONNECT, []),
    ("rsv2", WS, r"reserved bit RSV2 set", RECONNECT, []),
    ("rsv3", WS, r"reserved bit RSV3 set", RECONNECT, []),
    ("opcode-reserved-data", WS, r"reserved opcode 0x3", RECONNECT, []),
    ("opcode-reserved-control", WS, r"reserved opcode 0xb", RECONNECT, []),
    ("masked-frame", WS, r"masked frame from the server", RECONNECT, []),
    ("control-too-long", WS, r"control frame \(opcode 0x9\) with a payload over 125 bytes", RECONNECT, []),
    ("control-fragmented", WS, r"fragmented control frame", RECONNECT, []),
    ("continuation-first", WS, r"continuation frame without a message", RECONNECT, []),
    ("data-inside-fragment", WS, r"new data frame inside a fragmented message", RECONNECT, []),
    ("length-16-nonminimal", WS, r"non-minimal payload length", RECONNECT, []),
    ("length-64-nonminimal", WS, r"non-minimal payload length", RECONNECT, []),
    ("length-64-msb", WS, r"64-bit payload length with the most significant bit set", RECONNECT, []),
    ("length-256mib", "PUSHER_ERR_MSG_TOO_LARGE", r"^message over 262144 bytes$", RECONNECT, []),
    ("close-code-1005", WS, r"invalid close code 1005", RECONNECT, []),
    ("close-code-999", WS, r"invalid close code 999", RECONNECT, []),
    ("close-code-5000", WS, r"invalid close code 5000", RECONNECT, []),
    ("close-one-byte", WS, r"close frame with a 1-byte payload", RECONNECT, []),
    ("close-bad-utf8", WS, r"invalid UTF-8 in the close reason", RECONNECT, []),
    ("text-bad-utf8", WS, r"^invalid UTF-8 in text message$", RECONNECT, []),
    ("text-truncated-utf8", WS, r"^invalid UTF-8 in text message$", RECONNECT, []),
    ("binary-frame", WS, r"^binary frames are not supported$", RECONNECT, []),
    ("ping-flood", WS, r"^ping flood: more than 100 WebSocket pings in a second$", RECONNECT, []),
    ("pusher-ping-flood", "PUSHER_ERR_PROTO", r"^pusher:ping flood: more than 100 in a second$", RECONNECT, []),
    ("close-mid-frame", "PUSHER_ERR_IO", r"connection closed by peer in the middle of a frame", RECONNECT, []),
    ("reset-mid-frame", "PUSHER_ERR_IO", r"(closed by peer|reset)", RECONNECT, []),
    ("close-mid-header", "PUSHER_ERR_IO", r"connection closed by peer in the middle of a frame", RECONNECT, []),
    ("trickle-frame", "PUSHER_ERR_TIMEOUT", r"^no pusher:pong within the pong timeout$",
     RECONNECT, ["--activity-timeout", "1", "--pong-timeout", "1"]),
    ("not-json-first", "PUSHER_ERR_JSON", r"^invalid handshake: invalid JSON", RECONNECT, []),
    ("no-event-first", "PUSHER_ERR_PROTO", r'^invalid handshake: message has no "event"$', RECONNECT, []),
    ("no-socket-id", "PUSHER_ERR_PROTO", r"no usable socket_id", RECONNECT, []),
    ("not-json", "PUSHER_ERR_JSON", r"^invalid JSON", STAY, []),
    ("no-event", "PUSHER_ERR_PROTO", r'^message has no "event"$', STAY, []),
    ("deep-json", "PUSHER_ERR_JSON", r"^JSON nested deeper than 64 levels$", STAY, []),
    ("nul-in-json", "PUSHER_ERR_JSON", r"\\u0000 is not allowed", STAY, []),
    ("lone-surrogate", "PUSHER_ERR_JSON", r"invalid Unicode", STAY, []),
    # no error: the server's activity_timeout 0.001 is floored at 1 s, so the
    # client pings at most once a second (the server answers every ping)
    ("tiny-activity-timeout", None, None, QUIET, []),
    ("huge-message", "PUSHER_ERR_MSG_TOO_LARGE", r"^message over 262144 bytes$", RECONNECT, []),
    ("huge-fragmented", "PUSHER_ERR_MSG_TOO_LARGE", r"^message over 262144 bytes$", RECONNECT, []),
    ("silent-after-established", "PUSHER_ERR_TIMEOUT", r"^no pusher:pong within the pong timeout$",
     RECONNECT, ["--activity-timeout", "1", "--pong-timeout", "1"]),
]

# The same misbehaviour inside TLS (--tls-port; app key "<scenario>.tls"):
# the client's TLS read path (lib/uv/client.c, tls.c) meets it instead.
TLS_ARGS = ["--tls", "--insecure"]
TLS_SAME = ["endless-header", "never-answer", "rsv1-compressed", "length-256mib", "ping-flood",
            "pusher-ping-flood", "close-mid-frame", "reset-mid-frame", "trickle-frame", "not-json",
            "huge-fragmented"]
SCENARIOS += [(n + ".tls", e, p, m, x + TLS_ARGS) for (n, e, p, m, x) in SCENARIOS if n in TLS_SAME]


def scaled(s):
    return s * MULT


def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for line in text.split("\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"type": "not-json", "line": line})
    return out


def server_requests(key):
    """Epoch times of the server's "request" lines for app key key."""
    return [d["t"] for d in read_lines(SERVER_LOG)
            if d.get("key") == key and d.get("ev") == "request"]


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def wait_for(pred, timeout, proc):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        r = pred()
        if r is not None:
            return r
        if proc.poll() is not None:
            return pred()
        time.sleep(0.02)
    return None


class Case:
    def __init__(self, name, err, pattern, mode, extra):
        self.name, self.err, self.pattern, self.mode, self.extra = name, err, pattern, mode, extra
        self.problems = []
        self.row = {"scenario": name}

    def bad(self, msg):
        self.problems.append(msg)

    def run(self):
        out = os.path.join(RUN_DIR, "client-%s.out" % self.name)
        errf = os.path.join(RUN_DIR, "client-%s.err" % self.name)
        port = RAW_PORT if self.name == "tls-plaintext" else TLS_PORT if self.name.endswith(".tls") else PORT
        args = [PUSHER, "listen", "--json", "--host", "127.0.0.1", "--port", port,
                "--no-tls", "--key", self.name, "--reconnect-delay", "0.5",
                "--max-reconnect-delay", "1", "--connect-timeout", "2",
                "--unavailable-timeout", "30"] + self.extra + ["c1"]
        with open(out, "w") as fo, open(errf, "w") as fe:
            proc = subprocess.Popen(args, stdout=fo, stderr=fe)
        with open(os.path.join(RUN_DIR, ".pids"), "a") as f:
            f.write("%d %s\n" % (proc.pid, os.path.realpath(PUSHER)))
        try:
            self.drive(proc, out)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=scaled(15))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
                    self.bad("did not exit within %gs of SIGTERM" % scaled(15))
            else:
                rc = proc.returncode
                self.bad("client exited early")
            if rc != 0:
                self.bad("exit status %d after SIGTERM (want 0; ASan report in %s)" % (rc, errf))
        lines = read_lines(out)
        bad_states = [d for d in lines if d.get("type") == "state" and d.get("current") == "failed"]
        if bad_states:
            self.bad("state failed: %s" % bad_states[0])
        fatal = [d for d in lines if d.get("type") == "error" and d.get("fatal")]
        if fatal:
            self.bad("fatal error: %s" % fatal[0])

    def drive(self, proc, out):
        if self.mode == QUIET:
            self.check_quiet(proc, out)
            return
        def first_error():
            for i, d in enumerate(read_lines(out)):
                if d.get("type") == "error":
                    return i, d
            return None
        got = wait_for(first_error, 10, proc)
        if not got:
            self.bad("no error line")
            return
        idx, e = got
        t_err = e.get("t", 0.0)
        self.row.update(error=e.get("error"), code=e.get("code"), message=e.get("message"),
                        t_err=t_err)
        if e.get("error") != self.err:
            self.bad("error %s, want %s" % (e.get("error"), self.err))
        if e.get("code") is not None:   # no scenario sends a valid close code
            self.bad("error code %r, want null" % e.get("code"))
        if not re.search(self.pattern, e.get("message") or ""):
            self.bad("message %r does not match /%s/" % (e.get("message"), self.pattern))
        if self.mode == STAY:
            self.check_stay(proc, out, idx)
        elif self.mode == UNAVAILABLE:
            self.check_unavailable(proc, out)
        else:
            self.check_reconnect(proc, out, idx, t_err)

    def cpu_window(self, proc):
        a = cpu_ticks(proc.pid)
        w0 = time.monotonic()
        time.sleep(CPU_WINDOW)
        b = cpu_ticks(proc.pid)
        wall = time.monotonic() - w0
        pct = 100.0 * (b - a) / TICK / wall
        self.row["cpu"] = pct
        self.row["hwm_kib"] = vm_hwm(proc.pid)
        if pct >= CPU_MAX:
            self.bad("client CPU %.1f%% of a core over %.1fs (max %g%%)" % (pct, wall, CPU_MAX))
        if self.row["hwm_kib"] > RSS_MAX:
            self.bad("client peak RSS %d KiB (max %d)" % (self.row["hwm_kib"], RSS_MAX))

    def check_reconnect(self, proc, out, idx, t_err):
        now_retry = "pong timeout" in self.pattern   # pong timeout: retry at once (conn.c)
        if not now_retry:
            ci = wait_for(lambda: next((d for d in read_lines(out)[idx + 1:]
                                        if d.get("type") == "connecting_in"), None), 5, proc)
            if not ci:
                self.bad("no connecting_in after the error")
                return
            delay = ci.get("delay")
            self.row["announced"] = delay
            if not (isinstance(delay, (int, float)) and 0.25 - 1e-3 <= delay <= 0.5 + 1e-3):
                self.bad("first back-off %r s, want 0.25..0.5 (reconnect_delay 0.5, jittered)" % delay)
                return
        else:
            delay = 0.0
            self.row["announced"] = 0.0
        # The next attempt, on the client's own clock: its outcome (the next
        # error, or connected) minus the part of the attempt before it (the
        # 2 s connect timeout when the server never answers).
        timeout_first = self.err == "PUSHER_ERR_TIMEOUT" and not now_retry

        def next_outcome():
            for d in read_lines(out)[idx + 1:]:
                if d.get("type") == "error" or (d.get("type") == "state" and d.get("current") == "connected"):
                    return d
            return None
        nxt = wait_for(next_outcome, delay + 10, proc)
        if nxt is None:
            self.bad("no second attempt after the error")
            return
        observed = nxt.get("t", 0.0) - t_err - (2.0 if timeout_first else 0.0)
        self.row["observed"] = observed
        if observed < delay - 0.05:
            self.bad("retried after %.3fs, before the announced %.3fs" % (observed, delay))
        if observed > delay + scaled(1.0):
            self.bad("retried after %.3fs, long after the announced %.3fs" % (observed, delay))
        # ... and the server saw it
        if wait_for(lambda: True if len(server_requests(self.name)) >= 2 else None, 5, proc) is None:
            self.bad("the server saw %d connection(s), want a second one" % len(server_requests(self.name)))
        # state: an established connection goes back to connecting
        lines = read_lines(out)
        was_connected = any(d.get("type") == "state" and d.get("current") == "connected"
                            for d in lines[:idx])
        if was_connected:
            nxt = next((d for d in lines[idx + 1:] if d.get("type") == "state"), None)
            if not nxt or nxt.get("current") != "connecting":
                self.bad("after the error the state went to %s, want connecting" % nxt)
        self.cpu_window(proc)
        lines = read_lines(out)
        if any(d.get("type") == "state" and d.get("current") in ("disconnected", "failed")
               for d in lines):
            self.bad("the client gave up (disconnected/failed) instead of retrying")
        self.row["errors"] = sum(1 for d in lines if d.get("type") == "error")

    def check_quiet(self, proc, out):
        def connected():
            return next((d for d in read_lines(out)
                         if d.get("type") == "state" and d.get("current") == "connected"), None)
        if not wait_for(connected, 10, proc):
            self.bad("never connected")
            return
        t0 = time.time()
        self.cpu_window(proc)
        t1 = time.time()
        pings = [d for d in read_lines(SERVER_LOG)
                 if d.get("key") == self.name and d.get("ev") == "ping" and t0 <= d["t"] <= t1]
        self.row["pings"] = len(pings)
        self.row["error"] = "(no error: %d pings in %.1f s)" % (len(pings), t1 - t0)
        self.row["message"] = "connected, pinging at most once a second"
        if len(pings) > (t1 - t0) / 1.0 + 1:
            self.bad("%d pings in %.1fs: more than one a second" % (len(pings), t1 - t0))
        lines = read_lines(out)
        if any(d.get("type") == "error" for d in lines):
            self.bad("unexpected error line")
        states = [d.get("current") for d in lines if d.get("type") == "state"]
        if states != ["connecting", "connected"]:
            self.bad("states %s, want connecting then connected only" % states)

    def check_unavailable(self, proc, out):
        def unavailable():
            return next((i for i, d in enumerate(read_lines(out))
                         if d.get("type") == "state" and d.get("current") == "unavailable"), None)
        u = wait_for(unavailable, 1.5 + 5, proc)
        if u is None:
            self.bad("never went unavailable (unavailable_timeout 1.5 s)")
            return
        t_u = read_lines(out)[u].get("t", 0.0)
        if not 1.5 - 0.05 <= t_u <= 1.5 + scaled(1.0):
            self.bad("unavailable at t=%.3f, want about 1.5" % t_u)

        def retries():
            ds = [d for d in read_lines(out)[u + 1:] if d.get("type") == "connecting_in"]
            return ds if len(ds) >= 2 else None
        ds = wait_for(retries, 2 + 5, proc)
        if not ds:
            self.bad("fewer than 2 retries while unavailable")
            return
        self.row["announced"] = ds[0].get("delay")
        for d in ds:
            if not 0.5 - 1e-3 <= d.get("delay", -1) <= 1.0 + 1e-3:
                self.bad("retry delay %r while unavailable, want 0.5..1 (max_reconnect_delay 1)" % d.get("delay"))
        self.cpu_window(proc)
        lines = read_lines(out)
        later = [d.get("current") for d in lines[u + 1:] if d.get("type") == "state"]
        if later:
            self.bad("left unavailable for %s while the server kept failing" % later)
        self.row["errors"] = sum(1 for d in lines if d.get("type") == "error")

    def check_stay(self, proc, out, idx):
        def after_event():
            return next((d for d in read_lines(out)[idx + 1:]
                         if d.get("type") == "event" and d.get("event") == "after"), None)
        ev = wait_for(after_event, 5, proc)
        if not ev or ev.get("data") != {"n": 1}:
            self.bad("the event after the garbage was not delivered (%r)" % ev)
        self.cpu_window(proc)
        lines = read_lines(out)
        if any(d.get("type") == "state" and d.get("current") != "connected" for d in lines[idx + 1:]):
            self.bad("the connection did not stay up after a Pusher-level error")
        n = len(server_requests(self.name))
        if n != 1:
            self.bad("%d connections, want 1 (no reconnect)" % n)
        self.row["announced"] = self.row["observed"] = None
        self.row["errors"] = sum(1 for d in lines if d.get("type") == "error")


def main():
    only = os.environ.get("HOSTILE_ONLY")
    cases = [Case(*s) for s in SCENARIOS if not only or re.search(only, s[0])]
    lock = threading.Lock()
    queue = list(cases)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                c = queue.pop(0)
            t = time.monotonic()
            try:
                c.run()
            except Exception as ex:   # a harness bug must fail the test, not hang it
                c.bad("harness exception: %r" % ex)
            with lock:
                print("[%5.1fs] %-26s %s" % (time.monotonic() - T0, c.name,
                                              "ok" if not c.problems else "FAIL: " + "; ".join(c.problems)),
                      flush=True)
    T0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def f(v, fmt):
        return "-" if v is None else fmt % v
    print()
    print("| scenario | error event (error, message) | first retry announced / observed (s) | client CPU % | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for c in cases:
        r = c.row
        print("| %s | %s: %s | %s / %s | %s | %s |" % (
            c.name, r.get("error"), r.get("message"), f(r.get("announced"), "%.3f"),
            f(r.get("observed"), "%.3f"), f(r.get("cpu"), "%.1f"),
            f(r.get("hwm_kib") and r["hwm_kib"] / 1024.0, "%.1f")))
    failed = [c for c in cases if c.problems]
    print()
    if failed:
        for c in failed:
            print("FAIL %s: %s" % (c.name, "; ".join(c.problems)))
        return 1
    print("all %d scenarios passed" % len(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
