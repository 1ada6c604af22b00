/* publish: trigger an event from C through the HTTP API (include/pusher/rest.h),
 * as an application server does.
 *
 *   ./publish my-channel my-event '{"hello":"world"}'
 *   ./publish private-encrypted-room secret '"only subscribers can read this"'
 *
 * Build: cc publish.c $(pkg-config --cflags --libs pusher)
 * Environment: PUSHER_HOST (127.0.0.1), PUSHER_PORT (6001), PUSHER_APP_ID
 * (app-id), PUSHER_APP_KEY (app-key), PUSHER_APP_SECRET (app-secret),
 * PUSHER_ENCRYPTION_MASTER_KEY (base64 of 32 bytes; needed for
 * private-encrypted- channels, whose data is encrypted here).
 * Exit status 0 when the server accepted the event. */
#include <pusher/rest.h>

#include <stdio.h>
#include <stdlib.h>

static const char *env(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: publish CHANNEL EVENT DATA\n");
    return 2;
  }
  pusher_rest_options o;
  pusher_rest_options_default(&o);
  o.app_id = env("PUSHER_APP_ID", "app-id");
  o.key = env("PUSHER_APP_KEY", "app-key");
  o.secret = env("PUSHER_APP_SECRET", "app-secret");
  o.host = env("PUSHER_HOST", "127.0.0.1"); /* instead of o.cluster */
  o.port = atoi(env("PUSHER_PORT", "6001"));
  o.tls = 0; /* a local pusherd speaks plain http:// */
  o.encryption_master_key = getenv("PUSHER_ENCRYPTION_MASTER_KEY");

  pusher_rest *r;
  int rv = pusher_rest_new(&r, &o);
  if (rv != 0) {
    fprintf(stderr, "publish: %s\n", pusher_strerror(rv));
    return 1;
  }
  const char *channels[] = {argv[1]};
  pusher_rest_event ev = {.name = argv[2], .data = argv[3]};
  pusher_rest_reply reply;
  rv = pusher_rest_trigger(r, channels, 1, &ev, &reply); /* blocks until the reply */
  if (rv == 0)
    printf("published %s on %s: HTTP %ld %s\n", argv[2], argv[1], reply.status, reply.body);
  else
    fprintf(stderr, "publish: %s: %s\n", pusher_strerror(rv), pusher_rest_error_detail(r));
  pusher_rest_reply_free(&reply);
  pusher_rest_del(r);
  return rv == 0 ? 0 : 1;
}
