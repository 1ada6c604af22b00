// pusherd_tls: pusher-js 8.6.0 (Node build), the official `pusher` REST SDK
// and raw WebSocket clients (ws) against pusherd's TLS listener.  The test
// CA comes in through NODE_EXTRA_CA_CERTS (no verification is turned off).
// usage: node tls.cjs PLAIN_PORT TLS_PORT TIMEOUT_MULTIPLIER
//   app-id/app-key/app-secret: an ordinary app; tls-id/tls-key/tls-secret:
//   a tls_only app.  Exit 0 when every check passes.
"use strict";
const path = require("path");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const WebSocket = require(path.join(CLIENTS, "node_modules/ws"));
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));

const PORT = Number(process.argv[2]);
const TPORT = Number(process.argv[3]);
const MULT = Number(process.argv[4] || 1);
const T = 10000 * MULT;

let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout: ${what}`)), ms); })])
    .finally(() => clearTimeout(timer));
}
const sdk = (appId, key, secret) =>
  new Pusher({ appId, key, secret, host: "localhost", port: String(TPORT), useTLS: true });

// A pusher-js client; resolves with it once connected.
function pjs(key, opts, what) {
  const p = new PusherJS(key, { cluster: "mt1", wsHost: "localhost", wsPort: PORT, wssPort: TPORT,
    enabledTransports: ["ws"], disableStats: true, ...opts });
  p.errors = [];
  p.connection.bind("error", (e) => p.errors.push(e));
  return withTimeout(new Promise((res) => p.connection.bind("connected", () => res(p))), T, what);
}
function nextEvent(p, channel, event, what) {
  const ch = p.channel(channel) || p.subscribe(channel);
  return withTimeout(new Promise((res) => ch.bind(event, (d) => res(d))), T, what);
}
function subscribed(p, channel, what) {
  const ch = p.subscribe(channel);
  return withTimeout(new Promise((res) => ch.bind("pusher:subscription_succeeded", () => res())), T, what);
}

async function main() {
  // 1. pusher-js with forceTLS to the TLS port; an event from the SDK with useTLS.
  const a = await pjs("app-key", { forceTLS: true }, "pusher-js forceTLS connected");
  ok(a.connection.state === "connected", "pusher-js (forceTLS) connected over wss://localhost:" + TPORT);
  await subscribed(a, "tls-chan", "pusher-js subscribed");
  const got = nextEvent(a, "tls-chan", "greet", "pusher-js received the SDK's event");
  const r = await sdk("app-id", "app-key", "app-secret").trigger("tls-chan", "greet", { over: "https" });
  ok(r.status === 200, `SDK (useTLS) trigger over https answered ${r.status}`);
  const d = await got;
  ok(d && d.over === "https", "pusher-js received the event triggered over https: " + JSON.stringify(d));
  const info = await sdk("app-id", "app-key", "app-secret").get({ path: "/channels", params: {} });
  const body = await info.json();
  ok(info.status === 200 && body.channels && "tls-chan" in body.channels,
    "SDK GET /channels over https lists tls-chan: " + JSON.stringify(body));

  // 2. The tls_only app: a raw plain client gets pusher:error 4000 and close 4000.
  const raw = new WebSocket(`ws://127.0.0.1:${PORT}/app/tls-key?protocol=7&client=raw&version=1`);
  const frames = [];
  raw.on("message", (m) => { try { frames.push(JSON.parse(m.toString())); } catch (e) { frames.push({ raw: String(m) }); } });
  raw.on("error", () => {});
  const closed = await withTimeout(new Promise((res) => raw.on("close", (code, reason) => res({ code, reason: String(reason) }))),
    T, "raw plain client closed");
  const err = frames.find((f) => f.event === "pusher:error");
  ok(err && err.data && err.data.code === 4000, "plain client of the tls_only app got pusher:error 4000: " + JSON.stringify(err));
  ok(!frames.some((f) => f.event === "pusher:connection_established"), "... and no connection_established");
  ok(closed.code === 4000, `... and close code 4000 (got ${closed.code} "${closed.reason}")`);

  // 3. The same over TLS is accepted.
  const rawTls = new WebSocket(`wss://localhost:${TPORT}/app/tls-key?protocol=7&client=raw&version=1`);
  const est = await withTimeout(new Promise((res, rej) => {
    rawTls.on("message", (m) => { const f = JSON.parse(m.toString()); if (f.event === "pusher:connection_established") res(f); });
    rawTls.on("error", rej);
  }), T, "raw TLS client established");
  ok(est && JSON.parse(est.data).socket_id, "raw wss:// client of the tls_only app established");
  rawTls.close();

  // 4. pusher-js without forceTLS on the tls_only app: 4000, then it switches to TLS on its own.
  const b = await pjs("tls-key", { forceTLS: false }, "pusher-js (no forceTLS) on the tls_only app connected");
  // pusher-js reports the pusher:error as {type: "PusherError", data} or wrapped in {error: ...}
  const code = (e) => e && ((e.data && e.data.code) || (e.error && e.error.data && e.error.data.code));
  ok(b.errors.some((e) => code(e) === 4000), "pusher-js saw error 4000 first: " + JSON.stringify(b.errors));
  await subscribed(b, "only-tls", "pusher-js subscribed on the tls_only app");
  const got2 = nextEvent(b, "only-tls", "ev", "pusher-js received on the tls_only app");
  await sdk("tls-id", "tls-key", "tls-secret").trigger("only-tls", "ev", { n: 2 });
  const d2 = await got2;
  ok(d2 && d2.n === 2, "pusher-js (switched to TLS) received the event: " + JSON.stringify(d2));

  a.disconnect();
  b.disconnect();
}

main().then(() => {
  console.log(failures ? `${failures} check(s) failed` : "all checks passed");
  process.exit(failures ? 1 : 0);
}, (e) => {
  console.log(`FAIL ${e && e.stack || e}`);
  process.exit(1);
});
