/* The pusherd server core's HTTP API (pd_rest_handle, request -> response):
 * every route, its exact JSON response and status, bad input included, and
 * what subscribers receive (recording sinks, server_rec.h).  Requests are
 * signed with lib/core/sign.h at the core's fixed wall clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server_rec.h"

static pd_config cfg;
static pd_core core;
static char out[4096];

static int setup(void **st) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->max_event_data = 50;
  a->max_batch = 2;
  a->max_channels_per_event = 3;
  a->max_event_name = 10;
  pd_config_add_app(&cfg, a);
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

/* An unsigned request. */
static int raw(const char *method, const char *url, const char *body) {
  pd_http_response r;
  pd_rest_handle(&core, method, url, strlen(url), body ? body : "", body ? strlen(body) : 0, &r);
  snprintf(out, sizeof out, "%.*s", (int)r.len, r.body ? r.body : "");
  pd_free(r.body);
  return r.status;
}

#define REST(m, p, q, b) rec_rest(&core, m, p, q, b, out, sizeof out)

static void test_health_and_routing(void **st) {
  assert_int_equal(raw("GET", "/", NULL), 200);
  assert_string_equal(out, "{\"ok\":true}");
  assert_int_equal(raw("GET", "/health", NULL), 200);
  assert_int_equal(raw("HEAD", "/ready", NULL), 200);
  assert_int_equal(raw("POST", "/health", NULL), 405);
  assert_string_equal(out, "{\"error\":\"Method not allowed\"}");
  pd_core_set_draining(&core, 1);
  assert_int_equal(raw("GET", "/ready", NULL), 503);
  assert_string_equal(out, "{\"error\":\"Shutting down\"}");
  assert_int_equal(raw("GET", "/health", NULL), 200);
  pd_core_set_draining(&core, 0);
  assert_int_equal(raw("OPTIONS", "/apps/app-id/events", NULL), 200);
  assert_string_equal(out, "{}");
  assert_int_equal(raw("GET", "/nope", NULL), 404);
  assert_string_equal(out, "{\"error\":\"Not found\"}");
  assert_int_equal(raw("GET", "/apps/none/channels", NULL), 404);
  assert_string_equal(out, "{\"error\":\"Unknown app\"}");
  /* unsigned / wrongly signed */
  assert_int_equal(raw("GET", "/apps/app-id/channels", NULL), 401);
  assert_non_null(strstr(out, "{\"error\":\""));
  assert_int_equal(raw("GET", "/apps/app-id/channels?auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"
                              "&auth_signature=00",
                       NULL),
                   401);
  /* signed but stale: more than 600 s off */
  pd_core_set_time(&core, 5000, 1700000000 + 601);
  char *q = NULL;
  pusher__rest_sign(NULL, "GET", "/apps/app-id/channels", NULL, 0, NULL, 0, "app-key", "app-secret", 1700000000,
                    &q, NULL);
  char url[512];
  snprintf(url, sizeof url, "/apps/app-id/channels?%s", q);
  pusher__free(NULL, q);
  assert_int_equal(raw("GET", url, NULL), 401);
  pd_core_set_time(&core, 5000, 1700000000);
  /* signed, unknown sub-route, wrong methods */
  assert_int_equal(REST("GET", "/apps/app-id/nothing", NULL, NULL), 404);
  assert_int_equal(REST("GET", "/apps/app-id/events", NULL, NULL), 405);
  assert_string_equal(out, "{\"error\":\"Use POST\"}");
  assert_int_equal(REST("POST", "/apps/app-id/channels", NULL, "{}"), 405);
  assert_string_equal(out, "{\"error\":\"Use GET\"}");
  assert_int_equal(REST("GET", "/apps/app-id/batch_events", NULL, NULL), 405);
  assert_int_equal(REST("GET", "/apps/app-id/users/u/terminate_connections", NULL, NULL), 405);
  assert_int_equal(REST("POST", "/apps/app-id/channels/x/users", NULL, "{}"), 405);
}

static void test_disabled_app(void **st) {
  char *q = NULL;
  pusher__rest_sign(NULL, "GET", "/apps/dis-id/channels", NULL, 0, NULL, 0, "dis-key", "dis-secret", 1700000000,
                    &q, NULL);
  char url[512];
  snprintf(url, sizeof url, "/apps/dis-id/channels?%s", q);
  pusher__free(NULL, q);
  assert_int_equal(raw("GET", url, NULL), 403);
  assert_string_equal(out, "{\"error\":\"Application is disabled\"}");
}

/* Pusher reserves event names starting with pusher: and pusher_internal:. */
#define RESERVED                                                                                   \
  "{\"error\":\"Invalid event name: names starting with 'pusher:' or 'pusher_internal:' are reserved by " \
  "Pusher\"}"

static void test_events(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  rec_text(b, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  assert_int_equal(REST("POST", "/apps/app-id/events", NULL, "{\"name\":\"flash\",\"channel\":\"news\",\"data\":\"hi\"}"),
                   200);
  assert_string_equal(out, "{}");
  const char *ev = "{\"event\":\"flash\",\"channel\":\"news\",\"data\":\"hi\"}";
  assert_string_equal(rec_frame(a, -1), ev);
  assert_string_equal(rec_frame(b, -1), ev);
  /* non-string data is sent as its JSON text; socket_id excludes b */
  char body[256];
  snprintf(body, sizeof body, "{\"name\":\"e2\",\"channels\":[\"news\",\"other\"],\"data\":{\"k\":1},\"socket_id\":\"%s\","
           "\"info\":\"subscription_count\"}", b->s.socket_id);
  assert_int_equal(REST("POST", "/apps/app-id/events", NULL, body), 200);
  assert_string_equal(out, "{\"channels\":{\"news\":{\"subscription_count\":2},\"other\":{\"subscription_count\":0}}}");
  assert_string_equal(rec_frame(a, -1), "{\"event\":\"e2\",\"channel\":\"news\",\"data\":\"{\\\"k\\\":1}\"}");
  assert_string_equal(rec_frame(b, -1), ev);
  static const struct {
    const char *body;
    int status;
    const char *out;
  } bad[] = {
      {"nope", 400, "{\"error\":\"The body must be a JSON object\"}"},
      {"[]", 400, "{\"error\":\"The event must be a JSON object\"}"},
      {"{\"channel\":\"news\",\"data\":\"x\"}", 400, "{\"error\":\"Missing or invalid \\\"name\\\" (a non-empty string)\"}"},
      {"{\"name\":\"abcdefghijk\",\"channel\":\"news\",\"data\":\"x\"}", 400,
       "{\"error\":\"Invalid event name: too long (10 bytes at most)\"}"},
      {"{\"name\":\"pusher:x\",\"channel\":\"news\",\"data\":\"x\"}", 400, RESERVED},
      {"{\"name\":\"pusher_internal:member_added\",\"channel\":\"news\",\"data\":\"x\"}", 400, RESERVED},
      {"{\"name\":\"e\",\"channel\":\"news\"}", 400, "{\"error\":\"Missing \\\"data\\\"\"}"},
      {"{\"name\":\"e\",\"channel\":\"news\",\"data\":\"0123456789012345678901234567890123456789012345678901\"}", 413,
       "{\"error\":\"Event data too large: 52 bytes (max 50)\"}"},
      {"{\"name\":\"e\",\"data\":\"x\"}", 400, "{\"error\":\"Missing \\\"channel\\\" or \\\"channels\\\"\"}"},
      {"{\"name\":\"e\",\"channel\":\"a\",\"channels\":[\"b\"],\"data\":\"x\"}", 400,
       "{\"error\":\"Give either \\\"channel\\\" or \\\"channels\\\", not both\"}"},
      {"{\"name\":\"e\",\"channels\":[],\"data\":\"x\"}", 400,
       "{\"error\":\"\\\"channels\\\" must be a non-empty array of channel names\"}"},
      {"{\"name\":\"e\",\"channels\":[\"a\",\"b\",\"c\",\"d\"],\"data\":\"x\"}", 400,
       "{\"error\":\"Too many channels: 4 (max 3)\"}"},
      {"{\"name\":\"e\",\"channel\":\"bad name\",\"data\":\"x\"}", 400,
       "{\"error\":\"Channel at position 0: Invalid channel name: use 1 to 200 of A-Z a-z 0-9 _ - = @ , . ;\"}"},
      {"{\"name\":\"e\",\"channels\":[\"ok\",7],\"data\":\"x\"}", 400,
       "{\"error\":\"Channel at position 1: not a string\"}"},
      {"{\"name\":\"e\",\"channels\":[\"private-encrypted-a\",\"b\"],\"data\":\"x\"}", 400,
       "{\"error\":\"An event for a private-encrypted- channel must target exactly one channel\"}"},
      {"{\"name\":\"e\",\"channel\":\"a\",\"data\":\"x\",\"socket_id\":\"1.2:x\"}", 400,
       "{\"error\":\"Invalid socket_id: expected digits.digits (64 bytes at most)\"}"},
      {"{\"name\":\"e\",\"channel\":\"a\",\"data\":\"x\",\"info\":\"colour\"}", 400,
       "{\"error\":\"Invalid \\\"info\\\": allowed attributes are user_count and subscription_count\"}"},
  };
  size_t na = a->total;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(REST("POST", "/apps/app-id/events", NULL, bad[i].body), bad[i].status);
    assert_string_equal(out, bad[i].out);
  }
  assert_int_equal(a->total, na); /* nothing delivered */
  rec_free(a);
  rec_free(b);
}

static void test_batch(void **st) {
  rec *a = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "presence-p", "{\"user_id\":\"u1\"}");
  assert_int_equal(REST("POST", "/apps/app-id/batch_events", NULL,
                        "{\"batch\":[{\"name\":\"a\",\"channel\":\"presence-p\",\"data\":\"1\",\"info\":\"user_count\"},"
                        "{\"name\":\"b\",\"channel\":\"x\",\"data\":\"2\"}]}"),
                   200);
  assert_string_equal(out, "{\"batch\":[{\"user_count\":1},{}]}");
  assert_string_equal(rec_frame(a, -1), "{\"event\":\"a\",\"channel\":\"presence-p\",\"data\":\"1\"}");
  assert_int_equal(REST("POST", "/apps/app-id/batch_events", NULL, "{\"batch\":[]}"), 200);
  assert_string_equal(out, "{}");
  assert_int_equal(REST("POST", "/apps/app-id/batch_events", NULL,
                        "{\"batch\":[{\"name\":\"a\",\"channel\":\"x\",\"data\":\"1\"},{\"name\":\"a\",\"channel\":\"x\","
                        "\"data\":\"1\"},{\"name\":\"a\",\"channel\":\"x\",\"data\":\"1\"}]}"),
                   400);
  assert_string_equal(out, "{\"error\":\"Batch too large: 3 events (max 2)\"}");
  assert_int_equal(REST("POST", "/apps/app-id/batch_events", NULL, "{\"events\":[]}"), 400);
  assert_string_equal(out, "{\"error\":\"The body must be {\\\"batch\\\":[...]}\"}");
  /* a reserved name anywhere in the batch: nothing of it is published */
  size_t n0 = a->total;
  assert_int_equal(REST("POST", "/apps/app-id/batch_events", NULL,
                        "{\"batch\":[{\"name\":\"a\",\"channel\":\"presence-p\",\"data\":\"1\"},{\"name\":\"pusher:b\","
                        "\"channel\":\"x\",\"data\":\"2\"}]}"),
                   400);
  assert_string_equal(out, RESERVED);
  assert_int_equal(a->total, n0);
  /* one bad event: nothing of the batch is published */
  size_t n = a->total;
  assert_int_equal(REST("POST", "/apps/app-id/batch_events", NULL,
                        "{\"batch\":[{\"name\":\"a\",\"channel\":\"presence-p\",\"data\":\"1\"},{\"name\":\"b\","
                        "\"channels\":[\"x\"],\"data\":\"2\"}]}"),
                   400);
  assert_string_equal(out, "{\"error\":\"A batch event takes exactly one \\\"channel\\\"\"}");
  assert_int_equal(a->total, n);
  rec_free(a);
}

static void test_channels_queries(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  rec_subscribe_signed(a, "presence-p", "{\"user_id\":\"u1\"}");
  rec_subscribe_signed(b, "presence-p", "{\"user_id\":\"u2\"}");
  assert_int_equal(REST("GET", "/apps/app-id/channels", NULL, NULL), 200);
  assert_true(strcmp(out, "{\"channels\":{\"news\":{},\"presence-p\":{}}}") == 0 ||
              strcmp(out, "{\"channels\":{\"presence-p\":{},\"news\":{}}}") == 0);
  assert_int_equal(REST("GET", "/apps/app-id/channels", "filter_by_prefix=presence-&info=user_count", NULL), 200);
  assert_string_equal(out, "{\"channels\":{\"presence-p\":{\"user_count\":2}}}");
  assert_int_equal(REST("GET", "/apps/app-id/channels", "info=user_count", NULL), 400);
  assert_string_equal(out, "{\"error\":\"info=user_count is only allowed with filter_by_prefix=presence-\"}");
  assert_int_equal(REST("GET", "/apps/app-id/channels", "info=bogus", NULL), 400);
  /* one channel */
  assert_int_equal(REST("GET", "/apps/app-id/channels/presence-p", "info=user_count,subscription_count", NULL), 200);
  assert_string_equal(out, "{\"user_count\":2,\"subscription_count\":2,\"occupied\":true}");
  assert_int_equal(REST("GET", "/apps/app-id/channels/empty", NULL, NULL), 200);
  assert_string_equal(out, "{\"occupied\":false}");
  assert_int_equal(REST("GET", "/apps/app-id/channels/news", "info=user_count", NULL), 400);
  assert_string_equal(out, "{\"error\":\"info=user_count is only available for presence- channels\"}");
  assert_int_equal(REST("GET", "/apps/app-id/channels/news", "info=cache", NULL), 400);
  assert_string_equal(out, "{\"error\":\"info=cache is only available for cache channels\"}");
  /* cache */
  assert_int_equal(pd_publish(core.apps[0], "cache-c", "e", "kept", NULL), 0);
  pd_core_set_time(&core, 5000, 1700000000 + 100);
  assert_int_equal(REST("GET", "/apps/app-id/channels/cache-c", "info=cache", NULL), 200);
  assert_string_equal(out, "{\"occupied\":false,\"cache\":{\"data\":\"kept\",\"ttl\":1700}}");
  /* users */
  assert_int_equal(REST("GET", "/apps/app-id/channels/presence-p/users", NULL, NULL), 200);
  assert_true(strcmp(out, "{\"users\":[{\"id\":\"u1\"},{\"id\":\"u2\"}]}") == 0 ||
              strcmp(out, "{\"users\":[{\"id\":\"u2\"},{\"id\":\"u1\"}]}") == 0);
  assert_int_equal(REST("GET", "/apps/app-id/channels/news/users", NULL, NULL), 400);
  assert_string_equal(out, "{\"error\":\"Users are only available for presence- channels\"}");
  rec_free(a);
  rec_free(b);
}

static void test_terminate(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_signin(a, "{\"id\":\"ann\"}");
  assert_int_equal(REST("POST", "/apps/app-id/users/ann/terminate_connections", NULL, "{}"), 200);
  assert_string_equal(out, "{}");
  assert_int_equal(a->close_code, 4009);
  assert_string_equal(a->close_reason, "You got disconnected by the app");
  assert_int_equal(b->closes, 0);
  assert_int_equal(REST("POST", "/apps/app-id/users/nobody/terminate_connections", NULL, "{}"), 200);
  rec_free(a);
  rec_free(b);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_health_and_routing), T(test_disabled_app), T(test_events),
      T(test_batch),              T(test_channels_queries), T(test_terminate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
