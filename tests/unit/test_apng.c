/* test_apng — APNG assembly around libpng's output: chunk order, CRCs,
 * sequence numbers, acTL/fcTL fields, every frame decoded back through
 * libpng (img_png_decode_indexed) byte-exactly, fdAT splitting of large
 * frames, and the refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "apng.h"
#include "img_png.h"

static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint32_t rng_state = 0x2545F491u;

static uint32_t rng(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static uint32_t palette[256];

static void make_palette(void)
{
    for (int i = 0; i < 256; i++)
        palette[i] = (uint32_t)(i * 0x010203u) & 0xFFFFFFu;
}

static uint8_t *canvas(int w, int h, int ncolours, int blocky)
{
    uint8_t *c = malloc((size_t)w * (size_t)h);
    assert_non_null(c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            c[(size_t)y * w + x] =
                blocky ? (uint8_t)(((x / 7) + (y / 5) + (int)(rng() % 2)) % ncolours)
                       : (uint8_t)(rng() % (uint32_t)ncolours);
    return c;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

typedef struct chunk {
    char type[5];
    const uint8_t *body;
    uint32_t len;
} chunk_t;

/* Splits a PNG into chunks, checking every length and CRC. */
static int parse(const uint8_t *p, size_t len, chunk_t *out, int max)
{
    assert_true(len >= 8 && memcmp(p, PNG_SIG, 8) == 0);
    size_t pos = 8;
    int n = 0;
    while (pos < len) {
        assert_true(pos + 12 <= len);
        uint32_t l = rd32(p + pos);
        assert_true(l <= len - pos - 12);
        assert_true(n < max);
        memcpy(out[n].type, p + pos + 4, 4);
        out[n].type[4] = '\0';
        out[n].body = p + pos + 8;
        out[n].len = l;
        uint32_t crc = (uint32_t)crc32(0, p + pos + 4, 4 + l);
        assert_int_equal(crc, rd32(p + pos + 8 + l));
        n++;
        pos += 12 + l;
    }
    assert_int_equal(pos, len);
    return n;
}

/* Appends one chunk to buf at *pos. */
static void put_chunk(uint8_t *buf, size_t *pos, const char *type, const uint8_t *body,
                      uint32_t len)
{
    wr32(buf + *pos, len);
    memcpy(buf + *pos + 4, type, 4);
    if (len) memcpy(buf + *pos + 8, body, len);
    wr32(buf + *pos + 8 + len, (uint32_t)crc32(0, buf + *pos + 4, 4 + len));
    *pos += 12 + len;
}

/* Builds a plain PNG of frame k (k >= 1) from its fdAT chunks and decodes it
 * with libpng. gives: the pixels. */
static uint8_t *decode_frame(const chunk_t *c, int n, int k, int *w, int *h)
{
    size_t cap = 1024;
    for (int i = 0; i < n; i++)
        cap += c[i].len + 12;
    uint8_t *png = malloc(cap);
    assert_non_null(png);
    memcpy(png, PNG_SIG, 8);
    size_t pos = 8;
    int frame = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(c[i].type, "IHDR") || !strcmp(c[i].type, "PLTE"))
            put_chunk(png, &pos, c[i].type, c[i].body, c[i].len);
        if (!strcmp(c[i].type, "fcTL")) frame++;
        if (frame == k && !strcmp(c[i].type, "fdAT"))
            put_chunk(png, &pos, "IDAT", c[i].body + 4, c[i].len - 4);
    }
    put_chunk(png, &pos, "IEND", NULL, 0);
    uint8_t *px = NULL;
    uint32_t pal[256];
    int np = 0;
    assert_int_equal(img_png_decode_indexed(png, pos, &px, w, h, pal, &np), 0);
    free(png);
    return px;
}

/* Writes an animation of `frames` random frames and checks everything. */
static int round_trip(int w, int h, int ncolours, int frames, int fps, int blocky)
{
    make_palette();
    uint8_t **f = calloc((size_t)frames, sizeof *f);
    assert_non_null(f);
    for (int i = 0; i < frames; i++)
        f[i] = canvas(w, h, ncolours, blocky);
    int depth = img_png_bit_depth(ncolours);

    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(img_png_encode(f[0], w, h, palette, ncolours, 6, &png, &len), 0);
    apng_t *a = NULL;
    assert_int_equal(apng_begin(png, len, frames, fps, &a), 0);
    free(png);
    assert_int_equal(apng_frames(a), 1);
    for (int i = 1; i < frames; i++) {
        uint8_t *z = NULL;
        size_t zl = 0;
        assert_int_equal(img_png_deflate_frame(f[i], (size_t)w, w, h, depth, 6, &z, &zl), 0);
        assert_int_equal(apng_add_frame(a, z, zl), 0);
        free(z);
    }
    uint8_t one = 0;
    assert_int_equal(apng_add_frame(a, &one, 1), PX_EPROTO); /* one too many */
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(apng_finish(a, &out, &out_len), 0);
    apng_free(a);

    int max = 64 + frames * 64;
    chunk_t *c = calloc((size_t)max, sizeof *c);
    int n = parse(out, out_len, c, max);
    /* IHDR, PLTE, acTL, fcTL 0, IDAT..., then (fcTL, fdAT...) per frame, IEND */
    assert_string_equal(c[0].type, "IHDR");
    assert_int_equal(c[0].body[8], depth);
    assert_int_equal(c[0].body[9], 3);
    assert_string_equal(c[1].type, "PLTE");
    assert_string_equal(c[2].type, "acTL");
    assert_int_equal(rd32(c[2].body), (uint32_t)frames);
    assert_int_equal(rd32(c[2].body + 4), 0);
    assert_string_equal(c[3].type, "fcTL");
    assert_string_equal(c[n - 1].type, "IEND");
    uint32_t seq = 0;
    int fctls = 0, idats = 0, fdats = 0;
    for (int i = 3; i < n - 1; i++) {
        if (!strcmp(c[i].type, "fcTL")) {
            assert_int_equal(c[i].len, 26);
            assert_int_equal(rd32(c[i].body), seq++);
            assert_int_equal(rd32(c[i].body + 4), (uint32_t)w);
            assert_int_equal(rd32(c[i].body + 8), (uint32_t)h);
            assert_int_equal(rd32(c[i].body + 12), 0);
            assert_int_equal(rd32(c[i].body + 16), 0);
            assert_int_equal(c[i].body[20] << 8 | c[i].body[21], 1);
            assert_int_equal(c[i].body[22] << 8 | c[i].body[23], fps);
            assert_int_equal(c[i].body[24], 0);
            assert_int_equal(c[i].body[25], 0);
            fctls++;
        } else if (!strcmp(c[i].type, "fdAT")) {
            assert_true(fctls >= 2);
            assert_true(c[i].len > 4 && c[i].len - 4 <= APNG_MAX_CHUNK);
            assert_int_equal(rd32(c[i].body), seq++);
            fdats++;
        } else {
            assert_string_equal(c[i].type, "IDAT");
            assert_int_equal(fctls, 1);
            idats++;
        }
    }
    assert_int_equal(fctls, frames);
    assert_true(idats >= 1);

    /* frame 0: libpng reads the file as an ordinary PNG */
    uint8_t *px = NULL;
    uint32_t pal[256];
    int dw, dh, np;
    assert_int_equal(img_png_decode_indexed(out, out_len, &px, &dw, &dh, pal, &np), 0);
    assert_int_equal(dw, w);
    assert_int_equal(dh, h);
    assert_int_equal(np, ncolours);
    assert_memory_equal(px, f[0], (size_t)w * h);
    free(px);
    for (int k = 1; k < frames; k++) {
        px = decode_frame(c, n, k, &dw, &dh);
        assert_int_equal(dw, w);
        assert_int_equal(dh, h);
        assert_memory_equal(px, f[k], (size_t)w * h);
        free(px);
    }
    free(c);
    free(out);
    for (int i = 0; i < frames; i++)
        free(f[i]);
    free(f);
    return fdats;
}

static void test_small_4bit(void **state)
{
    (void)state;
    round_trip(17, 9, 16, 5, 12, 0);
}

static void test_8bit(void **state)
{
    (void)state;
    round_trip(64, 33, 200, 4, 60, 1);
}

static void test_two_frames_one_pixel(void **state)
{
    (void)state;
    round_trip(1, 1, 2, 2, 1, 0);
}

static void test_big_frame_split_over_fdats(void **state)
{
    (void)state;
    /* random 8-bit noise does not compress: > 1 MiB per frame */
    assert_true(round_trip(1200, 1000, 256, 2, 30, 0) >= 2);
}

static void test_refusals(void **state)
{
    (void)state;
    make_palette();
    uint8_t px[4] = {0, 1, 1, 0};
    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(img_png_encode(px, 2, 2, palette, 2, 6, &png, &len), 0);
    apng_t *a = NULL;
    assert_int_equal(apng_begin(png, len, 0, 10, &a), PX_EPROTO);
    assert_int_equal(apng_begin(png, len, 2, 0, &a), PX_EPROTO);
    assert_int_equal(apng_begin(png, len - 1, 2, 10, &a), PX_EPROTO); /* truncated */
    assert_int_equal(apng_begin(png + 1, len - 1, 2, 10, &a), PX_EPROTO);
    assert_null(a);
    uint8_t *bad = malloc(len);
    memcpy(bad, png, len);
    bad[12] = 'X'; /* the first chunk is no IHDR */
    assert_int_equal(apng_begin(bad, len, 2, 10, &a), PX_EPROTO);
    free(bad);

    /* fewer frames than declared */
    assert_int_equal(apng_begin(png, len, 3, 10, &a), 0);
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(apng_finish(a, &out, &out_len), PX_EPROTO);
    assert_null(out);
    apng_free(a);

    /* an animation is not a first frame */
    assert_int_equal(apng_begin(png, len, 1, 10, &a), 0);
    assert_int_equal(apng_finish(a, &out, &out_len), 0);
    apng_free(a);
    a = NULL;
    assert_int_equal(apng_begin(out, out_len, 2, 10, &a), PX_EPROTO);
    free(out);
    free(png);
    apng_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_4bit),
        cmocka_unit_test(test_8bit),
        cmocka_unit_test(test_two_frames_one_pixel),
        cmocka_unit_test(test_big_frame_split_over_fdats),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
