/* maint — maintenance: the `retention` job and `place-worker check`.
 * Never logs; the callers (job loop, command line) do. Worker main thread. */
#ifndef PLACE_WORKER_MAINT_H
#define PLACE_WORKER_MAINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "db.h"
#include "px.h"
#include "rds.h"

typedef struct maint_retention_result {
    json_t *partitions;        /* names of dropped pixel_events partitions (owned) */
    int64_t snapshots_deleted; /* canvas_snapshots rows */
    int64_t jobs_deleted;      /* finished jobs (with their timelapse outputs) */
} maint_retention_result_t;

void maint_retention_result_deinit(maint_retention_result_t *r);

/* Retention at now_ms: drops the pixel_events day partitions that ended more
 * than [worker] retention_days ago (never one holding an event newer than
 * the newest snapshot: the rebuild needs them), deletes snapshots older
 * than snapshot_retention_days except the newest of each canvas size, and
 * finished jobs older than job_retention_days; then marks job `job_id`
 * (borrowed; NULL = none) done with a summary. res (out, deinit it);
 * err (out). Returns 0 or PX_EBACKEND. */
PX_MUST_CHECK int maint_retention(const cfg_t *cfg, db_t *db, const char *job_id, int64_t now_ms,
                                  maint_retention_result_t *res, char *err, size_t errlen);

typedef struct maint_check_result {
    int64_t seq;            /* canvas:seq the comparison was made at */
    int64_t snapshot_seq;   /* the rebuild's starting snapshot (0: blank) */
    size_t db_events;       /* events replayed from PostgreSQL */
    size_t stream_events;   /* events replayed from the Redis stream only */
    size_t mismatched;      /* pixels that differ */
    size_t first[20];       /* offsets (y * width + x) of the first of them */
    uint8_t redis_px[20];   /* ... their value in Redis */
    uint8_t rebuilt_px[20]; /* ... and in the rebuild */
} maint_check_result_t;

/* Reads Redis's canvas with its seq (one MULTI), rebuilds the canvas at that
 * seq from the newest snapshot at or before it plus the events after it
 * (rebuild_canvas_at: PostgreSQL and the stream), and compares them byte
 * by byte. res (out). Returns 0 when compared (res->mismatched tells the
 * verdict); PX_ENOCANVAS when Redis holds no canvas; PX_EPROTO when it is
 * not width*height bytes; PX_EBACKEND (err says which). */
PX_MUST_CHECK int maint_check(const cfg_t *cfg, rds_t *rds, db_t *db, maint_check_result_t *res,
                              char *err, size_t errlen);

#endif
