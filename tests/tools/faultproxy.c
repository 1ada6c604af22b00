/* faultproxy: a loopback TCP proxy for tests, whose behaviour can be switched
 * at runtime to simulate network faults between a client and a server.
 *
 *   faultproxy --listen PORT --upstream HOST:PORT --control PORT
 *              [--log FILE] [--frames] [--mode pass|blackhole|refuse]
 *
 * The proxy accepts TCP connections on 127.0.0.1:PORT and, for each, opens a
 * connection to the upstream (a numeric IPv4/IPv6 address) and copies bytes
 * both ways.  A second listener on 127.0.0.1:CONTROL takes one command per
 * line and answers one line each ("ok ..." or "error ..."):
 *
 *   pass       forward traffic (the default).  Connections held by
 *              `blackhole` resume: their queued bytes flow again, and held
 *              new connections now connect upstream.
 *   blackhole  stop forwarding in both directions, silently: sockets stay
 *              open and nothing is closed.  What either side sends meanwhile
 *              (bytes, FIN, reset) is read (and frame-logged) but held, as a
 *              partitioned network with TCP retransmission would, and passed
 *              on when the mode changes.  New connections are accepted and
 *              held, unread and without an upstream, until the mode changes.
 *   refuse     new connections are reset at once (RST, like a closed port);
 *              established connections are left as they are.
 *   reset      one-shot: reset (RST, uv_tcp_close_reset) both sides of every
 *              current connection now.  The mode does not change.
 *   stats      "ok mode=M accepted=N active=N upstream_failed=N reset=N"
 *   mark TEXT  write "mark TEXT" into the log (to line it up with a test)
 *   quit       exit the proxy.
 *
 * A connection whose upstream cannot be reached is reset, so a dead server
 * behind the proxy looks like a dead server to the client.
 *
 * The log (--log FILE, default stderr) has one line per event, prefixed with
 * seconds since start: accepted/upstream/closed connections and mode changes.
 * With --frames the proxy also decodes the WebSocket frames it forwards (the
 * HTTP upgrade is skipped; client frames are unmasked) and logs each as
 *   T conn N C> <text>      client -> server text frame
 *   T conn N S> <text>      server -> client text frame
 *   T conn N S> [close 4200] / [ping] / [pong] / [binary 12 bytes] ...
 * Text longer than 2048 bytes is cut with "...".  This lets tests observe the
 * wire, e.g. the pusher:ping / pusher:pong exchange.
 *
 * Tests drive the control port from bash:
 *   exec 3<>/dev/tcp/127.0.0.1/$CONTROL; echo blackhole >&3; read -r r <&3
 */
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_PASS, MODE_BLACKHOLE, MODE_REFUSE };
static const char *const mode_names[] = {"pass", "blackhole", "refuse"};

#define LOG_TEXT_CAP 2048u
#define READ_BUF_SIZE 65536u
#define HIGH_WATER (4u * 1024u * 1024u)
#define CTL_LINE_CAP 256u

/* Streaming WebSocket frame decoder for one direction (logging only). */
struct wsdec {
  enum { WS_HTTP, WS_HEADER, WS_PAYLOAD, WS_OFF } st;
  uint32_t http_tail;        /* last bytes seen, to find "\r\n\r\n" */
  uint8_t hdr[14];
  size_t hdr_len;
  uint8_t opcode;
  bool masked;
  uint8_t mask[4];
  uint64_t remaining, offset;
  char text[LOG_TEXT_CAP + 1];
  size_t text_len;
  bool checked_status;       /* server side: saw "HTTP/1.1 101" or not */
  char status[16];
  size_t status_len;
};

struct side {
  uv_tcp_t tcp;
  struct conn *c;
  bool open;        /* handle initialised and not yet closing */
  bool eof;         /* peer sent FIN */
  bool reading;
  bool shut;        /* we sent FIN on this side */
  /* Held while black-holed: bytes read from this side and not forwarded,
   * and whether its FIN or a reset arrived meanwhile.  Passed on at `pass`. */
  char *held;
  size_t held_len, held_cap;
  bool held_eof, held_err;
};

struct conn {
  uint64_t id;
  struct side cli, up;
  uv_connect_t connect_req;
  bool up_connecting, up_connected;
  bool dead;
  int handles_open;
  struct wsdec dec_c2s, dec_s2c;
  struct conn *prev, *next;
};

struct ctl {
  uv_tcp_t tcp;
  struct ctl *prev, *next;
  char line[CTL_LINE_CAP];
  size_t len;
  bool overflow;
};

static uv_loop_t *loop;
static uv_tcp_t listener, ctl_listener;
static struct sockaddr_storage upstream_addr;
static enum mode mode = MODE_PASS;
static FILE *log_fp;
static bool log_frames;
static uint64_t t0;
static struct conn *conns;
static uint64_t n_accepted, n_active, n_upstream_failed, n_reset, next_id = 1;
static uv_signal_t sigint_h, sigterm_h;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...) {
  double t = (double)(uv_hrtime() - t0) / 1e9;
  fprintf(log_fp, "%.3f ", t);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(log_fp, fmt, ap);
  va_end(ap);
  fputc('\n', log_fp);
  fflush(log_fp);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "faultproxy: out of memory\n");
    abort();
  }
  return p;
}

/* ------------------------------------------------------------ ws decoding */

static void ws_emit(struct conn *c, const char *dir, struct wsdec *d) {
  switch (d->opcode) {
  case 0x1:
  case 0x0:
    d->text[d->text_len] = '\0';
    logmsg("conn %" PRIu64 " %s %s%s%s", c->id, dir, d->opcode == 0 ? "[continuation] " : "",
           d->text, d->offset > LOG_TEXT_CAP ? "..." : "");
    break;
  case 0x2:
    logmsg("conn %" PRIu64 " %s [binary %" PRIu64 " bytes]", c->id, dir, d->offset);
    break;
  case 0x8: {
    int code = d->text_len >= 2 ? ((uint8_t)d->text[0] << 8) | (uint8_t)d->text[1] : -1;
    if (code < 0)
      logmsg("conn %" PRIu64 " %s [close]", c->id, dir);
    else
      logmsg("conn %" PRIu64 " %s [close %d]", c->id, dir, code);
    break;
  }
  case 0x9:
    logmsg("conn %" PRIu64 " %s [ping]", c->id, dir);
    break;
  case 0xA:
    logmsg("conn %" PRIu64 " %s [pong]", c->id, dir);
    break;
  default:
    logmsg("conn %" PRIu64 " %s [opcode %u]", c->id, dir, d->opcode);
  }
}

static void ws_feed(struct conn *c, const char *dir, bool server_side, struct wsdec *d,
                    const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    switch (d->st) {
    case WS_OFF:
      return;
    case WS_HTTP:
      if (server_side && !d->checked_status) {
        if (d->status_len < 12) d->status[d->status_len++] = (char)p[i];
        if (d->status_len == 12) {
          d->checked_status = true;
          if (memcmp(d->status, "HTTP/1.1 101", 12) != 0) {
            d->status[12] = '\0';
            logmsg("conn %" PRIu64 " %s [not a WebSocket upgrade: %s]", c->id, dir, d->status);
            d->st = WS_OFF;
            return;
          }
        }
      }
      d->http_tail = (d->http_tail << 8) | p[i++];
      if (d->http_tail == 0x0d0a0d0au) d->st = WS_HEADER;
      break;
    case WS_HEADER: {
      d->hdr[d->hdr_len++] = p[i++];
      size_t need = 2;
      if (d->hdr_len >= 2) {
        uint8_t l7 = d->hdr[1] & 0x7f;
        need += (l7 == 126) ? 2 : (l7 == 127) ? 8 : 0;
        need += (d->hdr[1] & 0x80) ? 4 : 0;
      }
      if (d->hdr_len < need) break;
      d->opcode = d->hdr[0] & 0x0f;
      d->masked = (d->hdr[1] & 0x80) != 0;
      uint8_t l7 = d->hdr[1] & 0x7f;
      size_t pos = 2;
      uint64_t len = l7;
      if (l7 == 126) {
        len = ((uint64_t)d->hdr[2] << 8) | d->hdr[3];
        pos = 4;
      } else if (l7 == 127) {
        len = 0;
        for (int k = 0; k < 8; k++) len = (len << 8) | d->hdr[2 + k];
        pos = 10;
      }
      if (d->masked) memcpy(d->mask, d->hdr + pos, 4);
      d->remaining = len;
      d->offset = 0;
      d->text_len = 0;
      d->hdr_len = 0;
      d->st = WS_PAYLOAD;
      if (len == 0) {
        ws_emit(c, dir, d);
        d->st = WS_HEADER;
      }
      break;
    }
    case WS_PAYLOAD: {
      size_t take = n - i;
      if ((uint64_t)take > d->remaining) take = (size_t)d->remaining;
      for (size_t k = 0; k < take; k++) {
        uint8_t b = p[i + k];
        if (d->masked) b ^= d->mask[(d->offset + k) & 3];
        if (d->text_len < LOG_TEXT_CAP) d->text[d->text_len++] = (char)b;
      }
      d->offset += take;
      d->remaining -= take;
      i += take;
      if (d->remaining == 0) {
        ws_emit(c, dir, d);
        d->st = WS_HEADER;
      }
      break;
    }
    }
  }
}

/* ------------------------------------------------------------ connections */

static void conn_unlink_free(struct conn *c) {
  free(c->cli.held);
  free(c->up.held);
  if (c->prev) c->prev->next = c->next; else conns = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c);
}

static void on_side_closed(uv_handle_t *h) {
  struct side *s = h->data;
  struct conn *c = s->c;
  if (--c->handles_open == 0) conn_unlink_free(c);
}

static void side_close(struct side *s, bool rst) {
  if (!s->open) return;
  s->open = false;
  s->reading = false;
  if (rst) {
    if (uv_tcp_close_reset(&s->tcp, on_side_closed) == 0) return;
  }
  uv_close((uv_handle_t *)&s->tcp, on_side_closed);
}

static void conn_close(struct conn *c, bool rst, const char *why) {
  if (c->dead) return;
  c->dead = true;
  n_active--;
  logmsg("conn %" PRIu64 " closed (%s%s)", c->id, why, rst ? ", reset" : "");
  side_close(&c->cli, rst);
  side_close(&c->up, rst);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = xmalloc(READ_BUF_SIZE);
  buf->len = READ_BUF_SIZE;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void side_start(struct side *s) {
  if (!s->open || s->reading || s->eof || s->c->dead) return;
  if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, on_read) == 0) s->reading = true;
}

static void side_stop(struct side *s) {
  if (!s->open || !s->reading) return;
  uv_read_stop((uv_stream_t *)&s->tcp);
  s->reading = false;
}

static struct side *peer_of(struct side *s) {
  return s == &s->c->cli ? &s->c->up : &s->c->cli;
}

/* Start reading where forwarding is allowed now. */
static void conn_resume(struct conn *c) {
  if (c->dead || !c->up_connected) return;
  if (mode == MODE_BLACKHOLE) {
    /* Keep reading (so the frame log shows what is sent into the hole), but
     * hold the bytes, up to HIGH_WATER per side. */
    if (c->cli.held_len < HIGH_WATER && !c->cli.held_err) side_start(&c->cli);
    if (c->up.held_len < HIGH_WATER && !c->up.held_err) side_start(&c->up);
    return;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->up.tcp) < HIGH_WATER) side_start(&c->cli);
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->cli.tcp) < HIGH_WATER) side_start(&c->up);
}

static void hold(struct side *s, const char *p, size_t n) {
  if (s->held_len + n > s->held_cap) {
    size_t cap = s->held_cap ? s->held_cap : 4096;
    while (cap < s->held_len + n) cap *= 2;
    char *q = realloc(s->held, cap);
    if (!q) abort();
    s->held = q;
    s->held_cap = cap;
  }
  memcpy(s->held + s->held_len, p, n);
  s->held_len += n;
}

struct wreq {
  uv_write_t req;
  struct conn *c;
  char *base;
};

static void on_write(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  struct conn *c = w->c;
  free(w->base);
  free(w);
  if (status < 0) {
    if (status != UV_ECANCELED) conn_close(c, true, uv_strerror(status));
    return;
  }
  conn_resume(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}

static void maybe_finish(struct conn *c) {
  if (!c->dead && c->cli.eof && c->up.eof) conn_close(c, false, "both sides finished");
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct side *s = stream->data;
  struct conn *c = s->c;
  struct side *o = peer_of(s);
  bool from_client = (s == &c->cli);
  if (nread > 0 && mode == MODE_BLACKHOLE) {
    if (log_frames) {
      if (from_client)
        ws_feed(c, "C>", false, &c->dec_c2s, (const uint8_t *)buf->base, (size_t)nread);
      else
        ws_feed(c, "S>", true, &c->dec_s2c, (const uint8_t *)buf->base, (size_t)nread);
    }
    hold(s, buf->base, (size_t)nread);
    free(buf->base);
    if (s->held_len >= HIGH_WATER) side_stop(s);
    return;
  }
  if (nread > 0) {
    if (log_frames) {
      if (from_client)
        ws_feed(c, "C>", false, &c->dec_c2s, (const uint8_t *)buf->base, (size_t)nread);
      else
        ws_feed(c, "S>", true, &c->dec_s2c, (const uint8_t *)buf->base, (size_t)nread);
    }
    struct wreq *w = xmalloc(sizeof *w);
    w->c = c;
    w->base = buf->base;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int r = uv_write(&w->req, (uv_stream_t *)&o->tcp, &b, 1, on_write);
    if (r < 0) {
      free(w->base);
      free(w);
      conn_close(c, true, uv_strerror(r));
      return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&o->tcp) >= HIGH_WATER) side_stop(s);
    return;
  }
  free(buf->base);
  if (nread == 0) return;
  if (nread == UV_EOF) {
    logmsg("conn %" PRIu64 " %s sent FIN%s", c->id, from_client ? "client" : "upstream",
           mode == MODE_BLACKHOLE ? " (held)" : "");
    side_stop(s);
    s->eof = true;
    if (mode == MODE_BLACKHOLE) {
      s->held_eof = true;
      return;
    }
    if (o->open && !o->shut) {
      o->shut = true;
      uv_shutdown_t *sr = xmalloc(sizeof *sr);
      if (uv_shutdown(sr, (uv_stream_t *)&o->tcp, on_shutdown) < 0) free(sr);
    }
    maybe_finish(c);
    return;
  }
  /* A reset (or other error) on one side is passed on as a reset. */
  if (mode == MODE_BLACKHOLE) {
    logmsg("conn %" PRIu64 " %s: %s (held)", c->id, from_client ? "client" : "upstream",
           uv_strerror((int)nread));
    side_stop(s);
    s->held_err = true;
    return;
  }
  char why[96];
  snprintf(why, sizeof why, "%s: %s", from_client ? "client" : "upstream", uv_strerror((int)nread));
  conn_close(c, true, why);
}

static void on_upstream_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  c->up_connecting = false;
  if (c->dead) return;
  if (status < 0) {
    n_upstream_failed++;
    char why[96];
    snprintf(why, sizeof why, "upstream connect failed: %s", uv_strerror(status));
    conn_close(c, true, why);
    return;
  }
  c->up_connected = true;
  logmsg("conn %" PRIu64 " upstream connected", c->id);
  conn_resume(c);
}

static void conn_connect_upstream(struct conn *c) {
  if (c->dead || c->up_connecting || c->up_connected) return;
  if (uv_tcp_init(loop, &c->up.tcp) < 0) {
    conn_close(c, true, "uv_tcp_init failed");
    return;
  }
  c->up.open = true;
  c->up.tcp.data = &c->up;
  c->handles_open++;
  uv_tcp_nodelay(&c->up.tcp, 1);
  c->connect_req.data = c;
  int r = uv_tcp_connect(&c->connect_req, &c->up.tcp, (const struct sockaddr *)&upstream_addr,
                         on_upstream_connect);
  if (r < 0) {
    n_upstream_failed++;
    conn_close(c, true, uv_strerror(r));
    return;
  }
  c->up_connecting = true;
}

static void on_accept(uv_stream_t *server, int status) {
  if (status < 0) {
    logmsg("accept error: %s", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->id = next_id++;
  c->cli.c = c->up.c = c;
  if (uv_tcp_init(loop, &c->cli.tcp) < 0) {
    free(c);
    return;
  }
  c->cli.open = true;
  c->cli.tcp.data = &c->cli;
  c->handles_open = 1;
  c->next = conns;
  if (conns) conns->prev = c;
  conns = c;
  n_accepted++;
  n_active++;
  if (uv_accept(server, (uv_stream_t *)&c->cli.tcp) < 0) {
    conn_close(c, false, "accept failed");
    return;
  }
  uv_tcp_nodelay(&c->cli.tcp, 1);
  logmsg("conn %" PRIu64 " accepted (mode %s)", c->id, mode_names[mode]);
  switch (mode) {
  case MODE_REFUSE:
    conn_close(c, true, "refused");
    break;
  case MODE_BLACKHOLE:
    break; /* held: no upstream, nothing read, until `pass` */
  case MODE_PASS:
    conn_connect_upstream(c);
    break;
  }
}

/* ------------------------------------------------------------ control */

/* After a black-hole: pass on what each side sent meanwhile (bytes, then its
 * FIN or reset). */
static void side_release(struct side *s) {
  struct conn *c = s->c;
  struct side *o = peer_of(s);
  if (c->dead) return;
  if (s->held_len && o->open && !o->shut) {
    struct wreq *w = xmalloc(sizeof *w);
    w->c = c;
    w->base = s->held;
    uv_buf_t b = uv_buf_init(s->held, (unsigned)s->held_len);
    s->held = NULL;
    s->held_len = s->held_cap = 0;
    int r = uv_write(&w->req, (uv_stream_t *)&o->tcp, &b, 1, on_write);
    if (r < 0) {
      free(w->base);
      free(w);
      conn_close(c, true, uv_strerror(r));
      return;
    }
  }
  if (s->held_err) {
    conn_close(c, true, s == &c->cli ? "client reset (held)" : "upstream reset (held)");
    return;
  }
  if (s->held_eof) {
    s->held_eof = false;
    if (o->open && !o->shut) {
      o->shut = true;
      uv_shutdown_t *sr = xmalloc(sizeof *sr);
      if (uv_shutdown(sr, (uv_stream_t *)&o->tcp, on_shutdown) < 0) free(sr);
    }
    maybe_finish(c);
  }
}

static void set_mode(enum mode m) {
  enum mode was = mode;
  mode = m;
  logmsg("mode %s", mode_names[m]);
  for (struct conn *c = conns; c; c = c->next) {
    if (c->dead) continue;
    if (was == MODE_BLACKHOLE && m != MODE_BLACKHOLE) {
      if (!c->up_connected && !c->up_connecting) {
        conn_connect_upstream(c);
        continue;
      }
      if (c->up_connected) {
        side_release(&c->cli);
        side_release(&c->up);
      }
    }
    conn_resume(c);
  }
}

static void reset_all(void) {
  unsigned n = 0;
  for (struct conn *c = conns; c; c = c->next) {
    if (c->dead) continue;
    conn_close(c, true, "reset by control");
    n++;
  }
  n_reset += n;
  logmsg("reset %u connections", n);
}

struct ctl_wreq {
  uv_write_t req;
  char text[256];
};

static void on_ctl_write(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void ctl_reply(struct ctl *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_reply(struct ctl *k, const char *fmt, ...) {
  struct ctl_wreq *w = xmalloc(sizeof *w);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(w->text, sizeof w->text - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof w->text - 2) n = (int)sizeof w->text - 2;
  w->text[n++] = '\n';
  uv_buf_t b = uv_buf_init(w->text, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &b, 1, on_ctl_write) < 0) free(w);
}

static void shutdown_all(void);

static void ctl_command(struct ctl *k, char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = '\0';
  while (*line == ' ' || *line == '\t') line++;
  if (*line == '\0') return;
  if (strcmp(line, "pass") == 0) {
    set_mode(MODE_PASS);
    ctl_reply(k, "ok pass");
  } else if (strcmp(line, "blackhole") == 0) {
    set_mode(MODE_BLACKHOLE);
    ctl_reply(k, "ok blackhole");
  } else if (strcmp(line, "refuse") == 0) {
    set_mode(MODE_REFUSE);
    ctl_reply(k, "ok refuse");
  } else if (strcmp(line, "reset") == 0) {
    uint64_t before = n_reset;
    reset_all();
    ctl_reply(k, "ok reset %" PRIu64, n_reset - before);
  } else if (strcmp(line, "stats") == 0) {
    ctl_reply(k, "ok mode=%s accepted=%" PRIu64 " active=%" PRIu64 " upstream_failed=%" PRIu64
                 " reset=%" PRIu64,
              mode_names[mode], n_accepted, n_active, n_upstream_failed, n_reset);
  } else if (strncmp(line, "mark ", 5) == 0) {
    logmsg("mark %s", line + 5);
    ctl_reply(k, "ok mark");
  } else if (strcmp(line, "quit") == 0) {
    ctl_reply(k, "ok quit");
    logmsg("quit by control");
    shutdown_all();
  } else {
    ctl_reply(k, "error unknown command (pass|blackhole|refuse|reset|stats|mark TEXT|quit)");
  }
}

static struct ctl *ctls;

static void on_ctl_closed(uv_handle_t *h) {
  struct ctl *k = h->data;
  if (k->prev) k->prev->next = k->next; else ctls = k->next;
  if (k->next) k->next->prev = k->prev;
  free(k);
}

static void on_ctl_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct ctl *k = stream->data;
  if (nread < 0) {
    free(buf->base);
    uv_close((uv_handle_t *)&k->tcp, on_ctl_closed);
    return;
  }
  for (ssize_t i = 0; i < nread; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      if (k->overflow) {
        ctl_reply(k, "error line too long");
      } else {
        k->line[k->len] = '\0';
        ctl_command(k, k->line);
      }
      k->len = 0;
      k->overflow = false;
    } else if (k->len < CTL_LINE_CAP - 1) {
      k->line[k->len++] = ch;
    } else {
      k->overflow = true;
    }
  }
  free(buf->base);
}

static void on_ctl_accept(uv_stream_t *server, int status) {
  if (status < 0) return;
  struct ctl *k = calloc(1, sizeof *k);
  if (!k) abort();
  uv_tcp_init(loop, &k->tcp);
  k->tcp.data = k;
  k->next = ctls;
  if (ctls) ctls->prev = k;
  ctls = k;
  if (uv_accept(server, (uv_stream_t *)&k->tcp) < 0 ||
      uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, on_ctl_read) < 0) {
    uv_close((uv_handle_t *)&k->tcp, on_ctl_closed);
  }
}

/* ------------------------------------------------------------ main */

static void shutdown_all(void) {
  for (struct conn *c = conns; c; c = c->next) conn_close(c, false, "proxy exiting");
  for (struct ctl *k = ctls; k; k = k->next)
    if (!uv_is_closing((uv_handle_t *)&k->tcp)) uv_close((uv_handle_t *)&k->tcp, on_ctl_closed);
  if (!uv_is_closing((uv_handle_t *)&listener)) uv_close((uv_handle_t *)&listener, NULL);
  if (!uv_is_closing((uv_handle_t *)&ctl_listener)) uv_close((uv_handle_t *)&ctl_listener, NULL);
  if (!uv_is_closing((uv_handle_t *)&sigint_h)) uv_close((uv_handle_t *)&sigint_h, NULL);
  if (!uv_is_closing((uv_handle_t *)&sigterm_h)) uv_close((uv_handle_t *)&sigterm_h, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  logmsg("signal %d, exiting", signum);
  shutdown_all();
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: faultproxy --listen PORT --upstream HOST:PORT --control PORT\n"
          "                  [--log FILE] [--frames] [--mode pass|blackhole|refuse]\n"
          "\n"
          "A loopback TCP proxy for fault-injection tests.  Listens on 127.0.0.1:PORT,\n"
          "forwards to HOST:PORT (numeric IPv4/IPv6).  Commands, one per line, on the\n"
          "control port 127.0.0.1:CONTROL (each answered with one line):\n"
          "  pass       forward traffic; resume connections held by blackhole\n"
          "  blackhole  silently stop forwarding both ways; sockets stay open; new\n"
          "             connections are accepted and held\n"
          "  refuse     reset new connections at once (established ones unaffected)\n"
          "  reset      reset (RST) both sides of every current connection now\n"
          "  stats      ok mode=M accepted=N active=N upstream_failed=N reset=N\n"
          "  mark TEXT  write 'mark TEXT' into the log\n"
          "  quit       exit\n"
          "--log FILE   event log (default stderr), one line per event, prefixed with\n"
          "             seconds since start\n"
          "--frames     also log decoded WebSocket frames: 'conn N C> text' (client to\n"
          "             server, unmasked) and 'conn N S> text'; control frames as\n"
          "             [ping] [pong] [close CODE]\n"
          "Example:  exec 3<>/dev/tcp/127.0.0.1/CONTROL; echo blackhole >&3; read -r r <&3\n");
}

static int parse_port(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 1 || v > 65535) return -1;
  return (int)v;
}

static int listen_on(uv_tcp_t *t, int port, uv_connection_cb cb) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  int r = uv_tcp_init(loop, t);
  if (r == 0) r = uv_tcp_bind(t, (const struct sockaddr *)&a, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)t, 128, cb);
  if (r < 0) fprintf(stderr, "faultproxy: cannot listen on 127.0.0.1:%d: %s\n", port, uv_strerror(r));
  return r;
}

int main(int argc, char **argv) {
  int lport = -1, cport = -1;
  const char *upstream = NULL, *logpath = NULL, *initial = "pass";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--frames") == 0) {
      log_frames = true;
    } else if (v && strcmp(a, "--listen") == 0) {
      lport = parse_port(v), i++;
    } else if (v && strcmp(a, "--control") == 0) {
      cport = parse_port(v), i++;
    } else if (v && strcmp(a, "--upstream") == 0) {
      upstream = v, i++;
    } else if (v && strcmp(a, "--log") == 0) {
      logpath = v, i++;
    } else if (v && strcmp(a, "--mode") == 0) {
      initial = v, i++;
    } else {
      fprintf(stderr, "faultproxy: bad argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (lport < 0 || cport < 0 || !upstream) {
    fprintf(stderr, "faultproxy: --listen, --upstream and --control are required (valid ports)\n");
    usage(stderr);
    return 2;
  }
  if (strcmp(initial, "pass") == 0) mode = MODE_PASS;
  else if (strcmp(initial, "blackhole") == 0) mode = MODE_BLACKHOLE;
  else if (strcmp(initial, "refuse") == 0) mode = MODE_REFUSE;
  else {
    fprintf(stderr, "faultproxy: bad --mode '%s'\n", initial);
    return 2;
  }
  /* HOST:PORT, HOST possibly [v6]. */
  char host[128];
  const char *colon = strrchr(upstream, ':');
  if (!colon || (size_t)(colon - upstream) >= sizeof host || parse_port(colon + 1) < 0) {
    fprintf(stderr, "faultproxy: bad --upstream '%s' (want HOST:PORT)\n", upstream);
    return 2;
  }
  int uport = parse_port(colon + 1);
  size_t hl = (size_t)(colon - upstream);
  memcpy(host, upstream, hl);
  host[hl] = '\0';
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  if (uv_ip4_addr(host, uport, (struct sockaddr_in *)&upstream_addr) != 0 &&
      uv_ip6_addr(host, uport, (struct sockaddr_in6 *)&upstream_addr) != 0) {
    fprintf(stderr, "faultproxy: upstream host must be a numeric address: '%s'\n", host);
    return 2;
  }
  log_fp = stderr;
  if (logpath) {
    log_fp = fopen(logpath, "a");
    if (!log_fp) {
      fprintf(stderr, "faultproxy: cannot open log %s: %s\n", logpath, strerror(errno));
      return 1;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  t0 = uv_hrtime();
  if (listen_on(&listener, lport, on_accept) < 0) return 1;
  if (listen_on(&ctl_listener, cport, on_ctl_accept) < 0) return 1;
  uv_signal_init(loop, &sigint_h);
  uv_signal_start(&sigint_h, on_signal, SIGINT);
  uv_signal_init(loop, &sigterm_h);
  uv_signal_start(&sigterm_h, on_signal, SIGTERM);
  logmsg("listening on 127.0.0.1:%d -> %s:%d, control 127.0.0.1:%d, mode %s%s", lport, host, uport,
         cport, mode_names[mode], log_frames ? ", frame log on" : "");
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  if (log_fp != stderr) fclose(log_fp);
  return 0;
}
