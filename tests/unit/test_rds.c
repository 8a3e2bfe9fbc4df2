/* test_rds — what rds.c does without a Redis server: placement ids (32
 * lowercase hex digits, never repeated, per thread and across threads, also
 * across the refills of the per-thread random pool) and the script's
 * argument vector. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rds.h"

#define IDS_PER_THREAD 1000 /* the pool holds 256 ids: several refills */

static void *make_ids(void *arg)
{
    char (*ids)[33] = arg;
    for (int i = 0; i < IDS_PER_THREAD; i++)
        if (rds_placement_id(ids[i])) return (void *)1;
    return NULL;
}

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, 33); }

static void test_placement_ids(void **state)
{
    (void)state;
    static char ids[2 * IDS_PER_THREAD][33];
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, make_ids, ids[IDS_PER_THREAD]), 0);
    void *mine = make_ids(ids), *theirs = NULL;
    assert_int_equal(pthread_join(th, &theirs), 0);
    assert_null(mine);
    assert_null(theirs);
    for (int i = 0; i < 2 * IDS_PER_THREAD; i++) {
        assert_int_equal(strlen(ids[i]), 32);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
    }
    qsort(ids, 2 * IDS_PER_THREAD, sizeof ids[0], cmp_id);
    for (int i = 1; i < 2 * IDS_PER_THREAD; i++)
        if (memcmp(ids[i - 1], ids[i], 33) == 0) fail_msg("id %s drawn twice", ids[i]);
}

static void test_place_args(void **state)
{
    (void)state;
    char id[33];
    assert_int_equal(rds_placement_id(id), 0);
    rds_place_req_t q = {.user_id = "6f1c2c57-36f4-4a53-9f07-4d0e3c8a9b10",
                         .id = id,
                         .x = 7,
                         .y = 3,
                         .color = 5,
                         .width = 10,
                         .height = 4,
                         .cooldown_ms = 5000};
    rds_place_args_t a;
    rds_place_args(&q, &a);
    assert_string_equal(a.argv[0], "EVALSHA");
    assert_string_equal(a.argv[1], rds_place_sha());
    assert_string_equal(a.argv[2], "7"); /* keys */
    /* ARGV[1..]: uid, offset y * width + x, the colour byte, cooldown, id, x, y */
    assert_string_equal(a.argv[10], q.user_id);
    assert_string_equal(a.argv[11], "37");
    assert_int_equal(a.lens[12], 1);
    assert_int_equal((unsigned char)a.argv[12][0], 5);
    assert_string_equal(a.argv[13], "5000");
    assert_string_equal(a.argv[14], id);
    assert_string_equal(a.argv[15], "7");
    assert_string_equal(a.argv[16], "3");
    for (int i = 0; i < RDS_PLACE_ARGC; i++)
        assert_int_equal(a.lens[i], i == 12 ? 1 : strlen(a.argv[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_ids),
        cmocka_unit_test(test_place_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
