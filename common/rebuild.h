/* rebuild — reconstructs the canvas from the record: the newest snapshot in
 * PostgreSQL, the events after it, and the stream entries Redis still holds
 * that may not have reached PostgreSQL yet, merged in seq order. Shared by
 * the api (start-up) and place-worker check. Blocking: never on a hub. */
#ifndef PLACE_REBUILD_H
#define PLACE_REBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "canvas.h"
#include "db.h"
#include "px.h"
#include "rds.h"

typedef struct rebuild_stats {
    int64_t snapshot_seq; /* 0 = no snapshot, started from a blank canvas */
    size_t db_events;     /* events applied from pixel_events */
    size_t stream_events; /* events applied from the stream only */
    int64_t seq;          /* last seq applied */
} rebuild_stats_t;

/* gives: *canvas (free(), canvas_size(g) bytes). rds may be NULL (skip the
 * stream). Errors: PX_EBACKEND (see db_errstr / rds_errstr). */
PX_MUST_CHECK int rebuild_canvas(db_t *db, rds_t *rds, const canvas_geom_t *g, uint8_t **canvas,
                                 rebuild_stats_t *st);

/* The canvas as it was right after event max_seq: like rebuild_canvas, but
 * from the newest snapshot with seq <= max_seq and applying no event above
 * it (so it can be compared with a canvas read together with its seq while
 * placements go on). Also PX_EPROTO (a corrupt snapshot) and -ENOMEM. */
PX_MUST_CHECK int rebuild_canvas_at(db_t *db, rds_t *rds, const canvas_geom_t *g, int64_t max_seq,
                                    uint8_t **canvas, rebuild_stats_t *st);

#endif
