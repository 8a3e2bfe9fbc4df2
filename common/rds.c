#include "rds.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto.h"
#include "ratelimit.h"
#include "xalloc.h"

struct rds {
    const cfg_t *cfg;
    redisContext *c;
    char errstr[160];
};

/* ------------------------------------------------------------------ script */

/* KEYS: canvas, seq, events, cooldown key, banned set, settings, the
 * client address group's counter.
 * ARGV: uid, offset, colour byte, default cooldown ms, placement id, x, y,
 * colour number, canvas size, placements per cooldown window allowed from
 * one address group (0 = no limit).
 * Also counts placements per colour (hash stats:colors) and the users active
 * per minute (HyperLogLog active:<minute>, kept 6 minutes) for admin stats.
 * Returns {seq, time_ms, cooldown_ms} or {-1, pttl} (cooldown), {-2}
 * (banned), {-3, size} (no canvas of the right size), {-4, pttl} (the
 * address group used its placements of this window). A refusal changes
 * nothing: the address is checked before the user's cooldown is taken, and
 * counted after. One script, so a placement is applied entirely (canvas,
 * seq, log, broadcast) or not at all. */
static const char place_lua[] =
    "local uid = ARGV[1]\n"
    "if redis.call('SISMEMBER', KEYS[5], uid) == 1 then return {-2} end\n"
    "local size = redis.call('STRLEN', KEYS[1])\n"
    "if size ~= tonumber(ARGV[9]) then return {-3, size} end\n"
    "local cd = tonumber(redis.call('HGET', KEYS[6], 'cooldown_ms') or ARGV[4])\n"
    "local cap = tonumber(ARGV[10])\n"
    "if cd > 0 then\n"
    "  if cap > 0 and tonumber(redis.call('GET', KEYS[7]) or '0') >= cap then\n"
    "    return {-4, redis.call('PTTL', KEYS[7])}\n"
    "  end\n"
    "  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', cd) then\n"
    "    return {-1, redis.call('PTTL', KEYS[4])}\n"
    "  end\n"
    "  if cap > 0 and redis.call('INCR', KEYS[7]) == 1 then\n"
    "    redis.call('PEXPIRE', KEYS[7], cd)\n"
    "  end\n"
    "end\n"
    "redis.call('SETRANGE', KEYS[1], ARGV[2], ARGV[3])\n"
    "local seq = redis.call('INCR', KEYS[2])\n"
    "local t = redis.call('TIME')\n"
    "local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local sms = string.format('%d', ms)\n"
    /* the stream entry is one field, e = "<id> <update>", and the update
     * message is "u <update>": a field per value made XADD and the sink's
     * XREADGROUP build and parse 16 strings an entry instead of 4 */
    "local e = seq .. ' ' .. ARGV[6] .. ' ' .. ARGV[7] .. ' ' .. ARGV[8] .. ' ' .. uid"
    " .. ' ' .. sms\n"
    "redis.call('XADD', KEYS[3], '*', 'e', ARGV[5] .. ' ' .. e)\n"
    "redis.call('PUBLISH', 'canvas:updates', 'u ' .. e)\n"
    /* admin statistics: placements per colour, active users per minute (HLL) */
    "redis.call('HINCRBY', 'stats:colors', ARGV[8], 1)\n"
    "local ak = 'active:' .. math.floor(ms / 60000)\n"
    "if redis.call('PFADD', ak, uid) == 1 then redis.call('EXPIRE', ak, 360) end\n"
    "return {seq, ms, cd}\n";

static char place_sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)place_lua, strlen(place_lua), d);
    proto_hex(d, SHA_DIGEST_LENGTH, place_sha);
}

const char *rds_place_script(void) { return place_lua; }

const char *rds_place_sha(void)
{
    pthread_once(&sha_once, compute_sha);
    return place_sha;
}

/* ------------------------------------------------------------------ conn */

rds_t *rds_new(const cfg_t *cfg)
{
    rds_t *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    return r;
}

void rds_free(rds_t *r)
{
    if (!r) return;
    if (r->c) redisFree(r->c);
    free(r);
}

const char *rds_errstr(const rds_t *r) { return r->errstr; }

static void drop(rds_t *r, const char *what)
{
    snprintf(r->errstr, sizeof r->errstr, "redis %s: %s", what,
             r->c && r->c->errstr[0] ? r->c->errstr : "connection failed");
    if (r->c) redisFree(r->c);
    r->c = NULL;
}

int rds_ensure(rds_t *r)
{
    if (r->c) return 0;
    int ms = r->cfg->redis.timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    r->c = redisConnectWithTimeout(r->cfg->redis.host, r->cfg->redis.port, tv);
    if (!r->c || r->c->err) {
        drop(r, "connect");
        return PX_EBACKEND;
    }
    redisSetTimeout(r->c, tv);
    redisEnableKeepAlive(r->c);
    redisReply *rep;
    if (r->cfg->redis.password[0]) {
        rep = redisCommand(r->c, "AUTH %s", r->cfg->redis.password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (rep) freeReplyObject(rep);
            drop(r, "auth");
            return PX_EBACKEND;
        }
        freeReplyObject(rep);
    }
    if (r->cfg->redis.db) {
        rep = redisCommand(r->c, "SELECT %d", r->cfg->redis.db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (rep) freeReplyObject(rep);
            drop(r, "select");
            return PX_EBACKEND;
        }
        freeReplyObject(rep);
    }
    return 0;
}

redisReply *rds_command(rds_t *r, const char *fmt, ...)
{
    if (rds_ensure(r)) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    if (!rep) drop(r, "command");
    return rep;
}

redisReply *rds_commandargv(rds_t *r, int argc, const char **argv, const size_t *lens)
{
    if (rds_ensure(r)) return NULL;
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep) drop(r, "command");
    return rep;
}

int rds_append(rds_t *r, const char *fmt, ...)
{
    if (rds_ensure(r)) return PX_EBACKEND;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(r->c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        drop(r, "append");
        return PX_EBACKEND;
    }
    return 0;
}

redisReply *rds_get_reply(rds_t *r)
{
    if (!r->c) return NULL;
    void *rep = NULL;
    if (redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
        drop(r, "reply");
        return NULL;
    }
    return rep;
}

static int reply_error(rds_t *r, redisReply *rep)
{
    if (!rep) return PX_EBACKEND;
    snprintf(r->errstr, sizeof r->errstr, "redis: %.140s",
             rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    freeReplyObject(rep);
    return PX_EBACKEND;
}

/* ------------------------------------------------------------------ place */

/* a NUL-terminated copy of at most cap - 1 bytes of s */
static void copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* decimal v, NUL-terminated (dst has room for its digits, sign and NUL) */
static void put_num(char *dst, int64_t v) { *buf_fmt_i64(dst, v) = '\0'; }

size_t rds_format_command(char *out, size_t cap, int argc, const char *const *argv,
                          const size_t *lens)
{
    if (argc < 0 || !lens) return 0;
    size_t need = 3 + 20 + 1; /* and the NUL */
    for (int i = 0; i < argc; i++) {
        if (lens[i] > cap) return 0;
        need += 1 + 20 + 2 + lens[i] + 2;
        if (need > cap) return 0;
    }
    char *p = out;
    *p++ = '*';
    p = buf_fmt_i64(p, argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p = buf_fmt_i64(p, (int64_t)lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    *p = '\0';
    return (size_t)(p - out);
}

int rds_placement_id(char id[33])
{
    static _Thread_local unsigned char pool[4096];
    static _Thread_local size_t left;
    if (left < 16) {
        if (RAND_bytes(pool, sizeof pool) != 1) return -1;
        left = sizeof pool;
    }
    proto_hex(pool + sizeof pool - left, 16, id);
    left -= 16;
    return 0;
}

/* Per placement, so without printf. */
void rds_place_args(const rds_place_req_t *q, rds_place_args_t *a)
{
    a->byte = (unsigned char)q->color;
    put_num(a->off, (int64_t)q->y * q->width + q->x);
    put_num(a->cd, q->cooldown_ms);
    put_num(a->xs, q->x);
    put_num(a->ys, q->y);
    put_num(a->cs, q->color);
    put_num(a->size, (int64_t)q->width * q->height);
    static const char pfx[] = "cooldown:user:", ipfx[] = "cooldown:ip:";
    memcpy(a->cdkey, pfx, sizeof pfx - 1);
    copy_str(a->cdkey + sizeof pfx - 1, sizeof a->cdkey - (sizeof pfx - 1), q->user_id);
    memcpy(a->ipkey, ipfx, sizeof ipfx - 1);
    copy_str(a->ipkey + sizeof ipfx - 1, sizeof a->ipkey - (sizeof ipfx - 1),
             q->ip_group ? q->ip_group : "");
    put_num(a->ipcap, q->ip_group && q->ip_group[0] ? q->ip_cap : 0);
    copy_str(a->uid, sizeof a->uid, q->user_id);
    copy_str(a->id, sizeof a->id, q->id);
    const char *argv[RDS_PLACE_ARGC] = {
        "EVALSHA", rds_place_sha(), "7", RDS_KEY_CANVAS, RDS_KEY_SEQ, RDS_KEY_EVENTS, a->cdkey,
        RDS_KEY_BANNED, RDS_KEY_SETTINGS, a->ipkey, a->uid, a->off, (const char *)&a->byte, a->cd,
        a->id, a->xs, a->ys, a->cs, a->size, a->ipcap};
    for (int i = 0; i < RDS_PLACE_ARGC; i++) {
        a->argv[i] = argv[i];
        a->lens[i] = i == 12 ? 1 : strlen(argv[i]); /* the colour byte may be 0 */
    }
}

void rds_place_args_eval(rds_place_args_t *a)
{
    a->argv[0] = "EVAL";
    a->argv[1] = place_lua;
    a->lens[0] = 4;
    a->lens[1] = strlen(place_lua);
}

bool rds_reply_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8);
}

int rds_place_result(const redisReply *rep, rds_place_res_t *res, char *err, size_t errlen)
{
    if (!rep) {
        snprintf(err, errlen, "redis: no reply (connection lost)");
        return PX_EBACKEND;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "redis: %.140s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        return PX_EBACKEND;
    }
    long long v0 = rep->element[0]->integer;
    long long v1 = rep->elements > 1 && rep->element[1]->type == REDIS_REPLY_INTEGER
                       ? rep->element[1]->integer
                       : 0;
    long long v2 = rep->elements > 2 && rep->element[2]->type == REDIS_REPLY_INTEGER
                       ? rep->element[2]->integer
                       : 0;
    res->ip_limited = v0 == -4;
    switch (v0) {
    case -1:
    case -4: res->remaining_ms = v1 > 0 ? v1 : 1; return PX_ECOOLDOWN;
    case -2: return PX_EBANNED;
    case -3:
        snprintf(err, errlen, "redis holds no canvas of the configured size (length %lld)", v1);
        return PX_ENOCANVAS;
    default: break;
    }
    if (v0 <= 0) {
        snprintf(err, errlen, "placement script returned %lld", v0);
        return PX_EBACKEND;
    }
    res->seq = v0;
    res->time_ms = v1;
    res->cooldown_ms = v2;
    res->remaining_ms = 0;
    return 0;
}

void rds_cooldown_message(const rds_place_res_t *res, char *msg, size_t n)
{
    snprintf(msg, n,
             res->ip_limited ? "too many placements from your network address: wait %.3f s"
                             : "cooldown active: wait %.3f s",
             (double)res->remaining_ms / 1000.0);
}

int rds_place(rds_t *r, const rds_place_req_t *q, rds_place_res_t *res)
{
    rds_place_args_t a;
    rds_place_args(q, &a);
    redisReply *rep = rds_commandargv(r, RDS_PLACE_ARGC, a.argv, a.lens);
    if (rds_reply_noscript(rep)) {
        freeReplyObject(rep);
        rds_place_args_eval(&a);
        rep = rds_commandargv(r, RDS_PLACE_ARGC, a.argv, a.lens);
    }
    if (!rep) return PX_EBACKEND; /* errstr set by rds_commandargv */
    int rc = rds_place_result(rep, res, r->errstr, sizeof r->errstr);
    freeReplyObject(rep);
    return rc;
}

/* ------------------------------------------------------------------ canvas */

int rds_canvas_get(rds_t *r, uint8_t **data, size_t *len, int64_t *seq)
{
    *data = NULL;
    if (rds_append(r, "MULTI") || rds_append(r, "GET %s", RDS_KEY_CANVAS) ||
        rds_append(r, "GET %s", RDS_KEY_SEQ) || rds_append(r, "EXEC"))
        return PX_EBACKEND;
    redisReply *rep = NULL;
    for (int i = 0; i < 4; i++) {
        if (rep) freeReplyObject(rep);
        rep = rds_get_reply(r);
        if (!rep) return PX_EBACKEND;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) return reply_error(r, rep);
    redisReply *c = rep->element[0], *s = rep->element[1];
    if (c->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return PX_ENOCANVAS;
    }
    if (c->type != REDIS_REPLY_STRING) return reply_error(r, rep);
    int64_t sq = 0;
    if (s->type == REDIS_REPLY_STRING && !proto_parse_i64(s->str, s->len, &sq))
        return reply_error(r, rep);
    *data = xmalloc(c->len ? c->len : 1);
    memcpy(*data, c->str, c->len);
    *len = c->len;
    *seq = sq;
    freeReplyObject(rep);
    return 0;
}

static const char install_lua[] =
    "local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
    "local cur = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "if cur < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end\n"
    "if ok then return 1 else return 0 end\n";

int rds_canvas_install(rds_t *r, const uint8_t *data, size_t len, int64_t seq, bool *installed)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)seq);
    const char *argv[] = {"EVAL", install_lua, "2", RDS_KEY_CANVAS, RDS_KEY_SEQ,
                          (const char *)data, s};
    size_t lens[] = {4, strlen(install_lua), 1, strlen(RDS_KEY_CANVAS), strlen(RDS_KEY_SEQ),
                     len, strlen(s)};
    redisReply *rep = rds_commandargv(r, 7, argv, lens);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    *installed = rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

static const char floor_lua[] =
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local f = tonumber(ARGV[1])\n"
    "if cur < f then redis.call('SET', KEYS[1], ARGV[1]); return f end\n"
    "return cur\n";

int rds_seq_floor(rds_t *r, int64_t floor, int64_t *seq)
{
    redisReply *rep =
        rds_command(r, "EVAL %s 1 %s %lld", floor_lua, RDS_KEY_SEQ, (long long)floor);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    *seq = rep->integer;
    freeReplyObject(rep);
    return 0;
}

int rds_ping(rds_t *r)
{
    redisReply *rep = rds_command(r, "PING");
    if (!rep || rep->type == REDIS_REPLY_ERROR) return reply_error(r, rep);
    freeReplyObject(rep);
    return 0;
}

/* ------------------------------------------------------------------ sessions */

int rds_session_put(rds_t *r, const char *sid, const rds_session_t *s, int ttl_s)
{
    /* user:sessions:<uid> indexes a user's sessions so a ban can revoke them all */
    if (rds_append(r, "MULTI") ||
        rds_append(r, "HSET session:%s uid %s name %s guest %d admin %d", sid, s->user_id,
                   s->name, s->guest ? 1 : 0, s->admin ? 1 : 0) ||
        rds_append(r, "EXPIRE session:%s %d", sid, ttl_s) ||
        rds_append(r, "SADD user:sessions:%s %s", s->user_id, sid) ||
        rds_append(r, "EXPIRE user:sessions:%s %d", s->user_id, ttl_s) ||
        rds_append(r, "EXEC"))
        return PX_EBACKEND;
    int rc = 0;
    for (int i = 0; i < 6; i++) {
        redisReply *rep = rds_get_reply(r);
        if (!rep) return PX_EBACKEND;
        if (rep->type == REDIS_REPLY_ERROR) rc = reply_error(r, rep);
        else freeReplyObject(rep);
    }
    return rc;
}

int rds_session_delete(rds_t *r, const char *sid, const char *user_id)
{
    redisReply *rep = user_id ? rds_command(r, "SREM user:sessions:%s %s", user_id, sid) : NULL;
    if (user_id && !rep) return PX_EBACKEND;
    if (rep) freeReplyObject(rep);
    rep = rds_command(r, "DEL session:%s", sid);
    if (!rep) return PX_EBACKEND;
    freeReplyObject(rep);
    return 0;
}

/* Deletes every session of a user in one script (atomic with the index). */
static const char revoke_lua[] =
    "local s = redis.call('SMEMBERS', KEYS[1])\n"
    "for _, sid in ipairs(s) do redis.call('DEL', 'session:' .. sid) end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return #s\n";

int rds_user_sessions_revoke(rds_t *r, const char *user_id, int64_t *revoked)
{
    redisReply *rep = rds_command(r, "EVAL %s 1 user:sessions:%s", revoke_lua, user_id);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    if (revoked) *revoked = rep->integer;
    freeReplyObject(rep);
    return 0;
}

void rds_session_tag(const char *sid, char out[17])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)sid, strlen(sid), d);
    proto_hex(d, 8, out);
}

int rds_publish_control(rds_t *r, const char *json)
{
    size_t n = strlen(json);
    char *msg = xmalloc(n + 3);
    memcpy(msg, "c ", 2);
    memcpy(msg + 2, json, n + 1);
    redisReply *rep = rds_command(r, "PUBLISH %s %s", RDS_CHANNEL, msg);
    free(msg);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    freeReplyObject(rep);
    return 0;
}

int rds_session_get(rds_t *r, const char *sid, int ttl_s, rds_session_t *out)
{
    if (rds_append(r, "HGETALL session:%s", sid) ||
        rds_append(r, "EXPIRE session:%s %d", sid, ttl_s))
        return PX_EBACKEND;
    redisReply *h = rds_get_reply(r);
    if (!h) return PX_EBACKEND;
    redisReply *e = rds_get_reply(r);
    if (!e) {
        freeReplyObject(h);
        return PX_EBACKEND;
    }
    freeReplyObject(e);
    if (h->type != REDIS_REPLY_ARRAY) return reply_error(r, h);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = h->element[i]->str, *v = h->element[i + 1]->str;
        if (!k || !v) continue;
        if (!strcmp(k, "uid")) snprintf(out->user_id, sizeof out->user_id, "%s", v);
        else if (!strcmp(k, "name")) snprintf(out->name, sizeof out->name, "%s", v);
        else if (!strcmp(k, "guest")) out->guest = v[0] == '1';
        else if (!strcmp(k, "admin")) out->admin = v[0] == '1';
    }
    freeReplyObject(h);
    return proto_uuid_valid(out->user_id) ? 0 : PX_ENOTFOUND;
}

int rds_cooldown_remaining(rds_t *r, const char *user_id, int64_t *ms)
{
    redisReply *rep = rds_command(r, "PTTL cooldown:user:%s", user_id);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    *ms = rep->integer > 0 ? rep->integer : 0;
    freeReplyObject(rep);
    return 0;
}

int rds_rate_limit(rds_t *r, const char *name, int window_s, int max, int64_t now_ms,
                   bool *allowed, int64_t *retry_s)
{
    *allowed = true;
    *retry_s = 0;
    int64_t b = ratelimit_bucket(now_ms, window_s);
    char cur[200], prev[200];
    snprintf(cur, sizeof cur, "rate:%s:%lld", name, (long long)b);
    snprintf(prev, sizeof prev, "rate:%s:%lld", name, (long long)(b - 1));
    /* one round trip; a bucket lives while it can still be the previous one */
    if (rds_append(r, "INCR %s", cur) || rds_append(r, "EXPIRE %s %d NX", cur, 2 * window_s + 1) ||
        rds_append(r, "GET %s", prev))
        return PX_EBACKEND;
    redisReply *rep[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        rep[i] = rds_get_reply(r);
        if (!rep[i]) rc = PX_EBACKEND;
        if (rc) break;
    }
    if (!rc && (rep[0]->type != REDIS_REPLY_INTEGER ||
                (rep[2]->type != REDIS_REPLY_STRING && rep[2]->type != REDIS_REPLY_NIL))) {
        snprintf(r->errstr, sizeof r->errstr, "redis: rate counter failed");
        rc = PX_EBACKEND;
    }
    int64_t n = 0, before = 0;
    if (!rc) {
        n = rep[0]->integer;
        if (rep[2]->type == REDIS_REPLY_STRING) before = strtoll(rep[2]->str, NULL, 10);
    }
    for (int i = 0; i < 3; i++)
        if (rep[i]) freeReplyObject(rep[i]);
    if (rc) return rc;
    *allowed = ratelimit_allow(n, before, max, now_ms, window_s, retry_s);
    if (!*allowed) {
        /* a refused hit does not count: a client that retries after
         * Retry-After is let in, however often it was refused before (if
         * this fails, the refusal stands and the hit counts) */
        redisReply *d = rds_command(r, "DECR %s", cur);
        if (d) freeReplyObject(d);
    }
    return 0;
}

/* ------------------------------------------------------------------ admin */

/* An integer string key (0 when unset). */
static int get_i64(rds_t *r, const char *key, int64_t *v)
{
    redisReply *rep = rds_command(r, "GET %s", key);
    if (!rep) return PX_EBACKEND;
    *v = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    return 0;
}

int rds_ban(rds_t *r, const char *user_id, bool ban)
{
    redisReply *rep = rds_command(r, ban ? "SADD %s %s" : "SREM %s %s", RDS_KEY_BANNED, user_id);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    freeReplyObject(rep);
    return 0;
}

int rds_cooldown_set(rds_t *r, int64_t ms)
{
    redisReply *rep = rds_command(r, "HSET %s cooldown_ms %lld", RDS_KEY_SETTINGS, (long long)ms);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    freeReplyObject(rep);
    return 0;
}

/* Returns {old seq, old canvas, new seq}; the reset notice travels on the
 * updates channel, in order with the updates before and after it. */
static const char reset_lua[] =
    "local old = redis.call('GET', KEYS[1])\n"
    "if not old or #old ~= tonumber(ARGV[1]) then return {-3} end\n"
    "local before = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "redis.call('SET', KEYS[1], string.rep(string.char(0), tonumber(ARGV[1])))\n"
    "local seq = redis.call('INCR', KEYS[2])\n"
    "redis.call('SET', KEYS[3], seq)\n"
    "redis.call('PUBLISH', 'canvas:updates', 'c {\"type\":\"reset\",\"seq\":' .. seq .. '}')\n"
    "return {before, old, seq}\n";

int rds_canvas_reset(rds_t *r, size_t size, uint8_t **old, int64_t *old_seq, int64_t *new_seq)
{
    *old = NULL;
    redisReply *rep = rds_command(r, "EVAL %s 3 %s %s %s %lld", reset_lua, RDS_KEY_CANVAS,
                                  RDS_KEY_SEQ, RDS_KEY_RESET_SEQ, (long long)size);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) return reply_error(r, rep);
    if (rep->elements != 3 || rep->element[1]->type != REDIS_REPLY_STRING ||
        rep->element[1]->len != size) {
        freeReplyObject(rep);
        snprintf(r->errstr, sizeof r->errstr, "redis holds no canvas of the configured size");
        return PX_ENOCANVAS;
    }
    *old_seq = rep->element[0]->integer;
    *new_seq = rep->element[2]->integer;
    *old = xmalloc(size);
    memcpy(*old, rep->element[1]->str, size);
    freeReplyObject(rep);
    return 0;
}

int rds_reset_seq(rds_t *r, int64_t *seq) { return get_i64(r, RDS_KEY_RESET_SEQ, seq); }

/* Each pixel: x, y, expected current colour, colour to restore, event id.
 * A pixel is restored only if it still shows the expected colour, as a
 * placement by the admin: canvas, seq, stream, broadcast, like the
 * placement script. */
static const char restore_lua[] =
    "local uid = ARGV[1]\n"
    "local w = tonumber(ARGV[2])\n"
    "local n = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local sms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
    "local done = 0\n"
    "for i = 0, n - 1 do\n"
    "  local b = 4 + i * 5\n"
    "  local x, y = ARGV[b], ARGV[b + 1]\n"
    "  local cur, to = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])\n"
    "  local off = tonumber(y) * w + tonumber(x)\n"
    "  local c = string.byte(redis.call('GETRANGE', KEYS[1], off, off))\n"
    "  if c == cur and cur ~= to then\n"
    "    redis.call('SETRANGE', KEYS[1], off, string.char(to))\n"
    "    local seq = redis.call('INCR', KEYS[2])\n"
    "    local e = seq .. ' ' .. x .. ' ' .. y .. ' ' .. ARGV[b + 3] .. ' ' .. uid .. ' ' .. sms\n"
    "    redis.call('XADD', KEYS[3], '*', 'e', ARGV[b + 4] .. ' ' .. e)\n"
    "    redis.call('PUBLISH', 'canvas:updates', 'u ' .. e)\n"
    "    redis.call('HINCRBY', 'stats:colors', ARGV[b + 3], 1)\n"
    "    done = done + 1\n"
    "  end\n"
    "end\n"
    "return done\n";

int rds_restore(rds_t *r, const char *admin_id, int width, const rds_restore_t *px, size_t n,
                int64_t *restored)
{
    *restored = 0;
    for (size_t start = 0; start < n; start += 1000) { /* bounded scripts */
        size_t k = n - start < 1000 ? n - start : 1000;
        size_t argc = 9 + 5 * k;
        const char **argv = xcalloc(argc, sizeof *argv);
        size_t *lens = xcalloc(argc, sizeof *lens);
        char (*num)[16] = xcalloc(4 * k + 2, sizeof *num);
        argv[0] = "EVAL";
        argv[1] = restore_lua;
        argv[2] = "3";
        argv[3] = RDS_KEY_CANVAS;
        argv[4] = RDS_KEY_SEQ;
        argv[5] = RDS_KEY_EVENTS;
        argv[6] = admin_id;
        snprintf(num[0], 16, "%d", width);
        snprintf(num[1], 16, "%zu", k);
        argv[7] = num[0];
        argv[8] = num[1];
        /* argv[6..8] are ARGV[1..3]; pixel i's five values follow */
        for (size_t i = 0; i < k; i++) {
            const rds_restore_t *p = &px[start + i];
            char *a = num[2 + 4 * i];
            snprintf(a, 16, "%d", p->x);
            snprintf(a + 16, 16, "%d", p->y);
            snprintf(a + 32, 16, "%d", p->cur);
            snprintf(a + 48, 16, "%d", p->to);
            argv[9 + 5 * i] = a;
            argv[10 + 5 * i] = a + 16;
            argv[11 + 5 * i] = a + 32;
            argv[12 + 5 * i] = a + 48;
            argv[13 + 5 * i] = p->id;
        }

        for (size_t i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        redisReply *rep = rds_commandargv(r, (int)argc, argv, lens);
        free(argv);
        free(lens);
        free(num);
        if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
        *restored += rep->integer;
        freeReplyObject(rep);
    }
    return 0;
}

/* ------------------------------------------------------------------ stats */

int rds_stats_colors(rds_t *r, int64_t *counts, int n)
{
    for (int i = 0; i < n; i++) counts[i] = 0;
    redisReply *rep = rds_command(r, "HGETALL stats:colors");
    if (!rep || rep->type != REDIS_REPLY_ARRAY) return reply_error(r, rep);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        int c = atoi(rep->element[i]->str ? rep->element[i]->str : "-1");
        if (c >= 0 && c < n && rep->element[i + 1]->str)
            counts[c] = strtoll(rep->element[i + 1]->str, NULL, 10);
    }
    freeReplyObject(rep);
    return 0;
}

int rds_active_users(rds_t *r, int64_t now_ms, int minutes, int64_t *n)
{
    char keys[8][32];
    const char *argv[9] = {"PFCOUNT"};
    size_t lens[9] = {7};
    if (minutes > 8) minutes = 8;
    for (int i = 0; i < minutes; i++) {
        snprintf(keys[i], sizeof keys[i], "active:%lld", (long long)(now_ms / 60000 - i));
        argv[1 + i] = keys[i];
        lens[1 + i] = strlen(keys[i]);
    }
    redisReply *rep = rds_commandargv(r, 1 + minutes, argv, lens);
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return reply_error(r, rep);
    *n = rep->integer;
    freeReplyObject(rep);
    return 0;
}

int rds_sink_lag(rds_t *r, int64_t now_ms, int64_t *lag_ms, int64_t *pending)
{
    /* the oldest entry not yet stored: the oldest pending one, or the first
     * one after the group's last delivered id */
    *lag_ms = 0;
    *pending = 0;
    int64_t oldest = 0;
    redisReply *rep = rds_command(r, "XPENDING %s %s", RDS_KEY_EVENTS, RDS_GROUP);
    if (!rep) return PX_EBACKEND;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER) {
        *pending = rep->element[0]->integer;
        if (*pending > 0 && rep->element[1]->str) oldest = strtoll(rep->element[1]->str, NULL, 10);
    }
    freeReplyObject(rep);
    rep = rds_command(r, "XINFO GROUPS %s", RDS_KEY_EVENTS);
    if (!rep) return PX_EBACKEND;
    char last[64] = "";
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t g = 0; g < rep->elements; g++) {
            redisReply *grp = rep->element[g];
            if (grp->type != REDIS_REPLY_ARRAY) continue;
            bool ours = false;
            const char *ld = NULL;
            for (size_t i = 0; i + 1 < grp->elements; i += 2) {
                const char *k = grp->element[i]->str;
                redisReply *v = grp->element[i + 1];
                if (!k) continue;
                if (!strcmp(k, "name") && v->str && !strcmp(v->str, RDS_GROUP)) ours = true;
                if (!strcmp(k, "last-delivered-id") && v->str) ld = v->str;
            }
            if (ours && ld) snprintf(last, sizeof last, "%s", ld);
        }
    }
    freeReplyObject(rep);
    if (last[0]) {
        char from[70];
        snprintf(from, sizeof from, "(%s", last);
        rep = rds_command(r, "XRANGE %s %s + COUNT 1", RDS_KEY_EVENTS, from);
        if (!rep) return PX_EBACKEND;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements >= 1 &&
            rep->element[0]->element[0]->str) {
            int64_t t = strtoll(rep->element[0]->element[0]->str, NULL, 10);
            if (!oldest || t < oldest) oldest = t;
        }
        freeReplyObject(rep);
    }
    if (oldest) *lag_ms = now_ms > oldest ? now_ms - oldest : 0;
    return 0;
}

int rds_instances(rds_t *r, int64_t now_ms, rds_instance_fn fn, void *arg)
{
    redisReply *rep = rds_command(r, "HGETALL %s", RDS_KEY_INSTANCES);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) return reply_error(r, rep);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *name = rep->element[i]->str, *v = rep->element[i + 1]->str;
        long long conns = 0, ms = 0;
        double rate = 0;
        if (!name || !v || sscanf(v, "%lld %lld %lf", &conns, &ms, &rate) != 3) continue;
        if (now_ms - ms > 10000) continue; /* gone: no heartbeat for 10 s */
        fn(arg, name, conns, rate);
    }
    freeReplyObject(rep);
    return 0;
}

int rds_time_ms(rds_t *r, int64_t *ms)
{
    redisReply *rep = rds_command(r, "TIME");
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) return reply_error(r, rep);
    *ms = strtoll(rep->element[0]->str, NULL, 10) * 1000 + strtoll(rep->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(rep);
    return 0;
}

int rds_seq_get(rds_t *r, int64_t *seq) { return get_i64(r, RDS_KEY_SEQ, seq); }

int rds_cooldown_ms(rds_t *r, int64_t def_ms, int64_t *ms)
{
    redisReply *rep = rds_command(r, "HGET %s cooldown_ms", RDS_KEY_SETTINGS);
    if (!rep) return PX_EBACKEND;
    *ms = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : def_ms;
    freeReplyObject(rep);
    return 0;
}
