/* img_png — indexed-colour PNG in memory (libpng + zlib).
 *
 * A canvas here is w*h palette indices, one byte per pixel, row-major. The
 * encoder writes the smallest sensible indexed PNG for it: bit depth 4 when
 * the palette has at most 16 colours, else 8, filter NONE (libpng's own
 * default for palette and sub-8-bit images; on the r/place 2017 canvas the
 * Up, Sub and adaptive filters are 9-18 % bigger and slower at every
 * level), one PLTE, no ancillary chunks. libpng reports errors with longjmp; that is contained in
 * img_png.c (its one setjmp) and surfaces here as return codes. Nothing here
 * logs, keeps state or uses globals: every function is safe from any thread.
 *
 * Large buffers are taken with checked malloc (a job-sized buffer that cannot
 * be had fails the call with -ENOMEM instead of aborting the process). */
#ifndef PLACE_IMG_PNG_H
#define PLACE_IMG_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "px.h"

/* Largest width or height either direction accepts. */
#define IMG_PNG_MAX_DIM 16384

/* PNG bit depth used for a palette of palette_len colours: 4 up to 16, else 8. */
int img_png_bit_depth(int palette_len);

/* Encodes a w*h canvas of palette indices (idx: borrowed, w*h bytes, row-major)
 * as an indexed-colour PNG in memory. palette (borrowed): palette_len entries
 * 0xRRGGBB, 1 <= palette_len <= 256. level: zlib level 0-9 (on a
 * 2000x2000 r/place canvas 1 is 3.4x faster than 6 for 14 % more bytes, 4
 * 2.2x faster for 4 %; tests/bench/imgbench measures it).
 * Returns 0 with *out (gives: free()) and *out_len (out) set;
 *   PX_EPROTO   an index >= palette_len, or w/h/palette_len/level out of range;
 *   -ENOMEM     a buffer could not be allocated;
 *   PX_EBACKEND libpng failed.
 * On error *out is NULL and *out_len 0. */
PX_MUST_CHECK int img_png_encode(const uint8_t *idx, int w, int h, const uint32_t *palette,
                                 int palette_len, int level, uint8_t **out, size_t *out_len);

/* Decodes an indexed-colour PNG (png: borrowed, len bytes; bit depth 1/2/4/8,
 * colour type 3, interlaced or not) into one index byte per pixel: *idx
 * (gives: free(), w*h bytes), *w, *h (out), and its palette into palette
 * (out, room for 256 entries, 0xRRGGBB) with *palette_len (out).
 * Returns 0;
 *   PX_EPROTO  not an indexed PNG, corrupt or truncated data, an index
 *              outside the palette, or a dimension above IMG_PNG_MAX_DIM;
 *   -ENOMEM    the pixel buffer could not be allocated.
 * On error *idx is NULL and nothing else is meaningful. Ancillary chunks
 * (tRNS, pHYs, ...) are ignored. */
PX_MUST_CHECK int img_png_decode_indexed(const uint8_t *png, size_t len, uint8_t **idx, int *w,
                                         int *h, uint32_t *palette, int *palette_len);

/* The zlib stream of one frame as it goes into IDAT (or, behind a sequence
 * number, into an APNG fdAT): each of the h rows is filter byte 0 followed by
 * w indices packed at bit_depth (4 or 8, high nibble first). The frame is the
 * w*h rectangle starting at idx (borrowed) with rows `stride` bytes apart, so a
 * sub-rectangle of a canvas needs no copy. level: zlib level 0-9.
 * Returns 0 with *out (gives: free()) and *out_len (out);
 *   PX_EPROTO  an index that does not fit bit_depth, or bad arguments;
 *   -ENOMEM    no memory;
 *   PX_EBACKEND zlib failed.
 * On error *out is NULL. */
PX_MUST_CHECK int img_png_deflate_frame(const uint8_t *idx, size_t stride, int w, int h,
                                        int bit_depth, int level, uint8_t **out, size_t *out_len);

#endif
