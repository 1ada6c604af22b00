/* presence_chat: a chat on a presence channel.  Joins presence-chat as
 * NAME, prints who is there, who joins and leaves, and what others say;
 * each line of standard input is sent to the others as a client event
 * ("client-message").  At the end of standard input it leaves and exits.
 *
 * Channel authorization, either way:
 *  - with AUTH_ORIGIN (e.g. http://127.0.0.1:3000): the HTTP auth endpoint
 *    AUTH_ORIGIN/pusher/auth (ajax: a form POST), with the parameters
 *    user_id=NAME and user_name=NAME for the application's server to use;
 *  - without: a custom authorizer that signs locally with
 *    PUSHER_APP_SECRET (for a demonstration; a real client asks its server).
 *
 *   ./presence_chat alice http://127.0.0.1:3000
 *   ./presence_chat bob
 *
 * Build: cc presence_chat.c $(pkg-config --cflags --libs pusher)
 * Environment: PUSHER_HOST (127.0.0.1), PUSHER_PORT (6001), PUSHER_APP_KEY
 * (app-key), PUSHER_APP_SECRET (app-secret). */
#include <pusher/channels.h>
#include <pusher/rest.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL "presence-chat"

typedef struct chat {
  const char *name, *app_key, *secret;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state; /* 0 joining, 1 joined, -1 refused */
} chat;

static const char *env(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

/* JSON string of s (quotes included) into out; 0, or -1 when too long. */
static int json_quote(const char *s, char *out, size_t cap) {
  size_t o = 0;
  if (cap < 3) return -1;
  out[o++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (o + 8 >= cap) return -1;
    if (*p == '"' || *p == '\\')
      o += (size_t)snprintf(out + o, cap - o, "\\%c", *p);
    else if (*p < 0x20)
      o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *p);
    else
      out[o++] = (char)*p;
  }
  out[o++] = '"';
  out[o] = '\0';
  return 0;
}

static void set_state(chat *ch, int state) {
  pthread_mutex_lock(&ch->mu);
  ch->state = state;
  pthread_cond_signal(&ch->cv);
  pthread_mutex_unlock(&ch->mu);
}

static void authorize(pusher_client *c, pusher_auth_request *req, const char *socket_id,
                      const char *channel, void *user_data) {
  const chat *ch = user_data;
  char quoted[256], channel_data[600], auth[256];
  if (json_quote(ch->name, quoted, sizeof quoted) != 0) {
    pusher_auth_request_fail(req, 0, "name too long");
    return;
  }
  snprintf(channel_data, sizeof channel_data, "{\"user_id\":%s,\"user_info\":{\"name\":%s}}",
           quoted, quoted);
  if (pusher_auth_sign_channel(ch->app_key, ch->secret, socket_id, channel, channel_data, auth,
                               sizeof auth) != 0) {
    pusher_auth_request_fail(req, 0, "cannot sign");
    return;
  }
  pusher_auth_result res = {.auth = auth, .channel_data = channel_data};
  pusher_auth_request_complete(req, &res);
}

static void on_joined(pusher_client *c, const pusher_event *ev, void *user_data) {
  chat *ch = user_data;
  pusher_members *m;
  if (pusher_channel_members(c, CHANNEL, &m) == 0) {
    printf("joined %s as %s; %zu here:", CHANNEL, ch->name, pusher_members_count(m));
    for (size_t i = 0; i < pusher_members_count(m); i++)
      printf(" %s", pusher_members_at(m, i)->user_id);
    printf("\n");
    pusher_members_free(m);
  }
  fflush(stdout);
  set_state(ch, 1);
}

static void on_refused(pusher_client *c, const pusher_event *ev, void *user_data) {
  fprintf(stderr, "cannot join %s: %.*s\n", CHANNEL, (int)ev->data_len, ev->data);
  set_state(user_data, -1);
}

static void on_member(pusher_client *c, const pusher_event *ev, void *user_data) {
  /* data {"user_id":"..",...}: print it as it came */
  printf("%s %.*s\n", strcmp(ev->event, "pusher:member_added") == 0 ? "joined:" : "left:",
         (int)ev->data_len, ev->data);
  fflush(stdout);
}

static void on_message(pusher_client *c, const pusher_event *ev, void *user_data) {
  printf("%s says %.*s\n", ev->user_id ? ev->user_id : "?", (int)ev->data_len, ev->data);
  fflush(stdout);
}

static int run(pusher_client *c, chat *ch) {
  pthread_mutex_lock(&ch->mu);
  while (ch->state == 0) pthread_cond_wait(&ch->cv, &ch->mu);
  int state = ch->state;
  pthread_mutex_unlock(&ch->mu);
  if (state < 0) return 1;
  char line[2048], data[4200];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = '\0';
    char quoted[4100];
    if (json_quote(line, quoted, sizeof quoted) != 0) continue;
    snprintf(data, sizeof data, "{\"text\":%s}", quoted);
    int rv = pusher_trigger(c, CHANNEL, "client-message", data);
    if (rv != 0) fprintf(stderr, "not sent: %s\n", pusher_strerror(rv));
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: presence_chat NAME [AUTH_ORIGIN]\n");
    return 2;
  }
  chat ch = {.name = argv[1], .app_key = env("PUSHER_APP_KEY", "app-key"),
             .secret = env("PUSHER_APP_SECRET", "app-secret")};
  pthread_mutex_init(&ch.mu, NULL);
  pthread_cond_init(&ch.cv, NULL);

  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = env("PUSHER_HOST", "127.0.0.1");
  o.ws_port = atoi(env("PUSHER_PORT", "6001"));
  pusher_kv params[] = {{"user_id", ch.name}, {"user_name", ch.name}};
  if (argc == 3) {
    o.auth_origin = argv[2];          /* + the default auth_endpoint "/pusher/auth" */
    o.auth_transport = PUSHER_AUTH_AJAX;
    o.auth_params = params;
    o.auth_params_count = 2;
  }
  pusher_client *c;
  int rv = pusher_client_new(&c, ch.app_key, &o);
  if (rv != 0) {
    fprintf(stderr, "presence_chat: %s\n", pusher_strerror(rv));
    return 1;
  }
  if (argc == 2) pusher_client_set_channel_authorizer(c, authorize, &ch);
  pusher_bind(c, CHANNEL, "pusher:subscription_succeeded", on_joined, &ch, NULL);
  pusher_bind(c, CHANNEL, "pusher:subscription_error", on_refused, &ch, NULL);
  pusher_bind(c, CHANNEL, "pusher:member_added", on_member, &ch, NULL);
  pusher_bind(c, CHANNEL, "pusher:member_removed", on_member, &ch, NULL);
  pusher_bind(c, CHANNEL, "client-message", on_message, &ch, NULL);
  pusher_subscribe(c, CHANNEL);
  pusher_client_connect(c);

  rv = run(c, &ch);
  pusher_client_del(c);
  pthread_cond_destroy(&ch.cv);
  pthread_mutex_destroy(&ch.mu);
  return rv;
}
