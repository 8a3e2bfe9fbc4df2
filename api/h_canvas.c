/* GET /api/v1/canvas, /api/v1/canvas.png, /api/v1/canvas/info */
#include "ccache.h"
#include "routes.h"

enum MHD_Result h_canvas(req_t *rq) { return ccache_reply(rq->app->ccache, rq, CCACHE_GZIP); }

enum MHD_Result h_canvas_png(req_t *rq) { return ccache_reply(rq->app->ccache, rq, CCACHE_PNG); }

enum MHD_Result h_canvas_info(req_t *rq)
{
    const int64_t def_ms = (int64_t)rq->app->cfg->cooldown.seconds * 1000;
    int64_t cd_ms;
    if (rds_cooldown_ms(req_rds(rq), def_ms, &cd_ms)) cd_ms = def_ms; /* Redis down */
    json_t *pal = app_palette_json(rq->app);
    return reply_json(rq, 200,
                      json_pack("{s:i,s:i,s:o,s:f,s:I}", "width", rq->app->geom.width, "height",
                                rq->app->geom.height, "palette", pal, "cooldown",
                                (double)cd_ms / 1000.0, "cooldownMs", (json_int_t)cd_ms));
}
