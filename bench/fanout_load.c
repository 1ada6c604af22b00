/* fanout_load: load generator for bench/server_fanout and bench/client_recv.
 *
 * Opens --subscribers N WebSocket connections (libuv + our sans-I/O
 * WebSocket layer lib/core/ws.h) to a Pusher server, subscribes each to one
 * public channel, then publishes --events M events through the HTTP API
 * (POST /apps/ID/events or batch_events, signed with lib/core/sign.h) over
 * --http-conns keep-alive connections, optionally paced at --rate events/s.
 * Every event's data carries the CLOCK_MONOTONIC time of the trigger in ns
 * ("ts=<ns> i=<seq>"); a subscriber computes trigger->receipt latency.
 *
 * With --pid P it samples the server process: VmRSS / VmHWM from
 * /proc/P/status and utime+stime from /proc/P/stat (at "all subscribed" and
 * at the end), so the CPU figure covers the publish phase only.
 *
 * Prints one line "RESULT key=value ..." (for bench/run.sh) and a readable
 * summary on stderr.  It never judges the numbers: exit status 0 when every
 * expected delivery arrived, 1 otherwise (timeout, errors), 2 for usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "core/sign.h"
#include "core/ws.h"

/* ------------------------------------------------------------ settings */
static const char *g_host = "127.0.0.1";
static int g_port = 6001;
static const char *g_app_id = "app-id", *g_key = "app-key", *g_secret = "app-secret";
static const char *g_channel = "bench";
static long g_nsubs = 1000, g_nevents = 1000, g_http_conns = 2, g_batch = 1;
static double g_rate = 0;          /* events/s, 0 = as fast as the HTTP replies come */
static long g_max_connecting = 64; /* connection attempts in flight */
static double g_timeout = 30;      /* seconds without progress => give up */
static int g_pid = 0;
static const char *g_label = "server";
static long g_payload = 0;         /* pad the data to this many bytes */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void rnd(uint8_t *buf, size_t n, void *u) {
  (void)u;
  static uint64_t s = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    buf[i] = (uint8_t)s;
  }
}

/* ------------------------------------------------------------ /proc sampling */
typedef struct proc_sample { long rss_kb, hwm_kb; double cpu_s; } proc_sample;

static proc_sample sample_proc(int pid) {
  proc_sample s = {-1, -1, -1};
  if (pid <= 0) return s;
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      if (!strncmp(line, "VmRSS:", 6)) s.rss_kb = strtol(line + 6, NULL, 10);
      else if (!strncmp(line, "VmHWM:", 6)) s.hwm_kb = strtol(line + 6, NULL, 10);
    }
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  f = fopen(path, "r");
  if (f) {
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (p) {
      /* after ") ": field 3 (state) ... utime is field 14, stime 15 */
      unsigned long ut = 0, st = 0;
      int field = 2;
      for (char *t = strtok(p + 1, " "); t; t = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoul(t, NULL, 10);
        if (field == 15) { st = strtoul(t, NULL, 10); break; }
      }
      s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
  }
  return s;
}

/* ------------------------------------------------------------ state */
static uv_loop_t *loop;
static uint64_t *lat_ns;          /* one per expected delivery */
static uint64_t n_deliv, n_expected, n_bad_deliv;
static long n_subscribed, n_connecting, n_started, n_sub_failed;
static long n_triggered, n_http_ok, n_http_fail, n_http_inflight;
static uint64_t t_start_connect, t_all_subscribed, t_first_trigger, t_last_deliv, t_last_progress;
static proc_sample ps_base, ps_idle, ps_end;
static int publishing, finished;
static uv_timer_t tick;

static void maybe_finish(void);

/* ------------------------------------------------------------ write helper */
typedef struct wreq { uv_write_t w; char data[]; } wreq;
static void on_written(uv_write_t *w, int status) { (void)status; free(w); }
static void write_bytes(uv_stream_t *s, const void *p, size_t n) {
  wreq *r = malloc(sizeof *r + n);
  if (!r) abort();
  memcpy(r->data, p, n);
  uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
  if (uv_write(&r->w, s, &b, 1, on_written) != 0) free(r);
}
static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h; (void)sz;
  static char buf[256 * 1024];
  *b = uv_buf_init(buf, sizeof buf);
}

/* ------------------------------------------------------------ subscribers */
typedef struct sub {
  uv_tcp_t tcp;
  uv_connect_t creq;
  pusher__ws *ws;
  int subscribed, dead;
} sub;
static sub *subs;

static void sub_flush(sub *s) {
  const uint8_t *p;
  size_t n;
  while ((n = pusher__ws_pending(s->ws, &p)) > 0) {
    write_bytes((uv_stream_t *)&s->tcp, p, n);
    pusher__ws_consume(s->ws, n);
  }
}

static void start_more_subs(void);

static void sub_failed(sub *s, const char *why) {
  if (s->dead) return;
  s->dead = 1;
  if (!s->subscribed) { n_connecting--; n_sub_failed++; }
  if (n_sub_failed + n_bad_deliv < 5) fprintf(stderr, "fanout_load: subscriber %ld: %s\n", (long)(s - subs), why);
  if (!uv_is_closing((uv_handle_t *)&s->tcp)) uv_close((uv_handle_t *)&s->tcp, NULL);
  if (!s->subscribed) start_more_subs();
  maybe_finish();
}

static void on_ws_text(const uint8_t *msg, size_t len, void *u) {
  sub *s = u;
  /* The hot path first: an event on our channel. */
  const char *m = (const char *)msg;
  const char *ts = memmem(m, len, "ts=", 3);
  if (ts && s->subscribed) {
    uint64_t t = strtoull(ts + 3, NULL, 10), now = now_ns();
    if (n_deliv < n_expected) lat_ns[n_deliv] = now > t ? now - t : 0;
    n_deliv++;
    t_last_deliv = t_last_progress = now;
    return;
  }
  if (memmem(m, len, "pusher:connection_established", 29)) {
    char sub_msg[512];
    int k = snprintf(sub_msg, sizeof sub_msg,
                     "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}", g_channel);
    pusher__ws_send_text(s->ws, sub_msg, (size_t)k);
  } else if (memmem(m, len, "pusher_internal:subscription_succeeded", 38)) {
    if (!s->subscribed) {
      s->subscribed = 1;
      n_subscribed++;
      n_connecting--;
      t_last_progress = now_ns();
      start_more_subs();
    }
  } else if (memmem(m, len, "pusher:ping", 11)) {
    pusher__ws_send_text(s->ws, "{\"event\":\"pusher:pong\",\"data\":{}}", 33);
  } else if (memmem(m, len, "pusher:error", 12)) {
    if (n_bad_deliv++ < 5) fprintf(stderr, "fanout_load: server error: %.*s\n", (int)len, m);
  }
}
static void on_ws_close(uint16_t code, const char *r, size_t rl, void *u) {
  char why[160];
  snprintf(why, sizeof why, "closed by server %u %.*s", code, (int)rl, r);
  sub_failed(u, why);
}
static void on_ws_error(int err, const char *detail, void *u) { sub_failed(u, detail ? detail : "ws error"); }
static const pusher__ws_callbacks ws_cb = {NULL, on_ws_text, on_ws_close, on_ws_error};

static void sub_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  sub *s = st->data;
  if (s->dead) return;
  if (n < 0) { sub_failed(s, uv_strerror((int)n)); return; }
  if (n == 0) return;
  pusher__ws_recv(s->ws, (const uint8_t *)b->base, (size_t)n);
  if (!s->dead) sub_flush(s);
}

static void sub_connected(uv_connect_t *c, int status) {
  sub *s = c->data;
  if (status < 0) { sub_failed(s, uv_strerror(status)); return; }
  uv_tcp_nodelay(&s->tcp, 1);
  sub_flush(s); /* the HTTP Upgrade request */
  uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, sub_read);
}

static void start_more_subs(void) {
  while (n_started < g_nsubs && n_connecting < g_max_connecting) {
    sub *s = &subs[n_started++];
    char host[300], path[512];
    snprintf(host, sizeof host, "%s:%d", g_host, g_port);
    snprintf(path, sizeof path, "/app/%s?protocol=7&client=libpusher-bench&version=0.1&flash=false", g_key);
    pusher__ws_config cfg = {NULL, rnd, NULL, 0, 0};
    if (pusher__ws_client_new(&s->ws, &cfg, host, path, NULL, &ws_cb, s) != 0) abort();
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->creq.data = s;
    struct sockaddr_in a;
    uv_ip4_addr(g_host, g_port, &a);
    n_connecting++;
    uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&a, sub_connected);
  }
}

/* ------------------------------------------------------------ HTTP publisher */
typedef struct hconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  int up, busy, closing;
  char *in;
  size_t inlen, incap;
} hconn;
static hconn *hconns;
static int http_err_printed;

static void pump_triggers(void);
static void hconn_open(hconn *h);

static void send_trigger(hconn *h) {
  char body[16384];
  size_t bl = 0;
  long count = g_batch > 1 ? g_batch : 1;
  if (count > g_nevents - n_triggered) count = g_nevents - n_triggered;
  char pad[8192];
  long padn = g_payload > 40 ? g_payload - 40 : 0;
  if (padn > (long)sizeof pad - 1) padn = sizeof pad - 1;
  memset(pad, 'x', (size_t)padn);
  pad[padn] = '\0';
  if (g_batch > 1) bl += (size_t)snprintf(body + bl, sizeof body - bl, "{\"batch\":[");
  for (long i = 0; i < count; i++) {
    bl += (size_t)snprintf(body + bl, sizeof body - bl,
                           "%s{\"name\":\"bench\",\"channel\":\"%s\",\"data\":\"ts=%" PRIu64 " i=%ld %s\"}",
                           i ? "," : "", g_channel, now_ns(), n_triggered + i, pad);
  }
  if (g_batch > 1) bl += (size_t)snprintf(body + bl, sizeof body - bl, "]}");
  char path[256];
  snprintf(path, sizeof path, "/apps/%s/%s", g_app_id, g_batch > 1 ? "batch_events" : "events");
  char *query = NULL;
  if (pusher__rest_sign(NULL, "POST", path, NULL, 0, body, bl, g_key, g_secret, (int64_t)time(NULL),
                        &query, NULL) != 0) {
    fprintf(stderr, "fanout_load: signing failed\n");
    exit(1);
  }
  char head[2048];
  int hl = snprintf(head, sizeof head,
                    "POST %s?%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n", path, query, g_host, g_port, bl);
  free(query);
  char *req = malloc((size_t)hl + bl);
  memcpy(req, head, (size_t)hl);
  memcpy(req + hl, body, bl);
  write_bytes((uv_stream_t *)&h->tcp, req, (size_t)hl + bl);
  free(req);
  if (!t_first_trigger) t_first_trigger = now_ns();
  n_triggered += count;
  h->busy = 1;
  n_http_inflight++;
}

/* Returns the length of one complete response at the start of buf, 0 if incomplete. */
static size_t http_response_len(const char *buf, size_t len, int *status, int *close) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t hdr = (size_t)(end - buf) + 4;
  *status = len > 12 ? atoi(buf + 9) : 0;
  long clen = 0;
  int chunked = 0;
  for (const char *p = buf; p < end;) {
    const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (!eol) break;
    if (!strncasecmp(p, "content-length:", 15)) clen = strtol(p + 15, NULL, 10);
    if (!strncasecmp(p, "connection:", 11) && memmem(p, (size_t)(eol - p), "close", 5)) *close = 1;
    if (!strncasecmp(p, "transfer-encoding:", 18) && memmem(p, (size_t)(eol - p), "chunked", 7)) chunked = 1;
    p = eol + 2;
  }
  if (chunked) {
    const char *z = memmem(buf + hdr, len - hdr, "0\r\n\r\n", 5);
    return z ? (size_t)(z - buf) + 5 : 0;
  }
  return len >= hdr + (size_t)clen ? hdr + (size_t)clen : 0;
}

static void hconn_closed(uv_handle_t *hd) {
  hconn *h = hd->data;
  h->up = h->closing = 0;
  h->inlen = 0;
  if (!finished && n_triggered < g_nevents) hconn_open(h);
}

static void hconn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  hconn *h = st->data;
  if (n < 0) {
    if (h->busy) { h->busy = 0; n_http_inflight--; n_http_fail++; }
    if (!h->closing) { h->closing = 1; uv_close((uv_handle_t *)&h->tcp, hconn_closed); }
    maybe_finish();
    return;
  }
  if (h->inlen + (size_t)n > h->incap) {
    h->incap = (h->inlen + (size_t)n) * 2;
    h->in = realloc(h->in, h->incap);
  }
  memcpy(h->in + h->inlen, b->base, (size_t)n);
  h->inlen += (size_t)n;
  int status, close = 0;
  size_t rl;
  while ((rl = http_response_len(h->in, h->inlen, &status, &close)) > 0) {
    /* soketi answers some errors with 200 and an "error" member */
    if (status == 200 && !memmem(h->in, rl, "\"error\"", 7)) n_http_ok++;
    else {
      n_http_fail++;
      if (!http_err_printed++) fprintf(stderr, "fanout_load: HTTP %d: %.*s\n", status, (int)rl, h->in);
    }
    memmove(h->in, h->in + rl, h->inlen - rl);
    h->inlen -= rl;
    if (h->busy) { h->busy = 0; n_http_inflight--; }
    t_last_progress = now_ns();
  }
  if (close && !h->closing) { /* soketi: "Connection: close" on every reply */
    h->closing = 1;
    h->up = 0;
    uv_close((uv_handle_t *)&h->tcp, hconn_closed);
  }
  pump_triggers();
  maybe_finish();
}

static void hconn_connected(uv_connect_t *c, int status) {
  hconn *h = c->data;
  if (status < 0) {
    fprintf(stderr, "fanout_load: HTTP connect: %s\n", uv_strerror(status));
    h->closing = 1;
    uv_close((uv_handle_t *)&h->tcp, hconn_closed);
    return;
  }
  uv_tcp_nodelay(&h->tcp, 1);
  h->up = 1;
  uv_read_start((uv_stream_t *)&h->tcp, alloc_cb, hconn_read);
  pump_triggers();
}

static void hconn_open(hconn *h) {
  uv_tcp_init(loop, &h->tcp);
  h->tcp.data = h;
  h->creq.data = h;
  struct sockaddr_in a;
  uv_ip4_addr(g_host, g_port, &a);
  uv_tcp_connect(&h->creq, &h->tcp, (const struct sockaddr *)&a, hconn_connected);
}

static void pump_triggers(void) {
  if (!publishing || finished) return;
  for (long i = 0; i < g_http_conns && n_triggered < g_nevents; i++) {
    hconn *h = &hconns[i];
    if (!h->up || h->busy || h->closing) continue;
    if (g_rate > 0) {
      double allowed = (double)(now_ns() - t_first_trigger) / 1e9 * g_rate;
      if (t_first_trigger && (double)n_triggered >= allowed + 1) return;
    }
    send_trigger(h);
  }
}

/* ------------------------------------------------------------ phases */
static void start_publishing(void) {
  publishing = 1;
  t_all_subscribed = now_ns();
  ps_idle = sample_proc(g_pid);
  n_expected = (uint64_t)g_nevents * (uint64_t)n_subscribed;
  lat_ns = calloc(n_expected ? n_expected : 1, sizeof *lat_ns);
  hconns = calloc((size_t)g_http_conns, sizeof *hconns);
  for (long i = 0; i < g_http_conns; i++) hconn_open(&hconns[i]);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void report(void) {
  ps_end = sample_proc(g_pid);
  uint64_t n = n_deliv < n_expected ? n_deliv : n_expected;
  qsort(lat_ns, n, sizeof *lat_ns, cmp_u64);
  double p50 = n ? lat_ns[n / 2] / 1e3 : -1, p99 = n ? lat_ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3 : -1;
  double pmax = n ? lat_ns[n - 1] / 1e3 : -1;
  uint64_t tend = t_last_deliv ? t_last_deliv : now_ns();
  double el = t_first_trigger ? (double)(tend - t_first_trigger) / 1e9 : 0;
  double thr = el > 0 ? (double)n_deliv / el : 0;
  double cpu = ps_end.cpu_s >= 0 && ps_idle.cpu_s >= 0 ? ps_end.cpu_s - ps_idle.cpu_s : -1;
  double cpu_us_msg = cpu >= 0 && n_deliv ? cpu * 1e6 / (double)n_deliv : -1;
  double connect_s = t_all_subscribed ? (double)(t_all_subscribed - t_start_connect) / 1e9 : -1;
  printf("RESULT label=%s subscribers=%ld events=%ld expected=%" PRIu64 " delivered=%" PRIu64
         " http_ok=%ld http_fail=%ld sub_failed=%ld connect_s=%.3f publish_s=%.3f"
         " throughput_msg_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f"
         " rss_idle_kb=%ld rss_end_kb=%ld hwm_kb=%ld cpu_s=%.3f cpu_us_per_msg=%.3f"
         " rss_base_kb=%ld rss_idle_per_conn_kb=%.2f\n",
         g_label, n_subscribed, g_nevents, n_expected, n_deliv, n_http_ok, n_http_fail,
         n_sub_failed, connect_s, el, thr, p50, p99, pmax, ps_idle.rss_kb, ps_end.rss_kb,
         ps_end.hwm_kb, cpu, cpu_us_msg,
         ps_base.rss_kb,
         n_subscribed && ps_idle.rss_kb >= 0 && ps_base.rss_kb >= 0
             ? (double)(ps_idle.rss_kb - ps_base.rss_kb) / (double)n_subscribed : -1);
  fflush(stdout);
  fprintf(stderr,
          "%s: %ld subscribers, %ld events: %" PRIu64 "/%" PRIu64 " delivered in %.3f s = %.0f msg/s, "
          "latency p50 %.0f us p99 %.0f us; server RSS idle %ld KiB end %ld KiB HWM %ld KiB, "
          "CPU %.3f s = %.3f us/msg\n",
          g_label, n_subscribed, g_nevents, n_deliv, n_expected, el, thr, p50, p99, ps_idle.rss_kb,
          ps_end.rss_kb, ps_end.hwm_kb, cpu, cpu_us_msg);
}

static void close_all(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void maybe_finish(void) {
  if (finished) return;
  int done = 0;
  if (publishing && n_triggered >= g_nevents && n_http_inflight == 0) {
    if (n_expected == 0 || n_deliv >= n_expected) done = 1;
  }
  if (!publishing && n_started >= g_nsubs && n_connecting == 0 && n_subscribed + n_sub_failed >= g_nsubs) {
    if (n_subscribed == 0 && g_nsubs > 0) done = 1; /* nobody to publish to */
  }
  if (!done) return;
  finished = 1;
  report();
  uv_walk(loop, close_all, NULL);
}

static void on_tick(uv_timer_t *t) {
  (void)t;
  if (!publishing && n_started >= g_nsubs && n_connecting == 0 && n_subscribed > 0) start_publishing();
  pump_triggers();
  if (!finished && (double)(now_ns() - t_last_progress) / 1e9 > g_timeout) {
    fprintf(stderr, "fanout_load: no progress for %.0f s (subscribed %ld/%ld, triggered %ld, delivered %" PRIu64 "/%" PRIu64 ")\n",
            g_timeout, n_subscribed, g_nsubs, n_triggered, n_deliv, n_expected);
    finished = 1;
    report();
    uv_walk(loop, close_all, NULL);
  }
  maybe_finish();
}

static void usage(void) {
  fprintf(stderr,
          "usage: fanout_load [--host H] [--port P] [--app-id ID] [--key K] [--secret S]\n"
          "  [--channel C] [--subscribers N] [--events M] [--http-conns K] [--batch B]\n"
          "  [--rate EVENTS_PER_S] [--payload BYTES] [--pid SERVER_PID] [--label NAME]\n"
          "  [--timeout S]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
    if (!v) usage();
    i++;
    if (!strcmp(a, "--host")) g_host = v;
    else if (!strcmp(a, "--port")) g_port = atoi(v);
    else if (!strcmp(a, "--app-id")) g_app_id = v;
    else if (!strcmp(a, "--key")) g_key = v;
    else if (!strcmp(a, "--secret")) g_secret = v;
    else if (!strcmp(a, "--channel")) g_channel = v;
    else if (!strcmp(a, "--subscribers")) g_nsubs = atol(v);
    else if (!strcmp(a, "--events")) g_nevents = atol(v);
    else if (!strcmp(a, "--http-conns")) g_http_conns = atol(v);
    else if (!strcmp(a, "--batch")) g_batch = atol(v);
    else if (!strcmp(a, "--rate")) g_rate = atof(v);
    else if (!strcmp(a, "--payload")) g_payload = atol(v);
    else if (!strcmp(a, "--pid")) g_pid = atoi(v);
    else if (!strcmp(a, "--label")) g_label = v;
    else if (!strcmp(a, "--timeout")) g_timeout = atof(v);
    else usage();
  }
  if (g_nsubs < 0 || g_nevents < 0 || g_http_conns < 1 || g_batch < 1 || g_batch > 10) usage();
  loop = uv_default_loop();
  subs = calloc((size_t)(g_nsubs ? g_nsubs : 1), sizeof *subs);
  ps_base = sample_proc(g_pid);
  t_start_connect = t_last_progress = now_ns();
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 1, 1);
  if (g_nsubs == 0) start_publishing();
  else start_more_subs();
  uv_run(loop, UV_RUN_DEFAULT);
  int ok = n_expected ? n_deliv >= n_expected : (n_http_fail == 0 && n_triggered >= g_nevents);
  return ok ? 0 : 1;
}
