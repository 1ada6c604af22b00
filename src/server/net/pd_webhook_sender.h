/* pusherd net layer: webhook delivery (docs/webhooks.md).
 *
 * Receives the core's webhook events (core/pd_webhooks.h), batches them per
 * (app, webhook) over webhook_batch_ms, and POSTs {"time_ms":..,"events":[..]}
 * signed with the app secret through libcurl's multi interface, driven by
 * the server's own libuv loop (no thread; a slow or dead receiver only
 * holds its own queued batches).
 *
 * Caps: PD_WHS_QUEUE_BYTES of event JSON waiting in all batches together
 * (an event over it is dropped, counted and logged), PD_WHS_BATCH_EVENTS
 * events per request, one request in flight per webhook (batches of one
 * webhook are delivered in order), PD_WHS_TIMEOUT_MS per attempt. */
#ifndef PD_WEBHOOK_SENDER_H
#define PD_WEBHOOK_SENDER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/pd_core.h"

#define PD_WHS_QUEUE_BYTES (16u * 1024u * 1024u)
#define PD_WHS_BATCH_EVENTS 100
#define PD_WHS_TIMEOUT_MS 4000
#define PD_WHS_BACKOFF_FIRST_MS 1000 /* then doubled per failure ... */
#define PD_WHS_BACKOFF_MAX_MS 60000  /* ... up to this */

typedef struct pd_whs pd_whs;

/* Counters since start (read by the metrics endpoint).  queued_*: now. */
typedef struct pd_whs_stats {
  uint64_t batches_sent;     /* answered 2xx */
  uint64_t batches_retried;  /* failed attempts followed by a retry */
  uint64_t batches_dropped;  /* given up (retry window over, or shutdown) */
  uint64_t events_sent;
  uint64_t events_dropped;   /* in dropped batches, or refused by the queue cap */
  uint64_t queued_events;
  uint64_t queued_bytes;
} pd_whs_stats;

/* Installs itself as core's webhook output when some app has webhooks;
 * *out NULL (and 0) when none has.  -1: out of memory / curl failed. */
int pd_whs_new(pd_whs **out, uv_loop_t *loop, pd_core *core);
/* SIGTERM: send what is pending now; give up on whatever is not delivered
 * shutdown_grace_ms + PD_WHS_TIMEOUT_MS after this call. */
void pd_whs_shutdown(pd_whs *w);
/* After the loop ended; accepts NULL. */
void pd_whs_free(pd_whs *w);
const pd_whs_stats *pd_whs_get_stats(const pd_whs *w);

#endif
