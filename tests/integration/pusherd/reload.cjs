// pusherd_reload: SIGHUP re-reads --config (docs/operations.md, "Reload").
// usage: node reload.cjs PORT METRICS_PORT PUSHERD_PID CONFIG_FILE
// Writes CONFIG_FILE, signals PUSHERD_PID (started by the calling test) and
// waits for pusherd_config_reloads_total to move.  Real clients: pusher-js
// 8.6.0 (the app that must stay untouched), raw WebSocket clients (ws) to
// read close codes, the official `pusher` SDK for the HTTP API.
"use strict";
const fs = require("fs");
const path = require("path");
const http = require("http");
const crypto = require("crypto");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS);
const WebSocket = require(path.join(CLIENTS, "node_modules/ws"));
const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const PusherJS = require(path.join(CLIENTS, "node_modules/pusher-js"));

const [PORT, MPORT, PID] = process.argv.slice(2, 5).map(Number);
const FILE = process.argv[5];
const MULT = Number(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || 1);
const T = 5000 * MULT;
let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sdk = (id, key, secret) => new Pusher({ appId: id, key, secret, host: "127.0.0.1", port: String(PORT), useTLS: false });
const status = async (p) => { try { return (await p).status; } catch (e) { return e.status || String(e); } };

function app(id, extra) {
  return Object.assign({ id, key: `${id}-key`, secret: `${id}-secret`, client_events: true }, extra || {});
}
function writeConfig(apps) {
  fs.writeFileSync(FILE, JSON.stringify({ host: "127.0.0.1", port: PORT, metrics_port: MPORT, apps }));
}
function metric(key) {
  return new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port: MPORT, path: "/metrics" }, (res) => {
      let d = "";
      res.on("data", (x) => { d += x; });
      res.on("end", () => {
        const line = d.split("\n").find((l) => l.startsWith(key + " "));
        resolve(line ? Number(line.split(" ")[1]) : 0);
      });
    }).on("error", () => resolve(-1));
  });
}
async function reload(result) {
  const k = `pusherd_config_reloads_total{result="${result}"}`;
  const before = await metric(k);
  process.kill(PID, "SIGHUP");
  const t0 = Date.now();
  while (Date.now() - t0 < T) {
    if ((await metric(k)) === before + 1) return true;
    await sleep(20);
  }
  return false;
}

class Raw {
  constructor(key) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(`ws://127.0.0.1:${PORT}/app/${key}?protocol=7`);
    this.ws.on("message", (d) => { this.frames.push(JSON.parse(d.toString())); this.poke(); });
    this.ws.on("close", (code) => { this.code = code; this.poke(); });
    this.ws.on("error", () => {});
  }
  poke() { for (const w of this.waiters.slice()) w(); }
  wait(pred, what) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { console.log(`timeout: ${what}`); resolve(null); }, T);
      const check = () => {
        const f = pred(this);
        if (f) { clearTimeout(timer); this.waiters = this.waiters.filter((x) => x !== check); resolve(f); }
      };
      this.waiters.push(check);
      check();
    });
  }
  closed() { return this.wait((c) => c.code !== undefined && c.code, "close").then(() => this.code); }
  async established() {
    const f = await this.wait((c) => c.frames.find((x) => x.event === "pusher:connection_established") || c.code, "established");
    if (!f || typeof f !== "object") return false;
    this.sid = JSON.parse(f.data).socket_id;
    return true;
  }
  // subscribe to a private channel signed with secret: "ok" or the error
  async privateSub(channel, key, secret) {
    const auth = `${key}:` + crypto.createHmac("sha256", secret).update(`${this.sid}:${channel}`).digest("hex");
    this.ws.send(JSON.stringify({ event: "pusher:subscribe", data: { channel, auth } }));
    const f = await this.wait((c) => c.frames.find((x) => x.channel === channel &&
      (x.event === "pusher_internal:subscription_succeeded" || x.event === "pusher:subscription_error" || x.event === "pusher:error")), "sub reply");
    return f && f.event === "pusher_internal:subscription_succeeded" ? "ok" : JSON.stringify(f);
  }
}

function pusherJs(key) {
  const p = new PusherJS(key, { wsHost: "127.0.0.1", wsPort: PORT, forceTLS: false, enabledTransports: ["ws"],
                                cluster: "mt1", disableStats: true });
  const got = [];
  const states = [];
  p.connection.bind("state_change", (s) => states.push(s.current));
  p.subscribe("news").bind("item", (d) => got.push(d));
  return { p, got, states };
}
async function until(cond, what) {
  const t0 = Date.now();
  while (Date.now() - t0 < T) { if (cond()) return true; await sleep(20); }
  console.log(`timeout: ${what}`);
  return false;
}

(async () => {
  try {
    // v1: keep, gone, off, rot
    const v1 = [app("keep"), app("gone"), app("off"), app("rot", { secret: "old-secret" })];
    // the file pusherd started with is the same v1 (written by the test)
    const keep = pusherJs("keep-key");
    ok(await until(() => keep.p.connection.state === "connected" && keep.p.channel("news").subscribed, "keep connected"),
       "pusher-js on app keep: connected and subscribed");
    const keepSid = keep.p.connection.socket_id;
    const gone = new Raw("gone-key"), off = new Raw("off-key"), rot = new Raw("rot-key");
    ok(await gone.established() && await off.established() && await rot.established(), "raw clients on gone, off, rot: established");
    ok(await rot.privateSub("private-a", "rot-key", "old-secret") === "ok", "rot: private channel signed with the old secret accepted");
    ok(await status(sdk("rot", "rot-key", "old-secret").trigger("private-a", "e", "x")) === 200, "rot: REST with the old secret: 200");
    ok(await status(sdk("new", "new-key", "new-secret").trigger("c", "e", "x")) === 404, "new: unknown before the reload (404)");

    // v2: gone removed, off disabled, rot's secret rotated and its data cap
    // lowered, new added; keep unchanged
    writeConfig([app("keep"), app("off", { enabled: false }), app("rot", { secret: "new-secret", max_event_data_bytes: 100 }),
                 app("new")]);
    ok(await reload("ok"), "SIGHUP: pusherd_config_reloads_total{result=\"ok\"} +1");
    ok(await gone.closed() === 4003, `gone: open connection closed with ${gone.code} (4003)`);
    ok(await off.closed() === 4003, `off: open connection closed with ${off.code} (4003)`);
    ok(gone.frames.some((f) => f.event === "pusher:error" && f.data.code === 4003), "gone: pusher:error 4003 before the close");
    const gone2 = new Raw("gone-key"), off2 = new Raw("off-key");
    ok(await gone2.closed() === 4001, `gone: a new connection is refused with ${gone2.code} (4001)`);
    ok(await off2.closed() === 4003, `off: a new connection is refused with ${off2.code} (4003)`);
    ok(rot.code === undefined, "rot: its open connection is untouched");
    ok(await rot.privateSub("private-b", "rot-key", "old-secret") !== "ok", "rot: the old secret's channel signature is refused");
    ok(await rot.privateSub("private-c", "rot-key", "new-secret") === "ok", "rot: the new secret's channel signature is accepted");
    ok(await status(sdk("rot", "rot-key", "old-secret").trigger("private-a", "e", "x")) === 401, "rot: REST with the old secret: 401");
    ok(await status(sdk("rot", "rot-key", "new-secret").trigger("private-a", "e", "x")) === 200, "rot: REST with the new secret: 200");
    ok(await status(sdk("rot", "rot-key", "new-secret").trigger("private-a", "e", "y".repeat(200))) === 413,
       "rot: the lowered max_event_data_bytes (100) refuses 200 bytes with 413");
    ok(await status(sdk("gone", "gone-key", "gone-secret").trigger("c", "e", "x")) === 404, "gone: REST 404 (unknown app)");
    ok(await status(sdk("off", "off-key", "off-secret").trigger("c", "e", "x")) === 403, "off: REST 403 (disabled)");
    const nw = new Raw("new-key");
    ok(await nw.established(), "new: a connection is established at once");
    ok(await nw.privateSub("private-n", "new-key", "new-secret") === "ok", "new: private channel subscribed");
    ok(await status(sdk("new", "new-key", "new-secret").trigger("private-n", "hello", "x")) === 200, "new: REST 200");
    ok(await nw.wait((c) => c.frames.find((f) => f.event === "hello"), "hello at new") !== null, "new: the event arrived");
    ok(await status(sdk("keep", "keep-key", "keep-secret").trigger("news", "item", "after")) === 200, "keep: REST 200");
    ok(await until(() => keep.got.includes("after"), "keep got item"), "keep: pusher-js received the event after the reload");
    ok(keep.p.connection.socket_id === keepSid && !keep.states.slice(2).length,
       `keep: same socket ${keep.p.connection.socket_id} (${keepSid}), no state change since connected (${keep.states.join(",")})`);

    // a bad file is refused; the running config is kept
    fs.writeFileSync(FILE, '{"apps":[{"id":"x"');
    ok(await reload("failed"), "a broken file: pusherd_config_reloads_total{result=\"failed\"} +1");
    ok(await status(sdk("new", "new-key", "new-secret").trigger("private-n", "hello", "x")) === 200, "broken file: new still served");
    writeConfig([app("keep"), app("dup"), app("dup")]);
    ok(await reload("failed"), "a file with a duplicated app id: refused");
    ok(await status(sdk("rot", "rot-key", "new-secret").trigger("private-a", "e", "x")) === 200, "refused file: rot still served");
    ok(keep.p.connection.socket_id === keepSid, "keep: still the same connection");

    // re-adding the removed app serves it again
    writeConfig([app("keep"), app("gone"), app("rot", { secret: "new-secret" }), app("new")]);
    ok(await reload("ok"), "SIGHUP: gone added back, off removed");
    const gone3 = new Raw("gone-key");
    ok(await gone3.established(), "gone: served again after being added back");
    ok(await status(sdk("new", "new-key", "new-secret").trigger("private-n", "again", "x")) === 200 &&
       await nw.wait((c) => c.frames.find((f) => f.event === "again"), "again at new") !== null && nw.code === undefined,
       "new: its connection untouched by the third reload (an event arrives)");
    for (const c of [rot, nw, gone3]) c.ws.close();
    keep.p.disconnect();
  } catch (e) {
    console.log(`FAIL ${e.stack || e}`);
    failures++;
  }
  process.exit(failures ? 1 : 0);
})();
