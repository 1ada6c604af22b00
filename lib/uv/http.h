/* Asynchronous HTTP client on a libuv loop: libcurl's multi interface
 * driven by uv_poll_t (one per socket, CURLMOPT_SOCKETFUNCTION) and one
 * uv_timer_t (CURLMOPT_TIMERFUNCTION).  Nothing ever blocks the loop
 * (name resolution runs in curl's resolver thread; numeric hosts skip it).
 * Used for the auth endpoints (channel authorization, user
 * authentication).
 *
 * Guarantees:
 *  - pusher__http_request() either returns an error (and the callback never
 *    runs) or returns 0 and the callback runs exactly once, later, on the
 *    loop thread: on completion, on timeout, on pusher__http_cancel() (with
 *    PUSHER_ERR_CANCELED, before cancel returns) or on pusher__http_del()
 *    (PUSHER_ERR_CANCELED, before del returns).
 *  - A callback may call any pusher__http_* function, including
 *    pusher__http_del() (the teardown finishes after the dispatch unwinds)
 *    and pusher__http_cancel() of its own request (a no-op).
 *  - The pusher__http_req pointer is invalid once its callback has returned.
 *  - After pusher__http_del(), the loop must run until its handles close
 *    (uv_run as usual); memory is released from the close callbacks.
 * All functions must be called on the loop's thread. */
#ifndef PUSHER_UV_HTTP_H
#define PUSHER_UV_HTTP_H

#include <pusher/common.h>
#include <uv.h>

#define PUSHER__HTTP_MAX_BODY_DEFAULT (64u * 1024u)
#define PUSHER__HTTP_TIMEOUT_DEFAULT 10000u /* ms */

typedef struct pusher__http pusher__http;
typedef struct pusher__http_req pusher__http_req;

typedef struct pusher__http_opts {
  const char *method;          /* "GET", "POST", ...; NULL = GET, or POST when body != NULL */
  const char *url;             /* http:// or https:// only */
  const char *const *headers;  /* "Name: value" lines (no CR/LF), may be NULL */
  size_t nheaders;
  const char *body;            /* request body, copied; NULL = none */
  size_t body_len;
  uint64_t timeout_ms;         /* whole request; 0 = PUSHER__HTTP_TIMEOUT_DEFAULT */
  size_t max_body;             /* response body cap; 0 = PUSHER__HTTP_MAX_BODY_DEFAULT */
  const char *ca_file;         /* as the client's TLS options */
  const char *ca_path;
  int insecure;                /* skip certificate and host name verification */
} pusher__http_opts;

typedef struct pusher__http_result {
  int err;             /* 0 when an HTTP response arrived (any status), else:
                          PUSHER_ERR_TIMEOUT, PUSHER_ERR_DNS, PUSHER_ERR_CONNREFUSED,
                          PUSHER_ERR_TLS, PUSHER_ERR_TLS_VERIFY, PUSHER_ERR_IO,
                          PUSHER_ERR_HTTP (malformed response, other failure),
                          PUSHER_ERR_TOO_LARGE (body over max_body),
                          PUSHER_ERR_CANCELED, PUSHER_ERR_NOMEM */
  long status;         /* HTTP status; 0 when none was received */
  const char *body;    /* NUL-terminated ("" when none); err == 0 only */
  size_t body_len;
  const char *message; /* never NULL: "OK" or what went wrong */
} pusher__http_result;

typedef void (*pusher__http_cb)(pusher__http_req *req, const pusher__http_result *res, void *user_data);

/* mem is copied. */
int pusher__http_new(pusher__http **out, uv_loop_t *loop, const pusher_mem *mem);
/* Cancels every pending request (callbacks with PUSHER_ERR_CANCELED), then
 * tears down.  NULL is a no-op. */
void pusher__http_del(pusher__http *h);

/* Start a request.  PUSHER_ERR_INVALID_ARGUMENT (bad url/header/method),
 * PUSHER_ERR_INVALID_STATE (h is being deleted), PUSHER_ERR_NOMEM,
 * PUSHER_ERR_INTERNAL (curl refused an option). *out (may be NULL) gets the
 * handle for pusher__http_cancel(). */
int pusher__http_request(pusher__http *h, const pusher__http_opts *o, pusher__http_cb cb,
                         void *user_data, pusher__http_req **out);
/* Abort; the callback runs with PUSHER_ERR_CANCELED before this returns. */
void pusher__http_cancel(pusher__http_req *r);
/* Number of requests whose callback has not run yet. */
size_t pusher__http_pending(const pusher__http *h);

/* ------------------------------------------------------------------ auth over HTTP
 * One channel authorization or user authentication through the auth
 * endpoint, as pusher-js does it: builds the request (core/authreq.h), runs
 * it, accepts only status 200, parses and validates the reply.  The runtime
 * calls this from hooks.request_channel_auth and answers the engine with
 * pusher__conn_auth_result(err, http_status, message, reply fields). */

typedef struct pusher__auth_reply pusher__auth_reply;

typedef struct pusher__auth_http_opts {
  const char *url;               /* resolved endpoint (pusher__authreq_url) */
  int jsonp;                     /* 0 = ajax POST form, 1 = JSONP GET */
  const char *socket_id;
  const char *channel;           /* NULL = user authentication */
  const pusher_kv *params;       /* auth params (both transports) */
  size_t nparams;
  const pusher_kv *headers;      /* auth headers (ajax only; ignored for JSONP) */
  size_t nheaders;
  const char *app_key;           /* the key part of auth must match; NULL = no check */
  uint64_t timeout_ms;           /* 0 = PUSHER__HTTP_TIMEOUT_DEFAULT */
  const char *ca_file, *ca_path;
  int insecure;
} pusher__auth_http_opts;

typedef struct pusher__auth_outcome {
  int err;          /* 0, or: PUSHER_ERR_HTTP (status other than 200), the
                       transport errors of pusher__http_result, PUSHER_ERR_JSON /
                       PUSHER_ERR_AUTH / PUSHER_ERR_TOO_LARGE (bad reply),
                       PUSHER_ERR_CANCELED */
  int http_status;  /* 0 when no response */
  const char *message;              /* never NULL; for subscription_error */
  const pusher__auth_reply *reply;  /* err == 0: auth, channel_data, shared_secret, user_data */
} pusher__auth_outcome;

typedef void (*pusher__auth_http_cb)(const pusher__auth_outcome *o, void *user_data);

/* Same guarantees as pusher__http_request (exactly one callback unless an
 * error is returned; *out cancels through pusher__http_cancel).  The reply
 * requirements come from the channel name: presence- needs channel_data,
 * private-encrypted- needs shared_secret, channel NULL needs user_data. */
int pusher__auth_http_start(pusher__http *h, const pusher__auth_http_opts *o, pusher__auth_http_cb cb,
                            void *user_data, pusher__http_req **out);

#endif
