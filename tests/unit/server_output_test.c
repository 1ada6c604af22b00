/* pusherd's coalesced output (docs/architecture.md, "Coalesced output") on
 * real sockets: a pd_server listening on 127.0.0.1 on its own libuv loop,
 * stepped with UV_RUN_NOWAIT, and raw WebSocket clients on plain
 * non-blocking sockets in the same thread.  Small socket buffers force
 * partial writes.  Checked: many frames queued in one loop turn arrive
 * intact and in order with one write per batch of buffers (not one per
 * frame); a reader that stops is cut at the output cap with 4100 after an
 * unbroken prefix of its frames; a consumer that vanishes while a write is
 * in flight is closed cleanly and the other subscriber keeps receiving;
 * over TLS (ciphertext goes through the same queue) a burst arrives whole
 * and in order, with the same number of writes; a broadcast's frames are
 * written before the HTTP reply that acknowledges it.  No wall clock: every wait is a bounded number of loop steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <time.h>

#include "adapter/pd_local.h"
#include "core/mem.h"
#include "core/sign.h"
#include "net/pd_net.h"
#include "net/pd_tls.h"

#define STEPS 200000 /* loop steps a wait may take before it fails */
#define PAD 1000     /* bytes of padding in each event's data */

static uv_loop_t loop;
static pd_config cfg;
static pd_core core;
static pd_server srv;
static pd_tls_ctx *tls_ctx;
static char cert_path[64], key_path[64];

typedef struct client {
  int fd;
  uint8_t *in;      /* bytes read, not yet parsed */
  size_t in_len, in_cap;
  int upgraded;
  char **msgs;      /* text messages received */
  size_t nmsgs, msgs_cap;
  int close_code;   /* close frame received: its code; 0 = none */
  int eof;
  pd_conn *conn;    /* the server's side */
  SSL *ssl;         /* over TLS: the client's session; NULL = plain */
  SSL_CTX *sctx;
} client;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* A self-signed P-256 certificate for the TLS listener. */
static void make_cert(void) {
  snprintf(cert_path, sizeof cert_path, "/tmp/pd_output_%ld_cert.pem", (long)getpid());
  snprintf(key_path, sizeof key_path, "/tmp/pd_output_%ld_key.pem", (long)getpid());
  EVP_PKEY *k = EVP_EC_gen("P-256");
  assert_non_null(k);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, n);
  assert_true(X509_sign(x, k, EVP_sha256()) > 0);
  FILE *f = fopen(cert_path, "w");
  assert_non_null(f);
  PEM_write_X509(f, x);
  fclose(f);
  f = fopen(key_path, "w");
  assert_non_null(f);
  PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(k);
}

static int setup(void **st) {
  (void)st;
  pd_log_level = getenv("PD_TEST_LOG") ? PD_LOG_DEBUG : PD_LOG_OFF;
  pd_log_writer = pd_log_stderr;
  pd_config_init(&cfg);
  pd_app_cfg *a = pd_app_cfg_new("app-id", "app-key", "app-secret");
  a->subscription_count = 0; /* only the events on the wire */
  pd_config_add_app(&cfg, a);
  cfg.port = free_port();
  cfg.tls_port = free_port();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(pd_core_init(&core, &cfg, &pd_adapter_local, NULL), 0);
  pd_server_init(&srv, &loop, &cfg, &core);
  make_cert();
  char err[256];
  assert_int_equal(pd_tls_ctx_new(&tls_ctx, cert_path, key_path, err, sizeof err), 0);
  srv.tls_ctx = tls_ctx;
  assert_int_equal(pd_server_listen(&srv), 0);
  return 0;
}

static int teardown(void **st) {
  (void)st;
  pd_server_shutdown(&srv);
  for (int i = 0; i < STEPS && uv_run(&loop, UV_RUN_NOWAIT); i++) {
  }
  pd_server_free(&srv);
  pd_tls_ctx_free(tls_ctx);
  unlink(cert_path);
  unlink(key_path);
  assert_int_equal(uv_loop_close(&loop), 0);
  pd_core_free(&core);
  pd_config_free(&cfg);
  return 0;
}

static void step(void) { (void)uv_run(&loop, UV_RUN_NOWAIT); }

/* Parse what was read: the 101 reply, then unmasked server frames. */
static void parse(client *c) {
  size_t p = 0;
  if (!c->upgraded) {
    uint8_t *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!e) return;
    assert_memory_equal(c->in, "HTTP/1.1 101", 12);
    c->upgraded = 1;
    p = (size_t)(e - c->in) + 4;
  }
  for (;;) {
    if (c->in_len - p < 2) break;
    const uint8_t *f = c->in + p;
    size_t h = 2, n = f[1] & 0x7f;
    assert_int_equal(f[1] & 0x80, 0); /* server frames are not masked */
    if (n == 126) {
      if (c->in_len - p < 4) break;
      n = ((size_t)f[2] << 8) | f[3];
      h = 4;
    } else if (n == 127) {
      if (c->in_len - p < 10) break;
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | f[2 + i];
      h = 10;
    }
    if (c->in_len - p < h + n) break;
    int op = f[0] & 0x0f;
    assert_true(f[0] & 0x80); /* whole messages */
    if (op == 1) {
      if (c->nmsgs == c->msgs_cap) {
        c->msgs_cap = c->msgs_cap ? c->msgs_cap * 2 : 64;
        c->msgs = realloc(c->msgs, c->msgs_cap * sizeof *c->msgs);
        assert_non_null(c->msgs);
      }
      char *t = malloc(n + 1);
      assert_non_null(t);
      memcpy(t, f + h, n);
      t[n] = 0;
      c->msgs[c->nmsgs++] = t;
    } else if (op == 8) {
      assert_true(n >= 2);
      c->close_code = (f[h] << 8) | f[h + 1];
    }
    p += h + n;
  }
  memmove(c->in, c->in + p, c->in_len - p);
  c->in_len -= p;
}

/* Read what is there (non-blocking). */
static void client_read(client *c) {
  for (;;) {
    if (c->in_cap - c->in_len < 65536) {
      c->in_cap = c->in_len + 65536;
      c->in = realloc(c->in, c->in_cap);
      assert_non_null(c->in);
    }
    if (c->ssl) {
      int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
      if (n > 0) {
        c->in_len += (size_t)n;
        continue;
      }
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_ZERO_RETURN) c->eof = 1;
      else assert_int_equal(e, SSL_ERROR_WANT_READ);
      break;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
      c->in_len += (size_t)n;
      continue;
    }
    if (n == 0) c->eof = 1;
    else assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    break;
  }
  parse(c);
}

static void client_send(client *c, const void *b, size_t n) {
  if (c->ssl) assert_int_equal(SSL_write(c->ssl, b, (int)n), (int)n);
  else assert_int_equal(send(c->fd, b, n, 0), (ssize_t)n);
}

static void client_send_text(client *c, const char *t) {
  static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  uint8_t f[256];
  size_t n = strlen(t);
  assert_true(n < 126);
  f[0] = 0x81;
  f[1] = (uint8_t)(0x80 | n);
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < n; i++) f[6 + i] = (uint8_t)t[i] ^ mask[i & 3];
  client_send(c, f, 6 + n);
}

/* Step the loop and read until at least n messages arrived (or a close). */
static void pump(client *c, size_t n) {
  for (int i = 0; i < STEPS && c->nmsgs < n && !c->eof; i++) {
    step();
    client_read(c);
  }
  assert_true(c->nmsgs >= n);
}

static const char *last(client *c) { return c->nmsgs ? c->msgs[c->nmsgs - 1] : ""; }

/* Connect (over TLS with tls), upgrade, subscribe to "c"; small buffers on
 * both sides with small. */
static void client_open_on(client *c, int small, int tls) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(c->fd >= 0);
  if (small) {
    int v = 4096;
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(tls ? cfg.tls_port : cfg.port)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  size_t before = srv.nconns;
  for (int i = 0; i < STEPS && srv.nconns == before; i++) step();
  assert_int_equal(srv.nconns, before + 1);
  c->conn = srv.conns; /* the newest is first */
  if (small) {
    int v = 4096;
    assert_int_equal(uv_send_buffer_size((uv_handle_t *)&c->conn->tcp, &v), 0);
  }
  if (tls) {
    c->sctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->sctx);
    c->ssl = SSL_new(c->sctx);
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    int done = 0;
    for (int i = 0; i < STEPS && !done; i++) {
      int r = SSL_do_handshake(c->ssl);
      if (r == 1) done = 1;
      else assert_int_equal(SSL_get_error(c->ssl, r), SSL_ERROR_WANT_READ);
      step();
    }
    assert_true(done);
  }
  static const char req[] = "GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n";
  client_send(c, req, sizeof req - 1);
  pump(c, 1);
  assert_non_null(strstr(last(c), "pusher:connection_established"));
  client_send_text(c, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"c\"}}");
  pump(c, 2);
  if (!strstr(last(c), "subscription_succeeded")) fail_msg("not subscribed: %s", last(c));
}

static void client_open(client *c, int small) { client_open_on(c, small, 0); }

static void client_close(client *c) {
  SSL_free(c->ssl);
  SSL_CTX_free(c->sctx);
  if (c->fd >= 0) close(c->fd);
  for (size_t i = 0; i < c->nmsgs; i++) free(c->msgs[i]);
  free(c->msgs);
  free(c->in);
}

/* Event i: data {"i":i,"p":"<PAD bytes derived from i>"}. */
static void publish(int i) {
  char data[PAD + 64];
  int n = snprintf(data, sizeof data, "{\"i\":%d,\"p\":\"", i);
  for (int k = 0; k < PAD; k++) data[n + k] = (char)('a' + (i + k) % 26);
  snprintf(data + n + PAD, sizeof data - (size_t)n - PAD, "\"}");
  pd_app *app = pd_core_app_by_key(&core, "app-key");
  assert_int_equal(pd_publish(app, "c", "e", data, NULL), 0);
}

/* Message m (from first) is event i, whole. */
static void check_event(const char *m, int i) {
  char want[64];
  snprintf(want, sizeof want, "{\\\"i\\\":%d,\\\"p\\\":\\\"", i);
  const char *p = strstr(m, want);
  if (!p) fail_msg("expected event %d, got %.80s", i, m);
  p += strlen(want);
  for (int k = 0; k < PAD; k++)
    if (p[k] != (char)('a' + (i + k) % 26)) fail_msg("event %d damaged at byte %d", i, k);
  assert_memory_equal(p + PAD, "\\\"}", 3);
}

/* 400 frames of ~1 KB queued in one turn: nothing is written while they
 * are queued; then they go out in batches of PD_OUT_IOV buffers, one
 * uv_try_write per batch, the part the 4 KiB socket buffers do not take
 * through one uv_write; they arrive whole and in order. */
static void one_turn_in_order(int tls) {
  client a;
  client_open_on(&a, 1, tls);
  size_t base = a.nmsgs;
  uint64_t writes0 = srv.out.writes, partial0 = srv.out.partial, frames0 = srv.out.frames;
  const int N = 400;
  for (int i = 0; i < N; i++) publish(i);
  assert_int_equal(srv.out.frames - frames0, N);
  assert_int_equal(srv.out.writes, writes0); /* queued, not written yet */
  assert_int_equal(a.conn->oq_len, N);
  pump(&a, base + N);
  assert_int_equal(a.nmsgs, base + N);
  for (int i = 0; i < N; i++) check_event(a.msgs[base + i], i);
  /* ceil(400 / PD_OUT_IOV) batches, each one uv_try_write */
  assert_int_equal(srv.out.writes - writes0, (N + PD_OUT_IOV - 1) / PD_OUT_IOV);
  assert_true(srv.out.partial - partial0 >= 1);
  assert_int_equal(a.conn->out_bytes, 0);
  assert_int_equal(a.conn->oq_len, 0);
  assert_null(a.conn->wr);
  /* the tick frees the empty ring of an idle connection */
  assert_non_null(a.conn->oq);
  pd_server_tick(&srv);
  assert_null(a.conn->oq);
  client_close(&a);
}

static void test_one_turn_in_order(void **st) {
  (void)st;
  one_turn_in_order(0);
}

/* The same over TLS: each frame is encrypted as it is queued, and the
 * ciphertext goes through the same ring, so the writes are as few. */
static void test_one_turn_in_order_tls(void **st) {
  (void)st;
  one_turn_in_order(1);
}

/* A reader that stops: frames are queued one loop turn at a time until
 * what the kernel has not taken would pass the cap; the tick then closes
 * with 4100.  The client gets an unbroken prefix of the events, then
 * pusher:error 4100 and a close frame 4100, then the end of the stream. */
static void test_cap_4100(void **st) {
  (void)st;
  cfg.outq_cap = 64 * 1024;
  client a;
  client_open(&a, 1);
  size_t base = a.nmsgs;
  int sent = 0;
  for (; sent < 2000 && !a.conn->overflow; sent++) {
    publish(sent);
    step();
    /* the queue (what the kernel has not taken) stays within the cap */
    assert_true(a.conn->out_bytes - a.conn->wr_bytes +
                    uv_stream_get_write_queue_size((uv_stream_t *)&a.conn->tcp) <=
                cfg.outq_cap);
  }
  assert_true(a.conn->overflow);
  pd_server_tick(&srv);   /* 4100 */
  for (int i = 0; i < STEPS && !a.eof; i++) {
    step();
    client_read(&a);
  }
  assert_true(a.eof);
  assert_int_equal(a.close_code, 4100);
  size_t got = a.nmsgs - base;
  assert_true(got >= 2);
  assert_non_null(strstr(a.msgs[a.nmsgs - 1], "\"code\":4100"));
  size_t events = got - 1, bytes = 0, frame = 0;
  assert_true(events < (size_t)sent);
  for (size_t i = 0; i < events; i++) {
    check_event(a.msgs[base + i], (int)i);
    frame = 4 + strlen(a.msgs[base + i]); /* a 126..65535-byte text frame's header is 4 bytes */
    bytes += frame;
  }
  /* every frame queued before the cut arrived: at least a cap's worth */
  assert_true(bytes + frame > cfg.outq_cap);
  client_close(&a);
  for (int i = 0; i < STEPS && srv.nconns; i++) step();
  assert_int_equal(srv.nconns, 0);
}

/* A consumer that resets its connection while a partial write to it is in
 * flight: its connection is closed and freed, and the other subscriber
 * gets every event, in order. */
static void test_close_mid_write(void **st) {
  (void)st;
  client a, b;
  client_open(&a, 0);
  client_open(&b, 1);
  size_t base = a.nmsgs;
  for (int i = 0; i < 200; i++) publish(i);
  pd_server_flush(&srv);
  assert_non_null(b.conn->wr); /* the 4 KiB buffers took part of it */
  struct linger lg = {1, 0};
  assert_int_equal(setsockopt(b.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(b.fd); /* reset */
  b.fd = -1;
  for (int i = 0; i < STEPS && srv.nconns > 1; i++) {
    step();
    client_read(&a);
  }
  assert_int_equal(srv.nconns, 1);
  for (int i = 200; i < 210; i++) publish(i);
  pump(&a, base + 210);
  assert_int_equal(a.nmsgs, base + 210);
  for (int i = 0; i < 210; i++) check_event(a.msgs[base + i], i);
  client_close(&a);
  client_close(&b);
}

/* A REST publish: the subscriber's frame is written before the publisher's
 * 200 (the flush list is in the order the connections got output), so a
 * publisher told "published" can count on the frame being in the kernel. */
static void test_reply_after_frames(void **st) {
  (void)st;
  client a, p;
  client_open(&a, 0);
  size_t base = a.nmsgs;
  memset(&p, 0, sizeof p);
  p.fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(p.fd, (struct sockaddr *)&sa, sizeof sa), 0);
  fcntl(p.fd, F_SETFL, fcntl(p.fd, F_GETFL) | O_NONBLOCK);
  size_t before = srv.nconns;
  for (int i = 0; i < STEPS && srv.nconns == before; i++) step();
  pd_conn *pc = srv.conns;
  static const char body[] = "{\"name\":\"e\",\"channel\":\"c\",\"data\":\"{\\\"i\\\":7}\"}";
  char *q = NULL;
  assert_int_equal(pusher__rest_sign(NULL, "POST", "/apps/app-id/events", NULL, 0, body, sizeof body - 1, "app-key",
                                     "app-secret", (int64_t)time(NULL), &q, NULL),
                   0);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "POST /apps/app-id/events?%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   q, sizeof body - 1, body);
  pusher__free(NULL, q);
  assert_null(srv.flush_list);
  pd_conn_feed(pc, (const uint8_t *)req, (size_t)n); /* as read_cb does */
  assert_ptr_equal(srv.flush_list, a.conn);          /* the frame first */
  assert_ptr_equal(srv.flush_list->flush_next, pc);  /* then the reply */
  assert_ptr_equal(srv.flush_tail, pc);
  pd_server_flush(&srv);
  assert_null(srv.flush_list);
  char got[512];
  ssize_t r = -1;
  for (int i = 0; i < STEPS && r <= 0; i++) {
    step();
    r = recv(p.fd, got, sizeof got - 1, 0);
  }
  assert_true(r > 0);
  got[r] = 0;
  assert_memory_equal(got, "HTTP/1.1 200", 12);
  assert_non_null(pc->http); /* keep-alive: the next request's state */
  pump(&a, base + 1);
  assert_non_null(strstr(a.msgs[base], "{\\\"i\\\":7}"));
  client_close(&p);
  client_close(&a);
}

/* What an idle subscribed connection holds (docs/architecture.md, "Memory
 * per connection"): no HTTP request state after the upgrade and no ring
 * once the tick found it empty.  Up to PD_OUT_INLINE frames in a turn go
 * through the ring in the connection (no allocation); one more in the same
 * turn moves the ring to an allocated one of PD_OUT_RING_MIN; both ways
 * arrive in order. */
static void test_idle_state(void **st) {
  (void)st;
  client a;
  client_open(&a, 0);
  size_t base = a.nmsgs;
  assert_null(a.conn->http);
  assert_non_null(a.conn->ws);
  pd_server_tick(&srv);
  assert_null(a.conn->oq);
  publish(0);
  publish(1);
  assert_ptr_equal(a.conn->oq, a.conn->oq_inline);
  assert_int_equal(a.conn->oq_cap, PD_OUT_INLINE);
  assert_int_equal(a.conn->oq_len, 2);
  pump(&a, base + 2);
  assert_int_equal(a.conn->oq_len, 0);
  publish(2);
  publish(3);
  publish(4);
  assert_true(a.conn->oq != a.conn->oq_inline);
  assert_int_equal(a.conn->oq_cap, PD_OUT_RING_MIN);
  assert_int_equal(a.conn->oq_len, 3);
  pump(&a, base + 5);
  for (int i = 0; i < 5; i++) check_event(a.msgs[base + i], i);
  assert_int_equal(a.conn->out_bytes, 0);
  pd_server_tick(&srv);
  assert_null(a.conn->oq);
  assert_int_equal(a.conn->oq_cap, 0);
  client_close(&a);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as pusherd does: a write to a closed socket is an error, not a signal */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_one_turn_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_turn_in_order_tls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cap_4100, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_mid_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reply_after_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_state, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
