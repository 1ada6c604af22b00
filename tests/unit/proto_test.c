/* Unit tests: Pusher frame codec (lib/core/proto.c) and option helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/mem.h"
#include "core/options.h"
#include "core/proto.h"

static int decode(const char *s, pusher__msg *m) {
  char why[200];
  return pusher__proto_decode(NULL, s, strlen(s), m, why, sizeof why);
}

static void test_decode_double_encoded(void **st) {
  (void)st;
  pusher__msg m;
  assert_int_equal(decode("{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"1.2\\\",\\\"activity_timeout\\\":120}\"}", &m), 0);
  assert_string_equal(m.event, "pusher:connection_established");
  assert_null(m.channel);
  assert_string_equal(m.data, "{\"socket_id\":\"1.2\",\"activity_timeout\":120}");
  assert_int_equal(m.data_len, strlen(m.data));
  assert_true(m.data_is_json);
  assert_true(m.data_was_string);
  pusher__msg_free(NULL, &m);
}

static void test_decode_object_string_absent(void **st) {
  (void)st;
  pusher__msg m;
  assert_int_equal(decode("{\"event\":\"pusher:error\",\"data\":{\"code\":4001,\"message\":\"x\"}}", &m), 0);
  assert_string_equal(m.data, "{\"code\":4001,\"message\":\"x\"}");
  assert_true(m.data_is_json);
  assert_false(m.data_was_string);
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode("{\"event\":\"e\",\"channel\":\"c\",\"data\":\"hello world\",\"user_id\":\"u1\"}", &m), 0);
  assert_string_equal(m.data, "hello world");
  assert_false(m.data_is_json);
  assert_string_equal(m.channel, "c");
  assert_string_equal(m.user_id, "u1");
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode("{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"c\"}", &m), 0);
  assert_null(m.data);
  assert_int_equal(m.data_len, 0);
  pusher__msg_free(NULL, &m);
  /* numbers, arrays, true, null as data: serialized as JSON text */
  assert_int_equal(decode("{\"event\":\"e\",\"data\":[1,2]}", &m), 0);
  assert_string_equal(m.data, "[1,2]");
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode("{\"event\":\"e\",\"data\":42}", &m), 0);
  assert_string_equal(m.data, "42");
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode("{\"event\":\"e\",\"data\":null,\"user_id\":7}", &m), 0);
  assert_string_equal(m.data, "null");
  assert_string_equal(m.user_id, "7");
  pusher__msg_free(NULL, &m);
  /* a string holding a JSON scalar is JSON */
  assert_int_equal(decode("{\"event\":\"e\",\"data\":\"123\"}", &m), 0);
  assert_true(m.data_is_json);
  pusher__msg_free(NULL, &m);
  /* unicode escapes become UTF-8 */
  assert_int_equal(decode("{\"event\":\"e\",\"data\":\"\\u00e9\"}", &m), 0);
  assert_string_equal(m.data, "\xc3\xa9");
  pusher__msg_free(NULL, &m);
}

static void test_decode_errors(void **st) {
  (void)st;
  pusher__msg m;
  assert_int_equal(decode("", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("{", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("not json", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("{\"event\":\"a\"} trailing", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("[]", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("\"str\"", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("42", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":5}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":null}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":\"\"}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":\"a\\u0000b\"}", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("{\"event\":\"e\",\"channel\":5}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":\"e\",\"channel\":{}}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":\"e\",\"user_id\":[]}", &m), PUSHER_ERR_PROTO);
  assert_null(m.event);
  /* invalid UTF-8 inside JSON */
  assert_int_equal(decode("{\"event\":\"\xff\xfe\"}", &m), PUSHER_ERR_JSON);
  char why[200];
  assert_int_equal(pusher__proto_decode(NULL, "{\"event\":\"x\"}", 5, &m, why, sizeof why), PUSHER_ERR_JSON);
  assert_true(strlen(why) > 0);
  /* event name cap */
  char big[1200];
  memset(big, 'a', sizeof big);
  memcpy(big, "{\"event\":\"", 10);
  memcpy(big + 1180, "\"}", 3);
  assert_int_equal(decode(big, &m), PUSHER_ERR_PROTO);
}

static char *nested(size_t depth, const char *prefix, const char *suffix) {
  size_t pl = strlen(prefix), sl = strlen(suffix);
  char *s = malloc(pl + 2 * depth + sl + 1);
  memcpy(s, prefix, pl);
  for (size_t i = 0; i < depth; i++) s[pl + i] = '[';
  for (size_t i = 0; i < depth; i++) s[pl + depth + i] = ']';
  memcpy(s + pl + 2 * depth, suffix, sl + 1);
  return s;
}

static void test_depth_cap(void **st) {
  (void)st;
  pusher__msg m;
  char *s = nested(10000, "{\"event\":\"e\",\"data\":", "}");
  assert_int_equal(decode(s, &m), PUSHER_ERR_JSON);
  free(s);
  s = nested(63, "{\"event\":\"e\",\"data\":", "}"); /* 63 + the outer object = 64 */
  assert_int_equal(decode(s, &m), 0);
  assert_true(m.data_is_json);
  pusher__msg_free(NULL, &m);
  free(s);
  s = nested(64, "{\"event\":\"e\",\"data\":", "}");
  assert_int_equal(decode(s, &m), PUSHER_ERR_JSON);
  free(s);
  /* brackets in strings do not count */
  assert_true(pusher__json_depth_ok("{\"a\":\"[[[[[[[[\\\"[[[[\"}", 22, 1));
  assert_false(pusher__json_depth_ok("[[", 2, 1));
  /* deep JSON inside a string data: kept as a string, not JSON */
  char *inner = nested(200, "", "");
  char *outer = malloc(strlen(inner) + 64);
  sprintf(outer, "{\"event\":\"e\",\"data\":\"%s\"}", inner);
  assert_int_equal(decode(outer, &m), 0);
  assert_false(m.data_is_json);
  pusher__msg_free(NULL, &m);
  free(inner);
  free(outer);
}

static void test_encoders(void **st) {
  (void)st;
  char *t;
  size_t n;
  assert_int_equal(pusher__proto_encode_subscribe(NULL, "my-channel", NULL, NULL, &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"my-channel\"}}");
  assert_int_equal(n, strlen(t));
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_subscribe(NULL, "presence-x", "k:sig", "{\"user_id\":\"1\"}", &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"k:sig\",\"channel\":\"presence-x\",\"channel_data\":\"{\\\"user_id\\\":\\\"1\\\"}\"}}");
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_unsubscribe(NULL, "c", &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"c\"}}");
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_ping(NULL, &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"pusher:ping\",\"data\":{}}");
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_pong(NULL, &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"pusher:pong\",\"data\":{}}");
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_event(NULL, "client-x", "private-a", "{\"a\":1}", &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"client-x\",\"channel\":\"private-a\",\"data\":{\"a\":1}}");
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_event(NULL, "client-x", NULL, "\"s\"", &t, &n), 0);
  assert_string_equal(t, "{\"event\":\"client-x\",\"data\":\"s\"}");
  pusher__free(NULL, t);
  assert_int_equal(pusher__proto_encode_event(NULL, "client-x", "c", "{bad", &t, &n), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__proto_encode_event(NULL, "", "c", NULL, &t, &n), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__proto_encode_subscription_error(NULL, "AuthError", "nope", 403, &t, &n), 0);
  assert_string_equal(t, "{\"type\":\"AuthError\",\"error\":\"nope\",\"status\":403}");
  pusher__free(NULL, t);
  /* round trip through the decoder */
  assert_int_equal(pusher__proto_encode_subscribe(NULL, "a", "x\"y", NULL, &t, &n), 0);
  pusher__msg m;
  assert_int_equal(decode(t, &m), 0);
  assert_string_equal(m.event, "pusher:subscribe");
  pusher__msg_free(NULL, &m);
  pusher__free(NULL, t);
}

static void test_options(void **st) {
  (void)st;
  pusher_client_options o;
  pusher_client_options_default(&o);
  assert_int_equal(o.encrypted, 1);
  assert_string_equal(o.cluster, "mt1");
  assert_string_equal(o.auth_endpoint, "/pusher/auth");
  assert_int_equal(o.auth_transport, PUSHER_AUTH_AJAX);
  assert_true(o.reconnect_delay == 5.0);
  assert_string_equal(o.user_auth_endpoint, "/pusher/user-auth");
  assert_int_equal(o.ws_port, 80);
  assert_int_equal(o.wss_port, 443);
  assert_string_equal(o.ws_path, "");
  assert_true(o.activity_timeout == 120.0);
  assert_true(o.pong_timeout == 30.0);
  assert_true(o.unavailable_timeout == 30.0);
  assert_true(o.max_reconnect_delay == 10.0);
  assert_true(o.connect_timeout == 15.0);
  assert_int_equal(o.jitter, 1);
  assert_int_equal(o.max_message_size, 256 * 1024);
  assert_int_equal(o.max_send_queue, 1024 * 1024);
  assert_int_equal(o.max_channels, 1000);
  assert_string_equal(o.client_name, "libpusher-c");
  assert_null(o.loop);
  assert_int_equal(o.auto_connect, 0);
  char why[200];
  assert_int_equal(pusher__options_validate(&o, why, sizeof why), 0);
  pusher_client_options b = o;
  b.ws_port = 0;
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(why, "ws_port"));
  b = o;
  b.reconnect_delay = -1;
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  b = o;
  b.max_reconnect_delay = 1;
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  b = o;
  b.cluster = "eu/x";
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  b = o;
  b.ws_host = "bad host";
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  b = o;
  b.auth_transport = (pusher_auth_transport)7;
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  pusher_kv hv[] = {{"X-Bad", "a\r\nb"}};
  b = o;
  b.auth_headers = hv;
  b.auth_headers_count = 1;
  assert_int_equal(pusher__options_validate(&b, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__options_validate(NULL, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  assert_string_equal(pusher_state_name(PUSHER_STATE_INITIALIZED), "initialized");
  assert_string_equal(pusher_state_name(PUSHER_STATE_CONNECTING), "connecting");
  assert_string_equal(pusher_state_name(PUSHER_STATE_CONNECTED), "connected");
  assert_string_equal(pusher_state_name(PUSHER_STATE_UNAVAILABLE), "unavailable");
  assert_string_equal(pusher_state_name(PUSHER_STATE_FAILED), "failed");
  assert_string_equal(pusher_state_name(PUSHER_STATE_DISCONNECTED), "disconnected");
  assert_string_equal(pusher_state_name((pusher_state)42), "unknown");
}

static void test_channel_names(void **st) {
  (void)st;
  assert_true(pusher__channel_name_valid("my-channel"));
  assert_true(pusher__channel_name_valid("private-a_b=c@d,e.f;g"));
  assert_false(pusher__channel_name_valid(""));
  assert_false(pusher__channel_name_valid(NULL));
  assert_false(pusher__channel_name_valid("#server-to-user-1"));
  assert_false(pusher__channel_name_valid("bad channel!"));
  assert_false(pusher__channel_name_valid("a/b"));
  char n[202];
  memset(n, 'c', 200);
  n[200] = '\0';
  assert_true(pusher__channel_name_valid(n));
  n[200] = 'c';
  n[201] = '\0';
  assert_false(pusher__channel_name_valid(n));
}

/* The validating scanner behind data_is_json: it must agree with jansson
 * (json_loadb, JSON_DECODE_ANY | JSON_ALLOW_NUL, depth cap) on every text. */
static void test_json_scanner(void **st) {
  (void)st;
  static const struct {
    const char *text;
    size_t len; /* 0: strlen */
    int valid;
  } cases[] = {
      {"0", 0, 1}, {"-0", 0, 1}, {"12", 0, 1}, {"-12.5e+3", 0, 1}, {"1E-2", 0, 1}, {"0.0", 0, 1},
      {"9223372036854775807", 0, 1}, {"-9223372036854775808", 0, 1},
      {"9223372036854775808", 0, 0}, {"-9223372036854775809", 0, 0}, {"123456789012345678901", 0, 0},
      {"1e308", 0, 1}, {"1.5e308", 0, 1}, {"1e309", 0, 0}, {"-1e400", 0, 0}, {"1e-400", 0, 1},
      {"0.0001e310", 0, 1}, {"123e306", 0, 1},
      {"01", 0, 0}, {"-", 0, 0}, {"-01", 0, 0}, {"1.", 0, 0}, {".5", 0, 0}, {"1e", 0, 0}, {"1e+", 0, 0},
      {"+1", 0, 0}, {"0x10", 0, 0}, {"1 2", 0, 0}, {"NaN", 0, 0}, {"Infinity", 0, 0},
      {"true", 0, 1}, {"false", 0, 1}, {"null", 0, 1}, {"tru", 0, 0}, {"truex", 0, 0}, {"nulll", 0, 0},
      {"True", 0, 0}, {"true1", 0, 0},
      {"\"\"", 0, 1}, {"\"abc\"", 0, 1}, {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0, 1}, {"\"\\a\"", 0, 0},
      {"\"\\u00e9\\u00E9\"", 0, 1}, {"\"\\u12\"", 0, 0}, {"\"\\u12g4\"", 0, 0}, {"\"\\", 0, 0},
      {"\"\\ud83d\\ude00\"", 0, 1}, {"\"\\ud83d\"", 0, 0}, {"\"\\ud83dx\"", 0, 0},
      {"\"\\ud83d\\u0041\"", 0, 0}, {"\"\\ude00\"", 0, 0}, {"\"\\ude00\\ud83d\"", 0, 0},
      {"\"\\u0000\"", 0, 1}, {"{\"\\u0000\":1}", 0, 0}, {"{\"a\\u0000b\":1}", 0, 0},
      {"{\"a\":\"\\u0000\"}", 0, 1},
      {"\"a\nb\"", 0, 0}, {"\"a\tb\"", 0, 0}, {"\"\x7f\"", 0, 1}, {"\"abc", 0, 0},
      {"\"\xc3\xa9\"", 0, 1}, {"\"\xe2\x82\xac\"", 0, 1}, {"\"\xf0\x9f\x98\x80\"", 0, 1},
      {"\"\xc3\"", 0, 0}, {"\"\xc0\xaf\"", 0, 0}, {"\"\xed\xa0\x80\"", 0, 0}, {"\"\xf4\x90\x80\x80\"", 0, 0},
      {"\"\xe0\x80\xaf\"", 0, 0}, {"\"\x80\"", 0, 0}, {"\"\xff\"", 0, 0}, {"\xc3\xa9", 0, 0},
      {"[]", 0, 1}, {"{}", 0, 1}, {" [ 1 , [ ] , { } ] ", 0, 1}, {"\t\r\n{\"a\" : {\"b\":[true,null]}}\n", 0, 1},
      {"[1,]", 0, 0}, {"[,1]", 0, 0}, {"[1 2]", 0, 0}, {"{\"a\"}", 0, 0}, {"{\"a\":}", 0, 0},
      {"{\"a\":1,}", 0, 0}, {"{a:1}", 0, 0}, {"{1:1}", 0, 0}, {"{\"a\":1", 0, 0}, {"[", 0, 0}, {"]", 0, 0},
      {"{\"a\":1,\"a\":2}", 0, 1}, {"[1]]", 0, 0}, {"{} {}", 0, 0}, {"1 x", 0, 0}, {"[1]\v", 0, 0},
      {"", 0, 0}, {"   ", 0, 0}, {"\f1", 0, 0}, {"1\0", 2, 1}, {"[1\0]", 4, 1}, {"true\0", 5, 1}, {"{\"a\":null\0}", 11, 1}, {"[1]\0", 4, 0},
      {"1 \0", 3, 0}, {"1\0\0", 3, 0}, {"\0", 1, 0}, {"\"a\0b\"", 5, 0}, {"[1]", 3, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *t = cases[i].text;
    size_t n = cases[i].len ? cases[i].len : strlen(t);
    struct json_t *v = pusher__json_parse(t, n);
    int jansson = v != NULL;
    if (v) json_decref(v);
    if (jansson != cases[i].valid || pusher__json_valid(t, n) != cases[i].valid) {
      print_error("case %zu <%s>: expected %d, jansson %d, scanner %d\n", i, t, cases[i].valid, jansson,
                  pusher__json_valid(t, n));
      fail();
    }
  }
  assert_int_equal(pusher__json_scan("1e309", 5, 1, 64), -1); /* left to strtod */
  assert_int_equal(pusher__json_scan("\"\\u0000\"", 8, 0, 64), 0);
  assert_int_equal(pusher__json_scan("\"\\u0000\"", 8, 1, 64), 1);
  /* nesting: the cap of pusher__json_depth_ok */
  char deep[1000];
  for (int d = 63; d <= 65; d++) {
    size_t k = 0;
    for (int i = 0; i < d; i++) deep[k++] = '[';
    for (int i = 0; i < d; i++) deep[k++] = ']';
    assert_int_equal(pusher__json_valid(deep, k), d <= PUSHER__JSON_MAX_DEPTH);
    k = 0;
    for (int i = 0; i < d; i++) k += (size_t)sprintf(deep + k, "{\"a\":");
    deep[k++] = '1';
    for (int i = 0; i < d; i++) deep[k++] = '}';
    assert_int_equal(pusher__json_valid(deep, k), d <= PUSHER__JSON_MAX_DEPTH);
  }
}

/* The jansson-free decode path gives the same message as the jansson path. */
static void test_decode_fast_path(void **st) {
  (void)st;
  pusher__msg m;
  assert_int_equal(decode(" {\"event\":\"a\\u00e9\\ud83d\\ude00\\n\\/\",\"channel\":\"c\\\"h\",\"x\":[{\"y\":1.5e3}],"
                          "\"user_id\":\"u\\u0041\",\"data\":\"{\\\"k\\\":[1,true]}\"} ",
                          &m),
                   0);
  assert_string_equal(m.event, "a\xc3\xa9\xf0\x9f\x98\x80\n/");
  assert_string_equal(m.channel, "c\"h");
  assert_string_equal(m.user_id, "uA");
  assert_string_equal(m.data, "{\"k\":[1,true]}");
  assert_int_equal(m.data_len, 14);
  assert_true(m.data_was_string);
  assert_true(m.data_is_json);
  pusher__msg_free(NULL, &m);
  /* last duplicate wins, null channel, string data that is not JSON */
  assert_int_equal(decode("{\"event\":1,\"event\":\"e\",\"channel\":null,\"data\":\"[1,\"}", &m), 0);
  assert_string_equal(m.event, "e");
  assert_null(m.channel);
  assert_null(m.user_id);
  assert_string_equal(m.data, "[1,");
  assert_false(m.data_is_json);
  pusher__msg_free(NULL, &m);
  /* escaped key: left to jansson, same result */
  assert_int_equal(decode("{\"ev\\u0065nt\":\"e\",\"data\":\"\\\"s\\\"\"}", &m), 0);
  assert_string_equal(m.event, "e");
  assert_true(m.data_is_json);
  pusher__msg_free(NULL, &m);
  /* \u0000 is refused in the frame itself */
  assert_int_equal(decode("{\"event\":\"e\",\"data\":\"a\\u0000\"}", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("{\"event\":\"e\",\"n\":1e999}", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("{\"event\":\"e\",\"n\":99999999999999999999}", &m), PUSHER_ERR_JSON);
  assert_int_equal(decode("{\"event\":\"\"}", &m), PUSHER_ERR_PROTO);
  assert_int_equal(decode("{\"event\":\"\\ud83d\"}", &m), PUSHER_ERR_JSON);
  /* data of a string with a real that only strtod can judge */
  assert_int_equal(decode("{\"event\":\"e\",\"data\":\"[1e309, 2e300]\"}", &m), 0);
  assert_false(m.data_is_json);
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode("{\"event\":\"e\",\"data\":\"[1e308, 2e-300]\"}", &m), 0);
  assert_true(m.data_is_json);
  pusher__msg_free(NULL, &m);
}

/* Decode s both ways (allocating, and into a scratch of cap bytes) and check
 * they agree; returns the scratch-mode rc with *m from the scratch decode. */
static int decode_both(const char *s, char *scratch, size_t cap, pusher__msg *m) {
  char why[200], why2[200];
  pusher__msg a;
  size_t n = strlen(s);
  int ra = pusher__proto_decode(NULL, s, n, &a, why, sizeof why);
  int rb = pusher__proto_decode_buf(NULL, s, n, m, why2, sizeof why2, scratch, cap);
  assert_int_equal(ra, rb);
  assert_string_equal(why, why2);
  if (ra == 0) {
    assert_string_equal(a.event, m->event);
    assert_true((a.channel == NULL) == (m->channel == NULL));
    if (a.channel) assert_string_equal(a.channel, m->channel);
    assert_true((a.user_id == NULL) == (m->user_id == NULL));
    if (a.user_id) assert_string_equal(a.user_id, m->user_id);
    assert_true((a.data == NULL) == (m->data == NULL));
    assert_int_equal(a.data_len, m->data_len);
    if (a.data) assert_memory_equal(a.data, m->data, a.data_len);
    assert_int_equal(a.data_is_json, m->data_is_json);
    assert_int_equal(a.data_was_string, m->data_was_string);
    assert_false(a.borrowed);
  } else {
    assert_false(m->borrowed);
    assert_null(m->event);
  }
  pusher__msg_free(NULL, &a);
  return rb;
}

static int in_scratch(const char *p, const char *scratch, size_t cap) {
  return p >= scratch && p < scratch + cap;
}

static void test_decode_scratch(void **st) {
  (void)st;
  char sc[512];
  pusher__msg m;
  /* the common shape: no allocation, every string borrowed from the scratch */
  const char *f = "{\"event\":\"bench\",\"channel\":\"bench\",\"data\":\"ts=1 i=2\"}";
  assert_int_equal(decode_both(f, sc, sizeof sc, &m), 0);
  assert_true(m.borrowed);
  assert_true(in_scratch(m.event, sc, sizeof sc) && in_scratch(m.channel, sc, sizeof sc) &&
              in_scratch(m.data, sc, sizeof sc));
  assert_string_equal(m.data, "ts=1 i=2");
  assert_false(m.data_is_json);
  pusher__msg_free(NULL, &m);
  assert_false(m.borrowed);
  assert_null(m.event);
  /* escapes, unicode (BMP and a surrogate pair), user_id, JSON data with nested objects */
  f = "{\"event\":\"\\u00e9\\t\\\"\",\"channel\":\"c\\/\\\\\",\"user_id\":\"\\ud83d\\ude00\","
      "\"data\":\"{\\\"a\\\":{\\\"b\\\":[{\\\"c\\\":\\\"\\\\u00e9\\\"}]}}\"}";
  assert_int_equal(decode_both(f, sc, sizeof sc, &m), 0);
  assert_true(m.borrowed);
  assert_string_equal(m.event, "\xc3\xa9\t\"");
  assert_string_equal(m.channel, "c/\\");
  assert_string_equal(m.user_id, "\xf0\x9f\x98\x80");
  assert_string_equal(m.data, "{\"a\":{\"b\":[{\"c\":\"\\u00e9\"}]}}");
  assert_true(m.data_is_json);
  pusher__msg_free(NULL, &m);
  /* raw UTF-8 passes through */
  assert_int_equal(decode_both("{\"event\":\"e\",\"data\":\"\xe2\x82\xac\"}", sc, sizeof sc, &m), 0);
  assert_true(m.borrowed);
  assert_string_equal(m.data, "\xe2\x82\xac");
  pusher__msg_free(NULL, &m);
  /* exactly len + PUSHER__DECODE_SLACK is enough; one byte less falls back */
  f = "{\"event\":\"e\",\"channel\":\"c\",\"user_id\":\"u\",\"data\":\"d\"}";
  size_t need = strlen(f) + PUSHER__DECODE_SLACK;
  assert_int_equal(decode_both(f, sc, need, &m), 0);
  assert_true(m.borrowed);
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode_both(f, sc, need - 1, &m), 0);
  assert_false(m.borrowed);
  assert_string_equal(m.data, "d");
  pusher__msg_free(NULL, &m);
  assert_int_equal(decode_both(f, NULL, 0, &m), 0);
  assert_false(m.borrowed);
  pusher__msg_free(NULL, &m);
  /* fallbacks to jansson: object, number, array, boolean data; numeric user_id; escaped key */
  const char *fallback[] = {
      "{\"event\":\"e\",\"data\":{\"k\":{\"n\":[1,2,{\"x\":null}]}}}",
      "{\"event\":\"e\",\"data\":42}",
      "{\"event\":\"e\",\"data\":[\"a\"]}",
      "{\"event\":\"e\",\"user_id\":7,\"data\":\"x\"}",
      "{\"ev\\u0065nt\":\"e\",\"data\":\"x\"}",
      "{\"event\":\"e\",\"data\":true}",
  };
  for (size_t i = 0; i < sizeof fallback / sizeof fallback[0]; i++) {
    assert_int_equal(decode_both(fallback[i], sc, sizeof sc, &m), 0);
    assert_false(m.borrowed);
    pusher__msg_free(NULL, &m);
  }
  /* invalid input: the same error either way, nothing borrowed */
  const char *bad[] = {
      "",
      "{",
      "{\"event\":\"e\"",
      "{\"event\":\"e\",\"data\":\"\\x\"}",
      "{\"event\":\"e\",\"data\":\"\\ud800\"}",
      "{\"event\":\"e\",\"data\":\"\\u12\"}",
      "{\"event\":\"e\",\"data\":\"a\x01\"}",
      "{\"event\":\"e\",\"data\":\"\xc3\"}",
      "{\"event\":\"e\",\"data\":\"\xed\xa0\x80\"}",
      "{\"event\":\"\"}",
      "{\"event\":5}",
      "{\"channel\":\"c\"}",
      "{\"event\":\"e\",\"channel\":\"\"}",
      "{\"event\":\"e\",\"channel\":1}",
      "{\"event\":\"e\",\"user_id\":[]}",
      "{\"event\":\"e\"} x",
      "[\"event\"]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_true(decode_both(bad[i], sc, sizeof sc, &m) < 0);
  /* an event name over the cap is refused either way */
  char big[PUSHER__MAX_INBOUND_NAME + 64], sc2[sizeof big + 8];
  int k = snprintf(big, sizeof big, "{\"event\":\"");
  memset(big + k, 'a', PUSHER__MAX_INBOUND_NAME + 1);
  strcpy(big + k + PUSHER__MAX_INBOUND_NAME + 1, "\"}");
  assert_int_equal(decode_both(big, sc2, sizeof sc2, &m), PUSHER_ERR_PROTO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_double_encoded), cmocka_unit_test(test_decode_object_string_absent),
      cmocka_unit_test(test_decode_errors),         cmocka_unit_test(test_depth_cap),
      cmocka_unit_test(test_encoders),              cmocka_unit_test(test_options),
      cmocka_unit_test(test_channel_names),         cmocka_unit_test(test_json_scanner),
      cmocka_unit_test(test_decode_fast_path),      cmocka_unit_test(test_decode_scratch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
