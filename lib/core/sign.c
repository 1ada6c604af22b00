/* Pusher signatures: see sign.h. */
#include "core/sign.h"

#include <pusher/pusher.h>
#include <pusher/rest.h>

#include "core/hash.h"
#include "core/mem.h"
#include "core/names.h"

#include <sodium.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ primitives */

void pusher__hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 0x0f];
  }
  out[2 * n] = '\0';
}

/* HMAC-SHA256 (RFC 2104, FIPS 180-4) is libsodium's: its init takes a key
 * of any length and hashes keys longer than the 64-byte block first, as
 * RFC 2104 section 2 says (tests/unit/hash_test.c runs RFC 4231's vectors,
 * the 131-byte key included).  No OpenSSL here, so that a pusherd without
 * TLS never loads OpenSSL 3's providers (docs/architecture.md, "Hashing
 * without OpenSSL"). */
int pusher__hmac_sha256_hex_parts(const void *key, size_t keylen, const char *const *parts,
                                  const size_t *lens, size_t nparts,
                                  char out[PUSHER__SHA256_HEX_SIZE]) {
  crypto_auth_hmacsha256_state st;
  uint8_t md[crypto_auth_hmacsha256_BYTES];
  static const uint8_t empty_key[1] = {0};

  if (key == NULL && keylen > 0) return PUSHER_ERR_INVALID_ARGUMENT;
  if (!pusher__sodium_ready()) return PUSHER_ERR_INTERNAL;
  if (crypto_auth_hmacsha256_init(&st, keylen ? key : empty_key, keylen) != 0)
    return PUSHER_ERR_INTERNAL;
  for (size_t i = 0; i < nparts; i++) {
    if (lens[i] == 0) continue;
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)parts[i], lens[i]);
  }
  crypto_auth_hmacsha256_final(&st, md);
  pusher__hex_encode(md, sizeof md, out);
  sodium_memzero(&st, sizeof st);
  return 0;
}

int pusher__hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
                            char out[PUSHER__SHA256_HEX_SIZE]) {
  const char *parts[1] = {(const char *)msg};
  size_t lens[1] = {msglen};
  if (msg == NULL && msglen > 0) return PUSHER_ERR_INVALID_ARGUMENT;
  return pusher__hmac_sha256_hex_parts(key, keylen, parts, lens, 1, out);
}

/* body_md5 is an integrity field, not a secret's hash: our own MD5
 * (core/hash.h) is enough. */
int pusher__md5_hex(const void *data, size_t len, char out[PUSHER__MD5_HEX_SIZE]) {
  uint8_t md[PUSHER__MD5_SIZE];
  if (data == NULL && len > 0) return PUSHER_ERR_INVALID_ARGUMENT;
  pusher__md5(data, len, md);
  pusher__hex_encode(md, sizeof md, out);
  return 0;
}

int pusher__ct_streq(const char *a, const char *b) {
  if (a == NULL || b == NULL) return 0;
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb) return 0;
  return la == 0 || sodium_memcmp(a, b, la) == 0;
}

/* ------------------------------------------------------------ validation */

/* The rules live in names.c; these keep the NUL-terminated signatures. */
int pusher__valid_socket_id(const char *s) {
  return s && pusher__check_socket_id(s, strlen(s), PUSHER__SOCKET_ID_MAX, NULL, 0);
}

int pusher__valid_channel_name_n(const char *s, size_t max_len) {
  return s && pusher__check_channel_name(s, strlen(s), max_len, 0, NULL, 0);
}

int pusher__valid_channel_name(const char *s) {
  return pusher__valid_channel_name_n(s, PUSHER__CHANNEL_NAME_MAX);
}

/* ------------------------------------------------------------ channel / user auth */

size_t pusher__auth_size(const char *app_key) {
  return (app_key ? strlen(app_key) : 0) + 1 + 64 + 1;
}

/* out = key ":" hex HMAC(secret, parts...) */
static int sign_parts(const char *app_key, const char *secret, const char *const *parts,
                      size_t nparts, char *out, size_t outlen) {
  size_t lens[8];
  char hex[PUSHER__SHA256_HEX_SIZE];
  if (out == NULL || nparts > 8) return PUSHER_ERR_INVALID_ARGUMENT;
  if (outlen < pusher__auth_size(app_key)) return PUSHER_ERR_TOO_LARGE;
  for (size_t i = 0; i < nparts; i++) lens[i] = strlen(parts[i]);
  int rc = pusher__hmac_sha256_hex_parts(secret, strlen(secret), parts, lens, nparts, hex);
  if (rc != 0) return rc;
  size_t kl = strlen(app_key);
  memcpy(out, app_key, kl);
  out[kl] = ':';
  memcpy(out + kl + 1, hex, PUSHER__SHA256_HEX_SIZE);
  return 0;
}

int pusher__sign_channel(const char *app_key, const char *secret, const char *socket_id,
                         const char *channel, const char *channel_data, char *out,
                         size_t outlen) {
  if (!app_key || !secret || !socket_id || !channel) return PUSHER_ERR_INVALID_ARGUMENT;
  const char *parts[5] = {socket_id, ":", channel, ":", channel_data};
  return sign_parts(app_key, secret, parts, channel_data ? 5 : 3, out, outlen);
}

int pusher__sign_user(const char *app_key, const char *secret, const char *socket_id,
                      const char *user_data, char *out, size_t outlen) {
  if (!app_key || !secret || !socket_id || !user_data) return PUSHER_ERR_INVALID_ARGUMENT;
  const char *parts[3] = {socket_id, "::user::", user_data};
  return sign_parts(app_key, secret, parts, 3, out, outlen);
}

/* auth == app_key ":" hex, comparing the whole text in constant time (the
 * time depends only on the lengths, which are not secret). */
static int verify_auth(const char *app_key, const char *hex, const char *auth) {
  size_t kl = strlen(app_key), al = strlen(auth);
  if (al != kl + 1 + 64) return PUSHER_ERR_AUTH;
  int diff = kl ? sodium_memcmp(auth, app_key, kl) : 0;
  diff |= auth[kl] != ':';
  diff |= sodium_memcmp(auth + kl + 1, hex, 64);
  return diff ? PUSHER_ERR_AUTH : 0;
}

int pusher__verify_channel(const char *app_key, const char *secret, const char *socket_id,
                           const char *channel, const char *channel_data, const char *auth) {
  if (!app_key || !secret || !socket_id || !channel) return PUSHER_ERR_INVALID_ARGUMENT;
  if (auth == NULL) return PUSHER_ERR_AUTH;
  const char *parts[5] = {socket_id, ":", channel, ":", channel_data};
  size_t lens[5];
  size_t np = channel_data ? 5 : 3;
  char hex[PUSHER__SHA256_HEX_SIZE];
  for (size_t i = 0; i < np; i++) lens[i] = strlen(parts[i]);
  int rc = pusher__hmac_sha256_hex_parts(secret, strlen(secret), parts, lens, np, hex);
  return rc ? rc : verify_auth(app_key, hex, auth);
}

int pusher__verify_user(const char *app_key, const char *secret, const char *socket_id,
                        const char *user_data, const char *auth) {
  if (!app_key || !secret || !socket_id || !user_data) return PUSHER_ERR_INVALID_ARGUMENT;
  if (auth == NULL) return PUSHER_ERR_AUTH;
  const char *parts[3] = {socket_id, "::user::", user_data};
  size_t lens[3];
  char hex[PUSHER__SHA256_HEX_SIZE];
  for (size_t i = 0; i < 3; i++) lens[i] = strlen(parts[i]);
  int rc = pusher__hmac_sha256_hex_parts(secret, strlen(secret), parts, lens, 3, hex);
  return rc ? rc : verify_auth(app_key, hex, auth);
}

int pusher__verify_hmac_hex(const char *secret, const void *msg, size_t msglen,
                            const char *hexsig) {
  char hex[PUSHER__SHA256_HEX_SIZE], given[PUSHER__SHA256_HEX_SIZE];
  if (secret == NULL || hexsig == NULL) return PUSHER_ERR_AUTH;
  if (strlen(hexsig) != 64) return PUSHER_ERR_AUTH;
  for (size_t i = 0; i < 64; i++) {
    char c = hexsig[i];
    given[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
  }
  given[64] = '\0';
  if (pusher__hmac_sha256_hex(secret, strlen(secret), msg, msglen, hex) != 0)
    return PUSHER_ERR_INTERNAL;
  return pusher__ct_streq(hex, given) ? 0 : PUSHER_ERR_AUTH;
}

/* ------------------------------------------------------------ REST */

typedef struct qpair {
  char *key; /* lowercased copy */
  const char *value;
} qpair;

static int qpair_cmp(const void *a, const void *b) {
  const qpair *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : strcmp(x->value, y->value);
}

static char *lower_dup(const pusher_mem *mem, const char *s) {
  char *d = pusher__strdup(mem, s);
  if (d)
    for (char *p = d; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  return d;
}

static void free_pairs(const pusher_mem *mem, qpair *v, size_t n) {
  if (v == NULL) return;
  for (size_t i = 0; i < n; i++) pusher__free(mem, v[i].key);
  pusher__free(mem, v);
}

/* Sorted, lowercased copy of params (without auth_signature), plus extras. */
static int sorted_pairs(const pusher_mem *mem, const pusher_kv *params, size_t nparams,
                        const pusher_kv *extra, size_t nextra, qpair **out, size_t *nout) {
  size_t total = nparams + nextra, n = 0;
  qpair *v = pusher__calloc(mem, total ? total : 1, sizeof *v);
  if (v == NULL) return PUSHER_ERR_NOMEM;
  for (size_t i = 0; i < total; i++) {
    const pusher_kv *kv = i < nparams ? &params[i] : &extra[i - nparams];
    if (kv->name == NULL || kv->value == NULL) {
      free_pairs(mem, v, n);
      return PUSHER_ERR_INVALID_ARGUMENT;
    }
    char *k = lower_dup(mem, kv->name);
    if (k == NULL) {
      free_pairs(mem, v, n);
      return PUSHER_ERR_NOMEM;
    }
    if (strcmp(k, "auth_signature") == 0) {
      pusher__free(mem, k);
      continue;
    }
    v[n].key = k;
    v[n].value = kv->value;
    n++;
  }
  qsort(v, n, sizeof *v, qpair_cmp);
  *out = v;
  *nout = n;
  return 0;
}

static int build_sts(const pusher_mem *mem, const char *method, const char *path,
                     const qpair *v, size_t n, pusher__buf *b) {
  int rc = 0;
  for (const char *p = method; *p && rc == 0; p++) {
    char c = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    rc = pusher__buf_append(b, &c, 1);
  }
  if (rc == 0) rc = pusher__buf_append(b, "\n", 1);
  if (rc == 0) rc = pusher__buf_append(b, path, strlen(path));
  if (rc == 0) rc = pusher__buf_append(b, "\n", 1);
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (i > 0) rc = pusher__buf_append(b, "&", 1);
    if (rc == 0) rc = pusher__buf_append(b, v[i].key, strlen(v[i].key));
    if (rc == 0) rc = pusher__buf_append(b, "=", 1);
    if (rc == 0) rc = pusher__buf_append(b, v[i].value, strlen(v[i].value));
  }
  if (rc == 0) rc = pusher__buf_append(b, "", 1); /* NUL */
  return rc;
}

int pusher__rest_string_to_sign(const pusher_mem *mem, const char *method, const char *path,
                                const pusher_kv *params, size_t nparams, char **out) {
  qpair *v = NULL;
  size_t n = 0;
  pusher__buf b;
  if (!method || !path || !out || (nparams && !params)) return PUSHER_ERR_INVALID_ARGUMENT;
  int rc = sorted_pairs(mem, params, nparams, NULL, 0, &v, &n);
  if (rc != 0) return rc;
  pusher__buf_init(&b, mem, 0);
  rc = build_sts(mem, method, path, v, n, &b);
  free_pairs(mem, v, n);
  if (rc != 0) {
    pusher__buf_free(&b);
    return rc;
  }
  *out = (char *)b.data; /* ownership moves to the caller */
  return 0;
}

static int url_escape_append(pusher__buf *b, const char *s) {
  static const char hexd[] = "0123456789ABCDEF";
  int rc = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
    unsigned char c = *p;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      rc = pusher__buf_append(b, p, 1);
    } else {
      char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
      rc = pusher__buf_append(b, e, 3);
    }
  }
  return rc;
}

static int reserved_key(const char *name) {
  static const char *const reserved[] = {"auth_key", "auth_timestamp", "auth_version",
                                         "auth_signature", "body_md5"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcasecmp(name, reserved[i]) == 0) return 1;
  return 0;
}

int pusher__rest_sign(const pusher_mem *mem, const char *method, const char *path,
                      const pusher_kv *params, size_t nparams, const void *body,
                      size_t body_len, const char *app_key, const char *secret,
                      int64_t timestamp, char **query_out,
                      char signature_out[PUSHER__SHA256_HEX_SIZE]) {
  char ts[32], md5[PUSHER__MD5_HEX_SIZE], sig[PUSHER__SHA256_HEX_SIZE];
  pusher_kv extra[4];
  size_t nextra = 0;
  qpair *v = NULL;
  size_t n = 0;
  pusher__buf sts, q;
  int rc;

  if (!method || !path || !app_key || !secret || !query_out || (nparams && !params) ||
      (body_len && !body))
    return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < nparams; i++) {
    if (params[i].name == NULL || params[i].value == NULL) return PUSHER_ERR_INVALID_ARGUMENT;
    if (reserved_key(params[i].name)) return PUSHER_ERR_INVALID_ARGUMENT;
  }
  snprintf(ts, sizeof ts, "%" PRId64, timestamp);
  extra[nextra++] = (pusher_kv){"auth_key", app_key};
  extra[nextra++] = (pusher_kv){"auth_timestamp", ts};
  extra[nextra++] = (pusher_kv){"auth_version", "1.0"};
  if (body_len > 0) {
    rc = pusher__md5_hex(body, body_len, md5);
    if (rc != 0) return rc;
    extra[nextra++] = (pusher_kv){"body_md5", md5};
  }
  rc = sorted_pairs(mem, params, nparams, extra, nextra, &v, &n);
  if (rc != 0) return rc;

  pusher__buf_init(&sts, mem, 0);
  pusher__buf_init(&q, mem, 0);
  rc = build_sts(mem, method, path, v, n, &sts);
  if (rc == 0)
    rc = pusher__hmac_sha256_hex(secret, strlen(secret), sts.data, sts.len - 1, sig);
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (i > 0) rc = pusher__buf_append(&q, "&", 1);
    if (rc == 0) rc = url_escape_append(&q, v[i].key);
    if (rc == 0) rc = pusher__buf_append(&q, "=", 1);
    if (rc == 0) rc = url_escape_append(&q, v[i].value);
  }
  if (rc == 0) rc = pusher__buf_appendf(&q, "&auth_signature=%s", sig);
  if (rc == 0) rc = pusher__buf_append(&q, "", 1);
  free_pairs(mem, v, n);
  pusher__buf_free(&sts);
  if (rc != 0) {
    pusher__buf_free(&q);
    return rc;
  }
  *query_out = (char *)q.data;
  if (signature_out) memcpy(signature_out, sig, sizeof sig);
  return 0;
}

static const char *find_param(const pusher_kv *params, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (params[i].name && strcasecmp(params[i].name, name) == 0) return params[i].value;
  return NULL;
}

static int fail_why(char *why, size_t whylen, const char *fmt, const char *a, const char *b) {
  if (why && whylen) snprintf(why, whylen, fmt, a, b);
  return PUSHER_ERR_AUTH;
}

int pusher__rest_verify(const pusher_mem *mem, const char *method, const char *path,
                        const pusher_kv *params, size_t nparams, const void *body,
                        size_t body_len, const char *app_key, const char *secret, int64_t now,
                        int64_t max_skew, char *why, size_t whylen) {
  if (why && whylen) why[0] = '\0';
  if (!method || !path || !app_key || !secret || (nparams && !params) || (body_len && !body))
    return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < nparams; i++)
    if (params[i].name == NULL || params[i].value == NULL) return PUSHER_ERR_INVALID_ARGUMENT;

  const char *key = find_param(params, nparams, "auth_key");
  const char *ts = find_param(params, nparams, "auth_timestamp");
  const char *ver = find_param(params, nparams, "auth_version");
  const char *md5 = find_param(params, nparams, "body_md5");
  const char *sig = find_param(params, nparams, "auth_signature");

  if (key == NULL) return fail_why(why, whylen, "Missing auth_key%s%s", "", "");
  if (strcmp(key, app_key) != 0)
    return fail_why(why, whylen, "Unknown auth_key \"%.64s\"%s", key, "");
  if (ts == NULL) return fail_why(why, whylen, "Missing auth_timestamp%s%s", "", "");
  {
    char *end = NULL;
    long long t;
    if (ts[0] == '\0' || !((ts[0] >= '0' && ts[0] <= '9') || ts[0] == '-'))
      return fail_why(why, whylen, "Invalid auth_timestamp \"%.32s\"%s", ts, "");
    t = strtoll(ts, &end, 10);
    if (end == NULL || *end != '\0')
      return fail_why(why, whylen, "Invalid auth_timestamp \"%.32s\"%s", ts, "");
    if (max_skew >= 0) {
      long long d = (long long)now - t;
      if (d < 0) d = -d;
      if (d > (long long)max_skew) {
        if (why && whylen)
          snprintf(why, whylen,
                   "Timestamp expired: Given timestamp (%lld) not within %lld" "s of server time (%lld)",
                   t, (long long)max_skew, (long long)now);
        return PUSHER_ERR_AUTH;
      }
    }
  }
  if (ver == NULL || strcmp(ver, "1.0") != 0)
    return fail_why(why, whylen, "Invalid auth_version \"%.16s\" (expected 1.0)%s",
                    ver ? ver : "", "");
  if (body_len > 0) {
    char want[PUSHER__MD5_HEX_SIZE];
    int rc = pusher__md5_hex(body, body_len, want);
    if (rc != 0) return rc;
    if (md5 == NULL) return fail_why(why, whylen, "Missing body_md5%s%s", "", "");
    if (strcasecmp(md5, want) != 0)
      return fail_why(why, whylen, "Invalid body_md5 \"%.40s\", expected \"%s\"", md5, want);
  }
  if (sig == NULL) return fail_why(why, whylen, "Missing auth_signature%s%s", "", "");

  char *sts = NULL;
  int rc = pusher__rest_string_to_sign(mem, method, path, params, nparams, &sts);
  if (rc != 0) return rc;
  char expected[PUSHER__SHA256_HEX_SIZE];
  rc = pusher__hmac_sha256_hex(secret, strlen(secret), sts, strlen(sts), expected);
  if (rc == 0 && !pusher__ct_streq(expected, sig)) {
    if (why && whylen) {
      /* Show the string to sign with escaped newlines, as Pusher does. */
      pusher__buf e;
      pusher__buf_init(&e, mem, 0);
      int erc = 0;
      for (const char *p = sts; *p && erc == 0; p++)
        erc = *p == '\n' ? pusher__buf_append(&e, "\\n", 2) : pusher__buf_append(&e, p, 1);
      if (erc == 0) erc = pusher__buf_append(&e, "", 1);
      snprintf(why, whylen,
               "Invalid signature: you should have sent HmacSHA256Hex(\"%s\", your_secret_key),"
               " but you sent \"%.80s\"",
               erc == 0 ? (const char *)e.data : "", sig);
      pusher__buf_free(&e);
    }
    rc = PUSHER_ERR_AUTH;
  }
  pusher__free(mem, sts);
  return rc;
}

/* ------------------------------------------------------------ public API */

int pusher_channel_name_valid(const char *name) { return pusher__valid_channel_name(name); }

int pusher_socket_id_valid(const char *socket_id) { return pusher__valid_socket_id(socket_id); }

size_t pusher_auth_size(const char *app_key) { return pusher__auth_size(app_key); }

int pusher_auth_sign_channel(const char *app_key, const char *secret, const char *socket_id,
                             const char *channel, const char *channel_data, char *out,
                             size_t outlen) {
  if (!pusher__valid_socket_id(socket_id) || !pusher__valid_channel_name(channel))
    return PUSHER_ERR_INVALID_ARGUMENT;
  return pusher__sign_channel(app_key, secret, socket_id, channel, channel_data, out, outlen);
}

int pusher_auth_sign_user(const char *app_key, const char *secret, const char *socket_id,
                          const char *user_data, char *out, size_t outlen) {
  if (!pusher__valid_socket_id(socket_id)) return PUSHER_ERR_INVALID_ARGUMENT;
  return pusher__sign_user(app_key, secret, socket_id, user_data, out, outlen);
}
