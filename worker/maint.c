#include "maint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "db_jobs.h"
#include "rebuild.h"
#include "snap.h"

#define DAY_MS (86400LL * 1000)

void maint_retention_result_deinit(maint_retention_result_t *r)
{
    json_decref(r->partitions);
    memset(r, 0, sizeof *r);
}

int maint_retention(const cfg_t *cfg, db_t *db, const char *job_id, int64_t now_ms,
                    maint_retention_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    /* each step is idempotent: a retry after a failure half-way is harmless */
    if (db_retention_events(db, now_ms - cfg->worker.retention_days * DAY_MS, &res->partitions) ||
        db_retention_snapshots(db, now_ms - cfg->worker.snapshot_retention_days * DAY_MS,
                               &res->snapshots_deleted) ||
        db_retention_jobs(db, now_ms - cfg->worker.job_retention_days * DAY_MS,
                          &res->jobs_deleted)) {
        snprintf(err, errlen, "%s", db_errstr(db));
        return PX_EBACKEND;
    }
    if (!job_id) return 0;
    json_t *sum =
        json_pack("{s:O,s:I,s:I}", "partitionsDropped", res->partitions, "snapshotsDeleted",
                  (json_int_t)res->snapshots_deleted, "jobsDeleted", (json_int_t)res->jobs_deleted);
    char *text = json_dumps(sum, JSON_COMPACT);
    json_decref(sum);
    int rc = text ? db_job_done(db, job_id, text) : PX_EBACKEND;
    free(text);
    if (rc) snprintf(err, errlen, "%s", db_errstr(db));
    return rc;
}

int maint_check(const cfg_t *cfg, rds_t *rds, db_t *db, maint_check_result_t *res, char *err,
                size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    canvas_geom_t g = {cfg->canvas.width, cfg->canvas.height, cfg->canvas.palette_len};
    uint8_t *live = NULL, *rebuilt = NULL;
    int rc = snap_read_canvas(cfg, rds, &live, &res->seq, err, errlen);
    if (rc) return rc;
    size_t len = canvas_size(&g);
    /* The stream is read after the canvas: an event at or below res->seq is
     * then either still in the stream or already committed to PostgreSQL. */
    rebuild_stats_t st;
    rc = rebuild_canvas_at(db, rds, &g, res->seq, &rebuilt, &st);
    if (rc) {
        snprintf(err, errlen, "rebuild: %s", db_errstr(db)[0] ? db_errstr(db) : rds_errstr(rds));
        free(live);
        return PX_EBACKEND;
    }
    res->snapshot_seq = st.snapshot_seq;
    res->db_events = st.db_events;
    res->stream_events = st.stream_events;
    res->mismatched = canvas_diff(live, rebuilt, len, res->first, 20);
    size_t shown = res->mismatched < 20 ? res->mismatched : 20;
    for (size_t i = 0; i < shown; i++) {
        res->redis_px[i] = live[res->first[i]];
        res->rebuilt_px[i] = rebuilt[res->first[i]];
    }
    free(live);
    free(rebuilt);
    return 0;
}
