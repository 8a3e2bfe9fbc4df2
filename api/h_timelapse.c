/* POST /api/v1/timelapse, GET /api/v1/timelapse/:id, GET /api/v1/timelapse/:id.png */
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db_jobs.h"
#include "log.h"
#include "proto.h"
#include "routes.h"
#include "timelapse.h"

#define TIMELAPSE_URL "/api/v1/timelapse/"

static enum MHD_Result unavailable(req_t *rq, const char *what)
{
    log_warn("postgres_error", "%s: %s", what, db_errstr(req_db(rq)));
    return reply_error(rq, 503, "UNAVAILABLE", "job store unavailable");
}

/* [worker] timelapses_per_hour per user (sliding window). A Redis failure
 * lets the request through: the limit protects the workers, not the data. */
static bool quota_or_reply(req_t *rq, const char *user_id, enum MHD_Result *res)
{
    int max = rq->app->cfg->worker.timelapses_per_hour;
    if (max <= 0) return true;
    char key[96];
    snprintf(key, sizeof key, "timelapse:%s", user_id);
    bool allowed = true;
    int64_t retry = 0;
    if (rds_rate_limit(req_rds(rq), key, 3600, max, app_now_ms(), &allowed, &retry) != 0 ||
        allowed)
        return true;
    char ra[16];
    snprintf(ra, sizeof ra, "%lld", (long long)retry);
    char msg[120];
    snprintf(msg, sizeof msg, "at most %d timelapses an hour; retry in %s s", max, ra);
    *res = reply_error_ex(
        rq, 429, "RATE_LIMITED",
        json_pack("{s:s,s:I}", "limit", "timelapse", "retryAfter", (json_int_t)retry),
        "Retry-After", ra, msg);
    return false;
}

enum MHD_Result h_timelapse_create(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t s;
    if (!req_session_or_reply(rq, &s, NULL, &res)) return res;
    timelapse_limits_t lim = timelapse_limits(rq->app->cfg, app_now_ms());
    timelapse_params_t p;
    char msg[256];
    const char *body = rq->body.data ? rq->body.data : "";
    if (timelapse_parse_request(body, rq->body.len, &lim, &p, msg, sizeof msg) != 0)
        return reply_error(rq, 400, "BAD_REQUEST", "%s", msg);
    if (!quota_or_reply(rq, s.user_id, &res)) return res;

    unsigned char b[16];
    char id[37];
    if (RAND_bytes(b, sizeof b) != 1)
        return reply_error(rq, 500, "INTERNAL", "no randomness for a job id");
    proto_uuid_format(b, id);
    char *params = timelapse_params_encode(&p);
    int rc = db_job_insert(req_db(rq), id, "timelapse", params, -1, s.user_id, NULL);
    free(params);
    if (rc) return unavailable(rq, "timelapse request");
    log_info("timelapse_requested", "job %s: %d frames of %dx%d at %d fps for user %s", id,
             p.frames, timelapse_frame_width(&p), timelapse_frame_height(&p), p.fps, s.user_id);
    char url[64];
    snprintf(url, sizeof url, TIMELAPSE_URL "%s", id);
    return reply_json(rq, 202,
                      json_pack("{s:s,s:s,s:s}", "id", id, "status", "queued", "url", url));
}

/* The job's status document. takes nothing; job borrowed. */
static json_t *status_json(const db_job_t *job)
{
    json_t *params = json_loads(job->params, 0, NULL);
    json_int_t frames = json_integer_value(json_object_get(params, "frames"));
    json_int_t fps = json_integer_value(json_object_get(params, "fps"));
    json_decref(params);
    json_t *out = json_pack("{s:s,s:s,s:f,s:I,s:I}", "id", job->id, "status", job->status,
                            "progress", job->progress, "frames", frames, "fps", fps);
    /* an error of an earlier attempt is history once the job is done */
    if (job->error && strcmp(job->status, "done") != 0)
        json_object_set_new(out, "error", json_string(job->error));
    if (!strcmp(job->status, "done")) {
        char url[80];
        snprintf(url, sizeof url, TIMELAPSE_URL "%s.png", job->id);
        json_object_set_new(out, "url", json_string(url));
    }
    return out;
}

/* Loads timelapse job `id` into *job (deinit it); false after replying 404
 * (no such job, or not a timelapse) or 503. */
static bool job_or_reply(req_t *rq, const char *id, db_job_t *job, enum MHD_Result *res)
{
    int rc = db_job_get(req_db(rq), id, job);
    if (rc == PX_ENOTFOUND || (rc == 0 && strcmp(job->kind, "timelapse") != 0)) {
        db_job_deinit(job);
        *res = reply_error(rq, 404, "NOT_FOUND", "no timelapse %s", id);
        return false;
    }
    if (rc) {
        *res = unavailable(rq, "timelapse status");
        return false;
    }
    return true;
}

static enum MHD_Result reply_apng(req_t *rq, const char *id)
{
    char etag[64];
    snprintf(etag, sizeof etag, "\"timelapse-%s\"", id);
    if (req_etag_matches(rq, etag)) return reply_not_modified(rq, etag);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = db_timelapse_apng(req_db(rq), id, &data, &len);
    if (rc == 0) return reply_immutable(rq, etag, "image/apng", data, len);
    if (rc != PX_ENOTFOUND) return unavailable(rq, "timelapse apng");
    /* no output: unknown, or not finished */
    db_job_t job;
    enum MHD_Result res;
    if (!job_or_reply(rq, id, &job, &res)) return res;
    res = reply_error(rq, 409, "NOT_READY", "timelapse is %s%s%s", job.status,
                      job.error ? ": " : "", job.error ? job.error : "");
    db_job_deinit(&job);
    return res;
}

enum MHD_Result h_timelapse_get(req_t *rq)
{
    const char *param = rq->param ? rq->param : "";
    size_t n = strlen(param);
    bool png = n == 36 + 4 && !strcmp(param + 36, ".png");
    char id[37];
    if ((n != 36 && !png) || (memcpy(id, param, 36), id[36] = '\0', !proto_uuid_valid(id)))
        return reply_error(rq, 404, "NOT_FOUND", "no timelapse %.64s", param);
    for (char *c = id; *c; c++) /* uuid text as PostgreSQL prints it */
        if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
    if (png) return reply_apng(rq, id);
    db_job_t job;
    enum MHD_Result res;
    if (!job_or_reply(rq, id, &job, &res)) return res;
    json_t *out = status_json(&job);
    db_job_deinit(&job);
    return reply_json(rq, 200, out);
}
