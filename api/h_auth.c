/* POST /api/v1/auth/guest, GET /api/v1/auth/me */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "routes.h"

/* Set-Cookie value for a new session (out). */
static void session_cookie(const cfg_t *cfg, const char *sid, char *out, size_t n)
{
    snprintf(out, n, "%s%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             cfg->auth.cookie_secure ? "__Host-" : "", cfg->auth.cookie_name, sid,
             cfg->auth.session_ttl_s, cfg->auth.cookie_secure ? "; Secure" : "");
}

static json_t *user_json(const rds_session_t *s)
{
    return json_pack("{s:s,s:s,s:b,s:b}", "userId", s->user_id, "username", s->name, "isGuest",
                     s->guest, "isAdmin", s->admin);
}

enum MHD_Result h_auth_guest(req_t *rq)
{
    unsigned char rnd[48];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return reply_error(rq, 500, "INTERNAL", "random source failed");
    char sid[65];
    proto_hex(rnd, 32, sid);
    rds_session_t s;
    memset(&s, 0, sizeof s);
    proto_uuid_format(rnd + 32, s.user_id);
    snprintf(s.name, sizeof s.name, "guest-%.8s", s.user_id);
    s.guest = true;
    if (rds_session_put(req_rds(rq), sid, &s, rq->app->cfg->auth.session_ttl_s)) {
        atomic_fetch_add(&rq->app->backend_errors, 1);
        log_warn("redis_error", "guest session: %s", rds_errstr(req_rds(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "session store unavailable");
    }
    json_t *body = user_json(&s);
    json_object_set_new(body, "token", json_string(sid));
    char *str = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(str), str,
                                                             MHD_RESPMEM_MUST_FREE);
    char cookie[256];
    session_cookie(rq->app->cfg, sid, cookie, sizeof cookie);
    MHD_add_response_header(r, "Set-Cookie", cookie);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Request-Id", rq->rid);
    enum MHD_Result res = reply_response(rq, 201, r);
    MHD_destroy_response(r);
    return res;
}

enum MHD_Result h_auth_me(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t s;
    if (!req_session_or_reply(rq, &s, NULL, &res)) return res;
    int64_t left = 0;
    if (rds_cooldown_remaining(req_rds(rq), s.user_id, &left)) left = 0;
    json_t *body = user_json(&s);
    json_object_set_new(body, "cooldownRemaining", json_real(left / 1000.0));
    return reply_json(rq, 200, body);
}
