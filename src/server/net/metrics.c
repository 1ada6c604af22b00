/* pusherd net layer: the metrics listener and the Prometheus renderer.
 * See pd_metrics.h and docs/operations.md. */
#include "net/pd_metrics.h"
#include "net/pd_net.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

typedef struct mconn {
  uv_tcp_t tcp;
  struct mconn *prev, *next;
  pd_metrics *m;
  char req[PD_METRICS_REQ_CAP];
  size_t len;
  uint64_t started_ms;
  int answered, closing;
  uv_write_t wr;
  uv_shutdown_t sd;
  char *out;
} mconn;

struct pd_metrics {
  uv_loop_t *loop;
  pd_core *core;
  uv_tcp_t listener;
  uv_timer_t timer;
  int listening, closed;
  mconn *conns;
  size_t nconns;
  struct {
    pd_metrics_collector fn;
    void *ud;
  } coll[PD_METRICS_MAX_COLLECTORS];
  size_t ncoll;
  pd_metrics_ready_fn ready;
  void *ready_ud;
  double start_time_s;
};

/* ------------------------------------------------------------------ text */
static void put(pd_mbuf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 16384;
    while (nc < b->len + n + 1) nc *= 2;
    if (nc > PD_METRICS_OUT_CAP) {
      b->failed = 1;
      return;
    }
    char *np = pd_realloc(b->p, nc);
    if (!np) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void puts_(pd_mbuf *b, const char *s) { put(b, s, strlen(s)); }

/* HELP text escapes \ and newline; label values also ". */
static void put_escaped(pd_mbuf *b, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\') puts_(b, "\\\\");
    else if (*s == '\n') puts_(b, "\\n");
    else if (quote && *s == '"') puts_(b, "\\\"");
    else put(b, s, 1);
  }
}

void pd_metrics_family(pd_mbuf *b, const char *name, const char *type, const char *help) {
  puts_(b, "# HELP ");
  puts_(b, name);
  puts_(b, " ");
  put_escaped(b, help, 0);
  puts_(b, "\n# TYPE ");
  puts_(b, name);
  puts_(b, " ");
  puts_(b, type);
  puts_(b, "\n");
}

static void labels(pd_mbuf *b, const char *l1, const char *v1, const char *l2, const char *v2) {
  if (!l1) return;
  puts_(b, "{");
  puts_(b, l1);
  puts_(b, "=\"");
  put_escaped(b, v1 ? v1 : "", 1);
  puts_(b, "\"");
  if (l2) {
    puts_(b, ",");
    puts_(b, l2);
    puts_(b, "=\"");
    put_escaped(b, v2 ? v2 : "", 1);
    puts_(b, "\"");
  }
  puts_(b, "}");
}

void pd_metrics_u64(pd_mbuf *b, const char *name, const char *l1, const char *v1, const char *l2,
                    const char *v2, uint64_t value) {
  char num[32];
  puts_(b, name);
  labels(b, l1, v1, l2, v2);
  snprintf(num, sizeof num, " %llu\n", (unsigned long long)value);
  puts_(b, num);
}

void pd_metrics_double(pd_mbuf *b, const char *name, const char *l1, const char *v1, double value) {
  char num[48];
  puts_(b, name);
  labels(b, l1, v1, NULL, NULL);
  snprintf(num, sizeof num, " %.6f\n", value);
  puts_(b, num);
}

/* ------------------------------------------------------------------ families */
/* A per-app counter or gauge: one sample per configured app (apps removed
 * by a reload are left out). */
#define APP_FAMILY(b, core, name, type, help, expr)                            \
  do {                                                                         \
    pd_metrics_family(b, name, type, help);                                    \
    for (size_t i_ = 0; i_ < (core)->napps; i_++) {                            \
      const pd_app *app = (core)->apps[i_];                                    \
      if (!app->removed) pd_metrics_u64(b, name, "app_id", app->cfg->id, NULL, NULL, (uint64_t)(expr)); \
    }                                                                          \
  } while (0)

/* Channels with at least one subscriber here (a cache channel keeps its
 * entry while its cache is valid, subscribed or not). */
static size_t occupied(const pd_app *app) {
  size_t n = 0;
  for (size_t i = 0; i < app->channels.nb; i++)
    for (pd_map_ent *e = app->channels.b[i]; e; e = e->next) n += ((pd_channel *)e->val)->nsubs > 0;
  return n;
}

static void core_families(pd_mbuf *b, pd_core *core) {
  APP_FAMILY(b, core, "pusherd_connections", "gauge", "WebSocket connections open now (established)",
             app->connections);
  APP_FAMILY(b, core, "pusherd_connections_total", "counter", "WebSocket connections established since start",
             app->stats.connections_total);
  APP_FAMILY(b, core, "pusherd_channels", "gauge", "Channels with subscribers on this node", occupied(app));
  APP_FAMILY(b, core, "pusherd_ws_messages_received_total", "counter",
             "WebSocket data messages received from clients", app->stats.ws_msgs_in);
  APP_FAMILY(b, core, "pusherd_ws_messages_sent_total", "counter",
             "Pusher messages queued to clients (events, protocol replies, errors)", app->stats.ws_msgs_out);
  APP_FAMILY(b, core, "pusherd_ws_received_bytes_total", "counter",
             "WebSocket bytes received from clients, framing included", app->stats.ws_bytes_in);
  APP_FAMILY(b, core, "pusherd_ws_sent_bytes_total", "counter",
             "WebSocket bytes queued to clients, framing included", app->stats.ws_bytes_out);
  APP_FAMILY(b, core, "pusherd_events_published_total", "counter",
             "Events accepted by the HTTP API (a batch of k events counts k)", app->stats.events_published);
  APP_FAMILY(b, core, "pusherd_client_events_total", "counter", "Client events accepted and broadcast",
             app->stats.client_events);
  APP_FAMILY(b, core, "pusherd_output_queue_closes_total", "counter",
             "Connections closed with 4100 because their output queue went over its cap",
             app->stats.outq_closes);
  pd_metrics_family(b, "pusherd_rate_limited_requests_total", "counter",
                    "HTTP API requests answered 429 by the app's rate limits");
  for (size_t i = 0; i < core->napps; i++) {
    const pd_app *app = core->apps[i];
    if (app->removed) continue;
    pd_metrics_u64(b, "pusherd_rate_limited_requests_total", "app_id", app->cfg->id, "limit", "events",
                   app->stats.rate_limited[0]);
    pd_metrics_u64(b, "pusherd_rate_limited_requests_total", "app_id", app->cfg->id, "limit", "reads",
                   app->stats.rate_limited[1]);
  }
  /* the window as this node sees it: its own use plus what other nodes
   * reported for the same wall-clock second (core/pd_ratelimit.h) */
  pd_metrics_family(b, "pusherd_rate_limit_window_used", "gauge",
                    "Units of the current one-second rate-limit window used (this node and, with --redis, the others)");
  uint64_t sec = (uint64_t)time(NULL);
  for (size_t i = 0; i < core->napps; i++) {
    const pd_app *app = core->apps[i];
    if (app->removed) continue;
    for (int k = 0; k < 2; k++)
      pd_metrics_u64(b, "pusherd_rate_limit_window_used", "app_id", app->cfg->id, "limit", k ? "reads" : "events",
                     app->rl_sec[k] == sec ? (uint64_t)(app->rl_used[k] + app->rl_remote[k]) : 0);
  }
  pd_metrics_family(b, "pusherd_http_requests_total", "counter",
                    "HTTP requests answered on the app port, by route and status");
  for (int r = 0; r < PD_ROUTE_N; r++)
    for (int st = 0; st < PD_STATUS_N; st++) {
      if (!core->stats.http[r][st]) continue;
      char code[16];
      int sc = pd_status_of_slot(st);
      if (sc) snprintf(code, sizeof code, "%d", sc);
      else snprintf(code, sizeof code, "other");
      pd_metrics_u64(b, "pusherd_http_requests_total", "route", pd_route_name(r), "status", code,
                     core->stats.http[r][st]);
    }
  pd_metrics_family(b, "pusherd_config_reloads_total", "counter", "SIGHUP reloads of --config, by result");
  pd_metrics_u64(b, "pusherd_config_reloads_total", "result", "ok", NULL, NULL, core->stats.reloads_ok);
  pd_metrics_u64(b, "pusherd_config_reloads_total", "result", "failed", NULL, NULL, core->stats.reloads_failed);
}

static void process_families(pd_metrics *m, pd_mbuf *b) {
  long page = sysconf(_SC_PAGESIZE);
  unsigned long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  pd_metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes");
  pd_metrics_u64(b, "process_resident_memory_bytes", NULL, NULL, NULL, NULL,
                 (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096));
  struct rusage ru;
  double cpu = 0;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
          (double)ru.ru_stime.tv_usec / 1e6;
  pd_metrics_family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds");
  pd_metrics_double(b, "process_cpu_seconds_total", NULL, NULL, cpu);
  pd_metrics_family(b, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch");
  pd_metrics_double(b, "process_start_time_seconds", NULL, NULL, m->start_time_s);
}

void pd_metrics_render(pd_metrics *m, pd_mbuf *b) {
  memset(b, 0, sizeof *b);
  core_families(b, m->core);
  for (size_t i = 0; i < m->ncoll; i++) m->coll[i].fn(b, m->core, m->coll[i].ud);
  process_families(m, b);
}

/* ------------------------------------------------------------------ HTTP */
static void mconn_close_cb(uv_handle_t *h) {
  mconn *c = h->data;
  pd_metrics *m = c->m;
  if (c->prev) c->prev->next = c->next;
  else m->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  m->nconns--;
  pd_free(c->out);
  pd_free(c);
}

static void mconn_close(mconn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, mconn_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)status;
  mconn_close(req->data);
}

static void write_cb(uv_write_t *req, int status) {
  mconn *c = req->data;
  if (status < 0 || c->closing) {
    mconn_close(c);
    return;
  }
  /* the request was read whole before answering, so a half-close (FIN)
   * and then the close do not turn into a reset that could cut the reply */
  c->sd.data = c;
  if (uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) mconn_close(c);
}

static void respond(mconn *c, int status, const char *ctype, const char *body, size_t len, int head_only) {
  char hdr[256];
  int hl = snprintf(hdr, sizeof hdr,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                    status, status == 200 ? "OK" : pd_http_status_text(status), ctype, len);
  size_t n = (size_t)hl + (head_only ? 0 : len);
  c->out = pd_alloc(n);
  c->answered = 1;
  if (!c->out) {
    mconn_close(c);
    return;
  }
  memcpy(c->out, hdr, (size_t)hl);
  if (!head_only && len) memcpy(c->out + hl, body, len);
  uv_buf_t buf = uv_buf_init(c->out, (unsigned)n);
  c->wr.data = c;
  if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, write_cb) != 0) mconn_close(c);
}

static void respond_json(mconn *c, int status, const char *json, int head_only) {
  respond(c, status, "application/json", json, strlen(json), head_only);
}

static void handle(mconn *c) {
  pd_metrics *m = c->m;
  /* request line: METHOD SP TARGET SP VERSION */
  char method[16], target[1024];
  if (sscanf(c->req, "%15s %1023s", method, target) != 2) {
    respond_json(c, 400, "{\"error\":\"Bad request line\"}\n", 0);
    return;
  }
  char *q = strchr(target, '?');
  if (q) *q = 0;
  int head = strcmp(method, "HEAD") == 0;
  if (strcmp(method, "GET") != 0 && !head) {
    respond_json(c, 405, "{\"error\":\"Method not allowed: use GET\"}\n", 0);
    return;
  }
  if (strcmp(target, "/metrics") == 0) {
    pd_mbuf b;
    pd_metrics_render(m, &b);
    if (b.failed) {
      pd_log(PD_LOG_ERROR, "msg=\"metrics output over its cap or out of memory\" cap=%u", PD_METRICS_OUT_CAP);
      respond_json(c, 500, "{\"error\":\"metrics output over its cap or out of memory\"}\n", head);
    } else {
      respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len, head);
    }
    pd_free(b.p);
  } else if (strcmp(target, "/health") == 0) {
    respond_json(c, 200, "{\"ok\":true}\n", head);
  } else if (strcmp(target, "/ready") == 0) {
    const char *why = NULL;
    int ready = 1;
    if (m->core->draining) ready = 0, why = "shutting down";
    else if (m->ready && !m->ready(&why, m->ready_ud)) ready = 0;
    if (ready) {
      respond_json(c, 200, "{\"ready\":true}\n", head);
    } else {
      char body[200];
      snprintf(body, sizeof body, "{\"ready\":false,\"reason\":\"%s\"}\n", why ? why : "not ready");
      respond_json(c, 503, body, head);
    }
  } else {
    respond_json(c, 404, "{\"error\":\"Not found: GET /metrics, /health or /ready\"}\n", head);
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  mconn *c = h->data;
  (void)suggested;
  if (c->answered || c->len >= sizeof c->req - 1) {
    static char discard[4096]; /* after the reply: input is read and dropped */
    *buf = uv_buf_init(discard, sizeof discard);
    return;
  }
  *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - 1 - c->len));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  mconn *c = st->data;
  (void)buf;
  if (nread < 0) {
    mconn_close(c);
    return;
  }
  if (c->answered || nread == 0) return;
  c->len += (size_t)nread;
  c->req[c->len] = 0;
  if (strstr(c->req, "\r\n\r\n")) handle(c);
  else if (c->len >= sizeof c->req - 1)
    respond_json(c, 431, "{\"error\":\"Request headers too large (cap 8 KiB)\"}\n", 0);
}

static void on_connection(uv_stream_t *server, int status) {
  pd_metrics *m = server->data;
  if (status < 0 || m->closed) return;
  mconn *c = pd_zalloc(sizeof *c);
  if (!c) return;
  c->m = m;
  uv_tcp_init(m->loop, &c->tcp);
  c->tcp.data = c;
  c->next = m->conns;
  if (m->conns) m->conns->prev = c;
  m->conns = c;
  m->nconns++;
  c->started_ms = uv_now(m->loop);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || m->nconns > PD_METRICS_MAX_CONNS) {
    mconn_close(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* Connections older than PD_METRICS_REQ_TIMEOUT_MS are closed. */
static void timer_cb(uv_timer_t *t) {
  pd_metrics *m = t->data;
  uint64_t now = uv_now(m->loop);
  for (mconn *c = m->conns; c; c = c->next)
    if (!c->closing && now - c->started_ms > PD_METRICS_REQ_TIMEOUT_MS) mconn_close(c);
}

/* ------------------------------------------------------------------ lifetime */
pd_metrics *pd_metrics_new(uv_loop_t *loop, pd_core *core) {
  pd_metrics *m = pd_zalloc(sizeof *m);
  if (!m) return NULL;
  m->loop = loop;
  m->core = core;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m->start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  return m;
}

int pd_metrics_add_collector(pd_metrics *m, pd_metrics_collector fn, void *user_data) {
  if (m->ncoll >= PD_METRICS_MAX_COLLECTORS) return -1;
  m->coll[m->ncoll].fn = fn;
  m->coll[m->ncoll].ud = user_data;
  m->ncoll++;
  return 0;
}

void pd_metrics_set_ready_check(pd_metrics *m, pd_metrics_ready_fn fn, void *user_data) {
  m->ready = fn;
  m->ready_ud = user_data;
}

int pd_metrics_listen(pd_metrics *m, const char *host, int port) {
  struct sockaddr_storage addr;
  int r;
  if (strchr(host, ':')) r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  else r = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (r != 0) {
    pd_log(PD_LOG_ERROR, "msg=\"bad metrics listen address\" host=%s error=\"%s\"", host, uv_strerror(r));
    return r;
  }
  uv_tcp_init(m->loop, &m->listener);
  m->listener.data = m;
  r = uv_tcp_bind(&m->listener, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
  if (r != 0) {
    pd_log(PD_LOG_ERROR, "msg=\"cannot listen for metrics\" host=%s port=%d error=\"%s\"", host, port,
           uv_strerror(r));
    uv_close((uv_handle_t *)&m->listener, NULL);
    m->closed = 1;
    return r;
  }
  m->listening = 1;
  uv_timer_init(m->loop, &m->timer);
  m->timer.data = m;
  uv_timer_start(&m->timer, timer_cb, 1000, 1000);
  pd_log(PD_LOG_INFO, "msg=\"metrics listening\" host=%s port=%d paths=\"/metrics /health /ready\"", host,
         pd_metrics_port(m));
  return 0;
}

int pd_metrics_port(pd_metrics *m) {
  struct sockaddr_storage a;
  int len = sizeof a;
  if (!m->listening || uv_tcp_getsockname(&m->listener, (struct sockaddr *)&a, &len) != 0) return -1;
  if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
  return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

void pd_metrics_close(pd_metrics *m) {
  if (!m || m->closed) return;
  m->closed = 1;
  if (m->listening) {
    uv_close((uv_handle_t *)&m->listener, NULL);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, NULL);
    m->listening = 0;
  }
  for (mconn *c = m->conns; c; c = c->next) mconn_close(c);
}

void pd_metrics_free(pd_metrics *m) { pd_free(m); }
