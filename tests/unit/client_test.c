/* The libuv runtime (lib/uv/client.c) end to end against an in-process
 * scripted WebSocket server (tests/tools/rt_fake_ws.c), in loop mode and in
 * threaded mode, plus TLS through a stunnel front with a CA made here. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <pusher/pusher.h>
#include <uv.h>

#include "uv/netwatch.h"

#define RT_FAKE_WS_NO_MAIN
#include "../tools/rt_fake_ws.c"

/* ------------------------------------------------------------------ recorder */

typedef struct rec {
  uv_mutex_t mu;
  char log[32768];
  size_t len;
  pusher_client *c;
  int del_on;          /* delete the client in the first callback named del_on_name */
  const char *del_on_name;
  int after_del;       /* callbacks seen after the delete */
  int deleted;
  int on_caller_thread; /* callbacks seen on the thread that created the client */
  uv_thread_t caller;
} rec;

static void rec_init(rec *r) {
  memset(r, 0, sizeof(*r));
  uv_mutex_init(&r->mu);
  r->caller = uv_thread_self();
}

static void rec_add(rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_add(rec *r, const char *fmt, ...) {
  uv_mutex_lock(&r->mu);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->log + r->len, sizeof(r->log) - r->len - 1, fmt, ap);
  va_end(ap);
  if (n > 0) {
    r->len += (size_t)n;
    if (r->len > sizeof(r->log) - 2) r->len = sizeof(r->log) - 2;
  }
  r->log[r->len++] = '\n';
  r->log[r->len] = '\0';
  uv_mutex_unlock(&r->mu);
}

static int rec_has(rec *r, const char *needle) {
  uv_mutex_lock(&r->mu);
  int yes = strstr(r->log, needle) != NULL;
  uv_mutex_unlock(&r->mu);
  return yes;
}

static int rec_count(rec *r, const char *needle) {
  uv_mutex_lock(&r->mu);
  int n = 0;
  for (const char *p = strstr(r->log, needle); p; p = strstr(p + 1, needle)) n++;
  uv_mutex_unlock(&r->mu);
  return n;
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *user) {
  rec *r = user;
  if (r->deleted) r->after_del++;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &r->caller)) {
    uv_mutex_lock(&r->mu);
    r->on_caller_thread++;
    uv_mutex_unlock(&r->mu);
  }
  if (!strcmp(ev->name, "state_change"))
    rec_add(r, "state:%s>%s%s%s", pusher_state_name(ev->previous), pusher_state_name(ev->current),
            ev->socket_id ? " sid=" : "", ev->socket_id ? ev->socket_id : "");
  else if (!strcmp(ev->name, "error"))
    rec_add(r, "error:%d:%s:fatal=%d:%s", ev->code, pusher_err_name(ev->error), ev->fatal,
            ev->message ? ev->message : "");
  else if (!strcmp(ev->name, "connecting_in"))
    rec_add(r, "connecting_in:%g", ev->delay);
  if (r->del_on && !r->deleted && !strcmp(ev->name, r->del_on_name)) {
    r->deleted = 1;
    pusher_client_del(c);
    rec_add(r, "deleted");
  }
}

static void on_event(pusher_client *c, const pusher_event *ev, void *user) {
  rec *r = user;
  if (r->deleted) r->after_del++;
  int dl = ev->data ? (int)ev->data_len : 0;
  rec_add(r, "event:%s:%s:%.*s%s", ev->channel ? ev->channel : "-", ev->event, dl > 60 ? 60 : dl,
          ev->data ? ev->data : "", dl > 60 ? "..." : "");
}

static void print_log(rec *r) {
  uv_mutex_lock(&r->mu);
  fprintf(stderr, "---- log ----\n%s-------------\n", r->log);
  uv_mutex_unlock(&r->mu);
}

/* Wait for needle, running loop (if any) meanwhile. */
static int wait_for(rec *r, uv_loop_t *loop, const char *needle, int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
  while (!rec_has(r, needle)) {
    if (uv_hrtime() > end) {
      fprintf(stderr, "timed out waiting for '%s'\n", needle);
      print_log(r);
      return 0;
    }
    if (loop) uv_run(loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  return 1;
}

static void spin(uv_loop_t *loop, int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
  while (uv_hrtime() < end) {
    if (loop) uv_run(loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
}

static void zero_rand(uint8_t *buf, size_t n, void *user) { memset(buf, 0, n); }

static void base_opts(pusher_client_options *o, int port, uv_loop_t *loop) {
  pusher_client_options_default(o);
  o->encrypted = 0;
  o->ws_host = "127.0.0.1";
  o->ws_port = port;
  o->loop = loop;
  o->rand = zero_rand;
  o->reconnect_delay = 0.2;
  o->max_reconnect_delay = 0.4;
  o->jitter = 0;
}

/* Run a loop until every handle is closed, then close it. */
static void finish_loop(uv_loop_t *loop) {
  for (int i = 0; i < 2000 && uv_loop_alive(loop); i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(500);
  }
  assert_int_equal(uv_loop_close(loop), 0);
}

/* ------------------------------------------------------------------ scenario */

/* connect -> connected with socket_id, subscribe, receive events, server
 * closes 4001 -> error (fatal) and disconnected, no retry. */
static void scenario_basic(uv_loop_t *loop) {
  rtfs *srv = rtfs_start();
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, srv->port, loop);
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_client_state(c), PUSHER_STATE_INITIALIZED);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_bind(c, NULL, NULL, on_event, &r, NULL), 0);
  assert_int_equal(pusher_subscribe(c, "chan-a"), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, loop, "state:connecting>connected sid=1.1", 5000));
  char sid[64];
  assert_int_equal(pusher_client_socket_id(c, sid, sizeof(sid)), 0);
  assert_string_equal(sid, "1.1");
  assert_true(wait_for(&r, loop, "event:chan-a:pusher:subscription_succeeded", 5000));
  assert_true(wait_for(&r, loop, "event:chan-a:greet:{\"n\":1}", 5000));
  assert_true(pusher_channel_subscribed(c, "chan-a"));

  /* subscribe while connected */
  assert_int_equal(pusher_subscribe(c, "chan-b"), 0);
  assert_true(wait_for(&r, loop, "event:chan-b:greet", 5000));
  rtfs_broadcast(srv, "{\"event\":\"news\",\"channel\":\"chan-b\",\"data\":\"hello\"}");
  assert_true(wait_for(&r, loop, "event:chan-b:news:hello", 5000));

  rtfs_close_all(srv, 4001, "App key not found");
  assert_true(wait_for(&r, loop, "error:4001:", 5000));
  assert_true(wait_for(&r, loop, "state:connected>disconnected", 5000));
  assert_true(rec_has(&r, "fatal=1"));
  spin(loop, 300);
  assert_int_equal(pusher_client_state(c), PUSHER_STATE_DISCONNECTED);
  assert_int_equal(rtfs_count(srv, "conn"), 1); /* no retry after 4001 */
  assert_int_equal(pusher_client_socket_id(c, sid, sizeof(sid)), PUSHER_ERR_INVALID_STATE);
  /* threaded mode: callbacks run on the client's loop thread only */
  uv_mutex_lock(&r.mu);
  int on_caller = r.on_caller_thread;
  uv_mutex_unlock(&r.mu);
  if (loop) assert_true(on_caller > 0);
  else assert_int_equal(on_caller, 0);
  pusher_client_del(c);
  if (loop) finish_loop(loop);
  rtfs_stop(srv);
  uv_mutex_destroy(&r.mu);
}

static void test_loop_basic(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  scenario_basic(&loop);
}

static void test_threaded_basic(void **state) { scenario_basic(NULL); }

/* An abrupt drop -> connecting, connecting_in, reconnect, resubscribe. */
static void scenario_reconnect(uv_loop_t *loop) {
  rtfs *srv = rtfs_start();
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, srv->port, loop);
  o.auto_connect = 1;
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_bind(c, "chan-r", NULL, on_event, &r, NULL), 0);
  assert_int_equal(pusher_subscribe(c, "chan-r"), 0);
  assert_true(wait_for(&r, loop, "event:chan-r:greet", 5000));
  rtfs_close_all(srv, -1, NULL);
  assert_true(wait_for(&r, loop, "state:connected>connecting", 5000));
  assert_true(wait_for(&r, loop, "connecting_in:", 5000));
  assert_true(wait_for(&r, loop, "state:connecting>connected sid=1.2", 5000));
  for (int i = 0; i < 5000 && rtfs_count(srv, "sub") < 2; i++) spin(loop, 1);
  assert_int_equal(rtfs_count(srv, "sub"), 2);
  assert_int_equal(pusher_client_disconnect(c), 0);
  assert_true(wait_for(&r, loop, "state:connected>disconnected", 5000));
  pusher_client_del(c);
  if (loop) finish_loop(loop);
  rtfs_stop(srv);
  uv_mutex_destroy(&r.mu);
}

static void test_loop_reconnect(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  scenario_reconnect(&loop);
}

static void test_threaded_reconnect(void **state) { scenario_reconnect(NULL); }

/* pusher_client_del from inside a callback: no callback afterwards, and
 * everything is released (loop closes cleanly; ASan/valgrind see no leak). */
static void scenario_del_in_callback(uv_loop_t *loop, const char *when) {
  rtfs *srv = rtfs_start();
  rec r;
  rec_init(&r);
  r.del_on = 1;
  r.del_on_name = when;
  pusher_client_options o;
  base_opts(&o, srv->port, loop);
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  r.c = c;
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0); /* a second binding */
  assert_int_equal(pusher_bind(c, NULL, NULL, on_event, &r, NULL), 0);
  assert_int_equal(pusher_subscribe(c, "chan-d"), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, loop, "deleted", 5000));
  spin(loop, 200);
  assert_int_equal(r.after_del, 0);
  if (loop) finish_loop(loop);
  else spin(NULL, 200); /* the detached loop thread frees the client */
  rtfs_stop(srv);
  uv_mutex_destroy(&r.mu);
}

static void test_loop_del_in_callback(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  scenario_del_in_callback(&loop, "connected");
}

static void test_threaded_del_in_callback(void **state) {
  scenario_del_in_callback(NULL, "connected");
}

static void test_loop_del_in_connecting(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  scenario_del_in_callback(&loop, "connecting");
}

static int unused_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof(a));
  socklen_t l = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

/* Nothing listens: error CONNREFUSED, connecting_in, still connecting. */
static void scenario_refused(uv_loop_t *loop) {
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, unused_port(), loop);
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, loop, "state:initialized>connecting", 5000));
  assert_true(wait_for(&r, loop, "error:0:PUSHER_ERR_CONNREFUSED:fatal=0:", 5000));
  assert_true(wait_for(&r, loop, "connecting_in:0.2", 5000));
  assert_true(rec_has(&r, "connection refused"));
  pusher_state s = pusher_client_state(c);
  assert_true(s == PUSHER_STATE_CONNECTING);
  /* a second attempt happens after the delay */
  for (int i = 0; i < 5000 && rec_count(&r, "PUSHER_ERR_CONNREFUSED") < 2; i++) spin(loop, 1);
  assert_true(rec_count(&r, "PUSHER_ERR_CONNREFUSED") >= 2);
  assert_true(rec_count(&r, "connecting_in:") >= 2);
  pusher_client_del(c);
  if (loop) finish_loop(loop);
  uv_mutex_destroy(&r.mu);
}

static void test_loop_refused(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  scenario_refused(&loop);
}

static void test_threaded_refused(void **state) { scenario_refused(NULL); }

/* set_network(1) while waiting to retry => retry now; with the netlink
 * watcher enabled the client still starts and stops cleanly. */
static void test_loop_network_online_retries_now(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, unused_port(), &loop);
  o.reconnect_delay = 5;
  o.max_reconnect_delay = 10;
  o.watch_network = 1;
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, "error", on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, "PUSHER_ERR_CONNREFUSED", 5000));
  uint64_t t0 = uv_hrtime();
  uv_mutex_lock(&r.mu);
  r.len = 0;
  r.log[0] = '\0';
  uv_mutex_unlock(&r.mu);
  assert_int_equal(pusher_client_set_network(c, 1), 0);
  assert_true(wait_for(&r, &loop, "PUSHER_ERR_CONNREFUSED", 3000));
  assert_true(uv_hrtime() - t0 < 3000000000ull); /* well before the 5 s delay */
  pusher_client_del(c);
  finish_loop(&loop);
  uv_mutex_destroy(&r.mu);
}

/* The netlink watcher itself: starts, agrees with a probe, stops cleanly. */
static int nw_closed;
static void on_nw_change(int online, void *user) { (void)online; (void)user; }
static void on_nw_closed_cb(void *user) { nw_closed = 1; }

static void test_netwatch_lifecycle(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  pusher__netwatch *w = NULL;
  int r = pusher__netwatch_start(&w, &loop, NULL, on_nw_change, NULL);
  if (r == PUSHER_ERR_UNSUPPORTED || r == PUSHER_ERR_IO) {
    uv_loop_close(&loop);
    fail_msg("netlink watcher could not start: %s", pusher_strerror(r));
  }
  assert_int_equal(r, 0);
  assert_int_equal(pusher__netwatch_online(w), pusher__netwatch_probe());
  uv_run(&loop, UV_RUN_NOWAIT);
  pusher__netwatch_stop(w, on_nw_closed_cb);
  finish_loop(&loop);
  assert_int_equal(nw_closed, 1);
}

static void test_dns_failure(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, 80, &loop);
  o.ws_host = "no-such-host.invalid";
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, "error:0:PUSHER_ERR_DNS:fatal=0:cannot resolve 'no-such-host.invalid'", 10000));
  pusher_client_del(c);
  finish_loop(&loop);
  uv_mutex_destroy(&r.mu);
}

static void test_bad_arguments(void **state) {
  pusher_client *c = (pusher_client *)0x1;
  assert_int_equal(pusher_client_new(&c, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_client_new(&c, "", NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_ptr_equal(c, (pusher_client *)0x1);
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.reconnect_delay = -1;
  assert_int_equal(pusher_client_new(&c, "k", &o), PUSHER_ERR_INVALID_ARGUMENT);
  pusher_client_del(NULL);
}

/* Default options, threaded, never connected: create and delete. */
static void test_threaded_idle(void **state) {
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "k", NULL), 0);
  assert_int_equal(pusher_client_state(c), PUSHER_STATE_INITIALIZED);
  pusher_client_del(c);
}

/* The engine's timer while events stream in: every message moves the
 * activity deadline forward, and the runtime does not re-arm its timer for
 * each one (lib/uv/client.c arm_timer); the timer armed for an older
 * deadline fires early, finds nothing due and is re-armed.  So: no ping
 * while events keep arriving for over two activity periods (a ping then
 * would mean an early firing was taken for silence), and once the stream
 * stops, the ping comes and its pong keeps the connection. */
static void scenario_activity_while_streaming(uv_loop_t *loop) {
  rtfs *srv = rtfs_start();
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, srv->port, loop);
  o.activity_timeout = 1;
  o.pong_timeout = 5;
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_subscribe(c, "tsan-0"), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, loop, "state:connecting>connected", 5000));
  rtfs_set_stream(srv, 20);
  spin(loop, 2500);
  assert_true(rtfs_count(srv, "streamed") > 50);
  assert_int_equal(rtfs_count(srv, "ping"), 0);
  rtfs_set_stream(srv, 0);
  for (int i = 0; i < 5000 && rtfs_count(srv, "ping") < 1; i++) spin(loop, 1);
  assert_true(rtfs_count(srv, "ping") >= 1);
  spin(loop, 300); /* the pong arrives */
  assert_int_equal(pusher_client_state(c), PUSHER_STATE_CONNECTED);
  assert_false(rec_has(&r, "state:connected>connecting"));
  pusher_client_del(c);
  if (loop) finish_loop(loop);
  rtfs_stop(srv);
  uv_mutex_destroy(&r.mu);
}

static void test_loop_activity_while_streaming(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  scenario_activity_while_streaming(&loop);
}

static void test_threaded_activity_while_streaming(void **state) { scenario_activity_while_streaming(NULL); }

/* ------------------------------------------------------------------ TLS */

static char tls_dir[256];
static int tls_port, tls_ok;
static pid_t stunnel_pid;
static rtfs *tls_srv;

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

static int free_fixed_port(void) {
  for (int i = 0; i < 100; i++) {
    int p = 7100 + (int)((getpid() + i) % 100);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    if (ok) return p;
  }
  return 0;
}

static int tls_setup(void **state) {
  if (system("command -v stunnel >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1") != 0)
    return -1; /* stunnel and openssl are test dependencies (scripts/install-deps.sh): fail, never skip */
  snprintf(tls_dir, sizeof(tls_dir), "/tmp/pusher-tls-XXXXXX");
  if (!mkdtemp(tls_dir)) return -1;
  char cmd[4096];
  snprintf(cmd, sizeof(cmd),
           "(cd %s && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout ca.key -out ca.pem -days 2 -subj /CN=libpusher-test-ca && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout other.key -out other.pem -days 2 -subj /CN=some-other-ca && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout server.key -out server.csr -subj /CN=localhost && "
           "printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
           "-out server.crt -days 2 -extfile ext.cnf && cat server.crt ca.pem > chain.pem"
           ") >/dev/null 2>&1",
           tls_dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "openssl cert generation failed\n");
    return -1;
  }
  tls_srv = rtfs_start();
  tls_port = free_fixed_port();
  if (!tls_port) return -1;
  char conf[512];
  snprintf(conf, sizeof(conf), "%s/stunnel.conf", tls_dir);
  FILE *f = fopen(conf, "w");
  fprintf(f,
          "foreground = yes\npid =\ndebug = 4\noutput = %s/stunnel.log\n"
          "[ws]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\ncert = %s/chain.pem\nkey = %s/server.key\n",
          tls_dir, tls_port, tls_srv->port, tls_dir, tls_dir);
  fclose(f);
  stunnel_pid = fork();
  if (stunnel_pid == 0) {
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 1);
    dup2(nul, 2);
    execlp("stunnel", "stunnel", conf, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !port_open(tls_port); i++) usleep(10000);
  if (!port_open(tls_port)) {
    fprintf(stderr, "stunnel did not start\n");
    return -1;
  }
  tls_ok = 1;
  return 0;
}

static int tls_teardown(void **state) {
  if (stunnel_pid > 0) {
    kill(stunnel_pid, SIGTERM);
    waitpid(stunnel_pid, NULL, 0);
  }
  if (tls_srv) rtfs_stop(tls_srv);
  if (tls_dir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
    if (system(cmd) != 0) return -1;
  }
  return 0;
}

static void tls_opts(pusher_client_options *o, uv_loop_t *loop, const char *host, const char *ca) {
  base_opts(o, 80, loop);
  o->encrypted = 1;
  o->ws_host = host;
  o->wss_port = tls_port;
  o->ca_file = ca;
  o->reconnect_delay = 5;
  o->max_reconnect_delay = 10;
}

static void test_tls_ok(void **state) {
  if (!tls_ok) fail_msg("TLS front (stunnel) could not be set up");
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  char ca[300];
  snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
  pusher_client_options o;
  tls_opts(&o, &loop, "localhost", ca);
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_bind(c, NULL, NULL, on_event, &r, NULL), 0);
  assert_int_equal(pusher_subscribe(c, "chan-tls"), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, "state:connecting>connected", 5000));
  assert_true(wait_for(&r, &loop, "event:chan-tls:greet", 5000));
  /* a large message through TLS (several records) */
  static char big[100000];
  size_t n = (size_t)snprintf(big, sizeof(big), "{\"event\":\"big\",\"channel\":\"chan-tls\",\"data\":\"");
  memset(big + n, 'x', 60000);
  snprintf(big + n + 60000, sizeof(big) - n - 60000, "\"}");
  rtfs_broadcast(tls_srv, big);
  assert_true(wait_for(&r, &loop, "event:chan-tls:big:xxxx", 5000));
  assert_int_equal(pusher_client_disconnect(c), 0);
  assert_true(wait_for(&r, &loop, "state:connected>disconnected", 5000));
  pusher_client_del(c);
  finish_loop(&loop);
  print_log(&r);
  uv_mutex_destroy(&r.mu);
}

static void tls_expect_error(const char *host, const char *ca_name, const char *needle) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  char ca[300];
  snprintf(ca, sizeof(ca), "%s/%s", tls_dir, ca_name);
  pusher_client_options o;
  tls_opts(&o, &loop, host, ca);
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, needle, 5000));
  spin(&loop, 100);
  assert_false(rec_has(&r, ">connected"));
  print_log(&r);
  pusher_client_del(c);
  finish_loop(&loop);
  uv_mutex_destroy(&r.mu);
}

static void test_tls_wrong_ca(void **state) {
  if (!tls_ok) fail_msg("TLS front (stunnel) could not be set up");
  tls_expect_error("localhost", "other.pem",
                   "error:0:PUSHER_ERR_TLS_VERIFY:fatal=0:certificate verify failed: ");
}

static void test_tls_wrong_host(void **state) {
  if (!tls_ok) fail_msg("TLS front (stunnel) could not be set up");
  tls_expect_error("127.0.0.1", "ca.pem",
                   "error:0:PUSHER_ERR_TLS_VERIFY:fatal=0:hostname mismatch: the server "
                   "certificate is not valid for '127.0.0.1'");
}

/* tls_insecure: no CA, wrong host name, still connects (testing only). */
static void test_tls_insecure(void **state) {
  if (!tls_ok) fail_msg("TLS front (stunnel) could not be set up");
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  pusher_client_options o;
  tls_opts(&o, &loop, "127.0.0.1", NULL);
  o.tls_insecure = 1;
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, "state:connecting>connected", 5000));
  pusher_client_del(c);
  finish_loop(&loop);
  uv_mutex_destroy(&r.mu);
}

/* Close code 4000 on a plain connection: the client switches to TLS (the
 * TLS context is then built lazily) and connects through the TLS front. */
static void test_tls_switch_on_4000(void **state) {
  if (!tls_ok) fail_msg("TLS front (stunnel) could not be set up");
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  char ca[300];
  snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
  pusher_client_options o;
  tls_opts(&o, &loop, "localhost", ca);
  o.encrypted = 0;
  o.ws_port = tls_srv->port;
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, "state:connecting>connected", 5000));
  long before = rtfs_count(tls_srv, "open");
  rtfs_close_all(tls_srv, 4000, "Use TLS");
  assert_true(wait_for(&r, &loop, "state:connected>connecting", 5000));
  for (int i = 0; i < 5000 && rec_count(&r, "state:connecting>connected") < 2; i++) spin(&loop, 1);
  if (rec_count(&r, "state:connecting>connected") < 2) print_log(&r);
  assert_int_equal(rec_count(&r, "state:connecting>connected"), 2);
  assert_true(rtfs_count(tls_srv, "open") > before);
  pusher_client_del(c);
  finish_loop(&loop);
  print_log(&r);
  uv_mutex_destroy(&r.mu);
}

/* An unusable CA file: initialized -> failed with an error, no attempt. */
static void test_tls_unusable_ca(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rec r;
  rec_init(&r);
  pusher_client_options o;
  base_opts(&o, 443, &loop);
  o.encrypted = 1;
  o.ca_file = "/nonexistent/ca.pem";
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, &r, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  assert_true(wait_for(&r, &loop, "state:initialized>failed", 2000));
  assert_true(rec_has(&r, "cannot load CA certificates from '/nonexistent/ca.pem'"));
  assert_int_equal(pusher_client_state(c), PUSHER_STATE_FAILED);
  print_log(&r);
  pusher_client_del(c);
  finish_loop(&loop);
  uv_mutex_destroy(&r.mu);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_threaded_idle),
      cmocka_unit_test(test_loop_basic),
      cmocka_unit_test(test_threaded_basic),
      cmocka_unit_test(test_loop_reconnect),
      cmocka_unit_test(test_threaded_reconnect),
      cmocka_unit_test(test_loop_del_in_callback),
      cmocka_unit_test(test_loop_del_in_connecting),
      cmocka_unit_test(test_threaded_del_in_callback),
      cmocka_unit_test(test_loop_refused),
      cmocka_unit_test(test_threaded_refused),
      cmocka_unit_test(test_loop_network_online_retries_now),
      cmocka_unit_test(test_netwatch_lifecycle),
      cmocka_unit_test(test_dns_failure),
      cmocka_unit_test(test_loop_activity_while_streaming),
      cmocka_unit_test(test_threaded_activity_while_streaming),
      cmocka_unit_test(test_tls_unusable_ca),
  };
  const struct CMUnitTest tls_tests[] = {
      cmocka_unit_test(test_tls_ok),
      cmocka_unit_test(test_tls_wrong_ca),
      cmocka_unit_test(test_tls_wrong_host),
      cmocka_unit_test(test_tls_insecure),
      cmocka_unit_test(test_tls_switch_on_4000),
  };
  int fails = cmocka_run_group_tests_name("client", tests, NULL, NULL);
  fails += cmocka_run_group_tests_name("client_tls", tls_tests, tls_setup, tls_teardown);
  return fails ? 1 : 0;
}
