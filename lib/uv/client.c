/* The libuv runtime: struct pusher_client and the public API of
 * include/pusher/pusher.h on top of the sans-I/O engine (lib/core/conn.h).
 *
 * ---------------------------------------------------------------------------
 * Threading model
 *
 * A client owns a pusher__conn (the engine), a uv_timer_t (the engine's
 * expiry), in threaded mode a uv_async_t (cross-thread wake-up), optionally a
 * netlink watcher, and one "transport" per connection attempt (DNS request,
 * uv_tcp_t, TLS session).  libuv handles are only ever touched on the loop
 * thread.
 *
 * Loop mode (opts.loop != NULL): everything happens on the caller's loop
 * thread; there is no lock and no async handle (so the client does not keep
 * an idle loop alive by itself).
 *
 * Threaded mode (opts.loop == NULL): pusher_client_new() creates a loop and a
 * thread running it.  One recursive mutex (`mu`) protects the engine and every
 * field of the client that is shared between threads:
 *  - the loop thread takes `mu` around every piece of work it does (uv
 *    callbacks: DNS, connect, read, write, timer, async, netlink) and holds it
 *    while the engine invokes the application's callbacks, so callbacks run
 *    one at a time, on the loop thread only;
 *  - public functions that cannot invoke a callback (bind/unbind, state,
 *    socket_id, channel_subscribed) just take `mu`, call the engine, release
 *    it, and wake the loop (uv_async_send) so that it pumps when needed;
 *  - commands that can invoke callbacks (connect, disconnect, set_network,
 *    subscribe, unsubscribe) called on another thread are queued as a `call`
 *    under `mu`, the loop is woken, and the caller waits on a condition
 *    variable (releasing `mu`) until the loop thread has executed the command
 *    and stored its return value.  So these functions keep their synchronous
 *    return values while every callback still runs on the loop thread.
 * A callback may call any public function: it runs on the loop thread, the
 * mutex is recursive, and a nesting counter (`depth`) makes such nested calls
 * only record their effect; the outermost runtime frame pumps once the
 * dispatch has unwound (no re-entrant transport changes under the engine).
 * No lock is ever held while waiting for another thread except the condition
 * wait, which releases it; the only way to deadlock is a callback that
 * blocks waiting for a thread which is itself calling into the same client.
 * With auto_connect, the first connect is issued inside pusher_client_new()
 * before the loop thread starts; no binding can exist yet, so no callback
 * runs on the caller's thread there either.  As with any handle, calling a
 * function concurrently with (or after) pusher_client_del() is undefined.
 *
 * pusher_client_del():
 *  - from a foreign thread: marks the client deleting and frees the engine
 *    under `mu` (no callback can run after that), wakes the loop thread, which
 *    closes every handle so that uv_run() returns, then joins the thread and
 *    frees everything;
 *  - from inside a callback (loop thread, either mode): asks the engine to
 *    die (it suppresses every further callback and defers its free until its
 *    dispatch unwinds); the outermost runtime frame then frees the engine and
 *    closes every handle.  In threaded mode the loop thread detaches itself
 *    and frees the client after uv_run() returns; in loop mode the client is
 *    freed in the last close callback, as libuv requires;
 *  - in loop mode outside a callback: frees the engine at once, closes the
 *    handles; the memory goes in the last close callback (keep running the
 *    loop).
 *
 * Transports carry the engine's generation number; every asynchronous libuv
 * callback first checks that its transport is still the live one (`dead`
 * flag set when the engine abandoned or closed it) and the engine itself also
 * ignores stale generations.
 *
 * Time: monotonic milliseconds from uv_hrtime(), read on whichever thread
 * calls the engine (uv_now() is not safe off the loop thread).
 * ---------------------------------------------------------------------------
 */
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/conn.h"
#include "core/mem.h"
#include "core/options.h"
#include "uv/netwatch.h"
#include "uv/tls.h"

#define READ_BUF 65536
#define PLAIN_BUF 16384
#define MAX_PUMP_ROUNDS 32
#define LINGER_MS 2000 /* a graceful close gives up flushing after this */

struct xport;

/* One socket of a transport (one per address tried). */
struct sock {
  uv_tcp_t h;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  struct xport *x;
};

/* One connection attempt of the engine (one generation). */
struct xport {
  pusher_client *cl;
  struct xport *next; /* client's list of live transports */
  uint64_t gen;
  char *host;
  uint16_t port;
  int use_tls;
  int refs;    /* pending DNS request + open socket handle */
  int dead;    /* no longer reported to the engine */
  int opened;  /* pusher__conn_io_opened done */
  int connected;
  int capped;  /* stopped taking engine bytes because of in-flight writes */
  int gai_pending;
  uv_getaddrinfo_t gai;
  struct addrinfo *ai_list, *ai_cur;
  struct sock *s;
  uv_timer_t linger; /* bounds a graceful close whose bytes cannot drain */
  int linger_on;
  pusher__tls *tls;
  size_t inflight;
  int last_err;
  char detail[256];
  uint8_t rbuf[READ_BUF];
};

struct wreq {
  uv_write_t req;
  struct xport *x;
  size_t len;
  uint8_t data[];
};

/* A public call made on a foreign thread (threaded mode) for a command that
 * may invoke callbacks: executed by the loop thread, the caller waits. */
enum call_op { OP_CONNECT, OP_DISCONNECT, OP_SET_NETWORK, OP_SUBSCRIBE, OP_UNSUBSCRIBE };
struct call {
  enum call_op op;
  const char *str;
  int num;
  int result;
  int done;
  struct call *next;
};

struct pusher_client {
  pusher_mem memv;
  const pusher_mem *mem;
  pusher__conn *conn;
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int threaded;
  uv_thread_t loop_tid;
  uv_mutex_t mu;
  uv_cond_t cond;     /* signals completed calls */
  struct call *calls; /* FIFO of pending foreign calls */
  struct call **calls_tail;
  uv_timer_t timer;
  uv_async_t async;
  int handles; /* open handles + live transports; free when 0 after teardown */
  struct xport *cur;
  struct xport *xports;
  pusher__tls_ctx *tls_ctx;
  int tls_ctx_err;
  char tls_why[256];
  char *ca_file, *ca_path;
  int tls_insecure;
  pusher__netwatch *nw;
  size_t max_inflight;
  int depth;
  int dirty;
  int deleting;
  int torn_down;
  int joiner; /* a foreign thread is joining the loop thread */
  uint8_t pbuf[PLAIN_BUF];
};

/* ------------------------------------------------------------------ helpers */

static pusher__tstamp now_ms(void) { return uv_hrtime() / 1000000u; }

static void ossl_rand(uint8_t *buf, size_t n, void *user) {
  (void)user;
  while (n > 0) {
    int k = n > 1 << 20 ? 1 << 20 : (int)n;
    if (RAND_bytes(buf, k) != 1) {
      if (uv_random(NULL, NULL, buf, (size_t)k, 0, NULL) != 0) memset(buf, 0x5a, (size_t)k);
    }
    buf += k;
    n -= (size_t)k;
  }
}

static int map_uv_err(int e) {
  switch (e) {
  case UV_ECONNREFUSED: return PUSHER_ERR_CONNREFUSED;
  case UV_ETIMEDOUT: return PUSHER_ERR_TIMEOUT;
  case UV_EAI_NONAME:
  case UV_EAI_AGAIN:
  case UV_EAI_FAIL:
  case UV_EAI_NODATA:
  case UV_EAI_FAMILY:
  case UV_EAI_SERVICE:
  case UV_EAI_ADDRFAMILY: return PUSHER_ERR_DNS;
  default: return PUSHER_ERR_IO;
  }
}

static int on_loop_thread(pusher_client *c) {
  if (!c->threaded) return 1;
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &c->loop_tid);
}

static void pump(pusher_client *c);
static void teardown(pusher_client *c);
static void on_timer(uv_timer_t *t);

/* Every engine call is bracketed by enter()/leave(). */
static void enter(pusher_client *c) {
  if (c->threaded) uv_mutex_lock(&c->mu);
  c->depth++;
}

static void leave(pusher_client *c) {
  int wake = 0;
  if (c->depth == 1) {
    if (on_loop_thread(c)) {
      if (c->deleting) {
        if (!c->torn_down) teardown(c);
      } else {
        pump(c);
        if (c->deleting && !c->torn_down) teardown(c); /* del from a callback in pump */
      }
    } else {
      wake = c->threaded;
    }
  }
  c->depth--;
  if (c->threaded) uv_mutex_unlock(&c->mu);
  if (wake) uv_async_send(&c->async);
}

/* ------------------------------------------------------------------ lifetime */

static void free_all(pusher_client *c) {
  const pusher_mem *mem = c->mem;
  pusher_mem keep = c->memv;
  (void)mem;
  if (c->threaded) {
    uv_loop_close(&c->own_loop);
    uv_cond_destroy(&c->cond);
    uv_mutex_destroy(&c->mu);
  }
  pusher__tls_ctx_free(c->tls_ctx);
  pusher__free(&keep, c->ca_file);
  pusher__free(&keep, c->ca_path);
  pusher__free(&keep, c);
}

/* A handle (or transport) of the client went away. */
static void client_unref(pusher_client *c) {
  if (--c->handles > 0) return;
  /* All handles are closed: only after teardown. */
  if (!c->threaded) free_all(c);
  /* threaded: uv_run() returns now; loop_main finishes. */
}

static void on_handle_closed(uv_handle_t *h) { client_unref(h->data); }
static void on_nw_closed(void *user) { client_unref(user); }

/* ------------------------------------------------------------------ transport */

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
  x->refs--;
  xport_release(x);
}

static void on_sock_closed(uv_handle_t *h) {
  struct sock *s = h->data;
  struct xport *x = s->x;
  if (x->s == s) x->s = NULL;
  pusher__free(x->cl->mem, s);
  if (x->linger_on && !uv_is_closing((uv_handle_t *)&x->linger))
    uv_close((uv_handle_t *)&x->linger, on_linger_closed);
  x->refs--;
  xport_release(x);
}

static void sock_close(struct sock *s) {
  if (s && !uv_is_closing((uv_handle_t *)&s->h)) uv_close((uv_handle_t *)&s->h, on_sock_closed);
}

/* Stop everything of x at once; no report to the engine any more. */
static void xport_kill(struct xport *x) {
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
static void flush_engine(pusher_client *c) {
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

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct sock *s = h->data;
  *buf = uv_buf_init((char *)s->x->rbuf, sizeof(s->x->rbuf));
}

/* Decrypt what TLS has, handle handshake completion; pass plaintext on. */
static void tls_progress(struct xport *x) {
  pusher_client *c = x->cl;
  for (;;) {
    int n = pusher__tls_read(x->tls, c->pbuf, sizeof(c->pbuf));
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
    pusher__conn_io_recv(c->conn, x->gen, c->pbuf, (size_t)n, now_ms());
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
static void xport_open(pusher_client *c, const pusher__io_req *r) {
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
static void xport_close_graceful(struct xport *x) {
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
  if (uv_timer_init(c->loop, &x->linger) == 0) {
    x->linger.data = x;
    x->linger_on = 1;
    x->refs++;
    uv_timer_start(&x->linger, on_linger, LINGER_MS, 0);
  }
}

/* ------------------------------------------------------------------ pump */

static void arm_timer(pusher_client *c) {
  pusher__tstamp exp = c->conn ? pusher__conn_expiry(c->conn) : PUSHER__NEVER;
  if (exp == PUSHER__NEVER) {
    uv_timer_stop(&c->timer);
    return;
  }
  pusher__tstamp now = now_ms();
  uint64_t delay = exp > now ? exp - now : 0;
  uv_update_time(c->loop);
  uv_timer_start(&c->timer, on_timer, delay, 0);
}

static void pump(pusher_client *c) {
  for (int round = 0; round < MAX_PUMP_ROUNDS; round++) {
    if (!c->conn || c->deleting) return;
    c->dirty = 0;
    pusher__io_req r = pusher__conn_io_want(c->conn);
    if (r.action == PUSHER__IO_OPEN) {
      xport_open(c, &r);
    } else if (r.action == PUSHER__IO_CLOSE) {
      for (struct xport *x = c->xports; x; x = x->next)
        if (x->gen == r.gen && !x->dead) {
          xport_close_graceful(x);
          break;
        }
    }
    if (c->deleting) return;
    flush_engine(c);
    if (c->deleting) return;
    if (r.action == PUSHER__IO_NONE && !c->dirty) break;
  }
  if (!c->deleting) arm_timer(c);
}

static void on_timer(uv_timer_t *t) {
  pusher_client *c = t->data;
  enter(c);
  if (c->conn && !c->deleting) pusher__conn_handle_expiry(c->conn, now_ms());
  leave(c);
}

static int run_op(pusher_client *c, enum call_op op, const char *str, int num) {
  if (!c->conn || c->deleting) return PUSHER_ERR_INVALID_STATE;
  pusher__tstamp now = now_ms();
  switch (op) {
  case OP_CONNECT:
    if (c->tls_ctx_err) {
      pusher__conn_fail(c->conn, PUSHER_ERR_CONFIG, c->tls_why, now);
      return 0;
    }
    return pusher__conn_connect(c->conn, now);
  case OP_DISCONNECT: return pusher__conn_disconnect(c->conn, now);
  case OP_SET_NETWORK: return pusher__conn_set_network(c->conn, num, now);
  case OP_SUBSCRIBE: return pusher__conn_subscribe(c->conn, str, now);
  case OP_UNSUBSCRIBE: return pusher__conn_unsubscribe(c->conn, str, now);
  }
  return PUSHER_ERR_INTERNAL;
}

/* Loop thread, under mu: execute (or, when deleting, cancel) pending calls. */
static void run_calls(pusher_client *c) {
  while (c->calls) {
    struct call *k = c->calls;
    c->calls = k->next;
    if (!c->calls) c->calls_tail = &c->calls;
    k->result = run_op(c, k->op, k->str, k->num);
    k->done = 1;
    uv_cond_broadcast(&c->cond);
  }
}

static void on_async(uv_async_t *a) {
  pusher_client *c = a->data;
  enter(c);
  run_calls(c);
  leave(c); /* pumps, or tears down when deleting */
}

/* A command that may invoke callbacks: run it here on the loop thread (or
 * in loop mode); from a foreign thread hand it to the loop thread and wait,
 * so that callbacks never run on the caller's thread. */
static int do_op(pusher_client *c, enum call_op op, const char *str, int num) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->threaded) {
    uv_mutex_lock(&c->mu);
    if (!on_loop_thread(c)) {
      int r = PUSHER_ERR_INVALID_STATE;
      if (!c->deleting) {
        struct call k = {op, str, num, 0, 0, NULL};
        *c->calls_tail = &k;
        c->calls_tail = &k.next;
        uv_async_send(&c->async);
        while (!k.done) uv_cond_wait(&c->cond, &c->mu);
        r = k.result;
      }
      uv_mutex_unlock(&c->mu);
      return r;
    }
    uv_mutex_unlock(&c->mu);
  }
  enter(c);
  int r = run_op(c, op, str, num);
  leave(c);
  return r;
}

static void on_network(int online, void *user) {
  pusher_client *c = user;
  enter(c);
  if (c->conn && !c->deleting) pusher__conn_set_network(c->conn, online, now_ms());
  leave(c);
}

/* Close every handle (loop thread, depth 1, deleting set). */
static void teardown(pusher_client *c) {
  c->torn_down = 1;
  if (c->threaded) run_calls(c); /* deleting: each completes with INVALID_STATE */
  if (c->conn) { /* dead engine whose free was deferred, or not yet freed */
    pusher__conn_del(c->conn);
    c->conn = NULL;
  }
  for (struct xport *x = c->xports; x; x = x->next) xport_kill(x);
  c->cur = NULL;
  if (c->nw) {
    pusher__netwatch_stop(c->nw, on_nw_closed);
    c->nw = NULL;
  }
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  if (c->threaded) uv_close((uv_handle_t *)&c->async, on_handle_closed);
}

/* ------------------------------------------------------------------ thread */

static void loop_main(void *arg) {
  pusher_client *c = arg;
  enter(c); /* waits until pusher_client_new stored loop_tid */
  leave(c); /* first pump (auto_connect) */
  uv_run(c->loop, UV_RUN_DEFAULT);
  uv_mutex_lock(&c->mu);
  int joined = c->joiner;
  uv_mutex_unlock(&c->mu);
  if (!joined) free_all(c); /* deleted from a callback: nobody joins us */
}

/* ------------------------------------------------------------------ API */

int pusher_client_new(pusher_client **out, const char *app_key, const pusher_client_options *opts) {
  if (!out || !app_key || !*app_key) return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_client_options o;
  if (opts) o = *opts;
  else pusher_client_options_default(&o);
  if (pusher__options_validate(&o, NULL, 0) < 0) return PUSHER_ERR_INVALID_ARGUMENT;
  if (!o.rand) {
    o.rand = ossl_rand;
    o.rand_user = NULL;
  }
  pusher_mem memv;
  pusher__mem_copy(&memv, o.mem);
  pusher_client *c = pusher__calloc(&memv, 1, sizeof(*c));
  if (!c) return PUSHER_ERR_NOMEM;
  c->memv = memv;
  c->mem = &c->memv;
  o.mem = c->mem;
  c->threaded = o.loop == NULL;
  c->tls_insecure = o.tls_insecure;
  c->max_inflight = o.max_send_queue ? o.max_send_queue : 1024 * 1024;
  c->ca_file = pusher__strdup(c->mem, o.ca_file);
  c->ca_path = pusher__strdup(c->mem, o.ca_path);
  int rc = PUSHER_ERR_NOMEM;
  if ((o.ca_file && !c->ca_file) || (o.ca_path && !c->ca_path)) goto fail_mem;
  rc = pusher__conn_new(&c->conn, app_key, &o, c, NULL, NULL);
  if (rc < 0) goto fail_mem;
  if (o.encrypted) {
    int e = pusher__tls_ctx_new(&c->tls_ctx, c->mem, c->ca_file, c->ca_path, c->tls_insecure,
                                c->tls_why, sizeof(c->tls_why));
    if (e == PUSHER_ERR_NOMEM) {
      rc = e;
      goto fail_conn;
    }
    if (e < 0) {
      c->tls_ctx = NULL;
      c->tls_ctx_err = e;
    }
  }
  if (c->threaded) {
    if (uv_loop_init(&c->own_loop) != 0) {
      rc = PUSHER_ERR_INTERNAL;
      goto fail_conn;
    }
    c->loop = &c->own_loop;
    if (uv_mutex_init_recursive(&c->mu) != 0) {
      uv_loop_close(&c->own_loop);
      rc = PUSHER_ERR_INTERNAL;
      goto fail_conn;
    }
    if (uv_cond_init(&c->cond) != 0) {
      uv_mutex_destroy(&c->mu);
      uv_loop_close(&c->own_loop);
      rc = PUSHER_ERR_INTERNAL;
      goto fail_conn;
    }
    c->calls_tail = &c->calls;
  } else {
    c->loop = o.loop;
  }
  uv_timer_init(c->loop, &c->timer);
  c->timer.data = c;
  c->handles++;
  if (c->threaded) {
    uv_async_init(c->loop, &c->async, on_async);
    c->async.data = c;
    c->handles++;
  }
  if (o.watch_network) {
    if (pusher__netwatch_start(&c->nw, c->loop, c->mem, on_network, c) == 0) c->handles++;
    else c->nw = NULL; /* not available: the application can still call set_network */
  }
  if (o.auto_connect) {
    if (c->tls_ctx_err) pusher__conn_fail(c->conn, PUSHER_ERR_CONFIG, c->tls_why, now_ms());
    else pusher__conn_connect(c->conn, now_ms());
  }
  if (c->threaded) {
    uv_mutex_lock(&c->mu);
    if (uv_thread_create(&c->loop_tid, loop_main, c) != 0) {
      uv_mutex_unlock(&c->mu);
      /* Unwind on this thread: close the handles and let them finish. */
      c->loop_tid = uv_thread_self();
      c->deleting = 1;
      c->joiner = 1;
      enter(c);
      leave(c); /* teardown */
      uv_run(c->loop, UV_RUN_DEFAULT);
      free_all(c);
      return PUSHER_ERR_INTERNAL;
    }
    uv_mutex_unlock(&c->mu);
  } else {
    enter(c);
    leave(c); /* pump (auto_connect) */
  }
  *out = c;
  return 0;

fail_conn:
  pusher__conn_del(c->conn);
fail_mem:
  pusher__tls_ctx_free(c->tls_ctx);
  pusher__free(c->mem, c->ca_file);
  pusher__free(c->mem, c->ca_path);
  pusher__free(&memv, c);
  return rc;
}

void pusher_client_del(pusher_client *c) {
  if (!c) return;
  enter(c);
  if (c->deleting) { /* already being deleted (second call from a callback) */
    leave(c);
    return;
  }
  c->deleting = 1;
  if (c->threaded && !on_loop_thread(c)) {
    c->joiner = 1;
    pusher__conn_del(c->conn); /* depth 0 in the engine: freed now */
    c->conn = NULL;
    c->depth--;
    uv_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
    uv_thread_join(&c->loop_tid);
    free_all(c);
    return;
  }
  /* Loop thread.  depth > 1: inside a callback, the engine defers its free
   * (teardown frees it once unwound); depth == 1: freed now. */
  pusher__conn_del(c->conn);
  if (c->depth == 1) c->conn = NULL;
  if (c->threaded && c->depth > 1) pthread_detach(pthread_self());
  leave(c);
}

int pusher_client_connect(pusher_client *c) { return do_op(c, OP_CONNECT, NULL, 0); }

int pusher_client_disconnect(pusher_client *c) { return do_op(c, OP_DISCONNECT, NULL, 0); }

pusher_state pusher_client_state(pusher_client *c) {
  if (!c) return PUSHER_STATE_DISCONNECTED;
  if (c->threaded) uv_mutex_lock(&c->mu);
  pusher_state s = c->conn && !c->deleting ? pusher__conn_state(c->conn) : PUSHER_STATE_DISCONNECTED;
  if (c->threaded) uv_mutex_unlock(&c->mu);
  return s;
}

int pusher_client_socket_id(pusher_client *c, char *buf, size_t len) {
  if (!c || !buf || len == 0) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->threaded) uv_mutex_lock(&c->mu);
  int r;
  const char *sid = c->conn && !c->deleting ? pusher__conn_socket_id(c->conn) : NULL;
  if (!sid) {
    r = PUSHER_ERR_INVALID_STATE;
  } else if (strlen(sid) >= len) {
    r = PUSHER_ERR_TOO_LARGE;
  } else {
    memcpy(buf, sid, strlen(sid) + 1);
    r = 0;
  }
  if (c->threaded) uv_mutex_unlock(&c->mu);
  return r;
}

int pusher_client_set_network(pusher_client *c, int online) {
  return do_op(c, OP_SET_NETWORK, NULL, online);
}

int pusher_connection_bind(pusher_client *c, const char *event, pusher_connection_cb cb,
                           void *user_data, pusher_bind_id *id) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_connection_bind(c->conn, event, cb, user_data, id)
                                  : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}

int pusher_connection_unbind(pusher_client *c, pusher_bind_id id) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_connection_unbind(c->conn, id)
                                  : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}

int pusher_subscribe(pusher_client *c, const char *channel) {
  return do_op(c, OP_SUBSCRIBE, channel, 0);
}

int pusher_unsubscribe(pusher_client *c, const char *channel) {
  return do_op(c, OP_UNSUBSCRIBE, channel, 0);
}

int pusher_channel_subscribed(pusher_client *c, const char *channel) {
  if (!c) return 0;
  if (c->threaded) uv_mutex_lock(&c->mu);
  int r = c->conn && !c->deleting ? pusher__conn_channel_subscribed(c->conn, channel) : 0;
  if (c->threaded) uv_mutex_unlock(&c->mu);
  return r;
}

int pusher_bind(pusher_client *c, const char *channel, const char *event, pusher_event_cb cb,
                void *user_data, pusher_bind_id *id) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_bind(c->conn, channel, event, cb, user_data, id)
                                  : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}

int pusher_unbind(pusher_client *c, pusher_bind_id id) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_unbind(c->conn, id) : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}
