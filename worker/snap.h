/* snap — the `snapshot` job: canvas + seq from Redis in one MULTI, an indexed
 * PNG (4-bit for up to 16 colours, else 8-bit) and the zlib-compressed raw
 * canvas into canvas_snapshots, in the same transaction that marks the job
 * done; idempotent by job id. Uses the connections it is given and keeps
 * nothing; never logs (the job loop does, from snap_result_t and the error
 * text). Worker main thread (the raw canvas is compressed on a helper
 * thread that lives only inside snap_encode). */
#ifndef PLACE_WORKER_SNAP_H
#define PLACE_WORKER_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "db.h"
#include "px.h"
#include "rds.h"

/* zlib level of the stored PNG: the smallest output that encodes a
 * 2000x2000 canvas in under 30 ms. tests/bench/imgbench on the r/place 2017
 * canvas tiled to 2000x2000, one core (bytes, ms per encode): level 1
 * 485,563 / 16.6; 2 473,575 / 18.0; 3 463,134 / 23.0; 4 442,666 / 26.1;
 * 5 432,128 / 35.6; 6 426,650 / 56.6; 9 422,735 / 260. Z_RLE is 1,045,494
 * bytes at any level and no faster than level 1; the Up/Sub/all filters
 * are bigger and slower than NONE at every level (see img_png.h). */
#define SNAP_PNG_LEVEL 4

/* zlib level of canvas_z (the raw canvas, one byte per pixel, read back by
 * rebuilds and timelapses). It is compressed beside the PNG (snap_encode),
 * so the highest level that still finishes before the PNG: 2000x2000, level
 * 1 608,032 bytes / 18 ms; 2 572,795 / 20; 3 542,625 / 30; 6 445,491 / 106. */
#define SNAP_CANVAS_Z_LEVEL 2

/* What a run did, for the log line. */
typedef struct snap_result {
    bool existed;  /* the job had stored its snapshot before: nothing done */
    bool inserted; /* this run added the row */
    int64_t id;    /* canvas_snapshots.id */
    int64_t seq;   /* canvas:seq of the stored canvas (0 if the key is unset) */
    size_t png_bytes;
    size_t canvas_z_bytes;
    int read_ms, encode_ms, store_ms;
} snap_result_t;

/* Reads canvas:main and its seq in one MULTI (rds borrowed) and checks that
 * it is cfg's width*height bytes: *px (gives: free()), *seq (out). Returns 0;
 *   PX_ENOCANVAS Redis holds no canvas:main;
 *   PX_EPROTO    its length does not match the configuration;
 *   PX_EBACKEND  Redis failed;
 * with the reason in err (out, errlen bytes). Shared with maint_check. */
PX_MUST_CHECK int snap_read_canvas(const cfg_t *cfg, rds_t *rds, uint8_t **px, int64_t *seq,
                                   char *err, size_t errlen);

/* The encode step of snap_run, without Redis or PostgreSQL: the canvas px
 * (borrowed, cfg's width*height bytes) as the snapshot PNG (img_png_encode
 * at SNAP_PNG_LEVEL with cfg's palette) into *png / *png_len (gives:
 * free()), and as canvas_z (zlib of the raw bytes at SNAP_CANVAS_Z_LEVEL)
 * into *cz / *cz_len (gives: free()). canvas_z is compressed on a helper
 * thread while the calling thread writes the PNG, and joined before the
 * call returns (inline when no thread can be started). Returns 0;
 *   PX_EPROTO    an index outside the palette;
 *   -ENOMEM      a buffer could not be allocated;
 *   PX_EBACKEND  libpng or zlib failed;
 * with the reason in err (out, errlen bytes); on error *png and *cz are NULL.
 * Keeps nothing: any thread. */
PX_MUST_CHECK int snap_encode(const cfg_t *cfg, const uint8_t *px, uint8_t **png, size_t *png_len,
                              uint8_t **cz, size_t *cz_len, char *err, size_t errlen);

/* Runs snapshot job `job_id` (borrowed uuid text) with rds and db
 * (borrowed). The canvas geometry and palette come from cfg (borrowed).
 * res (out) is filled on success; err (out, errlen bytes) describes any
 * failure. Returns 0 when the snapshot is stored and the job marked done
 * (now or before);
 *   PX_ENOCANVAS Redis holds no canvas:main (nothing to snapshot);
 *   PX_EPROTO    the canvas does not match the configuration (length !=
 *                width*height, or an index outside the palette);
 *   PX_EBACKEND  Redis or PostgreSQL failed;
 *   -ENOMEM      a job-sized buffer could not be allocated. */
PX_MUST_CHECK int snap_run(const cfg_t *cfg, rds_t *rds, db_t *db, const char *job_id,
                           snap_result_t *res, char *err, size_t errlen);

#endif
