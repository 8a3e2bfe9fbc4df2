/* test_ratelimit — the sliding-window decision (ratelimit_allow): a fresh
 * client gets exactly max hits, the previous bucket weighs in by how much of
 * it is still inside the window (so a burst at a bucket's edge cannot be
 * repeated right after it), Retry-After is the exact wait (checked by
 * stepping time forward), at most window + window / max. Independent reference: a
 * simulation that replays the hits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

#define W 60 /* window, s */
#define MS(s) ((int64_t)(s) * 1000)

/* A client's buckets as Redis holds them: a hit counts, a refused one is
 * taken back (as rds_rate_limit does). */
typedef struct {
    int64_t bucket[1000];
} store_t;

static bool hit(store_t *st, int max, int64_t now_ms, int64_t *retry)
{
    int64_t b = ratelimit_bucket(now_ms, W);
    st->bucket[b]++;
    bool ok = ratelimit_allow(st->bucket[b], b > 0 ? st->bucket[b - 1] : 0, max, now_ms, W, retry);
    if (!ok) st->bucket[b]--;
    return ok;
}

static void test_fresh_client_gets_max(void **state)
{
    (void)state;
    static store_t st;
    int64_t r = 0;
    for (int i = 0; i < 5; i++) assert_true(hit(&st, 5, MS(10 * W + 30) + i, &r));
    assert_false(hit(&st, 5, MS(10 * W + 30) + 5, &r));
    assert_in_range(r, 1, W + W / 5);
}

/* A fixed window lets 2*max through around an edge; this does not. */
static void test_no_double_burst_at_the_edge(void **state)
{
    (void)state;
    static store_t st;
    int64_t r = 0;
    int ok = 0;
    for (int i = 0; i < 10; i++) ok += hit(&st, 10, MS(10 * W + W - 1), &r); /* 1 s before the edge */
    assert_int_equal(ok, 10);
    ok = 0;
    for (int i = 0; i < 10; i++) ok += hit(&st, 10, MS(11 * W) + 1, &r); /* just after it */
    assert_int_equal(ok, 0);
    /* half way through the next bucket, half of the old one still counts */
    ok = 0;
    for (int i = 0; i < 10; i++) ok += hit(&st, 10, MS(11 * W + W / 2) + 1, &r);
    assert_int_equal(ok, 5);
}

/* Retry-After is exact: refused one second before it, allowed at it. */
static void test_retry_after_is_the_wait(void **state)
{
    (void)state;
    for (int max = 1; max <= 12; max++)
        for (int start = 0; start < W; start += 7)
            for (int extra = 0; extra < 3; extra++) {
                static store_t st;
                memset(&st, 0, sizeof st);
                int64_t t = MS(20 * W + start), r = 0;
                /* fill the limit, spread over a while, then a bit more later */
                for (int i = 0; i < max; i++) assert_true(hit(&st, max, t + i * 1000, &r));
                t += MS(max + extra * 20);
                if (hit(&st, max, t, &r)) continue; /* the window moved on enough */
                assert_in_range(r, 1, W + (W + max - 1) / max);
                int64_t r2 = 0;
                if (r > 1) assert_false(hit(&st, max, t + MS(r - 1), &r2));
                assert_true(hit(&st, max, t + MS(r), &r2));
            }
}

/* Refused hits are not counted: retrying after Retry-After always works,
 * however many were refused before. */
static void test_refused_hits_not_counted(void **state)
{
    (void)state;
    static store_t st;
    int64_t t = MS(30 * W + 5), r = 0;
    for (int i = 0; i < 3; i++) assert_true(hit(&st, 3, t, &r));
    int64_t first = 0;
    assert_false(hit(&st, 3, t, &first));
    for (int i = 0; i < 100; i++) assert_false(hit(&st, 3, t + 10 * i, &r));
    assert_true(hit(&st, 3, t + MS(first), &r));
}

/* Far more than the limit counted (the limit was lowered): the wait still
 * ends where the window allows, within two windows. */
static void test_lowered_limit(void **state)
{
    (void)state;
    static store_t st;
    int64_t t = MS(40 * W + 6), r = 0, r2 = 0;
    for (int i = 0; i < 50; i++) assert_true(hit(&st, 1000, t, &r));
    assert_false(hit(&st, 2, t, &r));
    assert_in_range(r, W + 1, 2 * W);
    assert_false(hit(&st, 2, t + MS(r - 1), &r2));
    assert_true(hit(&st, 2, t + MS(r), &r2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_client_gets_max),
        cmocka_unit_test(test_no_double_burst_at_the_edge),
        cmocka_unit_test(test_retry_after_is_the_wait),
        cmocka_unit_test(test_refused_hits_not_counted),
        cmocka_unit_test(test_lowered_limit),
    };
    return cmocka_run_group_tests_name("test_ratelimit", tests, NULL, NULL);
}
