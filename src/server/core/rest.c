/* pusherd server core: the HTTP API (/apps/<id>/...) and health endpoints,
 * as request -> response (the net layer parses and writes HTTP). */
#include "core/pd_core.h"
#include "core/pd_ratelimit.h"
#include "core/names.h"
#include "core/sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <stdarg.h>

/* One request being answered. */
typedef struct rq {
  pd_core *core;
  pd_http_response *out;
  int route;                  /* enum pd_route, for the counters */
} rq;

typedef struct kv {
  char *k, *v;
} kv;

typedef struct query {
  kv *p;
  size_t n;
} query;

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static char *pct_decode(const char *s, size_t n) {
  char *o = pd_alloc(n + 1);
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 && hexval((unsigned char)s[i + 2]) >= 0) {
      o[j++] = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
      i += 2;
    } else {
      o[j++] = s[i];
    }
  }
  o[j] = 0;
  return o;
}

static void query_free(query *q) {
  for (size_t i = 0; i < q->n; i++) pd_free(q->p[i].k), pd_free(q->p[i].v);
  pd_free(q->p);
  q->p = NULL;
  q->n = 0;
}

static int query_parse(query *q, const char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && s[j] != '&') j++;
    if (j > i) {
      const char *eq = memchr(s + i, '=', j - i);
      size_t kl = eq ? (size_t)(eq - (s + i)) : j - i;
      kv *np = pd_realloc(q->p, (q->n + 1) * sizeof *np);
      if (!np) return -1;
      q->p = np;
      q->p[q->n].k = pct_decode(s + i, kl);
      q->p[q->n].v = eq ? pct_decode(eq + 1, (size_t)(s + j - eq - 1)) : pd_strdup("");
      q->n++;
      if (!q->p[q->n - 1].k || !q->p[q->n - 1].v) return -1;
    }
    i = j + 1;
  }
  return 0;
}

static const char *query_get(const query *q, const char *k) {
  for (size_t i = 0; i < q->n; i++)
    if (strcmp(q->p[i].k, k) == 0) return q->p[i].v;
  return NULL;
}

static void reply(rq *c, int status, const char *body, size_t len) {
  pd_http_response *out = c->out;
  pd_free(out->body);
  out->status = status;
  out->body = pd_strndup(body, len);
  out->len = out->body ? len : 0;
  if (!out->body) out->status = 500;
}

static void reply_json(rq *c, int status, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) {
    reply(c, 500, "{\"error\":\"out of memory\"}", 25);
    return;
  }
  reply(c, status, s, strlen(s));
  free(s);
}

static void reply_error(rq *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error(rq *c, int status, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pd_log(PD_LOG_INFO, "msg=\"http error\" status=%d error=\"%s\"", status, msg);
  reply_json(c, status, json_pack("{s:s}", "error", msg));
}

/* 0 when the request is correctly signed (lib/core/sign.c: auth_key,
 * auth_timestamp within 600 s, auth_version 1.0, body_md5, HMAC over
 * method, path and the sorted query); else replies 401 and returns -1. */
static int check_signature(rq *c, pd_app *app, const char *method, const char *path, query *q,
                           const char *body, size_t body_len) {
  pusher_kv *kvs = pd_alloc((q->n ? q->n : 1) * sizeof *kvs);
  if (!kvs) {
    reply_error(c, 500, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < q->n; i++) kvs[i].name = q->p[i].k, kvs[i].value = q->p[i].v;
  char why[512];
  int r = pusher__rest_verify(NULL, method, path, kvs, q->n, body, body_len, app->cfg->key, app->cfg->secret,
                              (int64_t)c->core->wall_s, 600, why, sizeof why);
  pd_free(kvs);
  if (r == 0) return 0;
  if (r == PUSHER_ERR_NOMEM) reply_error(c, 500, "out of memory");
  else reply_error(c, 401, "%s", why[0] ? why : "Invalid signature");
  return -1;
}

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int is_presence(const char *name) { return pusher__chan_kind_of(name) == PUSHER__CHAN_PRESENCE; }

/* The app's rate limit (core/pd_ratelimit.h) for n units of kind: 0, or
 * -1 after replying 429 with Retry-After. */
static int rate_limited(rq *c, pd_app *app, int kind, long n) {
  long limit = pd_ratelimit_limit(app, kind);
  if (limit < 0) return 0;
  int wait = pd_ratelimit_take(app, kind, n);
  c->out->rl_limit = limit;
  pd_ratelimit_window(app, kind, &c->out->rl_remaining, &c->out->rl_reset);
  if (!wait) return 0;
  if (kind == PD_RL_EVENTS)
    reply_error(c, 429, "Rate limit exceeded: this app may publish %ld events per second (this request: %ld)",
                limit, n);
  else
    reply_error(c, 429, "Rate limit exceeded: this app may make %ld read requests per second", limit);
  c->out->retry_after = wait;
  return -1;
}

/* Parse the "info" attribute list; sets flags; -1 on an unknown attribute. */
static int parse_info(const char *info, int *user_count, int *sub_count, int *cache) {
  *user_count = *sub_count = 0;
  if (cache) *cache = 0;
  if (!info || !*info) return 0;
  char *dup = pd_strdup(info), *save = NULL;
  int rc = 0;
  for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "user_count") == 0) *user_count = 1;
    else if (strcmp(t, "subscription_count") == 0) *sub_count = 1;
    else if (cache && strcmp(t, "cache") == 0) *cache = 1;
    else rc = -1;
  }
  pd_free(dup);
  return rc;
}

static json_t *channel_info(pd_app *app, const char *name, int uc, int sc) {
  /* local + other nodes (the adapter); the local values on a single node */
  json_t *o = json_object();
  if (uc && is_presence(name))
    json_object_set_new(o, "user_count", json_integer((json_int_t)pd_channel_total_members(app, name)));
  if (sc) json_object_set_new(o, "subscription_count", json_integer((json_int_t)pd_channel_total_subs(app, name)));
  return o;
}

typedef struct ev {
  const char *name, *data;
  char *data_owned;
  const char **channels;
  size_t nch;
  const char *socket_id;
  const char *info;
} ev;

/* name and data of an event object: 0, or -1 after replying. */
static int parse_name_data(rq *c, pd_app *app, json_t *o, ev *e) {
  json_t *jn = json_object_get(o, "name");
  if (!json_is_string(jn) || json_string_length(jn) == 0) {
    reply_error(c, 400, "Missing or invalid \"name\" (a non-empty string)");
    return -1;
  }
  /* Pusher reserves these prefixes for its own events (docs/protocol.md). */
  if (has_prefix(json_string_value(jn), "pusher:") || has_prefix(json_string_value(jn), "pusher_internal:")) {
    reply_error(c, 400, "Invalid event name: names starting with 'pusher:' or 'pusher_internal:' are reserved by Pusher");
    return -1;
  }
  char why[200];
  if (!pusher__check_event_name(json_string_value(jn), json_string_length(jn), app->cfg->max_event_name, why,
                                sizeof why)) {
    reply_error(c, 400, "%s", why);
    return -1;
  }
  e->name = json_string_value(jn);
  json_t *jd = json_object_get(o, "data");
  if (!jd) {
    reply_error(c, 400, "Missing \"data\"");
    return -1;
  }
  size_t dl;
  if (json_is_string(jd)) {
    e->data = json_string_value(jd);
    dl = json_string_length(jd);
    if (strlen(e->data) != dl) {
      reply_error(c, 400, "\"data\" contains a NUL character");
      return -1;
    }
  } else {
    char *t = json_dumps(jd, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!t) {
      reply_error(c, 400, "Invalid \"data\"");
      return -1;
    }
    e->data_owned = pd_strdup(t);
    free(t);
    e->data = e->data_owned;
    dl = e->data ? strlen(e->data) : 0;
  }
  if (dl > app->cfg->max_event_data) {
    reply_error(c, 413, "Event data too large: %zu bytes (max %zu)", dl, app->cfg->max_event_data);
    return -1;
  }
  return 0;
}

/* "channel" or "channels" (batch: "channel" only): 0, or -1 after replying. */
static int parse_channels(rq *c, pd_app *app, json_t *o, ev *e, int batch) {
  json_t *chs = json_object_get(o, "channels"), *ch1 = json_object_get(o, "channel");
  size_t n = 0;
  if (batch && chs) return reply_error(c, 400, "A batch event takes exactly one \"channel\""), -1;
  if (chs && ch1) return reply_error(c, 400, "Give either \"channel\" or \"channels\", not both"), -1;
  if (chs) {
    if (!json_is_array(chs) || json_array_size(chs) == 0)
      return reply_error(c, 400, "\"channels\" must be a non-empty array of channel names"), -1;
    n = json_array_size(chs);
    if (n > app->cfg->max_channels_per_event)
      return reply_error(c, 400, "Too many channels: %zu (max %zu)", n, app->cfg->max_channels_per_event), -1;
  } else if (ch1) {
    n = 1;
  } else {
    return reply_error(c, 400, "Missing \"channel\" or \"channels\""), -1;
  }
  e->channels = pd_zalloc(n * sizeof *e->channels);
  if (!e->channels) return -1;
  e->nch = n;
  char why[200];
  for (size_t i = 0; i < n; i++) {
    json_t *jc = chs ? json_array_get(chs, i) : ch1;
    if (!json_is_string(jc) ||
        !pd_channel_name_valid(app, json_string_value(jc), json_string_length(jc), why, sizeof why))
      return reply_error(c, 400, "Channel at position %zu: %s", i, json_is_string(jc) ? why : "not a string"), -1;
    e->channels[i] = json_string_value(jc);
    if (n > 1 && pusher__chan_kind_of(e->channels[i]) == PUSHER__CHAN_ENCRYPTED)
      return reply_error(c, 400, "An event for a private-encrypted- channel must target exactly one channel"), -1;
  }
  return 0;
}

/* socket_id and info: 0, or -1 after replying. */
static int parse_extras(rq *c, json_t *o, ev *e) {
  char why[200];
  json_t *sid = json_object_get(o, "socket_id");
  if (sid && !json_is_null(sid)) {
    if (!json_is_string(sid) || !pusher__check_socket_id(json_string_value(sid), json_string_length(sid),
                                                         PUSHER__SOCKET_ID_MAX_DEFAULT, why, sizeof why))
      return reply_error(c, 400, "%s", json_is_string(sid) ? why : "Invalid socket_id: not a string"), -1;
    e->socket_id = json_string_value(sid);
  }
  json_t *info = json_object_get(o, "info");
  if (info && !json_is_null(info)) {
    int uc, sc;
    if (!json_is_string(info) || parse_info(json_string_value(info), &uc, &sc, NULL) != 0)
      return reply_error(c, 400, "Invalid \"info\": allowed attributes are user_count and subscription_count"), -1;
    e->info = json_string_value(info);
  }
  return 0;
}

/* Validate one event object (batch: single channel).  Returns 0 or replies. */
static int parse_event(rq *c, pd_app *app, json_t *o, ev *e, int batch) {
  memset(e, 0, sizeof *e);
  if (!json_is_object(o)) {
    reply_error(c, 400, "The event must be a JSON object");
    return -1;
  }
  if (parse_name_data(c, app, o, e) == 0 && parse_channels(c, app, o, e, batch) == 0 && parse_extras(c, o, e) == 0)
    return 0;
  pd_free(e->data_owned);
  pd_free(e->channels);
  memset(e, 0, sizeof *e);
  return -1;
}

static void ev_free(ev *e) {
  pd_free(e->data_owned);
  pd_free(e->channels);
}

static void publish_event(rq *c, pd_app *app, ev *e) {
  pd_session *except = e->socket_id ? pd_core_find_session(c->core, app, e->socket_id) : NULL;
  for (size_t i = 0; i < e->nch; i++) {
    pd_publish(app, e->channels[i], e->name, e->data, except);
    PD_AD(app)->event(app, e->channels[i], e->name, e->data, e->socket_id, PD_AD_UD(app));
  }
}

static json_t *event_info(pd_app *app, ev *e) {
  int uc, sc;
  parse_info(e->info, &uc, &sc, NULL);
  json_t *chs = json_object();
  for (size_t i = 0; i < e->nch; i++) json_object_set_new(chs, e->channels[i], channel_info(app, e->channels[i], uc, sc));
  return chs;
}

static void do_events(rq *c, pd_app *app, const char *body, size_t len) {
  json_t *o = json_loadb(body, len, 0, NULL);
  if (!o) {
    reply_error(c, 400, "The body must be a JSON object");
    return;
  }
  ev e;
  if (parse_event(c, app, o, &e, 0) == 0) {
    if (rate_limited(c, app, PD_RL_EVENTS, 1) != 0) {
      ev_free(&e);
      json_decref(o);
      return;
    }
    app->stats.events_published++;
    publish_event(c, app, &e);
    json_t *r = json_object();
    if (e.info) json_object_set_new(r, "channels", event_info(app, &e));
    reply_json(c, 200, r);
    ev_free(&e);
  }
  json_decref(o);
}

static void do_batch(rq *c, pd_app *app, const char *body, size_t len) {
  json_t *o = json_loadb(body, len, 0, NULL);
  json_t *b = json_is_object(o) ? json_object_get(o, "batch") : NULL;
  if (!json_is_array(b)) {
    reply_error(c, 400, "The body must be {\"batch\":[...]}");
    json_decref(o);
    return;
  }
  size_t n = json_array_size(b);
  if (n > app->cfg->max_batch) {
    reply_error(c, 400, "Batch too large: %zu events (max %zu)", n, app->cfg->max_batch);
    json_decref(o);
    return;
  }
  ev *evs = pd_zalloc((n ? n : 1) * sizeof *evs);
  size_t ok = 0;
  int any_info = 0;
  for (; evs && ok < n; ok++) {
    if (parse_event(c, app, json_array_get(b, ok), &evs[ok], 1) != 0) break;
    any_info |= evs[ok].info != NULL;
  }
  if (evs && ok == n && rate_limited(c, app, PD_RL_EVENTS, (long)n) == 0) {
    app->stats.events_published += n;
    for (size_t i = 0; i < n; i++) publish_event(c, app, &evs[i]);
    json_t *r = json_object();
    if (any_info) {
      json_t *arr = json_array();
      for (size_t i = 0; i < n; i++) {
        json_t *chs = evs[i].info ? event_info(app, &evs[i]) : NULL;
        json_t *one = chs ? json_incref(json_object_get(chs, evs[i].channels[0])) : json_object();
        json_decref(chs);
        json_array_append_new(arr, one);
      }
      json_object_set_new(r, "batch", arr);
    }
    reply_json(c, 200, r);
  }
  for (size_t i = 0; evs && i < ok; i++) ev_free(&evs[i]);
  pd_free(evs);
  json_decref(o);
}

static void do_channels(rq *c, pd_app *app, query *q) {
  const char *prefix = query_get(q, "filter_by_prefix");
  const char *info = query_get(q, "info");
  int uc, sc;
  if (parse_info(info, &uc, &sc, NULL) != 0) {
    reply_error(c, 400, "Invalid \"info\": allowed attributes are user_count and subscription_count");
    return;
  }
  if (uc && (!prefix || !is_presence(prefix))) {
    reply_error(c, 400, "info=user_count is only allowed with filter_by_prefix=presence-");
    return;
  }
  json_t *chs = json_object();
  for (size_t i = 0; i < app->channels.nb; i++)
    for (pd_map_ent *e = app->channels.b[i]; e; e = e->next) {
      pd_channel *ch = e->val;
      if (!ch->nsubs || pusher__chan_user_id(ch->name)) continue;
      if (prefix && !has_prefix(ch->name, prefix)) continue;
      json_object_set_new(chs, ch->name, channel_info(app, ch->name, uc, sc));
    }
  if (PD_AD(app)->clustered) {
    /* channels occupied only on other nodes */
    json_t *remote = json_object();
    PD_AD(app)->remote_channels(app, prefix, remote, PD_AD_UD(app));
    const char *k;
    json_t *v;
    json_object_foreach(remote, k, v) if (!json_object_get(chs, k)) json_object_set_new(chs, k, channel_info(app, k, uc, sc));
    json_decref(remote);
  }
  reply_json(c, 200, json_pack("{s:o}", "channels", chs));
}

static void do_channel(rq *c, pd_app *app, const char *name, query *q) {
  int uc, sc, cache;
  if (parse_info(query_get(q, "info"), &uc, &sc, &cache) != 0) {
    reply_error(c, 400, "Invalid \"info\": allowed attributes are user_count, subscription_count and cache");
    return;
  }
  if (uc && !is_presence(name)) {
    reply_error(c, 400, "info=user_count is only available for presence- channels");
    return;
  }
  pd_channel *ch = pd_channel_get(app, name, 0);
  if (cache && !pusher__chan_is_cache(name)) {
    reply_error(c, 400, "info=cache is only available for cache channels");
    return;
  }
  json_t *o = channel_info(app, name, uc, sc);
  json_object_set_new(o, "occupied", json_boolean(pd_channel_total_subs(app, name) > 0));
  if (cache && ch && ch->cached_json) {
    long long ttl = (long long)app->cfg->cache_ttl - (long long)(app->core->wall_s - ch->cached_at_s);
    if (ttl > 0) json_object_set_new(o, "cache", json_pack("{s:s,s:I}", "data", ch->cached_json, "ttl", (json_int_t)ttl));
  }
  reply_json(c, 200, o);
}

static void do_users(rq *c, pd_app *app, const char *name) {
  if (!is_presence(name)) {
    reply_error(c, 400, "Users are only available for presence- channels");
    return;
  }
  pd_channel *ch = pd_channel_get(app, name, 0);
  json_t *arr = json_array();
  if (ch)
    for (size_t i = 0; i < ch->members.nb; i++)
      for (pd_map_ent *e = ch->members.b[i]; e; e = e->next) json_array_append_new(arr, json_pack("{s:s}", "id", e->key));
  if (PD_AD(app)->clustered) {
    json_t *hash = json_object(), *ids = json_array();
    if (ch)
      for (size_t i = 0; i < ch->members.nb; i++)
        for (pd_map_ent *e = ch->members.b[i]; e; e = e->next) json_object_set_new(hash, e->key, json_null());
    PD_AD(app)->add_remote_members(app, name, hash, ids, PD_AD_UD(app));
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) json_array_append_new(arr, json_pack("{s:s}", "id", json_string_value(v)));
    json_decref(hash);
    json_decref(ids);
  }
  reply_json(c, 200, json_pack("{s:o}", "users", arr));
}

static void do_terminate(rq *c, pd_app *app, const char *user) {
  size_t n = pd_user_terminate_local(app, user);
  PD_AD(app)->terminate(app, user, PD_AD_UD(app));
  pd_log(PD_LOG_INFO, "msg=\"terminate_connections\" app=%s user=%s connections=%zu", app->cfg->id, user, n);
  reply_json(c, 200, json_object());
}

void pd_http_error(pd_http_response *out, int status, const char *msg) {
  rq c = {NULL, out, PD_ROUTE_OTHER};
  out->body = NULL;
  out->retry_after = 0;
  out->rl_limit = out->rl_remaining = 0;
  out->rl_reset = 0;
  reply_json(&c, status, json_pack("{s:s}", "error", msg));
}

const char *pd_http_status_text(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "OK";
  }
}

static void route(rq *c, const char *method, const char *url, size_t url_len, const char *body,
                  size_t body_len);

void pd_rest_handle(pd_core *core, const char *method, const char *url, size_t url_len, const char *body,
                    size_t body_len, pd_http_response *out) {
  rq c = {core, out, PD_ROUTE_OTHER};
  out->status = 500;
  out->body = NULL;
  out->len = 0;
  out->retry_after = 0;
  out->rl_limit = out->rl_remaining = 0;
  out->rl_reset = 0;
  route(&c, method, url, url_len, body, body_len);
  if (!out->body) reply(&c, 500, "{\"error\":\"out of memory\"}", 25);
  pd_stats_http(core, c.route, out->status);
}

static void route(rq *c, const char *method, const char *url, size_t url_len, const char *body,
                  size_t body_len) {
  const char *qm = memchr(url, '?', url_len);
  size_t plen = qm ? (size_t)(qm - url) : url_len;
  char *path = pd_strndup(url, plen);
  query q = {0};
  if (!path || query_parse(&q, qm ? qm + 1 : "", qm ? url_len - plen - 1 : 0) != 0) {
    reply_error(c, 500, "out of memory");
    goto out;
  }
  int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  int is_post = strcmp(method, "POST") == 0;
  if (strcmp(method, "OPTIONS") == 0) {
    reply(c, 200, "{}", 2);
    goto out;
  }
  if (strcmp(path, "/") == 0 || strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0) {
    c->route = PD_ROUTE_HEALTH;
    if (!is_get) reply_error(c, 405, "Method not allowed");
    else if (c->core->draining && strcmp(path, "/ready") == 0) reply_error(c, 503, "Shutting down");
    else reply(c, 200, "{\"ok\":true}", 11);
    goto out;
  }
  if (strncmp(path, "/apps/", 6) != 0) {
    reply_error(c, 404, "Not found");
    goto out;
  }
  /* split /apps/<id>/<rest...> into segments (decoded) */
  char *segs[8];
  size_t nseg = 0;
  const char *p = path + 6;
  while (nseg < 8) {
    const char *sl = strchr(p, '/');
    size_t l = sl ? (size_t)(sl - p) : strlen(p);
    segs[nseg++] = pct_decode(p, l);
    if (!sl) break;
    p = sl + 1;
  }
  pd_app *app = nseg ? pd_core_app_by_id(c->core, segs[0]) : NULL;
  int reads = 0;
  if (nseg == 2 && strcmp(segs[1], "events") == 0) c->route = PD_ROUTE_EVENTS;
  else if (nseg == 2 && strcmp(segs[1], "batch_events") == 0) c->route = PD_ROUTE_BATCH;
  else if (nseg == 2 && strcmp(segs[1], "channels") == 0) c->route = PD_ROUTE_CHANNELS, reads = 1;
  else if (nseg == 3 && strcmp(segs[1], "channels") == 0) c->route = PD_ROUTE_CHANNEL, reads = 1;
  else if (nseg == 4 && strcmp(segs[1], "channels") == 0 && strcmp(segs[3], "users") == 0)
    c->route = PD_ROUTE_USERS, reads = 1;
  else if (nseg == 4 && strcmp(segs[1], "users") == 0 && strcmp(segs[3], "terminate_connections") == 0)
    c->route = PD_ROUTE_TERMINATE;
  if (!app) {
    reply_error(c, 404, "Unknown app");
  } else if (check_signature(c, app, method, path, &q, body, body_len) != 0) {
    /* replied */
  } else if (!app->cfg->enabled) {
    reply_error(c, 403, "Application is disabled");
  } else if (reads && is_get && rate_limited(c, app, PD_RL_READS, 1) != 0) {
    /* replied 429 */
  } else if (nseg == 2 && strcmp(segs[1], "events") == 0) {
    if (!is_post) reply_error(c, 405, "Use POST");
    else do_events(c, app, body, body_len);
  } else if (nseg == 2 && strcmp(segs[1], "batch_events") == 0) {
    if (!is_post) reply_error(c, 405, "Use POST");
    else do_batch(c, app, body, body_len);
  } else if (nseg == 2 && strcmp(segs[1], "channels") == 0) {
    if (!is_get) reply_error(c, 405, "Use GET");
    else do_channels(c, app, &q);
  } else if (nseg == 3 && strcmp(segs[1], "channels") == 0) {
    if (!is_get) reply_error(c, 405, "Use GET");
    else do_channel(c, app, segs[2], &q);
  } else if (nseg == 4 && strcmp(segs[1], "channels") == 0 && strcmp(segs[3], "users") == 0) {
    if (!is_get) reply_error(c, 405, "Use GET");
    else do_users(c, app, segs[2]);
  } else if (nseg == 4 && strcmp(segs[1], "users") == 0 && strcmp(segs[3], "terminate_connections") == 0) {
    if (!is_post) reply_error(c, 405, "Use POST");
    else do_terminate(c, app, segs[2]);
  } else {
    reply_error(c, 404, "Not found");
  }
  for (size_t i = 0; i < nseg; i++) pd_free(segs[i]);
out:
  query_free(&q);
  pd_free(path);
}
