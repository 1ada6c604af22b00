/* pusherd server core: signed-in users, online state and watchlists
 * (the user part of protocol 7: pusher:signin, #server-to-user-<id>,
 * pusher_internal:watchlist_events).
 *
 * A user is online while at least one socket is signed in as it.  A socket
 * that signs in with a "watchlist" (up to 100 user ids; more => the first
 * 100 and pusher:error 4302) gets pusher_internal:watchlist_events: once at
 * sign-in with the watched users already online, then "online"/"offline"
 * whenever one of them comes or goes. */
#include "core/pd_core.h"

#include <stdlib.h>
#include <string.h>

typedef struct pd_user {
  size_t sockets;       /* signed-in sockets */
  pd_session **socks;      /* those sockets */
  size_t socks_alloc;
  pd_session **watchers;   /* sockets watching this user id */
  size_t nwatchers, alloc;
} pd_user;

static pd_user *user_get(pd_app *app, const char *id, int create) {
  pd_user *u = pd_map_get(&app->users, id);
  if (u || !create) return u;
  u = pd_zalloc(sizeof *u);
  if (u && pd_map_put(&app->users, id, u) != 0) {
    pd_free(u);
    return NULL;
  }
  return u;
}

static void user_maybe_free(pd_app *app, const char *id, pd_user *u) {
  if (u->sockets || u->nwatchers) return;
  pd_map_del(&app->users, id);
  pd_free(u->watchers);
  pd_free(u->socks);
  pd_free(u);
}

void pd_app_free_users(pd_app *app) {
  for (size_t i = 0; i < app->users.nb; i++)
    for (pd_map_ent *e = app->users.b[i]; e; e = e->next) {
      pd_user *u = e->val;
      pd_free(u->watchers);
      pd_free(u->socks);
      pd_free(u);
    }
  pd_map_free(&app->users);
}

static void send_watch_event(pd_session *c, const char *name, json_t *ids) {
  json_t *d = json_pack("{s:[{s:s,s:O}]}", "events", "name", name, "user_ids", ids);
  char *t = d ? json_dumps(d, JSON_COMPACT) : NULL;
  json_decref(d);
  if (!t) return;
  json_t *o = json_pack("{s:s,s:s}", "event", "pusher_internal:watchlist_events", "data", t);
  free(t);
  if (o) pd_session_send_json(c, o);
  json_decref(o);
}

static void notify_watchers(pd_user *u, const char *id, const char *name) {
  if (!u->nwatchers) return;
  json_t *ids = json_pack("[s]", id);
  /* snapshot: a send may mark a watcher for closing, never frees it here */
  for (size_t i = 0; i < u->nwatchers; i++) send_watch_event(u->watchers[i], name, ids);
  json_decref(ids);
}

/* Watchers of id on this node hear name ("online"/"offline"): used by
 * the Redis adapter when another node is the first / last to hold the user. */
void pd_user_notify_watchers(pd_app *app, const char *id, const char *name) {
  pd_user *u = user_get(app, id, 0);
  if (u) notify_watchers(u, id, name);
}

int pd_user_online_local(pd_app *app, const char *id) {
  pd_user *u = user_get(app, id, 0);
  return u && u->sockets;
}

/* After a successful pusher:signin (c->user_id set).  watchlist may be NULL. */
void pd_user_signed_in(pd_session *c, json_t *watchlist) {
  pd_app *app = c->app;
  if (!c->online) {
    pd_user *u = user_get(app, c->user_id, 1);
    if (!u) return;
    if (u->sockets == u->socks_alloc) {
      size_t na = u->socks_alloc ? u->socks_alloc * 2 : 2;
      pd_session **ns = pd_realloc(u->socks, na * sizeof *ns);
      if (!ns) {
        user_maybe_free(app, c->user_id, u);
        return;
      }
      u->socks = ns;
      u->socks_alloc = na;
    }
    u->socks[u->sockets] = c;
    c->online = 1;
    if (++u->sockets == 1) {
      /* online across the cluster only if no other node has the user */
      if (!PD_AD(app)->user_remote(app, c->user_id, PD_AD_UD(app))) notify_watchers(u, c->user_id, "online");
      PD_AD(app)->user_changed(app, c->user_id, 1, PD_AD_UD(app));
    }
  }
  if (!json_is_array(watchlist) || c->watching) return;
  size_t n = json_array_size(watchlist);
  if (n > 100) {
    pd_session_send_error(c, 4302, "Watchlist limit exceeded: only the first 100 user ids are watched", NULL);
    n = 100;
  }
  c->watching = json_array();
  json_t *online = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(watchlist, i);
    if (!json_is_string(v) || json_string_length(v) == 0 || strlen(json_string_value(v)) != json_string_length(v))
      continue;
    const char *id = json_string_value(v);
    int dup = 0;
    for (size_t j = 0; j < json_array_size(c->watching); j++)
      dup |= strcmp(json_string_value(json_array_get(c->watching, j)), id) == 0;
    if (dup) continue;
    pd_user *u = user_get(app, id, 1);
    if (!u) continue;
    if (u->nwatchers == u->alloc) {
      size_t na = u->alloc ? u->alloc * 2 : 4;
      pd_session **nw = pd_realloc(u->watchers, na * sizeof *nw);
      if (!nw) {
        user_maybe_free(app, id, u);
        continue;
      }
      u->watchers = nw;
      u->alloc = na;
    }
    u->watchers[u->nwatchers++] = c;
    json_array_append(c->watching, v);
    if (u->sockets || PD_AD(app)->user_remote(app, id, PD_AD_UD(app))) json_array_append(online, v);
  }
  if (json_array_size(online)) send_watch_event(c, "online", online);
  json_decref(online);
}

/* On close (idempotent). */
void pd_user_signed_out(pd_session *c) {
  pd_app *app = c->app;
  if (!app) return;
  if (c->watching) {
    for (size_t i = 0; i < json_array_size(c->watching); i++) {
      const char *id = json_string_value(json_array_get(c->watching, i));
      pd_user *u = user_get(app, id, 0);
      if (!u) continue;
      for (size_t j = 0; j < u->nwatchers; j++)
        if (u->watchers[j] == c) {
          u->watchers[j] = u->watchers[--u->nwatchers];
          break;
        }
      user_maybe_free(app, id, u);
    }
    json_decref(c->watching);
    c->watching = NULL;
  }
  if (c->online && c->user_id) {
    c->online = 0;
    pd_user *u = user_get(app, c->user_id, 0);
    if (u) {
      for (size_t j = 0; j < u->sockets; j++)
        if (u->socks[j] == c) {
          u->socks[j] = u->socks[u->sockets - 1];
          break;
        }
      if (--u->sockets == 0) {
        if (!PD_AD(app)->user_remote(app, c->user_id, PD_AD_UD(app))) notify_watchers(u, c->user_id, "offline");
        PD_AD(app)->user_changed(app, c->user_id, 0, PD_AD_UD(app));
      }
      user_maybe_free(app, c->user_id, u);
    }
  }
}

/* The sockets signed in as user id (a snapshot the caller frees), or NULL. */
pd_session **pd_user_sessions(pd_app *app, const char *id, size_t *n) {
  pd_user *u = user_get(app, id, 0);
  *n = 0;
  if (!u || !u->sockets) return NULL;
  pd_session **list = pd_alloc(u->sockets * sizeof *list);
  if (!list) return NULL;
  memcpy(list, u->socks, u->sockets * sizeof *list);
  *n = u->sockets;
  return list;
}

size_t pd_user_terminate_local(pd_app *app, const char *id) {
  size_t n;
  pd_session **list = pd_user_sessions(app, id, &n);
  /* closing signs a session out, which edits the user's list: use the copy */
  for (size_t i = 0; i < n; i++) pd_session_close(list[i], 4009, "You got disconnected by the app");
  pd_free(list);
  return n;
}
