/* GET /api/v1/canvas, /api/v1/canvas.png, /api/v1/canvas/info */
#include "ccache.h"
#include "routes.h"

enum MHD_Result h_canvas(req_t *rq) { return ccache_reply(rq->app->ccache, rq, CCACHE_GZIP); }

enum MHD_Result h_canvas_png(req_t *rq) { return ccache_reply(rq->app->ccache, rq, CCACHE_PNG); }

enum MHD_Result h_canvas_info(req_t *rq)
{
    const cfg_t *cfg = rq->app->cfg;
    json_t *pal = json_array();
    for (int i = 0; i < cfg->canvas.palette_len; i++) {
        char hex[8];
        snprintf(hex, sizeof hex, "#%06X", cfg->canvas.palette[i]);
        json_array_append_new(pal, json_string(hex));
    }
    int64_t cd_ms = (int64_t)cfg->cooldown.seconds * 1000;
    redisReply *r = rds_command(req_rds(rq), "HGET %s cooldown_ms", RDS_KEY_SETTINGS);
    if (r && r->type == REDIS_REPLY_STRING) cd_ms = strtoll(r->str, NULL, 10);
    if (r) freeReplyObject(r);
    return reply_json(rq, 200,
                      json_pack("{s:i,s:i,s:o,s:f,s:I}", "width", rq->app->geom.width, "height",
                                rq->app->geom.height, "palette", pal, "cooldown",
                                (double)cd_ms / 1000.0, "cooldownMs", (json_int_t)cd_ms));
}
