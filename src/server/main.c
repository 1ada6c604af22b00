/* pusherd: a Pusher Channels (protocol 7) compatible server.  The program
 * wires the layers (docs/architecture.md): configuration, the server core
 * with the single-node or the Redis adapter, and the libuv net layer. */
#include "adapter/pd_local.h"
#include "core/pd_config.h"
#include "core/pd_core.h"
#include "net/pd_net.h"
#include "net/pd_tls.h"
#include "net/pd_curl.h"
#include "net/pd_metrics.h"
#include "core/pd_reload.h"
#include "pusher/version.h"
#ifdef PUSHERD_HAVE_HIREDIS
#include "adapter/pd_redis.h"
#include "net/pd_webhook_sender.h"
#endif

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: pusherd [options]\n"
          "\n"
          "A Pusher Channels compatible server (WebSocket protocol 7 + HTTP API).\n"
          "With no options it serves one development app on 127.0.0.1:6001:\n"
          "  app id app-id, key app-key, secret app-secret, client events on.\n"
          "\n"
          "options:\n"
          "  --host HOST              listen address (env PUSHERD_HOST; default 127.0.0.1)\n"
          "  --port PORT              listen port (env PUSHERD_PORT; default 6001); 0 = no plain\n"
          "                           listener (then --tls-port is required)\n"
          "  --tls-port PORT          also listen with TLS on PORT: wss:// and https:// (config \"tls_port\")\n"
          "  --tls-cert FILE          PEM certificate chain for --tls-port (config \"tls_cert\")\n"
          "  --tls-key FILE           PEM private key (unencrypted) for --tls-port (config \"tls_key\")\n"
          "  --app-id ID              default app id (env PUSHERD_APP_ID; default app-id)\n"
          "  --app-key KEY            default app key (env PUSHERD_APP_KEY; default app-key)\n"
          "  --app-secret SECRET      default app secret (env PUSHERD_APP_SECRET; default app-secret)\n"
          "  --max-connections N      connection quota of the default app (-1 = none; over it: 4004)\n"
          "  --activity-timeout S     activity_timeout sent to clients, seconds (default 120)\n"
          "  --pong-timeout S         close 4201 when a ping is not answered within S seconds (default 30)\n"
          "  --no-client-events       disable client events for the default app\n"
          "  --config FILE            JSON file with any number of apps (replaces the default app)\n"
          "  --redis URL              join a cluster over Redis: redis://[:PASSWORD@]HOST[:PORT][/DB]\n"
          "                           (env PUSHERD_REDIS_URL; config key \"redis_url\"); see below\n"
          "  --metrics-port PORT      serve GET /metrics (Prometheus text), /health and /ready on this\n"
          "                           port (config key \"metrics_port\"; default off); see below\n"
          "  --metrics-host HOST      the metrics listener's address (config key \"metrics_host\";\n"
          "                           default: the same as --host)\n"
          "  --log-level LEVEL        debug, info, warn, error, off (default info); logs go to stderr\n"
          "  --help                   this text\n"
          "  --version                print the version and exit\n"
          "\n"
          "config file: {\"host\":\"127.0.0.1\",\"port\":6001,\"log_level\":\"info\",\n"
          "  \"tls_port\":6002,\"tls_cert\":\"cert.pem\",\"tls_key\":\"key.pem\",\n"
          "  \"redis_url\":\"redis://127.0.0.1:6379\",\n"
          "  \"max_output_queue_bytes\":4194304,\"shutdown_grace_ms\":3000,\"header_timeout_ms\":10000,\n"
          "  \"webhook_batch_ms\":250,\"webhook_retry_seconds\":300,\n"
          "  \"metrics_port\":9601,\"metrics_host\":\"127.0.0.1\",\n"
          "  \"apps\":[{\"id\":\"..\",\"key\":\"..\",\"secret\":\"..\",\"enabled\":true,\n"
          "    \"client_events\":false,\"user_authentication\":true,\"subscription_count\":true,\n"
          "    \"max_connections\":-1,\"activity_timeout\":120,\"max_event_data_bytes\":10240,\n"
          "    \"max_channels_per_event\":100,\"max_batch_size\":10,\"max_channel_name_length\":200,\n"
          "    \"max_event_name_length\":200,\"max_presence_members\":100,\"max_user_info_bytes\":1024,\n"
          "    \"max_user_id_length\":128,\"client_event_rate\":10,\"cache_ttl\":1800,\"tls_only\":false,\n"
          "    \"max_backend_events_per_second\":-1,\"max_read_requests_per_second\":-1,\n"
          "    \"webhooks\":[{\"url\":\"http://..\",\"event_types\":[\"channel_occupied\",..],\n"
          "      \"headers\":{..},\"filter\":{\"channel_name_starts_with\":..,\"channel_name_ends_with\":..}}]}]}\n"
          "webhooks (docs/webhooks.md): events channel_occupied, channel_vacated, member_added,\n"
          "  member_removed, client_event, cache_miss, subscription_count; batched per webhook\n"
          "  over webhook_batch_ms (default 250, at most 1000), signed POSTs; a 2xx within 4 s\n"
          "  is success, else retried with back-off (1 s doubling to 60 s) for\n"
          "  webhook_retry_seconds (default 300), then dropped and logged; at most 16 MiB of\n"
          "  events wait (more are dropped and logged); on SIGTERM pending webhooks get\n"
          "  shutdown_grace_ms + 4 s.\n"
          "\n"
          "TLS (--tls-port): OpenSSL, TLS 1.2 and 1.3 only, ECDHE+AEAD suites, server cipher\n"
          "  preference, no compression, no renegotiation.  The handshake must finish within\n"
          "  header_timeout_ms of the connection (else it is closed).  SIGHUP reloads the\n"
          "  certificate and key files for new connections (a bad file is refused with a log\n"
          "  line; the previous certificate stays).  A tls_only app answers a WebSocket client\n"
          "  that did not come over TLS with pusher:error 4000 and close 4000.  See docs/tls.md.\n"
          "\n"
          "caps: HTTP headers 16 KiB (431) complete within header_timeout_ms of the\n"
          "  connection or of the request's first byte (default 10 s; then 408 and close),\n"
          "  HTTP body 1 MiB (413), WebSocket message 256 KiB\n"
          "  (close 1009), per-connection output queue 4 MiB by default (a client that falls\n"
          "  behind past it is closed with 4100 and may reconnect after a back-off),\n"
          "  1000 channels per connection.\n"
          "SIGTERM/SIGINT: stop accepting, pusher:error 4200 + close 4200 to every client,\n"
          "  drain, exit 0.  /ready (metrics port) answers 503 from the start of the drain.\n"
          "SIGHUP: re-read --config.  A file that does not load is refused with an error log\n"
          "  line and the running configuration is kept.  Apps are matched by id: a new app\n"
          "  is served at once; a removed or disabled app's connections are closed with 4003\n"
          "  (new connections get 4001 for a removed app, 4003 for a disabled one); secrets,\n"
          "  keys, limits and options apply to the next message or request; other apps'\n"
          "  connections are untouched.  host, port, redis_url, metrics_port and metrics_host\n"
          "  need a restart (kept, with a warning); command-line options still override the file.\n"
          "metrics (--metrics-port): its own listener, never the app port.  /metrics: per-app\n"
          "  connections (now, total), WebSocket messages and bytes in and out, events\n"
          "  published, client events, 4100 closes, 429s; HTTP requests by route and status;\n"
          "  reloads; with --redis the Redis link (pusherd_redis_up) and peers; process RSS,\n"
          "  CPU and start time.  /health: 200 while the loop runs.  /ready: 200, or 503 once\n"
          "  shutdown starts and, with --redis, while a Redis connection is down.  Caps: 8 KiB\n"
          "  request, 10 s per request, 64 connections, 8 MiB of output.\n"
          "rate limits (per app, HTTP API): max_backend_events_per_second (a batch of k events\n"
          "  counts k) and max_read_requests_per_second (GET channels/channel/users); -1 = none\n"
          "  (default).  Over it: 429, {\"error\":...} and Retry-After: 1.  One-second windows of\n"
          "  the wall clock; per node, or cluster-wide with --redis (each node publishes\n"
          "  what it accepted; see docs/operations.md for the accuracy).\n"
          "\n"
          "cluster (--redis): run several pusherd processes (each its own --port, the same\n"
          "  apps) on one Redis behind any load balancer; they act as one app.  Each node\n"
          "  has a random node number, the first part of its socket ids.  Two Redis\n"
          "  connections (subscribe + publish), retried with back-off 0.25..5 s while Redis\n"
          "  is away (local delivery continues; cross-node messages are dropped meanwhile;\n"
          "  state is re-exchanged after reconnecting).  No Redis keys are used (except by\n"
          "  webhooks: pusherd:wh:<app_id>:*, docs/webhooks.md): one pub/sub\n"
          "  channel per app, pusherd:<app_id>, carries compact JSON messages\n"
          "  {\"t\":TYPE,\"n\":NODE,...}: ev (REST/server-to-user event, with the socket_id to\n"
          "  exclude), fr (client event frame), sub (a node's subscription count on a\n"
          "  channel), mj/ml (a user's first join / last leave of a presence channel on a\n"
          "  node), state (a node's full state; r=1 asks all to answer), hb (every 1 s;\n"
          "  a node silent for 5 s is dropped with its members), bye, term\n"
          "  (terminate_connections), uo/uf (a user's first / last signed-in socket on a\n"
          "  node).  Cluster-wide: events, client events, socket_id exclusion,\n"
          "  server-to-user events, REST occupancy/subscription and user counts, users,\n"
          "  presence members, member_added/removed on first join/last leave,\n"
          "  subscription_count events, terminate_connections, watchlist online/offline.\n"
          "  Per node: max_connections, client event rate limits, cache channel caches.\n"
          "  Pub/sub ignores /DB: clusters sharing one Redis need distinct app ids.\n");
}

static pd_server server;
static pd_core core;
static pd_whs *webhooks;
#ifdef PUSHERD_HAVE_HIREDIS
static pd_redis *redis_adapter;
#endif
static void on_shutdown(void *ud) {
  (void)ud;
#ifdef PUSHERD_HAVE_HIREDIS
  if (redis_adapter) pd_redis_stop(redis_adapter);
#endif
  pd_whs_shutdown(webhooks);
}
static pd_metrics *metrics;
static uv_signal_t sighup;
#ifdef PUSHERD_HAVE_HIREDIS

/* Cluster families for /metrics and the readiness check of /ready. */
static void redis_metrics(pd_mbuf *b, pd_core *c, void *ud) {
  pd_metrics_family(b, "pusherd_redis_up", "gauge", "1 when both Redis connections (publish, subscribe) are up");
  pd_metrics_u64(b, "pusherd_redis_up", NULL, NULL, NULL, NULL, (uint64_t)pd_redis_link_up(ud));
  pd_metrics_family(b, "pusherd_cluster_peers", "gauge", "Other pusherd nodes currently seen, per app");
  for (size_t i = 0; i < c->napps; i++)
    if (!c->apps[i]->removed)
      pd_metrics_u64(b, "pusherd_cluster_peers", "app_id", c->apps[i]->cfg->id, NULL, NULL,
                     pd_redis_peers(ud, c->apps[i]));
}

static int redis_ready(const char **why, void *ud) {
  if (pd_redis_link_up(ud)) return 1;
  *why = "Redis link down";
  return 0;
}
#endif

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* Command line and environment. */
typedef struct opts {
  const char *host, *port, *app_id, *app_key, *app_secret, *config;
  const char *max_conns, *activity, *pong, *redis;
  const char *tls_port, *tls_cert, *tls_key;
  const char *metrics_port, *metrics_host;
  int client_events;
} opts;

/* 0 to run, 1 after --help or --version, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->host = getenv("PUSHERD_HOST"), o->port = getenv("PUSHERD_PORT");
  o->app_id = getenv("PUSHERD_APP_ID"), o->app_key = getenv("PUSHERD_APP_KEY");
  o->app_secret = getenv("PUSHERD_APP_SECRET"), o->redis = getenv("PUSHERD_REDIS_URL");
  o->client_events = 1;
  static const struct {
    const char *name;
    size_t off;
  } valued[] = {
      {"--host", offsetof(opts, host)},         {"--port", offsetof(opts, port)},
      {"--app-id", offsetof(opts, app_id)},     {"--app-key", offsetof(opts, app_key)},
      {"--app-secret", offsetof(opts, app_secret)}, {"--max-connections", offsetof(opts, max_conns)},
      {"--activity-timeout", offsetof(opts, activity)}, {"--pong-timeout", offsetof(opts, pong)},
      {"--config", offsetof(opts, config)},     {"--redis", offsetof(opts, redis)},
      {"--tls-port", offsetof(opts, tls_port)}, {"--tls-cert", offsetof(opts, tls_cert)},
      {"--tls-key", offsetof(opts, tls_key)},
      {"--metrics-port", offsetof(opts, metrics_port)}, {"--metrics-host", offsetof(opts, metrics_host)},
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      /* one write(2) for the whole text (longer than stdio's 4 KiB pipe
       * buffer): `pusherd --help | grep -q X` must not die of SIGPIPE */
      static char buf[1 << 14];
      setvbuf(stdout, buf, _IOFBF, sizeof buf);
      return usage(stdout), 1;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
      printf("pusherd %s (Pusher Channels protocol %d)\n", PUSHER_VERSION, PUSHER_PROTOCOL_VERSION);
      return 1;
    }
    if (strcmp(a, "--no-client-events") == 0) {
      o->client_events = 0;
      continue;
    }
    if (strcmp(a, "--log-level") == 0) {
      if (i + 1 >= argc || pd_log_level_parse(argv[i + 1]) < 0) {
        fprintf(stderr, "pusherd: --log-level needs one of debug, info, warn, error, off\n");
        return 2;
      }
      pd_log_level = pd_log_level_parse(argv[++i]);
      continue;
    }
    size_t k = 0;
    while (k < sizeof valued / sizeof *valued && strcmp(a, valued[k].name) != 0) k++;
    if (k == sizeof valued / sizeof *valued) {
      fprintf(stderr, "pusherd: unknown option '%s' (see --help)\n", a);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "pusherd: %s needs a value\n", a);
      return 2;
    }
    *(const char **)((char *)o + valued[k].off) = argv[++i];
  }
  return 0;
}

/* A numeric option into *out; 0, or 2 with msg in err. */
static char cfg_err[1200];
static int num_opt(const char *s, long lo, long hi, long *out, const char *msg) {
  if (parse_long(s, lo, hi, out) == 0) return 0;
  snprintf(cfg_err, sizeof cfg_err, "%s", msg);
  return 2;
}

/* The development app from the options. 0, 1 (OOM) or 2 (usage). */
static int default_app(pd_config *cfg, const opts *o) {
  pd_app_cfg *app = pd_app_cfg_new(o->app_id && *o->app_id ? o->app_id : "app-id",
                                   o->app_key && *o->app_key ? o->app_key : "app-key",
                                   o->app_secret && *o->app_secret ? o->app_secret : "app-secret");
  if (!app || pd_config_add_app(cfg, app) != 0) return 1;
  app->client_events = o->client_events;
  long v;
  if (o->max_conns) {
    if (num_opt(o->max_conns, -1, 100000000, &v, "--max-connections needs an integer >= -1")) return 2;
    app->max_connections = v;
  }
  if (o->activity) {
    if (num_opt(o->activity, 1, 3600, &v, "--activity-timeout needs 1..3600 seconds")) return 2;
    app->activity_timeout = (int)v;
  }
  return 0;
}

/* --tls-* beat the config file's tls_*; all three or none. */
static int tls_config(pd_config *cfg, const opts *o) {
  long v;
  if (o->tls_port) {
    if (parse_long(o->tls_port, 1, 65535, &v) != 0) {
      snprintf(cfg_err, sizeof cfg_err, "invalid --tls-port '%s' (1-65535)", o->tls_port);
      return 2;
    }
    cfg->tls_port = (int)v;
  }
  if (o->tls_cert) {
    pd_free(cfg->tls_cert);
    cfg->tls_cert = pd_strdup(o->tls_cert);
  }
  if (o->tls_key) {
    pd_free(cfg->tls_key);
    cfg->tls_key = pd_strdup(o->tls_key);
  }
  int n = (cfg->tls_port != 0) + (cfg->tls_cert != NULL) + (cfg->tls_key != NULL);
  if (n != 0 && n != 3) {
    snprintf(cfg_err, sizeof cfg_err, "TLS needs all of --tls-port, --tls-cert and --tls-key (or tls_port, "
                                      "tls_cert, tls_key in the config)");
    return 2;
  }
  if (cfg->port == 0 && cfg->tls_port == 0) {
    snprintf(cfg_err, sizeof cfg_err, "--port 0 turns the plain listener off; then --tls-port is required");
    return 2;
  }
  if (cfg->port == cfg->tls_port) {
    snprintf(cfg_err, sizeof cfg_err, "--port and --tls-port must differ (both %d)", cfg->port);
    return 2;
  }
  return 0;
}

/* The configuration from the options (and --config FILE): 0, 1 or 2 (the
 * message in cfg_err).  At start and on every SIGHUP reload. */
static int build_config(pd_config *cfg, const opts *o) {
  long v;
  cfg_err[0] = 0;
  if (o->config) {
    char err[1024];
    if (pd_config_load_file(cfg, o->config, err, sizeof err) != 0) {
      snprintf(cfg_err, sizeof cfg_err, "bad config: %s", err);
      return 2;
    }
  } else {
    int r = default_app(cfg, o);
    if (r) return r;
  }
  if (o->host) {
    pd_free(cfg->host);
    cfg->host = pd_strdup(o->host);
  }
  if (o->port) {
    if (parse_long(o->port, 0, 65535, &v) != 0) {
      snprintf(cfg_err, sizeof cfg_err, "invalid port '%s'", o->port);
      return 2;
    }
    cfg->port = (int)v;
  }
  /* --redis / env beat the config file's "redis_url" */
  if (o->redis && *o->redis) {
    pd_free(cfg->redis_url);
    cfg->redis_url = pd_strdup(o->redis);
  }
  if (cfg->redis_url) {
    char err[200] = "this pusherd was built without hiredis";
#ifdef PUSHERD_HAVE_HIREDIS
    char *rh = NULL, *rp = NULL;
    int rport, rdb;
    int bad = pd_redis_parse_url(cfg->redis_url, &rh, &rport, &rp, &rdb, err, sizeof err) != 0;
    pd_free(rh);
    pd_free(rp);
#else
    int bad = 1;
#endif
    if (bad) {
      snprintf(cfg_err, sizeof cfg_err, "bad Redis URL '%s': %s", cfg->redis_url, err);
      return 2;
    }
  }
  if (o->pong) {
    if (num_opt(o->pong, 1, 3600, &v, "--pong-timeout needs 1..3600 seconds")) return 2;
    cfg->pong_timeout_ms = (int)v * 1000;
  }
  if (o->metrics_port) {
    if (num_opt(o->metrics_port, 1, 65535, &v, "--metrics-port needs a port 1..65535")) return 2;
    cfg->metrics_port = (int)v;
  }
  if (o->metrics_host && *o->metrics_host) {
    pd_free(cfg->metrics_host);
    cfg->metrics_host = pd_strdup(o->metrics_host);
  }
  return tls_config(cfg, o);
}

/* After the last connection is gone: the loop may end. */
static void on_stop(void *ud) {
  (void)ud;
  pd_metrics_close(metrics);
  if (!uv_is_closing((uv_handle_t *)&sighup)) uv_close((uv_handle_t *)&sighup, NULL);
}

/* Modules that keep pointers into the configuration (an app's settings,
 * strings in them) re-point them in a reload hook: it runs after the swap,
 * while the old settings (old) are still valid, before they are freed.
 * Register with add_reload_hook when wiring the module in run(). */
typedef void (*reload_hook_fn)(pd_core *c, const pd_config *old, void *user_data);
static struct {
  reload_hook_fn fn;
  void *ud;
} reload_hooks[8];
static size_t nreload_hooks;
static int add_reload_hook(reload_hook_fn fn, void *ud) {
  if (nreload_hooks >= sizeof reload_hooks / sizeof *reload_hooks) return -1;
  reload_hooks[nreload_hooks].fn = fn;
  reload_hooks[nreload_hooks++].ud = ud;
  return 0;
}

/* Webhook delivery families for /metrics (docs/operations.md). */
static void whs_metrics(pd_mbuf *b, pd_core *c, void *ud) {
  (void)c;
  const pd_whs_stats *st = pd_whs_get_stats(ud);
  static const struct {
    const char *name, *type, *help;
    size_t off;
  } f[] = {
      {"pusherd_webhook_batches_sent_total", "counter", "Webhook requests answered 2xx",
       offsetof(pd_whs_stats, batches_sent)},
      {"pusherd_webhook_batches_retried_total", "counter", "Failed webhook attempts followed by a retry",
       offsetof(pd_whs_stats, batches_retried)},
      {"pusherd_webhook_batches_dropped_total", "counter",
       "Webhook batches given up (retry window over, shutdown, webhook removed)",
       offsetof(pd_whs_stats, batches_dropped)},
      {"pusherd_webhook_events_sent_total", "counter", "Webhook events delivered", offsetof(pd_whs_stats, events_sent)},
      {"pusherd_webhook_events_dropped_total", "counter", "Webhook events dropped (queue cap, dropped batches)",
       offsetof(pd_whs_stats, events_dropped)},
      {"pusherd_webhook_queued_events", "gauge", "Webhook events waiting now", offsetof(pd_whs_stats, queued_events)},
      {"pusherd_webhook_queued_bytes", "gauge", "Bytes of webhook events waiting now",
       offsetof(pd_whs_stats, queued_bytes)},
  };
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    uint64_t v;
    memcpy(&v, (const char *)st + f[i].off, sizeof v);
    pd_metrics_family(b, f[i].name, f[i].type, f[i].help);
    pd_metrics_u64(b, f[i].name, NULL, NULL, NULL, NULL, v);
  }
}

#ifdef PUSHERD_HAVE_HIREDIS
static void redis_reload(pd_core *c, const pd_config *old, void *ud) {
  (void)c, (void)old;
  pd_redis_reload(ud);
}
#endif

static void whs_reload(pd_core *c, const pd_config *old, void *ud) {
  (void)c, (void)old;
  pd_whs_reload(ud);
}

/* SIGHUP: re-read --config (docs/operations.md, "Reload"). */
static const opts *run_opts;
static void on_sighup(uv_signal_t *h, int sig) {
  (void)h, (void)sig;
  if (!run_opts->config) {
    pd_log(PD_LOG_WARN, "msg=\"SIGHUP: no --config file to reload; nothing changed\"");
    return;
  }
  if (server.shutting_down) return;
  pd_log(PD_LOG_INFO, "msg=\"SIGHUP: reloading the configuration\" file=%s", run_opts->config);
  pd_config next;
  pd_config_init(&next);
  int level = pd_log_level;
  pd_config *live = (pd_config *)core.cfg;
  if (build_config(&next, run_opts) != 0) {
    pd_log_level = level;
    core.stats.reloads_failed++;
    pd_log(PD_LOG_ERROR, "msg=\"reload refused; the running configuration is kept\" file=%s error=\"%s\"",
           run_opts->config, cfg_err[0] ? cfg_err : "out of memory");
    pd_config_free(&next);
    return;
  }
  /* Webhooks in the new file and libcurl not loaded yet: load it now,
   * before anything changes (pd_curl.h); if it cannot be, the reload is
   * refused like a file that does not validate. */
  char curl_err[600];
  if (pd_curl_load_for(&next, curl_err, sizeof curl_err) != 0) {
    pd_log_level = level;
    core.stats.reloads_failed++;
    pd_log(PD_LOG_ERROR, "msg=\"reload refused; the running configuration is kept\" file=%s error=\"%s\"",
           run_opts->config, curl_err);
    pd_config_free(&next);
    return;
  }
  pd_reload_summary sum;
  pd_core_set_time(&core, uv_now(server.loop), (uint64_t)time(NULL));
  if (pd_reload_apply(&core, live, &next, &sum) != 0) {
    pd_log_level = level;
    core.stats.reloads_failed++;
    pd_log(PD_LOG_ERROR, "msg=\"reload failed: out of memory; the running configuration is kept\"");
  } else {
    for (size_t i = 0; i < nreload_hooks; i++) reload_hooks[i].fn(&core, &next, reload_hooks[i].ud);
    core.stats.reloads_ok++;
    pd_log(PD_LOG_INFO,
           "msg=\"configuration reloaded\" file=%s apps=%zu added=%zu removed=%zu disabled=%zu enabled=%zu "
           "changed=%zu connections_closed=%zu",
           run_opts->config, live->napps, sum.added, sum.removed, sum.disabled, sum.enabled, sum.changed,
           sum.closed);
  }
  pd_config_free(&next);
}

static void on_signal(uv_signal_t *h, int sig) {
  pd_log(PD_LOG_INFO, "msg=\"signal received\" signal=%d", sig);
  pd_server_shutdown(h->data);
}

static void log_start(const pd_config *cfg, int from_file, const pd_tls_ctx *tls) {
  if (cfg->port)
    pd_log(PD_LOG_INFO, "msg=\"pusherd listening\" host=%s port=%d apps=%zu", cfg->host, cfg->port, cfg->napps);
  if (tls)
    pd_log(PD_LOG_INFO, "msg=\"pusherd listening with TLS\" host=%s tls_port=%d apps=%zu cert=%s %s", cfg->host,
           cfg->tls_port, cfg->napps, cfg->tls_cert, pd_tls_ctx_describe(tls));
  for (size_t i = 0; i < cfg->napps; i++) {
    const pd_app_cfg *a = cfg->apps[i];
    pd_log(PD_LOG_INFO, "msg=\"app\" app_id=%s key=%s secret=%s client_events=%s max_connections=%ld tls_only=%s",
           a->id, a->key, from_file ? "(from config)" : a->secret, a->client_events ? "on" : "off",
           a->max_connections, a->tls_only ? "yes" : "no");
  }
  if (!from_file) {
    const char *scheme = cfg->port ? "ws" : "wss";
    int port = cfg->port ? cfg->port : cfg->tls_port;
    printf("pusherd: development app on %s://%s:%d/app/%s (app id %s, key %s, secret %s, client events %s)\n",
           scheme, cfg->host, port, cfg->apps[0]->key, cfg->apps[0]->id, cfg->apps[0]->key, cfg->apps[0]->secret,
           cfg->apps[0]->client_events ? "on" : "off");
    if (cfg->port && cfg->tls_port)
      printf("pusherd: and with TLS on wss://%s:%d/app/%s\n", cfg->host, cfg->tls_port, cfg->apps[0]->key);
    fflush(stdout);
  }
}

/* Wire the layers and run the loop until shutdown. */
static int run(pd_config *cfg, const opts *o) {
  int from_file = o->config != NULL;
  run_opts = o;
  uv_loop_t *loop = uv_default_loop();
  pd_tls_ctx *tls = NULL;
  /* libcurl only when some app has webhooks (pd_curl.h): an idle pusherd
   * without them neither maps nor initialises it (bench/README.md). */
  char curl_err[600];
  if (pd_curl_load_for(cfg, curl_err, sizeof curl_err) != 0) {
    fprintf(stderr, "pusherd: %s\n", curl_err);
    return 1;
  }
  if (cfg->tls_port) {
    char err[600];
    if (pd_tls_ctx_new(&tls, cfg->tls_cert, cfg->tls_key, err, sizeof err) != 0) {
      fprintf(stderr, "pusherd: TLS: %s\n", err);
      return 1;
    }
  }
  if (pd_core_init(&core, cfg, &pd_adapter_local, NULL) != 0) {
    pd_tls_ctx_free(tls);
    return 1;
  }
  pd_server_init(&server, loop, cfg, &core);
  server.on_shutdown = on_shutdown;
  server.tls_ctx = tls;
#ifdef PUSHERD_HAVE_HIREDIS
  if (cfg->redis_url) {
    if (pd_redis_new(&redis_adapter, loop, &core, cfg->redis_url) != 0) return 1;
    add_reload_hook(redis_reload, redis_adapter);
  }
#endif
  if (pd_whs_new(&webhooks, loop, &core) != 0) return 1;
  add_reload_hook(whs_reload, webhooks);
  if (pd_server_listen(&server) != 0) return 1;
  if (tls && pd_tls_ctx_watch_sighup(tls, loop) != 0) return 1;
  if (cfg->metrics_port) {
    metrics = pd_metrics_new(loop, &core);
    const char *mhost = cfg->metrics_host ? cfg->metrics_host : cfg->host;
    if (!metrics || pd_metrics_listen(metrics, mhost, cfg->metrics_port) != 0) return 1;
    pd_metrics_add_collector(metrics, whs_metrics, webhooks);
#ifdef PUSHERD_HAVE_HIREDIS
    if (redis_adapter) {
      pd_metrics_add_collector(metrics, redis_metrics, redis_adapter);
      pd_metrics_set_ready_check(metrics, redis_ready, redis_adapter);
    }
#endif
  }
  server.on_stop = on_stop;
  uv_signal_init(loop, &sighup);
  uv_signal_start(&sighup, on_sighup, SIGHUP);
  uv_signal_init(loop, &server.sigterm);
  uv_signal_init(loop, &server.sigint);
  server.sigterm.data = server.sigint.data = &server;
  uv_signal_start(&server.sigterm, on_signal, SIGTERM);
  uv_signal_start(&server.sigint, on_signal, SIGINT);
  server.signals_on = 1;
  log_start(cfg, from_file, tls);
  uv_run(loop, UV_RUN_DEFAULT);
  pd_server_free(&server);
  pd_whs_free(webhooks);
  pd_metrics_free(metrics);
#ifdef PUSHERD_HAVE_HIREDIS
  pd_redis_free(redis_adapter);
#endif
  pd_core_free(&core);
  pd_tls_ctx_free(tls);
  uv_loop_close(loop);
  return 0;
}

int main(int argc, char **argv) {
  /* Before --help too: its text is over one stdio buffer, and a reader that
   * stops early (grep -q) must not kill us halfway. */
  signal(SIGPIPE, SIG_IGN);
  pd_log_writer = pd_log_stderr;
  opts o;
  int r = parse_args(argc, argv, &o);
  if (r) return r == 1 ? 0 : r;
  pd_config cfg;
  pd_config_init(&cfg);
  r = build_config(&cfg, &o);
  if (r == 2 && cfg_err[0]) fprintf(stderr, "pusherd: %s\n", cfg_err);
  if (r == 0) r = run(&cfg, &o);
  pd_config_free(&cfg);
  if (r == 0) pd_log(PD_LOG_INFO, "msg=\"pusherd stopped\"");
  return r;
}
