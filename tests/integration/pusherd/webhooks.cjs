// pusherd_webhooks: pusherd's webhooks checked by a receiver that validates
// every request with the official `pusher` SDK (../webhook_receiver.mjs),
// driven by pusher-js 8.6.0 clients and REST triggers through the SDK.
// usage: node webhooks.cjs PORT RECEIVER_PORT RESTART_PORT PUSHERD_PID PUSHERD_LOG
// (pusherd on PORT with the config written by pusherd_webhooks.sh; the main
// receiver already on RECEIVER_PORT; this script runs the one on RESTART_PORT).
"use strict";
const path = require("path");
const fs = require("fs");
const http = require("http");
const { spawn } = require("child_process");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));

const [PORT, RPORT, RSPORT, PD_PID] = process.argv.slice(2, 6).map(Number);
const PD_LOG = process.argv[6];
const MULT = Number(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || 1);
const sdk = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret", host: "127.0.0.1", port: String(PORT), useTLS: false });

let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms * MULT))]);
}
function getJSON(port, p) {
  return new Promise((res, rej) => {
    http.get({ host: "127.0.0.1", port, path: p }, (r) => {
      let b = "";
      r.on("data", (c) => (b += c));
      r.on("end", () => { try { res(JSON.parse(b)); } catch (e) { rej(e); } });
    }).on("error", rej);
  });
}
// Poll the receiver until pred(requests) holds (deadline scaled by MULT).
async function waitReq(port, pred, ms, what) {
  const end = Date.now() + ms * MULT;
  let last = [];
  for (;;) {
    try { last = await getJSON(port, "/requests"); } catch (e) { last = []; }
    if (pred(last)) return last;
    if (Date.now() > end) throw new Error(`timeout: ${what}`);
    await sleep(50);
  }
}
const events = (reqs, p) => reqs.filter((r) => r.path === p && r.valid).flatMap((r) => r.events);
const has = (reqs, p, f) => events(reqs, p).some(f);
const count = (reqs, p, f) => events(reqs, p).filter(f).length;

function pjs(key = "app-key", extra = {}) {
  return new PusherJS(key, Object.assign({
    wsHost: "127.0.0.1", wsPort: PORT, forceTLS: false, enabledTransports: ["ws"], cluster: "x", disableStats: true,
  }, extra));
}
function authWith(userId) {
  return {
    customHandler: ({ socketId, channelName }, cb) => {
      try {
        const data = channelName.startsWith("presence-") ? { user_id: userId, user_info: { name: userId } } : undefined;
        cb(null, sdk.authorizeChannel(socketId, channelName, data));
      } catch (e) { cb(e, null); }
    },
  };
}
function subscribed(client, name) {
  return withTimeout(new Promise((res, rej) => {
    const ch = client.subscribe(name);
    ch.bind("pusher:subscription_succeeded", () => res(ch));
    ch.bind("pusher:subscription_error", (e) => rej(new Error(`subscription_error ${JSON.stringify(e)}`)));
  }), 8000, `subscribe ${name}`);
}
function connected(c) {
  return withTimeout(new Promise((res) => {
    if (c.connection.state === "connected") res();
    else c.connection.bind("connected", res);
  }), 8000, "connected");
}

function startReceiver(port) {
  const p = spawn(process.execPath, [path.join(__dirname, "..", "webhook_receiver.mjs"), "--port", String(port)],
    { stdio: ["ignore", "pipe", "inherit"] });
  return withTimeout(new Promise((res, rej) => {
    p.stdout.on("data", (d) => { if (String(d).includes("listening")) res(p); });
    p.on("exit", (c) => rej(new Error(`receiver exited ${c}`)));
  }), 8000, "restart receiver up");
}

const ALL = "/ok/all";
async function main() {
  // 1. occupancy, cache_miss, member_added, subscription_count, batching
  const a = pjs("app-key", { channelAuthorization: authWith("u1") });
  const names = ["chan-1", "cache-none", "private-fa-x", "private-fa-y", "public-x", "presence-room", "private-p", "retry-1"];
  await Promise.all(names.map((n) => subscribed(a, n)));
  let reqs = await waitReq(RPORT, (r) => names.every((n) => has(r, ALL, (e) => e.name === "channel_occupied" && e.channel === n)) &&
    has(r, ALL, (e) => e.name === "member_added") && has(r, ALL, (e) => e.name === "cache_miss"), 8000, "occupied for every channel");
  ok(true, "channel_occupied for each of 8 channels, SDK-valid");
  ok(has(reqs, ALL, (e) => e.name === "cache_miss" && e.channel === "cache-none"), "cache_miss on cache-none");
  ok(has(reqs, ALL, (e) => e.name === "member_added" && e.channel === "presence-room" && e.user_id === "u1"), "member_added u1");
  ok(has(reqs, ALL, (e) => e.name === "subscription_count" && e.channel === "chan-1" && e.subscription_count === 1), "subscription_count 1 on chan-1");
  ok(!has(reqs, ALL, (e) => e.name === "subscription_count" && e.channel === "presence-room"), "no subscription_count on presence");
  ok(reqs.filter((r) => r.path === ALL).some((r) => r.events.length >= 2), "events batched: a request carries several events");
  ok(reqs.filter((r) => r.path === ALL).every((r) => r.headers["x-custom"] === "hello" && r.headers["authorization"] === "Bearer t0ken"),
    "custom headers on every request");
  ok(reqs.filter((r) => r.path === ALL).every((r) => r.headers["content-type"] === "application/json" && r.headers["x-pusher-key"] === "app-key"),
    "Content-Type application/json and X-Pusher-Key on every request");
  ok(reqs.filter((r) => r.path === ALL).every((r) => typeof r.data.time_ms === "number"), "time_ms in every body");

  // 2. a second member, client events (presence: user_id; private: none)
  const b = pjs("app-key", { channelAuthorization: authWith("u2") });
  const bp = await subscribed(b, "presence-room");
  const bq = await subscribed(b, "private-p");
  const bsock = b.connection.socket_id;
  bp.trigger("client-hello", { a: 1 });
  bq.trigger("client-x", "text");
  reqs = await waitReq(RPORT, (r) => count(r, ALL, (e) => e.name === "client_event") >= 2 &&
    has(r, ALL, (e) => e.name === "member_added" && e.user_id === "u2"), 8000, "client events and member u2");
  const ce = events(reqs, ALL).find((e) => e.name === "client_event" && e.channel === "presence-room");
  ok(ce && ce.event === "client-hello" && ce.data === '{"a":1}' && ce.socket_id === bsock && ce.user_id === "u2",
    `client_event on presence: ${JSON.stringify(ce)}`);
  const cp = events(reqs, ALL).find((e) => e.name === "client_event" && e.channel === "private-p");
  ok(cp && cp.event === "client-x" && cp.data === "text" && cp.socket_id === bsock && !("user_id" in cp),
    `client_event on private: ${JSON.stringify(cp)}`);
  ok(count(reqs, ALL, (e) => e.name === "channel_occupied" && e.channel === "presence-room") === 1, "second subscriber: no second occupied");
  b.unsubscribe("presence-room");
  reqs = await waitReq(RPORT, (r) => has(r, ALL, (e) => e.name === "member_removed" && e.user_id === "u2"), 8000, "member_removed u2");
  ok(true, "member_removed u2 after unsubscribe");

  // 3. retries after two 500s: same body three times, the last one 200
  reqs = await waitReq(RPORT, (r) => r.filter((q) => q.path === "/fail2/retry").length >= 3, 20000, "three attempts on /fail2/retry");
  const rr = reqs.filter((q) => q.path === "/fail2/retry");
  ok(rr.length === 3 && rr[0].status === 500 && rr[1].status === 500 && rr[2].status === 200, `statuses ${rr.map((q) => q.status)}`);
  ok(rr.every((q) => q.raw === rr[0].raw && q.valid), "the retried body is identical and SDK-valid");
  ok(rr[2].events.length === 1 && rr[2].events[0].channel === "retry-1", "retry carries channel_occupied retry-1");

  // 4. receiver restart: down when the event happens, delivered after it is back
  const logAttempts = () => (fs.readFileSync(PD_LOG, "utf8").match(/webhook attempt failed.*\/ok\/restart/g) || []).length;
  await subscribed(a, "restart-1");
  const end = Date.now() + 10000 * MULT;
  while (logAttempts() < 1) {
    if (Date.now() > end) throw new Error("timeout: a failed attempt to the down receiver");
    await sleep(50);
  }
  ok(true, "attempt to the stopped receiver failed and is retried");
  const rcv = await startReceiver(RSPORT);
  reqs = await waitReq(RSPORT, (r) => has(r, "/ok/restart", (e) => e.name === "channel_occupied" && e.channel === "restart-1"), 20000, "delivery after restart");
  ok(true, "delivered after the receiver came back");
  rcv.kill("SIGTERM");

  // 5. the other app's webhook is signed with its secret; the receiver knows another: SDK refuses
  const c = pjs("bad-key");
  await subscribed(c, "chan-bad");
  reqs = await waitReq(RPORT, (r) => r.some((q) => q.path === "/ok/bad"), 8000, "request for the bad app");
  ok(reqs.filter((q) => q.path === "/ok/bad").every((q) => !q.valid && q.status === 401), "wrong secret: isValid() false");
  c.disconnect();

  // 6. receivers that hang, reset, answer garbage or 500, or are down, cost WebSocket delivery nothing
  const ch = a.channel("chan-1");
  const got = [];
  ch.bind("ev", (d) => got.push(d.i));
  for (let i = 0; i < 200; i += 10)
    await sdk.triggerBatch(Array.from({ length: 10 }, (_, k) => ({ channel: "chan-1", name: "ev", data: { i: i + k } })));
  await withTimeout((async () => { while (got.length < 200) await sleep(20); })(), 10000, "200 events");
  ok(got.every((v, i) => v === i), "200 events delivered in order while bad receivers are configured");
  reqs = await getJSON(RPORT, "/requests");
  for (const m of ["hang", "reset", "garbage", "500"]) ok(reqs.some((q) => q.path.startsWith(`/${m}/`)), `the ${m} receiver was tried`);

  // 7. leaving: member_removed u1 and one vacated per channel; filters
  a.disconnect();
  b.disconnect();
  const all = names.concat(["restart-1"]);
  reqs = await waitReq(RPORT, (r) => all.every((n) => has(r, ALL, (e) => e.name === "channel_vacated" && e.channel === n)), 8000, "vacated for every channel");
  ok(has(reqs, ALL, (e) => e.name === "member_removed" && e.user_id === "u1"), "member_removed u1");
  for (const n of all) {
    const seq = events(reqs, ALL).filter((e) => e.channel === n && /^channel_/.test(e.name)).map((e) => e.name);
    ok(seq.join() === "channel_occupied,channel_vacated", `${n}: ${seq.join()}`);
  }
  const f = events(reqs, "/ok/filtered");
  ok(f.length === 1 && f[0].channel === "private-fa-x" && f[0].name === "channel_occupied", `filter: ${JSON.stringify(f)}`);

  // 8. SIGTERM: the vacated event of a channel open at shutdown is still delivered
  const d = pjs();
  await subscribed(d, "term-1");
  await waitReq(RPORT, (r) => has(r, ALL, (e) => e.name === "channel_occupied" && e.channel === "term-1"), 8000, "term-1 occupied");
  process.kill(PD_PID, "SIGTERM");
  await waitReq(RPORT, (r) => has(r, ALL, (e) => e.name === "channel_vacated" && e.channel === "term-1"), 15000, "term-1 vacated after SIGTERM");
  ok(true, "channel_vacated delivered during the shutdown grace");
  d.disconnect();
}

main().then(() => {
  console.log(failures ? `${failures} check(s) failed` : "all webhook checks passed");
  process.exit(failures ? 1 : 0);
}, (e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
