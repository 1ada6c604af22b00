/* libpusher: publishing events through the Pusher HTTP API, and the
 * signatures an application server computes for its clients.
 *
 *   pusher_rest_options o;
 *   pusher_rest_options_default(&o);
 *   o.app_id = "app-id"; o.key = "app-key"; o.secret = "app-secret";
 *   o.host = "127.0.0.1"; o.port = 6001; o.tls = 0;      (a local pusherd)
 *   pusher_rest *r;
 *   if (pusher_rest_new(&r, &o) == 0) {
 *     const char *channels[] = {"my-channel"};
 *     pusher_rest_event ev = {.name = "my-event", .data = "{\"hello\":1}"};
 *     int rv = pusher_rest_trigger(r, channels, 1, &ev, NULL);
 *     if (rv != 0) fprintf(stderr, "%s\n", pusher_rest_error_detail(r));
 *     pusher_rest_del(r);
 *   }
 *
 * Requests are signed as Pusher's HTTP API reference describes
 * (https://pusher.com/docs/channels/library_auth_reference/rest-api/,
 * auth_version 1.0: hex HMAC-SHA256 of "METHOD\nPATH\nsorted query", with
 * body_md5 for a body) and sent with libcurl's easy interface.
 *
 * Synchronous: every request function blocks the calling thread until the
 * reply (or the timeout) and calls no callback.  Do not call them on a
 * pusher_client's loop thread (from a client callback): it would stall
 * that client.  A pusher_rest handle is not thread-safe: use one per
 * thread, or serialize the calls.  Different handles are independent.
 *
 * Memory: "borrows" means the function reads the argument during the call
 * only (the caller keeps ownership, and may free it once the call returns);
 * "takes ownership" means the caller must not free it.  Everything this
 * header returns through an out-parameter is owned by the caller and has a
 * named free function.
 */
#ifndef PUSHER_REST_H
#define PUSHER_REST_H

#include <pusher/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A REST client for one app (opaque). */
typedef struct pusher_rest pusher_rest;

/* Options: fill with pusher_rest_options_default(), then set at least
 * app_id, key and secret. */
typedef struct pusher_rest_options {
  const char *app_id;  /* Required: [A-Za-z0-9_.-]{1,128} */
  const char *key;     /* Required: the app key */
  const char *secret;  /* Required: the app secret */
  const char *cluster; /* Host api-<cluster>.pusher.com. Default "mt1" */
  const char *host;    /* Overrides the cluster's host, e.g. "127.0.0.1" */
  int port;            /* 0 (default) = 443 with TLS, 80 without */
  int tls;             /* https (1, default) or http (0) */
  const char *ca_file; /* PEM CA bundle; NULL = system default */
  int tls_insecure;    /* 1 = skip certificate verification (testing only) */
  double timeout;      /* Whole request, seconds. Default 30 */
  /* Base64 of 32 bytes (the app's encryptionMasterKeyBase64).  Needed to
   * trigger on private-encrypted- channels: the data is then encrypted here
   * with the channel's shared secret, as the server SDKs do.  Default NULL. */
  const char *encryption_master_key;
  size_t max_reply;    /* Reply body cap in bytes. Default 1 MiB */
  const pusher_mem *mem; /* NULL = libc */
} pusher_rest_options;

/* Fill o with the defaults listed above (the three required fields NULL). */
PUSHER_EXTERN void pusher_rest_options_default(pusher_rest_options *o);

/* Create a REST client.  Borrows o (every string is copied).
 * Returns 0 and writes *out, or (with *out untouched):
 *   PUSHER_ERR_INVALID_ARGUMENT  a required field missing, an app id with
 *                                other characters, a bad port/timeout, an
 *                                encryption_master_key that is not base64 of
 *                                32 bytes
 *   PUSHER_ERR_NOMEM / PUSHER_ERR_INTERNAL (libcurl cannot be initialized)
 * No request is made here.  Any thread. */
PUSHER_EXTERN int pusher_rest_new(pusher_rest **out, const pusher_rest_options *o);
/* Free r.  NULL is a no-op. */
PUSHER_EXTERN void pusher_rest_del(pusher_rest *r);

/* The server's reply.  body is NUL-terminated (also when body_len is 0),
 * owned by the reply, and freed by pusher_rest_reply_free(). */
typedef struct pusher_rest_reply {
  long status;      /* HTTP status; 0 when no reply arrived */
  char *body;       /* the reply body, or NULL when no reply arrived */
  size_t body_len;  /* length of body in bytes */
} pusher_rest_reply;

/* Free the body and zero the struct.  NULL is a no-op. */
PUSHER_EXTERN void pusher_rest_reply_free(pusher_rest_reply *reply);

/* One event.  Every field is borrowed. */
typedef struct pusher_rest_event {
  const char *channel;   /* pusher_rest_trigger_batch() only (ignored by
                            pusher_rest_trigger()) */
  const char *name;      /* 1-200 bytes, not starting with "pusher:" or
                            "pusher_internal:" (reserved by Pusher) */
  const char *data;      /* Sent as this string (UTF-8); a subscriber sees it
                            as JSON when it is JSON.  NULL = "" */
  const char *socket_id; /* Exclude this connection ("123.456"); NULL = none */
  const char *info;      /* Attributes to return, e.g. "subscription_count"
                            (an extension of some servers); NULL = none */
} pusher_rest_event;

/* POST /apps/<app_id>/events: publish ev on each of channels[0..n).
 * n is 1..100; a private-encrypted- channel must be the only one, and needs
 * encryption_master_key.  Borrows channels and ev.  reply may be NULL;
 * otherwise it is filled (also on PUSHER_ERR_HTTP) and must be freed with
 * pusher_rest_reply_free() whatever the return value.
 * Returns 0 when the server answered 2xx with no "error" member in a JSON
 * body (soketi reports some errors with 200 that way), else:
 *   PUSHER_ERR_INVALID_ARGUMENT  r/channels/ev NULL, n out of range, a
 *                                socket_id not of the form 123.456, or the
 *                                name, data or info not valid UTF-8
 *   PUSHER_ERR_BAD_CHANNEL_NAME  a channel name is invalid
 *   PUSHER_ERR_BAD_EVENT_NAME    ev->name empty, too long or reserved
 *   PUSHER_ERR_UNSUPPORTED       an encrypted channel among others, or
 *                                without encryption_master_key
 *   PUSHER_ERR_HTTP              the server refused (status and body in reply)
 *   PUSHER_ERR_DNS, PUSHER_ERR_CONNREFUSED, PUSHER_ERR_TIMEOUT,
 *   PUSHER_ERR_TLS, PUSHER_ERR_TLS_VERIFY, PUSHER_ERR_IO  transport errors
 *   PUSHER_ERR_TOO_LARGE         the reply is over max_reply
 *   PUSHER_ERR_NOMEM
 * pusher_rest_error_detail() then says what happened, and what to do where
 * the cause is clear (e.g. a plain-HTTP server on a TLS request). */
PUSHER_EXTERN int pusher_rest_trigger(pusher_rest *r, const char *const *channels, size_t n,
                                      const pusher_rest_event *ev, pusher_rest_reply *reply);

/* POST /apps/<app_id>/batch_events: events[0..n) in one request, n 1..10,
 * each with its own channel.  Borrows events.  Same returns and reply rules
 * as pusher_rest_trigger(); every event is checked before the request. */
PUSHER_EXTERN int pusher_rest_trigger_batch(pusher_rest *r, const pusher_rest_event *events,
                                            size_t n, pusher_rest_reply *reply);

/* Any signed request of the HTTP API, e.g. GET /apps/<app_id>/channels with
 * params {"filter_by_prefix","presence-"}.  method "GET" or "POST"; path
 * starts with '/'; params (may be NULL when nparams is 0) must not use the
 * auth_* / body_md5 names; body (NULL = none) is sent as application/json
 * with POST.  Borrows everything.  Returns and reply as
 * pusher_rest_trigger() (PUSHER_ERR_INVALID_ARGUMENT for a bad method,
 * path or params). */
PUSHER_EXTERN int pusher_rest_request(pusher_rest *r, const char *method, const char *path,
                                      const pusher_kv *params, size_t nparams, const char *body,
                                      pusher_rest_reply *reply);

/* The reason of the last failed call on r, one line; "" after a success.
 * Valid until the next call on r. */
PUSHER_EXTERN const char *pusher_rest_error_detail(const pusher_rest *r);

/* ------------------------------------------------------------ signatures */

/* Buffer size for an auth string "<key>:<64 hex digits>" with its NUL. */
PUSHER_EXTERN size_t pusher_auth_size(const char *app_key);

/* What an auth endpoint answers, computed locally (for a custom authorizer
 * in pusher_client_set_channel_authorizer(), or an application server):
 * out = "<app_key>:" hex HMAC-SHA256(secret, socket_id ":" channel
 * [":" channel_data]).  channel_data NULL for private- and
 * private-encrypted- channels; for presence- channels the exact JSON text
 * {"user_id":..,"user_info":..} that is also sent to the server.  Borrows
 * every argument.  Returns 0, PUSHER_ERR_INVALID_ARGUMENT (a NULL argument,
 * or a socket_id or channel that is not valid), PUSHER_ERR_TOO_LARGE (outlen
 * < pusher_auth_size(app_key)). */
PUSHER_EXTERN int pusher_auth_sign_channel(const char *app_key, const char *secret,
                                           const char *socket_id, const char *channel,
                                           const char *channel_data, char *out, size_t outlen);
/* The same for user sign-in: HMAC of socket_id "::user::" user_data, where
 * user_data is the exact JSON text with a string "id". */
PUSHER_EXTERN int pusher_auth_sign_user(const char *app_key, const char *secret,
                                        const char *socket_id, const char *user_data, char *out,
                                        size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
