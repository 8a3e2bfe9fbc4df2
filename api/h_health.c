/* GET /health (liveness), GET /health/ready (each backend checked) */
#include "log.h"
#include "mq.h"
#include "routes.h"

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
