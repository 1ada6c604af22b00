/* Argument helpers shared by the `pusher` subcommands. */
#include "cli.h"

#include <pusher/pusher.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "pusher %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'pusher %s --help'.\n", cmd);
  return CLI_EXIT_USAGE;
}

const char *cli_env(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

int cli_parse_seconds(const char *s, double *out) {
  char *end = NULL;
  if (s == NULL || *s == '\0') return -1;
  /* Plain decimal only: no hex floats, inf or nan, no leading blanks. */
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
          *p == '-'))
      return -1;
  errno = 0;
  double d = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d < 0) return -1;
  *out = d;
  return 0;
}

int cli_parse_long(const char *s, long min, long max, long *out) {
  char *end = NULL;
  if (s == NULL || *s == '\0') return -1;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (p == s && *p == '-'))) return -1;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

int cli_parse_port(const char *s, int *out) {
  long v;
  if (cli_parse_long(s, 1, 65535, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

int cli_strv_push(cli_strv *l, char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) return -1;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return 0;
}

void cli_strv_free(cli_strv *l) {
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

int cli_split_param(char *s, char **k, char **v) {
  char *eq = strchr(s, '=');
  if (eq == NULL || eq == s) return -1;
  *eq = '\0';
  *k = s;
  *v = eq + 1;
  return 0;
}

static int is_tchar(unsigned char c) {
  /* RFC 9110 token characters. */
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int cli_split_header(char *s, char **name, char **value) {
  char *colon = strchr(s, ':');
  if (colon == NULL || colon == s) return -1;
  for (char *p = s; p < colon; p++)
    if (!is_tchar((unsigned char)*p)) return -1;
  *colon = '\0';
  char *v = colon + 1;
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) v[--n] = '\0';
  if (strpbrk(v, "\r\n") != NULL) return -1;
  *name = s;
  *value = v;
  return 0;
}

/* The library names options as in the C API; say the command-line flags. */
void cli_option_names(const char *in, char *out, size_t outlen) {
  static const char *const names[][2] = {
      {"max_reconnect_delay", "--max-reconnect-delay"},
      {"reconnect_delay", "--reconnect-delay"},
      {"activity_timeout", "--activity-timeout"},
      {"pong_timeout", "--pong-timeout"},
      {"unavailable_timeout", "--unavailable-timeout"},
      {"connect_timeout", "--connect-timeout"},
      {"ws_host", "--host"},
      {"ws_port", "--port"},
      {"wss_port", "--port"},
      {"cluster", "--cluster"},
      {"auth_params", "--auth-param"},
      {"auth_headers", "--auth-header"},
      {"ca_file/ca_path", "--ca-file/--ca-path"},
      {"encryption_master_key", "--encryption-master-key"},
      {"auth_origin", "--auth-origin"},
  };
  size_t o = 0;
  while (*in && o + 1 < outlen) {
    size_t i, k = sizeof names / sizeof names[0];
    for (i = 0; i < k; i++) {
      size_t n = strlen(names[i][0]);
      if (strncmp(in, names[i][0], n) == 0) break;
    }
    if (i < k) {
      int w = snprintf(out + o, outlen - o, "%s", names[i][1]);
      if (w < 0 || (size_t)w >= outlen - o) break;
      o += (size_t)w;
      in += strlen(names[i][0]);
    } else {
      out[o++] = *in++;
    }
  }
  out[o] = '\0';
}

/* ------------------------------------------------------------------ pusher bench */

const char cli_bench_help[] =
    "Usage: pusher bench [options] --subscribers N --events M\n"
    "\n"
    "Measure a Pusher Channels server (pusherd, soketi, the hosted service): open N\n"
    "WebSocket subscribers in this process (libpusher clients on one event loop,\n"
    "or on T loops in T threads with --threads T),\n"
    "spread over C public channels PREFIX-0 .. PREFIX-(C-1), wait until all are\n"
    "subscribed, then publish M events through the HTTP API (event i on channel\n"
    "i mod C), each carrying the time it was triggered, and report deliveries/s,\n"
    "connect times, latency from trigger to receipt, losses and, with\n"
    "--server-pid, the server's CPU per delivery and memory.\n"
    "\n"
    "Load:\n"
    "  --subscribers N           WebSocket subscribers (required; 0 = publish only)\n"
    "  --channels C              channels to spread them over, round-robin (default 1)\n"
    "  --events M                events to publish in all (required)\n"
    "  --rate R                  events per second (decimals allowed; default 0 = as\n"
    "                            fast as the server answers)\n"
    "  --batch                   publish through batch_events, 10 events per request\n"
    "  --publishers K            publishing threads, one HTTP connection each\n"
    "                            (default 1; with more, events of different\n"
    "                            publishers may legitimately arrive out of order)\n"
    "  --payload BYTES           pad each event's data with a \"p\" string of BYTES\n"
    "                            characters (default 0; at most 100000)\n"
    "  --stalled N               also open N raw WebSocket subscribers (plain TCP,\n"
    "                            small receive buffer) that subscribe to the channels\n"
    "                            like the others and then never read again; at the\n"
    "                            end report how many the server cut and when, and\n"
    "                            what they got (needs --no-tls; at most 1000; not in\n"
    "                            the latency and loss figures)\n"
    "  --threads T               spread the subscribers over T event loops, each in\n"
    "                            its own thread (subscriber k on loop k mod T;\n"
    "                            default 1, at most 64, no more than N): one loop\n"
    "                            reads one delivery after another, so with many\n"
    "                            subscribers per event it, not the server, sets the\n"
    "                            tail latency; more loops help on spare cores only\n"
    "  --connect-concurrency K   subscribers connecting at the same time (default 100;\n"
    "                            with --threads, split between the loops, at least\n"
    "                            one each)\n"
    "  --connect-timeout S       per subscriber connection attempt (default 15)\n"
    "  --timeout S               give up after S seconds without progress (default 10)\n"
    "  --channel-prefix P        channel name prefix (default bench-<random hex>)\n"
    "\n"
    "Connection (as for pusher trigger and pusher listen):\n"
    "  --app-id ID               app id (env PUSHER_APP_ID; required)\n"
    "  --key KEY                 app key (env PUSHER_APP_KEY; required)\n"
    "  --secret SECRET           app secret (env PUSHER_APP_SECRET; required)\n"
    "  --cluster NAME            cluster: hosts ws-NAME.pusher.com and api-NAME.pusher.com\n"
    "                            (env PUSHER_CLUSTER; default mt1)\n"
    "  --host HOST               WebSocket and API host instead of the cluster's\n"
    "                            (env PUSHER_HOST)\n"
    "  --port PORT               port of both (env PUSHER_PORT; default 443 with TLS, 80\n"
    "                            without)\n"
    "  --tls, --no-tls           TLS (wss/https, the default) or plain ws/http\n"
    "  --ca-file FILE            PEM CA bundle to verify the server with\n"
    "  --insecure                do not verify the server certificate (testing only)\n"
    "\n"
    "Measuring and output:\n"
    "  --server-pid PID          sample the server process (same machine): CPU time\n"
    "                            from /proc/PID/stat, VmRSS and VmHWM from\n"
    "                            /proc/PID/status\n"
    "  --realtime-clock          stamp events with CLOCK_REALTIME (for subscribers on\n"
    "                            other machines, whose clocks must be synchronized)\n"
    "                            instead of CLOCK_MONOTONIC\n"
    "  --json                    print one JSON object (fields in pusher(1))\n"
    "  --progress, --no-progress a progress line on standard error (default: when\n"
    "                            standard error is a terminal)\n"
    "  -h, --help                show this help\n"
    "\n"
    "Event data is {\"i\":SEQ,\"t\":NANOSECONDS}, event name \"bench\".  Latency is\n"
    "measured in this process, from just before the HTTP request to the moment a\n"
    "subscriber's callback sees the event (one clock: no synchronization needed).\n"
    "Exit status: 0 when every subscriber subscribed and every expected delivery\n"
    "arrived once (and in order, with one publisher); 1 on connection failures,\n"
    "HTTP errors, losses, duplicates, reordering or a timeout; 2 for bad usage.\n";

enum {
  B_APP_ID = 256,
  B_KEY,
  B_SECRET,
  B_CLUSTER,
  B_HOST,
  B_PORT,
  B_TLS,
  B_NO_TLS,
  B_CA_FILE,
  B_INSECURE,
  B_SUBSCRIBERS,
  B_CHANNELS,
  B_EVENTS,
  B_RATE,
  B_BATCH,
  B_PUBLISHERS,
  B_CONNECT_CONCURRENCY,
  B_CONNECT_TIMEOUT,
  B_TIMEOUT,
  B_CHANNEL_PREFIX,
  B_PAYLOAD,
  B_STALLED,
  B_THREADS,
  B_SERVER_PID,
  B_REALTIME,
  B_JSON,
  B_PROGRESS,
  B_NO_PROGRESS,
};

static const struct option BENCH_OPTS[] = {
    {"app-id", required_argument, NULL, B_APP_ID},
    {"key", required_argument, NULL, B_KEY},
    {"secret", required_argument, NULL, B_SECRET},
    {"cluster", required_argument, NULL, B_CLUSTER},
    {"host", required_argument, NULL, B_HOST},
    {"port", required_argument, NULL, B_PORT},
    {"tls", no_argument, NULL, B_TLS},
    {"no-tls", no_argument, NULL, B_NO_TLS},
    {"ca-file", required_argument, NULL, B_CA_FILE},
    {"insecure", no_argument, NULL, B_INSECURE},
    {"subscribers", required_argument, NULL, B_SUBSCRIBERS},
    {"channels", required_argument, NULL, B_CHANNELS},
    {"events", required_argument, NULL, B_EVENTS},
    {"rate", required_argument, NULL, B_RATE},
    {"batch", no_argument, NULL, B_BATCH},
    {"publishers", required_argument, NULL, B_PUBLISHERS},
    {"connect-concurrency", required_argument, NULL, B_CONNECT_CONCURRENCY},
    {"connect-timeout", required_argument, NULL, B_CONNECT_TIMEOUT},
    {"timeout", required_argument, NULL, B_TIMEOUT},
    {"channel-prefix", required_argument, NULL, B_CHANNEL_PREFIX},
    {"payload", required_argument, NULL, B_PAYLOAD},
    {"stalled", required_argument, NULL, B_STALLED},
    {"threads", required_argument, NULL, B_THREADS},
    {"server-pid", required_argument, NULL, B_SERVER_PID},
    {"realtime-clock", no_argument, NULL, B_REALTIME},
    {"json", no_argument, NULL, B_JSON},
    {"progress", no_argument, NULL, B_PROGRESS},
    {"no-progress", no_argument, NULL, B_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Limits of the numeric options. */
#define BENCH_MAX_SUBSCRIBERS 1000000L
#define BENCH_MAX_CHANNELS 100000L
#define BENCH_MAX_EVENTS 1000000000L
#define BENCH_MAX_PUBLISHERS 64L
#define BENCH_MAX_PAYLOAD 100000L /* over both pusherd's and soketi's default event cap */
#define BENCH_MAX_STALLED 1000L
#define BENCH_MAX_THREADS 64L

static int bench_long(const char *opt, const char *val, long min, long max, long *out) {
  if (cli_parse_long(val, min, max, out) != 0)
    return cli_usage_error("bench", "--%s: '%s' is not a whole number in %ld..%ld", opt, val, min,
                           max);
  return 0;
}

static int bench_seconds(const char *opt, const char *val, double *out) {
  if (cli_parse_seconds(val, out) != 0 || *out <= 0 || *out > 86400)
    return cli_usage_error("bench", "--%s: '%s' is not a duration in seconds (0 < S <= 86400)",
                           opt, val);
  return 0;
}

int cli_bench_parse(int argc, char **argv, cli_bench_args *a) {
  memset(a, 0, sizeof *a);
  a->tls = 1;
  a->subscribers = a->events = -1;
  a->channels = 1;
  a->publishers = 1;
  a->threads = 1;
  a->connect_concurrency = 100;
  a->connect_timeout = 15;
  a->timeout = 10;
  a->progress = -1;
  a->app_id = cli_env("PUSHER_APP_ID");
  a->key = cli_env("PUSHER_APP_KEY");
  a->secret = cli_env("PUSHER_APP_SECRET");
  a->host = cli_env("PUSHER_HOST");
  a->cluster = cli_env("PUSHER_CLUSTER");
  const char *env_port = cli_env("PUSHER_PORT");
  if (env_port && cli_parse_port(env_port, &a->port) != 0)
    return cli_usage_error("bench", "PUSHER_PORT='%s' is not a port number (1-65535)", env_port);

  optind = 1;
  opterr = 0;
  int c, rc;
  while ((c = getopt_long(argc, argv, ":h", BENCH_OPTS, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(cli_bench_help, stdout);
      return -1;
    case B_APP_ID: a->app_id = optarg; break;
    case B_KEY: a->key = optarg; break;
    case B_SECRET: a->secret = optarg; break;
    case B_CLUSTER: a->cluster = optarg; break;
    case B_HOST: a->host = optarg; break;
    case B_PORT:
      if (cli_parse_port(optarg, &a->port) != 0)
        return cli_usage_error("bench", "--port: '%s' is not a port number (1-65535)", optarg);
      break;
    case B_TLS: a->tls = 1; break;
    case B_NO_TLS: a->tls = 0; break;
    case B_CA_FILE: a->ca_file = optarg; break;
    case B_INSECURE: a->insecure = 1; break;
    case B_SUBSCRIBERS:
      if ((rc = bench_long("subscribers", optarg, 0, BENCH_MAX_SUBSCRIBERS, &a->subscribers)))
        return rc;
      break;
    case B_CHANNELS:
      if ((rc = bench_long("channels", optarg, 1, BENCH_MAX_CHANNELS, &a->channels))) return rc;
      break;
    case B_EVENTS:
      if ((rc = bench_long("events", optarg, 1, BENCH_MAX_EVENTS, &a->events))) return rc;
      break;
    case B_RATE:
      if (cli_parse_seconds(optarg, &a->rate) != 0 || a->rate > 1e7)
        return cli_usage_error("bench",
                               "--rate: '%s' is not a number of events per second (0 = as fast "
                               "as possible, at most 10000000)",
                               optarg);
      break;
    case B_BATCH: a->batch = 1; break;
    case B_PUBLISHERS:
      if ((rc = bench_long("publishers", optarg, 1, BENCH_MAX_PUBLISHERS, &a->publishers)))
        return rc;
      break;
    case B_CONNECT_CONCURRENCY:
      if ((rc = bench_long("connect-concurrency", optarg, 1, 100000, &a->connect_concurrency)))
        return rc;
      break;
    case B_CONNECT_TIMEOUT:
      if ((rc = bench_seconds("connect-timeout", optarg, &a->connect_timeout))) return rc;
      break;
    case B_TIMEOUT:
      if ((rc = bench_seconds("timeout", optarg, &a->timeout))) return rc;
      break;
    case B_CHANNEL_PREFIX: a->channel_prefix = optarg; break;
    case B_PAYLOAD:
      if ((rc = bench_long("payload", optarg, 0, BENCH_MAX_PAYLOAD, &a->payload))) return rc;
      break;
    case B_STALLED:
      if ((rc = bench_long("stalled", optarg, 0, BENCH_MAX_STALLED, &a->stalled))) return rc;
      break;
    case B_THREADS:
      if ((rc = bench_long("threads", optarg, 1, BENCH_MAX_THREADS, &a->threads))) return rc;
      break;
    case B_SERVER_PID:
      if ((rc = bench_long("server-pid", optarg, 1, 0x7fffffffL, &a->server_pid))) return rc;
      break;
    case B_REALTIME: a->realtime = 1; break;
    case B_JSON: a->json = 1; break;
    case B_PROGRESS: a->progress = 1; break;
    case B_NO_PROGRESS: a->progress = 0; break;
    case ':':
      return cli_usage_error("bench", "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt && optopt < 256 && optopt != '?')
        return cli_usage_error("bench", "unknown option '-%c'", optopt);
      return cli_usage_error("bench", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
  if (a->subscribers < 0) return cli_usage_error("bench", "give --subscribers N (0 = publish only)");
  if (a->events < 0) return cli_usage_error("bench", "give --events M");
  if (a->subscribers > 0 && a->channels > a->subscribers)
    return cli_usage_error("bench", "--channels %ld is more than --subscribers %ld", a->channels,
                           a->subscribers);
  if (a->stalled > 0 && a->tls)
    return cli_usage_error("bench", "--stalled works over plain WebSocket only: add --no-tls");
  if (a->stalled > 0 && a->subscribers == 0)
    return cli_usage_error("bench", "--stalled needs --subscribers N > 0 (the ones that read)");
  if (a->app_id == NULL)
    return cli_usage_error("bench", "no app id: use --app-id ID or set PUSHER_APP_ID");
  if (a->key == NULL)
    return cli_usage_error("bench", "no app key: use --key KEY or set PUSHER_APP_KEY");
  if (a->secret == NULL)
    return cli_usage_error("bench", "no app secret: use --secret SECRET or set PUSHER_APP_SECRET");
  if (a->channel_prefix) {
    const char *p = a->channel_prefix;
    /* PREFIX-<index> must be a valid public channel name. */
    if (strlen(p) > 180 || !pusher_channel_name_valid(p))
      return cli_usage_error("bench",
                             "--channel-prefix: '%s' is not 1-180 characters of "
                             "A-Z a-z 0-9 _ - = @ , . ;",
                             p);
    if (strncmp(p, "private-", 8) == 0 || strncmp(p, "presence-", 9) == 0 || p[0] == '#')
      return cli_usage_error("bench",
                             "--channel-prefix: '%s' would name private or presence channels; "
                             "the benchmark uses public channels",
                             p);
  } else {
    /* A prefix of its own per run, so that runs never hear each other. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long r = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20) ^
                      ((unsigned long)getpid() << 8);
    snprintf(a->prefix_buf, sizeof a->prefix_buf, "bench-%08lx", r & 0xffffffffUL);
    a->channel_prefix = a->prefix_buf;
  }
  return 0;
}
