/* Connection engine: private-encrypted channels.  Events are decrypted with
 * the channel's key; a MAC failure triggers one re-authorization, and the
 * events arriving meanwhile are held (at most MAX_PENDING_DECRYPT) and
 * retried with the new key.  Held events dropped by an unsubscribe or the
 * end of the connection are reported as pusher:decryption_error. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/conn_internal.h"

void free_drops(const pusher_mem *m, struct dropped *d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    pusher__free(m, d[i].channel);
    pusher__free(m, d[i].event);
  }
  pusher__free(m, d);
}

/* Discard ch's held encrypted events; with why != NULL each is queued to be
 * reported as pusher:decryption_error {"event":..,"error":why}. */
void drop_pending(pusher__conn *c, chan *ch, const char *why) {
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

void clear_pending(pusher__conn *c, chan *ch) { drop_pending(c, ch, NULL); }

/* "pusher:decryption_error" {"event":..,"error":..} on channel. */
static FLOW_CHECK flow decryption_error(pusher__conn *c, const char *channel, const char *event,
                                        const char *why) {
  json_t *v = json_pack("{s:s,s:s}", "event", event, "error", why);
  if (!v) v = json_pack("{s:s,s:s}", "event", "(invalid name)", "error", "decryption failed");
  return dispatch_json(c, channel, "pusher:decryption_error", v);
}

/* Report the held encrypted events that were dropped (leave() calls this
 * when the outermost engine call unwinds).  Every report is delivered even
 * when a callback changes the course; only the engine's death stops them. */
flow flush_dropped(pusher__conn *c) {
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
      flow f = dispatch_ex(c, d[i].channel, "pusher:decryption_error", text, tn, 1, NULL, 1);
      pusher__free(c->m, text);
      if (f == STOP && c->dead) break;
    }
    free_drops(c->m, d, n);
  }
  return c->dead ? STOP : GO;
}

/* Deliver a decrypted plaintext as pusher-js does (JSON.parse with a raw
 * string fallback): a JSON string is delivered as its content, other JSON
 * as its text, anything else as is. */
static FLOW_CHECK flow deliver_plain(pusher__conn *c, const char *channel, const char *event, const char *plain,
                                     size_t len, const char *user_id) {
  json_t *v = pusher__json_parse(plain, len);
  flow f;
  if (v && json_is_string(v)) {
    const char *sv = json_string_value(v);
    size_t sl = json_string_length(v);
    json_t *inner = pusher__json_parse(sv, sl);
    f = dispatch(c, channel, event, sv, sl, inner != NULL, user_id);
    json_decref(inner);
  } else {
    f = dispatch(c, channel, event, plain, len, v != NULL, user_id);
  }
  json_decref(v);
  return f;
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

flow encrypted_event(pusher__conn *c, chan *ch, const pusher__msg *msg) {
  char why[200];
  if (ch->rekey_req) { /* a new key is on its way: retry with it */
    if (hold_event(c, ch, msg) == 0) return GO;
    return decryption_error(c, msg->channel, msg->event, "too many events waiting for the channel's new key");
  }
  if (!ch->have_key) return decryption_error(c, msg->channel, msg->event, "no shared_secret for this channel");
  char *plain = NULL;
  size_t plen = 0;
  int rc = pusher__crypto_decrypt_event(c->m, ch->key, msg->data ? msg->data : "", msg->data ? msg->data_len : 0,
                                        &plain, &plen, why, sizeof why);
  if (rc == 0) {
    flow f = deliver_plain(c, msg->channel, msg->event, plain, plen, msg->user_id);
    pusher__free(c->m, plain);
    return f;
  }
  if (rc == PUSHER_ERR_DECRYPT && c->hooks.request_channel_auth && hold_event(c, ch, msg) == 0) {
    start_rekey(c, ch);
    return GO;
  }
  return decryption_error(c, msg->channel, msg->event, why[0] ? why : pusher_strerror(rc));
}

/* The answer to a re-authorization: retry the held events with the new key. */
flow rekey_done(pusher__conn *c, chan *ch, int err, const char *message, const char *secret) {
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
  flow f = GO;
  /* the held events, in order, while the channel is still there */
  for (size_t i = 0; i < nheld && f == GO && find_chan(c, name, NULL); i++) {
    struct pend *p = &held[i];
    if (!ok) {
      f = decryption_error(c, name, p->event, why);
      continue;
    }
    char *plain = NULL;
    size_t plen = 0;
    char w3[200];
    int rc = pusher__crypto_decrypt_event(c->m, key, p->data, p->len, &plain, &plen, w3, sizeof w3);
    if (rc == 0) {
      f = deliver_plain(c, name, p->event, plain, plen, p->user_id);
      pusher__free(c->m, plain);
    } else {
      char w4[260];
      snprintf(w4, sizeof w4, "%s (also with the re-authorized key)", w3[0] ? w3 : pusher_strerror(rc));
      f = decryption_error(c, name, p->event, w4);
    }
  }
  sodium_memzero(key, sizeof key);
  for (size_t i = 0; i < nheld; i++) {
    pusher__free(c->m, held[i].event);
    pusher__free(c->m, held[i].data);
    pusher__free(c->m, held[i].user_id);
  }
  pusher__free(c->m, held);
  return f;
}
