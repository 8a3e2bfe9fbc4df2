/* metrics — this instance's counters for GET /metrics (Prometheus text
 * format 0.0.4): HTTP requests by route and status with a duration
 * histogram, WebSocket placements with a duration histogram, rate-limit
 * refusals by limit, backend errors by backend, and
 * (from app_t) pixels by colour and WebSocket connections. Lock-free
 * atomics; any thread. */
#ifndef PLACE_METRICS_H
#define PLACE_METRICS_H

#include <stdint.h>

#include "buf.h"

#define METRICS_MAX_ROUTES 64

typedef enum {
    METRICS_LIMIT_AUTH = 0,
    METRICS_LIMIT_GUEST,
    METRICS_LIMIT_CANVAS,
    METRICS_LIMIT_API,
    METRICS_LIMIT_COOLDOWN,
    METRICS_LIMIT_IP, /* [cooldown] per_ip */
    METRICS_LIMIT_COUNT
} metrics_limit_t;

typedef enum { METRICS_REDIS = 0, METRICS_POSTGRES, METRICS_BACKEND_COUNT } metrics_backend_t;

/* Names route slot i (borrowed, static storage), once at start. */
void metrics_route_name(int slot, const char *name);
/* One finished HTTP request. */
void metrics_http(int slot, int status, int64_t us);
/* One WebSocket placement answered: us from its message being read to its
 * answer (ack or error) being queued, which includes the Redis round trip. */
void metrics_ws_placement(int64_t us);
void metrics_rate_limited(metrics_limit_t which);
void metrics_backend_error(metrics_backend_t which);
/* Appends the HTTP, placement, rate-limit and backend families to b. */
void metrics_write(buf_t *b);

#endif
