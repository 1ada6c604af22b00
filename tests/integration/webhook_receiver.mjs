#!/usr/bin/env node
// Webhook receiver for the webhook integration tests: every request is
// checked with the official `pusher` SDK (pusher.webhook({headers, rawBody})
// and isValid()), exactly as an application's webhook handler does.
//
//   node tests/integration/webhook_receiver.mjs [--port N] [--app KEY:SECRET]...
//     --port N           listen port on 127.0.0.1 (default 0 = ephemeral)
//     --app KEY:SECRET   the secret the SDK checks requests of app KEY with
//                        (repeatable; default app-key:app-secret)
//
// What it answers depends on the path's first segment:
//   /ok/...      200 when the SDK finds the request valid, else 401
//   /failN/...   500 to the first N requests on that exact path, then as /ok
//   /500/...     always 500          /hang/...   never answers
//   /reset/...   resets the connection   /garbage/...  writes bytes that are not HTTP
// GET /requests: JSON array of every POST seen: {at (arrival, ms), path, valid, status, headers,
// body (parsed or null), time_ms, events}.
// Prints "listening PORT" on stdout once ready.
import { createRequire } from 'node:module';
import http from 'node:http';

const require = createRequire(new URL('../peers/clients/node_modules/', import.meta.url));
const Pusher = require('pusher');

let port = 0;
const secrets = new Map();
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--port') port = Number(process.argv[++i]);
  else if (a === '--app') {
    const v = process.argv[++i] || '';
    const c = v.indexOf(':');
    if (c <= 0) throw new Error('--app wants KEY:SECRET');
    secrets.set(v.slice(0, c), v.slice(c + 1));
  } else throw new Error(`unknown option ${a}`);
}
if (!secrets.size) secrets.set('app-key', 'app-secret');

const requests = [];
const failCounts = new Map();

function validate(req, raw) {
  const key = req.headers['x-pusher-key'] || '';
  const secret = secrets.get(key);
  if (secret === undefined) return { valid: false, why: `unknown key ${key}` };
  const sdk = new Pusher({ appId: 'any', key, secret });
  const wh = sdk.webhook({ headers: req.headers, rawBody: raw });
  if (!wh.isValid()) return { valid: false, why: 'isValid() is false' };
  return { valid: true, time_ms: wh.getTime().getTime(), events: wh.getEvents(), data: wh.getData() };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/requests') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(requests));
      return;
    }
    const raw = Buffer.concat(chunks).toString('utf8');
    const mode = req.url.split('/')[1] || '';
    const rec = { at: Date.now(), path: req.url, method: req.method, headers: req.headers, raw, valid: false, status: 0 };
    requests.push(rec);
    if (mode === 'hang') return;
    if (mode === 'reset') { req.socket.resetAndDestroy(); return; }
    if (mode === 'garbage') { req.socket.end('this is not HTTP\r\n\r\n'); return; }
    let v;
    try { v = validate(req, raw); } catch (e) { v = { valid: false, why: String(e) }; }
    Object.assign(rec, v);
    const m = /^fail(\d+)$/.exec(mode);
    let status = v.valid ? 200 : 401;
    if (mode === '500') status = 500;
    if (m) {
      const n = failCounts.get(req.url) || 0;
      failCounts.set(req.url, n + 1);
      if (n < Number(m[1])) status = 500;
    }
    rec.status = status;
    process.stderr.write(JSON.stringify({ path: req.url, status, valid: rec.valid, why: v.why, events: v.events }) + '\n');
    res.writeHead(status, { 'Content-Type': 'text/plain' });
    res.end(status === 200 ? 'ok' : 'no');
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
