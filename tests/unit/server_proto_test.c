/* The pusherd server core (src/server/core) as a client sees it: every
 * protocol-7 message from a client, and the frames and closes the core
 * sends back, byte for byte, through recording sinks (server_rec.h).  Fixed
 * clock and randomness: socket ids are "1000000001.<seq*1000003+2>". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server_rec.h"

static pd_config cfg;
static pd_core core;

static int setup(void **st) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->max_presence_members = 2;
  a->max_event_data = 100;
  a->client_event_rate = 3;
  a->max_user_id = 8;
  pd_config_add_app(&cfg, a);
  pd_app_cfg *off = pd_app_cfg_new("off-id", "off-key", "off-secret");
  off->client_events = 0;
  off->user_auth = 0;
  pd_config_add_app(&cfg, off);
  pd_app_cfg *dis = pd_app_cfg_new("dis-id", "dis-key", "dis-secret");
  dis->enabled = 0;
  pd_config_add_app(&cfg, dis);
  assert_int_equal(rec_core_start(&core, &cfg), 0);
  return 0;
}
static int teardown(void **st) {
  rec_core_stop(&core, &cfg);
  return 0;
}

#define LAST(r) rec_frame(r, -1)
#define ERR(msg) "{\"event\":\"pusher:error\",\"data\":{\"code\":null,\"message\":\"" msg "\"}}"
#define ERRC(ch, msg) "{\"event\":\"pusher:error\",\"channel\":\"" ch "\",\"data\":{\"code\":null,\"message\":\"" msg "\"}}"

/* ------------------------------------------------------------ connect */
static void test_connect(void **st) {
  rec *a = rec_open(&core, "app-key");
  assert_int_equal(a->n, 1);
  assert_string_equal(a->s.socket_id, "1000000001.1000005");
  assert_string_equal(LAST(a), "{\"event\":\"pusher:connection_established\",\"data\":"
                               "\"{\\\"socket_id\\\":\\\"1000000001.1000005\\\",\\\"activity_timeout\\\":120}\"}");
  assert_ptr_equal(pd_core_find_session(&core, core.apps[0], "1000000001.1000005"), &a->s);
  rec_free(a);
  assert_null(pd_core_find_session(&core, core.apps[0], "1000000001.1000005"));

  static const struct {
    const char *path;
    int code;
    const char *reason;
  } refused[] = {
      {"/app/nope?protocol=7", 4001, "Application does not exist"},
      {"/app/dis-key?protocol=7", 4003, "Application is disabled"},
      {"/apps/app-key?protocol=7", 4005, "Path not found"},
      {"/app/app-key/x?protocol=7", 4005, "Path not found"},
      {"/app/app-key", 4008, "No protocol version supplied"},
      {"/app/app-key?protocol=seven", 4006, "Invalid version string format"},
      {"/app/app-key?protocol=6", 4007, "Unsupported protocol version (this server speaks protocol 7)"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    rec r = {0};
    pd_session_init(&r.s, &core, &rec_sink, &r);
    assert_int_equal(pd_session_open(&r.s, refused[i].path, 1, 2), refused[i].code);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.close_code, refused[i].code);
    assert_string_equal(r.close_reason, refused[i].reason);
    assert_int_equal(r.n, 0);
    rec_clear(&r);
  }
  /* draining: 4200 */
  pd_core_set_draining(&core, 1);
  rec *d = rec_open(&core, "app-key");
  assert_int_equal(d->close_code, 4200);
  rec_free(d);
  pd_core_set_draining(&core, 0);
  assert_int_equal(core.apps[0]->connections, 0);
}

static void test_quota(void **st) {
  ((pd_app_cfg *)cfg.apps[0])->max_connections = 1;
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  assert_int_equal(a->closes, 0);
  assert_int_equal(b->close_code, 4004);
  assert_string_equal(b->close_reason, "Application is over its connection quota");
  rec_free(b);
  rec_free(a);
}

/* ------------------------------------------------------------ ping, unknown, malformed */
static void test_ping_and_malformed(void **st) {
  rec *a = rec_open(&core, "app-key");
  rec_text(a, "{\"event\":\"pusher:ping\",\"data\":{}}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher:pong\",\"data\":{}}");
  size_t n = a->n;
  rec_text(a, "{\"event\":\"pusher:pong\",\"data\":{}}");
  assert_int_equal(a->n, n); /* no answer */
  pd_session_ping(&a->s);
  assert_string_equal(LAST(a), "{\"event\":\"pusher:ping\",\"data\":{}}");
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"{", ERR("Invalid message: not valid JSON")},
      {"[1]", ERR("Invalid message: must be a JSON object")},
      {"{\"data\":{}}", ERR("Invalid message: \\\"event\\\" must be a string")},
      {"{\"event\":\"pusher:nope\"}", ERR("Unknown event \\\"pusher:nope\\\"")},
      {"{\"event\":\"pusher:subscribe\",\"data\":\"x\"}", ERR("Invalid pusher:subscribe: data must be an object")},
      {"{\"event\":\"pusher:subscribe\",\"data\":{}}", ERR("Invalid pusher:subscribe: data.channel must be a string")},
      {"{\"event\":\"pusher:unsubscribe\"}", ERR("Invalid pusher:unsubscribe: data.channel must be a string")},
      {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
       ERR("Invalid message: JSON nested too deeply")},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    rec_text(a, cases[i].in);
    assert_string_equal(LAST(a), cases[i].out);
  }
  /* over the app's data cap + 4096 */
  char big[4300];
  memset(big, ' ', sizeof big - 1);
  big[0] = '{', big[sizeof big - 2] = '}', big[sizeof big - 1] = 0;
  rec_text(a, big);
  assert_string_equal(LAST(a), "{\"event\":\"pusher:error\",\"data\":{\"code\":4301,\"message\":\"Message too large\"}}");
  pd_session_on_binary(&a->s, (const uint8_t *)"{}", 2);
  assert_string_equal(LAST(a), ERR("Binary frames are not supported: send JSON text frames"));
  /* unsubscribing from a channel never joined: nothing */
  n = a->n;
  rec_text(a, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"never\"}}");
  assert_int_equal(a->n, n);
  assert_int_equal(a->closes, 0);
  rec_free(a);
}

/* ------------------------------------------------------------ subscribe */
static void test_subscribe_public_and_count(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  assert_string_equal(rec_frame(a, -2),
                      "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"news\",\"data\":\"{}\"}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher_internal:subscription_count\",\"channel\":\"news\","
                               "\"data\":\"{\\\"subscription_count\\\":1}\"}");
  rec_text(b, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  const char *two = "{\"event\":\"pusher_internal:subscription_count\",\"channel\":\"news\","
                    "\"data\":\"{\\\"subscription_count\\\":2}\"}";
  assert_string_equal(LAST(a), two);
  assert_string_equal(LAST(b), two);
  rec_text(b, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"news\"}}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher_internal:subscription_count\",\"channel\":\"news\","
                               "\"data\":\"{\\\"subscription_count\\\":1}\"}");
  /* bad names, with the configured limit in the message */
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"bad channel\"}}");
  assert_string_equal(LAST(a), ERR("Invalid channel name: use 1 to 200 of A-Z a-z 0-9 _ - = @ , . ;"));
  /* a NUL inside a JSON string never gets that far: jansson refuses it */
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"a\\u0000b\"}}");
  assert_string_equal(LAST(a), ERR("Invalid message: not valid JSON"));
  /* server-to-user: only when signed in as that user */
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"#server-to-user-u1\"}}");
  assert_string_equal(LAST(a), ERRC("#server-to-user-u1",
                                    "Subscribing to #server-to-user- requires signing in as that user"));
  rec_free(a);
  rec_free(b);
}

static void test_subscribe_private(void **st) {
  rec *a = rec_open(&core, "app-key");
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-x\"}}");
  assert_string_equal(LAST(a), ERRC("private-x", "Missing auth: private and presence channels need data.auth"));
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-x\",\"auth\":\"app-key:00\"}}");
  assert_string_equal(LAST(a), ERRC("private-x", "Invalid signature: expected HMAC SHA256 hex digest of "
                                                 "1000000001.1000005:private-x"));
  rec_subscribe_signed(a, "private-x", NULL);
  assert_string_equal(rec_frame(a, -2),
                      "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"private-x\",\"data\":\"{}\"}");
  /* a second subscribe to the same channel is answered again, not joined twice */
  rec_subscribe_signed(a, "private-x", NULL);
  assert_string_equal(LAST(a),
                      "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"private-x\",\"data\":\"{}\"}");
  assert_int_equal(pd_channel_get(core.apps[0], "private-x", 0)->nsubs, 1);
  /* encrypted channels sign like private ones */
  rec_subscribe_signed(a, "private-encrypted-y", NULL);
  assert_string_equal(rec_frame(a, -2), "{\"event\":\"pusher_internal:subscription_succeeded\","
                                        "\"channel\":\"private-encrypted-y\",\"data\":\"{}\"}");
  rec_free(a);
}

static void test_subscribe_presence(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key"), *c = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "presence-r", "{\"user_id\":\"u1\",\"user_info\":{\"n\":1}}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"presence-r\","
                               "\"data\":\"{\\\"presence\\\":{\\\"ids\\\":[\\\"u1\\\"],\\\"hash\\\":{\\\"u1\\\":"
                               "{\\\"n\\\":1}},\\\"count\\\":1}}\"}");
  rec_subscribe_signed(b, "presence-r", "{\"user_id\":7}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher_internal:member_added\",\"channel\":\"presence-r\","
                               "\"data\":\"{\\\"user_id\\\":\\\"7\\\"}\"}");
  /* over the member limit (2) */
  rec_subscribe_signed(c, "presence-r", "{\"user_id\":\"u3\"}");
  assert_string_equal(LAST(c), ERRC("presence-r", "Presence channel is full (member limit reached)"));
  /* channel_data problems, with configured limits */
  rec_subscribe_signed(c, "presence-q", "{\"user_id\":\"123456789\"}");
  assert_string_equal(LAST(c), ERRC("presence-q", "Invalid channel_data: user_id longer than 8 characters"));
  rec_subscribe_signed(c, "presence-q", "{\"id\":1}");
  assert_string_equal(LAST(c), ERRC("presence-q", "Invalid channel_data: a JSON object with a non-empty user_id is "
                                                  "required"));
  rec_text(c, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"presence-q\",\"auth\":\"app-key:0\"}}");
  assert_string_equal(LAST(c), ERRC("presence-q", "Missing channel_data: presence channels need data.channel_data "
                                                  "(a JSON string)"));
  /* the last socket of a user leaving: member_removed to the others */
  rec_text(b, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"presence-r\"}}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher_internal:member_removed\",\"channel\":\"presence-r\","
                               "\"data\":\"{\\\"user_id\\\":\\\"7\\\"}\"}");
  rec_free(a);
  rec_free(b);
  rec_free(c);
}

static void test_cache_channel(void **st) {
  rec *a = rec_open(&core, "app-key");
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"cache-x\"}}");
  assert_string_equal(rec_frame(a, -2), "{\"event\":\"pusher:cache_miss\",\"channel\":\"cache-x\"}");
  assert_int_equal(pd_publish(core.apps[0], "cache-x", "ev", "{\"v\":1}", NULL), 0);
  const char *ev = "{\"event\":\"ev\",\"channel\":\"cache-x\",\"data\":\"{\\\"v\\\":1}\"}";
  assert_string_equal(LAST(a), ev);
  rec *b = rec_open(&core, "app-key");
  rec_text(b, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"cache-x\"}}");
  /* the cached event right after subscription_succeeded */
  assert_string_equal(rec_frame(b, -3),
                      "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"cache-x\",\"data\":\"{}\"}");
  assert_string_equal(rec_frame(b, -2), ev);
  /* past the TTL: a miss again */
  rec *c = rec_open(&core, "app-key");
  pd_core_set_time(&core, 5000, 1700000000 + 1800);
  rec_text(c, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"cache-x\"}}");
  assert_string_equal(rec_frame(c, -2), "{\"event\":\"pusher:cache_miss\",\"channel\":\"cache-x\"}");
  rec_free(a);
  rec_free(b);
  rec_free(c);
}

/* ------------------------------------------------------------ client events */
static void test_client_events(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "presence-c", "{\"user_id\":\"ua\"}");
  rec_subscribe_signed(b, "presence-c", "{\"user_id\":\"ub\"}");
  rec_text(a, "{\"event\":\"client-hi\",\"channel\":\"presence-c\",\"data\":{\"x\":1}}");
  /* relayed to the others with user_id, not echoed */
  assert_string_equal(LAST(b), "{\"event\":\"client-hi\",\"channel\":\"presence-c\",\"data\":{\"x\":1},\"user_id\":\"ua\"}");
  assert_string_not_equal(LAST(a), LAST(b));
  /* rate: 3 per second here (the first counted above) */
  rec_text(a, "{\"event\":\"client-hi\",\"channel\":\"presence-c\",\"data\":2}");
  rec_text(a, "{\"event\":\"client-hi\",\"channel\":\"presence-c\",\"data\":3}");
  rec_text(a, "{\"event\":\"client-hi\",\"channel\":\"presence-c\",\"data\":4}");
  assert_string_equal(LAST(a), "{\"event\":\"pusher:error\",\"channel\":\"presence-c\",\"data\":{\"code\":4301,"
                               "\"message\":\"Client event rejected: rate limit of 3 per second exceeded\"}}");
  pd_core_set_time(&core, 6000, 1700000001); /* a new window */
  char big[200];
  snprintf(big, sizeof big, "{\"event\":\"client-big\",\"channel\":\"presence-c\",\"data\":\"%0101d\"}", 0);
  rec_text(a, big);
  assert_string_equal(LAST(a), "{\"event\":\"pusher:error\",\"channel\":\"presence-c\",\"data\":{\"code\":4301,"
                               "\"message\":\"Client event rejected: data larger than 100 bytes\"}}");
  rec_text(a, "{\"event\":\"client-x\",\"channel\":\"public\",\"data\":{}}");
  assert_string_equal(LAST(a), ERRC("public", "Client events are only allowed on private- and presence- channels"));
  rec_text(a, "{\"event\":\"client-x\",\"channel\":\"private-encrypted-z\",\"data\":{}}");
  assert_string_equal(LAST(a), ERRC("private-encrypted-z", "Client events are not supported on private-encrypted- "
                                                           "channels"));
  rec_text(a, "{\"event\":\"client-x\",\"channel\":\"private-not-joined\",\"data\":{}}");
  assert_string_equal(LAST(a), ERRC("private-not-joined", "Client event rejected: the connection is not subscribed "
                                                          "to the channel"));
  rec_text(a, "{\"event\":\"client-x\",\"data\":{}}");
  assert_string_equal(LAST(a), ERR("Invalid client event: channel must be a string"));
  /* an app with client events off */
  rec *o = rec_open(&core, "off-key");
  rec_text(o, "{\"event\":\"client-x\",\"channel\":\"private-a\",\"data\":{}}");
  assert_string_equal(LAST(o), ERRC("private-a", "To send client events, you must enable this feature for the app"));
  rec_free(o);
  rec_free(a);
  rec_free(b);
}

/* ------------------------------------------------------------ sign-in, users, watchlists */
static void test_signin(void **st) {
  rec *w = rec_open(&core, "app-key"), *d = rec_open(&core, "app-key");
  rec_signin(w, "{\"id\":\"wendy\",\"watchlist\":[\"dave\",\"erin\"]}");
  assert_string_equal(LAST(w), "{\"event\":\"pusher:signin_success\",\"data\":{\"user_data\":"
                               "\"{\\\"id\\\":\\\"wendy\\\",\\\"watchlist\\\":[\\\"dave\\\",\\\"erin\\\"]}\"}}");
  rec_signin(d, "{\"id\":\"dave\"}");
  assert_string_equal(LAST(w), "{\"event\":\"pusher_internal:watchlist_events\",\"data\":"
                               "\"{\\\"events\\\":[{\\\"name\\\":\\\"online\\\",\\\"user_ids\\\":[\\\"dave\\\"]}]}\"}");
  /* a server-to-user event reaches every session of the user */
  assert_int_equal(pd_publish(core.apps[0], "#server-to-user-dave", "note", "hi", NULL), 0);
  assert_string_equal(LAST(d), "{\"event\":\"note\",\"channel\":\"#server-to-user-dave\",\"data\":\"hi\"}");
  /* the user's own server-to-user channel may be subscribed to */
  rec_text(d, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"#server-to-user-dave\"}}");
  assert_string_equal(rec_frame(d, -2), "{\"event\":\"pusher_internal:subscription_succeeded\","
                               "\"channel\":\"#server-to-user-dave\",\"data\":\"{}\"}");
  /* terminate: 4009 close for dave's sessions */
  assert_int_equal(pd_user_terminate_local(core.apps[0], "dave"), 1);
  assert_int_equal(d->close_code, 4009);
  assert_string_equal(d->close_reason, "You got disconnected by the app");
  assert_string_equal(LAST(w), "{\"event\":\"pusher_internal:watchlist_events\",\"data\":"
                               "\"{\\\"events\\\":[{\\\"name\\\":\\\"offline\\\",\\\"user_ids\\\":[\\\"dave\\\"]}]}\"}");
  /* another id on the same connection */
  rec_signin(w, "{\"id\":\"walter\"}");
  assert_string_equal(LAST(w), ERR("This connection is already signed in as another user"));
  /* a bad signature closes with 4009 */
  rec *m = rec_open(&core, "app-key");
  rec_text(m, "{\"event\":\"pusher:signin\",\"data\":{\"user_data\":\"{\\\"id\\\":\\\"x\\\"}\",\"auth\":\"app-key:ff\"}}");
  assert_int_equal(m->close_code, 4009);
  assert_string_equal(m->close_reason, "Connection not authorized: invalid sign-in signature");
  /* sign-in off for the app */
  rec *o = rec_open(&core, "off-key");
  rec_signin(o, "{\"id\":\"x\"}");
  assert_string_equal(LAST(o), ERR("User authentication is not enabled for this app"));
  rec_free(o);
  rec_free(m);
  rec_free(d);
  rec_free(w);
}

/* A presence subscription without channel_data when signed in: the member
 * is the signed-in user. */
static void test_presence_via_signin(void **st) {
  rec *a = rec_open(&core, "app-key");
  rec_signin(a, "{\"id\":\"sam\",\"user_info\":{\"k\":2}}");
  rec_subscribe_signed(a, "presence-s", NULL);
  assert_string_equal(rec_frame(a, -1), "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":"
                                        "\"presence-s\",\"data\":\"{\\\"presence\\\":{\\\"ids\\\":[\\\"sam\\\"],"
                                        "\\\"hash\\\":{\\\"sam\\\":{\\\"k\\\":2}},\\\"count\\\":1}}\"}");
  rec_free(a);
}

/* ------------------------------------------------------------ socket index, many subscribers */
/* The socket index (core.c) through its growth: every open session is found
 * by its id, under its app only; ended ones are gone; pd_core_sessions
 * lists each once.  Subscribing the k-th socket to a channel costs the same
 * for every k: past 100 subscribers the others get nothing (the count
 * update is deferred, docs/protocol.md), and each session holds one
 * subscription slot. */
static void test_socket_index_and_many_subscribers(void **st) {
  enum { N = 300 };
  rec *r[N];
  for (int i = 0; i < N; i++) {
    r[i] = rec_open(&core, "app-key");
    rec_text(r[i], "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"many\"}}");
    assert_string_equal(rec_frame(r[i], 1),
                        "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"many\",\"data\":\"{}\"}");
    assert_int_equal(r[i]->s.subs_alloc, 1);
  }
  pd_channel *ch = pd_channel_get(core.apps[0], "many", 0);
  assert_non_null(ch);
  assert_int_equal(ch->nsubs, N);
  /* the first subscriber got a count for each of the first 100 joins (its
   * own included), none since: joining did not touch the other sockets */
  size_t got = r[0]->total;
  rec_text(r[N - 1], "{\"event\":\"pusher:ping\",\"data\":{}}");
  assert_int_equal(r[0]->total, got);
  assert_int_equal(got, 2 + 100); /* connection_established, subscription_succeeded, counts */
  pd_session *all[N + 1];
  assert_int_equal(pd_core_sessions(&core, all, N + 1), N);
  for (int i = 0; i < N; i++) {
    assert_ptr_equal(pd_core_find_session(&core, core.apps[0], r[i]->s.socket_id), &r[i]->s);
    assert_null(pd_core_find_session(&core, core.apps[1], r[i]->s.socket_id));
    int seen = 0;
    for (int j = 0; j < N; j++) seen += all[j] == &r[i]->s;
    assert_int_equal(seen, 1);
  }
  char gone[N][48];
  for (int i = 0; i < N; i += 2) {
    snprintf(gone[i], sizeof gone[i], "%s", r[i]->s.socket_id);
    rec_free(r[i]);
    r[i] = NULL;
  }
  assert_int_equal(pd_core_sessions(&core, NULL, 0), N / 2);
  assert_int_equal(ch->nsubs, N / 2);
  for (int i = 0; i < N; i++) {
    if (r[i]) assert_ptr_equal(pd_core_find_session(&core, core.apps[0], r[i]->s.socket_id), &r[i]->s);
    else assert_null(pd_core_find_session(&core, core.apps[0], gone[i]));
  }
  for (int i = 1; i < N; i += 2) rec_free(r[i]);
  assert_int_equal(pd_core_sessions(&core, NULL, 0), 0);
  assert_null(pd_channel_get(core.apps[0], "many", 0));
  assert_int_equal(core.apps[0]->connections, 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_connect),         T(test_quota),     T(test_ping_and_malformed),
      T(test_subscribe_public_and_count), T(test_subscribe_private), T(test_subscribe_presence),
      T(test_cache_channel),   T(test_client_events), T(test_signin),
      T(test_presence_via_signin), T(test_socket_index_and_many_subscribers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
