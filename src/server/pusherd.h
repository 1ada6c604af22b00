/* pusherd: a Pusher Channels (protocol 7) compatible server on libuv.
 *
 * Layout:
 *   pusherd.h   internal types and the functions the program, the unit tests
 *               and the fuzzers share
 *   config.c    apps, limits, flags, environment, --config FILE
 *   sign_srv.c  HMAC-SHA256 / MD5 hex helpers and the REST signature check
 *   server.c    libuv listener, per-connection HTTP parsing, WebSocket
 *               upgrade, output queues, timers, graceful shutdown
 *   ws_proto.c  Pusher messages from clients: parse, validate, dispatch
 *   channels.c  channel registry, presence members, cache, fan-out
 *   rest.c      HTTP API (/apps/<id>/...), health endpoints
 *   main.c      the pusherd program (options, signals)
 *   cluster.c   optional scale-out over Redis pub/sub (--redis URL)
 *
 * Caps (all documented in --help):
 *   HTTP request headers 16 KiB, HTTP body 1 MiB (413 above), headers
 *   complete within header_timeout_ms of the connection or of the request's
 *   first byte (10 s by default; 408 and close after it),
 *   inbound WebSocket message 256 KiB (close 1009 above; pusher:error for
 *   messages over the app's client-event data cap),
 *   per-connection output queue PD_OUTQ_CAP_DEFAULT bytes (4 MiB; a consumer
 *   falling behind past it is closed with 4100 "over capacity, retry later"),
 *   1000 channels per connection (pusher:error above).
 */
#ifndef PUSHERD_H
#define PUSHERD_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <uv.h>
#include <jansson.h>
#include <http_parser.h>


/* ------------------------------------------------------------------ caps */
typedef struct pusher__ws pusher__ws; /* lib/core/ws.h: the WebSocket codec */
#define PD_HEADER_CAP (16u * 1024u)
#define PD_HEADER_TIMEOUT_MS_DEFAULT 10000
#define PD_BODY_CAP (1024u * 1024u)
#define PD_WS_MSG_CAP (256u * 1024u)
#define PD_OUTQ_CAP_DEFAULT (4u * 1024u * 1024u)
#define PD_PONG_TIMEOUT_S 30
#define PD_MAX_SUBS_PER_CONN 1000

/* ------------------------------------------------------------------ log */
enum { PD_LOG_DEBUG = 0, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR, PD_LOG_OFF };
extern int pd_log_level;
int pd_log_level_parse(const char *s); /* -1 when unknown */
void pd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ map */
/* String-keyed chained hash map (keys copied). */
typedef struct pd_map_ent {
  struct pd_map_ent *next;
  void *val;
  size_t klen;
  char key[];
} pd_map_ent;
typedef struct pd_map {
  pd_map_ent **b;
  size_t nb, n;
} pd_map;
void *pd_map_get(const pd_map *m, const char *key);
int pd_map_put(pd_map *m, const char *key, void *val);   /* 0, or -1 on OOM */
void *pd_map_del(pd_map *m, const char *key);            /* returns old val */
void pd_map_free(pd_map *m);
/* iterate: for (i...) for (e = m->b[i]; e; e = e->next) */

/* ------------------------------------------------------------------ apps */
typedef struct pd_app {
  char *id, *key, *secret;
  int enabled;
  int client_events;
  int user_auth;              /* pusher:signin accepted */
  int subscription_count;     /* pusher_internal:subscription_count */
  long max_connections;       /* -1 = unlimited */
  int activity_timeout;       /* seconds, sent in connection_established */
  size_t max_event_data;      /* bytes (10 KB) */
  size_t max_channels_per_event; /* 100 */
  size_t max_batch;           /* 10 */
  size_t max_channel_name;    /* 200 */
  size_t max_event_name;      /* 200 */
  size_t max_presence_members; /* 100 */
  size_t max_user_info;       /* 1024 */
  size_t max_user_id;         /* 128 */
  int client_event_rate;      /* per second, 10 */
  int cache_ttl;              /* seconds, 1800 */
  /* runtime */
  long connections;
  pd_map channels;            /* name -> pd_channel* */
  pd_map users;               /* user_id -> pd_user* (users.c) */
  struct pd_server *srv;
  struct pd_capp *capp;       /* cluster.c state, NULL without --redis */
} pd_app;

typedef struct pd_config {
  char *host;
  int port;
  size_t outq_cap;
  pd_app **apps;
  size_t napps;
  int shutdown_grace_ms;
  int header_timeout_ms;      /* HTTP request headers must be complete by then (408) */
  char *redis_url;            /* --redis / PUSHERD_REDIS_URL / "redis_url"; NULL = single node */
} pd_config;

void pd_config_init(pd_config *c);
void pd_config_free(pd_config *c);
pd_app *pd_app_new(const char *id, const char *key, const char *secret);
void pd_app_free(pd_app *a);
int pd_config_add_app(pd_config *c, pd_app *a);
/* Load a JSON config file; on error writes "file:line:col: what" to err. */
int pd_config_load_file(pd_config *c, const char *path, char *err, size_t errlen);
pd_app *pd_config_app_by_key(const pd_config *c, const char *key);
pd_app *pd_config_app_by_id(const pd_config *c, const char *id);

/* ------------------------------------------------------------------ sign */
void pd_hmac_hex(const char *secret, const void *msg, size_t len, char out[65]);
void pd_md5_hex(const void *msg, size_t len, char out[33]);
int pd_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

/* ------------------------------------------------------------------ msgs */
/* A complete server WebSocket frame (header + payload), shared by refcount
 * among every socket it is queued to. */
typedef struct pd_msg {
  unsigned refs;
  size_t len;
  uint8_t data[];
} pd_msg;
pd_msg *pd_msg_frame(const char *payload, size_t len); /* text frame */
pd_msg *pd_msg_raw(const void *bytes, size_t len);     /* bytes as-is */
pd_msg *pd_msg_json(json_t *obj);                      /* compact JSON text frame */
void pd_msg_ref(pd_msg *m);
void pd_msg_unref(pd_msg *m);

/* ------------------------------------------------------------------ conns */
typedef struct pd_server pd_server;
typedef struct pd_channel pd_channel;

typedef struct pd_sub {
  pd_channel *ch;
  size_t idx;                 /* position in ch->subs */
  char *user_id;              /* presence only */
} pd_sub;

typedef struct pd_conn {
  pd_server *srv;
  struct pd_conn *prev, *next;
  uv_tcp_t tcp;
  int detached;               /* no socket (fuzzers / unit tests) */
  int closing;                /* uv_close called or scheduled */
  int close_after_flush;
  uint64_t close_started_ms;
  int is_ws;
  /* HTTP */
  http_parser parser;
  size_t header_bytes;
  char *url;
  size_t url_len;
  char *hfield, *hvalue;      /* current header */
  size_t hfield_len, hvalue_len;
  int last_was_value;
  char *ws_key;
  int upgrade_ws;
  char *body;
  size_t body_len;
  int body_too_large;
  int req_done;
  int headers_done;           /* headers of the current request complete */
  uint64_t req_started_ms;    /* accept or first byte of the request; 0 = idle */
  int http_error;
  /* WebSocket / Pusher */
  pusher__ws *ws;
  int in_ws_recv;              /* inside pusher__ws_recv */
  pd_app *app;
  char socket_id[48];
  pd_sub *subs;
  size_t nsubs, subs_alloc;
  char *user_id;              /* after pusher:signin */
  json_t *user_info;          /* its user_info (may be NULL) */
  int online;                 /* counted as an online socket of user_id */
  json_t *watching;           /* array of watched user ids, or NULL */
  uint64_t last_rx_ms;
  uint64_t ping_sent_ms;
  uint64_t rate_window_ms;
  int rate_count;
  int counted;                /* counted in app->connections */
  int overflow;               /* output cap exceeded: close 4100 soon */
  /* output */
  size_t out_bytes;           /* queued, not yet written */
  uint64_t sent_frames;
} pd_conn;

struct pd_server {
  uv_loop_t *loop;
  pd_config *cfg;
  uv_tcp_t listener;
  int listening;
  uv_timer_t tick;
  uv_signal_t sigterm, sigint;
  uv_timer_t grace;
  int shutting_down;
  pd_conn *conns;
  size_t nconns;
  uint64_t seq;
  uint64_t rng;
  uint64_t fake_now_ms;       /* detached mode clock */
  int exit_code;
  int pong_timeout_ms;
  int handles_closed;
  int signals_on;
  pd_map sockets;             /* socket_id -> pd_conn* (established) */
  struct pd_cluster *cluster; /* NULL without --redis */
};

/* server.c */
int pd_server_init(pd_server *s, uv_loop_t *loop, pd_config *cfg);
int pd_server_listen(pd_server *s);
void pd_server_shutdown(pd_server *s);  /* graceful: 4200 to everyone */
void pd_server_free(pd_server *s);      /* after the loop ended */
uint64_t pd_now_ms(pd_server *s);
uint64_t pd_wall_s(void);
/* Detached connections for fuzzers/tests: no socket, output discarded. */
pd_conn *pd_conn_new_detached(pd_server *s);
/* Feed raw bytes as if read from the socket (HTTP, then WebSocket). */
void pd_conn_feed(pd_conn *c, const uint8_t *buf, size_t len);
void pd_conn_destroy(pd_conn *c);
/* Queue a shared frame; 0 or -1 (connection closed / over cap). */
int pd_conn_queue(pd_conn *c, pd_msg *m);
int pd_conn_send_json(pd_conn *c, json_t *obj); /* steals nothing */
void pd_conn_send_error(pd_conn *c, int code, const char *message, const char *channel);
/* pusher:error (when code != 0) then close frame with code; flush, close. */
void pd_conn_close(pd_conn *c, int code, const char *message);
void pd_conn_http_reply(pd_conn *c, int status, const char *body, size_t len);

/* ws_proto.c: one Pusher message from a client. */
void pd_proto_established(pd_conn *c);
void pd_proto_on_text(pd_conn *c, const uint8_t *msg, size_t len);

/* channels.c */
struct pd_channel {
  pd_app *app;
  char *name;
  int presence, priv, encrypted, cache;
  pd_conn **sub_conns;
  size_t nsubs, alloc;
  pd_map members;             /* user_id -> pd_member* */
  size_t nmembers;
  pd_msg *cached;             /* last REST event frame (cache channels) */
  char *cached_json;          /* its JSON text (for GET ?info=cache) */
  uint64_t cached_at_s;
  uint64_t count_sent_ms;
  int count_pending;
};
typedef struct pd_member {
  json_t *user_info;          /* NULL = null */
  size_t count;               /* sockets of this user on the channel */
} pd_member;

/* 1 when valid for app's limits; else 0 and a message naming them in why. */
int pd_channel_name_valid(const pd_app *app, const char *name, size_t len, char *why, size_t whylen);
pd_channel *pd_channel_get(pd_app *app, const char *name, int create);
pd_sub *pd_conn_find_sub(pd_conn *c, const char *name);
/* returns 0, or -1 error (message in *err) */
int pd_channel_join(pd_conn *c, pd_channel *ch, const char *user_id, const char *user_info,
                    const char **err);
void pd_channel_leave(pd_conn *c, size_t sub_index);
void pd_conn_leave_all(pd_conn *c);
/* Broadcast a frame to every subscriber except `except` (may be NULL). */
void pd_channel_broadcast(pd_channel *ch, pd_msg *m, pd_conn *except);
void pd_channel_maybe_free(pd_channel *ch);
void pd_channel_send_count(pd_channel *ch);
json_t *pd_channel_presence_json(pd_channel *ch);
size_t pd_channel_subscription_count(const pd_channel *ch);
void pd_app_free_channels(pd_app *app);
void pd_channels_tick(pd_server *s);
/* REST publish: encode once, fan out, cache. */
int pd_publish(pd_app *app, const char *channel, const char *event, const char *data, pd_conn *except);
pd_conn *pd_server_find_socket(pd_server *s, pd_app *app, const char *socket_id);

/* users.c */
void pd_user_signed_in(pd_conn *c, json_t *watchlist);
void pd_user_signed_out(pd_conn *c);
void pd_app_free_users(pd_app *app);
pd_conn **pd_user_sockets(pd_app *app, const char *id, size_t *n);
void pd_user_notify_watchers(pd_app *app, const char *id, const char *name);
int pd_user_online_local(pd_app *app, const char *id);

/* rest.c: a complete HTTP request; replies through pd_conn_http_reply. */
void pd_rest_handle(pd_conn *c, const char *method, const char *url, size_t url_len,
                    const char *body, size_t body_len);

/* cluster.c: several pusherd processes on one Redis act as one app.  Every
 * function is a no-op (or answers "nothing remote") when s->cluster is NULL. */
/* Parse redis://[[user]:password@]host[:port][/db]; 0 or -1 (why in err). */
int pd_cluster_parse_url(const char *url, char **host, int *port, char **password, int *db, char *err,
                         size_t errlen);
int pd_cluster_start(pd_server *s, const char *url);   /* 0, or -1 on a bad URL */
void pd_cluster_stop(pd_server *s);                    /* on shutdown: bye, disconnect */
void pd_cluster_free(pd_server *s);                    /* after the loop ended */
/* Node-unique first part of socket ids (0 without a cluster). */
uint64_t pd_cluster_node_num(const pd_server *s);
/* Outgoing: already delivered locally by the caller. */
void pd_cluster_event(pd_app *app, const char *channel, const char *event, const char *data,
                      const char *except_socket_id);
void pd_cluster_frame(pd_app *app, const char *channel, const char *frame, size_t len,
                      const char *except_socket_id);
void pd_cluster_terminate(pd_app *app, const char *user_id);
void pd_cluster_local_subs(pd_channel *ch);            /* ch->nsubs changed */
void pd_cluster_local_member(pd_channel *ch, const char *user_id, json_t *user_info, int joined);
void pd_cluster_local_user(pd_app *app, const char *user_id, int online); /* first in / last out here */
/* Remote view (other nodes). */
int pd_cluster_user_remote(pd_app *app, const char *user_id);  /* signed in on another node */
size_t pd_cluster_remote_subs(pd_app *app, const char *channel);
int pd_cluster_member_remote(pd_app *app, const char *channel, const char *user_id);
/* Adds members present only on other nodes into hash (user_id -> info)
 * and, when ids is given, appends their ids. */
void pd_cluster_add_remote_members(pd_app *app, const char *channel, json_t *hash, json_t *ids);
/* Adds names of channels occupied on other nodes (value: json null) to obj. */
void pd_cluster_remote_channels(pd_app *app, const char *prefix, json_t *obj);
/* Tests and fuzzers: cluster state without Redis (node_num 0 = random);
 * messages go to pd_cluster_tap (when set) instead of Redis; inject one
 * incoming message as if received from Redis.  -1 without hiredis. */
int pd_cluster_attach_offline(pd_server *s, uint64_t node_num);
extern void (*pd_cluster_tap)(const char *channel, const char *message);
void pd_cluster_inject(pd_app *app, const char *message);
size_t pd_channel_total_subs(pd_app *app, const char *name);      /* local + remote */
size_t pd_channel_total_members(pd_app *app, const char *name);   /* distinct users, cluster-wide */
void pd_channel_member_event(pd_channel *ch, int added, const char *user_id, json_t *user_info,
                             pd_conn *except);

/* util */
char *pd_strdup(const char *s);
char *pd_strndup(const char *s, size_t n);
void *pd_alloc(size_t n);
void *pd_zalloc(size_t n);
void *pd_realloc(void *p, size_t n);
void pd_free(void *p);

#endif
