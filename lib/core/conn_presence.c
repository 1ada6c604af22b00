/* Connection engine: presence channels' members (lib/core/members.c keeps
 * the list; this file turns protocol messages into member events). */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/conn_internal.h"

static json_t *member_json(const pusher__member *mb) {
  json_t *info = mb->info_json ? pusher__json_parse(mb->info_json, strlen(mb->info_json)) : NULL;
  return json_pack("{s:s,s:o}", "user_id", mb->id, "user_info", info ? info : json_null());
}

flow presence_succeeded(pusher__conn *c, chan *ch, const pusher__msg *msg) {
  char why[200] = "subscription_succeeded without data";
  int rc = msg->data ? pusher__members_load(&ch->members, msg->data, msg->data_len, why, sizeof why)
                     : PUSHER_ERR_PROTO;
  if (rc) {
    char m2[260];
    snprintf(m2, sizeof m2, "invalid presence data: %s", why);
    return sub_error(c, msg->channel, "ProtocolError", m2, 0);
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
  return dispatch_json(c, msg->channel, "pusher:subscription_succeeded", v);
}

/* A member joined (added) or left.  Only a change of the member list (first
 * connection of a user, last one gone) is an event for the application. */
flow presence_change(pusher__conn *c, chan *ch, const pusher__msg *msg, int added) {
  char why[200] = "no data";
  int emit = 0, rc;
  if (added) {
    const pusher__member *mb = NULL;
    rc = msg->data ? pusher__members_add(&ch->members, msg->data, msg->data_len, &emit, &mb, why, sizeof why)
                   : PUSHER_ERR_PROTO;
    if (rc == 0 && emit && mb) return dispatch_json(c, msg->channel, "pusher:member_added", member_json(mb));
  } else {
    char id[PUSHER__MEMBER_ID_MAX + 1];
    rc = msg->data ? pusher__members_remove(&ch->members, msg->data, msg->data_len, &emit, id, why, sizeof why)
                   : PUSHER_ERR_PROTO;
    if (rc == 0 && emit)
      return dispatch_json(c, msg->channel, "pusher:member_removed", json_pack("{s:s}", "user_id", id));
  }
  if (rc == 0) return GO;
  char m2[300];
  snprintf(m2, sizeof m2, "invalid %s: %s", msg->event, why);
  return error_event(c, 0, rc, m2, 0);
}

int pusher__conn_channel_members(const pusher__conn *c, const char *channel, struct pusher_members **out) {
  if (!c || !channel || !out) return PUSHER_ERR_INVALID_ARGUMENT;
  chan *ch = find_chan(c, channel, NULL);
  if (!ch) return PUSHER_ERR_NOT_FOUND;
  if (ch->kind != PUSHER__CHAN_PRESENCE) return PUSHER_ERR_UNSUPPORTED;
  if (!ch->subscribed || !ch->members.loaded) return PUSHER_ERR_INVALID_STATE;
  return pusher__members_snapshot(&ch->members, c->m, out);
}
