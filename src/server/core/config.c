/* pusherd server core: apps and their limits; the --config FILE loader. */
#include "core/pd_config.h"
#include "core/pd_util.h"
#include "core/pd_webhooks.h"

#include <jansson.h>

#include <stdio.h>
#include <string.h>

void pd_config_init(pd_config *c) {
  memset(c, 0, sizeof *c);
  c->host = pd_strdup("127.0.0.1");
  c->port = 6001;
  c->outq_cap = PD_OUTQ_CAP_DEFAULT;
  c->shutdown_grace_ms = 3000;
  c->header_timeout_ms = PD_HEADER_TIMEOUT_MS_DEFAULT;
  c->pong_timeout_ms = PD_PONG_TIMEOUT_S * 1000;
  c->webhook_batch_ms = PD_WH_BATCH_MS_DEFAULT;
  c->webhook_retry_s = PD_WH_RETRY_S_DEFAULT;
}

pd_app_cfg *pd_app_cfg_new(const char *id, const char *key, const char *secret) {
  pd_app_cfg *a = pd_zalloc(sizeof *a);
  if (!a) return NULL;
  a->id = pd_strdup(id);
  a->key = pd_strdup(key);
  a->secret = pd_strdup(secret);
  a->enabled = 1;
  a->client_events = 1;
  a->user_auth = 1;
  a->subscription_count = 1;
  a->max_connections = -1;
  a->activity_timeout = 120;
  a->max_event_data = 10 * 1024;
  a->max_channels_per_event = 100;
  a->max_batch = 10;
  a->max_channel_name = 200;
  a->max_event_name = 200;
  a->max_presence_members = 100;
  a->max_user_info = 1024;
  a->max_user_id = 128;
  a->client_event_rate = 10;
  a->cache_ttl = 1800;
  return a;
}

void pd_app_cfg_free(pd_app_cfg *a) {
  if (!a) return;
  pd_free(a->id);
  pd_free(a->key);
  pd_free(a->secret);
  pd_webhooks_cfg_free(a);
  pd_free(a);
}

void pd_config_free(pd_config *c) {
  for (size_t i = 0; i < c->napps; i++) pd_app_cfg_free(c->apps[i]);
  pd_free(c->apps);
  pd_free(c->host);
  pd_free(c->redis_url);
  pd_free(c->tls_cert);
  pd_free(c->tls_key);
  memset(c, 0, sizeof *c);
}

int pd_config_add_app(pd_config *c, pd_app_cfg *a) {
  pd_app_cfg **n = pd_realloc(c->apps, (c->napps + 1) * sizeof *n);
  if (!n) return -1;
  c->apps = n;
  c->apps[c->napps++] = a;
  return 0;
}

pd_app_cfg *pd_config_app_by_key(const pd_config *c, const char *key) {
  for (size_t i = 0; i < c->napps; i++)
    if (strcmp(c->apps[i]->key, key) == 0) return c->apps[i];
  return NULL;
}

pd_app_cfg *pd_config_app_by_id(const pd_config *c, const char *id) {
  for (size_t i = 0; i < c->napps; i++)
    if (strcmp(c->apps[i]->id, id) == 0) return c->apps[i];
  return NULL;
}

/* ------------------------------------------------------------------ file */
/* jansson keeps no positions for values, so semantic errors name the JSON
 * path (apps[1].key); syntax errors carry line and column. */

static int want_str(json_t *o, const char *k, char **dst, int required, const char *where,
                    char *err, size_t errlen) {
  json_t *v = json_object_get(o, k);
  if (!v) {
    if (required) {
      snprintf(err, errlen, "%s.%s: missing (a non-empty string is required)", where, k);
      return -1;
    }
    return 0;
  }
  if (!json_is_string(v) || json_string_length(v) == 0) {
    snprintf(err, errlen, "%s.%s: must be a non-empty string", where, k);
    return -1;
  }
  pd_free(*dst);
  *dst = pd_strdup(json_string_value(v));
  return 0;
}

static int want_bool(json_t *o, const char *k, int *dst, const char *where, char *err, size_t errlen) {
  json_t *v = json_object_get(o, k);
  if (!v) return 0;
  if (!json_is_boolean(v)) {
    snprintf(err, errlen, "%s.%s: must be true or false", where, k);
    return -1;
  }
  *dst = json_is_true(v);
  return 0;
}

static int want_int(json_t *o, const char *k, long long *dst, long long lo, long long hi,
                    const char *where, char *err, size_t errlen) {
  json_t *v = json_object_get(o, k);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    snprintf(err, errlen, "%s.%s: must be an integer in [%lld, %lld]", where, k, lo, hi);
    return -1;
  }
  *dst = json_integer_value(v);
  return 1;
}

static const char *const app_keys[] = {
    "id", "key", "secret", "enabled", "client_events", "user_authentication",
    "subscription_count", "max_connections", "activity_timeout", "max_event_data_bytes",
    "max_channels_per_event", "max_batch_size", "max_channel_name_length",
    "max_event_name_length", "max_presence_members", "max_user_info_bytes",
    "max_user_id_length", "client_event_rate", "cache_ttl", "webhooks", "tls_only", NULL};

static int load_app(pd_config *c, json_t *o, size_t idx, char *err, size_t errlen) {
  char where[64];
  snprintf(where, sizeof where, "apps[%zu]", idx);
  if (!json_is_object(o)) {
    snprintf(err, errlen, "%s: must be an object", where);
    return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    int known = 0;
    for (int i = 0; app_keys[i]; i++) known |= strcmp(app_keys[i], k) == 0;
    if (!known) {
      snprintf(err, errlen, "%s: unknown setting \"%s\"", where, k);
      return -1;
    }
  }
  char *id = NULL, *key = NULL, *secret = NULL;
  if (want_str(o, "id", &id, 1, where, err, errlen) || want_str(o, "key", &key, 1, where, err, errlen) ||
      want_str(o, "secret", &secret, 1, where, err, errlen)) {
    pd_free(id), pd_free(key), pd_free(secret);
    return -1;
  }
  if (pd_config_app_by_id(c, id) || pd_config_app_by_key(c, key)) {
    snprintf(err, errlen, "%s: app id \"%s\" or key \"%s\" is already used by another app", where, id, key);
    pd_free(id), pd_free(key), pd_free(secret);
    return -1;
  }
  pd_app_cfg *a = pd_app_cfg_new(id, key, secret);
  pd_free(id), pd_free(key), pd_free(secret);
  if (!a) return -1;
  a->client_events = 0; /* Pusher's default: off unless enabled */
  long long n;
  int r = 0;
  r |= want_bool(o, "enabled", &a->enabled, where, err, errlen);
  r |= r ? 0 : want_bool(o, "client_events", &a->client_events, where, err, errlen);
  r |= r ? 0 : want_bool(o, "user_authentication", &a->user_auth, where, err, errlen);
  r |= r ? 0 : want_bool(o, "subscription_count", &a->subscription_count, where, err, errlen);
  r |= r ? 0 : want_bool(o, "tls_only", &a->tls_only, where, err, errlen);
#define INT_SETTING(name, field, lo, hi)                                      \
  if (!r) {                                                                   \
    int q = want_int(o, name, &n, lo, hi, where, err, errlen);               \
    if (q < 0) r = -1;                                                        \
    else if (q > 0) a->field = n;                                             \
  }
  INT_SETTING("max_connections", max_connections, -1, 100000000)
  INT_SETTING("activity_timeout", activity_timeout, 1, 3600)
  INT_SETTING("max_event_data_bytes", max_event_data, 1, 1048576)
  INT_SETTING("max_channels_per_event", max_channels_per_event, 1, 10000)
  INT_SETTING("max_batch_size", max_batch, 1, 10000)
  INT_SETTING("max_channel_name_length", max_channel_name, 1, 1000)
  INT_SETTING("max_event_name_length", max_event_name, 1, 1000)
  INT_SETTING("max_presence_members", max_presence_members, 1, 1000000)
  INT_SETTING("max_user_info_bytes", max_user_info, 1, 1048576)
  INT_SETTING("max_user_id_length", max_user_id, 1, 1000)
  INT_SETTING("client_event_rate", client_event_rate, 1, 1000000)
  INT_SETTING("cache_ttl", cache_ttl, 1, 86400)
#undef INT_SETTING
  if (!r && json_object_get(o, "webhooks"))
    r = pd_webhooks_cfg_parse(a, json_object_get(o, "webhooks"), where, err, errlen);
  if (r || pd_config_add_app(c, a) != 0) {
    pd_app_cfg_free(a);
    return -1;
  }
  return 0;
}

int pd_config_load_file(pd_config *c, const char *path, char *err, size_t errlen) {
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  char what[512] = "";
  if (!root) {
    snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return -1;
  }
  int rc = -1;
  if (!json_is_object(root)) {
    snprintf(what, sizeof what, "the top level must be an object");
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "host") && strcmp(k, "port") && strcmp(k, "apps") && strcmp(k, "log_level") &&
        strcmp(k, "max_output_queue_bytes") && strcmp(k, "shutdown_grace_ms") && strcmp(k, "redis_url") &&
        strcmp(k, "header_timeout_ms") && strcmp(k, "webhook_batch_ms") && strcmp(k, "webhook_retry_seconds") &&
        strcmp(k, "tls_cert") && strcmp(k, "tls_key") && strcmp(k, "tls_port")) {
      snprintf(what, sizeof what, "unknown top-level setting \"%s\"", k);
      goto out;
    }
  }
  if (want_str(root, "host", &c->host, 0, "$", what, sizeof what)) goto out;
  if (want_str(root, "redis_url", &c->redis_url, 0, "$", what, sizeof what)) goto out;
  if (want_str(root, "tls_cert", &c->tls_cert, 0, "$", what, sizeof what)) goto out;
  if (want_str(root, "tls_key", &c->tls_key, 0, "$", what, sizeof what)) goto out;
  long long n;
  int q = want_int(root, "port", &n, 0, 65535, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->port = (int)n;
  q = want_int(root, "tls_port", &n, 1, 65535, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->tls_port = (int)n;
  q = want_int(root, "max_output_queue_bytes", &n, 4096, 1ll << 32, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->outq_cap = (size_t)n;
  q = want_int(root, "shutdown_grace_ms", &n, 0, 600000, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->shutdown_grace_ms = (int)n;
  q = want_int(root, "header_timeout_ms", &n, 100, 600000, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->header_timeout_ms = (int)n;
  q = want_int(root, "webhook_batch_ms", &n, 0, 1000, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->webhook_batch_ms = (int)n;
  q = want_int(root, "webhook_retry_seconds", &n, 0, 86400, "$", what, sizeof what);
  if (q < 0) goto out;
  if (q > 0) c->webhook_retry_s = (int)n;
  json_t *ll = json_object_get(root, "log_level");
  if (ll) {
    int lv = json_is_string(ll) ? pd_log_level_parse(json_string_value(ll)) : -1;
    if (lv < 0) {
      snprintf(what, sizeof what, "$.log_level: must be one of debug, info, warn, error, off");
      goto out;
    }
    pd_log_level = lv;
  }
  json_t *apps = json_object_get(root, "apps");
  if (!json_is_array(apps) || json_array_size(apps) == 0) {
    snprintf(what, sizeof what, "$.apps: must be a non-empty array of apps");
    goto out;
  }
  size_t i;
  json_array_foreach(apps, i, v) {
    if (load_app(c, v, i, what, sizeof what) != 0) goto out;
  }
  rc = 0;
out:
  if (rc != 0) snprintf(err, errlen, "%s: %s", path, what[0] ? what : "out of memory");
  json_decref(root);
  return rc;
}
