/* Unit tests: lib/core/authreq.c — auth request bodies and JSONP query
 * strings byte for byte (expected strings produced by node's
 * encodeURIComponent), endpoint URLs, header lines, and every malformed
 * auth reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/authreq.h"
#include "core/mem.h"


/* An allocator that fails the n-th allocation (n < 0: never). */
static long fail_at = -1, alloc_count;
static int fail_now(void) { return fail_at >= 0 && alloc_count++ == fail_at; }
static void *f_malloc(size_t n, void *u) { return fail_now() ? NULL : malloc(n); }
static void *f_calloc(size_t n, size_t s, void *u) { return fail_now() ? NULL : calloc(n, s); }
static void *f_realloc(void *p, size_t n, void *u) { return fail_now() ? NULL : realloc(p, n); }
static void f_free(void *p, void *u) { free(p); }
static const pusher_mem failmem = {NULL, f_malloc, f_free, f_calloc, f_realloc};

static const pusher_kv params[] = {
    {"csrf", "a b+c/d?e=f&g"},
    {"name", "Zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80"},
    {"reserved", "!*()~'-_.;:@$,#[]"},
    {"empty", ""},
    {"k=&", "v%"},
};

#define FORM_ALL                                                                                     \
  "socket_id=123.456&channel_name=presence-room%40x%2Cy%3Bz%3D1&csrf=a%20b%2Bc%2Fd%3Fe%3Df%26g&name=" \
  "Zo%C3%AB%20%E6%9D%B1%E4%BA%AC%20%F0%9F%98%80&reserved=!*()~'-_.%3B%3A%40%24%2C%23%5B%5D&empty=&k%"  \
  "3D%26=v%25"

static void test_channel_form(void **st) {
  (void)st;
  char *s;
  size_t n;
  assert_int_equal(pusher__authreq_form(NULL, "123.456", "presence-room@x,y;z=1", params, 5, &s, &n), 0);
  assert_string_equal(s, FORM_ALL);
  assert_int_equal(n, strlen(FORM_ALL));
  pusher__free(NULL, s);
  assert_int_equal(pusher__authreq_form(NULL, "1234.1234", "private-foobar", NULL, 0, &s, &n), 0);
  assert_string_equal(s, "socket_id=1234.1234&channel_name=private-foobar");
  pusher__free(NULL, s);
}

static void test_user_form(void **st) {
  (void)st;
  char *s;
  size_t n;
  assert_int_equal(pusher__authreq_form(NULL, "1.2", NULL, params, 2, &s, &n), 0);
  assert_string_equal(s, "socket_id=1.2&csrf=a%20b%2Bc%2Fd%3Fe%3Df%26g&name=Zo%C3%AB%20%E6%9D%B1%E4%BA%AC%20%F0%9F%98%80");
  pusher__free(NULL, s);
  assert_int_equal(pusher__authreq_form(NULL, "1.2", NULL, NULL, 0, &s, NULL), 0);
  assert_string_equal(s, "socket_id=1.2");
  pusher__free(NULL, s);
}

static void test_encode_every_ascii_and_utf8(void **st) {
  (void)st;
  char all[128];
  for (int i = 0; i < 128; i++) all[i] = (char)i;
  pusher__buf b;
  pusher__buf_init(&b, NULL, 0);
  assert_int_equal(pusher__uri_encode_component(&b, all, 128), 0);
  const char *want =
      "%00%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14%15%16%17%18%19%1A%1B%1C%1D%1E%1F%20!%"
      "22%23%24%25%26'()*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%"
      "60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~%7F";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);
  pusher__buf_reset(&b);
  /* boundaries: U+00E9, U+0800, U+FFFF, U+10000, U+10FFFF */
  const char *u = "\xc3\xa9\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf";
  assert_int_equal(pusher__uri_encode_component(&b, u, strlen(u)), 0);
  want = "%C3%A9%E0%A0%80%EF%BF%BF%F0%90%80%80%F4%8F%BF%BF";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);
  /* invalid UTF-8: encodeURIComponent cannot express it */
  const char *bad[] = {"\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80" /* surrogate */,
                       "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xf5\x80\x80\x80", "\xff", "\xc3", "\xe6\x9d",
                       "a\xf0\x9f\x98"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pusher__buf_reset(&b);
    assert_int_equal(pusher__uri_encode_component(&b, bad[i], strlen(bad[i])), PUSHER_ERR_INVALID_ARGUMENT);
  }
  pusher__buf_free(&b);
  char *s;
  pusher_kv badkv[] = {{"x", "\xff"}};
  assert_int_equal(pusher__authreq_form(NULL, "1.2", "private-a", badkv, 1, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_null(s);
}

static void test_form_errors_and_cap(void **st) {
  (void)st;
  char *s;
  assert_int_equal(pusher__authreq_form(NULL, NULL, "private-a", NULL, 0, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  pusher_kv noname[] = {{NULL, "v"}}, emptyname[] = {{"", "v"}}, noval[] = {{"k", NULL}};
  assert_int_equal(pusher__authreq_form(NULL, "1.2", "private-a", noname, 1, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__authreq_form(NULL, "1.2", "private-a", emptyname, 1, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__authreq_form(NULL, "1.2", "private-a", noval, 1, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__authreq_form(NULL, "1.2", "private-a", NULL, 1, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  /* 30000 spaces become 90000 bytes: over the 64 KiB request cap */
  char *big = malloc(30001);
  memset(big, ' ', 30000);
  big[30000] = 0;
  pusher_kv bigkv[] = {{"big", big}};
  assert_int_equal(pusher__authreq_form(NULL, "1.2", "private-a", bigkv, 1, &s, NULL), PUSHER_ERR_TOO_LARGE);
  assert_null(s);
  free(big);
}

static void test_jsonp_url(void **st) {
  (void)st;
  char *s;
  size_t n;
  assert_int_equal(pusher__authreq_jsonp_url(NULL, "http://127.0.0.1:3000/pusher/auth", NULL, "123.456",
                                             "presence-room@x,y;z=1", params, 5, &s, &n), 0);
  assert_string_equal(s, "http://127.0.0.1:3000/pusher/auth?callback=pusher_auth_callback&" FORM_ALL);
  assert_int_equal(n, strlen(s));
  pusher__free(NULL, s);
  /* pusher-js's own callback name is encoded too; existing query and fragment */
  assert_int_equal(pusher__authreq_jsonp_url(NULL, "https://h/auth?v=1#frag", "Pusher.auth_callbacks['1']", "1.2",
                                             "private-a", NULL, 0, &s, NULL), 0);
  assert_string_equal(s, "https://h/auth?v=1&callback=Pusher.auth_callbacks%5B'1'%5D&socket_id=1.2&channel_name=private-a");
  pusher__free(NULL, s);
  assert_int_equal(pusher__authreq_jsonp_url(NULL, "http://h/a?", "cb", "1.2", NULL, params, 1, &s, NULL), 0);
  assert_string_equal(s, "http://h/a?callback=cb&socket_id=1.2&csrf=a%20b%2Bc%2Fd%3Fe%3Df%26g");
  pusher__free(NULL, s);
  assert_int_equal(pusher__authreq_jsonp_url(NULL, "http://h/a?x=1&", "cb", "1.2", NULL, NULL, 0, &s, NULL), 0);
  assert_string_equal(s, "http://h/a?x=1&callback=cb&socket_id=1.2");
  pusher__free(NULL, s);
  assert_int_equal(pusher__authreq_jsonp_url(NULL, "", "cb", "1.2", NULL, NULL, 0, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__authreq_jsonp_url(NULL, NULL, "cb", "1.2", NULL, NULL, 0, &s, NULL), PUSHER_ERR_INVALID_ARGUMENT);
}

static void test_endpoint_url(void **st) {
  (void)st;
  struct { const char *origin, *ep, *want; } v[] = {
      {NULL, "http://a.b/pusher/auth", "http://a.b/pusher/auth"},
      {"http://x", "HTTPS://a.b:8443/p?q=1", "HTTPS://a.b:8443/p?q=1"},
      {"http://127.0.0.1:3000", "/pusher/auth", "http://127.0.0.1:3000/pusher/auth"},
      {"http://127.0.0.1:3000/", "/pusher/auth", "http://127.0.0.1:3000/pusher/auth"},
      {"https://h/app/", "/pusher/auth", "https://h/pusher/auth"},
      {"https://h/app/", "auth", "https://h/app/auth"},
      {"https://h", "auth", "https://h/auth"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char *s;
    assert_int_equal(pusher__authreq_url(NULL, v[i].origin, v[i].ep, &s), 0);
    assert_string_equal(s, v[i].want);
    pusher__free(NULL, s);
  }
  struct { const char *origin, *ep; } bad[] = {
      {NULL, "/pusher/auth"}, {"ftp://h", "/a"}, {"h:3000", "/a"}, {"http://", "/a"},
      {"http://h", ""},       {"http://h", NULL}, {NULL, "http://"}, {NULL, "https:///x"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *s;
    assert_int_equal(pusher__authreq_url(NULL, bad[i].origin, bad[i].ep, &s), PUSHER_ERR_INVALID_ARGUMENT);
    assert_null(s);
  }
}

static void test_header_line(void **st) {
  (void)st;
  char *s;
  pusher_kv h = {"X-CSRF-Token", "abc def"};
  assert_int_equal(pusher__authreq_header_line(NULL, &h, &s), 0);
  assert_string_equal(s, "X-CSRF-Token: abc def");
  pusher__free(NULL, s);
  pusher_kv empty = {"Authorization", ""};
  assert_int_equal(pusher__authreq_header_line(NULL, &empty, &s), 0);
  assert_string_equal(s, "Authorization: ");
  pusher__free(NULL, s);
  pusher_kv bad[] = {{"X-A", "v\r\nX-Injected: 1"}, {"X-A", "v\n"}, {"X A", "v"}, {"X:A", "v"},
                     {"", "v"},                     {NULL, "v"},     {"X-A", NULL}, {"X\xc3\xa9", "v"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(pusher__authreq_header_line(NULL, &bad[i], &s), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__authreq_header_line(NULL, NULL, &s), PUSHER_ERR_INVALID_ARGUMENT);
}

#define SIG "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
#define AUTH "278d425bdf160c739803:" SIG

static int parse(const char *body, int flags, pusher__auth_reply *r, char *why) {
  return pusher__auth_reply_parse(NULL, body, strlen(body), flags, "278d425bdf160c739803", r, why, 256);
}

static void test_reply_ok(void **st) {
  (void)st;
  pusher__auth_reply r;
  char why[256];
  assert_int_equal(parse("{\"auth\":\"" AUTH "\"}", 0, &r, why), 0);
  assert_string_equal(r.auth, AUTH);
  assert_null(r.channel_data);
  assert_null(r.shared_secret);
  pusher__auth_reply_free(NULL, &r);
  /* presence: channel_data kept byte for byte */
  const char *pres = "{\"auth\":\"" AUTH "\",\"channel_data\":\"{\\\"user_id\\\":10,\\\"user_info\\\":{\\\"name\\\":\\\"Mr. Pusher\\\"}}\"}";
  assert_int_equal(parse(pres, PUSHER__AUTH_NEED_CHANNEL_DATA, &r, why), 0);
  assert_string_equal(r.channel_data, "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Pusher\"}}");
  pusher__auth_reply_free(NULL, &r);
  /* encrypted */
  const char *enc = "{\"auth\":\"" AUTH "\",\"shared_secret\":\"nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=\"}";
  assert_int_equal(parse(enc, PUSHER__AUTH_NEED_SHARED_SECRET, &r, why), 0);
  assert_string_equal(r.shared_secret, "nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=");
  pusher__auth_reply_free(NULL, &r);
  /* user */
  const char *user = "{\"auth\":\"" AUTH "\",\"user_data\":\"{\\\"id\\\":\\\"12345\\\"}\"}";
  assert_int_equal(parse(user, PUSHER__AUTH_USER, &r, why), 0);
  assert_string_equal(r.user_data, "{\"id\":\"12345\"}");
  pusher__auth_reply_free(NULL, &r);
  /* null members count as absent; unknown members ignored */
  assert_int_equal(parse("{\"auth\":\"" AUTH "\",\"channel_data\":null,\"shared_secret\":null,\"x\":[1]}", 0, &r, why), 0);
  assert_null(r.channel_data);
  pusher__auth_reply_free(NULL, &r);
  /* no key check */
  assert_int_equal(pusher__auth_reply_parse(NULL, "{\"auth\":\"other:" SIG "\"}", strlen("{\"auth\":\"other:" SIG "\"}"), 0, NULL, &r, why, sizeof why), 0);
  pusher__auth_reply_free(NULL, &r);
}

static void test_reply_jsonp(void **st) {
  (void)st;
  const char *ok[] = {
      "pusher_auth_callback({\"auth\":\"" AUTH "\"})",
      "pusher_auth_callback({\"auth\":\"" AUTH "\"});",
      "  \n\tcb ( {\"auth\":\"" AUTH "\"} ) ; \r\n",
      "Pusher.auth_callbacks['1']({\"auth\":\"" AUTH "\"})",
      "$cb({\"auth\":\"" AUTH "\"})\n",
      "\xef\xbb\xbf{\"auth\":\"" AUTH "\"}",
      "\n  {\"auth\":\"" AUTH "\"}  \n",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    pusher__auth_reply r;
    char why[256] = "";
    int e = parse(ok[i], 0, &r, why);
    if (e) fail_msg("%s: %d %s", ok[i], e, why);
    assert_string_equal(r.auth, AUTH);
    pusher__auth_reply_free(NULL, &r);
  }
}

static void expect_bad(const char *body, int flags, int err, const char *why_part) {
  pusher__auth_reply r;
  char why[256] = "";
  int e = parse(body, flags, &r, why);
  if (e != err || !strstr(why, why_part))
    fail_msg("body %s: got %d '%s', want %d '%s'", body, e, why, err, why_part);
  assert_null(r.auth);
}

static void test_reply_malformed(void **st) {
  (void)st;
  expect_bad("", 0, PUSHER_ERR_JSON, "empty");
  expect_bad("  \n", 0, PUSHER_ERR_JSON, "empty");
  expect_bad("garbage", 0, PUSHER_ERR_JSON, "neither JSON nor a JSONP");
  expect_bad("<html>403</html>", 0, PUSHER_ERR_JSON, "neither JSON nor a JSONP");
  expect_bad("{\"auth\":", 0, PUSHER_ERR_JSON, "not valid JSON");
  expect_bad("{\"auth\":\"" AUTH "\"} x", 0, PUSHER_ERR_JSON, "not valid JSON");
  expect_bad("cb({\"auth\":\"" AUTH "\"}", 0, PUSHER_ERR_JSON, "not closed");
  expect_bad("cb(", 0, PUSHER_ERR_JSON, "not closed");
  expect_bad("cb()", 0, PUSHER_ERR_JSON, "not valid JSON");
  expect_bad("cb({\"auth\":\"" AUTH "\"});;", 0, PUSHER_ERR_JSON, "not closed");
  expect_bad("cb({\"auth\":\"" AUTH "\"}) extra", 0, PUSHER_ERR_JSON, "not closed");
  expect_bad("alert(1);cb({\"auth\":\"" AUTH "\"})", 0, PUSHER_ERR_JSON, "not valid JSON");
  expect_bad("[]", 0, PUSHER_ERR_AUTH, "not a JSON object");
  expect_bad("\"" AUTH "\"", 0, PUSHER_ERR_AUTH, "not a JSON object");
  expect_bad("cb(1)", 0, PUSHER_ERR_AUTH, "not a JSON object");
  expect_bad("{}", 0, PUSHER_ERR_AUTH, "\"auth\" is missing");
  expect_bad("{\"auth\":null}", 0, PUSHER_ERR_AUTH, "\"auth\" is missing");
  expect_bad("{\"auth\":1}", 0, PUSHER_ERR_AUTH, "not a string");
  expect_bad("{\"auth\":\"\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"" SIG "\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\":" SIG "\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"278d425bdf160c739803:58DF8B0C36D6982B82C3ECF6B4662E34FE8C25BBA48F5369F135BF843651C3A4\"}", 0,
             PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"278d425bdf160c739803:" SIG "0\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"278d425bdf160c739803:58df\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"278d425bdf160c739803::" SIG "\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"a b:" SIG "\"}", 0, PUSHER_ERR_AUTH, "<key>:<64 hex digits>");
  expect_bad("{\"auth\":\"278d425bdf160c73980:" SIG "\"}", 0, PUSHER_ERR_AUTH, "another app key");
  expect_bad("{\"auth\":\"278d425bdf160c7398033:" SIG "\"}", 0, PUSHER_ERR_AUTH, "another app key");
  expect_bad("{\"auth\":\"278d\\u0000:" SIG "\"}", 0, PUSHER_ERR_AUTH, "not a string");
  expect_bad("{\"auth\":\"" AUTH "\",\"channel_data\":{}}", 0, PUSHER_ERR_AUTH, "\"channel_data\" is not a string");
  expect_bad("{\"auth\":\"" AUTH "\",\"shared_secret\":5}", 0, PUSHER_ERR_AUTH, "\"shared_secret\" is not a string");
  expect_bad("{\"auth\":\"" AUTH "\",\"user_data\":[]}", 0, PUSHER_ERR_AUTH, "\"user_data\" is not a string");
  /* presence */
  int P = PUSHER__AUTH_NEED_CHANNEL_DATA;
  expect_bad("{\"auth\":\"" AUTH "\"}", P, PUSHER_ERR_AUTH, "required for a presence channel");
  expect_bad("{\"auth\":\"" AUTH "\",\"channel_data\":\"x\"}", P, PUSHER_ERR_AUTH, "\"channel_data\" is not a JSON object");
  expect_bad("{\"auth\":\"" AUTH "\",\"channel_data\":\"[1]\"}", P, PUSHER_ERR_AUTH, "\"channel_data\" is not a JSON object");
  expect_bad("{\"auth\":\"" AUTH "\",\"channel_data\":\"{}\"}", P, PUSHER_ERR_AUTH, "no valid user_id");
  expect_bad("{\"auth\":\"" AUTH "\",\"channel_data\":\"{\\\"user_id\\\":\\\"\\\"}\"}", P, PUSHER_ERR_AUTH, "no valid user_id");
  expect_bad("{\"auth\":\"" AUTH "\",\"channel_data\":\"{\\\"user_id\\\":true}\"}", P, PUSHER_ERR_AUTH, "no valid user_id");
  /* encrypted */
  int E = PUSHER__AUTH_NEED_SHARED_SECRET;
  expect_bad("{\"auth\":\"" AUTH "\"}", E, PUSHER_ERR_AUTH, "required for an encrypted channel");
  expect_bad("{\"auth\":\"" AUTH "\",\"shared_secret\":\"c2hvcnQ=\"}", E, PUSHER_ERR_AUTH, "32 bytes");
  expect_bad("{\"auth\":\"" AUTH "\",\"shared_secret\":\"not base64\"}", E, PUSHER_ERR_AUTH, "not valid base64");
  /* user */
  int U = PUSHER__AUTH_USER;
  expect_bad("{\"auth\":\"" AUTH "\"}", U, PUSHER_ERR_AUTH, "\"user_data\" is missing");
  expect_bad("{\"auth\":\"" AUTH "\",\"user_data\":\"nope\"}", U, PUSHER_ERR_AUTH, "not a JSON object");
  expect_bad("{\"auth\":\"" AUTH "\",\"user_data\":\"{}\"}", U, PUSHER_ERR_AUTH, "non-empty string \"id\"");
  expect_bad("{\"auth\":\"" AUTH "\",\"user_data\":\"{\\\"id\\\":12345}\"}", U, PUSHER_ERR_AUTH, "non-empty string \"id\"");
  expect_bad("{\"auth\":\"" AUTH "\",\"user_data\":\"{\\\"id\\\":\\\"\\\"}\"}", U, PUSHER_ERR_AUTH, "non-empty string \"id\"");
  /* caps: size and depth */
  char *big = malloc(PUSHER__AUTH_REPLY_MAX + 2);
  memset(big, ' ', PUSHER__AUTH_REPLY_MAX + 1);
  big[PUSHER__AUTH_REPLY_MAX + 1] = 0;
  expect_bad(big, 0, PUSHER_ERR_TOO_LARGE, "cap");
  free(big);
  char deep[1000];
  strcpy(deep, "{\"auth\":\"" AUTH "\",\"x\":");
  size_t l = strlen(deep);
  memset(deep + l, '[', 100);
  deep[l + 100] = 0;
  expect_bad(deep, 0, PUSHER_ERR_JSON, "too deep");
  pusher__auth_reply r;
  char why[64];
  assert_int_equal(pusher__auth_reply_parse(NULL, NULL, 0, 0, NULL, &r, why, sizeof why), PUSHER_ERR_JSON);
}

static void test_auth_shape(void **st) {
  (void)st;
  assert_true(pusher__auth_shape_ok(AUTH));
  assert_true(pusher__auth_shape_ok("app-key:" SIG));
  assert_false(pusher__auth_shape_ok(NULL));
  assert_false(pusher__auth_shape_ok("app-key:"));
  assert_false(pusher__auth_shape_ok("app\tkey:" SIG));
}

static int oom_scenario(void) {
  int rc = 0, e;
  char *s = NULL;
  size_t n;
  if ((e = pusher__authreq_form(&failmem, "123.456", "presence-room@x,y;z=1", params, 5, &s, &n))) rc = e;
  else assert_string_equal(s, FORM_ALL);
  pusher__free(&failmem, s);
  if ((e = pusher__authreq_jsonp_url(&failmem, "http://h/a", NULL, "1.2", "private-a", params, 5, &s, &n))) rc = rc ? rc : e;
  pusher__free(&failmem, s);
  if ((e = pusher__authreq_url(&failmem, "http://h:1", "/pusher/auth", &s))) rc = rc ? rc : e;
  pusher__free(&failmem, s);
  pusher_kv h = {"X-A", "b"};
  if ((e = pusher__authreq_header_line(&failmem, &h, &s))) rc = rc ? rc : e;
  pusher__free(&failmem, s);
  const char *body = "{\"auth\":\"" AUTH "\",\"channel_data\":\"{\\\"user_id\\\":1}\",\"shared_secret\":"
                     "\"nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=\",\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}";
  pusher__auth_reply r;
  char why[256];
  e = pusher__auth_reply_parse(&failmem, body, strlen(body), 7, "278d425bdf160c739803", &r, why, sizeof why);
  if (e) {
    rc = rc ? rc : e;
    assert_null(r.auth);
    assert_null(r.user_data);
  } else {
    assert_string_equal(r.user_data, "{\"id\":\"1\"}");
  }
  pusher__auth_reply_free(&failmem, &r);
  return rc;
}

static void test_out_of_memory(void **st) {
  (void)st;
  long n;
  for (n = 0;; n++) {
    fail_at = n;
    alloc_count = 0;
    int rc = oom_scenario();
    if (alloc_count <= n) break;
    assert_int_equal(rc, PUSHER_ERR_NOMEM);
  }
  fail_at = -1;
  assert_true(n >= 8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_channel_form),      cmocka_unit_test(test_user_form),
      cmocka_unit_test(test_encode_every_ascii_and_utf8), cmocka_unit_test(test_form_errors_and_cap),
      cmocka_unit_test(test_jsonp_url),         cmocka_unit_test(test_endpoint_url),
      cmocka_unit_test(test_header_line),       cmocka_unit_test(test_reply_ok),
      cmocka_unit_test(test_reply_jsonp),       cmocka_unit_test(test_reply_malformed),
      cmocka_unit_test(test_auth_shape),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
