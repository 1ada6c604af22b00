/* Unit tests: lib/core/crypto.c — base64, shared-secret derivation (vector
 * F), secretbox open/seal (vector G and the extra vector of docs/protocol.md §12),
 * payload parse errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pusher/channels.h>

#include "core/crypto.h"
#include "core/mem.h"

static void hex(const uint8_t *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_b64_roundtrip(void **st) {
  (void)st;
  struct { const char *plain, *enc; } v[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char out[32];
    assert_int_equal(pusher__b64_encode((const uint8_t *)v[i].plain, strlen(v[i].plain), out, sizeof out), 0);
    assert_string_equal(out, v[i].enc);
    uint8_t dec[32];
    size_t n;
    assert_int_equal(pusher__b64_decode(v[i].enc, strlen(v[i].enc), dec, sizeof dec, &n), 0);
    assert_int_equal(n, strlen(v[i].plain));
    assert_memory_equal(dec, v[i].plain, n);
  }
  /* every byte value, '+' and '/' included */
  uint8_t all[256], back[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  char enc[400];
  assert_int_equal(pusher__b64_encode(all, 256, enc, sizeof enc), 0);
  assert_non_null(strchr(enc, '+'));
  assert_non_null(strchr(enc, '/'));
  size_t n;
  assert_int_equal(pusher__b64_decode(enc, strlen(enc), back, sizeof back, &n), 0);
  assert_int_equal(n, 256);
  assert_memory_equal(all, back, 256);
  /* output too small */
  assert_int_equal(pusher__b64_encode(all, 3, enc, 4), PUSHER_ERR_TOO_LARGE);
  assert_int_equal(pusher__b64_encoded_size(3), 5);
  assert_int_equal(pusher__b64_decode("Zm9vYmFy", 8, back, 5, &n), PUSHER_ERR_TOO_LARGE);
}

static void test_b64_strict(void **st) {
  (void)st;
  const char *bad[] = {
      "Zg",       /* missing padding */
      "Zg=",      /* length not a multiple of 4 */
      "Zh==",     /* non-zero unused bits */
      "Zm9=",     /* non-zero unused bits (one pad) */
      "Zm9v\n",   /* whitespace */
      " Zm9v",    /* whitespace */
      "Zm-v",     /* url-safe alphabet */
      "Zm_v",
      "Z=9v",     /* pad in the middle */
      "Zg==Zg==", /* pad before the end */
      "====",
      "Z===",
      "Zm9v!A==",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t out[16];
    size_t n = 99;
    assert_int_equal(pusher__b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), PUSHER_ERR_PROTO);
    assert_int_equal(n, 0);
  }
  /* embedded NUL is not base64 */
  uint8_t out[8];
  size_t n;
  assert_int_equal(pusher__b64_decode("Zm\0v", 4, out, sizeof out, &n), PUSHER_ERR_PROTO);
}

/* Vector F (NODE authenticate.js). */
static void test_vector_f_shared_secret(void **st) {
  (void)st;
  char b64[45];
  assert_int_equal(pusher__crypto_shared_secret_b64("private-encrypted-bla",
                                                    "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=", b64),
                   0);
  assert_string_equal(b64, "nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=");
  uint8_t key[32];
  char why[128];
  assert_int_equal(pusher__crypto_key_from_b64(b64, key, why, sizeof why), 0);
  char h[65];
  hex(key, 32, h);
  assert_string_equal(h, "9e5af8f484901f3f75c92ddccbfc96996f3014c35e4e734be6d3479db3c970b4");
  /* the public helper for custom authorizers */
  char pub[45];
  assert_int_equal(pusher_shared_secret("private-encrypted-bla", "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=", pub), 0);
  assert_string_equal(pub, "nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=");
  assert_int_equal(pusher_shared_secret(NULL, "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=", pub), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_shared_secret("private-encrypted-bla", NULL, pub), PUSHER_ERR_INVALID_ARGUMENT);
  /* master key must be 32 bytes of base64 */
  assert_int_equal(pusher__crypto_shared_secret_b64("private-encrypted-bla", "c2hvcnQ=", b64),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__crypto_shared_secret_b64("private-encrypted-bla", "not base64!", b64),
                   PUSHER_ERR_INVALID_ARGUMENT);
}

static void test_key_from_b64_errors(void **st) {
  (void)st;
  uint8_t key[32];
  char why[128];
  assert_int_equal(pusher__crypto_key_from_b64(NULL, key, why, sizeof why), PUSHER_ERR_PROTO);
  assert_string_equal(why, "shared_secret is missing");
  assert_int_equal(pusher__crypto_key_from_b64("c2hvcnQ=", key, why, sizeof why), PUSHER_ERR_PROTO);
  assert_string_equal(why, "shared_secret must be 32 bytes of base64");
  /* 33 bytes */
  assert_int_equal(pusher__crypto_key_from_b64("VGhpcyBpcyBhIHN0cmluZyB0aGF0IGlzIDMyIGNoYXJz", key, why, sizeof why),
                   PUSHER_ERR_PROTO);
  assert_int_equal(pusher__crypto_key_from_b64("nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ", key, why, sizeof why),
                   PUSHER_ERR_PROTO);
  assert_string_equal(why, "shared_secret is not valid base64");
}

/* Vector G (GO crypto_test.go): a 33-byte master key. */
static void test_vector_g_open(void **st) {
  (void)st;
  const char *master = "This is a string that is 32 chars";
  uint8_t key[32];
  pusher__crypto_shared_secret("private-encrypted-bla", (const uint8_t *)master, strlen(master), key);
  char h[65];
  hex(key, 32, h);
  assert_string_equal(h, "004831f99d2a4e86723e893caded3a2897deeddbed9514fe9497dcddc52bd50b");
  const char *data = "{\"nonce\":\"sjklahvpWWQgAjTx5FfYHCCxd2AmaL9T\",\"ciphertext\":\"zoDEe8dA3nDXKsybAWce/hXGW4szJw==\"}";
  char *plain;
  size_t n;
  char why[200];
  assert_int_equal(pusher__crypto_decrypt_event(NULL, key, data, strlen(data), &plain, &n, why, sizeof why), 0);
  assert_int_equal(n, 6);
  assert_string_equal(plain, "Hello!");
  pusher__free(NULL, plain);
  /* wrong key: MAC failure, distinguishable from malformed input */
  key[0] ^= 1;
  assert_int_equal(pusher__crypto_decrypt_event(NULL, key, data, strlen(data), &plain, &n, why, sizeof why),
                   PUSHER_ERR_DECRYPT);
  assert_null(plain);
  assert_non_null(strstr(why, "authentication failed"));
}

/* The extra, locally generated vector: key from F, nonce 00..17. */
static void test_extra_vector_seal_open(void **st) {
  (void)st;
  uint8_t key[32], nonce[24];
  char why[200];
  assert_int_equal(pusher__crypto_key_from_b64("nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=", key, why, sizeof why), 0);
  for (int i = 0; i < 24; i++) nonce[i] = (uint8_t)i;
  const char *msg = "{\"message\":\"hello world\"}";
  char *wire;
  size_t wlen;
  assert_int_equal(pusher__crypto_seal(NULL, key, nonce, msg, strlen(msg), &wire, &wlen), 0);
  assert_string_equal(wire, "{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":"
                            "\"33oMbJp4jf9rt7Abv2Sc4QEidySHWH/MlDfFNmdv+bWcdikhl31YXp8=\"}");
  assert_int_equal(wlen, strlen(wire));
  pusher__enc_payload p;
  assert_int_equal(pusher__crypto_parse_payload(NULL, wire, wlen, &p, why, sizeof why), 0);
  assert_int_equal(p.ciphertext_len, strlen(msg) + 16);
  assert_memory_equal(p.nonce, nonce, 24);
  char *plain;
  size_t n;
  assert_int_equal(pusher__crypto_open(NULL, key, &p, &plain, &n, why, sizeof why), 0);
  assert_string_equal(plain, msg);
  pusher__free(NULL, plain);
  /* tampered ciphertext */
  p.ciphertext[20] ^= 0x80;
  assert_int_equal(pusher__crypto_open(NULL, key, &p, &plain, &n, why, sizeof why), PUSHER_ERR_DECRYPT);
  pusher__enc_payload_free(NULL, &p);
  pusher__free(NULL, wire);
  /* empty plaintext: ciphertext is exactly the MAC */
  assert_int_equal(pusher__crypto_seal(NULL, key, nonce, "", 0, &wire, &wlen), 0);
  assert_int_equal(pusher__crypto_decrypt_event(NULL, key, wire, wlen, &plain, &n, why, sizeof why), 0);
  assert_int_equal(n, 0);
  assert_string_equal(plain, "");
  pusher__free(NULL, plain);
  pusher__free(NULL, wire);
}

static void expect_parse_error(const char *data, const char *why_part) {
  pusher__enc_payload p;
  char why[200] = "";
  assert_int_equal(pusher__crypto_parse_payload(NULL, data, data ? strlen(data) : 0, &p, why, sizeof why),
                   PUSHER_ERR_PROTO);
  assert_null(p.ciphertext);
  if (!strstr(why, why_part)) fail_msg("why '%s' lacks '%s' for %s", why, why_part, data ? data : "NULL");
}

static void test_payload_errors(void **st) {
  (void)st;
  expect_parse_error(NULL, "no data");
  expect_parse_error("", "not JSON");
  expect_parse_error("hello", "not JSON");
  expect_parse_error("[]", "not a JSON object");
  expect_parse_error("\"x\"", "not a JSON object");
  expect_parse_error("{\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}", "\"nonce\" missing");
  expect_parse_error("{\"nonce\":1,\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}", "\"nonce\" missing or not a string");
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\"}", "\"ciphertext\" missing");
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":null}", "\"ciphertext\" missing");
  expect_parse_error("{\"nonce\":\"AAEC!wQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
                     "\"nonce\" is not valid base64");
  /* 23 and 25 byte nonces */
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRY=\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
                     "nonce must be 24 bytes");
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA==\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
                     "nonce must be 24 bytes");
  expect_parse_error("{\"nonce\":\"\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}", "nonce must be 24 bytes");
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":\"AAAA AAAA\"}",
                     "\"ciphertext\" is not valid base64");
  /* 15-byte ciphertext */
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAA\"}",
                     "shorter than the 16-byte MAC");
  expect_parse_error("{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":\"\"}", "shorter than the 16-byte MAC");
  /* deep nesting is refused before jansson sees it */
  char deep[400];
  memset(deep, '[', 300);
  deep[300] = 0;
  expect_parse_error(deep, "nested too deep");
  /* extra members are fine, a 16-byte ciphertext parses */
  pusher__enc_payload p;
  const char *ok = "{\"x\":1,\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}";
  assert_int_equal(pusher__crypto_parse_payload(NULL, ok, strlen(ok), &p, NULL, 0), 0);
  assert_int_equal(p.ciphertext_len, 16);
  pusher__enc_payload_free(NULL, &p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b64_roundtrip),          cmocka_unit_test(test_b64_strict),
      cmocka_unit_test(test_vector_f_shared_secret), cmocka_unit_test(test_key_from_b64_errors),
      cmocka_unit_test(test_vector_g_open),          cmocka_unit_test(test_extra_vector_seal_open),
      cmocka_unit_test(test_payload_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
