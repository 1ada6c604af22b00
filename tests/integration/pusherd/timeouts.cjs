// pusherd_timeouts: activity timeout / ping / 4201, and a two-app --config.
// usage: node timeouts.cjs PING_PORT CONFIG_PORT
"use strict";
const path = require("path");
const WebSocket = require(path.join(path.resolve(process.env.PEERS_CLIENTS), "node_modules/ws"));
const [PING_PORT, CONF_PORT] = process.argv.slice(2).map(Number);
let failures = 0;
function ok(c, what) { console.log(`${c ? "ok  " : "FAIL"} ${what}`); if (!c) failures++; }

function client(url, { answerPings }) {
  const st = { frames: [], closed: null, t0: Date.now() };
  const ws = new WebSocket(url);
  ws.on("message", (m) => {
    const d = JSON.parse(m.toString());
    st.frames.push({ d, t: Date.now() - st.t0 });
    if (answerPings && d.event === "pusher:ping") ws.send(JSON.stringify({ event: "pusher:pong", data: {} }));
  });
  ws.on("close", (code) => { st.closed = { code, t: Date.now() - st.t0 }; });
  ws.on("error", () => {});
  st.ws = ws;
  return st;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  // server: --activity-timeout 1 --pong-timeout 2
  const silent = client(`ws://127.0.0.1:${PING_PORT}/app/app-key?protocol=7`, { answerPings: false });
  const polite = client(`ws://127.0.0.1:${PING_PORT}/app/app-key?protocol=7`, { answerPings: true });
  for (let i = 0; i < 100 && !silent.closed; i++) await sleep(100);
  ok(silent.frames.some((f) => f.d.event === "pusher:ping"), "a silent client is sent pusher:ping after the activity timeout");
  ok(silent.closed && silent.closed.code === 4201, `a client that does not answer is closed with 4201 (got ${JSON.stringify(silent.closed)})`);
  ok(!polite.closed, "a client answering pusher:ping with pusher:pong stays connected");
  ok(polite.frames.filter((f) => f.d.event === "pusher:ping").length >= 2, "it is pinged again after each quiet period");
  polite.ws.close();

  // two apps from the config file
  const dis = client(`ws://127.0.0.1:${CONF_PORT}/app/key-disabled?protocol=7`, {});
  const one = client(`ws://127.0.0.1:${CONF_PORT}/app/key-one?protocol=7`, {});
  for (let i = 0; i < 50 && !(dis.closed && one.frames.length); i++) await sleep(100);
  ok(dis.closed && dis.closed.code === 4003, `disabled app: close 4003 (got ${JSON.stringify(dis.closed)})`);
  const est = one.frames.find((f) => f.d.event === "pusher:connection_established");
  ok(est && JSON.parse(est.d.data).activity_timeout === 42, "app from the config file connects with its activity_timeout 42");
  one.ws.send(JSON.stringify({ event: "client-x", channel: "private-a", data: {} }));
  await sleep(300);
  const err = one.frames.find((f) => f.d.event === "pusher:error");
  ok(err && /enable/.test(err.d.data.message), "client events off for that app: pusher:error");
  one.ws.close();

  // output queue cap (max_output_queue_bytes 262144 in the config): a client
  // that stops reading is closed with 4100 instead of growing memory.
  const Pusher = require(path.join(path.resolve(process.env.PEERS_CLIENTS), "node_modules/pusher"));
  const sdk = new Pusher({ appId: "one", key: "key-one", secret: "secret-one", host: "127.0.0.1", port: String(CONF_PORT), useTLS: false });
  const slow = client(`ws://127.0.0.1:${CONF_PORT}/app/key-one?protocol=7`, {});
  const fast = client(`ws://127.0.0.1:${CONF_PORT}/app/key-one?protocol=7`, {});
  for (let i = 0; i < 50 && (slow.frames.length < 1 || fast.frames.length < 1); i++) await sleep(100);
  slow.ws.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: "flood" } }));
  fast.ws.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: "flood" } }));
  for (let i = 0; i < 50 && !(slow.frames.length >= 2 && fast.frames.length >= 2); i++) await sleep(100);
  slow.ws._socket.pause();
  const payload = "y".repeat(9000);
  let sent = 0;
  const publishing = (async () => {
    for (let r = 0; r < 300; r++) {
      const batch = [];
      for (let i = 0; i < 10; i++) batch.push({ channel: "flood", name: "big", data: payload });
      await sdk.triggerBatch(batch);
      sent += 10;
    }
  })();
  // The server closes an over-cap consumer from its 1 s tick (it leaves the
  // channel at once) and gives the closing connection 5 s to drain.  Resume
  // reading as soon as the channel is down to one subscriber, not after the
  // whole publish (which takes longer than 5 s on a loaded machine or under
  // ASan).
  const subs = async () => {
    const r = await sdk.get({ path: "/channels/flood", params: { info: "subscription_count" } });
    return (await r.json()).subscription_count;
  };
  for (let i = 0; i < 600 && (await subs()) !== 1; i++) await sleep(50);
  slow.ws._socket.resume();
  await publishing;
  for (let i = 0; i < 100 && !slow.closed; i++) await sleep(100);
  ok(slow.closed && slow.closed.code === 4100, `a consumer that stops reading is closed with 4100 (got ${JSON.stringify(slow.closed)}, after ${slow.frames.length} frames of ${sent})`);
  for (let i = 0; i < 100 && fast.frames.filter((f) => f.d.event === "big").length < sent; i++) await sleep(100);
  ok(fast.frames.filter((f) => f.d.event === "big").length === sent && !fast.closed, `a client that keeps reading gets every event and stays connected (${fast.frames.filter((f) => f.d.event === "big").length} of ${sent}, closed ${JSON.stringify(fast.closed)})`);
  fast.ws.close();
  console.log(failures ? `${failures} check(s) failed` : "all checks passed");
  process.exit(failures ? 1 : 0);
})();
