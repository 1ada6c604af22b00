/* Encrypted channels: base64, key derivation, secretbox (see crypto.h). */
#include "core/crypto.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "core/mem.h"
#include "core/proto.h"
#include <pusher/channels.h>

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whylen, const char *fmt, ...) {
  if (!why || whylen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

/* libsodium must be initialized once before use (core/hash.h). */
static int sodium_ready(void) { return pusher__sodium_ready(); }

/* ------------------------------------------------------------------ base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t pusher__b64_encoded_size(size_t n) { return (n + 2) / 3 * 4 + 1; }

int pusher__b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen) {
  if (n > (SIZE_MAX - 1) / 4 * 3 - 2 || outlen < pusher__b64_encoded_size(n))
    return PUSHER_ERR_TOO_LARGE;
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t g = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_alphabet[g >> 18];
    out[o++] = b64_alphabet[(g >> 12) & 63];
    out[o++] = b64_alphabet[(g >> 6) & 63];
    out[o++] = b64_alphabet[g & 63];
  }
  if (n - i == 1) {
    uint32_t g = (uint32_t)in[i] << 16;
    out[o++] = b64_alphabet[g >> 18];
    out[o++] = b64_alphabet[(g >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t g = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[g >> 18];
    out[o++] = b64_alphabet[(g >> 12) & 63];
    out[o++] = b64_alphabet[(g >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
  return 0;
}

static int b64_value(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

int pusher__b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen) {
  *outlen = 0;
  if (len % 4 != 0) return PUSHER_ERR_PROTO;
  size_t pad = 0;
  if (len >= 4 && in[len - 1] == '=') {
    pad++;
    if (in[len - 2] == '=') pad++;
  }
  size_t need = len / 4 * 3 - pad;
  if (need > outcap) return PUSHER_ERR_TOO_LARGE;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int last = i + 4 == len;
    int v[4];
    for (int k = 0; k < 4; k++) {
      unsigned char ch = (unsigned char)in[i + k];
      if (ch == '=' && last && k >= 4 - (int)pad) {
        v[k] = 0;
        continue;
      }
      v[k] = b64_value(ch);
      if (v[k] < 0) return PUSHER_ERR_PROTO;
    }
    uint32_t g = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    if (last && pad == 2) {
      if (g & 0xffff) return PUSHER_ERR_PROTO; /* non-zero unused bits */
      out[o++] = (uint8_t)(g >> 16);
    } else if (last && pad == 1) {
      if (g & 0xff) return PUSHER_ERR_PROTO;
      out[o++] = (uint8_t)(g >> 16);
      out[o++] = (uint8_t)(g >> 8);
    } else {
      out[o++] = (uint8_t)(g >> 16);
      out[o++] = (uint8_t)(g >> 8);
      out[o++] = (uint8_t)g;
    }
  }
  *outlen = o;
  return 0;
}

/* ------------------------------------------------------------------ keys */

void pusher__crypto_shared_secret(const char *channel, const uint8_t *master, size_t master_len,
                                  uint8_t out[PUSHER__SECRETBOX_KEYBYTES]) {
  (void)sodium_ready();
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const unsigned char *)channel, strlen(channel));
  if (master_len) crypto_hash_sha256_update(&st, master, master_len);
  crypto_hash_sha256_final(&st, out);
}

int pusher__crypto_shared_secret_b64(const char *channel, const char *master_b64, char out[45]) {
  if (!channel || !master_b64) return PUSHER_ERR_INVALID_ARGUMENT;
  uint8_t master[48], key[PUSHER__SECRETBOX_KEYBYTES];
  size_t n;
  if (pusher__b64_decode(master_b64, strlen(master_b64), master, sizeof master, &n) != 0 || n != 32)
    return PUSHER_ERR_INVALID_ARGUMENT;
  pusher__crypto_shared_secret(channel, master, n, key);
  int e = pusher__b64_encode(key, sizeof key, out, 45);
  sodium_memzero(master, sizeof master);
  sodium_memzero(key, sizeof key);
  return e;
}

int pusher_shared_secret(const char *channel, const char *master_key_b64, char out[45]) {
  return pusher__crypto_shared_secret_b64(channel, master_key_b64, out);
}

int pusher__crypto_key_from_b64(const char *b64, uint8_t key[PUSHER__SECRETBOX_KEYBYTES], char *why,
                                size_t whylen) {
  uint8_t tmp[48];
  size_t n;
  if (!b64) {
    set_why(why, whylen, "shared_secret is missing");
    return PUSHER_ERR_PROTO;
  }
  int e = pusher__b64_decode(b64, strlen(b64), tmp, sizeof tmp, &n);
  if (e == 0 && n != PUSHER__SECRETBOX_KEYBYTES) e = PUSHER_ERR_TOO_LARGE;
  if (e == PUSHER_ERR_TOO_LARGE) {
    set_why(why, whylen, "shared_secret must be 32 bytes of base64");
    return PUSHER_ERR_PROTO;
  }
  if (e != 0) {
    set_why(why, whylen, "shared_secret is not valid base64");
    return PUSHER_ERR_PROTO;
  }
  memcpy(key, tmp, PUSHER__SECRETBOX_KEYBYTES);
  sodium_memzero(tmp, sizeof tmp);
  return 0;
}

/* ------------------------------------------------------------------ payload */

static const char *field_string(json_t *root, const char *name, size_t *len) {
  json_t *v = json_object_get(root, name);
  if (!json_is_string(v)) return NULL;
  *len = json_string_length(v);
  return json_string_value(v);
}

int pusher__crypto_parse_payload(const pusher_mem *mem, const char *data, size_t len,
                                 pusher__enc_payload *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  if (!data) {
    set_why(why, whylen, "encrypted payload: no data");
    return PUSHER_ERR_PROTO;
  }
  if (len > PUSHER__ENC_PAYLOAD_MAX) {
    set_why(why, whylen, "encrypted payload: %zu bytes is over the %u-byte cap", len,
            PUSHER__ENC_PAYLOAD_MAX);
    return PUSHER_ERR_PROTO;
  }
  if (!pusher__json_depth_ok(data, len, PUSHER__JSON_MAX_DEPTH)) {
    set_why(why, whylen, "encrypted payload: JSON nested too deep");
    return PUSHER_ERR_PROTO;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data, len, JSON_DECODE_ANY, &jerr);
  if (!root) {
    set_why(why, whylen, "encrypted payload: not JSON (%s)", jerr.text);
    return PUSHER_ERR_PROTO;
  }
  int rc = PUSHER_ERR_PROTO;
  size_t nlen = 0, clen = 0;
  const char *nonce, *ct;
  if (!json_is_object(root)) {
    set_why(why, whylen, "encrypted payload: not a JSON object");
    goto done;
  }
  if (!(nonce = field_string(root, "nonce", &nlen))) {
    set_why(why, whylen, "encrypted payload: \"nonce\" missing or not a string");
    goto done;
  }
  if (!(ct = field_string(root, "ciphertext", &clen))) {
    set_why(why, whylen, "encrypted payload: \"ciphertext\" missing or not a string");
    goto done;
  }
  size_t n;
  uint8_t nbuf[PUSHER__SECRETBOX_NONCEBYTES + 3];
  int e = pusher__b64_decode(nonce, nlen, nbuf, sizeof nbuf, &n);
  if (e == PUSHER_ERR_PROTO) {
    set_why(why, whylen, "encrypted payload: \"nonce\" is not valid base64");
    goto done;
  }
  if (e != 0 || n != PUSHER__SECRETBOX_NONCEBYTES) {
    set_why(why, whylen, "encrypted payload: nonce must be %d bytes", PUSHER__SECRETBOX_NONCEBYTES);
    goto done;
  }
  size_t cap = clen / 4 * 3 + 1;
  uint8_t *cbuf = pusher__malloc(mem, cap);
  if (!cbuf) {
    rc = PUSHER_ERR_NOMEM;
    set_why(why, whylen, "out of memory");
    goto done;
  }
  if (pusher__b64_decode(ct, clen, cbuf, cap, &n) != 0) {
    pusher__free(mem, cbuf);
    set_why(why, whylen, "encrypted payload: \"ciphertext\" is not valid base64");
    goto done;
  }
  if (n < PUSHER__SECRETBOX_MACBYTES) {
    pusher__free(mem, cbuf);
    set_why(why, whylen, "encrypted payload: ciphertext shorter than the %d-byte MAC",
            PUSHER__SECRETBOX_MACBYTES);
    goto done;
  }
  memcpy(out->nonce, nbuf, PUSHER__SECRETBOX_NONCEBYTES);
  out->ciphertext = cbuf;
  out->ciphertext_len = n;
  rc = 0;
done:
  json_decref(root);
  return rc;
}

void pusher__enc_payload_free(const pusher_mem *mem, pusher__enc_payload *p) {
  if (!p) return;
  pusher__free(mem, p->ciphertext);
  memset(p, 0, sizeof *p);
}

int pusher__crypto_open(const pusher_mem *mem, const uint8_t key[PUSHER__SECRETBOX_KEYBYTES],
                        const pusher__enc_payload *p, char **plain, size_t *plain_len, char *why,
                        size_t whylen) {
  *plain = NULL;
  *plain_len = 0;
  if (!p->ciphertext || p->ciphertext_len < PUSHER__SECRETBOX_MACBYTES) {
    set_why(why, whylen, "encrypted payload: ciphertext shorter than the MAC");
    return PUSHER_ERR_PROTO;
  }
  if (!sodium_ready()) {
    set_why(why, whylen, "libsodium could not be initialized");
    return PUSHER_ERR_INTERNAL;
  }
  size_t n = p->ciphertext_len - PUSHER__SECRETBOX_MACBYTES;
  char *buf = pusher__malloc(mem, n + 1);
  if (!buf) {
    set_why(why, whylen, "out of memory");
    return PUSHER_ERR_NOMEM;
  }
  if (crypto_secretbox_open_easy((unsigned char *)buf, p->ciphertext, p->ciphertext_len, p->nonce,
                                 key) != 0) {
    pusher__free(mem, buf);
    set_why(why, whylen, "encrypted payload: authentication failed (wrong key or tampered data)");
    return PUSHER_ERR_DECRYPT;
  }
  buf[n] = '\0';
  *plain = buf;
  *plain_len = n;
  return 0;
}

int pusher__crypto_decrypt_event(const pusher_mem *mem, const uint8_t key[PUSHER__SECRETBOX_KEYBYTES],
                                 const char *data, size_t len, char **plain, size_t *plain_len,
                                 char *why, size_t whylen) {
  *plain = NULL;
  *plain_len = 0;
  pusher__enc_payload p;
  int e = pusher__crypto_parse_payload(mem, data, len, &p, why, whylen);
  if (e != 0) return e;
  e = pusher__crypto_open(mem, key, &p, plain, plain_len, why, whylen);
  pusher__enc_payload_free(mem, &p);
  return e;
}

int pusher__crypto_seal(const pusher_mem *mem, const uint8_t key[PUSHER__SECRETBOX_KEYBYTES],
                        const uint8_t nonce[PUSHER__SECRETBOX_NONCEBYTES], const void *plain,
                        size_t plain_len, char **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  if (plain_len > PUSHER__ENC_PAYLOAD_MAX) return PUSHER_ERR_TOO_LARGE;
  if (!sodium_ready()) return PUSHER_ERR_INTERNAL;
  size_t clen = plain_len + PUSHER__SECRETBOX_MACBYTES;
  uint8_t *box = pusher__malloc(mem, clen);
  if (!box) return PUSHER_ERR_NOMEM;
  crypto_secretbox_easy(box, plain, plain_len, nonce, key);
  size_t nb = pusher__b64_encoded_size(PUSHER__SECRETBOX_NONCEBYTES);
  size_t cb = pusher__b64_encoded_size(clen);
  static const char head[] = "{\"nonce\":\"", mid[] = "\",\"ciphertext\":\"", tail[] = "\"}";
  size_t total = sizeof head - 1 + (nb - 1) + sizeof mid - 1 + (cb - 1) + sizeof tail - 1;
  char *s = pusher__malloc(mem, total + 1);
  if (!s) {
    pusher__free(mem, box);
    return PUSHER_ERR_NOMEM;
  }
  size_t o = 0;
  memcpy(s + o, head, sizeof head - 1);
  o += sizeof head - 1;
  pusher__b64_encode(nonce, PUSHER__SECRETBOX_NONCEBYTES, s + o, nb);
  o += nb - 1;
  memcpy(s + o, mid, sizeof mid - 1);
  o += sizeof mid - 1;
  pusher__b64_encode(box, clen, s + o, cb);
  o += cb - 1;
  memcpy(s + o, tail, sizeof tail); /* with NUL */
  o += sizeof tail - 1;
  pusher__free(mem, box);
  *out = s;
  *outlen = o;
  return 0;
}
