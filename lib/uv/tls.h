/* TLS client over memory BIOs (OpenSSL 3), for the libuv runtime.
 *
 * No sockets here: ciphertext read from the socket goes in with
 * pusher__tls_feed(), ciphertext to send comes out of pusher__tls_take_out();
 * plaintext goes in with pusher__tls_write() and comes out of
 * pusher__tls_read().  The handshake advances inside pusher__tls_read()
 * (call it after every feed) and pusher__tls_handshake().
 *
 * Verification: the peer certificate must chain to the default trust store
 * or to ca_file/ca_path, and must match the host given to pusher__tls_new()
 * (DNS name, or IP address when host is an IP literal).  SNI is sent for DNS
 * names.  insecure=1 turns both checks off (testing only).  TLS >= 1.2.
 */
#ifndef PUSHER_UV_TLS_H
#define PUSHER_UV_TLS_H

#include <pusher/common.h>

typedef struct pusher__tls_ctx pusher__tls_ctx;
typedef struct pusher__tls pusher__tls;

/* Build a client context.  On failure returns PUSHER_ERR_CONFIG (or
 * PUSHER_ERR_NOMEM) and writes a one-line reason into why. */
int pusher__tls_ctx_new(pusher__tls_ctx **out, const pusher_mem *mem, const char *ca_file,
                        const char *ca_path, int insecure, char *why, size_t whylen);
void pusher__tls_ctx_free(pusher__tls_ctx *ctx);

/* One TLS session for one connection to host. */
int pusher__tls_new(pusher__tls **out, pusher__tls_ctx *ctx, const char *host);
void pusher__tls_free(pusher__tls *t);

/* Ciphertext from the network. */
int pusher__tls_feed(pusher__tls *t, const uint8_t *in, size_t len);
/* Drive the handshake: 1 done, 0 needs more input, <0 error (see
 * pusher__tls_error_detail). */
int pusher__tls_handshake(pusher__tls *t);
/* Decrypted application bytes into buf: >0 bytes, 0 none available now,
 * <0 error (PUSHER_ERR_TLS, PUSHER_ERR_TLS_VERIFY, PUSHER_ERR_IO for a
 * close_notify from the peer). */
int pusher__tls_read(pusher__tls *t, uint8_t *buf, size_t cap);
/* Encrypt plaintext (all of it, or an error). Only after the handshake. */
int pusher__tls_write(pusher__tls *t, const uint8_t *in, size_t len);
/* Queue a close_notify alert. */
void pusher__tls_shutdown(pusher__tls *t);
/* Ciphertext waiting to be sent. */
size_t pusher__tls_out_len(pusher__tls *t);
/* Move up to cap bytes of pending ciphertext into buf; returns the count. */
size_t pusher__tls_take_out(pusher__tls *t, uint8_t *buf, size_t cap);
int pusher__tls_done(const pusher__tls *t);
/* The reason of the last error, e.g. "certificate verify failed: self-signed
 * certificate in certificate chain".  Never NULL. */
const char *pusher__tls_error_detail(const pusher__tls *t);

#endif
