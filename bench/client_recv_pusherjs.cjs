// client_recv_pusherjs: the pusher-js 8.6.0 (Node build) counterpart of
// bench/client_recv.c.  Subscribes to one channel, prints READY once the
// subscription succeeded, counts --count "bench" events and prints
//   RESULT label=pusher-js events=N cpu_s=.. cpu_us_per_event=.. rss_ready_kb=.. maxrss_kb=..
//          user_s=.. sys_s=.. wakeups=.. events_per_wakeup=..
// cpu_s: process.cpuUsage() (user+system) between READY and the last event,
// user_s and sys_s its parts; maxrss_kb: process.resourceUsage().maxRSS
// (peak of the whole process); wakeups: voluntary context switches of the
// process over the same span (resourceUsage().voluntaryContextSwitches, the
// same getrusage ru_nvcsw as bench/client_recv.c; it includes Node's helper
// threads).
// Usage: node client_recv_pusherjs.cjs [--port P] [--count N] [--channel C]
//        (NODE_PATH or --modules DIR must reach pusher-js)
'use strict';
const path = require('path');
const args = { host: '127.0.0.1', port: 6001, key: 'app-key', channel: 'bench', count: 100000,
  timeout: 120, modules: path.join(__dirname, '..', 'tests', 'peers', 'clients', 'node_modules') };
for (let i = 2; i + 1 < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) { console.error('client_recv_pusherjs: unknown option ' + process.argv[i]); process.exit(2); }
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
let Pusher = require(path.join(args.modules, 'pusher-js'));
if (Pusher.default) Pusher = Pusher.default;

const pusher = new Pusher(args.key, {
  cluster: 'mt1', wsHost: args.host, wsPort: args.port, forceTLS: false,
  enabledTransports: ['ws'], disableStats: true,
});
let got = 0, bytes = 0, cpu0 = null, rss0 = 0, csw0 = 0, done = false;
function finish() {
  if (done) return;
  done = true;
  const cpu = cpu0 ? process.cpuUsage(cpu0) : { user: 0, system: 0 };
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const ru = process.resourceUsage();
  const maxrss = ru.maxRSS;
  const wakeups = ru.voluntaryContextSwitches - csw0;
  console.log(`RESULT label=pusher-js events=${got} bytes=${bytes} cpu_s=${cpuS.toFixed(3)} ` +
    `cpu_us_per_event=${got ? (cpuS * 1e6 / got).toFixed(3) : -1} rss_ready_kb=${rss0} maxrss_kb=${maxrss} ` +
    `user_s=${(cpu.user / 1e6).toFixed(3)} sys_s=${(cpu.system / 1e6).toFixed(3)} wakeups=${wakeups} ` +
    `events_per_wakeup=${wakeups > 0 ? (got / wakeups).toFixed(2) : -1}`);
  pusher.disconnect();
  process.exit(got === args.count ? 0 : 1);
}
const ch = pusher.subscribe(args.channel);
ch.bind('pusher:subscription_succeeded', () => {
  csw0 = process.resourceUsage().voluntaryContextSwitches;
  cpu0 = process.cpuUsage();
  rss0 = Math.round(process.memoryUsage().rss / 1024);
  console.log('READY');
});
ch.bind('bench', (data) => {
  got++;
  bytes += typeof data === 'string' ? data.length : 0;
  if (got === args.count) finish();
});
setTimeout(() => { console.error(`client_recv_pusherjs: timeout after ${got}/${args.count} events`); finish(); },
  args.timeout * 1000).unref();
