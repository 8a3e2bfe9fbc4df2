/* snap — the `snapshot` job: canvas + seq from Redis in one MULTI, an indexed
 * PNG and the zlib-compressed raw canvas into canvas_snapshots, idempotent by
 * job id. Uses the connections it is given and keeps nothing; never logs (the
 * job loop does, from snap_result_t and the error text). Worker main thread. */
#ifndef PLACE_WORKER_SNAP_H
#define PLACE_WORKER_SNAP_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "px.h"

/* zlib level of the stored PNG: snapshots are written rarely and kept long. */
#define SNAP_PNG_LEVEL 6

/* What a run did, for the log line. */
typedef struct snap_result {
    bool existed;  /* a row for this job id was already there: nothing done */
    bool inserted; /* this run added the row (false + !existed: a racing
                      redelivery won the ON CONFLICT) */
    int64_t seq;   /* canvas:seq of the stored canvas (0 if the key is unset) */
    size_t png_bytes;
    size_t canvas_z_bytes;
    int read_ms, encode_ms, store_ms;
} snap_result_t;

/* Runs snapshot job `job_id` (borrowed; a canonical lower- or upper-case
 * UUID) against redis and pg (borrowed, connected; a failure may leave
 * them broken, which the caller checks with redis->err / PQstatus). The
 * canvas geometry and palette come from cfg (borrowed). res (out) is
 * filled on success; err (out, errlen bytes) describes any failure.
 * Returns 0 when the snapshot row exists afterwards (stored now or before);
 *   PX_ENOCANVAS Redis holds no canvas:main (nothing to snapshot);
 *   PX_EPROTO    the canvas does not match the configuration (length !=
 *                width*height, or an index outside the palette);
 *   PX_EBACKEND  Redis or PostgreSQL failed;
 *   -ENOMEM      a job-sized buffer could not be allocated. */
PX_MUST_CHECK int snap_run(const cfg_t *cfg, redisContext *redis, PGconn *pg, const char *job_id,
                           snap_result_t *res, char *err, size_t errlen);

#endif
