/* Unit tests: lib/core/hash.c (SHA-1, MD5) and the primitives built on it
 * and on libsodium: the published vectors of FIPS 180 / RFC 3174 (SHA-1),
 * RFC 1321 appendix A.5 (MD5), RFC 4231 (HMAC-SHA256), RFC 4648 section 10
 * (base64) and RFC 6455 section 1.3 (Sec-WebSocket-Accept); every input
 * split across updates at every offset; and, as a cross-check over many
 * lengths (every padding case), OpenSSL's digests, which only this test
 * uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/crypto.h"
#include "core/hash.h"
#include "core/sign.h"
#include "core/ws.h"

/* ------------------------------------------------------------ helpers */

static void hex(const uint8_t *in, size_t n, char *out) { pusher__hex_encode(in, n, out); }

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
  size_t n = strlen(s) / 2;
  assert_true(n <= cap);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
  return n;
}

static void sha1_hex(const void *p, size_t n, char out[41]) {
  uint8_t md[PUSHER__SHA1_SIZE];
  pusher__sha1(p, n, md);
  hex(md, sizeof md, out);
}

static void md5_hex(const void *p, size_t n, char out[33]) {
  uint8_t md[PUSHER__MD5_SIZE];
  pusher__md5(p, n, md);
  hex(md, sizeof md, out);
}

/* One of the two incremental hashes, behind a common shape for splits(). */
typedef struct md_api {
  size_t size;
  void (*init)(void *c);
  void (*update)(void *c, const void *p, size_t n);
  void (*final)(void *c, uint8_t *out);
} md_api;

static void sha1_init_v(void *c) { pusher__sha1_init(c); }
static void sha1_update_v(void *c, const void *p, size_t n) { pusher__sha1_update(c, p, n); }
static void sha1_final_v(void *c, uint8_t *out) { pusher__sha1_final(c, out); }
static void md5_init_v(void *c) { pusher__md5_init(c); }
static void md5_update_v(void *c, const void *p, size_t n) { pusher__md5_update(c, p, n); }
static void md5_final_v(void *c, uint8_t *out) { pusher__md5_final(c, out); }
static const md_api SHA1 = {PUSHER__SHA1_SIZE, sha1_init_v, sha1_update_v, sha1_final_v};
static const md_api MD5 = {PUSHER__MD5_SIZE, md5_init_v, md5_update_v, md5_final_v};

/* The digest of msg fed in two updates split at every offset, then one
 * byte at a time, equals want. */
static void splits(const md_api *api, const uint8_t *msg, size_t n, const char *want) {
  union {
    pusher__sha1_ctx sha1;
    pusher__md5_ctx md5;
  } c;
  char got[2 * PUSHER__SHA1_SIZE + 1];
  uint8_t md[PUSHER__SHA1_SIZE];
  for (size_t cut = 0; cut <= n; cut++) {
    api->init(&c);
    api->update(&c, msg, cut);
    api->update(&c, msg + cut, n - cut);
    api->final(&c, md);
    hex(md, api->size, got);
    assert_string_equal(got, want);
  }
  api->init(&c);
  for (size_t i = 0; i < n; i++) api->update(&c, msg + i, 1);
  api->update(&c, NULL, 0);
  api->final(&c, md);
  hex(md, api->size, got);
  assert_string_equal(got, want);
}

/* ------------------------------------------------------------ SHA-1 */

/* FIPS 180-2 appendix A / RFC 3174 section 7.3 tests 1, 2 and 4. */
static const struct {
  const char *msg;
  int repeat;
  const char *digest;
} sha1_vectors[] = {
    {"", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
    {"abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {"0123456701234567012345670123456701234567012345670123456701234567", 10,
     "dea356a2cddd90c7a7ecedc5ebb563934f460452"},
};

static size_t build(const char *msg, int repeat, uint8_t *out, size_t cap) {
  size_t l = strlen(msg), n = 0;
  for (int r = 0; r < repeat; r++) {
    assert_true(n + l <= cap);
    memcpy(out + n, msg, l);
    n += l;
  }
  return n;
}

static void test_sha1_vectors(void **st) {
  (void)st;
  uint8_t buf[1024];
  char got[41];
  for (size_t i = 0; i < sizeof sha1_vectors / sizeof sha1_vectors[0]; i++) {
    size_t n = build(sha1_vectors[i].msg, sha1_vectors[i].repeat, buf, sizeof buf);
    sha1_hex(buf, n, got);
    assert_string_equal(got, sha1_vectors[i].digest);
    splits(&SHA1, buf, n, sha1_vectors[i].digest);
  }
  sha1_hex(NULL, 0, got);
  assert_string_equal(got, sha1_vectors[0].digest);
}

/* RFC 3174 test 3: one million 'a', in one update and in uneven chunks. */
static void test_sha1_million_a(void **st) {
  (void)st;
  static const char want[] = "34aa973cd4c4daa4f61eeb2bdbad27316534016f";
  size_t n = 1000000;
  uint8_t *a = malloc(n);
  assert_non_null(a);
  memset(a, 'a', n);
  char got[41];
  uint8_t md[PUSHER__SHA1_SIZE];
  sha1_hex(a, n, got);
  assert_string_equal(got, want);
  static const size_t chunks[] = {1, 3, 55, 56, 63, 64, 65, 1000, 4097};
  for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
    pusher__sha1_ctx c;
    pusher__sha1_init(&c);
    for (size_t off = 0; off < n; off += chunks[k])
      pusher__sha1_update(&c, a + off, n - off < chunks[k] ? n - off : chunks[k]);
    pusher__sha1_final(&c, md);
    hex(md, sizeof md, got);
    assert_string_equal(got, want);
  }
  free(a);
}

/* ------------------------------------------------------------ MD5 */

/* RFC 1321 appendix A.5, the whole test suite. */
static const struct {
  const char *msg, *digest;
} md5_vectors[] = {
    {"", "d41d8cd98f00b204e9800998ecf8427e"},
    {"a", "0cc175b9c0f1b6a831c399e269772661"},
    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "d174ab98d277d9f5a5611c2c9f419d9f"},
    {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
     "57edf4a22be3c955ac49da2e2107b67a"},
};

static void test_md5_vectors(void **st) {
  (void)st;
  char got[33], got2[PUSHER__MD5_HEX_SIZE];
  for (size_t i = 0; i < sizeof md5_vectors / sizeof md5_vectors[0]; i++) {
    const char *m = md5_vectors[i].msg;
    md5_hex(m, strlen(m), got);
    assert_string_equal(got, md5_vectors[i].digest);
    splits(&MD5, (const uint8_t *)m, strlen(m), md5_vectors[i].digest);
    /* sign.c's hex helper (body_md5) is the same digest. */
    assert_int_equal(pusher__md5_hex(m, strlen(m), got2), 0);
    assert_string_equal(got2, md5_vectors[i].digest);
  }
  assert_int_equal(pusher__md5_hex(NULL, 1, got2), PUSHER_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------ cross-check */

/* Every length from 0 to 300 (each padding case: 55, 56, 63, 64, 119, 120
 * bytes ...) of pseudo-random bytes against OpenSSL's digests. */
static void test_against_openssl(void **st) {
  (void)st;
  uint8_t msg[300];
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < sizeof msg; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    msg[i] = (uint8_t)x;
  }
  for (size_t n = 0; n <= sizeof msg; n++) {
    uint8_t ours[20], theirs[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    pusher__sha1(msg, n, ours);
    assert_int_equal(EVP_Digest(msg, n, theirs, &len, EVP_sha1(), NULL), 1);
    assert_int_equal(len, 20);
    assert_memory_equal(ours, theirs, 20);
    pusher__md5(msg, n, ours);
    assert_int_equal(EVP_Digest(msg, n, theirs, &len, EVP_md5(), NULL), 1);
    assert_int_equal(len, 16);
    assert_memory_equal(ours, theirs, 16);
    /* HMAC-SHA256 with a key of length n (0 and > 64 included). */
    char hmac[PUSHER__SHA256_HEX_SIZE], want[PUSHER__SHA256_HEX_SIZE];
    assert_int_equal(pusher__hmac_sha256_hex(msg, n, msg + n, sizeof msg - n, hmac), 0);
    assert_non_null(HMAC(EVP_sha256(), n ? msg : (const uint8_t *)"", (int)n, msg + n,
                         sizeof msg - n, theirs, &len));
    assert_int_equal(len, 32);
    hex(theirs, 32, want);
    assert_string_equal(hmac, want);
  }
}

/* ------------------------------------------------------------ HMAC-SHA256 */

/* RFC 4231 section 4, test cases 1 to 7 (keys and data in hex; case 5's
 * output is truncated to 128 bits there: compare the prefix). */
static const struct {
  const char *key, *data, *mac;
} hmac_vectors[] = {
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddddddddd",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    {"0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
     "cdcdcdcdcdcdcd",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
    {"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b"},
    {NULL, /* 131 bytes of 0xaa */
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368"
     "204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    {NULL,
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a"
     "65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865"
     "206b6579206e6565647320746f20626520686173686564206265666f7265206265696e672075736564206279"
     "2074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

static void test_hmac_rfc4231(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof hmac_vectors / sizeof hmac_vectors[0]; i++) {
    uint8_t key[200], data[200];
    size_t kl, dl;
    if (hmac_vectors[i].key) {
      kl = unhex(hmac_vectors[i].key, key, sizeof key);
    } else {
      kl = 131;
      memset(key, 0xaa, kl);
    }
    dl = unhex(hmac_vectors[i].data, data, sizeof data);
    char out[PUSHER__SHA256_HEX_SIZE];
    assert_int_equal(pusher__hmac_sha256_hex(key, kl, data, dl, out), 0);
    const char *want = hmac_vectors[i].mac;
    assert_memory_equal(out, want, strlen(want));
    /* The same in pieces split at every offset. */
    for (size_t cut = 0; cut <= dl; cut++) {
      const char *parts[2] = {(const char *)data, (const char *)data + cut};
      size_t lens[2] = {cut, dl - cut};
      char out2[PUSHER__SHA256_HEX_SIZE];
      assert_int_equal(pusher__hmac_sha256_hex_parts(key, kl, parts, lens, 2, out2), 0);
      assert_string_equal(out2, out);
    }
  }
  /* An empty key is a valid key (RFC 2104 pads it with zeros). */
  char e1[PUSHER__SHA256_HEX_SIZE], e2[PUSHER__SHA256_HEX_SIZE];
  assert_int_equal(pusher__hmac_sha256_hex(NULL, 0, "x", 1, e1), 0);
  static const uint8_t zeros[64] = {0};
  assert_int_equal(pusher__hmac_sha256_hex(zeros, sizeof zeros, "x", 1, e2), 0);
  assert_string_equal(e1, e2);
  assert_int_equal(pusher__hmac_sha256_hex(NULL, 1, "x", 1, e1), PUSHER_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------ base64, accept key */

static void test_base64_rfc4648(void **st) {
  (void)st;
  static const char *const v[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                     {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                     {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char out[16];
    assert_int_equal(
        pusher__b64_encode((const uint8_t *)v[i][0], strlen(v[i][0]), out, sizeof out), 0);
    assert_string_equal(out, v[i][1]);
  }
}

static void test_ws_accept(void **st) {
  (void)st;
  char out[29];
  /* RFC 6455 section 1.3. */
  assert_int_equal(pusher__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_int_equal(pusher__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, 28),
                   PUSHER_ERR_INVALID_ARGUMENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sha1_vectors),  cmocka_unit_test(test_sha1_million_a),
      cmocka_unit_test(test_md5_vectors),   cmocka_unit_test(test_against_openssl),
      cmocka_unit_test(test_hmac_rfc4231),  cmocka_unit_test(test_base64_rfc4648),
      cmocka_unit_test(test_ws_accept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
