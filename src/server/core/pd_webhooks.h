/* pusherd server core: webhooks, the decision half (docs/webhooks.md).
 *
 * The core decides which webhook events happen (channel_occupied,
 * channel_vacated, member_added, member_removed, client_event, cache_miss,
 * subscription_count), applies each configured webhook's event_types and
 * channel-name filter, and hands every surviving event to a pd_wh_out.  It
 * does no I/O: batching, signing and delivery are the net layer's
 * (net/pd_webhook_sender.h); the unit tests record the events instead.
 *
 * Occupancy and membership transitions are decided here on a single node.
 * A clustered adapter that decides them cluster-wide (adapter/redis.c) sets
 * core->wh_cluster and reports each transition with pd_wh_transition; the
 * core then makes no decision of its own for those four event types.
 */
#ifndef PD_WEBHOOKS_H
#define PD_WEBHOOKS_H

#include <jansson.h>
#include <stddef.h>

#include "core/pd_config.h"

typedef struct pd_core pd_core;
typedef struct pd_app pd_app;
typedef struct pd_channel pd_channel;
typedef struct pd_session pd_session;

typedef struct pd_wh_out {
  /* One event ({"name":..., "channel":..., ...}) for webhook number hook
   * of app->cfg->webhooks.  event is borrowed: keep a reference or a copy. */
  void (*emit)(pd_app *app, size_t hook, json_t *event, void *user_data);
} pd_wh_out;

/* out NULL: no webhooks are produced (the default). */
void pd_core_set_webhooks(pd_core *core, const pd_wh_out *out, void *user_data);

/* --config: parse an app's "webhooks" array into a (soketi's format);
 * 0, or -1 with "where.webhooks[i].key: what" in err. */
int pd_webhooks_cfg_parse(pd_app_cfg *a, json_t *arr, const char *where, char *err, size_t errlen);
void pd_webhooks_cfg_free(pd_app_cfg *a);

/* Hooks called by the core's modules (channels.c, protocol.c). */
void pd_wh_joined(pd_channel *ch);                /* after a session was added to ch */
void pd_wh_left(pd_channel *ch);                  /* after a session was removed from ch */
void pd_wh_member(pd_channel *ch, const char *user_id, int added); /* first join / last leave, cluster-wide view */
void pd_wh_client_event(pd_channel *ch, const char *event, json_t *data, const char *socket_id,
                        const char *user_id);
void pd_wh_cache_miss(pd_channel *ch);

/* A cluster-wide decision from the adapter: type PD_WH_CHANNEL_OCCUPIED,
 * _VACATED, PD_WH_MEMBER_ADDED or _REMOVED (user_id for the last two). */
void pd_wh_transition(pd_app *app, const char *channel, int type, const char *user_id);

/* 1 when some webhook of app wants events of type on channel. */
int pd_wh_wanted(const pd_app *app, int type, const char *channel);

#endif
