/* Unit tests: the measuring parts of `pusher bench` (src/cli/bench.c,
 * compiled into this test directly): the log-linear latency histogram, the
 * event stamp parser, and the per-subscriber accounting of deliveries
 * (duplicates, late events, foreign events).  The whole command runs
 * against real servers in tests/integration/cli_bench.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/args.c"
#include "../../src/cli/bench.c"

static void test_hist_buckets(void **st) {
  (void)st;
  /* Every value lands in a bucket whose range holds it, buckets are in
   * order, and a bucket is at most 1/64 of its lower end wide. */
  uint64_t prev_upper = 0;
  for (size_t i = 0; i < H_BUCKETS; i++) {
    uint64_t up = h_upper(i);
    if (i > 0) assert_true(up > prev_upper);
    uint64_t lo = i == 0 ? 0 : prev_upper + 1;
    assert_int_equal(h_index(lo), i);
    assert_int_equal(h_index(up), i);
    if (lo >= H_LINEAR) assert_true((up - lo + 1) * 64 <= lo);
    prev_upper = up;
  }
  assert_int_equal(prev_upper, UINT64_MAX);
  assert_int_equal(h_index(UINT64_MAX), H_BUCKETS - 1);
  assert_int_equal(h_index(0), 0);
  assert_int_equal(h_index(127), 127);
  assert_int_equal(h_index(128), 128);
}

static void test_hist_quantiles(void **st) {
  (void)st;
  hist *h = malloc(sizeof *h);
  assert_non_null(h);
  h_init(h);
  assert_int_equal(h_quantile(h, 0.5), 0);
  /* 1..100000 ns: each quantile within 1/64 above the exact one. */
  for (uint64_t v = 1; v <= 100000; v++) h_add(h, v);
  assert_int_equal(h->count, 100000);
  assert_int_equal(h->min, 1);
  assert_int_equal(h->max, 100000);
  const double qs[] = {0.5, 0.9, 0.99, 0.999};
  for (size_t i = 0; i < 4; i++) {
    double exact = qs[i] * 100000;
    double got = (double)h_quantile(h, qs[i]);
    assert_true(got >= exact);
    assert_true(got <= exact * (1 + 1.0 / 64) + 1);
  }
  assert_int_equal(h_quantile(h, 1.0), 100000);
  /* The maximum bounds every quantile; merge adds counts. */
  hist *g = malloc(sizeof *g);
  assert_non_null(g);
  h_init(g);
  h_add(g, 5000000000ull); /* 5 s */
  h_merge(h, g);
  assert_int_equal(h->count, 100001);
  assert_int_equal(h->max, 5000000000ull);
  assert_int_equal(h_quantile(h, 1.0), 5000000000ull);
  assert_true(h_quantile(h, 0.5) <= 50000 * (1 + 1.0 / 64) + 1);
  free(g);
  free(h);
}

static void test_parse_stamp(void **st) {
  (void)st;
  uint64_t seq = 9, t = 9;
  const char *ok = "{\"i\":12,\"t\":1795811831123456789}";
  assert_int_equal(parse_stamp(ok, strlen(ok), &seq, &t), 0);
  assert_int_equal(seq, 12);
  assert_int_equal(t, 1795811831123456789ull);
  assert_int_equal(parse_stamp("{\"i\":0,\"t\":0}", 13, &seq, &t), 0);
  assert_int_equal(seq, 0);
  const char *bad[] = {"", "{}", "{\"i\":1}", "{\"i\":,\"t\":2}", "{\"i\":1,\"t\":}",
                       "{\"i\":1,\"t\":2", "{\"i\":1,\"t\":2} ", "{\"t\":2,\"i\":1}",
                       "{\"i\":-1,\"t\":2}", "ts=1 i=2", "{\"i\":1,\"t\":2,\"x\":3}", NULL};
  for (size_t i = 0; bad[i]; i++) assert_int_equal(parse_stamp(bad[i], strlen(bad[i]), &seq, &t), -1);
  /* the length bounds the parse: no read past n */
  assert_int_equal(parse_stamp(ok, strlen(ok) - 1, &seq, &t), -1);
}

/* Deliver event seq to subscriber s (data stamped now). */
static void deliver(sub *s, uint64_t seq) {
  char data[64];
  snprintf(data, sizeof data, "{\"i\":%" PRIu64 ",\"t\":%" PRIu64 "}", seq, mono_ns());
  pusher_event ev = {.channel = "c", .event = "bench", .data = data, .data_len = strlen(data)};
  on_delivery(s, &ev);
}

static void test_quiet_time(void **st) {
  (void)st;
  /* --timeout's measure of "no progress": a progress stamp taken by another
   * thread after this one read the clock must not count as a long wait
   * (it once did: unsigned now - last wrapped and ended runs at once). */
  assert_true(quiet_s(5000000000u, 2000000000u) == 3.0);
  assert_true(quiet_s(5000000000u, 5000000000u) == 0.0);
  assert_true(quiet_s(5000000000u, 5000000001u) == 0.0);
  assert_true(quiet_s(5000000000u, UINT64_MAX) == 0.0);
}

static void test_accounting(void **st) {
  (void)st;
  cli_bench_args a;
  memset(&a, 0, sizeof a);
  a.channels = 2;
  a.events = 1000;
  bench *b = calloc(1, sizeof *b);
  assert_non_null(b);
  b->a = &a;
  b->stamp_clock = CLOCK_MONOTONIC;
  shard *sh = calloc(1, sizeof *sh);
  assert_non_null(sh);
  sh->b = b;
  h_init(&sh->lat);
  sub s = {.sh = sh, .chan = 1, .state = S_SUBSCRIBED};
  /* channel 1 carries the odd events: per-channel sequences 0, 1, 2, ... */
  deliver(&s, 1);
  deliver(&s, 3);
  deliver(&s, 3); /* duplicate of the last */
  assert_int_equal(peek_u(&sh->live_received), 3);
  assert_int_equal(sh->duplicates, 1);
  assert_int_equal(sh->out_of_order, 0);
  deliver(&s, 7); /* skips 5 */
  deliver(&s, 5); /* late */
  assert_int_equal(sh->out_of_order, 1);
  deliver(&s, 5); /* now a duplicate, not late again */
  assert_int_equal(sh->duplicates, 2);
  assert_int_equal(sh->out_of_order, 1);
  /* a duplicate 63 events back is still recognised; far older ones count as late */
  for (uint64_t seq = 9; seq < 9 + 2 * 70; seq += 2) deliver(&s, seq);
  uint64_t dups = sh->duplicates, late = sh->out_of_order;
  deliver(&s, 9 + 2 * 69 - 2 * 63); /* 63 back from the highest */
  assert_int_equal(sh->duplicates, dups + 1);
  deliver(&s, 1); /* 74 back: beyond the window */
  assert_int_equal(sh->out_of_order, late + 1);
  /* foreign: another channel's event, beyond --events, not our format */
  uint64_t recv = peek_u(&sh->live_received);
  deliver(&s, 2);
  deliver(&s, 1001);
  pusher_event ev = {.channel = "c", .event = "bench", .data = "hello", .data_len = 5};
  on_delivery(&s, &ev);
  assert_int_equal(sh->foreign, 3);
  assert_int_equal(peek_u(&sh->live_received), recv);
  assert_int_equal(sh->lat.count, peek_u(&sh->live_received));
  /* the live count of unique deliveries, which ends the run, leaves the duplicates out */
  assert_int_equal(peek_u(&sh->live_unique), peek_u(&sh->live_received) - sh->duplicates);
  free(sh);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hist_buckets),
      cmocka_unit_test(test_hist_quantiles),
      cmocka_unit_test(test_parse_stamp),
      cmocka_unit_test(test_accounting),
      cmocka_unit_test(test_quiet_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
