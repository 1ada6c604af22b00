/* pusherd: server side of RFC 6455, sans-I/O.
 *
 * pusherd's own small framer (server mode only): it reports binary messages
 * to the caller (so they can be answered with pusher:error, which the shared
 * lib/core/ws.h callbacks cannot express) and encodes unmasked frames that
 * the fan-out path shares between sockets.
 *
 * Inbound: client frames must be masked (else close 1002); control frames
 * <= 125 bytes and unfragmented; messages are reassembled up to max_msg
 * (over => close 1009).  Pings are answered with pongs; a close frame is
 * answered with a close frame echoing its code. */
#include "pusherd.h"
#include "core/mem.h"
#include "core/ws.h"

#include <string.h>

struct pd_ws {
  pd_ws_callbacks cb;
  void *ud;
  size_t max_msg;
  pusher__buf in;   /* unparsed bytes */
  pusher__buf msg;  /* message being reassembled */
  pusher__buf out;  /* bytes for the transport */
  int msg_op;       /* 0 = none in progress, 1 text, 2 binary */
  int close_sent, close_received, failed, stop;
};

/* The frame header and the accept key are the shared core's (lib/core/ws.h);
 * pusherd only differs in how it reports inbound messages. */
size_t pd_ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t len) {
  return pusher__ws_frame_header(out, opcode, len);
}

static void put_frame(pd_ws *ws, uint8_t op, const void *p, size_t n) {
  uint8_t h[10];
  size_t hl = pd_ws_frame_header(h, op, n);
  pusher__buf_append(&ws->out, h, hl);
  if (n) pusher__buf_append(&ws->out, p, n);
}

int pd_ws_accept_key(const char *key, char *out, size_t outlen) {
  if (!key || strlen(key) > 128) return -1;
  return pusher__ws_accept_key(key, out, outlen) == 0 ? 0 : -1;
}

pd_ws *pd_ws_server_new(const char *key, size_t max_msg, const pd_ws_callbacks *cb, void *ud) {
  char acc[32];
  if (!key || pd_ws_accept_key(key, acc, sizeof acc) != 0) return NULL;
  pd_ws *ws = pd_zalloc(sizeof *ws);
  if (!ws) return NULL;
  ws->cb = *cb;
  ws->ud = ud;
  ws->max_msg = max_msg;
  pusher__buf_init(&ws->in, NULL, max_msg + 64);
  pusher__buf_init(&ws->msg, NULL, max_msg);
  pusher__buf_init(&ws->out, NULL, 0);
  pusher__buf_appendf(&ws->out,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n",
                      acc);
  return ws;
}

void pd_ws_del(pd_ws *ws) {
  if (!ws) return;
  pusher__buf_free(&ws->in);
  pusher__buf_free(&ws->msg);
  pusher__buf_free(&ws->out);
  pd_free(ws);
}

int pd_ws_send_close(pd_ws *ws, uint16_t code, const char *reason) {
  if (ws->close_sent) return 0;
  uint8_t p[125];
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 123) rl = 123;
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  if (rl) memcpy(p + 2, reason, rl);
  put_frame(ws, 0x8, p, rl + 2);
  ws->close_sent = 1;
  return 0;
}

static void fail(pd_ws *ws, uint16_t code, const char *why) {
  if (ws->failed) return;
  ws->failed = 1;
  pd_ws_send_close(ws, code, why);
  if (ws->cb.on_error) ws->cb.on_error(code, why, ws->ud);
}

size_t pd_ws_pending(pd_ws *ws, const uint8_t **out) {
  *out = ws->out.data;
  return ws->out.len;
}
void pd_ws_consume(pd_ws *ws, size_t n) { pusher__buf_consume(&ws->out, n); }
int pd_ws_close_sent(const pd_ws *ws) { return ws->close_sent; }

/* One complete frame at the head of ws->in, or 0 when more bytes are needed. */
static int parse_one(pd_ws *ws) {
  const uint8_t *b = ws->in.data;
  size_t n = ws->in.len;
  if (n < 2) return 0;
  int fin = b[0] & 0x80, op = b[0] & 0x0f;
  if (b[0] & 0x70) {
    fail(ws, 1002, "reserved bits set");
    return -1;
  }
  if (!(b[1] & 0x80)) {
    fail(ws, 1002, "client frames must be masked");
    return -1;
  }
  uint64_t len = b[1] & 0x7f;
  size_t hl = 2;
  if (len == 126) {
    if (n < 4) return 0;
    len = ((uint64_t)b[2] << 8) | b[3];
    hl = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
    hl = 10;
  }
  if (op >= 8 && (len > 125 || !fin)) {
    fail(ws, 1002, "bad control frame");
    return -1;
  }
  if (len > ws->max_msg || ws->msg.len + len > ws->max_msg) {
    fail(ws, 1009, "message too big");
    return -1;
  }
  if (n < hl + 4 + len) return 0;
  const uint8_t *mask = b + hl;
  uint8_t *p = (uint8_t *)b + hl + 4;
  for (uint64_t i = 0; i < len; i++) p[i] ^= mask[i & 3];
  size_t total = hl + 4 + (size_t)len;
  switch (op) {
  case 0x0: /* continuation */
    if (!ws->msg_op) {
      fail(ws, 1002, "continuation without a message");
      return -1;
    }
    break;
  case 0x1:
  case 0x2:
    if (ws->msg_op) {
      fail(ws, 1002, "new message inside a fragmented one");
      return -1;
    }
    ws->msg_op = op;
    break;
  case 0x8: {
    uint16_t code = 1005;
    if (len >= 2) code = (uint16_t)((p[0] << 8) | p[1]);
    ws->close_received = 1;
    if (!ws->close_sent) pd_ws_send_close(ws, code == 1005 ? 1000 : code, NULL);
    if (ws->cb.on_close) ws->cb.on_close(code, ws->ud);
    return -1;
  }
  case 0x9:
    put_frame(ws, 0xA, p, (size_t)len);
    pusher__buf_consume(&ws->in, total);
    return 1;
  case 0xA:
    pusher__buf_consume(&ws->in, total);
    if (ws->cb.on_pong) ws->cb.on_pong(ws->ud);
    return 1;
  default:
    fail(ws, 1002, "unknown opcode");
    return -1;
  }
  if (pusher__buf_append(&ws->msg, p, (size_t)len) != 0) {
    fail(ws, 1009, "message too big");
    return -1;
  }
  pusher__buf_consume(&ws->in, total);
  if (fin) {
    int mop = ws->msg_op;
    ws->msg_op = 0;
    if (mop == 1) ws->cb.on_text(ws->msg.data, ws->msg.len, ws->ud);
    else ws->cb.on_binary(ws->msg.data, ws->msg.len, ws->ud);
    pusher__buf_reset(&ws->msg);
  }
  return 1;
}

int pd_ws_recv(pd_ws *ws, const uint8_t *in, size_t len) {
  if (ws->failed || ws->close_received) return -1;
  if (pusher__buf_append(&ws->in, in, len) != 0) {
    fail(ws, 1009, "message too big");
    return -1;
  }
  for (;;) {
    int r = parse_one(ws);
    if (r <= 0) return r;
    if (ws->failed || ws->close_received || ws->stop) return 0;
  }
}

void pd_ws_stop(pd_ws *ws) { ws->stop = 1; }
