/* libFuzzer target: the auth endpoint reply parser (lib/core/authreq.c).
 * The first input byte selects the flags (private / presence / encrypted /
 * user) and whether the app key is checked; the rest is the HTTP body, JSON
 * or JSONP.  A successful parse must satisfy the parser's own promises.
 * Seed corpus: fuzz/corpus/auth_reply/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/authreq.h"
#include "core/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int flags = data[0] & 7;
  const char *key = (data[0] & 8) ? "app-key" : NULL;
  pusher__auth_reply r;
  char why[256];
  int e = pusher__auth_reply_parse(NULL, (const char *)data + 1, size - 1, flags, key, &r, why, sizeof why);
  if (e == 0) {
    if (!r.auth || !pusher__auth_shape_ok(r.auth)) abort();
    if (key && strncmp(r.auth, "app-key:", 8) != 0) abort();
    if ((flags & PUSHER__AUTH_NEED_CHANNEL_DATA) && !r.channel_data) abort();
    if ((flags & PUSHER__AUTH_USER) && !r.user_data) abort();
    if (flags & PUSHER__AUTH_NEED_SHARED_SECRET) {
      uint8_t k[PUSHER__SECRETBOX_KEYBYTES];
      if (!r.shared_secret || pusher__crypto_key_from_b64(r.shared_secret, k, NULL, 0) != 0) abort();
    }
    pusher__auth_reply_free(NULL, &r);
  } else if (r.auth || r.channel_data || r.shared_secret || r.user_data || !why[0]) {
    abort();
  }
  return 0;
}
