// pusherd_ratelimit: per-app HTTP API rate limits (docs/operations.md,
// "Rate limits"), through the official `pusher` SDK.
// usage:
//   node ratelimit.cjs single PORT METRICS_PORT   app lim (events 5/s, reads 3/s), app free (none)
//   node ratelimit.cjs cluster PORT_A PORT_B METRICS_A METRICS_B   app lim on two nodes, one Redis
//   node ratelimit.cjs sign METHOD PATH BODY        prints a signed path?query for app lim (curl)
// Windows are wall-clock seconds, so the checks are invariants every
// response must satisfy whenever it comes, using the X-RateLimit-* headers:
// a 200 leaves remaining = (same window as the previous 200 ? its remaining
// : the limit) - k; a 429 comes only when the last 200 left less than k
// (requests are sequential: nothing else uses the window meanwhile).
"use strict";
const path = require("path");
const http = require("http");
const crypto = require("crypto");
const CLIENTS = path.resolve(process.env.PEERS_CLIENTS || ".");
const MULT = Number(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || 1);
let failures = 0;
function ok(cond, what) {
  if (cond) console.log(`ok   ${what}`);
  else { console.log(`FAIL ${what}`); failures++; }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.argv[2] === "sign") {
  const [method, p, body] = process.argv.slice(3);
  const q = { auth_key: "lim-key", auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: "1.0" };
  if (body) q.body_md5 = crypto.createHash("md5").update(body).digest("hex");
  const qs = Object.keys(q).sort().map((k) => `${k}=${q[k]}`).join("&");
  const sig = crypto.createHmac("sha256", "lim-secret").update(`${method}\n${p}\n${qs}`).digest("hex");
  console.log(`${p}?${qs}&auth_signature=${sig}`);
  process.exit(0);
}

const Pusher = require(path.join(CLIENTS, "node_modules/pusher"));
const sdk = (port, id) => new Pusher({ appId: id, key: `${id}-key`, secret: `${id}-secret`, host: "127.0.0.1", port: String(port), useTLS: false });

// One SDK call: {status, remaining, reset, body}.
async function call(p) {
  try {
    const res = await p;
    return { status: res.status, limit: Number(res.headers.get("x-ratelimit-limit")),
             remaining: Number(res.headers.get("x-ratelimit-remaining")), reset: Number(res.headers.get("x-ratelimit-reset")) };
  } catch (e) {
    return { status: e.status || String(e), body: e.body };
  }
}

function metric(port, key) {
  return new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port, path: "/metrics" }, (res) => {
      let d = "";
      res.on("data", (x) => { d += x; });
      res.on("end", () => {
        const line = d.split("\n").find((l) => l.startsWith(key + " "));
        resolve(line ? Number(line.split(" ")[1]) : 0);
      });
    }).on("error", () => resolve(-1));
  });
}

// Sequential requests of k units until two 429s (at most max requests);
// checks the invariants; returns the number of 429s.
async function drive(what, limit, k, send, max) {
  await sleep(1010 - (Date.now() % 1000)); // start in a fresh second (not required by the checks)
  let last = null, refused = 0, n = 0, bad = 0;
  while (refused < 2 && n < max) {
    n++;
    const r = await call(send());
    if (r.status === 200) {
      // the first answer of a run may land in a window earlier runs used
      const expect = (last && last.reset === r.reset ? last.remaining : limit) - k;
      if (r.limit !== limit || (last ? r.remaining !== expect : r.remaining > expect || r.remaining < 0)) {
        bad++;
        console.log(`  ${what}: 200 with limit ${r.limit} remaining ${r.remaining} (want ${limit}, ${expect})`);
      }
      last = r;
    } else if (r.status === 429) {
      refused++;
      let body = null;
      try { body = JSON.parse(r.body); } catch (e) { /* checked below */ }
      if (!body || !/Rate limit exceeded/.test(body.error)) { bad++; console.log(`  ${what}: 429 body ${r.body}`); }
      if (last && last.remaining >= k) { bad++; console.log(`  ${what}: 429 although the last 200 left ${last.remaining}`); }
    } else {
      bad++;
      console.log(`  ${what}: status ${r.status} ${r.body || ""}`);
    }
  }
  ok(bad === 0, `${what}: every response of ${n} consistent with a limit of ${limit}/s (X-RateLimit-*; 429 only on a full window)`);
  ok(refused === 2, `${what}: ${refused} requests refused with 429 and a JSON error`);
  return refused;
}

async function single(port, mport) {
  const lim = sdk(port, "lim"), free = sdk(port, "free");
  const rl = (l) => `pusherd_rate_limited_requests_total{app_id="lim",limit="${l}"}`;
  const e0 = await metric(mport, rl("events")), r0 = await metric(mport, rl("reads"));
  const big = await call(lim.triggerBatch(Array.from({ length: 6 }, (_, i) => ({ channel: "c", name: "e", data: String(i) }))));
  ok(big.status === 429 && /this request: 6/.test(big.body), `a batch of 6 events against 5/s: 429 (${big.status} ${big.body})`);
  let refused = 1;
  refused += await drive("events (trigger)", 5, 1, () => lim.trigger("c", "e", "x"), 1000);
  refused += await drive("events (batch of 2)", 5, 2,
                         () => lim.triggerBatch([0, 1].map((i) => ({ channel: "c", name: "e", data: String(i) }))), 1000);
  const reads = await drive("reads (GET /channels)", 3, 1, () => lim.get({ path: "/channels" }), 1000);
  ok(await metric(mport, rl("events")) - e0 === refused, `pusherd_rate_limited_requests_total{limit="events"} +${refused}`);
  ok(await metric(mport, rl("reads")) - r0 === reads, `pusherd_rate_limited_requests_total{limit="reads"} +${reads}`);
  // POSTs do not count as reads, GETs not as events: after the reads, one event goes through
  let st = 0;
  for (let i = 0; i < 200 && st !== 200; i++) st = (await call(lim.trigger("c", "e", "x"))).status;
  ok(st === 200, "events are not limited by the read limit");
  // an app without limits: no 429 and no X-RateLimit headers
  let codes = new Set(), hdr = false;
  for (let i = 0; i < 100; i++) {
    const r = await call(free.trigger("c", "e", "x"));
    codes.add(r.status);
    hdr = hdr || !Number.isNaN(r.limit) && r.limit !== 0;
  }
  ok(codes.size === 1 && codes.has(200) && !hdr, `app free (-1, the default): 100 events, all 200, no X-RateLimit headers`);
}

// Two nodes, one limit: node X fills the window, node Y refuses once it has
// heard (pusherd_rate_limit_window_used on Y), in the same window.
async function fillAndRefuse(what, X, Y, mpy) {
  const used = `pusherd_rate_limit_window_used{app_id="lim",limit="events"}`;
  // A round needs all its steps within one wall-clock second; a round that
  // straddles two seconds proves nothing and the next second is used (at
  // most 10); a wrong answer within one second fails at once.
  for (let round = 1; round <= 10; round++) {
    await sleep(1005 - (Date.now() % 1000)); // the start of a second no earlier round used
    const x = await call(X.triggerBatch(Array.from({ length: 5 }, (_, i) => ({ channel: "c", name: "e", data: String(i) }))));
    if (x.status !== 200) { console.log(`  ${what} round ${round}: the filling node answered ${x.status} ${x.body || ""}`); continue; }
    const inWindow = () => Math.floor(Date.now() / 1000) + 1 === x.reset;
    let seen = 0;
    while (inWindow() && (seen = await metric(mpy, used)) !== 5) await sleep(5);
    if (seen !== 5) { console.log(`  ${what} round ${round}: the second ended before the other node showed the window (${seen})`); continue; }
    const y = await call(Y.trigger("c", "e", "x"));
    if (!inWindow() && y.status === 200) { console.log(`  ${what} round ${round}: answered in the next second`); continue; }
    ok(y.status === 429 && /Rate limit exceeded/.test(y.body),
       `${what}: a batch of 5 filled the window (limit 5/s); the other node, in the same second, refuses one more: ${y.status}`);
    const r = await call(Y.get({ path: "/channels" }));
    ok(r.status === 200, `${what}: reads have their own limit (GET /channels: ${r.status})`);
    return;
  }
  ok(false, `${what}: no round fitted in one second (10 tried)`);
}

async function cluster(pa, pb, mpa, mpb) {
  const A = sdk(pa, "lim"), B = sdk(pb, "lim");
  await fillAndRefuse("cluster A -> B", A, B, mpb);
  await fillAndRefuse("cluster B -> A", B, A, mpa);
}

(async () => {
  try {
    if (process.argv[2] === "single") await single(Number(process.argv[3]), Number(process.argv[4]));
    else if (process.argv[2] === "cluster")
      await cluster(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]));
    else throw new Error("usage: single PORT MPORT | cluster PA PB MPA MPB | sign METHOD PATH BODY");
  } catch (e) {
    console.log(`FAIL ${e.stack || e}`);
    failures++;
  }
  process.exit(failures ? 1 : 0);
})();
