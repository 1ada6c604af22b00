/* pusherd server core: Pusher protocol 7 messages from clients.  Every malformed message
 * is answered with a pusher:error to that client only; nothing here can take
 * the server down. */
#include "core/pd_core.h"
#include "core/names.h"
#include "core/proto.h"
#include "core/sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static json_t *str_data(json_t *d) {
  char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(d);
  json_t *r = json_string(s ? s : "{}");
  free(s);
  return r;
}

static void send_event(pd_session *c, const char *event, const char *channel, json_t *data) {
  json_t *o = json_object();
  json_object_set_new(o, "event", json_string(event));
  if (channel) json_object_set_new(o, "channel", json_string(channel));
  if (data) json_object_set_new(o, "data", data);
  pd_session_send_json(c, o);
  json_decref(o);
}

/* ------------------------------------------------------------------ subscribe */
static void subscription_failed(pd_session *c, const char *channel, const char *message) {
  /* Real Pusher: pusher:error with code null, no close.  The channel is
   * included so pusher-js also reports it on the channel. */
  pd_session_send_error(c, 0, message, channel);
}

static void send_succeeded(pd_session *c, pd_channel *ch) {
  if (ch->presence) send_event(c, "pusher_internal:subscription_succeeded", ch->name, str_data(pd_channel_presence_json(ch)));
  else send_event(c, "pusher_internal:subscription_succeeded", ch->name, json_string("{}"));
}

/* The channel named by a pusher:subscribe, or NULL after replying.  Checks
 * the message shape, the name (app limits), #server-to-user- ownership and
 * the per-connection cap; an existing subscription is answered again. */
static const char *subscribe_target(pd_session *c, json_t *data) {
  if (!json_is_object(data)) {
    pd_session_send_error(c, 0, "Invalid pusher:subscribe: data must be an object", NULL);
    return NULL;
  }
  json_t *jch = json_object_get(data, "channel");
  if (!json_is_string(jch)) {
    pd_session_send_error(c, 0, "Invalid pusher:subscribe: data.channel must be a string", NULL);
    return NULL;
  }
  const char *name = json_string_value(jch);
  char why[200];
  if (!pd_channel_name_valid(c->app, name, json_string_length(jch), why, sizeof why)) {
    subscription_failed(c, NULL, why);
    return NULL;
  }
  const char *uid = pusher__chan_user_id(name);
  if (uid && (!c->user_id || strcmp(c->user_id, uid) != 0)) {
    subscription_failed(c, name, "Subscribing to #server-to-user- requires signing in as that user");
    return NULL;
  }
  pd_sub *existing = pd_session_find_sub(c, name);
  if (existing) {
    send_succeeded(c, existing->ch);
    return NULL;
  }
  if (c->nsubs >= PD_MAX_SUBS_PER_CONN) {
    snprintf(why, sizeof why, "Too many channels on this connection (limit %d)", PD_MAX_SUBS_PER_CONN);
    subscription_failed(c, name, why);
    return NULL;
  }
  return name;
}

/* Who joins a presence channel: the user id and user_info (JSON text). */
typedef struct member_in {
  char *user_id; /* NULL for private and public channels */
  char *info;    /* may be NULL */
} member_in;

static void member_in_free(member_in *m) {
  pd_free(m->user_id);
  free(m->info); /* json_dumps */
}

/* The member from channel_data (a JSON object with user_id, user_info), or
 * -1 after replying. */
static int member_from_channel_data(pd_session *c, const char *name, json_t *jcd, member_in *m) {
  const pd_app_cfg *cfg = c->app->cfg;
  char why[200];
  json_t *cd = json_loadb(json_string_value(jcd), json_string_length(jcd), 0, NULL);
  json_t *juid = json_is_object(cd) ? json_object_get(cd, "user_id") : NULL;
  if (json_is_string(juid) && json_string_length(juid) > 0 &&
      strlen(json_string_value(juid)) == json_string_length(juid)) {
    m->user_id = pd_strdup(json_string_value(juid));
  } else if (json_is_integer(juid)) {
    snprintf(why, sizeof why, "%" JSON_INTEGER_FORMAT, json_integer_value(juid));
    m->user_id = pd_strdup(why);
  } else {
    subscription_failed(c, name, "Invalid channel_data: a JSON object with a non-empty user_id is required");
    json_decref(cd);
    return -1;
  }
  json_t *ui = json_object_get(cd, "user_info");
  if (ui) m->info = json_dumps(ui, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(cd);
  if (!m->user_id) return -1;
  if (strlen(m->user_id) > cfg->max_user_id) {
    snprintf(why, sizeof why, "Invalid channel_data: user_id longer than %zu characters", cfg->max_user_id);
    subscription_failed(c, name, why);
    return -1;
  }
  if (m->info && strlen(m->info) > cfg->max_user_info) {
    snprintf(why, sizeof why, "Invalid channel_data: user_info larger than %zu bytes", cfg->max_user_info);
    subscription_failed(c, name, why);
    return -1;
  }
  return 0;
}

/* Private, encrypted and presence channels: check data.auth (and, for
 * presence, data.channel_data) and fill in the member.  0, or -1 after
 * replying.  For a signed-in user the app's auth endpoint may leave out
 * channel_data: the auth is then signed like a private channel's and the
 * member is the signed-in user. */
static int subscribe_auth(pd_session *c, json_t *data, const char *name, int presence, member_in *m) {
  const pd_app_cfg *cfg = c->app->cfg;
  json_t *auth = json_object_get(data, "auth");
  if (!json_is_string(auth)) {
    subscription_failed(c, name, "Missing auth: private and presence channels need data.auth");
    return -1;
  }
  json_t *jcd = json_object_get(data, "channel_data");
  int via_signin = presence && !jcd && c->user_id;
  if (presence && !via_signin && !json_is_string(jcd)) {
    subscription_failed(c, name, "Missing channel_data: presence channels need data.channel_data (a JSON string)");
    return -1;
  }
  int with_cd = presence && !via_signin;
  if (with_cd && strlen(json_string_value(jcd)) != json_string_length(jcd)) {
    subscription_failed(c, name, "Invalid channel_data: contains a NUL character");
    return -1;
  }
  if (pusher__verify_channel(cfg->key, cfg->secret, c->socket_id, name, with_cd ? json_string_value(jcd) : NULL,
                             json_string_value(auth)) != 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "Invalid signature: expected HMAC SHA256 hex digest of %s:%.200s%s", c->socket_id,
             name, with_cd ? ":<channel_data>" : "");
    subscription_failed(c, name, msg);
    return -1;
  }
  if (with_cd) return member_from_channel_data(c, name, jcd, m);
  if (!via_signin) return 0;
  m->user_id = pd_strdup(c->user_id);
  if (c->user_info) m->info = json_dumps(c->user_info, JSON_COMPACT | JSON_ENCODE_ANY);
  if (m->info && strlen(m->info) > cfg->max_user_info) {
    char why[200];
    snprintf(why, sizeof why, "Invalid user_info (from sign-in): larger than %zu bytes", cfg->max_user_info);
    subscription_failed(c, name, why);
    return -1;
  }
  return m->user_id ? 0 : -1;
}

static void on_subscribe(pd_session *c, json_t *data) {
  pd_app *app = c->app;
  const char *name = subscribe_target(c, data);
  if (!name) return;
  pusher__chan_kind kind = pusher__chan_kind_of(name);
  member_in m = {NULL, NULL};
  if (pusher__chan_kind_needs_auth(kind) &&
      subscribe_auth(c, data, name, kind == PUSHER__CHAN_PRESENCE, &m) != 0) {
    member_in_free(&m);
    return;
  }
  pd_channel *ch = pd_channel_get(app, name, 1);
  const char *err = NULL;
  if (!ch || pd_channel_join(c, ch, m.user_id, m.info, &err) != 0) {
    if (ch) subscription_failed(c, name, err ? err : "Subscription failed");
    if (ch) pd_channel_maybe_free(ch);
    member_in_free(&m);
    return;
  }
  member_in_free(&m);
  send_succeeded(c, ch);
  if (ch->cache) {
    if (ch->cached && app->core->wall_s - ch->cached_at_s < (uint64_t)app->cfg->cache_ttl)
      pd_session_send(c, ch->cached);
    else {
      send_event(c, "pusher:cache_miss", name, NULL);
      pd_wh_cache_miss(ch);
    }
  }
  pd_channel_send_count(ch);
}

static void on_unsubscribe(pd_session *c, json_t *data) {
  json_t *jch = json_is_object(data) ? json_object_get(data, "channel") : NULL;
  if (!json_is_string(jch)) {
    pd_session_send_error(c, 0, "Invalid pusher:unsubscribe: data.channel must be a string", NULL);
    return;
  }
  for (size_t i = 0; i < c->nsubs; i++)
    if (strcmp(c->subs[i].ch->name, json_string_value(jch)) == 0) {
      pd_channel_leave(c, i);
      return;
    }
  /* Not subscribed: nothing to do (no reply, as for Pusher). */
}

/* ------------------------------------------------------------------ signin */
static void on_signin(pd_session *c, json_t *data) {
  pd_app *app = c->app;
  if (!app->cfg->user_auth) {
    pd_session_send_error(c, 0, "User authentication is not enabled for this app", NULL);
    return;
  }
  json_t *auth = json_is_object(data) ? json_object_get(data, "auth") : NULL;
  json_t *ud = json_is_object(data) ? json_object_get(data, "user_data") : NULL;
  if (!json_is_string(auth) || !json_is_string(ud)) {
    pd_session_send_error(c, 0, "Invalid pusher:signin: data.auth and data.user_data (a JSON string) are required", NULL);
    return;
  }
  size_t ul = json_string_length(ud);
  int ok = strlen(json_string_value(ud)) == ul &&
           pusher__verify_user(app->cfg->key, app->cfg->secret, c->socket_id, json_string_value(ud), json_string_value(auth)) == 0;
  if (!ok) {
    pd_session_close(c, 4009, "Connection not authorized: invalid sign-in signature");
    return;
  }
  json_t *u = json_loadb(json_string_value(ud), ul, 0, NULL);
  json_t *id = json_is_object(u) ? json_object_get(u, "id") : NULL;
  if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > app->cfg->max_user_id ||
      strlen(json_string_value(id)) != json_string_length(id)) {
    json_decref(u);
    pd_session_close(c, 4009, "The user data must contain an \"id\" field (a non-empty string)");
    return;
  }
  if (c->user_id && strcmp(c->user_id, json_string_value(id)) != 0) {
    json_decref(u);
    pd_session_send_error(c, 0, "This connection is already signed in as another user", NULL);
    return;
  }
  pd_free(c->user_id);
  c->user_id = pd_strdup(json_string_value(id));
  json_decref(c->user_info);
  c->user_info = json_incref(json_object_get(u, "user_info"));
  send_event(c, "pusher:signin_success", NULL, json_pack("{s:O}", "user_data", ud));
  pd_user_signed_in(c, json_object_get(u, "watchlist"));
  json_decref(u);
}

/* ------------------------------------------------------------------ client events */
/* The subscription a client event may go to, or NULL after replying:
 * client events on for the app, a name within limits, a private- or
 * presence- channel the connection is subscribed to. */
static pd_sub *client_event_target(pd_session *c, const char *event, const char *chname) {
  const pd_app_cfg *cfg = c->app->cfg;
  if (!cfg->client_events) {
    pd_session_send_error(c, 0, "To send client events, you must enable this feature for the app", chname);
    return NULL;
  }
  if (!chname) {
    pd_session_send_error(c, 0, "Invalid client event: channel must be a string", NULL);
    return NULL;
  }
  char why[200];
  if (!pusher__check_event_name(event, strlen(event), cfg->max_event_name, why, sizeof why)) {
    snprintf(why, sizeof why, "Client event rejected: event name longer than %zu bytes", cfg->max_event_name);
    pd_session_send_error(c, 4301, why, chname);
    return NULL;
  }
  pusher__chan_kind kind = pusher__chan_kind_of(chname);
  if (kind == PUSHER__CHAN_ENCRYPTED) {
    pd_session_send_error(c, 0, "Client events are not supported on private-encrypted- channels", chname);
    return NULL;
  }
  if (!pusher__chan_kind_allows_client_events(kind)) {
    pd_session_send_error(c, 0, "Client events are only allowed on private- and presence- channels", chname);
    return NULL;
  }
  pd_sub *sub = pd_session_find_sub(c, chname);
  if (!sub)
    pd_session_send_error(c, 0, "Client event rejected: the connection is not subscribed to the channel", chname);
  return sub;
}

/* The data cap and the rate limit (both 4301): 0, or -1 after replying. */
static int client_event_limits(pd_session *c, json_t *data, size_t raw_len, const char *chname) {
  const pd_app_cfg *cfg = c->app->cfg;
  char why[200];
  size_t dlen = 0;
  if (json_is_string(data)) dlen = json_string_length(data);
  else if (data) {
    char *t = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    dlen = t ? strlen(t) : raw_len;
    free(t);
  }
  if (dlen > cfg->max_event_data) {
    snprintf(why, sizeof why, "Client event rejected: data larger than %zu bytes", cfg->max_event_data);
    pd_session_send_error(c, 4301, why, chname);
    return -1;
  }
  uint64_t now = c->core->now_ms;
  if (now - c->rate_window_ms >= 1000) {
    c->rate_window_ms = now;
    c->rate_count = 0;
  }
  if (++c->rate_count > cfg->client_event_rate) {
    snprintf(why, sizeof why, "Client event rejected: rate limit of %d per second exceeded", cfg->client_event_rate);
    pd_session_send_error(c, 4301, why, chname);
    return -1;
  }
  return 0;
}

static void on_client_event(pd_session *c, const char *event, json_t *msg, size_t raw_len) {
  pd_app *app = c->app;
  json_t *jch = json_object_get(msg, "channel");
  const char *chname = json_is_string(jch) ? json_string_value(jch) : NULL;
  pd_sub *sub = client_event_target(c, event, chname);
  json_t *data = json_object_get(msg, "data");
  if (!sub || client_event_limits(c, data, raw_len, chname) != 0) return;
  json_t *o = json_object();
  json_object_set_new(o, "event", json_string(event));
  json_object_set_new(o, "channel", json_string(chname));
  if (data) json_object_set(o, "data", data);
  if (sub->ch->presence && sub->user_id) json_object_set_new(o, "user_id", json_string(sub->user_id));
  pd_msg *m = pd_msg_json(o);
  if (m && PD_AD(app)->clustered) {
    /* the same frame to the channel's subscribers on the other nodes */
    char *text = json_dumps(o, JSON_COMPACT);
    if (text) PD_AD(app)->frame(app, chname, text, strlen(text), c->socket_id, PD_AD_UD(app));
    free(text);
  }
  json_decref(o);
  if (!m) return;
  pd_wh_client_event(sub->ch, event, data, c->socket_id, sub->ch->presence ? sub->user_id : NULL);
  pd_channel_broadcast(sub->ch, m, c);
  pd_msg_unref(m);
}

/* ------------------------------------------------------------------ dispatch */
void pd_session_on_binary(pd_session *s, const uint8_t *msg, size_t len) {
  (void)msg, (void)len;
  if (!s->app) return;
  pd_session_send_error(s, 0, "Binary frames are not supported: send JSON text frames", NULL);
}

void pd_session_on_text(pd_session *c, const uint8_t *msg, size_t len) {
  if (!c->app || c->ended) return;
  if (len > c->app->cfg->max_event_data + 4096) {
    pd_session_send_error(c, 4301, "Message too large", NULL);
    return;
  }
  if (!pusher__json_depth_ok((const char *)msg, len, 32)) {
    pd_session_send_error(c, 0, "Invalid message: JSON nested too deeply", NULL);
    return;
  }
  json_error_t je;
  json_t *root = json_loadb((const char *)msg, len, 0, &je);
  if (!root) {
    pd_session_send_error(c, 0, "Invalid message: not valid JSON", NULL);
    return;
  }
  if (!json_is_object(root)) {
    pd_session_send_error(c, 0, "Invalid message: must be a JSON object", NULL);
    json_decref(root);
    return;
  }
  json_t *jev = json_object_get(root, "event");
  if (!json_is_string(jev) || strlen(json_string_value(jev)) != json_string_length(jev)) {
    pd_session_send_error(c, 0, "Invalid message: \"event\" must be a string", NULL);
    json_decref(root);
    return;
  }
  const char *event = json_string_value(jev);
  json_t *data = json_object_get(root, "data");
  if (strcmp(event, "pusher:ping") == 0) {
    send_event(c, "pusher:pong", NULL, json_object());
  } else if (strcmp(event, "pusher:pong") == 0) {
    /* activity already recorded */
  } else if (strcmp(event, "pusher:subscribe") == 0) {
    on_subscribe(c, data);
  } else if (strcmp(event, "pusher:unsubscribe") == 0) {
    on_unsubscribe(c, data);
  } else if (strcmp(event, "pusher:signin") == 0) {
    on_signin(c, data);
  } else if (has_prefix(event, "client-")) {
    on_client_event(c, event, root, len);
  } else {
    char m[300];
    snprintf(m, sizeof m, "Unknown event \"%.200s\"", event);
    pd_session_send_error(c, 0, m, NULL);
  }
  json_decref(root);
}
