#!/usr/bin/env python3
"""cluster_soak.py: three pusherd nodes on one redis-server; clients spread
over them; pusherd nodes killed -9 or SIGTERMed, Redis restarted (kill -9
or SIGTERM), and compound faults (a node killed -9 while Redis is down)
over and over.  After each fault is repaired (the process restarted and
accepting again), within BOUND seconds (tests/soak/README.md):

  - every client is connected and subscribed to presence-cl and cl-pub;
  - on every node, REST GET /apps/app-id/channels/presence-cl?info=
    subscription_count,user_count and GET /apps/app-id/channels/cl-pub?info=
    subscription_count equal the truth (the number of client connections,
    the number of distinct users), and GET .../presence-cl/users lists
    exactly the users of the clients (no ghost);
  - every client's member list (from pusher_internal:subscription_succeeded,
    member_added and member_removed) is exactly the set of users;
  - an event triggered through REST on each node reaches every client on
    every node within 1 s (the nodes' Redis links work again: a node whose
    link is still in its back-off would drop it).

Always: no client ever gets a member_added for a user already in its list or
a member_removed for a user not in it (a duplicate).

The clients speak the Pusher protocol over a raw WebSocket here, not
through libpusher: the library (lib/core/members.c) hides duplicate
member_added / member_removed by design, and this soak is about what the
servers send.  Client j is on node j%3; clients 4k and 4k+1 are one user
(u<2k>) with two connections on two nodes, the others are users of their
own (s<j>): user_count != subscription_count, first join / last leave
across nodes, and members that really go away.  A client whose connection drops reconnects to
its own node every RECONNECT seconds.

Usage: cluster_soak.py --pusherd PATH [--clients N] [--node-kills K]
       [--redis-restarts R] [--node-terms T] [--compound C] [--bound S] [--hard-bound S] [--seed N]
       [--base-port P] [--out DIR]
Prints "ROUND ..." per fault, "CLUSTER key=value" figures and PASS / FAIL.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import signal
import statistics
import struct
import sys
import time

APP_ID, KEY, SECRET = "app-id", "app-key", "app-secret"
PRES, PUB = "presence-cl", "cl-pub"
RECONNECT = 0.2

T0 = time.monotonic()


def say(msg):
    print("[%8.3f] %s" % (time.monotonic() - T0, msg), flush=True)


VIOLATIONS = []


def violation(msg):
    VIOLATIONS.append(msg)
    say("VIOLATION: " + msg)


def sign(msg):
    return hmac.new(SECRET.encode(), msg.encode(), hashlib.sha256).hexdigest()


class Closed(Exception):
    pass


# ---------------------------------------------------------------- WebSocket

async def ws_open(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    w.write(("GET /app/%s?protocol=7&client=cluster-soak&version=1 HTTP/1.1\r\n"
             "Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (KEY, port, key)).encode())
    head = await r.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise Closed("handshake: %r" % head[:40])
    want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    if want not in head:
        raise Closed("bad Sec-WebSocket-Accept")
    return r, w


def ws_send(w, text, op=1):
    payload = text.encode() if isinstance(text, str) else text
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | op, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
    w.write(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


async def ws_recv(r, w):
    """The next text message (pings answered, fragments joined)."""
    buf, first_op = b"", None
    while True:
        b0, b1 = await r.readexactly(2)
        op, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await r.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await r.readexactly(8))[0]
        mask = await r.readexactly(4) if b1 & 0x80 else None
        data = await r.readexactly(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if op == 8:
            raise Closed("close frame %r" % data[:2])
        if op == 9:
            ws_send(w, data, op=10)
            continue
        if op == 10:
            continue
        if op in (1, 2):
            first_op, buf = op, data
        elif op == 0:
            buf += data
        if b0 & 0x80:
            return buf.decode()


# ---------------------------------------------------------------- clients

class Client:
    def __init__(self, j, port):
        self.j, self.port = j, port
        self.uid = "u%d" % (j // 2) if j % 4 < 2 else "s%d" % j
        self.connected = False
        self.subs = set()
        self.members = None
        self.dups = 0
        self.adds = self.removes = 0
        self.active = True
        self.writer = None
        self.probes = set()

    async def run(self):
        while True:
            if self.active:
                try:
                    await self.session()
                except (OSError, asyncio.IncompleteReadError, Closed, ValueError):
                    pass
            self.connected, self.members, self.writer = False, None, None
            self.subs = set()
            await asyncio.sleep(RECONNECT)

    def drop(self):
        if self.writer:
            self.writer.transport.abort()

    async def session(self):
        r, w = await ws_open(self.port)
        self.writer = w
        try:
            while True:
                msg = json.loads(await ws_recv(r, w))
                self.handle(msg, w)
                await w.drain()
        finally:
            w.transport.abort()

    def handle(self, msg, w):
        ev = msg.get("event")
        data = msg.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                pass
        if ev == "pusher:connection_established":
            self.connected = True
            sid = data["socket_id"]
            cd = json.dumps({"user_id": self.uid, "user_info": {"j": self.j}}, separators=(",", ":"))
            ws_send(w, json.dumps({"event": "pusher:subscribe", "data": {
                "channel": PRES, "auth": "%s:%s" % (KEY, sign("%s:%s:%s" % (sid, PRES, cd))),
                "channel_data": cd}}))
            ws_send(w, json.dumps({"event": "pusher:subscribe", "data": {"channel": PUB}}))
        elif ev == "probe" and msg.get("channel") == PUB:
            self.probes.add(data)
        elif ev == "pusher:ping":
            ws_send(w, json.dumps({"event": "pusher:pong", "data": {}}))
        elif ev == "pusher_internal:subscription_succeeded":
            ch = msg.get("channel")
            self.subs.add(ch)
            if ch == PRES:
                self.members = set(data["presence"]["ids"])
        elif ev == "pusher_internal:member_added" and msg.get("channel") == PRES:
            self.adds += 1
            uid = str(data["user_id"])
            if self.members is None or uid in self.members:
                self.dups += 1
                violation("client %d (%s, :%d): member_added for %s already present"
                          % (self.j, self.uid, self.port, uid))
            if self.members is not None:
                self.members.add(uid)
        elif ev == "pusher_internal:member_removed" and msg.get("channel") == PRES:
            self.removes += 1
            uid = str(data["user_id"])
            if self.members is None or uid not in self.members:
                self.dups += 1
                violation("client %d (%s, :%d): member_removed for %s not present" % (self.j, self.uid, self.port, uid))
            if self.members is not None:
                self.members.discard(uid)
        elif ev == "pusher:error":
            # 4200-4299: "reconnect" (a node's SIGTERM says 4200); anything
            # else is unexpected here
            code = data.get("code") if isinstance(data, dict) else None
            if not (isinstance(code, int) and 4200 <= code <= 4299):
                violation("client %d: pusher:error %s" % (self.j, data))


# ---------------------------------------------------------------- REST

async def rest_get(port, path, params):
    q = dict(params, auth_key=KEY, auth_timestamp=str(int(time.time())), auth_version="1.0")
    qs = "&".join("%s=%s" % (k, q[k]) for k in sorted(q))
    q["auth_signature"] = sign("GET\n%s\n%s" % (path, qs))
    qs = "&".join("%s=%s" % (k, q[k]) for k in sorted(q))
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    try:
        w.write(("GET %s?%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (path, qs, port)).encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
        status = int(head.split(b" ", 2)[1])
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":", 1)[1])
        body = await asyncio.wait_for(r.readexactly(n), 2)
    finally:
        w.transport.abort()
    if status != 200:
        raise ValueError("HTTP %d on %s: %s" % (status, path, body[:200]))
    return json.loads(body)


async def rest_post_event(port, channel, name, data):
    path = "/apps/%s/events" % APP_ID
    body = json.dumps({"name": name, "channel": channel, "data": data}).encode()
    q = dict(auth_key=KEY, auth_timestamp=str(int(time.time())), auth_version="1.0",
             body_md5=hashlib.md5(body).hexdigest())
    qs = "&".join("%s=%s" % (k, q[k]) for k in sorted(q))
    qs += "&auth_signature=" + sign("POST\n%s\n%s" % (path, qs))
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    try:
        w.write(("POST %s?%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\nConnection: close\r\n\r\n" % (path, qs, port, len(body))).encode() + body)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
    finally:
        w.transport.abort()
    if int(head.split(b" ", 2)[1]) != 200:
        raise ValueError("POST events on :%d: %r" % (port, head[:40]))


async def probe(clients, nodes):
    """An event triggered on each node must reach every client on every
    node: the cluster carries messages again (Redis links re-established)."""
    active = [c for c in clients if c.active]
    for n in nodes:
        nonce = "p%d-%s" % (n.port, os.urandom(6).hex())
        try:
            await rest_post_event(n.port, PUB, "probe", nonce)
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            return "probe POST on :%d: %s" % (n.port, e)
        deadline = time.monotonic() + 1.0
        while True:
            missing = [c.j for c in active if nonce not in c.probes]
            if not missing:
                break
            if time.monotonic() > deadline:
                return "probe via :%d not received by clients %s" % (n.port, missing[:8])
            await asyncio.sleep(0.02)
    for c in active:
        c.probes.clear()
    return None


async def rest_view(port):
    a = await rest_get(port, "/apps/%s/channels/%s" % (APP_ID, PRES), {"info": "subscription_count,user_count"})
    b = await rest_get(port, "/apps/%s/channels/%s" % (APP_ID, PUB), {"info": "subscription_count"})
    u = await rest_get(port, "/apps/%s/channels/%s/users" % (APP_ID, PRES), {})
    return (a.get("subscription_count"), a.get("user_count"), b.get("subscription_count"),
            sorted(str(x["id"]) for x in u["users"]))


# ---------------------------------------------------------------- processes

class Proc:
    def __init__(self, name, argv, port, log):
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.p = None

    async def start(self, out_dir):
        f = open(os.path.join(out_dir, self.log), "ab")
        self.p = await asyncio.create_subprocess_exec(*self.argv, stdout=f, stderr=f)
        f.close()
        with open(os.path.join(out_dir, self.name + ".pid"), "w") as pf:
            pf.write("%d\n" % self.p.pid)
        deadline = time.monotonic() + 10
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.transport.abort()
                return
            except OSError:
                if time.monotonic() > deadline or self.p.returncode is not None:
                    raise RuntimeError("%s did not start on :%d" % (self.name, self.port))
                await asyncio.sleep(0.05)

    async def stop(self, sig):
        """Signal and reap it.  After SIGTERM it must exit 0: pusherd drains
        and exits 0 (pusherd --help), and under ASan a leak or an error
        would make the status non-zero."""
        if self.p and self.p.returncode is None:
            self.p.send_signal(sig)
            rc = await self.p.wait()
            if sig == signal.SIGTERM and rc != 0:
                violation("%s (:%d) exited with status %d after SIGTERM (see %s)" % (self.name, self.port, rc, self.log))
        self.p = None


# ---------------------------------------------------------------- soak

async def converge(clients, nodes, bound, hard_bound, since):
    """Wait until everything agrees with the truth; return (seconds since
    `since`, the last thing that was still wrong)."""
    last_why = "nothing"
    reported = False
    while True:
        why = await check(clients, nodes)
        t = time.monotonic() - since
        if why is None:
            return t, last_why
        last_why = why
        if t > bound and not reported:
            reported = True
            violation("not converged %.1f s after the repair (bound %.1f s): %s" % (t, bound, why))
        if t > hard_bound:
            raise RuntimeError("no convergence within %.0f s: %s" % (hard_bound, why))
        await asyncio.sleep(0.1)


async def check(clients, nodes):
    active = [c for c in clients if c.active]
    users = sorted({c.uid for c in active})
    for c in active:
        if not c.connected or PRES not in c.subs or PUB not in c.subs:
            return "client %d not connected/subscribed" % c.j
    for n in nodes:
        try:
            sc, uc, psc, ulist = await rest_view(n.port)
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            return "node :%d REST: %s" % (n.port, e)
        if sc != len(active) or psc != len(active) or uc != len(users):
            return "node :%d says subscription_count=%s/%s user_count=%s, truth %d/%d users %d" % (
                n.port, sc, psc, uc, len(active), len(active), len(users))
        if ulist != users:
            ghosts = sorted(set(ulist) - set(users))
            missing = sorted(set(users) - set(ulist))
            return "node :%d users: ghosts %s missing %s" % (n.port, ghosts, missing)
    for c in active:
        if c.members != set(users):
            ghosts = sorted(c.members - set(users)) if c.members is not None else None
            return "client %d (:%d) members: ghosts %s missing %s" % (
                c.j, c.port, ghosts, sorted(set(users) - (c.members or set())))
    return await probe(clients, nodes)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pusherd", required=True)
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--node-kills", type=int, default=30)
    ap.add_argument("--redis-restarts", type=int, default=15)
    ap.add_argument("--node-terms", type=int, default=10)
    ap.add_argument("--compound", type=int, default=5)
    ap.add_argument("--bound", type=float, default=12)
    ap.add_argument("--hard-bound", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--base-port", type=int, default=7970)
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rnd = random.Random(a.seed)
    rport = a.base_port
    redis_url = "redis://127.0.0.1:%d" % rport
    redis = Proc("redis", [a.redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no"], rport, "redis.log")
    nodes = [Proc("node%d" % i, [a.pusherd, "--port", str(rport + 1 + i), "--redis", redis_url,
                                 "--log-level", "info"], rport + 1 + i, "node%d.log" % i) for i in range(3)]
    clients = [Client(j, nodes[j % 3].port) for j in range(a.clients)]
    tasks = []
    times = {"node": [], "redis": [], "node-term": [], "compound": []}
    rounds = 0
    try:
        await redis.start(a.out)
        for n in nodes:
            await n.start(a.out)
        tasks = [asyncio.ensure_future(c.run()) for c in clients]
        t, _ = await converge(clients, nodes, a.bound, a.hard_bound, time.monotonic())
        say("ROUND 0 start converged in %.2f s" % t)
        plan = (["node"] * a.node_kills + ["redis"] * a.redis_restarts + ["node-term"] * a.node_terms +
                ["compound"] * a.compound)
        rnd.shuffle(plan)
        for i, kind in enumerate(plan, 1):
            # one random client also leaves and comes back (a clean close) so
            # member_removed / member_added cross the nodes every round
            leaver = rnd.choice(clients)
            leaver.active = False
            leaver.drop()
            if kind == "node":
                n = rnd.choice(nodes)
                what = "kill -9 %s (:%d)" % (n.name, n.port)
                await n.stop(signal.SIGKILL)
                await asyncio.sleep(rnd.uniform(0.2, 2.0))
                await n.start(a.out)
            elif kind == "node-term":
                n = rnd.choice(nodes)
                what = "SIGTERM %s (:%d)" % (n.name, n.port)
                await n.stop(signal.SIGTERM)
                await asyncio.sleep(rnd.uniform(0.2, 2.0))
                await n.start(a.out)
            elif kind == "compound":
                # Redis dies, then a node dies while Redis is away; the
                # node comes back first, then Redis
                n = rnd.choice(nodes)
                what = "kill -9 redis-server, then kill -9 %s (:%d) while Redis is down" % (n.name, n.port)
                await redis.stop(signal.SIGKILL)
                await asyncio.sleep(rnd.uniform(0.2, 3.0))
                await n.stop(signal.SIGKILL)
                await asyncio.sleep(rnd.uniform(0.2, 2.0))
                await n.start(a.out)
                await asyncio.sleep(rnd.uniform(0.2, 4.0))
                await redis.start(a.out)
            else:
                sig = rnd.choice([signal.SIGKILL, signal.SIGTERM])
                what = "%s redis-server" % ("kill -9" if sig == signal.SIGKILL else "SIGTERM")
                await redis.stop(sig)
                await asyncio.sleep(rnd.uniform(0.2, 7.0))  # past the 5 s node timeout at times
                await redis.start(a.out)
            repaired = time.monotonic()
            leaver.active = True
            t, last = await converge(clients, nodes, a.bound, a.hard_bound, repaired)
            times[kind].append(t)
            rounds = i
            say("ROUND %d %s: converged %.2f s after the repair (last wait: %s)" % (i, what, t, last))
    except RuntimeError as e:
        violation(str(e))
    finally:
        for tk in tasks:
            tk.cancel()
        for n in nodes:
            await n.stop(signal.SIGTERM)
        await redis.stop(signal.SIGTERM)
    dups = sum(c.dups for c in clients)
    adds = sum(c.adds for c in clients)
    rems = sum(c.removes for c in clients)
    for kind, v in times.items():
        if v:
            say("CLUSTER convergence_s kind=%s n=%d min=%.2f median=%.2f max=%.2f bound=%.1f" % (
                kind, len(v), min(v), statistics.median(v), max(v), a.bound))
    say("CLUSTER clients=%d rounds=%d node_kills=%d redis_restarts=%d node_terms=%d compound=%d member_added=%d"
        " member_removed=%d duplicates=%d" % (a.clients, rounds, len(times["node"]), len(times["redis"]),
                                              len(times["node-term"]), len(times["compound"]), adds, rems, dups))
    want = a.node_kills + a.redis_restarts + a.node_terms + a.compound
    if rounds != want:
        violation("only %d of %d rounds ran" % (rounds, want))
    if VIOLATIONS:
        print("FAIL: %d violations" % len(VIOLATIONS), flush=True)
        return 1
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
