/* hostile_server: a WebSocket server that misbehaves on purpose, to test
 * how the client survives hostile peers (tests/integration/hostile_servers.sh).
 *
 *   hostile_server --port P [--raw-port Q] [--tls-port R] [--list]
 *
 * Plain TCP on 127.0.0.1.  The HTTP request of each connection is read (up
 * to 16 KiB); the scenario is the app key in its path (/app/<scenario>?...),
 * so one server runs every scenario and each client picks its own with
 * `pusher listen --key <scenario>`; "<scenario>.<tag>" runs the same
 * scenario under another name in the log.  An unknown name gets a 404.  On
 * --raw-port every connection gets a plain-text HTTP reply at once, before
 * reading anything: a TLS client sees garbage instead of a ServerHello.
 * --list prints the scenario names, one a line, and exits.
 *
 * The server does not use lib/core/ws.c: every frame is written byte by byte
 * here, most of them invalid on purpose (RFC 6455 section numbers in the
 * table below say which rule each one breaks).
 *
 * stdout: one JSON line per happening, flushed at once:
 *   {"t":EPOCH_S,"conn":N,"scenario":S,"key":K,"ev":"request"}  request read
 *   {"t":EPOCH_S,"conn":N,"scenario":S,"key":K,"ev":"ping"}     a pusher:ping answered
 *   {"t":EPOCH_S,"conn":N,"scenario":S,"key":K,"ev":"closed","rx":B,"tx":B}
 * SIGTERM/SIGINT: close every connection and exit 0. */
/* The scenario table leaves trailing fields out (they are 0/NULL). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "core/mem.h"

#define MAX_REQUEST 16384
#define MAX_CLIENT_INPUT ((size_t)1 << 20) /* client bytes kept for frame parsing */
#define FLOOD_CHUNK 65536
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct hconn hconn;

/* What happens first, after the request was read. */
enum { HS_NONE, HS_101, HS_EST };
/* What happens after the scenario's bytes were written. */
enum { END_STAY, END_FIN, END_RST };

typedef struct scenario {
  const char *name;
  int hs;            /* HS_*: nothing, a valid 101, or 101 + connection_established */
  const char *blob;  /* bytes written next (may be NULL) */
  size_t blob_len;
  int end;           /* END_* */
  void (*special)(hconn *k); /* called after the blob, if not NULL */
  const char *garbage; /* text message sent after the first subscription
                          succeeded, followed by a good event "after" */
  char *(*make_garbage)(void); /* or this one's result (freed after use) */
  int pong;            /* answer pusher:ping */
  const char *established; /* connection_established data, if not the usual */
} scenario;

struct hconn {
  uv_tcp_t h;
  uv_shutdown_t sreq;
  hconn *next;
  int id;
  const scenario *sc;
  uint8_t *buf; /* request, then client frames */
  size_t len, alloc;
  int upgraded;
  int closing;
  int reset_when_written;
  int inflight;
  void (*refill)(hconn *k); /* endless senders: called while < 2 writes fly */
  unsigned long refills;
  uint64_t rx, tx;
  char key[64];
  int subscribed;
  char appkey[64]; /* the app key as sent; the log names it */
  SSL *ssl;         /* --tls-port connections */
  BIO *rbio, *wbio; /* memory BIOs: ciphertext in and out */
  uv_timer_t trickle; /* trickle scenarios: one byte per tick */
  int trickle_on;
  const char *trickle_bytes;
};

static uv_loop_t *loop;
static uv_tcp_t listener, raw_listener, tls_listener;
static int raw_on, tls_on;
static SSL_CTX *tls_ctx;
static uv_signal_t sigterm, sigint;
static hconn *conns;
static int next_id;

/* ------------------------------------------------------------------ log */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_ev(const hconn *k, const char *ev) {
  printf("{\"t\":%.6f,\"conn\":%d,\"scenario\":\"%s\",\"key\":\"%s\",\"ev\":\"%s\"", now_s(), k->id,
         k->sc ? k->sc->name : "", k->appkey[0] ? k->appkey : (k->sc ? k->sc->name : ""), ev);
  if (strcmp(ev, "closed") == 0)
    printf(",\"rx\":%llu,\"tx\":%llu", (unsigned long long)k->rx, (unsigned long long)k->tx);
  printf("}\n");
  fflush(stdout);
}

/* ------------------------------------------------------------------ I/O */

static void on_freed(hconn *k) {
  log_ev(k, "closed");
  if (k->ssl) SSL_free(k->ssl); /* frees the BIOs too */
  pusher__free(NULL, k->buf);
  pusher__free(NULL, k);
}

static void on_trickle_closed(uv_handle_t *h) { on_freed(h->data); }

static void on_closed(uv_handle_t *h) {
  hconn *k = h->data;
  if (k->trickle_on) {
    k->trickle.data = k;
    uv_close((uv_handle_t *)&k->trickle, on_trickle_closed);
    return;
  }
  on_freed(k);
}

static void unlink_conn(hconn *k) {
  k->closing = 1;
  for (hconn **pp = &conns; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  if (k->trickle_on) uv_timer_stop(&k->trickle);
}

static void conn_close(hconn *k) {
  if (k->closing) return;
  unlink_conn(k);
  uv_close((uv_handle_t *)&k->h, on_closed);
}

static void conn_reset(hconn *k) {
  if (k->closing) return;
  unlink_conn(k);
  if (uv_tcp_close_reset(&k->h, on_closed) != 0) uv_close((uv_handle_t *)&k->h, on_closed);
}

typedef struct wreq {
  uv_write_t req;
  hconn *k;
  size_t len;
  uint8_t data[];
} wreq;

static void send_bytes(hconn *k, const void *p, size_t n);

static void on_written(uv_write_t *req, int status) {
  wreq *w = req->data;
  hconn *k = w->k;
  k->inflight--;
  if (status == 0) k->tx += w->len;
  pusher__free(NULL, w);
  if (k->closing || status == UV_ECANCELED) return;
  if (status < 0) {
    conn_close(k); /* the client went away (EPIPE, ECONNRESET) */
    return;
  }
  if (k->reset_when_written && k->inflight == 0) {
    conn_reset(k);
    return;
  }
  while (k->refill && !k->closing && k->inflight < 2) k->refill(k);
}

static void sock_send(hconn *k, const void *p, size_t n) {
  if (k->closing || !n) return;
  wreq *w = pusher__malloc(NULL, sizeof(*w) + n);
  if (!w) {
    conn_close(k);
    return;
  }
  memcpy(w->data, p, n);
  w->req.data = w;
  w->k = k;
  w->len = n;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&k->h, &b, 1, on_written) != 0) {
    pusher__free(NULL, w);
    conn_close(k);
    return;
  }
  k->inflight++;
}

/* Move the TLS session's ciphertext to the socket. */
static void tls_flush(hconn *k) {
  uint8_t buf[16384];
  int n;
  while (!k->closing && (n = BIO_read(k->wbio, buf, sizeof(buf))) > 0) sock_send(k, buf, (size_t)n);
}

/* Plaintext out: through TLS on --tls-port connections. */
static void send_bytes(hconn *k, const void *p, size_t n) {
  if (k->closing || !n) return;
  if (!k->ssl) {
    sock_send(k, p, n);
    return;
  }
  if (SSL_write(k->ssl, p, (int)n) != (int)n) { /* memory BIO: all or error */
    conn_close(k);
    return;
  }
  tls_flush(k);
}

static void send_str(hconn *k, const char *s) { send_bytes(k, s, strlen(s)); }

/* A valid unmasked frame (RFC 6455 section 5.2) with FIN and this opcode,
 * with the minimal length encoding. */
static void send_frame(hconn *k, uint8_t b0, const void *p, size_t n) {
  uint8_t *f = pusher__malloc(NULL, n + 10);
  if (!f) {
    conn_close(k);
    return;
  }
  size_t h = 0;
  f[h++] = b0;
  if (n < 126) {
    f[h++] = (uint8_t)n;
  } else if (n < 65536) {
    f[h++] = 126;
    f[h++] = (uint8_t)(n >> 8);
    f[h++] = (uint8_t)n;
  } else {
    f[h++] = 127;
    for (int i = 7; i >= 0; i--) f[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  if (n) memcpy(f + h, p, n);
  send_bytes(k, f, h + n);
  pusher__free(NULL, f);
}

static void send_text(hconn *k, const char *s) { send_frame(k, 0x81, s, strlen(s)); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the connection closes when the client's EOF is read */
}

static void fin(hconn *k) {
  if (!k->closing && uv_shutdown(&k->sreq, (uv_stream_t *)&k->h, on_shutdown) != 0) conn_close(k);
}

/* ------------------------------------------------------------------ handshake */

static void accept_for(const char *key, char out[64]) {
  char cat[160];
  snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

static void send_101_with(hconn *k, const char *accept_line) {
  char resp[512];
  snprintf(resp, sizeof(resp),
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\n%s\r\n",
           accept_line);
  send_str(k, resp);
}

static void send_101(hconn *k) {
  char acc[64], line[128];
  accept_for(k->key, acc);
  snprintf(line, sizeof(line), "Sec-WebSocket-Accept: %s\r\n", acc);
  send_101_with(k, line);
}

static void send_established(hconn *k) {
  char est[256];
  snprintf(est, sizeof(est),
           "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"1.%d\\\","
           "\\\"activity_timeout\\\":%s}\"}",
           k->id, k->sc->established ? k->sc->established : "120");
  send_text(k, est);
}

/* ------------------------------------------------------------------ specials */

/* Section 1.3/4.1: garbage where the status line belongs, then a 101. */
static void sp_garbage_101(hconn *k) {
  send_str(k, "\x16\x03\x01garbage \xff\xfe\x01 before the status line\r\n");
  send_101(k);
  send_established(k);
}

/* Section 4.1: the accept value of another key (the RFC's sample key). */
static void sp_wrong_accept(hconn *k) {
  char acc[64], line[128];
  accept_for(strcmp(k->key, "dGhlIHNhbXBsZSBub25jZQ==") ? "dGhlIHNhbXBsZSBub25jZQ==" : "AAAAAAAAAAAAAAAAAAAAAA==",
             acc);
  snprintf(line, sizeof(line), "Sec-WebSocket-Accept: %s\r\n", acc);
  send_101_with(k, line);
  send_established(k);
}

/* Section 4.1: an extension or subprotocol the client did not offer. */
static void sp_101_plus(hconn *k, const char *extra) {
  char acc[64], line[256];
  accept_for(k->key, acc);
  snprintf(line, sizeof(line), "Sec-WebSocket-Accept: %s\r\n%s", acc, extra);
  send_101_with(k, line);
  send_established(k);
}

static void sp_unoffered_extension(hconn *k) {
  sp_101_plus(k, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
}

static void sp_unoffered_protocol(hconn *k) { sp_101_plus(k, "Sec-WebSocket-Protocol: mqtt\r\n"); }

static void sp_missing_accept(hconn *k) {
  send_101_with(k, "");
  send_established(k);
}

/* A header block that never ends: one more header line per refill. */
static void refill_header(hconn *k) {
  char line[4096];
  int n = snprintf(line, sizeof(line), "X-Filler-%lu: ", k->refills++);
  memset(line + n, 'a', sizeof(line) - (size_t)n - 2);
  line[sizeof(line) - 2] = '\r';
  line[sizeof(line) - 1] = '\n';
  send_bytes(k, line, sizeof(line));
}

static void sp_endless_header(hconn *k) {
  send_str(k, "HTTP/1.1 101 Switching Protocols\r\n");
  k->refill = refill_header;
}

/* Empty pings (section 5.5.2) as fast as the socket takes them; the
 * client's pongs are never read. */
static void refill_pings(hconn *k) {
  static uint8_t pings[FLOOD_CHUNK];
  if (!pings[0])
    for (size_t i = 0; i < sizeof(pings); i += 2) pings[i] = 0x89, pings[i + 1] = 0;
  k->refills++;
  send_bytes(k, pings, sizeof(pings));
}

static void sp_ping_flood(hconn *k) {
  uv_read_stop((uv_stream_t *)&k->h);
  k->refill = refill_pings;
}

/* The same at the Pusher level: pusher:ping messages, each owed a
 * pusher:pong; nothing is read. */
static void refill_pusher_pings(hconn *k) {
  static uint8_t pings[FLOOD_CHUNK];
  static size_t len;
  static const char msg[] = "{\"event\":\"pusher:ping\",\"data\":{}}";
  if (!len)
    for (; len + sizeof(msg) + 1 <= sizeof(pings); len += sizeof(msg) + 1) {
      pings[len] = 0x81;
      pings[len + 1] = (uint8_t)(sizeof(msg) - 1);
      memcpy(pings + len + 2, msg, sizeof(msg) - 1);
    }
  k->refills++;
  send_bytes(k, pings, len);
}

static void sp_pusher_ping_flood(hconn *k) {
  uv_read_stop((uv_stream_t *)&k->h);
  k->refill = refill_pusher_pings;
}

/* One byte every 100 ms, for ever: a reply header or a frame that never
 * completes, though bytes keep coming. */
static void on_trickle(uv_timer_t *t) {
  hconn *k = t->data;
  send_bytes(k, k->trickle_bytes, 1);
}

static void start_trickle(hconn *k, const char *bytes) {
  if (uv_timer_init(loop, &k->trickle) != 0) return;
  k->trickle.data = k;
  k->trickle_on = 1;
  k->trickle_bytes = bytes;
  uv_timer_start(&k->trickle, on_trickle, 100, 100);
}

static void sp_trickle_header(hconn *k) {
  send_str(k, "HTTP/1.1 101 Switching Protocols\r\nX-Slow: ");
  start_trickle(k, "a");
}

static void sp_trickle_frame(hconn *k) {
  static const uint8_t hdr[] = {0x81, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}; /* 64 KiB */
  send_bytes(k, hdr, sizeof(hdr));
  start_trickle(k, "a");
}

/* {"event":"deep","channel":"c1","data":[[[...]]]}, nested 100000 deep. */
static char *deep_json(void) {
  static const char pre[] = "{\"event\":\"deep\",\"channel\":\"c1\",\"data\":";
  size_t depth = 100000, n = sizeof(pre) - 1 + 2 * depth + 1;
  char *s = pusher__malloc(NULL, n + 1);
  if (!s) return NULL;
  memcpy(s, pre, sizeof(pre) - 1);
  memset(s + sizeof(pre) - 1, '[', depth);
  memset(s + sizeof(pre) - 1 + depth, ']', depth);
  s[n - 1] = '}';
  s[n] = '\0';
  return s;
}

/* Section 5.2: a 64-bit length of 256 MiB; only 64 KiB of it follows. */
static void sp_len_256mib(hconn *k) {
  static const uint8_t hdr[] = {0x81, 0x7F, 0, 0, 0, 0, 0x10, 0, 0, 0};
  static uint8_t body[65536];
  memset(body, 'a', sizeof(body));
  send_bytes(k, hdr, sizeof(hdr));
  send_bytes(k, body, sizeof(body));
}

/* A well-formed event of total size n (over max_message_size). */
static char *big_event(size_t n) {
  static const char pre[] = "{\"event\":\"big\",\"channel\":\"c1\",\"data\":\"";
  char *s = pusher__malloc(NULL, n + 1);
  if (!s) return NULL;
  memcpy(s, pre, sizeof(pre) - 1);
  memset(s + sizeof(pre) - 1, 'a', n - (sizeof(pre) - 1) - 2);
  memcpy(s + n - 2, "\"}", 2);
  s[n] = '\0';
  return s;
}

static void sp_huge(hconn *k) {
  char *s = big_event(300 * 1024);
  if (s) send_text(k, s);
  pusher__free(NULL, s);
}

/* 40 fragments of 8 KiB (section 5.4), 320 KiB in all: each frame is small,
 * the message is not. */
static void sp_huge_fragmented(hconn *k) {
  size_t frag = 8192, nfrag = 40;
  char *s = big_event(frag * nfrag);
  if (!s) return;
  for (size_t i = 0; i < nfrag; i++) {
    uint8_t b0 = (uint8_t)((i == 0 ? 0x01 : 0x00) | (i == nfrag - 1 ? 0x80 : 0));
    send_frame(k, b0, s + i * frag, frag);
  }
  pusher__free(NULL, s);
}

/* ------------------------------------------------------------------ scenarios */

#define B(s) s, sizeof(s) - 1
#define EST_EVENT "{\"event\":\"e\",\"channel\":\"c1\",\"data\":\"{}\"}"

static const scenario SCENARIOS[] = {
    /* --- HTTP upgrade (RFC 6455 section 4.1, 4.2.2) --- */
    {"garbage-before-101", HS_NONE, NULL, 0, END_STAY, sp_garbage_101, NULL, NULL},
    {"wrong-accept", HS_NONE, NULL, 0, END_STAY, sp_wrong_accept, NULL, NULL},
    {"missing-accept", HS_NONE, NULL, 0, END_STAY, sp_missing_accept, NULL, NULL},
    {"unoffered-extension", HS_NONE, NULL, 0, END_STAY, sp_unoffered_extension, NULL, NULL},
    {"unoffered-protocol", HS_NONE, NULL, 0, END_STAY, sp_unoffered_protocol, NULL, NULL},
    {"endless-header", HS_NONE, NULL, 0, END_STAY, sp_endless_header, NULL, NULL},
    {"never-answer", HS_NONE, NULL, 0, END_STAY, NULL, NULL, NULL},
    {"trickle-header", HS_NONE, NULL, 0, END_STAY, sp_trickle_header, NULL, NULL},
    {"silent-after-101", HS_101, NULL, 0, END_STAY, NULL, NULL, NULL},
    {"http-200", HS_NONE, B("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), END_FIN, NULL, NULL, NULL},
    /* --- frames of invalid shape (section 5.2 unless noted) --- */
    /* RSV1 is the per-message-deflate bit (RFC 7692); nothing was negotiated */
    {"rsv1-compressed", HS_EST, B("\xC1\x05" "hello"), END_STAY, NULL, NULL, NULL},
    {"rsv2", HS_EST, B("\xA1\x02{}"), END_STAY, NULL, NULL, NULL},
    {"rsv3", HS_EST, B("\x91\x02{}"), END_STAY, NULL, NULL, NULL},
    {"opcode-reserved-data", HS_EST, B("\x83\x01x"), END_STAY, NULL, NULL, NULL},
    {"opcode-reserved-control", HS_EST, B("\x8B\x00"), END_STAY, NULL, NULL, NULL},
    /* section 5.1: a server must not mask; mask key 0 keeps the payload */
    {"masked-frame", HS_EST, B("\x81\xA8\x00\x00\x00\x00" EST_EVENT), END_STAY, NULL, NULL, NULL},
    /* section 5.5: control frames carry at most 125 bytes and are not fragmented */
    {"control-too-long", HS_EST,
     B("\x89\x7E\x00\x7E"
       "0123456789012345678901234567890123456789012345678901234567890123456789"
       "01234567890123456789012345678901234567890123456789012345"),
     END_STAY, NULL, NULL, NULL},
    {"control-fragmented", HS_EST, B("\x09\x01p\x80\x01q"), END_STAY, NULL, NULL, NULL},
    /* section 5.4: fragmentation rules */
    {"continuation-first", HS_EST, B("\x80\x03" "abc"), END_STAY, NULL, NULL, NULL},
    {"data-inside-fragment", HS_EST, B("\x01\x01{\x81\x01}"), END_STAY, NULL, NULL, NULL},
    /* section 5.2: "the minimal number of bytes MUST be used"; 64-bit MSB 0 */
    {"length-16-nonminimal", HS_EST, B("\x81\x7E\x00\x02{}"), END_STAY, NULL, NULL, NULL},
    {"length-64-nonminimal", HS_EST, B("\x81\x7F\x00\x00\x00\x00\x00\x00\x00\x02{}"), END_STAY,
     NULL, NULL, NULL},
    {"length-64-msb", HS_EST, B("\x81\x7F\x80\x00\x00\x00\x00\x00\x00\x02{}"), END_STAY, NULL,
     NULL, NULL},
    {"length-256mib", HS_EST, NULL, 0, END_STAY, sp_len_256mib, NULL, NULL},
    /* section 5.5.1 and 7.4: close payloads */
    {"close-code-1005", HS_EST, B("\x88\x02\x03\xED"), END_STAY, NULL, NULL, NULL},
    {"close-code-999", HS_EST, B("\x88\x02\x03\xE7"), END_STAY, NULL, NULL, NULL},
    {"close-code-5000", HS_EST, B("\x88\x02\x13\x88"), END_STAY, NULL, NULL, NULL},
    {"close-one-byte", HS_EST, B("\x88\x01\x03"), END_STAY, NULL, NULL, NULL},
    {"close-bad-utf8", HS_EST, B("\x88\x04\x03\xE8\xC3\x28"), END_STAY, NULL, NULL, NULL},
    /* section 8.1: text must be UTF-8 */
    {"text-bad-utf8", HS_EST, B("\x81\x03\"\xFF\""), END_STAY, NULL, NULL, NULL},
    {"text-truncated-utf8", HS_EST, B("\x01\x02\"\xE2\x80\x01\x82"), END_STAY, NULL, NULL, NULL},
    {"binary-frame", HS_EST, B("\x82\x02{}"), END_STAY, NULL, NULL, NULL},
    /* floods, stalls and cuts */
    {"ping-flood", HS_EST, NULL, 0, END_STAY, sp_ping_flood, NULL, NULL},
    {"pusher-ping-flood", HS_EST, NULL, 0, END_STAY, sp_pusher_ping_flood, NULL, NULL},
    {"close-mid-frame", HS_EST, B("\x81\x7E\x01\x00{\"event\":\"cut"), END_FIN, NULL, NULL, NULL},
    {"reset-mid-frame", HS_EST, B("\x81\x7E\x01\x00{\"event\":\"cut"), END_RST, NULL, NULL, NULL},
    {"close-mid-header", HS_EST, B("\x81"), END_FIN, NULL, NULL, NULL},
    {"trickle-frame", HS_EST, NULL, 0, END_STAY, sp_trickle_frame, NULL, NULL},
    /* --- Pusher protocol garbage --- */
    {"not-json-first", HS_101, B("\x81\x0Fhello, not JSON"), END_STAY, NULL, NULL, NULL},
    {"no-event-first", HS_101, B("\x81\x0B{\"data\":{}}"), END_STAY, NULL, NULL, NULL},
    {"no-socket-id", HS_101,
     B("\x81\x35{\"event\":\"pusher:connection_established\",\"data\":\"{}\"}"), END_STAY,
     NULL, NULL, NULL},
    {"not-json", HS_EST, NULL, 0, END_STAY, NULL, "hello, not JSON", NULL},
    {"no-event", HS_EST, NULL, 0, END_STAY, NULL, "{\"channel\":\"c1\",\"data\":\"{}\"}", NULL},
    {"deep-json", HS_EST, NULL, 0, END_STAY, NULL, NULL, deep_json},
    {"nul-in-json", HS_EST, NULL, 0, END_STAY, NULL,
     "{\"event\":\"e\\u0000vil\",\"channel\":\"c1\",\"data\":\"a\\u0000b\"}", NULL},
    {"lone-surrogate", HS_EST, NULL, 0, END_STAY, NULL,
     "{\"event\":\"e\",\"channel\":\"c1\",\"data\":\"\\ud800\"}", NULL},
    /* a server asking to be pinged after 1 ms of silence, and answering */
    {"tiny-activity-timeout", HS_EST, NULL, 0, END_STAY, NULL, NULL, NULL, 1, "0.001"},
    {"huge-message", HS_EST, NULL, 0, END_STAY, sp_huge, NULL, NULL},
    {"huge-fragmented", HS_EST, NULL, 0, END_STAY, sp_huge_fragmented, NULL, NULL},
    {"silent-after-established", HS_EST, NULL, 0, END_STAY, NULL, NULL, NULL},
};

static const scenario *find_scenario(const char *name, size_t n) {
  for (size_t i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++)
    if (strlen(SCENARIOS[i].name) == n && memcmp(SCENARIOS[i].name, name, n) == 0)
      return &SCENARIOS[i];
  return NULL;
}

static void run_scenario(hconn *k) {
  const scenario *sc = k->sc;
  if (sc->hs >= HS_101) send_101(k);
  if (sc->hs == HS_EST) send_established(k);
  if (sc->blob) send_bytes(k, sc->blob, sc->blob_len);
  if (sc->special) sc->special(k);
  while (k->refill && !k->closing && k->inflight < 2) k->refill(k);
  if (sc->end == END_FIN) fin(k);
  else if (sc->end == END_RST) k->reset_when_written = 1;
  if (k->reset_when_written && k->inflight == 0) conn_reset(k);
}

/* ------------------------------------------------------------------ input */

static void on_subscribe(hconn *k, const char *channel) {
  char out[512];
  snprintf(out, sizeof(out),
           "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"%s\",\"data\":\"{}\"}",
           channel);
  send_text(k, out);
  if (k->subscribed++ || (!k->sc->garbage && !k->sc->make_garbage)) return;
  if (k->sc->make_garbage) {
    char *g = k->sc->make_garbage();
    if (g) send_text(k, g);
    pusher__free(NULL, g);
  } else {
    send_text(k, k->sc->garbage);
  }
  snprintf(out, sizeof(out), "{\"event\":\"after\",\"channel\":\"%s\",\"data\":\"{\\\"n\\\":1}\"}",
           channel);
  send_text(k, out);
}

static void on_client_text(hconn *k, const char *msg, size_t len) {
  json_error_t je;
  json_t *j = json_loadb(msg, len, 0, &je);
  if (!j) return;
  const char *ev = json_string_value(json_object_get(j, "event"));
  json_t *data = json_object_get(j, "data");
  const char *ch = json_string_value(json_object_get(data, "channel"));
  if (ev && ch && strcmp(ev, "pusher:subscribe") == 0 && strlen(ch) < 200) on_subscribe(k, ch);
  if (ev && strcmp(ev, "pusher:ping") == 0 && k->sc->pong) {
    log_ev(k, "ping");
    send_text(k, "{\"event\":\"pusher:pong\",\"data\":{}}");
  }
  json_decref(j);
}

/* Client frames (masked, section 5.3): only text messages are looked at. */
static void client_frames(hconn *k) {
  size_t off = 0;
  while (!k->closing) {
    uint8_t *p = k->buf + off;
    size_t n = k->len - off;
    if (n < 2) break;
    uint64_t plen = p[1] & 0x7f;
    size_t h = 2;
    if (plen == 126) {
      if (n < 4) break;
      plen = ((uint64_t)p[2] << 8) | p[3];
      h = 4;
    } else if (plen == 127) {
      if (n < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = (plen << 8) | p[2 + i];
      h = 10;
    }
    if (p[1] & 0x80) h += 4;
    if (n < h || n - h < plen) break;
    uint8_t *pay = p + h;
    if (p[1] & 0x80)
      for (uint64_t i = 0; i < plen; i++) pay[i] ^= p[h - 4 + (i & 3)];
    if ((p[0] & 0x0f) == 1) on_client_text(k, (const char *)pay, (size_t)plen);
    off += h + (size_t)plen;
  }
  memmove(k->buf, k->buf + off, k->len - off);
  k->len -= off;
}

/* The request: "GET /app/<scenario>?... HTTP/1.1" plus Sec-WebSocket-Key. */
static void on_request(hconn *k, size_t hl) {
  char req[MAX_REQUEST + 1];
  memcpy(req, k->buf, hl);
  req[hl] = '\0';
  const char *app = strstr(req, "/app/");
  const char *eol = strstr(req, "\r\n");
  const char *name = app && eol && app < eol ? app + 5 : "";
  size_t kl = strcspn(name, "? \r");
  size_t nl = strcspn(name, ".? \r"); /* "<scenario>.<tag>": same scenario */
  snprintf(k->appkey, sizeof(k->appkey), "%.*s", (int)kl, name);
  for (char *line = strstr(req, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "Sec-WebSocket-Key:", 18) == 0) {
      const char *v = line + 20;
      while (*v == ' ') v++;
      size_t i = 0;
      while (v[i] && v[i] != '\r' && i < sizeof(k->key) - 1) k->key[i] = v[i], i++;
      k->key[i] = '\0';
    }
  }
  k->upgraded = 1;
  memmove(k->buf, k->buf + hl, k->len - hl);
  k->len -= hl;
  k->sc = find_scenario(name, nl);
  if (!k->sc) {
    log_ev(k, "unknown-scenario");
    send_str(k, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    fin(k);
    return;
  }
  log_ev(k, "request");
  run_scenario(k);
}

static uint8_t tls_in[65536]; /* ciphertext just read */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  hconn *k = h->data;
  (void)hint;
  if (k->ssl) {
    *b = uv_buf_init((char *)tls_in, sizeof(tls_in));
    return;
  }
  if (k->alloc - k->len < 65536) {
    uint8_t *nb = pusher__realloc(NULL, k->buf, k->len + 65536);
    if (!nb) {
      *b = uv_buf_init(NULL, 0);
      return;
    }
    k->buf = nb;
    k->alloc = k->len + 65536;
  }
  *b = uv_buf_init((char *)k->buf + k->len, (unsigned)(k->alloc - k->len));
}

static void on_plain(hconn *k);

/* Ciphertext in: handshake, then decrypt into k->buf. */
static void on_tls_read(hconn *k, const uint8_t *p, size_t n) {
  if (BIO_write(k->rbio, p, (int)n) != (int)n) {
    conn_close(k);
    return;
  }
  if (!SSL_is_init_finished(k->ssl)) {
    int r = SSL_do_handshake(k->ssl);
    tls_flush(k);
    if (r <= 0 && SSL_get_error(k->ssl, r) != SSL_ERROR_WANT_READ) {
      conn_close(k);
      return;
    }
    if (r <= 0) return;
  }
  for (;;) {
    if (k->alloc - k->len < 16384) {
      uint8_t *nb = pusher__realloc(NULL, k->buf, k->len + 65536);
      if (!nb) {
        conn_close(k);
        return;
      }
      k->buf = nb;
      k->alloc = k->len + 65536;
    }
    int r = SSL_read(k->ssl, k->buf + k->len, (int)(k->alloc - k->len));
    if (r <= 0) {
      int e = SSL_get_error(k->ssl, r);
      tls_flush(k);
      if (e != SSL_ERROR_WANT_READ) conn_close(k);
      return;
    }
    k->len += (size_t)r;
    on_plain(k);
    if (k->closing) return;
  }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  hconn *k = st->data;
  if (n < 0) {
    conn_close(k); /* EOF or error: the client is gone */
    return;
  }
  k->rx += (uint64_t)n;
  if (k->ssl) {
    on_tls_read(k, (const uint8_t *)b->base, (size_t)n);
    return;
  }
  k->len += (size_t)n;
  on_plain(k);
}

/* New plaintext at the end of k->buf. */
static void on_plain(hconn *k) {
  if (!k->upgraded) {
    uint8_t *end = memmem(k->buf, k->len, "\r\n\r\n", 4);
    if (end) {
      on_request(k, (size_t)(end - k->buf) + 4);
    } else if (k->len > MAX_REQUEST) {
      conn_close(k);
      return;
    }
  }
  if (k->closing || !k->upgraded) return;
  int parse = k->sc && (k->sc->garbage || k->sc->make_garbage || k->sc->pong);
  if (parse) client_frames(k);
  if (k->len > MAX_CLIENT_INPUT || !parse) k->len = 0; /* not looked at */
}

static hconn *accept_conn(uv_stream_t *l) {
  hconn *k = pusher__calloc(NULL, 1, sizeof(*k));
  if (!k) return NULL;
  k->id = ++next_id;
  uv_tcp_init(loop, &k->h);
  k->h.data = k;
  if (uv_accept(l, (uv_stream_t *)&k->h) != 0) {
    k->closing = 1;
    uv_close((uv_handle_t *)&k->h, on_closed);
    return NULL;
  }
  k->next = conns;
  conns = k;
  uv_read_start((uv_stream_t *)&k->h, on_alloc, on_read);
  return k;
}

static void on_accept(uv_stream_t *l, int status) {
  if (status == 0) (void)accept_conn(l);
}

static void on_tls_accept(uv_stream_t *l, int status) {
  if (status < 0) return;
  hconn *k = accept_conn(l);
  if (!k) return;
  k->ssl = SSL_new(tls_ctx);
  k->rbio = BIO_new(BIO_s_mem());
  k->wbio = BIO_new(BIO_s_mem());
  if (!k->ssl || !k->rbio || !k->wbio) {
    BIO_free(k->rbio);
    BIO_free(k->wbio);
    conn_close(k);
    return;
  }
  SSL_set_bio(k->ssl, k->rbio, k->wbio);
  SSL_set_accept_state(k->ssl);
}

/* A throw-away P-256 key and a self-signed certificate for 127.0.0.1. */
static SSL_CTX *make_tls_ctx(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  int ok = ctx && key && x;
  if (ok) {
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *nm = X509_get_subject_name(x);
    ok = X509_set_pubkey(x, key) == 1 &&
         X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0) == 1 &&
         X509_set_issuer_name(x, nm) == 1 && X509_sign(x, key, EVP_sha256()) > 0 &&
         SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  }
  X509_free(x);
  EVP_PKEY_free(key);
  if (!ok) {
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static const scenario RAW = {"tls-plaintext", HS_NONE, NULL, 0, END_STAY, NULL, NULL, NULL};

static void on_raw_accept(uv_stream_t *l, int status) {
  if (status < 0) return;
  hconn *k = accept_conn(l);
  if (!k) return;
  k->sc = &RAW;
  k->upgraded = 1; /* nothing it sends is looked at */
  log_ev(k, "request");
  send_str(k, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>not TLS</html>\r\n");
}

/* ------------------------------------------------------------------ main */

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h) && h->type != UV_TCP) uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int sig) {
  (void)s;
  (void)sig;
  while (conns) conn_close(conns);
  uv_close((uv_handle_t *)&listener, NULL);
  if (raw_on) uv_close((uv_handle_t *)&raw_listener, NULL);
  if (tls_on) uv_close((uv_handle_t *)&tls_listener, NULL);
  uv_walk(loop, close_walk, NULL);
}

static int listen_on(uv_tcp_t *t, int port, uv_connection_cb cb) {
  struct sockaddr_in a;
  uv_tcp_init(loop, t);
  uv_ip4_addr("127.0.0.1", port, &a);
  if (uv_tcp_bind(t, (const struct sockaddr *)&a, 0) != 0 || uv_listen((uv_stream_t *)t, 128, cb) != 0) {
    fprintf(stderr, "hostile_server: cannot listen on port %d\n", port);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  int port = 0, raw_port = 0, tls_port = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--raw-port") == 0 && i + 1 < argc) {
      raw_port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--tls-port") == 0 && i + 1 < argc) {
      tls_port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--list") == 0) {
      for (size_t s = 0; s < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); s++) printf("%s\n", SCENARIOS[s].name);
      printf("%s\n", RAW.name);
      return 0;
    } else {
      fprintf(stderr, "usage: hostile_server --port P [--raw-port Q] [--tls-port R] [--list]\n");
      return 2;
    }
  }
  if (port <= 0) {
    fprintf(stderr, "hostile_server: --port is required\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  if (listen_on(&listener, port, on_accept) < 0) return 1;
  if (raw_port > 0) {
    if (listen_on(&raw_listener, raw_port, on_raw_accept) < 0) return 1;
    raw_on = 1;
  }
  if (tls_port > 0) {
    tls_ctx = make_tls_ctx();
    if (!tls_ctx || listen_on(&tls_listener, tls_port, on_tls_accept) < 0) return 1;
    tls_on = 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_start_oneshot(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start_oneshot(&sigint, on_signal, SIGINT);
  fprintf(stderr, "hostile_server: listening on 127.0.0.1:%d%s%s\n", port, raw_port ? " (+raw)" : "",
          tls_port ? " (+tls)" : "");
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  SSL_CTX_free(tls_ctx);
  return 0;
}
