/* Sans-I/O WebSocket endpoint (RFC 6455): our own incremental frame parser
 * and encoder, for client and server.  See ws.h for the contract.  Layout:
 *   - the state (a small struct; everything else is allocated on demand),
 *   - helpers (UTF-8, masking, the output buffer, errors),
 *   - the frame encoder and the send API,
 *   - the frame parser (one pass over the input: header rules, payload,
 *     message reassembly, control frames),
 *   - lifecycle, the client handshake, recv, getters.
 * Section numbers are RFC 6455's. */
#include "core/ws.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/crypto.h"
#include "core/hash.h"
#include "core/mem.h"

#define WS_DEFAULT_MAX_MSG ((size_t)256 * 1024)
#define WS_DEFAULT_MAX_OUT ((size_t)1024 * 1024)
#define WS_MAX_HANDSHAKE_HDR ((size_t)16 * 1024)
/* Room above max_out for frames we are obliged to write (pongs, close
 * replies) even when the data queue is full. */
#define WS_CTRL_SLACK ((size_t)64 * 1024)
#define WS_FRAME_OVERHEAD 14 /* 2 + 8 length + 4 mask */
#define WS_CTRL_MAX 125      /* section 5.5: control payloads are <= 125 bytes */
#define WS_DETAIL_MAX 256    /* error detail text, NUL included */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2, OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xA };

/* Incremental UTF-8 check (RFC 3629 section 4): how many continuation bytes
 * are still expected, and the range the next one must fall in (narrower
 * than 80..BF after E0, ED, F0 and F4: no overlongs, surrogates or code
 * points over U+10FFFF). */
typedef struct utf8_state {
  uint8_t need, lo, hi;
} utf8_state;

/* The client handshake: only while it lasts. */
typedef struct ws_hs {
  pusher__buf hdr;   /* the 101 reply header so far (<= 16 KiB) */
  unsigned match;    /* how much of "\r\n\r\n" was matched at the tail */
  char accept[32];   /* the expected Sec-WebSocket-Accept */
} ws_hs;

/* An open, idle connection holds only this struct: the output, the message
 * being reassembled, a partial control frame, the handshake and the error
 * text are allocated when needed and freed when done. */
struct pusher__ws {
  const pusher_mem *mem; /* borrowed (ws.h) */
  pusher__ws_callbacks cb;
  void (*on_binary)(const uint8_t *msg, size_t len, void *user_data);
  void (*on_pong)(void *user_data);
  void *ud;
  pusher_rand_fn rand;
  void *rand_user;
  size_t max_msg, max_out;

  /* output: bytes for the transport (handshake + frames); NULL when empty */
  uint8_t *out;
  size_t out_len, out_alloc;

  /* the frame being parsed */
  uint64_t left;        /* payload bytes not seen yet (0: reading a header) */
  uint8_t hdr[14];      /* its header so far (2 + 8 length + 4 mask) */
  uint8_t hdr_have;
  uint8_t op;           /* its opcode */
  uint8_t mask[4];      /* its masking key (section 5.3) */
  uint8_t mask_pos;     /* payload bytes seen, mod 4 */
  uint8_t ctl_len;      /* control payload gathered in ctl */

  /* the data message being reassembled (section 5.4) */
  uint8_t msg_op;       /* OP_TEXT, OP_BINARY, or 0 between messages */
  utf8_state u;         /* text: the UTF-8 check so far */
  uint8_t *msg;         /* its payload (NULL while it has none) */
  size_t msg_len, msg_alloc;
  uint8_t *ctl;         /* a control frame's payload (WS_CTRL_MAX bytes) */

  uint32_t ping_budget; /* client: pings still allowed (see has_budget) */
  uint32_t ping_cap;

  unsigned server : 1;
  unsigned open : 1;       /* handshake done */
  unsigned fin : 1;        /* the current frame's FIN bit */
  unsigned masked : 1;     /* the current frame is masked */
  unsigned close_sent : 1; /* a close frame is queued (or written) */
  unsigned close_rcvd : 1; /* the peer's close arrived: nothing more is read */
  unsigned busy : 1;       /* inside pusher__ws_recv: recursion guard */
  unsigned has_budget : 1; /* pusher__ws_set_ping_budget was called */

  int err;              /* the first error of this recv (0 = none) */
  int failed;           /* sticky error code once unusable (0 = fine) */
  char *detail;         /* its text (allocated; or a static fallback) */
  ws_hs *hs;            /* client, until the 101 reply is parsed */
};

static const char DETAIL_NOMEM[] = "out of memory";

/* ------------------------------------------------------------------ helpers */

static void fill_rand(pusher__ws *ws, uint8_t *buf, size_t n) {
  if (ws->rand) {
    ws->rand(buf, n, ws->rand_user);
  } else if (pusher__sodium_ready()) {
    /* libsodium's system generator (getrandom(2)), not OpenSSL's DRBG:
     * docs/architecture.md, "Hashing without OpenSSL". */
    randombytes_buf(buf, n);
  } else {
    /* Mask keys need no secrecy (section 10.3 wants unpredictability from
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

/* Record the error pusher__ws_recv reports when it returns (the first one
 * wins).  The text is allocated here: the struct keeps only a pointer. */
static void set_err(pusher__ws *ws, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(pusher__ws *ws, int err, const char *fmt, ...) {
  if (ws->err) return;
  ws->err = err;
  char buf[WS_DETAIL_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  char *d = pusher__strdup(ws->mem, buf);
  ws->detail = d ? d : (char *)DETAIL_NOMEM;
}

static void utf8_init(utf8_state *u) { u->need = 0, u->lo = 0x80, u->hi = 0xBF; }

/* Feed s[0..n) to the check; 0 as soon as a byte cannot continue valid
 * UTF-8.  A sequence may be split anywhere between calls. */
static int utf8_feed(utf8_state *u, const uint8_t *s, size_t n) {
  unsigned need = u->need, lo = u->lo, hi = u->hi;
  size_t i = 0;
  while (i < n) {
    if (need) {
      unsigned c = s[i++];
      if (c < lo || c > hi) return 0;
      need--, lo = 0x80, hi = 0xBF;
      continue;
    }
    /* ASCII runs are skipped 8 bytes at a time. */
    while (n - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned c = s[i++];
    if (c < 0x80) continue;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
  }
  u->need = (uint8_t)need, u->lo = (uint8_t)lo, u->hi = (uint8_t)hi;
  return 1;
}

static int utf8_valid(const uint8_t *s, size_t n) {
  utf8_state u;
  utf8_init(&u);
  return utf8_feed(&u, s, n) && !u.need;
}

int pusher__ws_utf8_valid(const uint8_t *s, size_t n) { return utf8_valid(s, n); }

/* dst[i] = src[i] ^ mask[(pos + i) % 4] (section 5.3); returns the new pos.
 * dst may be src. */
static unsigned mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                          unsigned pos) {
  size_t i = 0;
  if (n >= 16) {
    uint8_t m8[8];
    for (unsigned k = 0; k < 8; k++) m8[k] = mask[(pos + k) & 3];
    uint64_t m;
    memcpy(&m, m8, 8);
    for (; n - i >= 8; i += 8) {
      uint64_t w;
      memcpy(&w, src + i, 8);
      w ^= m;
      memcpy(dst + i, &w, 8);
    }
  }
  for (; i < n; i++) dst[i] = src[i] ^ mask[(pos + i) & 3];
  return (unsigned)((pos + n) & 3);
}

/* Make room for n more output bytes (no cap here: callers check theirs). */
static int out_reserve(pusher__ws *ws, size_t n) {
  if (n > SIZE_MAX - ws->out_len) return PUSHER_ERR_TOO_LARGE;
  size_t need = ws->out_len + n;
  if (need <= ws->out_alloc) return 0;
  size_t a = ws->out_alloc ? ws->out_alloc : 256;
  while (a < need) a = a > SIZE_MAX / 2 ? need : a * 2;
  uint8_t *p = pusher__realloc(ws->mem, ws->out, a);
  if (!p) return PUSHER_ERR_NOMEM;
  ws->out = p;
  ws->out_alloc = a;
  return 0;
}

static int out_appendf(pusher__ws *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int out_appendf(pusher__ws *ws, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return PUSHER_ERR_INTERNAL;
  int r = out_reserve(ws, (size_t)n + 1);
  if (r) return r;
  va_start(ap, fmt);
  vsnprintf((char *)ws->out + ws->out_len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  ws->out_len += (size_t)n;
  return 0;
}

static void out_free(pusher__ws *ws) {
  pusher__free(ws->mem, ws->out);
  ws->out = NULL;
  ws->out_len = ws->out_alloc = 0;
}

static void msg_free(pusher__ws *ws) {
  pusher__free(ws->mem, ws->msg);
  ws->msg = NULL;
  ws->msg_len = ws->msg_alloc = 0;
}

static void ctl_free(pusher__ws *ws) {
  pusher__free(ws->mem, ws->ctl);
  ws->ctl = NULL;
  ws->ctl_len = 0;
}

/* Section 4.2.2: base64(SHA-1(key + GUID)).  SHA-1 here proves only that
 * the peer read the key (section 10.1 of RFC 6455; nothing secret is
 * hashed), so it is our own (core/hash.h), not OpenSSL's. */
int pusher__ws_accept_key(const char *key, char *out, size_t outlen) {
  if (!key || !out || outlen < 29) return PUSHER_ERR_INVALID_ARGUMENT;
  uint8_t md[PUSHER__SHA1_SIZE];
  pusher__sha1_ctx c;
  pusher__sha1_init(&c);
  pusher__sha1_update(&c, key, strlen(key));
  pusher__sha1_update(&c, WS_GUID, sizeof WS_GUID - 1);
  pusher__sha1_final(&c, md);
  return pusher__b64_encode(md, sizeof md, out, outlen) == 0 ? 0 : PUSHER_ERR_INTERNAL;
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

/* ------------------------------------------------------------------ encoder */

/* Append one complete frame (FIN set): masked with a fresh key from the
 * rand function in client mode (section 5.3), unmasked in server mode
 * (section 5.1).  The payload is p[0..n) followed by q[0..qn) (a close
 * frame's code and reason).  Control frames may use WS_CTRL_SLACK beyond
 * max_out; data frames are checked by the caller. */
static int put_frame(pusher__ws *ws, uint8_t op, const uint8_t *p, size_t n, const uint8_t *q,
                     size_t qn) {
  uint8_t h[14];
  size_t len = n + qn;
  size_t hl = pusher__ws_frame_header(h, op, len);
  if (!ws->server) {
    h[1] |= 0x80;
    fill_rand(ws, h + hl, 4);
    hl += 4;
  }
  if (op >= OP_CLOSE) {
    size_t cap = ws->max_out > SIZE_MAX - WS_CTRL_SLACK ? SIZE_MAX : ws->max_out + WS_CTRL_SLACK;
    if (ws->out_len > cap || hl + len > cap - ws->out_len) return PUSHER_ERR_TOO_LARGE;
  }
  int r = out_reserve(ws, hl + len);
  if (r) return r;
  uint8_t *o = ws->out + ws->out_len;
  memcpy(o, h, hl);
  if (ws->server) {
    if (n) memcpy(o + hl, p, n);
    if (qn) memcpy(o + hl + n, q, qn);
  } else {
    unsigned pos = mask_copy(o + hl, p, n, h + hl - 4, 0);
    mask_copy(o + hl + n, q, qn, h + hl - 4, pos);
  }
  ws->out_len += hl + len;
  return 0;
}

static int put_close(pusher__ws *ws, uint16_t code, const uint8_t *reason, size_t rl) {
  uint8_t c[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  int r = put_frame(ws, OP_CLOSE, c, code ? 2 : 0, reason, rl);
  if (!r) ws->close_sent = 1;
  return r;
}

static int can_send(const pusher__ws *ws) {
  if (ws->failed || !ws->open || ws->close_sent) return PUSHER_ERR_INVALID_STATE;
  return 0;
}

int pusher__ws_send_text(pusher__ws *ws, const char *msg, size_t len) {
  if (!ws || (!msg && len)) return PUSHER_ERR_INVALID_ARGUMENT;
  int r = can_send(ws);
  if (r) return r;
  size_t queued = ws->out_len;
  if (len > ws->max_out || queued > ws->max_out - len ||
      ws->max_out - len - queued < WS_FRAME_OVERHEAD)
    return PUSHER_ERR_TOO_LARGE;
  if (!utf8_valid((const uint8_t *)msg, len)) return PUSHER_ERR_INVALID_ARGUMENT;
  return put_frame(ws, OP_TEXT, (const uint8_t *)msg, len, NULL, 0);
}

int pusher__ws_send_ping(pusher__ws *ws) {
  if (!ws) return PUSHER_ERR_INVALID_ARGUMENT;
  int r = can_send(ws);
  if (r) return r;
  return put_frame(ws, OP_PING, NULL, 0, NULL, 0);
}

int pusher__ws_send_close(pusher__ws *ws, uint16_t code, const char *reason) {
  if (!ws) return PUSHER_ERR_INVALID_ARGUMENT;
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 123 || (rl && !code) || !utf8_valid((const uint8_t *)(reason ? reason : ""), rl))
    return PUSHER_ERR_INVALID_ARGUMENT;
  int r = can_send(ws);
  if (r) return r;
  return put_close(ws, code, (const uint8_t *)reason, rl);
}

/* ------------------------------------------------------------------ parser */

/* Fail the connection (section 7.1.7): queue a close frame with code (and
 * reason, which may be NULL) unless one was sent already, and record the
 * error; parsing stops at once.  The close frame is skipped when even the
 * control slack is full. */
static void fail(pusher__ws *ws, int err, uint16_t code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(pusher__ws *ws, int err, uint16_t code, const char *reason, const char *fmt, ...) {
  if (ws->err) return;
  char buf[WS_DETAIL_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (code && !ws->close_sent)
    (void)put_close(ws, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
  set_err(ws, err, "%s", buf);
}

/* Section 7.4: the codes a close frame may carry: 1000-1003, 1007-1014
 * (1004 is reserved, 1005 and 1006 must never be sent; 1012-1014 are in
 * IANA's registry, section 11.7) and 3000-4999 (registered and private). */
static int close_code_ok(unsigned code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/* Header size once its first two bytes are known. */
static unsigned header_size(const uint8_t *h) {
  unsigned l7 = h[1] & 0x7Fu;
  return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* The first two header bytes of a control frame already break two rules of
 * section 5.5; say so before the rest arrives. */
static void check_ctl_start(pusher__ws *ws) {
  unsigned op = ws->hdr[0] & 0x0Fu, l7 = ws->hdr[1] & 0x7Fu;
  if (!(op & 0x8)) return;
  if (l7 > WS_CTRL_MAX)
    fail(ws, PUSHER_ERR_WEBSOCKET, 1002, NULL,
         "control frame (opcode 0x%x) with a payload over 125 bytes", op);
  else if (!(ws->hdr[0] & 0x80))
    fail(ws, PUSHER_ERR_WEBSOCKET, 1002, NULL, "fragmented control frame (opcode 0x%x)", op);
}

static void end_frame(pusher__ws *ws, const uint8_t *data, size_t n);

/* A complete frame header: sections 5.2 (bits, lengths), 5.1 (masking),
 * 5.4 (fragmentation) and 5.5 (control frames), then the caps.  The first
 * broken rule is named. */
static void begin_frame(pusher__ws *ws) {
  const uint8_t *h = ws->hdr;
  unsigned op = h[0] & 0x0Fu, fin = h[0] >> 7, rsv = (h[0] >> 4) & 7u;
  unsigned l7 = h[1] & 0x7Fu, lenbytes = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
  int masked = (h[1] & 0x80) != 0, ctrl = op >= 8;
  uint64_t len = lenbytes ? 0 : l7;
  for (unsigned i = 0; i < lenbytes; i++) len = len << 8 | h[2 + i];
  ws->hdr_have = 0;
#define RULE(...) fail(ws, PUSHER_ERR_WEBSOCKET, 1002, NULL, __VA_ARGS__)
  if (lenbytes == 8 && (len >> 63))
    RULE("64-bit payload length with the most significant bit set");
  else if ((lenbytes == 2 && len < 126) || (lenbytes == 8 && len < 65536))
    RULE("non-minimal payload length (%llu in the %u-bit form)", (unsigned long long)len,
         lenbytes * 8);
  else if (rsv & 4)
    RULE("reserved bit RSV1 set: a compressed frame, but compression was not negotiated");
  else if (rsv)
    RULE("reserved bit RSV%u set (no extension was negotiated)", (rsv & 2) ? 2u : 3u);
  else if (masked && !ws->server)
    RULE("masked frame from the server (section 5.1: servers never mask)");
  else if (!masked && ws->server)
    RULE("unmasked frame from the client (section 5.1: clients always mask)");
  else if ((op >= 3 && op <= 7) || op >= 0xB)
    RULE("reserved opcode 0x%x", op);
  else if (op == OP_CONT && !ws->msg_op)
    RULE("continuation frame without a message to continue");
  else if (op != OP_CONT && !ctrl && ws->msg_op)
    RULE("new data frame inside a fragmented message");
#undef RULE
  if (ws->err) return;
  if (op == OP_BINARY && !ws->on_binary) {
    fail(ws, PUSHER_ERR_WEBSOCKET, 1003, "binary frames are not supported",
         "binary frames are not supported");
    return;
  }
  if (!ctrl) {
    if (op != OP_CONT) {
      ws->msg_op = (uint8_t)op;
      utf8_init(&ws->u);
    }
    if (len > ws->max_msg - ws->msg_len) {
      fail(ws, PUSHER_ERR_MSG_TOO_LARGE, 1009, NULL, "message over %zu bytes", ws->max_msg);
      return;
    }
  }
  ws->op = (uint8_t)op;
  ws->fin = fin;
  ws->masked = masked;
  if (masked) memcpy(ws->mask, h + 2 + lenbytes, 4);
  ws->mask_pos = 0;
  ws->ctl_len = 0;
  ws->left = len;
  if (!len) end_frame(ws, ws->msg, ws->msg_len);
}

/* The close frame's payload (ws->ctl) is complete: section 5.5.1. */
static void got_close(pusher__ws *ws) {
  const uint8_t *c = ws->ctl;
  size_t n = ws->ctl_len;
  unsigned code = n >= 2 ? (unsigned)c[0] << 8 | c[1] : 0;
  if (n == 1) {
    fail(ws, PUSHER_ERR_WEBSOCKET, 1002, NULL,
         "close frame with a 1-byte payload (a close body starts with a 2-byte code)");
  } else if (n >= 2 && !close_code_ok(code)) {
    fail(ws, PUSHER_ERR_WEBSOCKET, 1002, NULL, "invalid close code %u", code);
  } else if (n > 2 && !utf8_valid(c + 2, n - 2)) {
    fail(ws, PUSHER_ERR_WEBSOCKET, 1007, "invalid UTF-8 in the close reason",
         "invalid UTF-8 in the close reason");
  } else {
    /* Echo the code and reason (section 5.5.1) unless we closed first.
     * ws->ctl stays until pusher__ws_recv has called on_close. */
    ws->close_rcvd = 1;
    if (!ws->close_sent) {
      int r = put_frame(ws, OP_CLOSE, c, n, NULL, 0);
      if (r == 0) ws->close_sent = 1;
      else if (r == PUSHER_ERR_TOO_LARGE)
        set_err(ws, r, "outbound queue over %zu bytes (peer not reading)",
                ws->max_out + WS_CTRL_SLACK);
      else
        set_err(ws, r, "%s", DETAIL_NOMEM);
    }
  }
}

static void got_ping(pusher__ws *ws) {
  if (!ws->server && ws->has_budget) {
    if (!ws->ping_budget) {
      fail(ws, PUSHER_ERR_WEBSOCKET, 1008, "ping flood",
           "ping flood: more than %lu WebSocket pings in a second", (unsigned long)ws->ping_cap);
      return;
    }
    ws->ping_budget--;
  }
  /* Section 5.5.2: a pong with the same payload. */
  int r = put_frame(ws, OP_PONG, ws->ctl, ws->ctl_len, NULL, 0);
  if (r == PUSHER_ERR_TOO_LARGE)
    set_err(ws, r, "outbound queue over %zu bytes (peer not reading)",
            ws->max_out + WS_CTRL_SLACK);
  else if (r)
    set_err(ws, r, "%s", DETAIL_NOMEM);
}

/* The current frame is complete.  For a data frame, data[0..n) is the
 * whole message when the frame has FIN (in ws->msg, or straight from the
 * input when it came in one piece). */
static void end_frame(pusher__ws *ws, const uint8_t *data, size_t n) {
  static const uint8_t empty[1] = {0};
  switch (ws->op) {
  case OP_CLOSE:
    got_close(ws);
    return; /* ws->ctl is freed once on_close has run */
  case OP_PING:
    got_ping(ws);
    break;
  case OP_PONG:
    if (ws->on_pong) ws->on_pong(ws->ud);
    break;
  default: /* data */
    if (!ws->fin) return;
    if (ws->msg_op == OP_TEXT && ws->u.need) {
      /* section 8.1: the message ended inside a UTF-8 sequence */
      fail(ws, PUSHER_ERR_WEBSOCKET, 1007, NULL, "invalid UTF-8 in text message");
      return;
    }
    uint8_t mop = ws->msg_op;
    ws->msg_op = 0;
    if (!data) data = empty;
    if (mop == OP_TEXT) {
      if (ws->cb.on_text) ws->cb.on_text(data, n, ws->ud);
    } else if (ws->on_binary) {
      ws->on_binary(data, n, ws->ud);
    }
    msg_free(ws);
    return;
  }
  ctl_free(ws);
}

/* Payload bytes of the current frame: as many of in[0..len) as it has
 * left.  Returns how many were used. */
static size_t payload(pusher__ws *ws, const uint8_t *in, size_t len) {
  size_t k = len < ws->left ? len : (size_t)ws->left;
  if (ws->op >= OP_CLOSE) {
    if (!ws->ctl && !(ws->ctl = pusher__malloc(ws->mem, WS_CTRL_MAX))) {
      set_err(ws, PUSHER_ERR_NOMEM, "%s", DETAIL_NOMEM);
      return k;
    }
    /* k <= WS_CTRL_MAX - ctl_len: the header said <= 125 (check_ctl_start) */
    ws->mask_pos = (uint8_t)mask_copy(ws->ctl + ws->ctl_len, in, k, ws->masked ? ws->mask
                                      : (const uint8_t[4]){0, 0, 0, 0}, ws->mask_pos);
    ws->ctl_len = (uint8_t)(ws->ctl_len + k);
    ws->left -= k;
    if (!ws->left) end_frame(ws, NULL, 0);
    return k;
  }
  if (ws->fin && !ws->msg_len && k == ws->left && !ws->masked) {
    /* The whole (last) frame of the message is here and needs no
     * unmasking: check it and deliver it from the input, no copy. */
    ws->left = 0;
    if (ws->msg_op == OP_TEXT && !utf8_feed(&ws->u, in, k)) {
      fail(ws, PUSHER_ERR_WEBSOCKET, 1007, NULL, "invalid UTF-8 in text message");
      return k;
    }
    end_frame(ws, in, k);
    return k;
  }
  /* Reassemble, doubling (amortised linear, however small the fragments),
   * up to the end of this frame when it is the last one, else up to
   * max_msg (checked in begin_frame): a peer that announces a large frame
   * and sends it slowly costs only about what it has sent. */
  size_t need = ws->msg_len + k;
  size_t limit = ws->fin ? ws->msg_len + (size_t)ws->left : ws->max_msg;
  if (need > ws->msg_alloc) {
    size_t a = ws->msg_alloc ? ws->msg_alloc : 256;
    while (a < need) a *= 2;
    if (a > limit) a = limit;
    uint8_t *p = pusher__realloc(ws->mem, ws->msg, a);
    if (!p) {
      set_err(ws, PUSHER_ERR_NOMEM, "%s", DETAIL_NOMEM);
      return k;
    }
    ws->msg = p;
    ws->msg_alloc = a;
  }
  uint8_t *dst = ws->msg + ws->msg_len;
  if (ws->masked) ws->mask_pos = (uint8_t)mask_copy(dst, in, k, ws->mask, ws->mask_pos);
  else memcpy(dst, in, k);
  ws->msg_len += k;
  ws->left -= k;
  if (ws->msg_op == OP_TEXT && !utf8_feed(&ws->u, dst, k)) {
    /* fail at once, not at the end of the message (section 8.1) */
    fail(ws, PUSHER_ERR_WEBSOCKET, 1007, NULL, "invalid UTF-8 in text message");
    return k;
  }
  if (!ws->left) end_frame(ws, ws->msg, ws->msg_len);
  return k;
}

/* Parse in[0..len): the one pass over the input.  Stops at the first error
 * or at the peer's close (what follows a close is not read). */
static void parse(pusher__ws *ws, const uint8_t *in, size_t len) {
  while (len && !ws->err && !ws->close_rcvd) {
    if (ws->left) {
      size_t k = payload(ws, in, len);
      in += k, len -= k;
      continue;
    }
    if (ws->hdr_have < 2) {
      ws->hdr[ws->hdr_have++] = *in++, len--;
      if (ws->hdr_have < 2) continue;
      check_ctl_start(ws);
      if (ws->err) break;
    } else {
      size_t need = header_size(ws->hdr) - ws->hdr_have, k = len < need ? len : need;
      memcpy(ws->hdr + ws->hdr_have, in, k);
      ws->hdr_have = (uint8_t)(ws->hdr_have + k);
      in += k, len -= k;
    }
    if (ws->hdr_have == header_size(ws->hdr)) begin_frame(ws);
  }
}

/* ------------------------------------------------------------------ lifecycle */

static int ws_alloc(pusher__ws **out, const pusher__ws_config *cfg, int server,
                    const pusher__ws_callbacks *cb, void *user_data) {
  pusher__ws *ws = pusher__calloc(cfg->mem, 1, sizeof *ws);
  if (!ws) return PUSHER_ERR_NOMEM;
  ws->mem = cfg->mem;
  if (cb) ws->cb = *cb;
  ws->ud = user_data;
  ws->rand = cfg->rand;
  ws->rand_user = cfg->rand_user;
  ws->server = server ? 1u : 0u;
  ws->max_msg = cfg->max_msg ? cfg->max_msg : WS_DEFAULT_MAX_MSG;
  ws->max_out = cfg->max_out ? cfg->max_out : WS_DEFAULT_MAX_OUT;
  utf8_init(&ws->u);
  *out = ws;
  return 0;
}

void pusher__ws_set_extra_callbacks(pusher__ws *ws, const pusher__ws_extra_callbacks *cb) {
  if (!ws) return;
  ws->on_binary = cb ? cb->on_binary : NULL;
  ws->on_pong = cb ? cb->on_pong : NULL;
}

void pusher__ws_del(pusher__ws *ws) {
  if (!ws) return;
  const pusher_mem *m = ws->mem;
  out_free(ws);
  msg_free(ws);
  ctl_free(ws);
  if (ws->hs) {
    pusher__buf_free(&ws->hs->hdr);
    pusher__free(m, ws->hs);
  }
  if (ws->detail != DETAIL_NOMEM) pusher__free(m, ws->detail);
  pusher__free(m, ws);
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
  ws->hs = pusher__calloc(ws->mem, 1, sizeof *ws->hs);
  if (!ws->hs) {
    pusher__ws_del(ws);
    return PUSHER_ERR_NOMEM;
  }
  pusher__buf_init(&ws->hs->hdr, ws->mem, WS_MAX_HANDSHAKE_HDR);
  uint8_t nonce[16];
  fill_rand(ws, nonce, sizeof nonce);
  char key[32];
  r = pusher__b64_encode(nonce, sizeof nonce, key, sizeof key); /* 24 chars + NUL */
  if (!r) r = pusher__ws_accept_key(key, ws->hs->accept, sizeof ws->hs->accept);
  if (!r)
    r = out_appendf(ws,
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
    r = out_appendf(ws,
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
  ws->open = 1;
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

/* Parse the complete reply header in ws->hs->hdr (ends with CRLFCRLF). */
static int parse_reply(pusher__ws *ws) {
  const char *p = (const char *)ws->hs->hdr.data;
  const char *end = p + ws->hs->hdr.len - 2; /* the final CRLF terminates the list */
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
      if (accept_seen || !ieq(v, vl, ws->hs->accept) || memcmp(v, ws->hs->accept, vl) != 0) {
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
 * Once the header is complete and valid, the handshake state is freed and
 * the socket is open. */
static int hs_feed(pusher__ws *ws, const uint8_t *in, size_t len, size_t *used) {
  static const char term[4] = {'\r', '\n', '\r', '\n'};
  ws_hs *hs = ws->hs;
  size_t i = 0;
  int done = 0;
  while (i < len) {
    uint8_t c = in[i++];
    if (c == (uint8_t)term[hs->match])
      hs->match++;
    else
      hs->match = c == '\r' ? 1 : 0;
    if (hs->match == 4) {
      done = 1;
      break;
    }
  }
  *used = i;
  if (pusher__buf_append(&hs->hdr, in, i) != 0) {
    set_err(ws, PUSHER_ERR_HANDSHAKE, "HTTP reply header over %zu bytes", WS_MAX_HANDSHAKE_HDR);
    return PUSHER_ERR_HANDSHAKE;
  }
  if (!done) return 0;
  int r = parse_reply(ws);
  if (r) return r;
  pusher__buf_free(&hs->hdr);
  pusher__free(ws->mem, hs);
  ws->hs = NULL;
  ws->open = 1;
  return 0;
}

/* ------------------------------------------------------------------ recv */

/* Deliver the gathered error (last action: the caller may drop ws). */
static int report_err(pusher__ws *ws) {
  int err = ws->err;
  ws->failed = err;
  ws->busy = 0;
  msg_free(ws);
  ctl_free(ws);
  void (*fn)(int, const char *, void *) = ws->cb.on_error;
  if (fn) fn(err, ws->detail, ws->ud);
  return err;
}

int pusher__ws_recv(pusher__ws *ws, const uint8_t *in, size_t len) {
  if (!ws || (!in && len)) return PUSHER_ERR_INVALID_ARGUMENT;
  if (ws->busy) return PUSHER_ERR_INVALID_STATE;
  if (ws->failed) return ws->failed;
  if (ws->close_rcvd) return 0; /* nothing is read after the peer's close */
  ws->busy = 1;
  if (!ws->open) {
    size_t used = 0;
    if (hs_feed(ws, in, len, &used) < 0) return report_err(ws);
    if (!ws->open) {
      ws->busy = 0;
      return 0;
    }
    in += used;
    len -= used;
    if (ws->cb.on_open) ws->cb.on_open(ws->ud);
  }
  parse(ws, in, len);
  if (ws->err) return report_err(ws);
  ws->busy = 0;
  if (ws->close_rcvd) {
    /* on_close is the last thing done: copy the reason out of ws->ctl,
     * which is freed first. */
    char reason[WS_CTRL_MAX];
    size_t rl = ws->ctl_len > 2 ? ws->ctl_len - 2u : 0;
    uint16_t code = ws->ctl_len >= 2 ? (uint16_t)(ws->ctl[0] << 8 | ws->ctl[1]) : 1005;
    if (rl) memcpy(reason, ws->ctl + 2, rl);
    reason[rl] = '\0';
    ctl_free(ws);
    msg_free(ws);
    void (*fn)(uint16_t, const char *, size_t, void *) = ws->cb.on_close;
    if (fn) fn(code, reason, rl, ws->ud);
  }
  return 0;
}

/* ------------------------------------------------------------------ output */

size_t pusher__ws_pending(pusher__ws *ws, const uint8_t **out) {
  if (!ws) {
    if (out) *out = NULL;
    return 0;
  }
  if (out) *out = ws->out;
  return ws->out_len;
}

void pusher__ws_consume(pusher__ws *ws, size_t n) {
  if (!ws) return;
  if (n >= ws->out_len) {
    out_free(ws); /* empty: an idle connection keeps no output buffer */
    return;
  }
  memmove(ws->out, ws->out + n, ws->out_len - n);
  ws->out_len -= n;
}

/* ------------------------------------------------------------------ getters */

int pusher__ws_is_open(const pusher__ws *ws) {
  return ws && !ws->failed && ws->open && !ws->close_sent && !ws->close_rcvd;
}

int pusher__ws_close_sent(const pusher__ws *ws) { return ws && ws->close_sent; }

int pusher__ws_close_received(const pusher__ws *ws) { return ws && ws->close_rcvd; }

void pusher__ws_set_ping_budget(pusher__ws *ws, unsigned long n) {
  if (!ws || ws->server) return;
  ws->ping_budget = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  ws->ping_cap = ws->ping_budget;
  ws->has_budget = 1;
}

const char *pusher__ws_cut_point(const pusher__ws *ws) {
  if (!ws || ws->server || ws->failed) return NULL;
  if (!ws->open) return "during the WebSocket handshake";
  if (ws->hdr_have || ws->left) return "in the middle of a frame";
  return NULL;
}
