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
#include "db_jobs.h"
#include "px.h"
#include "timelapse.h"

/* zlib level of the frames: where the curve bends. tests/bench/imgbench,
 * 60 frames of a 2000x2000 canvas with 200,000 random placements (APNG MB,
 * ms per frame; with 20,000 placements in brackets): level 1 47.4 / 27
 * (32.0 / 18); 2 46.3 / 31; 3 45.3 / 46-50; 4 43.1 / 39-52 (29.0 / 28-30);
 * 5 42.0 / 54-57 (28.2 / 38); 6 41.5 / 90-95 (27.8 / 62). 4 takes about
 * half the time of 6 for 4 % more bytes; above it each level costs much
 * time for about 1 %, below it 1 saves another third to half for 10 %. */
#define TL_PNG_LEVEL 4

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

/* Where tl_render's events come from: calls fn(fn_arg, ev) for each event
 * to replay, in seq order, stopping at the first non-zero return, which it
 * returns; 0 at the end, or its own error code. tl_run reads pixel_events;
 * the image benchmark (tests/bench/imgbench.c) feeds synthetic events. */
typedef int (*tl_scan_fn)(void *src, db_event_fn fn, void *fn_arg);

/* The part of tl_run without PostgreSQL: from canvas (borrowed, cfg's
 * width*height bytes; modified: it ends as the canvas after the last event)
 * as it was at p->from_ms, replays the events scan(src, ...) delivers (none
 * placed after p->to_ms) and the canvas resets among them (borrowed, nresets,
 * in seq order, none after p->to_ms; NULL when none: each blanks the canvas
 * before the first event with a larger seq), and builds the APNG of p:
 * *apng (gives: free()), *len and *events (out, events replayed).
 * progress/arg as for tl_run.
 * Returns 0;
 *   PX_EPROTO  the canvas holds an index outside the palette;
 *   -ENOMEM    a frame or the APNG did not fit in memory;
 *   whatever scan or progress returned when it stopped.
 * err (out, errlen) says why, except for a scan error that scan did not
 * describe (err is then left empty). Keeps nothing: any thread. */
PX_MUST_CHECK int tl_render(const cfg_t *cfg, const timelapse_params_t *p, uint8_t *canvas,
                            tl_scan_fn scan, void *src, const db_reset_t *resets, size_t nresets,
                            tl_progress_fn progress, void *arg, uint8_t **apng, size_t *len,
                            int64_t *events, char *err, size_t errlen);

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
