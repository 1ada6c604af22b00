/* pusherd server core: the Pusher protocol 7 server without I/O.
 *
 * What it holds: the live state of every configured app (channels,
 * subscriptions, presence members, cache, signed-in users and watchlists,
 * connection counts) and the handling of client messages and of HTTP API
 * requests.  What it does not do: sockets, HTTP parsing, WebSocket framing
 * of input, timers, reading a clock, Redis.  See docs/architecture.md.
 *
 * It speaks to the outside through two interfaces:
 *   - pd_sink, one per connection (pd_session): "send this frame", "close
 *     with this code".  The net layer (net/pd_net.h) implements it over
 *     libuv; tests implement it by recording.
 *   - pd_adapter, one per core: the scale-out hooks (publish to other
 *     nodes, local subscription/member/user changes, and what other nodes
 *     hold).  adapter/pd_local.h is the single-node one, adapter/pd_redis.h
 *     the Redis one.
 * Time comes in through pd_core_set_time() (monotonic ms and wall-clock
 * seconds), randomness through pd_session_open()'s arguments.
 *
 * Re-entrancy: a sink's close may be called from inside any core call
 * (broadcast, terminate, sign-in failure); the sink must not free the
 * session from inside it (the net layer frees it later, after
 * pd_session_end).  Every broadcast works on a snapshot of the recipients.
 * Not thread-safe: one core per loop thread.
 */
#ifndef PD_CORE_H
#define PD_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "core/pd_config.h"
#include "core/pd_util.h"
#include "core/pd_webhooks.h"
#include "core/pd_stats.h"

typedef struct pd_core pd_core;

/* Bytes of a socket id with its NUL: "%llu.%llu", the first part below
 * 10^10 (pd_session_open). */
#define PD_SOCKET_ID_MAX 32
typedef struct pd_app pd_app;
typedef struct pd_channel pd_channel;
typedef struct pd_session pd_session;

/* ------------------------------------------------------------------ sink */
/* Per-connection output.  send: queue a shared frame (the sink takes a
 * reference if it keeps it); returns 0, or -1 when the connection no longer
 * takes frames (closing, over its output cap).  close: pusher:error (when
 * code >= 4000 and reason given) then a close frame with code; the sink
 * must call pd_session_end() (possibly later) and must not free the session
 * during the call.  user_data is the one given to pd_session_init(). */
typedef struct pd_sink {
  int (*send)(pd_msg *frame, void *user_data);
  void (*close)(int code, const char *reason, void *user_data);
} pd_sink;

/* ------------------------------------------------------------------ adapter */
/* Scale-out.  Outgoing calls come after local delivery; the remote view
 * answers "what do the other nodes hold".  Every function is required (the
 * single-node adapter answers "nothing remote").  user_data: the one given
 * to pd_core_set_adapter(). */
typedef struct pd_adapter {
  int clustered; /* 0: single node (lets the core skip remote merges) */
  /* the first part of socket ids (unique per node), 0 = random */
  uint64_t (*node_num)(void *user_data);
  void (*event)(pd_app *app, const char *channel, const char *event, const char *data,
                const char *except_socket_id, void *user_data);
  void (*frame)(pd_app *app, const char *channel, const char *frame, size_t len,
                const char *except_socket_id, void *user_data);
  void (*terminate)(pd_app *app, const char *user_id, void *user_data);
  void (*subs_changed)(pd_channel *ch, void *user_data);
  void (*member_changed)(pd_channel *ch, const char *user_id, json_t *user_info, int joined,
                         void *user_data);
  void (*user_changed)(pd_app *app, const char *user_id, int online, void *user_data);
  int (*user_remote)(pd_app *app, const char *user_id, void *user_data);
  size_t (*remote_subs)(pd_app *app, const char *channel, void *user_data);
  int (*member_remote)(pd_app *app, const char *channel, const char *user_id, void *user_data);
  /* Adds members present only on other nodes into hash (user_id -> info)
   * and, when ids is given, appends their ids. */
  void (*add_remote_members)(pd_app *app, const char *channel, json_t *hash, json_t *ids,
                             void *user_data);
  /* Adds names of channels occupied on other nodes (value null) to obj. */
  void (*remote_channels)(pd_app *app, const char *prefix, json_t *obj, void *user_data);
  /* Optional (NULL: single node): this node accepted n units of rate-limit
   * kind in wall-clock second sec (core/pd_ratelimit.h); the other nodes
   * count them against their limit (pd_ratelimit_remote). */
  void (*rate_used)(pd_app *app, int kind, uint64_t sec, long n, void *user_data);
} pd_adapter;

/* ------------------------------------------------------------------ state */
typedef struct pd_member {
  json_t *user_info;          /* NULL = null */
  size_t count;               /* sockets of this user on the channel */
} pd_member;

struct pd_channel {
  pd_app *app;
  char *name;
  int presence, priv, encrypted, cache;
  pd_session **subs;          /* subscribed sessions */
  size_t nsubs, alloc;
  pd_map members;             /* user_id -> pd_member* */
  size_t nmembers;
  pd_msg *cached;             /* last REST event frame (cache channels) */
  char *cached_json;          /* its data (for GET ?info=cache) */
  uint64_t cached_at_s;
  uint64_t count_sent_ms;
  int count_pending;
};

struct pd_app {
  const pd_app_cfg *cfg;
  pd_core *core;
  size_t idx;                 /* position in core->apps (stable) */
  int removed;                /* dropped by a reload: lookups skip it (core/reload.c) */
  pd_app_cfg *owned_cfg;      /* removed apps: cfg is this copy, owned here */
  long connections;
  pd_app_stats stats;         /* counters (core/pd_stats.h) */
  uint64_t rl_sec[2];         /* rate limits (core/ratelimit.c): current second, */
  long rl_used[2];            /*   and what this node used of it */
  long rl_remote[2];          /*   what other nodes reported for it */
  pd_map channels;            /* name -> pd_channel* */
  pd_map users;               /* user_id -> pd_user* (users.c) */
};

struct pd_core {
  const pd_config *cfg;
  pd_app **apps;              /* every app ever configured, stable addresses; a reload
                               * appends new ones and marks dropped ones removed */
  size_t napps;
  pd_core_stats stats;        /* counters (core/pd_stats.h) */
  /* socket_id -> pd_session (established): chained through
   * pd_session.sock_next, so that indexing a session allocates nothing
   * (core.c; docs/architecture.md, "Memory per connection") */
  pd_session **sock_b;        /* sock_nb buckets (a power of 2, or 0) */
  size_t sock_nb, sock_n;
  const pd_adapter *ad;
  void *ad_ud;
  uint64_t now_ms;            /* monotonic, from pd_core_set_time */
  uint64_t wall_s;            /* Unix time, from pd_core_set_time */
  uint64_t seq;               /* socket id sequence */
  int draining;               /* shutting down: /ready answers 503 */
  const pd_wh_out *wh;        /* webhook events (core/pd_webhooks.h); NULL = none */
  void *wh_ud;
  int wh_cluster;             /* the adapter decides occupancy/membership webhooks */
};

typedef struct pd_sub {
  pd_channel *ch;
  size_t idx;                 /* position in ch->subs */
  char *user_id;              /* presence only */
} pd_sub;

/* Part of every connection (pd_conn embeds it): pointers first, then the
 * small fields packed, so that an idle session costs 128 bytes
 * (docs/architecture.md, "Memory per connection"). */
struct pd_session {
  pd_core *core;
  const pd_sink *sink;
  void *sink_ud;
  pd_app *app;                /* set by pd_session_open */
  pd_sub *subs;               /* subs_alloc entries, the first nsubs used */
  char *user_id;              /* after pusher:signin */
  json_t *user_info;          /* its user_info (may be NULL) */
  json_t *watching;           /* array of watched user ids, or NULL */
  pd_session *sock_next;      /* next in its core->sock_b bucket */
  uint64_t rate_window_ms;
  uint32_t nsubs, subs_alloc; /* nsubs <= PD_MAX_SUBS_PER_CONN */
  int rate_count;
  uint8_t counted;            /* counted in app->connections, in core->sockets */
  uint8_t tls;                /* set by the net layer before open: the client came over TLS */
  uint8_t ended;              /* pd_session_end ran: sends are dropped */
  uint8_t online;             /* counted as an online socket of user_id */
  char socket_id[PD_SOCKET_ID_MAX]; /* "-" until open; "<10 digits>.<20 digits>" at most */
};

/* ------------------------------------------------------------------ core */
/* cfg must outlive the core.  ad (required; adapter/pd_local.h for a
 * single node) may be replaced later with pd_core_set_adapter.  0 or -1
 * (out of memory). */
int pd_core_init(pd_core *core, const pd_config *cfg, const pd_adapter *ad, void *ad_ud);
/* Frees the live state; every session must have ended before. */
void pd_core_free(pd_core *core);
/* Appends a live app for cfg (a reload's new app); NULL when out of memory. */
pd_app *pd_core_add_app(pd_core *core, const pd_app_cfg *cfg);
void pd_core_set_adapter(pd_core *core, const pd_adapter *ad, void *user_data); /* ad required */
void pd_core_set_time(pd_core *core, uint64_t now_ms, uint64_t wall_s);
void pd_core_set_draining(pd_core *core, int on);
pd_app *pd_core_app_by_key(pd_core *core, const char *key);
pd_app *pd_core_app_by_id(pd_core *core, const char *id);
pd_session *pd_core_find_session(pd_core *core, pd_app *app, const char *socket_id);
/* The established sessions, for a pass over all of them: fills at most max
 * of them into out (any order), returns how many there are in all. */
size_t pd_core_sessions(pd_core *core, pd_session **out, size_t max);
/* Once a second: delayed subscription_count events. */
void pd_core_tick(pd_core *core);

/* ------------------------------------------------------------------ sessions */
/* A connection's Pusher session.  init: before the WebSocket is open (no
 * app yet).  open: the upgrade to path (e.g. "/app/KEY?protocol=7") was
 * accepted; checks app, protocol and quota, assigns the socket id (node
 * part from the adapter, else rnd_a; rnd_b for the second part) and sends
 * pusher:connection_established; on refusal calls sink close (4001, 4003,
 * 4004, 4005, 4006, 4007, 4200) and returns that code. */
void pd_session_init(pd_session *s, pd_core *core, const pd_sink *sink, void *sink_ud);
int pd_session_open(pd_session *s, const char *path, uint64_t rnd_a, uint64_t rnd_b);
/* One complete text / binary WebSocket message from the client. */
void pd_session_on_text(pd_session *s, const uint8_t *msg, size_t len);
void pd_session_on_binary(pd_session *s, const uint8_t *msg, size_t len);
/* The activity timer fired: send pusher:ping. */
void pd_session_ping(pd_session *s);
/* Leaves every channel, signs out, uncounts; idempotent.  After it the
 * session sends nothing and may be freed by its owner. */
void pd_session_end(pd_session *s);
int pd_session_send(pd_session *s, pd_msg *m);
int pd_session_send_json(pd_session *s, json_t *obj); /* steals nothing */
void pd_session_send_error(pd_session *s, int code, const char *message, const char *channel);
void pd_session_close(pd_session *s, int code, const char *reason);
/* JSON text of {"event":"pusher:error",...} (the net layer sends it before a
 * close frame).  Caller frees with free(). */
char *pd_error_json(int code, const char *message, const char *channel);

/* ------------------------------------------------------------------ channels */
pd_channel *pd_channel_get(pd_app *app, const char *name, int create);
/* 1 when valid for app's limits; else 0 and a message naming them in why. */
int pd_channel_name_valid(const pd_app *app, const char *name, size_t len, char *why, size_t whylen);
pd_sub *pd_session_find_sub(pd_session *s, const char *name);
/* 0, or -1 (message in *err). */
int pd_channel_join(pd_session *s, pd_channel *ch, const char *user_id, const char *user_info,
                    const char **err);
void pd_channel_leave(pd_session *s, size_t sub_index);
void pd_session_leave_all(pd_session *s);
/* Broadcast a frame to every subscriber except `except` (may be NULL). */
void pd_channel_broadcast(pd_channel *ch, pd_msg *m, pd_session *except);
void pd_channel_maybe_free(pd_channel *ch);
void pd_channel_send_count(pd_channel *ch);
void pd_channel_member_event(pd_channel *ch, int added, const char *user_id, json_t *user_info,
                             pd_session *except);
json_t *pd_channel_presence_json(pd_channel *ch);
size_t pd_channel_total_subs(pd_app *app, const char *name);    /* local + remote */
size_t pd_channel_total_members(pd_app *app, const char *name); /* distinct users, cluster-wide */
void pd_app_free_channels(pd_app *app);
/* Publish (REST, or from another node): encode once, fan out, cache. */
int pd_publish(pd_app *app, const char *channel, const char *event, const char *data,
               pd_session *except);

/* ------------------------------------------------------------------ users */
void pd_user_signed_in(pd_session *s, json_t *watchlist);
void pd_user_signed_out(pd_session *s);
void pd_app_free_users(pd_app *app);
/* The sessions signed in as id (a snapshot the caller frees), or NULL. */
pd_session **pd_user_sessions(pd_app *app, const char *id, size_t *n);
void pd_user_notify_watchers(pd_app *app, const char *id, const char *name);
int pd_user_online_local(pd_app *app, const char *id);
/* Closes every local session of user id with 4009; returns how many. */
size_t pd_user_terminate_local(pd_app *app, const char *id);

/* ------------------------------------------------------------------ HTTP API */
typedef struct pd_http_response {
  int status;
  char *body;                 /* pd_alloc'ed JSON text; free with pd_free */
  size_t len;
  int retry_after;            /* > 0: send "Retry-After: N" (429) */
  long rl_limit, rl_remaining; /* rl_reset != 0: send X-RateLimit-Limit, -Remaining, */
  uint64_t rl_reset;          /*   -Reset (Unix seconds) (core/pd_ratelimit.h) */
} pd_http_response;
/* One complete HTTP request (url = path and query as sent).  Always fills
 * out (status and body); the caller sends it and frees out->body. */
void pd_rest_handle(pd_core *core, const char *method, const char *url, size_t url_len,
                    const char *body, size_t body_len, pd_http_response *out);
/* Counts one answered HTTP request (route: enum pd_route). */
void pd_stats_http(pd_core *core, int route, int status);
/* A JSON {"error":msg} response (for the net layer's own errors). */
void pd_http_error(pd_http_response *out, int status, const char *msg);
const char *pd_http_status_text(int status);

/* ------------------------------------------------------------------ adapter calls */
/* Used by the core's modules: forward to core->ad. */
#define PD_AD(app) ((app)->core->ad)
#define PD_AD_UD(app) ((app)->core->ad_ud)

#endif
