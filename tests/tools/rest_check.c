/* rest_check PORT EXCLUDED_SOCKET_ID MASTER_KEY: drives the public REST API
 * (include/pusher/rest.h) against a pusherd on 127.0.0.1:PORT (app-id /
 * app-key / app-secret) and checks each answer; what subscribers receive is
 * checked by tests/integration/rest_pusherd.sh.  Prints one line per step;
 * exit status 0 when every check holds. */
#include <pusher/rest.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
      failures++;                                          \
    }                                                      \
  } while (0)

static pusher_rest *open_rest(int port, const char *secret, int tls, const char *master) {
  pusher_rest_options o;
  pusher_rest_options_default(&o);
  o.app_id = "app-id";
  o.key = "app-key";
  o.secret = secret;
  o.host = "127.0.0.1";
  o.port = port;
  o.tls = tls;
  o.timeout = 10;
  o.encryption_master_key = master;
  pusher_rest *r = NULL;
  int rv = pusher_rest_new(&r, &o);
  if (rv != 0) {
    fprintf(stderr, "pusher_rest_new: %s\n", pusher_strerror(rv));
    exit(1);
  }
  return r;
}

/* One request that must succeed with HTTP 200. */
static void ok(pusher_rest *r, int rv, pusher_rest_reply *rep, const char *what) {
  CHECK(rv == 0, "%s: %s (%s)", what, pusher_strerror(rv), pusher_rest_error_detail(r));
  CHECK(rep->status == 200, "%s: status %ld", what, rep->status);
  CHECK(rep->body != NULL && strlen(rep->body) == rep->body_len, "%s: body", what);
  printf("%s: HTTP %ld %s\n", what, rep->status, rep->body ? rep->body : "(none)");
  pusher_rest_reply_free(rep);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: rest_check PORT EXCLUDED_SOCKET_ID MASTER_KEY\n");
    return 2;
  }
  int port = atoi(argv[1]);
  const char *sid = argv[2];
  pusher_rest *r = open_rest(port, "app-secret", 0, argv[3]);
  pusher_rest_reply rep;
  int rv;

  const char *a[] = {"rest-a"}, *ab[] = {"rest-a", "rest-b"};
  pusher_rest_event ev = {.name = "ev1", .data = "{\"n\":1}"};
  ok(r, pusher_rest_trigger(r, a, 1, &ev, &rep), &rep, "trigger ev1 on rest-a");
  ev = (pusher_rest_event){.name = "ev2", .data = "plain text"};
  ok(r, pusher_rest_trigger(r, ab, 2, &ev, &rep), &rep, "trigger ev2 on rest-a,rest-b");
  ev = (pusher_rest_event){.name = "ev3", .data = "{}", .socket_id = sid};
  ok(r, pusher_rest_trigger(r, a, 1, &ev, &rep), &rep, "trigger ev3 excluding the listener");
  pusher_rest_event batch[] = {
      {.channel = "rest-a", .name = "b1", .data = "\"x\""},
      {.channel = "rest-b", .name = "b2", .data = "[1,2]"},
  };
  ok(r, pusher_rest_trigger_batch(r, batch, 2, &rep), &rep, "batch b1, b2");

  rv = pusher_rest_request(r, "GET", "/apps/app-id/channels", NULL, 0, NULL, &rep);
  CHECK(rep.body && strstr(rep.body, "\"rest-a\""), "channels list: %s", rep.body);
  ok(r, rv, &rep, "GET /apps/app-id/channels");
  pusher_kv info[] = {{"info", "subscription_count"}};
  rv = pusher_rest_request(r, "GET", "/apps/app-id/channels/rest-a", info, 1, NULL, &rep);
  CHECK(rep.body && strstr(rep.body, "\"occupied\":true"), "channel info: %s", rep.body);
  ok(r, rv, &rep, "GET /apps/app-id/channels/rest-a?info=subscription_count");

  const char *enc[] = {"private-encrypted-rest"};
  ev = (pusher_rest_event){.name = "sealed", .data = "{\"secret\":true}"};
  ok(r, pusher_rest_trigger(r, enc, 1, &ev, &rep), &rep, "trigger on private-encrypted-rest");

  /* A wrong secret: the server's refusal, with its status and body. */
  pusher_rest *bad = open_rest(port, "wrong-secret", 0, NULL);
  ev = (pusher_rest_event){.name = "never", .data = "{}"};
  rv = pusher_rest_trigger(bad, a, 1, &ev, &rep);
  CHECK(rv == PUSHER_ERR_HTTP, "wrong secret: %s", pusher_strerror(rv));
  CHECK(rep.status == 401, "wrong secret: status %ld", rep.status);
  CHECK(rep.body && strstr(rep.body, "Invalid signature"), "wrong secret: body %s", rep.body);
  CHECK(strstr(pusher_rest_error_detail(bad), "HTTP 401"), "detail %s",
        pusher_rest_error_detail(bad));
  printf("wrong secret: %s; HTTP %ld\n", pusher_strerror(rv), rep.status);
  pusher_rest_reply_free(&rep);
  pusher_rest_del(bad);

  /* TLS to a plain-HTTP port: an error that says what to do. */
  pusher_rest *tls = open_rest(port, "app-secret", 1, NULL);
  rv = pusher_rest_trigger(tls, a, 1, &ev, &rep);
  CHECK(rv == PUSHER_ERR_TLS, "tls on a plain port: %s", pusher_strerror(rv));
  CHECK(rep.status == 0 && rep.body == NULL, "tls: a reply");
  CHECK(strstr(pusher_rest_error_detail(tls), "does not speak TLS on this port"), "detail %s",
        pusher_rest_error_detail(tls));
  printf("tls on a plain port: %s\n", pusher_rest_error_detail(tls));
  pusher_rest_reply_free(&rep);
  pusher_rest_del(tls);

  ev = (pusher_rest_event){.name = "ev4", .data = "{\"last\":true}"};
  rv = pusher_rest_trigger(r, a, 1, &ev, NULL);
  CHECK(rv == 0, "ev4 without a reply: %s", pusher_strerror(rv));
  printf("trigger ev4 (no reply wanted): %s\n", pusher_strerror(rv));
  pusher_rest_del(r);
  printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
