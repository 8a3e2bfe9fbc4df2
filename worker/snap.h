/* snap — the `snapshot` job: canvas + seq from Redis in one MULTI, an indexed
 * PNG (4-bit for up to 16 colours, else 8-bit) and the zlib-compressed raw
 * canvas into canvas_snapshots, in the same transaction that marks the job
 * done; idempotent by job id. Uses the connections it is given and keeps
 * nothing; never logs (the job loop does, from snap_result_t and the error
 * text). Worker main thread. */
#ifndef PLACE_WORKER_SNAP_H
#define PLACE_WORKER_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "db.h"
#include "px.h"
#include "rds.h"

/* zlib level of the stored PNG: snapshots are written rarely and kept long. */
#define SNAP_PNG_LEVEL 6

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
