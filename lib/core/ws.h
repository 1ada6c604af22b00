/* Sans-I/O WebSocket endpoint (RFC 6455) with its own incremental frame
 * parser and encoder (lib/core/ws.c).
 *
 * Client mode: pusher__ws_client_new() queues the HTTP Upgrade request; the
 * 101 reply is parsed from the first bytes fed to pusher__ws_recv() and
 * Sec-WebSocket-Accept is verified; then frames flow.
 * Server mode: the server parses the HTTP request itself (http-parser) and
 * calls pusher__ws_server_new() with the client's Sec-WebSocket-Key; the 101
 * reply is queued, then frames flow.  For fan-out the server may also encode
 * unmasked frames itself with pusher__ws_frame_header() and queue the same
 * payload bytes to many sockets.
 *
 * Bytes in: pusher__ws_recv().  Bytes out: pusher__ws_pending() +
 * pusher__ws_consume().  No sockets, no clock; randomness (mask keys,
 * Sec-WebSocket-Key) comes from the injected rand function.
 *
 * Caps: max_msg (inbound message, after reassembly; a frame header that
 * would take the message over it => close 1009 and PUSHER_ERR_MSG_TOO_LARGE
 * before its payload is read), handshake reply header <= 16 KiB, outbound
 * queue <= max_out bytes (over => PUSHER_ERR_TOO_LARGE from send_*).
 * Text messages are checked for UTF-8 as their bytes arrive (sequences may
 * be split across frames and reads); the first bad byte, or a message that
 * ends inside a sequence => close 1007, PUSHER_ERR_WEBSOCKET.  Binary
 * messages => close 1003, PUSHER_ERR_WEBSOCKET (at their first frame),
 * unless on_binary is set (the server: it answers them and keeps the
 * connection).  A frame that breaks a rule of RFC 6455 => close 1002 (1007
 * for a close reason that is not UTF-8), and the error detail names the
 * rule (e.g. "reserved bit RSV1 set: ...", "invalid close code 1005"), in
 * both modes.  Control frames we must write (pongs, close replies) may use
 * up to 64 KiB beyond max_out; past that (a peer that pings but never
 * reads) => PUSHER_ERR_TOO_LARGE.
 *
 * Memory: an open connection with no partial frame and nothing queued holds
 * only its struct (about 230 bytes on LP64).  The output buffer, the
 * message being reassembled (it grows as its bytes arrive, never past
 * max_msg), a partial control frame (<= 125 bytes), the client handshake
 * state and the error text are allocated when needed and freed when they
 * empty.  A complete unfragmented unmasked frame (client mode) is delivered
 * straight from the caller's input, without a copy.  Every allocation goes
 * through cfg->mem.  A message over max_msg or a burst of control frames is
 * refused before it is buffered, so what a connection holds stays within
 * max_msg + 125 bytes of input state and max_out + 64 KiB of output.
 *
 * Re-entrancy: from inside on_open/on_text/on_binary/on_pong the callbacks
 * may call pusher__ws_send_*, pusher__ws_pending/consume and the getters
 * (a frame sent there is in the output at once, after the pongs and close
 * replies of the frames parsed before it).  A nested
 * pusher__ws_recv returns PUSHER_ERR_INVALID_STATE.  on_close and on_error
 * are always the last thing pusher__ws_recv does (ws is not touched after
 * them), but pusher__ws_del must still only be called after it returns.
 * After on_error (or an error return) recv/send_* return an error and only
 * pending/consume (to flush the queued close frame) and del are useful.
 * send_* return errors directly and never call on_error.
 */
#ifndef PUSHER_CORE_WS_H
#define PUSHER_CORE_WS_H

#include <pusher/common.h>

typedef struct pusher__ws pusher__ws;

typedef struct pusher__ws_callbacks {
  /* Client: the 101 reply was valid; the socket is open. Server: unused. */
  void (*on_open)(void *user_data);
  /* A complete text message (valid UTF-8). Valid only during the call. */
  void (*on_text)(const uint8_t *msg, size_t len, void *user_data);
  /* The peer sent a close frame (code 1005 when it had none).  The close
   * reply is queued automatically; the transport may be closed once the
   * pending bytes are flushed. */
  void (*on_close)(uint16_t code, const char *reason, size_t reason_len, void *user_data);
  /* Protocol error (bad handshake reply, bad frame, too large, bad UTF-8).
   * A close frame is queued when it makes sense; the ws is unusable. */
  void (*on_error)(int err, const char *detail, void *user_data);
} pusher__ws_callbacks;

/* Optional callbacks, set after _new with pusher__ws_set_extra_callbacks
 * (a separate struct so that existing initialisers stay valid).  They get
 * the user_data given to _new. */
typedef struct pusher__ws_extra_callbacks {
  /* When set, a complete binary message is delivered here (valid only
   * during the call) and the connection stays open; when NULL (the
   * default), a binary message fails the connection with close 1003. */
  void (*on_binary)(const uint8_t *msg, size_t len, void *user_data);
  /* A pong frame arrived (the peer is alive). */
  void (*on_pong)(void *user_data);
} pusher__ws_extra_callbacks;

typedef struct pusher__ws_config {
  const pusher_mem *mem; /* borrowed: must outlive the ws (NULL = libc) */
  pusher_rand_fn rand;   /* required in client mode (mask keys, Sec-WebSocket-Key) */
  void *rand_user;
  size_t max_msg;        /* inbound message cap; 0 = 256 KiB */
  size_t max_out;        /* outbound queue cap; 0 = 1 MiB */
} pusher__ws_config;

/* Client: host_header is the Host header value ("host:port"), path the
 * request target ("/app/key?protocol=7&..."). extra_headers (may be NULL) is
 * appended verbatim ("Name: value\r\n" lines). */
int pusher__ws_client_new(pusher__ws **out, const pusher__ws_config *cfg,
                          const char *host_header, const char *path,
                          const char *extra_headers,
                          const pusher__ws_callbacks *cb, void *user_data);
/* Server: key is the client's Sec-WebSocket-Key.  extra_headers may be NULL. */
int pusher__ws_server_new(pusher__ws **out, const pusher__ws_config *cfg, const char *key,
                          const char *extra_headers,
                          const pusher__ws_callbacks *cb, void *user_data);
void pusher__ws_del(pusher__ws *ws);
/* Copies *cb (NULL clears them). */
void pusher__ws_set_extra_callbacks(pusher__ws *ws, const pusher__ws_extra_callbacks *cb);

/* Feed bytes from the transport; callbacks run from inside.  Returns 0 or a
 * negative error (after on_error has been called). Safe to call pusher__ws_del
 * only after it returns. */
int pusher__ws_recv(pusher__ws *ws, const uint8_t *in, size_t len);

int pusher__ws_send_text(pusher__ws *ws, const char *msg, size_t len);
int pusher__ws_send_ping(pusher__ws *ws);
int pusher__ws_send_close(pusher__ws *ws, uint16_t code, const char *reason);

/* Bytes waiting for the transport; *out valid until the next call on ws. */
size_t pusher__ws_pending(pusher__ws *ws, const uint8_t **out);
void pusher__ws_consume(pusher__ws *ws, size_t n);

int pusher__ws_is_open(const pusher__ws *ws);      /* handshake done, not closed */
int pusher__ws_close_sent(const pusher__ws *ws);
int pusher__ws_close_received(const pusher__ws *ws);

/* Client: allow n more pings from the server.  The caller refills the
 * budget once per period (lib/core/conn.c: every second) and n is quoted in
 * the error.  The ping after the budget is spent fails the connection:
 * close 1008, on_error(PUSHER_ERR_WEBSOCKET, "ping flood: ...").  Until the
 * first call there is no cap.  Server mode: no effect. */
void pusher__ws_set_ping_budget(pusher__ws *ws, unsigned long n);
/* Client: where an abrupt end of the byte stream (EOF, reset) cuts it:
 * "during the WebSocket handshake", "in the middle of a frame", or NULL
 * (between frames, after an error, or in server mode).  For error text. */
const char *pusher__ws_cut_point(const pusher__ws *ws);
/* Sec-WebSocket-Accept for a key: base64(SHA1(key + GUID)); out >= 29 bytes. */
int pusher__ws_accept_key(const char *key, char *out, size_t outlen);
/* Encode an unmasked server frame header (FIN set) for opcode and payload
 * length into out (>= 10 bytes); returns the header length. */
size_t pusher__ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t payload_len);
/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int pusher__ws_utf8_valid(const uint8_t *s, size_t n);

#endif
