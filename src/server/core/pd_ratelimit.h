/* pusherd server core: per-app rate limits of the HTTP API (app keys
 * max_backend_events_per_second and max_read_requests_per_second; -1 =
 * none).  A fixed window of one wall-clock second (the same on every node
 * of a cluster, given synchronised clocks); over the
 * limit the request is answered 429 with Retry-After.  In a cluster the
 * adapter reports what the other nodes used in the same second
 * (pd_ratelimit_remote), so the limit is shared; see docs/operations.md
 * for the accuracy. */
#ifndef PD_RATELIMIT_H
#define PD_RATELIMIT_H

#include "core/pd_core.h"

enum { PD_RL_EVENTS = 0, PD_RL_READS = 1 };

/* The app's limit for kind (-1 = none). */
long pd_ratelimit_limit(const pd_app *app, int kind);
/* Takes n units for kind in the current second: 0 when allowed (and
 * counted), else the seconds to wait before retrying (>= 1). */
int pd_ratelimit_take(pd_app *app, int kind, long n);
/* What this node used of the current second (what the adapter reports to
 * the others), and the sum the other nodes reported for second sec. */
long pd_ratelimit_used(pd_app *app, int kind, uint64_t *sec);
void pd_ratelimit_remote(pd_app *app, int kind, uint64_t sec, long used);
/* The current window as the X-RateLimit-* headers tell it: units left
 * (this node's and the others' use subtracted) and its end (Unix seconds). */
void pd_ratelimit_window(pd_app *app, int kind, long *remaining, uint64_t *reset);

#endif
