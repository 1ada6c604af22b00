/* Pusher protocol 7 message codec (see proto.h). */
#include "core/proto.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define WHY(...)                                                      \
  do {                                                                \
    if (why && whylen) snprintf(why, whylen, __VA_ARGS__);            \
  } while (0)

int pusher__json_depth_ok(const char *in, size_t len, int max_depth) {
  int depth = 0, in_str = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = in[i];
    if (in_str) {
      if (ch == '\\') i++;
      else if (ch == '"') in_str = 0;
      continue;
    }
    if (ch == '"') in_str = 1;
    else if (ch == '{' || ch == '[') {
      if (++depth > max_depth) return 0;
    } else if (ch == '}' || ch == ']') {
      if (depth > 0) depth--;
    }
  }
  return 1;
}

/* JSON text of a value into mem-allocated storage. */
static int dump_value(const pusher_mem *mem, const json_t *v, char **out, size_t *outlen) {
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  size_t n = json_dumpb(v, NULL, 0, flags);
  if (n == 0) return PUSHER_ERR_NOMEM;
  char *buf = pusher__malloc(mem, n + 1);
  if (!buf) return PUSHER_ERR_NOMEM;
  if (json_dumpb(v, buf, n, flags) != n) {
    pusher__free(mem, buf);
    return PUSHER_ERR_INTERNAL;
  }
  buf[n] = '\0';
  *out = buf;
  *outlen = n;
  return 0;
}

static json_t *parse_capped(const char *s, size_t len, size_t flags) {
  if (!pusher__json_depth_ok(s, len, PUSHER__JSON_MAX_DEPTH)) return NULL;
  json_error_t err;
  return json_loadb(s, len, flags | JSON_ALLOW_NUL, &err);
}

void pusher__msg_free(const pusher_mem *mem, pusher__msg *m) {
  if (!m) return;
  pusher__free(mem, m->event);
  pusher__free(mem, m->channel);
  pusher__free(mem, m->data);
  pusher__free(mem, m->user_id);
  memset(m, 0, sizeof(*m));
}

int pusher__proto_decode(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                         char *why, size_t whylen) {
  memset(out, 0, sizeof(*out));
  if (why && whylen) why[0] = '\0';
  if (!in) {
    WHY("empty message");
    return PUSHER_ERR_JSON;
  }
  if (!pusher__json_depth_ok(in, len, PUSHER__JSON_MAX_DEPTH)) {
    WHY("JSON nested deeper than %d levels", PUSHER__JSON_MAX_DEPTH);
    return PUSHER_ERR_JSON;
  }
  json_error_t jerr;
  json_t *root = json_loadb(in, len, JSON_DECODE_ANY, &jerr);
  if (!root) {
    WHY("invalid JSON: %s (line %d column %d)", jerr.text, jerr.line, jerr.column);
    return PUSHER_ERR_JSON;
  }
  int rc = PUSHER_ERR_PROTO;
  if (!json_is_object(root)) {
    WHY("message is not a JSON object");
    goto done;
  }
  json_t *ev = json_object_get(root, "event");
  if (!ev) {
    WHY("message has no \"event\"");
    goto done;
  }
  if (!json_is_string(ev)) {
    WHY("\"event\" is not a string");
    goto done;
  }
  if (json_string_length(ev) == 0 || json_string_length(ev) > PUSHER__MAX_INBOUND_NAME ||
      strlen(json_string_value(ev)) != json_string_length(ev)) {
    WHY("\"event\" is empty, longer than %d bytes or contains NUL", PUSHER__MAX_INBOUND_NAME);
    goto done;
  }
  json_t *ch = json_object_get(root, "channel");
  if (ch && !json_is_null(ch)) {
    if (!json_is_string(ch)) {
      WHY("\"channel\" is not a string");
      goto done;
    }
    if (json_string_length(ch) == 0 || json_string_length(ch) > PUSHER__MAX_INBOUND_NAME ||
        strlen(json_string_value(ch)) != json_string_length(ch)) {
      WHY("\"channel\" is empty, longer than %d bytes or contains NUL", PUSHER__MAX_INBOUND_NAME);
      goto done;
    }
  } else {
    ch = NULL;
  }
  json_t *uid = json_object_get(root, "user_id");
  if (uid && !json_is_null(uid) && !json_is_string(uid) && !json_is_integer(uid)) {
    WHY("\"user_id\" is not a string");
    goto done;
  }
  rc = PUSHER_ERR_NOMEM;
  out->event = pusher__strdup(mem, json_string_value(ev));
  if (!out->event) goto fail;
  if (ch && !(out->channel = pusher__strdup(mem, json_string_value(ch)))) goto fail;
  if (uid && json_is_string(uid)) {
    if (!(out->user_id = pusher__strndup(mem, json_string_value(uid), json_string_length(uid)))) goto fail;
  } else if (uid && json_is_integer(uid)) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(uid));
    if (!(out->user_id = pusher__strdup(mem, tmp))) goto fail;
  }
  json_t *data = json_object_get(root, "data");
  if (data && json_is_string(data)) {
    const char *s = json_string_value(data);
    size_t n = json_string_length(data);
    if (!(out->data = pusher__strndup(mem, s, n))) goto fail;
    out->data_len = n;
    out->data_was_string = 1;
    json_t *inner = parse_capped(s, n, JSON_DECODE_ANY);
    if (inner) {
      out->data_is_json = 1;
      json_decref(inner);
    }
  } else if (data) {
    int r = dump_value(mem, data, &out->data, &out->data_len);
    if (r < 0) {
      rc = r;
      goto fail;
    }
    out->data_is_json = 1;
  }
  rc = 0;
  goto done;
fail:
  WHY("out of memory");
  pusher__msg_free(mem, out);
done:
  json_decref(root);
  return rc;
}

json_t *pusher__msg_data_object(const pusher__msg *m) {
  if (!m->data || !m->data_is_json) return NULL;
  json_t *v = parse_capped(m->data, m->data_len, JSON_DECODE_ANY);
  if (v && !json_is_object(v)) {
    json_decref(v);
    return NULL;
  }
  return v;
}

static int dump_and_free(const pusher_mem *mem, json_t *v, char **out, size_t *outlen) {
  if (!v) return PUSHER_ERR_NOMEM;
  int rc = dump_value(mem, v, out, outlen);
  json_decref(v);
  return rc;
}

int pusher__proto_encode_subscribe(const pusher_mem *mem, const char *channel, const char *auth,
                                   const char *channel_data, char **out, size_t *outlen) {
  if (!channel) return PUSHER_ERR_INVALID_ARGUMENT;
  json_t *data = json_pack("{s:s,s:s}", "auth", auth ? auth : "", "channel", channel);
  if (!data) return PUSHER_ERR_INVALID_ARGUMENT; /* e.g. invalid UTF-8 */
  if (channel_data && json_object_set_new(data, "channel_data", json_string(channel_data)) != 0) {
    json_decref(data);
    return PUSHER_ERR_INVALID_ARGUMENT;
  }
  return dump_and_free(mem, json_pack("{s:s,s:o}", "event", "pusher:subscribe", "data", data), out,
                       outlen);
}

int pusher__proto_encode_unsubscribe(const pusher_mem *mem, const char *channel, char **out,
                                     size_t *outlen) {
  if (!channel) return PUSHER_ERR_INVALID_ARGUMENT;
  return dump_and_free(mem,
                       json_pack("{s:s,s:{s:s}}", "event", "pusher:unsubscribe", "data", "channel", channel),
                       out, outlen);
}

static int encode_const(const pusher_mem *mem, const char *text, char **out, size_t *outlen) {
  char *s = pusher__strdup(mem, text);
  if (!s) return PUSHER_ERR_NOMEM;
  *out = s;
  *outlen = strlen(s);
  return 0;
}

int pusher__proto_encode_ping(const pusher_mem *mem, char **out, size_t *outlen) {
  return encode_const(mem, "{\"event\":\"pusher:ping\",\"data\":{}}", out, outlen);
}

int pusher__proto_encode_pong(const pusher_mem *mem, char **out, size_t *outlen) {
  return encode_const(mem, "{\"event\":\"pusher:pong\",\"data\":{}}", out, outlen);
}

int pusher__proto_encode_event(const pusher_mem *mem, const char *event, const char *channel,
                               const char *data_json, char **out, size_t *outlen) {
  if (!event || !*event) return PUSHER_ERR_INVALID_ARGUMENT;
  json_t *msg = json_pack("{s:s}", "event", event);
  if (!msg) return PUSHER_ERR_INVALID_ARGUMENT;
  if (channel && json_object_set_new(msg, "channel", json_string(channel)) != 0) {
    json_decref(msg);
    return PUSHER_ERR_INVALID_ARGUMENT;
  }
  if (data_json) {
    json_t *d = parse_capped(data_json, strlen(data_json), JSON_DECODE_ANY);
    if (!d || json_object_set_new(msg, "data", d) != 0) {
      json_decref(msg);
      return PUSHER_ERR_INVALID_ARGUMENT;
    }
  }
  return dump_and_free(mem, msg, out, outlen);
}

int pusher__proto_encode_subscription_error(const pusher_mem *mem, const char *type, const char *message,
                                            int status, char **out, size_t *outlen) {
  json_t *o = json_pack("{s:s,s:s}", "type", type ? type : "AuthError", "error", message ? message : "");
  if (!o) o = json_pack("{s:s,s:s}", "type", "AuthError", "error", "(message is not valid UTF-8)");
  if (!o) return PUSHER_ERR_NOMEM;
  json_object_set_new(o, "status", status > 0 ? json_integer(status) : json_null());
  return dump_and_free(mem, o, out, outlen);
}

int pusher__proto_encode_signin(const pusher_mem *mem, const char *auth, const char *user_data,
                                char **out, size_t *outlen) {
  if (!auth || !user_data) return PUSHER_ERR_INVALID_ARGUMENT;
  json_t *m = json_pack("{s:s,s:{s:s,s:s}}", "event", "pusher:signin", "data", "auth", auth, "user_data",
                        user_data);
  if (!m) return PUSHER_ERR_INVALID_ARGUMENT;
  return dump_and_free(mem, m, out, outlen);
}

int pusher__proto_dump(const pusher_mem *mem, json_t *v, char **out, size_t *outlen) {
  return dump_and_free(mem, v, out, outlen);
}

json_t *pusher__json_parse(const char *s, size_t len) {
  if (!s) return NULL;
  return parse_capped(s, len, JSON_DECODE_ANY);
}
