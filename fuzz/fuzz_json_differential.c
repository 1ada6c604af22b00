/* Differential fuzz target: the core's validating JSON scanner
 * (pusher__json_scan, used on every received event to set data_is_json and by
 * the fast frame decoder) must accept exactly what jansson accepts
 * (json_loadb with JSON_DECODE_ANY | JSON_ALLOW_NUL) within the nesting cap.
 * Any disagreement aborts.  The same input is then decoded as a frame three
 * ways: by pusher__proto_decode (fast path or jansson, allocating), by
 * pusher__proto_decode_buf into a scratch (the zero-allocation path the
 * connection uses) and by the jansson decoder alone; all three must give the
 * same result code and the same message, or the target aborts. */
#include "core/proto.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_same(const char *what, int ra, const pusher__msg *a, int rb, const pusher__msg *b, size_t size) {
  int same = ra == rb;
  if (same && ra == 0)
    same = same_str(a->event, b->event) && same_str(a->channel, b->channel) && same_str(a->user_id, b->user_id) &&
           (!a->data) == (!b->data) && a->data_len == b->data_len &&
           (!a->data || memcmp(a->data, b->data, a->data_len) == 0) && a->data_is_json == b->data_is_json &&
           a->data_was_string == b->data_was_string;
  if (!same) {
    fprintf(stderr, "frame decoders disagree (%s): rc %d vs %d for %zu bytes\n", what, ra, rb, size);
    abort();
  }
}

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
  pusher__msg m, j, b;
  char why[256], whyj[256], whyb[256];
  static char scratch[1 << 16]; /* libFuzzer's default -max_len is 4096 */
  int rm = pusher__proto_decode(NULL, in, size, &m, why, sizeof why);
  int rj = pusher__proto_decode_jansson(NULL, in, size, &j, whyj, sizeof whyj);
  int rb = pusher__proto_decode_buf(NULL, in, size, &b, whyb, sizeof whyb, scratch, sizeof scratch);
  check_same("fast vs jansson", rm, &m, rj, &j, size);
  check_same("scratch vs jansson", rb, &b, rj, &j, size);
  if (m.borrowed || j.borrowed) abort(); /* only a decode into a scratch borrows */
  if (rm < 0 && (strcmp(why, whyj) != 0 || strcmp(whyb, whyj) != 0)) abort(); /* the same error text */
  pusher__msg_free(NULL, &m);
  pusher__msg_free(NULL, &j);
  pusher__msg_free(NULL, &b);
  return 0;
}
