#include "job.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_jobs.h"
#include "log.h"
#include "maint.h"
#include "mq.h"
#include "proto.h"
#include "rds.h"
#include "snap.h"
#include "timelapse.h"
#include "tl.h"
#include "xalloc.h"

#define RETRY_DELAY_MAX_MS 16000

/* A job asked to stop half-way (tick returned non-zero). */
#define JOB_STOPPED 1

/* Internal verdict: a backend became unreachable during the run; that is
 * not the job's fault, so the attempt is not counted: wait until the
 * backends answer again and run it again on the same delivery. */
#define JOB_WAIT ((job_verdict_t)100)
#define WAIT_STEP_MS 250
#define WAIT_MAX_MS 5000

struct job_env {
    const cfg_t *cfg;
    rds_t *rds;
    db_t *db;
    job_tick_fn tick;
    void *tick_arg;
};

job_env_t *job_env_new(const cfg_t *cfg, job_tick_fn tick, void *tick_arg)
{
    job_env_t *env = xcalloc(1, sizeof *env);
    env->cfg = cfg;
    env->rds = rds_new(cfg);
    env->db = db_new(cfg->postgres.url, cfg->postgres.timeout_ms);
    env->tick = tick;
    env->tick_arg = tick_arg;
    return env;
}

void job_env_free(job_env_t *env)
{
    if (!env) return;
    rds_free(env->rds);
    db_free(env->db);
    free(env);
}

int job_retry_delay_ms(const cfg_t *cfg, long attempt)
{
    long n = attempt < 1 ? 0 : attempt - 1;
    if (n > 20) n = 20;
    long long d = (long long)cfg->worker.retry_base_ms << n;
    return d > RETRY_DELAY_MAX_MS ? RETRY_DELAY_MAX_MS : (int)d;
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
 * Running one job: each runner returns 0 (done and recorded), JOB_STOPPED,
 * or a px code with the reason in err; `permanent` tells whether trying
 * again could ever help. */

typedef struct run_ctx {
    job_env_t *env;
    const db_job_t *job;
    const char *fields; /* log fields: "job":"<id>" */
    char err[512];
    bool permanent;
} run_ctx_t;

static int tick(run_ctx_t *c)
{
    return c->env->tick && c->env->tick(c->env->tick_arg) ? JOB_STOPPED : 0;
}

static int run_snapshot(run_ctx_t *c)
{
    snap_result_t res;
    int rc =
        snap_run(c->env->cfg, c->env->rds, c->env->db, c->job->id, &res, c->err, sizeof c->err);
    switch (rc) {
    case 0:
        if (res.existed)
            log_fields(LOG_INFO, "job_done", c->fields, "snapshot %lld already stored",
                       (long long)res.id);
        else
            log_fields(LOG_INFO, "job_done", c->fields,
                       "snapshot %lld seq %lld: png %zu bytes, canvas_z %zu bytes; read %d ms, "
                       "encode %d ms, store %d ms",
                       (long long)res.id, (long long)res.seq, res.png_bytes, res.canvas_z_bytes,
                       res.read_ms, res.encode_ms, res.store_ms);
        return 0;
    case PX_ENOCANVAS:
        /* Nothing to snapshot yet (fresh deployment): done, without a snapshot. */
        if (db_job_done(c->env->db, c->job->id, "{\"snapshotId\":null}") != 0) {
            snprintf(c->err, sizeof c->err, "%s", db_errstr(c->env->db));
            return PX_EBACKEND;
        }
        log_fields(LOG_WARN, "job_done", c->fields, "snapshot skipped: %s", c->err);
        return 0;
    case PX_EPROTO:
        c->permanent = true;
        return rc;
    default:
        return rc;
    }
}

typedef struct tl_tick {
    run_ctx_t *c;
    int64_t last_ms;
} tl_tick_t;

static int tl_progress(void *arg, double done)
{
    tl_tick_t *t = arg;
    if (tick(t->c)) return JOB_STOPPED;
    /* progress is advisory: a failed update only shows an older value */
    if (db_job_progress(t->c->env->db, t->c->job->id, done * 0.99) != 0)
        log_fields(LOG_WARN, "job_progress", t->c->fields, "%s", db_errstr(t->c->env->db));
    return 0;
}

static int run_timelapse(run_ctx_t *c)
{
    const cfg_t *cfg = c->env->cfg;
    timelapse_limits_t lim = timelapse_limits(cfg, 0);
    timelapse_params_t p;
    int rc = timelapse_params_decode(c->job->params, strlen(c->job->params), &lim, &p, c->err,
                                     sizeof c->err);
    if (rc) {
        c->permanent = true; /* e.g. the canvas size changed since the request */
        return rc;
    }
    tl_tick_t t = {c, 0};
    tl_result_t res;
    rc = tl_run(cfg, c->env->db, c->job->id, &p, tl_progress, &t, &res, c->err, sizeof c->err);
    if (rc == JOB_STOPPED) return rc;
    if (rc == 0) {
        double secs = res.render_ms > 0 ? res.render_ms / 1000.0 : 0.001;
        log_fields(LOG_INFO, "job_done", c->fields,
                   "timelapse %d frames of %dx%d from snapshot seq %lld + %lld events: apng %zu "
                   "bytes; render %d ms (%.1f frames/s), store %d ms",
                   p.frames, res.width, res.height, (long long)res.base_seq, (long long)res.events,
                   res.apng_bytes, res.render_ms, p.frames / secs, res.store_ms);
        return 0;
    }
    c->permanent = rc == PX_ENOTFOUND || rc == PX_EPROTO || rc == -ENOMEM || rc == PX_ETOOBIG;
    return rc;
}

static int run_retention(run_ctx_t *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    maint_retention_result_t res;
    int rc = maint_retention(c->env->cfg, c->env->db, c->job->id, now, &res, c->err, sizeof c->err);
    if (rc == 0) {
        char *names = json_dumps(res.partitions, JSON_COMPACT);
        log_fields(LOG_INFO, "job_done", c->fields,
                   "retention: dropped partitions %s, deleted %lld snapshot(s) and %lld "
                   "finished job(s)",
                   names ? names : "?", (long long)res.snapshots_deleted,
                   (long long)res.jobs_deleted);
        free(names);
    }
    maint_retention_result_deinit(&res);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Backends */

static bool needs_redis(const char *kind)
{
    return !strcmp(kind, "snapshot");
}

static bool backends_up(job_env_t *env, const char *kind)
{
    return db_ping(env->db) == 0 && (!needs_redis(kind) || rds_ping(env->rds) == 0);
}

/* Waits until PostgreSQL (and Redis, when the kind reads it) answer, calling
 * the tick between looks. false when the tick asked to stop. */
static bool wait_backends(job_env_t *env, const char *kind, const char *fields)
{
    int delay = WAIT_STEP_MS;
    bool logged = false;
    while (!backends_up(env, kind)) {
        if (!logged) {
            log_fields(LOG_WARN, "job_waiting", fields, "%s waits for its backends: %s%s%s", kind,
                       db_errstr(env->db), needs_redis(kind) ? "; " : "",
                       needs_redis(kind) ? rds_errstr(env->rds) : "");
            logged = true;
        }
        for (int waited = 0; waited < delay; waited += WAIT_STEP_MS) {
            if (env->tick && env->tick(env->tick_arg)) return false;
            struct timespec ts = {0, WAIT_STEP_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        delay = delay * 2 > WAIT_MAX_MS ? WAIT_MAX_MS : delay * 2;
    }
    if (logged) log_fields(LOG_INFO, "job_resumed", fields, "%s: backends answer again", kind);
    return true;
}

/* ---------------------------------------------------------------------------
 * Dispatch */

static bool known_kind(const char *k)
{
    return !strcmp(k, "snapshot") || !strcmp(k, "timelapse") || !strcmp(k, "retention");
}

/* PostgreSQL's messages span lines (CONTEXT: ...); the jobs row and the
 * api's error member get one line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
}

/* The outcome of a failed run: record it and pick the verdict. */
static job_verdict_t failed(run_ctx_t *c, int rc, long attempt)
{
    one_line(c->err);
    db_t *db = c->env->db;
    const char *kind = c->job->kind;
    if (c->permanent) {
        /* recorded in the row for whoever asked: the message itself was fine */
        if (db_job_failed(db, c->job->id, c->err, true) != 0) {
            log_fields(LOG_WARN, "job_retry", c->fields, "%s failed (%s) but cannot record it: %s",
                       kind, c->err, db_errstr(db));
            return JOB_RETRY;
        }
        log_fields(LOG_ERROR, "job_failed", c->fields, "%s: %s", kind, c->err);
        return JOB_ACK;
    }
    if (!backends_up(c->env, kind)) return JOB_WAIT;
    bool final = attempt >= MQ_DELIVERY_LIMIT;
    char msg[600];
    snprintf(msg, sizeof msg, "%s%s", final ? "gave up after the last attempt: " : "", c->err);
    /* best effort: with PostgreSQL down the row cannot be updated; it says
     * "running" until the next attempt */
    if (db_job_failed(db, c->job->id, msg, final) != 0)
        log_fields(LOG_WARN, "job_record", c->fields, "cannot record the failure: %s",
                   db_errstr(db));
    if (final) {
        log_fields(LOG_ERROR, "job_dead_lettered", c->fields, "%s: attempt %ld of %d: %s (%s)",
                   kind, attempt, MQ_DELIVERY_LIMIT, c->err, px_strerror(rc));
        return JOB_REJECT;
    }
    log_fields(LOG_WARN, "job_retry", c->fields, "%s: attempt %ld of %d: %s (%s)", kind, attempt,
               MQ_DELIVERY_LIMIT, c->err, px_strerror(rc));
    return JOB_RETRY;
}

/* A jobs-row statement failed before the job ran: wait for the backends if
 * they are gone, else spend an attempt on it. */
static job_verdict_t row_failed(job_env_t *env, const char *type, const char *fields, long attempt)
{
    if (!backends_up(env, type)) return JOB_WAIT;
    log_fields(LOG_WARN, "job_retry", fields, "%s: %s (attempt %ld)", type, db_errstr(env->db),
               attempt);
    return attempt >= MQ_DELIVERY_LIMIT ? JOB_REJECT : JOB_RETRY;
}

/* Runs a started job (status queued or running) and records the outcome. */
static job_verdict_t run_started(job_env_t *env, const db_job_t *job, const char *fields,
                                 long attempt)
{
    if (!strcmp(job->status, "running"))
        log_fields(LOG_WARN, "job_resumed", fields,
                   "%s was left running by an earlier attempt (worker died?): running it "
                   "again (attempt %d)",
                   job->kind, job->attempts);
    run_ctx_t c = {.env = env, .job = job, .fields = fields};
    int rc;
    if (!strcmp(job->kind, "snapshot"))
        rc = run_snapshot(&c);
    else if (!strcmp(job->kind, "timelapse"))
        rc = run_timelapse(&c);
    else
        rc = run_retention(&c);
    if (rc == 0) return JOB_ACK;
    if (rc != JOB_STOPPED) return failed(&c, rc, attempt);
    if (db_job_failed(env->db, job->id, "interrupted: the worker stopped; it will run again",
                      false) != 0)
        log_fields(LOG_WARN, "job_record", fields, "%s", db_errstr(env->db));
    log_fields(LOG_WARN, "job_abandoned", fields, "%s stopped half-way: %s", job->kind, c.err);
    return JOB_ABANDON;
}

static job_verdict_t dispatch(job_env_t *env, const char *type, const char *id, const char *fields,
                              long delivery_count)
{
    db_t *db = env->db;
    long attempt = delivery_count + 1;
    bool locked = false;
    if (db_job_lock(db, id, &locked) != 0) return row_failed(env, type, fields, attempt);
    if (!locked) {
        /* another delivery of the same job (a duplicate publish) is running
         * on another worker; that delivery stays unacked until it is done,
         * so this one is not needed */
        log_fields(LOG_INFO, "job_duplicate", fields, "%s is being run by another worker", type);
        return JOB_ACK;
    }

    db_job_t job;
    int rc = db_job_start(db, id, &job);
    if (rc == PX_ENOTFOUND && (!strcmp(type, "snapshot") || !strcmp(type, "retention"))) {
        /* a message without a row (published by an older enqueue, or by
         * hand): these kinds need no parameters, so the row can be made */
        rc = db_job_insert(db, id, type, NULL, -1, NULL, NULL);
        if (rc == 0) rc = db_job_start(db, id, &job);
    }
    job_verdict_t v;
    if (rc == PX_ENOTFOUND) {
        log_fields(LOG_ERROR, "job_rejected", fields, "no jobs row for this %.32s job", type);
        v = JOB_REJECT;
    } else if (rc) {
        v = row_failed(env, type, fields, attempt);
    } else if (strcmp(job.kind, type) != 0) {
        log_fields(LOG_ERROR, "job_rejected", fields, "message says %.32s, the row says %s", type,
                   job.kind);
        v = JOB_REJECT;
    } else if (!strcmp(job.status, "done") || !strcmp(job.status, "failed")) {
        log_fields(LOG_INFO, "job_redelivered", fields, "%s already %s: nothing to do", type,
                   job.status);
        v = JOB_ACK;
    } else {
        v = run_started(env, &job, fields, attempt);
    }
    db_job_deinit(&job);
    /* a failed unlock only matters while this connection lives; a broken
     * one has released the lock already */
    if (db_job_unlock(db, id) != 0)
        log_fields(LOG_DEBUG, "job_unlock", fields, "%s", db_errstr(db));
    return v;
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
    if (!known_kind(type)) {
        log_fields(LOG_ERROR, "job_rejected", fields, "unknown job type \"%.32s\"", type);
        goto out;
    }
    do {
        if (!wait_backends(env, type, fields)) {
            v = JOB_ABANDON;
            break;
        }
        v = dispatch(env, type, id, fields, delivery_count);
    } while (v == JOB_WAIT);
out:
    json_decref(msg);
    return v;
}
