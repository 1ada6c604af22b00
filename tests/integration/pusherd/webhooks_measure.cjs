// Measurements for docs/webhooks.md (not a test; run by hand):
//   node webhooks_measure.cjs latency PORT RECEIVER_PORT N
//     N times: subscribe a pusher-js client to a fresh channel; the time from
//     subscription_succeeded at the client to the channel_occupied request's
//     arrival at the receiver (webhook_receiver.mjs); prints min/median/max.
//   node webhooks_measure.cjs flood PORT N BYTES
//     N client events of BYTES of data on private-flood (for the queue
//     memory under a down receiver: read pusherd's VmRSS before and after).
"use strict";
const path = require("path");
const http = require("http");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));
const [MODE, PORT, A, B] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const sdk = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret", host: "127.0.0.1", port: String(PORT), useTLS: false });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const getJSON = (port, p) => new Promise((res, rej) => http.get({ host: "127.0.0.1", port, path: p }, (r) => {
  let b = ""; r.on("data", (c) => (b += c)); r.on("end", () => res(JSON.parse(b)));
}).on("error", rej));
const client = new PusherJS("app-key", { wsHost: "127.0.0.1", wsPort: PORT, forceTLS: false, enabledTransports: ["ws"],
  cluster: "x", disableStats: true,
  channelAuthorization: { customHandler: ({ socketId, channelName }, cb) => cb(null, sdk.authorizeChannel(socketId, channelName)) } });
const sub = (n) => new Promise((res) => client.subscribe(n).bind("pusher:subscription_succeeded", () => res(Date.now())));

async function latency(rport, n) {
  const lat = [];
  for (let i = 0; i < n; i++) {
    const name = `lat-${Date.now()}-${i}`;
    const t0 = await sub(name);
    for (;;) {
      const r = (await getJSON(rport, "/requests")).find((q) => q.valid && q.events.some((e) => e.channel === name));
      if (r) { lat.push(r.at - t0); break; }
      await sleep(5);
    }
    client.unsubscribe(name);
  }
  lat.sort((x, y) => x - y);
  console.log(`latency ms over ${n}: min ${lat[0]} median ${lat[n >> 1]} max ${lat[n - 1]}`);
}
async function flood(n, bytes) {
  const ch = client.channel("private-flood") || client.subscribe("private-flood");
  await new Promise((res) => ch.bind("pusher:subscription_succeeded", res));
  const data = "x".repeat(bytes);
  for (let i = 0; i < n; i++) {
    ch.trigger("client-f", { i, data });
    if (i % 50 === 49) await sleep(1);
  }
  await sleep(500);
  console.log(`sent ${n} client events of ${bytes} bytes`);
}
(MODE === "latency" ? latency(A, B) : flood(A, B)).then(() => { client.disconnect(); process.exit(0); });
