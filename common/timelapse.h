/* timelapse — the timelapse request: parsing and validating the JSON body
 * of POST /api/v1/timelapse, the job's stored parameters, frame times, and
 * cutting one frame (region, integer scale) out of a canvas. Pure: no I/O,
 * no globals; safe from any thread.
 *
 * Request body (every member but region and scale required, no others):
 *   {"from":"RFC 3339","to":"RFC 3339","frames":int,"fps":int,
 *    "region":{"x":int,"y":int,"width":int,"height":int},"scale":int}
 * Frame i (0-based) shows the canvas at from + (to - from) * i / (frames - 1):
 * the first frame is the canvas at `from`, the last the canvas at `to`. */
#ifndef PLACE_TIMELAPSE_H
#define PLACE_TIMELAPSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "px.h"

#define TIMELAPSE_MIN_FRAMES 2
#define TIMELAPSE_MAX_FPS 60
#define TIMELAPSE_MAX_SCALE 8
/* Largest output frame side (the PNG encoder's limit, IMG_PNG_MAX_DIM). */
#define TIMELAPSE_MAX_SIDE 16384
/* `to` may lie this far ahead of the server's clock (client clocks drift). */
#define TIMELAPSE_FUTURE_SLACK_MS (5 * 60 * 1000)

typedef struct timelapse_params {
    int64_t from_ms, to_ms;  /* ms since the epoch, from < to */
    int frames;              /* TIMELAPSE_MIN_FRAMES..limits.max_frames */
    int fps;                 /* 1..TIMELAPSE_MAX_FPS */
    int x, y, width, height; /* region of the canvas; the whole canvas by default */
    int scale;               /* 1..TIMELAPSE_MAX_SCALE, each pixel becomes scale x scale */
} timelapse_params_t;

typedef struct timelapse_limits {
    int canvas_width, canvas_height;
    int max_frames;     /* [worker] max_timelapse_frames */
    int64_t max_pixels; /* cap on frames * width * height * scale^2 */
    int64_t now_ms;     /* the server's clock; 0 = do not check `to` against it */
} timelapse_limits_t;

/* The limits cfg (borrowed) sets: its canvas and [worker] max_timelapse_*,
 * with now_ms as given. The api checks a request and the worker its stored
 * params against the same ones. */
timelapse_limits_t timelapse_limits(const cfg_t *cfg, int64_t now_ms);

/* Parses and validates a request body (borrowed, len bytes, not
 * NUL-terminated) against lim (borrowed). Returns 0 with *out filled, or
 *   PX_EPROTO  not a JSON object, unknown/duplicate/missing members, a
 *              member of the wrong type, a time that is not RFC 3339,
 *              from >= to, `to` too far in the future, frames, fps or scale
 *              out of range;
 *   PX_EBOUNDS the region is empty or reaches outside the canvas;
 *   PX_ETOOBIG frames * width * height * scale^2 > lim->max_pixels, or a
 *              frame side (width or height times scale) > TIMELAPSE_MAX_SIDE;
 * with a message for the client in msg (out, msglen bytes). */
PX_MUST_CHECK int timelapse_parse_request(const char *body, size_t len,
                                          const timelapse_limits_t *lim, timelapse_params_t *out,
                                          char *msg, size_t msglen);

/* The job's params as compact JSON: {"from","to" (RFC 3339),"fromMs","toMs",
 * "frames","fps","region":{x,y,width,height},"scale"}. Returns it (gives:
 * free()); never NULL. */
char *timelapse_params_encode(const timelapse_params_t *p);

/* Reads what timelapse_params_encode wrote (json: borrowed, len bytes) and
 * validates it again against lim (borrowed; now_ms is ignored). Returns 0,
 * PX_EPROTO / PX_EBOUNDS / PX_ETOOBIG as timelapse_parse_request, with msg. */
PX_MUST_CHECK int timelapse_params_decode(const char *json, size_t len,
                                          const timelapse_limits_t *lim, timelapse_params_t *out,
                                          char *msg, size_t msglen);

/* frames * width * height * scale^2 (the number of pixels rendered). */
int64_t timelapse_output_pixels(const timelapse_params_t *p);

/* Time shown by frame i (0 <= i < frames): from_ms for 0, to_ms for the last,
 * evenly spaced (rounded down) in between. */
int64_t timelapse_frame_time(const timelapse_params_t *p, int i);

/* Output size of one frame: width * scale by height * scale. */
int timelapse_frame_width(const timelapse_params_t *p);
int timelapse_frame_height(const timelapse_params_t *p);

/* Cuts p's region out of canvas (borrowed, canvas_width bytes a row) and
 * scales it by p->scale into out (out, timelapse_frame_width(p) *
 * timelapse_frame_height(p) bytes). The region must lie in the canvas. */
void timelapse_frame_render(const uint8_t *canvas, int canvas_width, const timelapse_params_t *p,
                            uint8_t *out);

/* Parses an RFC 3339 date-time ("2024-05-01T12:00:00Z", optional fraction,
 * "Z" or "+hh:mm"/"-hh:mm"; 't'/'z' and a space instead of 'T' accepted)
 * from exactly the NUL-terminated s (borrowed). Fractions beyond
 * milliseconds are truncated. Returns false for anything else, including
 * impossible dates (Feb 30) and years outside 1970..9999. */
bool timelapse_time_parse(const char *s, int64_t *ms);

#endif
