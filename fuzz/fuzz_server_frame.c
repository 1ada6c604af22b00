/* libFuzzer: one client's Pusher messages -> JSON -> pusherd dispatch.
 * Input: messages separated by '\n' (each is one WebSocket text message),
 * fed to one connection of the development app; a second connection is
 * subscribed to a few channels so fan-out, presence and client events run.
 * Output frames are discarded (detached connections).
 * So that signed paths are reachable, a line "!CHANNEL[ CHANNEL_DATA]" is
 * turned into a correctly signed pusher:subscribe and "@USER_DATA" into a
 * correctly signed pusher:signin. */
#include "pusherd.h"

#include <stdlib.h>
#include <string.h>
#include "core/sign.h"

static pd_config cfg;
static pd_server srv;
static int inited;

static void setup(void) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app *a = pd_app_new("app-id", "app-key", "app-secret");
  a->max_presence_members = 4;
  pd_config_add_app(&cfg, a);
  pd_server_init(&srv, NULL, &cfg);
  inited = 1;
}

static pd_conn *fake_ws(const char *sid) {
  pd_conn *c = pd_conn_new_detached(&srv);
  c->is_ws = 1;
  c->app = cfg.apps[0];
  c->counted = 1;
  cfg.apps[0]->connections++;
  strcpy(c->socket_id, sid);
  return c;
}

static void signed_line(pd_conn *c, const uint8_t *p, size_t n) {
  char *line = pd_strndup((const char *)p, n);
  if (!line || strlen(line) != n) {
    pd_free(line);
    return;
  }
  char auth[256];
  json_t *o = NULL;
  if (line[0] == '!') {
    char *sp = strchr(line + 1, ' ');
    if (sp) *sp++ = 0;
    if (pusher__sign_channel("app-key", "app-secret", c->socket_id, line + 1, sp, auth, sizeof auth) == 0) {
      o = json_pack("{s:s,s:{s:s,s:s}}", "event", "pusher:subscribe", "data", "channel", line + 1, "auth", auth);
      if (o && sp) json_object_set_new(json_object_get(o, "data"), "channel_data", json_string(sp));
    }
  } else if (pusher__sign_user("app-key", "app-secret", c->socket_id, line + 1, auth, sizeof auth) == 0) {
    o = json_pack("{s:s,s:{s:s,s:s}}", "event", "pusher:signin", "data", "user_data", line + 1, "auth", auth);
  }
  pd_free(line);
  if (!o) return;
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (t) pd_proto_on_text(c, (const uint8_t *)t, strlen(t));
  free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!inited) setup();
  pd_conn *peer = fake_ws("1.1");
  const char *boot[] = {
      "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"public\"}}",
      "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"cache-x\"}}",
  };
  for (size_t i = 0; i < sizeof boot / sizeof *boot; i++)
    pd_proto_on_text(peer, (const uint8_t *)boot[i], strlen(boot[i]));
  pd_conn *c = fake_ws("2.2");
  size_t start = 0;
  for (size_t i = 0; i <= size; i++) {
    if (i == size || data[i] == '\n') {
      srv.fake_now_ms += 37;
      if (c->close_after_flush) break;
      if (i > start && (data[start] == '!' || data[start] == '@')) signed_line(c, data + start, i - start);
      else pd_proto_on_text(c, data + start, i - start);
      start = i + 1;
    }
  }
  pd_conn_destroy(c);
  pd_conn_destroy(peer);
  return 0;
}
