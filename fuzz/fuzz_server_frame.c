/* libFuzzer: one client's Pusher messages -> the pusherd server core
 * (src/server/core, no I/O).  Input: messages separated by '\n' (each is one
 * WebSocket text message), fed to one session of the development app; a
 * second session is subscribed to a few channels so fan-out, presence and
 * client events run.  Sessions use the recording sink of
 * tests/unit/server_rec.h (frames are decoded and kept, then dropped).
 * So that signed paths are reachable, a line "!CHANNEL[ CHANNEL_DATA]" is
 * turned into a correctly signed pusher:subscribe and "@USER_DATA" into a
 * correctly signed pusher:signin.  Time advances 37 ms per message. */
#include "server_rec.h"

static pd_config cfg;
static pd_core core;
static int inited;

static void setup(void) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->max_presence_members = 4;
  pd_config_add_app(&cfg, a);
  pd_core_init(&core, &cfg, &pd_adapter_local, NULL);
  inited = 1;
}

static void signed_line(rec *c, const uint8_t *p, size_t n) {
  char *line = pd_strndup((const char *)p, n);
  if (!line || strlen(line) != n) {
    pd_free(line);
    return;
  }
  if (line[0] == '!') {
    char *sp = strchr(line + 1, ' ');
    if (sp) *sp++ = 0;
    rec_subscribe_signed(c, line + 1, sp);
  } else {
    rec_signin(c, line + 1);
  }
  pd_free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!inited) setup();
  pd_core_set_time(&core, 1000, 1700000000);
  rec *peer = rec_open(&core, "app-key");
  rec_text(peer, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"public\"}}");
  rec_text(peer, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"cache-x\"}}");
  rec *c = rec_open(&core, "app-key");
  size_t start = 0;
  for (size_t i = 0; i <= size; i++) {
    if (i == size || data[i] == '\n') {
      pd_core_set_time(&core, core.now_ms + 37, core.wall_s);
      if (c->s.ended) break;
      if (i > start && (data[start] == '!' || data[start] == '@')) signed_line(c, data + start, i - start);
      else pd_session_on_text(&c->s, data + start, i - start);
      rec_clear(c);
      rec_clear(peer);
      start = i + 1;
    }
  }
  pd_core_tick(&core);
  rec_free(c);
  rec_free(peer);
  return 0;
}
