/* pusherd server core: HTTP API rate limits.  See pd_ratelimit.h. */
#include "core/pd_ratelimit.h"

long pd_ratelimit_limit(const pd_app *app, int kind) {
  return kind == PD_RL_EVENTS ? app->cfg->max_backend_events_per_second : app->cfg->max_read_requests_per_second;
}

/* Start a new window when the second changed. */
static void roll(pd_app *app, int kind) {
  uint64_t sec = app->core->wall_s; /* wall clock: the same second on every node */
  if (app->rl_sec[kind] == sec) return;
  app->rl_sec[kind] = sec;
  app->rl_used[kind] = 0;
  app->rl_remote[kind] = 0;
}

int pd_ratelimit_take(pd_app *app, int kind, long n) {
  long limit = pd_ratelimit_limit(app, kind);
  if (limit < 0) return 0;
  roll(app, kind);
  if (app->rl_used[kind] + app->rl_remote[kind] + n > limit) {
    app->stats.rate_limited[kind]++;
    return 1; /* the window is one second: the next one starts within it */
  }
  app->rl_used[kind] += n;
  if (PD_AD(app)->rate_used) PD_AD(app)->rate_used(app, kind, app->rl_sec[kind], n, PD_AD_UD(app));
  return 0;
}

long pd_ratelimit_used(pd_app *app, int kind, uint64_t *sec) {
  roll(app, kind);
  *sec = app->rl_sec[kind];
  return app->rl_used[kind];
}

void pd_ratelimit_window(pd_app *app, int kind, long *remaining, uint64_t *reset) {
  roll(app, kind);
  long left = pd_ratelimit_limit(app, kind) - app->rl_used[kind] - app->rl_remote[kind];
  *remaining = left > 0 ? left : 0;
  *reset = app->rl_sec[kind] + 1;
}

void pd_ratelimit_remote(pd_app *app, int kind, uint64_t sec, long used) {
  roll(app, kind);
  if (sec == app->rl_sec[kind]) app->rl_remote[kind] += used;
}
