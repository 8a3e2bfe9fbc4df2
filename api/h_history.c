/* GET /api/v1/history/pixel?x=&y=, /history/user/:id, /history/recent?limit= */
#include "log.h"
#include "proto.h"
#include "routes.h"
#include "metrics.h"

static enum MHD_Result reply_events(req_t *rq, int rc, json_t *events, json_t *head)
{
    if (rc) {
        json_decref(head);
        metrics_backend_error(METRICS_POSTGRES);
        log_warn("postgres_error", "history: %s", db_errstr(req_db(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "history store unavailable");
    }
    json_object_set_new(head, "events", events);
    return reply_json(rq, 200, head);
}

enum MHD_Result h_history_pixel(req_t *rq)
{
    enum MHD_Result res;
    const app_t *app = rq->app;
    long x, y, limit;
    if (!req_arg(rq, "x") || !req_arg(rq, "y"))
        return reply_error(rq, 400, "BAD_REQUEST", "x and y are required");
    if (!req_int_arg_or_reply(rq, "x", 0, app->geom.width - 1, 0, &x, &res) ||
        !req_int_arg_or_reply(rq, "y", 0, app->geom.height - 1, 0, &y, &res) ||
        !req_int_arg_or_reply(rq, "limit", 1, app->cfg->limits.history_max, 50, &limit, &res))
        return res;
    json_t *ev = NULL;
    int rc = db_history_pixel(req_db(rq), (int)x, (int)y, (int)limit, &ev);
    return reply_events(rq, rc, ev, json_pack("{s:i,s:i}", "x", (int)x, "y", (int)y));
}

enum MHD_Result h_history_user(req_t *rq)
{
    enum MHD_Result res;
    long limit;
    if (!rq->param || !proto_uuid_valid(rq->param))
        return reply_error(rq, 400, "BAD_REQUEST", "user id must be a UUID");
    if (!req_int_arg_or_reply(rq, "limit", 1, rq->app->cfg->limits.history_max, 50, &limit,
                              &res))
        return res;
    json_t *ev = NULL;
    int rc = db_history_user(req_db(rq), rq->param, (int)limit, &ev);
    return reply_events(rq, rc, ev, json_pack("{s:s}", "userId", rq->param));
}

enum MHD_Result h_history_recent(req_t *rq)
{
    enum MHD_Result res;
    long limit;
    if (!req_int_arg_or_reply(rq, "limit", 1, rq->app->cfg->limits.history_max, 100, &limit,
                              &res))
        return res;
    json_t *ev = NULL;
    int rc = db_history_recent(req_db(rq), (int)limit, &ev);
    return reply_events(rq, rc, ev, json_pack("{s:i}", "limit", (int)limit));
}
