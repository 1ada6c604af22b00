/* Connection engine: bindings, the delivery of events to the application's
 * callbacks, and the routing of each incoming message to its handler. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/conn_internal.h"

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
}

void emit_conn(pusher__conn *c, const pusher_connection_event *ev) {
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

/* force: the channel's bindings hear it even if it has left the table
 * (reports about a channel that was just unsubscribed). */
void dispatch_ex(pusher__conn *c, const char *channel, const char *event, const char *data,
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

void dispatch(pusher__conn *c, const char *channel, const char *event, const char *data,
                     size_t data_len, int is_json, const char *user_id) {
  dispatch_ex(c, channel, event, data, data_len, is_json, user_id, 0);
}

/* Deliver to the user (BK_USER) or watchlist (BK_WATCHLIST) bindings. */
void dispatch_kind(pusher__conn *c, int kind, const char *channel, const char *event,
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
void dispatch_json(pusher__conn *c, const char *channel, const char *event, json_t *v) {
  char *text;
  size_t n;
  if (pusher__proto_dump(c->m, v, &text, &n) != 0) {
    error_event(c, 0, PUSHER_ERR_NOMEM, "out of memory", 0);
    return;
  }
  dispatch(c, channel, event, text, n, 1, NULL);
  pusher__free(c->m, text);
}

void handle_message(pusher__conn *c, const uint8_t *text, size_t len, pusher__tstamp now) {
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
      if (ch && ch->sent && !ch->subscribed) sub_error(c, msg.channel, "ServerError", m2, code);
    }
  } else if (strcmp(ev, "pusher:connection_established") == 0) {
    error_event(c, 0, PUSHER_ERR_PROTO, "unexpected pusher:connection_established on an open connection", 0);
  } else if (strcmp(ev, "pusher_internal:subscription_succeeded") == 0) {
    chan *ch = msg.channel ? find_chan(c, msg.channel, NULL) : NULL;
    if (!msg.channel) {
      error_event(c, 0, PUSHER_ERR_PROTO, "pusher_internal:subscription_succeeded without a channel", 0);
    } else if (ch && ch->kind == CK_PRESENCE) {
      presence_succeeded(c, ch, &msg);
    } else if (ch) {
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
  } else {
    chan *ch = msg.channel ? find_chan(c, msg.channel, NULL) : NULL;
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
