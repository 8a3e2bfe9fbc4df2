/* POST /api/v1/pixel — the REST form of the hot path. */
#include <math.h>
#include <stdio.h>

#include "log.h"
#include "proto.h"
#include "routes.h"
#include "metrics.h"

enum MHD_Result h_pixel(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t s;
    if (!req_session_or_reply(rq, &s, NULL, &res)) return res;
    proto_place_t p;
    char msg[160];
    int rc = proto_parse_place(rq->body.data ? rq->body.data : "", rq->body.len, &rq->app->geom,
                               false, &p, msg, sizeof msg);
    if (rc) return reply_error(rq, 400, proto_error_code(rc), "%s", msg);

    char id[33];
    if (rds_placement_id(id)) return reply_error(rq, 500, "INTERNAL", "random source failed");
    char group[PROTO_IP_GROUP_LEN];
    rds_place_req_t q = {.user_id = s.user_id,
                         .id = id,
                         .x = p.x,
                         .y = p.y,
                         .color = p.color,
                         .width = rq->app->geom.width,
                         .height = rq->app->geom.height,
                         .cooldown_ms = (int64_t)rq->app->cfg->cooldown.seconds * 1000,
                         .ip_group = req_ip_group(rq, group) ? group : NULL,
                         .ip_cap = rq->app->cfg->cooldown.per_ip};
    rds_place_res_t out;
    rc = rds_place(req_rds(rq), &q, &out);
    switch (rc) {
    case 0: break;
    case PX_ECOOLDOWN: {
        metrics_rate_limited(out.ip_limited ? METRICS_LIMIT_IP : METRICS_LIMIT_COOLDOWN);
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)((out.remaining_ms + 999) / 1000));
        rds_cooldown_message(&out, msg, sizeof msg);
        return reply_error_ex(rq, 429, "RATE_LIMITED",
                              json_pack("{s:f,s:I}", "cooldownRemaining",
                                        out.remaining_ms / 1000.0, "cooldownRemainingMs",
                                        (json_int_t)out.remaining_ms),
                              "Retry-After", ra, msg);
    }
    case PX_EBANNED: return reply_error(rq, 403, "BANNED", "this account is banned");
    default:
        metrics_backend_error(METRICS_REDIS);
        log_warn("place_failed", "%s", rds_errstr(req_rds(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "canvas store unavailable, try again");
    }
    atomic_fetch_add(&rq->app->placed_by_color[p.color & 255], 1);
    char when[32];
    proto_time_format(out.time_ms, when);
    return reply_json(rq, 201,
                      json_pack("{s:b,s:s,s:I,s:i,s:i,s:i,s:f,s:I,s:s}", "ok", 1, "id", id, "seq",
                                (json_int_t)out.seq, "x", p.x, "y", p.y, "color", p.color,
                                "cooldown", out.cooldown_ms / 1000.0, "cooldownMs",
                                (json_int_t)out.cooldown_ms, "placedAt", when));
}
