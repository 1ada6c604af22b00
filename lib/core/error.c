#include <pusher/common.h>
#include <pusher/version.h>

#include <stddef.h>

static const struct {
  int code;
  const char *name;
  const char *text;
} errors[] = {
    {PUSHER_OK, "PUSHER_OK", "success"},
    {PUSHER_ERR_INVALID_ARGUMENT, "PUSHER_ERR_INVALID_ARGUMENT", "invalid argument"},
    {PUSHER_ERR_INVALID_STATE, "PUSHER_ERR_INVALID_STATE", "not possible in the current state"},
    {PUSHER_ERR_NOT_FOUND, "PUSHER_ERR_NOT_FOUND", "not found"},
    {PUSHER_ERR_EXISTS, "PUSHER_ERR_EXISTS", "already exists"},
    {PUSHER_ERR_TOO_LARGE, "PUSHER_ERR_TOO_LARGE", "over a size limit"},
    {PUSHER_ERR_RATE_LIMIT, "PUSHER_ERR_RATE_LIMIT", "over a rate limit"},
    {PUSHER_ERR_BAD_CHANNEL_NAME, "PUSHER_ERR_BAD_CHANNEL_NAME", "invalid channel name"},
    {PUSHER_ERR_BAD_EVENT_NAME, "PUSHER_ERR_BAD_EVENT_NAME", "invalid event name"},
    {PUSHER_ERR_UNSUPPORTED, "PUSHER_ERR_UNSUPPORTED", "not supported"},
    {PUSHER_ERR_LIMIT, "PUSHER_ERR_LIMIT", "over a count limit"},
    {PUSHER_ERR_PROTO, "PUSHER_ERR_PROTO", "malformed or unexpected Pusher message"},
    {PUSHER_ERR_JSON, "PUSHER_ERR_JSON", "invalid JSON"},
    {PUSHER_ERR_HANDSHAKE, "PUSHER_ERR_HANDSHAKE", "WebSocket handshake failed"},
    {PUSHER_ERR_WEBSOCKET, "PUSHER_ERR_WEBSOCKET", "WebSocket protocol error"},
    {PUSHER_ERR_MSG_TOO_LARGE, "PUSHER_ERR_MSG_TOO_LARGE", "message too large"},
    {PUSHER_ERR_DECRYPT, "PUSHER_ERR_DECRYPT", "decryption failed"},
    {PUSHER_ERR_IO, "PUSHER_ERR_IO", "I/O error"},
    {PUSHER_ERR_DNS, "PUSHER_ERR_DNS", "host name lookup failed"},
    {PUSHER_ERR_CONNREFUSED, "PUSHER_ERR_CONNREFUSED", "connection refused"},
    {PUSHER_ERR_TIMEOUT, "PUSHER_ERR_TIMEOUT", "timed out"},
    {PUSHER_ERR_TLS, "PUSHER_ERR_TLS", "TLS error"},
    {PUSHER_ERR_TLS_VERIFY, "PUSHER_ERR_TLS_VERIFY", "TLS certificate verification failed"},
    {PUSHER_ERR_CLOSED, "PUSHER_ERR_CLOSED", "connection closed by the server"},
    {PUSHER_ERR_AUTH, "PUSHER_ERR_AUTH", "authorization failed"},
    {PUSHER_ERR_HTTP, "PUSHER_ERR_HTTP", "HTTP request failed"},
    {PUSHER_ERR_CANCELED, "PUSHER_ERR_CANCELED", "canceled"},
    {PUSHER_ERR_REMOTE, "PUSHER_ERR_REMOTE", "error reported by the server"},
    {PUSHER_ERR_NOMEM, "PUSHER_ERR_NOMEM", "out of memory"},
    {PUSHER_ERR_INTERNAL, "PUSHER_ERR_INTERNAL", "internal error"},
    {PUSHER_ERR_CONFIG, "PUSHER_ERR_CONFIG", "unusable configuration"},
};

const char *pusher_strerror(int err) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
    if (errors[i].code == err) return errors[i].text;
  return "unknown error";
}

const char *pusher_err_name(int err) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
    if (errors[i].code == err) return errors[i].name;
  return "PUSHER_ERR_UNKNOWN";
}

int pusher_err_is_fatal(int err) { return err <= -900; }

const char *pusher_version(int least) {
  return PUSHER_VERSION_NUM >= least ? PUSHER_VERSION : NULL;
}
