/* pusherd net layer: webhook delivery over libcurl's multi interface on the
 * server's libuv loop (docs/webhooks.md).
 *
 * Why on the loop and not a thread: curl_multi_socket_action does no
 * blocking I/O (name resolution runs in libcurl's resolver thread), so a
 * receiver that is slow, down or resets costs the loop a few callbacks per
 * attempt; the queue needs no lock, and the core's events (which arrive on
 * the loop thread) are appended directly.
 *
 * libcurl is not linked: net/curl_dl.c loads it the first time a
 * configuration has webhooks (pd_curl), and the multi handle is created
 * then (ensure_multi); a pusherd without webhooks never touches it.
 *
 * Per (app, webhook) a target: the open batch (events gathered during the
 * window), then closed batches in order, the first one in flight or waiting
 * for its retry time. */
#include "net/pd_webhook_sender.h"
#include "core/sign.h"
#include "net/pd_curl.h"

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

/* A target keeps its own copies of the settings it sends with, so that a
 * configuration reload (which frees the old settings) never leaves it
 * pointing at freed memory; pd_whs_reload refreshes them. */
typedef struct wh_target {
  pd_whs *w;
  char *app_id, *app_key, *app_secret, *url;
  char **headers;             /* "Name: value" lines */
  size_t nheaders;
  int claimed;                /* pd_whs_reload: matched to a webhook of the new settings */
  int retired;                /* its webhook left the configuration: freed once idle */
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
  CURLM *multi;               /* NULL until some app has a webhook */
  uv_timer_t wake;            /* batch windows and retries */
  uv_timer_t curl_timer;      /* libcurl's own timeout */
  wh_target **targets;        /* stable addresses: libcurl holds them while in flight */
  size_t ntargets, atargets;
  wh_target **slots;          /* per (app, webhook): its target, or NULL (out of memory) */
  size_t *first;              /* per app index: its first slot; first[nfirst] = end */
  size_t nfirst;
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
static void reap_retired(pd_whs *w);
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
    pd_log(PD_LOG_ERROR, "msg=\"webhook batch dropped: out of memory\" app=%s url=%s events=%zu", t->app_id,
           t->url, n);
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
         t->app_id, t->url, b->nevents, b->attempts);
  pop_head(t);
}

static void on_emit(pd_app *app, size_t hook, json_t *event, void *ud) {
  pd_whs *w = ud;
  size_t ai = app->idx;
  wh_target *t = ai < w->nfirst && hook < w->first[ai + 1] - w->first[ai] ? w->slots[w->first[ai] + hook] : NULL;
  if (!t) { /* settings changed under us, or out of memory at the last reload */
    w->st.events_dropped++;
    return;
  }
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
             w->stopping ? "shutting down" : "queue full", t->app_id, t->url,
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
  if (pusher__hmac_sha256_hex(t->app_secret, strlen(t->app_secret), b->body, b->len, sig) != 0) {
    drop_head(t, "signing failed");
    return;
  }
  CURL *e = pd_curl->easy_init();
  if (!e) {
    b->next_ms = now(w) + PD_WHS_BACKOFF_FIRST_MS;
    return;
  }
  char line[200 + PUSHER__SHA256_HEX_SIZE];
  struct curl_slist *h = NULL;
  h = pd_curl->slist_append(h, "Content-Type: application/json");
  snprintf(line, sizeof line, "X-Pusher-Key: %s", t->app_key);
  h = pd_curl->slist_append(h, line);
  snprintf(line, sizeof line, "X-Pusher-Signature: %s", sig);
  h = pd_curl->slist_append(h, line);
  h = pd_curl->slist_append(h, "Expect:");
  for (size_t i = 0; i < t->nheaders; i++) h = pd_curl->slist_append(h, t->headers[i]);
  long timeout = PD_WHS_TIMEOUT_MS;
  if (w->stopping) {
    uint64_t left = w->deadline_ms > now(w) ? w->deadline_ms - now(w) : 1;
    if (left < (uint64_t)timeout) timeout = (long)left;
  }
  pd_curl->easy_setopt(e, CURLOPT_URL, t->url);
  pd_curl->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  pd_curl->easy_setopt(e, CURLOPT_HTTPHEADER, h);
  pd_curl->easy_setopt(e, CURLOPT_POST, 1L);
  pd_curl->easy_setopt(e, CURLOPT_POSTFIELDS, b->body);
  pd_curl->easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
  pd_curl->easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
  pd_curl->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  pd_curl->easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
  pd_curl->easy_setopt(e, CURLOPT_ERRORBUFFER, t->err);
  pd_curl->easy_setopt(e, CURLOPT_PRIVATE, t);
  pd_curl->easy_setopt(e, CURLOPT_USERAGENT, "pusherd-webhooks");
  t->err[0] = 0;
  t->hdrs = h;
  t->easy = e;
  b->attempts++;
  w->inflight++;
  uv_ref((uv_handle_t *)&w->curl_timer);
  if (pd_curl->multi_add_handle(w->multi, e) != CURLM_OK) {
    t->easy = NULL;
    w->inflight--;
    pd_curl->easy_cleanup(e);
    pd_curl->slist_free_all(h);
    t->hdrs = NULL;
    b->next_ms = now(w) + PD_WHS_BACKOFF_FIRST_MS;
  }
}

static void finish_attempt(wh_target *t, CURLcode rc) {
  pd_whs *w = t->w;
  long status = 0;
  pd_curl->easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  pd_curl->multi_remove_handle(w->multi, t->easy);
  pd_curl->easy_cleanup(t->easy);
  pd_curl->slist_free_all(t->hdrs);
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
  if (rc != CURLE_OK) snprintf(why, sizeof why, "%s", t->err[0] ? t->err : pd_curl->easy_strerror(rc));
  else snprintf(why, sizeof why, "HTTP status %ld", status);
  uint64_t t_now = now(w);
  uint64_t window = (uint64_t)w->core->cfg->webhook_retry_s * 1000u;
  if (w->stopping || t->retired || t_now - b->first_ms >= window) {
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
         t->app_id, t->url, why, b->attempts, (unsigned long long)delay);
}

static void check_done(pd_whs *w) {
  CURLMsg *m;
  int left;
  while ((m = pd_curl->multi_info_read(w->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    wh_target *t = NULL;
    pd_curl->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
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
    wh_target *t = w->targets[i];
    if (t->open && (w->stopping || t_now - t->open_since >= (uint64_t)w->core->cfg->webhook_batch_ms))
      close_open(t);
    if (give_up) {
      if (t->easy) {
        pd_curl->multi_remove_handle(w->multi, t->easy);
        pd_curl->easy_cleanup(t->easy);
        pd_curl->slist_free_all(t->hdrs);
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
  reap_retired(w);
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
  pd_curl->multi_socket_action(s->w->multi, s->fd, flags, &running);
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
      pd_curl->multi_assign(w->multi, fd, NULL);
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
    pd_curl->multi_assign(w->multi, fd, s);
  }
  int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, ev, poll_cb);
  return 0;
}

static void curl_timer_cb(uv_timer_t *h) {
  pd_whs *w = h->data;
  int running;
  pd_curl->multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
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
/* ------------------------------------------------------------------ targets */
static void free_strv(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) pd_free(v[i]);
  pd_free(v);
}

static void target_free(wh_target *t) {
  pd_free(t->app_id);
  pd_free(t->app_key);
  pd_free(t->app_secret);
  pd_free(t->url);
  free_strv(t->headers, t->nheaders);
  pd_free(t);
}

/* (Re)take the settings of app a's webhook h: 0, or -1 (out of memory:
 * the target keeps what it had). */
static int target_set(wh_target *t, const pd_app_cfg *a, const pd_webhook_cfg *h) {
  char *id = pd_strdup(a->id), *key = pd_strdup(a->key), *secret = pd_strdup(a->secret), *url = pd_strdup(h->url);
  char **hd = h->nheaders ? pd_zalloc(h->nheaders * sizeof *hd) : NULL;
  int bad = !id || !key || !secret || !url || (h->nheaders && !hd);
  for (size_t i = 0; !bad && i < h->nheaders; i++) bad = !(hd[i] = pd_strdup(h->headers[i]));
  if (bad) {
    pd_free(id), pd_free(key), pd_free(secret), pd_free(url);
    if (hd) free_strv(hd, h->nheaders);
    return -1;
  }
  pd_free(t->app_id), pd_free(t->app_key), pd_free(t->app_secret), pd_free(t->url);
  free_strv(t->headers, t->nheaders);
  t->app_id = id, t->app_key = key, t->app_secret = secret, t->url = url;
  t->headers = hd;
  t->nheaders = h->nheaders;
  return 0;
}

/* Retired targets whose last request has ended are freed. */
static void reap_retired(pd_whs *w) {
  size_t k = 0;
  for (size_t i = 0; i < w->ntargets; i++) {
    wh_target *t = w->targets[i];
    if (t->retired && !t->easy && !t->head && !t->open) target_free(t);
    else w->targets[k++] = t;
  }
  w->ntargets = k;
}

/* A webhook left the configuration: what waits for it is dropped (logged
 * and counted); a request in flight finishes, and is not retried. */
static void retire(wh_target *t) {
  pd_whs *w = t->w;
  size_t n = 0;
  if (t->open) {
    n += json_array_size(t->open);
    w->st.queued_events -= json_array_size(t->open);
    w->st.queued_bytes -= t->open_bytes;
    json_decref(t->open);
    t->open = NULL;
    t->open_bytes = 0;
  }
  wh_batch *keep = t->easy ? t->head : NULL;
  for (wh_batch *b = keep ? keep->next : t->head, *nx; b; b = nx) {
    nx = b->next;
    n += b->nevents;
    w->st.queued_events -= b->nevents;
    w->st.queued_bytes -= b->bytes;
    w->st.batches_dropped++;
    batch_free(b);
  }
  if (keep) keep->next = NULL;
  t->head = t->tail = keep;
  w->st.events_dropped += n;
  t->retired = 1;
  pd_log(PD_LOG_INFO, "msg=\"webhook removed by a configuration reload\" app=%s url=%s events_dropped=%zu",
         t->app_id, t->url, n);
}

/* The multi handle, the first time there are webhooks to send to: 0, or
 * -1 (libcurl not loaded: the caller's pd_curl_load_for was skipped or
 * failed; or out of memory). */
static int ensure_multi(pd_whs *w) {
  if (w->multi) return 0;
  if (!pd_curl) {
    pd_log(PD_LOG_ERROR, "msg=\"webhooks configured but libcurl is not loaded; their events are dropped\"");
    return -1;
  }
  w->multi = pd_curl->multi_init();
  if (!w->multi) {
    pd_log(PD_LOG_ERROR, "msg=\"webhooks: curl_multi_init failed; their events are dropped\"");
    return -1;
  }
  pd_curl->multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  pd_curl->multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  pd_curl->multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  pd_curl->multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
  return 0;
}

int pd_whs_reload(pd_whs *w) {
  pd_core *core = w->core;
  size_t n = 0;
  for (size_t i = 0; i < core->napps; i++)
    if (!core->apps[i]->removed) n += core->apps[i]->cfg->nwebhooks;
  /* no multi handle, no targets: every event is dropped and counted
   * (on_emit), as for a target that could not be set up */
  int nomulti = n && ensure_multi(w) != 0;
  if (nomulti) n = 0;
  size_t *first = pd_zalloc((core->napps + 1) * sizeof *first);
  wh_target **slots = pd_zalloc((n ? n : 1) * sizeof *slots);
  int grow = w->atargets < w->ntargets + n;
  wh_target **grown = grow ? pd_realloc(w->targets, (w->ntargets + n) * sizeof *grown) : w->targets;
  if (!first || !slots || (grow && !grown)) {
    pd_free(first);
    pd_free(slots);
    pd_log(PD_LOG_ERROR, "msg=\"webhooks: out of memory applying new settings; the previous webhooks stay\"");
    return -1;
  }
  if (grow) w->atargets = w->ntargets + n;
  w->targets = grown;
  size_t old = w->ntargets, k = 0;
  for (size_t i = 0; i < old; i++) w->targets[i]->claimed = 0;
  int oom = 0;
  for (size_t i = 0; i < core->napps; i++) {
    first[i] = k;
    const pd_app *app = core->apps[i];
    if (app->removed || !w->multi) continue;
    const pd_app_cfg *a = app->cfg;
    for (size_t j = 0; j < a->nwebhooks; j++, k++) {
      const pd_webhook_cfg *h = &a->webhooks[j];
      wh_target *t = NULL;
      /* the same app and URL keep their queue (and its order) */
      for (size_t x = 0; x < old && !t; x++) {
        wh_target *o = w->targets[x];
        if (!o->retired && !o->claimed && !strcmp(o->app_id, a->id) && !strcmp(o->url, h->url)) t = o;
      }
      if (t) {
        t->claimed = 1;
        oom |= target_set(t, a, h) != 0; /* a new secret or headers from the next attempt on */
      } else if ((t = pd_zalloc(sizeof *t))) {
        t->w = w;
        t->claimed = 1;
        if (target_set(t, a, h) != 0) {
          pd_free(t);
          t = NULL;
        } else {
          w->targets[w->ntargets++] = t;
        }
      }
      oom |= !t;
      slots[k] = t;
    }
  }
  first[core->napps] = k;
  for (size_t i = 0; i < old; i++)
    if (!w->targets[i]->retired && !w->targets[i]->claimed) retire(w->targets[i]);
  pd_free(w->first);
  pd_free(w->slots);
  w->first = first;
  w->slots = slots;
  w->nfirst = core->napps;
  if (oom) pd_log(PD_LOG_ERROR, "msg=\"webhooks: out of memory applying new settings; some webhooks are not sent\"");
  pump(w);
  return oom || nomulti ? -1 : 0;
}

int pd_whs_new(pd_whs **out, uv_loop_t *loop, pd_core *core) {
  *out = NULL;
  pd_whs *w = pd_zalloc(sizeof *w);
  if (!w) return -1;
  w->loop = loop;
  w->core = core;
  uv_timer_init(loop, &w->wake);
  w->wake.data = w;
  uv_timer_init(loop, &w->curl_timer);
  w->curl_timer.data = w;
  uv_unref((uv_handle_t *)&w->curl_timer);
  *out = w;
  if (pd_whs_reload(w) != 0) {
    pd_whs_free(w);
    *out = NULL;
    return -1;
  }
  pd_core_set_webhooks(core, &sender_out, w);
  return 0;
}

void pd_whs_shutdown(pd_whs *w) {
  if (!w || w->stopping) return;
  w->stopping = 1;
  w->deadline_ms = now(w) + (uint64_t)w->core->cfg->shutdown_grace_ms + PD_WHS_TIMEOUT_MS;
  for (size_t i = 0; i < w->ntargets; i++)
    if (w->targets[i]->head && !w->targets[i]->easy) w->targets[i]->head->next_ms = now(w);
  pump(w);
}

void pd_whs_free(pd_whs *w) {
  if (!w) return;
  if (w->core->wh_ud == w) pd_core_set_webhooks(w->core, NULL, NULL);
  uint64_t lost = 0;
  for (size_t i = 0; i < w->ntargets; i++) {
    wh_target *t = w->targets[i];
    if (t->easy) {
      pd_curl->multi_remove_handle(w->multi, t->easy);
      pd_curl->easy_cleanup(t->easy);
      pd_curl->slist_free_all(t->hdrs);
    }
    if (t->open) lost += json_array_size(t->open);
    json_decref(t->open);
    for (wh_batch *b = t->head, *nx; b; b = nx) {
      nx = b->next;
      lost += b->nevents;
      batch_free(b);
    }
    target_free(t);
  }
  if (lost) pd_log(PD_LOG_WARN, "msg=\"webhook events not delivered at exit\" events=%llu", (unsigned long long)lost);
  pd_log(PD_LOG_INFO,
         "msg=\"webhooks at exit\" batches_sent=%llu batches_retried=%llu batches_dropped=%llu events_sent=%llu "
         "events_dropped=%llu",
         (unsigned long long)w->st.batches_sent, (unsigned long long)w->st.batches_retried,
         (unsigned long long)w->st.batches_dropped, (unsigned long long)w->st.events_sent,
         (unsigned long long)w->st.events_dropped);
  if (w->multi) pd_curl->multi_cleanup(w->multi);
  uv_close((uv_handle_t *)&w->wake, NULL);
  uv_close((uv_handle_t *)&w->curl_timer, NULL);
  uv_run(w->loop, UV_RUN_NOWAIT); /* the close callbacks (sockets freed) */
  pd_free(w->targets);
  pd_free(w->slots);
  pd_free(w->first);
  pd_free(w);
  pd_curl_cleanup();
}

const pd_whs_stats *pd_whs_get_stats(const pd_whs *w) {
  static const pd_whs_stats none;
  return w ? &w->st : &none;
}
