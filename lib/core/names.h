/* Protocol facts about names, in one place (Pusher Channels protocol 7):
 * the kind of a channel from its prefix, cache channels, the server-to-user
 * channel, and validators for channel names, event names and socket ids
 * that take the configured maximum and say it in their message.
 *
 * Used by pusherd, the client engine and runtime, and (through sign.c and
 * options.c) the CLI.
 *
 * Pure functions: no allocation, no state, safe from any thread. */
#ifndef PUSHER_CORE_NAMES_H
#define PUSHER_CORE_NAMES_H

#include <stddef.h>

/* Defaults of the limits (Pusher's documented values).  A server may
 * configure others per app; the validators take the limit in force. */
#define PUSHER__NAME_MAX_DEFAULT 200      /* channel and event names, bytes */
#define PUSHER__SOCKET_ID_MAX_DEFAULT 64  /* socket ids, bytes */

/* The channel a server uses to reach every socket signed in as <id>. */
#define PUSHER__USER_CHANNEL_PREFIX "#server-to-user-"

typedef enum pusher__chan_kind {
  PUSHER__CHAN_PUBLIC = 0,
  PUSHER__CHAN_PRIVATE,   /* private- (not private-encrypted-) */
  PUSHER__CHAN_ENCRYPTED, /* private-encrypted- */
  PUSHER__CHAN_PRESENCE,  /* presence- */
  PUSHER__CHAN_USER       /* #server-to-user-<id> */
} pusher__chan_kind;

/* The kind of a channel, from its name's prefix (name must not be NULL). */
pusher__chan_kind pusher__chan_kind_of(const char *name);
/* 1 for the kinds that need an auth signature to subscribe (private,
 * encrypted, presence). */
int pusher__chan_kind_needs_auth(pusher__chan_kind k);
/* 1 when clients may send client- events on the kind (private, presence). */
int pusher__chan_kind_allows_client_events(pusher__chan_kind k);
/* 1 when name starts with one of the cache prefixes below. */
int pusher__chan_is_cache(const char *name);
/* The cache prefixes, NULL-terminated: cache-, private-cache-,
 * private-encrypted-cache-, presence-cache-. */
extern const char *const pusher__cache_prefixes[];
/* The <id> of "#server-to-user-<id>", or NULL for any other name. */
const char *pusher__chan_user_id(const char *name);

/* Validators.  s[0..len) is the candidate (it may come from JSON, so an
 * embedded NUL makes it invalid); max is the limit in force, in bytes.
 * They return 1 when valid, 0 when not; when not and why is non-NULL, a
 * sentence for the peer is written there (truncated to whylen), naming the
 * limit max, e.g. "Invalid channel name: use 1 to 200 of ...".
 *
 * Channel names: 1..max bytes of [A-Za-z0-9_\-=@,.;]; with allow_user, a
 * "#server-to-user-<id>" name whose <id> is 1 or more of those characters
 * is accepted too (the whole name still at most max bytes). */
int pusher__check_channel_name(const char *s, size_t len, size_t max, int allow_user, char *why,
                               size_t whylen);
/* Event names: 1..max bytes, no NUL. */
int pusher__check_event_name(const char *s, size_t len, size_t max, char *why, size_t whylen);
/* Socket ids: ^[0-9]+\.[0-9]+$, at most max bytes. */
int pusher__check_socket_id(const char *s, size_t len, size_t max, char *why, size_t whylen);

#endif
