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
  int opens, texts, closes, errors;
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

/* The scanner only names what wslay rejects: good traffic (fragments with a
 * ping in between, a 64 KiB frame, a close with a code and reason) passes. */
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
 * wslay 1.1 alone fails some of these splits (it checks the reason's UTF-8
 * per chunk); the client hands it every close frame in one piece. */
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
 * starts with a 2-byte code); wslay 1.1 takes it for a close without a code.
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
 * not per received chunk as wslay 1.1 does (skipping the first 2 bytes of
 * every chunk): split at every byte and byte by byte, a valid non-ASCII
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
