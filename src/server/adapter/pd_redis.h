/* pusherd: the Redis scale-out adapter.  Several pusherd processes on one
 * Redis act as one app (the protocol between nodes is described in
 * redis.c).  Built only when hiredis is found (PUSHERD_HAVE_HIREDIS). */
#ifndef PD_REDIS_H
#define PD_REDIS_H

#include <stdint.h>
#include <uv.h>

#include "core/pd_core.h"

typedef struct pd_redis pd_redis;

/* The operations; user_data is the pd_redis. */
extern const pd_adapter pd_adapter_redis;

/* Parse redis://[[user]:password@]host[:port][/db]; 0 or -1 (why in err).
 * *host and *password (NULL when absent) are pd_alloc'ed. */
int pd_redis_parse_url(const char *url, char **host, int *port, char **password, int *db, char *err,
                       size_t errlen);
/* Connects (with back-off retries) on loop and installs itself as core's
 * adapter.  0, or -1 on a bad URL / out of memory. */
int pd_redis_new(pd_redis **out, uv_loop_t *loop, pd_core *core, const char *url);
/* Graceful: "bye" to the other nodes, stop timers, disconnect. */
void pd_redis_stop(pd_redis *r);
/* After a configuration reload added apps (core->napps grew): their
 * cluster channels are subscribed.  0, or -1 out of memory (logged; those
 * apps are then served on this node only). */
int pd_redis_reload(pd_redis *r);
/* For metrics and /ready: 1 when both Redis connections are up; the
 * number of other nodes currently seen for app. */
int pd_redis_link_up(const pd_redis *r);
size_t pd_redis_peers(const pd_redis *r, const pd_app *app);
/* After the loop ended (or offline): frees; core goes back to the local
 * adapter.  Accepts NULL. */
void pd_redis_free(pd_redis *r);

/* Tests and fuzzers: the adapter without Redis (node_num 0 = random);
 * messages go to pd_redis_tap (when set) instead of Redis; inject one
 * incoming message as if received from Redis. */
int pd_redis_new_offline(pd_redis **out, pd_core *core, uint64_t node_num);
extern void (*pd_redis_tap)(const char *channel, const char *message);
void pd_redis_inject(pd_redis *r, pd_app *app, const char *message);

#endif
