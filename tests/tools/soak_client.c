/* soak_client: the client fault soak and the steady long run
 * (tests/soak/README.md has the definitions, the bounds and the figures).
 *
 * One process, one libuv loop: N libpusher clients in loop mode
 * (pusher_client_options.loop, include/pusher/pusher.h), a REST publisher
 * and the pusherd it spawns, kills and restarts itself, so every moment
 * that matters (a trigger sent, its 200, a fault signalled, a
 * subscription seen) is ordered on one thread and the accounting is exact.
 *
 *   soak_client --pusherd PATH --port P [--clients N] [--groups G]
 *               [--kills K] [--terms T] [--rate R] [--up MIN,MAX]
 *               [--down MAX] [--bound S] [--hard-bound S] [--seed N]
 *               [--duration S --churn MS --rss-every S] [--rss-check]
 *               [--server-log FILE] [--pidfile FILE] [--inject-drop N] [--storm P]
 *               [--unavailable S] [--fault-churn]
 *
 * Client i is user "u<i>" in group i % G and subscribes to "soak-<g>",
 * "private-soak-<g>" and "presence-soak-<g>" (a custom authorizer signs
 * locally with the app secret: hex HMAC-SHA256 of
 * "socket_id:channel[:channel_data]", as lib/core/sign.h).  The publisher
 * sends one REST event "seq" with data "<n>" to every channel of every
 * group, one request at a time, at --rate per second; n = 1, 2, 3 ...
 *
 * Fault mode (default): --kills SIGKILLs and --terms SIGTERMs of pusherd in
 * a seeded random order.  After every (re)start: all clients connected, all
 * three subscriptions succeeded and every presence member list equal to its
 * group, within --bound seconds of the spawn (a miss is a failure; the soak
 * gives up at --hard-bound).  Then the server stays up for a random time in
 * --up, is faulted, and is down for a random time up to --down.
 *
 * Steady mode (--duration): one pusherd, no faults; every --churn ms one
 * random client is disturbed (deleted and re-created, disconnected and
 * reconnected, or one channel unsubscribed and subscribed again; undone on
 * the next tick).  Every --rss-every seconds the churn pauses, everything
 * must converge again, and the RSS of this process and of pusherd is
 * printed.
 *
 * Event accounting, per client and channel.  A seq is
 *   ACKED  its POST got 200 and no fault was signalled between send and 200,
 *   FAULT  a fault was signalled while its POST was in flight,
 *   DOWN   no 200 and no fault in between (the server was down).
 * A subscription interval [f, e) in seq space opens when the client sees
 * pusher:subscription_succeeded (f = the next seq to be sent) and closes
 * when the client sees its connection end (e = the next seq to be sent
 * then) or, for a disturbance we made ourselves, right after the last seq
 * received (what was in flight at a deliberate unsubscribe is not owed).
 * Required: every ACKED seq inside an interval reaches the client.  Always:
 * no seq twice, seqs strictly increasing.  Every seq missing between the
 * first subscription and the end is classified DOWN, FAULT or "not
 * subscribed" (ACKED outside every interval); an ACKED one inside an
 * interval is a violation.  A connection ending while no fault is under
 * way and we did not ask for it is a violation too.
 *
 * --storm P: with probability P a restart is faulted again 20..1000 ms
 * after the spawn, in the middle of the reconnect storm (handshakes,
 * authorizations, subscriptions under way), without waiting for
 * convergence; the cycle after it must converge as usual.
 *
 * --fault-churn: the steady mode's churn (every --churn ms) also runs in
 * fault mode while pusherd is up, dying or down (disconnect / connect,
 * delete / re-create, unsubscribe / subscribe against a dead server); it
 * is undone before each restart, whose convergence is then measured.
 *
 * --unavailable S: the clients' unavailable_timeout (default 30, the
 * library's); a value below --down sends them through `unavailable`.
 *
 * --inject-drop N (self-test of the accounting): client 0 ignores the N-th
 * seq it gets on its public channel, which must then be reported missing.
 *
 * Output: "CYCLE ..." per restart, "RSS ..." samples, "SOAK key=value ..."
 * figures, then "PASS" (exit 0) or "FAIL: ..." (exit 1). */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include <pusher/channels.h>

#include "core/mem.h"
#include "core/sign.h"

#define APP_ID "app-id"
#define APP_KEY "app-key"
#define APP_SECRET "app-secret"
#define NCH 3
#define MAXIV 8

/* ------------------------------------------------------------------ options */

static struct {
  const char *pusherd, *server_log, *pidfile;
  int port, clients, groups, kills, terms, rss_check, inject_drop, fault_churn;
  double rate, up_min, up_max, down_max, bound, hard_bound, storm;
  double duration, churn_ms, rss_every;
  double reconnect_delay, max_reconnect_delay, unavailable_timeout;
  unsigned seed;
} opt = {
    .port = 7950, .clients = 200, .groups = 4, .kills = 100, .terms = 20,
    .rate = 20, .up_min = 0.5, .up_max = 3, .down_max = 1, .bound = 0, .hard_bound = 60,
    .churn_ms = 200, .rss_every = 60, .reconnect_delay = 0.1, .max_reconnect_delay = 1, .unavailable_timeout = 30,
    .seed = 1,
};

static uv_loop_t *loop;
static int failures;

static double now_s(void) { return (double)uv_hrtime() / 1e9; }
static double t0;

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("[%8.3f] ", now_s() - t0);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

/* A violation: printed, counted; the soak goes on and fails at the end. */
static void violation(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("[%8.3f] VIOLATION: ", now_s() - t0);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  failures++;
}

static unsigned rng_state;
static double rnd01(void) { return (double)rand_r(&rng_state) / ((double)RAND_MAX + 1.0); }
static double rnd_between(double a, double b) { return a + (b - a) * rnd01(); }

/* ------------------------------------------------------------------ seq status */

enum { ST_PENDING = 0, ST_ACKED, ST_FAULT, ST_DOWN };
static uint8_t *seq_st;
static int64_t seq_cap, next_seq = 1;
static unsigned fault_epoch;
static uint64_t n_acked, n_fault, n_down;

static void seq_reserve(int64_t s) {
  if (s < seq_cap) return;
  int64_t cap = seq_cap ? seq_cap * 2 : 4096;
  while (cap <= s) cap *= 2;
  uint8_t *n = realloc(seq_st, (size_t)cap);
  if (!n) abort();
  memset(n + seq_cap, 0, (size_t)(cap - seq_cap));
  seq_st = n;
  seq_cap = cap;
}

/* ------------------------------------------------------------------ clients */

typedef struct interval {
  int64_t f, e; /* e == INT64_MAX: open */
} interval;

typedef struct chan {
  int want;       /* subscribe() called and not undone */
  int subscribed; /* subscription_succeeded seen on the current connection */
  int64_t lo;     /* first f ever (-1 = never subscribed) */
  int64_t last;   /* highest seq received (-1 = none) */
  interval iv[MAXIV];
  int niv;
} chan;

typedef struct slot {
  pusher_client *c;
  int idx, group;
  char uid[16];
  pusher_state state;
  int deliberate; /* we asked for the disconnect under way */
  chan ch[NCH];
  double connected_at; /* when it last became connected */
  /* Its last connection events, to explain a slow convergence. */
  struct {
    double t;
    char what[120];
  } trace[12];
  unsigned ntrace;
} slot;

/* Totals over every client and channel (folded in when a client goes). */
static struct {
  uint64_t got, lost_down, lost_fault, lost_unsub, missing_required, dups, reordered;
  uint64_t unexpected_disconnects, sub_errors, not_subscribed_events, ring_overflow, unavailable_entries;
} tot;

static slot *slots;
static char (*names)[NCH][64]; /* per group */
static int phase;
enum { P_CONVERGE, P_UP, P_WAIT_EXIT, P_DOWN, P_FINAL, P_STEADY, P_QUIESCE };
static void begin_final(void);

static int chan_index(const slot *s, const char *channel) {
  for (int k = 0; k < NCH; k++)
    if (channel && strcmp(channel, names[s->group][k]) == 0) return k;
  return -1;
}

static int required(const chan *ch, int64_t x) {
  for (int i = 0; i < ch->niv; i++)
    if (x >= ch->iv[i].f && x < ch->iv[i].e) return 1;
  return 0;
}

/* Classify every seq in [from, to) that the client did not get. */
static void classify_missing(slot *s, int k, int64_t from, int64_t to) {
  chan *ch = &s->ch[k];
  for (int64_t x = from; x < to; x++) {
    switch (seq_st[x]) {
    case ST_DOWN: tot.lost_down++; break;
    case ST_FAULT: tot.lost_fault++; break;
    case ST_ACKED:
      if (required(ch, x)) {
        tot.missing_required++;
        violation("client %d (%s) on %s missed seq %" PRId64 " (acknowledged while subscribed)", s->idx,
                  s->uid, names[s->group][k], x);
      } else {
        tot.lost_unsub++;
      }
      break;
    default:
      violation("client %d: seq %" PRId64 " still pending at classification", s->idx, x);
    }
  }
}

/* Drop intervals wholly below `upto` (already classified), keep the open one. */
static void prune(chan *ch, int64_t upto) {
  int j = 0;
  for (int i = 0; i < ch->niv; i++)
    if (ch->iv[i].e == INT64_MAX || ch->iv[i].e > upto) ch->iv[j++] = ch->iv[i];
  ch->niv = j;
}

static void open_interval(slot *s, int k) {
  chan *ch = &s->ch[k];
  ch->subscribed = 1;
  if (ch->lo < 0) ch->lo = next_seq;
  if (ch->niv == MAXIV) {
    memmove(ch->iv, ch->iv + 1, (MAXIV - 1) * sizeof ch->iv[0]);
    ch->niv--;
    tot.ring_overflow++;
  }
  ch->iv[ch->niv++] = (interval){next_seq, INT64_MAX};
}

/* The subscription ended: deliberately (tail not owed) or by the connection. */
static void close_interval(slot *s, int k, int deliberate) {
  chan *ch = &s->ch[k];
  ch->subscribed = 0;
  if (ch->niv == 0 || ch->iv[ch->niv - 1].e != INT64_MAX) return;
  interval *iv = &ch->iv[ch->niv - 1];
  if (deliberate) {
    int64_t e = ch->last + 1;
    if (e < iv->f) e = iv->f;
    if (e > next_seq) e = next_seq;
    iv->e = e;
  } else {
    iv->e = next_seq;
  }
}

/* Everything up to next_seq is settled (no POST in flight): classify the
 * tail after the last seq received. */
static void settle_tail(slot *s, int k) {
  chan *ch = &s->ch[k];
  if (ch->lo < 0) return;
  int64_t from = ch->last + 1 > ch->lo ? ch->last + 1 : ch->lo;
  classify_missing(s, k, from, next_seq);
  ch->last = next_seq - 1;
  prune(ch, next_seq);
}

static void on_seq(pusher_client *c, const pusher_event *ev, void *ud) {
  slot *s = ud;
  int k = chan_index(s, ev->channel);
  if (k < 0 || !ev->data) {
    violation("client %d: seq event on unknown channel %s", s->idx, ev->channel ? ev->channel : "(null)");
    return;
  }
  chan *ch = &s->ch[k];
  static int seen0;
  if (opt.inject_drop && s->idx == 0 && k == 0 && ++seen0 == opt.inject_drop) return; /* self-test */
  char *end;
  long long v = strtoll(ev->data, &end, 10);
  if (*end || v <= 0 || v >= next_seq) {
    violation("client %d: bad seq data '%s' on %s", s->idx, ev->data, ev->channel);
    return;
  }
  int64_t x = v;
  tot.got++;
  if (!ch->subscribed) tot.not_subscribed_events++;
  if (x <= ch->last) {
    if (x == ch->last) tot.dups++;
    else tot.reordered++;
    violation("client %d on %s: seq %" PRId64 " after %" PRId64 " (%s)", s->idx, ev->channel, x, ch->last,
              x == ch->last ? "duplicate" : "out of order");
    return;
  }
  if (ch->lo >= 0) {
    int64_t from = ch->last + 1 > ch->lo ? ch->last + 1 : ch->lo;
    if (from < x) classify_missing(s, k, from, x);
  }
  ch->last = x;
  prune(ch, x + 1);
}

static void on_sub(pusher_client *c, const pusher_event *ev, void *ud) {
  slot *s = ud;
  int k = chan_index(s, ev->channel);
  if (k < 0) return;
  if (strcmp(ev->event, "pusher:subscription_succeeded") == 0) {
    open_interval(s, k);
  } else {
    tot.sub_errors++;
    violation("client %d: subscription_error on %s: %s", s->idx, ev->channel, ev->data ? ev->data : "");
  }
}

static double now_s(void);
static double spawned_at; /* when the current pusherd was spawned */
/* The longest gap between two 20 ms ticks since the spawn: this process's
 * loop stalled or starved of CPU (a slow cycle with a large gap was not
 * waiting on the clients). */
static double last_tick, max_tick_gap;

static void trace(slot *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  unsigned i = s->ntrace++ % 12;
  s->trace[i].t = now_s();
  vsnprintf(s->trace[i].what, sizeof s->trace[i].what, fmt, ap);
  va_end(ap);
}

static void on_error(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  trace(ud, "error %s code %d: %s", pusher_err_name(ev->error), ev->code, ev->message ? ev->message : "");
}

static void on_state(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  slot *s = ud;
  trace(s, "%s -> %s", pusher_state_name(ev->previous), pusher_state_name(ev->current));
  if (ev->current == PUSHER_STATE_CONNECTED) s->connected_at = now_s();
  s->state = ev->current;
  if (ev->current == PUSHER_STATE_UNAVAILABLE) tot.unavailable_entries++;
  if (ev->previous == PUSHER_STATE_CONNECTED && ev->current != PUSHER_STATE_CONNECTED) {
    for (int k = 0; k < NCH; k++) close_interval(s, k, s->deliberate);
    if (!s->deliberate && (phase == P_CONVERGE || phase == P_UP || phase == P_STEADY || phase == P_QUIESCE)) {
      tot.unexpected_disconnects++;
      violation("client %d left connected (-> %s) while no fault was under way", s->idx,
                pusher_state_name(ev->current));
    }
  }
  if (ev->current == PUSHER_STATE_CONNECTED) s->deliberate = 0;
}

/* The largest retry delay scheduled since the last fault (connecting_in). */
static double max_retry_delay;

static void on_connecting_in(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  slot *s = ud;
  trace(s, "connecting_in %.3f s", ev->delay);
  if (ev->delay > max_retry_delay) max_retry_delay = ev->delay;
  if (ev->delay > opt.max_reconnect_delay + 1e-9)
    violation("client %d: retry scheduled in %.3f s, over max_reconnect_delay %.3f s", s->idx, ev->delay,
              opt.max_reconnect_delay);
}

static void hmac_hex(const char *msg, char out[65]) {
  unsigned char md[32];
  unsigned int mdlen = 0;
  HMAC(EVP_sha256(), APP_SECRET, (int)strlen(APP_SECRET), (const unsigned char *)msg, strlen(msg), md, &mdlen);
  for (unsigned i = 0; i < mdlen; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Custom authorizer: signs locally, answers from inside the callback. */
static void authorizer(pusher_client *c, pusher_auth_request *req, const char *sid, const char *channel,
                       void *ud) {
  slot *s = ud;
  char cd[96], msg[512], sig[65], auth[128];
  int presence = strncmp(channel, "presence-", 9) == 0;
  if (presence) snprintf(cd, sizeof cd, "{\"user_id\":\"%s\",\"user_info\":{\"i\":%d}}", s->uid, s->idx);
  snprintf(msg, sizeof msg, "%s:%s%s%s", sid, channel, presence ? ":" : "", presence ? cd : "");
  hmac_hex(msg, sig);
  snprintf(auth, sizeof auth, "%s:%s", APP_KEY, sig);
  pusher_auth_result r = {auth, presence ? cd : NULL, NULL, NULL};
  int rc = pusher_auth_request_complete(req, &r);
  if (rc != 0) violation("client %d: auth_request_complete: %s", s->idx, pusher_err_name(rc));
}

static void client_start(slot *s) {
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.ws_host = "127.0.0.1";
  o.ws_port = opt.port;
  o.encrypted = 0;
  o.reconnect_delay = opt.reconnect_delay;
  o.max_reconnect_delay = opt.max_reconnect_delay;
  o.connect_timeout = 5;
  o.unavailable_timeout = opt.unavailable_timeout;
  o.loop = loop;
  memset(s->ch, 0, sizeof s->ch);
  for (int k = 0; k < NCH; k++) s->ch[k].lo = s->ch[k].last = -1;
  s->state = PUSHER_STATE_INITIALIZED;
  s->deliberate = 0;
  s->ntrace = 0;
  if (pusher_client_new(&s->c, APP_KEY, &o) != 0) abort();
  if (pusher_client_set_channel_authorizer(s->c, authorizer, s) != 0 ||
      pusher_connection_bind(s->c, "state_change", on_state, s, NULL) != 0 ||
      pusher_connection_bind(s->c, "connecting_in", on_connecting_in, s, NULL) != 0 ||
      pusher_connection_bind(s->c, "error", on_error, s, NULL) != 0 ||
      pusher_bind(s->c, NULL, "seq", on_seq, s, NULL) != 0 ||
      pusher_bind(s->c, NULL, "pusher:subscription_succeeded", on_sub, s, NULL) != 0 ||
      pusher_bind(s->c, NULL, "pusher:subscription_error", on_sub, s, NULL) != 0)
    abort();
  for (int k = 0; k < NCH; k++) {
    if (pusher_subscribe(s->c, names[s->group][k]) != 0) abort();
    s->ch[k].want = 1;
  }
  if (pusher_client_connect(s->c) != 0) abort();
}

/* Deliberately delete a client (steady churn, end of run). */
static void client_stop(slot *s) {
  for (int k = 0; k < NCH; k++) close_interval(s, k, 1);
  pusher_client_del(s->c);
  s->c = NULL;
}

/* ------------------------------------------------------------------ convergence */

/* When (seconds since the spawn, < 0 = not yet) every client was first
 * seen connected, and connected with every subscription succeeded. */
static double all_connected_at = -1, all_subscribed_at = -1;

/* 1 when every live client is connected, subscribed to every channel it
 * wants, and every presence list equals the group's subscribers.  why
 * names the first client that is not. */
static int converged(char *why, size_t whylen) {
  int nconn = 0, nsub = 0, live = 0;
  for (int i = 0; i < opt.clients; i++) {
    slot *s = &slots[i];
    if (!s->c) continue;
    live++;
    if (s->state != PUSHER_STATE_CONNECTED) continue;
    nconn++;
    int all = 1;
    for (int k = 0; k < NCH; k++) all &= !s->ch[k].want || s->ch[k].subscribed;
    nsub += all;
  }
  if (nconn == live && all_connected_at < 0) all_connected_at = now_s() - spawned_at;
  if (nsub == live && all_subscribed_at < 0) all_subscribed_at = now_s() - spawned_at;
  for (int i = 0; i < opt.clients; i++) {
    slot *s = &slots[i];
    if (!s->c) continue;
    if (s->state != PUSHER_STATE_CONNECTED) {
      snprintf(why, whylen, "client %d is %s", i, pusher_state_name(s->state));
      return 0;
    }
    for (int k = 0; k < NCH; k++)
      if (s->ch[k].want && !s->ch[k].subscribed) {
        snprintf(why, whylen, "client %d not subscribed to %s", i, names[s->group][k]);
        return 0;
      }
  }
  for (int i = 0; i < opt.clients; i++) {
    slot *s = &slots[i];
    if (!s->c || !s->ch[2].want) continue;
    pusher_members *m = NULL;
    int rc = pusher_channel_members(s->c, names[s->group][2], &m);
    if (rc != 0) {
      snprintf(why, whylen, "client %d: members: %s", i, pusher_err_name(rc));
      return 0;
    }
    size_t truth = 0;
    int ok = 1;
    for (int j = s->group; j < opt.clients; j += opt.groups) {
      if (!slots[j].c || !slots[j].ch[2].want) continue;
      truth++;
      if (!pusher_members_get(m, slots[j].uid)) {
        snprintf(why, whylen, "client %d: %s missing from %s", i, slots[j].uid, names[s->group][2]);
        ok = 0;
        break;
      }
    }
    if (ok && pusher_members_count(m) != truth) {
      snprintf(why, whylen, "client %d: %zu members on %s, truth %zu (a ghost)", i, pusher_members_count(m),
               names[s->group][2], truth);
      ok = 0;
    }
    pusher_members_free(m);
    if (!ok) return 0;
  }
  return 1;
}

/* ------------------------------------------------------------------ RSS */

static long rss_kb(int pid) {
  char path[64];
  if (pid) snprintf(path, sizeof path, "/proc/%d/statm", pid);
  else snprintf(path, sizeof path, "/proc/self/statm");
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long size = 0, res = 0;
  int n = fscanf(f, "%ld %ld", &size, &res);
  fclose(f);
  return n == 2 ? res * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static long *rss_client, *rss_server;
static size_t nrss, caprss;

static void rss_push(long client_kb, long server_kb) {
  if (nrss == caprss) {
    caprss = caprss ? caprss * 2 : 64;
    rss_client = realloc(rss_client, caprss * sizeof *rss_client);
    rss_server = realloc(rss_server, caprss * sizeof *rss_server);
    if (!rss_client || !rss_server) abort();
  }
  rss_client[nrss] = client_kb;
  rss_server[nrss++] = server_kb;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

static long median_of(const long *v, size_t n) {
  long *t = malloc(n * sizeof *t);
  if (!t) abort();
  memcpy(t, v, n * sizeof *t);
  qsort(t, n, sizeof *t, cmp_long);
  long m = t[n / 2];
  free(t);
  return m;
}

/* RSS must not grow across cycles: the median of the last quarter of
 * samples may exceed the median of the second quarter (after warm-up) by
 * at most 10 % + 2 MiB.  pusherd's RSS is only comparable in steady mode
 * (one process); in fault mode each sample is a fresh pusherd. */
static void rss_verdict_of(const char *who, const long *v, int assert_it) {
  long base = median_of(v + nrss / 4, nrss / 4);
  long tail = median_of(v + nrss - nrss / 4, nrss / 4);
  long limit = base + base / 10 + 2048;
  say("RSS verdict: %s median %ld kB (2nd quarter) -> %ld kB (last quarter), limit %ld kB", who, base, tail, limit);
  if (assert_it && tail > limit) violation("%s RSS grew from %ld kB to %ld kB", who, base, tail);
}

static void rss_verdict(void) {
  if (nrss < 8) {
    say("RSS verdict: %zu samples, too few to judge growth", nrss);
    if (opt.rss_check) violation("--rss-check needs at least 8 samples, got %zu", nrss);
    return;
  }
  rss_verdict_of("client", rss_client, opt.rss_check);
  if (opt.duration) rss_verdict_of("pusherd", rss_server, opt.rss_check);
}

/* ------------------------------------------------------------------ pusherd */

static uv_process_t server;
static int server_running, server_pid, logfd = -1;
static uint64_t n_spawn_fail;

static void on_server_exit(uv_process_t *p, int64_t status, int sig);
static int last_signal; /* the signal we last sent pusherd */

static void server_spawn(void) {
  char port[16];
  snprintf(port, sizeof port, "%d", opt.port);
  char *args[] = {(char *)opt.pusherd, "--port", port, "--log-level", "warn", NULL};
  uv_stdio_container_t io[3];
  io[0].flags = UV_IGNORE;
  io[1].flags = io[2].flags = logfd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
  io[1].data.fd = io[2].data.fd = logfd;
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.file = opt.pusherd;
  po.args = args;
  po.exit_cb = on_server_exit;
  po.stdio = io;
  po.stdio_count = 3;
  int rc = uv_spawn(loop, &server, &po);
  if (rc != 0) {
    printf("FAIL: cannot spawn %s: %s\n", opt.pusherd, uv_strerror(rc));
    exit(1);
  }
  server_running = 1;
  server_pid = server.pid;
  spawned_at = now_s();
  all_connected_at = all_subscribed_at = -1;
  max_tick_gap = 0;
  if (opt.pidfile) {
    FILE *f = fopen(opt.pidfile, "w");
    if (f) {
      fprintf(f, "%d\n", server_pid);
      fclose(f);
    }
  }
}

/* ------------------------------------------------------------------ publisher */

static struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_timer_t timeout;
  int busy, done, status;
  int64_t seq;
  unsigned epoch;
  char req[8192];
  size_t reqlen;
  char resp[2048];
  size_t resplen;
} pub;
static char *pub_channels; /* the JSON array of every channel */
static int publishing;

static void pub_closed(uv_handle_t *h) { pub.busy = 0; }

static void pub_finish(int http_status) {
  if (pub.done) return;
  pub.done = 1;
  uv_timer_stop(&pub.timeout);
  uint8_t st;
  if (pub.epoch != fault_epoch) st = ST_FAULT;
  else if (http_status == 200) st = ST_ACKED;
  else st = ST_DOWN;
  seq_st[pub.seq] = st;
  if (st == ST_ACKED) n_acked++;
  else if (st == ST_FAULT) n_fault++;
  else n_down++;
  uv_close((uv_handle_t *)&pub.tcp, pub_closed);
}

/* The reply is complete when the headers and Content-Length bytes are in:
 * returns the status code then, -1 before, 0 for garbage. */
static int pub_parse(void) {
  pub.resp[pub.resplen] = '\0';
  char *hend = strstr(pub.resp, "\r\n\r\n");
  if (!hend) return -1;
  int code = 0;
  if (sscanf(pub.resp, "HTTP/1.%*d %d", &code) != 1) return 0;
  size_t clen = 0;
  for (char *p = strstr(pub.resp, "\r\n"); p && p < hend; p = strstr(p + 2, "\r\n"))
    if (strncasecmp(p + 2, "Content-Length:", 15) == 0) clen = strtoul(p + 17, NULL, 10);
  if ((size_t)(pub.resp + pub.resplen - (hend + 4)) < clen) return -1;
  return code;
}

static void pub_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  b->base = pub.resp + pub.resplen;
  b->len = sizeof pub.resp - 1 - pub.resplen;
}

static void pub_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  if (n > 0) pub.resplen += (size_t)n;
  int code = pub_parse();
  if (code >= 0) pub_finish(code);
  else if (n < 0 || pub.resplen >= sizeof pub.resp - 1) pub_finish(0);
}

static void pub_written(uv_write_t *w, int status) {
  if (status != 0) pub_finish(0);
}

static void pub_connected(uv_connect_t *r, int status) {
  if (pub.done) return;
  if (status != 0) {
    pub_finish(0);
    return;
  }
  uv_buf_t b = uv_buf_init(pub.req, (unsigned)pub.reqlen);
  if (uv_write(&pub.wreq, (uv_stream_t *)&pub.tcp, &b, 1, pub_written) != 0 ||
      uv_read_start((uv_stream_t *)&pub.tcp, pub_alloc, pub_read) != 0)
    pub_finish(0);
}

static void pub_timed_out(uv_timer_t *t) { pub_finish(0); }

static void pub_send(void) {
  char body[4096], *query = NULL;
  int64_t seq = next_seq;
  seq_reserve(seq);
  snprintf(body, sizeof body, "{\"name\":\"seq\",\"channels\":%s,\"data\":\"%" PRId64 "\"}", pub_channels, seq);
  const char *path = "/apps/" APP_ID "/events";
  if (pusher__rest_sign(NULL, "POST", path, NULL, 0, body, strlen(body), APP_KEY, APP_SECRET,
                        (int64_t)time(NULL), &query, NULL) != 0)
    abort();
  pub.reqlen = (size_t)snprintf(pub.req, sizeof pub.req,
                                "POST %s?%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                path, query, opt.port, strlen(body), body);
  pusher__free(NULL, query);
  next_seq++;
  pub.seq = seq;
  pub.epoch = fault_epoch;
  pub.busy = 1;
  pub.done = 0;
  pub.resplen = 0;
  seq_st[seq] = ST_PENDING;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", opt.port, &sa);
  uv_tcp_init(loop, &pub.tcp);
  uv_timer_start(&pub.timeout, pub_timed_out, 3000, 0);
  if (uv_tcp_connect(&pub.creq, &pub.tcp, (const struct sockaddr *)&sa, pub_connected) != 0) pub_finish(0);
}

static uv_timer_t pub_timer;
static void pub_tick(uv_timer_t *t) {
  if (publishing && !pub.busy) pub_send();
}

/* ------------------------------------------------------------------ fault cycle */

static char *plan; /* 'k' or 't' per cycle */
static int ncycles, cycle;
static double phase_deadline, *conv_ms;
static int nconv, bound_missed, nstorm;
static double storm_at; /* fault this cycle before convergence (0 = no) */
static uv_timer_t tick;
static double next_rss, steady_end, quiesce_start;
static int churn_slot = -1, churn_action;
static double next_churn;

static void server_fault(void) {
  char kind = plan[cycle];
  fault_epoch++;
  max_retry_delay = 0;
  phase = P_WAIT_EXIT;
  phase_deadline = now_s() + 10; /* pusherd drains for shutdown_grace_ms (3 s) at most */
  say("fault %d/%d: %s pusherd pid %d", cycle + 1, ncycles, kind == 'k' ? "SIGKILL" : "SIGTERM", server_pid);
  last_signal = kind == 'k' ? SIGKILL : SIGTERM;
  uv_process_kill(&server, last_signal);
}

static void server_closed(uv_handle_t *h) {
  server_running = 0;
  if (phase == P_WAIT_EXIT) {
    phase = P_DOWN;
    phase_deadline = now_s() + rnd_between(0, opt.down_max);
  }
}

/* A SIGTERMed pusherd drains and exits 0 (pusherd --help); under ASan a
 * leak or an error at exit makes the status non-zero. */
static void on_server_exit(uv_process_t *p, int64_t status, int sig) {
  if (last_signal == SIGTERM && (status != 0 || sig != 0))
    violation("pusherd pid %d exited with status %" PRId64 ", signal %d after SIGTERM (want 0)", server_pid, status,
              sig);
  last_signal = 0;
  if (phase != P_WAIT_EXIT && phase != P_FINAL) {
    /* pusherd died on its own (or could not bind: try again shortly) */
    violation("pusherd pid %d exited unexpectedly (status %" PRId64 ", signal %d)", server_pid, status, sig);
    n_spawn_fail++;
    fault_epoch++;
    if (opt.duration) begin_final();
    else phase = P_WAIT_EXIT;
  }
  uv_close((uv_handle_t *)p, server_closed);
}

static void report_stuck(void) {
  int shown = 0;
  for (int i = 0; i < opt.clients && shown < 10; i++) {
    slot *s = &slots[i];
    if (!s->c) continue;
    int bad = s->state != PUSHER_STATE_CONNECTED;
    for (int k = 0; k < NCH; k++) bad |= s->ch[k].want && !s->ch[k].subscribed;
    if (!bad) continue;
    shown++;
    say("  client %d: %s, subscribed %d%d%d", i, pusher_state_name(s->state), s->ch[0].subscribed,
        s->ch[1].subscribed, s->ch[2].subscribed);
  }
}

/* A slow cycle: print the connection events of the client that connected
 * last, relative to the spawn. */
static void explain_slow(void) {
  slot *last = NULL;
  for (int i = 0; i < opt.clients; i++)
    if (slots[i].c && (!last || slots[i].connected_at > last->connected_at)) last = &slots[i];
  if (!last) return;
  say("  slowest: client %d connected %.0f ms after the spawn; its last events (ms since the spawn):", last->idx,
      (last->connected_at - spawned_at) * 1000);
  unsigned n = last->ntrace < 12 ? last->ntrace : 12;
  for (unsigned j = last->ntrace - n; j < last->ntrace; j++)
    say("    %7.0f  %s", (last->trace[j % 12].t - spawned_at) * 1000, last->trace[j % 12].what);
}

static void cycle_converged(double ms) {
  conv_ms[nconv++] = ms;
  long rc = rss_kb(0), rs = rss_kb(server_pid);
  rss_push(rc, rs);
  const char *kind = cycle == 0 ? "start" : plan[cycle - 1] == 'k' ? "kill" : "term";
  say("CYCLE %d kind=%s conv_ms=%.0f connected_ms=%.0f subscribed_ms=%.0f max_retry_ms=%.0f tick_gap_ms=%.0f"
      " rss_client_kb=%ld rss_pusherd_kb=%ld seq=%" PRId64 " down=%" PRIu64 " fault=%" PRIu64,
      cycle, kind, ms, all_connected_at * 1000, all_subscribed_at * 1000, max_retry_delay * 1000,
      max_tick_gap * 1000, rc, rs, next_seq - 1, n_down, n_fault);
}

/* ------------------------------------------------------------------ steady churn */

static void churn_undo(void) {
  if (churn_slot < 0) return;
  slot *s = &slots[churn_slot];
  if (churn_action == 1) {
    pusher_client_connect(s->c);
  } else if (churn_action == 2) {
    int k = (churn_slot / opt.groups) % NCH;
    if (pusher_subscribe(s->c, names[s->group][k]) == 0) s->ch[k].want = 1;
  }
  churn_slot = -1;
}

static void churn_do(void) {
  int i = (int)(rnd01() * opt.clients);
  slot *s = &slots[i];
  int a = (int)(rnd01() * 3);
  churn_slot = i;
  churn_action = a;
  if (a == 0) {
    client_stop(s);
    client_start(s);
  } else if (a == 1) {
    s->deliberate = 1;
    pusher_client_disconnect(s->c);
  } else {
    int k = (i / opt.groups) % NCH;
    close_interval(s, k, 1);
    s->ch[k].want = 0;
    pusher_unsubscribe(s->c, names[s->group][k]);
  }
}

/* --fault-churn: disturb clients while pusherd is up, dying or down. */
static void fault_churn(double t) {
  if (!opt.fault_churn) return;
  if (phase == P_UP || phase == P_WAIT_EXIT || phase == P_DOWN) {
    if (t >= next_churn) {
      churn_undo();
      churn_do();
      next_churn = t + opt.churn_ms / 1000;
    }
  } else {
    churn_undo();
  }
}

static void tick_fault(double t) {
  char why[256];
  fault_churn(t);
  switch (phase) {
  case P_CONVERGE:
    if (storm_at > 0 && t >= storm_at) {
      storm_at = 0;
      nstorm++;
      say("storm: faulting %.0f ms after the spawn, before convergence", (t - spawned_at) * 1000);
      server_fault();
      return;
    }
    if (converged(why, sizeof why)) {
      double ms = (t - spawned_at) * 1000;
      cycle_converged(ms);
      if (ms > opt.bound * 1000 / 2) explain_slow();
      if (ms > opt.bound * 1000) {
        bound_missed++;
        violation("converged in %.0f ms, over the bound of %.0f ms", ms, opt.bound * 1000);
      }
      if (cycle >= ncycles) {
        begin_final();
        return;
      }
      phase = P_UP;
      phase_deadline = t + rnd_between(opt.up_min, opt.up_max);
    } else if (t - spawned_at > opt.hard_bound) {
      violation("no convergence %.0f s after the restart: %s", opt.hard_bound, why);
      report_stuck();
      begin_final();
    }
    break;
  case P_UP:
    if (t >= phase_deadline) server_fault();
    break;
  case P_WAIT_EXIT:
    if (t >= phase_deadline && server_running) {
      violation("pusherd pid %d still running 10 s after the signal; SIGKILL", server_pid);
      last_signal = SIGKILL;
      uv_process_kill(&server, SIGKILL);
      phase_deadline = t + 10;
    }
    break;
  case P_DOWN:
    if (t >= phase_deadline && !server_running) {
      churn_undo();
      cycle++;
      server_spawn();
      phase = P_CONVERGE;
      storm_at = 0;
      if (cycle < ncycles && rnd01() < opt.storm) storm_at = spawned_at + rnd_between(0.02, 1.0);
    }
    break;
  default: break;
  }
}

static void tick_steady(double t) {
  char why[256];
  if (phase == P_CONVERGE) {
    if (converged(why, sizeof why)) {
      cycle_converged((t - spawned_at) * 1000);
      phase = P_STEADY;
      next_rss = t + opt.rss_every;
      next_churn = t;
    } else if (t - spawned_at > opt.hard_bound) {
      violation("no convergence at start: %s", why);
      begin_final();
    }
    return;
  }
  if (phase == P_STEADY) {
    if (t >= next_churn) {
      churn_undo();
      churn_do();
      next_churn = t + opt.churn_ms / 1000;
    }
    if (t >= next_rss || t >= steady_end) {
      churn_undo();
      phase = P_QUIESCE;
      quiesce_start = t;
    }
    return;
  }
  if (phase == P_QUIESCE) {
    if (converged(why, sizeof why)) {
      double ms = (t - quiesce_start) * 1000;
      long rc = rss_kb(0), rs = rss_kb(server_pid);
      rss_push(rc, rs);
      conv_ms[nconv++] = ms;
      say("RSS t=%.0f client_kb=%ld pusherd_kb=%ld conv_ms=%.0f seq=%" PRId64 " got=%" PRIu64, t - t0, rc, rs, ms,
          next_seq - 1, tot.got);
      if (ms > opt.bound * 1000) {
        bound_missed++;
        violation("converged in %.0f ms after the churn paused, over the bound", ms);
      }
      if (t >= steady_end) {
        begin_final();
        return;
      }
      phase = P_STEADY;
      next_rss = t + opt.rss_every;
    } else if (t - quiesce_start > opt.hard_bound) {
      violation("no convergence %.0f s after the churn paused: %s", opt.hard_bound, why);
      report_stuck();
      begin_final();
    }
  }
}

/* ------------------------------------------------------------------ final */

static double final_start;
static int final_step;

static void begin_final(void) {
  phase = P_FINAL;
  publishing = 0;
  final_start = now_s();
  final_step = 0;
}

/* Every subscribed channel has the last seq (or the deadline passed). */
static int drained(void) {
  int64_t last_acked = 0;
  for (int64_t x = next_seq - 1; x >= 1; x--)
    if (seq_st[x] == ST_ACKED) {
      last_acked = x;
      break;
    }
  for (int i = 0; i < opt.clients; i++) {
    if (!slots[i].c) continue;
    for (int k = 0; k < NCH; k++) {
      chan *ch = &slots[i].ch[k];
      if (ch->subscribed && required(ch, last_acked) && ch->last < last_acked) return 0;
    }
  }
  return 1;
}

static double *conv_sorted(void) {
  double *v = malloc((size_t)(nconv ? nconv : 1) * sizeof *v);
  if (!v) abort();
  memcpy(v, conv_ms, (size_t)nconv * sizeof *v);
  for (int i = 1; i < nconv; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double x = v[j];
      v[j] = v[j - 1];
      v[j - 1] = x;
    }
  return v;
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish_run(void) {
  for (int i = 0; i < opt.clients; i++) {
    if (!slots[i].c) continue;
    for (int k = 0; k < NCH; k++) settle_tail(&slots[i], k);
  }
  double *v = conv_sorted();
  say("SOAK clients=%d groups=%d cycles=%d kills=%d terms=%d published=%" PRId64 " acked=%" PRIu64
      " down=%" PRIu64 " fault=%" PRIu64,
      opt.clients, opt.groups, cycle, opt.duration ? 0 : opt.kills, opt.duration ? 0 : opt.terms, next_seq - 1,
      n_acked, n_down, n_fault);
  say("SOAK received=%" PRIu64 " lost_down=%" PRIu64 " lost_fault=%" PRIu64 " lost_not_subscribed=%" PRIu64
      " missing_required=%" PRIu64 " duplicates=%" PRIu64 " reordered=%" PRIu64,
      tot.got, tot.lost_down, tot.lost_fault, tot.lost_unsub, tot.missing_required, tot.dups, tot.reordered);
  say("SOAK convergence_ms n=%d min=%.0f median=%.0f max=%.0f bound=%.0f over_bound=%d", nconv,
      nconv ? v[0] : 0, nconv ? v[nconv / 2] : 0, nconv ? v[nconv - 1] : 0, opt.bound * 1000, bound_missed);
  say("SOAK storm_faults=%d (faulted 20..1000 ms after the spawn, before convergence) unavailable_entries=%" PRIu64,
      nstorm, tot.unavailable_entries);
  say("SOAK unexpected_disconnects=%" PRIu64 " subscription_errors=%" PRIu64 " events_while_unsubscribed=%" PRIu64
      " server_died=%" PRIu64,
      tot.unexpected_disconnects, tot.sub_errors, tot.not_subscribed_events, n_spawn_fail);
  free(v);
  rss_verdict();
  if (!opt.duration && cycle < ncycles) violation("only %d of %d cycles ran", cycle, ncycles);
  for (int i = 0; i < opt.clients; i++)
    if (slots[i].c) client_stop(&slots[i]);
  phase = P_FINAL;
  final_step = 3;
  if (server_running) {
    last_signal = SIGTERM;
    uv_process_kill(&server, SIGTERM);
  }
  uv_timer_stop(&tick);
  uv_timer_stop(&pub_timer);
}

static void on_tick(uv_timer_t *h) {
  double t = now_s();
  if (last_tick > 0 && t - last_tick > max_tick_gap) max_tick_gap = t - last_tick;
  last_tick = t;
  if (phase == P_FINAL) {
    if (final_step == 0) { /* wait for the POST in flight */
      if (!pub.busy) final_step = 1;
      else if (t - final_start > 10) violation("publisher stuck at the end");
      return;
    }
    if (final_step == 1) {
      if (drained() || t - final_start > 10 * (opt.bound > 1 ? opt.bound : 1)) {
        if (!drained()) violation("the last events did not arrive within the drain deadline");
        final_step = 2;
        finish_run();
      }
    }
    return;
  }
  if (opt.duration) tick_steady(t);
  else tick_fault(t);
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
  fprintf(stderr, "usage: soak_client --pusherd PATH --port P [--clients N] [--groups G] [--kills K] [--terms T]\n"
                  "  [--rate R] [--up MIN,MAX] [--down MAX] [--bound S] [--hard-bound S] [--seed N]\n"
                  "  [--duration S] [--churn MS] [--rss-every S] [--rss-check] [--server-log FILE] [--pidfile FILE]\n"
                  "  [--inject-drop N] [--storm P] [--unavailable S] [--fault-churn]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--rss-check") == 0 || strcmp(a, "--fault-churn") == 0) {
      if (a[2] == 'r') opt.rss_check = 1;
      else opt.fault_churn = 1;
      continue;
    }
    if (!v) usage();
    i++;
    if (strcmp(a, "--pusherd") == 0) opt.pusherd = v;
    else if (strcmp(a, "--port") == 0) opt.port = atoi(v);
    else if (strcmp(a, "--clients") == 0) opt.clients = atoi(v);
    else if (strcmp(a, "--groups") == 0) opt.groups = atoi(v);
    else if (strcmp(a, "--kills") == 0) opt.kills = atoi(v);
    else if (strcmp(a, "--terms") == 0) opt.terms = atoi(v);
    else if (strcmp(a, "--rate") == 0) opt.rate = atof(v);
    else if (strcmp(a, "--up") == 0) {
      if (sscanf(v, "%lf,%lf", &opt.up_min, &opt.up_max) != 2) usage();
    } else if (strcmp(a, "--down") == 0) opt.down_max = atof(v);
    else if (strcmp(a, "--bound") == 0) opt.bound = atof(v);
    else if (strcmp(a, "--hard-bound") == 0) opt.hard_bound = atof(v);
    else if (strcmp(a, "--seed") == 0) opt.seed = (unsigned)strtoul(v, NULL, 10);
    else if (strcmp(a, "--duration") == 0) opt.duration = atof(v);
    else if (strcmp(a, "--churn") == 0) opt.churn_ms = atof(v);
    else if (strcmp(a, "--rss-every") == 0) opt.rss_every = atof(v);
    else if (strcmp(a, "--server-log") == 0) opt.server_log = v;
    else if (strcmp(a, "--pidfile") == 0) opt.pidfile = v;
    else if (strcmp(a, "--inject-drop") == 0) opt.inject_drop = atoi(v);
    else if (strcmp(a, "--storm") == 0) opt.storm = atof(v);
    else if (strcmp(a, "--unavailable") == 0) opt.unavailable_timeout = atof(v);
    else usage();
  }
  if (!opt.pusherd || opt.port <= 0 || opt.clients < 1 || opt.groups < 1 || opt.groups > 33 || opt.rate <= 0)
    usage();
  /* The bound (README): a client's retry waits at most max_reconnect_delay
   * once the server is back; 4 s more cover pusherd's start, the
   * handshakes, three subscriptions and the presence exchange of every
   * client on a loaded 2-core machine. */
  if (opt.bound <= 0) opt.bound = opt.max_reconnect_delay + 4;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  t0 = now_s();
  rng_state = opt.seed;
  loop = uv_default_loop();
  if (opt.server_log) logfd = open(opt.server_log, O_WRONLY | O_CREAT | O_APPEND, 0644);

  names = calloc((size_t)opt.groups, sizeof *names);
  size_t cap = (size_t)opt.groups * NCH * 80 + 4;
  pub_channels = malloc(cap);
  if (!names || !pub_channels) abort();
  strcpy(pub_channels, "[");
  for (int g = 0; g < opt.groups; g++) {
    snprintf(names[g][0], 64, "soak-%d", g);
    snprintf(names[g][1], 64, "private-soak-%d", g);
    snprintf(names[g][2], 64, "presence-soak-%d", g);
    for (int k = 0; k < NCH; k++) {
      strcat(pub_channels, g || k ? ",\"" : "\"");
      strcat(pub_channels, names[g][k]);
      strcat(pub_channels, "\"");
    }
  }
  strcat(pub_channels, "]");

  ncycles = opt.duration ? 0 : opt.kills + opt.terms;
  plan = calloc((size_t)ncycles + 1, 1);
  conv_ms = calloc((size_t)ncycles + 2 + (size_t)(opt.duration / (opt.rss_every > 0 ? opt.rss_every : 1)) + 2,
                   sizeof *conv_ms);
  if (!plan || !conv_ms) abort();
  for (int i = 0; i < ncycles; i++) plan[i] = i < opt.kills ? 'k' : 't';
  for (int i = ncycles - 1; i > 0; i--) {
    int j = (int)(rnd01() * (i + 1));
    char x = plan[i];
    plan[i] = plan[j];
    plan[j] = x;
  }

  slots = calloc((size_t)opt.clients, sizeof *slots);
  if (!slots) abort();
  server_spawn();
  for (int i = 0; i < opt.clients; i++) {
    slots[i].idx = i;
    slots[i].group = i % opt.groups;
    snprintf(slots[i].uid, sizeof slots[i].uid, "u%d", i);
    client_start(&slots[i]);
  }
  say("soak: %d clients in %d groups, pusherd pid %d on :%d, %s, bound %.1f s, seed %u", opt.clients, opt.groups,
      server_pid, opt.port, opt.duration ? "steady" : "faults", opt.bound, opt.seed);
  if (opt.duration) steady_end = now_s() + opt.duration;
  phase = P_CONVERGE;
  publishing = 1;
  uv_timer_init(loop, &pub.timeout);
  uv_timer_init(loop, &pub_timer);
  uv_timer_start(&pub_timer, pub_tick, 1, (uint64_t)(1000 / opt.rate) ? (uint64_t)(1000 / opt.rate) : 1);
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 20, 20);
  uv_run(loop, UV_RUN_DEFAULT);
  /* Everything is closed: the clients by pusher_client_del, pusherd has
   * exited (its handle closed in server_closed), the timers below. */
  uv_walk(loop, close_walk, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) violation("uv_loop_close: handles left open");
  free(slots);
  free(names);
  free(pub_channels);
  free(plan);
  free(conv_ms);
  free(rss_client);
  free(rss_server);
  free(seq_st);
  if (logfd >= 0) close(logfd);
  if (failures) {
    printf("FAIL: %d violations\n", failures);
    return 1;
  }
  printf("PASS\n");
  return 0;
}
