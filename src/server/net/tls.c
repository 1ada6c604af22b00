/* pusherd net layer: TLS under the connection, OpenSSL 3 over a pair of
 * memory BIOs per connection.  See pd_tls.h and docs/tls.md. */
#include "net/pd_tls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct pd_tls_ctx {
  SSL_CTX *ssl;               /* new connections use this one */
  char *cert_file, *key_file;
  char desc[600];             /* the certificate in use, for log lines */
  uv_signal_t hup;
  int hup_on;
  /* failed handshakes: one log line a second at most */
  uint64_t failed_unlogged;
  uint64_t failed_total;
  uint64_t failed_log_ms;     /* 0 = never logged */
};

struct pd_tls {
  pd_tls_ctx *ctx;
  uint8_t *pre;               /* input before the first record is complete (no SSL yet) */
  size_t pre_len;
  SSL *ssl;                   /* owns both BIOs; NULL before the first record and after a failure */
  BIO *rbio;                  /* socket -> SSL (ciphertext in) */
  BIO *wbio;                  /* SSL -> socket (ciphertext out) */
  int done;                   /* handshake complete */
  int failed;                 /* fatal error: nothing more goes through SSL */
  int shut;                   /* close_notify queued */
};

/* ------------------------------------------------------------------ context */
/* The most specific queued OpenSSL error as text ("key values mismatch"),
 * or fallback; clears the queue. */
static void ossl_reason(char *buf, size_t len, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(buf, len, "%s", r ? r : fallback);
  ERR_clear_error();
}

/* Never prompt on a terminal for a key passphrase: encrypted keys fail. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud) {
  (void)buf, (void)size, (void)rwflag, (void)ud;
  return 0;
}

/* ALPN: the only protocol served is HTTP/1.1 (WebSocket upgrades and the
 * HTTP API).  A client offering only h2 gets no ALPN answer and speaks
 * HTTP/1.1 (RFC 7301 3.2 allows the server to ignore the extension). */
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *ud) {
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  (void)s, (void)ud;
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers
 * only; TLS 1.3 keeps OpenSSL's default suites (all AEAD). */
#define PD_TLS12_CIPHERS                                                                                     \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static void describe_cert(SSL_CTX *ctx, char *out, size_t outlen) {
  X509 *x = SSL_CTX_get0_certificate(ctx);
  char subject[256] = "?", serial[80] = "?", not_after[64] = "?";
  if (x) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
      if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, subject, (int)sizeof subject - 1);
        subject[n > 0 ? n : 0] = 0;
      }
      (void)BIO_reset(b);
      if (ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
        int n = BIO_read(b, not_after, (int)sizeof not_after - 1);
        not_after[n > 0 ? n : 0] = 0;
      }
      BIO_free(b);
    }
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex) snprintf(serial, sizeof serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
  }
  for (char *p = subject; *p; p++)
    if (*p == '"') *p = '\'';
  snprintf(out, outlen, "subject=\"%s\" serial=%s not_after=\"%s\"", subject, serial, not_after);
  ERR_clear_error();
}

/* A file we cannot open is named with errno's words, before OpenSSL's
 * less helpful "system lib". */
static int readable(const char *what, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f) {
    fclose(f);
    return 0;
  }
  snprintf(err, errlen, "cannot read the %s file %s: %s", what, path, strerror(errno));
  return -1;
}

static SSL_CTX *build_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen) {
  char reason[200];
  if (readable("certificate", cert_file, err, errlen) || readable("key", key_file, err, errlen)) return NULL;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    ossl_reason(reason, sizeof reason, "unknown error");
    snprintf(err, errlen, "cannot create a TLS context: %s", reason);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  /* Idle connections give their 16 KiB read and write buffers back. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (SSL_CTX_set_cipher_list(ctx, PD_TLS12_CIPHERS) != 1) {
    ossl_reason(reason, sizeof reason, "unknown error");
    snprintf(err, errlen, "cannot set the TLS 1.2 cipher list: %s", reason);
    goto bad;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    ossl_reason(reason, sizeof reason, "not a PEM certificate");
    snprintf(err, errlen, "cannot load the certificate chain from %s: %s", cert_file, reason);
    goto bad;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    unsigned long e = ERR_peek_last_error();
    int mismatch = ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
    ossl_reason(reason, sizeof reason, "not a PEM private key");
    if (mismatch)
      snprintf(err, errlen, "the private key in %s does not match the certificate in %s", key_file, cert_file);
    else
      snprintf(err, errlen, "cannot load the private key from %s: %s (an unencrypted PEM key is needed)",
               key_file, reason);
    goto bad;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ossl_reason(reason, sizeof reason, "mismatch");
    snprintf(err, errlen, "the private key in %s does not match the certificate in %s: %s", key_file, cert_file,
             reason);
    goto bad;
  }
  return ctx;
bad:
  SSL_CTX_free(ctx);
  return NULL;
}

int pd_tls_ctx_new(pd_tls_ctx **out, const char *cert_file, const char *key_file, char *err, size_t errlen) {
  *out = NULL;
  SSL_CTX *ssl = build_ctx(cert_file, key_file, err, errlen);
  if (!ssl) return -1;
  pd_tls_ctx *x = pd_zalloc(sizeof *x);
  if (x) {
    x->cert_file = pd_strdup(cert_file);
    x->key_file = pd_strdup(key_file);
  }
  if (!x || !x->cert_file || !x->key_file) {
    snprintf(err, errlen, "out of memory");
    SSL_CTX_free(ssl);
    pd_tls_ctx_free(x);
    return -1;
  }
  x->ssl = ssl;
  describe_cert(ssl, x->desc, sizeof x->desc);
  *out = x;
  return 0;
}

const char *pd_tls_ctx_describe(const pd_tls_ctx *x) { return x->desc; }

int pd_tls_ctx_reload(pd_tls_ctx *x, char *err, size_t errlen) {
  SSL_CTX *ssl = build_ctx(x->cert_file, x->key_file, err, errlen);
  if (!ssl) {
    pd_log(PD_LOG_ERROR, "msg=\"TLS certificate reload failed; keeping the previous certificate\" error=\"%s\" %s",
           err, x->desc);
    return -1;
  }
  /* Connections keep a reference to the context they were accepted with
   * (SSL_new takes one), so the old one lives until the last of them. */
  SSL_CTX_free(x->ssl);
  x->ssl = ssl;
  describe_cert(ssl, x->desc, sizeof x->desc);
  pd_log(PD_LOG_INFO, "msg=\"TLS certificate reloaded\" cert=%s %s", x->cert_file, x->desc);
  return 0;
}

static void on_sighup(uv_signal_t *h, int sig) {
  char err[600];
  (void)sig;
  pd_log(PD_LOG_INFO, "msg=\"SIGHUP: reloading the TLS certificate\"");
  (void)pd_tls_ctx_reload(h->data, err, sizeof err);
}

int pd_tls_ctx_watch_sighup(pd_tls_ctx *x, uv_loop_t *loop) {
  int r = uv_signal_init(loop, &x->hup);
  if (r) return r;
  x->hup.data = x;
  r = uv_signal_start(&x->hup, on_sighup, SIGHUP);
  if (r) {
    uv_close((uv_handle_t *)&x->hup, NULL);
    return r;
  }
  x->hup_on = 1;
  return 0;
}

void pd_tls_ctx_stop(pd_tls_ctx *x) {
  if (!x || !x->hup_on) return;
  x->hup_on = 0;
  uv_close((uv_handle_t *)&x->hup, NULL);
}

void pd_tls_ctx_free(pd_tls_ctx *x) {
  if (!x) return;
  SSL_CTX_free(x->ssl);
  pd_free(x->cert_file);
  pd_free(x->key_file);
  pd_free(x);
}

/* ------------------------------------------------------------------ connections */
/* The SSL object is made when the first record has arrived whole (or the
 * input is plainly not TLS): OpenSSL takes some 35 KiB for a handshake in
 * progress (a 16 KiB record buffer, a 16 KiB handshake message buffer), so
 * a peer that connects and sends nothing, or part of a ClientHello, would
 * hold that until the deadline.  Before it, a connection holds only what it
 * sent (at most one record and one socket read). */
#define PD_TLS_RECORD_MAX (16384 + 2048) /* TLSCiphertext.length limit (RFC 5246 6.2.3) */

static int first_record_ready(const pd_tls *t) {
  if (t->pre_len >= 1 && t->pre[0] != 0x16) return 1; /* not a handshake record: OpenSSL names it */
  if (t->pre_len < 5) return 0;
  size_t len = ((size_t)t->pre[3] << 8) | t->pre[4];
  return len > PD_TLS_RECORD_MAX || t->pre_len >= 5 + len;
}

static int make_ssl(pd_tls *t) {
  ERR_clear_error();
  SSL *ssl = SSL_new(t->ctx->ssl);
  BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
  if (!ssl || !r || !w) {
    BIO_free(r);
    BIO_free(w);
    SSL_free(ssl);
    return -1;
  }
  /* An empty memory BIO means "no more yet", not end of file. */
  BIO_set_mem_eof_return(r, -1);
  BIO_set_mem_eof_return(w, -1);
  SSL_set_bio(ssl, r, w);
  SSL_set_accept_state(ssl);
  t->ssl = ssl;
  t->rbio = r;
  t->wbio = w;
  return 0;
}

static void drop_ssl(pd_tls *t) {
  SSL_free(t->ssl);
  t->ssl = NULL;
  t->rbio = t->wbio = NULL;
}

int pd_tls_conn_start(pd_conn *c, pd_tls_ctx *x) {
  pd_tls *t = pd_zalloc(sizeof *t);
  if (!t) return -1;
  t->ctx = x;
  c->tls = t;
  return 0;
}

void pd_tls_conn_free(pd_conn *c) {
  pd_tls *t = c->tls;
  if (!t) return;
  drop_ssl(t);
  pd_free(t->pre);
  pd_free(t);
  c->tls = NULL;
}

int pd_tls_conn_handshaking(const pd_conn *c) { return c->tls && !c->tls->done; }

/* Move the pending ciphertext (handshake records, alerts, encrypted data)
 * to the socket, in order.  0 or -1. */
static int flush_out(pd_conn *c) {
  pd_tls *t = c->tls;
  if (!t->ssl) return 0;
  size_t n = BIO_ctrl_pending(t->wbio);
  if (!n) return 0;
  pd_msg *m = pd_alloc(sizeof *m + n);
  if (!m) return -1;
  m->refs = 1;
  m->len = n;
  int got = BIO_read(t->wbio, m->data, (int)n);
  if (got != (int)n) {
    pd_msg_unref(m);
    return -1;
  }
  int r = pd_conn_write_wire(c, m);
  pd_msg_unref(m);
  return r;
}

/* Plain HTTP on the TLS port (OpenSSL recognises a request line instead
 * of a ClientHello): answer in plain text what went wrong. */
static void answer_plain_http(pd_conn *c) {
  static const char body[] = "{\"error\":\"This port speaks TLS: use https:// or wss://\"}\n";
  char head[200];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n",
                    sizeof body - 1);
  pd_msg *m = pd_alloc(sizeof *m + (size_t)hl + sizeof body - 1);
  if (!m) return;
  m->refs = 1;
  m->len = (size_t)hl + sizeof body - 1;
  memcpy(m->data, head, (size_t)hl);
  memcpy(m->data + hl, body, sizeof body - 1);
  (void)pd_conn_write_wire(c, m);
  pd_msg_unref(m);
}

/* A fatal TLS error: send the alert OpenSSL queued (if any), log (a
 * handshake failure at most once a second, with the count), end the
 * connection. */
static void fail(pd_conn *c, const char *what) {
  pd_tls *t = c->tls;
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  char reason[200];
  snprintf(reason, sizeof reason, "%s", r ? r : what);
  int plain_http = e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST;
  ERR_clear_error();
  t->failed = 1;
  if (plain_http && !t->done) {
    if (t->wbio) (void)BIO_reset(t->wbio);
    answer_plain_http(c);
  } else {
    (void)flush_out(c);
  }
  drop_ssl(t); /* its buffers go now, not when the drain ends */
  if (t->done) {
    pd_log(PD_LOG_INFO, "msg=\"TLS error; closing\" socket_id=%s error=\"%s\"", c->sess.socket_id, reason);
  } else {
    pd_tls_ctx *x = t->ctx;
    uint64_t now = pd_now_ms(c->srv);
    x->failed_unlogged++;
    x->failed_total++;
    if (!x->failed_log_ms || now - x->failed_log_ms >= 1000) {
      pd_log(PD_LOG_INFO, "msg=\"TLS handshake failed; closing\" error=\"%s\" failed=%llu failed_total=%llu", reason,
             (unsigned long long)x->failed_unlogged, (unsigned long long)x->failed_total);
      x->failed_unlogged = 0;
      x->failed_log_ms = now ? now : 1;
    }
  }
  pd_conn_end(c);
}

void pd_tls_conn_read(pd_conn *c, const uint8_t *in, size_t len) {
  static uint8_t plain[16384]; /* one loop thread; pd_conn_feed does not re-enter here */
  pd_tls *t = c->tls;
  if (t->failed || c->closing || c->close_after_flush) return; /* drained and dropped */
  if (!t->ssl) {
    uint8_t *p = pd_realloc(t->pre, t->pre_len + len);
    if (!p) {
      fail(c, "out of memory");
      return;
    }
    memcpy(p + t->pre_len, in, len);
    t->pre = p;
    t->pre_len += len;
    if (!first_record_ready(t)) return;
    if (make_ssl(t) != 0) {
      fail(c, "out of memory");
      return;
    }
    in = t->pre;
    len = t->pre_len;
  }
  int over = BIO_ctrl_pending(t->rbio) + len > PD_TLS_IN_CAP;
  int wrote = !over && BIO_write(t->rbio, in, (int)len) == (int)len;
  pd_free(t->pre); /* in may point into it */
  t->pre = NULL;
  t->pre_len = 0;
  if (!wrote) {
    fail(c, over ? "too much ciphertext buffered" : "out of memory");
    return;
  }
  for (;;) {
    if (c->closing || c->close_after_flush) break;
    ERR_clear_error();
    int n = SSL_read(t->ssl, plain, (int)sizeof plain);
    if (!t->done && SSL_is_init_finished(t->ssl)) {
      t->done = 1;
      pd_log(PD_LOG_DEBUG, "msg=\"TLS handshake complete\" version=%s cipher=%s", SSL_get_version(t->ssl),
             SSL_get_cipher_name(t->ssl));
    }
    if (n > 0) {
      /* Handshake records written during SSL_read go out before any reply. */
      if (flush_out(c) != 0) break;
      pd_conn_feed(c, plain, (size_t)n);
      continue;
    }
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: the peer sends nothing more */
      (void)flush_out(c);
      pd_conn_end(c);
      return;
    }
    fail(c, e == SSL_ERROR_SYSCALL ? "unexpected end of the TLS stream" : "TLS protocol error");
    return;
  }
  if (!t->failed && flush_out(c) != 0) pd_conn_end(c);
}

int pd_tls_conn_write(pd_conn *c, pd_msg *m) {
  pd_tls *t = c->tls;
  if (t->failed || t->shut || !t->done) return -1;
  if (m->len == 0) return 0;
  if (m->len > (size_t)INT32_MAX) return -1;
  ERR_clear_error();
  int n = SSL_write(t->ssl, m->data, (int)m->len);
  if (n != (int)m->len) {
    fail(c, "TLS write failed");
    return -1;
  }
  return flush_out(c);
}

void pd_tls_conn_shutdown(pd_conn *c) {
  pd_tls *t = c->tls;
  if (!t || !t->done || t->failed || t->shut) return;
  t->shut = 1;
  ERR_clear_error();
  (void)SSL_shutdown(t->ssl);
  ERR_clear_error();
  (void)flush_out(c);
}
