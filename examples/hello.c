/* hello: connect, subscribe to a channel, print its events, and exit
 * cleanly on Ctrl-C (SIGINT) or SIGTERM.  Threaded mode: the client runs its
 * own loop thread; main() only waits for a signal.
 *
 *   pusherd &                      # a local server: 127.0.0.1:6001, no TLS
 *   ./hello my-channel
 *   pusher trigger --no-tls --host 127.0.0.1 --port 6001 --app-id app-id \
 *     --key app-key --secret app-secret my-channel my-event '{"hello":"world"}'
 *
 * Build: cc hello.c $(pkg-config --cflags --libs pusher)
 * Environment: PUSHER_HOST (127.0.0.1), PUSHER_PORT (6001), PUSHER_APP_KEY
 * (app-key).  Against Pusher itself, set o.cluster and leave encrypted = 1
 * instead of the three local-server options below. */
#include <pusher/pusher.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static const char *env(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

/* Callbacks run on the client's thread, one at a time. */
static void on_connected(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  printf("connected, socket_id %s\n", ev->socket_id);
  fflush(stdout);
}

static void on_event(pusher_client *c, const pusher_event *ev, void *ud) {
  printf("%s on %s: %.*s\n", ev->event, ev->channel, (int)ev->data_len,
         ev->data ? ev->data : "");
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *channel = argc > 1 ? argv[1] : "my-channel";

  /* Block the signals before the client starts its thread, which inherits
   * the mask: then only sigwait() below receives them. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;                                /* a local pusherd speaks plain ws:// */
  o.ws_host = env("PUSHER_HOST", "127.0.0.1");
  o.ws_port = atoi(env("PUSHER_PORT", "6001"));

  pusher_client *c;
  int rv = pusher_client_new(&c, env("PUSHER_APP_KEY", "app-key"), &o);
  if (rv != 0) {
    fprintf(stderr, "hello: %s\n", pusher_strerror(rv));
    return 1;
  }
  pusher_connection_bind(c, "connected", on_connected, NULL, NULL);
  pusher_subscribe(c, channel);
  pusher_bind(c, channel, NULL, on_event, NULL, NULL); /* every event of the channel */
  pusher_client_connect(c);                           /* returns at once */

  int sig = 0;
  sigwait(&sigs, &sig);
  printf("%s: disconnecting\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  pusher_client_del(c); /* disconnects, joins the client's thread */
  return 0;
}
