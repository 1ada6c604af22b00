// pusherd_webhooks_cluster: two pusherd nodes on one Redis send
// channel_occupied/vacated and member_added/removed exactly once per
// cluster-wide transition, whichever node the sockets are on.
// usage: node webhooks_cluster.cjs PORT_A PORT_B RECEIVER_PORT ROUNDS
// Each round subscribes a socket on A and one on B to "room" and
// "presence-room" in the same instant (same user on both nodes in even
// rounds, two users in odd ones), waits, then unsubscribes both in the same
// instant.  After every phase the receiver (SDK-validated requests) must
// have exactly the events one transition each makes; at the end every
// channel's and member's sequence must alternate strictly.
"use strict";
const path = require("path");
const http = require("http");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));

const [PA, PB, RPORT, ROUNDS] = process.argv.slice(2, 6).map(Number);
const PHASE = process.argv[6] || "rounds";
const MULT = Number(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || 1);
const sdk = new Pusher({ appId: "app-id", key: "app-key", secret: "app-secret", host: "127.0.0.1", port: String(PA), useTLS: false });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
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
const events = (reqs) => reqs.filter((r) => r.valid).flatMap((r) => r.events);
async function waitEvents(pred, ms, what) {
  const end = Date.now() + ms * MULT;
  for (;;) {
    const reqs = await getJSON(RPORT, "/requests");
    const bad = reqs.filter((r) => !r.valid);
    if (bad.length) throw new Error(`receiver refused a request: ${JSON.stringify(bad[0])}`);
    const ev = events(reqs);
    if (pred(ev)) return ev;
    if (Date.now() > end) throw new Error(`timeout: ${what}; have ${JSON.stringify(summary(ev))}`);
    await sleep(20);
  }
}
function summary(ev) {
  const m = {};
  for (const e of ev) {
    const k = `${e.name} ${e.channel}${e.user_id ? " " + e.user_id : ""}`;
    m[k] = (m[k] || 0) + 1;
  }
  return m;
}
function pjs(port, userId) {
  return new PusherJS("app-key", {
    wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"], cluster: "x", disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        const data = channelName.startsWith("presence-") ? { user_id: userId } : undefined;
        cb(null, sdk.authorizeChannel(socketId, channelName, data));
      },
    },
  });
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

async function rounds() {
  const a1 = pjs(PA, "u1"), b1 = pjs(PB, "u1"), b2 = pjs(PB, "u2");
  await Promise.all([a1, b1, b2].map(connected));
  const want = {};
  const bump = (k) => (want[k] = (want[k] || 0) + 1);
  const matches = (ev) => {
    const s = summary(ev);
    return Object.keys(want).every((k) => s[k] === want[k]);
  };
  for (let r = 0; r < ROUNDS; r++) {
    const b = r % 2 ? b2 : b1;
    const users = r % 2 ? ["u1", "u2"] : ["u1"];
    await Promise.all([a1, b].flatMap((c) => [subscribed(c, "room"), subscribed(c, "presence-room")]));
    bump("channel_occupied room");
    bump("channel_occupied presence-room");
    for (const u of users) bump(`member_added presence-room ${u}`);
    await waitEvents(matches, 8000, `round ${r}: occupied / member_added`);
    for (const c of [a1, b]) { c.unsubscribe("room"); c.unsubscribe("presence-room"); }
    bump("channel_vacated room");
    bump("channel_vacated presence-room");
    for (const u of users) bump(`member_removed presence-room ${u}`);
    await waitEvents(matches, 8000, `round ${r}: vacated / member_removed`);
  }
  ok(true, `${ROUNDS} rounds of simultaneous joins and leaves on both nodes: each transition's event arrived`);
  for (const c of [a1, b1, b2]) c.disconnect();
}

// A socket on B only; B is then killed (-9) by the script: A reaps B's
// counts and sends channel_vacated once.
async function leftBehind() {
  const b = pjs(PB, "u9");
  await connected(b);
  await subscribed(b, "left-behind");
  await subscribed(b, "presence-left");
  await waitEvents((ev) => summary(ev)["member_added presence-left u9"] === 1 && summary(ev)["channel_occupied left-behind"] === 1,
    8000, "left-behind occupied");
  console.log("READY");
  await new Promise(() => {}); // until killed with node B
}

async function final() {
  const ev = await waitEvents((e) => summary(e)["channel_vacated left-behind"] === 1 && summary(e)["member_removed presence-left u9"] === 1 &&
    summary(e)["channel_vacated presence-left"] === 1, 20000, "vacated after node B died");
  ok(true, "node B killed: its channel vacated and its member removed by node A");
  const seqs = {};
  for (const e of ev) {
    const k = e.name.startsWith("channel_") ? `channel ${e.channel}` : `member ${e.channel} ${e.user_id}`;
    (seqs[k] = seqs[k] || []).push(e.name);
  }
  for (const [k, s] of Object.entries(seqs)) {
    const up = k.startsWith("channel") ? "channel_occupied" : "member_added";
    const alternates = s.every((n, i) => (n === up) === (i % 2 === 0)) && s.length % 2 === 0;
    ok(alternates, `${k}: ${s.length} events, strictly alternating, none doubled or missed`);
  }
  const s = summary(ev);
  ok(s["channel_occupied room"] === ROUNDS && s["channel_vacated room"] === ROUNDS, `room: ${ROUNDS} occupied and ${ROUNDS} vacated`);
  ok(s["member_added presence-room u1"] === ROUNDS && s["member_removed presence-room u1"] === ROUNDS,
    `u1 (on both nodes in even rounds): ${ROUNDS} added, ${ROUNDS} removed`);
}

const run = PHASE === "rounds" ? rounds : PHASE === "left" ? leftBehind : final;
run().then(() => {
  console.log(failures ? `${failures} check(s) failed` : `${PHASE}: all checks passed`);
  process.exit(failures ? 1 : 0);
}, (e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
