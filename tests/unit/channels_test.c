/* Issue 3 through the engine with the fake server: presence members kept
 * exact (every ordering of add/remove/resubscribe), encrypted channels
 * (docs/protocol.md §12 F/G vectors, one re-authorization on a MAC failure),
 * client events (name, channel kind, size, 10/s), re-authorization and
 * re-sign-in after a reconnect, auth deadlines, cache_miss and
 * subscription_count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pusher/channels.h>

#include "core/conn.h"
#include "core/crypto.h"
#include "helpers/fake_server.h"

static uint64_t now;
static char LOG[16384];

static void logf_(const char *fmt, ...) {
  size_t n = strlen(LOG);
  if (n + 2 >= sizeof LOG) return;
  if (n) LOG[n++] = ' ';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(LOG + n, sizeof LOG - n, fmt, ap);
  va_end(ap);
}

static void clear_log(void) { LOG[0] = '\0'; }

static void rnd(uint8_t *b, size_t n, void *u) {
  static uint8_t k;
  for (size_t i = 0; i < n; i++) b[i] = k++;
}

typedef struct H {
  pusher__conn *c;
  fake_server fs;
  pusher_client_options o;
  int auth_calls, user_calls;
  uint64_t auth_req, user_req;
  char auth_chan[256], auth_sid[64], user_sid[64];
  int sid;
} H;

static void hook_auth(pusher__conn *c, const char *channel, const char *sid, uint64_t req, void *u) {
  H *h = u;
  h->auth_calls++;
  h->auth_req = req;
  snprintf(h->auth_chan, sizeof h->auth_chan, "%s", channel);
  snprintf(h->auth_sid, sizeof h->auth_sid, "%s", sid);
}

static void hook_user(pusher__conn *c, const char *sid, uint64_t req, void *u) {
  H *h = u;
  h->user_calls++;
  h->user_req = req;
  snprintf(h->user_sid, sizeof h->user_sid, "%s", sid);
}

static void on_event(pusher_client *owner, const pusher_event *ev, void *ud) {
  if (strncmp(ev->event, "pusher:subscription_succeeded", 29) == 0 && ev->channel &&
      strncmp(ev->channel, "presence-", 9) != 0)
    return; /* keep logs short */
  logf_("%s|%s|%s%s%s", ev->channel ? ev->channel : "-", ev->event, ev->data ? ev->data : "(null)",
        ev->user_id ? "|u=" : "", ev->user_id ? ev->user_id : "");
  if (ev->data) assert_int_equal(strlen(ev->data), ev->data_len);
}

static void on_user(pusher_client *owner, const pusher_event *ev, void *ud) {
  logf_("user:%s|%s", ev->event, ev->data ? ev->data : "(null)");
}

static void on_watch(pusher_client *owner, const pusher_event *ev, void *ud) {
  logf_("watch:%s|%s", ev->event, ev->data ? ev->data : "(null)");
}

static void h_new(H *h) {
  memset(h, 0, sizeof *h);
  now = 5000000;
  clear_log();
  pusher_client_options_default(&h->o);
  h->o.ws_host = "127.0.0.1";
  h->o.ws_port = 6001;
  h->o.encrypted = 0;
  h->o.jitter = 0;
  h->o.rand = rnd;
  pusher__conn_hooks hooks = {hook_auth};
  assert_int_equal(pusher__conn_new(&h->c, "app-key", &h->o, h, &hooks, h), 0);
  pusher__conn_set_user_auth_hook(h->c, hook_user);
  assert_int_equal(pusher__conn_bind(h->c, NULL, NULL, on_event, h, NULL), 0);
  fs_init(&h->fs, h->c);
}

static void h_free(H *h) {
  pusher__conn_del(h->c);
  fs_free(&h->fs);
}

static void h_connect(H *h) {
  char sid[32];
  snprintf(sid, sizeof sid, "%d.%d", 10 + h->sid, 20 + h->sid);
  h->sid++;
  if (pusher__conn_state(h->c) != PUSHER_STATE_CONNECTING) assert_int_equal(pusher__conn_connect(h->c, now), 0);
  assert_int_equal(fs_connect(&h->fs, now, sid, 120), 0);
  assert_int_equal(pusher__conn_state(h->c), PUSHER_STATE_CONNECTED);
}

/* Drop the connection and reconnect when the engine retries. */
static void h_reconnect(H *h) {
  fs_drop(&h->fs, PUSHER_ERR_IO, now);
  uint64_t e = pusher__conn_expiry(h->c);
  assert_true(e != PUSHER__NEVER);
  now = e;
  pusher__conn_handle_expiry(h->c, now);
  h_connect(h);
}

/* A server frame {"event":ev[,"channel":ch][,"data":<data as a JSON string>]}. */
static void srv(H *h, const char *ev, const char *ch, const char *data) {
  json_t *o = json_pack("{s:s}", "event", ev);
  if (ch) json_object_set_new(o, "channel", json_string(ch));
  if (data) json_object_set_new(o, "data", json_string(data));
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  fs_send_text(&h->fs, t, now);
  free(t);
}

static void srv_user(H *h, const char *ev, const char *ch, const char *data, const char *uid) {
  json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "event", ev, "channel", ch, "data", data, "user_id", uid);
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  fs_send_text(&h->fs, t, now);
  free(t);
}

static int has(const char *needle) { return strstr(LOG, needle) != NULL; }

static size_t member_count(H *h, const char *ch) {
  pusher_members *m = NULL;
  assert_int_equal(pusher__conn_channel_members(h->c, ch, &m), 0);
  size_t n = pusher_members_count(m);
  pusher_members_free(m);
  return n;
}

/* Member ids of ch joined by ',' (in order). */
static void member_ids(H *h, const char *ch, char *out, size_t len) {
  pusher_members *m = NULL;
  assert_int_equal(pusher__conn_channel_members(h->c, ch, &m), 0);
  out[0] = '\0';
  for (size_t i = 0; i < pusher_members_count(m); i++) {
    size_t k = strlen(out);
    snprintf(out + k, len - k, "%s%s", i ? "," : "", pusher_members_at(m, i)->user_id);
  }
  pusher_members_free(m);
}

#define PRES "presence-room"
#define HASH2 "{\"presence\":{\"ids\":[\"me\",\"a\"],\"hash\":{\"me\":{\"n\":1},\"a\":null},\"count\":2}}"

static void presence_subscribe(H *h) {
  assert_int_equal(h->auth_calls > 0, 1);
  assert_string_equal(h->auth_chan, PRES);
  assert_int_equal(pusher__conn_auth_result(h->c, h->auth_req, 0, 200, NULL, "app-key:sig",
                                            "{\"user_id\":\"me\",\"user_info\":{\"n\":1}}", NULL, now),
                   0);
}

/* ------------------------------------------------------------------ presence */

static void test_members_consistency(void **st) {
  H h;
  h_new(&h);
  char ids[256];
  assert_int_equal(pusher__conn_subscribe(h.c, PRES, now), 0);
  pusher_members *m = NULL;
  assert_int_equal(pusher__conn_channel_members(h.c, PRES, &m), PUSHER_ERR_INVALID_STATE);
  assert_int_equal(pusher__conn_channel_members(h.c, "nope", &m), PUSHER_ERR_NOT_FOUND);
  h_connect(&h);
  presence_subscribe(&h);
  assert_true(fs_count(&h.fs, "channel_data") == 1);
  /* member events before the subscription succeeded: ignored (the load carries the set) */
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":\"early\",\"user_info\":null}");
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":\"a\"}");
  assert_string_equal(LOG, "");
  srv(&h, "pusher_internal:subscription_succeeded", PRES, HASH2);
  assert_string_equal(LOG, "presence-room|pusher:subscription_succeeded|{\"count\":2,\"me\":{\"user_id\":\"me\",\"user_info\":{\"n\":1}},"
                           "\"members\":[{\"user_id\":\"me\",\"user_info\":{\"n\":1}},{\"user_id\":\"a\",\"user_info\":null}]}");
  assert_int_equal(member_count(&h, PRES), 2);
  clear_log();
  /* add: new id => event; the same id again => no event, count unchanged */
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":\"b\",\"user_info\":{\"x\":2}}");
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":\"b\",\"user_info\":{\"x\":3}}");
  assert_string_equal(LOG, "presence-room|pusher:member_added|{\"user_id\":\"b\",\"user_info\":{\"x\":2}}");
  assert_int_equal(member_count(&h, PRES), 3);
  /* numeric user ids become strings */
  clear_log();
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":42}");
  assert_string_equal(LOG, "presence-room|pusher:member_added|{\"user_id\":\"42\",\"user_info\":null}");
  /* remove: unknown => nothing; known => event once */
  clear_log();
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":\"zz\"}");
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":\"a\"}");
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":\"a\"}");
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":42}");
  assert_string_equal(LOG, "presence-room|pusher:member_removed|{\"user_id\":\"a\"} presence-room|pusher:member_removed|{\"user_id\":\"42\"}");
  member_ids(&h, PRES, ids, sizeof ids);
  assert_string_equal(ids, "me,b");
  /* me survives a member_removed of its own id */
  clear_log();
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":\"me\"}");
  assert_true(pusher__conn_channel_members(h.c, PRES, &m) == 0);
  assert_int_equal(pusher_members_count(m), 1);
  assert_non_null(pusher_members_me(m));
  assert_string_equal(pusher_members_me(m)->user_id, "me");
  assert_null(pusher_members_get(m, "me"));
  assert_non_null(pusher_members_get(m, "b"));
  assert_string_equal(pusher_members_get(m, "b")->user_info, "{\"x\":3}");
  pusher_members_free(m);
  /* malformed member events: an error event, the set unchanged */
  srv(&h, "pusher_internal:member_added", PRES, "{\"nope\":1}");
  assert_int_equal(member_count(&h, PRES), 1);
  /* reconnect: members reset, new auth for the new socket id, the new set replaces the old */
  h_reconnect(&h);
  assert_int_equal(pusher__conn_channel_members(h.c, PRES, &m), PUSHER_ERR_INVALID_STATE);
  assert_string_equal(h.auth_sid, "11.21");
  clear_log();
  presence_subscribe(&h);
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":\"b\"}"); /* before the load: ignored */
  srv(&h, "pusher_internal:subscription_succeeded", PRES,
      "{\"presence\":{\"ids\":[\"me\",\"c\"],\"hash\":{\"me\":{\"n\":1},\"c\":{}},\"count\":2}}");
  assert_false(has("member_added"));
  member_ids(&h, PRES, ids, sizeof ids);
  assert_string_equal(ids, "me,c"); /* no stale b, no duplicate me */
  /* a member leaving and coming back across the resubscription is counted once */
  clear_log();
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":\"c\"}");
  srv(&h, "pusher_internal:member_removed", PRES, "{\"user_id\":\"c\"}");
  srv(&h, "pusher_internal:member_added", PRES, "{\"user_id\":\"c\"}");
  assert_string_equal(LOG, "presence-room|pusher:member_removed|{\"user_id\":\"c\"} presence-room|pusher:member_added|{\"user_id\":\"c\",\"user_info\":null}");
  assert_int_equal(member_count(&h, PRES), 2);
  /* unsubscribe + subscribe again: fresh set */
  assert_int_equal(pusher__conn_unsubscribe(h.c, PRES, now), 0);
  assert_int_equal(pusher__conn_channel_members(h.c, PRES, &m), PUSHER_ERR_NOT_FOUND);
  assert_int_equal(pusher__conn_subscribe(h.c, PRES, now), 0);
  presence_subscribe(&h);
  srv(&h, "pusher_internal:subscription_succeeded", PRES,
      "{\"presence\":{\"ids\":[\"me\"],\"hash\":{\"me\":null},\"count\":1}}");
  member_ids(&h, PRES, ids, sizeof ids);
  assert_string_equal(ids, "me");
  /* invalid channel_data from the authorizer: subscription_error, nothing sent */
  assert_int_equal(pusher__conn_subscribe(h.c, "presence-bad", now), 0);
  clear_log();
  fs_clear_msgs(&h.fs);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", "{\"no_id\":1}", NULL, now);
  assert_true(has("presence-bad|pusher:subscription_error|{\"type\":\"AuthError\""));
  assert_int_equal(fs_count(&h.fs, "presence-bad"), 0);
  /* members of a non-presence channel: unsupported */
  pusher__conn_subscribe(h.c, "public", now);
  assert_int_equal(pusher__conn_channel_members(h.c, "public", &m), PUSHER_ERR_UNSUPPORTED);
  h_free(&h);
}

/* ------------------------------------------------------------------ encrypted */

#define ENC "private-encrypted-bla"
#define KEY_F "nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ="
#define PAYLOAD_F "{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\",\"ciphertext\":\"33oMbJp4jf9rt7Abv2Sc4QEidySHWH/MlDfFNmdv+bWcdikhl31YXp8=\"}"
#define PAYLOAD_G "{\"nonce\":\"sjklahvpWWQgAjTx5FfYHCCxd2AmaL9T\",\"ciphertext\":\"zoDEe8dA3nDXKsybAWce/hXGW4szJw==\"}"

static void key_g(char out[45]) {
  /* vector G: SHA-256("private-encrypted-bla" || "This is a string that is 32 chars") */
  uint8_t k[32];
  const char *master = "This is a string that is 32 chars";
  pusher__crypto_shared_secret(ENC, (const uint8_t *)master, strlen(master), k);
  static const uint8_t want[32] = {0x00, 0x48, 0x31, 0xf9, 0x9d, 0x2a, 0x4e, 0x86, 0x72, 0x3e, 0x89,
                                   0x3c, 0xad, 0xed, 0x3a, 0x28, 0x97, 0xde, 0xed, 0xdb, 0xed, 0x95,
                                   0x14, 0xfe, 0x94, 0x97, 0xdc, 0xdd, 0xc5, 0x2b, 0xd5, 0x0b};
  assert_memory_equal(k, want, 32);
  assert_int_equal(pusher__b64_encode(k, 32, out, 45), 0);
}

static void test_encrypted(void **st) {
  H h;
  h_new(&h);
  char kg[45];
  key_g(kg);
  /* vector F: the derivation the auth server does */
  char kf[45];
  assert_int_equal(pusher_shared_secret(ENC, "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=", kf), 0);
  assert_string_equal(kf, KEY_F);
  pusher__conn_subscribe(h.c, ENC, now);
  pusher__conn_subscribe(h.c, "private-encrypted-nokey", now);
  h_connect(&h);
  /* an auth reply without shared_secret: subscription_error, no subscribe */
  assert_string_equal(h.auth_chan, "private-encrypted-nokey");
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, NULL, now);
  assert_true(has("private-encrypted-nokey|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"no shared_secret"));
  assert_int_equal(fs_count(&h.fs, "private-encrypted-nokey"), 0);
  /* bad base64 key: subscription_error too */
  pusher__conn_unsubscribe(h.c, "private-encrypted-nokey", now);
  pusher__conn_subscribe(h.c, "private-encrypted-nokey", now);
  clear_log();
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, "c2VjcmV0", now);
  assert_true(has("private-encrypted-nokey|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"invalid shared_secret"));
  /* the real one (first request) */
  uint64_t first = 1;
  assert_int_equal(pusher__conn_auth_result(h.c, first, 0, 200, NULL, "app-key:sig", NULL, KEY_F, now), 0);
  assert_int_equal(fs_count(&h.fs, KEY_F), 0); /* the secret is never sent */
  srv(&h, "pusher_internal:subscription_succeeded", ENC, "{}");
  clear_log();
  srv(&h, "secret-event", ENC, PAYLOAD_F);
  assert_string_equal(LOG, "private-encrypted-bla|secret-event|{\"message\":\"hello world\"}");
  /* MAC failure: one re-authorization, the event is held, then retried with the new key */
  clear_log();
  int calls = h.auth_calls;
  srv(&h, "e2", ENC, PAYLOAD_G);
  srv(&h, "e3", ENC, PAYLOAD_F); /* arrives while re-authorizing: held too */
  assert_string_equal(LOG, "");
  assert_int_equal(h.auth_calls, calls + 1);
  assert_string_equal(h.auth_chan, ENC);
  fs_clear_msgs(&h.fs);
  assert_int_equal(pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig2", NULL, kg, now), 0);
  assert_int_equal(fs_count(&h.fs, "subscribe"), 0); /* re-keying does not resubscribe */
  /* e2 opens with key G ("Hello!" is not JSON: delivered as is); e3 does not */
  assert_true(strncmp(LOG, "private-encrypted-bla|e2|Hello! private-encrypted-bla|pusher:decryption_error|"
                           "{\"event\":\"e3\",\"error\":\"", 80) == 0);
  assert_true(has("(also with the re-authorized key)\"}"));
  assert_false(has("|e3|"));
  /* the re-authorization fails: decryption_error with its message, never the ciphertext */
  clear_log();
  srv(&h, "e4", ENC, PAYLOAD_F);
  pusher__conn_auth_result(h.c, h.auth_req, PUSHER_ERR_HTTP, 403, "HTTP 403", NULL, NULL, NULL, now);
  assert_string_equal(LOG, "private-encrypted-bla|pusher:decryption_error|{\"event\":\"e4\",\"error\":\"re-authorization failed: HTTP 403\"}");
  /* malformed payloads: decryption_error at once, no re-authorization */
  clear_log();
  calls = h.auth_calls;
  srv(&h, "e5", ENC, "{\"nonce\":\"AAAA\",\"ciphertext\":\"AAAA\"}");
  srv(&h, "e6", ENC, "not json");
  assert_int_equal(h.auth_calls, calls);
  assert_true(has("private-encrypted-bla|pusher:decryption_error|{\"event\":\"e5\""));
  assert_true(has("private-encrypted-bla|pusher:decryption_error|{\"event\":\"e6\""));
  assert_false(has("|e5|") || has("|e6|"));
  /* pusher: events are not decrypted */
  clear_log();
  srv(&h, "pusher:subscription_count", ENC, "{\"subscription_count\":3}");
  assert_string_equal(LOG, "private-encrypted-bla|pusher:subscription_count|{\"subscription_count\":3}");
  /* a JSON string plaintext is delivered as its content */
  uint8_t key[32], nonce[24] = {0};
  size_t kl;
  assert_int_equal(pusher__b64_decode(kg, 44, key, sizeof key, &kl), 0);
  char *wire;
  size_t wl;
  assert_int_equal(pusher__crypto_seal(NULL, key, nonce, "\"quoted\"", 8, &wire, &wl), 0);
  clear_log();
  srv(&h, "e7", ENC, wire);
  free(wire);
  assert_string_equal(LOG, "private-encrypted-bla|e7|quoted");
  /* client events are refused on encrypted channels */
  assert_int_equal(pusher__conn_trigger(h.c, ENC, "client-x", "{}", now), PUSHER_ERR_UNSUPPORTED);
  /* reconnect: the channel is authorized again and the new key is used */
  pusher__conn_unsubscribe(h.c, "private-encrypted-nokey", now);
  h_reconnect(&h);
  assert_string_equal(h.auth_chan, ENC);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig3", NULL, KEY_F, now);
  srv(&h, "pusher_internal:subscription_succeeded", ENC, "{}");
  clear_log();
  srv(&h, "again", ENC, PAYLOAD_F);
  assert_string_equal(LOG, "private-encrypted-bla|again|{\"message\":\"hello world\"}");
  h_free(&h);
}

/* ------------------------------------------------------------------ client events */

static void test_client_events(void **st) {
  H h;
  h_new(&h);
  pusher__conn_subscribe(h.c, "private-c", now);
  pusher__conn_subscribe(h.c, "public", now);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-x", "{}", now), PUSHER_ERR_INVALID_STATE);
  h_connect(&h);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, NULL, now);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-x", "{}", now), PUSHER_ERR_INVALID_STATE);
  srv(&h, "pusher_internal:subscription_succeeded", "private-c", "{}");
  srv(&h, "pusher_internal:subscription_succeeded", "public", "{}");
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "typing", "{}", now), PUSHER_ERR_BAD_EVENT_NAME);
  char longname[300];
  memset(longname, 'a', sizeof longname);
  memcpy(longname, "client-", 7);
  longname[201] = '\0';
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", longname, "{}", now), PUSHER_ERR_BAD_EVENT_NAME);
  assert_int_equal(pusher__conn_trigger(h.c, "private-nope", "client-x", "{}", now), PUSHER_ERR_NOT_FOUND);
  assert_int_equal(pusher__conn_trigger(h.c, "public", "client-x", "{}", now), PUSHER_ERR_UNSUPPORTED);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-x", "{bad", now), PUSHER_ERR_INVALID_ARGUMENT);
  /* 10240 bytes of data are fine, 10241 are not */
  char *big = malloc(10242);
  big[0] = '"';
  memset(big + 1, 'x', 10238);
  big[10239] = '"';
  big[10240] = '\0';
  fs_clear_msgs(&h.fs);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-big", big, now), 0);
  big[10239] = 'x';
  big[10240] = '"';
  big[10241] = '\0';
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-big", big, now), PUSHER_ERR_TOO_LARGE);
  free(big);
  assert_int_equal(fs_count(&h.fs, "client-big"), 1);
  /* 10 per second (sliding window): the big one counted as the first */
  now += 1000;
  fs_clear_msgs(&h.fs);
  for (int i = 0; i < 10; i++) {
    char d[32];
    snprintf(d, sizeof d, "{\"i\":%d}", i);
    assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-r", d, now + (uint64_t)i * 10), 0);
  }
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-r", NULL, now + 500), PUSHER_ERR_RATE_LIMIT);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-r", NULL, now + 999), PUSHER_ERR_RATE_LIMIT);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-r", NULL, now + 1000), 0);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-r", NULL, now + 1005), PUSHER_ERR_RATE_LIMIT);
  assert_int_equal(pusher__conn_trigger(h.c, "private-c", "client-r", NULL, now + 1010), 0);
  assert_int_equal(fs_count(&h.fs, "client-r"), 12);
  assert_string_equal(fs_last(&h.fs), "{\"event\":\"client-r\",\"channel\":\"private-c\",\"data\":{}}");
  /* received client events carry user_id (presence) */
  clear_log();
  srv_user(&h, "client-typing", "private-c", "{\"k\":1}", "u9");
  assert_string_equal(LOG, "private-c|client-typing|{\"k\":1}|u=u9");
  /* cache channels: pusher:cache_miss is delivered */
  pusher__conn_subscribe(h.c, "cache-x", now);
  clear_log();
  srv(&h, "pusher:cache_miss", "cache-x", NULL);
  srv(&h, "pusher_internal:subscription_count", "public", "{\"subscription_count\":7}");
  assert_string_equal(LOG, "cache-x|pusher:cache_miss|(null) public|pusher:subscription_count|{\"subscription_count\":7}");
  /* a server refusing a pending subscription with pusher:error (Pusher, pusherd):
   * subscription_error on that channel; on a subscribed channel: no */
  pusher__conn_subscribe(h.c, "private-e", now);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:bad", NULL, NULL, now);
  clear_log();
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"channel\":\"private-e\",\"data\":{\"code\":null,\"message\":\"Invalid signature\"}}", now);
  assert_true(has("private-e|pusher:subscription_error|{\"type\":\"ServerError\",\"error\":\"Invalid signature\",\"status\":null}"));
  clear_log();
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"channel\":\"private-c\",\"data\":{\"code\":4301,\"message\":\"slow down\"}}", now);
  assert_true(has("private-c|pusher:error|"));
  assert_false(has("subscription_error"));
  assert_int_equal(pusher__conn_state(h.c), PUSHER_STATE_CONNECTED);
  h_free(&h);
}

/* ------------------------------------------------------------------ re-auth and sign-in */

static void test_reauth_and_signin(void **st) {
  H h;
  h_new(&h);
  pusher__conn_set_auth_timeout(h.c, 3000);
  assert_int_equal(pusher__conn_user_bind(h.c, NULL, on_user, &h, NULL), 0);
  assert_int_equal(pusher__conn_watchlist_bind(h.c, NULL, on_watch, &h, NULL), 0);
  assert_int_equal(pusher__conn_watchlist_bind(h.c, "bogus", on_watch, &h, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  pusher__conn_subscribe(h.c, "private-a", now);
  assert_int_equal(pusher__conn_signin(h.c, now), 0);
  assert_int_equal(h.user_calls, 0); /* not connected yet */
  h_connect(&h);
  assert_int_equal(h.user_calls, 1);
  assert_string_equal(h.user_sid, "10.20");
  uint64_t a1 = h.auth_req;
  pusher__conn_auth_result(h.c, a1, 0, 200, NULL, "app-key:s1", NULL, NULL, now);
  /* invalid user_data: signin_error */
  clear_log();
  pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:u", "{\"id\":5}", now);
  assert_true(has("user:pusher:signin_error|{\"type\":\"AuthError\""));
  /* reconnect: private channel and sign-in requested again with the new socket id */
  h_reconnect(&h);
  assert_string_equal(h.auth_sid, "11.21");
  assert_int_equal(h.user_calls, 2);
  assert_string_equal(h.user_sid, "11.21");
  assert_int_equal(pusher__conn_auth_result(h.c, a1, 0, 200, NULL, "app-key:stale", NULL, NULL, now), PUSHER_ERR_NOT_FOUND);
  fs_clear_msgs(&h.fs);
  assert_int_equal(pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:u2", "{\"id\":\"42\",\"user_info\":{}}", now), 0);
  assert_string_equal(fs_last(&h.fs), "{\"event\":\"pusher:signin\",\"data\":{\"auth\":\"app-key:u2\",\"user_data\":\"{\\\"id\\\":\\\"42\\\",\\\"user_info\\\":{}}\"}}");
  assert_null(pusher__conn_user_id(h.c));
  clear_log();
  srv(&h, "pusher:signin_success", NULL, "{\"user_data\":\"{\\\"id\\\":\\\"42\\\",\\\"user_info\\\":{}}\"}");
  assert_string_equal(pusher__conn_user_id(h.c), "42");
  assert_true(has("user:pusher:signin_success|{\"id\":\"42\",\"user_info\":{}}"));
  assert_string_equal(fs_last(&h.fs), "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"#server-to-user-42\"}}");
  clear_log();
  srv(&h, "pusher_internal:subscription_succeeded", "#server-to-user-42", "{}");
  srv(&h, "hello", "#server-to-user-42", "{\"x\":1}");
  assert_string_equal(LOG, "#server-to-user-42|hello|{\"x\":1} user:hello|{\"x\":1}");
  clear_log();
  srv(&h, "pusher_internal:watchlist_events", NULL,
      "{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]},{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}");
  assert_true(has("watch:online|{\"user_ids\":[\"1\"]} watch:offline|{\"user_ids\":[\"2\",\"3\"]}"));
  /* after a reconnect: not signed in until the next signin_success; signed in again */
  h_reconnect(&h);
  assert_null(pusher__conn_user_id(h.c));
  assert_int_equal(h.user_calls, 3);
  /* auth deadline: no answer within 3 s => subscription_error / signin_error (timeout) */
  clear_log();
  now += 3000;
  pusher__conn_handle_expiry(h.c, now);
  assert_true(has("private-a|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"authorization timed out\",\"status\":null}"));
  assert_true(has("user:pusher:signin_error|{\"type\":\"AuthError\",\"error\":\"user authentication timed out\",\"status\":null}"));
  assert_int_equal(pusher__conn_state(h.c), PUSHER_STATE_CONNECTED);
  /* without a user hook: signin_error at once */
  h_free(&h);
  h_new(&h);
  pusher__conn_set_user_auth_hook(h.c, NULL);
  pusher__conn_user_bind(h.c, "pusher:signin_error", on_user, &h, NULL);
  h_connect(&h);
  clear_log();
  pusher__conn_signin(h.c, now);
  assert_true(has("user:pusher:signin_error|{\"type\":\"AuthError\",\"error\":\"no user authenticator is configured\""));
  h_free(&h);
}

/* ------------------------------------------------------------------ issue-3 gaps */

static void on_conn_error(pusher_client *owner, const pusher_connection_event *ev, void *ud) {
  logf_("conn:%s|%d|%s|%s", ev->name, ev->code, ev->message ? ev->message : "(null)", ev->fatal ? "fatal" : "-");
}

static void on_chan_only(pusher_client *owner, const pusher_event *ev, void *ud) {
  logf_("chan:%s|%s", ev->channel ? ev->channel : "-", ev->event);
}

static size_t occurrences(const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(LOG, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

/* docs/protocol.md §3.3: a presence auth reply without channel_data while a
 * sign-in is under way waits for signin_success, then subscribes as the
 * signed-in user without channel_data; a failed sign-in fails it; no
 * sign-in at all: subscription_error at once. */
static void test_presence_without_channel_data_uses_signin(void **st) {
  H h;
  h_new(&h);
  assert_int_equal(pusher__conn_user_bind(h.c, NULL, on_user, &h, NULL), 0);
  assert_int_equal(pusher__conn_subscribe(h.c, PRES, now), 0);
  assert_int_equal(pusher__conn_signin(h.c, now), 0);
  h_connect(&h);
  assert_int_equal(h.user_calls, 1);
  assert_int_equal(h.auth_calls, 1);
  assert_string_equal(h.auth_chan, PRES);
  fs_clear_msgs(&h.fs);
  clear_log();
  /* the auth reply comes first: nothing is sent, no error */
  assert_int_equal(pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:psig", NULL, NULL, now), 0);
  assert_int_equal(fs_count(&h.fs, PRES), 0);
  assert_string_equal(LOG, "");
  assert_int_equal(pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:u", "{\"id\":\"u7\"}", now), 0);
  assert_int_equal(fs_count(&h.fs, "pusher:signin"), 1);
  assert_int_equal(fs_count(&h.fs, PRES), 0);
  assert_string_equal(LOG, "");
  /* signin_success: the server-to-user channel, then the waiting presence channel, signed over socket_id:channel */
  fs_clear_msgs(&h.fs);
  srv(&h, "pusher:signin_success", NULL, "{\"user_data\":\"{\\\"id\\\":\\\"u7\\\"}\"}");
  assert_string_equal(LOG, "user:pusher:signin_success|{\"id\":\"u7\"}");
  assert_int_equal(h.fs.nmsgs, 2);
  assert_string_equal(h.fs.msgs[0], "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"#server-to-user-u7\"}}");
  assert_string_equal(h.fs.msgs[1], "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"app-key:psig\",\"channel\":\"presence-room\"}}");
  clear_log();
  srv(&h, "pusher_internal:subscription_succeeded", PRES,
      "{\"presence\":{\"ids\":[\"u7\",\"a\"],\"hash\":{\"u7\":null,\"a\":null},\"count\":2}}");
  assert_string_equal(LOG, "presence-room|pusher:subscription_succeeded|{\"count\":2,\"me\":{\"user_id\":\"u7\",\"user_info\":null},"
                           "\"members\":[{\"user_id\":\"u7\",\"user_info\":null},{\"user_id\":\"a\",\"user_info\":null}]}");
  pusher_members *m = NULL;
  assert_int_equal(pusher__conn_channel_members(h.c, PRES, &m), 0);
  assert_string_equal(pusher_members_me(m)->user_id, "u7");
  pusher_members_free(m);
  /* already signed in: a reply without channel_data subscribes at once */
  assert_int_equal(pusher__conn_subscribe(h.c, "presence-two", now), 0);
  fs_clear_msgs(&h.fs);
  clear_log();
  assert_int_equal(pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:p2", NULL, NULL, now), 0);
  assert_string_equal(fs_last(&h.fs), "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"app-key:p2\",\"channel\":\"presence-two\"}}");
  assert_string_equal(LOG, "");
  assert_int_equal(pusher__conn_unsubscribe(h.c, "presence-two", now), 0);
  /* reconnect: the reply waits again; the user authentication fails => signin_error, then subscription_error */
  h_reconnect(&h);
  assert_int_equal(h.user_calls, 2);
  assert_string_equal(h.auth_chan, PRES);
  fs_clear_msgs(&h.fs);
  clear_log();
  assert_int_equal(pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:psig2", NULL, NULL, now), 0);
  assert_string_equal(LOG, "");
  pusher__conn_user_auth_result(h.c, h.user_req, PUSHER_ERR_HTTP, 403, "HTTP 403", NULL, NULL, now);
  assert_string_equal(LOG, "user:pusher:signin_error|{\"type\":\"AuthError\",\"error\":\"HTTP 403\",\"status\":403} "
                           "presence-room|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"presence auth reply "
                           "without channel_data and the user sign-in failed: HTTP 403\",\"status\":null}");
  assert_int_equal(fs_count(&h.fs, PRES), 0);
  /* a disconnect while waiting: nothing is sent, nothing reported, the wait is forgotten */
  h_reconnect(&h);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:psig3", NULL, NULL, now);
  clear_log();
  h_reconnect(&h);
  assert_int_equal(h.user_calls, 4);
  fs_clear_msgs(&h.fs);
  pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:u", "{\"id\":\"u7\"}", now);
  srv(&h, "pusher:signin_success", NULL, "{\"user_data\":\"{\\\"id\\\":\\\"u7\\\"}\"}");
  assert_int_equal(fs_count(&h.fs, "psig3"), 0);
  assert_string_equal(LOG, "user:pusher:signin_success|{\"id\":\"u7\"}");
  h_free(&h);

  /* no sign-in requested at all: subscription_error at once, nothing sent */
  h_new(&h);
  pusher__conn_subscribe(h.c, PRES, now);
  h_connect(&h);
  fs_clear_msgs(&h.fs);
  clear_log();
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:psig", NULL, NULL, now);
  assert_string_equal(LOG, "presence-room|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"no channel_data in the "
                           "auth reply of a presence channel (required unless the user signs in first: pusher_signin)\","
                           "\"status\":200}");
  assert_int_equal(fs_count(&h.fs, PRES), 0);
  h_free(&h);
}

/* A connection-level pusher:error answering a pending pusher:signin =>
 * "pusher:signin_error" {"type":"ServerError",..} after the error event,
 * then the usual close handling. */
static void test_signin_server_error(void **st) {
  H h;
  h_new(&h);
  pusher__conn_user_bind(h.c, NULL, on_user, &h, NULL);
  assert_int_equal(pusher__conn_connection_bind(h.c, "error", on_conn_error, &h, NULL), 0);
  pusher__conn_subscribe(h.c, PRES, now);
  pusher__conn_signin(h.c, now);
  h_connect(&h);
  /* a pusher:error before the pusher:signin is sent is not the sign-in's */
  clear_log();
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":4201,\"message\":\"early\"}}", now);
  assert_string_equal(LOG, "conn:error|4201|early|-");
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:psig", NULL, NULL, now); /* waits */
  pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:u", "{\"id\":\"u1\"}", now);
  clear_log();
  /* soketi / pusherd: pusher:error 4009, then close 4009 */
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":4009,\"message\":\"Connection not authorized.\"}}", now);
  assert_string_equal(LOG, "conn:error|4009|Connection not authorized.|- "
                           "user:pusher:signin_error|{\"type\":\"ServerError\",\"error\":\"Connection not authorized.\",\"status\":4009} "
                           "presence-room|pusher:subscription_error|{\"type\":\"AuthError\",\"error\":\"presence auth reply without "
                           "channel_data and the user sign-in failed: Connection not authorized.\",\"status\":null}");
  assert_int_equal(pusher__conn_state(h.c), PUSHER_STATE_CONNECTED);
  clear_log();
  fs_send_close(&h.fs, 4009, "Connection not authorized.", now);
  assert_string_equal(LOG, "conn:error|4009|Connection not authorized.|fatal");
  assert_int_equal(pusher__conn_state(h.c), PUSHER_STATE_DISCONNECTED);
  /* code null: status null */
  pusher__conn_unsubscribe(h.c, PRES, now);
  h_connect(&h);
  assert_int_equal(h.user_calls, 2);
  pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:bad", "{\"id\":\"u1\"}", now);
  clear_log();
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":null,\"message\":\"Invalid signature\"}}", now);
  assert_string_equal(LOG, "conn:error|0|Invalid signature|- "
                           "user:pusher:signin_error|{\"type\":\"ServerError\",\"error\":\"Invalid signature\",\"status\":null}");
  /* answered once: a further pusher:error is no sign-in error */
  clear_log();
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":4301,\"message\":\"again\"}}", now);
  assert_string_equal(LOG, "conn:error|4301|again|-");
  /* 4302 (watchlist truncated) accompanies a successful sign-in: no signin_error */
  h_reconnect(&h);
  pusher__conn_user_auth_result(h.c, h.user_req, 0, 200, NULL, "app-key:u", "{\"id\":\"u1\"}", now);
  clear_log();
  fs_send_text(&h.fs, "{\"event\":\"pusher:error\",\"data\":{\"code\":4302,\"message\":\"watchlist too long\"}}", now);
  srv(&h, "pusher:signin_success", NULL, "{\"user_data\":\"{\\\"id\\\":\\\"u1\\\"}\"}");
  assert_string_equal(LOG, "conn:error|4302|watchlist too long|- user:pusher:signin_success|{\"id\":\"u1\"}");
  assert_int_equal(occurrences("signin_error"), 0);
  h_free(&h);
}

/* Encrypted events held for re-keying are reported, not dropped silently,
 * when the connection ends or the channel is unsubscribed. */
static void test_held_encrypted_events_reported(void **st) {
  H h;
  h_new(&h);
  pusher__conn_subscribe(h.c, ENC, now);
  assert_int_equal(pusher__conn_bind(h.c, ENC, "pusher:decryption_error", on_chan_only, &h, NULL), 0);
  h_connect(&h);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, KEY_F, now);
  srv(&h, "pusher_internal:subscription_succeeded", ENC, "{}");
  clear_log();
  srv(&h, "e1", ENC, PAYLOAD_G); /* MAC failure: held, re-authorization */
  srv(&h, "e2", ENC, PAYLOAD_F); /* held too */
  assert_string_equal(LOG, "");
  uint64_t rekey = h.auth_req;
  /* disconnect: both reported, in order, after the state change */
  assert_int_equal(pusher__conn_disconnect(h.c, now), 0);
  assert_string_equal(LOG,
                      "private-encrypted-bla|pusher:decryption_error|{\"event\":\"e1\",\"error\":\"dropped: the connection ended "
                      "while the event waited for the channel's new key\"} "
                      "chan:private-encrypted-bla|pusher:decryption_error "
                      "private-encrypted-bla|pusher:decryption_error|{\"event\":\"e2\",\"error\":\"dropped: the connection ended "
                      "while the event waited for the channel's new key\"} "
                      "chan:private-encrypted-bla|pusher:decryption_error");
  assert_int_equal(pusher__conn_auth_result(h.c, rekey, 0, 200, NULL, "app-key:late", NULL, KEY_F, now), PUSHER_ERR_NOT_FOUND);
  /* transport lost (io_failed): reported too */
  h_connect(&h);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, KEY_F, now);
  srv(&h, "pusher_internal:subscription_succeeded", ENC, "{}");
  srv(&h, "e3", ENC, PAYLOAD_G);
  clear_log();
  fs_drop(&h.fs, PUSHER_ERR_IO, now);
  assert_string_equal(LOG,
                      "private-encrypted-bla|pusher:decryption_error|{\"event\":\"e3\",\"error\":\"dropped: the connection ended "
                      "while the event waited for the channel's new key\"} "
                      "chan:private-encrypted-bla|pusher:decryption_error");
  now = pusher__conn_expiry(h.c);
  pusher__conn_handle_expiry(h.c, now);
  h_connect(&h);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, KEY_F, now);
  srv(&h, "pusher_internal:subscription_succeeded", ENC, "{}");
  /* unsubscribe: reported to the channel's own bindings as well */
  srv(&h, "e4", ENC, PAYLOAD_G);
  clear_log();
  assert_int_equal(pusher__conn_unsubscribe(h.c, ENC, now), 0);
  assert_string_equal(LOG,
                      "private-encrypted-bla|pusher:decryption_error|{\"event\":\"e4\",\"error\":\"dropped: the channel was "
                      "unsubscribed while the event waited for its new key\"} "
                      "chan:private-encrypted-bla|pusher:decryption_error");
  assert_int_equal(fs_count(&h.fs, "pusher:unsubscribe"), 1);
  /* the 65th held event is refused at once (64 held at most), all 64 reported on unsubscribe */
  pusher__conn_subscribe(h.c, ENC, now);
  pusher__conn_auth_result(h.c, h.auth_req, 0, 200, NULL, "app-key:sig", NULL, KEY_F, now);
  srv(&h, "pusher_internal:subscription_succeeded", ENC, "{}");
  clear_log();
  for (int i = 0; i < 65; i++) srv(&h, "ex", ENC, PAYLOAD_G);
  assert_string_equal(LOG, "private-encrypted-bla|pusher:decryption_error|{\"event\":\"ex\",\"error\":\"too many events waiting "
                           "for the channel's new key\"} chan:private-encrypted-bla|pusher:decryption_error");
  clear_log();
  pusher__conn_unsubscribe(h.c, ENC, now);
  assert_int_equal(occurrences("private-encrypted-bla|pusher:decryption_error|{\"event\":\"ex\",\"error\":\"dropped: the channel was unsubscribed"), 64);
  assert_int_equal(occurrences("chan:"), 64);
  h_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_members_consistency),
      cmocka_unit_test(test_encrypted),
      cmocka_unit_test(test_client_events),
      cmocka_unit_test(test_reauth_and_signin),
      cmocka_unit_test(test_presence_without_channel_data_uses_signin),
      cmocka_unit_test(test_signin_server_error),
      cmocka_unit_test(test_held_encrypted_events_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
