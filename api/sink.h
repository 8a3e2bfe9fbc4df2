/* sink — the event-sink thread: canvas:events (Redis stream, consumer group
 * "sink") -> pixel_events (PostgreSQL). Batches, inserts idempotently, XACKs
 * only after COMMIT, trims below the oldest pending entry, claims the pending
 * entries of dead consumers (XAUTOCLAIM), dead-letters entries that can
 * never be stored. The thread owns its own rds_t and db_t. */
#ifndef PLACE_SINK_H
#define PLACE_SINK_H

#include <stdint.h>

#include "app.h"

/* Starts the thread. gives: sink_stop. NULL on failure (logged). */
sink_t *sink_start(app_t *app);

/* Stops reading new work, drains what the stream holds for up to
 * sink.flush_timeout_ms, joins and frees. */
void sink_stop(sink_t *s);

/* Milliseconds between the newest stored event's placement and its insert
 * (last batch), events stored by this sink, and the batches they were
 * stored in. Any thread. */
int64_t sink_lag_ms(const sink_t *s);
uint64_t sink_stored(const sink_t *s);
uint64_t sink_batches(const sink_t *s);

#endif
