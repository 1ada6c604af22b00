/* Pusher protocol 7 messages: decoding of server frames and encoding of the
 * client's messages.  Pure functions over text; JSON by jansson.
 *
 * Caps: JSON nesting depth PUSHER__JSON_MAX_DEPTH (64) for every frame and
 * for JSON carried inside a string `data` (checked by a pre-scan before
 * jansson parses, so a 10000-deep input costs O(n) and no recursion). */
#ifndef PUSHER_CORE_PROTO_H
#define PUSHER_CORE_PROTO_H

#include <pusher/common.h>

#define PUSHER__JSON_MAX_DEPTH 64
/* Inbound event and channel names: longer ones are a protocol error.  More
 * generous than the 200-byte naming rule for what we send, because servers
 * echo over-long names back in their errors (soketi does). */
#define PUSHER__MAX_INBOUND_NAME 1024

/* One decoded frame.  All strings are NUL-terminated and owned by the msg
 * (allocated with the mem given to decode), or, when borrowed is set, they
 * point into the scratch buffer given to pusher__proto_decode_buf. */
typedef struct pusher__msg {
  char *event;        /* never NULL after a successful decode */
  char *channel;      /* NULL when absent */
  char *data;         /* the string itself, or the JSON text of a non-string; NULL if absent */
  size_t data_len;
  int data_is_json;   /* data is (or, for a string, parses as) JSON */
  int data_was_string;/* the wire carried `data` as a JSON string (double encoding) */
  char *user_id;      /* string (or number as text) when present, else NULL */
  int borrowed;       /* strings live in the caller's scratch: msg_free frees none */
} pusher__msg;

/* Decode one text frame.  Returns 0, or PUSHER_ERR_JSON (invalid JSON, too
 * deep), PUSHER_ERR_PROTO (not an object, missing/non-string event, channel or
 * user_id of the wrong type), PUSHER_ERR_NOMEM; why gets a one-line reason.
 * On error *out is zeroed. */
int pusher__proto_decode(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                         char *why, size_t whylen);
void pusher__msg_free(const pusher_mem *mem, pusher__msg *m);

/* As pusher__proto_decode, but a frame of the common shape (see decode_fast
 * in proto.c: an object whose event, channel, user_id and data are strings
 * or null) is decoded without any allocation: its unescaped strings are
 * written into scratch (cap bytes; it must hold len + PUSHER__DECODE_SLACK)
 * and the msg borrows them (valid while scratch is untouched).  Any other
 * frame, or a too small scratch, goes through the allocating path. */
#define PUSHER__DECODE_SLACK 4
/* The general decoder alone (jansson), which pusher__proto_decode uses for
 * what its fast scanner leaves; exposed so that tests and
 * fuzz/fuzz_json_differential.c can check that both give the same msg. */
int pusher__proto_decode_jansson(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                                 char *why, size_t whylen);
int pusher__proto_decode_buf(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                             char *why, size_t whylen, char *scratch, size_t cap);

/* Nonzero when the JSON text (assumed syntactically anything) never nests
 * objects/arrays deeper than max_depth; strings are skipped correctly. */
int pusher__json_depth_ok(const char *in, size_t len, int max_depth);

/* Validating JSON scan (any value at the top level, nesting capped at
 * max_depth as pusher__json_depth_ok counts it).  It accepts exactly the texts
 * jansson's json_loadb(JSON_DECODE_ANY, plus JSON_ALLOW_NUL when allow_nul)
 * accepts: strict UTF-8, paired \u surrogates, no \u0000 in object keys,
 * integers within int64.  Returns 1 valid, 0 invalid, -1 when only jansson can
 * tell: a real number of 10^308 or more (strtod overflow) or a NUL byte right
 * after a number or word (jansson's lexer drops it). */
int pusher__json_scan(const char *in, size_t len, int allow_nul, int max_depth);
/* Nonzero when the text parses as JSON within PUSHER__JSON_MAX_DEPTH (what
 * pusher__json_parse accepts), without building it in the usual case. */
int pusher__json_valid(const char *in, size_t len);

/* Parse the data of a message as a JSON object (data that was a string is
 * parsed again; an object is already text).  Returns a new jansson reference
 * or NULL when the data is absent, not JSON, too deep or not an object. */
struct json_t;
struct json_t *pusher__msg_data_object(const pusher__msg *m);

/* Encoders: *out is NUL-terminated, allocated with mem, *outlen its length. */
int pusher__proto_encode_subscribe(const pusher_mem *mem, const char *channel, const char *auth,
                                   const char *channel_data, char **out, size_t *outlen);
int pusher__proto_encode_unsubscribe(const pusher_mem *mem, const char *channel, char **out,
                                     size_t *outlen);
int pusher__proto_encode_ping(const pusher_mem *mem, char **out, size_t *outlen);
int pusher__proto_encode_pong(const pusher_mem *mem, char **out, size_t *outlen);
/* {"event":event[,"channel":channel][,"data":<data_json>]}.  data_json must be
 * valid JSON text within the depth cap (else PUSHER_ERR_INVALID_ARGUMENT). */
int pusher__proto_encode_event(const pusher_mem *mem, const char *event, const char *channel,
                               const char *data_json, char **out, size_t *outlen);

/* Data of a "pusher:subscription_error" channel event:
 * {"type":type,"error":message,"status":status} (status null when <= 0). */
int pusher__proto_encode_subscription_error(const pusher_mem *mem, const char *type, const char *message,
                                            int status, char **out, size_t *outlen);

/* {"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}. */
int pusher__proto_encode_signin(const pusher_mem *mem, const char *auth, const char *user_data,
                                char **out, size_t *outlen);
/* Compact JSON text of v (mem-allocated); v's reference is consumed (NULL
 * v => PUSHER_ERR_NOMEM). */
int pusher__proto_dump(const pusher_mem *mem, struct json_t *v, char **out, size_t *outlen);
/* Parse JSON text within the depth cap (any value); NULL when invalid. */
struct json_t *pusher__json_parse(const char *s, size_t len);

#endif
