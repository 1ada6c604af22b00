/* Publishing through the Pusher HTTP API: see include/pusher/rest.h.
 *
 * One synchronous libcurl easy handle per pusher_rest, reused across
 * requests (connection reuse).  The request is signed by lib/core/sign.c
 * (auth_version 1.0); bodies are built with jansson; private-encrypted-
 * channels are sealed with lib/core/crypto.c, a fresh random nonce per
 * event, with the key SHA-256(channel || master key) as the server SDKs
 * derive it. */
#include <pusher/rest.h>
#include <pusher/version.h>

#include "core/crypto.h"
#include "core/mem.h"
#include "core/sign.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define REST_APP_ID_MAX 128
#define REST_CHANNELS_MAX 100
#define REST_BATCH_MAX 10
#define REST_EVENT_NAME_MAX 200
#define REST_HOST_MAX 255
#define REST_DEFAULT_REPLY_MAX (1024u * 1024u)
#define ENC_PREFIX "private-encrypted-"

struct pusher_rest {
  pusher_mem mem;
  char *app_id, *key, *secret, *host, *ca_file;
  int port, tls, insecure, has_master;
  long timeout_ms;
  size_t max_reply;
  uint8_t master[PUSHER__SECRETBOX_KEYBYTES];
  CURL *curl;
  char detail[512];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc = -1;
static void curl_init(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int fail(pusher_rest *r, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(pusher_rest *r, int rv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->detail, sizeof r->detail, fmt, ap);
  va_end(ap);
  return rv;
}

/* ------------------------------------------------------------ lifecycle */

void pusher_rest_options_default(pusher_rest_options *o) {
  if (o == NULL) return;
  memset(o, 0, sizeof *o);
  o->cluster = "mt1";
  o->tls = 1;
  o->timeout = 30;
  o->max_reply = REST_DEFAULT_REPLY_MAX;
}

static int app_id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > REST_APP_ID_MAX) return 0;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          *s == '-' || *s == '_' || *s == '.'))
      return 0;
  return 1;
}

/* A host name or address for a URL: printable, no URL delimiters. */
static int host_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > REST_HOST_MAX) return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || strchr("/?#@[]", *p)) return 0;
  return 1;
}

static int options_ok(const pusher_rest_options *o) {
  if (!o || !o->app_id || !o->key || !*o->key || !o->secret || !*o->secret) return 0;
  if (!app_id_ok(o->app_id)) return 0;
  if (o->port < 0 || o->port > 65535) return 0;
  if (!(o->timeout > 0 && o->timeout <= 86400)) return 0;
  if (o->host ? !host_ok(o->host) : (!o->cluster || !host_ok(o->cluster))) return 0;
  if (o->ca_file && !*o->ca_file) return 0;
  return o->max_reply >= 64;
}

static void rest_free(pusher_rest *r) {
  const pusher_mem *m = &r->mem;
  if (r->curl) curl_easy_cleanup(r->curl);
  pusher__free(m, r->app_id);
  pusher__free(m, r->key);
  if (r->secret) {
    OPENSSL_cleanse(r->secret, strlen(r->secret));
    pusher__free(m, r->secret);
  }
  pusher__free(m, r->host);
  pusher__free(m, r->ca_file);
  OPENSSL_cleanse(r->master, sizeof r->master);
  pusher_mem mc = r->mem;
  pusher__free(&mc, r);
}

static char *default_host(const pusher_mem *m, const char *cluster) {
  size_t n = strlen(cluster) + sizeof "api-.pusher.com";
  char *s = pusher__malloc(m, n);
  if (s) snprintf(s, n, "api-%s.pusher.com", cluster);
  return s;
}

int pusher_rest_new(pusher_rest **out, const pusher_rest_options *o) {
  if (out == NULL || !options_ok(o)) return PUSHER_ERR_INVALID_ARGUMENT;
  uint8_t master[PUSHER__SECRETBOX_KEYBYTES];
  if (o->encryption_master_key &&
      pusher__crypto_key_from_b64(o->encryption_master_key, master, NULL, 0) != 0)
    return PUSHER_ERR_INVALID_ARGUMENT;
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != 0) return PUSHER_ERR_INTERNAL;
  pusher_rest *r = pusher__calloc(o->mem, 1, sizeof *r);
  if (r == NULL) return PUSHER_ERR_NOMEM;
  pusher__mem_copy(&r->mem, o->mem);
  const pusher_mem *m = &r->mem;
  r->app_id = pusher__strdup(m, o->app_id);
  r->key = pusher__strdup(m, o->key);
  r->secret = pusher__strdup(m, o->secret);
  r->host = o->host ? pusher__strdup(m, o->host) : default_host(m, o->cluster);
  r->ca_file = pusher__strdup(m, o->ca_file);
  r->curl = curl_easy_init();
  if (!r->app_id || !r->key || !r->secret || !r->host || (o->ca_file && !r->ca_file) ||
      !r->curl) {
    int rv = r->curl ? PUSHER_ERR_NOMEM : PUSHER_ERR_INTERNAL;
    rest_free(r);
    return rv;
  }
  r->tls = o->tls ? 1 : 0;
  r->port = o->port ? o->port : (r->tls ? 443 : 80);
  r->insecure = o->tls_insecure ? 1 : 0;
  r->timeout_ms = (long)(o->timeout * 1000.0);
  if (r->timeout_ms < 1) r->timeout_ms = 1;
  r->max_reply = o->max_reply;
  if (o->encryption_master_key) {
    memcpy(r->master, master, sizeof master);
    r->has_master = 1;
  }
  OPENSSL_cleanse(master, sizeof master);
  *out = r;
  return 0;
}

void pusher_rest_del(pusher_rest *r) {
  if (r) rest_free(r);
}

void pusher_rest_reply_free(pusher_rest_reply *reply) {
  if (reply == NULL) return;
  /* Bodies are allocated with libc (see on_body): no allocator is needed. */
  pusher__free(NULL, reply->body);
  memset(reply, 0, sizeof *reply);
}

const char *pusher_rest_error_detail(const pusher_rest *r) {
  return r ? r->detail : "";
}

/* ------------------------------------------------------------ HTTP */

typedef struct body_sink {
  pusher__buf buf;
  size_t max;
  int too_large, nomem;
} body_sink;

static size_t on_body(char *p, size_t size, size_t nmemb, void *user) {
  body_sink *s = user;
  size_t n = size * nmemb;
  if (s->buf.len + n > s->max) {
    s->too_large = 1;
    return 0;
  }
  if (pusher__buf_append(&s->buf, p, n) != 0) {
    s->nomem = 1;
    return 0;
  }
  return n;
}

/* A 2xx reply is still a failure when it is a JSON object with "error". */
static int body_has_error(const char *body, size_t len) {
  if (body == NULL || len == 0) return 0;
  json_t *j = json_loadb(body, len, 0, NULL);
  int bad = json_is_object(j) && json_object_get(j, "error") != NULL;
  json_decref(j);
  return bad;
}

/* The first line of a reply body, for error details. */
static int first_line_len(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && i < 200 && s[i] != '\n' && s[i] != '\r') i++;
  return (int)i;
}

/* OpenSSL says "wrong version number" (or "packet length too long") when
 * the first bytes of the server's answer are not a TLS record: in practice
 * a plain-HTTP server answering our ClientHello. */
static int looks_like_plain_server(const char *err) {
  return strstr(err, "wrong version number") || strstr(err, "packet length too long") ||
         strstr(err, "http request");
}

/* The URL without its signed query string, for error details. */
static const char *strip_query(char *url) {
  char *q = strchr(url, '?');
  if (q) *q = '\0';
  return url;
}

static int curl_error(pusher_rest *r, CURLcode cc, const char *errbuf, const char *url) {
  const char *what = errbuf[0] ? errbuf : curl_easy_strerror(cc);
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
    return fail(r, PUSHER_ERR_DNS, "%s (%s)", what, url);
  case CURLE_COULDNT_CONNECT:
    return fail(r, PUSHER_ERR_CONNREFUSED, "%s (%s)", what, url);
  case CURLE_OPERATION_TIMEDOUT:
    return fail(r, PUSHER_ERR_TIMEOUT, "%s (%s)", what, url);
  case CURLE_PEER_FAILED_VERIFICATION:
    return fail(r, PUSHER_ERR_TLS_VERIFY, "%s (%s)", what, url);
  case CURLE_SSL_CONNECT_ERROR:
    if (looks_like_plain_server(what))
      return fail(r, PUSHER_ERR_TLS,
                  "TLS handshake failed (%s): the server does not speak TLS on this port: "
                  "use --no-tls / tls = 0",
                  what);
    return fail(r, PUSHER_ERR_TLS, "%s (%s)", what, url);
  default:
    return fail(r, PUSHER_ERR_IO, "%s (%s)", what, url);
  }
}

/* Build http[s]://host:port/path?query into *url (allocated). */
static int build_url(pusher_rest *r, const char *path, const char *query, char **url) {
  int v6 = strchr(r->host, ':') != NULL;
  size_t n = strlen(r->host) + strlen(path) + strlen(query) + 32;
  char *u = pusher__malloc(&r->mem, n);
  if (u == NULL) return PUSHER_ERR_NOMEM;
  snprintf(u, n, "%s://%s%s%s:%d%s?%s", r->tls ? "https" : "http", v6 ? "[" : "", r->host,
           v6 ? "]" : "", r->port, path, query);
  *url = u;
  return 0;
}

static void setup_curl(pusher_rest *r, CURL *h, const char *url, const char *method,
                       const char *body, struct curl_slist *hdrs, body_sink *sink,
                       char *errbuf) {
  static char ua[] = "libpusher/" PUSHER_VERSION;
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (r->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
  if (r->insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

/* Hand the body to the reply (or drop it) and decide the result. */
static int finish_reply(pusher_rest *r, long status, body_sink *sink, pusher_rest_reply *reply) {
  /* The reply body is given out with libc's allocator so that
   * pusher_rest_reply_free() needs no handle. */
  char *body = pusher__malloc(NULL, sink->buf.len + 1);
  if (body == NULL) return fail(r, PUSHER_ERR_NOMEM, "out of memory");
  if (sink->buf.len) memcpy(body, sink->buf.data, sink->buf.len);
  body[sink->buf.len] = '\0';
  size_t len = sink->buf.len;
  int rv = 0;
  if (status < 200 || status > 299 || body_has_error(body, len)) {
    rv = fail(r, PUSHER_ERR_HTTP, "HTTP %ld: %.*s", status, first_line_len(body, len), body);
  }
  if (reply) {
    reply->status = status;
    reply->body = body;
    reply->body_len = len;
  } else {
    pusher__free(NULL, body);
  }
  return rv;
}

static int perform(pusher_rest *r, const char *method, const char *path, const pusher_kv *params,
                   size_t nparams, const char *body, pusher_rest_reply *reply) {
  char *query = NULL, *url = NULL;
  size_t blen = body ? strlen(body) : 0;
  int rv = pusher__rest_sign(&r->mem, method, path, params, nparams, body, blen, r->key, r->secret,
                             (int64_t)time(NULL), &query, NULL);
  if (rv != 0) return fail(r, rv, "cannot sign the request: %s", pusher_strerror(rv));
  rv = build_url(r, path, query, &url);
  pusher__free(&r->mem, query);
  if (rv != 0) return fail(r, rv, "out of memory");

  char errbuf[CURL_ERROR_SIZE] = "";
  body_sink sink;
  pusher__buf_init(&sink.buf, &r->mem, 0);
  sink.max = r->max_reply;
  sink.too_large = sink.nomem = 0;
  struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  struct curl_slist *h2 = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
  if (h2 == NULL) {
    curl_slist_free_all(hdrs);
    pusher__free(&r->mem, url);
    return fail(r, PUSHER_ERR_NOMEM, "out of memory");
  }
  setup_curl(r, r->curl, url, method, body, hdrs, &sink, errbuf);
  CURLcode cc = curl_easy_perform(r->curl);
  long status = 0;
  curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
  if (sink.too_large)
    rv = fail(r, PUSHER_ERR_TOO_LARGE, "the reply is larger than %zu bytes", r->max_reply);
  else if (sink.nomem)
    rv = fail(r, PUSHER_ERR_NOMEM, "out of memory");
  else if (cc != CURLE_OK)
    rv = curl_error(r, cc, errbuf, strip_query(url));
  else
    rv = finish_reply(r, status, &sink, reply);
  curl_slist_free_all(hdrs);
  pusher__buf_free(&sink.buf);
  pusher__free(&r->mem, url);
  return rv;
}

static int method_ok(const char *m) {
  return m && (strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0);
}

static int path_ok(const char *p) {
  if (!p || p[0] != '/' || strlen(p) > 1024) return 0;
  for (const unsigned char *c = (const unsigned char *)p; *c; c++)
    if (*c <= 0x20 || *c >= 0x7f || *c == '?' || *c == '#') return 0;
  return 1;
}

int pusher_rest_request(pusher_rest *r, const char *method, const char *path,
                        const pusher_kv *params, size_t nparams, const char *body,
                        pusher_rest_reply *reply) {
  if (reply) memset(reply, 0, sizeof *reply);
  if (r == NULL) return PUSHER_ERR_INVALID_ARGUMENT;
  r->detail[0] = '\0';
  if (!method_ok(method)) return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "method must be GET or POST");
  if (!path_ok(path))
    return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "path must start with '/' and have no query");
  if (nparams && !params) return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "params is NULL");
  for (size_t i = 0; i < nparams; i++) {
    const char *n = params[i].name;
    if (!n || !*n || !params[i].value || strncmp(n, "auth_", 5) == 0 || strcmp(n, "body_md5") == 0)
      return fail(r, PUSHER_ERR_INVALID_ARGUMENT,
                  "params[%zu] needs a name (not auth_* or body_md5) and a value", i);
  }
  if (body && strcmp(method, "POST") != 0)
    return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "a body needs POST");
  return perform(r, method, path, params, nparams, body, reply);
}

/* ------------------------------------------------------------ events */

static int is_encrypted(const char *channel) {
  return strncmp(channel, ENC_PREFIX, sizeof ENC_PREFIX - 1) == 0;
}

static int utf8_ok(const char *s) {
  json_t *j = json_string(s); /* jansson validates UTF-8 */
  json_decref(j);
  return j != NULL;
}

static int check_event(pusher_rest *r, const pusher_rest_event *ev) {
  if (ev == NULL) return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "the event is NULL");
  size_t n = ev->name ? strlen(ev->name) : 0;
  if (n == 0 || n > REST_EVENT_NAME_MAX)
    return fail(r, PUSHER_ERR_BAD_EVENT_NAME, "the event name must be 1-%d bytes",
                REST_EVENT_NAME_MAX);
  if (strncmp(ev->name, "pusher:", 7) == 0 || strncmp(ev->name, "pusher_internal:", 16) == 0)
    return fail(r, PUSHER_ERR_BAD_EVENT_NAME,
                "'%.200s': event names starting with 'pusher:' or 'pusher_internal:' are "
                "reserved by Pusher",
                ev->name);
  if (!utf8_ok(ev->name) || (ev->info && !utf8_ok(ev->info)))
    return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "the event name and info must be valid UTF-8");
  if (ev->socket_id && !pusher__valid_socket_id(ev->socket_id))
    return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "socket_id '%.64s' is not of the form 123.456",
                ev->socket_id);
  return 0;
}

static int check_channel(pusher_rest *r, const char *ch) {
  if (!pusher__valid_channel_name(ch))
    return fail(r, PUSHER_ERR_BAD_CHANNEL_NAME,
                "'%.200s' is not a valid channel name (1-200 characters of "
                "A-Z a-z 0-9 _ - = @ , . ;)",
                ch ? ch : "(null)");
  if (is_encrypted(ch) && !r->has_master)
    return fail(r, PUSHER_ERR_UNSUPPORTED,
                "'%.200s' is an encrypted channel: set encryption_master_key", ch);
  return 0;
}

/* The "data" member: the string itself, or sealed for an encrypted channel. */
static int event_data(pusher_rest *r, const char *channel, const char *data, json_t **out) {
  const char *d = data ? data : "";
  if (!is_encrypted(channel)) {
    *out = json_string(d);
    return *out ? 0 : fail(r, PUSHER_ERR_INVALID_ARGUMENT, "the data is not valid UTF-8");
  }
  uint8_t key[PUSHER__SECRETBOX_KEYBYTES], nonce[PUSHER__SECRETBOX_NONCEBYTES];
  pusher__crypto_shared_secret(channel, r->master, sizeof r->master, key);
  if (RAND_bytes(nonce, sizeof nonce) != 1) {
    OPENSSL_cleanse(key, sizeof key);
    return fail(r, PUSHER_ERR_INTERNAL, "no random bytes for the nonce");
  }
  char *sealed = NULL;
  size_t slen = 0;
  int rv = pusher__crypto_seal(&r->mem, key, nonce, d, strlen(d), &sealed, &slen);
  OPENSSL_cleanse(key, sizeof key);
  if (rv != 0) return fail(r, rv, "cannot encrypt the data: %s", pusher_strerror(rv));
  *out = json_stringn(sealed, slen);
  pusher__free(&r->mem, sealed);
  return *out ? 0 : fail(r, PUSHER_ERR_NOMEM, "out of memory");
}

/* Members shared by /events and /batch_events entries. */
static int event_object(pusher_rest *r, const pusher_rest_event *ev, const char *data_channel,
                        json_t *o) {
  json_t *data = NULL;
  int rv = event_data(r, data_channel, ev->data, &data);
  if (rv != 0) return rv;
  json_object_set_new(o, "name", json_string(ev->name));
  json_object_set_new(o, "data", data);
  if (ev->socket_id) json_object_set_new(o, "socket_id", json_string(ev->socket_id));
  if (ev->info) json_object_set_new(o, "info", json_string(ev->info));
  return 0;
}

static int dump_cb(const char *buf, size_t size, void *data) {
  return pusher__buf_append(data, buf, size) == 0 ? 0 : -1;
}

static int post_json(pusher_rest *r, const char *what, json_t *body, pusher_rest_reply *reply) {
  char path[sizeof "/apps//batch_events" + REST_APP_ID_MAX];
  snprintf(path, sizeof path, "/apps/%s/%s", r->app_id, what);
  pusher__buf text;
  pusher__buf_init(&text, &r->mem, 0);
  int dv = json_dump_callback(body, dump_cb, &text, JSON_COMPACT);
  json_decref(body);
  int rv = dv != 0 || pusher__buf_append(&text, "", 1) != 0
               ? fail(r, PUSHER_ERR_NOMEM, "out of memory")
               : perform(r, "POST", path, NULL, 0, (const char *)text.data, reply);
  pusher__buf_free(&text);
  return rv;
}

int pusher_rest_trigger(pusher_rest *r, const char *const *channels, size_t n,
                        const pusher_rest_event *ev, pusher_rest_reply *reply) {
  if (reply) memset(reply, 0, sizeof *reply);
  if (r == NULL) return PUSHER_ERR_INVALID_ARGUMENT;
  r->detail[0] = '\0';
  if (channels == NULL || n == 0 || n > REST_CHANNELS_MAX)
    return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "give 1 to %d channels", REST_CHANNELS_MAX);
  int rv = check_event(r, ev);
  if (rv != 0) return rv;
  json_t *chans = json_array();
  json_t *body = json_object();
  for (size_t i = 0; i < n && rv == 0; i++) {
    rv = check_channel(r, channels[i]);
    if (rv == 0 && n > 1 && is_encrypted(channels[i]))
      rv = fail(r, PUSHER_ERR_UNSUPPORTED,
                "an encrypted channel ('%.200s') must be the only channel of a trigger",
                channels[i]);
    if (rv == 0) json_array_append_new(chans, json_string(channels[i]));
  }
  if (rv == 0) rv = event_object(r, ev, channels[0], body);
  if (rv != 0 || chans == NULL || body == NULL) {
    json_decref(chans);
    json_decref(body);
    return rv ? rv : fail(r, PUSHER_ERR_NOMEM, "out of memory");
  }
  json_object_set_new(body, "channels", chans);
  return post_json(r, "events", body, reply);
}

int pusher_rest_trigger_batch(pusher_rest *r, const pusher_rest_event *events, size_t n,
                              pusher_rest_reply *reply) {
  if (reply) memset(reply, 0, sizeof *reply);
  if (r == NULL) return PUSHER_ERR_INVALID_ARGUMENT;
  r->detail[0] = '\0';
  if (events == NULL || n == 0 || n > REST_BATCH_MAX)
    return fail(r, PUSHER_ERR_INVALID_ARGUMENT, "give 1 to %d events", REST_BATCH_MAX);
  json_t *batch = json_array();
  if (batch == NULL) return fail(r, PUSHER_ERR_NOMEM, "out of memory");
  int rv = 0;
  for (size_t i = 0; i < n && rv == 0; i++) {
    rv = check_event(r, &events[i]);
    if (rv == 0) rv = check_channel(r, events[i].channel);
    json_t *o = rv == 0 ? json_object() : NULL;
    if (rv == 0 && o == NULL) rv = fail(r, PUSHER_ERR_NOMEM, "out of memory");
    if (rv == 0) {
      json_object_set_new(o, "channel", json_string(events[i].channel));
      rv = event_object(r, &events[i], events[i].channel, o);
      json_array_append_new(batch, o);
    }
  }
  json_t *body = rv == 0 ? json_object() : NULL;
  if (rv != 0 || body == NULL) {
    json_decref(batch);
    return rv ? rv : fail(r, PUSHER_ERR_NOMEM, "out of memory");
  }
  json_object_set_new(body, "batch", batch);
  return post_json(r, "batch_events", body, reply);
}
