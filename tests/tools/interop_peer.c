/* interop_peer: one libpusher client (threaded mode, public API only) driven
 * line by line on stdin, reporting on stdout as one JSON object per line.
 * Used by tests/integration/interop_pusherjs.sh (through
 * tests/integration/interop/driver.mjs) to exchange client events with
 * pusher-js.
 *
 *   interop_peer --ws-port P --auth-endpoint URL [--param K=V]...
 *
 * Commands (stdin, one per line, fields separated by one space; JSON last):
 *   sub CHANNEL                    pusher_subscribe
 *   trigger CHANNEL EVENT JSON     pusher_trigger -> {"op":"trigger","rc":..}
 *   members CHANNEL                {"op":"members","rc":..,"me":..,"ids":[..]}
 *   quit                           pusher_client_del, exit 0 (also on EOF)
 * Reports:
 *   {"op":"state","state":"connected","socket_id":".."}   connection states
 *   {"op":"event","channel":..,"event":..,"data":<json or string>,
 *    "user_id":..|null}            every channel event (pusher: ones included)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pusher/channels.h>

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* Growing output line; emitted whole under out_mu. */
typedef struct {
  char *s;
  size_t n, cap;
} buf;

static void b_add(buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->s = realloc(b->s, b->cap);
    if (!b->s) abort();
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}
static void b_cat(buf *b, const char *s) { b_add(b, s, strlen(s)); }

static void b_str(buf *b, const char *s, size_t n) { /* JSON string, or null */
  if (!s) {
    b_cat(b, "null");
    return;
  }
  b_cat(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      b_add(b, esc, 2);
    } else if (ch < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      b_cat(b, esc);
    } else {
      b_add(b, (const char *)&ch, 1);
    }
  }
  b_cat(b, "\"");
}
static void b_cstr(buf *b, const char *s) { b_str(b, s, s ? strlen(s) : 0); }

static void emit(buf *b) {
  pthread_mutex_lock(&out_mu);
  fputs(b->s ? b->s : "", stdout);
  fputc('\n', stdout);
  fflush(stdout);
  pthread_mutex_unlock(&out_mu);
  free(b->s);
  b->s = NULL;
  b->n = b->cap = 0;
}

static const char *state_name(pusher_state s) {
  switch (s) {
    case PUSHER_STATE_INITIALIZED: return "initialized";
    case PUSHER_STATE_CONNECTING: return "connecting";
    case PUSHER_STATE_CONNECTED: return "connected";
    case PUSHER_STATE_UNAVAILABLE: return "unavailable";
    case PUSHER_STATE_FAILED: return "failed";
    case PUSHER_STATE_DISCONNECTED: return "disconnected";
  }
  return "?";
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  (void)c;
  (void)ud;
  buf b = {0};
  if (strcmp(ev->name, "state_change") == 0) {
    b_cat(&b, "{\"op\":\"state\",\"state\":");
    b_cstr(&b, state_name(ev->current));
    b_cat(&b, ",\"socket_id\":");
    b_cstr(&b, ev->socket_id);
    b_cat(&b, "}");
    emit(&b);
  } else if (strcmp(ev->name, "error") == 0) {
    char code[32];
    snprintf(code, sizeof code, "%d", ev->code);
    b_cat(&b, "{\"op\":\"error\",\"code\":");
    b_cat(&b, code);
    b_cat(&b, ",\"message\":");
    b_cstr(&b, ev->message);
    b_cat(&b, "}");
    emit(&b);
  }
}

static void on_event(pusher_client *c, const pusher_event *ev, void *ud) {
  (void)c;
  (void)ud;
  buf b = {0};
  b_cat(&b, "{\"op\":\"event\",\"channel\":");
  b_cstr(&b, ev->channel);
  b_cat(&b, ",\"event\":");
  b_cstr(&b, ev->event);
  b_cat(&b, ",\"data\":");
  if (!ev->data)
    b_cat(&b, "null");
  else if (ev->data_is_json)
    b_add(&b, ev->data, ev->data_len);
  else
    b_str(&b, ev->data, ev->data_len);
  b_cat(&b, ",\"user_id\":");
  b_cstr(&b, ev->user_id);
  b_cat(&b, "}");
  emit(&b);
}

static void rc_line(const char *op, int rc, const char *channel) {
  buf b = {0};
  char n[32];
  snprintf(n, sizeof n, "%d", rc);
  b_cat(&b, "{\"op\":");
  b_cstr(&b, op);
  b_cat(&b, ",\"channel\":");
  b_cstr(&b, channel);
  b_cat(&b, ",\"rc\":");
  b_cat(&b, n);
  b_cat(&b, ",\"err\":");
  b_cstr(&b, rc ? pusher_strerror(rc) : NULL);
  b_cat(&b, "}");
  emit(&b);
}

static void cmd_members(pusher_client *c, const char *channel) {
  pusher_members *m = NULL;
  int rc = pusher_channel_members(c, channel, &m);
  if (rc != 0) {
    rc_line("members", rc, channel);
    return;
  }
  buf b = {0};
  b_cat(&b, "{\"op\":\"members\",\"channel\":");
  b_cstr(&b, channel);
  b_cat(&b, ",\"rc\":0,\"me\":");
  const pusher_member *me = pusher_members_me(m);
  b_cstr(&b, me ? me->user_id : NULL);
  b_cat(&b, ",\"ids\":[");
  size_t n = pusher_members_count(m);
  for (size_t i = 0; i < n; i++) {
    const pusher_member *x = pusher_members_at(m, i);
    if (i) b_cat(&b, ",");
    b_cstr(&b, x->user_id);
  }
  b_cat(&b, "],\"infos\":[");
  for (size_t i = 0; i < n; i++) {
    const pusher_member *x = pusher_members_at(m, i);
    if (i) b_cat(&b, ",");
    if (x->user_info)
      b_cat(&b, x->user_info);
    else
      b_cat(&b, "null");
  }
  b_cat(&b, "]}");
  emit(&b);
  pusher_members_free(m);
}

static void usage(void) {
  fprintf(stderr, "usage: interop_peer --ws-port P --auth-endpoint URL [--param K=V]...\n");
  exit(2);
}

int main(int argc, char **argv) {
  int ws_port = 0;
  const char *auth_endpoint = NULL;
  pusher_kv params[8];
  size_t nparams = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--ws-port") == 0) {
      ws_port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--auth-endpoint") == 0) {
      auth_endpoint = argv[++i];
    } else if (strcmp(argv[i], "--param") == 0 && nparams < 8) {
      char *kv = argv[++i];
      char *eq = strchr(kv, '=');
      if (!eq) usage();
      *eq = '\0';
      params[nparams].name = kv;
      params[nparams].value = eq + 1;
      nparams++;
    } else {
      usage();
    }
  }
  if (ws_port <= 0 || !auth_endpoint) usage();

  pusher_client_options o;
  pusher_client_options_default(&o);
  o.ws_host = "127.0.0.1";
  o.ws_port = ws_port;
  o.encrypted = 0;
  o.disable_stats = 1;
  o.reconnect_delay = 0.5;
  o.max_reconnect_delay = 1;
  o.auth_endpoint = auth_endpoint;
  o.auth_transport = PUSHER_AUTH_AJAX;
  o.auth_params = params;
  o.auth_params_count = nparams;
  o.client_name = "libpusher-interop";

  pusher_client *c = NULL;
  int rc = pusher_client_new(&c, "app-key", &o);
  if (rc != 0) {
    fprintf(stderr, "pusher_client_new: %s\n", pusher_strerror(rc));
    return 1;
  }
  if (pusher_connection_bind(c, NULL, on_conn, NULL, NULL) != 0 ||
      pusher_bind(c, NULL, NULL, on_event, NULL, NULL) != 0 || pusher_client_connect(c) != 0) {
    fprintf(stderr, "bind/connect failed\n");
    pusher_client_del(c);
    return 1;
  }

  char line[16384];
  while (fgets(line, sizeof line, stdin)) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    char *cmd = line, *rest = strchr(line, ' ');
    if (rest) *rest++ = '\0';
    if (strcmp(cmd, "quit") == 0) break;
    if (strcmp(cmd, "sub") == 0 && rest) {
      rc_line("sub", pusher_subscribe(c, rest), rest);
    } else if (strcmp(cmd, "members") == 0 && rest) {
      cmd_members(c, rest);
    } else if (strcmp(cmd, "trigger") == 0 && rest) {
      char *ch = rest, *ev = strchr(rest, ' ');
      if (!ev) {
        rc_line("bad_command", -1, NULL);
        continue;
      }
      *ev++ = '\0';
      char *data = strchr(ev, ' ');
      if (data) *data++ = '\0';
      rc_line("trigger", pusher_trigger(c, ch, ev, data), ch);
    } else if (n) {
      rc_line("bad_command", -1, NULL);
    }
  }
  pusher_client_del(c);
  buf b = {0};
  b_cat(&b, "{\"op\":\"bye\"}");
  emit(&b);
  return 0;
}
