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
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/conn_internal.h"

static uint64_t sec_ms(double s) {
  if (!(s > 0)) return 0;
  if (s > 1e9) s = 1e9;
  return (uint64_t)(s * 1000.0 + 0.5);
}

void enter(pusher__conn *c) { c->depth++; }

void leave(pusher__conn *c) {
  if (c->depth == 1 && c->ndrop && !c->dead) finish(flush_dropped(c));
  if (--c->depth > 0) return;
  if (c->need_sweep) sweep(c);
  for (size_t i = 0; i < c->nretired; i++) pusher__ws_del(c->retired[i]);
  c->nretired = 0;
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

/* "state_change" then the state's own event: one change, heard whole (the
 * second part even when a state_change callback changed the course). */
static FLOW_CHECK flow emit_state(pusher__conn *c, pusher_state prev) {
  uint64_t k = course(c);
  pusher_connection_event ev;
  memset(&ev, 0, sizeof ev);
  ev.previous = prev;
  ev.current = c->state;
  ev.socket_id = c->state == PUSHER_STATE_CONNECTED ? c->socket_id : NULL;
  ev.name = "state_change";
  flow f = emit_conn(c, &ev);
  if (c->dead) return STOP;
  ev.name = pusher_state_name(c->state);
  f = emit_conn(c, &ev);
  return f == STOP ? STOP : still(c, k);
}

static FLOW_CHECK flow set_state(pusher__conn *c, pusher_state s) {
  if (c->state == s) return GO;
  pusher_state prev = c->state;
  c->state = s;
  return emit_state(c, prev);
}

/* The delegate's moments, as callbacks that may change the course. */
static FLOW_CHECK flow dlg_did_connect(pusher__conn *c) {
  if (!c->dlg.did_connect) return GO;
  uint64_t k = course(c);
  c->dlg.did_connect((pusher_client *)c->owner, c->socket_id, c->dlg_user);
  return still(c, k);
}

static FLOW_CHECK flow dlg_did_disconnect(pusher__conn *c, const pusher_connection_event *ev, int will) {
  if (!c->dlg.did_disconnect) return GO;
  uint64_t k = course(c);
  c->dlg.did_disconnect((pusher_client *)c->owner, ev, will, c->dlg_user);
  return still(c, k);
}

static FLOW_CHECK flow dlg_failed(pusher__conn *c, const pusher_connection_event *ev) {
  if (!c->dlg.failed) return GO;
  uint64_t k = course(c);
  c->dlg.failed((pusher_client *)c->owner, ev, c->dlg_user);
  return still(c, k);
}

/* *will: the delegate's answer (1 without a delegate); *delay may change. */
static FLOW_CHECK flow dlg_will_reconnect(pusher__conn *c, double *delay, int *will) {
  *will = 1;
  if (!c->dlg.will_reconnect) return GO;
  uint64_t k = course(c);
  *will = c->dlg.will_reconnect((pusher_client *)c->owner, delay, c->dlg_user);
  if (!(*delay >= 0)) *delay = 0;
  if (*delay > 86400) *delay = 86400;
  return still(c, k);
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

flow error_event(pusher__conn *c, int code, int err, const char *msg, int fatal) {
  pusher_connection_event ev = make_error(code, err, msg, fatal);
  return emit_conn(c, &ev);
}

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

int send_text(pusher__conn *c, char *text, size_t len) {
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

action classify(int code) {
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
flow lose(pusher__conn *c, action act, int code, int err, const char *msg, pusher__tstamp now) {
  int was_connected = c->established && c->state == PUSHER_STATE_CONNECTED;
  pusher_connection_event ev = make_error(code, err, msg, act == A_FATAL);
  if (was_connected && now - c->connected_at >= stable_ms(c)) {
    c->fails = 0;
    c->fails_4200 = 0;
  }
  if (act == A_FATAL) {
    close_transport(c, 1);
    c->retry_at = c->unavailable_at = PUSHER__NEVER;
    c->fails = c->fails_4200 = 0;
    reset_channels(c);
    if (emit_conn(c, &ev) || set_state(c, PUSHER_STATE_DISCONNECTED)) return STOP;
    if (was_connected && dlg_did_disconnect(c, &ev, 0)) return STOP;
    return dlg_failed(c, &ev);
  }
  close_transport(c, 0);
  reset_channels(c);
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
  if (!(err == PUSHER_ERR_CLOSED && (code == 1000 || code == 1001)) && emit_conn(c, &ev)) return STOP;
  int will;
  if (dlg_will_reconnect(c, &delay, &will)) return STOP;
  if (!will) {
    c->retry_at = c->unavailable_at = PUSHER__NEVER;
    if (set_state(c, PUSHER_STATE_DISCONNECTED)) return STOP;
    return was_connected ? dlg_did_disconnect(c, &ev, 0) : GO;
  }
  if (c->state == PUSHER_STATE_CONNECTED || c->state == PUSHER_STATE_INITIALIZED) {
    c->unavailable_at = add_ms(now, c->unavailable_ms);
    if (set_state(c, PUSHER_STATE_CONNECTING)) return STOP;
  }
  if (was_connected && dlg_did_disconnect(c, &ev, 1)) return STOP;
  if (c->state != PUSHER_STATE_CONNECTING && c->state != PUSHER_STATE_UNAVAILABLE) return GO;
  uint64_t ms = sec_ms(delay);
  if (ms == 0) {
    start_attempt(c, now);
    return GO;
  }
  pusher_connection_event ci;
  memset(&ci, 0, sizeof ci);
  ci.name = "connecting_in";
  ci.previous = ci.current = c->state;
  ci.delay = delay;
  c->retry_at = add_ms(now, ms);
  return emit_conn(c, &ci);
}

int json_code(json_t *o) {
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

const char *json_message(json_t *o, const char *dflt) {
  json_t *v = o ? json_object_get(o, "message") : NULL;
  return (v && json_is_string(v)) ? json_string_value(v) : dflt;
}

flow handle_established(pusher__conn *c, const pusher__msg *msg, pusher__tstamp now) {
  json_t *o = pusher__msg_data_object(msg);
  json_t *sid = o ? json_object_get(o, "socket_id") : NULL;
  if (!sid || !json_is_string(sid) || json_string_length(sid) == 0 ||
      json_string_length(sid) >= sizeof c->socket_id || strlen(json_string_value(sid)) != json_string_length(sid)) {
    json_decref(o);
    return lose(c, A_BACKOFF, 0, PUSHER_ERR_PROTO, "invalid pusher:connection_established (no usable socket_id)", now);
  }
  memcpy(c->socket_id, json_string_value(sid), json_string_length(sid) + 1);
  c->activity_ms = c->activity_opt_ms;
  json_t *at = json_object_get(o, "activity_timeout");
  if (at && json_is_number(at)) {
    double s = json_number_value(at);
    uint64_t ms = sec_ms(s);
    if (ms > 0 && ms < MIN_SERVER_ACTIVITY_MS) ms = MIN_SERVER_ACTIVITY_MS;
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
  if (subscribe_all(c) || request_signin(c)) return STOP;
  if (prev != PUSHER_STATE_CONNECTED && emit_state(c, prev)) return STOP;
  return dlg_did_connect(c);
}

static int current(const pusher__conn *c) { return !c->dead && c->live && c->recv_gen == c->gen; }

static void on_ws_open(void *ud) { (void)ud; }

static void on_ws_text(const uint8_t *msg, size_t len, void *ud) {
  pusher__conn *c = ud;
  if (!current(c)) return;
  finish(handle_message(c, msg, len, c->now));
}

static void on_ws_close(uint16_t code, const char *reason, size_t reason_len, void *ud) {
  pusher__conn *c = ud;
  if (!current(c)) return;
  char m2[200];
  if (reason_len) snprintf(m2, sizeof m2, "%.*s", (int)(reason_len > 190 ? 190 : reason_len), reason);
  else snprintf(m2, sizeof m2, "connection closed by the server (code %u)", (unsigned)code);
  finish(lose(c, classify(code), code, PUSHER_ERR_CLOSED, m2, c->now));
}

static void on_ws_error(int err, const char *detail, void *ud) {
  pusher__conn *c = ud;
  if (!current(c)) return;
  finish(lose(c, A_BACKOFF, 0, err, detail, c->now));
}

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
  pusher__free(&mem, c->bix);
  pusher__free(&mem, c->rx);
  free_drops(&mem, c->drop, c->ndrop);
  pusher__free(&mem, c->app_key);
  pusher__free(&mem, c->host);
  pusher__free(&mem, c->path);
  pusher__free(&mem, c);
}

int pusher__conn_is_dead(const pusher__conn *c) { return c && c->dead; }

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
  c->unavailable_at = add_ms(now, c->unavailable_ms);
  if (set_state(c, PUSHER_STATE_CONNECTING) == GO) start_attempt(c, now);
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
  c->retry_at = c->unavailable_at = PUSHER__NEVER;
  c->fails = c->fails_4200 = 0;
  reset_channels(c);
  if (set_state(c, PUSHER_STATE_DISCONNECTED) == GO && was_connected) finish(dlg_did_disconnect(c, NULL, 0));
  leave(c);
  return 0;
}

void pusher__conn_fail(pusher__conn *c, int err, const char *detail, pusher__tstamp now) {
  if (!c || c->dead) return;
  enter(c);
  c->now = now;
  int was_connected = c->established && c->state == PUSHER_STATE_CONNECTED;
  close_transport(c, 1);
  c->retry_at = c->unavailable_at = PUSHER__NEVER;
  reset_channels(c);
  pusher_connection_event ev = make_error(0, err ? err : PUSHER_ERR_CONFIG, detail, 1);
  if (emit_conn(c, &ev) == GO && set_state(c, PUSHER_STATE_FAILED) == GO &&
      (!was_connected || dlg_did_disconnect(c, &ev, 0) == GO))
    finish(dlg_failed(c, &ev));
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
    finish(lose(c, A_BACKOFF, 0, PUSHER_ERR_NOMEM, "out of memory", now));
    leave(c);
    return;
  }
  c->ping_window_end = 0; /* the first bytes of this transport refill the budgets */
  pusher__ws_config cfg = {c->m, c->rand, c->rand_user, c->max_msg, c->max_out};
  pusher__ws_callbacks cb = {on_ws_open, on_ws_text, on_ws_close, on_ws_error};
  int rc = pusher__ws_client_new(&c->ws, &cfg, c->host_header, c->path, NULL, &cb, c);
  if (rc < 0) {
    c->ws = NULL;
    c->recv_gen = gen;
    finish(lose(c, A_BACKOFF, 0, rc, "cannot start the WebSocket handshake", now));
  }
  leave(c);
}

void pusher__conn_io_failed(pusher__conn *c, uint64_t gen, int err, const char *detail, pusher__tstamp now) {
  if (!c || c->dead || gen != c->gen || !c->live) return;
  enter(c);
  c->now = now;
  /* say where the stream was cut: "connection closed by peer in the middle
   * of a frame" tells more than the bare EOF */
  const char *cut = err == PUSHER_ERR_IO && c->ws ? pusher__ws_cut_point(c->ws) : NULL;
  char d2[300];
  if (cut && detail) {
    snprintf(d2, sizeof d2, "%s %s", detail, cut);
    detail = d2;
  }
  finish(lose(c, A_BACKOFF, 0, err ? err : PUSHER_ERR_IO, detail, now));
  leave(c);
}

void pusher__conn_io_recv(pusher__conn *c, uint64_t gen, const uint8_t *in, size_t len, pusher__tstamp now) {
  if (!c || c->dead || gen != c->gen || !c->live || !c->ws || !len) return;
  enter(c);
  c->now = now;
  c->recv_gen = gen;
  if (now >= c->ping_window_end) {
    c->ping_window_end = add_ms(now, PING_WINDOW_MS);
    c->pusher_pings = 0;
    pusher__ws_set_ping_budget(c->ws, PING_RATE);
  }
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
      finish(set_state(c, PUSHER_STATE_UNAVAILABLE));
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
      finish(lose(c, A_BACKOFF, 0, PUSHER_ERR_TIMEOUT, "connection attempt timed out", now));
      continue;
    }
    if (c->live && c->established && c->pong_at <= now) {
      c->pong_at = PUSHER__NEVER;
      finish(lose(c, A_NOW, 0, PUSHER_ERR_TIMEOUT, "no pusher:pong within the pong timeout", now));
      continue;
    }
    if (c->live && c->established && c->activity_at <= now) {
      send_ping(c, now);
      continue;
    }
    break;
  }
  /* answers to auth requests that did not come in time (each is its own
   * transition: the loop looks at the state afresh every time) */
  int rc;
  for (int guard = 0; guard < 10000 && !c->dead && c->live && c->established; guard++) {
    if (c->user_req && c->user_deadline <= now) {
      finish(user_auth_result(c, PUSHER_ERR_TIMEOUT, 0, "user authentication timed out", NULL, NULL, &rc));
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
    finish(auth_result(c, late, rekey, PUSHER_ERR_TIMEOUT, 0, "authorization timed out", NULL, NULL, NULL, &rc));
  }
  leave(c);
}
