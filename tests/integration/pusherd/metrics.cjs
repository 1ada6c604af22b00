// pusherd_metrics: the counters of /metrics move by exactly what real
// traffic caused.  Raw WebSocket clients (ws) so that every frame and byte
// is known, the official `pusher` SDK for the HTTP API.
// usage: node metrics.cjs PORT METRICS_PORT   (app app-id / app-key /
// app-secret with client events on, max_output_queue_bytes small).
"use strict";
const path = require("path");
const http = require("http");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const WebSocket = require(path.join(CLIENTS, "node_modules/ws"));
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));

const PORT = Number(process.argv[2]);
const MPORT = Number(process.argv[3]);
const MULT = Number(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || 1);
const T = 5000 * MULT;
const sdk = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret", host: "127.0.0.1", port: String(PORT), useTLS: false });
const badSdk = new Pusher({ appId: "app-id", key: "app-key", secret: "wrong-secret", host: "127.0.0.1", port: String(PORT), useTLS: false });

let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function get(port, p) {
  return new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port, path: p }, (res) => {
      let d = "";
      res.on("data", (x) => { d += x; });
      res.on("end", () => resolve({ status: res.statusCode, body: d, headers: res.headers }));
    }).on("error", (e) => resolve({ status: 0, body: String(e) }));
  });
}

// "name{labels}" -> value
async function metrics() {
  const r = await get(MPORT, "/metrics");
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const m = new Map();
  for (const line of r.body.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const A = (name) => `${name}{app_id="app-id"}`;
const H = (route, status) => `pusherd_http_requests_total{route="${route}",status="${status}"}`;
const delta = (m0, m1, k) => (m1.get(k) || 0) - (m0.get(k) || 0);

// WebSocket frame sizes: server frames are unmasked, client frames masked.
const frameLen = (n, masked) => n + (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);

class Client {
  constructor() {
    this.frames = [];
    this.bytesIn = 0;   // what the server sent us (frames)
    this.bytesOut = 0;  // what we sent the server (frames)
    this.sent = 0;
    this.waiters = [];
    this.ws = new WebSocket(`ws://127.0.0.1:${PORT}/app/app-key?protocol=7`);
    this.ws.on("message", (data) => {
      this.bytesIn += frameLen(data.length, false);
      this.frames.push(JSON.parse(data.toString()));
      for (const w of this.waiters.slice()) w();
    });
    this.ws.on("close", (code) => { this.code = code; for (const w of this.waiters.slice()) w(); });
    this.ws.on("error", () => {});
  }
  wait(pred, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), T);
      const check = () => {
        const f = pred(this);
        if (f) { clearTimeout(timer); this.waiters = this.waiters.filter((x) => x !== check); resolve(f); }
      };
      this.waiters.push(check);
      check();
    });
  }
  send(o) {
    const s = JSON.stringify(o);
    this.bytesOut += frameLen(Buffer.byteLength(s), true);
    this.sent++;
    this.ws.send(s);
  }
  async open(channel) {
    const est = await this.wait((c) => c.frames.find((f) => f.event === "pusher:connection_established"), "established");
    this.sid = JSON.parse(est.data).socket_id;
    const auth = sdk.authorizeChannel(this.sid, channel).auth;
    this.send({ event: "pusher:subscribe", data: { channel, auth } });
    await this.wait((c) => c.frames.find((f) => f.event === "pusher_internal:subscription_succeeded"), "subscribed");
  }
  count(name) { return this.frames.filter((f) => f.event === name).length; }
}

async function exact() {
  const m0 = await metrics();
  const a = new Client(), b = new Client();
  await a.open("private-room");
  await b.open("private-room");
  for (let i = 0; i < 3; i++) a.send({ event: "client-note", channel: "private-room", data: { i } });
  await b.wait((c) => c.count("client-note") === 3, "3 client events at b");
  await sdk.trigger("private-room", "ev", { one: 1 });
  await sdk.triggerBatch([1, 2, 3].map((i) => ({ channel: "private-room", name: "bev", data: { i } })));
  const ch = await sdk.get({ path: "/channels" });
  ok(ch.status === 200, "GET /channels through the SDK: 200");
  let refused = 0;
  try { await badSdk.trigger("private-room", "ev", {}); } catch (e) { refused = e.status; }
  ok(refused === 401, `a wrong secret is refused with 401 (${refused})`);
  await a.wait((c) => c.count("ev") === 1 && c.count("bev") === 3, "4 events at a");
  await b.wait((c) => c.count("ev") === 1 && c.count("bev") === 3, "4 events at b");
  ok(a.frames.length === 6 && b.frames.length === 9, `frames received: a ${a.frames.length} (6), b ${b.frames.length} (9)`);
  const m1 = await metrics();
  const d = (k) => delta(m0, m1, k);
  ok(m1.get(A("pusherd_connections")) === 2, `connections now: ${m1.get(A("pusherd_connections"))} (2)`);
  ok(d(A("pusherd_connections_total")) === 2, `connections_total +${d(A("pusherd_connections_total"))} (2)`);
  ok(m1.get(A("pusherd_channels")) === 1, `channels: ${m1.get(A("pusherd_channels"))} (1)`);
  ok(d(A("pusherd_ws_messages_received_total")) === a.sent + b.sent,
     `ws messages received +${d(A("pusherd_ws_messages_received_total"))} (${a.sent + b.sent})`);
  ok(d(A("pusherd_ws_received_bytes_total")) === a.bytesOut + b.bytesOut,
     `ws bytes received +${d(A("pusherd_ws_received_bytes_total"))} (${a.bytesOut + b.bytesOut})`);
  ok(d(A("pusherd_ws_messages_sent_total")) === a.frames.length + b.frames.length,
     `ws messages sent +${d(A("pusherd_ws_messages_sent_total"))} (${a.frames.length + b.frames.length})`);
  ok(d(A("pusherd_ws_sent_bytes_total")) === a.bytesIn + b.bytesIn,
     `ws bytes sent +${d(A("pusherd_ws_sent_bytes_total"))} (${a.bytesIn + b.bytesIn})`);
  ok(d(A("pusherd_events_published_total")) === 4, `events published +${d(A("pusherd_events_published_total"))} (4: 1 + a batch of 3)`);
  ok(d(A("pusherd_client_events_total")) === 3, `client events +${d(A("pusherd_client_events_total"))} (3)`);
  ok(d(H("events", 200)) === 1, `HTTP events 200 +${d(H("events", 200))} (1)`);
  ok(d(H("batch_events", 200)) === 1, `HTTP batch_events 200 +${d(H("batch_events", 200))} (1)`);
  ok(d(H("channels", 200)) === 1, `HTTP channels 200 +${d(H("channels", 200))} (1)`);
  ok(d(H("events", 401)) === 1, `HTTP events 401 +${d(H("events", 401))} (1)`);
  a.ws.close();
  b.ws.close();
  await a.wait((c) => c.code !== undefined, "a closed");
  await b.wait((c) => c.code !== undefined, "b closed");
  const t0 = Date.now();
  let now = -1;
  while (Date.now() - t0 < T && (now = (await metrics()).get(A("pusherd_connections"))) !== 0) await sleep(50);
  ok(now === 0, `connections now back to ${now} (0)`);
}

// A subscriber that stops reading is closed with 4100: the counter moves by one.
async function slowReader() {
  const m0 = await metrics();
  const slow = new Client();
  await slow.open("private-slow");
  slow.ws._socket.pause();
  const data = "z".repeat(9000);
  let closes = 0, sent = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 30000 * MULT) {
    closes = delta(m0, await metrics(), A("pusherd_output_queue_closes_total"));
    if (closes) break;
    await sdk.triggerBatch(Array.from({ length: 10 }, (_, i) => ({ channel: "private-slow", name: "big", data: `${sent + i}:${data}` })));
    sent += 10;
  }
  ok(closes === 1, `output-queue closes +${closes} (1) after ${sent} events of 9 KB`);
  slow.ws.terminate();
}

(async () => {
  try {
    const h = await get(MPORT, "/health"), r = await get(MPORT, "/ready");
    ok(h.status === 200 && r.status === 200, `metrics port: /health ${h.status}, /ready ${r.status}`);
    const app = await get(PORT, "/metrics");
    ok(app.status === 404, `/metrics is not served on the app port (${app.status})`);
    await exact();
    await slowReader();
  } catch (e) {
    console.log(`FAIL ${e.stack || e}`);
    failures++;
  }
  process.exit(failures ? 1 : 0);
})();
