/* Unit tests: the sans-I/O connection engine (lib/core/conn.c) against a
 * fake server and a fake clock (now, in ms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/proto.h"
#include "helpers/fake_server.h"

/* ------------------------------------------------------------------ harness */

static uint64_t now;
static char LOG[1 << 17];
static int state_events[6];
static int err_events, proto_errs;
static char last_err_msg[300];
static uint8_t rand_bytes[4];
static int rand_fixed;

static void logf_(const char *fmt, ...) {
  size_t n = strlen(LOG);
  if (n + 200 >= sizeof LOG) return;
  if (n) LOG[n++] = ' ';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(LOG + n, sizeof LOG - n, fmt, ap);
  va_end(ap);
}

static void test_rand(uint8_t *buf, size_t n, void *u) {
  (void)u;
  static uint8_t ctr;
  for (size_t i = 0; i < n; i++) buf[i] = rand_fixed ? rand_bytes[i % 4] : ctr++;
}

enum { M_MANUAL, M_REFUSE, M_BLACKHOLE, M_ACCEPT, M_CLOSE, M_ERROR };

typedef struct T {
  pusher__conn *c;
  fake_server fs;
  pusher_client_options o;
  pusher_delegate d;
  int mode;
  int code;      /* M_CLOSE / M_ERROR code */
  int attempts;
  int sid;
  uint64_t open_at[256];
  /* hooks */
  int auth_calls;
  uint64_t auth_req;
  char auth_sid[64];
  char auth_chan[256];
  /* delegate */
  int did_connect, did_disconnect, failed, will_reconnect_calls;
  int last_will;
  int cancel_reconnect;
  double set_delay;
  /* reentrancy */
  pusher_bind_id unbind_me;
  int del_in_cb;
  int disconnect_in_cb;
} T;

static T *cur;

static void on_conn(pusher_client *owner, const pusher_connection_event *ev, void *ud) {
  T *t = ud;
  assert_ptr_equal(owner, (pusher_client *)t);
  if (strcmp(ev->name, "state_change") == 0) {
    logf_("%s>%s", pusher_state_name(ev->previous), pusher_state_name(ev->current));
    if (ev->current == PUSHER_STATE_CONNECTED) assert_non_null(ev->socket_id);
    else assert_null(ev->socket_id);
  } else if (strcmp(ev->name, "connecting_in") == 0) {
    logf_("in:%g", ev->delay);
  } else if (strcmp(ev->name, "error") == 0) {
    logf_("err:%d:%s%s", ev->code, pusher_err_name(ev->error), ev->fatal ? ":fatal" : "");
    assert_non_null(ev->message);
    snprintf(last_err_msg, sizeof last_err_msg, "%s", ev->message);
    err_events++;
    if (ev->error == PUSHER_ERR_PROTO || ev->error == PUSHER_ERR_JSON) proto_errs++;
  } else {
    assert_string_equal(ev->name, pusher_state_name(ev->current));
    state_events[ev->current]++;
  }
  if (t->disconnect_in_cb && strcmp(ev->name, "connected") == 0) pusher__conn_disconnect(t->c, now);
}

static void on_event(pusher_client *owner, const pusher_event *ev, void *ud) {
  T *t = ud;
  (void)t;
  logf_("ev:%s:%s:%s%s%s", ev->channel ? ev->channel : "-", ev->event, ev->data ? ev->data : "(null)",
        ev->user_id ? ":u=" : "", ev->user_id ? ev->user_id : "");
  if (ev->data) assert_int_equal(strlen(ev->data), ev->data_len);
}

static void hook_auth(pusher__conn *c, const char *channel, const char *socket_id, uint64_t req_id, void *u) {
  T *t = u;
  t->auth_calls++;
  t->auth_req = req_id;
  snprintf(t->auth_sid, sizeof t->auth_sid, "%s", socket_id);
  snprintf(t->auth_chan, sizeof t->auth_chan, "%s", channel);
  logf_("auth:%s:%s", channel, socket_id);
}

static void d_connect(pusher_client *c, const char *sid, void *u) {
  T *t = u;
  t->did_connect++;
  logf_("dlg:connect:%s", sid);
}
static void d_disconnect(pusher_client *c, const pusher_connection_event *err, int will, void *u) {
  T *t = u;
  t->did_disconnect++;
  t->last_will = will;
  logf_("dlg:disconnect:%d:%d", err ? err->code : -1, will);
}
static void d_failed(pusher_client *c, const pusher_connection_event *err, void *u) {
  T *t = u;
  t->failed++;
  logf_("dlg:failed:%d", err ? err->code : -1);
}
static int d_will(pusher_client *c, double *delay, void *u) {
  T *t = u;
  t->will_reconnect_calls++;
  if (t->set_delay >= 0) *delay = t->set_delay;
  return !t->cancel_reconnect;
}

static void t_init(T *t) {
  memset(t, 0, sizeof *t);
  cur = t;
  now = 1000000;
  LOG[0] = '\0';
  memset(state_events, 0, sizeof state_events);
  err_events = proto_errs = 0;
  rand_fixed = 0;
  pusher_client_options_default(&t->o);
  t->o.ws_host = "127.0.0.1";
  t->o.ws_port = 6001;
  t->o.wss_port = 6002;
  t->o.encrypted = 0;
  t->o.jitter = 0;
  t->o.rand = test_rand;
  t->d.did_connect = d_connect;
  t->d.did_disconnect = d_disconnect;
  t->d.failed = d_failed;
  t->d.will_reconnect = d_will;
  t->o.delegate = &t->d;
  t->o.delegate_user = t;
  t->set_delay = -1;
}

static void t_new(T *t) {
  pusher__conn_hooks h = {hook_auth};
  assert_int_equal(pusher__conn_new(&t->c, "app-key", &t->o, t, &h, t), 0);
  assert_int_equal(pusher__conn_connection_bind(t->c, NULL, on_conn, t, NULL), 0);
  assert_int_equal(pusher__conn_bind(t->c, NULL, NULL, on_event, t, NULL), 0);
  fs_init(&t->fs, t->c);
}

static void t_free(T *t) {
  pusher__conn_del(t->c);
  fs_free(&t->fs);
}

static void serve(T *t) {
  if (t->mode == M_MANUAL) { /* the test takes the transport requests itself */
    fs_pull(&t->fs);
    return;
  }
  for (;;) {
    int a = fs_io(&t->fs);
    if (a == PUSHER__IO_NONE) {
      fs_pull(&t->fs);
      return;
    }
    if (a != PUSHER__IO_OPEN) continue;
    if (t->attempts < 256) t->open_at[t->attempts] = now;
    t->attempts++;
    char sid[32], msg[200];
    switch (t->mode) {
    case M_REFUSE: pusher__conn_io_failed(t->c, t->fs.gen, PUSHER_ERR_CONNREFUSED, "refused", now); break;
    case M_ACCEPT:
      snprintf(sid, sizeof sid, "%d.%d", 100 + t->sid, 200 + t->sid);
      t->sid++;
      fs_accept(&t->fs, now);
      snprintf(msg, sizeof msg,
               "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"%s\\\",\\\"activity_timeout\\\":120}\"}",
               sid);
      fs_send_text(&t->fs, msg, now);
      break;
    case M_CLOSE:
      fs_accept(&t->fs, now);
      fs_send_close(&t->fs, (uint16_t)t->code, "go away", now);
      break;
    case M_ERROR:
      fs_accept(&t->fs, now);
      snprintf(msg, sizeof msg, "{\"event\":\"pusher:error\",\"data\":{\"code\":%d,\"message\":\"nope\"}}", t->code);
      fs_send_text(&t->fs, msg, now);
      break;
    default: return; /* manual / black hole: leave it */
    }
  }
}

/* Advance the fake clock by ms, firing every expiry on the way at its exact time. */
static void advance(T *t, uint64_t ms) {
  uint64_t target = now + ms;
  serve(t);
  for (int guard = 0; guard < 100000; guard++) {
    uint64_t e = pusher__conn_expiry(t->c);
    if (e > target) break;
    assert_true(e >= now);
    now = e;
    pusher__conn_handle_expiry(t->c, now);
    serve(t);
  }
  now = target;
}

static void connect_ok(T *t, const char *sid, int activity) {
  assert_int_equal(pusher__conn_connect(t->c, now), 0);
  assert_int_equal(fs_connect(&t->fs, now, sid, activity), 0);
  assert_int_equal(pusher__conn_state(t->c), PUSHER_STATE_CONNECTED);
}

static int has(const char *needle) { return strstr(LOG, needle) != NULL; }
static void clear_log(void) { LOG[0] = '\0'; }

/* ------------------------------------------------------------------ connect and URL */

static void test_connect_states_and_url(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_INITIALIZED);
  assert_null(pusher__conn_socket_id(t.c));
  assert_int_equal(pusher__conn_connect(t.c, now), 0);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  assert_string_equal(t.fs.last_host, "127.0.0.1");
  assert_int_equal(t.fs.last_port, 6001);
  assert_int_equal(t.fs.last_tls, 0);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_NONE);
  assert_int_equal(pusher__conn_connect(t.c, now), 0); /* no-op while connecting */
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_NONE);
  assert_int_equal(fs_accept(&t.fs, now), 0);
  assert_int_equal(t.fs.bad_request, 0);
  char want[256];
  snprintf(want, sizeof want, "/app/app-key?protocol=7&client=libpusher-c&version=%s&flash=false", PUSHER_VERSION);
  assert_string_equal(t.fs.path, want);
  assert_string_equal(t.fs.host_header, "127.0.0.1:6001");
  fs_send_text(&t.fs, "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"123.456\\\",\\\"activity_timeout\\\":120}\"}", now);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_string_equal(pusher__conn_socket_id(t.c), "123.456");
  assert_string_equal(LOG, "initialized>connecting connecting>connected dlg:connect:123.456");
  assert_int_equal(state_events[PUSHER_STATE_CONNECTING], 1);
  assert_int_equal(state_events[PUSHER_STATE_CONNECTED], 1);
  assert_int_equal(t.did_connect, 1);
  assert_int_equal(pusher__conn_connect(t.c, now), 0); /* no-op when connected */
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_NONE);
  t_free(&t);
}

static void test_default_host_tls_cluster_path(void **st) {
  (void)st;
  T t;
  t_init(&t);
  pusher_client_options_default(&t.o);
  t.o.rand = test_rand;
  t.o.cluster = "eu";
  t.o.ws_path = "/prefix";
  t.o.client_name = "tester";
  t_new(&t);
  pusher__conn_connect(t.c, now);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  assert_string_equal(t.fs.last_host, "ws-eu.pusher.com");
  assert_int_equal(t.fs.last_port, 443);
  assert_int_equal(t.fs.last_tls, 1);
  assert_int_equal(fs_accept(&t.fs, now), 0);
  assert_non_null(strstr(t.fs.path, "/prefix/app/app-key?protocol=7&client=tester&version="));
  assert_string_equal(t.fs.host_header, "ws-eu.pusher.com:443");
  t_free(&t);
  /* bad options are refused */
  pusher__conn *c = NULL;
  pusher_client_options o;
  pusher_client_options_default(&o);
  assert_int_equal(pusher__conn_new(&c, "k", &o, NULL, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT); /* no rand */
  o.rand = test_rand;
  o.ws_port = 70000;
  assert_int_equal(pusher__conn_new(&c, "k", &o, NULL, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.ws_port = 80;
  assert_int_equal(pusher__conn_new(&c, "", &o, NULL, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_null(c);
}

/* ------------------------------------------------------------------ seed state sequences */

static void test_seq_connected_connecting_connected(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "my-channel", now);
  connect_ok(&t, "1.1", 120);
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\""), 1);
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"my-channel\"}", now);
  assert_true(pusher__conn_channel_subscribed(t.c, "my-channel"));
  clear_log();
  fs_drop(&t.fs, PUSHER_ERR_IO, now); /* TCP reset */
  assert_string_equal(LOG, "err:0:PUSHER_ERR_IO connected>connecting dlg:disconnect:0:1 in:5");
  assert_false(pusher__conn_channel_subscribed(t.c, "my-channel"));
  assert_null(pusher__conn_socket_id(t.c));
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_CLOSE);
  t.mode = M_ACCEPT;
  advance(&t, 4999);
  assert_int_equal(t.attempts, 0);
  advance(&t, 1);
  assert_int_equal(t.attempts, 1);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_true(has("connecting>connected"));
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\""), 2); /* resubscribed */
  assert_string_equal(pusher__conn_socket_id(t.c), "100.200");
  t_free(&t);
}

/* Unsubscribing while the pusher:subscribe still awaits its answer, then
 * subscribing again (found by the client soak's churn, tests/soak): the
 * client must not send pusher:unsubscribe and a second pusher:subscribe,
 * because the first subscribe's answer would then report the new
 * subscription as succeeded while the server has the channel unsubscribed
 * between the two (events lost while "subscribed").  As pusher-js
 * (cancelSubscription / reinstateSubscription): nothing is sent, the
 * answer counts for the new subscription; an answer for a channel given up
 * for good is followed by pusher:unsubscribe. */
static void test_unsubscribe_while_subscribe_pending(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  /* a: subscribe, unsubscribe, subscribe before the answer */
  assert_int_equal(pusher__conn_subscribe(t.c, "a", now), 0);
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"a\"}"), 1);
  assert_int_equal(pusher__conn_unsubscribe(t.c, "a", now), 0);
  assert_false(pusher__conn_channel_subscribed(t.c, "a"));
  assert_int_equal(pusher__conn_unsubscribe(t.c, "a", now), PUSHER_ERR_NOT_FOUND);
  assert_int_equal(pusher__conn_subscribe(t.c, "a", now), 0);
  assert_int_equal(pusher__conn_subscribe(t.c, "a", now), PUSHER_ERR_EXISTS);
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"a\"}"), 1);
  assert_int_equal(fs_count(&t.fs, "pusher:unsubscribe"), 0);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"a\"}", now);
  assert_string_equal(LOG, "ev:a:pusher:subscription_succeeded:(null)");
  assert_true(pusher__conn_channel_subscribed(t.c, "a"));
  assert_int_equal(fs_count(&t.fs, "pusher:unsubscribe"), 0);
  /* b: given up for good: pusher:unsubscribe once the answer came */
  assert_int_equal(pusher__conn_subscribe(t.c, "b", now), 0);
  assert_int_equal(pusher__conn_unsubscribe(t.c, "b", now), 0);
  assert_int_equal(fs_count(&t.fs, "pusher:unsubscribe"), 0);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"b\"}", now);
  assert_string_equal(LOG, "");
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"b\"}}");
  /* a later answer for b (none is due) is ignored; b can be subscribed afresh */
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"b\"}", now);
  assert_string_equal(LOG, "");
  assert_int_equal(pusher__conn_subscribe(t.c, "b", now), 0);
  assert_int_equal(fs_count(&t.fs, "\"channel\":\"b\"}}"), 3); /* subscribe, unsubscribe, subscribe */
  /* c: refused while given up (soketi's pusher:subscription_error): nothing to undo */
  assert_int_equal(pusher__conn_subscribe(t.c, "c", now), 0);
  assert_int_equal(pusher__conn_unsubscribe(t.c, "c", now), 0);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher:subscription_error\",\"channel\":\"c\",\"data\":{\"type\":\"AuthError\",\"error\":\"no\",\"status\":403}}", now);
  assert_string_equal(LOG, "");
  assert_int_equal(fs_count(&t.fs, "{\"channel\":\"c\"}"), 0); /* no pusher:unsubscribe of c */
  /* a failed subscription is answered: unsubscribing it sends pusher:unsubscribe */
  assert_int_equal(pusher__conn_subscribe(t.c, "c", now), 0);
  fs_send_text(&t.fs, "{\"event\":\"pusher:subscription_error\",\"channel\":\"c\",\"data\":{\"type\":\"AuthError\",\"error\":\"no\",\"status\":403}}", now);
  assert_true(has("ev:c:pusher:subscription_error"));
  assert_int_equal(pusher__conn_unsubscribe(t.c, "c", now), 0);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"c\"}}");
  /* d: given up, then the connection ends: not resubscribed on the next one */
  assert_int_equal(pusher__conn_subscribe(t.c, "d", now), 0);
  assert_int_equal(pusher__conn_unsubscribe(t.c, "d", now), 0);
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  t.mode = M_ACCEPT;
  advance(&t, 5000);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"d\"}"), 1);
  t_free(&t);
}

static void test_seq_close_frame_below_4000(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  clear_log();
  fs_send_close(&t.fs, 1001, "going away", now);
  assert_int_equal(t.fs.close_code, 1001); /* the engine answered the close */
  /* a normal close (1001) is not an `error` (as pusher-js); the delegate still gets the code */
  assert_string_equal(LOG, "connected>connecting dlg:disconnect:1001:1 in:5");
  t_free(&t);
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  clear_log();
  fs_send_close(&t.fs, 1011, "internal error", now);
  assert_string_equal(LOG, "err:1011:PUSHER_ERR_CLOSED connected>connecting dlg:disconnect:1011:1 in:5");
  t_free(&t);
}

static void test_seq_unavailable_and_back(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  uint64_t t0 = now;
  t.mode = M_REFUSE;
  clear_log();
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  advance(&t, 29999);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  /* attempts at +5, +15, +25 (delays 5, 10, 10) */
  assert_int_equal(t.attempts, 3);
  assert_int_equal(t.open_at[0] - t0, 5000);
  assert_int_equal(t.open_at[1] - t0, 15000);
  assert_int_equal(t.open_at[2] - t0, 25000);
  advance(&t, 1);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_UNAVAILABLE);
  assert_true(has("connected>connecting"));
  assert_true(has("connecting>unavailable"));
  assert_true(has("in:5 "));
  assert_true(has("in:10"));
  advance(&t, 20000); /* keeps retrying every max delay */
  assert_int_equal(t.attempts, 5);
  assert_int_equal(t.open_at[3] - t0, 35000);
  assert_int_equal(t.open_at[4] - t0, 45000);
  clear_log();
  t.mode = M_ACCEPT;
  advance(&t, 10000);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_string_equal(LOG, "unavailable>connected dlg:connect:100.200");
  t_free(&t);
}

static void test_seq_initialized_failed(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_fail(t.c, PUSHER_ERR_CONFIG, "TLS requested but unusable", now);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_FAILED);
  assert_string_equal(LOG, "err:0:PUSHER_ERR_CONFIG:fatal initialized>failed dlg:failed:0");
  assert_int_equal(state_events[PUSHER_STATE_FAILED], 1);
  advance(&t, 100000);
  assert_int_equal(t.attempts, 0);
  t_free(&t);
}

/* ------------------------------------------------------------------ close codes */

static void test_4000_switches_to_tls(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_connect(t.c, now);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  assert_int_equal(t.fs.last_tls, 0);
  fs_accept(&t.fs, now);
  clear_log();
  fs_send_close(&t.fs, 4000, "TLS only", now);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN); /* at once */
  assert_int_equal(t.fs.last_tls, 1);
  assert_int_equal(t.fs.last_port, 6002);
  assert_false(has("in:"));
  assert_true(has("err:4000:PUSHER_ERR_CLOSED"));
  /* pusher:error 4000 as first message: same */
  t_free(&t);
  t_init(&t);
  t_new(&t);
  pusher__conn_connect(t.c, now);
  fs_io(&t.fs);
  fs_accept(&t.fs, now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":4000,\"message\":\"tls\"}}", now);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  assert_int_equal(t.fs.last_tls, 1);
  t_free(&t);
}

static void test_fatal_4001_and_4004(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  t.mode = M_CLOSE;
  t.code = 4001;
  pusher__conn_connect(t.c, now);
  advance(&t, 0);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_DISCONNECTED);
  assert_string_equal(LOG, "initialized>connecting err:4001:PUSHER_ERR_CLOSED:fatal connecting>disconnected dlg:failed:4001");
  advance(&t, 600000);
  assert_int_equal(t.attempts, 1);
  t_free(&t);
  /* 4004 as the handshake pusher:error: the app sees code 4004 */
  t_init(&t);
  t_new(&t);
  t.mode = M_ERROR;
  t.code = 4004;
  pusher__conn_connect(t.c, now);
  advance(&t, 0);
  assert_true(has("err:4004:PUSHER_ERR_CLOSED:fatal connecting>disconnected"));
  advance(&t, 600000);
  assert_int_equal(t.attempts, 1);
  t_free(&t);
  /* 4009 on an established connection: did_disconnect(will=0) and failed */
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  clear_log();
  fs_send_close(&t.fs, 4009, "unauthorized", now);
  assert_string_equal(LOG, "err:4009:PUSHER_ERR_CLOSED:fatal connected>disconnected dlg:disconnect:4009:0 dlg:failed:4009");
  t_free(&t);
}

static void test_4300_fatal(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  clear_log();
  fs_send_close(&t.fs, 4301, "rate", now);
  assert_true(has("err:4301:PUSHER_ERR_CLOSED:fatal connected>disconnected"));
  advance(&t, 100000);
  assert_int_equal(t.attempts, 0);
  t_free(&t);
}

static void test_4100_backoff(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  t.mode = M_CLOSE;
  t.code = 4100;
  pusher__conn_connect(t.c, now);
  uint64_t t0 = now;
  advance(&t, 16000);
  assert_true(has("err:4100:PUSHER_ERR_CLOSED in:5 err:4100:PUSHER_ERR_CLOSED in:10"));
  assert_int_equal(t.attempts, 3);
  assert_int_equal(t.open_at[1] - t0, 5000);
  assert_int_equal(t.open_at[2] - t0, 15000);
  t_free(&t);
}

static void run_4200(int jitter, uint8_t rb) {
  T t;
  t_init(&t);
  t.o.jitter = jitter;
  rand_fixed = 1;
  memset(rand_bytes, rb, sizeof rand_bytes);
  t_new(&t);
  t.mode = M_CLOSE;
  t.code = 4200;
  pusher__conn_connect(t.c, now);
  advance(&t, 3000);
  print_message("4200 for 3 s (jitter %d, rand 0x%02x): %d attempts\n", jitter, rb, t.attempts);
  assert_true(t.attempts >= 2);
  assert_true(t.attempts <= 4);
  /* the first retry is immediate */
  assert_int_equal(t.open_at[1], t.open_at[0]);
  t_free(&t);
}

static void test_4200_no_storm(void **st) {
  (void)st;
  run_4200(0, 0);
  run_4200(1, 0x00); /* shortest delays */
  run_4200(1, 0xff);
  run_4200(1, 0x80);
  /* established and then 4200: also immediate first retry */
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  clear_log();
  fs_send_close(&t.fs, 4200, "restart", now);
  assert_string_equal(LOG, "err:4200:PUSHER_ERR_CLOSED connected>connecting dlg:disconnect:4200:1");
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  t_free(&t);
}

static void test_pusher_error_established(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  pusher__conn_subscribe(t.c, "private-chat", now);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":null,\"message\":\"Invalid signature\"}}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":4100,\"message\":\"over\"}}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\",\"channel\":\"private-chat\",\"data\":{\"code\":4301,\"message\":\"x\"}}", now);
  assert_string_equal(LOG, "err:0:PUSHER_ERR_REMOTE err:4100:PUSHER_ERR_REMOTE err:4301:PUSHER_ERR_REMOTE "
                           "ev:private-chat:pusher:error:{\"code\":4301,\"message\":\"x\"}");
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_NONE);
  t_free(&t);
}

/* ------------------------------------------------------------------ activity */

static void test_ping_pong_timing(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 30); /* server says 30 s < option 120 s */
  uint64_t t0 = now;
  advance(&t, 29999);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 0);
  advance(&t, 1);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 1);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:ping\",\"data\":{}}");
  advance(&t, 29999);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  fs_send_text(&t.fs, "{\"event\":\"pusher:pong\",\"data\":{}}", now);
  t0 = now;
  advance(&t, 29999);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 1);
  advance(&t, 1);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 2);
  assert_int_equal(now - t0, 30000);
  clear_log();
  advance(&t, 29999);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  advance(&t, 1); /* pong timeout: drop and reconnect at once */
  assert_string_equal(LOG, "err:0:PUSHER_ERR_TIMEOUT connected>connecting dlg:disconnect:0:1");
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  t_free(&t);
  /* option shorter than the server's: the option wins; any inbound traffic re-arms */
  t_init(&t);
  t.o.activity_timeout = 10;
  t.o.pong_timeout = 2.5;
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  advance(&t, 9000);
  fs_send_text(&t.fs, "{\"event\":\"x\",\"channel\":\"c\",\"data\":\"1\"}", now);
  advance(&t, 9999);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 0);
  advance(&t, 1);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 1);
  advance(&t, 2499);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  advance(&t, 1);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  t_free(&t);
}

static void test_server_ping(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  fs_send_text(&t.fs, "{\"event\":\"pusher:ping\",\"data\":{}}", now);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:pong\",\"data\":{}}");
  fs_send_text(&t.fs, "{\"event\":\"pusher:ping\"}", now);
  assert_int_equal(fs_count(&t.fs, "pusher:pong"), 2);
  assert_int_equal(err_events, 0);
  t_free(&t);
}

static void test_connect_timeout(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t.o.connect_timeout = 15;
  t.o.unavailable_timeout = 100;
  t_new(&t);
  t.mode = M_BLACKHOLE;
  pusher__conn_connect(t.c, now);
  advance(&t, 14999);
  assert_false(has("err:"));
  advance(&t, 1);
  assert_string_equal(LOG, "initialized>connecting err:0:PUSHER_ERR_TIMEOUT in:5");
  /* the handshake counts too: TCP up, 101 received, no connection_established */
  t.mode = M_MANUAL;
  advance(&t, 5000);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  fs_accept(&t.fs, now);
  clear_log();
  advance(&t, 15000);
  assert_string_equal(LOG, "err:0:PUSHER_ERR_TIMEOUT in:10");
  t_free(&t);
}

static void test_set_network(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  t.mode = M_REFUSE;
  pusher__conn_connect(t.c, now);
  advance(&t, 0);
  assert_int_equal(t.attempts, 1);
  advance(&t, 1000);
  pusher__conn_set_network(t.c, 1, now); /* online while connecting: retry now */
  advance(&t, 0);
  assert_int_equal(t.attempts, 2);
  t_free(&t);
  /* offline while connected: ping now, reconnect without pong */
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  advance(&t, 1000);
  pusher__conn_set_network(t.c, 0, now);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 1);
  advance(&t, 29999);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  advance(&t, 1);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  t_free(&t);
  /* online while unavailable */
  t_init(&t);
  t.o.unavailable_timeout = 1;
  t_new(&t);
  t.mode = M_REFUSE;
  pusher__conn_connect(t.c, now);
  advance(&t, 2000);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_UNAVAILABLE);
  t.mode = M_ACCEPT;
  pusher__conn_set_network(t.c, 1, now);
  advance(&t, 0);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  t_free(&t);
}

/* ------------------------------------------------------------------ disconnect, delegate */

static void test_disconnect(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "my-channel", now);
  connect_ok(&t, "1.1", 120);
  clear_log();
  assert_int_equal(pusher__conn_disconnect(t.c, now), 0);
  assert_string_equal(LOG, "connected>disconnected dlg:disconnect:-1:0");
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_CLOSE);
  assert_int_equal(t.fs.close_code, 1000);
  assert_int_equal(pusher__conn_expiry(t.c), PUSHER__NEVER);
  t.mode = M_ACCEPT;
  advance(&t, 1000000);
  assert_int_equal(t.attempts, 0);
  assert_int_equal(pusher__conn_disconnect(t.c, now), 0); /* again: no-op */
  /* connect again works and resubscribes */
  assert_int_equal(pusher__conn_connect(t.c, now), 0);
  advance(&t, 0);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\""), 2);
  /* disconnect while waiting for a retry */
  t.mode = M_REFUSE;
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  serve(&t);
  pusher__conn_disconnect(t.c, now);
  advance(&t, 100000);
  assert_int_equal(t.attempts, 1);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_DISCONNECTED);
  t_free(&t);
}

static void test_delegate_cancel_and_delay(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  t.cancel_reconnect = 1;
  clear_log();
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_string_equal(LOG, "err:0:PUSHER_ERR_IO connected>disconnected dlg:disconnect:0:0");
  advance(&t, 100000);
  assert_int_equal(t.attempts, 0);
  t_free(&t);
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  t.set_delay = 1.5;
  clear_log();
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_true(has("in:1.5"));
  t.mode = M_ACCEPT;
  advance(&t, 1499);
  assert_int_equal(t.attempts, 0);
  advance(&t, 1);
  assert_int_equal(t.attempts, 1);
  assert_true(t.will_reconnect_calls >= 1);
  t_free(&t);
}

static void test_connecting_in_jitter(void **st) {
  (void)st;
  const struct {
    uint8_t b;
    double want;
  } cases[] = {{0x00, 2.5}, {0xff, 5.0}, {0x80, 5.0 * (0.5 + 0.5 * (double)0x80808080u / 4294967295.0)}};
  for (size_t i = 0; i < 3; i++) {
    T t;
    t_init(&t);
    t.o.jitter = 1;
    rand_fixed = 1;
    memset(rand_bytes, cases[i].b, 4);
    t_new(&t);
    connect_ok(&t, "1.1", 120);
    clear_log();
    fs_drop(&t.fs, PUSHER_ERR_IO, now);
    const char *p = strstr(LOG, "in:");
    assert_non_null(p);
    double d = atof(p + 3);
    assert_true(fabs(d - cases[i].want) < 1e-4);
    t.mode = M_ACCEPT;
    uint64_t ms = (uint64_t)(cases[i].want * 1000 + 0.5);
    advance(&t, ms - 1);
    assert_int_equal(t.attempts, 0);
    advance(&t, 1);
    assert_int_equal(t.attempts, 1);
    t_free(&t);
  }
}

static void test_backoff_reset(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  /* short-lived connections keep backing off: 5, 10 */
  t.mode = M_ACCEPT;
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  advance(&t, 5000);
  assert_int_equal(t.attempts, 1);
  clear_log();
  advance(&t, 2000); /* up 2 s < 10 s */
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_true(has("in:10"));
  advance(&t, 10000);
  assert_int_equal(t.attempts, 2);
  clear_log();
  advance(&t, 10000); /* stable: >= 2 * reconnect_delay */
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_true(has("in:5"));
  t_free(&t);
}

/* ------------------------------------------------------------------ channels */

static void test_channels_and_bindings(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t.o.max_channels = 3;
  t_new(&t);
  assert_int_equal(pusher__conn_subscribe(t.c, "bad channel!", now), PUSHER_ERR_BAD_CHANNEL_NAME);
  assert_int_equal(pusher__conn_subscribe(t.c, "#server-to-user-1", now), PUSHER_ERR_BAD_CHANNEL_NAME);
  assert_int_equal(pusher__conn_subscribe(t.c, "", now), PUSHER_ERR_BAD_CHANNEL_NAME);
  assert_int_equal(pusher__conn_subscribe(t.c, "a", now), 0);
  assert_int_equal(pusher__conn_subscribe(t.c, "a", now), PUSHER_ERR_EXISTS);
  assert_int_equal(pusher__conn_subscribe(t.c, "b", now), 0);
  assert_int_equal(pusher__conn_subscribe(t.c, "c", now), 0);
  assert_int_equal(pusher__conn_subscribe(t.c, "d", now), PUSHER_ERR_LIMIT);
  assert_int_equal(pusher__conn_unsubscribe(t.c, "c", now), 0);
  assert_int_equal(pusher__conn_unsubscribe(t.c, "zz", now), PUSHER_ERR_NOT_FOUND);
  assert_int_equal(fs_count(&t.fs, "subscribe"), 0); /* nothing sent while not connected */
  connect_ok(&t, "1.1", 120);
  assert_int_equal(fs_count(&t.fs, "\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"a\"}"), 1);
  assert_int_equal(fs_count(&t.fs, "\"channel\":\"b\""), 1);
  pusher_bind_id id1, id2, id3;
  assert_int_equal(pusher__conn_bind(t.c, "a", "e1", on_event, &t, &id1), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", NULL, on_event, &t, &id2), 0);
  assert_int_equal(pusher__conn_bind(t.c, "b", "e1", on_event, &t, &id3), 0);
  assert_true(id1 && id2 && id3 && id1 != id2 && id2 != id3);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"a\",\"data\":\"{}\"}", now);
  /* global + channel-any bindings */
  assert_string_equal(LOG, "ev:a:pusher:subscription_succeeded:{} ev:a:pusher:subscription_succeeded:{}");
  assert_true(pusher__conn_channel_subscribed(t.c, "a"));
  assert_false(pusher__conn_channel_subscribed(t.c, "b"));
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e1\",\"channel\":\"a\",\"data\":\"{\\\"x\\\":1}\"}", now);
  assert_string_equal(LOG, "ev:a:e1:{\"x\":1} ev:a:e1:{\"x\":1} ev:a:e1:{\"x\":1}");
  assert_int_equal(pusher__conn_unbind(t.c, id1), 0);
  assert_int_equal(pusher__conn_unbind(t.c, id1), PUSHER_ERR_NOT_FOUND);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e1\",\"channel\":\"b\",\"data\":\"plain\"}", now);
  assert_string_equal(LOG, "ev:b:e1:plain ev:b:e1:plain");
  /* internal events never reach bindings unmapped; member events exist
   * only on presence channels (a is public: nothing surfaces) */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:member_added\",\"channel\":\"a\",\"data\":\"{\\\"user_id\\\":\\\"u\\\"}\"}", now);
  assert_string_equal(LOG, "");
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:watchlist_events\",\"data\":\"{\\\"events\\\":[]}\"}", now);
  assert_string_equal(LOG, "ev:-:pusher:watchlist_events:{\"events\":[]}");
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:weird\",\"channel\":\"a\"}", now);
  assert_string_equal(LOG, "err:0:PUSHER_ERR_PROTO");
  /* server subscription_error (soketi) */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher:subscription_error\",\"channel\":\"b\",\"data\":{\"type\":\"AuthError\",\"error\":\"bad\",\"status\":401}}", now);
  assert_string_equal(LOG, "ev:b:pusher:subscription_error:{\"type\":\"AuthError\",\"error\":\"bad\",\"status\":401}");
  /* client event with user_id */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"client-x\",\"channel\":\"b\",\"data\":{\"k\":true},\"user_id\":\"u9\"}", now);
  assert_string_equal(LOG, "ev:b:client-x:{\"k\":true}:u=u9");
  /* subscribe while connected is sent at once; unsubscribe sends pusher:unsubscribe */
  assert_int_equal(pusher__conn_subscribe(t.c, "c", now), 0);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"c\"}}");
  assert_int_equal(pusher__conn_unsubscribe(t.c, "a", now), 0);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"a\"}}");
  /* subscription_succeeded for an unknown channel is ignored */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"a\"}", now);
  assert_string_equal(LOG, "");
  /* send_event */
  assert_int_equal(pusher__conn_send_event(t.c, "client-hi", "b", "{\"a\":1}", now), 0);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"client-hi\",\"channel\":\"b\",\"data\":{\"a\":1}}");
  assert_int_equal(pusher__conn_send_event(t.c, "client-hi", "b", "{bad", now), PUSHER_ERR_INVALID_ARGUMENT);
  pusher__conn_disconnect(t.c, now);
  assert_int_equal(pusher__conn_send_event(t.c, "client-hi", "b", NULL, now), PUSHER_ERR_INVALID_STATE);
  /* connection bind validation */
  assert_int_equal(pusher__conn_connection_bind(t.c, "nope", on_conn, &t, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__conn_connection_unbind(t.c, 999999), PUSHER_ERR_NOT_FOUND);
  t_free(&t);
}

static void test_bindings_cap(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t); /* 2 bindings already */
  int rc = 0, n = 2;
  while ((rc = pusher__conn_bind(t.c, "x", "y", on_event, &t, NULL)) == 0) n++;
  assert_int_equal(rc, PUSHER_ERR_LIMIT);
  assert_int_equal(n, 10000);
  t_free(&t);
}

static void test_private_presence_auth(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "private-chat", now);
  connect_ok(&t, "1.1", 120);
  assert_int_equal(t.auth_calls, 1);
  assert_string_equal(t.auth_chan, "private-chat");
  assert_string_equal(t.auth_sid, "1.1");
  assert_int_equal(fs_count(&t.fs, "subscribe"), 0);
  uint64_t r1 = t.auth_req;
  assert_int_equal(pusher__conn_auth_result(t.c, r1, 0, 200, NULL, "app-key:sig", NULL, "c2VjcmV0", now), 0);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"app-key:sig\",\"channel\":\"private-chat\"}}");
  assert_int_equal(fs_count(&t.fs, "c2VjcmV0"), 0); /* shared_secret never sent */
  assert_string_equal(pusher__conn_channel_shared_secret(t.c, "private-chat"), "c2VjcmV0");
  assert_null(pusher__conn_channel_shared_secret(t.c, "nope"));
  /* the same answer again is stale */
  assert_int_equal(pusher__conn_auth_result(t.c, r1, 0, 200, NULL, "app-key:sig", NULL, NULL, now), PUSHER_ERR_NOT_FOUND);
  assert_int_equal(fs_count(&t.fs, "subscribe"), 1);
  /* presence: channel_data included */
  pusher__conn_subscribe(t.c, "presence-room", now);
  assert_int_equal(t.auth_calls, 2);
  pusher__conn_auth_result(t.c, t.auth_req, 0, 200, NULL, "k:s2", "{\"user_id\":\"7\"}", NULL, now);
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"k:s2\",\"channel\":\"presence-room\",\"channel_data\":\"{\\\"user_id\\\":\\\"7\\\"}\"}}");
  /* an auth failure becomes pusher:subscription_error */
  pusher__conn_subscribe(t.c, "private-denied", now);
  clear_log();
  pusher__conn_auth_result(t.c, t.auth_req, PUSHER_ERR_HTTP, 403, "Forbidden", NULL, NULL, NULL, now);
  assert_string_equal(LOG, "ev:private-denied:pusher:subscription_error:{\"type\":\"AuthError\",\"error\":\"Forbidden\",\"status\":403}");
  /* reconnect: every private channel is authorized again for the new socket_id; old answers are stale */
  pusher__conn_subscribe(t.c, "private-late", now);
  uint64_t old = t.auth_req;
  t.mode = M_ACCEPT;
  t.auth_calls = 0;
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  advance(&t, 5000);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  assert_int_equal(t.auth_calls, 4);
  assert_string_equal(t.auth_sid, "100.200");
  fs_clear_msgs(&t.fs);
  assert_int_equal(pusher__conn_auth_result(t.c, old, 0, 200, NULL, "stale", NULL, NULL, now), PUSHER_ERR_NOT_FOUND);
  assert_int_equal(fs_count(&t.fs, "stale"), 0);
  assert_int_equal(pusher__conn_auth_result(t.c, t.auth_req, 0, 200, NULL, "fresh", NULL, NULL, now), 0);
  assert_int_equal(fs_count(&t.fs, "fresh"), 1);
  /* an answer arriving while disconnected is ignored */
  pusher__conn_subscribe(t.c, "private-x", now);
  uint64_t r = t.auth_req;
  pusher__conn_disconnect(t.c, now);
  assert_int_equal(pusher__conn_auth_result(t.c, r, 0, 200, NULL, "late", NULL, NULL, now), PUSHER_ERR_NOT_FOUND);
  t_free(&t);
  /* without the hook: subscription_error */
  t_init(&t);
  assert_int_equal(pusher__conn_new(&t.c, "app-key", &t.o, &t, NULL, NULL), 0);
  pusher__conn_bind(t.c, NULL, NULL, on_event, &t, NULL);
  fs_init(&t.fs, t.c);
  pusher__conn_subscribe(t.c, "private-a", now);
  connect_ok(&t, "1.1", 120);
  assert_true(has("ev:private-a:pusher:subscription_error:{\"type\":\"AuthError\""));
  t_free(&t);
}

/* ------------------------------------------------------------------ re-entrancy */

static void cb_unbind_self(pusher_client *o, const pusher_event *ev, void *ud) {
  T *t = ud;
  logf_("self:%s", ev->event);
  assert_int_equal(pusher__conn_unbind(t->c, t->unbind_me), 0);
}

static void cb_del(pusher_client *o, const pusher_event *ev, void *ud) {
  T *t = ud;
  logf_("del:%s", ev->event);
  pusher__conn_del(t->c);
  assert_true(pusher__conn_is_dead(t->c));
}

static void cb_conn_del(pusher_client *o, const pusher_connection_event *ev, void *ud) {
  T *t = ud;
  if (strcmp(ev->name, "state_change") == 0 && ev->current == PUSHER_STATE_CONNECTING) pusher__conn_del(t->c);
}

static void cb_unsub(pusher_client *o, const pusher_event *ev, void *ud) {
  T *t = ud;
  logf_("unsub:%s", ev->channel);
  assert_int_equal(pusher__conn_unsubscribe(t->c, ev->channel, now), 0);
}

static void cb_err_disconnect(pusher_client *o, const pusher_connection_event *ev, void *ud) {
  T *t = ud;
  if (strcmp(ev->name, "error") == 0) pusher__conn_disconnect(t->c, now);
}

static void test_reentrancy_commands(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "a", now);
  pusher__conn_subscribe(t.c, "b", now);
  connect_ok(&t, "1.1", 120);
  /* answered, so the unsubscribe below is sent at once (an unanswered one
   * waits for the answer: test_unsubscribe_while_subscribe_pending) */
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"a\"}", now);
  pusher__conn_bind(t.c, "a", "bye", cb_unsub, &t, NULL);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"bye\",\"channel\":\"a\"}", now);
  fs_send_text(&t.fs, "{\"event\":\"bye\",\"channel\":\"a\"}", now);
  assert_string_equal(LOG, "ev:a:bye:(null) unsub:a ev:a:bye:(null)");
  assert_string_equal(fs_last(&t.fs), "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"a\"}}");
  /* disconnect from inside the error event of a drop: no reconnect follows */
  pusher__conn_connection_bind(t.c, "error", cb_err_disconnect, &t, NULL);
  t.mode = M_ACCEPT;
  clear_log();
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_DISCONNECTED);
  assert_false(has("in:"));
  advance(&t, 100000);
  assert_int_equal(t.attempts, 0);
  t_free(&t);
}

/* ------------------------------------------------------------------ dispatch index
 * (lib/core/conn_dispatch.c): callbacks in binding order across exact,
 * every-channel, every-event and catch-all bindings; bind, unbind and
 * table growth inside a callback; the index rebuilt after unbinding. */

static pusher_bind_id idx_victim;
static int idx_bind_more;

static void cb_tag(pusher_client *o, const pusher_event *ev, void *ud) {
  (void)o;
  logf_("t:%s:%s", (const char *)ud, ev->event);
}

/* binds 40 more (growing the index table during the delivery) */
static void cb_bind_more(pusher_client *o, const pusher_event *ev, void *ud) {
  (void)o, (void)ud;
  logf_("t:more:%s", ev->event);
  if (!idx_bind_more) return;
  idx_bind_more = 0;
  assert_int_equal(pusher__conn_bind(cur->c, "a", "e", cb_tag, "new", NULL), 0);
  assert_int_equal(pusher__conn_bind(cur->c, NULL, NULL, cb_tag, "newall", NULL), 0);
  for (int i = 0; i < 40; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%d", i);
    assert_int_equal(pusher__conn_bind(cur->c, i % 2 ? "a" : NULL, name, cb_tag, "n", NULL), 0);
  }
}

static void cb_unbind_victim(pusher_client *o, const pusher_event *ev, void *ud) {
  (void)o, (void)ud;
  logf_("t:unbind:%s", ev->event);
  if (idx_victim) assert_int_equal(pusher__conn_unbind(cur->c, idx_victim), 0);
  idx_victim = 0;
}

static void test_dispatch_index(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t); /* a catch-all binding first (on_event) */
  pusher__conn_subscribe(t.c, "a", now);
  connect_ok(&t, "1.1", 120);
  pusher_bind_id five, seven;
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_tag, "1", NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, NULL, "e", cb_tag, "2", NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", NULL, cb_tag, "3", NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, "b", "e", cb_tag, "no-b", NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_tag, "5", &five), 0);
  assert_int_equal(pusher__conn_bind(t.c, NULL, NULL, cb_tag, "6", NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", "other", cb_tag, "no-other", &seven), 0);
  /* 8 bindings: tested in turn (BIX_LINEAR); from the 9th on: the index */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":\"0\"}", now);
  assert_string_equal(LOG, "ev:a:e:0 t:1:e t:2:e t:3:e t:5:e t:6:e");
  assert_int_equal(pusher__conn_user_bind(t.c, "e", cb_tag, "no-user", NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_tag, "9", NULL), 0);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":\"1\"}", now);
  assert_string_equal(LOG, "ev:a:e:1 t:1:e t:2:e t:3:e t:5:e t:6:e t:9:e");
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"other\",\"channel\":\"a\",\"data\":\"1\"}", now);
  assert_string_equal(LOG, "ev:a:other:1 t:3:other t:6:other t:no-other:other");
  /* a channel not in the table: only the bindings naming no channel */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"z\",\"data\":\"1\"}", now);
  assert_string_equal(LOG, "ev:z:e:1 t:2:e t:6:e");

  /* unbinding a later binding from a callback: it does not hear the
   * event; binding from a callback (and growing the table meanwhile):
   * the new ones hear the next event only, in binding order */
  idx_victim = five;
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_unbind_victim, NULL, NULL), 0);
  idx_bind_more = 1;
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_bind_more, NULL, NULL), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_tag, "last", NULL), 0);
  /* move the victim after the unbinder: unbind it and bind it again */
  assert_int_equal(pusher__conn_unbind(t.c, five), 0);
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_tag, "5b", &five), 0);
  idx_victim = five;
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":\"2\"}", now);
  assert_string_equal(LOG, "ev:a:e:2 t:1:e t:2:e t:3:e t:6:e t:9:e t:unbind:e t:more:e t:last:e");
  assert_int_equal(pusher__conn_unbind(t.c, five), PUSHER_ERR_NOT_FOUND);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":\"3\"}", now);
  assert_string_equal(LOG, "ev:a:e:3 t:1:e t:2:e t:3:e t:6:e t:9:e t:unbind:e t:more:e t:last:e t:new:e t:newall:e");
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"f7\",\"channel\":\"a\",\"data\":\"4\"}", now);
  fs_send_text(&t.fs, "{\"event\":\"f8\",\"channel\":\"a\",\"data\":\"4\"}", now);
  assert_string_equal(LOG, "ev:a:f7:4 t:3:f7 t:6:f7 t:newall:f7 t:n:f7 ev:a:f8:4 t:3:f8 t:6:f8 t:newall:f8 t:n:f8");
  /* unbinding outside a callback sweeps and rebuilds the index */
  assert_int_equal(pusher__conn_unbind(t.c, seven), 0);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"other\",\"channel\":\"a\",\"data\":\"5\"}", now);
  assert_string_equal(LOG, "ev:a:other:5 t:3:other t:6:other t:newall:other");
  t_free(&t);

  /* the index first built over bindings that all have their own key */
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "a", now);
  connect_ok(&t, "1.1", 120);
  static const char *tags[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11"};
  /* 9 bindings (the catch-all + k0..k7): 8 chains in the first table; an
   * event without a chain must still end its search */
  for (int n = 8; n <= 12; n += 4) {
    for (int i = n - (n == 8 ? 8 : 4); i < n; i++) {
      char name[16];
      snprintf(name, sizeof name, "k%d", i);
      assert_int_equal(pusher__conn_bind(t.c, "a", name, cb_tag, (void *)tags[i], NULL), 0);
    }
    for (int i = 0; i <= n; i++) {
      char msg[128], want[64];
      snprintf(msg, sizeof msg, "{\"event\":\"k%d\",\"channel\":\"a\",\"data\":\"x\"}", i);
      if (i < n) snprintf(want, sizeof want, "ev:a:k%d:x t:k%d:k%d", i, i, i);
      else snprintf(want, sizeof want, "ev:a:k%d:x", i);
      clear_log();
      fs_send_text(&t.fs, msg, now);
      assert_string_equal(LOG, want);
    }
  }
  t_free(&t);
}

static void test_reentrancy(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "a", now);
  connect_ok(&t, "1.1", 120);
  assert_int_equal(pusher__conn_bind(t.c, "a", "e", cb_unbind_self, &t, &t.unbind_me), 0);
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":\"1\"}", now);
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":\"2\"}", now);
  assert_string_equal(LOG, "ev:a:e:1 self:e ev:a:e:2");
  /* del from inside an event callback, with more frames in the same read */
  pusher__conn_bind(t.c, "a", "boom", cb_del, &t, NULL);
  size_t n1, n2;
  const char *m1 = "{\"event\":\"boom\",\"channel\":\"a\"}", *m2 = "{\"event\":\"after\",\"channel\":\"a\"}";
  uint8_t *f1 = fs_frame(1, m1, strlen(m1), &n1), *f2 = fs_frame(1, m2, strlen(m2), &n2);
  uint8_t both[256];
  memcpy(both, f1, n1);
  memcpy(both + n1, f2, n2);
  clear_log();
  pusher__conn_io_recv(t.c, t.fs.gen, both, n1 + n2, now);
  assert_true(pusher__conn_is_dead(t.c));
  assert_string_equal(LOG, "ev:a:boom:(null) del:boom");
  free(f1);
  free(f2);
  /* every call on a dead engine is harmless */
  assert_int_equal(pusher__conn_connect(t.c, now), PUSHER_ERR_INVALID_STATE);
  pusher__conn_handle_expiry(t.c, now + 1000000);
  assert_int_equal(pusher__conn_expiry(t.c), PUSHER__NEVER);
  pusher__conn_del(t.c); /* the runtime finishes the teardown */
  fs_free(&t.fs);
  /* del from inside a state change caused by a drop */
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  pusher__conn_connection_bind(t.c, NULL, cb_conn_del, &t, NULL);
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_true(pusher__conn_is_dead(t.c));
  pusher__conn_del(t.c);
  fs_free(&t.fs);
  /* disconnect from inside the connected callback */
  t_init(&t);
  t.disconnect_in_cb = 1;
  t_new(&t);
  pusher__conn_connect(t.c, now);
  fs_connect(&t.fs, now, "1.1", 120);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_DISCONNECTED);
  assert_int_equal(t.did_connect, 0);
  advance(&t, 100000);
  assert_int_equal(t.attempts, 0);
  t_free(&t);
}

static void test_stale_generation(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "a", now);
  connect_ok(&t, "1.1", 120);
  uint64_t g1 = t.fs.gen;
  fs_send_close(&t.fs, 4200, "", now);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  uint64_t g2 = t.fs.gen;
  assert_true(g2 > g1);
  clear_log();
  size_t n;
  const char *m = "{\"event\":\"e\",\"channel\":\"a\"}";
  uint8_t *f = fs_frame(1, m, strlen(m), &n);
  pusher__conn_io_recv(t.c, g1, f, n, now);
  pusher__conn_io_failed(t.c, g1, PUSHER_ERR_IO, "late", now);
  pusher__conn_io_opened(t.c, g1, now);
  free(f);
  assert_string_equal(LOG, "");
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  fs_accept(&t.fs, now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"2.2\\\",\\\"activity_timeout\\\":120}\"}", now);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  t_free(&t);
}

/* ------------------------------------------------------------------ bad input */

static void test_bad_input(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  pusher__conn_subscribe(t.c, "a", now);
  connect_ok(&t, "1.1", 120);
  const char *bad[] = {
      "not json", "{", "[]", "\"s\"", "42", "null", "{}", "{\"event\":5}", "{\"event\":[]}",
      "{\"event\":\"e\",\"channel\":5}", "{\"event\":\"e\",\"channel\":true}", "{\"event\":\"e\",\"user_id\":{}}",
      "{\"event\":\"\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) fs_send_text(&t.fs, bad[i], now);
  assert_int_equal(proto_errs, (int)(sizeof bad / sizeof bad[0]));
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  /* data of every type is delivered as text */
  clear_log();
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":5}", now);
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":[1]}", now);
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":true}", now);
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":null}", now);
  assert_string_equal(LOG, "ev:a:e:5 ev:a:e:[1] ev:a:e:true ev:a:e:null");
  /* internal events with wrong data types */
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\",\"data\":5}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\",\"data\":\"text\"}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:error\"}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"data\":[]}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:connection_established\",\"data\":{}}", now);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  /* 10000-deep JSON */
  size_t depth = 10000;
  char *deep = malloc(2 * depth + 64);
  strcpy(deep, "{\"event\":\"e\",\"data\":");
  size_t p = strlen(deep);
  for (size_t i = 0; i < depth; i++) deep[p++] = '[';
  for (size_t i = 0; i < depth; i++) deep[p++] = ']';
  strcpy(deep + p, "}");
  int before = proto_errs;
  fs_send_text(&t.fs, deep, now);
  assert_int_equal(proto_errs, before + 1);
  free(deep);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  /* truncated frame: nothing happens until the rest arrives */
  const char *m = "{\"event\":\"late\",\"channel\":\"a\",\"data\":\"x\"}";
  size_t n;
  uint8_t *f = fs_frame(1, m, strlen(m), &n);
  clear_log();
  fs_send_raw(&t.fs, f, 5, now);
  assert_string_equal(LOG, "");
  fs_send_raw(&t.fs, f + 5, n - 5, now);
  assert_string_equal(LOG, "ev:a:late:x");
  free(f);
  /* invalid UTF-8 in a text frame: a WebSocket error, then reconnect */
  clear_log();
  const char inv[] = "{\"event\":\"\xff\xfe\"}";
  f = fs_frame(1, inv, strlen(inv), &n);
  fs_send_raw(&t.fs, f, n, now);
  free(f);
  assert_true(has("err:0:"));
  assert_true(has("connected>connecting"));
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  t_free(&t);
  /* 1 MiB message: over max_message_size */
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  size_t big = 1 << 20;
  char *msg = malloc(big + 1);
  memset(msg, 'a', big);
  memcpy(msg, "{\"event\":\"e\",\"data\":\"", 21);
  memcpy(msg + big - 2, "\"}", 2);
  msg[big] = '\0';
  clear_log();
  fs_send_text(&t.fs, msg, now);
  free(msg);
  assert_true(has("PUSHER_ERR_MSG_TOO_LARGE"));
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
  t_free(&t);
  /* wrong connection_established data types during the handshake: the attempt fails, not the client */
  const char *hs[] = {
      "{\"event\":\"pusher:connection_established\",\"data\":5}",
      "{\"event\":\"pusher:connection_established\",\"data\":[]}",
      "{\"event\":\"pusher:connection_established\",\"data\":null}",
      "{\"event\":\"pusher:connection_established\",\"data\":\"not json\"}",
      "{\"event\":\"pusher:connection_established\",\"data\":{\"socket_id\":5}}",
      "{\"event\":\"pusher:connection_established\",\"data\":{\"socket_id\":\"\"}}",
      "{\"event\":\"pusher:connection_established\"}",
      "{\"event\":\"something-else\"}",
      "garbage",
  };
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
    t_init(&t);
    t_new(&t);
    pusher__conn_connect(t.c, now);
    fs_io(&t.fs);
    fs_accept(&t.fs, now);
    fs_send_text(&t.fs, hs[i], now);
    assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
    assert_true(has("in:5"));
    t_free(&t);
  }
  /* a bad 101 reply */
  t_init(&t);
  t_new(&t);
  pusher__conn_connect(t.c, now);
  fs_io(&t.fs);
  pusher__conn_io_opened(t.c, t.fs.gen, now);
  const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  pusher__conn_io_recv(t.c, t.fs.gen, (const uint8_t *)resp, strlen(resp), now);
  assert_true(has("in:5"));
  t_free(&t);
}

/* ------------------------------------------------------------------ transcripts */

typedef struct seg {
  char *bytes; /* concatenated server frames */
  size_t len;
  size_t *cuts; /* frame boundaries */
  size_t ncuts;
  char first[300]; /* the first server frame's text */
} seg;

static void feed_segment(const seg *s, size_t split, int *events) {
  T t;
  t_init(&t);
  t_new(&t);
  const char *chans[] = {"my-channel", "private-chat", "presence-room", "public-chan", "private-big", "bin-chan"};
  for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) pusher__conn_subscribe(t.c, chans[i], now);
  pusher__conn_connect(t.c, now);
  fs_io(&t.fs);
  fs_accept(&t.fs, now);
  if (split == (size_t)-1) {
    for (size_t i = 0; i + 1 < s->ncuts; i++) {
      fs_send_raw(&t.fs, s->bytes + s->cuts[i], s->cuts[i + 1] - s->cuts[i], now);
      if (t.auth_req) pusher__conn_auth_result(t.c, t.auth_req, 0, 200, NULL, "k:s", NULL, NULL, now);
    }
  } else {
    if (split) fs_send_raw(&t.fs, s->bytes, split, now);
    if (split < s->len) fs_send_raw(&t.fs, s->bytes + split, s->len - split, now);
  }
  advance(&t, 1000);
  assert_true(pusher__conn_state(t.c) <= PUSHER_STATE_DISCONNECTED);
  /* sane events: the handshake outcome follows the first frame */
  if (strstr(s->first, "\"pusher:connection_established\"")) {
    assert_true(has("connecting>connected"));
  } else if (strstr(s->first, "\"pusher:error\"")) {
    const char *cp = strstr(s->first, "\"code\":");
    int code = cp ? atoi(cp + 7) : 0;
    assert_false(has(">connected"));
    if ((code >= 4001 && code <= 4099) || code >= 4300) {
      assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_DISCONNECTED);
      char want[64];
      snprintf(want, sizeof want, "err:%d:PUSHER_ERR_CLOSED:fatal", code);
      assert_true(has(want));
    } else {
      assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTING);
    }
  }
  if (proto_errs) print_error("unexpected protocol error: %s\n", LOG);
  assert_int_equal(proto_errs, 0);
  *events += (int)(strlen(LOG) > 0);
  t_free(&t);
}

static void test_transcripts(void **st) {
  (void)st;
  DIR *d = opendir(PUSHER_TRANSCRIPTS_DIR);
  assert_non_null(d);
  struct dirent *de;
  int files = 0, frames = 0, segments = 0, events = 0;
  while ((de = readdir(d))) {
    size_t nl = strlen(de->d_name);
    if (nl < 5 || strcmp(de->d_name + nl - 4, ".txt") != 0) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", PUSHER_TRANSCRIPTS_DIR, de->d_name);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    files++;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    seg s = {0};
    int more = 1;
    while (more) {
      got = getline(&line, &cap, fp);
      int boundary = got < 0 || strncmp(line, "# --- ", 6) == 0;
      if (boundary && s.ncuts > 1) {
        segments++;
        feed_segment(&s, (size_t)-1, &events);
        for (size_t k = 0; k <= s.len; k++) feed_segment(&s, k, &events);
      }
      if (boundary) {
        free(s.bytes);
        free(s.cuts);
        memset(&s, 0, sizeof s);
      }
      if (got < 0) {
        more = 0;
        continue;
      }
      if (strncmp(line, "S> ", 3) != 0) continue;
      size_t tl = strlen(line + 3);
      while (tl && (line[3 + tl - 1] == '\n' || line[3 + tl - 1] == '\r')) tl--;
      size_t fl;
      uint8_t *f = fs_frame(1, line + 3, tl, &fl);
      s.bytes = realloc(s.bytes, s.len + fl);
      memcpy(s.bytes + s.len, f, fl);
      free(f);
      if (!s.ncuts) {
        snprintf(s.first, sizeof s.first, "%.*s", (int)tl, line + 3);
        s.cuts = realloc(s.cuts, sizeof *s.cuts);
        s.cuts[s.ncuts++] = 0;
      }
      s.len += fl;
      s.cuts = realloc(s.cuts, (s.ncuts + 1) * sizeof *s.cuts);
      s.cuts[s.ncuts++] = s.len;
      frames++;
    }
    free(line);
    fclose(fp);
  }
  closedir(d);
  print_message("transcripts: %d files, %d server frames, %d connections replayed (whole + every split)\n", files,
                frames, segments);
  assert_true(files >= 10);
  assert_true(frames >= 100);
  assert_true(events > 0);
}


/* ------------------------------------------------------------------ out of memory */

static long fm_left; /* allocations left before failing; < 0 = never fail */
static long fm_count;

static int fm_ok(void) {
  fm_count++;
  if (fm_left < 0) return 1;
  if (fm_left == 0) return 0;
  fm_left--;
  return 1;
}
static void *fm_malloc(size_t n, void *u) { return fm_ok() ? malloc(n) : NULL; }
static void fm_free(void *p, void *u) { free(p); }
static void *fm_calloc(size_t n, size_t sz, void *u) { return fm_ok() ? calloc(n, sz) : NULL; }
static void *fm_realloc(void *p, size_t n, void *u) { return fm_ok() ? realloc(p, n) : NULL; }

static void fm_scenario(void) {
  static const pusher_mem mem = {NULL, fm_malloc, fm_free, fm_calloc, fm_realloc};
  T t;
  t_init(&t);
  t.o.mem = &mem;
  pusher__conn_hooks h = {hook_auth};
  if (pusher__conn_new(&t.c, "app-key", &t.o, &t, &h, &t) != 0) return;
  pusher__conn_connection_bind(t.c, NULL, on_conn, &t, NULL);
  pusher__conn_bind(t.c, NULL, NULL, on_event, &t, NULL);
  pusher__conn_bind(t.c, "a", "e", on_event, &t, NULL);
  fs_init(&t.fs, t.c);
  pusher__conn_subscribe(t.c, "a", now);
  pusher__conn_subscribe(t.c, "private-b", now);
  t.mode = M_ACCEPT;
  pusher__conn_connect(t.c, now);
  advance(&t, 0);
  if (t.auth_req) pusher__conn_auth_result(t.c, t.auth_req, 0, 200, NULL, "k:s", NULL, "c2VjcmV0", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"a\"}", now);
  fs_send_text(&t.fs, "{\"event\":\"e\",\"channel\":\"a\",\"data\":{\"x\":[1,2,3]}}", now);
  fs_send_text(&t.fs, "{\"event\":\"pusher:ping\"}", now);
  fs_send_text(&t.fs, "bad", now);
  pusher__conn_send_event(t.c, "client-x", "private-b", "{\"a\":1}", now);
  fs_send_close(&t.fs, 4200, "", now);
  advance(&t, 1000);
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  advance(&t, 20000);
  pusher__conn_unsubscribe(t.c, "a", now);
  pusher__conn_disconnect(t.c, now);
  serve(&t);
  t_free(&t);
}

static void test_out_of_memory(void **st) {
  (void)st;
  fm_left = -1;
  fm_count = 0;
  fm_scenario();
  long total = fm_count;
  assert_true(total > 10);
  for (long i = 0; i < total; i++) {
    fm_left = i;
    fm_scenario(); /* must not crash or leak (ASan/valgrind) */
  }
  fm_left = -1;
  print_message("out of memory: failed each of %ld allocations in turn\n", total);
}

/* A server may send 100 pings a second, counted apart for WebSocket pings
 * and pusher:ping messages; one more in the same second fails the
 * connection (error, then the usual back-off).  A new second, a new budget. */
static void ping_flood(int websocket) {
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  static const uint8_t wsping[2] = {0x89, 0x00};
  static const char pping[] = "{\"event\":\"pusher:ping\",\"data\":{}}";
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 100; i++) {
      if (websocket) fs_send_raw(&t.fs, wsping, sizeof wsping, now);
      else fs_send_text(&t.fs, pping, now);
    }
    assert_int_equal(err_events, 0);
    advance(&t, 1000);
  }
  for (int i = 0; i < 100; i++) {
    if (websocket) fs_send_raw(&t.fs, wsping, sizeof wsping, now);
    else fs_send_text(&t.fs, pping, now);
  }
  advance(&t, 999);
  assert_int_equal(err_events, 0);
  clear_log();
  if (websocket) fs_send_raw(&t.fs, wsping, sizeof wsping, now);
  else fs_send_text(&t.fs, pping, now);
  assert_int_equal(err_events, 1);
  if (websocket) {
    assert_true(has("err:0:PUSHER_ERR_WEBSOCKET"));
    assert_string_equal(last_err_msg, "ping flood: more than 100 WebSocket pings in a second");
  } else {
    assert_true(has("err:0:PUSHER_ERR_PROTO"));
    assert_string_equal(last_err_msg, "pusher:ping flood: more than 100 in a second");
  }
  assert_true(has("connected>connecting"));
  assert_true(has("in:5"));
  t_free(&t);
}

static void test_ping_flood_websocket(void **st) {
  (void)st;
  ping_flood(1);
}

static void test_ping_flood_pusher(void **st) {
  (void)st;
  ping_flood(0);
}

/* An abrupt end of the stream says where it cut: inside a frame, or in
 * the WebSocket handshake; between frames the transport's words stand. */
static void test_cut_detail(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  fs_send_raw(&t.fs, "\x81\x05he", 4, now);
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_string_equal(last_err_msg, "connection reset in the middle of a frame");
  t_free(&t);

  t_init(&t);
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  fs_drop(&t.fs, PUSHER_ERR_IO, now);
  assert_string_equal(last_err_msg, "connection reset");
  t_free(&t);

  t_init(&t);
  t_new(&t);
  assert_int_equal(pusher__conn_connect(t.c, now), 0);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  pusher__conn_io_opened(t.c, t.fs.gen, now);
  pusher__conn_io_failed(t.c, t.fs.gen, PUSHER_ERR_IO, "connection closed by peer", now);
  assert_string_equal(last_err_msg, "connection closed by peer during the WebSocket handshake");
  t_free(&t);
}

/* A server asking for activity_timeout 0.001 (and answering every ping at
 * once) would be pinged in a loop; the server's value is floored at 1 s. */
static void test_server_activity_floor(void **st) {
  (void)st;
  T t;
  t_init(&t);
  t.o.activity_timeout = 120;
  t_new(&t);
  assert_int_equal(pusher__conn_connect(t.c, now), 0);
  assert_int_equal(fs_io(&t.fs), PUSHER__IO_OPEN);
  assert_int_equal(fs_accept(&t.fs, now), 0);
  fs_send_text(&t.fs,
               "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"1.1\\\","
               "\\\"activity_timeout\\\":0.001}\"}",
               now);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  size_t answered = 0;
  for (int step = 0; step < 100; step++) { /* 10 s in 100 ms steps */
    advance(&t, 100);
    for (size_t n = fs_count(&t.fs, "pusher:ping"); answered < n; answered++)
      fs_send_text(&t.fs, "{\"event\":\"pusher:pong\",\"data\":{}}", now);
  }
  assert_true(answered >= 9);
  assert_true(answered <= 10);
  assert_int_equal(err_events, 0);
  assert_int_equal(pusher__conn_state(t.c), PUSHER_STATE_CONNECTED);
  t_free(&t);

  /* the client's own shorter setting still applies */
  t_init(&t);
  t.o.activity_timeout = 0.5;
  t_new(&t);
  connect_ok(&t, "1.1", 120);
  advance(&t, 501);
  assert_int_equal(fs_count(&t.fs, "pusher:ping"), 1);
  t_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_states_and_url),
      cmocka_unit_test(test_default_host_tls_cluster_path),
      cmocka_unit_test(test_seq_connected_connecting_connected),
      cmocka_unit_test(test_seq_close_frame_below_4000),
      cmocka_unit_test(test_seq_unavailable_and_back),
      cmocka_unit_test(test_seq_initialized_failed),
      cmocka_unit_test(test_4000_switches_to_tls),
      cmocka_unit_test(test_fatal_4001_and_4004),
      cmocka_unit_test(test_4300_fatal),
      cmocka_unit_test(test_4100_backoff),
      cmocka_unit_test(test_4200_no_storm),
      cmocka_unit_test(test_pusher_error_established),
      cmocka_unit_test(test_ping_pong_timing),
      cmocka_unit_test(test_server_ping),
      cmocka_unit_test(test_ping_flood_websocket),
      cmocka_unit_test(test_ping_flood_pusher),
      cmocka_unit_test(test_cut_detail),
      cmocka_unit_test(test_server_activity_floor),
      cmocka_unit_test(test_connect_timeout),
      cmocka_unit_test(test_set_network),
      cmocka_unit_test(test_disconnect),
      cmocka_unit_test(test_delegate_cancel_and_delay),
      cmocka_unit_test(test_connecting_in_jitter),
      cmocka_unit_test(test_backoff_reset),
      cmocka_unit_test(test_channels_and_bindings),
      cmocka_unit_test(test_unsubscribe_while_subscribe_pending),
      cmocka_unit_test(test_bindings_cap),
      cmocka_unit_test(test_private_presence_auth),
      cmocka_unit_test(test_reentrancy),
      cmocka_unit_test(test_dispatch_index),
      cmocka_unit_test(test_reentrancy_commands),
      cmocka_unit_test(test_stale_generation),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_transcripts),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
