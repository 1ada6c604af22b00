/* The libuv runtime: transports.  The engine asks for a connection
 * (pusher__conn_io_want); a transport resolves the host, tries each address,
 * runs TLS when asked, feeds what it reads to the engine and writes what the
 * engine has to send, at most max_send_queue bytes in flight.  Every libuv
 * callback first checks that its transport is still the live one. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "uv/client_internal.h"

static void xport_release(struct xport *x) {
  if (x->refs > 0 || !x->dead) return;
  pusher_client *c = x->cl;
  for (struct xport **pp = &c->xports; *pp; pp = &(*pp)->next)
    if (*pp == x) {
      *pp = x->next;
      break;
    }
  if (c->cur == x) c->cur = NULL;
  if (x->ai_list) uv_freeaddrinfo(x->ai_list);
  pusher__tls_free(x->tls);
  pusher__free(c->mem, x->host);
  pusher__free(c->mem, x);
  client_unref(c);
}

static void on_linger_closed(uv_handle_t *h) {
  struct xport *x = h->data;
  pusher__free(x->cl->mem, h);
  x->linger = NULL;
  x->refs--;
  xport_release(x);
}

static void on_sock_closed(uv_handle_t *h) {
  struct sock *s = h->data;
  struct xport *x = s->x;
  if (x->s == s) x->s = NULL;
  pusher__free(x->cl->mem, s);
  if (x->linger && !uv_is_closing((uv_handle_t *)x->linger))
    uv_close((uv_handle_t *)x->linger, on_linger_closed);
  x->refs--;
  xport_release(x);
}

static void sock_close(struct sock *s) {
  if (s && !uv_is_closing((uv_handle_t *)&s->h)) uv_close((uv_handle_t *)&s->h, on_sock_closed);
}

/* Stop everything of x at once; no report to the engine any more. */
void xport_kill(struct xport *x) {
  x->dead = 1;
  if (x->cl->cur == x) x->cl->cur = NULL;
  if (x->gai_pending) uv_cancel((uv_req_t *)&x->gai);
  sock_close(x->s);
}

/* Report a failure of the live transport x to the engine and drop it. */
static void xport_fail(struct xport *x, int err, const char *detail) {
  pusher_client *c = x->cl;
  if (x->dead) return;
  uint64_t gen = x->gen;
  xport_kill(x);
  c->dirty = 1;
  if (c->conn) pusher__conn_io_failed(c->conn, gen, err, detail, now_ms());
}

static void on_write(uv_write_t *req, int status) {
  struct wreq *w = req->data;
  struct xport *x = w->x;
  pusher_client *c = x->cl;
  x->inflight -= w->len;
  pusher__free(c->mem, w);
  if (x->dead || status == UV_ECANCELED) return;
  if (status < 0) {
    char d[200];
    snprintf(d, sizeof(d), "write failed: %s", uv_strerror(status));
    enter(c);
    xport_fail(x, PUSHER_ERR_IO, d);
    leave(c);
  } else if (x->capped && x->inflight < c->max_inflight) {
    x->capped = 0;
    enter(c);
    c->dirty = 1;
    leave(c);
  }
}

/* Queue a copy of bytes on the socket of x. */
static int sock_write(struct xport *x, const uint8_t *p, size_t n) {
  pusher_client *c = x->cl;
  struct wreq *w = pusher__malloc(c->mem, sizeof(*w) + n);
  if (!w) return PUSHER_ERR_NOMEM;
  memcpy(w->data, p, n);
  w->x = x;
  w->len = n;
  w->req.data = w;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  int r = uv_write(&w->req, (uv_stream_t *)&x->s->h, &b, 1, on_write);
  if (r < 0) {
    pusher__free(c->mem, w);
    return PUSHER_ERR_IO;
  }
  x->inflight += n;
  return 0;
}

/* Send the ciphertext the TLS session produced. */
static int tls_flush(struct xport *x) {
  pusher_client *c = x->cl;
  size_t n;
  while ((n = pusher__tls_out_len(x->tls)) > 0) {
    struct wreq *w = pusher__malloc(c->mem, sizeof(*w) + n);
    if (!w) return PUSHER_ERR_NOMEM;
    size_t got = pusher__tls_take_out(x->tls, w->data, n);
    w->x = x;
    w->len = got;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)got);
    if (got == 0 || uv_write(&w->req, (uv_stream_t *)&x->s->h, &b, 1, on_write) < 0) {
      pusher__free(c->mem, w);
      return PUSHER_ERR_IO;
    }
    x->inflight += got;
  }
  return 0;
}

/* Move the engine's pending bytes to the socket, within the in-flight cap. */
void flush_engine(pusher_client *c) {
  struct xport *x = c->cur;
  if (!x || x->dead || !x->opened || !x->s || !c->conn) return;
  while (!x->dead) {
    if (x->inflight >= c->max_inflight) {
      x->capped = 1;
      return;
    }
    const uint8_t *p;
    size_t n = pusher__conn_io_pending(c->conn, &p);
    if (n == 0) return;
    if (n > c->max_inflight - x->inflight) n = c->max_inflight - x->inflight;
    int r;
    if (x->tls) {
      r = pusher__tls_write(x->tls, p, n);
      if (r == 0) r = tls_flush(x);
    } else {
      r = sock_write(x, p, n);
    }
    if (r < 0) {
      xport_fail(x, r == PUSHER_ERR_NOMEM ? PUSHER_ERR_NOMEM : PUSHER_ERR_IO,
                 x->tls && r != PUSHER_ERR_NOMEM ? pusher__tls_error_detail(x->tls)
                                                 : "write failed");
      return;
    }
    pusher__conn_io_consume(c->conn, n);
  }
}

static void report_opened(struct xport *x) {
  pusher_client *c = x->cl;
  x->opened = 1;
  c->dirty = 1;
  pusher__conn_io_opened(c->conn, x->gen, now_ms());
}

/* One read buffer per thread, shared by every connection whose loop runs
 * on it: libuv calls on_alloc, reads and calls on_read at once, and
 * on_read hands every byte on (to TLS, which copies, or to the engine,
 * whose WebSocket codec copies what it keeps) before it returns.  An idle
 * connection holds no read buffer. */
static _Thread_local uint8_t read_buf[READ_BUF];

/* Likewise the TLS plaintext buffer: tls_progress runs only from libuv
 * callbacks, which never nest on one thread, and the engine copies what it
 * keeps before pusher__conn_io_recv returns.  Shared, it costs a client
 * connection nothing (it was 16 KiB in every client). */
static _Thread_local uint8_t plain_buf[PLAIN_BUF];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  *buf = uv_buf_init((char *)read_buf, sizeof read_buf);
}

/* Decrypt what TLS has, handle handshake completion; pass plaintext on. */
static void tls_progress(struct xport *x) {
  pusher_client *c = x->cl;
  for (;;) {
    int n = pusher__tls_read(x->tls, plain_buf, sizeof plain_buf);
    if (n < 0) {
      (void)tls_flush(x); /* best effort: let the alert go out */
      xport_fail(x, n, pusher__tls_error_detail(x->tls));
      return;
    }
    if (!x->opened && pusher__tls_done(x->tls)) {
      if (tls_flush(x) < 0) {
        xport_fail(x, PUSHER_ERR_IO, "write failed");
        return;
      }
      report_opened(x);
      if (x->dead || !c->conn) return;
    }
    if (n == 0) break;
    c->dirty = 1;
    pusher__conn_io_recv(c->conn, x->gen, plain_buf, (size_t)n, now_ms());
    if (x->dead || !c->conn || c->deleting) return;
  }
  if (tls_flush(x) < 0) xport_fail(x, PUSHER_ERR_IO, "write failed");
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct sock *s = st->data;
  struct xport *x = s->x;
  pusher_client *c = x->cl;
  if (x->dead || nread == 0) return; /* zero-length read is not EOF */
  enter(c);
  if (x->dead || c->deleting || !c->conn) {
    leave(c);
    return;
  }
  if (nread > 0) {
    if (x->tls) {
      if (pusher__tls_feed(x->tls, (const uint8_t *)buf->base, (size_t)nread) < 0)
        xport_fail(x, PUSHER_ERR_NOMEM, "out of memory");
      else
        tls_progress(x);
    } else {
      c->dirty = 1;
      pusher__conn_io_recv(c->conn, x->gen, (const uint8_t *)buf->base, (size_t)nread, now_ms());
    }
  } else if (nread == UV_EOF) {
    xport_fail(x, PUSHER_ERR_IO,
               x->tls && !x->opened ? "connection closed by peer during the TLS handshake"
                                    : "connection closed by peer");
  } else {
    char d[200];
    snprintf(d, sizeof(d), "read failed: %s", uv_strerror((int)nread));
    xport_fail(x, map_uv_err((int)nread), d);
  }
  leave(c);
}

static void try_connect(struct xport *x);

static void on_connect(uv_connect_t *req, int status) {
  struct sock *s = req->data;
  struct xport *x = s->x;
  pusher_client *c = x->cl;
  if (status == UV_ECANCELED || x->dead || x->s != s) return;
  enter(c);
  if (x->dead || c->deleting || !c->conn) {
    leave(c);
    return;
  }
  if (status < 0) {
    char ip[64] = "?";
    if (x->ai_cur->ai_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)x->ai_cur->ai_addr, ip, sizeof(ip));
    else
      uv_ip4_name((const struct sockaddr_in *)x->ai_cur->ai_addr, ip, sizeof(ip));
    x->last_err = map_uv_err(status);
    snprintf(x->detail, sizeof(x->detail), "connect to %s port %u failed: %s", ip,
             (unsigned)x->port, uv_strerror(status));
    sock_close(s);
    x->s = NULL;
    x->ai_cur = x->ai_cur->ai_next;
    try_connect(x);
    leave(c);
    return;
  }
  x->connected = 1;
  uv_tcp_nodelay(&s->h, 1);
  if (uv_read_start((uv_stream_t *)&s->h, on_alloc, on_read) < 0) {
    xport_fail(x, PUSHER_ERR_IO, "cannot read from the socket");
  } else if (x->use_tls) {
    int r = pusher__tls_new(&x->tls, c->tls_ctx, x->host);
    if (r < 0) xport_fail(x, r, "cannot create a TLS session");
    else tls_progress(x); /* sends the ClientHello */
  } else {
    report_opened(x);
  }
  leave(c);
}

/* Connect to the next address of x (inside enter/leave). */
static void try_connect(struct xport *x) {
  pusher_client *c = x->cl;
  while (x->ai_cur) {
    struct sock *s = pusher__calloc(c->mem, 1, sizeof(*s));
    if (!s) {
      xport_fail(x, PUSHER_ERR_NOMEM, "out of memory");
      return;
    }
    s->x = x;
    s->h.data = s;
    s->creq.data = s;
    s->sreq.data = s;
    if (uv_tcp_init(c->loop, &s->h) < 0) {
      pusher__free(c->mem, s);
      xport_fail(x, PUSHER_ERR_IO, "cannot create a socket");
      return;
    }
    x->refs++;
    x->s = s;
    int r = uv_tcp_connect(&s->creq, &s->h, x->ai_cur->ai_addr, on_connect);
    if (r == 0) return;
    x->last_err = map_uv_err(r);
    snprintf(x->detail, sizeof(x->detail), "connect to %s port %u failed: %s", x->host,
             (unsigned)x->port, uv_strerror(r));
    sock_close(s);
    x->s = NULL;
    x->ai_cur = x->ai_cur->ai_next;
  }
  xport_fail(x, x->last_err ? x->last_err : PUSHER_ERR_IO,
             x->detail[0] ? x->detail : "no address to connect to");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct xport *x = req->data;
  pusher_client *c = x->cl;
  x->gai_pending = 0;
  if (x->dead || status == UV_ECANCELED) {
    if (res) uv_freeaddrinfo(res);
    x->refs--;
    x->dead = 1;
    xport_release(x);
    return;
  }
  enter(c);
  if (x->dead || c->deleting || !c->conn) {
    if (res) uv_freeaddrinfo(res);
    x->dead = 1;
  } else if (status < 0 || !res) {
    char d[300];
    snprintf(d, sizeof(d), "cannot resolve '%s': %s", x->host,
             status < 0 ? uv_strerror(status) : "no address");
    if (res) uv_freeaddrinfo(res);
    xport_fail(x, PUSHER_ERR_DNS, d);
  } else {
    x->ai_list = x->ai_cur = res;
    try_connect(x);
  }
  leave(c);
  x->refs--;
  xport_release(x);
}

/* Open a new transport for the engine's request (inside enter/leave). */
void xport_open(pusher_client *c, const pusher__io_req *r) {
  if (c->cur) xport_kill(c->cur);
  struct xport *x = pusher__calloc(c->mem, 1, sizeof(*x));
  char *host = pusher__strdup(c->mem, r->host ? r->host : "");
  if (!x || !host) {
    pusher__free(c->mem, x);
    pusher__free(c->mem, host);
    c->dirty = 1;
    pusher__conn_io_failed(c->conn, r->gen, PUSHER_ERR_NOMEM, "out of memory", now_ms());
    return;
  }
  x->cl = c;
  x->gen = r->gen;
  x->host = host;
  x->port = r->port;
  x->use_tls = r->tls;
  x->next = c->xports;
  c->xports = x;
  c->handles++;
  c->cur = x;
  x->refs++; /* held during setup */
  if (x->use_tls && !c->tls_ctx) {
    /* TLS requested later (close code 4000) without a context from creation. */
    int e = pusher__tls_ctx_new(&c->tls_ctx, c->mem, c->ca_file, c->ca_path, c->tls_insecure,
                                c->tls_why, sizeof(c->tls_why));
    if (e < 0) {
      c->tls_ctx = NULL;
      xport_fail(x, PUSHER_ERR_TLS, c->tls_why);
    }
  }
  if (!x->dead) {
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)x->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    x->gai.data = x;
    int e = uv_getaddrinfo(c->loop, &x->gai, on_resolved, x->host, port, &hints);
    if (e < 0) {
      char d[300];
      snprintf(d, sizeof(d), "cannot resolve '%s': %s", x->host, uv_strerror(e));
      xport_fail(x, PUSHER_ERR_DNS, d);
    } else {
      x->gai_pending = 1;
      x->refs++;
    }
  }
  x->refs--;
  xport_release(x);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct sock *s = req->data;
  sock_close(s);
}

static void on_linger(uv_timer_t *t) {
  struct xport *x = t->data;
  sock_close(x->s); /* the linger timer is closed with the socket */
}

/* The engine asked to close transport x: flush, then close (best effort). */
void xport_close_graceful(struct xport *x) {
  pusher_client *c = x->cl;
  flush_engine(c);
  if (x->dead) return;
  x->dead = 1;
  if (c->cur == x) c->cur = NULL;
  if (x->gai_pending) uv_cancel((uv_req_t *)&x->gai);
  if (!x->s) return;
  if (!x->connected) {
    sock_close(x->s);
    return;
  }
  if (x->tls) {
    pusher__tls_shutdown(x->tls);
    (void)tls_flush(x);
  }
  if (uv_shutdown(&x->s->sreq, (uv_stream_t *)&x->s->h, on_shutdown) < 0) {
    sock_close(x->s);
    return;
  }
  uv_timer_t *t = pusher__malloc(c->mem, sizeof *t);
  if (t && uv_timer_init(c->loop, t) == 0) {
    t->data = x;
    x->linger = t;
    x->refs++;
    uv_timer_start(t, on_linger, LINGER_MS, 0);
  } else { /* no bound for the wait: close now (what is unsent is lost) */
    pusher__free(c->mem, t);
    sock_close(x->s);
  }
}
