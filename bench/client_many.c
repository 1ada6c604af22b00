/* client_many: N libpusher clients in loop mode on one libuv loop (one
 * process, one thread), each subscribed to one of C public channels
 * PREFIX-0 .. PREFIX-(C-1) (client i on channel i mod C, as `pusher bench`
 * spreads its subscribers), then receiving events.  It reports the
 * user-space memory each connection costs.
 *
 *   client_many --port P --clients N --channels C --prefix P --events E
 *
 * At most --concurrency clients (default 200) connect at a time.  Once all
 * are subscribed it prints
 *   READY clients=N rss_kb_per_client=.. heap_bytes_per_client=..
 * (RSS: VmRSS after minus before creating the clients; heap: bytes live in
 * libpusher's allocator, counted through pusher_client_options.mem, so
 * libuv handles embedded in our structs are included, but not libc's or
 * OpenSSL's own allocations).  Then someone publishes (bench/run.sh uses
 * `pusher bench --subscribers 0 --channel-prefix P --channels C`) and once
 * every client has E events, or after --timeout seconds without progress:
 *   RESULT clients=N subscribed=S events=got/expected rss_kb_per_client=..
 *          heap_bytes_per_client=.. maxrss_kb=..
 * Exit status 0 when every client subscribed and got its E events.  A
 * benchmark: it prints, it never judges a number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include <pusher/pusher.h>

/* ---- counting allocator: a 16-byte header holds the size */
static size_t live_bytes;

static void *m_malloc(size_t n, void *u) {
  (void)u;
  size_t *p = malloc(n + 16);
  if (!p) return NULL;
  *p = n;
  live_bytes += n;
  return (char *)p + 16;
}
static void m_free(void *q, void *u) {
  (void)u;
  if (!q) return;
  size_t *p = (size_t *)((char *)q - 16);
  live_bytes -= *p;
  free(p);
}
static void *m_calloc(size_t k, size_t n, void *u) {
  if (n && k > (SIZE_MAX - 16) / n) return NULL;
  void *q = m_malloc(k * n, u);
  if (q) memset(q, 0, k * n);
  return q;
}
static void *m_realloc(void *q, size_t n, void *u) {
  if (!q) return m_malloc(n, u);
  size_t *p = (size_t *)((char *)q - 16);
  size_t old = *p;
  size_t *r = realloc(p, n + 16);
  if (!r) return NULL;
  live_bytes = live_bytes - old + n;
  *r = n;
  return (char *)r + 16;
}
static const pusher_mem counting = {NULL, m_malloc, m_free, m_calloc, m_realloc};

typedef struct peer {
  pusher_client *c;
  long got;
  int subscribed;
} peer;

static peer *peers;
static long n_clients = 1000, n_channels = 1, want_events = 0, concurrency = 200;
static long started, subscribed, total_got, progress_mark;
static const char *host = "127.0.0.1", *key = "app-key", *prefix = "many";
static int port = 6001, ready_printed;
static double timeout_s = 30;
static long rss0, rss_ready;
static size_t heap_ready;
static uv_loop_t *loop;
static uv_timer_t watchdog;

static long rss_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static void finish(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("RESULT clients=%ld subscribed=%ld events=%ld/%ld rss_kb_per_client=%.2f heap_bytes_per_client=%.0f "
         "maxrss_kb=%ld\n",
         n_clients, subscribed, total_got, want_events * n_clients,
         (double)(rss_ready - rss0) / (double)n_clients, (double)heap_ready / (double)n_clients, ru.ru_maxrss);
  fflush(stdout);
  for (long i = 0; i < started; i++) pusher_client_del(peers[i].c);
  started = 0;
  uv_close((uv_handle_t *)&watchdog, NULL);
}

static void start_next(void);

static void on_event(pusher_client *c, const pusher_event *ev, void *u) {
  (void)c;
  if (!strncmp(ev->event, "pusher", 6)) return; /* pusher:subscription_succeeded and the like */
  peer *p = u;
  p->got++;
  total_got++;
  if (total_got == want_events * n_clients) finish();
}

static void on_subscribed(pusher_client *c, const pusher_event *ev, void *u) {
  (void)c, (void)ev;
  peer *p = u;
  if (p->subscribed) return;
  p->subscribed = 1;
  subscribed++;
  start_next();
  if (subscribed == n_clients && !ready_printed) {
    ready_printed = 1;
    rss_ready = rss_now();
    heap_ready = live_bytes;
    printf("READY clients=%ld rss_kb_per_client=%.2f heap_bytes_per_client=%.0f\n", n_clients,
           (double)(rss_ready - rss0) / (double)n_clients, (double)heap_ready / (double)n_clients);
    fflush(stdout);
    if (want_events == 0) finish();
  }
}

static void start_next(void) {
  if (started >= n_clients) return;
  long i = started;
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = host;
  o.ws_port = port;
  o.loop = loop;
  o.mem = &counting;
  o.jitter = 0;
  o.reconnect_delay = 1;
  o.max_reconnect_delay = 2;
  char ch[200];
  snprintf(ch, sizeof ch, "%s-%ld", prefix, i % n_channels);
  if (pusher_client_new(&peers[i].c, key, &o) != 0) {
    fprintf(stderr, "client_many: client_new failed at %ld\n", i);
    exit(1);
  }
  started++;
  pusher_bind(peers[i].c, ch, "pusher:subscription_succeeded", on_subscribed, &peers[i], NULL);
  pusher_bind(peers[i].c, ch, NULL, on_event, &peers[i], NULL);
  pusher_subscribe(peers[i].c, ch);
  pusher_client_connect(peers[i].c);
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  long mark = subscribed + total_got;
  if (mark != progress_mark) {
    progress_mark = mark;
    return;
  }
  fprintf(stderr, "client_many: no progress for %.0f s (%ld/%ld subscribed, %ld/%ld events)\n", timeout_s,
          subscribed, n_clients, total_got, want_events * n_clients);
  if (!ready_printed) rss_ready = rss_now(), heap_ready = live_bytes;
  finish();
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
    else if (!strcmp(argv[i], "--clients")) n_clients = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--channels")) n_channels = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--prefix")) prefix = argv[i + 1];
    else if (!strcmp(argv[i], "--events")) want_events = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--concurrency")) concurrency = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--timeout")) timeout_s = atof(argv[i + 1]);
    else {
      fprintf(stderr, "client_many: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (n_clients < 1 || n_channels < 1 || want_events < 0 || concurrency < 1 || timeout_s <= 0) {
    fprintf(stderr, "client_many: bad arguments\n");
    return 2;
  }
  loop = uv_default_loop();
  peers = calloc((size_t)n_clients, sizeof *peers);
  if (!peers) return 1;
  rss0 = rss_now();
  for (long i = 0; i < concurrency && i < n_clients; i++) start_next();
  uv_timer_init(loop, &watchdog);
  uv_timer_start(&watchdog, on_watchdog, (uint64_t)(timeout_s * 1000), (uint64_t)(timeout_s * 1000));
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  int ok = subscribed == n_clients && total_got == want_events * n_clients;
  free(peers);
  return ok ? 0 : 1;
}
