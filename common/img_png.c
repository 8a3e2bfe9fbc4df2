#include "img_png.h"

#include <errno.h>
#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* libpng's IDAT chunks are as long as its compression buffer; 128 KiB keeps
 * the chunk count small without holding much memory. */
#define IDAT_BUF (128 * 1024)

int img_png_bit_depth(int palette_len)
{
    return palette_len <= 16 ? 4 : 8;
}

/* ---------------------------------------------------------------------------
 * The libpng error trap
 *
 * libpng reports every error by calling the error callback, which must not
 * return: we longjmp back into run_guarded(), the only setjmp in the code
 * base. Bodies run by it keep all their state in the struct behind `arg`
 * (which lives in the caller's frame, not in run_guarded's), so nothing needs
 * `volatile` and whatever a body allocated before the jump is still reachable
 * for the caller to free. */

typedef void (*png_body_fn)(png_structp png, png_infop info, void *arg);

static int run_guarded(png_structp png, png_infop info, png_body_fn body, void *arg)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    body(png, info, arg);
    return 0;
}

static void PNGCBAPI on_png_error(png_structp png, png_const_charp msg)
{
    (void)msg; /* helpers never log; the caller gets a code */
    png_longjmp(png, 1);
}

static void PNGCBAPI on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* ---------------------------------------------------------------------------
 * Encoding */

typedef struct sink {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool oom;
} sink_t;

typedef struct enc_job {
    const uint8_t *rows; /* packed rows, rowbytes apart */
    size_t rowbytes;
    int w, h, depth, level;
    png_color plte[256];
    int nplte;
    sink_t sink;
} enc_job_t;

static void PNGCBAPI sink_write(png_structp png, png_bytep data, size_t n)
{
    sink_t *s = png_get_io_ptr(png);
    if (n > s->cap - s->len) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap - s->len < n) {
            if (cap > SIZE_MAX / 2) {
                s->oom = true;
                png_error(png, "output too large");
            }
            cap *= 2;
        }
        uint8_t *p = realloc(s->data, cap);
        if (!p) {
            s->oom = true;
            png_error(png, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, data, n);
    s->len += n;
}

static void PNGCBAPI sink_flush(png_structp png)
{
    (void)png;
}

static void encode_body(png_structp png, png_infop info, void *arg)
{
    enc_job_t *j = arg;
    png_set_write_fn(png, &j->sink, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)j->w, (png_uint_32)j->h, j->depth, PNG_COLOR_TYPE_PALETTE,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_PLTE(png, info, j->plte, j->nplte);
    png_set_compression_level(png, j->level);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
    png_set_compression_buffer_size(png, IDAT_BUF);
    png_write_info(png, info);
    for (int y = 0; y < j->h; y++)
        png_write_row(png, j->rows + (size_t)y * j->rowbytes);
    png_write_end(png, info);
}

/* Largest value in n bytes. The fixed-length inner loop is what gcc's -O2
 * vectoriser (the "very cheap" cost model: no epilogue loops) accepts; the
 * plain loop stays scalar and costs 2 ms on a 2000x2000 canvas. */
static uint8_t max_byte(const uint8_t *p, size_t n)
{
    uint8_t m = 0;
    size_t i = 0;
    for (; n - i >= 64; i += 64)
        for (size_t k = 0; k < 64; k++)
            m = p[i + k] > m ? p[i + k] : m;
    for (; i < n; i++)
        m = p[i] > m ? p[i] : m;
    return m;
}

/* Packs w indices (each < 16) two per byte, high nibble first. */
static void pack4(const uint8_t *src, int w, uint8_t *dst)
{
    int x = 0;
    for (; x + 1 < w; x += 2)
        *dst++ = (uint8_t)(src[x] << 4 | src[x + 1]);
    if (x < w) *dst = (uint8_t)(src[x] << 4);
}

int img_png_encode(const uint8_t *idx, int w, int h, const uint32_t *palette, int palette_len,
                   int level, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (w < 1 || h < 1 || w > IMG_PNG_MAX_DIM || h > IMG_PNG_MAX_DIM || palette_len < 1 ||
        palette_len > 256 || level < 0 || level > 9)
        return PX_EPROTO;

    size_t npix = (size_t)w * (size_t)h;
    if (max_byte(idx, npix) >= palette_len) return PX_EPROTO;

    enc_job_t *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->w = w;
    j->h = h;
    j->level = level;
    j->depth = img_png_bit_depth(palette_len);
    j->nplte = palette_len;
    for (int i = 0; i < palette_len; i++) {
        j->plte[i].red = (png_byte)(palette[i] >> 16);
        j->plte[i].green = (png_byte)(palette[i] >> 8);
        j->plte[i].blue = (png_byte)palette[i];
    }

    uint8_t *packed = NULL;
    if (j->depth == 8) {
        j->rows = idx; /* already one byte per pixel: no copy */
        j->rowbytes = (size_t)w;
    } else {
        j->rowbytes = ((size_t)w + 1) / 2;
        packed = malloc(j->rowbytes * (size_t)h);
        if (!packed) {
            free(j);
            return -ENOMEM;
        }
        for (int y = 0; y < h; y++)
            pack4(idx + (size_t)y * (size_t)w, w, packed + (size_t)y * j->rowbytes);
        j->rows = packed;
    }

    /* A palette canvas rarely compresses worse than 1/4; start there. */
    j->sink.cap = j->rowbytes * (size_t)h / 4 + 1024;
    j->sink.data = malloc(j->sink.cap);
    int rc = 0;
    if (!j->sink.data) {
        rc = -ENOMEM;
        goto done;
    }

    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, on_png_error, on_png_warning);
    if (!png) {
        rc = -ENOMEM;
        goto done;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        rc = -ENOMEM;
        goto done;
    }
    if (run_guarded(png, info, encode_body, j) != 0) rc = j->sink.oom ? -ENOMEM : PX_EBACKEND;
    png_destroy_write_struct(&png, &info);

done:
    free(packed);
    if (rc == 0) {
        *out = j->sink.data;
        *out_len = j->sink.len;
    } else {
        free(j->sink.data);
    }
    free(j);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Decoding */

typedef struct dec_job {
    const uint8_t *src;
    size_t len;
    size_t pos;
    uint8_t *pix; /* owned by the job until handed out */
    int w, h;
    uint32_t *palette;
    int npal;
    int rc; /* set by the body for refusals that are not libpng errors */
} dec_job_t;

static void PNGCBAPI source_read(png_structp png, png_bytep data, size_t n)
{
    dec_job_t *j = png_get_io_ptr(png);
    if (n > j->len - j->pos) png_error(png, "truncated");
    memcpy(data, j->src + j->pos, n);
    j->pos += n;
}

static void decode_body(png_structp png, png_infop info, void *arg)
{
    dec_job_t *j = arg;
    png_set_read_fn(png, j, source_read);
    png_set_user_limits(png, IMG_PNG_MAX_DIM, IMG_PNG_MAX_DIM);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    png_colorp plte = NULL;
    int n = 0;
    if (ctype != PNG_COLOR_TYPE_PALETTE || depth > 8 ||
        !(png_get_valid(png, info, PNG_INFO_PLTE) && png_get_PLTE(png, info, &plte, &n)) || n < 1 ||
        n > 256) {
        j->rc = PX_EPROTO;
        return;
    }
    for (int i = 0; i < n; i++)
        j->palette[i] = (uint32_t)plte[i].red << 16 | (uint32_t)plte[i].green << 8 | plte[i].blue;
    j->npal = n;

    if (depth < 8) png_set_packing(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != w) {
        j->rc = PX_EPROTO;
        return;
    }
    j->pix = malloc((size_t)w * h);
    if (!j->pix) {
        j->rc = -ENOMEM;
        return;
    }
    j->w = (int)w;
    j->h = (int)h;
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(png, j->pix + (size_t)y * w, NULL);
    png_read_end(png, NULL);
}

int img_png_decode_indexed(const uint8_t *png_data, size_t len, uint8_t **idx, int *w, int *h,
                           uint32_t *palette, int *palette_len)
{
    *idx = NULL;
    dec_job_t j = {.src = png_data, .len = len, .palette = palette};

    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, on_png_error, on_png_warning);
    if (!png) return -ENOMEM;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return -ENOMEM;
    }
    int rc = run_guarded(png, info, decode_body, &j) != 0 ? PX_EPROTO : j.rc;
    png_destroy_read_struct(&png, &info, NULL);

    /* libpng only warns about indices past the palette; we refuse them. */
    if (rc == 0 && max_byte(j.pix, (size_t)j.w * (size_t)j.h) >= j.npal) rc = PX_EPROTO;
    if (rc != 0) {
        free(j.pix);
        return rc;
    }
    *idx = j.pix;
    *w = j.w;
    *h = j.h;
    *palette_len = j.npal;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Bare IDAT payload (for APNG frames) */

int img_png_deflate_frame(const uint8_t *idx, size_t stride, int w, int h, int bit_depth, int level,
                          uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (w < 1 || h < 1 || w > IMG_PNG_MAX_DIM || h > IMG_PNG_MAX_DIM || stride < (size_t)w ||
        (bit_depth != 4 && bit_depth != 8) || level < 0 || level > 9)
        return PX_EPROTO;

    size_t rowbytes = bit_depth == 8 ? (size_t)w : ((size_t)w + 1) / 2;
    if (bit_depth == 4)
        for (int y = 0; y < h; y++)
            if (max_byte(idx + (size_t)y * stride, (size_t)w) > 15) return PX_EPROTO;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, level) != Z_OK) return PX_EBACKEND;

    size_t raw = (rowbytes + 1) * (size_t)h;
    size_t cap = deflateBound(&zs, (uLong)raw);
    uint8_t *dst = malloc(cap);
    uint8_t *row = malloc(rowbytes + 1);
    int rc = 0;
    if (!dst || !row) {
        rc = -ENOMEM;
        goto done;
    }
    zs.next_out = dst;
    zs.avail_out = (uInt)cap;
    row[0] = 0; /* filter NONE */
    int zr = Z_OK;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = idx + (size_t)y * stride;
        if (bit_depth == 8)
            memcpy(row + 1, s, rowbytes);
        else
            pack4(s, w, row + 1);
        zs.next_in = row;
        zs.avail_in = (uInt)(rowbytes + 1);
        zr = deflate(&zs, y == h - 1 ? Z_FINISH : Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rc = PX_EBACKEND;
            goto done;
        }
    }
    if (zr != Z_STREAM_END) { /* deflateBound was not enough: cannot happen */
        rc = PX_EBACKEND;
        goto done;
    }
    *out_len = zs.total_out;
    uint8_t *shrunk = realloc(dst, zs.total_out ? zs.total_out : 1);
    *out = shrunk ? shrunk : dst;
    dst = NULL;

done:
    deflateEnd(&zs);
    free(row);
    free(dst);
    return rc;
}
