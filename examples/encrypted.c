/* encrypted: subscribe to an end-to-end encrypted channel
 * (private-encrypted-<name>) and print the decrypted events; exit on
 * SIGINT/SIGTERM as hello.c does.
 *
 * Channel authorization here is a custom authorizer that signs locally with
 * the app secret and derives the channel's key from the encryption master
 * key: the same answer an auth endpoint gives.  A real client must not hold
 * the secret or the master key; its authorizer would ask the application's
 * server (see presence_chat.c for the HTTP auth endpoint).
 *
 *   ./encrypted private-encrypted-room
 *   PUSHER_ENCRYPTION_MASTER_KEY=... ./publish private-encrypted-room msg '"hi"'
 *
 * Build: cc encrypted.c $(pkg-config --cflags --libs pusher)
 * Environment: PUSHER_HOST (127.0.0.1), PUSHER_PORT (6001), PUSHER_APP_KEY
 * (app-key), PUSHER_APP_SECRET (app-secret), PUSHER_ENCRYPTION_MASTER_KEY
 * (required: base64 of 32 bytes). */
#include <pusher/channels.h>
#include <pusher/rest.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct keys {
  const char *app_key, *secret, *master_key;
} keys;

static const char *env(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

/* Runs on the client's thread for each channel to authorize; it answers at
 * once here, but could answer later from any thread. */
static void authorize(pusher_client *c, pusher_auth_request *req, const char *socket_id,
                      const char *channel, void *user_data) {
  const keys *k = user_data;
  char auth[256], shared_secret[45];
  if (pusher_auth_sign_channel(k->app_key, k->secret, socket_id, channel, NULL, auth,
                               sizeof auth) != 0 ||
      pusher_shared_secret(channel, k->master_key, shared_secret) != 0) {
    pusher_auth_request_fail(req, 0, "cannot sign");
    return;
  }
  pusher_auth_result res = {.auth = auth, .shared_secret = shared_secret};
  pusher_auth_request_complete(req, &res); /* copies the strings */
}

static void on_event(pusher_client *c, const pusher_event *ev, void *ud) {
  printf("%s on %s: %.*s\n", ev->event, ev->channel, (int)ev->data_len,
         ev->data ? ev->data : "");
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *channel = argc > 1 ? argv[1] : "private-encrypted-room";
  keys k = {env("PUSHER_APP_KEY", "app-key"), env("PUSHER_APP_SECRET", "app-secret"),
            getenv("PUSHER_ENCRYPTION_MASTER_KEY")};
  if (k.master_key == NULL) {
    fprintf(stderr, "encrypted: set PUSHER_ENCRYPTION_MASTER_KEY (base64 of 32 bytes)\n");
    return 2;
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0; /* plain ws:// to a local pusherd; the events are encrypted end to end */
  o.ws_host = env("PUSHER_HOST", "127.0.0.1");
  o.ws_port = atoi(env("PUSHER_PORT", "6001"));

  pusher_client *c;
  int rv = pusher_client_new(&c, k.app_key, &o);
  if (rv != 0) {
    fprintf(stderr, "encrypted: %s\n", pusher_strerror(rv));
    return 1;
  }
  pusher_client_set_channel_authorizer(c, authorize, &k);
  pusher_subscribe(c, channel);
  pusher_bind(c, channel, NULL, on_event, NULL, NULL);
  pusher_client_connect(c);

  int sig = 0;
  sigwait(&sigs, &sig);
  pusher_client_del(c);
  return 0;
}
