/* GET /api/v1/ws — the WebSocket handshake, validated here on the MHD
 * thread (blocking Redis calls are fine here, never on a hub), then handed
 * to a hub in O(1) by the upgrade callback. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "log.h"
#include "proto.h"
#include "routes.h"
#include "wsk.h"
#include "xalloc.h"
#include "metrics.h"

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *req_cls,
                       const char *extra_in, size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    app_t *app = cls;
    req_t *rq = req_cls;
    hub_client_t *c = rq ? rq->upgrade : NULL;
    if (!c) { /* cannot happen: the response is only queued with a client */
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    rq->upgrade = NULL;
    http_upgraded(rq);
    /* The hub takes its own descriptor and MHD forgets the connection at
     * once: MHD would otherwise keep the connection and its memory pool
     * (32 KiB) for the socket's whole life (measured: 47 KB per idle
     * WebSocket with it, 9 KB without). We serve no TLS, and MHD ends a
     * plain upgraded connection by close() alone (no shutdown(), checked
     * with strace), so the socket stays open through our duplicate. */
    c->fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    if (c->fd < 0) {
        log_warn("ws_upgrade", "dup: %s", strerror(errno));
        hub_client_free(c);
        return;
    }
    if (extra_in_size) {
        c->extra = xmalloc(extra_in_size);
        memcpy(c->extra, extra_in, extra_in_size);
        c->extra_len = extra_in_size;
    }
    hub_adopt(app->hub, c);
}

static bool token_or_reply(req_t *rq, char sid[65], enum MHD_Result *res)
{
    if (req_session_id(rq, sid)) return true;
    const char *t = req_arg(rq, "token"); /* browsers cannot set headers on a WebSocket */
    if (t && strlen(t) == 64 && proto_hex_valid(t, 64)) {
        memcpy(sid, t, 65);
        return true;
    }
    *res = reply_error(rq, 401, "UNAUTHORIZED",
                       "no session: POST /api/v1/auth/guest first (cookie, Bearer or ?token=)");
    return false;
}

static char *welcome_json(req_t *rq, const rds_session_t *s, size_t *len)
{
    app_t *app = rq->app;
    const cfg_t *cfg = app->cfg;
    int64_t cd_ms = (int64_t)cfg->cooldown.seconds * 1000, remaining = 0, seq = 0;
    rds_t *r = req_rds(rq);
    /* best effort: a Redis hiccup here only makes the welcome less precise */
    if (rds_cooldown_ms(r, cd_ms, &cd_ms)) cd_ms = (int64_t)cfg->cooldown.seconds * 1000;
    if (rds_cooldown_remaining(r, s->user_id, &remaining)) remaining = 0;
    if (rds_seq_get(r, &seq)) seq = 0;
    json_t *pal = app_palette_json(app);
    json_t *o = json_pack("{s:s,s:s,s:b,s:f,s:I,s:f,s:I,s:I,s:{s:i,s:i,s:o}}", "type", "welcome",
                          "userId", s->user_id, "isGuest", s->guest, "cooldown",
                          (double)cd_ms / 1000.0, "cooldownMs", (json_int_t)cd_ms,
                          "cooldownRemaining", (double)remaining / 1000.0,
                          "cooldownRemainingMs", (json_int_t)remaining, "seq", (json_int_t)seq,
                          "canvasInfo", "width", app->geom.width, "height", app->geom.height,
                          "palette", pal);
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = strlen(out);
    return out;
}

enum MHD_Result h_ws(req_t *rq)
{
    app_t *app = rq->app;
    const cfg_t *cfg = app->cfg;
    enum MHD_Result res;
    const char *upgrade = req_header(rq, "Upgrade");
    if (!upgrade || !wsk_has_token(upgrade, "websocket") ||
        !wsk_has_token(req_header(rq, "Connection"), "upgrade"))
        return reply_error(rq, 426, "UPGRADE_REQUIRED",
                           "this endpoint speaks WebSocket only (Upgrade: websocket)");
    const char *version = req_header(rq, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13") != 0)
        return reply_error_ex(rq, 426, "UPGRADE_REQUIRED", NULL, "Sec-WebSocket-Version", "13",
                              "only WebSocket version 13 is supported");
    const char *key = req_header(rq, "Sec-WebSocket-Key");
    if (!wsk_key_valid(key))
        return reply_error(rq, 400, "BAD_REQUEST",
                           "Sec-WebSocket-Key must be base64 of 16 bytes");
    const char *origin = req_header(rq, "Origin");
    if (origin && !wsk_origin_allowed(origin, cfg->ws.allowed_origins, req_header(rq, "Host")))
        return reply_error(rq, 403, "FORBIDDEN_ORIGIN", "origin not allowed");
    if (atomic_load(&app->ws_connections) >= cfg->ws.max_connections)
        return reply_error_ex(rq, 503, "UNAVAILABLE", NULL, "Retry-After", "5",
                              "too many connections, try again later");
    char sid[65];
    if (!token_or_reply(rq, sid, &res)) return res;
    rds_session_t s;
    int rc = rds_session_get(req_rds(rq), sid, cfg->auth.session_ttl_s, &s);
    if (rc == PX_ENOTFOUND)
        return reply_error(rq, 401, "UNAUTHORIZED", "session expired or unknown");
    if (rc) {
        metrics_backend_error(METRICS_REDIS);
        log_warn("redis_error", "session lookup: %s", rds_errstr(req_rds(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "session store unavailable");
    }
    hub_client_t *c = xcalloc(1, sizeof *c);
    c->fd = -1;
    snprintf(c->user_id, sizeof c->user_id, "%s", s.user_id);
    req_ip_group(rq, c->ip_group); /* "" while [cooldown] per_ip is off */
    rds_session_tag(sid, c->session_tag);
    c->welcome = welcome_json(rq, &s, &c->welcome_len);

    char accept[29];
    wsk_accept(key, accept);
    struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, app);
    if (!resp) {
        hub_client_free(c);
        return reply_error(rq, 500, "INTERNAL", "cannot create the upgrade response");
    }
    /* MHD adds "Connection: Upgrade" itself; permessage-deflate is never
     * negotiated (no Sec-WebSocket-Extensions in the answer) */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    rq->upgrade = c;
    enum MHD_Result r = reply_response(rq, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
    MHD_destroy_response(resp);
    return r;
}
