#!/usr/bin/env node
// Black-box conformance suite for Pusher Channels servers (protocol 7).
//
// Drives the server under test only through the official pusher-js client,
// the official `pusher` REST SDK and raw `ws` sockets, and holds it to
// Pusher's documented behaviour (docs/protocol.md).  The same
// scenarios run against soketi 1.6.1 (a third-party server, to prove the
// suite itself) and against our pusherd.  Where soketi is known to deviate
// from the documented behaviour the scenario is marked expected-to-differ
// for soketi: a failure there is reported as
//   ok N - name # expected-to-differ on soketi: <documented vs observed>
// and an unexpected pass is reported as such.  pusherd gets no exemptions.
//
// Usage:
//   node run.mjs --target soketi|pusherd|both --port P [--filter RE] [--skip RE] [--list]
//   (pusherd binary: $PUSHER_BUILD_DIR/pusherd or --pusherd PATH)
//
// The suite starts and stops the server itself, with the configuration each
// scenario group needs (default app, an app with a connection quota of 2, a
// disabled app); scenarios that crash soketi get a fresh instance afterwards.
// Output: TAP-like lines, then a summary table.  Exit status 1 on any
// `not ok`.

import { createRequire } from 'node:module';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.PUSHER_SOURCE_DIR ? resolve(process.env.PUSHER_SOURCE_DIR) : resolve(HERE, '../..');
const PEERS = join(SOURCE_DIR, 'tests/peers');
const require = createRequire(join(PEERS, 'clients/package.json'));
const PusherJS = require('pusher-js');
const PusherSDK = require('pusher');
const WebSocket = require('ws');

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const o = { target: 'soketi', port: 7530, filter: null, skip: null, list: false, pusherd: null, verbose: false, exclude: [], excludeFile: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--target') o.target = val();
    else if (a === '--port') o.port = parseInt(val(), 10);
    else if (a === '--filter') o.filter = new RegExp(val());
    else if (a === '--skip') o.skip = new RegExp(val());
    else if (a === '--pusherd') o.pusherd = val();
    else if (a === '--exclude-file') {
      // Exact scenario names, one a line ('#' comments): reported as SKIP, not run.
      o.excludeFile = val();
      o.exclude = readFileSync(o.excludeFile, 'utf8').split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l && !l.startsWith('#'));
    }
    else if (a === '--list') o.list = true;
    else if (a === '--verbose' || a === '-v') o.verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: node run.mjs --target soketi|pusherd|both --port P [--filter RE] [--skip RE] [--exclude-file FILE] [--list] [--pusherd PATH] [-v]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!['soketi', 'pusherd', 'both'].includes(o.target)) throw new Error('--target must be soketi, pusherd or both');
  if (!(o.port > 0)) throw new Error('--port must be a port number');
  return o;
}
const OPT = parseArgs(process.argv.slice(2));

const APP_ID = 'app-id', APP_KEY = 'app-key', APP_SECRET = 'app-secret';
const MASTER_KEY = randomBytes(32).toString('base64');
const MULT = parseFloat(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || '1') || 1;
const T = (ms) => Math.round(ms * MULT);
const PJS_VERSION = '8.6.0';
const WS_QUERY = `protocol=7&client=js&version=${PJS_VERSION}&flash=false`;

// ------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
class Fail extends Error {}
function assert(cond, msg) { if (!cond) throw new Fail(msg); }
function eq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Fail(`${what}: expected ${e}, got ${a}`);
}
async function until(cond, ms, desc) {
  const deadline = Date.now() + T(ms);
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Fail(`timed out after ${T(ms)} ms waiting for ${desc}`);
    await sleep(20);
  }
}
let uniq = 0;
const uid = (p) => `${p}-${process.pid}-${Date.now() % 100000}-${++uniq}`;
const md5 = (s) => createHash('md5').update(s).digest('hex');
const hmac = (k, s) => createHmac('sha256', k).update(s).digest('hex');
const trunc = (s, n = 160) => (s.length > n ? s.slice(0, n) + '…' : s);

// ------------------------------------------------------------------ targets

class Soketi {
  constructor(port) { this.name = 'soketi'; this.port = port; this.profile = null; }
  env(profile) {
    // Pusher's documented default limits where soketi has a knob for them
    // (client events 10/s per connection, 10 KB of event data), so those
    // scenarios test soketi's behaviour rather than its defaults.  Metrics
    // and cluster ports are kept next to the main port (7500-7599).
    const e = {
      ...process.env,
      SOKETI_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC: '10',
      SOKETI_EVENT_MAX_SIZE_IN_KB: '10',
      SOKETI_METRICS_SERVER_PORT: String(this.port + 1),
      SOKETI_CLUSTER_PORT: String(this.port + 2),
      SOKETI_SHUTDOWN_GRACE_PERIOD: '1000',
      SOKETI_PRESENCE_MAX_MEMBER_SIZE: '1',
    };
    if (profile === 'quota') e.SOKETI_DEFAULT_APP_MAX_CONNS = '2';
    if (profile === 'noclient') e.SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES = 'false';
    if (profile === 'disabled') e.SOKETI_DEFAULT_APP_ENABLED = 'false';
    return e;
  }
  pidfile() { return join(PEERS, 'run', `soketi-${this.port}.pid`); }
  pid() { try { return parseInt(readFileSync(this.pidfile(), 'utf8'), 10); } catch { return null; } }
  alive() { const p = this.pid(); if (!p) return false; try { process.kill(p, 0); return isAliveProc(p); } catch { return false; } }
  async start(profile) {
    const r = spawnSync(join(PEERS, 'soketi-up.sh'), [String(this.port)], { env: this.env(profile), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`soketi-up.sh failed: ${r.stdout}${r.stderr}`);
    this.profile = profile;
  }
  async stop() {
    spawnSync(join(PEERS, 'soketi-down.sh'), [String(this.port), '--kill'], { encoding: 'utf8' });
    this.profile = null;
    await waitPortFree(this.port);
  }
  // SIGTERM; resolves to {exited, code} (code is null: not our child).
  async term(ms) {
    const p = this.pid();
    process.kill(p, 'SIGTERM');
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) { if (!isAliveProc(p)) break; await sleep(50); }
    const exited = !isAliveProc(p);
    if (exited) spawnSync(join(PEERS, 'soketi-down.sh'), [String(this.port)]);
    this.profile = null;
    return { exited, code: null };
  }
}

function isAliveProc(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const s = st.slice(st.lastIndexOf(')') + 2).split(' ')[0];
    return s !== 'Z' && s !== 'X';
  } catch { return false; }
}

class Pusherd {
  constructor(port, bin) {
    this.name = 'pusherd'; this.port = port; this.bin = bin; this.child = null; this.profile = null;
    this.runDir = join(process.env.PUSHER_BUILD_DIR ? resolve(process.env.PUSHER_BUILD_DIR) : join(SOURCE_DIR, 'build'),
      'tests', 'conformance-run');
    mkdirSync(this.runDir, { recursive: true });
    this.log = join(this.runDir, `pusherd-${port}.log`);
  }
  args(profile) {
    const a = ['--host', '127.0.0.1', '--port', String(this.port)];
    if (profile === 'quota') a.push('--app-id', APP_ID, '--app-key', APP_KEY, '--app-secret', APP_SECRET, '--max-connections', '2');
    if (profile === 'noclient') a.push('--no-client-events');
    if (profile === 'fastping') a.push('--activity-timeout', '1', '--pong-timeout', '1');
    const app = { disabled: { enabled: false, client_events: true }, subcount: { client_events: true, subscription_count: true } }[profile];
    if (app) {
      const cfg = join(this.runDir, `${profile}-${this.port}.json`);
      writeFileSync(cfg, JSON.stringify({
        host: '127.0.0.1', port: this.port, apps: [{ id: APP_ID, key: APP_KEY, secret: APP_SECRET, ...app }],
      }, null, 2) + '\n');
      return ['--config', cfg, '--host', '127.0.0.1', '--port', String(this.port)];
    }
    return a;
  }
  alive() { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }
  async start(profile) {
    if (!existsSync(this.bin)) throw new Error(`pusherd binary not found at ${this.bin}`);
    const fd = openSync(this.log, 'a');
    writeFileSync(fd, `---- start ${new Date().toISOString()} ${this.bin} ${this.args(profile).join(' ')}\n`);
    this.child = spawn(this.bin, this.args(profile), { stdio: ['ignore', fd, fd] });
    this.child.on('error', () => {});
    const deadline = Date.now() + T(10000);
    for (;;) {
      if (!this.alive()) throw new Error(`pusherd exited at start (status ${this.child.exitCode}); see ${this.log}`);
      try { const r = await fetch(`http://127.0.0.1:${this.port}/ready`); if (r.status < 500) break; } catch {}
      if (Date.now() > deadline) throw new Error(`pusherd did not answer on :${this.port}; see ${this.log}`);
      await sleep(50);
    }
    this.profile = profile;
  }
  async stop() {
    if (this.alive()) {
      const c = this.child;
      c.kill('SIGKILL');
      await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r)));
    }
    this.child = null; this.profile = null;
    await waitPortFree(this.port);
  }
  async term(ms) {
    const c = this.child;
    c.kill('SIGTERM');
    const exited = await Promise.race([
      new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(true) : c.once('exit', () => r(true)))),
      sleep(ms).then(() => false),
    ]);
    const code = exited ? (c.exitCode ?? `signal ${c.signalCode}`) : null;
    if (!exited) await this.stop();
    this.child = null; this.profile = null;
    return { exited, code };
  }
}

async function healthy(target) {
  if (!target.alive()) return false;
  try {
    const r = await fetch(`http://127.0.0.1:${target.port}/ready`, { signal: AbortSignal.timeout(T(1500)) });
    return r.status === 200;
  } catch { return false; }
}

async function portInUse(port) {
  const net = await import('node:net');
  return new Promise((r) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); r(true); });
    s.once('error', () => r(false));
  });
}

async function waitPortFree(port) {
  for (let i = 0; i < 100; i++) {
    if (!(await portInUse(port))) return;
    await sleep(100);
  }
}

// ------------------------------------------------------------------ per-scenario context

class Ctx {
  constructor(target) {
    this.target = target; this.port = target.port; this.cleanups = [];
    this.sdk = this.makeSdk();
  }
  makeSdk(over = {}) {
    return new PusherSDK({
      appId: APP_ID, key: APP_KEY, secret: APP_SECRET, host: '127.0.0.1', port: String(this.port),
      useTLS: false, encryptionMasterKeyBase64: MASTER_KEY, ...over,
    });
  }
  // pusher-js client, connected.  user: {id, info} for presence / sign-in.
  async client({ user = null, authSdk = null, connect = true, presenceFromSignin = false } = {}) {
    const sdk = authSdk || this.sdk;
    const p = new PusherJS(APP_KEY, {
      cluster: 'x', wsHost: '127.0.0.1', wsPort: this.port, forceTLS: false,
      enabledTransports: ['ws'], disableStats: true,
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, cb) => {
          try {
            const data = channelName.startsWith('presence-') && !presenceFromSignin ? { user_id: user.id, user_info: user.info } : undefined;
            cb(null, sdk.authorizeChannel(socketId, channelName, data));
          } catch (e) { cb(e, null); }
        },
      },
      userAuthentication: {
        customHandler: ({ socketId }, cb) => {
          try { cb(null, sdk.authenticateUser(socketId, { id: user.id, user_info: user.info })); } catch (e) { cb(e, null); }
        },
      },
    });
    p.frames = [];
    p.connection.bind('message', (m) => p.frames.push(m));
    this.cleanups.push(() => p.disconnect());
    if (connect) await until(() => p.connection.state === 'connected', 5000, 'pusher-js to connect');
    return p;
  }
  async subscribe(p, name) {
    const ch = p.subscribe(name);
    const errors = [];
    ch.bind('pusher:subscription_error', (e) => errors.push(e));
    await until(() => { if (errors.length) throw new Fail(`subscription_error on ${name}: ${JSON.stringify(errors[0])}`); return ch.subscribed; },
      5000, `subscription to ${name}`);
    return ch;
  }
  collect(ch, event) {
    const got = [];
    ch.bind(event, (data, meta) => got.push({ data, meta }));
    return got;
  }
  // Raw WebSocket client.
  raw(path = `/app/${APP_KEY}?${WS_QUERY}`, wsOpts = {}) {
    const r = new Raw(`ws://127.0.0.1:${this.port}${path}`, wsOpts);
    this.cleanups.push(() => r.close());
    return r;
  }
  // A raw socket that completed the handshake.
  async rawConnected(path, wsOpts) {
    const r = this.raw(path, wsOpts);
    await r.established();
    return r;
  }
  // Signed REST request built by hand (for the error cases the SDK refuses
  // to produce).  Returns {status, text}.
  async rest(method, path, { params = {}, body = null, key = APP_KEY, secret = APP_SECRET, timestamp = null, appId = APP_ID } = {}) {
    const full = `/apps/${appId}${path}`;
    const q = { ...params, auth_key: key, auth_timestamp: String(timestamp ?? Math.floor(Date.now() / 1000)), auth_version: '1.0' };
    if (body !== null && body !== '') q.body_md5 = md5(body);
    const keys = Object.keys(q).sort();
    const toSign = `${method}\n${full}\n${keys.map((k) => `${k.toLowerCase()}=${q[k]}`).join('&')}`;
    const qs = keys.map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(q[k])}`).join('&') + `&auth_signature=${hmac(secret, toSign)}`;
    const res = await fetch(`http://127.0.0.1:${this.port}${full}?${qs}`, {
      method, body: body ?? undefined, headers: body ? { 'content-type': 'application/json' } : {},
    });
    return { status: res.status, text: await res.text() };
  }
  async cleanup() {
    for (const f of this.cleanups.reverse()) { try { f(); } catch {} }
    await sleep(50);
  }
}

class Raw {
  constructor(url, wsOpts = {}) {
    this.url = url; this.msgs = []; this.closeCode = null; this.closeReason = null; this.error = null; this.httpStatus = null;
    this.wsPings = 0;
    this.ws = new WebSocket(url, wsOpts);
    this.ws.on('ping', () => this.wsPings++);
    this.ws.on('message', (buf, isBinary) => {
      const s = buf.toString('utf8');
      let m; try { m = JSON.parse(s); } catch { m = { unparsed: s }; }
      if (m && typeof m.data === 'string' && /^pusher(_internal)?:/.test(m.event || '')) {
        try { m.dataParsed = JSON.parse(m.data); } catch {}
      }
      m.raw = s; m.binary = isBinary;
      this.msgs.push(m);
    });
    this.ws.on('close', (code, reason) => { this.closeCode = code; this.closeReason = reason.toString(); });
    this.ws.on('error', (e) => { this.error = e; if (this.closeCode === null) this.closeCode = -1; });
    this.ws.on('unexpected-response', (req, res) => {
      this.httpStatus = res.statusCode; this.closeCode = -2; req.destroy();
    });
  }
  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }
  data(m) { return m.dataParsed ?? m.data; }
  async established() {
    const m = await this.next((m) => m.event === 'pusher:connection_established', 5000, 'pusher:connection_established');
    this.socketId = this.data(m).socket_id;
    return m;
  }
  find(pred, from = 0) { return this.msgs.slice(from).find(pred); }
  async next(pred, ms, desc, from = 0) {
    return until(() => {
      const m = this.find(pred, from);
      if (m) return m;
      if (this.closeCode !== null) throw new Fail(`connection closed (code ${this.closeCode}${this.httpStatus ? `, HTTP ${this.httpStatus}` : ''}) before ${desc}; frames: ${trunc(this.msgs.map((x) => x.raw).join(' | '), 400)}`);
      return null;
    }, ms, desc);
  }
  async closed(ms, desc = 'the server to close the connection') {
    await until(() => this.closeCode !== null, ms, desc);
    return this.closeCode;
  }
  send(x) { this.ws.send(typeof x === 'string' ? x : JSON.stringify(x)); }
  sendBinary(s) { this.ws.send(Buffer.from(s), { binary: true }); }
  async ping(ms = 3000) {
    const from = this.msgs.length;
    this.send({ event: 'pusher:ping', data: {} });
    return this.next((m) => m.event === 'pusher:pong', ms, 'pusher:pong', from);
  }
  close() { try { if (this.ws.readyState <= 1) this.ws.terminate(); } catch {} }
  errors(from = 0) { return this.msgs.slice(from).filter((m) => m.event === 'pusher:error' || m.event === 'pusher:subscription_error'); }
}

// pusher:error codes seen by a pusher-js client (whether or not they carry a channel).
function pjsErrors(p) {
  return p.frames.filter((m) => m.event === 'pusher:error').map((m) => (m.data && typeof m.data === 'object' ? m.data : {}));
}

// ------------------------------------------------------------------ scenarios

const S = [];
function scenario(name, opts, run) {
  if (typeof opts === 'function') { run = opts; opts = {}; }
  S.push({ name, profile: 'default', timeout: 25000, ...opts, run });
}

// --- connection

scenario('connect: connection_established with socket_id \\d+.\\d+ and activity_timeout', async (c) => {
  const r = c.raw();
  const m = await r.established();
  assert(typeof m.data === 'string', `connection_established data must be a JSON string (double encoded), got ${typeof m.data}`);
  const d = JSON.parse(m.data);
  assert(/^\d+\.\d+$/.test(d.socket_id), `socket_id ${JSON.stringify(d.socket_id)} is not digits.digits`);
  assert(Number.isInteger(d.activity_timeout) && d.activity_timeout > 0, `activity_timeout ${d.activity_timeout} must be a positive integer (seconds)`);
  const p = await c.client();
  assert(/^\d+\.\d+$/.test(p.connection.socket_id), `pusher-js socket_id ${p.connection.socket_id}`);
  assert(p.connection.socket_id !== d.socket_id, 'two connections got the same socket_id');
});

scenario('ping: pusher:ping answered with pusher:pong', async (c) => {
  const r = await c.rawConnected();
  await r.ping();
  r.send({ event: 'pusher:ping' });   // no data (JAVA/libPusher form)
  await r.next((m) => m.event === 'pusher:pong', 3000, 'pong to a ping without data', 2);
  // WebSocket-level ping frame answered with a pong frame.
  let pongs = 0;
  r.ws.on('pong', (d) => { if (d.toString() === 'conf') pongs++; });
  r.ws.ping('conf');
  await until(() => pongs === 1, 3000, 'a pong frame for a WebSocket ping frame');
});

// --- public channels and REST trigger

scenario('public: subscribe and receive a REST-triggered event', async (c) => {
  const ch = uid('pub');
  const p = await c.client();
  const sub = await c.subscribe(p, ch);
  const got = c.collect(sub, 'greet');
  const res = await c.sdk.trigger(ch, 'greet', { hello: 'world', n: 1 });
  eq(res.status, 200, 'trigger status');
  await until(() => got.length === 1, 5000, 'the event');
  eq(got[0].data, { hello: 'world', n: 1 }, 'event data');
  const raw = await c.rawConnected();
  raw.send({ event: 'pusher:subscribe', data: { channel: ch, auth: '' } });
  await raw.next((m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === ch, 3000, 'subscription_succeeded with channel');
  await c.sdk.trigger(ch, 'second', 'plain string');
  const m = await raw.next((m) => m.event === 'second', 3000, 'second event on the raw socket');
  eq(m.channel, ch, 'channel of the event'); eq(m.data, 'plain string', 'data: the string exactly as the SDK sent it');
});

scenario('public: one trigger to several channels reaches each', async (c) => {
  const a = uid('multi-a'), b = uid('multi-b');
  const p = await c.client();
  const ga = c.collect(await c.subscribe(p, a), 'ev');
  const gb = c.collect(await c.subscribe(p, b), 'ev');
  await c.sdk.trigger([a, b], 'ev', { x: 1 });
  await until(() => ga.length === 1 && gb.length === 1, 5000, 'the event on both channels');
  await sleep(200);
  eq([ga.length, gb.length], [1, 1], 'exactly one copy per channel');
});

scenario('public: REST socket_id excludes exactly that connection', async (c) => {
  const ch = uid('excl');
  const p1 = await c.client(), p2 = await c.client();
  const g1 = c.collect(await c.subscribe(p1, ch), 'ev');
  const g2 = c.collect(await c.subscribe(p2, ch), 'ev');
  await c.sdk.trigger(ch, 'ev', { n: 1 }, { socket_id: p1.connection.socket_id });
  await until(() => g2.length === 1, 5000, 'the event at the other client');
  await c.sdk.trigger(ch, 'ev', { n: 2 });
  await until(() => g1.length === 1 && g2.length === 2, 5000, 'the second (unexcluded) event at both');
  eq(g1.map((x) => x.data.n), [2], 'events received by the excluded socket');
});

scenario('public: unsubscribe stops delivery', async (c) => {
  const ch = uid('unsub');
  const p = await c.client(), q = await c.client();
  const gp = c.collect(await c.subscribe(p, ch), 'ev');
  const gq = c.collect(await c.subscribe(q, ch), 'ev');
  p.unsubscribe(ch);
  await sleep(300);
  await c.sdk.trigger(ch, 'ev', {});
  await until(() => gq.length === 1, 5000, 'event at the still-subscribed client');
  await sleep(300);
  eq(gp.length, 0, 'events after unsubscribe');
});

scenario('public: subscription_succeeded of a non-presence channel carries data "{}"', {
  soketiObserved: /got undefined/,
  soketi: 'documented: pusher_internal:subscription_succeeded has data "{}" (a JSON string) for public/private channels; observed: soketi omits data',
}, async (c) => {
  const r = await c.rawConnected();
  const ch = uid('sscheck');
  r.send({ event: 'pusher:subscribe', data: { channel: ch, auth: '' } });
  const m = await r.next((m) => m.event === 'pusher_internal:subscription_succeeded', 3000, 'subscription_succeeded');
  eq(m.channel, ch, 'channel');
  eq(m.data, '{}', 'data');
});

scenario('health: GET /ready answers 200 while serving', async (c) => {
  const r = await fetch(`http://127.0.0.1:${c.port}/ready`);
  eq(r.status, 200, 'GET /ready status');
});

// --- private channels

scenario('private: valid signature subscribes and receives', async (c) => {
  const ch = uid('private-ok');
  const p = await c.client();
  const got = c.collect(await c.subscribe(p, ch), 'ev');
  await c.sdk.trigger(ch, 'ev', { secret: true });
  await until(() => got.length === 1, 5000, 'the event');
  eq(got[0].data, { secret: true }, 'data');
});

scenario('private: bad signature is refused, the connection keeps working', async (c) => {
  const ch = uid('private-bad');
  const bad = c.makeSdk({ secret: 'not-the-secret' });
  const p = await c.client({ authSdk: bad });
  const chan = p.subscribe(ch);
  const errs = []; chan.bind('pusher:subscription_error', (e) => errs.push(e));
  await until(() => pjsErrors(p).length || errs.length, 3000, 'an error (pusher:error or pusher:subscription_error) for the bad signature');
  await sleep(300);
  assert(!chan.subscribed, 'subscribed with a bad signature');
  eq(p.connection.state, 'connected', 'connection state after the refusal');
  // Missing auth altogether, on a raw socket.
  const r = await c.rawConnected();
  r.send({ event: 'pusher:subscribe', data: { channel: ch } });
  await until(() => r.errors().length, 3000, 'an error for a private subscribe without auth');
  assert(!r.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 'subscribed without auth');
  // A signature for another socket_id.
  const other = c.sdk.authorizeChannel('1234.5678', ch);
  r.send({ event: 'pusher:subscribe', data: { channel: ch, auth: other.auth } });
  await until(() => r.errors().length >= 2, 3000, 'an error for a signature made for another socket_id');
  await r.ping();
  // Nothing published on the channel reaches the refused sockets.
  await c.sdk.trigger(ch, 'ev', {});
  await sleep(300);
  assert(!r.find((m) => m.event === 'ev'), 'refused socket received a channel event');
});

// --- presence channels

scenario('presence: several clients and several sockets per user', async (c) => {
  const ch = uid('presence-room');
  const u1 = { id: 'u1', info: { name: 'One' } }, u2 = { id: 'u2', info: { name: 'Two' } };
  const a1 = await c.client({ user: u1 });
  const sa1 = await c.subscribe(a1, ch);
  eq(sa1.members.count, 1, 'count after the first join'); eq(sa1.members.me && sa1.members.me.id, 'u1', 'members.me.id');
  eq(sa1.members.me.info, u1.info, 'members.me.info');
  const addA1 = c.collect(sa1, 'pusher:member_added'), remA1 = c.collect(sa1, 'pusher:member_removed');

  const b = await c.client({ user: u2 });
  const sb = await c.subscribe(b, ch);
  const addB = c.collect(sb, 'pusher:member_added'), remB = c.collect(sb, 'pusher:member_removed');
  eq(sb.members.count, 2, 'count seen by u2 on join');
  assert(sb.members.get('u1') && sb.members.get('u2'), 'u2 sees itself and u1');
  eq(sb.members.get('u1').info, u1.info, 'user_info of u1 seen by u2');
  await until(() => addA1.length === 1, 3000, 'member_added(u2) at u1');
  eq(addA1[0].data.id, 'u2', 'member_added id'); eq(addA1[0].data.info, u2.info, 'member_added info');

  // Second socket of u1: no member_added anywhere.
  const a2 = await c.client({ user: u1 });
  const sa2 = await c.subscribe(a2, ch);
  eq(sa2.members.count, 2, 'count seen by the second socket of u1');
  eq(sa2.members.me.id, 'u1', 'me on the second socket');
  await sleep(500);
  eq(addB.length, 0, 'member_added events at u2 for a second socket of u1');
  eq(addA1.length, 1, 'member_added events at u1 (own second socket must not count)');
  let r = await c.sdk.get({ path: `/channels/${ch}`, params: { info: 'user_count' } });
  eq((await r.json()).user_count, 2, 'REST user_count with 3 sockets of 2 users');
  r = await c.sdk.get({ path: `/channels/${ch}/users` });
  eq((await r.json()).users.map((u) => u.id).sort(), ['u1', 'u2'], 'REST users (one entry per user)');

  // First socket of u1 leaves: u1 still present, no member_removed.
  a1.disconnect();
  await sleep(600);
  eq(remB.length, 0, 'member_removed at u2 while u1 still has a socket');
  eq(sb.members.count, 2, 'count at u2 after one of u1\'s sockets left');
  // Last socket of u1 leaves: exactly one member_removed.
  a2.unsubscribe(ch);
  await until(() => remB.length === 1, 3000, 'member_removed(u1) at u2 after u1\'s last socket left');
  eq(remB[0].data.id, 'u1', 'member_removed id');
  await sleep(300);
  eq(remB.length, 1, 'member_removed count');
  eq(sb.members.count, 1, 'count at u2 at the end');
  r = await c.sdk.get({ path: `/channels/${ch}/users` });
  eq((await r.json()).users.map((u) => u.id), ['u2'], 'REST users after u1 left (no stale member)');
  // A newcomer sees no stale member.
  const d = await c.client({ user: { id: 'u3', info: {} } });
  const sd = await c.subscribe(d, ch);
  eq(Object.keys(sd.members.members).sort(), ['u2', 'u3'], 'members seen by a newcomer');
  await until(() => addB.length === 1, 3000, 'member_added(u3) at u2');
});

scenario('presence: a signed-in user joins without channel_data (identity from sign-in)', {
  soketiObserved: /subscription_error/,
  soketi: 'documented (PROTOCOL 3.3): with user sign-in the presence auth may omit channel_data and the member is the signed-in user; observed: soketi requires channel_data (subscription_error)',
}, async (c) => {
  const ch = uid('presence-signed');
  const a = await c.client({ user: { id: 'sa', info: { n: 'A' } }, presenceFromSignin: true });
  const b = await c.client({ user: { id: 'sb', info: { n: 'B' } } });
  a.signin();
  await until(() => a.frames.some((m) => m.event === 'pusher:signin_success'), 3000, 'signin_success');
  const sb = await c.subscribe(b, ch);
  const added = c.collect(sb, 'pusher:member_added');
  const sa = await c.subscribe(a, ch);
  eq(sa.members.me && sa.members.me.id, 'sa', 'members.me.id (the signed-in user)');
  eq(sa.members.count, 2, 'count');
  await until(() => added.length === 1, 3000, 'member_added at the other member');
  eq([added[0].data.id, added[0].data.info], ['sa', { n: 'A' }], 'member_added [id, info from user_data.user_info]');
});

scenario('presence: a disconnect (not unsubscribe) of the last socket removes the member', async (c) => {
  const ch = uid('presence-drop');
  const a = await c.client({ user: { id: 'ua', info: {} } });
  const b = await c.client({ user: { id: 'ub', info: {} } });
  await c.subscribe(a, ch);
  const sb = await c.subscribe(b, ch);
  const rem = c.collect(sb, 'pusher:member_removed');
  a.disconnect();
  await until(() => rem.length === 1, 3000, 'member_removed after disconnect');
  eq(rem[0].data.id, 'ua', 'removed id');
  eq(sb.members.count, 1, 'count');
});

scenario('presence: subscription without channel_data or with a bad signature is refused', async (c) => {
  const ch = uid('presence-bad');
  const r = await c.rawConnected();
  const a = c.sdk.authorizeChannel(r.socketId, ch, { user_id: 'x' });
  r.send({ event: 'pusher:subscribe', data: { channel: ch, auth: a.auth } });               // channel_data missing
  await until(() => r.errors().length >= 1, 3000, 'an error for a presence subscribe without channel_data');
  r.send({ event: 'pusher:subscribe', data: { channel: ch, auth: a.auth, channel_data: '{"user_id":"mallory"}' } });
  await until(() => r.errors().length >= 2, 3000, 'an error for channel_data not matching the signature');
  assert(!r.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 'subscribed');
  await r.ping();
});

scenario('presence: user_info over 1 KB is refused', async (c) => {
  const ch = uid('presence-big');
  const r = await c.rawConnected();
  const a = c.sdk.authorizeChannel(r.socketId, ch, { user_id: 'big', user_info: { blob: 'b'.repeat(1100) } });
  r.send({ event: 'pusher:subscribe', data: { channel: ch, ...a } });
  await until(() => r.errors().length || r.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 3000, 'an answer');
  assert(!r.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 'subscribed with 1.1 KB of user_info');
  const ok = c.sdk.authorizeChannel(r.socketId, ch, { user_id: 'small', user_info: { blob: 'b'.repeat(900) } });
  r.send({ event: 'pusher:subscribe', data: { channel: ch, ...ok } });
  await r.next((m) => m.event === 'pusher_internal:subscription_succeeded', 3000, 'subscription with 0.9 KB of user_info');
});

async function fillPresence(c, ch, n) {
  const join = async (id) => {
    const r = await c.rawConnected();
    r.send({ event: 'pusher:subscribe', data: { channel: ch, ...c.sdk.authorizeChannel(r.socketId, ch, { user_id: id }) } });
    return r;
  };
  const socks = [];
  for (let i = 0; i < n; i += 20) socks.push(...await Promise.all(Array.from({ length: Math.min(20, n - i) }, (_, k) => join(`m${i + k}`))));
  for (const r of socks) await r.next((m) => m.event === 'pusher_internal:subscription_succeeded', 5000, `subscription of one of ${n} members`);
  return join;
}

scenario('presence: the 101st member is refused', { timeout: 40000 }, async (c) => {
  const ch = uid('presence-full');
  const join = await fillPresence(c, ch, 100);
  const extra = await join('m100');
  await until(() => extra.errors().length || extra.find((m) => m.event === 'pusher_internal:subscription_succeeded') || extra.closeCode !== null,
    3000, 'an answer to the 101st member');
  assert(!extra.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 'the 101st member was accepted');
});

scenario('presence: at the 100-member limit another socket of a member is accepted', {
  timeout: 40000,
  soketiObserved: /timed out .*second socket/,
  soketi: 'documented: the limit is 100 members (users) per channel, so another socket of a present user adds no member; observed: soketi refuses it with subscription_error 4100',
}, async (c) => {
  const ch = uid('presence-full2');
  const join = await fillPresence(c, ch, 100);
  const again = await join('m7');
  await again.next((m) => m.event === 'pusher_internal:subscription_succeeded', 3000, 'a second socket of member m7');
});

scenario('presence: user_id over 128 characters is refused', {
  soketiObserved: /subscribed with a 129/,
  soketi: 'documented: user ids are at most 128 characters; observed: soketi accepts longer ids',
}, async (c) => {
  const ch = uid('presence-longid');
  const r = await c.rawConnected();
  r.send({ event: 'pusher:subscribe', data: { channel: ch, ...c.sdk.authorizeChannel(r.socketId, ch, { user_id: 'u'.repeat(129) }) } });
  await until(() => r.errors().length || r.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 3000, 'an answer');
  assert(!r.find((m) => m.event === 'pusher_internal:subscription_succeeded'), 'subscribed with a 129-character user_id');
});

// --- encrypted channels

scenario('encrypted: SDK-encrypted trigger decrypted by pusher-js with the shared secret', async (c) => {
  const ch = uid('private-encrypted-x');
  const p = await c.client();
  const got = c.collect(await c.subscribe(p, ch), 'secret-ev');
  const raw = await c.rawConnected();
  const auth = c.sdk.authorizeChannel(raw.socketId, ch);
  assert(auth.shared_secret, 'the SDK returned no shared_secret');
  raw.send({ event: 'pusher:subscribe', data: { channel: ch, auth: auth.auth } });
  await raw.next((m) => m.event === 'pusher_internal:subscription_succeeded', 3000, 'raw subscription_succeeded');
  await c.sdk.trigger(ch, 'secret-ev', { msg: 'attack at dawn' });
  await until(() => got.length === 1, 5000, 'the decrypted event at pusher-js');
  eq(got[0].data, { msg: 'attack at dawn' }, 'decrypted data');
  const m = await raw.next((m) => m.event === 'secret-ev', 3000, 'the event on the raw socket');
  const w = JSON.parse(m.data);
  assert(w.nonce && w.ciphertext && !m.raw.includes('attack'), `wire data must be {nonce,ciphertext} only: ${trunc(m.raw)}`);
});

scenario('encrypted: client events on private-encrypted- channels are refused', {
  soketiObserved: /timed out .*error to the sender|relayed/,
  soketi: 'documented: client events are not allowed on private-encrypted- channels (refused, not relayed); observed: soketi relays them',
}, async (c) => {
  const ch = uid('private-encrypted-ce');
  const a = await c.rawConnected(), b = await c.rawConnected();
  for (const r of [a, b]) {
    r.send({ event: 'pusher:subscribe', data: { channel: ch, auth: c.sdk.authorizeChannel(r.socketId, ch).auth } });
    await r.next((m) => m.event === 'pusher_internal:subscription_succeeded', 3000, 'subscription');
  }
  a.send({ event: 'client-plain', channel: ch, data: { leak: 1 } });
  await until(() => a.errors().length, 3000, 'an error to the sender');
  await sleep(300);
  assert(!b.find((m) => m.event === 'client-plain'), 'the client event was relayed to the other subscriber');
});

// --- cache channels

scenario('cache: cache_miss on an empty cache channel, then replay of the last event', async (c) => {
  const ch = uid('cache-x');
  const p = await c.client();
  const chan = p.subscribe(ch);
  const miss = c.collect(chan, 'pusher:cache_miss');
  await until(() => chan.subscribed, 5000, 'subscription');
  await until(() => miss.length === 1, 3000, 'pusher:cache_miss');
  await c.sdk.trigger(ch, 'ev', { v: 1 });
  await c.sdk.trigger(ch, 'ev', { v: 2 });
  const q = await c.client();
  const chan2 = q.subscribe(ch);
  const got = c.collect(chan2, 'ev'), miss2 = c.collect(chan2, 'pusher:cache_miss');
  await until(() => got.length === 1, 5000, 'the cached event on subscribe');
  eq(got[0].data, { v: 2 }, 'cached event (the last one)');
  await sleep(300);
  eq([got.length, miss2.length], [1, 0], '[replayed events, cache_miss] for the second subscriber');
  // Also for private-cache-.
  const pc = uid('private-cache-y');
  const s = q.subscribe(pc);
  const miss3 = c.collect(s, 'pusher:cache_miss');
  await until(() => miss3.length === 1, 5000, 'cache_miss on private-cache-');
});

scenario('cache: REST channel info=cache returns the cached event', {
  soketiObserved: /cache attribute/,
  soketi: 'documented: GET /channels/{cache channel}?info=cache returns {"cache":{"data":…,"ttl":…}}; observed: soketi ignores info=cache',
}, async (c) => {
  const ch = uid('cache-info');
  await occupy(c, [ch]);
  await c.sdk.trigger(ch, 'ev', { v: 'cached' });
  const body = await (await c.sdk.get({ path: `/channels/${ch}`, params: { info: 'cache' } })).json();
  assert(body.cache && typeof body.cache.data === 'string' && JSON.parse(body.cache.data).v === 'cached' && body.cache.ttl > 0,
    `cache attribute in ${trunc(JSON.stringify(body))}`);
});

// --- client events

async function pairOn(c, ch, users = [null, null]) {
  const a = await c.client({ user: users[0] }), b = await c.client({ user: users[1] });
  const sa = await c.subscribe(a, ch), sb = await c.subscribe(b, ch);
  return { a, b, sa, sb };
}

scenario('client events: delivered to other subscribers, not echoed to the sender', async (c) => {
  const ch = uid('private-chat');
  const { a, b, sa, sb } = await pairOn(c, ch);
  const third = await c.client(); const s3 = await c.subscribe(third, ch);
  const ga = c.collect(sa, 'client-msg'), gb = c.collect(sb, 'client-msg'), g3 = c.collect(s3, 'client-msg');
  assert(sa.trigger('client-msg', { text: 'hi' }), 'pusher-js refused to trigger');
  await until(() => gb.length === 1 && g3.length === 1, 3000, 'the client event at both other subscribers');
  eq(gb[0].data, { text: 'hi' }, 'data');
  await sleep(300);
  eq(ga.length, 0, 'copies echoed to the sender');
  assert(!gb[0].meta || !gb[0].meta.user_id, 'user_id must not be set on a private channel');
  void a; void b;
});

scenario('client events: user_id attached on presence channels', async (c) => {
  const ch = uid('presence-chat');
  const { sa, sb } = await pairOn(c, ch, [{ id: 'alice', info: {} }, { id: 'bob', info: {} }]);
  const gb = c.collect(sb, 'client-wave');
  sa.trigger('client-wave', { w: 1 });
  await until(() => gb.length === 1, 3000, 'the client event');
  eq(gb[0].meta && gb[0].meta.user_id, 'alice', 'user_id of the sender');
});

scenario('client events: refused on public channels', {
  soketiObserved: /timed out .*pusher:error|relayed/,
  soketi: 'documented: client events only on private-/presence- channels (pusher:error, not relayed); observed: soketi relays them on public channels without error',
}, async (c) => {
  const ch = uid('public-ce');
  const { a, sa, sb } = await pairOn(c, ch);
  const gb = c.collect(sb, 'client-x');
  sa.trigger('client-x', { n: 1 });
  await until(() => pjsErrors(a).length, 3000, 'pusher:error to the sender');
  await sleep(300);
  eq(gb.length, 0, 'client events relayed on a public channel');
});

scenario('client events: refused when the sender is not subscribed', async (c) => {
  const ch = uid('private-notsub');
  const b = await c.client(); const sb = await c.subscribe(b, ch);
  const gb = c.collect(sb, 'client-sneak');
  const r = await c.rawConnected();
  r.send({ event: 'client-sneak', channel: ch, data: { n: 1 } });
  await sleep(600);
  eq(gb.length, 0, 'client events from a non-subscriber relayed');
  await r.ping();
});

scenario('client events: rate limit 10/s answered with 4301', async (c) => {
  const ch = uid('private-flood');
  const { a, sa, sb } = await pairOn(c, ch);
  const gb = c.collect(sb, 'client-flood');
  for (let i = 0; i < 25; i++) sa.trigger('client-flood', { i });
  await until(() => pjsErrors(a).some((e) => e.code === 4301), 3000, 'pusher:error 4301 at the sender');
  await sleep(500);
  assert(gb.length >= 1 && gb.length <= 11, `the receiver got ${gb.length} of 25 events sent within one second (want 1..10, +1 for a window edge)`);
  eq(a.connection.state, 'connected', 'sender state (4301 is not fatal)');
});

scenario('client events: data over 10 KB refused with 4301, under 10 KB relayed', async (c) => {
  const ch = uid('private-big');
  const { a, sa, sb } = await pairOn(c, ch);
  const gb = c.collect(sb, 'client-big');
  sa.trigger('client-big', { s: 'y'.repeat(9000) });
  await until(() => gb.length === 1, 3000, 'the 9 KB client event');
  sa.trigger('client-big', { s: 'x'.repeat(11 * 1024) });
  await until(() => pjsErrors(a).some((e) => e.code === 4301), 3000, 'pusher:error 4301 for 11 KB of data');
  await sleep(300);
  eq(gb.length, 1, 'events relayed (the 11 KB one must not be)');
});

scenario('client events: names must start with client-', async (c) => {
  const ch = uid('private-names');
  const a = await c.rawConnected(), b = await c.rawConnected();
  for (const r of [a, b]) {
    r.send({ event: 'pusher:subscribe', data: { channel: ch, auth: c.sdk.authorizeChannel(r.socketId, ch).auth } });
    await r.next((m) => m.event === 'pusher_internal:subscription_succeeded', 3000, 'subscription');
  }
  a.send({ event: 'not-client', channel: ch, data: {} });
  a.send({ event: 'pusher_internal:member_added', channel: ch, data: '{"user_id":"forged"}' });
  await sleep(500);
  assert(!b.find((m) => m.event === 'not-client' || m.event === 'pusher_internal:member_added'), 'a non-client- event from a client was relayed');
  await a.ping();
});

scenario('client events: refused with pusher:error when the app disables them', { profile: 'noclient' }, async (c) => {
  const ch = uid('private-off');
  const { a, sa, sb } = await pairOn(c, ch);
  const gb = c.collect(sb, 'client-x');
  sa.trigger('client-x', { n: 1 });
  await until(() => pjsErrors(a).length, 3000, 'pusher:error to the sender');
  await sleep(300);
  eq(gb.length, 0, 'client events relayed although disabled');
  eq(a.connection.state, 'connected', 'sender state');
});

scenario('subscription_count: pusher:subscription_count sent when the app enables it', {
  profile: 'subcount',
  soketiObserved: /timed out .*subscription_count/,
  soketi: 'documented: pusher_internal:subscription_count {subscription_count:N} to subscribers of non-presence channels when enabled; observed: soketi does not implement it',
}, async (c) => {
  const ch = uid('counted');
  const a = await c.client(), b = await c.client();
  const sa = await c.subscribe(a, ch);
  const counts = []; sa.bind('pusher:subscription_count', (d) => counts.push(d.subscription_count));
  await c.subscribe(b, ch);
  await until(() => counts.includes(2), 3000, 'subscription_count 2 at the first subscriber');
  b.unsubscribe(ch);
  await until(() => counts[counts.length - 1] === 1, 3000, 'subscription_count 1 after the second left');
});

// --- activity timeout (needs a configurable activity_timeout)

scenario('ping: a silent client is pinged, and closed with 4201 if it does not answer', {
  profile: 'fastping',
  soketiSkip: 'activity/pong timeouts are not configurable in soketi (fixed 120 s)',
}, async (c) => {
  const mute = await c.rawConnected(undefined, { autoPong: false });
  const at = mute.data(mute.msgs[0]).activity_timeout;
  eq(at, 1, 'activity_timeout announced (--activity-timeout 1)');
  const p = await c.client();
  await mute.closed(6000, 'close 4201 of a client that answers no ping');
  assert(mute.wsPings > 0 || mute.find((m) => m.event === 'pusher:ping'), 'the server closed the client without pinging it');
  eq(mute.closeCode, 4201, 'close code');
  eq(p.connection.state, 'connected', 'pusher-js (which answers pings) state after the same time');
});

// --- user sign-in

scenario('signin: pusher:signin then sendToUser reaches every socket of the user', async (c) => {
  const user = { id: uid('user'), info: { name: 'Ann' } };
  const p1 = await c.client({ user }), p2 = await c.client({ user }), other = await c.client({ user: { id: uid('other'), info: {} } });
  const got = [[], [], []];
  [p1, p2, other].forEach((p, i) => { p.signin(); p.user.bind('dm', (d) => got[i].push(d)); });
  for (const p of [p1, p2, other]) {
    await until(() => p.frames.some((m) => m.event === 'pusher:signin_success'), 3000, 'pusher:signin_success');
    await until(() => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed, 3000, 'the #server-to-user- subscription to succeed').catch(() => {});
  }
  const ok = p1.frames.find((m) => m.event === 'pusher:signin_success');
  const ud = JSON.parse(ok.data.user_data);
  eq(ud.id, user.id, 'user_data.id in signin_success');
  const res = await c.sdk.sendToUser(user.id, 'dm', { hi: 1 });
  eq(res.status, 200, 'sendToUser status');
  await until(() => got[0].length === 1 && got[1].length === 1, 3000, 'the event at both sockets of the user');
  eq(got[0][0], { hi: 1 }, 'data');
  await sleep(300);
  eq(got[2].length, 0, 'events at another user');
});

scenario('signin: bad signature refused', async (c) => {
  const r = await c.rawConnected();
  const bad = c.makeSdk({ secret: 'wrong' }).authenticateUser(r.socketId, { id: 'mallory' });
  r.send({ event: 'pusher:signin', data: bad });
  await until(() => r.errors().length || r.closeCode !== null, 3000, 'pusher:error (or a close) for a bad sign-in');
  assert(!r.find((m) => m.event === 'pusher:signin_success'), 'signed in with a bad signature');
  await c.sdk.sendToUser('mallory', 'dm', {});
  await sleep(300);
  assert(!r.find((m) => m.event === 'dm'), 'refused socket got a user event');
});

scenario('signin: user_data without an id is refused', async (c) => {
  const r = await c.rawConnected();
  const user_data = JSON.stringify({ name: 'no id' });
  const auth = `${APP_KEY}:${hmac(APP_SECRET, `${r.socketId}::user::${user_data}`)}`;
  r.send({ event: 'pusher:signin', data: { user_data, auth } });
  await until(() => r.errors().length || r.closeCode !== null || r.find((m) => m.event === 'pusher:signin_success'), 3000, 'an answer');
  assert(!r.find((m) => m.event === 'pusher:signin_success'), 'signed in without a user id');
});

scenario('signin: a second sign-in as another user on the same connection is refused', {
  soketiObserved: /accepted/,
  soketi: 'documented: a connection is associated with one user only, a second pusher:signin with another id fails; observed: soketi accepts it',
}, async (c) => {
  const r = await c.rawConnected();
  r.send({ event: 'pusher:signin', data: c.sdk.authenticateUser(r.socketId, { id: 'first' }) });
  await r.next((m) => m.event === 'pusher:signin_success', 3000, 'signin_success');
  const n = r.msgs.length;
  r.send({ event: 'pusher:signin', data: c.sdk.authenticateUser(r.socketId, { id: 'second' }) });
  await until(() => r.errors(n).length || r.find((m) => m.event === 'pusher:signin_success', n) || r.closeCode !== null, 3000, 'an answer');
  assert(!r.find((m) => m.event === 'pusher:signin_success', n), 'second sign-in as another user accepted');
});

scenario('signin: #server-to-user- channels cannot be joined to read another user\'s events', async (c) => {
  const victim = uid('victim');
  const spy = await c.rawConnected();
  spy.send({ event: 'pusher:subscribe', data: { channel: `#server-to-user-${victim}`, auth: '' } });
  const spy2 = await c.rawConnected();
  spy2.send({ event: 'pusher:signin', data: c.sdk.authenticateUser(spy2.socketId, { id: uid('mallory') }) });
  await spy2.next((m) => m.event === 'pusher:signin_success', 3000, 'signin_success of the spy');
  spy2.send({ event: 'pusher:subscribe', data: { channel: `#server-to-user-${victim}`, auth: '' } });
  const v = await c.rawConnected();
  v.send({ event: 'pusher:signin', data: c.sdk.authenticateUser(v.socketId, { id: victim }) });
  await v.next((m) => m.event === 'pusher:signin_success', 3000, 'signin_success of the victim');
  v.send({ event: 'pusher:subscribe', data: { channel: `#server-to-user-${victim}`, auth: '' } });   // as pusher-js does
  await sleep(300);
  await c.sdk.sendToUser(victim, 'private-note', { pin: 1234 });
  await v.next((m) => m.event === 'private-note', 3000, 'the event at the victim');
  await sleep(300);
  assert(!spy.find((m) => m.event === 'private-note'), 'a socket that is not signed in read another user\'s event');
  assert(!spy2.find((m) => m.event === 'private-note'), 'a socket signed in as another user read the victim\'s event');
});

// --- REST endpoints (happy paths through the SDK)

scenario('REST events: 200 with a JSON object body', async (c) => {
  const res = await c.sdk.trigger(uid('rest'), 'ev', 'x');
  eq(res.status, 200, 'status');
  const body = await res.json();
  assert(body && typeof body === 'object' && !('error' in body), `body ${JSON.stringify(body)}`);
});

scenario('REST events: info=user_count returns the channel attributes', {
  soketiObserved: /ok":true/,
  soketi: 'documented: with info the response is {"channels":{name:{user_count:N}}}; observed: soketi answers {"ok":true}',
}, async (c) => {
  const ch = uid('presence-trig');
  await occupy(c, [ch], { id: 'i1', info: {} });
  await occupy(c, [ch], { id: 'i2', info: {} });
  const res = await c.sdk.trigger(ch, 'ev', {}, { info: 'user_count' });
  const body = await res.json();
  eq(body.channels && body.channels[ch] && body.channels[ch].user_count, 2, `user_count in ${JSON.stringify(body)}`);
});

scenario('REST batch_events: every event delivered', async (c) => {
  const a = uid('batch-a'), b = uid('batch-b');
  const p = await c.client();
  const sa = await c.subscribe(p, a), sb = await c.subscribe(p, b);
  const ga = c.collect(sa, 'e1'), gb = c.collect(sb, 'e2'), gb3 = c.collect(sb, 'e3');
  const res = await c.sdk.triggerBatch([
    { channel: a, name: 'e1', data: { i: 1 } },
    { channel: b, name: 'e2', data: { i: 2 } },
    { channel: b, name: 'e3', data: 'str', socket_id: p.connection.socket_id },
  ]);
  eq(res.status, 200, 'status');
  await until(() => ga.length === 1 && gb.length === 1, 3000, 'both batch events');
  eq([ga[0].data, gb[0].data], [{ i: 1 }, { i: 2 }], 'data');
  await sleep(300);
  eq(gb3.length, 0, 'batch event with socket_id of the receiver (excluded)');
});

async function occupy(c, names, user = null) {
  const p = await c.client({ user: user || { id: uid('occ'), info: {} } });
  for (const n of names) await c.subscribe(p, n);
  return p;
}

scenario('REST channels: list with filter_by_prefix', async (c) => {
  const tag = uid('lst');
  const names = [`presence-${tag}-a`, `presence-${tag}-b`, `${tag}-pub`, `private-${tag}`];
  await occupy(c, names);
  let r = await c.sdk.get({ path: '/channels', params: { filter_by_prefix: `presence-${tag}` } });
  eq(r.status, 200, 'status');
  let body = await r.json();
  eq(Object.keys(body.channels).sort(), [`presence-${tag}-a`, `presence-${tag}-b`], 'channels with the prefix');
  r = await c.sdk.get({ path: '/channels' });
  body = await r.json();
  for (const n of names) assert(n in body.channels, `${n} missing from the unfiltered list`);
});

scenario('REST channels: info=user_count on presence- prefix', {
  soketiObserved: /got undefined/,
  soketi: 'documented: GET /channels?filter_by_prefix=presence-&info=user_count returns user_count per channel; observed: soketi ignores info',
}, async (c) => {
  const tag = uid('uc');
  const ch = `presence-${tag}`;
  await occupy(c, [ch], { id: 'x1', info: {} });
  await occupy(c, [ch], { id: 'x2', info: {} });
  await occupy(c, [ch], { id: 'x2', info: {} });
  const r = await c.sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
  const body = await r.json();
  eq(body.channels && body.channels[ch] && body.channels[ch].user_count, 2, `user_count of ${ch}`);
});

scenario('REST channels: info=user_count without a presence- prefix is 400', {
  soketiObserved: /got 200/,
  soketi: 'documented: 400 (user_count only for presence channels); observed: soketi ignores info and answers 200',
}, async (c) => {
  const r = await c.rest('GET', '/channels', { params: { info: 'user_count' } });
  eq(r.status, 400, `status (body ${trunc(r.text)})`);
});

scenario('REST channel: info for occupied, unoccupied and presence channels', async (c) => {
  const pub = uid('info-pub'), pres = uid('presence-info');
  await occupy(c, [pub]);
  await occupy(c, [pres], { id: 'm1', info: {} });
  await occupy(c, [pres], { id: 'm2', info: {} });
  let body = await (await c.sdk.get({ path: `/channels/${pub}` })).json();
  eq(body.occupied, true, `occupied of ${pub}`);
  body = await (await c.sdk.get({ path: `/channels/${uid('nobody')}` })).json();
  eq(body.occupied, false, 'occupied of an empty channel');
  body = await (await c.sdk.get({ path: `/channels/${pres}`, params: { info: 'user_count' } })).json();
  eq([body.occupied, body.user_count], [true, 2], '[occupied, user_count] of the presence channel');
});

scenario('REST users: one entry per member of a presence channel', async (c) => {
  const pres = uid('presence-users');
  await occupy(c, [pres], { id: 'p1', info: { a: 1 } });
  await occupy(c, [pres], { id: 'p2', info: {} });
  await occupy(c, [pres], { id: 'p2', info: {} });
  const r = await c.sdk.get({ path: `/channels/${pres}/users` });
  eq(r.status, 200, 'status');
  eq((await r.json()).users.map((u) => u.id).sort(), ['p1', 'p2'], 'users');
});

scenario('REST terminate_connections: closes every socket of the user only', async (c) => {
  const uidA = uid('term'), uidB = uid('keep');
  const sign = async (id) => {
    const r = await c.rawConnected();
    r.send({ event: 'pusher:signin', data: c.sdk.authenticateUser(r.socketId, { id }) });
    await r.next((m) => m.event === 'pusher:signin_success', 3000, 'signin_success');
    return r;
  };
  const a1 = await sign(uidA), a2 = await sign(uidA), b = await sign(uidB);
  const res = await c.sdk.terminateUserConnections(uidA);
  eq(res.status, 200, 'status');
  await a1.closed(3000, 'the first socket of the user to be closed');
  await a2.closed(3000, 'the second socket of the user to be closed');
  assert(a1.closeCode >= 4000 && a1.closeCode < 4100, `close code ${a1.closeCode} (want 4000-4099: do not reconnect unchanged)`);
  await b.ping();
});

// --- REST errors (real HTTP statuses)

const REST200 = (what) => `documented: HTTP ${what}; observed: soketi answers HTTP 200 with {"error":…,"code":…} in the body`;

scenario('REST error: bad signature is 401', { soketi: REST200('401'), soketiObserved: /got 200/ }, async (c) => {
  const body = JSON.stringify({ name: 'e', channel: 'c', data: '{}' });
  const r = await c.rest('POST', '/events', { body, secret: 'wrong-secret' });
  eq(r.status, 401, `status (body ${trunc(r.text)})`);
  const r2 = await c.rest('POST', '/events', { body, key: 'wrong-key' });
  eq(r2.status, 401, `status for an unknown auth_key (body ${trunc(r2.text)})`);
});

scenario('REST error: expired auth_timestamp is 401', {
  soketiObserved: /got 200/,
  soketi: 'documented: HTTP 401 when auth_timestamp is more than 600 s away; observed: soketi does not check the timestamp (200, event accepted)',
}, async (c) => {
  const body = JSON.stringify({ name: 'e', channel: 'c', data: '{}' });
  const r = await c.rest('POST', '/events', { body, timestamp: Math.floor(Date.now() / 1000) - 3600 });
  eq(r.status, 401, `status (body ${trunc(r.text)})`);
  const r2 = await c.rest('POST', '/events', { body, timestamp: Math.floor(Date.now() / 1000) + 3600 });
  eq(r2.status, 401, `status for a timestamp 1 h in the future (body ${trunc(r2.text)})`);
});

scenario('REST error: unsigned request is 401', { soketi: REST200('401'), soketiObserved: /got 200/ }, async (c) => {
  const res = await fetch(`http://127.0.0.1:${c.port}/apps/${APP_ID}/events`, {
    method: 'POST', body: JSON.stringify({ name: 'e', channel: 'c', data: '{}' }), headers: { 'content-type': 'application/json' },
  });
  eq(res.status, 401, `status (body ${trunc(await res.text())})`);
});

scenario('REST error: unknown app is 404', { soketi: REST200('404'), soketiObserved: /got 200/ }, async (c) => {
  const r = await c.rest('POST', '/events', { appId: 'no-such-app', body: JSON.stringify({ name: 'e', channel: 'c', data: '{}' }) });
  eq(r.status, 404, `status (body ${trunc(r.text)})`);
});

scenario('REST error: data over 10 KB is 413', { soketi: REST200('413'), soketiObserved: /got 200/ }, async (c) => {
  const r = await c.rest('POST', '/events', { body: JSON.stringify({ name: 'e', channel: 'c', data: 'z'.repeat(11 * 1024) }) });
  eq(r.status, 413, `status (body ${trunc(r.text)})`);
  const ok = await c.rest('POST', '/events', { body: JSON.stringify({ name: 'e', channel: 'c', data: 'z'.repeat(9 * 1024) }) });
  eq(ok.status, 200, `status for 9 KB (body ${trunc(ok.text)})`);
});

scenario('REST error: malformed bodies are 400', { soketi: REST200('400'), soketiObserved: /got 200/ }, async (c) => {
  const cases = [
    ['invalid JSON', '{"name":"e",'],
    ['no name', JSON.stringify({ channel: 'c', data: '{}' })],
    ['no channel', JSON.stringify({ name: 'e', data: '{}' })],
    ['101 channels', JSON.stringify({ name: 'e', channels: Array.from({ length: 101 }, (_, i) => `c${i}`), data: '{}' })],
    ['bad channel name', JSON.stringify({ name: 'e', channel: 'bad channel!', data: '{}' })],
    ['channel name of 201 characters', JSON.stringify({ name: 'e', channel: 'c'.repeat(201), data: '{}' })],
    ['event name of 201 characters', JSON.stringify({ name: 'e'.repeat(201), channel: 'c', data: '{}' })],
  ];
  for (const [what, body] of cases) {
    const r = await c.rest('POST', '/events', { body });
    eq(r.status, 400, `status for ${what} (body ${trunc(r.text)})`);
  }
  const big = { batch: Array.from({ length: 11 }, (_, i) => ({ name: 'e', channel: `c${i}`, data: '{}' })) };
  const r = await c.rest('POST', '/batch_events', { body: JSON.stringify(big) });
  eq(r.status, 400, `status for a batch of 11 (body ${trunc(r.text)})`);
});

scenario('REST error: users of a non-presence channel is 400', { soketi: REST200('400'), soketiObserved: /got 200/ }, async (c) => {
  const bad = await c.rest('GET', `/channels/${uid('public')}/users`);
  eq(bad.status, 400, `status (body ${trunc(bad.text)})`);
});

scenario('REST error: body_md5 mismatch is 401', { soketi: REST200('401'), soketiObserved: /got 200/ }, async (c) => {
  // Sign one body, send another.
  const signed = JSON.stringify({ name: 'e', channel: 'c', data: '1' });
  const q = { auth_key: APP_KEY, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: '1.0', body_md5: md5(signed) };
  const keys = Object.keys(q).sort();
  const path = `/apps/${APP_ID}/events`;
  const sig = hmac(APP_SECRET, `POST\n${path}\n${keys.map((k) => `${k}=${q[k]}`).join('&')}`);
  const res = await fetch(`http://127.0.0.1:${c.port}${path}?${keys.map((k) => `${k}=${q[k]}`).join('&')}&auth_signature=${sig}`, {
    method: 'POST', body: JSON.stringify({ name: 'e', channel: 'c', data: '2' }), headers: { 'content-type': 'application/json' },
  });
  eq(res.status, 401, `status (body ${trunc(await res.text())})`);
});

// --- WebSocket error codes

async function expectClose(c, path, code) {
  const r = c.raw(path);
  await r.closed(5000, `close ${code}`);
  if (r.closeCode === -2) throw new Fail(`the WebSocket upgrade was refused with HTTP ${r.httpStatus} (want 101 then close ${code})`);
  const err = r.find((m) => m.event === 'pusher:error');
  eq(r.closeCode, code, `close code (pusher:error before it: ${err ? err.raw : 'none'})`);
  if (err) {
    assert(err.data && typeof err.data === 'object' && err.data.code === code && typeof err.data.message === 'string',
      `the pusher:error before the close must have data {code:${code}, message:string}: ${err.raw}`);
  }
  assert(!r.find((m) => m.event === 'pusher:connection_established'), 'connection_established sent before the close');
}

scenario('ws error 4001: unknown app key', async (c) => {
  await expectClose(c, `/app/no-such-key?${WS_QUERY}`, 4001);
});

scenario('ws error 4003: disabled app', { profile: 'disabled' }, async (c) => {
  await expectClose(c, `/app/${APP_KEY}?${WS_QUERY}`, 4003);
});

scenario('ws error 4004: over the app connection quota', {
  profile: 'quota',
  soketiObserved: /got 4100/,
  soketi: 'documented: close 4004 (application over connection quota); observed: soketi closes with 4100',
}, async (c) => {
  const a = await c.rawConnected(), b = await c.rawConnected();
  await expectClose(c, `/app/${APP_KEY}?${WS_QUERY}`, 4004);
  await a.ping(); await b.ping();
  a.close();
  await sleep(300);
  await c.rawConnected();   // a slot was freed
});

scenario('ws error 4005: path not found', {
  soketiObserved: /HTTP 404/,
  soketi: 'documented: an upgrade to any other path is accepted and closed with 4005; observed: soketi refuses the upgrade with an HTTP error',
}, async (c) => {
  await expectClose(c, `/nope/${APP_KEY}?${WS_QUERY}`, 4005);
  await expectClose(c, `/app?${WS_QUERY}`, 4005);
});

const NOPROTO = 'the ?protocol= parameter is not checked';
scenario('ws error 4006: protocol not a number', {
  soketiObserved: /timed out .*close 4006/,
  soketi: `documented: close 4006 for protocol=abc; observed: ${NOPROTO} (connection_established)`,
}, async (c) => {
  await expectClose(c, `/app/${APP_KEY}?protocol=abc&client=js&version=8.6.0`, 4006);
});

scenario('ws error 4007: unsupported protocol version', {
  soketiObserved: /timed out .*close 4007/,
  soketi: `documented: close 4007 for protocol=2 and protocol=99; observed: ${NOPROTO} (connection_established)`,
}, async (c) => {
  await expectClose(c, `/app/${APP_KEY}?protocol=2&client=js&version=8.6.0`, 4007);
  await expectClose(c, `/app/${APP_KEY}?protocol=99&client=js&version=8.6.0`, 4007);
});

scenario('ws error 4008: protocol missing', {
  soketiObserved: /timed out .*close 4008/,
  soketi: `documented: close 4008 when protocol is missing; observed: ${NOPROTO} (connection_established)`,
}, async (c) => {
  await expectClose(c, `/app/${APP_KEY}`, 4008);
});

// --- malformed frames: the sender gets an error or nothing, the server keeps serving everyone

const CRASH = 'documented: the malformed frame is answered on that connection only and the server keeps serving; observed: soketi throws an uncaught TypeError, closes every socket with 4200 and exits';
const MALFORMED = [
  ['invalid JSON', (r) => r.send('{not json')],
  ['empty frame', (r) => r.send('')],
  ['JSON array', (r) => r.send('[]')],
  ['JSON string', (r) => r.send('"str"')],
  ['JSON number and null', (r) => { r.send('42'); r.send('null'); }],
  ['no event member', (r) => r.send({ data: {} })],
  ['event not a string', (r) => r.send({ event: 42, data: {} })],
  ['unknown pusher: event', (r) => r.send({ event: 'pusher:unknown_event', data: {} })],
  ['binary frame', (r) => r.sendBinary(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'bin-chan' } }))],
  ['invalid UTF-8', (r) => r.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false }),
    /closed with 1006/, 'documented (RFC 6455 8.1): a text frame with invalid UTF-8 fails the connection with close 1007; observed: soketi (uWS) drops the TCP connection without a close frame (1006)'],
  ['bad channel name', (r) => r.send({ event: 'pusher:subscribe', data: { channel: 'bad channel!' } })],
  ['channel name over 200 chars', (r) => r.send({ event: 'pusher:subscribe', data: { channel: 'c'.repeat(201) } })],
  ['unsubscribe from a channel never joined', (r) => r.send({ event: 'pusher:unsubscribe', data: { channel: 'never-joined' } })],
  ['1 MiB frame', (r) => r.send(JSON.stringify({ event: 'client-big', channel: 'x', data: 'q'.repeat(1 << 20) }))],
  ['pusher:subscribe without data', (r) => r.send({ event: 'pusher:subscribe' }), /server died/, CRASH],
  ['pusher:subscribe with data {}', (r) => r.send({ event: 'pusher:subscribe', data: {} }), /server died/, CRASH],
  ['pusher:subscribe with data a string', (r) => r.send({ event: 'pusher:subscribe', data: 'chan' }), /server died/, CRASH],
  ['pusher:subscribe with a numeric channel', (r) => r.send({ event: 'pusher:subscribe', data: { channel: 42 } }), /server died/, CRASH],
  ['pusher:unsubscribe without data', (r) => r.send({ event: 'pusher:unsubscribe' }), /server died/, CRASH],
  ['pusher:signin without data', (r) => r.send({ event: 'pusher:signin' }), /server died/, CRASH],
];

for (const [what, send, observed, xfail] of MALFORMED) {
  scenario(`malformed frame: ${what}; bystanders keep being served`, { soketi: xfail, soketiObserved: observed, malformed: true }, async (c) => {
    const ch = uid('bystand');
    const by = await c.client();
    const got = c.collect(await c.subscribe(by, ch), 'ev');
    const r = await c.rawConnected();
    send(r);
    await sleep(300);
    // Everyone else is still served.
    await c.sdk.trigger(ch, 'ev', { alive: true }).catch((e) => { throw new Fail(`REST trigger failed after the frame: ${e.message || e}`); });
    await until(() => got.length === 1, 3000, 'the bystander to receive an event after the frame');
    eq(by.connection.state, 'connected', 'bystander state');
    // The hostile connection: still usable (ping answered) or closed with a
    // Pusher or WebSocket protocol code (not dropped, not "server going away").
    if (r.closeCode === null) {
      try { await r.ping(2000); } catch (e) {
        if (r.closeCode === null) throw e;
      }
    }
    if (r.closeCode !== null) {
      assert((r.closeCode >= 4000 && r.closeCode < 4200) || [1002, 1003, 1007, 1008, 1009].includes(r.closeCode),
        `hostile socket closed with ${r.closeCode} (want 1002/1003/1007/1008/1009 or a 4000-4199 Pusher code; 1006 is a dropped TCP connection, 4200+ means the server went away)`);
    }
    const fresh = await c.rawConnected();
    await fresh.ping();
  });
}

// --- graceful shutdown (last: it stops the server)

scenario('shutdown: SIGTERM closes clients with 4200 and exits 0', { shutdown: true, timeout: 30000 }, async (c) => {
  const r1 = await c.rawConnected();
  const ch = uid('bye');
  const p = await c.client();
  await c.subscribe(p, ch);
  const states = []; p.connection.bind('state_change', (s) => states.push(s.current));
  const errs = []; p.connection.bind('error', (e) => errs.push(e));
  const res = c.target.term(T(15000));
  await r1.closed(10000, 'close 4200 after SIGTERM');
  eq(r1.closeCode, 4200, 'close code after SIGTERM');
  // Stop accepting: a connection attempted now is not established.
  const late = c.raw();
  await until(() => late.closeCode !== null || late.find((m) => m.event === 'pusher:connection_established'), 5000, 'an answer to a connection attempted during shutdown');
  assert(!late.find((m) => m.event === 'pusher:connection_established'), 'a new connection was established after SIGTERM');
  const { exited, code } = await res;
  assert(exited, 'the server did not exit within 15 s of SIGTERM');
  if (c.target.name === 'pusherd') eq(code, 0, 'exit status');
  assert(states.length === 0 || states.includes('connecting'), `pusher-js did not treat 4200 as "reconnect": ${states.join(',')}`);
});

// ------------------------------------------------------------------ runner

async function runTarget(target, list, counters) {
  const results = [];
  let n = 0;
  const log = (s) => process.stdout.write(s + '\n');
  log(`# target ${target.name} on 127.0.0.1:${target.port}`);
  if (!target.alive() && (await portInUse(target.port))) {
    // Not a server of ours (no live pidfile / child): someone else's program.
    log(`Bail out! port ${target.port} is already in use by another program; not running ${target.name} scenarios`);
    for (const sc of list) { results.push({ sc, status: 'fail', msg: 'port in use' }); counters.fail++; }
    return results;
  }
  for (const sc of list) {
    n++;
    if (target.name === 'soketi' && sc.soketiSkip) {
      log(`ok ${n} - ${sc.name} # SKIP on soketi: ${sc.soketiSkip}`);
      results.push({ sc, status: 'skip', msg: '' });
      counters.skip++;
      continue;
    }
    if (target.name === 'pusherd' && OPT.exclude.includes(sc.name)) {
      log(`ok ${n} - ${sc.name} # SKIP excluded for pusherd by ${OPT.excludeFile} (known failure)`);
      results.push({ sc, status: 'skip', msg: '' });
      counters.skip++;
      continue;
    }
    const want = sc.profile;
    try {
      if (target.profile !== want || !(await healthy(target))) {
        if (target.profile !== null || target.alive()) await target.stop();
        await target.start(want);
      }
    } catch (e) {
      results.push({ sc, status: 'fail', msg: `server start: ${e.message}` });
      log(`not ok ${n} - ${sc.name} # server did not start: ${e.message}`);
      continue;
    }
    const ctx = new Ctx(target);
    let err = null;
    const t0 = Date.now();
    try {
      await Promise.race([sc.run(ctx), sleep(T(sc.timeout)).then(() => { throw new Fail(`scenario timed out after ${T(sc.timeout)} ms`); })]);
    } catch (e) {
      err = e;
    }
    await ctx.cleanup();
    const crashed = !sc.shutdown && !(await healthy(target));
    if (!err && crashed) err = new Fail('the server process died during the scenario');
    const ms = Date.now() - t0;
    const xfail = target.name === 'soketi' ? sc.soketi : null;
    const msg = err ? (err instanceof Fail ? err.message : (err.stack || String(err)).split('\n').slice(0, 3).join(' / ')) : '';
    let status;
    if (!err && !xfail) { status = 'pass'; log(`ok ${n} - ${sc.name}`); }
    else if (!err && xfail) { status = 'xpass'; log(`ok ${n} - ${sc.name} # UNEXPECTED PASS on soketi (marked expected-to-differ: ${xfail})`); }
    else if (err && xfail && sc.soketiObserved && !sc.soketiObserved.test(msg + (crashed ? ' (server died)' : ''))) {
      status = 'fail';
      log(`not ok ${n} - ${sc.name} # soketi failed, but not in the expected-to-differ way (${sc.soketiObserved})`);
      log(`#   ${trunc(msg.replace(/\n/g, ' '), 600)}${crashed ? ' (server died)' : ''}`);
    } else if (err && xfail) {
      status = 'xfail';
      log(`ok ${n} - ${sc.name} # expected-to-differ on soketi: ${xfail}`);
      log(`#   observed: ${trunc(msg.replace(/\n/g, ' '), 300)}${crashed ? ' (server died)' : ''}`);
    } else {
      status = 'fail';
      log(`not ok ${n} - ${sc.name}`);
      log(`#   ${trunc(msg.replace(/\n/g, ' '), 600)}${crashed ? ' (server died; restarted for the next scenario)' : ''}`);
    }
    if (OPT.verbose) log(`#   (${ms} ms)`);
    results.push({ sc, status, msg });
    counters[status]++;
    if (crashed) { try { await target.stop(); } catch {} }
  }
  try { await target.stop(); } catch {}
  return results;
}

async function main() {
  let list = S.filter((s) => (!OPT.filter || OPT.filter.test(s.name)) && (!OPT.skip || !OPT.skip.test(s.name)));
  // Order: default-profile scenarios, other profiles, malformed frames, shutdown.
  const PROFILES = ['default', 'quota', 'disabled', 'noclient', 'subcount', 'fastping'];
  const rank = (s) => (s.shutdown ? 20 : s.malformed ? 10 : PROFILES.indexOf(s.profile));
  list = list.map((s, i) => [s, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map((x) => x[0]);
  const unknown = OPT.exclude.filter((n) => !S.some((s) => s.name === n));
  if (unknown.length) console.log(`# warning: --exclude-file names no scenario called: ${unknown.join(' | ')}`);
  if (OPT.list) { for (const s of list) console.log(s.name + (s.soketi ? `    [soketi: expected-to-differ]` : '')); return 0; }
  const targets = [];
  if (OPT.target === 'soketi' || OPT.target === 'both') targets.push(new Soketi(OPT.port));
  if (OPT.target === 'pusherd' || OPT.target === 'both') {
    const bin = OPT.pusherd || join(process.env.PUSHER_BUILD_DIR ? resolve(process.env.PUSHER_BUILD_DIR) : join(SOURCE_DIR, 'build'), 'pusherd');
    targets.push(new Pusherd(OPT.port, bin));
  }
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => {
      console.log(`# ${sig}: stopping the servers this suite started`);
      for (const t of targets) { try { await t.stop(); } catch {} }
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  console.log('TAP version 13');
  console.log(`1..${list.length * targets.length}`);
  const all = [];
  for (const t of targets) {
    const counters = { pass: 0, xfail: 0, xpass: 0, fail: 0, skip: 0 };
    const results = await runTarget(t, list, counters);
    all.push({ t, counters, results });
  }
  // Summary.
  console.log('#');
  console.log('# ======== conformance summary');
  console.log(`# scenarios: ${list.length}`);
  console.log(`# ${'target'.padEnd(8)} ${'pass'.padStart(5)} ${'xfail'.padStart(6)} ${'xpass'.padStart(6)} ${'fail'.padStart(5)} ${'skip'.padStart(5)}`);
  for (const { t, counters: k } of all) {
    console.log(`# ${t.name.padEnd(8)} ${String(k.pass).padStart(5)} ${String(k.xfail).padStart(6)} ${String(k.xpass).padStart(6)} ${String(k.fail).padStart(5)} ${String(k.skip).padStart(5)}`);
  }
  console.log('# (xfail = expected-to-differ on soketi; skip = not runnable on that target, or excluded by --exclude-file)');
  if (all.length > 1) {
    console.log('#');
    console.log(`# ${'scenario'.padEnd(80)} ${all.map(({ t }) => t.name.padEnd(8)).join(' ')}`);
    for (let i = 0; i < list.length; i++) {
      console.log(`# ${trunc(list[i].name, 78).padEnd(80)} ${all.map(({ results }) => results[i].status.padEnd(8)).join(' ')}`);
    }
  }
  const failed = all.flatMap(({ t, results }) => results.filter((r) => r.status === 'fail').map((r) => `${t.name}: ${r.sc.name}`));
  if (failed.length) {
    console.log('# FAILED:');
    for (const f of failed) console.log(`#   ${f}`);
  }
  return failed.length ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e) => { console.error(e.stack || e); process.exit(2); });
