/* libFuzzer target: the encrypted channel payload path (lib/core/crypto.c):
 * parse {"nonce","ciphertext"} and open it with a fixed key (the shared
 * secret of docs/protocol.md §12 F).  Opened plaintext is resealed with the same
 * nonce and must give back a payload that opens to the same bytes.
 * Seed corpus: fuzz/corpus/encrypted/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/mem.h"

static const uint8_t key[32] = {0x9e, 0x5a, 0xf8, 0xf4, 0x84, 0x90, 0x1f, 0x3f, 0x75, 0xc9, 0x2d,
                                0xdc, 0xcb, 0xfc, 0x96, 0x99, 0x6f, 0x30, 0x14, 0xc3, 0x5e, 0x4e,
                                0x73, 0x4b, 0xe6, 0xd3, 0x47, 0x9d, 0xb3, 0xc9, 0x70, 0xb4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pusher__enc_payload p;
  char why[256];
  int e = pusher__crypto_parse_payload(NULL, (const char *)data, size, &p, why, sizeof why);
  if (e != 0) {
    if (p.ciphertext || e != PUSHER_ERR_PROTO) abort();
    return 0;
  }
  if (p.ciphertext_len < 16) abort();
  char *plain;
  size_t n;
  e = pusher__crypto_open(NULL, key, &p, &plain, &n, why, sizeof why);
  if (e == 0) {
    if (n != p.ciphertext_len - 16 || plain[n] != '\0') abort();
    char *wire;
    size_t wlen;
    if (pusher__crypto_seal(NULL, key, p.nonce, plain, n, &wire, &wlen) != 0) abort();
    char *again;
    size_t n2;
    if (pusher__crypto_decrypt_event(NULL, key, wire, wlen, &again, &n2, why, sizeof why) != 0) abort();
    if (n2 != n || memcmp(again, plain, n) != 0) abort();
    pusher__free(NULL, again);
    pusher__free(NULL, wire);
    pusher__free(NULL, plain);
  } else if (e != PUSHER_ERR_DECRYPT || plain) {
    abort();
  }
  pusher__enc_payload_free(NULL, &p);
  return 0;
}
