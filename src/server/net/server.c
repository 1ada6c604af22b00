/* pusherd net layer: listener, connections, HTTP parsing, WebSocket
 * upgrade (the core's codec, lib/core/ws.h), output queues, timers and
 * graceful shutdown, on libuv.  Everything Pusher is the server core's
 * (core/pd_core.h): each connection holds a pd_session and is its sink. */
#include "net/pd_net.h"
#include "net/pd_tls.h"
#include "core/ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/socket.h>
#include <limits.h>

static void conn_begin_close(pd_conn *c);
static void conn_finish(pd_conn *c);
static void conn_drain_ws(pd_conn *c);
static void http_reset(pd_conn *c);
static void http_free(pd_conn *c);

uint64_t pd_now_ms(pd_server *s) {
  if (s->loop) return uv_now(s->loop);
  return s->fake_now_ms;
}

/* The core's clock: set on every entry from the loop. */
static void core_time(pd_server *s) { pd_core_set_time(s->core, pd_now_ms(s), (uint64_t)time(NULL)); }

void pd_log_stderr(int level, const char *line) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "ts=%s.%03ldZ level=%s %s\n", when, (long)(ts.tv_nsec / 1000000), pd_log_level_name(level),
          line);
}

static uint64_t rng_next(pd_server *s) {
  uint64_t x = s->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s->rng = x;
  return x;
}

/* ------------------------------------------------------------------ output */
/* Coalesced output (docs/architecture.md, "Coalesced output").  A frame to
 * write is a reference in the connection's ring (the shared pd_msg, not a
 * copy); the connection goes on srv->flush_list; before the loop polls
 * again, pd_server_flush writes each listed connection's ring with one
 * uv_try_write of all its buffers (one writev, no request).  Only what the
 * kernel did not take goes to one uv_write (one request for up to
 * PD_OUT_IOV buffers); while it is in flight nothing else is written to
 * that socket, so the order holds, and write_cb lists the connection again
 * for the rest. */
static uv_buf_t out_iov[PD_OUT_IOV]; /* one loop thread */

/* The list is in the order the connections got their first frame of the
 * turn, and is written in that order: the frames of a broadcast reach the
 * kernel before the HTTP reply that reports it published, as when each
 * frame was written at once (a publisher told "published" by a pusherd
 * killed right after can still count on the subscribers getting it). */
static void flush_list_add(pd_conn *c) {
  pd_server *s = c->srv;
  if (c->flush_queued || c->detached) return;
  c->flush_queued = 1;
  c->flush_next = NULL;
  if (s->flush_tail) s->flush_tail->flush_next = c;
  else s->flush_list = c;
  s->flush_tail = c;
}

static void flush_list_remove(pd_conn *c) {
  pd_server *s = c->srv;
  if (!c->flush_queued) return;
  pd_conn *prev = NULL;
  for (pd_conn *x = s->flush_list; x; prev = x, x = x->flush_next) {
    if (x != c) continue;
    if (prev) prev->flush_next = c->flush_next;
    else s->flush_list = c->flush_next;
    if (s->flush_tail == c) s->flush_tail = prev;
    break;
  }
  c->flush_next = NULL;
  c->flush_queued = 0;
}

/* Drop the n entries at the head of the ring (written or abandoned). */
static void oq_pop(pd_conn *c, uint32_t n) {
  while (n--) {
    pd_msg_unref(c->oq[c->oq_head]);
    c->oq_head = (c->oq_head + 1) & (c->oq_cap - 1);
    c->oq_len--;
  }
  c->oq_off = 0;
}

/* Releases the ring's memory (it holds no entries). */
static void oq_release(pd_conn *c) {
  if (c->oq != c->oq_inline) pd_free(c->oq);
  c->oq = NULL;
  c->oq_cap = c->oq_head = 0;
}

/* Append a reference (0 or -1).  The first go to the ring inside the
 * connection (PD_OUT_INLINE: most connections get one or two frames per
 * turn, and allocate nothing for them); a full ring moves to an allocated
 * one of PD_OUT_RING_MIN entries, which doubles when full. */
static int oq_push(pd_conn *c, pd_msg *m) {
  if (!c->oq) {
    c->oq = c->oq_inline;
    c->oq_cap = PD_OUT_INLINE;
    c->oq_head = 0;
  }
  if (c->oq_len == c->oq_cap) {
    uint32_t cap = c->oq_cap > PD_OUT_INLINE ? c->oq_cap * 2 : PD_OUT_RING_MIN;
    if (cap <= c->oq_cap) return -1;
    pd_msg **q = pd_alloc(cap * sizeof *q);
    if (!q) return -1;
    for (uint32_t i = 0; i < c->oq_len; i++) q[i] = c->oq[(c->oq_head + i) & (c->oq_cap - 1)];
    if (c->oq != c->oq_inline) pd_free(c->oq);
    c->oq = q;
    c->oq_cap = cap;
    c->oq_head = 0;
  }
  pd_msg_ref(m);
  c->oq[(c->oq_head + c->oq_len) & (c->oq_cap - 1)] = m;
  c->oq_len++;
  return 0;
}

/* The bytes not yet handed to the kernel: what is in the ring and not in
 * flight, plus what libuv still holds of the in-flight write. */
static size_t conn_unwritten(pd_conn *c) {
  if (c->detached) return c->out_bytes;
  return c->out_bytes - c->wr_bytes + uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

/* Fill out_iov from the ring's head, skipping the written part of the
 * first entry; the number of buffers, their bytes in *bytes. */
static uint32_t oq_iov(pd_conn *c, size_t *bytes) {
  uint32_t n = c->oq_len < PD_OUT_IOV ? c->oq_len : PD_OUT_IOV;
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    pd_msg *m = c->oq[(c->oq_head + i) & (c->oq_cap - 1)];
    size_t off = i == 0 ? c->oq_off : 0;
    out_iov[i] = uv_buf_init((char *)m->data + off, (unsigned)(m->len - off));
    total += m->len - off;
  }
  *bytes = total;
  return n;
}

/* The kernel took n bytes from the ring's head. */
static void oq_consume(pd_conn *c, size_t n) {
  c->out_bytes -= n;
  while (n) {
    pd_msg *m = c->oq[c->oq_head];
    size_t left = m->len - c->oq_off;
    if (n < left) {
      c->oq_off += (uint32_t)n; /* n < left, within one frame */
      return;
    }
    n -= left;
    oq_pop(c, 1);
  }
}

static void write_cb(uv_write_t *req, int status) {
  pd_conn *c = req->data;
  pd_free(req);
  c->wr = NULL;
  c->out_bytes -= c->wr_bytes;
  c->wr_bytes = 0;
  oq_pop(c, c->wr_n);
  c->wr_n = 0;
  if (status < 0) {
    if (!c->closing) conn_begin_close(c);
    return;
  }
  if (c->oq_len) flush_list_add(c); /* the rest goes before the next poll */
  else if (c->close_after_flush && !c->closing && !c->in_ws_recv) conn_finish(c);
}

/* A write failed.  From the sink (early) the connection is closed by the
 * next flush: closing ends the session, which must not happen inside a
 * broadcast. */
static void write_failed(pd_conn *c, int early) {
  if (!early) {
    conn_begin_close(c);
    return;
  }
  c->write_failed = 1;
  flush_list_add(c);
}

/* Write what the ring holds: uv_try_write of everything first, and only
 * what the kernel did not take to one uv_write. */
static void conn_flush_io(pd_conn *c, int early) {
  if (c->detached || c->closing || c->shut) return;
  if (c->write_failed) {
    write_failed(c, early);
    return;
  }
  while (c->oq_len && !c->wr) {
    size_t bytes;
    uint32_t n = oq_iov(c, &bytes);
    c->srv->out.writes++;
    int r = uv_try_write((uv_stream_t *)&c->tcp, out_iov, n);
    if (r == UV_EAGAIN) r = 0;
    if (r < 0) {
      write_failed(c, early);
      return;
    }
    oq_consume(c, (size_t)r);
    if ((size_t)r == bytes) continue;
    /* Partial: the rest of these buffers go to one request. */
    c->srv->out.partial++;
    n = oq_iov(c, &bytes);
    uv_write_t *req = pd_alloc(sizeof *req);
    if (!req) {
      write_failed(c, early);
      return;
    }
    req->data = c;
    if (uv_write(req, (uv_stream_t *)&c->tcp, out_iov, n, write_cb) != 0) {
      pd_free(req);
      write_failed(c, early);
      return;
    }
    c->wr = req;
    c->wr_n = n;
    c->wr_bytes = bytes;
  }
  if (!early && !c->oq_len && c->close_after_flush && !c->in_ws_recv) conn_finish(c);
}

static void conn_flush(pd_conn *c) { conn_flush_io(c, 0); }
static void conn_flush_early(pd_conn *c) { conn_flush_io(c, 1); }

void pd_server_flush(pd_server *s) {
  pd_conn *c;
  while ((c = s->flush_list) != NULL) {
    s->flush_list = c->flush_next;
    if (!s->flush_list) s->flush_tail = NULL;
    c->flush_next = NULL;
    c->flush_queued = 0;
    conn_flush(c); /* may list connections again (a close ends a session) */
  }
}

static void flush_cb(uv_prepare_t *h) { pd_server_flush(h->data); }

/* Write a frame regardless of the queue cap (control frames, errors). */
static int conn_write_raw(pd_conn *c, pd_msg *m) {
  if (c->closing) return -1;
  if (c->tls) return pd_tls_conn_write(c, m); /* encrypted, then pd_conn_write_wire */
  return pd_conn_write_wire(c, m);
}

int pd_conn_write_wire(pd_conn *c, pd_msg *m) {
  if (c->closing) return -1;
  if (c->detached) {
    /* no socket: keep the bytes (up to PD_DETACHED_OUT_CAP) for the owner */
    if (!c->dout) c->dout = pd_zalloc(sizeof *c->dout);
    if (!c->dout) return 0;
    size_t room = PD_DETACHED_OUT_CAP - c->dout->len;
    size_t n = m->len < room ? m->len : room;
    if (n) {
      uint8_t *p = pd_realloc(c->dout->buf, c->dout->len + n);
      if (p) {
        memcpy(p + c->dout->len, m->data, n);
        c->dout->buf = p;
        c->dout->len += n;
      }
    }
    if (c->is_ws && c->sess.app) c->sess.app->stats.ws_bytes_out += m->len;
    return 0;
  }
  if (c->write_failed || c->shut) return -1;
  if (m->len == 0) return 0;
  if (oq_push(c, m) != 0) {
    /* A frame cannot be dropped from the middle of the stream: the
     * connection is closed by the next flush (not here: we may be inside
     * a broadcast). */
    c->write_failed = 1;
    flush_list_add(c);
    return -1;
  }
  c->out_bytes += m->len;
  c->srv->out.frames++;
  if (c->is_ws && c->sess.app) c->sess.app->stats.ws_bytes_out += m->len;
  if (!c->wr) flush_list_add(c);
  return 0;
}

/* pd_sink.send */
static int conn_queue(pd_msg *m, void *ud) {
  pd_conn *c = ud;
  if (c->closing || c->close_after_flush || !c->is_ws) return -1;
  conn_drain_ws(c);
  if (c->overflow) return -1;
  /* What the kernel has not taken yet.  Before a burst in one loop turn
   * could cut a client that reads, the ring is written now. */
  size_t queued = conn_unwritten(c);
  if (queued + m->len > c->srv->cfg->outq_cap && !c->detached && !c->wr && c->oq_len) {
    conn_flush_early(c);
    queued = conn_unwritten(c);
  }
  if (queued + m->len > c->srv->cfg->outq_cap) {
    /* Closed from the tick (not here: we may be inside a broadcast loop). */
    pd_log(PD_LOG_WARN, "msg=\"output queue over cap, closing slow consumer\" socket_id=%s queued=%zu cap=%zu",
           c->sess.socket_id, queued, c->srv->cfg->outq_cap);
    c->overflow = 1;
    return -1;
  }
  int r = conn_write_raw(c, m);
  if (r == 0 && c->sess.app) c->sess.app->stats.ws_msgs_out++;
  return r;
}

static void conn_drain_ws(pd_conn *c) {
  if (!c->ws) return;
  for (;;) {
    const uint8_t *p;
    size_t n = pusher__ws_pending(c->ws, &p);
    if (!n) break;
    pd_msg *m = pd_msg_raw(p, n);
    pusher__ws_consume(c->ws, n);
    if (!m) break;
    conn_write_raw(c, m);
    pd_msg_unref(m);
  }
}

/* pd_sink.close: pusher:error (Pusher codes) + close frame, then flush and
 * close the socket. */
static void conn_close(int code, const char *message, void *ud) {
  pd_conn *c = ud;
  if (c->closing || c->close_after_flush) return;
  pd_log(PD_LOG_INFO, "msg=\"closing connection\" socket_id=%s code=%d reason=\"%s\"", c->sess.socket_id, code,
         message ? message : "");
  if (c->ws) {
    conn_drain_ws(c);
    if (code >= 4000 && message) {
      char *t = pd_error_json(code, message, NULL);
      pd_msg *m = t ? pd_msg_frame(t, strlen(t)) : NULL;
      free(t);
      if (m) {
        if (conn_write_raw(c, m) == 0 && c->sess.app) c->sess.app->stats.ws_msgs_out++;
        pd_msg_unref(m);
      }
    }
    char reason[100];
    snprintf(reason, sizeof reason, "%s", message ? message : "");
    (void)pusher__ws_send_close(c->ws, (uint16_t)code, reason);
    conn_drain_ws(c);
  }
  pd_session_end(&c->sess);
  c->close_after_flush = 1;
  c->close_started_ms = pd_now_ms(c->srv);
  /* Inside pusher__ws_recv the close frame is still in the codec's queue:
   * pd_conn_feed flushes it and then closes. */
  if (c->out_bytes == 0 && !c->in_ws_recv) conn_finish(c);
}

static const pd_sink conn_sink = {conn_queue, conn_close};

/* No close frame or reply (the TLS layer's errors, close_notify): end the
 * session, write what is queued, then FIN (conn_finish). */
void pd_conn_end(pd_conn *c) {
  if (c->closing || c->close_after_flush) return;
  pd_session_end(&c->sess);
  c->close_after_flush = 1;
  c->close_started_ms = pd_now_ms(c->srv);
  if (c->out_bytes == 0 && !c->in_ws_recv) conn_finish(c);
}

/* Extra headers of an API response: rate limits (core/pd_ratelimit.h). */
static void rl_headers(const pd_http_response *r, char *buf, size_t n) {
  buf[0] = 0;
  if (!r) return;
  int k = 0;
  if (r->retry_after > 0) k = snprintf(buf, n, "Retry-After: %d\r\n", r->retry_after);
  if (r->rl_reset && k >= 0 && (size_t)k < n)
    snprintf(buf + k, n - (size_t)k, "X-RateLimit-Limit: %ld\r\nX-RateLimit-Remaining: %ld\r\nX-RateLimit-Reset: %llu\r\n",
             r->rl_limit, r->rl_remaining, (unsigned long long)r->rl_reset);
}

static void http_reply(pd_conn *c, int status, const char *body, size_t len, const pd_http_response *api) {
  const char *text = pd_http_status_text(status);
  int keep = !c->http_error && c->http && http_should_keep_alive(&c->http->parser) && !c->srv->shutting_down;
  char head[640], retry[200];
  rl_headers(api, retry, sizeof retry);
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Access-Control-Allow-Origin: *\r\n%sConnection: %s\r\n\r\n",
                    status, text, len, retry, keep ? "keep-alive" : "close");
  pd_msg *m = pd_alloc(sizeof *m + (size_t)hl + len);
  if (!m) return;
  m->refs = 1;
  m->len = (size_t)hl + len;
  memcpy(m->data, head, (size_t)hl);
  if (len) memcpy(m->data + hl, body, len);
  conn_write_raw(c, m);
  pd_msg_unref(m);
  if (!keep) {
    c->close_after_flush = 1;
    c->close_started_ms = pd_now_ms(c->srv);
    if (c->out_bytes == 0) conn_finish(c);
  }
}

static void http_error_reply(pd_conn *c, int status, const char *msg) {
  pd_http_response r;
  pd_http_error(&r, status, msg);
  c->http_error = 1;
  pd_stats_http(c->srv->core, PD_ROUTE_OTHER, r.status);
  http_reply(c, r.status, r.body ? r.body : "", r.len, NULL);
  pd_free(r.body);
}

/* ------------------------------------------------------------------ lifecycle */
static void conn_unlink(pd_conn *c) {
  pd_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else if (s->conns == c) s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  s->nconns--;
}

static void check_shutdown_done(pd_server *s);

void pd_conn_destroy(pd_conn *c) {
  pd_session_end(&c->sess);
  pd_server *s = c->srv;
  flush_list_remove(c);
  if (c->oq_len) oq_pop(c, c->oq_len);
  oq_release(c);
  conn_unlink(c);
  if (c->ws) pusher__ws_del(c->ws);
  pd_tls_conn_free(c);
  http_free(c);
  if (c->dout) pd_free(c->dout->buf);
  pd_free(c->dout);
  pd_free(c);
  check_shutdown_done(s);
}

static void close_cb(uv_handle_t *h) { pd_conn_destroy(h->data); }

/* The request is allocated by conn_finish and freed here: libuv calls this
 * (UV_ECANCELED) before close_cb when the handle closes first. */
static void shutdown_cb(uv_shutdown_t *req, int status) {
  pd_conn *c = req->data;
  pd_free(req);
  if (status < 0 && !c->closing) conn_begin_close(c);
}

/* Everything is written and nothing more will be: half-close (FIN) and keep
 * reading, discarding the input, until the peer's EOF; the tick closes
 * after 5 s regardless.  Closing at once with unread input makes the kernel
 * send a reset, which can destroy the close frame or reply still in flight
 * (a client in the middle of sending an oversized message sees 1006
 * instead of 1009; RFC 6455 7.1.1 wants the server to close after the
 * client). */
static void conn_finish(pd_conn *c) {
  if (c->closing || c->shut) return;
  if (c->detached) {
    conn_begin_close(c);
    return;
  }
  if (c->tls) {
    pd_tls_conn_shutdown(c); /* close_notify before the FIN */
    flush_list_remove(c);
    conn_flush_io(c, 1);     /* now: uv_shutdown waits only for libuv's writes */
    if (c->closing || c->write_failed) {
      if (!c->closing) conn_begin_close(c);
      return;
    }
  }
  uv_shutdown_t *req = pd_alloc(sizeof *req);
  if (!req) {
    conn_begin_close(c);
    return;
  }
  c->shut = 1;
  req->data = c;
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
    pd_free(req);
    conn_begin_close(c);
  }
}

static void conn_begin_close(pd_conn *c) {
  if (c->closing) return;
  pd_session_end(&c->sess);
  c->closing = 1;
  if (c->detached) return; /* destroyed by the owner */
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

/* ------------------------------------------------------------------ WebSocket */
static void ws_on_text(const uint8_t *msg, size_t len, void *ud) {
  pd_conn *c = ud;
  if (c->closing || c->close_after_flush) return;
  c->last_rx_ms = pd_now_ms(c->srv);
  c->ping_sent_ms = 0;
  if (c->sess.app) c->sess.app->stats.ws_msgs_in++;
  pd_session_on_text(&c->sess, msg, len);
}

static void ws_on_binary(const uint8_t *msg, size_t len, void *ud) {
  pd_conn *c = ud;
  if (c->closing || c->close_after_flush) return;
  c->last_rx_ms = pd_now_ms(c->srv);
  c->ping_sent_ms = 0;
  if (c->sess.app) c->sess.app->stats.ws_msgs_in++;
  pd_session_on_binary(&c->sess, msg, len);
}

static void ws_on_pong(void *ud) {
  pd_conn *c = ud;
  c->last_rx_ms = pd_now_ms(c->srv);
  c->ping_sent_ms = 0;
}

static void ws_on_close(uint16_t code, const char *reason, size_t reason_len, void *ud) {
  pd_conn *c = ud;
  pd_log(PD_LOG_DEBUG, "msg=\"client closed\" socket_id=%s code=%u", c->sess.socket_id, code);
  conn_drain_ws(c);
  pd_session_end(&c->sess);
  c->close_after_flush = 1;
  c->close_started_ms = pd_now_ms(c->srv);
}

static void ws_on_error(int err, const char *detail, void *ud) {
  pd_conn *c = ud;
  pd_log(PD_LOG_INFO, "msg=\"websocket error\" socket_id=%s err=%d detail=\"%s\"", c->sess.socket_id, err,
         detail ? detail : "");
  conn_drain_ws(c);
  pd_session_end(&c->sess);
  c->close_after_flush = 1;
  c->close_started_ms = pd_now_ms(c->srv);
}

/* The shared codec (lib/core/ws.h) in server mode: binary messages are
 * delivered (and answered with pusher:error), invalid UTF-8 closes 1007. */
static const pusher__ws_callbacks ws_cbs = {
    .on_text = ws_on_text,
    .on_close = ws_on_close,
    .on_error = ws_on_error,
};
static const pusher__ws_extra_callbacks ws_xcbs = {
    .on_binary = ws_on_binary,
    .on_pong = ws_on_pong,
};

static void ws_upgrade(pd_conn *c) {
  pd_server *s = c->srv;
  pusher__ws_config wcfg = {.max_msg = PD_WS_MSG_CAP};
  if (pusher__ws_server_new(&c->ws, &wcfg, c->http->ws_key, NULL, &ws_cbs, c) != 0) {
    c->ws = NULL;
    http_error_reply(c, 400, "Invalid WebSocket handshake");
    return;
  }
  pusher__ws_set_extra_callbacks(c->ws, &ws_xcbs);
  c->is_ws = 1;
  c->last_rx_ms = pd_now_ms(s);
  conn_drain_ws(c);
  c->sess.tls = c->tls != NULL; /* for tls_only apps */
  pd_session_open(&c->sess, c->http->url ? c->http->url : "", rng_next(s), rng_next(s));
  http_free(c); /* the request's state is not needed on a WebSocket */
}

/* ------------------------------------------------------------------ HTTP */
static void http_reset(pd_conn *c) {
  pd_http *h = c->http;
  if (h) {
    pd_free(h->url), h->url = NULL, h->url_len = 0;
    pd_free(h->hfield), h->hfield = NULL, h->hfield_len = 0;
    pd_free(h->hvalue), h->hvalue = NULL, h->hvalue_len = 0;
    pd_free(h->ws_key), h->ws_key = NULL;
    pd_free(h->body), h->body = NULL, h->body_len = 0;
    h->header_bytes = 0;
  }
  c->last_was_value = 0;
  c->upgrade_ws = 0;
  c->body_too_large = 0;
  c->req_done = 0;
  c->headers_done = 0;
}

/* The request state goes: at the upgrade, and with the connection. */
static void http_free(pd_conn *c) {
  if (!c->http) return;
  http_reset(c);
  pd_free(c->http);
  c->http = NULL;
}

static int append(char **dst, size_t *dlen, const char *at, size_t n) {
  char *p = pd_realloc(*dst, *dlen + n + 1);
  if (!p) return -1;
  memcpy(p + *dlen, at, n);
  *dlen += n;
  p[*dlen] = 0;
  *dst = p;
  return 0;
}

static int hp_message_begin(http_parser *p) {
  pd_conn *c = p->data;
  http_reset(c);
  c->http->req_started_ms = pd_now_ms(c->srv);
  return 0;
}

static int hp_url(http_parser *p, const char *at, size_t n) {
  pd_conn *c = p->data;
  pd_http *h = c->http;
  h->header_bytes += n;
  if (h->header_bytes > PD_HEADER_CAP) return 1;
  return append(&h->url, &h->url_len, at, n) ? 1 : 0;
}

static void header_done(pd_conn *c) {
  pd_http *h = c->http;
  if (!h->hfield) return;
  if (strcasecmp(h->hfield, "sec-websocket-key") == 0 && h->hvalue) {
    pd_free(h->ws_key);
    h->ws_key = pd_strdup(h->hvalue);
  } else if (strcasecmp(h->hfield, "upgrade") == 0 && h->hvalue && strcasecmp(h->hvalue, "websocket") == 0) {
    c->upgrade_ws = 1;
  }
  pd_free(h->hfield), h->hfield = NULL, h->hfield_len = 0;
  pd_free(h->hvalue), h->hvalue = NULL, h->hvalue_len = 0;
}

static int hp_hfield(http_parser *p, const char *at, size_t n) {
  pd_conn *c = p->data;
  pd_http *h = c->http;
  h->header_bytes += n;
  if (h->header_bytes > PD_HEADER_CAP) return 1;
  if (c->last_was_value) header_done(c);
  c->last_was_value = 0;
  return append(&h->hfield, &h->hfield_len, at, n) ? 1 : 0;
}

static int hp_hvalue(http_parser *p, const char *at, size_t n) {
  pd_conn *c = p->data;
  pd_http *h = c->http;
  h->header_bytes += n;
  if (h->header_bytes > PD_HEADER_CAP) return 1;
  c->last_was_value = 1;
  return append(&h->hvalue, &h->hvalue_len, at, n) ? 1 : 0;
}

static int hp_headers_complete(http_parser *p) {
  pd_conn *c = p->data;
  header_done(c);
  c->headers_done = 1;
  if (p->content_length != ULLONG_MAX && p->content_length > PD_BODY_CAP) {
    c->body_too_large = 1;
    http_error_reply(c, 413, "Request body too large (cap 1 MiB)");
    /* Stop parsing.  Returning 1 would only mean "no body" to http_parser,
     * which would then complete the message and reply a second time. */
    return -1;
  }
  return 0;
}

static int hp_body(http_parser *p, const char *at, size_t n) {
  pd_conn *c = p->data;
  pd_http *h = c->http;
  if (c->body_too_large || h->body_len + n > PD_BODY_CAP) {
    c->body_too_large = 1;
    return 0;
  }
  return append(&h->body, &h->body_len, at, n) ? 1 : 0;
}

static int hp_message_complete(http_parser *p) {
  pd_conn *c = p->data;
  pd_http *h = c->http;
  c->req_done = 1;
  h->req_started_ms = 0; /* idle until the next request's first byte */
  if (p->upgrade) return 0; /* handled after http_parser_execute returns */
  if (c->body_too_large) {
    http_error_reply(c, 413, "Request body too large");
    return 1;
  }
  c->last_rx_ms = pd_now_ms(c->srv);
  pd_http_response r;
  pd_rest_handle(c->srv->core, http_method_str((enum http_method)p->method), h->url ? h->url : "/",
                 h->url_len, h->body ? h->body : "", h->body_len, &r);
  http_reply(c, r.status, r.body ? r.body : "", r.len, &r);
  pd_free(r.body);
  if (c->close_after_flush || c->closing) return 1; /* stop parsing pipelined input */
  return 0;
}

static const http_parser_settings hp_settings = {
    .on_message_begin = hp_message_begin,
    .on_url = hp_url,
    .on_header_field = hp_hfield,
    .on_header_value = hp_hvalue,
    .on_headers_complete = hp_headers_complete,
    .on_body = hp_body,
    .on_message_complete = hp_message_complete,
};

void pd_conn_feed(pd_conn *c, const uint8_t *buf, size_t len) {
  if (c->closing || c->close_after_flush) return;
  core_time(c->srv);
  if (c->is_ws) {
    if (c->sess.app) c->sess.app->stats.ws_bytes_in += len;
    c->in_ws_recv = 1;
    (void)pusher__ws_recv(c->ws, buf, len);
    c->in_ws_recv = 0;
    conn_drain_ws(c);
    if (c->close_after_flush && c->out_bytes == 0) conn_finish(c);
    return;
  }
  if (!c->http) return; /* out of memory at accept */
  size_t n = http_parser_execute(&c->http->parser, &hp_settings, (const char *)buf, len);
  if (c->closing || c->close_after_flush) return;
  if (c->http->parser.upgrade) {
    if (c->http->parser.method != HTTP_GET || !c->upgrade_ws || !c->http->ws_key) {
      http_error_reply(c, 400, "Expected a WebSocket upgrade (GET with Upgrade: websocket and Sec-WebSocket-Key)");
      return;
    }
    ws_upgrade(c);
    if (!c->closing && !c->close_after_flush && n < len) pd_conn_feed(c, buf + n, len - n);
    return;
  }
  if (HTTP_PARSER_ERRNO(&c->http->parser) != HPE_OK) {
    enum http_errno e = HTTP_PARSER_ERRNO(&c->http->parser);
    if (c->http->header_bytes > PD_HEADER_CAP) http_error_reply(c, 431, "Request headers too large (cap 16 KiB)");
    else http_error_reply(c, 400, http_errno_description(e));
  }
}

/* ------------------------------------------------------------------ sockets */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char slab[65536];
  (void)h, (void)suggested;
  *buf = uv_buf_init(slab, sizeof slab);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  pd_conn *c = st->data;
  core_time(c->srv);
  if (nread < 0) {
    if (!c->closing) conn_begin_close(c);
    return;
  }
  if (nread > 0 && c->tls) pd_tls_conn_read(c, (const uint8_t *)buf->base, (size_t)nread);
  else if (nread > 0) pd_conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
}

static pd_conn *conn_alloc(pd_server *s) {
  pd_conn *c = pd_zalloc(sizeof *c);
  if (!c) return NULL;
  c->http = pd_zalloc(sizeof *c->http);
  if (!c->http) {
    pd_free(c);
    return NULL;
  }
  c->srv = s;
  http_parser_init(&c->http->parser, HTTP_REQUEST);
  c->http->parser.data = c;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  c->last_rx_ms = pd_now_ms(s);
  c->http->req_started_ms = c->last_rx_ms ? c->last_rx_ms : 1; /* the header deadline runs from accept */
  pd_session_init(&c->sess, s->core, &conn_sink, c);
  return c;
}

pd_conn *pd_conn_new_detached(pd_server *s) {
  pd_conn *c = conn_alloc(s);
  if (c) c->detached = 1;
  return c;
}

/* Out of file descriptors (docs/architecture.md).  Descriptors are
 * allocated lowest first (POSIX open(2), accept(2)), so an accepted
 * descriptor numbered within PD_FD_RESERVE of the limit means fewer than
 * PD_FD_RESERVE are left: that client is answered 503 and closed, and the
 * rest stays for the connections already open.  If accept(2) itself fails
 * with EMFILE, libuv closes its spare descriptor, accepts and closes the
 * pending connections and reopens the spare (its reserve-descriptor
 * trick); when it reports the error here it is counted the same way.
 * One log line a second at most, and one when connections are accepted
 * again. */
static void fd_shortage(pd_server *s, const char *how) {
  uint64_t now = pd_now_ms(s);
  s->fd_refused++;
  s->fd_refused_total++;
  if (!s->fd_short_since_ms) s->fd_short_since_ms = now ? now : 1;
  if (s->fd_refused_log_ms && now - s->fd_refused_log_ms < 1000) return;
  pd_log(PD_LOG_WARN,
         "msg=\"out of file descriptors; refusing connections\" how=%s refused=%llu refused_total=%llu "
         "fd_limit=%d reserve=%d connections=%zu",
         how, (unsigned long long)s->fd_refused, (unsigned long long)s->fd_refused_total, s->fd_limit,
         PD_FD_RESERVE, s->nconns);
  s->fd_refused_log_ms = now ? now : 1;
  s->fd_refused = 0;
}

static void fd_recovered(pd_server *s) {
  if (!s->fd_short_since_ms) return;
  uint64_t now = pd_now_ms(s);
  pd_log(PD_LOG_WARN,
         "msg=\"file descriptors available again; accepting connections\" refused_unlogged=%llu "
         "refused_total=%llu shortage_ms=%llu connections=%zu",
         (unsigned long long)s->fd_refused, (unsigned long long)s->fd_refused_total,
         (unsigned long long)(now - s->fd_short_since_ms), s->nconns);
  s->fd_short_since_ms = 0;
  s->fd_refused_log_ms = 0;
  s->fd_refused = 0;
}

static int fd_near_limit(pd_conn *c) {
  uv_os_fd_t fd;
  int limit = c->srv->fd_limit;
  if (limit <= 0 || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return 0;
  return fd >= limit - PD_FD_RESERVE;
}

/* Answer 503 and close at once, so that the refused connection gives its
 * descriptor back now rather than after the client's EOF.  What the client
 * has already sent is read first: closing with unread input makes the kernel
 * send a reset instead of a FIN (RFC 1122 4.2.2.13), and a client reading
 * later still finds the reply before the reset.  Bounded: one read of at
 * most 16 KiB and one non-blocking write. */
static void refuse(pd_conn *c, int tls) {
  static const char reply[] =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 56\r\n"
      "Retry-After: 1\r\nConnection: close\r\n\r\n"
      "{\"error\":\"Server out of file descriptors; retry later\"}\n";
  uv_os_fd_t fd;
  char sink[16384];
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) (void)recv(fd, sink, sizeof sink, MSG_DONTWAIT);
  uv_buf_t b = uv_buf_init((char *)reply, sizeof reply - 1);
  if (!tls) (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1); /* a TLS client could not read it */
  c->refused = 1;
  conn_begin_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
  pd_server *s = server->data;
  core_time(s);
  if (status < 0) {
    if (status == UV_EMFILE || status == UV_ENFILE) fd_shortage(s, uv_err_name(status));
    else pd_log(PD_LOG_DEBUG, "msg=\"accept failed\" error=\"%s\"", uv_strerror(status));
    return;
  }
  if (s->shutting_down) return;
  pd_conn *c = conn_alloc(s);
  if (!c) return;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    return;
  }
  int tls = server == (uv_stream_t *)&s->tls_listener;
  if (fd_near_limit(c)) {
    fd_shortage(s, "reserve");
    refuse(c, tls);
    return;
  }
  fd_recovered(s);
  if (tls && pd_tls_conn_start(c, s->tls_ctx) != 0) {
    conn_begin_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* After many connections have gone (a flood closed by the header deadline,
 * a mass disconnect), give the freed heap back to the system: glibc keeps
 * freed memory in its arenas otherwise, and RSS stays at the flood's high
 * mark.  At most once a tick, and only after PD_TRIM_DROP connections went. */
#define PD_TRIM_DROP 256
static void trim_memory(pd_server *s) {
  if (s->nconns > s->conns_high) s->conns_high = s->nconns;
  if (s->conns_high - s->nconns < PD_TRIM_DROP) return;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  s->conns_high = s->nconns;
}

static void tick_cb(uv_timer_t *t) { pd_server_tick(t->data); }

void pd_server_tick(pd_server *s) {
  core_time(s);
  uint64_t now = pd_now_ms(s);
  size_t late = 0; /* answered 408 in this tick: one log line for all */
  size_t late_tls = 0; /* TLS handshakes past the header deadline: closed */
  pd_conn *c = s->conns;
  while (c) {
    pd_conn *nx = c->next;
    if (c->oq && !c->oq_len) oq_release(c); /* an idle connection holds no ring */
    if (c->closing) {
      /* nothing */
    } else if (c->close_after_flush) {
      if (now - c->close_started_ms > 5000) conn_begin_close(c);
    } else if (c->overflow) {
      if (c->sess.app) c->sess.app->stats.outq_closes++;
      conn_close(4100, "Over capacity: the client did not read its messages fast enough", c);
    } else if (c->is_ws && c->sess.app) {
      uint64_t idle = now - c->last_rx_ms;
      if (c->ping_sent_ms && now - c->ping_sent_ms > (uint64_t)s->cfg->pong_timeout_ms) {
        conn_close(4201, "Pong reply not received", c);
      } else if (!c->ping_sent_ms && idle > (uint64_t)c->sess.app->cfg->activity_timeout * 1000u) {
        pd_session_ping(&c->sess);
        c->ping_sent_ms = now;
      }
    } else if (pd_tls_conn_handshaking(c)) {
      if (c->http && now - c->http->req_started_ms > (uint64_t)s->cfg->header_timeout_ms) {
        late_tls++;
        conn_begin_close(c); /* no HTTP reply is possible before the handshake */
      }
    } else if (!c->is_ws && !c->headers_done && c->http && c->http->req_started_ms &&
               now - c->http->req_started_ms > (uint64_t)s->cfg->header_timeout_ms) {
      late++;
      char msg[100];
      snprintf(msg, sizeof msg, "Request headers not received within %d ms", s->cfg->header_timeout_ms);
      http_error_reply(c, 408, msg);
    } else if (!c->is_ws && now - c->last_rx_ms > 60000) {
      conn_begin_close(c);
    }
    c = nx;
  }
  if (late)
    pd_log(PD_LOG_INFO, "msg=\"request headers not complete in time; 408\" connections=%zu limit_ms=%d", late,
           s->cfg->header_timeout_ms);
  if (late_tls)
    pd_log(PD_LOG_INFO, "msg=\"TLS handshake not complete in time; closed\" connections=%zu limit_ms=%d", late_tls,
           s->cfg->header_timeout_ms);
  pd_core_tick(s->core);
  trim_memory(s);
}

int pd_server_init(pd_server *s, uv_loop_t *loop, const pd_config *cfg, pd_core *core) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->cfg = cfg;
  s->core = core;
  s->rng = (uint64_t)time(NULL) * 6364136223846793005ull ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
  if (!s->rng) s->rng = 1;
  if (loop) {
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_init(loop, &s->grace);
    s->grace.data = s;
    /* Before each poll (docs/architecture.md, "Coalesced output");
     * unreferenced: it does not keep the loop alive by itself. */
    uv_prepare_init(loop, &s->flush);
    s->flush.data = s;
    uv_prepare_start(&s->flush, flush_cb);
    uv_unref((uv_handle_t *)&s->flush);
  }
  return 0;
}

static int listen_on(pd_server *s, uv_tcp_t *l, int port) {
  struct sockaddr_storage addr;
  int r;
  if (strchr(s->cfg->host, ':')) r = uv_ip6_addr(s->cfg->host, port, (struct sockaddr_in6 *)&addr);
  else r = uv_ip4_addr(s->cfg->host, port, (struct sockaddr_in *)&addr);
  if (r != 0) {
    pd_log(PD_LOG_ERROR, "msg=\"bad listen address\" host=%s error=\"%s\"", s->cfg->host, uv_strerror(r));
    return r;
  }
  uv_tcp_init(s->loop, l);
  l->data = s;
  r = uv_tcp_bind(l, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)l, 1024, on_connection);
  if (r != 0) {
    pd_log(PD_LOG_ERROR, "msg=\"cannot listen\" host=%s port=%d error=\"%s\"", s->cfg->host, port,
           uv_strerror(r));
    uv_close((uv_handle_t *)l, NULL);
    return r;
  }
  return 0;
}

/* The plain listener on cfg->port (none when 0) and, with a TLS context,
 * the TLS listener on cfg->tls_port. */
int pd_server_listen(pd_server *s) {
  int r;
  if (s->cfg->port) {
    if ((r = listen_on(s, &s->listener, s->cfg->port)) != 0) return r;
    s->listening = 1;
  }
  if (s->tls_ctx && s->cfg->tls_port) {
    if ((r = listen_on(s, &s->tls_listener, s->cfg->tls_port)) != 0) return r;
    s->tls_listening = 1;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= INT_MAX)
    s->fd_limit = (int)rl.rlim_cur;
  uv_timer_start(&s->tick, tick_cb, 1000, 1000);
  return 0;
}

static void stop_handles(pd_server *s) {
  if (s->handles_closed) return;
  s->handles_closed = 1;
  uv_timer_stop(&s->tick);
  uv_timer_stop(&s->grace);
  if (!uv_is_closing((uv_handle_t *)&s->tick)) uv_close((uv_handle_t *)&s->tick, NULL);
  if (!uv_is_closing((uv_handle_t *)&s->grace)) uv_close((uv_handle_t *)&s->grace, NULL);
  uv_prepare_stop(&s->flush);
  if (!uv_is_closing((uv_handle_t *)&s->flush)) uv_close((uv_handle_t *)&s->flush, NULL);
  pd_tls_ctx_stop(s->tls_ctx);
  if (s->signals_on) {
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
  }
  if (s->on_stop) s->on_stop(s->on_stop_ud);
}

static void check_shutdown_done(pd_server *s) {
  if (s->shutting_down && s->loop && s->nconns == 0) {
    pd_log(PD_LOG_INFO, "msg=\"all connections closed; exiting\"");
    stop_handles(s);
  }
}

static void grace_cb(uv_timer_t *t) {
  pd_server *s = t->data;
  core_time(s);
  pd_log(PD_LOG_WARN, "msg=\"shutdown grace period over; dropping remaining connections\" count=%zu", s->nconns);
  for (pd_conn *c = s->conns; c; c = c->next)
    if (!c->closing) conn_begin_close(c);
}

void pd_server_shutdown(pd_server *s) {
  if (s->shutting_down) return;
  s->shutting_down = 1;
  pd_log(PD_LOG_INFO, "msg=\"shutting down: closing every connection with 4200\" connections=%zu", s->nconns);
  core_time(s);
  pd_core_set_draining(s->core, 1);
  if (s->on_shutdown) s->on_shutdown(s->on_shutdown_ud);
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
  }
  if (s->tls_listening) {
    uv_close((uv_handle_t *)&s->tls_listener, NULL);
    s->tls_listening = 0;
  }
  pd_conn *c = s->conns;
  while (c) {
    pd_conn *nx = c->next;
    if (c->is_ws) conn_close(4200, "Server is shutting down; reconnect", c);
    else if (!c->closing && !c->close_after_flush) conn_begin_close(c);
    c = nx;
  }
  if (s->loop) {
    if (s->nconns == 0) stop_handles(s);
    else uv_timer_start(&s->grace, grace_cb, (uint64_t)s->cfg->shutdown_grace_ms, 0);
  }
}

void pd_server_free(pd_server *s) {
  while (s->conns) {
    pd_conn *c = s->conns;
    pd_conn_destroy(c);
  }
}

size_t pd_conn_detached_output(pd_conn *c, const uint8_t **out) {
  *out = c->dout ? c->dout->buf : NULL;
  return c->dout ? c->dout->len : 0;
}
