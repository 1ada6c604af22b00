/* Deleting clients from everywhere, concurrently, thousands of times.
 *
 * Worker threads create threaded-mode clients against an in-process fake
 * server and have each one deleted from a different place: inside the
 * state_change callback run by the worker's own pusher_client_connect(),
 * inside "connected", "error", an event, "pusher:subscription_succeeded",
 * the channel authorizer (run right after the worker's pusher_subscribe()),
 * the user authenticator (after pusher_signin()), the auth params provider,
 * the delegate's did_connect, from the worker thread itself while frames are
 * flowing, and from a reaper thread.  A loop-mode worker does the same on
 * its own libuv loop.  A hog thread keeps the other core busy so that the
 * loop threads get preempted at awkward moments.
 *
 * What must hold (docs/lifetime.md): a call that was already in progress on
 * another thread when a callback deleted the client returns normally; the
 * handle stays usable inside the deleting callback (every call then answers
 * PUSHER_ERR_INVALID_STATE or a neutral value); no callback runs after
 * pusher_client_del(); every byte the library allocated (counted through
 * pusher_mem) is freed; a late answer to an authorization request is
 * accepted and ignored.  Run in every build; it exists for the -fsanitize
 * (address, undefined, thread) builds, where a mutex destroyed while held,
 * a use after free or a data race on the teardown path is fatal. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pusher/channels.h>
#include <pusher/pusher.h>
#include <uv.h>

#define RT_FAKE_WS_NO_MAIN
#include "../tools/rt_fake_ws.c"

#ifndef DEL_ROUNDS
#define DEL_ROUNDS 600 /* per threaded worker: 4 workers => 2400, plus the loop-mode rounds */
#endif
#define WORKERS 4
#define LOOP_ROUNDS 400

/* ------------------------------------------------------------ memory count */

static atomic_long live_allocs;

typedef struct { size_t n; max_align_t pad[]; } hdr;

static void *m_malloc(size_t n, void *u) {
  (void)u;
  hdr *h = malloc(sizeof(hdr) + n);
  if (!h) return NULL;
  h->n = n;
  atomic_fetch_add(&live_allocs, 1);
  return h + 1;
}
static void m_free(void *p, void *u) {
  (void)u;
  if (!p) return;
  atomic_fetch_sub(&live_allocs, 1);
  free((hdr *)p - 1);
}
static void *m_calloc(size_t k, size_t n, void *u) {
  if (n && k > ((size_t)-1 - sizeof(hdr)) / n) return NULL;
  void *p = m_malloc(k * n, u);
  if (p) memset(p, 0, k * n);
  return p;
}
static void *m_realloc(void *p, size_t n, void *u) {
  if (!p) return m_malloc(n, u);
  hdr *h = realloc((hdr *)p - 1, sizeof(hdr) + n);
  if (!h) return NULL;
  h->n = n;
  return h + 1;
}
static const pusher_mem counting_mem = {NULL, m_malloc, m_free, m_calloc, m_realloc};

/* ------------------------------------------------------------ one round */

enum mode {
  M_CONNECTING,    /* state_change -> connecting, inside the worker's connect() */
  M_CONNECTED,     /* "connected" state event */
  M_ERROR,         /* "error" (nothing listens on the port) */
  M_EVENT,         /* a channel event */
  M_SUB_OK,        /* pusher:subscription_succeeded */
  M_AUTHORIZER,    /* channel authorizer, right after the worker's subscribe() */
  M_AUTHENTICATOR, /* user authenticator, right after the worker's signin() */
  M_PROVIDER,      /* auth params provider of the HTTP auth request */
  M_DELEGATE,      /* delegate did_connect */
  M_FOREIGN,       /* the worker thread, while frames flow */
  M_REAPER,        /* another thread */
  NMODES
};
static const char *mode_name[NMODES] = {"connecting", "connected", "error", "event", "sub_ok",
                                        "authorizer", "authenticator", "provider", "delegate",
                                        "foreign", "reaper"};

typedef struct round_ctx {
  int mode;
  int twice;                 /* delete twice from the callback */
  atomic_int armed;          /* the deleting callback has not run yet */
  atomic_int deleted;        /* last thing written by the deleter */
  atomic_int after_del;      /* a callback ran after pusher_client_del() returned */
  atomic_int bad_inside;     /* a call inside the deleting callback misbehaved */
  pusher_auth_request *held; /* answered late, after the delete */
} round_ctx;

static atomic_long n_deleted[NMODES];
static atomic_long n_callbacks_after_del, n_bad_inside;

/* The deleting callback: delete, then use the handle until we return. */
static void delete_here(pusher_client *c, round_ctx *r) {
  pusher_client_del(c);
  if (r->twice) pusher_client_del(c);
  if (pusher_client_state(c) != PUSHER_STATE_DISCONNECTED) atomic_store(&r->bad_inside, 1);
  if (pusher_subscribe(c, "after-del") != PUSHER_ERR_INVALID_STATE) atomic_store(&r->bad_inside, 1);
  if (pusher_bind(c, NULL, NULL, NULL, NULL, NULL) == 0) atomic_store(&r->bad_inside, 1);
  if (pusher_client_connect(c) != PUSHER_ERR_INVALID_STATE) atomic_store(&r->bad_inside, 1);
  char sid[64];
  if (pusher_client_socket_id(c, sid, sizeof sid) != PUSHER_ERR_INVALID_STATE) atomic_store(&r->bad_inside, 1);
  atomic_fetch_add(&n_deleted[r->mode], 1);
  if (atomic_load(&r->bad_inside)) atomic_fetch_add(&n_bad_inside, 1);
}

/* Returns 1 when this callback is the one that deletes. */
static int take(round_ctx *r, int mode) {
  if (atomic_load(&r->deleted)) {
    atomic_store(&r->after_del, 1);
    atomic_fetch_add(&n_callbacks_after_del, 1);
    return 0;
  }
  if (r->mode != mode) return 0;
  return atomic_exchange(&r->armed, 0);
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *u) {
  round_ctx *r = u;
  int d = 0;
  if (!strcmp(ev->name, "state_change") && ev->current == PUSHER_STATE_CONNECTING)
    d = take(r, M_CONNECTING);
  else if (!strcmp(ev->name, "connected"))
    d = take(r, M_CONNECTED);
  else if (!strcmp(ev->name, "error"))
    d = take(r, M_ERROR);
  else
    (void)take(r, -1);
  if (d) {
    delete_here(c, r);
    atomic_store(&r->deleted, 1);
  }
}

static void on_ev(pusher_client *c, const pusher_event *ev, void *u) {
  round_ctx *r = u;
  int d = 0;
  if (!strcmp(ev->event, "pusher:subscription_succeeded")) d = take(r, M_SUB_OK);
  else if (!strcmp(ev->event, "greet")) d = take(r, M_EVENT);
  else (void)take(r, -1);
  if (d) {
    delete_here(c, r);
    atomic_store(&r->deleted, 1);
  }
}

static void on_authorize(pusher_client *c, pusher_auth_request *req, const char *sid, const char *ch,
                         void *u) {
  round_ctx *r = u;
  if (!take(r, M_AUTHORIZER)) {
    pusher_auth_request_fail(req, 403, "no");
    return;
  }
  r->held = req; /* answered by the worker once the client is gone */
  delete_here(c, r);
  atomic_store(&r->deleted, 1);
}

static void on_authenticate(pusher_client *c, pusher_auth_request *req, const char *sid, void *u) {
  round_ctx *r = u;
  if (!take(r, M_AUTHENTICATOR)) {
    pusher_auth_request_fail(req, 403, "no");
    return;
  }
  /* answer first, then delete: the answer is dropped with the client */
  pusher_auth_result res = {"app-key:00", NULL, NULL, "{\"id\":\"u\"}"};
  (void)pusher_auth_request_complete(req, &res);
  delete_here(c, r);
  atomic_store(&r->deleted, 1);
}

static int on_provide(pusher_client *c, const char *channel, pusher_auth_extra *x, void *u) {
  round_ctx *r = u;
  if (!take(r, M_PROVIDER)) return 0;
  delete_here(c, r);
  atomic_store(&r->deleted, 1);
  return PUSHER_ERR_AUTH;
}

static void on_did_connect(pusher_client *c, const char *sid, void *u) {
  round_ctx *r = u;
  if (!take(r, M_DELEGATE)) return;
  delete_here(c, r);
  atomic_store(&r->deleted, 1);
}
static const pusher_delegate delegate = {on_did_connect, NULL, NULL, NULL};

/* ------------------------------------------------------------ reaper */

#define REAP_MAX 64
static struct {
  uv_mutex_t mu;
  uv_cond_t cond;
  struct { pusher_client *c; round_ctx *r; } q[REAP_MAX];
  int n, stop;
} reaper;

static void reaper_main(void *arg) {
  (void)arg;
  uv_mutex_lock(&reaper.mu);
  for (;;) {
    while (reaper.n == 0 && !reaper.stop) uv_cond_wait(&reaper.cond, &reaper.mu);
    if (reaper.n == 0) break;
    pusher_client *c = reaper.q[reaper.n - 1].c;
    round_ctx *r = reaper.q[reaper.n - 1].r;
    reaper.n--;
    uv_mutex_unlock(&reaper.mu);
    pusher_client_del(c);
    atomic_fetch_add(&n_deleted[M_REAPER], 1);
    atomic_store(&r->deleted, 1);
    uv_mutex_lock(&reaper.mu);
  }
  uv_mutex_unlock(&reaper.mu);
}

static void reap(pusher_client *c, round_ctx *r) {
  uv_mutex_lock(&reaper.mu);
  while (reaper.n == REAP_MAX) {
    uv_mutex_unlock(&reaper.mu);
    usleep(100);
    uv_mutex_lock(&reaper.mu);
  }
  reaper.q[reaper.n].c = c;
  reaper.q[reaper.n].r = r;
  reaper.n++;
  uv_cond_signal(&reaper.cond);
  uv_mutex_unlock(&reaper.mu);
}

/* ------------------------------------------------------------ workers */

static int srv_port, dead_port;
static atomic_int hog_stop;

typedef struct worker {
  int idx;
  uv_thread_t t;
  int errors;
  char why[160];
} worker;

static void werr(worker *w, int round, const char *what) {
  if (!w->errors++) snprintf(w->why, sizeof w->why, "round %d: %s", round, what);
}

static int wait_flag(atomic_int *f, int ms) {
  for (int i = 0; i < ms * 10 && !atomic_load(f); i++) usleep(100);
  return atomic_load(f);
}

static int wait_connected(pusher_client *c, int ms) {
  for (int i = 0; i < ms * 10; i++) {
    if (pusher_client_state(c) == PUSHER_STATE_CONNECTED) return 1;
    usleep(100);
  }
  return 0;
}

static void base_options(pusher_client_options *o) {
  pusher_client_options_default(o);
  o->encrypted = 0;
  o->ws_host = "127.0.0.1";
  o->ws_port = srv_port;
  o->reconnect_delay = 0.02;
  o->max_reconnect_delay = 0.05;
  o->jitter = 0;
  o->auto_connect = 0;
  o->mem = &counting_mem;
}

static void one_round(worker *w, int i, int mode) {
  round_ctx *r = calloc(1, sizeof *r);
  r->mode = mode;
  r->twice = (i / NMODES) % 3 == 0;
  atomic_store(&r->armed, 1);
  pusher_client_options o;
  base_options(&o);
  char chan[48];
  if (mode == M_ERROR) o.ws_port = dead_port;
  if (mode == M_DELEGATE) {
    o.delegate = &delegate;
    o.delegate_user = r;
  }
  if (mode == M_PROVIDER) o.auth_origin = "http://127.0.0.1:9"; /* never reached */
  pusher_client *c = NULL;
  if (pusher_client_new(&c, "app-key", &o) != 0) {
    werr(w, i, "pusher_client_new failed");
    free(r);
    return;
  }
  int e = pusher_connection_bind(c, NULL, on_conn, r, NULL);
  e |= pusher_bind(c, NULL, NULL, on_ev, r, NULL);
  if (mode != M_PROVIDER) {
    e |= pusher_client_set_channel_authorizer(c, on_authorize, r);
    e |= pusher_client_set_user_authenticator(c, on_authenticate, r);
  } else {
    e |= pusher_client_set_auth_provider(c, on_provide, r);
  }
  if (e) werr(w, i, "bind/set failed");
  switch (mode) {
  case M_CONNECTING:
  case M_CONNECTED:
  case M_ERROR:
  case M_DELEGATE:
    /* the deletion may happen inside this very call */
    if (pusher_client_connect(c) != 0) werr(w, i, "connect failed");
    break;
  case M_EVENT:
  case M_SUB_OK:
    snprintf(chan, sizeof chan, "pub-%d-%d", w->idx, i);
    if (pusher_subscribe(c, chan) != 0) werr(w, i, "subscribe failed");
    if (pusher_client_connect(c) != 0) werr(w, i, "connect failed");
    break;
  case M_AUTHORIZER:
  case M_PROVIDER:
  case M_AUTHENTICATOR:
    if (pusher_client_connect(c) != 0) werr(w, i, "connect failed");
    if (!wait_connected(c, 10000)) {
      werr(w, i, "not connected within 10 s");
      pusher_client_del(c);
      atomic_store(&r->deleted, 1);
      break;
    }
    /* the authorizer/provider/authenticator (and the delete) runs in the
     * loop turn that executes this call, while this thread wakes up */
    snprintf(chan, sizeof chan, "private-%d-%d", w->idx, i);
    if (mode == M_AUTHENTICATOR) e = pusher_signin(c);
    else e = pusher_subscribe(c, chan);
    if (e != 0 && e != PUSHER_ERR_INVALID_STATE) werr(w, i, "subscribe/signin failed");
    break;
  case M_FOREIGN:
    snprintf(chan, sizeof chan, "pub-%d-%d", w->idx, i);
    (void)pusher_subscribe(c, chan);
    (void)pusher_client_connect(c);
    usleep((useconds_t)(rand_r(&(unsigned){(unsigned)(i * 7919 + w->idx)}) % 3000));
    pusher_client_del(c);
    atomic_fetch_add(&n_deleted[M_FOREIGN], 1);
    atomic_store(&r->deleted, 1);
    break;
  case M_REAPER:
    (void)pusher_client_connect(c);
    if (i % 2) usleep(500);
    reap(c, r);
    break;
  }
  if (!wait_flag(&r->deleted, 20000)) {
    char m[96];
    snprintf(m, sizeof m, "mode %s: no delete within 20 s", mode_name[mode]);
    werr(w, i, m);
    return; /* leak r: a callback may still use it */
  }
  if (r->held) { /* the late answer: accepted, ignored */
    if (i % 2) pusher_auth_request_fail(r->held, 403, "late");
    else {
      pusher_auth_result res = {"app-key:00", NULL, NULL, NULL};
      (void)pusher_auth_request_complete(r->held, &res);
    }
  }
  if (atomic_load(&r->bad_inside)) werr(w, i, "a call inside the deleting callback misbehaved");
  /* give a callback that would (wrongly) run after the delete a chance */
  if (i % 16 == 0) usleep(2000);
  if (atomic_load(&r->after_del)) werr(w, i, "a callback ran after pusher_client_del()");
  free(r);
}

static void worker_main(void *arg) {
  worker *w = arg;
  for (int i = 0; i < DEL_ROUNDS; i++) one_round(w, i, (i + w->idx) % NMODES);
}

/* ------------------------------------------------------------ loop mode */

typedef struct lctx {
  atomic_int deleted;
  int mode;
  int callbacks_after;
} lctx;

static void l_conn(pusher_client *c, const pusher_connection_event *ev, void *u) {
  lctx *l = u;
  if (l->deleted) {
    l->callbacks_after++;
    return;
  }
  int d = (l->mode == 0 && !strcmp(ev->name, "state_change") && ev->current == PUSHER_STATE_CONNECTING) ||
          (l->mode == 1 && !strcmp(ev->name, "connected")) || (l->mode == 2 && !strcmp(ev->name, "error"));
  if (d) {
    pusher_client_del(c);
    pusher_client_del(c);
    l->deleted = 1;
  }
}

static void l_ev(pusher_client *c, const pusher_event *ev, void *u) {
  lctx *l = u;
  if (l->deleted) {
    l->callbacks_after++;
    return;
  }
  if (l->mode == 3 && !strcmp(ev->event, "greet")) {
    pusher_client_del(c);
    l->deleted = 1;
  }
}

static void l_authorize(pusher_client *c, pusher_auth_request *req, const char *sid, const char *ch,
                        void *u) {
  lctx *l = u;
  pusher_auth_request_fail(req, 403, "no");
  if (l->mode == 4 && !l->deleted) {
    pusher_client_del(c);
    l->deleted = 1;
  }
}

static void loop_worker_main(void *arg) {
  worker *w = arg;
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    werr(w, 0, "uv_loop_init");
    return;
  }
  for (int i = 0; i < LOOP_ROUNDS; i++) {
    lctx l = {0};
    l.mode = i % 6;
    pusher_client_options o;
    base_options(&o);
    o.loop = &loop;
    if (l.mode == 2) o.ws_port = dead_port;
    pusher_client *c = NULL;
    if (pusher_client_new(&c, "app-key", &o) != 0) {
      werr(w, i, "loop: new failed");
      break;
    }
    pusher_connection_bind(c, NULL, l_conn, &l, NULL);
    pusher_bind(c, NULL, NULL, l_ev, &l, NULL);
    pusher_client_set_channel_authorizer(c, l_authorize, &l);
    char chan[32];
    snprintf(chan, sizeof chan, l.mode == 4 ? "private-l%d" : "pub-l%d", i);
    pusher_subscribe(c, chan);
    pusher_client_connect(c);
    if (l.mode == 5) { /* outside any callback, mid-connection */
      for (int k = 0; k < (i % 7); k++) uv_run(&loop, UV_RUN_NOWAIT);
      pusher_client_del(c);
      l.deleted = 1;
    }
    for (int k = 0; k < 200000 && !l.deleted; k++) uv_run(&loop, UV_RUN_ONCE);
    if (!l.deleted) {
      werr(w, i, "loop: no delete");
      break;
    }
    /* the client's handles close; the loop then has nothing left */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (l.callbacks_after) werr(w, i, "loop: callback after delete");
  }
  if (uv_loop_close(&loop) != 0) werr(w, LOOP_ROUNDS, "loop: handles left open (uv_loop_close EBUSY)");
}

/* ------------------------------------------------------------ the test */

static void hog_main(void *arg) {
  (void)arg;
  volatile unsigned long x = 0;
  while (!atomic_load(&hog_stop))
    for (int i = 0; i < 100000; i++) x += (unsigned long)i;
}

static int closed_port(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t t;
  uv_tcp_init(&loop, &t);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL); /* bound, never listening: connect is refused */
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return port;
}

static int open_fds(void) {
  uv_fs_t req;
  int n = uv_fs_scandir(NULL, &req, "/proc/self/fd", 0, NULL);
  uv_fs_req_cleanup(&req);
  return n;
}

static void test_delete_everywhere(void **state) {
  (void)state;
  dead_port = closed_port();
  uv_mutex_init(&reaper.mu);
  uv_cond_init(&reaper.cond);
  uv_thread_t reaper_t, hog_t;
  assert_int_equal(uv_thread_create(&reaper_t, reaper_main, NULL), 0);

  /* Warm-up, one round of each kind against a server of its own, so that
   * what the libraries open once per process (libuv's signal pipe, ...) is
   * open before the descriptors are counted. */
  rtfs *srv = rtfs_start();
  rtfs_set_greet(srv, 1);
  srv_port = srv->port;
  worker warm;
  memset(&warm, 0, sizeof warm);
  warm.idx = 99;
  for (int m = 0; m < NMODES; m++) one_round(&warm, m, m);
  if (warm.errors) fprintf(stderr, "warm-up: %s\n", warm.why);
  assert_int_equal(warm.errors, 0);
  for (int i = 0; i < 200 && atomic_load(&live_allocs) != 0; i++) usleep(50000);
  rtfs_stop(srv);
  for (int m = 0; m < NMODES; m++) atomic_store(&n_deleted[m], 0);
  int fds_before = open_fds();

  srv = rtfs_start();
  rtfs_set_greet(srv, 1);
  rtfs_set_stream(srv, 2);
  srv_port = srv->port;
  assert_int_equal(uv_thread_create(&hog_t, hog_main, NULL), 0);

  worker w[WORKERS + 1];
  memset(w, 0, sizeof w);
  for (int i = 0; i < WORKERS; i++) {
    w[i].idx = i;
    assert_int_equal(uv_thread_create(&w[i].t, worker_main, &w[i]), 0);
  }
  w[WORKERS].idx = WORKERS;
  assert_int_equal(uv_thread_create(&w[WORKERS].t, loop_worker_main, &w[WORKERS]), 0);
  for (int i = 0; i <= WORKERS; i++) uv_thread_join(&w[i].t);

  uv_mutex_lock(&reaper.mu);
  reaper.stop = 1;
  uv_cond_signal(&reaper.cond);
  uv_mutex_unlock(&reaper.mu);
  uv_thread_join(&reaper_t);
  atomic_store(&hog_stop, 1);
  uv_thread_join(&hog_t);

  /* Clients deleted from their own callbacks free themselves on their loop
   * thread after it unwinds: every allocation must come back. */
  for (int i = 0; i < 200 && atomic_load(&live_allocs) != 0; i++) usleep(50000);
  long total = 0;
  for (int m = 0; m < NMODES; m++) {
    fprintf(stderr, "deleted in %-13s %ld\n", mode_name[m], atomic_load(&n_deleted[m]));
    total += atomic_load(&n_deleted[m]);
  }
  fprintf(stderr, "threaded rounds %ld, loop-mode rounds %d, callbacks after delete %ld, "
                  "misbehaving calls inside the deleting callback %ld, live allocations %ld, "
                  "server connections %ld\n",
          total, LOOP_ROUNDS, atomic_load(&n_callbacks_after_del), atomic_load(&n_bad_inside),
          atomic_load(&live_allocs), rtfs_count(srv, "open"));
  for (int i = 0; i <= WORKERS; i++)
    if (w[i].errors) fprintf(stderr, "worker %d: %d errors, first: %s\n", i, w[i].errors, w[i].why);
  for (int i = 0; i <= WORKERS; i++) assert_int_equal(w[i].errors, 0);
  assert_int_equal(total, (long)WORKERS * DEL_ROUNDS);
  for (int m = 0; m < NMODES; m++) assert_true(atomic_load(&n_deleted[m]) > 0);
  assert_int_equal(atomic_load(&n_callbacks_after_del), 0);
  assert_int_equal(atomic_load(&live_allocs), 0);
  rtfs_set_stream(srv, 0);
  rtfs_stop(srv);
  uv_cond_destroy(&reaper.cond);
  uv_mutex_destroy(&reaper.mu);
  /* every client's loop, sockets and wake-up descriptors are closed */
  int fds_after = open_fds();
  fprintf(stderr, "open descriptors before %d, after %d\n", fds_before, fds_after);
  if (fds_after != fds_before) system("ls -l /proc/$PPID/fd >&2");
  assert_int_equal(fds_after, fds_before);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_delete_everywhere),
  };
  return cmocka_run_group_tests_name("client_del_tsan", tests, NULL, NULL);
}
