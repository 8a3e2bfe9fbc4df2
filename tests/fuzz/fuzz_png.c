/* F5b: PNG and APNG assembly, and the PNG decoder the worker runs on stored
 * snapshots. The first byte picks the mode:
 *   even: the rest are a small frame size, a palette length and pixel
 *         indices: encode -> decode must give back the same pixels and
 *         palette; then an APNG of two frames (the second the first with
 *         the rest of the input applied as events) must come out with the
 *         first frame decoding as that PNG, and libpng reading the file;
 *   odd:  the rest is a PNG file of unknown origin: the decoder refuses it
 *         or returns pixels all inside its palette. */
#include "apng.h"
#include "fuzz.h"
#include "img_png.h"

static void decode_untrusted(const uint8_t *d, size_t n)
{
    uint8_t *idx = NULL;
    int w, h, plen;
    uint32_t pal[256];
    if (img_png_decode_indexed(d, n, &idx, &w, &h, pal, &plen) == 0) {
        FUZZ_CHECK(w > 0 && h > 0 && w <= IMG_PNG_MAX_DIM && h <= IMG_PNG_MAX_DIM);
        FUZZ_CHECK(plen >= 1 && plen <= 256);
        for (size_t i = 0; i < (size_t)w * (size_t)h; i++) FUZZ_CHECK(idx[i] < plen);
    } else {
        FUZZ_CHECK(idx == NULL);
    }
    free(idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1) {
        decode_untrusted(data + 1, size - 1);
        return 0;
    }
    if (size < 4) return 0;
    int w = 1 + data[1] % 40, h = 1 + data[2] % 40, plen = 1 + data[3];
    const uint8_t *rest = data + 4;
    size_t nrest = size - 4;
    uint32_t pal[256];
    for (int i = 0; i < plen; i++) pal[i] = (uint32_t)i * 0x010203u & 0xffffffu;
    uint8_t *px = calloc((size_t)w * (size_t)h, 1);
    for (size_t i = 0; i < (size_t)w * (size_t)h && i < nrest; i++) px[i] = rest[i] % plen;

    uint8_t *png = NULL;
    size_t len = 0;
    FUZZ_CHECK(img_png_encode(px, w, h, pal, plen, data[0] >> 1 & 7, &png, &len) == 0);
    uint8_t *back = NULL;
    int bw, bh, bplen;
    uint32_t bpal[256];
    FUZZ_CHECK(img_png_decode_indexed(png, len, &back, &bw, &bh, bpal, &bplen) == 0);
    FUZZ_CHECK(bw == w && bh == h && bplen == plen);
    FUZZ_CHECK(!memcmp(back, px, (size_t)w * (size_t)h));
    FUZZ_CHECK(!memcmp(bpal, pal, (size_t)plen * sizeof pal[0]));
    free(back);

    /* an index outside the palette is refused, not written */
    uint8_t *bad = NULL;
    size_t badlen = 0;
    if (plen < 256) {
        uint8_t keep = px[0];
        px[0] = (uint8_t)plen;
        FUZZ_CHECK(img_png_encode(px, w, h, pal, plen, 1, &bad, &badlen) == PX_EPROTO && !bad);
        px[0] = keep;
    }

    /* two frames: the second with the input's bytes applied as (offset, colour) events */
    apng_t *a = NULL;
    FUZZ_CHECK(apng_begin(png, len, 2, nrest ? 1 + rest[0] % 60 : 1, &a) == 0);
    uint8_t *orig = malloc((size_t)w * (size_t)h);
    memcpy(orig, px, (size_t)w * (size_t)h);
    {
        for (size_t i = 0; i + 1 < nrest; i += 2)
            px[rest[i] % ((size_t)w * (size_t)h)] = rest[i + 1] % plen;
        uint8_t *z = NULL;
        size_t zlen = 0;
        int depth = img_png_bit_depth(plen);
        FUZZ_CHECK(img_png_deflate_frame(px, (size_t)w, w, h, depth, 1, &z, &zlen) == 0);
        FUZZ_CHECK(apng_add_frame(a, z, zlen) == 0);
        FUZZ_CHECK(apng_add_frame(a, z, zlen) == PX_EPROTO); /* only two declared */
        free(z);
        FUZZ_CHECK(apng_frames(a) == 2);
        uint8_t *file = NULL;
        size_t flen = 0;
        FUZZ_CHECK(apng_finish(a, &file, &flen) == 0);
        /* libpng reads an APNG as its first frame (it skips the animation chunks) */
        uint8_t *first = NULL;
        FUZZ_CHECK(img_png_decode_indexed(file, flen, &first, &bw, &bh, bpal, &bplen) == 0);
        FUZZ_CHECK(bw == w && bh == h && !memcmp(first, orig, (size_t)w * (size_t)h));
        free(first);
        free(file);
        apng_free(a);
    }
    free(orig);
    free(png);
    free(px);
    return 0;
}
