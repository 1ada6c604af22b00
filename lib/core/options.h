/* Client options: defaults (pusher_client_options_default, public) and the
 * validation shared by the runtime and the engine. */
#ifndef PUSHER_CORE_OPTIONS_H
#define PUSHER_CORE_OPTIONS_H

#include <pusher/pusher.h>

/* 0 when opts can be used to create a client; else PUSHER_ERR_INVALID_ARGUMENT
 * and a one-line reason in why (may be NULL). */
int pusher__options_validate(const pusher_client_options *opts, char *why, size_t whylen);

/* Channel name rule: [A-Za-z0-9_\-=@,.;]{1,200}, not starting with '#'.
 * Nonzero when valid. */
int pusher__channel_name_valid(const char *name);

#define PUSHER__MAX_CHANNEL_NAME 200
#define PUSHER__MAX_EVENT_NAME 200
#define PUSHER__MAX_BINDINGS 10000

#endif
