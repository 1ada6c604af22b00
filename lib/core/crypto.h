/* End-to-end encrypted channels (`private-encrypted-`): base64, the
 * per-channel key derivation and NaCl secretbox over the wire payload
 * {"nonce":"<b64 24 bytes>","ciphertext":"<b64>"} (docs/protocol.md §7).
 *
 * Pure functions; the only library used is libsodium (SHA-256 and
 * crypto_secretbox_easy / _open_easy, i.e. XSalsa20-Poly1305).
 *
 * Errors follow the split an encrypted channel needs:
 *   PUSHER_ERR_PROTO    the payload is malformed (not JSON, a field missing,
 *                       bad base64, nonce not 24 bytes, ciphertext < 16
 *                       bytes): report it, re-authorizing will not help;
 *   PUSHER_ERR_DECRYPT  well-formed but the MAC does not verify (wrong key,
 *                       tampered data): re-authorize once, then report.
 * Every function that fails on input fills `why` (may be NULL) with one
 * line of text. */
#ifndef PUSHER_CORE_CRYPTO_H
#define PUSHER_CORE_CRYPTO_H

#include <pusher/common.h>

#define PUSHER__SECRETBOX_KEYBYTES 32
#define PUSHER__SECRETBOX_NONCEBYTES 24
#define PUSHER__SECRETBOX_MACBYTES 16
/* Inbound payload cap (the whole {"nonce","ciphertext"} text). */
#define PUSHER__ENC_PAYLOAD_MAX (1024u * 1024u)

/* ---- base64 (RFC 4648 standard alphabet, with padding) ---- */

/* Characters needed to encode n bytes, including the terminating NUL. */
size_t pusher__b64_encoded_size(size_t n);
/* Encode n bytes into out (NUL-terminated).  PUSHER_ERR_TOO_LARGE when
 * outlen < pusher__b64_encoded_size(n). */
int pusher__b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
/* Strict decode of exactly len characters: length a multiple of 4, only the
 * standard alphabet, '=' only as one or two final pad characters, unused
 * bits of the last group zero, no whitespace.  Writes at most outcap bytes
 * and sets *outlen.  PUSHER_ERR_PROTO on bad input, PUSHER_ERR_TOO_LARGE when
 * outcap is too small (3 * len / 4 is always enough). */
int pusher__b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen);

/* ---- keys ---- */

/* shared_secret = SHA-256(UTF-8 channel_name || master_key), as the server
 * SDKs derive it (vector F).  master may have any length (vector G uses 33
 * bytes). */
void pusher__crypto_shared_secret(const char *channel, const uint8_t *master, size_t master_len,
                                  uint8_t out[PUSHER__SECRETBOX_KEYBYTES]);
/* Same from a base64 master key, result as base64 (45 bytes with NUL).
 * PUSHER_ERR_INVALID_ARGUMENT when master_b64 is not valid base64 of 32
 * bytes (encryptionMasterKeyBase64 must be 32 bytes). */
int pusher__crypto_shared_secret_b64(const char *channel, const char *master_b64, char out[45]);
/* Decode the `shared_secret` of an auth reply: valid base64 of exactly 32
 * bytes, else PUSHER_ERR_PROTO with why. */
int pusher__crypto_key_from_b64(const char *b64, uint8_t key[PUSHER__SECRETBOX_KEYBYTES], char *why,
                                size_t whylen);

/* ---- payload ---- */

typedef struct pusher__enc_payload {
  uint8_t nonce[PUSHER__SECRETBOX_NONCEBYTES];
  uint8_t *ciphertext; /* MAC (16 bytes) + box, allocated with the mem given */
  size_t ciphertext_len;
} pusher__enc_payload;

/* Parse the event data text of an encrypted channel event.  Extra members
 * are ignored.  On error *out is zeroed (nothing to free). */
int pusher__crypto_parse_payload(const pusher_mem *mem, const char *data, size_t len,
                                 pusher__enc_payload *out, char *why, size_t whylen);
void pusher__enc_payload_free(const pusher_mem *mem, pusher__enc_payload *p);

/* Open a parsed payload with key.  *plain (NUL-terminated, allocated with
 * mem) and *plain_len receive the plaintext.  PUSHER_ERR_DECRYPT when the MAC
 * does not verify. */
int pusher__crypto_open(const pusher_mem *mem, const uint8_t key[PUSHER__SECRETBOX_KEYBYTES],
                        const pusher__enc_payload *p, char **plain, size_t *plain_len, char *why,
                        size_t whylen);
/* Parse + open in one call (what the engine does for each event). */
int pusher__crypto_decrypt_event(const pusher_mem *mem, const uint8_t key[PUSHER__SECRETBOX_KEYBYTES],
                                 const char *data, size_t len, char **plain, size_t *plain_len,
                                 char *why, size_t whylen);
/* Seal plaintext with key and the given nonce into the wire text
 * {"nonce":"..","ciphertext":".."} (allocated with mem, NUL-terminated).
 * Used by tests, pusherd and anything that triggers encrypted events; the
 * caller supplies a fresh random nonce for every message. */
int pusher__crypto_seal(const pusher_mem *mem, const uint8_t key[PUSHER__SECRETBOX_KEYBYTES],
                        const uint8_t nonce[PUSHER__SECRETBOX_NONCEBYTES], const void *plain,
                        size_t plain_len, char **out, size_t *outlen);

#endif
