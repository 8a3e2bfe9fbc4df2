/* Admin endpoints under /api/v1/admin/: reset-canvas, ban-user (with
 * rollback), unban-user, settings, stats. Each requires an admin session
 * (401 anonymous, 403 otherwise); the state-changing ones also the CSRF
 * header. Every success writes one admin_actions row; every change that
 * clients must see is published on the updates channel, so every instance
 * applies it at once. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "db_acct.h"
#include "img_png.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "routes.h"
#include "xalloc.h"

static bool admin_or_reply(req_t *rq, bool changes, rds_session_t *s, enum MHD_Result *res)
{
    if (!req_admin_or_reply(rq, s, NULL, res)) return false;
    return !changes || req_csrf_or_reply(rq, res);
}

/* The request body as a JSON object (an empty body is {}). NULL after
 * replying 400. gives: the object. */
static json_t *body_or_reply(req_t *rq, enum MHD_Result *res)
{
    if (!rq->body.len) return json_object();
    json_error_t jerr;
    json_t *o = json_loadb(rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        *res = reply_error(rq, 400, "BAD_REQUEST", "body must be a JSON object");
        return NULL;
    }
    return o;
}

static enum MHD_Result backend_down(req_t *rq, bool pg, const char *what)
{
    metrics_backend_error(pg ? METRICS_POSTGRES : METRICS_REDIS);
    log_warn(pg ? "postgres_error" : "redis_error", "%s: %s", what,
             pg ? db_errstr(req_db(rq)) : rds_errstr(req_rds(rq)));
    return reply_error(rq, 503, "UNAVAILABLE", "%s unavailable, try again",
                       pg ? "database" : "canvas store");
}

static void audit(req_t *rq, const rds_session_t *admin, const char *type, const char *target,
                  json_t *details)
{
    char *d = json_dumps(details, JSON_COMPACT);
    json_decref(details);
    if (db_admin_action(req_db(rq), admin->user_id, type, target, d))
        log_error("audit_failed", "%s by %s not recorded: %s", type, admin->user_id,
                  db_errstr(req_db(rq)));
    log_info("admin_action", "%s by %s%s%s: %s", type, admin->name, target ? " on " : "",
             target ? target : "", d);
    free(d);
}

/* ------------------------------------------------------------------ reset */

/* Stores canvas (size bytes) as a snapshot row at seq. */
static int store_snapshot(req_t *rq, const uint8_t *canvas, int64_t seq, int64_t *id)
{
    const app_t *app = rq->app;
    size_t size = canvas_size(&app->geom);
    uint8_t *png = NULL;
    size_t png_len = 0;
    int rc = img_png_encode(canvas, app->geom.width, app->geom.height, app->cfg->canvas.palette,
                            app->cfg->canvas.palette_len, 1, &png, &png_len);
    if (rc) return rc;
    uLongf cz_len = compressBound((uLong)size);
    uint8_t *cz = xmalloc(cz_len);
    if (compress2(cz, &cz_len, canvas, (uLong)size, 1) != Z_OK) {
        free(png);
        free(cz);
        return PX_EBACKEND;
    }
    rc = db_snapshot_add(req_db(rq), seq, app->geom.width, app->geom.height, png, png_len, cz,
                           cz_len, id);
    free(png);
    free(cz);
    return rc;
}

enum MHD_Result h_admin_reset(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t admin;
    if (!admin_or_reply(rq, true, &admin, &res)) return res;
    json_t *body = body_or_reply(rq, &res);
    if (!body) return res;
    json_decref(body);
    size_t size = canvas_size(&rq->app->geom);
    uint8_t *old = NULL;
    int64_t old_seq = 0, new_seq = 0;
    int rc = rds_canvas_reset(req_rds(rq), size, &old, &old_seq, &new_seq);
    if (rc) return backend_down(rq, false, "reset");
    /* the canvas as it was (for timelapses), then the blank one at the
     * reset's seq, so a rebuild starts from the blank canvas */
    int64_t snap_id = 0, blank_id = 0;
    int src = store_snapshot(rq, old, old_seq, &snap_id);
    memset(old, 0, size);
    int brc = store_snapshot(rq, old, new_seq, &blank_id);
    free(old);
    if (src || brc)
        log_error("reset_snapshot_failed",
                  "canvas reset to seq %lld but a snapshot was not stored: %s (a rebuild "
                  "before the next snapshot would bring back pixels from before the reset)",
                  (long long)new_seq, db_errstr(req_db(rq)));
    audit(rq, &admin, "reset_canvas", NULL,
          json_pack("{s:I,s:I,s:I}", "seq", (json_int_t)new_seq, "previousSeq",
                    (json_int_t)old_seq, "snapshotId", (json_int_t)snap_id));
    return reply_json(rq, 200,
                      json_pack("{s:b,s:I,s:o}", "ok", 1, "seq", (json_int_t)new_seq,
                                "snapshotId", src ? json_null() : json_integer(snap_id)));
}

/* ------------------------------------------------------------------ ban */

/* The common prologue of ban and unban: an admin, the CSRF header, a JSON
 * body with a "userId" (copied into id). gives: the body (json_decref), or
 * NULL after replying. */
static json_t *target_or_reply(req_t *rq, rds_session_t *admin, char id[37],
                               enum MHD_Result *res)
{
    if (!admin_or_reply(rq, true, admin, res)) return NULL;
    json_t *body = body_or_reply(rq, res);
    if (!body) return NULL;
    const char *uid = json_string_value(json_object_get(body, "userId"));
    if (!uid || !proto_uuid_valid(uid)) {
        json_decref(body);
        *res = reply_error(rq, 400, "BAD_REQUEST", "userId must be a user id (uuid)");
        return NULL;
    }
    snprintf(id, 37, "%s", uid);
    return body;
}

/* Waits until PostgreSQL holds every event up to seq (the sink is normally
 * milliseconds behind). */
static bool log_caught_up(req_t *rq, int64_t seq)
{
    for (int i = 0; i < 100; i++) {
        int64_t have = 0;
        if (db_events_max_seq(req_db(rq), &have) == 0 && have >= seq) return true;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* Restores what the user placed in the last `secs` seconds. -1 on failure
 * (replied), else the number of pixels restored. */
static int64_t rollback(req_t *rq, const rds_session_t *admin, const char *uid, int64_t secs,
                        enum MHD_Result *res)
{
    rds_t *r = req_rds(rq);
    int64_t now = 0, upto = 0, reset = 0;
    if (rds_time_ms(r, &now) || rds_seq_get(r, &upto) || rds_reset_seq(r, &reset)) {
        *res = backend_down(rq, false, "rollback");
        return -1;
    }
    if (!log_caught_up(rq, upto)) {
        *res = reply_error(rq, 503, "UNAVAILABLE",
                           "the event log is behind; the user is banned, retry the rollback");
        return -1;
    }
    db_restore_t *plan = NULL;
    size_t n = 0;
    if (db_rollback_plan(req_db(rq), uid, now - secs * 1000, reset, upto, &plan, &n)) {
        *res = backend_down(rq, true, "rollback plan");
        return -1;
    }
    rds_restore_t *px = n ? xcalloc(n, sizeof *px) : NULL;
    for (size_t i = 0; i < n; i++) {
        px[i].x = plan[i].x;
        px[i].y = plan[i].y;
        px[i].cur = plan[i].cur;
        px[i].to = plan[i].to;
        unsigned char idb[16];
        if (RAND_bytes(idb, sizeof idb) != 1) memset(idb, (int)i, sizeof idb);
        proto_hex(idb, sizeof idb, px[i].id);
    }
    free(plan);
    int64_t restored = 0;
    int rc = n ? rds_restore(r, admin->user_id, rq->app->geom.width, px, n, &restored) : 0;
    free(px);
    if (rc) {
        *res = backend_down(rq, false, "rollback");
        return -1;
    }
    return restored;
}

enum MHD_Result h_admin_ban(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t admin;
    char id[37];
    json_t *body = target_or_reply(rq, &admin, id, &res);
    if (!body) return res;
    json_t *rb = json_object_get(body, "rollbackSeconds");
    bool rb_ok = !rb || (json_is_integer(rb) && json_integer_value(rb) >= 0 &&
                         json_integer_value(rb) <= 86400);
    int64_t secs = rb && rb_ok ? json_integer_value(rb) : 0;
    json_decref(body);
    if (!rb_ok)
        return reply_error(rq, 400, "BAD_REQUEST", "rollbackSeconds must be an integer 0..86400");
    /* refuse placements first, then sessions and sockets, then undo */
    if (rds_ban(req_rds(rq), id, true)) return backend_down(rq, false, "ban");
    if (db_user_set_banned(req_db(rq), id, true))
        log_warn("postgres_error", "ban of %s not recorded in users: %s", id,
                 db_errstr(req_db(rq)));
    int64_t revoked = 0;
    if (rds_user_sessions_revoke(req_rds(rq), id, &revoked))
        return backend_down(rq, false, "revoke sessions");
    char msg[96];
    snprintf(msg, sizeof msg, "{\"type\":\"ban\",\"userId\":\"%s\"}", id);
    if (rds_publish_control(req_rds(rq), msg)) return backend_down(rq, false, "ban notice");
    int64_t restored = 0;
    if (secs > 0) {
        restored = rollback(rq, &admin, id, secs, &res);
        if (restored < 0) return res;
    }
    audit(rq, &admin, "ban_user", id,
          json_pack("{s:I,s:I,s:I}", "rollbackSeconds", (json_int_t)secs, "restored",
                    (json_int_t)restored, "sessionsRevoked", (json_int_t)revoked));
    return reply_json(rq, 200,
                      json_pack("{s:b,s:s,s:I}", "ok", 1, "userId", id, "restored",
                                (json_int_t)restored));
}

enum MHD_Result h_admin_unban(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t admin;
    char id[37];
    json_t *body = target_or_reply(rq, &admin, id, &res);
    if (!body) return res;
    json_decref(body);
    if (rds_ban(req_rds(rq), id, false)) return backend_down(rq, false, "unban");
    if (db_user_set_banned(req_db(rq), id, false)) return backend_down(rq, true, "unban");
    audit(rq, &admin, "unban_user", id, json_object());
    return reply_json(rq, 200, json_pack("{s:b,s:s}", "ok", 1, "userId", id));
}

/* ------------------------------------------------------------------ settings */

enum MHD_Result h_admin_settings(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t admin;
    if (!admin_or_reply(rq, true, &admin, &res)) return res;
    json_t *body = body_or_reply(rq, &res);
    if (!body) return res;
    json_t *cd = json_object_get(body, "cooldownSeconds");
    double secs = json_is_number(cd) ? json_number_value(cd) : -1;
    bool only_known = json_object_size(body) == 1;
    json_decref(body);
    if (!only_known || secs < 0 || secs > 3600)
        return reply_error(rq, 400, "BAD_REQUEST",
                           "body must be {\"cooldownSeconds\": a number 0..3600}");
    int64_t ms = (int64_t)(secs * 1000.0 + 0.5);
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)ms);
    if (db_setting_put(req_db(rq), "cooldown_ms", v)) return backend_down(rq, true, "settings");
    if (rds_cooldown_set(req_rds(rq), ms)) return backend_down(rq, false, "settings");
    char msg[96];
    snprintf(msg, sizeof msg, "{\"type\":\"settings\",\"cooldownMs\":%lld}", (long long)ms);
    if (rds_publish_control(req_rds(rq), msg))
        log_warn("redis_error", "settings notice: %s", rds_errstr(req_rds(rq)));
    audit(rq, &admin, "settings", NULL, json_pack("{s:I}", "cooldownMs", (json_int_t)ms));
    return reply_json(rq, 200,
                      json_pack("{s:f,s:I}", "cooldownSeconds", (double)ms / 1000.0, "cooldownMs",
                                (json_int_t)ms));
}

/* ------------------------------------------------------------------ stats */

typedef struct {
    json_t *by;
    long long conns;
    double rate;
} inst_acc_t;

static void add_instance(void *arg, const char *name, long long conns, double rate)
{
    inst_acc_t *a = arg;
    json_object_set_new(a->by, name, json_integer(conns));
    a->conns += conns;
    a->rate += rate;
}

enum MHD_Result h_admin_stats(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t admin;
    if (!admin_or_reply(rq, false, &admin, &res)) return res;
    rds_t *r = req_rds(rq);
    const int np = rq->app->cfg->canvas.palette_len;
    int64_t counts[CFG_MAX_PALETTE], now = 0, active = 0, lag = 0, pending = 0;
    inst_acc_t acc = {json_object(), 0, 0};
    if (rds_time_ms(r, &now) || rds_stats_colors(r, counts, np) ||
        rds_active_users(r, now, 5, &active) || rds_sink_lag(r, now, &lag, &pending) ||
        rds_instances(r, now, add_instance, &acc)) {
        json_decref(acc.by);
        return backend_down(rq, false, "stats");
    }
    json_t *by_color = json_array();
    int64_t total = 0;
    for (int i = 0; i < np; i++) {
        json_array_append_new(by_color, json_integer(counts[i]));
        total += counts[i];
    }
    return reply_json(
        rq, 200,
        json_pack("{s:s,s:I,s:o,s:I,s:I,s:o,s:f,s:I,s:I}", "instance", rq->app->cfg->instance,
                  "pixelsTotal", (json_int_t)total, "pixelsByColor", by_color, "activeUsers5m",
                  (json_int_t)active, "connections", (json_int_t)acc.conns,
                  "connectionsByInstance", acc.by, "placementsPerSec", acc.rate, "sinkLagMs",
                  (json_int_t)lag, "sinkPending", (json_int_t)pending));
}
