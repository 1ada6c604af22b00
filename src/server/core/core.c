/* pusherd server core: the core object (apps' live state, time, the
 * adapter) and the session lifecycle (open, end).  See pd_core.h. */
#include "core/pd_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ core */
/* A new live app for cfg, appended to core->apps; NULL when out of memory. */
pd_app *pd_core_add_app(pd_core *core, const pd_app_cfg *cfg) {
  pd_app **n = pd_realloc(core->apps, (core->napps + 1) * sizeof *n);
  if (!n) return NULL;
  core->apps = n;
  pd_app *app = pd_zalloc(sizeof *app);
  if (!app) return NULL;
  app->cfg = cfg;
  app->core = core;
  app->idx = core->napps;
  core->apps[core->napps++] = app;
  return app;
}

int pd_core_init(pd_core *core, const pd_config *cfg, const pd_adapter *ad, void *ad_ud) {
  memset(core, 0, sizeof *core);
  core->cfg = cfg;
  core->ad = ad;
  core->ad_ud = ad_ud;
  for (size_t i = 0; i < cfg->napps; i++)
    if (!pd_core_add_app(core, cfg->apps[i])) return -1;
  return 0;
}

void pd_core_free(pd_core *core) {
  for (size_t i = 0; i < core->napps; i++) {
    pd_app_free_channels(core->apps[i]);
    pd_app_free_users(core->apps[i]);
    pd_app_cfg_free(core->apps[i]->owned_cfg);
    pd_free(core->apps[i]);
  }
  pd_free(core->apps);
  pd_free(core->sock_b);
  memset(core, 0, sizeof *core);
}

void pd_core_set_adapter(pd_core *core, const pd_adapter *ad, void *user_data) {
  core->ad = ad;
  core->ad_ud = user_data;
}

void pd_core_set_time(pd_core *core, uint64_t now_ms, uint64_t wall_s) {
  core->now_ms = now_ms;
  core->wall_s = wall_s;
}

void pd_core_set_draining(pd_core *core, int on) { core->draining = on; }

pd_app *pd_core_app_by_key(pd_core *core, const char *key) {
  for (size_t i = 0; i < core->napps; i++)
    if (!core->apps[i]->removed && strcmp(core->apps[i]->cfg->key, key) == 0) return core->apps[i];
  return NULL;
}

pd_app *pd_core_app_by_id(pd_core *core, const char *id) {
  for (size_t i = 0; i < core->napps; i++)
    if (!core->apps[i]->removed && strcmp(core->apps[i]->cfg->id, id) == 0) return core->apps[i];
  return NULL;
}

/* ------------------------------------------------------------------ socket index */
/* FNV-1a of a socket id. */
static size_t sock_hash(const char *id) {
  uint64_t h = 1469598103934665603ull;
  for (; *id; id++) {
    h ^= (unsigned char)*id;
    h *= 1099511628211ull;
  }
  return (size_t)h;
}

/* Doubles the buckets when there are as many sessions (0 or -1). */
static int sock_grow(pd_core *core) {
  size_t nb = core->sock_nb ? core->sock_nb * 2 : 64;
  pd_session **b = pd_zalloc(nb * sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < core->sock_nb; i++)
    for (pd_session *s = core->sock_b[i], *nx; s; s = nx) {
      nx = s->sock_next;
      size_t j = sock_hash(s->socket_id) & (nb - 1);
      s->sock_next = b[j];
      b[j] = s;
    }
  pd_free(core->sock_b);
  core->sock_b = b;
  core->sock_nb = nb;
  return 0;
}

static pd_session *sock_get(pd_core *core, const char *id) {
  if (!core->sock_nb) return NULL;
  for (pd_session *s = core->sock_b[sock_hash(id) & (core->sock_nb - 1)]; s; s = s->sock_next)
    if (strcmp(s->socket_id, id) == 0) return s;
  return NULL;
}

/* Ids are unique (the sequence number is part of them). */
static int sock_put(pd_core *core, pd_session *s) {
  if (core->sock_n + 1 > core->sock_nb && sock_grow(core) != 0) return -1;
  size_t j = sock_hash(s->socket_id) & (core->sock_nb - 1);
  s->sock_next = core->sock_b[j];
  core->sock_b[j] = s;
  core->sock_n++;
  return 0;
}

static void sock_del(pd_core *core, pd_session *s) {
  if (!core->sock_nb) return;
  for (pd_session **pp = &core->sock_b[sock_hash(s->socket_id) & (core->sock_nb - 1)]; *pp;
       pp = &(*pp)->sock_next)
    if (*pp == s) {
      *pp = s->sock_next;
      s->sock_next = NULL;
      core->sock_n--;
      return;
    }
}

pd_session *pd_core_find_session(pd_core *core, pd_app *app, const char *socket_id) {
  pd_session *s = sock_get(core, socket_id);
  return s && s->app == app ? s : NULL;
}

size_t pd_core_sessions(pd_core *core, pd_session **out, size_t max) {
  size_t k = 0;
  for (size_t i = 0; i < core->sock_nb; i++)
    for (pd_session *s = core->sock_b[i]; s; s = s->sock_next) {
      if (k < max) out[k] = s;
      k++;
    }
  return k;
}

void pd_core_tick(pd_core *core) {
  for (size_t a = 0; a < core->napps; a++) {
    pd_app *app = core->apps[a];
    for (size_t i = 0; i < app->channels.nb; i++)
      for (pd_map_ent *e = app->channels.b[i]; e; e = e->next) {
        pd_channel *ch = e->val;
        if (ch->count_pending) pd_channel_send_count(ch);
      }
  }
}

/* ------------------------------------------------------------------ lifecycle */
static json_t *str_data(json_t *d) {
  char *t = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(d);
  json_t *r = json_string(t ? t : "{}");
  free(t);
  return r;
}

void pd_session_init(pd_session *s, pd_core *core, const pd_sink *sink, void *sink_ud) {
  memset(s, 0, sizeof *s);
  s->core = core;
  s->sink = sink;
  s->sink_ud = sink_ud;
  snprintf(s->socket_id, sizeof s->socket_id, "-");
}

/* Value of query parameter `name` in q (not decoded); NULL if absent. */
static const char *query_param(const char *q, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  const char *p = q;
  while (p && *p) {
    const char *amp = strchr(p, '&');
    size_t seg = amp ? (size_t)(amp - p) : strlen(p);
    if (seg >= nl && strncmp(p, name, nl) == 0 && (seg == nl || p[nl] == '=')) {
      if (seg == nl) {
        *vlen = 0;
        return p + nl;
      }
      *vlen = seg - nl - 1;
      return p + nl + 1;
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

/* The app for "/app/KEY?..." or a close code (message in *why). */
static int open_check(pd_session *s, const char *url, pd_app **out, const char **why) {
  const char *q = strchr(url, '?');
  size_t plen = q ? (size_t)(q - url) : strlen(url);
  const char *query = q ? q + 1 : "";
  if (s->core->draining) return *why = "Server is shutting down; reconnect", 4200;
  if (plen <= 5 || strncmp(url, "/app/", 5) != 0 || memchr(url + 5, '/', plen - 5))
    return *why = "Path not found", 4005;
  char key[256];
  size_t kl = plen - 5;
  if (kl >= sizeof key) kl = sizeof key - 1;
  memcpy(key, url + 5, kl);
  key[kl] = 0;
  pd_app *app = pd_core_app_by_key(s->core, key);
  if (!app) return *why = "Application does not exist", 4001;
  *out = app;
  if (!app->cfg->enabled) return *why = "Application is disabled", 4003;
  /* docs/protocol.md: 4000, the client reconnects with TLS */
  if (app->cfg->tls_only && !s->tls) return *why = "Application only accepts TLS connections; reconnect with wss://", 4000;
  size_t vl = 0;
  const char *pv = query_param(query, "protocol", &vl);
  if (!pv || vl == 0) return *why = "No protocol version supplied", 4008;
  int numeric = vl <= 9;
  for (size_t i = 0; i < vl; i++)
    if (pv[i] < '0' || pv[i] > '9') numeric = 0;
  if (!numeric) return *why = "Invalid version string format", 4006;
  if (strtol(pv, NULL, 10) != 7)
    return *why = "Unsupported protocol version (this server speaks protocol 7)", 4007;
  if (app->cfg->max_connections >= 0 && app->connections >= app->cfg->max_connections)
    return *why = "Application is over its connection quota", 4004;
  return 0;
}

int pd_session_open(pd_session *s, const char *path, uint64_t rnd_a, uint64_t rnd_b) {
  pd_core *core = s->core;
  pd_app *app = NULL;
  const char *why = NULL;
  int code = open_check(s, path ? path : "", &app, &why);
  s->app = app;
  if (code) {
    pd_session_close(s, code, why);
    return code;
  }
  app->connections++;
  app->stats.connections_total++;
  s->counted = 1;
  /* in a cluster the first part is the node number: unique across nodes */
  uint64_t first = core->ad->node_num(core->ad_ud);
  if (!first) first = rnd_a % 9000000000ull + 1000000000ull;
  /* at most 10 digits (both sources give fewer), so that "first.second"
   * (second: at most 20) fits PD_SOCKET_ID_MAX */
  first %= 10000000000ull;
  snprintf(s->socket_id, sizeof s->socket_id, "%llu.%llu", (unsigned long long)first,
           (unsigned long long)(++core->seq * 1000003ull + rnd_b % 1000000ull));
  if (sock_put(core, s) != 0) {
    pd_session_close(s, 4200, "Server out of memory; reconnect");
    return 4200;
  }
  pd_log(PD_LOG_DEBUG, "msg=\"connection established\" app=%s socket_id=%s", app->cfg->id, s->socket_id);
  json_t *d = json_pack("{s:s,s:i}", "socket_id", s->socket_id, "activity_timeout",
                        app->cfg->activity_timeout);
  json_t *o = json_pack("{s:s,s:o}", "event", "pusher:connection_established", "data", str_data(d));
  pd_session_send_json(s, o);
  json_decref(o);
  return 0;
}

void pd_session_end(pd_session *s) {
  if (s->ended) return;
  pd_session_leave_all(s);
  s->ended = 1;
  if (s->counted) {
    s->app->connections--;
    s->counted = 0;
    sock_del(s->core, s);
  }
  pd_free(s->subs);
  s->subs = NULL;
  s->subs_alloc = 0;
  pd_free(s->user_id);
  s->user_id = NULL;
  json_decref(s->user_info);
  s->user_info = NULL;
}
