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
 *    subscribe, unsubscribe, signin) called on another thread are queued as a `call`
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
 * In threaded mode the client's memory (and `mu`, `cond`) is freed only when
 * no other thread is inside a public call on it (`busy`, see hold()/drop()):
 * a call that began before a callback deleted the client may still be
 * blocked on `mu` or waking from `cond`.  The rules and their reasons:
 * docs/lifetime.md.
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
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <pusher/channels.h>

#include "core/authreq.h"
#include "core/conn.h"
#include "core/crypto.h"
#include "core/mem.h"
#include "core/options.h"
#include "uv/http.h"
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
enum call_op { OP_CONNECT, OP_DISCONNECT, OP_SET_NETWORK, OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_SIGNIN };

/* ---------------------------------------------------------------------------
 * Authorization (issue 3)
 *
 * The engine asks for a channel authorization / user authentication through
 * its hooks; the hooks only record a `job` (no I/O and no application
 * callback inside the engine).  pump() starts the jobs on the loop thread:
 * either an HTTP request to the auth endpoint (uv/http.h) or a call of the
 * application's custom authorizer/authenticator with a pusher_auth_request.
 * HTTP completions answer the engine from their libuv callback.  Custom
 * answers may come from any thread: pusher_auth_request_complete/_fail
 * put the request on its `link`'s answer list under the global `g_link_mu`
 * and wake the loop (threaded mode; in loop mode they run the client's
 * pump directly); pump() hands the answers to the engine.  A link outlives
 * its client while requests the application has not answered yet refer to
 * it (refcount under g_link_mu), so a late answer after pusher_client_del()
 * is accepted and ignored.  Lock order: g_link_mu is never held while
 * taking the client's mutex. */
struct link;
struct pusher_auth_request {
  struct link *link;
  pusher_mem mem;
  uint64_t req_id;
  int user;                /* user authentication (else channel) */
  char socket_id[64];
  char *channel;
  /* the answer */
  int err, status;
  char *message, *auth, *channel_data, *shared_secret, *user_data;
  struct pusher_auth_request *next;
};

struct link {
  pusher_client *cl;       /* NULL once the client is deleted */
  int refs;
  struct pusher_auth_request *answers, **answers_tail;
};

static pthread_mutex_t g_link_mu = PTHREAD_MUTEX_INITIALIZER;

struct job {
  uint64_t req_id;
  int user;
  char socket_id[64];
  char *channel;
  struct job *next;
};

/* One HTTP auth request in flight. */
struct hreq {
  pusher_client *cl;
  uint64_t req_id;
  int user;
  pusher__http_req *h;
  struct hreq *next;
};

struct pusher_auth_extra {
  const pusher_mem *mem;
  pusher_kv *params, *headers;
  size_t nparams, nheaders;
  int err;
};

#define AUTH_TIMEOUT_DEFAULT_MS 10000
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
  atomic_int busy; /* public calls in progress on any thread (see "Lifetime") */
  /* authorization (see "Authorization" above) */
  char *app_key;
  char *auth_origin, *auth_endpoint, *user_auth_endpoint;
  int jsonp;
  pusher_kv *params, *headers;
  size_t nparams, nheaders;
  pusher_auth_provider_cb provider;
  void *provider_ud;
  pusher_channel_authorizer_cb authorizer;
  void *authorizer_ud;
  pusher_user_authenticator_cb authenticator;
  void *authenticator_ud;
  uint64_t auth_timeout_ms;
  int app_cb; /* inside an authorizer/authenticator/provider call (not an engine dispatch) */
  pusher__http *http;
  struct job *jobs, **jobs_tail;
  struct hreq *hreqs;
  struct link *link;
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
static void kv_free(const pusher_mem *m, pusher_kv *v, size_t n);
static void on_timer(uv_timer_t *t);

/* Lifetime: a public call counts itself in `busy` before it first touches
 * the client and uncounts itself as its very last access; the memory (and
 * the mutex, which other threads may be blocked on or about to re-take) is
 * freed only once `busy` is back to 0.  See docs/lifetime.md. */
static void hold(pusher_client *c) {
  if (c->threaded) atomic_fetch_add(&c->busy, 1);
}

static void drop(pusher_client *c) {
  if (c->threaded) atomic_fetch_sub(&c->busy, 1); /* last access to c */
}

/* Before freeing a deleted client: wait until no other thread is inside a
 * public call on it.  Such calls only need the mutex for a moment (a call
 * waiting for the loop thread was completed by teardown()), so this is
 * short; no lock is held while waiting. */
static void wait_idle(pusher_client *c) {
  for (unsigned n = 0; atomic_load(&c->busy) != 0; n++) {
    if (n < 100) sched_yield();
    else uv_sleep(1);
  }
}

/* Every engine call is bracketed by enter()/leave(). */
static void enter(pusher_client *c) {
  hold(c);
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
  /* Wake the loop under the mutex: teardown() (which closes the async
   * handle) cannot run concurrently. */
  if (wake && !c->torn_down) uv_async_send(&c->async);
  if (c->threaded) uv_mutex_unlock(&c->mu);
  drop(c);
}

/* ------------------------------------------------------------------ lifetime */

static void free_auth_config(pusher_client *c, const pusher_mem *m) {
  pusher__free(m, c->app_key);
  pusher__free(m, c->auth_origin);
  pusher__free(m, c->auth_endpoint);
  pusher__free(m, c->user_auth_endpoint);
  kv_free(m, c->params, c->nparams);
  kv_free(m, c->headers, c->nheaders);
  c->params = c->headers = NULL;
  c->nparams = c->nheaders = 0;
  if (c->link) { /* never attached to a running client (creation failed) */
    pusher__free(m, c->link);
    c->link = NULL;
  }
}

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
  free_auth_config(c, &keep);
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

/* ------------------------------------------------------------------ authorization */

static void kv_free(const pusher_mem *m, pusher_kv *v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) {
    pusher__free(m, (char *)v[i].name);
    pusher__free(m, (char *)v[i].value);
  }
  pusher__free(m, v);
}

static int kv_append(const pusher_mem *m, pusher_kv **v, size_t *n, const char *name, const char *value) {
  pusher_kv *nv = pusher__realloc(m, *v, (*n + 1) * sizeof *nv);
  if (!nv) return PUSHER_ERR_NOMEM;
  *v = nv;
  char *a = pusher__strdup(m, name), *b = pusher__strdup(m, value);
  if (!a || !b) {
    pusher__free(m, a);
    pusher__free(m, b);
    return PUSHER_ERR_NOMEM;
  }
  nv[*n].name = a;
  nv[*n].value = b;
  (*n)++;
  return 0;
}

static int kv_copy(const pusher_mem *m, const pusher_kv *src, size_t n, pusher_kv **out, size_t *nout) {
  pusher_kv *v = NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!src[i].name || !src[i].value) {
      kv_free(m, v, k);
      return PUSHER_ERR_INVALID_ARGUMENT;
    }
    if (kv_append(m, &v, &k, src[i].name, src[i].value) != 0) {
      kv_free(m, v, k);
      return PUSHER_ERR_NOMEM;
    }
  }
  *out = v;
  *nout = k;
  return 0;
}

static int header_ok(const pusher_mem *m, const char *name, const char *value) {
  pusher_kv h = {name, value};
  char *line = NULL;
  int e = pusher__authreq_header_line(m, &h, &line);
  pusher__free(m, line);
  return e;
}

static void req_free(pusher_auth_request *r) {
  pusher_mem m = r->mem;
  pusher__free(&m, r->channel);
  pusher__free(&m, r->message);
  pusher__free(&m, r->auth);
  pusher__free(&m, r->channel_data);
  pusher__free(&m, r->shared_secret);
  pusher__free(&m, r->user_data);
  pusher__free(&m, r);
}

/* Under g_link_mu. */
static void link_unref(struct link *l, const pusher_mem *m) {
  if (--l->refs == 0) pusher__free(m, l);
}

/* Engine hooks: only record the job; pump() starts it. */
static void add_job(pusher_client *c, uint64_t req_id, int user, const char *sid, const char *channel) {
  struct job *j = pusher__calloc(c->mem, 1, sizeof *j);
  if (!j) return; /* the engine's auth deadline fails the request */
  j->req_id = req_id;
  j->user = user;
  snprintf(j->socket_id, sizeof j->socket_id, "%s", sid ? sid : "");
  if (channel && !(j->channel = pusher__strdup(c->mem, channel))) {
    pusher__free(c->mem, j);
    return;
  }
  *c->jobs_tail = j;
  c->jobs_tail = &j->next;
  c->dirty = 1;
}

static void hook_channel_auth(pusher__conn *conn, const char *channel, const char *sid, uint64_t req_id,
                              void *u) {
  add_job(u, req_id, 0, sid, channel);
}

static void hook_user_auth(pusher__conn *conn, const char *sid, uint64_t req_id, void *u) {
  add_job(u, req_id, 1, sid, NULL);
}

static void answer_engine(pusher_client *c, uint64_t req_id, int user, int err, int status, const char *msg,
                          const char *auth, const char *cd, const char *ss, const char *ud) {
  if (!c->conn || c->deleting) return;
  pusher__tstamp now = now_ms();
  if (user) (void)pusher__conn_user_auth_result(c->conn, req_id, err, status, msg, auth, ud, now);
  else (void)pusher__conn_auth_result(c->conn, req_id, err, status, msg, auth, cd, ss, now);
  c->dirty = 1;
}

static void on_auth_http(const pusher__auth_outcome *o, void *ud) {
  struct hreq *hr = ud;
  pusher_client *c = hr->cl;
  for (struct hreq **pp = &c->hreqs; *pp; pp = &(*pp)->next)
    if (*pp == hr) {
      *pp = hr->next;
      break;
    }
  if (o->err != PUSHER_ERR_CANCELED) {
    enter(c);
    if (o->err == 0 && o->reply)
      answer_engine(c, hr->req_id, hr->user, 0, o->http_status, NULL, o->reply->auth, o->reply->channel_data,
                    o->reply->shared_secret, o->reply->user_data);
    else
      answer_engine(c, hr->req_id, hr->user, o->err < 0 ? o->err : PUSHER_ERR_AUTH, o->http_status, o->message,
                    NULL, NULL, NULL, NULL);
    leave(c);
  }
  pusher__free(c->mem, hr);
}

static void start_http(pusher_client *c, const struct job *j) {
  char msg[200];
  int e = 0;
  if (!c->http && (e = pusher__http_new(&c->http, c->loop, c->mem)) != 0) {
    c->http = NULL;
    answer_engine(c, j->req_id, j->user, e, 0, "cannot start the HTTP client", NULL, NULL, NULL, NULL);
    return;
  }
  char *url = NULL;
  const char *ep = j->user ? c->user_auth_endpoint : c->auth_endpoint;
  if ((e = pusher__authreq_url(c->mem, c->auth_origin, ep, &url)) != 0) {
    snprintf(msg, sizeof msg, "cannot build the auth URL from '%.80s' (a relative endpoint needs auth_origin)",
             ep ? ep : "");
    answer_engine(c, j->req_id, j->user, PUSHER_ERR_CONFIG, 0, msg, NULL, NULL, NULL, NULL);
    return;
  }
  struct pusher_auth_extra x;
  memset(&x, 0, sizeof x);
  x.mem = c->mem;
  if (kv_copy(c->mem, c->params, c->nparams, &x.params, &x.nparams) != 0 ||
      kv_copy(c->mem, c->headers, c->nheaders, &x.headers, &x.nheaders) != 0)
    e = PUSHER_ERR_NOMEM;
  if (!e && c->provider) {
    c->app_cb++;
    int r = c->provider(c, j->channel, &x, c->provider_ud);
    c->app_cb--;
    if (!c->conn || c->deleting) e = PUSHER_ERR_CANCELED;
    else if (r) e = r < 0 ? r : PUSHER_ERR_AUTH;
    else if (x.err) e = x.err;
  }
  struct hreq *hr = NULL;
  if (!e && !(hr = pusher__calloc(c->mem, 1, sizeof *hr))) e = PUSHER_ERR_NOMEM;
  if (!e) {
    pusher__auth_http_opts o;
    memset(&o, 0, sizeof o);
    o.url = url;
    o.jsonp = c->jsonp;
    o.socket_id = j->socket_id;
    o.channel = j->channel;
    o.params = x.params;
    o.nparams = x.nparams;
    o.headers = x.headers;
    o.nheaders = x.nheaders;
    o.app_key = c->app_key;
    o.timeout_ms = c->auth_timeout_ms;
    o.ca_file = c->ca_file;
    o.ca_path = c->ca_path;
    o.insecure = c->tls_insecure;
    hr->cl = c;
    hr->req_id = j->req_id;
    hr->user = j->user;
    e = pusher__auth_http_start(c->http, &o, on_auth_http, hr, &hr->h);
    if (e) {
      pusher__free(c->mem, hr);
    } else {
      hr->next = c->hreqs;
      c->hreqs = hr;
    }
  }
  if (e && e != PUSHER_ERR_CANCELED) {
    snprintf(msg, sizeof msg, "cannot start the auth request: %s", pusher_strerror(e));
    answer_engine(c, j->req_id, j->user, e, 0, msg, NULL, NULL, NULL, NULL);
  }
  kv_free(c->mem, x.params, x.nparams);
  kv_free(c->mem, x.headers, x.nheaders);
  pusher__free(c->mem, url);
}

static void start_custom(pusher_client *c, const struct job *j) {
  pusher_auth_request *r = pusher__calloc(c->mem, 1, sizeof *r);
  if (!r || (j->channel && !(r->channel = pusher__strdup(c->mem, j->channel)))) {
    pusher__free(c->mem, r);
    answer_engine(c, j->req_id, j->user, PUSHER_ERR_NOMEM, 0, "out of memory", NULL, NULL, NULL, NULL);
    return;
  }
  r->mem = c->memv;
  r->req_id = j->req_id;
  r->user = j->user;
  memcpy(r->socket_id, j->socket_id, sizeof r->socket_id);
  pthread_mutex_lock(&g_link_mu);
  r->link = c->link;
  c->link->refs++;
  pthread_mutex_unlock(&g_link_mu);
  c->app_cb++;
  if (j->user) c->authenticator(c, r, r->socket_id, c->authenticator_ud);
  else c->authorizer(c, r, r->socket_id, r->channel, c->authorizer_ud);
  c->app_cb--;
}

/* pump(): start recorded jobs and hand custom answers to the engine. */
static void run_auth(pusher_client *c) {
  while (c->jobs && c->conn && !c->deleting) {
    struct job *j = c->jobs;
    c->jobs = j->next;
    if (!c->jobs) c->jobs_tail = &c->jobs;
    c->dirty = 1;
    if (j->user ? c->authenticator != NULL : c->authorizer != NULL) start_custom(c, j);
    else start_http(c, j);
    pusher__free(c->mem, j->channel);
    pusher__free(c->mem, j);
  }
  if (!c->link) return;
  pthread_mutex_lock(&g_link_mu);
  pusher_auth_request *list = c->link->answers;
  c->link->answers = NULL;
  c->link->answers_tail = &c->link->answers;
  pthread_mutex_unlock(&g_link_mu);
  while (list) {
    pusher_auth_request *r = list;
    list = r->next;
    c->dirty = 1;
    answer_engine(c, r->req_id, r->user, r->err, r->status, r->message, r->auth, r->channel_data,
                  r->shared_secret, r->user_data);
    pthread_mutex_lock(&g_link_mu);
    link_unref(r->link, c->mem);
    pthread_mutex_unlock(&g_link_mu);
    req_free(r);
  }
}

/* teardown(): cancel HTTP requests, drop jobs, detach the link. */
static void auth_teardown(pusher_client *c) {
  while (c->jobs) {
    struct job *j = c->jobs;
    c->jobs = j->next;
    pusher__free(c->mem, j->channel);
    pusher__free(c->mem, j);
  }
  c->jobs_tail = &c->jobs;
  if (c->http) {
    pusher__http_del(c->http); /* callbacks run with PUSHER_ERR_CANCELED */
    c->http = NULL;
  }
  if (!c->link) return;
  pthread_mutex_lock(&g_link_mu);
  struct link *l = c->link;
  l->cl = NULL;
  pusher_auth_request *list = l->answers;
  l->answers = NULL;
  l->answers_tail = &l->answers;
  while (list) {
    pusher_auth_request *r = list;
    list = r->next;
    l->refs--;
    req_free(r);
  }
  link_unref(l, c->mem);
  pthread_mutex_unlock(&g_link_mu);
  c->link = NULL;
}

/* Hand an answered request to its client (or drop it when the client is gone). */
static void deliver_answer(pusher_auth_request *r) {
  pthread_mutex_lock(&g_link_mu);
  struct link *l = r->link;
  pusher_client *c = l->cl;
  if (!c) {
    pusher_mem m = r->mem;
    req_free(r);
    link_unref(l, &m);
    pthread_mutex_unlock(&g_link_mu);
    return;
  }
  r->next = NULL;
  *l->answers_tail = r;
  l->answers_tail = &r->next;
  int threaded = c->threaded;
  if (threaded) uv_async_send(&c->async);
  pthread_mutex_unlock(&g_link_mu);
  if (!threaded) { /* loop mode: we are on the loop thread */
    enter(c);
    c->dirty = 1;
    leave(c);
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
    run_auth(c);
    if (!c->conn || c->deleting) return;
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
  case OP_SIGNIN: return pusher__conn_signin(c->conn, now);
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
    hold(c);
    uv_mutex_lock(&c->mu);
    if (!on_loop_thread(c)) {
      int r = PUSHER_ERR_INVALID_STATE;
      if (!c->deleting) {
        struct call k = {op, str, num, 0, 0, NULL};
        *c->calls_tail = &k;
        c->calls_tail = &k.next;
        uv_async_send(&c->async);
        /* Completed by the loop thread, or cancelled by teardown() when a
         * callback deletes the client meanwhile; `busy` keeps the client
         * (and this mutex) alive until we are out. */
        while (!k.done) uv_cond_wait(&c->cond, &c->mu);
        r = k.result;
      }
      uv_mutex_unlock(&c->mu);
      drop(c);
      return r;
    }
    uv_mutex_unlock(&c->mu);
    drop(c);
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
  auth_teardown(c);
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
  if (joined) return; /* the deleting thread frees */
  /* Deleted from a callback: nobody joins us.  Other threads may still be
   * inside calls that began before the delete (a pusher_client_connect()
   * whose state change ran the deleting callback, blocked on the mutex or
   * just woken from the condition variable): let them out first. */
  wait_idle(c);
  free_all(c);
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
  c->app_key = pusher__strdup(c->mem, app_key);
  c->auth_origin = pusher__strdup(c->mem, o.auth_origin);
  c->auth_endpoint = pusher__strdup(c->mem, o.auth_endpoint ? o.auth_endpoint : "/pusher/auth");
  c->user_auth_endpoint = pusher__strdup(c->mem, o.user_auth_endpoint ? o.user_auth_endpoint : "/pusher/user-auth");
  c->jsonp = o.auth_transport == PUSHER_AUTH_JSONP;
  c->auth_timeout_ms = AUTH_TIMEOUT_DEFAULT_MS;
  c->jobs_tail = &c->jobs;
  c->link = pusher__calloc(c->mem, 1, sizeof *c->link);
  if (!c->app_key || (o.auth_origin && !c->auth_origin) || !c->auth_endpoint || !c->user_auth_endpoint || !c->link)
    goto fail_mem;
  c->link->cl = c;
  c->link->refs = 1;
  c->link->answers_tail = &c->link->answers;
  rc = kv_copy(c->mem, o.auth_params, o.auth_params_count, &c->params, &c->nparams);
  if (rc == 0) rc = kv_copy(c->mem, o.auth_headers, o.auth_headers_count, &c->headers, &c->nheaders);
  if (rc < 0) goto fail_mem;
  pusher__conn_hooks hooks = {hook_channel_auth};
  rc = pusher__conn_new(&c->conn, app_key, &o, c, &hooks, c);
  if (rc < 0) goto fail_mem;
  pusher__conn_set_user_auth_hook(c->conn, hook_user_auth);
  pusher__conn_set_auth_timeout(c->conn, c->auth_timeout_ms);
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
  free_auth_config(c, &memv);
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
    uv_async_send(&c->async); /* under mu: the handle is not closed yet */
    uv_mutex_unlock(&c->mu);
    uv_thread_join(&c->loop_tid);
    drop(c);
    wait_idle(c); /* calls still leaving on other threads */
    free_all(c);
    return;
  }
  /* Loop thread.  depth > 1: inside a callback, the engine defers its free
   * (teardown frees it once unwound); depth == 1: freed now. */
  pusher__conn_del(c->conn);
  /* freed at once unless inside an engine dispatch (the authorizer,
   * authenticator and provider callbacks run outside the engine) */
  if (c->depth == 1 || c->app_cb) c->conn = NULL;
  if (c->threaded && c->depth > 1) pthread_detach(pthread_self());
  leave(c);
}

int pusher_client_connect(pusher_client *c) { return do_op(c, OP_CONNECT, NULL, 0); }

int pusher_client_disconnect(pusher_client *c) { return do_op(c, OP_DISCONNECT, NULL, 0); }

pusher_state pusher_client_state(pusher_client *c) {
  if (!c) return PUSHER_STATE_DISCONNECTED;
  hold(c);
  if (c->threaded) uv_mutex_lock(&c->mu);
  pusher_state s = c->conn && !c->deleting ? pusher__conn_state(c->conn) : PUSHER_STATE_DISCONNECTED;
  if (c->threaded) uv_mutex_unlock(&c->mu);
  drop(c);
  return s;
}

int pusher_client_socket_id(pusher_client *c, char *buf, size_t len) {
  if (!c || !buf || len == 0) return PUSHER_ERR_INVALID_ARGUMENT;
  hold(c);
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
  drop(c);
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
  hold(c);
  if (c->threaded) uv_mutex_lock(&c->mu);
  int r = c->conn && !c->deleting ? pusher__conn_channel_subscribed(c->conn, channel) : 0;
  if (c->threaded) uv_mutex_unlock(&c->mu);
  drop(c);
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

/* ------------------------------------------------------------------ issue 3 API */

int pusher_client_set_channel_authorizer(pusher_client *c, pusher_channel_authorizer_cb cb, void *user_data) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->authorizer = cb;
  c->authorizer_ud = user_data;
  leave(c);
  return 0;
}

int pusher_client_set_user_authenticator(pusher_client *c, pusher_user_authenticator_cb cb, void *user_data) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->authenticator = cb;
  c->authenticator_ud = user_data;
  leave(c);
  return 0;
}

int pusher_client_set_auth_timeout(pusher_client *c, double seconds) {
  if (!c || !(seconds > 0) || seconds > 3600) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->auth_timeout_ms = (uint64_t)(seconds * 1000.0 + 0.5);
  if (c->auth_timeout_ms == 0) c->auth_timeout_ms = 1;
  if (c->conn) pusher__conn_set_auth_timeout(c->conn, c->auth_timeout_ms);
  leave(c);
  return 0;
}

static int valid_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0 || (n == 1 && *p < 0xc2)) return 0;
    p++;
    for (int i = 0; i < n; i++, p++)
      if ((*p & 0xc0) != 0x80) return 0;
  }
  return 1;
}

int pusher_client_set_auth_params(pusher_client *c, const pusher_kv *params, size_t n) {
  if (!c || (n && !params)) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < n; i++)
    if (!params[i].name || !*params[i].name || !params[i].value || !valid_utf8(params[i].name) ||
        !valid_utf8(params[i].value))
      return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_kv *v = NULL;
  size_t k = 0;
  int e = kv_copy(c->mem, params, n, &v, &k);
  if (e) return e;
  enter(c);
  kv_free(c->mem, c->params, c->nparams);
  c->params = v;
  c->nparams = k;
  leave(c);
  return 0;
}

int pusher_client_set_auth_headers(pusher_client *c, const pusher_kv *headers, size_t n) {
  if (!c || (n && !headers)) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < n; i++)
    if (!headers[i].name || !headers[i].value || header_ok(c->mem, headers[i].name, headers[i].value) != 0)
      return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_kv *v = NULL;
  size_t k = 0;
  int e = kv_copy(c->mem, headers, n, &v, &k);
  if (e) return e;
  enter(c);
  kv_free(c->mem, c->headers, c->nheaders);
  c->headers = v;
  c->nheaders = k;
  leave(c);
  return 0;
}

int pusher_client_set_auth_provider(pusher_client *c, pusher_auth_provider_cb cb, void *user_data) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->provider = cb;
  c->provider_ud = user_data;
  leave(c);
  return 0;
}

int pusher_auth_extra_add_param(pusher_auth_extra *x, const char *name, const char *value) {
  if (!x || !name || !*name || !value || !valid_utf8(name) || !valid_utf8(value)) return PUSHER_ERR_INVALID_ARGUMENT;
  int e = kv_append(x->mem, &x->params, &x->nparams, name, value);
  if (e) x->err = e;
  return e;
}

int pusher_auth_extra_add_header(pusher_auth_extra *x, const char *name, const char *value) {
  if (!x || !name || !value || header_ok(x->mem, name, value) != 0) return PUSHER_ERR_INVALID_ARGUMENT;
  int e = kv_append(x->mem, &x->headers, &x->nheaders, name, value);
  if (e) x->err = e;
  return e;
}

static int set_answer_str(pusher_auth_request *r, char **dst, const char *src) {
  if (!src) return 0;
  *dst = pusher__strdup(&r->mem, src);
  return *dst ? 0 : PUSHER_ERR_NOMEM;
}

int pusher_auth_request_complete(pusher_auth_request *req, const pusher_auth_result *res) {
  if (!req || !res) return PUSHER_ERR_INVALID_ARGUMENT;
  const char *why = NULL;
  if (!res->auth || !pusher__auth_shape_ok(res->auth)) {
    why = "invalid answer: auth is missing or not \"<key>:<hex signature>\"";
  } else if (req->user) {
    if (!res->user_data) why = "invalid answer: no user_data";
  } else if (req->channel && strncmp(req->channel, "private-encrypted-", 18) == 0) {
    uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
    if (!res->shared_secret || pusher__crypto_key_from_b64(res->shared_secret, key, NULL, 0) != 0)
      why = "invalid answer: shared_secret is missing or not base64 of 32 bytes";
  }
  int rc = 0;
  if (why) {
    req->err = PUSHER_ERR_AUTH;
    rc = PUSHER_ERR_AUTH;
    (void)set_answer_str(req, &req->message, why);
  } else {
    int e = set_answer_str(req, &req->auth, res->auth);
    if (!e) e = set_answer_str(req, &req->channel_data, res->channel_data);
    if (!e) e = set_answer_str(req, &req->shared_secret, res->shared_secret);
    if (!e) e = set_answer_str(req, &req->user_data, res->user_data);
    if (e) {
      req->err = e;
      rc = e;
    }
  }
  deliver_answer(req);
  return rc;
}

int pusher_auth_request_fail(pusher_auth_request *req, int status, const char *message) {
  if (!req) return PUSHER_ERR_INVALID_ARGUMENT;
  req->err = PUSHER_ERR_AUTH;
  req->status = status > 0 ? status : 0;
  (void)set_answer_str(req, &req->message, message ? message : "refused by the application's authorizer");
  deliver_answer(req);
  return 0;
}

const char *pusher_auth_request_socket_id(const pusher_auth_request *req) {
  return req ? req->socket_id : NULL;
}

const char *pusher_auth_request_channel(const pusher_auth_request *req) {
  return req ? req->channel : NULL;
}

int pusher_channel_members(pusher_client *c, const char *channel, pusher_members **out) {
  if (!c || !channel || !out) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_channel_members(c->conn, channel, out) : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}

int pusher_trigger(pusher_client *c, const char *channel, const char *event, const char *data_json) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_trigger(c->conn, channel, event, data_json, now_ms())
                                  : PUSHER_ERR_INVALID_STATE;
  c->dirty = 1;
  leave(c);
  return r;
}

int pusher_signin(pusher_client *c) { return do_op(c, OP_SIGNIN, NULL, 0); }

int pusher_user_id(pusher_client *c, char *buf, size_t len) {
  if (!c || !buf || len == 0) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  const char *id = c->conn && !c->deleting ? pusher__conn_user_id(c->conn) : NULL;
  int r = 0;
  if (!id) r = PUSHER_ERR_INVALID_STATE;
  else if (strlen(id) >= len) r = PUSHER_ERR_TOO_LARGE;
  else memcpy(buf, id, strlen(id) + 1);
  leave(c);
  return r;
}

int pusher_user_bind(pusher_client *c, const char *event, pusher_event_cb cb, void *user_data,
                     pusher_bind_id *id) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_user_bind(c->conn, event, cb, user_data, id)
                                  : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}

int pusher_watchlist_bind(pusher_client *c, const char *event, pusher_event_cb cb, void *user_data,
                          pusher_bind_id *id) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  int r = c->conn && !c->deleting ? pusher__conn_watchlist_bind(c->conn, event, cb, user_data, id)
                                  : PUSHER_ERR_INVALID_STATE;
  leave(c);
  return r;
}
