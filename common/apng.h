/* apng — assembles an animated PNG in memory around libpng's output.
 *
 * Debian's libpng has no APNG support, so the animation chunks are written
 * here: the first frame is an ordinary PNG produced by libpng (img_png_encode);
 * its signature, IHDR, PLTE and any other chunk before the image data are
 * kept, acTL and the first fcTL are inserted before its IDAT chunks, and each
 * later frame is a zlib stream of the same layout (img_png_deflate_frame) that
 * goes into fcTL + fdAT chunks; IEND closes the file. Every frame covers the
 * whole image (offset 0,0, dispose NONE, blend SOURCE), so each one is a full
 * indexed image on its own.
 *
 * Pure (no I/O, no globals; any thread). Job-sized memory is taken with
 * checked malloc: running out fails the call with -ENOMEM. */
#ifndef PLACE_APNG_H
#define PLACE_APNG_H

#include <stddef.h>
#include <stdint.h>

#include "px.h"

/* fdAT / IDAT payloads longer than this are split over several chunks. */
#define APNG_MAX_CHUNK (1u << 20)

typedef struct apng apng_t;

/* Starts an animation of `frames` (>= 1) frames shown at `fps` (1..1000)
 * frames per second, looping forever, whose first frame is the PNG in
 * png (borrowed, len bytes: a non-interlaced PNG as libpng writes it).
 * Returns 0 with *out (gives: apng_free()); PX_EPROTO when png does not
 * parse as such a PNG or the arguments are out of range; -ENOMEM. */
PX_MUST_CHECK int apng_begin(const uint8_t *png, size_t len, int frames, int fps, apng_t **out);

/* Appends the next frame, zdata (borrowed, len bytes): the zlib stream of a
 * full image in the first frame's format (img_png_deflate_frame).
 * Returns 0; PX_EPROTO when all declared frames are already there; -ENOMEM. */
PX_MUST_CHECK int apng_add_frame(apng_t *a, const uint8_t *zdata, size_t len);

/* Frames written so far (the first one included). */
int apng_frames(const apng_t *a);

/* Bytes assembled so far. */
size_t apng_size(const apng_t *a);

/* Closes the file with IEND and hands it out: *out (gives: free()), *len.
 * Returns 0; PX_EPROTO if fewer frames than declared were added; -ENOMEM.
 * The builder is left empty either way (still free it). */
PX_MUST_CHECK int apng_finish(apng_t *a, uint8_t **out, size_t *len);

void apng_free(apng_t *a); /* NULL is a no-op */

#endif
