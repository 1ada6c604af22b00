/* pusherd net layer: the metrics listener (--metrics-port / "metrics_port").
 * Its own TCP listener, never the app port, answering three GETs:
 *   /metrics  Prometheus text exposition format 0.0.4 (HELP and TYPE for
 *             every family): the core's counters (core/pd_stats.h), process
 *             memory and CPU, and every registered collector;
 *   /health   200 while the process runs its loop (liveness);
 *   /ready    200 when the node can serve; 503 once shutdown starts and
 *             while a readiness check (main: the Redis link in cluster
 *             mode) says no.
 * See docs/operations.md.  Caps: a request is at most PD_METRICS_REQ_CAP
 * bytes of headers (431 above) complete within PD_METRICS_REQ_TIMEOUT_MS
 * (closed after), at most PD_METRICS_MAX_CONNS connections at once (more
 * are closed at accept), a /metrics body at most PD_METRICS_OUT_CAP (500
 * above, logged), PD_METRICS_MAX_COLLECTORS collectors. */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/pd_core.h"

#define PD_METRICS_REQ_CAP 8192u
#define PD_METRICS_REQ_TIMEOUT_MS 10000u
#define PD_METRICS_MAX_CONNS 64u
#define PD_METRICS_OUT_CAP (8u * 1024u * 1024u)
#define PD_METRICS_MAX_COLLECTORS 16u

/* The text being rendered.  Append-only; once over PD_METRICS_OUT_CAP or
 * out of memory, `failed` is set and further appends are dropped. */
typedef struct pd_mbuf {
  char *p;
  size_t len, cap;
  int failed;
} pd_mbuf;

/* A family's "# HELP" and "# TYPE" lines (type: counter, gauge). */
void pd_metrics_family(pd_mbuf *b, const char *name, const char *type, const char *help);
/* One sample: name{l1="v1",l2="v2"} value.  Label pairs may be NULL (none);
 * label values are escaped as the format wants. */
void pd_metrics_u64(pd_mbuf *b, const char *name, const char *l1, const char *v1, const char *l2,
                    const char *v2, uint64_t value);
void pd_metrics_double(pd_mbuf *b, const char *name, const char *l1, const char *v1, double value);

/* A module's counters: called on every /metrics request, appends its
 * families (pd_metrics_family, then the samples).  Adding a module's
 * counters is one collector and one pd_metrics_add_collector call. */
typedef void (*pd_metrics_collector)(pd_mbuf *b, pd_core *core, void *user_data);

/* Readiness: 1 ready, or 0 with a short reason in *why. */
typedef int (*pd_metrics_ready_fn)(const char **why, void *user_data);

typedef struct pd_metrics pd_metrics;

/* Not listening yet.  core must outlive it.  NULL when out of memory. */
pd_metrics *pd_metrics_new(uv_loop_t *loop, pd_core *core);
int pd_metrics_add_collector(pd_metrics *m, pd_metrics_collector fn, void *user_data); /* 0 or -1 (full) */
void pd_metrics_set_ready_check(pd_metrics *m, pd_metrics_ready_fn fn, void *user_data);
/* Listen on host:port (port 0: any; pd_metrics_port tells which). */
int pd_metrics_listen(pd_metrics *m, const char *host, int port);
int pd_metrics_port(pd_metrics *m);
/* Renders /metrics into b (b zeroed first; caller frees b->p with pd_free). */
void pd_metrics_render(pd_metrics *m, pd_mbuf *b);
/* Closes the listener, its timer and its connections (the loop can end). */
void pd_metrics_close(pd_metrics *m);
/* After the loop ended. Accepts NULL. */
void pd_metrics_free(pd_metrics *m);

#endif
