/* The public REST client and signatures (include/pusher/rest.h), through the
 * public API only: option checks, every refusal made before a request, the
 * auth signatures against the HTTP API reference's vectors, and transport
 * errors that need no server (a closed port).  Requests against pusherd are
 * in tests/integration/rest_pusherd.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pusher/pusher.h>
#include <pusher/rest.h>

#define KEY "278d425bdf160c739803"
#define SECRET "7ad3773142a6692b25b8"
#define MASTER "EpMb1rE+DIFj3ryJrOhjr8c5kLYx0sN0oQ0bL1v+LqQ="

static void opts(pusher_rest_options *o) {
  pusher_rest_options_default(o);
  o->app_id = "app-id";
  o->key = "app-key";
  o->secret = "app-secret";
  o->host = "127.0.0.1";
  o->port = 1; /* closed: nothing in these tests reaches a server */
  o->tls = 0;
  o->timeout = 5;
}

static void test_defaults(void **st) {
  (void)st;
  pusher_rest_options o;
  memset(&o, 0xff, sizeof o);
  pusher_rest_options_default(&o);
  assert_null(o.app_id);
  assert_null(o.key);
  assert_null(o.secret);
  assert_string_equal(o.cluster, "mt1");
  assert_null(o.host);
  assert_int_equal(o.port, 0);
  assert_int_equal(o.tls, 1);
  assert_true(o.timeout == 30.0);
  assert_int_equal(o.max_reply, 1024 * 1024);
  assert_null(o.encryption_master_key);
  assert_null(o.mem);
}

static void test_new_refuses_bad_options(void **st) {
  (void)st;
  pusher_rest *r = (pusher_rest *)0x1;
  pusher_rest_options o;
  assert_int_equal(pusher_rest_new(&r, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.app_id = NULL;
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.app_id = "app id";
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.secret = "";
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.port = 70000;
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.timeout = 0;
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.host = "evil.example/path";
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  opts(&o);
  o.encryption_master_key = "c2hvcnQ="; /* base64 of 5 bytes */
  assert_int_equal(pusher_rest_new(&r, &o), PUSHER_ERR_INVALID_ARGUMENT);
  assert_ptr_equal(r, (pusher_rest *)0x1); /* untouched on failure */
  opts(&o);
  o.encryption_master_key = MASTER;
  assert_int_equal(pusher_rest_new(&r, &o), 0);
  assert_non_null(r);
  assert_string_equal(pusher_rest_error_detail(r), "");
  pusher_rest_del(r);
  pusher_rest_del(NULL);
}

/* Every check that fails before a request: the reply stays empty. */
static void test_refusals_before_request(void **st) {
  (void)st;
  pusher_rest_options o;
  opts(&o);
  pusher_rest *r;
  assert_int_equal(pusher_rest_new(&r, &o), 0);
  pusher_rest_reply rep;
  const char *one[] = {"my-channel"};
  pusher_rest_event ev = {.name = "my-event", .data = "{}"};

  ev.name = "pusher:subscribe";
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, &rep), PUSHER_ERR_BAD_EVENT_NAME);
  assert_non_null(strstr(pusher_rest_error_detail(r), "reserved by Pusher"));
  assert_int_equal(rep.status, 0);
  assert_null(rep.body);
  ev.name = "pusher_internal:member_added";
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, NULL), PUSHER_ERR_BAD_EVENT_NAME);
  ev.name = "";
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, NULL), PUSHER_ERR_BAD_EVENT_NAME);
  ev.name = "my-event";

  const char *bad[] = {"has space"};
  assert_int_equal(pusher_rest_trigger(r, bad, 1, &ev, NULL), PUSHER_ERR_BAD_CHANNEL_NAME);
  assert_int_equal(pusher_rest_trigger(r, one, 0, &ev, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_trigger(r, one, 101, &ev, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_trigger(r, one, 1, NULL, NULL), PUSHER_ERR_INVALID_ARGUMENT);

  ev.socket_id = "12345";
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  ev.socket_id = NULL;
  ev.data = "\xff\xfe";
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  ev.data = "{}";
  ev.name = "bad-\xc3";
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  ev.name = "my-event";

  /* Encrypted channels need the master key, and must be alone. */
  const char *enc[] = {"private-encrypted-x"};
  assert_int_equal(pusher_rest_trigger(r, enc, 1, &ev, NULL), PUSHER_ERR_UNSUPPORTED);
  assert_non_null(strstr(pusher_rest_error_detail(r), "encryption_master_key"));
  pusher_rest_del(r);
  o.encryption_master_key = MASTER;
  assert_int_equal(pusher_rest_new(&r, &o), 0);
  const char *mixed[] = {"a", "private-encrypted-x"};
  assert_int_equal(pusher_rest_trigger(r, mixed, 2, &ev, NULL), PUSHER_ERR_UNSUPPORTED);

  pusher_rest_event batch[11];
  for (int i = 0; i < 11; i++) batch[i] = (pusher_rest_event){.channel = "c", .name = "e"};
  assert_int_equal(pusher_rest_trigger_batch(r, batch, 11, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_trigger_batch(r, batch, 0, NULL), PUSHER_ERR_INVALID_ARGUMENT);
  batch[3].name = "pusher:x";
  assert_int_equal(pusher_rest_trigger_batch(r, batch, 5, NULL), PUSHER_ERR_BAD_EVENT_NAME);
  batch[3].name = "e";
  batch[4].channel = NULL;
  assert_int_equal(pusher_rest_trigger_batch(r, batch, 5, NULL), PUSHER_ERR_BAD_CHANNEL_NAME);

  pusher_kv p[] = {{"auth_key", "x"}};
  assert_int_equal(pusher_rest_request(r, "GET", "/apps/app-id/channels", p, 1, NULL, NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_request(r, "DELETE", "/x", NULL, 0, NULL, NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_request(r, "GET", "x", NULL, 0, NULL, NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_request(r, "GET", "/x?y=1", NULL, 0, NULL, NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_rest_request(r, "GET", "/x", NULL, 0, "{}", NULL),
                   PUSHER_ERR_INVALID_ARGUMENT);
  pusher_rest_del(r);
}

static void test_connection_refused(void **st) {
  (void)st;
  pusher_rest_options o;
  opts(&o);
  pusher_rest *r;
  assert_int_equal(pusher_rest_new(&r, &o), 0);
  const char *one[] = {"my-channel"};
  pusher_rest_event ev = {.name = "my-event", .data = "{}"};
  pusher_rest_reply rep;
  assert_int_equal(pusher_rest_trigger(r, one, 1, &ev, &rep), PUSHER_ERR_CONNREFUSED);
  assert_int_equal(rep.status, 0);
  assert_null(rep.body);
  assert_non_null(strstr(pusher_rest_error_detail(r), "127.0.0.1:1"));
  pusher_rest_reply_free(&rep);
  pusher_rest_reply_free(NULL);
  pusher_rest_del(r);
}

static void test_auth_signatures(void **st) {
  (void)st;
  char out[128];
  assert_int_equal(pusher_auth_size(KEY), strlen(KEY) + 1 + 64 + 1);
  assert_int_equal(pusher_auth_sign_channel(KEY, SECRET, "1234.1234", "private-foobar", NULL, out,
                                            sizeof out),
                   0);
  assert_string_equal(out, KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
  assert_int_equal(pusher_auth_sign_channel(KEY, SECRET, "1234.1234", "presence-foobar",
                                            "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. "
                                            "Channels\"}}",
                                            out, sizeof out),
                   0);
  assert_string_equal(out, KEY ":31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
  assert_int_equal(
      pusher_auth_sign_user(KEY, SECRET, "1234.1234", "{\"id\":\"12345\"}", out, sizeof out), 0);
  assert_string_equal(out, KEY ":4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba");
  assert_int_equal(pusher_auth_sign_channel(KEY, SECRET, "1234.1234", "private-foobar", NULL, out,
                                            pusher_auth_size(KEY) - 1),
                   PUSHER_ERR_TOO_LARGE);
  assert_int_equal(pusher_auth_sign_channel(KEY, SECRET, "1234", "private-foobar", NULL, out,
                                            sizeof out),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_auth_sign_channel(KEY, SECRET, "1.2", "bad name", NULL, out, sizeof out),
                   PUSHER_ERR_INVALID_ARGUMENT);
  assert_int_equal(pusher_auth_sign_channel(KEY, NULL, "1.2", "private-a", NULL, out, sizeof out),
                   PUSHER_ERR_INVALID_ARGUMENT);
}

static void test_validators(void **st) {
  (void)st;
  assert_true(pusher_channel_name_valid("private-a_b-c=d@e,f.g;h"));
  assert_false(pusher_channel_name_valid(""));
  assert_false(pusher_channel_name_valid(NULL));
  assert_false(pusher_channel_name_valid("#server-to-user-1"));
  char long_name[202];
  memset(long_name, 'a', 201);
  long_name[201] = '\0';
  assert_false(pusher_channel_name_valid(long_name));
  long_name[200] = '\0';
  assert_true(pusher_channel_name_valid(long_name));
  assert_true(pusher_socket_id_valid("123.456"));
  assert_false(pusher_socket_id_valid("123."));
  assert_false(pusher_socket_id_valid("a.1"));
  assert_false(pusher_socket_id_valid(NULL));

  pusher_client_options co;
  pusher_client_options_default(&co);
  char why[128];
  assert_int_equal(pusher_client_options_check(&co, why, sizeof why), 0);
  co.ws_port = 0;
  assert_int_equal(pusher_client_options_check(&co, why, sizeof why), PUSHER_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(why, "ws_port"));
  assert_int_equal(pusher_client_options_check(NULL, NULL, 0), PUSHER_ERR_INVALID_ARGUMENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_new_refuses_bad_options),
      cmocka_unit_test(test_refusals_before_request),
      cmocka_unit_test(test_connection_refused),
      cmocka_unit_test(test_auth_signatures),
      cmocka_unit_test(test_validators),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
