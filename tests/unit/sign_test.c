/* Unit tests: lib/core/sign.c against every signing vector of docs/protocol.md
 * §12 (A channel/user/presence auth, B REST worked example, C pusher-http-go
 * REST, D pusher-http-node REST, E pusher-http-node authenticate, H webhooks,
 * I primitives) plus validation, verification and edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/sign.h"

/* ------------------------------------------------------------ helpers */

static void check_channel(const char *key, const char *secret, const char *sid, const char *ch,
                          const char *data, const char *hex) {
  char out[256], want[256];
  snprintf(want, sizeof want, "%s:%s", key, hex);
  assert_int_equal(pusher__sign_channel(key, secret, sid, ch, data, out, sizeof out), 0);
  assert_string_equal(out, want);
  assert_int_equal(pusher__verify_channel(key, secret, sid, ch, data, want), 0);
}

static void check_user(const char *key, const char *secret, const char *sid, const char *ud,
                       const char *hex) {
  char out[256], want[256];
  snprintf(want, sizeof want, "%s:%s", key, hex);
  assert_int_equal(pusher__sign_user(key, secret, sid, ud, out, sizeof out), 0);
  assert_string_equal(out, want);
  assert_int_equal(pusher__verify_user(key, secret, sid, ud, want), 0);
}

static void check_hmac(const char *secret, const char *msg, const char *hex) {
  char out[PUSHER__SHA256_HEX_SIZE];
  assert_int_equal(pusher__hmac_sha256_hex(secret, strlen(secret), msg, strlen(msg), out), 0);
  assert_string_equal(out, hex);
}

/* ------------------------------------------------------------ §12 A */

#define A_KEY "278d425bdf160c739803"
#define A_SECRET "7ad3773142a6692b25b8"

static void test_vector_a(void **st) {
  (void)st;
  check_channel(A_KEY, A_SECRET, "1234.1234", "private-foobar", NULL,
                "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
  check_user(A_KEY, A_SECRET, "1234.1234", "{\"id\":\"12345\"}",
             "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba");
  check_channel(A_KEY, A_SECRET, "1234.1234", "presence-foobar",
                "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Pusher\"}}",
                "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c");
  check_channel(A_KEY, A_SECRET, "1234.1234", "presence-foobar",
                "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}",
                "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
  /* The raw strings too, through the primitive. */
  check_hmac(A_SECRET, "1234.1234:private-foobar",
             "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
}

/* ------------------------------------------------------------ §12 B */

static void test_vector_b(void **st) {
  (void)st;
  const char *body = "{\"name\":\"foo\",\"channels\":[\"project-3\"],\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}";
  char md5[PUSHER__MD5_HEX_SIZE], sig[PUSHER__SHA256_HEX_SIZE];
  char *q = NULL;
  assert_int_equal(pusher__md5_hex(body, strlen(body), md5), 0);
  assert_string_equal(md5, "ec365a775a4cd0599faeb73354201b6f");
  assert_int_equal(pusher__rest_sign(NULL, "POST", "/apps/3/events", NULL, 0, body, strlen(body),
                                     A_KEY, A_SECRET, 1353088179, &q, sig),
                   0);
  assert_string_equal(sig, "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
  assert_string_equal(q, "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
                         "&body_md5=ec365a775a4cd0599faeb73354201b6f"
                         "&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
  pusher__free(NULL, q);

  /* The string to sign, as given in the docs. */
  pusher_kv p[] = {{"auth_key", A_KEY},
                   {"auth_timestamp", "1353088179"},
                   {"auth_version", "1.0"},
                   {"body_md5", "ec365a775a4cd0599faeb73354201b6f"}};
  char *sts = NULL;
  assert_int_equal(pusher__rest_string_to_sign(NULL, "post", "/apps/3/events", p, 4, &sts), 0);
  assert_string_equal(sts, "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp="
                           "1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f");
  pusher__free(NULL, sts);
  check_hmac(A_SECRET,
             "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179"
             "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
             "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");

  /* Server side: the same request verifies (skew check off: it is 2012). */
  pusher_kv v[] = {{"auth_key", A_KEY},
                   {"auth_timestamp", "1353088179"},
                   {"auth_version", "1.0"},
                   {"body_md5", "ec365a775a4cd0599faeb73354201b6f"},
                   {"auth_signature", "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"}};
  char why[512];
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 5, body, strlen(body),
                                       A_KEY, A_SECRET, 0, -1, why, sizeof why),
                   0);
  /* ... and within 600 s of "now". */
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 5, body, strlen(body),
                                       A_KEY, A_SECRET, 1353088179 + 600, 600, why, sizeof why),
                   0);
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 5, body, strlen(body),
                                       A_KEY, A_SECRET, 1353088179 + 601, 600, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "Timestamp expired"));
  /* A different body: body_md5 mismatch. */
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 5, "{}", 2, A_KEY,
                                       A_SECRET, 0, -1, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "body_md5"));
  /* Wrong secret: signature mismatch with the string to sign in the text. */
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 5, body, strlen(body),
                                       A_KEY, "nope", 0, -1, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "Invalid signature"));
  assert_non_null(strstr(why, "POST\\n/apps/3/events\\nauth_key="));
  /* Wrong path. */
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/4/events", v, 5, body, strlen(body),
                                       A_KEY, A_SECRET, 0, -1, why, sizeof why),
                   PUSHER_ERR_AUTH);
  /* Wrong key. */
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 5, body, strlen(body),
                                       "other", A_SECRET, 0, -1, why, sizeof why),
                   PUSHER_ERR_AUTH);
  /* Missing signature. */
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/3/events", v, 4, body, strlen(body),
                                       A_KEY, A_SECRET, 0, -1, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "auth_signature"));
}

/* ------------------------------------------------------------ §12 C */

#define C_KEY "d41a439c438a100756f5"
#define C_SECRET "4bf35003e819bb138249"

static void check_rest_get(const char *path, const pusher_kv *params, size_t n, int64_t ts,
                           const char *want) {
  char sig[PUSHER__SHA256_HEX_SIZE];
  char *q = NULL;
  assert_int_equal(
      pusher__rest_sign(NULL, "GET", path, params, n, NULL, 0, C_KEY, C_SECRET, ts, &q, sig), 0);
  assert_string_equal(sig, want);
  assert_null(strstr(q, "body_md5")); /* empty body: no body_md5 */
  assert_non_null(strstr(q, want));
  pusher__free(NULL, q);
}

static void test_vector_c(void **st) {
  (void)st;
  pusher_kv p1[] = {{"filter_by_prefix", "presence-"}, {"info", "user_count"}};
  check_rest_get("/apps/102015/channels", p1, 2, 1427034994,
                 "4d8a02edcc8a758b0162cd6da690a9a45fb8ae326a276dca1e06a0bc42796c11");
  check_rest_get("/apps/102015/channels", NULL, 0, 1427036787,
                 "df89248f87f6e6d028925e0b04d60f316527a865992ace6936afa91281d8bef0");
  pusher_kv p3[] = {{"info", "user_count,subscription_count"}};
  check_rest_get("/apps/102015/channels/presence-session-d41a439c438a100756f5-4bf35003e819bb138249-ROpCFmgFhXY",
                 p3, 1, 1427053326, "f93ceb31f396aef336226efe512aaf339bd5e39c7c2c04b81cc8681dc16ee785");
  check_rest_get("/apps/102015/channels/presence-session-d41a439c438a100756f5-4bf35003e819bb138249-nYJLy67qh52/users",
                 NULL, 0, 1427053709, "207feaf4e8efeb24e5f148011704251bf90e2059a5f97a3eb52d06178b11feca");

  /* The comma in info stays unescaped in the URL; order is sorted. */
  char *q = NULL;
  assert_int_equal(pusher__rest_sign(NULL, "GET", "/apps/102015/channels/x", p3, 1, NULL, 0, C_KEY,
                                     C_SECRET, 1427053326, &q, NULL),
                   0);
  assert_non_null(strstr(q, "auth_version=1.0&info=user_count,subscription_count&auth_signature="));
  pusher__free(NULL, q);
}

/* ------------------------------------------------------------ §12 D */

static void test_vector_d(void **st) {
  (void)st;
  char sig[PUSHER__SHA256_HEX_SIZE], md5[PUSHER__MD5_HEX_SIZE];
  char *q = NULL;
  assert_int_equal(pusher__md5_hex("example body", 12, md5), 0);
  assert_string_equal(md5, "165d5e6d7ca8f73b3853ce45addf42fc");
  assert_int_equal(pusher__rest_sign(NULL, "GET", "/event", NULL, 0, "example body", 12, "f00d",
                                     "tofu", 1234567890, &q, sig),
                   0);
  assert_string_equal(sig, "a650196dc427ebe837226f8565ca9232198c6d1b9455eaa72374a9dc0b620e7b");
  assert_non_null(strstr(q, "body_md5=165d5e6d7ca8f73b3853ce45addf42fc"));
  pusher__free(NULL, q);

  /* Caller params given unsorted, one with an upper-case key. */
  pusher_kv p[] = {{"foo", "bar"}, {"BAZ", "123454321"}};
  assert_int_equal(pusher__rest_sign(NULL, "get", "/event", p, 2, NULL, 0, "f00d", "tofu",
                                     1234567890, &q, sig),
                   0);
  assert_string_equal(sig, "d8bdbd31911fb7400a14fbd36fd7de053494725b64400ae5856deafe304b34a9");
  assert_string_equal(q, "auth_key=f00d&auth_timestamp=1234567890&auth_version=1.0&baz=123454321"
                         "&foo=bar&auth_signature=d8bdbd31911fb7400a14fbd36fd7de053494725b64400ae5856deafe304b34a9");
  pusher__free(NULL, q);

  /* Reserved keys may not be passed in. */
  pusher_kv bad[] = {{"auth_timestamp", "1"}};
  assert_int_equal(pusher__rest_sign(NULL, "GET", "/event", bad, 1, NULL, 0, "f00d", "tofu", 1, &q,
                                     NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);
  pusher_kv bad2[] = {{"Body_MD5", "x"}};
  assert_int_equal(pusher__rest_sign(NULL, "GET", "/event", bad2, 1, NULL, 0, "f00d", "tofu", 1, &q,
                                     NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);

  /* Server side verify of the params request, keys in any case/order. */
  pusher_kv v[] = {{"auth_signature", "d8bdbd31911fb7400a14fbd36fd7de053494725b64400ae5856deafe304b34a9"},
                   {"foo", "bar"},
                   {"auth_version", "1.0"},
                   {"baz", "123454321"},
                   {"auth_timestamp", "1234567890"},
                   {"auth_key", "f00d"}};
  assert_int_equal(pusher__rest_verify(NULL, "GET", "/event", v, 6, NULL, 0, "f00d", "tofu",
                                       1234567890, 600, NULL, 0),
                   0);
  v[1].value = "baz"; /* tampered parameter */
  assert_int_equal(pusher__rest_verify(NULL, "GET", "/event", v, 6, NULL, 0, "f00d", "tofu",
                                       1234567890, 600, NULL, 0),
                   PUSHER_ERR_AUTH);
}

/* ------------------------------------------------------------ §12 E */

static void test_vector_e(void **st) {
  (void)st;
  check_channel("key", "tofu", "123.456", "test", NULL,
                "efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c");
  check_channel("key", "tofu", "321.654", "test", NULL,
                "f6ecb0a17d3e4f68aca28f1673197a7608587c09deb0208faa4b5519aee0a777");
  check_channel("key", "tofu", "123.456", "test1", NULL,
                "d5ab857f805433cb50562da96afa41688d7742a3c3a021ed15a4d991a4d8cf94");
  check_channel("key", "tofu", "123.456", "test2", NULL,
                "43affa6a09af1fb9ce1cadf176171346beaf7366673ec1e5920f68b3e97a466d");
  check_channel("key", "1", "123.456", "test", NULL,
                "584828bd6e80b2d177d2b28fde07b8e170abf87ccb5a791a50c933711fb8eb28");
  check_channel("key", "2", "123.456", "test", NULL,
                "269bbf3f7625db4e0d0525b617efa5915c3ae667fd222dc8e4cb94bc531f26f2");
  check_channel("key", "tofu", "123.456", "test", "{\"foo\":\"bar\"}",
                "f41faf9ead2ea76772cc6b1168363057459f02499ae4d92e88229dc7f4efa2d4");
  check_channel("key", "tofu", "1.1", "test",
                "\"\xc4\x85\xc2\xa7\xc2\xb6\xe2\x84\xa2\xe2\x82\xac\xc5\x82\xc3\xbc\xe2\x82\xac\xc3\x9f\xc2\xa3\"",
                "2a229263e89d9c50524fd80c2e88be2843379f6931e28995e2cc214282c9db0c");
  check_user("key", "tofu", "123.456", "{\"id\":\"45678\"}",
             "f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babd");
  check_user("key", "tofu", "123.456", "{\"id\":\"55555\",\"user_name\":\"test\"}",
             "b8a9f173455903792ae2b788add0c4c78ad7372b3ae7fb5769479276a1993743");
  check_user("key", "1", "123.456", "{\"id\":\"45678\"}",
             "79bddf29fe8e2153dd5d8d569b3f45e5aeb26ae2eb4758879d844791b466cfa2");
  check_user("key", "2", "123.456", "{\"id\":\"45678\"}",
             "a542498ffa6faf6de7c17a8106b923c042319bd73acfd1d274df32e269b55d1f");
  check_user("key", "tofu", "1.1",
             "{\"id\":\"\xc4\x85\xc2\xa7\xc2\xb6\xe2\x84\xa2\xe2\x82\xac\xc5\x82\xc3\xbc\xe2\x82\xac\xc3\x9f\xc2\xa3\"}",
             "620494cee53d6c568b49598313194088afda37218f0d059af03c0c898ed61ff4");
  check_channel("key", "tofu", "123.456", "private-encrypted-bla", "\"foo\"",
                "962c48b78bf93d98ff4c92ee7dff04865821455b7b401e9d60a9e0a90af2c105");
  check_channel("key", "tofu", "123.456", "bla", "\"foo\"",
                "013ad3da0d88e0df6ae0a8184bef50b9c3933f2344499e6e3d1ad67fad799e20");
}

/* ------------------------------------------------------------ §12 H, I */

static void test_vector_h(void **st) {
  (void)st;
  const char *b1 = "{\"time_ms\":1403175510755,\"events\":[{\"channel\":\"test_channel\",\"name\":\"channel_vacated\"}]}";
  check_hmac("tofu", b1, "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5");
  assert_int_equal(pusher__verify_hmac_hex("tofu", b1, strlen(b1),
                                           "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5"),
                   0);
  assert_int_equal(pusher__verify_hmac_hex("tofu", b1, strlen(b1),
                                           "C17257E92037CD7DE407EBC1ED174CEB7B2E518DB127F44411B9FFC4F5B28CC5"),
                   0);
  const char *b2 = "{\"hello\":\"world\"}";
  check_hmac("secret", b2, "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778");
  assert_int_equal(pusher__verify_hmac_hex("secret", b2, strlen(b2),
                                           "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778"),
                   0);
  assert_int_equal(pusher__verify_hmac_hex("secret", b2, strlen(b2) - 1,
                                           "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778"),
                   PUSHER_ERR_AUTH);
  assert_int_equal(pusher__verify_hmac_hex("secret", b2, strlen(b2), "2677ad"), PUSHER_ERR_AUTH);
  assert_int_equal(pusher__verify_hmac_hex("secret", b2, strlen(b2), NULL), PUSHER_ERR_AUTH);
}

static void test_vector_i(void **st) {
  (void)st;
  char md5[PUSHER__MD5_HEX_SIZE];
  check_hmac("supersecret", "Hello!", "64e3f44166575febbc5de88c9476325ea7d4b3684752158d9fdb31fce34b980d");
  assert_int_equal(pusher__md5_hex("Hello!", 6, md5), 0);
  assert_string_equal(md5, "952d2c56d0485958336747bcdd98590d");
  assert_int_equal(pusher__md5_hex("{}", 2, md5), 0);
  assert_string_equal(md5, "99914b932bd37a50b983c5e7c90ae93b");
  assert_int_equal(pusher__md5_hex(NULL, 0, md5), 0);
  assert_string_equal(md5, "d41d8cd98f00b204e9800998ecf8427e");
  /* Parts = concatenation. */
  const char *parts[] = {"Hel", "", "lo!"};
  size_t lens[] = {3, 0, 3};
  char out[PUSHER__SHA256_HEX_SIZE];
  assert_int_equal(pusher__hmac_sha256_hex_parts("supersecret", 11, parts, lens, 3, out), 0);
  assert_string_equal(out, "64e3f44166575febbc5de88c9476325ea7d4b3684752158d9fdb31fce34b980d");
  /* Empty key works (RFC 2104 pads it). */
  assert_int_equal(pusher__hmac_sha256_hex("", 0, "", 0, out), 0);
  assert_string_equal(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  char hex[9];
  pusher__hex_encode(bytes, 4, hex);
  assert_string_equal(hex, "000fa5ff");
}

/* ------------------------------------------------------------ auth edge cases */

static void test_auth_edges(void **st) {
  (void)st;
  char out[128];
  const char *good = "key:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c";
  /* Buffer size is exact. */
  assert_int_equal(pusher__auth_size("key"), 3 + 1 + 64 + 1);
  assert_int_equal(pusher__sign_channel("key", "tofu", "123.456", "test", NULL, out, 69), 0);
  assert_string_equal(out, good);
  assert_int_equal(pusher__sign_channel("key", "tofu", "123.456", "test", NULL, out, 68),
                   PUSHER_ERR_TOO_LARGE);
  assert_int_equal(pusher__sign_channel(NULL, "tofu", "123.456", "test", NULL, out, sizeof out),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__sign_user("key", "tofu", "123.456", NULL, out, sizeof out),
                   PUSHER_ERR_INVALID_ARGUMENT);
  /* Every wrong auth is refused. */
  const char *bad[] = {"",
                       "key",
                       "key:",
                       "KEY:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c",
                       "kex:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c",
                       "key;efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c",
                       "key:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7d",
                       "key:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7",
                       "key:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c0",
                       "key:EFA6CF7644A0B35CBA36AA0F776F3CBF7BB60E95EA2696BDE1DBE8403B61BD7C",
                       "ke:yefa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(pusher__verify_channel("key", "tofu", "123.456", "test", NULL, bad[i]),
                     PUSHER_ERR_AUTH);
  assert_int_equal(pusher__verify_channel("key", "tofu", "123.456", "test", NULL, NULL),
                   PUSHER_ERR_AUTH);
  /* Presence auth does not verify a private subscription, and vice versa. */
  assert_int_equal(pusher__verify_channel("key", "tofu", "123.456", "test", "", good),
                   PUSHER_ERR_AUTH);
  /* Another socket id. */
  assert_int_equal(pusher__verify_channel("key", "tofu", "123.457", "test", NULL, good),
                   PUSHER_ERR_AUTH);
  assert_int_equal(pusher__verify_user("key", "tofu", "123.456", "{\"id\":\"45678\"}",
                                       "key:f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babe"),
                   PUSHER_ERR_AUTH);
  assert_true(pusher__ct_streq("abc", "abc"));
  assert_true(pusher__ct_streq("", ""));
  assert_false(pusher__ct_streq("abc", "abd"));
  assert_false(pusher__ct_streq("abc", "ab"));
  assert_false(pusher__ct_streq(NULL, "ab"));
}

/* ------------------------------------------------------------ validation */

static void test_validation(void **st) {
  (void)st;
  assert_true(pusher__valid_socket_id("1234.1234"));
  assert_true(pusher__valid_socket_id("0.0"));
  assert_false(pusher__valid_socket_id(NULL));
  assert_false(pusher__valid_socket_id(""));
  assert_false(pusher__valid_socket_id("1234"));
  assert_false(pusher__valid_socket_id(".1"));
  assert_false(pusher__valid_socket_id("1."));
  assert_false(pusher__valid_socket_id("1.2.3"));
  assert_false(pusher__valid_socket_id("1.2\n"));
  assert_false(pusher__valid_socket_id(" 1.2"));
  assert_false(pusher__valid_socket_id("1:2"));
  assert_false(pusher__valid_socket_id("a.1"));
  assert_false(pusher__valid_socket_id("1.2:private-x")); /* the classic injection */

  assert_true(pusher__valid_channel_name("my-channel"));
  assert_true(pusher__valid_channel_name("private-encrypted-a_b=c@d,e.f;g"));
  assert_true(pusher__valid_channel_name("A"));
  assert_false(pusher__valid_channel_name(NULL));
  assert_false(pusher__valid_channel_name(""));
  assert_false(pusher__valid_channel_name("#server-to-user-1"));
  assert_false(pusher__valid_channel_name("a b"));
  assert_false(pusher__valid_channel_name("a:b"));
  assert_false(pusher__valid_channel_name("a/b"));
  assert_false(pusher__valid_channel_name("caf\xc3\xa9"));
  char name[202];
  memset(name, 'x', 200);
  name[200] = '\0';
  assert_true(pusher__valid_channel_name(name));
  name[200] = 'x';
  name[201] = '\0';
  assert_false(pusher__valid_channel_name(name));
  assert_true(pusher__valid_channel_name_n("abc", 3));
  assert_false(pusher__valid_channel_name_n("abcd", 3));
}

/* ------------------------------------------------------------ REST details */

static void test_rest_details(void **st) {
  (void)st;
  char *q = NULL, *sts = NULL;
  /* Values with reserved characters are escaped in the URL but signed raw. */
  pusher_kv p[] = {{"filter_by_prefix", "a b&c=d/é"}};
  char sig[PUSHER__SHA256_HEX_SIZE], want[PUSHER__SHA256_HEX_SIZE];
  assert_int_equal(pusher__rest_sign(NULL, "GET", "/apps/1/channels", p, 1, NULL, 0, "k", "s", 7,
                                     &q, sig),
                   0);
  assert_non_null(strstr(q, "filter_by_prefix=a%20b%26c%3Dd%2F%C3%A9"));
  const char *raw = "GET\n/apps/1/channels\nauth_key=k&auth_timestamp=7&auth_version=1.0"
                    "&filter_by_prefix=a b&c=d/é";
  assert_int_equal(pusher__hmac_sha256_hex("s", 1, raw, strlen(raw), want), 0);
  assert_string_equal(sig, want);
  pusher__free(NULL, q);

  /* auth_signature is never part of the string to sign; method uppercased. */
  pusher_kv v[] = {{"b", "2"}, {"auth_signature", "x"}, {"A", "1"}};
  assert_int_equal(pusher__rest_string_to_sign(NULL, "get", "/p", v, 3, &sts), 0);
  assert_string_equal(sts, "GET\n/p\na=1&b=2");
  pusher__free(NULL, sts);
  assert_int_equal(pusher__rest_string_to_sign(NULL, "GET", "/p", NULL, 0, &sts), 0);
  assert_string_equal(sts, "GET\n/p\n");
  pusher__free(NULL, sts);
  pusher_kv nul[] = {{"a", NULL}};
  assert_int_equal(pusher__rest_string_to_sign(NULL, "GET", "/p", nul, 1, &sts),
                   PUSHER_ERR_INVALID_ARGUMENT);

  /* Round trip: what rest_sign produces, rest_verify accepts; and the
   * verify errors for version/timestamp. */
  const char *body = "{}";
  assert_int_equal(pusher__rest_sign(NULL, "POST", "/apps/1/users/u/terminate_connections", NULL, 0,
                                     body, 2, "k", "s", 1000, &q, sig),
                   0);
  assert_non_null(strstr(q, "body_md5=99914b932bd37a50b983c5e7c90ae93b"));
  pusher__free(NULL, q);
  pusher_kv r[] = {{"auth_key", "k"},
                   {"auth_timestamp", "1000"},
                   {"auth_version", "1.0"},
                   {"body_md5", "99914b932bd37a50b983c5e7c90ae93b"},
                   {"auth_signature", sig}};
  char why[300];
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/1/users/u/terminate_connections", r, 5,
                                       body, 2, "k", "s", 400, 600, why, sizeof why),
                   0);
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/1/users/u/terminate_connections", r, 5,
                                       body, 2, "k", "s", 1601, 600, why, sizeof why),
                   PUSHER_ERR_AUTH);
  r[2].value = "2.0";
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/1/users/u/terminate_connections", r, 5,
                                       body, 2, "k", "s", 1000, 600, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "auth_version"));
  r[2].value = "1.0";
  r[1].value = "10x";
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/1/users/u/terminate_connections", r, 5,
                                       body, 2, "k", "s", 1000, 600, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "auth_timestamp"));
  /* Body present but no body_md5 param. */
  r[1].value = "1000";
  pusher_kv r2[] = {r[0], r[1], r[2], r[4]};
  assert_int_equal(pusher__rest_verify(NULL, "POST", "/apps/1/users/u/terminate_connections", r2, 4,
                                       body, 2, "k", "s", 1000, 600, why, sizeof why),
                   PUSHER_ERR_AUTH);
  assert_non_null(strstr(why, "body_md5"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vector_a),   cmocka_unit_test(test_vector_b),
      cmocka_unit_test(test_vector_c),   cmocka_unit_test(test_vector_d),
      cmocka_unit_test(test_vector_e),   cmocka_unit_test(test_vector_h),
      cmocka_unit_test(test_vector_i),   cmocka_unit_test(test_auth_edges),
      cmocka_unit_test(test_validation), cmocka_unit_test(test_rest_details),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
