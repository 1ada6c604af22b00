/* pusherd net layer: TLS under the connection (OpenSSL 3, memory BIOs).
 *
 * A connection accepted on the TLS listener carries a pd_tls.  The socket
 * bytes go through it; the connection code above (HTTP parsing, the
 * WebSocket codec, the core) sees plaintext exactly as on the plain
 * listener.  Three hooks in server.c:
 *   read_cb           ciphertext in:  pd_tls_conn_read()  -> pd_conn_feed()
 *   conn_write_raw    plaintext out:  pd_tls_conn_write() -> pd_conn_write_wire()
 *   conn_finish       close_notify:   pd_tls_conn_shutdown() before the FIN
 * The handshake has the header deadline (header_timeout_ms from accept);
 * the tick closes a connection still handshaking past it.
 *
 * pd_tls_ctx is the server's context: certificate chain and key files, the
 * SSL_CTX built from them, and a SIGHUP watcher of its own that rebuilds
 * the SSL_CTX from the files (new connections use the new one; a failure
 * keeps the old one and logs why).  Choices and caps: docs/tls.md. */
#ifndef PD_TLS_H
#define PD_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/pd_net.h"

/* Ciphertext a peer can make one connection hold in the input BIO: one
 * socket read (64 KiB) and one partial record at most wait there, anything
 * above is refused.  Before its first record is complete a connection has
 * no SSL object yet and holds only the bytes it sent (tls.c). */
#define PD_TLS_IN_CAP (128u * 1024u)

typedef struct pd_tls_ctx pd_tls_ctx;
typedef struct pd_tls pd_tls;

/* Build the context from a PEM certificate chain and a PEM private key
 * (unencrypted).  0, or -1 with a one-line reason in err. */
int pd_tls_ctx_new(pd_tls_ctx **out, const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Reload the files into a new SSL_CTX.  0 (in use for new connections), or
 * -1 with the reason in err (the previous context stays in use).  Logs. */
int pd_tls_ctx_reload(pd_tls_ctx *x, char *err, size_t errlen);
/* Reload on SIGHUP (a uv_signal_t watcher of this module). */
int pd_tls_ctx_watch_sighup(pd_tls_ctx *x, uv_loop_t *loop);
/* Close the SIGHUP watcher (before the loop ends). */
void pd_tls_ctx_stop(pd_tls_ctx *x);
/* After the loop ended (the watcher closed). */
void pd_tls_ctx_free(pd_tls_ctx *x);
/* "subject=... serial=... not_after=..." of the certificate in use. */
const char *pd_tls_ctx_describe(const pd_tls_ctx *x);

/* Per connection: start the server side of a handshake (0, or -1). */
int pd_tls_conn_start(pd_conn *c, pd_tls_ctx *x);
void pd_tls_conn_free(pd_conn *c);
/* Ciphertext from the socket: decrypt and pd_conn_feed() the plaintext;
 * handshake records and alerts are written back.  A failed handshake is
 * logged (debug: one line each) and the connection ends. */
void pd_tls_conn_read(pd_conn *c, const uint8_t *in, size_t len);
/* Encrypt m and write the ciphertext (pd_conn_write_wire).  0 or -1. */
int pd_tls_conn_write(pd_conn *c, pd_msg *m);
/* Queue close_notify (after a completed handshake). */
void pd_tls_conn_shutdown(pd_conn *c);
/* 1 while the handshake has not completed. */
int pd_tls_conn_handshaking(const pd_conn *c);

#endif
