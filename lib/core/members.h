/* Presence channel members: the bookkeeping behind the members API
 * (me, count, iterate, get by id), kept exact under any ordering of
 * member_added / member_removed / resubscription (the presence messages: docs/protocol.md).
 *
 * Rules (those of pusher-js members.ts, made exact):
 *  - pusher__members_load() (pusher_internal:subscription_succeeded)
 *    replaces the whole set: members are the keys of presence.hash, in the
 *    server's order; `ids` and `count` are only type-checked (the hash is the
 *    truth, so count == number of distinct ids, always).
 *  - add: an unknown id is appended (count + 1, *emit = 1); a known id only
 *    gets its user_info replaced (count unchanged, *emit = 0).
 *  - remove: a known id is removed (count - 1, *emit = 1); an unknown id is
 *    ignored (*emit = 0).
 *  - add/remove before the first load (or after a reset) are ignored with
 *    *emit = 0: the coming load carries the full set anyway.
 *  - me: set from the channel_data of the auth reply (user_id, a string or an
 *    integer, becomes a string) before subscribing; its user_info is taken
 *    from the loaded hash (falling back to channel_data's user_info).  me
 *    survives a member_removed of its own id (the member is gone from the
 *    set, pusher__members_me still answers), as in pusher-js.
 *  - reset (disconnect, unsubscribe, re-authorization): everything goes,
 *    me included; the next auth reply sets it again.
 * user_info is kept as compact JSON text (NULL when absent).
 * Cap: PUSHER__MEMBERS_MAX members (PUSHER_ERR_LIMIT beyond); user ids
 * are at most 200 bytes. */
#ifndef PUSHER_CORE_MEMBERS_H
#define PUSHER_CORE_MEMBERS_H

#include <pusher/common.h>

#define PUSHER__MEMBERS_MAX 100000
#define PUSHER__MEMBER_ID_MAX 200

typedef struct pusher__member {
  char *id;        /* user id as text */
  char *info_json; /* user_info as compact JSON text, NULL when absent */
} pusher__member;

typedef struct pusher__members {
  const pusher_mem *mem;
  pusher__member *v;
  size_t n, alloc;
  int loaded;      /* a subscription_succeeded was applied since the last reset */
  pusher__member me; /* me.id NULL until set */
} pusher__members;

void pusher__members_init(pusher__members *m, const pusher_mem *mem);
void pusher__members_free(pusher__members *m); /* == reset; m reusable */
void pusher__members_reset(pusher__members *m);

/* Set me from the channel_data text of the auth reply.  PUSHER_ERR_PROTO
 * (why filled) when it is not an object with a non-empty string or integer
 * user_id. */
int pusher__members_set_me(pusher__members *m, const char *channel_data, size_t len, char *why,
                           size_t whylen);
/* Apply the data of pusher_internal:subscription_succeeded:
 * {"presence":{"ids":[..],"hash":{id:info,..},"count":n}}.  On error the set
 * is left unchanged.  PUSHER_ERR_PROTO / PUSHER_ERR_JSON / PUSHER_ERR_LIMIT. */
int pusher__members_load(pusher__members *m, const char *data, size_t len, char *why, size_t whylen);
/* Apply pusher_internal:member_added data {"user_id":..,"user_info":..}.
 * *emit tells whether pusher:member_added should be surfaced; *member (may
 * be NULL) then points at the stored member (valid until the next change). */
int pusher__members_add(pusher__members *m, const char *data, size_t len, int *emit,
                        const pusher__member **member, char *why, size_t whylen);
/* Apply pusher_internal:member_removed data {"user_id":..}.  *emit tells
 * whether pusher:member_removed should be surfaced; the removed id is then
 * copied into removed_id (may be NULL; PUSHER__MEMBER_ID_MAX + 1 bytes). */
int pusher__members_remove(pusher__members *m, const char *data, size_t len, int *emit,
                           char *removed_id, char *why, size_t whylen);

size_t pusher__members_count(const pusher__members *m);
/* NULL when unknown. */
const pusher__member *pusher__members_get(const pusher__members *m, const char *id);
/* i in [0, count): members in order (server order, then arrival order). */
const pusher__member *pusher__members_at(const pusher__members *m, size_t i);
/* NULL until set_me; info_json as described above. */
const pusher__member *pusher__members_me(const pusher__members *m);

/* An immutable public snapshot (include/pusher/channels.h pusher_members):
 * one allocation with mem (copied into it), freed by pusher_members_free. */
struct pusher_members;
int pusher__members_snapshot(const pusher__members *m, const pusher_mem *mem,
                             struct pusher_members **out);

/* Helper shared with the auth reply checks: user_id (JSON string or
 * integer) as text into out (PUSHER__MEMBER_ID_MAX + 1 bytes).  Returns 0 or
 * PUSHER_ERR_PROTO. */
struct json_t;
int pusher__members_id_text(const struct json_t *v, char *out, size_t outlen);

#endif
