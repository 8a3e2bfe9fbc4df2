/* POST /api/v1/auth/guest, register, login, logout; GET /api/v1/auth/me */
#include <openssl/rand.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include "db_acct.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "pwhash.h"
#include "routes.h"

/* Set-Cookie value (out) for a session id; "" with max_age 0 clears it. */
static void session_cookie(const cfg_t *cfg, const char *sid, int max_age, char *out, size_t n)
{
    snprintf(out, n, "%s%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             cfg->auth.cookie_secure ? "__Host-" : "", cfg->auth.cookie_name, sid, max_age,
             cfg->auth.cookie_secure ? "; Secure" : "");
}

static json_t *user_json(const rds_session_t *s)
{
    return json_pack("{s:s,s:s,s:b,s:b}", "userId", s->user_id, "username", s->name, "isGuest",
                     s->guest, "isAdmin", s->admin);
}

/* Stores a new session for s and answers status with the user, the token
 * and the cookie. */
static enum MHD_Result reply_new_session(req_t *rq, unsigned status, const rds_session_t *s)
{
    unsigned char rnd[32];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return reply_error(rq, 500, "INTERNAL", "random source failed");
    char sid[65];
    proto_hex(rnd, sizeof rnd, sid);
    if (rds_session_put(req_rds(rq), sid, s, rq->app->cfg->auth.session_ttl_s)) {
        metrics_backend_error(METRICS_REDIS);
        log_warn("redis_error", "new session: %s", rds_errstr(req_rds(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "session store unavailable");
    }
    json_t *body = user_json(s);
    json_object_set_new(body, "token", json_string(sid));
    char cookie[256];
    session_cookie(rq->app->cfg, sid, rq->app->cfg->auth.session_ttl_s, cookie, sizeof cookie);
    return reply_json_ex(rq, status, body, "Set-Cookie", cookie);
}

enum MHD_Result h_auth_guest(req_t *rq)
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return reply_error(rq, 500, "INTERNAL", "random source failed");
    rds_session_t s;
    memset(&s, 0, sizeof s);
    proto_uuid_format(rnd, s.user_id);
    snprintf(s.name, sizeof s.name, "guest-%.8s", s.user_id);
    s.guest = true;
    return reply_new_session(rq, 201, &s);
}

/* ------------------------------------------------------------------ accounts */

/* scrypt at the OWASP cost takes 128 MiB and ~0.3 s: at most two at once,
 * so a login flood cannot exhaust memory or every HTTP thread */
static sem_t hash_slots;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;
static void hash_init(void) { sem_init(&hash_slots, 0, 2); }

static int hash_password(const char *pw, size_t len, char out[PWHASH_MAX])
{
    pthread_once(&hash_once, hash_init);
    sem_wait(&hash_slots);
    int rc = pwhash_hash(pw, len, PWHASH_LN, PWHASH_R, PWHASH_P, out);
    sem_post(&hash_slots);
    return rc;
}

static int verify_password(const char *pw, size_t len, const char *stored, bool *ok)
{
    pthread_once(&hash_once, hash_init);
    sem_wait(&hash_slots);
    int rc = pwhash_verify(pw, len, stored, ok);
    sem_post(&hash_slots);
    return rc;
}

/* Parses {"username","password"} (strings; no other members). false after
 * replying 400. */
static bool credentials_or_reply(req_t *rq, json_t **root, const char **user, const char **pw,
                                 size_t *pwlen, enum MHD_Result *res)
{
    json_error_t jerr;
    *root = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len,
                       JSON_REJECT_DUPLICATES, &jerr);
    json_t *u = *root ? json_object_get(*root, "username") : NULL;
    json_t *p = *root ? json_object_get(*root, "password") : NULL;
    if (!json_is_object(*root) || !json_is_string(u) || !json_is_string(p) ||
        json_object_size(*root) != 2) {
        *res = reply_error(rq, 400, "BAD_REQUEST",
                           "body must be {\"username\": string, \"password\": string}");
        json_decref(*root);
        return false;
    }
    *user = json_string_value(u);
    *pw = json_string_value(p);
    *pwlen = json_string_length(p);
    return true;
}

enum MHD_Result h_auth_register(req_t *rq)
{
    enum MHD_Result res;
    json_t *root;
    const char *user, *pw;
    size_t pwlen;
    if (!credentials_or_reply(rq, &root, &user, &pw, &pwlen, &res)) return res;
    if (!proto_username_valid(user, json_string_length(json_object_get(root, "username")))) {
        json_decref(root);
        return reply_error(rq, 400, "BAD_REQUEST",
                           "username must be 3-32 letters, digits, '_' or '-'");
    }
    if (pwlen < 8 || pwlen > 1024) {
        json_decref(root);
        return reply_error(rq, 400, "BAD_REQUEST", "password must be 8 to 1024 bytes");
    }
    /* a guest that registers keeps its id, so its pixels stay its own */
    rds_session_t s, guest;
    char gsid[65];
    bool from_guest = false;
    memset(&s, 0, sizeof s);
    if (req_session_id(rq, gsid) &&
        rds_session_get(req_rds(rq), gsid, rq->app->cfg->auth.session_ttl_s, &guest) == 0 &&
        guest.guest) {
        from_guest = true;
        memcpy(s.user_id, guest.user_id, sizeof s.user_id);
    } else {
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            json_decref(root);
            return reply_error(rq, 500, "INTERNAL", "random source failed");
        }
        proto_uuid_format(rnd, s.user_id);
    }
    char hash[PWHASH_MAX];
    if (hash_password(pw, pwlen, hash)) {
        json_decref(root);
        return reply_error(rq, 500, "INTERNAL", "password hashing failed");
    }
    bool taken = false;
    int rc = db_user_create(req_db(rq), s.user_id, user, hash, false, &taken);
    snprintf(s.name, sizeof s.name, "%s", user);
    json_decref(root);
    if (rc) {
        metrics_backend_error(METRICS_POSTGRES);
        log_warn("postgres_error", "register: %s", db_errstr(req_db(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "account store unavailable");
    }
    if (taken) return reply_error(rq, 409, "USERNAME_TAKEN", "this username is taken");
    if (from_guest && rds_session_delete(req_rds(rq), gsid, guest.user_id))
        log_warn("redis_error", "guest session not deleted: %s", rds_errstr(req_rds(rq)));
    log_info("registered", "user %s (%s)%s", s.user_id, s.name, from_guest ? " from a guest" : "");
    return reply_new_session(rq, 201, &s);
}

enum MHD_Result h_auth_login(req_t *rq)
{
    enum MHD_Result res;
    json_t *root;
    const char *user, *pw;
    size_t pwlen;
    if (!credentials_or_reply(rq, &root, &user, &pw, &pwlen, &res)) return res;
    db_user_t u;
    int rc = db_user_by_name(req_db(rq), user, &u);
    if (rc && rc != PX_ENOTFOUND) {
        json_decref(root);
        metrics_backend_error(METRICS_POSTGRES);
        log_warn("postgres_error", "login: %s", db_errstr(req_db(rq)));
        return reply_error(rq, 503, "UNAVAILABLE", "account store unavailable");
    }
    /* an unknown name costs the same hash as a wrong password: no timing
     * difference tells which names exist */
    static const char dummy[] =
        "$scrypt$ln=17,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    bool ok = false;
    int vrc = verify_password(pw, pwlen, rc == 0 && u.hash[0] ? u.hash : dummy, &ok);
    json_decref(root);
    if (rc || vrc || !ok || !u.hash[0])
        return reply_error(rq, 401, "INVALID_CREDENTIALS", "wrong username or password");
    if (u.banned) return reply_error(rq, 403, "BANNED", "this account is banned");
    rds_session_t s;
    memset(&s, 0, sizeof s);
    memcpy(s.user_id, u.id, sizeof s.user_id);
    snprintf(s.name, sizeof s.name, "%s", u.username);
    s.admin = u.admin;
    /* a new session id at every login (no fixation); an old guest session
     * of the caller is left alone */
    return reply_new_session(rq, 200, &s);
}

enum MHD_Result h_auth_logout(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t s;
    char sid[65];
    if (!req_session_or_reply(rq, &s, sid, &res)) return res;
    if (rds_session_delete(req_rds(rq), sid, s.user_id)) {
        metrics_backend_error(METRICS_REDIS);
        return reply_error(rq, 503, "UNAVAILABLE", "session store unavailable");
    }
    /* every instance closes the WebSockets opened with this session */
    char tag[17], msg[64];
    rds_session_tag(sid, tag);
    snprintf(msg, sizeof msg, "{\"type\":\"logout\",\"session\":\"%s\"}", tag);
    if (rds_publish_control(req_rds(rq), msg))
        log_warn("redis_error", "logout notice: %s", rds_errstr(req_rds(rq)));
    char cookie[160];
    session_cookie(rq->app->cfg, "", 0, cookie, sizeof cookie);
    return reply_json_ex(rq, 200, json_pack("{s:b}", "ok", 1), "Set-Cookie", cookie);
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
