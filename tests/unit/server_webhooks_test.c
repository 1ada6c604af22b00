/* The webhook decisions of the pusherd server core (src/server/core/
 * webhooks.c): which events happen, in which order, for which webhook (its
 * event_types and filter), and the "webhooks" configuration with its
 * errors.  Clients are recording sessions (server_rec.h); webhook events
 * are recorded as "HOOK EVENT_JSON" lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "server_rec.h"

static pd_config cfg;
static pd_core core;
static char *seen[256];
static size_t nseen;

static void rec_emit(pd_app *app, size_t hook, json_t *event, void *ud) {
  (void)ud;
  char *t = json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS);
  char line[1024];
  snprintf(line, sizeof line, "%s %zu %s", app->cfg->id, hook, t);
  free(t);
  if (nseen < 256) seen[nseen++] = strdup(line);
}
static const pd_wh_out rec_out = {rec_emit};

static void seen_clear(void) {
  for (size_t i = 0; i < nseen; i++) free(seen[i]);
  nseen = 0;
}

/* The recorded lines joined with '\n'. */
static const char *seen_text(void) {
  static char buf[16384];
  buf[0] = 0;
  for (size_t i = 0; i < nseen; i++) {
    strncat(buf, seen[i], sizeof buf - strlen(buf) - 2);
    strcat(buf, "\n");
  }
  return buf;
}

static pd_app_cfg *app_with_hooks(const char *id, const char *key, const char *hooks_json) {
  pd_app_cfg *a = pd_app_cfg_new(id, key, "secret");
  char err[256] = "";
  json_t *j = json_loads(hooks_json, 0, NULL);
  assert_non_null(j);
  int r = pd_webhooks_cfg_parse(a, j, "apps[0]", err, sizeof err);
  json_decref(j);
  if (r != 0) fail_msg("%s", err);
  return a;
}

static int setup(void **st) {
  (void)st;
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app_cfg *a = app_with_hooks("app-id", "app-key",
      "[{\"url\":\"http://h/all\",\"event_types\":[\"channel_occupied\",\"channel_vacated\",\"member_added\","
      "\"member_removed\",\"client_event\",\"cache_miss\",\"subscription_count\"]},"
      " {\"url\":\"http://h/f\",\"event_types\":[\"channel_occupied\"],"
      "  \"filter\":{\"channel_name_starts_with\":\"private-\",\"channel_name_ends_with\":\"-x\"}}]");
  a->client_events = 1;
  pd_config_add_app(&cfg, a);
  pd_app_cfg *b = app_with_hooks("nocount-id", "nocount-key",
      "[{\"url\":\"https://h/c\",\"event_types\":[\"subscription_count\",\"channel_vacated\"]}]");
  b->subscription_count = 0;
  pd_config_add_app(&cfg, b);
  pd_config_add_app(&cfg, pd_app_cfg_new("none-id", "none-key", "secret"));
  assert_int_equal(rec_core_start(&core, &cfg), 0);
  pd_core_set_webhooks(&core, &rec_out, NULL);
  return 0;
}
static int teardown(void **st) {
  (void)st;
  rec_core_stop(&core, &cfg);
  seen_clear();
  return 0;
}

static void sub(rec *r, const char *ch) {
  char t[256];
  snprintf(t, sizeof t, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}", ch);
  rec_text(r, t);
}
static void unsub(rec *r, const char *ch) {
  char t[256];
  snprintf(t, sizeof t, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"%s\"}}", ch);
  rec_text(r, t);
}

static void test_occupied_vacated_count(void **st) {
  (void)st;
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  sub(a, "room");
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"room\",\"name\":\"channel_occupied\"}\n"
                                   "app-id 0 {\"channel\":\"room\",\"name\":\"subscription_count\",\"subscription_count\":1}\n");
  seen_clear();
  sub(b, "room");
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"room\",\"name\":\"subscription_count\",\"subscription_count\":2}\n");
  seen_clear();
  unsub(a, "room");
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"room\",\"name\":\"subscription_count\",\"subscription_count\":1}\n");
  seen_clear();
  rec_free(b); /* ending the session leaves the channel */
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"room\",\"name\":\"channel_vacated\"}\n"
                                   "app-id 0 {\"channel\":\"room\",\"name\":\"subscription_count\",\"subscription_count\":0}\n");
  seen_clear();
  /* occupied again after being vacated */
  sub(a, "room");
  assert_int_equal(nseen, 2);
  assert_non_null(strstr(seen[0], "channel_occupied"));
  rec_free(a);
}

static void test_presence_members(void **st) {
  (void)st;
  rec *a = rec_open(&core, "app-key"), *a2 = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "presence-p", "{\"user_id\":\"u1\"}");
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"presence-p\",\"name\":\"channel_occupied\"}\n"
                                   "app-id 0 {\"channel\":\"presence-p\",\"name\":\"member_added\",\"user_id\":\"u1\"}\n");
  seen_clear();
  /* the same user on a second socket: no event */
  rec_subscribe_signed(a2, "presence-p", "{\"user_id\":\"u1\"}");
  assert_int_equal(nseen, 0);
  rec_subscribe_signed(b, "presence-p", "{\"user_id\":\"u2\"}");
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"presence-p\",\"name\":\"member_added\",\"user_id\":\"u2\"}\n");
  seen_clear();
  rec_free(a);
  assert_int_equal(nseen, 0); /* u1 still has a2 */
  rec_free(a2);
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"presence-p\",\"name\":\"member_removed\",\"user_id\":\"u1\"}\n");
  seen_clear();
  rec_free(b);
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"presence-p\",\"name\":\"member_removed\",\"user_id\":\"u2\"}\n"
                                   "app-id 0 {\"channel\":\"presence-p\",\"name\":\"channel_vacated\"}\n");
}

static void test_client_events(void **st) {
  (void)st;
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "presence-c", "{\"user_id\":\"u1\"}");
  rec_subscribe_signed(b, "presence-c", "{\"user_id\":\"u2\"}");
  rec_subscribe_signed(a, "private-c", NULL);
  seen_clear();
  rec_text(a, "{\"event\":\"client-x\",\"channel\":\"presence-c\",\"data\":{\"k\":[1,2]}}");
  char want[512];
  snprintf(want, sizeof want,
           "app-id 0 {\"channel\":\"presence-c\",\"data\":\"{\\\"k\\\":[1,2]}\",\"event\":\"client-x\",\"name\":"
           "\"client_event\",\"socket_id\":\"%s\",\"user_id\":\"u1\"}\n",
           a->s.socket_id);
  assert_string_equal(seen_text(), want);
  seen_clear();
  rec_text(a, "{\"event\":\"client-y\",\"channel\":\"private-c\",\"data\":\"plain\"}");
  snprintf(want, sizeof want,
           "app-id 0 {\"channel\":\"private-c\",\"data\":\"plain\",\"event\":\"client-y\",\"name\":\"client_event\","
           "\"socket_id\":\"%s\"}\n",
           a->s.socket_id);
  assert_string_equal(seen_text(), want);
  seen_clear();
  /* refused client events (not subscribed) make no webhook */
  rec_text(b, "{\"event\":\"client-y\",\"channel\":\"private-c\",\"data\":\"plain\"}");
  assert_int_equal(nseen, 0);
  rec_free(a);
  rec_free(b);
}

static void test_cache_miss(void **st) {
  (void)st;
  rec *a = rec_open(&core, "app-key");
  sub(a, "cache-c");
  assert_non_null(strstr(seen_text(), "app-id 0 {\"channel\":\"cache-c\",\"name\":\"cache_miss\"}\n"));
  seen_clear();
  char out[256];
  assert_int_equal(rec_rest(&core, "POST", "/apps/app-id/events", NULL,
                            "{\"name\":\"e\",\"channels\":[\"cache-c\"],\"data\":\"d\"}", out, sizeof out),
                   200);
  rec *b = rec_open(&core, "app-key");
  sub(b, "cache-c");
  assert_null(strstr(seen_text(), "cache_miss")); /* something was cached */
  rec_free(a);
  rec_free(b);
}

static void test_filters_and_types(void **st) {
  (void)st;
  rec *a = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "private-a-x", NULL);
  rec_subscribe_signed(a, "private-a-y", NULL);
  sub(a, "public-x");
  /* hook 1 (occupied, private-*-x) sees only private-a-x */
  size_t n1 = 0;
  for (size_t i = 0; i < nseen; i++)
    if (strncmp(seen[i], "app-id 1 ", 9) == 0) {
      n1++;
      assert_string_equal(seen[i], "app-id 1 {\"channel\":\"private-a-x\",\"name\":\"channel_occupied\"}");
    }
  assert_int_equal(n1, 1);
  seen_clear();
  /* an app with subscription counting off gets no subscription_count; only its types */
  rec *c = rec_open(&core, "nocount-key");
  sub(c, "room");
  assert_int_equal(nseen, 0);
  rec_free(c);
  assert_string_equal(seen_text(), "nocount-id 0 {\"channel\":\"room\",\"name\":\"channel_vacated\"}\n");
  seen_clear();
  /* an app without webhooks */
  rec *d = rec_open(&core, "none-key");
  sub(d, "room");
  rec_free(d);
  assert_int_equal(nseen, 0);
  rec_free(a);
}

static void test_cluster_decides(void **st) {
  (void)st;
  core.wh_cluster = 1; /* as adapter/redis.c sets it */
  rec *a = rec_open(&core, "app-key");
  rec_subscribe_signed(a, "presence-q", "{\"user_id\":\"u1\"}");
  assert_int_equal(nseen, 0); /* neither occupied nor member_added: the adapter's call */
  pd_wh_transition(core.apps[0], "presence-q", PD_WH_MEMBER_ADDED, "u1");
  assert_string_equal(seen_text(), "app-id 0 {\"channel\":\"presence-q\",\"name\":\"member_added\",\"user_id\":\"u1\"}\n");
  seen_clear();
  rec_free(a);
  assert_int_equal(nseen, 0);
  core.wh_cluster = 0;
}

static void expect_cfg_error(const char *hooks, const char *want) {
  pd_app_cfg *a = pd_app_cfg_new("i", "k", "s");
  char err[512] = "";
  json_t *j = json_loads(hooks, 0, NULL);
  assert_non_null(j);
  assert_int_equal(pd_webhooks_cfg_parse(a, j, "apps[0]", err, sizeof err), -1);
  json_decref(j);
  if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
  assert_int_equal(a->nwebhooks, 0);
  pd_app_cfg_free(a);
}

static void test_config(void **st) {
  (void)st;
  expect_cfg_error("{}", "apps[0].webhooks: must be an array");
  expect_cfg_error("[{\"event_types\":[\"cache_miss\"]}]", "apps[0].webhooks[0].url: required");
  expect_cfg_error("[{\"url\":\"ftp://x\",\"event_types\":[\"cache_miss\"]}]", "webhooks[0].url: required, an http");
  expect_cfg_error("[{\"url\":\"http://x\"}]", "webhooks[0].event_types: required");
  expect_cfg_error("[{\"url\":\"http://x\",\"event_types\":[\"cache_miss\",\"nope\"]}]", "webhooks[0].event_types[1]: must be one of");
  expect_cfg_error("[{\"url\":\"http://x\",\"event_types\":[\"cache_miss\"],\"lambda\":{}}]", "unknown setting \"lambda\"");
  expect_cfg_error("[{\"url\":\"http://x\",\"event_types\":[\"cache_miss\"],\"headers\":{\"X-Pusher-Key\":\"v\"}}]",
                   "webhooks[0].headers.X-Pusher-Key: needs a header name");
  expect_cfg_error("[{\"url\":\"http://x\",\"event_types\":[\"cache_miss\"],\"headers\":{\"A\":\"v\\r\\nB: c\"}}]",
                   "webhooks[0].headers.A:");
  expect_cfg_error("[{\"url\":\"http://x\",\"event_types\":[\"cache_miss\"],\"filter\":{\"channel_name_matches\":\"x\"}}]",
                   "known filters are");
  /* the file loader: top-level keys and their ranges */
  char path[] = "/tmp/pd_wh_cfg_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "{\"webhook_batch_ms\":5000,\"apps\":[{\"id\":\"a\",\"key\":\"b\",\"secret\":\"c\"}]}";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  pd_config c;
  pd_config_init(&c);
  char err[512];
  assert_int_equal(pd_config_load_file(&c, path, err, sizeof err), -1);
  assert_non_null(strstr(err, "$.webhook_batch_ms: must be an integer in [0, 1000]"));
  pd_config_free(&c);
  fd = open(path, O_WRONLY | O_TRUNC);
  text = "{\"webhook_batch_ms\":50,\"webhook_retry_seconds\":10,\"apps\":[{\"id\":\"a\",\"key\":\"b\",\"secret\":\"c\","
         "\"webhooks\":[{\"url\":\"http://r/x\",\"event_types\":[\"member_added\"],\"headers\":{\"A\":\"1\"},"
         "\"filter\":{\"channel_name_starts_with\":\"presence-\"}}]}]}";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  pd_config_init(&c);
  assert_int_equal(pd_config_load_file(&c, path, err, sizeof err), 0);
  assert_int_equal(c.webhook_batch_ms, 50);
  assert_int_equal(c.webhook_retry_s, 10);
  assert_int_equal(c.apps[0]->nwebhooks, 1);
  assert_string_equal(c.apps[0]->webhooks[0].url, "http://r/x");
  assert_int_equal(c.apps[0]->webhooks[0].types, 1u << PD_WH_MEMBER_ADDED);
  assert_string_equal(c.apps[0]->webhooks[0].headers[0], "A: 1");
  assert_string_equal(c.apps[0]->webhooks[0].starts_with, "presence-");
  assert_null(c.apps[0]->webhooks[0].ends_with);
  pd_config_free(&c);
  unlink(path);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_occupied_vacated_count), T(test_presence_members), T(test_client_events), T(test_cache_miss),
      T(test_filters_and_types),      T(test_cluster_decides),  T(test_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
