/* Channel authorization and user authentication requests: what goes to the
 * application's auth endpoint and what comes back (docs/protocol.md §6.2).
 *
 * Requests (pusher-js byte for byte):
 *   ajax, channel:  POST body  socket_id=..&channel_name=..[&param=..]*
 *   ajax, user:     POST body  socket_id=..[&param=..]*
 *   jsonp:          GET  <endpoint>?callback=<name>&<the same pairs>
 * Every name and value is percent-encoded exactly like JavaScript's
 * encodeURIComponent (UTF-8; unreserved A-Z a-z 0-9 - _ . ! ~ * ' ( )).
 * Invalid UTF-8 (which encodeURIComponent cannot produce either) is
 * PUSHER_ERR_INVALID_ARGUMENT.
 *
 * Replies: JSON {"auth":"<key>:<hex64>"[,"channel_data":"<json>"]
 * [,"shared_secret":"<b64 32 bytes>"]} (channel) or {"auth":..,"user_data":
 * "<json>"} (user), or the same wrapped as JSONP `name({...})` / `name({...});`
 * with surrounding whitespace.  At most PUSHER__AUTH_REPLY_MAX bytes.
 *
 * Pure functions; strings returned are NUL-terminated and allocated with the
 * given mem. */
#ifndef PUSHER_CORE_AUTHREQ_H
#define PUSHER_CORE_AUTHREQ_H

#include <pusher/common.h>

#define PUSHER__AUTH_REPLY_MAX (64u * 1024u)
/* Cap on a request body / URL we build (params included). */
#define PUSHER__AUTH_REQUEST_MAX (64u * 1024u)
/* The JSONP callback name libpusher sends (any name is accepted back). */
#define PUSHER__JSONP_CALLBACK "pusher_auth_callback"

/* Append s (len bytes) to *b percent-encoded like encodeURIComponent.  b is
 * a pusher__buf (core/mem.h), declared opaque here. */
struct pusher__buf;
int pusher__uri_encode_component(struct pusher__buf *b, const char *s, size_t len);

/* Body of a channel authorization POST.  channel NULL = user
 * authentication body (socket_id + params only). */
int pusher__authreq_form(const pusher_mem *mem, const char *socket_id, const char *channel,
                         const pusher_kv *params, size_t nparams, char **out, size_t *outlen);
/* URL of a JSONP GET: url + ('?' or '&') + "callback=" + callback + '&' +
 * the form pairs above.  A fragment in url is dropped.  callback NULL =
 * PUSHER__JSONP_CALLBACK. */
int pusher__authreq_jsonp_url(const pusher_mem *mem, const char *url, const char *callback,
                              const char *socket_id, const char *channel, const pusher_kv *params,
                              size_t nparams, char **out, size_t *outlen);
/* The endpoint URL: an absolute http:// or https:// endpoint as is, a
 * relative one ("/pusher/auth", "auth") joined to origin ("http://h:3000",
 * trailing '/' tolerated).  PUSHER_ERR_INVALID_ARGUMENT when relative and
 * origin is NULL or not http(s)://host. */
int pusher__authreq_url(const pusher_mem *mem, const char *origin, const char *endpoint, char **out);
/* One header line "Name: value" for an auth header.  The name must be an
 * HTTP token, the value free of CR, LF and NUL (no header injection);
 * otherwise PUSHER_ERR_INVALID_ARGUMENT. */
int pusher__authreq_header_line(const pusher_mem *mem, const pusher_kv *h, char **out);

/* ---- replies ---- */

typedef struct pusher__auth_reply {
  char *auth;          /* "<key>:<64 lowercase hex>" */
  char *channel_data;  /* presence: JSON text with user_id; else NULL */
  char *shared_secret; /* encrypted: base64 of 32 bytes; else NULL */
  char *user_data;     /* user reply: JSON text with a non-empty string id */
} pusher__auth_reply;

enum {
  PUSHER__AUTH_NEED_CHANNEL_DATA = 1,  /* presence channel */
  PUSHER__AUTH_NEED_SHARED_SECRET = 2, /* private-encrypted- channel */
  PUSHER__AUTH_USER = 4                /* user authentication reply */
};

/* Parse a reply body.  flags: PUSHER__AUTH_* above (0 = private channel).
 * app_key (may be NULL) must equal the key part of auth.  Returns 0, or
 * PUSHER_ERR_TOO_LARGE (over the cap), PUSHER_ERR_JSON (not JSON / bad
 * JSONP wrapper / too deep), PUSHER_ERR_AUTH (JSON but not a valid reply:
 * a field missing, of the wrong type or shape), PUSHER_ERR_NOMEM; why (may
 * be NULL) gets one line for the subscription_error message.  On error *out
 * is zeroed.  Members not needed by flags are still type-checked when
 * present (null counts as absent) and kept. */
int pusher__auth_reply_parse(const pusher_mem *mem, const char *body, size_t len, int flags,
                             const char *app_key, pusher__auth_reply *out, char *why, size_t whylen);
void pusher__auth_reply_free(const pusher_mem *mem, pusher__auth_reply *r);

/* Nonzero when s has the shape "<key>:<64 lowercase hex>" (key: 1..200
 * printable ASCII characters, no ':' or space). */
int pusher__auth_shape_ok(const char *s);

#endif
