/* test_timelapse — RFC 3339 parsing, request validation (every refusal with
 * its code and message), params encode/decode, frame times and frame
 * rendering (region, scale). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "timelapse.h"

static const timelapse_limits_t LIM = {.canvas_width = 500,
                                       .canvas_height = 400,
                                       .max_frames = 600,
                                       .max_pixels = 250000000,
                                       .now_ms = 1700000000000LL};

static void test_time_parse(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_true(timelapse_time_parse("1970-01-01T00:00:00Z", &ms));
    assert_int_equal(ms, 0);
    assert_true(timelapse_time_parse("2023-11-14T22:13:20Z", &ms));
    assert_int_equal(ms, 1700000000000LL);
    assert_true(timelapse_time_parse("2023-11-14T22:13:20.5Z", &ms));
    assert_int_equal(ms, 1700000000500LL);
    assert_true(timelapse_time_parse("2023-11-14T22:13:20.123456789z", &ms));
    assert_int_equal(ms, 1700000000123LL);
    assert_true(timelapse_time_parse("2023-11-15T00:13:20+02:00", &ms));
    assert_int_equal(ms, 1700000000000LL);
    assert_true(timelapse_time_parse("2023-11-14t17:13:20-05:00", &ms));
    assert_int_equal(ms, 1700000000000LL);
    assert_true(timelapse_time_parse("2023-11-14 22:13:20Z", &ms));
    assert_int_equal(ms, 1700000000000LL);
    assert_true(timelapse_time_parse("2024-02-29T00:00:00Z", &ms)); /* leap year */
    assert_true(timelapse_time_parse("2000-02-29T00:00:00Z", &ms));
    assert_true(timelapse_time_parse("2016-12-31T23:59:60Z", &ms)); /* leap second */
    assert_int_equal(ms, 1483228799000LL);
    const char *bad[] = {"",
                         "2023-11-14",
                         "2023-11-14T22:13:20",
                         "2023-11-14T22:13:20ZZ",
                         "2023-11-14T22:13:20+0200",
                         "2023-11-14T22:13:20.Z",
                         "2023-13-01T00:00:00Z",
                         "2023-02-29T00:00:00Z",
                         "1900-02-29T00:00:00Z",
                         "2023-04-31T00:00:00Z",
                         "2023-11-14T24:00:00Z",
                         "2023-11-14T22:60:00Z",
                         "1969-12-31T23:59:59Z",
                         "2023-11-14X22:13:20Z",
                         "２023-11-14T22:13:20Z",
                         "2023-11-14T22:13:20+24:00",
                         "+2023-11-14T22:13:20Z",
                         "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (timelapse_time_parse(bad[i], &ms)) fail_msg("accepted \"%s\"", bad[i]);
    }
}

static int parse(const char *body, timelapse_params_t *p, char *msg)
{
    return timelapse_parse_request(body, strlen(body), &LIM, p, msg, 256);
}

static void test_request_ok(void **state)
{
    (void)state;
    timelapse_params_t p;
    char msg[256] = "";
    assert_int_equal(parse("{\"from\":\"2023-11-14T21:13:20Z\",\"to\":\"2023-11-14T22:13:20Z\","
                           "\"frames\":600,\"fps\":60}",
                           &p, msg),
                     0);
    assert_int_equal(p.from_ms, 1700000000000LL - 3600000);
    assert_int_equal(p.to_ms, 1700000000000LL);
    assert_int_equal(p.frames, 600);
    assert_int_equal(p.fps, 60);
    assert_int_equal(p.x, 0);
    assert_int_equal(p.y, 0);
    assert_int_equal(p.width, 500);
    assert_int_equal(p.height, 400);
    assert_int_equal(p.scale, 1);
    assert_int_equal(parse("{\"scale\":8,\"region\":{\"height\":400,\"width\":1,\"y\":0,\"x\":499},"
                           "\"fps\":1,\"frames\":2,\"to\":\"2023-11-14T22:13:21Z\","
                           "\"from\":\"2023-11-14T22:13:20.999Z\"}",
                           &p, msg),
                     0);
    assert_int_equal(p.x, 499);
    assert_int_equal(p.width, 1);
    assert_int_equal(p.height, 400);
    assert_int_equal(p.scale, 8);
    assert_int_equal(timelapse_frame_width(&p), 8);
    assert_int_equal(timelapse_frame_height(&p), 3200);
    assert_int_equal(timelapse_output_pixels(&p), 2LL * 1 * 400 * 64);
}

static void test_request_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int code;
        const char *word;
    } cases[] = {
        {"", PX_EPROTO, "invalid JSON"},
        {"{", PX_EPROTO, "invalid JSON"},
        {"[]", PX_EPROTO, "object"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"fps\":2}",
         PX_EPROTO, "invalid JSON"}, /* duplicate */
        {"{\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":1}", PX_EPROTO, "required"},
        {"{\"from\":1,\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":1}", PX_EPROTO,
         "required"},
        {"{\"from\":\"x\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":1}", PX_EPROTO,
         "\"from\" is not an RFC 3339"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14\",\"frames\":2,\"fps\":1}",
         PX_EPROTO, "\"to\" is not an RFC 3339"},
        {"{\"from\":\"2023-11-14T22:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1}",
         PX_EPROTO, "before"},
        {"{\"from\":\"2023-11-14T23:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1}",
         PX_EPROTO, "before"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"fps\":1}", PX_EPROTO,
         "required"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":1,\"fps\":"
         "1}",
         PX_EPROTO, "\"frames\""},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":601,"
         "\"fps\":1}",
         PX_EPROTO, "2..600"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2.0,"
         "\"fps\":1}",
         PX_EPROTO, "\"frames\""},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":\"2\","
         "\"fps\":1}",
         PX_EPROTO, "\"frames\""},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "0}",
         PX_EPROTO, "\"fps\""},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,"
         "\"fps\":61}",
         PX_EPROTO, "1..60"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"scale\":0}",
         PX_EPROTO, "\"scale\""},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"scale\":9}",
         PX_EPROTO, "1..8"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"speed\":9}",
         PX_EPROTO, "unknown member \"speed\""},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":0,\"y\":0,\"width\":10}}",
         PX_EPROTO, "exactly x, y, width, height"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":0,\"y\":0,\"width\":10,\"height\":10,\"z\":1}}",
         PX_EPROTO, "exactly x, y, width, height"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":[0,0,1,1]}",
         PX_EPROTO, "region"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":491,\"y\":0,\"width\":10,\"height\":10}}",
         PX_EBOUNDS, "inside the 500x400 canvas"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":0,\"y\":391,\"width\":10,\"height\":10}}",
         PX_EBOUNDS, "inside"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":-1,\"y\":0,\"width\":10,\"height\":10}}",
         PX_EBOUNDS, "inside"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":0,\"y\":0,\"width\":0,\"height\":10}}",
         PX_EBOUNDS, "non-empty"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":0,\"y\":0,\"width\":2147483647,\"height\":10}}",
         PX_EBOUNDS, "inside"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":600,"
         "\"fps\":1,\"scale\":3}",
         PX_ETOOBIG, "output too large"}, /* 600 * 500 * 400 * 9 = 1.08e9 */
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\",\"frames\":2,\"fps\":"
         "1,"
         "\"region\":{\"x\":0,\"y\":0,\"width\":1,\"height\":10},\"scale\":8}",
         0, NULL},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T23:00:00Z\",\"frames\":2,\"fps\":"
         "1}",
         PX_EPROTO, "future"},
        {"{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:17:00Z\",\"frames\":2,\"fps\":"
         "1}",
         0, NULL}, /* within the slack */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        timelapse_params_t p;
        char msg[256] = "";
        int rc = parse(cases[i].body, &p, msg);
        if (rc != cases[i].code)
            fail_msg("case %zu: %s -> %d (%s), want %d", i, cases[i].body, rc, msg, cases[i].code);
        if (cases[i].word && !strstr(msg, cases[i].word))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, msg, cases[i].word);
    }
}

static void test_max_side(void **state)
{
    (void)state;
    timelapse_limits_t lim = LIM;
    lim.canvas_width = lim.canvas_height = 4096;
    lim.max_pixels = 2000000000;
    const char *body = "{\"from\":\"2023-11-14T21:00:00Z\",\"to\":\"2023-11-14T22:00:00Z\","
                       "\"frames\":2,\"fps\":1,\"region\":{\"x\":0,\"y\":0,\"width\":2049,"
                       "\"height\":1},\"scale\":8}";
    timelapse_params_t p;
    char msg[256];
    assert_int_equal(timelapse_parse_request(body, strlen(body), &lim, &p, msg, sizeof msg),
                     PX_ETOOBIG);
    assert_non_null(strstr(msg, "16384"));
}

static void test_params_round_trip(void **state)
{
    (void)state;
    timelapse_params_t p = {.from_ms = 1699990000123LL,
                            .to_ms = 1700000000000LL,
                            .frames = 17,
                            .fps = 24,
                            .x = 10,
                            .y = 20,
                            .width = 30,
                            .height = 40,
                            .scale = 2},
                       q;
    char *s = timelapse_params_encode(&p);
    assert_non_null(strstr(s, "\"from\":\"2023-11-14T19:26:40.123Z\""));
    char msg[256];
    assert_int_equal(timelapse_params_decode(s, strlen(s), &LIM, &q, msg, sizeof msg), 0);
    assert_int_equal(q.from_ms, p.from_ms);
    assert_int_equal(q.to_ms, p.to_ms);
    assert_int_equal(q.frames, p.frames);
    assert_int_equal(q.fps, p.fps);
    assert_int_equal(q.x, p.x);
    assert_int_equal(q.y, p.y);
    assert_int_equal(q.width, p.width);
    assert_int_equal(q.height, p.height);
    assert_int_equal(q.scale, p.scale);
    /* stored params are validated again (the canvas may have shrunk) */
    timelapse_limits_t small = LIM;
    small.canvas_width = 35;
    assert_int_equal(timelapse_params_decode(s, strlen(s), &small, &q, msg, sizeof msg),
                     PX_EBOUNDS);
    free(s);
    assert_int_equal(timelapse_params_decode("{}", 2, &LIM, &q, msg, sizeof msg), PX_EPROTO);
}

static void test_frame_times(void **state)
{
    (void)state;
    timelapse_params_t p = {.from_ms = 1000, .to_ms = 2000, .frames = 3};
    assert_int_equal(timelapse_frame_time(&p, 0), 1000);
    assert_int_equal(timelapse_frame_time(&p, 1), 1500);
    assert_int_equal(timelapse_frame_time(&p, 2), 2000);
    p.frames = 600;
    p.to_ms = 1000 + 86400000LL * 365 * 30; /* 30 years: no overflow */
    int64_t prev = p.from_ms;
    for (int i = 1; i < p.frames; i++) {
        int64_t t = timelapse_frame_time(&p, i);
        assert_true(t > prev);
        prev = t;
    }
    assert_int_equal(prev, p.to_ms);
}

static void test_render(void **state)
{
    (void)state;
    enum { CW = 7, CH = 5 };
    uint8_t canvas[CW * CH];
    for (int i = 0; i < CW * CH; i++)
        canvas[i] = (uint8_t)i;
    timelapse_params_t p = {.x = 2, .y = 1, .width = 3, .height = 2, .scale = 1};
    uint8_t out[3 * 2 * 9];
    timelapse_frame_render(canvas, CW, &p, out);
    const uint8_t want1[] = {9, 10, 11, 16, 17, 18};
    assert_memory_equal(out, want1, sizeof want1);
    p.scale = 3;
    memset(out, 0xee, sizeof out);
    timelapse_frame_render(canvas, CW, &p, out);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 9; x++)
            assert_int_equal(out[y * 9 + x], canvas[(1 + y / 3) * CW + 2 + x / 3]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_request_ok),
        cmocka_unit_test(test_request_refused),
        cmocka_unit_test(test_max_side),
        cmocka_unit_test(test_params_round_trip),
        cmocka_unit_test(test_frame_times),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
