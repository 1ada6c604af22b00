/* Asynchronous HTTP over libcurl multi + libuv (see http.h). */
#include "uv/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/names.h"
#include "pusher/version.h"

typedef struct http_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  pusher__http *h;     /* NULL once h is torn down */
  pusher_mem mem;      /* copy: the close callback may run after h is gone */
  struct http_sock *prev, *next;
} http_sock;

struct pusher__http {
  pusher_mem mem;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  pusher__http_req *reqs; /* pending, doubly linked */
  size_t npending;
  http_sock *socks;
  int dispatching;        /* depth of user callbacks on the stack */
  int closing;            /* pusher__http_del was called */
  int finished;           /* curl torn down, timer closing */
};

struct pusher__http_req {
  pusher__http *h;
  CURL *easy;
  struct curl_slist *hdrs;
  pusher__buf body;
  size_t max_body;
  int too_large;
  int firing;             /* callback running: cancel is a no-op */
  pusher__http_cb cb;
  void *user;
  char errbuf[CURL_ERROR_SIZE];
  pusher__http_req *prev, *next;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc = -1;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1; }

/* ------------------------------------------------------------------ lists */

static void req_link(pusher__http *h, pusher__http_req *r) {
  r->prev = NULL;
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  h->npending++;
}

static void req_unlink(pusher__http *h, pusher__http_req *r) {
  if (r->prev) r->prev->next = r->next;
  else h->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  h->npending--;
}

static void req_free(pusher__http_req *r) {
  const pusher_mem *mem = &r->h->mem;
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  pusher__buf_free(&r->body);
  pusher__free(mem, r);
}

/* ------------------------------------------------------------------ teardown */

static void on_timer_closed(uv_handle_t *t) {
  pusher__http *h = t->data;
  pusher_mem mem = h->mem;
  pusher__free(&mem, h);
}

static void on_sock_closed(uv_handle_t *p) {
  http_sock *s = p->data;
  pusher_mem mem = s->mem;
  pusher__free(&mem, s);
}

static void sock_close(pusher__http *h, http_sock *s) {
  if (s->prev) s->prev->next = s->next;
  else h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  s->h = NULL;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void finish_del(pusher__http *h) {
  if (h->finished) return;
  h->finished = 1;
  if (h->multi) curl_multi_cleanup(h->multi); /* may report CURL_POLL_REMOVE for cached sockets */
  h->multi = NULL;
  while (h->socks) sock_close(h, h->socks);
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

/* After any entry point that may have run user callbacks. */
static void after_dispatch(pusher__http *h) {
  if (h->dispatching == 0 && h->closing) finish_del(h);
}

/* ------------------------------------------------------------------ completion */

static int map_curl_error(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT: return PUSHER_ERR_TIMEOUT;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return PUSHER_ERR_DNS;
  case CURLE_COULDNT_CONNECT: return PUSHER_ERR_CONNREFUSED;
  case CURLE_PEER_FAILED_VERIFICATION: return PUSHER_ERR_TLS_VERIFY;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_CRL_BADFILE: return PUSHER_ERR_TLS;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR: return PUSHER_ERR_IO;
  case CURLE_OUT_OF_MEMORY: return PUSHER_ERR_NOMEM;
  default: return PUSHER_ERR_HTTP;
  }
}

/* Unlink r from h and curl, run its callback with res, free it. */
static void fire(pusher__http_req *r, pusher__http_result *res) {
  pusher__http *h = r->h;
  req_unlink(h, r);
  if (h->multi) curl_multi_remove_handle(h->multi, r->easy);
  r->firing = 1;
  h->dispatching++;
  r->cb(r, res, r->user);
  h->dispatching--;
  req_free(r);
}

static void complete(pusher__http_req *r, CURLcode rc) {
  pusher__http_result res;
  memset(&res, 0, sizeof res);
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
  if (r->too_large) {
    res.err = PUSHER_ERR_TOO_LARGE;
    res.message = "HTTP response body over the size cap";
  } else if (rc != CURLE_OK) {
    res.err = map_curl_error(rc);
    res.message = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
  } else if (pusher__buf_append(&r->body, "", 1) != 0) {
    res.err = PUSHER_ERR_NOMEM;
    res.message = "out of memory";
  } else {
    res.body = (const char *)r->body.data;
    res.body_len = r->body.len - 1;
    res.message = "OK";
  }
  if (res.err) {
    res.body = "";
    res.body_len = 0;
  }
  fire(r, &res);
}

static void check_done(pusher__http *h) {
  CURLMsg *msg;
  int left;
  while (!h->closing && h->multi && (msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode rc = msg->data.result;
    pusher__http_req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (r) complete(r, rc);
  }
}

/* ------------------------------------------------------------------ curl <-> uv */

static void on_poll(uv_poll_t *p, int status, int events) {
  http_sock *s = p->data;
  pusher__http *h = s->h;
  if (!h || !h->multi) return;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  int running;
  curl_multi_socket_action(h->multi, s->fd, flags, &running);
  check_done(h);
  after_dispatch(h);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  pusher__http *h = userp;
  http_sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      if (h->multi) curl_multi_assign(h->multi, fd, NULL);
      sock_close(h, s);
    }
    return 0;
  }
  if (!s) {
    s = pusher__calloc(&h->mem, 1, sizeof *s);
    if (!s) return -1;
    if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
      pusher__free(&h->mem, s);
      return -1;
    }
    s->poll.data = s;
    s->fd = fd;
    s->h = h;
    s->mem = h->mem;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    curl_multi_assign(h->multi, fd, s);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void on_timeout(uv_timer_t *t) {
  pusher__http *h = t->data;
  if (!h->multi) return;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
  after_dispatch(h);
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  pusher__http *h = userp;
  if (timeout_ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userp) {
  pusher__http_req *r = userp;
  size_t n = size * nmemb;
  if (r->body.len + n > r->max_body) {
    r->too_large = 1;
    return 0; /* curl aborts with CURLE_WRITE_ERROR */
  }
  return pusher__buf_append(&r->body, ptr, n) == 0 ? n : 0;
}

/* ------------------------------------------------------------------ API */

int pusher__http_new(pusher__http **out, uv_loop_t *loop, const pusher_mem *mem) {
  if (!out || !loop) return PUSHER_ERR_INVALID_ARGUMENT;
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != 0) return PUSHER_ERR_INTERNAL;
  pusher_mem m;
  pusher__mem_copy(&m, mem);
  pusher__http *h = pusher__calloc(&m, 1, sizeof *h);
  if (!h) return PUSHER_ERR_NOMEM;
  h->mem = m;
  h->loop = loop;
  if (!(h->multi = curl_multi_init())) {
    pusher__free(&m, h);
    return PUSHER_ERR_NOMEM;
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  *out = h;
  return 0;
}

static void cancel_req(pusher__http_req *r) {
  pusher__http_result res;
  memset(&res, 0, sizeof res);
  res.err = PUSHER_ERR_CANCELED;
  res.body = "";
  res.message = "HTTP request canceled";
  fire(r, &res);
}

void pusher__http_del(pusher__http *h) {
  if (!h || h->closing) return;
  h->closing = 1;
  h->dispatching++;
  while (h->reqs) cancel_req(h->reqs);
  h->dispatching--;
  after_dispatch(h);
}

void pusher__http_cancel(pusher__http_req *r) {
  if (!r || r->firing) return;
  pusher__http *h = r->h;
  h->dispatching++;
  cancel_req(r);
  h->dispatching--;
  after_dispatch(h);
}

size_t pusher__http_pending(const pusher__http *h) { return h ? h->npending : 0; }

static int valid_header(const char *s) {
  if (!s || !strchr(s, ':') || s[0] == ':') return 0;
  return strpbrk(s, "\r\n") == NULL;
}

static int valid_method(const char *m) {
  if (!*m) return 0;
  for (; *m; m++)
    if (!((*m >= 'A' && *m <= 'Z') || *m == '-')) return 0;
  return 1;
}

int pusher__http_request(pusher__http *h, const pusher__http_opts *o, pusher__http_cb cb,
                         void *user_data, pusher__http_req **out) {
  if (out) *out = NULL;
  if (!h || !o || !cb || !o->url) return PUSHER_ERR_INVALID_ARGUMENT;
  if (h->closing) return PUSHER_ERR_INVALID_STATE;
  if (strncasecmp(o->url, "http://", 7) != 0 && strncasecmp(o->url, "https://", 8) != 0)
    return PUSHER_ERR_INVALID_ARGUMENT;
  const char *method = o->method ? o->method : (o->body ? "POST" : "GET");
  if (!valid_method(method)) return PUSHER_ERR_INVALID_ARGUMENT;
  if (o->nheaders && !o->headers) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < o->nheaders; i++)
    if (!valid_header(o->headers[i])) return PUSHER_ERR_INVALID_ARGUMENT;

  pusher__http_req *r = pusher__calloc(&h->mem, 1, sizeof *r);
  if (!r) return PUSHER_ERR_NOMEM;
  r->h = h;
  r->cb = cb;
  r->user = user_data;
  r->max_body = o->max_body ? o->max_body : PUSHER__HTTP_MAX_BODY_DEFAULT;
  pusher__buf_init(&r->body, &h->mem, r->max_body + 1);
  int err = PUSHER_ERR_NOMEM;
  if (!(r->easy = curl_easy_init())) goto fail;
  for (size_t i = 0; i < o->nheaders; i++) {
    struct curl_slist *l = curl_slist_append(r->hdrs, o->headers[i]);
    if (!l) goto fail;
    r->hdrs = l;
  }
  /* No "Expect: 100-continue" round trip for larger bodies. */
  struct curl_slist *l = curl_slist_append(r->hdrs, "Expect:");
  if (!l) goto fail;
  r->hdrs = l;

  err = PUSHER_ERR_INTERNAL;
  CURLcode c = CURLE_OK;
#define SET(opt, val) \
  do { if (c == CURLE_OK) c = curl_easy_setopt(r->easy, opt, val); } while (0)
  SET(CURLOPT_URL, o->url);
  SET(CURLOPT_PRIVATE, (void *)r);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, (void *)r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_TIMEOUT_MS, (long)(o->timeout_ms ? o->timeout_ms : PUSHER__HTTP_TIMEOUT_DEFAULT));
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_USERAGENT, "libpusher-c/" PUSHER_VERSION);
  SET(CURLOPT_HTTPHEADER, r->hdrs);
  if (strcmp(method, "GET") == 0 && !o->body) {
    SET(CURLOPT_HTTPGET, 1L);
  } else {
    if (strcmp(method, "POST") == 0 || o->body) {
      SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(o->body ? o->body_len : 0));
      SET(CURLOPT_COPYPOSTFIELDS, o->body ? o->body : "");
    }
    if (strcmp(method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, method);
  }
  if (o->insecure) {
    SET(CURLOPT_SSL_VERIFYPEER, 0L);
    SET(CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
  if (o->ca_path) SET(CURLOPT_CAPATH, o->ca_path);
#undef SET
  if (c == CURLE_OUT_OF_MEMORY) err = PUSHER_ERR_NOMEM;
  if (c != CURLE_OK) goto fail;
  if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) goto fail;
  req_link(h, r);
  if (out) *out = r;
  return 0;
fail:
  req_free(r);
  return err;
}

/* ------------------------------------------------------------------ auth over HTTP */

#include "core/authreq.h"

typedef struct auth_ctx {
  pusher__auth_http_cb cb;
  void *user;
  int flags;
  char *app_key;
  char *url; /* for messages */
} auth_ctx;

static void auth_done(pusher__http_req *req, const pusher__http_result *res, void *u) {
  (void)req;
  auth_ctx *a = u;
  const pusher_mem *mem = &req->h->mem;
  pusher__auth_outcome o;
  memset(&o, 0, sizeof o);
  pusher__auth_reply reply;
  memset(&reply, 0, sizeof reply);
  char msg[512];
  o.http_status = (int)res->status;
  if (res->err) {
    o.err = res->err;
    snprintf(msg, sizeof msg, "auth request to %s failed: %s", a->url, res->message);
  } else if (res->status != 200) {
    o.err = PUSHER_ERR_HTTP;
    /* Quote a short text body (servers often say why they refused). */
    int quote = res->body_len > 0 && res->body_len <= 200;
    for (size_t i = 0; quote && i < res->body_len; i++)
      if ((unsigned char)res->body[i] < 0x20 && res->body[i] != '\n') quote = 0;
    snprintf(msg, sizeof msg, "auth endpoint %s returned HTTP %ld%s%.*s", a->url, res->status,
             quote ? ": " : "", quote ? (int)res->body_len : 0, res->body);
  } else {
    char why[256];
    o.err = pusher__auth_reply_parse(mem, res->body, res->body_len, a->flags, a->app_key, &reply, why,
                                     sizeof why);
    if (o.err) snprintf(msg, sizeof msg, "%s (from %s)", why, a->url);
    else snprintf(msg, sizeof msg, "OK");
  }
  o.message = msg;
  if (!o.err) o.reply = &reply;
  a->cb(&o, a->user);
  pusher__auth_reply_free(mem, &reply);
  pusher__free(mem, a->app_key);
  pusher__free(mem, a->url);
  pusher__free(mem, a);
}

int pusher__auth_http_start(pusher__http *h, const pusher__auth_http_opts *o, pusher__auth_http_cb cb,
                            void *user_data, pusher__http_req **out) {
  if (out) *out = NULL;
  if (!h || !o || !cb || !o->url || !o->socket_id) return PUSHER_ERR_INVALID_ARGUMENT;
  if (h->closing) return PUSHER_ERR_INVALID_STATE;
  const pusher_mem *mem = &h->mem;
  int flags = 0;
  if (!o->channel) flags = PUSHER__AUTH_USER;
  else if (pusher__chan_kind_of(o->channel) == PUSHER__CHAN_PRESENCE) flags = PUSHER__AUTH_NEED_CHANNEL_DATA;
  else if (pusher__chan_kind_of(o->channel) == PUSHER__CHAN_ENCRYPTED) flags = PUSHER__AUTH_NEED_SHARED_SECRET;

  char *body = NULL, *url = NULL, **lines = NULL;
  size_t body_len = 0, nlines = 0;
  auth_ctx *a = NULL;
  int e;
  if (o->jsonp) {
    e = pusher__authreq_jsonp_url(mem, o->url, NULL, o->socket_id, o->channel, o->params, o->nparams, &url,
                                  NULL);
  } else {
    e = pusher__authreq_form(mem, o->socket_id, o->channel, o->params, o->nparams, &body, &body_len);
    if (!e) e = (url = pusher__strdup(mem, o->url)) ? 0 : PUSHER_ERR_NOMEM;
    if (!e && o->nheaders && !o->headers) e = PUSHER_ERR_INVALID_ARGUMENT;
    if (!e && !(lines = pusher__calloc(mem, o->nheaders + 1, sizeof *lines))) e = PUSHER_ERR_NOMEM;
    if (!e) e = (lines[nlines++] = pusher__strdup(mem, "Content-Type: application/x-www-form-urlencoded"))
                    ? 0
                    : PUSHER_ERR_NOMEM;
    for (size_t i = 0; !e && i < o->nheaders; i++) {
      e = pusher__authreq_header_line(mem, &o->headers[i], &lines[nlines]);
      if (!e) nlines++;
    }
  }
  if (!e && !(a = pusher__calloc(mem, 1, sizeof *a))) e = PUSHER_ERR_NOMEM;
  if (!e) {
    a->cb = cb;
    a->user = user_data;
    a->flags = flags;
    a->url = pusher__strndup(mem, o->url, strcspn(o->url, "?#"));
    a->app_key = pusher__strdup(mem, o->app_key);
    if (!a->url || (o->app_key && !a->app_key)) e = PUSHER_ERR_NOMEM;
  }
  if (!e) {
    pusher__http_opts ho;
    memset(&ho, 0, sizeof ho);
    ho.method = o->jsonp ? "GET" : "POST";
    ho.url = url;
    ho.headers = (const char *const *)lines;
    ho.nheaders = nlines;
    ho.body = body;
    ho.body_len = body_len;
    ho.timeout_ms = o->timeout_ms;
    ho.max_body = PUSHER__AUTH_REPLY_MAX;
    ho.ca_file = o->ca_file;
    ho.ca_path = o->ca_path;
    ho.insecure = o->insecure;
    e = pusher__http_request(h, &ho, auth_done, a, out);
  }
  if (e && a) {
    pusher__free(mem, a->url);
    pusher__free(mem, a->app_key);
    pusher__free(mem, a);
  }
  for (size_t i = 0; i < nlines; i++) pusher__free(mem, lines[i]);
  pusher__free(mem, lines);
  pusher__free(mem, body);
  pusher__free(mem, url);
  return e;
}
