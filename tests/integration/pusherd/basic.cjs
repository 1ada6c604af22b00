// pusherd_basic: black-box checks of pusherd with raw WebSocket frames (ws),
// pusher-js 8.6.0 (Node build) and the official `pusher` REST SDK.
// usage: node basic.cjs PORT QUOTA_PORT   (pusherd on PORT: default app;
// on QUOTA_PORT: --max-connections 1).  Exit 0 when every check passes.
"use strict";
const path = require("path");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const WebSocket = require(path.join(CLIENTS, "node_modules/ws"));
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));

const PORT = Number(process.argv[2]);
const QPORT = Number(process.argv[3]);
const ONLY = process.argv[4] || "all";
const BASE = `ws://127.0.0.1:${PORT}`;
const sdk = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret", host: "127.0.0.1", port: String(PORT), useTLS: false,
  encryptionMasterKeyBase64: "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=" });

let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
}

// A raw client: collects parsed frames, resolves waiters.
class Raw {
  constructor(url) {
    this.frames = [];
    this.waiters = [];
    this.closed = null;
    this.ws = new WebSocket(url);
    this.ws.on("message", (data, isBinary) => {
      let d;
      try { d = JSON.parse(data.toString()); } catch (e) { d = { raw: data.toString() }; }
      this.frames.push(d);
      this.poke();
    });
    this.ws.on("close", (code, reason) => { this.closed = { code, reason: reason.toString() }; this.poke(); });
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
  frame(pred, ms, what) {
    return this.until(() => this.frames.find(pred), ms, what);
  }
  established(ms = 5000) {
    return this.frame((f) => f.event === "pusher:connection_established", ms, "connection_established")
      .then((f) => JSON.parse(f.data));
  }
  send(o) { this.ws.send(typeof o === "string" ? o : JSON.stringify(o)); }
  closeP(ms = 5000) { return this.until(() => this.closed, ms, "close"); }
}

async function expectClose(url, code, what, port) {
  const r = new Raw(url.replace("PORT", String(port || PORT)));
  try {
    const c = await r.closeP(5000);
    ok(c.code === code, `${what}: close code ${c.code} (want ${code})`);
    const err = r.frames.find((f) => f.event === "pusher:error");
    ok(err && err.data && err.data.code === code, `${what}: pusher:error with code ${code} before the close`);
  } catch (e) { ok(false, `${what}: ${e.message}`); }
}

async function errorCodes() {
  await expectClose("ws://127.0.0.1:PORT/app/no-such-key?protocol=7", 4001, "unknown app key");
  await expectClose("ws://127.0.0.1:PORT/not/an/app/path?protocol=7", 4005, "bad path");
  await expectClose("ws://127.0.0.1:PORT/app/app-key", 4008, "missing protocol");
  await expectClose("ws://127.0.0.1:PORT/app/app-key?protocol=abc", 4006, "protocol=abc");
  await expectClose("ws://127.0.0.1:PORT/app/app-key?protocol=6", 4007, "protocol=6");
  const first = new Raw(`ws://127.0.0.1:${QPORT}/app/app-key?protocol=7`);
  const est = await first.established();
  ok(/^\d+\.\d+$/.test(est.socket_id) && est.activity_timeout > 0, `connection_established socket_id ${est.socket_id}, activity_timeout ${est.activity_timeout}`);
  await expectClose("ws://127.0.0.1:PORT/app/app-key?protocol=7", 4004, "over connection quota", QPORT);
  first.ws.close();
  await first.closeP();
}

function pjs(extra = {}) {
  return new PusherJS("app-key", Object.assign({
    wsHost: "127.0.0.1", wsPort: PORT, forceTLS: false, enabledTransports: ["ws"], cluster: "x",
    disableStats: true,
  }, extra));
}
function authWith(userId) {
  return {
    customHandler: ({ socketId, channelName }, cb) => {
      try {
        const data = channelName.startsWith("presence-") ? { user_id: userId, user_info: { name: `user ${userId}` } } : undefined;
        cb(null, sdk.authorizeChannel(socketId, channelName, data));
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

async function pusherJsFlows() {
  const a = pjs({ channelAuthorization: authWith("alice") });
  const b = pjs({ channelAuthorization: authWith("bob") });
  try {
    // public
    const { ch } = await subscribed(a, "my-channel");
    const got = nextEvent(ch, "my-event");
    await sdk.trigger("my-channel", "my-event", { n: 1, s: "hello" });
    const ev = await got;
    ok(ev.d && ev.d.n === 1 && ev.d.s === "hello", "public: pusher-js receives an event triggered with the SDK");

    // private + client events
    const pa = await subscribed(a, "private-room");
    const pb = await subscribed(b, "private-room");
    const gotp = nextEvent(pb.ch, "priv-event");
    await sdk.trigger("private-room", "priv-event", "just a string");
    ok((await gotp).d === "just a string", "private: event with string data arrives");
    let echoed = false;
    pa.ch.bind("client-typing", () => { echoed = true; });
    const gotc = nextEvent(pb.ch, "client-typing");
    pa.ch.trigger("client-typing", { k: "v" });
    ok((await gotc).d.k === "v", "client event relayed to the other subscriber");
    await sleep(200);
    ok(!echoed, "client event not echoed to its sender");

    // presence: two users, then a second socket of alice
    const xa = await subscribed(a, "presence-lobby");
    ok(xa.d.count === 1 && xa.d.me && xa.d.me.id === "alice", "presence: first member sees itself (count 1)");
    const added = nextEvent(xa.ch, "pusher:member_added");
    const xb = await subscribed(b, "presence-lobby");
    ok(xb.d.count === 2, `presence: second subscriber sees 2 members (got ${xb.d.count})`);
    const m = await added;
    ok(m.d.id === "bob" && m.d.info.name === "user bob", "presence: member_added for bob with user_info");
    const gotpc = nextEvent(xa.ch, "client-hi");
    xb.ch.trigger("client-hi", { x: 1 });
    const pc = await gotpc;
    ok(pc.meta && pc.meta.user_id === "bob", "presence: client event carries user_id of the sender");
    let extraAdd = false;
    xb.ch.bind("pusher:member_added", () => { extraAdd = true; });
    const a2 = pjs({ channelAuthorization: authWith("alice") });
    const xa2 = await subscribed(a2, "presence-lobby");
    ok(xa2.d.count === 2, "presence: a second socket of alice still counts 2 members");
    await sleep(300);
    ok(!extraAdd, "presence: no member_added for a second socket of the same user");
    const users = await (await sdk.get({ path: "/channels/presence-lobby/users" })).json();
    ok(users.users.length === 2, `REST users: 2 users (got ${JSON.stringify(users)})`);
    const info = await (await sdk.get({ path: "/channels/presence-lobby", params: { info: "user_count,subscription_count" } })).json();
    ok(info.occupied === true && info.user_count === 2 && info.subscription_count === 3, `REST channel info ${JSON.stringify(info)}`);
    let removed = null;
    xb.ch.bind("pusher:member_removed", (d) => { removed = d; });
    a2.disconnect();
    await sleep(300);
    ok(removed === null, "presence: no member_removed while alice has another socket");
    a.disconnect();
    await withTimeout((async () => { while (!removed) await sleep(50); })(), 5000, "member_removed");
    ok(removed && removed.id === "alice", "presence: member_removed when alice's last socket leaves");
  } catch (e) {
    ok(false, `pusher-js flows: ${e.message}`);
  } finally {
    a.disconnect();
    b.disconnect();
  }
}

async function restErrors() {
  const status = async (p) => { try { const r = await p; return r.status; } catch (e) { return e.status; } };
  ok(await status(sdk.get({ path: "/channels", params: { info: "user_count" } })) === 400, "REST: info=user_count without presence- prefix is 400");
  ok(await status(sdk.trigger("big", "e", "x".repeat(11000))) === 413, "REST: event data over 10 KB is 413");
  const bad = new Pusher({ appId: "app-id", key: "app-key", secret: "wrong", host: "127.0.0.1", port: String(PORT), useTLS: false });
  ok(await status(bad.trigger("c", "e", {})) === 401, "REST: wrong secret is 401");
  const unknown = new Pusher({ appId: "nope", key: "app-key", secret: "app-secret", host: "127.0.0.1", port: String(PORT), useTLS: false });
  ok(await status(unknown.trigger("c", "e", {})) === 404, "REST: unknown app is 404");
  const r = await fetch(`http://127.0.0.1:${PORT}/apps/app-id/events`, { method: "POST", body: "{}" });
  const body = await r.json();
  ok(r.status === 401 && typeof body.error === "string", "REST: unsigned request is 401 with a JSON error body");
  ok((await fetch(`http://127.0.0.1:${PORT}/ready`)).status === 200, "GET /ready is 200");
  ok((await fetch(`http://127.0.0.1:${PORT}/health`)).status === 200, "GET /health is 200");
  const batch = await sdk.triggerBatch([{ channel: "a", name: "e", data: "1" }, { channel: "b", name: "e", data: "2" }]);
  ok(batch.status === 200, "REST: batch_events is 200");
}

async function malformed() {
  const steady = new Raw(`${BASE}/app/app-key?protocol=7`);
  await steady.established();
  steady.send({ event: "pusher:subscribe", data: { channel: "steady" } });
  await steady.frame((f) => f.event === "pusher_internal:subscription_succeeded" && f.channel === "steady", 5000, "steady subscribed");

  const m = new Raw(`${BASE}/app/app-key?protocol=7`);
  const est = await m.established();
  const privAuth = sdk.authorizeChannel(est.socket_id, "private-big").auth;
  m.send({ event: "pusher:subscribe", data: { channel: "private-big", auth: privAuth } });
  await m.frame((f) => f.event === "pusher_internal:subscription_succeeded" && f.channel === "private-big", 5000, "private-big");
  const bad = [
    "{not json", "", "[]", "\"str\"", "42", "null", "{}",
    "{\"event\":\"pusher:unknown_event\",\"data\":{}}", "{\"data\":{}}", "{\"event\":42}",
    "{\"event\":\"pusher:subscribe\"}", "{\"event\":\"pusher:subscribe\",\"data\":{}}",
    "{\"event\":\"pusher:subscribe\",\"data\":\"str\"}", "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":42}}",
    "{\"event\":\"pusher:subscribe\",\"data\":null}", "{\"event\":\"pusher:subscribe\",\"data\":[1,2]}",
    "{\"event\":\"pusher:unsubscribe\"}", "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":7}}",
    "{\"event\":\"pusher:signin\"}", "{\"event\":\"pusher:signin\",\"data\":\"x\"}",
    "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"bad channel!\"}}",
    JSON.stringify({ event: "pusher:subscribe", data: { channel: "c".repeat(300) } }),
    JSON.stringify({ event: "pusher:subscribe", data: { channel: "private-x", auth: "app-key:" + "f".repeat(64) } }),
    JSON.stringify({ event: "pusher:subscribe", data: { channel: "presence-room", auth: "app-key:" + "0".repeat(64) } }),
    JSON.stringify({ event: "pusher:subscribe", data: { channel: "#server-to-user-x" } }),
    JSON.stringify({ event: "client-hello", channel: "private-elsewhere", data: { x: 1 } }),
    JSON.stringify({ event: "client-hello", channel: "steady", data: { x: 1 } }),
    JSON.stringify({ event: "client-hello", channel: 5, data: {} }),
    JSON.stringify({ event: "client-big", channel: "private-big", data: "x".repeat(11000) }),
    "[".repeat(5000) + "]".repeat(5000),
  ];
  for (const f of bad) m.send(f);
  const want = bad.length;
  try {
    await m.until(() => m.frames.filter((f) => f.event === "pusher:error").length >= want, 5000, `${want} pusher:error replies`);
    ok(true, `malformed: ${want} malformed frames each answered with pusher:error`);
  } catch (e) {
    ok(false, `malformed: got ${m.frames.filter((f) => f.event === "pusher:error").length} pusher:error replies for ${want} frames`);
  }
  // binary frame: the connection must survive (pusher:error or ignored, never a crash)
  m.ws.send(Buffer.from("{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"bin\"}}"), { binary: true });
  m.send("{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"never-subscribed\"}}");
  // rate limit: 15 client events in a burst => at least one 4301
  for (let i = 0; i < 15; i++) m.send({ event: "client-burst", channel: "private-big", data: { i } });
  await m.frame((f) => f.event === "pusher:error" && f.data && f.data.code === 4301 && /rate/.test(f.data.message), 5000, "4301 rate limit")
    .then(() => ok(true, "client events over 10/s are answered with 4301"), () => ok(false, "no 4301 for a client-event burst"));
  const nframes = steady.frames.length;
  await sdk.trigger("steady", "still-here", { ok: true });
  await steady.frame((f, i) => f.event === "still-here", 5000, "steady event")
    .then(() => ok(true, "another client keeps receiving events after the malformed frames"), () => ok(false, "steady client got no event"));
  ok(steady.frames.slice(nframes).every((f) => f.event !== "client-hello"), "client event on a public channel was not relayed");
  if (!m.closed) {
    m.send({ event: "pusher:ping", data: {} });
    await m.frame((f) => f.event === "pusher:pong", 5000, "pong").then(() => ok(true, "the malformed-frame client still gets pusher:pong"), () => ok(false, "no pong after malformed frames"));
  } else {
    ok(m.closed.code === 1003 || m.closed.code === 1007, `malformed-frame client closed with ${m.closed.code} (binary frame)`);
  }
  // sign-in with a bad signature: pusher:error 4009 + close 4009
  const s = new Raw(`${BASE}/app/app-key?protocol=7`);
  await s.established();
  s.send({ event: "pusher:signin", data: { user_data: "{\"id\":\"mallory\"}", auth: "app-key:" + "f".repeat(64) } });
  const c = await s.closeP().catch(() => null);
  ok(c && c.code === 4009, `bad sign-in closes with 4009 (got ${c && c.code})`);
  m.ws.close();
  steady.ws.close();
}


async function features() {
  // cache channel: miss first, then the last event replayed to a new subscriber
  const c1 = new Raw(`${BASE}/app/app-key?protocol=7`);
  await c1.established();
  c1.send({ event: "pusher:subscribe", data: { channel: "cache-news" } });
  await c1.frame((f) => f.event === "pusher:cache_miss" && f.channel === "cache-news", 5000, "cache_miss")
    .then(() => ok(true, "cache channel: pusher:cache_miss on an empty cache"), () => ok(false, "no pusher:cache_miss"));
  await sdk.trigger("cache-news", "headline", { h: 1 });
  const c2 = new Raw(`${BASE}/app/app-key?protocol=7`);
  await c2.established();
  c2.send({ event: "pusher:subscribe", data: { channel: "cache-news" } });
  await c2.frame((f) => f.event === "headline" && f.channel === "cache-news", 5000, "cached event")
    .then(() => ok(true, "cache channel: last event replayed on subscribe"), () => ok(false, "cached event not replayed"));
  // subscription_count: c1 sees 2 subscribers after c2 joined
  await c1.frame((f) => f.event === "pusher_internal:subscription_count" && JSON.parse(f.data).subscription_count === 2, 5000, "count")
    .then(() => ok(true, "pusher_internal:subscription_count broadcast"), () => ok(false, "no subscription_count 2"));
  const info = await (await sdk.get({ path: "/channels/cache-news", params: { info: "cache" } })).json();
  ok(info.cache && JSON.parse(info.cache.data).h === 1, `REST channel info=cache ${JSON.stringify(info)}`);
  const list = await (await sdk.get({ path: "/channels", params: { filter_by_prefix: "cache-" } })).json();
  ok(list.channels && list.channels["cache-news"] && Object.keys(list.channels).length === 1, `REST channels filter_by_prefix ${JSON.stringify(list)}`);

  // sign-in, #server-to-user-<id>, terminate_connections
  const u = new Raw(`${BASE}/app/app-key?protocol=7`);
  const est = await u.established();
  const signed = sdk.authenticateUser(est.socket_id, { id: "carol", user_info: { n: 1 } });
  u.send({ event: "pusher:signin", data: signed });
  await u.frame((f) => f.event === "pusher:signin_success", 5000, "signin_success")
    .then(() => ok(true, "pusher:signin verified, signin_success"), () => ok(false, "no signin_success"));
  u.send({ event: "pusher:subscribe", data: { auth: "", channel: "#server-to-user-carol" } });
  await u.frame((f) => f.event === "pusher_internal:subscription_succeeded" && f.channel === "#server-to-user-carol", 5000, "user channel");
  await sdk.sendToUser("carol", "direct", { to: "carol" });
  await u.frame((f) => f.event === "direct", 5000, "direct")
    .then(() => ok(true, "sendToUser reaches the signed-in socket"), () => ok(false, "sendToUser event missing"));
  // presence through sign-in: auth without channel_data, member = the signed-in user
  const pauth = sdk.authorizeChannel(est.socket_id, "presence-signed").auth;
  u.send({ event: "pusher:subscribe", data: { channel: "presence-signed", auth: pauth } });
  const ps = await u.frame((f) => f.event === "pusher_internal:subscription_succeeded" && f.channel === "presence-signed", 5000, "presence via signin").catch(() => null);
  const pres = ps && JSON.parse(ps.data).presence;
  ok(pres && pres.count === 1 && pres.hash.carol && pres.hash.carol.n === 1, `presence without channel_data uses the signed-in user (${ps && ps.data})`);
  const t = await sdk.terminateUserConnections("carol");
  ok(t.status === 200, "terminate_connections is 200");
  const tc = await u.closeP().catch(() => null);
  ok(tc && tc.code === 4009, `terminated connection closed with 4009 (got ${tc && tc.code})`);

  // watchlist: online / offline events for watched users
  const w = new Raw(`${BASE}/app/app-key?protocol=7`);
  const we = await w.established();
  w.send({ event: "pusher:signin", data: sdk.authenticateUser(we.socket_id, { id: "watcher", watchlist: ["dave", "erin"] }) });
  await w.frame((f) => f.event === "pusher:signin_success", 5000, "watcher signin");
  const d = new Raw(`${BASE}/app/app-key?protocol=7`);
  const de = await d.established();
  d.send({ event: "pusher:signin", data: sdk.authenticateUser(de.socket_id, { id: "dave" }) });
  const wl = (name) => (f) => f.event === "pusher_internal:watchlist_events" &&
    JSON.parse(f.data).events.some((e) => e.name === name && e.user_ids.includes("dave"));
  await w.frame(wl("online"), 5000, "online").then(() => ok(true, "watchlist: online event when a watched user signs in"), () => ok(false, "no watchlist online event"));
  d.ws.close();
  await w.frame(wl("offline"), 5000, "offline").then(() => ok(true, "watchlist: offline event when its last socket leaves"), () => ok(false, "no watchlist offline event"));
  w.ws.close();

  // private-encrypted: subscription verified, client events refused
  const e = new Raw(`${BASE}/app/app-key?protocol=7`);
  const ee = await e.established();
  e.send({ event: "pusher:subscribe", data: { channel: "private-encrypted-x", auth: sdk.authorizeChannel(ee.socket_id, "private-encrypted-x").auth } });
  await e.frame((f) => f.event === "pusher_internal:subscription_succeeded", 5000, "encrypted sub");
  e.send({ event: "client-x", channel: "private-encrypted-x", data: {} });
  await e.frame((f) => f.event === "pusher:error" && /encrypted/.test(f.data.message), 5000, "encrypted client event refused")
    .then(() => ok(true, "client events on private-encrypted- refused"), () => ok(false, "encrypted client event not refused"));
  for (const r of [c1, c2, e]) r.ws.close();
}

async function thousand() {
  const N = 1000;
  const clients = [];
  for (let i = 0; i < N; i++) {
    const r = new Raw(`${BASE}/app/app-key?protocol=7`);
    r.ws.on("open", () => r.send({ event: "pusher:subscribe", data: { auth: "", channel: "crowd" } }));
    clients.push(r);
    if (i % 100 === 99) await sleep(20);
  }
  try {
    await withTimeout(Promise.all(clients.map((r) => r.frame((f) => f.event === "pusher_internal:subscription_succeeded", 30000, "sub"))), 40000, "1000 subscriptions");
    ok(true, `${N} connections subscribed to one channel`);
    const info = await (await sdk.get({ path: "/channels/crowd", params: { info: "subscription_count" } })).json();
    ok(info.subscription_count === N, `REST subscription_count ${info.subscription_count}`);
    await sdk.trigger("crowd", "hello-all", { big: true });
    await withTimeout(Promise.all(clients.map((r) => r.frame((f) => f.event === "hello-all", 20000, "ev"))), 25000, "1000 events");
    ok(true, `all ${N} connections received the triggered event`);
  } catch (e) {
    const n = clients.filter((r) => r.frames.some((f) => f.event === "hello-all")).length;
    ok(false, `1000 connections: ${e.message} (${n} got the event)`);
  }
  for (const r of clients) r.ws.terminate();
}

async function shutdownClient() {
  // Connects, then waits for the server's SIGTERM (the shell sends it).
  const r = new Raw(`${BASE}/app/app-key?protocol=7`);
  await r.established();
  console.log("READY");
  const c = await r.closeP(20000);
  const err = r.frames.find((f) => f.event === "pusher:error");
  ok(c.code === 4200, `SIGTERM: close code ${c.code} (want 4200)`);
  ok(err && err.data.code === 4200, "SIGTERM: pusher:error 4200 first");
}

(async () => {
  try {
    if (ONLY === "shutdown") await shutdownClient();
    else {
      await errorCodes();
      await pusherJsFlows();
      await restErrors();
      await malformed();
      await features();
      await thousand();
    }
  } catch (e) {
    ok(false, `unexpected: ${e && e.stack || e}`);
  }
  console.log(failures ? `${failures} check(s) failed` : "all checks passed");
  process.exit(failures ? 1 : 0);
})();
