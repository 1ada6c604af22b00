/* Differential fuzz target: the core's validating JSON scanner
 * (pusher__json_scan, used on every received event to set data_is_json and by
 * the fast frame decoder) must accept exactly what jansson accepts
 * (json_loadb with JSON_DECODE_ANY | JSON_ALLOW_NUL) within the nesting cap.
 * Any disagreement aborts.  The same input is then decoded as a frame, which
 * takes the fast path or the jansson path; it must not crash or leak. */
#include "core/proto.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  int r = pusher__json_scan(in, size, 1, PUSHER__JSON_MAX_DEPTH);
  if (r >= 0) {
    int expect = 0;
    if (pusher__json_depth_ok(in, size, PUSHER__JSON_MAX_DEPTH)) {
      json_error_t err;
      json_t *v = json_loadb(in, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
      expect = v != NULL;
      json_decref(v);
    }
    if (r != expect) {
      fprintf(stderr, "scanner says %d, jansson says %d for %zu bytes\n", r, expect, size);
      abort();
    }
  }
  pusher__msg m;
  char why[256];
  if (pusher__proto_decode(NULL, in, size, &m, why, sizeof why) == 0) pusher__msg_free(NULL, &m);
  return 0;
}
