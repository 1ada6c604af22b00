/* client_recv: our C client (public API, loop mode on the caller's libuv
 * loop, one thread) receives --count events on one channel and reports its
 * own CPU time and memory.
 *
 * Prints "READY" on stdout once the subscription succeeded (bench/run.sh
 * starts the publisher then), and at the end one line
 *   RESULT label=libpusher events=N cpu_s=.. cpu_us_per_event=..
 *          rss_ready_kb=.. maxrss_kb=..
 *          user_s=.. sys_s=.. wakeups=.. events_per_wakeup=..
 * cpu_s is user+system time of this process between READY and the last
 * event (getrusage), user_s and sys_s its two parts, maxrss_kb the peak
 * resident set of the whole run.  wakeups counts the voluntary context
 * switches over the same span (ru_nvcsw): each is one sleep in epoll_wait
 * that data ended, so events_per_wakeup says how many events one wakeup
 * (one epoll_wait + read) carried. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include <pusher/pusher.h>

static long want = 100000, got;
static size_t bytes;
static double user_ready, sys_ready;
static long nvcsw_ready;
static long rss_ready;
static pusher_client *client;
static uv_loop_t *loop;
static uv_timer_t guard;

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + tv.tv_usec / 1e6; }

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
  double user = tv_s(ru.ru_utime) - user_ready, sys = tv_s(ru.ru_stime) - sys_ready;
  double cpu = user + sys;
  long wakeups = ru.ru_nvcsw - nvcsw_ready;
  printf("RESULT label=libpusher events=%ld bytes=%zu cpu_s=%.3f cpu_us_per_event=%.3f "
         "rss_ready_kb=%ld maxrss_kb=%ld user_s=%.3f sys_s=%.3f wakeups=%ld events_per_wakeup=%.2f\n",
         got, bytes, cpu, got ? cpu * 1e6 / (double)got : -1, rss_ready, ru.ru_maxrss, user, sys,
         wakeups, wakeups > 0 ? (double)got / (double)wakeups : -1);
  fflush(stdout);
  pusher_client_del(client);
  client = NULL;
  uv_close((uv_handle_t *)&guard, NULL);
}

static void on_event(pusher_client *c, const pusher_event *ev, void *u) {
  (void)c; (void)u;
  got++;
  bytes += ev->data_len;
  if (got == want) finish();
}

static void on_ready(pusher_client *c, const pusher_event *ev, void *u) {
  (void)c; (void)ev; (void)u;
  rss_ready = rss_now();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  user_ready = tv_s(ru.ru_utime);
  sys_ready = tv_s(ru.ru_stime);
  nvcsw_ready = ru.ru_nvcsw;
  printf("READY\n");
  fflush(stdout);
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *u) {
  (void)c; (void)u;
  (void)ev;
}

static void on_guard(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "client_recv: timeout after %ld/%ld events\n", got, want);
  finish();
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *key = "app-key", *channel = "bench";
  int port = 6001;
  double timeout = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
    else if (!strcmp(argv[i], "--channel")) channel = argv[i + 1];
    else if (!strcmp(argv[i], "--count")) want = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--timeout")) timeout = atof(argv[i + 1]);
    else { fprintf(stderr, "client_recv: unknown option %s\n", argv[i]); return 2; }
  }
  loop = uv_default_loop();
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = host;
  o.ws_port = port;
  o.loop = loop;
  o.max_reconnect_delay = 1;
  o.reconnect_delay = 1;
  if (pusher_client_new(&client, key, &o) != 0) { fprintf(stderr, "client_recv: client_new failed\n"); return 1; }
  pusher_connection_bind(client, NULL, on_conn, NULL, NULL);
  pusher_bind(client, channel, "pusher:subscription_succeeded", on_ready, NULL, NULL);
  pusher_bind(client, channel, "bench", on_event, NULL, NULL);
  pusher_subscribe(client, channel);
  pusher_client_connect(client);
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, on_guard, (uint64_t)(timeout * 1000), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return got == want ? 0 : 1;
}
