/* The sans-I/O Pusher connection engine: everything a pusher_client does
 * except I/O.  No sockets, no clock, no rand(): bytes and time come in as
 * arguments, bytes, transport requests and a timer expiry go out.
 *
 * The runtime (lib/uv/client.c) owns a pusher__conn and drives it:
 *
 *   loop iteration:
 *     now = monotonic ms
 *     ... call pusher__conn_<command>(c, ..., now) for API calls,
 *         pusher__conn_io_* for transport events ...
 *     then "pump":
 *       req = pusher__conn_io_want(c)
 *         PUSHER__IO_OPEN:  close any current transport (silently), open a
 *                           new one to req.host:req.port (TLS if req.tls),
 *                           remember req.gen; report back with
 *                           pusher__conn_io_opened/_failed/_recv(c, req.gen, ...)
 *         PUSHER__IO_CLOSE: flush pending bytes (best effort), close the
 *                           transport of generation req.gen.
 *         PUSHER__IO_NONE:  nothing to do.
 *       write out pusher__conn_io_pending() bytes, then pusher__conn_io_consume()
 *       arm one timer for pusher__conn_expiry(c) (PUSHER__NEVER = none) that
 *       calls pusher__conn_handle_expiry(c, now).
 *
 * Every pusher__conn_io_* call carries the transport generation it concerns;
 * calls for a stale generation are ignored, so a late callback of a closed
 * transport can never disturb the current one.
 *
 * The engine calls the application's callbacks (bindings, delegate) itself,
 * passing `owner` (the pusher_client *) as their first argument.  It is
 * re-entrant: a callback may call any pusher__conn_* function, including
 * pusher__conn_del (deferred until the outermost dispatch unwinds; the
 * runtime must check pusher__conn_is_dead() after each call and free then).
 * A callback that changes the connection's course (connect, disconnect,
 * fail, delete) ends the transition that ran it: nothing more of that
 * transition happens and none of its remaining events is delivered, except
 * that every binding of the event being delivered still hears it.  Inside
 * the engine this is one mechanism, the `flow` result of every function
 * that can run a callback (conn_internal.h), checked by the compiler.
 *
 * Policy as implemented in conn.c (its header comment has the details):
 * back-off reconnect_delay * 2^(n-1) capped at max_reconnect_delay (every
 * retry waits the maximum while `unavailable`), jitter x[0.5, 1] from
 * opts->rand; 4000 => TLS and retry at once; 4001-4099 and >= 4300 => fatal,
 * `disconnected`; 4100-4199 => back-off; 4200-4299 => first retry at once,
 * then 1, 2, 4 ... s; pong timeout => retry at once; a connection that stayed
 * up >= max(2 * reconnect_delay, 1 s) resets the back-off.  Normal closes
 * (1000/1001) emit no `error` event.  The delegate's will_reconnect is asked
 * before every automatic retry (also immediate ones).
 */
#ifndef PUSHER_CORE_CONN_H
#define PUSHER_CORE_CONN_H

#include <pusher/pusher.h>

typedef uint64_t pusher__tstamp;  /* monotonic milliseconds */
#define PUSHER__NEVER UINT64_MAX

typedef struct pusher__conn pusher__conn;

typedef enum pusher__io_action {
  PUSHER__IO_NONE = 0,
  PUSHER__IO_OPEN = 1,
  PUSHER__IO_CLOSE = 2
} pusher__io_action;

typedef struct pusher__io_req {
  pusher__io_action action;
  uint64_t gen;        /* transport generation to open/close */
  const char *host;    /* OPEN: host name to resolve and connect to */
  uint16_t port;       /* OPEN */
  int tls;             /* OPEN: wrap in TLS (SNI + verification = host) */
} pusher__io_req;

/* Hooks from the engine to the runtime (beyond I/O). All may be NULL. */
typedef struct pusher__conn_hooks {
  /* A private-/presence-/private-encrypted- channel needs authorization for
   * socket_id.  The runtime performs it (HTTP auth endpoint or custom
   * authorizer) and answers with pusher__conn_auth_result() quoting req_id.
   * Without this hook such subscriptions fail with pusher:subscription_error. */
  void (*request_channel_auth)(pusher__conn *c, const char *channel, const char *socket_id,
                               uint64_t req_id, void *hook_user);
} pusher__conn_hooks;

/* pusher__conn_signin() was called and the connection is up: the runtime
 * performs the user authentication (user auth endpoint or custom
 * authenticator) and answers with pusher__conn_user_auth_result().  Without
 * this hook sign-in fails with pusher:signin_error.  (A setter rather than a
 * member of pusher__conn_hooks so that existing initializers stay complete.)
 * hook_user is the one given to pusher__conn_new. */
typedef void (*pusher__user_auth_hook)(pusher__conn *c, const char *socket_id, uint64_t req_id,
                                       void *hook_user);
void pusher__conn_set_user_auth_hook(pusher__conn *c, pusher__user_auth_hook hook);

/* app_key and opts as given to pusher_client_new (opts already defaulted,
 * never NULL).  Strings are copied.  Randomness: opts->rand is required here
 * (the runtime substitutes the OpenSSL CSPRNG when the user gave none). */
int pusher__conn_new(pusher__conn **out, const char *app_key, const pusher_client_options *opts,
                     void *owner, const pusher__conn_hooks *hooks, void *hook_user);
void pusher__conn_del(pusher__conn *c);
/* Nonzero once pusher__conn_del was requested from inside a callback and the
 * runtime should finish tearing down. */
int pusher__conn_is_dead(const pusher__conn *c);

/* ---- commands (semantics as the public functions of the same name) ---- */
int pusher__conn_connect(pusher__conn *c, pusher__tstamp now);
int pusher__conn_disconnect(pusher__conn *c, pusher__tstamp now);
/* The runtime found the configuration unusable (e.g. CA file unreadable, TLS
 * context cannot be built): -> failed with an `error` event (fatal). */
void pusher__conn_fail(pusher__conn *c, int err, const char *detail, pusher__tstamp now);
int pusher__conn_set_network(pusher__conn *c, int online, pusher__tstamp now);
pusher_state pusher__conn_state(const pusher__conn *c);
const char *pusher__conn_socket_id(const pusher__conn *c); /* NULL unless connected */

int pusher__conn_connection_bind(pusher__conn *c, const char *event, pusher_connection_cb cb,
                                 void *user_data, pusher_bind_id *id);
int pusher__conn_connection_unbind(pusher__conn *c, pusher_bind_id id);
int pusher__conn_subscribe(pusher__conn *c, const char *channel, pusher__tstamp now);
int pusher__conn_unsubscribe(pusher__conn *c, const char *channel, pusher__tstamp now);
int pusher__conn_channel_subscribed(const pusher__conn *c, const char *channel);
/* The shared_secret (base64) stored from the last successful authorization of
 * a private-encrypted- channel, or NULL.  Never sent to the server.  Valid
 * until the next pusher__conn_* call. */
const char *pusher__conn_channel_shared_secret(const pusher__conn *c, const char *channel);
int pusher__conn_bind(pusher__conn *c, const char *channel, const char *event,
                      pusher_event_cb cb, void *user_data, pusher_bind_id *id);
int pusher__conn_unbind(pusher__conn *c, pusher_bind_id id);
/* Send a raw Pusher message {"event":..,"channel":..,"data":<data_json>} on
 * the open connection (data_json must be valid JSON text or NULL).
 * PUSHER_ERR_INVALID_STATE when not connected. */
int pusher__conn_send_event(pusher__conn *c, const char *event, const char *channel,
                            const char *data_json, pusher__tstamp now);
/* Answer to request_channel_auth.  err 0: auth (+ channel_data,
 * shared_secret_b64, both may be NULL) is used to send pusher:subscribe.
 * err < 0: "pusher:subscription_error" on the channel with http_status
 * (0 if none) and message.  Stale req_ids are ignored. */
int pusher__conn_auth_result(pusher__conn *c, uint64_t req_id, int err, int http_status,
                             const char *message, const char *auth, const char *channel_data,
                             const char *shared_secret_b64, pusher__tstamp now);

/* Deadline for an answer to request_channel_auth / request_user_auth; an
 * answer not given within ms fails the request with PUSHER_ERR_TIMEOUT
 * (0 = no deadline, the default). */
void pusher__conn_set_auth_timeout(pusher__conn *c, uint64_t ms);

/* ---- presence, encrypted channels, client events, sign-in ----
 *
 * Presence: the auth reply's channel_data sets `me`; subscription_succeeded
 * loads the member set (core/members.h) and is surfaced as
 * "pusher:subscription_succeeded" {"count":n,"me":{..}|null,"members":[..]};
 * member_added/_removed are surfaced as "pusher:member_added" {"user_id",
 * "user_info"} / "pusher:member_removed" {"user_id"} only when members.c
 * reports a change.  The set is reset when the connection ends.
 *
 * Encrypted channels (private-encrypted-): the auth reply must carry a
 * shared_secret (base64 of 32 bytes).  Every event whose name does not start
 * with "pusher:" is decrypted before delivery; a payload whose MAC does not
 * verify triggers one re-authorization (request_channel_auth again) and the
 * events are retried with the new key; what still fails (or is malformed)
 * becomes "pusher:decryption_error" {"event":..,"error":..} on the channel.
 * Nothing undecrypted is ever delivered.
 *
 * A server's pusher:error naming a channel whose subscribe was sent but not
 * yet confirmed (how Pusher and pusherd refuse a bad signature) is also
 * reported as "pusher:subscription_error" {"type":"ServerError","error":
 * <message>,"status":<code or null>} on that channel; soketi sends
 * pusher:subscription_error itself, which is passed through as is. */

/* Client event (see pusher_trigger in channels.h for the errors). */
int pusher__conn_trigger(pusher__conn *c, const char *channel, const char *event,
                         const char *data_json, pusher__tstamp now);
/* Snapshot of a presence channel's members (see pusher_channel_members). */
struct pusher_members;
int pusher__conn_channel_members(const pusher__conn *c, const char *channel,
                                 struct pusher_members **out);
/* Sign in now (if connected) and after every reconnect. */
int pusher__conn_signin(pusher__conn *c, pusher__tstamp now);
/* Answer to request_user_auth: err 0 sends pusher:signin with auth and
 * user_data (a JSON object with a non-empty string id); err < 0 or an
 * invalid answer: "pusher:signin_error" {"type":"AuthError","error":..,
 * "status":..} to the user bindings.  Stale req_ids: PUSHER_ERR_NOT_FOUND. */
int pusher__conn_user_auth_result(pusher__conn *c, uint64_t req_id, int err, int http_status,
                                  const char *message, const char *auth, const char *user_data,
                                  pusher__tstamp now);
/* The signed-in user id (after signin_success on this connection) or NULL. */
const char *pusher__conn_user_id(const pusher__conn *c);
/* User bindings: "pusher:signin_success", "pusher:signin_error" and every
 * event of #server-to-user-<id> (event NULL = all).  Watchlist bindings:
 * "online" / "offline" (NULL = both), data {"user_ids":[..]}.  Both are
 * removed with pusher__conn_unbind. */
int pusher__conn_user_bind(pusher__conn *c, const char *event, pusher_event_cb cb, void *user_data,
                           pusher_bind_id *id);
int pusher__conn_watchlist_bind(pusher__conn *c, const char *event, pusher_event_cb cb,
                                void *user_data, pusher_bind_id *id);

/* ---- transport ---- */
pusher__io_req pusher__conn_io_want(pusher__conn *c);
/* TCP (+TLS) is up for transport gen: the engine queues the WebSocket upgrade. */
void pusher__conn_io_opened(pusher__conn *c, uint64_t gen, pusher__tstamp now);
/* Transport gen failed or ended (connect error, DNS error, reset, EOF, TLS
 * error).  err is a pusher_error (PUSHER_ERR_CONNREFUSED, ...), detail text
 * may be NULL. */
void pusher__conn_io_failed(pusher__conn *c, uint64_t gen, int err, const char *detail,
                            pusher__tstamp now);
/* Plaintext bytes received on transport gen. */
void pusher__conn_io_recv(pusher__conn *c, uint64_t gen, const uint8_t *in, size_t len,
                          pusher__tstamp now);
/* Plaintext bytes to write on the current transport; valid until the next
 * pusher__conn_* call.  Returns 0 when nothing is pending. */
size_t pusher__conn_io_pending(pusher__conn *c, const uint8_t **out);
void pusher__conn_io_consume(pusher__conn *c, size_t n);

/* ---- time ---- */
pusher__tstamp pusher__conn_expiry(const pusher__conn *c); /* PUSHER__NEVER = no timer */
void pusher__conn_handle_expiry(pusher__conn *c, pusher__tstamp now);

#endif
