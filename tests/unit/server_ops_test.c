/* The pusherd server core's operations modules, without I/O: the HTTP API
 * rate limits (core/pd_ratelimit.h) at window boundaries the test sets
 * with pd_core_set_time, the counters they move (core/pd_stats.h), and a
 * reload (core/pd_reload.h) seen through recording sinks (server_rec.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server_rec.h"
#include "core/pd_ratelimit.h"
#include "core/pd_reload.h"

static char out[4096];
#define EV "{\"name\":\"e\",\"channel\":\"c\",\"data\":\"x\"}"
#define BATCH3 "{\"batch\":[" EV "," EV "," EV "]}"
#define BATCH4 "{\"batch\":[" EV "," EV "," EV "," EV "]}"

static void limits_core(pd_config *cfg, pd_core *core) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->max_backend_events_per_second = 3;
  a->max_read_requests_per_second = 2;
  pd_config_add_app(cfg, a);
  assert_int_equal(pd_core_init(core, cfg, &pd_adapter_local, NULL), 0);
}

static void test_event_limit_windows(void **st) {
  (void)st;
  pd_config cfg;
  pd_core core;
  limits_core(&cfg, &core);
  pd_app *app = core.apps[0];
  pd_core_set_time(&core, 1, 1700000000);
  for (int i = 0; i < 3; i++) assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/events", NULL, EV, out, sizeof out), 200);
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/events", NULL, EV, out, sizeof out), 429);
  assert_non_null(strstr(out, "Rate limit exceeded: this app may publish 3 events per second (this request: 1)"));
  /* the next second: a fresh window; a batch counts its size */
  pd_core_set_time(&core, 2, 1700000001);
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/batch_events", NULL, BATCH4, out, sizeof out), 429);
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/batch_events", NULL, BATCH3, out, sizeof out), 200);
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/events", NULL, EV, out, sizeof out), 429);
  /* invalid requests use nothing */
  pd_core_set_time(&core, 3, 1700000002);
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/events", NULL, "{\"name\":\"e\"}", out, sizeof out), 400);
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/batch_events", NULL, BATCH3, out, sizeof out), 200);
  /* reads: their own limit */
  for (int i = 0; i < 2; i++) assert_int_equal(rec_rest(&core, "GET", "/apps/app-id/channels", NULL, NULL, out, sizeof out), 200);
  assert_int_equal(rec_rest(&core, "GET", "/apps/app-id/channels/c", NULL, NULL, out, sizeof out), 429);
  assert_non_null(strstr(out, "2 read requests per second"));
  /* the counters */
  assert_int_equal(app->stats.events_published, 3 + 3 + 3);
  assert_int_equal(app->stats.rate_limited[PD_RL_EVENTS], 3);
  assert_int_equal(app->stats.rate_limited[PD_RL_READS], 1);
  assert_int_equal(core.stats.http[PD_ROUTE_EVENTS][pd_status_slot(200)], 3);
  assert_int_equal(core.stats.http[PD_ROUTE_EVENTS][pd_status_slot(429)], 2);
  assert_int_equal(core.stats.http[PD_ROUTE_EVENTS][pd_status_slot(400)], 1);
  assert_int_equal(core.stats.http[PD_ROUTE_BATCH][pd_status_slot(429)], 1);
  assert_int_equal(core.stats.http[PD_ROUTE_CHANNEL][pd_status_slot(429)], 1);
  pd_core_free(&core);
  pd_config_free(&cfg);
}

static void test_headers_and_remote(void **st) {
  (void)st;
  pd_config cfg;
  pd_core core;
  limits_core(&cfg, &core);
  pd_app *app = core.apps[0];
  pd_core_set_time(&core, 1, 1700000100);
  long rem;
  uint64_t reset;
  /* what other nodes used in this second counts; another second's does not */
  pd_ratelimit_remote(app, PD_RL_EVENTS, 1700000100, 2);
  pd_ratelimit_remote(app, PD_RL_EVENTS, 1700000099, 5);
  pd_ratelimit_window(app, PD_RL_EVENTS, &rem, &reset);
  assert_int_equal(rem, 1);
  assert_int_equal(reset, 1700000101);
  assert_int_equal(pd_ratelimit_take(app, PD_RL_EVENTS, 1), 0);
  assert_int_equal(pd_ratelimit_take(app, PD_RL_EVENTS, 1), 1);
  uint64_t sec;
  assert_int_equal(pd_ratelimit_used(app, PD_RL_EVENTS, &sec), 1);
  assert_int_equal(sec, 1700000100);
  /* the response carries the window */
  pd_core_set_time(&core, 2, 1700000101);
  char *q = NULL;
  pusher__rest_sign(NULL, "POST", "/apps/app-id/events", NULL, 0, EV, strlen(EV), "app-key", "app-secret",
                    1700000101, &q, NULL);
  char url[1024];
  snprintf(url, sizeof url, "/apps/app-id/events?%s", q);
  pusher__free(NULL, q);
  pd_http_response r;
  pd_rest_handle(&core, "POST", url, strlen(url), EV, strlen(EV), &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.rl_limit, 3);
  assert_int_equal(r.rl_remaining, 2);
  assert_int_equal(r.rl_reset, 1700000102);
  assert_int_equal(r.retry_after, 0);
  pd_free(r.body);
  pd_ratelimit_remote(app, PD_RL_EVENTS, 1700000101, 2);
  pd_rest_handle(&core, "POST", url, strlen(url), EV, strlen(EV), &r);
  assert_int_equal(r.status, 429);
  assert_int_equal(r.retry_after, 1);
  assert_int_equal(r.rl_remaining, 0);
  pd_free(r.body);
  /* no limit: no headers */
  ((pd_app_cfg *)app->cfg)->max_backend_events_per_second = -1;
  pd_rest_handle(&core, "POST", url, strlen(url), EV, strlen(EV), &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.rl_reset, 0);
  pd_free(r.body);
  pd_core_free(&core);
  pd_config_free(&cfg);
}

static pd_app_cfg *app_cfg(const char *id, const char *secret, int enabled) {
  char key[64];
  snprintf(key, sizeof key, "%s-key", id);
  pd_app_cfg *a = pd_app_cfg_new(id, key, secret);
  a->enabled = enabled;
  return a;
}

static void test_reload(void **st) {
  (void)st;
  pd_log_level = PD_LOG_OFF;
  pd_config live, next;
  pd_config_init(&live);
  pd_config_add_app(&live, app_cfg("keep", "s1", 1));
  pd_config_add_app(&live, app_cfg("gone", "s2", 1));
  pd_config_add_app(&live, app_cfg("off", "s3", 1));
  live.metrics_port = 9601;
  pd_core core;
  assert_int_equal(pd_core_init(&core, &live, &pd_adapter_local, NULL), 0);
  pd_core_set_time(&core, 1, 1700000000);
  rec *k = rec_open(&core, "keep-key"), *g = rec_open(&core, "gone-key"), *o = rec_open(&core, "off-key");
  rec_subscribe_signed(g, "private-x", NULL);
  assert_int_equal(pd_channel_get(core.apps[1], "private-x", 0)->nsubs, 1);
  pd_app *gone = core.apps[1];

  pd_config_init(&next);
  pd_config_add_app(&next, app_cfg("keep", "rotated", 1));
  pd_config_add_app(&next, app_cfg("off", "s3", 0));
  pd_config_add_app(&next, app_cfg("new", "s4", 1));
  next.metrics_port = 9999;     /* needs a restart: kept */
  next.outq_cap = 8192;         /* applies */
  pd_reload_summary sum;
  assert_int_equal(pd_reload_apply(&core, &live, &next, &sum), 0);
  assert_int_equal(sum.added, 1);
  assert_int_equal(sum.removed, 1);
  assert_int_equal(sum.disabled, 1);
  assert_int_equal(sum.changed, 2);
  assert_int_equal(sum.closed, 2);
  assert_int_equal(live.metrics_port, 9601);
  assert_int_equal(live.outq_cap, 8192);
  assert_int_equal(live.napps, 3);
  pd_config_free(&next);   /* the old settings: nothing points to them now */

  assert_int_equal(g->closes, 1);
  assert_int_equal(g->close_code, 4003);
  assert_int_equal(o->closes, 1);
  assert_int_equal(o->close_code, 4003);
  assert_int_equal(k->closes, 0);
  assert_true(gone->removed);
  assert_string_equal(gone->cfg->id, "gone");       /* its own copy */
  assert_null(pd_channel_get(gone, "private-x", 0)); /* emptied by the closes */
  assert_null(pd_core_app_by_key(&core, "gone-key"));
  assert_string_equal(core.apps[0]->cfg->secret, "rotated");
  assert_int_equal(core.apps[0]->connections, 1);

  rec *g2 = rec_open(&core, "gone-key"), *o2 = rec_open(&core, "off-key"), *n = rec_open(&core, "new-key");
  assert_int_equal(g2->close_code, 4001);
  assert_int_equal(o2->close_code, 4003);
  assert_int_equal(n->closes, 0);
  assert_non_null(strstr(rec_frame(n, 0), "pusher:connection_established"));
  /* the rotated secret signs the keep app's channels now */
  rec_clear(k);
  rec_subscribe_signed(k, "private-y", NULL);
  assert_non_null(strstr(rec_frame(k, 0), "pusher_internal:subscription_succeeded"));

  /* an id removed and added back is a new live app */
  pd_config_init(&next);
  pd_config_add_app(&next, app_cfg("keep", "rotated", 1));
  pd_config_add_app(&next, app_cfg("gone", "s2", 1));
  assert_int_equal(pd_reload_apply(&core, &live, &next, &sum), 0);
  pd_config_free(&next);
  assert_int_equal(sum.added, 1);
  assert_int_equal(sum.removed, 2); /* off and new */
  assert_int_equal(n->close_code, 4003);
  assert_int_equal(core.napps, 5); /* keep, gone (removed), off (removed), new (removed), gone again */
  pd_app *back = pd_core_app_by_key(&core, "gone-key");
  assert_non_null(back);
  assert_ptr_not_equal(back, gone);
  rec *g3 = rec_open(&core, "gone-key");
  assert_int_equal(g3->closes, 0);

  rec *all[] = {k, g, o, g2, o2, n, g3};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) rec_free(all[i]);
  pd_core_free(&core);
  pd_config_free(&live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_limit_windows),
      cmocka_unit_test(test_headers_and_remote),
      cmocka_unit_test(test_reload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
