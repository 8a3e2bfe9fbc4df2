/* test_wsframe — the frame-boundary tracker. Each stream is built from
 * frames whose boundaries are known, then fed whole, split at every offset
 * and one byte at a time: the tracker must be idle exactly at the offsets
 * that end a frame outside a fragmented message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wsframe.h"

#define MAX_STREAM 4000000

typedef struct stream {
    uint8_t *b;
    size_t n;
    bool *idle_at; /* idle_at[k]: idle after the first k bytes */
    bool in_msg;   /* what the builder thinks, to fill idle_at */
} stream_t;

static void s_init(stream_t *s)
{
    s->b = malloc(MAX_STREAM);
    s->idle_at = calloc(MAX_STREAM + 1, sizeof *s->idle_at);
    assert_non_null(s->b);
    assert_non_null(s->idle_at);
    s->n = 0;
    s->in_msg = false;
    s->idle_at[0] = true;
}

static void s_free(stream_t *s)
{
    free(s->b);
    free(s->idle_at);
}

static void s_byte(stream_t *s, uint8_t v)
{
    assert_true(s->n < MAX_STREAM);
    s->b[s->n++] = v;
    s->idle_at[s->n] = false;
}

/* Appends one frame; payload bytes are `fill` (or a counter when fill < 0),
 * so they also look like headers. len_form: 0 shortest, 16 or 64 forces the
 * extended length of that width. */
static void s_frame(stream_t *s, bool fin, unsigned opcode, bool masked, uint64_t len, int len_form,
                    int fill)
{
    s_byte(s, (uint8_t)((fin ? 0x80 : 0) | opcode));
    uint8_t m = masked ? 0x80 : 0;
    if (len_form == 64 || (len_form == 0 && len > 0xffff)) {
        s_byte(s, m | 127);
        for (int i = 7; i >= 0; i--) s_byte(s, (uint8_t)(len >> (8 * i)));
    } else if (len_form == 16 || (len_form == 0 && len >= 126)) {
        s_byte(s, m | 126);
        s_byte(s, (uint8_t)(len >> 8));
        s_byte(s, (uint8_t)len);
    } else {
        s_byte(s, m | (uint8_t)len);
    }
    if (masked) {
        static const uint8_t key[4] = {0x81, 0xfe, 0x7f, 0x00}; /* header-like bytes */
        for (int i = 0; i < 4; i++) s_byte(s, key[i]);
    }
    for (uint64_t i = 0; i < len; i++) s_byte(s, fill < 0 ? (uint8_t)(0x80 + i) : (uint8_t)fill);
    if (opcode < 8 && opcode != 0 && !fin) s->in_msg = true;
    else if (opcode == 0 && fin) s->in_msg = false;
    s->idle_at[s->n] = !s->in_msg;
}

/* the whole state, field by field (padding is not compared) */
static bool same(const wsframe_t *a, const wsframe_t *b)
{
    return a->_left == b->_left && a->_part == b->_part && a->_n == b->_n &&
           a->_masked == b->_masked && a->_in_msg == b->_in_msg;
}

/* feeds s whole, split at every offset and byte by byte, checking idle */
static void check_stream(const stream_t *s)
{
    wsframe_t t;
    wsframe_init(&t);
    wsframe_feed(&t, s->b, s->n);
    assert_int_equal(wsframe_idle(&t), s->idle_at[s->n]);

    wsframe_init(&t);
    assert_true(wsframe_idle(&t));
    for (size_t k = 0; k < s->n; k++) {
        wsframe_feed(&t, s->b + k, 1);
        if (wsframe_idle(&t) != s->idle_at[k + 1])
            fail_msg("byte by byte: idle %d after %zu bytes, expected %d", wsframe_idle(&t), k + 1,
                     s->idle_at[k + 1]);
    }

    /* every split offset (stride keeps the long streams quick) */
    size_t stride = s->n > 4096 ? 97 : 1;
    for (size_t k = 0; k <= s->n; k += stride) {
        wsframe_t u;
        memset(&u, 0xa5, sizeof u); /* init must not depend on prior contents */
        wsframe_init(&u);
        wsframe_feed(&u, s->b, k);
        if (wsframe_idle(&u) != s->idle_at[k])
            fail_msg("split: idle %d after %zu bytes, expected %d", wsframe_idle(&u), k,
                     s->idle_at[k]);
        wsframe_feed(&u, k < s->n ? s->b + k : NULL, s->n - k);
        assert_int_equal(wsframe_idle(&u), s->idle_at[s->n]);
        assert_true(same(&u, &t));
    }
}

static void test_zero_is_start(void **state)
{
    (void)state;
    wsframe_t t;
    memset(&t, 0, sizeof t);
    assert_true(wsframe_idle(&t));
    wsframe_feed(&t, NULL, 0);
    assert_true(wsframe_idle(&t));
}

static void test_single_frames(void **state)
{
    (void)state;
    stream_t s;
    s_init(&s);
    s_frame(&s, true, 1, true, 5, 0, 'h');    /* masked text, 7-bit length */
    s_frame(&s, true, 1, true, 0, 0, 0);      /* empty text */
    s_frame(&s, true, 9, true, 0, 0, 0);      /* empty ping */
    s_frame(&s, true, 9, true, 125, 0, -1);   /* largest control payload */
    s_frame(&s, true, 10, true, 3, 0, 0x88);  /* pong */
    s_frame(&s, true, 1, true, 125, 0, -1);   /* longest 7-bit length */
    s_frame(&s, true, 1, true, 126, 0, -1);   /* shortest 16-bit length */
    s_frame(&s, true, 2, true, 300, 0, 0x81); /* binary, payload of header bytes */
    s_frame(&s, true, 1, true, 65535, 0, -1); /* longest 16-bit length */
    s_frame(&s, true, 1, true, 65536, 0, -1); /* shortest 64-bit length */
    s_frame(&s, true, 1, true, 3, 64, 'x');   /* non-minimal 64-bit length */
    s_frame(&s, true, 1, true, 0, 16, 'x');   /* non-minimal 16-bit length of 0 */
    s_frame(&s, true, 8, true, 2, 0, 0x03);   /* close */
    check_stream(&s);
    s_free(&s);
}

static void test_unmasked(void **state)
{
    (void)state;
    stream_t s;
    s_init(&s);
    s_frame(&s, true, 1, false, 7, 0, 'a');
    s_frame(&s, true, 9, false, 0, 0, 0);
    s_frame(&s, true, 1, false, 200, 0, -1);
    s_frame(&s, true, 2, false, 70000, 0, 0xfe);
    s_frame(&s, true, 1, true, 4, 0, 'm'); /* masked and unmasked mixed */
    check_stream(&s);
    s_free(&s);
}

static void test_fragmented(void **state)
{
    (void)state;
    static const struct {
        bool fin;
        unsigned opcode;
        uint64_t len;
        bool idle; /* expected after the frame, written out rather than derived */
    } frames[] = {
        {false, 1, 10, false},  /* opens a text message */
        {true, 9, 4, false},    /* ping in between: still open */
        {false, 0, 0, false},   /* empty continuation, not final */
        {true, 10, 0, false},   /* pong in between */
        {false, 0, 300, false}, /* continuation */
        {true, 0, 2, true},     /* final continuation: closed */
        {true, 1, 1, true},     /* an ordinary message after it */
        {false, 2, 0, false},   /* empty binary, not final */
        {true, 8, 2, false},    /* close in between */
        {true, 0, 0, true},     /* empty final continuation */
        {false, 1, 5, false},   /* left open at the end */
    };
    stream_t s;
    s_init(&s);
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        s_frame(&s, frames[i].fin, frames[i].opcode, true, frames[i].len, 0, 'a');
        assert_int_equal(s.idle_at[s.n], frames[i].idle);
    }
    check_stream(&s);
    s_free(&s);
}

static unsigned rnd(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

/* pseudo-random frame sequences (fixed seed) */
static void test_random_streams(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    for (int round = 0; round < 40; round++) {
        stream_t s;
        s_init(&s);
        bool open = false;
        for (int f = 0; f < 30; f++) {
            unsigned r = rnd(&seed);
            bool control = r % 4 == 0;
            unsigned opcode;
            bool fin;
            if (control) {
                opcode = 8 + rnd(&seed) % 3;
                fin = true;
            } else if (open) {
                opcode = 0;
                fin = rnd(&seed) % 3 == 0;
            } else {
                opcode = 1 + rnd(&seed) % 2;
                fin = rnd(&seed) % 2 == 0;
            }
            if (!control) open = !fin;
            uint64_t len;
            int pick = rnd(&seed) % 16;
            if (control) len = rnd(&seed) % 126;
            else if (pick < 10) len = rnd(&seed) % 130;
            else if (pick < 15) len = 126 + rnd(&seed) % 2000;
            else len = 65536 + rnd(&seed) % 100;
            int form = rnd(&seed) % 10 == 0 ? 64 : 0;
            bool masked = rnd(&seed) % 8 != 0;
            int fill = (int)(rnd(&seed) % 300) - 44;
            s_frame(&s, fin, opcode, masked, len, form, fill);
        }
        check_stream(&s);
        s_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_is_start),
        cmocka_unit_test(test_single_frames),
        cmocka_unit_test(test_unmasked),
        cmocka_unit_test(test_fragmented),
        cmocka_unit_test(test_random_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
