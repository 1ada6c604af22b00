/* Internals of the connection engine (lib/core/conn*.c), shared by its
 * files and by nothing else.  The engine is cut by concern:
 *   conn.c            connection state machine, retry policy, transport and
 *                     timers, lifecycle (docs/architecture.md)
 *   conn_dispatch.c   bindings, delivery of events to callbacks, and the
 *                     table that routes each incoming message to its handler
 *   conn_channels.c   the channel table, subscriptions and their
 *                     authorization, client events
 *   conn_encrypted.c  private-encrypted channels: decryption, re-keying,
 *                     events held for a new key
 *   conn_presence.c   presence members
 *   conn_signin.c     user sign-in, server-to-user events, watchlists
 * Cross-file helpers keep their short names in the code; the macros below
 * give them pusher__cn_ symbols so that the static library exports nothing
 * unprefixed. */
#ifndef PUSHER_CORE_CONN_INTERNAL_H
#define PUSHER_CORE_CONN_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "core/conn.h"
#include "core/crypto.h"
#include "core/mem.h"
#include "core/names.h"
#include "core/members.h"
#include "core/options.h"
#include "core/proto.h"
#include "core/ws.h"

typedef struct cbind {
  pusher_bind_id id;
  char *event; /* NULL = every connection event */
  pusher_connection_cb cb;
  void *ud;
  int dead;
} cbind;

enum { BK_CHANNEL = 0, BK_USER = 1, BK_WATCHLIST = 2 };

/* (The index fields sit in what was padding: the struct stays 56 bytes.) */
typedef struct ebind {
  pusher_bind_id id;
  int kind;      /* BK_*: channel/global, user (sign-in), watchlist */
  uint32_t hash; /* index (conn_dispatch.c): the hash of the key */
  char *channel; /* NULL = every channel and connection-level events */
  char *event;   /* NULL = every event */
  pusher_event_cb cb;
  void *ud;
  int dead;
  uint32_t next; /* index: the next binding with the same key (position in ebs + 1, 0 = none) */
} ebind;

/* One chain of the binding index: the bindings with one key (kind, channel
 * or NULL, event), in binding order; indexes in ebs + 1, 0 = empty slot. */
typedef struct bslot {
  uint32_t head, tail;
} bslot;

typedef struct chan {
  char *name;
  int subscribed;     /* subscription_succeeded received on this connection */
  int sent;           /* pusher:subscribe sent on this connection */
  int replied;        /* ... and the server answered it (succeeded or failed) */
  uint64_t done_gen;  /* transport generation on which subscribe was handled */
  uint64_t auth_req;  /* pending authorization request (0 = none) */
  char *shared_secret;
  pusher__chan_kind kind; /* from the name (core/names.h) */
  pusher__tstamp auth_deadline;
  pusher__members members; /* presence */
  uint8_t key[PUSHER__SECRETBOX_KEYBYTES]; /* encrypted: current key */
  int have_key;
  uint64_t rekey_req;  /* encrypted: re-authorization after a MAC failure */
  pusher__tstamp rekey_deadline;
  struct pend *pend;   /* encrypted events waiting for the new key */
  size_t npend;
  char *wait_auth;     /* presence: auth of a reply without channel_data,
                          held until signin_success (docs/protocol.md §3.6) */
} chan;


/* An encrypted event held back while the channel is re-authorized. */
struct pend {
  char *event;
  char *data;
  size_t len;
  char *user_id;
};
/* Held encrypted events dropped because their channel was unsubscribed or
 * the connection ended: reported as pusher:decryption_error once the
 * outermost engine call unwinds (never from inside a state change). */
struct dropped {
  char *channel;
  char *event;
  const char *why;
};
#define MAX_PENDING_DECRYPT 64
#define CLIENT_EVENT_MAX_DATA 10240
#define CLIENT_EVENT_RATE 10
#define CLIENT_EVENT_WINDOW_MS 1000
/* Pings a server may send per second, counted apart for WebSocket pings
 * and pusher:ping messages (include/pusher/pusher.h, "Caps"); each one costs
 * an answer, so a flood past this fails the connection. */
#define PING_RATE 100
#define PING_WINDOW_MS 1000
/* The shortest activity_timeout a server may ask for: shorter would have us
 * ping it in a loop (pusher.h, activity_timeout). */
#define MIN_SERVER_ACTIVITY_MS 1000

typedef enum action { A_BACKOFF, A_TLS, A_RETRY, A_NOW, A_FATAL } action;

struct pusher__conn {
  pusher_mem mem;
  const pusher_mem *m;
  char *app_key;
  char *host;
  char *path;
  char host_header[300];
  uint16_t ws_port, wss_port;
  int encrypted;
  double reconnect_delay, max_delay;
  uint64_t activity_opt_ms, activity_ms, pong_ms, unavailable_ms, connect_ms;
  int jitter;
  pusher_rand_fn rand;
  void *rand_user;
  size_t max_msg, max_out, max_channels;
  pusher_delegate dlg;
  void *dlg_user;
  void *owner;
  pusher__conn_hooks hooks;
  void *hook_user;

  pusher_state state;
  int tls;
  uint64_t gen;     /* current transport generation */
  int live;         /* events of generation gen matter */
  int opened;       /* io_opened seen for gen */
  int established;  /* connection_established received on gen */
  uint64_t recv_gen;
  pusher__ws *ws;
  pusher__ws **retired;
  size_t nretired, aretired;
  pusher__io_req want;
  uint64_t epoch;   /* bumped whenever the connection's course changes */

  pusher__tstamp retry_at, unavailable_at, attempt_deadline, activity_at, pong_at;
  pusher__tstamp connected_at;
  unsigned fails, fails_4200;
  char socket_id[64];
  pusher__tstamp ping_window_end; /* the ping budgets are refilled then */
  unsigned pusher_pings;          /* pusher:ping messages in this window */

  chan **chans;
  size_t nchans, achans;
  /* Unsubscribed while their pusher:subscribe awaited the server's answer
   * (as pusher-js's cancelSubscription): invisible to the API, their
   * pusher:unsubscribe is sent once the answer arrives, and subscribing
   * again before that takes the entry back (reinstateSubscription).
   * Sending pusher:unsubscribe and a second pusher:subscribe at once
   * instead would let the first subscribe's answer report the second
   * subscription as succeeded while the server has the channel
   * unsubscribed between the two: events lost while "subscribed"
   * (found by tests/soak, see tests/soak/README.md). */
  chan **gone;
  size_t ngone, agone;
  cbind *cbs;
  size_t ncbs, acbs;
  ebind *ebs;
  size_t nebs, aebs;
  /* Index of ebs for dispatch (conn_dispatch.c), built once there are
   * more than 8 bindings: an open-addressing table of chains, one per key
   * of the bindings that name an event, and one chain of those that take
   * every event.  bix_cap is a power of two (or 0), at least twice
   * bix_used; PUSHER__MAX_BINDINGS (10,000 live) caps it at 32768 slots
   * (256 KiB), bindings dead but not yet swept (unbound inside a callback)
   * aside. */
  bslot *bix;
  uint32_t bix_cap, bix_used;
  uint32_t any_head, any_tail;
  pusher_bind_id next_bind;
  uint64_t next_req;
  int depth, dead, need_sweep;
  /* Scratch for decoding one incoming message without allocation
   * (pusher__proto_decode_buf): allocated at the first message, grown to
   * the largest message seen up to RX_SCRATCH_MAX bytes; larger messages,
   * and one arriving while a message is being handled, use the allocating
   * decoder.  docs/architecture.md describes the receive path. */
  char *rx;
  size_t rx_cap;
  int rx_busy;
  pusher__tstamp now;
  uint64_t auth_timeout_ms;
  pusher__user_auth_hook user_hook;
  /* sign-in */
  int signin_wanted;
  uint64_t user_req;
  pusher__tstamp user_deadline;
  int signin_sent;
  char user_id[PUSHER__MEMBER_ID_MAX + 1];
  char user_chan[PUSHER__MEMBER_ID_MAX + 32];
  /* client events: send times of the last CLIENT_EVENT_RATE events */
  pusher__tstamp trig[CLIENT_EVENT_RATE];
  size_t ntrig, trig_head;
  /* held encrypted events to report as dropped (see struct dropped) */
  struct dropped *drop;
  size_t ndrop, adrop;
};

/* ------------------------------------------------------------------ re-entrancy
 *
 * An application callback may change the connection's course: connect,
 * disconnect, fail, or delete the engine (pusher__conn_del during a
 * dispatch only marks it dead).  The course is `epoch`, bumped by every such
 * change (start_attempt, close_transport, pusher__conn_connect).  Every
 * engine function that can run a callback, directly or through another,
 * returns a `flow`: GO while the transition that called it may go on, STOP
 * once a callback has changed the course or killed the engine; the caller
 * then stops at once and returns STOP itself.  FLOW_CHECK makes an ignored
 * result a compile error (-Werror), so no transition can forget the check;
 * the outermost callers, after which nothing of the transition is left, say
 * so with finish().  Every binding of one event still hears it (as
 * pusher-js's emitter does) before STOP takes effect. */
typedef enum flow { GO = 0, STOP = 1 } flow;
#define FLOW_CHECK __attribute__((warn_unused_result))

static inline uint64_t course(const pusher__conn *c) { return c->epoch; }
static inline flow still(const pusher__conn *c, uint64_t k) { return c->dead || c->epoch != k ? STOP : GO; }
static inline void finish(flow f) { (void)f; }

/* ------------------------------------------------------------------ small helpers */

static inline pusher__tstamp add_ms(pusher__tstamp now, uint64_t ms) {
  return (PUSHER__NEVER - now <= ms) ? PUSHER__NEVER - 1 : now + ms;
}

static inline int grow(const pusher_mem *m, void **arr, size_t *alloc, size_t need, size_t elem) {
  if (need <= *alloc) return 0;
  size_t n = *alloc ? *alloc * 2 : 8;
  while (n < need) n *= 2;
  void *p = pusher__realloc(m, *arr, n * elem);
  if (!p) return PUSHER_ERR_NOMEM;
  *arr = p;
  *alloc = n;
  return 0;
}

/* ------------------------------------------------------------------ shared functions */

#define enter pusher__cn_enter
#define sweep pusher__cn_sweep
#define leave pusher__cn_leave
#define free_drops pusher__cn_free_drops
#define drop_pending pusher__cn_drop_pending
#define clear_pending pusher__cn_clear_pending
#define find_chan pusher__cn_find_chan
#define settle_gone pusher__cn_settle_gone
#define free_chan pusher__cn_free_chan
#define emit_conn pusher__cn_emit_conn
#define error_event pusher__cn_error_event
#define dispatch_ex pusher__cn_dispatch_ex
#define dispatch pusher__cn_dispatch
#define sub_error pusher__cn_sub_error
#define send_text pusher__cn_send_text
#define classify pusher__cn_classify
#define lose pusher__cn_lose
#define subscribe_all pusher__cn_subscribe_all
#define json_code pusher__cn_json_code
#define json_message pusher__cn_json_message
#define dispatch_kind pusher__cn_dispatch_kind
#define dispatch_json pusher__cn_dispatch_json
#define flush_dropped pusher__cn_flush_dropped
#define encrypted_event pusher__cn_encrypted_event
#define rekey_done pusher__cn_rekey_done
#define presence_succeeded pusher__cn_presence_succeeded
#define presence_change pusher__cn_presence_change
#define signin_error_typed pusher__cn_signin_error_typed
#define signin_pending pusher__cn_signin_pending
#define presence_subscribe_signed_in pusher__cn_presence_subscribe_signed_in
#define request_signin pusher__cn_request_signin
#define handle_signin_success pusher__cn_handle_signin_success
#define handle_watchlist pusher__cn_handle_watchlist
#define handle_established pusher__cn_handle_established
#define handle_message pusher__cn_handle_message
#define auth_result pusher__cn_auth_result
#define user_auth_result pusher__cn_user_auth_result

/* conn.c */
void enter(pusher__conn *c);
/* conn_dispatch.c */
void sweep(pusher__conn *c);
/* conn.c */
void leave(pusher__conn *c);
/* conn_encrypted.c */
void free_drops(const pusher_mem *m, struct dropped *d, size_t n);
void drop_pending(pusher__conn *c, chan *ch, const char *why);
void clear_pending(pusher__conn *c, chan *ch);
/* conn_channels.c */
chan *find_chan(const pusher__conn *c, const char *name, size_t *idx);
int settle_gone(pusher__conn *c, const char *name, int succeeded);
void free_chan(pusher__conn *c, chan *ch);
/* conn_dispatch.c */
FLOW_CHECK flow emit_conn(pusher__conn *c, const pusher_connection_event *ev);
/* conn.c */
FLOW_CHECK flow error_event(pusher__conn *c, int code, int err, const char *msg, int fatal);
/* conn_dispatch.c */
FLOW_CHECK flow dispatch_ex(pusher__conn *c, const char *channel, const char *event, const char *data,
                        size_t data_len, int is_json, const char *user_id, int force);
FLOW_CHECK flow dispatch(pusher__conn *c, const char *channel, const char *event, const char *data,
                     size_t data_len, int is_json, const char *user_id);
/* conn_channels.c */
FLOW_CHECK flow sub_error(pusher__conn *c, const char *channel, const char *type, const char *msg,
                      int status);
/* conn.c */
int send_text(pusher__conn *c, char *text, size_t len);
action classify(int code);
FLOW_CHECK flow lose(pusher__conn *c, action act, int code, int err, const char *msg, pusher__tstamp now);
/* conn_channels.c */
FLOW_CHECK flow subscribe_all(pusher__conn *c);
/* conn.c */
int json_code(json_t *o);
const char *json_message(json_t *o, const char *dflt);
/* conn_dispatch.c */
FLOW_CHECK flow dispatch_kind(pusher__conn *c, int kind, const char *channel, const char *event,
                          const char *data, size_t data_len, int is_json);
FLOW_CHECK flow dispatch_json(pusher__conn *c, const char *channel, const char *event, json_t *v);
/* conn_encrypted.c */
FLOW_CHECK flow flush_dropped(pusher__conn *c);
FLOW_CHECK flow encrypted_event(pusher__conn *c, chan *ch, const pusher__msg *msg);
FLOW_CHECK flow rekey_done(pusher__conn *c, chan *ch, int err, const char *message, const char *secret);
/* conn_presence.c */
FLOW_CHECK flow presence_succeeded(pusher__conn *c, chan *ch, const pusher__msg *msg);
FLOW_CHECK flow presence_change(pusher__conn *c, chan *ch, const pusher__msg *msg, int added);
/* conn_signin.c */
FLOW_CHECK flow signin_error_typed(pusher__conn *c, const char *type, const char *msg, int status);
int signin_pending(const pusher__conn *c);
FLOW_CHECK flow presence_subscribe_signed_in(pusher__conn *c, chan *ch, const char *auth, int *result);
FLOW_CHECK flow request_signin(pusher__conn *c);
FLOW_CHECK flow handle_signin_success(pusher__conn *c, const pusher__msg *msg);
FLOW_CHECK flow handle_watchlist(pusher__conn *c, const pusher__msg *msg);
/* conn.c */
FLOW_CHECK flow handle_established(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now);
/* conn_dispatch.c */
FLOW_CHECK flow handle_message(pusher__conn *c, const uint8_t *text, size_t len, pusher__tstamp now);
/* conn_channels.c */
FLOW_CHECK flow auth_result(pusher__conn *c, chan *ch, int rekey, int err, int http_status, const char *message,
                       const char *auth, const char *channel_data, const char *shared_secret_b64, int *result);
/* conn_signin.c */
FLOW_CHECK flow user_auth_result(pusher__conn *c, int err, int http_status, const char *message, const char *auth,
                            const char *user_data, int *result);

#endif
