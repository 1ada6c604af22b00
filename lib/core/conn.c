/* The sans-I/O Pusher connection engine (see conn.h).
 *
 * Retry policy (all delays in seconds; "jitter" = multiply by a uniform
 * factor in [0.5, 1] drawn from opts->rand, only when opts->jitter):
 *  - failed attempt / dropped connection / close < 4000 / 4100-4199:
 *      n-th consecutive failure waits reconnect_delay * 2^(n-1), capped at
 *      max_reconnect_delay (defaults 5, 10, 10, ...), jittered.
 *      While `unavailable` every retry waits max_reconnect_delay, jittered.
 *  - 4000 (TLS only): switch to TLS and retry at once (when already on TLS:
 *      treated as a back-off failure).
 *  - 4200-4299: the first retries at once; consecutive ones without a
 *      stable connection wait 1, 2, 4, ... s (capped at max_reconnect_delay),
 *      jittered.  Against a server that answers every attempt with 4200 this
 *      makes at most 4 attempts in 3 s.
 *  - pong timeout: drop and retry at once (as pusher-js).
 *  - 4001-4099 and >= 4300: fatal: `error` (fatal) then `disconnected`.
 * A connection that stayed `connected` for at least
 * max(2 * reconnect_delay, 1 s) is "stable": when it ends, both back-off
 * counters restart from zero.
 */
#include "core/conn.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/mem.h"
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

typedef struct ebind {
  pusher_bind_id id;
  int kind;      /* BK_*: channel/global, user (sign-in), watchlist */
  char *channel; /* NULL = every channel and connection-level events */
  char *event;   /* NULL = every event */
  pusher_event_cb cb;
  void *ud;
  int dead;
} ebind;

typedef struct chan {
  char *name;
  int subscribed;     /* subscription_succeeded received on this connection */
  int sent;           /* pusher:subscribe sent on this connection */
  int replied;        /* ... and the server answered it (succeeded or failed) */
  uint64_t done_gen;  /* transport generation on which subscribe was handled */
  uint64_t auth_req;  /* pending authorization request (0 = none) */
  char *shared_secret;
  int kind;           /* CK_* */
  pusher__tstamp auth_deadline;
  pusher__members members; /* presence */
  uint8_t key[PUSHER__SECRETBOX_KEYBYTES]; /* encrypted: current key */
  int have_key;
  uint64_t rekey_req;  /* encrypted: re-authorization after a MAC failure */
  pusher__tstamp rekey_deadline;
  struct pend *pend;   /* encrypted events waiting for the new key */
  size_t npend;
  char *wait_auth;     /* presence: auth of a reply without channel_data,
                          waiting for the pending sign-in (PROTOCOL.md 3.3) */
} chan;

enum { CK_PUBLIC, CK_PRIVATE, CK_PRESENCE, CK_ENCRYPTED };

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
  pusher_bind_id next_bind;
  uint64_t next_req;
  int depth, dead, need_sweep;
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

/* ------------------------------------------------------------------ helpers */

static uint64_t sec_ms(double s) {
  if (!(s > 0)) return 0;
  if (s > 1e9) s = 1e9;
  return (uint64_t)(s * 1000.0 + 0.5);
}

static pusher__tstamp add_ms(pusher__tstamp now, uint64_t ms) {
  return (PUSHER__NEVER - now <= ms) ? PUSHER__NEVER - 1 : now + ms;
}

static int grow(const pusher_mem *m, void **arr, size_t *alloc, size_t need, size_t elem) {
  if (need <= *alloc) return 0;
  size_t n = *alloc ? *alloc * 2 : 8;
  while (n < need) n *= 2;
  void *p = pusher__realloc(m, *arr, n * elem);
  if (!p) return PUSHER_ERR_NOMEM;
  *arr = p;
  *alloc = n;
  return 0;
}

static void enter(pusher__conn *c) { c->depth++; }

static void sweep(pusher__conn *c) {
  size_t j = 0;
  for (size_t i = 0; i < c->ncbs; i++) {
    if (c->cbs[i].dead) pusher__free(c->m, c->cbs[i].event);
    else c->cbs[j++] = c->cbs[i];
  }
  c->ncbs = j;
  j = 0;
  for (size_t i = 0; i < c->nebs; i++) {
    if (c->ebs[i].dead) {
      pusher__free(c->m, c->ebs[i].channel);
      pusher__free(c->m, c->ebs[i].event);
    } else {
      c->ebs[j++] = c->ebs[i];
    }
  }
  c->nebs = j;
  c->need_sweep = 0;
}

static void flush_dropped(pusher__conn *c);

static void leave(pusher__conn *c) {
  if (c->depth == 1 && c->ndrop && !c->dead) flush_dropped(c);
  if (--c->depth > 0) return;
  if (c->need_sweep) sweep(c);
  for (size_t i = 0; i < c->nretired; i++) pusher__ws_del(c->retired[i]);
  c->nretired = 0;
}

static int needs_auth(const char *name) {
  return strncmp(name, "private-", 8) == 0 || strncmp(name, "presence-", 9) == 0;
}

static int chan_kind(const char *name) {
  if (strncmp(name, "private-encrypted-", 18) == 0) return CK_ENCRYPTED;
  if (strncmp(name, "private-", 8) == 0) return CK_PRIVATE;
  if (strncmp(name, "presence-", 9) == 0) return CK_PRESENCE;
  return CK_PUBLIC;
}

static void free_drops(const pusher_mem *m, struct dropped *d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    pusher__free(m, d[i].channel);
    pusher__free(m, d[i].event);
  }
  pusher__free(m, d);
}

/* Discard ch's held encrypted events; with why != NULL each is queued to be
 * reported as pusher:decryption_error {"event":..,"error":why}. */
static void drop_pending(pusher__conn *c, chan *ch, const char *why) {
  for (size_t i = 0; why && i < ch->npend; i++) {
    if (grow(c->m, (void **)&c->drop, &c->adrop, c->ndrop + 1, sizeof *c->drop)) break;
    struct dropped *d = &c->drop[c->ndrop];
    d->channel = pusher__strdup(c->m, ch->name);
    d->event = ch->pend[i].event; /* moved */
    d->why = why;
    if (!d->channel) break;
    ch->pend[i].event = NULL;
    c->ndrop++;
  }
  for (size_t i = 0; i < ch->npend; i++) {
    pusher__free(c->m, ch->pend[i].event);
    pusher__free(c->m, ch->pend[i].data);
    pusher__free(c->m, ch->pend[i].user_id);
  }
  pusher__free(c->m, ch->pend);
  ch->pend = NULL;
  ch->npend = 0;
}

static void clear_pending(pusher__conn *c, chan *ch) { drop_pending(c, ch, NULL); }

static chan *find_chan(const pusher__conn *c, const char *name, size_t *idx) {
  for (size_t i = 0; i < c->nchans; i++)
    if (strcmp(c->chans[i]->name, name) == 0) {
      if (idx) *idx = i;
      return c->chans[i];
    }
  return NULL;
}

static void free_chan(pusher__conn *c, chan *ch) {
  clear_pending(c, ch);
  pusher__free(c->m, ch->wait_auth);
  pusher__members_free(&ch->members);
  sodium_memzero(ch->key, sizeof ch->key);
  pusher__free(c->m, ch->name);
  pusher__free(c->m, ch->shared_secret);
  pusher__free(c->m, ch);
}

/* Uniform in [0, 1] from the injected random source. */
static double rand_unit(pusher__conn *c) {
  uint8_t b[4] = {0, 0, 0, 0};
  c->rand(b, sizeof b, c->rand_user);
  uint32_t v = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
  return (double)v / 4294967295.0;
}

static double jittered(pusher__conn *c, double d) {
  if (!c->jitter || d <= 0) return d;
  return d * (0.5 + 0.5 * rand_unit(c));
}

/* ------------------------------------------------------------------ dispatch */

static void emit_conn(pusher__conn *c, const pusher_connection_event *ev) {
  if (c->dead) return;
  size_t n = c->ncbs;
  for (size_t i = 0; i < n && i < c->ncbs; i++) {
    if (c->cbs[i].dead) continue;
    if (c->cbs[i].event && strcmp(c->cbs[i].event, ev->name) != 0) continue;
    pusher_connection_cb cb = c->cbs[i].cb;
    void *ud = c->cbs[i].ud;
    cb((pusher_client *)c->owner, ev, ud);
    if (c->dead) return;
  }
}

static void emit_state(pusher__conn *c, pusher_state prev) {
  pusher_connection_event ev;
  memset(&ev, 0, sizeof ev);
  ev.previous = prev;
  ev.current = c->state;
  ev.socket_id = c->state == PUSHER_STATE_CONNECTED ? c->socket_id : NULL;
  ev.name = "state_change";
  emit_conn(c, &ev);
  if (c->dead) return;
  ev.name = pusher_state_name(c->state);
  emit_conn(c, &ev);
}

static void set_state(pusher__conn *c, pusher_state s) {
  if (c->state == s) return;
  pusher_state prev = c->state;
  c->state = s;
  emit_state(c, prev);
}

static pusher_connection_event make_error(int code, int err, const char *msg, int fatal) {
  pusher_connection_event ev;
  memset(&ev, 0, sizeof ev);
  ev.name = "error";
  ev.code = code;
  ev.error = err;
  ev.message = msg ? msg : pusher_strerror(err);
  ev.fatal = fatal;
  return ev;
}

static void error_event(pusher__conn *c, int code, int err, const char *msg, int fatal) {
  pusher_connection_event ev = make_error(code, err, msg, fatal);
  emit_conn(c, &ev);
}

/* force: the channel's bindings hear it even if it has left the table
 * (reports about a channel that was just unsubscribed). */
static void dispatch_ex(pusher__conn *c, const char *channel, const char *event, const char *data,
                        size_t data_len, int is_json, const char *user_id, int force) {
  if (c->dead) return;
  pusher_event ev = {channel, event, data, data_len, is_json, user_id};
  /* As pusher-js: channel bindings hear their channel only while it is in
   * the table (e.g. not events still in flight after unsubscribe); global
   * bindings hear everything. */
  int known = channel && (force || find_chan(c, channel, NULL) != NULL);
  size_t n = c->nebs;
  for (size_t i = 0; i < n && i < c->nebs; i++) {
    const ebind *b = &c->ebs[i];
    if (b->dead || b->kind != BK_CHANNEL) continue;
    if (b->channel && (!known || strcmp(b->channel, channel) != 0)) continue;
    if (b->event && strcmp(b->event, event) != 0) continue;
    pusher_event_cb cb = b->cb;
    void *ud = b->ud;
    cb((pusher_client *)c->owner, &ev, ud);
    if (c->dead) return;
  }
}

static void dispatch(pusher__conn *c, const char *channel, const char *event, const char *data,
                     size_t data_len, int is_json, const char *user_id) {
  dispatch_ex(c, channel, event, data, data_len, is_json, user_id, 0);
}

/* Channel event "pusher:subscription_error" {"type":..,"error":..,"status":..}. */
static void sub_error(pusher__conn *c, const char *channel, const char *type, const char *msg,
                      int status) {
  char *text;
  size_t n;
  if (pusher__proto_encode_subscription_error(c->m, type, msg, status, &text, &n) != 0) return;
  dispatch(c, channel, "pusher:subscription_error", text, n, 1, NULL);
  pusher__free(c->m, text);
}

/* ------------------------------------------------------------------ transport */

static void retire_ws(pusher__conn *c) {
  if (!c->ws) return;
  if (c->depth == 0) {
    pusher__ws_del(c->ws);
  } else if (grow(c->m, (void **)&c->retired, &c->aretired, c->nretired + 1, sizeof(*c->retired)) == 0) {
    c->retired[c->nretired++] = c->ws;
  } else {
    return; /* out of memory: keep it; io_opened then fails the attempt */
  }
  c->ws = NULL;
}

static void reset_channels(pusher__conn *c) {
  for (size_t i = 0; i < c->nchans; i++) {
    chan *ch = c->chans[i];
    ch->subscribed = 0;
    ch->sent = 0;
    ch->replied = 0;
    ch->auth_req = 0;
    ch->rekey_req = 0;
    ch->auth_deadline = ch->rekey_deadline = PUSHER__NEVER;
    pusher__members_reset(&ch->members);
    drop_pending(c, ch, "dropped: the connection ended while the event waited for the channel's new key");
    pusher__free(c->m, ch->wait_auth);
    ch->wait_auth = NULL;
  }
  /* the server forgot every subscription with the connection */
  for (size_t i = 0; i < c->ngone; i++) free_chan(c, c->gone[i]);
  c->ngone = 0;
  /* the sign-in belongs to the connection; it is redone on the next one */
  c->user_req = 0;
  c->user_deadline = PUSHER__NEVER;
  c->signin_sent = 0;
  c->user_id[0] = '\0';
  c->user_chan[0] = '\0';
}

static void start_attempt(pusher__conn *c, pusher__tstamp now) {
  retire_ws(c);
  c->epoch++;
  c->gen++;
  c->live = 1;
  c->opened = 0;
  c->established = 0;
  c->socket_id[0] = '\0';
  c->retry_at = PUSHER__NEVER;
  c->activity_at = PUSHER__NEVER;
  c->pong_at = PUSHER__NEVER;
  c->attempt_deadline = add_ms(now, c->connect_ms);
  reset_channels(c);
  c->want.action = PUSHER__IO_OPEN;
  c->want.gen = c->gen;
  c->want.host = c->host;
  c->want.port = c->tls ? c->wss_port : c->ws_port;
  c->want.tls = c->tls;
  snprintf(c->host_header, sizeof c->host_header, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host,
           (unsigned)c->want.port);
}

/* End the current transport: nothing of generation gen matters any more. */
static void close_transport(pusher__conn *c, int send_close) {
  c->epoch++;
  if (c->live) {
    if (send_close && c->ws && pusher__ws_is_open(c->ws) && !pusher__ws_close_sent(c->ws))
      (void)pusher__ws_send_close(c->ws, 1000, "");
    c->want.action = PUSHER__IO_CLOSE;
    c->want.gen = c->gen;
    c->want.host = NULL;
  }
  c->live = 0;
  c->established = 0;
  c->socket_id[0] = '\0';
  c->attempt_deadline = PUSHER__NEVER;
  c->activity_at = PUSHER__NEVER;
  c->pong_at = PUSHER__NEVER;
}

static int send_text(pusher__conn *c, char *text, size_t len) {
  int rc = PUSHER_ERR_INVALID_STATE;
  if (c->ws && c->live && c->established) rc = pusher__ws_send_text(c->ws, text, len);
  pusher__free(c->m, text);
  return rc;
}

static void send_ping(pusher__conn *c, pusher__tstamp now) {
  char *t;
  size_t n;
  if (pusher__proto_encode_ping(c->m, &t, &n) == 0) (void)send_text(c, t, n);
  c->activity_at = PUSHER__NEVER;
  c->pong_at = add_ms(now, c->pong_ms);
}

/* ------------------------------------------------------------------ retry policy */

static action classify(int code) {
  if (code == 4000) return A_TLS;
  if (code >= 4001 && code <= 4099) return A_FATAL;
  if (code >= 4100 && code <= 4199) return A_BACKOFF;
  if (code >= 4200 && code <= 4299) return A_RETRY;
  if (code >= 4300) return A_FATAL;
  return A_BACKOFF;
}

static double backoff_delay(pusher__conn *c) {
  double d;
  if (c->state == PUSHER_STATE_UNAVAILABLE) {
    d = c->max_delay;
  } else {
    d = c->reconnect_delay;
    for (unsigned i = 1; i < c->fails && d < c->max_delay; i++) d *= 2;
    if (d > c->max_delay) d = c->max_delay;
  }
  return jittered(c, d);
}

/* A connection that stayed up this long resets the back-off. */
static uint64_t stable_ms(const pusher__conn *c) {
  uint64_t ms = sec_ms(2 * c->reconnect_delay);
  return ms < 1000 ? 1000 : ms;
}

/* The current attempt or connection ended.  code: close/pusher:error code
 * (0 = none), err: pusher_error, msg: text. */
static void lose(pusher__conn *c, action act, int code, int err, const char *msg, pusher__tstamp now) {
  int was_connected = c->established && c->state == PUSHER_STATE_CONNECTED;
  pusher_connection_event ev = make_error(code, err, msg, act == A_FATAL);
  if (was_connected && now - c->connected_at >= stable_ms(c)) {
    c->fails = 0;
    c->fails_4200 = 0;
  }
  if (act == A_FATAL) {
    close_transport(c, 1);
    uint64_t e = c->epoch;
    c->retry_at = c->unavailable_at = PUSHER__NEVER;
    c->fails = c->fails_4200 = 0;
    reset_channels(c);
    emit_conn(c, &ev);
    if (c->dead || c->epoch != e) return;
    set_state(c, PUSHER_STATE_DISCONNECTED);
    if (c->dead || c->epoch != e) return;
    if (was_connected && c->dlg.did_disconnect) {
      c->dlg.did_disconnect((pusher_client *)c->owner, &ev, 0, c->dlg_user);
      if (c->dead || c->epoch != e) return;
    }
    if (c->dlg.failed) c->dlg.failed((pusher_client *)c->owner, &ev, c->dlg_user);
    return;
  }
  close_transport(c, 0);
  reset_channels(c);
  uint64_t e = c->epoch;
  double delay = 0;
  switch (act) {
  case A_TLS:
    if (!c->tls) {
      c->tls = 1;
      delay = 0;
    } else {
      c->fails++;
      delay = backoff_delay(c);
    }
    break;
  case A_RETRY: {
    unsigned n = c->fails_4200++;
    if (n == 0) {
      delay = 0;
    } else {
      double d = 1.0;
      for (unsigned i = 1; i < n && d < c->max_delay; i++) d *= 2;
      if (d > c->max_delay) d = c->max_delay;
      delay = jittered(c, d);
    }
    break;
  }
  case A_NOW: delay = 0; break;
  default:
    c->fails++;
    delay = backoff_delay(c);
    break;
  }
  /* As pusher-js (getCloseError): a normal close (1000/1001) is no error. */
  if (!(err == PUSHER_ERR_CLOSED && (code == 1000 || code == 1001))) {
    emit_conn(c, &ev);
    if (c->dead || c->epoch != e) return;
  }
  int will = 1;
  if (c->dlg.will_reconnect) {
    will = c->dlg.will_reconnect((pusher_client *)c->owner, &delay, c->dlg_user);
    if (c->dead || c->epoch != e) return;
    if (!(delay >= 0)) delay = 0;
    if (delay > 86400) delay = 86400;
  }
  if (!will) {
    c->retry_at = c->unavailable_at = PUSHER__NEVER;
    set_state(c, PUSHER_STATE_DISCONNECTED);
    if (c->dead || c->epoch != e) return;
    if (was_connected && c->dlg.did_disconnect)
      c->dlg.did_disconnect((pusher_client *)c->owner, &ev, 0, c->dlg_user);
    return;
  }
  if (c->state == PUSHER_STATE_CONNECTED || c->state == PUSHER_STATE_INITIALIZED) {
    c->unavailable_at = add_ms(now, c->unavailable_ms);
    set_state(c, PUSHER_STATE_CONNECTING);
    if (c->dead || c->epoch != e) return;
  }
  if (was_connected && c->dlg.did_disconnect) {
    c->dlg.did_disconnect((pusher_client *)c->owner, &ev, 1, c->dlg_user);
    if (c->dead || c->epoch != e) return;
  }
  if (c->state != PUSHER_STATE_CONNECTING && c->state != PUSHER_STATE_UNAVAILABLE) return;
  uint64_t ms = sec_ms(delay);
  if (ms == 0) {
    start_attempt(c, now);
    return;
  }
  pusher_connection_event ci;
  memset(&ci, 0, sizeof ci);
  ci.name = "connecting_in";
  ci.previous = ci.current = c->state;
  ci.delay = delay;
  c->retry_at = add_ms(now, ms);
  emit_conn(c, &ci);
}

/* ------------------------------------------------------------------ channels */

static size_t gone_index(const pusher__conn *c, const char *name) {
  for (size_t i = 0; i < c->ngone; i++)
    if (strcmp(c->gone[i]->name, name) == 0) return i;
  return SIZE_MAX;
}

/* The server answered a pusher:subscribe of `name`.  When that channel was
 * unsubscribed while the answer was on its way (c->gone), settle it: after
 * a success its pusher:unsubscribe goes out now, after a failure there is
 * nothing to undo.  Returns 1 when the answer was for such a channel
 * (nobody else is to see it). */
static int settle_gone(pusher__conn *c, const char *name, int succeeded) {
  size_t i = name ? gone_index(c, name) : SIZE_MAX;
  if (i == SIZE_MAX) return 0;
  chan *ch = c->gone[i];
  c->gone[i] = c->gone[--c->ngone];
  if (succeeded) {
    char *t;
    size_t n;
    if (pusher__proto_encode_unsubscribe(c->m, ch->name, &t, &n) == 0) (void)send_text(c, t, n);
  }
  free_chan(c, ch);
  return 1;
}

static void send_subscribe(pusher__conn *c, chan *ch) {
  ch->done_gen = c->gen;
  if (needs_auth(ch->name)) {
    if (!c->hooks.request_channel_auth) {
      sub_error(c, ch->name, "AuthError", "no channel authorizer is configured", 0);
      return;
    }
    ch->auth_req = ++c->next_req;
    ch->auth_deadline = c->auth_timeout_ms ? add_ms(c->now, c->auth_timeout_ms) : PUSHER__NEVER;
    c->hooks.request_channel_auth(c, ch->name, c->socket_id, ch->auth_req, c->hook_user);
    return;
  }
  char *t;
  size_t n;
  int rc = pusher__proto_encode_subscribe(c->m, ch->name, "", NULL, &t, &n);
  if (rc == 0) rc = send_text(c, t, n);
  if (rc == 0) {
    ch->sent = 1;
    ch->replied = 0;
  } else {
    error_event(c, 0, rc, "cannot queue pusher:subscribe", 0);
  }
}

static void subscribe_all(pusher__conn *c) {
  uint64_t e = c->epoch;
  for (;;) {
    chan *ch = NULL;
    for (size_t i = 0; i < c->nchans; i++)
      if (c->chans[i]->done_gen != c->gen) {
        ch = c->chans[i];
        break;
      }
    if (!ch) return;
    send_subscribe(c, ch);
    if (c->dead || c->epoch != e || !c->established) return;
  }
}

/* ------------------------------------------------------------------ messages */

static int json_code(json_t *o) {
  json_t *v = o ? json_object_get(o, "code") : NULL;
  if (v && json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    return (x > 0 && x < 100000) ? (int)x : 0;
  }
  if (v && json_is_string(v)) {
    long x = strtol(json_string_value(v), NULL, 10);
    return (x > 0 && x < 100000) ? (int)x : 0;
  }
  return 0;
}

static const char *json_message(json_t *o, const char *dflt) {
  json_t *v = o ? json_object_get(o, "message") : NULL;
  return (v && json_is_string(v)) ? json_string_value(v) : dflt;
}

/* ------------------------------------------------------------------ issue 3 helpers */

/* Deliver to the user (BK_USER) or watchlist (BK_WATCHLIST) bindings. */
static void dispatch_kind(pusher__conn *c, int kind, const char *channel, const char *event,
                          const char *data, size_t data_len, int is_json) {
  if (c->dead) return;
  pusher_event ev = {channel, event, data, data_len, is_json, NULL};
  size_t n = c->nebs;
  for (size_t i = 0; i < n && i < c->nebs; i++) {
    const ebind *b = &c->ebs[i];
    if (b->dead || b->kind != kind) continue;
    if (b->event && strcmp(b->event, event) != 0) continue;
    pusher_event_cb cb = b->cb;
    void *ud = b->ud;
    cb((pusher_client *)c->owner, &ev, ud);
    if (c->dead) return;
  }
}

/* Dispatch the JSON value v (consumed) as the data of a channel event. */
static void dispatch_json(pusher__conn *c, const char *channel, const char *event, json_t *v) {
  char *text;
  size_t n;
  if (pusher__proto_dump(c->m, v, &text, &n) != 0) {
    error_event(c, 0, PUSHER_ERR_NOMEM, "out of memory", 0);
    return;
  }
  dispatch(c, channel, event, text, n, 1, NULL);
  pusher__free(c->m, text);
}

static json_t *member_json(const pusher__member *mb) {
  json_t *info = mb->info_json ? pusher__json_parse(mb->info_json, strlen(mb->info_json)) : NULL;
  return json_pack("{s:s,s:o}", "user_id", mb->id, "user_info", info ? info : json_null());
}

/* "pusher:decryption_error" {"event":..,"error":..} on channel. */
static void decryption_error(pusher__conn *c, const char *channel, const char *event, const char *why) {
  json_t *v = json_pack("{s:s,s:s}", "event", event, "error", why);
  if (!v) v = json_pack("{s:s,s:s}", "event", "(invalid name)", "error", "decryption failed");
  dispatch_json(c, channel, "pusher:decryption_error", v);
}

/* Report the held encrypted events that were dropped (leave() calls this
 * when the outermost engine call unwinds). */
static void flush_dropped(pusher__conn *c) {
  for (int guard = 0; guard < 64 && c->ndrop && !c->dead; guard++) {
    struct dropped *d = c->drop;
    size_t n = c->ndrop;
    c->drop = NULL;
    c->ndrop = c->adrop = 0;
    for (size_t i = 0; i < n && !c->dead; i++) {
      char *text;
      size_t tn;
      json_t *v = json_pack("{s:s,s:s}", "event", d[i].event, "error", d[i].why);
      if (pusher__proto_dump(c->m, v, &text, &tn) != 0) continue;
      dispatch_ex(c, d[i].channel, "pusher:decryption_error", text, tn, 1, NULL, 1);
      pusher__free(c->m, text);
    }
    free_drops(c->m, d, n);
  }
}

/* Deliver a decrypted plaintext as pusher-js does (JSON.parse with a raw
 * string fallback): a JSON string is delivered as its content, other JSON
 * as its text, anything else as is. */
static void deliver_plain(pusher__conn *c, const char *channel, const char *event, const char *plain,
                          size_t len, const char *user_id) {
  json_t *v = pusher__json_parse(plain, len);
  if (v && json_is_string(v)) {
    const char *sv = json_string_value(v);
    size_t sl = json_string_length(v);
    json_t *inner = pusher__json_parse(sv, sl);
    dispatch(c, channel, event, sv, sl, inner != NULL, user_id);
    json_decref(inner);
  } else {
    dispatch(c, channel, event, plain, len, v != NULL, user_id);
  }
  json_decref(v);
}

static int hold_event(pusher__conn *c, chan *ch, const pusher__msg *msg) {
  if (ch->npend >= MAX_PENDING_DECRYPT) return PUSHER_ERR_LIMIT;
  struct pend *p = pusher__realloc(c->m, ch->pend, (ch->npend + 1) * sizeof *p);
  if (!p) return PUSHER_ERR_NOMEM;
  ch->pend = p;
  struct pend *e = &p[ch->npend];
  memset(e, 0, sizeof *e);
  e->event = pusher__strdup(c->m, msg->event);
  e->data = pusher__strndup(c->m, msg->data ? msg->data : "", msg->data ? msg->data_len : 0);
  e->len = msg->data ? msg->data_len : 0;
  if (msg->user_id) e->user_id = pusher__strdup(c->m, msg->user_id);
  if (!e->event || !e->data || (msg->user_id && !e->user_id)) {
    pusher__free(c->m, e->event);
    pusher__free(c->m, e->data);
    pusher__free(c->m, e->user_id);
    return PUSHER_ERR_NOMEM;
  }
  ch->npend++;
  return 0;
}

/* Ask for a fresh shared_secret (one re-authorization after a MAC failure). */
static void start_rekey(pusher__conn *c, chan *ch) {
  if (!c->hooks.request_channel_auth) return;
  ch->rekey_req = ++c->next_req;
  ch->rekey_deadline = c->auth_timeout_ms ? add_ms(c->now, c->auth_timeout_ms) : PUSHER__NEVER;
  c->hooks.request_channel_auth(c, ch->name, c->socket_id, ch->rekey_req, c->hook_user);
}

static void encrypted_event(pusher__conn *c, chan *ch, const pusher__msg *msg) {
  char why[200];
  if (ch->rekey_req) { /* a new key is on its way: retry with it */
    int rc = hold_event(c, ch, msg);
    if (rc) decryption_error(c, msg->channel, msg->event, "too many events waiting for the channel's new key");
    return;
  }
  if (!ch->have_key) {
    decryption_error(c, msg->channel, msg->event, "no shared_secret for this channel");
    return;
  }
  char *plain = NULL;
  size_t plen = 0;
  int rc = pusher__crypto_decrypt_event(c->m, ch->key, msg->data ? msg->data : "", msg->data ? msg->data_len : 0,
                                        &plain, &plen, why, sizeof why);
  if (rc == 0) {
    deliver_plain(c, msg->channel, msg->event, plain, plen, msg->user_id);
    pusher__free(c->m, plain);
    return;
  }
  if (rc == PUSHER_ERR_DECRYPT && c->hooks.request_channel_auth && hold_event(c, ch, msg) == 0) {
    start_rekey(c, ch);
    return;
  }
  decryption_error(c, msg->channel, msg->event, why[0] ? why : pusher_strerror(rc));
}

/* The answer to a re-authorization: retry the held events with the new key. */
static void rekey_done(pusher__conn *c, chan *ch, int err, const char *message, const char *secret) {
  char name[PUSHER__MAX_CHANNEL_NAME + 1];
  char why[200];
  snprintf(name, sizeof name, "%s", ch->name);
  ch->rekey_req = 0;
  ch->rekey_deadline = PUSHER__NEVER;
  struct pend *held = ch->pend;
  size_t nheld = ch->npend;
  ch->pend = NULL;
  ch->npend = 0;
  int ok = 0;
  why[0] = '\0';
  if (err < 0) {
    snprintf(why, sizeof why, "re-authorization failed: %s", message ? message : pusher_strerror(err));
  } else if (!secret) {
    snprintf(why, sizeof why, "re-authorization gave no shared_secret");
  } else {
    uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
    char w2[160];
    if (pusher__crypto_key_from_b64(secret, key, w2, sizeof w2) == 0) {
      memcpy(ch->key, key, sizeof key);
      ch->have_key = 1;
      ok = 1;
      char *s2 = pusher__strdup(c->m, secret);
      if (s2) {
        pusher__free(c->m, ch->shared_secret);
        ch->shared_secret = s2;
      }
    } else {
      snprintf(why, sizeof why, "re-authorization gave an invalid shared_secret: %.120s", w2);
    }
  }
  uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
  memcpy(key, ch->key, sizeof key);
  uint64_t e = c->epoch;
  for (size_t i = 0; i < nheld; i++) {
    struct pend *p = &held[i];
    if (c->dead || c->epoch != e || !find_chan(c, name, NULL)) break;
    if (!ok) {
      decryption_error(c, name, p->event, why);
      continue;
    }
    char *plain = NULL;
    size_t plen = 0;
    char w3[200];
    int rc = pusher__crypto_decrypt_event(c->m, key, p->data, p->len, &plain, &plen, w3, sizeof w3);
    if (rc == 0) {
      deliver_plain(c, name, p->event, plain, plen, p->user_id);
      pusher__free(c->m, plain);
    } else {
      char w4[260];
      snprintf(w4, sizeof w4, "%s (also with the re-authorized key)", w3[0] ? w3 : pusher_strerror(rc));
      decryption_error(c, name, p->event, w4);
    }
  }
  sodium_memzero(key, sizeof key);
  for (size_t i = 0; i < nheld; i++) {
    pusher__free(c->m, held[i].event);
    pusher__free(c->m, held[i].data);
    pusher__free(c->m, held[i].user_id);
  }
  pusher__free(c->m, held);
}

static void presence_succeeded(pusher__conn *c, chan *ch, const pusher__msg *msg) {
  char why[200] = "subscription_succeeded without data";
  int rc = msg->data ? pusher__members_load(&ch->members, msg->data, msg->data_len, why, sizeof why)
                     : PUSHER_ERR_PROTO;
  if (rc) {
    char m2[260];
    snprintf(m2, sizeof m2, "invalid presence data: %s", why);
    sub_error(c, msg->channel, "ProtocolError", m2, 0);
    return;
  }
  ch->subscribed = 1;
  json_t *arr = json_array();
  size_t n = pusher__members_count(&ch->members);
  for (size_t i = 0; arr && i < n; i++) {
    json_t *mj = member_json(pusher__members_at(&ch->members, i));
    if (!mj || json_array_append_new(arr, mj) != 0) {
      json_decref(arr);
      arr = NULL;
    }
  }
  const pusher__member *me = pusher__members_me(&ch->members);
  json_t *mej = me ? member_json(me) : json_null();
  json_t *v = arr && mej ? json_pack("{s:I,s:o,s:o}", "count", (json_int_t)n, "me", mej, "members", arr) : NULL;
  if (!v) {
    json_decref(arr);
    json_decref(mej);
  }
  dispatch_json(c, msg->channel, "pusher:subscription_succeeded", v);
}

static void presence_change(pusher__conn *c, chan *ch, const pusher__msg *msg, int added) {
  char why[200] = "no data";
  int emit = 0, rc;
  if (added) {
    const pusher__member *mb = NULL;
    rc = msg->data ? pusher__members_add(&ch->members, msg->data, msg->data_len, &emit, &mb, why, sizeof why)
                   : PUSHER_ERR_PROTO;
    if (rc == 0 && emit && mb) dispatch_json(c, msg->channel, "pusher:member_added", member_json(mb));
  } else {
    char id[PUSHER__MEMBER_ID_MAX + 1];
    rc = msg->data ? pusher__members_remove(&ch->members, msg->data, msg->data_len, &emit, id, why, sizeof why)
                   : PUSHER_ERR_PROTO;
    if (rc == 0 && emit) dispatch_json(c, msg->channel, "pusher:member_removed", json_pack("{s:s}", "user_id", id));
  }
  if (rc) {
    char m2[300];
    snprintf(m2, sizeof m2, "invalid %s: %s", msg->event, why);
    error_event(c, 0, rc, m2, 0);
  }
}

static void presence_waits_fail(pusher__conn *c, const char *msg);

/* {"type":type,"error":..,"status":..} to the user bindings; presence
 * subscriptions waiting for the sign-in then fail. */
static void signin_error_typed(pusher__conn *c, const char *type, const char *msg, int status) {
  char *text;
  size_t n;
  uint64_t e = c->epoch;
  if (pusher__proto_encode_subscription_error(c->m, type, msg, status, &text, &n) == 0) {
    dispatch_kind(c, BK_USER, NULL, "pusher:signin_error", text, n, 1);
    pusher__free(c->m, text);
  }
  if (!c->dead && c->epoch == e) presence_waits_fail(c, msg);
}

static void signin_error(pusher__conn *c, const char *msg, int status) {
  signin_error_typed(c, "AuthError", msg, status);
}

/* A sign-in is under way on this connection (user auth requested or
 * pusher:signin sent, no answer yet). */
static int signin_pending(const pusher__conn *c) {
  return c->signin_wanted && !c->user_id[0] && (c->user_req || c->signin_sent);
}

/* Send pusher:subscribe for a presence channel whose auth reply had no
 * channel_data, as the signed-in user (signature over socket_id:channel). */
static int presence_subscribe_signed_in(pusher__conn *c, chan *ch, const char *auth) {
  char why[200], name[PUSHER__MAX_CHANNEL_NAME + 1];
  char *t;
  size_t tn;
  snprintf(name, sizeof name, "%s", ch->name);
  int rc = pusher__proto_dump(c->m, json_pack("{s:s}", "user_id", c->user_id), &t, &tn);
  snprintf(why, sizeof why, "out of memory");
  if (rc == 0) {
    rc = pusher__members_set_me(&ch->members, t, tn, why, sizeof why);
    pusher__free(c->m, t);
  }
  if (rc == 0) rc = pusher__proto_encode_subscribe(c->m, ch->name, auth, NULL, &t, &tn);
  if (rc == 0) rc = send_text(c, t, tn);
  if (rc == 0) {
    ch->sent = 1;
    ch->replied = 0;
    return 0;
  }
  sub_error(c, name, "AuthError", why, 0);
  return rc;
}

/* After signin_success: subscribe the presence channels that waited for it. */
static void presence_waits_resume(pusher__conn *c) {
  uint64_t e = c->epoch;
  for (size_t guard = 0; guard < 100000 && !c->dead && c->epoch == e && c->user_id[0]; guard++) {
    chan *ch = NULL;
    for (size_t i = 0; i < c->nchans && !ch; i++)
      if (c->chans[i]->wait_auth) ch = c->chans[i];
    if (!ch) return;
    char *auth = ch->wait_auth;
    ch->wait_auth = NULL;
    (void)presence_subscribe_signed_in(c, ch, auth);
    pusher__free(c->m, auth);
  }
}

/* The sign-in failed: the presence channels waiting for it fail too. */
static void presence_waits_fail(pusher__conn *c, const char *msg) {
  uint64_t e = c->epoch;
  char m2[300];
  snprintf(m2, sizeof m2, "presence auth reply without channel_data and the user sign-in failed: %s",
           msg ? msg : "unknown error");
  for (size_t guard = 0; guard < 100000 && !c->dead && c->epoch == e; guard++) {
    chan *ch = NULL;
    for (size_t i = 0; i < c->nchans && !ch; i++)
      if (c->chans[i]->wait_auth) ch = c->chans[i];
    if (!ch) return;
    pusher__free(c->m, ch->wait_auth);
    ch->wait_auth = NULL;
    sub_error(c, ch->name, "AuthError", m2, 0);
  }
}

static void request_signin(pusher__conn *c) {
  if (!c->signin_wanted || !c->established || c->state != PUSHER_STATE_CONNECTED) return;
  if (c->user_req || c->signin_sent || c->user_id[0]) return;
  if (!c->user_hook) {
    signin_error(c, "no user authenticator is configured", 0);
    return;
  }
  c->user_req = ++c->next_req;
  c->user_deadline = c->auth_timeout_ms ? add_ms(c->now, c->auth_timeout_ms) : PUSHER__NEVER;
  c->user_hook(c, c->socket_id, c->user_req, c->hook_user);
}

/* The "id" of a user_data JSON text (a non-empty string) into out. */
static int user_data_id(const char *user_data, char *out, size_t outlen) {
  json_t *u = user_data ? pusher__json_parse(user_data, strlen(user_data)) : NULL;
  json_t *id = u && json_is_object(u) ? json_object_get(u, "id") : NULL;
  int rc = PUSHER_ERR_PROTO;
  if (id && json_is_string(id) && json_string_length(id) > 0 && json_string_length(id) < outlen &&
      strlen(json_string_value(id)) == json_string_length(id)) {
    memcpy(out, json_string_value(id), json_string_length(id) + 1);
    rc = 0;
  }
  json_decref(u);
  return rc;
}

static void handle_signin_success(pusher__conn *c, const pusher__msg *msg) {
  json_t *o = pusher__msg_data_object(msg);
  json_t *ud = o ? json_object_get(o, "user_data") : NULL;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  if (!ud || !json_is_string(ud) || user_data_id(json_string_value(ud), id, sizeof id) != 0) {
    json_decref(o);
    c->signin_sent = 0;
    signin_error(c, "pusher:signin_success without a user_data carrying a string id", 0);
    return;
  }
  char *udt = pusher__strdup(c->m, json_string_value(ud));
  json_decref(o);
  if (!udt) return;
  snprintf(c->user_id, sizeof c->user_id, "%s", id);
  snprintf(c->user_chan, sizeof c->user_chan, "#server-to-user-%s", id);
  char *t;
  size_t n;
  /* the server-to-user channel is not in the channel table (as pusher-js) */
  if (pusher__proto_encode_subscribe(c->m, c->user_chan, "", NULL, &t, &n) == 0) (void)send_text(c, t, n);
  json_t *chk = pusher__json_parse(udt, strlen(udt));
  uint64_t e = c->epoch;
  dispatch_kind(c, BK_USER, NULL, "pusher:signin_success", udt, strlen(udt), chk != NULL);
  json_decref(chk);
  pusher__free(c->m, udt);
  if (!c->dead && c->epoch == e) presence_waits_resume(c);
}

/* {"events":[{"name":"online","user_ids":[..]},..]} to the watchlist bindings. */
static void handle_watchlist(pusher__conn *c, const pusher__msg *msg) {
  json_t *o = pusher__msg_data_object(msg);
  json_t *evs = o ? json_object_get(o, "events") : NULL;
  if (!evs || !json_is_array(evs)) {
    json_decref(o);
    error_event(c, 0, PUSHER_ERR_PROTO, "pusher_internal:watchlist_events without an events array", 0);
    return;
  }
  uint64_t e = c->epoch;
  for (size_t i = 0; i < json_array_size(evs); i++) {
    json_t *it = json_array_get(evs, i);
    json_t *name = json_is_object(it) ? json_object_get(it, "name") : NULL;
    json_t *ids = json_is_object(it) ? json_object_get(it, "user_ids") : NULL;
    if (!name || !json_is_string(name) || !ids || !json_is_array(ids)) continue;
    json_t *d = json_pack("{s:O}", "user_ids", ids);
    char *text;
    size_t n;
    if (pusher__proto_dump(c->m, d, &text, &n) != 0) continue;
    dispatch_kind(c, BK_WATCHLIST, NULL, json_string_value(name), text, n, 1);
    pusher__free(c->m, text);
    if (c->dead || c->epoch != e) break;
  }
  json_decref(o);
}

static void handle_established(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  json_t *o = pusher__msg_data_object(msg);
  json_t *sid = o ? json_object_get(o, "socket_id") : NULL;
  if (!sid || !json_is_string(sid) || json_string_length(sid) == 0 ||
      json_string_length(sid) >= sizeof c->socket_id || strlen(json_string_value(sid)) != json_string_length(sid)) {
    json_decref(o);
    lose(c, A_BACKOFF, 0, PUSHER_ERR_PROTO, "invalid pusher:connection_established (no usable socket_id)", now);
    return;
  }
  memcpy(c->socket_id, json_string_value(sid), json_string_length(sid) + 1);
  c->activity_ms = c->activity_opt_ms;
  json_t *at = json_object_get(o, "activity_timeout");
  if (at && json_is_number(at)) {
    double s = json_number_value(at);
    uint64_t ms = sec_ms(s);
    if (ms > 0 && ms < c->activity_ms) c->activity_ms = ms;
  }
  json_decref(o);
  c->established = 1;
  c->attempt_deadline = PUSHER__NEVER;
  c->unavailable_at = PUSHER__NEVER;
  c->retry_at = PUSHER__NEVER;
  c->connected_at = now;
  c->activity_at = add_ms(now, c->activity_ms);
  c->pong_at = PUSHER__NEVER;
  pusher_state prev = c->state;
  c->state = PUSHER_STATE_CONNECTED;
  uint64_t e = c->epoch;
  subscribe_all(c);
  if (c->dead || c->epoch != e) return;
  request_signin(c);
  if (c->dead || c->epoch != e) return;
  if (prev != PUSHER_STATE_CONNECTED) emit_state(c, prev);
  if (c->dead || c->epoch != e) return;
  if (c->dlg.did_connect) c->dlg.did_connect((pusher_client *)c->owner, c->socket_id, c->dlg_user);
}

static void handle_message(pusher__conn *c, const uint8_t *text, size_t len, pusher__tstamp now) {
  pusher__msg msg;
  char why[200];
  int rc = pusher__proto_decode(c->m, (const char *)text, len, &msg, why, sizeof why);
  if (c->established) {
    c->activity_at = add_ms(now, c->activity_ms);
    c->pong_at = PUSHER__NEVER;
  }
  if (rc < 0) {
    if (!c->established) {
      char m2[260];
      snprintf(m2, sizeof m2, "invalid handshake: %s", why);
      lose(c, A_BACKOFF, 0, rc, m2, now);
    } else {
      error_event(c, 0, rc, why, 0);
    }
    return;
  }
  const char *ev = msg.event;
  if (!c->established) {
    if (strcmp(ev, "pusher:connection_established") == 0) {
      handle_established(c, &msg, now);
    } else if (strcmp(ev, "pusher:error") == 0) {
      json_t *o = pusher__msg_data_object(&msg);
      int code = json_code(o);
      char m2[300];
      snprintf(m2, sizeof m2, "%s", json_message(o, msg.data && !msg.data_is_json ? msg.data : "pusher:error"));
      json_decref(o);
      lose(c, code ? classify(code) : A_BACKOFF, code, code ? PUSHER_ERR_CLOSED : PUSHER_ERR_REMOTE, m2, now);
    } else {
      char m2[300];
      snprintf(m2, sizeof m2, "invalid handshake: unexpected first message \"%s\"", ev);
      lose(c, A_BACKOFF, 0, PUSHER_ERR_PROTO, m2, now);
    }
    pusher__msg_free(c->m, &msg);
    return;
  }
  if (strcmp(ev, "pusher:ping") == 0) {
    char *t;
    size_t n;
    if (pusher__proto_encode_pong(c->m, &t, &n) == 0) (void)send_text(c, t, n);
  } else if (strcmp(ev, "pusher:pong") == 0) {
    /* activity already recorded */
  } else if (strcmp(ev, "pusher:error") == 0) {
    json_t *o = pusher__msg_data_object(&msg);
    int code = json_code(o);
    char m2[300];
    snprintf(m2, sizeof m2, "%s", json_message(o, msg.data && !msg.data_is_json ? msg.data : "pusher:error"));
    json_decref(o);
    uint64_t e = c->epoch;
    /* a connection-level pusher:error while our pusher:signin is unanswered
     * (soketi/pusherd: 4009 then close) is the sign-in's failure; 4302 (the
     * watchlist was truncated) accompanies a sign-in that succeeds */
    int signin_failed = !msg.channel && c->signin_sent && !c->user_id[0] && code != 4302;
    if (signin_failed) c->signin_sent = 0;
    error_event(c, code, PUSHER_ERR_REMOTE, m2, 0);
    if (signin_failed && !c->dead && c->epoch == e) signin_error_typed(c, "ServerError", m2, code);
    if (msg.channel && !c->dead && c->epoch == e) {
      dispatch(c, msg.channel, "pusher:error", msg.data, msg.data_len, msg.data_is_json, NULL);
      /* a server refusing a subscription with pusher:error (as Pusher and
       * pusherd do for a bad signature): the pending subscription fails */
      chan *ch = !c->dead && c->epoch == e ? find_chan(c, msg.channel, NULL) : NULL;
      if (ch && ch->sent && !ch->subscribed) {
        ch->replied = 1;
        sub_error(c, msg.channel, "ServerError", m2, code);
      } else if (!ch && !c->dead && c->epoch == e) {
        settle_gone(c, msg.channel, 0);
      }
    }
  } else if (strcmp(ev, "pusher:connection_established") == 0) {
    error_event(c, 0, PUSHER_ERR_PROTO, "unexpected pusher:connection_established on an open connection", 0);
  } else if (strcmp(ev, "pusher_internal:subscription_succeeded") == 0) {
    chan *ch = msg.channel ? find_chan(c, msg.channel, NULL) : NULL;
    if (ch) ch->replied = 1;
    if (!msg.channel) {
      error_event(c, 0, PUSHER_ERR_PROTO, "pusher_internal:subscription_succeeded without a channel", 0);
    } else if (!ch) {
      settle_gone(c, msg.channel, 1); /* else: for a channel long gone, ignored */
    } else if (ch->kind == CK_PRESENCE) {
      presence_succeeded(c, ch, &msg);
    } else {
      ch->subscribed = 1;
      dispatch(c, msg.channel, "pusher:subscription_succeeded", msg.data, msg.data_len, msg.data_is_json, NULL);
    }
  } else if (strcmp(ev, "pusher_internal:member_added") == 0 ||
             strcmp(ev, "pusher_internal:member_removed") == 0) {
    chan *ch = msg.channel ? find_chan(c, msg.channel, NULL) : NULL;
    if (ch && ch->kind == CK_PRESENCE) presence_change(c, ch, &msg, strcmp(ev + 16, "member_added") == 0);
  } else if (strcmp(ev, "pusher_internal:subscription_count") == 0) {
    char pub[64];
    snprintf(pub, sizeof pub, "pusher:%s", ev + strlen("pusher_internal:"));
    if (msg.channel && find_chan(c, msg.channel, NULL))
      dispatch(c, msg.channel, pub, msg.data, msg.data_len, msg.data_is_json, NULL);
  } else if (strcmp(ev, "pusher_internal:watchlist_events") == 0) {
    /* connection-level (user watchlist): surfaced as pusher:watchlist_events */
    uint64_t e = c->epoch;
    dispatch(c, NULL, "pusher:watchlist_events", msg.data, msg.data_len, msg.data_is_json, NULL);
    if (!c->dead && c->epoch == e) handle_watchlist(c, &msg);
  } else if (strcmp(ev, "pusher:signin_success") == 0) {
    handle_signin_success(c, &msg);
  } else if (strncmp(ev, "pusher_internal:", 16) == 0) {
    char m2[300];
    snprintf(m2, sizeof m2, "unknown internal event \"%s\" ignored", ev);
    error_event(c, 0, PUSHER_ERR_PROTO, m2, 0);
  } else if (strcmp(ev, "pusher:subscription_error") == 0 && msg.channel &&
             !find_chan(c, msg.channel, NULL) && settle_gone(c, msg.channel, 0)) {
    /* the answer to a subscription given up while it was on its way */
  } else {
    chan *ch = msg.channel ? find_chan(c, msg.channel, NULL) : NULL;
    if (ch && strcmp(ev, "pusher:subscription_error") == 0) ch->replied = 1;
    if (ch && ch->kind == CK_ENCRYPTED && strncmp(ev, "pusher:", 7) != 0) {
      encrypted_event(c, ch, &msg);
    } else if (!ch && msg.channel && c->user_chan[0] && strcmp(msg.channel, c->user_chan) == 0) {
      uint64_t e = c->epoch;
      dispatch(c, msg.channel, ev, msg.data, msg.data_len, msg.data_is_json, msg.user_id);
      if (!c->dead && c->epoch == e && strncmp(ev, "pusher:", 7) != 0)
        dispatch_kind(c, BK_USER, msg.channel, ev, msg.data, msg.data_len, msg.data_is_json);
    } else {
      dispatch(c, msg.channel, ev, msg.data, msg.data_len, msg.data_is_json, msg.user_id);
    }
  }
  pusher__msg_free(c->m, &msg);
}

/* ------------------------------------------------------------------ ws callbacks */

static int current(const pusher__conn *c) { return !c->dead && c->live && c->recv_gen == c->gen; }

static void on_ws_open(void *ud) { (void)ud; }

static void on_ws_text(const uint8_t *msg, size_t len, void *ud) {
  pusher__conn *c = ud;
  if (!current(c)) return;
  handle_message(c, msg, len, c->now);
}

static void on_ws_close(uint16_t code, const char *reason, size_t reason_len, void *ud) {
  pusher__conn *c = ud;
  if (!current(c)) return;
  char m2[200];
  if (reason_len) snprintf(m2, sizeof m2, "%.*s", (int)(reason_len > 190 ? 190 : reason_len), reason);
  else snprintf(m2, sizeof m2, "connection closed by the server (code %u)", (unsigned)code);
  lose(c, classify(code), code, PUSHER_ERR_CLOSED, m2, c->now);
}

static void on_ws_error(int err, const char *detail, void *ud) {
  pusher__conn *c = ud;
  if (!current(c)) return;
  lose(c, A_BACKOFF, 0, err, detail, c->now);
}

/* ------------------------------------------------------------------ lifecycle */

static int percent_append(pusher__buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int rc;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
      rc = pusher__buf_append(b, p, 1);
    else
      rc = pusher__buf_appendf(b, "%%%02X", *p);
    if (rc) return rc;
  }
  return 0;
}

int pusher__conn_new(pusher__conn **out, const char *app_key, const pusher_client_options *o,
                     void *owner, const pusher__conn_hooks *hooks, void *hook_user) {
  if (!out || !app_key || !*app_key || strlen(app_key) > 256 || !o || !o->rand)
    return PUSHER_ERR_INVALID_ARGUMENT;
  if (pusher__options_validate(o, NULL, 0) != 0) return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_mem mem;
  pusher__mem_copy(&mem, o->mem);
  pusher__conn *c = pusher__calloc(&mem, 1, sizeof *c);
  if (!c) return PUSHER_ERR_NOMEM;
  c->mem = mem;
  c->m = &c->mem;
  c->app_key = pusher__strdup(c->m, app_key);
  if (o->ws_host) {
    c->host = pusher__strdup(c->m, o->ws_host);
  } else {
    size_t n = strlen(o->cluster) + 32;
    c->host = pusher__malloc(c->m, n);
    if (c->host) snprintf(c->host, n, "ws-%s.pusher.com", o->cluster);
  }
  pusher__buf b;
  pusher__buf_init(&b, c->m, 4096);
  int rc = pusher__buf_appendf(&b, "%s/app/", o->ws_path ? o->ws_path : "");
  if (!rc) rc = percent_append(&b, app_key);
  if (!rc)
    rc = pusher__buf_appendf(&b, "?protocol=7&client=%s&version=%s&flash=false",
                             o->client_name ? o->client_name : "libpusher-c", PUSHER_VERSION);
  if (!rc) rc = pusher__buf_append(&b, "", 1);
  if (!rc) c->path = pusher__strdup(c->m, (const char *)b.data);
  pusher__buf_free(&b);
  if (!c->app_key || !c->host || !c->path) {
    pusher__free(c->m, c->app_key);
    pusher__free(c->m, c->host);
    pusher__free(c->m, c->path);
    pusher__free(&mem, c);
    return PUSHER_ERR_NOMEM;
  }
  c->ws_port = (uint16_t)o->ws_port;
  c->wss_port = (uint16_t)o->wss_port;
  c->encrypted = o->encrypted ? 1 : 0;
  c->tls = c->encrypted;
  c->reconnect_delay = o->reconnect_delay;
  c->max_delay = o->max_reconnect_delay;
  c->activity_opt_ms = sec_ms(o->activity_timeout);
  if (c->activity_opt_ms == 0) c->activity_opt_ms = 1;
  c->activity_ms = c->activity_opt_ms;
  c->pong_ms = sec_ms(o->pong_timeout);
  if (c->pong_ms == 0) c->pong_ms = 1;
  c->unavailable_ms = sec_ms(o->unavailable_timeout);
  c->connect_ms = sec_ms(o->connect_timeout);
  if (c->connect_ms == 0) c->connect_ms = 1;
  c->jitter = o->jitter ? 1 : 0;
  c->rand = o->rand;
  c->rand_user = o->rand_user;
  c->max_msg = o->max_message_size;
  c->max_out = o->max_send_queue;
  c->max_channels = o->max_channels;
  if (o->delegate) c->dlg = *o->delegate;
  c->dlg_user = o->delegate_user;
  c->owner = owner;
  if (hooks) c->hooks = *hooks;
  c->hook_user = hook_user;
  /* Room for the WebSocket objects retired inside one call (freed when the
   * outermost call unwinds), so retiring one never needs memory. */
  if (grow(c->m, (void **)&c->retired, &c->aretired, 16, sizeof *c->retired) != 0) {
    pusher__conn_del(c);
    return PUSHER_ERR_NOMEM;
  }
  c->state = PUSHER_STATE_INITIALIZED;
  c->retry_at = c->unavailable_at = c->attempt_deadline = c->activity_at = c->pong_at = PUSHER__NEVER;
  *out = c;
  return 0;
}

void pusher__conn_del(pusher__conn *c) {
  if (!c) return;
  if (c->depth > 0) {
    c->dead = 1;
    return;
  }
  pusher_mem mem = c->mem;
  for (size_t i = 0; i < c->nretired; i++) pusher__ws_del(c->retired[i]);
  pusher__free(&mem, c->retired);
  if (c->ws) pusher__ws_del(c->ws);
  for (size_t i = 0; i < c->nchans; i++) free_chan(c, c->chans[i]);
  pusher__free(&mem, c->chans);
  for (size_t i = 0; i < c->ngone; i++) free_chan(c, c->gone[i]);
  pusher__free(&mem, c->gone);
  for (size_t i = 0; i < c->ncbs; i++) pusher__free(&mem, c->cbs[i].event);
  pusher__free(&mem, c->cbs);
  for (size_t i = 0; i < c->nebs; i++) {
    pusher__free(&mem, c->ebs[i].channel);
    pusher__free(&mem, c->ebs[i].event);
  }
  pusher__free(&mem, c->ebs);
  free_drops(&mem, c->drop, c->ndrop);
  pusher__free(&mem, c->app_key);
  pusher__free(&mem, c->host);
  pusher__free(&mem, c->path);
  pusher__free(&mem, c);
}

int pusher__conn_is_dead(const pusher__conn *c) { return c && c->dead; }

/* ------------------------------------------------------------------ commands */

int pusher__conn_connect(pusher__conn *c, pusher__tstamp now) {
  if (!c || c->dead) return PUSHER_ERR_INVALID_STATE;
  if (c->state == PUSHER_STATE_CONNECTING || c->state == PUSHER_STATE_CONNECTED ||
      c->state == PUSHER_STATE_UNAVAILABLE)
    return 0;
  enter(c);
  c->now = now;
  c->fails = c->fails_4200 = 0;
  c->tls = c->encrypted;
  c->epoch++;
  uint64_t e = c->epoch;
  c->unavailable_at = add_ms(now, c->unavailable_ms);
  set_state(c, PUSHER_STATE_CONNECTING);
  if (!c->dead && c->epoch == e) start_attempt(c, now);
  leave(c);
  return 0;
}

int pusher__conn_disconnect(pusher__conn *c, pusher__tstamp now) {
  if (!c || c->dead) return PUSHER_ERR_INVALID_STATE;
  if (c->state == PUSHER_STATE_DISCONNECTED) return 0;
  enter(c);
  c->now = now;
  int was_connected = c->established && c->state == PUSHER_STATE_CONNECTED;
  close_transport(c, 1);
  uint64_t e = c->epoch;
  c->retry_at = c->unavailable_at = PUSHER__NEVER;
  c->fails = c->fails_4200 = 0;
  reset_channels(c);
  set_state(c, PUSHER_STATE_DISCONNECTED);
  if (!c->dead && c->epoch == e && was_connected && c->dlg.did_disconnect)
    c->dlg.did_disconnect((pusher_client *)c->owner, NULL, 0, c->dlg_user);
  leave(c);
  return 0;
}

void pusher__conn_fail(pusher__conn *c, int err, const char *detail, pusher__tstamp now) {
  if (!c || c->dead) return;
  enter(c);
  c->now = now;
  int was_connected = c->established && c->state == PUSHER_STATE_CONNECTED;
  close_transport(c, 1);
  uint64_t e = c->epoch;
  c->retry_at = c->unavailable_at = PUSHER__NEVER;
  reset_channels(c);
  pusher_connection_event ev = make_error(0, err ? err : PUSHER_ERR_CONFIG, detail, 1);
  emit_conn(c, &ev);
  if (!c->dead && c->epoch == e) set_state(c, PUSHER_STATE_FAILED);
  if (!c->dead && c->epoch == e && was_connected && c->dlg.did_disconnect)
    c->dlg.did_disconnect((pusher_client *)c->owner, &ev, 0, c->dlg_user);
  if (!c->dead && c->epoch == e && c->dlg.failed) c->dlg.failed((pusher_client *)c->owner, &ev, c->dlg_user);
  leave(c);
}

int pusher__conn_set_network(pusher__conn *c, int online, pusher__tstamp now) {
  if (!c || c->dead) return PUSHER_ERR_INVALID_STATE;
  enter(c);
  c->now = now;
  if (online) {
    if (c->state == PUSHER_STATE_CONNECTING || c->state == PUSHER_STATE_UNAVAILABLE) start_attempt(c, now);
  } else if (c->state == PUSHER_STATE_CONNECTED && c->established) {
    send_ping(c, now);
  }
  leave(c);
  return 0;
}

pusher_state pusher__conn_state(const pusher__conn *c) { return c ? c->state : PUSHER_STATE_INITIALIZED; }

const char *pusher__conn_socket_id(const pusher__conn *c) {
  return (c && c->state == PUSHER_STATE_CONNECTED && c->established) ? c->socket_id : NULL;
}

static size_t live_bindings(const pusher__conn *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->ncbs; i++) n += !c->cbs[i].dead;
  for (size_t i = 0; i < c->nebs; i++) n += !c->ebs[i].dead;
  return n;
}

static int conn_event_name_ok(const char *ev) {
  static const char *names[] = {"state_change", "connecting_in", "error", "initialized", "connecting",
                                "connected", "unavailable", "failed", "disconnected"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(ev, names[i]) == 0) return 1;
  return 0;
}

int pusher__conn_connection_bind(pusher__conn *c, const char *event, pusher_connection_cb cb,
                                 void *user_data, pusher_bind_id *id) {
  if (!c || !cb) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (event && !conn_event_name_ok(event)) return PUSHER_ERR_INVALID_ARGUMENT;
  if (live_bindings(c) >= PUSHER__MAX_BINDINGS) return PUSHER_ERR_LIMIT;
  if (grow(c->m, (void **)&c->cbs, &c->acbs, c->ncbs + 1, sizeof *c->cbs)) return PUSHER_ERR_NOMEM;
  cbind b = {++c->next_bind, NULL, cb, user_data, 0};
  if (event && !(b.event = pusher__strdup(c->m, event))) return PUSHER_ERR_NOMEM;
  c->cbs[c->ncbs++] = b;
  if (id) *id = b.id;
  return 0;
}

int pusher__conn_connection_unbind(pusher__conn *c, pusher_bind_id id) {
  if (!c || !id) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < c->ncbs; i++) {
    if (c->cbs[i].id != id || c->cbs[i].dead) continue;
    c->cbs[i].dead = 1;
    c->need_sweep = 1;
    if (c->depth == 0) sweep(c);
    return 0;
  }
  return PUSHER_ERR_NOT_FOUND;
}

int pusher__conn_subscribe(pusher__conn *c, const char *channel, pusher__tstamp now) {
  if (!c || !channel) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (!pusher__channel_name_valid(channel)) return PUSHER_ERR_BAD_CHANNEL_NAME;
  if (find_chan(c, channel, NULL)) return PUSHER_ERR_EXISTS;
  if (c->nchans >= c->max_channels) return PUSHER_ERR_LIMIT;
  if (grow(c->m, (void **)&c->chans, &c->achans, c->nchans + 1, sizeof *c->chans)) return PUSHER_ERR_NOMEM;
  size_t g = gone_index(c, channel);
  if (g != SIZE_MAX) {
    /* its pusher:subscribe is still unanswered: take it back, the answer
     * now counts for this subscription (nothing was sent in between) */
    c->chans[c->nchans++] = c->gone[g];
    c->gone[g] = c->gone[--c->ngone];
    return 0;
  }
  chan *ch = pusher__calloc(c->m, 1, sizeof *ch);
  if (!ch) return PUSHER_ERR_NOMEM;
  if (!(ch->name = pusher__strdup(c->m, channel))) {
    pusher__free(c->m, ch);
    return PUSHER_ERR_NOMEM;
  }
  ch->kind = chan_kind(channel);
  ch->auth_deadline = ch->rekey_deadline = PUSHER__NEVER;
  pusher__members_init(&ch->members, c->m);
  c->chans[c->nchans++] = ch;
  if (c->established && c->state == PUSHER_STATE_CONNECTED) {
    enter(c);
    c->now = now;
    send_subscribe(c, ch);
    leave(c);
  }
  return 0;
}

int pusher__conn_unsubscribe(pusher__conn *c, const char *channel, pusher__tstamp now) {
  if (!c || !channel) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  size_t idx;
  chan *ch = find_chan(c, channel, &idx);
  if (!ch) return PUSHER_ERR_NOT_FOUND;
  int awaiting = c->established && ch->sent && !ch->replied;
  if (awaiting && grow(c->m, (void **)&c->gone, &c->agone, c->ngone + 1, sizeof *c->gone)) return PUSHER_ERR_NOMEM;
  enter(c);
  c->now = now;
  if (c->established && ch->sent && !awaiting) {
    char *t;
    size_t n;
    if (pusher__proto_encode_unsubscribe(c->m, ch->name, &t, &n) == 0) (void)send_text(c, t, n);
  }
  memmove(&c->chans[idx], &c->chans[idx + 1], (c->nchans - idx - 1) * sizeof *c->chans);
  c->nchans--;
  drop_pending(c, ch, "dropped: the channel was unsubscribed while the event waited for its new key");
  if (awaiting) c->gone[c->ngone++] = ch; /* pusher:unsubscribe once answered */
  else free_chan(c, ch);
  leave(c);
  return 0;
}

int pusher__conn_channel_subscribed(const pusher__conn *c, const char *channel) {
  if (!c || !channel) return 0;
  chan *ch = find_chan(c, channel, NULL);
  return ch && ch->subscribed;
}

const char *pusher__conn_channel_shared_secret(const pusher__conn *c, const char *channel) {
  if (!c || !channel) return NULL;
  chan *ch = find_chan(c, channel, NULL);
  return ch ? ch->shared_secret : NULL;
}

int pusher__conn_bind(pusher__conn *c, const char *channel, const char *event, pusher_event_cb cb,
                      void *user_data, pusher_bind_id *id) {
  if (!c || !cb) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (channel && (!*channel || strlen(channel) > PUSHER__MAX_CHANNEL_NAME)) return PUSHER_ERR_BAD_CHANNEL_NAME;
  if (event && (!*event || strlen(event) > PUSHER__MAX_EVENT_NAME)) return PUSHER_ERR_BAD_EVENT_NAME;
  if (live_bindings(c) >= PUSHER__MAX_BINDINGS) return PUSHER_ERR_LIMIT;
  if (grow(c->m, (void **)&c->ebs, &c->aebs, c->nebs + 1, sizeof *c->ebs)) return PUSHER_ERR_NOMEM;
  ebind b = {++c->next_bind, BK_CHANNEL, NULL, NULL, cb, user_data, 0};
  if (channel && !(b.channel = pusher__strdup(c->m, channel))) return PUSHER_ERR_NOMEM;
  if (event && !(b.event = pusher__strdup(c->m, event))) {
    pusher__free(c->m, b.channel);
    return PUSHER_ERR_NOMEM;
  }
  c->ebs[c->nebs++] = b;
  if (id) *id = b.id;
  return 0;
}

int pusher__conn_unbind(pusher__conn *c, pusher_bind_id id) {
  if (!c || !id) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < c->nebs; i++) {
    if (c->ebs[i].id != id || c->ebs[i].dead) continue;
    c->ebs[i].dead = 1;
    c->need_sweep = 1;
    if (c->depth == 0) sweep(c);
    return 0;
  }
  return PUSHER_ERR_NOT_FOUND;
}

int pusher__conn_send_event(pusher__conn *c, const char *event, const char *channel,
                            const char *data_json, pusher__tstamp now) {
  if (!c || !event || !*event) return PUSHER_ERR_INVALID_ARGUMENT;
  if (strlen(event) > PUSHER__MAX_EVENT_NAME) return PUSHER_ERR_BAD_EVENT_NAME;
  if (c->dead || !c->established || c->state != PUSHER_STATE_CONNECTED) return PUSHER_ERR_INVALID_STATE;
  c->now = now;
  char *t;
  size_t n;
  int rc = pusher__proto_encode_event(c->m, event, channel, data_json, &t, &n);
  if (rc) return rc;
  return send_text(c, t, n);
}

/* The channel whose request (subscribe or re-key) is req_id. */
static chan *chan_by_req(const pusher__conn *c, uint64_t req_id, int *rekey) {
  for (size_t i = 0; i < c->nchans; i++) {
    if (c->chans[i]->auth_req == req_id) {
      *rekey = 0;
      return c->chans[i];
    }
    if (c->chans[i]->rekey_req == req_id) {
      *rekey = 1;
      return c->chans[i];
    }
  }
  return NULL;
}

static int auth_result(pusher__conn *c, chan *ch, int rekey, int err, int http_status, const char *message,
                       const char *auth, const char *channel_data, const char *shared_secret_b64) {
  if (rekey) {
    rekey_done(c, ch, err < 0 || !auth ? (err < 0 ? err : PUSHER_ERR_AUTH) : 0,
               message ? message : (err < 0 ? NULL : "no auth in the answer"), shared_secret_b64);
    return 0;
  }
  ch->auth_req = 0;
  ch->auth_deadline = PUSHER__NEVER;
  char name[PUSHER__MAX_CHANNEL_NAME + 1];
  snprintf(name, sizeof name, "%s", ch->name);
  if (err < 0 || !auth) {
    sub_error(c, name, "AuthError", message ? message : (auth ? pusher_strerror(err) : "no auth in the answer"),
              http_status);
    return 0;
  }
  char why[200];
  if (ch->kind == CK_ENCRYPTED) {
    uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
    char w2[160] = "";
    if (!shared_secret_b64 || pusher__crypto_key_from_b64(shared_secret_b64, key, w2, sizeof w2) != 0) {
      snprintf(why, sizeof why, "%s%s", shared_secret_b64 ? "invalid shared_secret: " : "no shared_secret in the auth reply",
               shared_secret_b64 ? w2 : "");
      sub_error(c, name, "AuthError", why, http_status);
      return 0;
    }
    memcpy(ch->key, key, sizeof key);
    ch->have_key = 1;
    sodium_memzero(key, sizeof key);
  }
  if (ch->kind == CK_PRESENCE) {
    int rc;
    if (channel_data) {
      rc = pusher__members_set_me(&ch->members, channel_data, strlen(channel_data), why, sizeof why);
    } else if (c->user_id[0]) { /* signed in: the server takes the user from the sign-in */
      return presence_subscribe_signed_in(c, ch, auth);
    } else if (signin_pending(c)) { /* as pusher-js: wait for signin_success */
      char *a2 = pusher__strdup(c->m, auth);
      if (!a2) {
        sub_error(c, name, "AuthError", "out of memory", 0);
        return PUSHER_ERR_NOMEM;
      }
      pusher__free(c->m, ch->wait_auth);
      ch->wait_auth = a2;
      return 0;
    } else {
      rc = PUSHER_ERR_PROTO;
      snprintf(why, sizeof why, "%s",
               c->signin_wanted ? "no channel_data in the auth reply of a presence channel, and the user is not signed in"
                                : "no channel_data in the auth reply of a presence channel (required unless the user "
                                  "signs in first: pusher_signin)");
    }
    if (rc) {
      char m2[260];
      snprintf(m2, sizeof m2, "%s%s", channel_data ? "invalid channel_data: " : "", why);
      sub_error(c, name, "AuthError", m2, http_status);
      return 0;
    }
  }
  if (shared_secret_b64) {
    char *s2 = pusher__strdup(c->m, shared_secret_b64);
    if (s2) {
      pusher__free(c->m, ch->shared_secret);
      ch->shared_secret = s2;
    }
  }
  char *t;
  size_t n;
  int rc = pusher__proto_encode_subscribe(c->m, ch->name, auth, channel_data, &t, &n);
  if (rc == 0) rc = send_text(c, t, n);
  if (rc == 0) {
    ch->sent = 1;
    ch->replied = 0;
  }
  return rc;
}

int pusher__conn_auth_result(pusher__conn *c, uint64_t req_id, int err, int http_status,
                             const char *message, const char *auth, const char *channel_data,
                             const char *shared_secret_b64, pusher__tstamp now) {
  if (!c || !req_id) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  int rekey = 0;
  chan *ch = chan_by_req(c, req_id, &rekey);
  if (!ch || !c->established || c->state != PUSHER_STATE_CONNECTED) return PUSHER_ERR_NOT_FOUND;
  enter(c);
  c->now = now;
  int rc = auth_result(c, ch, rekey, err, http_status, message, auth, channel_data, shared_secret_b64);
  leave(c);
  return rc;
}

void pusher__conn_set_user_auth_hook(pusher__conn *c, pusher__user_auth_hook hook) {
  if (c) c->user_hook = hook;
}

void pusher__conn_set_auth_timeout(pusher__conn *c, uint64_t ms) {
  if (c) c->auth_timeout_ms = ms;
}

static int user_auth_result(pusher__conn *c, int err, int http_status, const char *message, const char *auth,
                            const char *user_data) {
  c->user_req = 0;
  c->user_deadline = PUSHER__NEVER;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  if (err < 0 || !auth) {
    signin_error(c, message ? message : (auth ? pusher_strerror(err) : "no auth in the answer"), http_status);
    return 0;
  }
  if (user_data_id(user_data, id, sizeof id) != 0) {
    signin_error(c, "user_data is not a JSON object with a non-empty string id", http_status);
    return 0;
  }
  char *t;
  size_t n;
  int rc = pusher__proto_encode_signin(c->m, auth, user_data, &t, &n);
  if (rc == 0) rc = send_text(c, t, n);
  if (rc == 0) c->signin_sent = 1;
  else signin_error(c, "cannot send pusher:signin", 0);
  return rc;
}

int pusher__conn_user_auth_result(pusher__conn *c, uint64_t req_id, int err, int http_status,
                                  const char *message, const char *auth, const char *user_data,
                                  pusher__tstamp now) {
  if (!c || !req_id) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (req_id != c->user_req || !c->established || c->state != PUSHER_STATE_CONNECTED) return PUSHER_ERR_NOT_FOUND;
  enter(c);
  c->now = now;
  int rc = user_auth_result(c, err, http_status, message, auth, user_data);
  leave(c);
  return rc;
}

int pusher__conn_signin(pusher__conn *c, pusher__tstamp now) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  enter(c);
  c->now = now;
  c->signin_wanted = 1;
  request_signin(c);
  leave(c);
  return 0;
}

const char *pusher__conn_user_id(const pusher__conn *c) {
  return (c && c->established && c->user_id[0]) ? c->user_id : NULL;
}

static int bind_kind(pusher__conn *c, int kind, const char *event, pusher_event_cb cb, void *user_data,
                     pusher_bind_id *id) {
  if (!c || !cb) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (event && (!*event || strlen(event) > PUSHER__MAX_EVENT_NAME)) return PUSHER_ERR_BAD_EVENT_NAME;
  if (live_bindings(c) >= PUSHER__MAX_BINDINGS) return PUSHER_ERR_LIMIT;
  if (grow(c->m, (void **)&c->ebs, &c->aebs, c->nebs + 1, sizeof *c->ebs)) return PUSHER_ERR_NOMEM;
  ebind b = {++c->next_bind, kind, NULL, NULL, cb, user_data, 0};
  if (event && !(b.event = pusher__strdup(c->m, event))) return PUSHER_ERR_NOMEM;
  c->ebs[c->nebs++] = b;
  if (id) *id = b.id;
  return 0;
}

int pusher__conn_user_bind(pusher__conn *c, const char *event, pusher_event_cb cb, void *user_data,
                           pusher_bind_id *id) {
  return bind_kind(c, BK_USER, event, cb, user_data, id);
}

int pusher__conn_watchlist_bind(pusher__conn *c, const char *event, pusher_event_cb cb, void *user_data,
                                pusher_bind_id *id) {
  if (event && strcmp(event, "online") != 0 && strcmp(event, "offline") != 0) return PUSHER_ERR_INVALID_ARGUMENT;
  return bind_kind(c, BK_WATCHLIST, event, cb, user_data, id);
}

int pusher__conn_trigger(pusher__conn *c, const char *channel, const char *event, const char *data_json,
                         pusher__tstamp now) {
  if (!c || !channel || !event) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (strncmp(event, "client-", 7) != 0 || strlen(event) > PUSHER__MAX_EVENT_NAME) return PUSHER_ERR_BAD_EVENT_NAME;
  chan *ch = find_chan(c, channel, NULL);
  if (!ch) return PUSHER_ERR_NOT_FOUND;
  if (ch->kind != CK_PRIVATE && ch->kind != CK_PRESENCE) return PUSHER_ERR_UNSUPPORTED;
  if (!c->established || c->state != PUSHER_STATE_CONNECTED || !ch->subscribed) return PUSHER_ERR_INVALID_STATE;
  if (!data_json) data_json = "{}";
  size_t dl = strlen(data_json);
  json_t *chk = pusher__json_parse(data_json, dl);
  if (!chk) return PUSHER_ERR_INVALID_ARGUMENT;
  json_decref(chk);
  if (dl > CLIENT_EVENT_MAX_DATA) return PUSHER_ERR_TOO_LARGE;
  if (c->ntrig >= CLIENT_EVENT_RATE && now < c->trig[c->trig_head] + CLIENT_EVENT_WINDOW_MS)
    return PUSHER_ERR_RATE_LIMIT;
  c->now = now;
  char *t;
  size_t n;
  int rc = pusher__proto_encode_event(c->m, event, channel, data_json, &t, &n);
  if (rc) return rc;
  rc = send_text(c, t, n);
  if (rc) return rc;
  /* ring of the last CLIENT_EVENT_RATE send times; trig_head = oldest */
  if (c->ntrig < CLIENT_EVENT_RATE) {
    c->trig[(c->trig_head + c->ntrig) % CLIENT_EVENT_RATE] = now;
    c->ntrig++;
  } else {
    c->trig[c->trig_head] = now;
    c->trig_head = (c->trig_head + 1) % CLIENT_EVENT_RATE;
  }
  return 0;
}

int pusher__conn_channel_members(const pusher__conn *c, const char *channel, struct pusher_members **out) {
  if (!c || !channel || !out) return PUSHER_ERR_INVALID_ARGUMENT;
  chan *ch = find_chan(c, channel, NULL);
  if (!ch) return PUSHER_ERR_NOT_FOUND;
  if (ch->kind != CK_PRESENCE) return PUSHER_ERR_UNSUPPORTED;
  if (!ch->subscribed || !ch->members.loaded) return PUSHER_ERR_INVALID_STATE;
  return pusher__members_snapshot(&ch->members, c->m, out);
}

/* ------------------------------------------------------------------ transport */

pusher__io_req pusher__conn_io_want(pusher__conn *c) {
  pusher__io_req r;
  memset(&r, 0, sizeof r);
  if (!c || c->dead) return r;
  r = c->want;
  memset(&c->want, 0, sizeof c->want);
  return r;
}

void pusher__conn_io_opened(pusher__conn *c, uint64_t gen, pusher__tstamp now) {
  if (!c || c->dead || gen != c->gen || !c->live || c->opened) return;
  enter(c);
  c->now = now;
  c->opened = 1;
  retire_ws(c);
  if (c->ws) {
    c->recv_gen = gen;
    lose(c, A_BACKOFF, 0, PUSHER_ERR_NOMEM, "out of memory", now);
    leave(c);
    return;
  }
  pusher__ws_config cfg = {c->m, c->rand, c->rand_user, c->max_msg, c->max_out};
  pusher__ws_callbacks cb = {on_ws_open, on_ws_text, on_ws_close, on_ws_error};
  int rc = pusher__ws_client_new(&c->ws, &cfg, c->host_header, c->path, NULL, &cb, c);
  if (rc < 0) {
    c->ws = NULL;
    c->recv_gen = gen;
    lose(c, A_BACKOFF, 0, rc, "cannot start the WebSocket handshake", now);
  }
  leave(c);
}

void pusher__conn_io_failed(pusher__conn *c, uint64_t gen, int err, const char *detail, pusher__tstamp now) {
  if (!c || c->dead || gen != c->gen || !c->live) return;
  enter(c);
  c->now = now;
  lose(c, A_BACKOFF, 0, err ? err : PUSHER_ERR_IO, detail, now);
  leave(c);
}

void pusher__conn_io_recv(pusher__conn *c, uint64_t gen, const uint8_t *in, size_t len, pusher__tstamp now) {
  if (!c || c->dead || gen != c->gen || !c->live || !c->ws || !len) return;
  enter(c);
  c->now = now;
  c->recv_gen = gen;
  (void)pusher__ws_recv(c->ws, in, len);
  leave(c);
}

size_t pusher__conn_io_pending(pusher__conn *c, const uint8_t **out) {
  if (!c || c->dead || !c->ws) {
    if (out) *out = NULL;
    return 0;
  }
  return pusher__ws_pending(c->ws, out);
}

void pusher__conn_io_consume(pusher__conn *c, size_t n) {
  if (c && !c->dead && c->ws) pusher__ws_consume(c->ws, n);
}

/* ------------------------------------------------------------------ time */

pusher__tstamp pusher__conn_expiry(const pusher__conn *c) {
  if (!c || c->dead) return PUSHER__NEVER;
  pusher__tstamp t = PUSHER__NEVER;
  if ((c->state == PUSHER_STATE_CONNECTING || c->state == PUSHER_STATE_UNAVAILABLE) && c->retry_at < t)
    t = c->retry_at;
  if (c->state == PUSHER_STATE_CONNECTING && c->unavailable_at < t) t = c->unavailable_at;
  if (c->live && !c->established && c->attempt_deadline < t) t = c->attempt_deadline;
  if (c->live && c->established) {
    if (c->activity_at < t) t = c->activity_at;
    if (c->pong_at < t) t = c->pong_at;
    if (c->user_req && c->user_deadline < t) t = c->user_deadline;
    for (size_t i = 0; i < c->nchans; i++) {
      const chan *ch = c->chans[i];
      if (ch->auth_req && ch->auth_deadline < t) t = ch->auth_deadline;
      if (ch->rekey_req && ch->rekey_deadline < t) t = ch->rekey_deadline;
    }
  }
  return t;
}

void pusher__conn_handle_expiry(pusher__conn *c, pusher__tstamp now) {
  if (!c || c->dead) return;
  enter(c);
  c->now = now;
  for (int round = 0; round < 8 && !c->dead; round++) {
    if (c->state == PUSHER_STATE_CONNECTING && c->unavailable_at <= now) {
      c->unavailable_at = PUSHER__NEVER;
      set_state(c, PUSHER_STATE_UNAVAILABLE);
      continue;
    }
    if ((c->state == PUSHER_STATE_CONNECTING || c->state == PUSHER_STATE_UNAVAILABLE) && c->retry_at <= now) {
      c->retry_at = PUSHER__NEVER;
      start_attempt(c, now);
      continue;
    }
    if (c->live && !c->established && c->attempt_deadline <= now) {
      c->attempt_deadline = PUSHER__NEVER;
      c->recv_gen = c->gen;
      lose(c, A_BACKOFF, 0, PUSHER_ERR_TIMEOUT, "connection attempt timed out", now);
      continue;
    }
    if (c->live && c->established && c->pong_at <= now) {
      c->pong_at = PUSHER__NEVER;
      lose(c, A_NOW, 0, PUSHER_ERR_TIMEOUT, "no pusher:pong within the pong timeout", now);
      continue;
    }
    if (c->live && c->established && c->activity_at <= now) {
      send_ping(c, now);
      continue;
    }
    break;
  }
  /* answers to auth requests that did not come in time */
  for (int guard = 0; guard < 10000 && !c->dead && c->live && c->established; guard++) {
    if (c->user_req && c->user_deadline <= now) {
      user_auth_result(c, PUSHER_ERR_TIMEOUT, 0, "user authentication timed out", NULL, NULL);
      continue;
    }
    chan *late = NULL;
    int rekey = 0;
    for (size_t i = 0; i < c->nchans && !late; i++) {
      chan *ch = c->chans[i];
      if (ch->auth_req && ch->auth_deadline <= now) late = ch;
      else if (ch->rekey_req && ch->rekey_deadline <= now) late = ch, rekey = 1;
    }
    if (!late) break;
    auth_result(c, late, rekey, PUSHER_ERR_TIMEOUT, 0, "authorization timed out", NULL, NULL, NULL);
  }
  leave(c);
}
