/* pusherd server core: counters.  Plain structs, incremented by the core
 * (sessions, the HTTP API, client events) and by the net layer (WebSocket
 * messages and bytes, output-queue closes); rendered for Prometheus by
 * net/metrics.c.  Every counter only grows (a process restart resets
 * them).  Their meanings are listed in docs/operations.md. */
#ifndef PD_STATS_H
#define PD_STATS_H

#include <stdint.h>

/* HTTP API routes (the "route" label). */
enum pd_route {
  PD_ROUTE_EVENTS = 0,    /* POST /apps/ID/events */
  PD_ROUTE_BATCH,         /* POST /apps/ID/batch_events */
  PD_ROUTE_CHANNELS,      /* GET /apps/ID/channels */
  PD_ROUTE_CHANNEL,       /* GET /apps/ID/channels/NAME */
  PD_ROUTE_USERS,         /* GET /apps/ID/channels/NAME/users */
  PD_ROUTE_TERMINATE,     /* POST /apps/ID/users/ID/terminate_connections */
  PD_ROUTE_HEALTH,        /* /, /health, /ready on the app port */
  PD_ROUTE_OTHER,         /* anything else, and requests refused before routing */
  PD_ROUTE_N
};
const char *pd_route_name(int route);

/* HTTP statuses the server answers (the "status" label); anything else is
 * counted under the last slot (rendered as "other"). */
#define PD_STATUS_N 14
int pd_status_slot(int status);           /* 0 .. PD_STATUS_N-1 */
int pd_status_of_slot(int slot);          /* 0 for "other" */

typedef struct pd_app_stats {
  uint64_t connections_total;   /* WebSocket connections established (connection_established sent) */
  uint64_t ws_msgs_in;          /* complete WebSocket data messages received */
  uint64_t ws_bytes_in;         /* WebSocket bytes received (framing included) */
  uint64_t ws_msgs_out;         /* Pusher messages queued to clients (pusher:error before a close included) */
  uint64_t ws_bytes_out;        /* WebSocket bytes queued to clients (framing included) */
  uint64_t events_published;    /* HTTP API events accepted (a batch of k counts k) */
  uint64_t client_events;       /* client-* events accepted and broadcast */
  uint64_t outq_closes;         /* connections closed with 4100 (output queue over its cap) */
  uint64_t rate_limited[2];     /* HTTP 429: [0] event publishing, [1] read requests */
} pd_app_stats;

typedef struct pd_core_stats {
  uint64_t http[PD_ROUTE_N][PD_STATUS_N]; /* HTTP requests answered, by route and status */
  uint64_t reloads_ok, reloads_failed;    /* SIGHUP reloads */
} pd_core_stats;

#endif
