/* canvas — board geometry, palette, pixel index maths, validation and event
 * replay. Pure: no I/O, no globals. */
#ifndef PLACE_CANVAS_H
#define PLACE_CANVAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px.h"

typedef struct canvas_geom {
    int width;
    int height;
    int palette_len;
} canvas_geom_t;

/* One placement as it travels: stream entry, pixel_events row, replay input. */
typedef struct canvas_event {
    char id[33];      /* placement id, 32 lower-case hex digits */
    int64_t seq;      /* canvas:seq */
    int x, y, color;
    char user_id[37]; /* uuid text */
    int64_t time_ms;  /* Redis TIME, ms since the epoch */
} canvas_event_t;

static inline size_t canvas_size(const canvas_geom_t *g)
{
    return (size_t)g->width * (size_t)g->height;
}

/* Row-major byte offset of (x, y); the caller has checked the bounds. */
static inline size_t canvas_index_of(const canvas_geom_t *g, int x, int y)
{
    return (size_t)y * (size_t)g->width + (size_t)x;
}

/* 0, PX_EBOUNDS or PX_ECOLOR. Takes int64 so that any decoded JSON integer
 * can be checked before it is narrowed. */
PX_MUST_CHECK int canvas_validate(const canvas_geom_t *g, int64_t x, int64_t y, int64_t color);

/* Applies events (borrowed, n of them, any order) to canvas (width*height
 * bytes) in seq order, skipping events with seq <= after_seq and events
 * outside the board. Sorts `ev` in place. Returns the largest seq applied or
 * after_seq. */
int64_t canvas_replay(uint8_t *canvas, const canvas_geom_t *g, canvas_event_t *ev, size_t n,
                      int64_t after_seq);

/* Counts bytes that differ between two canvases of n bytes; writes up to
 * max_report offsets of differing bytes into `offsets` (out, may be NULL). */
size_t canvas_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *offsets,
                   size_t max_report);

#endif
