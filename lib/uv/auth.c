/* The libuv runtime: authorization.
 *
 * The engine asks for a channel authorization / user authentication through
 * its hooks; the hooks only record a `job` (no I/O and no application
 * callback inside the engine).  pump() starts the jobs on the loop thread:
 * either an HTTP request to the auth endpoint (uv/http.h) or a call of the
 * application's custom authorizer/authenticator with a pusher_auth_request.
 * HTTP completions answer the engine from their libuv callback.  Custom
 * answers may come from any thread: pusher_auth_request_complete/_fail
 * put the request on its `link`'s answer list under the global `g_link_mu`
 * and wake the loop (threaded mode; in loop mode they run the client's
 * pump directly); pump() hands the answers to the engine.  A link outlives
 * its client while requests the application has not answered yet refer to
 * it (refcount under g_link_mu), so a late answer after pusher_client_del()
 * is accepted and ignored.  Lock order: g_link_mu is never held while
 * taking the client's mutex. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/names.h"
#include "uv/client_internal.h"

static pthread_mutex_t g_link_mu = PTHREAD_MUTEX_INITIALIZER;

void kv_free(const pusher_mem *m, pusher_kv *v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) {
    pusher__free(m, (char *)v[i].name);
    pusher__free(m, (char *)v[i].value);
  }
  pusher__free(m, v);
}

static int kv_append(const pusher_mem *m, pusher_kv **v, size_t *n, const char *name, const char *value) {
  pusher_kv *nv = pusher__realloc(m, *v, (*n + 1) * sizeof *nv);
  if (!nv) return PUSHER_ERR_NOMEM;
  *v = nv;
  char *a = pusher__strdup(m, name), *b = pusher__strdup(m, value);
  if (!a || !b) {
    pusher__free(m, a);
    pusher__free(m, b);
    return PUSHER_ERR_NOMEM;
  }
  nv[*n].name = a;
  nv[*n].value = b;
  (*n)++;
  return 0;
}

int kv_copy(const pusher_mem *m, const pusher_kv *src, size_t n, pusher_kv **out, size_t *nout) {
  pusher_kv *v = NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!src[i].name || !src[i].value) {
      kv_free(m, v, k);
      return PUSHER_ERR_INVALID_ARGUMENT;
    }
    if (kv_append(m, &v, &k, src[i].name, src[i].value) != 0) {
      kv_free(m, v, k);
      return PUSHER_ERR_NOMEM;
    }
  }
  *out = v;
  *nout = k;
  return 0;
}

static int header_ok(const pusher_mem *m, const char *name, const char *value) {
  pusher_kv h = {name, value};
  char *line = NULL;
  int e = pusher__authreq_header_line(m, &h, &line);
  pusher__free(m, line);
  return e;
}

static void req_free(pusher_auth_request *r) {
  pusher_mem m = r->mem;
  pusher__free(&m, r->channel);
  pusher__free(&m, r->message);
  pusher__free(&m, r->auth);
  pusher__free(&m, r->channel_data);
  pusher__free(&m, r->shared_secret);
  pusher__free(&m, r->user_data);
  pusher__free(&m, r);
}

/* Under g_link_mu. */
static void link_unref(struct link *l, const pusher_mem *m) {
  if (--l->refs == 0) pusher__free(m, l);
}

/* Engine hooks: only record the job; pump() starts it. */
static void add_job(pusher_client *c, uint64_t req_id, int user, const char *sid, const char *channel) {
  struct job *j = pusher__calloc(c->mem, 1, sizeof *j);
  if (!j) return; /* the engine's auth deadline fails the request */
  j->req_id = req_id;
  j->user = user;
  snprintf(j->socket_id, sizeof j->socket_id, "%s", sid ? sid : "");
  if (channel && !(j->channel = pusher__strdup(c->mem, channel))) {
    pusher__free(c->mem, j);
    return;
  }
  *c->jobs_tail = j;
  c->jobs_tail = &j->next;
  c->dirty = 1;
}

void hook_channel_auth(pusher__conn *conn, const char *channel, const char *sid, uint64_t req_id,
                              void *u) {
  add_job(u, req_id, 0, sid, channel);
}

void hook_user_auth(pusher__conn *conn, const char *sid, uint64_t req_id, void *u) {
  add_job(u, req_id, 1, sid, NULL);
}

static void answer_engine(pusher_client *c, uint64_t req_id, int user, int err, int status, const char *msg,
                          const char *auth, const char *cd, const char *ss, const char *ud) {
  if (!c->conn || c->deleting) return;
  pusher__tstamp now = now_ms();
  if (user) (void)pusher__conn_user_auth_result(c->conn, req_id, err, status, msg, auth, ud, now);
  else (void)pusher__conn_auth_result(c->conn, req_id, err, status, msg, auth, cd, ss, now);
  c->dirty = 1;
}

static void on_auth_http(const pusher__auth_outcome *o, void *ud) {
  struct hreq *hr = ud;
  pusher_client *c = hr->cl;
  for (struct hreq **pp = &c->hreqs; *pp; pp = &(*pp)->next)
    if (*pp == hr) {
      *pp = hr->next;
      break;
    }
  if (o->err != PUSHER_ERR_CANCELED) {
    enter(c);
    if (o->err == 0 && o->reply)
      answer_engine(c, hr->req_id, hr->user, 0, o->http_status, NULL, o->reply->auth, o->reply->channel_data,
                    o->reply->shared_secret, o->reply->user_data);
    else
      answer_engine(c, hr->req_id, hr->user, o->err < 0 ? o->err : PUSHER_ERR_AUTH, o->http_status, o->message,
                    NULL, NULL, NULL, NULL);
    leave(c);
  }
  pusher__free(c->mem, hr);
}

static void start_http(pusher_client *c, const struct job *j) {
  char msg[200];
  int e = 0;
  if (!c->http && (e = pusher__http_new(&c->http, c->loop, c->mem)) != 0) {
    c->http = NULL;
    answer_engine(c, j->req_id, j->user, e, 0, "cannot start the HTTP client", NULL, NULL, NULL, NULL);
    return;
  }
  char *url = NULL;
  const char *ep = j->user ? c->user_auth_endpoint : c->auth_endpoint;
  if ((e = pusher__authreq_url(c->mem, c->auth_origin, ep, &url)) != 0) {
    snprintf(msg, sizeof msg, "cannot build the auth URL from '%.80s' (a relative endpoint needs auth_origin)",
             ep ? ep : "");
    answer_engine(c, j->req_id, j->user, PUSHER_ERR_CONFIG, 0, msg, NULL, NULL, NULL, NULL);
    return;
  }
  struct pusher_auth_extra x;
  memset(&x, 0, sizeof x);
  x.mem = c->mem;
  if (kv_copy(c->mem, c->params, c->nparams, &x.params, &x.nparams) != 0 ||
      kv_copy(c->mem, c->headers, c->nheaders, &x.headers, &x.nheaders) != 0)
    e = PUSHER_ERR_NOMEM;
  if (!e && c->provider) {
    c->app_cb++;
    int r = c->provider(c, j->channel, &x, c->provider_ud);
    c->app_cb--;
    if (!c->conn || c->deleting) e = PUSHER_ERR_CANCELED;
    else if (r) e = r < 0 ? r : PUSHER_ERR_AUTH;
    else if (x.err) e = x.err;
  }
  struct hreq *hr = NULL;
  if (!e && !(hr = pusher__calloc(c->mem, 1, sizeof *hr))) e = PUSHER_ERR_NOMEM;
  if (!e) {
    pusher__auth_http_opts o;
    memset(&o, 0, sizeof o);
    o.url = url;
    o.jsonp = c->jsonp;
    o.socket_id = j->socket_id;
    o.channel = j->channel;
    o.params = x.params;
    o.nparams = x.nparams;
    o.headers = x.headers;
    o.nheaders = x.nheaders;
    o.app_key = c->app_key;
    o.timeout_ms = c->auth_timeout_ms;
    o.ca_file = c->ca_file;
    o.ca_path = c->ca_path;
    o.insecure = c->tls_insecure;
    hr->cl = c;
    hr->req_id = j->req_id;
    hr->user = j->user;
    e = pusher__auth_http_start(c->http, &o, on_auth_http, hr, &hr->h);
    if (e) {
      pusher__free(c->mem, hr);
    } else {
      hr->next = c->hreqs;
      c->hreqs = hr;
    }
  }
  if (e && e != PUSHER_ERR_CANCELED) {
    snprintf(msg, sizeof msg, "cannot start the auth request: %s", pusher_strerror(e));
    answer_engine(c, j->req_id, j->user, e, 0, msg, NULL, NULL, NULL, NULL);
  }
  kv_free(c->mem, x.params, x.nparams);
  kv_free(c->mem, x.headers, x.nheaders);
  pusher__free(c->mem, url);
}

static void start_custom(pusher_client *c, const struct job *j) {
  pusher_auth_request *r = pusher__calloc(c->mem, 1, sizeof *r);
  if (!r || (j->channel && !(r->channel = pusher__strdup(c->mem, j->channel)))) {
    pusher__free(c->mem, r);
    answer_engine(c, j->req_id, j->user, PUSHER_ERR_NOMEM, 0, "out of memory", NULL, NULL, NULL, NULL);
    return;
  }
  r->mem = c->memv;
  r->req_id = j->req_id;
  r->user = j->user;
  memcpy(r->socket_id, j->socket_id, sizeof r->socket_id);
  pthread_mutex_lock(&g_link_mu);
  r->link = c->link;
  c->link->refs++;
  pthread_mutex_unlock(&g_link_mu);
  c->app_cb++;
  if (j->user) c->authenticator(c, r, r->socket_id, c->authenticator_ud);
  else c->authorizer(c, r, r->socket_id, r->channel, c->authorizer_ud);
  c->app_cb--;
}

/* pump(): start recorded jobs and hand custom answers to the engine. */
void run_auth(pusher_client *c) {
  while (c->jobs && c->conn && !c->deleting) {
    struct job *j = c->jobs;
    c->jobs = j->next;
    if (!c->jobs) c->jobs_tail = &c->jobs;
    c->dirty = 1;
    if (j->user ? c->authenticator != NULL : c->authorizer != NULL) start_custom(c, j);
    else start_http(c, j);
    pusher__free(c->mem, j->channel);
    pusher__free(c->mem, j);
  }
  if (!c->link) return;
  pthread_mutex_lock(&g_link_mu);
  pusher_auth_request *list = c->link->answers;
  c->link->answers = NULL;
  c->link->answers_tail = &c->link->answers;
  pthread_mutex_unlock(&g_link_mu);
  while (list) {
    pusher_auth_request *r = list;
    list = r->next;
    c->dirty = 1;
    answer_engine(c, r->req_id, r->user, r->err, r->status, r->message, r->auth, r->channel_data,
                  r->shared_secret, r->user_data);
    pthread_mutex_lock(&g_link_mu);
    link_unref(r->link, c->mem);
    pthread_mutex_unlock(&g_link_mu);
    req_free(r);
  }
}

/* teardown(): cancel HTTP requests, drop jobs, detach the link. */
void auth_teardown(pusher_client *c) {
  while (c->jobs) {
    struct job *j = c->jobs;
    c->jobs = j->next;
    pusher__free(c->mem, j->channel);
    pusher__free(c->mem, j);
  }
  c->jobs_tail = &c->jobs;
  if (c->http) {
    pusher__http_del(c->http); /* callbacks run with PUSHER_ERR_CANCELED */
    c->http = NULL;
  }
  if (!c->link) return;
  pthread_mutex_lock(&g_link_mu);
  struct link *l = c->link;
  l->cl = NULL;
  pusher_auth_request *list = l->answers;
  l->answers = NULL;
  l->answers_tail = &l->answers;
  while (list) {
    pusher_auth_request *r = list;
    list = r->next;
    l->refs--;
    req_free(r);
  }
  link_unref(l, c->mem);
  pthread_mutex_unlock(&g_link_mu);
  c->link = NULL;
}

/* Hand an answered request to its client (or drop it when the client is gone). */
static void deliver_answer(pusher_auth_request *r) {
  pthread_mutex_lock(&g_link_mu);
  struct link *l = r->link;
  pusher_client *c = l->cl;
  if (!c) {
    pusher_mem m = r->mem;
    req_free(r);
    link_unref(l, &m);
    pthread_mutex_unlock(&g_link_mu);
    return;
  }
  r->next = NULL;
  *l->answers_tail = r;
  l->answers_tail = &r->next;
  int threaded = c->threaded;
  if (threaded) uv_async_send(&c->async);
  pthread_mutex_unlock(&g_link_mu);
  if (!threaded) { /* loop mode: we are on the loop thread */
    enter(c);
    c->dirty = 1;
    leave(c);
  }
}

int pusher_client_set_channel_authorizer(pusher_client *c, pusher_channel_authorizer_cb cb, void *user_data) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->authorizer = cb;
  c->authorizer_ud = user_data;
  leave(c);
  return 0;
}

int pusher_client_set_user_authenticator(pusher_client *c, pusher_user_authenticator_cb cb, void *user_data) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->authenticator = cb;
  c->authenticator_ud = user_data;
  leave(c);
  return 0;
}

int pusher_client_set_auth_timeout(pusher_client *c, double seconds) {
  if (!c || !(seconds > 0) || seconds > 3600) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->auth_timeout_ms = (uint64_t)(seconds * 1000.0 + 0.5);
  if (c->auth_timeout_ms == 0) c->auth_timeout_ms = 1;
  if (c->conn) pusher__conn_set_auth_timeout(c->conn, c->auth_timeout_ms);
  leave(c);
  return 0;
}

static int valid_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0 || (n == 1 && *p < 0xc2)) return 0;
    p++;
    for (int i = 0; i < n; i++, p++)
      if ((*p & 0xc0) != 0x80) return 0;
  }
  return 1;
}

int pusher_client_set_auth_params(pusher_client *c, const pusher_kv *params, size_t n) {
  if (!c || (n && !params)) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < n; i++)
    if (!params[i].name || !*params[i].name || !params[i].value || !valid_utf8(params[i].name) ||
        !valid_utf8(params[i].value))
      return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_kv *v = NULL;
  size_t k = 0;
  int e = kv_copy(c->mem, params, n, &v, &k);
  if (e) return e;
  enter(c);
  kv_free(c->mem, c->params, c->nparams);
  c->params = v;
  c->nparams = k;
  leave(c);
  return 0;
}

int pusher_client_set_auth_headers(pusher_client *c, const pusher_kv *headers, size_t n) {
  if (!c || (n && !headers)) return PUSHER_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < n; i++)
    if (!headers[i].name || !headers[i].value || header_ok(c->mem, headers[i].name, headers[i].value) != 0)
      return PUSHER_ERR_INVALID_ARGUMENT;
  pusher_kv *v = NULL;
  size_t k = 0;
  int e = kv_copy(c->mem, headers, n, &v, &k);
  if (e) return e;
  enter(c);
  kv_free(c->mem, c->headers, c->nheaders);
  c->headers = v;
  c->nheaders = k;
  leave(c);
  return 0;
}

int pusher_client_set_auth_provider(pusher_client *c, pusher_auth_provider_cb cb, void *user_data) {
  if (!c) return PUSHER_ERR_INVALID_ARGUMENT;
  enter(c);
  c->provider = cb;
  c->provider_ud = user_data;
  leave(c);
  return 0;
}

int pusher_auth_extra_add_param(pusher_auth_extra *x, const char *name, const char *value) {
  if (!x || !name || !*name || !value || !valid_utf8(name) || !valid_utf8(value)) return PUSHER_ERR_INVALID_ARGUMENT;
  int e = kv_append(x->mem, &x->params, &x->nparams, name, value);
  if (e) x->err = e;
  return e;
}

int pusher_auth_extra_add_header(pusher_auth_extra *x, const char *name, const char *value) {
  if (!x || !name || !value || header_ok(x->mem, name, value) != 0) return PUSHER_ERR_INVALID_ARGUMENT;
  int e = kv_append(x->mem, &x->headers, &x->nheaders, name, value);
  if (e) x->err = e;
  return e;
}

static int set_answer_str(pusher_auth_request *r, char **dst, const char *src) {
  if (!src) return 0;
  *dst = pusher__strdup(&r->mem, src);
  return *dst ? 0 : PUSHER_ERR_NOMEM;
}

int pusher_auth_request_complete(pusher_auth_request *req, const pusher_auth_result *res) {
  if (!req || !res) return PUSHER_ERR_INVALID_ARGUMENT;
  const char *why = NULL;
  if (!res->auth || !pusher__auth_shape_ok(res->auth)) {
    why = "invalid answer: auth is missing or not \"<key>:<hex signature>\"";
  } else if (req->user) {
    if (!res->user_data) why = "invalid answer: no user_data";
  } else if (req->channel && pusher__chan_kind_of(req->channel) == PUSHER__CHAN_ENCRYPTED) {
    uint8_t key[PUSHER__SECRETBOX_KEYBYTES];
    if (!res->shared_secret || pusher__crypto_key_from_b64(res->shared_secret, key, NULL, 0) != 0)
      why = "invalid answer: shared_secret is missing or not base64 of 32 bytes";
  }
  int rc = 0;
  if (why) {
    req->err = PUSHER_ERR_AUTH;
    rc = PUSHER_ERR_AUTH;
    (void)set_answer_str(req, &req->message, why);
  } else {
    int e = set_answer_str(req, &req->auth, res->auth);
    if (!e) e = set_answer_str(req, &req->channel_data, res->channel_data);
    if (!e) e = set_answer_str(req, &req->shared_secret, res->shared_secret);
    if (!e) e = set_answer_str(req, &req->user_data, res->user_data);
    if (e) {
      req->err = e;
      rc = e;
    }
  }
  deliver_answer(req);
  return rc;
}

int pusher_auth_request_fail(pusher_auth_request *req, int status, const char *message) {
  if (!req) return PUSHER_ERR_INVALID_ARGUMENT;
  req->err = PUSHER_ERR_AUTH;
  req->status = status > 0 ? status : 0;
  (void)set_answer_str(req, &req->message, message ? message : "refused by the application's authorizer");
  deliver_answer(req);
  return 0;
}

const char *pusher_auth_request_socket_id(const pusher_auth_request *req) {
  return req ? req->socket_id : NULL;
}

const char *pusher_auth_request_channel(const pusher_auth_request *req) {
  return req ? req->channel : NULL;
}
