/* libFuzzer target for lib/core/ws.c.
 *
 * The first input byte picks the mode and the chunking:
 *   bit 0: 0 = client ws after a valid handshake, 1 = server ws;
 *   bit 1: 1 = client ws fed from the start (the bytes are the 101 reply);
 *   bits 2..7: chunk size (0 => whole input at once).
 * The rest is fed to pusher__ws_recv in chunks; every text message is echoed
 * from inside on_text, and the output is drained now and then.  The server
 * takes binary messages and pongs (as pusherd does); the client fails on
 * binary.  Oracles: every text message delivered is valid UTF-8 and within
 * max_msg, and every error return was reported through on_error. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/ws.h"

typedef struct fz {
  pusher__ws *ws;
  int closed, failed;
} fz;

static void on_open(void *u) { (void)u; }

#define FZ_MAX_MSG 4096

static void on_text(const uint8_t *msg, size_t len, void *u) {
  fz *f = u;
  if (len > FZ_MAX_MSG || !pusher__ws_utf8_valid(msg, len)) __builtin_trap();
  /* Re-entrancy under fuzz: queue a reply from inside the callback. */
  if (len < 64) (void)pusher__ws_send_text(f->ws, (const char *)msg, len);
  if (len == 1 && msg[0] == 'c') (void)pusher__ws_send_close(f->ws, 1000, "bye");
  if (len == 1 && msg[0] == 'p') (void)pusher__ws_send_ping(f->ws);
}

static void on_close(uint16_t code, const char *reason, size_t len, void *u) {
  fz *f = u;
  (void)code;
  if (len) {
    volatile char c = reason[len - 1];
    (void)c;
  }
  f->closed = 1;
}

static void on_error(int err, const char *detail, void *u) {
  fz *f = u;
  (void)err;
  (void)strlen(detail);
  f->failed = 1;
}

static const pusher__ws_callbacks CB = {on_open, on_text, on_close, on_error};

static void on_binary(const uint8_t *msg, size_t len, void *u) {
  (void)u;
  if (len > FZ_MAX_MSG) __builtin_trap();
  if (len) {
    volatile uint8_t c = msg[len - 1];
    (void)c;
  }
}

static void on_pong(void *u) { (void)u; }

static const pusher__ws_extra_callbacks XCB = {on_binary, on_pong};

static void rand_fixed(uint8_t *buf, size_t n, void *u) {
  (void)u;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 37u + 11u);
}

static const char REPLY_FMT[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: %s\r\n"
    "\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t sel = data[0];
  data++;
  size--;
  fz f = {0};
  pusher__ws_config cfg = {NULL, rand_fixed, NULL, FZ_MAX_MSG, 8192};
  int server = sel & 1;
  int raw_handshake = (sel >> 1) & 1;
  size_t chunk = sel >> 2;
  if (!chunk) chunk = size ? size : 1;

  if (server) {
    if (pusher__ws_server_new(&f.ws, &cfg, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &CB, &f)) return 0;
    pusher__ws_set_extra_callbacks(f.ws, &XCB);
  } else {
    if (pusher__ws_client_new(&f.ws, &cfg, "localhost:6001", "/app/key?protocol=7", NULL, &CB,
                              &f))
      return 0;
    if (!raw_handshake) {
      /* the key is derived from rand_fixed: compute the matching reply */
      const uint8_t *p;
      size_t n = pusher__ws_pending(f.ws, &p);
      const char *k = memmem(p, n, "Sec-WebSocket-Key: ", 19);
      char key[64] = {0}, accept[32], reply[256];
      if (k) {
        k += 19;
        size_t kl = 0;
        while (kl < sizeof key - 1 && k[kl] != '\r') kl++;
        memcpy(key, k, kl);
      }
      if (pusher__ws_accept_key(key, accept, sizeof accept) == 0) {
        int rl = snprintf(reply, sizeof reply, REPLY_FMT, accept);
        (void)pusher__ws_recv(f.ws, (const uint8_t *)reply, (size_t)rl);
      }
    }
  }
  const uint8_t *p;
  size_t n = pusher__ws_pending(f.ws, &p);
  pusher__ws_consume(f.ws, n);

  size_t off = 0, round = 0;
  while (off < size) {
    size_t take = size - off < chunk ? size - off : chunk;
    int rc = pusher__ws_recv(f.ws, data + off, take);
    off += take;
    if (rc < 0 && !f.failed) __builtin_trap(); /* errors are always reported */
    if (++round % 3 == 0) {
      n = pusher__ws_pending(f.ws, &p);
      if (n) {
        volatile uint8_t last = p[n - 1];
        (void)last;
      }
      pusher__ws_consume(f.ws, n / 2 + 1);
    }
  }
  (void)pusher__ws_is_open(f.ws);
  (void)pusher__ws_close_sent(f.ws);
  (void)pusher__ws_close_received(f.ws);
  if (pusher__ws_is_open(f.ws)) (void)pusher__ws_send_text(f.ws, "{}", 2);
  n = pusher__ws_pending(f.ws, &p);
  (void)n;
  pusher__ws_del(f.ws);
  return 0;
}
