/* hello_loop: hello.c on the caller's own libuv loop (loop mode).  The
 * client's sockets and timers are handles of that loop; every callback runs
 * inside uv_run() on this thread, and every pusher_* call is made here.
 * SIGINT/SIGTERM are uv_signal_t handles: on either, the client is deleted,
 * the signal handles are closed, and uv_run() returns because nothing is
 * left on the loop.
 *
 * Build: cc hello_loop.c $(pkg-config --cflags --libs pusher libuv)
 * Environment: PUSHER_HOST (127.0.0.1), PUSHER_PORT (6001), PUSHER_APP_KEY
 * (app-key). */
#include <pusher/pusher.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct app {
  pusher_client *client;
  uv_signal_t sigint, sigterm;
} app;

static const char *env(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

static void on_connected(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  printf("connected, socket_id %s\n", ev->socket_id);
  fflush(stdout);
}

static void on_event(pusher_client *c, const pusher_event *ev, void *ud) {
  printf("%s on %s: %.*s\n", ev->event, ev->channel, (int)ev->data_len,
         ev->data ? ev->data : "");
  fflush(stdout);
}

static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  printf("%s: disconnecting\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
  fflush(stdout);
  pusher_client_del(a->client); /* closes its handles; the loop finishes them */
  a->client = NULL;
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
}

int main(int argc, char **argv) {
  const char *channel = argc > 1 ? argv[1] : "my-channel";
  uv_loop_t *loop = uv_default_loop();
  app a = {0};

  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = env("PUSHER_HOST", "127.0.0.1");
  o.ws_port = atoi(env("PUSHER_PORT", "6001"));
  o.loop = loop; /* loop mode */

  int rv = pusher_client_new(&a.client, env("PUSHER_APP_KEY", "app-key"), &o);
  if (rv != 0) {
    fprintf(stderr, "hello_loop: %s\n", pusher_strerror(rv));
    return 1;
  }
  pusher_connection_bind(a.client, "connected", on_connected, NULL, NULL);
  pusher_subscribe(a.client, channel);
  pusher_bind(a.client, channel, NULL, on_event, NULL, NULL);
  pusher_client_connect(a.client);

  uv_signal_init(loop, &a.sigint);
  uv_signal_init(loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);

  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
