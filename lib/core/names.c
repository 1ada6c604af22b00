/* Protocol facts about names; see names.h. */
#include "core/names.h"

#include <stdio.h>
#include <string.h>

const char *const pusher__cache_prefixes[] = {
    "cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-", NULL,
};

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

pusher__chan_kind pusher__chan_kind_of(const char *name) {
  if (starts(name, "private-encrypted-")) return PUSHER__CHAN_ENCRYPTED;
  if (starts(name, "private-")) return PUSHER__CHAN_PRIVATE;
  if (starts(name, "presence-")) return PUSHER__CHAN_PRESENCE;
  if (starts(name, PUSHER__USER_CHANNEL_PREFIX)) return PUSHER__CHAN_USER;
  return PUSHER__CHAN_PUBLIC;
}

int pusher__chan_kind_needs_auth(pusher__chan_kind k) {
  return k == PUSHER__CHAN_PRIVATE || k == PUSHER__CHAN_ENCRYPTED || k == PUSHER__CHAN_PRESENCE;
}

int pusher__chan_kind_allows_client_events(pusher__chan_kind k) {
  return k == PUSHER__CHAN_PRIVATE || k == PUSHER__CHAN_PRESENCE;
}

int pusher__chan_is_cache(const char *name) {
  for (size_t i = 0; pusher__cache_prefixes[i]; i++)
    if (starts(name, pusher__cache_prefixes[i])) return 1;
  return 0;
}

const char *pusher__chan_user_id(const char *name) {
  return starts(name, PUSHER__USER_CHANNEL_PREFIX) ? name + strlen(PUSHER__USER_CHANNEL_PREFIX)
                                                   : NULL;
}

static int name_char(unsigned char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
  return c == '_' || c == '-' || c == '=' || c == '@' || c == ',' || c == '.' || c == ';';
}

static int say(char *why, size_t whylen, const char *what, size_t max) {
  if (why && whylen) snprintf(why, whylen, "%s (%zu bytes at most)", what, max);
  return 0;
}

int pusher__check_channel_name(const char *s, size_t len, size_t max, int allow_user, char *why,
                               size_t whylen) {
  if (!s || len == 0 || len > max || memchr(s, '\0', len)) goto bad;
  size_t i = 0;
  if (allow_user && starts(s, PUSHER__USER_CHANNEL_PREFIX)) {
    i = strlen(PUSHER__USER_CHANNEL_PREFIX);
    if (i == len) goto bad;
  }
  for (; i < len; i++)
    if (!name_char((unsigned char)s[i])) goto bad;
  return 1;
bad:
  if (why && whylen)
    snprintf(why, whylen, "Invalid channel name: use 1 to %zu of A-Z a-z 0-9 _ - = @ , . ;", max);
  return 0;
}

int pusher__check_event_name(const char *s, size_t len, size_t max, char *why, size_t whylen) {
  if (!s || len == 0) return say(why, whylen, "Invalid event name: empty", max);
  if (len > max) return say(why, whylen, "Invalid event name: too long", max);
  if (memchr(s, '\0', len)) return say(why, whylen, "Invalid event name: contains NUL", max);
  return 1;
}

int pusher__check_socket_id(const char *s, size_t len, size_t max, char *why, size_t whylen) {
  size_t i = 0, a = 0, b = 0;
  if (!s || len == 0 || len > max) goto bad;
  while (i < len && s[i] >= '0' && s[i] <= '9') i++, a++;
  if (a == 0 || i >= len || s[i] != '.') goto bad;
  for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) b++;
  if (b > 0 && i == len) return 1;
bad:
  return say(why, whylen, "Invalid socket_id: expected digits.digits", max);
}
