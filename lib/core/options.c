/* Client option defaults and validation. */
#include "core/options.h"
#include "core/names.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void pusher_client_options_default(pusher_client_options *o) {
  if (!o) return;
  memset(o, 0, sizeof(*o));
  o->encrypted = 1;
  o->cluster = "mt1";
  o->auth_endpoint = "/pusher/auth";
  o->auth_transport = PUSHER_AUTH_AJAX;
  o->reconnect_delay = 5.0;
  o->user_auth_endpoint = "/pusher/user-auth";
  o->ws_port = 80;
  o->wss_port = 443;
  o->ws_path = "";
  o->activity_timeout = 120.0;
  o->pong_timeout = 30.0;
  o->unavailable_timeout = 30.0;
  o->max_reconnect_delay = 10.0;
  o->connect_timeout = 15.0;
  o->jitter = 1;
  o->max_message_size = 256 * 1024;
  o->max_send_queue = 1024 * 1024;
  o->max_channels = 1000;
  o->client_name = "libpusher-c";
}

const char *pusher_state_name(pusher_state s) {
  switch (s) {
  case PUSHER_STATE_INITIALIZED: return "initialized";
  case PUSHER_STATE_CONNECTING: return "connecting";
  case PUSHER_STATE_CONNECTED: return "connected";
  case PUSHER_STATE_UNAVAILABLE: return "unavailable";
  case PUSHER_STATE_FAILED: return "failed";
  case PUSHER_STATE_DISCONNECTED: return "disconnected";
  }
  return "unknown";
}

int pusher__channel_name_valid(const char *name) {
  return name && pusher__check_channel_name(name, strlen(name), PUSHER__MAX_CHANNEL_NAME, 0, NULL, 0);
}

/* Host names and path pieces end up in an HTTP request line/header. */
static int token_ok(const char *s, int allow_empty) {
  if (!s) return allow_empty;
  if (!*s) return allow_empty;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f) return 0;
  return strlen(s) <= 255;
}

static int dur_ok(double v, double lo, double hi) {
  return isfinite(v) && v >= lo && v <= hi;
}

#define BAD(...)                                                   \
  do {                                                             \
    if (why && whylen) snprintf(why, whylen, __VA_ARGS__);         \
    return PUSHER_ERR_INVALID_ARGUMENT;                            \
  } while (0)

int pusher__options_validate(const pusher_client_options *o, char *why, size_t whylen) {
  if (why && whylen) why[0] = '\0';
  if (!o) BAD("options are NULL");
  if (!o->ws_host && !token_ok(o->cluster, 0)) BAD("cluster must be a non-empty name");
  if (o->cluster && !token_ok(o->cluster, 1)) BAD("cluster contains invalid characters");
  if (o->cluster) {
    for (const char *p = o->cluster; *p; p++)
      if (*p == '/' || *p == ':' || *p == '?' || *p == '#' || *p == '@') BAD("cluster contains invalid characters");
  }
  if (o->ws_host && !token_ok(o->ws_host, 0)) BAD("ws_host must be a non-empty host name");
  if (o->ws_port < 1 || o->ws_port > 65535) BAD("ws_port must be 1..65535");
  if (o->wss_port < 1 || o->wss_port > 65535) BAD("wss_port must be 1..65535");
  if (o->ws_path && !token_ok(o->ws_path, 1)) BAD("ws_path contains invalid characters");
  if (o->ws_path && *o->ws_path && o->ws_path[0] != '/') BAD("ws_path must start with '/'");
  if (o->client_name && !token_ok(o->client_name, 0)) BAD("client_name must be a non-empty token");
  if (o->client_name && strpbrk(o->client_name, "&?#=%")) BAD("client_name contains invalid characters");
  if (o->auth_transport != PUSHER_AUTH_AJAX && o->auth_transport != PUSHER_AUTH_JSONP)
    BAD("auth_transport must be PUSHER_AUTH_AJAX or PUSHER_AUTH_JSONP");
  if (o->auth_params_count && !o->auth_params) BAD("auth_params is NULL but auth_params_count > 0");
  if (o->auth_headers_count && !o->auth_headers) BAD("auth_headers is NULL but auth_headers_count > 0");
  for (size_t i = 0; i < o->auth_params_count; i++)
    if (!o->auth_params[i].name || !*o->auth_params[i].name || !o->auth_params[i].value)
      BAD("auth_params[%zu] needs a name and a value", i);
  for (size_t i = 0; i < o->auth_headers_count; i++) {
    const pusher_kv *kv = &o->auth_headers[i];
    if (!kv->name || !*kv->name || !kv->value) BAD("auth_headers[%zu] needs a name and a value", i);
    if (strpbrk(kv->name, " :\r\n\t") || strpbrk(kv->value, "\r\n"))
      BAD("auth_headers[%zu] contains characters not allowed in a header", i);
  }
  if (!dur_ok(o->reconnect_delay, 0.0, 86400.0)) BAD("reconnect_delay must be 0..86400 seconds");
  if (!dur_ok(o->max_reconnect_delay, 0.0, 86400.0)) BAD("max_reconnect_delay must be 0..86400 seconds");
  if (o->max_reconnect_delay < o->reconnect_delay) BAD("max_reconnect_delay must be >= reconnect_delay");
  if (!dur_ok(o->activity_timeout, 0.001, 86400.0)) BAD("activity_timeout must be 0.001..86400 seconds");
  if (!dur_ok(o->pong_timeout, 0.001, 86400.0)) BAD("pong_timeout must be 0.001..86400 seconds");
  if (!dur_ok(o->unavailable_timeout, 0.001, 86400.0)) BAD("unavailable_timeout must be 0.001..86400 seconds");
  if (!dur_ok(o->connect_timeout, 0.001, 86400.0)) BAD("connect_timeout must be 0.001..86400 seconds");
  if (o->max_message_size < 1024 || o->max_message_size > (size_t)64 << 20)
    BAD("max_message_size must be 1 KiB..64 MiB");
  if (o->max_send_queue < 1024 || o->max_send_queue > (size_t)1 << 30)
    BAD("max_send_queue must be 1 KiB..1 GiB");
  if (o->max_channels < 1 || o->max_channels > 100000) BAD("max_channels must be 1..100000");
  if ((o->ca_file && !*o->ca_file) || (o->ca_path && !*o->ca_path)) BAD("ca_file/ca_path must not be empty");
  if (o->auth_endpoint && !*o->auth_endpoint) BAD("auth_endpoint must not be empty");
  return 0;
}

int pusher_client_options_check(const pusher_client_options *o, char *why, size_t whylen) {
  return pusher__options_validate(o, why, whylen);
}
