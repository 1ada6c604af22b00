/* A scripted Pusher-ish WebSocket server for runtime tests (plaintext ws).
 *
 * Minimal on purpose and independent of lib/core/ws.c, so the runtime is
 * tested against a second implementation: HTTP Upgrade, unmasking of client
 * frames, unmasked server frames, and just enough Pusher protocol:
 *   on open         -> pusher:connection_established {socket_id "1.<n>"}
 *   pusher:subscribe-> pusher_internal:subscription_succeeded, then (when
 *                      greet is on) an event "greet" with data {"n":1}
 *   pusher:ping     -> pusher:pong
 *   close frame     -> close frame echo, then the socket is closed
 * Commands from any thread: broadcast a text message, close every
 * connection with a code, stream events periodically.
 *
 * Used by #include from tests/unit/client*_test.c (define RT_FAKE_WS_NO_MAIN)
 * and as a stand-alone program: rt_fake_ws [port]  (prints the port).
 */
/* Programs including this file use a subset of it. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "core/mem.h"

typedef struct rtfs rtfs;
typedef struct rtfs_conn rtfs_conn;

struct rtfs_conn {
  uv_tcp_t h;
  rtfs *srv;
  rtfs_conn *next;
  int upgraded;
  int closing;
  uint8_t *buf;
  size_t len, alloc;
};

struct rtfs {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t async;
  uv_timer_t stream;
  uv_thread_t thread;
  uv_mutex_t mu;
  int port;
  rtfs_conn *conns;
  int next_id;
  /* under mu */
  int greet;
  int n_conn, n_sub, n_unsub, n_ping, n_open;
  char *bcast[64];
  int nbcast;
  int close_code; /* pending close-all (0 = none, -1 = drop abruptly) */
  char close_reason[64];
  int stream_ms;
  int stop;
  long streamed;
};

static void rtfs_conn_closed(uv_handle_t *h) {
  rtfs_conn *k = h->data;
  pusher__free(NULL, k->buf);
  pusher__free(NULL, k);
}

static void rtfs_conn_close(rtfs_conn *k) {
  rtfs *s = k->srv;
  for (rtfs_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  if (!uv_is_closing((uv_handle_t *)&k->h)) uv_close((uv_handle_t *)&k->h, rtfs_conn_closed);
}

typedef struct {
  uv_write_t req;
  rtfs_conn *k;
  int then_close;
  size_t len;
  uint8_t data[];
} rtfs_wreq;

static void rtfs_written(uv_write_t *req, int status) {
  rtfs_wreq *w = req->data;
  rtfs_conn *k = w->k;
  int close_now = w->then_close && status != UV_ECANCELED;
  pusher__free(NULL, w);
  if (close_now) rtfs_conn_close(k);
}

static void rtfs_raw(rtfs_conn *k, const void *p, size_t n, int then_close) {
  if (uv_is_closing((uv_handle_t *)&k->h)) return;
  rtfs_wreq *w = pusher__malloc(NULL, sizeof(*w) + n);
  memcpy(w->data, p, n);
  w->req.data = w;
  w->k = k;
  w->then_close = then_close;
  w->len = n;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&k->h, &b, 1, rtfs_written) != 0) {
    pusher__free(NULL, w);
    rtfs_conn_close(k);
  }
}

static void rtfs_frame(rtfs_conn *k, int opcode, const void *p, size_t n, int then_close) {
  uint8_t *f = pusher__malloc(NULL, n + 10);
  size_t h = 0;
  f[h++] = (uint8_t)(0x80 | opcode);
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
  rtfs_raw(k, f, h + n, then_close);
  pusher__free(NULL, f);
}

static void rtfs_text(rtfs_conn *k, const char *s) { rtfs_frame(k, 1, s, strlen(s), 0); }

static void rtfs_close_frame(rtfs_conn *k, int code, const char *reason) {
  uint8_t p[128];
  size_t rl = strlen(reason);
  if (rl > 120) rl = 120;
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  memcpy(p + 2, reason, rl);
  k->closing = 1;
  rtfs_frame(k, 8, p, rl + 2, 1);
}

static void rtfs_on_message(rtfs_conn *k, const char *msg, size_t len) {
  rtfs *s = k->srv;
  json_error_t je;
  json_t *j = json_loadb(msg, len, 0, &je);
  if (!j) return;
  const char *ev = json_string_value(json_object_get(j, "event"));
  json_t *data = json_object_get(j, "data");
  if (ev && strcmp(ev, "pusher:subscribe") == 0) {
    const char *ch = json_string_value(json_object_get(data, "channel"));
    uv_mutex_lock(&s->mu);
    s->n_sub++;
    int greet = s->greet;
    uv_mutex_unlock(&s->mu);
    if (ch) {
      char out[512];
      snprintf(out, sizeof(out),
               "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"%s\",\"data\":\"{}\"}",
               ch);
      rtfs_text(k, out);
      if (greet) {
        snprintf(out, sizeof(out),
                 "{\"event\":\"greet\",\"channel\":\"%s\",\"data\":\"{\\\"n\\\":1}\"}", ch);
        rtfs_text(k, out);
      }
    }
  } else if (ev && strcmp(ev, "pusher:unsubscribe") == 0) {
    uv_mutex_lock(&s->mu);
    s->n_unsub++;
    uv_mutex_unlock(&s->mu);
  } else if (ev && strcmp(ev, "pusher:ping") == 0) {
    uv_mutex_lock(&s->mu);
    s->n_ping++;
    uv_mutex_unlock(&s->mu);
    rtfs_text(k, "{\"event\":\"pusher:pong\",\"data\":{}}");
  }
  json_decref(j);
}

/* Parse as many complete frames as the buffer holds. */
static void rtfs_frames(rtfs_conn *k) {
  size_t off = 0;
  while (!k->closing) {
    uint8_t *p = k->buf + off;
    size_t n = k->len - off;
    if (n < 2) break;
    int op = p[0] & 0x0f;
    int masked = p[1] & 0x80;
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
    if (masked) h += 4;
    if (n < h || n - h < plen) break;
    uint8_t *pay = p + h;
    if (masked)
      for (uint64_t i = 0; i < plen; i++) pay[i] ^= p[h - 4 + (i & 3)];
    if (op == 1) {
      rtfs_on_message(k, (const char *)pay, (size_t)plen);
    } else if (op == 8) {
      int code = plen >= 2 ? (pay[0] << 8) | pay[1] : 1000;
      rtfs_close_frame(k, code, "");
    } else if (op == 9) {
      rtfs_frame(k, 10, pay, (size_t)plen, 0);
    }
    off += h + (size_t)plen;
  }
  memmove(k->buf, k->buf + off, k->len - off);
  k->len -= off;
}

static void rtfs_upgrade(rtfs_conn *k) {
  char *end = memmem(k->buf, k->len, "\r\n\r\n", 4);
  if (!end) return;
  size_t hl = (size_t)(end - (char *)k->buf) + 4;
  char req[8192];
  size_t cl = hl < sizeof(req) - 1 ? hl : sizeof(req) - 1;
  memcpy(req, k->buf, cl);
  req[cl] = '\0';
  char key[128] = "";
  for (char *line = strstr(req, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "Sec-WebSocket-Key:", 18) == 0) {
      const char *v = line + 20;
      while (*v == ' ') v++;
      size_t i = 0;
      while (v[i] && v[i] != '\r' && i < sizeof(key) - 1) {
        key[i] = v[i];
        i++;
      }
      key[i] = '\0';
    }
  }
  char cat[256];
  snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
  unsigned char acc[64];
  EVP_EncodeBlock(acc, md, (int)mdlen);
  char resp[512];
  int rl = snprintf(resp, sizeof(resp),
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                    acc);
  rtfs_raw(k, resp, (size_t)rl, 0);
  k->upgraded = 1;
  memmove(k->buf, k->buf + hl, k->len - hl);
  k->len -= hl;
  rtfs *s = k->srv;
  uv_mutex_lock(&s->mu);
  int id = ++s->n_open;
  uv_mutex_unlock(&s->mu);
  char est[256];
  snprintf(est, sizeof(est),
           "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"1.%d\\\","
           "\\\"activity_timeout\\\":120}\"}",
           id);
  rtfs_text(k, est);
}

static void rtfs_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  rtfs_conn *k = h->data;
  if (k->alloc - k->len < 65536) {
    k->alloc = k->len + 65536;
    k->buf = pusher__realloc(NULL, k->buf, k->alloc);
  }
  *b = uv_buf_init((char *)k->buf + k->len, (unsigned)(k->alloc - k->len));
}

static void rtfs_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  rtfs_conn *k = st->data;
  if (n < 0) {
    rtfs_conn_close(k);
    return;
  }
  k->len += (size_t)n;
  if (!k->upgraded) rtfs_upgrade(k);
  if (k->upgraded) rtfs_frames(k);
}

static void rtfs_accept(uv_stream_t *l, int status) {
  rtfs *s = l->data;
  if (status < 0) return;
  rtfs_conn *k = pusher__calloc(NULL, 1, sizeof(*k));
  k->srv = s;
  uv_tcp_init(&s->loop, &k->h);
  k->h.data = k;
  if (uv_accept(l, (uv_stream_t *)&k->h) != 0) {
    uv_close((uv_handle_t *)&k->h, rtfs_conn_closed);
    return;
  }
  k->next = s->conns;
  s->conns = k;
  uv_mutex_lock(&s->mu);
  s->n_conn++;
  uv_mutex_unlock(&s->mu);
  uv_read_start((uv_stream_t *)&k->h, rtfs_alloc, rtfs_read);
}

static void rtfs_on_stream(uv_timer_t *t) {
  rtfs *s = t->data;
  uv_mutex_lock(&s->mu);
  long n = s->streamed++;
  uv_mutex_unlock(&s->mu);
  char msg[256];
  snprintf(msg, sizeof(msg), "{\"event\":\"tick\",\"channel\":\"tsan-%ld\",\"data\":\"{\\\"n\\\":%ld}\"}",
           n % 4, n);
  for (rtfs_conn *k = s->conns; k; k = k->next)
    if (k->upgraded && !k->closing) rtfs_text(k, msg);
}

static void rtfs_walk_close(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, h->type == UV_TCP && h != (uv_handle_t *)arg ? rtfs_conn_closed : NULL);
}

static void rtfs_on_async(uv_async_t *a) {
  rtfs *s = a->data;
  uv_mutex_lock(&s->mu);
  char *msgs[64];
  int nm = s->nbcast;
  memcpy(msgs, s->bcast, sizeof(char *) * (size_t)nm);
  s->nbcast = 0;
  int code = s->close_code;
  char reason[64];
  memcpy(reason, s->close_reason, sizeof(reason));
  s->close_code = 0;
  int stream_ms = s->stream_ms;
  int stop = s->stop;
  uv_mutex_unlock(&s->mu);
  for (int i = 0; i < nm; i++) {
    for (rtfs_conn *k = s->conns; k; k = k->next)
      if (k->upgraded && !k->closing) rtfs_text(k, msgs[i]);
    pusher__free(NULL, msgs[i]);
  }
  if (code > 0) {
    for (rtfs_conn *k = s->conns; k; k = k->next)
      if (!k->closing) rtfs_close_frame(k, code, reason);
  } else if (code < 0) {
    while (s->conns) rtfs_conn_close(s->conns);
  }
  if (stream_ms > 0 && !uv_is_active((uv_handle_t *)&s->stream))
    uv_timer_start(&s->stream, rtfs_on_stream, (uint64_t)stream_ms, (uint64_t)stream_ms);
  if (stream_ms == 0) uv_timer_stop(&s->stream);
  if (stop) uv_walk(&s->loop, rtfs_walk_close, &s->listener);
}

static void rtfs_main(void *arg) {
  rtfs *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void rtfs_wake(rtfs *s) { uv_async_send(&s->async); }

/* Start on 127.0.0.1, port 0 (or the given one). */
static rtfs *rtfs_start_port(int port) {
  rtfs *s = pusher__calloc(NULL, 1, sizeof(*s));
  uv_loop_init(&s->loop);
  uv_mutex_init(&s->mu);
  s->greet = 1;
  uv_tcp_init(&s->loop, &s->listener);
  s->listener.data = s;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  if (uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0) != 0 ||
      uv_listen((uv_stream_t *)&s->listener, 64, rtfs_accept) != 0) {
    fprintf(stderr, "rt_fake_ws: cannot listen on port %d\n", port);
    exit(2);
  }
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &sl);
  s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_async_init(&s->loop, &s->async, rtfs_on_async);
  s->async.data = s;
  uv_timer_init(&s->loop, &s->stream);
  s->stream.data = s;
  uv_thread_create(&s->thread, rtfs_main, s);
  return s;
}

static rtfs *rtfs_start(void) { return rtfs_start_port(0); }

static void rtfs_stop(rtfs *s) {
  uv_mutex_lock(&s->mu);
  s->stop = 1;
  uv_mutex_unlock(&s->mu);
  rtfs_wake(s);
  uv_thread_join(&s->thread);
  uv_loop_close(&s->loop);
  for (int i = 0; i < s->nbcast; i++) pusher__free(NULL, s->bcast[i]);
  uv_mutex_destroy(&s->mu);
  pusher__free(NULL, s);
}

static void rtfs_broadcast(rtfs *s, const char *text) {
  uv_mutex_lock(&s->mu);
  if (s->nbcast < 64) s->bcast[s->nbcast++] = pusher__strdup(NULL, text);
  uv_mutex_unlock(&s->mu);
  rtfs_wake(s);
}

/* code > 0: close frame with code; code < 0: drop TCP without a close frame. */
static void rtfs_close_all(rtfs *s, int code, const char *reason) {
  uv_mutex_lock(&s->mu);
  s->close_code = code;
  snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason ? reason : "");
  uv_mutex_unlock(&s->mu);
  rtfs_wake(s);
}

static void rtfs_set_greet(rtfs *s, int on) {
  uv_mutex_lock(&s->mu);
  s->greet = on;
  uv_mutex_unlock(&s->mu);
}

static void rtfs_set_stream(rtfs *s, int period_ms) {
  uv_mutex_lock(&s->mu);
  s->stream_ms = period_ms;
  uv_mutex_unlock(&s->mu);
  rtfs_wake(s);
}

/* "conn", "open", "sub", "unsub", "ping", "streamed" */
static long rtfs_count(rtfs *s, const char *what) {
  uv_mutex_lock(&s->mu);
  long v = !strcmp(what, "conn")    ? s->n_conn
           : !strcmp(what, "open")  ? s->n_open
           : !strcmp(what, "sub")   ? s->n_sub
           : !strcmp(what, "unsub") ? s->n_unsub
           : !strcmp(what, "ping")  ? s->n_ping
                                    : s->streamed;
  uv_mutex_unlock(&s->mu);
  return v;
}

#ifndef RT_FAKE_WS_NO_MAIN
int main(int argc, char **argv) {
  rtfs *s = rtfs_start_port(argc > 1 ? (int)strtol(argv[1], NULL, 10) : 0);
  printf("%d\n", s->port);
  fflush(stdout);
  uv_thread_join(&s->thread);
  return 0;
}
#endif
