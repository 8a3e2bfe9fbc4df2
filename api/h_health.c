/* GET /health (liveness), GET /health/ready (each backend checked) */
#include "log.h"
#include "metrics.h"
#include "mq.h"
#include "routes.h"
#include "sink.h"

#define PLACE_VERSION "0.1.0"

enum MHD_Result h_health(req_t *rq)
{
    app_t *app = rq->app;
    return reply_json(
        rq, 200,
        json_pack("{s:s,s:s,s:s,s:I,s:{s:I,s:I,s:I,s:I,s:I}}", "status", "ok", "version",
                  PLACE_VERSION, "instance", app->cfg->instance, "uptime",
                  (json_int_t)((app_now_ms() - app->started_ms) / 1000), "ws", "connections",
                  (json_int_t)atomic_load(&app->ws_connections), "messagesIn",
                  (json_int_t)atomic_load(&app->ws_messages_in), "updates",
                  (json_int_t)atomic_load(&app->ws_updates), "framesOut",
                  (json_int_t)atomic_load(&app->ws_frames_out), "slowDropped",
                  (json_int_t)atomic_load(&app->ws_slow_dropped)));
}

enum MHD_Result h_health_ready(req_t *rq)
{
    bool redis_ok = rds_ping(req_rds(rq)) == 0;
    bool pg_ok = db_ping(req_db(rq)) == 0;
    bool mq_ok = mq_ping(rq->app->cfg->rabbitmq.url, 1000) == 0;
    json_t *down = json_array();
    if (!redis_ok) json_array_append_new(down, json_string("redis"));
    if (!pg_ok) json_array_append_new(down, json_string("postgres"));
    if (!mq_ok) json_array_append_new(down, json_string("rabbitmq"));
    bool ok = redis_ok && pg_ok && mq_ok;
    if (!ok) {
        char *s = json_dumps(down, JSON_COMPACT);
        log_warn("not_ready", "down: %s", s);
        free(s);
    }
    return reply_json(rq, ok ? 200 : 503,
                      json_pack("{s:s,s:s,s:s,s:s,s:o}", "status", ok ? "ready" : "unavailable",
                                "redis", redis_ok ? "ok" : "down", "postgres",
                                pg_ok ? "ok" : "down", "rabbitmq", mq_ok ? "ok" : "down",
                                "down", down));
}

/* GET /metrics — Prometheus text format 0.0.4, this instance's view */
enum MHD_Result h_metrics(req_t *rq)
{
    app_t *app = rq->app;
    buf_t b;
    buf_init(&b);
    buf_puts(&b, "# HELP place_pixels_placed_total Placements accepted by this instance, by "
                 "colour index.\n# TYPE place_pixels_placed_total counter\n");
    for (int i = 0; i < app->cfg->canvas.palette_len; i++)
        buf_printf(&b, "place_pixels_placed_total{color=\"%d\"} %llu\n", i,
                   (unsigned long long)atomic_load(&app->placed_by_color[i]));
    buf_printf(&b,
               "# HELP place_ws_connections WebSocket connections open on this instance.\n"
               "# TYPE place_ws_connections gauge\nplace_ws_connections %lld\n"
               "# HELP place_ws_messages_received_total Client WebSocket messages.\n"
               "# TYPE place_ws_messages_received_total counter\n"
               "place_ws_messages_received_total %llu\n"
               "# HELP place_ws_updates_total Updates received from the subscription.\n"
               "# TYPE place_ws_updates_total counter\nplace_ws_updates_total %llu\n"
               "# HELP place_ws_frames_sent_total Broadcast frames written or queued to clients.\n"
               "# TYPE place_ws_frames_sent_total counter\nplace_ws_frames_sent_total %llu\n"
               "# HELP place_ws_slow_dropped_total Clients dropped for not reading.\n"
               "# TYPE place_ws_slow_dropped_total counter\nplace_ws_slow_dropped_total %llu\n",
               (long long)atomic_load(&app->ws_connections),
               (unsigned long long)atomic_load(&app->ws_messages_in),
               (unsigned long long)atomic_load(&app->ws_updates),
               (unsigned long long)atomic_load(&app->ws_frames_out),
               (unsigned long long)atomic_load(&app->ws_slow_dropped));
    int64_t now = 0, lag = 0, pending = 0;
    bool have_lag = rds_time_ms(req_rds(rq), &now) == 0 &&
                    rds_sink_lag(req_rds(rq), now, &lag, &pending) == 0;
    if (!have_lag) metrics_backend_error(METRICS_REDIS);
    buf_printf(&b,
               "# HELP place_sink_lag_seconds Age of the oldest placement not yet in "
               "PostgreSQL.\n# TYPE place_sink_lag_seconds gauge\nplace_sink_lag_seconds %.3f\n"
               "# HELP place_sink_pending Placements read by a sink but not yet acknowledged.\n"
               "# TYPE place_sink_pending gauge\nplace_sink_pending %lld\n"
               "# HELP place_redis_up Whether this scrape could read Redis.\n"
               "# TYPE place_redis_up gauge\nplace_redis_up %d\n"
               "# HELP place_sink_rows_total Placements this instance's sink stored.\n"
               "# TYPE place_sink_rows_total counter\nplace_sink_rows_total %llu\n"
               "# HELP place_sink_batches_total Batches the sink stored (a COPY or INSERT each).\n"
               "# TYPE place_sink_batches_total counter\nplace_sink_batches_total %llu\n",
               (double)lag / 1000.0, (long long)pending, have_lag ? 1 : 0,
               (unsigned long long)(app->sink ? sink_stored(app->sink) : 0),
               (unsigned long long)(app->sink ? sink_batches(app->sink) : 0));
    metrics_write(&b);
    size_t len;
    char *text = buf_steal(&b, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result res = reply_response(rq, 200, r);
    MHD_destroy_response(r);
    return res;
}
