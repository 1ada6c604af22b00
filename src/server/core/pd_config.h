/* pusherd server core: configuration.  Built once at start (defaults,
 * options, --config FILE) and read-only afterwards: the live state of each
 * app is in pd_core (core/pd_core.h), which points here. */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stddef.h>

/* Caps (all documented in --help):
 *   HTTP request headers PD_HEADER_CAP (16 KiB; 431 above), complete within
 *   header_timeout_ms of the connection or of the request's first byte (10 s
 *   by default; 408 and close after it), HTTP body PD_BODY_CAP (1 MiB; 413
 *   above), inbound WebSocket message PD_WS_MSG_CAP (256 KiB; close 1009
 *   above; pusher:error for messages over the app's client-event data cap),
 *   per-connection output queue outq_cap bytes (4 MiB by default; a consumer
 *   falling behind past it is closed with 4100 "over capacity, retry
 *   later"), PD_MAX_SUBS_PER_CONN channels per connection (pusher:error
 *   above). */
#define PD_HEADER_CAP (16u * 1024u)
#define PD_HEADER_TIMEOUT_MS_DEFAULT 10000
#define PD_BODY_CAP (1024u * 1024u)
#define PD_WS_MSG_CAP (256u * 1024u)
#define PD_OUTQ_CAP_DEFAULT (4u * 1024u * 1024u)
#define PD_PONG_TIMEOUT_S 30
#define PD_MAX_SUBS_PER_CONN 1000

/* Webhooks (docs/webhooks.md).  Event types, as bits of pd_webhook_cfg.types
 * (names in pd_wh_type_names, in this order). */
enum {
  PD_WH_CHANNEL_OCCUPIED, PD_WH_CHANNEL_VACATED, PD_WH_MEMBER_ADDED, PD_WH_MEMBER_REMOVED,
  PD_WH_CLIENT_EVENT, PD_WH_CACHE_MISS, PD_WH_SUBSCRIPTION_COUNT, PD_WH_NTYPES
};
extern const char *const pd_wh_type_names[PD_WH_NTYPES];
#define PD_WH_MAX_PER_APP 16          /* webhooks per app */
#define PD_WH_MAX_HEADERS 32          /* custom headers per webhook */
#define PD_WH_BATCH_MS_DEFAULT 250    /* webhook_batch_ms */
#define PD_WH_RETRY_S_DEFAULT 300     /* webhook_retry_seconds: Pusher's 5 minutes */

typedef struct pd_webhook_cfg {
  char *url;                  /* http:// or https:// */
  unsigned types;             /* 1u << PD_WH_* */
  char **headers;             /* "Name: value" lines */
  size_t nheaders;
  char *starts_with, *ends_with; /* channel name filter; NULL = any */
} pd_webhook_cfg;

typedef struct pd_app_cfg {
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
  pd_webhook_cfg *webhooks;   /* "webhooks" */
  size_t nwebhooks;
  int tls_only;               /* WebSocket clients without TLS get 4000 (docs/tls.md) */
} pd_app_cfg;

typedef struct pd_config {
  char *host;
  int port;
  size_t outq_cap;
  pd_app_cfg **apps;
  size_t napps;
  int shutdown_grace_ms;
  int header_timeout_ms;      /* HTTP request headers must be complete by then (408) */
  int pong_timeout_ms;        /* close 4201 when a ping is not answered in time */
  char *redis_url;            /* --redis / PUSHERD_REDIS_URL / "redis_url"; NULL = single node */
  int webhook_batch_ms;       /* webhook batch window */
  int webhook_retry_s;        /* retry a failed webhook batch for this long */
  char *tls_cert, *tls_key;   /* PEM files of the TLS listener (docs/tls.md) */
  int tls_port;               /* 0 = no TLS listener; port 0 = no plain listener */
} pd_config;

void pd_config_init(pd_config *c);
void pd_config_free(pd_config *c);
pd_app_cfg *pd_app_cfg_new(const char *id, const char *key, const char *secret);
void pd_app_cfg_free(pd_app_cfg *a);
int pd_config_add_app(pd_config *c, pd_app_cfg *a);
/* Load a JSON config file; on error writes "file:line:col: what" to err. */
int pd_config_load_file(pd_config *c, const char *path, char *err, size_t errlen);
pd_app_cfg *pd_config_app_by_key(const pd_config *c, const char *key);
pd_app_cfg *pd_config_app_by_id(const pd_config *c, const char *id);

#endif
