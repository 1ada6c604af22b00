/* Message digests of our own for the engine's non-secret uses, and the
 * one-time libsodium set-up (docs/architecture.md, "Hashing without
 * OpenSSL").
 *
 *  - SHA-1 (FIPS 180-4): the WebSocket handshake's Sec-WebSocket-Accept,
 *    base64(SHA-1(key + GUID)) (RFC 6455 section 4.2.2).  The key is a
 *    public nonce: the digest only proves that the peer speaks WebSocket.
 *  - MD5 (RFC 1321): the body_md5 query parameter of an HTTP API call
 *    (docs/protocol.md §9.3), a checksum of the body which the
 *    HMAC-SHA256 auth_signature covers anyway.
 *
 * Neither is used where collision or preimage resistance matters; keyed
 * hashes (HMAC-SHA256) and encryption go through libsodium.  Both digests
 * are incremental: init, any number of updates of any length (including 0),
 * final.  Pure functions of their input; no allocation, no global state. */
#ifndef PUSHER_CORE_HASH_H
#define PUSHER_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PUSHER__SHA1_SIZE 20
#define PUSHER__MD5_SIZE 16

/* The part common to both: 64-byte blocks, a 64-bit message length. */
typedef struct pusher__md_block {
  uint64_t total;   /* bytes hashed so far */
  uint8_t buf[64];  /* a partial block */
  size_t fill;      /* bytes in buf (< 64) */
} pusher__md_block;

typedef struct pusher__sha1_ctx {
  uint32_t h[5];
  pusher__md_block b;
} pusher__sha1_ctx;

typedef struct pusher__md5_ctx {
  uint32_t h[4];
  pusher__md_block b;
} pusher__md5_ctx;

void pusher__sha1_init(pusher__sha1_ctx *c);
/* data may be NULL when n == 0. */
void pusher__sha1_update(pusher__sha1_ctx *c, const void *data, size_t n);
/* Writes the digest; c must be initialised again before reuse. */
void pusher__sha1_final(pusher__sha1_ctx *c, uint8_t out[PUSHER__SHA1_SIZE]);
void pusher__sha1(const void *data, size_t n, uint8_t out[PUSHER__SHA1_SIZE]);

void pusher__md5_init(pusher__md5_ctx *c);
void pusher__md5_update(pusher__md5_ctx *c, const void *data, size_t n);
void pusher__md5_final(pusher__md5_ctx *c, uint8_t out[PUSHER__MD5_SIZE]);
void pusher__md5(const void *data, size_t n, uint8_t out[PUSHER__MD5_SIZE]);

/* sodium_init() once per process (thread-safe); 1 when libsodium is usable,
 * 0 if its initialisation failed.  Call before any other libsodium function. */
int pusher__sodium_ready(void);

#ifdef __cplusplus
}
#endif
#endif
