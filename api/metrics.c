#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>

static const int status_codes[] = {101, 200, 201, 202, 204, 206, 301, 302, 304, 400, 401,
                                   403, 404, 405, 409, 413, 416, 426, 429, 500, 503, 0};
#define NSTATUS (sizeof status_codes / sizeof status_codes[0]) /* last: any other */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

/* a placement's answer is a Redis round trip: finer buckets */
static const double place_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
                                       0.01,   0.025,   0.05,   0.1,   0.25,  1};
#define NPBUCKETS (sizeof place_buckets / sizeof place_buckets[0])

static const char *route_names[METRICS_MAX_ROUTES];
static _Atomic uint64_t by_status[METRICS_MAX_ROUTES][NSTATUS];
static _Atomic uint64_t by_bucket[METRICS_MAX_ROUTES][NBUCKETS + 1];
static _Atomic uint64_t sum_us[METRICS_MAX_ROUTES];
static _Atomic uint64_t place_by_bucket[NPBUCKETS + 1];
static _Atomic uint64_t place_sum_us;
static _Atomic uint64_t limited[METRICS_LIMIT_COUNT];
static _Atomic uint64_t backend[METRICS_BACKEND_COUNT];

static const char *const limit_names[METRICS_LIMIT_COUNT] = {"auth", "guest",    "canvas",
                                                             "api",  "cooldown", "ip"};
static const char *const backend_names[METRICS_BACKEND_COUNT] = {"redis", "postgres"};

void metrics_route_name(int slot, const char *name)
{
    if (slot >= 0 && slot < METRICS_MAX_ROUTES) route_names[slot] = name;
}

/* the bucket of us among n upper bounds (n: +Inf) */
static size_t bucket_of(const double *bounds, size_t n, int64_t us)
{
    double sec = (double)us / 1e6;
    for (size_t i = 0; i < n; i++)
        if (sec <= bounds[i]) return i;
    return n;
}

void metrics_http(int slot, int status, int64_t us)
{
    if (slot < 0 || slot >= METRICS_MAX_ROUTES || !route_names[slot]) return;
    size_t s = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (status_codes[i] == status) s = i;
    atomic_fetch_add(&by_status[slot][s], 1);
    atomic_fetch_add(&by_bucket[slot][bucket_of(buckets, NBUCKETS, us)], 1);
    atomic_fetch_add(&sum_us[slot], (uint64_t)(us > 0 ? us : 0));
}

void metrics_ws_placement(int64_t us)
{
    atomic_fetch_add(&place_by_bucket[bucket_of(place_buckets, NPBUCKETS, us)], 1);
    atomic_fetch_add(&place_sum_us, (uint64_t)(us > 0 ? us : 0));
}

void metrics_rate_limited(metrics_limit_t which)
{
    if (which < METRICS_LIMIT_COUNT) atomic_fetch_add(&limited[which], 1);
}

void metrics_backend_error(metrics_backend_t which)
{
    if (which < METRICS_BACKEND_COUNT) atomic_fetch_add(&backend[which], 1);
}

/* One histogram's samples: name_bucket{label,le=...} (cumulative), name_sum
 * and name_count; label is "k=\"v\"" or NULL. counts has n + 1 slots (+Inf). */
static void put_histogram(buf_t *b, const char *name, const char *label, const double *bounds,
                          size_t n, _Atomic uint64_t *counts, uint64_t total_us)
{
    char lb[128] = "", lbe[128] = "{"; /* {label} for sum and count; {label, before le */
    if (label) {
        snprintf(lb, sizeof lb, "{%s}", label);
        snprintf(lbe, sizeof lbe, "{%s,", label);
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= n; i++) {
        cum += atomic_load(&counts[i]);
        if (i < n)
            buf_printf(b, "%s_bucket%sle=\"%g\"} %llu\n", name, lbe, bounds[i],
                       (unsigned long long)cum);
        else
            buf_printf(b, "%s_bucket%sle=\"+Inf\"} %llu\n", name, lbe, (unsigned long long)cum);
    }
    buf_printf(b, "%s_sum%s %.6f\n", name, lb, (double)total_us / 1e6);
    buf_printf(b, "%s_count%s %llu\n", name, lb, (unsigned long long)cum);
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
        char label[96];
        snprintf(label, sizeof label, "route=\"%s\"", route_names[r]);
        put_histogram(b, "place_http_request_duration_seconds", label, buckets, NBUCKETS,
                      by_bucket[r], atomic_load(&sum_us[r]));
    }
    buf_puts(b, "# HELP place_ws_placement_duration_seconds Time from a WebSocket placement "
                "being read to its answer being queued (the Redis round trip included).\n"
                "# TYPE place_ws_placement_duration_seconds histogram\n");
    put_histogram(b, "place_ws_placement_duration_seconds", NULL, place_buckets, NPBUCKETS,
                  place_by_bucket, atomic_load(&place_sum_us));
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
