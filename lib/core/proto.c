/* Pusher protocol 7 message codec (see proto.h). */
#include "core/proto.h"

#include <stdint.h>
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

/* ---- Validating JSON scanner ------------------------------------------
 * Accepts exactly what json_loadb(JSON_DECODE_ANY [| JSON_ALLOW_NUL]) of
 * jansson 2.x accepts, within the nesting cap of pusher__json_depth_ok, so
 * that the answer never differs from a full parse (see proto.h).  Strict
 * UTF-8 everywhere, \u escapes with paired surrogates, no \u0000 in keys
 * (nor in strings without allow_nul), integers within int64.  Reals that
 * might overflow a double are left to strtod via jansson (-1). */
typedef struct jscan {
  const unsigned char *p, *end;
  int allow_nul, max_depth, unsure;
} jscan;

static void js_ws(jscan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int js_hex4(const unsigned char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return 0;
    v = (v << 4) | d;
  }
  *out = v;
  return 1;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), 0 if invalid. */
static size_t js_utf8(const unsigned char *p, const unsigned char *end) {
  unsigned c = *p, cp, min;
  size_t need;
  if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1Fu, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0Fu, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07u, min = 0x10000;
  else return 0;
  if ((size_t)(end - p) <= need) return 0;
  for (size_t k = 1; k <= need; k++) {
    if ((p[k] & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (p[k] & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return need + 1;
}

/* Nonzero when one of the 8 bytes of w is a quote, a backslash, a control
 * character (< 0x20) or not ASCII: the bytes js_string must look at. */
static inline uint64_t js_special8(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
  /* (x - 1) & ~x has the high bit of a byte set when that byte is zero (or
   * when a borrow from a lower zero byte reaches it); w < 0x20 likewise via
   * w - 0x20.  The lowest flagged byte is always a real one. */
  return ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | (w & high);
}

/* At the opening quote.  *esc is set when the string has a backslash. */
static int js_string(jscan *s, int nul_ok, int *esc) {
  const unsigned char *p = s->p + 1, *end = s->end;
  for (;;) {
    /* 8 plain ASCII bytes at a time */
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      uint64_t m = js_special8(w) & 0x8080808080808080ull;
      if (m) {
        /* the lowest flagged byte is a real one (a borrow only carries
         * upwards): skip the plain bytes before it (little-endian load) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        p += (size_t)__builtin_ctzll(m) >> 3;
#endif
        break;
      }
      p += 8;
    }
    if (p >= end) return 0;
    unsigned c = *p;
    if (c == '"') break;
    if (c < 0x20) return 0;
    if (c < 0x80 && c != '\\') {
      p++;
      continue;
    }
    if (c >= 0x80) {
      size_t n = js_utf8(p, end);
      if (!n) return 0;
      p += n;
      continue;
    }
    if (esc) *esc = 1;
    if (end - p < 2) return 0;
    c = p[1];
    if (c != 'u') {
      if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't')
        return 0;
      p += 2;
      continue;
    }
    unsigned v, v2;
    if (end - p < 6 || !js_hex4(p + 2, &v)) return 0;
    p += 6;
    if (v >= 0xD800 && v <= 0xDBFF) {
      if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !js_hex4(p + 2, &v2)) return 0;
      if (v2 < 0xDC00 || v2 > 0xDFFF) return 0;
      p += 6;
    } else if (v >= 0xDC00 && v <= 0xDFFF) {
      return 0;
    } else if (v == 0 && !nul_ok) {
      return 0;
    }
  }
  s->p = p + 1;
  return 1;
}

static int js_isdigit(const jscan *s) { return s->p < s->end && *s->p >= '0' && *s->p <= '9'; }

static int js_number(jscan *s) {
  int neg = 0;
  if (*s->p == '-') s->p++, neg = 1;
  if (!js_isdigit(s)) return 0;
  const unsigned char *ds = s->p;
  if (*s->p == '0') {
    s->p++;
    if (js_isdigit(s)) return 0;
  } else {
    while (js_isdigit(s)) s->p++;
  }
  size_t nint = (size_t)(s->p - ds);
  int real = 0;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!js_isdigit(s)) return 0;
    while (js_isdigit(s)) s->p++;
    real = 1;
  }
  long exp = 0;
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    int eneg = 0;
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) eneg = *s->p++ == '-';
    if (!js_isdigit(s)) return 0;
    while (js_isdigit(s)) {
      if (exp < 100000) exp = exp * 10 + (*s->p - '0');
      s->p++;
    }
    if (eneg) exp = -exp;
    real = 1;
  }
  if (!real) { /* strtoll range, as jansson checks it */
    if (nint < 19) return 1;
    if (nint > 19) return 0;
    return memcmp(ds, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
  }
  /* The value is below 10^(nint+exp): finite when that is <= 10^308. */
  if ((long)nint + exp > 308) s->unsure = 1;
  return 1;
}

static int js_lit(jscan *s, const char *w, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return 0;
  s->p += n;
  /* jansson reads a whole run of letters as one word */
  if (s->p < s->end && ((*s->p | 0x20) >= 'a' && (*s->p | 0x20) <= 'z')) return 0;
  return 1;
}

/* jansson drops a NUL byte that directly ends a number or a word (its
 * lexer cannot push a NUL back): leave such texts to jansson. */
static int js_scalar_end(jscan *s, int ok) {
  if (ok && s->p < s->end && *s->p == 0) s->unsure = 1;
  return ok;
}

static int js_value(jscan *s, int depth) {
  if (s->p >= s->end) return 0;
  switch (*s->p) {
  case '"':
    return js_string(s, s->allow_nul, NULL);
  case 't':
    return js_scalar_end(s, js_lit(s, "true", 4));
  case 'f':
    return js_scalar_end(s, js_lit(s, "false", 5));
  case 'n':
    return js_scalar_end(s, js_lit(s, "null", 4));
  case '[':
    if (depth + 1 > s->max_depth) return 0;
    s->p++;
    js_ws(s);
    if (s->p < s->end && *s->p == ']') {
      s->p++;
      return 1;
    }
    for (;;) {
      if (!js_value(s, depth + 1)) return 0;
      js_ws(s);
      if (s->p >= s->end) return 0;
      if (*s->p == ']') break;
      if (*s->p != ',') return 0;
      s->p++;
      js_ws(s);
    }
    s->p++;
    return 1;
  case '{':
    if (depth + 1 > s->max_depth) return 0;
    s->p++;
    js_ws(s);
    if (s->p < s->end && *s->p == '}') {
      s->p++;
      return 1;
    }
    for (;;) {
      if (s->p >= s->end || *s->p != '"' || !js_string(s, 0, NULL)) return 0;
      js_ws(s);
      if (s->p >= s->end || *s->p != ':') return 0;
      s->p++;
      js_ws(s);
      if (!js_value(s, depth + 1)) return 0;
      js_ws(s);
      if (s->p >= s->end) return 0;
      if (*s->p == '}') break;
      if (*s->p != ',') return 0;
      s->p++;
      js_ws(s);
    }
    s->p++;
    return 1;
  default:
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return js_scalar_end(s, js_number(s));
    return 0;
  }
}

int pusher__json_scan(const char *in, size_t len, int allow_nul, int max_depth) {
  if (!in) return 0;
  jscan s = {(const unsigned char *)in, (const unsigned char *)in + len, allow_nul, max_depth, 0};
  js_ws(&s);
  int ok = js_value(&s, 0);
  js_ws(&s);
  if (s.unsure) return -1;
  return ok && s.p == s.end;
}

int pusher__json_valid(const char *in, size_t len) {
  int r = pusher__json_scan(in, len, 1, PUSHER__JSON_MAX_DEPTH);
  if (r >= 0) return r;
  json_t *v = parse_capped(in, len, JSON_DECODE_ANY);
  if (!v) return 0;
  json_decref(v);
  return 1;
}

/* ---- Fast decode of the common frame shape ----------------------------
 * A valid JSON object whose "event", "channel", "user_id" and "data" are
 * strings (or null, or absent where that is allowed) and whose top-level
 * keys have no escapes.  Anything else is left to the jansson path, which
 * also produces the error texts; both give the same pusher__msg. */
typedef struct jspan {
  const unsigned char *s;
  size_t n;
  int esc;
  char kind; /* 0 absent, 's' string, 'n' null, 'o' other */
} jspan;

static size_t js_put_utf8(unsigned char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decoded length of a validated string span (never longer than the span). */
static size_t js_unescape(const jspan *sp, unsigned char *o) {
  if (!sp->esc) {
    memcpy(o, sp->s, sp->n);
    return sp->n;
  }
  const unsigned char *p = sp->s, *end = sp->s + sp->n;
  size_t k = 0;
  while (p < end) {
    if (*p != '\\') {
      o[k++] = *p++;
      continue;
    }
    unsigned c = p[1], v, v2;
    p += 2;
    switch (c) {
    case 'b': o[k++] = '\b'; break;
    case 'f': o[k++] = '\f'; break;
    case 'n': o[k++] = '\n'; break;
    case 'r': o[k++] = '\r'; break;
    case 't': o[k++] = '\t'; break;
    case 'u':
      js_hex4(p, &v);
      p += 4;
      if (v >= 0xD800 && v <= 0xDBFF) {
        js_hex4(p + 2, &v2);
        p += 6;
        v = ((v - 0xD800) << 10) + (v2 - 0xDC00) + 0x10000;
      }
      k += js_put_utf8(o + k, v);
      break;
    default: o[k++] = (unsigned char)c; break; /* " \ / */
    }
  }
  return k;
}

/* mem-allocated, NUL-terminated decoded string; NULL when out of memory. */
static char *js_dup(const pusher_mem *mem, const jspan *sp, size_t *outlen) {
  unsigned char *b = pusher__malloc(mem, sp->n + 1);
  if (!b) return NULL;
  size_t n = js_unescape(sp, b);
  b[n] = '\0';
  if (outlen) *outlen = n;
  return (char *)b;
}

/* Decoded length without decoding, for the name length checks. */
static size_t js_declen(const jspan *sp) {
  if (!sp->esc) return sp->n;
  size_t k = 0;
  const unsigned char *p = sp->s, *end = sp->s + sp->n;
  while (p < end) {
    if (*p != '\\') {
      k++, p++;
    } else if (p[1] != 'u') {
      k++, p += 2;
    } else {
      unsigned v;
      js_hex4(p + 2, &v);
      p += 6;
      if (v >= 0xD800 && v <= 0xDBFF) k += 4, p += 6;
      else k += v < 0x80 ? 1 : v < 0x800 ? 2 : 3;
    }
  }
  return k;
}

/* Decode sp into the scratch at *w (NUL-terminated); advance *w. */
static char *js_put(unsigned char **w, const jspan *sp, size_t *outlen) {
  unsigned char *b = *w;
  size_t n = js_unescape(sp, b);
  b[n] = '\0';
  *w = b + n + 1;
  if (outlen) *outlen = n;
  return (char *)b;
}

/* 1 decoded, 0 not this shape (use jansson), PUSHER_ERR_NOMEM.  With a
 * scratch (len + PUSHER__DECODE_SLACK bytes at least: every decoded string
 * is no longer than its span in the input, plus four NULs) nothing is
 * allocated and the msg borrows the scratch. */
static int decode_fast(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                       unsigned char *scratch) {
  jscan s = {(const unsigned char *)in, (const unsigned char *)in + len, 0, PUSHER__JSON_MAX_DEPTH, 0};
  jspan ev = {0}, ch = {0}, uid = {0}, data = {0};
  js_ws(&s);
  if (s.p >= s.end || *s.p != '{') return 0;
  s.p++;
  js_ws(&s);
  if (s.p < s.end && *s.p == '}') return 0; /* no "event" */
  for (;;) {
    if (s.p >= s.end || *s.p != '"') return 0;
    const unsigned char *k = s.p + 1;
    int kesc = 0;
    if (!js_string(&s, 0, &kesc) || kesc) return 0;
    size_t kn = (size_t)(s.p - 1 - k);
    js_ws(&s);
    if (s.p >= s.end || *s.p != ':') return 0;
    s.p++;
    js_ws(&s);
    jspan *t = NULL;
    if (kn == 5 && !memcmp(k, "event", 5)) t = &ev;
    else if (kn == 7 && !memcmp(k, "channel", 7)) t = &ch;
    else if (kn == 7 && !memcmp(k, "user_id", 7)) t = &uid;
    else if (kn == 4 && !memcmp(k, "data", 4)) t = &data;
    const unsigned char *vs = s.p;
    if (s.p < s.end && *s.p == '"') {
      int vesc = 0;
      if (!js_string(&s, 0, &vesc)) return 0;
      if (t) t->s = vs + 1, t->n = (size_t)(s.p - 1 - (vs + 1)), t->esc = vesc, t->kind = 's';
    } else {
      if (!js_value(&s, 1)) return 0;
      if (t) t->kind = (s.p - vs == 4 && !memcmp(vs, "null", 4)) ? 'n' : 'o';
    }
    js_ws(&s);
    if (s.p >= s.end) return 0;
    if (*s.p == '}') break;
    if (*s.p != ',') return 0;
    s.p++;
    js_ws(&s);
  }
  s.p++;
  js_ws(&s);
  if (s.p != s.end || s.unsure) return 0;
  if (ev.kind != 's' || (ch.kind != 0 && ch.kind != 'n' && ch.kind != 's') ||
      (uid.kind != 0 && uid.kind != 'n' && uid.kind != 's') || (data.kind != 0 && data.kind != 's'))
    return 0;
  size_t n = js_declen(&ev);
  if (n == 0 || n > PUSHER__MAX_INBOUND_NAME) return 0;
  if (ch.kind == 's' && ((n = js_declen(&ch)) == 0 || n > PUSHER__MAX_INBOUND_NAME)) return 0;
  if (scratch) {
    unsigned char *w = scratch;
    out->borrowed = 1;
    out->event = js_put(&w, &ev, NULL);
    if (ch.kind == 's') out->channel = js_put(&w, &ch, NULL);
    if (uid.kind == 's') out->user_id = js_put(&w, &uid, NULL);
    if (data.kind == 's') {
      out->data = js_put(&w, &data, &out->data_len);
      out->data_was_string = 1;
      out->data_is_json = pusher__json_valid(out->data, out->data_len);
    }
    return 1;
  }
  /* The same allocations, in the same order, as the jansson path. */
  if (!(out->event = js_dup(mem, &ev, NULL))) goto nomem;
  if (ch.kind == 's' && !(out->channel = js_dup(mem, &ch, NULL))) goto nomem;
  if (uid.kind == 's' && !(out->user_id = js_dup(mem, &uid, NULL))) goto nomem;
  if (data.kind == 's') {
    if (!(out->data = js_dup(mem, &data, &out->data_len))) goto nomem;
    out->data_was_string = 1;
    out->data_is_json = pusher__json_valid(out->data, out->data_len);
  }
  return 1;
nomem:
  pusher__msg_free(mem, out);
  return PUSHER_ERR_NOMEM;
}

void pusher__msg_free(const pusher_mem *mem, pusher__msg *m) {
  if (!m) return;
  if (m->borrowed) {
    memset(m, 0, sizeof(*m));
    return;
  }
  pusher__free(mem, m->event);
  pusher__free(mem, m->channel);
  pusher__free(mem, m->data);
  pusher__free(mem, m->user_id);
  memset(m, 0, sizeof(*m));
}

int pusher__proto_decode(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                         char *why, size_t whylen) {
  return pusher__proto_decode_buf(mem, in, len, out, why, whylen, NULL, 0);
}

int pusher__proto_decode_buf(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
                             char *why, size_t whylen, char *scratch, size_t cap) {
  memset(out, 0, sizeof(*out));
  if (why && whylen) why[0] = '\0';
  if (!in) {
    WHY("empty message");
    return PUSHER_ERR_JSON;
  }
  /* Valid, within the depth cap, the usual shape: no jansson needed. */
  if (scratch && (len > SIZE_MAX - PUSHER__DECODE_SLACK || cap < len + PUSHER__DECODE_SLACK)) scratch = NULL;
  int fr = decode_fast(mem, in, len, out, (unsigned char *)scratch);
  if (fr == 1) return 0;
  if (fr < 0) {
    WHY("out of memory");
    return fr;
  }
  return pusher__proto_decode_jansson(mem, in, len, out, why, whylen);
}

int pusher__proto_decode_jansson(const pusher_mem *mem, const char *in, size_t len, pusher__msg *out,
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
    out->data_is_json = pusher__json_valid(s, n);
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
