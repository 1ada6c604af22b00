/* Unit tests: the sans-I/O WebSocket endpoint (lib/core/ws.c).  Inputs are
 * byte-exact frames and handshake replies, fed whole, split at every byte and
 * one byte at a time; outputs are compared byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ws.h"

/* ------------------------------------------------------------------ harness */

typedef struct ev {
  int opens, texts, closes, errors, binaries, pongs;
  char binary[256]; /* last binary message */
  size_t binary_len;
  char text[4096]; /* last text message */
  size_t text_len;
  char all_texts[8192]; /* every text, '|'-separated */
  uint16_t close_code;
  char close_reason[128];
  int err;
  char detail[256];
  /* echo mode: answer every text message from inside on_text */
  int echo;
  pusher__ws *self;
  int nested_recv_rc;
} ev;

static void on_open(void *u) { ((ev *)u)->opens++; }

static void on_text(const uint8_t *msg, size_t len, void *u) {
  ev *e = u;
  e->texts++;
  size_t n = len < sizeof e->text - 1 ? len : sizeof e->text - 1;
  memcpy(e->text, msg, n);
  e->text[n] = '\0';
  e->text_len = len;
  size_t al = strlen(e->all_texts);
  snprintf(e->all_texts + al, sizeof e->all_texts - al, "%s%.*s", al ? "|" : "", (int)n,
           (const char *)msg);
  if (e->echo && e->self) {
    assert_int_equal(pusher__ws_send_text(e->self, (const char *)msg, len), 0);
    e->nested_recv_rc = pusher__ws_recv(e->self, (const uint8_t *)"x", 1);
  }
}

static void on_close(uint16_t code, const char *reason, size_t len, void *u) {
  ev *e = u;
  e->closes++;
  e->close_code = code;
  snprintf(e->close_reason, sizeof e->close_reason, "%.*s", (int)len, reason);
}

static void on_error(int err, const char *detail, void *u) {
  ev *e = u;
  e->errors++;
  e->err = err;
  snprintf(e->detail, sizeof e->detail, "%s", detail);
}

static const pusher__ws_callbacks CB = {on_open, on_text, on_close, on_error};

static void on_binary(const uint8_t *msg, size_t len, void *u) {
  ev *e = u;
  e->binaries++;
  e->binary_len = len;
  memcpy(e->binary, msg, len < sizeof e->binary ? len : sizeof e->binary);
}

static void on_pong(void *u) { ((ev *)u)->pongs++; }

static const pusher__ws_extra_callbacks XCB = {on_binary, on_pong};

static void rand_zero(uint8_t *buf, size_t n, void *u) {
  (void)u;
  memset(buf, 0, n);
}

static void rand_ctr(uint8_t *buf, size_t n, void *u) {
  uint8_t *ctr = u;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(0x5A + (*ctr)++);
}

static pusher__ws_config cfg_zero(void) {
  pusher__ws_config c = {NULL, rand_zero, NULL, 0, 0};
  return c;
}

/* Build one frame; mask NULL = unmasked. Returns its length. */
static size_t frame(uint8_t *out, int fin, uint8_t opcode, const uint8_t *mask, const void *payload,
                    size_t len) {
  size_t h = pusher__ws_frame_header(out, opcode, len);
  if (!fin) out[0] &= 0x7F;
  if (mask) {
    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    h += 4;
  }
  const uint8_t *p = payload;
  for (size_t i = 0; i < len; i++) out[h + i] = (uint8_t)(p[i] ^ (mask ? mask[i % 4] : 0));
  return h + len;
}

static const char OK_REPLY[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n"
    "\r\n";

static void drain(pusher__ws *ws) {
  const uint8_t *p;
  size_t n = pusher__ws_pending(ws, &p);
  pusher__ws_consume(ws, n);
}

/* A client after a valid handshake, with its request drained. */
static pusher__ws *open_client(ev *e, const pusher__ws_config *cfg) {
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, cfg, "example.com:80", "/app/key?protocol=7", NULL,
                                         &CB, e),
                   0);
  drain(ws);
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)OK_REPLY, sizeof OK_REPLY - 1), 0);
  assert_int_equal(e->opens, 1);
  assert_true(pusher__ws_is_open(ws));
  e->self = ws;
  return ws;
}

/* Feed in[0..n) in two pieces split at `split` (and for split == SIZE_MAX, one
 * byte at a time). */
static int feed_split(pusher__ws *ws, const uint8_t *in, size_t n, size_t split) {
  int rc = 0;
  if (split == SIZE_MAX) {
    for (size_t i = 0; i < n && rc == 0; i++) rc = pusher__ws_recv(ws, in + i, 1);
    return rc;
  }
  rc = pusher__ws_recv(ws, in, split);
  if (rc == 0) rc = pusher__ws_recv(ws, in + split, n - split);
  return rc;
}

/* ------------------------------------------------------------------ tests */

static void test_accept_key(void **st) {
  (void)st;
  char out[32];
  assert_int_equal(pusher__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_int_equal(pusher__ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", out, sizeof out), 0);
  assert_string_equal(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
  assert_int_equal(pusher__ws_accept_key("x", out, 28), PUSHER_ERR_INVALID_ARGUMENT);
}

static void test_frame_header(void **st) {
  (void)st;
  uint8_t h[10];
  assert_int_equal(pusher__ws_frame_header(h, 0x1, 0), 2);
  assert_memory_equal(h, "\x81\x00", 2);
  assert_int_equal(pusher__ws_frame_header(h, 0x1, 125), 2);
  assert_memory_equal(h, "\x81\x7d", 2);
  assert_int_equal(pusher__ws_frame_header(h, 0x1, 126), 4);
  assert_memory_equal(h, "\x81\x7e\x00\x7e", 4);
  assert_int_equal(pusher__ws_frame_header(h, 0x2, 65535), 4);
  assert_memory_equal(h, "\x82\x7e\xff\xff", 4);
  assert_int_equal(pusher__ws_frame_header(h, 0x1, 65536), 10);
  assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  assert_int_equal(pusher__ws_frame_header(h, 0x8, 0x0102030405060708ull), 10);
  assert_memory_equal(h, "\x88\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
}

static void test_utf8(void **st) {
  (void)st;
#define V(s) pusher__ws_utf8_valid((const uint8_t *)(s), sizeof(s) - 1)
  assert_true(V(""));
  assert_true(V("plain ascii"));
  assert_true(V("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  /* é € 😀 */
  assert_true(V("\xf4\x8f\xbf\xbf"));                           /* U+10FFFF */
  assert_true(V("\xed\x9f\xbf"));                               /* U+D7FF */
  assert_false(V("\xc0\xaf"));                                  /* overlong '/' */
  assert_false(V("\xe0\x80\xaf"));                              /* overlong 3-byte */
  assert_false(V("\xf0\x80\x80\xaf"));                          /* overlong 4-byte */
  assert_false(V("\xed\xa0\x80"));                              /* U+D800 surrogate */
  assert_false(V("\xed\xbf\xbf"));                              /* U+DFFF */
  assert_false(V("\xf4\x90\x80\x80"));                          /* > U+10FFFF */
  assert_false(V("\xf5\x80\x80\x80"));
  assert_false(V("\x80"));                                      /* lone continuation */
  assert_false(V("\xe2\x82"));                                  /* truncated */
  assert_false(V("\xe2\x28\xa1"));                              /* bad continuation */
  assert_false(V("\xff"));
#undef V
}

static void test_client_request_bytes(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "ws.pusherapp.com:443",
                                         "/app/abc?protocol=7&client=c", "X-Test: 1\r\n", &CB, &e),
                   0);
  const uint8_t *p;
  size_t n = pusher__ws_pending(ws, &p);
  static const char want[] =
      "GET /app/abc?protocol=7&client=c HTTP/1.1\r\n"
      "Host: ws.pusherapp.com:443\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "X-Test: 1\r\n"
      "\r\n";
  assert_int_equal(n, sizeof want - 1);
  assert_memory_equal(p, want, n);
  assert_false(pusher__ws_is_open(ws));
  assert_int_equal(pusher__ws_send_text(ws, "x", 1), PUSHER_ERR_INVALID_STATE);
  pusher__ws_consume(ws, 10);
  assert_int_equal(pusher__ws_pending(ws, &p), sizeof want - 1 - 10);
  pusher__ws_del(ws);

  /* bad arguments */
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h\r\nX: y", "/", NULL, &CB, &e),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h", "", NULL, &CB, &e),
                   PUSHER_ERR_INVALID_ARGUMENT);
}

static void test_handshake_split_every_byte(void **st) {
  (void)st;
  const size_t n = sizeof OK_REPLY - 1;
  for (size_t split = 0; split <= n + 1; split++) {
    size_t s = split == n + 1 ? SIZE_MAX : split;
    ev e = {0};
    pusher__ws_config cfg = cfg_zero();
    pusher__ws *ws = NULL;
    assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
    drain(ws);
    assert_int_equal(feed_split(ws, (const uint8_t *)OK_REPLY, n, s), 0);
    assert_int_equal(e.opens, 1);
    assert_int_equal(e.errors, 0);
    assert_true(pusher__ws_is_open(ws));
    const uint8_t *p;
    assert_int_equal(pusher__ws_pending(ws, &p), 0);
    pusher__ws_del(ws);
  }
}

static void handshake_fails(const char *reply, size_t len, int want_err, const char *want_detail) {
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
  drain(ws);
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)reply, len), want_err);
  assert_int_equal(e.opens, 0);
  assert_int_equal(e.errors, 1);
  assert_int_equal(e.err, want_err);
  if (want_detail) assert_string_equal(e.detail, want_detail);
  assert_false(pusher__ws_is_open(ws));
  /* sticky: no second callback */
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)"x", 1), want_err);
  assert_int_equal(e.errors, 1);
  pusher__ws_del(ws);
}

static void test_handshake_wrong_accept(void **st) {
  (void)st;
  static const char r[] =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "\r\n";
  handshake_fails(r, sizeof r - 1, PUSHER_ERR_HANDSHAKE, "Sec-WebSocket-Accept mismatch");
  static const char missing[] =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  handshake_fails(missing, sizeof missing - 1, PUSHER_ERR_HANDSHAKE, "missing Sec-WebSocket-Accept");
  static const char noupgrade[] =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n\r\n";
  handshake_fails(noupgrade, sizeof noupgrade - 1, PUSHER_ERR_HANDSHAKE, NULL);
  static const char noconn[] =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
      "Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n\r\n";
  handshake_fails(noconn, sizeof noconn - 1, PUSHER_ERR_HANDSHAKE, NULL);
  static const char garbage[] = "SSH-2.0-OpenSSH\r\n\r\n";
  handshake_fails(garbage, sizeof garbage - 1, PUSHER_ERR_HANDSHAKE, NULL);
}

static void test_handshake_case_insensitive(void **st) {
  (void)st;
  static const char r[] =
      "HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
      "upgrade:WebSocket\r\n"
      "CONNECTION: keep-alive, UPGRADE\r\n"
      "sec-websocket-accept:   ICX+Yqv66kxgM0FcWaLWlFLwTAI=  \r\n"
      "Server: test\r\n"
      "\r\n";
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)r, sizeof r - 1), 0);
  assert_int_equal(e.opens, 1);
  pusher__ws_del(ws);
}

static void test_handshake_404(void **st) {
  (void)st;
  static const char r[] =
      "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
  handshake_fails(r, sizeof r - 1, PUSHER_ERR_HANDSHAKE, "unexpected HTTP status 404 Not Found");
}

static void test_handshake_oversize_header(void **st) {
  (void)st;
  size_t n = 20000;
  char *big = malloc(n);
  assert_non_null(big);
  static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ";
  memcpy(big, head, sizeof head - 1);
  memset(big + sizeof head - 1, 'a', n - (sizeof head - 1));
  /* fed in 100-byte pieces: the error comes once 16 KiB is passed */
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
  int rc = 0;
  size_t off = 0;
  while (off < n && rc == 0) {
    rc = pusher__ws_recv(ws, (const uint8_t *)big + off, 100);
    off += 100;
  }
  assert_int_equal(rc, PUSHER_ERR_HANDSHAKE);
  assert_true(off > 16 * 1024 && off <= 16 * 1024 + 100);
  assert_int_equal(e.errors, 1);
  pusher__ws_del(ws);
  free(big);
}

static void test_frames_after_header_same_chunk(void **st) {
  (void)st;
  uint8_t buf[512];
  size_t n = sizeof OK_REPLY - 1;
  memcpy(buf, OK_REPLY, n);
  n += frame(buf + n, 1, 0x1, NULL, "hello", 5);
  n += frame(buf + n, 1, 0x1, NULL, "world", 5);
  for (size_t split = 0; split <= n + 1; split++) {
    ev e = {0};
    pusher__ws_config cfg = cfg_zero();
    pusher__ws *ws = NULL;
    assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
    assert_int_equal(feed_split(ws, buf, n, split == n + 1 ? SIZE_MAX : split), 0);
    assert_int_equal(e.opens, 1);
    assert_int_equal(e.texts, 2);
    assert_string_equal(e.all_texts, "hello|world");
    pusher__ws_del(ws);
  }
}

static void test_text_split_every_byte(void **st) {
  (void)st;
  /* a 300-byte message (16-bit length) with multi-byte UTF-8 straddling splits */
  char msg[301];
  for (int i = 0; i < 100; i++) memcpy(msg + 3 * i, "\xe2\x82\xac", 3);
  msg[300] = '\0';
  uint8_t buf[512];
  size_t n = frame(buf, 1, 0x1, NULL, msg, 300);
  for (size_t split = 0; split <= n + 1; split++) {
    ev e = {0};
    pusher__ws_config cfg = cfg_zero();
    pusher__ws *ws = open_client(&e, &cfg);
    assert_int_equal(feed_split(ws, buf, n, split == n + 1 ? SIZE_MAX : split), 0);
    assert_int_equal(e.texts, 1);
    assert_int_equal(e.text_len, 300);
    assert_memory_equal(e.text, msg, 300);
    pusher__ws_del(ws);
  }
}

static void test_fragmented_message(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  uint8_t buf[128];
  size_t n = 0;
  n += frame(buf + n, 0, 0x1, NULL, "Hel", 3);
  n += frame(buf + n, 1, 0x9, NULL, "p", 1); /* ping between fragments */
  n += frame(buf + n, 0, 0x0, NULL, "lo ", 3);
  n += frame(buf + n, 1, 0x0, NULL, "you", 3);
  for (size_t i = 0; i < n; i++) assert_int_equal(pusher__ws_recv(ws, buf + i, 1), 0);
  assert_int_equal(e.texts, 1);
  assert_string_equal(e.text, "Hello you");
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 7);
  assert_memory_equal(p, "\x8a\x81\x00\x00\x00\x00p", 7);
  pusher__ws_del(ws);
}

static void test_ping_pong(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  uint8_t buf[64];
  size_t n = frame(buf, 1, 0x9, NULL, "abc", 3);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  /* masked with the zero mask from rand_zero */
  assert_int_equal(pn, 9);
  assert_memory_equal(p, "\x8a\x83\x00\x00\x00\x00" "abc", 9);
  pusher__ws_consume(ws, pn);
  /* our own ping, and an unsolicited pong is ignored */
  assert_int_equal(pusher__ws_send_ping(ws), 0);
  pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 6);
  assert_memory_equal(p, "\x89\x80\x00\x00\x00\x00", 6);
  n = frame(buf, 1, 0xA, NULL, "", 0);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(e.texts + e.errors + e.closes, 0);
  pusher__ws_del(ws);
}

static void test_peer_close(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  uint8_t buf[64];
  size_t n = frame(buf, 1, 0x8, NULL, "\x0f\xa1" "bye", 5); /* 4001 "bye" */
  n += frame(buf + n, 1, 0x1, NULL, "late", 4);           /* ignored after close */
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(e.closes, 1);
  assert_int_equal(e.close_code, 4001);
  assert_string_equal(e.close_reason, "bye");
  assert_int_equal(e.texts, 0);
  assert_int_equal(e.errors, 0);
  assert_true(pusher__ws_close_received(ws));
  assert_true(pusher__ws_close_sent(ws));
  assert_false(pusher__ws_is_open(ws));
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 11);
  assert_memory_equal(p, "\x88\x85\x00\x00\x00\x00\x0f\xa1" "bye", 11);
  /* more bytes are dropped quietly */
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(e.closes, 1);
  assert_int_equal(pusher__ws_send_text(ws, "x", 1), PUSHER_ERR_INVALID_STATE);
  pusher__ws_del(ws);

  /* close without a code => 1005, empty reply */
  ev e2 = {0};
  ws = open_client(&e2, &cfg);
  n = frame(buf, 1, 0x8, NULL, "", 0);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(e2.closes, 1);
  assert_int_equal(e2.close_code, 1005);
  assert_string_equal(e2.close_reason, "");
  pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 6);
  assert_memory_equal(p, "\x88\x80\x00\x00\x00\x00", 6);
  pusher__ws_del(ws);
}

static void test_our_close_then_peer_reply(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  assert_int_equal(pusher__ws_send_close(ws, 1000, "done"), 0);
  assert_true(pusher__ws_close_sent(ws));
  assert_false(pusher__ws_is_open(ws));
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 12);
  assert_memory_equal(p, "\x88\x86\x00\x00\x00\x00\x03\xe8" "done", 12);
  pusher__ws_consume(ws, pn);
  assert_int_equal(pusher__ws_send_close(ws, 1000, ""), PUSHER_ERR_INVALID_STATE);
  uint8_t buf[32];
  size_t n = frame(buf, 1, 0x8, NULL, "\x03\xe8", 2);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(e.closes, 1);
  assert_int_equal(e.close_code, 1000);
  assert_int_equal(pusher__ws_pending(ws, &p), 0); /* no second close */
  pusher__ws_del(ws);
}

static void expect_fail_close(pusher__ws *ws, ev *e, int err, uint16_t code) {
  assert_int_equal(e->errors, 1);
  assert_int_equal(e->err, err);
  assert_false(pusher__ws_is_open(ws));
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_true(pn >= 8);
  assert_int_equal(p[0], 0x88);
  assert_int_equal(p[1] & 0x80, 0x80); /* client: masked (zero mask) */
  assert_int_equal(p[6], code >> 8);
  assert_int_equal(p[7], code & 0xff);
  assert_int_equal(pusher__ws_send_text(ws, "x", 1), PUSHER_ERR_INVALID_STATE);
}

static void test_invalid_utf8(void **st) {
  (void)st;
  static const char *bad[] = {"ab\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "x\xe2\x82"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ev e = {0};
    pusher__ws_config cfg = cfg_zero();
    pusher__ws *ws = open_client(&e, &cfg);
    uint8_t buf[64];
    size_t n = frame(buf, 1, 0x1, NULL, bad[i], strlen(bad[i]));
    n += frame(buf + n, 1, 0x1, NULL, "after", 5);
    assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_WEBSOCKET);
    assert_int_equal(e.texts, 0);
    assert_string_equal(e.detail, "invalid UTF-8 in text message");
    expect_fail_close(ws, &e, PUSHER_ERR_WEBSOCKET, 1007);
    assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_WEBSOCKET);
    assert_int_equal(e.errors, 1);
    pusher__ws_del(ws);
  }
  /* outbound text must be UTF-8 too */
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  assert_int_equal(pusher__ws_send_text(ws, "\xc0\xaf", 2), PUSHER_ERR_INVALID_ARGUMENT);
  pusher__ws_del(ws);
}

static void test_binary_frame(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  uint8_t buf[64];
  size_t n = frame(buf, 1, 0x2, NULL, "\x00\x01", 2);
  n += frame(buf + n, 1, 0x1, NULL, "after", 5);
  assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_WEBSOCKET);
  assert_string_equal(e.detail, "binary frames are not supported");
  assert_int_equal(e.texts, 0);
  expect_fail_close(ws, &e, PUSHER_ERR_WEBSOCKET, 1003);
  pusher__ws_del(ws);
}

static void test_oversize_message(void **st) {
  (void)st;
  pusher__ws_config cfg = cfg_zero();
  cfg.max_msg = 10;
  {
    ev e = {0};
    pusher__ws *ws = open_client(&e, &cfg);
    uint8_t buf[64];
    size_t n = frame(buf, 1, 0x1, NULL, "0123456789", 10); /* exactly the cap: fine */
    assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
    assert_int_equal(e.texts, 1);
    n = frame(buf, 1, 0x1, NULL, "0123456789a", 11);
    assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_MSG_TOO_LARGE);
    assert_int_equal(e.texts, 1);
    expect_fail_close(ws, &e, PUSHER_ERR_MSG_TOO_LARGE, 1009);
    pusher__ws_del(ws);
  }
  {
    /* over the cap only after reassembly */
    ev e = {0};
    pusher__ws *ws = open_client(&e, &cfg);
    uint8_t buf[64];
    size_t n = frame(buf, 0, 0x1, NULL, "012345", 6);
    n += frame(buf + n, 1, 0x0, NULL, "6789a", 5);
    assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_MSG_TOO_LARGE);
    assert_int_equal(e.texts, 0);
    expect_fail_close(ws, &e, PUSHER_ERR_MSG_TOO_LARGE, 1009);
    pusher__ws_del(ws);
  }
}

static void test_bad_frames(void **st) {
  (void)st;
  /* masked frame from the server, reserved opcode, RSV bit, fragmented ping */
  static const uint8_t masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x' ^ 1};
  static const uint8_t opcode3[] = {0x83, 0x00};
  static const uint8_t rsv[] = {0xC1, 0x01, 'x'};
  static const uint8_t fragping[] = {0x09, 0x00};
  static const uint8_t badcont[] = {0x80, 0x01, 'x'};
  const uint8_t *cases[] = {masked, opcode3, rsv, fragping, badcont};
  size_t lens[] = {sizeof masked, sizeof opcode3, sizeof rsv, sizeof fragping, sizeof badcont};
  for (size_t i = 0; i < 5; i++) {
    ev e = {0};
    pusher__ws_config cfg = cfg_zero();
    pusher__ws *ws = open_client(&e, &cfg);
    int rc = pusher__ws_recv(ws, cases[i], lens[i]);
    assert_int_equal(rc, PUSHER_ERR_WEBSOCKET);
    assert_int_equal(e.errors, 1);
    assert_int_equal(e.err, PUSHER_ERR_WEBSOCKET);
    assert_false(pusher__ws_is_open(ws));
    pusher__ws_del(ws);
  }
}

static void test_send_inside_on_text(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  e.echo = 1;
  uint8_t buf[64];
  size_t n = frame(buf, 1, 0x1, NULL, "ping", 4);
  n += frame(buf + n, 1, 0x1, NULL, "two", 3);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(e.texts, 2);
  assert_int_equal(e.nested_recv_rc, PUSHER_ERR_INVALID_STATE);
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 10 + 9);
  assert_memory_equal(p, "\x81\x84\x00\x00\x00\x00" "ping" "\x81\x83\x00\x00\x00\x00" "two", 19);
  pusher__ws_del(ws);
}

static void test_send_cap(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  cfg.max_out = 100;
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
  drain(ws);
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)OK_REPLY, sizeof OK_REPLY - 1), 0);
  char big[200];
  memset(big, 'a', sizeof big);
  assert_int_equal(pusher__ws_send_text(ws, big, 101), PUSHER_ERR_TOO_LARGE);
  assert_int_equal(pusher__ws_send_text(ws, big, 50), 0);
  assert_int_equal(pusher__ws_send_text(ws, big, 50), PUSHER_ERR_TOO_LARGE);
  drain(ws);
  assert_int_equal(pusher__ws_send_text(ws, big, 50), 0);
  pusher__ws_del(ws);
}

static void test_server_round_trip(void **st) {
  (void)st;
  uint8_t ctr = 0;
  pusher__ws_config ccfg = {NULL, rand_ctr, &ctr, 0, 0};
  pusher__ws_config scfg = {NULL, NULL, NULL, 0, 0};
  ev ce = {0}, se = {0};
  pusher__ws *c = NULL, *s = NULL;
  assert_int_equal(pusher__ws_client_new(&c, &ccfg, "h:80", "/app/k", NULL, &CB, &ce), 0);
  /* take the key out of the client's request, as the server's HTTP parser would */
  const uint8_t *p;
  size_t pn = pusher__ws_pending(c, &p);
  char req[1024];
  assert_true(pn < sizeof req);
  memcpy(req, p, pn);
  req[pn] = '\0';
  char *k = strstr(req, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  k += strlen("Sec-WebSocket-Key: ");
  *strstr(k, "\r\n") = '\0';
  pusher__ws_consume(c, pn);
  assert_int_equal(pusher__ws_server_new(&s, &scfg, k, "X-Server: pusherd\r\n", &CB, &se), 0);
  assert_true(pusher__ws_is_open(s));
  pn = pusher__ws_pending(s, &p);
  assert_non_null(strstr((const char *)p, "HTTP/1.1 101 Switching Protocols\r\n"));
  /* the server may queue frames right away: they go out after the reply */
  assert_int_equal(pusher__ws_send_text(s, "{\"event\":\"pusher:connection_established\"}", 41), 0);
  pn = pusher__ws_pending(s, &p);
  assert_int_equal(pusher__ws_recv(c, p, pn), 0);
  pusher__ws_consume(s, pn);
  assert_int_equal(ce.opens, 1);
  assert_int_equal(ce.texts, 1);
  assert_string_equal(ce.text, "{\"event\":\"pusher:connection_established\"}");

  /* client -> server: masked with a non-zero key */
  assert_int_equal(pusher__ws_send_text(c, "hi server", 9), 0);
  pn = pusher__ws_pending(c, &p);
  assert_int_equal(pn, 2 + 4 + 9);
  assert_int_equal(p[0], 0x81);
  assert_int_equal(p[1], 0x80 | 9);
  assert_memory_not_equal(p + 2, "\0\0\0\0", 4);
  assert_memory_not_equal(p + 6, "hi server", 9);
  assert_int_equal(pusher__ws_recv(s, p, pn), 0);
  pusher__ws_consume(c, pn);
  assert_int_equal(se.texts, 1);
  assert_string_equal(se.text, "hi server");

  /* server -> client: unmasked */
  assert_int_equal(pusher__ws_send_text(s, "hi client", 9), 0);
  pn = pusher__ws_pending(s, &p);
  assert_int_equal(pn, 2 + 9);
  assert_memory_equal(p, "\x81\x09" "hi client", 11);
  assert_int_equal(pusher__ws_recv(c, p, pn), 0);
  pusher__ws_consume(s, pn);
  assert_string_equal(ce.text, "hi client");

  /* fan-out style: server-encoded frame via frame_header, fed to the client */
  uint8_t fan[64];
  size_t fl = pusher__ws_frame_header(fan, 0x1, 3);
  memcpy(fan + fl, "fan", 3);
  assert_int_equal(pusher__ws_recv(c, fan, fl + 3), 0);
  assert_string_equal(ce.text, "fan");

  /* ping from server, pong from client */
  assert_int_equal(pusher__ws_send_ping(s), 0);
  pn = pusher__ws_pending(s, &p);
  assert_int_equal(pusher__ws_recv(c, p, pn), 0);
  pusher__ws_consume(s, pn);
  pn = pusher__ws_pending(c, &p);
  assert_int_equal(pn, 6);
  assert_int_equal(p[0], 0x8A);
  assert_int_equal(pusher__ws_recv(s, p, pn), 0);
  pusher__ws_consume(c, pn);

  /* client closes; server sees it and replies; client sees the reply */
  assert_int_equal(pusher__ws_send_close(c, 1000, "bye"), 0);
  pn = pusher__ws_pending(c, &p);
  assert_int_equal(pusher__ws_recv(s, p, pn), 0);
  pusher__ws_consume(c, pn);
  assert_int_equal(se.closes, 1);
  assert_int_equal(se.close_code, 1000);
  assert_string_equal(se.close_reason, "bye");
  pn = pusher__ws_pending(s, &p);
  assert_memory_equal(p, "\x88\x05\x03\xe8" "bye", 7);
  assert_int_equal(pusher__ws_recv(c, p, pn), 0);
  assert_int_equal(ce.closes, 1);
  assert_int_equal(ce.close_code, 1000);
  assert_int_equal(ce.errors + se.errors, 0);
  pusher__ws_del(c);
  pusher__ws_del(s);
}

static void test_server_rejects_unmasked(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = {NULL, NULL, NULL, 0, 0};
  pusher__ws *s = NULL;
  assert_int_equal(pusher__ws_server_new(&s, &cfg, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &CB, &e), 0);
  const uint8_t *p;
  size_t pn = pusher__ws_pending(s, &p);
  static const char want[] =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "\r\n";
  assert_int_equal(pn, sizeof want - 1);
  assert_memory_equal(p, want, pn);
  pusher__ws_consume(s, pn);
  uint8_t buf[16];
  size_t n = frame(buf, 1, 0x1, NULL, "x", 1);
  assert_int_equal(pusher__ws_recv(s, buf, n), PUSHER_ERR_WEBSOCKET);
  assert_int_equal(e.errors, 1);
  pn = pusher__ws_pending(s, &p);
  assert_memory_equal(p, "\x88\x02\x03\xea", 4); /* 1002, unmasked */
  pusher__ws_del(s);

  assert_int_equal(pusher__ws_server_new(&s, &cfg, "a\r\nX: y", NULL, &CB, &e),
                   PUSHER_ERR_INVALID_ARGUMENT);
}

static void test_ping_flood_cap(void **st) {
  (void)st;
  /* a peer that pings but never reads: pongs pile up to max_out + 64 KiB */
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  cfg.max_out = 1024;
  pusher__ws *ws = open_client(&e, &cfg);
  uint8_t ping[2 + 125];
  uint8_t payload[125];
  memset(payload, 'p', sizeof payload);
  size_t n = frame(ping, 1, 0x9, NULL, payload, sizeof payload);
  int rc = 0;
  int i;
  for (i = 0; i < 10000 && rc == 0; i++) rc = pusher__ws_recv(ws, ping, n);
  assert_int_equal(rc, PUSHER_ERR_TOO_LARGE);
  assert_int_equal(e.errors, 1);
  const uint8_t *p;
  assert_true(pusher__ws_pending(ws, &p) <= 1024 + 64 * 1024);
  pusher__ws_del(ws);
}

/* Each broken rule of a server frame is named in the error (the scanner in
 * ws.c), whatever the chunking: whole, split in two anywhere, byte by byte.
 * A good text frame comes first so the scanner has state to carry. */
static void test_bad_frame_messages(void **st) {
  (void)st;
  static const struct {
    const char *bytes;
    size_t len;
    int err;
    uint16_t code; /* close code the client sends back (0: none checked) */
    const char *detail;
  } cases[] = {
#define C(b, err, code, d) {b, sizeof(b) - 1, err, code, d}
      C("\xC1\x01x", PUSHER_ERR_WEBSOCKET, 1002,
        "reserved bit RSV1 set: a compressed frame, but compression was not negotiated"),
      C("\xA1\x01x", PUSHER_ERR_WEBSOCKET, 1002, "reserved bit RSV2 set (no extension was negotiated)"),
      C("\x91\x01x", PUSHER_ERR_WEBSOCKET, 1002, "reserved bit RSV3 set (no extension was negotiated)"),
      C("\x83\x00", PUSHER_ERR_WEBSOCKET, 1002, "reserved opcode 0x3"),
      C("\x8F\x00", PUSHER_ERR_WEBSOCKET, 1002, "reserved opcode 0xf"),
      C("\x81\x81\x01\x02\x03\x04y", PUSHER_ERR_WEBSOCKET, 1002,
        "masked frame from the server (section 5.1: servers never mask)"),
      C("\x89\x7E\x00\x7E", PUSHER_ERR_WEBSOCKET, 0,
        "control frame (opcode 0x9) with a payload over 125 bytes"),
      C("\x09\x00", PUSHER_ERR_WEBSOCKET, 0, "fragmented control frame (opcode 0x9)"),
      C("\x80\x01x", PUSHER_ERR_WEBSOCKET, 1002, "continuation frame without a message to continue"),
      C("\x01\x01x\x81\x01y", PUSHER_ERR_WEBSOCKET, 1002, "new data frame inside a fragmented message"),
      C("\x81\x7E\x00\x01x", PUSHER_ERR_WEBSOCKET, 0, "non-minimal payload length (1 in the 16-bit form)"),
      C("\x81\x7F\x00\x00\x00\x00\x00\x00\x01\x00", PUSHER_ERR_WEBSOCKET, 0,
        "non-minimal payload length (256 in the 64-bit form)"),
      C("\x81\x7F\x80\x00\x00\x00\x00\x00\x00\x00", PUSHER_ERR_WEBSOCKET, 0,
        "64-bit payload length with the most significant bit set"),
      C("\x88\x02\x03\xED", PUSHER_ERR_WEBSOCKET, 0, "invalid close code 1005"),
      C("\x88\x02\x13\x88", PUSHER_ERR_WEBSOCKET, 0, "invalid close code 5000"),
      C("\x88\x03\x03\xE8\xFF", PUSHER_ERR_WEBSOCKET, 0, "invalid UTF-8 in the close reason"),
      C("\x88\x01\x03", PUSHER_ERR_WEBSOCKET, 1002,
        "close frame with a 1-byte payload (a close body starts with a 2-byte code)"),
      /* a ping between fragments is fine; a data frame is not */
      C("\x01\x01x\x89\x00\x02\x01y", PUSHER_ERR_WEBSOCKET, 0, /* a pong is queued first */
        "new data frame inside a fragmented message"),
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t in[256];
    size_t n = frame(in, 1, 0x1, NULL, "ok", 2);
    memcpy(in + n, cases[i].bytes, cases[i].len);
    n += cases[i].len;
    for (size_t split = 0; split <= n; split++) {
      ev e = {0};
      pusher__ws_config cfg = cfg_zero();
      pusher__ws *ws = open_client(&e, &cfg);
      int rc = feed_split(ws, in, n, split == n ? SIZE_MAX : split);
      if (rc != cases[i].err) fail_msg("case %zu split %zu: rc %d", i, split, rc);
      assert_int_equal(e.errors, 1);
      assert_int_equal(e.texts, 1);
      if (strcmp(e.detail, cases[i].detail) != 0)
        fail_msg("case %zu split %zu: detail \"%s\", want \"%s\"", i, split, e.detail, cases[i].detail);
      assert_int_equal(e.closes, 0);
      if (cases[i].code) expect_fail_close(ws, &e, cases[i].err, cases[i].code);
      pusher__ws_del(ws);
    }
  }
}

/* Naming rules flags nothing good: good traffic (fragments with a ping in
 * between, a 64 KiB frame, a close with a code and reason) passes. */
static void test_good_frames_not_flagged(void **st) {
  (void)st;
  static uint8_t in[70000 + 64];
  static char big[65536];
  memset(big, 'b', sizeof big);
  size_t n = frame(in, 0, 0x1, NULL, "ab", 2);
  n += frame(in + n, 1, 0x9, NULL, "p", 1);
  n += frame(in + n, 1, 0x0, NULL, "cd", 2);
  n += frame(in + n, 1, 0x1, NULL, big, sizeof big);
  n += frame(in + n, 1, 0x8, NULL, "\x0F\xA0" "bye", 5); /* 4000 */
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  cfg.max_msg = sizeof big;
  pusher__ws *ws = open_client(&e, &cfg);
  assert_int_equal(feed_split(ws, in, n, 3), 0);
  assert_int_equal(e.errors, 0);
  assert_int_equal(e.texts, 2);
  assert_int_equal(e.closes, 1);
  assert_int_equal(e.close_code, 4000);
  assert_string_equal(e.close_reason, "bye");
  pusher__ws_del(ws);
}

/* A ping budget (set by conn.c once a second): the ping after it is spent
 * fails the connection with 1008; before the first budget, no cap. */
static void test_ping_budget(void **st) {
  (void)st;
  uint8_t ping[8];
  size_t pn = frame(ping, 1, 0x9, NULL, NULL, 0);
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = open_client(&e, &cfg);
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(pusher__ws_recv(ws, ping, pn), 0);
    drain(ws);
  }
  pusher__ws_set_ping_budget(ws, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pusher__ws_recv(ws, ping, pn), 0);
    drain(ws);
  }
  pusher__ws_set_ping_budget(ws, 3); /* refilled: three more */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pusher__ws_recv(ws, ping, pn), 0);
    drain(ws);
  }
  assert_int_equal(e.errors, 0);
  assert_int_equal(pusher__ws_recv(ws, ping, pn), PUSHER_ERR_WEBSOCKET);
  assert_string_equal(e.detail, "ping flood: more than 3 WebSocket pings in a second");
  /* a close 1008 is queued (next to the pong for the last ping) */
  const uint8_t *p;
  size_t n = pusher__ws_pending(ws, &p), off = 0;
  int close_code = 0;
  while (off + 6 <= n) { /* client frames: masked, payload < 126 */
    size_t fl = 6 + (p[off + 1] & 0x7Fu);
    if (p[off] == 0x88 && fl >= 8) close_code = (p[off + 6] << 8) | p[off + 7]; /* zero mask */
    off += fl;
  }
  assert_int_equal(off, n);
  assert_int_equal(close_code, 1008);
  pusher__ws_del(ws);
}

/* Where an abrupt end of the stream would cut it. */
static void test_cut_point(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws_config cfg = cfg_zero();
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/app/k", NULL, &CB, &e), 0);
  assert_string_equal(pusher__ws_cut_point(ws), "during the WebSocket handshake");
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)OK_REPLY, sizeof OK_REPLY - 1), 0);
  assert_null(pusher__ws_cut_point(ws));
  uint8_t in[16];
  size_t n = frame(in, 1, 0x1, NULL, "hello", 5);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(pusher__ws_recv(ws, in + i, 1), 0);
    if (i + 1 < n) assert_string_equal(pusher__ws_cut_point(ws), "in the middle of a frame");
  }
  assert_null(pusher__ws_cut_point(ws));
  assert_int_equal(e.texts, 1);
  pusher__ws_del(ws);
  assert_null(pusher__ws_cut_point(NULL));
}

/* A valid close whose reason is not ASCII, split at every byte (and byte by
 * byte): always the close (4001, reason intact), never "invalid UTF-8".
 * The reason is checked once the close frame is complete, not per read. */
static void test_close_reason_split(void **st) {
  (void)st;
  uint8_t in[64];
  size_t n = frame(in, 1, 0x1, NULL, "ok", 2);
  n += frame(in + n, 1, 0x8, NULL, "\x0F\xA1" "d\xC3\xA9j\xC3\xA0 vu \xE2\x82\xAC", 16);
  for (size_t split = 0; split <= n; split++) {
    ev e = {0};
    pusher__ws_config cfg = cfg_zero();
    pusher__ws *ws = open_client(&e, &cfg);
    int rc = feed_split(ws, in, n, split == n ? SIZE_MAX : split);
    if (rc != 0 || e.errors || e.closes != 1)
      fail_msg("split %zu: rc %d errors %d (%s) closes %d", split, rc, e.errors, e.detail, e.closes);
    assert_int_equal(e.texts, 1);
    assert_int_equal(e.close_code, 4001);
    assert_string_equal(e.close_reason, "d\xC3\xA9j\xC3\xA0 vu \xE2\x82\xAC");
    /* the close echo went out, and nothing is read after the close */
    assert_true(pusher__ws_close_received(ws));
    assert_int_equal(pusher__ws_recv(ws, in, 4), 0);
    assert_int_equal(e.texts, 1);
    pusher__ws_del(ws);
  }
}

/* ------------------------------------------------------------------ server close frames */

static pusher__ws *open_server(ev *e) {
  pusher__ws_config cfg = {NULL, NULL, NULL, 0, 0};
  pusher__ws *s = NULL;
  assert_int_equal(pusher__ws_server_new(&s, &cfg, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &CB, e), 0);
  const uint8_t *p;
  pusher__ws_consume(s, pusher__ws_pending(s, &p)); /* the 101 */
  e->self = s;
  return s;
}

static const uint8_t MASK[4] = {0x37, 0xFA, 0x21, 0x3D};
#define MASK_P MASK

/* The server's first output frame after the input: a close with `code`. */
static void expect_server_close(pusher__ws *s, uint16_t code) {
  const uint8_t *p;
  size_t pn = pusher__ws_pending(s, &p);
  assert_true(pn >= 4);
  assert_int_equal(p[0], 0x88);
  assert_int_equal(p[1] & 0x80, 0); /* servers never mask (RFC 6455 5.1) */
  assert_int_equal((uint16_t)(p[2] << 8 | p[3]), code);
}

/* A client's close with a 1-byte payload breaks RFC 6455 5.5.1 (a close body
 * starts with a 2-byte code), whatever a lenient parser might make of it.
 * The server fails the connection with 1002, however the bytes arrive. */
static void test_server_close_one_byte(void **st) {
  (void)st;
  uint8_t in[32];
  size_t n = frame(in, 1, 0x1, MASK, "ok", 2);
  n += frame(in + n, 1, 0x8, MASK, "\x03", 1);
  for (size_t split = 0; split <= n; split++) {
    ev e = {0};
    pusher__ws *s = open_server(&e);
    int rc = feed_split(s, in, n, split == n ? SIZE_MAX : split);
    if (rc != PUSHER_ERR_WEBSOCKET || e.errors != 1 || e.closes)
      fail_msg("split %zu: rc %d errors %d closes %d", split, rc, e.errors, e.closes);
    assert_int_equal(e.texts, 1);
    assert_string_equal(e.detail, "close frame with a 1-byte payload (a close body starts with a 2-byte code)");
    expect_server_close(s, 1002);
    pusher__ws_del(s);
  }
}

/* A client's close reason is checked as a whole (RFC 6455 5.5.1 and 8.1),
 * not per received chunk: split at every byte and byte by byte, a valid non-ASCII
 * reason is always a close, an invalid one always 1007. */
static void test_server_close_reason_split(void **st) {
  (void)st;
  static const char good[] = "\x0F\xA1" "d\xC3\xA9j\xC3\xA0 vu \xE2\x82\xAC";
  static const char bad[] = "\x0F\xA1" "d\xC3\xA9j\xC3\xA0 vu \xE2\x82\xFF";
  for (int v = 0; v < 2; v++) {
    uint8_t in[64];
    size_t n = frame(in, 1, 0x1, MASK, "ok", 2);
    n += frame(in + n, 1, 0x8, MASK, v ? bad : good, sizeof good - 1);
    for (size_t split = 0; split <= n; split++) {
      ev e = {0};
      pusher__ws *s = open_server(&e);
      int rc = feed_split(s, in, n, split == n ? SIZE_MAX : split);
      assert_int_equal(e.texts, 1);
      if (!v) {
        if (rc != 0 || e.errors || e.closes != 1)
          fail_msg("good, split %zu: rc %d errors %d (%s) closes %d", split, rc, e.errors, e.detail, e.closes);
        assert_int_equal(e.close_code, 4001);
        assert_string_equal(e.close_reason, "d\xC3\xA9j\xC3\xA0 vu \xE2\x82\xAC");
        assert_true(pusher__ws_close_received(s));
        expect_server_close(s, 4001); /* the echo (RFC 6455 5.5.1) */
      } else {
        if (rc != PUSHER_ERR_WEBSOCKET || e.errors != 1 || e.closes)
          fail_msg("bad, split %zu: rc %d errors %d closes %d", split, rc, e.errors, e.closes);
        assert_string_equal(e.detail, "invalid UTF-8 in the close reason");
        expect_server_close(s, 1007);
      }
      pusher__ws_del(s);
    }
  }
}

/* The server names the rule an unmasked client frame broke. */
static void test_server_unmasked_named(void **st) {
  (void)st;
  uint8_t in[16];
  size_t n = frame(in, 1, 0x1, NULL, "x", 1);
  ev e = {0};
  pusher__ws *s = open_server(&e);
  assert_int_equal(pusher__ws_recv(s, in, n), PUSHER_ERR_WEBSOCKET);
  assert_string_equal(e.detail, "unmasked frame from the client (section 5.1: clients always mask)");
  expect_server_close(s, 1002);
  pusher__ws_del(s);
}

/* ------------------------------------------------------------------ the parser, both modes */

/* A client (after the handshake) or a server (after its 101), with the
 * binary and pong callbacks set; output drained. */
static pusher__ws *open_mode(ev *e, int server, size_t max_msg, size_t max_out) {
  pusher__ws_config cfg = {NULL, rand_zero, NULL, max_msg, max_out};
  pusher__ws *ws = NULL;
  if (server) {
    assert_int_equal(pusher__ws_server_new(&ws, &cfg, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &CB, e), 0);
  } else {
    assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, e), 0);
    drain(ws);
    assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)OK_REPLY, sizeof OK_REPLY - 1), 0);
  }
  drain(ws);
  pusher__ws_set_extra_callbacks(ws, &XCB);
  e->self = ws;
  return ws;
}

/* A frame as the peer of `server` sends it: masked toward a server. */
static size_t peer_frame(int server, uint8_t *out, int fin, uint8_t op, const void *p, size_t n) {
  return frame(out, fin, op, server ? MASK_P : NULL, p, n);
}

/* Every frame kind, fed one byte at a time, in both modes: text (7-bit and
 * 16-bit lengths), binary, ping with a payload, pong, a fragmented text
 * with a ping and a pong between its fragments, and a close with a code
 * and reason.  Checks what is delivered and the exact pongs and close echo. */
static void test_every_kind_byte_by_byte(void **st) {
  (void)st;
  static char mid[300];
  memset(mid, 'm', sizeof mid);
  for (int server = 0; server < 2; server++) {
    static uint8_t in[1024];
    size_t n = 0;
    n += peer_frame(server, in + n, 1, 0x1, "short", 5);
    n += peer_frame(server, in + n, 1, 0x1, mid, sizeof mid);
    n += peer_frame(server, in + n, 1, 0x2, "\x00\xff\x01", 3);
    n += peer_frame(server, in + n, 1, 0x9, "ping!", 5);
    n += peer_frame(server, in + n, 1, 0xA, "", 0);
    n += peer_frame(server, in + n, 0, 0x1, "frag", 4);
    n += peer_frame(server, in + n, 1, 0x9, "", 0);
    n += peer_frame(server, in + n, 0, 0x0, "men", 3);
    n += peer_frame(server, in + n, 1, 0xA, "x", 1);
    n += peer_frame(server, in + n, 1, 0x0, "ted", 3);
    n += peer_frame(server, in + n, 1, 0x8, "\x03\xe9" "gone", 6); /* 1001 */
    ev e = {0};
    pusher__ws *ws = open_mode(&e, server, 0, 0);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(pusher__ws_recv(ws, in + i, 1), 0);
      /* a header, or a payload, cut anywhere waits for the rest */
      if (i + 1 < n) assert_int_equal(e.closes, 0);
    }
    assert_int_equal(e.errors, 0);
    assert_int_equal(e.texts, 3);
    char want_texts[400];
    snprintf(want_texts, sizeof want_texts, "short|%.*s|fragmented", (int)sizeof mid, mid);
    assert_string_equal(e.all_texts, want_texts);
    assert_int_equal(e.binaries, 1);
    assert_int_equal(e.binary_len, 3);
    assert_memory_equal(e.binary, "\x00\xff\x01", 3);
    assert_int_equal(e.pongs, 2);
    assert_int_equal(e.closes, 1);
    assert_int_equal(e.close_code, 1001);
    assert_string_equal(e.close_reason, "gone");
    /* two pongs echoing the pings' payloads, then the close echo; a client
     * masks them (zero mask from rand_zero), a server does not */
    uint8_t want[64];
    size_t wn = 0;
    const uint8_t *zero = server ? NULL : (const uint8_t *)"\0\0\0\0";
    wn += frame(want + wn, 1, 0xA, zero, "ping!", 5);
    wn += frame(want + wn, 1, 0xA, zero, "", 0);
    wn += frame(want + wn, 1, 0x8, zero, "\x03\xe9" "gone", 6);
    const uint8_t *p;
    size_t pn = pusher__ws_pending(ws, &p);
    assert_int_equal(pn, wn);
    assert_memory_equal(p, want, wn);
    pusher__ws_del(ws);
  }
}

/* 16-bit and 64-bit payload lengths at their bounds, whole and in pieces;
 * the non-minimal forms of the largest lengths the shorter form holds are
 * refused (section 5.2: "the minimal number of bytes MUST be used"). */
static void test_extended_lengths(void **st) {
  (void)st;
  static const size_t sizes[] = {125, 126, 65535, 65536, 70000};
  static uint8_t in[70000 + 64];
  static char big[70000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  for (int server = 0; server < 2; server++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t n = peer_frame(server, in, 1, 0x1, big, sizes[s]);
      assert_int_equal(n - sizes[s], (sizes[s] < 126 ? 2 : sizes[s] < 65536 ? 4 : 10) + (server ? 4 : 0));
      for (size_t chunk = 1; chunk <= n; chunk = chunk * 7 + 1) {
        ev e = {0};
        pusher__ws *ws = open_mode(&e, server, sizeof big, 0);
        int rc = 0;
        for (size_t off = 0; off < n && rc == 0; off += chunk)
          rc = pusher__ws_recv(ws, in + off, off + chunk <= n ? chunk : n - off);
        assert_int_equal(rc, 0);
        assert_int_equal(e.texts, 1);
        assert_int_equal(e.text_len, sizes[s]);
        assert_memory_equal(e.text, big, sizes[s] < sizeof e.text - 1 ? sizes[s] : sizeof e.text - 1);
        pusher__ws_del(ws);
      }
    }
    /* 125 in the 16-bit form, 65535 in the 64-bit form */
    static const uint8_t nm16[] = {0x81, 0x7E, 0x00, 0x7D};
    static const uint8_t nm64[] = {0x81, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    const uint8_t *bad[] = {nm16, nm64};
    size_t badlen[] = {sizeof nm16, sizeof nm64};
    const char *detail[] = {"non-minimal payload length (125 in the 16-bit form)",
                            "non-minimal payload length (65535 in the 64-bit form)"};
    for (int b = 0; b < 2; b++) {
      ev e = {0};
      pusher__ws *ws = open_mode(&e, server, 0, 0);
      uint8_t hdr[16];
      memcpy(hdr, bad[b], badlen[b]);
      size_t hl = badlen[b];
      if (server) {
        hdr[1] |= 0x80;
        memcpy(hdr + hl, MASK_P, 4);
        hl += 4;
      }
      assert_int_equal(pusher__ws_recv(ws, hdr, hl), PUSHER_ERR_WEBSOCKET);
      assert_string_equal(e.detail, detail[b]);
      const uint8_t *p;
      assert_true(pusher__ws_pending(ws, &p) >= 4);
      assert_int_equal(p[0], 0x88);
      pusher__ws_del(ws);
    }
  }
}

/* max_msg, both modes: exactly max_msg passes (in one frame and across
 * fragments); one byte over fails with 1009 as soon as the header that
 * takes the message over arrives, before any of its payload. */
static void test_max_msg_exact_and_over(void **st) {
  (void)st;
  char body[64];
  memset(body, 'x', sizeof body);
  for (int server = 0; server < 2; server++) {
    uint8_t in[256];
    {
      ev e = {0};
      pusher__ws *ws = open_mode(&e, server, 32, 0);
      size_t n = peer_frame(server, in, 1, 0x1, body, 32);
      n += peer_frame(server, in + n, 0, 0x1, body, 20);
      n += peer_frame(server, in + n, 1, 0x0, body, 12);
      n += peer_frame(server, in + n, 1, 0x2, body, 32);
      assert_int_equal(pusher__ws_recv(ws, in, n), 0);
      assert_int_equal(e.texts, 2);
      assert_int_equal(e.text_len, 32);
      assert_int_equal(e.binaries, 1);
      assert_int_equal(e.binary_len, 32);
      pusher__ws_del(ws);
    }
    for (int frag = 0; frag < 2; frag++) {
      ev e = {0};
      pusher__ws *ws = open_mode(&e, server, 32, 0);
      size_t n = frag ? peer_frame(server, in, 0, 0x1, body, 20) : 0;
      size_t at = n;
      n += peer_frame(server, in + n, 1, frag ? 0x0 : 0x1, body, frag ? 13 : 33);
      /* everything before the payload of the frame that goes over */
      size_t hl = 2 + (server ? 4 : 0);
      assert_int_equal(pusher__ws_recv(ws, in, at + hl), PUSHER_ERR_MSG_TOO_LARGE);
      assert_int_equal(e.err, PUSHER_ERR_MSG_TOO_LARGE);
      assert_string_equal(e.detail, "message over 32 bytes");
      assert_int_equal(e.texts, 0);
      const uint8_t *p;
      size_t pn = pusher__ws_pending(ws, &p);
      assert_true(pn >= 4);
      assert_int_equal(p[0], 0x88);
      size_t off = server ? 2 : 6;
      assert_int_equal(p[off] << 8 | p[off + 1], 1009);
      pusher__ws_del(ws);
    }
  }
}

/* Client frames are masked with a fresh key from the injected rand function
 * for each frame (section 5.3); server frames are never masked. */
static void test_masking_per_mode(void **st) {
  (void)st;
  uint8_t ctr = 0;
  pusher__ws_config cfg = {NULL, rand_ctr, &ctr, 0, 0};
  ev e = {0};
  pusher__ws *ws = NULL;
  /* the client's key comes from the rand function: answer with its accept */
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  char req[512];
  memcpy(req, p, pn);
  req[pn] = '\0';
  char *k = strstr(req, "Sec-WebSocket-Key: ") + strlen("Sec-WebSocket-Key: ");
  *strstr(k, "\r\n") = '\0';
  char acc[32], reply[256];
  assert_int_equal(pusher__ws_accept_key(k, acc, sizeof acc), 0);
  int rl = snprintf(reply, sizeof reply,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
  pusher__ws_del(ws);
  ev e2 = {0};
  ctr = 0; /* the same key again */
  assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e2), 0);
  assert_int_equal(ctr, 16); /* the Sec-WebSocket-Key nonce */
  drain(ws);
  assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)reply, (size_t)rl), 0);
  assert_int_equal(e2.opens, 1);
  static char msg[40];
  memset(msg, 'q', sizeof msg);
  for (int f = 0; f < 3; f++) {
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = (uint8_t)(0x5A + ctr + i); /* what rand_ctr gives next */
    assert_int_equal(pusher__ws_send_text(ws, msg, sizeof msg), 0);
    pn = pusher__ws_pending(ws, &p);
    assert_int_equal(pn, 2 + 4 + sizeof msg);
    assert_int_equal(p[1], 0x80 | sizeof msg);
    assert_memory_equal(p + 2, key, 4);
    for (size_t i = 0; i < sizeof msg; i++) assert_int_equal(p[6 + i] ^ key[i % 4], 'q');
    drain(ws);
  }
  pusher__ws_del(ws);

  /* a server's frames: mask bit clear, no key */
  ev se = {0};
  pusher__ws *s = open_mode(&se, 1, 0, 0);
  assert_int_equal(pusher__ws_send_text(s, msg, sizeof msg), 0);
  assert_int_equal(pusher__ws_send_ping(s), 0);
  assert_int_equal(pusher__ws_send_close(s, 4000, "bye"), 0);
  pn = pusher__ws_pending(s, &p);
  assert_int_equal(pn, 2 + sizeof msg + 2 + 2 + 5);
  assert_int_equal(p[1], sizeof msg);
  assert_memory_equal(p + 2, msg, sizeof msg);
  assert_memory_equal(p + 2 + sizeof msg, "\x89\x00\x88\x05\x0f\xa0" "bye", 9);
  pusher__ws_del(s);
}

/* UTF-8 split across frames and reads: every way of cutting a message of
 * 2-, 3- and 4-byte sequences into two fragments, fed whole and byte by
 * byte, is delivered intact.  Invalid sequences split the same way fail
 * with 1007 as soon as the offending byte arrives, before the message
 * ends, and a message that ends inside a sequence fails at its last frame. */
static void test_utf8_split_across_frames(void **st) {
  (void)st;
  static const char good[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"; /* a é € 😀 z */
  const size_t gl = sizeof good - 1;
  for (int server = 0; server < 2; server++) {
    for (size_t cut = 0; cut <= gl; cut++) {
      uint8_t in[128];
      size_t n = peer_frame(server, in, 0, 0x1, good, cut);
      n += peer_frame(server, in + n, 1, 0x9, "", 0); /* a ping in between */
      n += peer_frame(server, in + n, 1, 0x0, good + cut, gl - cut);
      for (int bytewise = 0; bytewise < 2; bytewise++) {
        ev e = {0};
        pusher__ws *ws = open_mode(&e, server, 0, 0);
        assert_int_equal(feed_split(ws, in, n, bytewise ? SIZE_MAX : n / 2), 0);
        assert_int_equal(e.errors, 0);
        assert_int_equal(e.texts, 1);
        assert_int_equal(e.text_len, gl);
        assert_memory_equal(e.text, good, gl);
        pusher__ws_del(ws);
      }
    }
    /* Bad: the first fragment ends inside a sequence, the second (not the
     * last: the message never ends here) breaks it. */
    static const struct {
      const char *a, *b;
    } bad[] = {
        {"ok\xC3", "("},           /* 2-byte lead, then ASCII */
        {"\xE2\x82", "\x41"},      /* 3-byte, broken at its third byte */
        {"\xE0", "\x80\x80"},      /* overlong 3-byte */
        {"\xED", "\xA0\x80"},      /* surrogate U+D800 */
        {"\xF4", "\x90\x80\x80"},  /* over U+10FFFF */
        {"\xF0\x9F", "\x98"},      /* fine so far: see below */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      uint8_t in[64];
      size_t n = peer_frame(server, in, 0, 0x1, bad[i].a, strlen(bad[i].a));
      n += peer_frame(server, in + n, 0, 0x0, bad[i].b, strlen(bad[i].b));
      ev e = {0};
      pusher__ws *ws = open_mode(&e, server, 0, 0);
      int rc = feed_split(ws, in, n, SIZE_MAX);
      if (i == 5) {
        /* a valid prefix: nothing happens until the message ends */
        assert_int_equal(rc, 0);
        assert_int_equal(e.errors, 0);
        size_t m = peer_frame(server, in, 1, 0x0, "", 0);
        assert_int_equal(pusher__ws_recv(ws, in, m), PUSHER_ERR_WEBSOCKET);
      } else {
        assert_int_equal(rc, PUSHER_ERR_WEBSOCKET);
      }
      assert_int_equal(e.errors, 1);
      assert_int_equal(e.texts, 0);
      assert_string_equal(e.detail, "invalid UTF-8 in text message");
      const uint8_t *p;
      size_t pn = pusher__ws_pending(ws, &p);
      assert_true(pn >= 4);
      size_t off = server ? 2 : 6;
      assert_int_equal(p[off] << 8 | p[off + 1], 1007);
      pusher__ws_del(ws);
    }
  }
}

/* Close frames, both modes: with and without a payload, every valid code
 * echoed; invalid codes fail with 1002 (section 7.4). */
static void test_close_codes(void **st) {
  (void)st;
  static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (int server = 0; server < 2; server++) {
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
      for (int with_reason = 0; with_reason < 2; with_reason++) {
        uint8_t pl[8] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i], 'w', 'h', 'y'};
        uint8_t in[32];
        size_t n = peer_frame(server, in, 1, 0x8, pl, with_reason ? 5 : 2);
        ev e = {0};
        pusher__ws *ws = open_mode(&e, server, 0, 0);
        assert_int_equal(pusher__ws_recv(ws, in, n), 0);
        assert_int_equal(e.closes, 1);
        assert_int_equal(e.close_code, good[i]);
        assert_string_equal(e.close_reason, with_reason ? "why" : "");
        assert_true(pusher__ws_close_received(ws));
        assert_true(pusher__ws_close_sent(ws));
        const uint8_t *p;
        size_t pn = pusher__ws_pending(ws, &p);
        size_t off = server ? 2 : 6;
        assert_int_equal(pn, off + (with_reason ? 5 : 2));
        assert_int_equal(p[off] << 8 | p[off + 1], good[i]);
        pusher__ws_del(ws);
      }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      uint8_t pl[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
      uint8_t in[16];
      size_t n = peer_frame(server, in, 1, 0x8, pl, 2);
      ev e = {0};
      pusher__ws *ws = open_mode(&e, server, 0, 0);
      assert_int_equal(pusher__ws_recv(ws, in, n), PUSHER_ERR_WEBSOCKET);
      char want[64];
      snprintf(want, sizeof want, "invalid close code %u", bad[i]);
      assert_string_equal(e.detail, want);
      assert_int_equal(e.closes, 0);
      const uint8_t *p;
      pusher__ws_pending(ws, &p);
      size_t off = server ? 2 : 6;
      assert_int_equal(p[off] << 8 | p[off + 1], 1002);
      pusher__ws_del(ws);
    }
    /* a close in the middle of a fragmented message ends it: the message
     * is never delivered, nothing after the close is read */
    uint8_t in[64];
    size_t n = peer_frame(server, in, 0, 0x1, "half", 4);
    n += peer_frame(server, in + n, 1, 0x8, "", 0);
    n += peer_frame(server, in + n, 1, 0x0, "rest", 4);
    ev e = {0};
    pusher__ws *ws = open_mode(&e, server, 0, 0);
    assert_int_equal(pusher__ws_recv(ws, in, n), 0);
    assert_int_equal(e.closes, 1);
    assert_int_equal(e.close_code, 1005);
    assert_int_equal(e.texts, 0);
    assert_int_equal(e.errors, 0);
    pusher__ws_del(ws);
  }
}

/* A peer that pings but never reads our output: a server answers every
 * ping until its pongs fill max_out + 64 KiB of control slack, then fails
 * with PUSHER_ERR_TOO_LARGE; what is queued is whole pong frames. */
static void test_server_ping_never_reads(void **st) {
  (void)st;
  ev e = {0};
  pusher__ws *s = open_mode(&e, 1, 0, 1024);
  uint8_t payload[125], ping[2 + 4 + 125];
  memset(payload, 'p', sizeof payload);
  size_t n = peer_frame(1, ping, 1, 0x9, payload, sizeof payload);
  int rc = 0, pings = 0;
  while (rc == 0 && pings < 100000) {
    rc = pusher__ws_recv(s, ping, n);
    pings++;
  }
  assert_int_equal(rc, PUSHER_ERR_TOO_LARGE);
  assert_string_equal(e.detail, "outbound queue over 66560 bytes (peer not reading)");
  const uint8_t *p;
  size_t pn = pusher__ws_pending(s, &p);
  assert_int_equal(pn % (2 + 125), 0);
  assert_int_equal(pn / (2 + 125), pings - 1); /* every ping but the last answered */
  assert_true(pn <= 1024 + 64 * 1024);
  assert_true(pn + 2 + 125 > 1024 + 64 * 1024);
  for (size_t off = 0; off < pn; off += 2 + 125) assert_memory_equal(p + off, "\x8a\x7d" "ppp", 5);
  /* the data queue's own cap is max_out, whatever the slack holds */
  assert_int_equal(pusher__ws_send_text(s, "x", 1), PUSHER_ERR_INVALID_STATE);
  pusher__ws_del(s);
}

/* ------------------------------------------------------------------ memory of an idle connection */

typedef struct counting {
  long live;     /* allocations not yet freed */
  long total;    /* allocations ever made */
  long reallocs; /* realloc calls that resized a block */
} counting;

static void *c_malloc(size_t n, void *u) {
  counting *c = u;
  void *p = malloc(n);
  if (p) c->live++, c->total++;
  return p;
}
static void c_free(void *p, void *u) {
  if (p) ((counting *)u)->live--;
  free(p);
}
static void *c_calloc(size_t n, size_t sz, void *u) {
  counting *c = u;
  void *p = calloc(n, sz);
  if (p) c->live++, c->total++;
  return p;
}
static void *c_realloc(void *p, size_t n, void *u) {
  counting *c = u;
  void *q = realloc(p, n);
  if (q && !p) c->live++, c->total++;
  if (p) c->reallocs++;
  return q;
}

/* An open connection with no partial frame and nothing queued holds one
 * allocation (its struct), in both modes: the handshake state, the output
 * buffer, the reassembly buffer and a partial control frame are freed as
 * soon as they empty.  A whole unmasked frame is delivered without any
 * allocation (client mode). */
static void test_idle_holds_only_the_struct(void **st) {
  (void)st;
  for (int server = 0; server < 2; server++) {
    counting cnt = {0, 0, 0};
    pusher_mem mem = {&cnt, c_malloc, c_free, c_calloc, c_realloc};
    pusher__ws_config cfg = {&mem, rand_zero, NULL, 0, 0};
    ev e = {0};
    pusher__ws *ws = NULL;
    if (server) {
      assert_int_equal(pusher__ws_server_new(&ws, &cfg, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &CB, &e), 0);
    } else {
      assert_int_equal(pusher__ws_client_new(&ws, &cfg, "h:80", "/", NULL, &CB, &e), 0);
      drain(ws);
      assert_true(cnt.live > 1); /* the handshake state */
      assert_int_equal(pusher__ws_recv(ws, (const uint8_t *)OK_REPLY, sizeof OK_REPLY - 1), 0);
    }
    drain(ws);
    pusher__ws_set_extra_callbacks(ws, &XCB);
    assert_int_equal(cnt.live, 1);
    uint8_t in[600];
    static char body[300];
    memset(body, 'b', sizeof body);
    /* a whole frame */
    size_t n = peer_frame(server, in, 1, 0x1, body, sizeof body);
    long before = cnt.total;
    assert_int_equal(pusher__ws_recv(ws, in, n), 0);
    assert_int_equal(e.texts, 1);
    assert_int_equal(cnt.live, 1);
    if (!server) assert_int_equal(cnt.total, before); /* no copy at all */
    /* a frame in two reads: buffered in between, freed after */
    assert_int_equal(pusher__ws_recv(ws, in, n / 2), 0);
    assert_true(cnt.live > 1);
    assert_string_equal(pusher__ws_cut_point(ws) ? pusher__ws_cut_point(ws) : "server",
                        server ? "server" : "in the middle of a frame");
    assert_int_equal(pusher__ws_recv(ws, in + n / 2, n - n / 2), 0);
    assert_int_equal(e.texts, 2);
    assert_int_equal(cnt.live, 1);
    /* a fragmented message with a ping between the fragments */
    n = peer_frame(server, in, 0, 0x1, "ab", 2);
    n += peer_frame(server, in + n, 1, 0x9, "p", 1);
    assert_int_equal(pusher__ws_recv(ws, in, n), 0);
    assert_true(cnt.live > 1); /* the message so far, and the pong queued */
    drain(ws);
    n = peer_frame(server, in, 1, 0x0, "cd", 2);
    assert_int_equal(pusher__ws_recv(ws, in, n), 0);
    assert_string_equal(e.text, "abcd");
    assert_int_equal(cnt.live, 1);
    /* a partial control frame */
    n = peer_frame(server, in, 1, 0x9, "ping", 4);
    assert_int_equal(pusher__ws_recv(ws, in, n - 2), 0);
    assert_true(cnt.live > 1);
    assert_int_equal(pusher__ws_recv(ws, in + n - 2, 2), 0);
    drain(ws);
    assert_int_equal(cnt.live, 1);
    /* output queued, then written out in two parts */
    assert_int_equal(pusher__ws_send_text(ws, "out", 3), 0);
    assert_int_equal(cnt.live, 2);
    pusher__ws_consume(ws, 1);
    assert_int_equal(cnt.live, 2);
    drain(ws);
    assert_int_equal(cnt.live, 1);
    assert_int_equal(e.errors, 0);
    /* 4,000 one-byte fragments: the reassembly buffer grows by doubling,
     * not once per fragment (no quadratic copying) */
    static uint8_t frags[4000 * 10];
    n = 0;
    for (int i = 0; i < 4000; i++)
      n += peer_frame(server, frags + n, i == 3999, i ? 0x0 : 0x1, "f", 1);
    cnt.reallocs = 0;
    assert_int_equal(feed_split(ws, frags, n, n / 3), 0);
    assert_int_equal(e.text_len, 4000);
    assert_true(cnt.reallocs <= 8);
    assert_int_equal(cnt.live, 1);
    assert_int_equal(e.errors, 0);
    pusher__ws_del(ws);
    assert_int_equal(cnt.live, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_key),
      cmocka_unit_test(test_frame_header),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_client_request_bytes),
      cmocka_unit_test(test_handshake_split_every_byte),
      cmocka_unit_test(test_handshake_wrong_accept),
      cmocka_unit_test(test_handshake_case_insensitive),
      cmocka_unit_test(test_handshake_404),
      cmocka_unit_test(test_handshake_oversize_header),
      cmocka_unit_test(test_frames_after_header_same_chunk),
      cmocka_unit_test(test_text_split_every_byte),
      cmocka_unit_test(test_fragmented_message),
      cmocka_unit_test(test_ping_pong),
      cmocka_unit_test(test_peer_close),
      cmocka_unit_test(test_our_close_then_peer_reply),
      cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_binary_frame),
      cmocka_unit_test(test_oversize_message),
      cmocka_unit_test(test_bad_frames),
      cmocka_unit_test(test_send_inside_on_text),
      cmocka_unit_test(test_send_cap),
      cmocka_unit_test(test_server_round_trip),
      cmocka_unit_test(test_server_rejects_unmasked),
      cmocka_unit_test(test_ping_flood_cap),
      cmocka_unit_test(test_bad_frame_messages),
      cmocka_unit_test(test_good_frames_not_flagged),
      cmocka_unit_test(test_ping_budget),
      cmocka_unit_test(test_cut_point),
      cmocka_unit_test(test_close_reason_split),
      cmocka_unit_test(test_server_close_one_byte),
      cmocka_unit_test(test_server_close_reason_split),
      cmocka_unit_test(test_server_unmasked_named),
      cmocka_unit_test(test_every_kind_byte_by_byte),
      cmocka_unit_test(test_extended_lengths),
      cmocka_unit_test(test_max_msg_exact_and_over),
      cmocka_unit_test(test_masking_per_mode),
      cmocka_unit_test(test_utf8_split_across_frames),
      cmocka_unit_test(test_close_codes),
      cmocka_unit_test(test_server_ping_never_reads),
      cmocka_unit_test(test_idle_holds_only_the_struct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
