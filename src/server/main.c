/* pusherd: a Pusher Channels (protocol 7) compatible server. */
#include "pusherd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>

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
          "  --port PORT              listen port (env PUSHERD_PORT; default 6001)\n"
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
          "  --log-level LEVEL        debug, info, warn, error, off (default info); logs go to stderr\n"
          "  --help                   this text\n"
          "\n"
          "config file: {\"host\":\"127.0.0.1\",\"port\":6001,\"log_level\":\"info\",\n"
          "  \"redis_url\":\"redis://127.0.0.1:6379\",\n"
          "  \"max_output_queue_bytes\":4194304,\"shutdown_grace_ms\":3000,\"header_timeout_ms\":10000,\n"
          "  \"apps\":[{\"id\":\"..\",\"key\":\"..\",\"secret\":\"..\",\"enabled\":true,\n"
          "    \"client_events\":false,\"user_authentication\":true,\"subscription_count\":true,\n"
          "    \"max_connections\":-1,\"activity_timeout\":120,\"max_event_data_bytes\":10240,\n"
          "    \"max_channels_per_event\":100,\"max_batch_size\":10,\"max_channel_name_length\":200,\n"
          "    \"max_event_name_length\":200,\"max_presence_members\":100,\"max_user_info_bytes\":1024,\n"
          "    \"max_user_id_length\":128,\"client_event_rate\":10,\"cache_ttl\":1800}]}\n"
          "\n"
          "caps: HTTP headers 16 KiB (431) complete within header_timeout_ms of the\n"
          "  connection or of the request's first byte (default 10 s; then 408 and close),\n"
          "  HTTP body 1 MiB (413), WebSocket message 256 KiB\n"
          "  (close 1009), per-connection output queue 4 MiB by default (a client that falls\n"
          "  behind past it is closed with 4100 and may reconnect after a back-off),\n"
          "  1000 channels per connection.\n"
          "SIGTERM/SIGINT: stop accepting, pusher:error 4200 + close 4200 to every client,\n"
          "  drain, exit 0.\n"
          "\n"
          "cluster (--redis): run several pusherd processes (each its own --port, the same\n"
          "  apps) on one Redis behind any load balancer; they act as one app.  Each node\n"
          "  has a random node number, the first part of its socket ids.  Two Redis\n"
          "  connections (subscribe + publish), retried with back-off 0.25..5 s while Redis\n"
          "  is away (local delivery continues; cross-node messages are dropped meanwhile;\n"
          "  state is re-exchanged after reconnecting).  No Redis keys are used: one pub/sub\n"
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

static void on_signal(uv_signal_t *h, int sig) {
  pd_log(PD_LOG_INFO, "msg=\"signal received\" signal=%d", sig);
  pd_server_shutdown(h->data);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  const char *host = getenv("PUSHERD_HOST"), *port = getenv("PUSHERD_PORT");
  const char *app_id = getenv("PUSHERD_APP_ID"), *app_key = getenv("PUSHERD_APP_KEY");
  const char *app_secret = getenv("PUSHERD_APP_SECRET"), *config = NULL;
  const char *max_conns = NULL, *activity = NULL, *pong = NULL;
  const char *redis = getenv("PUSHERD_REDIS_URL");
  int client_events = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--no-client-events") == 0) {
      client_events = 0;
      continue;
    } else if (strcmp(a, "--host") == 0) dst = &host;
    else if (strcmp(a, "--port") == 0) dst = &port;
    else if (strcmp(a, "--app-id") == 0) dst = &app_id;
    else if (strcmp(a, "--app-key") == 0) dst = &app_key;
    else if (strcmp(a, "--app-secret") == 0) dst = &app_secret;
    else if (strcmp(a, "--max-connections") == 0) dst = &max_conns;
    else if (strcmp(a, "--activity-timeout") == 0) dst = &activity;
    else if (strcmp(a, "--pong-timeout") == 0) dst = &pong;
    else if (strcmp(a, "--config") == 0) dst = &config;
    else if (strcmp(a, "--redis") == 0) dst = &redis;
    else if (strcmp(a, "--log-level") == 0) {
      if (i + 1 >= argc || pd_log_level_parse(argv[i + 1]) < 0) {
        fprintf(stderr, "pusherd: --log-level needs one of debug, info, warn, error, off\n");
        return 2;
      }
      pd_log_level = pd_log_level_parse(argv[++i]);
      continue;
    } else {
      fprintf(stderr, "pusherd: unknown option '%s' (see --help)\n", a);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "pusherd: %s needs a value\n", a);
      return 2;
    }
    *dst = argv[++i];
  }

  pd_config cfg;
  pd_config_init(&cfg);
  long v;
  if (config) {
    char err[1024];
    if (pd_config_load_file(&cfg, config, err, sizeof err) != 0) {
      fprintf(stderr, "pusherd: bad config: %s\n", err);
      pd_config_free(&cfg);
      return 2;
    }
  } else {
    pd_app *app = pd_app_new(app_id && *app_id ? app_id : "app-id", app_key && *app_key ? app_key : "app-key",
                             app_secret && *app_secret ? app_secret : "app-secret");
    if (!app || pd_config_add_app(&cfg, app) != 0) return 1;
    app->client_events = client_events;
    if (max_conns) {
      if (parse_long(max_conns, -1, 100000000, &v) != 0) {
        fprintf(stderr, "pusherd: --max-connections needs an integer >= -1\n");
        return 2;
      }
      app->max_connections = v;
    }
    if (activity) {
      if (parse_long(activity, 1, 3600, &v) != 0) {
        fprintf(stderr, "pusherd: --activity-timeout needs 1..3600 seconds\n");
        return 2;
      }
      app->activity_timeout = (int)v;
    }
  }
  if (host) {
    pd_free(cfg.host);
    cfg.host = pd_strdup(host);
  }
  if (port) {
    if (parse_long(port, 0, 65535, &v) != 0) {
      fprintf(stderr, "pusherd: invalid port '%s'\n", port);
      return 2;
    }
    cfg.port = (int)v;
  }
  /* --redis / env beat the config file's "redis_url" */
  if (redis && *redis) {
    pd_free(cfg.redis_url);
    cfg.redis_url = pd_strdup(redis);
  }
  if (cfg.redis_url) {
    char *rh = NULL, *rp = NULL, err[200];
    int rport, rdb;
    if (pd_cluster_parse_url(cfg.redis_url, &rh, &rport, &rp, &rdb, err, sizeof err) != 0) {
      fprintf(stderr, "pusherd: bad Redis URL '%s': %s\n", cfg.redis_url, err);
      pd_config_free(&cfg);
      return 2;
    }
    pd_free(rh);
    pd_free(rp);
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  pd_server_init(&server, loop, &cfg);
  if (pong) {
    if (parse_long(pong, 1, 3600, &v) != 0) {
      fprintf(stderr, "pusherd: --pong-timeout needs 1..3600 seconds\n");
      return 2;
    }
    server.pong_timeout_ms = (int)v * 1000;
  }
  if (cfg.redis_url && pd_cluster_start(&server, cfg.redis_url) != 0) return 1;
  if (pd_server_listen(&server) != 0) return 1;
  uv_signal_init(loop, &server.sigterm);
  uv_signal_init(loop, &server.sigint);
  server.sigterm.data = server.sigint.data = &server;
  uv_signal_start(&server.sigterm, on_signal, SIGTERM);
  uv_signal_start(&server.sigint, on_signal, SIGINT);
  server.signals_on = 1;
  pd_log(PD_LOG_INFO, "msg=\"pusherd listening\" host=%s port=%d apps=%zu", cfg.host, cfg.port, cfg.napps);
  for (size_t i = 0; i < cfg.napps; i++) {
    pd_app *a = cfg.apps[i];
    pd_log(PD_LOG_INFO, "msg=\"app\" app_id=%s key=%s secret=%s client_events=%s max_connections=%ld", a->id, a->key,
           config ? "(from config)" : a->secret, a->client_events ? "on" : "off", a->max_connections);
  }
  if (!config) {
    printf("pusherd: development app on ws://%s:%d/app/%s (app id %s, key %s, secret %s, client events %s)\n",
           cfg.host, cfg.port, cfg.apps[0]->key, cfg.apps[0]->id, cfg.apps[0]->key, cfg.apps[0]->secret,
           cfg.apps[0]->client_events ? "on" : "off");
    fflush(stdout);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  pd_server_free(&server);
  uv_loop_close(loop);
  pd_config_free(&cfg);
  pd_log(PD_LOG_INFO, "msg=\"pusherd stopped\"");
  return 0;
}
