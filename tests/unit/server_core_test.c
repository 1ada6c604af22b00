/* Unit tests for pusherd: its WebSocket codec (the core's, lib/core/ws.h, in
 * server mode: RFC 6455 vectors, 1007 on invalid UTF-8), the server core's
 * message dispatch seen through a recording sink (channels, presence
 * membership rules, malformed input), the net layer's HTTP handling on a
 * detached connection (one 413, 408 at the header deadline), and the
 * config loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ws.h"
#include "net/pd_net.h"
#include "server_rec.h"

/* ------------------------------------------------------------ framer */
/* pusherd's WebSocket codec is the core's (lib/core/ws.h) in server mode. */
typedef struct wsrec {
  char text[512];
  size_t text_len;
  int texts, binaries, closes, errors, pongs;
  int close_code, error_code;
} wsrec;

static void r_text(const uint8_t *m, size_t n, void *ud) {
  wsrec *r = ud;
  memcpy(r->text, m, n < sizeof r->text ? n : sizeof r->text);
  r->text_len = n;
  r->texts++;
}
static void r_bin(const uint8_t *m, size_t n, void *ud) { ((wsrec *)ud)->binaries++; }
static void r_close(uint16_t code, const char *reason, size_t rl, void *ud) {
  ((wsrec *)ud)->closes++;
  ((wsrec *)ud)->close_code = code;
}
static void r_err(int code, const char *why, void *ud) {
  ((wsrec *)ud)->errors++;
  ((wsrec *)ud)->error_code = code;
}
static void r_pong(void *ud) { ((wsrec *)ud)->pongs++; }
static const pusher__ws_callbacks rcb = {.on_text = r_text, .on_close = r_close, .on_error = r_err};
static const pusher__ws_extra_callbacks rxcb = {.on_binary = r_bin, .on_pong = r_pong};

static pusher__ws *new_ws(wsrec *r, size_t max) {
  memset(r, 0, sizeof *r);
  pusher__ws_config cfg = {.max_msg = max};
  pusher__ws *ws = NULL;
  assert_int_equal(pusher__ws_server_new(&ws, &cfg, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &rcb, r), 0);
  pusher__ws_set_extra_callbacks(ws, &rxcb);
  const uint8_t *p;
  size_t n = pusher__ws_pending(ws, &p);
  assert_true(n > 0);
  assert_non_null(strstr((const char *)p, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  pusher__ws_consume(ws, n);
  return ws;
}

/* masked client frame */
static size_t mk(uint8_t *out, int fin, int op, const char *payload, size_t n) {
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = 0;
  out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
  if (n < 126) out[h++] = (uint8_t)(0x80 | n);
  else {
    out[h++] = 0x80 | 126;
    out[h++] = (uint8_t)(n >> 8);
    out[h++] = (uint8_t)n;
  }
  memcpy(out + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < n; i++) out[h + i] = (uint8_t)payload[i] ^ mask[i & 3];
  return h + n;
}

/* The close code of the close frame at the end of the pending output. */
static int pending_close_code(pusher__ws *ws) {
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_true(pn >= 4);
  assert_int_equal(p[0], 0x88);
  return (p[2] << 8) | p[3];
}

static void test_rfc_vectors(void **st) {
  char acc[32];
  assert_int_equal(pusher__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc, sizeof acc), 0);
  assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  wsrec r;
  pusher__ws *ws = new_ws(&r, 1024);
  /* RFC 6455 §5.7: a masked "Hello" */
  const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  /* byte by byte: partial input must wait */
  for (size_t i = 0; i < sizeof hello; i++) assert_int_equal(pusher__ws_recv(ws, hello + i, 1), 0);
  assert_int_equal(r.texts, 1);
  assert_int_equal(r.text_len, 5);
  assert_memory_equal(r.text, "Hello", 5);
  /* fragmented with a ping in between */
  uint8_t buf[600];
  size_t n = mk(buf, 0, 1, "Hel", 3);
  n += mk(buf + n, 1, 9, "p", 1);
  n += mk(buf + n, 1, 0, "lo!", 3);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(r.texts, 2);
  assert_memory_equal(r.text, "Hello!", 6);
  const uint8_t *p;
  size_t pn = pusher__ws_pending(ws, &p);
  assert_int_equal(pn, 3);
  assert_int_equal(p[0], 0x8A); /* pong, unmasked, echoing "p" */
  assert_int_equal(p[2], 'p');
  pusher__ws_consume(ws, pn);
  /* a pong from the client is reported */
  n = mk(buf, 1, 0xA, "", 0);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(r.pongs, 1);
  /* binary: delivered, the connection stays open, nothing is sent */
  n = mk(buf, 1, 2, "\x01\x02", 2);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(r.binaries, 1);
  assert_int_equal(r.errors, 0);
  assert_true(pusher__ws_is_open(ws));
  assert_int_equal(pusher__ws_pending(ws, &p), 0);
  /* close 1000 is echoed */
  n = mk(buf, 1, 8, "\x03\xe8", 2);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(r.closes, 1);
  assert_int_equal(r.close_code, 1000);
  assert_int_equal(pending_close_code(ws), 1000);
  pusher__ws_del(ws);
}

static void test_framer_errors(void **st) {
  wsrec r;
  pusher__ws *ws = new_ws(&r, 16);
  const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
  assert_int_equal(pusher__ws_recv(ws, unmasked, sizeof unmasked), PUSHER_ERR_WEBSOCKET);
  assert_int_equal(r.errors, 1);
  assert_int_equal(pending_close_code(ws), 1002);
  pusher__ws_del(ws);

  ws = new_ws(&r, 16);
  uint8_t buf[64];
  size_t n = mk(buf, 1, 1, "0123456789abcdefXYZ", 19);
  assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_MSG_TOO_LARGE);
  assert_int_equal(r.errors, 1);
  assert_int_equal(pending_close_code(ws), 1009);
  pusher__ws_del(ws);

  ws = new_ws(&r, 1024);
  const uint8_t big_ctl[] = {0x89, 0xfe, 0x00, 0x80};
  assert_true(pusher__ws_recv(ws, big_ctl, sizeof big_ctl) < 0);
  assert_int_equal(r.errors, 1);
  pusher__ws_del(ws);
}

/* RFC 6455 §8.1: invalid UTF-8 in a text message fails the connection with
 * 1007, also when the bad sequence is split over two fragments or the
 * message ends inside a sequence. */
static void test_framer_utf8(void **st) {
  static const struct {
    const char *a, *b; /* fragments; b NULL = one frame */
  } cases[] = {
      {"{\xff\xfe}", NULL},       /* bytes never valid */
      {"\xc0\xaf", NULL},         /* overlong '/' */
      {"\xed\xa0\x80", NULL},     /* surrogate U+D800 */
      {"ok\xe2\x82", NULL},       /* ends inside a sequence */
      {"ok\xe2", "\x28\xa1"},     /* split: bad continuation */
      {"ok\xf4\x90", "\x80\x80"}, /* split: over U+10FFFF */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    wsrec r;
    pusher__ws *ws = new_ws(&r, 1024);
    uint8_t buf[64];
    size_t n;
    if (cases[i].b) {
      n = mk(buf, 0, 1, cases[i].a, strlen(cases[i].a));
      n += mk(buf + n, 1, 0, cases[i].b, strlen(cases[i].b));
    } else {
      n = mk(buf, 1, 1, cases[i].a, strlen(cases[i].a));
    }
    assert_int_equal(pusher__ws_recv(ws, buf, n), PUSHER_ERR_WEBSOCKET);
    assert_int_equal(r.texts, 0);
    assert_int_equal(r.errors, 1);
    assert_int_equal(pending_close_code(ws), 1007);
    pusher__ws_del(ws);
  }
  /* valid multi-byte text split inside a sequence is delivered whole */
  wsrec r;
  pusher__ws *ws = new_ws(&r, 1024);
  uint8_t buf[64];
  size_t n = mk(buf, 0, 1, "\xe2\x82", 2);
  n += mk(buf + n, 1, 0, "\xac!", 2);
  assert_int_equal(pusher__ws_recv(ws, buf, n), 0);
  assert_int_equal(r.texts, 1);
  assert_memory_equal(r.text, "\xe2\x82\xac!", 4);
  pusher__ws_del(ws);
}

/* ------------------------------------------------------------ dispatch */
static pd_config cfg;
static pd_core core;

static int setup(void **st) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->max_presence_members = 2;
  pd_config_add_app(&cfg, a);
  assert_int_equal(pd_core_init(&core, &cfg, &pd_adapter_local, NULL), 0);
  pd_core_set_time(&core, 1000, 1700000000);
  return 0;
}
static int teardown(void **st) {
  pd_core_free(&core);
  pd_config_free(&cfg);
  return 0;
}

static void join_presence(rec *r, const char *channel, const char *user) {
  char cd[128];
  snprintf(cd, sizeof cd, "{\"user_id\":\"%s\",\"user_info\":{\"n\":1}}", user);
  rec_subscribe_signed(r, channel, cd);
}

static void test_dispatch(void **st) {
  rec *a = rec_open(&core, "app-key"), *b = rec_open(&core, "app-key"), *a2 = rec_open(&core, "app-key"),
      *z = rec_open(&core, "app-key");
  pd_app *app = core.apps[0];
  assert_int_equal(app->connections, 4);
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\",\"auth\":\"\"}}");
  pd_channel *ch = pd_channel_get(app, "news", 0);
  assert_non_null(ch);
  assert_int_equal(ch->nsubs, 1);
  /* subscribing twice does not add a second subscription */
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}");
  assert_int_equal(ch->nsubs, 1);
  rec_text(a, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"news\"}}");
  assert_null(pd_channel_get(app, "news", 0)); /* freed when empty */

  /* private: bad signature refused, good one accepted */
  size_t before = a->total;
  rec_text(a, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-x\",\"auth\":\"app-key:00\"}}");
  assert_null(pd_channel_get(app, "private-x", 0));
  assert_int_equal(a->total, before + 1); /* one pusher:error */
  assert_non_null(strstr(rec_frame(a, -1), "\"event\":\"pusher:error\""));

  /* presence: one member per user id across sockets; member limit 2 */
  join_presence(a, "presence-room", "u1");
  join_presence(a2, "presence-room", "u1");
  ch = pd_channel_get(app, "presence-room", 0);
  assert_non_null(ch);
  assert_int_equal(ch->nsubs, 2);
  assert_int_equal(ch->nmembers, 1);
  size_t b_before = b->total;
  join_presence(b, "presence-room", "u2");
  assert_int_equal(ch->nmembers, 2);
  assert_int_equal(b->total, b_before + 1); /* subscription_succeeded */
  join_presence(z, "presence-room", "u3");  /* over the limit */
  assert_int_equal(ch->nmembers, 2);
  assert_int_equal(ch->nsubs, 3);
  assert_non_null(strstr(rec_frame(z, -1), "Presence channel is full"));
  /* leaving with one of u1's sockets keeps u1 */
  b_before = b->total;
  pd_session_leave_all(&a2->s);
  assert_int_equal(ch->nmembers, 2);
  assert_int_equal(b->total, b_before); /* no member_removed */
  pd_session_leave_all(&a->s);
  assert_int_equal(ch->nmembers, 1);
  assert_int_equal(b->total, b_before + 1); /* member_removed */
  assert_string_equal(rec_frame(b, -1), "{\"event\":\"pusher_internal:member_removed\",\"channel\":\"presence-room\","
                                        "\"data\":\"{\\\"user_id\\\":\\\"u1\\\"}\"}");

  /* malformed input never crashes and is answered */
  const char *bad[] = {"", "{", "[]", "null", "{\"event\":\"pusher:subscribe\"}",
                       "{\"event\":\"pusher:subscribe\",\"data\":\"x\"}", "{\"event\":\"pusher:unsubscribe\",\"data\":1}",
                       "{\"event\":\"pusher:signin\",\"data\":[]}", "{\"event\":\"client-x\",\"channel\":\"news\"}",
                       "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"presence-q\",\"auth\":\"app-key:0\"}}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    before = z->total;
    rec_text(z, bad[i]);
    assert_int_equal(z->total, before + 1);
    assert_non_null(strstr(rec_frame(z, -1), "\"event\":\"pusher:error\""));
  }
  rec_free(a);
  rec_free(b);
  rec_free(a2);
  rec_free(z);
  assert_null(pd_channel_get(app, "presence-room", 0));
  assert_int_equal(app->connections, 0);
}

/* ------------------------------------------------------------ net: HTTP */
static const char *out_of(pd_conn *c) {
  const uint8_t *p;
  size_t n = pd_conn_detached_output(c, &p);
  static char buf[4096];
  snprintf(buf, sizeof buf, "%.*s", (int)n, (const char *)p);
  return buf;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
  return n;
}

/* Content-Length over the 1 MiB cap: exactly one 413 (http_parser took
 * "return 1" from on_headers_complete as "no body" and the message-complete
 * path replied a second time). */
static void test_http_413_once(void **st) {
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  pd_conn *c = pd_conn_new_detached(&srv);
  const char *req = "POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
                    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  pd_conn_feed(c, (const uint8_t *)req, strlen(req));
  const char *out = out_of(c);
  assert_int_equal(count(out, "HTTP/1.1 "), 1);
  assert_non_null(strstr(out, "HTTP/1.1 413 Payload Too Large\r\n"));
  assert_non_null(strstr(out, "Connection: close\r\n"));
  assert_non_null(strstr(out, "{\"error\":\"Request body too large (cap 1 MiB)\"}"));
  pd_conn_destroy(c);
  pd_server_free(&srv);
}

/* Headers not complete by the deadline: 408 and close; a request that
 * completed in time is answered and then idle is left alone. */
static void test_http_header_deadline(void **st) {
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  srv.fake_now_ms = 1;
  pd_conn *slow = pd_conn_new_detached(&srv), *fine = pd_conn_new_detached(&srv);
  const char *half = "GET /health HTTP/1.1\r\nHost: x\r\n";
  pd_conn_feed(slow, (const uint8_t *)half, strlen(half));
  const char *full = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  pd_conn_feed(fine, (const uint8_t *)full, strlen(full));
  srv.fake_now_ms = 1 + (uint64_t)cfg.header_timeout_ms; /* not yet past it */
  pd_server_tick(&srv);
  assert_int_equal(count(out_of(slow), "HTTP/1.1 "), 0);
  srv.fake_now_ms = 2 + (uint64_t)cfg.header_timeout_ms;
  pd_server_tick(&srv);
  const char *out = out_of(slow);
  assert_non_null(strstr(out, "HTTP/1.1 408 Request Timeout\r\n"));
  assert_non_null(strstr(out, "{\"error\":\"Request headers not received within 10000 ms\"}"));
  assert_true(slow->close_after_flush || slow->closing);
  out = out_of(fine);
  assert_int_equal(count(out, "HTTP/1.1 200 OK"), 1);
  assert_int_equal(count(out, "408"), 0);
  assert_false(fine->close_after_flush || fine->closing);
  pd_conn_destroy(slow);
  pd_conn_destroy(fine);
  pd_server_free(&srv);
}

/* Over the socket codec: a binary frame is answered with pusher:error and
 * the connection stays; invalid UTF-8 closes 1007. */
static void test_ws_binary_and_utf8(void **st) {
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  pd_conn *c = pd_conn_new_detached(&srv);
  const char *up = "GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n";
  pd_conn_feed(c, (const uint8_t *)up, strlen(up));
  assert_non_null(strstr(out_of(c), "HTTP/1.1 101 Switching Protocols\r\n"));
  assert_non_null(strstr(out_of(c), "pusher:connection_established"));
  uint8_t buf[64];
  size_t n = mk(buf, 1, 2, "{}", 2);
  pd_conn_feed(c, buf, n);
  assert_non_null(strstr(out_of(c), "Binary frames are not supported"));
  assert_false(c->close_after_flush || c->closing);
  n = mk(buf, 1, 1, "{\xff}", 3);
  pd_conn_feed(c, buf, n);
  const uint8_t *p;
  size_t pn = pd_conn_detached_output(c, &p);
  assert_true(pn >= 4);
  assert_int_equal(p[pn - 4], 0x88); /* close frame, no reason: 1007 */
  assert_int_equal((p[pn - 2] << 8) | p[pn - 1], 1007);
  assert_true(c->close_after_flush || c->closing);
  pd_conn_destroy(c);
  pd_server_free(&srv);
  assert_int_equal(core.apps[0]->connections, 0);
}

/* ------------------------------------------------------------ config */
static void test_config_errors(void **st) {
  char path[] = "/tmp/pusherd_cfg_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *bad = "{\n  \"apps\": [\n    {\"id\": \"a\" \"key\": \"k\"}\n  ]\n}\n";
  assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
  close(fd);
  pd_config c;
  pd_config_init(&c);
  char err[512];
  assert_int_equal(pd_config_load_file(&c, path, err, sizeof err), -1);
  char want[600];
  snprintf(want, sizeof want, "%s:3:", path);
  assert_non_null(strstr(err, want));
  pd_config_free(&c);

  FILE *f = fopen(path, "w");
  fputs("{\"port\": 7, \"apps\": [{\"id\":\"a\",\"key\":\"k\",\"secret\":\"s\",\"max_connections\":5,"
        "\"client_events\":true}, {\"id\":\"b\",\"key\":\"k2\",\"secret\":\"s\",\"enabled\":false}]}",
        f);
  fclose(f);
  pd_config_init(&c);
  assert_int_equal(pd_config_load_file(&c, path, err, sizeof err), 0);
  assert_int_equal(c.port, 7);
  assert_int_equal(c.napps, 2);
  assert_int_equal(c.apps[0]->max_connections, 5);
  assert_true(c.apps[0]->client_events);
  assert_false(c.apps[1]->enabled);
  assert_false(c.apps[1]->client_events);
  pd_config_free(&c);

  f = fopen(path, "w");
  fputs("{\"apps\": [{\"id\":\"a\",\"key\":\"k\",\"secret\":\"s\",\"max_connections\":\"many\"}]}", f);
  fclose(f);
  pd_config_init(&c);
  assert_int_equal(pd_config_load_file(&c, path, err, sizeof err), -1);
  assert_non_null(strstr(err, "apps[0].max_connections: must be an integer"));
  pd_config_free(&c);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_vectors),
      cmocka_unit_test(test_framer_errors),
      cmocka_unit_test(test_framer_utf8),
      cmocka_unit_test_setup_teardown(test_dispatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_413_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_header_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_binary_and_utf8, setup, teardown),
      cmocka_unit_test(test_config_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
