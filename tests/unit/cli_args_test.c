/* Unit tests: the `pusher` CLI's argument helpers (src/cli/args.c, compiled
 * into this test directly since the CLI is an executable, not a library),
 * and the option parser of `pusher bench` (cli_bench_parse).  The other
 * option tables and whole command lines are exercised by
 * tests/integration/cli_soketi.sh and cli_bench.sh through the real binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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


/* ------------------------------------------------------------ pusher bench */

/* Run cli_bench_parse on a NULL-terminated list of arguments (after
 * "bench"), with PUSHER_* unset; stderr goes to *err (static buffer). */
static int bench_parse(cli_bench_args *a, const char **err, ...) {
  static char errbuf[4096];
  char *argv[64];
  int argc = 0;
  argv[argc++] = (char *)"bench";
  va_list ap;
  va_start(ap, err);
  for (const char *s; (s = va_arg(ap, const char *)) != NULL && argc < 63;) argv[argc++] = (char *)s;
  va_end(ap);
  argv[argc] = NULL;
  const char *vars[] = {"PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET", "PUSHER_HOST",
                        "PUSHER_PORT", "PUSHER_CLUSTER"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  fflush(stderr);
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  int saved = dup(STDERR_FILENO);
  dup2(fileno(tmp), STDERR_FILENO);
  int rc = cli_bench_parse(argc, argv, a);
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  rewind(tmp);
  size_t n = fread(errbuf, 1, sizeof errbuf - 1, tmp);
  errbuf[n] = '\0';
  fclose(tmp);
  *err = errbuf;
  return rc;
}

#define CONN "--app-id", "a", "--key", "k", "--secret", "s"

static void test_bench_defaults(void **st) {
  (void)st;
  cli_bench_args a;
  const char *err;
  assert_int_equal(bench_parse(&a, &err, CONN, "--subscribers", "10", "--events", "5", NULL), 0);
  assert_string_equal(err, "");
  assert_int_equal(a.subscribers, 10);
  assert_int_equal(a.events, 5);
  assert_int_equal(a.channels, 1);
  assert_true(a.rate == 0);
  assert_int_equal(a.batch, 0);
  assert_int_equal(a.publishers, 1);
  assert_int_equal(a.connect_concurrency, 100);
  assert_true(a.timeout == 10 && a.connect_timeout == 15);
  assert_int_equal(a.tls, 1);
  assert_int_equal(a.port, 0);
  assert_int_equal(a.server_pid, 0);
  assert_int_equal(a.json, 0);
  assert_int_equal(a.progress, -1);
  assert_int_equal(a.realtime, 0);
  /* a prefix of its own: bench-<8 hex digits>, a valid channel name */
  assert_int_equal(strncmp(a.channel_prefix, "bench-", 6), 0);
  assert_int_equal(strlen(a.channel_prefix), 14);
  assert_true(pusher_channel_name_valid(a.channel_prefix));
}

static void test_bench_values(void **st) {
  (void)st;
  cli_bench_args a;
  const char *err;
  assert_int_equal(bench_parse(&a, &err, CONN, "--subscribers", "1000", "--channels", "4",
                               "--events", "300", "--rate", "2.5", "--batch", "--publishers", "3",
                               "--connect-concurrency", "7", "--connect-timeout", "0.5",
                               "--timeout", "60", "--channel-prefix", "load", "--server-pid", "1",
                               "--json", "--no-progress", "--realtime-clock", "--no-tls", "--host",
                               "127.0.0.1", "--port", "6001", "--insecure", NULL),
                   0);
  assert_int_equal(a.subscribers, 1000);
  assert_int_equal(a.channels, 4);
  assert_int_equal(a.events, 300);
  assert_true(a.rate == 2.5);
  assert_int_equal(a.batch, 1);
  assert_int_equal(a.publishers, 3);
  assert_int_equal(a.connect_concurrency, 7);
  assert_true(a.connect_timeout == 0.5 && a.timeout == 60);
  assert_string_equal(a.channel_prefix, "load");
  assert_int_equal(a.server_pid, 1);
  assert_int_equal(a.json, 1);
  assert_int_equal(a.progress, 0);
  assert_int_equal(a.realtime, 1);
  assert_int_equal(a.tls, 0);
  assert_int_equal(a.insecure, 1);
  assert_string_equal(a.host, "127.0.0.1");
  assert_int_equal(a.port, 6001);
  /* publish only: no subscribers, any number of channels */
  assert_int_equal(bench_parse(&a, &err, CONN, "--subscribers", "0", "--channels", "3",
                               "--events", "1", "--progress", NULL),
                   0);
  assert_int_equal(a.subscribers, 0);
  assert_int_equal(a.progress, 1);
  /* the environment supplies the connection */
  setenv("PUSHER_APP_ID", "env-id", 1);
  setenv("PUSHER_APP_KEY", "env-key", 1);
  setenv("PUSHER_APP_SECRET", "env-secret", 1);
  setenv("PUSHER_HOST", "env-host", 1);
  setenv("PUSHER_PORT", "7000", 1);
  char *argv[] = {(char *)"bench", (char *)"--subscribers", (char *)"1", (char *)"--events",
                  (char *)"1", NULL};
  assert_int_equal(cli_bench_parse(5, argv, &a), 0);
  assert_string_equal(a.app_id, "env-id");
  assert_string_equal(a.key, "env-key");
  assert_string_equal(a.secret, "env-secret");
  assert_string_equal(a.host, "env-host");
  assert_int_equal(a.port, 7000);
  /* --help prints and asks for exit 0 */
  FILE *saved = stdout;
  stdout = fopen("/dev/null", "w");
  assert_non_null(stdout);
  assert_int_equal(bench_parse(&a, &err, "--help", NULL), -1);
  fclose(stdout);
  stdout = saved;
}

static void test_bench_bad(void **st) {
  (void)st;
  /* each: the arguments, and a word the message must contain */
  static const struct {
    const char *args[8];
    const char *says;
  } bad[] = {
      {{"--events", "5", NULL}, "--subscribers"},
      {{"--subscribers", "5", NULL}, "--events"},
      {{"--subscribers", "-1", "--events", "5", NULL}, "--subscribers"},
      {{"--subscribers", "ten", "--events", "5", NULL}, "--subscribers"},
      {{"--subscribers", "1000001", "--events", "5", NULL}, "--subscribers"},
      {{"--subscribers", "5", "--events", "0", NULL}, "--events"},
      {{"--subscribers", "5", "--events", "1e3", NULL}, "--events"},
      {{"--subscribers", "5", "--events", "5", "--channels", "0", NULL}, "--channels"},
      {{"--subscribers", "2", "--events", "5", "--channels", "3", NULL}, "--channels"},
      {{"--subscribers", "5", "--events", "5", "--rate", "-1", NULL}, "--rate"},
      {{"--subscribers", "5", "--events", "5", "--rate", "fast", NULL}, "--rate"},
      {{"--subscribers", "5", "--events", "5", "--publishers", "0", NULL}, "--publishers"},
      {{"--subscribers", "5", "--events", "5", "--publishers", "65", NULL}, "--publishers"},
      {{"--subscribers", "5", "--events", "5", "--connect-concurrency", "0", NULL}, "--connect-concurrency"},
      {{"--subscribers", "5", "--events", "5", "--connect-timeout", "0", NULL}, "--connect-timeout"},
      {{"--subscribers", "5", "--events", "5", "--timeout", "soon", NULL}, "--timeout"},
      {{"--subscribers", "5", "--events", "5", "--server-pid", "0", NULL}, "--server-pid"},
      {{"--subscribers", "5", "--events", "5", "--port", "70000", NULL}, "--port"},
      {{"--subscribers", "5", "--events", "5", "--channel-prefix", "no spaces", NULL}, "--channel-prefix"},
      {{"--subscribers", "5", "--events", "5", "--channel-prefix", "private-x", NULL}, "private"},
      {{"--subscribers", "5", "--events", "5", "--bogus", NULL}, "--bogus"},
      {{"--subscribers", "5", "--events", "5", "extra", NULL}, "extra"},
      {{"--subscribers", "5", "--events", NULL}, "needs a value"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cli_bench_args a;
    const char *err;
    const char *const *v = bad[i].args;
    int rc = bench_parse(&a, &err, CONN, v[0], v[1], v[2], v[3], v[4], v[5], v[6], NULL);
    if (rc != CLI_EXIT_USAGE || strstr(err, bad[i].says) == NULL ||
        strstr(err, "pusher bench: ") != err || strstr(err, "Try 'pusher bench --help'") == NULL)
      fail_msg("case %zu (%s %s ...): rc %d, message '%s'", i, v[0], v[1] ? v[1] : "", rc, err);
  }
  /* each connection value is required */
  cli_bench_args a;
  const char *err;
  assert_int_equal(bench_parse(&a, &err, "--key", "k", "--secret", "s", "--subscribers", "1",
                               "--events", "1", NULL),
                   CLI_EXIT_USAGE);
  assert_non_null(strstr(err, "--app-id"));
  assert_int_equal(bench_parse(&a, &err, "--app-id", "a", "--secret", "s", "--subscribers", "1",
                               "--events", "1", NULL),
                   CLI_EXIT_USAGE);
  assert_non_null(strstr(err, "--key"));
  assert_int_equal(bench_parse(&a, &err, "--app-id", "a", "--key", "k", "--subscribers", "1",
                               "--events", "1", NULL),
                   CLI_EXIT_USAGE);
  assert_non_null(strstr(err, "--secret"));
  setenv("PUSHER_PORT", "http", 1);
  /* bench_parse unsets it: check the variable through a direct call */
  char *argv[] = {(char *)"bench", NULL};
  FILE *saved = stderr;
  stderr = fopen("/dev/null", "w");
  assert_int_equal(cli_bench_parse(1, argv, &a), CLI_EXIT_USAGE);
  fclose(stderr);
  stderr = saved;
  unsetenv("PUSHER_PORT");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seconds), cmocka_unit_test(test_long_and_port),
      cmocka_unit_test(test_param),   cmocka_unit_test(test_header),
      cmocka_unit_test(test_strv_env),
      cmocka_unit_test(test_bench_defaults), cmocka_unit_test(test_bench_values),
      cmocka_unit_test(test_bench_bad),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
