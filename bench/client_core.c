/* client_core: the cost of receiving one event in our client's core, with
 * no I/O: the sans-I/O engine (lib/core/conn.h, which owns the WebSocket
 * layer and the frame codec) is connected through a fake handshake (HTTP 101
 * with the right Sec-WebSocket-Accept, pusher:connection_established,
 * pusher_internal:subscription_succeeded), then fed --events recorded server
 * frames in --chunk byte slices, as socket reads would deliver them.  A
 * binding on the channel counts the events (and touches the data length).
 *
 * All the feeding happens inside feed_events(), so
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=feed_events \
 *     build/bench/client_core --events 20000
 * counts exactly the instructions spent delivering the events (setup and
 * teardown excluded); divide the total Ir by the event count.  Run natively
 * it also prints ns/event (wall clock; informational only).
 *
 * The frame text defaults to a message as pusherd sends it for a REST
 * trigger of a small event (78 bytes, the frame every callgrind figure in
 * bench/README.md was measured with); --frame TEXT overrides it.
 *
 * --bindings N (default 1) adds N-1 bindings that do not match the events
 * (alternately another channel with the event's name and the event's
 * channel with another name), bound before the counting one, to measure
 * the dispatch cost against the number of bindings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/conn.h"
#include "core/ws.h"

static long n_events = 20000, chunk = 65536, n_bindings = 1, got;
static size_t data_bytes;
static const char *frame_text =
    "{\"event\":\"bench\",\"channel\":\"bench\",\"data\":\"ts=1795811831123456789 i=12345 \"}";

static void rnd(uint8_t *buf, size_t n, void *u) {
  (void)u;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 131 + 7);
}

static void on_event(pusher_client *c, const pusher_event *ev, void *u) {
  (void)c; (void)u;
  got++;
  data_bytes += ev->data_len;
}

static void drain(pusher__conn *c) {
  const uint8_t *p;
  size_t n;
  while ((n = pusher__conn_io_pending(c, &p)) > 0) pusher__conn_io_consume(c, n);
}

static void send_frame(pusher__conn *c, uint64_t gen, const char *text, pusher__tstamp now) {
  uint8_t hdr[10];
  size_t len = strlen(text), hl = pusher__ws_frame_header(hdr, 1, len);
  uint8_t *f = malloc(hl + len);
  memcpy(f, hdr, hl);
  memcpy(f + hl, text, len);
  pusher__conn_io_recv(c, gen, f, hl + len, now);
  free(f);
}

/* The measured part: kept out of line so callgrind can toggle on it. */
__attribute__((noinline)) void feed_events(pusher__conn *c, uint64_t gen, const uint8_t *buf,
                                           size_t len, pusher__tstamp now);
__attribute__((noinline)) void feed_events(pusher__conn *c, uint64_t gen, const uint8_t *buf,
                                           size_t len, pusher__tstamp now) {
  for (size_t off = 0; off < len; off += (size_t)chunk) {
    size_t n = len - off < (size_t)chunk ? len - off : (size_t)chunk;
    pusher__conn_io_recv(c, gen, buf + off, n, now);
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--events")) n_events = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--chunk")) chunk = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--frame")) frame_text = argv[i + 1];
    else if (!strcmp(argv[i], "--bindings")) n_bindings = atol(argv[i + 1]);
    else { fprintf(stderr, "client_core: unknown option %s\n", argv[i]); return 2; }
  }
  if (n_events < 1 || chunk < 1 || n_bindings < 1) return 2;
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.encrypted = 0;
  o.ws_host = "127.0.0.1";
  o.ws_port = 6001;
  o.jitter = 0;
  o.rand = rnd;
  pusher__conn *c;
  pusher__conn_hooks hooks = {NULL};
  if (pusher__conn_new(&c, "app-key", &o, NULL, &hooks, NULL) != 0) return 1;
  for (long i = 1; i < n_bindings; i++) {
    char name[32];
    snprintf(name, sizeof name, "other-%ld", i);
    int r = i % 2 ? pusher__conn_bind(c, name, "bench", on_event, NULL, NULL)
                  : pusher__conn_bind(c, "bench", name, on_event, NULL, NULL);
    if (r != 0) { fprintf(stderr, "client_core: bind %ld failed (%d)\n", i, r); return 1; }
  }
  pusher__conn_bind(c, "bench", "bench", on_event, NULL, NULL);
  pusher__tstamp now = 1000000;
  pusher__conn_subscribe(c, "bench", now);
  pusher__conn_connect(c, now);
  pusher__io_req req = pusher__conn_io_want(c);
  if (req.action != PUSHER__IO_OPEN) { fprintf(stderr, "client_core: no OPEN request\n"); return 1; }
  uint64_t gen = req.gen;
  pusher__conn_io_opened(c, gen, now);

  /* The upgrade request: answer 101 with the matching accept key. */
  const uint8_t *p;
  size_t n = pusher__conn_io_pending(c, &p);
  char reqtext[4096];
  if (n >= sizeof reqtext) return 1;
  memcpy(reqtext, p, n);
  reqtext[n] = '\0';
  pusher__conn_io_consume(c, n);
  char *k = strcasestr(reqtext, "Sec-WebSocket-Key:");
  if (!k) { fprintf(stderr, "client_core: no key in upgrade request\n"); return 1; }
  k += 18;
  while (*k == ' ') k++;
  char key[64];
  size_t kl = strcspn(k, "\r\n");
  if (kl >= sizeof key) return 1;
  memcpy(key, k, kl);
  key[kl] = '\0';
  char accept[64];
  pusher__ws_accept_key(key, accept, sizeof accept);
  char reply[256];
  int rl = snprintf(reply, sizeof reply,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
  pusher__conn_io_recv(c, gen, (const uint8_t *)reply, (size_t)rl, now);
  send_frame(c, gen,
             "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"123.456\\\","
             "\\\"activity_timeout\\\":120}\"}", now);
  drain(c); /* pusher:subscribe */
  send_frame(c, gen, "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"bench\",\"data\":\"{}\"}",
             now);
  drain(c);
  if (!pusher__conn_channel_subscribed(c, "bench")) {
    fprintf(stderr, "client_core: handshake failed (state %s)\n", pusher_state_name(pusher__conn_state(c)));
    return 1;
  }

  /* The recorded stream: n_events frames back to back. */
  uint8_t hdr[10];
  size_t tl = strlen(frame_text), hl = pusher__ws_frame_header(hdr, 1, tl);
  size_t total = (hl + tl) * (size_t)n_events;
  uint8_t *buf = malloc(total);
  if (!buf) return 1;
  for (long i = 0; i < n_events; i++) {
    memcpy(buf + (size_t)i * (hl + tl), hdr, hl);
    memcpy(buf + (size_t)i * (hl + tl) + hl, frame_text, tl);
  }

  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  feed_events(c, gen, buf, total, now);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
  printf("RESULT label=client_core events=%ld delivered=%ld frame_bytes=%zu chunk=%ld bindings=%ld "
         "ns_per_event=%.1f\n",
         n_events, got, hl + tl, chunk, n_bindings, got ? ns / (double)got : -1);
  free(buf);
  pusher__conn_del(c);
  return got == n_events ? 0 : 1;
}
