/* Unit tests: lib/core/members.c — presence members under every ordering
 * of load / add / remove / reset / resubscribe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pusher/channels.h>

#include "core/members.h"

static char why[256];

/* An allocator that fails the n-th allocation (n < 0: never). */
static long fail_at = -1, alloc_count;
static int fail_now(void) { return fail_at >= 0 && alloc_count++ == fail_at; }
static void *f_malloc(size_t n, void *u) { return fail_now() ? NULL : malloc(n); }
static void *f_calloc(size_t n, size_t s, void *u) { return fail_now() ? NULL : calloc(n, s); }
static void *f_realloc(void *p, size_t n, void *u) { return fail_now() ? NULL : realloc(p, n); }
static void f_free(void *p, void *u) { free(p); }
static const pusher_mem failmem = {NULL, f_malloc, f_free, f_calloc, f_realloc};


/* The set as "id,id,..." in iteration order; count must agree. */
static void expect_set(const pusher__members *m, const char *want) {
  char got[1024] = "";
  size_t n = pusher__members_count(m);
  for (size_t i = 0; i < n; i++) {
    const pusher__member *x = pusher__members_at(m, i);
    assert_non_null(x);
    if (i) strcat(got, ",");
    strcat(got, x->id);
    assert_ptr_equal(pusher__members_get(m, x->id), x);
  }
  assert_null(pusher__members_at(m, n));
  if (strcmp(got, want) != 0) fail_msg("members: got '%s', want '%s'", got, want);
}

static int set_me(pusher__members *m, const char *d) {
  return pusher__members_set_me(m, d, strlen(d), why, sizeof why);
}
static int load(pusher__members *m, const char *d) { return pusher__members_load(m, d, strlen(d), why, sizeof why); }
static int add(pusher__members *m, const char *d) {
  int emit = -1;
  const pusher__member *x;
  assert_int_equal(pusher__members_add(m, d, strlen(d), &emit, &x, why, sizeof why), 0);
  assert_true(emit == 0 || emit == 1);
  if (emit) assert_non_null(x);
  return emit;
}
static int rem(pusher__members *m, const char *d) {
  int emit = -1;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  assert_int_equal(pusher__members_remove(m, d, strlen(d), &emit, id, why, sizeof why), 0);
  if (!emit) assert_string_equal(id, "");
  return emit;
}

#define ROOM_AB "{\"presence\":{\"ids\":[\"a\",\"b\"],\"hash\":{\"a\":{\"name\":\"A\"},\"b\":null},\"count\":2}}"

static void test_load_basic(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  expect_set(&m, "");
  assert_null(pusher__members_me(&m));
  assert_int_equal(set_me(&m, "{\"user_id\":\"a\",\"user_info\":{\"name\":\"mine\"}}"), 0);
  assert_int_equal(load(&m, ROOM_AB), 0);
  expect_set(&m, "a,b");
  assert_int_equal(pusher__members_count(&m), 2);
  assert_string_equal(pusher__members_get(&m, "a")->info_json, "{\"name\":\"A\"}");
  assert_string_equal(pusher__members_get(&m, "b")->info_json, "null");
  assert_null(pusher__members_get(&m, "c"));
  assert_null(pusher__members_get(&m, NULL));
  const pusher__member *me = pusher__members_me(&m);
  assert_non_null(me);
  assert_string_equal(me->id, "a");
  assert_string_equal(me->info_json, "{\"name\":\"A\"}"); /* the server's view wins */
  pusher__members_free(&m);
  expect_set(&m, "");
  assert_null(pusher__members_me(&m));
}

static void test_frame_fixture_and_ids_only(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  /* docs/protocol.md §12 J */
  assert_int_equal(load(&m, "{\"presence\":{\"count\":1,\"ids\":[\"123\"],\"hash\":{\"123\":{\"twitter\":\"hamchapman\"}}}}"), 0);
  expect_set(&m, "123");
  assert_string_equal(pusher__members_get(&m, "123")->info_json, "{\"twitter\":\"hamchapman\"}");
  /* ids without hash: members with unknown info; duplicates and numbers */
  assert_int_equal(load(&m, "{\"presence\":{\"ids\":[\"x\",7,\"x\"]}}"), 0);
  expect_set(&m, "x,7");
  assert_null(pusher__members_get(&m, "x")->info_json);
  /* empty room */
  assert_int_equal(load(&m, "{\"presence\":{\"ids\":[],\"hash\":{},\"count\":0}}"), 0);
  expect_set(&m, "");
  pusher__members_free(&m);
}

static void test_me_numeric_and_errors(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  const char *cd = "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Pusher\"}}";
  assert_int_equal(pusher__members_set_me(&m, cd, strlen(cd), why, sizeof why), 0);
  assert_string_equal(pusher__members_me(&m)->id, "10");
  assert_string_equal(pusher__members_me(&m)->info_json, "{\"name\":\"Mr. Pusher\"}");
  /* numeric keys in the hash are strings: "10" matches */
  assert_int_equal(load(&m, "{\"presence\":{\"ids\":[\"10\"],\"hash\":{\"10\":{\"n\":1}},\"count\":1}}"), 0);
  assert_string_equal(pusher__members_me(&m)->info_json, "{\"n\":1}");
  const char *bad[] = {"", "[]", "{}", "{\"user_id\":\"\"}", "{\"user_id\":1.5}", "{\"user_id\":null}",
                       "{\"user_id\":true}", "{\"user_id\":[\"a\"]}", "not json"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(pusher__members_set_me(&m, bad[i], strlen(bad[i]), why, sizeof why), PUSHER_ERR_PROTO);
  assert_int_equal(pusher__members_set_me(&m, NULL, 0, why, sizeof why), PUSHER_ERR_PROTO);
  /* a failed set_me keeps the previous one */
  assert_string_equal(pusher__members_me(&m)->id, "10");
  char longid[300];
  snprintf(longid, sizeof longid, "{\"user_id\":\"%0201d\"}", 0);
  assert_int_equal(pusher__members_set_me(&m, longid, strlen(longid), why, sizeof why), PUSHER_ERR_PROTO);
  /* no user_info */
  assert_int_equal(set_me(&m, "{\"user_id\":\"z\"}"), 0);
  assert_null(pusher__members_me(&m)->info_json);
  pusher__members_free(&m);
}

static void test_add_remove_counts(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  assert_int_equal(load(&m, ROOM_AB), 0);
  /* new member */
  assert_int_equal(add(&m, "{\"user_id\":\"c\",\"user_info\":{\"x\":1}}"), 1);
  expect_set(&m, "a,b,c");
  /* duplicate add: no emit, count unchanged, info updated */
  assert_int_equal(add(&m, "{\"user_id\":\"c\",\"user_info\":{\"x\":2}}"), 0);
  expect_set(&m, "a,b,c");
  assert_string_equal(pusher__members_get(&m, "c")->info_json, "{\"x\":2}");
  /* add of an id already loaded */
  assert_int_equal(add(&m, "{\"user_id\":\"a\"}"), 0);
  expect_set(&m, "a,b,c");
  assert_null(pusher__members_get(&m, "a")->info_json);
  /* remove unknown: nothing */
  assert_int_equal(rem(&m, "{\"user_id\":\"zz\"}"), 0);
  expect_set(&m, "a,b,c");
  /* remove known (middle), then again */
  assert_int_equal(rem(&m, "{\"user_id\":\"b\"}"), 1);
  expect_set(&m, "a,c");
  assert_int_equal(rem(&m, "{\"user_id\":\"b\"}"), 0);
  expect_set(&m, "a,c");
  /* remove then add the same id: back, at the end */
  assert_int_equal(rem(&m, "{\"user_id\":\"a\"}"), 1);
  assert_int_equal(add(&m, "{\"user_id\":\"a\",\"user_info\":{}}"), 1);
  expect_set(&m, "c,a");
  /* integer ids are the same member as their text */
  assert_int_equal(add(&m, "{\"user_id\":42}"), 1);
  assert_int_equal(add(&m, "{\"user_id\":\"42\"}"), 0);
  assert_int_equal(rem(&m, "{\"user_id\":42}"), 1);
  expect_set(&m, "c,a");
  /* remove everything */
  assert_int_equal(rem(&m, "{\"user_id\":\"c\"}"), 1);
  assert_int_equal(rem(&m, "{\"user_id\":\"a\"}"), 1);
  expect_set(&m, "");
  assert_int_equal(rem(&m, "{\"user_id\":\"a\"}"), 0);
  expect_set(&m, "");
  /* growth past the initial allocation */
  char d[64];
  for (int i = 0; i < 50; i++) {
    snprintf(d, sizeof d, "{\"user_id\":\"u%d\"}", i);
    assert_int_equal(add(&m, d), 1);
  }
  assert_int_equal(pusher__members_count(&m), 50);
  for (int i = 49; i >= 0; i -= 2) {
    snprintf(d, sizeof d, "{\"user_id\":\"u%d\"}", i);
    assert_int_equal(rem(&m, d), 1);
  }
  assert_int_equal(pusher__members_count(&m), 25);
  assert_string_equal(pusher__members_at(&m, 0)->id, "u0");
  assert_string_equal(pusher__members_at(&m, 24)->id, "u48");
  pusher__members_free(&m);
}

static void test_me_removed(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  assert_int_equal(set_me(&m, "{\"user_id\":\"b\"}"), 0);
  assert_int_equal(load(&m, ROOM_AB), 0);
  assert_string_equal(pusher__members_me(&m)->info_json, "null");
  assert_int_equal(rem(&m, "{\"user_id\":\"b\"}"), 1);
  expect_set(&m, "a");
  /* me is still known (as in pusher-js), but no longer a member */
  assert_string_equal(pusher__members_me(&m)->id, "b");
  assert_null(pusher__members_get(&m, "b"));
  /* and comes back as a new member */
  assert_int_equal(add(&m, "{\"user_id\":\"b\"}"), 1);
  expect_set(&m, "a,b");
  pusher__members_free(&m);
}

static void test_events_before_load_and_after_reset(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  /* before subscription_succeeded: ignored, never duplicated later */
  assert_int_equal(add(&m, "{\"user_id\":\"a\"}"), 0);
  assert_int_equal(rem(&m, "{\"user_id\":\"a\"}"), 0);
  expect_set(&m, "");
  assert_int_equal(load(&m, ROOM_AB), 0);
  expect_set(&m, "a,b");
  /* disconnect: reset; stale events of the old connection are ignored */
  pusher__members_reset(&m);
  expect_set(&m, "");
  assert_null(pusher__members_me(&m));
  assert_int_equal(add(&m, "{\"user_id\":\"c\"}"), 0);
  assert_int_equal(rem(&m, "{\"user_id\":\"a\"}"), 0);
  expect_set(&m, "");
  pusher__members_free(&m);
}

static void test_resubscribe_different_set(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  assert_int_equal(set_me(&m, "{\"user_id\":\"a\"}"), 0);
  assert_int_equal(load(&m, ROOM_AB), 0);
  assert_int_equal(add(&m, "{\"user_id\":\"c\"}"), 1);
  expect_set(&m, "a,b,c");
  /* reconnect: reset, new auth, new subscription_succeeded with another set */
  pusher__members_reset(&m);
  assert_int_equal(set_me(&m, "{\"user_id\":\"a\",\"user_info\":{\"v\":2}}"), 0);
  assert_int_equal(load(&m, "{\"presence\":{\"ids\":[\"d\",\"a\"],\"hash\":{\"d\":{},\"a\":{\"v\":3}},\"count\":2}}"), 0);
  expect_set(&m, "d,a");
  assert_null(pusher__members_get(&m, "b"));
  assert_null(pusher__members_get(&m, "c"));
  assert_string_equal(pusher__members_me(&m)->info_json, "{\"v\":3}");
  /* a second succeeded without reset (server resent it) also replaces */
  assert_int_equal(load(&m, "{\"presence\":{\"ids\":[\"a\"],\"hash\":{\"a\":null},\"count\":1}}"), 0);
  expect_set(&m, "a");
  /* then late events of the previous set behave by the new set */
  assert_int_equal(rem(&m, "{\"user_id\":\"d\"}"), 0);
  assert_int_equal(add(&m, "{\"user_id\":\"d\"}"), 1);
  expect_set(&m, "a,d");
  /* me not in the loaded set: me keeps channel_data's info */
  pusher__members_reset(&m);
  assert_int_equal(set_me(&m, "{\"user_id\":\"q\",\"user_info\":[1]}"), 0);
  assert_int_equal(load(&m, ROOM_AB), 0);
  assert_string_equal(pusher__members_me(&m)->info_json, "[1]");
  assert_null(pusher__members_get(&m, "q"));
  pusher__members_free(&m);
}

static void test_malformed_leaves_set_unchanged(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  assert_int_equal(load(&m, ROOM_AB), 0);
  struct { const char *d; int err; } bad[] = {
      {"", PUSHER_ERR_JSON},
      {"{", PUSHER_ERR_JSON},
      {"[]", PUSHER_ERR_PROTO},
      {"{}", PUSHER_ERR_PROTO},
      {"{\"presence\":[]}", PUSHER_ERR_PROTO},
      {"{\"presence\":{}}", PUSHER_ERR_PROTO},
      {"{\"presence\":{\"hash\":[]}}", PUSHER_ERR_PROTO},
      {"{\"presence\":{\"ids\":{}}}", PUSHER_ERR_PROTO},
      {"{\"presence\":{\"hash\":{},\"count\":\"1\"}}", PUSHER_ERR_PROTO},
      {"{\"presence\":{\"ids\":[null]}}", PUSHER_ERR_PROTO},
      {"{\"presence\":{\"ids\":[\"\"]}}", PUSHER_ERR_PROTO},
      {"{\"presence\":{\"hash\":{\"\":{}}}}", PUSHER_ERR_PROTO},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(load(&m, bad[i].d), bad[i].err);
    expect_set(&m, "a,b");
  }
  int emit = 7;
  const char *badev[] = {"", "[]", "{}", "{\"user_id\":null}", "{\"user_id\":\"\"}", "{\"user_id\":{}}"};
  for (size_t i = 0; i < sizeof badev / sizeof badev[0]; i++) {
    assert_int_not_equal(pusher__members_add(&m, badev[i], strlen(badev[i]), &emit, NULL, why, sizeof why), 0);
    assert_int_equal(emit, 0);
    assert_int_not_equal(pusher__members_remove(&m, badev[i], strlen(badev[i]), &emit, NULL, why, sizeof why), 0);
    assert_int_equal(emit, 0);
  }
  assert_int_not_equal(pusher__members_add(&m, NULL, 0, &emit, NULL, why, sizeof why), 0);
  expect_set(&m, "a,b");
  /* depth cap */
  char deep[300];
  memset(deep, '[', 200);
  deep[200] = 0;
  assert_int_equal(load(&m, deep), PUSHER_ERR_JSON);
  expect_set(&m, "a,b");
  pusher__members_free(&m);
}

/* Every interleaving of a fixed script of events for 3 users, checked against
 * a simple model: a user is present iff its last event was an add (after
 * the load); emit iff presence changed. */
static void test_all_orderings(void **st) {
  (void)st;
  const char *ops[] = {"+a", "+b", "-a", "-c", "+c", "+a", "-b"};
  enum { N = sizeof ops / sizeof ops[0] };
  int perm[N];
  for (int i = 0; i < N; i++) perm[i] = i;
  long runs = 0;
  for (;;) {
    pusher__members m;
    pusher__members_init(&m, NULL);
    assert_int_equal(load(&m, "{\"presence\":{\"ids\":[\"b\"],\"hash\":{\"b\":{}},\"count\":1}}"), 0);
    int present[3] = {0, 1, 0};
    for (int k = 0; k < N; k++) {
      const char *op = ops[perm[k]];
      int u = op[1] - 'a';
      char d[40];
      snprintf(d, sizeof d, "{\"user_id\":\"%c\"}", op[1]);
      if (op[0] == '+') {
        assert_int_equal(add(&m, d), !present[u]);
        present[u] = 1;
      } else {
        assert_int_equal(rem(&m, d), present[u]);
        present[u] = 0;
      }
      assert_int_equal(pusher__members_count(&m), present[0] + present[1] + present[2]);
      for (int x = 0; x < 3; x++) {
        char id[2] = {(char)('a' + x), 0};
        assert_int_equal(pusher__members_get(&m, id) != NULL, present[x]);
      }
    }
    pusher__members_free(&m);
    runs++;
    /* next permutation */
    int i = N - 2;
    while (i >= 0 && perm[i] > perm[i + 1]) i--;
    if (i < 0) break;
    int j = N - 1;
    while (perm[j] < perm[i]) j--;
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
    for (int a = i + 1, b = N - 1; a < b; a++, b--) {
      t = perm[a];
      perm[a] = perm[b];
      perm[b] = t;
    }
  }
  assert_int_equal(runs, 5040);
}

static void test_public_snapshot(void **st) {
  (void)st;
  pusher__members m;
  pusher__members_init(&m, NULL);
  pusher_members *s;
  assert_int_equal(pusher__members_snapshot(&m, NULL, &s), 0);
  assert_int_equal(pusher_members_count(s), 0);
  assert_null(pusher_members_at(s, 0));
  assert_null(pusher_members_me(s));
  pusher_members_free(s);
  assert_int_equal(set_me(&m, "{\"user_id\":7,\"user_info\":{\"n\":\"me\"}}"), 0);
  assert_int_equal(load(&m, ROOM_AB), 0);
  assert_int_equal(add(&m, "{\"user_id\":\"c\"}"), 1);
  assert_int_equal(pusher__members_snapshot(&m, NULL, &s), 0);
  /* the snapshot is independent of later changes */
  assert_int_equal(rem(&m, "{\"user_id\":\"a\"}"), 1);
  pusher__members_reset(&m);
  assert_int_equal(pusher_members_count(s), 3);
  assert_string_equal(pusher_members_at(s, 0)->user_id, "a");
  assert_string_equal(pusher_members_at(s, 0)->user_info, "{\"name\":\"A\"}");
  assert_string_equal(pusher_members_at(s, 1)->user_info, "null");
  assert_string_equal(pusher_members_at(s, 2)->user_id, "c");
  assert_null(pusher_members_at(s, 2)->user_info);
  assert_null(pusher_members_at(s, 3));
  assert_ptr_equal(pusher_members_get(s, "b"), pusher_members_at(s, 1));
  assert_null(pusher_members_get(s, "zz"));
  assert_null(pusher_members_get(s, NULL));
  assert_string_equal(pusher_members_me(s)->user_id, "7");
  assert_string_equal(pusher_members_me(s)->user_info, "{\"n\":\"me\"}");
  pusher_members_free(s);
  pusher_members_free(NULL);
  assert_int_equal(pusher_members_count(NULL), 0);
  assert_null(pusher_members_me(NULL));
  pusher__members_free(&m);
}

/* Fail each allocation of a full scenario in turn: every failure is
 * PUSHER_ERR_NOMEM (or a harmless no-op), the set stays consistent, and
 * nothing leaks (ASan). */
static int oom_scenario(void) {
  pusher__members m;
  pusher__members_init(&m, &failmem);
  int e, emit, rc = 0;
  const char *me = "{\"user_id\":\"a\",\"user_info\":{\"x\":1}}";
  if ((e = pusher__members_set_me(&m, me, strlen(me), why, sizeof why))) rc = e;
  if ((e = pusher__members_load(&m, ROOM_AB, strlen(ROOM_AB), why, sizeof why))) rc = rc ? rc : e;
  for (int i = 0; i < 12; i++) {
    char d[64];
    snprintf(d, sizeof d, "{\"user_id\":\"n%d\",\"user_info\":[%d]}", i, i);
    if ((e = pusher__members_add(&m, d, strlen(d), &emit, NULL, why, sizeof why))) rc = rc ? rc : e;
    if (e) assert_int_equal(emit, 0);
  }
  if ((e = pusher__members_add(&m, "{\"user_id\":\"b\",\"user_info\":1}", 29, &emit, NULL, why, sizeof why)))
    rc = rc ? rc : e;
  if ((e = pusher__members_remove(&m, "{\"user_id\":\"b\"}", 15, &emit, NULL, why, sizeof why))) rc = rc ? rc : e;
  pusher_members *s = NULL;
  if ((e = pusher__members_snapshot(&m, &failmem, &s))) rc = rc ? rc : e;
  if (s) assert_int_equal(pusher_members_count(s), pusher__members_count(&m));
  /* count always equals the distinct ids */
  for (size_t i = 0; i < pusher__members_count(&m); i++)
    for (size_t j = i + 1; j < pusher__members_count(&m); j++)
      assert_string_not_equal(pusher__members_at(&m, i)->id, pusher__members_at(&m, j)->id);
  pusher_members_free(s);
  pusher__members_free(&m);
  return rc;
}

static void test_out_of_memory(void **st) {
  (void)st;
  long n;
  for (n = 0;; n++) {
    fail_at = n;
    alloc_count = 0;
    int rc = oom_scenario();
    if (alloc_count <= n) break; /* the failure point was never reached */
    assert_int_equal(rc, PUSHER_ERR_NOMEM);
  }
  fail_at = -1;
  assert_true(n > 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_basic),
      cmocka_unit_test(test_frame_fixture_and_ids_only),
      cmocka_unit_test(test_me_numeric_and_errors),
      cmocka_unit_test(test_add_remove_counts),
      cmocka_unit_test(test_me_removed),
      cmocka_unit_test(test_events_before_load_and_after_reset),
      cmocka_unit_test(test_resubscribe_different_set),
      cmocka_unit_test(test_malformed_leaves_set_unchanged),
      cmocka_unit_test(test_all_orderings),
      cmocka_unit_test(test_public_snapshot),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
