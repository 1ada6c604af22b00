/* Unit tests: the `pusher` CLI's argument helpers (src/cli/args.c, compiled
 * into this test directly since the CLI is an executable, not a library).
 * The option tables and whole command lines are exercised by
 * tests/integration/cli_soketi.sh through the real binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/args.c"

static void test_seconds(void **st) {
  (void)st;
  double d = -1;
  assert_int_equal(cli_parse_seconds("5", &d), 0);
  assert_true(d == 5.0);
  assert_int_equal(cli_parse_seconds("0.25", &d), 0);
  assert_true(d == 0.25);
  assert_int_equal(cli_parse_seconds(".5", &d), 0);
  assert_true(d == 0.5);
  assert_int_equal(cli_parse_seconds("1e1", &d), 0);
  assert_true(d == 10.0);
  assert_int_equal(cli_parse_seconds("0", &d), 0);
  assert_true(d == 0.0);
  const char *bad[] = {"", "-1", "abc", "5s", " 5", "5 ", "inf", "nan", "0x10", "1e999", "--1", "1..2", NULL};
  for (size_t i = 0; bad[i]; i++) {
    d = 42;
    assert_int_equal(cli_parse_seconds(bad[i], &d), -1);
    assert_true(d == 42); /* untouched on error */
  }
  assert_int_equal(cli_parse_seconds(NULL, &d), -1);
}

static void test_long_and_port(void **st) {
  (void)st;
  long v = 0;
  int p = 0;
  assert_int_equal(cli_parse_long("10", 1, 100, &v), 0);
  assert_int_equal(v, 10);
  assert_int_equal(cli_parse_long("-3", -5, 5, &v), 0);
  assert_int_equal(v, -3);
  assert_int_equal(cli_parse_long("0", 1, 100, &v), -1);
  assert_int_equal(cli_parse_long("101", 1, 100, &v), -1);
  assert_int_equal(cli_parse_long("1.5", 1, 100, &v), -1);
  assert_int_equal(cli_parse_long("+5", 1, 100, &v), -1);
  assert_int_equal(cli_parse_long("5-", 1, 100, &v), -1);
  assert_int_equal(cli_parse_long("99999999999999999999999", 1, 100, &v), -1);
  assert_int_equal(cli_parse_long("", 1, 100, &v), -1);
  assert_int_equal(cli_parse_port("6001", &p), 0);
  assert_int_equal(p, 6001);
  assert_int_equal(cli_parse_port("1", &p), 0);
  assert_int_equal(cli_parse_port("65535", &p), 0);
  assert_int_equal(cli_parse_port("0", &p), -1);
  assert_int_equal(cli_parse_port("65536", &p), -1);
  assert_int_equal(cli_parse_port("http", &p), -1);
}

static void test_param(void **st) {
  (void)st;
  char s1[] = "token=abc=def", s2[] = "=x", s3[] = "novalue", s4[] = "empty=";
  char *k, *v;
  assert_int_equal(cli_split_param(s1, &k, &v), 0);
  assert_string_equal(k, "token");
  assert_string_equal(v, "abc=def");
  assert_int_equal(cli_split_param(s2, &k, &v), -1);
  assert_int_equal(cli_split_param(s3, &k, &v), -1);
  assert_int_equal(cli_split_param(s4, &k, &v), 0);
  assert_string_equal(k, "empty");
  assert_string_equal(v, "");
}

static void test_header(void **st) {
  (void)st;
  char h1[] = "Authorization: Bearer x:y", h2[] = "X-Empty:", h3[] = "X-Pad: \t v \t";
  char b1[] = "no colon", b2[] = ": v", b3[] = "Bad Name: v", b4[] = "X-A: a\r\nX-B: b";
  char *n, *v;
  assert_int_equal(cli_split_header(h1, &n, &v), 0);
  assert_string_equal(n, "Authorization");
  assert_string_equal(v, "Bearer x:y");
  assert_int_equal(cli_split_header(h2, &n, &v), 0);
  assert_string_equal(n, "X-Empty");
  assert_string_equal(v, "");
  assert_int_equal(cli_split_header(h3, &n, &v), 0);
  assert_string_equal(v, "v");
  assert_int_equal(cli_split_header(b1, &n, &v), -1);
  assert_int_equal(cli_split_header(b2, &n, &v), -1);
  assert_int_equal(cli_split_header(b3, &n, &v), -1);
  assert_int_equal(cli_split_header(b4, &n, &v), -1);
}

static void test_strv_env(void **st) {
  (void)st;
  cli_strv l = {0};
  char a[] = "a";
  for (int i = 0; i < 100; i++) assert_int_equal(cli_strv_push(&l, a), 0);
  assert_int_equal(l.n, 100);
  assert_ptr_equal(l.v[99], a);
  cli_strv_free(&l);
  assert_int_equal(l.n, 0);
  setenv("CLI_ARGS_TEST_EMPTY", "", 1);
  setenv("CLI_ARGS_TEST_SET", "x", 1);
  assert_null(cli_env("CLI_ARGS_TEST_EMPTY"));
  assert_null(cli_env("CLI_ARGS_TEST_UNSET_VARIABLE"));
  assert_string_equal(cli_env("CLI_ARGS_TEST_SET"), "x");
  assert_int_equal(cli_usage_error("listen", "test message %d", 1), CLI_EXIT_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seconds), cmocka_unit_test(test_long_and_port),
      cmocka_unit_test(test_param),   cmocka_unit_test(test_header),
      cmocka_unit_test(test_strv_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
