/* `pusher bench`: a load generator and latency meter for any Pusher
 * Channels server (options in args.c, `pusher bench --help`, pusher(1)).
 *
 * Subscribers: N libpusher clients in loop mode on one libuv loop (this
 * thread), at most --connect-concurrency of them connecting at a time.  A
 * subscriber that reports an error before its subscription succeeded is
 * counted as a connect failure and disconnected (no retry: a benchmark
 * wants to know); one that fails later is counted as a disconnect.
 *
 * Threads (--threads T): one loop reads one delivery after another, so
 * with N subscribers per event the last one sees it N reads after the
 * first, whatever the server does.  With T > 1 the subscribers are split
 * into T shards, subscriber k in shard k % T: shard 0 on this thread's
 * loop, shards 1..T-1 each on a loop of its own in a thread of its own
 * (shard_main).  A shard owns its clients, its histograms and counters and
 * its share of --connect-concurrency (K/T, the remainder spread, at least
 * 1: the bound stays K overall, or T if T > K, with no cross-thread
 * wake-up).  Phases stay with this thread:
 * a shard that has connected everyone it can sets `settled` and wakes this
 * loop; when all have, it opens the stalled sockets (on this thread),
 * samples the server and starts the publishers; finish() stops the other
 * loops with their `quit` async.  While the run goes on this thread reads
 * only the shards' live_* counters (atomics only their shard writes); the
 * rest is merged once their threads are joined (merge_shards), and their
 * clients and loops are closed by this thread after that.  Each loop's CPU
 * time is read from its thread's CPU clock.  T = 1 is one shard on this
 * thread: no extra thread.
 *
 * Publishers: --publishers threads, each with its own pusher_rest handle
 * (include/pusher/rest.h is synchronous, so it must not run on the loop
 * thread).  They take event numbers from one counter, pace them at --rate,
 * stamp each event with the clock just before the request, and publish it.
 *
 * Measuring: the loop thread (each loop's, with --threads) parses each event's stamp and records the
 * latency in a fixed-memory log-linear histogram (no per-sample storage);
 * per subscriber it keeps the highest sequence seen and a 64-event window,
 * enough to tell duplicates from late (out-of-order) events.  With
 * --server-pid the server's /proc files are sampled before connecting, when
 * all are subscribed and at the end.
 *
 * Stalled subscribers (--stalled): raw WebSocket sockets, opened once the
 * readers are subscribed and then never read until the end; see
 * "stalled subscribers" below.  Not in the latency and loss figures.
 *
 * Threads share: the event counter and the first HTTP error (under mu), a
 * few atomic counters, and the read-only per-channel subscriber counts
 * taken when publishing starts.  Publishers and shards wake the main loop
 * with uv_async (b->wake). */
#include <pusher/pusher.h>
#include <pusher/rest.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"

/* ------------------------------------------------------------------ clocks */

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static double cpu_thread_s(void) { return (double)clock_ns(CLOCK_THREAD_CPUTIME_ID) / 1e9; }
static double cpu_process_s(void) { return (double)clock_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e9; }

/* ------------------------------------------------------------------ histogram */

/* Log-linear buckets, as HdrHistogram does: values below 128 exactly, then
 * each power of two [2^b, 2^(b+1)) cut into 64 equal buckets, so a bucket's
 * width is at most 1/64 of its values (about 1.6 %).  Covers all of
 * uint64_t in 3776 counters (30 KiB). */
#define H_LINEAR 128
#define H_SUB 64
#define H_BUCKETS (H_LINEAR + 57 * H_SUB)

typedef struct hist {
  uint64_t n[H_BUCKETS];
  uint64_t count, min, max;
  double sum;
} hist;

static size_t h_index(uint64_t v) {
  if (v < H_LINEAR) return (size_t)v;
  int b = 63 - __builtin_clzll(v); /* >= 7 */
  int shift = b - 6;               /* v >> shift is in [64, 128) */
  return H_LINEAR + (size_t)(shift - 1) * H_SUB + (size_t)((v >> shift) - H_SUB);
}

/* The highest value that lands in bucket i. */
static uint64_t h_upper(size_t i) {
  if (i < H_LINEAR) return i;
  unsigned shift = (unsigned)((i - H_LINEAR) / H_SUB) + 1;
  uint64_t m = (i - H_LINEAR) % H_SUB + H_SUB;
  return ((m + 1) << shift) - 1;
}

static void h_init(hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static void h_add(hist *h, uint64_t v) {
  h->n[h_index(v)]++;
  h->count++;
  h->sum += (double)v;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

static void h_merge(hist *into, const hist *from) {
  for (size_t i = 0; i < H_BUCKETS; i++) into->n[i] += from->n[i];
  into->count += from->count;
  into->sum += from->sum;
  if (from->min < into->min) into->min = from->min;
  if (from->max > into->max) into->max = from->max;
}

/* The value at quantile q (0..1]: the upper end of the bucket holding the
 * ceil(q * count)-th smallest value, never above the exact maximum. */
static uint64_t h_quantile(const hist *h, double q) {
  if (h->count == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->count);
  if ((double)rank < q * (double)h->count) rank++;
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < H_BUCKETS; i++) {
    seen += h->n[i];
    if (seen >= rank) {
      uint64_t u = h_upper(i);
      return u < h->max ? u : h->max;
    }
  }
  return h->max;
}

/* ------------------------------------------------------------------ /proc */

typedef struct proc_sample {
  int ok;
  double cpu_s;        /* utime + stime */
  long rss_kb, hwm_kb; /* VmRSS, VmHWM */
} proc_sample;

static proc_sample sample_proc(long pid) {
  proc_sample s = {0, 0, -1, -1};
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return s;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and ')': fields count from
   * the last ')'.  utime and stime are fields 14 and 15, in clock ticks. */
  char *p = strrchr(buf, ')');
  if (p == NULL) return s;
  unsigned long long ut = 0, st = 0;
  int field = 2;
  char *save = NULL;
  for (char *t = strtok_r(p + 1, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
    field++;
    if (field == 14) ut = strtoull(t, NULL, 10);
    if (field == 15) {
      st = strtoull(t, NULL, 10);
      break;
    }
  }
  if (field != 15) return s;
  s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  f = fopen(path, "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "VmRSS:", 6) == 0) s.rss_kb = strtol(line + 6, NULL, 10);
      if (strncmp(line, "VmHWM:", 6) == 0) s.hwm_kb = strtol(line + 6, NULL, 10);
    }
    fclose(f);
  }
  s.ok = 1;
  return s;
}

/* ------------------------------------------------------------------ state */

enum sub_state { S_IDLE, S_CONNECTING, S_CONNECTED, S_SUBSCRIBED, S_FAILED, S_CLOSED };
enum phase { P_CONNECT, P_PUBLISH, P_DONE };

struct bench;
struct shard;
struct stalled;

typedef struct sub {
  struct shard *sh;
  pusher_client *c;
  uint32_t chan;
  uint8_t state;
  uint64_t t_start; /* pusher_client_connect() */
  uint64_t hi;      /* 1 + the highest per-channel sequence received (0: none) */
  uint64_t win;     /* bit d: sequence hi-1-d was received (d < 64) */
} sub;

/* One event loop and the subscribers on it (--threads; see "Threads" in
 * the header).  Everything here is touched only by the shard's own thread,
 * except: the atomics, which it alone writes and the main thread reads
 * while the run goes on (live_*), settled (release/acquire: after it,
 * chan_subs no longer changes and the main thread may read it), and the
 * rest, which the main thread reads once the thread has been joined. */
typedef struct shard {
  struct bench *b;
  int idx;
  uv_loop_t *loop; /* &b->loop for shard 0, &own_loop for the others */
  uv_loop_t own_loop;
  uv_async_t quit; /* shards > 0: finish() asks the loop to stop */
  pthread_t tid;
  int thread_started;
  int have_cpu_clock;
  clockid_t cpu_clock; /* this thread's CPU clock, read by the main thread */

  sub *subs; /* subscribers idx, idx + T, idx + 2T, ... */
  long n;    /* how many */
  long conc; /* its share of --connect-concurrency */
  long started, connected, disconnects;
  atomic_long live_subscribed, live_failed;
  atomic_int settled;  /* 1: connecting is over on this loop */
  int settled_here;    /* the same, this thread's copy */
  long *chan_subs;     /* subscribed per channel */
  char first_error[300];
  uint64_t first_error_t;
  hist connect_h, subscribe_h;
  atomic_uint_fast64_t live_progress; /* mono_ns of the last subscription, failure or delivery */

  hist lat;
  atomic_uint_fast64_t live_received, live_unique;
  uint64_t duplicates, out_of_order, foreign, t_last_delivery;

  double loop_cpu0, loop_cpu; /* read by the main thread (start_publishing, finish) */
} shard;

typedef struct publisher {
  struct bench *b;
  pthread_t tid;
  int started;
  pusher_rest *rest;
  hist req; /* request times, ns */
} publisher;

typedef struct bench {
  const cli_bench_args *a;
  uv_loop_t loop;
  uv_timer_t tick;
  uv_async_t wake;
  uv_signal_t sigint, sigterm;
  int progress;
  int phase;
  clockid_t stamp_clock;

  /* the event loops: shards[0] runs on loop, in this thread */
  shard **shards;
  int nshards;

  /* main thread only */
  char first_error[300]; /* a stalled subscriber's; merged with the shards' */
  uint64_t first_error_t;
  uint64_t t_start, t_all_subscribed, t_last_progress;

  /* totals over the shards, filled by merge_shards() after the run */
  long started, connected, subscribed, failed, disconnects;
  hist connect_h, subscribe_h; /* ns from pusher_client_connect() */
  hist lat;
  uint64_t received, duplicates, out_of_order, foreign, t_last_delivery;
  double loop_cpu_max, loop_cpu_sum;

  /* publishing (shared) */
  const long *chan_expect; /* per channel: subscribers when publishing started */
  publisher *pubs;
  pthread_mutex_t mu;
  uint64_t next_event;         /* under mu */
  int pubs_done;               /* under mu */
  char first_http_error[600];  /* under mu */
  hist req;                    /* under mu: merged at each publisher's end */
  double pub_cpu_s;            /* under mu */
  atomic_int stop;
  atomic_uint_fast64_t triggered, requests, http_errors, expected, t_first_trigger, t_last_reply;
  uint64_t t_pub0; /* set before the threads start: rate pacing origin */
  uint64_t planned; /* deliveries expected when every event is published */

  /* stalled subscribers (main thread only; --stalled) */
  struct stalled *stalled;
  long stalled_subscribed;
  int stalled_failed;
  uint64_t stamp_pub0; /* stamp clock when publishing started */

  /* samples */
  proc_sample srv_before, srv_idle, srv_end;
  long self_rss_before, self_rss_idle;
  double self_cpu0;
  double self_cpu;
  uint64_t t_end;
  int interrupted, timed_out;
} bench;

static const char BENCH_EVENT[] = "bench";

/* ------------------------------------------------------------------ helpers */

/* VmRSS (or VmHWM with peak) of this process, KiB.  VmHWM, unlike
 * getrusage's ru_maxrss, is never below the current VmRSS. */
static long self_rss_kb(int peak) {
  FILE *f = fopen("/proc/self/status", "r");
  long kb = -1;
  char line[256];
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, peak ? "VmHWM:" : "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static void chan_name(const bench *b, uint32_t i, char *out, size_t n) {
  snprintf(out, n, "%s-%" PRIu32, b->a->channel_prefix, i);
}

static void progress_clear(bench *b) {
  if (b->progress) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
}

/* A counter one thread writes and others read: a plain load and store (no
 * locked instruction on the delivery path), atomic so that readers see
 * whole values. */
static void bump_l(atomic_long *x, long d) {
  atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + d, memory_order_relaxed);
}
static void bump_u(atomic_uint_fast64_t *x) {
  atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + 1, memory_order_relaxed);
}
static long peek_l(atomic_long *x) { return atomic_load_explicit(x, memory_order_relaxed); }
static uint64_t peek_u(atomic_uint_fast64_t *x) {
  return (uint64_t)atomic_load_explicit(x, memory_order_relaxed);
}
static void touch(shard *sh, uint64_t now) {
  atomic_store_explicit(&sh->live_progress, now, memory_order_relaxed);
}

/* Live sums over the shards, for the main thread while the run goes on. */
static long sum_subscribed(bench *b) {
  long n = 0;
  for (int i = 0; i < b->nshards; i++) n += peek_l(&b->shards[i]->live_subscribed);
  return n;
}
static long sum_failed(bench *b) {
  long n = 0;
  for (int i = 0; i < b->nshards; i++) n += peek_l(&b->shards[i]->live_failed);
  return n;
}
static uint64_t sum_received(bench *b, int unique) {
  uint64_t n = 0;
  for (int i = 0; i < b->nshards; i++)
    n += peek_u(unique ? &b->shards[i]->live_unique : &b->shards[i]->live_received);
  return n;
}

static void progress_line(bench *b) {
  if (!b->progress) return;
  if (b->phase == P_CONNECT)
    fprintf(stderr, "\r\033[Kconnecting: %ld/%ld subscribed, %ld failed", sum_subscribed(b),
            b->a->subscribers, sum_failed(b));
  else
    fprintf(stderr, "\r\033[Kpublishing: %" PRIu64 "/%ld events, %" PRIu64 "/%" PRIu64 " deliveries",
            (uint64_t)atomic_load(&b->triggered), b->a->events, sum_received(b, 0), b->planned);
  fflush(stderr);
}

static void vnote(char *dst, size_t n, uint64_t *when, const char *fmt, va_list ap) {
  if (dst[0]) return;
  vsnprintf(dst, n, fmt, ap);
  *when = mono_ns();
}

/* The first error of the main thread (stalled subscribers) or of a shard;
 * the report shows the earliest of them. */
static void note_error(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(bench *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vnote(b->first_error, sizeof b->first_error, &b->first_error_t, fmt, ap);
  va_end(ap);
}
static void shard_error(shard *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void shard_error(shard *sh, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vnote(sh->first_error, sizeof sh->first_error, &sh->first_error_t, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ subscribers */

static void start_more(shard *sh);
static void shard_check(shard *sh);
static void maybe_advance(bench *b);

/* End a subscriber's run: no retry. */
static void sub_stop(sub *s, int state) {
  s->state = (uint8_t)state;
  pusher_client_disconnect(s->c);
}

static void sub_failed(sub *s, const char *why) {
  shard *sh = s->sh;
  if (s->state == S_FAILED || s->state == S_CLOSED) return;
  if (s->state == S_SUBSCRIBED) {
    sh->disconnects++;
    shard_error(sh, "subscriber %ld lost its connection: %s",
                (long)(s - sh->subs) * sh->b->nshards + sh->idx, why);
    sub_stop(s, S_CLOSED);
    return;
  }
  bump_l(&sh->live_failed, 1);
  shard_error(sh, "%s", why);
  sub_stop(s, S_FAILED);
  touch(sh, mono_ns());
  start_more(sh);
  shard_check(sh);
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *user) {
  sub *s = user;
  (void)c;
  if (s->state == S_FAILED || s->state == S_CLOSED) return;
  if (strcmp(ev->name, "error") == 0) {
    char why[260];
    if (ev->code)
      snprintf(why, sizeof why, "%s (code %d)", ev->message ? ev->message : "error", ev->code);
    else
      snprintf(why, sizeof why, "%s", ev->message ? ev->message : pusher_strerror(ev->error));
    sub_failed(s, why);
  } else if (strcmp(ev->name, "state_change") == 0) {
    if (ev->current == PUSHER_STATE_CONNECTED && s->state == S_CONNECTING) {
      s->state = S_CONNECTED;
      s->sh->connected++;
      h_add(&s->sh->connect_h, mono_ns() - s->t_start);
    } else if (ev->current == PUSHER_STATE_FAILED || ev->current == PUSHER_STATE_DISCONNECTED ||
               ev->current == PUSHER_STATE_UNAVAILABLE) {
      char why[80];
      snprintf(why, sizeof why, "connection state %s", pusher_state_name(ev->current));
      sub_failed(s, why);
    }
  }
}

/* Data is exactly {"i":SEQ,"t":STAMP}, or {"i":SEQ,"t":STAMP,"p":"x..."}
 * with --payload; anything else is foreign. */
static int parse_stamp(const char *d, size_t n, uint64_t *seq, uint64_t *t) {
  const char *end = d + n;
  if (n < 13 || memcmp(d, "{\"i\":", 5) != 0) return -1; /* {"i":0,"t":0} */
  const char *p = d + 5;
  uint64_t v = 0;
  if (p >= end || *p < '0' || *p > '9') return -1;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
  *seq = v;
  if (end - p < 6 || memcmp(p, ",\"t\":", 5) != 0) return -1;
  p += 5;
  if (*p < '0' || *p > '9') return -1;
  v = 0;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
  if (end - p >= 8 && memcmp(p, ",\"p\":\"", 6) == 0) { /* the padding: x... */
    p += 6;
    while (p < end && *p == 'x') p++;
    if (p >= end || *p != '"') return -1;
    p++;
  }
  if (p + 1 != end || *p != '}') return -1;
  *t = v;
  return 0;
}

static void on_delivery(sub *s, const pusher_event *ev) {
  shard *sh = s->sh;
  const cli_bench_args *a = sh->b->a;
  uint64_t seq, t;
  uint64_t now = clock_ns(sh->b->stamp_clock);
  if (ev->data == NULL || parse_stamp(ev->data, ev->data_len, &seq, &t) != 0 ||
      seq >= (uint64_t)a->events || seq % (uint64_t)a->channels != s->chan) {
    sh->foreign++;
    return;
  }
  bump_u(&sh->live_received);
  sh->t_last_delivery = mono_ns();
  touch(sh, sh->t_last_delivery);
  h_add(&sh->lat, now > t ? now - t : 0);
  uint64_t k = seq / (uint64_t)a->channels; /* this channel's sequence */
  if (k >= s->hi) {
    uint64_t step = k + 1 - s->hi;
    s->win = step >= 64 ? 0 : s->win << step;
    s->win |= 1; /* skipped ones (k > hi) will arrive late or never */
    s->hi = k + 1;
    bump_u(&sh->live_unique);
  } else {
    uint64_t d = s->hi - 1 - k;
    if (d < 64 && (s->win >> d) & 1) {
      sh->duplicates++;
    } else {
      if (d < 64) s->win |= (uint64_t)1 << d;
      sh->out_of_order++;
      bump_u(&sh->live_unique);
    }
  }
}

static void on_channel(pusher_client *c, const pusher_event *ev, void *user) {
  sub *s = user;
  shard *sh = s->sh;
  (void)c;
  if (s->state == S_FAILED || s->state == S_CLOSED) return;
  if (strcmp(ev->event, BENCH_EVENT) == 0) {
    if (s->state == S_SUBSCRIBED) on_delivery(s, ev);
  } else if (strcmp(ev->event, "pusher:subscription_succeeded") == 0) {
    if (s->state == S_SUBSCRIBED) return;
    if (s->state == S_CONNECTING) { /* no state_change seen first: count it now */
      sh->connected++;
      h_add(&sh->connect_h, mono_ns() - s->t_start);
    }
    s->state = S_SUBSCRIBED;
    bump_l(&sh->live_subscribed, 1);
    sh->chan_subs[s->chan]++;
    h_add(&sh->subscribe_h, mono_ns() - s->t_start);
    touch(sh, mono_ns());
    start_more(sh);
    shard_check(sh);
  } else if (strcmp(ev->event, "pusher:subscription_error") == 0) {
    char why[300];
    snprintf(why, sizeof why, "subscription refused: %.*s", (int)(ev->data_len > 200 ? 200 : ev->data_len),
             ev->data ? ev->data : "");
    sub_failed(s, why);
  }
}

static int sub_start(shard *sh, sub *s) {
  const cli_bench_args *a = sh->b->a;
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.loop = sh->loop;
  o.encrypted = a->tls;
  if (a->cluster) o.cluster = a->cluster;
  if (a->host) o.ws_host = a->host;
  if (a->port) {
    if (a->tls)
      o.wss_port = a->port;
    else
      o.ws_port = a->port;
  }
  o.ca_file = a->ca_file;
  o.tls_insecure = a->insecure;
  o.connect_timeout = a->connect_timeout;
  o.client_name = "libpusher-bench";
  char ch[256];
  chan_name(sh->b, s->chan, ch, sizeof ch);
  int rc = pusher_client_new(&s->c, a->key, &o);
  if (rc == 0) rc = pusher_connection_bind(s->c, NULL, on_conn, s, NULL);
  if (rc == 0) rc = pusher_bind(s->c, ch, NULL, on_channel, s, NULL);
  if (rc == 0) rc = pusher_subscribe(s->c, ch);
  if (rc != 0) return rc;
  s->state = S_CONNECTING;
  s->t_start = mono_ns();
  rc = pusher_client_connect(s->c);
  return rc;
}

/* Start subscribers on this loop while fewer than its share of
 * --connect-concurrency are connecting. */
static void start_more(shard *sh) {
  long subscribed = peek_l(&sh->live_subscribed), failed = peek_l(&sh->live_failed);
  while (!atomic_load(&sh->b->stop) && sh->started < sh->n &&
         sh->started - subscribed - failed < sh->conc) {
    /* Nobody got through and a whole first wave failed: the rest would too. */
    if (subscribed == 0 && failed >= sh->conc) return;
    sub *s = &sh->subs[sh->started++];
    int rc = sub_start(sh, s);
    if (rc != 0) {
      bump_l(&sh->live_failed, 1);
      failed++;
      shard_error(sh, "cannot start a client: %s", pusher_strerror(rc));
      s->state = S_FAILED;
    }
  }
}

/* Once every subscriber of this loop has subscribed or failed (or a whole
 * first wave failed), tell the main thread, which moves on when all loops
 * are there. */
static void shard_check(shard *sh) {
  if (sh->settled_here) return;
  long subscribed = peek_l(&sh->live_subscribed), failed = peek_l(&sh->live_failed);
  int settled = sh->started - subscribed - failed == 0;
  int all = sh->started == sh->n;
  int hopeless = subscribed == 0 && failed >= sh->conc;
  if (!settled || !(all || hopeless)) return;
  sh->settled_here = 1;
  atomic_store_explicit(&sh->settled, 1, memory_order_release);
  if (sh->idx == 0)
    maybe_advance(sh->b); /* this is the main thread */
  else
    uv_async_send(&sh->b->wake);
}

/* ------------------------------------------------------------------ stalled subscribers */

/* --stalled N: raw WebSocket subscribers that stop reading.  Each is a
 * plain TCP socket with a small receive buffer (STALLED_RCVBUF, set before
 * connecting so that the advertised window stays small), opened with
 * blocking I/O on the loop thread once the reading subscribers are all
 * subscribed: HTTP upgrade, pusher:connection_established, pusher:subscribe
 * to its channel, pusher_internal:subscription_succeeded.  Then nothing
 * reads it until publishing is over, so the kernel's receive buffer fills
 * and the server must queue, drop or cut.  At the end stalled_drain reads
 * what is left, without blocking, and tells how each one ended: a close
 * frame (its code), an EOF or reset without one, or still open after
 * STALLED_IDLE_MS with nothing more to read.  The bench events it got tell
 * when the server stopped sending: the trigger stamp of the last one.
 * Caps: STALLED_BUF_CAP bytes of unparsed input per socket (one frame must
 * fit), STALLED_DRAIN_S for the whole drain. */
#define STALLED_RCVBUF 4096
#define STALLED_BUF_CAP (256 * 1024) /* malloc'd per socket; only what is used is touched */
#define STALLED_IDLE_MS 1000
#define STALLED_DRAIN_S 30

enum { ST_OPEN, ST_CLOSE_FRAME, ST_EOF, ST_RESET, ST_BAD };

typedef struct stalled {
  int fd;
  uint32_t chan;
  uint8_t end;       /* ST_*, after stalled_drain */
  int close_code;    /* from the close frame, 0 = none */
  uint64_t events;   /* bench events received */
  uint64_t last_t;   /* stamp of the last one (0: none) */
  uint64_t last_rx;  /* mono_ns of the last read with data (drain) */
  uint8_t *buf;      /* unparsed input, at most STALLED_BUF_CAP */
  size_t len;
} stalled;

/* One WebSocket frame at p[0..n): its length in all (0: incomplete, -1:
 * malformed or over STALLED_BUF_CAP), opcode and payload (unmasked in place). */
static long ws_frame(uint8_t *p, size_t n, int *op, uint8_t **pl, size_t *plen) {
  if (n < 2) return 0;
  size_t h = 2;
  uint64_t len = p[1] & 0x7f;
  int masked = p[1] & 0x80;
  if (len == 126) {
    if (n < 4) return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    h = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    h = 10;
  }
  if (masked) h += 4;
  if (len > STALLED_BUF_CAP - h) return -1;
  if (n < h + len) return 0;
  if (masked)
    for (uint64_t i = 0; i < len; i++) p[h + i] ^= p[h - 4 + (i & 3)];
  *op = p[0] & 0x0f;
  *pl = p + h;
  *plen = (size_t)len;
  return (long)(h + len);
}

static const void *mem_find(const void *h, size_t hn, const char *needle) {
  return memmem(h, hn, needle, strlen(needle));
}

/* Send all of p (blocking socket); 0 or -1. */
static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* A masked text frame from the client (RFC 6455 5.3). */
static int ws_send_text(int fd, const char *text) {
  size_t n = strlen(text);
  uint8_t f[14 + 512];
  if (n > 512) return -1;
  size_t h = 2;
  f[0] = 0x81;
  if (n < 126) {
    f[1] = (uint8_t)(0x80 | n);
  } else {
    f[1] = 0x80 | 126;
    f[2] = (uint8_t)(n >> 8);
    f[3] = (uint8_t)n;
    h = 4;
  }
  uint32_t key = (uint32_t)mono_ns() ^ 0x5a3c96e1u;
  memcpy(f + h, &key, 4);
  for (size_t i = 0; i < n; i++) f[h + 4 + i] = (uint8_t)text[i] ^ f[h + (i & 3)];
  return send_all(fd, f, h + 4 + n);
}

/* Read into st->buf (blocking, SO_RCVTIMEO) until a text frame holding want
 * arrives; frames before it are dropped.  0, or -1 with why. */
static int stalled_expect(stalled *st, const char *want, char *why, size_t whyn) {
  for (;;) {
    int op;
    uint8_t *pl;
    size_t pn;
    long fl;
    while ((fl = ws_frame(st->buf, st->len, &op, &pl, &pn)) > 0) {
      int hit = op == 1 && mem_find(pl, pn, want) != NULL;
      if (op == 1 && !hit && mem_find(pl, pn, "\"pusher:error\"")) {
        snprintf(why, whyn, "stalled subscriber: the server answered %.*s", (int)(pn > 200 ? 200 : pn),
                 (const char *)pl);
        return -1;
      }
      if (op == 8) {
        snprintf(why, whyn, "stalled subscriber: the server closed the connection (code %d)",
                 pn >= 2 ? pl[0] << 8 | pl[1] : 0);
        return -1;
      }
      memmove(st->buf, st->buf + fl, st->len - (size_t)fl);
      st->len -= (size_t)fl;
      if (hit) return 0;
    }
    if (fl < 0 || st->len == STALLED_BUF_CAP) {
      snprintf(why, whyn, "stalled subscriber: a malformed or oversized WebSocket frame");
      return -1;
    }
    ssize_t r = recv(st->fd, st->buf + st->len, STALLED_BUF_CAP - st->len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      snprintf(why, whyn, "stalled subscriber: waiting for %s: %s", want,
               r == 0 ? "connection closed" : strerror(errno));
      return -1;
    }
    st->len += (size_t)r;
  }
}

static int stalled_open(bench *b, stalled *st, const struct addrinfo *ai, char *why, size_t whyn) {
  const cli_bench_args *a = b->a;
  st->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (st->fd < 0) {
    snprintf(why, whyn, "stalled subscriber: socket: %s", strerror(errno));
    return -1;
  }
  int rcv = STALLED_RCVBUF;
  setsockopt(st->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  struct timeval tv = {(time_t)a->connect_timeout,
                       (suseconds_t)((a->connect_timeout - (double)(time_t)a->connect_timeout) * 1e6)};
  setsockopt(st->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(st->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(st->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    snprintf(why, whyn, "stalled subscriber: connect: %s", strerror(errno));
    return -1;
  }
  st->buf = malloc(STALLED_BUF_CAP);
  if (st->buf == NULL) {
    snprintf(why, whyn, "stalled subscriber: out of memory");
    return -1;
  }
  char req[1024];
  const char *host = a->host ? a->host : "ws.pusher.com";
  char hostbuf[300];
  if (a->host == NULL) {
    snprintf(hostbuf, sizeof hostbuf, "ws-%s.pusher.com", a->cluster ? a->cluster : "mt1");
    host = hostbuf;
  }
  int n = snprintf(req, sizeof req,
                   "GET /app/%s?protocol=7&client=libpusher-bench-stalled&version=1 HTTP/1.1\r\n"
                   "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: c3RhbGxlZC1zdWJzY3JpYg==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   a->key, host, a->port ? a->port : 80);
  if (n <= 0 || (size_t)n >= sizeof req || send_all(st->fd, req, (size_t)n) != 0) {
    snprintf(why, whyn, "stalled subscriber: sending the upgrade request: %s", strerror(errno));
    return -1;
  }
  /* The response head; what follows it is the first frames. */
  for (;;) {
    const uint8_t *e = mem_find(st->buf, st->len, "\r\n\r\n");
    if (e) {
      if (st->len < 12 || memcmp(st->buf + 9, "101", 3) != 0) {
        snprintf(why, whyn, "stalled subscriber: the upgrade was refused: %.*s",
                 (int)(st->len > 60 ? 60 : st->len), (const char *)st->buf);
        return -1;
      }
      size_t hl = (size_t)(e + 4 - st->buf);
      memmove(st->buf, st->buf + hl, st->len - hl);
      st->len -= hl;
      break;
    }
    if (st->len >= 16384) {
      snprintf(why, whyn, "stalled subscriber: upgrade response head over 16 KiB");
      return -1;
    }
    ssize_t r = recv(st->fd, st->buf + st->len, 16384 - st->len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      snprintf(why, whyn, "stalled subscriber: reading the upgrade response: %s",
               r == 0 ? "connection closed" : strerror(errno));
      return -1;
    }
    st->len += (size_t)r;
  }
  if (stalled_expect(st, "pusher:connection_established", why, whyn) != 0) return -1;
  char ch[256], msg[400];
  chan_name(b, st->chan, ch, sizeof ch);
  snprintf(msg, sizeof msg, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}", ch);
  if (ws_send_text(st->fd, msg) != 0) {
    snprintf(why, whyn, "stalled subscriber: sending pusher:subscribe: %s", strerror(errno));
    return -1;
  }
  return stalled_expect(st, "pusher_internal:subscription_succeeded", why, whyn);
}

/* Open and subscribe every stalled subscriber; 0, or -1 with note_error. */
static int stalled_open_all(bench *b) {
  const cli_bench_args *a = b->a;
  char port[16], why[300];
  const char *host = a->host;
  char hostbuf[300];
  if (host == NULL) {
    snprintf(hostbuf, sizeof hostbuf, "ws-%s.pusher.com", a->cluster ? a->cluster : "mt1");
    host = hostbuf;
  }
  snprintf(port, sizeof port, "%d", a->port ? a->port : 80);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  int g = getaddrinfo(host, port, &hints, &ai);
  if (g != 0) {
    note_error(b, "stalled subscriber: cannot resolve %s: %s", host, gai_strerror(g));
    return -1;
  }
  int rc = 0;
  for (long i = 0; i < a->stalled; i++) {
    stalled *st = &b->stalled[i];
    if (stalled_open(b, st, ai, why, sizeof why) != 0) {
      note_error(b, "%s", why);
      rc = -1;
      break;
    }
    b->stalled_subscribed++;
  }
  freeaddrinfo(ai);
  return rc;
}

/* The frames in st->buf: bench events counted, a close frame ends it. */
static void stalled_parse(stalled *st) {
  int op;
  uint8_t *pl;
  size_t pn;
  long fl;
  size_t off = 0;
  while (st->end == ST_OPEN && (fl = ws_frame(st->buf + off, st->len - off, &op, &pl, &pn)) != 0) {
    if (fl < 0) {
      st->end = ST_BAD;
      break;
    }
    off += (size_t)fl;
    if (op == 8) {
      st->end = ST_CLOSE_FRAME;
      st->close_code = pn >= 2 ? pl[0] << 8 | pl[1] : 1005;
    } else if (op == 1 && mem_find(pl, pn, "\"event\":\"bench\"")) {
      const char *t = mem_find(pl, pn, "\\\"t\\\":");
      st->events++;
      if (t) st->last_t = strtoull(t + 6, NULL, 10);
    }
  }
  if (st->end == ST_OPEN && st->len - off == STALLED_BUF_CAP) st->end = ST_BAD; /* no frame fits */
  memmove(st->buf, st->buf + off, st->len - off);
  st->len -= off;
}

/* Read every stalled socket until it ends or stays quiet (see above). */
static void stalled_drain(bench *b) {
  long n = b->stalled_subscribed;
  if (n == 0) return;
  struct pollfd *pf = calloc((size_t)n, sizeof *pf);
  if (pf == NULL) return;
  uint64_t t0 = mono_ns();
  for (long i = 0; i < n; i++) {
    int fl = fcntl(b->stalled[i].fd, F_GETFL);
    fcntl(b->stalled[i].fd, F_SETFL, fl | O_NONBLOCK);
    b->stalled[i].last_rx = t0;
  }
  for (;;) {
    nfds_t k = 0;
    uint64_t now = mono_ns();
    for (long i = 0; i < n; i++) {
      stalled *st = &b->stalled[i];
      if (st->end != ST_OPEN) continue;
      if (now - st->last_rx > (uint64_t)STALLED_IDLE_MS * 1000000u) continue; /* quiet: open */
      pf[k].fd = st->fd;
      pf[k].events = POLLIN;
      pf[k].revents = 0;
      k++;
    }
    if (k == 0 || now - t0 > (uint64_t)STALLED_DRAIN_S * 1000000000u) break;
    if (poll(pf, k, 100) < 0 && errno != EINTR) break;
    for (nfds_t j = 0; j < k; j++) {
      if (!pf[j].revents) continue;
      stalled *st = NULL;
      for (long i = 0; i < n && !st; i++)
        if (b->stalled[i].fd == pf[j].fd) st = &b->stalled[i];
      while (st->end == ST_OPEN) {
        ssize_t r = recv(st->fd, st->buf + st->len, STALLED_BUF_CAP - st->len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r == 0) st->end = ST_EOF;
        else if (r < 0) st->end = ST_RESET;
        if (r <= 0) break;
        st->len += (size_t)r;
        st->last_rx = mono_ns();
        stalled_parse(st);
      }
    }
  }
  free(pf);
}

static void stalled_close_all(bench *b) {
  for (long i = 0; b->stalled && i < b->a->stalled; i++) {
    if (b->stalled[i].fd >= 0) close(b->stalled[i].fd);
    free(b->stalled[i].buf);
  }
  free(b->stalled);
}

/* ------------------------------------------------------------------ publishers */

static void sleep_until(bench *b, uint64_t due) {
  for (;;) {
    uint64_t now = mono_ns();
    if (now >= due || atomic_load(&b->stop)) return;
    uint64_t d = due - now;
    if (d > 100000000u) d = 100000000u; /* look at stop at least every 100 ms */
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

static void *publisher_main(void *arg) {
  publisher *p = arg;
  bench *b = p->b;
  const cli_bench_args *a = b->a;
  uint64_t M = (uint64_t)a->events, C = (uint64_t)a->channels;
  double cpu0 = cpu_thread_s();
  char names[CLI_BENCH_BATCH][256];
  /* {"i":SEQ,"t":STAMP} (at most 48 bytes) and the padding ,"p":"x..." */
  size_t dcap = 64 + (size_t)a->payload + 8;
  char *datas = malloc(CLI_BENCH_BATCH * dcap);
  pusher_rest_event evs[CLI_BENCH_BATCH];
  if (datas == NULL) {
    pthread_mutex_lock(&b->mu);
    if (b->first_http_error[0] == '\0')
      snprintf(b->first_http_error, sizeof b->first_http_error, "publisher: out of memory");
    pthread_mutex_unlock(&b->mu);
    atomic_fetch_add(&b->http_errors, 1);
    atomic_store(&b->stop, 1);
  }
  while (datas && !atomic_load(&b->stop)) {
    uint64_t first, n;
    pthread_mutex_lock(&b->mu);
    first = b->next_event;
    n = first < M ? (a->batch ? CLI_BENCH_BATCH : 1) : 0;
    if (n > M - first) n = M - first;
    b->next_event += n;
    pthread_mutex_unlock(&b->mu);
    if (n == 0) break;
    if (a->rate > 0) sleep_until(b, b->t_pub0 + (uint64_t)((double)first * 1e9 / a->rate));
    if (atomic_load(&b->stop)) break;
    uint64_t stamp = clock_ns(b->stamp_clock);
    uint64_t expect = 0;
    for (uint64_t k = 0; k < n; k++) {
      uint64_t seq = first + k;
      chan_name(b, (uint32_t)(seq % C), names[k], sizeof names[k]);
      char *dk = datas + k * dcap;
      int dl = snprintf(dk, 64, "{\"i\":%" PRIu64 ",\"t\":%" PRIu64, seq, stamp);
      if (a->payload > 0) {
        memcpy(dk + dl, ",\"p\":\"", 6);
        memset(dk + dl + 6, 'x', (size_t)a->payload);
        dl += 6 + (int)a->payload;
        dk[dl++] = '"';
      }
      dk[dl++] = '}';
      dk[dl] = '\0';
      evs[k] = (pusher_rest_event){.channel = names[k], .name = BENCH_EVENT, .data = dk};
      expect += b->chan_expect ? (uint64_t)b->chan_expect[seq % C] : 0;
    }
    uint64_t t0 = mono_ns();
    uint_fast64_t zero = 0;
    atomic_compare_exchange_strong(&b->t_first_trigger, &zero, t0);
    int rv;
    if (a->batch) {
      rv = pusher_rest_trigger_batch(p->rest, evs, (size_t)n, NULL);
    } else {
      const char *chans[1] = {names[0]};
      rv = pusher_rest_trigger(p->rest, chans, 1, &evs[0], NULL);
    }
    uint64_t t1 = mono_ns();
    h_add(&p->req, t1 - t0);
    atomic_fetch_add(&b->requests, 1);
    atomic_store(&b->t_last_reply, t1);
    if (rv != 0) {
      atomic_fetch_add(&b->http_errors, 1);
      pthread_mutex_lock(&b->mu);
      if (b->first_http_error[0] == '\0')
        snprintf(b->first_http_error, sizeof b->first_http_error, "%s",
                 pusher_rest_error_detail(p->rest));
      pthread_mutex_unlock(&b->mu);
      atomic_store(&b->stop, 1); /* the figures would mean nothing */
      break;
    }
    atomic_fetch_add(&b->triggered, n);
    atomic_fetch_add(&b->expected, expect);
  }
  free(datas);
  double cpu = cpu_thread_s() - cpu0;
  pthread_mutex_lock(&b->mu);
  h_merge(&b->req, &p->req);
  b->pub_cpu_s += cpu;
  b->pubs_done++;
  pthread_mutex_unlock(&b->mu);
  uv_async_send(&b->wake);
  return NULL;
}

static int publishers_create(bench *b) {
  const cli_bench_args *a = b->a;
  b->pubs = calloc((size_t)a->publishers, sizeof *b->pubs);
  if (b->pubs == NULL) return PUSHER_ERR_NOMEM;
  for (long i = 0; i < a->publishers; i++) {
    publisher *p = &b->pubs[i];
    p->b = b;
    h_init(&p->req);
    pusher_rest_options o;
    pusher_rest_options_default(&o);
    o.app_id = a->app_id;
    o.key = a->key;
    o.secret = a->secret;
    if (a->cluster) o.cluster = a->cluster;
    o.host = a->host;
    o.port = a->port;
    o.tls = a->tls;
    o.ca_file = a->ca_file;
    o.tls_insecure = a->insecure;
    o.timeout = a->timeout;
    int rc = pusher_rest_new(&p->rest, &o);
    if (rc != 0) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------ phases */

/* A shard's thread CPU time, s; read by the main thread while the shard's
 * thread runs (start_publishing, finish). */
static double shard_cpu_s(shard *sh) {
  if (sh->idx == 0) return cpu_thread_s();
  if (!sh->have_cpu_clock) return 0;
  return (double)clock_ns(sh->cpu_clock) / 1e9;
}

static void start_publishing(bench *b) {
  const cli_bench_args *a = b->a;
  b->phase = P_PUBLISH;
  b->t_all_subscribed = mono_ns();
  if (a->server_pid) b->srv_idle = sample_proc(a->server_pid);
  b->self_rss_idle = self_rss_kb(0);
  /* Every shard has settled (or there are no subscribers): their
   * per-channel counts no longer change. */
  long *frozen = calloc((size_t)a->channels, sizeof *frozen);
  for (int i = 0; frozen && a->subscribers > 0 && i < b->nshards; i++)
    for (long c = 0; c < a->channels; c++) frozen[c] += b->shards[i]->chan_subs[c];
  b->chan_expect = frozen;
  for (long c = 0; frozen && c < a->channels; c++) /* channel c gets events c, c+C, ... */
    b->planned += (uint64_t)frozen[c] * (uint64_t)(a->events / a->channels + (c < a->events % a->channels));
  b->self_cpu0 = cpu_process_s();
  for (int i = 0; i < b->nshards; i++) b->shards[i]->loop_cpu0 = shard_cpu_s(b->shards[i]);
  b->t_last_progress = b->t_pub0 = mono_ns();
  b->stamp_pub0 = clock_ns(b->stamp_clock);
  for (long i = 0; i < a->publishers; i++) {
    publisher *p = &b->pubs[i];
    if (pthread_create(&p->tid, NULL, publisher_main, p) != 0) {
      pthread_mutex_lock(&b->mu);
      snprintf(b->first_http_error, sizeof b->first_http_error, "cannot start a publisher thread");
      b->pubs_done++;
      pthread_mutex_unlock(&b->mu);
      atomic_store(&b->stop, 1);
      continue;
    }
    p->started = 1;
  }
  uv_async_send(&b->wake);
}

/* Ask the other loops to stop (b->stop is already set). */
static void shards_quit(bench *b) {
  for (int i = 1; i < b->nshards; i++)
    if (b->shards[i]->thread_started) uv_async_send(&b->shards[i]->quit);
}

static void finish(bench *b) {
  if (b->phase == P_DONE) return;
  int was_publishing = b->phase == P_PUBLISH;
  b->phase = P_DONE;
  b->t_end = mono_ns();
  atomic_store(&b->stop, 1);
  if (was_publishing) {
    b->self_cpu = cpu_process_s() - b->self_cpu0;
    for (int i = 0; i < b->nshards; i++) /* before their threads end */
      b->shards[i]->loop_cpu = shard_cpu_s(b->shards[i]) - b->shards[i]->loop_cpu0;
  }
  if (b->a->server_pid) b->srv_end = sample_proc(b->a->server_pid);
  shards_quit(b);
  uv_stop(&b->loop);
}

/* Move on when the current phase has run its course (main thread). */
static void maybe_advance(bench *b) {
  const cli_bench_args *a = b->a;
  if (b->phase == P_CONNECT) {
    for (int i = 0; i < b->nshards; i++)
      if (!atomic_load_explicit(&b->shards[i]->settled, memory_order_acquire)) return;
    if (sum_subscribed(b) == 0 && a->subscribers > 0) {
      finish(b);
    } else if (a->stalled > 0 && stalled_open_all(b) != 0) {
      b->stalled_failed = 1;
      finish(b);
    } else {
      start_publishing(b);
    }
  } else if (b->phase == P_PUBLISH) {
    pthread_mutex_lock(&b->mu);
    int done = b->pubs_done == a->publishers;
    pthread_mutex_unlock(&b->mu);
    if (done && sum_received(b, 1) >= (uint64_t)atomic_load(&b->expected)) finish(b);
  }
}

/* Seconds without progress at `now` since the stamp `last`.  Other threads
 * (loops, publishers) stamp their progress after `now` was read: a stamp
 * later than now is progress now, not a wait of 2^64 ns. */
static double quiet_s(uint64_t now, uint64_t last) {
  return last >= now ? 0.0 : (double)(now - last) / 1e9;
}

static void on_tick(uv_timer_t *t) {
  bench *b = t->data;
  maybe_advance(b);
  if (b->phase == P_DONE) return;
  uint64_t now = mono_ns();
  uint64_t last = b->t_last_progress;
  for (int i = 0; i < b->nshards; i++) {
    uint64_t p = peek_u(&b->shards[i]->live_progress);
    if (p > last) last = p;
  }
  uint64_t reply = (uint64_t)atomic_load(&b->t_last_reply);
  if (reply > last) last = reply;
  if (b->phase == P_PUBLISH && b->a->rate > 0) {
    /* Paced publishing: waiting for the next event's time is no stall. */
    pthread_mutex_lock(&b->mu);
    uint64_t taken = b->next_event;
    pthread_mutex_unlock(&b->mu);
    uint64_t due = taken ? b->t_pub0 + (uint64_t)((double)(taken - 1) * 1e9 / b->a->rate) : 0;
    if (due > last) last = due > now ? now : due;
  }
  if (quiet_s(now, last) > b->a->timeout) {
    b->timed_out = 1;
    finish(b);
    return;
  }
  progress_line(b);
}

static void on_wake(uv_async_t *h) { maybe_advance(h->data); }

static void on_signal(uv_signal_t *h, int signum) {
  bench *b = h->data;
  (void)signum;
  b->interrupted = 1;
  finish(b);
}

/* ------------------------------------------------------------------ threads */

static void on_quit(uv_async_t *h) {
  shard *sh = h->data;
  if (atomic_load(&sh->b->stop)) uv_stop(sh->loop);
}

/* Shards 1..T-1: connect this loop's subscribers, then run the loop until
 * finish() says stop.  The main thread joins it before reading its
 * figures, and then closes its clients and loop itself. */
static void *shard_main(void *arg) {
  shard *sh = arg;
  /* SIGINT and SIGTERM are for the main loop's uv_signal handles. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  start_more(sh);
  shard_check(sh);
  uv_run(sh->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* The totals over the shards, once their threads have been joined. */
static void merge_shards(bench *b) {
  uint64_t err_t = b->first_error[0] ? b->first_error_t : UINT64_MAX;
  for (int i = 0; i < b->nshards; i++) {
    shard *sh = b->shards[i];
    b->started += sh->started;
    b->connected += sh->connected;
    b->subscribed += peek_l(&sh->live_subscribed);
    b->failed += peek_l(&sh->live_failed);
    b->disconnects += sh->disconnects;
    h_merge(&b->connect_h, &sh->connect_h);
    h_merge(&b->subscribe_h, &sh->subscribe_h);
    h_merge(&b->lat, &sh->lat);
    b->received += peek_u(&sh->live_received);
    b->duplicates += sh->duplicates;
    b->out_of_order += sh->out_of_order;
    b->foreign += sh->foreign;
    if (sh->t_last_delivery > b->t_last_delivery) b->t_last_delivery = sh->t_last_delivery;
    b->loop_cpu_sum += sh->loop_cpu;
    if (sh->loop_cpu > b->loop_cpu_max) b->loop_cpu_max = sh->loop_cpu;
    if (sh->first_error[0] && sh->first_error_t < err_t) {
      err_t = sh->first_error_t;
      memcpy(b->first_error, sh->first_error, sizeof b->first_error);
    }
  }
}

/* ------------------------------------------------------------------ report */

static double ns_to_us(uint64_t v) { return (double)v / 1e3; }
static double ns_to_ms(uint64_t v) { return (double)v / 1e6; }
static double round3(double v) { return (double)(long long)(v * 1000 + (v < 0 ? -0.5 : 0.5)) / 1000; }

static json_t *jnum(double v) { return json_real(round3(v)); }

static json_t *hist_ms(const hist *h) {
  json_t *o = json_object();
  json_object_set_new(o, "p50", jnum(ns_to_ms(h_quantile(h, 0.50))));
  json_object_set_new(o, "p99", jnum(ns_to_ms(h_quantile(h, 0.99))));
  json_object_set_new(o, "max", jnum(ns_to_ms(h->max)));
  return o;
}

typedef struct figures {
  uint64_t expected, unique, lost, triggered, requests, http_errors;
  double connect_s, publish_s, deliveries_per_s, events_per_s;
  double srv_cpu_s, srv_cpu_us_per_delivery;
  int ok;
} figures;

static figures compute(bench *b) {
  figures f;
  memset(&f, 0, sizeof f);
  f.expected = (uint64_t)atomic_load(&b->expected);
  f.unique = b->received - b->duplicates;
  f.lost = f.expected > f.unique ? f.expected - f.unique : 0;
  f.triggered = (uint64_t)atomic_load(&b->triggered);
  f.requests = (uint64_t)atomic_load(&b->requests);
  f.http_errors = (uint64_t)atomic_load(&b->http_errors);
  f.connect_s = b->t_all_subscribed ? (double)(b->t_all_subscribed - b->t_start) / 1e9 : -1;
  uint64_t t0 = (uint64_t)atomic_load(&b->t_first_trigger);
  uint64_t tl = (uint64_t)atomic_load(&b->t_last_reply);
  uint64_t tend = b->t_last_delivery > tl ? b->t_last_delivery : tl;
  f.publish_s = t0 && tend > t0 ? (double)(tend - t0) / 1e9 : 0;
  f.deliveries_per_s = f.publish_s > 0 ? (double)b->received / f.publish_s : 0;
  f.events_per_s = f.publish_s > 0 ? (double)f.triggered / f.publish_s : 0;
  f.srv_cpu_s = -1;
  f.srv_cpu_us_per_delivery = -1;
  if (b->srv_idle.ok && b->srv_end.ok) {
    f.srv_cpu_s = b->srv_end.cpu_s - b->srv_idle.cpu_s;
    if (b->received) f.srv_cpu_us_per_delivery = f.srv_cpu_s * 1e6 / (double)b->received;
  }
  f.ok = !b->interrupted && !b->timed_out && b->failed == 0 && b->disconnects == 0 && !b->stalled_failed &&
         f.http_errors == 0 && f.lost == 0 && b->duplicates == 0 &&
         (b->a->publishers > 1 || b->out_of_order == 0) && f.triggered == (uint64_t)b->a->events;
  return f;
}

static const char *verdict(const bench *b, const figures *f, char *buf, size_t n) {
  if (f->ok) return "ok";
  if (b->interrupted) snprintf(buf, n, "interrupted");
  else if (b->failed && b->subscribed == 0 && b->started < b->a->subscribers)
    snprintf(buf, n, "no subscriber could connect or subscribe (gave up after %ld failed attempts)",
             b->failed);
  else if (b->failed)
    snprintf(buf, n, "%ld of %ld subscribers could not connect or subscribe", b->failed,
             b->a->subscribers);
  else if (b->stalled_failed)
    snprintf(buf, n, "%ld of %ld stalled subscribers could not subscribe",
             b->a->stalled - b->stalled_subscribed, b->a->stalled);
  else if (f->http_errors) snprintf(buf, n, "a request to the HTTP API failed");
  else if (b->timed_out) snprintf(buf, n, "no progress for %g s", b->a->timeout);
  else if (b->disconnects) snprintf(buf, n, "%ld subscribers lost their connection", b->disconnects);
  else if (f->lost) snprintf(buf, n, "%" PRIu64 " deliveries lost", f->lost);
  else if (b->duplicates) snprintf(buf, n, "%" PRIu64 " duplicate deliveries", b->duplicates);
  else if (b->out_of_order) snprintf(buf, n, "%" PRIu64 " deliveries out of order", b->out_of_order);
  else snprintf(buf, n, "not every event was published");
  return buf;
}

/* What became of the stalled subscribers (after stalled_drain). */
typedef struct stalled_sum {
  long n, cut, open, close_4100, close_other, eof, reset, bad;
  int other_code;               /* one close code other than 4100 */
  uint64_t ev_min, ev_max, expected_each_max, missed;
  double cut_min_s, cut_max_s;  /* last event received by a cut one, s after publishing began */
  int have_cut_t;
} stalled_sum;

static stalled_sum stalled_summary(const bench *b, const figures *f) {
  stalled_sum m;
  memset(&m, 0, sizeof m);
  m.ev_min = UINT64_MAX;
  uint64_t C = (uint64_t)b->a->channels, T = f->triggered;
  for (long i = 0; i < b->stalled_subscribed; i++) {
    const stalled *st = &b->stalled[i];
    m.n++;
    uint64_t want = T / C + (st->chan < T % C);
    if (want > m.expected_each_max) m.expected_each_max = want;
    if (st->events < want) m.missed += want - st->events;
    if (st->events < m.ev_min) m.ev_min = st->events;
    if (st->events > m.ev_max) m.ev_max = st->events;
    switch (st->end) {
    case ST_OPEN: m.open++; continue;
    case ST_CLOSE_FRAME:
      if (st->close_code == 4100) {
        m.close_4100++;
      } else {
        m.close_other++;
        m.other_code = st->close_code;
      }
      break;
    case ST_EOF: m.eof++; break;
    case ST_RESET: m.reset++; break;
    default: m.bad++; continue;
    }
    m.cut++;
    if (st->last_t) {
      double at = st->last_t > b->stamp_pub0 ? (double)(st->last_t - b->stamp_pub0) / 1e9 : 0;
      if (!m.have_cut_t || at < m.cut_min_s) m.cut_min_s = at;
      if (!m.have_cut_t || at > m.cut_max_s) m.cut_max_s = at;
      m.have_cut_t = 1;
    }
  }
  if (m.n == 0) m.ev_min = 0;
  return m;
}

static void report_json(bench *b, const figures *f) {
  const cli_bench_args *a = b->a;
  json_t *o = json_object();
  json_object_set_new(o, "subscribers", json_integer(a->subscribers));
  json_object_set_new(o, "channels", json_integer(a->channels));
  json_object_set_new(o, "events", json_integer(a->events));
  json_object_set_new(o, "rate", jnum(a->rate));
  json_object_set_new(o, "batch", json_boolean(a->batch));
  json_object_set_new(o, "publishers", json_integer(a->publishers));
  json_object_set_new(o, "channel_prefix", json_string(a->channel_prefix));
  json_object_set_new(o, "payload", json_integer(a->payload));
  json_object_set_new(o, "threads", json_integer(a->threads));

  json_t *c = json_object();
  json_object_set_new(c, "attempted", json_integer(b->started));
  json_object_set_new(c, "subscribed", json_integer(b->subscribed));
  json_object_set_new(c, "failed", json_integer(b->failed));
  json_object_set_new(c, "total_s", f->connect_s >= 0 ? jnum(f->connect_s) : json_null());
  json_object_set_new(c, "connect_ms", hist_ms(&b->connect_h));
  json_object_set_new(c, "subscribe_ms", hist_ms(&b->subscribe_h));
  json_object_set_new(c, "first_error", b->first_error[0] ? json_string(b->first_error) : json_null());
  json_object_set_new(o, "connect", c);

  json_t *p = json_object();
  json_object_set_new(p, "triggered", json_integer((json_int_t)f->triggered));
  json_object_set_new(p, "requests", json_integer((json_int_t)f->requests));
  json_object_set_new(p, "http_errors", json_integer((json_int_t)f->http_errors));
  json_object_set_new(p, "events_per_s", jnum(f->events_per_s));
  json_object_set_new(p, "request_ms", hist_ms(&b->req));
  json_object_set_new(p, "first_error",
                      b->first_http_error[0] ? json_string(b->first_http_error) : json_null());
  json_object_set_new(o, "publish", p);

  json_t *d = json_object();
  json_object_set_new(d, "expected", json_integer((json_int_t)f->expected));
  json_object_set_new(d, "received", json_integer((json_int_t)b->received));
  json_object_set_new(d, "lost", json_integer((json_int_t)f->lost));
  json_object_set_new(d, "duplicates", json_integer((json_int_t)b->duplicates));
  json_object_set_new(d, "out_of_order", json_integer((json_int_t)b->out_of_order));
  json_object_set_new(d, "foreign", json_integer((json_int_t)b->foreign));
  json_object_set_new(d, "disconnects", json_integer(b->disconnects));
  json_object_set_new(d, "duration_s", jnum(f->publish_s));
  json_object_set_new(d, "per_s", jnum(f->deliveries_per_s));
  json_object_set_new(o, "deliveries", d);

  json_t *l = json_object();
  json_object_set_new(l, "p50", jnum(ns_to_us(h_quantile(&b->lat, 0.50))));
  json_object_set_new(l, "p90", jnum(ns_to_us(h_quantile(&b->lat, 0.90))));
  json_object_set_new(l, "p99", jnum(ns_to_us(h_quantile(&b->lat, 0.99))));
  json_object_set_new(l, "p99_9", jnum(ns_to_us(h_quantile(&b->lat, 0.999))));
  json_object_set_new(l, "max", jnum(ns_to_us(b->lat.max)));
  json_object_set_new(l, "mean", jnum(b->lat.count ? b->lat.sum / (double)b->lat.count / 1e3 : 0));
  json_object_set_new(o, "latency_us", l);

  if (a->server_pid) {
    json_t *s = json_object();
    json_object_set_new(s, "pid", json_integer(a->server_pid));
    json_object_set_new(s, "cpu_s", f->srv_cpu_s >= 0 ? jnum(f->srv_cpu_s) : json_null());
    json_object_set_new(s, "cpu_share",
                        f->srv_cpu_s >= 0 && f->publish_s > 0 ? jnum(f->srv_cpu_s / f->publish_s) : json_null());
    json_object_set_new(s, "cpu_us_per_delivery",
                        f->srv_cpu_us_per_delivery >= 0 ? jnum(f->srv_cpu_us_per_delivery) : json_null());
    json_object_set_new(s, "rss_kb_before", b->srv_before.ok ? json_integer(b->srv_before.rss_kb) : json_null());
    json_object_set_new(s, "rss_kb_idle", b->srv_idle.ok ? json_integer(b->srv_idle.rss_kb) : json_null());
    json_object_set_new(s, "rss_kb_end", b->srv_end.ok ? json_integer(b->srv_end.rss_kb) : json_null());
    json_object_set_new(s, "hwm_kb", b->srv_end.ok ? json_integer(b->srv_end.hwm_kb) : json_null());
    if (b->srv_before.ok && b->srv_idle.ok && b->subscribed > 0)
      json_object_set_new(s, "rss_kb_per_idle_sub",
                          jnum((double)(b->srv_idle.rss_kb - b->srv_before.rss_kb) / (double)b->subscribed));
    else
      json_object_set_new(s, "rss_kb_per_idle_sub", json_null());
    json_object_set_new(o, "server", s);
  } else {
    json_object_set_new(o, "server", json_null());
  }

  if (a->stalled > 0) {
    stalled_sum z = stalled_summary(b, f);
    json_t *t = json_object();
    json_object_set_new(t, "count", json_integer(a->stalled));
    json_object_set_new(t, "subscribed", json_integer(b->stalled_subscribed));
    json_object_set_new(t, "cut", json_integer(z.cut));
    json_object_set_new(t, "close_4100", json_integer(z.close_4100));
    json_object_set_new(t, "close_other", json_integer(z.close_other));
    json_object_set_new(t, "eof_without_close", json_integer(z.eof));
    json_object_set_new(t, "reset", json_integer(z.reset));
    json_object_set_new(t, "still_open", json_integer(z.open));
    json_object_set_new(t, "malformed", json_integer(z.bad));
    json_object_set_new(t, "events_min", json_integer((json_int_t)z.ev_min));
    json_object_set_new(t, "events_max", json_integer((json_int_t)z.ev_max));
    json_object_set_new(t, "events_expected", json_integer((json_int_t)z.expected_each_max));
    json_object_set_new(t, "missed", json_integer((json_int_t)z.missed));
    json_object_set_new(t, "cut_after_s_min", z.have_cut_t ? jnum(z.cut_min_s) : json_null());
    json_object_set_new(t, "cut_after_s_max", z.have_cut_t ? jnum(z.cut_max_s) : json_null());
    json_object_set_new(o, "stalled", t);
  } else {
    json_object_set_new(o, "stalled", json_null());
  }

  json_t *m = json_object();
  json_object_set_new(m, "cpu_s", jnum(b->self_cpu));
  /* loop_cpu_s and loop_cpu_share: the busiest loop (the only one without
   * --threads), which is what bounds the generator. */
  json_object_set_new(m, "loops", json_integer(b->nshards));
  json_object_set_new(m, "loop_cpu_s", jnum(b->loop_cpu_max));
  json_object_set_new(m, "loop_cpu_share", jnum(f->publish_s > 0 ? b->loop_cpu_max / f->publish_s : 0));
  json_object_set_new(m, "loop_cpu_s_sum", jnum(b->loop_cpu_sum));
  json_t *each = json_array();
  for (int i = 0; i < b->nshards; i++) json_array_append_new(each, jnum(b->shards[i]->loop_cpu));
  json_object_set_new(m, "loop_cpu_s_each", each);
  json_object_set_new(m, "publisher_cpu_s", jnum(b->pub_cpu_s));
  json_object_set_new(m, "rss_kb_idle", b->t_pub0 ? json_integer(b->self_rss_idle) : json_null());
  json_object_set_new(m, "rss_kb_per_sub",
                      b->subscribed > 0 && b->self_rss_idle > 0 && b->self_rss_before > 0
                          ? jnum((double)(b->self_rss_idle - b->self_rss_before) / (double)b->subscribed)
                          : json_null());
  json_object_set_new(m, "maxrss_kb", json_integer(self_rss_kb(1)));
  json_object_set_new(o, "self", m);

  char why[160];
  json_object_set_new(o, "ok", json_boolean(f->ok));
  json_object_set_new(o, "verdict", json_string(verdict(b, f, why, sizeof why)));
  char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
  if (s) {
    puts(s);
    free(s);
  }
  json_decref(o);
}

static void report_text(bench *b, const figures *f) {
  const cli_bench_args *a = b->a;
  char rate[32];
  if (a->rate > 0)
    snprintf(rate, sizeof rate, "%g/s", a->rate);
  else
    snprintf(rate, sizeof rate, "max");
  char loops[40] = "";
  if (b->nshards > 1) snprintf(loops, sizeof loops, ", %d event loops", b->nshards);
  printf("pusher bench: %ld subscribers on %ld channel%s (%s-*)%s, %ld events at rate %s, %s, "
         "%ld publisher%s\n",
         a->subscribers, a->channels, a->channels == 1 ? "" : "s", a->channel_prefix, loops,
         a->events, rate, a->batch ? "batches of 10" : "one event per request", a->publishers,
         a->publishers == 1 ? "" : "s");
  printf("connect:     %ld subscribed, %ld failed", b->subscribed, b->failed);
  if (f->connect_s >= 0) printf(" in %.3f s", f->connect_s);
  printf("; per socket: connected p50 %.2f ms p99 %.2f ms, subscribed p50 %.2f ms p99 %.2f ms\n",
         ns_to_ms(h_quantile(&b->connect_h, 0.5)), ns_to_ms(h_quantile(&b->connect_h, 0.99)),
         ns_to_ms(h_quantile(&b->subscribe_h, 0.5)), ns_to_ms(h_quantile(&b->subscribe_h, 0.99)));
  if (b->first_error[0]) printf("             first error: %s\n", b->first_error);
  if (b->t_pub0 == 0) { /* never got to publish */
    char why[160];
    printf("result:      %s\n", verdict(b, f, why, sizeof why));
    return;
  }
  printf("publish:     %" PRIu64 " events in %" PRIu64 " requests (%.0f events/s), %" PRIu64
         " HTTP errors; request p50 %.2f ms p99 %.2f ms\n",
         f->triggered, f->requests, f->events_per_s, f->http_errors, ns_to_ms(h_quantile(&b->req, 0.5)),
         ns_to_ms(h_quantile(&b->req, 0.99)));
  if (b->first_http_error[0]) printf("             first error: %s\n", b->first_http_error);
  printf("deliveries:  %" PRIu64 " of %" PRIu64 " in %.3f s = %.0f/s; lost %" PRIu64
         ", duplicates %" PRIu64 ", out of order %" PRIu64 ", disconnects %ld\n",
         b->received, f->expected, f->publish_s, f->deliveries_per_s, f->lost, b->duplicates,
         b->out_of_order, b->disconnects);
  printf("latency:     p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us "
         "(trigger to receipt)\n",
         ns_to_us(h_quantile(&b->lat, 0.5)), ns_to_us(h_quantile(&b->lat, 0.9)),
         ns_to_us(h_quantile(&b->lat, 0.99)), ns_to_us(h_quantile(&b->lat, 0.999)),
         ns_to_us(b->lat.max));
  if (a->stalled > 0) {
    stalled_sum z = stalled_summary(b, f);
    printf("stalled:     %ld that stopped reading: %ld cut by the server (close 4100: %ld, other "
           "close: %ld, EOF without close: %ld, reset: %ld), %ld still open; each got %" PRIu64
           "-%" PRIu64 " of %" PRIu64 " events",
           b->stalled_subscribed, z.cut, z.close_4100, z.close_other, z.eof, z.reset, z.open,
           z.ev_min, z.ev_max, z.expected_each_max);
    if (z.have_cut_t)
      printf("; the cut ones' last event was triggered %.2f-%.2f s into publishing", z.cut_min_s,
             z.cut_max_s);
    printf("\n");
  }
  if (a->server_pid) {
    if (f->srv_cpu_s >= 0)
      printf("server:      pid %ld: CPU %.2f s (%.0f%% of one core) = %.3f us per delivery; RSS %ld "
             "KiB before, %ld KiB idle, %ld KiB at end, peak %ld KiB\n",
             a->server_pid, f->srv_cpu_s, f->publish_s > 0 ? 100 * f->srv_cpu_s / f->publish_s : 0,
             f->srv_cpu_us_per_delivery, b->srv_before.rss_kb,
             b->srv_idle.rss_kb, b->srv_end.rss_kb, b->srv_end.hwm_kb);
    else
      printf("server:      pid %ld: could not be sampled (gone?)\n", a->server_pid);
  }
  double busiest = f->publish_s > 0 ? 100 * b->loop_cpu_max / f->publish_s : 0;
  if (b->nshards == 1)
    printf("this process: CPU %.2f s while publishing (event loop %.2f s = %.0f%% of one core, "
           "publishers %.2f s); RSS %ld KiB with all subscribed, peak %ld KiB\n",
           b->self_cpu, b->loop_cpu_max, busiest, b->pub_cpu_s, b->self_rss_idle, self_rss_kb(1));
  else
    printf("this process: CPU %.2f s while publishing (%d event loops %.2f s in all, the busiest "
           "%.2f s = %.0f%% of one core, publishers %.2f s); RSS %ld KiB with all subscribed, "
           "peak %ld KiB\n",
           b->self_cpu, b->nshards, b->loop_cpu_sum, b->loop_cpu_max, busiest, b->pub_cpu_s,
           b->self_rss_idle, self_rss_kb(1));
  char why[160];
  printf("result:      %s\n", f->ok ? "OK" : verdict(b, f, why, sizeof why));
}

/* ------------------------------------------------------------------ run */

/* Raise RLIMIT_NOFILE's soft limit when the run needs more descriptors. */
static int fit_descriptors(const cli_bench_args *a) {
  rlim_t need = (rlim_t)a->subscribers + (rlim_t)a->stalled + (rlim_t)a->publishers * 2 +
               (rlim_t)a->threads * 4 + 64; /* each loop: epoll, eventfd, ... */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need) return 0;
  if (rl.rlim_cur == RLIM_INFINITY) return 0;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    fprintf(stderr,
            "pusher bench: %ld subscribers need about %llu open files, but this process may open "
            "at most %llu (the hard RLIMIT_NOFILE): lower --subscribers to %lld or raise the hard "
            "limit (ulimit -Hn)\n",
            a->subscribers, (unsigned long long)need, (unsigned long long)rl.rlim_max,
            (long long)rl.rlim_max - (long long)(need - (rlim_t)a->subscribers));
    return -1;
  }
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    fprintf(stderr, "pusher bench: cannot raise the open files limit to %llu: %s\n",
            (unsigned long long)rl.rlim_cur, strerror(errno));
    return -1;
  }
  return 0;
}

static void on_closed(uv_handle_t *h) { (void)h; }

/* Shard i of T: subscribers i, i+T, i+2T, ... on its own loop (shard 0 on
 * b->loop), with its share of --connect-concurrency. */
static shard *shard_new(bench *b, int i) {
  const cli_bench_args *a = b->a;
  int T = b->nshards;
  shard *sh = calloc(1, sizeof *sh);
  if (sh == NULL) return NULL;
  sh->b = b;
  sh->idx = i;
  sh->n = a->subscribers / T + (i < a->subscribers % T);
  sh->conc = a->connect_concurrency / T + (i < a->connect_concurrency % T);
  if (sh->conc < 1) sh->conc = 1;
  h_init(&sh->lat);
  h_init(&sh->connect_h);
  h_init(&sh->subscribe_h);
  sh->subs = calloc(sh->n ? (size_t)sh->n : 1, sizeof *sh->subs);
  sh->chan_subs = calloc((size_t)a->channels, sizeof *sh->chan_subs);
  if (sh->subs == NULL || sh->chan_subs == NULL) goto fail;
  for (long j = 0; j < sh->n; j++) {
    sh->subs[j].sh = sh;
    sh->subs[j].chan = (uint32_t)((i + j * T) % a->channels);
  }
  if (i == 0) {
    sh->loop = &b->loop;
  } else {
    sh->loop = &sh->own_loop;
    if (uv_loop_init(sh->loop) != 0) goto fail;
    if (uv_async_init(sh->loop, &sh->quit, on_quit) != 0) {
      uv_loop_close(sh->loop);
      goto fail;
    }
    sh->quit.data = sh;
  }
  return sh;
fail:
  free(sh->subs);
  free(sh->chan_subs);
  free(sh);
  return NULL;
}

/* After the threads are joined: close the shard's clients and its loop
 * (shard 0's loop is b->loop, closed by the caller). */
static void shard_del(shard *sh) {
  for (long j = 0; j < sh->n; j++)
    if (sh->subs[j].c) pusher_client_del(sh->subs[j].c);
  if (sh->idx > 0) {
    uv_close((uv_handle_t *)&sh->quit, on_closed);
    uv_run(sh->loop, UV_RUN_DEFAULT); /* let every client close */
    uv_loop_close(sh->loop);
  }
}

static void shard_free(shard *sh) {
  if (sh == NULL) return;
  free(sh->subs);
  free(sh->chan_subs);
  free(sh);
}

/* Stop and join the shard threads (b->stop is set). */
static void shards_join(bench *b) {
  shards_quit(b);
  for (int i = 1; i < b->nshards; i++)
    if (b->shards[i]->thread_started) {
      pthread_join(b->shards[i]->tid, NULL);
      b->shards[i]->thread_started = 0;
    }
}

int cli_bench(int argc, char **argv) {
  cli_bench_args a;
  int rc = cli_bench_parse(argc, argv, &a);
  if (rc != 0) return rc < 0 ? CLI_EXIT_OK : rc;
  if (a.server_pid && !sample_proc(a.server_pid).ok)
    return cli_usage_error("bench", "--server-pid: no process %ld to sample (/proc/%ld/stat)",
                           a.server_pid, a.server_pid);
  if (fit_descriptors(&a) != 0) return CLI_EXIT_FAIL;

  bench *b = calloc(1, sizeof *b);
  if (b == NULL) {
    fprintf(stderr, "pusher bench: out of memory\n");
    return CLI_EXIT_FAIL;
  }
  b->a = &a;
  b->stamp_clock = a.realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC;
  b->progress = a.progress >= 0 ? a.progress : isatty(STDERR_FILENO);
  h_init(&b->lat);
  h_init(&b->connect_h);
  h_init(&b->subscribe_h);
  h_init(&b->req);
  pthread_mutex_init(&b->mu, NULL);
  /* No more loops than subscribers: a loop without any would only idle. */
  b->nshards = a.subscribers == 0 ? 1 : a.threads < a.subscribers ? (int)a.threads : (int)a.subscribers;
  b->shards = calloc((size_t)b->nshards, sizeof *b->shards);
  b->stalled = calloc(a.stalled ? (size_t)a.stalled : 1, sizeof *b->stalled);
  if (b->shards == NULL || b->stalled == NULL || uv_loop_init(&b->loop) != 0) {
    fprintf(stderr, "pusher bench: out of memory\n");
    free(b->stalled);
    free(b->shards);
    free(b);
    return CLI_EXIT_FAIL;
  }
  for (long i = 0; i < a.stalled; i++) {
    b->stalled[i].fd = -1;
    b->stalled[i].chan = (uint32_t)(i % a.channels);
  }
  int nmade = 0;
  for (; nmade < b->nshards; nmade++)
    if ((b->shards[nmade] = shard_new(b, nmade)) == NULL) break;
  signal(SIGPIPE, SIG_IGN);
  if (nmade < b->nshards) {
    fprintf(stderr, "pusher bench: out of memory\n");
    rc = CLI_EXIT_FAIL;
    goto close_loops;
  }
  rc = publishers_create(b);
  if (rc != 0) {
    fprintf(stderr, "pusher bench: cannot create the HTTP client: %s\n", pusher_strerror(rc));
    rc = CLI_EXIT_FAIL;
    goto close_loops;
  }
  uv_timer_init(&b->loop, &b->tick);
  b->tick.data = b;
  uv_async_init(&b->loop, &b->wake, on_wake);
  b->wake.data = b;
  uv_signal_init(&b->loop, &b->sigint);
  uv_signal_init(&b->loop, &b->sigterm);
  b->sigint.data = b->sigterm.data = b;
  uv_signal_start(&b->sigint, on_signal, SIGINT);
  uv_signal_start(&b->sigterm, on_signal, SIGTERM);

  if (a.server_pid) b->srv_before = sample_proc(a.server_pid);
  b->self_rss_before = self_rss_kb(0);
  b->t_start = b->t_last_progress = mono_ns();
  uv_timer_start(&b->tick, on_tick, 100, 100);
  if (a.subscribers == 0) {
    start_publishing(b);
  } else {
    for (int i = 1; i < b->nshards; i++) {
      shard *sh = b->shards[i];
      if (pthread_create(&sh->tid, NULL, shard_main, sh) != 0) {
        fprintf(stderr, "pusher bench: cannot start event loop thread %d of %d\n", i + 1, b->nshards);
        atomic_store(&b->stop, 1);
        break;
      }
      sh->thread_started = 1;
      sh->have_cpu_clock = pthread_getcpuclockid(sh->tid, &sh->cpu_clock) == 0;
    }
    if (atomic_load(&b->stop)) {
      shards_join(b);
      rc = CLI_EXIT_FAIL;
      goto close_handles;
    }
    start_more(b->shards[0]);
    shard_check(b->shards[0]);
  }
  maybe_advance(b);
  if (b->phase != P_DONE) uv_run(&b->loop, UV_RUN_DEFAULT);
  progress_clear(b);

  /* Publishers see stop at their next event (or their HTTP timeout). */
  atomic_store(&b->stop, 1);
  shards_join(b);
  for (long i = 0; i < a.publishers; i++)
    if (b->pubs[i].started) pthread_join(b->pubs[i].tid, NULL);
  merge_shards(b);
  if (b->phase == P_DONE && !b->interrupted) stalled_drain(b);

  figures f = compute(b);
  if (a.json)
    report_json(b, &f);
  else
    report_text(b, &f);
  fflush(stdout);
  if (!f.ok) {
    char why[160];
    fprintf(stderr, "pusher bench: %s\n", verdict(b, &f, why, sizeof why));
    if (b->first_error[0]) fprintf(stderr, "pusher bench: first subscriber error: %s\n", b->first_error);
    if (b->first_http_error[0]) fprintf(stderr, "pusher bench: HTTP API: %s\n", b->first_http_error);
  }
  rc = f.ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;

close_handles:
  uv_close((uv_handle_t *)&b->tick, on_closed);
  uv_close((uv_handle_t *)&b->wake, on_closed);
  uv_close((uv_handle_t *)&b->sigint, on_closed);
  uv_close((uv_handle_t *)&b->sigterm, on_closed);
close_loops:
  for (int i = 0; i < nmade; i++) shard_del(b->shards[i]);
  uv_run(&b->loop, UV_RUN_DEFAULT); /* let every client close */
  uv_loop_close(&b->loop);
  if (b->pubs)
    for (long i = 0; i < a.publishers; i++) pusher_rest_del(b->pubs[i].rest);
  free(b->pubs);
  free((void *)b->chan_expect);
  stalled_close_all(b);
  for (int i = 0; i < nmade; i++) shard_free(b->shards[i]);
  free(b->shards);
  pthread_mutex_destroy(&b->mu);
  free(b);
  return rc;
}
