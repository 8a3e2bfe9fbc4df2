#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>

static const int status_codes[] = {101, 200, 201, 202, 204, 206, 301, 302, 304, 400, 401,
                                   403, 404, 405, 409, 413, 416, 426, 429, 500, 503, 0};
#define NSTATUS (sizeof status_codes / sizeof status_codes[0]) /* last: any other */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

static const char *route_names[METRICS_MAX_ROUTES];
static _Atomic uint64_t by_status[METRICS_MAX_ROUTES][NSTATUS];
static _Atomic uint64_t by_bucket[METRICS_MAX_ROUTES][NBUCKETS + 1];
static _Atomic uint64_t sum_us[METRICS_MAX_ROUTES];
static _Atomic uint64_t limited[METRICS_LIMIT_COUNT];
static _Atomic uint64_t backend[METRICS_BACKEND_COUNT];

static const char *const limit_names[METRICS_LIMIT_COUNT] = {"auth", "guest", "canvas", "api",
                                                             "cooldown"};
static const char *const backend_names[METRICS_BACKEND_COUNT] = {"redis", "postgres"};

void metrics_route_name(int slot, const char *name)
{
    if (slot >= 0 && slot < METRICS_MAX_ROUTES) route_names[slot] = name;
}

void metrics_http(int slot, int status, int64_t us)
{
    if (slot < 0 || slot >= METRICS_MAX_ROUTES || !route_names[slot]) return;
    size_t s = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (status_codes[i] == status) s = i;
    atomic_fetch_add(&by_status[slot][s], 1);
    double sec = (double)us / 1e6;
    size_t b = NBUCKETS; /* +Inf */
    for (size_t i = 0; i < NBUCKETS; i++)
        if (sec <= buckets[i]) {
            b = i;
            break;
        }
    atomic_fetch_add(&by_bucket[slot][b], 1);
    atomic_fetch_add(&sum_us[slot], (uint64_t)(us > 0 ? us : 0));
}

void metrics_rate_limited(metrics_limit_t which)
{
    if (which < METRICS_LIMIT_COUNT) atomic_fetch_add(&limited[which], 1);
}

void metrics_backend_error(metrics_backend_t which)
{
    if (which < METRICS_BACKEND_COUNT) atomic_fetch_add(&backend[which], 1);
}

void metrics_write(buf_t *b)
{
    buf_puts(b, "# HELP place_http_requests_total HTTP requests answered, by route and status.\n"
                "# TYPE place_http_requests_total counter\n");
    for (int r = 0; r < METRICS_MAX_ROUTES; r++) {
        if (!route_names[r]) continue;
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load(&by_status[r][s]);
            if (!v) continue;
            if (status_codes[s])
                buf_printf(b, "place_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                           route_names[r], status_codes[s], (unsigned long long)v);
            else
                buf_printf(b, "place_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                           route_names[r], (unsigned long long)v);
        }
    }
    buf_puts(b, "# HELP place_http_request_duration_seconds Time from the first byte of a "
                "request to its completion.\n"
                "# TYPE place_http_request_duration_seconds histogram\n");
    for (int r = 0; r < METRICS_MAX_ROUTES; r++) {
        if (!route_names[r]) continue;
        uint64_t cum = 0;
        for (size_t i = 0; i <= NBUCKETS; i++) {
            cum += atomic_load(&by_bucket[r][i]);
            if (i < NBUCKETS)
                buf_printf(b,
                           "place_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                           "%llu\n",
                           route_names[r], buckets[i], (unsigned long long)cum);
            else
                buf_printf(b,
                           "place_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                           "%llu\n",
                           route_names[r], (unsigned long long)cum);
        }
        buf_printf(b, "place_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                   route_names[r], (double)atomic_load(&sum_us[r]) / 1e6);
        buf_printf(b, "place_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                   route_names[r], (unsigned long long)cum);
    }
    buf_puts(b, "# HELP place_rate_limited_total Requests refused by a rate limit or the "
                "placement cooldown.\n"
                "# TYPE place_rate_limited_total counter\n");
    for (int i = 0; i < METRICS_LIMIT_COUNT; i++)
        buf_printf(b, "place_rate_limited_total{limit=\"%s\"} %llu\n", limit_names[i],
                   (unsigned long long)atomic_load(&limited[i]));
    buf_puts(b, "# HELP place_backend_errors_total Failed calls to Redis or PostgreSQL.\n"
                "# TYPE place_backend_errors_total counter\n");
    for (int i = 0; i < METRICS_BACKEND_COUNT; i++)
        buf_printf(b, "place_backend_errors_total{backend=\"%s\"} %llu\n", backend_names[i],
                   (unsigned long long)atomic_load(&backend[i]));
}
