/* test_buf — buf_t growth through buf_append / buf_puts / buf_putc /
 * buf_printf across many sizes (including the 255/256/257 boundary of
 * buf_vprintf's stack buffer), NUL termination after every operation,
 * buf_reset keeping memory, buf_steal handing over ownership. Every check
 * compares the exact bytes against a reference built independently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

/* Deterministic byte pattern, including NUL bytes, so buf_append is shown
 * to be binary-safe. */
static void pattern(char *out, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) out[i] = (char)((i * 31u + seed * 7u) & 0xFF);
}

static void assert_buf_invariants(const buf_t *b)
{
    assert_non_null(b->data);
    assert_true(b->cap > b->len);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_init_is_empty(void **state)
{
    (void)state;
    buf_t b;
    memset(&b, 0xAB, sizeof b);
    buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_deinit(&b); /* free(NULL) is fine */
    assert_null(b.data);
}

static void test_append_zero_bytes_gives_empty_string(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    buf_append(&b, NULL, 0);
    assert_buf_invariants(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_deinit(&b);
}

/* Appends chunks of every size 0..600 (binary data) and checks the
 * accumulated contents and termination after each append. */
static void test_append_many_sizes(void **state)
{
    (void)state;
    enum { MAXCHUNK = 600 };
    size_t total = (size_t)MAXCHUNK * (MAXCHUNK + 1) / 2;
    char *ref = malloc(total);
    char chunk[MAXCHUNK];
    assert_non_null(ref);
    buf_t b;
    buf_init(&b);
    size_t off = 0;
    for (size_t n = 0; n <= MAXCHUNK; n++) {
        pattern(chunk, n, (unsigned)n);
        memcpy(ref + off, chunk, n);
        off += n;
        buf_append(&b, chunk, n);
        assert_buf_invariants(&b);
        assert_int_equal(b.len, off);
    }
    assert_int_equal(off, total);
    assert_memory_equal(b.data, ref, total);
    buf_deinit(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(ref);
}

/* One append of each size into a fresh buffer: exact bytes, terminator. */
static void test_append_single_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 62, 63, 64, 65, 127, 128, 129, 255, 256, 257,
                                   1023, 1024, 1025, 4096, 65535, 65536, 1u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *src = malloc(n);
        assert_non_null(src);
        pattern(src, n, (unsigned)i);
        buf_t b;
        buf_init(&b);
        buf_append(&b, src, n);
        assert_buf_invariants(&b);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.data, src, n);
        buf_deinit(&b);
        free(src);
    }
}

static void test_puts_putc(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    buf_puts(&b, "");
    assert_buf_invariants(&b);
    assert_string_equal(b.data, "");
    buf_puts(&b, "hello");
    buf_putc(&b, ',');
    buf_putc(&b, ' ');
    buf_puts(&b, "world");
    assert_buf_invariants(&b);
    assert_int_equal(b.len, 12);
    assert_string_equal(b.data, "hello, world");
    /* putc of NUL stores the byte and still terminates after it */
    buf_putc(&b, '\0');
    assert_int_equal(b.len, 13);
    assert_int_equal(b.data[12], '\0');
    assert_int_equal(b.data[13], '\0');
    buf_putc(&b, 'x');
    assert_int_equal(b.len, 14);
    assert_memory_equal(b.data, "hello, world\0x", 15);
    buf_deinit(&b);
}

/* 1000 single-byte appends: growth via putc. */
static void test_putc_growth(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    for (int i = 0; i < 1000; i++) {
        buf_putc(&b, (char)('a' + i % 26));
        assert_buf_invariants(&b);
        assert_int_equal(b.len, (size_t)i + 1);
    }
    for (int i = 0; i < 1000; i++) assert_int_equal(b.data[i], 'a' + i % 26);
    buf_deinit(&b);
}

/* buf_printf of a string of every length 0..1100 onto a non-empty buffer:
 * exercises the small-buffer path (< 256) and the reserve path (>= 256). */
static void test_printf_many_sizes(void **state)
{
    (void)state;
    enum { MAXLEN = 1100 };
    char *s = malloc(MAXLEN + 1);
    char *want = malloc(MAXLEN + 64);
    assert_non_null(s);
    assert_non_null(want);
    for (size_t n = 0; n <= MAXLEN; n++) {
        for (size_t i = 0; i < n; i++) s[i] = (char)('A' + (i + n) % 26);
        s[n] = '\0';
        buf_t b;
        buf_init(&b);
        buf_puts(&b, "pre:");
        buf_printf(&b, "<%s|%d>", s, (int)n);
        int wl = snprintf(want, MAXLEN + 64, "pre:<%s|%d>", s, (int)n);
        assert_true(wl > 0);
        assert_buf_invariants(&b);
        assert_int_equal(b.len, (size_t)wl);
        assert_memory_equal(b.data, want, (size_t)wl + 1);
        /* a second printf appends after the first */
        buf_printf(&b, "%s", s);
        assert_buf_invariants(&b);
        assert_int_equal(b.len, (size_t)wl + n);
        assert_memory_equal(b.data + wl, s, n + 1);
        buf_deinit(&b);
    }
    free(s);
    free(want);
}

/* Exactly 255, 256 and 257 formatted bytes (the stack buffer is 256). */
static void test_printf_boundary(void **state)
{
    (void)state;
    for (int n = 250; n <= 262; n++) {
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "%*d", n, 7);
        assert_buf_invariants(&b);
        assert_int_equal(b.len, (size_t)n);
        for (int i = 0; i < n - 1; i++) assert_int_equal(b.data[i], ' ');
        assert_int_equal(b.data[n - 1], '7');
        buf_deinit(&b);
    }
}

static void test_printf_empty_format(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "%s", "");
    assert_buf_invariants(&b);
    assert_int_equal(b.len, 0);
    buf_printf(&b, "%d-%s-%c-%lld", -42, "x", 'y', (long long)INT64_MIN);
    assert_string_equal(b.data, "-42-x-y--9223372036854775808");
    assert_int_equal(b.len, strlen("-42-x-y--9223372036854775808"));
    buf_deinit(&b);
}

static void test_reset_keeps_memory(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    buf_reset(&b); /* reset on a never-used buffer is fine */
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    char big[5000];
    pattern(big, sizeof big, 3);
    buf_append(&b, big, sizeof big);
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    /* refilling up to the old size does not reallocate */
    buf_append(&b, big, sizeof big);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_memory_equal(b.data, big, sizeof big);
    buf_reset(&b);
    buf_puts(&b, "abc");
    assert_string_equal(b.data, "abc");
    assert_int_equal(b.len, 3);
    buf_deinit(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    buf_reserve(&b, 1000);
    assert_non_null(b.data);
    assert_true(b.cap >= 1001);
    assert_int_equal(b.len, 0);
    char *data = b.data;
    char chunk[1000];
    pattern(chunk, sizeof chunk, 9);
    buf_append(&b, chunk, sizeof chunk); /* fits: no reallocation */
    assert_ptr_equal(b.data, data);
    assert_memory_equal(b.data, chunk, sizeof chunk);
    assert_buf_invariants(&b);
    buf_reserve(&b, 0); /* no-op when the terminator already fits */
    assert_ptr_equal(b.data, data);
    buf_deinit(&b);
}

static void test_steal_takes_ownership(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    buf_puts(&b, "stolen bytes");
    size_t len = 999;
    char *d = buf_steal(&b, &len);
    assert_non_null(d);
    assert_int_equal(len, 12);
    assert_string_equal(d, "stolen bytes");
    /* b is empty and independent of d */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_puts(&b, "new");
    assert_true(b.data != d);
    assert_string_equal(d, "stolen bytes");
    assert_string_equal(b.data, "new");
    buf_deinit(&b);
    free(d); /* the caller owns it: ASan would report a double free / leak */
}

static void test_steal_empty_never_null(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    size_t len = 999;
    char *d = buf_steal(&b, &len);
    assert_non_null(d);
    assert_int_equal(len, 0);
    assert_string_equal(d, "");
    assert_null(b.data);
    free(d);

    /* after reset: empty string, memory handed over */
    buf_puts(&b, "xyz");
    buf_reset(&b);
    d = buf_steal(&b, NULL); /* len may be NULL */
    assert_non_null(d);
    assert_string_equal(d, "");
    assert_null(b.data);
    free(d);
}

static void test_steal_large(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b);
    for (int i = 0; i < 10000; i++) buf_printf(&b, "%05d,", i);
    size_t len;
    char *d = buf_steal(&b, &len);
    assert_int_equal(len, 60000);
    assert_int_equal(d[len], '\0');
    char want[16];
    for (int i = 0; i < 10000; i += 997) {
        snprintf(want, sizeof want, "%05d,", i);
        assert_memory_equal(d + 6 * i, want, 6);
    }
    free(d);
}

/* buf_fmt_i64 / buf_fmt_milli / buf_put_i64 against printf: the edges of
 * int64, every power of ten and its neighbours, and a pseudo-random sweep. */
static void check_i64(int64_t v)
{
    char want[32], got[32];
    snprintf(want, sizeof want, "%lld", (long long)v);
    char *e = buf_fmt_i64(got, v);
    assert_in_range(e - got, 1, 20);
    *e = '\0';
    assert_string_equal(got, want);

    /* milli: the exact reference from integers; printf's %.3f where the
     * double holds v exactly */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    snprintf(want, sizeof want, "%s%llu.%03llu", v < 0 ? "-" : "",
             (unsigned long long)(u / 1000), (unsigned long long)(u % 1000));
    e = buf_fmt_milli(got, v);
    assert_in_range(e - got, 5, 22);
    *e = '\0';
    assert_string_equal(got, want);
    if (v > -(1LL << 50) && v < (1LL << 50)) {
        snprintf(want, sizeof want, "%.3f", (double)v / 1000.0);
        assert_string_equal(got, want);
    }

    buf_t b;
    buf_init(&b);
    buf_puts(&b, "n=");
    buf_put_i64(&b, v);
    snprintf(want, sizeof want, "n=%lld", (long long)v);
    assert_string_equal(b.data, want);
    assert_buf_invariants(&b);
    buf_deinit(&b);
}

static void test_fmt_numbers(void **state)
{
    (void)state;
    check_i64(0);
    check_i64(INT64_MAX);
    check_i64(INT64_MIN);
    check_i64(INT64_MIN + 1);
    for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10) {
        for (int64_t d = -1; d <= 1; d++) {
            check_i64(p + d);
            check_i64(-(p + d));
        }
    }
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        check_i64((int64_t)x);
        check_i64((int64_t)(x >> (x % 64)));  /* all magnitudes */
        check_i64(-(int64_t)(x % 100000)); /* small negatives */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append_zero_bytes_gives_empty_string),
        cmocka_unit_test(test_append_many_sizes),
        cmocka_unit_test(test_append_single_sizes),
        cmocka_unit_test(test_puts_putc),
        cmocka_unit_test(test_putc_growth),
        cmocka_unit_test(test_printf_many_sizes),
        cmocka_unit_test(test_printf_boundary),
        cmocka_unit_test(test_printf_empty_format),
        cmocka_unit_test(test_reset_keeps_memory),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_steal_takes_ownership),
        cmocka_unit_test(test_steal_empty_never_null),
        cmocka_unit_test(test_steal_large),
        cmocka_unit_test(test_fmt_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
