/* libpusher: common definitions shared by every public header. */
#ifndef PUSHER_COMMON_H
#define PUSHER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PUSHER_STATIC)
#  define PUSHER_EXTERN
#elif defined(PUSHER_BUILDING)
#  define PUSHER_EXTERN __attribute__((visibility("default")))
#else
#  define PUSHER_EXTERN
#endif

/* Errors: 0 is success, every error is a negative value of this enum,
 * grouped in ranges: -1xx usage/arguments, -2xx protocol/input, -3xx
 * network/transport/remote, -9xx fatal (the object cannot continue). */
typedef enum pusher_error {
  PUSHER_OK = 0,
  /* -1xx: the caller asked for something invalid */
  PUSHER_ERR_INVALID_ARGUMENT = -101, /* NULL/empty where a value is required, bad option value */
  PUSHER_ERR_INVALID_STATE = -102,    /* not possible in the current state */
  PUSHER_ERR_NOT_FOUND = -103,        /* unknown channel, binding id, member ... */
  PUSHER_ERR_EXISTS = -104,           /* already subscribed / already bound */
  PUSHER_ERR_TOO_LARGE = -105,        /* over a documented size cap */
  PUSHER_ERR_RATE_LIMIT = -106,       /* over a documented rate cap (client events: 10/s) */
  PUSHER_ERR_BAD_CHANNEL_NAME = -107, /* not [A-Za-z0-9_\-=@,.;]{1,200}, or reserved (#...) */
  PUSHER_ERR_BAD_EVENT_NAME = -108,   /* e.g. a client event not starting with "client-" */
  PUSHER_ERR_UNSUPPORTED = -109,      /* e.g. client events on an encrypted channel */
  PUSHER_ERR_LIMIT = -110,            /* over a count cap (channels, bindings, queue) */
  /* -2xx: what came from the peer was malformed */
  PUSHER_ERR_PROTO = -201,            /* malformed or unexpected Pusher message */
  PUSHER_ERR_JSON = -202,             /* invalid JSON, or JSON nested deeper than the cap */
  PUSHER_ERR_HANDSHAKE = -203,        /* bad HTTP upgrade reply / Sec-WebSocket-Accept */
  PUSHER_ERR_WEBSOCKET = -204,        /* WebSocket framing error (bad frame, bad UTF-8 text) */
  PUSHER_ERR_MSG_TOO_LARGE = -205,    /* inbound message over max_message_size */
  PUSHER_ERR_DECRYPT = -206,          /* encrypted channel payload could not be opened */
  /* -3xx: network, transport and remote side */
  PUSHER_ERR_IO = -301,               /* socket error (reset, EOF, write failure) */
  PUSHER_ERR_DNS = -302,              /* host name could not be resolved */
  PUSHER_ERR_CONNREFUSED = -303,      /* TCP connection refused */
  PUSHER_ERR_TIMEOUT = -304,          /* connect/handshake/pong/HTTP timeout */
  PUSHER_ERR_TLS = -305,              /* TLS handshake or record error */
  PUSHER_ERR_TLS_VERIFY = -306,       /* certificate or host name verification failed */
  PUSHER_ERR_CLOSED = -307,           /* the server closed the connection (see close code) */
  PUSHER_ERR_AUTH = -308,             /* channel/user authorization failed */
  PUSHER_ERR_HTTP = -309,             /* HTTP request failed / non-2xx status */
  PUSHER_ERR_CANCELED = -310,         /* operation canceled by disconnect/unsubscribe/del */
  PUSHER_ERR_REMOTE = -311,           /* the server reported an error (pusher:error) */
  /* -9xx: fatal */
  PUSHER_ERR_NOMEM = -901,
  PUSHER_ERR_INTERNAL = -902,
  PUSHER_ERR_CONFIG = -903            /* configuration that can never work (e.g. TLS unusable) */
} pusher_error;

/* A static English description of an error code; never NULL. */
PUSHER_EXTERN const char *pusher_strerror(int err);
/* The enum constant's name, e.g. "PUSHER_ERR_TIMEOUT"; never NULL. */
PUSHER_EXTERN const char *pusher_err_name(int err);
/* Nonzero when err is in the fatal range (-9xx). */
PUSHER_EXTERN int pusher_err_is_fatal(int err);

/* Per-instance allocator.  NULL (or a NULL function) means libc.  The library
 * never calls malloc/free directly. */
typedef struct pusher_mem {
  void *user;                                          /* passed to each function */
  void *(*malloc)(size_t size, void *user);            /* as malloc(3) */
  void (*free)(void *ptr, void *user);                 /* as free(3) */
  void *(*calloc)(size_t n, size_t size, void *user);  /* as calloc(3) */
  void *(*realloc)(void *ptr, size_t size, void *user); /* as realloc(3) */
} pusher_mem;

/* Randomness source: fill buf with n random bytes.  Used for WebSocket
 * masking keys, Sec-WebSocket-Key and reconnect jitter.  NULL means the
 * OpenSSL CSPRNG.  Tests inject a deterministic one. */
typedef void (*pusher_rand_fn)(uint8_t *buf, size_t n, void *user);

/* A name/value pair (auth params, auth headers). */
typedef struct pusher_kv {
  const char *name;  /* e.g. "token" or "Authorization" */
  const char *value; /* the value, UTF-8 */
} pusher_kv;

/* Runtime version check: returns the version string if the library's
 * PUSHER_VERSION_NUM >= least, else NULL. */
PUSHER_EXTERN const char *pusher_version(int least);

#ifdef __cplusplus
}
#endif
#endif
