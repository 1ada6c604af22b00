/* TLS client over memory BIOs (OpenSSL 3).  See tls.h. */
#include "uv/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

struct pusher__tls_ctx {
  const pusher_mem *mem;
  SSL_CTX *ssl_ctx;
  int insecure;
};

struct pusher__tls {
  pusher__tls_ctx *ctx;
  SSL *ssl;
  BIO *rbio; /* network -> SSL */
  BIO *wbio; /* SSL -> network */
  int done;
  int err;
  uint8_t first[5]; /* the first bytes from the server, to explain failures */
  size_t nfirst;
  char host[256];
  char detail[400];
};

/* The first queued OpenSSL error as text, or fallback. */
static void ossl_reason(char *buf, size_t len, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(buf, len, "%s", r ? r : fallback);
  ERR_clear_error();
}

int pusher__tls_ctx_new(pusher__tls_ctx **out, const pusher_mem *mem, const char *ca_file,
                        const char *ca_path, int insecure, char *why, size_t whylen) {
  char reason[160];
  if (why && whylen) why[0] = '\0';
  pusher__tls_ctx *x = pusher__calloc(mem, 1, sizeof(*x));
  if (!x) return PUSHER_ERR_NOMEM;
  x->mem = mem;
  x->insecure = insecure;
  ERR_clear_error();
  x->ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (!x->ssl_ctx) {
    ossl_reason(reason, sizeof(reason), "unknown error");
    if (why) snprintf(why, whylen, "TLS context: %s", reason);
    pusher__free(mem, x);
    return PUSHER_ERR_CONFIG;
  }
  SSL_CTX_set_min_proto_version(x->ssl_ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(x->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (insecure) {
    SSL_CTX_set_verify(x->ssl_ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(x->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok;
    const char *what;
    if (ca_file || ca_path) {
      ok = SSL_CTX_load_verify_locations(x->ssl_ctx, ca_file, ca_path);
      what = ca_file ? ca_file : ca_path;
    } else {
      ok = SSL_CTX_set_default_verify_paths(x->ssl_ctx);
      what = "system default";
    }
    if (ok == 1 && ca_file) { /* a PEM file without certificates loads "fine" */
      STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(x->ssl_ctx));
      if (!objs || sk_X509_OBJECT_num(objs) == 0) ok = 0;
    }
    if (ok != 1) {
      FILE *f = ca_file ? fopen(ca_file, "r") : NULL;
      if (ca_file && !f)
        snprintf(reason, sizeof(reason), "%s", strerror(errno));
      else
        ossl_reason(reason, sizeof(reason), "no usable certificate found");
      if (f) fclose(f);
      ERR_clear_error();
      if (why)
        snprintf(why, whylen, "cannot load CA certificates from '%s': %s", what, reason);
      SSL_CTX_free(x->ssl_ctx);
      pusher__free(mem, x);
      return PUSHER_ERR_CONFIG;
    }
  }
  *out = x;
  return 0;
}

void pusher__tls_ctx_free(pusher__tls_ctx *x) {
  if (!x) return;
  SSL_CTX_free(x->ssl_ctx);
  pusher__free(x->mem, x);
}

int pusher__tls_new(pusher__tls **out, pusher__tls_ctx *ctx, const char *host) {
  pusher__tls *t = pusher__calloc(ctx->mem, 1, sizeof(*t));
  if (!t) return PUSHER_ERR_NOMEM;
  t->ctx = ctx;
  snprintf(t->host, sizeof(t->host), "%s", host ? host : "");
  ERR_clear_error();
  t->ssl = SSL_new(ctx->ssl_ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) goto nomem;
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs now */
  SSL_set_connect_state(t->ssl);

  unsigned char ipbuf[16];
  int is_ip = inet_pton(AF_INET, t->host, ipbuf) == 1 || inet_pton(AF_INET6, t->host, ipbuf) == 1;
  if (!is_ip && t->host[0]) SSL_set_tlsext_host_name(t->ssl, t->host);
  if (!ctx->insecure && t->host[0]) {
    X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, t->host) : SSL_set1_host(t->ssl, t->host);
    if (ok != 1) goto nomem;
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
  *out = t;
  return 0;
nomem:
  if (t->ssl) {
    SSL_free(t->ssl); /* frees the BIOs if they were attached */
  } else {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
  }
  ERR_clear_error();
  pusher__free(ctx->mem, t);
  return PUSHER_ERR_NOMEM;
}

void pusher__tls_free(pusher__tls *t) {
  if (!t) return;
  SSL_free(t->ssl);
  pusher__free(t->ctx->mem, t);
}

int pusher__tls_feed(pusher__tls *t, const uint8_t *in, size_t len) {
  for (size_t i = 0; i < len && t->nfirst < sizeof t->first; i++) t->first[t->nfirst++] = in[i];
  while (len > 0) {
    size_t n = 0;
    if (BIO_write_ex(t->rbio, in, len, &n) != 1 || n == 0) return PUSHER_ERR_NOMEM;
    in += n;
    len -= n;
  }
  return 0;
}

/* The server answered our ClientHello with plain HTTP ("HTTP/1.1 400 ..."):
 * a TLS record starts with a content type byte of 20..23, never 'H'. */
static int plain_http(const pusher__tls *t) {
  return t->nfirst == sizeof t->first && memcmp(t->first, "HTTP/", 5) == 0;
}

/* Turn an SSL_* failure into t->err / t->detail. */
static int set_error(pusher__tls *t, int ret) {
  int e = SSL_get_error(t->ssl, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  long vr = SSL_get_verify_result(t->ssl);
  if (!t->done && vr != X509_V_OK) {
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
      snprintf(t->detail, sizeof(t->detail),
               "hostname mismatch: the server certificate is not valid for '%s'", t->host);
    else
      snprintf(t->detail, sizeof(t->detail), "certificate verify failed: %s",
               X509_verify_cert_error_string(vr));
    ERR_clear_error();
    t->err = PUSHER_ERR_TLS_VERIFY;
    return t->err;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(t->detail, sizeof(t->detail), "TLS connection closed by peer (close_notify)");
    ERR_clear_error();
    t->err = PUSHER_ERR_IO;
    return t->err;
  }
  char reason[160];
  ossl_reason(reason, sizeof(reason), e == SSL_ERROR_SYSCALL ? "unexpected EOF" : "protocol error");
  snprintf(t->detail, sizeof(t->detail), "TLS %s failed: %s%s", t->done ? "session" : "handshake",
           reason,
           !t->done && plain_http(t)
               ? ": the server does not speak TLS on this port: use --no-tls / encrypted = 0"
               : "");
  t->err = PUSHER_ERR_TLS;
  return t->err;
}

int pusher__tls_handshake(pusher__tls *t) {
  if (t->err) return t->err;
  if (t->done) return 1;
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->done = 1;
    return 1;
  }
  return set_error(t, r);
}

int pusher__tls_read(pusher__tls *t, uint8_t *buf, size_t cap) {
  if (t->err) return t->err;
  if (!t->done) {
    int h = pusher__tls_handshake(t);
    if (h <= 0) return h;
  }
  if (cap > INT32_MAX) cap = INT32_MAX;
  size_t n = 0;
  ERR_clear_error();
  int r = SSL_read_ex(t->ssl, buf, cap, &n);
  if (r == 1) return (int)n;
  return set_error(t, r);
}

int pusher__tls_write(pusher__tls *t, const uint8_t *in, size_t len) {
  if (t->err) return t->err;
  if (!t->done) return PUSHER_ERR_INVALID_STATE;
  while (len > 0) {
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_write_ex(t->ssl, in, len, &n);
    if (r != 1) {
      int e = set_error(t, r);
      return e ? e : PUSHER_ERR_TLS; /* memory BIO never blocks a write */
    }
    in += n;
    len -= n;
  }
  return 0;
}

void pusher__tls_shutdown(pusher__tls *t) {
  if (t->done && !t->err) {
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
  }
}

size_t pusher__tls_out_len(pusher__tls *t) { return BIO_ctrl_pending(t->wbio); }

size_t pusher__tls_take_out(pusher__tls *t, uint8_t *buf, size_t cap) {
  size_t n = 0;
  if (cap == 0 || BIO_ctrl_pending(t->wbio) == 0) return 0;
  if (BIO_read_ex(t->wbio, buf, cap, &n) != 1) return 0;
  return n;
}

int pusher__tls_done(const pusher__tls *t) { return t->done; }

const char *pusher__tls_error_detail(const pusher__tls *t) {
  return t->detail[0] ? t->detail : "no TLS error";
}
