/* Sans-I/O WebSocket endpoint (RFC 6455) on top of wslay's event API.
 * See ws.h for the contract.  Layout:
 *   - the client handshake (request builder, incremental 101 reply parser),
 *   - the wslay glue (recv/send/genmask callbacks, message dispatch),
 *   - the public send/recv/pending API,
 *   - helpers (accept key, frame header, UTF-8 validation). */
#include "core/ws.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "core/mem.h"

#define WS_DEFAULT_MAX_MSG ((size_t)256 * 1024)
#define WS_DEFAULT_MAX_OUT ((size_t)1024 * 1024)
#define WS_MAX_HANDSHAKE_HDR ((size_t)16 * 1024)
/* Room above max_out for frames we are obliged to write (pongs, close
 * replies) even when the data queue is full. */
#define WS_CTRL_SLACK ((size_t)64 * 1024)
#define WS_FRAME_OVERHEAD 14 /* 2 + 8 length + 4 mask */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_HANDSHAKE, ST_OPEN };

struct pusher__ws {
  pusher_mem mem;
  pusher__ws_callbacks cb;
  pusher__ws_extra_callbacks xcb;
  void *ud;
  pusher_rand_fn rand;
  void *rand_user;
  wslay_event_context_ptr ctx;
  int server;
  int state;
  size_t max_msg, max_out;

  pusher__buf out; /* bytes for the transport (handshake + frames) */

  /* client handshake */
  pusher__buf hdr;
  unsigned hdr_match; /* how much of "\r\n\r\n" was matched at the tail */
  char accept[32];    /* expected Sec-WebSocket-Accept */

  /* input currently being fed to wslay_event_recv */
  const uint8_t *in;
  size_t in_len;
  int in_wslay; /* inside wslay_event_recv: sends only queue, no flush */
  int busy;     /* inside pusher__ws_recv: recursion guard */

  int close_queued;
  int wslay_dead; /* wslay_event_send/recv returned < 0: never call it again */
  int failed; /* sticky error code once unusable (0 = fine) */

  /* a frame-header scanner run over the input before wslay, only to name
   * the RFC 6455 rule a bad frame broke (wslay reports a bare "protocol
   * error"); see scan() */
  uint8_t sc_hdr[14];
  unsigned sc_have;     /* header bytes gathered */
  uint64_t sc_left;     /* payload bytes of the current frame not seen yet */
  int sc_frag;          /* inside a fragmented data message */
  int sc_close;         /* the current frame is a close frame */
  uint8_t sc_mask[4];   /* the current frame's masking key (section 5.3) */
  int sc_masked;
  uint8_t sc_cbuf[125]; /* its payload, unmasked */
  size_t sc_clen;
  uint8_t hold[2 + 4 + 125]; /* an incomplete close frame (see feed_frames) */
  size_t hold_len;
  char why[128];        /* the first rule broken ("" = none seen) */
  uint16_t why_code;    /* the close code wslay gives that rule: 1002 or 1007 */
  long ping_budget;     /* client: pings still allowed (-1 = no cap) */
  unsigned long ping_cap;

  /* events gathered inside wslay callbacks, delivered after it returns */
  int err;
  char detail[256];
  int close_pending;
  uint16_t close_code;
  size_t close_reason_len;
  char close_reason[128];
};

/* ------------------------------------------------------------------ helpers */

static void fill_rand(pusher__ws *ws, uint8_t *buf, size_t n) {
  if (ws->rand) {
    ws->rand(buf, n, ws->rand_user);
  } else if (RAND_bytes(buf, (int)n) != 1) {
    /* Mask keys need no secrecy (RFC 6455 §10.3 wants unpredictability from
     * the script's point of view); never leave them uninitialised. */
    memset(buf, 0, n);
  }
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int ieq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  if (alen != blen) return 0;
  for (size_t i = 0; i < alen; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **s, size_t *n) {
  while (*n && is_ows(**s)) { (*s)++; (*n)--; }
  while (*n && is_ows((*s)[*n - 1])) (*n)--;
}

static int has_ctl(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
  return 0;
}

/* Record an error to be delivered by pusher__ws_recv once wslay is done.
 * The first error wins. */
static void set_err(pusher__ws *ws, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(pusher__ws *ws, int err, const char *fmt, ...) {
  if (ws->err) return;
  ws->err = err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ws->detail, sizeof ws->detail, fmt, ap);
  va_end(ap);
}

/* Used for what we send (text messages, close reasons).  Inbound text is
 * already checked by wslay (1.1.1, lib/wslay_event.c: a Hoehrmann UTF-8 DFA
 * run over every text-frame chunk in wslay_event_recv, failing the
 * connection with close 1007 on a reject or on a message that ends inside a
 * sequence), so msg_cb does not check it a second time. */
static int utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* ASCII runs are skipped 8 bytes at a time. */
    while (n - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3, cp = c & 0x07u, min = 0x10000;
    } else {
      return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    if (n - i - 1 < need) return 0;
    for (size_t k = 1; k <= need; k++) {
      uint8_t b = s[i + k];
      if ((b & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += need + 1;
  }
  return 1;
}

int pusher__ws_utf8_valid(const uint8_t *s, size_t n) { return utf8_valid(s, n); }

int pusher__ws_accept_key(const char *key, char *out, size_t outlen) {
  if (!key || !out || outlen < 29) return PUSHER_ERR_INVALID_ARGUMENT;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *mctx = EVP_MD_CTX_new();
  if (!mctx) return PUSHER_ERR_NOMEM;
  int ok = EVP_DigestInit_ex(mctx, EVP_sha1(), NULL) == 1 &&
           EVP_DigestUpdate(mctx, key, strlen(key)) == 1 &&
           EVP_DigestUpdate(mctx, WS_GUID, sizeof WS_GUID - 1) == 1 &&
           EVP_DigestFinal_ex(mctx, md, &mdlen) == 1 && mdlen == 20;
  EVP_MD_CTX_free(mctx);
  if (!ok) return PUSHER_ERR_INTERNAL;
  int n = EVP_EncodeBlock((unsigned char *)out, md, 20);
  if (n != 28) return PUSHER_ERR_INTERNAL;
  out[28] = '\0';
  return 0;
}

size_t pusher__ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t payload_len) {
  out[0] = (uint8_t)(0x80u | (opcode & 0x0Fu));
  if (payload_len < 126) {
    out[1] = (uint8_t)payload_len;
    return 2;
  }
  if (payload_len <= 0xFFFFu) {
    out[1] = 126;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
  return 10;
}

/* ------------------------------------------------------------------ client frame scanner */

/* wslay answers every broken rule with close 1002 (1007 for bad UTF-8) and a
 * bare error code.  To say which rule the peer broke, both ends also run
 * the frame headers (and close payloads, at most 125 bytes) through this
 * scanner before wslay sees them.  It decides nothing: wslay still fails the
 * connection; the scanner only supplies the words.  It stops at the first
 * broken rule.  References are to RFC 6455. */

static void scan_why(pusher__ws *ws, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void scan_why(pusher__ws *ws, uint16_t code, const char *fmt, ...) {
  if (ws->why[0]) return;
  ws->why_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ws->why, sizeof ws->why, fmt, ap);
  va_end(ap);
}

/* Section 7.4: the codes a close frame may carry (as wslay checks them). */
static int close_code_ok(unsigned code) {
  return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/* The close frame's payload is complete (section 5.5.1). */
static void scan_close(pusher__ws *ws) {
  const uint8_t *c = ws->sc_cbuf;
  size_t n = ws->sc_clen;
  unsigned code = n >= 2 ? (unsigned)c[0] << 8 | c[1] : 0;
  if (n == 1)
    scan_why(ws, 1002, "close frame with a 1-byte payload (a close body starts with a 2-byte code)");
  else if (n >= 2 && !close_code_ok(code))
    scan_why(ws, 1002, "invalid close code %u", code);
  else if (n > 2 && !utf8_valid(c + 2, n - 2))
    scan_why(ws, 1007, "invalid UTF-8 in the close reason");
}

/* A complete frame header: sections 5.2 (bits, lengths), 5.1 (masking),
 * 5.4 (fragmentation) and 5.5 (control frames). */
static void scan_header(pusher__ws *ws, uint64_t len, unsigned lenbytes) {
  unsigned b0 = ws->sc_hdr[0], op = b0 & 0x0Fu, fin = b0 >> 7, rsv = (b0 >> 4) & 7u;
  int ctrl = op >= 8;
  ws->sc_masked = (ws->sc_hdr[1] & 0x80) != 0;
  if (ws->sc_masked) memcpy(ws->sc_mask, ws->sc_hdr + 2 + lenbytes, 4);
  if (lenbytes == 8 && (len >> 63))
    scan_why(ws, 1002, "64-bit payload length with the most significant bit set");
  else if ((lenbytes == 2 && len < 126) || (lenbytes == 8 && len < 65536))
    scan_why(ws, 1002, "non-minimal payload length (%llu in the %u-bit form)",
             (unsigned long long)len, lenbytes * 8);
  else if (rsv & 4)
    scan_why(ws, 1002, "reserved bit RSV1 set: a compressed frame, but compression was not negotiated");
  else if (rsv)
    scan_why(ws, 1002, "reserved bit RSV%u set (no extension was negotiated)", (rsv & 2) ? 2u : 3u);
  else if (ws->sc_masked && !ws->server)
    scan_why(ws, 1002, "masked frame from the server (section 5.1: servers never mask)");
  else if (!ws->sc_masked && ws->server)
    scan_why(ws, 1002, "unmasked frame from the client (section 5.1: clients always mask)");
  else if ((op >= 3 && op <= 7) || op >= 0xB)
    scan_why(ws, 1002, "reserved opcode 0x%x", op);
  else if (op == 0 && !ws->sc_frag)
    scan_why(ws, 1002, "continuation frame without a message to continue");
  else if (op != 0 && !ctrl && ws->sc_frag)
    scan_why(ws, 1002, "new data frame inside a fragmented message");
  if (op == 1 || op == 2) ws->sc_frag = !fin;
  else if (op == 0 && fin) ws->sc_frag = 0;
  ws->sc_close = op == 8;
  ws->sc_clen = 0;
}

/* Header size once its first two bytes are known (0 = not yet known). */
static unsigned header_size(const uint8_t *h, unsigned have) {
  if (have < 2) return 0;
  unsigned l7 = h[1] & 0x7Fu;
  return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* Scan p[0..n).  With stop_at_close, stop before the first byte of a close
 * frame and return how many bytes were scanned; else (or once a broken rule
 * was found) return n. */
static size_t scan(pusher__ws *ws, const uint8_t *p, size_t n, int stop_at_close) {
  size_t total = n;
  while (n && !ws->why[0]) {
    if (stop_at_close && !ws->sc_have && !ws->sc_left && (*p & 0x0Fu) == 8) return total - n;
    if (ws->sc_left) {
      size_t k = n < ws->sc_left ? n : (size_t)ws->sc_left;
      if (ws->sc_close && ws->sc_clen + k <= sizeof ws->sc_cbuf) {
        for (size_t i = 0; i < k; i++, ws->sc_clen++)
          ws->sc_cbuf[ws->sc_clen] = p[i] ^ (ws->sc_masked ? ws->sc_mask[ws->sc_clen % 4] : 0);
      }
      p += k;
      n -= k;
      ws->sc_left -= k;
      if (!ws->sc_left && ws->sc_close) scan_close(ws);
      continue;
    }
    ws->sc_hdr[ws->sc_have++] = *p++;
    n--;
    if (ws->sc_have == 2 && (ws->sc_hdr[0] & 0x08)) {
      /* a control frame: wslay judges its size and FIN from these 2 bytes */
      unsigned op = ws->sc_hdr[0] & 0x0Fu, l7 = ws->sc_hdr[1] & 0x7Fu;
      if (l7 > 125)
        scan_why(ws, 1002, "control frame (opcode 0x%x) with a payload over 125 bytes", op);
      else if (!(ws->sc_hdr[0] & 0x80))
        scan_why(ws, 1002, "fragmented control frame (opcode 0x%x)", op);
    }
    unsigned need = header_size(ws->sc_hdr, ws->sc_have);
    if (!need || ws->sc_have < need) continue;
    unsigned l7 = ws->sc_hdr[1] & 0x7Fu, lenbytes = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    uint64_t len = lenbytes ? 0 : l7;
    for (unsigned i = 0; i < lenbytes; i++) len = len << 8 | ws->sc_hdr[2 + i];
    ws->sc_have = 0;
    scan_header(ws, len, lenbytes);
    ws->sc_left = len;
    if (!len && ws->sc_close) scan_close(ws);
  }
  return total;
}

/* ------------------------------------------------------------------ wslay glue */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data) {
  pusher__ws *ws = user_data;
  (void)flags;
  if (!ws->in_len) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < ws->in_len ? len : ws->in_len;
  memcpy(buf, ws->in, n);
  ws->in += n;
  ws->in_len -= n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data) {
  pusher__ws *ws = user_data;
  (void)flags;
  size_t room = ws->out.cap - ws->out.len;
  size_t n = len < room ? len : room;
  if (!n || pusher__buf_append(&ws->out, data, n) != 0) {
    /* Full (or out of memory): leave it in wslay's queue for later. */
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  return (ssize_t)n;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data) {
  (void)ctx;
  fill_rand(user_data, buf, len);
  return 0;
}

/* Fail the connection (inside wslay_event_recv or between two calls):
 * queue a close frame and stop reading. */
static void fail_inside(pusher__ws *ws, uint16_t code, const char *reason) {
  if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, strlen(reason)) == 0)
    ws->close_queued = 1;
  wslay_event_shutdown_read(ws->ctx);
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user_data) {
  pusher__ws *ws = user_data;
  (void)ctx;
  if (ws->err || ws->close_pending) return;
  static const uint8_t empty[1] = {0};
  const uint8_t *msg = arg->msg ? arg->msg : empty;
  switch (arg->opcode) {
  case WSLAY_TEXT_FRAME: /* valid UTF-8: wslay checked it (see utf8_valid) */
    if (ws->cb.on_text) ws->cb.on_text(msg, arg->msg_length, ws->ud);
    break;
  case WSLAY_BINARY_FRAME:
    if (ws->xcb.on_binary) {
      ws->xcb.on_binary(msg, arg->msg_length, ws->ud);
      break;
    }
    fail_inside(ws, 1003, "binary frames are not supported");
    set_err(ws, PUSHER_ERR_WEBSOCKET, "binary frames are not supported");
    break;
  case WSLAY_CONNECTION_CLOSE: {
    /* a 1-byte close body never gets here: see feed_frames */
    if (arg->msg_length > 2 && !utf8_valid(msg + 2, arg->msg_length - 2)) {
      /* wslay 1.1 checks the reason's UTF-8 per received chunk, skipping the
       * first 2 bytes of every chunk: split across reads, a bad reason
       * gets through.  Check the whole reason (section 5.5.1). */
      fail_inside(ws, 1007, "invalid UTF-8 in the close reason");
      set_err(ws, PUSHER_ERR_WEBSOCKET, "invalid UTF-8 in the close reason");
      return;
    }
    ws->close_pending = 1;
    ws->close_code = arg->status_code ? arg->status_code : 1005;
    size_t rl = arg->msg_length >= 2 ? arg->msg_length - 2 : 0;
    if (rl > sizeof ws->close_reason - 1) rl = sizeof ws->close_reason - 1;
    if (rl) memcpy(ws->close_reason, msg + 2, rl);
    ws->close_reason[rl] = '\0';
    ws->close_reason_len = rl;
    break;
  }
  case WSLAY_PING: /* wslay has queued the pong */
    if (!ws->server && ws->ping_budget == 0) {
      fail_inside(ws, 1008, "ping flood");
      set_err(ws, PUSHER_ERR_WEBSOCKET, "ping flood: more than %lu WebSocket pings in a second",
              ws->ping_cap);
    } else if (ws->ping_budget > 0) {
      ws->ping_budget--;
    }
    break;
  case WSLAY_PONG:
    if (ws->xcb.on_pong) ws->xcb.on_pong(ws->ud);
    break;
  default: /* continuation and reserved opcodes: wslay never delivers them */
    break;
  }
}

static const struct wslay_event_callbacks wslay_cbs = {
    recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, msg_cb,
};

/* Move everything wslay has queued into ws->out (as far as the cap allows).
 * Inside wslay_event_recv this only defers: pusher__ws_recv flushes after. */
static int flush(pusher__ws *ws) {
  if (ws->in_wslay || ws->wslay_dead) return 0;
  if (!wslay_event_want_write(ws->ctx)) return 0;
  int r = wslay_event_send(ws->ctx);
  if (r < 0) {
    ws->wslay_dead = 1;
    if (!ws->failed) ws->failed = r == WSLAY_ERR_NOMEM ? PUSHER_ERR_NOMEM : PUSHER_ERR_WEBSOCKET;
    return ws->failed;
  }
  return 0;
}

/* ------------------------------------------------------------------ lifecycle */

static int ws_alloc(pusher__ws **out, const pusher__ws_config *cfg, int server,
                    const pusher__ws_callbacks *cb, void *user_data) {
  pusher__ws *ws = pusher__calloc(cfg->mem, 1, sizeof *ws);
  if (!ws) return PUSHER_ERR_NOMEM;
  pusher__mem_copy(&ws->mem, cfg->mem);
  if (cb) ws->cb = *cb;
  ws->ud = user_data;
  ws->rand = cfg->rand;
  ws->rand_user = cfg->rand_user;
  ws->server = server;
  ws->max_msg = cfg->max_msg ? cfg->max_msg : WS_DEFAULT_MAX_MSG;
  ws->max_out = cfg->max_out ? cfg->max_out : WS_DEFAULT_MAX_OUT;
  size_t outcap = ws->max_out > SIZE_MAX - WS_CTRL_SLACK ? SIZE_MAX : ws->max_out + WS_CTRL_SLACK;
  pusher__buf_init(&ws->out, &ws->mem, outcap);
  pusher__buf_init(&ws->hdr, &ws->mem, WS_MAX_HANDSHAKE_HDR);
  int r = server ? wslay_event_context_server_init(&ws->ctx, &wslay_cbs, ws)
                 : wslay_event_context_client_init(&ws->ctx, &wslay_cbs, ws);
  if (r != 0) {
    pusher__free(cfg->mem, ws);
    return PUSHER_ERR_NOMEM;
  }
  wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_msg);
  *out = ws;
  return 0;
}

void pusher__ws_set_extra_callbacks(pusher__ws *ws, const pusher__ws_extra_callbacks *cb) {
  if (!ws) return;
  if (cb) ws->xcb = *cb;
  else memset(&ws->xcb, 0, sizeof ws->xcb);
}

void pusher__ws_del(pusher__ws *ws) {
  if (!ws) return;
  if (ws->ctx) wslay_event_context_free(ws->ctx);
  pusher__buf_free(&ws->out);
  pusher__buf_free(&ws->hdr);
  pusher_mem m = ws->mem;
  pusher__free(&m, ws);
}

int pusher__ws_client_new(pusher__ws **out, const pusher__ws_config *cfg,
                          const char *host_header, const char *path,
                          const char *extra_headers,
                          const pusher__ws_callbacks *cb, void *user_data) {
  if (!out || !cfg || !host_header || !*host_header || !path || !*path ||
      has_ctl(host_header) || has_ctl(path) || strchr(path, ' '))
    return PUSHER_ERR_INVALID_ARGUMENT;
  *out = NULL;
  pusher__ws *ws;
  int r = ws_alloc(&ws, cfg, 0, cb, user_data);
  if (r) return r;
  ws->ping_budget = -1;
  uint8_t nonce[16];
  fill_rand(ws, nonce, sizeof nonce);
  char key[32];
  EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce); /* 24 chars + NUL */
  r = pusher__ws_accept_key(key, ws->accept, sizeof ws->accept);
  if (!r)
    r = pusher__buf_appendf(&ws->out,
                            "GET %s HTTP/1.1\r\n"
                            "Host: %s\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "%s\r\n",
                            path, host_header, key, extra_headers ? extra_headers : "");
  if (r) {
    pusher__ws_del(ws);
    return r;
  }
  *out = ws;
  return 0;
}

int pusher__ws_server_new(pusher__ws **out, const pusher__ws_config *cfg, const char *key,
                          const char *extra_headers,
                          const pusher__ws_callbacks *cb, void *user_data) {
  if (!out || !cfg || !key || !*key || strlen(key) > 128 || has_ctl(key))
    return PUSHER_ERR_INVALID_ARGUMENT;
  *out = NULL;
  pusher__ws *ws;
  int r = ws_alloc(&ws, cfg, 1, cb, user_data);
  if (r) return r;
  char accept[32];
  r = pusher__ws_accept_key(key, accept, sizeof accept);
  if (!r)
    r = pusher__buf_appendf(&ws->out,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n"
                            "%s\r\n",
                            accept, extra_headers ? extra_headers : "");
  if (r) {
    pusher__ws_del(ws);
    return r;
  }
  ws->state = ST_OPEN;
  *out = ws;
  return 0;
}

/* ------------------------------------------------------------------ client handshake */

/* Does the comma-separated header value contain token (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *token) {
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && v[j] != ',') j++;
    const char *t = v + i;
    size_t tl = j - i;
    trim(&t, &tl);
    if (ieq(t, tl, token)) return 1;
    i = j + 1;
  }
  return 0;
}

/* Copy s into dst for an error message, replacing non-printables. */
static void printable(char *dst, size_t dstlen, const char *s, size_t n) {
  if (n > dstlen - 1) n = dstlen - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    dst[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
  }
  dst[n] = '\0';
}

/* Parse the complete reply header in ws->hdr (ends with CRLFCRLF). */
static int parse_reply(pusher__ws *ws) {
  const char *p = (const char *)ws->hdr.data;
  const char *end = p + ws->hdr.len - 2; /* the final CRLF terminates the list */
  const char *eol = memchr(p, '\r', (size_t)(end - p));
  if (!eol || eol[1] != '\n') eol = end;
  size_t sl = (size_t)(eol - p);
  char buf[128];
  if (sl < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ' ||
      p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
      (sl > 12 && p[12] != ' ')) {
    printable(buf, sizeof buf, p, sl);
    set_err(ws, PUSHER_ERR_HANDSHAKE, "malformed HTTP status line \"%s\"", buf);
    return PUSHER_ERR_HANDSHAKE;
  }
  if (memcmp(p + 9, "101", 3) != 0) {
    printable(buf, sizeof buf, p + 9, sl - 9);
    set_err(ws, PUSHER_ERR_HANDSHAKE, "unexpected HTTP status %s", buf);
    return PUSHER_ERR_HANDSHAKE;
  }
  int upgrade_ok = 0, connection_ok = 0, accept_seen = 0;
  const char *line = eol + 2;
  while (line < end) {
    const char *le = line;
    while (le < end && !(le[0] == '\r' && le[1] == '\n')) le++;
    const char *colon = memchr(line, ':', (size_t)(le - line));
    if (!colon || colon == line || is_ows(line[0])) {
      set_err(ws, PUSHER_ERR_HANDSHAKE, "malformed header line in HTTP reply");
      return PUSHER_ERR_HANDSHAKE;
    }
    size_t nl = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vl = (size_t)(le - v);
    trim(&v, &vl);
    if (ieq(line, nl, "upgrade")) {
      upgrade_ok = ieq(v, vl, "websocket");
    } else if (ieq(line, nl, "connection")) {
      connection_ok |= has_token(v, vl, "upgrade");
    } else if (ieq(line, nl, "sec-websocket-accept")) {
      if (accept_seen || !ieq(v, vl, ws->accept) || memcmp(v, ws->accept, vl) != 0) {
        set_err(ws, PUSHER_ERR_HANDSHAKE, "Sec-WebSocket-Accept mismatch");
        return PUSHER_ERR_HANDSHAKE;
      }
      accept_seen = 1;
    } else if (ieq(line, nl, "sec-websocket-extensions") && vl) {
      set_err(ws, PUSHER_ERR_HANDSHAKE, "server selected an extension we did not offer");
      return PUSHER_ERR_HANDSHAKE;
    } else if (ieq(line, nl, "sec-websocket-protocol") && vl) {
      set_err(ws, PUSHER_ERR_HANDSHAKE, "server selected a subprotocol we did not offer");
      return PUSHER_ERR_HANDSHAKE;
    }
    line = le + 2;
  }
  if (!upgrade_ok) {
    set_err(ws, PUSHER_ERR_HANDSHAKE, "missing or wrong Upgrade header (want websocket)");
    return PUSHER_ERR_HANDSHAKE;
  }
  if (!connection_ok) {
    set_err(ws, PUSHER_ERR_HANDSHAKE, "Connection header does not contain upgrade");
    return PUSHER_ERR_HANDSHAKE;
  }
  if (!accept_seen) {
    set_err(ws, PUSHER_ERR_HANDSHAKE, "missing Sec-WebSocket-Accept");
    return PUSHER_ERR_HANDSHAKE;
  }
  return 0;
}

/* Consume reply-header bytes; *used = bytes that belonged to the header.
 * On success with the header complete, ws->state becomes ST_OPEN. */
static int hs_feed(pusher__ws *ws, const uint8_t *in, size_t len, size_t *used) {
  static const char term[4] = {'\r', '\n', '\r', '\n'};
  size_t i = 0;
  int done = 0;
  while (i < len) {
    uint8_t c = in[i++];
    if (c == (uint8_t)term[ws->hdr_match])
      ws->hdr_match++;
    else
      ws->hdr_match = c == '\r' ? 1 : 0;
    if (ws->hdr_match == 4) {
      done = 1;
      break;
    }
  }
  *used = i;
  if (pusher__buf_append(&ws->hdr, in, i) != 0) {
    set_err(ws, PUSHER_ERR_HANDSHAKE, "HTTP reply header over %zu bytes", WS_MAX_HANDSHAKE_HDR);
    return PUSHER_ERR_HANDSHAKE;
  }
  if (!done) return 0;
  int r = parse_reply(ws);
  pusher__buf_free(&ws->hdr);
  if (r) return r;
  ws->state = ST_OPEN;
  return 0;
}

/* ------------------------------------------------------------------ recv */

/* One wslay_event_recv over in[0..len) (recv_cb serves it). */
static int feed_wslay(pusher__ws *ws, const uint8_t *in, size_t len) {
  ws->in = in;
  ws->in_len = len;
  ws->in_wslay = 1;
  int r = wslay_event_recv(ws->ctx);
  ws->in_wslay = 0;
  ws->in = NULL;
  ws->in_len = 0;
  return r;
}

/* Size of the held close frame once its header is known (else 2).  Only a
 * close frame of at most 125 payload bytes is held: a longer one is already
 * a broken rule. */
static size_t hold_want(const pusher__ws *ws) {
  if (ws->hold_len < 2) return 2;
  return header_size(ws->hold, 2) + (ws->hold[1] & 0x7Fu);
}

/* Feed wslay (both ends) so that every close frame reaches it in one piece,
 * in a wslay_event_recv of its own.  wslay 1.1 checks the close reason's
 * UTF-8 per received chunk and skips the first 2 bytes of every chunk, so a
 * valid reason split across reads could fail as bad UTF-8 (a client would
 * turn a 4001 close into a retry, a server would answer a good close with
 * 1007).  The bytes of an incomplete close frame (at most 131) wait in
 * ws->hold for the rest. */
static int feed_frames(pusher__ws *ws, const uint8_t *in, size_t len) {
  int r = 0;
  while (len && r == 0 && !ws->err && !ws->close_pending &&
         wslay_event_get_read_enabled(ws->ctx)) {
    if (ws->hold_len) {
      size_t want = hold_want(ws), k = want - ws->hold_len;
      if (k > len) k = len;
      memcpy(ws->hold + ws->hold_len, in, k);
      scan(ws, in, k, 0);
      ws->hold_len += k;
      in += k;
      len -= k;
      if (!ws->why[0] && ws->hold_len < hold_want(ws)) continue;
      if (ws->hold_len == hold_want(ws) && (ws->hold[1] & 0x7Fu) == 1) {
        /* Section 5.5.1: a close body starts with a 2-byte code.  wslay 1.1
         * takes a 1-byte body for a close without a code and echoes an
         * empty close; fail the connection with 1002 before it sees one. */
        ws->hold_len = 0;
        fail_inside(ws, 1002, "close frame with a 1-byte payload");
        set_err(ws, PUSHER_ERR_WEBSOCKET, "%s",
                ws->why[0] ? ws->why : "close frame with a 1-byte payload");
        break;
      }
      r = feed_wslay(ws, ws->hold, ws->hold_len);
      ws->hold_len = 0;
      continue;
    }
    size_t n = scan(ws, in, len, 1);
    if (n) {
      r = feed_wslay(ws, in, n);
      in += n;
      len -= n;
      continue;
    }
    ws->hold[0] = in[0]; /* a close frame starts here */
    scan(ws, in, 1, 0);
    ws->hold_len = 1;
    in++;
    len--;
  }
  return r;
}

/* Deliver the gathered error (last action: the caller may drop ws). */
static int report_err(pusher__ws *ws) {
  int err = ws->err;
  ws->failed = err;
  ws->busy = 0;
  void (*fn)(int, const char *, void *) = ws->cb.on_error;
  if (fn) fn(err, ws->detail, ws->ud);
  return err;
}

int pusher__ws_recv(pusher__ws *ws, const uint8_t *in, size_t len) {
  if (!ws || (!in && len)) return PUSHER_ERR_INVALID_ARGUMENT;
  if (ws->busy) return PUSHER_ERR_INVALID_STATE;
  if (ws->failed) return ws->failed;
  ws->busy = 1;
  if (ws->state == ST_HANDSHAKE) {
    size_t used = 0;
    if (hs_feed(ws, in, len, &used) < 0) return report_err(ws);
    if (ws->state == ST_HANDSHAKE) {
      ws->busy = 0;
      return 0;
    }
    in += used;
    len -= used;
    if (ws->cb.on_open) ws->cb.on_open(ws->ud);
    if (ws->failed) {
      ws->busy = 0;
      return ws->failed;
    }
  }
  if (!len || !wslay_event_get_read_enabled(ws->ctx)) {
    /* Nothing to parse, or reading stopped after a close: drop the bytes. */
    ws->busy = 0;
    return flush(ws);
  }
  int r = feed_frames(ws, in, len);
  int fr = flush(ws); /* also after r < 0: wslay queued a close frame */
  if (r < 0) {
    ws->wslay_dead = 1;
    set_err(ws, r == WSLAY_ERR_NOMEM ? PUSHER_ERR_NOMEM : PUSHER_ERR_WEBSOCKET, "%s",
            ws->why[0] && r != WSLAY_ERR_NOMEM ? ws->why : "WebSocket protocol error (bad frame)");
  } else if (!ws->err && !ws->close_pending && !wslay_event_get_read_enabled(ws->ctx) &&
             !wslay_event_get_close_received(ws->ctx)) {
    /* wslay failed the connection itself (it queued a close frame). */
    uint16_t code = wslay_event_get_close_sent(ws->ctx) ? wslay_event_get_status_code_sent(ws->ctx)
                                                        : 0;
    ws->close_queued = 1;
    if (code == 1009)
      set_err(ws, PUSHER_ERR_MSG_TOO_LARGE, "message over %zu bytes", ws->max_msg);
    else if (ws->why[0] && code == ws->why_code)
      set_err(ws, PUSHER_ERR_WEBSOCKET, "%s", ws->why);
    else if (code == 1007)
      set_err(ws, PUSHER_ERR_WEBSOCKET, "invalid UTF-8 in text message");
    else
      set_err(ws, PUSHER_ERR_WEBSOCKET, "WebSocket protocol error (close %u)", (unsigned)code);
  }
  if (!ws->err && fr < 0) set_err(ws, fr, "WebSocket send failed");
  if (!ws->err && wslay_event_want_write(ws->ctx) && ws->out.len >= ws->out.cap)
    set_err(ws, PUSHER_ERR_TOO_LARGE, "outbound queue over %zu bytes (peer not reading)",
            ws->out.cap);
  if (ws->err) return report_err(ws);
  if (ws->close_pending) {
    ws->close_pending = 0;
    ws->busy = 0;
    void (*fn)(uint16_t, const char *, size_t, void *) = ws->cb.on_close;
    if (fn) fn(ws->close_code, ws->close_reason, ws->close_reason_len, ws->ud);
    return 0;
  }
  ws->busy = 0;
  return 0;
}

/* ------------------------------------------------------------------ send */

static int can_send(const pusher__ws *ws) {
  if (ws->failed) return PUSHER_ERR_INVALID_STATE;
  if (ws->state != ST_OPEN) return PUSHER_ERR_INVALID_STATE;
  if (ws->close_queued || wslay_event_get_close_sent(ws->ctx)) return PUSHER_ERR_INVALID_STATE;
  return 0;
}

static int queue(pusher__ws *ws, uint8_t opcode, const uint8_t *p, size_t len) {
  struct wslay_event_msg m = {opcode, p, len};
  int r = wslay_event_queue_msg(ws->ctx, &m);
  if (r == WSLAY_ERR_NOMEM) return PUSHER_ERR_NOMEM;
  if (r == WSLAY_ERR_INVALID_ARGUMENT) return PUSHER_ERR_INVALID_ARGUMENT;
  if (r) return PUSHER_ERR_INVALID_STATE;
  return flush(ws);
}

int pusher__ws_send_text(pusher__ws *ws, const char *msg, size_t len) {
  if (!ws || (!msg && len)) return PUSHER_ERR_INVALID_ARGUMENT;
  int r = can_send(ws);
  if (r) return r;
  size_t queued = ws->out.len + wslay_event_get_queued_msg_length(ws->ctx);
  if (len > ws->max_out || queued > ws->max_out - len ||
      ws->max_out - len - queued < WS_FRAME_OVERHEAD)
    return PUSHER_ERR_TOO_LARGE;
  if (!utf8_valid((const uint8_t *)msg, len)) return PUSHER_ERR_INVALID_ARGUMENT;
  return queue(ws, WSLAY_TEXT_FRAME, (const uint8_t *)msg, len);
}

int pusher__ws_send_ping(pusher__ws *ws) {
  if (!ws) return PUSHER_ERR_INVALID_ARGUMENT;
  int r = can_send(ws);
  if (r) return r;
  return queue(ws, WSLAY_PING, NULL, 0);
}

int pusher__ws_send_close(pusher__ws *ws, uint16_t code, const char *reason) {
  if (!ws) return PUSHER_ERR_INVALID_ARGUMENT;
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 123 || (rl && !code) || !utf8_valid((const uint8_t *)(reason ? reason : ""), rl))
    return PUSHER_ERR_INVALID_ARGUMENT;
  int r = can_send(ws);
  if (r) return r;
  r = wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rl);
  if (r == WSLAY_ERR_NOMEM) return PUSHER_ERR_NOMEM;
  if (r == WSLAY_ERR_INVALID_ARGUMENT) return PUSHER_ERR_INVALID_ARGUMENT;
  if (r) return PUSHER_ERR_INVALID_STATE;
  ws->close_queued = 1;
  return flush(ws);
}

size_t pusher__ws_pending(pusher__ws *ws, const uint8_t **out) {
  if (!ws) {
    if (out) *out = NULL;
    return 0;
  }
  (void)flush(ws);
  if (out) *out = ws->out.data;
  return ws->out.len;
}

void pusher__ws_consume(pusher__ws *ws, size_t n) {
  if (!ws) return;
  pusher__buf_consume(&ws->out, n);
  (void)flush(ws);
}

int pusher__ws_is_open(const pusher__ws *ws) {
  return ws && !ws->failed && ws->state == ST_OPEN && !ws->close_queued &&
         !wslay_event_get_close_sent(ws->ctx) && !wslay_event_get_close_received(ws->ctx);
}

int pusher__ws_close_sent(const pusher__ws *ws) {
  return ws && (ws->close_queued || wslay_event_get_close_sent(ws->ctx));
}

int pusher__ws_close_received(const pusher__ws *ws) {
  return ws && wslay_event_get_close_received(ws->ctx);
}

void pusher__ws_set_ping_budget(pusher__ws *ws, unsigned long n) {
  if (!ws || ws->server) return;
  ws->ping_budget = n > (unsigned long)LONG_MAX ? LONG_MAX : (long)n;
  ws->ping_cap = n;
}

const char *pusher__ws_cut_point(const pusher__ws *ws) {
  if (!ws || ws->server || ws->failed) return NULL;
  if (ws->state == ST_HANDSHAKE) return "during the WebSocket handshake";
  if (ws->sc_have || ws->sc_left) return "in the middle of a frame";
  return NULL;
}
