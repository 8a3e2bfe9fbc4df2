/* test_rds — what rds.c does without a Redis server: placement ids (32
 * lowercase hex digits, never repeated, per thread and across threads, also
 * across the refills of the per-thread random pool), the script's argument
 * vector, and RESP commands byte for byte as hiredis formats them. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

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

static void same_as_hiredis(int argc, const char **argv, const size_t *lens)
{
    char *want = NULL;
    long long wn = redisFormatCommandArgv(&want, argc, argv, lens);
    assert_true(wn > 0);
    char got[4096];
    size_t n = rds_format_command(got, sizeof got, argc, argv, lens);
    assert_int_equal(n, (size_t)wn);
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], '\0'); /* hiredis's async layer scans it with strchr */
    /* too small a buffer (the NUL included): nothing written past it, 0 returned */
    assert_int_equal(rds_format_command(got, n, argc, argv, lens), 0);
    assert_int_equal(rds_format_command(got, sizeof got, argc, argv, NULL), 0);
    free(want);
}

static void test_format_command(void **state)
{
    (void)state;
    const char *a1[] = {"PING"};
    size_t l1[] = {4};
    same_as_hiredis(1, a1, l1);
    /* binary values (a NUL, CR LF), an empty one, a long one */
    static char big[1500];
    memset(big, 'v', sizeof big);
    const char *a2[] = {"SET", "k\r\nx", "", "\0\1", big};
    size_t l2[] = {3, 4, 0, 2, sizeof big};
    same_as_hiredis(5, a2, l2);
    /* the placement command itself */
    char id[33];
    assert_int_equal(rds_placement_id(id), 0);
    rds_place_req_t q = {.user_id = "6f1c2c57-36f4-4a53-9f07-4d0e3c8a9b10", .id = id, .x = 1999,
                         .y = 1999, .color = 0, .width = 2000, .height = 2000,
                         .cooldown_ms = 300000, .ip_group = "10.0.0.1", .ip_cap = 3};
    rds_place_args_t a;
    rds_place_args(&q, &a);
    same_as_hiredis(RDS_PLACE_ARGC, a.argv, a.lens);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_ids),
        cmocka_unit_test(test_place_args),
        cmocka_unit_test(test_format_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
