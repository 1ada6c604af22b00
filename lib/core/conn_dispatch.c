/* Connection engine: bindings, the delivery of events to the application's
 * callbacks, and the routing of each incoming message to its handler. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn_internal.h"

/* ------------------------------------------------------------------ binding index
 *
 * Delivering an event used to walk every binding.  The index finds the
 * candidates directly: the bindings that name an event are chained by key
 * (kind, channel or NULL, event) in a hash table, and those that take every
 * event (event NULL) form one more chain.  With at most BIX_LINEAR bindings
 * a delivery still tests each in turn, and the index is built only when a
 * binding beyond those is made (then kept up to date, also when sweeps
 * bring the count down again).  Each chain lists its bindings in
 * binding order, so an event merges at most three chains (its channel and
 * name, every channel with its name, and the every-event one) by position
 * in ebs and the callbacks run in binding order, as before.
 *
 * The chains hold positions in ebs, which only sweep() changes, and sweep()
 * runs only when no dispatch is under way (depth 0), then rebuilds the
 * index.  Inside a callback: unbinding marks the binding dead (the walk
 * skips it); binding appends at the end of ebs and of its chain, beyond the
 * position the walk stops at (bindings made during a delivery do not hear
 * it, as before); growing the table rebuilds the chains, which gives the
 * same links (they depend only on the order of ebs), so a walk holding a
 * position stays valid; it re-reads the link after every callback. */

#define BIX_MIN 8
#define BIX_LINEAR 8 /* up to this many bindings, a delivery tests each in turn */

static uint32_t fnv(uint32_t h, const char *s) {
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

/* The hash of a key from the hashes of its event name and channel name
 * (hash_name() of each; channel NULL has its own value). */
static uint32_t key_hash(int kind, uint32_t hchan, uint32_t hev) {
  uint32_t h = (hchan ^ (uint32_t)kind * 0x9e3779b9u) * 0x85ebca6bu;
  h ^= hev + 0x7f4a7c15u + (h << 6) + (h >> 2);
  return h ^ (h >> 16);
}

static uint32_t hash_name(const char *s) { return s ? fnv(2166136261u, s) : 0x6a09e667u; }

static int same_key(const ebind *b, int kind, const char *channel, const char *event) {
  if (b->kind != kind || strcmp(b->event, event) != 0) return 0;
  if (!b->channel || !channel) return !b->channel && !channel;
  return strcmp(b->channel, channel) == 0;
}

/* The slot of the key: its chain, or the empty slot where it would go. */
static bslot *bix_probe(const pusher__conn *c, uint32_t h, int kind, const char *channel, const char *event) {
  size_t mask = c->bix_cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    bslot *s = &c->bix[i];
    if (!s->head) return s;
    const ebind *b = &c->ebs[s->head - 1];
    if (b->hash == h && same_key(b, kind, channel, event)) return s;
  }
}

/* The first binding (position + 1) of the key's chain, 0 if none. */
static uint32_t bix_find(const pusher__conn *c, int kind, const char *channel, uint32_t hchan,
                         const char *event, uint32_t hev) {
  if (!c->bix_used) return 0;
  return bix_probe(c, key_hash(kind, hchan, hev), kind, channel, event)->head;
}

/* Append ebs[i] to its chain (the table has room). */
static void bix_link(pusher__conn *c, size_t i) {
  ebind *b = &c->ebs[i];
  uint32_t pos = (uint32_t)i + 1;
  b->next = 0;
  if (!b->event) {
    if (c->any_tail) c->ebs[c->any_tail - 1].next = pos;
    else c->any_head = pos;
    c->any_tail = pos;
    return;
  }
  bslot *s = bix_probe(c, b->hash, b->kind, b->channel, b->event);
  if (!s->head) {
    s->head = pos;
    c->bix_used++;
  } else {
    c->ebs[s->tail - 1].next = pos;
  }
  s->tail = pos;
}

/* Rebuild every chain from ebs, in a table of cap slots (a new one when
 * cap differs from the current size). */
static int bix_rebuild(pusher__conn *c, uint32_t cap) {
  if (cap != c->bix_cap) {
    bslot *t = pusher__calloc(c->m, cap, sizeof *t);
    if (!t) return PUSHER_ERR_NOMEM;
    pusher__free(c->m, c->bix);
    c->bix = t;
    c->bix_cap = cap;
  } else if (cap) {
    memset(c->bix, 0, cap * sizeof *c->bix);
  }
  c->bix_used = 0;
  c->any_head = c->any_tail = 0;
  for (size_t i = 0; i < c->nebs; i++) bix_link(c, i);
  return 0;
}

void sweep(pusher__conn *c) {
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
  if (c->bix) (void)bix_rebuild(c, c->bix_cap); /* same size: cannot fail */
}

flow emit_conn(pusher__conn *c, const pusher_connection_event *ev) {
  if (c->dead) return STOP;
  uint64_t k = course(c);
  size_t n = c->ncbs;
  for (size_t i = 0; i < n && i < c->ncbs; i++) {
    if (c->cbs[i].dead) continue;
    if (c->cbs[i].event && strcmp(c->cbs[i].event, ev->name) != 0) continue;
    pusher_connection_cb cb = c->cbs[i].cb;
    void *ud = c->cbs[i].ud;
    cb((pusher_client *)c->owner, ev, ud);
    if (c->dead) return STOP;
  }
  return still(c, k);
}

/* The next binding of a delivery: the earliest of the (up to three) chain
 * positions, each advanced past the one returned; 0 once none is left below
 * the limit (bindings made during the delivery lie beyond it). */
static uint32_t next_of(const pusher__conn *c, uint32_t cur[3], uint32_t limit) {
  int k = -1;
  for (int j = 0; j < 3; j++)
    if (cur[j] && cur[j] <= limit && (k < 0 || cur[j] < cur[k])) k = j;
  if (k < 0) return 0;
  uint32_t pos = cur[k];
  cur[k] = c->ebs[pos - 1].next;
  return pos;
}

/* Deliver ev to the bindings of kind among: the chain of (channel, event)
 * when chan_ok, the chain of (NULL, event), and the every-event chain
 * (whose bindings naming a channel hear it only when chan_ok and it is
 * theirs). */
static flow deliver(pusher__conn *c, int kind, const pusher_event *ev, int chan_ok) {
  uint64_t k = course(c);
  if (c->nebs <= BIX_LINEAR) { /* (beyond it the index exists: add_ebind) */
    /* a few bindings: testing each costs less than hashing two names */
    size_t n = c->nebs;
    for (size_t i = 0; i < n; i++) {
      const ebind *b = &c->ebs[i];
      if (b->dead || b->kind != kind) continue;
      if (b->channel && (!chan_ok || strcmp(b->channel, ev->channel) != 0)) continue;
      if (b->event && strcmp(b->event, ev->event) != 0) continue;
      pusher_event_cb cb = b->cb;
      void *ud = b->ud;
      cb((pusher_client *)c->owner, ev, ud);
      if (c->dead) return STOP;
    }
    return still(c, k);
  }
  uint32_t hev = hash_name(ev->event);
  uint32_t cur[3] = {
      chan_ok ? bix_find(c, kind, ev->channel, hash_name(ev->channel), ev->event, hev) : 0,
      bix_find(c, kind, NULL, hash_name(NULL), ev->event, hev),
      c->any_head,
  };
  uint32_t limit = (uint32_t)c->nebs;
  for (uint32_t pos; (pos = next_of(c, cur, limit)) != 0;) {
    const ebind *b = &c->ebs[pos - 1];
    if (b->dead || b->kind != kind) continue;
    if (!b->event && b->channel && (!chan_ok || strcmp(b->channel, ev->channel) != 0)) continue;
    pusher_event_cb cb = b->cb;
    void *ud = b->ud;
    cb((pusher_client *)c->owner, ev, ud);
    if (c->dead) return STOP;
  }
  return still(c, k);
}

/* force: the channel's bindings hear it even if it has left the table
 * (reports about a channel that was just unsubscribed). */
flow dispatch_ex(pusher__conn *c, const char *channel, const char *event, const char *data,
                 size_t data_len, int is_json, const char *user_id, int force) {
  if (c->dead) return STOP;
  pusher_event ev = {channel, event, data, data_len, is_json, user_id};
  /* As pusher-js: channel bindings hear their channel only while it is in
   * the table (e.g. not events still in flight after unsubscribe); global
   * bindings hear everything. */
  int known = channel && (force || find_chan(c, channel, NULL) != NULL);
  return deliver(c, BK_CHANNEL, &ev, known);
}

flow dispatch(pusher__conn *c, const char *channel, const char *event, const char *data,
              size_t data_len, int is_json, const char *user_id) {
  return dispatch_ex(c, channel, event, data, data_len, is_json, user_id, 0);
}

/* Deliver to the user (BK_USER) or watchlist (BK_WATCHLIST) bindings
 * (they name no channel). */
flow dispatch_kind(pusher__conn *c, int kind, const char *channel, const char *event,
                   const char *data, size_t data_len, int is_json) {
  if (c->dead) return STOP;
  pusher_event ev = {channel, event, data, data_len, is_json, NULL};
  return deliver(c, kind, &ev, 0);
}

/* Dispatch the JSON value v (consumed) as the data of a channel event. */
flow dispatch_json(pusher__conn *c, const char *channel, const char *event, json_t *v) {
  char *text;
  size_t n;
  if (pusher__proto_dump(c->m, v, &text, &n) != 0) return error_event(c, 0, PUSHER_ERR_NOMEM, "out of memory", 0);
  flow f = dispatch(c, channel, event, text, n, 1, NULL);
  pusher__free(c->m, text);
  return f;
}

/* ------------------------------------------------------------------ message routing */

/* pusher:error on an open connection.  A connection-level one while our
 * pusher:signin is unanswered (soketi/pusherd: 4009 then a close) is the
 * sign-in's failure; 4302 (a truncated watchlist) accompanies a sign-in that
 * succeeds.  One naming a channel whose subscription is pending fails it
 * (Pusher and pusherd refuse a bad signature that way). */
static flow msg_error(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  json_t *o = pusher__msg_data_object(msg);
  int code = json_code(o);
  char m2[300];
  snprintf(m2, sizeof m2, "%s", json_message(o, msg->data && !msg->data_is_json ? msg->data : "pusher:error"));
  json_decref(o);
  int signin_failed = !msg->channel && c->signin_sent && !c->user_id[0] && code != 4302;
  if (signin_failed) c->signin_sent = 0;
  if (error_event(c, code, PUSHER_ERR_REMOTE, m2, 0)) return STOP;
  if (signin_failed && signin_error_typed(c, "ServerError", m2, code)) return STOP;
  if (!msg->channel) return GO;
  if (dispatch(c, msg->channel, "pusher:error", msg->data, msg->data_len, msg->data_is_json, NULL)) return STOP;
  chan *ch = find_chan(c, msg->channel, NULL);
  if (ch && ch->sent && !ch->subscribed) {
    ch->replied = 1;
    return sub_error(c, msg->channel, "ServerError", m2, code);
  }
  if (!ch) settle_gone(c, msg->channel, 0);
  return GO;
}

static flow msg_ping(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)msg;
  if (++c->pusher_pings > PING_RATE) {
    char m2[100];
    snprintf(m2, sizeof m2, "pusher:ping flood: more than %u in a second", PING_RATE);
    return lose(c, A_BACKOFF, 0, PUSHER_ERR_PROTO, m2, now);
  }
  char *t;
  size_t n;
  if (pusher__proto_encode_pong(c->m, &t, &n) == 0) (void)send_text(c, t, n);
  return GO;
}

static flow msg_pong(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)c, (void)msg, (void)now; /* the activity is recorded for every message */
  return GO;
}

static flow msg_established_again(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)msg, (void)now;
  return error_event(c, 0, PUSHER_ERR_PROTO, "unexpected pusher:connection_established on an open connection", 0);
}

static flow msg_subscription_succeeded(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  chan *ch = msg->channel ? find_chan(c, msg->channel, NULL) : NULL;
  if (!msg->channel)
    return error_event(c, 0, PUSHER_ERR_PROTO, "pusher_internal:subscription_succeeded without a channel", 0);
  if (!ch) {
    settle_gone(c, msg->channel, 1); /* else: for a channel long gone, ignored */
    return GO;
  }
  ch->replied = 1;
  if (ch->kind == PUSHER__CHAN_PRESENCE) return presence_succeeded(c, ch, msg);
  ch->subscribed = 1;
  return dispatch(c, msg->channel, "pusher:subscription_succeeded", msg->data, msg->data_len, msg->data_is_json,
                  NULL);
}

static flow msg_member(pusher__conn *c, const pusher__msg *msg, int added) {
  chan *ch = msg->channel ? find_chan(c, msg->channel, NULL) : NULL;
  return ch && ch->kind == PUSHER__CHAN_PRESENCE ? presence_change(c, ch, msg, added) : GO;
}

static flow msg_member_added(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  return msg_member(c, msg, 1);
}

static flow msg_member_removed(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  return msg_member(c, msg, 0);
}

/* pusher_internal:subscription_count => the channel event pusher:subscription_count */
static flow msg_subscription_count(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  if (!msg->channel || !find_chan(c, msg->channel, NULL)) return GO;
  return dispatch(c, msg->channel, "pusher:subscription_count", msg->data, msg->data_len, msg->data_is_json, NULL);
}

/* Connection-level (the user's watchlist): surfaced as pusher:watchlist_events
 * to the global bindings, then as online/offline to the watchlist bindings. */
static flow msg_watchlist(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  if (dispatch(c, NULL, "pusher:watchlist_events", msg->data, msg->data_len, msg->data_is_json, NULL)) return STOP;
  return handle_watchlist(c, msg);
}

static flow msg_signin_success(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  (void)now;
  return handle_signin_success(c, msg);
}

/* Every other event: a channel event (decrypted on private-encrypted
 * channels), or an event of the signed-in user's server-to-user channel. */
static flow msg_event(pusher__conn *c, const pusher__msg *msg) {
  const char *ev = msg->event;
  chan *ch = msg->channel ? find_chan(c, msg->channel, NULL) : NULL;
  if (strcmp(ev, "pusher:subscription_error") == 0 && msg->channel) {
    if (ch) ch->replied = 1;
    else if (settle_gone(c, msg->channel, 0)) return GO; /* answer to a subscription given up */
  }
  if (ch && ch->kind == PUSHER__CHAN_ENCRYPTED && strncmp(ev, "pusher:", 7) != 0) return encrypted_event(c, ch, msg);
  if (!ch && msg->channel && c->user_chan[0] && strcmp(msg->channel, c->user_chan) == 0) {
    if (dispatch(c, msg->channel, ev, msg->data, msg->data_len, msg->data_is_json, msg->user_id)) return STOP;
    if (strncmp(ev, "pusher:", 7) == 0) return GO;
    return dispatch_kind(c, BK_USER, msg->channel, ev, msg->data, msg->data_len, msg->data_is_json);
  }
  /* ch was looked up above and the table has not changed since: dispatch
   * need not search it again (force only skips that search). */
  return dispatch_ex(c, msg->channel, ev, msg->data, msg->data_len, msg->data_is_json, msg->user_id, ch != NULL);
}

typedef flow (*msg_handler)(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now);

/* The protocol's own messages on an open connection, sorted by name for
 * bsearch.  Anything else named pusher_internal:* is reported and ignored;
 * other events (pusher:* included) are channel events. */
static const struct route {
  const char *event;
  msg_handler fn;
} routes[] = {
    {"pusher:connection_established", msg_established_again},
    {"pusher:error", msg_error},
    {"pusher:ping", msg_ping},
    {"pusher:pong", msg_pong},
    {"pusher:signin_success", msg_signin_success},
    {"pusher_internal:member_added", msg_member_added},
    {"pusher_internal:member_removed", msg_member_removed},
    {"pusher_internal:subscription_count", msg_subscription_count},
    {"pusher_internal:subscription_succeeded", msg_subscription_succeeded},
    {"pusher_internal:watchlist_events", msg_watchlist},
};

static int route_cmp(const void *key, const void *elem) {
  return strcmp(key, ((const struct route *)elem)->event);
}

static const struct route *find_route(const char *event) {
  if (strncmp(event, "pusher", 6) != 0) return NULL; /* the common case: an application event */
  return bsearch(event, routes, sizeof routes / sizeof routes[0], sizeof routes[0], route_cmp);
}

/* Before pusher:connection_established: that message, or a refusal. */
static flow handshake_message(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  const char *ev = msg->event;
  if (strcmp(ev, "pusher:connection_established") == 0) return handle_established(c, msg, now);
  char m2[300];
  if (strcmp(ev, "pusher:error") == 0) {
    json_t *o = pusher__msg_data_object(msg);
    int code = json_code(o);
    snprintf(m2, sizeof m2, "%s", json_message(o, msg->data && !msg->data_is_json ? msg->data : "pusher:error"));
    json_decref(o);
    return lose(c, code ? classify(code) : A_BACKOFF, code, code ? PUSHER_ERR_CLOSED : PUSHER_ERR_REMOTE, m2, now);
  }
  snprintf(m2, sizeof m2, "invalid handshake: unexpected first message \"%s\"", ev);
  return lose(c, A_BACKOFF, 0, PUSHER_ERR_PROTO, m2, now);
}

/* The largest scratch a connection keeps for decoding (see rx in
 * conn_internal.h): bigger messages are decoded with allocations. */
#define RX_SCRATCH_MAX 2048

/* The scratch for a message of len bytes, or NULL (then the decoder
 * allocates).  Grows in powers of two from 256 bytes. */
static char *rx_scratch(pusher__conn *c, size_t len) {
  if (c->rx_busy || len > RX_SCRATCH_MAX - PUSHER__DECODE_SLACK) return NULL;
  size_t need = len + PUSHER__DECODE_SLACK;
  if (need <= c->rx_cap) return c->rx;
  size_t cap = 256;
  while (cap < need) cap *= 2;
  char *b = pusher__malloc(c->m, cap);
  if (!b) return NULL;
  pusher__free(c->m, c->rx);
  c->rx = b;
  c->rx_cap = cap;
  return b;
}

flow handle_message(pusher__conn *c, const uint8_t *text, size_t len, pusher__tstamp now) {
  pusher__msg msg;
  char why[200];
  char *scratch = rx_scratch(c, len);
  int rc = pusher__proto_decode_buf(c->m, (const char *)text, len, &msg, why, sizeof why, scratch,
                                    scratch ? c->rx_cap : 0);
  int busy = msg.borrowed;
  if (busy) c->rx_busy = 1;
  if (c->established) {
    c->activity_at = add_ms(now, c->activity_ms);
    c->pong_at = PUSHER__NEVER;
  }
  if (rc < 0) {
    if (c->established) return error_event(c, 0, rc, why, 0);
    char m2[260];
    snprintf(m2, sizeof m2, "invalid handshake: %s", why);
    return lose(c, A_BACKOFF, 0, rc, m2, now);
  }
  flow f;
  if (!c->established) {
    f = handshake_message(c, &msg, now);
  } else {
    const struct route *r = find_route(msg.event);
    if (r) {
      f = r->fn(c, &msg, now);
    } else if (strncmp(msg.event, "pusher_internal:", 16) == 0) {
      char m2[300];
      snprintf(m2, sizeof m2, "unknown internal event \"%s\" ignored", msg.event);
      f = error_event(c, 0, PUSHER_ERR_PROTO, m2, 0);
    } else {
      f = msg_event(c, &msg);
    }
  }
  pusher__msg_free(c->m, &msg);
  if (busy) c->rx_busy = 0;
  return f;
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

/* Unbinding marks the entry dead; sweep() removes it once no callback is
 * running (a binding may be removed from inside its own callback). */
static int unbound(pusher__conn *c, int *dead) {
  *dead = 1;
  c->need_sweep = 1;
  if (c->depth == 0) sweep(c);
  return 0;
}

int pusher__conn_connection_unbind(pusher__conn *c, pusher_bind_id id) {
  if (!c || !id) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < c->ncbs; i++)
    if (c->cbs[i].id == id && !c->cbs[i].dead) return unbound(c, &c->cbs[i].dead);
  return PUSHER_ERR_NOT_FOUND;
}

/* One event binding of any kind (channel ones may name a channel; NULL
 * channel and event mean "all"). */
static int add_ebind(pusher__conn *c, int kind, const char *channel, const char *event,
                     pusher_event_cb cb, void *user_data, pusher_bind_id *id) {
  if (!c || !cb) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (channel && (!*channel || strlen(channel) > PUSHER__MAX_CHANNEL_NAME)) return PUSHER_ERR_BAD_CHANNEL_NAME;
  if (event && (!*event || strlen(event) > PUSHER__MAX_EVENT_NAME)) return PUSHER_ERR_BAD_EVENT_NAME;
  if (live_bindings(c) >= PUSHER__MAX_BINDINGS) return PUSHER_ERR_LIMIT;
  if (grow(c->m, (void **)&c->ebs, &c->aebs, c->nebs + 1, sizeof *c->ebs)) return PUSHER_ERR_NOMEM;
  /* The index exists from the (BIX_LINEAR+1)-th binding on (deliver()
   * tests fewer in turn, and most clients bind a few: they pay nothing for
   * the table); then it keeps room for one more chain (load at most 1/2). */
  if (c->nebs + 1 > BIX_LINEAR && (!c->bix || (event && (c->bix_used + 1) * 2 > c->bix_cap))) {
    uint32_t cap = BIX_MIN; /* first built: room for as many chains as bindings */
    if (c->bix) cap = c->bix_cap * 2;
    else
      while (cap < 2 * (c->nebs + 1)) cap *= 2;
    if (bix_rebuild(c, cap) < 0) return PUSHER_ERR_NOMEM;
  }
  ebind b = {++c->next_bind, kind, 0, NULL, NULL, cb, user_data, 0, 0};
  if (channel && !(b.channel = pusher__strdup(c->m, channel))) return PUSHER_ERR_NOMEM;
  if (event && !(b.event = pusher__strdup(c->m, event))) {
    pusher__free(c->m, b.channel);
    return PUSHER_ERR_NOMEM;
  }
  if (event) b.hash = key_hash(kind, hash_name(channel), hash_name(event));
  c->ebs[c->nebs++] = b;
  if (c->bix) bix_link(c, c->nebs - 1);
  if (id) *id = b.id;
  return 0;
}

int pusher__conn_bind(pusher__conn *c, const char *channel, const char *event, pusher_event_cb cb,
                      void *user_data, pusher_bind_id *id) {
  return add_ebind(c, BK_CHANNEL, channel, event, cb, user_data, id);
}

int pusher__conn_unbind(pusher__conn *c, pusher_bind_id id) {
  if (!c || !id) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < c->nebs; i++)
    if (c->ebs[i].id == id && !c->ebs[i].dead) return unbound(c, &c->ebs[i].dead);
  return PUSHER_ERR_NOT_FOUND;
}

int pusher__conn_user_bind(pusher__conn *c, const char *event, pusher_event_cb cb, void *user_data,
                           pusher_bind_id *id) {
  return add_ebind(c, BK_USER, NULL, event, cb, user_data, id);
}

int pusher__conn_watchlist_bind(pusher__conn *c, const char *event, pusher_event_cb cb, void *user_data,
                                pusher_bind_id *id) {
  if (event && strcmp(event, "online") != 0 && strcmp(event, "offline") != 0) return PUSHER_ERR_INVALID_ARGUMENT;
  return add_ebind(c, BK_WATCHLIST, NULL, event, cb, user_data, id);
}
