// client_many_pusherjs: the pusher-js 8.6.0 (Node build) counterpart of
// bench/client_many.c.  N pusher-js clients in one Node process (one event
// loop), client i subscribed to PREFIX-(i mod C), at most --concurrency
// connecting at a time.  Once all are subscribed it prints
//   READY clients=N rss_kb_per_client=..
// (process.memoryUsage().rss after minus before creating the clients, each
// taken after a full garbage collection when Node runs with --expose-gc, so
// that garbage waiting for the collector is not counted).  Then someone
// publishes (bench/run.sh: `pusher bench --subscribers 0 --channel-prefix
// PREFIX --channels C`) and once every client has E events, or after
// --timeout seconds without progress:
//   RESULT clients=N subscribed=S events=got/expected rss_kb_per_client=.. maxrss_kb=..
// Exit status 0 when every client subscribed and got its E events.  A
// benchmark: it prints, it never judges a number.
// Usage: node --expose-gc client_many_pusherjs.cjs --port P --clients N
//        --channels C --prefix P --events E [--concurrency K] [--timeout S]
'use strict';
const path = require('path');
const args = { host: '127.0.0.1', port: 6001, key: 'app-key', clients: 1000, channels: 10, prefix: 'many',
  events: 0, concurrency: 200, timeout: 60,
  modules: path.join(__dirname, '..', 'tests', 'peers', 'clients', 'node_modules') };
for (let i = 2; i + 1 < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) { console.error('client_many_pusherjs: unknown option ' + process.argv[i]); process.exit(2); }
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
let Pusher = require(path.join(args.modules, 'pusher-js'));
if (Pusher.default) Pusher = Pusher.default;

function rssKb() {
  if (global.gc) global.gc();
  return process.memoryUsage().rss / 1024;
}

const rss0 = rssKb();
let rssReady = 0, started = 0, subscribed = 0, got = 0, readyPrinted = false, done = false, mark = -1;
const clients = [];
const want = args.events * args.clients;

function perClient(kb) { return ((kb - rss0) / args.clients).toFixed(2); }

function finish() {
  if (done) return;
  done = true;
  if (!readyPrinted) rssReady = rssKb();
  console.log(`RESULT clients=${args.clients} subscribed=${subscribed} events=${got}/${want} ` +
    `rss_kb_per_client=${perClient(rssReady)} maxrss_kb=${process.resourceUsage().maxRSS}`);
  for (const c of clients) c.disconnect();
  process.exit(subscribed === args.clients && got === want ? 0 : 1);
}

function startNext() {
  if (started >= args.clients) return;
  const i = started++;
  const c = new Pusher(args.key, {
    cluster: 'mt1', wsHost: args.host, wsPort: args.port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
  });
  clients.push(c);
  const ch = c.subscribe(`${args.prefix}-${i % args.channels}`);
  let mine = false;
  ch.bind('pusher:subscription_succeeded', () => {
    if (mine) return;
    mine = true;
    subscribed++;
    startNext();
    if (subscribed === args.clients && !readyPrinted) {
      readyPrinted = true;
      rssReady = rssKb();
      console.log(`READY clients=${args.clients} rss_kb_per_client=${perClient(rssReady)}`);
      if (want === 0) finish();
    }
  });
  ch.bind_global((name) => {
    if (name.startsWith('pusher')) return;
    got++;
    if (got === want) finish();
  });
}

for (let k = 0; k < args.concurrency; k++) startNext();
setInterval(() => {
  const now = subscribed + got;
  if (now !== mark) { mark = now; return; }
  console.error(`client_many_pusherjs: no progress for ${args.timeout} s (${subscribed}/${args.clients} ` +
    `subscribed, ${got}/${want} events)`);
  finish();
}, args.timeout * 1000);
