/* tl — the `timelapse` job: from the newest snapshot at or before `from`,
 * replays pixel_events in seq order and writes one APNG whose frame i is the
 * canvas (region, scale) at timelapse_frame_time(i): frame 0 through libpng
 * (img_png_encode), the others as zlib streams (img_png_deflate_frame) in
 * fdAT chunks (apng.h). The APNG is stored in `timelapses` in the
 * transaction that marks the job done. Never logs. Worker main thread. */
#ifndef PLACE_WORKER_TL_H
#define PLACE_WORKER_TL_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "db.h"
#include "px.h"
#include "timelapse.h"

/* zlib level of the frames: 6 costs little more than 1 on palette frames
 * (most of their rows repeat) and saves space in PostgreSQL and on the wire. */
#define TL_PNG_LEVEL 6

/* Called between frames (at least every TL_TICK_MS while frames are being
 * written) with the fraction done (0..1). Returns 0 to go on, anything else
 * to stop the job (tl_run then returns it). */
typedef int (*tl_progress_fn)(void *arg, double done);
#define TL_TICK_MS 250

typedef struct tl_result {
    int64_t base_seq; /* seq of the snapshot started from (0: blank canvas) */
    int64_t events;   /* events replayed */
    size_t apng_bytes;
    int width, height; /* of one frame */
    int render_ms, store_ms;
} tl_result_t;

/* Runs timelapse job `job_id` (borrowed) with parameters p (borrowed; valid:
 * timelapse_params_decode checked them) on db (borrowed). cfg (borrowed)
 * gives the canvas geometry and palette. res (out); err (out, errlen).
 * Returns 0 when the APNG is stored and the job marked done;
 *   PX_ENOTFOUND  the events between the start snapshot and `from` were
 *                 removed by retention (the job can never succeed);
 *   PX_EBACKEND   PostgreSQL failed;
 *   PX_EPROTO     a stored canvas is corrupt or holds an index outside the
 *                 palette;
 *   -ENOMEM       a frame or the APNG did not fit in memory;
 *   whatever progress() returned when it asked to stop. */
PX_MUST_CHECK int tl_run(const cfg_t *cfg, db_t *db, const char *job_id,
                         const timelapse_params_t *p, tl_progress_fn progress, void *arg,
                         tl_result_t *res, char *err, size_t errlen);

#endif
