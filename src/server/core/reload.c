/* pusherd server core: swapping in a new configuration and reconciling the
 * live state with it.  See pd_reload.h. */
#include "core/pd_reload.h"

#include <string.h>

/* Closes, in one pass over the established sessions (a snapshot first:
 * closing removes each from the core's socket index), those of the apps whose entry
 * in why[app->idx] is set (apps with idx >= n are left alone).  Returns
 * how many. */
static size_t close_sessions(pd_core *core, const char *const *why, size_t n) {
  size_t want = 0, k = 0;
  for (size_t i = 0; i < n; i++)
    if (why[i]) want += (size_t)core->apps[i]->connections;
  if (!want) return 0;
  size_t all = pd_core_sessions(core, NULL, 0);
  pd_session **snap = pd_alloc(all * sizeof *snap);
  if (!snap) return 0;
  all = pd_core_sessions(core, snap, all);
  for (size_t i = 0; i < all; i++) {
    pd_session *s = snap[i];
    if (s->app->idx < n && why[s->app->idx] && k < want) snap[k++] = s;
  }
  for (size_t i = 0; i < k; i++) pd_session_close(snap[i], 4003, why[snap[i]->app->idx]);
  pd_free(snap);
  return k;
}

static int differs(const char *a, const char *b) {
  if (!a || !b) return a != b;
  return strcmp(a, b) != 0;
}

/* Settings that need a restart keep their running values in next. */
static void keep_restart_only(const pd_config *live, pd_config *next) {
  if (differs(live->host, next->host) || live->port != next->port) {
    pd_log(PD_LOG_WARN, "msg=\"reload: host and port need a restart; keeping the running ones\" host=%s port=%d",
           live->host, live->port);
    pd_free(next->host);
    next->host = pd_strdup(live->host);
    next->port = live->port;
  }
  if (differs(live->redis_url, next->redis_url)) {
    pd_log(PD_LOG_WARN, "msg=\"reload: redis_url needs a restart; keeping the running one\"");
    pd_free(next->redis_url);
    next->redis_url = live->redis_url ? pd_strdup(live->redis_url) : NULL;
  }
  if (live->metrics_port != next->metrics_port || differs(live->metrics_host, next->metrics_host)) {
    pd_log(PD_LOG_WARN, "msg=\"reload: metrics_port and metrics_host need a restart; keeping the running ones\" "
                        "metrics_port=%d",
           live->metrics_port);
    next->metrics_port = live->metrics_port;
    pd_free(next->metrics_host);
    next->metrics_host = live->metrics_host ? pd_strdup(live->metrics_host) : NULL;
  }
}

static int app_changed(const pd_app_cfg *a, const pd_app_cfg *b) {
  pd_app_cfg x = *a, y = *b;
  x.id = x.key = x.secret = y.id = y.key = y.secret = NULL;
  return memcmp(&x, &y, sizeof x) != 0 || strcmp(a->key, b->key) || strcmp(a->secret, b->secret);
}

int pd_reload_apply(pd_core *core, pd_config *live, pd_config *next, pd_reload_summary *sum) {
  memset(sum, 0, sizeof *sum);
  keep_restart_only(live, next);
  /* copies for the apps about to be removed, before anything changes */
  size_t n0 = core->napps;
  pd_app_cfg **keep = pd_zalloc((n0 ? n0 : 1) * sizeof *keep);
  const char **why = pd_zalloc((n0 ? n0 : 1) * sizeof *why); /* close reason per app, or NULL */
  if (!keep || !why) {
    pd_free(keep);
    pd_free(why);
    return -1;
  }
  for (size_t i = 0; i < n0; i++) {
    pd_app *app = core->apps[i];
    if (app->removed || pd_config_app_by_id(next, app->cfg->id)) continue;
    if (!(keep[i] = pd_app_cfg_clone(app->cfg))) goto nomem;
  }
  /* room for the new apps */
  size_t nnew = 0;
  for (size_t i = 0; i < next->napps; i++) nnew += pd_core_app_by_id(core, next->apps[i]->id) == NULL;
  pd_app **grown = pd_realloc(core->apps, (core->napps + nnew + 1) * sizeof *grown);
  if (!grown) goto nomem;
  core->apps = grown;

  for (size_t i = 0; i < n0; i++) {
    pd_app *app = core->apps[i];
    if (app->removed) continue;
    pd_app_cfg *nc = pd_config_app_by_id(next, app->cfg->id);
    if (!nc) {
      sum->removed++;
      why[i] = "Application was removed from the server's configuration";
      app->removed = 1;
      app->owned_cfg = keep[i];
      app->cfg = keep[i];
      keep[i] = NULL;
      pd_log(PD_LOG_INFO, "msg=\"reload: app removed\" app_id=%s", app->cfg->id);
      continue;
    }
    if (app->cfg->enabled && !nc->enabled) {
      sum->disabled++;
      why[i] = "Application is disabled";
      pd_log(PD_LOG_INFO, "msg=\"reload: app disabled\" app_id=%s", app->cfg->id);
    } else if (!app->cfg->enabled && nc->enabled) {
      sum->enabled++;
    }
    if (app_changed(app->cfg, nc)) sum->changed++;
    app->cfg = nc;
  }
  for (size_t i = 0; i < next->napps; i++) {
    if (pd_core_app_by_id(core, next->apps[i]->id)) continue;
    if (!pd_core_add_app(core, next->apps[i])) goto nomem_late;
    sum->added++;
    pd_log(PD_LOG_INFO, "msg=\"reload: app added\" app_id=%s", next->apps[i]->id);
  }
  if (0) {
  nomem_late:
    /* the apps added so far are served; the others are missing */
    pd_log(PD_LOG_ERROR, "msg=\"reload: out of memory while adding apps\"");
  }
  pd_free(keep);
  /* live takes the new settings at its own address (core->cfg and the net
   * layer point to it); the apps already point to next's app configs */
  pd_config tmp = *live;
  *live = *next;
  *next = tmp;
  /* last: closing runs the sinks and the adapter, on the new settings */
  sum->closed = close_sessions(core, why, n0);
  pd_free(why);
  return 0;
nomem:
  for (size_t i = 0; i < n0; i++) pd_app_cfg_free(keep[i]);
  pd_free(keep);
  pd_free(why);
  return -1;
}
