/* libpusher: a Pusher Channels (protocol 7) client in C.
 *
 * A pusher_client is the Pusher connection of the JavaScript library's
 * `new Pusher(key, options)`: a bi-directional link to a Pusher Channels
 * service (Pusher itself, soketi, or our own pusherd) over which the
 * application subscribes to channels and receives events.
 *
 *   pusher_client_options o;
 *   pusher_client_options_default(&o);
 *   o.cluster = "eu";
 *   pusher_client *c;
 *   if (pusher_client_new(&c, "APP_KEY", &o) == 0) {
 *     pusher_connection_bind(c, "connected", on_connected, NULL, NULL);
 *     pusher_subscribe(c, "my-channel");
 *     pusher_bind(c, "my-channel", "my-event", on_event, NULL, NULL);
 *     pusher_client_connect(c);
 *   }
 *
 * ---------------------------------------------------------------------------
 * Threading and callback guarantees
 *
 * Two modes, chosen by pusher_client_options.loop:
 *  - loop == NULL (threaded mode, the default): the client runs its own libuv
 *    loop on its own thread, started by pusher_client_new().  Every public
 *    function is safe to call from any thread.  Every callback runs on the
 *    client's loop thread, never on the caller's thread, one at a time.
 *  - loop != NULL (loop mode): the client runs on the caller's libuv loop.
 *    Public functions must be called on that loop's thread; callbacks run on
 *    it, from inside uv_run().
 *
 * In both modes:
 *  - Every public function may be called from inside a callback, including
 *    pusher_client_del(), pusher_client_disconnect(), pusher_unsubscribe()
 *    and pusher_unbind(); the client defers freeing until the dispatch
 *    unwinds.  Unbinding a callback from inside itself is allowed.
 *  - Strings and structs passed to callbacks are valid only for the duration
 *    of the call; copy what you keep.
 *  - If a function that takes a callback returns an error, that callback is
 *    never called.
 *  - After pusher_client_del() returns, no callback of that client runs.
 *  - Deleting from a callback: until that callback returns, the handle stays
 *    valid and every call answers as for a dead client (state disconnected,
 *    commands PUSHER_ERR_INVALID_STATE).  Calls that other threads had
 *    already begun (e.g. the pusher_client_connect() whose state change ran
 *    the deleting callback) return normally; no call may begin after the
 *    delete.  The full rules: docs/lifetime.md.
 *
 * Memory and ownership: every pointer argument is borrowed (read during the
 * call only; strings and arrays the client keeps are copied) unless its
 * comment says the function "takes ownership of" it.  Every object given
 * out through an out-parameter belongs to the caller and names its free
 * function (pusher_client_del, pusher_members_free).  include/pusher/rest.h
 * follows the same convention.
 *
 * Caps (every buffer has one; the defaults are in pusher_client_options):
 * inbound message size (max_message_size, 256 KiB), outbound queue
 * (max_send_queue, 1 MiB), JSON nesting depth (64), channel count
 * (max_channels, 1000), bindings per client (10000), channel name 200 bytes,
 * event name 200 bytes, client event data 10 KiB, pings from the server
 * 100 a second (WebSocket pings and pusher:ping messages, each counted apart).
 * Exceeding a cap is a defined error (PUSHER_ERR_TOO_LARGE / PUSHER_ERR_LIMIT)
 * or, for inbound data, an `error` event and a reconnect — never a crash or
 * unbounded growth.
 *
 * A server that breaks the protocol (a bad HTTP upgrade reply, a frame
 * RFC 6455 forbids, a ping flood, a stream cut in the middle of a frame, a
 * first message that is not pusher:connection_established) gets the same:
 * an `error` event naming what was wrong (error PUSHER_ERR_HANDSHAKE,
 * _WEBSOCKET, _MSG_TOO_LARGE, _PROTO, _JSON, _IO or _TIMEOUT) and a
 * reconnect with back-off.  A malformed Pusher message on an established
 * connection (not JSON, no "event") is an `error` event only, as in
 * pusher-js; the connection stays up.
 */
#ifndef PUSHER_PUSHER_H
#define PUSHER_PUSHER_H

#include <pusher/common.h>
#include <pusher/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A client: one Pusher connection and its channels (opaque). */
typedef struct pusher_client pusher_client;
struct uv_loop_s;

/* ------------------------------------------------------------------ states */

/* The six connection states, named as in the Pusher documentation. */
typedef enum pusher_state {
  PUSHER_STATE_INITIALIZED = 0, /* initial; no event is emitted for it */
  PUSHER_STATE_CONNECTING,      /* trying to connect (or reconnect) */
  PUSHER_STATE_CONNECTED,       /* open and authenticated with the app */
  PUSHER_STATE_UNAVAILABLE,     /* not connected for unavailable_timeout; still retrying */
  PUSHER_STATE_FAILED,          /* can never connect with this configuration */
  PUSHER_STATE_DISCONNECTED     /* closed on purpose (disconnect() or a fatal 40xx) */
} pusher_state;

/* "initialized", "connecting", "connected", "unavailable", "failed",
 * "disconnected"; "unknown" for anything else. */
PUSHER_EXTERN const char *pusher_state_name(pusher_state s);

/* ------------------------------------------------------------------ options */

typedef enum pusher_auth_transport {
  PUSHER_AUTH_AJAX = 0, /* POST application/x-www-form-urlencoded (default) */
  PUSHER_AUTH_JSONP = 1 /* GET with the parameters in the query string */
} pusher_auth_transport;

typedef struct pusher_delegate pusher_delegate;

/* Client options: fill with pusher_client_options_default(), then change
 * what you need.  For a local pusherd: encrypted = 0, ws_host, ws_port. */
typedef struct pusher_client_options {
  /* --- options of the Pusher documentation --- */
  int encrypted;               /* TLS (wss). Default 1. */
  const char *cluster;         /* Default "mt1": host ws-<cluster>.pusher.com */
  const char *auth_endpoint;   /* Default "/pusher/auth"; relative => joined to auth_origin */
  pusher_auth_transport auth_transport; /* Default PUSHER_AUTH_AJAX */
  const pusher_kv *auth_params;   /* auth.params: extra form/query pairs (copied) */
  size_t auth_params_count;      /* number of auth_params */
  const pusher_kv *auth_headers;  /* auth.headers: extra headers, ajax only (copied) */
  size_t auth_headers_count;     /* number of auth_headers */
  int disable_stats;           /* Accepted for compatibility; libpusher never sends stats. */
  int disable_flash;           /* Accepted for compatibility; there is no Flash transport. */
  double reconnect_delay;      /* Seconds before the first retry. Default 5 (libPusher). */

  /* --- beyond the documentation --- */
  const char *auth_origin;     /* Base URL for a relative auth_endpoint, e.g.
                                  "http://127.0.0.1:3000". Default NULL: a
                                  relative endpoint is then an error at auth time. */
  const char *user_auth_endpoint; /* Default "/pusher/user-auth" (user sign-in) */
  const char *ws_host;         /* Overrides ws-<cluster>.pusher.com */
  int ws_port;                 /* Port without TLS. Default 80 */
  int wss_port;                /* Port with TLS. Default 443 */
  const char *ws_path;         /* Prefix before /app/<key>. Default "" */
  double activity_timeout;     /* Seconds of inbound silence before we ping.
                                  Default 120; never longer than the server's
                                  (a server asking for less than 1 s gets 1 s). */
  double pong_timeout;         /* Seconds to wait for the pong. Default 30 */
  double unavailable_timeout;  /* Seconds of not connecting before `unavailable`. Default 30 */
  double max_reconnect_delay;  /* Back-off ceiling, seconds. Default 10 */
  double connect_timeout;      /* Per attempt: TCP+TLS+WebSocket+handshake, seconds. Default 15 */
  int jitter;                  /* Randomize retry delays (0.5x..1x). Default 1 */
  pusher_rand_fn rand;         /* Randomness; NULL = OpenSSL CSPRNG */
  void *rand_user;             /* passed to rand */
  const char *ca_file;         /* PEM CA bundle for TLS; NULL = system default */
  const char *ca_path;         /* CA directory; NULL = system default */
  int tls_insecure;            /* 1 = skip certificate and host verification (testing only) */
  int auto_connect;            /* 1 = connect inside pusher_client_new (as pusher-js). Default 0 */
  int watch_network;           /* 1 = built-in Linux netlink watcher calls
                                  pusher_client_set_network() for you. Default 0 */
  size_t max_message_size;     /* Inbound WebSocket message cap. Default 256 KiB */
  size_t max_send_queue;       /* Outbound queue cap in bytes. Default 1 MiB */
  size_t max_channels;         /* Channel table cap. Default 1000 */
  const char *client_name;     /* `client=` query value. Default "libpusher-c" */
  struct uv_loop_s *loop;      /* NULL = own loop thread (threaded mode) */
  const pusher_delegate *delegate; /* libPusher-style delegate (copied); may be NULL */
  void *delegate_user;         /* passed to the delegate's functions */
  const pusher_mem *mem;       /* NULL = libc */
} pusher_client_options;

/* Fill o with the defaults listed above. */
PUSHER_EXTERN void pusher_client_options_default(pusher_client_options *o);
/* Check o as pusher_client_new() does, without creating anything: 0 when
 * usable, else PUSHER_ERR_INVALID_ARGUMENT and a one-line reason naming the
 * field (e.g. "ws_port must be 1..65535") in why (may be NULL; truncated to
 * whylen).  Borrows o.  Any thread. */
PUSHER_EXTERN int pusher_client_options_check(const pusher_client_options *o, char *why,
                                              size_t whylen);

/* ------------------------------------------------------------------ lifecycle */

/* Create a client for app_key.  opts may be NULL (defaults).  Every string
 * and array in opts is copied.  Invalid options => PUSHER_ERR_INVALID_ARGUMENT
 * and *out untouched.  With auto_connect the client starts connecting. */
PUSHER_EXTERN int pusher_client_new(pusher_client **out, const char *app_key,
                                    const pusher_client_options *opts);
/* Disconnect and free.  NULL is a no-op.  Safe from inside any callback
 * (the free is deferred; no further callback runs) and from any thread in
 * threaded mode.  In threaded mode it joins the loop thread unless called
 * from it.  No call on c may begin afterwards (see "Threading and callback
 * guarantees" above and docs/lifetime.md). */
PUSHER_EXTERN void pusher_client_del(pusher_client *c);

/* initialized/disconnected/failed -> connecting.  No-op when already
 * connecting, connected or unavailable. */
PUSHER_EXTERN int pusher_client_connect(pusher_client *c);
/* -> disconnected; nothing reconnects until pusher_client_connect(). */
PUSHER_EXTERN int pusher_client_disconnect(pusher_client *c);

/* The current state (any thread). */
PUSHER_EXTERN pusher_state pusher_client_state(pusher_client *c);
/* Copy the current socket_id (e.g. "123.456") into buf; PUSHER_ERR_INVALID_STATE
 * when not connected, PUSHER_ERR_TOO_LARGE when buf is too small (64 is enough). */
PUSHER_EXTERN int pusher_client_socket_id(pusher_client *c, char *buf, size_t len);

/* Network reachability: tell the client the network went away (online=0)
 * or came back (online=1).  Online while connecting/unavailable => retry now;
 * offline while connected => ping now, reconnect if no pong in pong_timeout. */
PUSHER_EXTERN int pusher_client_set_network(pusher_client *c, int online);

/* ------------------------------------------------------------------ connection events */

typedef uint64_t pusher_bind_id; /* 0 is never a valid id */

/* What a connection event callback receives (valid during the call). */
typedef struct pusher_connection_event {
  const char *name;        /* "state_change", a state name, "connecting_in" or "error" */
  pusher_state previous;   /* state_change and state events */
  pusher_state current;    /* state_change and state events: the new state */
  const char *socket_id;   /* "connected" / state_change into connected; else NULL */
  double delay;            /* connecting_in: seconds until the next attempt */
  int code;                /* error: the Pusher/WebSocket close code, or 0 if none */
  int error;               /* error: the pusher_error value (e.g. PUSHER_ERR_CLOSED) */
  const char *message;     /* error: human-readable text (server's message if any) */
  int fatal;               /* error: no automatic retry will follow */
} pusher_connection_event;

/* A connection event callback (see pusher_connection_bind()). */
typedef void (*pusher_connection_cb)(pusher_client *c, const pusher_connection_event *ev,
                                     void *user_data);

/* Bind cb to a connection event: "state_change", "connecting_in", "error",
 * one of the state names ("connected", ...), or NULL for all of them.
 * *id (may be NULL) receives an id for pusher_connection_unbind(). */
PUSHER_EXTERN int pusher_connection_bind(pusher_client *c, const char *event,
                                         pusher_connection_cb cb, void *user_data,
                                         pusher_bind_id *id);
/* Remove a binding made by pusher_connection_bind().  PUSHER_ERR_NOT_FOUND
 * for an unknown id, PUSHER_ERR_INVALID_ARGUMENT for id 0. */
PUSHER_EXTERN int pusher_connection_unbind(pusher_client *c, pusher_bind_id id);

/* libPusher's delegate moments.  Any member may be NULL. */
struct pusher_delegate {
  /* The connection is established (state connected). */
  void (*did_connect)(pusher_client *c, const char *socket_id, void *user_data);
  /* An established connection ended.  err is NULL for a clean, requested
   * disconnect; will_reconnect says whether the client will retry. */
  void (*did_disconnect)(pusher_client *c, const pusher_connection_event *err,
                         int will_reconnect, void *user_data);
  /* The client gave up: state failed, or disconnected after a fatal error. */
  void (*failed)(pusher_client *c, const pusher_connection_event *err, void *user_data);
  /* About to wait *delay seconds and reconnect.  Return 0 to cancel the
   * automatic reconnect (state becomes disconnected), or change *delay. */
  int (*will_reconnect)(pusher_client *c, double *delay, void *user_data);
};

/* ------------------------------------------------------------------ channels */

typedef struct pusher_event {
  const char *channel;     /* NULL for connection-level events */
  const char *event;       /* e.g. "my-event", "pusher:subscription_succeeded" */
  const char *data;        /* the data as text: the string itself when the wire
                              carried a string, else the JSON text; NULL if absent */
  size_t data_len;         /* length of data in bytes */
  int data_is_json;        /* data parses as JSON */
  const char *user_id;     /* sender of a client event on presence channels, else NULL */
} pusher_event;

/* A channel event callback (see pusher_bind()). */
typedef void (*pusher_event_cb)(pusher_client *c, const pusher_event *ev, void *user_data);

/* Nonzero when name is a valid channel name: 1-200 bytes of
 * [A-Za-z0-9_-=@,.;] (the server SDKs' rule).  Any thread. */
PUSHER_EXTERN int pusher_channel_name_valid(const char *name);
/* Nonzero when socket_id has the form digits "." digits (at most 64 bytes). */
PUSHER_EXTERN int pusher_socket_id_valid(const char *socket_id);

/* Subscribe (also while not connected: sent on connect, and again after
 * every reconnect).  PUSHER_ERR_EXISTS if already subscribed,
 * PUSHER_ERR_BAD_CHANNEL_NAME for an invalid name.  Success is reported as
 * the channel event "pusher:subscription_succeeded", failure as
 * "pusher:subscription_error" with data {"type":..,"error":..,"status":..}. */
PUSHER_EXTERN int pusher_subscribe(pusher_client *c, const char *channel);
/* Leave a channel and drop it from the table; its bindings stay (they stop
 * hearing it at once).  PUSHER_ERR_NOT_FOUND when not in the table.  When
 * connected, pusher:unsubscribe is sent; but, as pusher-js, while the
 * server has not answered the channel's pusher:subscribe yet, nothing is
 * sent until the answer arrives (then pusher:unsubscribe), and a
 * pusher_subscribe() of the same channel before that continues the pending
 * subscription instead of sending a second one, so a subscription_succeeded
 * always means the server has the channel. */
PUSHER_EXTERN int pusher_unsubscribe(pusher_client *c, const char *channel);
/* Nonzero when the channel is in the table and its subscription succeeded. */
PUSHER_EXTERN int pusher_channel_subscribed(pusher_client *c, const char *channel);

/* Bind cb to `event` on `channel`.  channel NULL = every channel (and
 * connection-level events); event NULL = every event (bind_global). */
PUSHER_EXTERN int pusher_bind(pusher_client *c, const char *channel, const char *event,
                              pusher_event_cb cb, void *user_data, pusher_bind_id *id);
/* Remove a binding made by pusher_bind(), pusher_user_bind() or
 * pusher_watchlist_bind().  PUSHER_ERR_NOT_FOUND for an unknown id. */
PUSHER_EXTERN int pusher_unbind(pusher_client *c, pusher_bind_id id);

#ifdef __cplusplus
}
#endif
#endif
