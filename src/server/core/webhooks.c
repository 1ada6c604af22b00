/* pusherd server core: which webhook events happen, and for which of an
 * app's webhooks (docs/webhooks.md).  No I/O: events go to core->wh. */
#include "core/pd_core.h"
#include "core/pd_webhooks.h"
#include "core/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const pd_wh_type_names[PD_WH_NTYPES] = {
    "channel_occupied", "channel_vacated", "member_added", "member_removed",
    "client_event",     "cache_miss",      "subscription_count"};

void pd_core_set_webhooks(pd_core *core, const pd_wh_out *out, void *user_data) {
  core->wh = out;
  core->wh_ud = user_data;
}

/* ------------------------------------------------------------------ config */
void pd_webhooks_cfg_free(pd_app_cfg *a) {
  for (size_t i = 0; i < a->nwebhooks; i++) {
    pd_webhook_cfg *w = &a->webhooks[i];
    for (size_t j = 0; j < w->nheaders; j++) pd_free(w->headers[j]);
    pd_free(w->headers);
    pd_free(w->url);
    pd_free(w->starts_with);
    pd_free(w->ends_with);
  }
  pd_free(a->webhooks);
  a->webhooks = NULL;
  a->nwebhooks = 0;
}

static int header_name_ok(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
        !strchr("!#$%&'*+-.^_`|~", *s))
      return 0;
  return 1;
}

static int header_value_ok(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 && *s != '\t') return 0;
  return 1;
}

/* Headers the sender sets itself; a webhook may not replace them. */
static int header_reserved(const char *n) {
  static const char *const r[] = {"content-type", "content-length", "x-pusher-key", "x-pusher-signature",
                                  "host", "transfer-encoding", "connection", NULL};
  for (int i = 0; r[i]; i++)
    if (strcasecmp(r[i], n) == 0) return 1;
  return 0;
}

static int parse_one(pd_webhook_cfg *w, json_t *o, const char *at, char *err, size_t errlen) {
  if (!json_is_object(o)) {
    snprintf(err, errlen, "%s: must be an object", at);
    return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (strcmp(k, "url") && strcmp(k, "event_types") && strcmp(k, "headers") && strcmp(k, "filter")) {
      snprintf(err, errlen, "%s: unknown setting \"%s\" (known: url, event_types, headers, filter)", at, k);
      return -1;
    }
  }
  json_t *url = json_object_get(o, "url");
  const char *u = json_is_string(url) ? json_string_value(url) : "";
  if ((strncmp(u, "http://", 7) != 0 || !u[7]) && (strncmp(u, "https://", 8) != 0 || !u[8])) {
    snprintf(err, errlen, "%s.url: required, an http:// or https:// URL", at);
    return -1;
  }
  if (!header_value_ok(u) || strchr(u, ' ')) {
    snprintf(err, errlen, "%s.url: must not contain spaces or control characters", at);
    return -1;
  }
  w->url = pd_strdup(u);
  json_t *types = json_object_get(o, "event_types");
  if (!json_is_array(types) || json_array_size(types) == 0) {
    snprintf(err, errlen, "%s.event_types: required, a non-empty array of event names", at);
    return -1;
  }
  size_t i;
  json_array_foreach(types, i, v) {
    int t = -1;
    for (int j = 0; j < PD_WH_NTYPES && json_is_string(v); j++)
      if (strcmp(json_string_value(v), pd_wh_type_names[j]) == 0) t = j;
    if (t < 0) {
      snprintf(err, errlen,
               "%s.event_types[%zu]: must be one of channel_occupied, channel_vacated, member_added, "
               "member_removed, client_event, cache_miss, subscription_count",
               at, i);
      return -1;
    }
    w->types |= 1u << t;
  }
  json_t *hs = json_object_get(o, "headers");
  if (hs) {
    if (!json_is_object(hs) || json_object_size(hs) > PD_WH_MAX_HEADERS) {
      snprintf(err, errlen, "%s.headers: must be an object of at most %d string values", at, PD_WH_MAX_HEADERS);
      return -1;
    }
    w->headers = pd_zalloc((json_object_size(hs) + 1) * sizeof *w->headers);
    if (!w->headers) return -1;
    json_object_foreach(hs, k, v) {
      if (!header_name_ok(k) || header_reserved(k) || !json_is_string(v) ||
          !header_value_ok(json_string_value(v)) || strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen,
                 "%s.headers.%s: needs a header name (not Content-Type, X-Pusher-Key, X-Pusher-Signature or "
                 "a framing header) and a string value without control characters",
                 at, k);
        return -1;
      }
      size_t n = strlen(k) + json_string_length(v) + 3;
      char *line = pd_alloc(n);
      if (!line) return -1;
      snprintf(line, n, "%s: %s", k, json_string_value(v));
      w->headers[w->nheaders++] = line;
    }
  }
  json_t *f = json_object_get(o, "filter");
  if (f) {
    if (!json_is_object(f)) {
      snprintf(err, errlen, "%s.filter: must be an object", at);
      return -1;
    }
    json_object_foreach(f, k, v) {
      char **dst = strcmp(k, "channel_name_starts_with") == 0 ? &w->starts_with
                   : strcmp(k, "channel_name_ends_with") == 0  ? &w->ends_with
                                                               : NULL;
      if (!dst || !json_is_string(v)) {
        snprintf(err, errlen,
                 "%s.filter.%s: known filters are channel_name_starts_with and channel_name_ends_with (strings)",
                 at, k);
        return -1;
      }
      *dst = pd_strdup(json_string_value(v));
    }
  }
  return 0;
}

int pd_webhooks_cfg_parse(pd_app_cfg *a, json_t *arr, const char *where, char *err, size_t errlen) {
  if (!json_is_array(arr) || json_array_size(arr) > PD_WH_MAX_PER_APP) {
    snprintf(err, errlen, "%s.webhooks: must be an array of at most %d webhooks", where, PD_WH_MAX_PER_APP);
    return -1;
  }
  pd_webhooks_cfg_free(a);
  if (json_array_size(arr) == 0) return 0;
  a->webhooks = pd_zalloc(json_array_size(arr) * sizeof *a->webhooks);
  if (!a->webhooks) return -1;
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) {
    char at[96];
    snprintf(at, sizeof at, "%s.webhooks[%zu]", where, i);
    a->nwebhooks = i + 1;
    if (parse_one(&a->webhooks[i], o, at, err, errlen) != 0) {
      pd_webhooks_cfg_free(a);
      return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ events */
static int hook_matches(const pd_webhook_cfg *w, int type, const char *channel) {
  /* #server-to-user-<id> is the delivery path of server-to-user events, not
   * a channel an application subscribes to: no webhooks (the cluster does
   * not count it either) */
  if (!(w->types & (1u << type)) || pusher__chan_user_id(channel)) return 0;
  if (w->starts_with && strncmp(channel, w->starts_with, strlen(w->starts_with)) != 0) return 0;
  if (w->ends_with) {
    size_t n = strlen(channel), e = strlen(w->ends_with);
    if (e > n || strcmp(channel + n - e, w->ends_with) != 0) return 0;
  }
  return 1;
}

int pd_wh_wanted(const pd_app *app, int type, const char *channel) {
  if (!app->core->wh) return 0;
  for (size_t i = 0; i < app->cfg->nwebhooks; i++)
    if (hook_matches(&app->cfg->webhooks[i], type, channel)) return 1;
  return 0;
}

/* ev: the event's own fields (stolen); name and channel are added. */
static void emit(pd_app *app, int type, const char *channel, json_t *ev) {
  if (!ev) return;
  json_object_set_new(ev, "name", json_string(pd_wh_type_names[type]));
  json_object_set_new(ev, "channel", json_string(channel));
  for (size_t i = 0; i < app->cfg->nwebhooks; i++)
    if (hook_matches(&app->cfg->webhooks[i], type, channel)) app->core->wh->emit(app, i, ev, app->core->wh_ud);
  json_decref(ev);
}

void pd_wh_transition(pd_app *app, const char *channel, int type, const char *user_id) {
  if (!pd_wh_wanted(app, type, channel)) return;
  json_t *ev = json_object();
  if (user_id && ev) json_object_set_new(ev, "user_id", json_string(user_id));
  emit(app, type, channel, ev);
}

static void subscription_count(pd_channel *ch) {
  pd_app *app = ch->app;
  if (!app->cfg->subscription_count || ch->presence || !pd_wh_wanted(app, PD_WH_SUBSCRIPTION_COUNT, ch->name))
    return;
  json_int_t total = (json_int_t)pd_channel_total_subs(app, ch->name);
  emit(app, PD_WH_SUBSCRIPTION_COUNT, ch->name, json_pack("{s:I}", "subscription_count", total));
}

/* Single node (or an adapter that leaves the decision to each node): the
 * first subscription anywhere this node knows of is the occupying one. */
void pd_wh_joined(pd_channel *ch) {
  pd_app *app = ch->app;
  if (!app->core->wh) return;
  if (!app->core->wh_cluster && ch->nsubs == 1 &&
      PD_AD(app)->remote_subs(app, ch->name, PD_AD_UD(app)) == 0)
    pd_wh_transition(app, ch->name, PD_WH_CHANNEL_OCCUPIED, NULL);
  subscription_count(ch);
}

void pd_wh_left(pd_channel *ch) {
  pd_app *app = ch->app;
  if (!app->core->wh) return;
  if (!app->core->wh_cluster && ch->nsubs == 0 &&
      PD_AD(app)->remote_subs(app, ch->name, PD_AD_UD(app)) == 0)
    pd_wh_transition(app, ch->name, PD_WH_CHANNEL_VACATED, NULL);
  subscription_count(ch);
}

void pd_wh_member(pd_channel *ch, const char *user_id, int added) {
  if (!ch->app->core->wh || ch->app->core->wh_cluster) return;
  pd_wh_transition(ch->app, ch->name, added ? PD_WH_MEMBER_ADDED : PD_WH_MEMBER_REMOVED, user_id);
}

void pd_wh_client_event(pd_channel *ch, const char *event, json_t *data, const char *socket_id,
                        const char *user_id) {
  if (!pd_wh_wanted(ch->app, PD_WH_CLIENT_EVENT, ch->name)) return;
  json_t *ev = json_object();
  if (!ev) return;
  json_object_set_new(ev, "event", json_string(event));
  /* Pusher sends the data as the client sent it: a string stays a string,
   * anything else is its JSON text. */
  if (json_is_string(data)) {
    json_object_set(ev, "data", data);
  } else {
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_object_set_new(ev, "data", json_string(text ? text : "null"));
    free(text);
  }
  json_object_set_new(ev, "socket_id", json_string(socket_id));
  if (user_id) json_object_set_new(ev, "user_id", json_string(user_id));
  emit(ch->app, PD_WH_CLIENT_EVENT, ch->name, ev);
}

void pd_wh_cache_miss(pd_channel *ch) {
  if (!pd_wh_wanted(ch->app, PD_WH_CACHE_MISS, ch->name)) return;
  emit(ch->app, PD_WH_CACHE_MISS, ch->name, json_object());
}
