/* Unit tests for pusherd's Redis adapter (src/server/adapter/redis.c) without
 * a Redis: the --redis URL parser, and the replicated remote view driven by
 * injected messages on an offline adapter (pd_redis_new_offline), seen
 * through recording sinks (tests/unit/server_rec.h):
 * presence member_added/member_removed only on the first join / last leave
 * across nodes, occupancy and member counts, node expiry by "bye",
 * socket_id exclusion of remote events, own messages ignored, and the
 * messages a node publishes for its local changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PUSHERD_HAVE_HIREDIS
#include "adapter/pd_redis.h"
#include "server_rec.h"

/* ------------------------------------------------------------ URL */
static void test_parse_url(void **st) {
  char *host, *pw, err[200];
  int port, db;
  assert_int_equal(pd_redis_parse_url("redis://127.0.0.1:7800/3", &host, &port, &pw, &db, err, sizeof err), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 7800);
  assert_int_equal(db, 3);
  assert_null(pw);
  pd_free(host);
  assert_int_equal(pd_redis_parse_url("redis://:s3cret@example.org", &host, &port, &pw, &db, err, sizeof err), 0);
  assert_string_equal(host, "example.org");
  assert_int_equal(port, 6379);
  assert_int_equal(db, 0);
  assert_string_equal(pw, "s3cret");
  pd_free(host);
  pd_free(pw);
  assert_int_equal(pd_redis_parse_url("user:pw@h:1", &host, &port, &pw, &db, err, sizeof err), 0);
  assert_string_equal(host, "h");
  assert_string_equal(pw, "pw");
  assert_int_equal(port, 1);
  pd_free(host);
  pd_free(pw);
  assert_int_equal(pd_redis_parse_url("redis://", &host, &port, &pw, &db, err, sizeof err), 0);
  assert_string_equal(host, "127.0.0.1");
  pd_free(host);
  const char *bad[] = {"http://h:1", "redis://h:0", "redis://h:70000", "redis://h:x", "redis://h:1/x", "redis://h:1/-1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(pd_redis_parse_url(bad[i], &host, &port, &pw, &db, err, sizeof err), -1);
}

/* ------------------------------------------------------------ remote view */
static pd_config cfg;
static pd_core core;
static pd_redis *rd;
static json_t *tapped; /* array of published messages */

static void tap(const char *channel, const char *message) {
  assert_string_equal(channel, "pusherd:app-id");
  json_array_append_new(tapped, json_loads(message, 0, NULL));
}

static int setup(void **st) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->subscription_count = 1;
  a->user_auth = 1;
  pd_config_add_app(&cfg, a);
  assert_int_equal(pd_core_init(&core, &cfg, &pd_adapter_local, NULL), 0);
  pd_core_set_time(&core, 1000, 1700000000);
  assert_int_equal(pd_redis_new_offline(&rd, &core, 1111111111ull), 0);
  assert_ptr_equal(core.ad, &pd_adapter_redis);
  tapped = json_array();
  pd_redis_tap = tap;
  return 0;
}
static int teardown(void **st) {
  pd_redis_tap = NULL;
  pd_redis_free(rd);
  assert_ptr_equal(core.ad, &pd_adapter_local);
  pd_core_free(&core);
  pd_config_free(&cfg);
  json_decref(tapped);
  return 0;
}

/* Sessions get socket ids "1111111111.<n>" (the node number). */
static rec *conn(void) { return rec_open(&core, "app-key"); }

static void join_presence(rec *c, const char *channel, const char *user) {
  char cd[128];
  snprintf(cd, sizeof cd, "{\"user_id\":\"%s\",\"user_info\":{\"n\":1}}", user);
  rec_subscribe_signed(c, channel, cd);
}

static void send_text(rec *c, const char *s) { rec_text(c, s); }

/* the last tapped message of type t */
static json_t *last_of(const char *t) {
  for (size_t i = json_array_size(tapped); i-- > 0;) {
    json_t *m = json_array_get(tapped, i);
    if (strcmp(json_string_value(json_object_get(m, "t")), t) == 0) return m;
  }
  return NULL;
}

static void inject(const char *s) { pd_redis_inject(rd, core.apps[0], s); }

static void test_presence_across_nodes(void **st) {
  pd_app *app = core.apps[0];
  rec *a = conn();
  join_presence(a, "presence-room", "u1");
  /* published: our subscription count and u1's first join */
  json_t *sub = last_of("sub"), *mj = last_of("mj");
  assert_non_null(sub);
  assert_non_null(mj);
  assert_string_equal(json_string_value(json_object_get(sub, "n")), "1111111111");
  assert_int_equal(json_integer_value(json_object_get(sub, "k")), 1);
  assert_string_equal(json_string_value(json_object_get(mj, "u")), "u1");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(mj, "i"), "n")), 1);

  /* node 2222 reports u2 on the channel: member_added to a */
  size_t before = a->total;
  inject("{\"t\":\"state\",\"n\":\"2222\",\"r\":1,\"s\":{\"presence-room\":1,\"other\":4},"
         "\"p\":{\"presence-room\":{\"u2\":{\"x\":2}}}}");
  assert_int_equal(a->total, before + 1);
  /* r=1: we answered with our state */
  json_t *st_ = last_of("state");
  assert_non_null(st_);
  assert_int_equal(json_integer_value(json_object_get(st_, "r")), 0);
  assert_non_null(json_object_get(json_object_get(json_object_get(st_, "p"), "presence-room"), "u1"));
  assert_int_equal(pd_channel_total_members(app, "presence-room"), 2);
  assert_int_equal(pd_channel_total_subs(app, "presence-room"), 2);
  assert_int_equal(pd_channel_total_subs(app, "other"), 4);
  assert_true(pd_adapter_redis.member_remote(app, "presence-room", "u2", rd));
  assert_false(pd_adapter_redis.member_remote(app, "presence-room", "u1", rd));

  /* the presence list of a new subscriber has both */
  pd_channel *ch = pd_channel_get(app, "presence-room", 0);
  json_t *pj = pd_channel_presence_json(ch);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(pj, "presence"), "count")), 2);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(json_object_get(json_object_get(pj, "presence"), "hash"), "u2"), "x")),
                   2);
  json_decref(pj);

  /* u2 also on node 3333: no second member_added; u1 on 3333: none either */
  before = a->total;
  inject("{\"t\":\"mj\",\"n\":\"3333\",\"c\":\"presence-room\",\"u\":\"u2\",\"i\":null}");
  inject("{\"t\":\"mj\",\"n\":\"3333\",\"c\":\"presence-room\",\"u\":\"u1\",\"i\":null}");
  assert_int_equal(a->total, before);
  assert_int_equal(pd_channel_total_members(app, "presence-room"), 2);
  /* u2 leaves 2222 (still on 3333): nothing; 3333 says bye: member_removed u2 only */
  inject("{\"t\":\"ml\",\"n\":\"2222\",\"c\":\"presence-room\",\"u\":\"u2\"}");
  assert_int_equal(a->total, before);
  inject("{\"t\":\"bye\",\"n\":\"3333\"}");
  assert_int_equal(a->total, before + 1);
  assert_int_equal(pd_channel_total_members(app, "presence-room"), 1);
  /* our own messages are ignored */
  inject("{\"t\":\"mj\",\"n\":\"1111111111\",\"c\":\"presence-room\",\"u\":\"u9\",\"i\":null}");
  assert_int_equal(pd_channel_total_members(app, "presence-room"), 1);

  /* remote-only channels for GET /channels, with a prefix */
  json_t *l = json_object();
  pd_adapter_redis.remote_channels(app, NULL, l, rd);
  assert_non_null(json_object_get(l, "other"));
  assert_non_null(json_object_get(l, "presence-room"));
  json_object_clear(l);
  pd_adapter_redis.remote_channels(app, "oth", l, rd);
  assert_int_equal(json_object_size(l), 1);
  json_decref(l);

  /* leaving locally publishes ml and the new count */
  pd_session_leave_all(&a->s);
  assert_string_equal(json_string_value(json_object_get(last_of("ml"), "u")), "u1");
  assert_int_equal(json_integer_value(json_object_get(last_of("sub"), "k")), 0);
  rec_free(a);
}

static void test_events_across_nodes(void **st) {
  pd_app *app = core.apps[0];
  rec *a = conn(), *b = conn();
  send_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  send_text(b, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  size_t ba = a->total, bb = b->total;
  /* a remote REST event excluding b's socket */
  assert_string_equal(b->s.socket_id, "1111111111.2000008");
  inject("{\"t\":\"ev\",\"n\":\"2222\",\"c\":\"news\",\"e\":\"flash\",\"d\":\"{}\",\"x\":\"1111111111.2000008\"}");
  assert_int_equal(a->total, ba + 1);
  assert_int_equal(b->total, bb);
  /* a remote client event frame */
  inject("{\"t\":\"fr\",\"n\":\"2222\",\"c\":\"news\",\"f\":\"{\\\"event\\\":\\\"client-x\\\"}\",\"x\":\"9.9\"}");
  assert_int_equal(a->total, ba + 2);
  assert_int_equal(b->total, bb + 1);
  /* a remote subscription count change reaches local subscribers as a
   * subscription_count event when the app has them on */
  inject("{\"t\":\"sub\",\"n\":\"2222\",\"c\":\"news\",\"k\":3}");
  assert_int_equal(a->total, ba + 3);
  assert_int_equal(pd_channel_total_subs(app, "news"), 5);
  /* garbage is ignored */
  inject("not json");
  inject("{\"t\":1}");
  inject("{\"t\":\"ev\",\"n\":\"2222\"}");
  inject("{\"t\":\"ev\",\"n\":\"2222\",\"c\":\"bad channel!\",\"e\":\"x\",\"d\":\"\"}");
  assert_int_equal(a->total, ba + 3);
  /* a cache channel event from another node is cached here too */
  inject("{\"t\":\"ev\",\"n\":\"2222\",\"c\":\"cache-x\",\"e\":\"e\",\"d\":\"kept\"}");
  pd_channel *cc = pd_channel_get(app, "cache-x", 0);
  assert_non_null(cc);
  assert_string_equal(cc->cached_json, "kept");
  /* a local REST-style publish is announced with the excluded socket */
  pd_adapter_redis.event(app, "news", "e", "d", a->s.socket_id, rd);
  json_t *ev = last_of("ev");
  assert_string_equal(json_string_value(json_object_get(ev, "x")), a->s.socket_id);
  rec_free(a);
  rec_free(b);
}

static void signin(rec *c, const char *user_data) { rec_signin(c, user_data); }

static void test_users_across_nodes(void **st) {
  pd_app *app = core.apps[0];
  /* dave is online on node 2222 before wendy signs in here */
  inject("{\"t\":\"uo\",\"n\":\"2222\",\"u\":\"dave\"}");
  assert_true(pd_adapter_redis.user_remote(app, "dave", rd));
  rec *w = conn();
  size_t before = w->total;
  signin(w, "{\"id\":\"wendy\",\"watchlist\":[\"dave\",\"erin\"]}");
  /* signin_success + the initial online list (dave) */
  assert_int_equal(w->total, before + 2);
  assert_string_equal(json_string_value(json_object_get(last_of("uo"), "u")), "wendy");
  /* dave also on 3333: no second "online"; erin comes online on 3333: one */
  before = w->total;
  inject("{\"t\":\"uo\",\"n\":\"3333\",\"u\":\"dave\"}");
  assert_int_equal(w->total, before);
  inject("{\"t\":\"uo\",\"n\":\"3333\",\"u\":\"erin\"}");
  assert_int_equal(w->total, before + 1);
  /* dave leaves 2222 (still on 3333): nothing; 3333 goes: dave and erin offline */
  inject("{\"t\":\"uf\",\"n\":\"2222\",\"u\":\"dave\"}");
  assert_int_equal(w->total, before + 1);
  inject("{\"t\":\"bye\",\"n\":\"3333\"}");
  assert_int_equal(w->total, before + 3);
  assert_false(pd_adapter_redis.user_remote(app, "dave", rd));
  /* a state snapshot listing dave online: online again */
  inject("{\"t\":\"state\",\"n\":\"4444\",\"r\":0,\"s\":{},\"p\":{},\"o\":[\"dave\"]}");
  assert_int_equal(w->total, before + 4);
  rec_free(w);
  assert_string_equal(json_string_value(json_object_get(last_of("uf"), "u")), "wendy");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_url),
      cmocka_unit_test_setup_teardown(test_presence_across_nodes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_across_nodes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_users_across_nodes, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
/* pusherd built without hiredis: the Redis adapter is not built at all
 * (main refuses --redis); nothing to test here. */
int main(void) {
  printf("server_cluster_test: built without hiredis, skipped\n");
  return 0;
}
#endif
