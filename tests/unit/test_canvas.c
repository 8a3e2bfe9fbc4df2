/* test_canvas — canvas_validate at every boundary (table-driven),
 * canvas_size / canvas_index_of row-major maths, canvas_replay ordering,
 * skipping and return value, canvas_diff counts and reported offsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "canvas.h"

/* ------------------------------------------------------------ validate */

typedef struct {
    int64_t x, y, color;
    int want;
} validate_case_t;

static void test_validate_table(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 500, .height = 300, .palette_len = 16};
    static const validate_case_t cases[] = {
        {0, 0, 0, 0},
        {499, 0, 0, 0},
        {0, 299, 0, 0},
        {499, 299, 15, 0},
        {250, 150, 7, 0},
        /* x */
        {500, 0, 0, PX_EBOUNDS},
        {-1, 0, 0, PX_EBOUNDS},
        {501, 0, 0, PX_EBOUNDS},
        {INT64_MAX, 0, 0, PX_EBOUNDS},
        {INT64_MIN, 0, 0, PX_EBOUNDS},
        {(int64_t)1 << 32, 0, 0, PX_EBOUNDS},       /* would be 0 if truncated to int */
        {((int64_t)1 << 32) + 5, 0, 0, PX_EBOUNDS}, /* would be 5 if truncated */
        {(int64_t)INT32_MAX + 1, 0, 0, PX_EBOUNDS},
        {(int64_t)INT32_MIN, 0, 0, PX_EBOUNDS},
        /* y */
        {0, 300, 0, PX_EBOUNDS},
        {0, -1, 0, PX_EBOUNDS},
        {0, 499, 0, PX_EBOUNDS}, /* y checked against height, not width */
        {0, INT64_MAX, 0, PX_EBOUNDS},
        {0, INT64_MIN, 0, PX_EBOUNDS},
        {0, (int64_t)1 << 32, 0, PX_EBOUNDS},
        /* colour */
        {0, 0, 16, PX_ECOLOR},
        {0, 0, -1, PX_ECOLOR},
        {0, 0, 255, PX_ECOLOR},
        {0, 0, 256, PX_ECOLOR},
        {0, 0, INT64_MAX, PX_ECOLOR},
        {0, 0, INT64_MIN, PX_ECOLOR},
        {0, 0, (int64_t)1 << 32, PX_ECOLOR},
        /* bounds are reported before colour */
        {-1, 0, -1, PX_EBOUNDS},
        {500, 300, 16, PX_EBOUNDS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const validate_case_t *c = &cases[i];
        int rc = canvas_validate(&g, c->x, c->y, c->color);
        if (rc != c->want)
            print_error("case %zu: (%lld, %lld, %lld) -> %d, want %d\n", i, (long long)c->x,
                        (long long)c->y, (long long)c->color, rc, c->want);
        assert_int_equal(rc, c->want);
    }
}

/* Every coordinate of a small board, every colour 0..palette_len, and one
 * past each edge. */
static void test_validate_exhaustive_small(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 7, .height = 5, .palette_len = 3};
    for (int64_t y = -2; y <= 6; y++)
        for (int64_t x = -2; x <= 8; x++)
            for (int64_t c = -2; c <= 4; c++) {
                int want = (x < 0 || x >= 7 || y < 0 || y >= 5) ? PX_EBOUNDS
                           : (c < 0 || c >= 3)                  ? PX_ECOLOR
                                                                : 0;
                assert_int_equal(canvas_validate(&g, x, y, c), want);
            }
}

static void test_validate_1x1_and_max_palette(void **state)
{
    (void)state;
    const canvas_geom_t one = {.width = 1, .height = 1, .palette_len = 2};
    assert_int_equal(canvas_validate(&one, 0, 0, 0), 0);
    assert_int_equal(canvas_validate(&one, 0, 0, 1), 0);
    assert_int_equal(canvas_validate(&one, 1, 0, 0), PX_EBOUNDS);
    assert_int_equal(canvas_validate(&one, 0, 1, 0), PX_EBOUNDS);
    assert_int_equal(canvas_validate(&one, 0, 0, 2), PX_ECOLOR);

    const canvas_geom_t big = {.width = 4096, .height = 4096, .palette_len = 256};
    assert_int_equal(canvas_validate(&big, 4095, 4095, 255), 0);
    assert_int_equal(canvas_validate(&big, 4096, 4095, 255), PX_EBOUNDS);
    assert_int_equal(canvas_validate(&big, 4095, 4096, 255), PX_EBOUNDS);
    assert_int_equal(canvas_validate(&big, 4095, 4095, 256), PX_ECOLOR);
}

/* ------------------------------------------------------------ geometry */

static void test_size_and_index_row_major(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 7, .height = 3, .palette_len = 16};
    assert_int_equal(canvas_size(&g), 21);
    assert_int_equal(canvas_index_of(&g, 0, 0), 0);
    assert_int_equal(canvas_index_of(&g, 6, 0), 6);
    assert_int_equal(canvas_index_of(&g, 0, 1), 7);
    assert_int_equal(canvas_index_of(&g, 1, 1), 8);
    assert_int_equal(canvas_index_of(&g, 6, 2), 20);
    /* every (x, y) maps to a distinct offset, in row-major order */
    size_t expect = 0;
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 7; x++) assert_int_equal(canvas_index_of(&g, x, y), expect++);

    /* largest board: no int overflow in the product */
    const canvas_geom_t big = {.width = 4096, .height = 4096, .palette_len = 256};
    assert_int_equal(canvas_size(&big), (size_t)16777216);
    assert_int_equal(canvas_index_of(&big, 4095, 4095), (size_t)16777215);
    assert_int_equal(canvas_index_of(&big, 0, 4095), (size_t)4095 * 4096);

    /* non-square: width, not height, is the stride */
    const canvas_geom_t wide = {.width = 1000, .height = 2, .palette_len = 2};
    assert_int_equal(canvas_index_of(&wide, 3, 1), 1003);
    const canvas_geom_t tall = {.width = 2, .height = 1000, .palette_len = 2};
    assert_int_equal(canvas_index_of(&tall, 1, 999), 1999);
}

/* ------------------------------------------------------------ replay */

static canvas_event_t ev(int64_t seq, int x, int y, int color)
{
    canvas_event_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%032llx", (unsigned long long)seq);
    e.seq = seq;
    e.x = x;
    e.y = y;
    e.color = color;
    snprintf(e.user_id, sizeof e.user_id, "00000000-0000-4000-8000-000000000000");
    e.time_ms = 1700000000000 + seq;
    return e;
}

/* Same pixel written three times, given out of order: the highest seq wins. */
static void test_replay_applies_in_seq_order(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 4, .height = 3, .palette_len = 16};
    uint8_t c[12] = {0};
    canvas_event_t e[] = {ev(3, 1, 1, 9), ev(1, 1, 1, 4), ev(2, 1, 1, 6), ev(5, 0, 0, 2),
                          ev(4, 0, 0, 3)};
    int64_t last = canvas_replay(c, &g, e, 5, 0);
    assert_int_equal(last, 5);
    const uint8_t want[12] = {2, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(c, want, sizeof want);
    /* ev was sorted in place */
    for (size_t i = 0; i < 5; i++) assert_int_equal(e[i].seq, (int64_t)i + 1);
}

/* Every permutation of 5 events on one pixel gives the same result. */
static void test_replay_every_permutation(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 2, .height = 2, .palette_len = 16};
    static const int perms_src[5] = {0, 1, 2, 3, 4};
    int idx[5];
    memcpy(idx, perms_src, sizeof idx);
    /* Heap's algorithm, iterative */
    int cnt[5] = {0};
    int n_perm = 0;
    for (int i = 0;;) {
        canvas_event_t e[5];
        for (int k = 0; k < 5; k++) e[k] = ev(10 + idx[k], 1, 0, 1 + idx[k]);
        uint8_t c[4] = {0};
        assert_int_equal(canvas_replay(c, &g, e, 5, 0), 14);
        const uint8_t want[4] = {0, 5, 0, 0};
        assert_memory_equal(c, want, 4);
        n_perm++;
        while (i < 5 && cnt[i] >= i) cnt[i++] = 0;
        if (i >= 5) break;
        int j = (i % 2) ? cnt[i] : 0;
        int t = idx[j];
        idx[j] = idx[i];
        idx[i] = t;
        cnt[i]++;
        i = 0;
    }
    assert_int_equal(n_perm, 120);
}

static void test_replay_skips_seq_at_or_below_after(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 3, .height = 1, .palette_len = 16};
    uint8_t c[3] = {7, 7, 7};
    canvas_event_t e[] = {ev(10, 0, 0, 1), ev(11, 1, 0, 2), ev(12, 2, 0, 3), ev(9, 1, 0, 5)};
    int64_t last = canvas_replay(c, &g, e, 4, 11);
    assert_int_equal(last, 12);
    const uint8_t want[3] = {7, 7, 3}; /* seq 9, 10, 11 skipped; 12 applied */
    assert_memory_equal(c, want, 3);

    /* everything at or below after_seq: nothing changes, returns after_seq */
    uint8_t d[3] = {1, 2, 3};
    canvas_event_t f[] = {ev(5, 0, 0, 9), ev(4, 1, 0, 9)};
    assert_int_equal(canvas_replay(d, &g, f, 2, 5), 5);
    const uint8_t same[3] = {1, 2, 3};
    assert_memory_equal(d, same, 3);
}

static void test_replay_skips_outside_board(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 3, .height = 2, .palette_len = 16};
    /* guard bytes around the canvas catch out-of-bounds writes */
    uint8_t mem[6 + 16];
    memset(mem, 0xEE, sizeof mem);
    uint8_t *cv = mem + 8;
    memset(cv, 0, 6);
    canvas_event_t e[] = {
        ev(1, 0, 0, 1),  ev(2, 3, 0, 2),  /* x == width */
        ev(3, -1, 0, 3), ev(4, 0, 2, 4),  /* y == height */
        ev(5, 0, -1, 5), ev(6, 2, 1, 6),  /* last valid pixel */
        ev(7, 5, 5, 7),                   /* outside, highest seq */
    };
    int64_t last = canvas_replay(cv, &g, e, 7, 0);
    const uint8_t want[6] = {1, 0, 0, 0, 0, 6};
    assert_memory_equal(cv, want, 6);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(mem[i], 0xEE);
        assert_int_equal(mem[14 + i], 0xEE);
    }
    /* canvas.h: "Returns the largest seq applied or after_seq" — seq 7 was
     * skipped, so 6 */
    assert_int_equal(last, 6);
}

static void test_replay_empty(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 2, .height = 2, .palette_len = 16};
    uint8_t c[4] = {1, 2, 3, 4};
    canvas_event_t one = ev(1, 0, 0, 9);
    /* n == 0 with a valid pointer: nothing applied, after_seq returned */
    assert_int_equal(canvas_replay(c, &g, &one, 0, 42), 42);
    const uint8_t same[4] = {1, 2, 3, 4};
    assert_memory_equal(c, same, 4);
}

/* Regression: an empty event list may be NULL. canvas_replay used to call
 * qsort(NULL, 0, ...) — undefined behaviour (glibc declares qsort's base
 * nonnull), which aborts the ASan/UBSan build ("null pointer passed as
 * argument 1"); fixed in c4ca8e1 (`if (n) qsort`). */
static void test_replay_null_empty_list(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 2, .height = 2, .palette_len = 16};
    uint8_t c[4] = {1, 2, 3, 4};
    assert_int_equal(canvas_replay(c, &g, NULL, 0, 42), 42);
    const uint8_t same[4] = {1, 2, 3, 4};
    assert_memory_equal(c, same, 4);
}

/* A larger replay compared with a straightforward reference. */
static void test_replay_random_vs_reference(void **state)
{
    (void)state;
    const canvas_geom_t g = {.width = 37, .height = 23, .palette_len = 32};
    enum { N = 5000 };
    canvas_event_t *e = malloc(N * sizeof *e);
    int64_t *order = malloc(N * sizeof *order);
    assert_non_null(e);
    assert_non_null(order);
    uint32_t r = 12345;
    /* seqs 1..N shuffled */
    for (int i = 0; i < N; i++) order[i] = i + 1;
    for (int i = N - 1; i > 0; i--) {
        r = r * 1103515245u + 12345u;
        int j = (int)((r >> 8) % (uint32_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N; i++) {
        r = r * 1103515245u + 12345u;
        int x = (int)((r >> 8) % 40) - 1; /* some outside */
        r = r * 1103515245u + 12345u;
        int y = (int)((r >> 8) % 25) - 1;
        r = r * 1103515245u + 12345u;
        e[i] = ev(order[i], x, y, (int)((r >> 8) % 32));
    }
    const int64_t after = 1000;
    /* reference: for each pixel the event with the largest seq > after */
    uint8_t want[37 * 23];
    int64_t best[37 * 23];
    memset(want, 0, sizeof want);
    for (size_t i = 0; i < sizeof best / sizeof best[0]; i++) best[i] = -1;
    int64_t want_last = after;
    for (int i = 0; i < N; i++) {
        if (e[i].seq <= after) continue;
        if (e[i].x < 0 || e[i].y < 0 || e[i].x >= 37 || e[i].y >= 23) continue;
        size_t k = (size_t)e[i].y * 37 + (size_t)e[i].x;
        if (e[i].seq > best[k]) best[k] = e[i].seq, want[k] = (uint8_t)e[i].color;
        if (e[i].seq > want_last) want_last = e[i].seq;
    }
    uint8_t got[37 * 23] = {0};
    assert_int_equal(canvas_replay(got, &g, e, N, after), want_last);
    assert_memory_equal(got, want, sizeof want);
    free(e);
    free(order);
}

/* ------------------------------------------------------------ diff */

static void test_diff_counts_and_offsets(void **state)
{
    (void)state;
    const uint8_t a[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const uint8_t b[10] = {9, 1, 2, 0, 4, 5, 6, 7, 8, 0};
    size_t off[10];
    memset(off, 0xFF, sizeof off);
    assert_int_equal(canvas_diff(a, b, 10, off, 10), 3);
    assert_int_equal(off[0], 0);
    assert_int_equal(off[1], 3);
    assert_int_equal(off[2], 9);
    assert_int_equal(off[3], SIZE_MAX); /* untouched */

    /* max_report limits the written offsets, not the count */
    memset(off, 0xFF, sizeof off);
    assert_int_equal(canvas_diff(a, b, 10, off, 2), 3);
    assert_int_equal(off[0], 0);
    assert_int_equal(off[1], 3);
    assert_int_equal(off[2], SIZE_MAX);

    memset(off, 0xFF, sizeof off);
    assert_int_equal(canvas_diff(a, b, 10, off, 0), 3);
    assert_int_equal(off[0], SIZE_MAX);

    /* offsets may be NULL */
    assert_int_equal(canvas_diff(a, b, 10, NULL, 5), 3);
    /* identical, and n == 0 */
    assert_int_equal(canvas_diff(a, a, 10, off, 10), 0);
    assert_int_equal(canvas_diff(a, b, 0, off, 10), 0);
    /* prefix only */
    assert_int_equal(canvas_diff(a, b, 3, off, 10), 1);
    assert_int_equal(canvas_diff(a, b, 4, off, 10), 2);
}

static void test_diff_all_different_large(void **state)
{
    (void)state;
    enum { N = 250000 };
    uint8_t *a = calloc(N, 1), *b = malloc(N);
    size_t off[100];
    assert_non_null(a);
    assert_non_null(b);
    memset(b, 0, N);
    for (size_t i = 0; i < N; i += 7) b[i] = (uint8_t)(1 + i % 255);
    size_t want = (N + 6) / 7;
    assert_int_equal(canvas_diff(a, b, N, off, 100), want);
    for (size_t i = 0; i < 100; i++) assert_int_equal(off[i], i * 7);
    memset(b, 0xFF, N);
    assert_int_equal(canvas_diff(a, b, N, NULL, 0), N);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_exhaustive_small),
        cmocka_unit_test(test_validate_1x1_and_max_palette),
        cmocka_unit_test(test_size_and_index_row_major),
        cmocka_unit_test(test_replay_applies_in_seq_order),
        cmocka_unit_test(test_replay_every_permutation),
        cmocka_unit_test(test_replay_skips_seq_at_or_below_after),
        cmocka_unit_test(test_replay_skips_outside_board),
        cmocka_unit_test(test_replay_empty),
        cmocka_unit_test(test_replay_null_empty_list),
        cmocka_unit_test(test_replay_random_vs_reference),
        cmocka_unit_test(test_diff_counts_and_offsets),
        cmocka_unit_test(test_diff_all_different_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
