/* The threaded mode under concurrency: several threads subscribe,
 * unsubscribe, bind, unbind and query while the scripted server streams
 * events; one thread finally disconnects and the main thread deletes.
 * Meant to be run in a -DPUSHER_TSAN=ON build (it also runs, and must pass,
 * in every other build). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pusher/pusher.h>
#include <uv.h>

#define RT_FAKE_WS_NO_MAIN
#include "../tools/rt_fake_ws.c"

#define WORKERS 4
#define ROUNDS 300

static atomic_long n_events, n_conn_events, n_nested;
static atomic_int connected_flag;

typedef struct worker {
  pusher_client *c;
  int idx;
  uv_thread_t t;
  int errors;
} worker;

static void on_tick(pusher_client *c, const pusher_event *ev, void *user) {
  long n = atomic_fetch_add(&n_events, 1);
  /* calls back into the API from the loop thread while others call it too */
  if (n % 64 == 0) {
    (void)pusher_channel_subscribed(c, ev->channel);
    char sid[64];
    (void)pusher_client_socket_id(c, sid, sizeof(sid));
    atomic_fetch_add(&n_nested, 1);
  }
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *user) {
  atomic_fetch_add(&n_conn_events, 1);
  if (!strcmp(ev->name, "state_change") && ev->current == PUSHER_STATE_CONNECTED)
    atomic_store(&connected_flag, 1);
}

static void worker_main(void *arg) {
  worker *w = arg;
  char ch[32];
  snprintf(ch, sizeof(ch), "tsan-%d", w->idx);
  for (int i = 0; i < ROUNDS; i++) {
    pusher_bind_id id = 0, cid = 0;
    if (pusher_subscribe(w->c, ch) != 0) w->errors++;
    if (pusher_bind(w->c, ch, "tick", on_tick, w, &id) != 0) w->errors++;
    if (pusher_connection_bind(w->c, "state_change", on_conn, w, &cid) != 0) w->errors++;
    usleep(500);
    (void)pusher_client_state(w->c);
    (void)pusher_channel_subscribed(w->c, ch);
    char sid[64];
    (void)pusher_client_socket_id(w->c, sid, sizeof(sid));
    if (pusher_unbind(w->c, id) != 0) w->errors++;
    if (pusher_connection_unbind(w->c, cid) != 0) w->errors++;
    if (pusher_unsubscribe(w->c, ch) != 0) w->errors++;
    if (i % 50 == 0) (void)pusher_client_set_network(w->c, 1);
  }
  /* leave a subscription behind so events keep flowing until the end */
  if (pusher_subscribe(w->c, ch) != 0) w->errors++;
  if (pusher_bind(w->c, ch, NULL, on_tick, w, NULL) != 0) w->errors++;
}

static void disconnect_main(void *arg) {
  pusher_client *c = arg;
  (void)pusher_client_disconnect(c);
}

static void test_threads(void **state) {
  rtfs *srv = rtfs_start();
  rtfs_set_greet(srv, 0);
  rtfs_set_stream(srv, 1);
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = "127.0.0.1";
  o.ws_port = srv->port;
  o.reconnect_delay = 0.1;
  pusher_client *c = NULL;
  assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
  assert_int_equal(pusher_connection_bind(c, NULL, on_conn, NULL, NULL), 0);
  assert_int_equal(pusher_client_connect(c), 0);
  for (int i = 0; i < 5000 && !atomic_load(&connected_flag); i++) usleep(1000);
  assert_true(atomic_load(&connected_flag));

  worker w[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    w[i].c = c;
    w[i].idx = i;
    w[i].errors = 0;
    assert_int_equal(uv_thread_create(&w[i].t, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < WORKERS; i++) uv_thread_join(&w[i].t);
  for (int i = 0; i < WORKERS; i++) assert_int_equal(w[i].errors, 0);
  long before = atomic_load(&n_events);
  for (int i = 0; i < 5000 && atomic_load(&n_events) < before + 20; i++) usleep(1000);
  assert_true(atomic_load(&n_events) >= before + 20);

  uv_thread_t dt;
  assert_int_equal(uv_thread_create(&dt, disconnect_main, c), 0);
  uv_thread_join(&dt);
  for (int i = 0; i < 2000 && pusher_client_state(c) != PUSHER_STATE_DISCONNECTED; i++) usleep(1000);
  assert_int_equal(pusher_client_state(c), PUSHER_STATE_DISCONNECTED);
  pusher_client_del(c);
  fprintf(stderr, "events %ld, nested API calls %ld, connection events %ld, server subscribes %ld\n",
          atomic_load(&n_events), atomic_load(&n_nested), atomic_load(&n_conn_events),
          rtfs_count(srv, "sub"));
  rtfs_set_stream(srv, 0);
  rtfs_stop(srv);
}

/* Delete from a foreign thread while events are flowing. */
static void test_del_while_flowing(void **state) {
  rtfs *srv = rtfs_start();
  rtfs_set_greet(srv, 0);
  rtfs_set_stream(srv, 1);
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = "127.0.0.1";
  o.ws_port = srv->port;
  o.auto_connect = 1;
  for (int k = 0; k < 5; k++) {
    pusher_client *c = NULL;
    assert_int_equal(pusher_client_new(&c, "app-key", &o), 0);
    for (int i = 0; i < 4; i++) {
      char ch[16];
      snprintf(ch, sizeof(ch), "tsan-%d", i);
      assert_int_equal(pusher_subscribe(c, ch), 0);
      assert_int_equal(pusher_bind(c, ch, NULL, on_tick, NULL, NULL), 0);
    }
    usleep((useconds_t)(k * 10000));
    pusher_client_del(c);
  }
  rtfs_set_stream(srv, 0);
  rtfs_stop(srv);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_del_while_flowing),
  };
  return cmocka_run_group_tests_name("client_tsan", tests, NULL, NULL);
}
