// pusherd_http: one 413 for an oversized body, 408 at the header deadline.
// usage: node http.cjs PORT [TIMEOUT_MULTIPLIER]
"use strict";
const net = require("net");
const path = require("path");
const WebSocket = require(path.join(path.resolve(process.env.PEERS_CLIENTS), "node_modules/ws"));
const PORT = Number(process.argv[2]);
const MULT = Number(process.argv[3] || 1);
let failures = 0;
function ok(c, what) { console.log(`${c ? "ok  " : "FAIL"} ${what}`); if (!c) failures++; }

// Open a socket, write `chunks` (strings), collect everything until the
// server closes or `ms` pass.  Resolves {data, closed, t} (t: ms to close).
function exchange(chunks, ms) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(PORT, "127.0.0.1");
    let data = "", done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ data, closed, t: Date.now() - t0 });
    };
    s.on("connect", () => { for (const c of chunks) s.write(c); });
    s.on("data", (d) => { data += d.toString("latin1"); });
    s.on("close", () => finish(true));
    s.on("error", () => finish(true));
    setTimeout(() => finish(false), ms);
  });
}
const count = (s, re) => (s.match(re) || []).length;

(async () => {
  // 1. Content-Length over the cap, no body sent: one 413, then close.
  let r = await exchange(["POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                          "Content-Length: 2000000\r\n\r\n"], 3000 * MULT);
  ok(count(r.data, /HTTP\/1\.1 413 /g) === 1, `one 413 for Content-Length 2000000 (got ${count(r.data, /HTTP\/1\.1 /g)} replies: ${JSON.stringify(r.data.slice(0, 300))})`);
  ok(/cap 1 MiB/.test(r.data), "the 413 names the cap");
  ok(r.closed, "the connection is closed after the 413");

  // 2. The same with a pipelined second request behind it: still one reply.
  r = await exchange(["POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n" +
                      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"], 3000 * MULT);
  ok(count(r.data, /HTTP\/1\.1 /g) === 1 && /413/.test(r.data), "oversized body + pipelined request: exactly one reply (413)");

  // 3. Connected, nothing sent: 408 at the deadline (1 s, checked once a second).
  const silent = exchange([], 6000 * MULT);
  // 4. Half a request line, then silence.
  const half = exchange(["GET /health HTTP/1.1\r\nHost: x\r\n"], 6000 * MULT);
  // 5. Meanwhile the server serves others.
  const healthy = await exchange(["GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], 3000 * MULT);
  ok(/HTTP\/1\.1 200 /.test(healthy.data), "another client is served while slow ones wait");
  for (const [name, p] of [["silent connection", silent], ["half-sent headers", half]]) {
    const x = await p;
    ok(count(x.data, /HTTP\/1\.1 408 /g) === 1, `${name}: one 408 (got ${JSON.stringify(x.data.slice(0, 200))})`);
    ok(x.closed && x.t >= 900 && x.t < 4000 * MULT, `${name}: closed at the deadline (after ${x.t} ms)`);
  }

  // 6. Keep-alive: a complete request, then idle past the deadline: no 408.
  r = await exchange(["GET /health HTTP/1.1\r\nHost: x\r\n\r\n"], 3000);
  ok(count(r.data, /HTTP\/1\.1 200 /g) === 1 && count(r.data, /408/g) === 0 && !r.closed,
     `idle keep-alive connection after a complete request: no 408, still open (${JSON.stringify(r.data.slice(0, 80))})`);

  // 7. A WebSocket client in the middle of sending an oversized (1 MiB)
  //    message gets close 1009, not a reset (the server half-closes and
  //    drains instead of closing with unread input), every time.
  let got1009 = 0;
  const codes = [];
  for (let i = 0; i < 5; i++) {
    const code = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${PORT}/app/app-key?protocol=7`);
      ws.on("message", () => ws.send("x".repeat(1 << 20)));
      ws.on("close", (c) => resolve(c));
      ws.on("error", () => {});
      setTimeout(() => resolve("timeout"), 10000 * MULT);
    });
    codes.push(code);
    if (code === 1009) got1009++;
  }
  ok(got1009 === 5, `1 MiB WebSocket message: close 1009 every time (got ${codes.join(",")})`);

  console.log(failures ? `${failures} FAILED` : "all ok");
  process.exit(failures ? 1 : 0);
})();
