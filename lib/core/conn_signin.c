/* Connection engine: user sign-in (pusher:signin), the server-to-user
 * channel, watchlist events, and presence subscriptions that wait for the
 * sign-in. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/conn_internal.h"

static FLOW_CHECK flow presence_waits_fail(pusher__conn *c, const char *msg);

/* {"type":type,"error":..,"status":..} to the user bindings; presence
 * subscriptions waiting for the sign-in then fail. */
flow signin_error_typed(pusher__conn *c, const char *type, const char *msg, int status) {
  char *text;
  size_t n;
  if (pusher__proto_encode_subscription_error(c->m, type, msg, status, &text, &n) == 0) {
    flow f = dispatch_kind(c, BK_USER, NULL, "pusher:signin_error", text, n, 1);
    pusher__free(c->m, text);
    if (f) return STOP;
  }
  return presence_waits_fail(c, msg);
}

static FLOW_CHECK flow signin_error(pusher__conn *c, const char *msg, int status) {
  return signin_error_typed(c, "AuthError", msg, status);
}

/* A sign-in is under way on this connection (user auth requested or
 * pusher:signin sent, no answer yet). */
int signin_pending(const pusher__conn *c) {
  return c->signin_wanted && !c->user_id[0] && (c->user_req || c->signin_sent);
}

/* Send pusher:subscribe for a presence channel whose auth reply had no
 * channel_data, as the signed-in user (signature over socket_id:channel). */
flow presence_subscribe_signed_in(pusher__conn *c, chan *ch, const char *auth, int *result) {
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
  *result = rc;
  if (rc == 0) {
    ch->sent = 1;
    ch->replied = 0;
    return GO;
  }
  return sub_error(c, name, "AuthError", why, 0);
}

/* After signin_success: subscribe the presence channels that waited for it. */
static FLOW_CHECK flow presence_waits_resume(pusher__conn *c) {
  for (size_t guard = 0; guard < 100000 && c->user_id[0]; guard++) {
    chan *ch = NULL;
    for (size_t i = 0; i < c->nchans && !ch; i++)
      if (c->chans[i]->wait_auth) ch = c->chans[i];
    if (!ch) return GO;
    char *auth = ch->wait_auth;
    ch->wait_auth = NULL;
    int rc;
    flow f = presence_subscribe_signed_in(c, ch, auth, &rc);
    pusher__free(c->m, auth);
    if (f) return STOP;
  }
  return GO;
}

/* The sign-in failed: the presence channels waiting for it fail too. */
static flow presence_waits_fail(pusher__conn *c, const char *msg) {
  char m2[300];
  snprintf(m2, sizeof m2, "presence auth reply without channel_data and the user sign-in failed: %s",
           msg ? msg : "unknown error");
  for (size_t guard = 0; guard < 100000; guard++) {
    chan *ch = NULL;
    for (size_t i = 0; i < c->nchans && !ch; i++)
      if (c->chans[i]->wait_auth) ch = c->chans[i];
    if (!ch) return GO;
    pusher__free(c->m, ch->wait_auth);
    ch->wait_auth = NULL;
    if (sub_error(c, ch->name, "AuthError", m2, 0)) return STOP;
  }
  return GO;
}

/* Ask the runtime for a user authentication (its hook only records the
 * request) when a sign-in is wanted and none is under way. */
flow request_signin(pusher__conn *c) {
  if (!c->signin_wanted || !c->established || c->state != PUSHER_STATE_CONNECTED) return GO;
  if (c->user_req || c->signin_sent || c->user_id[0]) return GO;
  if (!c->user_hook) return signin_error(c, "no user authenticator is configured", 0);
  c->user_req = ++c->next_req;
  c->user_deadline = c->auth_timeout_ms ? add_ms(c->now, c->auth_timeout_ms) : PUSHER__NEVER;
  c->user_hook(c, c->socket_id, c->user_req, c->hook_user);
  return GO;
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

flow handle_signin_success(pusher__conn *c, const pusher__msg *msg) {
  json_t *o = pusher__msg_data_object(msg);
  json_t *ud = o ? json_object_get(o, "user_data") : NULL;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  if (!ud || !json_is_string(ud) || user_data_id(json_string_value(ud), id, sizeof id) != 0) {
    json_decref(o);
    c->signin_sent = 0;
    return signin_error(c, "pusher:signin_success without a user_data carrying a string id", 0);
  }
  char *udt = pusher__strdup(c->m, json_string_value(ud));
  json_decref(o);
  if (!udt) return GO;
  snprintf(c->user_id, sizeof c->user_id, "%s", id);
  snprintf(c->user_chan, sizeof c->user_chan, "#server-to-user-%s", id);
  char *t;
  size_t n;
  /* the server-to-user channel is not in the channel table (as pusher-js) */
  if (pusher__proto_encode_subscribe(c->m, c->user_chan, "", NULL, &t, &n) == 0) (void)send_text(c, t, n);
  json_t *chk = pusher__json_parse(udt, strlen(udt));
  flow f = dispatch_kind(c, BK_USER, NULL, "pusher:signin_success", udt, strlen(udt), chk != NULL);
  json_decref(chk);
  pusher__free(c->m, udt);
  return f == STOP ? STOP : presence_waits_resume(c);
}

/* {"events":[{"name":"online","user_ids":[..]},..]} to the watchlist bindings. */
flow handle_watchlist(pusher__conn *c, const pusher__msg *msg) {
  json_t *o = pusher__msg_data_object(msg);
  json_t *evs = o ? json_object_get(o, "events") : NULL;
  if (!evs || !json_is_array(evs)) {
    json_decref(o);
    return error_event(c, 0, PUSHER_ERR_PROTO, "pusher_internal:watchlist_events without an events array", 0);
  }
  flow f = GO;
  for (size_t i = 0; i < json_array_size(evs) && f == GO; i++) {
    json_t *it = json_array_get(evs, i);
    json_t *name = json_is_object(it) ? json_object_get(it, "name") : NULL;
    json_t *ids = json_is_object(it) ? json_object_get(it, "user_ids") : NULL;
    if (!name || !json_is_string(name) || !ids || !json_is_array(ids)) continue;
    json_t *d = json_pack("{s:O}", "user_ids", ids);
    char *text;
    size_t n;
    if (pusher__proto_dump(c->m, d, &text, &n) != 0) continue;
    f = dispatch_kind(c, BK_WATCHLIST, NULL, json_string_value(name), text, n, 1);
    pusher__free(c->m, text);
  }
  json_decref(o);
  return f;
}

void pusher__conn_set_user_auth_hook(pusher__conn *c, pusher__user_auth_hook hook) {
  if (c) c->user_hook = hook;
}

/* The answer to the user authentication; *result: what
 * pusher__conn_user_auth_result returns. */
flow user_auth_result(pusher__conn *c, int err, int http_status, const char *message, const char *auth,
                      const char *user_data, int *result) {
  c->user_req = 0;
  c->user_deadline = PUSHER__NEVER;
  *result = 0;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  if (err < 0 || !auth)
    return signin_error(c, message ? message : (auth ? pusher_strerror(err) : "no auth in the answer"), http_status);
  if (user_data_id(user_data, id, sizeof id) != 0)
    return signin_error(c, "user_data is not a JSON object with a non-empty string id", http_status);
  char *t;
  size_t n;
  int rc = pusher__proto_encode_signin(c->m, auth, user_data, &t, &n);
  if (rc == 0) rc = send_text(c, t, n);
  *result = rc;
  if (rc != 0) return signin_error(c, "cannot send pusher:signin", 0);
  c->signin_sent = 1;
  return GO;
}

int pusher__conn_user_auth_result(pusher__conn *c, uint64_t req_id, int err, int http_status,
                                  const char *message, const char *auth, const char *user_data,
                                  pusher__tstamp now) {
  if (!c || !req_id) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  if (req_id != c->user_req || !c->established || c->state != PUSHER_STATE_CONNECTED) return PUSHER_ERR_NOT_FOUND;
  enter(c);
  c->now = now;
  int rc;
  finish(user_auth_result(c, err, http_status, message, auth, user_data, &rc));
  leave(c);
  return rc;
}

int pusher__conn_signin(pusher__conn *c, pusher__tstamp now) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  if (c->dead) return PUSHER_ERR_INVALID_STATE;
  enter(c);
  c->now = now;
  c->signin_wanted = 1;
  finish(request_signin(c));
  leave(c);
  return 0;
}

const char *pusher__conn_user_id(const pusher__conn *c) {
  return (c && c->established && c->user_id[0]) ? c->user_id : NULL;
}
