/* Auth endpoint requests and replies (see authreq.h). */
#include "core/authreq.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/mem.h"
#include "core/members.h"
#include "core/proto.h"

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whylen, const char *fmt, ...) {
  if (!why || whylen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ encoding */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c == 0xe0) len = 3, lo = 0xa0;
  else if (c >= 0xe1 && c <= 0xec) len = 3;
  else if (c == 0xed) len = 3, hi = 0x9f;
  else if (c >= 0xee && c <= 0xef) len = 3;
  else if (c == 0xf0) len = 4, lo = 0x90;
  else if (c >= 0xf1 && c <= 0xf3) len = 4;
  else if (c == 0xf4) len = 4, hi = 0x8f;
  else return 0;
  if (n < len) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  return len;
}

static int uri_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '!' || c == '~' || c == '*' || c == '\'' || c == '(' || c == ')';
}

int pusher__uri_encode_component(pusher__buf *b, const char *s, size_t len) {
  static const char hexd[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    size_t k = utf8_seq(p + i, len - i);
    if (k == 0) return PUSHER_ERR_INVALID_ARGUMENT;
    size_t start = i;
    while (i < len && uri_unreserved(p[i])) i++;
    if (i > start) {
      int e = pusher__buf_append(b, p + start, i - start);
      if (e) return e;
      continue;
    }
    for (size_t j = 0; j < k; j++) {
      char esc[3] = {'%', hexd[p[i + j] >> 4], hexd[p[i + j] & 15]};
      int e = pusher__buf_append(b, esc, 3);
      if (e) return e;
    }
    i += k;
  }
  return 0;
}

static int append_pair(pusher__buf *b, int amp, const char *name, const char *value) {
  int e;
  if (!name || !*name || !value) return PUSHER_ERR_INVALID_ARGUMENT;
  if (amp && (e = pusher__buf_append(b, "&", 1))) return e;
  if ((e = pusher__uri_encode_component(b, name, strlen(name)))) return e;
  if ((e = pusher__buf_append(b, "=", 1))) return e;
  return pusher__uri_encode_component(b, value, strlen(value));
}

static int append_form(pusher__buf *b, int amp, const char *socket_id, const char *channel,
                       const pusher_kv *params, size_t nparams) {
  int e;
  if (!socket_id) return PUSHER_ERR_INVALID_ARGUMENT;
  if (nparams && !params) return PUSHER_ERR_INVALID_ARGUMENT;
  if ((e = append_pair(b, amp, "socket_id", socket_id))) return e;
  if (channel && (e = append_pair(b, 1, "channel_name", channel))) return e;
  for (size_t i = 0; i < nparams; i++)
    if ((e = append_pair(b, 1, params[i].name, params[i].value))) return e;
  return 0;
}

static int finish(pusher__buf *b, int e, char **out, size_t *outlen) {
  if (e == 0) e = pusher__buf_append(b, "", 1); /* NUL */
  if (e != 0) {
    pusher__buf_free(b);
    return e;
  }
  *out = (char *)b->data;
  if (outlen) *outlen = b->len - 1;
  return 0;
}

int pusher__authreq_form(const pusher_mem *mem, const char *socket_id, const char *channel,
                         const pusher_kv *params, size_t nparams, char **out, size_t *outlen) {
  *out = NULL;
  if (outlen) *outlen = 0;
  pusher__buf b;
  pusher__buf_init(&b, mem, PUSHER__AUTH_REQUEST_MAX);
  int e = append_form(&b, 0, socket_id, channel, params, nparams);
  return finish(&b, e, out, outlen);
}

int pusher__authreq_jsonp_url(const pusher_mem *mem, const char *url, const char *callback,
                              const char *socket_id, const char *channel, const pusher_kv *params,
                              size_t nparams, char **out, size_t *outlen) {
  *out = NULL;
  if (outlen) *outlen = 0;
  if (!url || !*url) return PUSHER_ERR_INVALID_ARGUMENT;
  if (!callback) callback = PUSHER__JSONP_CALLBACK;
  size_t ulen = strcspn(url, "#");
  pusher__buf b;
  pusher__buf_init(&b, mem, PUSHER__AUTH_REQUEST_MAX);
  int e = pusher__buf_append(&b, url, ulen);
  if (!e) {
    const char *q = memchr(url, '?', ulen);
    const char *sep = !q ? "?" : (q == url + ulen - 1 || url[ulen - 1] == '&') ? "" : "&";
    e = pusher__buf_append(&b, sep, strlen(sep));
  }
  if (!e) e = append_pair(&b, 0, "callback", callback);
  if (!e) e = append_form(&b, 1, socket_id, channel, params, nparams);
  return finish(&b, e, out, outlen);
}

static int has_http_scheme(const char *s, size_t *schemelen) {
  if (strncasecmp(s, "http://", 7) == 0) return *schemelen = 7, 1;
  if (strncasecmp(s, "https://", 8) == 0) return *schemelen = 8, 1;
  return 0;
}

int pusher__authreq_url(const pusher_mem *mem, const char *origin, const char *endpoint, char **out) {
  *out = NULL;
  size_t sl;
  if (!endpoint || !*endpoint) return PUSHER_ERR_INVALID_ARGUMENT;
  if (has_http_scheme(endpoint, &sl)) {
    if (!endpoint[sl] || endpoint[sl] == '/') return PUSHER_ERR_INVALID_ARGUMENT;
    return (*out = pusher__strdup(mem, endpoint)) ? 0 : PUSHER_ERR_NOMEM;
  }
  if (!origin || !has_http_scheme(origin, &sl) || !origin[sl] || origin[sl] == '/')
    return PUSHER_ERR_INVALID_ARGUMENT;
  size_t olen;
  if (endpoint[0] == '/') {
    olen = sl + strcspn(origin + sl, "/?#"); /* scheme://authority */
  } else {
    olen = strcspn(origin, "?#");
    while (olen > sl && origin[olen - 1] == '/') olen--;
  }
  pusher__buf b;
  pusher__buf_init(&b, mem, PUSHER__AUTH_REQUEST_MAX);
  int e = pusher__buf_append(&b, origin, olen);
  if (!e && endpoint[0] != '/') e = pusher__buf_append(&b, "/", 1);
  if (!e) e = pusher__buf_append(&b, endpoint, strlen(endpoint));
  return finish(&b, e, out, NULL);
}

static int http_token_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

int pusher__authreq_header_line(const pusher_mem *mem, const pusher_kv *h, char **out) {
  *out = NULL;
  if (!h || !h->name || !*h->name || !h->value) return PUSHER_ERR_INVALID_ARGUMENT;
  for (const unsigned char *p = (const unsigned char *)h->name; *p; p++)
    if (!http_token_char(*p)) return PUSHER_ERR_INVALID_ARGUMENT;
  if (strpbrk(h->value, "\r\n")) return PUSHER_ERR_INVALID_ARGUMENT;
  pusher__buf b;
  pusher__buf_init(&b, mem, PUSHER__AUTH_REQUEST_MAX);
  int e = pusher__buf_appendf(&b, "%s: %s", h->name, h->value);
  return finish(&b, e, out, NULL);
}

/* ------------------------------------------------------------------ replies */

int pusher__auth_shape_ok(const char *s) {
  if (!s) return 0;
  const char *colon = strchr(s, ':');
  if (!colon || colon == s || colon - s > 200) return 0;
  for (const char *p = s; p < colon; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) return 0;
  const char *h = colon + 1;
  size_t n = 0;
  for (; h[n]; n++)
    if (!((h[n] >= '0' && h[n] <= '9') || (h[n] >= 'a' && h[n] <= 'f'))) return 0;
  return n == 64;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int jsonp_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '$' || c == '.' || c == '[' || c == ']' || c == '\'' || c == '"';
}

/* Locate the JSON text: the whole body, or the argument of name(...). */
static int unwrap(const char *body, size_t len, const char **js, size_t *jslen, char *why, size_t whylen) {
  size_t i = 0, end = len;
  if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) i = 3; /* BOM */
  while (i < end && is_ws(body[i])) i++;
  while (end > i && is_ws(body[end - 1])) end--;
  if (i == end) {
    set_why(why, whylen, "auth reply is empty");
    return PUSHER_ERR_JSON;
  }
  if (body[i] == '{' || body[i] == '[' || body[i] == '"') {
    *js = body + i;
    *jslen = end - i;
    return 0;
  }
  size_t n = i;
  while (n < end && jsonp_name_char(body[n])) n++;
  size_t p = n;
  while (p < end && is_ws(body[p])) p++;
  if (n == i || p == end || body[p] != '(') {
    set_why(why, whylen, "auth reply is neither JSON nor a JSONP callback call");
    return PUSHER_ERR_JSON;
  }
  if (body[end - 1] == ';') {
    end--;
    while (end > p && is_ws(body[end - 1])) end--;
  }
  if (end <= p + 1 || body[end - 1] != ')') {
    set_why(why, whylen, "auth reply: JSONP call is not closed by ')'");
    return PUSHER_ERR_JSON;
  }
  *js = body + p + 1;
  *jslen = end - 1 - (p + 1);
  return 0;
}

/* A string member: NULL/absent/null => *out NULL and 0; wrong type => -1. */
static int get_string(json_t *root, const char *name, const char **out) {
  *out = NULL;
  json_t *v = json_object_get(root, name);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) return -1;
  *out = json_string_value(v);
  return 0;
}

static json_t *parse_inner(const char *s) {
  size_t n = strlen(s);
  if (!pusher__json_depth_ok(s, n, PUSHER__JSON_MAX_DEPTH)) return NULL;
  json_error_t jerr;
  json_t *v = json_loadb(s, n, JSON_DECODE_ANY, &jerr);
  if (v && !json_is_object(v)) {
    json_decref(v);
    v = NULL;
  }
  return v;
}

int pusher__auth_reply_parse(const pusher_mem *mem, const char *body, size_t len, int flags,
                             const char *app_key, pusher__auth_reply *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  if (!body) {
    set_why(why, whylen, "auth reply is empty");
    return PUSHER_ERR_JSON;
  }
  if (len > PUSHER__AUTH_REPLY_MAX) {
    set_why(why, whylen, "auth reply of %zu bytes is over the %u-byte cap", len, PUSHER__AUTH_REPLY_MAX);
    return PUSHER_ERR_TOO_LARGE;
  }
  const char *js;
  size_t jslen;
  int rc = unwrap(body, len, &js, &jslen, why, whylen);
  if (rc) return rc;
  if (!pusher__json_depth_ok(js, jslen, PUSHER__JSON_MAX_DEPTH)) {
    set_why(why, whylen, "auth reply: JSON nested too deep");
    return PUSHER_ERR_JSON;
  }
  json_error_t jerr;
  json_t *root = json_loadb(js, jslen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (!root) {
    set_why(why, whylen, "auth reply is not valid JSON (%s)", jerr.text);
    return PUSHER_ERR_JSON;
  }
  rc = PUSHER_ERR_AUTH;
  const char *auth, *cd, *ss, *ud;
  json_t *inner = NULL;
  if (!json_is_object(root)) {
    set_why(why, whylen, "auth reply is not a JSON object");
    goto done;
  }
  if (get_string(root, "auth", &auth) || !auth) {
    set_why(why, whylen, "auth reply: \"auth\" is missing or not a string");
    goto done;
  }
  if (!pusher__auth_shape_ok(auth)) {
    set_why(why, whylen, "auth reply: \"auth\" is not of the form <key>:<64 hex digits>");
    goto done;
  }
  if (app_key && (strlen(app_key) != (size_t)(strchr(auth, ':') - auth) ||
                  strncmp(auth, app_key, strlen(app_key)) != 0)) {
    set_why(why, whylen, "auth reply: \"auth\" was signed for another app key (expected \"%s\")", app_key);
    goto done;
  }
  if (get_string(root, "channel_data", &cd)) {
    set_why(why, whylen, "auth reply: \"channel_data\" is not a string");
    goto done;
  }
  if (get_string(root, "shared_secret", &ss)) {
    set_why(why, whylen, "auth reply: \"shared_secret\" is not a string");
    goto done;
  }
  if (get_string(root, "user_data", &ud)) {
    set_why(why, whylen, "auth reply: \"user_data\" is not a string");
    goto done;
  }
  if (flags & PUSHER__AUTH_NEED_CHANNEL_DATA) {
    char id[PUSHER__MEMBER_ID_MAX + 1];
    if (!cd) {
      set_why(why, whylen, "auth reply: \"channel_data\" is required for a presence channel");
      goto done;
    }
    if (!(inner = parse_inner(cd))) {
      set_why(why, whylen, "auth reply: \"channel_data\" is not a JSON object");
      goto done;
    }
    if (pusher__members_id_text(json_object_get(inner, "user_id"), id, sizeof id)) {
      set_why(why, whylen, "auth reply: \"channel_data\" has no valid user_id (non-empty string or integer)");
      goto done;
    }
    json_decref(inner);
    inner = NULL;
  }
  if (flags & PUSHER__AUTH_NEED_SHARED_SECRET) {
    uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
    char kwhy[96];
    if (!ss) {
      set_why(why, whylen, "auth reply: \"shared_secret\" is required for an encrypted channel");
      goto done;
    }
    if (pusher__crypto_key_from_b64(ss, key, kwhy, sizeof kwhy)) {
      set_why(why, whylen, "auth reply: %s", kwhy);
      goto done;
    }
  }
  if (flags & PUSHER__AUTH_USER) {
    if (!ud) {
      set_why(why, whylen, "user auth reply: \"user_data\" is missing");
      goto done;
    }
    json_t *id;
    if (!(inner = parse_inner(ud))) {
      set_why(why, whylen, "user auth reply: \"user_data\" is not a JSON object");
      goto done;
    }
    id = json_object_get(inner, "id");
    if (!json_is_string(id) || json_string_length(id) == 0 ||
        strlen(json_string_value(id)) != json_string_length(id)) {
      set_why(why, whylen, "user auth reply: \"user_data\" needs a non-empty string \"id\"");
      goto done;
    }
  }
  rc = PUSHER_ERR_NOMEM;
  if (!(out->auth = pusher__strdup(mem, auth))) goto nomem;
  if (cd && !(out->channel_data = pusher__strdup(mem, cd))) goto nomem;
  if (ss && !(out->shared_secret = pusher__strdup(mem, ss))) goto nomem;
  if (ud && !(out->user_data = pusher__strdup(mem, ud))) goto nomem;
  rc = 0;
  goto done;
nomem:
  set_why(why, whylen, "out of memory");
  pusher__auth_reply_free(mem, out);
done:
  json_decref(inner);
  json_decref(root);
  return rc;
}

void pusher__auth_reply_free(const pusher_mem *mem, pusher__auth_reply *r) {
  if (!r) return;
  pusher__free(mem, r->auth);
  pusher__free(mem, r->channel_data);
  pusher__free(mem, r->shared_secret);
  pusher__free(mem, r->user_data);
  memset(r, 0, sizeof *r);
}
