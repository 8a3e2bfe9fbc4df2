/* GET /api/v1/timelapse/snapshots?limit=&before=, GET /api/v1/timelapse/snapshot/:id (PNG),
 * POST /api/v1/admin/snapshot */
#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>

#include "db_jobs.h"
#include "log.h"
#include "proto.h"
#include "routes.h"

#define SNAPSHOT_URL "/api/v1/timelapse/snapshot/"

static enum MHD_Result unavailable(req_t *rq, const char *what)
{
    log_warn("postgres_error", "%s: %s", what, db_errstr(req_db(rq)));
    return reply_error(rq, 503, "UNAVAILABLE", "snapshot store unavailable");
}

enum MHD_Result h_snapshot_list(req_t *rq)
{
    enum MHD_Result res;
    long limit, before;
    if (!req_int_arg_or_reply(rq, "limit", 1, 100, 20, &limit, &res) ||
        !req_int_arg_or_reply(rq, "before", 1, INT64_MAX, 0, &before, &res))
        return res;
    json_t *arr = NULL;
    int64_t next = 0;
    if (db_snapshot_list(req_db(rq), (int)limit, before, &arr, &next) != 0)
        return unavailable(rq, "snapshot list");
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s)
    {
        char url[64];
        snprintf(url, sizeof url, SNAPSHOT_URL "%lld",
                 (long long)json_integer_value(json_object_get(s, "id")));
        json_object_set_new(s, "url", json_string(url));
    }
    return reply_json(rq, 200,
                      json_pack("{s:o,s:o}", "snapshots", arr, "next",
                                next > 0 ? json_integer((json_int_t)next) : json_null()));
}

enum MHD_Result h_snapshot_png(req_t *rq)
{
    int64_t id;
    if (!rq->param || !proto_parse_i64(rq->param, strlen(rq->param), &id) || id < 1)
        return reply_error(rq, 400, "BAD_REQUEST", "snapshot id must be a positive integer");
    /* a snapshot never changes: the id is the version */
    char etag[40];
    snprintf(etag, sizeof etag, "\"snapshot-%lld\"", (long long)id);
    if (req_etag_matches(rq, etag)) return reply_not_modified(rq, etag);
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = db_snapshot_png(req_db(rq), id, &png, &len);
    if (rc == PX_ENOTFOUND)
        return reply_error(rq, 404, "NOT_FOUND", "no snapshot %lld", (long long)id);
    if (rc) return unavailable(rq, "snapshot png");
    return reply_immutable(rq, etag, "image/png", png, len);
}

enum MHD_Result h_admin_snapshot(req_t *rq)
{
    enum MHD_Result res;
    rds_session_t s;
    if (!req_admin_or_reply(rq, &s, NULL, &res) || !req_csrf_or_reply(rq, &res)) return res;
    unsigned char b[16];
    char id[37];
    if (RAND_bytes(b, sizeof b) != 1)
        return reply_error(rq, 500, "INTERNAL", "no randomness for a job id");
    proto_uuid_format(b, id);
    /* the job row and the admin_actions row in one transaction; the relay
     * publishes the job (RabbitMQ may be down: the row waits) */
    if (db_job_insert_admin(req_db(rq), id, "snapshot", s.user_id, "snapshot") != 0)
        return unavailable(rq, "admin snapshot");
    log_info("admin_snapshot", "admin %s asked for snapshot job %s", s.user_id, id);
    return reply_json(rq, 202, json_pack("{s:s}", "jobId", id));
}
