/* libFuzzer target: the connection engine's input path.
 *
 * The engine is connected to a fake server (HTTP upgrade, 101, a
 * pusher:connection_established, a few subscriptions, one of them private),
 * then the input is fed as the server's transport bytes.  The first input
 * byte selects the mode:
 *   even: the rest is raw transport bytes (WebSocket framing fuzzed too),
 *         fed in chunks whose sizes come from the input itself;
 *   odd:  the rest is split at '\n' and each line is sent as one text frame
 *         (Pusher JSON fuzzed, framing valid).
 * Timers are then run for a while of fake time so reconnect/ping paths
 * execute too.  Seed corpus: fuzz/corpus/conn/ (transcript frames). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/unit/helpers/fake_server.c"

static void rnd(uint8_t *buf, size_t n, void *u) {
  (void)u;
  memset(buf, 0x5a, n);
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *u) {
  (void)c;
  (void)u;
  (void)ev;
}

static void on_ev(pusher_client *c, const pusher_event *ev, void *u) {
  (void)c;
  (void)u;
  volatile size_t sink = ev->data_len + strlen(ev->event) + (ev->channel ? strlen(ev->channel) : 0);
  (void)sink;
}

static void auth(pusher__conn *c, const char *channel, const char *sid, uint64_t req, void *u) {
  (void)channel;
  (void)sid;
  (void)u;
  pusher__conn_auth_result(c, req, 0, 200, NULL, "k:sig", NULL, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.ws_host = "127.0.0.1";
  o.encrypted = 0;
  o.rand = rnd;
  o.max_message_size = 64 * 1024;
  pusher__conn_hooks h = {auth};
  pusher__conn *c;
  if (pusher__conn_new(&c, "app-key", &o, NULL, &h, NULL) != 0) return 0;
  pusher__conn_connection_bind(c, NULL, on_conn, NULL, NULL);
  pusher__conn_bind(c, NULL, NULL, on_ev, NULL, NULL);
  pusher__conn_subscribe(c, "my-channel", 0);
  pusher__conn_subscribe(c, "private-chat", 0);
  pusher__conn_subscribe(c, "presence-room", 0);
  fake_server fs;
  fs_init(&fs, c);
  uint64_t now = 1000;
  pusher__conn_connect(c, now);
  fs_connect(&fs, now, "1.1", 30);
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (data[0] & 1) {
    while (n) {
      const uint8_t *nl = memchr(p, '\n', n);
      size_t l = nl ? (size_t)(nl - p) : n;
      char *line = malloc(l + 1);
      memcpy(line, p, l);
      line[l] = '\0';
      size_t fl;
      uint8_t *f = fs_frame(1, line, l, &fl);
      fs_send_raw(&fs, f, fl, now);
      free(f);
      free(line);
      now += 7;
      p += l + (nl ? 1 : 0);
      n -= l + (nl ? 1 : 0);
    }
  } else {
    size_t chunk = (data[0] >> 1) + 1;
    while (n) {
      size_t l = n < chunk ? n : chunk;
      fs_send_raw(&fs, p, l, now);
      p += l;
      n -= l;
      now += 3;
    }
  }
  for (int i = 0; i < 32; i++) {
    uint64_t e = pusher__conn_expiry(c);
    if (e == PUSHER__NEVER) break;
    if (e > now) now = e;
    pusher__conn_handle_expiry(c, now);
    int a = fs_io(&fs);
    if (a == PUSHER__IO_OPEN) fs_accept(&fs, now);
  }
  pusher__conn_disconnect(c, now);
  fs_io(&fs);
  pusher__conn_del(c);
  fs_free(&fs);
  return 0;
}
