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
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/hash.h"
#include "core/options.h"
#include "uv/client_internal.h"

pusher__tstamp now_ms(void) { return uv_hrtime() / 1000000u; }

/* The default random source (masking keys, the handshake nonce):
 * libsodium's, which reads getrandom(2); OpenSSL's RAND_bytes would load
 * OpenSSL 3's providers (about 2 MB resident) in a client that may never
 * use TLS (docs/architecture.md, "Hashing without OpenSSL"). */
static void sys_rand(uint8_t *buf, size_t n, void *user) {
  (void)user;
  if (pusher__sodium_ready()) {
    randombytes_buf(buf, n);
  } else if (n && uv_random(NULL, NULL, buf, n, 0, NULL) != 0) {
    memset(buf, 0x5a, n);
  }
}

int map_uv_err(int e) {
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
void enter(pusher_client *c) {
  hold(c);
  if (c->threaded) uv_mutex_lock(&c->mu);
  c->depth++;
}

void leave(pusher_client *c) {
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
    uv_loop_close(c->own_loop);
    pusher__free(&keep, c->own_loop);
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
void client_unref(pusher_client *c) {
  if (--c->handles > 0) return;
  /* All handles are closed: only after teardown. */
  if (!c->threaded) free_all(c);
  /* threaded: uv_run() returns now; loop_main finishes. */
}

static void on_handle_closed(uv_handle_t *h) { client_unref(h->data); }

static void on_nw_closed(void *user) { client_unref(user); }

/* Arm the engine's timer for its next expiry.  Every received message moves
 * the activity deadline forward, so the wanted expiry changes on almost every
 * read; re-arming each time (uv_update_time and a heap removal and insertion)
 * was the runtime's largest per-read cost after the engine.  Instead an armed
 * timer that fires no later than the wanted expiry is left alone: when it
 * fires early the engine finds nothing due (pusher__conn_handle_expiry checks
 * every deadline against the time) and the pump that follows re-arms for the
 * real expiry, once per activity timeout.  Only an earlier expiry restarts
 * the timer.  `timer_exp` is the engine time the armed timer stands for. */
static void arm_timer(pusher_client *c) {
  pusher__tstamp exp = c->conn ? pusher__conn_expiry(c->conn) : PUSHER__NEVER;
  if (exp == PUSHER__NEVER) {
    /* nothing due: an armed timer would keep an idle loop alive */
    if (uv_is_active((uv_handle_t *)&c->timer)) uv_timer_stop(&c->timer);
    return;
  }
  if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_exp <= exp) return;
  c->timer_exp = exp;
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

int pusher_client_new(pusher_client **out, const char *app_key, const pusher_client_options *opts) {
  if (!out || !app_key || !*app_key) return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_client_options o;
  if (opts) o = *opts;
  else pusher_client_options_default(&o);
  if (pusher__options_validate(&o, NULL, 0) < 0) return PUSHER_ERR_INVALID_ARGUMENT;
  if (!o.rand) {
    o.rand = sys_rand;
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
    if (!(c->own_loop = pusher__malloc(c->mem, sizeof *c->own_loop))) {
      rc = PUSHER_ERR_NOMEM;
      goto fail_conn;
    }
    if (uv_loop_init(c->own_loop) != 0) {
      pusher__free(c->mem, c->own_loop);
      rc = PUSHER_ERR_INTERNAL;
      goto fail_conn;
    }
    c->loop = c->own_loop;
    if (uv_mutex_init_recursive(&c->mu) != 0) {
      uv_loop_close(c->own_loop);
      pusher__free(c->mem, c->own_loop);
      rc = PUSHER_ERR_INTERNAL;
      goto fail_conn;
    }
    if (uv_cond_init(&c->cond) != 0) {
      uv_mutex_destroy(&c->mu);
      uv_loop_close(c->own_loop);
      pusher__free(c->mem, c->own_loop);
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
