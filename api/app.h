/* app — process-wide state of place-api shared by its threads: the config,
 * the canvas cache, counters. Everything here is either immutable after
 * start or synchronised as documented per field. */
#ifndef PLACE_APP_H
#define PLACE_APP_H

#include <stdatomic.h>
#include <stdint.h>

#include "canvas.h"
#include "cfg.h"

typedef struct ccache ccache_t;
typedef struct sink sink_t;
typedef struct hub hub_t;

typedef struct app {
    /* read-only after start */
    const cfg_t *cfg;
    canvas_geom_t geom;
    int64_t started_ms;
    ccache_t *ccache;
    sink_t *sink;
    hub_t *hub;
    /* atomics */
    _Atomic int64_t inflight;        /* HTTP requests being handled */
    _Atomic uint64_t placed_by_color[256]; /* placements accepted here, by colour */
    _Atomic int64_t ws_connections;  /* WebSockets open on this instance */
    _Atomic uint64_t ws_messages_in; /* client text/binary messages */
    _Atomic uint64_t ws_frames_out;  /* broadcast frames written or queued */
    _Atomic uint64_t ws_updates;     /* updates received from the subscription */
    _Atomic uint64_t ws_slow_dropped; /* clients dropped for not reading */
} app_t;

/* The palette as a JSON array of "#RRGGBB" strings. gives: json_decref. */
struct json_t;
struct json_t *app_palette_json(const app_t *app);

/* Wall-clock and monotonic milliseconds; monotonic microseconds. */
int64_t app_now_ms(void);
int64_t app_mono_ms(void);
int64_t app_mono_us(void);

#endif
