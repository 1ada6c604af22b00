#!/usr/bin/env node
// Client events between the official pusher-js 8.6.0 (Node build) and
// libpusher (tests/tools/interop_peer.c), both directions, on a private and
// a presence channel, against one server (soketi or pusherd).  Run by
// tests/integration/interop_pusherjs.sh:
//
//   node driver.mjs --label NAME --ws-port P --auth-port A --peer PATH --out DIR
//
// For each channel (private-interop-*, presence-interop-*):
//   1. pusher-js sends client-from-js (an object) then client-from-js-str (a
//      string); the C client must get both, in order, with the exact data,
//      and user_id "js-user" on presence (none on private);
//   2. the C client then sends client-from-c; pusher-js must get the exact
//      data, with metadata.user_id "c-user" on presence (none on private);
//   3. pusher-js then sends client-done; the C client must get it.
// Each step starts only after the previous one arrived, so when a side sees
// the next step's event on its connection, any echo of its own event would
// already have arrived before it (same connection, server fans out in
// order): no side may have received its own events.  Presence: each side
// sees the other as a member (pusher-js channel.members; C members API:
// member_added or the initial set, and the snapshot with me = c-user).
// The C client is spawned here and talks JSON lines (see interop_peer.c).
// Prints "PASS <label>" and exits 0, or "FAIL <label>: why" and exits 1.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../peers/clients/node_modules/'));
const Pusher = require('pusher-js');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (i + 1 >= process.argv.length) throw new Error(`${process.argv[i]} needs a value`);
  args[k] = process.argv[i + 1];
}
for (const k of ['label', 'ws-port', 'auth-port', 'peer', 'out']) {
  if (!args[k]) { console.error(`missing --${k}`); process.exit(2); }
}
const LABEL = args.label;
const MULT = Number(process.env.PUSHER_TEST_TIMEOUT_MULTIPLIER || 1) || 1;
const T = (s) => s * 1000 * MULT;
const JS_USER = 'js-user', C_USER = 'c-user';
const T0 = Date.now();
const log = (...a) => console.log(`[${LABEL} +${((Date.now() - T0) / 1000).toFixed(3)}s]`, ...a);

// --------------------------------------------------------------- waiting
// Everything either side observes is appended to a list; waiters are
// re-checked on every arrival.
const waiters = new Set();
function notify() { for (const w of [...waiters]) w.check(); }
function waitFor(desc, pred, seconds = 15) {
  return new Promise((resolve, reject) => {
    const w = {
      check() {
        let v;
        try { v = pred(); } catch (e) { cleanup(); reject(e); return; }
        if (v) { cleanup(); resolve(v); }
      },
    };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${T(seconds) / 1000}s waiting for ${desc}`)); }, T(seconds));
    function cleanup() { clearTimeout(timer); waiters.delete(w); }
    waiters.add(w);
    w.check();
  });
}

// --------------------------------------------------------------- C client
const cLog = [];   // parsed JSON lines from interop_peer
const cOut = fs.createWriteStream(path.join(args.out, `${LABEL}-c.out`));
const cErr = fs.openSync(path.join(args.out, `${LABEL}-c.err`), 'w');
const peer = spawn(args.peer, [
  '--ws-port', args['ws-port'],
  '--auth-endpoint', `http://127.0.0.1:${args['auth-port']}/pusher/auth`,
  '--param', `user_id=${C_USER}`,
], { stdio: ['pipe', 'pipe', cErr] });
let peerExit = null;
peer.on('exit', (code, signal) => { peerExit = { code, signal }; notify(); });
createInterface({ input: peer.stdout }).on('line', (line) => {
  cOut.write(line + '\n');
  let d;
  try { d = JSON.parse(line); } catch { d = { op: 'unparsable', line }; }
  d.seq = cLog.length;
  cLog.push(d);
  notify();
});
function cSend(cmd) { log('C <-', cmd); peer.stdin.write(cmd + '\n'); }
function cFind(pred, from = 0) {
  if (peerExit) throw new Error(`the C client exited early: ${JSON.stringify(peerExit)}`);
  for (let i = from; i < cLog.length; i++) if (pred(cLog[i])) return cLog[i];
  return null;
}
async function cCommand(cmd, op, seconds = 10) {
  const from = cLog.length;
  cSend(cmd);
  return waitFor(`C reply to "${cmd}"`, () => cFind((d) => d.op === op, from), seconds);
}

// --------------------------------------------------------------- pusher-js
const jsLog = [];  // {channel, event, data, metadata}
const jsOut = fs.createWriteStream(path.join(args.out, `${LABEL}-js.out`));
function jsRecord(e) { jsOut.write(JSON.stringify(e) + '\n'); jsLog.push(e); notify(); }
const js = new Pusher('app-key', {
  cluster: 'x',
  wsHost: '127.0.0.1',
  wsPort: Number(args['ws-port']),
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
  channelAuthorization: {
    endpoint: `http://127.0.0.1:${args['auth-port']}/pusher/auth`,
    transport: 'ajax',
    params: { user_id: JS_USER },
  },
});
let jsState = 'initialized';
js.connection.bind('state_change', (s) => { jsState = s.current; jsRecord({ state: s.current }); });
js.connection.bind('error', (e) => jsRecord({ connection_error: String(e && (e.error ? JSON.stringify(e.error) : e.type)) }));
function jsSubscribe(name) {
  const ch = js.subscribe(name);
  ch.bind_global((event, data) => jsRecord({ channel: name, event, data }));
  // Per-event binding: the only way to see pusher-js's metadata argument.
  ch.bind('client-from-c', (data, metadata) => jsRecord({ channel: name, event: 'client-from-c', data, metadata, bound: true }));
  return ch;
}

// --------------------------------------------------------------- scenario
const DATA_OBJ = { n: 1, text: 'from pusher-js: h\u00e9llo \u2713 "quoted"', list: [1, 2.5, null, true], nested: { a: {} } };
const DATA_STR = 'plain string from pusher-js';
const DATA_C = { n: 2, text: 'from libpusher: gr\u00fc\u00dfe \u2603', list: [false, 'x'] };

async function exchange(chName, jsCh, presence) {
  log(`exchange on ${chName}`);
  const cFrom = cLog.length;
  assert.equal(jsCh.trigger('client-from-js', DATA_OBJ), true, 'pusher-js trigger client-from-js returned false');
  assert.equal(jsCh.trigger('client-from-js-str', DATA_STR), true, 'pusher-js trigger client-from-js-str returned false');
  const isC = (ev) => (d) => d.op === 'event' && d.channel === chName && d.event === ev;
  const got1 = await waitFor(`C gets client-from-js on ${chName}`, () => cFind(isC('client-from-js'), cFrom));
  const got2 = await waitFor(`C gets client-from-js-str on ${chName}`, () => cFind(isC('client-from-js-str'), cFrom));
  assert.deepEqual(got1.data, DATA_OBJ, `C: client-from-js data on ${chName}`);
  assert.equal(got2.data, DATA_STR, `C: client-from-js-str data on ${chName}`);
  assert.ok(got1.seq < got2.seq, `C: client-from-js and client-from-js-str out of order on ${chName}`);
  assert.equal(got1.user_id, presence ? JS_USER : null, `C: user_id of client-from-js on ${chName}`);
  assert.equal(got2.user_id, presence ? JS_USER : null, `C: user_id of client-from-js-str on ${chName}`);
  log(`C got both pusher-js events on ${chName} (user_id ${got1.user_id})`);

  const jsFrom = jsLog.length;
  const trc = await cCommand(`trigger ${chName} client-from-c ${JSON.stringify(DATA_C)}`, 'trigger');
  assert.equal(trc.rc, 0, `C trigger on ${chName}: ${trc.err}`);
  const isJs = (d) => d.channel === chName && d.event === 'client-from-c';
  const bound = await waitFor(`pusher-js gets client-from-c on ${chName}`,
    () => jsLog.slice(jsFrom).find((d) => isJs(d) && d.bound));
  const global = jsLog.slice(jsFrom).find((d) => isJs(d) && !d.bound);
  assert.deepEqual(bound.data, DATA_C, `pusher-js: client-from-c data on ${chName}`);
  assert.ok(global, `pusher-js: bind_global did not see client-from-c on ${chName}`);
  if (presence) assert.deepEqual(bound.metadata, { user_id: C_USER }, `pusher-js: metadata on ${chName}`);
  else assert.equal(bound.metadata && bound.metadata.user_id, undefined, `pusher-js: metadata on ${chName} has a user_id`);
  log(`pusher-js got client-from-c on ${chName} (metadata ${JSON.stringify(bound.metadata)})`);

  const cFrom2 = cLog.length;
  assert.equal(jsCh.trigger('client-done', { channel: chName }), true, 'pusher-js trigger client-done returned false');
  const done = await waitFor(`C gets client-done on ${chName}`, () => cFind(isC('client-done'), cFrom2));
  assert.deepEqual(done.data, { channel: chName });

  // No echo: each side's own events would have arrived before the other
  // side's later event on the same connection.
  const cEcho = cLog.filter((d) => d.op === 'event' && d.channel === chName && d.event === 'client-from-c');
  assert.deepEqual(cEcho, [], `C received its own client-from-c on ${chName}`);
  const jsEcho = jsLog.filter((d) => d.channel === chName && /^client-from-js/.test(d.event || ''));
  assert.deepEqual(jsEcho, [], `pusher-js received its own events on ${chName}`);
  // Exactly once each way.
  assert.equal(cLog.filter(isC('client-from-js')).length, 1, `C got client-from-js more than once on ${chName}`);
  assert.equal(jsLog.filter((d) => isJs(d) && d.bound).length, 1, `pusher-js got client-from-c more than once on ${chName}`);
}

async function main() {
  const suffix = `${process.pid}`;
  const PRIV = `private-interop-${suffix}`, PRES = `presence-interop-${suffix}`;

  await waitFor('the C client connected', () => cFind((d) => d.op === 'state' && d.state === 'connected'), 20);
  await waitFor('pusher-js connected', () => jsState === 'connected', 20);
  log(`connected: C ${cFind((d) => d.op === 'state' && d.state === 'connected').socket_id}, pusher-js ${js.connection.socket_id}`);

  for (const ch of [PRIV, PRES]) {
    const r = await cCommand(`sub ${ch}`, 'sub');
    assert.equal(r.rc, 0, `C subscribe ${ch}: ${r.err}`);
  }
  const jsPriv = jsSubscribe(PRIV);
  const jsPres = jsSubscribe(PRES);
  const subOk = (ch) => (d) => d.op === 'event' && d.channel === ch && d.event === 'pusher:subscription_succeeded';
  const subErr = (ch) => cFind((d) => d.op === 'event' && d.channel === ch && d.event === 'pusher:subscription_error');
  for (const ch of [PRIV, PRES]) {
    await waitFor(`C subscribed to ${ch}`, () => {
      const e = subErr(ch);
      if (e) throw new Error(`C subscription_error on ${ch}: ${JSON.stringify(e.data)}`);
      return cFind(subOk(ch));
    });
    await waitFor(`pusher-js subscribed to ${ch}`, () => {
      const e = jsLog.find((d) => d.channel === ch && d.event === 'pusher:subscription_error');
      if (e) throw new Error(`pusher-js subscription_error on ${ch}: ${JSON.stringify(e.data)}`);
      return jsLog.find((d) => d.channel === ch && d.event === 'pusher:subscription_succeeded');
    });
  }
  log('both subscribed to both channels');

  // ---- presence: each sees the other
  await waitFor('pusher-js sees c-user as a member', () => jsPres.members.get(C_USER));
  assert.equal(jsPres.members.me && jsPres.members.me.id, JS_USER, 'pusher-js members.me');
  assert.equal(jsPres.members.count, 2, 'pusher-js members.count');
  assert.deepEqual(jsPres.members.get(C_USER).info, { name: C_USER }, 'pusher-js: c-user user_info');
  await waitFor('C sees js-user (initial set or member_added)', () => cFind((d) =>
    d.op === 'event' && d.channel === PRES &&
    ((d.event === 'pusher:member_added' && d.data.user_id === JS_USER) ||
     (d.event === 'pusher:subscription_succeeded' && (d.data.members || []).some((m) => m.user_id === JS_USER)))));
  const m = await cCommand(`members ${PRES}`, 'members');
  assert.equal(m.rc, 0, `C members: ${m.err}`);
  assert.equal(m.me, C_USER, 'C members me');
  assert.deepEqual([...m.ids].sort(), [C_USER, JS_USER], 'C members ids');
  assert.deepEqual(m.infos[m.ids.indexOf(JS_USER)], { name: JS_USER }, 'C: js-user user_info');
  log(`presence: pusher-js members ${JSON.stringify(Object.keys(jsPres.members.members).sort())}, C members ${JSON.stringify(m.ids)}`);

  await exchange(PRIV, jsPriv, false);
  await exchange(PRES, jsPres, true);

  // ---- pusher-js leaves the presence channel: the C client sees it go
  const cFrom = cLog.length;
  js.unsubscribe(PRES);
  await waitFor('C gets member_removed js-user', () => cFind((d) =>
    d.op === 'event' && d.channel === PRES && d.event === 'pusher:member_removed' && d.data.user_id === JS_USER, cFrom));
  const m2 = await cCommand(`members ${PRES}`, 'members');
  assert.deepEqual(m2.ids, [C_USER], 'C members after js-user left');

  // ---- the C client quits cleanly
  cSend('quit');
  await waitFor('the C client exits', () => peerExit, 15);
  assert.deepEqual(peerExit, { code: 0, signal: null }, 'C client exit status');
  js.disconnect();
}

let failed = null;
try {
  await main();
} catch (e) {
  failed = e;
}
if (failed) {
  console.log(`FAIL ${LABEL}: ${failed.message}`);
  if (!peerExit) peer.kill('SIGKILL');
  try { js.disconnect(); } catch { /* ignore */ }
}
cOut.end();
jsOut.end();
if (!failed) console.log(`PASS ${LABEL}`);
// pusher-js keeps timers alive; leave without waiting for them.
setTimeout(() => process.exit(failed ? 1 : 0), 50);
