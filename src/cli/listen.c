/* `pusher listen [options] CHANNEL...`: subscribe and print what arrives.
 *
 * Runs the client in loop mode on a libuv loop owned by this file, with
 * uv_signal_t handlers for SIGINT/SIGTERM.  Output goes to stdout, one line
 * per happening, flushed per line; with --json each line is one JSON object
 * built with jansson (see print_* below and `pusher listen --help`).
 *
 * --stdin: standard input is read on the same loop (uv_pipe_t for a pipe,
 * FIFO or socket, uv_tty_t for a terminal, uv_fs_read for a regular file or
 * device), split into lines, and each line is sent with pusher_trigger(). */
#include <pusher/channels.h>
#include <pusher/pusher.h>

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"

static const char LISTEN_HELP[] =
    "Usage: pusher listen [options] CHANNEL...\n"
    "\n"
    "Connect to a Pusher Channels service, subscribe to every CHANNEL and print\n"
    "connection state changes, subscriptions and events until interrupted\n"
    "(SIGINT/SIGTERM disconnect cleanly and exit 0).\n"
    "\n"
    "Connection:\n"
    "  --key KEY                 app key (env PUSHER_APP_KEY; required)\n"
    "  --cluster NAME            cluster: host ws-NAME.pusher.com (env PUSHER_CLUSTER;\n"
    "                            default mt1)\n"
    "  --host HOST               WebSocket host instead of the cluster's (env PUSHER_HOST)\n"
    "  --port PORT               port (env PUSHER_PORT; default 443 with TLS, 80 without)\n"
    "  --tls, --no-tls           use TLS (wss, the default) or plain ws\n"
    "  --wss-port PORT           TLS port (default 443, or --port with --tls): used\n"
    "                            with --tls, and after --no-tls when the server answers\n"
    "                            4000 (TLS only) and the client switches to TLS\n"
    "  --ca-file FILE            PEM CA bundle to verify the server with\n"
    "  --ca-path DIR             directory of CA certificates\n"
    "  --insecure                do not verify the server certificate (testing only)\n"
    "  --watch-network           follow network up/down events (Linux netlink)\n"
    "\n"
    "Timing (seconds, decimals allowed):\n"
    "  --reconnect-delay S       first retry delay (default 5)\n"
    "  --max-reconnect-delay S   back-off ceiling (default 10)\n"
    "  --activity-timeout S      inbound silence before a ping (default 120)\n"
    "  --pong-timeout S          wait this long for the pong (default 30)\n"
    "  --unavailable-timeout S   not connected this long => unavailable (default 30)\n"
    "  --connect-timeout S       per connection attempt (default 15)\n"
    "\n"
    "Channel authorization (private-/presence- channels) and user sign-in:\n"
    "  --auth-endpoint URL       authorization endpoint (default /pusher/auth)\n"
    "  --auth-transport T        ajax (POST form, default) or jsonp (GET query with\n"
    "                            the parameters and callback=NAME; no headers)\n"
    "  --auth-param K=V          extra parameter sent to the endpoints (repeatable)\n"
    "  --auth-header 'N: V'      extra HTTP header sent to the endpoints (repeatable;\n"
    "                            ajax only)\n"
    "  --auth-origin URL         base URL for a relative --auth-endpoint and\n"
    "                            --user-auth-endpoint\n"
    "  --user-auth-endpoint URL  user authentication endpoint (default /pusher/user-auth)\n"
    "                            (--auth-param/--auth-header/--auth-transport apply too)\n"
    "  --signin                  sign in after connecting (and after every reconnect):\n"
    "                            prints signed_in, then the events of the user's\n"
    "                            #server-to-user-<id> channel as event lines\n"
    "\n"
    "Client events:\n"
    "  --stdin                   read JSON lines from standard input, each sent as a\n"
    "                            client event:\n"
    "                              {\"channel\":\"private-x\",\"event\":\"client-typing\",\"data\":{..}}\n"
    "                            (data optional, default {}; the channel must be one of\n"
    "                            the CHANNELs, private- or presence-).  Reading starts\n"
    "                            once every CHANNEL's subscription has succeeded or\n"
    "                            failed; blank lines are skipped; a line that cannot be\n"
    "                            sent prints an error line naming it (\"line\":N); the\n"
    "                            end of input stops reading, not listening\n"
    "\n"
    "Output:\n"
    "  --json                    one JSON object per line (see below)\n"
    "  --count N                 exit 0 after N events (pusher:* events such as\n"
    "                            pusher:subscription_count are printed, not counted)\n"
    "  -h, --help                show this help\n"
    "\n"
    "Human-readable lines by default.  With --json every line has \"t\" (seconds\n"
    "since start) and \"type\":\n"
    "  {\"type\":\"state\",\"previous\":P,\"current\":C[,\"socket_id\":S]}  (socket_id when connected)\n"
    "  {\"type\":\"connecting_in\",\"delay\":SECONDS}\n"
    "  {\"type\":\"error\",\"code\":N|null,\"message\":M,\"fatal\":BOOL,\"error\":NAME}\n"
    "      code is the Pusher/WebSocket close code, null for transport errors\n"
    "  {\"type\":\"error\",\"code\":null,\"message\":M,\"fatal\":false,\"error\":NAME,\n"
    "   \"source\":\"stdin\",\"line\":N}   a --stdin line N that was not sent (M says why)\n"
    "  {\"type\":\"subscribed\",\"channel\":C}\n"
    "  {\"type\":\"subscription_error\",\"channel\":C,\"status\":N|null,\"message\":M}\n"
    "      status is the auth endpoint's HTTP status (e.g. 403), null when none\n"
    "  {\"type\":\"members\",\"channel\":C,\"count\":N,\"me\":{\"user_id\":U,\"user_info\":I}|null}\n"
    "      after a presence- subscription succeeded (I is JSON, null when absent)\n"
    "  {\"type\":\"member_added\",\"channel\":C,\"user_id\":U,\"user_info\":I}\n"
    "  {\"type\":\"member_removed\",\"channel\":C,\"user_id\":U}\n"
    "  {\"type\":\"signed_in\",\"user_id\":U}\n"
    "  {\"type\":\"signin_error\",\"status\":N|null,\"message\":M}\n"
    "  {\"type\":\"event\",\"channel\":C,\"event\":E,\"data\":D[,\"user_id\":U]}\n"
    "      D is the data parsed as JSON when it is JSON, else the string; user_id is\n"
    "      the sender of a client event on a presence channel; events sent to the\n"
    "      signed-in user have channel \"#server-to-user-<id>\"\n"
    "\n"
    "Exit status: 0 after --count events or on SIGINT/SIGTERM; 1 after a fatal\n"
    "error (the last lines are the error and the state change into disconnected\n"
    "or failed); 2 for bad usage.\n";

enum {
  OPT_KEY = 256,
  OPT_CLUSTER,
  OPT_HOST,
  OPT_PORT,
  OPT_WSS_PORT,
  OPT_TLS,
  OPT_NO_TLS,
  OPT_CA_FILE,
  OPT_CA_PATH,
  OPT_INSECURE,
  OPT_WATCH_NETWORK,
  OPT_RECONNECT_DELAY,
  OPT_MAX_RECONNECT_DELAY,
  OPT_ACTIVITY_TIMEOUT,
  OPT_PONG_TIMEOUT,
  OPT_UNAVAILABLE_TIMEOUT,
  OPT_CONNECT_TIMEOUT,
  OPT_AUTH_ENDPOINT,
  OPT_AUTH_TRANSPORT,
  OPT_AUTH_PARAM,
  OPT_AUTH_HEADER,
  OPT_AUTH_ORIGIN,
  OPT_USER_AUTH_ENDPOINT,
  OPT_SIGNIN,
  OPT_STDIN,
  OPT_JSON,
  OPT_COUNT,
};

static const struct option LISTEN_OPTS[] = {
    {"key", required_argument, NULL, OPT_KEY},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"wss-port", required_argument, NULL, OPT_WSS_PORT},
    {"tls", no_argument, NULL, OPT_TLS},
    {"no-tls", no_argument, NULL, OPT_NO_TLS},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"ca-path", required_argument, NULL, OPT_CA_PATH},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"watch-network", no_argument, NULL, OPT_WATCH_NETWORK},
    {"reconnect-delay", required_argument, NULL, OPT_RECONNECT_DELAY},
    {"max-reconnect-delay", required_argument, NULL, OPT_MAX_RECONNECT_DELAY},
    {"activity-timeout", required_argument, NULL, OPT_ACTIVITY_TIMEOUT},
    {"pong-timeout", required_argument, NULL, OPT_PONG_TIMEOUT},
    {"unavailable-timeout", required_argument, NULL, OPT_UNAVAILABLE_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"auth-endpoint", required_argument, NULL, OPT_AUTH_ENDPOINT},
    {"auth-transport", required_argument, NULL, OPT_AUTH_TRANSPORT},
    {"auth-param", required_argument, NULL, OPT_AUTH_PARAM},
    {"auth-header", required_argument, NULL, OPT_AUTH_HEADER},
    {"auth-origin", required_argument, NULL, OPT_AUTH_ORIGIN},
    {"user-auth-endpoint", required_argument, NULL, OPT_USER_AUTH_ENDPOINT},
    {"signin", no_argument, NULL, OPT_SIGNIN},
    {"stdin", no_argument, NULL, OPT_STDIN},
    {"json", no_argument, NULL, OPT_JSON},
    {"count", required_argument, NULL, OPT_COUNT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Everything the command line says, before it becomes client options. */
typedef struct listen_args {
  const char *key, *cluster, *host, *ca_file, *ca_path;
  int port;      /* 0 = default */
  int wss_port;  /* 0 = default (443, or port with TLS) */
  int tls;       /* 1 (default) or 0 */
  int insecure, watch_network, json;
  int signin, use_stdin;
  long count;    /* 0 = unlimited */
  /* durations: < 0 = library default */
  double reconnect_delay, max_reconnect_delay, activity_timeout, pong_timeout,
      unavailable_timeout, connect_timeout;
  const char *auth_endpoint, *auth_origin, *user_auth_endpoint;
  int auth_transport; /* -1 = default */
  pusher_kv *auth_params, *auth_headers;
  size_t n_auth_params, n_auth_headers;
  cli_strv channels;
} listen_args;

/* Longest --stdin line accepted (client event data is capped at 10 KiB). */
#define STDIN_MAX_LINE 65536

/* --stdin: the reader of fd 0. */
typedef struct stdin_reader {
  enum { IN_NONE, IN_PIPE, IN_TTY, IN_FILE } kind;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h;
  uv_fs_t fs;        /* IN_FILE: the read in flight */
  int fs_pending;    /* fs is in flight */
  int open;          /* h is initialized and not closed yet */
  int started;       /* reading was started */
  int done;          /* EOF or read error: nothing more to read */
  char rbuf[16384];  /* read buffer */
  char *line;        /* the line being assembled */
  size_t len, cap;
  int overlong;      /* the current line went over STDIN_MAX_LINE */
  long lineno;       /* lines seen so far */
} stdin_reader;

/* Run-time state of one `pusher listen`. */
typedef struct listener {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  pusher_client *client;
  const listen_args *args;
  uint64_t t0;    /* uv_hrtime() at start */
  long events;    /* event lines printed */
  int fatal_seen; /* a fatal error was reported */
  int finishing;  /* finish() was called */
  int disconnect_on_finish;
  int exit_rc;
  int quiet;      /* print nothing more */
  unsigned char *settled; /* per CHANNEL: first subscription outcome seen */
  size_t n_settled;
  stdin_reader in;
} listener;

/* ------------------------------------------------------------------ finishing */

/* Stop the loop; main code then disconnects (if asked), deletes the client
 * and closes the signal handles. */
static void finish(listener *l, int rc, int disconnect) {
  if (l->finishing) return;
  l->finishing = 1;
  l->exit_rc = rc;
  l->disconnect_on_finish = disconnect;
  uv_stop(&l->loop);
}

/* ------------------------------------------------------------------ output */

/* Round a non-negative number of seconds to a multiple of 1/scale (no libm). */
static double round_to(double d, double scale) {
  if (d < 0) return -round_to(-d, scale);
  return (double)(long long)(d * scale + 0.5) / scale;
}

static double elapsed(const listener *l) {
  return round_to((double)(uv_hrtime() - l->t0) / 1e9, 1e3);
}

static double round_ms(double d) { return round_to(d, 1e3); }

/* A JSON string from n bytes of possibly invalid UTF-8: as is when valid,
 * else with each invalid byte replaced by U+FFFD. */
static json_t *json_text(const char *s, size_t n) {
  json_t *j = json_stringn(s, n);
  if (j) return j;
  char *buf = malloc(n * 3 + 1);
  if (buf == NULL) return json_string("");
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    json_t *probe = (len > 0 && i + len <= n) ? json_stringn(s + i, len) : NULL;
    if (probe) {
      json_decref(probe);
      memcpy(buf + o, s + i, len);
      o += len;
      i += len;
    } else {
      memcpy(buf + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    }
  }
  j = json_stringn(buf, o);
  free(buf);
  return j ? j : json_string("");
}

/* After each line: when stdout is gone (e.g. `pusher listen | head -3`),
 * there is nobody to print for: disconnect and exit 0. */
static void check_output(listener *l) {
  if (fflush(stdout) == EOF || ferror(stdout)) {
    l->quiet = 1;
    finish(l, CLI_EXIT_OK, 1);
  }
}

static void emit_json(listener *l, json_t *o) {
  if (o == NULL) return;
  if (!l->quiet) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (s) {
      fputs(s, stdout);
      fputc('\n', stdout);
      free(s);
      check_output(l);
    }
  }
  json_decref(o);
}

/* {"t":..,"type":type} */
static json_t *json_line(listener *l, const char *type) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  json_object_set_new(o, "t", json_real(elapsed(l)));
  json_object_set_new(o, "type", json_string(type));
  return o;
}

static void human(listener *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void human(listener *l, const char *fmt, ...) {
  if (l->quiet) return;
  va_list ap;
  printf("[%9.3f] ", elapsed(l));
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  check_output(l);
}

/* ------------------------------------------------------------------ callbacks */

static void on_connection(pusher_client *c, const pusher_connection_event *ev, void *user) {
  listener *l = user;
  (void)c;
  if (strcmp(ev->name, "state_change") == 0) {
    const char *prev = pusher_state_name(ev->previous), *cur = pusher_state_name(ev->current);
    int connected = ev->current == PUSHER_STATE_CONNECTED && ev->socket_id != NULL;
    if (l->args->json) {
      json_t *o = json_line(l, "state");
      json_object_set_new(o, "previous", json_string(prev));
      json_object_set_new(o, "current", json_string(cur));
      if (connected) json_object_set_new(o, "socket_id", json_string(ev->socket_id));
      emit_json(l, o);
    } else if (connected) {
      human(l, "state: %s -> %s (socket_id %s)", prev, cur, ev->socket_id);
    } else {
      human(l, "state: %s -> %s", prev, cur);
    }
    if (l->finishing) return;
    /* Nothing will reconnect from here on: exit 1 (or 0 when we asked). */
    if (ev->current == PUSHER_STATE_FAILED || ev->current == PUSHER_STATE_DISCONNECTED)
      finish(l, CLI_EXIT_FAIL, 0);
  } else if (strcmp(ev->name, "connecting_in") == 0) {
    if (l->args->json) {
      json_t *o = json_line(l, "connecting_in");
      json_object_set_new(o, "delay", json_real(round_ms(ev->delay)));
      emit_json(l, o);
    } else {
      human(l, "connecting in %.3f s", ev->delay);
    }
  } else if (strcmp(ev->name, "error") == 0) {
    if (ev->fatal) l->fatal_seen = 1;
    const char *msg = ev->message ? ev->message : pusher_strerror(ev->error);
    if (l->args->json) {
      json_t *o = json_line(l, "error");
      json_object_set_new(o, "code", ev->code ? json_integer(ev->code) : json_null());
      json_object_set_new(o, "message", json_text(msg, strlen(msg)));
      json_object_set_new(o, "fatal", json_boolean(ev->fatal));
      json_object_set_new(o, "error", json_string(pusher_err_name(ev->error)));
      emit_json(l, o);
    } else if (ev->code) {
      human(l, "error %d%s: %s", ev->code, ev->fatal ? " (fatal)" : "", msg);
    } else {
      human(l, "error%s: %s (%s)", ev->fatal ? " (fatal)" : "", msg, pusher_err_name(ev->error));
    }
  }
}

/* JSON text from the library (user_info, ...) as a JSON value; NULL => null. */
static json_t *json_from_text(const char *s, size_t n) {
  if (s == NULL) return json_null();
  json_t *j = json_loadb(s, n, JSON_DECODE_ANY, NULL);
  return j ? j : json_text(s, n);
}

/* "pusher:subscription_error" / "pusher:signin_error" data:
 * {"type":..,"error":..,"status":..}.  channel NULL for a sign-in error. */
static void print_auth_error(listener *l, const char *type, const char *channel, const pusher_event *ev) {
  json_t *d = ev->data ? json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, NULL) : NULL;
  json_t *status = json_is_object(d) ? json_object_get(d, "status") : NULL;
  json_t *err = json_is_object(d) ? json_object_get(d, "error") : NULL;
  const char *msg = json_is_string(err) ? json_string_value(err) : NULL;
  if (msg == NULL && json_is_object(err) && json_is_string(json_object_get(err, "message")))
    msg = json_string_value(json_object_get(err, "message"));
  const char *what = channel ? "subscription failed" : "sign-in failed";
  if (l->args->json) {
    json_t *o = json_line(l, type);
    if (channel) json_object_set_new(o, "channel", json_text(channel, strlen(channel)));
    json_object_set_new(o, "status", json_is_integer(status) ? json_integer(json_integer_value(status))
                                                              : json_null());
    if (msg)
      json_object_set_new(o, "message", json_text(msg, strlen(msg)));
    else if (ev->data)
      json_object_set_new(o, "message", json_text(ev->data, ev->data_len));
    else
      json_object_set_new(o, "message", json_string(what));
    emit_json(l, o);
  } else {
    const char *label = channel ? "subscription error: " : "sign-in error";
    const char *m = msg ? msg : ev->data ? ev->data : what;
    if (json_is_integer(status))
      human(l, "%s%s (status %lld): %s", label, channel ? channel : "",
            (long long)json_integer_value(status), m);
    else
      human(l, "%s%s: %s", label, channel ? channel : "", m);
  }
  json_decref(d);
}

/* After a presence subscription succeeded: the members snapshot. */
static void print_members(listener *l, const char *channel) {
  pusher_members *m = NULL;
  int r = pusher_channel_members(l->client, channel, &m);
  if (r != 0) {
    if (l->args->json) {
      json_t *o = json_line(l, "error");
      char msg[300];
      snprintf(msg, sizeof msg, "cannot read the members of %s: %s", channel, pusher_strerror(r));
      json_object_set_new(o, "code", json_null());
      json_object_set_new(o, "message", json_text(msg, strlen(msg)));
      json_object_set_new(o, "fatal", json_false());
      json_object_set_new(o, "error", json_string(pusher_err_name(r)));
      emit_json(l, o);
    } else {
      human(l, "error: cannot read the members of %s: %s", channel, pusher_strerror(r));
    }
    return;
  }
  size_t n = pusher_members_count(m);
  const pusher_member *me = pusher_members_me(m);
  if (l->args->json) {
    json_t *o = json_line(l, "members");
    json_object_set_new(o, "channel", json_text(channel, strlen(channel)));
    json_object_set_new(o, "count", json_integer((json_int_t)n));
    if (me) {
      json_t *mo = json_object();
      json_object_set_new(mo, "user_id", json_text(me->user_id, strlen(me->user_id)));
      json_object_set_new(mo, "user_info",
                          json_from_text(me->user_info, me->user_info ? strlen(me->user_info) : 0));
      json_object_set_new(o, "me", mo);
    } else {
      json_object_set_new(o, "me", json_null());
    }
    emit_json(l, o);
  } else if (!l->quiet) {
    printf("[%9.3f] members of %s: %zu (me: %s)", elapsed(l), channel, n, me ? me->user_id : "unknown");
    for (size_t i = 0; i < n; i++) {
      const pusher_member *mb = pusher_members_at(m, i);
      if (mb) printf("%s%s", i ? ", " : ": ", mb->user_id);
    }
    fputc('\n', stdout);
    check_output(l);
  }
  pusher_members_free(m);
}

/* "pusher:member_added" {"user_id":..,"user_info":..} / "pusher:member_removed" {"user_id":..}. */
static void print_member(listener *l, const pusher_event *ev, int added) {
  json_t *d = ev->data ? json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, NULL) : NULL;
  json_t *id = json_is_object(d) ? json_object_get(d, "user_id") : NULL;
  json_t *info = json_is_object(d) ? json_object_get(d, "user_info") : NULL;
  const char *uid = json_is_string(id) ? json_string_value(id) : "";
  if (l->args->json) {
    json_t *o = json_line(l, added ? "member_added" : "member_removed");
    json_object_set_new(o, "channel", json_text(ev->channel, strlen(ev->channel)));
    json_object_set_new(o, "user_id", json_text(uid, strlen(uid)));
    if (added) json_object_set_new(o, "user_info", info ? json_incref(info) : json_null());
    emit_json(l, o);
  } else if (added && info && !json_is_null(info)) {
    char *is = json_dumps(info, JSON_COMPACT | JSON_ENCODE_ANY);
    human(l, "member added: %s %s %s", ev->channel, uid, is ? is : "");
    free(is);
  } else {
    human(l, "member %s: %s %s", added ? "added" : "removed", ev->channel, uid);
  }
  json_decref(d);
}

static void stdin_start(listener *l);

/* The first outcome of CHANNEL's subscription; --stdin starts after all. */
static void settle(listener *l, const char *channel) {
  size_t left = 0;
  for (size_t i = 0; i < l->n_settled; i++) {
    if (!l->settled[i] && strcmp(l->args->channels.v[i], channel) == 0) l->settled[i] = 1;
    if (!l->settled[i]) left++;
  }
  if (left == 0 && l->args->use_stdin && !l->in.started) stdin_start(l);
}

static void on_event(pusher_client *c, const pusher_event *ev, void *user) {
  listener *l = user;
  (void)c;
  if (l->finishing || ev->channel == NULL || ev->event == NULL) return;
  if (strcmp(ev->event, "pusher:subscription_succeeded") == 0) {
    if (l->args->json) {
      json_t *o = json_line(l, "subscribed");
      json_object_set_new(o, "channel", json_text(ev->channel, strlen(ev->channel)));
      emit_json(l, o);
    } else {
      human(l, "subscribed: %s", ev->channel);
    }
    if (strncmp(ev->channel, "presence-", 9) == 0 && !l->finishing) print_members(l, ev->channel);
    if (!l->finishing) settle(l, ev->channel);
    return;
  }
  if (strcmp(ev->event, "pusher:subscription_error") == 0) {
    print_auth_error(l, "subscription_error", ev->channel, ev);
    if (!l->finishing) settle(l, ev->channel);
    return;
  }
  if (strcmp(ev->event, "pusher:member_added") == 0) {
    print_member(l, ev, 1);
    return;
  }
  if (strcmp(ev->event, "pusher:member_removed") == 0) {
    print_member(l, ev, 0);
    return;
  }
  /* Already reported as a connection `error`. */
  if (strcmp(ev->event, "pusher:error") == 0) return;

  if (l->args->json) {
    json_t *o = json_line(l, "event");
    json_object_set_new(o, "channel", json_text(ev->channel, strlen(ev->channel)));
    json_object_set_new(o, "event", json_text(ev->event, strlen(ev->event)));
    json_t *data = NULL;
    if (ev->data && ev->data_is_json) data = json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, NULL);
    if (data == NULL) data = ev->data ? json_text(ev->data, ev->data_len) : json_null();
    json_object_set_new(o, "data", data);
    if (ev->user_id) json_object_set_new(o, "user_id", json_text(ev->user_id, strlen(ev->user_id)));
    emit_json(l, o);
  } else if (ev->user_id) {
    human(l, "event %s %s (user %s): %.*s", ev->channel, ev->event, ev->user_id,
          (int)(ev->data ? ev->data_len : 0), ev->data ? ev->data : "");
  } else {
    human(l, "event %s %s: %.*s", ev->channel, ev->event, (int)(ev->data ? ev->data_len : 0),
          ev->data ? ev->data : "");
  }
  /* --count counts application events, not pusher:subscription_count and
   * other pusher: notifications. */
  if (strncmp(ev->event, "pusher:", 7) == 0) return;
  l->events++;
  if (l->args->count > 0 && l->events >= l->args->count) finish(l, CLI_EXIT_OK, 1);
}

/* --signin: "pusher:signin_success" / "pusher:signin_error" (user bindings;
 * the #server-to-user-<id> events arrive through on_event). */
static void on_user(pusher_client *c, const pusher_event *ev, void *user) {
  listener *l = user;
  if (l->finishing || ev->event == NULL) return;
  if (strcmp(ev->event, "pusher:signin_success") == 0) {
    char id[256];
    if (pusher_user_id(c, id, sizeof id) != 0) {
      /* not expected: the library checked the user_data's id */
      json_t *d = ev->data ? json_loadb(ev->data, ev->data_len, 0, NULL) : NULL;
      json_t *j = json_is_object(d) ? json_object_get(d, "id") : NULL;
      snprintf(id, sizeof id, "%s", json_is_string(j) ? json_string_value(j) : "");
      json_decref(d);
    }
    if (l->args->json) {
      json_t *o = json_line(l, "signed_in");
      json_object_set_new(o, "user_id", json_text(id, strlen(id)));
      emit_json(l, o);
    } else {
      human(l, "signed in as %s (events to the user on #server-to-user-%s)", id, id);
    }
  } else if (strcmp(ev->event, "pusher:signin_error") == 0) {
    print_auth_error(l, "signin_error", NULL, ev);
  }
}

/* ------------------------------------------------------------------ --stdin */

/* A --stdin line that was not sent: an `error` line naming it (lineno 0 =
 * about standard input itself). */
static void stdin_error(listener *l, long lineno, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void stdin_error(listener *l, long lineno, int err, const char *fmt, ...) {
  char why[600], msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (lineno > 0)
    snprintf(msg, sizeof msg, "stdin line %ld: %s", lineno, why);
  else
    snprintf(msg, sizeof msg, "stdin: %s", why);
  if (l->args->json) {
    json_t *o = json_line(l, "error");
    json_object_set_new(o, "code", json_null());
    json_object_set_new(o, "message", json_text(msg, strlen(msg)));
    json_object_set_new(o, "fatal", json_false());
    json_object_set_new(o, "error", json_string(pusher_err_name(err)));
    json_object_set_new(o, "source", json_string("stdin"));
    json_object_set_new(o, "line", lineno > 0 ? json_integer(lineno) : json_null());
    emit_json(l, o);
  } else {
    human(l, "error: %s", msg);
  }
}

/* Why pusher_trigger() refused, in the words of the command line. */
static const char *trigger_reason(int err) {
  switch (err) {
  case PUSHER_ERR_BAD_EVENT_NAME:
    return "client event names must start with \"client-\" (at most 200 bytes)";
  case PUSHER_ERR_NOT_FOUND: return "not subscribed to this channel (name it as a CHANNEL argument)";
  case PUSHER_ERR_UNSUPPORTED:
    return "client events need a private- or presence- channel (not public, not private-encrypted-)";
  case PUSHER_ERR_INVALID_STATE: return "not connected, or the subscription has not succeeded";
  case PUSHER_ERR_INVALID_ARGUMENT: return "\"data\" is not valid JSON";
  case PUSHER_ERR_TOO_LARGE: return "\"data\" is over 10 KiB";
  case PUSHER_ERR_RATE_LIMIT: return "more than 10 client events within one second";
  default: return pusher_strerror(err);
  }
}

/* One complete line (without its newline). */
static void stdin_line(listener *l, char *s, size_t n) {
  long no = l->in.lineno;
  if (n > 0 && s[n - 1] == '\r') n--;
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i == n) return; /* blank */
  json_error_t jerr;
  json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
  if (o == NULL) {
    stdin_error(l, no, PUSHER_ERR_JSON, "invalid JSON: %s (column %d)", jerr.text, jerr.column);
    return;
  }
  json_t *ch = json_is_object(o) ? json_object_get(o, "channel") : NULL;
  json_t *evn = json_is_object(o) ? json_object_get(o, "event") : NULL;
  json_t *data = json_is_object(o) ? json_object_get(o, "data") : NULL;
  if (!json_is_object(o)) {
    stdin_error(l, no, PUSHER_ERR_INVALID_ARGUMENT,
                "not a JSON object (want {\"channel\":..,\"event\":\"client-..\",\"data\":..})");
  } else if (!json_is_string(ch) || json_string_length(ch) == 0) {
    stdin_error(l, no, PUSHER_ERR_INVALID_ARGUMENT, "\"channel\" is missing or not a non-empty string");
  } else if (!json_is_string(evn) || json_string_length(evn) == 0) {
    stdin_error(l, no, PUSHER_ERR_INVALID_ARGUMENT, "\"event\" is missing or not a non-empty string");
  } else if (strlen(json_string_value(ch)) != json_string_length(ch) ||
             strlen(json_string_value(evn)) != json_string_length(evn)) {
    stdin_error(l, no, PUSHER_ERR_INVALID_ARGUMENT, "\"channel\" or \"event\" contains a NUL character");
  } else {
    char *dj = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (data && dj == NULL) {
      stdin_error(l, no, PUSHER_ERR_NOMEM, "cannot encode \"data\"");
    } else {
      const char *cn = json_string_value(ch), *en = json_string_value(evn);
      int r = pusher_trigger(l->client, cn, en, dj);
      if (r != 0) {
        /* names may be long or odd: quote them as JSON */
        char *qc = json_dumps(ch, JSON_ENCODE_ANY), *qe = json_dumps(evn, JSON_ENCODE_ANY);
        stdin_error(l, no, r, "cannot send %.210s to %.210s: %s", qe ? qe : "event",
                    qc ? qc : "channel", trigger_reason(r));
        free(qc);
        free(qe);
      }
    }
    free(dj);
  }
  json_decref(o);
}

static void stdin_feed(listener *l, const char *p, size_t n) {
  stdin_reader *in = &l->in;
  while (n > 0 && !l->finishing) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    if (!in->overlong) {
      if (in->len + take > STDIN_MAX_LINE) {
        in->overlong = 1;
      } else {
        if (in->len + take + 1 > in->cap) {
          size_t cap = in->cap ? in->cap : 1024;
          while (cap < in->len + take + 1) cap *= 2;
          char *b = realloc(in->line, cap);
          if (b == NULL) {
            in->overlong = 1; /* reported as too long; nothing better to do */
          } else {
            in->line = b;
            in->cap = cap;
          }
        }
        if (!in->overlong) {
          memcpy(in->line + in->len, p, take);
          in->len += take;
        }
      }
    }
    if (nl == NULL) break;
    in->lineno++;
    if (in->overlong)
      stdin_error(l, in->lineno, PUSHER_ERR_TOO_LARGE, "longer than %d bytes", STDIN_MAX_LINE);
    else
      stdin_line(l, in->line, in->len);
    in->len = 0;
    in->overlong = 0;
    p = nl + 1;
    n -= take + 1;
  }
}

static void stdin_close_cb(uv_handle_t *h) {
  (void)h;
}

/* End of input (or a read error): send a last unterminated line, stop
 * reading; listening goes on. */
static void stdin_end(listener *l, int err) {
  stdin_reader *in = &l->in;
  if (in->done) return;
  in->done = 1;
  if (err && !l->finishing)
    stdin_error(l, 0, PUSHER_ERR_IO, "read error: %s (no more client events are read)", uv_strerror(err));
  if ((in->len > 0 || in->overlong) && !l->finishing) {
    in->lineno++;
    if (in->overlong)
      stdin_error(l, in->lineno, PUSHER_ERR_TOO_LARGE, "longer than %d bytes", STDIN_MAX_LINE);
    else
      stdin_line(l, in->line, in->len);
  }
  in->len = 0;
  in->overlong = 0;
  if (in->open) {
    in->open = 0;
    uv_close(&in->h.handle, stdin_close_cb);
  }
}

static void stdin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  listener *l = h->data;
  (void)hint;
  *buf = uv_buf_init(l->in.rbuf, sizeof l->in.rbuf);
}

static void stdin_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  listener *l = s->data;
  if (nread > 0) {
    stdin_feed(l, buf->base, (size_t)nread);
  } else if (nread < 0) {
    stdin_end(l, nread == UV_EOF ? 0 : (int)nread);
  }
}

static void stdin_fs_next(listener *l);

static void stdin_fs_read(uv_fs_t *req) {
  listener *l = req->data;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  l->in.fs_pending = 0;
  if (l->finishing || l->in.done) return;
  if (r > 0) {
    stdin_feed(l, l->in.rbuf, (size_t)r);
    stdin_fs_next(l);
  } else {
    stdin_end(l, r == 0 ? 0 : (int)r);
  }
}

static void stdin_fs_next(listener *l) {
  if (l->finishing || l->in.done) return;
  uv_buf_t b = uv_buf_init(l->in.rbuf, sizeof l->in.rbuf);
  l->in.fs.data = l;
  int r = uv_fs_read(&l->loop, &l->in.fs, 0, &b, 1, -1, stdin_fs_read);
  if (r != 0)
    stdin_end(l, r);
  else
    l->in.fs_pending = 1;
}

/* Start reading fd 0 (once every CHANNEL's subscription has an outcome). */
static void stdin_start(listener *l) {
  stdin_reader *in = &l->in;
  in->started = 1;
  int r;
  switch (uv_guess_handle(0)) {
  case UV_TTY:
    r = uv_tty_init(&l->loop, &in->h.tty, 0, 1);
    in->kind = IN_TTY;
    break;
  case UV_NAMED_PIPE:
  case UV_TCP:
  case UV_UDP:
    r = uv_pipe_init(&l->loop, &in->h.pipe, 0);
    if (r == 0) {
      r = uv_pipe_open(&in->h.pipe, 0);
      if (r != 0) uv_close(&in->h.handle, stdin_close_cb);
    }
    in->kind = IN_PIPE;
    break;
  case UV_FILE:
    in->kind = IN_FILE;
    stdin_fs_next(l);
    return;
  default:
    in->done = 1;
    stdin_error(l, 0, PUSHER_ERR_IO, "standard input is not readable (closed?): no client events are read");
    return;
  }
  if (r != 0) {
    in->done = 1;
    stdin_error(l, 0, PUSHER_ERR_IO, "cannot read standard input: %s", uv_strerror(r));
    return;
  }
  in->open = 1;
  in->h.handle.data = l;
  r = uv_read_start(&in->h.stream, stdin_alloc, stdin_read);
  if (r != 0) {
    stdin_error(l, 0, PUSHER_ERR_IO, "cannot read standard input: %s", uv_strerror(r));
    in->done = 1;
    in->open = 0;
    uv_close(&in->h.handle, stdin_close_cb);
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  listener *l = h->data;
  (void)signum;
  finish(l, CLI_EXIT_OK, 1);
}

/* ------------------------------------------------------------------ parsing */

static int parse_duration(const char *opt, const char *val, double *out) {
  if (cli_parse_seconds(val, out) != 0)
    return cli_usage_error("listen", "--%s: '%s' is not a duration in seconds (e.g. 5 or 0.5)",
                           opt, val);
  return 0;
}

static int push_kv(pusher_kv **v, size_t *n, const char *name, const char *value) {
  pusher_kv *nv = realloc(*v, (*n + 1) * sizeof **v);
  if (nv == NULL) return -1;
  nv[*n].name = name;
  nv[*n].value = value;
  *v = nv;
  (*n)++;
  return 0;
}

static void free_args(listen_args *a) {
  free(a->auth_params);
  free(a->auth_headers);
  cli_strv_free(&a->channels);
}

/* 0 = go on, -1 = exit 0 (help shown), else exit code. */
static int absolute_url(const char *s) {
  return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* Private and presence channels (and --signin) are authorized by an HTTP
 * endpoint; a relative endpoint (the default /pusher/auth) needs the
 * server's origin.  Say so now, in the command line's terms, rather than as
 * a subscription error naming the library's option. */
static int check_auth_origin(const listen_args *a) {
  if (a->auth_origin) return 0;
  const char *ep = a->auth_endpoint ? a->auth_endpoint : "/pusher/auth";
  for (size_t i = 0; i < a->channels.n; i++) {
    const char *ch = a->channels.v[i];
    if ((strncmp(ch, "private-", 8) == 0 || strncmp(ch, "presence-", 9) == 0) && !absolute_url(ep))
      return cli_usage_error("listen",
                             "channel '%s' needs authorization: give --auth-origin URL (your "
                             "auth server, e.g. http://127.0.0.1:3000) or an absolute "
                             "--auth-endpoint URL",
                             ch);
  }
  const char *uep = a->user_auth_endpoint ? a->user_auth_endpoint : "/pusher/user-auth";
  if (a->signin && !absolute_url(uep))
    return cli_usage_error("listen",
                           "--signin needs --auth-origin URL (your auth server) or an "
                           "absolute --user-auth-endpoint URL");
  return 0;
}

static int parse_args(int argc, char **argv, listen_args *a) {
  memset(a, 0, sizeof *a);
  a->tls = 1;
  a->auth_transport = -1;
  a->reconnect_delay = a->max_reconnect_delay = a->activity_timeout = a->pong_timeout =
      a->unavailable_timeout = a->connect_timeout = -1;
  a->key = cli_env("PUSHER_APP_KEY");
  a->host = cli_env("PUSHER_HOST");
  a->cluster = cli_env("PUSHER_CLUSTER");
  const char *env_port = cli_env("PUSHER_PORT");
  if (env_port && cli_parse_port(env_port, &a->port) != 0)
    return cli_usage_error("listen", "PUSHER_PORT='%s' is not a port number (1-65535)", env_port);

  optind = 1;
  opterr = 0;
  int c, rc;
  while ((c = getopt_long(argc, argv, ":h", LISTEN_OPTS, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(LISTEN_HELP, stdout);
      return -1;
    case OPT_KEY: a->key = optarg; break;
    case OPT_CLUSTER: a->cluster = optarg; break;
    case OPT_HOST: a->host = optarg; break;
    case OPT_PORT:
      if (cli_parse_port(optarg, &a->port) != 0)
        return cli_usage_error("listen", "--port: '%s' is not a port number (1-65535)", optarg);
      break;
    case OPT_WSS_PORT:
      if (cli_parse_port(optarg, &a->wss_port) != 0)
        return cli_usage_error("listen", "--wss-port: '%s' is not a port number (1-65535)", optarg);
      break;
    case OPT_TLS: a->tls = 1; break;
    case OPT_NO_TLS: a->tls = 0; break;
    case OPT_CA_FILE: a->ca_file = optarg; break;
    case OPT_CA_PATH: a->ca_path = optarg; break;
    case OPT_INSECURE: a->insecure = 1; break;
    case OPT_WATCH_NETWORK: a->watch_network = 1; break;
    case OPT_RECONNECT_DELAY:
      if ((rc = parse_duration("reconnect-delay", optarg, &a->reconnect_delay))) return rc;
      break;
    case OPT_MAX_RECONNECT_DELAY:
      if ((rc = parse_duration("max-reconnect-delay", optarg, &a->max_reconnect_delay))) return rc;
      break;
    case OPT_ACTIVITY_TIMEOUT:
      if ((rc = parse_duration("activity-timeout", optarg, &a->activity_timeout))) return rc;
      break;
    case OPT_PONG_TIMEOUT:
      if ((rc = parse_duration("pong-timeout", optarg, &a->pong_timeout))) return rc;
      break;
    case OPT_UNAVAILABLE_TIMEOUT:
      if ((rc = parse_duration("unavailable-timeout", optarg, &a->unavailable_timeout))) return rc;
      break;
    case OPT_CONNECT_TIMEOUT:
      if ((rc = parse_duration("connect-timeout", optarg, &a->connect_timeout))) return rc;
      break;
    case OPT_AUTH_ENDPOINT: a->auth_endpoint = optarg; break;
    case OPT_AUTH_ORIGIN: a->auth_origin = optarg; break;
    case OPT_USER_AUTH_ENDPOINT: a->user_auth_endpoint = optarg; break;
    case OPT_AUTH_TRANSPORT:
      if (strcmp(optarg, "ajax") == 0)
        a->auth_transport = PUSHER_AUTH_AJAX;
      else if (strcmp(optarg, "jsonp") == 0)
        a->auth_transport = PUSHER_AUTH_JSONP;
      else
        return cli_usage_error("listen", "--auth-transport: '%s' is not ajax or jsonp", optarg);
      break;
    case OPT_AUTH_PARAM: {
      char *k, *v;
      if (cli_split_param(optarg, &k, &v) != 0)
        return cli_usage_error("listen", "--auth-param: '%s' is not NAME=VALUE", optarg);
      if (push_kv(&a->auth_params, &a->n_auth_params, k, v) != 0) return CLI_EXIT_FAIL;
      break;
    }
    case OPT_AUTH_HEADER: {
      char *k, *v;
      if (cli_split_header(optarg, &k, &v) != 0)
        return cli_usage_error("listen", "--auth-header: '%s' is not 'Name: value'", optarg);
      if (push_kv(&a->auth_headers, &a->n_auth_headers, k, v) != 0) return CLI_EXIT_FAIL;
      break;
    }
    case OPT_SIGNIN: a->signin = 1; break;
    case OPT_STDIN: a->use_stdin = 1; break;
    case OPT_JSON: a->json = 1; break;
    case OPT_COUNT:
      if (cli_parse_long(optarg, 1, 1000000000L, &a->count) != 0)
        return cli_usage_error("listen", "--count: '%s' is not a positive whole number", optarg);
      break;
    case ':':
      return cli_usage_error("listen", "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt && optopt < 256 && optopt != '?')
        return cli_usage_error("listen", "unknown option '-%c'", optopt);
      return cli_usage_error("listen", "unknown option '%s'", argv[optind - 1]);
    }
  }
  for (int i = optind; i < argc; i++) {
    if (!pusher_channel_name_valid(argv[i]))
      return cli_usage_error("listen",
                             "'%s' is not a valid channel name (1-200 characters of "
                             "A-Z a-z 0-9 _ - = @ , . ;)",
                             argv[i]);
    for (size_t j = 0; j < a->channels.n; j++)
      if (strcmp(a->channels.v[j], argv[i]) == 0)
        return cli_usage_error("listen", "channel '%s' is given twice", argv[i]);
    if (cli_strv_push(&a->channels, argv[i]) != 0) return CLI_EXIT_FAIL;
  }
  if (a->key == NULL)
    return cli_usage_error("listen", "no app key: use --key KEY or set PUSHER_APP_KEY");
  if (a->channels.n == 0) return cli_usage_error("listen", "no CHANNEL given");
  return check_auth_origin(a);
}

static void fill_options(const listen_args *a, pusher_client_options *o, uv_loop_t *loop) {
  pusher_client_options_default(o);
  o->loop = loop;
  o->encrypted = a->tls;
  if (a->cluster) o->cluster = a->cluster;
  if (a->host) o->ws_host = a->host;
  if (a->port) {
    if (a->tls)
      o->wss_port = a->port;
    else
      o->ws_port = a->port;
  }
  if (a->wss_port) o->wss_port = a->wss_port;
  o->ca_file = a->ca_file;
  o->ca_path = a->ca_path;
  o->tls_insecure = a->insecure;
  o->watch_network = a->watch_network;
  if (a->reconnect_delay >= 0) o->reconnect_delay = a->reconnect_delay;
  if (a->max_reconnect_delay >= 0)
    o->max_reconnect_delay = a->max_reconnect_delay;
  else if (o->max_reconnect_delay < o->reconnect_delay)
    o->max_reconnect_delay = o->reconnect_delay; /* --reconnect-delay alone above the default ceiling */
  if (a->activity_timeout >= 0) o->activity_timeout = a->activity_timeout;
  if (a->pong_timeout >= 0) o->pong_timeout = a->pong_timeout;
  if (a->unavailable_timeout >= 0) o->unavailable_timeout = a->unavailable_timeout;
  if (a->connect_timeout >= 0) o->connect_timeout = a->connect_timeout;
  if (a->auth_endpoint) o->auth_endpoint = a->auth_endpoint;
  if (a->auth_origin) o->auth_origin = a->auth_origin;
  if (a->user_auth_endpoint) o->user_auth_endpoint = a->user_auth_endpoint;
  if (a->auth_transport >= 0) o->auth_transport = (pusher_auth_transport)a->auth_transport;
  o->auth_params = a->auth_params;
  o->auth_params_count = a->n_auth_params;
  o->auth_headers = a->auth_headers;
  o->auth_headers_count = a->n_auth_headers;
  o->client_name = "libpusher-cli";
}

/* ------------------------------------------------------------------ main */

static void on_closed(uv_handle_t *h) { (void)h; }

int cli_listen(int argc, char **argv) {
  listen_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0) {
    free_args(&a);
    return rc < 0 ? CLI_EXIT_OK : rc;
  }

  listener l;
  memset(&l, 0, sizeof l);
  l.args = &a;
  if (uv_loop_init(&l.loop) != 0) {
    fprintf(stderr, "pusher listen: cannot create the event loop\n");
    free_args(&a);
    return CLI_EXIT_FAIL;
  }
  l.t0 = uv_hrtime();

  pusher_client_options o;
  fill_options(&a, &o, &l.loop);
  /* The library's own rules (ranges, combinations), with its reason. */
  char why[256];
  rc = pusher_client_options_check(&o, why, sizeof why);
  if (rc == 0) rc = pusher_client_new(&l.client, a.key, &o);
  else l.client = NULL;
  if (rc != 0) {
    char msg[400];
    if (why[0] == '\0') snprintf(why, sizeof why, "%s", pusher_strerror(rc));
    cli_option_names(why, msg, sizeof msg);
    cli_usage_error("listen", "invalid options: %s", msg);
    uv_loop_close(&l.loop);
    free_args(&a);
    return CLI_EXIT_USAGE;
  }
  if (pusher_connection_bind(l.client, NULL, on_connection, &l, NULL) != 0 ||
      pusher_bind(l.client, NULL, NULL, on_event, &l, NULL) != 0) {
    fprintf(stderr, "pusher listen: cannot bind callbacks\n");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  if (a.signin) {
    int r = pusher_user_bind(l.client, "pusher:signin_success", on_user, &l, NULL);
    if (r == 0) r = pusher_user_bind(l.client, "pusher:signin_error", on_user, &l, NULL);
    if (r == 0) r = pusher_signin(l.client);
    if (r != 0) {
      fprintf(stderr, "pusher listen: cannot sign in: %s\n", pusher_strerror(r));
      rc = CLI_EXIT_FAIL;
      goto out;
    }
  }
  l.settled = calloc(a.channels.n, 1);
  if (l.settled == NULL) {
    fprintf(stderr, "pusher listen: out of memory\n");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  l.n_settled = a.channels.n;
  for (size_t i = 0; i < a.channels.n; i++) {
    int r = pusher_subscribe(l.client, a.channels.v[i]);
    if (r != 0) {
      fprintf(stderr, "pusher listen: cannot subscribe to '%s': %s\n", a.channels.v[i],
              pusher_strerror(r));
      rc = r == PUSHER_ERR_BAD_CHANNEL_NAME || r == PUSHER_ERR_EXISTS ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
      goto out;
    }
  }

  uv_signal_init(&l.loop, &l.sigint);
  uv_signal_init(&l.loop, &l.sigterm);
  l.sigint.data = l.sigterm.data = &l;
  uv_signal_start(&l.sigint, on_signal, SIGINT);
  uv_signal_start(&l.sigterm, on_signal, SIGTERM);
  signal(SIGPIPE, SIG_IGN);

  rc = pusher_client_connect(l.client);
  if (rc != 0 && !l.finishing) {
    fprintf(stderr, "pusher listen: cannot connect: %s\n", pusher_strerror(rc));
    finish(&l, CLI_EXIT_FAIL, 0);
  }
  if (!l.finishing) uv_run(&l.loop, UV_RUN_DEFAULT);
  rc = l.finishing ? l.exit_rc : CLI_EXIT_FAIL;

  /* A requested end (count reached, signal): disconnect so that the state
   * line into disconnected is printed and the server sees a clean close. */
  if (l.disconnect_on_finish) pusher_client_disconnect(l.client);
  if (l.in.open) {
    l.in.open = 0;
    uv_close(&l.in.h.handle, stdin_close_cb);
  }
  uv_close((uv_handle_t *)&l.sigint, on_closed);
  uv_close((uv_handle_t *)&l.sigterm, on_closed);

out:
  l.quiet = 1;
  l.finishing = 1;
  pusher_client_del(l.client);
  /* Let every handle close (the client frees itself in its last close callback). */
  uv_run(&l.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&l.loop) != 0) {
    /* Something is still open: not fatal for a process about to exit. */
  }
  free(l.in.line);
  free(l.settled);
  free_args(&a);
  return rc;
}
