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

/* Installs itself as core's webhook output (apps may gain webhooks on a
 * reload).  Touches libcurl only when some app has webhooks, and then
 * expects it loaded (pd_curl_load_for, net/pd_curl.h; main.c does it
 * before this call and before applying a reload).  -1: out of memory, or
 * webhooks configured and libcurl not loaded or curl_multi_init failed. */
int pd_whs_new(pd_whs **out, uv_loop_t *loop, pd_core *core);
/* After a configuration reload swapped new settings in (core->apps[i]->cfg),
 * while the old ones are still allocated: a webhook with the same app id
 * and URL keeps its queue and takes the new secret, key and headers from
 * its next attempt; a webhook no longer configured drops what waits for it
 * (logged, counted; a request in flight finishes and is not retried); a new
 * one starts empty.  The first webhook creates the libcurl multi handle
 * (libcurl must be loaded by then).  0, or -1 when out of memory or
 * libcurl is missing (logged; the webhooks that could not be set up drop
 * their events). */
int pd_whs_reload(pd_whs *w);
/* SIGTERM: send what is pending now; give up on whatever is not delivered
 * shutdown_grace_ms + PD_WHS_TIMEOUT_MS after this call. */
void pd_whs_shutdown(pd_whs *w);
/* After the loop ended; accepts NULL. */
void pd_whs_free(pd_whs *w);
const pd_whs_stats *pd_whs_get_stats(const pd_whs *w);

#endif
