/* pusherd net layer (libuv): the listener, one pd_conn per TCP connection
 * (HTTP parsing with http_parser, the WebSocket upgrade and codec from
 * lib/core/ws.h, an output queue capped at cfg->outq_cap and written once
 * per loop turn), the timers
 * (activity ping / pong timeout, header deadline, idle HTTP, delayed
 * subscription counts) and graceful shutdown.  Each connection is the sink
 * of its pd_session; HTTP API requests go to pd_rest_handle and the
 * response is written back.  See docs/architecture.md. */
#ifndef PD_NET_H
#define PD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <http_parser.h>

#include "core/pd_core.h"

typedef struct pusher__ws pusher__ws; /* lib/core/ws.h */
struct pd_tls;                        /* net/pd_tls.h */
struct pd_tls_ctx;

/* File descriptors kept free for the process: a connection accepted when
 * fewer than this many remain is answered 503 and closed (see
 * docs/architecture.md, "Out of file descriptors"). */
#define PD_FD_RESERVE 8

/* Bytes kept for a detached connection's owner (tests, fuzzers). */
#define PD_DETACHED_OUT_CAP (256u * 1024u)

/* Coalesced output (docs/architecture.md, "Coalesced output"): buffers
 * handed to one uv_try_write / uv_write, at most (Linux IOV_MAX is 1024). */
#define PD_OUT_IOV 256
/* A connection's first frames go to a ring of PD_OUT_INLINE references in
 * the connection itself: the handshake (the 101 reply and
 * connection_established) and a subscription (subscription_succeeded and
 * a count) queue two in one turn.  More move to an allocated ring of
 * PD_OUT_RING_MIN, which doubles when full and is freed by the tick once
 * empty. */
#define PD_OUT_INLINE 2
#define PD_OUT_RING_MIN 8

typedef struct pd_server pd_server;

/* A detached connection's output (tests, fuzzers), up to PD_DETACHED_OUT_CAP. */
struct pd_dout {
  uint8_t *buf;
  size_t len;
};

/* A connection's HTTP request state, from accept to the WebSocket upgrade
 * (freed there: an idle WebSocket holds none of it) or for the whole life
 * of an HTTP API connection.  Strings capped by PD_HEADER_CAP (request line
 * and headers together) and PD_BODY_CAP (core/pd_config.h). */
typedef struct pd_http {
  http_parser parser;
  size_t header_bytes;
  char *url;
  size_t url_len;
  char *hfield, *hvalue;      /* current header */
  size_t hfield_len, hvalue_len;
  char *ws_key;
  char *body;
  size_t body_len;
  uint64_t req_started_ms;    /* accept or first byte of the request; 0 = idle */
} pd_http;

/* Memory per idle subscribed WebSocket (docs/architecture.md, "Memory per
 * connection"): this struct, the codec (lib/core/ws.c), the core's
 * socket-id map entry and one pd_sub; everything else (HTTP state, the
 * output ring, write and shutdown requests) is allocated only while in
 * use.  Keep fields that an idle WebSocket does not need out of here. */
typedef struct pd_conn {
  pd_server *srv;
  struct pd_conn *prev, *next;
  uv_tcp_t tcp;
  pd_session sess;            /* the Pusher side (server core) */
  struct pd_dout *dout;       /* detached: bytes written so far (NULL = none) */
  uint64_t close_started_ms;
  struct pd_tls *tls;         /* accepted on the TLS listener (net/pd_tls.h); NULL = plain */
  pd_http *http;              /* HTTP request state; NULL once a WebSocket */
  /* WebSocket */
  pusher__ws *ws;
  uint64_t last_rx_ms;
  uint64_t ping_sent_ms;
  /* output: references to the frames to write, in order, flushed once per
   * loop turn (docs/architecture.md, "Coalesced output").  The entries
   * count in out_bytes until the kernel took them, so the ring's length is
   * bounded by cfg->outq_cap for data frames (control frames and replies
   * are few per turn). */
  size_t out_bytes;           /* queued, not yet written (ring and in-flight uv_write) */
  pd_msg **oq;                /* ring of oq_cap references (a power of 2): oq_inline or
                               * allocated; NULL when none queued at a tick */
  pd_msg *oq_inline[PD_OUT_INLINE]; /* the ring of the first frames queued */
  uint32_t oq_cap, oq_head, oq_len;
  uint32_t wr_n;              /* entries at the head held by the in-flight uv_write */
  size_t wr_bytes;            /* bytes the in-flight uv_write holds */
  uv_write_t *wr;             /* the one uv_write in flight (after a partial write); NULL = none */
  struct pd_conn *flush_next; /* next on srv->flush_list */
  uint32_t oq_off;            /* bytes of the head entry already written (a frame < 4 GiB) */
  /* flags, one bit each: an idle connection is mostly this struct */
  unsigned flush_queued : 1;  /* on srv->flush_list */
  unsigned write_failed : 1;  /* a write failed: closed by the next flush */
  unsigned detached : 1;      /* no socket (fuzzers / unit tests) */
  unsigned closing : 1;       /* uv_close called or scheduled */
  unsigned close_after_flush : 1;
  unsigned shut : 1;          /* output shut down (FIN sent), draining input */
  unsigned is_ws : 1;
  unsigned last_was_value : 1; /* HTTP: the last header callback was a value */
  unsigned upgrade_ws : 1;
  unsigned body_too_large : 1;
  unsigned req_done : 1;
  unsigned headers_done : 1;  /* headers of the current request complete */
  unsigned http_error : 1;
  unsigned refused : 1;       /* answered 503: out of file descriptors */
  unsigned in_ws_recv : 1;    /* inside pusher__ws_recv */
  unsigned overflow : 1;      /* output cap exceeded: close 4100 soon */
} pd_conn;

struct pd_server {
  uv_loop_t *loop;            /* NULL: detached mode (tests, fuzzers) */
  const pd_config *cfg;
  pd_core *core;
  uv_tcp_t listener;
  int listening;
  uv_tcp_t tls_listener;      /* cfg->tls_port with tls_ctx (net/pd_tls.h) */
  int tls_listening;
  struct pd_tls_ctx *tls_ctx; /* set by main before pd_server_listen; NULL = no TLS */
  uv_timer_t tick;
  uv_prepare_t flush;         /* writes every connection on flush_list before the loop polls */
  pd_conn *flush_list;        /* connections with output to write (not detached), */
  pd_conn *flush_tail;        /* in the order they got it (written first to last) */
  struct {                    /* output counters (tests, benchmarks) */
    uint64_t frames;          /* references queued */
    uint64_t writes;          /* uv_try_write calls */
    uint64_t partial;         /* partial writes handed to uv_write */
  } out;
  uv_signal_t sigterm, sigint;
  uv_timer_t grace;
  int shutting_down;
  pd_conn *conns;
  size_t nconns;
  uint64_t rng;
  uint64_t fake_now_ms;       /* detached mode clock */
  int exit_code;
  int handles_closed;
  int signals_on;
  /* out of file descriptors (docs/architecture.md) */
  int fd_limit;               /* RLIMIT_NOFILE soft limit at listen; 0 = unknown */
  uint64_t fd_refused;        /* connections refused since the last log line */
  uint64_t fd_refused_total;
  uint64_t fd_refused_log_ms; /* last "out of file descriptors" line; 0 = none */
  uint64_t fd_short_since_ms; /* first refusal of the current shortage; 0 = none */
  size_t conns_high;          /* most connections since the heap was last trimmed */
  /* called once when shutdown starts (main: stop the Redis adapter) */
  void (*on_shutdown)(void *user_data);
  void *on_shutdown_ud;
  /* called once when the last connection is gone after shutdown, as the
   * server closes its own handles (main: close the metrics listener and
   * the SIGHUP watcher, so that the loop can end) */
  void (*on_stop)(void *user_data);
  void *on_stop_ud;
};

/* loop NULL: detached mode.  cfg and core must outlive the server. */
int pd_server_init(pd_server *s, uv_loop_t *loop, const pd_config *cfg, pd_core *core);
int pd_server_listen(pd_server *s);
void pd_server_shutdown(pd_server *s);  /* graceful: 4200 to everyone */
void pd_server_free(pd_server *s);      /* after the loop ended */
uint64_t pd_now_ms(pd_server *s);
/* A pd_log_writer: "ts=... level=... LINE" on stderr. */
void pd_log_stderr(int level, const char *line);

/* Detached connections for fuzzers/tests: no socket; what would be written
 * is kept (up to PD_DETACHED_OUT_CAP) and readable with
 * pd_conn_detached_output. */
pd_conn *pd_conn_new_detached(pd_server *s);
/* Feed raw bytes as if read from the socket (HTTP, then WebSocket). */
void pd_conn_feed(pd_conn *c, const uint8_t *buf, size_t len);
void pd_conn_destroy(pd_conn *c);
size_t pd_conn_detached_output(pd_conn *c, const uint8_t **out);
/* For net/tls.c: write bytes exactly as they go on the socket (0 or -1);
 * end a connection: no more input, flush the output, FIN, then close. */
int pd_conn_write_wire(pd_conn *c, pd_msg *m);
void pd_conn_end(pd_conn *c);
/* Run the once-a-second timer work now (detached mode). */
void pd_server_tick(pd_server *s);
/* Write every connection's queued output now (the loop does it before each
 * poll; tests call it to step). */
void pd_server_flush(pd_server *s);

#endif
