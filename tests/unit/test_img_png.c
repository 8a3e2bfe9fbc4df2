/* test_img_png — round trips through img_png_encode / img_png_decode_indexed,
 * bit-depth choice read back from the IHDR bytes, refusals, and the real
 * r/place 2017 final image (../shared/data/rplace2017/final-2017.png relative
 * to the repo root, which is the tests' working directory). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <png.h>
#include <zlib.h>

#include "img_png.h"

#define RPLACE_2017 "../shared/data/rplace2017/final-2017.png"

static const uint32_t PALETTE16[16] = {
    0xFFFFFF, 0xE4E4E4, 0x888888, 0x222222, 0xFFA7D1, 0xE50000, 0xE59500, 0xA06A42,
    0xE5D900, 0x94E044, 0x02BE01, 0x00D3DD, 0x0083C7, 0x0000EA, 0xCF6EE4, 0x820080,
};

static uint32_t rng_state = 0x9E3779B9u;

static uint32_t rng(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static uint8_t *random_canvas(int w, int h, int ncolours)
{
    size_t n = (size_t)w * (size_t)h;
    uint8_t *c = malloc(n);
    assert_non_null(c);
    for (size_t i = 0; i < n; i++)
        c[i] = (uint8_t)(rng() % (uint32_t)ncolours);
    return c;
}

static void make_palette(uint32_t *pal, int n)
{
    for (int i = 0; i < n; i++)
        pal[i] = ((uint32_t)i * 0x010203u ^ 0x5A0000u) & 0xFFFFFFu;
}

/* IHDR is the first chunk: 8 signature + 4 length + 4 type, then
 * width(4) height(4) depth(1) colour type(1). */
static int ihdr_depth(const uint8_t *png)
{
    return png[24];
}

static int ihdr_colour_type(const uint8_t *png)
{
    return png[25];
}

/* Encodes, checks the header bytes, decodes, compares indices and palette. */
static void round_trip(const uint8_t *idx, int w, int h, const uint32_t *pal, int npal, int level)
{
    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(img_png_encode(idx, w, h, pal, npal, level, &png, &len), 0);
    assert_non_null(png);
    assert_true(len > 8);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    assert_int_equal(ihdr_depth(png), npal <= 16 ? 4 : 8);
    assert_int_equal(ihdr_colour_type(png), 3);

    uint8_t *back = NULL;
    int bw = 0, bh = 0, bn = 0;
    uint32_t bpal[256];
    assert_int_equal(img_png_decode_indexed(png, len, &back, &bw, &bh, bpal, &bn), 0);
    assert_int_equal(bw, w);
    assert_int_equal(bh, h);
    assert_int_equal(bn, npal);
    assert_memory_equal(bpal, pal, (size_t)npal * sizeof *pal);
    assert_memory_equal(back, idx, (size_t)w * (size_t)h);
    free(back);
    free(png);
}

static void test_one_pixel(void **state)
{
    (void)state;
    uint8_t px = 5;
    round_trip(&px, 1, 1, PALETTE16, 16, 6);
    px = 0;
    round_trip(&px, 1, 1, PALETTE16, 1, 6);
}

static void test_odd_sizes(void **state)
{
    (void)state;
    static const int dims[][2] = {{3, 5}, {5, 3}, {1, 7}, {7, 1}, {31, 2}, {2, 31}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        uint8_t *c = random_canvas(dims[i][0], dims[i][1], 16);
        for (int level = 0; level <= 9; level += 3)
            round_trip(c, dims[i][0], dims[i][1], PALETTE16, 16, level);
        free(c);
    }
}

static void test_random_500(void **state)
{
    (void)state;
    uint32_t pal[256];
    make_palette(pal, 256);
    static const int counts[] = {2, 3, 15, 16, 17, 200, 256};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        uint8_t *c = random_canvas(500, 500, counts[i]);
        round_trip(c, 500, 500, pal, counts[i], 1);
        free(c);
    }
    /* odd width at both depths */
    uint8_t *c = random_canvas(499, 501, 16);
    round_trip(c, 499, 501, PALETTE16, 16, 6);
    free(c);
    c = random_canvas(499, 501, 17);
    round_trip(c, 499, 501, pal, 17, 6);
    free(c);
}

static void test_index_outside_palette(void **state)
{
    (void)state;
    uint32_t pal[256];
    make_palette(pal, 256);
    uint8_t *png = (uint8_t *)"sentinel";
    size_t len = 99;

    uint8_t *c = random_canvas(40, 30, 16);
    c[40 * 30 - 1] = 16; /* last pixel, one past a 16-colour palette */
    assert_int_equal(img_png_encode(c, 40, 30, pal, 16, 6, &png, &len), PX_EPROTO);
    assert_null(png);
    assert_int_equal(len, 0);
    c[40 * 30 - 1] = 0;
    c[0] = 17; /* first pixel, 17-colour palette at depth 8 */
    assert_int_equal(img_png_encode(c, 40, 30, pal, 17, 6, &png, &len), PX_EPROTO);
    c[0] = 3;
    assert_int_equal(img_png_encode(c, 40, 30, pal, 3, 6, &png, &len), PX_EPROTO);
    free(c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t px[4] = {0};
    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(img_png_encode(px, 0, 1, PALETTE16, 16, 6, &png, &len), PX_EPROTO);
    assert_int_equal(img_png_encode(px, 1, 0, PALETTE16, 16, 6, &png, &len), PX_EPROTO);
    assert_int_equal(img_png_encode(px, 2, 2, PALETTE16, 0, 6, &png, &len), PX_EPROTO);
    assert_int_equal(img_png_encode(px, 2, 2, PALETTE16, 257, 6, &png, &len), PX_EPROTO);
    assert_int_equal(img_png_encode(px, 2, 2, PALETTE16, 16, 10, &png, &len), PX_EPROTO);
    assert_int_equal(img_png_encode(px, 2, 2, PALETTE16, 16, -1, &png, &len), PX_EPROTO);
}

static void expect_decode_refused(const uint8_t *data, size_t len)
{
    uint8_t *idx = (uint8_t *)"sentinel";
    int w, h, n;
    uint32_t pal[256];
    assert_int_equal(img_png_decode_indexed(data, len, &idx, &w, &h, pal, &n), PX_EPROTO);
    assert_null(idx);
}

static void test_corrupt_refused(void **state)
{
    (void)state;
    uint8_t *c = random_canvas(64, 64, 16);
    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(img_png_encode(c, 64, 64, PALETTE16, 16, 6, &png, &len), 0);

    expect_decode_refused(png, 0);
    expect_decode_refused((const uint8_t *)"GIF89a not a png at all", 23);

    /* every truncation, including one that drops only IEND's CRC */
    for (size_t cut = 0; cut < len; cut++)
        expect_decode_refused(png, cut);

    /* a flipped bit anywhere in the header, PLTE or image data */
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    for (size_t at = 0; at < len - 12; at++) { /* IEND (last 12 bytes) left alone */
        memcpy(bad, png, len);
        bad[at] ^= 0x10;
        expect_decode_refused(bad, len);
    }
    free(bad);
    free(png);
    free(c);
}

/* A PNG whose indices point past its own PLTE: libpng only warns, we refuse. */
static void test_index_past_plte_refused(void **state)
{
    (void)state;
    uint8_t c[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(img_png_encode(c, 8, 1, PALETTE16, 16, 6, &png, &len), 0);
    /* rewrite PLTE (at offset 33: length 48) to 4 entries and fix its CRC */
    assert_memory_equal(png + 37, "PLTE", 4);
    uint8_t *short_plte = malloc(len);
    assert_non_null(short_plte);
    size_t o = 0;
    memcpy(short_plte, png, 33);
    o = 33;
    const uint8_t hdr[8] = {0, 0, 0, 12, 'P', 'L', 'T', 'E'};
    memcpy(short_plte + o, hdr, 8);
    memcpy(short_plte + o + 8, png + 41, 12);
    uint32_t crc = (uint32_t)crc32(0, short_plte + o + 4, 4 + 12);
    uint8_t crcb[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                       (uint8_t)crc};
    memcpy(short_plte + o + 20, crcb, 4);
    o += 24;
    size_t rest = 33 + 12 + 48;
    memcpy(short_plte + o, png + rest, len - rest);
    o += len - rest;
    expect_decode_refused(short_plte, o);
    free(short_plte);
    free(png);
}

static void test_rgb_refused(void **state)
{
    (void)state;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = 4;
    img.height = 4;
    img.format = PNG_FORMAT_RGB;
    uint8_t rgb[4 * 4 * 3];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 7);
    png_alloc_size_t len = 0;
    assert_true(png_image_write_to_memory(&img, NULL, &len, 0, rgb, 0, NULL));
    uint8_t *mem = malloc(len);
    assert_non_null(mem);
    assert_true(png_image_write_to_memory(&img, mem, &len, 0, rgb, 0, NULL));
    expect_decode_refused(mem, len);
    free(mem);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            data = realloc(data, cap);
            assert_non_null(data);
        }
        size_t r = fread(data + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    *len = n;
    return data;
}

static void test_rplace_2017(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *orig = read_file(RPLACE_2017, &len);
    if (!orig) {
        print_message("SKIP: %s not found (run from the repo root with ../shared present)\n",
                      RPLACE_2017);
        skip();
    }
    /* the file is a 1000x1000 4-bit indexed PNG */
    uint8_t *idx = NULL;
    int w = 0, h = 0, n = 0;
    uint32_t pal[256];
    assert_int_equal(img_png_decode_indexed(orig, len, &idx, &w, &h, pal, &n), 0);
    assert_int_equal(w, 1000);
    assert_int_equal(h, 1000);
    assert_int_equal(n, 16);
    assert_int_equal(ihdr_depth(orig), 4);

    for (int level = 1; level <= 9; level += 5) {
        uint8_t *png = NULL;
        size_t plen = 0;
        assert_int_equal(img_png_encode(idx, w, h, pal, n, level, &png, &plen), 0);
        assert_int_equal(ihdr_depth(png), 4);
        uint8_t *back = NULL;
        int bw = 0, bh = 0, bn = 0;
        uint32_t bpal[256];
        assert_int_equal(img_png_decode_indexed(png, plen, &back, &bw, &bh, bpal, &bn), 0);
        assert_int_equal(bw, w);
        assert_int_equal(bh, h);
        assert_int_equal(bn, n);
        assert_memory_equal(bpal, pal, (size_t)n * sizeof *pal);
        assert_memory_equal(back, idx, (size_t)w * (size_t)h);
        free(back);
        free(png);
    }
    free(idx);
    free(orig);
}

/* ---- img_png_deflate_frame: wrap its output in PNG chunks and decode ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t put_chunk(uint8_t *dst, const char *type, const uint8_t *data, size_t n)
{
    put_u32(dst, (uint32_t)n);
    memcpy(dst + 4, type, 4);
    if (n) memcpy(dst + 8, data, n);
    put_u32(dst + 8 + n, (uint32_t)crc32(0, dst + 4, (uInt)(4 + n)));
    return 12 + n;
}

static void frame_round_trip(const uint8_t *canvas, size_t stride, int x0, int y0, int w, int h,
                             const uint32_t *pal, int npal)
{
    int depth = img_png_bit_depth(npal);
    const uint8_t *origin = canvas + (size_t)y0 * stride + (size_t)x0;
    uint8_t *z = NULL;
    size_t zlen = 0;
    assert_int_equal(img_png_deflate_frame(origin, stride, w, h, depth, 6, &z, &zlen), 0);

    uint8_t *png = malloc(zlen + 1024);
    assert_non_null(png);
    size_t o = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    o = 8;
    uint8_t ihdr[13];
    put_u32(ihdr, (uint32_t)w);
    put_u32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = 3;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    o += put_chunk(png + o, "IHDR", ihdr, 13);
    uint8_t plte[768];
    for (int i = 0; i < npal; i++) {
        plte[3 * i] = (uint8_t)(pal[i] >> 16);
        plte[3 * i + 1] = (uint8_t)(pal[i] >> 8);
        plte[3 * i + 2] = (uint8_t)pal[i];
    }
    o += put_chunk(png + o, "PLTE", plte, (size_t)npal * 3);
    o += put_chunk(png + o, "IDAT", z, zlen);
    o += put_chunk(png + o, "IEND", NULL, 0);

    uint8_t *back = NULL;
    int bw, bh, bn;
    uint32_t bpal[256];
    assert_int_equal(img_png_decode_indexed(png, o, &back, &bw, &bh, bpal, &bn), 0);
    assert_int_equal(bw, w);
    assert_int_equal(bh, h);
    for (int y = 0; y < h; y++)
        assert_memory_equal(back + (size_t)y * (size_t)w, origin + (size_t)y * stride, (size_t)w);
    free(back);
    free(png);
    free(z);
}

static void test_deflate_frame(void **state)
{
    (void)state;
    uint32_t pal[256];
    make_palette(pal, 256);
    uint8_t *c16 = random_canvas(101, 77, 16);
    frame_round_trip(c16, 101, 0, 0, 101, 77, pal, 16); /* whole canvas */
    frame_round_trip(c16, 101, 3, 5, 33, 20, pal, 16);  /* odd sub-rectangle */
    frame_round_trip(c16, 101, 100, 76, 1, 1, pal, 16); /* last pixel */
    uint8_t *c256 = random_canvas(101, 77, 256);
    frame_round_trip(c256, 101, 0, 0, 101, 77, pal, 256);
    frame_round_trip(c256, 101, 50, 1, 51, 76, pal, 256);

    uint8_t *z = NULL;
    size_t zlen = 0;
    assert_int_equal(img_png_deflate_frame(c256, 101, 101, 77, 4, 6, &z, &zlen), PX_EPROTO);
    assert_null(z);
    assert_int_equal(img_png_deflate_frame(c16, 100, 101, 77, 4, 6, &z, &zlen), PX_EPROTO);
    assert_int_equal(img_png_deflate_frame(c16, 101, 101, 77, 2, 6, &z, &zlen), PX_EPROTO);
    free(c16);
    free(c256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_pixel),
        cmocka_unit_test(test_odd_sizes),
        cmocka_unit_test(test_random_500),
        cmocka_unit_test(test_index_outside_palette),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_corrupt_refused),
        cmocka_unit_test(test_index_past_plte_refused),
        cmocka_unit_test(test_rgb_refused),
        cmocka_unit_test(test_rplace_2017),
        cmocka_unit_test(test_deflate_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
