/* SHA-1 and MD5 for non-secret uses, and libsodium's one-time set-up: see
 * hash.h.  Written from FIPS 180-4 (SHA-1, section 6.1) and RFC 1321 (MD5,
 * section 3); both pad the message the same way (a 1 bit, zeros, the bit
 * length in the last 8 bytes of a 64-byte block), SHA-1 big-endian and MD5
 * little-endian. */
#include "core/hash.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* ------------------------------------------------------------------ shared */

static uint32_t rotl(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

static uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

typedef void (*block_fn)(uint32_t *h, const uint8_t blk[64]);

/* Feed n bytes: complete the partial block, then whole blocks straight from
 * the input, then keep the tail. */
static void md_update(pusher__md_block *b, uint32_t *h, block_fn fn, const void *data,
                      size_t n) {
  const uint8_t *p = data;
  if (n == 0) return;
  b->total += n;
  if (b->fill) {
    size_t k = 64 - b->fill < n ? 64 - b->fill : n;
    memcpy(b->buf + b->fill, p, k);
    b->fill += k;
    p += k;
    n -= k;
    if (b->fill < 64) return;
    fn(h, b->buf);
    b->fill = 0;
  }
  for (; n >= 64; p += 64, n -= 64) fn(h, p);
  if (n) {
    memcpy(b->buf, p, n);
    b->fill = n;
  }
}

/* Padding (FIPS 180-4 section 5.1.1, RFC 1321 sections 3.1-3.2): 0x80,
 * zeros up to 56 mod 64, then the length in bits as 8 bytes. */
static void md_pad(pusher__md_block *b, uint32_t *h, block_fn fn, int big_endian) {
  uint64_t bits = b->total * 8;
  b->buf[b->fill++] = 0x80;
  if (b->fill > 56) {
    memset(b->buf + b->fill, 0, 64 - b->fill);
    fn(h, b->buf);
    b->fill = 0;
  }
  memset(b->buf + b->fill, 0, 56 - b->fill);
  for (int i = 0; i < 8; i++)
    b->buf[56 + i] = (uint8_t)(bits >> (big_endian ? 56 - 8 * i : 8 * i));
  fn(h, b->buf);
  b->fill = 0;
}

/* ------------------------------------------------------------------ SHA-1 */

static void sha1_block(uint32_t *h, const uint8_t blk[64]) {
  uint32_t w[80];
  for (int t = 0; t < 16; t++) w[t] = load_be32(blk + 4 * t);
  for (int t = 16; t < 80; t++) w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t < 20) {
      f = (b & c) ^ (~b & d); /* Ch */
      k = 0x5a827999u;
    } else if (t < 40) {
      f = b ^ c ^ d; /* Parity */
      k = 0x6ed9eba1u;
    } else if (t < 60) {
      f = (b & c) ^ (b & d) ^ (c & d); /* Maj */
      k = 0x8f1bbcdcu;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6u;
    }
    uint32_t tmp = rotl(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = tmp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void pusher__sha1_init(pusher__sha1_ctx *c) {
  static const uint32_t iv[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u,
                                 0xc3d2e1f0u}; /* FIPS 180-4 section 5.3.1 */
  memcpy(c->h, iv, sizeof iv);
  c->b.total = 0;
  c->b.fill = 0;
}

void pusher__sha1_update(pusher__sha1_ctx *c, const void *data, size_t n) {
  md_update(&c->b, c->h, sha1_block, data, n);
}

void pusher__sha1_final(pusher__sha1_ctx *c, uint8_t out[PUSHER__SHA1_SIZE]) {
  md_pad(&c->b, c->h, sha1_block, 1);
  for (int i = 0; i < 5; i++) store_be32(out + 4 * i, c->h[i]);
}

void pusher__sha1(const void *data, size_t n, uint8_t out[PUSHER__SHA1_SIZE]) {
  pusher__sha1_ctx c;
  pusher__sha1_init(&c);
  pusher__sha1_update(&c, data, n);
  pusher__sha1_final(&c, out);
}

/* ------------------------------------------------------------------ MD5 */

/* RFC 1321 section 3.4: T[i] = floor(2^32 * |sin(i + 1)|). */
static const uint32_t md5_t[64] = {
    0xd76aa478u, 0xe8c7b756u, 0x242070dbu, 0xc1bdceeeu, 0xf57c0fafu, 0x4787c62au, 0xa8304613u,
    0xfd469501u, 0x698098d8u, 0x8b44f7afu, 0xffff5bb1u, 0x895cd7beu, 0x6b901122u, 0xfd987193u,
    0xa679438eu, 0x49b40821u, 0xf61e2562u, 0xc040b340u, 0x265e5a51u, 0xe9b6c7aau, 0xd62f105du,
    0x02441453u, 0xd8a1e681u, 0xe7d3fbc8u, 0x21e1cde6u, 0xc33707d6u, 0xf4d50d87u, 0x455a14edu,
    0xa9e3e905u, 0xfcefa3f8u, 0x676f02d9u, 0x8d2a4c8au, 0xfffa3942u, 0x8771f681u, 0x6d9d6122u,
    0xfde5380cu, 0xa4beea44u, 0x4bdecfa9u, 0xf6bb4b60u, 0xbebfbc70u, 0x289b7ec6u, 0xeaa127fau,
    0xd4ef3085u, 0x04881d05u, 0xd9d4d039u, 0xe6db99e5u, 0x1fa27cf8u, 0xc4ac5665u, 0xf4292244u,
    0x432aff97u, 0xab9423a7u, 0xfc93a039u, 0x655b59c3u, 0x8f0ccc92u, 0xffeff47du, 0x85845dd1u,
    0x6fa87e4fu, 0xfe2ce6e0u, 0xa3014314u, 0x4e0811a1u, 0xf7537e82u, 0xbd3af235u, 0x2ad7d2bbu,
    0xeb86d391u};

/* The per-round shift amounts (s11..s44 of RFC 1321 section 3.4). */
static const uint8_t md5_s[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23},
                                    {6, 10, 15, 21}};

static void md5_block(uint32_t *h, const uint8_t blk[64]) {
  uint32_t x[16];
  for (int i = 0; i < 16; i++) x[i] = load_le32(blk + 4 * i);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
  for (int i = 0; i < 64; i++) {
    int round = i / 16;
    uint32_t f;
    int k;
    switch (round) {
    case 0:
      f = (b & c) | (~b & d); /* F */
      k = i;
      break;
    case 1:
      f = (b & d) | (c & ~d); /* G */
      k = (5 * i + 1) & 15;
      break;
    case 2:
      f = b ^ c ^ d; /* H */
      k = (3 * i + 5) & 15;
      break;
    default:
      f = c ^ (b | ~d); /* I */
      k = (7 * i) & 15;
      break;
    }
    uint32_t tmp = d;
    d = c;
    c = b;
    b = b + rotl(a + f + x[k] + md5_t[i], md5_s[round][i & 3]);
    a = tmp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
}

void pusher__md5_init(pusher__md5_ctx *c) {
  static const uint32_t iv[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu,
                                 0x10325476u}; /* RFC 1321 section 3.3 */
  memcpy(c->h, iv, sizeof iv);
  c->b.total = 0;
  c->b.fill = 0;
}

void pusher__md5_update(pusher__md5_ctx *c, const void *data, size_t n) {
  md_update(&c->b, c->h, md5_block, data, n);
}

void pusher__md5_final(pusher__md5_ctx *c, uint8_t out[PUSHER__MD5_SIZE]) {
  md_pad(&c->b, c->h, md5_block, 0);
  for (int i = 0; i < 4; i++) store_le32(out + 4 * i, c->h[i]);
}

void pusher__md5(const void *data, size_t n, uint8_t out[PUSHER__MD5_SIZE]) {
  pusher__md5_ctx c;
  pusher__md5_init(&c);
  pusher__md5_update(&c, data, n);
  pusher__md5_final(&c, out);
}

/* ------------------------------------------------------------------ libsodium */

/* sodium_init() is thread-safe and idempotent, but takes a lock on every
 * call; pthread_once makes the calls after the first one cheap. */
static pthread_once_t g_sodium_once = PTHREAD_ONCE_INIT;
static int g_sodium_ok;
static void sodium_init_once(void) { g_sodium_ok = sodium_init() >= 0; }

int pusher__sodium_ready(void) {
  if (pthread_once(&g_sodium_once, sodium_init_once) != 0) return sodium_init() >= 0;
  return g_sodium_ok;
}
