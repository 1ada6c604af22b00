/* libpusher: private, presence and encrypted channels, client events and
 * user sign-in.  Include after <pusher/pusher.h> (it includes it).
 *
 * STATUS.  Every function here is implemented: the snapshot accessors and
 * pusher_shared_secret() in lib/core, the rest in the engine
 * (lib/core/conn.c) and the runtime (lib/uv/client.c), built on
 * lib/core/authreq.h, lib/core/members.h, lib/core/crypto.h, lib/uv/http.h.
 *
 * What works without any call from this header: pusher_subscribe() of a
 * `private-`, `presence-` or `private-encrypted-` channel authorizes through
 * the auth_endpoint / auth_transport / auth_params / auth_headers options
 * (pusher.h) and reports failures as "pusher:subscription_error" with
 * {"type":"AuthError","error":<message>,"status":<HTTP status or null>}.
 *
 * Threading: as pusher.h.  Every function is callable from any thread in
 * threaded mode, on the loop thread in loop mode, and from callbacks.
 */
#ifndef PUSHER_CHANNELS_H
#define PUSHER_CHANNELS_H

#include <pusher/pusher.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Custom channel authorizer / user authenticator
 *
 * Instead of the HTTP auth endpoint, the client calls the application,
 * which answers later (asynchronously) through the request handle — from any
 * thread in threaded mode, from the loop thread in loop mode (it may answer
 * from inside the callback).  The handle is the application's until it
 * calls exactly one of pusher_auth_request_complete() /
 * pusher_auth_request_fail(); that call frees it.  If the client no longer
 * needs the answer (unsubscribe, reconnect with a new socket_id, disconnect,
 * pusher_client_del), the answer is accepted and ignored — the handle stays
 * valid until answered, so there is no race to lose.  An answer that does
 * not arrive within the auth timeout (same as the HTTP auth endpoint,
 * 10 s) fails the subscription with PUSHER_ERR_TIMEOUT; a later answer is
 * ignored.  Signatures cover the socket_id, so a new request is made after
 * every reconnect.
 * ==================================================================== */

typedef struct pusher_auth_request pusher_auth_request;

/* Called on the loop thread for each channel needing authorization. */
typedef void (*pusher_channel_authorizer_cb)(pusher_client *c, pusher_auth_request *req,
                                             const char *socket_id, const char *channel,
                                             void *user_data);
/* Called on the loop thread for each sign-in (user authentication). */
typedef void (*pusher_user_authenticator_cb)(pusher_client *c, pusher_auth_request *req,
                                             const char *socket_id, void *user_data);

/* Install (cb != NULL) or remove (cb NULL: back to the HTTP endpoint) a
 * custom authorizer.  Applies to requests started afterwards. */
PUSHER_EXTERN int pusher_client_set_channel_authorizer(pusher_client *c,
                                                       pusher_channel_authorizer_cb cb,
                                                       void *user_data);
/* The same for user authentication (pusher_signin()). */
PUSHER_EXTERN int pusher_client_set_user_authenticator(pusher_client *c,
                                                       pusher_user_authenticator_cb cb,
                                                       void *user_data);

/* The auth timeout (default 10 s) for requests started afterwards: the HTTP
 * auth request and the wait for a custom authorizer/authenticator answer.
 * PUSHER_ERR_INVALID_ARGUMENT unless 0 < seconds <= 3600. */
PUSHER_EXTERN int pusher_client_set_auth_timeout(pusher_client *c, double seconds);

/* What an auth endpoint returns, as strings (all copied). */
typedef struct pusher_auth_result {
  const char *auth;          /* "<app_key>:<hex signature>" (required) */
  const char *channel_data;  /* presence: the exact JSON text that was signed */
  const char *shared_secret; /* private-encrypted-: base64 of the 32-byte key */
  const char *user_data;     /* user authentication: the exact JSON text signed */
} pusher_auth_result;

/* Answer a request with a result (takes ownership of req, which is freed;
 * borrows res, whose strings are copied); it is validated exactly like an HTTP
 * reply (auth shape, channel_data for presence, shared_secret for encrypted,
 * user_data with a string id for sign-in).  An invalid result fails the
 * request (subscription_error / signin_error with the reason) and returns
 * PUSHER_ERR_AUTH.  PUSHER_ERR_INVALID_ARGUMENT for req or res NULL (req is
 * then not consumed). */
PUSHER_EXTERN int pusher_auth_request_complete(pusher_auth_request *req,
                                               const pusher_auth_result *res);
/* Refuse: the subscription fails with status (e.g. 403; 0 = none) and
 * message (borrowed).  Takes ownership of req, which is freed. */
PUSHER_EXTERN int pusher_auth_request_fail(pusher_auth_request *req, int status,
                                           const char *message);
/* While req is unanswered: its socket_id, and its channel (NULL for a user
 * authentication request). */
PUSHER_EXTERN const char *pusher_auth_request_socket_id(const pusher_auth_request *req);
/* While req is unanswered: its channel, NULL for a user authentication
 * request. */
PUSHER_EXTERN const char *pusher_auth_request_channel(const pusher_auth_request *req);

/* For applications that sign locally (custom authorizer) and use encrypted
 * channels: the channel's shared_secret from the app's
 * encryptionMasterKeyBase64 (base64 of 32 bytes): SHA-256(channel ||
 * master_key), base64, into out (45 bytes with the NUL).
 * PUSHER_ERR_INVALID_ARGUMENT when the master key is not base64 of 32 bytes
 * or channel is NULL.  Implemented. */
PUSHER_EXTERN int pusher_shared_secret(const char *channel, const char *master_key_b64,
                                       char out[45]);

/* ======================================================================
 * Auth params and headers, changeable between requests (token refresh)
 * ==================================================================== */

/* Replace the auth_params / auth_headers given in the options (copied; n 0
 * clears).  Used by every HTTP auth request started afterwards, for channel
 * authorization and user authentication alike (headers: ajax transport
 * only).  Header names must be HTTP tokens and values free of CR/LF;
 * param names/values valid UTF-8 (else PUSHER_ERR_INVALID_ARGUMENT). */
PUSHER_EXTERN int pusher_client_set_auth_params(pusher_client *c, const pusher_kv *params, size_t n);
/* The same for auth_headers (ajax transport only). */
PUSHER_EXTERN int pusher_client_set_auth_headers(pusher_client *c, const pusher_kv *headers, size_t n);

/* Provider alternative (pusher-js paramsProvider / headersProvider): called
 * on the loop thread just before each HTTP auth request (channel NULL for
 * user authentication); it adds pairs with pusher_auth_extra_add_*() on top
 * of the configured ones.  Returning nonzero fails that request with the
 * returned pusher_error. */
typedef struct pusher_auth_extra pusher_auth_extra;
/* The provider: see above. */
typedef int (*pusher_auth_provider_cb)(pusher_client *c, const char *channel,
                                       pusher_auth_extra *extra, void *user_data);
/* Install (cb != NULL) or remove (cb NULL) the provider, for requests
 * started afterwards. */
PUSHER_EXTERN int pusher_client_set_auth_provider(pusher_client *c, pusher_auth_provider_cb cb,
                                                  void *user_data);
/* From inside the provider: add a parameter (name and value copied; both
 * valid UTF-8, name not empty, else PUSHER_ERR_INVALID_ARGUMENT). */
PUSHER_EXTERN int pusher_auth_extra_add_param(pusher_auth_extra *x, const char *name,
                                              const char *value);
/* From inside the provider: add a header (copied; an HTTP token name and a
 * value without CR/LF, else PUSHER_ERR_INVALID_ARGUMENT). */
PUSHER_EXTERN int pusher_auth_extra_add_header(pusher_auth_extra *x, const char *name,
                                               const char *value);

/* ======================================================================
 * Presence members
 *
 * Channel events on presence channels (pusher_bind):
 *   "pusher:subscription_succeeded"  data {"count":n,"me":{..}|null,
 *                                          "members":[{"user_id":..,"user_info":..},..]}
 *   "pusher:member_added"            data {"user_id":"..","user_info":<json>|null}
 *                                    (only for a user not already present)
 *   "pusher:member_removed"          data {"user_id":".."} (only when present)
 * user ids are always strings (a numeric user_id becomes its decimal text).
 * The member set is exact across duplicate adds, unknown removes and
 * resubscription after a reconnect (it is replaced by the server's set).
 *
 * The members of a channel are read as an immutable snapshot, safe to keep
 * and read from any thread until freed.
 * ==================================================================== */

typedef struct pusher_member {
  const char *user_id;   /* never NULL */
  const char *user_info; /* compact JSON text, NULL when the server sent none */
} pusher_member;

/* An immutable snapshot of a presence channel's members (opaque). */
typedef struct pusher_members pusher_members;

/* Snapshot of a subscribed presence channel's members, into *out (the
 * caller's; free it with pusher_members_free()).  PUSHER_ERR_NOT_FOUND
 * (not in the channel table), PUSHER_ERR_UNSUPPORTED (not presence-),
 * PUSHER_ERR_INVALID_STATE (subscription not succeeded yet). */
PUSHER_EXTERN int pusher_channel_members(pusher_client *c, const char *channel,
                                         pusher_members **out);
/* The number of members. */
PUSHER_EXTERN size_t pusher_members_count(const pusher_members *m);
/* i in [0, count), server order then arrival order; NULL beyond. */
PUSHER_EXTERN const pusher_member *pusher_members_at(const pusher_members *m, size_t i);
/* The member with this user_id, NULL if none.  Members returned by these
 * accessors live as long as the snapshot. */
PUSHER_EXTERN const pusher_member *pusher_members_get(const pusher_members *m, const char *user_id);
/* This connection's member (from the auth reply's channel_data), NULL if
 * unknown.  It stays available even if a member_removed named it. */
PUSHER_EXTERN const pusher_member *pusher_members_me(const pusher_members *m);
/* Free a snapshot.  NULL is a no-op. */
PUSHER_EXTERN void pusher_members_free(pusher_members *m);

/* ======================================================================
 * Client events
 * ==================================================================== */

/* Send a client event, as pusher-js channel.trigger().  data_json is JSON
 * text (an object, or a quoted string); NULL sends {}.  Errors, all
 * immediate (nothing is queued or dropped silently):
 *   PUSHER_ERR_BAD_EVENT_NAME   event does not start with "client-" or is
 *                               longer than 200 bytes
 *   PUSHER_ERR_NOT_FOUND        channel not in the table
 *   PUSHER_ERR_UNSUPPORTED      not a private-/presence- channel, or a
 *                               private-encrypted- one (as pusher-js)
 *   PUSHER_ERR_INVALID_STATE    not connected, or subscription not succeeded
 *   PUSHER_ERR_INVALID_ARGUMENT data_json is not valid JSON
 *   PUSHER_ERR_TOO_LARGE        data over 10 KiB (10240 bytes of JSON text)
 *   PUSHER_ERR_RATE_LIMIT       the 11th event within one second (sliding
 *                               window of 1000 ms per connection)
 * Events from others arrive through pusher_bind with ev->user_id set on
 * presence channels; our own are not echoed. */
PUSHER_EXTERN int pusher_trigger(pusher_client *c, const char *channel, const char *event,
                                 const char *data_json);

/* Encrypted channels: events are decrypted before delivery.  A payload that
 * fails to open causes one re-authorization (new shared_secret) and a retry;
 * if it still fails, or the payload is malformed, the event is not
 * delivered and the channel gets "pusher:decryption_error" with data
 * {"event":<name>,"error":<message>}.
 * Events held while the new key is on its way (at most 64 per channel; a
 * 65th gets "pusher:decryption_error" at once) are not dropped silently
 * when the channel is unsubscribed or the connection ends before the key
 * arrives: each gets its own "pusher:decryption_error" {"event":<name>,
 * "error":"dropped: ..."} on the channel (after the state change or the
 * unsubscribe; the channel's bindings hear it even once unsubscribed). */

/* ======================================================================
 * User sign-in
 * ==================================================================== */

/* Sign in now if connected and on every (re)connection from now on, using
 * the user authenticator if set, else user_auth_endpoint with the auth
 * params/headers/transport.  Outcome through pusher_user_bind:
 *   "pusher:signin_success"  data = the user_data JSON
 *   "pusher:signin_error"    data {"type":"AuthError","error":..,"status":..}
 * then every event of the "#server-to-user-<id>" channel.
 * A connection-level pusher:error answering the pending pusher:signin (e.g.
 * soketi/pusherd: 4009 then a close) gives, after the connection's `error`
 * event, "pusher:signin_error" {"type":"ServerError","error":<message>,
 * "status":<code or null>}; the close is then handled as usual.  (4302, a
 * truncated watchlist, accompanies a successful sign-in and is not one.)
 *
 * Presence with sign-in (as pusher-js does; docs/protocol.md §3.3, §3.6): an auth reply
 * without channel_data for a presence- channel while a sign-in is under way
 * waits for "pusher:signin_success", then subscribes without channel_data
 * (the signature covers socket_id:channel only) with the signed-in user id
 * as me; if the sign-in fails, the channel gets "pusher:subscription_error"
 * after the "pusher:signin_error".  Without any pusher_signin() such a reply
 * is a "pusher:subscription_error" at once. */
PUSHER_EXTERN int pusher_signin(pusher_client *c);
/* The signed-in user's id into buf.  PUSHER_ERR_INVALID_STATE when not
 * signed in (also between a disconnect and the next signin_success),
 * PUSHER_ERR_TOO_LARGE when buf is too small (201 is enough). */
PUSHER_EXTERN int pusher_user_id(pusher_client *c, char *buf, size_t len);
/* Bind to user events (event NULL = all), as pusher-js pusher.user.bind. */
PUSHER_EXTERN int pusher_user_bind(pusher_client *c, const char *event, pusher_event_cb cb,
                                   void *user_data, pusher_bind_id *id);
/* Watchlist events "online" / "offline" (NULL = both), data
 * {"user_ids":[..]}, as pusher-js pusher.user.watchlist.bind.  Unbind both
 * kinds with pusher_unbind(). */
PUSHER_EXTERN int pusher_watchlist_bind(pusher_client *c, const char *event, pusher_event_cb cb,
                                        void *user_data, pusher_bind_id *id);

#ifdef __cplusplus
}
#endif
#endif
