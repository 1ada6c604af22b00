/* Unit tests for pusherd's TLS layer (src/server/net/tls.c) on detached
 * connections, with a fake clock and an OpenSSL client over memory BIOs:
 * a full handshake and an HTTP request through it; a tls_only app answers a
 * plain WebSocket client 4000 and accepts the same over TLS; garbage and
 * plain HTTP instead of a ClientHello; the handshake deadline; certificate
 * reload (success, then a broken file refused); start-up errors.  The
 * certificates are made here, in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "adapter/pd_local.h"
#include "net/pd_net.h"
#include "net/pd_tls.h"

static pd_config cfg;
static pd_core core;
static char dir[64];
static char cert1[128], key1[128], cert2[128], key2[128], certx[128], keyx[128];

static void make_cert(const char *cert_path, const char *key_path, long serial, const char *cn) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  assert_non_null(k);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
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
  pd_log_level = PD_LOG_OFF;
  snprintf(dir, sizeof dir, "/tmp/pusherd_tls_XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(cert1, sizeof cert1, "%s/c1.pem", dir);
  snprintf(key1, sizeof key1, "%s/k1.pem", dir);
  snprintf(cert2, sizeof cert2, "%s/c2.pem", dir);
  snprintf(key2, sizeof key2, "%s/k2.pem", dir);
  snprintf(certx, sizeof certx, "%s/cx.pem", dir);
  snprintf(keyx, sizeof keyx, "%s/kx.pem", dir);
  make_cert(cert1, key1, 0x1001, "one");
  make_cert(cert2, key2, 0x1002, "two");
  pd_config_init(&cfg);
  pd_config_add_app(&cfg, pd_app_cfg_new("app-id", "app-key", "app-secret"));
  pd_app_cfg *t = pd_app_cfg_new("tls-id", "tls-key", "tls-secret");
  t->tls_only = 1;
  pd_config_add_app(&cfg, t);
  assert_int_equal(pd_core_init(&core, &cfg, &pd_adapter_local, NULL), 0);
  pd_core_set_time(&core, 1000, 1700000000);
  return 0;
}

static int teardown(void **st) {
  pd_core_free(&core);
  pd_config_free(&cfg);
  const char *files[] = {cert1, key1, cert2, key2, certx, keyx};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) unlink(files[i]);
  rmdir(dir);
  return 0;
}

/* ------------------------------------------------------------ a TLS client */
typedef struct peer {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *in, *out;   /* server -> client, client -> server */
  size_t seen;     /* detached output already moved to the client */
} peer;

static void peer_new(peer *p) {
  memset(p, 0, sizeof *p);
  p->ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(p->ctx, SSL_VERIFY_NONE, NULL); /* the serial is checked instead */
  p->ssl = SSL_new(p->ctx);
  p->in = BIO_new(BIO_s_mem());
  p->out = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(p->in, -1);
  BIO_set_mem_eof_return(p->out, -1);
  SSL_set_bio(p->ssl, p->in, p->out);
  SSL_set_connect_state(p->ssl);
}

static void peer_free(peer *p) {
  SSL_free(p->ssl);
  SSL_CTX_free(p->ctx);
}

/* Move bytes both ways until nothing moves. */
static void pump(pd_conn *c, peer *p) {
  for (int round = 0; round < 50; round++) {
    int moved = 0;
    if (!SSL_is_init_finished(p->ssl)) (void)SSL_do_handshake(p->ssl);
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(p->out, buf, sizeof buf)) > 0) {
      pd_tls_conn_read(c, buf, (size_t)n);
      moved = 1;
    }
    const uint8_t *o;
    size_t on = pd_conn_detached_output(c, &o);
    if (on > p->seen) {
      BIO_write(p->in, o + p->seen, (int)(on - p->seen));
      p->seen = on;
      moved = 1;
    }
    if (!moved) return;
  }
}

/* Plaintext the client can read now, appended to buf (NUL-terminated). */
static void peer_read(peer *p, char *buf, size_t cap) {
  size_t len = strlen(buf);
  int n;
  while (len + 1 < cap && (n = SSL_read(p->ssl, buf + len, (int)(cap - 1 - len))) > 0) len += (size_t)n;
  buf[len] = 0;
}

static void peer_write(pd_conn *c, peer *p, const char *s) {
  assert_int_equal(SSL_write(p->ssl, s, (int)strlen(s)), (int)strlen(s));
  pump(c, p);
}

static long peer_serial(peer *p) {
  X509 *x = SSL_get1_peer_certificate(p->ssl);
  assert_non_null(x);
  long v = ASN1_INTEGER_get(X509_get0_serialNumber(x));
  X509_free(x);
  return v;
}

static pd_conn *tls_conn(pd_server *srv, pd_tls_ctx *x) {
  pd_conn *c = pd_conn_new_detached(srv);
  assert_int_equal(pd_tls_conn_start(c, x), 0);
  return c;
}

static const char *UPGRADE = "GET /app/%s?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n";

/* ------------------------------------------------------------ tests */
static void test_handshake_and_http(void **st) {
  char err[600];
  pd_tls_ctx *x;
  assert_int_equal(pd_tls_ctx_new(&x, cert1, key1, err, sizeof err), 0);
  assert_non_null(strstr(pd_tls_ctx_describe(x), "serial=1001"));
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  srv.fake_now_ms = 1;
  pd_conn *c = tls_conn(&srv, x);
  peer p;
  peer_new(&p);
  pump(c, &p);
  assert_true(SSL_is_init_finished(p.ssl));
  assert_false(pd_tls_conn_handshaking(c));
  assert_int_equal(peer_serial(&p), 0x1001);
  assert_true(SSL_version(p.ssl) >= TLS1_2_VERSION);
  peer_write(c, &p, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
  char got[4096] = "";
  peer_read(&p, got, sizeof got);
  assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(got, "{\"ok\":true}"));
  /* well past the header deadline: an established TLS connection is not
   * closed for its handshake */
  srv.fake_now_ms = 1 + 2 * (uint64_t)cfg.header_timeout_ms;
  pd_server_tick(&srv);
  assert_false(c->closing);
  peer_free(&p);
  pd_conn_destroy(c);
  pd_server_free(&srv);
  pd_tls_ctx_free(x);
}

/* The ClientHello one byte at a time (the SSL object is made only when the
 * first record is whole): the handshake completes all the same. */
static void test_bytewise_hello(void **st) {
  char err[600];
  pd_tls_ctx *x;
  assert_int_equal(pd_tls_ctx_new(&x, cert1, key1, err, sizeof err), 0);
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  pd_conn *c = tls_conn(&srv, x);
  peer p;
  peer_new(&p);
  (void)SSL_do_handshake(p.ssl);
  uint8_t hello[4096];
  int n = BIO_read(p.out, hello, sizeof hello);
  assert_true(n > 10);
  const uint8_t *o;
  for (int i = 0; i < n; i++) {
    assert_int_equal(pd_conn_detached_output(c, &o), 0); /* nothing answered before the record is whole */
    pd_tls_conn_read(c, hello + i, 1);
  }
  assert_true(pd_conn_detached_output(c, &o) > 0);
  pump(c, &p);
  assert_true(SSL_is_init_finished(p.ssl));
  peer_write(c, &p, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
  char got[4096] = "";
  peer_read(&p, got, sizeof got);
  assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
  peer_free(&p);
  pd_conn_destroy(c);
  pd_server_free(&srv);
  pd_tls_ctx_free(x);
}

static void test_tls_only(void **st) {
  char err[600], req[512];
  pd_tls_ctx *x;
  assert_int_equal(pd_tls_ctx_new(&x, cert1, key1, err, sizeof err), 0);
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  /* plain: pusher:error 4000, then a close frame with 4000 */
  pd_conn *plain = pd_conn_new_detached(&srv);
  snprintf(req, sizeof req, UPGRADE, "tls-key");
  pd_conn_feed(plain, (const uint8_t *)req, strlen(req));
  const uint8_t *o;
  size_t on = pd_conn_detached_output(plain, &o);
  char text[2048];
  snprintf(text, sizeof text, "%.*s", (int)on, (const char *)o);
  assert_non_null(strstr(text, "\"code\":4000"));
  assert_null(strstr(text, "connection_established"));
  int close4000 = 0; /* a close frame (0x88, length < 126) whose code is 4000 (0x0fa0) */
  for (size_t i = 0; i + 4 <= on; i++)
    if (o[i] == 0x88 && o[i + 1] < 126 && i + 2 + o[i + 1] == on && o[i + 2] == 0x0f && o[i + 3] == 0xa0)
      close4000 = 1;
  assert_true(close4000);
  assert_true(plain->close_after_flush || plain->closing);
  assert_int_equal(core.apps[1].connections, 0);
  /* the same over TLS: established */
  pd_conn *c = tls_conn(&srv, x);
  peer p;
  peer_new(&p);
  pump(c, &p);
  peer_write(c, &p, req);
  char got[4096] = "";
  peer_read(&p, got, sizeof got);
  assert_non_null(strstr(got, "HTTP/1.1 101 Switching Protocols\r\n"));
  assert_non_null(strstr(got, "pusher:connection_established"));
  assert_int_equal(core.apps[1].connections, 1);
  peer_free(&p);
  pd_conn_destroy(c);
  pd_conn_destroy(plain);
  pd_server_free(&srv);
  assert_int_equal(core.apps[1].connections, 0);
  pd_tls_ctx_free(x);
}

static void test_bad_peers(void **st) {
  char err[600];
  pd_tls_ctx *x;
  assert_int_equal(pd_tls_ctx_new(&x, cert1, key1, err, sizeof err), 0);
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  srv.fake_now_ms = 1;
  /* garbage: ended at once, nothing but (at most) an alert written */
  pd_conn *g = tls_conn(&srv, x);
  uint8_t junk[3000];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 7 + 3);
  pd_tls_conn_read(g, junk, sizeof junk);
  assert_true(g->close_after_flush || g->closing);
  const uint8_t *o;
  size_t on = pd_conn_detached_output(g, &o);
  assert_true(on == 0 || (on < 100 && o[0] == 0x15));
  /* more input after that is dropped */
  pd_tls_conn_read(g, junk, sizeof junk);
  assert_int_equal(pd_conn_detached_output(g, &o), on);
  /* plain HTTP: a plain-text 400 */
  pd_conn *h = tls_conn(&srv, x);
  const char *get = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
  pd_tls_conn_read(h, (const uint8_t *)get, strlen(get));
  on = pd_conn_detached_output(h, &o);
  char text[512];
  snprintf(text, sizeof text, "%.*s", (int)on, (const char *)o);
  assert_non_null(strstr(text, "HTTP/1.1 400 Bad Request\r\n"));
  assert_non_null(strstr(text, "use https:// or wss://"));
  assert_true(h->close_after_flush || h->closing);
  /* half a ClientHello: closed at the header deadline, not before */
  pd_conn *s = tls_conn(&srv, x);
  peer p;
  peer_new(&p);
  (void)SSL_do_handshake(p.ssl);
  uint8_t hello[4096];
  int n = BIO_read(p.out, hello, sizeof hello);
  assert_true(n > 10);
  pd_tls_conn_read(s, hello, (size_t)n / 2);
  assert_true(pd_tls_conn_handshaking(s));
  srv.fake_now_ms = 1 + (uint64_t)cfg.header_timeout_ms;
  pd_server_tick(&srv);
  assert_false(s->closing);
  srv.fake_now_ms = 2 + (uint64_t)cfg.header_timeout_ms;
  pd_server_tick(&srv);
  assert_true(s->closing);
  assert_int_equal(pd_conn_detached_output(s, &o), 0); /* no HTTP 408 in plain text */
  peer_free(&p);
  pd_conn_destroy(g);
  pd_conn_destroy(h);
  pd_conn_destroy(s);
  pd_server_free(&srv);
  pd_tls_ctx_free(x);
}

static void copy(const char *from, const char *to) {
  FILE *a = fopen(from, "r"), *b = fopen(to, "w");
  assert_non_null(a);
  assert_non_null(b);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  fclose(a);
  fclose(b);
}

static void test_reload(void **st) {
  char err[600];
  copy(cert1, certx);
  copy(key1, keyx);
  pd_tls_ctx *x;
  assert_int_equal(pd_tls_ctx_new(&x, certx, keyx, err, sizeof err), 0);
  pd_server srv;
  pd_server_init(&srv, NULL, &cfg, &core);
  pd_conn *old = tls_conn(&srv, x);
  peer po;
  peer_new(&po);
  pump(old, &po);
  assert_int_equal(peer_serial(&po), 0x1001);
  /* a new certificate: new connections get it, the old one keeps working */
  copy(cert2, certx);
  copy(key2, keyx);
  assert_int_equal(pd_tls_ctx_reload(x, err, sizeof err), 0);
  assert_non_null(strstr(pd_tls_ctx_describe(x), "serial=1002"));
  assert_non_null(strstr(pd_tls_ctx_describe(x), "CN=two"));
  pd_conn *c = tls_conn(&srv, x);
  peer pn;
  peer_new(&pn);
  pump(c, &pn);
  assert_int_equal(peer_serial(&pn), 0x1002);
  peer_write(old, &po, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
  char got[2048] = "";
  peer_read(&po, got, sizeof got);
  assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
  /* only the key replaced: a mismatch, refused; then a broken file */
  copy(key1, keyx);
  assert_int_equal(pd_tls_ctx_reload(x, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not match"));
  FILE *f = fopen(certx, "w");
  fputs("not a certificate\n", f);
  fclose(f);
  assert_int_equal(pd_tls_ctx_reload(x, err, sizeof err), -1);
  assert_non_null(strstr(err, "cannot load the certificate chain"));
  assert_non_null(strstr(pd_tls_ctx_describe(x), "serial=1002"));
  pd_conn *d = tls_conn(&srv, x);
  peer pd;
  peer_new(&pd);
  pump(d, &pd);
  assert_int_equal(peer_serial(&pd), 0x1002);
  peer_free(&po);
  peer_free(&pn);
  peer_free(&pd);
  pd_conn_destroy(old);
  pd_conn_destroy(c);
  pd_conn_destroy(d);
  pd_server_free(&srv);
  pd_tls_ctx_free(x);
}

static void test_start_errors(void **st) {
  char err[600];
  pd_tls_ctx *x = (pd_tls_ctx *)1;
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing.pem", dir);
  assert_int_equal(pd_tls_ctx_new(&x, missing, key1, err, sizeof err), -1);
  assert_null(x);
  assert_non_null(strstr(err, "cannot read the certificate file"));
  assert_non_null(strstr(err, "No such file"));
  assert_int_equal(pd_tls_ctx_new(&x, cert1, key2, err, sizeof err), -1);
  assert_non_null(strstr(err, "does not match the certificate"));
  assert_int_equal(pd_tls_ctx_new(&x, key1, key1, err, sizeof err), -1);
  assert_non_null(strstr(err, "cannot load the certificate chain"));
  assert_int_equal(pd_tls_ctx_new(&x, cert1, cert1, err, sizeof err), -1);
  assert_non_null(strstr(err, "cannot load the private key"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_handshake_and_http, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bytewise_hello, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tls_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_peers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
