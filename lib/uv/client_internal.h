/* Internals of the libuv runtime (lib/uv/client.c, transport.c, auth.c),
 * shared by those files and by nothing else:
 *   client.c     struct pusher_client, its lifetime and threads (see its
 *                header comment and docs/lifetime.md), the pump that drives
 *                the engine, the cross-thread calls, the public API
 *   transport.c  one transport per connection attempt: DNS, TCP, TLS,
 *                reads and writes within the in-flight cap, graceful close
 *   auth.c       channel authorization and user authentication jobs (the
 *                HTTP auth endpoint or the application's authorizer), the
 *                auth request API
 * Cross-file helpers keep their short names; the macros below give them
 * pusher__cl_ symbols. */
#ifndef PUSHER_UV_CLIENT_INTERNAL_H
#define PUSHER_UV_CLIENT_INTERNAL_H

#include <stdatomic.h>
#include <uv.h>

#include <pusher/channels.h>

#include "core/authreq.h"
#include "core/conn.h"
#include "core/mem.h"
#include "uv/http.h"
#include "uv/netwatch.h"
#include "uv/tls.h"

#define READ_BUF 65536
#define PLAIN_BUF 16384
#define MAX_PUMP_ROUNDS 32
#define LINGER_MS 2000 /* a graceful close gives up flushing after this */

struct xport;

/* One socket of a transport (one per address tried). */
struct sock {
  uv_tcp_t h;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  struct xport *x;
};

/* One connection attempt of the engine (one generation). */
struct xport {
  pusher_client *cl;
  struct xport *next; /* client's list of live transports */
  uint64_t gen;
  char *host;
  uint16_t port;
  int use_tls;
  int refs;    /* pending DNS request + open socket handle */
  int dead;    /* no longer reported to the engine */
  int opened;  /* pusher__conn_io_opened done */
  int connected;
  int capped;  /* stopped taking engine bytes because of in-flight writes */
  int gai_pending;
  uv_getaddrinfo_t gai;
  struct addrinfo *ai_list, *ai_cur;
  struct sock *s;
  /* bounds a graceful close whose bytes cannot drain; allocated by the
   * close (152 bytes a transport that never closes gracefully does not
   * carry), freed once closed */
  uv_timer_t *linger;
  pusher__tls *tls;
  size_t inflight;
  int last_err;
  char detail[256];
};

struct wreq {
  uv_write_t req;
  struct xport *x;
  size_t len;
  uint8_t data[];
};

/* A public call made on a foreign thread (threaded mode) for a command that
 * may invoke callbacks: executed by the loop thread, the caller waits. */
enum call_op { OP_CONNECT, OP_DISCONNECT, OP_SET_NETWORK, OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_SIGNIN };

/* Authorization state (auth.c has the design: jobs, links, answers from any
 * thread). */
struct link;
struct pusher_auth_request {
  struct link *link;
  pusher_mem mem;
  uint64_t req_id;
  int user;                /* user authentication (else channel) */
  char socket_id[64];
  char *channel;
  /* the answer */
  int err, status;
  char *message, *auth, *channel_data, *shared_secret, *user_data;
  struct pusher_auth_request *next;
};

struct link {
  pusher_client *cl;       /* NULL once the client is deleted */
  int refs;
  struct pusher_auth_request *answers, **answers_tail;
};


struct job {
  uint64_t req_id;
  int user;
  char socket_id[64];
  char *channel;
  struct job *next;
};

/* One HTTP auth request in flight. */
struct hreq {
  pusher_client *cl;
  uint64_t req_id;
  int user;
  pusher__http_req *h;
  struct hreq *next;
};

struct pusher_auth_extra {
  const pusher_mem *mem;
  pusher_kv *params, *headers;
  size_t nparams, nheaders;
  int err;
};

#define AUTH_TIMEOUT_DEFAULT_MS 10000
struct call {
  enum call_op op;
  const char *str;
  int num;
  int result;
  int done;
  struct call *next;
};

struct pusher_client {
  pusher_mem memv;
  const pusher_mem *mem;
  pusher__conn *conn;
  uv_loop_t *loop;
  uv_loop_t *own_loop; /* threaded mode only (about 850 bytes a loop-mode client does not need) */
  int threaded;
  uv_thread_t loop_tid;
  uv_mutex_t mu;
  uv_cond_t cond;     /* signals completed calls */
  struct call *calls; /* FIFO of pending foreign calls */
  struct call **calls_tail;
  uv_timer_t timer;
  pusher__tstamp timer_exp; /* engine time the armed timer stands for (see arm_timer) */
  uv_async_t async;
  int handles; /* open handles + live transports; free when 0 after teardown */
  struct xport *cur;
  struct xport *xports;
  pusher__tls_ctx *tls_ctx;
  int tls_ctx_err;
  char tls_why[256];
  char *ca_file, *ca_path;
  int tls_insecure;
  pusher__netwatch *nw;
  size_t max_inflight;
  int depth;
  int dirty;
  int deleting;
  int torn_down;
  int joiner; /* a foreign thread is joining the loop thread */
  atomic_int busy; /* public calls in progress on any thread (see "Lifetime") */
  /* authorization (see auth.c) */
  char *app_key;
  char *auth_origin, *auth_endpoint, *user_auth_endpoint;
  int jsonp;
  pusher_kv *params, *headers;
  size_t nparams, nheaders;
  pusher_auth_provider_cb provider;
  void *provider_ud;
  pusher_channel_authorizer_cb authorizer;
  void *authorizer_ud;
  pusher_user_authenticator_cb authenticator;
  void *authenticator_ud;
  uint64_t auth_timeout_ms;
  int app_cb; /* inside an authorizer/authenticator/provider call (not an engine dispatch) */
  pusher__http *http;
  struct job *jobs, **jobs_tail;
  struct hreq *hreqs;
  struct link *link;
};

#define now_ms pusher__cl_now_ms
#define map_uv_err pusher__cl_map_uv_err
#define enter pusher__cl_enter
#define leave pusher__cl_leave
#define client_unref pusher__cl_client_unref
#define xport_kill pusher__cl_xport_kill
#define flush_engine pusher__cl_flush_engine
#define xport_open pusher__cl_xport_open
#define xport_close_graceful pusher__cl_xport_close_graceful
#define kv_free pusher__cl_kv_free
#define kv_copy pusher__cl_kv_copy
#define hook_channel_auth pusher__cl_hook_channel_auth
#define hook_user_auth pusher__cl_hook_user_auth
#define run_auth pusher__cl_run_auth
#define auth_teardown pusher__cl_auth_teardown

/* client.c */
pusher__tstamp now_ms(void);
int map_uv_err(int e);
void enter(pusher_client *c);
void leave(pusher_client *c);
void client_unref(pusher_client *c);
/* transport.c */
void xport_kill(struct xport *x);
void flush_engine(pusher_client *c);
void xport_open(pusher_client *c, const pusher__io_req *r);
void xport_close_graceful(struct xport *x);
/* auth.c */
void kv_free(const pusher_mem *m, pusher_kv *v, size_t n);
int kv_copy(const pusher_mem *m, const pusher_kv *src, size_t n, pusher_kv **out, size_t *nout);
void hook_channel_auth(pusher__conn *conn, const char *channel, const char *sid, uint64_t req_id,
                              void *u);
void hook_user_auth(pusher__conn *conn, const char *sid, uint64_t req_id, void *u);
void run_auth(pusher_client *c);
void auth_teardown(pusher_client *c);

#endif
