#!/usr/bin/env node
// Test application server for the auth integration tests: signs channel
// authorizations and user authentications with the official `pusher` SDK
// (authorizeChannel / authenticateUser), as a real app backend would.
//
//   node tests/authserver/server.mjs [options]
//     --host H                 listen address (default 127.0.0.1)
//     --port N                 listen port (default 0 = ephemeral)
//     --app-id ID --key K --secret S   (default app-id / app-key / app-secret)
//     --master-key B64         encryptionMasterKeyBase64 (private-encrypted- channels)
//     --user-id ID             user id for presence / sign-in when the request
//                              has no `user_id` param (default "user-<socket_id>")
//     --require-param K=V      the request must carry param K with value V (repeatable)
//     --require-header 'N: V'  POST requests must carry header N with value V
//                              (repeatable; JSONP GETs cannot send headers)
//     --refuse                 answer 403 to every auth request
//     --garbage                answer 200 with a body that is not JSON
//     --slow MS                wait MS milliseconds before answering
//
// Endpoints: POST (form body) and GET (query; JSONP when `callback` is given)
//   /pusher/auth       params socket_id, channel_name [, user_id, user_name]
//   /pusher/user-auth  params socket_id [, user_id, user_name, watchlist=a,b]
//   GET /requests      JSON array of the auth requests seen so far
//                      ({path, method, params, headers, status}) for assertions
// Prints "listening PORT" on stdout once ready; one JSON line per request on
// stderr.
import { createRequire } from 'node:module';
import http from 'node:http';

// the npm peers installed by tests/peers/setup.sh, found from this file's place
const require = createRequire(new URL('../peers/clients/node_modules/', import.meta.url));
const Pusher = require('pusher');

function parseArgs(argv) {
  const o = {
    host: '127.0.0.1', port: 0, appId: 'app-id', key: 'app-key', secret: 'app-secret',
    masterKey: null, userId: null, params: [], headers: [], refuse: false, garbage: false, slow: 0,
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--host': o.host = next(); break;
      case '--port': o.port = Number(next()); break;
      case '--app-id': o.appId = next(); break;
      case '--key': o.key = next(); break;
      case '--secret': o.secret = next(); break;
      case '--master-key': o.masterKey = next(); break;
      case '--user-id': o.userId = next(); break;
      case '--require-param': {
        const v = next();
        const eq = v.indexOf('=');
        if (eq <= 0) throw new Error('--require-param wants K=V');
        o.params.push([v.slice(0, eq), v.slice(eq + 1)]);
        break;
      }
      case '--require-header': {
        const v = next();
        const c = v.indexOf(':');
        if (c <= 0) throw new Error("--require-header wants 'Name: value'");
        o.headers.push([v.slice(0, c).trim().toLowerCase(), v.slice(c + 1).trim()]);
        break;
      }
      case '--refuse': o.refuse = true; break;
      case '--garbage': o.garbage = true; break;
      case '--slow': o.slow = Number(next()); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv);
} catch (e) {
  process.stderr.write(`server.mjs: ${e.message}\n`);
  process.exit(2);
}

const pusher = new Pusher({
  appId: opts.appId, key: opts.key, secret: opts.secret,
  ...(opts.masterKey ? { encryptionMasterKeyBase64: opts.masterKey } : {}),
});

const seen = [];
const MAX_BODY = 64 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

function sign(path, p) {
  const socketId = p.get('socket_id');
  if (!socketId) throw Object.assign(new Error('socket_id is required'), { status: 400 });
  const userId = p.get('user_id') || opts.userId || `user-${socketId}`;
  const name = p.get('user_name') || userId;
  if (path === '/pusher/auth') {
    const channel = p.get('channel_name');
    if (!channel) throw Object.assign(new Error('channel_name is required'), { status: 400 });
    if (channel.startsWith('presence-')) {
      return pusher.authorizeChannel(socketId, channel, { user_id: userId, user_info: { name } });
    }
    return pusher.authorizeChannel(socketId, channel);
  }
  const user = { id: userId, user_info: { name } };
  if (p.get('watchlist')) user.watchlist = p.get('watchlist').split(',').filter(Boolean);
  return pusher.authenticateUser(socketId, user);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const path = url.pathname;
  if (req.method === 'GET' && path === '/requests') {
    send(res, 200, JSON.stringify(seen));
    return;
  }
  if (path !== '/pusher/auth' && path !== '/pusher/user-auth') {
    send(res, 404, JSON.stringify({ error: 'not found' }));
    return;
  }
  if (req.method !== 'GET' && req.method !== 'POST') {
    send(res, 405, JSON.stringify({ error: 'method not allowed' }));
    return;
  }
  let params;
  try {
    params = req.method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
  } catch (e) {
    send(res, 413, JSON.stringify({ error: e.message }));
    return;
  }
  const callback = req.method === 'GET' ? params.get('callback') : null;
  const entry = {
    path, method: req.method, params: Object.fromEntries(params),
    headers: req.headers, status: 0,
  };
  seen.push(entry);
  const answer = (status, obj, raw) => {
    entry.status = status;
    process.stderr.write(JSON.stringify({ path, method: req.method, params: entry.params, status }) + '\n');
    if (raw !== undefined) return send(res, status, raw, 'text/plain');
    const json = JSON.stringify(obj);
    if (callback && status === 200) return send(res, 200, `${callback}(${json});`, 'application/javascript');
    return send(res, status, json);
  };
  if (opts.slow > 0) await new Promise((r) => setTimeout(r, opts.slow));
  if (opts.refuse) return answer(403, { error: 'refused (--refuse)' });
  if (opts.garbage) return answer(200, null, 'this is <not> JSON\n');
  for (const [k, v] of opts.params) {
    if (params.get(k) !== v) return answer(403, { error: `param ${k} missing or wrong` });
  }
  if (req.method === 'POST') {
    for (const [k, v] of opts.headers) {
      if (req.headers[k] !== v) return answer(403, { error: `header ${k} missing or wrong` });
    }
  }
  try {
    return answer(200, sign(path, params));
  } catch (e) {
    return answer(e.status || 403, { error: e.message });
  }
});

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
