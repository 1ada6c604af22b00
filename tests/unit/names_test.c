/* Unit tests for lib/core/names.c: channel kinds, cache prefixes, the
 * server-to-user channel, and the validators with a configured limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/names.h"

static void test_kinds(void **st) {
  assert_int_equal(pusher__chan_kind_of("news"), PUSHER__CHAN_PUBLIC);
  assert_int_equal(pusher__chan_kind_of("cache-news"), PUSHER__CHAN_PUBLIC);
  assert_int_equal(pusher__chan_kind_of("private-x"), PUSHER__CHAN_PRIVATE);
  assert_int_equal(pusher__chan_kind_of("private-cache-x"), PUSHER__CHAN_PRIVATE);
  assert_int_equal(pusher__chan_kind_of("private-encrypted-x"), PUSHER__CHAN_ENCRYPTED);
  assert_int_equal(pusher__chan_kind_of("private-encrypted-cache-x"), PUSHER__CHAN_ENCRYPTED);
  assert_int_equal(pusher__chan_kind_of("presence-x"), PUSHER__CHAN_PRESENCE);
  assert_int_equal(pusher__chan_kind_of("#server-to-user-u1"), PUSHER__CHAN_USER);
  assert_int_equal(pusher__chan_kind_of("privatex"), PUSHER__CHAN_PUBLIC);
  assert_true(pusher__chan_kind_needs_auth(PUSHER__CHAN_PRIVATE));
  assert_true(pusher__chan_kind_needs_auth(PUSHER__CHAN_ENCRYPTED));
  assert_true(pusher__chan_kind_needs_auth(PUSHER__CHAN_PRESENCE));
  assert_false(pusher__chan_kind_needs_auth(PUSHER__CHAN_PUBLIC));
  assert_false(pusher__chan_kind_needs_auth(PUSHER__CHAN_USER));
  assert_true(pusher__chan_kind_allows_client_events(PUSHER__CHAN_PRIVATE));
  assert_true(pusher__chan_kind_allows_client_events(PUSHER__CHAN_PRESENCE));
  assert_false(pusher__chan_kind_allows_client_events(PUSHER__CHAN_ENCRYPTED));
  assert_false(pusher__chan_kind_allows_client_events(PUSHER__CHAN_PUBLIC));
}

static void test_cache_and_user(void **st) {
  for (size_t i = 0; pusher__cache_prefixes[i]; i++) {
    char n[64];
    strcpy(n, pusher__cache_prefixes[i]);
    strcat(n, "x");
    assert_true(pusher__chan_is_cache(n));
  }
  assert_false(pusher__chan_is_cache("news"));
  assert_false(pusher__chan_is_cache("presence-x"));
  assert_false(pusher__chan_is_cache("xcache-"));
  assert_string_equal(pusher__chan_user_id("#server-to-user-u1"), "u1");
  assert_null(pusher__chan_user_id("server-to-user-u1"));
}

static void test_channel_names(void **st) {
  char why[120];
#define CH(s, max, u) pusher__check_channel_name(s, sizeof(s) - 1, max, u, why, sizeof why)
  assert_true(CH("private-a_b=c@d,e.f;g", 200, 0));
  assert_false(CH("", 200, 0));
  assert_false(CH("a b", 200, 0));
  assert_false(CH("caf\xc3\xa9", 200, 0));
  assert_false(CH("a\0b", 200, 0)); /* embedded NUL (from JSON) */
  assert_true(CH("abcd", 4, 0));
  assert_false(CH("abcde", 4, 0));
  assert_string_equal(why, "Invalid channel name: use 1 to 4 of A-Z a-z 0-9 _ - = @ , . ;");
  assert_false(CH("#server-to-user-u1", 200, 0));
  assert_true(CH("#server-to-user-u1", 200, 1));
  assert_false(CH("#server-to-user-", 200, 1));
  assert_false(CH("#server-to-user-u 1", 200, 1));
  assert_false(CH("#server-to-user-u1", 17, 1)); /* the whole name counts */
  assert_false(pusher__check_channel_name(NULL, 0, 200, 0, NULL, 0));
#undef CH
}

static void test_event_names_and_socket_ids(void **st) {
  char why[120];
  assert_true(pusher__check_event_name("client-x", 8, 200, why, sizeof why));
  assert_false(pusher__check_event_name("", 0, 200, why, sizeof why));
  assert_false(pusher__check_event_name("abcdef", 6, 5, why, sizeof why));
  assert_string_equal(why, "Invalid event name: too long (5 bytes at most)");
  assert_false(pusher__check_event_name("a\0b", 3, 200, why, sizeof why));
#define SID(s, max) pusher__check_socket_id(s, sizeof(s) - 1, max, why, sizeof why)
  assert_true(SID("1234.5678", 64));
  assert_true(SID("0.0", 64));
  assert_false(SID("1234", 64));
  assert_false(SID(".1", 64));
  assert_false(SID("1.", 64));
  assert_false(SID("1.2.3", 64));
  assert_false(SID("1.2:private-x", 64));
  assert_false(SID(" 1.2", 64));
  assert_true(SID("12.34", 5));
  assert_false(SID("12.345", 5));
  assert_string_equal(why, "Invalid socket_id: expected digits.digits (5 bytes at most)");
#undef SID
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_cache_and_user),
      cmocka_unit_test(test_channel_names),
      cmocka_unit_test(test_event_names_and_socket_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
