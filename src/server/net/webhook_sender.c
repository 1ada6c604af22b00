/* pusherd net layer: webhook delivery over libcurl's multi interface on the
 * server's libuv loop (docs/webhooks.md).
 *
 * Why on the loop and not a thread: curl_multi_socket_action does no
 * blocking I/O (name resolution runs in libcurl's resolver thread), so a
 * receiver that is slow, down or resets costs the loop a few callbacks per
 * attempt; the queue needs no lock, and the core's events (which arrive on
 * the loop thread) are appended directly.
 *
 * Per (app, webhook) a target: the open batch (events gathered during the
 * window), then closed batches in order, the first one in flight or waiting
 * for its retry time. */
#include "net/pd_webhook_sender.h"
#include "core/sign.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct wh_batch {
  struct wh_batch *next;
  char *body;
  size_t len, nevents, bytes; /* bytes: the events' share of the queue cap */
  uint64_t first_ms, next_ms; /* created (the retry window starts); next attempt (loop time) */
  int attempts;
} wh_batch;

typedef struct wh_target {
  pd_whs *w;
  const pd_app_cfg *app;
  const pd_webhook_cfg *hook;
  json_t *open;               /* array of events, or NULL */
  size_t open_bytes;
  uint64_t open_since;
  wh_batch *head, *tail;
  CURL *easy;                 /* the head batch's attempt in flight */
  struct curl_slist *hdrs;
  char err[CURL_ERROR_SIZE];
} wh_target;

struct pd_whs {
  uv_loop_t *loop;
  pd_core *core;
  CURLM *multi;
  uv_timer_t wake;            /* batch windows and retries */
  uv_timer_t curl_timer;      /* libcurl's own timeout */
  wh_target *targets;
  size_t ntargets;
  size_t *first;              /* per app: index of its first target */
  size_t inflight;
  int stopping;
  uint64_t deadline_ms;       /* stopping: give up after this */
  pd_whs_stats st;
  uint64_t overflow_log_ms, overflow_unlogged;
  int in_pump;
};

typedef struct wh_sock {
  uv_poll_t poll;
  pd_whs *w;
  curl_socket_t fd;
} wh_sock;

static uint64_t now(pd_whs *w) { return uv_now(w->loop); }

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pump(pd_whs *w);
static void wake_cb(uv_timer_t *h);

/* ------------------------------------------------------------------ queue */
static void batch_free(wh_batch *b) {
  if (!b) return;
  free(b->body);
  pd_free(b);
}

static void close_open(wh_target *t) {
  pd_whs *w = t->w;
  if (!t->open) return;
  json_t *root = json_pack("{s:I,s:o}", "time_ms", (json_int_t)wall_ms(), "events", t->open);
  size_t n = json_array_size(t->open);
  t->open = NULL;
  wh_batch *b = pd_zalloc(sizeof *b);
  char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  if (!b || !body) {
    pd_free(b);
    free(body);
    w->st.events_dropped += n;
    w->st.batches_dropped++;
    w->st.queued_events -= n;
    w->st.queued_bytes -= t->open_bytes;
    pd_log(PD_LOG_ERROR, "msg=\"webhook batch dropped: out of memory\" app=%s url=%s events=%zu", t->app->id,
           t->hook->url, n);
    t->open_bytes = 0;
    return;
  }
  b->body = body;
  b->len = strlen(body);
  b->nevents = n;
  b->bytes = t->open_bytes;
  t->open_bytes = 0;
  b->first_ms = b->next_ms = now(w);
  if (t->tail) t->tail->next = b;
  else t->head = b;
  t->tail = b;
}

static void pop_head(wh_target *t) {
  wh_batch *b = t->head;
  t->head = b->next;
  if (!t->head) t->tail = NULL;
  t->w->st.queued_events -= b->nevents;
  t->w->st.queued_bytes -= b->bytes;
  batch_free(b);
}

static void drop_head(wh_target *t, const char *why) {
  wh_batch *b = t->head;
  pd_whs *w = t->w;
  w->st.batches_dropped++;
  w->st.events_dropped += b->nevents;
  pd_log(PD_LOG_WARN, "msg=\"webhook batch dropped\" reason=\"%s\" app=%s url=%s events=%zu attempts=%d", why,
         t->app->id, t->hook->url, b->nevents, b->attempts);
  pop_head(t);
}

static void on_emit(pd_app *app, size_t hook, json_t *event, void *ud) {
  pd_whs *w = ud;
  size_t ai = (size_t)(app - w->core->apps);
  wh_target *t = &w->targets[w->first[ai] + hook];
  char *text = json_dumps(event, JSON_COMPACT);
  size_t n = text ? strlen(text) : 0;
  free(text);
  uint64_t t_now = now(w);
  if (!n || w->st.queued_bytes + n > PD_WHS_QUEUE_BYTES || (w->stopping && t_now >= w->deadline_ms)) {
    w->st.events_dropped++;
    w->overflow_unlogged++;
    if (t_now - w->overflow_log_ms >= 1000 || !w->overflow_log_ms) {
      pd_log(PD_LOG_WARN,
             "msg=\"webhook event dropped: %s\" app=%s url=%s dropped_since_last_line=%llu queued_bytes=%llu",
             w->stopping ? "shutting down" : "queue full", t->app->id, t->hook->url,
             (unsigned long long)w->overflow_unlogged, (unsigned long long)w->st.queued_bytes);
      w->overflow_log_ms = t_now ? t_now : 1;
      w->overflow_unlogged = 0;
    }
    return;
  }
  if (!t->open) {
    t->open = json_array();
    t->open_since = t_now;
    if (!t->open) return;
  }
  json_array_append(t->open, event);
  t->open_bytes += n;
  w->st.queued_bytes += n;
  w->st.queued_events++;
  if (json_array_size(t->open) >= PD_WHS_BATCH_EVENTS) close_open(t);
  pump(w);
}

static const pd_wh_out sender_out = {on_emit};

/* ------------------------------------------------------------------ attempts */
static size_t discard(char *p, size_t sz, size_t n, void *ud) {
  (void)p, (void)ud;
  return sz * n;
}

static void start_attempt(wh_target *t) {
  pd_whs *w = t->w;
  wh_batch *b = t->head;
  char sig[PUSHER__SHA256_HEX_SIZE];
  if (pusher__hmac_sha256_hex(t->app->secret, strlen(t->app->secret), b->body, b->len, sig) != 0) {
    drop_head(t, "signing failed");
    return;
  }
  CURL *e = curl_easy_init();
  if (!e) {
    b->next_ms = now(w) + PD_WHS_BACKOFF_FIRST_MS;
    return;
  }
  char line[200 + PUSHER__SHA256_HEX_SIZE];
  struct curl_slist *h = NULL;
  h = curl_slist_append(h, "Content-Type: application/json");
  snprintf(line, sizeof line, "X-Pusher-Key: %s", t->app->key);
  h = curl_slist_append(h, line);
  snprintf(line, sizeof line, "X-Pusher-Signature: %s", sig);
  h = curl_slist_append(h, line);
  h = curl_slist_append(h, "Expect:");
  for (size_t i = 0; i < t->hook->nheaders; i++) h = curl_slist_append(h, t->hook->headers[i]);
  long timeout = PD_WHS_TIMEOUT_MS;
  if (w->stopping) {
    uint64_t left = w->deadline_ms > now(w) ? w->deadline_ms - now(w) : 1;
    if (left < (uint64_t)timeout) timeout = (long)left;
  }
  curl_easy_setopt(e, CURLOPT_URL, t->hook->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->err);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "pusherd-webhooks");
  t->err[0] = 0;
  t->hdrs = h;
  t->easy = e;
  b->attempts++;
  w->inflight++;
  uv_ref((uv_handle_t *)&w->curl_timer);
  if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
    t->easy = NULL;
    w->inflight--;
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    t->hdrs = NULL;
    b->next_ms = now(w) + PD_WHS_BACKOFF_FIRST_MS;
  }
}

static void finish_attempt(wh_target *t, CURLcode rc) {
  pd_whs *w = t->w;
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(w->multi, t->easy);
  curl_easy_cleanup(t->easy);
  curl_slist_free_all(t->hdrs);
  t->easy = NULL;
  t->hdrs = NULL;
  w->inflight--;
  if (!w->inflight) uv_unref((uv_handle_t *)&w->curl_timer);
  wh_batch *b = t->head;
  if (rc == CURLE_OK && status >= 200 && status < 300) {
    w->st.batches_sent++;
    w->st.events_sent += b->nevents;
    pop_head(t);
    return;
  }
  char why[CURL_ERROR_SIZE + 64];
  if (rc != CURLE_OK) snprintf(why, sizeof why, "%s", t->err[0] ? t->err : curl_easy_strerror(rc));
  else snprintf(why, sizeof why, "HTTP status %ld", status);
  uint64_t t_now = now(w);
  uint64_t window = (uint64_t)w->core->cfg->webhook_retry_s * 1000u;
  if (w->stopping || t_now - b->first_ms >= window) {
    drop_head(t, why);
    return;
  }
  uint64_t delay = PD_WHS_BACKOFF_FIRST_MS;
  for (int i = 1; i < b->attempts && delay < PD_WHS_BACKOFF_MAX_MS; i++) delay *= 2;
  if (delay > PD_WHS_BACKOFF_MAX_MS) delay = PD_WHS_BACKOFF_MAX_MS;
  /* the last attempt at the end of the window */
  if (t_now + delay > b->first_ms + window) delay = b->first_ms + window - t_now;
  b->next_ms = t_now + delay;
  w->st.batches_retried++;
  pd_log(PD_LOG_INFO, "msg=\"webhook attempt failed; will retry\" app=%s url=%s error=\"%s\" attempt=%d retry_in_ms=%llu",
         t->app->id, t->hook->url, why, b->attempts, (unsigned long long)delay);
}

static void check_done(pd_whs *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    wh_target *t = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t) finish_attempt(t, m->data.result);
  }
  pump(w);
}

/* Close due batches, start due attempts, give up at the shutdown deadline,
 * and arm the wake timer for the next due time (stopped when idle, so an
 * idle sender does not keep the loop alive). */
static void pump(pd_whs *w) {
  if (w->in_pump) return;
  w->in_pump = 1;
  uint64_t t_now = now(w), next = UINT64_MAX;
  uint64_t window = (uint64_t)w->core->cfg->webhook_retry_s * 1000u;
  int give_up = w->stopping && t_now >= w->deadline_ms;
  for (size_t i = 0; i < w->ntargets; i++) {
    wh_target *t = &w->targets[i];
    if (t->open && (w->stopping || t_now - t->open_since >= (uint64_t)w->core->cfg->webhook_batch_ms))
      close_open(t);
    if (give_up) {
      if (t->easy) {
        curl_multi_remove_handle(w->multi, t->easy);
        curl_easy_cleanup(t->easy);
        curl_slist_free_all(t->hdrs);
        t->easy = NULL;
        t->hdrs = NULL;
        w->inflight--;
      }
      while (t->head) drop_head(t, "shutdown grace over");
      continue;
    }
    if (t->open && t->open_since + (uint64_t)w->core->cfg->webhook_batch_ms < next)
      next = t->open_since + (uint64_t)w->core->cfg->webhook_batch_ms;
    while (!t->easy && t->head && t->head->next_ms <= t_now) {
      wh_batch *h = t->head;
      /* held back past its whole window by an earlier batch (receiver
       * down): dropped without trying, so a long outage drains the queue
       * by age instead of one window per batch */
      if (!h->attempts && window && !w->stopping && t_now - h->first_ms >= window) {
        drop_head(t, "retry window over before the first attempt (earlier batches were being retried)");
        continue;
      }
      start_attempt(t);
      if (t->head == h) break; /* started, or waiting after a local failure */
    }
    if (!t->easy && t->head && t->head->next_ms < next) next = t->head->next_ms;
  }
  if (w->stopping && !give_up && (next != UINT64_MAX || w->inflight) && w->deadline_ms < next)
    next = w->deadline_ms;
  if (!w->inflight) uv_unref((uv_handle_t *)&w->curl_timer);
  if (next == UINT64_MAX) uv_timer_stop(&w->wake);
  else uv_timer_start(&w->wake, wake_cb, next > t_now ? next - t_now : 0, 0);
  w->in_pump = 0;
}

static void wake_cb(uv_timer_t *h) {
  pd_whs *w = h->data;
  pd_core_set_time(w->core, uv_now(w->loop), (uint64_t)time(NULL));
  pump(w);
}

/* ------------------------------------------------------------------ curl <-> libuv */
static void poll_cb(uv_poll_t *h, int status, int events) {
  wh_sock *s = h->data;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(s->w->multi, s->fd, flags, &running);
  check_done(s->w);
}

static void sock_closed(uv_handle_t *h) { pd_free(h->data); }

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
  (void)e;
  pd_whs *w = ud;
  wh_sock *s = sockp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, sock_closed);
      curl_multi_assign(w->multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = pd_zalloc(sizeof *s);
    if (!s) return -1;
    s->w = w;
    s->fd = fd;
    if (uv_poll_init_socket(w->loop, &s->poll, fd) != 0) {
      pd_free(s);
      return -1;
    }
    s->poll.data = s;
    curl_multi_assign(w->multi, fd, s);
  }
  int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, ev, poll_cb);
  return 0;
}

static void curl_timer_cb(uv_timer_t *h) {
  pd_whs *w = h->data;
  int running;
  curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(w);
}

static int timer_cb(CURLM *m, long ms, void *ud) {
  (void)m;
  pd_whs *w = ud;
  if (ms < 0) uv_timer_stop(&w->curl_timer);
  else uv_timer_start(&w->curl_timer, curl_timer_cb, (uint64_t)ms, 0);
  if (!w->inflight) uv_unref((uv_handle_t *)&w->curl_timer);
  return 0;
}

/* ------------------------------------------------------------------ lifetime */
int pd_whs_new(pd_whs **out, uv_loop_t *loop, pd_core *core) {
  *out = NULL;
  size_t n = 0;
  for (size_t i = 0; i < core->cfg->napps; i++) n += core->apps[i].cfg->nwebhooks;
  if (!n) return 0;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return -1;
  pd_whs *w = pd_zalloc(sizeof *w);
  if (!w) return -1;
  w->loop = loop;
  w->core = core;
  w->targets = pd_zalloc(n * sizeof *w->targets);
  w->first = pd_zalloc(core->cfg->napps * sizeof *w->first);
  w->multi = curl_multi_init();
  if (!w->targets || !w->first || !w->multi) {
    if (w->multi) curl_multi_cleanup(w->multi);
    pd_free(w->targets);
    pd_free(w->first);
    pd_free(w);
    return -1;
  }
  for (size_t i = 0; i < core->cfg->napps; i++) {
    w->first[i] = w->ntargets;
    const pd_app_cfg *a = core->apps[i].cfg;
    for (size_t j = 0; j < a->nwebhooks; j++) {
      wh_target *t = &w->targets[w->ntargets++];
      t->w = w;
      t->app = a;
      t->hook = &a->webhooks[j];
    }
  }
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
  uv_timer_init(loop, &w->wake);
  w->wake.data = w;
  uv_timer_init(loop, &w->curl_timer);
  w->curl_timer.data = w;
  uv_unref((uv_handle_t *)&w->curl_timer);
  pd_core_set_webhooks(core, &sender_out, w);
  *out = w;
  return 0;
}

void pd_whs_shutdown(pd_whs *w) {
  if (!w || w->stopping) return;
  w->stopping = 1;
  w->deadline_ms = now(w) + (uint64_t)w->core->cfg->shutdown_grace_ms + PD_WHS_TIMEOUT_MS;
  for (size_t i = 0; i < w->ntargets; i++)
    if (w->targets[i].head && !w->targets[i].easy) w->targets[i].head->next_ms = now(w);
  pump(w);
}

void pd_whs_free(pd_whs *w) {
  if (!w) return;
  if (w->core->wh_ud == w) pd_core_set_webhooks(w->core, NULL, NULL);
  uint64_t lost = 0;
  for (size_t i = 0; i < w->ntargets; i++) {
    wh_target *t = &w->targets[i];
    if (t->easy) {
      curl_multi_remove_handle(w->multi, t->easy);
      curl_easy_cleanup(t->easy);
      curl_slist_free_all(t->hdrs);
    }
    if (t->open) lost += json_array_size(t->open);
    json_decref(t->open);
    for (wh_batch *b = t->head, *nx; b; b = nx) {
      nx = b->next;
      lost += b->nevents;
      batch_free(b);
    }
  }
  if (lost) pd_log(PD_LOG_WARN, "msg=\"webhook events not delivered at exit\" events=%llu", (unsigned long long)lost);
  pd_log(PD_LOG_INFO,
         "msg=\"webhooks at exit\" batches_sent=%llu batches_retried=%llu batches_dropped=%llu events_sent=%llu "
         "events_dropped=%llu",
         (unsigned long long)w->st.batches_sent, (unsigned long long)w->st.batches_retried,
         (unsigned long long)w->st.batches_dropped, (unsigned long long)w->st.events_sent,
         (unsigned long long)w->st.events_dropped);
  curl_multi_cleanup(w->multi);
  uv_close((uv_handle_t *)&w->wake, NULL);
  uv_close((uv_handle_t *)&w->curl_timer, NULL);
  uv_run(w->loop, UV_RUN_NOWAIT); /* the close callbacks (sockets freed) */
  pd_free(w->targets);
  pd_free(w->first);
  pd_free(w);
  curl_global_cleanup();
}

const pd_whs_stats *pd_whs_get_stats(const pd_whs *w) {
  static const pd_whs_stats none;
  return w ? &w->st : &none;
}
