/* ch_probe: drives libpusher clients (threaded mode) through one issue-3
 * scenario against a Pusher server (soketi) and an application auth server
 * (tests/authserver/server.mjs).  Used by tests/integration/channels_*.sh.
 *
 *   ch_probe --ws-port P --auth-base URL [--jsonp] [--param K=V]...
 *            [--header 'N: V']... [--timeout S] SCENARIO [ARG]
 *
 * Scenarios (clients A and B; presence/sign-in user ids come from a
 * user_id auth param: alice for A, bob for B):
 *   private         A: private-p1 and public pub1 subscribe
 *   presence        A and B see each other join and leave; member APIs
 *   client_events   A -> B on private- and presence- (user_id), no echo,
 *                   refusals (name, public, encrypted, size, 10/s)
 *   encrypted       A on private-encrypted-room prints READY, then expects
 *                   event "secret" {"msg":"hi"} (triggered by the SDK)
 *   signin          A signs in as alice, prints READY, then expects user
 *                   event "to-user" {"n":7} (sendToUser by the SDK)
 *   autherr STATUS  private-x fails with subscription_error status STATUS
 *                   ("null" for none) while pub2 and the connection work
 *   custom          a custom authorizer/authenticator answering from a
 *                   worker thread (signing locally with app-secret and the
 *                   --master key), a refusal, an answer after the client
 *                   was deleted
 *   provider        auth params replaced by the setter and a header added
 *                   by the provider (the ajax auth server requires both)
 *   reauth          A on private-r + presence-r prints READY and its
 *                   socket_id; after the server restarts (kill -9) both are
 *                   authorized again with the new socket_id
 * Every observed event is printed as "EV client|channel|event|data[|u=id]".
 * Exit 0 and "PASS <scenario>" on success, 1 and "FAIL: why" otherwise. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pusher/channels.h>

#include "core/sign.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char *LOG;
static size_t loglen, logcap;

static int ws_port;
static const char *auth_base;
static int jsonp;
static pusher_kv params[16], headers[16];
static size_t nparams, nheaders;
static double auth_timeout = 10;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  _exit(1);
}

static void log_line(const char *s) {
  pthread_mutex_lock(&mu);
  size_t n = strlen(s);
  if (loglen + n + 2 > logcap) {
    logcap = (loglen + n + 2) * 2;
    LOG = realloc(LOG, logcap);
    if (!LOG) abort();
  }
  memcpy(LOG + loglen, s, n);
  loglen += n;
  LOG[loglen++] = '\n';
  LOG[loglen] = '\0';
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  printf("EV %s\n", s);
  fflush(stdout);
}

static void wait_from(size_t from, const char *needle, double secs);
static int seen_from(size_t from, const char *needle);
static int seen(const char *needle) { return seen_from(0, needle); }
static void wait_for(const char *needle, double secs) { wait_from(0, needle, secs); }

static int seen_from(size_t from, const char *needle) {
  pthread_mutex_lock(&mu);
  int r = LOG && strstr(LOG + from, needle) != NULL;
  pthread_mutex_unlock(&mu);
  return r;
}

static size_t mark_now(void) {
  pthread_mutex_lock(&mu);
  size_t m = loglen;
  pthread_mutex_unlock(&mu);
  return m;
}

/* Wait until needle appears in the log after offset `from`. */
static void wait_from(size_t from, const char *needle, double secs) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += (time_t)secs;
  dl.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&mu);
  while (!(LOG && strstr(LOG + from, needle))) {
    if (pthread_cond_timedwait(&cv, &mu, &dl) != 0) {
      pthread_mutex_unlock(&mu);
      die("no '%s' within %.1f s", needle, secs);
    }
  }
  pthread_mutex_unlock(&mu);
}

static void on_ev(pusher_client *c, const pusher_event *ev, void *ud) {
  char line[4096];
  snprintf(line, sizeof line, "%s|%s|%s|%s%s%s", (const char *)ud, ev->channel ? ev->channel : "-", ev->event,
           ev->data ? ev->data : "(null)", ev->user_id ? "|u=" : "", ev->user_id ? ev->user_id : "");
  log_line(line);
}

static void on_user(pusher_client *c, const pusher_event *ev, void *ud) {
  char line[4096];
  snprintf(line, sizeof line, "%s|user|%s|%s", (const char *)ud, ev->event, ev->data ? ev->data : "(null)");
  log_line(line);
}

static void on_conn(pusher_client *c, const pusher_connection_event *ev, void *ud) {
  char line[600];
  if (strcmp(ev->name, "state_change") == 0) return;
  snprintf(line, sizeof line, "%s|conn|%s|%s", (const char *)ud, ev->name,
           ev->socket_id ? ev->socket_id : (ev->message ? ev->message : ""));
  log_line(line);
}

static pusher_client *mk(const char *name, const char *user_id) {
  static pusher_kv p2[2][17];
  static int slot;
  pusher_kv *p = p2[slot++ % 2];
  size_t np = 0;
  for (size_t i = 0; i < nparams; i++) p[np++] = params[i];
  if (user_id) p[np++] = (pusher_kv){"user_id", user_id};
  static char ep[2][512], uep[2][512];
  int s = (slot - 1) % 2;
  snprintf(ep[s], sizeof ep[s], "%s/pusher/auth", auth_base);
  snprintf(uep[s], sizeof uep[s], "%s/pusher/user-auth", auth_base);
  pusher_client_options o;
  pusher_client_options_default(&o);
  o.ws_host = "127.0.0.1";
  o.ws_port = ws_port;
  o.encrypted = 0;
  o.reconnect_delay = 0.5;
  o.max_reconnect_delay = 1;
  o.auth_endpoint = ep[s];
  o.user_auth_endpoint = uep[s];
  o.auth_transport = jsonp ? PUSHER_AUTH_JSONP : PUSHER_AUTH_AJAX;
  o.auth_params = p;
  o.auth_params_count = np;
  o.auth_headers = headers;
  o.auth_headers_count = nheaders;
  pusher_client *c;
  if (pusher_client_new(&c, "app-key", &o) != 0) die("pusher_client_new");
  if (pusher_client_set_auth_timeout(c, auth_timeout) != 0) die("set_auth_timeout");
  pusher_bind(c, NULL, NULL, on_ev, (void *)name, NULL);
  pusher_user_bind(c, NULL, on_user, (void *)name, NULL);
  pusher_connection_bind(c, NULL, on_conn, (void *)name, NULL);
  if (pusher_client_connect(c) != 0) die("connect");
  return c;
}

static void expect_rc(int got, int want, const char *what) {
  if (got != want) die("%s returned %s, want %s", what, pusher_err_name(got), pusher_err_name(want));
}

static void scn_private(void) {
  pusher_client *a = mk("A", NULL);
  pusher_subscribe(a, "private-p1");
  pusher_subscribe(a, "pub1");
  wait_for("A|private-p1|pusher:subscription_succeeded|", 20);
  wait_for("A|pub1|pusher:subscription_succeeded|", 20);
  if (seen("subscription_error")) die("unexpected subscription_error");
  pusher_client_del(a);
}

static void check_members(pusher_client *c, const char *ch, size_t count, const char *me, const char *other) {
  pusher_members *m = NULL;
  expect_rc(pusher_channel_members(c, ch, &m), 0, "pusher_channel_members");
  if (pusher_members_count(m) != count) die("%s: %zu members, want %zu", ch, pusher_members_count(m), count);
  if (!pusher_members_me(m) || strcmp(pusher_members_me(m)->user_id, me) != 0) die("%s: me is not %s", ch, me);
  if (other && !pusher_members_get(m, other)) die("%s: %s is not a member", ch, other);
  pusher_members_free(m);
}

static void scn_presence(void) {
  pusher_client *a = mk("A", "alice");
  pusher_subscribe(a, "presence-room");
  wait_for("A|presence-room|pusher:subscription_succeeded|{\"count\":1,\"me\":{\"user_id\":\"alice\"", 20);
  check_members(a, "presence-room", 1, "alice", NULL);
  pusher_client *b = mk("B", "bob");
  pusher_subscribe(b, "presence-room");
  wait_for("B|presence-room|pusher:subscription_succeeded|{\"count\":2", 20);
  wait_for("A|presence-room|pusher:member_added|{\"user_id\":\"bob\",\"user_info\":{\"name\":\"bob\"}}", 20);
  check_members(b, "presence-room", 2, "bob", "alice");
  check_members(a, "presence-room", 2, "alice", "bob");
  pusher_unsubscribe(b, "presence-room");
  wait_for("A|presence-room|pusher:member_removed|{\"user_id\":\"bob\"}", 20);
  check_members(a, "presence-room", 1, "alice", NULL);
  /* B joins again and then goes away for good (connection closed) */
  size_t m = mark_now();
  pusher_subscribe(b, "presence-room");
  wait_from(m, "B|presence-room|pusher:subscription_succeeded|{\"count\":2", 20);
  wait_from(m, "A|presence-room|pusher:member_added|{\"user_id\":\"bob\"", 20);
  check_members(a, "presence-room", 2, "alice", "bob");
  m = mark_now();
  pusher_client_del(b);
  wait_from(m, "A|presence-room|pusher:member_removed|{\"user_id\":\"bob\"}", 20);
  check_members(a, "presence-room", 1, "alice", NULL);
  pusher_client_del(a);
  /* A saw bob added twice and removed twice, never a duplicate */
  pthread_mutex_lock(&mu);
  int adds = 0, rems = 0;
  for (const char *p = LOG; (p = strstr(p, "A|presence-room|pusher:member_added|")); p++) adds++;
  for (const char *p = LOG; (p = strstr(p, "A|presence-room|pusher:member_removed|")); p++) rems++;
  pthread_mutex_unlock(&mu);
  if (adds != 2 || rems != 2) die("A saw %d member_added and %d member_removed, want 2 and 2", adds, rems);
}

static void scn_client_events(void) {
  pusher_client *a = mk("A", "alice");
  pusher_client *b = mk("B", "bob");
  pusher_subscribe(a, "private-chat");
  pusher_subscribe(b, "private-chat");
  pusher_subscribe(a, "presence-chat");
  pusher_subscribe(b, "presence-chat");
  pusher_subscribe(a, "pub3");
  pusher_subscribe(a, "private-encrypted-c");
  wait_for("A|private-chat|pusher:subscription_succeeded", 20);
  wait_for("B|private-chat|pusher:subscription_succeeded", 20);
  wait_for("A|presence-chat|pusher:subscription_succeeded", 20);
  wait_for("B|presence-chat|pusher:subscription_succeeded", 20);
  wait_for("A|pub3|pusher:subscription_succeeded", 20);
  wait_for("A|private-encrypted-c|pusher:subscription_succeeded", 20);
  expect_rc(pusher_trigger(a, "private-chat", "client-hello", "{\"n\":1}"), 0, "trigger private");
  wait_for("B|private-chat|client-hello|{\"n\":1}", 20);
  expect_rc(pusher_trigger(a, "presence-chat", "client-hi", "{\"n\":2}"), 0, "trigger presence");
  wait_for("B|presence-chat|client-hi|{\"n\":2}|u=alice", 20);
  expect_rc(pusher_trigger(b, "private-chat", "client-back", "\"str\""), 0, "trigger back");
  wait_for("A|private-chat|client-back|str", 20);
  usleep(300000);
  if (seen("A|private-chat|client-hello") || seen("A|presence-chat|client-hi")) die("client event echoed to its sender");
  expect_rc(pusher_trigger(a, "private-chat", "hello", "{}"), PUSHER_ERR_BAD_EVENT_NAME, "trigger bad name");
  expect_rc(pusher_trigger(a, "pub3", "client-x", "{}"), PUSHER_ERR_UNSUPPORTED, "trigger public");
  expect_rc(pusher_trigger(a, "private-encrypted-c", "client-x", "{}"), PUSHER_ERR_UNSUPPORTED, "trigger encrypted");
  expect_rc(pusher_trigger(a, "private-nope", "client-x", "{}"), PUSHER_ERR_NOT_FOUND, "trigger unknown");
  char *big = malloc(10300);
  memset(big, 'x', 10290);
  big[0] = '"';
  big[10289] = '"';
  big[10290] = '\0';
  expect_rc(pusher_trigger(a, "private-chat", "client-big", big), PUSHER_ERR_TOO_LARGE, "trigger big");
  free(big);
  /* the window: at most 10 in any second, then RATE_LIMIT */
  sleep(1);
  int ok = 0, rc = 0;
  for (int i = 0; i < 20; i++) {
    char d[32];
    snprintf(d, sizeof d, "{\"i\":%d}", i);
    rc = pusher_trigger(a, "private-chat", "client-burst", d);
    if (rc != 0) break;
    ok++;
  }
  if (ok != 10 || rc != PUSHER_ERR_RATE_LIMIT) die("burst: %d sent then %s, want 10 then RATE_LIMIT", ok, pusher_err_name(rc));
  wait_for("B|private-chat|client-burst|{\"i\":9}", 20);
  sleep(1);
  expect_rc(pusher_trigger(a, "private-chat", "client-after", "{}"), 0, "trigger after the window");
  wait_for("B|private-chat|client-after|{}", 20);
  if (seen("A|conn|error")) die("the connection reported an error");
  pusher_client_del(a);
  pusher_client_del(b);
}

static void scn_encrypted(void) {
  pusher_client *a = mk("A", NULL);
  pusher_subscribe(a, "private-encrypted-room");
  wait_for("A|private-encrypted-room|pusher:subscription_succeeded", 20);
  printf("READY\n");
  fflush(stdout);
  wait_for("A|private-encrypted-room|secret|{\"msg\":\"hi\"}", 30);
  if (seen("decryption_error")) die("decryption_error");
  pusher_client_del(a);
}

static void scn_signin(void) {
  pusher_client *a = mk("A", "carol");
  expect_rc(pusher_signin(a), 0, "signin");
  wait_for("A|user|pusher:signin_success|{\"id\":\"carol\"", 20);
  char id[201];
  expect_rc(pusher_user_id(a, id, sizeof id), 0, "pusher_user_id");
  if (strcmp(id, "carol") != 0) die("user id %s", id);
  usleep(500000); /* let the #server-to-user subscription settle */
  printf("READY\n");
  fflush(stdout);
  wait_for("A|user|to-user|{\"n\":7}", 30);
  wait_for("A|#server-to-user-carol|to-user|{\"n\":7}", 5);
  pusher_client_del(a);
}

static void scn_autherr(const char *status) {
  pusher_client *a = mk("A", NULL);
  pusher_subscribe(a, "pub2");
  wait_for("A|pub2|pusher:subscription_succeeded", 20);
  size_t m = mark_now();
  pusher_subscribe(a, "private-x");
  char want[128];
  snprintf(want, sizeof want, "A|private-x|pusher:subscription_error|{\"type\":\"");
  wait_for(want, auth_timeout + 20);
  snprintf(want, sizeof want, "\"status\":%s}", status);
  if (!seen(want)) die("subscription_error without %s", want);
  if (pusher_channel_subscribed(a, "private-x")) die("private-x subscribed after an auth failure");
  if (pusher_client_state(a) != PUSHER_STATE_CONNECTED) die("the connection is not connected any more");
  if (!pusher_channel_subscribed(a, "pub2")) die("pub2 lost its subscription");
  /* the other channels keep working: a new public channel subscribes */
  pusher_subscribe(a, "pub2b");
  wait_for("A|pub2b|pusher:subscription_succeeded", 20);
  /* (a server's pusher:error is reported as a connection `error` event, but
   * the connection must stay up) */
  if (seen_from(m, "A|conn|connecting") || seen_from(m, "A|conn|disconnected") ||
      seen_from(m, "A|conn|unavailable") || seen_from(m, "A|conn|failed"))
    die("the connection was disturbed");
  pusher_client_del(a);
}

static void scn_reauth(void) {
  pusher_client *a = mk("A", "dave");
  pusher_subscribe(a, "private-r");
  pusher_subscribe(a, "presence-r");
  wait_for("A|private-r|pusher:subscription_succeeded", 20);
  wait_for("A|presence-r|pusher:subscription_succeeded|{\"count\":1", 20);
  char sid[64];
  expect_rc(pusher_client_socket_id(a, sid, sizeof sid), 0, "socket_id");
  printf("READY %s\n", sid);
  fflush(stdout);
  wait_for("A|conn|connecting", 30);
  /* after the restart: connected again, both channels succeed again */
  pthread_mutex_lock(&mu);
  size_t mark = loglen;
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < 600; i++) {
    pthread_mutex_lock(&mu);
    int done = strstr(LOG + mark, "A|private-r|pusher:subscription_succeeded") &&
               strstr(LOG + mark, "A|presence-r|pusher:subscription_succeeded|{\"count\":1,\"me\":{\"user_id\":\"dave\"");
    pthread_mutex_unlock(&mu);
    if (done) break;
    if (i == 599) die("channels not subscribed again after the restart");
    usleep(100000);
  }
  char sid2[64];
  expect_rc(pusher_client_socket_id(a, sid2, sizeof sid2), 0, "socket_id");
  if (strcmp(sid, sid2) == 0) die("same socket id after the restart");
  printf("SOCKET %s\n", sid2);
  check_members(a, "presence-r", 1, "dave", "dave");
  pusher_client_del(a);
}

static const char *master_key;

/* custom authorizer: requests go to a worker thread that answers them */
static pusher_auth_request *queue[64];
static int qn, qstop;
static pusher_auth_request *kept; /* answered only after its client is gone */
static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcv = PTHREAD_COND_INITIALIZER;

static void authorizer(pusher_client *c, pusher_auth_request *req, const char *sid, const char *channel, void *ud) {
  if (strcmp(channel, "private-late") == 0) {
    kept = req;
    log_line("K|kept|private-late|");
    return;
  }
  pthread_mutex_lock(&qmu);
  if (qn < 64) queue[qn++] = req;
  pthread_cond_signal(&qcv);
  pthread_mutex_unlock(&qmu);
}

static void authenticator(pusher_client *c, pusher_auth_request *req, const char *sid, void *ud) {
  authorizer(c, req, sid, "#user", ud);
}

static void *worker(void *arg) {
  for (;;) {
    pthread_mutex_lock(&qmu);
    while (qn == 0 && !qstop) pthread_cond_wait(&qcv, &qmu);
    if (qn == 0) {
      pthread_mutex_unlock(&qmu);
      return NULL;
    }
    pusher_auth_request *r = queue[0];
    memmove(queue, queue + 1, (size_t)(qn - 1) * sizeof queue[0]);
    qn--;
    pthread_mutex_unlock(&qmu);
    usleep(20000);
    const char *sid = pusher_auth_request_socket_id(r);
    const char *ch = pusher_auth_request_channel(r);
    char auth[300];
    pusher_auth_result res;
    memset(&res, 0, sizeof res);
    res.auth = auth;
    char secret[45];
    if (!ch) {
      const char *ud = "{\"id\":\"erin\",\"user_info\":{}}";
      pusher__sign_user("app-key", "app-secret", sid, ud, auth, sizeof auth);
      res.user_data = ud;
    } else if (strcmp(ch, "private-deny") == 0) {
      pusher_auth_request_fail(r, 403, "denied by the custom authorizer");
      continue;
    } else if (strncmp(ch, "presence-", 9) == 0) {
      const char *cd = "{\"user_id\":\"erin\",\"user_info\":{\"k\":1}}";
      pusher__sign_channel("app-key", "app-secret", sid, ch, cd, auth, sizeof auth);
      res.channel_data = cd;
    } else {
      pusher__sign_channel("app-key", "app-secret", sid, ch, NULL, auth, sizeof auth);
      if (strncmp(ch, "private-encrypted-", 18) == 0) {
        if (pusher_shared_secret(ch, master_key, secret) != 0) die("pusher_shared_secret");
        res.shared_secret = secret;
      }
    }
    int rc = pusher_auth_request_complete(r, &res);
    if (rc != 0) die("pusher_auth_request_complete: %s", pusher_err_name(rc));
  }
}

/* an authorizer deleting its own client from inside the callback */
static void del_authorizer(pusher_client *c, pusher_auth_request *req, const char *sid, const char *channel,
                           void *ud) {
  pusher_client_del(c);
  log_line("D|deleted-in-authorizer");
  pusher_auth_request_fail(req, 0, "client gone"); /* accepted and ignored */
}

static void scn_custom(void) {
  if (!master_key) die("custom needs --master");
  pthread_t th;
  pthread_create(&th, NULL, worker, NULL);
  pusher_client *a = mk("A", NULL);
  expect_rc(pusher_client_set_channel_authorizer(a, authorizer, NULL), 0, "set_channel_authorizer");
  expect_rc(pusher_client_set_user_authenticator(a, authenticator, NULL), 0, "set_user_authenticator");
  pusher_subscribe(a, "private-cu");
  pusher_subscribe(a, "presence-cu");
  pusher_subscribe(a, "private-encrypted-cu");
  pusher_subscribe(a, "private-deny");
  pusher_signin(a);
  wait_for("A|private-cu|pusher:subscription_succeeded", 20);
  wait_for("A|presence-cu|pusher:subscription_succeeded|{\"count\":1,\"me\":{\"user_id\":\"erin\",\"user_info\":{\"k\":1}}", 20);
  wait_for("A|private-encrypted-cu|pusher:subscription_succeeded", 20);
  wait_for("A|private-deny|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"denied by the custom authorizer\",\"status\":403}", 20);
  wait_for("A|user|pusher:signin_success|{\"id\":\"erin\"", 20);
  /* an answer given after the client was deleted is accepted and ignored */
  pusher_client *b = mk("B", NULL);
  expect_rc(pusher_client_set_channel_authorizer(b, authorizer, NULL), 0, "set_channel_authorizer");
  pusher_subscribe(b, "private-late");
  wait_for("K|kept|private-late|", 20);
  pusher_client_del(b);
  pusher_auth_result late = {"app-key:0000000000000000000000000000000000000000000000000000000000000000", NULL, NULL, NULL};
  expect_rc(pusher_auth_request_complete(kept, &late), 0, "late complete");
  pusher_client *d = mk("D", NULL);
  expect_rc(pusher_client_set_channel_authorizer(d, del_authorizer, NULL), 0, "set_channel_authorizer");
  pusher_subscribe(d, "private-del");
  wait_for("D|deleted-in-authorizer", 20);
  usleep(200000);
  pusher_client_del(a);
  pthread_mutex_lock(&qmu);
  qstop = 1;
  pthread_cond_broadcast(&qcv);
  pthread_mutex_unlock(&qmu);
  pthread_join(th, NULL);
}

static int provider(pusher_client *c, const char *channel, pusher_auth_extra *x, void *ud) {
  (*(int *)ud)++;
  return pusher_auth_extra_add_header(x, "X-Token", "t1");
}

static void scn_provider(void) {
  pusher_client *a = mk("A", NULL); /* started with the CLI's params: a stale token */
  static int calls;
  pusher_kv p[1] = {{"token", "abc"}};
  expect_rc(pusher_client_set_auth_params(a, p, 1), 0, "set_auth_params");
  pusher_kv bad[1] = {{"X-Bad", "a\r\nb"}};
  expect_rc(pusher_client_set_auth_headers(a, bad, 1), PUSHER_ERR_INVALID_ARGUMENT, "set_auth_headers CRLF");
  expect_rc(pusher_client_set_auth_headers(a, NULL, 0), 0, "set_auth_headers clear");
  expect_rc(pusher_client_set_auth_provider(a, provider, &calls), 0, "set_auth_provider");
  pusher_subscribe(a, "private-pv");
  wait_for("A|private-pv|pusher:subscription_succeeded", 20);
  if (calls < 1) die("provider not called");
  pusher_client_del(a);
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--jsonp") == 0) {
      jsonp = 1;
      continue;
    }
    if (!v) die("%s needs a value", a);
    i++;
    if (strcmp(a, "--ws-port") == 0) {
      ws_port = atoi(v);
    } else if (strcmp(a, "--auth-base") == 0) {
      auth_base = v;
    } else if (strcmp(a, "--master") == 0) {
      master_key = v;
    } else if (strcmp(a, "--timeout") == 0) {
      auth_timeout = atof(v);
    } else if (strcmp(a, "--param") == 0 && nparams < 14) {
      char *s = strdup(v), *eq = strchr(s, '=');
      if (!eq) die("--param K=V");
      *eq = '\0';
      params[nparams++] = (pusher_kv){s, eq + 1};
    } else if (strcmp(a, "--header") == 0 && nheaders < 16) {
      char *s = strdup(v), *col = strchr(s, ':');
      if (!col) die("--header 'N: V'");
      *col = '\0';
      col++;
      while (*col == ' ') col++;
      headers[nheaders++] = (pusher_kv){s, col};
    } else {
      die("unknown option %s", a);
    }
  }
  if (i >= argc || !ws_port || !auth_base) die("usage: ch_probe --ws-port P --auth-base URL [...] SCENARIO");
  const char *scn = argv[i];
  if (strcmp(scn, "private") == 0) scn_private();
  else if (strcmp(scn, "presence") == 0) scn_presence();
  else if (strcmp(scn, "client_events") == 0) scn_client_events();
  else if (strcmp(scn, "encrypted") == 0) scn_encrypted();
  else if (strcmp(scn, "signin") == 0) scn_signin();
  else if (strcmp(scn, "autherr") == 0) scn_autherr(i + 1 < argc ? argv[i + 1] : "null");
  else if (strcmp(scn, "reauth") == 0) scn_reauth();
  else if (strcmp(scn, "custom") == 0) scn_custom();
  else if (strcmp(scn, "provider") == 0) scn_provider();
  else die("unknown scenario %s", scn);
  printf("PASS %s\n", scn);
  return 0;
}
