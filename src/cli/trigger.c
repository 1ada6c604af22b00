/* `pusher trigger [options] CHANNEL[,CHANNEL...] EVENT [DATA]`: publish an
 * event through the Pusher HTTP API (POST /apps/<id>/events), or with
 * --batch a stream of events (POST /apps/<id>/batch_events, at most 10 per
 * request).  Built on the public REST client, include/pusher/rest.h, which
 * signs the requests (auth_version 1.0, as the official server SDKs do). */
#include <pusher/channels.h>
#include <pusher/pusher.h>
#include <pusher/rest.h>

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BATCH_MAX 10
#define CHANNELS_MAX 100
#define EVENT_NAME_MAX 200
#define STDIN_MAX (16u * 1024u * 1024u) /* DATA / --batch input cap */
#define REPLY_MAX (1024u * 1024u)

static const char TRIGGER_HELP[] =
    "Usage: pusher trigger [options] CHANNEL[,CHANNEL...] EVENT [DATA]\n"
    "       pusher trigger [options] --batch  < events.jsonl\n"
    "\n"
    "Publish EVENT with DATA on every CHANNEL through the Pusher HTTP API\n"
    "(POST /apps/APP_ID/events).  DATA is sent as the string it is (Pusher event\n"
    "data is a string; a subscriber parses it as JSON when it is JSON).  Without\n"
    "DATA, it is read from standard input (one trailing newline removed).\n"
    "\n"
    "With --batch, standard input holds one JSON object per line,\n"
    "  {\"channel\":\"my-channel\",\"name\":\"my-event\",\"data\":\"...\"[,\"socket_id\":\"1.2\"]}\n"
    "(a non-string data is sent as its JSON text), sent in batches of at most 10\n"
    "(POST /apps/APP_ID/batch_events).  Every line is checked before the first\n"
    "request is made.\n"
    "\n"
    "Options:\n"
    "  --app-id ID         app id (env PUSHER_APP_ID; required)\n"
    "  --key KEY           app key (env PUSHER_APP_KEY; required)\n"
    "  --secret SECRET     app secret (env PUSHER_APP_SECRET; required)\n"
    "  --cluster NAME      cluster: host api-NAME.pusher.com (env PUSHER_CLUSTER;\n"
    "                      default mt1)\n"
    "  --host HOST         API host instead of the cluster's (env PUSHER_HOST)\n"
    "  --port PORT         port (env PUSHER_PORT; default 443 with TLS, 80 without)\n"
    "  --tls, --no-tls     https (the default) or http\n"
    "  --wss-port PORT     the port with TLS (https); beats --port when TLS is on\n"
    "  --ca-file FILE      PEM CA bundle to verify the server with\n"
    "  --insecure          do not verify the server certificate (testing only)\n"
    "  --socket-id ID      exclude the connection with this socket_id\n"
    "  --info ATTRS        ask for channel attributes, e.g. subscription_count\n"
    "  --encryption-master-key B64\n"
    "                      the app's encryption master key (base64 of 32 bytes;\n"
    "                      env PUSHER_ENCRYPTION_MASTER_KEY): needed to trigger on a\n"
    "                      private-encrypted- channel, whose data is encrypted here\n"
    "  --batch             read events as JSON lines from standard input\n"
    "  --timeout S         HTTP timeout in seconds (default 30)\n"
    "  -v, --verbose       print the request line and the HTTP status to stderr\n"
    "  -h, --help          show this help\n"
    "\n"
    "The server's reply body is printed on standard output.  A reply that is not\n"
    "2xx, or a 2xx JSON reply with an \"error\" member (soketi reports errors\n"
    "that way), is a failure: the body is printed on standard error.\n"
    "Event names starting with 'pusher:' or 'pusher_internal:' are reserved by\n"
    "Pusher and refused.\n"
    "Exit status: 0 success, 1 failure (HTTP, network), 2 bad usage.\n";

enum {
  OPT_APP_ID = 256,
  OPT_KEY,
  OPT_SECRET,
  OPT_CLUSTER,
  OPT_HOST,
  OPT_PORT,
  OPT_WSS_PORT,
  OPT_TLS,
  OPT_NO_TLS,
  OPT_CA_FILE,
  OPT_INSECURE,
  OPT_SOCKET_ID,
  OPT_INFO,
  OPT_BATCH,
  OPT_TIMEOUT,
  OPT_MASTER_KEY,
};

static const struct option TRIGGER_OPTS[] = {
    {"app-id", required_argument, NULL, OPT_APP_ID},
    {"key", required_argument, NULL, OPT_KEY},
    {"secret", required_argument, NULL, OPT_SECRET},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"wss-port", required_argument, NULL, OPT_WSS_PORT},
    {"tls", no_argument, NULL, OPT_TLS},
    {"no-tls", no_argument, NULL, OPT_NO_TLS},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"socket-id", required_argument, NULL, OPT_SOCKET_ID},
    {"info", required_argument, NULL, OPT_INFO},
    {"batch", no_argument, NULL, OPT_BATCH},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"encryption-master-key", required_argument, NULL, OPT_MASTER_KEY},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct trigger_args {
  const char *app_id, *key, *secret, *cluster, *host, *ca_file, *socket_id, *info, *master_key;
  int port, wss_port, tls, insecure, batch, verbose;
  double timeout;
  char *channels_arg; /* "a,b,c" (argv, split in place) */
  const char *event, *data;
} trigger_args;

/* ------------------------------------------------------------------ input */

/* Read all of stdin (up to STDIN_MAX).  NULL on error (message printed). */
static char *read_stdin(size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL) return NULL;
  for (;;) {
    if (n + 1 >= cap) {
      if (cap >= STDIN_MAX) {
        fprintf(stderr, "pusher trigger: standard input is larger than %u bytes\n", STDIN_MAX);
        free(buf);
        return NULL;
      }
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        return NULL;
      }
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, stdin);
    n += r;
    if (r == 0) break;
  }
  if (ferror(stdin)) {
    fprintf(stderr, "pusher trigger: cannot read standard input\n");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int valid_event_name(const char *s) {
  size_t n = strlen(s);
  return n > 0 && n <= EVENT_NAME_MAX;
}

/* Event names starting with these are reserved by Pusher. */
static int reserved_event_name(const char *s) {
  return strncmp(s, "pusher:", 7) == 0 || strncmp(s, "pusher_internal:", 16) == 0;
}

/* ------------------------------------------------------------------ HTTP */

static int rest_open(const trigger_args *a, pusher_rest **out) {
  pusher_rest_options o;
  pusher_rest_options_default(&o);
  o.app_id = a->app_id;
  o.key = a->key;
  o.secret = a->secret;
  if (a->cluster) o.cluster = a->cluster;
  o.host = a->host;
  o.port = a->port;
  o.tls = a->tls;
  o.ca_file = a->ca_file;
  o.tls_insecure = a->insecure;
  o.timeout = a->timeout;
  o.max_reply = REPLY_MAX;
  o.encryption_master_key = a->master_key;
  int rc = pusher_rest_new(out, &o);
  if (rc != 0)
    fprintf(stderr, "pusher trigger: cannot create the REST client: %s\n", pusher_strerror(rc));
  return rc;
}

/* Print the outcome of one request.  Returns CLI_EXIT_OK or CLI_EXIT_FAIL. */
static int report(const trigger_args *a, pusher_rest *r, int rv, const pusher_rest_reply *rep) {
  const char *text = rep->body ? rep->body : "";
  size_t tl = rep->body_len;
  int nl = tl > 0 && text[tl - 1] == '\n';
  if (a->verbose && rep->status) fprintf(stderr, "< HTTP %ld\n", rep->status);
  if (rv == PUSHER_ERR_HTTP) {
    fprintf(stderr, "pusher trigger: HTTP %ld: %s%s", rep->status, tl ? text : "(empty reply)",
            nl ? "" : "\n");
    return CLI_EXIT_FAIL;
  }
  if (rv != 0) {
    char msg[600];
    cli_option_names(pusher_rest_error_detail(r), msg, sizeof msg);
    fprintf(stderr, "pusher trigger: %s\n", msg);
    return CLI_EXIT_FAIL;
  }
  printf("%s%s", text, nl || tl == 0 ? "" : "\n");
  fflush(stdout);
  return CLI_EXIT_OK;
}

static void verbose_request(const trigger_args *a, const char *what) {
  if (!a->verbose) return;
  char host[300];
  if (a->host)
    snprintf(host, sizeof host, "%s", a->host);
  else
    snprintf(host, sizeof host, "api-%s.pusher.com", a->cluster ? a->cluster : "mt1");
  fprintf(stderr, "> POST %s://%s:%d/apps/%s/%s\n", a->tls ? "https" : "http", host,
          a->port ? a->port : (a->tls ? 443 : 80), a->app_id, what);
}

/* ------------------------------------------------------------------ requests */

/* DATA from the command line, or all of standard input (one trailing
 * newline removed).  *owned is what to free.  Returns 0 or an exit status. */
static int read_data(const trigger_args *a, const char **data, char **owned) {
  *owned = NULL;
  *data = a->data;
  if (a->data == NULL) {
    size_t len = 0;
    if (isatty(STDIN_FILENO))
      fprintf(stderr, "pusher trigger: reading DATA from standard input (end it with Ctrl-D)\n");
    char *in = read_stdin(&len);
    if (in == NULL) return CLI_EXIT_FAIL;
    if (len > 0 && in[len - 1] == '\n') in[--len] = '\0';
    if (len > 0 && in[len - 1] == '\r') in[--len] = '\0';
    if (strlen(in) != len) {
      fprintf(stderr, "pusher trigger: standard input contains a NUL byte\n");
      free(in);
      return CLI_EXIT_FAIL;
    }
    *data = *owned = in;
  }
  json_t *probe = json_string(*data); /* jansson checks UTF-8 */
  if (probe == NULL) {
    fprintf(stderr, "pusher trigger: DATA is not valid UTF-8\n");
    free(*owned);
    *owned = NULL;
    return a->data ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
  }
  json_decref(probe);
  return 0;
}

static int trigger_one(const trigger_args *a) {
  const char *chans[CHANNELS_MAX];
  char *save = NULL;
  size_t n = 0;
  for (char *ch = strtok_r(a->channels_arg, ",", &save); ch; ch = strtok_r(NULL, ",", &save)) {
    if (!pusher_channel_name_valid(ch))
      return cli_usage_error("trigger",
                             "'%s' is not a valid channel name (1-200 characters of "
                             "A-Z a-z 0-9 _ - = @ , . ;)",
                             ch);
    if (n == CHANNELS_MAX) {
      n++;
      break;
    }
    chans[n++] = ch;
  }
  if (n == 0 || n > CHANNELS_MAX)
    return cli_usage_error("trigger", "give 1 to %d channels, separated by commas", CHANNELS_MAX);

  char *owned = NULL;
  pusher_rest_event ev = {.name = a->event, .socket_id = a->socket_id, .info = a->info};
  int rc = read_data(a, &ev.data, &owned);
  if (rc != 0) return rc;
  pusher_rest *r = NULL;
  if (rest_open(a, &r) != 0) {
    free(owned);
    return CLI_EXIT_FAIL;
  }
  pusher_rest_reply rep;
  verbose_request(a, "events");
  int rv = pusher_rest_trigger(r, chans, n, &ev, &rep);
  rc = report(a, r, rv, &rep);
  pusher_rest_reply_free(&rep);
  pusher_rest_del(r);
  free(owned);
  return rc;
}

/* Send events[0..n) (JSON objects checked by trigger_batch) in batches. */
static int send_batches(const trigger_args *a, json_t *events) {
  pusher_rest *r = NULL;
  if (rest_open(a, &r) != 0) return CLI_EXIT_FAIL;
  int rc = CLI_EXIT_OK;
  size_t total = json_array_size(events);
  for (size_t i = 0; rc == CLI_EXIT_OK && i < total; i += BATCH_MAX) {
    pusher_rest_event evs[BATCH_MAX];
    size_t k = 0;
    for (size_t j = i; j < i + BATCH_MAX && j < total; j++, k++) {
      json_t *o = json_array_get(events, j);
      evs[k] = (pusher_rest_event){
          .channel = json_string_value(json_object_get(o, "channel")),
          .name = json_string_value(json_object_get(o, "name")),
          .data = json_string_value(json_object_get(o, "data")),
          .socket_id = json_string_value(json_object_get(o, "socket_id")),
          .info = a->info,
      };
    }
    pusher_rest_reply rep;
    verbose_request(a, "batch_events");
    int rv = pusher_rest_trigger_batch(r, evs, k, &rep);
    rc = report(a, r, rv, &rep);
    pusher_rest_reply_free(&rep);
  }
  pusher_rest_del(r);
  return rc;
}

/* --batch: parse every line first, then send batches of BATCH_MAX. */
static int trigger_batch(const trigger_args *a) {
  size_t len = 0;
  char *in = read_stdin(&len);
  if (in == NULL) return CLI_EXIT_FAIL;
  json_t *events = json_array();
  int rc = CLI_EXIT_OK;
  size_t lineno = 0;
  char *p = in, *end = in + len;
  while (p < end && rc == CLI_EXIT_OK) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *le = nl ? nl : end;
    lineno++;
    size_t ll = (size_t)(le - p);
    if (ll > 0 && p[ll - 1] == '\r') ll--;
    /* skip blank lines */
    size_t k = 0;
    while (k < ll && (p[k] == ' ' || p[k] == '\t')) k++;
    if (k < ll) {
      json_error_t jerr;
      json_t *o = json_loadb(p, ll, 0, &jerr);
      const char *why = NULL;
      json_t *ch = NULL, *name = NULL, *data = NULL, *sid = NULL;
      if (!json_is_object(o)) {
        why = o ? "not a JSON object" : jerr.text;
      } else {
        ch = json_object_get(o, "channel");
        name = json_object_get(o, "name");
        data = json_object_get(o, "data");
        sid = json_object_get(o, "socket_id");
        if (!json_is_string(ch) || !pusher_channel_name_valid(json_string_value(ch)))
          why = "\"channel\" is missing or not a valid channel name";
        else if (!json_is_string(name) || !valid_event_name(json_string_value(name)))
          why = "\"name\" is missing or not a string of 1-200 characters";
        else if (reserved_event_name(json_string_value(name)))
          why = "\"name\" starts with 'pusher:' or 'pusher_internal:' (reserved by Pusher)";
        else if (data == NULL)
          why = "\"data\" is missing";
        else if (sid && (!json_is_string(sid) || !pusher_socket_id_valid(json_string_value(sid))))
          why = "\"socket_id\" is not of the form 123.456";
      }
      if (why) {
        fprintf(stderr, "pusher trigger: standard input line %zu: %s\n", lineno, why);
        rc = CLI_EXIT_FAIL;
      } else {
        json_t *ev = json_object();
        json_object_set(ev, "channel", ch);
        json_object_set(ev, "name", name);
        if (json_is_string(data)) {
          json_object_set(ev, "data", data);
        } else {
          char *t = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
          json_object_set_new(ev, "data", json_string(t ? t : "null"));
          free(t);
        }
        if (sid)
          json_object_set(ev, "socket_id", sid);
        else if (a->socket_id)
          json_object_set_new(ev, "socket_id", json_string(a->socket_id));
        json_array_append_new(events, ev);
      }
      json_decref(o);
    }
    p = nl ? nl + 1 : end;
  }
  free(in);
  if (rc == CLI_EXIT_OK && json_array_size(events) == 0) {
    fprintf(stderr, "pusher trigger: --batch: no events on standard input\n");
    rc = CLI_EXIT_FAIL;
  }
  if (rc == CLI_EXIT_OK) rc = send_batches(a, events);
  json_decref(events);
  return rc;
}

/* ------------------------------------------------------------------ parsing */

static int parse_args(int argc, char **argv, trigger_args *a) {
  memset(a, 0, sizeof *a);
  a->tls = 1;
  a->timeout = 30;
  a->app_id = cli_env("PUSHER_APP_ID");
  a->key = cli_env("PUSHER_APP_KEY");
  a->secret = cli_env("PUSHER_APP_SECRET");
  a->host = cli_env("PUSHER_HOST");
  a->cluster = cli_env("PUSHER_CLUSTER");
  a->master_key = cli_env("PUSHER_ENCRYPTION_MASTER_KEY");
  const char *env_port = cli_env("PUSHER_PORT");
  if (env_port && cli_parse_port(env_port, &a->port) != 0)
    return cli_usage_error("trigger", "PUSHER_PORT='%s' is not a port number (1-65535)", env_port);

  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":hv", TRIGGER_OPTS, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(TRIGGER_HELP, stdout);
      return -1;
    case 'v': a->verbose = 1; break;
    case OPT_APP_ID: a->app_id = optarg; break;
    case OPT_KEY: a->key = optarg; break;
    case OPT_SECRET: a->secret = optarg; break;
    case OPT_CLUSTER: a->cluster = optarg; break;
    case OPT_HOST: a->host = optarg; break;
    case OPT_PORT:
      if (cli_parse_port(optarg, &a->port) != 0)
        return cli_usage_error("trigger", "--port: '%s' is not a port number (1-65535)", optarg);
      break;
    case OPT_WSS_PORT:
      if (cli_parse_port(optarg, &a->wss_port) != 0)
        return cli_usage_error("trigger", "--wss-port: '%s' is not a port number (1-65535)", optarg);
      break;
    case OPT_TLS: a->tls = 1; break;
    case OPT_NO_TLS: a->tls = 0; break;
    case OPT_CA_FILE: a->ca_file = optarg; break;
    case OPT_INSECURE: a->insecure = 1; break;
    case OPT_SOCKET_ID:
      if (!pusher_socket_id_valid(optarg))
        return cli_usage_error("trigger", "--socket-id: '%s' is not of the form 123.456", optarg);
      a->socket_id = optarg;
      break;
    case OPT_INFO: a->info = optarg; break;
    case OPT_BATCH: a->batch = 1; break;
    case OPT_MASTER_KEY: a->master_key = optarg; break;
    case OPT_TIMEOUT:
      if (cli_parse_seconds(optarg, &a->timeout) != 0 || a->timeout <= 0 || a->timeout > 86400)
        return cli_usage_error("trigger", "--timeout: '%s' is not a duration in seconds", optarg);
      break;
    case ':':
      return cli_usage_error("trigger", "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt && optopt < 256 && optopt != '?')
        return cli_usage_error("trigger", "unknown option '-%c'", optopt);
      return cli_usage_error("trigger", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (a->tls && a->wss_port) a->port = a->wss_port;
  int npos = argc - optind;
  if (a->batch) {
    if (npos != 0)
      return cli_usage_error("trigger", "--batch takes no CHANNEL/EVENT/DATA arguments");
  } else {
    if (npos < 2) return cli_usage_error("trigger", "give CHANNEL[,CHANNEL...] and EVENT");
    if (npos > 3) return cli_usage_error("trigger", "too many arguments (DATA must be one argument)");
    a->channels_arg = argv[optind];
    a->event = argv[optind + 1];
    a->data = npos == 3 ? argv[optind + 2] : NULL;
    if (!valid_event_name(a->event))
      return cli_usage_error("trigger", "EVENT must be 1-%d characters", EVENT_NAME_MAX);
    if (reserved_event_name(a->event))
      return cli_usage_error("trigger",
                             "EVENT '%s': names starting with 'pusher:' or 'pusher_internal:' "
                             "are reserved by Pusher",
                             a->event);
  }
  if (a->app_id == NULL)
    return cli_usage_error("trigger", "no app id: use --app-id ID or set PUSHER_APP_ID");
  if (a->key == NULL)
    return cli_usage_error("trigger", "no app key: use --key KEY or set PUSHER_APP_KEY");
  if (a->secret == NULL)
    return cli_usage_error("trigger", "no app secret: use --secret SECRET or set PUSHER_APP_SECRET");
  for (const char *p = a->app_id; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          *p == '-' || *p == '_' || *p == '.'))
      return cli_usage_error("trigger", "app id '%s' has characters other than A-Z a-z 0-9 - _ .",
                             a->app_id);
  if (strlen(a->app_id) > 128) return cli_usage_error("trigger", "app id is too long");
  char probe[45];
  if (a->master_key && pusher_shared_secret("private-encrypted-x", a->master_key, probe) != 0)
    return cli_usage_error("trigger", "--encryption-master-key: not base64 of 32 bytes");
  return 0;
}

int cli_trigger(int argc, char **argv) {
  trigger_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0) return rc < 0 ? CLI_EXIT_OK : rc;
  return a.batch ? trigger_batch(&a) : trigger_one(&a);
}
