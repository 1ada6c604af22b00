/* pusherd server core: channel registry, presence members, cache channels,
 * fan-out. */
#include "core/pd_core.h"
#include "core/names.h"

#include <string.h>
#include <stdio.h>
#include <stdlib.h>

int pd_channel_name_valid(const pd_app *app, const char *name, size_t len, char *why, size_t whylen) {
  return pusher__check_channel_name(name, len, app->cfg->max_channel_name, 1, why, whylen);
}

pd_channel *pd_channel_get(pd_app *app, const char *name, int create) {
  pd_channel *ch = pd_map_get(&app->channels, name);
  if (ch || !create) return ch;
  ch = pd_zalloc(sizeof *ch);
  if (!ch) return NULL;
  ch->app = app;
  ch->name = pd_strdup(name);
  pusher__chan_kind k = pusher__chan_kind_of(name);
  ch->presence = k == PUSHER__CHAN_PRESENCE;
  ch->encrypted = k == PUSHER__CHAN_ENCRYPTED;
  ch->priv = k == PUSHER__CHAN_PRIVATE || k == PUSHER__CHAN_ENCRYPTED;
  ch->cache = pusher__chan_is_cache(name);
  if (!ch->name || pd_map_put(&app->channels, name, ch) != 0) {
    pd_free(ch->name);
    pd_free(ch);
    return NULL;
  }
  return ch;
}

static void channel_free(pd_channel *ch) {
  for (size_t i = 0; i < ch->members.nb; i++)
    for (pd_map_ent *e = ch->members.b[i]; e; e = e->next) {
      pd_member *m = e->val;
      json_decref(m->user_info);
      pd_free(m);
    }
  pd_map_free(&ch->members);
  pd_msg_unref(ch->cached);
  pd_free(ch->cached_json);
  pd_free(ch->subs);
  pd_free(ch->name);
  pd_free(ch);
}

static int cache_valid(const pd_channel *ch) {
  return ch->cached && ch->app->core->wall_s - ch->cached_at_s < (uint64_t)ch->app->cfg->cache_ttl;
}

void pd_channel_maybe_free(pd_channel *ch) {
  if (ch->nsubs || cache_valid(ch)) return;
  pd_map_del(&ch->app->channels, ch->name);
  channel_free(ch);
}

void pd_app_free_channels(pd_app *app) {
  for (size_t i = 0; i < app->channels.nb; i++)
    for (pd_map_ent *e = app->channels.b[i]; e; e = e->next) channel_free(e->val);
  pd_map_free(&app->channels);
}

size_t pd_channel_subscription_count(const pd_channel *ch) { return ch->nsubs; }

size_t pd_channel_total_subs(pd_app *app, const char *name) {
  pd_channel *ch = pd_channel_get(app, name, 0);
  return (ch ? ch->nsubs : 0) + PD_AD(app)->remote_subs(app, name, PD_AD_UD(app));
}

size_t pd_channel_total_members(pd_app *app, const char *name) {
  pd_channel *ch = pd_channel_get(app, name, 0);
  if (!PD_AD(app)->clustered) return ch ? ch->nmembers : 0;
  json_t *hash = json_object();
  if (ch)
    for (size_t i = 0; i < ch->members.nb; i++)
      for (pd_map_ent *e = ch->members.b[i]; e; e = e->next) json_object_set_new(hash, e->key, json_null());
  PD_AD(app)->add_remote_members(app, name, hash, NULL, PD_AD_UD(app));
  size_t n = json_object_size(hash);
  json_decref(hash);
  return n;
}

pd_sub *pd_session_find_sub(pd_session *c, const char *name) {
  for (size_t i = 0; i < c->nsubs; i++)
    if (strcmp(c->subs[i].ch->name, name) == 0) return &c->subs[i];
  return NULL;
}

void pd_channel_broadcast(pd_channel *ch, pd_msg *m, pd_session *except) {
  size_t n = ch->nsubs;
  if (!n) return;
  /* Snapshot: queueing may close a subscriber, which leaves the channel. */
  pd_session *stack[64];
  pd_session **list = n <= 64 ? stack : pd_alloc(n * sizeof *list);
  if (!list) return;
  memcpy(list, ch->subs, n * sizeof *list);
  for (size_t i = 0; i < n; i++)
    if (list[i] != except) pd_session_send(list[i], m);
  if (list != stack) pd_free(list);
}

static void broadcast_json(pd_channel *ch, json_t *o, pd_session *except) {
  pd_msg *m = pd_msg_json(o);
  json_decref(o);
  if (!m) return;
  pd_channel_broadcast(ch, m, except);
  pd_msg_unref(m);
}

static json_t *encoded_data(json_t *d) {
  char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(d);
  json_t *r = json_string(s ? s : "{}");
  free(s);
  return r;
}

void pd_channel_send_count(pd_channel *ch) {
  if (!ch->app->cfg->subscription_count || ch->presence || !ch->nsubs) return;
  uint64_t now = ch->app->core->now_ms;
  size_t total = ch->nsubs + PD_AD(ch->app)->remote_subs(ch->app, ch->name, PD_AD_UD(ch->app));
  if (total > 100 && ch->count_sent_ms && now - ch->count_sent_ms < 5000) {
    ch->count_pending = 1;
    return;
  }
  ch->count_pending = 0;
  ch->count_sent_ms = now;
  json_t *o = json_object();
  json_object_set_new(o, "event", json_string("pusher_internal:subscription_count"));
  json_object_set_new(o, "channel", json_string(ch->name));
  json_object_set_new(o, "data", encoded_data(json_pack("{s:I}", "subscription_count", (json_int_t)total)));
  broadcast_json(ch, o, NULL);
}

void pd_channel_member_event(pd_channel *ch, int added, const char *user_id, json_t *user_info,
                             pd_session *except) {
  json_t *d = json_object();
  json_object_set_new(d, "user_id", json_string(user_id));
  if (added && user_info) json_object_set(d, "user_info", user_info);
  json_t *o = json_object();
  json_object_set_new(o, "event", json_string(added ? "pusher_internal:member_added" : "pusher_internal:member_removed"));
  json_object_set_new(o, "channel", json_string(ch->name));
  json_object_set_new(o, "data", encoded_data(d));
  broadcast_json(ch, o, except);
}

json_t *pd_channel_presence_json(pd_channel *ch) {
  json_t *ids = json_array(), *hash = json_object();
  for (size_t i = 0; i < ch->members.nb; i++)
    for (pd_map_ent *e = ch->members.b[i]; e; e = e->next) {
      pd_member *m = e->val;
      json_array_append_new(ids, json_string(e->key));
      json_object_set(hash, e->key, m->user_info ? m->user_info : json_null());
    }
  PD_AD(ch->app)->add_remote_members(ch->app, ch->name, hash, ids, PD_AD_UD(ch->app));
  return json_pack("{s:{s:o,s:o,s:I}}", "presence", "ids", ids, "hash", hash, "count",
                   (json_int_t)json_array_size(ids));
}

int pd_channel_join(pd_session *c, pd_channel *ch, const char *user_id, const char *user_info_text,
                    const char **err) {
  if (c->nsubs == c->subs_alloc) {
    uint32_t na = c->subs_alloc ? c->subs_alloc * 2 : 1; /* most connections hold one channel */
    pd_sub *ns = pd_realloc(c->subs, na * sizeof *ns);
    if (!ns) goto nomem;
    c->subs = ns;
    c->subs_alloc = na;
  }
  if (ch->nsubs == ch->alloc) {
    size_t na = ch->alloc ? ch->alloc * 2 : 8;
    pd_session **nc = pd_realloc(ch->subs, na * sizeof *nc);
    if (!nc) goto nomem;
    ch->subs = nc;
    ch->alloc = na;
  }
  char *uid = NULL;
  int wh_member = 0;
  if (ch->presence) {
    uid = pd_strdup(user_id);
    if (!uid) goto nomem;
    pd_member *m = pd_map_get(&ch->members, user_id);
    if (m) {
      m->count++;
    } else {
      int elsewhere = PD_AD(ch->app)->member_remote(ch->app, ch->name, user_id, PD_AD_UD(ch->app));
      if (!elsewhere && (PD_AD(ch->app)->clustered ? pd_channel_total_members(ch->app, ch->name) : ch->nmembers) >=
                            ch->app->cfg->max_presence_members) {
        pd_free(uid);
        *err = "Presence channel is full (member limit reached)";
        return -1;
      }
      m = pd_zalloc(sizeof *m);
      if (!m) {
        pd_free(uid);
        goto nomem;
      }
      m->count = 1;
      if (user_info_text) m->user_info = json_loads(user_info_text, JSON_DECODE_ANY, NULL);
      if (pd_map_put(&ch->members, user_id, m) != 0) {
        json_decref(m->user_info);
        pd_free(m);
        pd_free(uid);
        goto nomem;
      }
      ch->nmembers++;
      if (!elsewhere) pd_channel_member_event(ch, 1, user_id, m->user_info, c);
      wh_member = !elsewhere;
      PD_AD(ch->app)->member_changed(ch, user_id, m->user_info, 1, PD_AD_UD(ch->app));
    }
  }
  pd_sub *s = &c->subs[c->nsubs++];
  s->ch = ch;
  s->idx = ch->nsubs;
  s->user_id = uid;
  ch->subs[ch->nsubs++] = c;
  pd_wh_joined(ch);
  if (wh_member) pd_wh_member(ch, user_id, 1);
  PD_AD(ch->app)->subs_changed(ch, PD_AD_UD(ch->app));
  return 0;
nomem:
  *err = "Server out of memory";
  return -1;
}

void pd_channel_leave(pd_session *c, size_t si) {
  pd_sub sub = c->subs[si];
  c->subs[si] = c->subs[--c->nsubs];
  pd_channel *ch = sub.ch;
  /* remove from channel: swap with last, fix the moved conn's index */
  size_t last = --ch->nsubs;
  if (sub.idx != last) {
    pd_session *moved = ch->subs[last];
    ch->subs[sub.idx] = moved;
    for (size_t i = 0; i < moved->nsubs; i++)
      if (moved->subs[i].ch == ch) {
        moved->subs[i].idx = sub.idx;
        break;
      }
  }
  if (ch->presence && sub.user_id) {
    pd_member *m = pd_map_get(&ch->members, sub.user_id);
    if (m && --m->count == 0) {
      pd_map_del(&ch->members, sub.user_id);
      json_decref(m->user_info);
      pd_free(m);
      ch->nmembers--;
      if (!PD_AD(ch->app)->member_remote(ch->app, ch->name, sub.user_id, PD_AD_UD(ch->app))) {
        pd_channel_member_event(ch, 0, sub.user_id, NULL, c);
        pd_wh_member(ch, sub.user_id, 0);
      }
      PD_AD(ch->app)->member_changed(ch, sub.user_id, NULL, 0, PD_AD_UD(ch->app));
    }
  }
  pd_free(sub.user_id);
  pd_wh_left(ch);
  PD_AD(ch->app)->subs_changed(ch, PD_AD_UD(ch->app));
  pd_channel_send_count(ch);
  pd_channel_maybe_free(ch);
}

void pd_session_leave_all(pd_session *c) {
  while (c->nsubs) pd_channel_leave(c, c->nsubs - 1);
  pd_user_signed_out(c);
}

/* #server-to-user-<id>: delivered to every socket signed in as <id> (whether
 * or not it has subscribed yet, so an event sent right after sign-in is not
 * lost), once per socket. */
static int publish_to_user(pd_app *app, const char *channel, const char *event, const char *data, pd_session *except) {
  size_t n;
  pd_session **list = pd_user_sessions(app, pusher__chan_user_id(channel), &n);
  if (!list) return 0;
  json_t *o = json_pack("{s:s,s:s,s:s}", "event", event, "channel", channel, "data", data);
  pd_msg *m = o ? pd_msg_json(o) : NULL;
  json_decref(o);
  for (size_t i = 0; m && i < n; i++)
    if (list[i] != except) pd_session_send(list[i], m);
  pd_msg_unref(m);
  pd_free(list);
  return m ? 0 : -1;
}

int pd_publish(pd_app *app, const char *channel, const char *event, const char *data, pd_session *except) {
  if (pusher__chan_user_id(channel)) return publish_to_user(app, channel, event, data, except);
  pd_channel *ch = pd_channel_get(app, channel, 0);
  int is_cache = pusher__chan_is_cache(channel);
  if (!ch && !is_cache) return 0;
  if (!ch) ch = pd_channel_get(app, channel, 1);
  if (!ch) return -1;
  json_t *o = json_object();
  json_object_set_new(o, "event", json_string(event));
  json_object_set_new(o, "channel", json_string(channel));
  json_object_set_new(o, "data", json_string(data));
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!text) return -1;
  pd_msg *m = pd_msg_frame(text, strlen(text));
  if (!m) {
    free(text);
    return -1;
  }
  pd_channel_broadcast(ch, m, except);
  if (ch->cache) {
    pd_msg_unref(ch->cached);
    pd_free(ch->cached_json);
    ch->cached = m;
    pd_msg_ref(m);
    ch->cached_json = pd_strdup(data);
    ch->cached_at_s = app->core->wall_s;
  }
  free(text);
  pd_msg_unref(m);
  pd_channel_maybe_free(ch);
  return 0;
}
