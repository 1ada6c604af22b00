/* Connection engine: the channel table, subscriptions and their
 * authorization (custom authorizer or auth endpoint through the runtime's
 * hooks), and client events with their limits. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/conn_internal.h"

chan *find_chan(const pusher__conn *c, const char *name, size_t *idx) {
  for (size_t i = 0; i < c->nchans; i++)
    if (strcmp(c->chans[i]->name, name) == 0) {
      if (idx) *idx = i;
      return c->chans[i];
    }
  return NULL;
}

void free_chan(pusher__conn *c, chan *ch) {
  clear_pending(c, ch);
  pusher__free(c->m, ch->wait_auth);
  pusher__members_free(&ch->members);
  sodium_memzero(ch->key, sizeof ch->key);
  pusher__free(c->m, ch->name);
  pusher__free(c->m, ch->shared_secret);
  pusher__free(c->m, ch);
}

/* Channel event "pusher:subscription_error" {"type":..,"error":..,"status":..}. */
flow sub_error(pusher__conn *c, const char *channel, const char *type, const char *msg, int status) {
  char *text;
  size_t n;
  if (pusher__proto_encode_subscription_error(c->m, type, msg, status, &text, &n) != 0) return GO;
  flow f = dispatch(c, channel, "pusher:subscription_error", text, n, 1, NULL);
  pusher__free(c->m, text);
  return f;
}

static size_t gone_index(const pusher__conn *c, const char *name) {
  for (size_t i = 0; i < c->ngone; i++)
    if (strcmp(c->gone[i]->name, name) == 0) return i;
  return SIZE_MAX;
}

/* The server answered a pusher:subscribe of `name`.  When that channel was
 * unsubscribed while the answer was on its way (c->gone), settle it: after
 * a success its pusher:unsubscribe goes out now, after a failure there is
 * nothing to undo.  Returns 1 when the answer was for such a channel
 * (nobody else is to see it).  Runs no callback. */
int settle_gone(pusher__conn *c, const char *name, int succeeded) {
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

/* pusher:subscribe for ch on this connection, or its authorization first
 * (the runtime's hook only records the request: no callback runs there). */
static FLOW_CHECK flow send_subscribe(pusher__conn *c, chan *ch) {
  ch->done_gen = c->gen;
  if (pusher__chan_kind_needs_auth(ch->kind)) {
    if (!c->hooks.request_channel_auth)
      return sub_error(c, ch->name, "AuthError", "no channel authorizer is configured", 0);
    ch->auth_req = ++c->next_req;
    ch->auth_deadline = c->auth_timeout_ms ? add_ms(c->now, c->auth_timeout_ms) : PUSHER__NEVER;
    c->hooks.request_channel_auth(c, ch->name, c->socket_id, ch->auth_req, c->hook_user);
    return GO;
  }
  char *t;
  size_t n;
  int rc = pusher__proto_encode_subscribe(c->m, ch->name, "", NULL, &t, &n);
  if (rc == 0) rc = send_text(c, t, n);
  if (rc != 0) return error_event(c, 0, rc, "cannot queue pusher:subscribe", 0);
  ch->sent = 1;
  ch->replied = 0;
  return GO;
}

flow subscribe_all(pusher__conn *c) {
  for (;;) {
    chan *ch = NULL;
    for (size_t i = 0; i < c->nchans; i++)
      if (c->chans[i]->done_gen != c->gen) {
        ch = c->chans[i];
        break;
      }
    if (!ch) return GO;
    if (send_subscribe(c, ch) || !c->established) return STOP;
  }
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
  ch->kind = pusher__chan_kind_of(channel);
  ch->auth_deadline = ch->rekey_deadline = PUSHER__NEVER;
  pusher__members_init(&ch->members, c->m);
  c->chans[c->nchans++] = ch;
  if (c->established && c->state == PUSHER_STATE_CONNECTED) {
    enter(c);
    c->now = now;
    finish(send_subscribe(c, ch));
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

/* The answer to ch's authorization request (rekey: to its re-authorization
 * after a MAC failure); *rc: what pusher__conn_auth_result returns. */
flow auth_result(pusher__conn *c, chan *ch, int rekey, int err, int http_status, const char *message,
                 const char *auth, const char *channel_data, const char *shared_secret_b64, int *result) {
  *result = 0;
  if (rekey)
    return rekey_done(c, ch, err < 0 || !auth ? (err < 0 ? err : PUSHER_ERR_AUTH) : 0,
                      message ? message : (err < 0 ? NULL : "no auth in the answer"), shared_secret_b64);
  ch->auth_req = 0;
  ch->auth_deadline = PUSHER__NEVER;
  char name[PUSHER__MAX_CHANNEL_NAME + 1];
  snprintf(name, sizeof name, "%s", ch->name);
  if (err < 0 || !auth) {
    return sub_error(c, name, "AuthError",
                     message ? message : (auth ? pusher_strerror(err) : "no auth in the answer"), http_status);
  }
  char why[200];
  if (ch->kind == PUSHER__CHAN_ENCRYPTED) {
    uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
    char w2[160] = "";
    if (!shared_secret_b64 || pusher__crypto_key_from_b64(shared_secret_b64, key, w2, sizeof w2) != 0) {
      snprintf(why, sizeof why, "%s%s", shared_secret_b64 ? "invalid shared_secret: " : "no shared_secret in the auth reply",
               shared_secret_b64 ? w2 : "");
      return sub_error(c, name, "AuthError", why, http_status);
    }
    memcpy(ch->key, key, sizeof key);
    ch->have_key = 1;
    sodium_memzero(key, sizeof key);
  }
  if (ch->kind == PUSHER__CHAN_PRESENCE) {
    int rc;
    if (channel_data) {
      rc = pusher__members_set_me(&ch->members, channel_data, strlen(channel_data), why, sizeof why);
    } else if (c->user_id[0]) { /* signed in: the server takes the user from the sign-in */
      return presence_subscribe_signed_in(c, ch, auth, result);
    } else if (signin_pending(c)) { /* as pusher-js: wait for signin_success */
      char *a2 = pusher__strdup(c->m, auth);
      if (!a2) {
        *result = PUSHER_ERR_NOMEM;
        return sub_error(c, name, "AuthError", "out of memory", 0);
      }
      pusher__free(c->m, ch->wait_auth);
      ch->wait_auth = a2;
      return GO;
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
      return sub_error(c, name, "AuthError", m2, http_status);
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
  int e = pusher__proto_encode_subscribe(c->m, ch->name, auth, channel_data, &t, &n);
  if (e == 0) e = send_text(c, t, n);
  if (e == 0) {
    ch->sent = 1;
    ch->replied = 0;
  }
  *result = e;
  return GO;
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
  int rc;
  finish(auth_result(c, ch, rekey, err, http_status, message, auth, channel_data, shared_secret_b64, &rc));
  leave(c);
  return rc;
}

void pusher__conn_set_auth_timeout(pusher__conn *c, uint64_t ms) {
  if (c) c->auth_timeout_ms = ms;
}

int pusher__conn_trigger(pusher__conn *c, const char *channel, const char *event, const char *data_json,
                         pusher__tstamp now) {
  if (!c || !channel || !event) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (strncmp(event, "client-", 7) != 0 || strlen(event) > PUSHER__MAX_EVENT_NAME) return PUSHER_ERR_BAD_EVENT_NAME;
  chan *ch = find_chan(c, channel, NULL);
  if (!ch) return PUSHER_ERR_NOT_FOUND;
  if (!pusher__chan_kind_allows_client_events(ch->kind)) return PUSHER_ERR_UNSUPPORTED;
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
