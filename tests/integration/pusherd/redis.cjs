// pusherd_redis: two pusherd nodes on one Redis act as one app.
// usage: node redis.cjs PORT_A PORT_B [all|fanout|hold|held|expired]
//   all      every cross-node check (below)
//   fanout   after a Redis restart: events flow again, occupancy seen again
//   hold     "holder" stays in presence-hold on node B (prints READY) until killed
//   held     node A (REST) lists holder in presence-hold
//   expired  node A no longer lists holder / presence-hold (node B was killed -9)
// Clients (pusher-js 8.6.0, raw ws) on either node, the `pusher` REST SDK on
// node A or B.  Exit 0 when every check passes.
"use strict";
const path = require("path");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const WebSocket = require(path.join(CLIENTS, "node_modules/ws"));
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));

const A = Number(process.argv[2]);
const B = Number(process.argv[3]);
const ONLY = process.argv[4] || "all";
const sdkFor = (port) => new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret", host: "127.0.0.1",
  port: String(port), useTLS: false });
const sdkA = sdkFor(A), sdkB = sdkFor(B);

let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
}
async function eventually(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); if (last.ok) { ok(true, what); return last; } } catch (e) { last = { err: e.message }; }
    if (Date.now() > end) { console.log(`     last: ${JSON.stringify(last)}`); ok(false, what); return last; }
    await sleep(100);
  }
}
const getJson = async (sdk, p, params) => (await sdk.get({ path: p, params: params || {} })).json();

class Raw {
  constructor(port) {
    this.frames = [];
    this.waiters = [];
    this.closed = null;
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/app/app-key?protocol=7`);
    this.ws.on("message", (data) => {
      let d;
      try { d = JSON.parse(data.toString()); } catch (e) { d = { raw: data.toString() }; }
      this.frames.push(d);
      this.poke();
    });
    this.ws.on("close", (code) => { this.closed = { code }; this.poke(); });
    this.ws.on("error", () => {});
  }
  poke() { for (const w of this.waiters.slice()) w(); }
  until(pred, ms, what) {
    return withTimeout(new Promise((res) => {
      const check = () => {
        const f = pred(this);
        if (f) { this.waiters = this.waiters.filter((x) => x !== check); res(f); }
      };
      this.waiters.push(check);
      check();
    }), ms, what);
  }
  frame(pred, ms, what) { return this.until(() => this.frames.find(pred), ms, what); }
  async established() {
    const f = await this.frame((x) => x.event === "pusher:connection_established", 5000, "established");
    this.socketId = JSON.parse(f.data).socket_id;
    return this.socketId;
  }
  send(o) { this.ws.send(JSON.stringify(o)); }
}

function pjs(port, extra = {}) {
  return new PusherJS("app-key", Object.assign({
    wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"], cluster: "x", disableStats: true,
  }, extra));
}
function authWith(userId) {
  return {
    customHandler: ({ socketId, channelName }, cb) => {
      try {
        const data = channelName.startsWith("presence-") ? { user_id: userId, user_info: { name: `user ${userId}` } } : undefined;
        cb(null, sdkA.authorizeChannel(socketId, channelName, data));
      } catch (e) { cb(e, null); }
    },
  };
}
function subscribed(client, name) {
  return withTimeout(new Promise((res, rej) => {
    const ch = client.subscribe(name);
    ch.bind("pusher:subscription_succeeded", (d) => res({ ch, d }));
    ch.bind("pusher:subscription_error", (e) => rej(new Error(`subscription_error ${JSON.stringify(e)}`)));
  }), 8000, `subscribe ${name}`);
}
function nextEvent(ch, name, ms = 5000) {
  return withTimeout(new Promise((res) => ch.bind(name, (d, meta) => res({ d, meta }))), ms, `event ${name} on ${ch.name}`);
}
function connected(client) {
  return withTimeout(new Promise((res) => {
    if (client.connection.state === "connected") return res(client.connection.socket_id);
    client.connection.bind("connected", () => res(client.connection.socket_id));
  }), 5000, "pusher-js connected");
}
// Wait until node `sdk` sees `n` subscriptions on `channel` (messages between
// nodes are asynchronous).
const subsSeen = (sdk, channel, n, what) => eventually(async () => {
  const r = await getJson(sdk, `/channels/${channel}`, { info: "subscription_count" });
  return { ok: r.subscription_count === n, r };
}, 4000, what);

async function fanout() {
  const b = pjs(B);
  const a = pjs(A);
  try {
    const { ch } = await subscribed(b, "news");
    const onA = (await subscribed(a, "news")).ch;
    await subsSeen(sdkA, "news", 2, "node A counts the subscription on node B (subscription_count 2)");
    const got = nextEvent(ch, "flash"), gotA = nextEvent(onA, "flash");
    await sdkA.trigger("news", "flash", { n: 42 });
    ok((await got).d.n === 42, "REST event triggered on node A reaches pusher-js on node B");
    ok((await gotA).d.n === 42, "... and the subscriber on node A");
    // batch_events through node B reaches node A
    const gotBatch = nextEvent(onA, "batched");
    await sdkB.triggerBatch([{ channel: "news", name: "batched", data: "x" }]);
    ok((await gotBatch).d === "x", "batch event triggered on node B reaches node A");
  } finally { a.disconnect(); b.disconnect(); }
}

async function exclusion() {
  const x = pjs(B), y = pjs(B), z = pjs(A);
  try {
    const cx = (await subscribed(x, "excl")).ch, cy = (await subscribed(y, "excl")).ch, cz = (await subscribed(z, "excl")).ch;
    const sidX = await connected(x);
    let xGot = false;
    cx.bind("e", () => { xGot = true; });
    const gy = nextEvent(cy, "e"), gz = nextEvent(cz, "e");
    await sdkA.trigger("excl", "e", { v: 1 }, { socket_id: sidX });
    await gy; await gz;
    await sleep(300);
    ok(!xGot, `socket_id ${sidX} (on node B) excluded from an event triggered on node A; others got it`);
    const sidZ = await connected(z);
    ok(sidX.split(".")[0] !== sidZ.split(".")[0], `socket ids carry the node number (${sidX} vs ${sidZ})`);
  } finally { x.disconnect(); y.disconnect(); z.disconnect(); }
}

async function clientEvents() {
  const a = pjs(A, { channelAuthorization: authWith("ann") }), b = pjs(B, { channelAuthorization: authWith("ben") });
  try {
    const pa = (await subscribed(a, "private-chat")).ch, pb = (await subscribed(b, "private-chat")).ch;
    await subsSeen(sdkB, "private-chat", 2, "private-chat counted on both nodes");
    let echo = false;
    pa.bind("client-hi", () => { echo = true; });
    const got = nextEvent(pb, "client-hi");
    pa.trigger("client-hi", { from: "A" });
    ok((await got).d.from === "A", "client event from node A reaches node B");
    await sleep(200);
    ok(!echo, "the sender does not get its own client event back from node B");
    const back = nextEvent(pa, "client-hi");
    pb.trigger("client-hi", { from: "B" });
    ok((await back).d.from === "B", "client event from node B reaches node A");
  } finally { a.disconnect(); b.disconnect(); }
}

async function presence() {
  const alice = pjs(A, { channelAuthorization: authWith("alice") });
  const bob = pjs(B, { channelAuthorization: authWith("bob") });
  const alice2 = pjs(B, { channelAuthorization: authWith("alice") });
  try {
    const xa = await subscribed(alice, "presence-room");
    ok(xa.d.count === 1, "presence: alice alone on node A");
    const addedBob = nextEvent(xa.ch, "pusher:member_added");
    await sleep(200);
    const xb = await subscribed(bob, "presence-room");
    ok(xb.d.count === 2 && xb.d.get("alice") && xb.d.get("alice").info.name === "user alice",
      `presence: bob on node B sees alice from node A with user_info (count ${xb.d.count})`);
    const m = await addedBob;
    ok(m.d.id === "bob" && m.d.info.name === "user bob", "presence: join on node B seen on node A (member_added bob)");
    for (const [sdk, name] of [[sdkA, "A"], [sdkB, "B"]]) {
      await eventually(async () => {
        const u = await getJson(sdk, "/channels/presence-room/users");
        const ids = u.users.map((x) => x.id).sort().join(",");
        const i = await getJson(sdk, "/channels/presence-room", { info: "user_count,subscription_count" });
        const l = await getJson(sdk, "/channels", { filter_by_prefix: "presence-", info: "user_count" });
        const lc = l.channels["presence-room"] && l.channels["presence-room"].user_count;
        return { ok: ids === "alice,bob" && i.user_count === 2 && i.subscription_count === 2 && i.occupied && lc === 2, ids, i, l };
      }, 4000, `presence: REST on node ${name}: users alice,bob, user_count 2, subscription_count 2`);
    }
    // alice's second socket on node B: no member_added anywhere
    let extra = 0;
    xa.ch.bind("pusher:member_added", () => { extra++; });
    xb.ch.bind("pusher:member_added", () => { extra++; });
    const xa2 = await subscribed(alice2, "presence-room");
    ok(xa2.d.count === 2, "presence: alice's second socket (node B) sees 2 members");
    await sleep(400);
    ok(extra === 0, "presence: no member_added for a user already present on another node");
    await eventually(async () => {
      const i = await getJson(sdkA, "/channels/presence-room", { info: "user_count,subscription_count" });
      return { ok: i.user_count === 2 && i.subscription_count === 3, i };
    }, 4000, "presence: 3 subscriptions, still 2 users (REST on node A)");
    // bob leaves on node B -> member_removed on node A
    const removed = nextEvent(xa.ch, "pusher:member_removed");
    bob.unsubscribe("presence-room");
    ok((await removed).d.id === "bob", "presence: leave on node B seen on node A (member_removed bob)");
    // alice's node-A socket goes: alice stays (socket on B): no member_removed
    const carol = pjs(B, { channelAuthorization: authWith("carol") });
    const xc = await subscribed(carol, "presence-room");
    let gone = null;
    xc.ch.bind("pusher:member_removed", (d) => { gone = d; });
    alice.disconnect();
    await sleep(600);
    ok(gone === null, "presence: no member_removed while alice still has a socket on node B");
    const goneP = nextEvent(xc.ch, "pusher:member_removed");
    alice2.disconnect();
    ok((await goneP).d.id === "alice", "presence: member_removed after alice's last socket (any node) left");
    await eventually(async () => {
      const u = await getJson(sdkA, "/channels/presence-room/users");
      return { ok: u.users.map((x) => x.id).join(",") === "carol", u };
    }, 4000, "presence: REST users on node A = carol (only on node B)");
    carol.disconnect();
  } finally { alice.disconnect(); bob.disconnect(); alice2.disconnect(); }
}

async function channelsList() {
  const b = pjs(B);
  try {
    await subscribed(b, "only-on-b");
    await eventually(async () => {
      const l = await getJson(sdkA, "/channels", { info: "subscription_count" });
      const c = await getJson(sdkA, "/channels/only-on-b", { info: "subscription_count" });
      return { ok: l.channels["only-on-b"] && l.channels["only-on-b"].subscription_count === 1 && c.occupied === true, l, c };
    }, 4000, "GET /channels on node A lists only-on-b (occupied only on node B), GET channel occupied");
    b.disconnect();
    await eventually(async () => {
      const l = await getJson(sdkA, "/channels");
      const c = await getJson(sdkA, "/channels/only-on-b");
      return { ok: !l.channels["only-on-b"] && c.occupied === false, l, c };
    }, 4000, "after the node-B client left: not listed, not occupied (node A)");
  } finally { b.disconnect(); }
}

function watchEvent(raw, name, id) {
  return raw.frame((f) => {
    if (f.event !== "pusher_internal:watchlist_events") return false;
    const d = JSON.parse(f.data);
    return d.events.some((e) => e.name === name && e.user_ids.includes(id));
  }, 5000, `watchlist ${name} ${id}`);
}

async function users() {
  const r = new Raw(B);
  const w = new Raw(A);
  try {
    // wendy on node A watches dave
    const wsid = await w.established();
    const wa = sdkA.authenticateUser(wsid, { id: "wendy", watchlist: ["dave"] });
    w.send({ event: "pusher:signin", data: { auth: wa.auth, user_data: wa.user_data } });
    await w.frame((f) => f.event === "pusher:signin_success", 5000, "wendy signin_success");
    const sid = await r.established();
    const au = sdkA.authenticateUser(sid, { id: "dave" });
    r.send({ event: "pusher:signin", data: { auth: au.auth, user_data: au.user_data } });
    await r.frame((f) => f.event === "pusher:signin_success", 5000, "signin_success");
    await watchEvent(w, "online", "dave");
    ok(true, "watchlist: wendy on node A hears dave (signed in on node B) come online");
    await sleep(100);
    await sdkA.sendToUser("dave", "note", { hi: 1 });
    const f = await r.frame((x) => x.event === "note", 5000, "server-to-user event");
    ok(f.channel === "#server-to-user-dave" && JSON.parse(f.data).hi === 1, "sendToUser on node A reaches dave on node B");
    await sdkA.terminateUserConnections("dave");
    const c = await r.until((x) => x.closed, 5000, "closed");
    ok(c.code === 4009, `terminate_connections on node A closes dave's socket on node B (code ${c.code})`);
    await watchEvent(w, "offline", "dave");
    ok(true, "watchlist: wendy on node A hears dave go offline (his socket on node B closed)");
  } catch (e) { ok(false, `users: ${e.message}`); } finally { r.ws.close(); w.ws.close(); }
}

async function afterRestart() {
  const b = pjs(B);
  try {
    const { ch } = await subscribed(b, "after-restart");
    let got = null;
    ch.bind("again", (d) => { got = d; });
    await eventually(async () => {
      if (!got) await sdkA.trigger("after-restart", "again", { ok: true });
      await sleep(200);
      return { ok: !!got };
    }, 8000, "after a Redis restart: event triggered on node A reaches node B");
    await subsSeen(sdkA, "after-restart", 1, "after a Redis restart: node A sees node B's subscription");
  } finally { b.disconnect(); }
}

async function step(name, fn) {
  try { await fn(); } catch (e) { ok(false, `${name}: ${e.message}`); }
}

(async () => {
  if (ONLY === "all") {
    await step("fanout", fanout);
    await step("exclusion", exclusion);
    await step("client events", clientEvents);
    await step("presence", presence);
    await step("channels", channelsList);
    await step("users", users);
  } else if (ONLY === "fanout") {
    await step("after restart", afterRestart);
  } else if (ONLY === "hold") {
    const h = pjs(B, { channelAuthorization: authWith("holder") });
    await subscribed(h, "presence-hold");
    console.log("READY");
    return; // stays connected until killed
  } else if (ONLY === "held") {
    await eventually(async () => {
      const u = await getJson(sdkA, "/channels/presence-hold/users");
      const i = await getJson(sdkA, "/channels/presence-hold", { info: "user_count,subscription_count" });
      return { ok: u.users.map((x) => x.id).join(",") === "holder" && i.user_count === 1 && i.subscription_count === 1, u, i };
    }, 8000, "node A lists holder (on node B) in presence-hold");
  } else if (ONLY === "expired") {
    await eventually(async () => {
      const u = await getJson(sdkA, "/channels/presence-hold/users");
      const l = await getJson(sdkA, "/channels");
      return { ok: u.users.length === 0 && !l.channels["presence-hold"], u, l };
    }, 12000, "node B killed -9: its member and channel expire on node A (heartbeat timeout)");
  }
  console.log(failures ? `${failures} FAILED` : "all passed");
  process.exit(failures ? 1 : 0);
})();
