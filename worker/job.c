#include "job.h"

#include "proto.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "snap.h"
#include "xalloc.h"

struct job_env {
    const cfg_t *cfg;
    redisContext *redis; /* NULL until first use and after a failure */
    PGconn *pg;          /* likewise */
};

/* ---------------------------------------------------------------------------
 * Connections (TODO(worker): rds_ / db_ once they exist) */

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* Simple command on a fresh connection; false (with err) when it fails. */
static bool redis_simple(redisContext *c, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        snprintf(err, errlen, "redis: %s", c->errstr);
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok) snprintf(err, errlen, "redis: %s", r->str);
    freeReplyObject(r);
    return ok;
}

static redisContext *redis_open(const cfg_t *cfg, char *err, size_t errlen)
{
    struct timeval tv = ms_tv(cfg->redis.timeout_ms);
    redisContext *c = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, tv);
    if (!c) {
        snprintf(err, errlen, "redis: cannot allocate a context");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "redis %s:%d: %s", cfg->redis.host, cfg->redis.port, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK ||
        (cfg->redis.password[0] && !redis_simple(c, err, errlen, "AUTH %s", cfg->redis.password)) ||
        (cfg->redis.db != 0 && !redis_simple(c, err, errlen, "SELECT %d", cfg->redis.db))) {
        if (!err[0]) snprintf(err, errlen, "redis: cannot set the timeout");
        redisFree(c);
        return NULL;
    }
    return c;
}

static PGconn *pg_open(const cfg_t *cfg, char *err, size_t errlen)
{
    /* connect_timeout goes first so that one given in the URL wins. */
    char ct[16], st[48];
    snprintf(ct, sizeof ct, "%d", (cfg->postgres.timeout_ms + 999) / 1000);
    const char *keys[] = {"connect_timeout", "dbname", "application_name", NULL};
    const char *vals[] = {ct, cfg->postgres.url, "place-worker", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        const char *m = pg ? PQerrorMessage(pg) : "out of memory";
        snprintf(err, errlen, "postgres: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(pg);
        return NULL;
    }
    snprintf(st, sizeof st, "SET statement_timeout = %d", cfg->postgres.timeout_ms);
    PGresult *r = PQexec(pg, st);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        const char *m = PQerrorMessage(pg);
        snprintf(err, errlen, "postgres: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Opens whatever is missing. false (with err) if either cannot be had. */
static bool env_ready(job_env_t *env, char *err, size_t errlen)
{
    if (!env->redis && !(env->redis = redis_open(env->cfg, err, errlen))) return false;
    if (!env->pg && !(env->pg = pg_open(env->cfg, err, errlen))) return false;
    return true;
}

/* After a failed job: drop connections that are no longer usable. */
static void env_check(job_env_t *env)
{
    if (env->redis && env->redis->err) {
        redisFree(env->redis);
        env->redis = NULL;
    }
    if (env->pg && PQstatus(env->pg) != CONNECTION_OK) {
        PQfinish(env->pg);
        env->pg = NULL;
    }
}

job_env_t *job_env_new(const cfg_t *cfg)
{
    job_env_t *env = xcalloc(1, sizeof *env);
    env->cfg = cfg;
    return env;
}

void job_env_free(job_env_t *env)
{
    if (!env) return;
    if (env->redis) redisFree(env->redis);
    PQfinish(env->pg);
    free(env);
}

/* ---------------------------------------------------------------------------
 * Ids and messages */

int job_new_id(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return PX_EBACKEND;
    proto_uuid_format(b, out);
    return 0;
}

char *job_encode(const char *type, const char *id)
{
    json_t *j = json_pack("{s:s, s:s}", "type", type, "id", id);
    if (!j) abort(); /* only fails on OOM or non-UTF-8 arguments: a bug */
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s) abort();
    char *copy = xstrdup(s); /* json_dumps memory belongs to jansson's allocator */
    free(s);
    return copy;
}


/* ---------------------------------------------------------------------------
 * Dispatch */

static job_verdict_t run_snapshot(job_env_t *env, const char *id, const char *fields,
                                  long delivery_count)
{
    char err[512] = "";
    if (!env_ready(env, err, sizeof err)) {
        log_fields(LOG_WARN, "job_retry", fields, "snapshot: %s (delivery %ld)", err,
                   delivery_count + 1);
        return JOB_RETRY;
    }
    snap_result_t res;
    int rc = snap_run(env->cfg, env->redis, env->pg, id, &res, err, sizeof err);
    if (rc != 0) env_check(env);
    switch (rc) {
    case 0:
        if (res.existed)
            log_fields(LOG_INFO, "job_done", fields, "snapshot already stored (redelivery)");
        else
            log_fields(LOG_INFO, "job_done", fields,
                       "snapshot seq %lld: png %zu bytes, canvas_z %zu bytes; read %d ms, "
                       "encode %d ms, store %d ms%s",
                       (long long)res.seq, res.png_bytes, res.canvas_z_bytes, res.read_ms,
                       res.encode_ms, res.store_ms, res.inserted ? "" : " (row already present)");
        return JOB_ACK;
    case PX_ENOCANVAS:
        /* Nothing to snapshot yet (fresh deployment): the job is complete. */
        log_fields(LOG_WARN, "job_done", fields, "snapshot skipped: %s", err);
        return JOB_ACK;
    case PX_EPROTO:
        log_fields(LOG_ERROR, "job_rejected", fields, "snapshot: %s", err);
        return JOB_REJECT;
    default:
        log_fields(LOG_WARN, "job_retry", fields, "snapshot: %s (%s; delivery %ld)", err,
                   px_strerror(rc), delivery_count + 1);
        return JOB_RETRY;
    }
}

job_verdict_t job_run(job_env_t *env, const uint8_t *body, size_t len, long delivery_count)
{
    json_error_t jerr;
    json_t *msg = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg) {
        log_error("job_rejected", "bad job JSON (%zu bytes): %s at line %d column %d", len,
                  jerr.text, jerr.line, jerr.column);
        return JOB_REJECT;
    }
    job_verdict_t v = JOB_REJECT;
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *id = json_string_value(json_object_get(msg, "id"));
    if (!json_is_object(msg) || !type) {
        log_error("job_rejected", "job without a string \"type\"");
        goto out;
    }
    if (!id || !proto_uuid_valid(id)) {
        log_error("job_rejected", "%.32s job without a valid uuid \"id\"", type);
        goto out;
    }
    char fields[64];
    snprintf(fields, sizeof fields, "\"job\":\"%s\"", id);
    if (strcmp(type, "snapshot") == 0) {
        v = run_snapshot(env, id, fields, delivery_count);
    } else {
        log_fields(LOG_ERROR, "job_rejected", fields, "unknown job type \"%.32s\"", type);
    }
out:
    json_decref(msg);
    return v;
}
