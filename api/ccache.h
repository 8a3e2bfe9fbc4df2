/* ccache — the encoded canvas served by GET /api/v1/canvas and canvas.png.
 * Refreshed from Redis at most every canvas.cache_ms, single-flight: while
 * one pool thread refreshes, the others serve the previous entry (or wait
 * when there is none yet), so a crowd of joiners costs one Redis read. */
#ifndef PLACE_CCACHE_H
#define PLACE_CCACHE_H

#include <microhttpd.h>
#include <stdbool.h>

#include "app.h"
#include "http.h"

/* gives: ccache_free. */
ccache_t *ccache_new(app_t *app);
void ccache_free(ccache_t *c);

typedef enum { CCACHE_RAW, CCACHE_GZIP, CCACHE_PNG } ccache_kind_t;

/* Answers the request from the cache: 200 with the body, or 304 when
 * If-None-Match names the cached ETag, or 503 when Redis fails. */
enum MHD_Result ccache_reply(ccache_t *c, req_t *rq, ccache_kind_t kind);

/* Forgets the cached entry (after a reset or rebuild). */
void ccache_invalidate(ccache_t *c);

#endif
