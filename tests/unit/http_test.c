/* Unit tests: lib/uv/http.c — the libcurl-multi-on-libuv HTTP client,
 * against a tiny HTTP server running in-process on the same loop at
 * 127.0.0.1:<ephemeral>.  Paths of the server:
 *   /ok        200 {"auth":"k:v"}         /forbidden  403 "forbidden"
 *   /echo      200 with the raw request    /slow       never answers
 *   /garbage   not HTTP, then close        /close      close without a reply
 *   /big       200 with 100000 bytes      /notjson    200 "this is <not> JSON"
 *   /pusher/auth  a stub auth endpoint (JSON or JSONP reply; 403 with X-Fail: 1) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/authreq.h"
#include "uv/http.h"

/* ------------------------------------------------------------------ server */

typedef struct srv_conn {
  uv_tcp_t tcp;
  char req[16384];
  size_t len;
  int answered;
} srv_conn;

static uv_loop_t loop;
static char last_req[16384];
static uv_tcp_t server;
static int port;

static void conn_closed(uv_handle_t *h) { free(h->data); }
static void conn_close(srv_conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

typedef struct { uv_write_t w; char *buf; srv_conn *c; int close_after; } srv_write;
static void on_written(uv_write_t *w, int status) {
  srv_write *sw = (srv_write *)w;
  if (sw->close_after) conn_close(sw->c);
  free(sw->buf);
  free(sw);
}
static void srv_send(srv_conn *c, const char *data, size_t n, int close_after) {
  srv_write *sw = calloc(1, sizeof *sw);
  sw->buf = malloc(n);
  memcpy(sw->buf, data, n);
  sw->c = c;
  sw->close_after = close_after;
  uv_buf_t b = uv_buf_init(sw->buf, (unsigned)n);
  uv_write(&sw->w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}
static void srv_reply(srv_conn *c, int status, const char *reason, const char *body, size_t blen) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, reason, blen);
  char *all = malloc((size_t)n + blen);
  memcpy(all, head, (size_t)n);
  memcpy(all + n, body, blen);
  srv_send(c, all, (size_t)n + blen, 1);
  free(all);
}

static void srv_handle(srv_conn *c) {
  char *end = strstr(c->req, "\r\n\r\n");
  if (!end) return;
  size_t head = (size_t)(end + 4 - c->req);
  const char *cl = strcasestr(c->req, "Content-Length:");
  size_t want = cl && cl < end ? (size_t)atol(cl + 15) : 0;
  if (c->len < head + want) return;
  c->answered = 1;
  char path[256] = "";
  sscanf(c->req, "%*s %255s", path);
  if (strncmp(path, "/ok", 3) == 0) {
    srv_reply(c, 200, "OK", "{\"auth\":\"k:v\"}", 14);
  } else if (strcmp(path, "/notjson") == 0) {
    srv_reply(c, 200, "OK", "this is <not> JSON", 18);
  } else if (strcmp(path, "/forbidden") == 0) {
    srv_reply(c, 403, "Forbidden", "forbidden", 9);
  } else if (strncmp(path, "/echo", 5) == 0) {
    srv_reply(c, 200, "OK", c->req, c->len);
  } else if (strncmp(path, "/pusher/auth", 12) == 0) {
    memcpy(last_req, c->req, c->len + 1);
    static char out[1024];
    const char *sig = "app-key:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
    if (strstr(c->req, "X-Fail: 1")) {
      srv_reply(c, 403, "Forbidden", "denied", 6);
      return;
    }
    if (strstr(c->req, "channel_name=presence-"))
      snprintf(out, sizeof out, "{\"auth\":\"%s\",\"channel_data\":\"{\\\"user_id\\\":\\\"u1\\\"}\"}", sig);
    else
      snprintf(out, sizeof out, "{\"auth\":\"%s\"}", sig);
    if (strncmp(c->req, "GET ", 4) == 0 && strstr(c->req, "callback=")) {
      static char wrapped[1200];
      snprintf(wrapped, sizeof wrapped, "pusher_auth_callback(%s);\n", out);
      srv_reply(c, 200, "OK", wrapped, strlen(wrapped));
    } else {
      srv_reply(c, 200, "OK", out, strlen(out));
    }
  } else if (strcmp(path, "/slow") == 0) {
    /* never answer */
  } else if (strcmp(path, "/garbage") == 0) {
    srv_send(c, "this is not http at all\r\n\r\n", 27, 1);
  } else if (strcmp(path, "/close") == 0) {
    conn_close(c);
  } else if (strcmp(path, "/big") == 0) {
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    srv_reply(c, 200, "OK", big, 100000);
    free(big);
  } else {
    srv_reply(c, 404, "Not Found", "", 0);
  }
}

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  srv_conn *c = h->data;
  size_t room = sizeof c->req - 1 - c->len;
  *b = uv_buf_init(c->req + c->len, (unsigned)room);
}
static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  srv_conn *c = s->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)n;
  c->req[c->len] = 0;
  if (!c->answered) srv_handle(c);
}
static void srv_accept(uv_stream_t *s, int status) {
  srv_conn *c = calloc(1, sizeof *c);
  uv_tcp_init(&loop, &c->tcp);
  c->tcp.data = c;
  assert_int_equal(uv_accept(s, (uv_stream_t *)&c->tcp), 0);
  uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

static void close_all(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, h->data == NULL || h == (uv_handle_t *)&server ? NULL : conn_closed);
}

static int setup(void **st) {
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_tcp_init(&loop, &server);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&server, (const struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&server, 64, srv_accept), 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

static int teardown(void **st) {
  /* Every handle the http client made must be closable: close the rest and
   * require the loop to end cleanly (uv_loop_close fails on a leaked handle). */
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_walk(&loop, close_all, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  return 0;
}

/* ------------------------------------------------------------------ client side */

typedef struct result {
  int calls, err;
  long status;
  char body[200000];
  size_t body_len;
  char message[256];
  uint64_t at;
} result;

static void on_done(pusher__http_req *req, const pusher__http_result *res, void *u) {
  result *r = u;
  r->calls++;
  r->err = res->err;
  r->status = res->status;
  assert_non_null(res->body);
  assert_non_null(res->message);
  assert_int_equal(strlen(res->body), res->body_len);
  memcpy(r->body, res->body, res->body_len + 1);
  r->body_len = res->body_len;
  snprintf(r->message, sizeof r->message, "%s", res->message);
  r->at = uv_now(&loop);
}

static void run_until(int *flag, int want) {
  uint64_t start = uv_now(&loop);
  while (*flag < want) {
    uv_run(&loop, UV_RUN_ONCE);
    uv_update_time(&loop);
    if (uv_now(&loop) - start > 10000) fail_msg("timed out waiting");
  }
}

static void url(char *buf, size_t n, const char *path) { snprintf(buf, n, "http://127.0.0.1:%d%s", port, path); }

static int get(pusher__http *h, const char *path, uint64_t timeout, result *r) {
  char u[128];
  url(u, sizeof u, path);
  pusher__http_opts o;
  memset(&o, 0, sizeof o);
  o.url = u;
  o.timeout_ms = timeout;
  return pusher__http_request(h, &o, on_done, r, NULL);
}

static void test_ok_and_403(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  assert_int_equal(get(h, "/ok", 0, &a), 0);
  assert_int_equal(get(h, "/forbidden", 0, &b), 0);
  assert_int_equal(pusher__http_pending(h), 2);
  run_until(&a.calls, 1);
  run_until(&b.calls, 1);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.status, 200);
  assert_string_equal(a.body, "{\"auth\":\"k:v\"}");
  assert_string_equal(a.message, "OK");
  assert_int_equal(b.err, 0);
  assert_int_equal(b.status, 403);
  assert_string_equal(b.body, "forbidden");
  assert_int_equal(pusher__http_pending(h), 0);
  pusher__http_del(h);
  /* exactly once */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(a.calls, 1);
  assert_int_equal(b.calls, 1);
}

static void test_post_form_and_headers(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result r;
  memset(&r, 0, sizeof r);
  char u[128];
  url(u, sizeof u, "/echo");
  const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", "X-CSRF-Token: abc"};
  /* a body over 1024 bytes: no Expect: 100-continue stall */
  static char body[3000];
  strcpy(body, "socket_id=1.2&channel_name=private-a&pad=");
  size_t l = strlen(body);
  memset(body + l, 'p', 2000);
  body[l + 2000] = 0;
  pusher__http_opts o;
  memset(&o, 0, sizeof o);
  o.method = "POST";
  o.url = u;
  o.headers = hdrs;
  o.nheaders = 2;
  o.body = body;
  o.body_len = strlen(body);
  o.timeout_ms = 3000;
  assert_int_equal(pusher__http_request(h, &o, on_done, &r, NULL), 0);
  uint64_t t0 = uv_now(&loop);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.status, 200);
  assert_true(r.at - t0 < 900);
  assert_memory_equal(r.body, "POST /echo HTTP/1.1\r\n", 21);
  assert_non_null(strstr(r.body, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
  assert_non_null(strstr(r.body, "\r\nX-CSRF-Token: abc\r\n"));
  assert_null(strcasestr(r.body, "Expect:"));
  assert_non_null(strstr(r.body, "\r\n\r\n"));
  assert_string_equal(strstr(r.body, "\r\n\r\n") + 4, body);
  /* GET with a query string */
  memset(&r, 0, sizeof r);
  url(u, sizeof u, "/echo?callback=cb&socket_id=1.2");
  memset(&o, 0, sizeof o);
  o.url = u;
  assert_int_equal(pusher__http_request(h, &o, on_done, &r, NULL), 0);
  run_until(&r.calls, 1);
  if (r.err) fail_msg("GET echo: %d %ld %s", r.err, r.status, r.message);
  assert_memory_equal(r.body, "GET /echo?callback=cb&socket_id=1.2 HTTP/1.1\r\n", 46);
  pusher__http_del(h);
}

static void test_timeout(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result r;
  memset(&r, 0, sizeof r);
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  assert_int_equal(get(h, "/slow", 300, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_TIMEOUT);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.body, "");
  assert_true(r.message[0] != 0);
  assert_true(r.at - t0 >= 250);
  assert_true(r.at - t0 < 2000);
  pusher__http_del(h);
}

static void test_garbage_close_big(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result g, c, b;
  memset(&g, 0, sizeof g);
  memset(&c, 0, sizeof c);
  memset(&b, 0, sizeof b);
  assert_int_equal(get(h, "/garbage", 3000, &g), 0);
  assert_int_equal(get(h, "/close", 3000, &c), 0);
  assert_int_equal(get(h, "/big", 3000, &b), 0);
  run_until(&g.calls, 1);
  run_until(&c.calls, 1);
  run_until(&b.calls, 1);
  assert_int_equal(g.err, PUSHER_ERR_HTTP);
  assert_true(g.message[0] != 0);
  assert_true(c.err == PUSHER_ERR_HTTP || c.err == PUSHER_ERR_IO);
  assert_int_equal(b.err, PUSHER_ERR_TOO_LARGE);
  assert_int_equal(b.status, 200);
  assert_string_equal(b.body, "");
  pusher__http_del(h);
}

static void test_connection_refused(void **st) {
  /* a port that was just free */
  uv_tcp_t t;
  uv_tcp_init(&loop, &t);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
  int dead = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result r;
  memset(&r, 0, sizeof r);
  char u[128];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/pusher/auth", dead);
  pusher__http_opts o;
  memset(&o, 0, sizeof o);
  o.url = u;
  o.method = "POST";
  o.body = "socket_id=1.2";
  o.body_len = 13;
  assert_int_equal(pusher__http_request(h, &o, on_done, &r, NULL), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_CONNREFUSED);
  assert_true(r.message[0] != 0);
  pusher__http_del(h);
}

static pusher__http_req *slow_req;
static void cancel_cb(uv_timer_t *t) { pusher__http_cancel(slow_req); }

static void test_cancel(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result r;
  memset(&r, 0, sizeof r);
  char u[128];
  url(u, sizeof u, "/slow");
  pusher__http_opts o;
  memset(&o, 0, sizeof o);
  o.url = u;
  o.timeout_ms = 5000;
  assert_int_equal(pusher__http_request(h, &o, on_done, &r, &slow_req), 0);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, cancel_cb, 100, 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_CANCELED);
  assert_int_equal(pusher__http_pending(h), 0);
  uv_close((uv_handle_t *)&t, NULL);
  /* cancel before the loop ever ran the request */
  memset(&r, 0, sizeof r);
  pusher__http_req *q;
  assert_int_equal(pusher__http_request(h, &o, on_done, &r, &q), 0);
  pusher__http_cancel(q);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_CANCELED);
  pusher__http_cancel(NULL);
  /* the client still works afterwards */
  memset(&r, 0, sizeof r);
  assert_int_equal(get(h, "/ok", 0, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.status, 200);
  pusher__http_del(h);
}

static void test_del_with_pending(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static result a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  assert_int_equal(get(h, "/slow", 5000, &a), 0);
  assert_int_equal(get(h, "/slow", 5000, &b), 0);
  /* let the connections start */
  for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
  pusher__http_del(h);
  assert_int_equal(a.calls, 1);
  assert_int_equal(b.calls, 1);
  assert_int_equal(a.err, PUSHER_ERR_CANCELED);
  assert_int_equal(b.err, PUSHER_ERR_CANCELED);
}

/* A callback deletes the client: the other request is canceled, once. */
static pusher__http *del_target;
static result other;
static void del_in_cb(pusher__http_req *req, const pusher__http_result *res, void *u) {
  on_done(req, res, u);
  pusher__http_del(del_target);
  assert_int_equal(other.calls, 1);
  pusher__http_del(del_target); /* twice is harmless */
  assert_int_equal(pusher__http_request(del_target, &(pusher__http_opts){.url = "http://127.0.0.1:1/"}, on_done, u,
                                        NULL),
                   PUSHER_ERR_INVALID_STATE);
}

static void test_del_inside_callback(void **st) {
  assert_int_equal(pusher__http_new(&del_target, &loop, NULL), 0);
  static result r;
  memset(&r, 0, sizeof r);
  memset(&other, 0, sizeof other);
  char u[128];
  url(u, sizeof u, "/ok");
  pusher__http_opts o;
  memset(&o, 0, sizeof o);
  o.url = u;
  assert_int_equal(get(del_target, "/slow", 5000, &other), 0);
  assert_int_equal(pusher__http_request(del_target, &o, del_in_cb, &r, NULL), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.status, 200);
  assert_int_equal(other.err, PUSHER_ERR_CANCELED);
}

static void test_many_concurrent(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  enum { N = 25 };
  static result r[N];
  memset(r, 0, sizeof r);
  for (int i = 0; i < N; i++) assert_int_equal(get(h, i % 5 == 4 ? "/forbidden" : "/ok", 5000, &r[i]), 0);
  for (int i = 0; i < N; i++) run_until(&r[i].calls, 1);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].status, i % 5 == 4 ? 403 : 200);
  }
  pusher__http_del(h);
}

static void never(pusher__http_req *req, const pusher__http_result *res, void *u) { fail_msg("callback after an error return"); }

static void test_invalid_arguments(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  pusher__http_opts o;
  memset(&o, 0, sizeof o);
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.url = "ftp://127.0.0.1/x";
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.url = "file:///etc/passwd";
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.url = "http://127.0.0.1:1/";
  const char *bad[] = {"X-A: b\r\nX-Injected: 1"};
  o.headers = bad;
  o.nheaders = 1;
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  const char *noval[] = {"NoColon"};
  o.headers = noval;
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.headers = NULL;
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.nheaders = 0;
  o.method = "G T";
  assert_int_equal(pusher__http_request(h, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__http_request(h, NULL, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  o.method = NULL;
  assert_int_equal(pusher__http_request(h, &o, NULL, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__http_request(NULL, &o, never, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__http_new(NULL, &loop, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher__http_pending(h), 0);
  pusher__http_del(h);
  pusher__http_del(NULL);
}

/* ------------------------------------------------------------------ auth over HTTP */

typedef struct auth_res {
  int calls, err, status;
  char message[512], auth[200], channel_data[200];
} auth_res;

static void on_auth(const pusher__auth_outcome *o, void *u) {
  auth_res *r = u;
  r->calls++;
  r->err = o->err;
  r->status = o->http_status;
  assert_non_null(o->message);
  snprintf(r->message, sizeof r->message, "%s", o->message);
  if (o->err == 0) {
    assert_non_null(o->reply);
    snprintf(r->auth, sizeof r->auth, "%s", o->reply->auth);
    snprintf(r->channel_data, sizeof r->channel_data, "%s", o->reply->channel_data ? o->reply->channel_data : "");
  } else {
    assert_null(o->reply);
  }
}

static int auth_start(pusher__http *h, const char *path, int jsonp, const char *channel, const pusher_kv *hdrs,
                      size_t nh, uint64_t timeout, auth_res *r) {
  char u[128];
  url(u, sizeof u, path);
  static const pusher_kv params[] = {{"csrf", "a b&c"}, {"user", "Zo\xc3\xab"}};
  pusher__auth_http_opts o;
  memset(&o, 0, sizeof o);
  o.url = u;
  o.jsonp = jsonp;
  o.socket_id = "123.456";
  o.channel = channel;
  o.params = params;
  o.nparams = 2;
  o.headers = hdrs;
  o.nheaders = nh;
  o.app_key = "app-key";
  o.timeout_ms = timeout;
  memset(r, 0, sizeof *r);
  return pusher__auth_http_start(h, &o, on_auth, r, NULL);
}

static void test_auth_ajax_and_jsonp(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static auth_res r;
  const pusher_kv hdrs[] = {{"X-CSRF-Token", "abc"}};
  assert_int_equal(auth_start(h, "/pusher/auth", 0, "private-a", hdrs, 1, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.auth, "app-key:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
  assert_memory_equal(last_req, "POST /pusher/auth HTTP/1.1\r\n", 28);
  assert_non_null(strstr(last_req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
  assert_non_null(strstr(last_req, "\r\nX-CSRF-Token: abc\r\n"));
  assert_string_equal(strstr(last_req, "\r\n\r\n") + 4,
                      "socket_id=123.456&channel_name=private-a&csrf=a%20b%26c&user=Zo%C3%AB");
  /* JSONP, presence: GET with the query, reply wrapped in the callback */
  assert_int_equal(auth_start(h, "/pusher/auth", 1, "presence-room", hdrs, 1, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.channel_data, "{\"user_id\":\"u1\"}");
  assert_memory_equal(last_req,
                      "GET /pusher/auth?callback=pusher_auth_callback&socket_id=123.456&channel_name=presence-room"
                      "&csrf=a%20b%26c&user=Zo%C3%AB HTTP/1.1\r\n",
                      125);
  assert_null(strstr(last_req, "X-CSRF-Token")); /* JSONP sends no headers */
  /* user authentication: user_data required, the stub has none */
  assert_int_equal(auth_start(h, "/pusher/auth", 0, NULL, NULL, 0, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_AUTH);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.message, "user_data"));
  assert_string_equal(strstr(last_req, "\r\n\r\n") + 4, "socket_id=123.456&csrf=a%20b%26c&user=Zo%C3%AB");
  pusher__http_del(h);
}

static void test_auth_failures(void **st) {
  pusher__http *h;
  assert_int_equal(pusher__http_new(&h, &loop, NULL), 0);
  static auth_res r;
  /* refused: status and the body in the message */
  const pusher_kv fail[] = {{"X-Fail", "1"}};
  assert_int_equal(auth_start(h, "/pusher/auth", 0, "private-a", fail, 1, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_HTTP);
  assert_int_equal(r.status, 403);
  assert_non_null(strstr(r.message, "returned HTTP 403: denied"));
  /* 200 with a reply that is not an auth reply */
  assert_int_equal(auth_start(h, "/ok", 0, "private-a", NULL, 0, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_AUTH);
  assert_int_equal(r.status, 200);
  /* 200 with a body that is not JSON */
  assert_int_equal(auth_start(h, "/notjson", 0, "private-a", NULL, 0, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_JSON);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.message, "neither JSON nor a JSONP"));
  /* 403 without a pusher endpoint */
  assert_int_equal(auth_start(h, "/forbidden", 0, "private-a", NULL, 0, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_HTTP);
  assert_int_equal(r.status, 403);
  assert_int_equal(auth_start(h, "/garbage", 0, "private-a", NULL, 0, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_HTTP);
  assert_int_equal(r.status, 0);
  /* presence reply without channel_data */
  assert_int_equal(auth_start(h, "/ok", 1, "presence-x", NULL, 0, 3000, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_AUTH);
  /* timeout */
  assert_int_equal(auth_start(h, "/slow", 0, "private-a", NULL, 0, 200, &r), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_TIMEOUT);
  assert_non_null(strstr(r.message, "/slow"));
  /* invalid header: refused up front, no callback */
  const pusher_kv bad[] = {{"X-A", "v\r\nX-B: 1"}};
  assert_int_equal(auth_start(h, "/pusher/auth", 0, "private-a", bad, 1, 3000, &r), PUSHER_ERR_INVALID_ARGUMENT);
  /* pending at del: canceled */
  assert_int_equal(auth_start(h, "/slow", 0, "private-a", NULL, 0, 5000, &r), 0);
  pusher__http_del(h);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.err, PUSHER_ERR_CANCELED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ok_and_403, setup, teardown),
      cmocka_unit_test_setup_teardown(test_post_form_and_headers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage_close_big, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_del_with_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_del_inside_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_auth_ajax_and_jsonp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_auth_failures, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
